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
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capability::database::{DatabaseCtx, WriteCounts};
use crate::config::{RunConfig, redact_url};
use crate::contract::{ContractVersion, PluginInfo, UnitInfo};
use crate::db::{self, Access, DbError, Dialect};
use crate::observer::{CheckResult, LogEvent, RunObserver, Silent};
use crate::runtime::sandbox::SandboxSeeds;
use crate::runtime::{CallError, LoadError, LoadedPlugin, PluginInstance, RunState, Runtime};

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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            only: None,
            seeds: None,
            observer: Arc::new(Silent),
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
    /// A required configuration key has no value.
    #[error("missing config key `{key}` (required by the plugin: {description})")]
    MissingConfigKey {
        /// The key.
        key: String,
        /// What the plugin says it is for.
        description: String,
    },
    /// The operator granted less than the plugin needs.
    #[error("connection `{connection}`: the plugin needs {needed} access but the config grants only {granted}")]
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
    /// `--only` names units the plugin does not have.
    #[error("unknown unit(s) {names}: the plugin's units are {available}")]
    UnknownUnits {
        /// The unknown names.
        names: String,
        /// The units there are.
        available: String,
    },
    /// A transaction could not be opened before the first unit.
    #[error("connection `{connection}`: cannot begin a transaction: {error}")]
    Begin {
        /// The connection.
        connection: String,
        /// Why.
        error: DbError,
    },
}

impl RunError {
    /// The process exit code for this error: 2, nothing ran.
    pub fn exit_code(&self) -> i32 {
        2
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
    /// The plugin's messages (all of them up to a bound, warnings always).
    pub messages: Vec<LogEvent>,
    /// The failure, if the run did not finish.
    pub failure: Option<RunFailure>,
    /// Wall time of the whole run, in milliseconds.
    pub duration_ms: u64,
}

impl RunReport {
    /// Whether every check passed.
    pub fn checks_passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Whether the run finished and every check passed.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none() && self.checks_passed()
    }

