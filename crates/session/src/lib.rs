//! The session of one run: its named connections (live, or known only by name in a
//! replay), the transactions on them, the unit's ledger rows and checkpoints, and the
//! rows written per connection.
//!
//! The `database` and `checkpoint` capabilities are thin adapters over it (resource
//! handles and WIT types); the runner drives its transactions. It knows nothing of
//! wasmtime, the contract or the runner, and reports its failures as [`SessionError`].
//!
//! # Layout
//!
//! - `mod.rs`: [`Session`], the connections (live or recorded), write counts, closing.
//! - `calls.rs`: the plugin's database calls — answered by the [`Tape`] or run live
//!   (and recorded), observed, counted.
//! - `transaction.rs`: begin, commit and rollback on every connection ([`BeginMode`]).
//! - `unit.rs`: the unit being run, its ledger rows ([`RunLedger`]), checkpoints and
//!   resume points.
//! - `observer.rs`: [`CallObserver`], the hook of the dry-run's plan and lint.
//! - `error.rs`: [`SessionError`].
//!
//! # Invariants
//!
//! - Every call and every transaction statement goes through the [`Tape`]: live runs
//!   record it, replays answer it (transaction control is a no-op there: no connection
//!   is live).
//! - A unit's ledger row is written inside the unit's transaction on every writable
//!   connection, so the row and the work it seals commit together; a checkpoint commits
//!   exactly as a unit's end does, and the next transaction begins lazily.
//!   A non-transactional unit (contract 0.2.0) has no transaction: its statements commit
//!   one by one (each journaled and synced right after), its row is written after it
//!   succeeded in a transaction of its own, and it may not bulk-insert or checkpoint.
//! - After a failed checkpoint no plugin statement runs in that unit (its transactions
//!   are gone on some connections), and the failure is kept for the runner.
//! - Write counts are kept for read-write connections only, per connection, until taken.

#![deny(missing_docs)]

use std::collections::BTreeMap;

use crate::tape::Tape;
use migrun_db::ledger::{CheckpointRow, UnitKey};
use migrun_db::{self as db, Access, Dialect};

mod calls;
mod error;
mod observer;
pub mod tape;
mod transaction;
mod unit;
pub mod written;

#[cfg(test)]
mod tests;

pub use error::SessionError;
pub use observer::CallObserver;
pub use transaction::BeginMode;
pub use unit::RunLedger;
pub use written::{SegmentGate, WrittenRows};

use unit::CurrentUnit;

/// How long closing one connection may take before it is dropped.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Rows a unit wrote through one connection, as counted by the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteCounts {
    /// Statements run through `execute`.
    pub statements: u64,
    /// Rows affected by `execute`, inserted by `bulk-insert` and matched by the bulk writes.
    pub rows: u64,
    /// Calls to `bulk-insert` (not statements: a COPY or a multi-row INSERT the host builds),
    /// counted apart so that a unit that only bulk-inserts does not read as "0 statements".
    pub bulk_inserts: u64,
    /// Calls to `bulk-update`, `bulk-upsert` and `bulk-delete` (contract 0.2.0), counted apart
    /// for the same reason; absent from the report when there were none.
    #[serde(skip_serializing_if = "is_zero")]
    pub bulk_writes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a plugin may know about a connection without a database: its dialect and access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The dialect.
    pub dialect: Dialect,
    /// The access granted.
    pub access: Access,
}

/// The connections of one run, their transactions, the unit's ledger rows and checkpoints.
pub struct Session {
    infos: BTreeMap<String, ConnectionInfo>,
    live: BTreeMap<String, db::Connection>,
    live_cursors: BTreeMap<u64, (String, db::CursorHandle)>,
    next_cursor: u64,
    writes: BTreeMap<String, WriteCounts>,
    tape: Tape,
    observer: Option<Box<dyn CallObserver>>,
    /// Where ledger rows go; `None` in replays and dry-runs (nothing is recorded).
    ledger: Option<RunLedger>,
    /// Checkpoints of unfinished units, by unit: saved by earlier runs, then by this one.
    resume: BTreeMap<UnitKey, CheckpointRow>,
    unit: Option<CurrentUnit>,
    /// A checkpoint whose commit failed: the unit must fail even if the plugin ignores the error.
    checkpoint_failure: Option<SessionError>,
    /// Optional connections (contract 0.2.0) the operator did not configure: opening one
    /// answers `unknown-connection` saying so, which the plugin tests for.
    absent: std::collections::BTreeSet<String>,
    /// The current segment's writes, digested (see [`written`]); only with a `gate`.
    digester: Option<written::WriteDigester>,
    /// Who receives each segment before it commits: the dry-run's plan, or a `--plan` run's
    /// comparison with it.
    gate: Option<Box<dyn SegmentGate>>,
}

impl Session {
    /// No connections yet (before `describe`).
    pub fn empty(tape: Tape) -> Self {
        Session {
            infos: BTreeMap::new(),
            live: BTreeMap::new(),
            live_cursors: BTreeMap::new(),
            next_cursor: 0,
            writes: BTreeMap::new(),
            tape,
            observer: None,
            ledger: None,
            resume: BTreeMap::new(),
            unit: None,
            checkpoint_failure: None,
            absent: std::collections::BTreeSet::new(),
            digester: None,
            gate: None,
        }
    }

