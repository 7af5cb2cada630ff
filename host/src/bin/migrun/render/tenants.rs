//! The report of a run over tenants for a terminal: counts by outcome, then every tenant
//! that failed with its error (the others are summed up: there may be thousands), and
//! what a rerun does.

use std::fmt::Write as _;

use migrun::printable::printable;
use migrun::tenants::{TenantStatus, TenantsReport};

/// How many failed tenants are listed one per line before the rest are counted.
const FAILED_LISTED: usize = 50;

/// The report of a run over tenants, for a terminal.
pub fn tenants_report_text(plugin: &str, report: &TenantsReport) -> String {
    let mut out = String::new();
    let share = match report.shard {
        Some((index, count)) => format!(" (shard {index}/{count} of {} listed)", report.listed),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "{} over {} tenants{share}",
        printable(plugin),
        report.tenants.len()
    );
    let counts: Vec<String> = [
        TenantStatus::Migrated,
        TenantStatus::UpToDate,
        TenantStatus::DryRun,
        TenantStatus::Failed,
        TenantStatus::NotStarted,
    ]
    .into_iter()
    .filter_map(|status| {
        let n = report.count(status);
        (n > 0).then(|| format!("{n} {}", status.as_str()))
    })
    .collect();
    let _ = writeln!(out, "  {}", counts.join(", "));
    let failed: Vec<_> = report
        .tenants
        .iter()
        .filter(|t| t.status == TenantStatus::Failed)
        .collect();
    for tenant in failed.iter().take(FAILED_LISTED) {
        let _ = writeln!(
            out,
            "  ✗ {}: {}",
            printable(&tenant.tenant),
            printable(tenant.error.as_deref().unwrap_or("failed"))
        );
    }
    if failed.len() > FAILED_LISTED {
        let _ = writeln!(
            out,
            "  … and {} more failed tenants (--json lists them all)",
            failed.len() - FAILED_LISTED
        );
    }
    if report.interrupted {
        let _ = writeln!(
            out,
            "interrupted: tenants not started were left unchanged; the running ones rolled back their open unit"
        );
    }
    if !failed.is_empty() || report.count(TenantStatus::NotStarted) > 0 {
        let _ = writeln!(
            out,
            "a rerun of the same command runs only what is unfinished: each tenant's ledger skips its finished units"
        );
    } else {
        let _ = writeln!(out, "every tenant is done");
    }
    out
}

/// `migrun status` over tenants: the tenants counted by state, then those that need
/// attention (every one with `all`), each with its ledgers as `migrun status` shows one.
pub fn tenant_status_text(ledgers: &[migrun::tenants::TenantLedgers], all: bool) -> String {
    use migrun::tenants::TenantLedgerState as State;
    let mut out = String::new();
    let states = [
        State::Finished,
        State::Unfinished,
        State::Failed,
        State::NeverRan,
        State::Suspect,
        State::Unreadable,
    ];
    let counts: Vec<String> = states
        .iter()
        .filter_map(|state| {
            let n = ledgers.iter().filter(|t| t.state == *state).count();
            (n > 0).then(|| format!("{n} {}", state.as_str()))
        })
        .collect();
    let _ = writeln!(out, "{} tenants: {}", ledgers.len(), counts.join(", "));
    let shown: Vec<_> = ledgers
        .iter()
        .filter(|t| all || t.state != State::Finished)
        .collect();
    let limit = if all { usize::MAX } else { FAILED_LISTED };
    for tenant in shown.iter().take(limit) {
        let _ = writeln!(
            out,
            "\n{} — {}",
            printable(&tenant.tenant),
            tenant.state.as_str()
        );
        let text = super::status_text(&tenant.targets, all)
            + &super::failed_units_text(&tenant.failed_units, all);
        for line in text.lines().filter(|l| !l.starts_with("✓ finished   ◐")) {
            if !line.is_empty() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if shown.len() > limit {
        let _ = writeln!(
            out,
            "\n… and {} more (--all lists every tenant, --json too)",
            shown.len() - limit
        );
    }
    if !all && shown.len() < ledgers.len() {
        let _ = writeln!(out, "\n(--all shows the finished tenants' ledgers too)");
    }
    out
}
