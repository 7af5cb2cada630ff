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
//! plugin instead of in its path. Memory stays bounded whatever the run size,
//! by bytes rather than by entries: the entries handed over and not yet
//! encoded hold at most [`IN_FLIGHT_BYTES`] (or one entry, when a single one is
//! larger), and one block is held. A bulk copy's batch of 1,000 embeddings is
//! ~6 MB, larger than the budget: it goes alone, and the writer — which takes a
//! few milliseconds for it — has long finished by the time the run has read
//! the next batch, so the run rarely waits, and never holds several batches'
//! worth for the journal.
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
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::binary::{Encoder, WriterWindow};
use super::budget::ByteBudget;
use super::frame::{self, FrameKind};
use super::page_cache::WriteBehind;
use super::{CallResult, Entry, HostCall, JournalError};

/// zstd level: 1, the fastest of the classic levels; measured in
/// docs/PERFORMANCE.md — binary values recorded once leave zstd little that a
/// higher level would find.
pub const ZSTD_LEVEL: i32 = 1;

/// A block larger than this is probed before it is compressed: level 1 on
/// this many of its bytes, in [`PROBE_SAMPLES`] samples spread over it.
/// Embeddings are random floats: level 1 shrinks binary16
/// embeddings by ~10% (their exponents repeat), rows of them with their other
/// columns by ~15%, at ~450 MB/s — a fifth of a bulk copy's CPU on this
/// machine for a journal a seventh smaller. Such a block is stored instead
/// ([`stored_zstd_frame`]: zstd's raw blocks, written at memory speed).
const PROBE_BYTES: usize = 128 << 10;
/// Samples of a probe (see [`PROBE_BYTES`]).
const PROBE_SAMPLES: usize = 4;

/// Compression is worth its CPU when level 1 shrinks the probe by a quarter at
/// least: text, JSON and numbers do (3–10×), embeddings do not.
fn shrinks_enough(raw: usize, compressed: usize) -> bool {
    compressed <= raw / 4 * 3
}

/// zstd's largest block (and the window the stored frames declare): 128 KiB.
const ZSTD_BLOCK_MAX: usize = 128 << 10;

/// Hands `data`, as one standard zstd frame of raw (stored) blocks, to `put`
/// piece by piece (headers and slices of `data`, never a copy of it): every
/// zstd decoder reads the frame, and the writer spends no compression — and,
/// written straight to the file, no copy — on a block that would not shrink.
/// RFC 8878: the magic number; a frame header naming the 8-byte content size
/// (not single-segment, no checksum, no dictionary) and a 128 KiB window; then
/// blocks of at most 128 KiB, each a 3-byte header (last-block bit, type 0 =
/// raw, size) and its bytes.
pub(crate) fn stored_zstd_frame(
    data: &[u8],
    mut put: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut head = [0u8; 14];
    head[..4].copy_from_slice(&0xFD2F_B528u32.to_le_bytes());
    // Frame header descriptor: content-size flag 3 (8 bytes), nothing else.
    head[4] = 0b1100_0000;
    // Window descriptor: exponent 7 → 2^(10+7) = 128 KiB, mantissa 0.
    head[5] = 7 << 3;
    head[6..].copy_from_slice(&(data.len() as u64).to_le_bytes());
    put(&head)?;
    let mut blocks = data.chunks(ZSTD_BLOCK_MAX).peekable();
    if blocks.peek().is_none() {
        // An empty frame still has its one (last, empty) block.
        return put(&[1, 0, 0]);
    }
    while let Some(block) = blocks.next() {
        let last = u32::from(blocks.peek().is_none());
        let header = last | ((block.len() as u32) << 3);
        put(&header.to_le_bytes()[..3])?;
        put(block)?;
    }
    Ok(())
}

/// The length of [`stored_zstd_frame`]'s frame of `len` bytes.
fn stored_zstd_frame_len(len: usize) -> usize {
    14 + len + 3 * len.div_ceil(ZSTD_BLOCK_MAX).max(1)
}

