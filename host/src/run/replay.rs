//! Replay: a journal's run driven again with no database, beside the run it replays.
//! The same [`Runner`] and report builder as a run, on a `Tape::Replaying` (verify: the
//! recorded plugin, every call must match) or `Tape::Comparing` (another build on the
//! recorded reads, its writes diffed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::capability::database::DatabaseCtx;
use crate::contract::UnitInfo;
use crate::journal::{Footer, Header, JournalReader};
use crate::observer::RunObserver;
use crate::runtime::{CallError, LoadedPlugin, PluginInstance, RunState, Runtime};
use crate::session::{ConnectionInfo, Session};
use crate::tape::{self, Comparison, Player, ReplayDivergence, WriteDiff};
use crate::tape::{Tape, TapeError, lock};

use super::RunMode;
use super::units::{Runner, UnitPlan, declared_plan, report_not_found};
use super::{ConnectionReport, FailureCause, RunError, RunFailure, RunReport, describe};

/// How a replay ended.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ReplayOutcome {
    /// Same plugin: every call matched the journal, up to where the recording ends.
    Verified {
        /// Host calls matched.
        calls: u64,
        /// Of which writes.
        writes: u64,
        /// How the recorded run ended, which the replay reproduced.
        recorded: RecordedEnd,
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

/// How the recorded run ended, as its journal says (the footer, or its absence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordedEnd {
    /// It finished and succeeded.
    Succeeded,
    /// It finished with a failed check.
    ChecksFailed,
    /// It failed (a plugin error, a crash, a database error).
    Failed,
    /// A sandbox limit stopped it (fuel, memory, wall-clock time).
    Limit,
    /// The operator interrupted it (SIGINT).
    Interrupted,
    /// It was killed: the journal ends without a footer, and replay verified its prefix.
    Killed,
}

impl RecordedEnd {
    /// Reads it from the footer, if the journal has one.
    pub fn of(footer: Option<&Footer>) -> RecordedEnd {
        let Some(footer) = footer else {
            return RecordedEnd::Killed;
        };
        let failure = footer.failure.as_deref().unwrap_or("");
        match footer.outcome.as_str() {
            "succeeded" => RecordedEnd::Succeeded,
            "checks-failed" => RecordedEnd::ChecksFailed,
            _ if failure.contains("interrupted by the operator") => RecordedEnd::Interrupted,
            _ if failure.contains("fuel limit exhausted")
                || failure.contains("memory limit exceeded")
                || failure.contains("timeout: the call ran longer than") =>
            {
                RecordedEnd::Limit
            }
            _ => RecordedEnd::Failed,
        }
    }

