//! Opening and guarding the run's targets: grants checked and every declared
//! connection opened (`connect_all`), each role's privileges read; the run lock
//! taken and the ledgers read on every writable target (`guard_targets`); stale
//! dry-run scratch dropped and, in a dry-run, every connection put in dry-run
//! mode (`prepare_targets`); statements bounded (`limit_statements`). The
//! connections then have one owner, [`OpenConnections`], so every exit of a run
//! closes them once.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::RunConfig;
use crate::contract::PluginInfo;
use crate::db::{self, Access, DbError};
use crate::ledger::{CheckpointRow, LedgerRow, UnitKey};
use crate::lock::{self, RunLock};

use super::inputs::Inputs;
use super::units::Runner;
use super::{ConnectionReport, RunError, RunOptions};

/// The run's open connections, whoever holds them: the host while it guards and
/// prepares the targets, then the plugin's [`Runner`]. The flow closes them once,
/// with [`OpenConnections::close`], on every way out of the run.
pub(super) struct OpenConnections {
    /// Held by the host (empty once handed over).
    host: BTreeMap<String, db::Connection>,
    /// The run locks of the writable targets, held by the host until the hand-over (and
    /// released after the connections are closed).
    locks: Vec<RunLock>,
    /// The runner that holds them since the hand-over.
    runner: Option<Runner>,
}

impl OpenConnections {
    /// None yet: `connect_all` opens them into [`OpenConnections::host_mut`].
    pub(super) fn new() -> Self {
        OpenConnections {
            host: BTreeMap::new(),
            locks: Vec::new(),
            runner: None,
        }
    }

    /// The connections while the host holds them.
    pub(super) fn host_mut(&mut self) -> &mut BTreeMap<String, db::Connection> {
        &mut self.host
    }

    /// Keeps the run locks `guard_targets` took until the hand-over or the close.
    pub(super) fn hold_locks(&mut self, locks: Vec<RunLock>) {
        self.locks = locks;
    }

    /// Hands the connections and the run locks to the runner `start` makes of them; it
    /// holds them until the run closes.
    pub(super) fn hand_over(
        &mut self,
        start: impl FnOnce(BTreeMap<String, db::Connection>, Vec<RunLock>) -> Runner,
    ) -> &mut Runner {
        let connections = std::mem::take(&mut self.host);
        let locks = std::mem::take(&mut self.locks);
        self.runner.insert(start(connections, locks))
    }

    /// Closes every connection, wherever it is held; the run locks go last.
    pub(super) async fn close(self) {
        for (_, conn) in self.host {
            conn.close().await;
        }
        if let Some(runner) = self.runner {
            runner.close().await;
        }
        drop(self.locks);
    }
}

/// Bounds what a connection can cost: a `query` result is capped at the plugin's memory
/// limit (`db::Connection::limit_results`), and statements are bounded on the server too,
/// by the plugin's wall-clock limit per call.
pub(super) async fn limit_statements(
    connections: &mut BTreeMap<String, db::Connection>,
    inputs: &Inputs,
    config: &RunConfig,
) -> Result<(), RunError> {
    let max_result_bytes =
        usize::try_from(config.limits.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let statement_limit = Duration::from_secs(config.limits.timeout_secs);
    for (name, conn) in connections.iter_mut() {
        conn.limit_results(max_result_bytes);
        if let Err(error) = conn.limit_statement_time(statement_limit).await {
            return Err(RunError::Connect {
                connection: name.clone(),
                url: inputs.connection(name).redacted_url.clone(),
                error,
            });
        }
    }
    Ok(())
}

/// Takes the run lock on every writable connection and reads which units of this plugin
/// finished there. The ledger table itself is created only once the run is certain to start.
pub(super) async fn guard_targets(
    connections: &mut BTreeMap<String, db::Connection>,
    inputs: &Inputs,
    options: &RunOptions,
) -> Result<(Vec<RunLock>, Ledgers), RunError> {
    let Inputs {
        info,
        ledger,
        run_id,
        ..
    } = inputs;
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
        let input = inputs.connection(name);
        let file = input.sqlite_file.as_deref().filter(|p| p.exists());
        locks.push(
            lock::acquire(
                name,
                &input.url,
                &lock_name,
                options.shard.is_some().then_some(base_lock.as_str()),
                run_id,
                file,
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
            match ledgers.checkpoints.get(&row.key()) {
                Some(first) if first.state != row.state => tracing::warn!(
                    unit = %row.key(),
                    connection = name.as_str(),
                    "the targets' ledgers hold different checkpoints for this unit; resuming from the first target's"
                ),
                Some(_) => {}
                None => {
                    ledgers.checkpoints.insert(row.key(), row);
                }
            }
        }
    }
    Ok((locks, ledgers))
}

/// What the writable targets' ledgers say about this plugin before the run.
#[derive(Debug, Default)]
pub(super) struct Ledgers {
    /// Finished units, per target.
    pub(super) finished: BTreeMap<String, Vec<LedgerRow>>,
    /// The last checkpoint of each unfinished unit (by name and scope) that saved one.
    pub(super) checkpoints: BTreeMap<UnitKey, CheckpointRow>,
}

/// Drops MySQL scratch databases left by crashed dry-runs and, in a dry-run, puts every
/// connection in dry-run mode: PostgreSQL sequences are snapshotted, MySQL/MariaDB works
/// in a scratch copy (so DDL can run and be thrown away). See `db::dry_run`.
pub(super) async fn prepare_targets(
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

/// Opens every connection the plugin declared (grants were checked when the inputs
/// were resolved) into `connections`, whose owner closes them, also those opened
/// before a failure.
pub(super) async fn connect_all(
    connections: &mut BTreeMap<String, db::Connection>,
    inputs: &Inputs,
    dry_run: bool,
) -> Result<Vec<ConnectionReport>, RunError> {
    let mut reports = Vec::new();
    for input in &inputs.connections {
        let mut url = input.url.clone();
        let mut note = None;
        let missing_sqlite_file = input.sqlite_file.as_ref().filter(|path| !path.exists());
        if input.access == Access::ReadWrite
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
        match db::Connection::connect(&input.name, &url, input.access).await {
            Ok(conn) => {
                reports.push(ConnectionReport {
                    name: input.name.clone(),
                    dialect: conn.dialect(),
                    access: input.access,
                    url: input.redacted_url.clone(),
                    embedded_default: input.embedded_default,
                    note,
                    privileges: None,
                });
                connections.insert(input.name.clone(), conn);
            }
            Err(mut error) => {
                if input.embedded_default && input.access == Access::ReadOnly {
                    error.message = format!(
                        "{} (embedded default: the plugin reads `{}` from this SQLite file, which must exist; seed it or configure the connection)",
                        error.message, input.name
                    );
                }
                return Err(RunError::Connect {
                    connection: input.name.clone(),
                    url: input.redacted_url.clone(),
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
        let allowed = inputs.connection(&report.name).allow_privileged;
        match db::privileges::check_at_start(conn, report.access, allowed).await {
            Ok(warning) => report.privileges = warning,
            Err(refusal) => return Err(refusal.into()),
        }
    }
    Ok(reports)
}
