//! A unit's lock and statement timeouts (`[limits] lock_timeout` /
//! `statement_timeout`, or the unit's own from contract 0.2.0), applied to
//! every transaction of the unit and explained when the database enforces one.
//!
//! | dialect | lock timeout | statement timeout | scope |
//! |---|---|---|---|
//! | PostgreSQL | `SET LOCAL lock_timeout` | `SET LOCAL statement_timeout` | after each `BEGIN` of the unit: ends with the transaction |
//! | MariaDB | `SET SESSION lock_wait_timeout`, `innodb_lock_wait_timeout` (whole seconds, rounded up) | `SET SESSION max_statement_time` | the session's values read first and restored when the unit ends (connections are reused) |
//! | SQLite | `PRAGMA busy_timeout` (covers `BEGIN IMMEDIATE` too) | none: SQLite runs in migrun's process, bounded by the call's wall-clock limit | restored when the unit ends |
//!
//! A statement that hits one fails with a [`DbErrorKind::Conflict`] error whose
//! message names the timeout, its value and the connection (PostgreSQL
//! `55P03`/`57014`, MariaDB `1205`/`1969` (MySQL `3024`), SQLite
//! `SQLITE_BUSY`): retrying may succeed, so `[limits] conflict_retries` runs
//! the unit again. A code is read as a unit timeout only while the unit has
//! that timeout set: without one, a `57014` is someone's cancel, not ours.

use migrun_config::TimeLimit;

use super::{Connection, DbError, DbErrorKind, Dialect};
use crate::driver::text_of;
use crate::driver_for;

/// The timeouts of the unit that runs now on a connection; both `None` outside units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitTimeouts {
    /// How long a statement may wait for a lock.
    pub lock: Option<TimeLimit>,
    /// How long one statement may run.
    pub statement: Option<TimeLimit>,
}

impl UnitTimeouts {
    /// Whether neither timeout is set (the database's defaults apply).
    pub fn is_empty(&self) -> bool {
        self.lock.is_none() && self.statement.is_none()
    }
}

/// Which timeout a database error says was hit, read from its code by the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeoutHit {
    /// The statement waited for a lock longer than allowed.
    Lock,
    /// The statement ran longer than allowed.
    Statement,
}

/// Whether a value read back from the session is a plain number (what a restore may
/// put back into SQL text).
pub(crate) fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// How a dialect's session holds the unit's timeouts when they are session
/// settings: the query reading the values to restore, and the statement setting them.
pub(crate) struct SessionTimeouts {
    /// Reads the current values, one column each, in the order the restore needs them.
    pub(crate) read: &'static str,
    /// Sets the unit's values.
    pub(crate) set: String,
}

impl Connection {
    /// Gives the unit about to run (or running, in a dry-run's one transaction) its
    /// timeouts, replacing the previous unit's; [`UnitTimeouts::default`] ends them.
    ///
    /// Session settings (MariaDB, SQLite) are set now, the session's own values read
    /// first and put back by the next call; transaction settings (PostgreSQL `SET
    /// LOCAL`) go out after every `BEGIN` of the unit, and now when a transaction is
    /// open. Call it before the unit's first `BEGIN`: SQLite's busy timeout must
    /// already hold when `BEGIN IMMEDIATE` waits for the write lock.
    pub async fn set_unit_timeouts(&mut self, timeouts: UnitTimeouts) -> Result<(), DbError> {
        let driver = driver_for(self.dialect);
        if let Some(restore) = self.timeouts_restore.take() {
            self.host_simple(&restore).await?;
        }
        let previous = std::mem::replace(&mut self.unit_timeouts, timeouts);
        if !timeouts.is_empty()
            && let Some(session) = driver.session_timeouts_sql(&timeouts)
        {
            let rows = self.host_query(session.read, &[]).await?;
            let saved: Vec<String> = rows
                .first()
                .map(|row| row.iter().map(text_of).collect())
                .unwrap_or_default();
            self.timeouts_restore = driver.restore_timeouts_sql(&saved);
            self.host_simple(&session.set).await?;
        }
        if self.in_transaction
            && !self.begin_pending
            && (!timeouts.is_empty() || !previous.is_empty())
        {
            let baseline = self.statement_limit_ms;
            if let Some(sql) = driver.transaction_timeouts_sql(&timeouts, baseline) {
                let name = self.name.clone();
                self.idle()?
                    .simple(&sql)
                    .await
                    .map_err(|e| e.on_connection(&name))?;
            }
        }
        Ok(())
    }

    /// The unit's timeouts in force on this connection.
    pub fn unit_timeouts(&self) -> UnitTimeouts {
        self.unit_timeouts
    }

    /// After a `BEGIN` of the unit: its transaction-scoped timeouts (PostgreSQL).
    pub(super) async fn apply_transaction_timeouts(&mut self) -> Result<(), DbError> {
        if self.unit_timeouts.is_empty() {
            return Ok(());
        }
        let Some(sql) = driver_for(self.dialect)
            .transaction_timeouts_sql(&self.unit_timeouts, self.statement_limit_ms)
        else {
            return Ok(());
        };
        let name = self.name.clone();
        self.idle()?
            .simple(&sql)
            .await
            .map_err(|e| e.on_connection(&name))
    }

    /// `error` as the plugin and the report should read it: the connection named where
    /// that helps ([`DbError::on_connection`]) and, when it is one of the unit's
    /// timeouts, which one, its value, and that retrying may succeed.
    pub(crate) fn explain(&self, error: DbError) -> DbError {
        explain_timeout(
            self.dialect,
            &self.name,
            &self.unit_timeouts,
            error.on_connection(&self.name),
        )
    }
}

