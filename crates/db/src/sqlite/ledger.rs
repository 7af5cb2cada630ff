//! SQLite statements of the ledger table (the procedure is `crate::ledger`).
//!
//! The catalog is `sqlite_master`; a temporary table of the same name would
//! answer for the ledger in this connection, so one in `sqlite_temp_master`
//! refuses the write.

use futures::future::BoxFuture;

use super::SqliteDriver;
use crate::driver::{LedgerColumnTypes, LedgerSql};
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
        ] {
            assert_eq!(sql.matches('?').count(), 1, "{sql}");
        }
        assert!(d.ledger_exists_sql().contains("sqlite_master"));
        assert_eq!(d.ledger_column_types().state, "TEXT");
    }
}
