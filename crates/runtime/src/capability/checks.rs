//! The `checks` interface: the plugin's ✓/✗ verification results.
//!
//! A check that fails makes the whole run fail (non-zero exit), even when
//! every unit committed: the plugin's own verifier is the acceptance test of
//! the migration, as in seed 001's `verify.ts`.
//!
//! What the host keeps and shows is bounded per run: names are cut to
//! [`MAX_CHECK_NAME_BYTES`], details to [`MAX_CHECK_DETAIL_BYTES`], and past
//! [`KEPT_CHECK_BYTES`] a check is only counted ([`ChecksNotKept`]) — a
//! failed one still fails the run.

use std::sync::Arc;

use crate::capability::log::pass_tape;
use crate::observer::{CheckResult, ChecksNotKept, RunObserver};
use crate::printable::{printable, truncated};
use migrun_journal::HostCall;
use migrun_session::tape::Tape;

/// Bytes of one check's name kept or shown.
pub const MAX_CHECK_NAME_BYTES: usize = 256;
/// Bytes of one check's detail kept or shown.
pub const MAX_CHECK_DETAIL_BYTES: usize = 2 << 10;
/// Bytes of checks (names and details) kept per run.
pub const KEPT_CHECK_BYTES: usize = 1 << 20;

/// The checks of one run.
pub struct ChecksCtx {
    observer: Arc<dyn RunObserver>,
    tape: Tape,
    unit: Option<String>,
    results: Vec<CheckResult>,
    kept_bytes: usize,
    not_kept: ChecksNotKept,
}

impl ChecksCtx {
    /// A checks context reporting to `observer`.
    pub fn new(observer: Arc<dyn RunObserver>, tape: Tape) -> Self {
        ChecksCtx {
            observer,
            tape,
            unit: None,
            results: Vec::new(),
            kept_bytes: 0,
            not_kept: ChecksNotKept::default(),
        }
    }

    /// Sets the tape calls go through.
    pub fn set_tape(&mut self, tape: Tape) {
        self.tape = tape;
    }

    /// Sets the unit that checks are attributed to (`None` during `verify`).
    pub fn set_unit(&mut self, unit: Option<String>) {
        self.unit = unit;
    }

    /// The checks kept so far, and what was not kept.
    pub fn take_results(&mut self) -> (Vec<CheckResult>, ChecksNotKept) {
        (
            std::mem::take(&mut self.results),
            std::mem::take(&mut self.not_kept),
        )
    }
}

impl ChecksCtx {
    /// `checks.report`, in any contract version: through the tape, then kept within the budget.
    pub fn plugin_check(&mut self, name: String, ok: bool, detail: String) -> wasmtime::Result<()> {
        let call = HostCall::Check { name, ok, detail };
        pass_tape(&self.tape, &call)?;
        let HostCall::Check { name, ok, detail } = call else {
            unreachable!()
        };
        let sent = name.len() + detail.len();
        let result = CheckResult {
            unit: self.unit.clone(),
            name: truncated(&name, MAX_CHECK_NAME_BYTES).into_owned(),
            ok,
            detail: truncated(&detail, MAX_CHECK_DETAIL_BYTES).into_owned(),
        };
        let size = result.name.len() + result.detail.len();
        if self.kept_bytes + size > KEPT_CHECK_BYTES {
            if self.not_kept.is_empty() {
                self.observer.checks_not_kept();
            }
            if ok {
                self.not_kept.passed += 1;
            } else {
                self.not_kept.failed += 1;
            }
            self.not_kept.bytes += sent as u64;
            return Ok(());
        }
        self.kept_bytes += size;
        let (shown_name, shown_detail) = (printable(&result.name), printable(&result.detail));
        if ok {
            tracing::info!(check = %shown_name, detail = %shown_detail, "check passed");
        } else {
            tracing::warn!(check = %shown_name, detail = %shown_detail, "check FAILED");
        }
        self.observer.check(&result);
        self.results.push(result);
        Ok(())
    }
}
