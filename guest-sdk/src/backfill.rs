//! Batched, resumable backfills: walk a table in key order, batch by batch,
//! committing each batch with a checkpoint (contract 0.1.1).
//!
//! A [`Backfill`] pages through a table by keyset — `WHERE key > last ORDER
//! BY key LIMIT n` — so every batch costs the same however far it is into
//! the table, and rows inserted while it runs (with larger keys) are still
//! reached. After each batch it calls [`checkpoint::save`] with its position,
//! which commits the batch's work and its position together, and reports
//! [`progress`](crate::progress) (rows done of the table's rows, which the
//! CLI turns into a bar with an ETA). When the unit runs again after an
//! interruption, [`checkpoint::last`] hands the position back and the
//! backfill continues after the last committed batch.
//!
//! The pause between batches (seed 003's throttling) is a real sleep:
//! Rust's `std::thread::sleep` on `wasm32-wasip2` waits on
//! `wasi:clocks/monotonic-clock.subscribe-duration`, which the host serves
//! with a real timer even though the clock *readings* a plugin sees are
//! deterministic. The pause is not journaled, so a replay pauses too; it
//! counts against the unit's `[limits] timeout_secs`.

use std::time::Duration;

use crate::{Connection, Dialect, Error, Result, Row, Rows, Value};

/// Checkpoints inside a long unit (contract 0.1.1).
///
/// Most plugins use them through [`Backfill`]; call them directly for other
/// kinds of resumable work.
pub mod checkpoint {
    use crate::Result;
    use crate::bindings::migrun::plugin::checkpoint as wit;

    /// Commits the unit's work so far, together with `state`, on every writable connection,
    /// then continues in new transactions. If the run dies later, the work up to here stays
    /// and [`last`] returns `state` when the unit runs again. In a dry-run nothing commits.
    ///
    /// Close every cursor first: the commit would end it (the host refuses with a `usage` error).
    pub fn save(state: &str) -> Result<()> {
        Ok(wit::save(state)?)
    }

    /// The state of the last [`save`] of this unit by an earlier, unfinished run of the same
    /// plugin, or `None` when the unit starts afresh (always `None` in a dry-run).
    pub fn last() -> Option<String> {
        wit::last()
    }
}

/// The position a backfill saves at each checkpoint.
#[derive(Debug, Clone, PartialEq)]
struct Position {
    task: String,
    done: u64,
    batches: u64,
    last: Value,
}

const STATE_TAG: &str = "backfill/1";

impl Position {
    /// `backfill/1`, then one line each: task, rows done, batches done, the key's kind and
    /// its canonical text (last, so it may hold anything).
    fn encode(&self) -> Result<String> {
        let text = match &self.last {
            Value::Int(i) => i.to_string(),
            other => other
                .as_str()
                .ok_or_else(|| {
                    Error::failed(format!(
                        "a backfill key of kind {} cannot be saved in a checkpoint",
                        other.kind()
                    ))
                })?
                .to_owned(),
        };
        Ok(format!(
            "{STATE_TAG}\n{}\n{}\n{}\n{}\n{}",
            self.task,
            self.done,
            self.batches,
            self.last.kind(),
            text
        ))
    }

    /// The position in `state`, if it is a backfill's; `None` for another format.
    fn decode(state: &str) -> Option<Position> {
        let mut parts = state.splitn(6, '\n');
        if parts.next()? != STATE_TAG {
            return None;
        }
        let task = parts.next()?.to_owned();
        let done = parts.next()?.parse().ok()?;
        let batches = parts.next()?.parse().ok()?;
        let kind = parts.next()?;
        let text = parts.next()?.to_owned();
        let last = match kind {
            "int" => Value::Int(text.parse().ok()?),
            "text" => Value::Text(text),
            "uuid" => Value::Uuid(text),
            "date" => Value::Date(text),
            "time" => Value::Time(text),
            "timestamp" => Value::Timestamp(text),
            "timestamptz" => Value::Timestamptz(text),
            "decimal" => Value::Decimal(text),
            "json" => Value::Json(text),
            _ => return None,
        };
        Some(Position {
            task,
            done,
            batches,
            last,
        })
    }
}

/// One batch of a [`Backfill`]: the keys of its rows, in order, and — when the backfill
/// named [`columns`](Backfill::columns) — the rows themselves (the key first, then those
/// columns), read in the same statement, so a plugin computing new values needs no second
/// query per batch.
#[derive(Debug, Clone)]
pub struct Batch {
    dialect: Dialect,
    key: String,
    after: Option<Value>,
    keys: Vec<Value>,
    rows: Rows,
    number: u64,
}

