//! Cursors: [`super::Connection::open_cursor`] and friends, and the task
//! that streams a statement's rows in batches with bounded memory.
//!
//! sqlx's row stream borrows its connection, so a cursor that outlives the
//! call that opened it cannot keep the stream in the [`super::Connection`].
//! Instead the physical connection moves into a tokio task that owns both the
//! connection and the stream. The task reads rows in batches (plus one row of
//! look-ahead, so that the batch holding the last row already says the result
//! is exhausted), answers requests over a channel, and hands the connection
//! back when its request channel closes. It reads one batch ahead of the requests (so reading overlaps the
//! plugin's work and its writes); rows beyond that stay in the server and the
//! socket buffers: TCP flow control (or SQLite's bounded row channel) keeps
//! memory bounded to two batches — by rows and by bytes ([`BATCH_BYTES`]); the
//! first batches of a large batch size are smaller ([`batch_rows`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::DbError;
use super::backend::{Backend, Bound, Step};
use migrun_types::value::Value;

/// What a [`super::CursorHandle`] and its connection both know about a cursor.
#[derive(Debug)]
pub(crate) struct CursorShared {
    status: AtomicU8,
}

/// A cursor's life: open, then exhausted (read to the end) or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorStatus {
    Open = 0,
    Exhausted = 1,
    Closed = 2,
}

impl CursorShared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(CursorShared {
            status: AtomicU8::new(CursorStatus::Open as u8),
        })
    }

    pub(crate) fn status(&self) -> CursorStatus {
        match self.status.load(Ordering::Acquire) {
            0 => CursorStatus::Open,
            1 => CursorStatus::Exhausted,
            _ => CursorStatus::Closed,
        }
    }

    pub(crate) fn set(&self, status: CursorStatus) {
        self.status.store(status as u8, Ordering::Release);
    }
}

/// One batch as the task answers it.
pub(crate) struct Batch {
    /// The rows, or the error that ended the statement.
    pub(crate) rows: Result<Vec<Vec<Value>>, DbError>,
    /// Whether the statement is over (exhausted or failed): the task then needs no more requests.
    pub(crate) finished: bool,
}

/// The connection's side of a running cursor task.
pub(crate) struct ActiveCursor {
    pub(crate) id: u64,
    pub(crate) shared: Arc<CursorShared>,
    pub(crate) requests: mpsc::Sender<oneshot::Sender<Batch>>,
    pub(crate) task: JoinHandle<Backend>,
}

/// The values a batch holds at most, roughly ([`Value::approx_bytes`]): a batch
/// ends at its row limit or once its rows reach this, whichever comes first (it
/// always holds at least one row).
///
/// Why: a batch is held several times over while it goes through the host — read
/// ahead, delivered, lowered into the guest's memory (which never shrinks), written
/// back, encoded for `COPY` — once per lane of `--jobs`. Counting rows bounds that
/// memory only for narrow rows: 1,000 embeddings of 1536 floats are 6 MiB, 1,000
/// documents of 1 MiB a gigabyte. 3 MiB keeps seed 001's `real[]` copy with two
/// lanes under 100 MB (docs/PERFORMANCE.md, session 18) and costs narrow rows nothing.
pub(crate) const BATCH_BYTES: usize = 3 << 20;

/// Reads the next batch of at most `batch_size` rows and about [`BATCH_BYTES`] from
/// `stream`, with one row of look-ahead so that the batch holding the last row says so.
async fn fetch(
    stream: &mut futures::stream::BoxStream<'_, Result<Step, DbError>>,
    lookahead: &mut Option<Vec<Value>>,
    batch_size: usize,
) -> Batch {
    let mut rows = Vec::with_capacity(batch_size.min(4096));
    let mut bytes = 0;
    if let Some(row) = lookahead.take() {
        bytes += row_bytes(&row);
        rows.push(row);
    }
    let outcome = loop {
        match stream.next().await {
            Some(Ok(Step::Row(row))) if rows.len() < batch_size && bytes < BATCH_BYTES => {
                bytes += row_bytes(&row);
                rows.push(row);
            }
            Some(Ok(Step::Row(row))) => {
                *lookahead = Some(row);
                break Ok(false);
            }
            Some(Ok(Step::Done(_) | Step::Columns(_))) => {}
            Some(Err(e)) => break Err(e),
            None => break Ok(true),
        }
    };
    match outcome {
        Ok(exhausted) => Batch {
            rows: Ok(rows),
            finished: exhausted,
        },
        Err(e) => Batch {
            rows: Err(e),
            finished: true,
        },
    }
}

/// What a row holds, roughly.
fn row_bytes(row: &[Value]) -> usize {
    row.iter().map(Value::approx_bytes).sum()
}

/// Batch sizes from which a cursor ramps up ([`batch_rows`]): below this its first
/// batch is read in a few milliseconds anyway.
const RAMP_FROM_ROWS: usize = 512;

