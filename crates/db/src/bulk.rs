//! Bulk inserts: `COPY … FROM STDIN` on PostgreSQL, multi-row `INSERT`s
//! chunked under the placeholder and packet limits elsewhere, all rows or none.
//! Inside the host's transaction on PostgreSQL, consecutive calls into one
//! table stream into one open `COPY` (`stream.rs`).

use super::backend::{self, Bound};
use super::{
    Connection, DbError, Dialect, INSERT_MAX_BYTES, INSERT_MAX_ROWS, MYSQL_MAX_PARAMS,
    SQLITE_MAX_PARAMS, mysql, run_to_end, sqlite,
};
use migrun_types::value::Value;

impl Connection {
    /// Inserts `rows` into `table` (`table` or `schema.table`) on the dialect's
    /// fastest path and returns the number of rows inserted: `COPY … FROM STDIN`
    /// on PostgreSQL, multi-row `INSERT`s elsewhere (chunked under the
    /// placeholder limits, inside a transaction or savepoint when there is
    /// more than one, so the call inserts all rows or none).
    ///
    /// On PostgreSQL inside the host's transaction the rows go into a `COPY`
    /// stream that later calls into the same table and columns share, and the
    /// number returned is the rows *accepted into the stream*: the server's
    /// verdict on them comes when the stream ends (the next other call on this
    /// connection, or [`Connection::finish_bulk_insert`] at the unit's end), as
    /// an error naming the batch (`stream.rs`).
    pub async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        let streams = self.dialect == Dialect::Postgres && self.in_transaction;
        if streams {
            // A failure of the open stream reaches the plugin once, here or elsewhere.
            self.refuse_after_escape()?;
            self.report_stream_failure()?;
        } else {
            self.settle_for_plugin().await?;
            self.idle()?;
            self.before_plugin_statement().await?;
        }
        if let Some(active) = &self.dry_run {
            active.guard_table(&self.name, table)?;
        }
        let table_sql = self.dialect.quote_table(table)?;
        if columns.is_empty() {
            return Err(DbError::usage("bulk_insert needs at least one column"));
        }
        let column_sql = columns
            .iter()
            .map(|c| self.dialect.quote_identifier(c))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ");
        if let Some((i, row)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != columns.len())
        {
            return Err(DbError::usage(format!(
                "row {i} has {} values but {} columns were given",
                row.len(),
                columns.len()
            )));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        if streams {
            return self
                .stream_insert(table, &table_sql, &column_sql, columns, rows)
                .await
                .map_err(|e| self.explain(e));
        }
        self.send_pending_begin().await?;
        let result = if self.dialect == Dialect::Postgres {
            let wrapped = self.wrap_begin().await?;
            let result = self
                .idle()?
                .copy_in(&table_sql, &column_sql, columns, rows)
                .await;
            self.wrap_end(wrapped, result.is_ok()).await;
            result
        } else {
            self.insert_chunks(&table_sql, &column_sql, columns, rows)
                .await
        };
        result.map_err(|e| self.explain(e))
    }

    /// Multi-row `INSERT`s for MySQL and SQLite, all-or-nothing across chunks.
    pub(super) async fn insert_chunks(
        &mut self,
        table_sql: &str,
        column_sql: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        let width = columns.len();
        self.write_chunks("migrun_bulk_insert", columns, rows, |n| {
            insert_sql(table_sql, column_sql, width, n)
        })
        .await
    }

