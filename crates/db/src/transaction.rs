//! The unit transaction of a [`Connection`]: begin (at once, deferred, or in a
//! read-only phase), commit, rollback, and what a schema change does to them
//! (see the module docs of `db`, "Transactions and schema changes").

use super::cursor::CursorStatus;
use super::{Access, Connection, DbError, DbErrorKind, sql};
use crate::driver_for;

impl Connection {
    /// The access the session runs with now: read-only during a read-only phase
    /// ([`Connection::begin_read_only_phase`]), else the access granted.
    pub fn effective_access(&self) -> Access {
        if self.read_only_phase {
            Access::ReadOnly
        } else {
            self.access
        }
    }

    /// Opens a transaction in which even a read-write connection is read-only in
    /// the session, for the plugin code that runs before the before-run backup
    /// (`configure`, `list-units`): PostgreSQL `BEGIN … READ ONLY` with its
    /// snapshot taken, MariaDB `SET SESSION TRANSACTION READ ONLY` and `START
    /// TRANSACTION READ ONLY`, SQLite `PRAGMA query_only = ON` and `BEGIN`.
    /// The phase ends with [`Connection::rollback`], which restores the access.
    pub async fn begin_read_only_phase(&mut self) -> Result<(), DbError> {
        if self.access == Access::ReadOnly {
            return self.begin().await;
        }
        self.read_only_phase = true;
        if let Some(setup) = driver_for(self.dialect).read_only_phase_sql(true)
            && let Err(e) = self.host_simple(setup).await
        {
            self.read_only_phase = false;
            return Err(e);
        }
        let begun = self.begin().await;
        if begun.is_err() {
            self.end_read_only_phase().await?;
        }
        begun
    }

    /// Gives a read-write connection its access back after a read-only phase.
    pub(super) async fn end_read_only_phase(&mut self) -> Result<(), DbError> {
        if !std::mem::take(&mut self.read_only_phase) {
            return Ok(());
        }
        match driver_for(self.dialect).read_only_phase_sql(false) {
            Some(sql) => self.host_simple(sql).await,
            None => Ok(()),
        }
    }

    /// Opens the unit transaction (see the module docs for the statement per dialect).
    pub async fn begin(&mut self) -> Result<(), DbError> {
        if self.in_transaction {
            return Err(DbError::usage(format!(
                "connection `{}` already has an open transaction",
                self.name
            )));
        }
        if let Some(escape) = self.escape.as_ref().filter(|e| e.may_have_committed) {
            return Err(DbError::new(
                DbErrorKind::Refused,
                format!(
                    "connection `{}` takes no new transaction in this run: {}",
                    self.name, escape.found
                ),
            ));
        }
        let sql = self.begin_sql();
        let begun = self.idle()?.simple(sql).await;
        begun.map_err(|e| self.explain(e))?;
        self.in_transaction = true;
        if let Err(e) = self.apply_transaction_timeouts().await {
            let _ = self.rollback().await;
            return Err(e);
        }
        self.mark_session()
            .await
            .map_err(|e| e.on_connection(&self.name))
    }

    /// Opens the unit transaction as [`Connection::begin`] does, but sends the
    /// `BEGIN` with the next statement instead of now.
    ///
    /// Used after a checkpoint: the work so far is committed and the plugin
    /// typically pauses before its next batch. On SQLite a read-write
    /// transaction begins with `BEGIN IMMEDIATE`, which takes the database's
    /// write lock, so beginning at once would hold the lock through the pause
    /// and leave other writers (the application whose table is backfilled)
    /// no room. Deferred, the lock is free until the next batch starts.
    /// A read-only transaction still begins at once: it takes its snapshot
    /// then (see the module docs). Commit and rollback of a transaction that
    /// never sent its `BEGIN` have nothing to do.
    pub async fn begin_deferred(&mut self) -> Result<(), DbError> {
        if self.access == Access::ReadOnly {
            return self.begin().await;
        }
        if self.in_transaction {
            return Err(DbError::usage(format!(
                "connection `{}` already has an open transaction",
                self.name
            )));
        }
        self.idle()?;
        self.in_transaction = true;
        self.begin_pending = true;
        Ok(())
    }

    /// Sends the `BEGIN` of a deferred transaction, before the first
    /// statement that runs in it.
    pub(super) async fn send_pending_begin(&mut self) -> Result<(), DbError> {
        if !self.begin_pending {
            return Ok(());
        }
        let sql = self.begin_sql();
        let begun = self.idle()?.simple(sql).await;
        begun.map_err(|e| self.explain(e))?;
        self.begin_pending = false;
        self.apply_transaction_timeouts().await?;
        self.mark_session()
            .await
            .map_err(|e| e.on_connection(&self.name))
    }

