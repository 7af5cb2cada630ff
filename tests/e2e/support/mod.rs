//! Shared fixtures for the end-to-end suite: databases of their own per test,
//! checksums, plugins built from source, and the `migrun` binary.

pub mod arena;
pub mod checksum;
pub mod cli;
pub mod database;
pub mod pg_server;
pub mod plugins;
pub mod skips;
