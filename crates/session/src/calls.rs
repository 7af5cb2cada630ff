//! The plugin's database calls on the session: each is turned into a [`HostCall`]
//! and handed to the [`Tape`](crate::tape::Tape) — answered from a journal, or run
//! on the live connection and recorded — then shown to the [`CallObserver`]
//! (live calls only) and counted as writes.
//!
//! Database failures are answers ([`CallResult::Error`]), never `Err`: an `Err`
//! means the tape could not answer or record, and the run must stop.

use crate::tape::{Answer, TapeError};
use migrun_db::{self as db, Access, DbError, DbErrorKind};
use migrun_journal::{CallResult, HostCall};
use migrun_types::BulkWriteKind;
use migrun_types::value::Value;

use super::Session;

impl Session {
    /// `open`: whether the plugin declared a connection named `name`.
    pub async fn open(&mut self, name: String) -> Result<CallResult, TapeError> {
        self.perform(HostCall::Open { name }).await
    }

    /// `query`: every row of `sql` on `conn`.
    pub async fn query(
        &mut self,
        conn: String,
        sql: String,
        params: Vec<Value>,
    ) -> Result<CallResult, TapeError> {
        self.perform(HostCall::Query { conn, sql, params }).await
    }

    /// `execute`: runs `sql` on `conn`, answering the rows it affected.
    pub async fn execute(
        &mut self,
        conn: String,
        sql: String,
        params: Vec<Value>,
    ) -> Result<CallResult, TapeError> {
        self.perform(HostCall::Execute { conn, sql, params }).await
    }

    /// `open-cursor`: a server-side cursor over `sql`, read `batch_size` rows at a time.
    pub async fn open_cursor(
        &mut self,
        conn: String,
        sql: String,
        params: Vec<Value>,
        batch_size: u32,
    ) -> Result<CallResult, TapeError> {
        let call = HostCall::OpenCursor {
            conn,
            sql,
            params,
            batch_size,
        };
        self.perform(call).await
    }

    /// `next-batch` of the cursor numbered `cursor`; `rows: None` once it is exhausted.
    pub async fn next_batch(&mut self, cursor: u64) -> Result<CallResult, TapeError> {
        self.perform(HostCall::NextBatch { cursor }).await
    }

    /// Closes the cursor numbered `cursor` before its end.
    pub async fn close_cursor(&mut self, cursor: u64) -> Result<CallResult, TapeError> {
        self.perform(HostCall::CloseCursor { cursor }).await
    }

    /// `bulk-insert`: `rows` into `table`'s `columns` on `conn`.
    pub async fn bulk_insert(
        &mut self,
        conn: String,
        table: String,
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
    ) -> Result<CallResult, TapeError> {
        let call = HostCall::BulkInsert {
            conn,
            table,
            columns,
            rows,
        };
        self.perform(call).await
    }

    /// `bulk-update`, `bulk-upsert` or `bulk-delete` (contract 0.2.0): `rows` (key values,
    /// then values of `columns`) written into `table` on `conn` by `keys`.
    pub async fn bulk_write(
        &mut self,
        conn: String,
        kind: BulkWriteKind,
        table: String,
        keys: Vec<String>,
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
    ) -> Result<CallResult, TapeError> {
        let call = HostCall::BulkWrite {
            conn,
            kind,
            table,
            keys,
            columns,
            rows,
        };
        self.perform(call).await
    }