/// Bytes of entries handed to the writer thread and not yet encoded, at most
/// ([`Entry::approx_bytes`]); an entry larger than this waits until the thread is
/// idle, then goes alone. Measured in docs/PERFORMANCE.md: with 4 whole entries
/// in flight a bulk copy's live run held ~34 MB more than without a journal.
pub const IN_FLIGHT_BYTES: usize = 4 << 20;

/// Entries waiting for the writer thread, at most (the channel's bound): many
/// small entries (log lines, progress) may queue; bytes are bounded apart.
const IN_FLIGHT_ENTRIES: usize = 256;

/// A block is framed (compressed and written, not synced) once it holds this
/// many bytes of lines: large enough for zstd to compress well, small enough
/// that a crash between syncs loses little and memory stays bounded.
pub const BLOCK_BYTES: usize = 1 << 20;

/// The compression buffer keeps up to this much capacity between frames: a frame
/// of ordinary entries reuses it; grown past it by a large compressible block, it
/// is given back. (Stored blocks — embeddings — never use it; the block buffer
/// has its own bound, [`KEEP_BLOCK_CAPACITY`].)
const KEEP_CAPACITY: usize = 2 * BLOCK_BYTES;

/// The block keeps up to this much capacity between frames: a batch of 1,000
/// 1536-dimension embeddings with their rows (~3.3 MB as binary16, ~6.5 MB as
/// `real[]`'s float32) and the entries around it, without a reallocation per batch. Peak memory does not grow: the batch
/// held this much before its frame either way.
const KEEP_BLOCK_CAPACITY: usize = 8 * BLOCK_BYTES;

/// What the writer thread is asked to do, in order.
enum Job {
    /// Encode and append an entry, in a lane; it holds `usize` bytes of the budget.
    Entry(u16, Box<Entry>, usize),
    /// Answer the chain head once every earlier job is written.
    Head(SyncSender<[u8; 32]>),
    /// Write, flush and fsync every earlier entry, then answer the chain head
    /// (or why the journal could not be made durable).
    Sync(SyncSender<Result<[u8; 32], String>>),
    /// Write and flush every earlier entry to the operating system (no fsync), then answer
    /// the chain head: what a killed process leaves behind, not yet what a power cut does.
    Flush(SyncSender<Result<[u8; 32], String>>),
}

/// Writes one journal file.
pub struct JournalWriter {
    path: PathBuf,
    /// The writer thread's inbox; `None` once finished or failed.
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<std::io::Result<[u8; 32]>>>,
    /// Bytes handed to the thread and not yet encoded.
    in_flight: Arc<ByteBudget>,
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
    compressor: zstd::bulk::Compressor<'static>,
    compressed: Vec<u8>,
    /// The written bytes' way to the disk and out of the page cache.
    behind: WriteBehind,
    /// The folder of a journal file created since the last fsync: its entry is synced
    /// with the file's first sync, so that one sync makes both the file and its name
    /// durable (a run that commits nothing pays for none until its footer).
    unsynced_dir: Option<PathBuf>,
}

impl BlockWriter {
    /// Encodes one entry and appends its record (`len hash lane entry`) to the block;
    /// the caller frames the block once it is full ([`BlockWriter::frame_if_full`]),
    /// after dropping the entry, so an entry and its compressed frame are never
    /// held at once.
    fn push(&mut self, lane: u16, entry: &Entry) -> std::io::Result<()> {
        // Encoded in place, after room for the record's header: a batch of
        // embeddings is not copied once more from a scratch buffer into the block.
        let start = self.block.len();
        self.block.resize(start + frame::RECORD_HEADER_BYTES, 0);
        self.block.extend_from_slice(&lane.to_le_bytes());
        let encoded = Encoder::new(&mut self.block, &mut self.window).entry(entry);
        let payload_len = self.block.len() - start - frame::RECORD_HEADER_BYTES;
        if let Err(e) = encoded {
            self.block.truncate(start);
            return Err(std::io::Error::other(format!(
                "cannot encode an entry: {e}"
            )));
        }
        if payload_len > frame::MAX_PAYLOAD as usize {
            self.block.truncate(start);
            return Err(std::io::Error::other("a journal entry larger than 1 GiB"));
        }
        let hash = chain_v3(
            &self.prev,
            &self.block[start + frame::RECORD_HEADER_BYTES..],
        );
        frame::set_record_header(&mut self.block[start..], payload_len, &hash);
        self.prev = hash;
        Ok(())
    }

