//! The `database` interface: named connections, queries, cursors and bulk inserts.
//!
//! This module owns the connections of one run. A plugin opens a connection
//! by the name it declared; the runner has already connected every declared
//! name (so a bad URL fails before any unit starts) and opens and closes the
//! unit transactions around the plugin's calls. The plugin therefore never
//! sees a URL and never begins or commits.
//!
//! Every call is turned into a [`HostCall`] and handed to the run's
//! [`Tape`]: live runs execute it and record it with its result; replays
//! answer it from the journal without touching a database. Database failures
//! reach the plugin as `db-error` values; only host-side failures (a replay
//! divergence, an unwritable journal, a stale handle) trap.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::contract::v0_1_0::{self as wit, database, types};
use crate::db::{self, Access, DbError, DbErrorKind, Dialect};
use crate::journal::{CallResult, HostCall};
use crate::lint::LockWarning;
use crate::plan::Plan;
use crate::tape::{Answer, Tape};
use crate::value::Value;

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

/// Rows a unit wrote through one connection, as counted by the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteCounts {
    /// Statements run through `execute`.
    pub statements: u64,
    /// Rows affected by `execute` plus rows inserted by `bulk-insert`.
    pub rows: u64,
}

/// What a plugin may know about a connection without a database: its dialect and access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The dialect.
    pub dialect: Dialect,
    /// The access granted.
    pub access: Access,
}

/// The connections of one run and the guest's handles to them.
pub struct DatabaseCtx {
    infos: BTreeMap<String, ConnectionInfo>,
    live: BTreeMap<String, db::Connection>,
    live_cursors: BTreeMap<u64, (String, db::CursorHandle)>,
    next_cursor: u64,
    table: ResourceTable,
    writes: BTreeMap<String, WriteCounts>,
    tape: Tape,
    plan: Option<Arc<Mutex<Plan>>>,
}

impl DatabaseCtx {
    /// Collects every call into `plan` (a dry-run), linting writes for locking operations.
    pub fn set_plan(&mut self, plan: Arc<Mutex<Plan>>) {
        self.plan = Some(plan);
    }

    /// No connections yet (before `describe`).
    pub fn empty(tape: Tape) -> Self {
        DatabaseCtx {
            infos: BTreeMap::new(),
            live: BTreeMap::new(),
            live_cursors: BTreeMap::new(),
            next_cursor: 0,
            table: ResourceTable::new(),
            writes: BTreeMap::new(),
            tape,
            plan: None,
        }
    }

    /// Live connections, keyed by the name the plugin declared.
    pub fn live(connections: BTreeMap<String, db::Connection>, tape: Tape) -> Self {
        let mut ctx = DatabaseCtx::empty(tape);
        for (name, conn) in &connections {
            ctx.infos.insert(
                name.clone(),
                ConnectionInfo {
                    dialect: conn.dialect(),
                    access: conn.access(),
                },
            );
        }
        ctx.live = connections;
        ctx
    }

    /// Connections known only by name, dialect and access: every answer comes from the tape.
    pub fn recorded(infos: BTreeMap<String, ConnectionInfo>, tape: Tape) -> Self {
        let mut ctx = DatabaseCtx::empty(tape);
        ctx.infos = infos;
        ctx
    }

    /// The live connections, for the runner's transaction control (none in a replay).
    pub fn connections_mut(&mut self) -> impl Iterator<Item = &mut db::Connection> {
        self.live.values_mut()
    }

    /// The write counts since the last [`take_writes`](Self::take_writes).
    pub fn writes(&self) -> &BTreeMap<String, WriteCounts> {
        &self.writes
    }

    /// Takes the write counts since the last call (one unit's worth).
    pub fn take_writes(&mut self) -> BTreeMap<String, WriteCounts> {
        std::mem::take(&mut self.writes)
    }

    /// Closes every connection (rolling back whatever is still open).
    pub async fn close(self) {
        for (_, conn) in self.live {
            conn.close().await;
        }
    }

