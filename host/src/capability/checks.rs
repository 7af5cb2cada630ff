//! The `checks` interface: the plugin's ✓/✗ verification results.
//!
//! A check that fails makes the whole run fail (non-zero exit), even when
//! every unit committed: the plugin's own verifier is the acceptance test of
//! the migration, as in seed 001's `verify.ts`.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::capability::log::pass_tape;
use crate::contract::v0_1_1::checks;
use crate::journal::HostCall;
use crate::observer::{CheckResult, RunObserver};
use crate::tape::Tape;

/// The checks of one run.
pub struct ChecksCtx {
    observer: Arc<dyn RunObserver>,
    tape: Tape,
    unit: Option<String>,
    results: Vec<CheckResult>,
}

impl ChecksCtx {
    /// A checks context reporting to `observer`.
    pub fn new(observer: Arc<dyn RunObserver>, tape: Tape) -> Self {
        ChecksCtx {
            observer,
            tape,
            unit: None,
            results: Vec::new(),
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

    /// The checks reported so far.
    pub fn take_results(&mut self) -> Vec<CheckResult> {
        std::mem::take(&mut self.results)
    }
}

struct Checks;

impl HasData for Checks {
    type Data<'a> = &'a mut ChecksCtx;
}

/// Adds the `checks` interface to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ChecksCtx,
) -> wasmtime::Result<()> {
    checks::add_to_linker::<T, Checks>(linker, get)
}

impl checks::Host for ChecksCtx {
    async fn report(&mut self, name: String, ok: bool, detail: String) -> wasmtime::Result<()> {
        let call = HostCall::Check { name, ok, detail };
        pass_tape(&self.tape, &call)?;
        let HostCall::Check { name, ok, detail } = call else {
            unreachable!()
        };
        let result = CheckResult {
            unit: self.unit.clone(),
            name,
            ok,
            detail,
        };
        if ok {
            tracing::info!(check = %result.name, detail = %result.detail, "check passed");
        } else {
            tracing::warn!(check = %result.name, detail = %result.detail, "check FAILED");
        }
        self.observer.check(&result);
        self.results.push(result);
        Ok(())
    }
}
