//! The binary entry encoding of `migrun.journal/3`: entries, SQL values, and the
//! value window that records each large value once.
//!
//! Everything here is specified byte for byte in `docs/JOURNAL.md` ("Entries of
//! `/3`"). In short: an entry is a tag byte and its fields; integers are LEB128
//! varints (signed ones zigzag-encoded); strings are a varint length and UTF-8;
//! a SQL value is a tag byte per value kind and its body — an unknown tag is an
//! error naming it, so new kinds are additions, never a reinterpretation.
//!
//! **Each large value is recorded once.** Every literal value whose body is at
//! least [`REF_MIN_BYTES`] long (texts, bytes, JSON, decimals, arrays) gets the
//! next number in the journal's [`ValueWindow`]; a later value equal to one
//! still in the window is written as a reference to it ([`TAG_REF`] + how many
//! numbers back), so the rows a bulk insert writes exactly as a cursor delivered
//! them cost a few bytes per value, not the values again. Writer and reader keep
//! the same window — the last [`WINDOW_BYTES`] of referable literals, evicted
//! oldest first — so the writer only refers to what every reader still holds,
//! and a reader's memory stays bounded whatever the journal's size.
//!
//! Decoding never panics: every length is checked against the bytes left
//! before anything is allocated (the `value_decoding` fuzz target holds it to
//! that).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike};

use migrun_types::binary16::{self, ByteOrder};
use migrun_types::{BulkWriteKind, Level, Value};

use super::{CallResult, Entry, Footer, Header, HostCall, SnapshotInfo, TableSnapshot};

/// A referable value's body is at least this many bytes: shorter values cost
/// about as much as a reference.
pub const REF_MIN_BYTES: usize = 32;

/// The window: referable literals are kept (by every reader) while the newest of
/// them add up to at most this many body bytes.
pub const WINDOW_BYTES: usize = 32 << 20;

/// Value tags. `0x11..=0xFE` are free for later value kinds.
pub mod tag {
    /// SQL NULL.
    pub const NULL: u8 = 0x00;
    /// Boolean: one byte, 0 or 1.
    pub const BOOL: u8 = 0x01;
    /// 64-bit integer: zigzag varint.
    pub const INT: u8 = 0x02;
    /// Double: 8 bytes, little-endian IEEE bits.
    pub const FLOAT: u8 = 0x03;
    /// Text: varint length, UTF-8.
    pub const TEXT: u8 = 0x04;
    /// Bytes: varint length, bytes.
    pub const BYTES: u8 = 0x05;
    /// JSON: varint length, UTF-8 text.
    pub const JSON: u8 = 0x06;
    /// UUID: 16 bytes.
    pub const UUID: u8 = 0x07;
    /// Date: zigzag varint, days since 0001-01-01 (day 1 of the common era is 1).
    pub const DATE: u8 = 0x08;
    /// Time: varint seconds since midnight, varint nanoseconds.
    pub const TIME: u8 = 0x09;
    /// Timestamp: zigzag varint Unix seconds, varint nanoseconds.
    pub const TIMESTAMP: u8 = 0x0A;
    /// Timestamptz (UTC): as timestamp.
    pub const TIMESTAMPTZ: u8 = 0x0B;
    /// Decimal: varint length, its canonical text.
    pub const DECIMAL: u8 = 0x0C;
    /// Float32 array: varint count, 4 bytes little-endian each.
    pub const FLOAT32_ARRAY: u8 = 0x0D;
    /// Text array: varint count, then each as a text body.
    pub const TEXT_ARRAY: u8 = 0x0E;
    /// A value of a type the host does not model, in its database's binary form: the type
    /// name as a text body, then varint length and the bytes.
    pub const TYPED: u8 = 0x0F;
    /// A float32 array whose every float is exactly an IEEE binary16 (an embedding read
    /// from a pgvector `halfvec`): varint count, 2 bytes little-endian each. Decodes to
    /// the float32 array (widening is exact); half the bytes to hash, compress and read.
    pub const FLOAT16_ARRAY: u8 = 0x10;
    /// A reference: varint distance back in the window (1 = the newest referable literal).
    pub const REF: u8 = 0xFF;
}

/// Why bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {at} of the entry: {what}")]
pub struct DecodeError {
    /// Where in the entry's bytes.
    pub at: usize,
    /// What is wrong.
    pub what: String,
}

// ---------------------------------------------------------------------------
// The window

/// The referable literals recorded so far, as the writer sees them: enough to
/// find an equal value and its number, never the values themselves (it never
/// refers to what a reader would no longer hold).
///
/// Most literals are known by their content hash (BLAKE3). Float arrays — a
/// batch of embeddings is most of a copy's journal — are known by a cheap
/// fingerprint and a `Weak` to their allocation instead: an array is found
/// equal only to an earlier one still alive, compared float for float (the same
/// allocation, when the host shares a delivered embedding coming back in a bulk
/// insert, needs no comparison: an `Arc`'s contents cannot change while a
/// `Weak` to it exists — `get_mut` refuses, `make_mut` moves them — and the
/// `Weak` keeps its address from being reused). Hashing every embedding read
/// (3 KiB inputs, where BLAKE3 cannot use its wide lanes) was most of the
/// journal's hashing; what it found beyond this — an equal array whose earlier
/// copy nothing holds any more — real embeddings almost never are.
#[derive(Default)]
pub struct WriterWindow {
    /// Oldest first: (number, body bytes, how it is found).
    order: VecDeque<(u64, usize, Key)>,
    by_hash: HashMap<[u8; 32], u64, KeyIsHash>,
    /// Float arrays by fingerprint: the number and the allocation of the newest.
    by_array: HashMap<u64, (u64, Weak<Vec<f32>>), KeyIsHash>,
    bytes: usize,
    next: u64,
}

/// The window's maps are keyed by hashes already (BLAKE3 digests, mixed fingerprints):
/// their first eight bytes index the table. Hashing them again with `std`'s SipHash was
/// a measurable part of the journal thread's time on a copy (a lookup per text value).
#[derive(Default, Clone, Copy)]
struct KeyIsHash;

impl std::hash::BuildHasher for KeyIsHash {
    type Hasher = FirstWord;
    fn build_hasher(&self) -> FirstWord {
        FirstWord(0)
    }
}

/// The [`KeyIsHash`] hasher: the key's first eight bytes (an array's length prefix,
/// which `Hash` writes first, is skipped).
struct FirstWord(u64);

impl std::hash::Hasher for FirstWord {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    fn write_usize(&mut self, _length_prefix: usize) {}
}

/// How the writer finds a literal of its window again.
#[derive(Clone, Copy)]
enum Key {
    Hash([u8; 32]),
    Array(u64),
}

/// A float array's fingerprint: its length and a few floats' bits. Only a
/// shortcut to the one candidate compared in full, so collisions cost a
/// literal, never a wrong reference.
fn fingerprint(floats: &[f32]) -> u64 {
    let n = floats.len();
    let mut h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    if n > 0 {
        for i in [0, 1, n / 4, n / 3, n / 2, 2 * n / 3, 3 * n / 4, n - 1] {
            h = (h ^ u64::from(floats[i].to_bits())).wrapping_mul(0x0100_0000_01B3);
            h ^= h >> 29;
        }
    }
    h
}

