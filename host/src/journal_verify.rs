//! `migrun journal verify`: a journal checked on its own (header, chain, frames,
//! footer) and, given the run's connections, against the ledger rows the run
//! committed.
//!
//! A journal rewritten after the run — an answer edited and the whole chain
//! recomputed — verifies on its own: the chain proves only that nobody edited
//! it *without* recomputing. The ledger rows are what the editor cannot
//! recompute: each names the chain head at the moment its unit or checkpoint
//! committed, and the journal was synced before that commit. So every ledger
//! row of the run must name a hash the journal has exactly where it recorded
//! that row (the head before its `record-*` entry, on that connection); a
//! rewritten journal has other hashes there. A row written after a kill -9
//! is in the journal too, which proves the crash left every committed unit
//! recorded.
//!
//! The end of the journal — the verify phase and the footer, after the last
//! unit — is held by the run's **final hash**, which a finished run stores in
//! every ledger row it committed (column `run_final_hash`) once its footer is
//! synced. A journal whose end was edited and re-chained has another final
//! hash; one whose footer was cut off has none, while the ledger says the run
//! finished.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{RunConfig, redact_url};
use crate::db::{Access, Connection};
use crate::journal::verify::{self, Verification};
use crate::ledger::{Ledger, LedgerRow, STATUS_CHECKPOINT};

/// What `migrun journal verify` found.
#[derive(Debug, Serialize)]
pub struct JournalVerifyReport {
    /// The journal.
    pub journal: PathBuf,
    /// The journal on its own.
    pub journal_check: Verification,
    /// Each connection's ledger rows of this run, checked against the journal
    /// (empty without connections).
    pub ledgers: Vec<LedgerCheck>,
    /// `intact`, `incomplete`, `modified` or `unreadable`.
    pub verdict: &'static str,
}

/// The ledger of one connection, held against the journal.
#[derive(Debug, Serialize)]
pub struct LedgerCheck {
    /// The connection.
    pub connection: String,
    /// Its URL, password redacted.
    pub url: String,
    /// The rows of this run, each with whether its anchor is where it must be.
    pub rows: Vec<RowCheck>,
    /// The run's final hash as this ledger stores it, checked against the journal's end
    /// (`None` when no row of the run holds one: the run did not finish, committed
    /// nothing here, or an older migrun ran it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_hash: Option<FinalHashCheck>,
    /// Why the ledger could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The final hash a ledger stores for the run, held against the journal.
#[derive(Debug, Serialize)]
pub struct FinalHashCheck {
    /// The hash stored.
    pub stored: String,
    /// The run's rows holding it.
    pub rows: usize,
    /// Why it does not match the journal's end, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
}

/// One ledger row of the run.
#[derive(Debug, Serialize)]
pub struct RowCheck {
    /// The unit (`unit@scope` when it has a scope).
    pub unit: String,
    /// `finished` or `checkpoint`.
    pub status: String,
    /// The chain head the row names.
    pub journal_hash: String,
    /// The journal entry recording it, when found there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
    /// Why it does not match, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
}

impl JournalVerifyReport {
    /// 0 intact and finished; 1 modified (or a ledger row not in it); 2 not readable
    /// (missing, not a journal, an unsupported format version); 3 incomplete: the
    /// prefix verifies but the run did not finish.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            "intact" => 0,
            "modified" => 1,
            "incomplete" => 3,
            _ => 2,
        }
    }

    /// The ledger rows whose anchor is not where it must be.
    pub fn mismatches(&self) -> impl Iterator<Item = (&LedgerCheck, &RowCheck)> {
        self.ledgers
            .iter()
            .flat_map(|l| l.rows.iter().map(move |r| (l, r)))
            .filter(|(_, r)| r.mismatch.is_some())
    }
}

