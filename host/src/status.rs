//! `migrun status`: the ledger of every configured connection, each row held
//! against the journal it names.
//!
//! A ledger row is only as trustworthy as the table it sits in, which the
//! plugin's role can write. Every row names the journal of its run and the
//! hash of the journal entry just before it was written (its anchor): a row
//! migrun wrote has its anchor in that journal's hash chain. A row whose
//! journal is there but does not hold the anchor was not written by that run
//! (forged, or edited since) and is flagged; a row whose journal cannot be
//! found here (another machine, deleted) is shown as unverified.
//!
//! A ledger of thousands of tenants' units is summed up per plugin
//! ([`TargetStatus::summary`]: counts by state) so that what needs attention —
//! checkpointed (unfinished) and suspect rows — is not lost among the finished
//! ones; the CLI lists every row only with `--all` or when there are few.
//!
//! A unit that failed left no ledger row: [`failed_units`] adds the units the
//! last runs recorded as failed (`crate::unit_failures`) that have not finished
//! since, with their errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::config::{RunConfig, redact_url};
use crate::db::{Access, Connection};
use crate::ledger::{Ledger, LedgerRow, STATUS_CHECKPOINT};

/// The ledger of one connection.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// The connection.
    pub connection: String,
    /// Its URL, password redacted.
    pub url: String,
    /// The ledger table.
    pub table: String,
    /// Its rows; `None` when the table does not exist (nothing ever ran there).
    pub rows: Option<Vec<LedgerRow>>,
    /// For each row (same order), whether its anchor is in the journal it names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anchors: Vec<Anchor>,
    /// For each row (same order), the state its plugin saved at its last checkpoint when the
    /// row is a checkpoint (an unfinished unit the next run resumes), so that a reader sees
    /// how far it got rather than a bare "not finished".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_states: Vec<Option<String>>,
    /// Why it could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The rows counted by state, per plugin (by name, in name order).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub summary: Vec<PluginSummary>,
}

/// One plugin's rows in one ledger, counted by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PluginSummary {
    /// The plugin's name.
    pub plugin: String,
    /// Rows in all.
    pub rows: u64,
    /// Finished units (status `finished`), suspect ones excepted.
    pub finished: u64,
    /// Units with a checkpoint and no end yet: the next run resumes them.
    pub checkpointed: u64,
    /// Rows whose anchor is not in the journal they name: not written by migrun as they are.
    pub suspect: u64,
    /// Rows whose journal is not readable here (not checked, not suspect).
    pub unverified: u64,
}

impl TargetStatus {
    /// Whether row `index` needs the operator's attention: suspect, or unfinished
    /// (checkpointed, or a status migrun does not write).
    pub fn needs_attention(&self, index: usize) -> bool {
        let suspect = self.anchors.get(index).is_some_and(Anchor::is_suspect);
        let finished = self
            .rows
            .as_ref()
            .and_then(|rows| rows.get(index))
            .is_some_and(|r| r.status == crate::ledger::STATUS_FINISHED);
        suspect || !finished
    }

    /// Its rows counted by state, per plugin.
    fn summarise(&self) -> Vec<PluginSummary> {
        let mut plugins: BTreeMap<&str, PluginSummary> = BTreeMap::new();
        for (i, row) in self.rows.iter().flatten().enumerate() {
            let summary =
                plugins
                    .entry(row.plugin_name.as_str())
                    .or_insert_with(|| PluginSummary {
                        plugin: row.plugin_name.clone(),
                        ..PluginSummary::default()
                    });
            summary.rows += 1;
            match self.anchors.get(i) {
                Some(Anchor::NotInJournal(_)) => summary.suspect += 1,
                Some(Anchor::Unverified(_)) => summary.unverified += 1,
                _ => {}
            }
            if self.anchors.get(i).is_some_and(Anchor::is_suspect) {
                continue;
            }
            if row.status == crate::ledger::STATUS_FINISHED {
                summary.finished += 1;
            } else if row.status == STATUS_CHECKPOINT {
                summary.checkpointed += 1;
            }
        }
        plugins.into_values().collect()
    }
}

/// The units that failed in the last run that ran them and have not finished since
/// (see [`crate::unit_failures`]): recorded in `config`'s journal folder, held against the
/// rows of `targets`' ledgers.
pub fn failed_units(
    config: &RunConfig,
    targets: &[TargetStatus],
) -> Vec<crate::unit_failures::FailedUnit> {
    crate::unit_failures::unresolved(
        crate::unit_failures::read(&config.journal_dir),
        targets.iter().flat_map(|t| t.rows.iter().flatten()),
    )
}

/// Reads the ledger of every configured connection, read-only.
pub async fn collect(config: &RunConfig) -> Vec<TargetStatus> {
    let ledger = Ledger::new(&config.ledger_table);
    let mut anchors = Anchors::default();
    let mut out = Vec::new();
    for (name, conn) in &config.connections {
        let mut status = TargetStatus {
            connection: name.clone(),
            url: redact_url(&conn.url),
            table: ledger.table().to_owned(),
            rows: None,
            anchors: Vec::new(),
            checkpoint_states: Vec::new(),
            error: None,
            summary: Vec::new(),
        };
        match Connection::connect(name, &conn.url, Access::ReadOnly).await {
            Ok(mut c) => {
                match ledger.all(&mut c).await {
                    Ok(rows) => status.rows = rows,
                    Err(e) => status.error = Some(e.to_string()),
                }
                if let Some(rows) = &status.rows {
                    match checkpoint_states(&ledger, &mut c, rows).await {
                        Ok(states) => status.checkpoint_states = states,
                        Err(e) => status.error = Some(e.to_string()),
                    }
                }
                c.close().await;
            }
            Err(e) => status.error = Some(e.to_string()),
        }
        if let Some(rows) = &status.rows {
            status.anchors = rows.iter().map(|r| anchors.check(r)).collect();
        }
        status.summary = status.summarise();
        out.push(status);
    }
    out
}