    /// Frames the block once it holds [`BLOCK_BYTES`].
    fn frame_if_full(&mut self) -> std::io::Result<()> {
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
        self.compressed.clear();
        let compress = self.block.len() <= PROBE_BYTES || {
            // Samples spread over the block: a block often starts with a bulk
            // insert's small entries (references, compressible) before the next
            // batch of embeddings, which is most of its bytes.
            let sample = PROBE_BYTES / PROBE_SAMPLES;
            let stride = (self.block.len() - sample) / (PROBE_SAMPLES - 1);
            self.compressed
                .reserve(zstd::zstd_safe::compress_bound(sample));
            let mut probed = 0;
            for k in 0..PROBE_SAMPLES {
                let at = k * stride;
                self.compressor
                    .compress_to_buffer(&self.block[at..at + sample], &mut self.compressed)?;
                probed += self.compressed.len();
                self.compressed.clear();
            }
            shrinks_enough(PROBE_BYTES, probed)
        };
        let payload = if compress {
            self.compressed
                .reserve(zstd::zstd_safe::compress_bound(self.block.len()));
            self.compressor
                .compress_to_buffer(&self.block, &mut self.compressed)?;
            frame::write(&mut self.out, FrameKind::ZstdRecords, &self.compressed)?;
            self.compressed.len()
        } else {
            // Straight from the block to the file: the frame's checksum first,
            // over the same pieces, then the pieces (a batch of embeddings is
            // megabytes; a copy into a frame buffer was a second pass and a
            // second buffer that size).
            let len = stored_zstd_frame_len(self.block.len());
            let mut crc = crc32fast::Hasher::new();
            stored_zstd_frame(&self.block, |piece| {
                crc.update(piece);
                Ok(())
            })?;
            frame::write_header(&mut self.out, FrameKind::ZstdRecords, len, crc.finalize())?;
            stored_zstd_frame(&self.block, |piece| self.out.write_all(piece))?;
            len
        };
        self.behind.wrote((frame::HEADER_BYTES + payload) as u64);
        if self.behind.due() {
            self.out.flush()?;
            self.behind.step(self.out.get_ref());
        }
        self.block.clear();
        // A batch of embeddings (~3 MB as binary16) grows the block past
        // BLOCK_BYTES. It keeps that capacity up to `KEEP_BLOCK_CAPACITY`, so the
        // next batch neither reallocates nor faults fresh pages in; the
        // compression buffer, which stored blocks never use, is given back.
        if self.block.capacity() > KEEP_BLOCK_CAPACITY {
            self.block = Vec::with_capacity(BLOCK_BYTES + (1 << 16));
        }
        if self.compressed.capacity() > KEEP_CAPACITY {
            self.compressed = Vec::new();
        }
        Ok(())
    }

    /// Frames the block, flushes and fsyncs (and, the first time, the folder's entry):
    /// everything so far is on disk.
    fn sync(&mut self) -> std::io::Result<()> {
        self.flush()?;
        self.out.get_ref().sync_data()?;
        if let Some(dir) = self.unsynced_dir.take() {
            sync_dir(&dir)?;
        }
        self.behind.synced(self.out.get_ref());
        Ok(())
    }

    /// Frames the block and hands it to the operating system, without an fsync.
    fn flush(&mut self) -> std::io::Result<()> {
        self.frame()?;
        self.out.flush()
    }
}

