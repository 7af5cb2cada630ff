//! The contract 0.1.1 `checks` interface over the version-free [`ChecksCtx`]
//! (`crate::capability::checks`): the generated `Host` trait implemented as a thin
//! conversion, and the `add_to_linker` of the 0.1.x linker.

use crate::capability::checks::ChecksCtx;
use crate::contract::v0_1_1::checks;
use wasmtime::component::{HasData, Linker};

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

/// Contract 0.1.1 (and 0.1.0, linked semver-compatibly).
impl checks::Host for ChecksCtx {
    async fn report(&mut self, name: String, ok: bool, detail: String) -> wasmtime::Result<()> {
        self.plugin_check(name, ok, detail)
    }
}
