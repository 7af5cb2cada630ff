//! The dry-run plan for a terminal.

use std::fmt::Write as _;

use migrun::lint::LockWarning;
use migrun::plan::{Plan, TableRows, thousands};
use migrun::printable::printable;

/// The plan for a terminal.
pub fn plan_text(plan: &Plan, plugin_warnings: u64) -> String {
    let mut out = String::new();
    match &plan.plugin {
        Some(p) => {
            let _ = writeln!(
                out,
                "Plan for {} {} (sha256 {}) — dry-run: nothing was changed",
                p.name,
                p.version,
                p.sha256.get(..12).unwrap_or(&p.sha256)
            );
        }
        None => out.push_str("Plan — dry-run: nothing was changed\n"),
    }
    if let Some(failure) = &plan.failure {
        let _ = writeln!(
            out,
            "INCOMPLETE: the dry-run stopped ({failure}); the plan shows what it did until then"
        );
    }
    if !plan.read_only.is_empty() {
        let _ = writeln!(out, "read-only, not written: {}", plan.read_only.join(", "));
    }
    for (connection, b) in &plan.read_only_backups {
        let _ = writeln!(out, "{connection} (read-only, backed up)");
        render_backup(&mut out, b);
    }
    if !plan.files.is_empty() {
        let _ = writeln!(
            out,
            "files read ({}, from the granted directory)",
            plan.files.len()
        );
        for f in &plan.files {
            let read = if f.bytes_read >= f.size {
                String::new()
            } else {
                format!(", {} bytes read", thousands(f.bytes_read))
            };
            let _ = writeln!(
                out,
                "  {}  {} bytes{read}  sha256 {}",
                printable(&f.name),
                thousands(f.size),
                f.sha256
            );
        }
    }
    for w in &plan.privileges {
        let _ = writeln!(
            out,
            "⚠ privileged connection {} ({}): {}",
            w.connection, w.access, w.message
        );
    }
    for c in &plan.connections {
        let _ = writeln!(out, "\n{} ({})", c.name, c.dialect);
        if c.ddl.is_empty() && c.tables.is_empty() {
            out.push_str("  no changes\n");
        }
        if !c.ddl.is_empty() {
            let _ = writeln!(out, "  schema changes ({})", c.ddl.len());
            let width = c.ddl.len().to_string().len();
            for (i, d) in c.ddl.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "    {:>width$}. {}",
                    i + 1,
                    printable(&one_line(&d.statement, 110))
                );
            }
        }
        if !c.tables.is_empty() {
            out.push_str("  rows\n");
            render_rows(&mut out, &c.tables);
        }
        if !c.warnings.is_empty() {
            let _ = writeln!(out, "  ⚠ warnings ({})", c.warnings.len());
            render_warnings(&mut out, &c.warnings);
        }
        if let Some(b) = &c.backup {
            render_backup(&mut out, b);
        }
        for note in &c.notes {
            let _ = writeln!(out, "  note: {}", printable(note));
        }
    }
    if !plan.not_run.is_empty() {
        out.push_str(
            "\nnon-transactional units: not run in a dry-run (a live run runs them in autocommit; \
             their statements cannot be rolled back, so this plan holds none of their writes)\n",
        );
        for unit in &plan.not_run {
            let _ = writeln!(out, "  {}", printable(unit));
        }
    }
    if !plan.checkpoints.is_empty() {
        out.push_str(
            "\ncheckpoints (a live run commits at each; a rerun resumes after the last)\n",
        );
        for (unit, n) in &plan.checkpoints {
            let _ = writeln!(out, "  {}: {n}", printable(unit));
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\n⚠ warnings ({})", plan.warnings.len());
        render_warnings(&mut out, &plan.warnings);
    }
    let s = &plan.summary;
    if !plan.checks.is_empty() {
        let _ = writeln!(
            out,
            "\nchecks ({} passed, {} failed)",
            s.checks_passed, s.checks_failed
        );
        let width = plan
            .checks
            .iter()
            .map(|c| printable(&c.name).chars().count())
            .max()
            .unwrap_or(0);
        for check in &plan.checks {
            let mark = if check.ok { '✓' } else { '✗' };
            let unit = check
                .unit
                .as_deref()
                .map(|u| format!("[{}] ", printable(u)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {mark} {:<width$}  {unit}{}",
                printable(&check.name),
                printable(&one_line(&check.detail, 100))
            );
        }
    }
    let mut parts = vec![
        format!("{} schema change(s)", s.ddl_statements),
        format!(
            "{} row(s) inserted, {} updated, {} deleted",
            thousands(s.rows_inserted),
            thousands(s.rows_updated),
            thousands(s.rows_deleted)
        ),
    ];
    if s.rows_upserted > 0 {
        parts.push(format!("{} upserted", thousands(s.rows_upserted)));
    }
    if !plan.checks.is_empty() {
        parts.push(if s.checks_failed == 0 {
            format!("all {} check(s) passed", s.checks_passed)
        } else {
            format!(
                "{} of {} check(s) FAILED",
                s.checks_failed,
                s.checks_passed + s.checks_failed
            )
        });
    }
    // Lint warnings and the plugin's own: "0 warning(s)" under 400 plugin warnings misleads.
    parts.push(if plugin_warnings == 0 {
        format!("{} warning(s)", s.warnings)
    } else {
        format!(
            "{} warning(s) ({} lint, {} from the plugin)",
            thousands(s.warnings + plugin_warnings),
            thousands(s.warnings),
            thousands(plugin_warnings)
        )
    });
    let _ = writeln!(out, "\nsummary: {}", parts.join(" · "));
    out
}

/// `  backup before the first write: t (n rows), … → dir`, then each pattern's matches.
fn render_backup(out: &mut String, b: &migrun::plan::PlannedBackup) {
    let tables: Vec<String> = b
        .tables
        .iter()
        .map(|(t, rows)| match rows {
            Some(n) => format!("{t} ({} rows)", thousands(*n)),
            None => format!("{t} (does not exist yet)"),
        })
        .collect();
    let _ = writeln!(
        out,
        "  backup before the first write: {} → {}",
        tables.join(", "),
        b.dir
    );
    for (pattern, matched) in &b.patterns {
        if matched.is_empty() {
            let _ = writeln!(out, "    pattern {pattern}: matches no table yet");
        } else {
            let _ = writeln!(out, "    pattern {pattern}: matches {}", matched.join(", "));
        }
    }
}

fn render_rows(out: &mut String, tables: &[TableRows]) {
    let upserts = tables.iter().any(|t| t.upserted > 0);
    let uncounted = tables.iter().any(|t| t.uncounted_statements > 0);
    let mut header = vec!["table", "insert", "update", "delete"];
    if upserts {
        header.push("upsert");
    }
    if uncounted {
        header.push("uncounted stmts");
    }
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            let mut row = vec![
                printable(&t.table).into_owned(),
                thousands(t.inserted),
                thousands(t.updated),
                thousands(t.deleted),
            ];
            if upserts {
                row.push(thousands(t.upserted));
            }
            if uncounted {
                row.push(thousands(t.uncounted_statements));
            }
            row
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let mut s = String::from("   ");
        for (i, cell) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(s, " {cell:<w$}", w = widths[0]);
            } else {
                let _ = write!(s, "  {cell:>w$}", w = widths[i]);
            }
        }
        s.trim_end().to_owned()
    };
    let _ = writeln!(
        out,
        "{}",
        line(header.iter().map(|h| (*h).to_owned()).collect())
    );
    for row in rows {
        let _ = writeln!(out, "{}", line(row));
    }
}