    /// Answers one call from the tape or runs it live (and records it), then counts writes.
    async fn perform(&mut self, call: HostCall) -> Result<CallResult, TapeError> {
        match self.tape.answer(&call)? {
            Answer::Recorded(result) => {
                self.count_written(&call, &result);
                Ok(result)
            }
            Answer::Live => {
                self.before_write(&call).await;
                // After a failed checkpoint the unit's transactions are gone on some
                // connections: a statement now would commit on its own, outside the unit.
                let refused = match &call {
                    HostCall::BulkInsert { .. } => self.non_transactional_refusal("bulk-insert"),
                    HostCall::BulkWrite { kind, .. } => {
                        self.non_transactional_refusal(kind.call_name())
                    }
                    _ => None,
                };
                let result = match (&self.checkpoint_failure, refused) {
                    (Some(failure), _) => error_result(DbError::usage(format!(
                        "no statement runs after a failed checkpoint in this unit ({failure})"
                    ))),
                    (None, Some(refused)) => error_result(refused),
                    (None, None) => self.run_live(&call).await,
                };
                if let Some(observer) = &mut self.observer {
                    observer.after_call(&call, &result);
                }
                self.digest(&call, &result);
                self.count_written(&call, &result);
                // Last, so that the call moves into the journal: a bulk insert's rows
                // are not copied once more for it.
                self.tape.record_owned(call, &result)?;
                // Outside a transaction the statement has committed already: its journal
                // entry goes to disk now, as a transactional unit's go before its COMMIT.
                if self.in_non_transactional_unit() {
                    self.tape.sync()?;
                }
                Ok(result)
            }
        }
    }

    /// Counts the rows a write call reports written, per connection.
    fn count_written(&mut self, call: &HostCall, result: &CallResult) {
        if let CallResult::Count { n } = *result {
            match call {
                HostCall::Execute { conn, .. } => self.count_writes(conn, 1, 0, n),
                HostCall::BulkInsert { conn, .. } => self.count_writes(conn, 0, 1, n),
                HostCall::BulkWrite { conn, .. } => self.count_bulk_write(conn, n),
                _ => {}
            }
        }
    }

    /// Adds a live call on a writable connection to the segment's digests (when gated).
    fn digest(&mut self, call: &HostCall, result: &CallResult) {
        let Some(digester) = &mut self.digester else {
            return;
        };
        let conn = match call {
            HostCall::Execute { conn, .. }
            | HostCall::Query { conn, .. }
            | HostCall::OpenCursor { conn, .. }
            | HostCall::BulkInsert { conn, .. }
            | HostCall::BulkWrite { conn, .. } => Some(conn),
            _ => None,
        };
        let dialect = match conn {
            Some(conn) => match self.infos.get(conn) {
                Some(info) if info.access == Access::ReadWrite => info.dialect,
                _ => return,
            },
            // Cursor batches: the digester knows which cursors are writes it counts.
            None => db::Dialect::Sqlite,
        };
        digester.observe(dialect, call, result);
    }

    /// Shows the observer a statement about to run on a writable live connection.
    async fn before_write(&mut self, call: &HostCall) {
        let (Some(observer), HostCall::Execute { conn, sql, .. }) = (&mut self.observer, call)
        else {
            return;
        };
        if self
            .infos
            .get(conn)
            .is_none_or(|i| i.access != Access::ReadWrite)
        {
            return;
        }
        if let Some(live) = self.live.get_mut(conn) {
            observer.before_write(live, sql).await;
        }
    }

