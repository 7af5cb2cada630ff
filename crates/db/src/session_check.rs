//! The session check: after every plugin statement, the database itself says
//! whether the host's transaction, access mode and database are still there.
//!
//! The guard (`guard.rs`) reads SQL text and can be fooled by anything the
//! server lexes differently; this check cannot, because it asks the server
//! (or SQLite) for the state the statement left behind:
//!
//! | dialect | asked | means the statement escaped |
//! |---|---|---|
//! | SQLite | `sqlite3_get_autocommit` | no transaction where the host holds one |
//! | PostgreSQL | `now()`, the transaction's start time, against the one read at `BEGIN` | another (or no) transaction |
//! | MariaDB | `@@in_transaction`, `@@tx_read_only`, `DATABASE()` after every statement; after any statement that is not a plain `SELECT`/`INSERT`/`UPDATE`/`DELETE`/`REPLACE`/`WITH`, also the session's `COMMIT`/`ROLLBACK`/`BEGIN`/`XA` counters (`information_schema.SESSION_STATUS`) against the ones read after the host's own last transaction statement | no transaction, a read-write session on a read-only connection, another database, or a commit/begin that the host did not send (a procedure committing and beginning again) |
//!
//! A plain DML statement cannot commit on MariaDB (functions and triggers
//! may not), so the counters, which cost a scan of the session's status,
//! are read only after the other statements.
//!
//! What follows an escape: the connection is closed to the plugin (every
//! later statement, and the host's own commit, is refused), the unit fails
//! whatever the plugin does with the error, and the report says what may
//! have been committed on which connection ([`SessionEscape`]). A transaction
//! that the database itself rolled back after a failed statement (a
//! deadlock victim on MariaDB; SQLite after `SQLITE_FULL`) is reported as
//! rolled back, not as a possible commit.

use sqlx::Row as _;

use super::backend::Backend;
use super::{Access, Connection, DbError, DbErrorKind, Dialect, sql, sqlite_authorizer};

/// MariaDB status counters of transaction statements; a plugin statement never moves them.
const MARIADB_TX_COUNTERS_SQL: &str = "SELECT CAST(COALESCE(SUM(VARIABLE_VALUE), 0) AS SIGNED) \
     FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME IN \
     ('COM_COMMIT', 'COM_ROLLBACK', 'COM_BEGIN', 'COM_XA_START', 'COM_XA_END', \
      'COM_XA_PREPARE', 'COM_XA_COMMIT', 'COM_XA_ROLLBACK')";

/// A plugin statement that took the session out of the host's hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEscape {
    /// The connection.
    pub connection: String,
    /// What the session check found, in words.
    pub found: String,
    /// Whether work of the unit may have been committed (otherwise it was rolled back).
    pub may_have_committed: bool,
}

impl SessionEscape {
    /// The consequence in one sentence, for the report.
    pub fn consequence(&self) -> String {
        if self.may_have_committed {
            format!(
                "on connection `{}` the unit's work before that statement MAY HAVE BEEN COMMITTED \
                 ({}); migrun cannot roll it back — compare with the before-run backup",
                self.connection, self.found
            )
        } else {
            format!(
                "on connection `{}` the transaction was rolled back by the database ({})",
                self.connection, self.found
            )
        }
    }
}

/// What the host expects of the session between plugin statements, read at `BEGIN`.
#[derive(Debug, Default, Clone)]
pub(crate) struct SessionMarks {
    /// PostgreSQL: the open transaction's `now()`.
    pub(crate) pg_transaction_start: Option<String>,
    /// MariaDB: the transaction counters after the host's last transaction statement.
    pub(crate) mariadb_counters: Option<i64>,
    /// MariaDB: the database the session must be in (the URL's, or a dry-run's scratch).
    pub(crate) mariadb_database: Option<String>,
}

/// Whether a MariaDB statement starting with `first` is plain DML (see the module docs).
fn plain_dml(first: &str) -> bool {
    matches!(
        first,
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "WITH" | "VALUES" | "TABLE"
    )
}

impl Connection {
    /// Reads the marks of a transaction the host just began (or of the session, outside one).
    pub(super) async fn mark_session(&mut self) -> Result<(), DbError> {
        let in_transaction = self.in_transaction && !self.begin_pending;
        let backend = self.idle()?;
        match backend {
            Backend::Postgres(conn, _) if in_transaction => {
                let row = sqlx::query("SELECT now()::text")
                    .fetch_one(&mut *conn)
                    .await?;
                self.marks.pg_transaction_start = Some(row.try_get(0)?);
            }
            Backend::Postgres(..) => self.marks.pg_transaction_start = None,
            Backend::MySql(conn, _) => {
                let row = sqlx::query(MARIADB_TX_COUNTERS_SQL)
                    .fetch_one(&mut *conn)
                    .await?;
                self.marks.mariadb_counters = Some(row.try_get(0)?);
            }
            Backend::Sqlite(..) => {}
        }
        Ok(())
    }

    /// The statements of the plugin are closed on this connection after an escape.
    pub(super) fn refuse_after_escape(&self) -> Result<(), DbError> {
        match &self.escape {
            Some(escape) => Err(DbError::new(
                DbErrorKind::Refused,
                format!(
                    "connection `{}` no longer runs the plugin's statements: {}",
                    self.name, escape.found
                ),
            )),
            None => Ok(()),
        }
    }

    /// The escape found on this connection, if any.
    pub fn escape(&self) -> Option<&SessionEscape> {
        self.escape.as_ref()
    }

