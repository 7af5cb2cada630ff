//! SQLite session and transaction statements.
//!
//! A read-only file is opened `mode=ro` with `query_only` (see
//! [`super::connect_options`]); a read-write unit begins `IMMEDIATE`, taking
//! the database's one write lock at once. SQLite runs in migrun's process:
//! there is no server statement to bound or cancel.

use super::SqliteDriver;
use crate::Access;
use crate::driver::{DdlEffects, SessionSql};

impl SessionSql for SqliteDriver {
    fn begin_sql(&self, access: Access) -> &'static str {
        match access {
            Access::ReadWrite => "BEGIN IMMEDIATE",
            Access::ReadOnly => "BEGIN",
        }
    }

    fn read_only_phase_sql(&self, on: bool) -> Option<&'static str> {
        Some(if on {
            "PRAGMA query_only = ON"
        } else {
            "PRAGMA query_only = OFF"
        })
    }

    fn statement_limit_sql(&self, _ms: u128) -> Option<String> {
        None
    }

    fn ddl_effects(&self) -> DdlEffects {
        DdlEffects {
            clears_statement_cache: false,
            commits_transaction: false,
            rollback_clears_statement_cache: false,
        }
    }

    fn cancel_sql(&self, _server_id: i64) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_statements() {
        let d = SqliteDriver;
        assert_eq!(d.begin_sql(Access::ReadWrite), "BEGIN IMMEDIATE");
        assert_eq!(d.begin_sql(Access::ReadOnly), "BEGIN");
        assert_eq!(
            d.ddl_effects(),
            DdlEffects {
                clears_statement_cache: false,
                commits_transaction: false,
                rollback_clears_statement_cache: false,
            }
        );
        assert_eq!(d.read_only_phase_sql(true), Some("PRAGMA query_only = ON"));
        assert_eq!(
            d.read_only_phase_sql(false),
            Some("PRAGMA query_only = OFF")
        );
        assert!(!d.wraps_read_only_statements());
        assert!(!d.errors_abort_transaction());
        assert_eq!(d.statement_limit_sql(1500), None);
        assert_eq!(d.cancel_sql(42), None);
        assert_eq!(d.placeholder(1), "?");
    }
}
