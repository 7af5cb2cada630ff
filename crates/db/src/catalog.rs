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
//!
//! Each dialect's lookup is its `catalog.rs` ([`super::driver::CatalogSql`]).

use serde::Serialize;

use super::dry_run::int;
use super::{Connection, DbError, Dialect};
use crate::driver_for;
use migrun_types::value::Value;

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
        driver_for(self.dialect).table_rows(self, table).await
    }

    /// [`Connection::table_rows`] without saying whether it is exact.
    pub async fn table_row_count(&mut self, table: &str) -> Result<Option<u64>, DbError> {
        Ok(self.table_rows(table).await?.map(|c| c.rows))
    }

    /// What else in the schema names column `column` of `table`, for the lint's warning on
    /// dropping it (seed 003's "remove a column the application still reads"): views that
    /// depend on it (PostgreSQL: by the dependency catalog; MariaDB and SQLite: views whose
    /// definition names it), indexes that cover it and triggers that name it, each as
    /// `view x` / `index y` / `trigger z`. Host-issued, like [`Connection::table_rows`].
    pub async fn column_dependants(
        &mut self,
        table: &str,
        column: &str,
    ) -> Result<Vec<String>, DbError> {
        let params = [
            Value::Text(table.to_owned()),
            Value::Text(column.to_owned()),
        ];
        let sql = match self.dialect {
            Dialect::Postgres => {
                "SELECT DISTINCT 'view ' || v.oid::regclass::text FROM pg_attribute a \
                 JOIN pg_depend d ON d.refobjid = a.attrelid AND d.refobjsubid = a.attnum \
                 JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
                 WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND v.oid <> a.attrelid \
                 UNION SELECT 'index ' || i.indexrelid::regclass::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = to_regclass($1) AND a.attname = $2 \
                 UNION SELECT 'trigger ' || t.tgname::text FROM pg_trigger t \
                 JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = ANY(t.tgattr) \
                 WHERE NOT t.tgisinternal AND t.tgrelid = to_regclass($1) AND a.attname = $2 \
                 ORDER BY 1"
            }
            Dialect::MySql => {
                "SELECT DISTINCT CONCAT('index ', INDEX_NAME) FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ? \
                 UNION SELECT CONCAT('view ', TABLE_NAME) FROM information_schema.VIEWS \
                 WHERE TABLE_SCHEMA = DATABASE() AND VIEW_DEFINITION LIKE CONCAT('%`', ?, '`.`', ?, '`%') \
                 UNION SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS \
                 WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ? \
                 AND ACTION_STATEMENT LIKE CONCAT('%', ?, '%') ORDER BY 1"
            }
            Dialect::Sqlite => {
                "SELECT 'index ' || il.name FROM pragma_index_list(?1) il \
                 JOIN pragma_index_info(il.name) ii WHERE ii.name = ?2 COLLATE NOCASE AND il.origin = 'c' \
                 UNION SELECT 'view ' || name FROM sqlite_master WHERE type = 'view' \
                 AND sql LIKE '%' || ?1 || '%' AND sql LIKE '%' || ?2 || '%' \
                 UNION SELECT 'trigger ' || name FROM sqlite_master WHERE type = 'trigger' \
                 AND tbl_name = ?1 AND sql LIKE '%' || ?2 || '%' ORDER BY 1"
            }
        };
        let params: Vec<Value> = match self.dialect {
            Dialect::MySql => [&params[..], &params[..], &params[..]].concat(),
            _ => params.to_vec(),
        };
        let rows = self.host_query(sql, &params).await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.first().and_then(super::dry_run::text))
            .collect())
    }

    /// `SELECT COUNT(*)` of an already quoted table name.
    pub(super) async fn exact_count(&mut self, quoted: &str) -> Result<RowCount, DbError> {
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
