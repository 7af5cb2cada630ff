//! MySQL/MariaDB statements of the ledger table (the procedure is `crate::ledger`).
//!
//! The catalog is `information_schema` of the current database. Key columns
//! are `VARCHAR(190)` so that the primary key fits InnoDB's index limit in
//! utf8mb4. A temporary table answers for the ledger's name in the session
//! that made it; `SHOW CREATE TABLE` tells which table the name reaches
//! (MariaDB 10.11 lists no temporary tables in the catalog).

use futures::future::BoxFuture;

use super::MySqlDriver;
use crate::driver::{LedgerColumnTypes, LedgerSql, ScopeUpgrade};
use crate::{Connection, DbError, Dialect};
use migrun_types::value::Value;

impl LedgerSql for MySqlDriver {
    fn ledger_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) > 0 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"
    }

    fn ledger_triggers_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM information_schema.TRIGGERS                  WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ?"
    }

    fn ledger_state_column_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_NAME = ? AND COLUMN_NAME = 'checkpoint_state'"
    }

    fn ledger_final_hash_column_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_NAME = ? AND COLUMN_NAME = 'run_final_hash'"
    }

    fn ledger_scope_column_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_NAME = ? AND COLUMN_NAME = 'unit_scope'"
    }

    fn upgrade_ledger_scope<'a>(
        &'a self,
        conn: &'a mut Connection,
        upgrade: ScopeUpgrade<'a>,
    ) -> BoxFuture<'a, Result<(), DbError>> {
        Box::pin(async move {
            // One statement (InnoDB rebuilds the table once): the column and the new key
            // arrive together. Four `VARCHAR(190)`/`CHAR(64)` key parts stay within
            // InnoDB's 3072-byte index limit in utf8mb4.
            conn.host_simple(&format!(
                "ALTER TABLE {} ADD COLUMN unit_scope VARCHAR(190) NOT NULL DEFAULT '', \
                 DROP PRIMARY KEY, ADD PRIMARY KEY (plugin_name, unit, unit_scope, plugin_sha256)",
                upgrade.table
            ))
            .await
        })
    }

    fn ledger_column_types(&self) -> LedgerColumnTypes {
        LedgerColumnTypes {
            key: "VARCHAR(190)",
            text: "VARCHAR(255)",
            state: "MEDIUMTEXT",
        }
    }

    fn shield_ledger<'a>(
        &'a self,
        conn: &'a mut Connection,
        table: &'a str,
    ) -> BoxFuture<'a, Result<bool, DbError>> {
        Box::pin(async move {
            let quoted = Dialect::MySql.quote_table(table)?;
            let rows = conn
                .host_text_query(&format!("SHOW CREATE TABLE {quoted}"))
                .await?;
            let ddl = match rows.first().and_then(|r| r.get(1)) {
                Some(Value::Text(t)) => t.clone(),
                Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            Ok(ddl.starts_with("CREATE TEMPORARY"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_statements_take_the_table_as_their_one_parameter() {
        let d = MySqlDriver;
        for sql in [
            d.ledger_exists_sql(),
            d.ledger_triggers_sql(),
            d.ledger_state_column_sql(),
            d.ledger_final_hash_column_sql(),
            d.ledger_scope_column_sql(),
        ] {
            assert_eq!(sql.matches('?').count(), 1, "{sql}");
            assert!(sql.contains("DATABASE()"), "{sql}");
        }
        assert!(
            d.ledger_triggers_sql()
                .contains("information_schema.TRIGGERS")
        );
        assert_eq!(
            d.ledger_column_types(),
            LedgerColumnTypes {
                key: "VARCHAR(190)",
                text: "VARCHAR(255)",
                state: "MEDIUMTEXT",
            }
        );
    }
}
