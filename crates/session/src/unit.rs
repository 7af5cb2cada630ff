//! The unit being run on a session: its ledger rows, its checkpoints and where it
//! resumes.
//!
//! A unit's `finished` row is written on every writable connection inside the
//! unit's transactions, just before they commit ([`Session::commit_unit`]), so
//! the row and the work it seals commit together or not at all. A checkpoint
//! (`checkpoint.save`) writes the unit's `checkpoint` row with the plugin's
//! state the same way, commits, and begins again lazily
//! ([`BeginMode::Deferred`]); the next row of the unit replaces it. Without a
//! ledger (dry-runs) nothing is written or committed: the checkpoint is only
//! shown to the [`CallObserver`](super::CallObserver).
//!
//! A non-transactional unit ([`Session::set_unit_non_transactional`]) runs with
//! no transaction open: its `finished` row gets one of its own at its end, after
//! the unit succeeded; it cannot save checkpoints.
//!
//! `checkpoint.last` answers the state of the unit's last checkpoint: saved by
//! an earlier unfinished run, or by this run (a unit retried after a conflict
//! resumes after the batches this run committed).

use std::collections::BTreeMap;

use crate::tape::{Answer, TapeError};
use migrun_db::ledger::{self, CheckpointRow, Ledger, LedgerRow, UnitKey};
use migrun_db::{Access, DbError, DbErrorKind};
use migrun_journal::{CallResult, HostCall};

