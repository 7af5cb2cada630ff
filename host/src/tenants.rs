//! One plugin across many tenant databases.
//!
//! `[tenants]` in `migrun.toml` says which tenants there are (names, a file of names, or
//! a read-only query), and every connection URL holding `${tenant}` names a tenant's
//! database. [`run_tenants`] runs the plugin once per tenant: each is the ordinary
//! [`run::run`] on [`RunConfig::for_tenant`] — so each tenant has its own ledger and run
//! lock (they live in its database), its own journal and backup folders
//! (`<dir>/<tenant>/`), and its connections are opened when its run starts and closed when
//! it ends: `--jobs N` tenants at once never hold more than N runs' connections, however
//! many tenants there are.
//!
//! This module owns listing the tenants ([`list_tenants`]), this worker's share of them
//! (`--shard`, by the same stable hash as units), running them `jobs` at a time, going on
//! past a failed tenant (`--keep-going`; otherwise no new tenant starts after a failure,
//! and the ones in flight finish), and the [`TenantsReport`]. A rerun runs again only
//! what is unfinished: every tenant's ledger skips the units it finished.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::config::{RunConfig, TENANT_PLACEHOLDER, TenantSource, check_tenant_name};
use crate::db::{self, Access, DbError};
use crate::observer::{RunObserver, Silent, UnitEnd};
use crate::run::{self, KEPT_GOING_EXIT_CODE, RunOptions, RunReport, UnitStatus};
use crate::runtime::LoadedPlugin;
use crate::value::Value;

/// Why the tenants could not be listed; nothing ran.
#[derive(Debug, thiserror::Error)]
pub enum TenantListError {
    /// The config has no `[tenants]` section.
    #[error("the config has no [tenants] section")]
    NotConfigured,
    /// The file of names could not be read.
    #[error("reading the tenants file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The query listing the tenants failed.
    #[error("listing the tenants with [tenants] query: {0}")]
    Query(#[source] DbError),
    /// A listed value is not a usable tenant name, or a name is listed twice.
    #[error("{where_}: {problem}")]
    BadName {
        /// Where it was listed (line of the file, row of the query).
        where_: String,
        /// What is wrong.
        problem: String,
    },
    /// The list is empty.
    #[error("[tenants] lists no tenant")]
    Empty,
}

/// The tenants `config` lists, in order, each name checked and listed once.
pub async fn list_tenants(config: &RunConfig) -> Result<Vec<String>, TenantListError> {
    let listed: Vec<(String, String)> = match config.tenants.as_ref() {
        None => return Err(TenantListError::NotConfigured),
        Some(TenantSource::Names(names)) => names
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("[tenants] names[{i}]"), n.clone()))
            .collect(),
        Some(TenantSource::File(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| TenantListError::File {
                path: path.clone(),
                source,
            })?;
            text.lines()
                .enumerate()
                .map(|(i, line)| (i, line.trim()))
                .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
                .map(|(i, line)| (format!("{}:{}", path.display(), i + 1), line.to_owned()))
                .collect()
        }
        Some(TenantSource::Query { url, sql }) => query_names(url, sql).await?,
    };
    let mut seen = std::collections::HashSet::new();
    let mut names = Vec::with_capacity(listed.len());
    for (where_, name) in listed {
        check_tenant_name(&name).map_err(|problem| TenantListError::BadName {
            where_: where_.clone(),
            problem,
        })?;
        if !seen.insert(name.clone()) {
            return Err(TenantListError::BadName {
                where_,
                problem: format!("tenant {name:?} is listed twice"),
            });
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(TenantListError::Empty);
    }
    Ok(names)
}

/// Runs `sql` on a read-only connection to `url` and takes its first column as the names.
async fn query_names(url: &str, sql: &str) -> Result<Vec<(String, String)>, TenantListError> {
    let mut conn = db::Connection::connect("tenants", url, Access::ReadOnly)
        .await
        .map_err(TenantListError::Query)?;
    let rows = conn.query(sql, &[]).await;
    conn.close().await;
    let rows = rows.map_err(TenantListError::Query)?;
    rows.rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let where_ = format!("[tenants] query row {}", i + 1);
            match row.into_iter().next() {
                Some(Value::Text(name)) => Ok((where_, name)),
                Some(Value::Int(n)) => Ok((where_, n.to_string())),
                other => Err(TenantListError::BadName {
                    where_,
                    problem: format!("the first column must be the tenant's name, got {other:?}"),
                }),
            }
        })
        .collect()
}