impl WriterWindow {
    /// A referable literal was written: number it, evict the oldest past the bound.
    fn add(&mut self, key: Key, size: usize) {
        let n = self.next;
        self.next += 1;
        self.order.push_back((n, size, key));
        self.bytes += size;
        while self.bytes > WINDOW_BYTES {
            let Some((old, size, key)) = self.order.pop_front() else {
                break;
            };
            self.bytes -= size;
            match key {
                Key::Hash(hash) => {
                    if self.by_hash.get(&hash) == Some(&old) {
                        self.by_hash.remove(&hash);
                    }
                }
                Key::Array(fp) => {
                    if self.by_array.get(&fp).is_some_and(|(n, _)| *n == old) {
                        self.by_array.remove(&fp);
                    }
                }
            }
        }
    }

    fn add_hashed(&mut self, hash: [u8; 32], size: usize) {
        self.by_hash.insert(hash, self.next);
        self.add(Key::Hash(hash), size);
    }

    fn add_array(&mut self, fp: u64, array: &Arc<Vec<f32>>, size: usize) {
        self.by_array.insert(fp, (self.next, Arc::downgrade(array)));
        self.add(Key::Array(fp), size);
    }

    /// The distance back to an equal literal still in the window.
    fn find(&self, hash: &[u8; 32]) -> Option<u64> {
        self.by_hash.get(hash).map(|n| self.next - n)
    }

    /// The distance back to a literal float array equal to `array` (bit for bit),
    /// still in the window and still alive.
    fn find_array(&self, fp: u64, array: &Arc<Vec<f32>>) -> Option<u64> {
        let (n, weak) = self.by_array.get(&fp)?;
        let earlier = weak.upgrade()?;
        let equal = Arc::ptr_eq(&earlier, array) || migrun_types::value::same_bits(&earlier, array);
        equal.then(|| self.next - n)
    }
}

/// The referable literals read so far (their values), as every reader keeps them.
#[derive(Default)]
pub struct ReaderWindow {
    /// Oldest first: (value, body bytes).
    order: VecDeque<(Value, usize)>,
    bytes: usize,
    /// Numbers given so far (the next literal's number).
    next: u64,
}

impl ReaderWindow {
    fn add(&mut self, value: &Value, size: usize) {
        self.next += 1;
        self.order.push_back((value.clone(), size));
        self.bytes += size;
        while self.bytes > WINDOW_BYTES {
            let Some((_, size)) = self.order.pop_front() else {
                break;
            };
            self.bytes -= size;
        }
    }

    fn get(&self, distance: u64) -> Option<&Value> {
        let len = self.order.len() as u64;
        (distance >= 1 && distance <= len).then(|| &self.order[(len - distance) as usize].0)
    }
}

// ---------------------------------------------------------------------------
// Writing

/// Appends the binary encoding of an entry to a buffer.
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    window: &'a mut WriterWindow,
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

