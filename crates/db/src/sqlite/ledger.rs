//! SQLite statements of the ledger table (the procedure is `crate::ledger`).
//!
//! The catalog is `sqlite_master`; a temporary table of the same name would
//! answer for the ledger in this connection, so one in `sqlite_temp_master`
//! refuses the write.

use futures::future::BoxFuture;

use super::SqliteDriver;
use crate::driver::{LedgerColumnTypes, LedgerSql, ScopeUpgrade};
use crate::{Connection, DbError};
use migrun_types::value::Value;

impl LedgerSql for SqliteDriver {
    fn ledger_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?"
    }

    fn ledger_triggers_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?"
    }

    fn ledger_state_column_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = 'checkpoint_state'"
    }

    fn ledger_final_hash_column_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = 'run_final_hash'"
    }

    fn ledger_scope_column_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = 'unit_scope'"
    }

    fn upgrade_ledger_scope<'a>(
        &'a self,
        conn: &'a mut Connection,
        upgrade: ScopeUpgrade<'a>,
    ) -> BoxFuture<'a, Result<(), DbError>> {
        Box::pin(async move {
            // SQLite cannot change a primary key in place: the table is rebuilt under a new
            // name and renamed back, in one transaction that takes the write lock first.
            conn.host_simple("BEGIN IMMEDIATE").await?;
            let rebuilt = async {
                // Another run may have upgraded it while this one waited for the lock.
                let has = conn
                    .host_query(
                        "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = 'unit_scope'",
                        &[Value::Text(upgrade.table.to_owned())],
                    )
                    .await?;
                if matches!(has.first().and_then(|r| r.first()), Some(Value::Int(1..))) {
                    return Ok(());
                }
                let (schema, bare) = match upgrade.table.rsplit_once('.') {
                    Some((schema, bare)) => (format!("{schema}."), bare),
                    None => (String::new(), upgrade.table),
                };
                let new = format!("{schema}migrun_ledger_scope_upgrade");
                let columns = upgrade.columns;
                for sql in [
                    format!("DROP TABLE IF EXISTS {new}"),
                    (upgrade.create)(&new),
                    format!(
                        "INSERT INTO {new} ({columns}, unit_scope) SELECT {columns}, '' FROM {}",
                        upgrade.table
                    ),
                    format!("DROP TABLE {}", upgrade.table),
                    format!("ALTER TABLE {new} RENAME TO {bare}"),
                ] {
                    conn.host_simple(&sql).await?;
                }
                Ok::<_, DbError>(())
            }
            .await;
            match rebuilt {
                Ok(()) => conn.host_simple("COMMIT").await,
                Err(e) => {
                    let _ = conn.host_simple("ROLLBACK").await;
                    Err(e)
                }
            }
        })
    }

    fn ledger_column_types(&self) -> LedgerColumnTypes {
        LedgerColumnTypes {
            key: "TEXT",
            text: "TEXT",
            state: "TEXT",
        }
    }

    fn shield_ledger<'a>(
        &'a self,
        conn: &'a mut Connection,
        table: &'a str,
    ) -> BoxFuture<'a, Result<bool, DbError>> {
        Box::pin(async move {
            let rows = conn
                .query(
                    "SELECT COUNT(*) FROM sqlite_temp_master WHERE type IN ('table', 'view') AND name = ?",
                    &[Value::Text(table.to_owned())],
                )
                .await?;
            Ok(matches!(
                rows.rows.first().and_then(|r| r.first()),
                Some(Value::Int(1..))
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_statements_take_the_table_as_their_one_parameter() {
        let d = SqliteDriver;
        for sql in [
            d.ledger_exists_sql(),
            d.ledger_triggers_sql(),
            d.ledger_state_column_sql(),
            d.ledger_final_hash_column_sql(),
            d.ledger_scope_column_sql(),
        ] {
            assert_eq!(sql.matches('?').count(), 1, "{sql}");
        }
        assert!(d.ledger_exists_sql().contains("sqlite_master"));
        assert_eq!(d.ledger_column_types().state, "TEXT");
    }
}
