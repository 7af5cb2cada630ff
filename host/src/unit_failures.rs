//! [`FailedUnit`]: the units a run left failed, kept beside its journals for
//! `migrun status`.
//!
//! The ledger records what committed. A unit that failed rolled back and left no
//! row, so the ledger alone cannot say which units failed, or why — and with
//! `--keep-going` over thousands of units or tenants, that list is what an
//! operator needs next. At the end of every real run (not a dry-run, not a
//! replay) the host writes the run's failed units and their errors to
//! `<journal dir>/.failures/<plugin>.json` (`<plugin>.shard-<i>-of-<n>.json` for
//! a `--shard` worker, so that workers never overwrite each other), replacing
//! what an earlier run of the same plugin and shard wrote, or removes the file
//! when no unit failed. The folder starts with a dot, like the plugin copies
//! of tenants, so that nothing taking the journal folder's `*.journal` files
//! meets it; files are the owner's only (an error may quote data).
//!
//! `migrun status` shows a recorded failure until the unit has finished since:
//! a `finished` ledger row for the same plugin, unit and scope whose
//! `finished_at` is not older than the failure ([`unresolved`]). A unit that
//! failed in one worker and finished in another (or in a later `--only` run) is
//! therefore no longer listed, whichever file still names it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ledger::{LedgerRow, STATUS_FINISHED};
use crate::run::{RunReport, UnitStatus};

/// The folder, inside the journal folder, holding the failures of the last runs.
pub const FOLDER: &str = ".failures";

/// The schema of a failures file.
pub const SCHEMA: &str = "migrun.unit-failures/1";

/// One unit that failed in the last run of its plugin (and shard) that ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedUnit {
    /// The plugin's name.
    pub plugin: String,
    /// The unit.
    pub unit: String,
    /// Its scope (contract 0.2.0), if it declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Why it failed, as the run's report said.
    pub error: String,
    /// The journal of the run in which it failed (its file name).
    pub journal: String,
    /// When that run ended (RFC 3339).
    pub at: String,
}

#[derive(Serialize, Deserialize)]
struct FailuresFile {
    schema: String,
    units: Vec<FailedUnit>,
}

/// The failures file of `plugin` (and the shard `(index, count)`) in `journal_dir`.
fn file_of(journal_dir: &Path, plugin: &str, shard: Option<(u32, u32)>) -> PathBuf {
    // Plugin names are checked identifiers (letters, digits, `-`, `_`), safe in a file name.
    let name = match shard {
        Some((i, n)) => format!("{plugin}.shard-{i}-of-{n}.json"),
        None => format!("{plugin}.json"),
    };
    journal_dir.join(FOLDER).join(name)
}

/// Records the failed units of a real run's `report` (or clears the record when none
/// failed). Best effort: a record that cannot be written is logged, and the run's own
/// outcome is unchanged.
pub fn record(journal_dir: &Path, report: &RunReport, shard: Option<(u32, u32)>) {
    if report.dry_run {
        return;
    }
    let journal = report
        .journal
        .as_ref()
        .and_then(|j| j.path.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let units: Vec<FailedUnit> = report
        .units
        .iter()
        .filter(|u| u.status == UnitStatus::Failed)
        .map(|u| FailedUnit {
            plugin: report.plugin.name.clone(),
            unit: u.name.clone(),
            scope: u.scope.clone(),
            error: u
                .error
                .clone()
                .or_else(|| report.failure.as_ref().map(|f| f.message.clone()))
                .unwrap_or_else(|| "failed".into()),
            journal: journal.clone(),
            at: at.clone(),
        })
        .collect();
    let path = file_of(journal_dir, &report.plugin.name, shard);
    let outcome = if units.is_empty() {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        write_private(
            &path,
            &serde_json::to_vec_pretty(&FailuresFile {
                schema: SCHEMA.into(),
                units,
            })
            .expect("failures serialize"),
        )
    };
    if let Err(e) = outcome {
        tracing::warn!(path = %path.display(), error = %e, "cannot record the run's failed units for `migrun status`");
    }
}

/// Writes `bytes` to `path` whole (a temporary file renamed over it), readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        crate::journal::private_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let mut options = std::fs::File::options();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Every failure recorded in `journal_dir` (all plugins and shards); the newest per
/// plugin, unit and scope. Unreadable files are skipped (logged).
pub fn read(journal_dir: &Path) -> Vec<FailedUnit> {
    let Ok(entries) = std::fs::read_dir(journal_dir.join(FOLDER)) else {
        return Vec::new();
    };
    let mut newest: BTreeMap<(String, String, Option<String>), FailedUnit> = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<FailuresFile>(&b).map_err(|e| e.to_string()));
        let file = match parsed {
            Ok(file) if file.schema == SCHEMA => file,
            Ok(file) => {
                tracing::warn!(path = %path.display(), schema = %file.schema, "unknown failures file schema");
                continue;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable failures file");
                continue;
            }
        };
        for unit in file.units {
            let key = (unit.plugin.clone(), unit.unit.clone(), unit.scope.clone());
            match newest.get(&key) {
                Some(known) if known.at >= unit.at => {}
                _ => {
                    newest.insert(key, unit);
                }
            }
        }
    }
    newest.into_values().collect()
}