impl Batch {
    /// The batch's rows: the key column, then the columns the backfill asked for, in key
    /// order. Holds only the key when the backfill named no [`columns`](Backfill::columns).
    pub fn rows(&self) -> &[Row] {
        self.rows.rows()
    }

    /// The keys of the batch's rows, ascending.
    pub fn keys(&self) -> &[Value] {
        &self.keys
    }

    /// How many rows the batch holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the batch is empty (never, for batches handed to [`Backfill::run`]).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The batch's number, counted from 1 over the whole backfill (resumed runs continue the count).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The key of the last row of the previous batch (`None` for the first batch).
    pub fn after(&self) -> Option<&Value> {
        self.after.as_ref()
    }

    /// The key of the batch's last row.
    pub fn last(&self) -> &Value {
        self.keys.last().expect("batches are never empty")
    }

    /// A condition selecting exactly the batch's key range, with placeholders numbered from
    /// `first_param`, and its parameters: `"id" > $1 AND "id" <= $2` (or `"id" <= $1` for
    /// the first batch). Use it in the batch's `UPDATE … WHERE`.
    pub fn range(&self, first_param: usize) -> (String, Vec<Value>) {
        let key = self.dialect.quote_ident(&self.key);
        match &self.after {
            Some(after) => (
                format!(
                    "{key} > {} AND {key} <= {}",
                    self.dialect.placeholder(first_param),
                    self.dialect.placeholder(first_param + 1)
                ),
                vec![after.clone(), self.last().clone()],
            ),
            None => (
                format!("{key} <= {}", self.dialect.placeholder(first_param)),
                vec![self.last().clone()],
            ),
        }
    }
}

/// What a finished [`Backfill`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillReport {
    /// Rows walked over the whole backfill (resumed runs included).
    pub rows: u64,
    /// Batches over the whole backfill.
    pub batches: u64,
    /// Batches this run skipped because an earlier run had committed them.
    pub resumed_after: Option<u64>,
}

/// A batched, throttled, resumable walk over a table in key order.
///
/// ```no_run
/// use std::time::Duration;
/// use migrun_sdk::{Backfill, Connection};
///
/// # fn main() -> migrun_sdk::Result<()> {
/// let db = Connection::open("app")?;
/// Backfill::new(&db, "users")
///     .batch_size(500)
///     .pause(Duration::from_millis(50))
///     .run(|batch| {
///         let (range, params) = batch.range(1);
///         db.execute(&format!("UPDATE users SET full_name = name WHERE {range}"), params)?;
///         Ok(())
///     })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Backfill<'c> {
    conn: &'c Connection,
    table: String,
    key: Option<String>,
    batch_size: u32,
    pause: Duration,
    task: String,
    columns: Vec<String>,
    fail_after: Option<u64>,
}

impl<'c> Backfill<'c> {
    /// A backfill over `table` (optionally `schema.table`) read through `conn`, in batches of
    /// 1000 rows, keyed by the table's primary key, without pauses.
    pub fn new(conn: &'c Connection, table: &str) -> Backfill<'c> {
        Backfill {
            conn,
            table: table.to_owned(),
            key: None,
            batch_size: 1000,
            pause: Duration::ZERO,
            task: format!("backfill {table}"),
            columns: Vec::new(),
            fail_after: None,
        }
    }

    /// Reads these columns with each batch's keys: [`Batch::rows`] holds the key, then them.
    ///
    /// ```no_run
    /// use migrun_sdk::{Backfill, Connection};
    ///
    /// # fn main() -> migrun_sdk::Result<()> {
    /// let db = Connection::open("app")?;
    /// Backfill::new(&db, "orders").columns(["amount_text"]).run(|batch| {
    ///     for row in batch.rows() {
    ///         let text: Option<String> = row.get("amount_text")?;
    ///         // compute, then write the batch back with one bulk call
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.columns.extend(columns.into_iter().map(Into::into));
        self
    }

    /// Pages by `column` instead of the primary key: it must be unique and not null.
    pub fn key(mut self, column: &str) -> Self {
        self.key = Some(column.to_owned());
        self
    }

