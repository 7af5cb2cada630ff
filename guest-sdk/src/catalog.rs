//! What the database's catalog says about tables, columns and indexes, asked the same way
//! on every dialect: `sqlite_master` and `pragma_table_info` on SQLite,
//! `information_schema` and `pg_indexes` on PostgreSQL, `information_schema` on MySQL and
//! MariaDB. A plugin whose steps must be safe to repeat (`expand` after a crash, a
//! non-transactional index build) asks these before it changes the schema.
//!
//! A table name may be qualified (`auth.users` on PostgreSQL, `app.users` on MySQL);
//! unqualified, it is looked up in the connection's current schema (PostgreSQL
//! `current_schema()`) or database (MySQL `DATABASE()`).

use serde::Deserialize;

use crate::{Connection, Dialect, Result, Value};

/// A column as the catalog reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ColumnInfo {
    /// The column's name, as the catalog spells it.
    pub name: String,
    /// The declared type (`integer`, `character varying`, `varchar(255)`, `TEXT`…).
    pub data_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

impl Connection {
    /// Whether `table` exists (a table or a view).
    pub fn table_exists(&self, table: &str) -> Result<bool> {
        let (sql, params) = match self.dialect() {
            Dialect::Sqlite => (
                "SELECT COUNT(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1"
                    .to_owned(),
                vec![Value::from(table)],
            ),
            dialect => {
                let (schema, name) = split_table(table);
                (
                    format!(
                        "SELECT COUNT(*) FROM information_schema.tables \
                         WHERE {} = {} AND {} = {}",
                        text_column(dialect, "table_schema"),
                        schema_of(dialect),
                        text_column(dialect, "table_name"),
                        dialect.placeholder(2)
                    ),
                    vec![schema, Value::from(name)],
                )
            }
        };
        Ok(self.query_scalar::<i64>(&sql, params)? > 0)
    }

    /// The columns of `table` in their order; empty when the table does not exist.
    pub fn columns_of(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        let (sql, params) = match self.dialect() {
            Dialect::Sqlite => (
                "SELECT name, type AS data_type, \"notnull\" = 0 AS nullable \
                 FROM pragma_table_info(?1) ORDER BY cid"
                    .to_owned(),
                vec![Value::from(table)],
            ),
            Dialect::Postgres => {
                let (schema, name) = split_table(table);
                (
                    format!(
                        "SELECT column_name::text AS name, data_type::text AS data_type, \
                         is_nullable = 'YES' AS nullable FROM information_schema.columns \
                         WHERE table_schema::text = {} AND table_name::text = $2 ORDER BY ordinal_position",
                        schema_of(Dialect::Postgres)
                    ),
                    vec![schema, Value::from(name)],
                )
            }
            Dialect::MySql => {
                let (schema, name) = split_table(table);
                (
                    format!(
                        "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS data_type, \
                         IS_NULLABLE = 'YES' AS nullable FROM information_schema.columns \
                         WHERE table_schema = {} AND table_name = ? ORDER BY ORDINAL_POSITION",
                        schema_of(Dialect::MySql)
                    ),
                    vec![schema, Value::from(name)],
                )
            }
        };
        self.query(&sql, params)?
            .iter()
            .map(|row| {
                Ok(ColumnInfo {
                    name: row.get("name")?,
                    data_type: row.get("data_type")?,
                    // A boolean on PostgreSQL, 0/1 on SQLite and MySQL.
                    nullable: matches!(
                        row.value("nullable"),
                        Some(Value::Bool(true) | Value::Int(1))
                    ),
                })
            })
            .collect()
    }

    /// Whether `table` has a column called `column` (compared case-insensitively, as
    /// unquoted SQL identifiers are).
    pub fn column_exists(&self, table: &str, column: &str) -> Result<bool> {
        Ok(self
            .columns_of(table)?
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(column)))
    }

    /// Whether an index called `index` exists on `table`.
    pub fn index_exists(&self, table: &str, index: &str) -> Result<bool> {
        let (sql, params) = match self.dialect() {
            Dialect::Sqlite => (
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND name = ?2"
                    .to_owned(),
                vec![Value::from(table), Value::from(index)],
            ),
            Dialect::Postgres => {
                let (schema, name) = split_table(table);
                (
                    format!(
                        "SELECT COUNT(*) FROM pg_indexes \
                         WHERE schemaname::text = {} AND tablename::text = $2 AND indexname::text = $3",
                        schema_of(Dialect::Postgres)
                    ),
                    vec![schema, Value::from(name), Value::from(index)],
                )
            }
            Dialect::MySql => {
                let (schema, name) = split_table(table);
                (
                    format!(
                        "SELECT COUNT(*) FROM information_schema.statistics \
                         WHERE table_schema = {} AND table_name = ? AND index_name = ?",
                        schema_of(Dialect::MySql)
                    ),
                    vec![schema, Value::from(name), Value::from(index)],
                )
            }
        };
        Ok(self.query_scalar::<i64>(&sql, params)? > 0)
    }
}

/// The schema (a text parameter, NULL when unqualified) and the bare name of `table`.
fn split_table(table: &str) -> (Value, &str) {
    match table.split_once('.') {
        Some((schema, name)) => (Value::from(schema), name),
        None => (Value::Null, table),
    }
}

/// The SQL for "the given schema, or the current one": the schema is parameter 1.
fn schema_of(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "COALESCE($1::text, current_schema())",
        _ => "COALESCE(?, DATABASE())",
    }
}

/// A catalog column compared as text (PostgreSQL's catalog columns are `name` or
/// `sql_identifier`, which a text parameter does not compare with directly).
fn text_column(dialect: Dialect, column: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("{column}::text"),
        _ => column.to_owned(),
    }
}
