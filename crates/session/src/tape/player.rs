//! [`Player`]: the tape of a replay that verifies — the journal's own plugin
//! re-executed on its recorded answers. Every host call must be the recorded
//! one, in order, and is answered with the recorded result; the first call
//! that differs stops the replay with a [`ReplayDivergence`] naming the entry,
//! the expected call and the actual one (like Temporal's non-determinism
//! error). Same plugin, same answers ⇒ same writes.

use serde::Serialize;

use crate::tape::TapeError;
use migrun_journal::{CallResult, Entry, Footer, HostCall, JournalError, JournalReader};

/// A replayed plugin did something the journal did not record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[non_exhaustive]
pub enum ReplayDivergence {
    /// The next call differs from the recorded one.
    #[error(
        "replay diverged at journal entry {index}: the journal has {expected}, the plugin made {actual}"
    )]
    Mismatch {
        /// The journal entry index.
        index: u64,
        /// What the journal recorded there.
        expected: String,
        /// What the plugin did instead.
        actual: String,
    },
    /// Not a divergence: the recorded run was stopped from outside here (SIGINT, the
    /// wall-clock limit, or killed — its journal ends), and the replayed plugin, which
    /// nothing stops, went on. The replay stops at the same point.
    #[error("the recorded run was {why} at journal entry {index}; the replay stops there too")]
    RecordingStopped {
        /// The journal entry where the recording stops.
        index: u64,
        /// How it was stopped.
        why: String,
    },
    /// A plugin version being compared read something the recorded run never read.
    #[error(
        "the plugin asked for something the journal never recorded: {call}; the comparison stops here"
    )]
    NotRecorded {
        /// The call.
        call: String,
    },
}

/// Whether the plugin's call is the recorded one. Values compare by their bits
/// (`migrun_types::Value`'s equality): the same `NaN` is the same call, `-0.0`
/// where `0.0` was recorded is not — exactly what the database would be sent.
fn same_call(a: &HostCall, b: &HostCall) -> bool {
    a == b
}

fn entry_summary(entry: &Entry) -> String {
    match entry {
        Entry::Header(_) => "the header".into(),
        Entry::Export { export, unit, .. } => match unit {
            Some(u) => format!("the host calling {export}({u:?})"),
            None => format!("the host calling {export}()"),
        },
        Entry::ExportEnd { export, error } => match error {
            Some(e) => format!("{export} failing: {e}"),
            None => format!("{export} returning"),
        },
        Entry::Call { call, .. } => call.summary(),
        Entry::Tx { connection, op, .. } => format!("{op} on {connection}"),
        Entry::UnitSkipped { unit, .. } => {
            format!("the host skipping unit {unit:?} (finished earlier)")
        }
        Entry::Footer(_) => "the end of the run".into(),
    }
}

/// Whether an export error came from outside the plugin — the operator's SIGINT or the
/// wall-clock limit — rather than from what the plugin computed: a replay, which nothing
/// interrupts and which waits for no database, would go on past it.
fn stopped_from_outside(error: &str) -> Option<&'static str> {
    if error.starts_with("interrupted by the operator") {
        Some("interrupted (SIGINT)")
    } else if error.starts_with("timeout: the call ran longer than") {
        Some("stopped by the wall-clock limit")
    } else {
        None
    }
}

/// Answers a replay strictly from the journal, in order.
pub struct Player {
    reader: JournalReader,
    peeked: Option<(u64, Entry)>,
    calls: u64,
    writes: u64,
    footer: Option<Footer>,
    end_index: u64,
    /// The recording was stopped from outside and the replay has reached that point.
    stopped: bool,
}

impl Player {
    /// Plays back `reader`, positioned after the header.
    pub fn new(reader: JournalReader) -> Player {
        Player {
            reader,
            peeked: None,
            calls: 0,
            writes: 0,
            footer: None,
            end_index: 1,
            stopped: false,
        }
    }

    /// The next entry replay compares (transaction control is the host's own, not the plugin's).
    fn next_compared(&mut self) -> Result<Option<(u64, Entry)>, JournalError> {
        if let Some(peeked) = self.peeked.take() {
            return Ok(Some(peeked));
        }
        loop {
            match self.reader.next_entry()? {
                Some((_, Entry::Tx { .. })) => continue,
                Some((index, Entry::Footer(footer))) => {
                    self.end_index = index;
                    self.footer = Some(footer);
                    return Ok(None);
                }
                Some((index, entry)) => {
                    self.end_index = index + 1;
                    return Ok(Some((index, entry)));
                }
                None => return Ok(None),
            }
        }
    }

    /// Where the replay must stop because the recording was stopped from outside: the
    /// next entry is an export failing from outside, or the journal ends without a
    /// footer (killed) or with the footer of an interrupted run. The entry is kept for
    /// the export's end to match.
    fn recording_stopped(&mut self, found: &Option<(u64, Entry)>) -> Option<TapeError> {
        let (index, why) = match found {
            Some((index, Entry::ExportEnd { error: Some(e), .. })) => {
                (*index, stopped_from_outside(e)?.to_owned())
            }
            Some(_) => return None,
            None => match &self.footer {
                None => (
                    self.end_index,
                    "killed (the journal ends without a footer)".to_owned(),
                ),
                Some(footer) => (
                    self.end_index,
                    stopped_from_outside(
                        footer
                            .failure
                            .as_deref()
                            .and_then(|f| f.split_once(": ").map(|(_, m)| m))
                            .unwrap_or(""),
                    )?
                    .to_owned(),
                ),
            },
        };
        self.stopped = true;
        Some(TapeError::Divergence(ReplayDivergence::RecordingStopped {
            index,
            why,
        }))
    }

