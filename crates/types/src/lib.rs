//! The vocabulary the migrun host and its plugin SDK share, written once.
//!
//! Both sides of the WIT contract name the same things — a connection's
//! [`Dialect`] and [`Access`], the [`DbErrorKind`] of a failed call, the
//! [`ValueKind`] of a value — and both need the same small pieces of dialect
//! knowledge (bind placeholders, identifier quoting). Before this crate each
//! side had its own copy, and they drifted (`MySql` in the host, `Mysql` in the
//! SDK). This crate has no dependencies (serde is optional, for the host), so
//! it compiles for `wasm32-wasip2` guests as cheaply as for the host.
//!
//! Invariant: every enum here mirrors a WIT enum case for case, and the names
//! returned by `as_str` are the WIT's spelling (or, for [`Dialect`], the
//! spelling of configuration and reports). The enums are exhaustive on
//! purpose: the host matches on them without a fallback arm, so a new case is
//! a compile error everywhere it must be handled (and a breaking SDK release).

#![deny(missing_docs)]

#[cfg(feature = "value")]
pub mod binary16;
mod bulk_write;
mod dialect;
mod error_kind;
mod level;
#[cfg(feature = "value")]
pub mod value;
mod value_kind;

pub use bulk_write::BulkWriteKind;
pub use dialect::{Access, Dialect, IdentifierError};
pub use error_kind::DbErrorKind;
pub use level::Level;
#[cfg(feature = "value")]
pub use value::Value;
pub use value_kind::ValueKind;
