//! One run of a plugin, from `describe` to `verify`: the flow the CLI and the
//! tests drive.
//!
//! 1. Instantiate the plugin and call `describe` (no connection is open yet).
//! 2. Check the operator's grants against what the plugin declared: every
//!    configuration key known, every required key given, no connection
//!    granted less access than the plugin needs. Then connect every declared
//!    connection, so a bad URL fails before anything runs.
//! 3. `configure` and `list-units`, inside transactions that are rolled back.
//! 4. Each selected unit inside one transaction per connection (read-only
//!    ones included, for a consistent snapshot); committed only when the unit
//!    returns ok. A plugin error, trap or limit rolls the unit back and stops
//!    the run; earlier units stay committed.
//! 5. `verify` inside transactions that are rolled back. A failed check fails
//!    the run.
//!
//! A **dry-run** is a mode of the same flow, not a separate code path: every
//! connection holds one transaction for the whole run (so later units and
//! `verify` see what earlier units would have written), and it is always
//! rolled back. On MySQL/MariaDB, where DDL commits implicitly, DDL is refused
//! during a dry-run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backup::BackupStore;
use crate::capability::backup::BackupGrant;
use crate::capability::database::{ConnectionInfo, DatabaseCtx, RunLedger, WriteCounts};
use crate::config::{RunConfig, redact_url};
use crate::contract::{ContractVersion, PluginInfo, UnitInfo};
use crate::db::{self, Access, DbError, Dialect};
use crate::journal::{
    self, Entry, Footer, Header, JournalConnection, JournalError, JournalReader, JournalWriter,
};
use crate::ledger::{self, CheckpointRow, Ledger, LedgerRow, UnitHistory};
use crate::lock::{self, LockError, RunLock};
use crate::observer::{CheckResult, LogEvent, RunObserver, Silent};
use crate::plan::Plan;
use crate::replay::{self, Comparison, Player, ReplayDivergence, WriteDiff};
use crate::runtime::sandbox::SandboxSeeds;
use crate::runtime::{CallError, LoadError, LoadedPlugin, PluginInstance, RunState, Runtime};
use crate::tape::{Recorder, Tape, TapeError, lock};

/// How long the host waits for a rollback before giving up on a connection
/// (the server rolls back on disconnect anyway).
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(10);

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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            only: None,
            seeds: None,
            observer: Arc::new(Silent),
            shard: None,
            lock_timeout: Duration::from_secs(30),
            allow_plugin_change: None,
            interrupt: Arc::new(AtomicBool::new(false)),
            no_backup: false,
            unsafe_mariadb_dry_run: false,
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
    #[error("connection `{connection}`: cannot begin a transaction: {error}")]
    Begin {
        /// The connection.
        connection: String,
        /// Why.
        error: DbError,
    },

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

impl RunError {
    /// The process exit code for this error: 2, nothing ran; 1 when a plugin
    /// statement escaped its session, since something may have been committed.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::SessionEscaped { .. } => 1,
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
    /// It did not run because the ledger says this plugin build finished it already.
    Skipped,
    /// `--only` named it, but the plugin has no such unit.
    NotFound,
}

