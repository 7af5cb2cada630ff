//! Structured writes by key (contract 0.2.0): `bulk-update`, `bulk-upsert` and
//! `bulk-delete`, each turned into the dialect's fastest native form, all rows or none.
//!
//! | dialect | update | upsert | delete |
//! |---|---|---|---|
//! | PostgreSQL | `COPY` (binary where exact, as a bulk insert) into a temporary table, then one `UPDATE … FROM` it | the same `COPY`, then one `INSERT … SELECT … ON CONFLICT (keys) DO UPDATE` | the same `COPY`, then one `DELETE … USING` it |
//! | MySQL/MariaDB | per chunk, `UPDATE t JOIN (SELECT ? AS k, ? AS c UNION ALL SELECT ?, ? …) s ON keys SET …` | per chunk, multi-row `INSERT … ON DUPLICATE KEY UPDATE c = VALUES(c)` | per chunk, `DELETE … WHERE (keys) IN ((?, ?), …)` |
//! | SQLite | per chunk, `UPDATE … FROM (VALUES (?, ?), …)` | per chunk, multi-row `INSERT … ON CONFLICT (keys) DO UPDATE SET c = excluded.c` | per chunk, `DELETE … WHERE (keys) IN (VALUES (?, ?), …)` |
//!
//! Chunks stay under the placeholder and byte limits of a bulk insert (`bulk.rs`).
//!
//! Invariants:
//!
//! - A call writes all its rows or none: PostgreSQL's steps run in a savepoint inside the
//!   host's transaction (so a failure also leaves the transaction usable, as on the other
//!   dialects), several chunks in a savepoint elsewhere; outside a host transaction in a
//!   transaction of their own.
//! - The same guards as a bulk insert: a read-only connection (or the read-only phase of
//!   `list-units`) refuses them before anything is sent, and so would its session; a
//!   MySQL dry-run confines them to its scratch database (`guard_table`), where an
//!   undeclared table is a view the server refuses to write through.
//! - The count answered is the rows the call matched: updated (matched, also when the
//!   values were already those), upserted (inserted or updated: one per row given,
//!   also on MariaDB, which itself counts an updated row twice) or deleted.
//! - Keys are distinct within an update or upsert (a `usage` error otherwise, before
//!   anything is sent): which of two rows for one key wins would depend on the dialect.
//!   A key holding NULL matches no row (SQL's `=`); an upsert then inserts the row.

use std::collections::HashMap;

use super::{Access, Connection, DbError, DbErrorKind, Dialect};
use migrun_types::BulkWriteKind;
use migrun_types::value::Value;

/// The temporary table a PostgreSQL structured write stages its rows in (dropped at the
/// end of the call, and `ON COMMIT DROP` in any case).
const PG_STAGING: &str = "migrun_bulk_write";
/// The same, qualified so that no table of the plugin's `search_path` can stand in for it.
const PG_STAGING_QUALIFIED: &str = "pg_temp.migrun_bulk_write";
/// The savepoint around one structured write inside the host's transaction.
const SAVEPOINT: &str = "migrun_bulk_write";

