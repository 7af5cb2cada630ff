//! [`Comparison`]: the tape of a replay with another plugin version
//! (`replay --plugin v2.wasm`). Its reads are answered by matching the
//! recorded reads (same connection, SQL and parameters; cursors re-batched to
//! the new batch size); its writes are collected and compared with what the
//! recorded run wrote ([`WriteDiff`]). A read that was never recorded stops it,
//! naming the call.
//!
//! How writes are compared:
//!
//! - bulk inserts and `INSERT` statements: per table, row by row (a row both wrote is
//!   identical; rows with the same first value and other values differing are changed);
//! - bulk updates, upserts and deletes (contract 0.2.0): per table and kind, row by row
//!   *by key* (`~ id=17 amount_cents: 120000 → 1200`; `-`/`+` for a key only one side
//!   wrote);
//! - other `execute` statements: aligned by shape ([`shape`](super::shape): the text with
//!   whitespace normalised and inline literals abstracted), each execution by the values
//!   of its parameters (identical ones first, the rest in order), showing which changed.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use crate::tape::TapeError;
use migrun_journal::{CallResult, Entry, Header, HostCall, JournalError, JournalReader};
use migrun_types::value::Value;
use migrun_types::{BulkWriteKind, Dialect};

use super::player::ReplayDivergence;
use super::shape::{Shaped, shape};

/// The most bytes one `file.read` returns, whatever the plugin asks (1 MiB): the host's
/// cap, which a comparison applies too so that a plugin sees the same chunks.
pub const FILE_READ_MAX_BYTES: usize = 1 << 20;

/// Rows written to one table, for the comparison.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TableDiff {
    /// Column names, when the writes named them (bulk inserts; for bulk writes the keys,
    /// then the columns set).
    pub columns: Vec<String>,
    /// Bulk writes (contract 0.2.0): the key columns rows are matched by (the first
    /// `keys.len()` values of each row below); absent for inserts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Rows the recorded run wrote that the compared plugin would not.
    pub only_recorded: Vec<Vec<Value>>,
    /// Rows the compared plugin would write that the recorded run did not.
    pub only_compared: Vec<Vec<Value>>,
    /// Rows with the same key (first value; for bulk writes the key columns) but other
    /// values changed.
    pub changed: Vec<ChangedRow>,
    /// Rows both wrote.
    pub identical: u64,
}

/// A row both versions wrote under the same key, with different values.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedRow {
    /// The key (the row's first value).
    pub key: Value,
    /// Bulk writes (contract 0.2.0): every key column with its value (`[["id", 17]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_values: Vec<(String, Value)>,
    /// Each differing column: (column name or position, recorded value, compared value).
    pub changes: Vec<(String, Value, Value)>,
}

/// Raw `execute` statements (other than `INSERT`s) of one shape on one connection, aligned.
#[derive(Debug, Default, Clone, Serialize)]
pub struct StatementDiff {
    /// The connection.
    pub connection: String,
    /// The table the statement writes, when its head names one (`UPDATE t`, `DELETE FROM t`).
    pub table: Option<String>,
    /// The statement's shape: its text normalised, inline literals shown as `{1}`, `{2}`…
    pub shape: String,
    /// Executions both versions made with the same values.
    pub identical: u64,
    /// Executions only the recorded run made.
    pub only_recorded: Vec<Execution>,
    /// Executions only the compared plugin made.
    pub only_compared: Vec<Execution>,
    /// Executions paired across the versions whose values differ.
    pub changed: Vec<ChangedExecution>,
}

/// One execution of a statement shape: which of the shape's executions it was and its values.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    /// Its number among the shape's executions on its side (1 for the first).
    pub occurrence: u64,
    /// Its parameters: bound (`$1`, or `?1` on MySQL and SQLite), then inline literals (`{1}`).
    pub values: Vec<(String, Value)>,
}

/// An execution of a statement shape both versions made, with other values.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedExecution {
    /// Its number among the recorded run's executions of the shape (1 for the first).
    pub occurrence: u64,
    /// Each differing parameter: (its label, recorded value, compared value); a parameter
    /// only one side has is compared with NULL.
    pub changes: Vec<(String, Value, Value)>,
}

impl StatementDiff {
    /// Whether every execution of the shape matched.
    pub fn is_identical(&self) -> bool {
        self.only_recorded.is_empty() && self.only_compared.is_empty() && self.changed.is_empty()
    }
}

