//! What a run tells the outside world while it happens.
//!
//! The library never prints. The CLI implements [`RunObserver`] to draw
//! progress bars and lines; tests use the default, silent one. Everything an
//! observer sees also ends up in the run's report (`migrun::run::RunReport`).

use serde::Serialize;

pub use migrun_sql::lint::LockWarning;
pub use migrun_types::Level;

/// One structured message from the plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEvent {
    /// The unit running when it was written, if any.
    pub unit: Option<String>,
    /// Its level.
    pub level: Level,
    /// The message.
    pub message: String,
    /// Structured fields.
    pub fields: Vec<(String, String)>,
}

/// The plugin's messages the host did not keep, past its byte budget (see
/// [`crate::capability::log`]); the journal still holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MessagesNotKept {
    /// Messages not kept, every level.
    pub messages: u64,
    /// Of them, warnings.
    pub warnings: u64,
    /// Of them, errors.
    pub errors: u64,
    /// Bytes the plugin sent in them.
    pub bytes: u64,
}

impl MessagesNotKept {
    /// Counts one message of `level` and `bytes`.
    pub fn count(&mut self, level: Level, bytes: u64) {
        self.messages += 1;
        self.bytes += bytes;
        match level {
            Level::Warn => self.warnings += 1,
            Level::Error => self.errors += 1,
            _ => {}
        }
    }

    /// Whether nothing was left out.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }
}

/// The plugin's checks the host did not keep, past its byte budget (see
/// [`crate::capability::checks`]). A failed one still fails the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChecksNotKept {
    /// Passed checks not kept.
    pub passed: u64,
    /// Failed checks not kept.
    pub failed: u64,
    /// Bytes of names and details the plugin sent in them.
    pub bytes: u64,
}

impl ChecksNotKept {
    /// Whether nothing was left out.
    pub fn is_empty(&self) -> bool {
        self.passed == 0 && self.failed == 0
    }
}

/// Progress of a named task inside a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The unit running.
    pub unit: Option<String>,
    /// The task.
    pub task: String,
    /// Items done.
    pub done: u64,
    /// Items in all, when known.
    pub total: Option<u64>,
}

/// One verification result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// The unit that reported it, or `None` for `verify`.
    pub unit: Option<String>,
    /// The check's name.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Human-readable detail.
    pub detail: String,
}

/// How a unit that ran ended, for observers that count units: an overall progress bar,
/// `--json` events for dashboards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitEnd {
    /// The unit.
    pub unit: String,
    /// Its scope (contract 0.2.0), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Its status as the report says it (`committed`, `failed`, `dry-run`).
    pub status: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Receives a run's events as they happen. Every method defaults to doing nothing.
pub trait RunObserver: Send + Sync {
    /// A phase (`describe`, a unit, `verify`) is starting.
    fn phase_started(&self, _phase: &str) {}
    /// A phase ended; `ok` says whether it succeeded.
    fn phase_finished(&self, _phase: &str, _ok: bool) {}
    /// The plugin logged a message.
    fn log(&self, _event: &LogEvent) {}
    /// The plugin reported progress.
    fn progress(&self, _progress: &Progress) {}
    /// The plugin reported a check.
    fn check(&self, _check: &CheckResult) {}
    /// The plugin's messages passed the host's byte budget: later ones are not shown
    /// (called once per run).
    fn messages_not_kept(&self) {}
    /// The plugin's checks passed the host's byte budget: later ones are not shown
    /// (called once per run).
    fn checks_not_kept(&self) {}
    /// A real run's lint found a locking hazard (seed 003's anti-patterns) in the statement
    /// of `unit` about to run: told before the statement runs, so the operator reads it
    /// while the lock is being taken rather than after. The run is not changed by it.
    fn lock_warning(&self, _unit: Option<&str>, _warning: &LockWarning) {}
    /// The units are chosen: `selected` of them, of which `to_run` will run (the others are
    /// skipped: finished already, or by the plugin). Told once, before the first unit, so
    /// an observer can show one bar over the units rather than a line per unit.
    fn units_planned(&self, _selected: u64, _to_run: u64) {}
    /// A unit starts running (in whichever `--jobs` worker), after `phase_started`.
    fn unit_started(&self, _unit: &str, _scope: Option<&str>) {}
    /// A unit that ran has ended (committed, failed and rolled back, or a dry-run's), after
    /// `phase_finished`.
    fn unit_finished(&self, _end: &UnitEnd) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl RunObserver for Silent {}
