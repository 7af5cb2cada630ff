//! [`JournalReader`]: streams entries back, verifying the hash chain as it goes.
//!
//! Reads every format: `migrun.journal/3` (framed binary records, see
//! [`crate::frame`] and [`crate::binary`]), `/2` (framed text lines) and `/1`
//! (one zstd stream of lines), told apart by their first bytes. Of a framed
//! journal whose writer died mid-frame, the entries of every whole frame are
//! read and the torn tail is reported by [`JournalReader::torn_tail`].
//!
//! **Read-ahead.** A `/3` journal is read, checked and decoded on two threads
//! of its own while the caller uses the entries before (a replay runs the plugin
//! on them): one reads and decompresses frames (one frame ahead,
//! [`FrameReader::ahead`]), the other checks the chain and decodes records; the
//! three overlap instead of adding up. What waits between
//! them is bounded by bytes ([`READ_AHEAD_BYTES`], or one record when a single one
//! is larger), and errors arrive in order, at the entry they belong to, exactly
//! as from a reader without the thread.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use super::binary::{Decoder, ReaderWindow};
use super::budget::ByteBudget;
use super::frame::{FrameKind, FrameReader, FramesAhead, MAGIC, MAGIC_PREFIX, MAGIC_V2, TornTail};
use super::page_cache::ReadBehind;
use super::writer::{chain, chain_v3};
use super::{Entry, FORMAT, FORMAT_V1, FORMAT_V2, Header, JournalError};

/// zstd's frame magic number, which a `migrun.journal/1` file starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

type Source = Box<dyn Read + Send>;

/// Where the lines come from.
enum Input {
    /// `migrun.journal/1`: one zstd stream.
    V1(Box<dyn BufRead + Send>),
    /// `migrun.journal/2`: frames of lines.
    V2(Box<FrameReader<Source>>),
    /// `migrun.journal/3`, read on the caller's thread (its header).
    V3(Box<Records>),
    /// `migrun.journal/3` after its header: records read ahead on a thread.
    Ahead(Box<ReadAhead>),
    /// Only while the input changes hands.
    Done,
}

/// Bytes of records read ahead and not yet taken by the caller, at most (their
/// encoded size, which for the large values that matter is their decoded size):
/// one batch of embeddings (~6 MB) waits alone.
pub const READ_AHEAD_BYTES: usize = 4 << 20;

/// The records of a `/3` journal, in order: frames read, chain checked, entries decoded.
struct Records {
    path: PathBuf,
    frames: Frames,
    window: ReaderWindow,
    /// The hash of the last record read.
    prev: [u8; 32],
    /// The index of the next record.
    index: u64,
}

/// Where the records' bytes come from: the frames read inline (the header), then
/// read and decompressed on a thread of their own ([`FrameReader::ahead`]).
enum Frames {
    Inline(FrameReader<Source>),
    Ahead(FramesAhead),
}

impl Frames {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self {
            Frames::Inline(frames) => frames.fill_buf(),
            Frames::Ahead(frames) => frames.fill_buf(),
        }
    }

    fn consume(&mut self, amt: usize) {
        match self {
            Frames::Inline(frames) => frames.consume(amt),
            Frames::Ahead(frames) => frames.consume(amt),
        }
    }

    fn torn(&mut self) -> &mut Option<TornTail> {
        match self {
            Frames::Inline(frames) => &mut frames.torn,
            Frames::Ahead(frames) => &mut frames.torn,
        }
    }
}

/// One record, checked and decoded.
struct Record {
    index: u64,
    lane: u16,
    hash: [u8; 32],
    entry: Entry,
}

/// What the read-ahead thread hands over, in order.
enum Ahead {
    /// A record, and the bytes of the budget it holds.
    Record(Box<Record>, usize),
    /// The end of the journal, and its torn frame if its writer died mid-frame.
    End(Option<TornTail>),
    /// Why the journal cannot be read further (the thread stopped).
    Failed(JournalError),
}

