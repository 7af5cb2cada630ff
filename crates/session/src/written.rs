//! What a unit wrote, row by row, as digests that do not depend on order: the record a
//! dry-run's plan keeps per unit and a `--plan` run compares before each commit.
//!
//! [`WrittenRows`] accumulates one *segment* of a unit — its writes from its start (or its
//! last checkpoint) to its commit (or its next checkpoint) — per connection, table, write
//! path (`bulk`: the structured calls; `statement`: `execute` and writes returning rows) and
//! operation (`insert`, `update`, `delete`, `upsert`), plus the unit's DDL in order:
//!
//! - `bulk-insert`: one row hashed per row written: table, column names and values;
//! - `bulk-update` / `bulk-upsert` / `bulk-delete`: one row hashed per row given: table,
//!   key and column names, key values then values;
//! - `execute` (and `query`/`open-cursor` of a write): one "row" hashed per statement: the
//!   statement text as sent and its parameters; its count is the rows the database said
//!   the statement affected (or the rows a `RETURNING` write returned);
//! - a write inside a data-modifying CTE is hashed with its statement under `uncounted`;
//! - DDL statements are kept as text, in order (they are not rows).
//!
//! Each row's sha256 is added into a 256-bit sum (wrapping), so the digest is the same
//! whatever order the rows came in, and a row written twice counts twice. Values the
//! database makes itself (sequence or AUTO_INCREMENT ids, defaults, trigger writes, `now()`
//! evaluated on the server) are not in any call's arguments and so not in any digest; a
//! statement's text and parameters are, and its affected count is compared beside them.
//!
//! Failed calls changed nothing and are left out; so are read-only connections.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use migrun_db::Dialect;
use migrun_db::ledger::UnitKey;
use migrun_journal::{CallResult, HostCall};
use migrun_sql::classify::{Effect, WriteOp, classify};
use migrun_types::BulkWriteKind;
use migrun_types::value::Value;

/// Receives each segment of a unit's writes before it commits: a dry-run keeps it in its
/// plan, a `--plan` run compares it with the plan's (and refuses it when they differ).
pub trait SegmentGate: Send {
    /// `unit` starts; `resumed_from` is the state of the checkpoint it resumes from.
    fn unit_started(&mut self, unit: &UnitKey, resumed_from: Option<&str>);

    /// The segment of `unit` ending at the checkpoint saving `checkpoint` (`None`: at the
    /// unit's end) is about to commit. `Err`: it must not; the message says why.
    fn segment_ended(
        &mut self,
        unit: &UnitKey,
        checkpoint: Option<&str>,
        writes: WrittenRows,
    ) -> Result<(), String>;
}

/// Rows of one table, path and operation kept with their hashes (and text) for showing a
/// difference; beyond this only the count and the digest are kept.
pub const ROWS_KEPT: usize = 10_000;

/// One segment of a unit's writes (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenRows {
    /// Per connection, table, path and operation; sorted.
    pub tables: Vec<TableWrites>,
    /// The DDL statements, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ddl: Vec<DdlWritten>,
}

/// One DDL statement of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdlWritten {
    /// The connection.
    pub connection: String,
    /// The statement as sent (trimmed).
    pub statement: String,
}

/// The rows written to one table through one path with one operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableWrites {
    /// The connection.
    pub connection: String,
    /// The table as the calls name it (folded to lowercase except on PostgreSQL).
    pub table: String,
    /// `bulk` (the `bulk-*` calls) or `statement` (`execute`, writes returning rows).
    pub via: String,
    /// `insert`, `update`, `delete`, `upsert`, or `uncounted` (writes of a data-modifying CTE,
    /// writes whose rows the database did not count).
    pub op: String,
    /// Rows: given to a bulk call, or counted by the database for statements.
    pub rows: u64,
    /// Calls (statements or bulk calls).
    pub calls: u64,
    /// The order-independent digest: the 256-bit sum of every hashed row's sha256, as hex.
    pub digest: String,
    /// Each hashed row's sha256 (its first 16 hex digits), sorted; absent above [`ROWS_KEPT`]
    /// hashed rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_hashes: Option<Vec<String>>,
    /// Each hashed row as text, by its hash prefix (up to [`ROWS_KEPT`]): what a difference
    /// shows. Not serialized: a plan holds hashes only.
    #[serde(skip)]
    pub row_texts: BTreeMap<String, String>,
}

