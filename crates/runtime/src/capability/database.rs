//! The `database` interface: named connections, queries, cursors, bulk inserts and
//! (contract 0.2.0) bulk updates, upserts and deletes,
//! as a thin adapter over the run's [`Session`].
//!
//! This module owns what only the WIT side knows: the resource handles the guest
//! holds (a connection by the name it was opened by, a cursor by the run's number
//! for it) and the conversions between the contract's types and the host's. Every
//! call is handed to the session, which asks the run's tape for the answer or runs
//! it live and records it; the transactions, ledger rows, checkpoints and write
//! counts are the session's too (see [`crate::session`]).
//!
//! Database failures reach the plugin as `db-error` values; only host-side failures
//! (a replay divergence, an unwritable journal, a stale handle) trap.

use wasmtime::component::{Resource, ResourceTable};

use migrun_db::{DbError, DbErrorKind};
use migrun_journal::CallResult;
use migrun_session::tape::TapeError;
use migrun_session::{ConnectionInfo, Session};
use migrun_types::BulkWriteKind;
use migrun_types::value::Value;

/// A connection handle as the guest holds it: the name it was opened by.
pub struct ConnectionResource {
    pub(crate) name: String,
}

/// A cursor handle as the guest holds it: the run's number for it.
pub struct CursorResource {
    pub(crate) id: u64,
    pub(crate) columns: Vec<(String, String)>,
    pub(crate) exhausted: bool,
}

/// The guest's handles to the connections of one run, over the run's [`Session`].
pub struct DatabaseCtx {
    pub(crate) table: ResourceTable,
    pub(crate) session: Session,
}

impl DatabaseCtx {
    /// The guest's view of `session`: no handle open yet.
    pub fn new(session: Session) -> Self {
        DatabaseCtx {
            table: ResourceTable::new(),
            session,
        }
    }

    /// The session the calls go to (the runner drives its transactions).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The session, once the plugin is done (to close its connections).
    pub fn into_session(self) -> Session {
        self.session
    }

    pub(crate) fn name_of(
        &self,
        handle: &Resource<ConnectionResource>,
    ) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.name.clone())
    }

    pub(crate) fn info(
        &self,
        handle: &Resource<ConnectionResource>,
    ) -> wasmtime::Result<ConnectionInfo> {
        let name = &self.table.get(handle)?.name;
        self.session.info(name).ok_or_else(|| {
            wasmtime::Error::msg(format!(
                "host error: a handle to the undeclared connection `{name}`"
            ))
        })
    }
}

/// A tape that could not answer or record stops the plugin: the run must stop.
pub(crate) fn taped(result: Result<CallResult, TapeError>) -> wasmtime::Result<CallResult> {
    result.map_err(wasmtime::Error::new)
}

/// A recorded result of the wrong shape for its call: the journal does not belong to this call.
pub(crate) fn unexpected(result: CallResult) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "host error: a recorded result of the wrong kind: {result:?}"
    ))
}

/// A database call's answer in the host's own terms: the result, or the
/// `db-error` the plugin gets; the outer error is a host failure (trap).
pub type DbAnswer<T> = wasmtime::Result<Result<T, DbError>>;

/// Rows as a `query` answers them, in host values, with each column's name
/// and type name.
pub struct HostRows {
    /// `(name, type name)` per column.
    pub columns: Vec<(String, String)>,
    /// The rows.
    pub rows: Vec<Vec<Value>>,
}

/// The version-free surface of the `database` interface's value-carrying
/// calls: each contract version converts its values to and from these (so a
/// version with more value cases, 0.2.0's `typed`, loses nothing on the way).
impl DatabaseCtx {
    /// `connection.query`.
    pub async fn plugin_query(
        &mut self,
        conn: &Resource<ConnectionResource>,
        sql: String,
        params: Vec<Value>,
    ) -> DbAnswer<HostRows> {
        let conn = self.name_of(conn)?;
        match taped(self.session.query(conn, sql, params).await)? {
            CallResult::Rows { columns, rows } => Ok(Ok(HostRows { columns, rows })),
            other => Ok(Err(error_of(other)?)),
        }
    }

