//! MySQL/MariaDB session and transaction statements.
//!
//! Read-only is a session setting (`SET SESSION TRANSACTION READ ONLY`), and a
//! read-only unit starts with a consistent snapshot. No wrapper transaction
//! helps here (DDL commits implicitly), so the guards refuse the `SET`s that
//! would lift it.

use super::MySqlDriver;
use crate::Access;
use crate::driver::{DdlEffects, SessionSql};
use crate::timeouts::{SessionTimeouts, TimeoutHit, UnitTimeouts, is_number};

impl SessionSql for MySqlDriver {
    fn begin_sql(&self, access: Access) -> &'static str {
        match access {
            Access::ReadWrite => "START TRANSACTION",
            Access::ReadOnly => "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT",
        }
    }

    fn read_only_phase_sql(&self, on: bool) -> Option<&'static str> {
        Some(if on {
            "SET SESSION TRANSACTION READ ONLY"
        } else {
            "SET SESSION TRANSACTION READ WRITE"
        })
    }

    fn statement_limit_sql(&self, ms: u128) -> Option<String> {
        Some(format!(
            "SET SESSION max_statement_time = {}",
            ms as f64 / 1000.0
        ))
    }

    fn session_timeouts_sql(&self, timeouts: &UnitTimeouts) -> Option<SessionTimeouts> {
        let mut set = Vec::new();
        if let Some(lock) = timeouts.lock {
            // Both are whole seconds: metadata locks (DDL) and InnoDB row locks.
            let seconds = lock.as_millis().div_ceil(1000);
            set.push(format!("lock_wait_timeout = {seconds}"));
            set.push(format!("innodb_lock_wait_timeout = {seconds}"));
        }
        if let Some(statement) = timeouts.statement {
            set.push(format!(
                "max_statement_time = {}",
                f64::from(statement.as_millis()) / 1000.0
            ));
        }
        (!set.is_empty()).then(|| SessionTimeouts {
            read: "SELECT @@SESSION.lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout, \
                   @@SESSION.max_statement_time",
            set: format!("SET SESSION {}", set.join(", ")),
        })
    }

    fn restore_timeouts_sql(&self, saved: &[String]) -> Option<String> {
        let [lock, innodb, statement] = saved else {
            return None;
        };
        [lock, innodb, statement]
            .iter()
            .all(|v| is_number(v))
            .then(|| {
                format!(
                    "SET SESSION lock_wait_timeout = {lock}, innodb_lock_wait_timeout = {innodb}, \
                     max_statement_time = {statement}"
                )
            })
    }

    fn timeout_hit(&self, code: &str) -> Option<TimeoutHit> {
        match code {
            // ER_LOCK_WAIT_TIMEOUT: row locks and metadata locks alike
            "1205" => Some(TimeoutHit::Lock),
            // MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT
            "1969" | "3024" => Some(TimeoutHit::Statement),
            _ => None,
        }
    }

    fn ddl_effects(&self) -> DdlEffects {
        DdlEffects {
            clears_statement_cache: true,
            commits_transaction: true,
            rollback_clears_statement_cache: false,
        }
    }

    fn cancel_sql(&self, server_id: i64) -> Option<String> {
        Some(format!("KILL QUERY {server_id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_statements() {
        let d = MySqlDriver;
        assert_eq!(d.begin_sql(Access::ReadWrite), "START TRANSACTION");
        assert_eq!(
            d.begin_sql(Access::ReadOnly),
            "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT"
        );
        assert_eq!(
            d.read_only_phase_sql(true),
            Some("SET SESSION TRANSACTION READ ONLY")
        );
        assert_eq!(
            d.read_only_phase_sql(false),
            Some("SET SESSION TRANSACTION READ WRITE")
        );
        assert!(!d.wraps_read_only_statements());
        assert!(!d.errors_abort_transaction());
        assert_eq!(
            d.statement_limit_sql(1500).as_deref(),
            Some("SET SESSION max_statement_time = 1.5")
        );
        assert_eq!(d.cancel_sql(42).as_deref(), Some("KILL QUERY 42"));
        assert_eq!(d.placeholder(3), "?");
    }
}