/// What became of one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TenantStatus {
    /// Its run committed at least one unit and succeeded.
    Migrated,
    /// Its run found every unit finished already (a rerun): nothing to do.
    UpToDate,
    /// Its run was a dry-run and succeeded.
    DryRun,
    /// Its run failed, did not start, or a check failed; see the error.
    Failed,
    /// It was not started: an earlier tenant failed (without `--keep-going`) or the run
    /// was interrupted.
    NotStarted,
}

impl TenantStatus {
    /// As the report spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Migrated => "migrated",
            TenantStatus::UpToDate => "up-to-date",
            TenantStatus::DryRun => "dry-run",
            TenantStatus::Failed => "failed",
            TenantStatus::NotStarted => "not-started",
        }
    }
}

/// One tenant's outcome: a summary of its run (its journal holds the rest).
#[derive(Debug, Clone, Serialize)]
pub struct TenantOutcome {
    /// The tenant.
    pub tenant: String,
    /// What became of it.
    pub status: TenantStatus,
    /// Its run's exit code as a single run would have had it (2: it did not start).
    pub exit_code: i32,
    /// Why it failed, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Units committed by this run.
    pub units_committed: usize,
    /// Units the ledger (or the plugin) skipped.
    pub units_skipped: usize,
    /// Units that failed.
    pub units_failed: Vec<String>,
    /// Its journal, if its run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<PathBuf>,
    /// How long its run took, in milliseconds.
    pub duration_ms: u64,
}

impl TenantOutcome {
    fn from_report(tenant: String, report: &RunReport, duration_ms: u64) -> TenantOutcome {
        let count = |status: UnitStatus| report.units.iter().filter(|u| u.status == status).count();
        let units_failed: Vec<String> = report
            .units
            .iter()
            .filter(|u| u.status == UnitStatus::Failed)
            .map(|u| u.name.clone())
            .collect();
        let exit_code = report.exit_code();
        let status = if exit_code != 0 {
            TenantStatus::Failed
        } else if report.dry_run {
            TenantStatus::DryRun
        } else if count(UnitStatus::Committed) > 0 {
            TenantStatus::Migrated
        } else {
            TenantStatus::UpToDate
        };
        // The failed units' own errors say why (with `--keep-going` the run's failure only
        // counts them); otherwise the run's failure, or a failed check.
        let unit_errors: Vec<String> = report
            .units
            .iter()
            .filter(|u| u.status == UnitStatus::Failed)
            .filter_map(|u| Some(format!("unit {}: {}", u.name, u.error.as_deref()?)))
            .collect();
        let error = match &report.failure {
            _ if !unit_errors.is_empty() => Some(unit_errors.join("; ")),
            Some(failure) => Some(format!("{}: {}", failure.phase, failure.message)),
            None if exit_code != 0 => Some("a check failed".to_owned()),
            None => None,
        };
        TenantOutcome {
            tenant,
            status,
            exit_code,
            error,
            units_committed: count(UnitStatus::Committed),
            units_skipped: count(UnitStatus::Skipped),
            units_failed,
            journal: report.journal.as_ref().map(|j| j.path.clone()),
            duration_ms,
        }
    }

    fn did_not_start(tenant: String, error: &run::RunError, duration_ms: u64) -> TenantOutcome {
        TenantOutcome {
            tenant,
            status: TenantStatus::Failed,
            exit_code: error.exit_code(),
            error: Some(format!("did not start, nothing was changed: {error}")),
            units_committed: 0,
            units_skipped: 0,
            units_failed: Vec::new(),
            journal: None,
            duration_ms,
        }
    }

    fn not_started(tenant: String) -> TenantOutcome {
        TenantOutcome {
            tenant,
            status: TenantStatus::NotStarted,
            exit_code: 0,
            error: None,
            units_committed: 0,
            units_skipped: 0,
            units_failed: Vec::new(),
            journal: None,
            duration_ms: 0,
        }
    }
}

/// What a run over tenants did: this worker's tenants in list order.
#[derive(Debug, Serialize)]
pub struct TenantsReport {
    /// How many tenants `[tenants]` listed (this worker's share may be fewer).
    pub listed: usize,
    /// This worker's shard `(index, count)`, if sharded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<(u32, u32)>,
    /// The tenants this worker took, in list order.
    pub tenants: Vec<TenantOutcome>,
    /// Whether `--keep-going` let the others run past a failure.
    pub kept_going: bool,
    /// Whether the run was interrupted (SIGINT).
    pub interrupted: bool,
}