/// Verifies `journal`, and with `config` every ledger row of its run on every connection.
pub async fn verify_journal(journal: &Path, config: Option<&RunConfig>) -> JournalVerifyReport {
    let check = verify::verify(journal);
    let mut ledgers = Vec::new();
    if let (Some(config), Some(run_id)) = (config, check.run_id.clone()) {
        let ledger = Ledger::new(&config.ledger_table);
        for (name, conn) in &config.connections {
            let mut out = LedgerCheck {
                connection: name.clone(),
                url: redact_url(&conn.url),
                rows: Vec::new(),
                final_hash: None,
                error: None,
            };
            match read_rows(&ledger, name, &conn.url, &run_id).await {
                Ok((rows, final_hashes)) => {
                    out.rows = rows
                        .into_iter()
                        .filter(|r| r.run_id == run_id)
                        .map(|r| check_row(&check, name, r))
                        .collect();
                    out.final_hash = check_final_hash(&check, &final_hashes);
                }
                Err(e) => out.error = Some(e),
            }
            ledgers.push(out);
        }
    }
    let mismatch = ledgers.iter().any(|l| {
        l.rows.iter().any(|r| r.mismatch.is_some())
            || l.final_hash.as_ref().is_some_and(|f| f.mismatch.is_some())
    });
    let verdict = match &check.problem {
        Some(p) if p.kind == "modified" => "modified",
        _ if mismatch => "modified",
        // A ledger row of this run while the journal holds no entry: the run committed
        // something its journal does not hold.
        Some(p) if p.kind == "no-entries" => "incomplete",
        Some(_) => "unreadable",
        // Asked to check a ledger that could not be read: not verified.
        None if ledgers.iter().any(|l| l.error.is_some()) => "unreadable",
        None if check.footer.is_none() => "incomplete",
        None => "intact",
    };
    JournalVerifyReport {
        journal: journal.to_owned(),
        journal_check: check,
        ledgers,
        verdict,
    }
}

/// The unit, status and stored final hash of each ledger row of a run.
type FinalHashes = Vec<(String, String, Option<String>)>;

/// Every ledger row on one connection (none when the table does not exist), and the
/// final hashes run `run_id`'s rows hold.
async fn read_rows(
    ledger: &Ledger,
    name: &str,
    url: &str,
    run_id: &str,
) -> Result<(Vec<LedgerRow>, FinalHashes), String> {
    let mut conn = Connection::connect(name, url, Access::ReadOnly)
        .await
        .map_err(|e| e.to_string())?;
    let rows = ledger.all(&mut conn).await;
    let final_hashes = ledger.final_hashes(&mut conn, run_id).await;
    conn.close().await;
    Ok((
        rows.map_err(|e| e.to_string())?.unwrap_or_default(),
        final_hashes.map_err(|e| e.to_string())?,
    ))
}

/// Whether the journal ends, footer and all, with the final hash the run's rows hold.
fn check_final_hash(check: &Verification, stored: &FinalHashes) -> Option<FinalHashCheck> {
    let hashes: Vec<&str> = stored.iter().filter_map(|(_, _, h)| h.as_deref()).collect();
    let first = *hashes.first()?;
    let mismatch = if hashes.iter().any(|h| *h != first) {
        Some("the run's rows hold different final hashes: the ledger was edited".to_owned())
    } else if check.problem.is_some() {
        Some(format!(
            "the ledger holds the run's final hash {}, and the journal does not verify",
            short(first)
        ))
    } else if check.footer.is_none() {
        Some(format!(
            "the ledger says the run finished, with final hash {}, but the journal ends without a footer after {} entries: its end was cut off after the run",
            short(first),
            check.entries
        ))
    } else if check.head != first {
        Some(format!(
            "the ledger holds the run's final hash {}, the journal ends with {}: the journal was rewritten after the run (its chain recomputed)",
            short(first),
            short(&check.head)
        ))
    } else {
        None
    };
    Some(FinalHashCheck {
        stored: first.to_owned(),
        rows: hashes.len(),
        mismatch,
    })
}

/// Whether the journal recorded `row` on `connection` right after the head it names.
fn check_row(check: &Verification, connection: &str, row: LedgerRow) -> RowCheck {
    let op = if row.status == STATUS_CHECKPOINT {
        "record-checkpoint"
    } else {
        "record-ledger"
    };
    let place = check.anchors.get(&row.journal_hash).and_then(|places| {
        places
            .iter()
            .find(|p| p.connection == connection && p.op == op)
    });
    let mismatch = match place {
        Some(_) => None,
        None if check.problem.is_some() => Some(format!(
            "the row names chain head {}, which is not in the part of the journal that verifies",
            short(&row.journal_hash)
        )),
        None => Some(format!(
            "the row names chain head {}, but the journal has no {op} on `{connection}` after that head: the journal was rewritten after the run (its chain recomputed)",
            short(&row.journal_hash)
        )),
    };
    RowCheck {
        entry: place.map(|p| p.index),
        unit: row.key().to_string(),
        status: row.status,
        journal_hash: row.journal_hash,
        mismatch,
    }
}

fn short(hash: &str) -> String {
    crate::printable::printable(hash.get(..16).unwrap_or(hash)).into_owned()
}