    /// Commits the unit transaction. An open cursor is closed first (its rows
    /// were only read). If the commit fails the transaction is over anyway
    /// (rolled back), and the error says why.
    pub async fn commit(&mut self) -> Result<(), DbError> {
        self.finish_cursor(CursorStatus::Closed).await;
        // A bulk insert stream's rows are the server's to judge before anything commits;
        // a stream that failed (now or earlier, whatever the plugin did with the error)
        // aborted the transaction: it is rolled back, and the failure is the answer.
        let _ = self.settle_stream().await;
        if let Some(failure) = self.stream_failure.clone() {
            let _ = self.rollback().await;
            return Err(failure);
        }
        if !self.in_transaction {
            return Err(DbError::usage(format!(
                "connection `{}` has no open transaction to commit",
                self.name
            )));
        }
        // A cursor's statement is checked like any other before its work is committed.
        if std::mem::take(&mut self.check_due) {
            let _ = self.check_session("", true).await;
        }
        if let Some(escape) = &self.escape {
            return Err(DbError::new(
                DbErrorKind::Refused,
                format!(
                    "connection `{}`: nothing was committed by the host: {}",
                    self.name, escape.found
                ),
            ));
        }
        self.in_transaction = false;
        self.ddl_in_transaction = false;
        self.marks.pg_transaction_start = None;
        self.marks.mariadb_counters = None;
        if std::mem::take(&mut self.begin_pending) {
            return Ok(());
        }
        let backend = self.idle()?;
        if let Err(e) = backend.simple("COMMIT").await {
            // SQLite keeps the transaction open after a failed COMMIT (e.g. SQLITE_BUSY).
            let _ = backend.simple("ROLLBACK").await;
            return Err(e.on_connection(&self.name));
        }
        Ok(())
    }

    /// Rolls the unit transaction back, closing any open cursor first. Does
    /// nothing when no transaction is open.
    pub async fn rollback(&mut self) -> Result<(), DbError> {
        self.finish_cursor(CursorStatus::Closed).await;
        self.abort_stream().await;
        self.clear_stream_failure();
        self.check_due = false;
        // A transaction the database rolled back itself is over now for the host too.
        if self.escape.as_ref().is_some_and(|e| !e.may_have_committed) {
            self.escape = None;
        }
        self.marks.pg_transaction_start = None;
        self.marks.mariadb_counters = None;
        if !self.in_transaction {
            return self.end_read_only_phase().await;
        }
        self.in_transaction = false;
        let ddl = std::mem::take(&mut self.ddl_in_transaction);
        if std::mem::take(&mut self.begin_pending) {
            return Ok(());
        }
        let backend = self.idle()?;
        let result = backend.simple("ROLLBACK").await;
        if ddl && result.is_ok() {
            // Rolled-back DDL leaves cached plans for a schema that no longer exists.
            backend
                .clear_statement_cache()
                .await
                .map_err(|e| e.on_connection(&self.name))?;
        }
        result.map_err(|e| e.on_connection(&self.name))?;
        self.end_read_only_phase()
            .await
            .map_err(|e| e.on_connection(&self.name))
    }

    /// Keeps the connection's invariants after a successful schema change.
    ///
    /// PostgreSQL: sqlx keeps prepared statements, and one whose result columns
    /// changed (`SELECT *` after `ALTER TABLE … ADD COLUMN`) would fail with
    /// "cached plan must not change result type"; the cache is cleared (also
    /// on MySQL, whose cached statements would report the old columns).
    /// MySQL: DDL commits the open transaction implicitly; a new one is opened
    /// so that the rest of the unit still runs in a transaction (the DDL and
    /// what came before it stay committed; `TEMPORARY` tables commit nothing).
    pub(super) async fn after_ddl(&mut self, text: &str) -> Result<(), DbError> {
        let words = sql::leading_keywords(text, self.dialect, 4);
        if !matches!(
            words.first().map(String::as_str),
            Some("CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE")
        ) {
            return Ok(());
        }
        let effects = driver_for(self.dialect).ddl_effects();
        let (in_transaction, begin) = (self.in_transaction, self.begin_sql());
        if effects.rollback_clears_statement_cache && in_transaction {
            self.ddl_in_transaction = true;
        }
        let name = self.name.clone();
        let backend = self.idle()?;
        let reopened = async {
            // SQLite notices schema changes by itself (`Backend::check_schema`).
            if effects.clears_statement_cache {
                backend.clear_statement_cache().await?;
            }
            if effects.commits_transaction
                && in_transaction
                && !words.iter().any(|w| w == "TEMPORARY")
            {
                backend.simple(begin).await?;
                return Ok(true);
            }
            Ok::<_, DbError>(false)
        }
        .await
        .map_err(|e| e.on_connection(&name))?;
        if reopened {
            // The host's own `START TRANSACTION` moved the session's counters.
            self.mark_session()
                .await
                .map_err(|e| e.on_connection(&name))?;
        }
        Ok(())
    }

    pub(super) fn begin_sql(&self) -> &'static str {
        driver_for(self.dialect).begin_sql(self.effective_access())
    }

    /// On a read-only PostgreSQL connection outside a host transaction, opens
    /// a `READ ONLY` transaction around one call (see the module docs).
    ///
    /// Every statement path passes here first, so it also sends a deferred
    /// transaction's `BEGIN` ([`Connection::begin_deferred`]).
    pub(super) async fn wrap_begin(&mut self) -> Result<bool, DbError> {
        self.send_pending_begin().await?;
        if !driver_for(self.dialect).wraps_read_only_statements()
            || self.access != Access::ReadOnly
            || self.in_transaction
        {
            return Ok(false);
        }
        self.idle()?
            .simple("BEGIN READ ONLY")
            .await
            .map_err(|e| e.on_connection(&self.name))?;
        Ok(true)
    }

    pub(super) async fn wrap_end(&mut self, wrapped: bool, ok: bool) {
        if wrapped && let Ok(backend) = self.idle() {
            let _ = backend.simple(if ok { "COMMIT" } else { "ROLLBACK" }).await;
        }
    }
}
