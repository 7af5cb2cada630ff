//! `migrun journal verify <journal> [-c migrun.toml | --db name=url] [--json]`.

use std::fmt::Write as _;
use std::path::Path;

use migrun::config::RunConfig;
use migrun::journal_verify::{JournalVerifyReport, verify_journal};
use migrun::printable::printable;

/// Verifies the journal, with the connections of `config` (or `migrun.toml` when
/// `--db` is given without it) when there are any; prints the verdict; returns the
/// exit code (0 intact, 1 modified, 2 unreadable, 3 incomplete).
pub async fn run(
    journal: &Path,
    config: Option<&Path>,
    overrides: &[String],
    json: bool,
) -> anyhow::Result<u8> {
    let config = match config {
        Some(file) => Some(RunConfig::load(file)?),
        None if !overrides.is_empty() => Some(if Path::new("migrun.toml").exists() {
            RunConfig::load("migrun.toml".as_ref())?
        } else {
            RunConfig::default()
        }),
        None => None,
    };
    let config = match config {
        Some(mut config) => {
            for spec in overrides {
                config.apply_override(spec)?;
            }
            Some(config)
        }
        None => None,
    };
    let report = verify_journal(journal, config.as_ref()).await;
    if json {
        let value = serde_json::json!({
            "schema": "migrun.journal-verify/1",
            "report": report,
            "exit_code": report.exit_code(),
        });
        super::print_json(&value.to_string());
    } else {
        super::print_text(&text(&report));
    }
    Ok(report.exit_code())
}

fn text(report: &JournalVerifyReport) -> String {
    let mut out = String::new();
    let check = &report.journal_check;
    let _ = writeln!(
        out,
        "journal   {}",
        printable(&report.journal.display().to_string())
    );
    if let Some(run_id) = &check.run_id {
        let _ = writeln!(
            out,
            "run       {} ({}, {})",
            printable(run_id),
            printable(check.plugin.as_deref().unwrap_or("")),
            check.format
        );
    }
    let _ = writeln!(out, "head      {}", check.head);
    let _ = writeln!(out, "{}", printable(&check.summary()));
    for ledger in &report.ledgers {
        match &ledger.error {
            Some(e) => {
                let _ = writeln!(
                    out,
                    "ledger    {} ({}): not read: {}",
                    printable(&ledger.connection),
                    printable(&ledger.url),
                    printable(e)
                );
            }
            None => {
                let found = ledger.rows.iter().filter(|r| r.mismatch.is_none()).count();
                let final_hash = match &ledger.final_hash {
                    Some(f) if f.mismatch.is_none() => {
                        "; the final hash stored in the ledger matches the journal's"
                    }
                    Some(_) => "; the final hash stored in the ledger does NOT match",
                    None => {
                        "; no final hash stored (the run did not finish, or an older migrun ran it)"
                    }
                };
                let _ = writeln!(
                    out,
                    "ledger    {}: {found} of {} rows of this run anchored in the journal{final_hash}",
                    printable(&ledger.connection),
                    ledger.rows.len()
                );
            }
        }
    }
    for (ledger, row) in report.mismatches() {
        let _ = writeln!(
            out,
            "MODIFIED  {} unit {:?} ({}): {}",
            printable(&ledger.connection),
            printable(&row.unit),
            printable(&row.status),
            printable(row.mismatch.as_deref().unwrap_or(""))
        );
    }
    for ledger in &report.ledgers {
        if let Some(why) = ledger
            .final_hash
            .as_ref()
            .and_then(|f| f.mismatch.as_deref())
        {
            let _ = writeln!(
                out,
                "MODIFIED  {} final hash: {}",
                printable(&ledger.connection),
                printable(why)
            );
        }
    }
    let _ = writeln!(out, "verdict   {}", report.verdict);
    out
}