/// One unit's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    /// The unit.
    pub name: String,
    /// What became of it.
    pub status: UnitStatus,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Writes per connection, as counted by the host.
    pub writes: BTreeMap<String, WriteCounts>,
    /// Why it was skipped, or that it resumed from a checkpoint, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
    /// The failure, if the run did not finish.
    pub failure: Option<RunFailure>,
    /// Wall time of the whole run, in milliseconds.
    pub duration_ms: u64,
    /// The journal written for this run (none for replays).
    pub journal: Option<JournalSummary>,
    /// What a dry-run would do, per writable connection (schema `migrun.plan/1`; see docs/PLAN.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The snapshots the host took before the first write (see `migrun backup`, `migrun restore`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<crate::backup::SnapshotInfo>,
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
    /// 130 interrupted (SIGINT).
    pub fn exit_code(&self) -> i32 {
        if let Some(RunFailure {
            cause: FailureCause::Call(CallError::Interrupted),
            ..
        }) = &self.failure
        {
            130
        } else if self.failure.is_some() {
            1
        } else if !self.checks_passed() {
            3
        } else {
            0
        }
    }
}

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
        DatabaseCtx::empty(Tape::Off),
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
    let runtime = Runtime::shared();
    let seeds = options.seeds.unwrap_or_else(SandboxSeeds::fresh);
    let state = RunState::new(
        DatabaseCtx::empty(Tape::Off),
        options.observer.clone(),
        Tape::Off,
        seeds,
        &config.limits,
    );
    let mut instance = PluginInstance::instantiate(runtime, plugin, state, config.limits).await?;

    options.observer.phase_started("describe");
    let mut info = describe(&mut instance).await?;
    options.observer.phase_finished("describe", true);
    let values = plugin_values(&info, config)?;
    resolve_declared_writes(&mut info, &values)?;
    let (mut connections, connection_reports) = connect_all(&info, config, options.dry_run).await?;
    let run_id = run_id(&info.name);
    let ledger = Ledger::new(&config.ledger_table);
    let (locks, ledgers) =
        match guard_targets(&mut connections, &info, config, &options, &ledger, &run_id).await {
            Ok(guarded) => guarded,
            Err(e) => {
                for (_, conn) in connections {
                    conn.close().await;
                }
                return Err(e);
            }
        };

    // The journal exists before anything can be written; failing to create it means nothing ran.
    let header = Header {
        format: journal::FORMAT.to_owned(),
        migrun_version: crate::VERSION.to_owned(),
        contract_version: plugin.contract.0.clone(),
        plugin_sha256: plugin.sha256.clone(),
        plugin_name: info.name.clone(),
        plugin_version: info.version.clone(),
        run_id: run_id.clone(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        dry_run: options.dry_run,
        only: options.only.clone(),
        shard: options.shard,
        seeds,
        connections: connection_reports
            .iter()
            .map(|c| JournalConnection {
                name: c.name.clone(),
                dialect: c.dialect,
                access: c.access,
                url: c.url.clone(),
            })
            .collect(),
        limits: config.limits,
    };
    let mut connection_reports = connection_reports;
    let dry_guards = match prepare_targets(
        &mut connections,
        &mut connection_reports,
        &info,
        &options,
        &run_id,
    )
    .await
    {
        Ok(guards) => guards,
        Err(e) => {
            for (_, conn) in connections {
                conn.close().await;
            }
            return Err(e);
        }
    };
    let recorder = match start_journal(&config.journal_dir, &header, plugin) {
        Ok(recorder) => recorder,
        Err(e) => {
            for (_, conn) in connections {
                conn.close().await;
            }
            return Err(e);
        }
    };
    let tape = Tape::Recording(recorder.clone());

    let plan = options.dry_run.then(|| {
        let conns: Vec<(String, Dialect, Access)> = connection_reports
            .iter()
            .map(|c| (c.name.clone(), c.dialect, c.access))
            .collect();
        Arc::new(std::sync::Mutex::new(Plan::new(&conns)))
    });
    // A `query` result is capped at the plugin's memory limit (`db::Connection::limit_results`).
    let max_result_bytes =
        usize::try_from(config.limits.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    // Statements are bounded on the server too, by the plugin's wall-clock limit per call.
    let statement_limit = Duration::from_secs(config.limits.timeout_secs);
    let mut limited = BTreeMap::new();
    for (name, mut conn) in connections {
        conn.limit_results(max_result_bytes);
        if let Err(error) = conn.limit_statement_time(statement_limit).await {
            conn.close().await;
            for (_, other) in limited {
                db::Connection::close(other).await;
            }
            return Err(RunError::Connect {
                connection: name.clone(),
                url: redact_url(&config.connection(&name).url),
                error,
            });
        }
        limited.insert(name, conn);
    }
    let connections = limited;
    let state = instance.state();
    state.database = DatabaseCtx::live(connections, tape.clone());
    if let Some(plan) = &plan {
        state.database.set_plan(plan.clone());
    }
    state.set_tape(tape.clone());
    state.set_interrupt(options.interrupt.clone());
    let journal_id = lock(&recorder).writer_mut().path().display().to_string();
    let run_identity = crate::backup::RunIdentity {
        run_id: run_id.clone(),
        journal: journal_id.clone(),
        plugin_name: info.name.clone(),
        plugin_sha256: plugin.sha256.clone(),
    };
    if !options.dry_run {
        state.database.set_ledger(
            RunLedger {
                ledger,
                plugin_name: info.name.clone(),
                plugin_version: info.version.clone(),
                plugin_sha256: plugin.sha256.clone(),
                run_id,
                journal_id,
            },
            ledgers.checkpoints,
        );
    }

    let redacted: Vec<(String, String)> = values
        .iter()
        .map(|(k, v)| {
            let secret = info.config.iter().any(|c| &c.name == k && c.secret);
            (
                k.clone(),
                if secret {
                    "***redacted***".to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let targets = backup_targets(&info, config);
    let take_backup =
        !options.dry_run && config.backup.before_run && !options.no_backup && !targets.is_empty();
    let store = if options.dry_run {
        Err("a dry-run takes no backups (the plan lists what a run would back up)".to_owned())
    } else {
        match BackupStore::open(&config.backup.dir, true) {
            Ok(store) => Ok(Arc::new(store)),
            Err(error) if take_backup => {
                let state = instance.into_state();
                state.database.close().await;
                return Err(RunError::Backup {
                    connection: String::new(),
                    error,
                });
            }
            Err(error) => Err(error.to_string()),
        }
    };
    instance.state().backup.grant(store.clone().map(|store| {
        BackupGrant {
            store,
            connections: info
                .connections
                .iter()
                .map(|c| (c.name.clone(), config.connection(&c.name).url))
                .collect(),
            run: run_identity.clone(),
            method: config.backup.method,
        }
    }));
    let mut runner = Runner {
        instance,
        dry_run: options.dry_run,
        observer: options.observer.clone(),
        tape,
        interrupt: options.interrupt.clone(),
        conflict_retries: config.limits.conflict_retries,
        locks,
    };
    let planned = match runner
        .prepare(values, redacted, options.only.as_deref(), options.shard)
        .await
    {
        Ok((units, not_found)) => plan_units(
            units,
            &ledgers.finished,
            &plugin.sha256,
            options.allow_plugin_change.as_deref(),
        )
        .map(|units| (units, not_found)),
        Err(e) => Err(e),
    };
    let (selected, not_found) = match planned {
        Ok(units) => units,
        Err(e) => {
            runner.close().await;
            return Err(e);
        }
    };
    // Every refusal is behind us. Before anything is written (the ledger included), the
    // tables the plugin declares it writes are backed up, or, in a dry-run, planned.
    let mut backups = Vec::new();
    if let Some(plan) = &plan {
        plan_backups(&mut runner, plan, &targets, config).await;
    } else if take_backup && let Ok(store) = &store {
        for (connection, url, tables) in &targets {
            let request = crate::backup::SnapshotRequest {
                connection: connection.clone(),
                url: url.clone(),
                tables: tables.clone(),
                label: "before-run".to_owned(),
                method: config.backup.method,
            };
            let id = format!("{}.{connection}.before-run", run_identity.run_id);
            options
                .observer
                .phase_started(&format!("backup {connection}"));
            let taken = store.snapshot(&request, &run_identity, &id).await;
            options
                .observer
                .phase_finished(&format!("backup {connection}"), taken.is_ok());
            match taken {
                Ok(manifest) => {
                    let _ = runner
                        .tape
                        .transaction(connection, &format!("backup {id}"), None);
                    runner.instance.state().backup.note_taken(manifest.info());
                    backups.push(manifest.info());
                }
                Err(error) => {
                    runner.close().await;
                    return Err(RunError::Backup {
                        connection: connection.clone(),
                        error,
                    });
                }
            }
        }
    }
    // Now the ledger may be created (outside any unit, since DDL commits implicitly on
    // MySQL; never in a dry-run, which changes nothing).
    if !options.dry_run
        && let Err(e) = runner.ensure_ledgers().await
    {
        runner.close().await;
        return Err(e);
    }

    let mut report = RunReport {
        plugin: info,
        plugin_sha256: plugin.sha256.clone(),
        contract: plugin.contract.clone(),
        dry_run: options.dry_run,
        seeds,
        connections: connection_reports,
        units: Vec::new(),
        checks: Vec::new(),
        messages: Vec::new(),
        messages_not_kept: Default::default(),
        checks_not_kept: Default::default(),
        failure: None,
        duration_ms: 0,
        journal: None,
        plan: None,
        backups,
    };
    report_not_found(&mut runner, &mut report, &not_found);
    runner.run_units(&selected, &mut report).await;
    if report.failure.is_none() {
        runner.verify(&mut report).await;
    }
    if runner.dry_run {
        runner.rollback_all().await;
        let restored = runner.leave_dry_run(dry_guards).await;
        runner.collect(&mut report);
        if let Some(plan) = plan {
            let mut plan = lock(&plan).clone();
            plan.set_plugin(
                &report.plugin.name,
                &report.plugin.version,
                &report.plugin_sha256,
            );
            plan.add_checks(&report.checks);
            for c in &report.connections {
                if let Some(warning) = &c.privileges {
                    plan.add_privilege_warning(warning.clone());
                }
            }
            plan.set_failure(report.failure.as_ref().map(|f| f.message.clone()));
            for (connection, notes) in restored {
                for note in notes {
                    plan.add_note(&connection, note);
                }
            }
            report.plan = Some(plan);
        }
    } else {
        runner.collect(&mut report);
    }
    runner.close().await;

    let mut recorder = lock(&recorder);
    let footer = footer(&report, recorder.calls());
    let sealed = recorder
        .append(&Entry::Footer(footer))
        .and_then(|()| recorder.writer_mut().finish());
    match sealed {
        Ok(final_hash) => {
            report.journal = Some(JournalSummary {
                path: recorder.writer_mut().path().to_owned(),
                final_hash,
                entries: recorder.writer_mut().entries(),
                calls: recorder.calls(),
            })
        }
        Err(e) if report.failure.is_none() => {
            report.failure = Some(RunFailure {
                phase: "journal".into(),
                message: e.to_string(),
                consequence: "the units stay committed but their journal is incomplete".into(),
                cause: FailureCause::Tape(TapeError::Journal(e)),
            })
        }
        Err(e) => tracing::error!("the journal could not be completed: {e}"),
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The connections a run backs up before its first write, with their URLs and the names
/// the plugin declares it writes through them (read-only and undeclared ones are not
/// backed up).
///
/// A declared name may be a pattern (seed 001's `me_<slug>.memory`, one schema per
/// engine): it is kept as declared, and the snapshot expands it to the tables that match
/// it when the snapshot is taken, recording the pattern with them, so that a full restore
/// can drop the tables (and empty schemas) the run created under it. A name that is
/// neither a table nor a valid pattern is skipped with a warning.
fn backup_targets(info: &PluginInfo, config: &RunConfig) -> Vec<(String, String, Vec<String>)> {
    info.connections
        .iter()
        .filter(|c| c.access == Access::ReadWrite && !c.writes.is_empty())
        .map(|c| {
            let tables = c
                .writes
                .iter()
                .filter(|t| match crate::backup::check_table_or_pattern(t) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(connection = %c.name, "not backed up before the run: {e}");
                        false
                    }
                })
                .cloned()
                .collect();
            (c.name.clone(), config.connection(&c.name).url, tables)
        })
        .filter(|(_, _, tables): &(String, String, Vec<String>)| !tables.is_empty())
        .collect()
}

/// Puts into a dry-run's plan what a real run would back up: each declared table with its
/// current row count, and each pattern with the tables it matches now (they would be
/// snapshotted too).
async fn plan_backups(
    runner: &mut Runner,
    plan: &Arc<std::sync::Mutex<Plan>>,
    targets: &[(String, String, Vec<String>)],
    config: &RunConfig,
) {
    for (connection, url, names) in targets {
        let (patterns, mut tables): (Vec<String>, Vec<String>) = names
            .iter()
            .cloned()
            .partition(|n| crate::backup::is_pattern(n));
        let matched = if patterns.is_empty() {
            Vec::new()
        } else {
            match crate::backup::pattern_matches(url, &patterns).await {
                Ok(matched) => matched,
                Err(e) => {
                    lock(plan).add_note(
                        connection,
                        format!(
                            "the tables matching {} could not be listed: {e}",
                            patterns.join(", ")
                        ),
                    );
                    patterns.iter().map(|p| (p.clone(), Vec::new())).collect()
                }
            }
        };
        for (_, found) in &matched {
            for t in found {
                if !tables.contains(t) {
                    tables.push(t.clone());
                }
            }
        }
        let mut counted = Vec::new();
        if let Some(conn) = runner
            .instance
            .state()
            .database
            .connections_mut()
            .find(|c| c.name() == connection)
        {
            for table in &tables {
                counted.push((
                    table.clone(),
                    conn.table_row_count(table).await.ok().flatten(),
                ));
            }
        }
        let mut plan = lock(plan);
        if config.backup.before_run {
            plan.set_backup(
                connection,
                crate::plan::PlannedBackup {
                    dir: config.backup.dir.display().to_string(),
                    tables: counted,
                    patterns: matched,
                },
            );
        } else {
            plan.add_note(
                connection,
                "no backup before the run: `[backup] before_run = false`",
            );
        }
    }
}

/// Takes the run lock on every writable connection and reads which units of this plugin
/// finished there. The ledger table itself is created only once the run is certain to start.
async fn guard_targets(
    connections: &mut BTreeMap<String, db::Connection>,
    info: &PluginInfo,
    config: &RunConfig,
    options: &RunOptions,
    ledger: &Ledger,
    run_id: &str,
) -> Result<(Vec<RunLock>, Ledgers), RunError> {
    let mut locks = Vec::new();
    let mut ledgers = Ledgers::default();
    let base_lock = lock::run_lock_name(ledger.table());
    let lock_name = match options.shard {
        Some((i, n)) => format!("{base_lock}:shard-{i}-of-{n}"),
        None => base_lock.clone(),
    };
    for (name, conn) in connections.iter_mut() {
        if conn.access() != Access::ReadWrite {
            continue;
        }
        let url = config.connection(name).url;
        let file = crate::config::sqlite_file(&url).filter(|p| p.exists());
        locks.push(
            lock::acquire(
                name,
                &url,
                &lock_name,
                options.shard.is_some().then_some(base_lock.as_str()),
                run_id,
                file.as_deref(),
                options.lock_timeout,
            )
            .await?,
        );
        let ledger_error = |error| RunError::Ledger {
            connection: name.clone(),
            table: ledger.table().to_owned(),
            error,
        };
        // Before any plugin code: a ledger whose rows something else can rewrite is refused.
        if let Some(problem) = ledger.tampering(conn).await.map_err(ledger_error)? {
            return Err(ledger_error(DbError::new(
                db::DbErrorKind::Refused,
                problem,
            )));
        }
        let rows = ledger
            .finished(conn, &info.name)
            .await
            .map_err(ledger_error)?;
        ledgers.finished.insert(name.clone(), rows);
        let saved = ledger
            .checkpoints(conn, &info.name)
            .await
            .map_err(ledger_error)?;
        for row in saved {
            // Targets disagree only after a crash between two commits of one checkpoint:
            // the first target (by name) wins, and the operator hears about it.
            match ledgers.checkpoints.get(&row.unit) {
                Some(first) if first.state != row.state => tracing::warn!(
                    unit = row.unit,
                    connection = name.as_str(),
                    "the targets' ledgers hold different checkpoints for this unit; resuming from the first target's"
                ),
                Some(_) => {}
                None => {
                    ledgers.checkpoints.insert(row.unit.clone(), row);
                }
            }
        }
    }
    Ok((locks, ledgers))
}

/// What the writable targets' ledgers say about this plugin before the run.
#[derive(Debug, Default)]
struct Ledgers {
    /// Finished units, per target.
    finished: BTreeMap<String, Vec<LedgerRow>>,
    /// The last checkpoint of each unfinished unit that saved one.
    checkpoints: BTreeMap<String, CheckpointRow>,
}

/// Drops MySQL scratch databases left by crashed dry-runs and, in a dry-run, puts every
/// connection in dry-run mode: PostgreSQL sequences are snapshotted, MySQL/MariaDB works
/// in a scratch copy (so DDL can run and be thrown away). See `db::dry_run`.
async fn prepare_targets(
    connections: &mut BTreeMap<String, db::Connection>,
    reports: &mut [ConnectionReport],
    info: &PluginInfo,
    options: &RunOptions,
    run_id: &str,
) -> Result<BTreeMap<String, db::DryRunGuard>, RunError> {
    for conn in connections.values_mut() {
        match conn.cleanup_stale_dry_runs().await {
            Ok(dropped) => {
                for scratch in dropped {
                    tracing::info!(
                        connection = conn.name(),
                        scratch,
                        "dropped a stale dry-run scratch database"
                    );
                }
            }
            Err(e) => tracing::warn!(
                connection = conn.name(),
                "cannot look for stale dry-run scratch databases: {e}"
            ),
        }
    }
    let mut guards = BTreeMap::new();
    if !options.dry_run {
        return Ok(guards);
    }
    for need in &info.connections {
        let Some(conn) = connections.get_mut(&need.name) else {
            continue;
        };
        let guard = conn
            .enter_dry_run(run_id, &need.writes)
            .await
            .map_err(|error| RunError::DryRun {
                connection: need.name.clone(),
                error,
            })?;
        // Without a scratch, a MariaDB dry-run works in the real database, where the
        // session check can only notice a commit after it happened: refused unless the
        // operator accepts that risk.
        if let db::DryRunMode::DdlRefused { reason } = guard.mode()
            && !options.unsafe_mariadb_dry_run
        {
            let reason = reason.clone();
            let _ = conn.leave_dry_run(guard).await;
            return Err(RunError::DryRun {
                connection: need.name.clone(),
                error: DbError::new(
                    db::DbErrorKind::Refused,
                    format!(
                        "{reason}. Without a scratch copy the dry-run would run in the real database, \
                         where a statement that commits despite the host's guards (a procedure, \
                         a server quirk) would change real data. Let the connection's role create \
                         databases named `{}*` (see docs/OPERATIONS.md), or accept that risk with \
                         --dry-run-unsafe-mariadb",
                        db::SCRATCH_PREFIX
                    ),
                ),
            });
        }
        if let Some(note) = guard.note()
            && let Some(report) = reports.iter_mut().find(|r| r.name == need.name)
        {
            report.note = Some(match report.note.take() {
                Some(existing) => format!("{existing}; {note}"),
                None => note,
            });
        }
        guards.insert(need.name.clone(), guard);
    }
    Ok(guards)
}

/// Names given to `--only` that are not units of the plugin (an engine deleted since the
/// list was made, say): reported as such, with a warning, and the run goes on.
fn report_not_found(runner: &mut Runner, report: &mut RunReport, not_found: &[String]) {
    for name in not_found {
        runner.instance.state().log.record(
            crate::observer::Level::Warn,
            format!("--only names `{name}`, which is not a unit of this plugin: skipped"),
            Vec::new(),
        );
        report.units.push(UnitReport {
            name: name.clone(),
            status: UnitStatus::NotFound,
            duration_ms: 0,
            writes: BTreeMap::new(),
            note: Some("not a unit of this plugin".into()),
        });
    }
}

/// What the runner does with a selected unit.
#[derive(Debug, Clone)]
enum UnitPlan {
    /// Run it (with the override reason when it reruns another build's finished unit).
    Run { override_reason: Option<String> },
    /// Skip it: this plugin build finished it already.
    Skip { reason: String },
}

/// Decides each selected unit from the ledgers; refuses (nothing ran) on a changed plugin
/// without an override, or on targets that disagree.
fn plan_units(
    units: Vec<UnitInfo>,
    ledgers: &BTreeMap<String, Vec<LedgerRow>>,
    sha256: &str,
    allow_change: Option<&str>,
) -> Result<Vec<(UnitInfo, UnitPlan)>, RunError> {
    let mut planned = Vec::with_capacity(units.len());
    for unit in units {
        let plan = match ledger::history(&unit.name, sha256, ledgers) {
            UnitHistory::Pending => UnitPlan::Run {
                override_reason: None,
            },
            UnitHistory::Finished { run_id } => UnitPlan::Skip {
                reason: format!("finished in run {run_id}"),
            },
            UnitHistory::ChangedPlugin { recorded_sha256 } => match allow_change {
                Some(reason) => UnitPlan::Run {
                    override_reason: Some(format!("rerun over sha256 {recorded_sha256}: {reason}")),
                },
                None => {
                    return Err(RunError::PluginChanged {
                        unit: unit.name,
                        recorded_sha256,
                        current_sha256: sha256.to_owned(),
                    });
                }
            },
            UnitHistory::Partial {
                finished_on,
                missing_on,
            } => {
                return Err(RunError::PartialUnit {
                    unit: unit.name,
                    finished_on: finished_on.join(", "),
                    missing_on: missing_on.join(", "),
                });
            }
        };
        planned.push((unit, plan));
    }
    Ok(planned)
}

/// `<UTC time>-<plugin>-<random>`: sortable, readable, unique.
fn run_id(plugin: &str) -> String {
    let name: String = plugin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}-{name}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}

/// Creates the journal with its header and stores a copy of the plugin next to it.
fn start_journal(
    dir: &Path,
    header: &Header,
    plugin: &LoadedPlugin,
) -> Result<Arc<std::sync::Mutex<Recorder>>, RunError> {
    store_plugin_copy(dir, &plugin.sha256, &plugin.bytes, &header.run_id).map_err(
        |(path, source)| {
            RunError::Tape(TapeError::Journal(JournalError::Io {
                path: path.display().to_string(),
                source,
            }))
        },
    )?;
    let path = dir.join(format!("{}.journal", header.run_id));
    let mut writer = JournalWriter::create(&path).map_err(TapeError::Journal)?;
    writer
        .append(&Entry::Header(header.clone()))
        .map_err(TapeError::Journal)?;
    Ok(Arc::new(std::sync::Mutex::new(Recorder::new(writer))))
}

/// Stores the plugin as `plugins/<sha256>.wasm` in the journal directory,
/// where replay looks for it.
///
/// Workers sharing one journal directory may store the same plugin at the
/// same moment: each writes its own partial file (named by its run id) and
/// renames it into place, so no worker renames another's file away; the
/// name is the content's sha256, so whichever rename lands last leaves the
/// same bytes.
fn store_plugin_copy(
    dir: &Path,
    sha256: &str,
    bytes: &[u8],
    run_id: &str,
) -> Result<PathBuf, (PathBuf, std::io::Error)> {
    let plugins = dir.join("plugins");
    let copy = plugins.join(format!("{sha256}.wasm"));
    if copy.exists() {
        return Ok(copy);
    }
    let partial = plugins.join(format!("{sha256}.wasm.{run_id}.partial"));
    std::fs::create_dir_all(&plugins)
        .and_then(|()| std::fs::write(&partial, bytes))
        .and_then(|()| std::fs::rename(&partial, &copy))
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            (copy.clone(), e)
        })?;
    Ok(copy)
}

fn footer(report: &RunReport, calls: u64) -> Footer {
    let mut rows_written: BTreeMap<String, u64> = BTreeMap::new();
    for unit in &report.units {
        for (conn, w) in &unit.writes {
            *rows_written.entry(conn.clone()).or_default() += w.rows;
        }
    }
    Footer {
        outcome: match report.exit_code() {
            0 => "succeeded",
            3 => "checks-failed",
            _ => "failed",
        }
        .to_owned(),
        failure: report
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.phase, f.message)),
        calls,
        rows_written,
        checks: report.checks.len() as u64,
        checks_failed: report.checks.iter().filter(|c| !c.ok).count() as u64,
    }
}

