//! What a plugin may do: one module per imported WIT interface.
//!
//! Each module has the same shape: a context struct holding that
//! capability's state for one run, with version-free methods for what the
//! plugin calls (`LogCtx::plugin_message`, `ChecksCtx::plugin_check`,
//! `BackupCtx::plugin_snapshot`, …); the contract 0.1.1 `Host` trait
//! implemented on it as a thin conversion over those methods; and an
//! `add_to_linker` (for the 0.1.x linker) that takes an accessor from the
//! store's data to the context. Later contract versions implement their own
//! `Host` traits over the same contexts in their `contract::vX_Y_Z` module
//! (see [`crate::contract::v0_2_0`]). Nothing else is linked besides WASI,
//! which [`sandbox`](crate::sandbox) locks down.

pub mod backup;
pub mod checkpoint;
pub mod checks;
pub mod database;
pub mod log;
