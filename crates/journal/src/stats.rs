//! `migrun journal show|stats`: reading a journal without replaying it.
//!
//! Both stream the file and verify the hash chain as they go, so a journal
//! that `stats` reports on is also known to be intact.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{CallResult, Entry, Footer, Header, HostCall, JournalError, JournalReader};

/// What a journal holds, counted.
#[derive(Debug, Serialize)]
pub struct JournalStats {
    /// The header.
    pub header: Header,
    /// Entries, header and footer included.
    pub entries: u64,
    /// Host calls, by function (`query`, `bulk-insert`, …).
    pub calls: BTreeMap<String, u64>,
    /// Calls that returned a database error.
    pub errors: u64,
    /// Rows read per connection (query results and cursor batches).
    pub rows_read: BTreeMap<String, u64>,
    /// Rows written per connection (affected by execute, inserted by bulk-insert).
    pub rows_written: BTreeMap<String, u64>,
    /// Bytes read per granted file (contract 0.2.0 `files`), by the name it was opened by.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub files_read: BTreeMap<String, u64>,
    /// Units run, in order.
    pub units: Vec<String>,
    /// Units skipped as already finished.
    pub skipped_units: Vec<String>,
    /// The footer, when the journal is complete.
    pub footer: Option<Footer>,
    /// The final hash (the chain head after the last entry).
    pub final_hash: String,
    /// Size of the compressed file in bytes.
    pub file_bytes: u64,
}

fn fn_name(call: &HostCall) -> &'static str {
    match call {
        HostCall::Open { .. } => "open",
        HostCall::Query { .. } => "query",
        HostCall::Execute { .. } => "execute",
        HostCall::OpenCursor { .. } => "open-cursor",
        HostCall::NextBatch { .. } => "next-batch",
        HostCall::CloseCursor { .. } => "close-cursor",
        HostCall::BulkInsert { .. } => "bulk-insert",
        HostCall::BulkWrite { kind, .. } => kind.call_name(),
        HostCall::Log { .. } => "log",
        HostCall::Progress { .. } => "progress",
        HostCall::Check { .. } => "check",
        HostCall::BackupSnapshot { .. } => "backup-snapshot",
        HostCall::BackupList => "backup-list",
        HostCall::BackupVerify { .. } => "backup-verify",
        HostCall::CheckpointSave { .. } => "checkpoint-save",
        HostCall::CheckpointLast => "checkpoint-last",
        HostCall::FileOpen { .. } => "file-open",
        HostCall::FileRead { .. } => "file-read",
        HostCall::FileClose { .. } => "file-close",
        HostCall::FileList { .. } => "file-list",
    }
}

/// Streams the journal at `path` (verifying its chain) and counts what it holds.
pub fn stats(path: &Path) -> Result<JournalStats, JournalError> {
    let (mut reader, header) = JournalReader::open(path)?;
    let mut stats = JournalStats {
        header,
        entries: 1,
        calls: BTreeMap::new(),
        errors: 0,
        rows_read: BTreeMap::new(),
        rows_written: BTreeMap::new(),
        files_read: BTreeMap::new(),
        units: Vec::new(),
        skipped_units: Vec::new(),
        footer: None,
        final_hash: String::new(),
        file_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    };
    let mut cursor_conn: BTreeMap<u64, String> = BTreeMap::new();
    // Files are numbered per lane (a `--jobs` worker opens its own).
    let mut file_names: BTreeMap<(u16, u64), String> = BTreeMap::new();
    while let Some((_, entry)) = reader.next_entry()? {
        stats.entries += 1;
        match entry {
            Entry::Call { call, result } => {
                *stats.calls.entry(fn_name(&call).to_owned()).or_default() += 1;
                match (&call, &result) {
                    (_, CallResult::Error { .. }) => stats.errors += 1,
                    (HostCall::FileOpen { name }, CallResult::FileOpened { file, .. }) => {
                        file_names.insert((reader.lane(), *file), name.clone());
                        stats.files_read.entry(name.clone()).or_default();
                    }
                    (HostCall::FileRead { file, .. }, CallResult::FileChunk { bytes }) => {
                        if let Some(name) = file_names.get(&(reader.lane(), *file)) {
                            *stats.files_read.entry(name.clone()).or_default() +=
                                bytes.len() as u64;
                        }
                    }
                    (HostCall::Query { conn, .. }, CallResult::Rows { rows, .. }) => {
                        *stats.rows_read.entry(conn.clone()).or_default() += rows.len() as u64;
                    }
                    (HostCall::OpenCursor { conn, .. }, CallResult::Cursor { cursor, .. }) => {
                        cursor_conn.insert(*cursor, conn.clone());
                    }
                    (HostCall::NextBatch { cursor }, CallResult::Batch { rows: Some(rows) }) => {
                        let conn = cursor_conn.get(cursor).cloned().unwrap_or_default();
                        *stats.rows_read.entry(conn).or_default() += rows.len() as u64;
                    }
                    (
                        HostCall::Execute { conn, .. }
                        | HostCall::BulkInsert { conn, .. }
                        | HostCall::BulkWrite { conn, .. },
                        CallResult::Count { n },
                    ) => {
                        *stats.rows_written.entry(conn.clone()).or_default() += n;
                    }
                    _ => {}
                }
            }
            Entry::Export {
                export,
                unit: Some(unit),
                ..
            } if export == "run-unit" => stats.units.push(unit),
            Entry::UnitSkipped { unit, .. } => stats.skipped_units.push(unit),
            Entry::Footer(footer) => stats.footer = Some(footer),
            _ => {}
        }
    }
    stats.final_hash = reader.head();
    Ok(stats)
}

