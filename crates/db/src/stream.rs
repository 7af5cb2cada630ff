//! Streaming bulk inserts on PostgreSQL: consecutive [`Connection::bulk_insert`]
//! calls into the same table and columns, inside the host's transaction, share
//! one open `COPY … FROM STDIN`.
//!
//! The first call reads the target columns' types, starts the `COPY` and hands
//! the physical connection to a writer task (as a cursor does, `cursor.rs`);
//! every call encodes its rows in the caller and queues them, in pieces of about
//! 1 MiB, on a bounded channel the task drains onto the socket. A call returns
//! as soon as its rows are queued: the number of rows *accepted into the
//! stream*. While the task sends, the plugin already reads its next batch on
//! another connection, so reading and writing overlap; the channel's bound
//! (and TCP flow control behind it) keeps memory flat.
//!
//! The stream ends ([`Connection::settle_stream`]) before anything else runs on
//! the connection: another statement, a cursor, a bulk insert into another
//! table (or one whose values need the other `COPY` format), host SQL (ledger
//! rows, catalog reads), a commit. PostgreSQL reports a bad row only when the
//! `COPY` ends, so that is where its error surfaces: as the answer of the call
//! that ended the stream, or of the unit's end. The error names the batch —
//! the n-th bulk insert into the table in this unit and its first row's
//! position — found from the `line` the server names. The failure is also kept
//! ([`Connection::stream_failure`]): the transaction is aborted, and a commit
//! refuses, whatever the plugin did with the error.
//!
//! Outside a host transaction (autocommit) and on MySQL/MariaDB and SQLite a
//! bulk insert stays one complete statement per call (`bulk.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::backend::{Backend, CopyPlan, copy_plan};
use super::{Connection, DbError, DbErrorKind, State, postgres};
use migrun_types::value::Value;

/// Bytes per piece queued to the writer task.
const PIECE: usize = 1 << 20;
/// Pieces the channel holds before a call waits for the socket: with the piece
/// in flight, at most about 4 MiB of encoded rows per open stream. The server's
/// ingest is the bound of a bulk copy (docs/PERFORMANCE.md): a few MiB queued keep
/// it busy while the plugin reads and maps its next batch; more only held memory
/// (8 pieces measured no faster, and 5 MiB more resident).
const QUEUED_PIECES: usize = 3;

/// One bulk insert's rows inside a stream.
#[derive(Debug, Clone)]
struct Segment {
    /// Which bulk insert into the table this is, in the unit (1-based).
    call: u64,
    /// Its first row's position among the unit's rows into the table (0-based).
    first_row: u64,
    /// Its first row's line in the `COPY` stream (1-based, as the server counts).
    first_line: u64,
    /// How many rows it sent.
    rows: u64,
}

/// The connection's side of an open `COPY` and its writer task.
pub(crate) struct ActiveCopy {
    /// The table as the plugin named it, and the columns: what a call must match to join.
    table: String,
    columns: Vec<String>,
    /// How each column is written, and in which format; what was checked.
    plan: CopyPlan,
    /// The connection's resolved types when the stream started (typed values' oids).
    types: postgres::TypeCache,
    /// Where encoded pieces go; dropped to end the stream.
    pieces: mpsc::Sender<Vec<u8>>,
    /// Set before the end to abort (`CopyFail`) instead of finishing: a rollback.
    abort: Arc<AtomicBool>,
    /// Rows queued so far (the next row's line is `rows_sent + 1`).
    rows_sent: u64,
    segments: Vec<Segment>,
    /// The task: gives the connection back, with the `COPY`'s row count or error.
    task: JoinHandle<(Backend, Result<u64, DbError>)>,
}

/// Per table, what this unit bulk-inserted so far on a connection: calls and rows.
#[derive(Debug, Default, Clone)]
pub(crate) struct BulkCounts(BTreeMap<String, (u64, u64)>);

impl BulkCounts {
    /// Counts one call of `rows` rows into `table`; returns (its number, its first row).
    fn next(&mut self, table: &str, rows: u64) -> (u64, u64) {
        let entry = self.0.entry(table.to_owned()).or_default();
        let at = (entry.0 + 1, entry.1);
        entry.0 += 1;
        entry.1 += rows;
        at
    }
}