/// The saved state of each checkpoint row of `rows` (same order; `None` for a finished row).
async fn checkpoint_states(
    ledger: &Ledger,
    conn: &mut Connection,
    rows: &[LedgerRow],
) -> Result<Vec<Option<String>>, crate::db::DbError> {
    let plugins: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.status == STATUS_CHECKPOINT)
        .map(|r| r.plugin_name.as_str())
        .collect();
    let mut saved = BTreeMap::new();
    for plugin in plugins {
        for cp in ledger.checkpoints(conn, plugin).await? {
            saved.insert(
                (plugin.to_owned(), cp.key(), cp.plugin_sha256.clone()),
                cp.state,
            );
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            (r.status == STATUS_CHECKPOINT).then(|| {
                saved
                    .get(&(r.plugin_name.clone(), r.key(), r.plugin_sha256.clone()))
                    .cloned()
                    .unwrap_or_default()
            })
        })
        .collect())
}

/// A checkpoint's saved state in words: the SDK's backfill format (`backfill/1`: task, rows
/// done, batches done, key kind, key) as "checkpoint 15 (key 7500, 7500 rows done)"; the
/// SDKs' copy format (`{"copy":…,"last_key":[…],"copied":n}`) as "copy customers checkpoint
/// (after key 3, 3 rows copied)"; any other state, which only its plugin can read, as its
/// first line.
pub fn describe_checkpoint(state: &str) -> String {
    if let Some(copy) = describe_copy(state) {
        return copy;
    }
    let mut lines = state.splitn(6, '\n');
    if lines.next() == Some("backfill/1") {
        let (_task, rows, batches, _kind, key) = (
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
        );
        if let (Some(rows), Some(batches), Some(key)) = (rows, batches, key) {
            return format!("checkpoint {batches} (key {key}, {rows} rows done)");
        }
    }
    let first = state.lines().next().unwrap_or_default();
    if first.is_empty() {
        "checkpoint".to_owned()
    } else {
        format!("checkpoint (state {first:?})")
    }
}

/// A copy helper's checkpoint state in words, if `state` is one.
fn describe_copy(state: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(state).ok()?;
    let name = json.get("copy")?.as_str()?;
    let key: Vec<String> = json
        .get("last_key")?
        .as_array()?
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let key = match key.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    };
    let copied = json.get("copied")?.as_u64()?;
    Some(format!(
        "copy {name} checkpoint (after key {key}, {copied} rows copied)"
    ))
}

/// Whether a ledger row's anchor is in the journal it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "anchor", content = "detail")]
pub enum Anchor {
    /// The journal holds the row's run and the entry hash the row names.
    Verified,
    /// The journal is there, but not the row's anchor: migrun did not write this row as it is.
    NotInJournal(String),
    /// The journal cannot be read here (moved, on another machine, unfinished).
    Unverified(String),
}

impl Anchor {
    /// Whether the row is proven forged or altered.
    pub fn is_suspect(&self) -> bool {
        matches!(self, Anchor::NotInJournal(_))
    }
}

/// The hash chains of the journals read so far, by path (each journal read once).
#[derive(Default)]
struct Anchors {
    journals: BTreeMap<String, Result<(String, BTreeSet<String>), String>>,
}

impl Anchors {
    fn check(&mut self, row: &LedgerRow) -> Anchor {
        let read = self
            .journals
            .entry(row.journal_id.clone())
            .or_insert_with(|| chain_of(Path::new(&row.journal_id)));
        match read {
            Err(why) => Anchor::Unverified(why.clone()),
            Ok((run_id, _)) if *run_id != row.run_id => Anchor::NotInJournal(format!(
                "the journal {} is of run {run_id}, not of run {}",
                row.journal_id, row.run_id
            )),
            Ok((_, hashes)) if hashes.contains(&row.journal_hash) => Anchor::Verified,
            Ok(_) => Anchor::NotInJournal(format!(
                "the journal {} of run {} holds no entry {}",
                row.journal_id,
                row.run_id,
                crate::printable::printable(&row.journal_hash)
            )),
        }
    }
}

/// The run id and every entry hash of the journal at `path`.
fn chain_of(path: &Path) -> Result<(String, BTreeSet<String>), String> {
    let (mut reader, header) = crate::journal::JournalReader::open(path)
        .map_err(|e| format!("journal not readable here: {e}"))?;
    let mut hashes = BTreeSet::new();
    hashes.insert(reader.head());
    loop {
        match reader.next_entry() {
            Ok(Some(_)) => {
                hashes.insert(reader.head());
            }
            Ok(None) => break,
            // An unfinished journal still proves the entries before the break.
            Err(_) => break,
        }
    }
    Ok((header.run_id, hashes))
}

#[cfg(test)]
mod tests {
    use super::describe_checkpoint;

    #[test]
    fn checkpoints_are_described_in_words() {
        assert_eq!(
            describe_checkpoint("backfill/1\nbackfill users\n7500\n15\nint\n7500"),
            "checkpoint 15 (key 7500, 7500 rows done)"
        );
        assert_eq!(
            describe_checkpoint(r#"{"copy":"customers","last_key":[3],"copied":3}"#),
            "copy customers checkpoint (after key 3, 3 rows copied)"
        );
        assert_eq!(
            describe_checkpoint(r#"{"copy": "parts", "last_key": [2, "b"], "copied": 5}"#),
            "copy parts checkpoint (after key (2, b), 5 rows copied)"
        );
        assert_eq!(
            describe_checkpoint("page 3\nmore"),
            "checkpoint (state \"page 3\")"
        );
    }
}
