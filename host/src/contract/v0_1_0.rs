//! Contract `migrun:plugin@0.1.0`, the first one: still loadable.
//!
//! Only the exported `plugin` interface is used from these bindings. A 0.1.0
//! component's imports (`database@0.1.0`, `log@0.1.0`, …) are served by the
//! [`v0_1_1`](super::v0_1_1) implementations: wasmtime's linker matches an
//! import with a semver-compatible definition, and 0.1.1 only added
//! interfaces. The generated import traits here are therefore never
//! implemented.

#[allow(missing_docs, dead_code)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit/v0.1.0",
        world: "migrun:plugin/migration",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use bindings::Migration;

use bindings::exports::migrun::plugin::plugin as exports;

crate::contract::export_conversions!(exports, bindings::migrun::plugin::types::DbErrorKind);
