//! The plugin of the seed-001-shape benchmark (`migrun-bench --shape seed001`,
//! issue 18): copies every `me_<slug>.memory` table of `source` into the
//! same table of `target` the way seed 001's ETL does — one unit per
//! `me_<slug>` schema (listed from the source), a cursor in batches, a mapping
//! applied to every row (trim the content), one bulk insert per batch.
//!
//! `ltree` and `tstzrange` travel as text (the host's binary `COPY` encodes
//! them exactly). The embedding travels according to the `embedding` key:
//!
//! - `as-is` (default): selected without a cast and written back as the host
//!   gave it. For a `real[]` column that is a `float32-array` in and out. For a
//!   pgvector `halfvec` column it needs a host that models vector types (issue
//!   18, Deliver 2): then it is also a `float32-array` in and out, encoded by
//!   the host in the column's binary form.
//! - `real-cast`: selected as `embedding::real[]` (a `float32-array`) and
//!   written as pgvector's text literal `[x,y,…]`, which the target server
//!   parses into its `halfvec`/`vector` column. This is what a plugin has to do
//!   on a host without vector types; every `f32` prints as its shortest
//!   round-trip text, so a value read from a `halfvec` comes back bit-exact.

use migrun_sdk::{
    Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Unit, Value, bail, params,
    progress,
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

/// How the embedding column is read and written (the `embedding` key).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Embedding {
    AsIs,
    RealCast,
}

struct SeedCopy {
    batch_size: u32,
    embedding: Embedding,
}

impl Plugin for SeedCopy {
    fn describe() -> PluginInfo {
        PluginInfo::new("seed-copy", env!("CARGO_PKG_VERSION"))
            .description("copies me_<slug>.memory of every engine, mapping each row")
            .connection(Need::read_only(
                "source",
                "holds one me_<slug> schema per engine, each with a memory table",
            ))
            .connection(
                Need::read_write("target", "receives memory into the same schemas")
                    .writes(["me_<slug>.memory"]),
            )
            .config_key(
                ConfigKey::new("batch_size", "rows per cursor batch and bulk insert")
                    .default("1000"),
            )
            .config_key(
                ConfigKey::new(
                    "embedding",
                    "as-is: the embedding as the host reads it (float32-array for real[], and \
                     for halfvec on a host with vector types); real-cast: read embedding::real[], \
                     write pgvector's text literal",
                )
                .default("as-is"),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        let embedding = match config.require("embedding")? {
            "as-is" => Embedding::AsIs,
            "real-cast" => Embedding::RealCast,
            other => bail!("config key `embedding` must be `as-is` or `real-cast`, got {other:?}"),
        };
        Ok(SeedCopy {
            batch_size: config.parse("batch_size")?,
            embedding,
        })
    }

    fn units(&self) -> Result<Vec<Unit>> {
        let source = Connection::open("source")?;
        let schemas: Vec<String> = source.query_as(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'me\\_%' ORDER BY 1",
            params![],
        )?;
        Ok(schemas
            .into_iter()
            .map(|s| {
                let description = format!("copies {s}.memory");
                Unit::new(s, description)
            })
            .collect())
    }

    fn run_unit(&mut self, schema: &str) -> Result<()> {
        if !schema.strip_prefix("me_").is_some_and(|slug| {
            slug.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }) {
            bail!("unit {schema:?} is not a me_<slug> schema");
        }
        let source = Connection::open("source")?;
        let target = Connection::open("target")?;
        let table = format!("{schema}.memory");
        let total: u64 =
            source.query_scalar(&format!("SELECT count(*) FROM {table}"), params![])?;
        let embedding = match self.embedding {
            Embedding::AsIs => "embedding",
            Embedding::RealCast => "embedding::real[] AS embedding",
        };
        let select = format!(
            "SELECT id, content, meta, tree::text AS tree, temporal::text AS temporal, {embedding}, \
             created_at FROM {table} ORDER BY id"
        );
        let columns: Vec<String> = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        let mut done = 0u64;
        for batch in source.cursor(&select, params![], self.batch_size)? {
            let rows: Vec<Vec<Value>> = batch?
                .into_iter()
                .map(|row| {
                    let mut values = row.into_values();
                    if let Value::Text(content) = &mut values[1] {
                        let trimmed = content.trim();
                        if trimmed.len() != content.len() {
                            *content = trimmed.to_owned();
                        }
                    }
                    if self.embedding == Embedding::RealCast
                        && let Value::Float32Array(floats) = &values[5]
                    {
                        values[5] = Value::Text(vector_literal(floats));
                    }
                    values
                })
                .collect();
            done += target.bulk_insert(&table, &columns, rows)?;
            progress(schema, done, total);
        }
        Ok(())
    }
}

/// pgvector's text form of `floats`: `[x,y,…]`, each `f32` in its shortest
/// round-trip text, so the server parses back the same value.
fn vector_literal(floats: &[f32]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(floats.len() * 10 + 2);
    text.push('[');
    for (i, f) in floats.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        write!(text, "{f}").expect("writing to a String");
    }
    text.push(']');
    text
}

migrun_sdk::export_plugin!(SeedCopy);
