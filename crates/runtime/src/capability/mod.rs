//! What a plugin may do: one module per imported WIT interface.
//!
//! Each module is version-free: a context struct holding that capability's
//! state for one run, with methods for what the plugin calls
//! (`LogCtx::plugin_message`, `ChecksCtx::plugin_check`,
//! `BackupCtx::plugin_snapshot`, `FilesCtx::plugin_open`, `DatabaseCtx` over the run's
//! session; the `checkpoint` interface is the session's too). Each contract version
//! implements its generated `Host` traits over these contexts in its own
//! module — `crate::contract::v0_1_1::host` (which also serves 0.1.0) and
//! `crate::contract::v0_2_0::host` — so this module imports no contract and a
//! new version adds a module there, not a change here. Nothing else is linked besides WASI,
//! which [`sandbox`](crate::sandbox) locks down.

pub mod backup;
pub mod checks;
pub mod database;
pub mod files;
pub mod log;
