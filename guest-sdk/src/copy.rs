//! Copying a query's rows into a table, batch by batch, resumable after a crash.
//!
//! A [`TableCopy`] reads `source` in key order with **one keyset query per batch** — no
//! cursor stays open — maps each row through the plugin's closure, writes the batch into
//! the target table with one bulk insert (or upsert), then saves a checkpoint holding the
//! last key. The checkpoint commits the batch and the position together; when the unit
//! runs again after an interruption, the copy reads the position back and continues after
//! that key. Because every batch is a query of its own, checkpoints are allowed on every
//! dialect (a checkpoint ends the open transactions, which would end a cursor).
//!
//! Each batch is
//!
//! ```text
//! SELECT * FROM (<select>) AS migrun_src WHERE (<key>) > (<last key>) ORDER BY <key> LIMIT <batch>
//! ```
//!
//! (the first without the `WHERE`), and each checkpoint's state is the JSON
//! `{"copy":"<name>","last_key":[…],"copied":<rows written so far>}` — the same in the
//! Rust, Python and JavaScript SDKs.

use std::rc::Rc;
use std::time::Duration;

use crate::{Column, Connection, Error, Result, Row, Value, checkpoint};

/// What a finished [`TableCopy`] did in this run, and in total.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyReport {
    /// Source rows read in this run.
    pub read: u64,
    /// Rows written into the target in this run (inserted, or upserted).
    pub written: u64,
    /// Source rows the mapping skipped (returned `None`) in this run.
    pub skipped: u64,
    /// Batches read in this run.
    pub batches: u64,
    /// Rows written over the whole copy, earlier interrupted runs included.
    pub copied: u64,
    /// The key this run resumed after, when an earlier run of the unit was interrupted.
    pub resumed_after: Option<Vec<Value>>,
}

/// A resumable copy of a query's rows into a table, in keyset-ordered batches.
///
/// ```no_run
/// use migrun_sdk::{Connection, TableCopy};
///
/// # fn main() -> migrun_sdk::Result<()> {
/// let (source, target) = (Connection::open("source")?, Connection::open("target")?);
/// let report = TableCopy::new(&source, &target, "customers")
///     .select("SELECT id, name, email FROM customers")
///     .key(["id"])
///     .batch_size(500)
///     .run(|mut row| {
///         let email: Option<String> = row.get("email")?;
///         row.set("email", email.map(|e| e.to_lowercase()));
///         Ok(Some(row)) // `Ok(None)` skips the row
///     })?;
/// migrun_sdk::info!(written = report.written; "copied");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TableCopy<'c> {
    source: &'c Connection,
    target: &'c Connection,
    into: String,
    select: Option<String>,
    params: Vec<Value>,
    key: Vec<String>,
    batch_size: u32,
    upsert: bool,
    name: Option<String>,
    pause: Duration,
    fail_after: Option<u64>,
}

