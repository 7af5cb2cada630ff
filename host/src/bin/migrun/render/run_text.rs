//! The run report for a terminal: connections, units with their writes, the plugin's
//! warnings, the plan or the checks, the backups with an undo command, the journal, the end.

use std::fmt::Write as _;

use migrun::printable::{human_bytes, printable};
use migrun::run::{RunReport, UnitStatus};

use super::{plan_text, short_hash, warnings};

/// Where a run's files went, as the command line resolved them, for the text report.
pub struct RunPlaces<'a> {
    /// The backup directory the run used.
    pub backup_dir: &'a std::path::Path,
    /// The config file given with `-c`, repeated in the undo command so it works from here.
    pub config: Option<&'a std::path::Path>,
    /// `--backup-dir`, repeated in the undo command likewise.
    pub backup_dir_flag: bool,
}

/// The run report for a terminal.
pub fn run_report_text(report: &RunReport, places: &RunPlaces<'_>) -> String {
    let mut out = String::new();
    let p = &report.plugin;
    let _ = writeln!(
        out,
        "plugin    {} {} ({}, sha256 {})",
        printable(&p.name),
        printable(&p.version),
        report.contract,
        short_hash(&report.plugin_sha256)
    );
    for c in &report.connections {
        let _ = writeln!(
            out,
            "  {:<12} {:<8} {:<10} {}{}",
            printable(&c.name),
            c.dialect.to_string(),
            c.access.to_string(),
            c.url,
            if c.embedded_default {
                "  (embedded default)"
            } else {
                ""
            }
        );
        if let Some(note) = &c.note {
            let _ = writeln!(out, "  {:<12} {}", "", printable(note));
        }
        if let Some(warning) = &c.privileges {
            let _ = writeln!(out, "  {:<12} ⚠ privileged: {}", "", warning.message);
        }
    }
    for name in &report.absent_connections {
        let _ = writeln!(
            out,
            "  {:<12} not configured (optional): not provided",
            printable(name)
        );
    }
    if report.dry_run {
        let _ = writeln!(
            out,
            "mode      dry-run: every transaction is rolled back, nothing is changed"
        );
    }
    if let Some(applied) = &report.applied_plan {
        let _ = writeln!(
            out,
            "plan      applied: each unit's writes compared with the plan ({} unit(s)) before its commit",
            applied.units_planned
        );
    }
    let _ = writeln!(out, "\nunits");
    // Thousands of tenants' units: counted by status, the failed ones listed with their
    // errors below (the JSON report has every unit).
    let many = report.units.len() > UNITS_LISTED;
    if many {
        let mut counts: Vec<(&str, u64)> = Vec::new();
        for unit in &report.units {
            let status = status_words(unit).1;
            match counts.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => counts.push((status, 1)),
            }
        }
        let _ = writeln!(
            out,
            "  {} units: {}",
            migrun::plan::thousands(report.units.len() as u64),
            counts
                .iter()
                .map(|(status, n)| format!("{} {status}", migrun::plan::thousands(*n)))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let listed: &[migrun::run::UnitReport] = if many { &[] } else { &report.units };
    for unit in listed {
        let (mark, status) = status_words(unit);
        let writes: Vec<String> = unit
            .writes
            .iter()
            .filter(|(_, w)| {
                w.rows > 0 || w.statements > 0 || w.bulk_inserts > 0 || w.bulk_writes > 0
            })
            .map(|(conn, w)| format!("{}: {}", printable(conn), writes_text(w)))
            .collect();
        // A unit that failed after committed checkpoints did not roll everything back.
        let kept_status;
        let status = match unit.kept {
            Some(kept) => {
                kept_status = format!(
                    "failed after {} committed batch{} ({} rows kept); the open batch was rolled back",
                    migrun::plan::thousands(kept.checkpoints),
                    if kept.checkpoints == 1 { "" } else { "es" },
                    migrun::plan::thousands(kept.rows)
                );
                kept_status.as_str()
            }
            None => status,
        };
        let name = unit_name(unit);
        let planned_status;
        let status = match unit.plan {
            Some(migrun::plan::PlanOutcome::AsPlanned) if unit.status == UnitStatus::Committed => {
                planned_status = format!("{status}, as planned");
                planned_status.as_str()
            }
            Some(migrun::plan::PlanOutcome::NotCompared) => {
                planned_status = format!("{status}, not in the plan (non-transactional)");
                planned_status.as_str()
            }
            _ => status,
        };
        let _ = writeln!(
            out,
            "  {mark} {:<24} {:<28} {:>7}  {}",
            printable(&name),
            status,
            format!("{}ms", unit.duration_ms),
            unit.note
                .as_deref()
                .map(|n| printable(n).into_owned())
                .unwrap_or_else(|| writes.join("; "))
        );
    }
    let failed: Vec<_> = report
        .units
        .iter()
        .filter(|u| u.status == UnitStatus::Failed)
        .collect();
    if report.kept_going || (many && !failed.is_empty()) {
        let _ = writeln!(
            out,
            "\nfailed units ({} of {}{})",
            migrun::plan::thousands(failed.len() as u64),
            migrun::plan::thousands(report.units.len() as u64),
            if report.kept_going {
                "; each rolled back, the other units ran"
            } else {
                ""
            }
        );
        for unit in &failed {
            let _ = writeln!(
                out,
                "  ✗ {}  {}",
                printable(&unit_name(unit)),
                printable(unit.error.as_deref().unwrap_or("failed"))
            );
        }
    }
    for unit in &report.units {
        if let Some(difference) = &unit.plan_difference {
            plan_difference_text(&mut out, difference);
        }
    }
    let not_kept = &report.messages_not_kept;
    let plugin_warnings =
        warnings::plugin_warning_count(&report.messages) + not_kept.warnings + not_kept.errors;
    if plugin_warnings > 0 {
        let _ = writeln!(out, "\nwarnings");
        warnings::render_plugin_warnings(&mut out, &report.messages);
    }
    if !not_kept.is_empty() {
        let _ = writeln!(
            out,
            "  … {} more message(s) ({} warning(s), {} error(s); {}) not kept: past migrun's \
             bound on a plugin's messages (the journal has every one)",
            migrun::plan::thousands(not_kept.messages),
            migrun::plan::thousands(not_kept.warnings),
            migrun::plan::thousands(not_kept.errors),
            human_bytes(not_kept.bytes)
        );
    }
    if let Some(plan) = &report.plan {
        let _ = writeln!(out);
        out.push_str(&plan_text(plan, plugin_warnings));
    } else if !report.checks.is_empty() {
        let _ = writeln!(out, "\nchecks");
        for c in &report.checks {
            let _ = writeln!(
                out,
                "  {} {}{}",
                if c.ok { "✓" } else { "✗" },
                printable(&c.name),
                if c.detail.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", printable(&c.detail))
                }
            );
        }
    }
    let checks_not_kept = &report.checks_not_kept;
    if !checks_not_kept.is_empty() {
        let _ = writeln!(
            out,
            "  … {} more check(s) ({} passed, {} FAILED; {}) not kept: past migrun's bound on a \
             plugin's checks (the journal has every one)",
            migrun::plan::thousands(checks_not_kept.passed + checks_not_kept.failed),
            migrun::plan::thousands(checks_not_kept.passed),
            migrun::plan::thousands(checks_not_kept.failed),
            human_bytes(checks_not_kept.bytes)
        );
    }
    let mut restore_flags = String::new();
    if let Some(config) = places.config {
        let _ = write!(restore_flags, " -c {}", shell_word(config));
    }
    if places.backup_dir_flag {
        let _ = write!(
            restore_flags,
            " --backup-dir {}",
            shell_word(places.backup_dir)
        );
    }
    for b in &report.backups {
        let rows: u64 = b.tables.iter().map(|t| t.rows).sum();
        // A read-only connection's backup (`Need::backs_up`) undoes nothing the run did, and
        // restoring it needs a URL allowed to write there.
        let read_only = report
            .connections
            .iter()
            .any(|c| c.name == b.connection && c.access == migrun::db::Access::ReadOnly);
        let how = if read_only {
            format!(
                "read-only `{}`, for a rollback that restores it: migrun restore {} --yes --db {}=<a URL allowed to write>{restore_flags}",
                printable(&b.connection),
                b.id,
                printable(&b.connection)
            )
        } else {
            format!("undo with: migrun restore {} --yes{restore_flags}", b.id)
        };
        let _ = writeln!(
            out,
            "\nbackup    {} ({}, {} table(s), {} row(s)) in {} — {how}",
            b.id,
            b.method,
            b.tables.len(),
            rows,
            places.backup_dir.display(),
        );
    }
    for r in &report.backups_reused {
        let _ = writeln!(
            out,
            "\nbackup    {} (taken before run {} at {}) still covers `{}`: this run resumes {} from that run's checkpoints, so no new backup was taken — undo the whole run lineage with: migrun restore {} --yes{restore_flags}",
            r.snapshot.id,
            r.taken_by_run,
            r.taken_at,
            printable(&r.snapshot.connection),
            r.resumed_units
                .iter()
                .map(|u| format!("`{}`", printable(u)))
                .collect::<Vec<_>>()
                .join(", "),
            r.snapshot.id
        );
    }
    if let Some(skipped) = &report.backup_skipped {
        let _ = writeln!(out, "\nbackup    {skipped}");
    }
    if !report.lock_warnings.is_empty() {
        let _ = writeln!(
            out,
            "\n⚠ lock and deployment warnings ({}): told before each statement ran; the run went on",
            report.lock_warnings.len()
        );
        for w in &report.lock_warnings {
            let _ = writeln!(
                out,
                "    ⚠ {}{}",
                w.unit
                    .as_deref()
                    .map(|u| format!("[{}] ", printable(u)))
                    .unwrap_or_default(),
                printable(&w.warning.problem)
            );
            let _ = writeln!(out, "      safer: {}", printable(&w.warning.safer));
        }
    }
    if let Some(j) = &report.journal {
        let _ = writeln!(out, "\njournal   {}", j.path.display());
        let _ = writeln!(
            out,
            "          {} calls, final hash {}",
            j.calls, j.final_hash
        );
    }
    let _ = writeln!(out);
    match &report.failure {
        Some(f) => {
            let _ = writeln!(
                out,
                "FAILED in {}: {}",
                printable(&f.phase),
                printable(&f.message)
            );
            let _ = writeln!(out, "        {}", printable(&f.consequence));
        }
        None if !report.checks_passed() => {
            let failed =
                report.checks.iter().filter(|c| !c.ok).count() as u64 + checks_not_kept.failed;
            let _ = writeln!(
                out,
                "FAILED: {failed} check(s) failed{}",
                if report.dry_run {
                    " (dry-run: nothing was changed)"
                } else {
                    " (the units stay committed; restore or fix forward)"
                }
            );
        }
        None if report.dry_run => {
            let _ = writeln!(
                out,
                "dry-run ok in {}ms: nothing was changed{}",
                report.duration_ms,
                warned(plugin_warnings)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "ok in {}ms{}",
                report.duration_ms,
                warned(plugin_warnings)
            );
        }
    }
    out
}

