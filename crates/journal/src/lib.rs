//! The journal: a hash-chained, compressed record of every input a run read.
//!
//! Every run and every dry-run writes one. It holds, in order: a header (what
//! ran, with which seeds and configuration), every export call the host made
//! and every host call the plugin made with its arguments and result, the
//! host's own transaction control, and a footer (outcome and counts). Because
//! the plugin is deterministic given the seeds and the answers it got, the
//! journal is enough to re-execute it with no database at all
//! (`migrun::replay`).
//!
//! # Format (`migrun.journal/3`)
//!
//! A magic line `migrun.journal/3\n`, then checksummed frames ([`frame`]),
//! each a zstd frame of whole binary records. A record is one [`Entry`] in
//! the binary encoding of [`binary`] (values in binary, each large value
//! recorded once), tagged with its lane, and the BLAKE3 hash of the previous
//! record's hash (32 zero bytes for the first) followed by its bytes.
//! Editing, inserting, removing or reordering any record breaks the chain from
//! there on; the final hash, printed at the end of the run and stored in the
//! ledger, seals the whole journal. The writer syncs before every commit, so a
//! killed run leaves whole frames and at most one torn frame at the end, which
//! readers drop. `migrun.journal/2` (frames of JSON lines, sha256 chain) and
//! `/1` (the same lines in one zstd stream) are still read. See
//! `docs/JOURNAL.md`.
//!
//! # Layout
//!
//! - this file: the entry types.
//! - [`binary`]: the `/3` encoding of entries and values, the value window.
//! - [`frame`]: the container: magic line, frame header, torn tails, records.
//! - [`writer`]: [`JournalWriter`], streaming, bounded memory, group commit.
//! - [`reader`]: [`JournalReader`], streaming, verifies the chain as it reads.

#![deny(missing_docs)]

pub mod binary;
mod budget;
pub mod frame;
mod page_cache;
pub mod reader;
pub mod stats;
pub mod verify;
pub mod writer;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use migrun_types::{Access, BulkWriteKind, Dialect, Level, Value};

pub use reader::{JournalReader, READ_AHEAD_BYTES};
pub use writer::{IN_FLIGHT_BYTES, JournalWriter, private_dir_all};

/// The format identifier written in every header.
pub const FORMAT: &str = "migrun.journal/3";

/// The second format (framed JSON lines), still read and replayed.
pub const FORMAT_V2: &str = "migrun.journal/2";

/// The first format (one zstd stream of lines), still read and replayed.
pub const FORMAT_V1: &str = "migrun.journal/1";

