//! SQLite catalog lookups: a table's rows, always counted (`COUNT(*)`), the
//! name matched as SQLite does (case-insensitively) in the schema's `sqlite_master`.

use futures::future::BoxFuture;

use super::SqliteDriver;
use crate::driver::CatalogSql;
use crate::dry_run::text;
use crate::{Connection, DbError, Dialect, RowCount};
use migrun_types::value::Value;

impl CatalogSql for SqliteDriver {
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
        Some((schema, name)) => (schema, name),
        None => ("main", table),
    };
    let Ok(master) = Dialect::Sqlite
        .quote_identifier(schema)
        .map(|s| format!("{s}.sqlite_master"))
    else {
        return Ok(None);
    };
    let found = conn
        .host_query(
            &format!("SELECT name FROM {master} WHERE type = 'table' AND name = ?1 COLLATE NOCASE"),
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
    conn.exact_count(&quoted).await.map(Some)
}