/// The rows of a cursor's `index`-th batch (0-based) when the plugin asked for batches
/// of `batch_size`: from [`RAMP_FROM_ROWS`] on, an eighth of it, then a quarter, a
/// half, then `batch_size` from the fourth batch; a smaller `batch_size` from the
/// first batch on. Fixed by `batch_size` alone, so a run, its dry-run and its replay see the same
/// batches.
///
/// Why: nothing the plugin does with a batch starts before the whole batch is read, so
/// in every unit a copy's target waits for the first batch's read and mapping — the
/// target idle, and with it a core, while the source sends a thousand rows. A small
/// first batch reaches the plugin (and its bulk insert the target) after an eighth of
/// that wait, and the larger ones behind it are read ahead while the target writes.
/// Measured on seed 001's 34 tables in docs/PERFORMANCE.md (session 18). The contract
/// promises batches of *at most* `batch-size` rows (and the guide says the first are
/// smaller).
pub(crate) fn batch_rows(batch_size: usize, index: usize) -> usize {
    if batch_size < RAMP_FROM_ROWS {
        return batch_size;
    }
    batch_size >> 3usize.saturating_sub(index)
}

/// Moves `backend` into a task that runs `bound` and serves batches of at most
/// `batch_size` rows, the first ones smaller ([`batch_rows`]). When the requests
/// stop, the task drops the stream, runs `end_sql` if given (the commit of a
/// host-opened read-only wrapper) and returns the connection.
pub(crate) fn spawn(
    id: u64,
    shared: Arc<CursorShared>,
    mut backend: Backend,
    bound: Bound,
    batch_size: usize,
    end_sql: Option<&'static str>,
) -> ActiveCursor {
    let (requests, mut incoming) = mpsc::channel::<oneshot::Sender<Batch>>(1);
    let task = tokio::spawn(async move {
        {
            let Bound { sql, args } = bound;
            let mut stream = backend.run(&sql, args);
            let mut lookahead: Option<Vec<Value>> = None;
            // One batch read ahead: while the plugin works on a batch (and
            // writes it elsewhere), the next one is already on its way.
            let mut served = 0;
            let mut next =
                Some(fetch(&mut stream, &mut lookahead, batch_rows(batch_size, 0)).await);
            while let Some(reply) = incoming.recv().await {
                let batch = next.take().unwrap_or(Batch {
                    rows: Ok(Vec::new()),
                    finished: true,
                });
                let finished = batch.finished;
                let _ = reply.send(batch);
                served += 1;
                if !finished {
                    let rows = batch_rows(batch_size, served);
                    next = Some(fetch(&mut stream, &mut lookahead, rows).await);
                }
            }
        }
        if let Some(sql) = end_sql {
            let _ = backend.simple(sql).await;
        }
        backend
    });
    ActiveCursor {
        id,
        shared,
        requests,
        task,
    }
}

// -- the cursor API of a connection ---------------------------------------

use std::sync::atomic::AtomicU64;

use super::{Connection, CursorHandle, DbErrorKind, MAX_BATCH_ROWS, State};

/// Cursor ids, unique in the process.
static NEXT_CURSOR_ID: AtomicU64 = AtomicU64::new(1);

impl Connection {
    /// Starts a query whose rows are fetched in batches of at most `batch_size`
    /// (capped at [`MAX_BATCH_ROWS`]). The connection runs nothing else until
    /// the cursor is read to the end, closed, or the transaction rolls back.
    /// Errors of the statement's planning surface here; errors met while
    /// running it surface from [`Connection::next_batch`].
    ///
    /// Closing a cursor early is cheap on SQLite; on PostgreSQL and MySQL the
    /// server keeps sending the rest of the result, which the connection reads
    /// and discards before its next statement (sqlx 0.8 cannot cancel a
    /// query). Use `LIMIT` when only the first rows matter.
    pub async fn open_cursor(
        &mut self,
        sql: &str,
        params: &[Value],
        batch_size: u32,
    ) -> Result<CursorHandle, DbError> {
        self.settle_for_plugin().await?;
        self.idle()?;
        if batch_size == 0 {
            return Err(DbError::usage("a cursor's batch size must be at least 1"));
        }
        self.before_plugin_statement().await?;
        self.guard(sql)?;
        let wrapped = self.wrap_begin().await?;
        let prepared = async {
            let backend = self.idle()?;
            backend.check_schema().await?;
            backend.plugin_statement(true);
            let bound = backend.bind(sql, params).await?;
            let columns = backend.columns(&bound).await?;
            Ok::<_, DbError>((bound, columns))
        }
        .await;
        let (bound, columns) = match prepared {
            Ok(ok) => ok,
            Err(e) => {
                self.plugin_statement_done();
                self.wrap_end(wrapped, false).await;
                let result = self.after_plugin_statement(sql, Err(e)).await;
                return result.map_err(|e: DbError| self.explain(e));
            }
        };
        // Checked when the cursor hands the connection back (`finish_cursor`),
        // at the latest before the next statement or the commit.
        self.check_due = true;
        let backend = match std::mem::replace(&mut self.state, State::Broken(String::new())) {
            State::Idle(backend) => backend,
            other => {
                // Not reachable: the connection was idle above and nothing since took it.
                self.state = other;
                return Err(DbError::usage(format!(
                    "connection `{}` is busy",
                    self.name
                )));
            }
        };
        let id = NEXT_CURSOR_ID.fetch_add(1, Ordering::Relaxed);
        let shared = CursorShared::new();
        let batch = batch_size.min(MAX_BATCH_ROWS) as usize;
        let end_sql = wrapped.then_some("COMMIT");
        self.state = State::Cursor(spawn(id, shared.clone(), backend, bound, batch, end_sql));
        Ok(CursorHandle {
            id,
            columns,
            shared,
        })
    }