/// Above this many units the text report counts them by status and lists the failed ones
/// only.
const UNITS_LISTED: usize = 50;

/// A unit's mark and status in words.
/// A unit refused by its plan: per table the counts, then the first rows that differ.
fn plan_difference_text(out: &mut String, d: &migrun::plan::PlanMismatch) {
    let _ = writeln!(
        out,
        "\n✗ unit {}: the data changed since the plan was made; the unit was rolled back{}",
        printable(&d.unit),
        if d.segment > 0 {
            format!(" to its checkpoint {}", d.segment)
        } else {
            String::new()
        }
    );
    if let Some(reason) = &d.reason {
        let _ = writeln!(out, "  {}", printable(reason));
    }
    for t in &d.tables {
        let _ = writeln!(
            out,
            "  {}.{} ({} {}): planned {} row(s) in {} call(s), now {} in {}",
            printable(&t.connection),
            printable(&t.table),
            t.via,
            t.op,
            migrun::plan::thousands(t.planned_rows),
            migrun::plan::thousands(t.planned_calls),
            migrun::plan::thousands(t.rows),
            migrun::plan::thousands(t.calls)
        );
        for row in &t.not_in_plan {
            let _ = writeln!(out, "    + {}", printable(row));
        }
        if let Some(n) = t.not_in_plan_count
            && n as usize > t.not_in_plan.len()
        {
            let _ = writeln!(out, "    + … {} more", n as usize - t.not_in_plan.len());
        }
        if let Some(n) = t.not_written_count
            && n > 0
        {
            let _ = writeln!(
                out,
                "    - {} planned row(s) not written now (row sha256 {}{})",
                n,
                t.not_written.join(", "),
                if n as usize > t.not_written.len() {
                    ", …"
                } else {
                    ""
                }
            );
        }
    }
    if let Some((planned, now)) = &d.ddl {
        let _ = writeln!(out, "  schema changes differ:");
        for s in planned {
            let _ = writeln!(out, "    planned: {}", printable(s));
        }
        for s in now {
            let _ = writeln!(out, "    now:     {}", printable(s));
        }
    }
}