/// The unit-timeout reading of `error` on the connection `name` (see the module docs).
pub(crate) fn explain_timeout(
    dialect: Dialect,
    name: &str,
    timeouts: &UnitTimeouts,
    error: DbError,
) -> DbError {
    let Some(hit) = error
        .code
        .as_deref()
        .and_then(|code| driver_for(dialect).timeout_hit(code))
    else {
        return error;
    };
    let message = match (hit, timeouts.lock, timeouts.statement) {
        (TimeoutHit::Lock, Some(limit), _) => format!(
            "lock_timeout {limit} exceeded on `{name}` while waiting for a lock: {}",
            error.message
        ),
        (TimeoutHit::Statement, _, Some(limit)) => format!(
            "statement_timeout {limit} exceeded on `{name}`: the statement was cancelled: {}",
            error.message
        ),
        _ => return error,
    };
    DbError {
        kind: DbErrorKind::Conflict,
        code: error.code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(lock: &str, statement: &str) -> UnitTimeouts {
        UnitTimeouts {
            lock: lock.parse().ok(),
            statement: statement.parse().ok(),
        }
    }

    fn error(code: &str, message: &str) -> DbError {
        DbError {
            kind: DbErrorKind::Other,
            code: Some(code.into()),
            message: message.into(),
        }
    }

    #[test]
    fn each_dialects_timeout_codes_name_the_timeout_and_are_conflicts() {
        let both = limits("2s", "1500ms");
        for (dialect, code, expected) in [
            (
                Dialect::Postgres,
                "55P03",
                "lock_timeout 2s exceeded on `app` while waiting for a lock: m",
            ),
            (
                Dialect::Postgres,
                "57014",
                "statement_timeout 1500ms exceeded on `app`: the statement was cancelled: m",
            ),
            (
                Dialect::MySql,
                "1205",
                "lock_timeout 2s exceeded on `app` while waiting for a lock: m",
            ),
            (
                Dialect::MySql,
                "1969",
                "statement_timeout 1500ms exceeded on `app`: the statement was cancelled: m",
            ),
            (
                Dialect::MySql,
                "3024",
                "statement_timeout 1500ms exceeded on `app`: the statement was cancelled: m",
            ),
            (
                Dialect::Sqlite,
                "5",
                "lock_timeout 2s exceeded on `app` while waiting for a lock: m",
            ),
            (
                Dialect::Sqlite,
                "517",
                "lock_timeout 2s exceeded on `app` while waiting for a lock: m",
            ),
        ] {
            let e = explain_timeout(dialect, "app", &both, error(code, "m"));
            assert_eq!(e.kind, DbErrorKind::Conflict, "{dialect} {code}");
            assert_eq!(e.message, expected, "{dialect} {code}");
            assert_eq!(e.code.as_deref(), Some(code), "the database's code is kept");
        }
    }

    #[test]
    fn without_the_units_timeout_an_error_is_left_as_the_database_said() {
        let none = UnitTimeouts::default();
        let cancel = error("57014", "canceling statement due to user request");
        assert_eq!(
            explain_timeout(Dialect::Postgres, "app", &none, cancel.clone()),
            cancel
        );
        // Only the lock timeout is the unit's: a statement cancel is someone else's.
        let lock_only = limits("1s", "");
        assert_eq!(
            explain_timeout(Dialect::Postgres, "app", &lock_only, cancel.clone()),
            cancel
        );
        let syntax = error("42601", "syntax error");
        assert_eq!(
            explain_timeout(
                Dialect::Postgres,
                "app",
                &limits("1s", "1s"),
                syntax.clone()
            ),
            syntax
        );
    }

    #[test]
    fn statements_per_dialect() {
        use crate::driver::SessionSql;
        let t = limits("1500ms", "30s");
        let pg = crate::postgres::PgDriver;
        assert_eq!(
            pg.transaction_timeouts_sql(&t, Some(3_600_000)).as_deref(),
            Some("SET LOCAL lock_timeout = 1500; SET LOCAL statement_timeout = 30000")
        );
        assert_eq!(
            pg.transaction_timeouts_sql(&limits("1s", ""), Some(3_600_000))
                .as_deref(),
            Some("SET LOCAL lock_timeout = 1000; SET LOCAL statement_timeout = 3600000")
        );
        assert_eq!(
            pg.transaction_timeouts_sql(&UnitTimeouts::default(), None)
                .as_deref(),
            Some("SET LOCAL lock_timeout = DEFAULT; SET LOCAL statement_timeout = DEFAULT")
        );
        assert!(pg.session_timeouts_sql(&t).is_none());
        let my = crate::mysql::MySqlDriver;
        assert!(my.transaction_timeouts_sql(&t, None).is_none());
        let session = my.session_timeouts_sql(&t).expect("session settings");
        assert_eq!(
            session.set,
            "SET SESSION lock_wait_timeout = 2, innodb_lock_wait_timeout = 2, max_statement_time = 30"
        );
        assert_eq!(
            my.restore_timeouts_sql(&["31536000".into(), "50".into(), "3600.000000".into()])
                .as_deref(),
            Some(
                "SET SESSION lock_wait_timeout = 31536000, innodb_lock_wait_timeout = 50, max_statement_time = 3600.000000"
            )
        );
        let lite = crate::sqlite::SqliteDriver;
        let session = lite.session_timeouts_sql(&t).expect("busy timeout");
        assert_eq!(session.set, "PRAGMA busy_timeout = 1500");
        assert!(lite.session_timeouts_sql(&limits("", "30s")).is_none());
        assert_eq!(
            lite.restore_timeouts_sql(&["5000".into()]).as_deref(),
            Some("PRAGMA busy_timeout = 5000")
        );
    }
}
