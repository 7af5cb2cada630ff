//! MySQL/MariaDB catalog lookups: a table's rows, counted when it holds at most
//! `EXACT_COUNT_MAX_BYTES`, else `information_schema.TABLES.TABLE_ROWS`; a table
//! a scratch dry-run reads through a view is counted in the real database.

use futures::future::BoxFuture;

use super::MySqlDriver;
use crate::catalog::EXACT_COUNT_MAX_BYTES;
use crate::driver::CatalogSql;
use crate::dry_run::{int, text};
use crate::{Connection, DbError, Dialect, RowCount};
use migrun_types::value::Value;

impl CatalogSql for MySqlDriver {
    fn table_rows<'a>(
        &'a self,
        conn: &'a mut Connection,
        table: &'a str,
    ) -> BoxFuture<'a, Result<Option<RowCount>, DbError>> {
        Box::pin(table_rows(conn, table))
    }
}

async fn table_rows(conn: &mut Connection, table: &str) -> Result<Option<RowCount>, DbError> {
    let (schema, name) = match table.split_once('.') {
        Some((schema, name)) => (Some(schema.to_owned()), name.to_owned()),
        // A table a scratch dry-run reads through a view of the real one: count the real one.
        None => (
            conn.scratch()
                .and_then(|s| s.reads_through(table))
                .map(str::to_owned),
            table.to_owned(),
        ),
    };
    let rows = conn
        .host_query(
            "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_TYPE AS CHAR), TABLE_ROWS, DATA_LENGTH \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
            &[schema.map_or(Value::Null, Value::Text), Value::Text(name.clone())],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let (Some(schema), Some(kind)) = (row.first().and_then(text), row.get(1).and_then(text)) else {
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
    conn.exact_count(&quoted).await.map(Some)
}