/// Encodes `rows` into pieces of about [`PIECE`] bytes; `header` starts a binary stream.
fn encode(
    plan: &CopyPlan,
    types: &postgres::TypeCache,
    rows: &[Vec<Value>],
    header: bool,
) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut buf = Vec::with_capacity(PIECE + (PIECE >> 2));
    if header && plan.binary {
        buf.extend_from_slice(postgres::COPY_BINARY_HEADER);
    }
    for row in rows {
        if plan.binary {
            postgres::copy_binary_row(&plan.kinds, row, types, &mut buf);
        } else {
            postgres::copy_text_row(&plan.kinds, row, &mut buf);
        }
        if buf.len() >= PIECE {
            pieces.push(std::mem::replace(
                &mut buf,
                Vec::with_capacity(PIECE + (PIECE >> 2)),
            ));
        }
    }
    if !buf.is_empty() {
        pieces.push(buf);
    }
    pieces
}

/// Whether `rows` can join a stream written by `plan` without a new check against the
/// catalog: every value passes the host's own checks (a vector's dimensions, a typed
/// value already checked against its column) and has the stream's format. A call that
/// does not fit starts a stream of its own, whose [`copy_plan`] reports what is wrong.
fn fits(plan: &CopyPlan, rows: &[Vec<Value>]) -> bool {
    rows.iter().all(|row| {
        plan.kinds
            .iter()
            .zip(row)
            .enumerate()
            .all(|(c, (kind, value))| {
                postgres::vector_value_error(*kind, value).is_none()
                    && (!plan.binary || postgres::copy_binary_supported(*kind, value))
                    && match value {
                        Value::Typed { type_name, .. } => {
                            plan.typed_checked.contains(&(c, type_name.clone()))
                        }
                        _ => true,
                    }
            })
    })
}

/// Starts `statement` on `backend` in a task that sends every piece it receives and
/// finishes (or aborts) the `COPY` when the channel closes. `started` says whether the
/// server accepted the statement; on refusal the task ends at once with the error.
fn spawn_writer(
    mut backend: Backend,
    statement: String,
    binary: bool,
    mut incoming: mpsc::Receiver<Vec<u8>>,
    abort: Arc<AtomicBool>,
    started: oneshot::Sender<bool>,
) -> JoinHandle<(Backend, Result<u64, DbError>)> {
    tokio::spawn(async move {
        let result = async {
            let Backend::Postgres(conn, _) = &mut backend else {
                let _ = started.send(false);
                return Err(DbError::usage(
                    "a COPY stream needs a PostgreSQL connection",
                ));
            };
            let mut copy = match conn.copy_in_raw(&statement).await {
                Ok(copy) => {
                    let _ = started.send(true);
                    copy
                }
                Err(e) => {
                    let _ = started.send(false);
                    return Err(DbError::from(e));
                }
            };
            while let Some(piece) = incoming.recv().await {
                if let Err(e) = copy.send(piece).await {
                    // Abort so the server ends the COPY and the connection stays usable.
                    let _ = copy.abort("migrun: sending COPY data failed").await;
                    return Err(DbError::from(e));
                }
            }
            if abort.load(Ordering::Acquire) {
                let _ = copy.abort("migrun: the transaction is rolled back").await;
                return Ok(0);
            }
            if binary && let Err(e) = copy.send(postgres::COPY_BINARY_TRAILER).await {
                let _ = copy.abort("migrun: sending COPY data failed").await;
                return Err(DbError::from(e));
            }
            Ok(copy.finish().await?)
        }
        .await;
        (backend, result)
    })
}