/// Why a journal could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// An I/O error on the journal file.
    #[error("journal {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not `<hash>\t<json>` or its JSON is not an entry; a record does not decode.
    #[error("journal {path}, entry {index}: malformed: {detail}")]
    Malformed {
        /// The file.
        path: String,
        /// The entry index (0 is the header).
        index: u64,
        /// What is wrong.
        detail: String,
    },
    /// The hash chain does not hold: the journal was edited or truncated.
    #[error(
        "journal {path}, entry {index}: hash chain broken (expected {expected}, found {found}): the journal was modified"
    )]
    ChainBroken {
        /// The file.
        path: String,
        /// The first entry whose hash does not match.
        index: u64,
        /// The hash computed from the previous hash and the entry.
        expected: String,
        /// The hash written.
        found: String,
    },
    /// The file holds no entry: its run stopped before the header was on disk.
    #[error("journal {path}: no entry: {detail}")]
    NoEntries {
        /// The file.
        path: String,
        /// What the file holds instead.
        detail: String,
    },
    /// The journal is of a format this migrun does not read.
    #[error(
        "journal {path}: format {found} is not supported (this migrun reads {FORMAT}, {FORMAT_V2} and {FORMAT_V1})"
    )]
    UnsupportedFormat {
        /// The file.
        path: String,
        /// The format found.
        found: String,
    },
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Entry {
    /// Always first.
    Header(Header),
    /// The host calls an export of the plugin.
    Export {
        /// `describe`, `configure`, `list-units`, `run-unit` or `verify`.
        export: String,
        /// The unit, for `run-unit`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
        /// The configuration values, for `configure` (secret values redacted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config: Option<Vec<(String, String)>>,
    },
    /// The export call returned (or trapped).
    ExportEnd {
        /// The export.
        export: String,
        /// `None` when it returned ok; otherwise why it did not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A host call made by the plugin, with its result.
    Call {
        /// What the plugin asked.
        call: HostCall,
        /// What the host answered.
        result: CallResult,
    },
    /// A selected unit the host did not run because the ledger says it finished already.
    UnitSkipped {
        /// The unit.
        unit: String,
        /// Why (the run that finished it).
        reason: String,
    },
    /// Transaction control by the host (for audit; not re-executed by replay).
    Tx {
        /// The connection.
        connection: String,
        /// `begin`, `commit` or `rollback`.
        op: String,
        /// The error, if it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Always last in a complete journal.
    Footer(Footer),
}

/// What ran, with which seeds and grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT`].
    pub format: String,
    /// The migrun version that wrote it.
    pub migrun_version: String,
    /// The contract version the plugin targets.
    pub contract_version: String,
    /// sha256 of the plugin component.
    pub plugin_sha256: String,
    /// The plugin's name, from `describe`.
    pub plugin_name: String,
    /// The plugin's version, from `describe`.
    pub plugin_version: String,
    /// A unique id of the run.
    pub run_id: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// Whether it was a dry-run.
    pub dry_run: bool,
    /// The `--only` selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<Vec<String>>,
    /// The `--shard` of this worker, as (index, count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<(u32, u32)>,
    /// The `--jobs` asked for, when more than 1: entries then carry the lane of the worker
    /// that produced them (each record's lane), and a replay demultiplexes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u32>,
    /// `--keep-going` (`[run] on_unit_failure = "continue"`): a unit's failure did not stop
    /// the run, so units after a failed one are in the journal and a replay goes on past it
    /// too. Left out when false, so journals of other runs read as before (headers deny
    /// unknown fields).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_going: bool,
    /// Seeds of the deterministic clock and randomness.
    pub seeds: SandboxSeeds,
    /// The connections, URLs with passwords redacted.
    pub connections: Vec<JournalConnection>,
    /// The limits in force.
    pub limits: migrun_config::Limits,
    /// The directory granted to the plugin's `files` (contract 0.2.0), as the operator
    /// named it; absent when none was. A replay reads no file: the contents are in the
    /// `file-read` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_dir: Option<String>,
}

/// A connection as the header records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalConnection {
    /// Its name.
    pub name: String,
    /// Its dialect.
    pub dialect: Dialect,
    /// The access the plugin got.
    pub access: Access,
    /// Its URL, password redacted.
    pub url: String,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footer {
    /// `succeeded`, `failed` or `checks-failed`.
    pub outcome: String,
    /// The failure message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Host calls recorded.
    pub calls: u64,
    /// Rows written per connection (execute-affected plus bulk-inserted).
    pub rows_written: BTreeMap<String, u64>,
    /// Checks reported / failed.
    pub checks: u64,
    /// Checks that failed.
    pub checks_failed: u64,
}

/// A host call made by the plugin. Connections are named; cursors are numbered
/// in the order the run opened them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fn", rename_all = "kebab-case")]
pub enum HostCall {
    /// `database.open`.
    Open {
        /// The name asked for.
        name: String,
    },
    /// `connection.query`.
    Query {
        /// The connection.
        conn: String,
        /// The statement.
        sql: String,
        /// Its parameters.
        params: Vec<Value>,
    },
    /// `connection.execute`.
    Execute {
        /// The connection.
        conn: String,
        /// The statement.
        sql: String,
        /// Its parameters.
        params: Vec<Value>,
    },
    /// `connection.open-cursor`.
    OpenCursor {
        /// The connection.
        conn: String,
        /// The statement.
        sql: String,
        /// Its parameters.
        params: Vec<Value>,
        /// The batch size asked for.
        batch_size: u32,
    },
    /// `cursor.next-batch`.
    NextBatch {
        /// The cursor.
        cursor: u64,
    },
    /// The plugin dropped a cursor.
    CloseCursor {
        /// The cursor.
        cursor: u64,
    },
    /// `connection.bulk-insert`.
    BulkInsert {
        /// The connection.
        conn: String,
        /// The table.
        table: String,
        /// The columns.
        columns: Vec<String>,
        /// The rows.
        rows: Vec<Vec<Value>>,
    },
    /// `connection.bulk-update`, `bulk-upsert` or `bulk-delete` (contract 0.2.0): rows
    /// written by key.
    BulkWrite {
        /// The connection.
        conn: String,
        /// Which write.
        kind: BulkWriteKind,
        /// The table.
        table: String,
        /// The key columns.
        keys: Vec<String>,
        /// The columns set (updated or upserted); empty for a delete.
        columns: Vec<String>,
        /// The rows: each row's key values, then its values of `columns`.
        rows: Vec<Vec<Value>>,
    },
    /// `log.write`.
    Log {
        /// The level.
        level: Level,
        /// The message.
        message: String,
        /// Structured fields.
        fields: Vec<(String, String)>,
    },
    /// `log.progress`.
    Progress {
        /// The task.
        task: String,
        /// Done.
        done: u64,
        /// Total.
        total: Option<u64>,
    },
    /// `checks.report`.
    Check {
        /// The check.
        name: String,
        /// Whether it passed.
        ok: bool,
        /// Detail.
        detail: String,
    },
    /// `backup.snapshot` (contract 0.1.1).
    BackupSnapshot {
        /// The connection.
        conn: String,
        /// The tables asked for (empty: the whole database).
        tables: Vec<String>,
        /// The label.
        label: String,
    },
    /// `backup.snapshots` (contract 0.1.1).
    BackupList,
    /// `backup.verify` (contract 0.1.1).
    BackupVerify {
        /// The snapshot id.
        id: String,
    },
    /// `checkpoint.save` (contract 0.1.1): commits the unit's work so far.
    CheckpointSave {
        /// The plugin's resume state.
        state: String,
    },
    /// `checkpoint.last` (contract 0.1.1).
    CheckpointLast,
    /// `files.open` (contract 0.2.0): a file of the directory the operator granted.
    FileOpen {
        /// The name asked for, relative to the granted directory.
        name: String,
    },
    /// `file.read` (contract 0.2.0): the next bytes of an open file.
    FileRead {
        /// The file, numbered in the order the run opened them (from 1).
        file: u64,
        /// The most bytes asked for.
        max_bytes: u32,
    },
    /// The plugin dropped an open file (contract 0.2.0).
    FileClose {
        /// The file.
        file: u64,
    },
    /// `files.list` (contract 0.2.0).
    FileList {
        /// The folder, relative to the granted directory.
        dir: String,
    },
}

/// Roughly the heap memory of rows of values.
fn approx_rows(rows: &[Vec<Value>]) -> usize {
    rows.iter().map(|row| approx_values(row) + 24).sum()
}

fn approx_values(values: &[Value]) -> usize {
    values.iter().map(Value::approx_bytes).sum()
}

impl HostCall {
    /// Roughly the heap memory this call holds (see [`Entry::approx_bytes`]).
    pub fn approx_bytes(&self) -> usize {
        match self {
            HostCall::Query { sql, params, .. }
            | HostCall::Execute { sql, params, .. }
            | HostCall::OpenCursor { sql, params, .. } => sql.len() + approx_values(params),
            HostCall::BulkInsert { columns, rows, .. } => {
                columns.iter().map(|c| c.len() + 24).sum::<usize>() + approx_rows(rows)
            }
            HostCall::BulkWrite {
                keys,
                columns,
                rows,
                ..
            } => {
                keys.iter()
                    .chain(columns)
                    .map(|c| c.len() + 24)
                    .sum::<usize>()
                    + approx_rows(rows)
            }
            HostCall::Log {
                message, fields, ..
            } => {
                message.len()
                    + fields
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 48)
                        .sum::<usize>()
            }
            HostCall::CheckpointSave { state } => state.len(),
            HostCall::Check { detail, .. } => detail.len(),
            _ => 0,
        }
    }
}

