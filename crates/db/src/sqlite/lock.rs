//! SQLite run lock: not a database session but an exclusive OS file lock on
//! `<database>.migrun-lock`, which `crate::lock` takes itself (the file holds
//! the holder's pid and run id). This implementation only says so.

use super::SqliteDriver;
use crate::driver::{HostStatement, LockSql};
use migrun_types::value::Value;

impl LockSql for SqliteDriver {
    fn try_lock(&self, _name: &str) -> Option<HostStatement> {
        None
    }

    fn lock_holder(&self, _name: &str) -> Option<HostStatement> {
        None
    }

    fn describe_lock_holder(&self, _row: &[Value]) -> String {
        "holder unknown".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_locks_a_file() {
        assert!(SqliteDriver.try_lock("x").is_none());
        assert!(SqliteDriver.lock_holder("x").is_none());
        assert!(SqliteDriver.try_lock_shared("x").is_none());
    }
}