/// How a replay ended.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ReplayOutcome {
    /// Same plugin: every call matched the journal.
    Verified {
        /// Host calls matched.
        calls: u64,
        /// Of which writes.
        writes: u64,
    },
    /// A call differed from the journal.
    Diverged {
        /// Where and how.
        divergence: ReplayDivergence,
    },
    /// Another plugin version ran on the recorded inputs.
    Compared {
        /// Whether it would write exactly the same rows.
        identical: bool,
        /// Per-table differences.
        diff: WriteDiff,
        /// Why it stopped early, if it asked for something never recorded.
        stopped: Option<ReplayDivergence>,
    },
    /// The replayed run failed for another reason (a trap or limit the recording did not have).
    Failed {
        /// Why.
        message: String,
    },
}

/// What `migrun replay` found.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    /// The journal replayed.
    pub journal: PathBuf,
    /// Its header.
    pub header: Header,
    /// sha256 of the plugin that was replayed.
    pub plugin_sha256: String,
    /// `verify` (the recorded plugin) or `compare` (another version).
    pub mode: &'static str,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: ReplayOutcome,
    /// The replayed run (units, checks, messages).
    pub run: RunReport,
}

impl ReplayReport {
    /// 0 when verified (or, comparing, when the writes are identical); 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match &self.outcome {
            ReplayOutcome::Verified { .. } => 0,
            ReplayOutcome::Compared {
                identical: true,
                stopped: None,
                ..
            } => 0,
            _ => 1,
        }
    }
}

