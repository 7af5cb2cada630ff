//! The dry-run plan for a terminal.

use std::fmt::Write as _;

use crate::lint::LockWarning;
use crate::plan::{Plan, TableRows, thousands};
use crate::printable::printable;

/// The plan for a terminal.
pub fn plan_text(plan: &Plan) -> String {
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
        for note in &c.notes {
            let _ = writeln!(out, "  note: {}", printable(note));
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
    parts.push(format!("{} warning(s)", s.warnings));
    let _ = writeln!(out, "\nsummary: {}", parts.join(" · "));
    out
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
