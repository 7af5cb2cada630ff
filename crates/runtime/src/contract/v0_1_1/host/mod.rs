//! Contract 0.1.1's `Host` traits, one file per imported interface, each a thin
//! conversion over the version-free context of `crate::capability` (the Zed
//! extension host's `since_vX` shape). Contract 0.1.0 plugins are served by
//! these too (wasmtime links the 0.1.x line semver-compatibly); 0.2.0 has its
//! own in `crate::contract::v0_2_0::host`.

pub mod backup;
pub mod checkpoint;
pub mod checks;
pub mod database;
pub mod log;
