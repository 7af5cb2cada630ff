//! PostgreSQL statements of the ledger table (the procedure is `crate::ledger`).
//!
//! Names are resolved by `to_regclass`, so a lookup never raises an error that
//! would abort the transaction. Before the host writes its row, the
//! transaction's `search_path` is pinned to the session's opening one with
//! `pg_temp` last: the plugin cannot redirect the ledger's name to a table of
//! its own, and a temporary table cannot shadow it.

use futures::future::BoxFuture;

use super::PgDriver;
use crate::driver::{LedgerColumnTypes, LedgerSql, ScopeUpgrade};
use crate::{Connection, DbError};
use migrun_types::value::Value;

impl LedgerSql for PgDriver {
    fn ledger_exists_sql(&self) -> &'static str {
        "SELECT to_regclass($1) IS NOT NULL"
    }

    fn ledger_triggers_sql(&self) -> &'static str {
        "SELECT (SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal)                  + (SELECT COUNT(*) FROM pg_rewrite WHERE ev_class = to_regclass($1) AND rulename <> '_RETURN')"
    }

    fn ledger_state_column_sql(&self) -> &'static str {
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
         AND attname = 'checkpoint_state' AND NOT attisdropped)"
    }

    fn ledger_final_hash_column_sql(&self) -> &'static str {
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
         AND attname = 'run_final_hash' AND NOT attisdropped)"
    }

    fn ledger_scope_column_sql(&self) -> &'static str {
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
         AND attname = 'unit_scope' AND NOT attisdropped)"
    }

    fn upgrade_ledger_scope<'a>(
        &'a self,
        conn: &'a mut Connection,
        upgrade: ScopeUpgrade<'a>,
    ) -> BoxFuture<'a, Result<(), DbError>> {
        Box::pin(async move {
            // The primary key's name is whatever PostgreSQL chose when the table was made.
            let rows = conn
                .host_query(
                    "SELECT conname::text FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'",
                    &[Value::Text(upgrade.table.to_owned())],
                )
                .await?;
            let drop_key = match rows.first().and_then(|r| r.first()) {
                Some(Value::Text(name)) => {
                    format!(" DROP CONSTRAINT \"{}\",", name.replace('"', "\"\""))
                }
                _ => String::new(),
            };
            // One statement: the column and the new key arrive together or not at all.
            conn.host_simple(&format!(
                "ALTER TABLE {} ADD COLUMN unit_scope TEXT NOT NULL DEFAULT '',{drop_key} \
                 ADD PRIMARY KEY (plugin_name, unit, unit_scope, plugin_sha256)",
                upgrade.table
            ))
            .await
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
        _table: &'a str,
    ) -> BoxFuture<'a, Result<bool, DbError>> {
        Box::pin(async move {
            // `pg_temp` last: a temporary table cannot shadow the ledger.
            let path = format!(
                "{}, pg_temp",
                conn.opening_search_path().unwrap_or("\"$user\", public")
            );
            conn.query(
                "SELECT set_config('search_path', $1, true)",
                &[Value::Text(path)],
            )
            .await?;
            Ok(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_statements_take_the_table_as_their_one_parameter() {
        let d = PgDriver;
        assert_eq!(d.ledger_exists_sql(), "SELECT to_regclass($1) IS NOT NULL");
        assert!(d.ledger_triggers_sql().contains("pg_trigger"));
        assert!(d.ledger_triggers_sql().contains("pg_rewrite"));
        assert!(d.ledger_state_column_sql().contains("'checkpoint_state'"));
        for sql in [
            d.ledger_triggers_sql(),
            d.ledger_state_column_sql(),
            d.ledger_final_hash_column_sql(),
            d.ledger_scope_column_sql(),
        ] {
            assert!(sql.contains("to_regclass($1)"), "{sql}");
            assert!(!sql.contains('?'), "{sql}");
        }
        assert_eq!(d.ledger_column_types().key, "TEXT");
    }
}
