//! One run of a plugin, from `describe` to `verify`: the flow the CLI and the
//! tests drive. [`run`] reads top to bottom, one named step per line of the flow:
//!
//! 1. resolve the inputs once (`inputs`): instantiate, `describe` (no connection
//!    open yet), configuration values checked, declared writes resolved;
//! 2. open the targets (`targets`): grants checked, every declared connection
//!    opened, each role's privileges read;
//! 3. lock them and read their ledgers (`targets`); prepare a dry-run; create the
//!    journal (`journal`) before any transaction;
//! 4. `configure` and `list-units` in transactions that are rolled back, and the units
//!    chosen (`units`);
//! 5. back up what the plugin declares it writes (`backups`);
//! 6. run each unit in one transaction per connection, committed only when it returns
//!    ok; a failure rolls it back and stops the run (`units`);
//! 7. `verify` inside transactions that are rolled back;
//! 8. close the connections (one owner, `targets::OpenConnections`), seal the journal,
//!    and report (`report`).
//!
//! A **dry-run** is a mode of the same flow, not a separate code path: every
//! connection holds one transaction for the whole run (so later units and
//! `verify` see what earlier units would have written), and it is always
//! rolled back; its calls reach the plan through the session's one observer hook
//! (`plan_observer`). [`replay`] (`run/replay.rs`) drives the same runner on a journal,
//! with no database.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capability::database::DatabaseCtx;
use crate::config::RunConfig;
use crate::contract::{ContractVersion, PluginInfo};
use crate::db::{self, Access, DbError, Dialect};
use crate::journal::JournalError;
use crate::lock::LockError;
use crate::observer::{CheckResult, LogEvent, RunObserver, Silent};
use crate::plan::Plan;
use crate::runtime::sandbox::SandboxSeeds;
use crate::runtime::{CallError, LoadError, LoadedPlugin, PluginInstance, RunState, Runtime};
use crate::session::{Session, SessionError, WriteCounts};
use crate::tape::{Tape, TapeError};

mod backups;
pub use backups::ReusedBackup;
mod inputs;
mod journal;
mod lint_observer;
pub use lint_observer::UnitLockWarning;
mod parallel;
mod plan_observer;
mod replay;
mod report;
mod targets;
mod units;

pub use replay::{RecordedEnd, ReplayOutcome, ReplayReport, replay};

/// How a run treats its databases, the one question the runner asks before it begins,
/// commits, backs up or says what a failure left behind. A type rather than a
/// `dry_run` flag beside an "is the tape live" test, so that every place that
/// depends on it says what each mode does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// A real run: each unit in its own transactions, committed with its ledger row.
    Live,
    /// One transaction per connection for the whole run, rolled back at the end; the
    /// plan observes every call; no backup, no ledger.
    DryRun,
    /// No database at all: the plugin re-executes on a journal, every call answered from
    /// it. `of_dry_run`: the recorded run was a dry-run, so the runner follows its path.
    Replay {
        /// Whether the journal is a dry-run's.
        of_dry_run: bool,
    },
}

impl RunMode {
    /// Everything rolls back at the end (a dry-run, or the replay of one): units do not
    /// begin or commit transactions of their own.
    pub fn rolls_back_everything(self) -> bool {
        matches!(self, RunMode::DryRun | RunMode::Replay { of_dry_run: true })
    }

    /// The run talks to real databases (live or dry-run, not a replay).
    pub fn has_databases(self) -> bool {
        !matches!(self, RunMode::Replay { .. })
    }
}

