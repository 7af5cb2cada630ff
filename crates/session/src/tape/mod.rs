//! The one boundary where a run's inputs are recorded or replayed.
//!
//! Every host call a plugin makes — database, log, checks — and every export
//! call the host makes goes through the run's [`Tape`]:
//!
//! - [`Tape::Recording`]: the call runs live and is appended to the journal.
//! - [`Tape::Replaying`]: the call is answered from a journal and must be the
//!   call that was recorded, in order ([`Player`]).
//! - [`Tape::Comparing`]: another plugin version runs on the recorded inputs;
//!   reads are answered by matching recorded reads, writes are collected for a
//!   per-table diff ([`Comparison`]).
//!
//! Clock and randomness need no recording: they are deterministic functions
//! of the seeds in the journal header.

use std::sync::{Arc, Mutex};

use migrun_journal::{CallResult, Entry, HostCall, JournalError, JournalWriter};
mod comparison;
mod player;
mod shape;

pub use comparison::{
    ChangedExecution, ChangedRow, Comparison, Execution, FILE_READ_MAX_BYTES, StatementDiff,
    TableDiff, WriteDiff,
};
pub use player::{Player, ReplayDivergence};

/// Where a run's host-call answers come from and where they go. Cheap to clone: every
/// capability holds one, all sharing the same sequence.
#[derive(Clone)]
pub enum Tape {
    /// Live calls, not recorded (used by `inspect`).
    Off,
    /// Live calls, appended to a journal, in a lane (the record's lane: the worker
    /// of `--jobs` whose calls these are; 0 without `--jobs`).
    Recording(Arc<Mutex<Recorder>>, u16),
    /// Answers from a journal, strictly in order.
    Replaying(Arc<Mutex<Player>>),
    /// Answers matched from a journal for another plugin version.
    Comparing(Arc<Mutex<Comparison>>),
}

/// The journal being written by a live run.
pub struct Recorder {
    writer: JournalWriter,
    calls: u64,
    failed: Option<String>,
    /// Several lanes append (`--jobs` > 1).
    parallel: bool,
}

impl Recorder {
    /// Wraps a writer whose header is already written.
    pub fn new(writer: JournalWriter) -> Recorder {
        Recorder {
            writer,
            calls: 0,
            failed: None,
            parallel: false,
        }
    }

    /// Appends an entry. After a write error every later append fails too: a
    /// journal with a hole is worse than a run that stops.
    pub fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        self.append_in_lane(0, entry)
    }

    /// Appends (a copy of) an entry of `lane` ([`Tape::Recording`]); fails like
    /// [`Recorder::append`].
    pub fn append_in_lane(&mut self, lane: u16, entry: &Entry) -> Result<(), JournalError> {
        self.append_owned(entry.clone(), lane)
    }

    /// Appends an owned entry of `lane`, encoded on the journal's writer thread; fails
    /// like [`Recorder::append`].
    pub fn append_owned(&mut self, entry: Entry, lane: u16) -> Result<(), JournalError> {
        self.write(|writer| writer.append_in_lane(lane, entry))
    }

    /// Appends a call that ran live and its result, in `lane` (see
    /// [`JournalWriter::append_call_in_lane`]); fails like [`Recorder::append`].
    pub fn append_call(
        &mut self,
        lane: u16,
        call: HostCall,
        result: &CallResult,
    ) -> Result<(), JournalError> {
        self.write(|writer| writer.append_call_in_lane(lane, call, result))
    }

    /// Runs one append unless an earlier one failed; a failure is kept for every later one.
    fn write(
        &mut self,
        append: impl FnOnce(&mut JournalWriter) -> Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        if let Some(message) = &self.failed {
            return Err(JournalError::Io {
                path: self.writer.path().display().to_string(),
                source: std::io::Error::other(message.clone()),
            });
        }
        append(&mut self.writer).inspect_err(|e| self.failed = Some(e.to_string()))
    }

    /// From now on several lanes append (`--jobs`): see [`Tape::anchor`].
    pub fn set_parallel(&mut self) {
        self.parallel = true;
    }

    /// Host calls recorded so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The writer (to finish it).
    pub fn writer_mut(&mut self) -> &mut JournalWriter {
        &mut self.writer
    }
}

