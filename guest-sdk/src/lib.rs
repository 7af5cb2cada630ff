//! Write [migrun](https://example.invalid/migrun) migration plugins in Rust.
//!
//! A migrun plugin is a WebAssembly component targeting the world
//! `migrun:plugin/migration@0.2.0` (`wit/v0.2.0/migrun.wit`, shipped inside this crate, with
//! 0.1.0 and 0.1.1 beside it for reference: the host still runs plugins built against them). This crate holds
//! the generated bindings of that world and, on top of them, the layer a
//! plugin author uses: a [`Plugin`] trait with defaults, one export macro,
//! named [`Connection`]s with queries decoded through serde, batched
//! [`Cursor`]s, [`BulkWriter`]s, logging, progress and [`check`]s.
//!
//! Build a plugin as a `cdylib` for `wasm32-wasip2`:
//! `cargo build --target wasm32-wasip2 --release` produces the component.
//!
//! # Layout
//!
//! - [`Plugin`], [`PluginInfo`], [`Need`], [`Unit`], [`ConfigKey`] (`plugin.rs`):
//!   what a plugin implements and declares; [`export_plugin!`] exports it.
//! - [`Config`] (`config.rs`): the configuration with typed getters.
//! - [`Connection`], [`Cursor`], [`TypedCursor`], [`BulkWriter`], [`Dialect`],
//!   [`Access`] (`db.rs`): the database capability, with bulk inserts and the writes by
//!   key ([`Connection::bulk_update`], [`Connection::bulk_upsert`], [`Connection::bulk_delete`]).
//! - [`Value`] and the text newtypes [`Uuid`], [`Json`], [`Decimal`], [`Date`],
//!   [`Time`], [`Timestamp`], [`Timestamptz`], with [`params!`] (`value.rs`).
//! - [`Row`], [`Rows`], [`Column`] (`row.rs`), decoded by a small serde
//!   deserializer (`de.rs`); [`to_values`] serializes the other way (`ser.rs`).
//! - [`files`]: the files of the directory the operator grants (`[files] dir`), read-only.
//! - [`log`]: [`info!`], [`warn!`], [`debug!`], [`error!`], [`trace!`],
//!   [`progress`] and [`check`].
//! - [`Backfill`], [`Batch`] and [`checkpoint`] (`backfill.rs`): batched,
//!   throttled backfills in key order that commit a checkpoint per batch and
//!   resume after the last one when an interrupted unit runs again.
//! - [`TableCopy`] (`copy.rs`): a query's rows copied into a table through a per-row
//!   mapping, one keyset query, one bulk write and one checkpoint per batch, resumable.
//! - `testing` (not on `wasm32`): drive the `migrun` binary from a plugin's own
//!   `cargo test` — build the component, set up and inspect tables with `migrun sql`,
//!   run it with `--json` and assert on the report.
//! - [`Error`], [`DbError`], [`Result`], [`Context`], [`bail!`], [`ensure!`] (`error.rs`).
//! - `bindings` (hidden): the raw wit-bindgen output. Generated types stay at
//!   the edge (`wit.rs`), so a new WIT version changes the SDK, not plugins.
//!
//! # Example
//!
//! A complete plugin that copies `users` into `people`, then checks the counts:
//!
//! ```no_run
//! use migrun_sdk::{
//!     bail, check, info, params, progress, Config, ConfigKey, Connection, Need, Plugin,
//!     PluginInfo, Result,
//! };
//!
//! struct CopyPeople {
//!     batch_size: u32,
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Count {
//!     n: i64,
//! }
//!
//! impl Plugin for CopyPeople {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("copy-people", env!("CARGO_PKG_VERSION"))
//!             .description("Copies users into people")
//!             .connection(Need::read_only("source", "where users live"))
//!             .connection(Need::read_write("target", "where people go").writes(["people"]))
//!             .unit("copy", "copies every user, in id order")
//!             .config_key(ConfigKey::new("batch_size", "rows per batch").default("1000"))
//!     }
//!
//!     fn configure(config: &Config) -> Result<Self> {
//!         Ok(CopyPeople { batch_size: config.parse("batch_size")? })
//!     }
//!
//!     fn run_unit(&mut self, unit: &str) -> Result<()> {
//!         if unit != "copy" {
//!             bail!("unknown unit {unit}");
//!         }
//!         let source = Connection::open("source")?;
//!         let target = Connection::open("target")?;
//!         let total: u64 = source.query_scalar("SELECT COUNT(*) FROM users", params![])?;
//!         let mut writer = target.bulk_writer("people", &["id", "name"], self.batch_size as usize);
//!         let mut done = 0;
//!         for batch in source.cursor("SELECT id, name FROM users ORDER BY id", params![], self.batch_size)? {
//!             let batch = batch?;
//!             done += batch.len() as u64;
//!             writer.extend(batch.into_iter().map(|row| row.into_values()))?;
//!             progress("copy", done, total);
//!         }
//!         let written = writer.finish()?;
//!         info!(table = "people"; "copied {written} users");
//!         Ok(())
//!     }
//!
//!     fn verify(&mut self) -> Result<()> {
//!         let source = Connection::open("source")?;
//!         let target = Connection::open("target")?;
//!         let users: Count = source.query_one_as("SELECT COUNT(*) AS n FROM users", params![])?;
//!         let people: Count = target.query_one_as("SELECT COUNT(*) AS n FROM people", params![])?;
//!         check(
//!             "row counts match",
//!             users.n == people.n,
//!             &format!("users: {}, people: {}", users.n, people.n),
//!         );
//!         Ok(())
//!     }
//! }
//!
//! migrun_sdk::export_plugin!(CopyPeople);
//! # fn main() {}
//! ```

#![deny(missing_docs)]

/// The raw bindings generated by wit-bindgen for the world `migration`.
///
/// Not part of the SDK's stable API: use the types re-exported at the crate root.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/v0.2.0",
        world: "migrun:plugin/migration",
        pub_export_macro: true,
        default_bindings_module: "migrun_sdk::bindings",
        export_macro_name: "__export_migration",
    });
}