impl<'a> Encoder<'a> {
    /// Encodes into `out`, referring to (and extending) `window`.
    pub fn new(out: &'a mut Vec<u8>, window: &'a mut WriterWindow) -> Encoder<'a> {
        Encoder { out, window }
    }

    fn u8(&mut self, b: u8) {
        self.out.push(b);
    }

    fn varint(&mut self, n: u64) {
        put_varint(self.out, n);
    }

    fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    fn strs(&mut self, v: &[String]) {
        self.varint(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }

    fn pairs(&mut self, v: &[(String, String)]) {
        self.varint(v.len() as u64);
        for (a, b) in v {
            self.str(a);
            self.str(b);
        }
    }

    /// One SQL value: a literal, or a reference to an equal referable literal in the window.
    pub fn value(&mut self, v: &Value) {
        let array_key = match v {
            Value::Float32Array(array) if array.len() * 2 >= REF_MIN_BYTES => {
                let fp = fingerprint(array);
                if let Some(distance) = self.window.find_array(fp, array) {
                    self.u8(tag::REF);
                    self.varint(distance);
                    return;
                }
                Some(fp)
            }
            _ => None,
        };
        let start = self.out.len();
        // What a value counts for in the window beyond its body: a float16-array counts
        // as the float32-array it decodes to (see `window_bytes`).
        let mut widened = 0;
        let referable = match v {
            Value::Null => {
                self.u8(tag::NULL);
                false
            }
            Value::Bool(b) => {
                self.u8(tag::BOOL);
                self.u8(u8::from(*b));
                false
            }
            Value::Int(n) => {
                self.u8(tag::INT);
                self.varint(zigzag(*n));
                false
            }
            Value::Float(f) => {
                self.u8(tag::FLOAT);
                self.out.extend_from_slice(&f.to_bits().to_le_bytes());
                false
            }
            Value::Text(s) => {
                self.u8(tag::TEXT);
                self.str(s);
                true
            }
            Value::Bytes(b) => {
                self.u8(tag::BYTES);
                self.varint(b.len() as u64);
                self.out.extend_from_slice(b);
                true
            }
            Value::Json(s) => {
                self.u8(tag::JSON);
                self.str(s);
                true
            }
            Value::Uuid(u) => {
                self.u8(tag::UUID);
                self.out.extend_from_slice(u.as_bytes());
                false
            }
            Value::Date(d) => {
                self.u8(tag::DATE);
                self.varint(zigzag(i64::from(d.num_days_from_ce())));
                false
            }
            Value::Time(t) => {
                self.u8(tag::TIME);
                self.varint(u64::from(t.num_seconds_from_midnight()));
                self.varint(u64::from(t.nanosecond()));
                false
            }
            Value::Timestamp(t) => {
                self.u8(tag::TIMESTAMP);
                let utc = t.and_utc();
                self.varint(zigzag(utc.timestamp()));
                self.varint(u64::from(utc.timestamp_subsec_nanos()));
                false
            }
            Value::Timestamptz(t) => {
                self.u8(tag::TIMESTAMPTZ);
                self.varint(zigzag(t.timestamp()));
                self.varint(u64::from(t.timestamp_subsec_nanos()));
                false
            }
            Value::Decimal(s) => {
                self.u8(tag::DECIMAL);
                self.str(s);
                true
            }
            Value::Float32Array(v) if self.halves(v) => {
                widened = 2 * v.len();
                true
            }
            Value::Float32Array(v) => {
                self.u8(tag::FLOAT32_ARRAY);
                self.varint(v.len() as u64);
                // One resize, then a loop the compiler turns into a copy (the
                // per-float `extend_from_slice` it replaces was a tenth of a copy run).
                let at = self.out.len();
                self.out.resize(at + v.len() * 4, 0);
                for (out, f) in self.out[at..].chunks_exact_mut(4).zip(v.iter()) {
                    out.copy_from_slice(&f.to_le_bytes());
                }
                true
            }
            Value::TextArray(v) => {
                self.u8(tag::TEXT_ARRAY);
                self.strs(v);
                true
            }
            Value::Typed { type_name, bytes } => {
                self.u8(tag::TYPED);
                self.str(type_name);
                self.varint(bytes.len() as u64);
                self.out.extend_from_slice(bytes);
                true
            }
        };
        let body = self.out.len() - start - 1;
        if referable && body >= REF_MIN_BYTES {
            if let (Value::Float32Array(array), Some(fp)) = (v, array_key) {
                self.window.add_array(fp, array, body + widened);
                return;
            }
            let hash: [u8; 32] = blake3::hash(&self.out[start..]).into();
            match self.window.find(&hash) {
                Some(distance) => {
                    self.out.truncate(start);
                    self.u8(tag::REF);
                    self.varint(distance);
                }
                None => self.window.add_hashed(hash, body + widened),
            }
        }
    }

    /// Writes `v` as a float16-array when every float in it is exactly a binary16 (and
    /// it is not empty); otherwise writes nothing and says so. Converted and checked 256
    /// floats at a time (F16C where the CPU has it): an array of arbitrary floats fails
    /// on its first chunk, for the cost of converting that chunk.
    fn halves(&mut self, v: &[f32]) -> bool {
        if v.is_empty() {
            return false;
        }
        let start = self.out.len();
        self.u8(tag::FLOAT16_ARRAY);
        self.varint(v.len() as u64);
        if binary16::narrow_exact(v, ByteOrder::Little, self.out) {
            return true;
        }
        self.out.truncate(start);
        false
    }

    fn values(&mut self, v: &[Value]) {
        self.varint(v.len() as u64);
        for value in v {
            self.value(value);
        }
    }

    fn rows(&mut self, rows: &[Vec<Value>]) {
        self.varint(rows.len() as u64);
        for row in rows {
            self.values(row);
        }
    }

    fn json<T: serde::Serialize>(&mut self, v: &T) -> Result<(), String> {
        let text = serde_json::to_string(v).map_err(|e| e.to_string())?;
        self.str(&text);
        Ok(())
    }

    /// One entry (see the module documentation and `docs/JOURNAL.md`).
    pub fn entry(&mut self, entry: &Entry) -> Result<(), String> {
        match entry {
            Entry::Header(h) => {
                self.u8(entry_tag::HEADER);
                self.json(h)?;
            }
            Entry::Export {
                export,
                unit,
                config,
            } => {
                self.u8(entry_tag::EXPORT);
                self.str(export);
                self.opt_str(unit.as_deref());
                match config {
                    None => self.u8(0),
                    Some(c) => {
                        self.u8(1);
                        self.pairs(c);
                    }
                }
            }
            Entry::ExportEnd { export, error } => {
                self.u8(entry_tag::EXPORT_END);
                self.str(export);
                self.opt_str(error.as_deref());
            }
            Entry::Call { call, result } => {
                self.u8(entry_tag::CALL);
                self.call(call);
                self.result(result);
            }
            Entry::UnitSkipped { unit, reason } => {
                self.u8(entry_tag::UNIT_SKIPPED);
                self.str(unit);
                self.str(reason);
            }
            Entry::Tx {
                connection,
                op,
                error,
            } => {
                self.u8(entry_tag::TX);
                self.str(connection);
                self.str(op);
                self.opt_str(error.as_deref());
            }
            Entry::Footer(f) => {
                self.u8(entry_tag::FOOTER);
                self.json(f)?;
            }
        }
        Ok(())
    }

    fn call(&mut self, call: &HostCall) {
        match call {
            HostCall::Open { name } => {
                self.u8(call_tag::OPEN);
                self.str(name);
            }
            HostCall::Query { conn, sql, params } => {
                self.u8(call_tag::QUERY);
                self.str(conn);
                self.str(sql);
                self.values(params);
            }
            HostCall::Execute { conn, sql, params } => {
                self.u8(call_tag::EXECUTE);
                self.str(conn);
                self.str(sql);
                self.values(params);
            }
            HostCall::OpenCursor {
                conn,
                sql,
                params,
                batch_size,
            } => {
                self.u8(call_tag::OPEN_CURSOR);
                self.str(conn);
                self.str(sql);
                self.values(params);
                self.varint(u64::from(*batch_size));
            }
            HostCall::NextBatch { cursor } => {
                self.u8(call_tag::NEXT_BATCH);
                self.varint(*cursor);
            }
            HostCall::CloseCursor { cursor } => {
                self.u8(call_tag::CLOSE_CURSOR);
                self.varint(*cursor);
            }
            HostCall::BulkInsert {
                conn,
                table,
                columns,
                rows,
            } => {
                self.u8(call_tag::BULK_INSERT);
                self.str(conn);
                self.str(table);
                self.strs(columns);
                self.rows(rows);
            }
            HostCall::BulkWrite {
                conn,
                kind,
                table,
                keys,
                columns,
                rows,
            } => {
                self.u8(call_tag::BULK_WRITE);
                self.str(conn);
                self.u8(match kind {
                    BulkWriteKind::Update => 0,
                    BulkWriteKind::Upsert => 1,
                    BulkWriteKind::Delete => 2,
                });
                self.str(table);
                self.strs(keys);
                self.strs(columns);
                self.rows(rows);
            }
            HostCall::Log {
                level,
                message,
                fields,
            } => {
                self.u8(call_tag::LOG);
                self.u8(match level {
                    Level::Trace => 0,
                    Level::Debug => 1,
                    Level::Info => 2,
                    Level::Warn => 3,
                    Level::Error => 4,
                });
                self.str(message);
                self.pairs(fields);
            }
            HostCall::Progress { task, done, total } => {
                self.u8(call_tag::PROGRESS);
                self.str(task);
                self.varint(*done);
                match total {
                    None => self.u8(0),
                    Some(t) => {
                        self.u8(1);
                        self.varint(*t);
                    }
                }
            }
            HostCall::Check { name, ok, detail } => {
                self.u8(call_tag::CHECK);
                self.str(name);
                self.u8(u8::from(*ok));
                self.str(detail);
            }
            HostCall::BackupSnapshot {
                conn,
                tables,
                label,
            } => {
                self.u8(call_tag::BACKUP_SNAPSHOT);
                self.str(conn);
                self.strs(tables);
                self.str(label);
            }
            HostCall::BackupList => self.u8(call_tag::BACKUP_LIST),
            HostCall::BackupVerify { id } => {
                self.u8(call_tag::BACKUP_VERIFY);
                self.str(id);
            }
            HostCall::CheckpointSave { state } => {
                self.u8(call_tag::CHECKPOINT_SAVE);
                self.str(state);
            }
            HostCall::CheckpointLast => self.u8(call_tag::CHECKPOINT_LAST),
            HostCall::FileOpen { name } => {
                self.u8(call_tag::FILE_OPEN);
                self.str(name);
            }
            HostCall::FileRead { file, max_bytes } => {
                self.u8(call_tag::FILE_READ);
                self.varint(*file);
                self.varint(u64::from(*max_bytes));
            }
            HostCall::FileClose { file } => {
                self.u8(call_tag::FILE_CLOSE);
                self.varint(*file);
            }
            HostCall::FileList { dir } => {
                self.u8(call_tag::FILE_LIST);
                self.str(dir);
            }
        }
    }

    fn result(&mut self, result: &CallResult) {
        match result {
            CallResult::Unit => self.u8(result_tag::UNIT),
            CallResult::Opened => self.u8(result_tag::OPENED),
            CallResult::Rows { columns, rows } => {
                self.u8(result_tag::ROWS);
                self.pairs(columns);
                self.rows(rows);
            }
            CallResult::Count { n } => {
                self.u8(result_tag::COUNT);
                self.varint(*n);
            }
            CallResult::Cursor { cursor, columns } => {
                self.u8(result_tag::CURSOR);
                self.varint(*cursor);
                self.pairs(columns);
            }
            CallResult::Batch { rows } => {
                self.u8(result_tag::BATCH);
                match rows {
                    None => self.u8(0),
                    Some(rows) => {
                        self.u8(1);
                        self.rows(rows);
                    }
                }
            }
            CallResult::Snapshots { snapshots } => {
                self.u8(result_tag::SNAPSHOTS);
                self.varint(snapshots.len() as u64);
                for s in snapshots {
                    self.str(&s.id);
                    self.str(&s.connection);
                    self.str(&s.method);
                    self.varint(s.tables.len() as u64);
                    for t in &s.tables {
                        self.str(&t.name);
                        self.varint(t.rows);
                        self.str(&t.checksum);
                    }
                }
            }
            CallResult::BackupError {
                error_kind,
                message,
            } => {
                self.u8(result_tag::BACKUP_ERROR);
                self.str(error_kind);
                self.str(message);
            }
            CallResult::Checkpoint { state } => {
                self.u8(result_tag::CHECKPOINT);
                self.opt_str(state.as_deref());
            }
            CallResult::FileOpened { file, size, sha256 } => {
                self.u8(result_tag::FILE_OPENED);
                self.varint(*file);
                self.varint(*size);
                self.str(sha256);
            }
            CallResult::FileChunk { bytes } => {
                self.u8(result_tag::FILE_CHUNK);
                self.varint(bytes.len() as u64);
                self.out.extend_from_slice(bytes);
            }
            CallResult::FileNames { names } => {
                self.u8(result_tag::FILE_NAMES);
                self.strs(names);
            }
            CallResult::FileError {
                error_kind,
                message,
            } => {
                self.u8(result_tag::FILE_ERROR);
                self.str(error_kind);
                self.str(message);
            }
            CallResult::Error {
                error_kind,
                code,
                message,
            } => {
                self.u8(result_tag::ERROR);
                self.str(error_kind);
                self.opt_str(code.as_deref());
                self.str(message);
            }
        }
    }
}