/// Streams the journal's entries to `each` as `(index, hash, lane, entry)`, verifying the
/// chain. The lane is the `--jobs` worker that wrote the entry (0 for a sequential run).
pub fn show(path: &Path, mut each: impl FnMut(u64, &str, u16, &Entry)) -> Result<(), JournalError> {
    let (mut reader, header) = JournalReader::open(path)?;
    let header_hash = reader.head();
    each(0, &header_hash, 0, &Entry::Header(header));
    while let Some((index, entry)) = reader.next_entry()? {
        each(index, &reader.head(), reader.lane(), &entry);
    }
    Ok(())
}

/// A one-line description of an entry, for `migrun journal show`.
pub fn describe(entry: &Entry) -> String {
    match entry {
        Entry::Header(h) => format!(
            "header: {} {} (sha256 {}), run {}{}",
            h.plugin_name,
            h.plugin_version,
            &h.plugin_sha256[..h.plugin_sha256.len().min(12)],
            h.run_id,
            if h.dry_run { ", dry-run" } else { "" }
        ),
        Entry::Export { export, unit, .. } => match unit {
            Some(u) => format!("→ {export}({u:?})"),
            None => format!("→ {export}()"),
        },
        Entry::ExportEnd { export, error } => match error {
            Some(e) => format!("← {export} failed: {e}"),
            None => format!("← {export} ok"),
        },
        Entry::Call { call, result } => {
            let answer = match result {
                CallResult::Unit | CallResult::Opened => String::new(),
                CallResult::Rows { rows, .. } => format!(" → {} rows", rows.len()),
                CallResult::Count { n } => format!(" → {n}"),
                CallResult::Cursor { cursor, .. } => format!(" → cursor#{cursor}"),
                CallResult::Batch { rows: Some(rows) } => format!(" → {} rows", rows.len()),
                CallResult::Batch { rows: None } => " → end".to_owned(),
                CallResult::Error {
                    error_kind,
                    message,
                    ..
                } => format!(" → {error_kind} error: {message}"),
                CallResult::Snapshots { snapshots } => format!(
                    " → {}",
                    snapshots
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                CallResult::BackupError {
                    error_kind,
                    message,
                } => format!(" → backup {error_kind}: {message}"),
                CallResult::Checkpoint { state: Some(state) } => format!(" → {state:?}"),
                CallResult::Checkpoint { state: None } => " → none".to_owned(),
                CallResult::FileOpened { file, size, sha256 } => {
                    format!(" → file#{file}, {size} bytes, sha256 {sha256}")
                }
                CallResult::FileChunk { bytes } if bytes.is_empty() => " → end".to_owned(),
                CallResult::FileChunk { bytes } => format!(" → {} bytes", bytes.len()),
                CallResult::FileNames { names } => format!(" → {} entries", names.len()),
                CallResult::FileError {
                    error_kind,
                    message,
                } => format!(" → file {error_kind}: {message}"),
            };
            format!("  {}{answer}", call.summary())
        }
        Entry::UnitSkipped { unit, reason } => format!("= unit {unit:?} skipped: {reason}"),
        Entry::Tx {
            connection,
            op,
            error,
        } => match error {
            Some(e) => format!("  [{op} {connection} failed: {e}]"),
            None => format!("  [{op} {connection}]"),
        },
        Entry::Footer(f) => format!(
            "footer: {} — {} calls, {} checks ({} failed){}",
            f.outcome,
            f.calls,
            f.checks,
            f.checks_failed,
            f.failure
                .as_ref()
                .map(|m| format!(", {m}"))
                .unwrap_or_default()
        ),
    }
}
