//! The second build of the structured-writes test plugin: the same code as
//! `tests/guests/structured-writes` with its v2 rules (see that crate's `plugin.rs`), so
//! that `replay --plugin` has another build to compare.

/// The rules of the second build.
const V2: bool = true;

include!("../../structured-writes/src/plugin.rs");
