//! The container of `migrun.journal/2` and `/3`: a magic line, then frames.
//!
//! ```text
//! file   = "migrun.journal/3\n" frame*          ("migrun.journal/2\n" for /2)
//! frame  = kind:u8 len:u32le payload_crc:u32le header_crc:u32le payload[len]
//! ```
//!
//! A `/2` file holds frames of kind 1 (zstd of whole text lines), a `/3` file
//! frames of kind 2 (zstd of whole binary records, see [`crate::binary`]).
//!
//! `payload_crc` is the CRC-32 (IEEE) of the payload, `header_crc` that of the
//! 9 bytes before it. The writer only ever appends whole frames, so a process
//! killed mid-write leaves at most one torn frame, at the very end: a header
//! shorter than 13 bytes, or a payload shorter than its (checksummed) length.
//! A reader drops that tail and reports it ([`TornTail`]); everything before
//! it is the longest valid prefix. A checksum that does not match is never a
//! crash — a `write` does not change bytes already written — so it is reported
//! as damage, not dropped.
//!
//! Frame kinds are how the format grows: a reader refuses a kind it does not
//! know by number, so a later kind (a binary entry encoding, say) is an
//! addition, not a new container.

use std::io::{BufRead, Read, Write};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

/// The first bytes of every `migrun.journal/3` file (the format new runs write).
pub const MAGIC: &[u8] = b"migrun.journal/3\n";

/// The first bytes of every `migrun.journal/2` file.
pub const MAGIC_V2: &[u8] = b"migrun.journal/2\n";

/// What every versioned journal's magic line starts with.
pub const MAGIC_PREFIX: &[u8] = b"migrun.journal/";

/// Bytes in a frame header.
pub const HEADER_BYTES: usize = 13;

/// A frame's largest payload a reader accepts (a frame holds one block, or
/// one entry larger than a block).
pub const MAX_PAYLOAD: u32 = 1 << 30;

/// What a frame's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// One zstd frame of whole lines `<hash>\t<json>\n`, as `migrun.journal/1`
    /// lines (same chain, same entries).
    ZstdLines = 1,
    /// One zstd frame of whole binary records (`migrun.journal/3`):
    /// `len:u32le hash:[u8; 32] payload[len]` each, `payload = lane:u16le entry`.
    ZstdRecords = 2,
}

/// Writes one frame.
pub fn write(out: &mut impl Write, kind: FrameKind, payload: &[u8]) -> std::io::Result<()> {
    write_header(out, kind, payload.len(), crc32fast::hash(payload))?;
    out.write_all(payload)
}

/// Writes the header of a frame whose payload (`len` bytes, CRC-32 `crc`) the
/// caller writes next, in pieces.
pub fn write_header(
    out: &mut impl Write,
    kind: FrameKind,
    len: usize,
    crc: u32,
) -> std::io::Result<()> {
    let len = u32::try_from(len)
        .ok()
        .filter(|&n| n <= MAX_PAYLOAD)
        .ok_or_else(|| std::io::Error::other("journal frame larger than 1 GiB"))?;
    let mut header = [0u8; HEADER_BYTES];
    header[0] = kind as u8;
    header[1..5].copy_from_slice(&len.to_le_bytes());
    header[5..9].copy_from_slice(&crc.to_le_bytes());
    let header_crc = crc32fast::hash(&header[..9]);
    header[9..13].copy_from_slice(&header_crc.to_le_bytes());
    out.write_all(&header)
}

/// The end of a journal whose writer died mid-frame.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TornTail {
    /// Where the torn frame starts (bytes from the start of the file).
    pub offset: u64,
    /// Its bytes that were written.
    pub bytes: u64,
}

/// Reads the frames of a `/2` or `/3` journal (after its magic line) as the
/// stream of their decompressed contents (lines, or records), frame by frame.
pub(crate) struct FrameReader<R> {
    input: R,
    /// The one frame kind this format holds.
    kind: FrameKind,
    block: Vec<u8>,
    pos: usize,
    /// The compressed payload of the frame being read. Kept between frames and never
    /// shrunk, so that its bytes are zeroed once, not once per frame.
    payload: Vec<u8>,
    /// Reused for every frame (a decompression context per frame was measurable).
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    /// Bytes of the file consumed so far (magic included).
    pub(crate) offset: u64,
    /// Set when the file ends in a torn frame.
    pub(crate) torn: Option<TornTail>,
    done: bool,
}

