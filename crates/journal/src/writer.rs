//! [`JournalWriter`]: appends entries to a zstd stream as they happen.
//!
//! Entries go, in order, over a bounded channel to a writer thread that
//! serialises each one, extends the hash chain, compresses it and writes it
//! through a buffered file. That work — for bulk copies the costliest the host
//! does (an embedding batch is megabytes of JSON to hash and compress) — thus
//! runs beside the plugin instead of in its path. Memory stays bounded
//! whatever the run size: at most [`IN_FLIGHT`] entries wait for the thread;
//! nothing is kept once written.
//!
//! A write error stops the thread; the next [`JournalWriter::append`] (or
//! [`JournalWriter::finish`]) returns it, so a run stops at its next call.
//! [`JournalWriter::head`] waits for the entries before it, so the chain head
//! it gives is always that of every entry appended so far.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use serde::Serialize;

use super::{Entry, JournalError};

/// zstd level: fast enough to keep up with bulk copies, still ~5-10x smaller than the JSON.
const ZSTD_LEVEL: i32 = 3;

/// Entries waiting for the writer thread, at most (the channel's bound).
const IN_FLIGHT: usize = 4;

/// What the writer thread is asked to do, in order.
enum Job {
    /// Append an entry already serialised to JSON.
    Json(Vec<u8>),
    /// Serialise and append an entry.
    Entry(Box<Entry>),
    /// Answer the chain head once every earlier job is written.
    Head(SyncSender<[u8; 32]>),
}

/// Writes one journal file.
pub struct JournalWriter {
    path: PathBuf,
    /// The writer thread's inbox; `None` once finished or failed.
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<std::io::Result<[u8; 32]>>>,
    /// The first write error, kept to be returned again by later calls.
    failed: Option<String>,
    /// The chain head last known (updated by `head` and `finish`).
    head: [u8; 32],
    entries: u64,
}

/// The writer thread: writes entries until the channel closes, then ends the
/// zstd frame, syncs the file and returns the final hash.
fn write_entries(
    mut out: zstd::Encoder<'static, BufWriter<File>>,
    jobs: Receiver<Job>,
) -> std::io::Result<[u8; 32]> {
    let mut prev = [0u8; 32];
    let mut json = Vec::with_capacity(4096);
    let mut index = 0u64;
    for job in jobs {
        let line = match job {
            Job::Json(line) => line,
            Job::Entry(entry) => {
                json.clear();
                serde_json::to_writer(&mut json, &*entry).map_err(|e| {
                    std::io::Error::other(format!("entry {index}: cannot serialise: {e}"))
                })?;
                std::mem::take(&mut json)
            }
            Job::Head(reply) => {
                let _ = reply.send(prev);
                continue;
            }
        };
        let hash = chain(&prev, &line);
        let mut hex = [0u8; 64];
        hex::encode_to_slice(hash, &mut hex).expect("64 hex digits for 32 bytes");
        out.write_all(&hex)?;
        out.write_all(b"\t")?;
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        prev = hash;
        index += 1;
        json = line;
    }
    let mut inner = out.finish()?;
    inner.flush()?;
    inner.get_ref().sync_all()?;
    Ok(prev)
}

impl JournalWriter {
    /// Creates `path` (and its folder); fails if the file exists.
    pub fn create(path: &Path) -> Result<JournalWriter, JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        let out =
            zstd::Encoder::new(BufWriter::with_capacity(1 << 16, file), ZSTD_LEVEL).map_err(io)?;
        let (jobs, inbox) = sync_channel(IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("migrun-journal".into())
            .spawn(move || write_entries(out, inbox))
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

    /// Writes everything, closes the stream and syncs the file; returns the final hash.
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
    /// ends its thread, leaving a complete zstd frame of what was appended.
    fn drop(&mut self) {
        self.join();
    }
}

/// The chain step: sha256(previous hash ‖ entry bytes).
pub(crate) fn chain(prev: &[u8; 32], line: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(line);
    hasher.finalize().into()
}