impl Connection {
    /// Writes `rows` into `table` (`table` or `schema.table`) by key and returns the rows
    /// matched (see the module docs): each row holds its values of `keys`, then its values
    /// of `columns` (none for [`BulkWriteKind::Delete`]).
    ///
    /// `Update` sets `columns` of the rows whose key matches; `Upsert` inserts each row, or
    /// sets `columns` where its key exists (the keys must have a unique index or primary
    /// key); `Delete` deletes the rows whose key matches.
    pub async fn bulk_write(
        &mut self,
        kind: BulkWriteKind,
        table: &str,
        keys: &[String],
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        self.settle_for_plugin().await?;
        self.idle()?;
        self.before_plugin_statement().await?;
        if self.effective_access() == Access::ReadOnly {
            return Err(DbError::new(
                DbErrorKind::ReadOnly,
                format!(
                    "{} into `{table}` refused: connection `{}` is read-only{}; nothing was written",
                    kind.call_name(),
                    self.name,
                    if self.access == Access::ReadWrite {
                        " while the plugin's units are listed"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if let Some(active) = &self.dry_run {
            active.guard_table(&self.name, table)?;
        }
        let shape = WriteShape::new(self.dialect, kind, table, keys, columns)?;
        check_rows(kind, keys, columns, rows)?;
        if rows.is_empty() {
            return Ok(0);
        }
        self.send_pending_begin().await?;
        let result = match self.dialect {
            Dialect::Postgres => self.staged_write(&shape, keys, columns, rows).await,
            Dialect::MySql | Dialect::Sqlite => {
                let names: Vec<String> = keys.iter().chain(columns).cloned().collect();
                let written = self
                    .write_chunks(SAVEPOINT, &names, rows, |n| shape.chunk_sql(n))
                    .await;
                match (self.dialect, kind, written) {
                    // MariaDB counts an updated row twice (and a row left as it was once):
                    // every row given was inserted or updated exactly once.
                    (Dialect::MySql, BulkWriteKind::Upsert, Ok(_)) => Ok(rows.len() as u64),
                    (_, _, written) => written,
                }
            }
        };
        result.map_err(|e| self.explain(e))
    }

    /// PostgreSQL: `COPY` into a temporary table shaped like the target's columns (so the
    /// binary format applies where a bulk insert's would), one statement from it, the
    /// table dropped; all in a savepoint (or a transaction of its own).
    async fn staged_write(
        &mut self,
        shape: &WriteShape,
        keys: &[String],
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        let in_transaction = self.in_transaction;
        let (open, done, undo) = if in_transaction {
            (
                format!("SAVEPOINT {SAVEPOINT}"),
                format!("RELEASE SAVEPOINT {SAVEPOINT}"),
                format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
            )
        } else {
            (
                "BEGIN".to_owned(),
                "COMMIT".to_owned(),
                "ROLLBACK".to_owned(),
            )
        };
        let names: Vec<String> = keys.iter().chain(columns).cloned().collect();
        let column_sql = shape.all_columns().join(", ");
        let backend = self.idle()?;
        backend.simple(&open).await?;
        let result = async {
            backend
                .simple(&format!(
                    "CREATE TEMPORARY TABLE {PG_STAGING} ON COMMIT DROP AS SELECT {column_sql} FROM {} WITH NO DATA",
                    shape.table
                ))
                .await?;
            backend
                .copy_in(PG_STAGING_QUALIFIED, &column_sql, &names, rows)
                .await?;
            let n = backend.simple_count(&shape.staged_sql()).await?;
            backend
                .simple(&format!("DROP TABLE {PG_STAGING_QUALIFIED}"))
                .await?;
            Ok::<u64, DbError>(n)
        }
        .await;
        match result {
            Ok(n) => {
                backend.simple(&done).await?;
                Ok(n)
            }
            Err(e) => {
                let _ = backend.simple(&undo).await;
                if in_transaction {
                    let _ = backend
                        .simple(&format!("RELEASE SAVEPOINT {SAVEPOINT}"))
                        .await;
                }
                Err(e)
            }
        }
    }
}

/// A structured write's names, checked and quoted for its dialect.
struct WriteShape {
    dialect: Dialect,
    kind: BulkWriteKind,
    table: String,
    keys: Vec<String>,
    columns: Vec<String>,
}

impl WriteShape {
    /// Checks the names (keys given, columns given unless a delete, none twice) and quotes them.
    fn new(
        dialect: Dialect,
        kind: BulkWriteKind,
        table: &str,
        keys: &[String],
        columns: &[String],
    ) -> Result<WriteShape, DbError> {
        let what = kind.call_name();
        if keys.is_empty() {
            return Err(DbError::usage(format!(
                "{what} into `{table}` needs at least one key column; nothing was written"
            )));
        }
        match kind {
            BulkWriteKind::Update | BulkWriteKind::Upsert if columns.is_empty() => {
                return Err(DbError::usage(format!(
                    "{what} into `{table}` needs at least one column to set besides the keys; \
                     nothing was written"
                )));
            }
            BulkWriteKind::Delete if !columns.is_empty() => {
                return Err(DbError::usage(format!(
                    "{what} from `{table}` takes keys only; nothing was written"
                )));
            }
            _ => {}
        }
        let names: Vec<&String> = keys.iter().chain(columns).collect();
        for (i, a) in names.iter().enumerate() {
            let same = |b: &&String| match dialect {
                Dialect::Postgres => a == b,
                Dialect::MySql | Dialect::Sqlite => a.eq_ignore_ascii_case(b),
            };
            if names[..i].iter().any(same) {
                return Err(DbError::usage(format!(
                    "{what} into `{table}` names the column `{a}` twice (keys: {}; columns: {}); \
                     a key column is never also set; nothing was written",
                    keys.join(", "),
                    columns.join(", ")
                )));
            }
        }
        let quote = |names: &[String]| {
            names
                .iter()
                .map(|n| dialect.quote_identifier(n))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(WriteShape {
            dialect,
            kind,
            table: dialect.quote_table(table)?,
            keys: quote(keys)?,
            columns: quote(columns)?,
        })
    }

    /// The quoted keys, then the quoted columns.
    fn all_columns(&self) -> Vec<String> {
        self.keys.iter().chain(&self.columns).cloned().collect()
    }

    /// `prefix.k1 = other.k1 AND …`.
    fn keys_equal(&self, left: &str, right: &str) -> String {
        self.keys
            .iter()
            .map(|k| format!("{left}.{k} = {right}.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// PostgreSQL: the one statement from the staging table.
    fn staged_sql(&self) -> String {
        let table = &self.table;
        match self.kind {
            BulkWriteKind::Update => format!(
                "UPDATE {table} AS migrun_t SET {} FROM {PG_STAGING_QUALIFIED} AS migrun_s WHERE {}",
                self.columns
                    .iter()
                    .map(|c| format!("{c} = migrun_s.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.keys_equal("migrun_t", "migrun_s"),
            ),
            BulkWriteKind::Upsert => {
                let all = self.all_columns().join(", ");
                format!(
                    "INSERT INTO {table} AS migrun_t ({all}) SELECT {all} FROM {PG_STAGING_QUALIFIED} \
                     ON CONFLICT ({}) DO UPDATE SET {}",
                    self.keys.join(", "),
                    self.columns
                        .iter()
                        .map(|c| format!("{c} = EXCLUDED.{c}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
            BulkWriteKind::Delete => format!(
                "DELETE FROM {table} AS migrun_t USING {PG_STAGING_QUALIFIED} AS migrun_s WHERE {}",
                self.keys_equal("migrun_t", "migrun_s"),
            ),
        }
    }

    /// MySQL and SQLite: one statement for a chunk of `rows` rows, whose parameters are
    /// the chunk's values row after row (keys, then columns).
    fn chunk_sql(&self, rows: usize) -> String {
        let table = &self.table;
        let width = self.keys.len() + self.columns.len();
        let tuple = format!("({})", vec!["?"; width].join(", "));
        let tuples = |prefix: &str| {
            let mut s = String::with_capacity(rows * (tuple.len() + prefix.len() + 2));
            for i in 0..rows {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(prefix);
                s.push_str(&tuple);
            }
            s
        };
        let all = self.all_columns().join(", ");
        match (self.dialect, self.kind) {
            (Dialect::MySql, BulkWriteKind::Update) => {
                // A derived table of the chunk's rows, joined to the target by key.
                let mut derived = String::from("SELECT ");
                derived.push_str(
                    &self
                        .all_columns()
                        .iter()
                        .map(|c| format!("? AS {c}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                let more = format!(" UNION ALL SELECT {}", vec!["?"; width].join(", "));
                for _ in 1..rows {
                    derived.push_str(&more);
                }
                format!(
                    "UPDATE {table} AS migrun_t JOIN ({derived}) AS migrun_s ON {} SET {}",
                    self.keys_equal("migrun_t", "migrun_s"),
                    self.columns
                        .iter()
                        .map(|c| format!("migrun_t.{c} = migrun_s.{c}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
            (_, BulkWriteKind::Update) => {
                // SQLite names a VALUES list's columns column1, column2, …
                let column_n = |i: usize| format!("migrun_s.column{}", i + 1);
                let set = self
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(j, c)| format!("{c} = {}", column_n(self.keys.len() + j)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let on = self
                    .keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| format!("{table}.{k} = {}", column_n(i)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!(
                    "UPDATE {table} SET {set} FROM (VALUES {}) AS migrun_s WHERE {on}",
                    tuples("")
                )
            }
            (Dialect::MySql, BulkWriteKind::Upsert) => format!(
                "INSERT INTO {table} ({all}) VALUES {} ON DUPLICATE KEY UPDATE {}",
                tuples(""),
                self.columns
                    .iter()
                    .map(|c| format!("{c} = VALUES({c})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (_, BulkWriteKind::Upsert) => format!(
                "INSERT INTO {table} ({all}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {}",
                tuples(""),
                self.keys.join(", "),
                self.columns
                    .iter()
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (dialect, BulkWriteKind::Delete) => {
                if self.keys.len() == 1 {
                    format!(
                        "DELETE FROM {table} WHERE {} IN ({})",
                        self.keys[0],
                        vec!["?"; rows].join(", ")
                    )
                } else if dialect == Dialect::MySql {
                    format!("DELETE FROM {table} WHERE ({all}) IN ({})", tuples(""))
                } else {
                    // SQLite compares a row value only with a subquery's rows.
                    format!(
                        "DELETE FROM {table} WHERE ({all}) IN (VALUES {})",
                        tuples("")
                    )
                }
            }
        }
    }
}

/// Every row has one value per key and column; an update's or upsert's keys are distinct.
fn check_rows(
    kind: BulkWriteKind,
    keys: &[String],
    columns: &[String],
    rows: &[Vec<Value>],
) -> Result<(), DbError> {
    let width = keys.len() + columns.len();
    if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        let layout = if columns.is_empty() {
            format!("its values of the keys ({})", keys.join(", "))
        } else {
            format!(
                "its values of the keys ({}) then of the columns ({})",
                keys.join(", "),
                columns.join(", ")
            )
        };
        return Err(DbError::usage(format!(
            "{}: row {i} has {} values but {width} were expected, {layout}; nothing was written",
            kind.call_name(),
            row.len(),
        )));
    }
    if kind == BulkWriteKind::Delete {
        return Ok(());
    }
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let key = &row[..keys.len()];
        if key.iter().any(|v| matches!(v, Value::Null)) {
            continue;
        }
        if let Some(first) = seen.insert(format!("{key:?}"), i) {
            return Err(DbError::usage(format!(
                "{}: rows {first} and {i} have the same key ({}); each key may come once per call \
                 (which one would win depends on the database); nothing was written",
                kind.call_name(),
                keys.iter()
                    .zip(key)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(dialect: Dialect, kind: BulkWriteKind, keys: &[&str], cols: &[&str]) -> WriteShape {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        WriteShape::new(dialect, kind, "orders", &s(keys), &s(cols)).unwrap()
    }

    #[test]
    fn statements_per_dialect() {
        use BulkWriteKind::*;
        assert_eq!(
            shape(Dialect::Postgres, Update, &["id"], &["amount"]).staged_sql(),
            "UPDATE \"orders\" AS migrun_t SET \"amount\" = migrun_s.\"amount\" FROM pg_temp.migrun_bulk_write \
             AS migrun_s WHERE migrun_t.\"id\" = migrun_s.\"id\""
        );
        assert_eq!(
            shape(Dialect::Postgres, Delete, &["a", "b"], &[]).staged_sql(),
            "DELETE FROM \"orders\" AS migrun_t USING pg_temp.migrun_bulk_write AS migrun_s \
             WHERE migrun_t.\"a\" = migrun_s.\"a\" AND migrun_t.\"b\" = migrun_s.\"b\""
        );
        assert_eq!(
            shape(Dialect::MySql, Update, &["id"], &["amount"]).chunk_sql(2),
            "UPDATE `orders` AS migrun_t JOIN (SELECT ? AS `id`, ? AS `amount` UNION ALL SELECT ?, ?) \
             AS migrun_s ON migrun_t.`id` = migrun_s.`id` SET migrun_t.`amount` = migrun_s.`amount`"
        );
        assert_eq!(
            shape(Dialect::Sqlite, Update, &["id"], &["amount"]).chunk_sql(2),
            "UPDATE \"orders\" SET \"amount\" = migrun_s.column2 FROM (VALUES (?, ?), (?, ?)) AS migrun_s \
             WHERE \"orders\".\"id\" = migrun_s.column1"
        );
        assert_eq!(
            shape(Dialect::MySql, Upsert, &["id"], &["amount"]).chunk_sql(1),
            "INSERT INTO `orders` (`id`, `amount`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `amount` = VALUES(`amount`)"
        );
        assert_eq!(
            shape(Dialect::Sqlite, Delete, &["a", "b"], &[]).chunk_sql(2),
            "DELETE FROM \"orders\" WHERE (\"a\", \"b\") IN (VALUES (?, ?), (?, ?))"
        );
        assert_eq!(
            shape(Dialect::MySql, Delete, &["id"], &[]).chunk_sql(3),
            "DELETE FROM `orders` WHERE `id` IN (?, ?, ?)"
        );
    }

    #[test]
    fn bad_shapes_and_rows_are_usage_errors() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let err = |r: Result<WriteShape, DbError>| r.err().expect("refused").message;
        assert!(
            err(WriteShape::new(
                Dialect::Sqlite,
                BulkWriteKind::Update,
                "t",
                &[],
                &s(&["a"])
            ))
            .contains("at least one key")
        );
        assert!(
            err(WriteShape::new(
                Dialect::Sqlite,
                BulkWriteKind::Upsert,
                "t",
                &s(&["id"]),
                &[]
            ))
            .contains("at least one column")
        );
        assert!(
            err(WriteShape::new(
                Dialect::MySql,
                BulkWriteKind::Update,
                "t",
                &s(&["id"]),
                &s(&["ID"])
            ))
            .contains("twice")
        );
        let rows = vec![
            vec![Value::Int(1), Value::Int(2)],
            vec![Value::Int(1), Value::Int(3)],
        ];
        let e = check_rows(BulkWriteKind::Update, &s(&["id"]), &s(&["a"]), &rows).unwrap_err();
        assert!(
            e.message.contains("rows 0 and 1 have the same key (id=1)"),
            "{e}"
        );
        assert!(check_rows(BulkWriteKind::Delete, &s(&["id", "a"]), &[], &rows).is_ok());
        let e = check_rows(BulkWriteKind::Delete, &s(&["id"]), &[], &rows).unwrap_err();
        assert!(
            e.message.contains("row 0 has 2 values but 1 were expected"),
            "{e}"
        );
        let nulls = vec![
            vec![Value::Null, Value::Int(2)],
            vec![Value::Null, Value::Int(3)],
        ];
        assert!(check_rows(BulkWriteKind::Upsert, &s(&["id"]), &s(&["a"]), &nulls).is_ok());
    }
}
