//! What the host reads from the catalog about a plugin's tables: row counts,
//! for the lint's warnings and the plan.
//!
//! A count must be cheap even for a table of a billion rows, so above
//! [`EXACT_COUNT_MAX_BYTES`] of data it is the database's own estimate:
//! the planner's on PostgreSQL (`EXPLAIN`, which scales `pg_class.reltuples`
//! to the table's current size and copes with tables never analysed),
//! `information_schema.TABLES.TABLE_ROWS` on MySQL/MariaDB. Below it, and
//! always on SQLite, `COUNT(*)`. Inside a transaction the count sees the
//! transaction's own writes (the dry-run's, when the lint asks mid-run).

use serde::Serialize;

use super::dry_run::{int, text};
use super::{Connection, DbError, Dialect};
use crate::value::Value;

/// Tables with at most this much data are counted exactly.
pub const EXACT_COUNT_MAX_BYTES: i64 = 64 << 20;

/// A table's number of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RowCount {
    /// The rows.
    pub rows: u64,
    /// Whether `rows` was counted (`false`: the database's estimate).
    pub exact: bool,
}

impl Connection {
    /// The number of rows of `table` (`table` or `schema.table`, spelled as
    /// the catalog stores it, unquoted): exact for small tables, estimated
    /// for big ones (see the module docs); `None` when there is no such table
    /// (or it is a view). Host-issued: no guard applies, and on PostgreSQL a
    /// failure inside a transaction does not abort it.
    pub async fn table_rows(&mut self, table: &str) -> Result<Option<RowCount>, DbError> {
        match self.dialect {
            Dialect::Postgres => self.postgres_rows(table).await,
            Dialect::MySql => self.mysql_rows(table).await,
            Dialect::Sqlite => self.sqlite_rows(table).await,
        }
    }

    /// [`Connection::table_rows`] without saying whether it is exact.
    pub async fn table_row_count(&mut self, table: &str) -> Result<Option<u64>, DbError> {
        Ok(self.table_rows(table).await?.map(|c| c.rows))
    }

    async fn postgres_rows(&mut self, table: &str) -> Result<Option<RowCount>, DbError> {
        let Ok(quoted) = Dialect::Postgres.quote_table(table) else {
            return Ok(None);
        };
        // A partitioned table's data lives in its partitions.
        let rows = self
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
            return self.exact_count(&quoted).await.map(Some);
        }
        let plan = self
            .host_query(
                &format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {quoted}"),
                &[],
            )
            .await?;
        let estimate = plan
            .first()
            .and_then(|r| r.first())
            .and_then(|v| match v {
                Value::Json(s) | Value::Text(s) => {
                    serde_json::from_str::<serde_json::Value>(s).ok()
                }
                _ => None,
            })
            .and_then(|json| json.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64())
            .unwrap_or(0.0);
        Ok(Some(RowCount {
            rows: estimate.max(0.0) as u64,
            exact: false,
        }))
    }

    async fn mysql_rows(&mut self, table: &str) -> Result<Option<RowCount>, DbError> {
        let (schema, name) = match table.split_once('.') {
            Some((schema, name)) => (Some(schema.to_owned()), name.to_owned()),
            // A table a scratch dry-run reads through a view of the real one: count the real one.
            None => (
                self.scratch()
                    .and_then(|s| s.reads_through(table))
                    .map(str::to_owned),
                table.to_owned(),
            ),
        };
        let rows = self
            .host_query(
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_TYPE AS CHAR), TABLE_ROWS, DATA_LENGTH \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
                &[schema.map_or(Value::Null, Value::Text), Value::Text(name.clone())],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let (Some(schema), Some(kind)) = (row.first().and_then(text), row.get(1).and_then(text))
        else {
            return Ok(None);
        };
        if kind == "VIEW" {
            return Ok(None);
        }
        let bytes = row.get(3).and_then(int).unwrap_or(0);
        if bytes > EXACT_COUNT_MAX_BYTES {
            return Ok(Some(RowCount {
                rows: row.get(2).and_then(int).unwrap_or(0).max(0) as u64,
                exact: false,
            }));
        }
        let quoted = format!(
            "{}.{}",
            Dialect::MySql.quote_identifier(&schema)?,
            Dialect::MySql.quote_identifier(&name)?
        );
        self.exact_count(&quoted).await.map(Some)
    }

    async fn sqlite_rows(&mut self, table: &str) -> Result<Option<RowCount>, DbError> {
        let (schema, name) = match table.split_once('.') {
            Some((schema, name)) => (schema, name),
            None => ("main", table),
        };
        let Ok(master) = Dialect::Sqlite
            .quote_identifier(schema)
            .map(|s| format!("{s}.sqlite_master"))
        else {
            return Ok(None);
        };
        let found = self
            .host_query(
                &format!(
                    "SELECT name FROM {master} WHERE type = 'table' AND name = ?1 COLLATE NOCASE"
                ),
                &[Value::Text(name.to_owned())],
            )
            .await?;
        let Some(stored) = found.first().and_then(|r| r.first()).and_then(text) else {
            return Ok(None);
        };
        let quoted = format!(
            "{}.{}",
            Dialect::Sqlite.quote_identifier(schema)?,
            Dialect::Sqlite.quote_identifier(&stored)?
        );
        self.exact_count(&quoted).await.map(Some)
    }

    async fn exact_count(&mut self, quoted: &str) -> Result<RowCount, DbError> {
        let rows = self
            .host_query(&format!("SELECT COUNT(*) FROM {quoted}"), &[])
            .await?;
        Ok(RowCount {
            rows: rows
                .first()
                .and_then(|r| r.first())
                .and_then(int)
                .unwrap_or(0)
                .max(0) as u64,
            exact: true,
        })
    }
}