    /// How the report says it.
    pub fn describe(self) -> &'static str {
        match self {
            RecordedEnd::Succeeded => "the recorded run succeeded",
            RecordedEnd::ChecksFailed => "the recorded run finished with a failed check",
            RecordedEnd::Failed => "the recorded run failed",
            RecordedEnd::Limit => "the recorded run hit a limit",
            RecordedEnd::Interrupted => "the recorded run was interrupted (SIGINT)",
            RecordedEnd::Killed => {
                "the recorded run was killed: its journal's prefix replayed, up to where it ends"
            }
        }
    }
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
            let expected = recorded_plugin_path(journal_path, &header);
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
    // A `--jobs` run's journal: the units each lane ran, replayed lane by lane.
    let lanes = match header.jobs {
        Some(_) => super::parallel::lanes_of(journal_path)?,
        None => BTreeMap::new(),
    };
    // Verifying replays each lane with its own plugin instance, in the recorded order.
    // Comparing runs the other version's units one after another on one instance: its
    // reads are matched from every lane's recorded reads, its writes against all of them.
    let laned = lanes.len() > 1 && !comparing;
    let mut reader = reader;
    if laned {
        reader.only_lane(0);
    }
    let (tape, recorded_config) = if comparing {
        let comparison = Comparison::load(reader, &header)?;
        let config = comparison.config.clone();
        (Tape::Comparing(tape::shared(comparison)), config)
    } else {
        (Tape::Replaying(tape::shared(Player::new(reader))), None)
    };

    let state = RunState::new(
        DatabaseCtx::new(Session::empty(Tape::Off)),
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
    state.database = DatabaseCtx::new(Session::recorded(infos.clone(), tape.clone()));
    state.set_tape(tape.clone());

    let mut runner = Runner {
        instance,
        mode: RunMode::Replay {
            of_dry_run: header.dry_run,
        },
        observer,
        tape: tape.clone(),
        interrupt: Arc::new(AtomicBool::new(false)),
        limits: header.limits,
        lint: Default::default(),
        locks: Default::default(),
        // The recorded run went on past failed units: so does its replay, unit for unit.
        keep_going: header.keep_going && !header.dry_run,
        configuration: None,
        plan_gate: None,
    };
    let connections = header
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
        .collect();
    let mut report = RunReport::begin(
        &plugin,
        info,
        header.dry_run,
        header.seeds,
        connections,
        Default::default(),
    );
    let values = recorded_config.unwrap_or_default();
    let mut lane_ends: Vec<LaneEnd> = Vec::new();
    match runner
        .prepare(
            values.clone(),
            values.clone(),
            header.only.as_deref(),
            header.shard,
        )
        .await
    {
        Ok((units, not_found)) => {
            report_not_found(&mut runner, &mut report, &not_found);
            // Which units the recorded run skipped comes from the journal, not from a ledger
            // (the plugin's own skip reason, when it gave one, is the report's note).
            let units: Vec<(UnitInfo, UnitPlan)> = units
                .into_iter()
                .map(|u| {
                    let plan = declared_plan(&u).unwrap_or(UnitPlan::Run {
                        override_reason: None,
                    });
                    (u, plan)
                })
                .collect();
            if laned {
                let of = |names: &Vec<String>| -> Vec<(UnitInfo, UnitPlan)> {
                    names
                        .iter()
                        .filter_map(|n| units.iter().find(|(u, _)| &u.name == n).cloned())
                        .collect()
                };
                let lane = LaneReplay {
                    journal: journal_path,
                    plugin: &plugin,
                    header: &header,
                    infos: &infos,
                    observer: runner.observer.clone(),
                    values: &values,
                };
                for (number, names) in lanes.iter().filter(|(n, _)| **n != 0) {
                    lane_ends.push(lane.replay(*number, &of(names), &mut report).await?);
                }
                let earlier = report.failure.take();
                runner.run_units(&of(&lanes[&0]), &mut report).await;
                report.failure = earlier.or(report.failure.take());
            } else {
                runner.run_units(&units, &mut report).await;
            }
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
        }) if !matches!(d, ReplayDivergence::RecordingStopped { .. }) => Some(d.clone()),
        _ => None,
    };
    // Stopped where the recording was stopped from outside: that failure is the recording's.
    let stopped_with_recording = matches!(&tape, Tape::Replaying(player) if lock(player).stopped());
    let outcome = match &tape {
        Tape::Comparing(comparison) => {
            let diff = lock(comparison).diff();
            ReplayOutcome::Compared {
                identical: diff.is_identical(),
                diff,
                stopped: divergence(&report),
            }
        }
        Tape::Replaying(player) => match divergence(&report).or_else(|| {
            lane_ends.iter().find_map(|end| match end {
                LaneEnd::Diverged(d) => Some(d.clone()),
                LaneEnd::Verified { .. } => None,
            })
        }) {
            Some(divergence) => ReplayOutcome::Diverged { divergence },
            None => {
                let finished = lock(player).finish();
                let (lane_calls, lane_writes) =
                    lane_ends.iter().fold((0, 0), |(c, w), end| match end {
                        LaneEnd::Verified { calls, writes } => (c + calls, w + writes),
                        LaneEnd::Diverged(_) => (c, w),
                    });
                match finished {
                    Ok((calls, writes, footer)) => ReplayOutcome::Verified {
                        calls: calls + lane_calls,
                        writes: writes + lane_writes,
                        recorded: RecordedEnd::of(footer.as_ref()),
                    },
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
        // A replay contacts no database: a commit-time failure (`FailureCause::Commit`) can
        // only be the recording's own, met again at the same point.
        (ReplayOutcome::Verified { .. }, Some(f))
            if !matches!(f.cause, FailureCause::Call(_) | FailureCause::Commit(_))
                && !stopped_with_recording =>
        {
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

/// How one lane of a `--jobs` journal replayed.
enum LaneEnd {
    Verified { calls: u64, writes: u64 },
    Diverged(ReplayDivergence),
}

/// What every lane of a `--jobs` journal replays with.
struct LaneReplay<'a> {
    journal: &'a Path,
    plugin: &'a LoadedPlugin,
    header: &'a Header,
    infos: &'a BTreeMap<String, ConnectionInfo>,
    observer: Arc<dyn RunObserver>,
    values: &'a [(String, String)],
}

impl LaneReplay<'_> {
    /// Replays lane `number` with a plugin instance of its own: `configure`, `list-units`
    /// and its `units`, every call answered from that lane's entries. Its units, checks
    /// and messages go into `report`; a failure only when the report has none yet.
    async fn replay(
        &self,
        number: u16,
        units: &[(UnitInfo, UnitPlan)],
        report: &mut RunReport,
    ) -> Result<LaneEnd, RunError> {
        let (mut reader, _) = JournalReader::open(self.journal)?;
        reader.only_lane(number);
        let player = tape::shared(Player::new(reader));
        let tape = Tape::Replaying(player.clone());
        let state = RunState::new(
            DatabaseCtx::new(Session::empty(Tape::Off)),
            self.observer.clone(),
            Tape::Off,
            self.header.seeds,
            &self.header.limits,
        );
        let mut instance =
            PluginInstance::instantiate(Runtime::shared(), self.plugin, state, self.header.limits)
                .await?;
        describe(&mut instance).await?;
        let state = instance.state();
        state.database = DatabaseCtx::new(Session::recorded(self.infos.clone(), tape.clone()));
        state.set_tape(tape.clone());
        let mut runner = Runner {
            instance,
            mode: RunMode::Replay {
                of_dry_run: self.header.dry_run,
            },
            observer: self.observer.clone(),
            tape,
            interrupt: Arc::new(AtomicBool::new(false)),
            limits: self.header.limits,
            lint: Default::default(),
            locks: Default::default(),
            keep_going: self.header.keep_going && !self.header.dry_run,
            configuration: None,
            plan_gate: None,
        };
        let earlier = report.failure.take();
        let values = self.values.to_vec();
        match runner
            .prepare(
                values.clone(),
                values,
                self.header.only.as_deref(),
                self.header.shard,
            )
            .await
        {
            Ok(_) => runner.run_units(units, report).await,
            Err(RunError::Tape(e)) => {
                report.failure = Some(RunFailure {
                    phase: format!("configure (lane {number})"),
                    message: e.to_string(),
                    consequence: "nothing was changed (replay)".into(),
                    cause: FailureCause::Tape(e),
                })
            }
            Err(RunError::Plugin { phase, error }) => {
                report.failure = Some(RunFailure {
                    phase: format!("{phase} (lane {number})"),
                    message: error.to_string(),
                    consequence: "nothing was changed (replay)".into(),
                    cause: FailureCause::Call(error),
                })
            }
            Err(other) => {
                runner.close().await;
                return Err(other);
            }
        }
        let state = runner.instance.state();
        let (checks, _) = state.checks.take_results();
        report.checks.extend(checks);
        let (messages, _) = state.log.take_messages();
        report.messages.extend(messages);
        let failure = report.failure.take();
        let diverged = match &failure {
            Some(RunFailure {
                cause:
                    FailureCause::Tape(TapeError::Divergence(d))
                    | FailureCause::Call(CallError::Tape(TapeError::Divergence(d))),
                ..
            }) if !matches!(d, ReplayDivergence::RecordingStopped { .. }) => Some(d.clone()),
            _ => None,
        };
        let end = match diverged {
            Some(d) => LaneEnd::Diverged(d),
            None => {
                let finished = lock(&player).finish();
                match finished {
                    Ok((calls, writes, _)) => LaneEnd::Verified { calls, writes },
                    Err(TapeError::Divergence(d)) => LaneEnd::Diverged(d),
                    Err(TapeError::Journal(e)) => {
                        runner.close().await;
                        return Err(RunError::Journal(e));
                    }
                }
            }
        };
        report.failure = earlier.or(failure);
        runner.close().await;
        Ok(end)
    }
}

/// Finds the plugin a journal names: `plugins/<sha256>.wasm` next to the journal.
pub fn recorded_plugin_path(journal: &Path, header: &Header) -> PathBuf {
    journal
        .parent()
        .unwrap_or(Path::new("."))
        .join("plugins")
        .join(format!("{}.wasm", header.plugin_sha256))
}
