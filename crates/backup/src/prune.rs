//! Which backups `migrun backup prune` removes: a rule over the manifests, decided
//! before anything is deleted, so that `--dry-run` prints exactly what a real prune
//! would do.
//!
//! Backups are grouped by the run that took them (a run takes one snapshot per
//! connection it writes, and a plugin may take more under its own labels); a run's
//! snapshots are kept or removed together. Runs are ordered per plugin by when their
//! first snapshot was taken. The invariant: **the newest run of each plugin keeps its
//! backups** unless the operator passes `--force` — it is the one `undo with` points
//! at, and the one a resumed run still relies on (a resume reuses the backup of the
//! run it continues instead of taking another).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Manifest;

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneRule {
    /// Keep the backups of each plugin's `n` newest runs.
    KeepNewest(usize),
    /// Remove the backups of runs whose newest snapshot is older than this.
    OlderThan(Duration),
}

/// The backups of one run of one plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunBackups {
    /// The plugin.
    pub plugin_name: String,
    /// The run.
    pub run_id: String,
    /// When its first snapshot was taken (RFC 3339).
    pub created_at: String,
    /// Its snapshot ids, oldest first.
    pub ids: Vec<String>,
}

/// The decision: which runs' backups go, which stay and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PrunePlan {
    /// Removed.
    pub remove: Vec<RunBackups>,
    /// Kept because the rule keeps them.
    pub keep: Vec<RunBackups>,
    /// Kept although the rule would remove them: the newest run of their plugin
    /// (removed only with `--force`).
    pub protected: Vec<RunBackups>,
}

/// Parses an age such as `30d`, `12h`, `2w`, `90m` or `45s` (one number, one unit).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. 30d, 12h, 2w, 90m or 45s"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number: write e.g. 30d or 12h"))?;
    let seconds = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!("`{text}`: unknown unit `{unit}` (s, m, h, d or w)"));
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

