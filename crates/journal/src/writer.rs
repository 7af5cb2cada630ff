//! [`JournalWriter`]: appends entries to a framed journal (`migrun.journal/2`)
//! as they happen, durable at every commit.
//!
//! Entries go, in order, over a bounded channel to a writer thread that
//! serialises each one, extends the hash chain and collects it in a block.
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

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use serde::Serialize;

use super::frame::{self, FrameKind};
use super::{Entry, JournalError};

/// zstd level: fast enough to keep up with bulk copies, still ~5-10x smaller than the JSON.
const ZSTD_LEVEL: i32 = 3;

/// Entries waiting for the writer thread, at most (the channel's bound).
const IN_FLIGHT: usize = 4;

/// A block is framed (compressed and written, not synced) once it holds this
/// many bytes of lines: large enough for zstd to compress well, small enough
/// that a crash between syncs loses little and memory stays bounded.
pub const BLOCK_BYTES: usize = 1 << 20;

/// What the writer thread is asked to do, in order.
enum Job {
    /// Append an entry already serialised to JSON.
    Json(Vec<u8>),
    /// Serialise and append an entry.
    Entry(Box<Entry>),
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

/// The writer thread's state: the file, the chain and the block being filled.
struct BlockWriter {
    out: BufWriter<File>,
    block: Vec<u8>,
    prev: [u8; 32],
}

impl BlockWriter {
    /// Appends one entry's line (`<hash>\t<json>\n`) to the block.
    fn push(&mut self, json: &[u8]) -> std::io::Result<()> {
        let hash = chain(&self.prev, json);
        let mut hex = [0u8; 64];
        hex::encode_to_slice(hash, &mut hex).expect("64 hex digits for 32 bytes");
        self.block.extend_from_slice(&hex);
        self.block.push(b'\t');
        self.block.extend_from_slice(json);
        self.block.push(b'\n');
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
        let payload = zstd::bulk::compress(&self.block, ZSTD_LEVEL)?;
        frame::write(&mut self.out, FrameKind::ZstdLines, &payload)?;
        self.block.clear();
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
    let mut json = Vec::with_capacity(4096);
    let mut index = 0u64;
    for job in jobs {
        match job {
            Job::Json(line) => out.push(&line)?,
            Job::Entry(entry) => {
                json.clear();
                serde_json::to_writer(&mut json, &*entry).map_err(|e| {
                    std::io::Error::other(format!("entry {index}: cannot serialise: {e}"))
                })?;
                out.push(&json)?;
            }
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
        };
        let (jobs, inbox) = sync_channel(IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("migrun-journal".into())
            .spawn(move || write_entries(block, inbox))
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

    /// Appends one entry (an [`Entry`], or a borrowed form that serialises
    /// identically), serialised on the caller's thread.
    pub fn append<T: Serialize + ?Sized>(&mut self, entry: &T) -> Result<(), JournalError> {
        let json = serde_json::to_vec(entry).map_err(|e| JournalError::Malformed {
            path: self.path.display().to_string(),
            index: self.entries,
            detail: format!("cannot serialise: {e}"),
        })?;
        self.send(Job::Json(json))
    }

    /// Appends one entry, serialised on the writer thread (for large entries:
    /// the caller only pays for the move).
    pub fn append_owned(&mut self, entry: Entry) -> Result<(), JournalError> {
        self.send(Job::Entry(Box::new(entry)))
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

/// The chain step: sha256(previous hash ‖ entry bytes).
pub(crate) fn chain(prev: &[u8; 32], line: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(line);
    hasher.finalize().into()
}
