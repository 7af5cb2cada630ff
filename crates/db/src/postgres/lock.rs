//! PostgreSQL run lock: a session-level advisory lock keyed by a hash of the
//! lock name, released when the host-only connection holding it closes. A
//! sharded worker also holds the unsharded name in shared mode, so that an
//! unsharded run or a restore waits for every worker. The holder is found in
//! `pg_locks` joined with `pg_stat_activity`.

use sha2::Digest;

use super::PgDriver;
use crate::driver::{HostStatement, LockSql};
use migrun_types::value::Value;

/// The 64-bit advisory key of a lock name.
fn advisory_key(name: &str) -> i64 {
    let digest = sha2::Sha256::digest(name.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl LockSql for PgDriver {
    fn try_lock(&self, name: &str) -> Option<HostStatement> {
        Some(HostStatement::new(
            "SELECT pg_try_advisory_lock($1)",
            vec![Value::Int(advisory_key(name))],
        ))
    }

    fn try_lock_shared(&self, name: &str) -> Option<HostStatement> {
        Some(HostStatement::new(
            "SELECT pg_try_advisory_lock_shared($1)",
            vec![Value::Int(advisory_key(name))],
        ))
    }

    fn lock_holder(&self, name: &str) -> Option<HostStatement> {
        Some(HostStatement::new(
            "SELECT a.pid, COALESCE(a.application_name, ''), COALESCE(a.client_addr::text, 'local'), \
             a.backend_start::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted \
             AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
            vec![Value::Int(advisory_key(name))],
        ))
    }

    fn describe_lock_holder(&self, r: &[Value]) -> String {
        format!(
            "held by PostgreSQL backend pid {} ({}, from {}, since {})",
            r[0], r[1], r[2], r[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_statements_use_one_advisory_key_per_name() {
        let d = PgDriver;
        let exclusive = d.try_lock("migrun:migrun_ledger").unwrap();
        assert_eq!(exclusive.sql, "SELECT pg_try_advisory_lock($1)");
        let shared = d.try_lock_shared("migrun:migrun_ledger").unwrap();
        assert_eq!(shared.sql, "SELECT pg_try_advisory_lock_shared($1)");
        let holder = d.lock_holder("migrun:migrun_ledger").unwrap();
        assert!(holder.sql.contains("pg_locks"));
        // The same name gives the same key in all three; another name another key.
        assert_eq!(exclusive.params, shared.params);
        assert_eq!(exclusive.params, holder.params);
        assert_ne!(exclusive.params, d.try_lock("migrun:other").unwrap().params);
        let row = [
            Value::Int(7),
            Value::Text("migrun".into()),
            Value::Text("local".into()),
            Value::Text("2026-01-01".into()),
        ];
        assert_eq!(
            d.describe_lock_holder(&row),
            "held by PostgreSQL backend pid 7 (migrun, from local, since 2026-01-01)"
        );
    }
}
