//! The dry-run's [`CallObserver`]: it lints every write before it runs (seed 003's
//! locking hazards, with the row counts of the tables it touches) and feeds every
//! call, its lint warnings and the checkpoints into the run's plan.
//!
//! Installed on the session by [`Runner::start`](super::units::Runner::start) in a
//! dry-run only; the session knows nothing of plans or lint rules.

use futures::future::BoxFuture;

use crate::db;
use crate::journal::{CallResult, HostCall};
use crate::lint::{self, LockWarning};
use crate::session::CallObserver;
use crate::tape::lock;

use super::lint_observer::SharedLint;
use super::report::SharedPlan;

/// Feeds a dry-run's calls into its plan, linting writes first.
pub(super) struct PlanObserver {
    plan: SharedPlan,
    /// The unit running now (set by the runner): only a unit's writes are planned rows and
    /// schema changes. What `configure`, `list-units` and `verify` write is rolled back in a
    /// real run as well, so it is never written.
    running: SharedLint,
    /// The warnings of the statement about to run, kept until its answer: a statement
    /// that fails adds none.
    pending: Vec<LockWarning>,
}

impl PlanObserver {
    /// Observes the calls into `plan`.
    pub(super) fn new(plan: SharedPlan, running: SharedLint) -> Self {
        PlanObserver {
            plan,
            running,
            pending: Vec::new(),
        }
    }
}

impl CallObserver for PlanObserver {
    fn before_write<'a>(
        &'a mut self,
        conn: &'a mut db::Connection,
        sql: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let name = conn.name().to_owned();
            let mut warnings = lint::lint_statement(conn, sql).await.unwrap_or_default();
            for w in &mut warnings {
                w.connection.get_or_insert_with(|| name.clone());
            }
            self.pending = warnings;
        })
    }

    fn after_call(&mut self, call: &HostCall, result: &CallResult) {
        let warnings = std::mem::take(&mut self.pending);
        let in_unit = lock(&self.running).unit.is_some();
        let mut plan = lock(&self.plan);
        if in_unit {
            plan.observe(call, result);
        }
        if matches!(result, CallResult::Count { .. }) {
            for warning in warnings {
                plan.add_warning(warning);
            }
        }
    }

    fn checkpoint_saved(&mut self, unit: &str) {
        lock(&self.plan).add_checkpoint(unit);
    }
}