impl<'c> TableCopy<'c> {
    /// A copy into `into` (a table of `target`, optionally `schema.table`) of the rows of
    /// the same-named table of `source`, keyed by that table's primary key, in batches of
    /// 1000 rows. [`select`](Self::select) and [`key`](Self::key) choose other rows.
    pub fn new(source: &'c Connection, target: &'c Connection, into: &str) -> TableCopy<'c> {
        TableCopy {
            source,
            target,
            into: into.to_owned(),
            select: None,
            params: Vec::new(),
            key: Vec::new(),
            batch_size: 1000,
            upsert: false,
            name: None,
            pause: Duration::ZERO,
            fail_after: None,
        }
    }

    /// The rows to copy: any query on `source` (joins, filters, `AS` aliases naming the
    /// target's columns). Its result must hold the key columns. An `ORDER BY` or `LIMIT`
    /// in it is pointless: the copy orders and pages by the key itself.
    pub fn select(mut self, sql: &str) -> Self {
        self.select = Some(sql.to_owned());
        self
    }

    /// Parameters of the [`select`](Self::select), numbered from 1 (`$1` / `?`); the
    /// copy's own key parameters come after them.
    pub fn params(mut self, params: Vec<Value>) -> Self {
        self.params = params;
        self
    }

    /// The key the copy orders, pages and resumes by: one column or several (a composite
    /// key), unique and NOT NULL in the select's result. Defaults to the one-column primary
    /// key of `into` (looked up on `source` without a select, on `target` with one).
    pub fn key<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.key = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Rows per batch: per source query, per bulk write and per checkpoint (default 1000).
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.batch_size = rows;
        self
    }

    /// Writes each batch with a bulk upsert by the key instead of a bulk insert: a row whose
    /// key the target holds already is updated (the target needs a unique index on the key).
    /// Makes a copy into a table that already holds some of the rows safe to run.
    pub fn upsert(mut self) -> Self {
        self.upsert = true;
        self
    }

    /// The copy's name in its checkpoints and progress (default: the target table). A
    /// checkpoint is only resumed by the copy of the same name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Sleeps this long after each batch, so other writers get the table.
    pub fn pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// Rehearses an interruption: fails after `batches` batches of this run were committed
    /// (0: never). The next run resumes after them.
    pub fn fail_after(mut self, batches: u64) -> Self {
        self.fail_after = Some(batches).filter(|b| *b > 0);
        self
    }

    /// Runs the copy: for each batch, one query on `source`, `map` on every row (`Ok(None)`
    /// skips it; the rows it returns all need the same columns, which name the target's),
    /// one bulk write into the target, one checkpoint, progress. Resumes after the last key
    /// an interrupted run of this unit saved.
    pub fn run<F>(self, mut map: F) -> Result<CopyReport>
    where
        F: FnMut(Row) -> Result<Option<Row>>,
    {
        if self.batch_size == 0 {
            return Err(Error::failed("copy batch size must be at least 1"));
        }
        let name = self.name.clone().unwrap_or_else(|| self.into.clone());
        let task = format!("copy {name}");
        let dialect = self.source.dialect();
        let select = match &self.select {
            Some(sql) => sql.trim().trim_end_matches(';').to_owned(),
            None => format!("SELECT * FROM {}", quote_table(dialect, &self.into)),
        };
        let key = match (self.key.is_empty(), &self.select) {
            (false, _) => self.key.clone(),
            (true, None) => vec![crate::key_of(self.source, &self.into)?],
            (true, Some(_)) => vec![crate::key_of(self.target, &self.into)?],
        };
        let quoted_key: Vec<String> = key.iter().map(|k| dialect.quote_ident(k)).collect();
        let order = quoted_key.join(", ");
        let source_rows = format!("({select}) AS migrun_src");
        let total: u64 = self.source.query_scalar(
            &format!("SELECT COUNT(*) FROM {source_rows}"),
            self.params.clone(),
        )?;

        let saved = checkpoint::last()
            .and_then(|state| CopyState::decode(&state))
            .filter(|state| state.copy == name);
        let (mut after, copied_before) = match saved {
            Some(state) => {
                let last_key = self.typed_key(&source_rows, &order, state.last_key)?;
                crate::info!(copy = name, copied = state.copied;
                    "resuming the copy after key {}", shown_key(&last_key));
                (Some(last_key), state.copied)
            }
            None => (None, 0),
        };
        let mut report = CopyReport {
            read: 0,
            written: 0,
            skipped: 0,
            batches: 0,
            copied: copied_before,
            resumed_after: after.clone(),
        };
        let first_key_param = self.params.len() + 1;
        loop {
            if self.fail_after == Some(report.batches) {
                return Err(Error::failed(format!(
                    "stopping the copy {name} after {} batches as configured (fail_after)",
                    report.batches
                )));
            }
            let mut params = self.params.clone();
            let sql = match &after {
                None => format!(
                    "SELECT * FROM {source_rows} ORDER BY {order} LIMIT {}",
                    self.batch_size
                ),
                Some(last) => {
                    params.extend(last.iter().cloned());
                    let marks: Vec<String> = (0..key.len())
                        .map(|i| dialect.placeholder(first_key_param + i))
                        .collect();
                    let condition = match key.len() {
                        1 => format!("{order} > {}", marks[0]),
                        _ => format!("({order}) > ({})", marks.join(", ")),
                    };
                    format!(
                        "SELECT * FROM {source_rows} WHERE {condition} ORDER BY {order} LIMIT {}",
                        self.batch_size
                    )
                }
            };
            let rows = self.source.query(&sql, params)?;
            if rows.is_empty() {
                break;
            }
            let positions = key_positions(rows.columns(), &key)?;
            let read = rows.len() as u64;
            let last_row = rows.rows().last().expect("a batch is not empty");
            let last_key: Vec<Value> = positions
                .iter()
                .map(|&i| last_row.values()[i].clone())
                .collect();
            if last_key.iter().any(Value::is_null) {
                return Err(Error::failed(format!(
                    "copy {name}: key ({}) holds NULL; copy by unique NOT NULL columns",
                    key.join(", ")
                )));
            }
            let mut mapped = Vec::with_capacity(rows.len());
            for row in rows {
                match map(row)? {
                    Some(row) => mapped.push(row),
                    None => report.skipped += 1,
                }
            }
            report.batches += 1;
            let number = report.batches;
            let written = self
                .write(mapped, &key)
                .map_err(|e| e.context(format!("copy {name}, batch {number}")))?;
            report.read += read;
            report.written += written;
            report.copied += written;
            let state = CopyState {
                copy: name.clone(),
                last_key: last_key.clone(),
                copied: report.copied,
            };
            checkpoint::save(&state.encode()?).map_err(|e| {
                e.context(format!("checkpoint after batch {number} of copy {name}"))
            })?;
            let done = copied_before + report.read;
            crate::progress(&task, done, Some(total.max(done)));
            after = Some(last_key);
            if read < u64::from(self.batch_size) {
                break;
            }
            if !self.pause.is_zero() {
                std::thread::sleep(self.pause);
            }
        }
        Ok(report)
    }

    /// Writes one batch of mapped rows; returns the rows written.
    fn write(&self, rows: Vec<Row>, key: &[String]) -> Result<u64> {
        let Some(first) = rows.first() else {
            return Ok(0);
        };
        let columns: Rc<[Column]> = first.shared_columns();
        let names: Vec<&str> = columns.iter().map(Column::name).collect();
        for row in &rows {
            let same = Rc::ptr_eq(&row.shared_columns(), &columns)
                || row
                    .columns()
                    .iter()
                    .map(Column::name)
                    .eq(names.iter().copied());
            if !same {
                let other: Vec<&str> = row.columns().iter().map(Column::name).collect();
                return Err(Error::failed(format!(
                    "the mapped rows have different columns: ({}) and ({}); \
                     return the same columns for every row",
                    names.join(", "),
                    other.join(", ")
                )));
            }
        }
        if !self.upsert {
            let values = rows.into_iter().map(Row::into_values).collect();
            return self.target.bulk_insert(&self.into, &names, values);
        }
        let key_at = key_positions(&columns, key)?;
        let rest: Vec<usize> = (0..names.len()).filter(|i| !key_at.contains(i)).collect();
        let set: Vec<&str> = rest.iter().map(|&i| names[i]).collect();
        let values = rows
            .into_iter()
            .map(|row| {
                let values = row.into_values();
                key_at
                    .iter()
                    .chain(&rest)
                    .map(|&i| values[i].clone())
                    .collect()
            })
            .collect();
        self.target.bulk_upsert(&self.into, key, &set, values)
    }

    /// The saved key with its kinds back: JSON keeps numbers and strings only, so a string
    /// saved from a uuid, date or decimal key becomes that kind again, as the source's
    /// first row holds it (PostgreSQL compares a uuid with a uuid, not with text).
    fn typed_key(&self, source_rows: &str, order: &str, saved: Vec<Value>) -> Result<Vec<Value>> {
        if !saved.iter().any(|v| matches!(v, Value::Text(_))) {
            return Ok(saved);
        }
        let probe = self.source.query(
            &format!("SELECT {order} FROM {source_rows} ORDER BY {order} LIMIT 1"),
            self.params.clone(),
        )?;
        let Some(first) = probe.rows().first() else {
            return Ok(saved);
        };
        Ok(saved
            .into_iter()
            .zip(first.values())
            .map(|(saved, like)| match (saved, like) {
                (Value::Text(t), Value::Uuid(_)) => Value::Uuid(t),
                (Value::Text(t), Value::Date(_)) => Value::Date(t),
                (Value::Text(t), Value::Time(_)) => Value::Time(t),
                (Value::Text(t), Value::Timestamp(_)) => Value::Timestamp(t),
                (Value::Text(t), Value::Timestamptz(_)) => Value::Timestamptz(t),
                (Value::Text(t), Value::Decimal(_)) => Value::Decimal(t),
                (saved, _) => saved,
            })
            .collect())
    }
}

