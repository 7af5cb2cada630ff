//! [`SessionError`]: why the session's transaction control failed — a `BEGIN`,
//! a `COMMIT`, a ledger row, a checkpoint, or the journal recording them.
//!
//! Every variant but [`SessionError::Tape`] carries the database's own error
//! ([`SessionError::db_error`]), so the caller can tell a conflict (worth a
//! retry) from anything else without reading the message. The messages are
//! the ones the report shows; they name the connection.

use crate::tape::TapeError;
use migrun_db::DbError;

/// Why a begin, a commit, a ledger row or a checkpoint of the session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A connection refused the `BEGIN`.
    #[error("connection `{connection}`: cannot begin a transaction: {error}")]
    Begin {
        /// The connection.
        connection: String,
        /// Why.
        error: DbError,
    },
    /// A connection's `COMMIT` failed (the transaction is over: rolled back).
    #[error("commit on connection `{connection}` failed: {error}")]
    Commit {
        /// The connection.
        connection: String,
        /// Why.
        error: DbError,
    },
    /// The unit's ledger row could not be written inside its transaction.
    #[error("recording the unit in the ledger `{table}` on `{connection}` failed: {error}")]
    Ledger {
        /// The connection.
        connection: String,
        /// The ledger table.
        table: String,
        /// Why.
        error: DbError,
    },
    /// A bulk insert stream's rows were refused when it ended (PostgreSQL reports a bad
    /// row when the `COPY` ends): the message names the batch.
    #[error("bulk insert on connection `{connection}` failed: {error}")]
    BulkInsert {
        /// The connection.
        connection: String,
        /// Why, naming the batch.
        error: DbError,
    },
    /// A replay met the failure the recorded run met in the host's transaction step `op`
    /// (a stream's end, a ledger row, a commit): the replayed unit fails the same way.
    #[error("recorded: {op} on connection `{connection}` failed: {error}")]
    Recorded {
        /// The connection.
        connection: String,
        /// The step (`bulk-insert-end`, `record-ledger`, `commit`, …).
        op: String,
        /// The recorded error, classified again by its code.
        error: DbError,
    },
    /// After a checkpoint committed, the next transactions could not begin.
    #[error("cannot begin the transactions after the checkpoint: {0}")]
    BeginAfterCheckpoint(Box<SessionError>),
    /// `checkpoint.save` failed: the unit fails, whatever the plugin does with the error.
    #[error("checkpoint.save failed: {0}")]
    Checkpoint(Box<SessionError>),
    /// The segment's writes were refused before they could commit (a `--plan` run whose
    /// writes differ from the plan's): nothing of the segment was committed.
    #[error("{}", error.message)]
    Refused {
        /// Why, as a `refused` database error (what the plugin's `checkpoint.save` answers).
        error: DbError,
    },
    /// The journal could not record a `begin`.
    #[error(transparent)]
    Tape(#[from] TapeError),
}

impl SessionError {
    /// The database's error behind this failure; `None` when the journal failed.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            SessionError::Begin { error, .. }
            | SessionError::Commit { error, .. }
            | SessionError::BulkInsert { error, .. }
            | SessionError::Recorded { error, .. }
            | SessionError::Ledger { error, .. }
            | SessionError::Refused { error } => Some(error),
            SessionError::BeginAfterCheckpoint(inner) | SessionError::Checkpoint(inner) => {
                inner.db_error()
            }
            SessionError::Tape(_) => None,
        }
    }

    /// The database's error behind this failure, or the journal's when that failed.
    pub fn into_cause(self) -> Result<DbError, TapeError> {
        match self {
            SessionError::Begin { error, .. }
            | SessionError::Commit { error, .. }
            | SessionError::BulkInsert { error, .. }
            | SessionError::Recorded { error, .. }
            | SessionError::Ledger { error, .. }
            | SessionError::Refused { error } => Ok(error),
            SessionError::BeginAfterCheckpoint(inner) | SessionError::Checkpoint(inner) => {
                inner.into_cause()
            }
            SessionError::Tape(e) => Err(e),
        }
    }
}