impl<R: Read> FrameReader<R> {
    /// Reads frames of `kind` from `input`, positioned after the magic line.
    pub(crate) fn new(input: R, kind: FrameKind) -> FrameReader<R> {
        FrameReader {
            input,
            kind,
            block: Vec::new(),
            pos: 0,
            payload: Vec::new(),
            decompressor: None,
            offset: MAGIC.len() as u64,
            torn: None,
            done: false,
        }
    }

    /// Loads the next frame; `false` at the end of the file (or a torn tail).
    fn next_frame(&mut self) -> std::io::Result<bool> {
        let start = self.offset;
        let mut header = [0u8; HEADER_BYTES];
        let got = read_full(&mut self.input, &mut header)?;
        if got == 0 {
            return Ok(false);
        }
        if got < HEADER_BYTES {
            self.torn = Some(TornTail {
                offset: start,
                bytes: got as u64,
            });
            return Ok(false);
        }
        let damaged = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "frame at byte {start}: {what}: the journal was modified or damaged after it was written"
                ),
            )
        };
        let header_crc = u32::from_le_bytes(header[9..13].try_into().expect("4 bytes"));
        if crc32fast::hash(&header[..9]) != header_crc {
            return Err(damaged("header checksum mismatch"));
        }
        let kind = header[0];
        let len = u32::from_le_bytes(header[1..5].try_into().expect("4 bytes"));
        let payload_crc = u32::from_le_bytes(header[5..9].try_into().expect("4 bytes"));
        if len > MAX_PAYLOAD {
            return Err(damaged("payload length over 1 GiB"));
        }
        let len_usize = len as usize;
        if self.payload.len() < len_usize {
            // Grown in steps of what was read, so a length a torn frame claims is not
            // allocated up front.
            self.payload
                .resize(len_usize.min(self.payload.len().max(1 << 20) * 2), 0);
        }
        let mut read = 0;
        loop {
            let want = len_usize.min(self.payload.len());
            let got = read_full(&mut self.input, &mut self.payload[read..want])?;
            read += got;
            if read < want || read == len_usize {
                break;
            }
            let grown = len_usize.min(self.payload.len() * 2);
            self.payload.resize(grown, 0);
        }
        let payload = &self.payload[..read];
        if read < len_usize {
            self.torn = Some(TornTail {
                offset: start,
                bytes: (HEADER_BYTES + read) as u64,
            });
            return Ok(false);
        }
        if crc32fast::hash(payload) != payload_crc {
            return Err(damaged("payload checksum mismatch"));
        }
        self.offset += (HEADER_BYTES + read) as u64;
        if kind != self.kind as u8 {
            let why = if kind == FrameKind::ZstdLines as u8 || kind == FrameKind::ZstdRecords as u8
            {
                "is not a frame kind of this journal's format: the journal was modified or damaged after it was written"
            } else {
                "is not known to this migrun (written by a newer one?)"
            };
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame at byte {start}: kind {kind} {why}"),
            ));
        }
        self.block.clear();
        let cannot = |e: std::io::Error| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("frame at byte {start}: cannot decompress: {e}"),
            )
        };
        // The writer's frames name their decompressed size: decompressed in one call
        // into the block's capacity (no zeroing). A frame that does not say (or says
        // more than the limits below) is streamed, bounded like the payload: a crafted frame
        // cannot make the reader allocate without end.
        let size = zstd::zstd_safe::get_frame_content_size(payload)
            .ok()
            .flatten()
            .filter(|&n| n <= u64::from(MAX_PAYLOAD))
            // Nor is a size far beyond what the payload could plausibly hold reserved
            // up front (the streamed path grows with what really decompresses).
            .filter(|&n| n <= (payload.len() as u64).saturating_mul(64) + (1 << 20));
        match size {
            Some(size) => {
                let decompressor = match &mut self.decompressor {
                    Some(d) => d,
                    None => self
                        .decompressor
                        .insert(zstd::bulk::Decompressor::new().map_err(cannot)?),
                };
                self.block.reserve(size as usize);
                let n = decompressor
                    .decompress_to_buffer(payload, &mut self.block)
                    .map_err(cannot)?;
                if n as u64 != size {
                    return Err(damaged("the frame's size does not match its content"));
                }
            }
            None => {
                zstd::stream::read::Decoder::new(payload)
                    .map_err(cannot)?
                    .take(u64::from(MAX_PAYLOAD) + 1)
                    .read_to_end(&mut self.block)
                    .map_err(cannot)?;
            }
        }
        if self.payload.len() > 64 << 20 {
            // A rare huge frame does not keep its memory for the rest of the file.
            self.payload = Vec::new();
        }
        if self.block.len() > MAX_PAYLOAD as usize {
            return Err(damaged("more than 1 GiB of entries in one frame"));
        }
        if self.kind == FrameKind::ZstdLines && self.block.last().is_some_and(|&b| b != b'\n') {
            return Err(damaged("the frame does not end with a whole entry"));
        }
        self.pos = 0;
        Ok(true)
    }
}

