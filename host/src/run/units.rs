//! Running the plugin's units: the [`Runner`] holds the instance (and, through its
//! database context, the connections) from the hand-over to the end of the run.
//! `configure` and `list-units` in transactions that are rolled back, the units
//! chosen from `--only`, `--shard` and the ledgers (`plan_units`), each unit in its
//! transactions with conflict retries and the run lock checked before its commit,
//! `verify`, and the end of a dry-run. Replay drives the same runner on a journal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::capability::database::DatabaseCtx;
use crate::contract::UnitInfo;
use crate::db::{self, Access, DbError};
use crate::ledger::{self, CheckpointRow, LedgerRow, UnitHistory};
use crate::lock::RunLock;
use crate::observer::RunObserver;
use crate::plan::{GateState, PlanGate, PlanRecorder};
use crate::runtime::{CallError, LoadedPlugin, PluginInstance, RunState};
use crate::session::{BeginMode, RunLedger, Session, SessionError};
use crate::tape::{Tape, TapeError};

use super::RunMode;
use super::inputs::Inputs;
use super::lint_observer::{LintObserver, SharedLint};
use super::plan_observer::PlanObserver;
use super::report::{
    SharedPlan, begin_failure, consequence, escape_failure, escaped_consequence, finished_plan,
    session_failure,
};
use super::{
    FailureCause, KeptWork, RunError, RunFailure, RunOptions, RunReport, UnitReport, UnitStatus,
    is_conflict,
};

/// The units a run runs, each with what to do with it, and the `--only` names that are no unit.
pub(super) type Selection = (Vec<(UnitInfo, UnitPlan)>, Vec<String>);

/// What the ledger rows of this run name: the plugin build, the run, its journal.
pub(super) fn run_ledger(
    plugin: &LoadedPlugin,
    inputs: &Inputs,
    identity: &crate::backup::RunIdentity,
) -> RunLedger {
    RunLedger {
        ledger: inputs.ledger.clone(),
        plugin_name: inputs.info.name.clone(),
        plugin_version: inputs.info.version.clone(),
        plugin_sha256: plugin.sha256.clone(),
        run_id: inputs.run_id.clone(),
        journal_id: identity.journal.clone(),
    }
}

/// Names given to `--only` that are not units of the plugin (an engine deleted since the
/// list was made, say): reported as such, with a warning, and the run goes on.
pub(super) fn report_not_found(runner: &mut Runner, report: &mut RunReport, not_found: &[String]) {
    for name in not_found {
        runner.instance.state().log.record(
            crate::observer::Level::Warn,
            format!("--only names `{name}`, which is not a unit of this plugin: skipped"),
            Vec::new(),
        );
        report.units.push(UnitReport {
            name: name.clone(),
            scope: None,
            skipped: None,
            always_run: false,
            status: UnitStatus::NotFound,
            duration_ms: 0,
            writes: BTreeMap::new(),
            note: Some("not a unit of this plugin".into()),
            error: None,
            plan: None,
            plan_difference: None,
            kept: None,
            transactional: true,
        });
    }
}

/// Whether `--only` name `name` selects `unit`: its bare name selects it whatever its
/// scope, `unit@scope` only with that scope (contract 0.2.0). Compared whole, never
/// split, so a unit name holding `@` still matches itself.
pub(super) fn only_matches(name: &str, unit: &UnitInfo) -> bool {
    name == unit.name || (unit.scope.is_some() && name == unit.key().to_string())
}

/// What the runner does with a selected unit.
#[derive(Debug, Clone)]
pub(super) enum UnitPlan {
    /// Run it (with the override reason when it reruns another build's finished unit).
    Run { override_reason: Option<String> },
    /// Skip it: this plugin build finished it already.
    Skip { reason: String },
}

/// What the plugin's own declaration decides, whatever the ledgers say (contract 0.2.0):
/// a unit it lists as skipped never runs; an always-run unit always does.
pub(super) fn declared_plan(unit: &UnitInfo) -> Option<UnitPlan> {
    if let Some(reason) = &unit.skipped {
        return Some(UnitPlan::Skip {
            reason: format!("skipped: {reason}"),
        });
    }
    unit.always_run.then_some(UnitPlan::Run {
        override_reason: None,
    })
}

/// Decides each selected unit from its declaration ([`declared_plan`]) and then the ledgers,
/// by its [`ledger::UnitKey`] (name and scope); refuses (nothing ran) on a changed plugin
/// without an override, or on targets that disagree.
pub(super) fn plan_units(
    units: Vec<UnitInfo>,
    ledgers: &BTreeMap<String, Vec<LedgerRow>>,
    sha256: &str,
    allow_change: Option<&str>,
) -> Result<Vec<(UnitInfo, UnitPlan)>, RunError> {
    let mut planned = Vec::with_capacity(units.len());
    for unit in units {
        if let Some(plan) = declared_plan(&unit) {
            planned.push((unit, plan));
            continue;
        }
        let plan = match ledger::history(&unit.key(), sha256, ledgers) {
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
                        unit: unit.key().to_string(),
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
                    unit: unit.key().to_string(),
                    finished_on: finished_on.join(", "),
                    missing_on: missing_on.join(", "),
                });
            }
        };
        planned.push((unit, plan));
    }
    Ok(planned)
}
/// What running one selected unit came to ([`Runner::run_selected`]).
pub(super) struct UnitRun {
    /// Its line in the report.
    pub(super) report: UnitReport,
    /// Whether it committed (a dry-run's units count too: they "would have").
    pub(super) committed: bool,
    /// Why it failed, if it did (it was rolled back).
    pub(super) failure: Option<UnitFailure>,
}

