//! The benchmark's plugin (`bench/`): copies seed 001's `memory` shape from
//! `source` to `target` the way an ETL plugin does — a cursor in batches, a
//! mapping applied to every row, one bulk insert per batch.
//!
//! The mapping is deliberately real but cheap (trim the content, keep every
//! other value as read), so the benchmark measures the sandbox and the host's
//! data path, not the plugin's own work. `ltree` and `tstzrange` travel as
//! text (`COPY` parses them back); the embedding as a `float32-array`.

use migrun_sdk::{
    Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Value, params, progress,
};

const COLUMNS: [&str; 7] = [
    "id",
    "content",
    "meta",
    "tree",
    "temporal",
    "embedding",
    "created_at",
];

struct MemoryCopy {
    batch_size: u32,
}

impl Plugin for MemoryCopy {
    fn describe() -> PluginInfo {
        PluginInfo::new("memory-copy", env!("CARGO_PKG_VERSION"))
            .description("copies the memory table, mapping each row")
            .connection(Need::read_only("source", "holds memory"))
            .connection(Need::read_write("target", "receives memory").writes(["memory"]))
            .unit("copy", "streams memory into target in batches")
            .config_key(
                ConfigKey::new("batch_size", "rows per cursor batch and bulk insert")
                    .default("1000"),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        Ok(MemoryCopy {
            batch_size: config.parse("batch_size")?,
        })
    }

    fn run_unit(&mut self, _unit: &str) -> Result<()> {
        let source = Connection::open("source")?;
        let target = Connection::open("target")?;
        let total: u64 = source.query_scalar("SELECT COUNT(*) FROM memory", params![])?;
        let select = "SELECT id, content, meta, tree::text, temporal::text, embedding, created_at FROM memory ORDER BY id";
        let columns: Vec<String> = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        let mut done = 0u64;
        for batch in source.cursor(select, params![], self.batch_size)? {
            let batch = batch?;
            done += batch.len() as u64;
            let rows: Vec<Vec<Value>> = batch
                .into_iter()
                .map(|row| {
                    let mut values = row.into_values();
                    if let Value::Text(content) = &mut values[1] {
                        let trimmed = content.trim();
                        if trimmed.len() != content.len() {
                            *content = trimmed.to_owned();
                        }
                    }
                    values
                })
                .collect();
            target.bulk_insert("memory", &columns, rows)?;
            progress("copy", done, total);
        }
        Ok(())
    }
}

migrun_sdk::export_plugin!(MemoryCopy);
