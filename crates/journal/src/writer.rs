//! [`JournalWriter`]: appends entries to a framed journal (`migrun.journal/3`)
//! as they happen, durable at every commit.
//!
//! Entries go, in order, over a bounded channel to a writer thread that
//! encodes each one ([`crate::binary`]: values in binary, each large value
//! once), extends the BLAKE3 hash chain and collects it in a block as a record.
//! A block becomes one frame (see [`crate::frame`]) when it grows past
//! [`BLOCK_BYTES`] or when the run asks for a sync ([`JournalWriter::sync`]):
//! the host syncs before every COMMIT it sends, so each commit costs one
//! `fsync` however many entries came before it (group commit), and whatever
//! the database committed is on disk in the journal first. A process killed
//! at any moment leaves complete frames followed by at most one torn frame,
//! which a reader recognises and drops: the longest valid prefix survives.
//!
//! That work — for bulk copies the costliest the host does — runs beside the
//! plugin instead of in its path. Memory stays bounded whatever the run size:
//! at most [`IN_FLIGHT`] entries wait for the thread and one block is held.
//!
//! A write error stops the thread; the next [`JournalWriter::append`] (or
//! [`JournalWriter::sync`], [`JournalWriter::finish`]) returns it, so a run
//! stops at its next call, and a commit is never sent past a journal that
//! could not be synced. [`JournalWriter::head`] waits for the entries before
//! it, so the chain head it gives is always that of every entry appended so far.
//!
//! **Lanes.** Every record carries a lane: the worker that produced it (0 when
//! the run is sequential). Units run in parallel in one process append to one
//! journal, their entries interleaved in one chain; [`JournalWriter::append_in_lane`]
//! tags each, and a reader demultiplexes them by [`crate::JournalReader::lane`].
//!
//! **Null sink (benchmarks only).** Built with the `bench-null-sink` feature and
//! run with `MIGRUN_BENCH_JOURNAL_SINK=null`, the writer thread drops every
//! entry unencoded: `scripts/bench` measures what journaling costs a live run
//! against that. Without the feature the variable is not even read; it is not a
//! user option (a run without its journal cannot be verified or replayed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::binary::{Encoder, WriterWindow};
use super::frame::{self, FrameKind};
use super::{Entry, JournalError};

/// zstd level: 1, the fastest; measured in docs/PERFORMANCE.md — binary values
/// recorded once leave zstd little that a higher level would find.
pub const ZSTD_LEVEL: i32 = 1;

/// Entries waiting for the writer thread, at most (the channel's bound).
const IN_FLIGHT: usize = 4;

/// A block is framed (compressed and written, not synced) once it holds this
/// many bytes of lines: large enough for zstd to compress well, small enough
/// that a crash between syncs loses little and memory stays bounded.
pub const BLOCK_BYTES: usize = 1 << 20;

/// What the writer thread is asked to do, in order.
enum Job {
    /// Encode and append an entry, in a lane.
    Entry(u16, Box<Entry>),
    /// Answer the chain head once every earlier job is written.
    Head(SyncSender<[u8; 32]>),
    /// Write, flush and fsync every earlier entry, then answer the chain head
    /// (or why the journal could not be made durable).
    Sync(SyncSender<Result<[u8; 32], String>>),
}

/// Writes one journal file.
pub struct JournalWriter {
    path: PathBuf,
    /// The writer thread's inbox; `None` once finished or failed.
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<std::io::Result<[u8; 32]>>>,
    /// The first write error, kept to be returned again by later calls.
    failed: Option<String>,
    /// The chain head last known (updated by `head`, `sync` and `finish`).
    head: [u8; 32],
    entries: u64,
}

/// The writer thread's state: the file, the chain, the value window and the
/// block being filled.
struct BlockWriter {
    out: BufWriter<File>,
    block: Vec<u8>,
    prev: [u8; 32],
    window: WriterWindow,
    /// The record being encoded (reused).
    payload: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
    compressed: Vec<u8>,
}