impl<R: Read + Send + 'static> FrameReader<R> {
    /// Moves the reading and decompressing of the frames to a thread of their own,
    /// one frame ahead of whoever reads their contents (the records of a `/3`
    /// journal, checked and decoded on the read-ahead thread): on two cores the two
    /// halves of reading a journal overlap. What was already decompressed and not yet
    /// consumed is handed over first.
    pub(crate) fn ahead(mut self) -> std::io::Result<FramesAhead> {
        let block = std::mem::take(&mut self.block);
        let pos = self.pos;
        let (send, frames) = sync_channel(0);
        let (spare, spares) = channel();
        std::thread::Builder::new()
            .name("migrun-journal-frames".into())
            .spawn(move || self.decompress_ahead(&send, &spares))?;
        Ok(FramesAhead {
            frames: Some(frames),
            spare,
            block,
            pos,
            torn: None,
            done: false,
            failed: None,
        })
    }

    /// The thread's loop: every frame's contents, then the end, or the first error.
    /// The channel holds nothing (a rendezvous): one frame waits here, decompressed,
    /// while the one before is read; buffers come back through `spares` for reuse.
    fn decompress_ahead(mut self, send: &SyncSender<FrameAhead>, spares: &Receiver<Vec<u8>>) {
        loop {
            if let Ok(spare) = spares.try_recv() {
                self.block = spare;
            }
            let item = if self.done {
                FrameAhead::End(self.torn.take())
            } else {
                match self.next_frame() {
                    Ok(true) => FrameAhead::Block(std::mem::take(&mut self.block)),
                    Ok(false) => FrameAhead::End(self.torn.take()),
                    Err(e) => FrameAhead::Failed(e),
                }
            };
            let last = !matches!(item, FrameAhead::Block(_));
            if send.send(item).is_err() || last {
                return;
            }
        }
    }
}

/// What the frames thread hands over, in order.
enum FrameAhead {
    /// One frame's decompressed contents.
    Block(Vec<u8>),
    /// The end of the file, and its torn frame if its writer died mid-frame.
    End(Option<TornTail>),
    /// Why the file cannot be read further (the thread stopped).
    Failed(std::io::Error),
}

/// The contents of a journal's frames, read and decompressed on a thread of their
/// own ([`FrameReader::ahead`]); the same stream as the [`FrameReader`] it came from.
pub(crate) struct FramesAhead {
    /// `None` once the end or an error came (or the reader is dropped, which stops
    /// the thread: its next send fails).
    frames: Option<Receiver<FrameAhead>>,
    /// Consumed blocks, given back for the thread to decompress into.
    spare: Sender<Vec<u8>>,
    block: Vec<u8>,
    pos: usize,
    /// Set at the end: the torn frame the file ends with, if any.
    pub(crate) torn: Option<TornTail>,
    done: bool,
    /// The error the thread stopped with, returned again on every later call.
    failed: Option<(std::io::ErrorKind, String)>,
}

impl FramesAhead {
    /// The contents not yet consumed of the current frame; empty at the end.
    pub(crate) fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.block.len() && !self.done {
            if let Some((kind, message)) = &self.failed {
                return Err(std::io::Error::new(*kind, message.clone()));
            }
            let next = self.frames.as_ref().and_then(|f| f.recv().ok());
            let used = std::mem::take(&mut self.block);
            // The thread may be gone (the end was its last send): then the buffer is dropped.
            let _ = self.spare.send(used);
            self.pos = 0;
            match next {
                Some(FrameAhead::Block(block)) => self.block = block,
                Some(FrameAhead::End(torn)) => {
                    self.torn = torn;
                    self.done = true;
                    self.frames = None;
                }
                Some(FrameAhead::Failed(e)) => {
                    self.failed = Some((e.kind(), e.to_string()));
                    self.frames = None;
                    return Err(e);
                }
                None => {
                    let e = std::io::Error::other("the journal's frames thread stopped");
                    self.failed = Some((e.kind(), e.to_string()));
                    return Err(e);
                }
            }
        }
        Ok(&self.block[self.pos..])
    }

    /// `amt` bytes of [`FramesAhead::fill_buf`]'s were used.
    pub(crate) fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.block.len());
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: Read> Read for FrameReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for FrameReader<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.block.len() && !self.done {
            if !self.next_frame()? {
                self.done = true;
                self.block.clear();
                self.pos = 0;
            }
        }
        Ok(&self.block[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.block.len());
    }
}