/// Entry tags.
pub mod entry_tag {
    /// The header: its fields as one JSON document (a string).
    pub const HEADER: u8 = 0x01;
    /// An export call.
    pub const EXPORT: u8 = 0x02;
    /// An export's end.
    pub const EXPORT_END: u8 = 0x03;
    /// A host call and its result.
    pub const CALL: u8 = 0x04;
    /// A unit skipped.
    pub const UNIT_SKIPPED: u8 = 0x05;
    /// Transaction control.
    pub const TX: u8 = 0x06;
    /// The footer: its fields as one JSON document (a string).
    pub const FOOTER: u8 = 0x07;
}

/// Host call tags.
pub mod call_tag {
    #![allow(missing_docs)]
    pub const OPEN: u8 = 0x01;
    pub const QUERY: u8 = 0x02;
    pub const EXECUTE: u8 = 0x03;
    pub const OPEN_CURSOR: u8 = 0x04;
    pub const NEXT_BATCH: u8 = 0x05;
    pub const CLOSE_CURSOR: u8 = 0x06;
    pub const BULK_INSERT: u8 = 0x07;
    pub const LOG: u8 = 0x08;
    pub const PROGRESS: u8 = 0x09;
    pub const CHECK: u8 = 0x0A;
    pub const BACKUP_SNAPSHOT: u8 = 0x0B;
    pub const BACKUP_LIST: u8 = 0x0C;
    pub const BACKUP_VERIFY: u8 = 0x0D;
    pub const CHECKPOINT_SAVE: u8 = 0x0E;
    pub const CHECKPOINT_LAST: u8 = 0x0F;
    // Contract 0.2.0's calls take tags from 0x20: the database's structured writes
    // (`bulk-update`/`-upsert`/`-delete`) first, then `files` from 0x28.
    pub const BULK_WRITE: u8 = 0x20;
    pub const FILE_OPEN: u8 = 0x28;
    pub const FILE_READ: u8 = 0x29;
    pub const FILE_CLOSE: u8 = 0x2A;
    pub const FILE_LIST: u8 = 0x2B;
}

/// Call result tags.
pub mod result_tag {
    #![allow(missing_docs)]
    pub const UNIT: u8 = 0x01;
    pub const OPENED: u8 = 0x02;
    pub const ROWS: u8 = 0x03;
    pub const COUNT: u8 = 0x04;
    pub const CURSOR: u8 = 0x05;
    pub const BATCH: u8 = 0x06;
    pub const SNAPSHOTS: u8 = 0x07;
    pub const BACKUP_ERROR: u8 = 0x08;
    pub const CHECKPOINT: u8 = 0x09;
    pub const ERROR: u8 = 0x0A;
    // `files` (contract 0.2.0), from 0x20.
    pub const FILE_OPENED: u8 = 0x20;
    pub const FILE_CHUNK: u8 = 0x21;
    pub const FILE_NAMES: u8 = 0x22;
    pub const FILE_ERROR: u8 = 0x23;
}

// ---------------------------------------------------------------------------
// Reading

/// Reads one entry's bytes.
pub struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    window: &'a mut ReaderWindow,
}

type Decoded<T> = Result<T, DecodeError>;