impl TenantsReport {
    /// How many tenants ended with `status`.
    pub fn count(&self, status: TenantStatus) -> usize {
        self.tenants.iter().filter(|t| t.status == status).count()
    }

    /// The process exit code: 0 every tenant migrated or up to date; 130 interrupted;
    /// 4 some failed and the others ran (`--keep-going`); otherwise the first failed
    /// tenant's own code (1 a failed run, 2 did not start, 3 a check failed).
    pub fn exit_code(&self) -> i32 {
        let first_failed = self
            .tenants
            .iter()
            .find(|t| t.status == TenantStatus::Failed);
        if self.interrupted {
            130
        } else if let Some(failed) = first_failed {
            if self.kept_going {
                KEPT_GOING_EXIT_CODE
            } else {
                failed.exit_code.max(1)
            }
        } else {
            0
        }
    }
}

/// Runs `plugin` once per tenant of `tenants`. `options` are each tenant's run's options,
/// except: `jobs` is how many tenants run at once (each tenant's units run one after
/// another), `shard` picks this worker's tenants, `keep_going` also lets the other tenants
/// run past a failed one, and `observer` hears of tenants (`units_planned` with tenant
/// counts, `unit_started`/`unit_finished` per tenant) rather than of each tenant's units.
pub async fn run_tenants(
    plugin: Arc<LoadedPlugin>,
    config: &RunConfig,
    tenants: Vec<String>,
    options: RunOptions,
) -> TenantsReport {
    let listed = tenants.len();
    let mine: Vec<String> = match options.shard {
        Some((index, count)) => tenants
            .into_iter()
            .filter(|t| crate::ledger::in_shard(t, index, count))
            .collect(),
        None => tenants,
    };
    let observer = options.observer.clone();
    observer.units_planned(mine.len() as u64, mine.len() as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let jobs = options.jobs.max(1) as usize;
    let mut outcomes: Vec<Option<TenantOutcome>> = vec![None; mine.len()];
    let mut running = tokio::task::JoinSet::new();
    let mut running_index = std::collections::HashMap::new();
    let mut next = 0usize;
    loop {
        while running.len() < jobs
            && next < mine.len()
            && !stop.load(Ordering::Acquire)
            && !options.interrupt.load(Ordering::Relaxed)
        {
            let index = next;
            next += 1;
            let tenant = mine[index].clone();
            let tenant_config = config.for_tenant(&tenant);
            let tenant_options = RunOptions {
                shard: None,
                jobs: 1,
                observer: Arc::new(Silent) as Arc<dyn RunObserver>,
                ..options.clone()
            };
            let plugin = plugin.clone();
            observer.phase_started(&format!("tenant {tenant}"));
            observer.unit_started(&tenant, None);
            let handle = running.spawn(async move {
                let started = Instant::now();
                let result = run::run(&plugin, &tenant_config, tenant_options).await;
                let ms = started.elapsed().as_millis() as u64;
                match &result {
                    Ok(report) => TenantOutcome::from_report(tenant, report, ms),
                    Err(error) => TenantOutcome::did_not_start(tenant, error, ms),
                }
            });
            running_index.insert(handle.id(), index);
        }
        let Some(joined) = running.join_next_with_id().await else {
            break;
        };
        let (index, outcome) = match joined {
            Ok((id, outcome)) => (running_index[&id], outcome),
            Err(panic) => {
                // A panicking run dropped its connections (the servers roll back what
                // was open); its tenant is reported failed.
                let index = running_index[&panic.id()];
                tracing::error!("the run of tenant {} stopped: {panic}", mine[index]);
                let mut outcome = TenantOutcome::not_started(mine[index].clone());
                outcome.status = TenantStatus::Failed;
                outcome.exit_code = 1;
                outcome.error = Some(format!("its run stopped unexpectedly: {panic}"));
                (index, outcome)
            }
        };
        if outcome.status == TenantStatus::Failed && !options.keep_going {
            stop.store(true, Ordering::Release);
        }
        observer.unit_finished(&UnitEnd {
            unit: outcome.tenant.clone(),
            scope: None,
            status: outcome.status.as_str().to_owned(),
            duration_ms: outcome.duration_ms,
            error: outcome.error.clone(),
        });
        outcomes[index] = Some(outcome);
    }
    let tenants = outcomes
        .into_iter()
        .zip(mine)
        .map(|(outcome, tenant)| outcome.unwrap_or_else(|| TenantOutcome::not_started(tenant)))
        .collect();
    TenantsReport {
        listed,
        shard: options.shard,
        tenants,
        kept_going: options.keep_going,
        interrupted: options.interrupt.load(Ordering::Relaxed),
    }
}

/// Whether `config`'s connections are templates over tenants (`${tenant}` in a URL).
pub fn is_templated(config: &RunConfig) -> bool {
    config
        .connections
        .values()
        .any(|c| c.url.contains(TENANT_PLACEHOLDER))
}

/// How many tenants' ledgers `migrun status` reads at once.
const STATUS_READERS: usize = 8;

/// The ledgers of one tenant's databases, as `migrun status` reads them.
#[derive(Debug, Serialize)]
pub struct TenantLedgers {
    /// The tenant.
    pub tenant: String,
    /// What it is, summed up.
    pub state: TenantLedgerState,
    /// Each connection's ledger in the tenant's databases.
    pub targets: Vec<crate::status::TargetStatus>,
    /// The units that failed in the tenant's last run and have not finished since.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_units: Vec<crate::unit_failures::FailedUnit>,
}

/// A tenant's ledgers summed up: what an operator with thousands of tenants needs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TenantLedgerState {
    /// Every ledger row is finished (and none is suspect).
    Finished,
    /// Some unit is checkpointed: unfinished, the next run resumes it.
    Unfinished,
    /// A unit failed in the tenant's last run and has not finished since (its error is
    /// in `failed_units`).
    Failed,
    /// No ledger, or an empty one: nothing ever committed there.
    NeverRan,
    /// A row not written by migrun as it is (its anchor is not in its journal).
    Suspect,
    /// A ledger could not be read (the database is unreachable, say).
    Unreadable,
}

