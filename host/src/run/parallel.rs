//! `migrun run --jobs N`: up to N units at once in one process.
//!
//! Each worker is a [`Runner`] of its own — plugin instance (its own wasmtime
//! `Store`, same seeds and limits), its own connection to every declared
//! database, its own transactions — and runs in a task of its own, so plugin
//! code of two units runs on two cores. The run's first runner (lane 0) is
//! worker 0: it ran `configure`/`list-units` and the backup before, and runs
//! `verify` after. Workers 1‥N-1 are started here, each calling `configure`
//! and `list-units` on its own instance (read-only, rolled back, as lane 0
//! did), which must list the same units.
//!
//! What they share, and why it stays consistent:
//! - the units, taken in list order from one queue: a worker takes the next
//!   unit when it is free, so at most N run at once and they start in the
//!   order the plugin listed them (a plugin whose units depend on earlier
//!   ones must not use `--jobs`: the contract declares no ordering);
//! - the run lock (`SharedLocks`), verified before every commit;
//! - the ledger: each unit's row commits in its own transaction, as without
//!   `--jobs`, so every unit is finished exactly once whatever is killed;
//! - the journal: one per run, every worker appending to it with its lane
//!   (`migrun_journal::lane`), the chain over the interleaved sequence;
//! - the first failure: no new unit starts after it; the units in flight
//!   finish (commit or fail) — their transactions are theirs, and stopping
//!   them would only turn finished work into rolled-back work. The report
//!   names the first failed unit in list order. With `--keep-going` a unit's
//!   own failure stops nothing: the worker takes the next unit (on a fresh
//!   plugin instance if the failed one trapped), and the report lists every
//!   failed unit.
//!
//! A replay demultiplexes the journal by lane and replays each lane with its
//! own plugin instance (`replay.rs`). A dry-run runs one unit at a time: it
//! holds one transaction per connection for the whole run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::capability::database::DatabaseCtx;
use crate::config::RunConfig;
use crate::contract::UnitInfo;
use crate::journal::Entry;
use crate::ledger::{CheckpointRow, UnitKey};
use crate::observer::{CheckResult, ChecksNotKept, LogEvent, MessagesNotKept};
use crate::runtime::{LoadedPlugin, PluginInstance, RunState, Runtime};
use crate::session::{RunLedger, Session};
use crate::tape::Tape;

use super::inputs::Inputs;
use super::units::{Runner, SharedLocks, UnitPlan, UnitRun, not_run_report, units_failure};
use super::{RunError, RunOptions, RunReport, describe, targets};

/// What the extra workers gathered besides their units: checks and messages.
#[derive(Default)]
pub(super) struct WorkerOutput {
    checks: Vec<CheckResult>,
    checks_not_kept: Vec<ChecksNotKept>,
    messages: Vec<LogEvent>,
    messages_not_kept: Vec<MessagesNotKept>,
    lock_warnings: Vec<super::UnitLockWarning>,
    files_read: Vec<crate::capability::files::FileRead>,
}

impl WorkerOutput {
    /// Adds the workers' checks and messages to the report (after lane 0's).
    pub(super) fn merge_into(self, report: &mut RunReport) {
        report.checks.extend(self.checks);
        report.messages.extend(self.messages);
        report.lock_warnings.extend(self.lock_warnings);
        super::units::merge_files_read(&mut report.files_read, self.files_read);
        for more in self.checks_not_kept {
            let kept = &mut report.checks_not_kept;
            kept.passed += more.passed;
            kept.failed += more.failed;
            kept.bytes += more.bytes;
        }
        for more in self.messages_not_kept {
            let kept = &mut report.messages_not_kept;
            kept.messages += more.messages;
            kept.warnings += more.warnings;
            kept.errors += more.errors;
            kept.bytes += more.bytes;
        }
    }
}