impl<'a> Decoder<'a> {
    /// Decodes `bytes`, resolving references against (and extending) `window`.
    pub fn new(bytes: &'a [u8], window: &'a mut ReaderWindow) -> Decoder<'a> {
        Decoder {
            bytes,
            pos: 0,
            window,
        }
    }

    fn err<T>(&self, what: impl Into<String>) -> Decoded<T> {
        Err(DecodeError {
            at: self.pos,
            what: what.into(),
        })
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Decoded<&'a [u8]> {
        if n > self.left() {
            return self.err(format!(
                "{n} bytes needed, {} left: the entry is cut short",
                self.left()
            ));
        }
        let bytes: &'a [u8] = self.bytes;
        let out = &bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Decoded<u8> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Decoded<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => {
                self.pos -= 1;
                self.err(format!("expected 0 or 1, found {other}"))
            }
        }
    }

    fn varint(&mut self) -> Decoded<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return self.err("a varint larger than 64 bits");
            }
            n |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        self.err("a varint longer than 10 bytes")
    }

    /// A count of items each at least `min_bytes` long: never more than the bytes left allow.
    fn count(&mut self, min_bytes: usize) -> Decoded<usize> {
        let n = self.varint()?;
        if n > (self.left() / min_bytes.max(1)) as u64 {
            return self.err(format!(
                "a count of {n} items, more than the {} bytes left can hold",
                self.left()
            ));
        }
        Ok(n as usize)
    }

    fn u32(&mut self) -> Decoded<u32> {
        let n = self.varint()?;
        u32::try_from(n).or_else(|_| self.err(format!("{n} does not fit in 32 bits")))
    }

    fn string(&mut self) -> Decoded<String> {
        let n = self.count(1)?;
        let at = self.pos;
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(DecodeError {
                at,
                what: format!("text that is not UTF-8: {e}"),
            }),
        }
    }

    fn opt_string(&mut self) -> Decoded<Option<String>> {
        Ok(if self.flag()? {
            Some(self.string()?)
        } else {
            None
        })
    }

    fn strings(&mut self) -> Decoded<Vec<String>> {
        let n = self.count(1)?;
        (0..n).map(|_| self.string()).collect()
    }

    fn pairs(&mut self) -> Decoded<Vec<(String, String)>> {
        let n = self.count(2)?;
        (0..n)
            .map(|_| Ok((self.string()?, self.string()?)))
            .collect()
    }

    /// One SQL value.
    pub fn value(&mut self) -> Decoded<Value> {
        let start = self.pos;
        let t = self.u8()?;
        let mut widened = 0;
        let bad = |what: &str| DecodeError {
            at: start,
            what: what.to_owned(),
        };
        let (value, referable) = match t {
            tag::NULL => (Value::Null, false),
            tag::BOOL => (Value::Bool(self.flag()?), false),
            tag::INT => (Value::Int(unzigzag(self.varint()?)), false),
            tag::FLOAT => {
                let b = self.take(8)?;
                (
                    Value::Float(f64::from_bits(u64::from_le_bytes(
                        b.try_into().expect("8 bytes"),
                    ))),
                    false,
                )
            }
            tag::TEXT => (Value::Text(self.string()?), true),
            tag::BYTES => {
                let n = self.count(1)?;
                (Value::Bytes(self.take(n)?.to_vec()), true)
            }
            tag::JSON => (Value::Json(self.string()?), true),
            tag::UUID => {
                let b = self.take(16)?;
                (
                    Value::Uuid(uuid::Uuid::from_bytes(b.try_into().expect("16 bytes"))),
                    false,
                )
            }
            tag::DATE => {
                let days = unzigzag(self.varint()?);
                let date = i32::try_from(days)
                    .ok()
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .ok_or_else(|| bad("a date out of range"))?;
                (Value::Date(date), false)
            }
            tag::TIME => {
                let secs = self.u32()?;
                let nanos = self.u32()?;
                let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
                    .ok_or_else(|| bad("a time of day out of range"))?;
                (Value::Time(time), false)
            }
            tag::TIMESTAMP | tag::TIMESTAMPTZ => {
                let secs = unzigzag(self.varint()?);
                let nanos = self.u32()?;
                let at = DateTime::from_timestamp(secs, nanos)
                    .ok_or_else(|| bad("a timestamp out of range"))?;
                if t == tag::TIMESTAMP {
                    (Value::Timestamp(at.naive_utc()), false)
                } else {
                    (Value::Timestamptz(at), false)
                }
            }
            tag::DECIMAL => (Value::Decimal(self.string()?), true),
            tag::FLOAT32_ARRAY => {
                let n = self.count(4)?;
                let b = self.take(n * 4)?;
                let v: Vec<f32> = b
                    .chunks_exact(4)
                    .map(|c| f32::from_bits(u32::from_le_bytes(c.try_into().expect("4 bytes"))))
                    .collect();
                (Value::Float32Array(v.into()), true)
            }
            tag::FLOAT16_ARRAY => {
                let n = self.count(2)?;
                let b = self.take(n * 2)?;
                let v = binary16::widen(b, ByteOrder::Little);
                widened = 2 * n;
                (Value::Float32Array(v.into()), true)
            }
            tag::TEXT_ARRAY => (Value::TextArray(self.strings()?), true),
            tag::TYPED => {
                let type_name = self.string()?;
                let n = self.count(1)?;
                let bytes = self.take(n)?.to_vec();
                (Value::Typed { type_name, bytes }, true)
            }
            tag::REF => {
                let distance = self.varint()?;
                return match self.window.get(distance) {
                    Some(v) => Ok(v.clone()),
                    None => Err(DecodeError {
                        at: start,
                        what: format!(
                            "a reference {distance} values back, outside the {} values the window holds",
                            self.window.order.len()
                        ),
                    }),
                };
            }
            other => {
                return Err(DecodeError {
                    at: start,
                    what: format!(
                        "unknown value tag 0x{other:02x} (a value kind this migrun does not know; written by a newer one?)"
                    ),
                });
            }
        };
        let body = self.pos - start - 1;
        if referable && body >= REF_MIN_BYTES {
            self.window.add(&value, body + widened);
        }
        Ok(value)
    }

    fn values(&mut self) -> Decoded<Vec<Value>> {
        let n = self.count(1)?;
        (0..n).map(|_| self.value()).collect()
    }

    fn rows(&mut self) -> Decoded<Vec<Vec<Value>>> {
        let n = self.count(1)?;
        (0..n).map(|_| self.values()).collect()
    }

    fn json<T: serde::de::DeserializeOwned>(&mut self) -> Decoded<T> {
        let at = self.pos;
        let text = self.string()?;
        serde_json::from_str(&text).map_err(|e| DecodeError {
            at,
            what: format!("its JSON fields do not read: {e}"),
        })
    }

    /// One whole entry; bytes left after it are an error.
    pub fn entry(mut self) -> Decoded<Entry> {
        let entry = match self.u8()? {
            entry_tag::HEADER => Entry::Header(self.json::<Header>()?),
            entry_tag::EXPORT => Entry::Export {
                export: self.string()?,
                unit: self.opt_string()?,
                config: if self.flag()? {
                    Some(self.pairs()?)
                } else {
                    None
                },
            },
            entry_tag::EXPORT_END => Entry::ExportEnd {
                export: self.string()?,
                error: self.opt_string()?,
            },
            entry_tag::CALL => {
                let call = self.call()?;
                let result = self.result()?;
                Entry::Call { call, result }
            }
            entry_tag::UNIT_SKIPPED => Entry::UnitSkipped {
                unit: self.string()?,
                reason: self.string()?,
            },
            entry_tag::TX => Entry::Tx {
                connection: self.string()?,
                op: self.string()?,
                error: self.opt_string()?,
            },
            entry_tag::FOOTER => Entry::Footer(self.json::<Footer>()?),
            other => {
                self.pos -= 1;
                return self.err(format!("unknown entry tag 0x{other:02x}"));
            }
        };
        if self.left() != 0 {
            return self.err(format!("{} bytes after the entry", self.left()));
        }
        Ok(entry)
    }

    fn call(&mut self) -> Decoded<HostCall> {
        Ok(match self.u8()? {
            call_tag::OPEN => HostCall::Open {
                name: self.string()?,
            },
            call_tag::QUERY => HostCall::Query {
                conn: self.string()?,
                sql: self.string()?,
                params: self.values()?,
            },
            call_tag::EXECUTE => HostCall::Execute {
                conn: self.string()?,
                sql: self.string()?,
                params: self.values()?,
            },
            call_tag::OPEN_CURSOR => HostCall::OpenCursor {
                conn: self.string()?,
                sql: self.string()?,
                params: self.values()?,
                batch_size: self.u32()?,
            },
            call_tag::NEXT_BATCH => HostCall::NextBatch {
                cursor: self.varint()?,
            },
            call_tag::CLOSE_CURSOR => HostCall::CloseCursor {
                cursor: self.varint()?,
            },
            call_tag::BULK_INSERT => HostCall::BulkInsert {
                conn: self.string()?,
                table: self.string()?,
                columns: self.strings()?,
                rows: self.rows()?,
            },
            call_tag::BULK_WRITE => HostCall::BulkWrite {
                conn: self.string()?,
                kind: match self.u8()? {
                    0 => BulkWriteKind::Update,
                    1 => BulkWriteKind::Upsert,
                    2 => BulkWriteKind::Delete,
                    other => {
                        self.pos -= 1;
                        return self.err(format!("unknown bulk write kind {other}"));
                    }
                },
                table: self.string()?,
                keys: self.strings()?,
                columns: self.strings()?,
                rows: self.rows()?,
            },
            call_tag::LOG => HostCall::Log {
                level: match self.u8()? {
                    0 => Level::Trace,
                    1 => Level::Debug,
                    2 => Level::Info,
                    3 => Level::Warn,
                    4 => Level::Error,
                    other => {
                        self.pos -= 1;
                        return self.err(format!("unknown log level {other}"));
                    }
                },
                message: self.string()?,
                fields: self.pairs()?,
            },
            call_tag::PROGRESS => HostCall::Progress {
                task: self.string()?,
                done: self.varint()?,
                total: if self.flag()? {
                    Some(self.varint()?)
                } else {
                    None
                },
            },
            call_tag::CHECK => HostCall::Check {
                name: self.string()?,
                ok: self.flag()?,
                detail: self.string()?,
            },
            call_tag::BACKUP_SNAPSHOT => HostCall::BackupSnapshot {
                conn: self.string()?,
                tables: self.strings()?,
                label: self.string()?,
            },
            call_tag::BACKUP_LIST => HostCall::BackupList,
            call_tag::BACKUP_VERIFY => HostCall::BackupVerify { id: self.string()? },
            call_tag::CHECKPOINT_SAVE => HostCall::CheckpointSave {
                state: self.string()?,
            },
            call_tag::CHECKPOINT_LAST => HostCall::CheckpointLast,
            call_tag::FILE_OPEN => HostCall::FileOpen {
                name: self.string()?,
            },
            call_tag::FILE_READ => HostCall::FileRead {
                file: self.varint()?,
                max_bytes: self.u32()?,
            },
            call_tag::FILE_CLOSE => HostCall::FileClose {
                file: self.varint()?,
            },
            call_tag::FILE_LIST => HostCall::FileList {
                dir: self.string()?,
            },
            other => {
                self.pos -= 1;
                return self.err(format!("unknown host call tag 0x{other:02x}"));
            }
        })
    }

    fn result(&mut self) -> Decoded<CallResult> {
        Ok(match self.u8()? {
            result_tag::UNIT => CallResult::Unit,
            result_tag::OPENED => CallResult::Opened,
            result_tag::ROWS => CallResult::Rows {
                columns: self.pairs()?,
                rows: self.rows()?,
            },
            result_tag::COUNT => CallResult::Count { n: self.varint()? },
            result_tag::CURSOR => CallResult::Cursor {
                cursor: self.varint()?,
                columns: self.pairs()?,
            },
            result_tag::BATCH => CallResult::Batch {
                rows: if self.flag()? {
                    Some(self.rows()?)
                } else {
                    None
                },
            },
            result_tag::SNAPSHOTS => {
                let n = self.count(4)?;
                let mut snapshots = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = self.string()?;
                    let connection = self.string()?;
                    let method = self.string()?;
                    let t = self.count(3)?;
                    let mut tables = Vec::with_capacity(t);
                    for _ in 0..t {
                        tables.push(TableSnapshot {
                            name: self.string()?,
                            rows: self.varint()?,
                            checksum: self.string()?,
                        });
                    }
                    snapshots.push(SnapshotInfo {
                        id,
                        connection,
                        method,
                        tables,
                    });
                }
                CallResult::Snapshots { snapshots }
            }
            result_tag::BACKUP_ERROR => CallResult::BackupError {
                error_kind: self.string()?,
                message: self.string()?,
            },
            result_tag::CHECKPOINT => CallResult::Checkpoint {
                state: self.opt_string()?,
            },
            result_tag::ERROR => CallResult::Error {
                error_kind: self.string()?,
                code: self.opt_string()?,
                message: self.string()?,
            },
            result_tag::FILE_OPENED => CallResult::FileOpened {
                file: self.varint()?,
                size: self.varint()?,
                sha256: self.string()?,
            },
            result_tag::FILE_CHUNK => {
                let n = self.count(1)?;
                CallResult::FileChunk {
                    bytes: self.take(n)?.to_vec(),
                }
            }
            result_tag::FILE_NAMES => CallResult::FileNames {
                names: self.strings()?,
            },
            result_tag::FILE_ERROR => CallResult::FileError {
                error_kind: self.string()?,
                message: self.string()?,
            },
            other => {
                self.pos -= 1;
                return self.err(format!("unknown call result tag 0x{other:02x}"));
            }
        })
    }
}