    fn name_of(&self, handle: &Resource<ConnectionResource>) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.name.clone())
    }

    fn info(&self, handle: &Resource<ConnectionResource>) -> wasmtime::Result<ConnectionInfo> {
        let name = &self.table.get(handle)?.name;
        Ok(*self.infos.get(name).expect("opened connection names exist"))
    }

    /// Answers one call from the tape or runs it live (and records it), then counts writes.
    async fn perform(&mut self, call: HostCall) -> wasmtime::Result<CallResult> {
        let result = match self.tape.answer(&call).map_err(wasmtime::Error::new)? {
            Answer::Recorded(result) => result,
            Answer::Live => {
                let warnings = self.lint(&call).await;
                let result = self.run_live(&call).await;
                self.tape
                    .record(&call, &result)
                    .map_err(wasmtime::Error::new)?;
                if let Some(plan) = &self.plan {
                    let mut plan = crate::tape::lock(plan);
                    plan.observe(&call, &result);
                    if matches!(result, CallResult::Count { .. }) {
                        for warning in warnings {
                            plan.add_warning(warning);
                        }
                    }
                }
                result
            }
        };
        let (conn, statements) = match &call {
            HostCall::Execute { conn, .. } => (conn, 1),
            HostCall::BulkInsert { conn, .. } => (conn, 0),
            _ => return Ok(result),
        };
        if let CallResult::Count { n } = result
            && self
                .infos
                .get(conn)
                .is_some_and(|i| i.access == Access::ReadWrite)
        {
            let counts = self.writes.entry(conn.clone()).or_default();
            counts.statements += statements;
            counts.rows += n;
        }
        Ok(result)
    }

    /// In a dry-run, the locking and rewriting hazards of a statement about to run on a
    /// writable connection, with the row counts of the tables it touches.
    async fn lint(&mut self, call: &HostCall) -> Vec<LockWarning> {
        let (Some(_), HostCall::Execute { conn, sql, .. }) = (&self.plan, call) else {
            return Vec::new();
        };
        if self
            .infos
            .get(conn)
            .is_none_or(|i| i.access != Access::ReadWrite)
        {
            return Vec::new();
        }
        let live = self.live_conn(conn);
        let mut warnings = crate::lint::lint_statement(live, sql)
            .await
            .unwrap_or_default();
        for w in &mut warnings {
            w.connection.get_or_insert_with(|| conn.clone());
        }
        warnings
    }

    async fn run_live(&mut self, call: &HostCall) -> CallResult {
        match call {
            HostCall::Open { name } => {
                if self.infos.contains_key(name) {
                    CallResult::Opened
                } else {
                    let known: Vec<&str> = self.infos.keys().map(String::as_str).collect();
                    error_result(DbError {
                        kind: DbErrorKind::UnknownConnection,
                        code: None,
                        message: format!(
                            "no connection named `{name}`: the plugin declared {}",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    })
                }
            }
            HostCall::Query { conn, sql, params } => {
                match self.live_conn(conn).query(sql, params).await {
                    Ok(rows) => CallResult::Rows {
                        columns: columns(&rows.columns),
                        rows: rows.rows,
                    },
                    Err(e) => error_result(e),
                }
            }
            HostCall::Execute { conn, sql, params } => {
                match self.live_conn(conn).execute(sql, params).await {
                    Ok(n) => CallResult::Count { n },
                    Err(e) => error_result(e),
                }
            }
            HostCall::OpenCursor {
                conn,
                sql,
                params,
                batch_size,
            } => match self
                .live_conn(conn)
                .open_cursor(sql, params, *batch_size)
                .await
            {
                Ok(handle) => {
                    let id = self.next_cursor;
                    self.next_cursor += 1;
                    let result = CallResult::Cursor {
                        cursor: id,
                        columns: columns(handle.columns()),
                    };
                    self.live_cursors.insert(id, (conn.clone(), handle));
                    result
                }
                Err(e) => error_result(e),
            },
            HostCall::NextBatch { cursor } => {
                let Some((conn, handle)) = self.live_cursors.get(cursor) else {
                    return CallResult::Batch { rows: None };
                };
                let conn = self.live.get_mut(conn).expect("cursor connections exist");
                let result = conn.next_batch(handle).await;
                if !matches!(result, Ok(Some(_))) {
                    conn.close_cursor(handle).await;
                    self.live_cursors.remove(cursor);
                }
                match result {
                    Ok(rows) => CallResult::Batch { rows },
                    Err(e) => error_result(e),
                }
            }
            HostCall::CloseCursor { cursor } => {
                if let Some((conn, handle)) = self.live_cursors.remove(cursor)
                    && let Some(conn) = self.live.get_mut(&conn)
                {
                    conn.close_cursor(&handle).await;
                }
                CallResult::Unit
            }
            HostCall::BulkInsert {
                conn,
                table,
                columns,
                rows,
            } => match self.live_conn(conn).bulk_insert(table, columns, rows).await {
                Ok(n) => CallResult::Count { n },
                Err(e) => error_result(e),
            },
            HostCall::Log { .. } | HostCall::Progress { .. } | HostCall::Check { .. } => {
                unreachable!("log and checks calls belong to their own capabilities")
            }
        }
    }

    fn live_conn(&mut self, name: &str) -> &mut db::Connection {
        self.live
            .get_mut(name)
            .expect("live runs connect every declared connection before the plugin runs")
    }
}

fn columns(columns: &[db::Column]) -> Vec<(String, String)> {
    columns
        .iter()
        .map(|c| (c.name.clone(), c.type_name.clone()))
        .collect()
}

fn error_result(e: DbError) -> CallResult {
    CallResult::Error {
        error_kind: e.kind.as_str().to_owned(),
        code: e.code,
        message: e.message,
    }
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
fn unexpected(result: CallResult) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "host error: a recorded result of the wrong kind: {result:?}"
    ))
}

/// The answer to a call whose result is not its success shape: the recorded `db-error`,
/// or a host error when the result does not belong to the call at all.
fn failure<T>(result: CallResult) -> DbResult<T> {
    match result {
        CallResult::Error {
            error_kind,
            code,
            message,
        } => Ok(Err(wit_error(&error_kind, code, message))),
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
        match self.perform(HostCall::Open { name: name.clone() }).await? {
            CallResult::Opened if self.infos.contains_key(&name) => {
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
        match self.perform(HostCall::Query { conn, sql, params }).await? {
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
        count_result(
            self.perform(HostCall::Execute { conn, sql, params })
                .await?,
        )
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
        let call = HostCall::OpenCursor {
            conn,
            sql,
            params,
            batch_size,
        };
        match self.perform(call).await? {
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
        let call = HostCall::BulkInsert {
            conn,
            table,
            columns,
            rows: converted,
        };
        count_result(self.perform(call).await?)
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
        let result = self.perform(HostCall::NextBatch { cursor: id }).await?;
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
            self.perform(HostCall::CloseCursor { cursor: res.id })
                .await?;
        }
        Ok(())
    }
}