/// Replays a journal with no database: with its own plugin (verify) or with `plugin_override` (compare
/// if its sha256 differs from the recorded one).
pub async fn replay(
    journal_path: &Path,
    plugin_override: Option<&Path>,
    observer: Arc<dyn RunObserver>,
) -> Result<ReplayReport, RunError> {
    let started = Instant::now();
    let runtime = Runtime::shared();
    let (reader, header) = JournalReader::open(journal_path)?;
    let plugin_path = match plugin_override {
        Some(p) => p.to_owned(),
        None => {
            let expected = replay::recorded_plugin_path(journal_path, &header);
            if !expected.exists() {
                return Err(RunError::PluginNotFound {
                    sha256: header.plugin_sha256.clone(),
                    expected: expected.display().to_string(),
                });
            }
            expected
        }
    };
    let plugin = LoadedPlugin::load_file(runtime, &plugin_path)?;
    let comparing = plugin.sha256 != header.plugin_sha256;
    let (tape, recorded_config) = if comparing {
        let comparison = Comparison::load(reader)?;
        let config = comparison.config.clone();
        (Tape::Comparing(replay::shared(comparison)), config)
    } else {
        (Tape::Replaying(replay::shared(Player::new(reader))), None)
    };

    let state = RunState::new(
        DatabaseCtx::empty(Tape::Off),
        observer.clone(),
        Tape::Off,
        header.seeds,
        &header.limits,
    );
    let mut instance = PluginInstance::instantiate(runtime, &plugin, state, header.limits).await?;
    let info = describe(&mut instance).await?;
    let infos: BTreeMap<String, ConnectionInfo> = header
        .connections
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                ConnectionInfo {
                    dialect: c.dialect,
                    access: c.access,
                },
            )
        })
        .collect();
    let state = instance.state();
    state.database = DatabaseCtx::recorded(infos, tape.clone());
    state.set_tape(tape.clone());

    let mut runner = Runner {
        instance,
        dry_run: header.dry_run,
        observer,
        tape: tape.clone(),
        interrupt: Arc::new(AtomicBool::new(false)),
        conflict_retries: header.limits.conflict_retries,
        locks: Vec::new(),
    };
    let mut report = RunReport {
        plugin: info,
        plugin_sha256: plugin.sha256.clone(),
        contract: plugin.contract.clone(),
        dry_run: header.dry_run,
        seeds: header.seeds,
        connections: header
            .connections
            .iter()
            .map(|c| ConnectionReport {
                name: c.name.clone(),
                dialect: c.dialect,
                access: c.access,
                url: c.url.clone(),
                embedded_default: false,
                privileges: None,
                note: Some("recorded: no database is contacted".into()),
            })
            .collect(),
        units: Vec::new(),
        checks: Vec::new(),
        messages: Vec::new(),
        messages_not_kept: Default::default(),
        checks_not_kept: Default::default(),
        failure: None,
        duration_ms: 0,
        journal: None,
        plan: None,
        backups: Vec::new(),
    };
    let values = recorded_config.unwrap_or_default();
    match runner
        .prepare(values.clone(), values, header.only.as_deref(), header.shard)
        .await
    {
        Ok((units, not_found)) => {
            report_not_found(&mut runner, &mut report, &not_found);
            // Which units the recorded run skipped comes from the journal, not from a ledger.
            let units: Vec<(UnitInfo, UnitPlan)> = units
                .into_iter()
                .map(|u| {
                    (
                        u,
                        UnitPlan::Run {
                            override_reason: None,
                        },
                    )
                })
                .collect();
            runner.run_units(&units, &mut report).await;
            if report.failure.is_none() {
                runner.verify(&mut report).await;
            }
        }
        Err(RunError::Tape(e)) => {
            report.failure = Some(RunFailure {
                phase: "configure".into(),
                message: e.to_string(),
                consequence: "nothing was changed (replay)".into(),
                cause: FailureCause::Tape(e),
            })
        }
        Err(RunError::Plugin { phase, error }) => {
            report.failure = Some(RunFailure {
                phase: phase.into(),
                message: error.to_string(),
                consequence: "nothing was changed (replay)".into(),
                cause: FailureCause::Call(error),
            })
        }
        Err(other) => return Err(other),
    }
    runner.collect(&mut report);
    report.duration_ms = started.elapsed().as_millis() as u64;

    let divergence = |report: &RunReport| match &report.failure {
        Some(RunFailure {
            cause:
                FailureCause::Tape(TapeError::Divergence(d))
                | FailureCause::Call(CallError::Tape(TapeError::Divergence(d))),
            ..
        }) => Some(d.clone()),
        _ => None,
    };
    let outcome = match &tape {
        Tape::Comparing(comparison) => {
            let diff = lock(comparison).diff();
            ReplayOutcome::Compared {
                identical: diff.is_identical(),
                diff,
                stopped: divergence(&report),
            }
        }
        Tape::Replaying(player) => match divergence(&report) {
            Some(divergence) => ReplayOutcome::Diverged { divergence },
            None => {
                let finished = lock(player).finish();
                match finished {
                    Ok((calls, writes, _footer)) => ReplayOutcome::Verified { calls, writes },
                    Err(TapeError::Divergence(divergence)) => {
                        ReplayOutcome::Diverged { divergence }
                    }
                    Err(TapeError::Journal(e)) => return Err(RunError::Journal(e)),
                }
            }
        },
        _ => unreachable!("replay runs on a journal tape"),
    };
    // A failure that was also in the recording (same export failing at the same point) is part of
    // what was verified; anything else is reported as it is.
    let outcome = match (outcome, &report.failure) {
        (ReplayOutcome::Verified { .. }, Some(f)) if !matches!(f.cause, FailureCause::Call(_)) => {
            ReplayOutcome::Failed {
                message: f.message.clone(),
            }
        }
        (outcome, _) => outcome,
    };
    runner.close().await;
    Ok(ReplayReport {
        journal: journal_path.to_owned(),
        header,
        plugin_sha256: plugin.sha256.clone(),
        mode: if comparing { "compare" } else { "verify" },
        outcome,
        run: report,
    })
}

