//! The real run's [`CallObserver`]: the same lint a dry-run runs (seed 003's
//! locking hazards, with the row counts of the tables a statement touches),
//! told to the operator before the statement runs and kept for the report.
//!
//! Why on real runs too: the dry-run is where the warning is cheap, but the run
//! that takes the lock is where it matters, and an operator who skipped the
//! dry-run (or ran it against another database) would otherwise never see it.
//! It changes nothing the run does: the counts are read on the unit's own
//! connection, between the plugin's calls, and a count that cannot be read only
//! means no warning (see [`crate::lint::lint_statement`]).
//!
//! Installed on the session by [`Runner::start`](super::units::Runner::start) in
//! live runs (a dry-run has its `PlanObserver`; a replay runs nothing live).

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde::Serialize;

use crate::db;
use crate::journal::{CallResult, HostCall};
use crate::lint::{self, LockWarning};
use crate::observer::RunObserver;
use crate::session::CallObserver;

/// A lock warning of a real run, with the unit whose statement raised it.
#[derive(Debug, Clone, Serialize)]
pub struct UnitLockWarning {
    /// The unit running the statement (`None` outside units).
    pub unit: Option<String>,
    /// The warning, as a dry-run's plan shows it.
    #[serde(flatten)]
    pub warning: LockWarning,
}

/// What the runner and the observer share: the unit running now, and the warnings so far.
#[derive(Debug, Default)]
pub(super) struct LintLog {
    /// The unit whose statements are linted now (set by the runner).
    pub(super) unit: Option<String>,
    /// Every warning of the run, in order (taken into the report at the end).
    pub(super) warnings: Vec<UnitLockWarning>,
}

/// The runner's handle on the [`LintLog`].
pub(super) type SharedLint = Arc<Mutex<LintLog>>;

/// Lints every write of a real run before it runs, telling `observer` at once.
pub(super) struct LintObserver {
    log: SharedLint,
    observer: Arc<dyn RunObserver>,
}

impl LintObserver {
    pub(super) fn new(log: SharedLint, observer: Arc<dyn RunObserver>) -> Self {
        LintObserver { log, observer }
    }
}

impl CallObserver for LintObserver {
    fn before_write<'a>(
        &'a mut self,
        conn: &'a mut db::Connection,
        sql: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let warnings = lint::lint_statement(conn, sql).await.unwrap_or_default();
            if warnings.is_empty() {
                return;
            }
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            let unit = log.unit.clone();
            for warning in warnings {
                self.observer.lock_warning(unit.as_deref(), &warning);
                log.warnings.push(UnitLockWarning {
                    unit: unit.clone(),
                    warning,
                });
            }
        })
    }

    fn after_call(&mut self, _call: &HostCall, _result: &CallResult) {}

    fn checkpoint_saved(&mut self, _unit: &str) {}
}
