//! Verifying a journal on its own: header, hash chain, frames, footer; and the
//! places a ledger row may name as its anchor.
//!
//! What the file alone can prove is limited: whoever rewrites a journal can
//! recompute its whole chain. What it cannot forge is the anchors the ledger
//! rows in the databases hold — the chain head at the moment each unit or
//! checkpoint committed — so [`Verification::anchors`] keeps, for every place
//! where the run recorded a ledger row, the hash a row written there names.
//! The host checks the ledger rows against them (`migrun journal verify -c`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::frame::TornTail;
use super::{Entry, Footer, JournalError, JournalReader};

/// What verifying one journal found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The format of the file.
    pub format: String,
    /// The run it records (from the header), when the header could be read.
    pub run_id: Option<String>,
    /// The plugin (from the header).
    pub plugin: Option<String>,
    /// Entries whose chain verified.
    pub entries: u64,
    /// The chain head after the last verified entry: the final hash of a finished run.
    pub head: String,
    /// The footer, when the run finished.
    pub footer: Option<Footer>,
    /// The torn frame a crashed writer left at the end, if any (dropped).
    pub torn_tail: Option<TornTail>,
    /// The first problem: where and what. `None` when every entry verified.
    pub problem: Option<Problem>,
    /// Every ledger record the run made: the anchor hash a ledger row written there
    /// names → where (the entry index of the `record-*` entry, its connection and op).
    #[serde(skip)]
    pub anchors: BTreeMap<String, Vec<AnchorPlace>>,
}

/// A place in the journal where the run wrote a ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorPlace {
    /// The index of the `tx` entry recording the ledger row.
    pub index: u64,
    /// The connection.
    pub connection: String,
    /// `record-ledger` (a finished unit) or `record-checkpoint`.
    pub op: String,
}

/// The first thing wrong with a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The entry index where it was found, when it is at an entry.
    pub index: Option<u64>,
    /// What: `modified`, `unsupported-format`, `no-entries` (a run killed before its
    /// header was on disk), `unreadable`.
    pub kind: &'static str,
    /// The reader's message.
    pub message: String,
}

impl Verification {
    /// Whether every entry verified and the run finished (a footer, last).
    pub fn is_complete(&self) -> bool {
        self.problem.is_none() && self.footer.is_some()
    }

    /// The journal's state in a few words, as `journal verify` prints it.
    pub fn summary(&self) -> String {
        match (&self.problem, &self.footer) {
            (Some(p), _) if p.kind == "no-entries" => {
                format!("incomplete: the run did not finish — {}", p.message)
            }
            (Some(p), _) => match p.index {
                Some(i) => format!("MODIFIED OR DAMAGED at entry {i}: {}", p.message),
                None => format!("NOT VERIFIED: {}", p.message),
            },
            (None, Some(f)) => format!(
                "intact: {} entries, the run finished ({})",
                self.entries, f.outcome
            ),
            (None, None) => format!(
                "incomplete: the run did not finish — its {} entries verify{}, but the journal ends without a footer (the run was killed or the machine stopped)",
                self.entries,
                match &self.torn_tail {
                    Some(t) => format!(
                        "; a torn last frame ({} bytes at byte {}) was dropped",
                        t.bytes, t.offset
                    ),
                    None => String::new(),
                }
            ),
        }
    }
}

/// Reads `path` to its end (or its first problem), verifying the chain.
pub fn verify(path: &Path) -> Verification {
    let mut v = Verification {
        format: String::new(),
        run_id: None,
        plugin: None,
        entries: 0,
        head: hex::encode([0u8; 32]),
        footer: None,
        torn_tail: None,
        problem: None,
        anchors: BTreeMap::new(),
    };
    let (mut reader, header) = match JournalReader::open(path) {
        Ok(opened) => opened,
        Err(e) => {
            v.problem = Some(problem(&e));
            return v;
        }
    };
    v.format = reader.format().to_owned();
    v.run_id = Some(header.run_id.clone());
    v.plugin = Some(format!("{} {}", header.plugin_name, header.plugin_version));
    v.entries = 1;
    v.head = reader.head();
    // The head before the current run of `record-*` entries, per lane: a unit's rows on
    // every writable connection all name the head before the first of them. With
    // `--jobs` a lane's run of `record-*` entries may be interleaved with other lanes'
    // entries; the host then appends the first of them together with reading the head
    // it names (`Tape::anchor`), so it is still the head right before that entry.
    let mut anchor_heads: BTreeMap<u16, String> = BTreeMap::new();
    loop {
        let before = reader.head();
        match reader.next_entry() {
            Ok(Some((index, entry))) => {
                v.entries = index + 1;
                v.head = reader.head();
                if v.footer.is_some() {
                    v.problem = Some(Problem {
                        index: Some(index),
                        kind: "modified",
                        message: "an entry after the footer: the journal was modified".into(),
                    });
                    return v;
                }
                match entry {
                    Entry::Tx { connection, op, .. }
                        if op == "record-ledger" || op == "record-checkpoint" =>
                    {
                        let anchor = anchor_heads.entry(reader.lane()).or_insert(before).clone();
                        v.anchors.entry(anchor).or_default().push(AnchorPlace {
                            index,
                            connection,
                            op,
                        });
                    }
                    Entry::Footer(footer) => {
                        anchor_heads.clear();
                        v.footer = Some(footer);
                    }
                    Entry::Header(_) => {
                        v.problem = Some(Problem {
                            index: Some(index),
                            kind: "modified",
                            message: "a second header: the journal was modified".into(),
                        });
                        return v;
                    }
                    _ => {
                        anchor_heads.remove(&reader.lane());
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                v.problem = Some(problem(&e));
                return v;
            }
        }
    }
    v.torn_tail = reader.torn_tail().cloned();
    v
}

fn problem(e: &JournalError) -> Problem {
    let (index, kind) = match e {
        JournalError::Malformed { index, .. } | JournalError::ChainBroken { index, .. } => {
            (Some(*index), "modified")
        }
        JournalError::UnsupportedFormat { .. } => (None, "unsupported-format"),
        JournalError::NoEntries { .. } => (None, "no-entries"),
        _ => (None, "unreadable"),
    };
    Problem {
        index,
        kind,
        message: e.to_string(),
    }
}