impl TenantLedgerState {
    /// As `migrun status` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantLedgerState::Finished => "finished",
            TenantLedgerState::Unfinished => "unfinished",
            TenantLedgerState::Failed => "failed",
            TenantLedgerState::NeverRan => "never ran",
            TenantLedgerState::Suspect => "suspect",
            TenantLedgerState::Unreadable => "unreadable",
        }
    }

    fn of(
        targets: &[crate::status::TargetStatus],
        failed: &[crate::unit_failures::FailedUnit],
    ) -> TenantLedgerState {
        // Only the tenant's own databases: a shared URL (a source without `${tenant}`) says
        // nothing about this tenant.
        let mut any_rows = false;
        let mut state = TenantLedgerState::Finished;
        for t in targets {
            if t.error.is_some() {
                return TenantLedgerState::Unreadable;
            }
            if t.anchors.iter().any(crate::status::Anchor::is_suspect) {
                state = TenantLedgerState::Suspect;
            }
            for (i, _) in t.rows.iter().flatten().enumerate() {
                any_rows = true;
                if t.needs_attention(i) && state == TenantLedgerState::Finished {
                    state = TenantLedgerState::Unfinished;
                }
            }
        }
        if !failed.is_empty() && state != TenantLedgerState::Suspect {
            TenantLedgerState::Failed
        } else if !any_rows && state == TenantLedgerState::Finished {
            TenantLedgerState::NeverRan
        } else {
            state
        }
    }
}

/// Reads every tenant's ledgers (read-only, a few tenants at once): the connections
/// whose URL holds `${tenant}`, filled per tenant, and each row's anchor checked in the
/// tenant's own journal folder. In list order.
pub async fn tenant_ledgers(config: &RunConfig, tenants: Vec<String>) -> Vec<TenantLedgers> {
    use futures::StreamExt as _;
    let mut own = config.clone();
    own.connections
        .retain(|_, c| c.url.contains(TENANT_PLACEHOLDER));
    futures::stream::iter(tenants)
        .map(|tenant| {
            let tenant_config = own.for_tenant(&tenant);
            async move {
                let targets = crate::status::collect(&tenant_config).await;
                let failed_units = crate::status::failed_units(&tenant_config, &targets);
                TenantLedgers {
                    state: TenantLedgerState::of(&targets, &failed_units),
                    tenant,
                    targets,
                    failed_units,
                }
            }
        })
        .buffered(STATUS_READERS)
        .collect()
        .await
}
