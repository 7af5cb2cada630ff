//! What a run says about itself: the report builder shared by run and replay, the
//! dry-run's plan (opened with the connections, finished with the checks, privilege
//! warnings, failure and restore notes), and the sentences that say what a failure
//! left committed and what not (`consequence`, `escaped_consequence`).

use std::sync::{Arc, Mutex};

use crate::contract::PluginInfo;
use crate::db::{self, Access, DbError, Dialect};
use crate::plan::Plan;
use crate::runtime::LoadedPlugin;
use crate::runtime::sandbox::SandboxSeeds;
use crate::session::SessionError;
use crate::tape::lock;

use super::RunMode;
use super::{ConnectionReport, FailureCause, RunReport, describe_escapes};

/// A dry-run's plan, fed by the capabilities while the run happens.
pub(super) type SharedPlan = Arc<Mutex<Plan>>;

impl RunReport {
    /// The report of a run (or replay) before its first unit: what ran, where, how.
    pub(super) fn begin(
        plugin: &LoadedPlugin,
        info: PluginInfo,
        dry_run: bool,
        seeds: SandboxSeeds,
        connections: Vec<ConnectionReport>,
        backup: super::backups::BackupOutcome,
    ) -> RunReport {
        RunReport {
            plugin: info,
            plugin_sha256: plugin.sha256.clone(),
            contract: plugin.contract.clone(),
            dry_run,
            seeds,
            connections,
            absent_connections: Vec::new(),
            units: Vec::new(),
            checks: Vec::new(),
            messages: Vec::new(),
            messages_not_kept: Default::default(),
            checks_not_kept: Default::default(),
            lock_warnings: Vec::new(),
            failure: None,
            kept_going: false,
            duration_ms: 0,
            journal: None,
            plan: None,
            backups: backup.taken,
            backups_reused: backup.reused,
            backup_skipped: backup.skipped,
            files_read: Vec::new(),
            applied_plan: None,
        }
    }
}

/// A dry-run's empty plan over the run's connections.
pub(super) fn new_plan(connections: &[ConnectionReport]) -> SharedPlan {
    let conns: Vec<(String, Dialect, Access)> = connections
        .iter()
        .map(|c| (c.name.clone(), c.dialect, c.access))
        .collect();
    Arc::new(Mutex::new(Plan::new(&conns)))
}

/// The dry-run's plan as reported: the plugin, its checks, the connections' privilege
/// warnings, the failure, and what leaving the dry-run restored (`restored`, per connection).
pub(super) fn finished_plan(
    plan: &SharedPlan,
    report: &RunReport,
    restored: Vec<(String, Vec<String>)>,
) -> Plan {
    let mut plan = lock(plan).clone();
    plan.set_plugin(
        &report.plugin.name,
        &report.plugin.version,
        &report.plugin_sha256,
    );
    plan.add_checks(&report.checks);
    plan.files = report.files_read.clone();
    for c in &report.connections {
        if let Some(warning) = &c.privileges {
            plan.add_privilege_warning(warning.clone());
        }
    }
    for unit in &report.units {
        if unit.status == super::UnitStatus::Planned {
            plan.add_not_run(&unit.name);
        }
    }
    plan.set_failure(report.failure.as_ref().map(|f| f.message.clone()));
    for (connection, notes) in restored {
        for note in notes {
            plan.add_note(&connection, note);
        }
    }
    plan
}

/// A phase's failure when plugin statements escaped their sessions.
pub(super) fn escape_failure(escapes: &[db::SessionEscape]) -> (String, FailureCause) {
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
pub(super) fn escaped_consequence(
    unit: &str,
    escapes: &[db::SessionEscape],
    usual: &str,
) -> String {
    let mut parts = vec![format!(
        "unit `{unit}` could not be rolled back everywhere: {}",
        describe_escapes(escapes)
    )];
    parts.push("its other connections were rolled back".to_owned());
    // Keep what the usual sentence says about other units.
    parts.extend(usual.split("; ").skip(1).map(str::to_owned));
    parts.join("; ")
}

/// A unit's (or `verify`'s) failure when its transactions could not begin.
pub(super) fn begin_failure(e: SessionError) -> (String, FailureCause) {
    let message = format!("cannot begin the unit's transaction: {e}");
    (message, session_cause(e))
}

/// A unit's failure when its commit, its ledger row or a checkpoint failed.
pub(super) fn session_failure(e: SessionError) -> (String, FailureCause) {
    (e.to_string(), session_cause(e))
}

/// The typed cause of a session failure: the database's error, or the journal's.
fn session_cause(e: SessionError) -> FailureCause {
    match e.into_cause() {
        Ok(error) => FailureCause::Commit(error),
        Err(error) => FailureCause::Tape(error),
    }
}

pub(super) fn consequence(
    unit: &str,
    mode: RunMode,
    committed: &[String],
    not_run: &[&str],
) -> String {
    match mode {
        RunMode::Replay { .. } => {
            return "nothing was changed (replay: no database was contacted)".into();
        }
        RunMode::DryRun => {
            return "nothing was changed (dry-run): every transaction was rolled back".into();
        }
        RunMode::Live => {}
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
