//! Locking/rewriting hazards of a statement, with the row counts read on a
//! connection.
//!
//! The rules themselves are pure and live in [`crate::sql::lint`] (their
//! catalogue and threshold are documented there); this module adds the one
//! thing they cannot do: look the row counts of the tables a rule fired for up
//! on a [`Connection`] ([`lint_statement`]). During a dry-run the host lints
//! every statement a plugin executes on a writable connection and adds the
//! warnings to the [plan](crate::plan).

use std::collections::BTreeMap;

use crate::db::{Connection, DbError};

pub use crate::sql::lint::{
    DEPLOYMENT_RULES, LockWarning, POPULATED, dropped_columns, lint, tables_to_count,
};

/// Lints `text` as about to run on `conn`, with the row counts of its tables
/// looked up on `conn` ([`Connection::table_row_count`]) and the connection
/// named in each warning. Call it before executing the statement, between
/// the plugin's calls (the connection must be idle). An error only means no
/// count could be read: the statement is not affected, on PostgreSQL not even
/// inside a transaction.
pub async fn lint_statement(
    conn: &mut Connection,
    text: &str,
) -> Result<Vec<LockWarning>, DbError> {
    let tables = tables_to_count(conn.dialect(), text);
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts = BTreeMap::new();
    for table in tables {
        let rows = conn.table_row_count(&table).await?;
        counts.insert(table, rows);
    }
    let mut warnings = lint(conn.dialect(), text, &|t| counts.get(t).copied().flatten());
    for w in &mut warnings {
        w.connection = Some(conn.name().to_owned());
    }
    // A dropped column's warning names what in the schema still uses it: the evidence the
    // catalog has that something reads it (the application's own queries are not visible).
    for (table, column) in dropped_columns(conn.dialect(), text) {
        let lead = format!("DROP COLUMN {column} on {table} ");
        if !warnings
            .iter()
            .any(|w| w.rule == "drop-column-still-read" && w.problem.starts_with(&lead))
        {
            continue;
        }
        // The warning stands without the list when the catalog cannot be read.
        let dependants = conn
            .column_dependants(&table, &column)
            .await
            .unwrap_or_default();
        if dependants.is_empty() {
            continue;
        }
        for w in &mut warnings {
            if w.rule == "drop-column-still-read" && w.problem.starts_with(&lead) {
                w.problem.push_str(&format!(
                    "; the schema still uses it: {}",
                    dependants.join(", ")
                ));
            }
        }
    }
    Ok(warnings)
}
