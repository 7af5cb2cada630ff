//! The cursor task: a statement's rows streamed in batches with bounded memory.
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
//! memory bounded to two batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::DbError;
use super::backend::{Backend, Bound, Step};
use crate::value::Value;

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

/// Reads the next batch of at most `batch_size` rows from `stream`, with one
/// row of look-ahead so that the batch holding the last row says so.
async fn fetch(
    stream: &mut futures::stream::BoxStream<'_, Result<Step, DbError>>,
    lookahead: &mut Option<Vec<Value>>,
    batch_size: usize,
) -> Batch {
    let mut rows = Vec::with_capacity(batch_size.min(4096));
    rows.extend(lookahead.take());
    let outcome = loop {
        match stream.next().await {
            Some(Ok(Step::Row(row))) if rows.len() < batch_size => rows.push(row),
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

/// Moves `backend` into a task that runs `bound` and serves batches of at most
/// `batch_size` rows. When the requests stop, the task drops the stream, runs
/// `end_sql` if given (the commit of a host-opened read-only wrapper) and
/// returns the connection.
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
            let mut next = Some(fetch(&mut stream, &mut lookahead, batch_size).await);
            while let Some(reply) = incoming.recv().await {
                let batch = next.take().unwrap_or(Batch {
                    rows: Ok(Vec::new()),
                    finished: true,
                });
                let finished = batch.finished;
                let _ = reply.send(batch);
                if !finished {
                    next = Some(fetch(&mut stream, &mut lookahead, batch_size).await);
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