/// How a run should go.
#[derive(Clone)]
pub struct RunOptions {
    /// Roll back everything at the end.
    pub dry_run: bool,
    /// Run only these units (by name), in the plugin's order.
    pub only: Option<Vec<String>>,
    /// Seeds of the deterministic clock and randomness; fresh ones when `None`.
    pub seeds: Option<SandboxSeeds>,
    /// Who hears about progress.
    pub observer: Arc<dyn RunObserver>,
    /// This worker's shard `(index, count)`: it runs only the units whose name hashes to `index`.
    pub shard: Option<(u32, u32)>,
    /// How many units may run at once (`--jobs`; 1 = one after another). Each runs in a
    /// worker of its own: plugin instance, connections, transactions (`run::parallel`).
    pub jobs: u32,
    /// `--keep-going` (`[run] on_unit_failure = "continue"`): a failed unit is rolled back and
    /// the other units still run; the run fails in the end, listing the failed units. A
    /// failure that is not the unit's alone (the journal, the run lock, an interrupt, SQL that
    /// escaped its transaction) still stops the run, and a dry-run always stops at its first
    /// failure (its one transaction per connection was rolled back with it).
    pub keep_going: bool,
    /// How long to wait for another run's lock on a target.
    pub lock_timeout: Duration,
    /// Rerun units the ledger says another build of the plugin finished, for this reason.
    pub allow_plugin_change: Option<String>,
    /// Set to stop the run: the current unit is rolled back at the plugin's next epoch tick.
    pub interrupt: Arc<AtomicBool>,
    /// The operator's explicit choice to take no backup before the run (`--no-backup`).
    pub no_backup: bool,
    /// A MariaDB dry-run without a scratch database (see `db::dry_run`) runs in the real
    /// database with DDL refused, instead of being refused (`--dry-run-unsafe-mariadb`).
    pub unsafe_mariadb_dry_run: bool,
    /// `--plan plan.json`: the approved plan this run must apply exactly (`plan::enforce`):
    /// refused before anything runs when made for another build, configuration or
    /// database; each unit's writes compared with the plan's before they commit. Its seeds
    /// are the run's, unless `seeds` says otherwise.
    pub plan: Option<Arc<Plan>>,
}

impl RunOptions {
    /// The mode these options ask for.
    pub fn mode(&self) -> RunMode {
        if self.dry_run {
            RunMode::DryRun
        } else {
            RunMode::Live
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            only: None,
            seeds: None,
            observer: Arc::new(Silent),
            shard: None,
            jobs: 1,
            keep_going: false,
            lock_timeout: Duration::from_secs(30),
            allow_plugin_change: None,
            interrupt: Arc::new(AtomicBool::new(false)),
            no_backup: false,
            unsafe_mariadb_dry_run: false,
            plan: None,
        }
    }
}