/// Starts workers 1‥`count`-1: instance, `describe`, connections, `configure` and
/// `list-units` in their lanes. `expected` are the unit names lane 0 selected from; a
/// worker whose plugin lists others is refused (its units would not be the run's).
#[allow(clippy::too_many_arguments)]
pub(super) async fn start_workers(
    plugin: &LoadedPlugin,
    inputs: &Inputs,
    config: &RunConfig,
    options: &RunOptions,
    tape: &Tape,
    ledger: Option<(RunLedger, BTreeMap<UnitKey, CheckpointRow>)>,
    locks: &SharedLocks,
    count: u32,
    expected: &[String],
) -> Result<Vec<Runner>, RunError> {
    let mut workers: Vec<Runner> = Vec::new();
    // `--jobs` is at most 64 (the CLI's range), so every lane fits the record's u16.
    let lanes = u16::try_from(count).unwrap_or(u16::MAX);
    for lane in 1..lanes {
        match start_worker(
            plugin,
            inputs,
            config,
            options,
            tape.in_lane(lane),
            ledger.clone(),
            locks.clone(),
            expected,
        )
        .await
        {
            Ok(worker) => workers.push(worker),
            Err(e) => {
                for worker in workers {
                    worker.close().await;
                }
                return Err(e);
            }
        }
    }
    Ok(workers)
}

#[allow(clippy::too_many_arguments)]
async fn start_worker(
    plugin: &LoadedPlugin,
    inputs: &Inputs,
    config: &RunConfig,
    options: &RunOptions,
    tape: Tape,
    ledger: Option<(RunLedger, BTreeMap<UnitKey, CheckpointRow>)>,
    locks: SharedLocks,
    expected: &[String],
) -> Result<Runner, RunError> {
    let runtime = Runtime::shared();
    let state = RunState::new(
        DatabaseCtx::new(Session::empty(Tape::Off)),
        options.observer.clone(),
        Tape::Off,
        inputs.seeds,
        &config.limits,
    );
    let mut instance = PluginInstance::instantiate(runtime, plugin, state, config.limits).await?;
    describe(&mut instance).await?;
    let mut connections = BTreeMap::new();
    let opened = async {
        targets::connect_all(&mut connections, inputs, false).await?;
        targets::limit_statements(&mut connections, inputs, config).await
    }
    .await;
    if let Err(e) = opened {
        for (_, conn) in connections {
            conn.close().await;
        }
        return Err(e);
    }
    let mut runner = Runner::start(
        instance,
        connections,
        tape,
        None,
        ledger,
        options,
        config.limits,
        locks,
    );
    runner.session().set_absent(inputs.absent.iter().cloned());
    runner.instance.state().files.grant(inputs.files.clone());
    let listed = runner
        .prepare(
            inputs.values.clone(),
            inputs.redacted.clone(),
            options.only.as_deref(),
            options.shard,
        )
        .await;
    let listed = match listed {
        Ok((units, _)) => units,
        Err(e) => {
            runner.close().await;
            return Err(e);
        }
    };
    let names: Vec<String> = listed.into_iter().map(|u| u.name).collect();
    if names != expected {
        runner.close().await;
        return Err(RunError::Jobs(format!(
            "a second instance of the plugin listed other units ({}) than the first ({}): \
             its units depend on state --jobs does not share; run without --jobs",
            names.join(", "),
            expected.join(", ")
        )));
    }
    Ok(runner)
}

/// The units and what the workers did with them.
struct Dispatch {
    units: Vec<(UnitInfo, UnitPlan)>,
    /// The index of the next unit to start.
    next: Mutex<usize>,
    /// Set by the first failure (or an interrupt): no unit starts after it.
    stop: AtomicBool,
    runs: Mutex<Vec<(usize, UnitRun)>>,
}