fn render_warnings(out: &mut String, warnings: &[LockWarning]) {
    for w in warnings {
        let _ = writeln!(out, "    ⚠ {}", printable(&w.problem));
        let _ = writeln!(
            out,
            "      statement: {}",
            printable(&one_line(&w.statement, 100))
        );
        let _ = writeln!(out, "      safer: {}", printable(&w.safer));
    }
}

/// `s` on one line, whitespace collapsed, clipped to `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrun::db::Access;
    use migrun::db::Dialect::Postgres;
    use migrun::journal::{CallResult, HostCall};
    use migrun::observer::CheckResult;

    fn plan() -> Plan {
        Plan::new(&[
            ("target".into(), Postgres, Access::ReadWrite),
            ("source".into(), Postgres, Access::ReadOnly),
        ])
    }

    fn exec(sql: &str) -> HostCall {
        HostCall::Execute {
            conn: "target".into(),
            sql: sql.into(),
            params: vec![],
        }
    }

    fn warning(table: &str) -> LockWarning {
        LockWarning {
            connection: Some("target".into()),
            rule: "pg-create-index-blocking".into(),
            table: table.into(),
            rows: 1204,
            statement: format!("CREATE INDEX ON {table} (a)"),
            problem: format!(
                "CREATE INDEX without CONCURRENTLY on {table} (1,204 rows): blocks writes"
            ),
            safer: "CREATE INDEX CONCURRENTLY".into(),
        }
    }

    #[test]
    fn text_and_json_forms() {
        let mut p = plan();
        p.set_plugin("auth-consolidation", "0.1.0", "0123456789abcdef0123");
        p.observe(
            &exec("CREATE UNIQUE INDEX users_email ON users (email)"),
            &CallResult::Count { n: 0 },
        );
        p.observe(
            &exec("INSERT INTO auth_users SELECT * FROM users"),
            &CallResult::Count { n: 1_234_567 },
        );
        p.observe(
            &exec("UPDATE users SET a = 1"),
            &CallResult::Count { n: 12 },
        );
        p.add_warning(warning("users"));
        p.add_note("target", "sequences restored after the rollback");
        p.add_checks(&[
            CheckResult {
                unit: None,
                name: "row counts match".into(),
                ok: true,
                detail: "1234567 = 1234567".into(),
            },
            CheckResult {
                unit: Some("copy".into()),
                name: "sample".into(),
                ok: false,
                detail: "3 rows differ".into(),
            },
        ]);
        let text = plan_text(&p, 0);
        assert!(
            text.contains("Plan for auth-consolidation 0.1.0 (sha256 0123456789ab)"),
            "{text}"
        );
        assert!(
            text.contains("    1. CREATE UNIQUE INDEX users_email ON users (email)"),
            "{text}"
        );
        assert!(
            text.contains("    table          insert  update  delete"),
            "{text}"
        );
        assert!(
            text.contains("    auth_users  1,234,567       0       0"),
            "{text}"
        );
        assert!(
            text.contains("    users               0      12       0"),
            "{text}"
        );
        assert!(
            text.contains(
                "    ⚠ CREATE INDEX without CONCURRENTLY on users (1,204 rows): blocks writes"
            ),
            "{text}"
        );
        assert!(text.contains("safer: CREATE INDEX CONCURRENTLY"), "{text}");
        assert!(text.contains("✓ row counts match"), "{text}");
        assert!(
            text.contains("✗ sample            [copy] 3 rows differ"),
            "{text}"
        );
        assert!(text.contains("1 of 2 check(s) FAILED"), "{text}");
        assert!(text.contains("read-only, not written: source"), "{text}");

        let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(json["schema"], "migrun.plan/2");
        assert_eq!(json["connections"][0]["tables"][0]["inserted"], 1_234_567);
        assert_eq!(json["connections"][0]["ddl"][0]["action"], "CREATE INDEX");
        assert_eq!(json["summary"]["checks_failed"], 1);
        let back: Plan = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(back.summary, p.summary);

        // A plan of schema /1 (made before plans could be applied) still reads and renders.
        let mut v1 = json.clone();
        v1["schema"] = "migrun.plan/1".into();
        for key in ["contract", "config", "databases", "seeds", "units"] {
            v1.as_object_mut().unwrap().remove(key);
        }
        let old: Plan = serde_json::from_value(v1).unwrap();
        let old_text = plan_text(&old, 0);
        assert!(
            old_text.contains("    auth_users  1,234,567       0       0")
                && old_text.contains("✓ row counts match"),
            "{old_text}"
        );

        p.set_failure(Some("unit `copy` failed".into()));
        assert!(plan_text(&p, 0).contains("INCOMPLETE: the dry-run stopped (unit `copy` failed)"));
        assert!(!p.complete);
    }
}