/// Why a run could not start. Nothing was written: no unit ran.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The plugin could not be loaded or instantiated.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A plugin call before the first unit failed.
    #[error("{phase} failed: {error}")]
    Plugin {
        /// `describe`, `configure` or `list-units`.
        phase: &'static str,
        /// Why.
        error: CallError,
    },
    /// The configuration names a key the plugin does not read.
    #[error("unknown config key `{key}`: the plugin reads {known}")]
    UnknownConfigKey {
        /// The key.
        key: String,
        /// The keys it reads.
        known: String,
    },
    /// A declared write names a configuration value (`${key}`) that cannot name a table.
    #[error("connection `{connection}` declares it writes `{declared}`: {problem}")]
    DeclaredWrite {
        /// The connection.
        connection: String,
        /// The name as the plugin declared it.
        declared: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The directory granted to the plugin's `files` (`[files] dir`, `--files`) cannot be opened.
    #[error(
        "the files directory {dir} (granted by [files] dir or --files) cannot be opened: {source}"
    )]
    FilesDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A required configuration key has no value.
    #[error("missing config key `{key}` (required by the plugin: {description})")]
    MissingConfigKey {
        /// The key.
        key: String,
        /// What the plugin says it is for.
        description: String,
    },
    /// The operator granted less than the plugin needs.
    #[error(
        "connection `{connection}`: the plugin needs {needed} access but the config grants only {granted}"
    )]
    AccessDenied {
        /// The connection.
        connection: String,
        /// What the plugin needs.
        needed: Access,
        /// What was granted.
        granted: Access,
    },
    /// `--jobs` could not start its workers the way the run needs them.
    #[error("--jobs: {0}")]
    Jobs(String),
    /// A declared connection could not be opened.
    #[error("connection `{connection}` ({url}): {error}")]
    Connect {
        /// The connection.
        connection: String,
        /// Its URL, password redacted.
        url: String,
        /// Why.
        error: DbError,
    },
    /// A connection's role was refused at start (`db::privileges`).
    #[error(transparent)]
    Privileges(#[from] db::privileges::PrivilegeRefusal),
    /// None of the units `--only` names exists.
    #[error(
        "none of the units given to --only exist ({names}); the plugin's units are {available}"
    )]
    UnknownUnits {
        /// The unknown names.
        names: String,
        /// The units there are.
        available: String,
    },
    /// The journal could not be created or written, or a replay diverged before the first unit.
    #[error(transparent)]
    Tape(#[from] TapeError),
    /// A journal to replay could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The plugin a journal names is not next to it and none was given.
    #[error("the journal's plugin (sha256 {sha256}) is not at {expected}; pass it with --plugin")]
    PluginNotFound {
        /// The sha256 the journal records.
        sha256: String,
        /// Where it was looked for.
        expected: String,
    },
    /// Another run holds a target's lock.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The ledger could not be read or created.
    #[error("connection `{connection}`: ledger table `{table}`: {error}")]
    Ledger {
        /// The connection.
        connection: String,
        /// The table.
        table: String,
        /// Why.
        error: DbError,
    },
    /// A finished unit was run by another build of the plugin.
    #[error(
        "unit `{unit}` was finished by another build of the plugin (ledger sha256 {recorded_sha256}, this plugin {current_sha256}); rerun it with --allow-plugin-change \"<reason>\" or leave it out with --only"
    )]
    PluginChanged {
        /// The unit.
        unit: String,
        /// The sha256 in the ledger.
        recorded_sha256: String,
        /// This plugin's sha256.
        current_sha256: String,
    },
    /// A unit finished on some targets and not others (a crash between two commits).
    #[error(
        "unit `{unit}` finished on {finished_on} but not on {missing_on}: the targets disagree; restore the missing target(s) or finish the unit by hand before rerunning"
    )]
    PartialUnit {
        /// The unit.
        unit: String,
        /// Where it finished.
        finished_on: String,
        /// Where it did not.
        missing_on: String,
    },
    /// The backup before the run could not be taken (nothing was written to any database).
    #[error(
        "backup before the run failed on connection `{connection}`: {error}; no unit ran and no database was changed (fix the backup directory, or run with --no-backup to go without)"
    )]
    Backup {
        /// The connection being backed up (empty when the directory itself failed).
        connection: String,
        /// Why.
        error: crate::backup::BackupError,
    },
    /// A dry-run could not be set up on a connection (nothing ran).
    #[error("connection `{connection}`: cannot prepare the dry-run: {error}")]
    DryRun {
        /// The connection.
        connection: String,
        /// Why.
        error: DbError,
    },
    /// A transaction could not be opened before the first unit.
    #[error(transparent)]
    Transaction(SessionError),

    /// The plan given with `--plan` is not for this run (nothing ran).
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanRefusal),

    /// A plugin statement before the units took a session out of the host's hands.
    #[error(
        "{phase}: the plugin's SQL escaped the host's transaction: {}",
        describe_escapes(escapes)
    )]
    SessionEscaped {
        /// `configure` / `list-units`.
        phase: &'static str,
        /// What was found, per connection.
        escapes: Vec<db::SessionEscape>,
    },
}

/// The consequences of `escapes`, in one sentence each.
fn describe_escapes(escapes: &[db::SessionEscape]) -> String {
    escapes
        .iter()
        .map(db::SessionEscape::consequence)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<SessionError> for RunError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Tape(e) => RunError::Tape(e),
            other => RunError::Transaction(other),
        }
    }
}

impl RunError {
    /// The process exit code for this error: 2, nothing ran; 1 when a plugin
    /// statement escaped its session, since something may have been committed; 5 when the
    /// plan given with `--plan` is not for this run (nothing ran either).
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::SessionEscaped { .. } => 1,
            RunError::Plan(_) => crate::plan::PLAN_MISMATCH_EXIT_CODE,
            _ => 2,
        }
    }
}

/// What became of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitStatus {
    /// It ran and its transactions committed.
    Committed,
    /// It ran in a dry-run; its writes were rolled back with the run.
    DryRun,
    /// It failed; its transactions were rolled back.
    Failed,
    /// It did not run because an earlier unit failed.
    NotRun,
    /// It did not run: the ledger says this plugin build finished it already, or the
    /// plugin listed it as skipped (contract 0.2.0; [`UnitReport::skipped`] holds why).
    Skipped,
    /// `--only` named it, but the plugin has no such unit.
    NotFound,
    /// A dry-run planned it without running it: it is non-transactional (contract 0.2.0),
    /// and what it would commit statement by statement could not be rolled back.
    Planned,
}

