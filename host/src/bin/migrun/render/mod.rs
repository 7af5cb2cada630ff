//! Human-readable and machine-readable renderings of reports.
//!
//! The JSON forms carry a `schema` field (`migrun.run-report/1`,
//! `migrun.inspect/1`); a field is only ever added within a schema version.

mod plan;
mod prune;
mod run_text;
mod tenants;
mod warnings;

pub use plan::plan_text;
pub use prune::{PruneOutcome, backup_prune_json, backup_prune_text};
pub use run_text::{RunPlaces, run_report_text};
pub use tenants::{tenant_status_text, tenants_report_text};
pub use warnings::fields_text;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use migrun::printable::printable;
use migrun::run::{Inspection, ReplayOutcome, ReplayReport, RunReport};

/// Schema identifier of the JSON run report.
pub const RUN_REPORT_SCHEMA: &str = "migrun.run-report/1";
/// Schema identifier of the JSON replay report.
pub const REPLAY_REPORT_SCHEMA: &str = "migrun.replay-report/1";
/// Schema identifier of the JSON report of a run over tenants.
pub const TENANTS_REPORT_SCHEMA: &str = "migrun.tenants-report/1";
/// Schema identifier of the JSON inspection.
pub const INSPECT_SCHEMA: &str = "migrun.inspect/1";

#[derive(Serialize)]
struct Versioned<'a, T> {
    schema: &'static str,
    migrun_version: &'static str,
    succeeded: Option<bool>,
    exit_code: Option<i32>,
    #[serde(flatten)]
    body: &'a T,
}

/// The run report as pretty JSON.
pub fn run_report_json(report: &RunReport) -> String {
    serde_json::to_string_pretty(&Versioned {
        schema: RUN_REPORT_SCHEMA,
        migrun_version: migrun::VERSION,
        succeeded: Some(report.succeeded()),
        exit_code: Some(report.exit_code()),
        body: report,
    })
    .expect("reports serialize")
}

/// The report of a run over tenants as pretty JSON.
pub fn tenants_report_json(report: &migrun::tenants::TenantsReport) -> String {
    serde_json::to_string_pretty(&Versioned {
        schema: TENANTS_REPORT_SCHEMA,
        migrun_version: migrun::VERSION,
        succeeded: Some(report.exit_code() == 0),
        exit_code: Some(report.exit_code()),
        body: report,
    })
    .expect("reports serialize")
}

/// The replay report as pretty JSON.
pub fn replay_report_json(report: &ReplayReport) -> String {
    serde_json::to_string_pretty(&Versioned {
        schema: REPLAY_REPORT_SCHEMA,
        migrun_version: migrun::VERSION,
        succeeded: Some(report.exit_code() == 0),
        exit_code: Some(report.exit_code()),
        body: report,
    })
    .expect("reports serialize")
}