    /// Rows per batch (and per checkpoint).
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.batch_size = rows;
        self
    }

    /// Sleeps this long between batches, so other writers get the table (seed 003's throttling).
    pub fn pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// Rehearses an interruption: fails before the next batch once `batches` batches of this
    /// run were committed (0: never). The next run resumes after them.
    pub fn fail_after(mut self, batches: u64) -> Self {
        self.fail_after = Some(batches).filter(|b| *b > 0);
        self
    }

    /// The progress task's name (`backfill <table>` by default); it also names the
    /// checkpoint, so a unit running several backfills resumes the right one.
    pub fn task(mut self, task: &str) -> Self {
        self.task = task.to_owned();
        self
    }

    /// Walks the table: calls `work` with each batch, then saves a checkpoint (committing the
    /// batch's work with the position) and reports progress, then pauses. Resumes after the
    /// last checkpoint of an earlier, interrupted run of this unit.
    pub fn run<F>(self, mut work: F) -> Result<BackfillReport>
    where
        F: FnMut(&Batch) -> Result<()>,
    {
        if self.batch_size == 0 {
            return Err(Error::failed("backfill batch size must be at least 1"));
        }
        if self.task.contains('\n') {
            return Err(Error::failed("a backfill's task name must be one line"));
        }
        let dialect = self.conn.dialect();
        let key = match &self.key {
            Some(key) => key.clone(),
            None => key_of(self.conn, &self.table)?,
        };
        let table = quote_table(dialect, &self.table);
        let quoted_key = dialect.quote_ident(&key);
        let selected = std::iter::once(quoted_key.clone())
            .chain(self.columns.iter().map(|c| dialect.quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let total: u64 = self
            .conn
            .query_scalar(&format!("SELECT COUNT(*) FROM {table}"), Vec::new())?;

        let resumed = checkpoint::last()
            .and_then(|s| Position::decode(&s))
            .filter(|p| p.task == self.task);
        let resumed_after = resumed.as_ref().map(|p| p.batches);
        let (mut after, mut done, mut batches) = match resumed {
            Some(p) => {
                crate::info!(task = self.task, batches = p.batches, rows = p.done;
                    "resuming after batch {} (key {})", p.batches, describe_key(&p.last));
                (Some(p.last), p.done, p.batches)
            }
            None => (None, 0, 0),
        };
        let mut this_run = 0;
        loop {
            if self.fail_after == Some(this_run) {
                return Err(Error::failed(format!(
                    "stopping the backfill {} after {this_run} batches as configured (fail_after)",
                    self.task
                )));
            }
            let (sql, params) = match &after {
                Some(last) => (
                    format!(
                        "SELECT {selected} FROM {table} WHERE {quoted_key} > {} ORDER BY {quoted_key} LIMIT {}",
                        dialect.placeholder(1),
                        self.batch_size
                    ),
                    vec![last.clone()],
                ),
                None => (
                    format!(
                        "SELECT {selected} FROM {table} ORDER BY {quoted_key} LIMIT {}",
                        self.batch_size
                    ),
                    Vec::new(),
                ),
            };
            let rows = self.conn.query(&sql, params)?;
            let keys: Vec<Value> = rows
                .iter()
                .filter_map(|row| row.values().first().cloned())
                .collect();
            if keys.is_empty() {
                break;
            }
            if keys.iter().any(Value::is_null) {
                return Err(Error::failed(format!(
                    "backfill key `{key}` of `{}` holds NULL: page by a NOT NULL unique column",
                    self.table
                )));
            }
            batches += 1;
            let batch = Batch {
                dialect,
                key: key.clone(),
                after: after.take(),
                keys,
                rows,
                number: batches,
            };
            work(&batch).map_err(|e| e.context(format!("batch {batches}")))?;
            done += batch.len() as u64;
            let last = batch.last().clone();
            let position = Position {
                task: self.task.clone(),
                done,
                batches,
                last: last.clone(),
            };
            checkpoint::save(&position.encode()?)
                .map_err(|e| e.context(format!("checkpoint after batch {batches}")))?;
            this_run += 1;
            crate::progress(&self.task, done, Some(total.max(done)));
            let full = batch.len() as u32 == self.batch_size;
            after = Some(last);
            if !full {
                break;
            }
            if !self.pause.is_zero() {
                std::thread::sleep(self.pause);
            }
        }
        Ok(BackfillReport {
            rows: done,
            batches,
            resumed_after,
        })
    }
}

fn describe_key(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        other => other.as_str().unwrap_or("?").to_owned(),
    }
}

/// `schema.table` quoted part by part.
fn quote_table(dialect: Dialect, table: &str) -> String {
    table
        .split('.')
        .map(|part| dialect.quote_ident(part))
        .collect::<Vec<_>>()
        .join(".")
}

