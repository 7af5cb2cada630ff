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
//!
//! Because it owns the connections, this module also owns the transaction
//! control of a run — begin, commit, rollback and the unit's ledger rows —
//! for both of its callers: the runner around each export call, and
//! `checkpoint.save` (contract 0.1.1) inside a unit, which commits the work
//! so far with a `checkpoint` ledger row and begins again. One
//! implementation serves both, so a checkpoint commits exactly as a unit's
//! end does and journals the same `tx` entries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::contract::v0_1_1::{self as wit, database, types};
use crate::db::{self, Access, DbError, DbErrorKind, Dialect};
use crate::journal::{CallResult, HostCall};
use crate::ledger::{self, CheckpointRow, Ledger, LedgerRow};
use crate::lint::LockWarning;
use crate::plan::Plan;
use crate::tape::TapeError;
use crate::tape::{Answer, Tape};
use crate::value::Value;

/// How long closing one connection may take before it is dropped.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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

/// What a live run needs to write ledger rows on its targets.
#[derive(Debug, Clone)]
pub struct RunLedger {
    /// The ledger table.
    pub ledger: Ledger,
    /// The plugin's name.
    pub plugin_name: String,
    /// The plugin's version.
    pub plugin_version: String,
    /// sha256 of the plugin build.
    pub plugin_sha256: String,
    /// This run.
    pub run_id: String,
    /// This run's journal file.
    pub journal_id: String,
}

/// The unit being run: what its ledger rows say and how many checkpoints it saved.
#[derive(Debug, Clone)]
struct CurrentUnit {
    name: String,
    started_at: String,
    override_reason: Option<String>,
    checkpoints: u64,
    /// The builds whose checkpoint row of this unit exists in the ledger (the earlier run's,
    /// then this run's once it saved one): the next ledger row replaces them.
    checkpoint_rows: Vec<String>,
}

/// Why the transactions of a unit (or of the phases around the units) could not begin.
/// The capability's own error: the runner turns it into its report, the capability
/// never needs the runner's types.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    /// A connection refused the `BEGIN`.
    #[error("connection `{connection}`: cannot begin a transaction: {error}")]
    Begin {
        /// The connection.
        connection: String,
        /// Why.
        error: DbError,
    },
    /// The journal could not record the `begin`.
    #[error(transparent)]
    Tape(#[from] TapeError),
}

/// How [`DatabaseCtx`] begins the transactions of a phase.
#[derive(Debug, Clone, Copy)]
enum BeginMode {
    /// At once ([`db::Connection::begin`]).
    Now,
    /// With the next statement, after a checkpoint, so a pause between batches holds
    /// no SQLite write lock ([`db::Connection::begin_deferred`]).
    Deferred,
    /// Read-only in the session even on read-write connections
    /// ([`db::Connection::begin_read_only_phase`]).
    ReadOnlyPhase,
}