/// The replay report for a terminal.
pub fn replay_report_text(report: &ReplayReport) -> String {
    let mut out = String::new();
    let h = &report.header;
    let _ = writeln!(out, "journal   {}", report.journal.display());
    let _ = writeln!(
        out,
        "recorded  {} {} (sha256 {}), run {}{}",
        printable(&h.plugin_name),
        printable(&h.plugin_version),
        printable(short_hash(&h.plugin_sha256)),
        printable(&h.run_id),
        if h.dry_run { ", dry-run" } else { "" }
    );
    if report.mode == "compare" {
        let _ = writeln!(
            out,
            "compared  {} {} (sha256 {}) on the recorded inputs",
            printable(&report.run.plugin.name),
            printable(&report.run.plugin.version),
            short_hash(&report.plugin_sha256)
        );
    }
    let _ = writeln!(out);
    match &report.outcome {
        ReplayOutcome::Verified {
            calls,
            writes,
            recorded,
        } => {
            let _ = writeln!(
                out,
                "verified: {calls} calls, writes identical ({writes} write calls), no database contacted"
            );
            let _ = writeln!(
                out,
                "recorded: {} — the replay reproduced it",
                recorded.describe()
            );
        }
        ReplayOutcome::Diverged { divergence } => {
            let _ = writeln!(out, "DIVERGED: {}", printable(&divergence.to_string()));
        }
        ReplayOutcome::Failed { message } => {
            let _ = writeln!(
                out,
                "FAILED: the replayed run failed where the recording did not: {}",
                printable(message)
            );
        }
        ReplayOutcome::Compared {
            identical,
            diff,
            stopped,
        } => {
            if let Some(stopped) = stopped {
                let _ = writeln!(out, "STOPPED: {}", printable(&stopped.to_string()));
            }
            let _ = writeln!(
                out,
                "{}",
                if *identical {
                    "writes identical: the compared plugin would write exactly the recorded rows"
                } else {
                    "writes differ:"
                }
            );
            for (table, t) in &diff.tables {
                let _ = writeln!(
                    out,
                    "  {:<32} {} identical, {} only recorded, {} only compared, {} changed",
                    printable(table),
                    t.identical,
                    t.only_recorded.len(),
                    t.only_compared.len(),
                    t.changed.len()
                );
                let show = |row: &Vec<migrun::value::Value>| {
                    row.iter()
                        .map(|v| printable(&v.to_string()).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                // Bulk writes (0.2.0): `id=17 (amount_cents: 120000)`; `id=17` for a delete.
                let keyed = |row: &Vec<migrun::value::Value>| {
                    let (key, rest) = row.split_at(t.keys.len().min(row.len()));
                    let key = key_text(&t.keys, key);
                    if rest.is_empty() {
                        return key;
                    }
                    let values: Vec<String> = t.columns[t.keys.len()..]
                        .iter()
                        .zip(rest)
                        .map(|(c, v)| printable(&format!("{c}: {v}")).into_owned())
                        .collect();
                    format!("{key} ({})", values.join(", "))
                };
                let row_text = |row: &Vec<migrun::value::Value>| {
                    if t.keys.is_empty() {
                        format!("({})", show(row))
                    } else {
                        keyed(row)
                    }
                };
                for row in t.only_recorded.iter().take(5) {
                    let _ = writeln!(out, "    - {}", row_text(row));
                }
                for row in t.only_compared.iter().take(5) {
                    let _ = writeln!(out, "    + {}", row_text(row));
                }
                for c in t.changed.iter().take(5) {
                    let changes: Vec<String> = c
                        .changes
                        .iter()
                        .map(|(col, a, b)| printable(&format!("{col}: {a} → {b}")).into_owned())
                        .collect();
                    let key = if c.key_values.is_empty() {
                        printable(&c.key.to_string()).into_owned()
                    } else {
                        let (names, values): (Vec<String>, Vec<migrun::value::Value>) =
                            c.key_values.iter().cloned().unzip();
                        key_text(&names, &values)
                    };
                    let _ = writeln!(out, "    ~ {key} {}", changes.join(", "));
                }
                let more = t.only_recorded.len().saturating_sub(5)
                    + t.only_compared.len().saturating_sub(5)
                    + t.changed.len().saturating_sub(5);
                if more > 0 {
                    let _ = writeln!(out, "    … {more} more (see --json)");
                }
            }
            // Statements aligned by shape: the identical shapes summed per connection, then
            // each shape that differs with its executions.
            let mut same: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
            for st in diff.statements.iter().filter(|st| st.is_identical()) {
                let entry = same.entry(st.connection.as_str()).or_default();
                entry.0 += 1;
                entry.1 += st.identical;
            }
            for (conn, (shapes, runs)) in &same {
                let _ = writeln!(
                    out,
                    "  {:<32} {runs} identical ({shapes} statement shape{})",
                    printable(&format!("{conn} (statements)")),
                    if *shapes == 1 { "" } else { "s" }
                );
            }
            for st in diff.statements.iter().filter(|st| !st.is_identical()) {
                let shape = printable(&clip(&st.shape, 120)).into_owned();
                let _ = writeln!(
                    out,
                    "  {:<32} {} identical, {} only recorded, {} only compared, {} changed: {shape}",
                    printable(&format!("{} (statements)", st.connection)),
                    st.identical,
                    st.only_recorded.len(),
                    st.only_compared.len(),
                    st.changed.len()
                );
                let values = |v: &[(String, migrun::value::Value)]| {
                    v.iter()
                        .map(|(label, v)| printable(&format!("{label}: {v}")).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                for e in st.changed.iter().take(5) {
                    let changes: Vec<String> = e
                        .changes
                        .iter()
                        .map(|(label, a, b)| printable(&format!("{label}: {a} → {b}")).into_owned())
                        .collect();
                    let _ = writeln!(
                        out,
                        "    ~ {shape}  [#{}] {}",
                        e.occurrence,
                        changes.join(", ")
                    );
                }
                for e in st.only_recorded.iter().take(5) {
                    let _ = writeln!(
                        out,
                        "    - {shape}  [#{}] ({})",
                        e.occurrence,
                        values(&e.values)
                    );
                }
                for e in st.only_compared.iter().take(5) {
                    let _ = writeln!(
                        out,
                        "    + {shape}  [#{}] ({})",
                        e.occurrence,
                        values(&e.values)
                    );
                }
                let more = st.only_recorded.len().saturating_sub(5)
                    + st.only_compared.len().saturating_sub(5)
                    + st.changed.len().saturating_sub(5);
                if more > 0 {
                    let _ = writeln!(out, "    … {more} more (see --json)");
                }
            }
            if diff.unanswered_writes > 0 {
                let _ = writeln!(
                    out,
                    "  note: {} write(s) had no recorded result; their affected-row count was taken as 0",
                    diff.unanswered_writes
                );
            }
        }
    }
    out
}

/// `migrun journal stats` as pretty JSON.
pub fn journal_stats_json(stats: &migrun::journal::stats::JournalStats) -> String {
    serde_json::to_string_pretty(&Versioned {
        schema: "migrun.journal-stats/1",
        migrun_version: migrun::VERSION,
        succeeded: None,
        exit_code: None,
        body: stats,
    })
    .expect("stats serialize")
}

/// `migrun journal stats` for a terminal.
pub fn journal_stats_text(s: &migrun::journal::stats::JournalStats) -> String {
    let mut out = String::new();
    let h = &s.header;
    let _ = writeln!(
        out,
        "run        {}{}",
        h.run_id,
        if h.dry_run { " (dry-run)" } else { "" }
    );
    let _ = writeln!(
        out,
        "plugin     {} {} (sha256 {})",
        printable(&h.plugin_name),
        printable(&h.plugin_version),
        h.plugin_sha256
    );
    let _ = writeln!(
        out,
        "migrun     {} · contract {} · format {}",
        h.migrun_version, h.contract_version, h.format
    );
    let _ = writeln!(out, "started    {}", h.started_at);
    let _ = writeln!(
        out,
        "entries    {} ({} bytes compressed), chain intact",
        s.entries, s.file_bytes
    );
    let _ = writeln!(out, "final hash {}", s.final_hash);
    let _ = writeln!(
        out,
        "units      {}",
        if s.units.is_empty() {
            "none".to_owned()
        } else {
            printable(&s.units.join(", ")).into_owned()
        }
    );
    if !s.skipped_units.is_empty() {
        let _ = writeln!(out, "skipped    {}", printable(&s.skipped_units.join(", ")));
    }
    if !s.files_read.is_empty() {
        let files: Vec<String> = s
            .files_read
            .iter()
            .map(|(name, bytes)| format!("{} ({bytes} bytes read)", printable(name)))
            .collect();
        let _ = writeln!(out, "files      {}", files.join(", "));
    }
    let calls: Vec<String> = s.calls.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        out,
        "calls      {} ({} database errors)",
        calls.join(", "),
        s.errors
    );
    for (conn, n) in &s.rows_read {
        let _ = writeln!(out, "read       {conn}: {n} rows");
    }
    for (conn, n) in &s.rows_written {
        let _ = writeln!(out, "written    {conn}: {n} rows");
    }
    match &s.footer {
        Some(f) => {
            let _ = writeln!(
                out,
                "outcome    {}{}",
                f.outcome,
                f.failure
                    .as_ref()
                    .map(|m| format!(": {}", printable(m)))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "outcome    unknown: the journal has no footer (the run was killed or is still going)"
            );
        }
    }
    out
}

/// `migrun status` as pretty JSON.
pub fn status_json(
    status: &[migrun::status::TargetStatus],
    failed: &[migrun::unit_failures::FailedUnit],
) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "schema": "migrun.status/1",
        "migrun_version": migrun::VERSION,
        "targets": status,
        "failed_units": failed,
    }))
    .expect("status serializes")
}