impl UnitStatus {
    /// The status as the JSON report spells it (`committed`, `not-run`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            UnitStatus::Committed => "committed",
            UnitStatus::DryRun => "dry-run",
            UnitStatus::Failed => "failed",
            UnitStatus::NotRun => "not-run",
            UnitStatus::Skipped => "skipped",
            UnitStatus::NotFound => "not-found",
            UnitStatus::Planned => "planned",
        }
    }
}

/// One unit's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    /// The unit.
    pub name: String,
    /// Its scope (contract 0.2.0): with the name, its identity in the ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// What became of it.
    pub status: UnitStatus,
    /// Contract 0.2.0: why the plugin skips it (`list-units` said so); it never runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Contract 0.2.0: the unit runs on every run, whatever the ledger says.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub always_run: bool,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Writes per connection, as counted by the host.
    pub writes: BTreeMap<String, WriteCounts>,
    /// Why it was skipped, or that it resumed from a checkpoint, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why it failed (status `failed`): the error the run's failure names for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A `--plan` run: how the unit's writes compared with the plan's (`as-planned`,
    /// `differs`, `not-compared`); absent without `--plan` and for units that did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::plan::PlanOutcome>,
    /// A `--plan` run: the difference that refused the unit (`plan: differs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_difference: Option<crate::plan::PlanMismatch>,
    /// A failed unit's work that stays committed: its checkpoints in this run and the rows
    /// they sealed (only the open batch after the last one was rolled back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<KeptWork>,
    /// `false` for a unit declared non-transactional (contract 0.2.0): it ran in autocommit,
    /// so a failure did not roll back what ran before it. Left out of JSON when `true`.
    #[serde(skip_serializing_if = "is_true")]
    pub transactional: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What a failed unit's checkpoints committed before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KeptWork {
    /// Checkpoints this run committed (each seals one batch).
    pub checkpoints: u64,
    /// Rows they sealed, over every writable connection.
    pub rows: u64,
}

/// A connection as the run used it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionReport {
    /// Its name.
    pub name: String,
    /// The dialect.
    pub dialect: Dialect,
    /// The access the plugin got.
    pub access: Access,
    /// The URL, password redacted.
    pub url: String,
    /// Whether it is the embedded SQLite default.
    pub embedded_default: bool,
    /// Anything the operator should know about how it was opened.
    pub note: Option<String>,
    /// Privileges of its role beyond its tables, found at start (`db::privileges`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileges: Option<db::privileges::PrivilegeWarning>,
}

/// Why a run that had started did not finish.
#[derive(Debug, Serialize)]
pub struct RunFailure {
    /// Where: `unit <name>`, `verify`, `commit of unit <name>`.
    pub phase: String,
    /// Why, for people.
    pub message: String,
    /// What was left unchanged and what was not, for people.
    pub consequence: String,
    /// The typed cause.
    #[serde(skip)]
    pub cause: FailureCause,
}

/// The typed cause of a [`RunFailure`].
#[derive(Debug)]
#[non_exhaustive]
pub enum FailureCause {
    /// A plugin call failed (error value, trap or limit).
    Call(CallError),
    /// A commit failed.
    Commit(DbError),
    /// The journal could not be written, or a replay diverged.
    Tape(TapeError),
    /// A `--plan` run's unit wrote other rows than the plan's: refused and rolled back.
    Plan(crate::plan::PlanMismatch),
}

/// Whether a unit's failure is a conflict that `[limits] conflict_retries` may retry: a
/// database error of kind `conflict` the plugin gave up on, or a commit that failed with one
/// (SQLSTATE 40001/40P01/55P03, MariaDB 1213/1205, SQLite busy/locked).
fn is_conflict(cause: &FailureCause) -> bool {
    match cause {
        FailureCause::Call(CallError::Plugin(crate::contract::PluginError::Database(e)))
        | FailureCause::Commit(e) => e.kind == db::DbErrorKind::Conflict,
        _ => false,
    }
}