/// The column to page `table` by: its one-column primary key, else a one-column unique key
/// on a NOT NULL column. A clear error when it has neither.
pub fn key_of(conn: &Connection, table: &str) -> Result<String> {
    let dialect = conn.dialect();
    // (index, column, is primary, not null), one row per indexed column.
    let columns: Vec<(String, String, bool, bool)> = match dialect {
        Dialect::Postgres => conn
            .query(
                "SELECT c.relname::text, a.attname::text, i.indisprimary, a.attnotnull \
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = to_regclass($1::text) AND i.indisunique AND i.indpred IS NULL",
                vec![Value::Text(table.to_owned())],
            )?
            .deserialize::<(String, String, bool, bool)>()?,
        Dialect::MySql => conn
            .query(
                "SELECT s.INDEX_NAME, s.COLUMN_NAME, s.INDEX_NAME = 'PRIMARY', c.IS_NULLABLE = 'NO' \
                 FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c \
                 ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME \
                 WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0",
                vec![Value::Text(table.to_owned())],
            )?
            .deserialize::<(String, String, i64, i64)>()?
            .into_iter()
            .map(|(i, c, p, n)| (i, c, p != 0, n != 0))
            .collect(),
        Dialect::Sqlite => {
            let mut found: Vec<(String, String, bool, bool)> = conn
                .query(
                    "SELECT 'primary', name, 1, \"notnull\" FROM pragma_table_info(?) WHERE pk > 0",
                    vec![Value::Text(table.to_owned())],
                )?
                .deserialize::<(String, String, i64, i64)>()?
                .into_iter()
                // An INTEGER PRIMARY KEY is the rowid: never NULL, whatever the column says.
                .map(|(i, c, _, _)| (i, c, true, true))
                .collect();
            found.extend(
                conn.query(
                    "SELECT il.name, ii.name, 0, ti.\"notnull\" FROM pragma_index_list(?1) il \
                     JOIN pragma_index_info(il.name) ii \
                     JOIN pragma_table_info(?1) ti ON ti.name = ii.name \
                     WHERE il.\"unique\" = 1 AND il.partial = 0 AND il.origin <> 'pk'",
                    vec![Value::Text(table.to_owned())],
                )?
                .deserialize::<(String, String, i64, i64)>()?
                .into_iter()
                .map(|(i, c, p, n)| (i, c, p != 0, n != 0)),
            );
            found
        }
    };
    let mut indexes: std::collections::BTreeMap<&str, Vec<&(String, String, bool, bool)>> =
        std::collections::BTreeMap::new();
    for c in &columns {
        indexes.entry(c.0.as_str()).or_default().push(c);
    }
    let single = |primary: bool| {
        indexes
            .values()
            .filter(|cols| cols.len() == 1 && cols[0].2 == primary && cols[0].3)
            .map(|cols| cols[0].1.clone())
            .min()
    };
    single(true).or_else(|| single(false)).ok_or_else(|| {
        Error::failed(format!(
            "cannot page through `{table}`: it has no one-column primary key and no one-column \
             unique key on a NOT NULL column{}; name a unique NOT NULL column with Backfill::key",
            if columns.is_empty() {
                " (or the table does not exist)"
            } else {
                ""
            }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        for last in [
            Value::Int(-42),
            Value::Text("a\nb c".into()),
            Value::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        ] {
            let p = Position {
                task: "backfill users".into(),
                done: 1500,
                batches: 3,
                last,
            };
            assert_eq!(Position::decode(&p.encode().unwrap()), Some(p));
        }
        assert_eq!(Position::decode("something else"), None);
        assert!(
            Position {
                task: "t".into(),
                done: 0,
                batches: 0,
                last: Value::Bytes(vec![1])
            }
            .encode()
            .is_err()
        );
    }

    #[test]
    fn ranges_cover_the_batch() {
        let batch = Batch {
            dialect: Dialect::Postgres,
            key: "id".into(),
            after: Some(Value::Int(10)),
            keys: vec![Value::Int(11), Value::Int(15)],
            rows: Rows::new(
                vec![
                    crate::Column::new("id", "int8"),
                    crate::Column::new("amount", "text"),
                ],
                vec![
                    vec![Value::Int(11), Value::Text("1.20".into())],
                    vec![Value::Int(15), Value::Null],
                ],
            ),
            number: 2,
        };
        assert_eq!(batch.rows().len(), 2);
        assert_eq!(batch.rows()[0].get::<String>("amount").unwrap(), "1.20");
        assert_eq!(
            batch.range(3),
            (
                "\"id\" > $3 AND \"id\" <= $4".to_owned(),
                vec![Value::Int(10), Value::Int(15)]
            )
        );
        let first = Batch {
            after: None,
            dialect: Dialect::MySql,
            ..batch
        };
        assert_eq!(first.range(1).0, "`id` <= ?");
    }
}
