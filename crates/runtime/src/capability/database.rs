//! The `database` interface: named connections, queries, cursors and bulk inserts,
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

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::contract::v0_1_1::{self as wit, database, types};
use migrun_journal::CallResult;
use migrun_session::tape::TapeError;
use migrun_session::{ConnectionInfo, Session};
use migrun_types::value::Value;

/// A connection handle as the guest holds it: the name it was opened by.
pub struct ConnectionResource {
    name: String,
}

/// A cursor handle as the guest holds it: the run's number for it.
pub struct CursorResource {
    id: u64,
    columns: Vec<(String, String)>,
    exhausted: bool,
}

/// The guest's handles to the connections of one run, over the run's [`Session`].
pub struct DatabaseCtx {
    table: ResourceTable,
    session: Session,
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

    fn name_of(&self, handle: &Resource<ConnectionResource>) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.name.clone())
    }

    fn info(&self, handle: &Resource<ConnectionResource>) -> wasmtime::Result<ConnectionInfo> {
        let name = &self.table.get(handle)?.name;
        self.session.info(name).ok_or_else(|| {
            wasmtime::Error::msg(format!(
                "host error: a handle to the undeclared connection `{name}`"
            ))
        })
    }
}

/// A tape that could not answer or record stops the plugin: the run must stop.
fn taped(result: Result<CallResult, TapeError>) -> wasmtime::Result<CallResult> {
    result.map_err(wasmtime::Error::new)
}

/// Converts a recorded error back into the contract's `db-error`.
fn wit_error(error_kind: &str, code: Option<String>, message: String) -> types::DbError {
    use types::DbErrorKind as K;
    let kind = match error_kind {
        "unknown-connection" => K::UnknownConnection,
        "read-only" => K::ReadOnly,
        "constraint" => K::Constraint,
        "conflict" => K::Conflict,
        "connection" => K::Connection,
        "value" => K::Value,
        "usage" => K::Usage,
        "refused" => K::Refused,
        _ => K::Other,
    };
    types::DbError {
        kind,
        code,
        message,
    }
}

fn wit_columns(columns: Vec<(String, String)>) -> Vec<types::Column> {
    columns
        .into_iter()
        .map(|(name, type_name)| types::Column { name, type_name })
        .collect()
}

/// A recorded result of the wrong shape for its call: the journal does not belong to this call.
pub(crate) fn unexpected(result: CallResult) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "host error: a recorded result of the wrong kind: {result:?}"
    ))
}

/// The answer to a call whose result is not its success shape: the recorded `db-error`,
/// or a host error when the result does not belong to the call at all.
fn failure<T>(result: CallResult) -> DbResult<T> {
    Ok(Err(error_from_result(result)?))
}

/// The `db-error` of a failed call (for interfaces that share `db-error`), or a host
/// error when the result is no error at all.
pub(crate) fn error_from_result(result: CallResult) -> wasmtime::Result<types::DbError> {
    match result {
        CallResult::Error {
            error_kind,
            code,
            message,
        } => Ok(wit_error(&error_kind, code, message)),
        other => Err(unexpected(other)),
    }
}

/// Marker tying the generated `add_to_linker` to [`DatabaseCtx`].
struct Database;

impl HasData for Database {
    type Data<'a> = &'a mut DatabaseCtx;
}

/// Adds the `database` interface to `linker`, reaching the context through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut DatabaseCtx,
) -> wasmtime::Result<()> {
    database::add_to_linker::<T, Database>(linker, get)?;
    types::add_to_linker::<T, Database>(linker, get)
}

impl types::Host for DatabaseCtx {}

type DbResult<T> = wasmtime::Result<Result<T, types::DbError>>;

fn params_from_wit(params: Vec<types::Value>) -> Result<Vec<Value>, types::DbError> {
    wit::values_from_wit(params).map_err(Into::into)
}