    /// Runs `rows` in chunks under the dialect's placeholder and byte limits (MySQL and
    /// SQLite), each chunk one statement `sql_for(rows in the chunk)` whose parameters are
    /// the chunk's values row after row; all chunks or none: several run in a transaction,
    /// or a savepoint named `savepoint` inside the host's. Returns the rows affected.
    /// `columns` names each row's values, for the error about a value the dialect cannot take.
    pub(super) async fn write_chunks(
        &mut self,
        savepoint: &str,
        columns: &[String],
        rows: &[Vec<Value>],
        sql_for: impl Fn(usize) -> String,
    ) -> Result<u64, DbError> {
        let width = columns.len().max(1);
        let max_params = if self.dialect == Dialect::Sqlite {
            SQLITE_MAX_PARAMS
        } else {
            MYSQL_MAX_PARAMS
        };
        let max_rows = (max_params / width).clamp(1, INSERT_MAX_ROWS);
        let chunks = chunk_rows(rows, max_rows, INSERT_MAX_BYTES);
        // One statement is atomic by itself; several need a transaction (or a
        // savepoint inside the host's transaction).
        let (open, commit, undo) = match (chunks.len() > 1, self.in_transaction) {
            (false, _) => (None, None, None),
            (true, true) => (
                Some(format!("SAVEPOINT {savepoint}")),
                Some(format!("RELEASE SAVEPOINT {savepoint}")),
                Some(format!("ROLLBACK TO SAVEPOINT {savepoint}")),
            ),
            (true, false) => (
                Some(self.begin_sql().to_owned()),
                Some("COMMIT".to_owned()),
                Some("ROLLBACK".to_owned()),
            ),
        };
        let dialect = self.dialect;
        let in_transaction = self.in_transaction;
        let backend = self.idle()?;
        backend.check_schema().await?;
        if let Some(sql) = &open {
            backend.simple(sql).await?;
        }
        let mut written = 0u64;
        let mut failure = None;
        let mut first_row = 0;
        for chunk in &chunks {
            let sql = sql_for(chunk.len());
            // Names the row and column of a value the dialect cannot take.
            let at = |i: usize, j: usize, e: sqlx::error::BoxDynError| {
                DbError::value(format!(
                    "row {}, column `{}`: {e}",
                    first_row + i,
                    columns.get(j).map_or("?", String::as_str)
                ))
            };
            let outcome = async {
                let args = match dialect {
                    Dialect::MySql => {
                        let mut args = sqlx::mysql::MySqlArguments::default();
                        for (i, row) in chunk.iter().enumerate() {
                            for (j, value) in row.iter().enumerate() {
                                mysql::add(&mut args, value).map_err(|e| at(i, j, e))?;
                            }
                        }
                        backend::Args::MySql(args)
                    }
                    _ => {
                        let mut args = sqlx::sqlite::SqliteArguments::default();
                        for (i, row) in chunk.iter().enumerate() {
                            for (j, value) in row.iter().enumerate() {
                                sqlite::add(&mut args, value).map_err(|e| at(i, j, e))?;
                            }
                        }
                        backend::Args::Sqlite(args)
                    }
                };
                let outcome = run_to_end(backend, Bound { sql, args }, None).await?;
                Ok::<u64, DbError>(outcome.affected)
            }
            .await;
            first_row += chunk.len();
            match outcome {
                Ok(n) => written += n,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        match failure {
            None => {
                if let Some(sql) = &commit {
                    backend.simple(sql).await?;
                }
                Ok(written)
            }
            Some(e) => {
                if let Some(sql) = &undo {
                    let _ = backend.simple(sql).await;
                    if in_transaction {
                        let _ = backend
                            .simple(&format!("RELEASE SAVEPOINT {savepoint}"))
                            .await;
                    }
                }
                Err(e)
            }
        }
    }
}

/// Splits `rows` into chunks of at most `max_rows` rows and about `max_bytes`
/// of value data (a single larger row still gets a chunk of its own).
pub(super) fn chunk_rows(
    rows: &[Vec<Value>],
    max_rows: usize,
    max_bytes: usize,
) -> Vec<&[Vec<Value>]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, row) in rows.iter().enumerate() {
        let size: usize = row.iter().map(backend::value_size).sum();
        if i > start && (i - start >= max_rows || bytes + size > max_bytes) {
            chunks.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

/// `INSERT INTO t (a, b) VALUES (?, ?), (?, ?)` for `rows` rows of `width` values.
pub(super) fn insert_sql(table_sql: &str, column_sql: &str, width: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    let mut sql =
        String::with_capacity(32 + table_sql.len() + column_sql.len() + rows * (row.len() + 2));
    sql.push_str("INSERT INTO ");
    sql.push_str(table_sql);
    sql.push_str(" (");
    sql.push_str(column_sql);
    sql.push_str(") VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_rows_and_bytes() {
        let rows: Vec<Vec<Value>> = (0..10).map(|i| vec![Value::Int(i)]).collect();
        let sizes: Vec<usize> = chunk_rows(&rows, 3, usize::MAX)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        let big: Vec<Vec<Value>> = (0..4).map(|_| vec![Value::Bytes(vec![0; 100])]).collect();
        let sizes: Vec<usize> = chunk_rows(&big, 100, 150).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1, 1, 1, 1]);
        assert!(chunk_rows(&[], 3, 10).is_empty());
        assert_eq!(
            insert_sql("`t`", "`a`, `b`", 2, 2),
            "INSERT INTO `t` (`a`, `b`) VALUES (?, ?), (?, ?)"
        );
    }
}