/// A unit's failure, before the run's consequence is known.
pub(super) struct UnitFailure {
    unit: String,
    message: String,
    cause: FailureCause,
    escapes: Vec<db::SessionEscape>,
    checkpoints: u64,
    /// `false`: the unit ran in autocommit, and what ran before the failure stays.
    transactional: bool,
}

impl UnitFailure {
    /// Whether this failure stops the run even under `--keep-going`, because it is not the
    /// unit's alone: plugin SQL that escaped its session (its connection was closed to the
    /// plugin), the journal (every later call goes through it), the run lock lost (another
    /// run could be writing), the operator's interrupt, a plugin that cannot be called
    /// again (it trapped, and could not be started afresh), or a unit whose writes differ
    /// from the approved plan's (`--plan`: the data changed since the plan was made, so the
    /// rest of the plan is not what was approved either).
    pub(super) fn ends_run(&self) -> bool {
        !self.escapes.is_empty()
            || self.message.starts_with(LOCK_LOST)
            || matches!(
                self.cause,
                FailureCause::Tape(_)
                    | FailureCause::Plan(_)
                    | FailureCause::Call(
                        CallError::Interrupted | CallError::Dead | CallError::Tape(_)
                    )
            )
    }

    /// Whether this failure stops the run: every failure does, unless the run keeps going
    /// and the failure is the unit's alone ([`UnitFailure::ends_run`]).
    pub(super) fn stops(&self, keep_going: bool) -> bool {
        !keep_going || self.ends_run()
    }

    /// What this unit's failure left behind beyond its rollback, for the sum of a run that
    /// kept going: statements of a non-transactional unit, committed checkpoints.
    fn left_behind(&self) -> Option<String> {
        if !self.transactional {
            return Some(format!(
                "`{}` is non-transactional: its statements that ran before the failure stay",
                self.unit
            ));
        }
        (self.checkpoints > 0).then(|| {
            format!(
                "`{}` keeps the work of its {} saved checkpoint(s) and resumes from the last one when run again",
                self.unit, self.checkpoints
            )
        })
    }

    /// The run's failure: this unit's, with what stayed committed and what did not run.
    pub(super) fn into_failure(
        self,
        mode: RunMode,
        committed: &[String],
        not_run: &[&str],
    ) -> RunFailure {
        let mut consequence = consequence(&self.unit, mode, committed, not_run);
        if !self.escapes.is_empty() {
            consequence = escaped_consequence(&self.unit, &self.escapes, &consequence);
        }
        if !self.transactional && mode == RunMode::Live {
            consequence = non_transactional_consequence(&self.unit, &consequence);
        }
        if self.checkpoints > 0 && mode == RunMode::Live {
            consequence.push_str(&format!(
                "; `{}` keeps the work of its {} saved checkpoint(s) and resumes from the last one when run again",
                self.unit, self.checkpoints
            ));
        }
        RunFailure {
            phase: format!("unit `{}`", self.unit),
            message: self.message,
            consequence,
            cause: self.cause,
        }
    }
}

/// How a unit's failure starts when the run lock was found lost before its commit: such a
/// failure stops the run even under `--keep-going` ([`UnitFailure::ends_run`]).
const LOCK_LOST: &str = "the run lock was lost";

/// How many failed units the summary of a run that kept going names; the report lists all.
const FAILED_NAMED: usize = 10;

/// The run's failure from its units' failures, in list order: none when no unit failed.
/// The first failure that stops the run ([`UnitFailure::stops`]) is the run's, as without
/// `--keep-going` (with what stayed committed and what did not run); when none did, the
/// run kept going and one failure sums up the failed units (`report.kept_going`).
pub(super) fn units_failure(
    mode: RunMode,
    keep_going: bool,
    failures: Vec<UnitFailure>,
    committed: &[String],
    not_run: &[&str],
    report: &mut RunReport,
) {
    if failures.is_empty() {
        return;
    }
    let ran = committed.len() + failures.len();
    let mut failures = failures;
    if let Some(at) = failures.iter().position(|f| f.stops(keep_going)) {
        let failure = failures.swap_remove(at);
        report.failure = Some(failure.into_failure(mode, committed, not_run));
        return;
    }
    let names: Vec<String> = failures.iter().map(|f| format!("`{}`", f.unit)).collect();
    let more = names.len().saturating_sub(FAILED_NAMED);
    let mut message = format!(
        "{} of {ran} unit(s) that ran failed and the others went on (--keep-going): {}",
        failures.len(),
        names[..names.len().min(FAILED_NAMED)].join(", ")
    );
    if more > 0 {
        message.push_str(&format!(" and {more} more (listed in the report)"));
    }
    let mut consequence = vec![
        "each failed unit was rolled back on every connection".to_owned(),
        format!("{} unit(s) committed", committed.len()),
    ];
    consequence.extend(failures.iter().filter_map(UnitFailure::left_behind));
    consequence.push(
        "verify was not run; run the same command again to run only the units that did not finish"
            .to_owned(),
    );
    let first = failures.swap_remove(0);
    report.kept_going = true;
    report.failure = Some(RunFailure {
        phase: "units".into(),
        message,
        consequence: consequence.join("; "),
        cause: first.cause,
    });
}