impl CallResult {
    /// Roughly the heap memory this result holds (see [`Entry::approx_bytes`]).
    pub fn approx_bytes(&self) -> usize {
        match self {
            CallResult::Rows { rows, .. } | CallResult::Batch { rows: Some(rows) } => {
                approx_rows(rows)
            }
            CallResult::Error { message, .. } => message.len(),
            CallResult::FileChunk { bytes } => bytes.len(),
            CallResult::FileNames { names } => names.iter().map(|n| n.len() + 24).sum(),
            _ => 0,
        }
    }
}

impl Entry {
    /// Roughly the heap memory this entry holds (values, texts, rows): what the writer's
    /// in-flight budget counts. Small fixed parts are rounded in; it need not be exact,
    /// only proportional, so that a batch of 1,000 embeddings weighs what it holds.
    pub fn approx_bytes(&self) -> usize {
        64 + match self {
            Entry::Call { call, result } => call.approx_bytes() + result.approx_bytes(),
            Entry::Export { config, .. } => config
                .iter()
                .flatten()
                .map(|(k, v)| k.len() + v.len() + 48)
                .sum(),
            Entry::ExportEnd { error, .. } | Entry::Tx { error, .. } => {
                error.as_ref().map_or(0, String::len)
            }
            Entry::UnitSkipped { reason, .. } => reason.len(),
            Entry::Header(_) | Entry::Footer(_) => 1024,
        }
    }
}

