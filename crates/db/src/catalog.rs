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
use super::{Connection, DbError};
use crate::driver_for;

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