/// Everything a run did, success or not.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The plugin's declaration.
    pub plugin: PluginInfo,
    /// sha256 of the component.
    pub plugin_sha256: String,
    /// The contract version it targets.
    pub contract: ContractVersion,
    /// Whether this was a dry-run.
    pub dry_run: bool,
    /// Seeds of the deterministic clock and randomness.
    pub seeds: SandboxSeeds,
    /// The connections used.
    pub connections: Vec<ConnectionReport>,
    /// Optional connections (contract 0.2.0) the operator did not configure: not provided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent_connections: Vec<String>,
    /// The units, in order, including those that did not run.
    pub units: Vec<UnitReport>,
    /// Every check reported.
    pub checks: Vec<CheckResult>,
    /// The plugin's messages, up to a byte bound per run (see `capability::log`).
    pub messages: Vec<LogEvent>,
    /// The messages past that bound: counted, not kept (the journal has them).
    #[serde(skip_serializing_if = "crate::observer::MessagesNotKept::is_empty")]
    pub messages_not_kept: crate::observer::MessagesNotKept,
    /// The checks past their byte bound: counted, not kept (a failed one still fails the run).
    #[serde(skip_serializing_if = "crate::observer::ChecksNotKept::is_empty")]
    pub checks_not_kept: crate::observer::ChecksNotKept,
    /// A real run's lock warnings: the dry-run's lint on every write, told before the
    /// statement ran (a dry-run's are in its plan).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lock_warnings: Vec<UnitLockWarning>,
    /// The failure, if the run did not finish.
    pub failure: Option<RunFailure>,
    /// `--keep-going`: one or more units failed (each rolled back, with its `error`) and
    /// every other selected unit ran; the failure sums them up. Exit code 4.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub kept_going: bool,
    /// Wall time of the whole run, in milliseconds.
    pub duration_ms: u64,
    /// The journal written for this run (none for replays).
    pub journal: Option<JournalSummary>,
    /// What a dry-run would do, per writable connection (schema `migrun.plan/2`; see docs/PLAN.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The plan a `--plan` run applied: what it was for (each unit says how it compared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_plan: Option<AppliedPlan>,
    /// The snapshots the host took before the first write (see `migrun backup`, `migrun restore`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<crate::backup::SnapshotInfo>,
    /// Earlier snapshots of the run lineage that stand for this run's on the connections
    /// where it resumes a checkpointed unit (no new snapshot was taken there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups_reused: Vec<ReusedBackup>,
    /// Why no backup was taken although the configuration asks for one (no unit ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_skipped: Option<String>,
    /// The granted files the plugin read (contract 0.2.0 `files`), by name: size, sha256 and
    /// the bytes read. Their contents are in the journal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_read: Vec<crate::capability::files::FileRead>,
}

/// The plan a `--plan` run applied.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedPlan {
    /// The plan's schema.
    pub schema: String,
    /// The plugin sha256 it was made for (this run's).
    pub plugin_sha256: String,
    /// Units the plan holds.
    pub units_planned: u64,
    /// Units of this run whose writes equalled the plan's and committed.
    pub units_as_planned: u64,
    /// Whether every unit that ran matched the plan (none was refused).
    pub matched: bool,
}

/// Where a run's journal is and what seals it.
#[derive(Debug, Clone, Serialize)]
pub struct JournalSummary {
    /// The journal file.
    pub path: PathBuf,
    /// The hash of its last entry: changing any entry changes it.
    pub final_hash: String,
    /// Entries written.
    pub entries: u64,
    /// Host calls recorded.
    pub calls: u64,
}

impl RunReport {
    /// Whether every check passed.
    pub fn checks_passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok) && self.checks_not_kept.failed == 0
    }

    /// Whether the run finished and every check passed.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none() && self.checks_passed()
    }

    /// The process exit code: 0 success, 1 the run failed, 3 it finished but a check failed,
    /// 4 units failed and the others ran (`--keep-going`), 5 a unit's writes differed from
    /// the plan's (`--plan`), 130 interrupted (SIGINT).
    pub fn exit_code(&self) -> i32 {
        if let Some(RunFailure {
            cause: FailureCause::Call(CallError::Interrupted),
            ..
        }) = &self.failure
        {
            130
        } else if let Some(RunFailure {
            cause: FailureCause::Plan(_),
            ..
        }) = &self.failure
        {
            crate::plan::PLAN_MISMATCH_EXIT_CODE
        } else if self.failure.is_some() && self.kept_going {
            KEPT_GOING_EXIT_CODE
        } else if self.failure.is_some() {
            1
        } else if !self.checks_passed() {
            3
        } else {
            0
        }
    }
}

/// The exit code of a run that went on past failed units (`--keep-going`): each failed unit
/// was rolled back, every other selected unit ran (and committed, or was skipped as finished).
pub const KEPT_GOING_EXIT_CODE: i32 = 4;