impl HostCall {
    /// Whether this call writes (or may write) data: executes, bulk inserts and bulk writes.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            HostCall::Execute { .. } | HostCall::BulkInsert { .. } | HostCall::BulkWrite { .. }
        )
    }

    /// A one-line description for divergence reports.
    pub fn summary(&self) -> String {
        fn clip(s: &str) -> String {
            let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
            if one_line.chars().count() > 160 {
                format!("{}…", one_line.chars().take(160).collect::<String>())
            } else {
                one_line
            }
        }
        fn params(p: &[Value]) -> String {
            clip(
                &p.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        }
        match self {
            HostCall::Open { name } => format!("open({name:?})"),
            HostCall::Query {
                conn,
                sql,
                params: p,
            } => format!("{conn}.query({:?}; [{}])", clip(sql), params(p)),
            HostCall::Execute {
                conn,
                sql,
                params: p,
            } => format!("{conn}.execute({:?}; [{}])", clip(sql), params(p)),
            HostCall::OpenCursor {
                conn,
                sql,
                params: p,
                batch_size,
            } => {
                format!(
                    "{conn}.open-cursor({:?}; [{}]; batch {batch_size})",
                    clip(sql),
                    params(p)
                )
            }
            HostCall::NextBatch { cursor } => format!("cursor#{cursor}.next-batch()"),
            HostCall::CloseCursor { cursor } => format!("cursor#{cursor}.drop()"),
            HostCall::BulkInsert {
                conn,
                table,
                columns,
                rows,
            } => {
                format!(
                    "{conn}.bulk-insert({table}; {} columns; {} rows)",
                    columns.len(),
                    rows.len()
                )
            }
            HostCall::BulkWrite {
                conn,
                kind,
                table,
                keys,
                columns,
                rows,
            } => {
                format!(
                    "{conn}.{}({table}; keys {}; {} columns; {} rows)",
                    kind.call_name(),
                    keys.join(", "),
                    columns.len(),
                    rows.len()
                )
            }
            HostCall::Log { level, message, .. } => {
                format!("log.write({level:?}, {:?})", clip(message))
            }
            HostCall::Progress { task, done, total } => {
                format!("log.progress({task:?}, {done}, {total:?})")
            }
            HostCall::Check { name, ok, .. } => format!("checks.report({name:?}, {ok})"),
            HostCall::BackupSnapshot {
                conn,
                tables,
                label,
            } => format!("backup.snapshot({conn:?}, {tables:?}, {label:?})"),
            HostCall::BackupList => "backup.snapshots()".to_owned(),
            HostCall::BackupVerify { id } => format!("backup.verify({id:?})"),
            HostCall::CheckpointSave { state } => format!("checkpoint.save({:?})", clip(state)),
            HostCall::CheckpointLast => "checkpoint.last()".to_owned(),
            HostCall::FileOpen { name } => format!("files.open({:?})", clip(name)),
            HostCall::FileRead { file, max_bytes } => format!("file#{file}.read({max_bytes})"),
            HostCall::FileClose { file } => format!("file#{file}.drop()"),
            HostCall::FileList { dir } => format!("files.list({:?})", clip(dir)),
        }
    }
}

