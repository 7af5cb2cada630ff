//! [`DbError`]: every failure of the database layer as a value, classified into the
//! WIT contract's `db-error-kind`s.
//!
//! Classification reads the database's own code (SQLSTATE on PostgreSQL, the
//! error number on MySQL/MariaDB, the extended result code on SQLite), never the
//! message text. The code travels with the error so a plugin, a log or a journal
//! can show exactly what the server said.

use sqlx::mysql::MySqlDatabaseError;
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

/// What kind of failure a database call met: shared with the SDK through `migrun-types`.
pub use migrun_types::DbErrorKind;

/// A database failure, returned to plugins as a value (never a trap).
///
/// Invariant: `code` is the database's own code when the database produced the
/// error, and `None` when the host did (usage errors, refusals, decoding).
/// Displays as the message followed by ` (code …)` when there is a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", code_suffix(.code))]
pub struct DbError {
    /// The broad class of the failure.
    pub kind: DbErrorKind,
    /// SQLSTATE (PostgreSQL), error number (MySQL/MariaDB) or extended result code (SQLite).
    pub code: Option<String>,
    /// The database's message, or the host's when the host refused the call.
    pub message: String,
}

fn code_suffix(code: &Option<String>) -> String {
    match code {
        Some(code) => format!(" (code {code})"),
        None => String::new(),
    }
}

impl DbError {
    /// An error raised by the host itself (no database code).
    pub fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError {
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// A [`DbErrorKind::Usage`] error.
    pub fn usage(message: impl Into<String>) -> Self {
        DbError::new(DbErrorKind::Usage, message)
    }

    /// A [`DbErrorKind::Value`] error.
    pub fn value(message: impl Into<String>) -> Self {
        DbError::new(DbErrorKind::Value, message)
    }

    /// An error as a journal recorded it (its display: the message, then ` (code …)`),
    /// classified again from the code by `dialect`'s rules, so that a replay treats it
    /// as the run did (a conflict is retried).
    pub fn recorded(dialect: Option<migrun_types::Dialect>, text: &str) -> Self {
        let split = text
            .strip_suffix(')')
            .and_then(|t| t.rsplit_once(" (code "))
            .filter(|(_, code)| !code.is_empty() && !code.contains(' '));
        let Some((message, code)) = split else {
            return DbError::new(DbErrorKind::Other, text);
        };
        let kind = match dialect {
            Some(migrun_types::Dialect::Postgres) => postgres_kind(code),
            Some(migrun_types::Dialect::MySql) => {
                code.parse().map_or(DbErrorKind::Other, mysql_kind)
            }
            Some(migrun_types::Dialect::Sqlite) => {
                code.parse().map_or(DbErrorKind::Other, sqlite_kind)
            }
            None => DbErrorKind::Other,
        };
        DbError {
            kind,
            code: Some(code.to_owned()),
            message: message.to_owned(),
        }
    }

    /// Adds the connection's name where it helps the reader: read-only refusals
    /// say which connection is read-only, connection failures say which one failed.
    pub(crate) fn on_connection(mut self, name: &str) -> Self {
        match self.kind {
            DbErrorKind::ReadOnly if !self.message.starts_with("connection `") => {
                self.message = format!("connection `{name}` is read-only: {}", self.message);
            }
            DbErrorKind::Connection if !self.message.starts_with("connection `") => {
                self.message = format!("connection `{name}` failed: {}", self.message);
            }
            _ => {}
        }
        self
    }
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match err {
            E::Database(db) => classify_database_error(db.as_ref()),
            E::Io(io) => DbError::new(DbErrorKind::Connection, format!("I/O error: {io}")),
            E::Tls(e) => DbError::new(DbErrorKind::Connection, format!("TLS error: {e}")),
            E::Protocol(p) => DbError::new(DbErrorKind::Connection, format!("protocol error: {p}")),
            E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
                DbError::new(DbErrorKind::Connection, err.to_string())
            }
            E::Configuration(e) => DbError::new(
                DbErrorKind::Connection,
                format!("invalid connection settings: {e}"),
            ),
            E::ColumnDecode { .. } | E::Decode(_) | E::Encode(_) | E::TypeNotFound { .. } => {
                DbError::new(DbErrorKind::Value, err.to_string())
            }
            other => DbError::new(DbErrorKind::Other, other.to_string()),
        }
    }
}

/// Classifies an error reported by the server, by dialect-specific code.
fn classify_database_error(db: &dyn sqlx::error::DatabaseError) -> DbError {
    if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
        let code = pg.code().to_owned();
        let mut message = pg.message().to_owned();
        if let Some(detail) = pg.detail() {
            message = format!("{message} (detail: {detail})");
        }
        if let Some(hint) = pg.hint() {
            message = format!("{message} (hint: {hint})");
        }
        // Where it happened: the COPY line and column, or the function.
        if let Some(context) = pg.r#where() {
            message = format!("{message} (context: {context})");
        }
        return DbError {
            kind: postgres_kind(&code),
            code: Some(code),
            message,
        };
    }
    if let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() {
        let number = my.number();
        return DbError {
            kind: mysql_kind(number),
            code: Some(number.to_string()),
            message: my.message().to_owned(),
        };
    }
    if let Some(lite) = db.try_downcast_ref::<SqliteError>() {
        let code = sqlx::error::DatabaseError::code(lite)
            .and_then(|c| c.parse::<i32>().ok())
            .unwrap_or(1);
        return DbError {
            kind: sqlite_kind(code),
            code: Some(code.to_string()),
            message: sqlx::error::DatabaseError::message(lite).to_owned(),
        };
    }
    DbError {
        kind: DbErrorKind::Other,
        code: db.code().map(|c| c.into_owned()),
        message: db.message().to_owned(),
    }
}