/// The report line of a unit the run did not get to.
pub(super) fn not_run_report(unit: &UnitInfo) -> UnitReport {
    unit_report(unit, UnitStatus::NotRun)
}

/// A unit's report line with `status` and nothing else yet: its name, scope and what it
/// declares (skipped, always-run) are the unit's own.
pub(super) fn unit_report(unit: &UnitInfo, status: UnitStatus) -> UnitReport {
    UnitReport {
        name: unit.name.clone(),
        scope: unit.scope.clone(),
        skipped: unit.skipped.clone(),
        always_run: unit.always_run,
        status,
        duration_ms: 0,
        writes: BTreeMap::new(),
        note: None,
        error: None,
        plan: None,
        plan_difference: None,
        kept: None,
        transactional: unit.transactional,
    }
}

/// Why a dry-run plans a non-transactional unit without running it: the dry-run rolls
/// everything back at its end, and statements run outside a transaction cannot be.
pub(super) const NOT_RUN_IN_DRY_RUN: &str = "non-transactional: not run in a dry-run";

/// What a failed non-transactional unit leaves: the usual sentence about the other units,
/// after one saying that its own statements were not rolled back.
fn non_transactional_consequence(unit: &str, usual: &str) -> String {
    let mut parts = vec![format!(
        "unit `{unit}` is non-transactional: statements that ran before the failure stay \
         (committed one by one); no ledger row was written, so the next run runs it again \
         from its start"
    )];
    parts.extend(usual.split("; ").skip(1).map(str::to_owned));
    parts.join("; ")
}

/// The values `configure` got, and what the journal keeps of them (secrets redacted).
pub(super) type Configuration = (Vec<(String, String)>, Vec<(String, String)>);

/// The run locks, shared by the runners of one run.
pub(super) type SharedLocks = Arc<tokio::sync::Mutex<Vec<RunLock>>>;

/// How long the host waits for a rollback before giving up on a connection
/// (the server rolls back on disconnect anyway).
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// The plugin instance through a run's units, and what governs them.
pub(super) struct Runner {
    /// The instance; its state holds the connections (the `Session` behind `DatabaseCtx`).
    pub(super) instance: PluginInstance,
    /// Live, dry-run or replay: what the runner does with transactions.
    pub(super) mode: RunMode,
    /// Who hears about progress.
    pub(super) observer: Arc<dyn RunObserver>,
    /// Where host calls are recorded (run) or answered (replay).
    pub(super) tape: Tape,
    /// Set to stop the run before the next unit or at the plugin's next epoch tick.
    pub(super) interrupt: Arc<AtomicBool>,
    /// The run's `[limits]`: `conflict_retries` (how often a unit that failed on a conflict
    /// runs again) and the lock and statement timeouts of its units.
    pub(super) limits: crate::config::Limits,
    /// A real run's lint: the unit running now and the lock warnings so far (empty in
    /// dry-runs, whose plan holds them, and in replays).
    pub(super) lint: SharedLint,
    /// The run locks of the writable targets, checked before every commit; shared by the
    /// workers of `--jobs` (the lock is the run's, not a worker's).
    pub(super) locks: SharedLocks,
    /// `--keep-going` in a live run (or the replay of one): a unit's own failure does not
    /// stop the run, and a plugin that trapped is started afresh before the next unit.
    pub(super) keep_going: bool,
    /// The configuration `configure` got (values, and what the journal keeps of them), for
    /// configuring a plugin started afresh after a trap (`Runner::revive`).
    pub(super) configuration: Option<Configuration>,
    /// A `--plan` run: what its [`PlanGate`] found for the unit running now.
    pub(super) plan_gate: Option<Arc<std::sync::Mutex<GateState>>>,
}