/// What `migrun inspect` shows: the plugin's declaration without touching a database.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// sha256 of the component.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// The contract version it targets.
    pub contract: ContractVersion,
    /// What it imports.
    pub imports: Vec<String>,
    /// What it declares.
    pub plugin: PluginInfo,
}

/// Calls `describe`; a failure there means nothing ran. A catch-all declared write
/// ([`crate::backup::catch_all`]) is refused here, before any connection is opened.
async fn describe(instance: &mut PluginInstance) -> Result<PluginInfo, RunError> {
    let info = instance
        .describe()
        .await
        .map_err(|error| RunError::Plugin {
            phase: "describe",
            error,
        })?;
    for need in &info.connections {
        for declared in &need.writes {
            if let Some(problem) = crate::backup::catch_all(declared) {
                return Err(RunError::DeclaredWrite {
                    connection: need.name.clone(),
                    declared: declared.clone(),
                    problem,
                });
            }
        }
    }
    Ok(info)
}

/// Instantiates a plugin and calls `describe`, opening no connection.
pub async fn inspect(plugin: &LoadedPlugin) -> Result<Inspection, RunError> {
    let runtime = Runtime::shared();
    let limits = crate::config::Limits::default();
    let state = RunState::new(
        DatabaseCtx::new(Session::empty(Tape::Off)),
        Arc::new(Silent),
        Tape::Off,
        SandboxSeeds::fresh(),
        &limits,
    );
    let mut instance = PluginInstance::instantiate(runtime, plugin, state, limits).await?;
    let info = describe(&mut instance).await?;
    Ok(Inspection {
        sha256: plugin.sha256.clone(),
        size: plugin.size,
        contract: plugin.contract.clone(),
        imports: plugin.imports(runtime),
        plugin: info,
    })
}