/// The writer thread: writes entries until the channel closes, then frames the
/// last block, syncs the file and returns the final hash.
fn write_entries(
    mut out: BlockWriter,
    jobs: Receiver<Job>,
    in_flight: &ByteBudget,
) -> std::io::Result<[u8; 32]> {
    let mut index = 0u64;
    for job in jobs {
        match job {
            Job::Entry(lane, entry, bytes) => {
                let pushed = out.push(lane, &entry);
                drop(entry);
                let framed = pushed.and_then(|()| out.frame_if_full());
                // Released once the entry's bytes are framed, not merely encoded: a large
                // entry, its encoded block and its compressed frame are then never all
                // held beside the next large entry (the sender builds it only after
                // `acquire`, see `append_call_in_lane`).
                in_flight.release(bytes);
                framed.map_err(|e| std::io::Error::other(format!("entry {index}: {e}")))?
            }
            Job::Head(reply) => {
                let _ = reply.send(out.prev);
                continue;
            }
            Job::Sync(reply) => {
                answer(out.sync(), &out, reply)?;
                continue;
            }
            Job::Flush(reply) => {
                answer(out.flush(), &out, reply)?;
                continue;
            }
        }
        index += 1;
    }
    // One fsync for the end: `sync_all` covers what `sync_data` would, and the metadata.
    out.flush()?;
    out.out.get_ref().sync_all()?;
    if let Some(dir) = out.unsynced_dir.take() {
        sync_dir(&dir)?;
    }
    out.behind.synced(out.out.get_ref());
    Ok(out.prev)
}

/// Answers a sync or flush with the chain head, or its error (which also stops the thread).
fn answer(
    outcome: std::io::Result<()>,
    out: &BlockWriter,
    reply: SyncSender<Result<[u8; 32], String>>,
) -> std::io::Result<()> {
    match outcome {
        Ok(()) => {
            let _ = reply.send(Ok(out.prev));
            Ok(())
        }
        Err(e) => {
            let _ = reply.send(Err(e.to_string()));
            Err(e)
        }
    }
}