/// The `line` of a `COPY` error's context (`COPY t, line 2501, column x: …`).
fn failing_line(message: &str) -> Option<u64> {
    let at = message.find("(context: COPY ")?;
    let rest = &message[at..];
    let line = rest.find(", line ")? + ", line ".len();
    let digits: String = rest[line..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `error` (the server's, at the end of the stream into `table`) naming the batch of
/// `segments` it came from.
fn name_batch(connection: &str, table: &str, segments: &[Segment], error: DbError) -> DbError {
    {
        let which = failing_line(&error.message).and_then(|line| {
            segments
                .iter()
                .find(|s| line >= s.first_line && line < s.first_line + s.rows)
                .map(|s| (s, line - s.first_line))
        });
        let batch = match which {
            Some((s, offset)) => format!(
                "the {} bulk insert into `{}` in this unit (its first row is row {} of the unit's rows into `{}`; \
                 the failing row is its row {offset}, counting from 0) failed",
                ordinal(s.call),
                table,
                s.first_row,
                table
            ),
            None => {
                let first = segments.first().map_or(0, |s| s.call);
                let last = segments.last().map_or(0, |s| s.call);
                format!(
                    "one of the {} to {} bulk inserts into `{}` in this unit failed",
                    ordinal(first),
                    ordinal(last),
                    table
                )
            }
        };
        DbError {
            kind: error.kind,
            code: error.code,
            message: format!(
                "connection `{connection}`: {batch}; the server reported it when the COPY stream ended: {}",
                error.message
            ),
        }
    }
}

impl Connection {
    /// A bulk insert inside the host's transaction on PostgreSQL: joins the open stream
    /// when it goes to the same table and columns in a format its rows fit, otherwise
    /// ends that stream and starts one. Returns the rows accepted into the stream.
    pub(super) async fn stream_insert(
        &mut self,
        table: &str,
        table_sql: &str,
        column_sql: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        let joins = match &self.state {
            State::Copy(active) => {
                active.table == table && active.columns == columns && fits(&active.plan, rows)
            }
            _ => false,
        };
        if !joins {
            self.settle_for_plugin().await?;
            self.start_stream(table, table_sql, column_sql, columns, rows)
                .await?;
        }
        let (call, first_row) = self.bulk_counts.next(table, rows.len() as u64);
        let State::Copy(active) = &mut self.state else {
            return Err(DbError::usage(format!(
                "connection `{}`: the bulk insert stream is gone",
                self.name
            )));
        };
        let header = active.rows_sent == 0;
        let pieces = encode(&active.plan, &active.types, rows, header);
        active.segments.push(Segment {
            call,
            first_row,
            first_line: active.rows_sent + 1,
            rows: rows.len() as u64,
        });
        active.rows_sent += rows.len() as u64;
        let mut queued = true;
        for piece in pieces {
            if active.pieces.send(piece).await.is_err() {
                queued = false;
                break;
            }
        }
        if !queued {
            // The task stopped early (the socket failed): its error is the answer.
            self.settle_for_plugin().await?;
            return Err(DbError::new(
                DbErrorKind::Connection,
                format!("connection `{}`: the COPY stream stopped", self.name),
            ));
        }
        Ok(rows.len() as u64)
    }

    /// Reads the target columns, starts the `COPY` and moves the connection into its task.
    async fn start_stream(
        &mut self,
        table: &str,
        table_sql: &str,
        column_sql: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<(), DbError> {
        self.before_plugin_statement().await?;
        self.send_pending_begin().await?;
        let (plan, types) = match self.idle()? {
            Backend::Postgres(conn, types) => {
                let plan = copy_plan(conn, types, table_sql, columns, rows).await?;
                (plan, types.clone())
            }
            _ => {
                return Err(DbError::usage(
                    "a COPY stream needs a PostgreSQL connection",
                ));
            }
        };
        let statement = if plan.binary {
            format!("COPY {table_sql} ({column_sql}) FROM STDIN (FORMAT binary)")
        } else {
            format!("COPY {table_sql} ({column_sql}) FROM STDIN")
        };
        let backend = match std::mem::replace(&mut self.state, State::Broken(String::new())) {
            State::Idle(backend) => backend,
            other => {
                self.state = other;
                return Err(DbError::usage(format!(
                    "connection `{}` is busy",
                    self.name
                )));
            }
        };
        let (pieces, incoming) = mpsc::channel(QUEUED_PIECES);
        let (started, accepted) = oneshot::channel();
        let abort = Arc::new(AtomicBool::new(false));
        let task = spawn_writer(
            backend,
            statement,
            plan.binary,
            incoming,
            abort.clone(),
            started,
        );
        if accepted.await != Ok(true) {
            // Refused at once (no such table or column, a read-only session …): the
            // task ended; its error is this call's answer, as before streaming.
            return match task.await {
                Ok((backend, result)) => {
                    self.state = State::Idle(backend);
                    Err(result
                        .err()
                        .unwrap_or_else(|| DbError::usage("the COPY did not start")))
                }
                Err(e) => {
                    self.state = State::Broken(format!("the COPY task failed: {e}"));
                    Err(DbError::new(
                        DbErrorKind::Connection,
                        format!(
                            "connection `{}` failed: the COPY task failed: {e}",
                            self.name
                        ),
                    ))
                }
            };
        }
        self.state = State::Copy(ActiveCopy {
            table: table.to_owned(),
            columns: columns.to_vec(),
            plan,
            types,
            pieces,
            abort,
            rows_sent: 0,
            segments: Vec::new(),
            task,
        });
        Ok(())
    }

    /// Ends the open bulk insert stream, if any, and takes the connection back. The
    /// server's verdict on the stream's rows comes now: an error names the batch it came
    /// from and is kept ([`Connection::stream_failure`]) so that no commit follows it.
    pub(crate) async fn settle_stream(&mut self) -> Result<(), DbError> {
        self.end_stream(false).await
    }

    /// Ends the open stream without its rows (`CopyFail`): the transaction rolls back.
    pub(crate) async fn abort_stream(&mut self) {
        let _ = self.end_stream(true).await;
    }

    async fn end_stream(&mut self, abort: bool) -> Result<(), DbError> {
        if !matches!(self.state, State::Copy(_)) {
            return Ok(());
        }
        // Broken until the task hands the connection back; stays so if this future is
        // dropped meanwhile (the task then drops the connection: the server rolls back).
        let placeholder = State::Broken("a bulk insert stream was abandoned while it ended".into());
        let State::Copy(active) = std::mem::replace(&mut self.state, placeholder) else {
            return Ok(());
        };
        active.abort.store(abort, Ordering::Release);
        let ActiveCopy {
            pieces,
            task,
            table,
            segments,
            ..
        } = active;
        drop(pieces);
        let (backend, result) = match task.await {
            Ok(done) => done,
            Err(e) => {
                self.state = State::Broken(format!("the COPY task failed: {e}"));
                let error = DbError::new(
                    DbErrorKind::Connection,
                    format!(
                        "connection `{}` failed: the COPY task failed: {e}",
                        self.name
                    ),
                );
                self.stream_failure = Some(error.clone());
                return Err(error);
            }
        };
        self.state = State::Idle(backend);
        match result {
            Ok(_) => Ok(()),
            Err(_) if abort => Ok(()),
            Err(error) => {
                let described = name_batch(
                    &self.name,
                    &table,
                    &segments,
                    error.on_connection(&self.name),
                );
                self.stream_failure = Some(described.clone());
                Err(described)
            }
        }
    }

    /// Before a plugin statement: ends the open stream; its failure (now, or an earlier
    /// one not yet told) is this call's answer, once.
    pub(crate) async fn settle_for_plugin(&mut self) -> Result<(), DbError> {
        let ended = self.settle_stream().await;
        self.report_stream_failure()?;
        ended
    }

    /// The stream's failure, if the plugin was not told yet (then it is, by this error).
    pub(crate) fn report_stream_failure(&mut self) -> Result<(), DbError> {
        match &self.stream_failure {
            Some(failure) if !self.stream_failure_told => {
                self.stream_failure_told = true;
                Err(failure.clone())
            }
            _ => Ok(()),
        }
    }

    /// Forgets the transaction's stream failure (its transaction is over).
    pub(crate) fn clear_stream_failure(&mut self) {
        self.stream_failure = None;
        self.stream_failure_told = false;
    }

    /// Whether a bulk insert stream is open on this connection.
    pub fn has_open_stream(&self) -> bool {
        matches!(self.state, State::Copy(_))
    }

    /// The failure of a bulk insert stream in the open transaction, kept until it ends:
    /// the transaction is aborted, and [`Connection::commit`] refuses.
    pub fn stream_failure(&self) -> Option<&DbError> {
        self.stream_failure.as_ref()
    }

    /// Ends the open bulk insert stream (the unit's end, a checkpoint): `Err` is the
    /// server's verdict on its rows, naming the batch. A failure kept from earlier in the
    /// transaction (which the plugin may have ignored) is answered again.
    pub async fn finish_bulk_insert(&mut self) -> Result<(), DbError> {
        self.settle_stream().await?;
        match &self.stream_failure {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    /// Starts counting bulk inserts afresh (a new unit): the n-th bulk insert into a
    /// table that an error names counts from here.
    pub fn reset_bulk_counts(&mut self) {
        self.bulk_counts = BulkCounts::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_failing_line_and_names_ordinals() {
        assert_eq!(
            failing_line("duplicate key (detail: x) (context: COPY t, line 2501)"),
            Some(2501)
        );
        assert_eq!(
            failing_line("bad (context: COPY \"s\".\"t\", line 7, column a: \"x\")"),
            Some(7)
        );
        assert_eq!(failing_line("no context"), None);
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(3), "3rd");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(22), "22nd");
    }

    #[test]
    fn counts_calls_and_rows_per_table() {
        let mut counts = BulkCounts::default();
        assert_eq!(counts.next("t", 10), (1, 0));
        assert_eq!(counts.next("u", 5), (1, 0));
        assert_eq!(counts.next("t", 10), (2, 10));
        assert_eq!(counts.next("t", 1), (3, 20));
    }
}
