//! The transactions of a session: begin, commit and rollback on every live
//! connection, each journaled as a `tx` entry (audit only; a replay has no live
//! connection, so these do nothing there).
//!
//! Read-only connections are rolled back where writable ones commit: they have
//! nothing to commit. Beginning stops at the first connection that refuses;
//! committing stops at the first failure (the report then says which
//! connections stayed committed). Before the first COMMIT the journal is synced
//! ([`crate::tape::Tape::sync`]).

use std::time::Duration;

use migrun_db::Access;

use super::{Session, SessionError};

/// How [`Session::begin_all`] begins the transactions of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginMode {
    /// At once ([`migrun_db::Connection::begin`]): a unit, `verify`, a dry-run.
    Now,
    /// With the next statement, after a checkpoint, so a pause between batches holds
    /// no SQLite write lock ([`migrun_db::Connection::begin_deferred`]).
    Deferred,
    /// Read-only in the session even on read-write connections: `configure` and
    /// `list-units` run before the backup ([`migrun_db::Connection::begin_read_only_phase`]).
    ReadOnlyPhase,
}

impl Session {
    /// Begins a transaction on every connection as `mode` says, journaling each `begin`.
    pub async fn begin_all(&mut self, mode: BeginMode) -> Result<(), SessionError> {
        for conn in self.live.values_mut() {
            let result = match mode {
                BeginMode::Now => conn.begin().await,
                BeginMode::Deferred => conn.begin_deferred().await,
                BeginMode::ReadOnlyPhase => conn.begin_read_only_phase().await,
            };
            self.tape.transaction(
                conn.name(),
                "begin",
                result.as_ref().err().map(ToString::to_string),
            )?;
            result.map_err(|error| SessionError::Begin {
                connection: conn.name().to_owned(),
                error,
            })?;
        }
        Ok(())
    }

    /// Gives every live connection the timeouts of the unit about to run
    /// ([`migrun_db::Connection::set_unit_timeouts`]; the unit reads and writes through any
    /// of them), or ends the previous unit's with [`migrun_db::UnitTimeouts::default`].
    /// Before the unit's first `begin_all`, so that SQLite's busy timeout already holds when
    /// `BEGIN IMMEDIATE` waits. Nothing in a replay: no connection is live.
    pub async fn set_unit_timeouts(
        &mut self,
        timeouts: migrun_db::UnitTimeouts,
    ) -> Result<(), SessionError> {
        for conn in self.live.values_mut() {
            if timeouts.is_empty() && conn.unit_timeouts().is_empty() {
                continue;
            }
            conn.set_unit_timeouts(timeouts)
                .await
                .map_err(|error| SessionError::Begin {
                    connection: conn.name().to_owned(),
                    error,
                })?;
        }
        Ok(())
    }

    /// Commits the writable connections (read-only ones are rolled back: they have nothing
    /// to commit), journaling each; stops at the first failure. The journal is synced
    /// first: nothing is committed that the journal on disk does not hold, and a journal
    /// that cannot be synced commits nothing.
    pub async fn commit_all(&mut self) -> Result<(), SessionError> {
        self.tape.sync()?;
        for conn in self.live.values_mut() {
            let (op, result) = if conn.access() == Access::ReadWrite {
                ("commit", conn.commit().await)
            } else {
                ("rollback", conn.rollback().await)
            };
            // A journal that cannot record the commit is reported by the footer step.
            let _ = self.tape.transaction(
                conn.name(),
                op,
                result.as_ref().err().map(ToString::to_string),
            );
            result.map_err(|error| SessionError::Commit {
                connection: conn.name().to_owned(),
                error,
            })?;
        }
        Ok(())
    }

    /// Ends the bulk insert streams still open (PostgreSQL: consecutive bulk inserts into
    /// one table share one `COPY`, whose rows the server judges when it ends), journaling
    /// each as a `bulk-insert-end` entry; also answers a stream failure of this unit that
    /// the plugin was told and went on anyway. Called at a unit's end before its ledger
    /// rows and commit, and before a checkpoint's. A replay answers with the failure the
    /// recorded run met in these steps, so that the same unit fails there.
    pub async fn finish_streams(&mut self) -> Result<(), SessionError> {
        if !self.tape.is_live() {
            let infos = &self.infos;
            return match self.tape.recorded_unit_end_failure()? {
                None => Ok(()),
                Some((connection, op, error)) => {
                    let dialect = infos.get(&connection).map(|i| i.dialect);
                    Err(SessionError::Recorded {
                        error: migrun_db::DbError::recorded(dialect, &error),
                        connection,
                        op,
                    })
                }
            };
        }
        for conn in self.live.values_mut() {
            let open = conn.has_open_stream();
            if !open && conn.stream_failure().is_none() {
                continue;
            }
            let result = conn.finish_bulk_insert().await;
            self.tape.transaction(
                conn.name(),
                "bulk-insert-end",
                result.as_ref().err().map(ToString::to_string),
            )?;
            result.map_err(|error| SessionError::BulkInsert {
                connection: conn.name().to_owned(),
                error,
            })?;
        }
        Ok(())
    }

    /// Rolls back every open transaction (each bounded by `timeout`), journaling each.
    pub async fn rollback_all(&mut self, timeout: Duration) {
        for conn in self.live.values_mut() {
            if !conn.in_transaction() {
                continue;
            }
            let error = match tokio::time::timeout(timeout, conn.rollback()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    tracing::warn!(
                        connection = conn.name(),
                        "rollback failed (the server discards the transaction when the connection closes): {e}"
                    );
                    Some(e.to_string())
                }
                Err(_) => {
                    // The session is stuck behind a statement the server is still running
                    // (a timeout stopped the plugin mid-call): cancel it on the server, so
                    // that its locks go now, then try the rollback once more.
                    conn.cancel_server_statement().await;
                    match tokio::time::timeout(timeout, conn.rollback()).await {
                        Ok(Ok(())) => None,
                        _ => {
                            tracing::warn!(
                                connection = conn.name(),
                                "rollback timed out; the connection will be closed"
                            );
                            Some("timed out".to_owned())
                        }
                    }
                }
            };
            let _ = self.tape.transaction(conn.name(), "rollback", error);
        }
    }
}
