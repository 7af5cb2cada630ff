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
    /// A plugin version being compared read something the recorded run never read.
    #[error(
        "the plugin asked for something the journal never recorded: {call}; the comparison stops here"
    )]
    NotRecorded {
        /// The call.
        call: String,
    },
}

fn same_call(a: &HostCall, b: &HostCall) -> bool {
    // Values hold floats (NaN != NaN), so fall back to the exact journal form.
    a == b || serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
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

/// Answers a replay strictly from the journal, in order.
pub struct Player {
    reader: JournalReader,
    peeked: Option<(u64, Entry)>,
    calls: u64,
    writes: u64,
    footer: Option<Footer>,
    end_index: u64,
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
            found => Err(self.diverged(found, call.summary())),
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
                Err(self.diverged(found, actual))
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
        match self.next_compared()? {
            None => Ok((self.calls, self.writes, self.footer.clone())),
            found => Err(self.diverged(found, "nothing more (the replayed run ended)".into())),
        }
    }

    /// The journal's final hash, once read to the end.
    pub fn head(&self) -> String {
        self.reader.head()
    }
}