/// Decides what `rule` removes from `manifests` at time `now`. With `force`, the newest
/// run of a plugin is removed too when the rule says so.
pub fn plan_prune(
    manifests: &[Manifest],
    rule: PruneRule,
    now: DateTime<Utc>,
    force: bool,
) -> PrunePlan {
    // plugin -> run -> its snapshots
    let mut runs: BTreeMap<&str, BTreeMap<&str, RunBackups>> = BTreeMap::new();
    let mut newest_at: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for m in manifests {
        let run = runs
            .entry(&m.plugin_name)
            .or_default()
            .entry(&m.run_id)
            .or_insert_with(|| RunBackups {
                plugin_name: m.plugin_name.clone(),
                run_id: m.run_id.clone(),
                created_at: m.created_at.clone(),
                ids: Vec::new(),
            });
        if m.created_at < run.created_at {
            run.created_at = m.created_at.clone();
        }
        run.ids.push(m.id.clone());
        let newest = newest_at
            .entry((&m.plugin_name, &m.run_id))
            .or_insert(&m.created_at);
        if m.created_at.as_str() > *newest {
            *newest = &m.created_at;
        }
    }
    let mut plan = PrunePlan::default();
    for (plugin, by_run) in runs {
        let mut ordered: Vec<RunBackups> = by_run.into_values().collect();
        // Newest first; ties broken by run id so the decision is stable.
        ordered.sort_by(|a, b| (&b.created_at, &b.run_id).cmp(&(&a.created_at, &a.run_id)));
        for (rank, mut run) in ordered.into_iter().enumerate() {
            run.ids.sort();
            let goes = match rule {
                PruneRule::KeepNewest(n) => rank >= n,
                PruneRule::OlderThan(age) => {
                    let last = newest_at
                        .get(&(plugin, run.run_id.as_str()))
                        .copied()
                        .unwrap_or(&run.created_at);
                    match DateTime::parse_from_rfc3339(last) {
                        Ok(at) => {
                            now.signed_duration_since(at.with_timezone(&Utc))
                                .to_std()
                                .unwrap_or_default()
                                > age
                        }
                        // A manifest whose time does not parse is never removed by age.
                        Err(_) => false,
                    }
                }
            };
            if !goes {
                plan.keep.push(run);
            } else if rank == 0 && !force {
                plan.protected.push(run);
            } else {
                plan.remove.push(run);
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MANIFEST_FORMAT, Method};
    use migrun_db::Dialect;

    fn manifest(plugin: &str, run: &str, connection: &str, at: &str) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            id: format!("{run}.{connection}.before-run"),
            label: "before-run".to_owned(),
            created_at: at.to_owned(),
            migrun_version: "test".to_owned(),
            run_id: run.to_owned(),
            journal: String::new(),
            plugin_name: plugin.to_owned(),
            plugin_sha256: String::new(),
            connection: connection.to_owned(),
            dialect: Dialect::Sqlite,
            url: String::new(),
            method: Method::SqliteBackup,
            tables: Vec::new(),
            files: Vec::new(),
            patterns: Vec::new(),
            absent_schemas: Vec::new(),
        }
    }

    fn runs(list: &[RunBackups]) -> Vec<&str> {
        list.iter().map(|r| r.run_id.as_str()).collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn keep_newest_counts_runs_per_plugin_not_snapshots() {
        let all = vec![
            manifest("a", "r1", "app", "2026-12-01T00:00:00Z"),
            manifest("a", "r1", "log", "2026-12-01T00:00:01Z"),
            manifest("a", "r2", "app", "2026-12-02T00:00:00Z"),
            manifest("a", "r3", "app", "2026-12-03T00:00:00Z"),
            manifest("b", "q1", "app", "2026-11-01T00:00:00Z"),
        ];
        let plan = plan_prune(&all, PruneRule::KeepNewest(2), now(), false);
        assert_eq!(runs(&plan.remove), ["r1"]);
        assert_eq!(plan.remove[0].ids.len(), 2, "a run's snapshots go together");
        assert_eq!(runs(&plan.keep), ["r3", "r2", "q1"]);
        assert!(plan.protected.is_empty());
    }

    #[test]
    fn the_newest_run_of_a_plugin_is_protected_unless_forced() {
        let all = vec![
            manifest("a", "r1", "app", "2026-12-01T00:00:00Z"),
            manifest("a", "r2", "app", "2026-12-02T00:00:00Z"),
        ];
        let plan = plan_prune(&all, PruneRule::KeepNewest(0), now(), false);
        assert_eq!(runs(&plan.remove), ["r1"]);
        assert_eq!(runs(&plan.protected), ["r2"]);
        let forced = plan_prune(&all, PruneRule::KeepNewest(0), now(), true);
        assert_eq!(runs(&forced.remove), ["r2", "r1"]);
    }

    #[test]
    fn older_than_looks_at_each_runs_newest_snapshot() {
        let all = vec![
            manifest("a", "r1", "app", "2026-11-01T00:00:00Z"),
            manifest("a", "r2", "app", "2026-11-20T00:00:00Z"),
            // r2 took another snapshot recently: the run is recent.
            manifest("a", "r2", "log", "2026-12-05T00:00:00Z"),
            manifest("a", "r3", "app", "2026-12-06T00:00:00Z"),
            manifest("b", "q1", "app", "2026-10-01T00:00:00Z"),
        ];
        let plan = plan_prune(
            &all,
            PruneRule::OlderThan(parse_age("7d").unwrap()),
            now(),
            false,
        );
        assert_eq!(runs(&plan.remove), ["r1"]);
        assert_eq!(runs(&plan.protected), ["q1"], "b's only run is its newest");
        assert_eq!(runs(&plan.keep), ["r3", "r2"]);
    }

    #[test]
    fn ages_parse_with_one_unit_and_refuse_anything_else() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3_600));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_age("90m").unwrap(), Duration::from_secs(90 * 60));
        assert!(parse_age("30").unwrap_err().contains("no unit"));
        assert!(parse_age("d").unwrap_err().contains("number"));
        assert!(parse_age("3y").unwrap_err().contains("unknown unit"));
    }
}