/// The plugin's configuration values: every given key known, every required key present, defaults applied.
fn plugin_values(info: &PluginInfo, config: &RunConfig) -> Result<Vec<(String, String)>, RunError> {
    for key in config.values.keys() {
        if !info.config.iter().any(|k| &k.name == key) {
            let known: Vec<String> = info
                .config
                .iter()
                .map(|k| format!("`{}`", k.name))
                .collect();
            return Err(RunError::UnknownConfigKey {
                key: key.clone(),
                known: if known.is_empty() {
                    "no keys".into()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    let mut values = Vec::new();
    for key in &info.config {
        match config.values.get(&key.name).or(key.default_value.as_ref()) {
            Some(v) => values.push((key.name.clone(), v.clone())),
            None if key.required => {
                return Err(RunError::MissingConfigKey {
                    key: key.name.clone(),
                    description: key.description.clone(),
                });
            }
            None => {}
        }
    }
    Ok(values)
}

/// Puts configuration values into the table names a plugin declares it writes.
///
/// `describe` is static, but a plugin whose tables are configured (the rename of seed
/// 002 takes its table from `table`) can still declare them: a declared name may hold
/// `${key}`, replaced here by the key's value. The resolved name must then name a table
/// (or be a pattern, see [`crate::backup::check_table_or_pattern`]): it is what the host
/// backs up before the first write and what a dry-run confines, so a value that cannot
/// name one stops the run before anything is written. Secret keys are refused (a table
/// name appears in plans, manifests and journals).
fn resolve_declared_writes(
    info: &mut PluginInfo,
    values: &[(String, String)],
) -> Result<(), RunError> {
    for need in &mut info.connections {
        for declared in &mut need.writes {
            if !declared.contains("${") {
                continue;
            }
            let problem = |problem: String| RunError::DeclaredWrite {
                connection: need.name.clone(),
                declared: declared.clone(),
                problem,
            };
            let mut resolved = String::new();
            let mut rest = declared.as_str();
            while let Some(start) = rest.find("${") {
                resolved.push_str(&rest[..start]);
                let Some(len) = rest[start + 2..].find('}') else {
                    return Err(problem("`${` without its closing `}`".into()));
                };
                let key = &rest[start + 2..start + 2 + len];
                if info.config.iter().any(|k| k.name == key && k.secret) {
                    return Err(problem(format!(
                        "config key `{key}` is secret and cannot name a table"
                    )));
                }
                let Some((_, value)) = values.iter().find(|(k, _)| k == key) else {
                    return Err(problem(format!(
                        "the plugin reads no config key `{key}` (or it has no value)"
                    )));
                };
                if !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
                {
                    return Err(problem(format!(
                        "config key `{key}` is `{value}`, which cannot be part of a table name \
                         (letters, digits, `_`, `$`, and `.` between schema and table)"
                    )));
                }
                resolved.push_str(value);
                rest = &rest[start + 2 + len + 1..];
            }
            resolved.push_str(rest);
            if let Err(e) = crate::backup::check_table_or_pattern(&resolved) {
                return Err(problem(format!(
                    "with the configured values it is `{resolved}`, which names no table ({e})"
                )));
            }
            *declared = resolved;
        }
    }
    Ok(())
}

/// Checks grants and opens every connection the plugin declared.
async fn connect_all(
    info: &PluginInfo,
    config: &RunConfig,
    dry_run: bool,
) -> Result<(BTreeMap<String, db::Connection>, Vec<ConnectionReport>), RunError> {
    // Check every grant before opening anything.
    for need in &info.connections {
        let resolved = config.connection(&need.name);
        if let Some(granted) = resolved.access
            && granted == Access::ReadOnly
            && need.access == Access::ReadWrite
        {
            return Err(RunError::AccessDenied {
                connection: need.name.clone(),
                needed: need.access,
                granted,
            });
        }
    }
    let mut connections = BTreeMap::new();
    let mut reports = Vec::new();
    for need in &info.connections {
        let resolved = config.connection(&need.name);
        let mut url = resolved.url.clone();
        let mut note = None;
        let missing_sqlite_file =
            crate::config::sqlite_file(&resolved.url).filter(|path| !path.exists());
        if need.access == Access::ReadWrite
            && let Some(path) = missing_sqlite_file
        {
            if dry_run {
                // A dry-run must not even create a file: an empty in-memory database is
                // exactly what the plugin would find in a new file.
                url = "sqlite::memory:".to_owned();
                note = Some(
                    "does not exist yet: the dry-run uses an empty in-memory database".to_owned(),
                );
            } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        match db::Connection::connect(&need.name, &url, need.access).await {
            Ok(conn) => {
                reports.push(ConnectionReport {
                    name: need.name.clone(),
                    dialect: conn.dialect(),
                    access: need.access,
                    url: redact_url(&resolved.url),
                    embedded_default: resolved.embedded_default,
                    note,
                    privileges: None,
                });
                connections.insert(need.name.clone(), conn);
            }
            Err(mut error) => {
                for (_, conn) in connections {
                    conn.close().await;
                }
                if resolved.embedded_default && need.access == Access::ReadOnly {
                    error.message = format!(
                        "{} (embedded default: the plugin reads `{}` from this SQLite file, which must exist; seed it or configure the connection)",
                        error.message, need.name
                    );
                }
                return Err(RunError::Connect {
                    connection: need.name.clone(),
                    url: redact_url(&resolved.url),
                    error,
                });
            }
        }
    }
    // Before any plugin code touches a connection: what can its role do? (docs/SECURITY.md)
    for report in &mut reports {
        let Some(conn) = connections.get_mut(&report.name) else {
            continue;
        };
        let allowed = config.connection(&report.name).allow_privileged;
        match db::privileges::check_at_start(conn, report.access, allowed).await {
            Ok(warning) => report.privileges = warning,
            Err(refusal) => {
                for (_, conn) in connections {
                    conn.close().await;
                }
                return Err(refusal.into());
            }
        }
    }
    Ok((connections, reports))
}

struct Runner {
    instance: PluginInstance,
    dry_run: bool,
    observer: Arc<dyn RunObserver>,
    tape: Tape,
    interrupt: Arc<AtomicBool>,
    /// `[limits] conflict_retries`: how often a unit that failed on a conflict runs again.
    conflict_retries: u32,
    /// The run locks of the writable targets, checked before every commit.
    locks: Vec<RunLock>,
}

impl Runner {
    /// `configure` and `list-units`, then the unit selection. In a dry-run the
    /// run-long transactions begin here; otherwise these calls get transactions
    /// of their own that are rolled back. `recorded` is what the journal keeps of
    /// the configuration (secrets redacted).
    async fn prepare(
        &mut self,
        values: Vec<(String, String)>,
        recorded: Vec<(String, String)>,
        only: Option<&[String]>,
        shard: Option<(u32, u32)>,
    ) -> Result<(Vec<UnitInfo>, Vec<String>), RunError> {
        // Before the backup, plugin code sees every connection read-only in the session:
        // nothing it does here could be missing from the backup. A dry-run holds one
        // transaction for the whole run (and changes nothing), so it begins as usual.
        if self.dry_run {
            self.begin_all().await?;
        } else {
            self.instance.state().database.begin_all_read_only().await?;
        }
        let units = self.configure_and_list(values, recorded).await;
        let escapes = self.instance.state().database.escapes();
        if !self.dry_run || units.is_err() || !escapes.is_empty() {
            self.rollback_all().await;
        }
        if !escapes.is_empty() {
            return Err(RunError::SessionEscaped {
                phase: "configure / list-units",
                escapes,
            });
        }
        let mut units = units?;
        if let Some((index, count)) = shard {
            units.retain(|u| ledger::in_shard(&u.name, index, count));
        }
        let Some(only) = only else {
            return Ok((units, Vec::new()));
        };
        let not_found: Vec<String> = only
            .iter()
            .filter(|n| !units.iter().any(|u| &u.name == *n))
            .cloned()
            .collect();
        if !only.is_empty() && not_found.len() == only.len() {
            if self.dry_run {
                self.rollback_all().await;
            }
            return Err(RunError::UnknownUnits {
                names: not_found
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                available: units
                    .iter()
                    .map(|u| format!("`{}`", u.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok((
            units
                .into_iter()
                .filter(|u| only.contains(&u.name))
                .collect(),
            not_found,
        ))
    }

    async fn configure_and_list(
        &mut self,
        values: Vec<(String, String)>,
        recorded: Vec<(String, String)>,
    ) -> Result<Vec<UnitInfo>, RunError> {
        let from_tape = self.tape.export("configure", None, Some(recorded))?;
        let values = if self.tape.is_live() {
            values
        } else {
            from_tape.unwrap_or_default()
        };
        let configured = self.instance.configure(values).await;
        if !matches!(configured, Err(CallError::Tape(_))) {
            self.tape.export_end(
                "configure",
                configured.as_ref().err().map(ToString::to_string),
            )?;
        }
        configured.map_err(|error| RunError::Plugin {
            phase: "configure",
            error,
        })?;
        self.tape.export("list-units", None, None)?;
        let units = self.instance.list_units().await;
        if !matches!(units, Err(CallError::Tape(_))) {
            self.tape
                .export_end("list-units", units.as_ref().err().map(ToString::to_string))?;
        }
        units.map_err(|error| RunError::Plugin {
            phase: "list-units",
            error,
        })
    }

    async fn run_units(&mut self, units: &[(UnitInfo, UnitPlan)], report: &mut RunReport) {
        let mut committed: Vec<String> = Vec::new();
        for (index, (unit, plan)) in units.iter().enumerate() {
            let skip_reason = match plan {
                UnitPlan::Skip { reason } => Some(reason.as_str()),
                UnitPlan::Run { .. } => None,
            };
            let skipped = match self.tape.skip_unit(&unit.name, skip_reason) {
                Ok(skipped) => skipped,
                Err(e) => {
                    report.failure = Some(RunFailure {
                        phase: format!("unit `{}`", unit.name),
                        message: e.to_string(),
                        consequence: consequence(
                            &unit.name,
                            self.dry_run,
                            self.tape.is_live(),
                            &committed,
                            &[],
                        ),
                        cause: FailureCause::Tape(e),
                    });
                    return;
                }
            };
            if skipped {
                report.units.push(UnitReport {
                    name: unit.name.clone(),
                    status: UnitStatus::Skipped,
                    duration_ms: 0,
                    writes: BTreeMap::new(),
                    note: Some(
                        skip_reason
                            .unwrap_or("finished in an earlier run")
                            .to_owned(),
                    ),
                });
                continue;
            }
            let override_reason = match plan {
                UnitPlan::Run { override_reason } => override_reason.clone(),
                UnitPlan::Skip { .. } => None,
            };
            let phase = format!("unit {}", unit.name);
            self.observer.phase_started(&phase);
            let started = Instant::now();
            let started_at =
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let state = self.instance.state();
            state.log.set_unit(Some(unit.name.clone()));
            state.checks.set_unit(Some(unit.name.clone()));
            state.database.take_writes();
            let resumed = state.database.resume_point(&unit.name).map(|c| {
                format!(
                    "resumed from the checkpoint saved by run {} at {}",
                    c.run_id, c.saved_at
                )
            });
            state
                .database
                .start_unit(&unit.name, &started_at, override_reason.clone());

            let mut retries = 0;
            let outcome = loop {
                let outcome = if self.interrupt.load(Ordering::Relaxed) {
                    Err((
                        "interrupted by the operator (SIGINT) before the unit started".to_owned(),
                        FailureCause::Call(CallError::Interrupted),
                    ))
                } else {
                    self.run_unit(unit).await
                };
                // A commit that failed after another connection committed cannot be rerun:
                // that connection's writes would be applied twice.
                let retryable = |cause: &FailureCause, state: &mut RunState| {
                    is_conflict(cause)
                        && (!matches!(cause, FailureCause::Commit(_))
                            || state.database.writable_count() <= 1)
                };
                match &outcome {
                    Err((message, cause))
                        if retries < self.conflict_retries
                            && retryable(cause, self.instance.state()) =>
                    {
                        retries += 1;
                        tracing::warn!(
                            unit = %unit.name,
                            retry = retries,
                            of = self.conflict_retries,
                            "conflict: {message}; the unit was rolled back and runs again"
                        );
                        self.rollback_all().await;
                        self.instance.state().database.take_writes();
                    }
                    Err((message, cause)) if is_conflict(cause) => {
                        let hint = if self.conflict_retries == 0 {
                            "a conflict: `[limits] conflict_retries` would run the unit again"
                                .to_owned()
                        } else {
                            format!(
                                "still a conflict after {retries} retries (`[limits] conflict_retries`)"
                            )
                        };
                        break Err((format!("{message} ({hint})"), outcome.unwrap_err().1));
                    }
                    _ => break outcome,
                }
            };
            let database = &mut self.instance.state().database;
            let writes = database.take_writes();
            let checkpoints = database.end_unit();
            let status = match (&outcome, self.dry_run) {
                (Ok(()), false) => UnitStatus::Committed,
                (Ok(()), true) => UnitStatus::DryRun,
                (Err(_), _) => UnitStatus::Failed,
            };
            self.observer.phase_finished(&phase, outcome.is_ok());
            report.units.push(UnitReport {
                name: unit.name.clone(),
                status,
                duration_ms: started.elapsed().as_millis() as u64,
                writes,
                note: {
                    let retried = (retries > 0).then(|| {
                        format!(
                            "run {} times: conflicts ({retries}) were retried",
                            retries + 1
                        )
                    });
                    match (resumed, retried) {
                        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                        (a, b) => a.or(b),
                    }
                },
            });
            match outcome {
                Ok(()) => committed.push(unit.name.clone()),
                Err((message, cause)) => {
                    self.rollback_all().await;
                    let not_run: Vec<&str> = units[index + 1..]
                        .iter()
                        .map(|(u, _)| u.name.as_str())
                        .collect();
                    for name in &not_run {
                        report.units.push(UnitReport {
                            name: (*name).to_owned(),
                            status: UnitStatus::NotRun,
                            duration_ms: 0,
                            writes: BTreeMap::new(),
                            note: None,
                        });
                    }
                    let mut consequence = consequence(
                        &unit.name,
                        self.dry_run,
                        self.tape.is_live(),
                        &committed,
                        &not_run,
                    );
                    let escapes = self.instance.state().database.escapes();
                    if !escapes.is_empty() {
                        consequence = escaped_consequence(&unit.name, &escapes, &consequence);
                    }
                    if checkpoints > 0 && !self.dry_run && self.tape.is_live() {
                        consequence.push_str(&format!(
                            "; `{}` keeps the work of its {checkpoints} saved checkpoint(s) and resumes from the last one when run again",
                            unit.name
                        ));
                    }
                    report.failure = Some(RunFailure {
                        phase: format!("unit `{}`", unit.name),
                        message,
                        consequence,
                        cause,
                    });
                    return;
                }
            }
        }
        let state = self.instance.state();
        state.log.set_unit(None);
        state.checks.set_unit(None);
    }

    /// One unit: its transactions, the export call, its ledger row, the commit. The
    /// plugin's checkpoints commit in between (see `DatabaseCtx::save_checkpoint`).
    async fn run_unit(&mut self, unit: &UnitInfo) -> Result<(), (String, FailureCause)> {
        if !self.dry_run {
            self.begin_all().await.map_err(begin_failure)?;
        }
        let tape_err = |e: TapeError| (e.to_string(), FailureCause::Tape(e));
        self.tape
            .export("run-unit", Some(&unit.name), None)
            .map_err(tape_err)?;
        let result = self.instance.run_unit(&unit.name).await;
        // A divergence inside the call is the news; the export's end would only echo it.
        if !matches!(result, Err(CallError::Tape(_))) {
            self.tape
                .export_end("run-unit", result.as_ref().err().map(ToString::to_string))
                .map_err(tape_err)?;
        }
        // A statement that escaped its session fails the unit, whatever the plugin made of it.
        let escapes = self.instance.state().database.escapes();
        if !escapes.is_empty() {
            return Err(escape_failure(&escapes));
        }
        // A checkpoint that failed to commit fails the unit, whatever the plugin made of it.
        if let Some(failure) = self.instance.state().database.take_checkpoint_failure() {
            return Err((failure.message, FailureCause::Commit(failure.error)));
        }
        if let Err(error) = result {
            return Err((error.to_string(), FailureCause::Call(error)));
        }
        if !self.dry_run {
            // Nothing commits without the run lock: had its connection been ended (by the
            // plugin's `pg_terminate_backend`, say), a second run could be running beside this one.
            for lock in &mut self.locks {
                if let Err(why) = lock.verify().await {
                    let message =
                        format!("the run lock was lost: {why}; the unit was not committed");
                    return Err((
                        message.clone(),
                        FailureCause::Commit(DbError::new(db::DbErrorKind::Refused, message)),
                    ));
                }
            }
            let database = &mut self.instance.state().database;
            let committed = match database.record_unit(ledger::STATUS_FINISHED, None).await {
                Ok(()) => database.commit_all().await,
                Err(e) => Err(e),
            };
            if let Err(f) = committed {
                // A cursor's escape is found when the commit checks the session.
                let escapes = database.escapes();
                if !escapes.is_empty() {
                    return Err(escape_failure(&escapes));
                }
                return Err((f.message, FailureCause::Commit(f.error)));
            }
        }
        Ok(())
    }

    /// Ends the dry-run on every connection (sequences restored, scratch dropped); returns the
    /// notes of what was restored or left, per connection.
    async fn leave_dry_run(
        &mut self,
        mut guards: BTreeMap<String, db::DryRunGuard>,
    ) -> Vec<(String, Vec<String>)> {
        let mut notes = Vec::new();
        for conn in self.instance.state().database.connections_mut() {
            if let Some(guard) = guards.remove(conn.name()) {
                let restore = conn.leave_dry_run(guard).await;
                if !restore.is_clean() {
                    tracing::warn!(
                        connection = conn.name(),
                        "the dry-run could not restore everything: {:?}",
                        restore.notes()
                    );
                }
                notes.push((conn.name().to_owned(), restore.notes()));
            }
        }
        notes
    }

    /// Creates the ledger table on every writable connection where it is missing.
    async fn ensure_ledgers(&mut self) -> Result<(), RunError> {
        let database = &mut self.instance.state().database;
        let Some(ledger) = database.ledger().map(|l| l.ledger.clone()) else {
            return Ok(());
        };
        for conn in database.connections_mut() {
            if conn.access() == Access::ReadWrite {
                ledger
                    .ensure(conn)
                    .await
                    .map_err(|error| RunError::Ledger {
                        connection: conn.name().to_owned(),
                        table: ledger.table().to_owned(),
                        error,
                    })?;
            }
        }
        Ok(())
    }

    async fn verify(&mut self, report: &mut RunReport) {
        self.observer.phase_started("verify");
        let result = self.verify_inner().await;
        self.observer.phase_finished("verify", result.is_ok());
        if let Err((message, cause)) = result {
            report.failure = Some(RunFailure {
                phase: "verify".into(),
                message,
                consequence: if self.dry_run || !self.tape.is_live() {
                    "nothing was changed".into()
                } else {
                    "every unit stayed committed; verification did not finish".into()
                },
                cause,
            });
        }
    }

    async fn verify_inner(&mut self) -> Result<(), (String, FailureCause)> {
        if !self.dry_run {
            self.begin_all().await.map_err(begin_failure)?;
        }
        let tape_err = |e: TapeError| (e.to_string(), FailureCause::Tape(e));
        let marked = self.tape.export("verify", None, None).map_err(tape_err);
        let result = match marked {
            Ok(_) => {
                let result = self.instance.verify().await;
                let ended = if matches!(result, Err(CallError::Tape(_))) {
                    Ok(())
                } else {
                    self.tape
                        .export_end("verify", result.as_ref().err().map(ToString::to_string))
                };
                match ended {
                    Ok(()) => {
                        result.map_err(|error| (error.to_string(), FailureCause::Call(error)))
                    }
                    Err(e) => Err(tape_err(e)),
                }
            }
            Err(e) => Err(e),
        };
        if !self.dry_run {
            self.rollback_all().await;
        }
        let escapes = self.instance.state().database.escapes();
        if !escapes.is_empty() {
            return Err(escape_failure(&escapes));
        }
        result
    }

    /// Moves the checks and messages gathered by the capabilities into the report.
    fn collect(&mut self, report: &mut RunReport) {
        let state = self.instance.state();
        let (checks, checks_not_kept) = state.checks.take_results();
        report.checks.extend(checks);
        report.checks_not_kept = checks_not_kept;
        let (messages, not_kept) = state.log.take_messages();
        report.messages = messages;
        report.messages_not_kept = not_kept;
    }

    async fn begin_all(&mut self) -> Result<(), RunError> {
        self.instance.state().database.begin_all().await
    }

    async fn rollback_all(&mut self) {
        self.instance
            .state()
            .database
            .rollback_all(ROLLBACK_TIMEOUT)
            .await;
    }

    async fn close(self) {
        let state = self.instance.into_state();
        state.database.close().await;
    }
}

/// A phase's failure when plugin statements escaped their sessions.
fn escape_failure(escapes: &[db::SessionEscape]) -> (String, FailureCause) {
    let found: Vec<String> = escapes
        .iter()
        .map(|e| format!("connection `{}`: {}", e.connection, e.found))
        .collect();
    let message = format!(
        "the plugin's SQL took the session out of the host's hands ({}); the host closed the connection to the plugin",
        found.join("; ")
    );
    (
        message.clone(),
        FailureCause::Commit(DbError::new(db::DbErrorKind::Refused, message)),
    )
}

/// The consequence of a failed unit when statements escaped: what may have been committed
/// where, never "rolled back on every connection".
fn escaped_consequence(unit: &str, escapes: &[db::SessionEscape], usual: &str) -> String {
    let mut parts = vec![format!(
        "unit `{unit}` could not be rolled back everywhere: {}",
        describe_escapes(escapes)
    )];
    parts.push("its other connections were rolled back".to_owned());
    // Keep what the usual sentence says about other units.
    parts.extend(usual.split("; ").skip(1).map(str::to_owned));
    parts.join("; ")
}

fn begin_failure(e: RunError) -> (String, FailureCause) {
    let message = format!("cannot begin the unit's transaction: {e}");
    match e {
        RunError::Begin { error, .. } => (message, FailureCause::Commit(error)),
        RunError::Tape(error) => (message, FailureCause::Tape(error)),
        _ => unreachable!("begin_all fails only with Begin or Tape"),
    }
}

fn consequence(
    unit: &str,
    dry_run: bool,
    live: bool,
    committed: &[String],
    not_run: &[&str],
) -> String {
    if !live {
        return "nothing was changed (replay: no database was contacted)".into();
    }
    if dry_run {
        return "nothing was changed (dry-run): every transaction was rolled back".into();
    }
    let mut parts = vec![format!("unit `{unit}` was rolled back on every connection")];
    if committed.is_empty() {
        parts.push("no unit was committed".into());
    } else {
        parts.push(format!(
            "earlier units stay committed: {}",
            committed
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !not_run.is_empty() {
        parts.push(format!(
            "not run: {}",
            not_run
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::{resolve_declared_writes, store_plugin_copy};
    use crate::contract::{ConfigKey, ConnectionNeed, PluginInfo};
    use crate::db::Access;

    fn declaring(writes: &[&str]) -> PluginInfo {
        let key = |name: &str, secret: bool| ConfigKey {
            name: name.into(),
            description: String::new(),
            required: true,
            default_value: None,
            secret,
        };
        PluginInfo {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            connections: vec![ConnectionNeed {
                name: "app".into(),
                access: Access::ReadWrite,
                description: String::new(),
                writes: writes.iter().map(|w| (*w).to_owned()).collect(),
            }],
            units: Vec::new(),
            config: vec![
                key("table", false),
                key("schema", false),
                key("password", true),
            ],
        }
    }

    fn resolve(writes: &[&str], values: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let mut info = declaring(writes);
        let values: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve_declared_writes(&mut info, &values).map_err(|e| e.to_string())?;
        Ok(info.connections[0].writes.clone())
    }

    #[test]
    fn declared_writes_take_configured_table_names() {
        assert_eq!(
            resolve(
                &[
                    "${table}",
                    "${schema}.${table}_history",
                    "audit",
                    "me_<slug>.memory"
                ],
                &[("table", "accounts"), ("schema", "app")]
            )
            .unwrap(),
            [
                "accounts",
                "app.accounts_history",
                "audit",
                "me_<slug>.memory"
            ]
        );
        let refused = |writes: &[&str], values: &[(&str, &str)], needle: &str| {
            let e = resolve(writes, values).unwrap_err();
            assert!(e.contains(needle), "{e}");
            assert!(
                e.starts_with("connection `app` declares it writes `"),
                "{e}"
            );
        };
        refused(&["${tabel}"], &[("table", "a")], "no config key `tabel`");
        refused(&["${table"], &[("table", "a")], "without its closing `}`");
        refused(&["${password}"], &[("password", "hunter2")], "is secret");
        refused(
            &["${table}"],
            &[("table", "a; DROP")],
            "cannot be part of a table name",
        );
        refused(
            &["${table}"],
            &[("table", "../etc")],
            "cannot be part of a table name",
        );
        refused(&["${table}"], &[("table", "a.b.c")], "names no table");
        refused(&["${table}"], &[("table", "")], "names no table");
    }

    /// Regression: three sharded workers started at once on a fresh journal
    /// directory; one renamed the shared partial file away under another,
    /// which then failed to start ("plugins/<sha>.wasm: No such file").
    #[test]
    fn workers_storing_the_same_plugin_at_once_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            for worker in 0..8 {
                let (dir, bytes, start) = (dir.path(), &bytes, &start);
                scope.spawn(move || {
                    start.wait();
                    store_plugin_copy(dir, "abc", bytes, &format!("run-{worker}"))
                        .unwrap_or_else(|(path, e)| panic!("worker {worker}: {path:?}: {e}"));
                });
            }
        });
        let copy = dir.path().join("plugins").join("abc.wasm");
        assert_eq!(std::fs::read(copy).unwrap(), bytes);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("plugins"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["abc.wasm"], "no partial file is left behind");
    }
}