/// The null sink's thread (benchmarks only): drops every entry, answers heads and syncs
/// with zeros.
fn drop_entries(jobs: Receiver<Job>, in_flight: &ByteBudget) -> std::io::Result<[u8; 32]> {
    for job in jobs {
        match job {
            Job::Entry(_, entry, bytes) => {
                drop(entry);
                in_flight.release(bytes);
            }
            Job::Head(reply) => {
                let _ = reply.send([0; 32]);
            }
            Job::Sync(reply) | Job::Flush(reply) => {
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
    /// if the file exists. The folder's entry is synced with the file's first
    /// [`JournalWriter::sync`], so the file itself survives a crash once that returned.
    pub fn create(path: &Path) -> Result<JournalWriter, JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            private_dir_all(dir).map_err(io)?;
        }
        let mut options = File::options();
        options.write(true).create_new(true);
        // A journal holds every row the plugin read: readable by its owner only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        out.write_all(frame::MAGIC).map_err(io)?;
        out.flush().map_err(io)?;
        let block = BlockWriter {
            out,
            block: Vec::with_capacity(BLOCK_BYTES + (1 << 16)),
            prev: [0; 32],
            window: WriterWindow::default(),
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(io)?,
            compressed: Vec::new(),
            behind: WriteBehind::new(frame::MAGIC.len() as u64),
            unsynced_dir: Some(dir.unwrap_or(Path::new(".")).to_owned()),
        };
        let (jobs, inbox) = sync_channel(IN_FLIGHT_ENTRIES);
        let in_flight = Arc::new(ByteBudget::new(IN_FLIGHT_BYTES));
        let thread_in_flight = Arc::clone(&in_flight);
        let null = null_sink();
        if null {
            tracing::warn!(
                "MIGRUN_BENCH_JOURNAL_SINK=null: journal entries are dropped (benchmark build)"
            );
        }
        let thread = std::thread::Builder::new()
            .name("migrun-journal".into())
            .spawn(move || {
                let outcome = if null {
                    drop_entries(inbox, &thread_in_flight)
                } else {
                    write_entries(block, inbox, &thread_in_flight)
                };
                thread_in_flight.close();
                outcome
            })
            .map_err(io)?;
        Ok(JournalWriter {
            path: path.to_owned(),
            jobs: Some(jobs),
            thread: Some(thread),
            in_flight,
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

    /// Makes every entry appended so far durable (written, flushed, fsynced — with the
    /// journal's folder entry, the first time) and returns the chain head. The host calls it
    /// before each COMMIT it sends.
    pub fn sync(&mut self) -> Result<String, JournalError> {
        self.settle(Job::Sync)
    }

    /// Writes every entry appended so far to the operating system without an fsync and
    /// returns the chain head: a process killed after it leaves them in the file; a power
    /// cut may not until the next [`JournalWriter::sync`]. For what needs no durability of
    /// its own yet — the header, before anything is committed.
    pub fn flush(&mut self) -> Result<String, JournalError> {
        self.settle(Job::Flush)
    }

    fn settle(
        &mut self,
        job: fn(SyncSender<Result<[u8; 32], String>>) -> Job,
    ) -> Result<String, JournalError> {
        if self.failed.is_some() {
            return Err(self.stopped());
        }
        let (reply, answer) = sync_channel(1);
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job(reply)).is_ok());
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
        let bytes = entry.approx_bytes();
        self.send_entry(lane, bytes, || entry)
    }

    /// Takes `bytes` from the budget (waiting for room), then builds the entry and hands
    /// it to the writer thread; the bytes come back if it cannot be sent.
    fn send_entry(
        &mut self,
        lane: u16,
        bytes: usize,
        build: impl FnOnce() -> Entry,
    ) -> Result<(), JournalError> {
        if self.failed.is_some() {
            return Err(self.stopped());
        }
        self.in_flight.acquire(bytes);
        let outcome = self.send(Job::Entry(lane, Box::new(build()), bytes));
        if outcome.is_err() {
            self.in_flight.release(bytes);
        }
        outcome
    }

    /// Appends a call that ran live and its result, in `lane`: the call moves in, the
    /// result (which the plugin gets) is copied — after the budget has room for both,
    /// so that a batch's copy for the journal is not made while the writer still holds
    /// the one before.
    pub fn append_call_in_lane(
        &mut self,
        lane: u16,
        call: HostCall,
        result: &CallResult,
    ) -> Result<(), JournalError> {
        let bytes = 64 + call.approx_bytes() + result.approx_bytes();
        self.send_entry(lane, bytes, || Entry::Call {
            call,
            result: result.clone(),
        })
    }

    /// The most bytes of entries ever in flight to the writer thread (see [`IN_FLIGHT_BYTES`]).
    pub fn peak_in_flight_bytes(&self) -> usize {
        self.in_flight.peak()
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
/// Creates `dir` and its missing parents; the folders it creates are its owner's only
/// (`0700` on Unix): journals and backups hold the data the plugin read. A folder that
/// exists keeps its mode (the operator chose it).
pub fn private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

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

#[cfg(test)]
mod tests {
    use super::{ZSTD_BLOCK_MAX, stored_zstd_frame, stored_zstd_frame_len};

    /// Every size a stored frame splits differently (empty, one byte, exactly one
    /// block, one byte more, several blocks) is a frame zstd itself reads back,
    /// naming its content size as the reader's one-call path needs.
    #[test]
    fn stored_frames_are_zstd_frames_of_the_same_bytes() {
        for len in [
            0,
            1,
            ZSTD_BLOCK_MAX - 1,
            ZSTD_BLOCK_MAX,
            ZSTD_BLOCK_MAX + 1,
            3 * ZSTD_BLOCK_MAX + 17,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
            let mut frame = vec![0xAA];
            stored_zstd_frame(&data, |piece| {
                frame.extend_from_slice(piece);
                Ok(())
            })
            .unwrap();
            let frame = &frame[1..];
            assert_eq!(frame.len(), stored_zstd_frame_len(len));
            assert_eq!(
                zstd::zstd_safe::get_frame_content_size(frame)
                    .ok()
                    .flatten(),
                Some(len as u64),
                "{len} bytes"
            );
            assert_eq!(
                zstd::bulk::decompress(frame, len.max(1)).unwrap(),
                data,
                "{len} bytes"
            );
            let mut streamed = Vec::new();
            std::io::Read::read_to_end(
                &mut zstd::stream::read::Decoder::new(frame).unwrap(),
                &mut streamed,
            )
            .unwrap();
            assert_eq!(streamed, data, "{len} bytes, streamed");
            assert_eq!(
                frame.len(),
                14 + len + 3 * len.div_ceil(ZSTD_BLOCK_MAX).max(1)
            );
        }
    }
}