/// The failures of `failed` that no ledger row of `rows` has finished since: a
/// `finished` row of the same plugin, unit and scope whose `finished_at` is not older.
pub fn unresolved<'a>(
    failed: Vec<FailedUnit>,
    rows: impl IntoIterator<Item = &'a LedgerRow> + Clone,
) -> Vec<FailedUnit> {
    failed
        .into_iter()
        .filter(|f| {
            !rows.clone().into_iter().any(|r| {
                r.status == STATUS_FINISHED
                    && r.plugin_name == f.plugin
                    && r.unit == f.unit
                    && r.scope == f.scope
                    && !is_older(&r.finished_at, &f.at)
            })
        })
        .collect()
}

/// Whether RFC 3339 time `a` is before `b` (unparsable times are not older: a finished
/// row then wins).
fn is_older(a: &str, b: &str) -> bool {
    match (
        chrono::DateTime::parse_from_rfc3339(a),
        chrono::DateTime::parse_from_rfc3339(b),
    ) {
        (Ok(a), Ok(b)) => a < b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(unit: &str, finished_at: &str) -> LedgerRow {
        LedgerRow {
            plugin_name: "p".into(),
            unit: unit.into(),
            scope: None,
            plugin_sha256: "s".into(),
            plugin_version: "1".into(),
            run_id: "r".into(),
            status: STATUS_FINISHED.into(),
            started_at: finished_at.into(),
            finished_at: finished_at.into(),
            rows_written: 0,
            journal_id: "j".into(),
            journal_hash: "h".into(),
            override_reason: None,
        }
    }

    fn failed(unit: &str, at: &str) -> FailedUnit {
        FailedUnit {
            plugin: "p".into(),
            unit: unit.into(),
            scope: None,
            error: "boom".into(),
            journal: "j.journal".into(),
            at: at.into(),
        }
    }

    #[test]
    fn a_failure_stays_until_its_unit_finishes_later() {
        let rows = [
            row("a", "2026-12-07T10:00:00Z"),
            row("b", "2026-12-07T08:00:00Z"),
        ];
        let left = unresolved(
            vec![
                failed("a", "2026-12-07T09:00:00.000Z"),
                failed("b", "2026-12-07T09:00:00.000Z"),
                failed("c", "2026-12-07T09:00:00.000Z"),
            ],
            &rows,
        );
        let units: Vec<&str> = left.iter().map(|f| f.unit.as_str()).collect();
        assert_eq!(units, ["b", "c"], "a finished after failing; b only before");
    }

    #[test]
    fn each_shard_keeps_its_own_file_and_the_newest_failure_wins() {
        let dir = tempfile::tempdir().unwrap();
        let one = |unit: &str, at: &str, shard| {
            let path = file_of(dir.path(), "p", shard);
            write_private(
                &path,
                &serde_json::to_vec(&FailuresFile {
                    schema: SCHEMA.into(),
                    units: vec![failed(unit, at)],
                })
                .unwrap(),
            )
            .unwrap();
        };
        one("a", "2026-12-07T09:00:00.000Z", Some((0, 2)));
        one("a", "2026-12-07T11:00:00.000Z", Some((1, 2)));
        one("b", "2026-12-07T09:00:00.000Z", None);
        let read = read(dir.path());
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].at, "2026-12-07T11:00:00.000Z");
    }
}