/// The units that failed in their last run and have not finished since, with their
/// errors (at most [`FAILED_UNITS_LISTED`] unless `all`); empty when there are none.
pub fn failed_units_text(failed: &[migrun::unit_failures::FailedUnit], all: bool) -> String {
    let mut out = String::new();
    if failed.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "✗ {} unit(s) failed in their last run and have not finished since (a rerun runs them again):",
        failed.len()
    );
    let limit = if all { usize::MAX } else { FAILED_UNITS_LISTED };
    for f in failed.iter().take(limit) {
        let unit = match &f.scope {
            Some(scope) => format!("{}@{scope}", f.unit),
            None => f.unit.clone(),
        };
        let _ = writeln!(
            out,
            "  ✗ {} {}  {}  ({}, journal {})",
            printable(&f.plugin),
            printable(&unit),
            printable(f.error.lines().next().unwrap_or("")),
            printable(&f.at),
            printable(&f.journal)
        );
    }
    if failed.len() > limit {
        let _ = writeln!(
            out,
            "  … and {} more (--all lists every one, --json too)",
            failed.len() - limit
        );
    }
    out
}

/// Failed units `migrun status` lists without `--all`.
pub const FAILED_UNITS_LISTED: usize = 20;

/// `migrun status --json` over tenants: every tenant's state and ledgers.
pub fn tenant_status_json(ledgers: &[migrun::tenants::TenantLedgers]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "schema": "migrun.tenant-status/1",
        "migrun_version": migrun::VERSION,
        "tenants": ledgers,
    }))
    .expect("status serializes")
}

