//! `migrun backup prune`'s output: what went, what stayed and why.

use std::fmt::Write as _;
use std::path::Path;

use migrun::backup::{PrunePlan, RunBackups};
use migrun::printable::{human_bytes, printable};

/// What a prune decided and did.
pub struct PruneOutcome<'a> {
    /// The backup directory.
    pub dir: &'a Path,
    /// The decision.
    pub plan: &'a PrunePlan,
    /// Snapshot ids deleted (with `--dry-run`: that would be).
    pub removed: &'a [String],
    /// Snapshot ids whose deletion failed, with why.
    pub failed: &'a [(String, String)],
    /// Bytes freed (or that would be).
    pub bytes: u64,
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
}

/// JSON, schema `migrun.backup-prune/1`.
pub fn backup_prune_json(o: &PruneOutcome<'_>) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "schema": "migrun.backup-prune/1",
        "dir": o.dir.display().to_string(),
        "dry_run": o.dry_run,
        "removed": o.removed,
        "failed": o.failed.iter().map(|(id, why)| serde_json::json!({"id": id, "error": why})).collect::<Vec<_>>(),
        "bytes_freed": o.bytes,
        "kept": o.plan.keep,
        "protected": o.plan.protected,
    }))
    .expect("prune outcome serializes")
}

/// For a terminal.
pub fn backup_prune_text(o: &PruneOutcome<'_>) -> String {
    let mut out = String::new();
    let verb = if o.dry_run { "would delete" } else { "deleted" };
    let run_line = |out: &mut String, mark: &str, run: &RunBackups| {
        let _ = writeln!(
            out,
            "  {mark} {} run {} ({}): {}",
            printable(&run.plugin_name),
            run.run_id,
            run.created_at,
            run.ids.join(", ")
        );
    };
    if o.plan.remove.is_empty() {
        let _ = writeln!(out, "nothing to delete in {}", o.dir.display());
    } else {
        let _ = writeln!(out, "{verb} in {}:", o.dir.display());
        for run in &o.plan.remove {
            run_line(&mut out, "-", run);
        }
    }
    for run in &o.plan.protected {
        run_line(&mut out, "!", run);
    }
    if !o.plan.protected.is_empty() {
        let _ = writeln!(
            out,
            "  (! kept: the newest run of its plugin — pass --force to delete it too)"
        );
    }
    for (id, why) in o.failed {
        let _ = writeln!(out, "  ✗ {id}: {why}");
    }
    let _ = writeln!(
        out,
        "{} snapshot(s) {verb}, {} freed; {} run(s) kept",
        o.removed.len(),
        human_bytes(o.bytes),
        o.plan.keep.len() + o.plan.protected.len()
    );
    out
}
