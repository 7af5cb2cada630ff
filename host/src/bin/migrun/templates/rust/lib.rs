//! {{name}}: a migrun plugin, in Rust.
//!
//! It declares one read-write connection, `target`, and two units: one
//! creates a table, the other fills it; `verify` checks the result. Replace
//! them with your migration: add a read-only `source` with
//! `Need::read_only("source", "…")`, stream it with `Connection::cursor` and
//! write with `Connection::bulk_insert`. See the SDK's docs
//! (`cargo doc -p migrun-sdk --open`) and migrun's `docs/plugins-rust.md`.
//!
//! Build:   cargo build --release --target wasm32-wasip2
//! Dry-run: migrun target/wasm32-wasip2/release/{{crate_name}}.wasm --dry-run
//! Test:    cargo test (tests/plugin.rs runs the component with migrun)

use migrun_sdk::{
    Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Steps, Unit, check, info,
    params, progress,
};

/// The table the plugin writes.
const TABLE: &str = "greetings";

/// The plugin's state between calls, built by `configure`.
struct {{type_name}} {
    count: i64,
}

impl Plugin for {{type_name}} {
    fn describe() -> PluginInfo {
        PluginInfo::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .description("Writes numbered greetings (a starting point: replace with your migration)")
            .connection(Need::read_write("target", "where the greetings go").writes([TABLE]))
            .config_key(ConfigKey::new("count", "how many greetings there should be").default("3"))
    }

    fn configure(config: &Config) -> Result<Self> {
        Ok({{type_name}} {
            count: config.parse("count")?,
        })
    }

    /// The units, in order, each with the method that runs it. The host runs each
    /// inside a transaction on `target` and commits it when the method returns Ok (a
    /// dry-run rolls it back). `Unit::new(…).outside_transaction()` declares a step such
    /// as `CREATE INDEX CONCURRENTLY`; `.always_run()`, `.lock_timeout(…)` and
    /// `Plugin::scope` are the other things a unit can say about itself.
    fn steps() -> Steps<Self> {
        Steps::new()
            .step(
                Unit::new("create-table", "creates the greetings table when absent"),
                Self::create_table,
            )
            .step(
                Unit::new("fill", "inserts the greetings that are missing"),
                Self::fill,
            )
    }

    fn verify(&mut self) -> Result<()> {
        let target = Connection::open("target")?;
        let n: i64 = target.query_scalar("SELECT COUNT(*) FROM greetings", params![])?;
        check(
            "every greeting is there",
            n >= self.count,
            &format!("{n} greetings, at least {} expected", self.count),
        );
        Ok(())
    }
}

impl {{type_name}} {
    fn create_table(&mut self) -> Result<()> {
        let target = Connection::open("target")?;
        target.execute(
            "CREATE TABLE IF NOT EXISTS greetings (id INTEGER PRIMARY KEY, message TEXT NOT NULL)",
            params![],
        )?;
        info!(dialect = target.dialect(); "{TABLE} exists");
        Ok(())
    }

    fn fill(&mut self) -> Result<()> {
        let target = Connection::open("target")?;
        let last: i64 =
            target.query_scalar("SELECT COALESCE(MAX(id), 0) FROM greetings", params![])?;
        let rows: Vec<_> = (last + 1..=self.count)
            .map(|id| params![id, format!("hello, world #{id}")])
            .collect();
        let total = rows.len() as u64;
        progress("fill", 0, total);
        let written = target.bulk_insert(TABLE, &["id", "message"], rows)?;
        progress("fill", written, total);
        info!(written = written; "wrote {written} greetings");
        Ok(())
    }
}

migrun_sdk::export_plugin!({{type_name}});