/// Above this many rows, `migrun status` sums a ledger up per plugin and lists only the
/// rows that need attention (unless `--all`).
pub const STATUS_LIST_LIMIT: usize = 50;

/// `migrun status` for a terminal: every row of a ledger of up to [`STATUS_LIST_LIMIT`] rows
/// (or with `all`); a bigger one summed up per plugin, with the rows that need attention.
pub fn status_text(status: &[migrun::status::TargetStatus], all: bool) -> String {
    let mut out = String::new();
    let any_rows = status
        .iter()
        .any(|t| t.rows.as_ref().is_some_and(|r| !r.is_empty()));
    if any_rows {
        let _ = writeln!(
            out,
            "✓ finished   ◐ checkpointed: unfinished, the next run resumes after its last checkpoint   ⚠ not written by migrun as it is\n"
        );
    }
    for t in status {
        let _ = writeln!(out, "{}  {}  (ledger {})", t.connection, t.url, t.table);
        match (&t.rows, &t.error) {
            (_, Some(e)) => {
                let _ = writeln!(out, "  cannot read: {}", printable(&e.to_string()));
            }
            (None, None) => {
                let _ = writeln!(out, "  no ledger: nothing has run here");
            }
            (Some(rows), None) if rows.is_empty() => {
                let _ = writeln!(out, "  ledger is empty");
            }
            (Some(rows), None) if all || rows.len() <= STATUS_LIST_LIMIT => {
                for (i, r) in rows.iter().enumerate() {
                    status_row(&mut out, t, i, r);
                }
            }
            (Some(rows), None) => {
                for s in &t.summary {
                    let _ = writeln!(
                        out,
                        "  {}: {} row(s): ✓ {} finished, ◐ {} checkpointed, ⚠ {} not written by migrun as it is{}",
                        printable(&s.plugin),
                        migrun::plan::thousands(s.rows),
                        migrun::plan::thousands(s.finished),
                        migrun::plan::thousands(s.checkpointed),
                        migrun::plan::thousands(s.suspect),
                        if s.unverified > 0 {
                            format!(
                                " ({} unverified: journal not here)",
                                migrun::plan::thousands(s.unverified)
                            )
                        } else {
                            String::new()
                        }
                    );
                }
                let attention: Vec<usize> =
                    (0..rows.len()).filter(|i| t.needs_attention(*i)).collect();
                if attention.is_empty() {
                    let _ = writeln!(out, "  no row is unfinished or suspect");
                } else {
                    let _ = writeln!(
                        out,
                        "  unfinished or suspect ({}):",
                        migrun::plan::thousands(attention.len() as u64)
                    );
                    for &i in attention.iter().take(STATUS_LIST_LIMIT) {
                        status_row(&mut out, t, i, &rows[i]);
                    }
                    if attention.len() > STATUS_LIST_LIMIT {
                        let _ = writeln!(
                            out,
                            "  … {} more",
                            migrun::plan::thousands((attention.len() - STATUS_LIST_LIMIT) as u64)
                        );
                    }
                }
                let _ = writeln!(
                    out,
                    "  ({} rows summed up; every row: migrun status --all)",
                    migrun::plan::thousands(rows.len() as u64)
                );
            }
        }
        let _ = writeln!(out);
    }
    out
}