use super::calls::error_result;
use super::{BeginMode, Session, SessionError};

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
pub(super) struct CurrentUnit {
    /// Its ledger identity (name and scope); checkpoints and rows are keyed by it.
    pub(super) key: UnitKey,
    /// An always-run unit replaces its own `finished` row instead of adding one.
    always_run: bool,
    started_at: String,
    override_reason: Option<String>,
    checkpoints: u64,
    /// Per connection, the rows the unit's last committed checkpoint sealed, earlier runs'
    /// included: what stays written whatever happens to the open batch.
    kept: BTreeMap<String, u64>,
    /// Per connection, the rows an earlier unfinished run's checkpoint had sealed (read once,
    /// at this run's first ledger row of the unit).
    carried: Option<BTreeMap<String, u64>>,
    /// Per connection, the session's write count when that checkpoint committed (reset with
    /// the counts when a retried unit's open batch is rolled back).
    pub(super) counted_at_checkpoint: BTreeMap<String, u64>,
    /// The builds whose checkpoint row of this unit exists in the ledger (the earlier run's,
    /// then this run's once it saved one): the next ledger row replaces them.
    checkpoint_rows: Vec<String>,
    /// `false` for a unit declared non-transactional (contract 0.2.0): its statements run in
    /// autocommit, and only its ledger row gets a transaction (see [`Session::commit_unit`]).
    transactional: bool,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Session {
    /// Lets unit ends and checkpoints write ledger rows (live runs only), and hands over the
    /// checkpoints earlier unfinished runs saved, for `checkpoint.last`, keyed by unit and scope.
    pub fn set_ledger(&mut self, ledger: RunLedger, resume: BTreeMap<UnitKey, CheckpointRow>) {
        self.ledger = Some(ledger);
        self.resume = resume;
    }

    /// The ledger a live run records in.
    pub fn ledger(&self) -> Option<&RunLedger> {
        self.ledger.as_ref()
    }

    /// The checkpoint `unit` (with its scope) resumes from, if an unfinished run (or this
    /// one) saved one. Another scope's checkpoint is another unit's.
    pub fn resume_point(&self, unit: &UnitKey) -> Option<&CheckpointRow> {
        self.resume.get(unit)
    }

    /// Marks the start of a unit (its ledger rows need its key, start and override reason;
    /// an `always_run` unit's row replaces the one its earlier run left).
    pub fn start_unit(
        &mut self,
        key: &UnitKey,
        always_run: bool,
        started_at: &str,
        override_reason: Option<String>,
    ) {
        let checkpoint_rows = match (&self.ledger, self.resume.get(key)) {
            (Some(_), Some(saved)) => vec![saved.plugin_sha256.clone()],
            _ => Vec::new(),
        };
        self.unit = Some(CurrentUnit {
            key: key.clone(),
            always_run,
            started_at: started_at.to_owned(),
            override_reason,
            checkpoints: 0,
            kept: BTreeMap::new(),
            carried: None,
            counted_at_checkpoint: BTreeMap::new(),
            checkpoint_rows,
            transactional: true,
        });
        self.checkpoint_failure = None;
        for conn in self.live.values_mut() {
            conn.reset_bulk_counts();
        }
        if let Some(digester) = &mut self.digester {
            digester.take();
        }
        if let Some(gate) = &mut self.gate {
            let resumed = self.resume.get(key).map(|c| c.state.as_str());
            gate.unit_started(key, resumed);
        }
    }

    /// Declares the current unit non-transactional (contract 0.2.0 `transactional: false`):
    /// the runner opens no transaction around it, so each of its statements commits on its
    /// own. From then on, until the unit ends: every database call is synced to the journal
    /// once recorded (what it committed is on disk in the journal right after), a
    /// `bulk-insert` and a `checkpoint.save` are refused
    /// ([`Session::non_transactional_refusal`]), and [`Session::commit_unit`] writes the
    /// ledger row in a transaction of its own.
    pub fn set_unit_non_transactional(&mut self) {
        if let Some(unit) = &mut self.unit {
            unit.transactional = false;
        }
    }

    /// Whether a unit declared non-transactional is running.
    pub fn in_non_transactional_unit(&self) -> bool {
        self.unit.as_ref().is_some_and(|u| !u.transactional)
    }

    /// Why `what` is refused in the current unit, if it is non-transactional.
    ///
    /// A bulk insert writes many rows that autocommit would leave half-written after a
    /// failure, and it has no `IF NOT EXISTS` / `ON CONFLICT` form, so the rerun a failure
    /// calls for would insert them twice: a non-transactional unit could not be made safe
    /// to rerun. The structured writes of contract 0.2.0 (`bulk-update`, `-upsert`, `-delete`)
    /// are refused likewise: they stage and chunk their rows inside a transaction, so that a
    /// call writes all its rows or none. A checkpoint commits a batch of a unit's transaction; such a unit has no
    /// transaction, and its rerun starts over anyway. Both belong in a transactional unit.
    pub fn non_transactional_refusal(&self, what: &str) -> Option<DbError> {
        let unit = self.unit.as_ref().filter(|u| !u.transactional)?;
        Some(DbError::new(
            DbErrorKind::Refused,
            format!(
                "{what} is refused in unit `{}`, which is declared non-transactional: its statements \
                 commit one by one and a failed unit runs again from its start, so it may only run \
                 statements that are safe to repeat (`CREATE INDEX CONCURRENTLY IF NOT EXISTS`); \
                 move bulk inserts and checkpointed batches into a transactional unit",
                unit.key
            ),
        ))
    }

    /// Rows this run's checkpoints of the current unit committed (they stay whatever happens
    /// to the open batch), over every writable connection.
    pub fn kept_rows(&self) -> u64 {
        let Some(unit) = &self.unit else {
            return 0;
        };
        let carried: u64 = unit.carried.iter().flat_map(|c| c.values()).sum();
        unit.kept.values().sum::<u64>().saturating_sub(carried)
    }

    /// The rows the current unit has written on `conn` in all, earlier runs' checkpoints
    /// included: what its ledger row records.
    fn unit_rows(&self, unit: &CurrentUnit, conn: &str) -> u64 {
        let now = self.writes.get(conn).map_or(0, |w| w.rows);
        let base = unit
            .kept
            .get(conn)
            .copied()
            .or_else(|| unit.carried.as_ref().and_then(|c| c.get(conn).copied()))
            .unwrap_or(0);
        base + now.saturating_sub(unit.counted_at_checkpoint.get(conn).copied().unwrap_or(0))
    }

    /// Reads, once per unit, what an earlier unfinished run's checkpoint row recorded per
    /// connection (nothing when the unit starts afresh or resumes this run's own checkpoint).
    async fn load_carried_rows(&mut self) -> Result<(), SessionError> {
        let (Some(ctx), Some(unit)) = (&self.ledger, &self.unit) else {
            return Ok(());
        };
        if unit.carried.is_some() {
            return Ok(());
        }
        let earlier = self
            .resume
            .get(&unit.key)
            .filter(|saved| saved.run_id != ctx.run_id)
            .map(|saved| saved.plugin_sha256.clone());
        let (ledger, plugin, name) = (
            ctx.ledger.clone(),
            ctx.plugin_name.clone(),
            unit.key.clone(),
        );
        let mut carried = BTreeMap::new();
        if let Some(sha256) = earlier {
            for conn in self.live.values_mut() {
                if conn.access() != Access::ReadWrite {
                    continue;
                }
                let rows = ledger
                    .checkpoint_rows_written(conn, &plugin, &name, &sha256)
                    .await
                    .map_err(|error| SessionError::Ledger {
                        connection: conn.name().to_owned(),
                        table: ledger.table().to_owned(),
                        error,
                    })?;
                carried.insert(conn.name().to_owned(), rows);
            }
        }
        if let Some(unit) = &mut self.unit {
            unit.carried = Some(carried);
        }
        Ok(())
    }

    /// Marks the end of the current unit; returns how many checkpoints it saved.
    pub fn end_unit(&mut self) -> u64 {
        self.unit.take().map_or(0, |u| u.checkpoints)
    }

    /// The failure of a checkpoint's commit in the current unit, if one failed.
    pub fn take_checkpoint_failure(&mut self) -> Option<SessionError> {
        self.checkpoint_failure.take()
    }

    /// The unit's end: its `finished` ledger row on every writable connection, inside the
    /// open transactions, then the commit ([`Session::commit_all`]). Without a ledger
    /// (replays) only the commit.
    ///
    /// A non-transactional unit has no open transaction: its statements committed one by
    /// one as they ran. Its ledger row gets transactions of its own, begun here, after the
    /// unit returned success, so a unit that failed (or a crash before this point) leaves
    /// no row and runs again on the next run.
    pub async fn commit_unit(&mut self) -> Result<(), SessionError> {
        self.finish_streams().await?;
        if self.in_non_transactional_unit() {
            // A cursor the plugin left open holds its connection; a commit would close it,
            // and so does this, before the row's transaction begins.
            for (_, (conn, handle)) in std::mem::take(&mut self.live_cursors) {
                if let Some(conn) = self.live.get_mut(&conn) {
                    conn.close_cursor(&handle).await;
                }
            }
            self.begin_all(BeginMode::Now).await?;
        }
        self.record_unit(ledger::STATUS_FINISHED, None).await?;
        self.commit_all().await
    }

    /// Writes the current unit's ledger row with `status` (and a checkpoint's `state`) on
    /// every writable connection, inside the open transactions, replacing its checkpoint row.
    /// Does nothing without a ledger (replays, dry-runs) or outside a unit.
    async fn record_unit(&mut self, status: &str, state: Option<&str>) -> Result<(), SessionError> {
        self.load_carried_rows().await?;
        let (Some(ctx), Some(unit)) = (&self.ledger, &self.unit) else {
            return Ok(());
        };
        let rows: BTreeMap<String, u64> = self
            .live
            .values()
            .filter(|c| c.access() == Access::ReadWrite)
            .map(|c| (c.name().to_owned(), self.unit_rows(unit, c.name())))
            .collect();
        let finished_at = now();
        let op = if status == ledger::STATUS_CHECKPOINT {
            "record-checkpoint"
        } else {
            "record-ledger"
        };
        // With several lanes (`--jobs`) the `record-*` entries go first (the first one
        // together with the head it is anchored at) and a failed row adds one with its error.
        let first = self
            .live
            .values()
            .find(|c| c.access() == Access::ReadWrite)
            .map(|c| c.name().to_owned())
            .unwrap_or_default();
        let (journal_hash, laned) = self.tape.anchor(&first, op)?.unwrap_or_default();
        for conn in self.live.values_mut() {
            if conn.access() != Access::ReadWrite {
                continue;
            }
            if laned && conn.name() != first {
                self.tape.transaction(conn.name(), op, None)?;
            }
            let row = LedgerRow {
                plugin_name: ctx.plugin_name.clone(),
                unit: unit.key.unit.clone(),
                scope: unit.key.scope.clone(),
                plugin_sha256: ctx.plugin_sha256.clone(),
                plugin_version: ctx.plugin_version.clone(),
                run_id: ctx.run_id.clone(),
                status: status.to_owned(),
                started_at: unit.started_at.clone(),
                finished_at: finished_at.clone(),
                rows_written: rows.get(conn.name()).copied().unwrap_or(0) as i64,
                journal_id: ctx.journal_id.clone(),
                journal_hash: journal_hash.clone(),
                override_reason: unit.override_reason.clone(),
            };
            let recorded = ctx
                .ledger
                .record(
                    conn,
                    &row,
                    state,
                    &unit.checkpoint_rows,
                    // Its checkpoint rows too: the key holds no status, so one row per build.
                    unit.always_run,
                )
                .await;
            if !laned || recorded.is_err() {
                let _ = self.tape.transaction(
                    conn.name(),
                    op,
                    recorded.as_ref().err().map(ToString::to_string),
                );
            }
            recorded.map_err(|error| SessionError::Ledger {
                connection: conn.name().to_owned(),
                table: ctx.ledger.table().to_owned(),
                error,
            })?;
        }
        Ok(())
    }

    /// Stores the journal's `final_hash` in every ledger row this run committed on every
    /// writable connection ([`Ledger::seal_run`]), after the journal's footer is synced,
    /// outside any unit. The rows' `journal_hash` anchors keep the journal checkable up to
    /// each commit; the final hash keeps its end — the verify phase, the footer —
    /// checkable against the database too. Does nothing without a ledger (dry-runs,
    /// replays). Every connection is tried; the first failure is returned.
    pub async fn seal_run(&mut self, final_hash: &str) -> Result<(), SessionError> {
        let Some(ctx) = &self.ledger else {
            return Ok(());
        };
        let mut first_error = None;
        for conn in self.live.values_mut() {
            if conn.access() != Access::ReadWrite {
                continue;
            }
            if conn.in_transaction() {
                tracing::warn!(
                    connection = conn.name(),
                    "a transaction is still open: the journal's final hash is not stored there"
                );
                continue;
            }
            match ctx.ledger.seal_run(conn, &ctx.run_id, final_hash).await {
                Ok(rows) => tracing::debug!(
                    connection = conn.name(),
                    rows,
                    "the journal's final hash is in the ledger"
                ),
                Err(error) => {
                    tracing::error!(
                        connection = conn.name(),
                        "the journal's final hash could not be stored in the ledger: {error}"
                    );
                    first_error.get_or_insert(SessionError::Ledger {
                        connection: conn.name().to_owned(),
                        table: ctx.ledger.table().to_owned(),
                        error,
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// `checkpoint.last`: the state the current unit resumes from, answered by the tape
    /// in replays. `None` in a dry-run, which always starts afresh.
    pub fn last_checkpoint(&mut self) -> Result<CallResult, TapeError> {
        let call = HostCall::CheckpointLast;
        if let Answer::Recorded(result) = self.tape.answer(&call)? {
            return Ok(result);
        }
        let state = match (&self.ledger, &self.unit) {
            (Some(_), Some(unit)) => self.resume.get(&unit.key).map(|c| c.state.clone()),
            _ => None,
        };
        let result = CallResult::Checkpoint { state };
        self.tape.record(&call, &result)?;
        Ok(result)
    }

    /// `checkpoint.save(state)`: answered by the tape in replays, else run live and recorded.
    pub async fn save_checkpoint(&mut self, state: String) -> Result<CallResult, TapeError> {
        let call = HostCall::CheckpointSave {
            state: state.clone(),
        };
        if let Answer::Recorded(result) = self.tape.answer(&call)? {
            return Ok(result);
        }
        let result = self.save_live(&state).await;
        self.tape.record(&call, &result)?;
        Ok(result)
    }

    /// `checkpoint.save` on live connections: the ledger's checkpoint row, commit, begin.
    /// Without a ledger (a dry-run) nothing is committed; the observer counts the checkpoint.
    async fn save_live(&mut self, state: &str) -> CallResult {
        let Some(unit) = &self.unit else {
            return error_result(DbError::usage(
                "checkpoint.save is only allowed inside run-unit: configure, list-units and verify run in transactions that are rolled back",
            ));
        };
        if let Some(refused) = self.non_transactional_refusal("checkpoint.save") {
            return error_result(refused);
        }
        if !self.live_cursors.is_empty() {
            return error_result(DbError::usage(
                "checkpoint.save with a cursor open: read the cursor to its end (or drop it) before saving, since the commit would end it",
            ));
        }
        let unit = unit.key.unit.clone();
        let dry = self.ledger.is_none();
        let streamed = match self.finish_streams().await {
            // The segment is complete once the streams ended: the gate sees it before it commits.
            Ok(()) => self
                .end_segment(Some(state))
                .map_err(|message| SessionError::Refused {
                    error: DbError::new(DbErrorKind::Refused, message),
                }),
            Err(e) => Err(e),
        };
        let committed = match streamed {
            // A dry-run commits nothing, but its streams end here as a run's would.
            Ok(()) if dry => {
                self.checkpoint_saved(&unit);
                return CallResult::Unit;
            }
            Ok(()) => match self
                .record_unit(ledger::STATUS_CHECKPOINT, Some(state))
                .await
            {
                Ok(()) => self.commit_all().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let outcome = match committed {
            Ok(()) => self
                .begin_all(BeginMode::Deferred)
                .await
                .map_err(|e| SessionError::BeginAfterCheckpoint(Box::new(e))),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                let sealed: Vec<(String, u64, u64)> = match &self.unit {
                    Some(unit) => self
                        .live
                        .values()
                        .filter(|c| c.access() == Access::ReadWrite)
                        .map(|c| {
                            let name = c.name().to_owned();
                            let counted = self.writes.get(&name).map_or(0, |w| w.rows);
                            let total = self.unit_rows(unit, &name);
                            (name, total, counted)
                        })
                        .collect(),
                    None => Vec::new(),
                };
                if let (Some(unit), Some(ledger)) = (&mut self.unit, &self.ledger) {
                    unit.checkpoints += 1;
                    for (name, total, counted) in sealed {
                        unit.kept.insert(name.clone(), total);
                        unit.counted_at_checkpoint.insert(name, counted);
                    }
                    // This run's checkpoint row replaced the earlier ones.
                    unit.checkpoint_rows = vec![ledger.plugin_sha256.clone()];
                    // `last` now answers this state: a unit run again after a conflict
                    // (`[limits] conflict_retries`) resumes after the batches committed in
                    // this run, not from where the run started.
                    self.resume.insert(
                        unit.key.clone(),
                        CheckpointRow {
                            unit: unit.key.unit.clone(),
                            scope: unit.key.scope.clone(),
                            plugin_sha256: ledger.plugin_sha256.clone(),
                            state: state.to_owned(),
                            run_id: ledger.run_id.clone(),
                            saved_at: now(),
                        },
                    );
                }
                self.checkpoint_saved(&unit);
                CallResult::Unit
            }
            Err(failure) => {
                let failure = SessionError::Checkpoint(Box::new(failure));
                let cause = failure.db_error();
                let result = error_result(DbError {
                    kind: cause.map_or(DbErrorKind::Usage, |e| e.kind),
                    code: cause.and_then(|e| e.code.clone()),
                    message: failure.to_string(),
                });
                self.checkpoint_failure = Some(failure);
                result
            }
        }
    }

    fn checkpoint_saved(&mut self, unit: &str) {
        if let Some(observer) = &mut self.observer {
            observer.checkpoint_saved(unit);
        }
    }
}
