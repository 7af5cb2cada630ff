//! SQLite session and transaction statements.
//!
//! A read-only file is opened `mode=ro` with `query_only` (see
//! [`super::connect_options`]); a read-write unit begins `IMMEDIATE`, taking
//! the database's one write lock at once. SQLite runs in migrun's process:
//! there is no server statement to bound or cancel.

use super::SqliteDriver;
use crate::Access;
use crate::driver::{DdlEffects, SessionSql};
use crate::timeouts::{SessionTimeouts, TimeoutHit, UnitTimeouts, is_number};

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

    /// The busy timeout only: SQLite has no statement timeout (a statement runs in
    /// migrun's process, bounded by the call's wall-clock limit).
    fn session_timeouts_sql(&self, timeouts: &UnitTimeouts) -> Option<SessionTimeouts> {
        timeouts.lock.map(|lock| SessionTimeouts {
            read: "PRAGMA busy_timeout",
            set: format!("PRAGMA busy_timeout = {}", lock.as_millis()),
        })
    }

    fn restore_timeouts_sql(&self, saved: &[String]) -> Option<String> {
        match saved {
            [ms] if is_number(ms) => Some(format!("PRAGMA busy_timeout = {ms}")),
            _ => None,
        }
    }

    fn timeout_hit(&self, code: &str) -> Option<TimeoutHit> {
        // SQLITE_BUSY and its extended codes: the busy timeout ran out.
        let code: i32 = code.parse().ok()?;
        (code & 0xff == 5).then_some(TimeoutHit::Lock)
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
