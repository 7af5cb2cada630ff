//! What a plugin may do: one module per imported WIT interface.
//!
//! Each module has the same shape: a context struct holding that
//! capability's state for one run, the generated `Host` trait implemented on
//! it, and an `add_to_linker` that takes an accessor from the store's data to
//! the context. Nothing else is linked besides WASI, which
//! [`sandbox`](crate::runtime::sandbox) locks down.

pub mod backup;
pub mod checkpoint;
pub mod checks;
pub mod database;
pub mod log;