/// Runs `plugin` with `config`. `Err` means it could not start and nothing was
/// written; `Ok` carries the report, which says whether it finished.
///
/// Every run, dry-runs included, writes a journal to `config.journal_dir`
/// (with a copy of the plugin under `plugins/<sha256>.wasm`, where replay finds it).
pub async fn run(
    plugin: &LoadedPlugin,
    config: &RunConfig,
    options: RunOptions,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let (instance, inputs) = inputs::resolve(plugin, config, &options).await?;
    // A plan made for something else is refused before any connection is opened.
    let identity = inputs.plan_identity(plugin);
    if let Some(approved) = &options.plan {
        if options.jobs > 1 {
            return Err(crate::plan::PlanRefusal::Jobs.into());
        }
        if let Some(refusal) = identity.refusal(approved) {
            return Err(refusal.into());
        }
    }
    // Whatever happens from here, the connections are closed once, below.
    let mut open = targets::OpenConnections::new();
    let ran = async {
        let mut connections =
            targets::connect_all(open.host_mut(), &inputs, options.dry_run).await?;
        let (locks, ledgers) = targets::guard_targets(open.host_mut(), &inputs, &options).await?;
        open.hold_locks(locks);
        // The journal exists before anything can be written; failing to create it means nothing ran.
        let header = journal::header(plugin, &inputs, &options, &connections, config);
        let dry_guards = targets::prepare_targets(
            open.host_mut(),
            &mut connections,
            &inputs.info,
            &options,
            &inputs.run_id,
        )
        .await?;
        let recorder = journal::start_journal(
            &config.journal_dir,
            config.shared_plugin_dir.as_deref(),
            &header,
            plugin,
        )?;
        let plan = options.dry_run.then(|| {
            let plan = report::new_plan(&connections);
            crate::tape::lock(&plan).set_identity(&identity, inputs.seeds);
            plan
        });
        targets::limit_statements(open.host_mut(), &inputs, config).await?;
        let identity = journal::identity(plugin, &inputs, &recorder);
        let checkpoints = ledgers.checkpoints.clone();
        let ledger = (!options.dry_run).then(|| {
            (
                units::run_ledger(plugin, &inputs, &identity),
                ledgers.checkpoints,
            )
        });
        let worker_ledger = ledger.clone();
        let tape = Tape::Recording(recorder.clone(), 0);
        let runner = open.hand_over(|live, locks| {
            units::Runner::start(
                instance,
                live,
                tape.clone(),
                plan.as_ref(),
                ledger,
                &options,
                config.limits,
                Arc::new(tokio::sync::Mutex::new(locks)),
            )
        });
        runner.session().set_absent(inputs.absent.iter().cloned());
        runner.instance.state().files.grant(inputs.files.clone());
        let before_run = backups::open_store(runner, &inputs, config, &options, identity)?;
        let (selected, not_found) = runner
            .select_units(&inputs, &options, &ledgers.finished, &plugin.sha256)
            .await?;
        let will_run = backups::WillRun::of(&selected, &checkpoints);
        let backup = backups::back_up(
            runner,
            &before_run,
            plan.as_ref(),
            config,
            &options,
            &will_run,
        )
        .await?;
        // Now the ledger may be created (outside any unit, since DDL commits implicitly on MySQL).
        runner.ensure_ledgers().await?;

        let info = inputs.info.clone();
        let mut report = RunReport::begin(
            plugin,
            info,
            options.dry_run,
            inputs.seeds,
            connections,
            backup,
        );
        report.absent_connections = inputs.absent.clone();
        if let Some(approved) = &options.plan {
            report.applied_plan = Some(AppliedPlan {
                schema: approved.schema.clone(),
                plugin_sha256: plugin.sha256.clone(),
                units_planned: approved.units.len() as u64,
                units_as_planned: 0,
                matched: true,
            });
        }
        units::report_not_found(runner, &mut report, &not_found);
        // `--jobs`: as many workers as units to run, at most N; a dry-run holds one
        // transaction per connection for the whole run, so it runs one unit at a time.
        let to_run = selected
            .iter()
            .filter(|(_, plan)| matches!(plan, units::UnitPlan::Run { .. }))
            .count();
        let jobs = if options.dry_run {
            1
        } else {
            options
                .jobs
                .clamp(1, u32::try_from(to_run).unwrap_or(u32::MAX).max(1))
        };
        options.observer.units_planned(
            u64::try_from(selected.len()).unwrap_or(u64::MAX),
            u64::try_from(to_run).unwrap_or(u64::MAX),
        );
        let mut from_workers = None;
        if jobs > 1 {
            crate::tape::lock(&recorder).set_parallel();
            let expected: Vec<String> = selected.iter().map(|(u, _)| u.name.clone()).collect();
            let workers = parallel::start_workers(
                plugin,
                &inputs,
                config,
                &options,
                &tape,
                worker_ledger,
                &runner.locks,
                jobs,
                &expected,
            )
            .await?;
            from_workers = Some(parallel::run_units(runner, workers, &selected, &mut report).await);
        } else {
            runner.run_units(&selected, &mut report).await;
        }
        if report.failure.is_none() {
            runner.verify(&mut report).await;
        }
        runner.finish(&mut report, plan.as_ref(), dry_guards).await;
        if let Some(applied) = &mut report.applied_plan {
            applied.units_as_planned = report
                .units
                .iter()
                .filter(|u| u.plan == Some(crate::plan::PlanOutcome::AsPlanned))
                .count() as u64;
            applied.matched = !report
                .units
                .iter()
                .any(|u| u.plan == Some(crate::plan::PlanOutcome::Differs));
        }
        // The workers' checks and messages join lane 0's before the footer is
        // written (the ledger rows of every lane carry this run's id, so sealing
        // the ledgers covers the workers' rows too).
        if let Some(output) = from_workers {
            output.merge_into(&mut report);
        }
        // The footer, synced; then its final hash into the ledgers, while the
        // connections (and the run locks) are still held.
        journal::seal(&recorder, &mut report);
        runner.seal_ledgers(&mut report).await;
        Ok::<_, RunError>(report)
    }
    .await;
    open.close().await;

    let mut report = ran?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    // Which units failed, for `migrun status` (the ledger holds only what committed).
    crate::unit_failures::record(&config.journal_dir, &report, options.shard);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::UnitStatus;

    /// The observers' `UnitEnd::status` spells a status as the JSON report does.
    #[test]
    fn unit_status_as_str_is_its_json_spelling() {
        for status in [
            UnitStatus::Committed,
            UnitStatus::DryRun,
            UnitStatus::Failed,
            UnitStatus::NotRun,
            UnitStatus::Skipped,
            UnitStatus::NotFound,
            UnitStatus::Planned,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
    }
}