/// One ledger row of `migrun status`, with its anchor's verdict under it.
fn status_row(
    out: &mut String,
    t: &migrun::status::TargetStatus,
    i: usize,
    r: &migrun::ledger::LedgerRow,
) {
    let anchor = t.anchors.get(i);
    let suspect = anchor.is_some_and(migrun::status::Anchor::is_suspect);
    let checkpoint = t.checkpoint_states.get(i).cloned().flatten();
    let (mark, what, at) = match &checkpoint {
        _ if suspect => ("⚠", String::new(), "at"),
        Some(state) => (
            "◐",
            format!(
                " {}",
                printable(&migrun::status::describe_checkpoint(state))
            ),
            "saved",
        ),
        None if r.status == migrun::ledger::STATUS_FINISHED => ("✓", String::new(), "at"),
        None => ("·", String::new(), "at"),
    };
    let _ = writeln!(
        out,
        "  {mark} {:<24}{what} {} {} (sha256 {}) run {} {at} {}, {} rows{}",
        // A scoped unit (contract 0.2.0) as `--only` selects it: `unit@scope`.
        printable(&r.key().to_string()),
        printable(&r.plugin_name),
        printable(&r.plugin_version),
        printable(r.plugin_sha256.get(..12).unwrap_or(&r.plugin_sha256)),
        printable(&r.run_id),
        printable(&r.finished_at.to_string()),
        r.rows_written,
        r.override_reason
            .as_ref()
            .map(|o| format!(" — override: {}", printable(o)))
            .unwrap_or_default()
    );
    match anchor {
        Some(migrun::status::Anchor::NotInJournal(why)) => {
            let _ = writeln!(
                out,
                "      NOT WRITTEN BY MIGRUN AS IT IS: {}",
                printable(why)
            );
        }
        Some(migrun::status::Anchor::Unverified(why)) => {
            let _ = writeln!(out, "      unverified: {}", printable(why));
        }
        _ => {}
    }
}

/// The inspection as pretty JSON.
pub fn inspection_json(inspection: &Inspection) -> String {
    serde_json::to_string_pretty(&Versioned {
        schema: INSPECT_SCHEMA,
        migrun_version: migrun::VERSION,
        succeeded: None,
        exit_code: None,
        body: inspection,
    })
    .expect("inspections serialize")
}