    async fn run_live(&mut self, call: &HostCall) -> CallResult {
        match call {
            HostCall::Open { name } => {
                if self.infos.contains_key(name) {
                    CallResult::Opened
                } else if self.absent.contains(name) {
                    error_result(DbError {
                        kind: DbErrorKind::UnknownConnection,
                        code: None,
                        message: format!(
                            "connection `{name}` is optional and the operator did not configure it: \
                             it is not provided in this run"
                        ),
                    })
                } else {
                    let known: Vec<&str> = self.infos.keys().map(String::as_str).collect();
                    error_result(DbError {
                        kind: DbErrorKind::UnknownConnection,
                        code: None,
                        message: format!(
                            "no connection named `{name}`: the plugin declared {}",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    })
                }
            }
            HostCall::Query { conn, sql, params } => match self.live_conn(conn) {
                Ok(live) => match live.query(sql, params).await {
                    Ok(rows) => CallResult::Rows {
                        columns: columns(&rows.columns),
                        rows: rows.rows,
                    },
                    Err(e) => error_result(e),
                },
                Err(e) => error_result(e),
            },
            HostCall::Execute { conn, sql, params } => match self.live_conn(conn) {
                Ok(live) => match live.execute(sql, params).await {
                    Ok(n) => CallResult::Count { n },
                    Err(e) => error_result(e),
                },
                Err(e) => error_result(e),
            },
            HostCall::OpenCursor {
                conn,
                sql,
                params,
                batch_size,
            } => {
                let opened = match self.live_conn(conn) {
                    Ok(live) => live.open_cursor(sql, params, *batch_size).await,
                    Err(e) => Err(e),
                };
                match opened {
                    Ok(handle) => {
                        let id = self.next_cursor;
                        self.next_cursor += 1;
                        let result = CallResult::Cursor {
                            cursor: id,
                            columns: columns(handle.columns()),
                        };
                        self.live_cursors.insert(id, (conn.clone(), handle));
                        result
                    }
                    Err(e) => error_result(e),
                }
            }
            HostCall::NextBatch { cursor } => {
                let Some((conn, handle)) = self.live_cursors.get(cursor) else {
                    return CallResult::Batch { rows: None };
                };
                let Some(conn) = self.live.get_mut(conn) else {
                    return CallResult::Batch { rows: None };
                };
                let result = conn.next_batch(handle).await;
                if !matches!(result, Ok(Some(_))) {
                    conn.close_cursor(handle).await;
                    self.live_cursors.remove(cursor);
                }
                match result {
                    Ok(rows) => CallResult::Batch { rows },
                    Err(e) => error_result(e),
                }
            }
            HostCall::CloseCursor { cursor } => {
                if let Some((conn, handle)) = self.live_cursors.remove(cursor)
                    && let Some(conn) = self.live.get_mut(&conn)
                {
                    conn.close_cursor(&handle).await;
                }
                CallResult::Unit
            }
            HostCall::BulkInsert {
                conn,
                table,
                columns,
                rows,
            } => match self.live_conn(conn) {
                Ok(live) => match live.bulk_insert(table, columns, rows).await {
                    Ok(n) => CallResult::Count { n },
                    Err(e) => error_result(e),
                },
                Err(e) => error_result(e),
            },
            HostCall::BulkWrite {
                conn,
                kind,
                table,
                keys,
                columns,
                rows,
            } => match self.live_conn(conn) {
                Ok(live) => match live.bulk_write(*kind, table, keys, columns, rows).await {
                    Ok(n) => CallResult::Count { n },
                    Err(e) => error_result(e),
                },
                Err(e) => error_result(e),
            },
            // Only the database calls above are built in this file.
            HostCall::Log { .. }
            | HostCall::Progress { .. }
            | HostCall::Check { .. }
            | HostCall::BackupSnapshot { .. }
            | HostCall::BackupList
            | HostCall::BackupVerify { .. }
            | HostCall::CheckpointSave { .. }
            | HostCall::CheckpointLast
            | HostCall::FileOpen { .. }
            | HostCall::FileRead { .. }
            | HostCall::FileClose { .. }
            | HostCall::FileList { .. } => error_result(DbError::usage(
                "log, checks, backup, checkpoint and files calls belong to their own capabilities",
            )),
        }
    }

    /// The live connection `name`: every declared connection is connected before the
    /// plugin runs, so a missing one is a name the plugin never opened.
    fn live_conn(&mut self, name: &str) -> Result<&mut db::Connection, DbError> {
        self.live.get_mut(name).ok_or_else(|| {
            DbError::new(
                DbErrorKind::UnknownConnection,
                format!("no live connection named `{name}`"),
            )
        })
    }
}

fn columns(columns: &[db::Column]) -> Vec<(String, String)> {
    columns
        .iter()
        .map(|c| (c.name.clone(), c.type_name.clone()))
        .collect()
}

/// A database failure as the journal records it and the plugin receives it.
pub(super) fn error_result(e: DbError) -> CallResult {
    CallResult::Error {
        error_kind: e.kind.as_str().to_owned(),
        code: e.code,
        message: e.message,
    }
}