/// The lines of a text journal (`<hash>\t<json>\n` each, `/2` or `/1`),
/// decompressed without any check of the chain; a torn tail is left out. For tools and
/// tests that look at (or deliberately damage) a journal's lines.
pub fn read_lines(input: impl Read) -> std::io::Result<Vec<u8>> {
    let mut input = std::io::BufReader::new(input);
    let start = input.fill_buf()?;
    let mut lines = Vec::new();
    if start.starts_with(MAGIC_V2) {
        input.consume(MAGIC_V2.len());
        FrameReader::new(input, FrameKind::ZstdLines).read_to_end(&mut lines)?;
    } else {
        zstd::stream::copy_decode(input, &mut lines)?;
    }
    Ok(lines)
}

/// Writes a whole `migrun.journal/2` file from its lines (one frame): the
/// inverse of [`read_lines`]. The lines are written as given — hashes included.
pub fn write_lines(out: &mut impl Write, lines: &[u8]) -> std::io::Result<()> {
    out.write_all(MAGIC_V2)?;
    if lines.is_empty() {
        return Ok(());
    }
    let payload = zstd::bulk::compress(lines, 3)?;
    write(out, FrameKind::ZstdLines, &payload)
}

/// One record of a `/3` journal as stored: its hash and its payload
/// (`lane:u16le entry`), not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// The chain hash written with it.
    pub hash: [u8; 32],
    /// The lane and the binary entry.
    pub payload: Vec<u8>,
}

/// Bytes before a record's payload: `len:u32le hash:[u8; 32]`.
pub const RECORD_HEADER_BYTES: usize = 36;

/// Appends one record (`len:u32le hash payload`) to a block.
pub(crate) fn push_record(block: &mut Vec<u8>, hash: &[u8; 32], payload: &[u8]) {
    block.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    block.extend_from_slice(hash);
    block.extend_from_slice(payload);
}

/// Writes a record's header (`len:u32le hash`) into the first
/// [`RECORD_HEADER_BYTES`] of `record`, whose payload (`payload_len` bytes) follows:
/// the writer encodes a payload in place and fills its header in afterwards.
pub(crate) fn set_record_header(record: &mut [u8], payload_len: usize, hash: &[u8; 32]) {
    record[..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    record[4..RECORD_HEADER_BYTES].copy_from_slice(hash);
}

/// Splits the next record off `block`; `None` when it is cut short.
pub(crate) fn split_record(block: &[u8]) -> Option<(&[u8; 32], &[u8], usize)> {
    let len = u32::from_le_bytes(block.get(..4)?.try_into().ok()?) as usize;
    let hash: &[u8; 32] = block.get(4..RECORD_HEADER_BYTES)?.try_into().ok()?;
    let end = RECORD_HEADER_BYTES.checked_add(len)?;
    let payload = block.get(RECORD_HEADER_BYTES..end)?;
    Some((hash, payload, end))
}

/// The records of a `/3` journal, decompressed without any check of the chain;
/// a torn tail is left out. For tools and tests that look at (or deliberately
/// damage) a journal's records.
pub fn read_records(input: impl Read) -> std::io::Result<Vec<RawRecord>> {
    let mut input = std::io::BufReader::new(input);
    if !input.fill_buf()?.starts_with(MAGIC) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a migrun.journal/3 file",
        ));
    }
    input.consume(MAGIC.len());
    let mut bytes = Vec::new();
    FrameReader::new(input, FrameKind::ZstdRecords).read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (hash, payload, end) = split_record(rest).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "a record cut short")
        })?;
        records.push(RawRecord {
            hash: *hash,
            payload: payload.to_vec(),
        });
        rest = &rest[end..];
    }
    Ok(records)
}

/// Writes a whole `migrun.journal/3` file from its records (one frame): the
/// inverse of [`read_records`]. With `rechain`, every hash is recomputed (a
/// forger who knows the format); otherwise they are written as given.
pub fn write_records(
    out: &mut impl Write,
    records: &[RawRecord],
    rechain: bool,
) -> std::io::Result<()> {
    out.write_all(MAGIC)?;
    if records.is_empty() {
        return Ok(());
    }
    let mut block = Vec::new();
    let mut prev = [0u8; 32];
    for r in records {
        let hash = if rechain {
            crate::writer::chain_v3(&prev, &r.payload)
        } else {
            r.hash
        };
        prev = hash;
        push_record(&mut block, &hash, &r.payload);
    }
    let payload = zstd::bulk::compress(&block, 3)?;
    write(out, FrameKind::ZstdRecords, &payload)
}