/// A `/3` journal's records read on a thread of their own (see the module documentation).
struct ReadAhead {
    /// `None` once dropped (the thread's next send fails and it stops).
    items: Option<Receiver<Ahead>>,
    budget: Arc<ByteBudget>,
    /// Set at the end: the torn frame the file ends with, if any.
    torn: Option<TornTail>,
    /// The end was handed over: nothing more will come.
    done: bool,
    /// The error the thread stopped with: returned again on every later call, as a
    /// reader without the thread would (it would fail on the same record again).
    failed: Option<JournalError>,
}

impl ReadAhead {
    /// Moves `records` to a new thread that reads ahead of the caller.
    fn start(mut records: Records) -> std::io::Result<ReadAhead> {
        if let Frames::Inline(frames) = records.frames {
            records.frames = Frames::Ahead(frames.ahead()?);
        }
        let (send, items) = channel();
        let budget = Arc::new(ByteBudget::new(READ_AHEAD_BYTES));
        let thread_budget = Arc::clone(&budget);
        std::thread::Builder::new()
            .name("migrun-journal-read".into())
            .spawn(move || records.read_ahead(&send, &thread_budget))?;
        Ok(ReadAhead {
            items: Some(items),
            budget,
            torn: None,
            done: false,
            failed: None,
        })
    }

    fn next(&mut self) -> Result<Option<Record>, JournalError> {
        if let Some(e) = &self.failed {
            return Err(again(e));
        }
        if self.done {
            return Ok(None);
        }
        let item = self.items.as_ref().and_then(|items| items.recv().ok());
        match item {
            Some(Ahead::Record(record, bytes)) => {
                self.budget.release(bytes);
                Ok(Some(*record))
            }
            Some(Ahead::End(torn)) => {
                self.done = true;
                self.torn = torn;
                Ok(None)
            }
            Some(Ahead::Failed(e)) => {
                self.failed = Some(again(&e));
                Err(e)
            }
            None => {
                let e = JournalError::Io {
                    path: String::new(),
                    source: std::io::Error::other("the journal's read-ahead thread stopped"),
                };
                self.failed = Some(again(&e));
                Err(e)
            }
        }
    }
}

/// The same error again (a `JournalError` holds an `io::Error`, which is not `Clone`).
fn again(e: &JournalError) -> JournalError {
    match e {
        JournalError::Io { path, source } => JournalError::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        JournalError::Malformed {
            path,
            index,
            detail,
        } => JournalError::Malformed {
            path: path.clone(),
            index: *index,
            detail: detail.clone(),
        },
        JournalError::ChainBroken {
            path,
            index,
            expected,
            found,
        } => JournalError::ChainBroken {
            path: path.clone(),
            index: *index,
            expected: expected.clone(),
            found: found.clone(),
        },
        JournalError::NoEntries { path, detail } => JournalError::NoEntries {
            path: path.clone(),
            detail: detail.clone(),
        },
        JournalError::UnsupportedFormat { path, found } => JournalError::UnsupportedFormat {
            path: path.clone(),
            found: found.clone(),
        },
    }
}

impl Drop for ReadAhead {
    /// A reader dropped before the end (a replay that diverged) stops its thread:
    /// its next send fails, and it never waits for room again.
    fn drop(&mut self) {
        self.items = None;
        self.budget.close();
    }
}

impl Records {
    /// The thread's loop: every record, then the end, or the first error.
    fn read_ahead(&mut self, send: &Sender<Ahead>, budget: &ByteBudget) {
        loop {
            let item = match self.next(budget) {
                Ok(Some((record, bytes))) => Ahead::Record(Box::new(record), bytes),
                Ok(None) => Ahead::End(self.frames.torn().take()),
                Err(e) => Ahead::Failed(e),
            };
            let last = !matches!(item, Ahead::Record(..));
            if send.send(item).is_err() || last {
                return;
            }
        }
    }