/// Where each key column is in `columns`; an error naming the missing one.
fn key_positions(columns: &[Column], key: &[String]) -> Result<Vec<usize>> {
    key.iter()
        .map(|k| {
            columns.iter().position(|c| c.name() == k).ok_or_else(|| {
                let have: Vec<&str> = columns.iter().map(Column::name).collect();
                Error::failed(format!(
                    "the copy's key column `{k}` is not in the rows (columns: {})",
                    have.join(", ")
                ))
            })
        })
        .collect()
}

fn shown_key(key: &[Value]) -> String {
    let parts: Vec<String> = key.iter().map(ToString::to_string).collect();
    match parts.len() {
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => format!("({})", parts.join(", ")),
    }
}

/// `schema.table` quoted part by part.
fn quote_table(dialect: crate::Dialect, table: &str) -> String {
    table
        .split('.')
        .map(|part| dialect.quote_ident(part))
        .collect::<Vec<_>>()
        .join(".")
}

/// A copy's checkpoint: `{"copy":"…","last_key":[…],"copied":n}`.
#[derive(Debug, Clone, PartialEq)]
struct CopyState {
    copy: String,
    last_key: Vec<Value>,
    copied: u64,
}

impl CopyState {
    fn encode(&self) -> Result<String> {
        let key = self
            .last_key
            .iter()
            .map(|v| match v {
                Value::Int(i) => Ok(serde_json::Value::from(*i)),
                Value::Float(f) => Ok(serde_json::Value::from(*f)),
                Value::Bool(b) => Ok(serde_json::Value::from(*b)),
                other => other.as_str().map(serde_json::Value::from).ok_or_else(|| {
                    Error::failed(format!(
                        "a copy key of kind {} cannot be saved in a checkpoint",
                        other.kind()
                    ))
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        // Written field by field: the documented order, the same in every SDK.
        Ok(format!(
            "{{\"copy\":{},\"last_key\":{},\"copied\":{}}}",
            serde_json::Value::from(self.copy.as_str()),
            serde_json::Value::Array(key),
            self.copied
        ))
    }

    /// The state in `text` if it is a copy's; `None` for anything else.
    fn decode(text: &str) -> Option<CopyState> {
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        let last_key = json
            .get("last_key")?
            .as_array()?
            .iter()
            .map(|v| match v {
                serde_json::Value::Number(n) => n
                    .as_i64()
                    .map(Value::Int)
                    .or_else(|| n.as_f64().map(Value::Float)),
                serde_json::Value::String(s) => Some(Value::Text(s.clone())),
                serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(CopyState {
            copy: json.get("copy")?.as_str()?.to_owned(),
            last_key,
            copied: json.get("copied")?.as_u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_the_documented_json_and_round_trip() {
        let state = CopyState {
            copy: "customers".into(),
            last_key: vec![Value::Int(42), Value::Text("b\"c".into())],
            copied: 1500,
        };
        let text = state.encode().unwrap();
        assert_eq!(
            text,
            r#"{"copy":"customers","last_key":[42,"b\"c"],"copied":1500}"#
        );
        assert_eq!(CopyState::decode(&text), Some(state));
        // Another SDK's spacing reads the same.
        assert_eq!(
            CopyState::decode(r#"{"copy": "x", "last_key": [7], "copied": 3}"#)
                .unwrap()
                .last_key,
            vec![Value::Int(7)]
        );
        assert_eq!(CopyState::decode("backfill/1\nx"), None);
        let uuid = CopyState {
            copy: "x".into(),
            last_key: vec![Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into())],
            copied: 0,
        };
        assert!(uuid.encode().unwrap().contains("\"67e55044-"));
        let bytes = CopyState {
            last_key: vec![Value::Bytes(vec![1])],
            ..uuid
        };
        assert!(bytes.encode().is_err());
    }

    #[test]
    fn key_positions_name_a_missing_column() {
        let columns = [Column::new("id", "int8"), Column::new("part", "text")];
        assert_eq!(
            key_positions(&columns, &["part".into(), "id".into()]).unwrap(),
            vec![1, 0]
        );
        let err = key_positions(&columns, &["nope".into()]).unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
        assert_eq!(
            shown_key(&[Value::Int(1), Value::Text("a".into())]),
            "(1, \"a\")"
        );
    }
}
