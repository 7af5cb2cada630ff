//! The first build of the structured-writes test plugin (see `plugin.rs`).

/// The rules of the first build.
const V2: bool = false;

include!("plugin.rs");