    /// The next record: hash checked, then decoded; with `budget`, its bytes are taken
    /// from it first (waiting for room), and returned with it.
    fn next(&mut self, budget: &ByteBudget) -> Result<Option<(Record, usize)>, JournalError> {
        let index = self.index;
        let block = match self.frames.fill_buf() {
            Ok(block) => block,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let e = e.to_string();
                return Err(self.malformed(index, e));
            }
            Err(source) => {
                return Err(JournalError::Io {
                    path: self.path.display().to_string(),
                    source,
                });
            }
        };
        if block.is_empty() {
            return Ok(None);
        }
        let Some((hash, payload, used)) = super::frame::split_record(block) else {
            return Err(self.malformed(
                index,
                "a record cut short inside its frame: the journal was modified or damaged after it was written".into(),
            ));
        };
        let expected = chain_v3(&self.prev, payload);
        if *hash != expected {
            return Err(JournalError::ChainBroken {
                path: self.path.display().to_string(),
                index,
                expected: hex::encode(expected),
                found: hex::encode(hash),
            });
        }
        let bytes = payload.len();
        budget.acquire(bytes);
        let decoded = match payload {
            [a, b, entry @ ..] => Decoder::new(entry, &mut self.window)
                .entry()
                .map(|e| (u16::from_le_bytes([*a, *b]), e))
                .map_err(|e| e.to_string()),
            _ => Err("a record shorter than its lane".to_owned()),
        };
        self.frames.consume(used);
        let (lane, entry) = match decoded {
            Ok(decoded) => decoded,
            Err(detail) => {
                budget.release(bytes);
                return Err(self.malformed(index, detail));
            }
        };
        self.prev = expected;
        self.index += 1;
        Ok(Some((
            Record {
                index,
                lane,
                hash: expected,
                entry,
            },
            bytes,
        )))
    }

    fn malformed(&self, index: u64, detail: String) -> JournalError {
        JournalError::Malformed {
            path: self.path.display().to_string(),
            index,
            detail,
        }
    }
}

impl Input {
    fn read_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        match self {
            Input::V1(input) => input.read_line(line),
            Input::V2(input) => input.read_line(line),
            Input::V3(..) | Input::Ahead(..) | Input::Done => {
                unreachable!("a /3 journal has no lines")
            }
        }
    }
}

/// Reads one journal file, entry by entry.
pub struct JournalReader {
    path: PathBuf,
    input: Input,
    format: &'static str,
    prev: [u8; 32],
    index: u64,
    line: String,
    lane: u16,
    /// Only this lane's entries (and the footer, which is the run's) are returned.
    only_lane: Option<u16>,
}

