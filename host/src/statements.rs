//! SQL the operator types, run on one configured connection: `migrun sql`.
//!
//! It exists so that a plugin's own tests (`cargo test`, pytest, `node --test`, through each
//! SDK's testing library) and an operator at a shell can set up and inspect the databases a
//! run uses with the same connection settings the run reads — the `migrun.toml`, `--db`
//! overrides, or the embedded SQLite file `migrun-data/<name>.sqlite` — without a database
//! client of their own.
//!
//! Invariant: the statements run in order in ONE transaction; it is committed only when every
//! statement succeeded, otherwise rolled back, so a failing statement leaves the database as it
//! was — except where the server itself commits: MariaDB/MySQL commit before every DDL
//! statement, so DDL that ran before the failing statement stays there. Nothing here goes through the plugin sandbox or the journal: this is the operator's
//! own access (the connection is opened read-write whatever the config's `access` says, which
//! grants a plugin, not the operator; the database's own privileges still apply).

use migrun_config::RunConfig;
use migrun_db::{Access, Connection, DbError};
use migrun_types::value::Value;

/// Why `migrun sql` did nothing (everything it ran was rolled back).
#[derive(Debug, thiserror::Error)]
pub enum StatementsError {
    /// No statement was given.
    #[error("no SQL statement given")]
    NoStatements,
    /// The connection could not be opened.
    #[error("connection `{connection}`: {source}")]
    Connect {
        /// The connection's name.
        connection: String,
        /// The driver's error.
        #[source]
        source: DbError,
    },
    /// A statement failed; the transaction was rolled back.
    #[error(
        "statement {index} of {count} failed on `{connection}`; the transaction was rolled back: {source}"
    )]
    Statement {
        /// The connection's name.
        connection: String,
        /// 1-based position of the failing statement.
        index: usize,
        /// How many statements were given.
        count: usize,
        /// The database's error.
        #[source]
        source: DbError,
    },
    /// Beginning or committing the transaction failed.
    #[error("connection `{connection}`: {source}")]
    Transaction {
        /// The connection's name.
        connection: String,
        /// The database's error.
        #[source]
        source: DbError,
    },
    /// The embedded database's folder could not be created.
    #[error("creating {path}: {source}")]
    DataDir {
        /// The folder.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// What the last statement returned.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementsOutcome {
    /// The connection's name.
    pub connection: String,
    /// The last statement's column names (empty for a statement that returns no rows).
    pub columns: Vec<String>,
    /// The last statement's rows.
    pub rows: Vec<Vec<Value>>,
    /// Rows the last statement changed (0 for a query).
    pub rows_affected: u64,
    /// How many statements ran.
    pub statements: usize,
}

/// Whether a statement returns rows: a query (`SELECT`, `WITH`, `VALUES`, `TABLE`, `SHOW`,
/// `PRAGMA`, `EXPLAIN`, `DESCRIBE`) or a write with `RETURNING`.
pub fn returns_rows(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let first = words.first().map(String::as_str).unwrap_or("");
    matches!(
        first,
        "SELECT" | "WITH" | "VALUES" | "TABLE" | "SHOW" | "PRAGMA" | "EXPLAIN" | "DESCRIBE"
    ) || words.iter().any(|w| w == "RETURNING")
}

/// Runs `statements` in order in one transaction on the configured connection `name`
/// (an unconfigured name is the embedded SQLite file `<data_dir>/<name>.sqlite`, created if
/// missing, as a run would), and returns what the last one returned.
pub async fn run_statements(
    config: &RunConfig,
    name: &str,
    statements: &[String],
) -> Result<StatementsOutcome, StatementsError> {
    if statements.is_empty() {
        return Err(StatementsError::NoStatements);
    }
    let resolved = config.connection(name);
    if resolved.embedded_default {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StatementsError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    }
    let mut conn = Connection::connect(name, &resolved.url, Access::ReadWrite)
        .await
        .map_err(|source| StatementsError::Connect {
            connection: name.to_owned(),
            source,
        })?;
    let outcome = run_in_transaction(&mut conn, name, statements).await;
    conn.close().await;
    outcome
}