/// Decodes one value on its own (a fresh window: a reference is an error). For tests and
/// the fuzz target.
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut window = ReaderWindow::default();
    let mut d = Decoder::new(bytes, &mut window);
    let v = d.value()?;
    if d.left() != 0 {
        return d.err(format!("{} bytes after the value", d.left()));
    }
    Ok(v)
}

/// Encodes one value on its own (a fresh window: always a literal).
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut window = WriterWindow::default();
    Encoder::new(&mut out, &mut window).value(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use half::f16;

    /// One value of every kind, with edge cases.
    fn every_value() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(false),
            Value::Bool(true),
            Value::Int(0),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Int(-1),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(-0.0),
            Value::Float(1.5e-300),
            Value::Text(String::new()),
            Value::Text("héllo\n\t\"".into()),
            Value::Text("x".repeat(500)),
            Value::Bytes(vec![0, 255, 10]),
            Value::Bytes(vec![7; 4096]),
            Value::Typed {
                type_name: "sparsevec".into(),
                bytes: vec![
                    0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 63, 128, 0, 0,
                ],
            },
            Value::Typed {
                type_name: "interval".into(),
                bytes: Vec::new(),
            },
            Value::Json("{\"a\":[1,2,{\"b\":null}]}".into()),
            Value::Uuid(uuid::Uuid::from_u128(
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            )),
            Value::Date(NaiveDate::from_ymd_opt(-4000, 2, 29).unwrap()),
            Value::Date(NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()),
            Value::Time(NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).unwrap()),
            Value::Time(NaiveTime::from_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap()),
            Value::Timestamp(
                NaiveDate::from_ymd_opt(1900, 1, 1)
                    .unwrap()
                    .and_hms_micro_opt(0, 0, 0, 1)
                    .unwrap(),
            ),
            Value::Timestamptz(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()),
            Value::Timestamptz(DateTime::from_timestamp(-62_135_596_800, 123).unwrap()),
            Value::Decimal("-12.3400".into()),
            Value::Decimal("1".repeat(100)),
            Value::Float32Array(vec![].into()),
            Value::Float32Array(vec![0.1, f32::NAN, -0.0, f32::MAX, f32::MIN_POSITIVE].into()),
            Value::Float32Array(
                (0..1536)
                    .map(|i| i as f32 / 7.0)
                    .collect::<Vec<f32>>()
                    .into(),
            ),
            Value::Float32Array(halfvec_floats(1536).into()),
            Value::Float32Array(vec![65504.0, -0.0, f32::INFINITY, 5.960_464_5e-8].into()),
            Value::TextArray(vec![]),
            Value::TextArray(vec!["a".into(), String::new(), "ünï".into()]),
        ]
    }

    /// `n` floats each exactly a binary16, as a pgvector `halfvec` reads: every exponent
    /// and sign, subnormals, ±0 and the infinities, no NaN.
    fn halfvec_floats(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| f16::from_bits((i as u16).wrapping_mul(40503)))
            .filter(|h| !h.is_nan())
            .map(f16::to_f32)
            .collect()
    }

    #[test]
    fn halfvec_floats_are_recorded_as_binary16_and_widen_back_exactly() {
        let floats = halfvec_floats(1536);
        let halves = Value::Float32Array(floats.clone().into());
        let bytes = encode_value(&halves);
        assert_eq!(bytes[0], tag::FLOAT16_ARRAY);
        assert!(
            bytes.len() <= 3 + 2 * floats.len(),
            "two bytes a float: {} bytes for {}",
            bytes.len(),
            floats.len()
        );
        assert_eq!(decode_value(&bytes).unwrap(), halves, "bit for bit");
        // One float that binary16 cannot hold, or a NaN with a payload it would lose:
        // the whole array is float32, exactly as before.
        for odd in [0.1f32, f32::from_bits(0x7FC0_0001), 65520.0, 1e-8] {
            let mut v = floats.clone();
            v[1000] = odd;
            let value = Value::Float32Array(v.into());
            let bytes = encode_value(&value);
            assert_eq!(bytes[0], tag::FLOAT32_ARRAY, "{odd:e}");
            assert_eq!(decode_value(&bytes).unwrap(), value, "{odd:e}");
        }
        // In the window a binary16 array counts as the float32 array it decodes to (what
        // a reader holds), and a repeat of it is a reference.
        let mut writer = WriterWindow::default();
        let mut reader = ReaderWindow::default();
        let mut out = Vec::new();
        Encoder::new(&mut out, &mut writer).value(&halves);
        let decoded = Decoder::new(&out, &mut reader).value().unwrap();
        assert_eq!(decoded, halves);
        let float32_body = 2 + 4 * floats.len();
        assert_eq!(writer.bytes, float32_body);
        assert_eq!(reader.bytes, float32_body);
        let mut again = Vec::new();
        Encoder::new(&mut again, &mut writer).value(&halves);
        assert_eq!(again[0], tag::REF);
        assert_eq!(Decoder::new(&again, &mut reader).value().unwrap(), halves);
    }

    /// A float array equal to an earlier literal still alive is a reference, whether it
    /// is the same allocation or an equal copy (the bytes are the same either way), and
    /// after a newer equal value (the reference goes to the first literal); one changed
    /// through `make_mut` (a new allocation) is a literal again; an equal array whose
    /// earlier copy nothing holds any more is a literal, which a reader reads the same.
    #[test]
    fn an_array_met_again_while_alive_is_a_reference() {
        let floats = |k: f32| (0..1536).map(|i| i as f32 / 7.0 + k).collect::<Vec<f32>>();
        let first: Arc<Vec<f32>> = Arc::new(floats(0.0));
        let second: Arc<Vec<f32>> = Arc::new(floats(1.0));
        let newer_equal: Arc<Vec<f32>> = Arc::new(floats(0.0));
        let encode_all = |values: &[Value]| {
            let mut window = WriterWindow::default();
            let mut out = Vec::new();
            let mut ends = Vec::new();
            for v in values {
                Encoder::new(&mut out, &mut window).value(v);
                ends.push(out.len());
            }
            (out, ends, window)
        };
        let by_identity = [
            Value::Float32Array(Arc::clone(&first)),
            Value::Float32Array(Arc::clone(&second)),
            Value::Float32Array(Arc::clone(&first)),
            Value::Float32Array(Arc::clone(&newer_equal)),
            Value::Float32Array(Arc::clone(&first)),
        ];
        // The same values, every one a fresh allocation: the hashing path only.
        let by_content: Vec<Value> = by_identity
            .iter()
            .map(|v| match v {
                Value::Float32Array(a) => Value::Float32Array(Arc::new(a.as_ref().clone())),
                other => other.clone(),
            })
            .collect();
        let (out, ends, window) = encode_all(&by_identity);
        let (expected, _, _) = encode_all(&by_content);
        assert_eq!(out, expected);
        // literal, literal, a reference back 2, a reference back 2 (to the first:
        // equal content), a reference back 2 (still the first).
        assert_eq!(out[ends[1]], tag::REF);
        assert_eq!(out[ends[2]], tag::REF);
        assert_eq!(out[ends[3]], tag::REF);
        assert_eq!(window.by_array.len(), 2);
        assert!(window.by_hash.is_empty(), "embeddings are not hashed");
        let mut reader = ReaderWindow::default();
        let mut decoder = Decoder::new(&out, &mut reader);
        for v in &by_identity {
            assert_eq!(&decoder.value().unwrap(), v);
        }

        // Changed in place: `make_mut` moves the floats to a new allocation while the
        // writer's `Weak` exists, so the change is a literal again, never a stale reference.
        let mut window = WriterWindow::default();
        let mut out = Vec::new();
        let mut changed = Arc::clone(&first);
        Encoder::new(&mut out, &mut window).value(&Value::Float32Array(Arc::clone(&first)));
        drop(first);
        Arc::make_mut(&mut changed)[0] = 42.0;
        let at = out.len();
        Encoder::new(&mut out, &mut window).value(&Value::Float32Array(Arc::clone(&changed)));
        assert_ne!(out[at], tag::REF);
        let mut reader = ReaderWindow::default();
        let mut decoder = Decoder::new(&out, &mut reader);
        decoder.value().unwrap();
        assert_eq!(decoder.value().unwrap(), Value::Float32Array(changed));

        // Equal to a literal nothing holds any more: written again, read back equal.
        let mut window = WriterWindow::default();
        let mut out = Vec::new();
        Encoder::new(&mut out, &mut window).value(&Value::Float32Array(Arc::new(floats(3.0))));
        let at = out.len();
        Encoder::new(&mut out, &mut window).value(&Value::Float32Array(Arc::new(floats(3.0))));
        assert_ne!(out[at], tag::REF);
        let mut reader = ReaderWindow::default();
        let mut decoder = Decoder::new(&out, &mut reader);
        for _ in 0..2 {
            assert_eq!(
                decoder.value().unwrap(),
                Value::Float32Array(Arc::new(floats(3.0)))
            );
        }
    }

    /// Bitwise equality (NaN equals itself, -0.0 differs from 0.0): `Value`'s own.
    fn same(a: &Value, b: &Value) -> bool {
        a == b
    }

    #[test]
    fn every_value_kind_round_trips_exactly() {
        for v in every_value() {
            let bytes = encode_value(&v);
            let back = decode_value(&bytes).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert!(same(&v, &back), "{v:?} came back as {back:?}");
        }
    }

    #[test]
    fn every_entry_kind_round_trips_and_repeated_values_are_references() {
        // Sevenths: not binary16 floats, so recorded as float32 (the halves test is below).
        let big = Value::Float32Array(
            (0..1536)
                .map(|i| i as f32 / 7.0)
                .collect::<Vec<f32>>()
                .into(),
        );
        let row = vec![Value::Int(1), Value::Text("t".repeat(40)), big.clone()];
        let entries = vec![
            Entry::Export {
                export: "configure".into(),
                unit: None,
                config: Some(vec![("k".into(), "v".into())]),
            },
            Entry::Call {
                call: HostCall::NextBatch { cursor: 3 },
                result: CallResult::Batch {
                    rows: Some(vec![row.clone(), row.clone()]),
                },
            },
            Entry::Call {
                call: HostCall::BulkInsert {
                    conn: "target".into(),
                    table: "t".into(),
                    columns: vec!["a".into(), "b".into(), "c".into()],
                    rows: vec![row.clone()],
                },
                result: CallResult::Count { n: 1 },
            },
            Entry::Call {
                call: HostCall::BulkWrite {
                    conn: "target".into(),
                    kind: BulkWriteKind::Upsert,
                    table: "s.t".into(),
                    keys: vec!["a".into()],
                    columns: vec!["b".into(), "c".into()],
                    rows: vec![row.clone(), row.clone()],
                },
                result: CallResult::Count { n: 2 },
            },
            Entry::Call {
                call: HostCall::BulkWrite {
                    conn: "target".into(),
                    kind: BulkWriteKind::Delete,
                    table: "t".into(),
                    keys: vec!["a".into()],
                    columns: vec![],
                    rows: vec![vec![Value::Int(1)]],
                },
                result: CallResult::Count { n: 0 },
            },
            Entry::Call {
                call: HostCall::Log {
                    level: Level::Warn,
                    message: "m".into(),
                    fields: vec![],
                },
                result: CallResult::Unit,
            },
            Entry::Call {
                call: HostCall::Progress {
                    task: "x".into(),
                    done: 5,
                    total: Some(9),
                },
                result: CallResult::Error {
                    error_kind: "constraint".into(),
                    code: Some("23505".into()),
                    message: "dup".into(),
                },
            },
            Entry::Call {
                call: HostCall::BackupSnapshot {
                    conn: "c".into(),
                    tables: vec!["a".into()],
                    label: "l".into(),
                },
                result: CallResult::Snapshots {
                    snapshots: vec![SnapshotInfo {
                        id: "s".into(),
                        connection: "c".into(),
                        method: "native".into(),
                        tables: vec![TableSnapshot {
                            name: "a".into(),
                            rows: 3,
                            checksum: "ab".into(),
                        }],
                    }],
                },
            },
            Entry::Call {
                call: HostCall::CheckpointLast,
                result: CallResult::Checkpoint { state: None },
            },
            Entry::Call {
                call: HostCall::FileOpen {
                    name: "mappings/grants.toml".into(),
                },
                result: CallResult::FileOpened {
                    file: 1,
                    size: 5,
                    sha256: "ab".repeat(32),
                },
            },
            Entry::Call {
                call: HostCall::FileRead {
                    file: 1,
                    max_bytes: 65536,
                },
                result: CallResult::FileChunk {
                    bytes: vec![0, 1, 255, b'\n', 7],
                },
            },
            Entry::Call {
                call: HostCall::FileClose { file: 1 },
                result: CallResult::Unit,
            },
            Entry::Call {
                call: HostCall::FileList { dir: ".".into() },
                result: CallResult::FileNames {
                    names: vec!["a.toml".into(), "sub/".into()],
                },
            },
            Entry::Call {
                call: HostCall::FileOpen {
                    name: "../x".into(),
                },
                result: CallResult::FileError {
                    error_kind: "escape".into(),
                    message: "`../x` leaves the granted directory".into(),
                },
            },
            Entry::ExportEnd {
                export: "run-unit".into(),
                error: Some("trap".into()),
            },
            Entry::UnitSkipped {
                unit: "u".into(),
                reason: "r".into(),
            },
            Entry::Tx {
                connection: "target".into(),
                op: "commit".into(),
                error: None,
            },
        ];
        let mut writer = WriterWindow::default();
        let mut reader = ReaderWindow::default();
        let mut sizes = Vec::new();
        for e in &entries {
            let mut bytes = Vec::new();
            Encoder::new(&mut bytes, &mut writer).entry(e).unwrap();
            sizes.push(bytes.len());
            let back = Decoder::new(&bytes, &mut reader).entry().unwrap();
            assert_eq!(&back, e);
        }
        // The batch holds the embedding once (its second row refers to the first); the bulk
        // insert of the same row refers to it: a few bytes, not 6 KB again.
        assert!(sizes[1] > 6144 && sizes[1] < 6144 + 200, "{sizes:?}");
        assert!(sizes[2] < 100, "the bulk insert is references: {sizes:?}");
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        // Every prefix of every value (cut short), and every byte of each flipped.
        for v in every_value() {
            let bytes = encode_value(&v);
            for len in 0..bytes.len() {
                assert!(decode_value(&bytes[..len]).is_err(), "{v:?} cut at {len}");
            }
            for at in 0..bytes.len().min(64) {
                let mut b = bytes.clone();
                b[at] ^= 0xA5;
                let _ = decode_value(&b);
            }
        }
        let unknown = decode_value(&[0x42, 1, 2]).unwrap_err();
        assert!(unknown.what.contains("unknown value tag 0x42"), "{unknown}");
        let dangling = decode_value(&[tag::REF, 1]).unwrap_err();
        assert!(dangling.what.contains("outside the 0 values"), "{dangling}");
        let huge = decode_value(&[tag::FLOAT32_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).unwrap_err();
        assert!(huge.what.contains("more than the"), "{huge}");
        let not_utf8 = decode_value(&[tag::TEXT, 2, 0xC3, 0x28]).unwrap_err();
        assert!(not_utf8.what.contains("not UTF-8"), "{not_utf8}");
        let bad_bool = decode_value(&[tag::BOOL, 2]).unwrap_err();
        assert!(bad_bool.what.contains("expected 0 or 1"), "{bad_bool}");
        let long_varint = decode_value(&[
            tag::INT,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0x7F,
        ]);
        assert!(long_varint.is_err());
        let trailing = decode_value(&[tag::NULL, 0]).unwrap_err();
        assert!(trailing.what.contains("after the value"), "{trailing}");
        let mut w = ReaderWindow::default();
        let e = Decoder::new(&[0x99], &mut w).entry().unwrap_err();
        assert!(e.what.contains("unknown entry tag 0x99"), "{e}");
    }

    #[test]
    fn the_window_forgets_the_oldest_values_and_the_writer_then_writes_them_again() {
        let value = |i: u32| Value::Bytes(vec![i as u8; 1 << 20]);
        let mut writer = WriterWindow::default();
        let mut reader = ReaderWindow::default();
        let mut roundtrip = |v: &Value| {
            let mut bytes = Vec::new();
            Encoder::new(&mut bytes, &mut writer).value(v);
            let back = Decoder::new(&bytes, &mut reader).value().unwrap();
            assert_eq!(&back, v);
            bytes.len()
        };
        // 40 distinct MiB-sized values: more than the 32 MiB window.
        for i in 0..40 {
            assert!(roundtrip(&value(i)) > 1 << 20);
        }
        // The newest are still referable, the oldest are literals again.
        assert!(roundtrip(&value(39)) < 8, "a reference");
        assert!(roundtrip(&value(0)) > 1 << 20, "evicted: written again");
    }
}