/// PostgreSQL SQLSTATE → kind.
///
/// Class 23 is integrity constraint violation; 40001/40P01 serialisation
/// failure and deadlock, 55P03 lock not available; 25006 read-only SQL
/// transaction; class 08 and 57P01–57P03 connection loss or shutdown; class 22
/// (data exception: out of range, invalid text for the type, value too long)
/// is a value that does not fit its column.
pub(crate) fn postgres_kind(sqlstate: &str) -> DbErrorKind {
    match sqlstate {
        s if s.starts_with("23") => DbErrorKind::Constraint,
        "40001" | "40P01" | "55P03" => DbErrorKind::Conflict,
        "25006" => DbErrorKind::ReadOnly,
        s if s.starts_with("08") => DbErrorKind::Connection,
        "57P01" | "57P02" | "57P03" => DbErrorKind::Connection,
        s if s.starts_with("22") => DbErrorKind::Value,
        _ => DbErrorKind::Other,
    }
}

/// MySQL/MariaDB error number → kind.
pub(crate) fn mysql_kind(number: u16) -> DbErrorKind {
    match number {
        // duplicate key, foreign key (old and new numbers), NOT NULL, CHECK (MariaDB 4025, MySQL 3819)
        1022 | 1062 | 1169 | 1586 | 1451 | 1452 | 1216 | 1217 | 1048 | 4025 | 3819 => {
            DbErrorKind::Constraint
        }
        // deadlock, lock wait timeout
        1213 | 1205 => DbErrorKind::Conflict,
        // read-only transaction, --read-only server, read-only mode
        1792 | 1290 | 1836 => DbErrorKind::ReadOnly,
        // server shutdown, connection killed (MariaDB 1927), query interrupted by KILL
        1053 | 1927 | 2006 | 2013 => DbErrorKind::Connection,
        // out of range, data too long, truncated, incorrect value for the column type
        1264 | 1406 | 1265 | 1366 | 1292 | 1367 => DbErrorKind::Value,
        _ => DbErrorKind::Other,
    }
}

/// SQLite extended result code → kind (the primary code is the low byte).
pub(crate) fn sqlite_kind(extended: i32) -> DbErrorKind {
    // SQLITE_CONSTRAINT_DATATYPE: a STRICT table refused a value of the wrong type.
    if extended == 3091 {
        return DbErrorKind::Value;
    }
    match extended & 0xff {
        19 => DbErrorKind::Constraint,           // SQLITE_CONSTRAINT
        5 | 6 => DbErrorKind::Conflict,          // SQLITE_BUSY, SQLITE_LOCKED
        8 => DbErrorKind::ReadOnly,              // SQLITE_READONLY
        10 | 14 | 26 => DbErrorKind::Connection, // SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_NOTADB
        20 | 18 => DbErrorKind::Value,           // SQLITE_MISMATCH, SQLITE_TOOBIG
        _ => DbErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_appends_code() {
        let e = DbError {
            kind: DbErrorKind::Constraint,
            code: Some("23505".into()),
            message: "duplicate key value violates unique constraint \"x\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "duplicate key value violates unique constraint \"x\" (code 23505)"
        );
        assert_eq!(DbError::usage("nope").to_string(), "nope");
    }

    #[test]
    fn codes_classify() {
        assert_eq!(postgres_kind("23505"), DbErrorKind::Constraint);
        assert_eq!(postgres_kind("40P01"), DbErrorKind::Conflict);
        assert_eq!(postgres_kind("25006"), DbErrorKind::ReadOnly);
        assert_eq!(postgres_kind("42601"), DbErrorKind::Other);
        assert_eq!(mysql_kind(1062), DbErrorKind::Constraint);
        assert_eq!(mysql_kind(1213), DbErrorKind::Conflict);
        assert_eq!(mysql_kind(1792), DbErrorKind::ReadOnly);
        assert_eq!(sqlite_kind(2067), DbErrorKind::Constraint); // SQLITE_CONSTRAINT_UNIQUE
        assert_eq!(sqlite_kind(8), DbErrorKind::ReadOnly);
        assert_eq!(sqlite_kind(5), DbErrorKind::Conflict);
    }

    #[test]
    fn context_names_the_connection_once() {
        let e = DbError::new(
            DbErrorKind::ReadOnly,
            "cannot execute INSERT in a read-only transaction",
        )
        .on_connection("source")
        .on_connection("source");
        assert_eq!(
            e.message,
            "connection `source` is read-only: cannot execute INSERT in a read-only transaction"
        );
    }
}