impl JournalReader {
    /// Opens `path` and reads its header (entry 0).
    pub fn open(path: &Path) -> Result<(JournalReader, Header), JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        JournalReader::from_reader(path, ReadBehind::new(file))
    }

    /// Reads a journal from any byte stream, as written; `path` only names it
    /// in errors. Whatever the bytes, the result is an entry or a
    /// [`JournalError`], never a panic (the `journal_reader` fuzz target holds
    /// it to that).
    pub fn from_reader(
        path: &Path,
        input: impl std::io::Read + Send + 'static,
    ) -> Result<(JournalReader, Header), JournalError> {
        let name = path.display().to_string();
        let io = |source| JournalError::Io {
            path: name.clone(),
            source,
        };
        let mut input: Source = Box::new(input);
        let mut start = Vec::with_capacity(64);
        let mut byte = [0u8; 1];
        // The magic line (at most 64 bytes), or zstd's 4-byte magic.
        while start.len() < 64 && !start.ends_with(b"\n") {
            if start.len() == ZSTD_MAGIC.len() && start == ZSTD_MAGIC {
                break;
            }
            if input.read(&mut byte).map_err(io)? == 0 {
                break;
            }
            start.push(byte[0]);
        }
        let malformed = |detail: &str| JournalError::Malformed {
            path: name.clone(),
            index: 0,
            detail: detail.to_owned(),
        };
        let no_entries = |detail: &str| JournalError::NoEntries {
            path: name.clone(),
            detail: detail.to_owned(),
        };
        let (input, format) = if start == ZSTD_MAGIC {
            let rest: Source = Box::new(Cursor::new(start).chain(input));
            let decoder = zstd::Decoder::new(rest).map_err(io)?;
            (
                Input::V1(Box::new(BufReader::with_capacity(1 << 16, decoder))),
                FORMAT_V1,
            )
        } else if start == MAGIC {
            (
                Input::V3(Box::new(Records {
                    path: path.to_owned(),
                    frames: Frames::Inline(FrameReader::new(input, FrameKind::ZstdRecords)),
                    window: ReaderWindow::default(),
                    prev: [0; 32],
                    index: 0,
                })),
                FORMAT,
            )
        } else if start == MAGIC_V2 {
            (
                Input::V2(Box::new(FrameReader::new(input, FrameKind::ZstdLines))),
                FORMAT_V2,
            )
        } else if start.is_empty() {
            return Err(no_entries(
                "the file is empty: the run stopped before its journal began",
            ));
        } else if start.starts_with(MAGIC_PREFIX) && start.ends_with(b"\n") {
            return Err(JournalError::UnsupportedFormat {
                path: name,
                found: String::from_utf8_lossy(&start[..start.len() - 1]).into_owned(),
            });
        } else if MAGIC_PREFIX.starts_with(&start)
            || (start.starts_with(MAGIC_PREFIX)
                && start[MAGIC_PREFIX.len()..].iter().all(u8::is_ascii_digit))
        {
            return Err(no_entries(
                "the file ends inside its first line: the run stopped before its journal began",
            ));
        } else {
            return Err(malformed(
                "not a migrun journal (it starts with neither `migrun.journal/<n>` nor a zstd frame)",
            ));
        };
        let mut reader = JournalReader {
            path: path.to_owned(),
            input,
            format,
            prev: [0; 32],
            index: 0,
            only_lane: None,
            line: String::new(),
            lane: 0,
        };
        let header = match reader.next_entry()? {
            Some((_, Entry::Header(header))) => header,
            None => {
                return Err(JournalError::NoEntries {
                    path: path.display().to_string(),
                    detail: "the run stopped before its header was on disk".into(),
                });
            }
            _ => return Err(reader.malformed(0, "the first entry is not a header".into())),
        };
        if header.format != reader.format {
            return Err(JournalError::UnsupportedFormat {
                path: path.display().to_string(),
                found: header.format,
            });
        }
        // The header read, the rest of a `/3` journal is read ahead on a thread.
        if matches!(reader.input, Input::V3(..)) {
            let Input::V3(records) = std::mem::replace(&mut reader.input, Input::Done) else {
                unreachable!("matched above");
            };
            reader.input = Input::Ahead(Box::new(ReadAhead::start(*records).map_err(io)?));
        }
        Ok((reader, header))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format of the file (`migrun.journal/3`, `/2` or `/1`).
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// The hash of the last entry read.
    pub fn head(&self) -> String {
        hex::encode(self.prev)
    }

    /// Entries read so far (the index the next one has).
    pub fn entries_read(&self) -> u64 {
        self.index
    }

    /// Once [`JournalReader::next_entry`] returned `None`: the torn frame the
    /// file ends with, if its writer died mid-frame (`/2` only).
    pub fn torn_tail(&self) -> Option<&TornTail> {
        match &self.input {
            Input::V2(frames) => frames.torn.as_ref(),
            Input::V3(records) => match &records.frames {
                Frames::Inline(frames) => frames.torn.as_ref(),
                Frames::Ahead(frames) => frames.torn.as_ref(),
            },
            Input::Ahead(ahead) => ahead.torn.as_ref(),
            Input::V1(_) | Input::Done => None,
        }
    }

    /// The most bytes of records ever read ahead and waiting for the caller (see
    /// [`READ_AHEAD_BYTES`]); 0 for `/1` and `/2` journals, which are read inline.
    pub fn peak_read_ahead_bytes(&self) -> usize {
        match &self.input {
            Input::Ahead(ahead) => ahead.budget.peak(),
            _ => 0,
        }
    }

    /// From now on, returns only the entries of `lane` (and the footer): the reader of one
    /// lane's replay. The chain is still verified over every entry.
    pub fn only_lane(&mut self, lane: u16) {
        self.only_lane = Some(lane);
    }

    /// The lane of the last entry read: the worker that produced it (0 when the run
    /// was sequential, and always 0 in `/1` and `/2` journals).
    pub fn lane(&self) -> u16 {
        self.lane
    }

    /// The next entry and its index, or `None` at the end of the journal.
    pub fn next_entry(&mut self) -> Result<Option<(u64, Entry)>, JournalError> {
        loop {
            let next = if matches!(self.input, Input::V3(..) | Input::Ahead(..)) {
                self.next_record()?
            } else {
                self.next_line()?
            };
            match (&next, self.only_lane) {
                (Some((_, Entry::Footer(_))), _) | (None, _) | (_, None) => return Ok(next),
                (Some(_), Some(lane)) if lane == self.lane => return Ok(next),
                _ => continue,
            }
        }
    }

    /// The next entry of a `/1` or `/2` journal (always lane 0).
    fn next_line(&mut self) -> Result<Option<(u64, Entry)>, JournalError> {
        self.line.clear();
        let index = self.index;
        let read = match self.input.read_line(&mut self.line) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(self.malformed(index, e.to_string()));
            }
            Err(source) => {
                return Err(JournalError::Io {
                    path: self.path.display().to_string(),
                    source,
                });
            }
        };
        if read == 0 {
            return Ok(None);
        }
        let line = self
            .line
            .strip_suffix('\n')
            .ok_or_else(|| self.malformed(index, "truncated line".into()))?;
        let (hash, json) = line
            .split_once('\t')
            .ok_or_else(|| self.malformed(index, "expected <hash>\\t<json>".into()))?;
        let expected = hex::encode(chain(&self.prev, json.as_bytes()));
        if hash != expected {
            return Err(JournalError::ChainBroken {
                path: self.path.display().to_string(),
                index,
                expected,
                found: hash.to_owned(),
            });
        }
        let entry: Entry =
            serde_json::from_str(json).map_err(|e| self.malformed(index, e.to_string()))?;
        self.prev = hex::decode(hash)
            .ok()
            .and_then(|b| b.try_into().ok())
            .expect("a hash that matched is 32 bytes of hex");
        self.index += 1;
        Ok(Some((index, entry)))
    }

    /// The next record of a `/3` journal: hash checked, then decoded (here for the header,
    /// on the read-ahead thread after it).
    fn next_record(&mut self) -> Result<Option<(u64, Entry)>, JournalError> {
        let record = match &mut self.input {
            Input::V3(records) => records
                .next(&ByteBudget::new(usize::MAX))
                .map(|r| r.map(|(record, _)| record)),
            Input::Ahead(ahead) => ahead.next().map_err(|e| match e {
                JournalError::Io { path, source } if path.is_empty() => JournalError::Io {
                    path: self.path.display().to_string(),
                    source,
                },
                e => e,
            }),
            _ => unreachable!("called for /3 journals only"),
        }?;
        let Some(record) = record else {
            return Ok(None);
        };
        self.prev = record.hash;
        self.lane = record.lane;
        self.index = record.index + 1;
        Ok(Some((record.index, record.entry)))
    }

    fn malformed(&self, index: u64, detail: String) -> JournalError {
        JournalError::Malformed {
            path: self.path.display().to_string(),
            index,
            detail,
        }
    }
}