    /// `connection.execute`.
    pub async fn plugin_execute(
        &mut self,
        conn: &Resource<ConnectionResource>,
        sql: String,
        params: Vec<Value>,
    ) -> DbAnswer<u64> {
        let conn = self.name_of(conn)?;
        count(taped(self.session.execute(conn, sql, params).await)?)
    }

    /// `connection.open-cursor`.
    pub async fn plugin_open_cursor(
        &mut self,
        conn: &Resource<ConnectionResource>,
        sql: String,
        params: Vec<Value>,
        batch_size: u32,
    ) -> DbAnswer<Resource<CursorResource>> {
        let conn = self.name_of(conn)?;
        let opened = self
            .session
            .open_cursor(conn, sql, params, batch_size)
            .await;
        match taped(opened)? {
            CallResult::Cursor { cursor, columns } => Ok(Ok(self.table.push(CursorResource {
                id: cursor,
                columns,
                exhausted: false,
            })?)),
            other => Ok(Err(error_of(other)?)),
        }
    }

    /// `connection.bulk-insert`.
    pub async fn plugin_bulk_insert(
        &mut self,
        conn: &Resource<ConnectionResource>,
        table: String,
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
    ) -> DbAnswer<u64> {
        let conn = self.name_of(conn)?;
        let inserted = self.session.bulk_insert(conn, table, columns, rows).await;
        count(taped(inserted)?)
    }

    /// `connection.bulk-update`, `bulk-upsert` or `bulk-delete` (contract 0.2.0); `rows`
    /// hold the key values, then the values of `columns` (none for a delete).
    pub async fn plugin_bulk_write(
        &mut self,
        conn: &Resource<ConnectionResource>,
        kind: BulkWriteKind,
        table: String,
        keys: Vec<String>,
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
    ) -> DbAnswer<u64> {
        let conn = self.name_of(conn)?;
        let written = self
            .session
            .bulk_write(conn, kind, table, keys, columns, rows)
            .await;
        count(taped(written)?)
    }

    /// `cursor.next-batch`: `None` once the cursor is exhausted (or failed).
    pub async fn plugin_next_batch(
        &mut self,
        cursor: &Resource<CursorResource>,
    ) -> DbAnswer<Option<Vec<Vec<Value>>>> {
        let res = self.table.get(cursor)?;
        if res.exhausted {
            return Ok(Ok(None));
        }
        let id = res.id;
        let result = taped(self.session.next_batch(id).await)?;
        let res = self.table.get_mut(cursor)?;
        match result {
            CallResult::Batch { rows: Some(rows) } => Ok(Ok(Some(rows))),
            CallResult::Batch { rows: None } => {
                res.exhausted = true;
                Ok(Ok(None))
            }
            other @ CallResult::Error { .. } => {
                res.exhausted = true;
                Ok(Err(error_of(other)?))
            }
            other => Err(unexpected(other)),
        }
    }

    /// The columns of `cursor`, `(name, type name)`.
    pub fn cursor_columns(
        &self,
        cursor: &Resource<CursorResource>,
    ) -> wasmtime::Result<&[(String, String)]> {
        Ok(&self.table.get(cursor)?.columns)
    }
}

fn count(result: CallResult) -> DbAnswer<u64> {
    match result {
        CallResult::Count { n } => Ok(Ok(n)),
        other => Ok(Err(error_of(other)?)),
    }
}

/// The database error of a failed call (a kind this migrun does not know reads
/// as `other`), or a host error when the result is no error at all.
pub(crate) fn error_of(result: CallResult) -> wasmtime::Result<DbError> {
    match result {
        CallResult::Error {
            error_kind,
            code,
            message,
        } => Ok(DbError {
            kind: DbErrorKind::from_name(&error_kind).unwrap_or(DbErrorKind::Other),
            code,
            message,
        }),
        other => Err(unexpected(other)),
    }
}