    /// Names the optional connections the operator did not configure (not provided: opening
    /// one is an `unknown-connection` error that says so).
    pub fn set_absent(&mut self, names: impl IntoIterator<Item = String>) {
        self.absent = names.into_iter().collect();
    }

    /// Live connections, keyed by the name the plugin declared.
    pub fn live(connections: BTreeMap<String, db::Connection>, tape: Tape) -> Self {
        let mut session = Session::empty(tape);
        session.infos = connections
            .iter()
            .map(|(name, conn)| {
                let info = ConnectionInfo {
                    dialect: conn.dialect(),
                    access: conn.access(),
                };
                (name.clone(), info)
            })
            .collect();
        session.live = connections;
        session
    }

    /// Connections known only by name, dialect and access: every answer comes from the tape.
    pub fn recorded(infos: BTreeMap<String, ConnectionInfo>, tape: Tape) -> Self {
        let mut session = Session::empty(tape);
        session.infos = infos;
        session
    }

    /// Lets `observer` watch every call that runs live (a dry-run's plan and lint).
    pub fn observe_calls(&mut self, observer: Box<dyn CallObserver>) {
        self.observer = Some(observer);
    }

    /// Digests every write of each unit and hands each segment (a unit's writes up to a
    /// checkpoint or its commit) to `gate` before it commits (see [`written`]).
    pub fn gate_segments(&mut self, gate: Box<dyn SegmentGate>) {
        self.digester = Some(written::WriteDigester::default());
        self.gate = Some(gate);
    }

    /// Hands the current segment (a unit's writes since its start or last checkpoint) to the
    /// gate, `checkpoint` being the state of the checkpoint about to commit (`None`: the
    /// unit's end). `Err`: the gate refuses it; it must not commit.
    pub fn end_segment(&mut self, checkpoint: Option<&str>) -> Result<(), String> {
        let (Some(digester), Some(gate), Some(unit)) =
            (&mut self.digester, &mut self.gate, &self.unit)
        else {
            return Ok(());
        };
        gate.segment_ended(&unit.key, checkpoint, digester.take())
    }

    /// Forgets the current segment's writes (rolled back: a unit run again after a
    /// conflict), and tells the gate the unit starts again from where it resumes now.
    pub fn discard_segment(&mut self) {
        if let Some(digester) = &mut self.digester {
            digester.take();
        }
        if let (Some(gate), Some(unit)) = (&mut self.gate, &self.unit) {
            let resumed = self.resume.get(&unit.key).map(|c| c.state.as_str());
            gate.unit_started(&unit.key, resumed);
        }
    }

    /// The dialect and access of the connection `name`, if the plugin declared it.
    pub fn info(&self, name: &str) -> Option<ConnectionInfo> {
        self.infos.get(name).copied()
    }

    /// Every connection's name, dialect and access (live or recorded alike).
    pub fn connection_infos(&self) -> impl Iterator<Item = (&str, ConnectionInfo)> {
        self.infos.iter().map(|(name, info)| (name.as_str(), *info))
    }

    /// How many connections are read-write (live or recorded alike).
    pub fn writable_count(&self) -> usize {
        self.infos
            .values()
            .filter(|i| i.access == Access::ReadWrite)
            .count()
    }

    /// The live connections (none in a replay).
    pub fn connections_mut(&mut self) -> impl Iterator<Item = &mut db::Connection> {
        self.live.values_mut()
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

    /// The write counts since the last [`take_writes`](Self::take_writes).
    pub fn writes(&self) -> &BTreeMap<String, WriteCounts> {
        &self.writes
    }

    /// Takes the write counts since the last call (one unit's worth).
    pub fn take_writes(&mut self) -> BTreeMap<String, WriteCounts> {
        // The counts start again from zero: so does what the unit's last checkpoint had seen.
        if let Some(unit) = &mut self.unit {
            unit.counted_at_checkpoint.clear();
        }
        std::mem::take(&mut self.writes)
    }

    /// Counts `n` rows (and `statements` statements, `bulk_inserts` bulk inserts) written
    /// through `conn`, if it is read-write: a read-only connection writes nothing the report
    /// should count.
    fn count_writes(&mut self, conn: &str, statements: u64, bulk_inserts: u64, n: u64) {
        if self
            .infos
            .get(conn)
            .is_some_and(|i| i.access == Access::ReadWrite)
        {
            let counts = self.writes.entry(conn.to_owned()).or_default();
            counts.statements += statements;
            counts.bulk_inserts += bulk_inserts;
            counts.rows += n;
        }
    }

    /// Counts one bulk write that matched `n` rows through `conn`, if it is read-write.
    fn count_bulk_write(&mut self, conn: &str, n: u64) {
        if self
            .infos
            .get(conn)
            .is_some_and(|i| i.access == Access::ReadWrite)
        {
            let counts = self.writes.entry(conn.to_owned()).or_default();
            counts.bulk_writes += 1;
            counts.rows += n;
        }
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
}
