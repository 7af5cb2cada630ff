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

use migrun_sdk::{
    Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, bail, check, info, params,
    progress,
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
            .unit("create-table", "creates the greetings table when absent")
            .unit("fill", "inserts the greetings that are missing")
            .config_key(ConfigKey::new("count", "how many greetings there should be").default("3"))
    }

    fn configure(config: &Config) -> Result<Self> {
        Ok({{type_name}} {
            count: config.parse("count")?,
        })
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        // The host opened a transaction on `target` for this unit and commits
        // it when the unit returns Ok (a dry-run rolls it back).
        let target = Connection::open("target")?;
        match unit {
            "create-table" => {
                target.execute(
                    "CREATE TABLE IF NOT EXISTS greetings (id INTEGER PRIMARY KEY, message TEXT NOT NULL)",
                    params![],
                )?;
                info!(dialect = target.dialect(); "{TABLE} exists");
            }
            "fill" => {
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
            }
            other => bail!("unknown unit `{other}`"),
        }
        Ok(())
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

migrun_sdk::export_plugin!({{type_name}});