    /// The process exit code: 0 success, 1 the run failed, 3 it finished but a check failed.
    pub fn exit_code(&self) -> i32 {
        if self.failure.is_some() {
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

/// Instantiates a plugin and calls `describe`, opening no connection.
pub async fn inspect(plugin: &LoadedPlugin) -> Result<Inspection, RunError> {
    let runtime = Runtime::shared();
    let limits = crate::config::Limits::default();
    let state = RunState::new(
        DatabaseCtx::new(BTreeMap::new()),
        Arc::new(Silent),
        SandboxSeeds::fresh(),
        &limits,
    );
    let mut instance = PluginInstance::instantiate(runtime, plugin, state, limits).await?;
    let info = instance
        .describe()
        .await
        .map_err(|error| RunError::Plugin { phase: "describe", error })?;
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
pub async fn run(plugin: &LoadedPlugin, config: &RunConfig, options: RunOptions) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let runtime = Runtime::shared();
    let seeds = options.seeds.unwrap_or_else(SandboxSeeds::fresh);
    let state = RunState::new(
        DatabaseCtx::new(BTreeMap::new()),
        options.observer.clone(),
        seeds,
        &config.limits,
    );
    let mut instance = PluginInstance::instantiate(runtime, plugin, state, config.limits).await?;

    options.observer.phase_started("describe");
    let info = instance
        .describe()
        .await
        .map_err(|error| RunError::Plugin { phase: "describe", error })?;
    options.observer.phase_finished("describe", true);
    let values = plugin_values(&info, config)?;
    let (connections, connection_reports) = connect_all(&info, config, options.dry_run).await?;
    let mut dry_run_ddl_refused = false;
    let mut connections = connections;
    if options.dry_run {
        for conn in connections.values_mut() {
            if conn.dialect() == Dialect::MySql {
                conn.refuse_ddl(Some(
                    "DDL is refused during a dry-run on MySQL/MariaDB: it commits implicitly and could not be rolled back"
                        .into(),
                ));
                dry_run_ddl_refused = true;
            }
        }
    }
    tracing::debug!(dry_run_ddl_refused, "connections open");
    instance.state().database = DatabaseCtx::new(connections);

    let mut runner = Runner {
        instance,
        dry_run: options.dry_run,
        observer: options.observer.clone(),
    };
    let prepared = runner.prepare(values, options.only.as_deref()).await;
    let selected = match prepared {
        Ok(units) => units,
        Err(e) => {
            runner.close().await;
            return Err(e);
        }
    };

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
        failure: None,
        duration_ms: 0,
    };
    runner.run_units(&selected, &mut report).await;
    if report.failure.is_none() {
        runner.verify(&mut report).await;
    }
    if runner.dry_run {
        runner.rollback_all().await;
    }
    let state = runner.instance.state();
    report.checks.extend(state.checks.take_results());
    let (messages, _dropped) = state.log.take_messages();
    report.messages = messages;
    runner.close().await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The plugin's configuration values: every given key known, every required key present, defaults applied.
fn plugin_values(info: &PluginInfo, config: &RunConfig) -> Result<Vec<(String, String)>, RunError> {
    for key in config.values.keys() {
        if !info.config.iter().any(|k| &k.name == key) {
            let known: Vec<String> = info.config.iter().map(|k| format!("`{}`", k.name)).collect();
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
        let missing_sqlite_file = sqlite_file(&resolved.url).filter(|path| !path.exists());
        if need.access == Access::ReadWrite
            && let Some(path) = missing_sqlite_file
        {
            if dry_run {
                // A dry-run must not even create a file: an empty in-memory database is
                // exactly what the plugin would find in a new file.
                url = "sqlite::memory:".to_owned();
                note = Some("does not exist yet: the dry-run uses an empty in-memory database".to_owned());
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
    Ok((connections, reports))
}

struct Runner {
    instance: PluginInstance,
    dry_run: bool,
    observer: Arc<dyn RunObserver>,
}

impl Runner {
    /// `configure` and `list-units`, then the unit selection. In a dry-run the
    /// run-long transactions begin here; otherwise these calls get transactions
    /// of their own that are rolled back.
    async fn prepare(
        &mut self,
        values: Vec<(String, String)>,
        only: Option<&[String]>,
    ) -> Result<Vec<UnitInfo>, RunError> {
        self.begin_all().await?;
        let configured = self.instance.configure(values).await;
        let units = match configured {
            Ok(()) => self.instance.list_units().await.map_err(|error| RunError::Plugin {
                phase: "list-units",
                error,
            }),
            Err(error) => Err(RunError::Plugin {
                phase: "configure",
                error,
            }),
        };
        if !self.dry_run || units.is_err() {
            self.rollback_all().await;
        }
        let units = units?;
        let Some(only) = only else {
            return Ok(units);
        };
        let unknown: Vec<&String> = only.iter().filter(|n| !units.iter().any(|u| &u.name == *n)).collect();
        if !unknown.is_empty() {
            if self.dry_run {
                self.rollback_all().await;
            }
            return Err(RunError::UnknownUnits {
                names: unknown.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                available: units.iter().map(|u| format!("`{}`", u.name)).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(units.into_iter().filter(|u| only.contains(&u.name)).collect())
    }

    async fn run_units(&mut self, units: &[UnitInfo], report: &mut RunReport) {
        let mut committed: Vec<String> = Vec::new();
        for (index, unit) in units.iter().enumerate() {
            let phase = format!("unit {}", unit.name);
            self.observer.phase_started(&phase);
            let started = Instant::now();
            let state = self.instance.state();
            state.log.set_unit(Some(unit.name.clone()));
            state.checks.set_unit(Some(unit.name.clone()));
            state.database.take_writes();

            let mut outcome = Ok(());
            if !self.dry_run
                && let Err(e) = self.begin_all().await
            {
                outcome = Err((
                    format!("cannot begin the unit's transaction: {e}"),
                    FailureCause::Commit(match e {
                        RunError::Begin { error, .. } => error,
                        _ => unreachable!("begin_all only fails with Begin"),
                    }),
                ));
            }
            if outcome.is_ok()
                && let Err(error) = self.instance.run_unit(&unit.name).await
            {
                outcome = Err((error.to_string(), FailureCause::Call(error)));
            }
            if outcome.is_ok() && !self.dry_run {
                outcome = self.commit_all().await.map_err(|(conn, error)| {
                    (
                        format!("commit on connection `{conn}` failed: {error}"),
                        FailureCause::Commit(error),
                    )
                });
            }
            let writes = self.instance.state().database.take_writes();
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
            });
            match outcome {
                Ok(()) => committed.push(unit.name.clone()),
                Err((message, cause)) => {
                    self.rollback_all().await;
                    let not_run: Vec<&str> = units[index + 1..].iter().map(|u| u.name.as_str()).collect();
                    for name in &not_run {
                        report.units.push(UnitReport {
                            name: (*name).to_owned(),
                            status: UnitStatus::NotRun,
                            duration_ms: 0,
                            writes: BTreeMap::new(),
                        });
                    }
                    report.failure = Some(RunFailure {
                        phase: format!("unit `{}`", unit.name),
                        message,
                        consequence: consequence(&unit.name, self.dry_run, &committed, &not_run),
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

    async fn verify(&mut self, report: &mut RunReport) {
        self.observer.phase_started("verify");
        if !self.dry_run
            && let Err(e) = self.begin_all().await
        {
            self.observer.phase_finished("verify", false);
            report.failure = Some(RunFailure {
                phase: "verify".into(),
                message: e.to_string(),
                consequence: "every unit stayed committed; verification did not run".into(),
                cause: FailureCause::Commit(match e {
                    RunError::Begin { error, .. } => error,
                    _ => unreachable!("begin_all only fails with Begin"),
                }),
            });
            return;
        }
        let result = self.instance.verify().await;
        if !self.dry_run {
            self.rollback_all().await;
        }
        self.observer.phase_finished("verify", result.is_ok());
        if let Err(error) = result {
            report.failure = Some(RunFailure {
                phase: "verify".into(),
                message: error.to_string(),
                consequence: if self.dry_run {
                    "nothing was changed (dry-run)".into()
                } else {
                    "every unit stayed committed; verification did not finish".into()
                },
                cause: FailureCause::Call(error),
            });
        }
    }

    async fn begin_all(&mut self) -> Result<(), RunError> {
        for conn in self.instance.state().database.connections_mut() {
            conn.begin().await.map_err(|error| RunError::Begin {
                connection: conn.name().to_owned(),
                error,
            })?;
        }
        Ok(())
    }

    /// Commits the writable connections (read-only ones are rolled back: they have nothing to commit).
    async fn commit_all(&mut self) -> Result<(), (String, DbError)> {
        for conn in self.instance.state().database.connections_mut() {
            let result = if conn.access() == Access::ReadWrite {
                conn.commit().await
            } else {
                conn.rollback().await
            };
            result.map_err(|e| (conn.name().to_owned(), e))?;
        }
        Ok(())
    }

    async fn rollback_all(&mut self) {
        for conn in self.instance.state().database.connections_mut() {
            if !conn.in_transaction() {
                continue;
            }
            match tokio::time::timeout(ROLLBACK_TIMEOUT, conn.rollback()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(connection = conn.name(), "rollback failed (the server discards the transaction when the connection closes): {e}"),
                Err(_) => tracing::warn!(connection = conn.name(), "rollback timed out; the connection will be closed"),
            }
        }
    }

    async fn close(self) {
        let state = self.instance.into_state();
        state.database.close().await;
    }
}

/// The file a SQLite URL names, if any (not for in-memory databases).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

fn consequence(unit: &str, dry_run: bool, committed: &[String], not_run: &[&str]) -> String {
    if dry_run {
        return "nothing was changed (dry-run): every transaction was rolled back".into();
    }
    let mut parts = vec![format!("unit `{unit}` was rolled back on every connection")];
    if committed.is_empty() {
        parts.push("no unit was committed".into());
    } else {
        parts.push(format!(
            "earlier units stay committed: {}",
            committed.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    if !not_run.is_empty() {
        parts.push(format!(
            "not run: {}",
            not_run.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    parts.join("; ")
}