    /// The next batch of `cursor`'s rows; `None` once the result is exhausted.
    /// The batch holding the last row already frees the connection. A cursor
    /// that failed or was closed gives a [`DbErrorKind::Usage`] error.
    pub async fn next_batch(
        &mut self,
        cursor: &CursorHandle,
    ) -> Result<Option<Vec<Vec<Value>>>, DbError> {
        match cursor.shared.status() {
            CursorStatus::Exhausted => return Ok(None),
            CursorStatus::Closed => return Err(DbError::usage("the cursor is closed")),
            CursorStatus::Open => {}
        }
        let State::Cursor(active) = &self.state else {
            return Err(DbError::usage(format!(
                "the cursor was not opened on connection `{}`",
                self.name
            )));
        };
        if active.id != cursor.id {
            return Err(DbError::usage(format!(
                "the cursor was not opened on connection `{}`",
                self.name
            )));
        }
        let (reply, answer) = oneshot::channel();
        let sent = active.requests.send(reply).await.is_ok();
        let batch = match (sent, answer.await) {
            (true, Ok(batch)) => batch,
            _ => {
                self.finish_cursor(CursorStatus::Closed).await;
                return Err(DbError::new(
                    DbErrorKind::Connection,
                    format!(
                        "connection `{}` failed: the cursor task stopped unexpectedly",
                        self.name
                    ),
                ));
            }
        };
        if batch.finished {
            let status = if batch.rows.is_ok() {
                CursorStatus::Exhausted
            } else {
                CursorStatus::Closed
            };
            self.finish_cursor(status).await;
        }
        match batch.rows {
            Ok(rows) if rows.is_empty() && batch.finished => Ok(None),
            Ok(rows) => Ok(Some(rows)),
            Err(e) => Err(self.explain(e)),
        }
    }

    /// Closes `cursor` and frees the connection; idempotent, and a no-op for a
    /// cursor of another connection or one already exhausted.
    pub async fn close_cursor(&mut self, cursor: &CursorHandle) {
        if matches!(&self.state, State::Cursor(active) if active.id == cursor.id) {
            self.finish_cursor(CursorStatus::Closed).await;
        }
    }

    /// Ends the open cursor (if any), marks it `status`, and takes the
    /// physical connection back from its task.
    pub(super) async fn finish_cursor(&mut self, status: CursorStatus) {
        // Broken until the task hands the connection back; stays so if this
        // future is dropped meanwhile (the task then drops the connection).
        let placeholder =
            State::Broken("a cursor was abandoned while it handed the connection back".into());
        let active = match std::mem::replace(&mut self.state, placeholder) {
            State::Cursor(active) => active,
            other => {
                self.state = other;
                return;
            }
        };
        active.shared.set(status);
        drop(active.requests);
        self.state = match active.task.await {
            Ok(backend) => {
                backend.plugin_statement(false);
                State::Idle(backend)
            }
            Err(e) => State::Broken(format!("the cursor task failed: {e}")),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::batch_rows;

    #[test]
    fn a_large_batch_size_ramps_up_over_three_batches_and_a_small_one_does_not() {
        let sizes: Vec<usize> = (0..6).map(|i| batch_rows(1000, i)).collect();
        assert_eq!(sizes, [125, 250, 500, 1000, 1000, 1000]);
        let sizes: Vec<usize> = (0..5).map(|i| batch_rows(512, i)).collect();
        assert_eq!(sizes, [64, 128, 256, 512, 512]);
        for small in [1, 2, 100, 511] {
            assert!((0..5).all(|i| batch_rows(small, i) == small), "{small}");
        }
        // Never more than asked, never an empty batch.
        for size in [1, 7, 511, 512, 513, 1000, 4096, 100_000] {
            assert!(
                (0..8).all(|i| (1..=size).contains(&batch_rows(size, i))),
                "{size}"
            );
        }
    }
}