/// Accumulates a segment: fed every live call and its result.
#[derive(Debug, Default)]
pub struct WriteDigester {
    entries: BTreeMap<(String, String, &'static str, &'static str), Entry>,
    ddl: Vec<DdlWritten>,
    /// Cursors over writes with `RETURNING`: their batches add rows to the statement's entry.
    cursors: BTreeMap<u64, (String, String, &'static str)>,
}

#[derive(Debug, Default)]
struct Entry {
    rows: u64,
    calls: u64,
    sum: [u64; 4],
    hashed: u64,
    kept: Vec<(String, String)>,
}

impl Entry {
    fn add_row(&mut self, hash: [u8; 32], text: impl FnOnce() -> String) {
        add_into(&mut self.sum, &hash);
        self.hashed += 1;
        if self.kept.len() < ROWS_KEPT {
            self.kept.push((hex::encode(&hash[..8]), text()));
        }
    }
}

/// Adds `hash` (big-endian) into the 256-bit `sum`, wrapping.
fn add_into(sum: &mut [u64; 4], hash: &[u8; 32]) {
    let mut carry = 0u128;
    for i in (0..4).rev() {
        let limb = u64::from_be_bytes(hash[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let total = sum[i] as u128 + limb as u128 + carry;
        sum[i] = total as u64;
        carry = total >> 64;
    }
}

fn op_name(op: WriteOp) -> &'static str {
    match op {
        WriteOp::Insert => "insert",
        WriteOp::Update => "update",
        WriteOp::Delete => "delete",
        WriteOp::Upsert => "upsert",
    }
}

/// The table's name as a key: PostgreSQL's are folded already, elsewhere ASCII case does not matter.
fn table_key(dialect: Dialect, table: &str) -> String {
    if dialect == Dialect::Postgres {
        table.to_owned()
    } else {
        table.to_ascii_lowercase()
    }
}

fn values_json(values: &[Value]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| format!("{values:?}"))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_owned(),
        Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Decimal(_) => {
            v.canonical_text().unwrap_or_else(|| format!("{v:?}"))
        }
        other => other
            .canonical_text()
            .map(|t| {
                if t.len() > 80 {
                    let mut end = 80;
                    while !t.is_char_boundary(end) {
                        end -= 1;
                    }
                    format!("{:?}…", &t[..end])
                } else {
                    format!("{t:?}")
                }
            })
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// `name=value, …` for a row of `columns`.
fn row_text(columns: &[String], row: &[Value]) -> String {
    columns
        .iter()
        .zip(row)
        .map(|(c, v)| format!("{c}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn hash_parts(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

impl WriteDigester {
    /// Takes one live call on the writable connection `conn` (of `dialect`) and its result
    /// into account.
    pub fn observe(&mut self, dialect: Dialect, call: &HostCall, result: &CallResult) {
        match (call, result) {
            (HostCall::Execute { conn, sql, params }, CallResult::Count { n }) => {
                self.statement(dialect, conn, sql, params, Some(*n), false);
            }
            (HostCall::Query { conn, sql, params }, CallResult::Rows { rows, .. }) => {
                self.statement(dialect, conn, sql, params, Some(rows.len() as u64), true);
            }
            (
                HostCall::OpenCursor {
                    conn, sql, params, ..
                },
                CallResult::Cursor { cursor, .. },
            ) => {
                if let Some((table, op)) = self.statement(dialect, conn, sql, params, None, true) {
                    self.cursors.insert(*cursor, (conn.clone(), table, op));
                }
            }
            (HostCall::NextBatch { cursor }, CallResult::Batch { rows }) => match rows {
                Some(rows) => {
                    if let Some((conn, table, op)) = self.cursors.get(cursor).cloned() {
                        self.entry(&conn, &table, "statement", op).rows += rows.len() as u64;
                    }
                }
                None => {
                    self.cursors.remove(cursor);
                }
            },
            (HostCall::CloseCursor { cursor }, _) => {
                self.cursors.remove(cursor);
            }
            (
                HostCall::BulkInsert {
                    conn,
                    table,
                    columns,
                    rows,
                },
                CallResult::Count { n },
            ) => {
                let key = table_key(dialect, table);
                let cols = columns.join("\u{1f}");
                let entry = self.entry(conn, &key, "bulk", "insert");
                entry.calls += 1;
                entry.rows += n;
                for row in rows {
                    let hash = hash_parts(&["bulk-insert", &key, &cols, &values_json(row)]);
                    entry.add_row(hash, || row_text(columns, row));
                }
            }
            (
                HostCall::BulkWrite {
                    conn,
                    kind,
                    table,
                    keys,
                    columns,
                    rows,
                },
                CallResult::Count { n },
            ) => {
                let key = table_key(dialect, table);
                let op = match kind {
                    BulkWriteKind::Update => "update",
                    BulkWriteKind::Upsert => "upsert",
                    BulkWriteKind::Delete => "delete",
                };
                let names: Vec<String> = keys.iter().chain(columns).cloned().collect();
                let cols = format!("{}\u{1e}{}", keys.join("\u{1f}"), columns.join("\u{1f}"));
                let entry = self.entry(conn, &key, "bulk", op);
                entry.calls += 1;
                entry.rows += n;
                for row in rows {
                    let hash = hash_parts(&[kind.call_name(), &key, &cols, &values_json(row)]);
                    entry.add_row(hash, || row_text(&names, row));
                }
            }
            _ => {}
        }
    }

    /// Records a statement; returns the table and operation of a write whose rows a cursor
    /// returns (its batches count them).
    fn statement(
        &mut self,
        dialect: Dialect,
        conn: &str,
        sql: &str,
        params: &[Value],
        count: Option<u64>,
        returns_rows: bool,
    ) -> Option<(String, &'static str)> {
        let classified = classify(dialect, sql);
        let text = sql.trim();
        let params_json = values_json(params);
        let shown = || {
            if params.is_empty() {
                text.to_owned()
            } else {
                let p: Vec<String> = params.iter().map(value_text).collect();
                format!("{text} [{}]", p.join(", "))
            }
        };
        for (_, table) in &classified.side_writes {
            let key = table_key(dialect, table);
            let entry = self.entry(conn, &key, "statement", "uncounted");
            entry.calls += 1;
            entry.add_row(hash_parts(&["statement", text, &params_json]), shown);
        }
        match classified.effect {
            Effect::Write { op, table } => {
                let key = table_key(dialect, &table);
                let counted = !returns_rows || classified.returning;
                let op = if counted { op_name(op) } else { "uncounted" };
                let entry = self.entry(conn, &key, "statement", op);
                entry.calls += 1;
                entry.add_row(hash_parts(&["statement", text, &params_json]), shown);
                match count {
                    Some(n) if counted => entry.rows += n,
                    None if counted => return Some((key, op)),
                    _ => {}
                }
                None
            }
            Effect::Ddl(ddl) => {
                self.ddl.push(DdlWritten {
                    connection: conn.to_owned(),
                    statement: text.to_owned(),
                });
                if ddl.fills
                    && let Some(table) = &ddl.table
                {
                    let key = table_key(dialect, table);
                    let entry = self.entry(conn, &key, "statement", "insert");
                    entry.calls += 1;
                    entry.add_row(hash_parts(&["statement", text, &params_json]), shown);
                    if let (Some(n), false) = (count, returns_rows) {
                        entry.rows += n;
                    }
                }
                None
            }
            Effect::Read | Effect::Other => None,
        }
    }

    fn entry(
        &mut self,
        conn: &str,
        table: &str,
        via: &'static str,
        op: &'static str,
    ) -> &mut Entry {
        self.entries
            .entry((conn.to_owned(), table.to_owned(), via, op))
            .or_default()
    }

    /// Whether nothing was written since the last [`take`](Self::take).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.ddl.is_empty()
    }

    /// The segment so far, starting a new one.
    pub fn take(&mut self) -> WrittenRows {
        self.cursors.clear();
        let entries = std::mem::take(&mut self.entries);
        let tables = entries
            .into_iter()
            .map(|((connection, table, via, op), entry)| {
                let mut digest = Vec::with_capacity(32);
                for limb in entry.sum {
                    digest.extend_from_slice(&limb.to_be_bytes());
                }
                let complete = entry.hashed as usize == entry.kept.len();
                let mut hashes: Vec<String> = entry.kept.iter().map(|(h, _)| h.clone()).collect();
                hashes.sort();
                TableWrites {
                    connection,
                    table,
                    via: via.to_owned(),
                    op: op.to_owned(),
                    rows: entry.rows,
                    calls: entry.calls,
                    digest: hex::encode(digest),
                    row_hashes: complete.then_some(hashes),
                    row_texts: entry.kept.into_iter().collect(),
                }
            })
            .collect();
        WrittenRows {
            tables,
            ddl: std::mem::take(&mut self.ddl),
        }
    }
}

impl WrittenRows {
    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.ddl.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(rows: Vec<Vec<Value>>) -> HostCall {
        HostCall::BulkInsert {
            conn: "target".into(),
            table: "T".into(),
            columns: vec!["id".into(), "name".into()],
            rows,
        }
    }

    fn row(id: i64, name: &str) -> Vec<Value> {
        vec![Value::Int(id), Value::Text(name.into())]
    }

    #[test]
    fn digests_do_not_depend_on_order_and_see_every_value() {
        let digest = |batches: Vec<Vec<Vec<Value>>>| {
            let mut d = WriteDigester::default();
            for rows in batches {
                let n = rows.len() as u64;
                d.observe(Dialect::Sqlite, &bulk(rows), &CallResult::Count { n });
            }
            d.take()
        };
        let a = digest(vec![vec![row(1, "a"), row(2, "b")], vec![row(3, "c")]]);
        let b = digest(vec![vec![row(3, "c")], vec![row(2, "b"), row(1, "a")]]);
        assert_eq!(a.tables[0].digest, b.tables[0].digest);
        assert_eq!(a.tables[0].rows, 3);
        assert_eq!(a.tables[0].table, "t", "folded outside PostgreSQL");
        let changed = digest(vec![vec![row(1, "a"), row(2, "B"), row(3, "c")]]);
        assert_ne!(a.tables[0].digest, changed.tables[0].digest);
        // A row written twice is not a row written once.
        let twice = digest(vec![vec![row(1, "a"), row(1, "a")]]);
        let once = digest(vec![vec![row(1, "a")]]);
        assert_ne!(twice.tables[0].digest, once.tables[0].digest);
        assert_eq!(a.tables[0].row_hashes.as_ref().unwrap().len(), 3);
    }

    #[test]
    fn statements_hash_text_and_parameters_and_keep_ddl() {
        let mut d = WriteDigester::default();
        let exec = |sql: &str, p: i64| HostCall::Execute {
            conn: "target".into(),
            sql: sql.into(),
            params: vec![Value::Int(p)],
        };
        d.observe(
            Dialect::Postgres,
            &exec("CREATE TABLE x (a int)", 0),
            &CallResult::Count { n: 0 },
        );
        d.observe(
            Dialect::Postgres,
            &exec("UPDATE x SET a = $1", 1),
            &CallResult::Count { n: 4 },
        );
        d.observe(
            Dialect::Postgres,
            &exec("DELETE FROM x WHERE a = $1", 2),
            &CallResult::Error {
                error_kind: "other".into(),
                code: None,
                message: "no".into(),
            },
        );
        let w = d.take();
        assert_eq!(w.ddl.len(), 1);
        assert_eq!(w.tables.len(), 1);
        let t = &w.tables[0];
        assert_eq!(
            (t.op.as_str(), t.via.as_str(), t.rows, t.calls),
            ("update", "statement", 4, 1)
        );
        assert!(d.is_empty(), "taking starts a new segment");
    }
}