async fn run_in_transaction(
    conn: &mut Connection,
    name: &str,
    statements: &[String],
) -> Result<StatementsOutcome, StatementsError> {
    let transaction = |source| StatementsError::Transaction {
        connection: name.to_owned(),
        source,
    };
    conn.begin().await.map_err(transaction)?;
    let mut outcome = StatementsOutcome {
        connection: name.to_owned(),
        columns: Vec::new(),
        rows: Vec::new(),
        rows_affected: 0,
        statements: statements.len(),
    };
    for (i, sql) in statements.iter().enumerate() {
        let result = if returns_rows(sql) {
            conn.query(sql, &[]).await.map(|rows| {
                outcome.columns = rows.columns.into_iter().map(|c| c.name).collect();
                outcome.rows = rows.rows;
                outcome.rows_affected = 0;
            })
        } else {
            conn.execute(sql, &[]).await.map(|n| {
                outcome.columns.clear();
                outcome.rows.clear();
                outcome.rows_affected = n;
            })
        };
        if let Err(source) = result {
            // The statement's error is what the user needs; a failed rollback adds nothing.
            let _ = conn.rollback().await;
            return Err(StatementsError::Statement {
                connection: name.to_owned(),
                index: i + 1,
                count: statements.len(),
                source,
            });
        }
    }
    conn.commit().await.map_err(transaction)?;
    Ok(outcome)
}

impl StatementsOutcome {
    /// The `migrun.sql/1` document: columns, rows (integers and floats as numbers, text as
    /// strings, NULL as null, booleans as booleans, bytes as `{"hex": …}`, float arrays as
    /// arrays, text arrays as arrays, everything else as its canonical text), rows affected.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "schema": "migrun.sql/1",
            "connection": self.connection,
            "columns": self.columns,
            "rows": self.rows.iter().map(|row| row.iter().map(value_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "rows_affected": self.rows_affected,
            "statements": self.statements,
        })
    }

    /// A plain table for a terminal: a header, one line per row (values tab-separated, NULL
    /// as `NULL`), then a count; or "N rows affected" for a write.
    pub fn to_text(&self) -> String {
        if self.columns.is_empty() {
            return format!(
                "{} row{} affected\n",
                self.rows_affected,
                if self.rows_affected == 1 { "" } else { "s" }
            );
        }
        let mut out = self.columns.join("\t");
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|v| match v {
                    Value::Null => "NULL".to_owned(),
                    Value::Bytes(b) => format!("\\x{}", hex(b)),
                    other => other.canonical_text().unwrap_or_default(),
                })
                .collect();
            out.push_str(&cells.join("\t"));
            out.push('\n');
        }
        out.push_str(&format!(
            "({} row{})\n",
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" }
        ));
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        // NaN and infinities have no JSON number: their text then.
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or_else(|| J::String(f.to_string())),
        Value::Text(s) => J::String(s.clone()),
        Value::Bytes(b) => serde_json::json!({ "hex": hex(b) }),
        Value::Float32Array(v) => J::Array(
            v.iter()
                .map(|f| {
                    serde_json::Number::from_f64(f64::from(*f))
                        .map(J::Number)
                        .unwrap_or_else(|| J::String(f.to_string()))
                })
                .collect(),
        ),
        Value::TextArray(v) => J::Array(v.iter().cloned().map(J::String).collect()),
        Value::Typed { type_name, bytes } => {
            serde_json::json!({ "type": type_name, "hex": hex(bytes) })
        }
        other => J::String(other.canonical_text().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_returning_writes_return_rows() {
        for sql in [
            "SELECT 1",
            "  with x as (select 1) select * from x",
            "VALUES (1)",
            "PRAGMA table_info(t)",
            "INSERT INTO t VALUES (1) RETURNING id",
            "(SELECT 1)",
        ] {
            assert!(returns_rows(sql), "{sql}");
        }
        for sql in [
            "CREATE TABLE t (id int)",
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET returning_x = 1",
        ] {
            assert!(!returns_rows(sql), "{sql}");
        }
    }

    #[test]
    fn values_become_plain_json() {
        let outcome = StatementsOutcome {
            connection: "target".into(),
            columns: vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()],
            rows: vec![vec![
                Value::Int(7),
                Value::Null,
                Value::Bytes(vec![0, 255]),
                Value::Decimal("12.50".into()),
                Value::Float(f64::NAN),
            ]],
            rows_affected: 0,
            statements: 1,
        };
        let json = outcome.to_json();
        assert_eq!(json["schema"], "migrun.sql/1");
        assert_eq!(
            json["rows"][0],
            serde_json::json!([7, null, {"hex": "00ff"}, "12.50", "NaN"])
        );
        assert_eq!(
            outcome.to_text(),
            "a\tb\tc\td\te\n7\tNULL\t\\x00ff\t12.50\tNaN\n(1 row)\n"
        );
    }
}