impl Dispatch {
    /// The next unit to start, unless the run stops.
    fn take(&self) -> Option<usize> {
        if self.stop.load(Ordering::Acquire) {
            return None;
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if *next >= self.units.len() {
            return None;
        }
        *next += 1;
        Some(*next - 1)
    }
}

/// One worker's loop: the next unit in list order until none is left or the run stops.
async fn work(runner: &mut Runner, dispatch: &Dispatch) {
    while let Some(index) = dispatch.take() {
        let (unit, plan) = &dispatch.units[index];
        let ran = runner.run_selected(unit, plan).await;
        if ran
            .failure
            .as_ref()
            .is_some_and(|f| f.stops(runner.keep_going))
        {
            dispatch.stop.store(true, Ordering::Release);
        }
        dispatch
            .runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((index, ran));
    }
    runner.clear_unit();
}

/// Runs `units` on `lead` (lane 0) and `workers` at once, then closes the workers; the
/// report gets every unit in list order (those never started as not run) and the failure
/// of the first failed unit in list order.
pub(super) async fn run_units(
    lead: &mut Runner,
    workers: Vec<Runner>,
    units: &[(UnitInfo, UnitPlan)],
    report: &mut RunReport,
) -> WorkerOutput {
    let dispatch = Arc::new(Dispatch {
        units: units.to_vec(),
        next: Mutex::new(0),
        stop: AtomicBool::new(false),
        runs: Mutex::new(Vec::new()),
    });
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let dispatch = dispatch.clone();
            tokio::spawn(async move {
                work(&mut worker, &dispatch).await;
                worker
            })
        })
        .collect();
    work(lead, &dispatch).await;
    let mut output = WorkerOutput::default();
    for task in tasks {
        match task.await {
            Ok(mut worker) => {
                output.lock_warnings.extend(worker.take_lock_warnings());
                let files = super::units::state_files(&mut worker.instance);
                super::units::merge_files_read(&mut output.files_read, files);
                let state = worker.instance.state();
                let (checks, checks_not_kept) = state.checks.take_results();
                output.checks.extend(checks);
                output.checks_not_kept.push(checks_not_kept);
                let (messages, not_kept) = state.log.take_messages();
                output.messages.extend(messages);
                output.messages_not_kept.push(not_kept);
                worker.close().await;
            }
            Err(e) => {
                // A panic in a worker: its connections were dropped (the servers roll
                // back); its unit is reported as failed below if it had recorded nothing.
                tracing::error!("a --jobs worker stopped: {e}");
                dispatch.stop.store(true, Ordering::Release);
            }
        }
    }
    let mut runs = std::mem::take(&mut *dispatch.runs.lock().unwrap_or_else(|p| p.into_inner()));
    runs.sort_by_key(|(index, _)| *index);
    let mut committed: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    let mut started = vec![false; units.len()];
    for (index, ran) in runs {
        started[index] = true;
        if ran.committed {
            committed.push(units[index].0.name.clone());
        }
        report.units.push(ran.report);
        failures.extend(ran.failure);
    }
    let not_run: Vec<&str> = units
        .iter()
        .zip(&started)
        .filter(|(_, started)| !**started)
        .map(|((u, _), _)| u.name.as_str())
        .collect();
    for ((unit, _), _) in units.iter().zip(&started).filter(|(_, s)| !**s) {
        report.units.push(not_run_report(unit));
    }
    units_failure(
        lead.mode,
        lead.keep_going,
        failures,
        &committed,
        &not_run,
        report,
    );
    output
}

/// The units each lane of a journal ran, in order (a unit retried after a conflict once),
/// skipped ones included: what a replay gives each lane's plugin instance. Lane 0 is
/// always present.
pub(super) fn lanes_of(
    journal: &std::path::Path,
) -> Result<BTreeMap<u16, Vec<String>>, crate::journal::JournalError> {
    let (mut reader, _) = crate::journal::JournalReader::open(journal)?;
    let mut lanes: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    lanes.insert(0, Vec::new());
    while let Some((_, entry)) = reader.next_entry()? {
        let unit = match entry {
            Entry::Export {
                export,
                unit: Some(unit),
                ..
            } if export == "run-unit" => unit,
            Entry::UnitSkipped { unit, .. } => unit,
            _ => continue,
        };
        let list = lanes.entry(reader.lane()).or_default();
        if list.last() != Some(&unit) {
            list.push(unit);
        }
    }
    Ok(lanes)
}
