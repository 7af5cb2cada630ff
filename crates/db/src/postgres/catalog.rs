//! PostgreSQL catalog lookups: a table's rows, counted when its relation and
//! partitions hold at most `EXACT_COUNT_MAX_BYTES`, else the planner's estimate
//! (`EXPLAIN`, which scales `pg_class.reltuples` to the table's current size).

use futures::future::BoxFuture;

use super::PgDriver;
use crate::catalog::EXACT_COUNT_MAX_BYTES;
use crate::driver::CatalogSql;
use crate::dry_run::{int, text};
use crate::{Connection, DbError, Dialect, RowCount};
use migrun_types::value::Value;

impl CatalogSql for PgDriver {
    fn table_rows<'a>(
        &'a self,
        conn: &'a mut Connection,
        table: &'a str,
    ) -> BoxFuture<'a, Result<Option<RowCount>, DbError>> {
        Box::pin(table_rows(conn, table))
    }
}

async fn table_rows(conn: &mut Connection, table: &str) -> Result<Option<RowCount>, DbError> {
    let Ok(quoted) = Dialect::Postgres.quote_table(table) else {
        return Ok(None);
    };
    // A partitioned table's data lives in its partitions.
    let rows = conn
        .host_query(
            "SELECT c.relkind::text, \
                    pg_relation_size(c.oid) + coalesce((SELECT sum(pg_relation_size(i.inhrelid)) \
                        FROM pg_inherits i WHERE i.inhparent = c.oid), 0)::int8 \
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[Value::Text(quoted.clone())],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let kind = row.first().and_then(text).unwrap_or_default();
    if !matches!(kind.as_str(), "r" | "p" | "m") {
        return Ok(None);
    }
    let bytes = row.get(1).and_then(int).unwrap_or(0);
    if bytes <= EXACT_COUNT_MAX_BYTES {
        return conn.exact_count(&quoted).await.map(Some);
    }
    let plan = conn
        .host_query(
            &format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {quoted}"),
            &[],
        )
        .await?;
    let estimate = plan
        .first()
        .and_then(|r| r.first())
        .and_then(|v| match v {
            Value::Json(s) | Value::Text(s) => serde_json::from_str::<serde_json::Value>(s).ok(),
            _ => None,
        })
        .and_then(|json| json.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64())
        .unwrap_or(0.0);
    Ok(Some(RowCount {
        rows: estimate.max(0.0) as u64,
        exact: false,
    }))
}