mod backfill;
pub mod backup;
mod catalog;
mod config;
mod copy;
mod db;
mod de;
mod error;
mod export;
pub mod files;
pub mod log;
mod plugin;
mod row;
mod ser;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod value;
mod wit;

pub use backfill::{Backfill, BackfillReport, Batch, checkpoint, key_of};
pub use catalog::ColumnInfo;
pub use config::Config;
pub use copy::{CopyReport, TableCopy};
pub use db::{Access, BulkWriter, Connection, Cursor, Dialect, TypedCursor};
pub use error::{Context, DbError, DbErrorKind, Error, Result};
pub use log::{check, progress};
pub use migrun_types::ValueKind;
pub use plugin::{ConfigKey, Need, Plugin, PluginInfo, StepFn, Steps, Unit};
pub use row::{Column, Row, Rows};
pub use ser::{to_named_values, to_values};
pub use value::{Date, Decimal, Json, Time, Timestamp, Timestamptz, Uuid, Value};

/// What the export macro expands to; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::Export;
}

/// Exports a [`Plugin`] as the component's implementation of `migrun:plugin/plugin`.
///
/// Use it once, at the root of the plugin crate: `migrun_sdk::export_plugin!(MyPlugin);`.
/// The plugin built by `configure` lives in the instance between calls;
/// errors become the contract's `plugin-error` (database errors keep their
/// kind and code); a panic traps the instance and the host rolls the unit back.
///
/// The exports exist on `wasm32` only: built natively (`cargo test` of a plugin crate,
/// whose `cdylib` cargo links for its tests) the macro only checks that the type is a
/// [`Plugin`], since the contract's export names (`migrun:plugin/plugin@0.2.0#…`) are no
/// symbols a native linker accepts.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __MigrunExport = $crate::__private::Export<$plugin>;
    $crate::bindings::__export_migration!(__MigrunExport with_types_in $crate::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            const fn __migrun_is_a_plugin<P: $crate::Plugin>() {}
            __migrun_is_a_plugin::<$plugin>();
        };
    };
}