impl Runner {
    /// Gives the plugin its connections, live on `tape`: the plan a dry-run feeds (through
    /// a [`PlanObserver`] on the session), the interrupt, and (in a live run) the ledger
    /// rows to write with the checkpoints read.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        mut instance: PluginInstance,
        connections: BTreeMap<String, db::Connection>,
        tape: Tape,
        plan: Option<&SharedPlan>,
        ledger: Option<(RunLedger, BTreeMap<ledger::UnitKey, CheckpointRow>)>,
        options: &RunOptions,
        limits: crate::config::Limits,
        locks: SharedLocks,
    ) -> Runner {
        let mut session = Session::live(connections, tape.clone());
        let lint = SharedLint::default();
        if let Some(plan) = plan {
            session.observe_calls(Box::new(PlanObserver::new(plan.clone(), lint.clone())));
        } else if options.mode() == RunMode::Live {
            session.observe_calls(Box::new(LintObserver::new(
                lint.clone(),
                options.observer.clone(),
            )));
        }
        if let Some((ledger, checkpoints)) = ledger {
            session.set_ledger(ledger, checkpoints);
        }
        // Each unit's writes, digested: into the dry-run's plan, or compared with the
        // approved plan's before they commit.
        let mut plan_gate = None;
        if let Some(plan) = plan {
            session.gate_segments(Box::new(PlanRecorder::new(plan.clone())));
        } else if let (Some(approved), RunMode::Live) = (&options.plan, options.mode()) {
            let state = Arc::new(std::sync::Mutex::new(GateState::default()));
            session.gate_segments(Box::new(PlanGate::new(approved.clone(), state.clone())));
            plan_gate = Some(state);
        }
        let state = instance.state();
        state.database = DatabaseCtx::new(session);
        state.set_tape(tape.clone());
        state.set_interrupt(options.interrupt.clone());
        Runner {
            instance,
            mode: options.mode(),
            observer: options.observer.clone(),
            tape,
            interrupt: options.interrupt.clone(),
            limits,
            lint,
            locks,
            keep_going: options.keep_going && options.mode() == RunMode::Live,
            configuration: None,
            plan_gate,
        }
    }

    /// `configure` and `list-units`, then the units to run from `--only`, `--shard` and the
    /// targets' ledgers (`finished`); a refusal means nothing ran.
    pub(super) async fn select_units(
        &mut self,
        inputs: &Inputs,
        options: &RunOptions,
        finished: &BTreeMap<String, Vec<LedgerRow>>,
        sha256: &str,
    ) -> Result<Selection, RunError> {
        let (units, not_found) = self
            .prepare(
                inputs.values.clone(),
                inputs.redacted.clone(),
                options.only.as_deref(),
                options.shard,
            )
            .await?;
        let units = plan_units(
            units,
            finished,
            sha256,
            options.allow_plugin_change.as_deref(),
        )?;
        Ok((units, not_found))
    }

    /// The end of the units: a dry-run rolls back, leaves its dry-run mode (sequences
    /// restored, scratch dropped) and finishes its plan; every run collects its checks
    /// and messages into the report.
    pub(super) async fn finish(
        &mut self,
        report: &mut RunReport,
        plan: Option<&SharedPlan>,
        dry_guards: BTreeMap<String, db::DryRunGuard>,
    ) {
        if self.mode.rolls_back_everything() {
            self.rollback_all().await;
            let restored = self.leave_dry_run(dry_guards).await;
            self.collect(report);
            if let Some(plan) = plan {
                report.plan = Some(finished_plan(plan, report, restored));
            }
        } else {
            self.collect(report);
        }
    }

    /// `configure` and `list-units`, then the unit selection. In a dry-run the
    /// run-long transactions begin here; otherwise these calls get transactions
    /// of their own that are rolled back. `recorded` is what the journal keeps of
    /// the configuration (secrets redacted).
    pub(super) async fn prepare(
        &mut self,
        values: Vec<(String, String)>,
        recorded: Vec<(String, String)>,
        only: Option<&[String]>,
        shard: Option<(u32, u32)>,
    ) -> Result<(Vec<UnitInfo>, Vec<String>), RunError> {
        // Before the backup, plugin code sees every connection read-only in the session:
        // nothing it does here could be missing from the backup. A dry-run holds one
        // transaction for the whole run (and changes nothing), so it begins as usual.
        let mode = if self.mode.rolls_back_everything() {
            BeginMode::Now
        } else {
            BeginMode::ReadOnlyPhase
        };
        self.session().begin_all(mode).await?;
        self.configuration = Some((values.clone(), recorded.clone()));
        let units = self.configure_and_list(values, recorded).await;
        let escapes = self.session().escapes();
        if !self.mode.rolls_back_everything() || units.is_err() || !escapes.is_empty() {
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
            .filter(|n| !units.iter().any(|u| only_matches(n, u)))
            .cloned()
            .collect();
        if !only.is_empty() && not_found.len() == only.len() {
            if self.mode.rolls_back_everything() {
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
                    .map(|u| format!("`{}`", u.key()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok((
            units
                .into_iter()
                .filter(|u| only.iter().any(|n| only_matches(n, u)))
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
        let values = if self.mode.has_databases() {
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

    /// Runs the selected units in list order, one at a time; the first failure stops the
    /// run (the units after it are reported as not run), unless the run keeps going and the
    /// failure is the unit's alone ([`UnitFailure::stops`]).
    pub(super) async fn run_units(
        &mut self,
        units: &[(UnitInfo, UnitPlan)],
        report: &mut RunReport,
    ) {
        let mut committed: Vec<String> = Vec::new();
        let mut failures: Vec<UnitFailure> = Vec::new();
        let mut not_run: Vec<&str> = Vec::new();
        for (index, (unit, plan)) in units.iter().enumerate() {
            let ran = self.run_selected(unit, plan).await;
            report.units.push(ran.report);
            let Some(failed) = ran.failure else {
                if ran.committed {
                    committed.push(unit.name.clone());
                }
                continue;
            };
            let stops = failed.stops(self.keep_going);
            failures.push(failed);
            if !stops {
                continue;
            }
            not_run = units[index + 1..]
                .iter()
                .map(|(u, _)| u.name.as_str())
                .collect();
            for (unit, _) in &units[index + 1..] {
                report.units.push(not_run_report(unit));
            }
            break;
        }
        units_failure(
            self.mode,
            self.keep_going,
            failures,
            &committed,
            &not_run,
            report,
        );
        self.clear_unit();
    }

    /// `--keep-going` after a unit trapped or hit a limit, which left the plugin unusable: a
    /// fresh instance of it in place of the dead one (same connections, journal, messages),
    /// configured and its units listed again as before the first unit — read-only, rolled
    /// back, recorded in the journal, so a replay starts it afresh at the same point.
    async fn revive(&mut self) -> Result<(), String> {
        let Some((values, recorded)) = self.configuration.clone() else {
            return Err("the plugin was never configured".into());
        };
        tracing::warn!("the plugin trapped: starting a fresh instance for the next unit");
        self.instance
            .restart(crate::runtime::Runtime::shared())
            .await
            .map_err(|e| e.to_string())?;
        let state = self.instance.state();
        state.set_tape(self.tape.clone());
        state.set_interrupt(self.interrupt.clone());
        let mode = if self.mode.rolls_back_everything() {
            BeginMode::Now
        } else {
            BeginMode::ReadOnlyPhase
        };
        self.session()
            .begin_all(mode)
            .await
            .map_err(|e| e.to_string())?;
        let listed = self.configure_and_list(values, recorded).await;
        self.rollback_all().await;
        let escapes = self.session().escapes();
        if !escapes.is_empty() {
            return Err(format!(
                "the plugin's SQL escaped the host's transaction: {}",
                super::describe_escapes(&escapes)
            ));
        }
        listed.map(|_| ()).map_err(|e| e.to_string())
    }

    /// One selected unit, skipped or run (with its conflict retries), rolled back when it
    /// failed: its report line, and what a failure needs to be reported.
    pub(super) async fn run_selected(&mut self, unit: &UnitInfo, plan: &UnitPlan) -> UnitRun {
        // A dry-run cannot roll back what a non-transactional unit would commit: it plans
        // the unit without running it (its replay follows the journal's skip entry).
        let planned_only = self.mode.rolls_back_everything()
            && !unit.transactional
            && matches!(plan, UnitPlan::Run { .. });
        let skip_reason = match plan {
            UnitPlan::Skip { reason } => Some(reason.as_str()),
            UnitPlan::Run { .. } if planned_only => Some(NOT_RUN_IN_DRY_RUN),
            UnitPlan::Run { .. } => None,
        };
        let skipped = match self.tape.skip_unit(&unit.name, skip_reason) {
            Ok(skipped) => skipped,
            Err(e) => {
                return UnitRun {
                    report: unit_report(unit, UnitStatus::Failed),
                    committed: false,
                    failure: Some(UnitFailure {
                        unit: unit.name.clone(),
                        message: e.to_string(),
                        cause: FailureCause::Tape(e),
                        escapes: Vec::new(),
                        checkpoints: 0,
                        transactional: unit.transactional,
                    }),
                };
            }
        };
        if skipped {
            let (status, note) = if planned_only {
                (UnitStatus::Planned, NOT_RUN_IN_DRY_RUN)
            } else {
                (
                    UnitStatus::Skipped,
                    skip_reason.unwrap_or("finished in an earlier run"),
                )
            };
            return UnitRun {
                report: UnitReport {
                    note: Some(note.to_owned()),
                    ..unit_report(unit, status)
                },
                committed: false,
                failure: None,
            };
        }
        // `--keep-going`: an earlier unit trapped; the next one runs on a fresh instance.
        if self.keep_going
            && self.instance.is_dead()
            && let Err(why) = self.revive().await
        {
            let message = format!(
                "the plugin could not be started again after it trapped: {why}; \
                     no further unit runs"
            );
            return UnitRun {
                report: UnitReport {
                    error: Some(message.clone()),
                    ..unit_report(unit, UnitStatus::Failed)
                },
                committed: false,
                failure: Some(UnitFailure {
                    unit: unit.name.clone(),
                    message,
                    cause: FailureCause::Call(CallError::Dead),
                    escapes: Vec::new(),
                    checkpoints: 0,
                    transactional: unit.transactional,
                }),
            };
        }
        let override_reason = match plan {
            UnitPlan::Run { override_reason } => override_reason.clone(),
            UnitPlan::Skip { .. } => None,
        };
        let phase = format!("unit {}", unit.name);
        self.observer.phase_started(&phase);
        self.observer
            .unit_started(&unit.name, unit.scope.as_deref());
        let started = Instant::now();
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let state = self.instance.state();
        state.log.set_unit(Some(unit.name.clone()));
        state.checks.set_unit(Some(unit.name.clone()));
        let session = state.database.session();
        session.take_writes();
        let key = unit.key();
        let resumed = session.resume_point(&key).map(|c| {
            format!(
                "resumed from the checkpoint saved by run {} at {}",
                c.run_id, c.saved_at
            )
        });
        session.start_unit(&key, unit.always_run, &started_at, override_reason.clone());
        self.set_lint_unit(Some(&unit.name));
        let timeouts = unit.timeouts(&self.limits);
        self.warn_unapplied_timeouts(unit, &timeouts);
        // Before the first BEGIN: SQLite's busy timeout must hold when BEGIN IMMEDIATE waits.
        let mut timeouts_set = Some(
            self.session()
                .set_unit_timeouts(timeouts)
                .await
                .map_err(begin_failure),
        );
        if !unit.transactional {
            self.session().set_unit_non_transactional();
        }

        let mut retries = 0;
        let mut last_conflict = None;
        let outcome = loop {
            let outcome = if let Some(Err(failure)) = timeouts_set.take() {
                Err(failure)
            } else if self.interrupt.load(Ordering::Relaxed) {
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
                        || state.database.session().writable_count() <= 1)
            };
            match &outcome {
                Err((message, cause))
                    if retries < self.limits.conflict_retries
                        && retryable(cause, self.instance.state()) =>
                {
                    retries += 1;
                    tracing::warn!(
                        unit = %unit.name,
                        retry = retries,
                        of = self.limits.conflict_retries,
                        "conflict: {message}; the unit was rolled back and runs again"
                    );
                    last_conflict = Some(message.clone());
                    self.rollback_all().await;
                    self.session().take_writes();
                    self.session().discard_segment();
                }
                Err((message, cause)) if is_conflict(cause) => {
                    let hint = if self.limits.conflict_retries == 0 {
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
        let session = self.session();
        let kept_rows = session.kept_rows();
        let writes = session.take_writes();
        let checkpoints = session.end_unit();
        let status = match (&outcome, self.mode.rolls_back_everything()) {
            (Ok(()), false) => UnitStatus::Committed,
            (Ok(()), true) => UnitStatus::DryRun,
            (Err(_), _) => UnitStatus::Failed,
        };
        self.observer.phase_finished(&phase, outcome.is_ok());
        let report = UnitReport {
            duration_ms: started.elapsed().as_millis() as u64,
            writes,
            note: {
                let retried = (retries > 0).then(|| {
                    format!(
                        "run {} times: conflicts ({retries}) were retried; the last: {}",
                        retries + 1,
                        last_conflict.as_deref().unwrap_or("?")
                    )
                });
                let always = unit.always_run.then(|| "always runs".to_owned());
                let notes: Vec<String> = [always, resumed, retried].into_iter().flatten().collect();
                (!notes.is_empty()).then(|| notes.join("; "))
            },
            kept: (status == UnitStatus::Failed && checkpoints > 0 && self.mode == RunMode::Live)
                .then_some(KeptWork {
                    checkpoints,
                    rows: kept_rows,
                }),
            plan: match (self.plan_outcome(), &outcome) {
                // Failed for another reason before the gate refused anything: not compared to the end.
                (Some(crate::plan::PlanOutcome::AsPlanned), Err(_)) => None,
                (outcome, _) => outcome,
            },
            plan_difference: match &outcome {
                Err((_, FailureCause::Plan(mismatch))) => Some(mismatch.clone()),
                _ => None,
            },
            ..unit_report(unit, status)
        };
        let ran = match outcome {
            Ok(()) => UnitRun {
                report,
                committed: true,
                failure: None,
            },
            Err((message, cause)) => {
                self.rollback_all().await;
                let escapes = self.session().escapes();
                UnitRun {
                    report: UnitReport {
                        error: Some(message.clone()),
                        ..report
                    },
                    committed: false,
                    failure: Some(UnitFailure {
                        unit: unit.name.clone(),
                        message,
                        cause,
                        escapes,
                        checkpoints,
                        transactional: unit.transactional,
                    }),
                }
            }
        };
        // The sessions get their own settings back (connections are reused by the next unit).
        if let Err(e) = self
            .session()
            .set_unit_timeouts(db::UnitTimeouts::default())
            .await
        {
            tracing::warn!(unit = %unit.name, "cannot restore the session's timeouts: {e}");
        }
        self.set_lint_unit(None);
        self.observer.unit_finished(&crate::observer::UnitEnd {
            unit: unit.name.clone(),
            scope: unit.scope.clone(),
            status: ran.report.status.as_str().to_owned(),
            duration_ms: ran.report.duration_ms,
            error: ran.report.error.clone(),
        });
        ran
    }

    /// The difference a `--plan` run's gate refused a segment for, if it did.
    fn take_plan_mismatch(&self) -> Option<crate::plan::PlanMismatch> {
        let gate = self.plan_gate.as_ref()?;
        gate.lock()
            .unwrap_or_else(|e| e.into_inner())
            .mismatch
            .take()
    }

    /// The unit's failure when the plan refused its writes (`message` from the gate).
    fn plan_failure(&self, message: String) -> (String, FailureCause) {
        match self.take_plan_mismatch() {
            Some(mismatch) => (mismatch.to_string(), FailureCause::Plan(mismatch)),
            None => (
                message.clone(),
                FailureCause::Commit(DbError::new(db::DbErrorKind::Refused, message)),
            ),
        }
    }

    /// How the unit that just ran compared with the plan (`--plan` runs), for its report.
    fn plan_outcome(&self) -> Option<crate::plan::PlanOutcome> {
        let gate = self.plan_gate.as_ref()?;
        gate.lock()
            .unwrap_or_else(|e| e.into_inner())
            .outcome
            .take()
    }

    /// Tells the real run's lint which unit's statements it sees now.
    fn set_lint_unit(&self, unit: Option<&str>) {
        let mut lint = self.lint.lock().unwrap_or_else(|e| e.into_inner());
        lint.unit = unit.map(str::to_owned);
    }

    /// The lock warnings of a real run's statements, for the report.
    pub(super) fn take_lock_warnings(&self) -> Vec<super::UnitLockWarning> {
        let mut lint = self.lint.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut lint.warnings)
    }

    /// A statement timeout SQLite cannot apply is said, not silently dropped: once per
    /// unit that has one, per SQLite connection (replays say it too: it depends only on
    /// the dialects the journal names).
    fn warn_unapplied_timeouts(&mut self, unit: &UnitInfo, timeouts: &db::UnitTimeouts) {
        let Some(limit) = timeouts.statement else {
            return;
        };
        let sqlite: Vec<String> = self
            .session()
            .connection_infos()
            .filter(|(_, info)| info.dialect == db::Dialect::Sqlite)
            .map(|(name, _)| name.to_owned())
            .collect();
        for name in sqlite {
            self.instance.state().log.record(
                crate::observer::Level::Warn,
                format!(
                    "statement_timeout {limit} of unit `{}` is not applied on `{name}`: SQLite has no \
                     statement timeout (the call's wall-clock limit `timeout_secs` still applies)",
                    unit.name
                ),
                Vec::new(),
            );
        }
    }

    /// One unit: its transactions, the export call, its ledger row, the commit. The
    /// plugin's checkpoints commit in between (see `Session::save_checkpoint`).
    ///
    /// A non-transactional unit (contract 0.2.0) gets no transaction: each of its
    /// statements commits on its own, on every connection (read-only ones too: each read
    /// sees the data of its moment). Its ledger row is written after it returned success,
    /// in transactions of its own (`Session::commit_unit`). A dry-run never gets here with
    /// one (`run_selected` plans it without running it).
    async fn run_unit(&mut self, unit: &UnitInfo) -> Result<(), (String, FailureCause)> {
        if !self.mode.rolls_back_everything() && unit.transactional {
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
        let escapes = self.session().escapes();
        if !escapes.is_empty() {
            return Err(escape_failure(&escapes));
        }
        // A checkpoint that failed to commit fails the unit, whatever the plugin made of it.
        if let Some(failure) = self.session().take_checkpoint_failure() {
            // Refused by the plan (`--plan`): the difference is the news.
            if let Some(mismatch) = self.take_plan_mismatch() {
                return Err((mismatch.to_string(), FailureCause::Plan(mismatch)));
            }
            return Err(session_failure(failure));
        }
        if let Err(error) = result {
            return Err((error.to_string(), FailureCause::Call(error)));
        }
        if self.mode.rolls_back_everything() {
            // Nothing commits, but the unit's bulk insert streams end here as in a run, so
            // a row the server refuses fails this unit in the dry-run too (and its replay).
            self.session()
                .finish_streams()
                .await
                .map_err(session_failure)?;
            // The unit's last segment goes into the plan.
            let _ = self.session().end_segment(None);
        } else {
            // A `--plan` run: the unit's last segment must equal the plan's before it commits.
            if let Err(message) = self.session().end_segment(None) {
                return Err(self.plan_failure(message));
            }
            // Nothing commits without the run lock: had its connection been ended (by the
            // plugin's `pg_terminate_backend`, say), a second run could be running beside this one.
            for lock in self.locks.lock().await.iter_mut() {
                if let Err(why) = lock.verify().await {
                    let message = format!("{LOCK_LOST}: {why}; the unit was not committed");
                    return Err((
                        message.clone(),
                        FailureCause::Commit(DbError::new(db::DbErrorKind::Refused, message)),
                    ));
                }
            }
            let session = self.session();
            if let Err(failure) = session.commit_unit().await {
                // A cursor's escape is found when the commit checks the session.
                let escapes = session.escapes();
                if !escapes.is_empty() {
                    return Err(escape_failure(&escapes));
                }
                return Err(session_failure(failure));
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
        for conn in self.session().connections_mut() {
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
    /// A dry-run creates none: it changes nothing.
    pub(super) async fn ensure_ledgers(&mut self) -> Result<(), RunError> {
        if self.mode != RunMode::Live {
            return Ok(());
        }
        let session = self.session();
        let Some(ledger) = session.ledger().map(|l| l.ledger.clone()) else {
            return Ok(());
        };
        for conn in session.connections_mut() {
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

    /// After the journal is sealed: its final hash into the ledger of every writable
    /// connection (live runs only), so `journal verify -c` checks the journal's end against
    /// the databases. A seal that cannot be stored fails a run that had not failed otherwise:
    /// the units stay committed, but the journal's end is not anchored.
    pub(super) async fn seal_ledgers(&mut self, report: &mut RunReport) {
        if self.mode != RunMode::Live {
            return;
        }
        let Some(final_hash) = report.journal.as_ref().map(|j| j.final_hash.clone()) else {
            return;
        };
        let sealed = self.session().seal_run(&final_hash).await;
        if let Err(e) = sealed
            && report.failure.is_none()
        {
            let message =
                format!("the journal's final hash could not be stored in the ledger: {e}");
            let error = match e {
                SessionError::Ledger { error, .. } => error,
                other => DbError::new(db::DbErrorKind::Refused, other.to_string()),
            };
            report.failure = Some(RunFailure {
                phase: "journal".into(),
                message,
                consequence: format!(
                    "every unit stayed committed and the journal is complete; keep its final hash {final_hash} elsewhere"
                ),
                cause: FailureCause::Commit(error),
            });
        }
    }

    pub(super) async fn verify(&mut self, report: &mut RunReport) {
        self.observer.phase_started("verify");
        let result = self.verify_inner().await;
        self.observer.phase_finished("verify", result.is_ok());
        if let Err((message, cause)) = result {
            report.failure = Some(RunFailure {
                phase: "verify".into(),
                message,
                consequence: if self.mode != RunMode::Live {
                    "nothing was changed".into()
                } else {
                    "every unit stayed committed; verification did not finish".into()
                },
                cause,
            });
        }
    }

    async fn verify_inner(&mut self) -> Result<(), (String, FailureCause)> {
        if !self.mode.rolls_back_everything() {
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
        if !self.mode.rolls_back_everything() {
            self.rollback_all().await;
        }
        let escapes = self.session().escapes();
        if !escapes.is_empty() {
            return Err(escape_failure(&escapes));
        }
        result
    }

    /// Moves the checks and messages gathered by the capabilities into the report.
    pub(super) fn collect(&mut self, report: &mut RunReport) {
        let state = self.instance.state();
        let (checks, checks_not_kept) = state.checks.take_results();
        report.checks.extend(checks);
        report.checks_not_kept = checks_not_kept;
        let (messages, not_kept) = state.log.take_messages();
        // Extended, not replaced: a replay of a `--jobs` journal added its other lanes' first.
        report.messages.extend(messages);
        report.messages_not_kept = not_kept;
        report.lock_warnings.extend(self.take_lock_warnings());
        merge_files_read(&mut report.files_read, state_files(&mut self.instance));
    }

    /// No unit runs any more: messages and checks from now on are the run's.
    pub(super) fn clear_unit(&mut self) {
        let state = self.instance.state();
        state.log.set_unit(None);
        state.checks.set_unit(None);
    }

    /// The run's session: its connections, transactions and ledger rows.
    pub(super) fn session(&mut self) -> &mut Session {
        self.instance.state().database.session()
    }

    async fn begin_all(&mut self) -> Result<(), SessionError> {
        self.session().begin_all(BeginMode::Now).await
    }

    pub(super) async fn rollback_all(&mut self) {
        self.session().rollback_all(ROLLBACK_TIMEOUT).await;
    }

    pub(super) async fn close(self) {
        let state = self.instance.into_state();
        state.database.into_session().close().await;
    }
}

/// The granted files the instance's plugin read so far.
pub(super) fn state_files(
    instance: &mut PluginInstance,
) -> Vec<crate::capability::files::FileRead> {
    instance.state().files.files_read()
}

/// Adds `more` files read to `into`, one entry per name (bytes read summed up to the size),
/// sorted by name.
pub(super) fn merge_files_read(
    into: &mut Vec<crate::capability::files::FileRead>,
    more: Vec<crate::capability::files::FileRead>,
) {
    for file in more {
        match into.iter_mut().find(|f| f.name == file.name) {
            Some(known) => {
                known.bytes_read = known.size.min(known.bytes_read + file.bytes_read);
            }
            None => into.push(file),
        }
    }
    into.sort_by(|a, b| a.name.cmp(&b.name));
}