impl database::Host for DatabaseCtx {
    async fn open(&mut self, name: String) -> DbResult<Resource<ConnectionResource>> {
        match taped(self.session.open(name.clone()).await)? {
            CallResult::Opened if self.session.info(&name).is_some() => {
                Ok(Ok(self.table.push(ConnectionResource { name })?))
            }
            other => failure(other),
        }
    }
}

impl database::HostConnection for DatabaseCtx {
    async fn dialect(
        &mut self,
        conn: Resource<ConnectionResource>,
    ) -> wasmtime::Result<database::Dialect> {
        Ok(self.info(&conn)?.dialect.into())
    }

    async fn access(
        &mut self,
        conn: Resource<ConnectionResource>,
    ) -> wasmtime::Result<database::Access> {
        Ok(self.info(&conn)?.access.into())
    }

    async fn query(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
    ) -> DbResult<types::Rows> {
        let params = match params_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let conn = self.name_of(&conn)?;
        match taped(self.session.query(conn, sql, params).await)? {
            CallResult::Rows { columns, rows } => Ok(Ok(types::Rows {
                columns: wit_columns(columns),
                rows: wit::rows_to_wit(rows),
            })),
            other => failure(other),
        }
    }

    async fn execute(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
    ) -> DbResult<u64> {
        let params = match params_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let conn = self.name_of(&conn)?;
        count_result(taped(self.session.execute(conn, sql, params).await)?)
    }

    async fn open_cursor(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
        batch_size: u32,
    ) -> DbResult<Resource<CursorResource>> {
        let params = match params_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let conn = self.name_of(&conn)?;
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
            other => failure(other),
        }
    }

    async fn bulk_insert(
        &mut self,
        conn: Resource<ConnectionResource>,
        table: String,
        columns: Vec<String>,
        rows: Vec<Vec<types::Value>>,
    ) -> DbResult<u64> {
        let mut converted = Vec::with_capacity(rows.len());
        for row in rows {
            match params_from_wit(row) {
                Ok(r) => converted.push(r),
                Err(e) => return Ok(Err(e)),
            }
        }
        let conn = self.name_of(&conn)?;
        let inserted = self
            .session
            .bulk_insert(conn, table, columns, converted)
            .await;
        count_result(taped(inserted)?)
    }

    async fn drop(&mut self, conn: Resource<ConnectionResource>) -> wasmtime::Result<()> {
        // The physical connection belongs to the run, not to the handle.
        self.table.delete(conn)?;
        Ok(())
    }
}

fn count_result(result: CallResult) -> DbResult<u64> {
    match result {
        CallResult::Count { n } => Ok(Ok(n)),
        other => failure(other),
    }
}

impl database::HostCursor for DatabaseCtx {
    async fn columns(
        &mut self,
        cursor: Resource<CursorResource>,
    ) -> wasmtime::Result<Vec<types::Column>> {
        // The columns came with the (live or recorded) open-cursor answer.
        Ok(wit_columns(self.table.get(&cursor)?.columns.clone()))
    }

    async fn next_batch(
        &mut self,
        cursor: Resource<CursorResource>,
    ) -> DbResult<Option<Vec<Vec<types::Value>>>> {
        let res = self.table.get(&cursor)?;
        if res.exhausted {
            return Ok(Ok(None));
        }
        let id = res.id;
        let result = taped(self.session.next_batch(id).await)?;
        let res = self.table.get_mut(&cursor)?;
        match result {
            CallResult::Batch { rows: Some(rows) } => Ok(Ok(Some(wit::rows_to_wit(rows)))),
            CallResult::Batch { rows: None } => {
                res.exhausted = true;
                Ok(Ok(None))
            }
            CallResult::Error {
                error_kind,
                code,
                message,
            } => {
                res.exhausted = true;
                Ok(Err(wit_error(&error_kind, code, message)))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn drop(&mut self, cursor: Resource<CursorResource>) -> wasmtime::Result<()> {
        let res = self.table.delete(cursor)?;
        if !res.exhausted {
            taped(self.session.close_cursor(res.id).await)?;
        }
        Ok(())
    }
}