/// Why transaction control at a checkpoint or at a unit's end failed.
#[derive(Debug)]
pub struct CommitFailure {
    /// What failed, naming the connection.
    pub message: String,
    /// The database's error.
    pub error: DbError,
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
    /// Where ledger rows go; `None` in replays and dry-runs (nothing is recorded).
    ledger: Option<RunLedger>,
    /// Checkpoints of unfinished units saved by earlier runs, by unit.
    resume: BTreeMap<String, CheckpointRow>,
    unit: Option<CurrentUnit>,
    /// A checkpoint whose commit failed: the unit must fail even if the plugin ignores the error.
    checkpoint_failure: Option<CommitFailure>,
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
            ledger: None,
            resume: BTreeMap::new(),
            unit: None,
            checkpoint_failure: None,
        }
    }

    /// Lets unit ends and checkpoints write ledger rows (live runs only), and hands over the
    /// checkpoints earlier unfinished runs saved, for `checkpoint.last`.
    pub fn set_ledger(&mut self, ledger: RunLedger, resume: BTreeMap<String, CheckpointRow>) {
        self.ledger = Some(ledger);
        self.resume = resume;
    }

    /// The ledger a live run records in.
    pub fn ledger(&self) -> Option<&RunLedger> {
        self.ledger.as_ref()
    }

    /// The checkpoint an earlier run saved for `unit`, if it did not finish.
    pub fn resume_point(&self, unit: &str) -> Option<&CheckpointRow> {
        self.resume.get(unit)
    }

    /// Marks the start of a unit (its ledger rows need its name, start and override reason).
    pub fn start_unit(&mut self, name: &str, started_at: &str, override_reason: Option<String>) {
        let checkpoint_rows = match (&self.ledger, self.resume.get(name)) {
            (Some(_), Some(saved)) => vec![saved.plugin_sha256.clone()],
            _ => Vec::new(),
        };
        self.unit = Some(CurrentUnit {
            name: name.to_owned(),
            started_at: started_at.to_owned(),
            override_reason,
            checkpoints: 0,
            checkpoint_rows,
        });
        self.checkpoint_failure = None;
    }

    /// Marks the end of the current unit; returns how many checkpoints it saved.
    pub fn end_unit(&mut self) -> u64 {
        self.unit.take().map_or(0, |u| u.checkpoints)
    }

    /// The failure of a checkpoint's commit in the current unit, if one failed.
    pub fn take_checkpoint_failure(&mut self) -> Option<CommitFailure> {
        self.checkpoint_failure.take()
    }

    /// The plugin statements of this run that took a session out of the host's hands
    /// with work that may have been committed (see `db::session_check`), one per
    /// connection: whatever the plugin made of the error, the phase in which one
    /// appears fails, and the report names them.
    pub fn escapes(&self) -> Vec<db::SessionEscape> {
        self.live
            .values()
            .filter_map(|c| c.escape())
            .filter(|e| e.may_have_committed)
            .cloned()
            .collect()
    }

    /// Begins a transaction on every connection, journaling each `begin`.
    pub async fn begin_all(&mut self) -> Result<(), BeginError> {
        self.begin_every(BeginMode::Now).await
    }

    /// Begins a transaction on every connection in which even read-write ones are
    /// read-only in the session (`configure` and `list-units` run before the backup;
    /// see [`db::Connection::begin_read_only_phase`]), journaling each `begin`.
    pub async fn begin_all_read_only(&mut self) -> Result<(), BeginError> {
        self.begin_every(BeginMode::ReadOnlyPhase).await
    }

    /// Begins a transaction on every connection as `mode` says, journaling each `begin`.
    async fn begin_every(&mut self, mode: BeginMode) -> Result<(), BeginError> {
        for conn in self.live.values_mut() {
            let result = match mode {
                BeginMode::Now => conn.begin().await,
                BeginMode::Deferred => conn.begin_deferred().await,
                BeginMode::ReadOnlyPhase => conn.begin_read_only_phase().await,
            };
            self.tape.transaction(
                conn.name(),
                "begin",
                result.as_ref().err().map(ToString::to_string),
            )?;
            result.map_err(|error| BeginError::Begin {
                connection: conn.name().to_owned(),
                error,
            })?;
        }
        Ok(())
    }

    /// Commits the writable connections (read-only ones are rolled back: they have nothing
    /// to commit), journaling each; stops at the first failure.
    pub async fn commit_all(&mut self) -> Result<(), CommitFailure> {
        for conn in self.live.values_mut() {
            let (op, result) = if conn.access() == Access::ReadWrite {
                ("commit", conn.commit().await)
            } else {
                ("rollback", conn.rollback().await)
            };
            // A journal that cannot record the commit is reported by the footer step.
            let _ = self.tape.transaction(
                conn.name(),
                op,
                result.as_ref().err().map(ToString::to_string),
            );
            result.map_err(|error| CommitFailure {
                message: format!("commit on connection `{}` failed: {error}", conn.name()),
                error,
            })?;
        }
        Ok(())
    }

    /// Rolls back every open transaction (bounded by `timeout`), journaling each.
    pub async fn rollback_all(&mut self, timeout: std::time::Duration) {
        for conn in self.live.values_mut() {
            if !conn.in_transaction() {
                continue;
            }
            let error = match tokio::time::timeout(timeout, conn.rollback()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    tracing::warn!(
                        connection = conn.name(),
                        "rollback failed (the server discards the transaction when the connection closes): {e}"
                    );
                    Some(e.to_string())
                }
                Err(_) => {
                    // The session is stuck behind a statement the server is still running
                    // (a timeout stopped the plugin mid-call): cancel it on the server, so
                    // that its locks go now, then try the rollback once more.
                    conn.cancel_server_statement().await;
                    match tokio::time::timeout(timeout, conn.rollback()).await {
                        Ok(Ok(())) => None,
                        _ => {
                            tracing::warn!(
                                connection = conn.name(),
                                "rollback timed out; the connection will be closed"
                            );
                            Some("timed out".to_owned())
                        }
                    }
                }
            };
            let _ = self.tape.transaction(conn.name(), "rollback", error);
        }
    }

    /// Writes the current unit's ledger row with `status` (and a checkpoint's `state`) on
    /// every writable connection, inside the open transactions, replacing its checkpoint row.
    /// Does nothing without a ledger (replays, dry-runs) or outside a unit.
    pub async fn record_unit(
        &mut self,
        status: &str,
        state: Option<&str>,
    ) -> Result<(), CommitFailure> {
        let (Some(ctx), Some(unit)) = (&self.ledger, &self.unit) else {
            return Ok(());
        };
        let journal_hash = self.tape.head().unwrap_or_default();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let op = if status == ledger::STATUS_CHECKPOINT {
            "record-checkpoint"
        } else {
            "record-ledger"
        };
        for conn in self.live.values_mut() {
            if conn.access() != Access::ReadWrite {
                continue;
            }
            let row = LedgerRow {
                plugin_name: ctx.plugin_name.clone(),
                unit: unit.name.clone(),
                plugin_sha256: ctx.plugin_sha256.clone(),
                plugin_version: ctx.plugin_version.clone(),
                run_id: ctx.run_id.clone(),
                status: status.to_owned(),
                started_at: unit.started_at.clone(),
                finished_at: now.clone(),
                rows_written: self.writes.get(conn.name()).map_or(0, |w| w.rows as i64),
                journal_id: ctx.journal_id.clone(),
                journal_hash: journal_hash.clone(),
                override_reason: unit.override_reason.clone(),
            };
            let recorded = ctx
                .ledger
                .record(conn, &row, state, &unit.checkpoint_rows)
                .await;
            let _ = self.tape.transaction(
                conn.name(),
                op,
                recorded.as_ref().err().map(ToString::to_string),
            );
            recorded.map_err(|error| CommitFailure {
                message: format!(
                    "recording the unit in the ledger `{}` on `{}` failed: {error}",
                    ctx.ledger.table(),
                    conn.name()
                ),
                error,
            })?;
        }
        Ok(())
    }

    /// `checkpoint.save` on live connections: the ledger's checkpoint row, commit, begin.
    /// In a dry-run (no ledger) nothing is committed and the plan counts the checkpoint.
    async fn save_checkpoint(&mut self, state: &str) -> CallResult {
        let Some(unit) = &self.unit else {
            return error_result(DbError::usage(
                "checkpoint.save is only allowed inside run-unit: configure, list-units and verify run in transactions that are rolled back",
            ));
        };
        if !self.live_cursors.is_empty() {
            return error_result(DbError::usage(
                "checkpoint.save with a cursor open: read the cursor to its end (or drop it) before saving, since the commit would end it",
            ));
        }
        let unit = unit.name.clone();
        if let Some(plan) = &self.plan {
            crate::tape::lock(plan).add_checkpoint(&unit);
            return CallResult::Unit;
        }
        if self.ledger.is_none() {
            return CallResult::Unit;
        }
        let committed = match self
            .record_unit(ledger::STATUS_CHECKPOINT, Some(state))
            .await
        {
            Ok(()) => self.commit_all().await,
            Err(e) => Err(e),
        };
        let outcome = match committed {
            Ok(()) => self
                .begin_every(BeginMode::Deferred)
                .await
                .map_err(|e| CommitFailure {
                    message: format!("cannot begin the transactions after the checkpoint: {e}"),
                    error: match e {
                        BeginError::Begin { error, .. } => error,
                        other @ BeginError::Tape(_) => DbError::usage(other.to_string()),
                    },
                }),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                if let (Some(unit), Some(ledger)) = (&mut self.unit, &self.ledger) {
                    unit.checkpoints += 1;
                    // This run's checkpoint row replaced the earlier ones.
                    unit.checkpoint_rows = vec![ledger.plugin_sha256.clone()];
                    // `last` now answers this state: a unit run again after a conflict
                    // (`[limits] conflict_retries`) resumes after the batches committed in
                    // this run, not from where the run started.
                    self.resume.insert(
                        unit.name.clone(),
                        CheckpointRow {
                            unit: unit.name.clone(),
                            plugin_sha256: ledger.plugin_sha256.clone(),
                            state: state.to_owned(),
                            run_id: ledger.run_id.clone(),
                            saved_at: chrono::Utc::now()
                                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        },
                    );
                }
                CallResult::Unit
            }
            Err(failure) => {
                let message = format!("checkpoint.save failed: {}", failure.message);
                let result = error_result(DbError {
                    kind: failure.error.kind,
                    code: failure.error.code.clone(),
                    message: message.clone(),
                });
                self.checkpoint_failure = Some(CommitFailure {
                    message,
                    error: failure.error,
                });
                result
            }
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

    /// How many connections are read-write (live or recorded alike).
    pub fn writable_count(&self) -> usize {
        self.infos
            .values()
            .filter(|i| i.access == Access::ReadWrite)
            .count()
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

    /// Closes every connection (rolling back whatever is still open), each within a bound:
    /// a session stuck behind a statement the server still runs is cancelled on the server
    /// and then dropped, so that closing never waits for a runaway statement.
    pub async fn close(self) {
        for (_, conn) in self.live {
            let name = conn.name().to_owned();
            let cancel = conn.canceller();
            if tokio::time::timeout(CLOSE_TIMEOUT, conn.close())
                .await
                .is_err()
            {
                tracing::warn!(connection = %name, "closing timed out; the statement still running was cancelled and the connection dropped");
                cancel.cancel().await;
            }
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
                // After a failed checkpoint the unit's transactions are gone on some
                // connections: a statement now would commit on its own, outside the unit.
                let result = match &self.checkpoint_failure {
                    Some(failure) => error_result(DbError::usage(format!(
                        "no statement runs after a failed checkpoint in this unit ({})",
                        failure.message
                    ))),
                    None => self.run_live(&call).await,
                };
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

    /// Answers a `checkpoint` call from the tape or runs it live (and records it).
    pub(crate) async fn checkpoint(&mut self, call: HostCall) -> wasmtime::Result<CallResult> {
        let result = match self.tape.answer(&call).map_err(wasmtime::Error::new)? {
            Answer::Recorded(result) => result,
            Answer::Live => {
                let result = match &call {
                    HostCall::CheckpointLast => CallResult::Checkpoint {
                        // No ledger: a dry-run, which always starts afresh.
                        state: match (&self.ledger, &self.unit) {
                            (Some(_), Some(unit)) => {
                                self.resume.get(&unit.name).map(|c| c.state.clone())
                            }
                            _ => None,
                        },
                    },
                    HostCall::CheckpointSave { state } => self.save_checkpoint(state).await,
                    _ => unreachable!("only checkpoint calls come here"),
                };
                self.tape
                    .record(&call, &result)
                    .map_err(wasmtime::Error::new)?;
                result
            }
        };
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
            HostCall::Log { .. }
            | HostCall::Progress { .. }
            | HostCall::Check { .. }
            | HostCall::BackupSnapshot { .. }
            | HostCall::BackupList
            | HostCall::BackupVerify { .. }
            | HostCall::CheckpointSave { .. }
            | HostCall::CheckpointLast => {
                unreachable!(
                    "log, checks, backup and checkpoint calls belong to their own capabilities"
                )
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
pub(crate) fn unexpected(result: CallResult) -> wasmtime::Error {
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

/// The recorded `db-error` of a failed call (for interfaces that share `db-error`).
pub(crate) fn error_from_result(result: CallResult) -> wasmtime::Result<types::DbError> {
    match failure::<()>(result)? {
        Err(e) => Ok(e),
        Ok(()) => unreachable!("failure never succeeds"),
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