fn status_words(unit: &migrun::run::UnitReport) -> (&'static str, &'static str) {
    match unit.status {
        UnitStatus::Committed => ("✓", "committed"),
        UnitStatus::DryRun => ("✓", "ok, rolled back (dry-run)"),
        UnitStatus::Failed if !unit.transactional => ("✗", "failed, not rolled back"),
        UnitStatus::Failed => ("✗", "failed, rolled back"),
        UnitStatus::NotRun => ("·", "not run"),
        UnitStatus::Skipped if unit.skipped.is_some() => ("=", "skipped by the plugin"),
        UnitStatus::Skipped => ("=", "skipped: already finished"),
        UnitStatus::NotFound => ("?", "skipped: no such unit"),
        UnitStatus::Planned => ("○", "planned, not run"),
    }
}

/// A unit as `--only` selects it: a scoped unit (contract 0.2.0) as `unit@scope`.
fn unit_name(unit: &migrun::run::UnitReport) -> String {
    match &unit.scope {
        Some(scope) => format!("{}@{}", unit.name, scope),
        None => unit.name.clone(),
    }
}

/// A unit's writes on one connection: rows, then how they were written, statements, bulk
/// inserts and bulk writes apart (`30 rows (1 bulk insert)`, `0 rows (5 statements)`,
/// `40 rows (2 bulk writes)`).
fn writes_text(w: &migrun::session::WriteCounts) -> String {
    let mut how = Vec::new();
    if w.statements > 0 {
        how.push(format!(
            "{} statement{}",
            migrun::plan::thousands(w.statements),
            if w.statements == 1 { "" } else { "s" }
        ));
    }
    if w.bulk_inserts > 0 {
        how.push(format!(
            "{} bulk insert{}",
            migrun::plan::thousands(w.bulk_inserts),
            if w.bulk_inserts == 1 { "" } else { "s" }
        ));
    }
    if w.bulk_writes > 0 {
        how.push(format!(
            "{} bulk write{}",
            migrun::plan::thousands(w.bulk_writes),
            if w.bulk_writes == 1 { "" } else { "s" }
        ));
    }
    format!("{} rows ({})", w.rows, how.join(", "))
}

/// `; 3 warning(s) from the plugin (above)` after a successful run's last line, or nothing.
fn warned(plugin_warnings: u64) -> String {
    if plugin_warnings == 0 {
        String::new()
    } else {
        format!(
            "; {} warning(s) from the plugin (above)",
            migrun::plan::thousands(plugin_warnings)
        )
    }
}

/// A path as one shell word: as it is when it needs no quoting, else in single quotes.
fn shell_word(path: &std::path::Path) -> String {
    let text = path.display().to_string();
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
