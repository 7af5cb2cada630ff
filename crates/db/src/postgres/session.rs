//! PostgreSQL session and transaction statements.
//!
//! A read-only connection is read-only for the whole session (startup option
//! `default_transaction_read_only=on`, see [`super::connect_options`]), and a
//! read-only unit takes its snapshot at once, which also makes a later
//! `SET TRANSACTION READ WRITE` impossible. Since a session setting can be
//! changed by SQL, a read-only statement outside a host transaction runs in a
//! `BEGIN READ ONLY … COMMIT` of its own.

use super::PgDriver;
use crate::Access;
use crate::driver::{DdlEffects, SessionSql};
use crate::timeouts::{TimeoutHit, UnitTimeouts};

impl SessionSql for PgDriver {
    fn begin_sql(&self, access: Access) -> &'static str {
        match access {
            Access::ReadWrite => "BEGIN",
            // Taking the snapshot at once also makes `SET TRANSACTION READ WRITE` impossible.
            Access::ReadOnly => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1",
        }
    }

    fn read_only_phase_sql(&self, _on: bool) -> Option<&'static str> {
        None
    }

    fn wraps_read_only_statements(&self) -> bool {
        true
    }

    fn errors_abort_transaction(&self) -> bool {
        true
    }

    fn statement_limit_sql(&self, ms: u128) -> Option<String> {
        Some(format!(
            "SET statement_timeout = {ms}; SET lock_timeout = {ms}"
        ))
    }

    fn transaction_timeouts_sql(
        &self,
        timeouts: &UnitTimeouts,
        baseline_ms: Option<u128>,
    ) -> Option<String> {
        let value = |limit: Option<migrun_config::TimeLimit>| match (limit, baseline_ms) {
            (Some(limit), _) => limit.as_millis().to_string(),
            (None, Some(ms)) => ms.to_string(),
            (None, None) => "DEFAULT".to_owned(),
        };
        Some(format!(
            "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}",
            value(timeouts.lock),
            value(timeouts.statement)
        ))
    }

    fn timeout_hit(&self, code: &str) -> Option<TimeoutHit> {
        match code {
            // lock_not_available: `lock_timeout` (or NOWAIT)
            "55P03" => Some(TimeoutHit::Lock),
            // query_canceled: `statement_timeout` (or a cancel)
            "57014" => Some(TimeoutHit::Statement),
            _ => None,
        }
    }

    fn ddl_effects(&self) -> DdlEffects {
        DdlEffects {
            clears_statement_cache: true,
            commits_transaction: false,
            rollback_clears_statement_cache: true,
        }
    }

    fn cancel_sql(&self, server_id: i64) -> Option<String> {
        Some(format!("SELECT pg_cancel_backend({server_id})"))
    }

    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_statements() {
        let d = PgDriver;
        assert_eq!(d.begin_sql(Access::ReadWrite), "BEGIN");
        assert_eq!(
            d.begin_sql(Access::ReadOnly),
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1"
        );
        assert_eq!(
            d.ddl_effects(),
            DdlEffects {
                clears_statement_cache: true,
                commits_transaction: false,
                rollback_clears_statement_cache: true,
            }
        );
        assert_eq!(d.read_only_phase_sql(true), None);
        assert!(d.wraps_read_only_statements());
        assert!(d.errors_abort_transaction());
        assert_eq!(
            d.statement_limit_sql(1500).as_deref(),
            Some("SET statement_timeout = 1500; SET lock_timeout = 1500")
        );
        assert_eq!(
            d.cancel_sql(42).as_deref(),
            Some("SELECT pg_cancel_backend(42)")
        );
        assert_eq!(d.placeholder(3), "$3");
    }
}