impl BlockWriter {
    /// Encodes one entry and appends its record (`len hash lane entry`) to the block.
    fn push(&mut self, lane: u16, entry: &Entry) -> std::io::Result<()> {
        self.payload.clear();
        self.payload.extend_from_slice(&lane.to_le_bytes());
        Encoder::new(&mut self.payload, &mut self.window)
            .entry(entry)
            .map_err(|e| std::io::Error::other(format!("cannot encode an entry: {e}")))?;
        if self.payload.len() > frame::MAX_PAYLOAD as usize {
            return Err(std::io::Error::other("a journal entry larger than 1 GiB"));
        }
        let hash = chain_v3(&self.prev, &self.payload);
        frame::push_record(&mut self.block, &hash, &self.payload);
        self.prev = hash;
        if self.block.len() >= BLOCK_BYTES {
            self.frame()?;
        }
        Ok(())
    }

    /// Writes the block as one frame (nothing when empty).
    fn frame(&mut self) -> std::io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let bound = zstd::zstd_safe::compress_bound(self.block.len());
        self.compressed.clear();
        self.compressed.reserve(bound);
        self.compressor
            .compress_to_buffer(&self.block, &mut self.compressed)?;
        frame::write(&mut self.out, FrameKind::ZstdRecords, &self.compressed)?;
        self.block.clear();
        if self.block.capacity() > 4 * BLOCK_BYTES {
            // One huge entry grew it: give the memory back.
            self.block = Vec::with_capacity(BLOCK_BYTES + (1 << 16));
        }
        if self.compressed.capacity() > 4 * BLOCK_BYTES {
            self.compressed = Vec::new();
        }
        Ok(())
    }

    /// Frames the block, flushes and fsyncs: everything so far is on disk.
    fn sync(&mut self) -> std::io::Result<()> {
        self.frame()?;
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// The writer thread: writes entries until the channel closes, then frames the
/// last block, syncs the file and returns the final hash.
fn write_entries(mut out: BlockWriter, jobs: Receiver<Job>) -> std::io::Result<[u8; 32]> {
    let mut index = 0u64;
    for job in jobs {
        match job {
            Job::Entry(lane, entry) => out
                .push(lane, &entry)
                .map_err(|e| std::io::Error::other(format!("entry {index}: {e}")))?,
            Job::Head(reply) => {
                let _ = reply.send(out.prev);
                continue;
            }
            Job::Sync(reply) => {
                match out.sync() {
                    Ok(()) => {
                        let _ = reply.send(Ok(out.prev));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                        return Err(e);
                    }
                }
                continue;
            }
        }
        index += 1;
    }
    out.sync()?;
    out.out.get_ref().sync_all()?;
    Ok(out.prev)
}

/// The null sink's thread (benchmarks only): drops every entry, answers heads and syncs
/// with zeros.
fn drop_entries(jobs: Receiver<Job>) -> std::io::Result<[u8; 32]> {
    for job in jobs {
        match job {
            Job::Entry(..) => {}
            Job::Head(reply) => {
                let _ = reply.send([0; 32]);
            }
            Job::Sync(reply) => {
                let _ = reply.send(Ok([0; 32]));
            }
        }
    }
    Ok([0; 32])
}

/// Whether this build and this process write journals to the null sink (see the module
/// documentation): only with the `bench-null-sink` feature and
/// `MIGRUN_BENCH_JOURNAL_SINK=null`.
fn null_sink() -> bool {
    cfg!(feature = "bench-null-sink")
        && std::env::var_os("MIGRUN_BENCH_JOURNAL_SINK").is_some_and(|v| v == "null")
}

impl JournalWriter {
    /// Creates `path` (and its folder) and writes the format's magic line; fails
    /// if the file exists. The folder is synced too, so the file itself survives
    /// a crash once its first sync returned.
    pub fn create(path: &Path) -> Result<JournalWriter, JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        out.write_all(frame::MAGIC).map_err(io)?;
        out.flush().map_err(io)?;
        out.get_ref().sync_data().map_err(io)?;
        sync_dir(dir.unwrap_or(Path::new("."))).map_err(io)?;
        let block = BlockWriter {
            out,
            block: Vec::with_capacity(BLOCK_BYTES + (1 << 16)),
            prev: [0; 32],
            window: WriterWindow::default(),
            payload: Vec::with_capacity(1 << 16),
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(io)?,
            compressed: Vec::new(),
        };
        let (jobs, inbox) = sync_channel(IN_FLIGHT);
        let null = null_sink();
        if null {
            tracing::warn!(
                "MIGRUN_BENCH_JOURNAL_SINK=null: journal entries are dropped (benchmark build)"
            );
        }
        let thread = std::thread::Builder::new()
            .name("migrun-journal".into())
            .spawn(move || {
                if null {
                    drop_entries(inbox)
                } else {
                    write_entries(block, inbox)
                }
            })
            .map_err(io)?;
        Ok(JournalWriter {
            path: path.to_owned(),
            jobs: Some(jobs),
            thread: Some(thread),
            failed: None,
            head: [0; 32],
            entries: 0,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries appended so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The hash of the last entry appended (the chain's head); waits until the
    /// writer thread has written it.
    pub fn head(&mut self) -> String {
        if let Some(jobs) = &self.jobs {
            let (reply, answer) = sync_channel(1);
            if jobs.send(Job::Head(reply)).is_ok()
                && let Ok(head) = answer.recv()
            {
                self.head = head;
            }
        }
        hex::encode(self.head)
    }

    /// Makes every entry appended so far durable (written, flushed, fsynced) and
    /// returns the chain head. The host calls it before each COMMIT it sends.
    pub fn sync(&mut self) -> Result<String, JournalError> {
        if self.failed.is_some() {
            return Err(self.stopped());
        }
        let (reply, answer) = sync_channel(1);
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(Job::Sync(reply)).is_ok());
        match sent.then(|| answer.recv().ok()).flatten() {
            Some(Ok(head)) => {
                self.head = head;
                Ok(hex::encode(head))
            }
            Some(Err(e)) => {
                self.failed.get_or_insert(e);
                self.join();
                Err(self.stopped())
            }
            None => {
                self.join();
                Err(self.stopped())
            }
        }
    }

    /// Appends one entry (a copy of it) in lane 0, encoded on the writer thread.
    pub fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        self.append_in_lane(0, entry.clone())
    }

    /// Appends one entry in lane 0, encoded on the writer thread (for large entries:
    /// the caller only pays for the move).
    pub fn append_owned(&mut self, entry: Entry) -> Result<(), JournalError> {
        self.append_in_lane(0, entry)
    }

    /// Appends one entry produced by worker `lane` (0 when the run is sequential): units
    /// run in parallel share one journal, their entries interleaved in one chain, each
    /// tagged with its lane so that a reader can tell them apart.
    pub fn append_in_lane(&mut self, lane: u16, entry: Entry) -> Result<(), JournalError> {
        self.send(Job::Entry(lane, Box::new(entry)))
    }

    fn send(&mut self, job: Job) -> Result<(), JournalError> {
        if self.failed.is_some() {
            return Err(self.stopped());
        }
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if !sent {
            // The thread stopped (it failed; its error says why) or the journal is finished.
            self.join();
            return Err(self.stopped());
        }
        self.entries += 1;
        Ok(())
    }

    /// Writes everything, syncs the file; returns the final hash.
    pub fn finish(&mut self) -> Result<String, JournalError> {
        self.join();
        match &self.failed {
            Some(_) => Err(self.stopped()),
            None => Ok(hex::encode(self.head)),
        }
    }

    /// Closes the channel and waits for the thread, keeping its final hash or its error.
    fn join(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the journal writer panicked")));
            match outcome {
                Ok(head) => self.head = head,
                Err(e) => {
                    self.failed.get_or_insert(e.to_string());
                }
            }
        }
    }

    /// The error of a writer that can take no more entries.
    fn stopped(&self) -> JournalError {
        JournalError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(
                self.failed
                    .clone()
                    .unwrap_or_else(|| "the journal is already finished".into()),
            ),
        }
    }
}

impl Drop for JournalWriter {
    /// A writer dropped without `finish` (a run that failed to start) still
    /// ends its thread, leaving complete frames of what was appended.
    fn drop(&mut self) {
        self.join();
    }
}

/// Syncs a folder, so that a file just created in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The chain step of `/3`: BLAKE3(previous hash ‖ record payload).
pub(crate) fn chain_v3(prev: &[u8; 32], payload: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev);
    hasher.update(payload);
    hasher.finalize().into()
}

/// The chain step of `/1` and `/2`: sha256(previous hash ‖ entry bytes).
pub(crate) fn chain(prev: &[u8; 32], line: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(line);
    hasher.finalize().into()
}