    /// The error for `found` where the replay did `actual`: the recording's stop, or a divergence.
    fn mismatch(&mut self, found: Option<(u64, Entry)>, actual: String) -> TapeError {
        if let Some(stop) = self.recording_stopped(&found) {
            self.peeked = found;
            return stop;
        }
        self.diverged(found, actual)
    }

    fn diverged(&self, found: Option<(u64, Entry)>, actual: String) -> TapeError {
        let (index, expected) = match found {
            Some((index, entry)) => (index, entry_summary(&entry)),
            None => (self.end_index, "the end of the run".to_owned()),
        };
        TapeError::Divergence(ReplayDivergence::Mismatch {
            index,
            expected,
            actual,
        })
    }

    /// The first failure among the host's recorded transaction steps at this point (a
    /// unit's end: its bulk insert streams ended, ledger rows, commits), as
    /// `(connection, op, error)`. Reads the `tx` entries up to the next entry replay
    /// compares, which stays next. A replay has no database, so this is how it meets the
    /// failures the recorded run met when its unit ended: the same unit fails.
    pub fn unit_end_failure(&mut self) -> Result<Option<(String, String, String)>, TapeError> {
        if self.peeked.is_some() {
            return Ok(None);
        }
        let mut failure = None;
        loop {
            match self.reader.next_entry()? {
                Some((
                    _,
                    Entry::Tx {
                        connection,
                        op,
                        error,
                    },
                )) => {
                    // A unit's end: its streams, ledger rows and commits (a `begin` or
                    // `rollback` after them belongs to what follows).
                    let ends_unit = matches!(
                        op.as_str(),
                        "bulk-insert-end" | "record-ledger" | "record-checkpoint" | "commit"
                    );
                    if failure.is_none()
                        && ends_unit
                        && let Some(error) = error
                    {
                        failure = Some((connection, op, error));
                    }
                }
                Some((index, Entry::Footer(footer))) => {
                    self.end_index = index;
                    self.footer = Some(footer);
                    break;
                }
                Some((index, entry)) => {
                    self.end_index = index + 1;
                    self.peeked = Some((index, entry));
                    break;
                }
                None => break,
            }
        }
        Ok(failure)
    }

    /// Whether the recorded run skipped `unit` (finished in an earlier run) at this point.
    pub fn skipped(&mut self, unit: &str) -> Result<bool, TapeError> {
        match self.next_compared()? {
            Some((_, Entry::UnitSkipped { unit: u, .. })) if u == unit => Ok(true),
            other => {
                self.peeked = other;
                Ok(false)
            }
        }
    }

    /// The recorded answer to `call`, which must be the next recorded call.
    pub fn answer(&mut self, call: &HostCall) -> Result<CallResult, TapeError> {
        match self.next_compared()? {
            Some((
                _,
                Entry::Call {
                    call: recorded,
                    result,
                },
            )) if same_call(&recorded, call) => {
                self.calls += 1;
                if call.is_write() {
                    self.writes += 1;
                }
                Ok(result)
            }
            found => Err(self.mismatch(found, call.summary())),
        }
    }

    /// Checks the host is calling the recorded export; returns the recorded configuration.
    pub fn export(
        &mut self,
        export: &str,
        unit: Option<&str>,
    ) -> Result<Option<Vec<(String, String)>>, TapeError> {
        match self.next_compared()? {
            Some((
                _,
                Entry::Export {
                    export: e,
                    unit: u,
                    config,
                },
            )) if e == export && u.as_deref() == unit => Ok(config),
            found => {
                let actual = match unit {
                    Some(u) => format!("the host calling {export}({u:?})"),
                    None => format!("the host calling {export}()"),
                };
                Err(self.mismatch(found, actual))
            }
        }
    }

    /// Checks the export ended as recorded (both ok, or both failed).
    pub fn export_end(&mut self, export: &str, error: Option<&str>) -> Result<(), TapeError> {
        match self.next_compared()? {
            Some((
                _,
                Entry::ExportEnd {
                    export: e,
                    error: recorded,
                },
            )) if e == export && recorded.is_some() == error.is_some() => Ok(()),
            // The replay was stopped where the recording ends: its export fails there.
            None if self.stopped && error.is_some() => Ok(()),
            found => {
                let actual = match error {
                    Some(err) => format!("{export} failing: {err}"),
                    None => format!("{export} returning"),
                };
                Err(self.diverged(found, actual))
            }
        }
    }

    /// After the run: every recorded call must have been made. Returns calls and writes matched.
    pub fn finish(&mut self) -> Result<(u64, u64, Option<Footer>), TapeError> {
        let mut next = self.next_compared()?;
        // Stopped inside an export: the host does not end an export a tape error stopped,
        // so the recording's failing end of it is still there.
        if self.stopped && matches!(next, Some((_, Entry::ExportEnd { error: Some(_), .. }))) {
            next = self.next_compared()?;
        }
        match next {
            None => Ok((self.calls, self.writes, self.footer.clone())),
            found => Err(self.mismatch(found, "nothing more (the replayed run ended)".into())),
        }
    }

    /// Whether the replay stopped where the recording was stopped from outside.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The journal's final hash, once read to the end.
    pub fn head(&self) -> String {
        self.reader.head()
    }
}