/// The inspection for a terminal.
pub fn inspection_text(i: &Inspection) -> String {
    let mut out = String::new();
    let p = &i.plugin;
    let _ = writeln!(
        out,
        "plugin     {} {}",
        printable(&p.name),
        printable(&p.version)
    );
    if !p.description.is_empty() {
        let _ = writeln!(out, "           {}", printable(&p.description));
    }
    let _ = writeln!(out, "contract   {}", i.contract);
    let _ = writeln!(out, "sha256     {}", i.sha256);
    let _ = writeln!(out, "size       {} bytes", i.size);
    let _ = writeln!(out, "\nconnections");
    for c in &p.connections {
        let _ = writeln!(
            out,
            "  {:<12} {:<10} {}",
            printable(&c.name),
            c.access.to_string(),
            printable(&c.description)
        );
        if c.optional {
            let _ = writeln!(
                out,
                "  {:<12} optional (contract 0.2.0): not provided when not configured",
                ""
            );
        }
        if !c.writes.is_empty() {
            // On a read-only connection the declared names are only backed up (`backs_up`).
            let verb = match c.access {
                migrun::db::Access::ReadOnly => "backed up before the run:",
                migrun::db::Access::ReadWrite => "writes",
            };
            let _ = writeln!(
                out,
                "  {:<12} {verb} {}",
                "",
                printable(&c.writes.join(", "))
            );
        }
    }
    let _ = writeln!(out, "\nunits");
    for u in &p.units {
        let _ = writeln!(
            out,
            "  {:<24} {}",
            printable(&u.name),
            printable(&u.description)
        );
        if let Some(scope) = &u.scope {
            let _ = writeln!(
                out,
                "  {:<24} scope {} (ledger identity; --only {}@{})",
                "",
                printable(scope),
                printable(&u.name),
                printable(scope)
            );
        }
        if !u.transactional {
            let _ = writeln!(
                out,
                "  {:<24} non-transactional: runs in autocommit, its ledger row after it succeeds; a dry-run plans it without running it",
                ""
            );
        }
        let own = |ms: Option<u32>| ms.and_then(migrun::config::TimeLimit::from_millis);
        if let Some(limit) = own(u.lock_timeout_ms) {
            let _ = writeln!(
                out,
                "  {:<24} lock_timeout {limit} (the unit's own: overrides [limits] lock_timeout)",
                ""
            );
        }
        if let Some(limit) = own(u.statement_timeout_ms) {
            let _ = writeln!(
                out,
                "  {:<24} statement_timeout {limit} (the unit's own: overrides [limits] statement_timeout; \
                 not applied on SQLite, which has none)",
                ""
            );
        }
        if u.always_run {
            let _ = writeln!(out, "  {:<24} always runs (contract 0.2.0)", "");
        }
        if let Some(reason) = &u.skipped {
            let _ = writeln!(out, "  {:<24} skipped: {}", "", printable(reason));
        }
    }
    if !p.config.is_empty() {
        let _ = writeln!(out, "\nconfig keys");
        for k in &p.config {
            let mut notes = Vec::new();
            if k.required {
                notes.push("required".to_owned());
            }
            if let Some(d) = &k.default_value {
                notes.push(format!("default {}", printable(d)));
            }
            if k.secret {
                notes.push("secret".to_owned());
            }
            let _ = writeln!(
                out,
                "  {:<20} {} {}",
                printable(&k.name),
                printable(&k.description),
                if notes.is_empty() {
                    String::new()
                } else {
                    format!("({})", notes.join(", "))
                }
            );
        }
    }
    let _ = writeln!(out, "\nimports");
    for name in &i.imports {
        let _ = writeln!(out, "  {name}");
    }
    out
}

/// `migrun backup list` as pretty JSON.
pub fn backup_list_json(manifests: &[migrun::backup::Manifest]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "schema": "migrun.backup-list/1",
        "backups": manifests,
    }))
    .expect("manifests serialize")
}