/// What the host answered to a [`HostCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CallResult {
    /// Nothing to return (log, progress, check, close).
    Unit,
    /// A connection was opened.
    Opened,
    /// Rows of a query.
    Rows {
        /// Column names and types.
        columns: Vec<(String, String)>,
        /// The rows.
        rows: Vec<Vec<Value>>,
    },
    /// A count (affected or inserted rows).
    Count {
        /// The count.
        n: u64,
    },
    /// A cursor was opened.
    Cursor {
        /// Its number.
        cursor: u64,
        /// Column names and types.
        columns: Vec<(String, String)>,
    },
    /// A batch of a cursor; `None` at the end.
    Batch {
        /// The rows, or `None` when exhausted.
        rows: Option<Vec<Vec<Value>>>,
    },
    /// Snapshots taken or verified (`backup.snapshot`, `backup.verify`, `backup.list`).
    Snapshots {
        /// The snapshots.
        snapshots: Vec<SnapshotInfo>,
    },
    /// A backup call failed.
    BackupError {
        /// The `backup-error` case, as the WIT spells it.
        error_kind: String,
        /// What went wrong.
        message: String,
    },
    /// The state of the last checkpoint (`checkpoint.last`).
    Checkpoint {
        /// The state, or `None` when the unit starts afresh.
        state: Option<String>,
    },
    /// A file was opened (`files.open`).
    FileOpened {
        /// Its number, for the `file-read` calls that follow.
        file: u64,
        /// Its size in bytes.
        size: u64,
        /// The sha256 of its content (lowercase hex).
        sha256: String,
    },
    /// The next bytes of an open file (`file.read`); empty at its end.
    FileChunk {
        /// The bytes (lowercase hex in the JSON forms: `/2` journals, `journal show --json`).
        #[serde(with = "hex_bytes")]
        bytes: Vec<u8>,
    },
    /// The entries of a folder (`files.list`).
    FileNames {
        /// The names, sorted; folders end with `/`.
        names: Vec<String>,
    },
    /// A file call failed.
    FileError {
        /// The `file-error` case, as the WIT spells it (`not-granted`, `not-found`, `escape`,
        /// `invalid-name`, `io`).
        error_kind: String,
        /// What went wrong.
        message: String,
    },
    /// A database error.
    Error {
        /// Its kind, as the WIT spells it.
        error_kind: String,
        /// The database's code.
        code: Option<String>,
        /// The message.
        message: String,
    },
}

/// The seeds of the deterministic clock and randomness of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSeeds {
    /// Wall-clock time the plugin sees at its first reading, in nanoseconds since the Unix epoch.
    pub clock_start_unix_nanos: u64,
    /// Seed of both random sources.
    pub random_seed: u64,
}

impl SandboxSeeds {
    /// Seeds for a new live run: the current time (to the second) and a fresh random seed.
    pub fn fresh() -> SandboxSeeds {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        SandboxSeeds {
            clock_start_unix_nanos: now.as_secs() * 1_000_000_000,
            random_seed: rand::random(),
        }
    }
}

/// A snapshot as a plugin and the journal see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its id.
    pub id: String,
    /// The connection whose tables it holds.
    pub connection: String,
    /// How it was made (`sqlite-backup`, `pg-dump`, `mariadb-dump`, `native`).
    pub method: String,
    /// The tables it holds.
    pub tables: Vec<TableSnapshot>,
}

/// One table of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// The table.
    pub name: String,
    /// Its rows at snapshot time.
    pub rows: u64,
    /// Its checksum at snapshot time (hex).
    pub checksum: String,
}

/// Bytes as lowercase hex in JSON (a file's chunk would otherwise be an array of numbers).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}
