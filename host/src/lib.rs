//! migrun runs database migrations written as sandboxed WebAssembly components.
//!
//! A plugin (any language that targets the component model) declares the
//! connections it needs, its units and its configuration keys; the host
//! grants it named database connections, logging and checks, and nothing
//! else, and runs each unit in a transaction per connection.
//!
//! # Layout
//!
//! - [`config`]: `migrun.toml`, the operator's grants and limits.
//! - [`contract`]: the WIT versions spoken, version detection, generated bindings at the edge.
//! - [`runtime`]: the wasmtime engine, the sandbox (WASI locked down, deterministic clocks and
//!   randomness, limits), one store per run.
//! - [`capability`]: one module per imported WIT interface (`database`, `log`, `checks`,
//!   `backup`, `checkpoint`).
//! - [`backup`]: snapshots before writes, manifests, `migrun backup verify` and `migrun restore`.
//! - [`session`]: the connections of one run, their transactions, the unit's ledger rows and
//!   checkpoints, write counts (no wasmtime; the `database` capability adapts it).
//! - [`db`]: the database drivers over sqlx (SQLite, PostgreSQL, MySQL/MariaDB) and value mapping.
//! - [`value`]: the host's SQL value and its canonical text forms.
//! - [`run`]: the flow of one run (and its dry-run and replay modes), producing a [`run::RunReport`].
//! - [`journal`]: the hash-chained record of every input a run read.
//! - [`ledger`]: which units finished on each target, recorded in the units' own transactions.
//! - [`lock`]: one run at a time per target.
//! - [`sql`]: pure SQL text analysis: the lexer, the plan's statement classifier, the lint rules.
//! - [`plan`]: what a dry-run would do, per connection and table; [`lint`]: locking hazards
//!   with row counts read on a connection.
//! - [`tape`]: the one boundary where host calls are recorded, answered from a journal
//!   (`tape::Player`, verify) or matched for another plugin version (`tape::Comparison`).
//! - [`statements`]: `migrun sql`, the operator's (and plugin tests') SQL on a configured connection.
//! - [`tenants`]: one plugin across many tenant databases (`[tenants]`, `${tenant}` in URLs),
//!   a run per tenant, `--jobs` tenants at once.
//! - [`observer`]: how a run reports progress while it happens.
//! - [`printable`]: escaping of everything a plugin supplied before it is shown.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use migrun::{config::RunConfig, run, runtime::{LoadedPlugin, Runtime}};
//! let plugin = LoadedPlugin::load_file(Runtime::shared(), "plugin.wasm".as_ref())?;
//! let config = RunConfig::load("migrun.toml".as_ref())?;
//! let report = run::run(&plugin, &config, run::RunOptions { dry_run: true, ..Default::default() }).await?;
//! assert!(report.succeeded());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub use migrun_backup as backup;
pub use migrun_config as config;
pub use migrun_db as db;
pub use migrun_db::ledger;
pub use migrun_journal as journal;
pub mod journal_verify;
pub use migrun_runtime::capability;
pub use migrun_runtime::contract;
pub mod lint;
pub use migrun_db::lock;
pub use migrun_runtime::observer;
pub mod plan;
pub use migrun_runtime::printable;
pub mod run;
pub use migrun_runtime as runtime;
pub use migrun_session as session;
pub use migrun_sql as sql;
pub mod statements;
pub mod status;
pub mod tenants;
pub mod unit_failures;
pub use migrun_session::tape;
pub use migrun_types::value;

/// This migrun's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