/// `migrun backup list` for a terminal.
pub fn backup_list_text(dir: &std::path::Path, manifests: &[migrun::backup::Manifest]) -> String {
    let mut out = String::new();
    if manifests.is_empty() {
        let _ = writeln!(out, "no backups in {}", dir.display());
        return out;
    }
    let _ = writeln!(out, "backups in {}", dir.display());
    for m in manifests {
        let tables: Vec<String> = m
            .tables
            .iter()
            .map(|t| {
                if t.present {
                    format!("{} ({} rows)", t.name, t.rows)
                } else {
                    format!("{} (absent)", t.name)
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "  {}\n    {} · {} · {} `{}` · plugin {} · {}",
            m.id,
            m.created_at,
            m.method.as_str(),
            m.dialect,
            m.connection,
            m.plugin_name,
            tables.join(", ")
        );
    }
    out
}

/// `migrun backup verify` as pretty JSON.
pub fn backup_verify_json(report: &migrun::backup::VerifyReport) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "schema": "migrun.backup-verify/1",
        "ok": report.ok(),
        "report": report,
    }))
    .expect("reports serialize")
}

/// `migrun backup verify` for a terminal.
pub fn backup_verify_text(report: &migrun::backup::VerifyReport) -> String {
    let mut out = String::new();
    for line in &report.checked {
        let _ = writeln!(out, "  ✓ {line}");
    }
    for line in report.bad_files.iter().chain(&report.bad_tables) {
        let _ = writeln!(out, "  ✗ {line}");
    }
    if report.ok() {
        let _ = writeln!(out, "backup {} verified", report.id);
    } else {
        let _ = writeln!(
            out,
            "backup {} is CORRUPT: do not restore it (nothing was changed)",
            report.id
        );
    }
    out
}

/// `migrun restore` as pretty JSON.
pub fn restore_json(report: &migrun::backup::RestoreReport) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "schema": "migrun.restore/1",
        "verified": report.verified(),
        "report": report,
    }))
    .expect("reports serialize")
}

/// `migrun restore` for a terminal.
pub fn restore_text(report: &migrun::backup::RestoreReport) -> String {
    let mut out = String::new();
    for t in report.tables.iter().filter(|t| t.action == "dropped") {
        let _ = writeln!(
            out,
            "  {} {} dropped: it was not in the backup (it did not exist when the backup was taken){}",
            if t.verified { '✓' } else { '✗' },
            printable(&t.name),
            if t.verified {
                ""
            } else {
                ", but it is STILL THERE"
            }
        );
    }
    for t in report.tables.iter().filter(|t| t.action != "dropped") {
        let mark = if t.verified { '✓' } else { '✗' };
        let _ = writeln!(
            out,
            "  {mark} {} {}: {} rows{}",
            printable(&t.name),
            t.action,
            t.rows,
            if t.verified {
                ", checksum matches the backup"
            } else {
                ", DIFFERS from the backup"
            }
        );
    }
    for s in &report.schemas {
        match &s.detail {
            None => {
                let _ = writeln!(
                    out,
                    "  ✓ schema {} {} (it did not exist when the backup was taken)",
                    printable(&s.name),
                    s.action
                );
            }
            Some(detail) => {
                let _ = writeln!(
                    out,
                    "  ⚠ schema {} {}: {}",
                    printable(&s.name),
                    s.action,
                    printable(detail)
                );
            }
        }
    }
    match report.ledger_rows_forgotten {
        Some(n) => {
            let _ = writeln!(
                out,
                "  ledger: forgot {n} unit row(s) of the run that took the backup and of the plugin's later runs; their units will run again"
            );
        }
        None => {
            let _ = writeln!(out, "  ledger: unchanged (a partial restore)");
        }
    }
    if report.verified() {
        let _ = writeln!(out, "restored backup {}: every table matches it", report.id);
    } else {
        let _ = writeln!(
            out,
            "restored backup {}, but some tables do not match it (see ✗ above)",
            report.id
        );
    }
    out
}

/// The first 12 characters of a hash, as shown beside names; a value read from a journal
/// or a ledger may be anything, so a short or non-ASCII one is shown whole.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// A key as a replay diff shows it: `id=17`, `tenant=3 id=17`.
fn key_text(names: &[String], values: &[migrun::value::Value]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| printable(&format!("{n}={v}")).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` cut to `max` characters, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max).collect::<String>())
    } else {
        text.to_owned()
    }
}