/// The per-table difference in writes between the recorded run and another plugin version.
#[derive(Debug, Default, Clone, Serialize)]
pub struct WriteDiff {
    /// Keyed by `connection.table` for inserts; `connection.table (update)`,
    /// `(upsert)` or `(delete)` for bulk writes (with `: c1, c2` after the kind when a
    /// write set other columns than the table's first write of that kind).
    pub tables: BTreeMap<String, TableDiff>,
    /// Raw statements other than `INSERT`s, by connection and shape, in the order first seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<StatementDiff>,
    /// Writes of the compared plugin answered without a recorded result (their count was assumed 0).
    pub unanswered_writes: u64,
}

impl WriteDiff {
    /// Whether both versions wrote exactly the same rows.
    pub fn is_identical(&self) -> bool {
        self.tables.values().all(|t| {
            t.only_recorded.is_empty() && t.only_compared.is_empty() && t.changed.is_empty()
        }) && self.statements.iter().all(StatementDiff::is_identical)
    }
}

/// What one side (the recorded run, or the compared plugin) wrote.
#[derive(Default)]
struct Writes {
    /// Inserted rows per `connection.table`.
    rows: BTreeMap<String, Vec<Vec<Value>>>,
    /// Bulk writes per group (see [`WriteDiff::tables`]).
    keyed: BTreeMap<String, Vec<Vec<Value>>>,
    /// Statements per (connection, shape).
    statements: BTreeMap<(String, String), ShapeRuns>,
}

/// The executions of one statement shape: the table it writes (when its head names one)
/// and each execution's labelled values, in order.
type ShapeRuns = (Option<String>, Vec<Vec<(String, Value)>>);

/// A bulk write group's key and column names.
#[derive(Clone, PartialEq)]
struct KeyedColumns {
    keys: Vec<String>,
    columns: Vec<String>,
}

/// The bulk writes of one connection, table, kind and names, compared together.
struct KeyedGroup {
    /// As [`WriteDiff::tables`] names it.
    name: String,
    /// Connection, table, kind.
    target: (String, String, BulkWriteKind),
    names: KeyedColumns,
}

/// A granted file as the recorded run read it: its `open` answer and the bytes read.
struct RecordedFile {
    /// The recorded `FileOpened` answer (its number is the recorded run's).
    size: u64,
    sha256: String,
    /// The bytes the recorded run read, from the start (the longest read of the file).
    bytes: Vec<u8>,
    /// Whether the recorded run read to the end, so every byte is known.
    complete: bool,
}

/// A file the compared plugin opened: its name and how far it has read.
struct ComparedFile {
    name: String,
    at: usize,
}

/// Answers another plugin version from a journal's recorded reads, collecting its writes.
pub struct Comparison {
    /// Granted files the recorded run opened, by name (contract 0.2.0 `files`).
    files: HashMap<String, RecordedFile>,
    /// The files the compared plugin has open, by the number it was given.
    open_files: HashMap<u64, ComparedFile>,
    next_file: u64,
    reads: HashMap<String, VecDeque<CallResult>>,
    cursors: HashMap<String, VecDeque<u64>>,
    cursor_rows: HashMap<u64, VecDeque<Vec<Value>>>,
    open_cursors: HashMap<u64, (u64, u32)>,
    next_cursor: u64,
    write_results: HashMap<String, VecDeque<CallResult>>,
    recorded: Writes,
    compared: Writes,
    columns: BTreeMap<String, Vec<String>>,
    /// Bulk write groups: their names and columns, in the order first seen.
    keyed_groups: Vec<KeyedGroup>,
    /// The order statement shapes were first seen in (recorded run first).
    shape_order: Vec<(String, String)>,
    /// Each connection's dialect, from the journal's header (for statement shapes).
    dialects: BTreeMap<String, Dialect>,
    unanswered_writes: u64,
    /// The recorded configuration values.
    pub config: Option<Vec<(String, String)>>,
    /// Units the recorded run skipped as already finished.
    pub skipped: std::collections::BTreeSet<String>,
}

fn key<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("calls serialise")
}

fn cursor_key(conn: &str, sql: &str, params: &[Value]) -> String {
    key(&(conn, sql, params))
}

/// The table a write statement targets, from its first keywords (`INSERT INTO t`, `UPDATE t`, `DELETE FROM t`).
fn written_table(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().take(4).collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let name = match upper
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["INSERT", "INTO", ..] | ["REPLACE", "INTO", ..] | ["DELETE", "FROM", ..] => words.get(2),
        ["UPDATE", ..] => words.get(1),
        _ => None,
    }?;
    let name = name.split('(').next().unwrap_or(name);
    let parts: Vec<&str> = name
        .split('.')
        .map(|p| p.trim_matches(|c| c == '"' || c == '`'))
        .collect();
    Some(parts.join("."))
}

