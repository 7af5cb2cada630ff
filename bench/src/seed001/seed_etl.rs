//! Seed 001's own approach to the memory copy, reproduced in Rust with sqlx
//! (the seed's ETL is TypeScript on postgres.js): per engine, in one
//! transaction on each side, a cursor over `me_<slug>.memory` fetched 1,000
//! rows at a time with every column read as text, and one
//! `INSERT … SELECT … FROM unnest($1::text[], …)` per fetch with the scalar
//! casts in the projection (`meta::jsonb`, `tree::ltree`,
//! `temporal::tstzrange`, `embedding::halfvec`) — so every embedding is
//! printed as text by the source server and parsed again by the target.

use sqlx::{Connection, Executor, PgConnection, Row};

use super::Vector;

/// Rows per `FETCH` and per `INSERT` (the seed's batch).
const BATCH: usize = 1000;

pub async fn copy_tables(from: &str, to: &str, vector: Vector) -> anyhow::Result<()> {
    let mut src = PgConnection::connect(from).await?;
    let mut dst = PgConnection::connect(to).await?;
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'me\\_%' ORDER BY 1",
    )
    .fetch_all(&mut src)
    .await?;
    let insert_cast = vector.column_type();
    for schema in schemas {
        let mut read = src.begin().await?;
        let mut write = dst.begin().await?;
        (&mut *read).execute(
            format!(
                "DECLARE memories NO SCROLL CURSOR FOR SELECT id::text, content, meta::text, tree::text, \
                 temporal::text, embedding::text, created_at::text FROM {schema}.memory"
            )
            .as_str(),
        )
        .await?;
        let insert = format!(
            "INSERT INTO {schema}.memory (id, content, meta, tree, temporal, embedding, created_at) \
             SELECT id::uuid, content, meta::jsonb, tree::ltree, temporal::tstzrange, \
             embedding::{insert_cast}, created_at::timestamptz \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
             AS t(id, content, meta, tree, temporal, embedding, created_at)"
        );
        loop {
            let rows = sqlx::query(&format!("FETCH {BATCH} FROM memories"))
                .fetch_all(&mut *read)
                .await?;
            if rows.is_empty() {
                break;
            }
            let mut columns: [Vec<Option<String>>; 7] = Default::default();
            for row in &rows {
                for (i, column) in columns.iter_mut().enumerate() {
                    let mut value: Option<String> = row.try_get(i)?;
                    if i == 1
                        && let Some(content) = &mut value
                    {
                        // the per-row mapping every path applies: trim the content
                        let trimmed = content.trim();
                        if trimmed.len() != content.len() {
                            *content = trimmed.to_owned();
                        }
                    }
                    column.push(value);
                }
            }
            let mut query = sqlx::query(&insert);
            for column in columns {
                query = query.bind(column);
            }
            query.execute(&mut *write).await?;
        }
        (&mut *read).execute("CLOSE memories").await?;
        read.commit().await?;
        write.commit().await?;
    }
    Ok(())
}