    /// Checks the session after a plugin statement (`text`, which `succeeded` or not).
    /// On an escape, records it, closes the connection to the plugin and returns the error
    /// the plugin gets instead of the statement's result.
    pub(super) async fn check_session(
        &mut self,
        text: &str,
        succeeded: bool,
    ) -> Result<(), DbError> {
        if self.escape.is_some() {
            return self.refuse_after_escape();
        }
        let found = match self.inspect_session(text, succeeded).await {
            Ok(found) => found,
            // The server cannot answer: the connection is gone, and with it the transaction.
            Err(e) if e.kind == DbErrorKind::Connection => return Ok(()),
            Err(e) => Some((
                format!("the host could not check the session after the statement: {e}"),
                true,
            )),
        };
        let Some((found, may_have_committed)) = found else {
            return Ok(());
        };
        tracing::error!(connection = %self.name, "session escaped: {found}");
        self.escape = Some(SessionEscape {
            connection: self.name.clone(),
            found,
            may_have_committed,
        });
        // What the host can still put right: a transaction the statement opened is
        // rolled back, the session goes back to its database; the host's own
        // transaction is over either way.
        let _ = self.host_simple("ROLLBACK").await;
        if let Some(database) = self.marks.mariadb_database.clone()
            && let Ok(q) = Dialect::MySql.quote_identifier(&database)
        {
            let _ = self.host_simple(&format!("USE {q}")).await;
        }
        if self.effective_access() == Access::ReadOnly && self.dialect == Dialect::MySql {
            let _ = self.host_simple("SET SESSION TRANSACTION READ ONLY").await;
        }
        // `in_transaction` stays as the host left it: the runner's rollback still comes
        // through here, and it is what forgets a transaction the database rolled back.
        self.refuse_after_escape()
    }

    /// `Some((what was found, may have committed))` when the session is not as the host left it.
    async fn inspect_session(
        &mut self,
        text: &str,
        succeeded: bool,
    ) -> Result<Option<(String, bool)>, DbError> {
        let expected = self.in_transaction && !self.begin_pending;
        let read_only = self.effective_access() == Access::ReadOnly;
        let dialect = self.dialect;
        let first = sql::leading_keywords(text, dialect, 1)
            .pop()
            .unwrap_or_default();
        let marks = self.marks.clone();
        let backend = self.idle()?;
        Ok(match backend {
            Backend::Sqlite(conn, ..) => {
                let now = sqlite_authorizer::in_transaction(conn).await?;
                match (expected, now) {
                    (true, false) if succeeded => Some((
                        "the statement ended the unit's transaction".to_owned(),
                        true,
                    )),
                    (true, false) => Some((
                        "SQLite rolled the transaction back after the statement's error".to_owned(),
                        false,
                    )),
                    (false, true) => Some((
                        "the statement opened a transaction of its own".to_owned(),
                        false,
                    )),
                    _ => None,
                }
            }
            Backend::Postgres(conn, _) => {
                let Some(start) = marks.pg_transaction_start.filter(|_| expected) else {
                    return Ok(None);
                };
                match sqlx::query("SELECT now()::text")
                    .fetch_one(&mut *conn)
                    .await
                {
                    Ok(row) => {
                        let now: String = row.try_get(0)?;
                        (now != start).then(|| {
                            (
                                "the statement ended the unit's transaction (the session is in another transaction, or none)"
                                    .to_owned(),
                                true,
                            )
                        })
                    }
                    // 25P02: the transaction is aborted by an earlier error, but it is still the host's.
                    Err(e) => {
                        let e = DbError::from(e);
                        if e.code.as_deref() == Some("25P02") {
                            None
                        } else {
                            return Err(e);
                        }
                    }
                }
            }
            Backend::MySql(conn, _) => {
                let row = sqlx::query(
                    "SELECT CAST(@@in_transaction AS SIGNED), CAST(@@tx_read_only AS SIGNED), DATABASE()",
                )
                .fetch_one(&mut *conn)
                .await?;
                let in_transaction: i64 = row.try_get(0)?;
                let tx_read_only: i64 = row.try_get(1)?;
                let database: Option<String> = row.try_get(2)?;
                let counters = if plain_dml(&first) {
                    None
                } else {
                    let row = sqlx::query(MARIADB_TX_COUNTERS_SQL)
                        .fetch_one(&mut *conn)
                        .await?;
                    Some(row.try_get::<i64, _>(0)?)
                };
                if read_only && tx_read_only == 0 {
                    Some((
                        "the statement made the read-only session read-write".to_owned(),
                        true,
                    ))
                } else if marks.mariadb_database.is_some() && database != marks.mariadb_database {
                    Some((
                        format!(
                            "the statement switched the session to database `{}`",
                            database.as_deref().unwrap_or("(none)")
                        ),
                        true,
                    ))
                } else if let (Some(now), Some(before)) = (counters, marks.mariadb_counters)
                    && now != before
                {
                    Some((
                        "the statement committed, rolled back or began a transaction of its own"
                            .to_owned(),
                        true,
                    ))
                } else if expected && in_transaction == 0 {
                    if !succeeded && plain_dml(&first) {
                        Some((
                            "the server rolled the transaction back after the statement's error"
                                .to_owned(),
                            false,
                        ))
                    } else {
                        Some((
                            "the statement ended the unit's transaction".to_owned(),
                            true,
                        ))
                    }
                } else {
                    None
                }
            }
        })
    }
}