/// How a tape answered a call.
pub enum Answer {
    /// Run the call live (and then call [`Tape::record`]).
    Live,
    /// Use this recorded result.
    Recorded(CallResult),
}

/// Why a tape could not answer: the run must stop.
#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    /// Replay diverged from the journal, or asked for something never recorded.
    #[error(transparent)]
    Divergence(#[from] ReplayDivergence),
    /// The journal could not be written or read.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl Tape {
    /// Asks the tape for the answer to `call` before running it.
    pub fn answer(&self, call: &HostCall) -> Result<Answer, TapeError> {
        match self {
            Tape::Off | Tape::Recording(..) => Ok(Answer::Live),
            Tape::Replaying(player) => Ok(Answer::Recorded(lock(player).answer(call)?)),
            Tape::Comparing(comparison) => Ok(Answer::Recorded(lock(comparison).answer(call)?)),
        }
    }

    /// Records a call that ran live with its result.
    pub fn record(&self, call: &HostCall, result: &CallResult) -> Result<(), TapeError> {
        match self {
            Tape::Recording(..) => self.record_owned(call.clone(), result),
            _ => Ok(()),
        }
    }

    /// Records a call that ran live with its result, taking the call: a bulk insert's
    /// rows move into the journal instead of being copied (the result is still copied:
    /// the plugin gets it).
    pub fn record_owned(&self, call: HostCall, result: &CallResult) -> Result<(), TapeError> {
        if let Tape::Recording(recorder, lane) = self {
            // The result is copied (a memory copy) so that encoding, hashing and
            // compressing happen on the journal's writer thread.
            let mut recorder = lock(recorder);
            recorder.append_call(*lane, call, result)?;
            recorder.calls += 1;
        }
        Ok(())
    }

    /// Marks the start of an export call. Replaying checks it is the recorded
    /// one and returns the recorded configuration for `configure`.
    pub fn export(
        &self,
        export: &str,
        unit: Option<&str>,
        config: Option<Vec<(String, String)>>,
    ) -> Result<Option<Vec<(String, String)>>, TapeError> {
        match self {
            Tape::Off | Tape::Comparing(_) => Ok(config),
            Tape::Recording(recorder, lane) => {
                lock(recorder).append_in_lane(
                    *lane,
                    &Entry::Export {
                        export: export.to_owned(),
                        unit: unit.map(str::to_owned),
                        config: config.clone(),
                    },
                )?;
                Ok(config)
            }
            Tape::Replaying(player) => Ok(lock(player).export(export, unit)?),
        }
    }

    /// Marks the end of an export call.
    pub fn export_end(&self, export: &str, error: Option<String>) -> Result<(), TapeError> {
        match self {
            Tape::Off | Tape::Comparing(_) => Ok(()),
            Tape::Recording(recorder, lane) => Ok(lock(recorder).append_in_lane(
                *lane,
                &Entry::ExportEnd {
                    export: export.to_owned(),
                    error,
                },
            )?),
            Tape::Replaying(player) => Ok(lock(player).export_end(export, error.as_deref())?),
        }
    }

    /// Whether `unit` is to be skipped as already finished: live runs decide from the
    /// ledger (and record the decision with `reason`); replays follow the recording.
    pub fn skip_unit(&self, unit: &str, live_decision: Option<&str>) -> Result<bool, TapeError> {
        match self {
            Tape::Off => Ok(live_decision.is_some()),
            Tape::Recording(recorder, lane) => match live_decision {
                Some(reason) => {
                    lock(recorder).append_in_lane(
                        *lane,
                        &Entry::UnitSkipped {
                            unit: unit.to_owned(),
                            reason: reason.to_owned(),
                        },
                    )?;
                    Ok(true)
                }
                None => Ok(false),
            },
            Tape::Replaying(player) => lock(player).skipped(unit),
            Tape::Comparing(comparison) => Ok(lock(comparison).skipped.contains(unit)),
        }
    }

    /// The journal's chain head so far (what a ledger row seals), when recording.
    pub fn head(&self) -> Option<String> {
        match self {
            Tape::Recording(recorder, _) => Some(lock(recorder).writer_mut().head()),
            _ => None,
        }
    }

    /// Makes every entry recorded so far durable (written, flushed, fsynced): the
    /// host calls it before each COMMIT, so whatever a database commits is in
    /// the journal on disk first — one sync per commit (group commit).
    pub fn sync(&self) -> Result<(), TapeError> {
        if let Tape::Recording(recorder, _) = self {
            let mut recorder = lock(recorder);
            if let Some(message) = &recorder.failed {
                return Err(TapeError::Journal(JournalError::Io {
                    path: recorder.writer.path().display().to_string(),
                    source: std::io::Error::other(message.clone()),
                }));
            }
            let synced = recorder.writer.sync();
            if let Err(e) = &synced {
                recorder.failed = Some(e.to_string());
            }
            synced?;
        }
        Ok(())
    }

    /// Records the host's transaction control (audit only; replay skips it).
    pub fn transaction(
        &self,
        connection: &str,
        op: &str,
        error: Option<String>,
    ) -> Result<(), TapeError> {
        if let Tape::Recording(recorder, lane) = self {
            lock(recorder).append_in_lane(
                *lane,
                &Entry::Tx {
                    connection: connection.to_owned(),
                    op: op.to_owned(),
                    error,
                },
            )?;
        }
        Ok(())
    }

    /// In a replay that verifies, the first failure the recorded run met in the host's
    /// transaction steps at this point (see [`Player::unit_end_failure`]); `None` otherwise.
    pub fn recorded_unit_end_failure(&self) -> Result<Option<(String, String, String)>, TapeError> {
        match self {
            Tape::Replaying(player) => lock(player).unit_end_failure(),
            _ => Ok(None),
        }
    }

    /// The same journal, for the calls of the worker `lane` (`--jobs`).
    pub fn in_lane(&self, lane: u16) -> Tape {
        match self {
            Tape::Recording(recorder, _) => Tape::Recording(recorder.clone(), lane),
            other => other.clone(),
        }
    }

    /// The ledger rows' anchor for a unit's end or checkpoint: the chain head they name.
    ///
    /// With one lane this is [`Tape::head`], and the `record-*` entry follows it. With
    /// several (`--jobs`), another lane could append between reading the head and this
    /// lane's `record-*` entry; so the first `record-*` entry (`op` on `connection`,
    /// before its row is written) is appended in the same step as the head is read, and
    /// `Ok(Some((head, true)))` says it was. The row's write then only records a failure.
    pub fn anchor(&self, connection: &str, op: &str) -> Result<Option<(String, bool)>, TapeError> {
        let Tape::Recording(recorder, lane) = self else {
            return Ok(None);
        };
        let mut recorder = lock(recorder);
        let head = recorder.writer_mut().head();
        if !recorder.parallel {
            return Ok(Some((head, false)));
        }
        recorder.append_in_lane(
            *lane,
            &Entry::Tx {
                connection: connection.to_owned(),
                op: op.to_owned(),
                error: None,
            },
        )?;
        Ok(Some((head, true)))
    }

    /// Whether calls run against live databases.
    pub fn is_live(&self) -> bool {
        matches!(self, Tape::Off | Tape::Recording(..))
    }
}

/// Locks a tape part; a poisoned lock means a panic elsewhere already failed the run.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A shared [`Player`] or [`Comparison`], as the tape holds it.
pub fn shared<T>(value: T) -> Arc<Mutex<T>> {
    Arc::new(Mutex::new(value))
}