/// A recorded cursor id made unique across lanes: lane in the top 16 bits (a session
/// numbers its cursors from 1, far below 2^48).
fn recorded_cursor(lane: u16, cursor: u64) -> u64 {
    (u64::from(lane) << 48) | cursor
}

impl Comparison {
    /// Reads the whole journal into an index of its reads and writes: every lane's (a
    /// `--jobs` run's units ran in several), since the compared plugin runs the units one
    /// after another and a read is matched by what it asks, not by when.
    ///
    /// Memory grows with the journal's reads (a comparison holds them to answer
    /// reads in any order); verify mode streams instead.
    pub fn load(mut reader: JournalReader, header: &Header) -> Result<Comparison, JournalError> {
        let mut cmp = Comparison {
            files: HashMap::new(),
            open_files: HashMap::new(),
            next_file: 1,
            reads: HashMap::new(),
            cursors: HashMap::new(),
            cursor_rows: HashMap::new(),
            open_cursors: HashMap::new(),
            next_cursor: 0,
            write_results: HashMap::new(),
            recorded: Writes::default(),
            compared: Writes::default(),
            columns: BTreeMap::new(),
            keyed_groups: Vec::new(),
            shape_order: Vec::new(),
            dialects: header
                .connections
                .iter()
                .map(|c| (c.name.clone(), c.dialect))
                .collect(),
            unanswered_writes: 0,
            config: None,
            skipped: Default::default(),
        };
        // Each recorded open file (by lane and number): its name and the bytes read from it.
        let mut recorded_files: HashMap<(u16, u64), (String, Vec<u8>, bool)> = HashMap::new();
        while let Some((_, entry)) = reader.next_entry()? {
            // A `--jobs` run's lanes number their cursors each on their own: the recorded
            // ids are told apart by lane (the compared plugin gets ids of its own anyway).
            let lane = reader.lane();
            match entry {
                Entry::Export {
                    export,
                    config: Some(config),
                    ..
                } if export == "configure" => cmp.config = Some(config),
                Entry::UnitSkipped { unit, .. } => {
                    cmp.skipped.insert(unit);
                }
                Entry::Call { call, result } => match &call {
                    HostCall::Open { .. }
                    | HostCall::Query { .. }
                    | HostCall::BackupSnapshot { .. }
                    | HostCall::BackupList
                    | HostCall::BackupVerify { .. }
                    | HostCall::CheckpointLast => {
                        cmp.reads.entry(key(&call)).or_default().push_back(result);
                    }
                    HostCall::OpenCursor {
                        conn, sql, params, ..
                    } => {
                        let mut result = result;
                        if let CallResult::Cursor { cursor, .. } = &mut result {
                            *cursor = recorded_cursor(lane, *cursor);
                            cmp.cursors
                                .entry(cursor_key(conn, sql, params))
                                .or_default()
                                .push_back(*cursor);
                            cmp.cursor_rows.entry(*cursor).or_default();
                        }
                        cmp.reads
                            .entry(format!("cursor-open:{}", cursor_key(conn, sql, params)))
                            .or_default()
                            .push_back(result);
                    }
                    HostCall::NextBatch { cursor } => {
                        if let CallResult::Batch { rows: Some(rows) } = result {
                            cmp.cursor_rows
                                .entry(recorded_cursor(lane, *cursor))
                                .or_default()
                                .extend(rows);
                        }
                    }
                    HostCall::Execute { .. }
                    | HostCall::BulkInsert { .. }
                    | HostCall::BulkWrite { .. } => {
                        cmp.collect_write(true, &call);
                        cmp.write_results
                            .entry(key(&call))
                            .or_default()
                            .push_back(result);
                    }
                    HostCall::FileOpen { name } => match result {
                        CallResult::FileOpened { file, size, sha256 } => {
                            recorded_files.insert((lane, file), (name.clone(), Vec::new(), false));
                            cmp.files.entry(name.clone()).or_insert(RecordedFile {
                                size,
                                sha256,
                                bytes: Vec::new(),
                                complete: false,
                            });
                        }
                        // A refused open is answered as it was recorded.
                        other => cmp.reads.entry(key(&call)).or_default().push_back(other),
                    },
                    HostCall::FileRead { file, .. } => {
                        if let (
                            Some((_, bytes, complete)),
                            CallResult::FileChunk { bytes: chunk },
                        ) = (recorded_files.get_mut(&(lane, *file)), result)
                        {
                            *complete |= chunk.is_empty();
                            bytes.extend_from_slice(&chunk);
                        }
                    }
                    HostCall::FileList { .. } => {
                        cmp.reads.entry(key(&call)).or_default().push_back(result);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        // A file opened several times: the open that read furthest knows the most bytes.
        for (name, bytes, complete) in recorded_files.into_values() {
            if let Some(file) = cmp.files.get_mut(&name)
                && (bytes.len() > file.bytes.len() || (complete && !file.complete))
            {
                file.complete = complete || bytes.len() as u64 == file.size;
                file.bytes = bytes;
            }
        }
        Ok(cmp)
    }

    /// A granted file's call of the compared plugin, answered from what the recorded run
    /// read: the same bytes, in chunks of the size now asked for. A file (or a part of
    /// one) the recorded run never read stops the comparison, naming it.
    fn answer_file(&mut self, call: &HostCall) -> Result<CallResult, TapeError> {
        let not_recorded = |why: String| {
            TapeError::Divergence(ReplayDivergence::NotRecorded {
                call: format!("{} ({why})", call.summary()),
            })
        };
        match call {
            HostCall::FileOpen { name } => {
                if let Some(file) = self.files.get(name) {
                    let id = self.next_file;
                    self.next_file += 1;
                    self.open_files.insert(
                        id,
                        ComparedFile {
                            name: name.clone(),
                            at: 0,
                        },
                    );
                    return Ok(CallResult::FileOpened {
                        file: id,
                        size: file.size,
                        sha256: file.sha256.clone(),
                    });
                }
                self.reads
                    .get(&key(call))
                    .and_then(|q| q.front().cloned())
                    .ok_or_else(|| {
                        not_recorded(format!(
                            "the recorded run never opened `{name}`, so the journal does not hold it"
                        ))
                    })
            }
            HostCall::FileRead { file, max_bytes } => {
                let Some(open) = self.open_files.get_mut(file) else {
                    return Err(not_recorded("no such open file".into()));
                };
                let recorded = &self.files[&open.name];
                let want = (*max_bytes as usize).min(FILE_READ_MAX_BYTES);
                let end = open.at.saturating_add(want);
                if end > recorded.bytes.len() && !recorded.complete {
                    return Err(not_recorded(format!(
                        "the recorded run read only the first {} of the {} bytes of `{}`",
                        recorded.bytes.len(),
                        recorded.size,
                        open.name
                    )));
                }
                let end = end.min(recorded.bytes.len());
                let bytes = recorded.bytes[open.at..end].to_vec();
                open.at = end;
                Ok(CallResult::FileChunk { bytes })
            }
            HostCall::FileClose { file } => {
                self.open_files.remove(file);
                Ok(CallResult::Unit)
            }
            HostCall::FileList { dir } => self
                .reads
                .get(&key(call))
                .and_then(|q| q.front().cloned())
                .ok_or_else(|| not_recorded(format!("the recorded run never listed `{dir}`"))),
            _ => unreachable!("only file calls"),
        }
    }

    /// Answers one call of the compared plugin.
    pub fn answer(&mut self, call: &HostCall) -> Result<CallResult, TapeError> {
        let not_recorded = || {
            TapeError::Divergence(ReplayDivergence::NotRecorded {
                call: call.summary(),
            })
        };
        match call {
            HostCall::Open { .. } | HostCall::Query { .. } => {
                let queue = self.reads.get_mut(&key(call)).ok_or_else(not_recorded)?;
                // The same read made more often than recorded gets the last recorded answer again.
                if queue.len() > 1 {
                    Ok(queue.pop_front().expect("non-empty"))
                } else {
                    queue.front().cloned().ok_or_else(not_recorded)
                }
            }
            HostCall::OpenCursor {
                conn,
                sql,
                params,
                batch_size,
            } => {
                let k = cursor_key(conn, sql, params);
                let recorded = self
                    .reads
                    .get(&format!("cursor-open:{k}"))
                    .and_then(|q| q.front().cloned())
                    .ok_or_else(not_recorded)?;
                let CallResult::Cursor { cursor, columns } = recorded else {
                    return Ok(recorded);
                };
                let v1 = self
                    .cursors
                    .get_mut(&k)
                    .and_then(|q| {
                        if q.len() > 1 {
                            q.pop_front()
                        } else {
                            q.front().copied()
                        }
                    })
                    .unwrap_or(cursor);
                let id = self.next_cursor;
                self.next_cursor += 1;
                self.open_cursors.insert(id, (v1, (*batch_size).max(1)));
                Ok(CallResult::Cursor {
                    cursor: id,
                    columns,
                })
            }
            HostCall::NextBatch { cursor } => {
                let Some((v1, batch)) = self.open_cursors.get(cursor).copied() else {
                    return Ok(CallResult::Batch { rows: None });
                };
                let rows = self.cursor_rows.entry(v1).or_default();
                if rows.is_empty() {
                    self.open_cursors.remove(cursor);
                    return Ok(CallResult::Batch { rows: None });
                }
                let take = rows.len().min(batch as usize);
                Ok(CallResult::Batch {
                    rows: Some(rows.drain(..take).collect()),
                })
            }
            HostCall::CloseCursor { cursor } => {
                self.open_cursors.remove(cursor);
                Ok(CallResult::Unit)
            }
            HostCall::Execute { .. } | HostCall::BulkInsert { .. } | HostCall::BulkWrite { .. } => {
                self.collect_write(false, call);
                if let Some(result) = self
                    .write_results
                    .get_mut(&key(call))
                    .and_then(VecDeque::pop_front)
                {
                    return Ok(result);
                }
                match call {
                    // Every row inserted; every key matched one row (the best guess without
                    // the database).
                    HostCall::BulkInsert { rows, .. } | HostCall::BulkWrite { rows, .. } => {
                        Ok(CallResult::Count {
                            n: rows.len() as u64,
                        })
                    }
                    _ => {
                        self.unanswered_writes += 1;
                        Ok(CallResult::Count { n: 0 })
                    }
                }
            }
            HostCall::FileOpen { .. }
            | HostCall::FileRead { .. }
            | HostCall::FileClose { .. }
            | HostCall::FileList { .. } => self.answer_file(call),
            HostCall::Log { .. }
            | HostCall::Progress { .. }
            | HostCall::Check { .. }
            | HostCall::CheckpointSave { .. } => Ok(CallResult::Unit),
            // What the recorded run was answered, when it asked the same; a comparison
            // itself takes no backups and starts no unit from a checkpoint.
            HostCall::BackupSnapshot { .. }
            | HostCall::BackupList
            | HostCall::BackupVerify { .. }
            | HostCall::CheckpointLast => {
                let recorded = self.reads.get_mut(&key(call)).and_then(|q| {
                    if q.len() > 1 {
                        q.pop_front()
                    } else {
                        q.front().cloned()
                    }
                });
                Ok(recorded.unwrap_or_else(|| match call {
                    HostCall::CheckpointLast => CallResult::Checkpoint { state: None },
                    _ => CallResult::BackupError {
                        error_kind: "disabled".into(),
                        message: "a replay comparison takes no backups".into(),
                    },
                }))
            }
        }
    }

    /// Files one write of the recorded run (`recorded`) or of the compared plugin.
    fn collect_write(&mut self, recorded: bool, call: &HostCall) {
        match call {
            HostCall::BulkInsert {
                conn,
                table,
                columns,
                rows,
            } => {
                let name = format!("{conn}.{table}");
                self.columns.insert(name.clone(), columns.clone());
                self.side(recorded)
                    .rows
                    .entry(name)
                    .or_default()
                    .extend(rows.iter().cloned());
            }
            HostCall::BulkWrite {
                conn,
                kind,
                table,
                keys,
                columns,
                rows,
            } => {
                let group = self.keyed_group(conn, *kind, table, keys, columns);
                self.side(recorded)
                    .keyed
                    .entry(group)
                    .or_default()
                    .extend(rows.iter().cloned());
            }
            HostCall::Execute { conn, sql, params } => {
                let table = written_table(sql);
                if let Some(table) = &table
                    && sql.trim_start().to_ascii_uppercase().starts_with("INSERT")
                {
                    self.side(recorded)
                        .rows
                        .entry(format!("{conn}.{table}"))
                        .or_default()
                        .push(params.clone());
                    return;
                }
                let dialect = self
                    .dialects
                    .get(conn)
                    .copied()
                    .unwrap_or(Dialect::Postgres);
                let Shaped { shape, values } = shape(sql, dialect, params);
                let id = (conn.clone(), shape);
                if !self.shape_order.contains(&id) {
                    self.shape_order.push(id.clone());
                }
                self.side(recorded)
                    .statements
                    .entry(id)
                    .or_insert_with(|| (table, Vec::new()))
                    .1
                    .push(values);
            }
            _ => {}
        }
    }

    fn side(&mut self, recorded: bool) -> &mut Writes {
        if recorded {
            &mut self.recorded
        } else {
            &mut self.compared
        }
    }

    /// The name of the bulk write group of these names, registered when new.
    fn keyed_group(
        &mut self,
        conn: &str,
        kind: BulkWriteKind,
        table: &str,
        keys: &[String],
        columns: &[String],
    ) -> String {
        let wanted = KeyedColumns {
            keys: keys.to_vec(),
            columns: columns.to_vec(),
        };
        let target = (conn.to_owned(), table.to_owned(), kind);
        let mut same_target = self.keyed_groups.iter().filter(|g| g.target == target);
        if let Some(group) = same_target.clone().find(|g| g.names == wanted) {
            return group.name.clone();
        }
        // The first column set of a table and kind names the group plainly.
        let name = if same_target.next().is_some() {
            format!("{conn}.{table} ({kind}: {})", columns.join(", "))
        } else {
            format!("{conn}.{table} ({kind})")
        };
        self.keyed_groups.push(KeyedGroup {
            name: name.clone(),
            target,
            names: wanted,
        });
        name
    }

    /// The difference between the recorded writes and the compared plugin's.
    pub fn diff(&self) -> WriteDiff {
        let mut diff = WriteDiff {
            unanswered_writes: self.unanswered_writes,
            ..WriteDiff::default()
        };
        let tables: std::collections::BTreeSet<&String> = self
            .recorded
            .rows
            .keys()
            .chain(self.compared.rows.keys())
            .collect();
        for table in tables {
            let recorded = self
                .recorded
                .rows
                .get(table)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let compared = self
                .compared
                .rows
                .get(table)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let columns = self.columns.get(table).cloned().unwrap_or_default();
            diff.tables
                .insert(table.clone(), row_diff(columns, recorded, compared));
        }
        for KeyedGroup {
            name: group, names, ..
        } in &self.keyed_groups
        {
            let recorded = self
                .recorded
                .keyed
                .get(group)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let compared = self
                .compared
                .keyed
                .get(group)
                .map(Vec::as_slice)
                .unwrap_or_default();
            diff.tables
                .insert(group.clone(), keyed_diff(names, recorded, compared));
        }
        for id in &self.shape_order {
            let (recorded_table, recorded) = self
                .recorded
                .statements
                .get(id)
                .map(|(t, runs)| (t.clone(), runs.as_slice()))
                .unwrap_or_default();
            let (compared_table, compared) = self
                .compared
                .statements
                .get(id)
                .map(|(t, runs)| (t.clone(), runs.as_slice()))
                .unwrap_or_default();
            let mut statement = statement_diff(recorded, compared);
            statement.connection = id.0.clone();
            statement.shape = id.1.clone();
            statement.table = recorded_table.or(compared_table);
            diff.statements.push(statement);
        }
        diff
    }
}

/// Inserted rows compared: identical rows matched in any order; of the rest, rows with the
/// same first value are changed, the others written by one side only.
fn row_diff(columns: Vec<String>, recorded: &[Vec<Value>], compared: &[Vec<Value>]) -> TableDiff {
    let mut remaining: HashMap<String, Vec<&Vec<Value>>> = HashMap::new();
    for row in compared {
        remaining.entry(key(row)).or_default().push(row);
    }
    let mut t = TableDiff {
        columns,
        ..TableDiff::default()
    };
    for row in recorded {
        match remaining.get_mut(&key(row)).and_then(Vec::pop) {
            Some(_) => t.identical += 1,
            None => t.only_recorded.push(row.clone()),
        }
    }
    // Preserve the compared plugin's order for what it alone wrote.
    let mut leftover: HashMap<String, usize> = remaining
        .iter()
        .map(|(k, v)| (k.clone(), v.len()))
        .collect();
    for row in compared {
        if let Some(n) = leftover.get_mut(&key(row))
            && *n > 0
        {
            *n -= 1;
            t.only_compared.push(row.clone());
        }
    }
    // Same first value on both sides: a changed row rather than a removal and an addition.
    let mut still_recorded = Vec::new();
    for row in std::mem::take(&mut t.only_recorded) {
        let first = row.first().map(key);
        match t
            .only_compared
            .iter()
            .position(|c| first.is_some() && c.first().map(key) == first)
        {
            Some(pos) => {
                let other = t.only_compared.remove(pos);
                let changes = row
                    .iter()
                    .zip(&other)
                    .enumerate()
                    .filter(|(_, (a, b))| key(a) != key(b))
                    .map(|(i, (a, b))| {
                        let name = t
                            .columns
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("#{}", i + 1));
                        (name, a.clone(), b.clone())
                    })
                    .collect();
                t.changed.push(ChangedRow {
                    key: row[0].clone(),
                    key_values: Vec::new(),
                    changes,
                });
            }
            None => still_recorded.push(row),
        }
    }
    t.only_recorded = still_recorded;
    t
}

/// Bulk writes compared by key: the n-th write of a key on one side with the n-th on the
/// other (identical, or changed column by column); writes of a key only one side made
/// are `only_recorded` / `only_compared`, in each side's order.
fn keyed_diff(names: &KeyedColumns, recorded: &[Vec<Value>], compared: &[Vec<Value>]) -> TableDiff {
    let width = names.keys.len();
    let key_of = |row: &Vec<Value>| key(&row[..width.min(row.len())]);
    let mut waiting: HashMap<String, VecDeque<&Vec<Value>>> = HashMap::new();
    for row in compared {
        waiting.entry(key_of(row)).or_default().push_back(row);
    }
    let mut t = TableDiff {
        columns: names.keys.iter().chain(&names.columns).cloned().collect(),
        keys: names.keys.clone(),
        ..TableDiff::default()
    };
    let mut paired: HashMap<String, usize> = HashMap::new();
    for row in recorded {
        let k = key_of(row);
        let Some(other) = waiting.get_mut(&k).and_then(VecDeque::pop_front) else {
            t.only_recorded.push(row.clone());
            continue;
        };
        *paired.entry(k).or_default() += 1;
        if key(row) == key(other) {
            t.identical += 1;
            continue;
        }
        let changes = row
            .iter()
            .zip(other.iter())
            .enumerate()
            .skip(width)
            .filter(|(_, (a, b))| key(a) != key(b))
            .map(|(i, (a, b))| (t.columns[i].clone(), a.clone(), b.clone()))
            .collect();
        t.changed.push(ChangedRow {
            key: row.first().cloned().unwrap_or(Value::Null),
            key_values: names
                .keys
                .iter()
                .cloned()
                .zip(row.iter().cloned())
                .collect(),
            changes,
        });
    }
    // What the compared plugin alone wrote, in its order.
    for row in compared {
        let k = key_of(row);
        match paired.get_mut(&k) {
            Some(n) if *n > 0 => *n -= 1,
            _ => t.only_compared.push(row.clone()),
        }
    }
    t
}

/// One statement shape's executions compared: executions with the same values are matched
/// in any order; the rest are paired in order (changed), the surplus of one side is its own.
fn statement_diff(
    recorded: &[Vec<(String, Value)>],
    compared: &[Vec<(String, Value)>],
) -> StatementDiff {
    let mut t = StatementDiff::default();
    let mut waiting: HashMap<String, VecDeque<usize>> = HashMap::new();
    for (i, run) in compared.iter().enumerate() {
        waiting.entry(key(run)).or_default().push_back(i);
    }
    let mut matched = vec![false; compared.len()];
    let mut unmatched_recorded = Vec::new();
    for (i, run) in recorded.iter().enumerate() {
        match waiting.get_mut(&key(run)).and_then(VecDeque::pop_front) {
            Some(j) => {
                matched[j] = true;
                t.identical += 1;
            }
            None => unmatched_recorded.push(i),
        }
    }
    let unmatched_compared: Vec<usize> = (0..compared.len()).filter(|&j| !matched[j]).collect();
    for (&i, &j) in unmatched_recorded.iter().zip(&unmatched_compared) {
        let (a, b) = (&recorded[i], &compared[j]);
        let mut changes = Vec::new();
        for n in 0..a.len().max(b.len()) {
            let label = a
                .get(n)
                .or(b.get(n))
                .map(|(l, _)| l.clone())
                .unwrap_or_default();
            let old = a.get(n).map_or(Value::Null, |(_, v)| v.clone());
            let new = b.get(n).map_or(Value::Null, |(_, v)| v.clone());
            if key(&old) != key(&new) || a.get(n).map(|x| &x.0) != b.get(n).map(|x| &x.0) {
                changes.push((label, old, new));
            }
        }
        t.changed.push(ChangedExecution {
            occurrence: i as u64 + 1,
            changes,
        });
    }
    let paired = unmatched_recorded.len().min(unmatched_compared.len());
    t.only_recorded = unmatched_recorded[paired..]
        .iter()
        .map(|&i| Execution {
            occurrence: i as u64 + 1,
            values: recorded[i].clone(),
        })
        .collect();
    t.only_compared = unmatched_compared[paired..]
        .iter()
        .map(|&j| Execution {
            occurrence: j as u64 + 1,
            values: compared[j].clone(),
        })
        .collect();
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrun_journal::{FORMAT, Header, JournalWriter, SandboxSeeds};

    /// A journal of a run that read `big` (10 bytes) only up to byte 8, `small` to its
    /// end in one chunk, and was refused `../x`.
    fn recorded_files(dir: &std::path::Path) -> Comparison {
        let path = dir.join("files.journal");
        let mut w = JournalWriter::create(&path).unwrap();
        w.append(&Entry::Header(Header {
            format: FORMAT.to_owned(),
            migrun_version: "test".into(),
            contract_version: "0.2.0".into(),
            plugin_sha256: "00".repeat(32),
            plugin_name: "p".into(),
            plugin_version: "1".into(),
            run_id: "run-1".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            dry_run: false,
            only: None,
            shard: None,
            jobs: None,
            seeds: SandboxSeeds {
                clock_start_unix_nanos: 0,
                random_seed: 1,
            },
            connections: Vec::new(),
            limits: migrun_config::Limits::default(),
            files_dir: Some("mappings".into()),
            keep_going: false,
        }))
        .unwrap();
        let call = |call, result| Entry::Call { call, result };
        let open = |name: &str| HostCall::FileOpen { name: name.into() };
        let read = |file, max_bytes| HostCall::FileRead { file, max_bytes };
        let chunk = |bytes: &[u8]| CallResult::FileChunk {
            bytes: bytes.to_vec(),
        };
        for entry in [
            call(
                open("big"),
                CallResult::FileOpened {
                    file: 1,
                    size: 10,
                    sha256: "b".repeat(64),
                },
            ),
            call(read(1, 4), chunk(b"0123")),
            call(read(1, 4), chunk(b"4567")),
            call(
                open("small"),
                CallResult::FileOpened {
                    file: 2,
                    size: 3,
                    sha256: "s".repeat(64),
                },
            ),
            call(read(2, 100), chunk(b"abc")),
            call(read(2, 100), chunk(b"")),
            call(
                open("../x"),
                CallResult::FileError {
                    error_kind: "escape".into(),
                    message: "refused".into(),
                },
            ),
        ] {
            w.append(&entry).unwrap();
        }
        w.finish().unwrap();
        let (reader, header) = JournalReader::open(&path).unwrap();
        Comparison::load(reader, &header).unwrap()
    }

    /// `file.read` on the comparison: the bytes, or the error's message.
    fn read(cmp: &mut Comparison, file: u64, max_bytes: u32) -> Result<Vec<u8>, String> {
        match cmp.answer(&HostCall::FileRead { file, max_bytes }) {
            Ok(CallResult::FileChunk { bytes }) => Ok(bytes),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `files.open` on the comparison: the file's number and size.
    fn open(cmp: &mut Comparison, name: &str) -> (u64, u64) {
        match cmp.answer(&HostCall::FileOpen { name: name.into() }) {
            Ok(CallResult::FileOpened { file, size, .. }) => (file, size),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn granted_files_are_served_from_the_recorded_bytes_in_any_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmp = recorded_files(dir.path());
        let (small, size) = open(&mut cmp, "small");
        assert_eq!(size, 3);
        assert_eq!(read(&mut cmp, small, 2).unwrap(), b"ab");
        assert_eq!(read(&mut cmp, small, 2).unwrap(), b"c");
        assert_eq!(read(&mut cmp, small, 2).unwrap(), b"");

        // Only what the recording read of `big` can be served.
        let (big, _) = open(&mut cmp, "big");
        assert_eq!(read(&mut cmp, big, 8).unwrap(), b"01234567");
        let beyond = read(&mut cmp, big, 1).unwrap_err();
        assert!(
            beyond.contains("the recorded run read only the first 8 of the 10 bytes of `big`"),
            "{beyond}"
        );

        // A refusal is answered as recorded; a file never opened stops the comparison.
        assert!(matches!(
            cmp.answer(&HostCall::FileOpen { name: "../x".into() }),
            Ok(CallResult::FileError { error_kind, .. }) if error_kind == "escape"
        ));
        let never = cmp
            .answer(&HostCall::FileOpen {
                name: "other.toml".into(),
            })
            .unwrap_err()
            .to_string();
        assert!(
            never.contains("the recorded run never opened `other.toml`"),
            "{never}"
        );
    }

    #[test]
    fn written_table_reads_the_statement_head() {
        assert_eq!(
            written_table("INSERT INTO auth_users (id) VALUES ($1)").as_deref(),
            Some("auth_users")
        );
        assert_eq!(
            written_table("insert into \"s\".t(id) values (?)").as_deref(),
            Some("s.t")
        );
        assert_eq!(
            written_table("UPDATE `users` SET a = 1").as_deref(),
            Some("users")
        );
        assert_eq!(
            written_table("DELETE FROM x WHERE id = 1").as_deref(),
            Some("x")
        );
        assert_eq!(written_table("CREATE TABLE x (id int)"), None);
    }
}
