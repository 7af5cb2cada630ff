//! The `database` interface: named connections, queries, cursors, bulk inserts and
//! (contract 0.2.0) bulk updates, upserts and deletes,
//! as a thin adapter over the run's [`Session`].
//!
//! This module owns what only the WIT side knows: the resource handles the guest
//! holds (a connection by the name it was opened by, a cursor by the run's number
//! for it) and the conversions between the contract's types and the host's. Every
//! call is handed to the session, which asks the run's tape for the answer or runs
//! it live and records it; the transactions, ledger rows, checkpoints and write
//! counts are the session's too (see [`crate::session`]).
//!
//! Database failures reach the plugin as `db-error` values; only host-side failures
//! (a replay divergence, an unwritable journal, a stale handle) trap.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};

use migrun_db::{DbError, DbErrorKind};
use migrun_journal::CallResult;
use migrun_session::tape::TapeError;
use migrun_session::{ConnectionInfo, Session};
use migrun_types::BulkWriteKind;
use migrun_types::value::Value;

/// A connection handle as the guest holds it: the name it was opened by.
pub struct ConnectionResource {
    pub(crate) name: String,
}

/// A cursor handle as the guest holds it: the run's number for it.
pub struct CursorResource {
    pub(crate) id: u64,
    pub(crate) columns: Vec<(String, String)>,
    pub(crate) exhausted: bool,
}

/// The guest's handles to the connections of one run, over the run's [`Session`].
pub struct DatabaseCtx {
    pub(crate) table: ResourceTable,
    pub(crate) session: Session,
    delivered: DeliveredArrays,
}

impl DatabaseCtx {
    /// The guest's view of `session`: no handle open yet.
    pub fn new(session: Session) -> Self {
        DatabaseCtx {
            table: ResourceTable::new(),
            session,
            delivered: DeliveredArrays::default(),
        }
    }

    /// The session the calls go to (the runner drives its transactions).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The session, once the plugin is done (to close its connections).
    pub fn into_session(self) -> Session {
        self.session
    }

    pub(crate) fn name_of(
        &self,
        handle: &Resource<ConnectionResource>,
    ) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.name.clone())
    }

    pub(crate) fn info(
        &self,
        handle: &Resource<ConnectionResource>,
    ) -> wasmtime::Result<ConnectionInfo> {
        let name = &self.table.get(handle)?.name;
        self.session.info(name).ok_or_else(|| {
            wasmtime::Error::msg(format!(
                "host error: a handle to the undeclared connection `{name}`"
            ))
        })
    }
}

/// A tape that could not answer or record stops the plugin: the run must stop.
pub(crate) fn taped(result: Result<CallResult, TapeError>) -> wasmtime::Result<CallResult> {
    result.map_err(wasmtime::Error::new)
}

/// A recorded result of the wrong shape for its call: the journal does not belong to this call.
pub(crate) fn unexpected(result: CallResult) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "host error: a recorded result of the wrong kind: {result:?}"
    ))
}

/// A database call's answer in the host's own terms: the result, or the
/// `db-error` the plugin gets; the outer error is a host failure (trap).
pub type DbAnswer<T> = wasmtime::Result<Result<T, DbError>>;

/// Rows as a `query` answers them, in host values, with each column's name
/// and type name.
pub struct HostRows {
    /// `(name, type name)` per column.
    pub columns: Vec<(String, String)>,
    /// The rows.
    pub rows: Vec<Vec<Value>>,
}

/// The version-free surface of the `database` interface's value-carrying
/// calls: each contract version converts its values to and from these (so a
/// version with more value cases, 0.2.0's `typed`, loses nothing on the way).
impl DatabaseCtx {
    /// `connection.query`.
    pub async fn plugin_query(
        &mut self,
        conn: &Resource<ConnectionResource>,
        sql: String,
        params: Vec<Value>,
    ) -> DbAnswer<HostRows> {
        let conn = self.name_of(conn)?;
        match taped(self.session.query(conn, sql, params).await)? {
            CallResult::Rows { columns, rows } => {
                self.delivered.remember(&rows);
                Ok(Ok(HostRows { columns, rows }))
            }
            other => Ok(Err(error_of(other)?)),
        }
    }

    /// `connection.execute`.
    pub async fn plugin_execute(
        &mut self,
        conn: &Resource<ConnectionResource>,
        sql: String,
        params: Vec<Value>,
    ) -> DbAnswer<u64> {
        let conn = self.name_of(conn)?;
        count(taped(self.session.execute(conn, sql, params).await)?)
    }

    /// `connection.open-cursor`.
    pub async fn plugin_open_cursor(
        &mut self,
        conn: &Resource<ConnectionResource>,
        sql: String,
        params: Vec<Value>,
        batch_size: u32,
    ) -> DbAnswer<Resource<CursorResource>> {
        let conn = self.name_of(conn)?;
        let opened = self
            .session
            .open_cursor(conn, sql, params, batch_size)
            .await;
        match taped(opened)? {
            CallResult::Cursor { cursor, columns } => Ok(Ok(self.table.push(CursorResource {
                id: cursor,
                columns,
                exhausted: false,
            })?)),
            other => Ok(Err(error_of(other)?)),
        }
    }

    /// `connection.bulk-insert`.
    pub async fn plugin_bulk_insert(
        &mut self,
        conn: &Resource<ConnectionResource>,
        table: String,
        columns: Vec<String>,
        mut rows: Vec<Vec<Value>>,
    ) -> DbAnswer<u64> {
        self.delivered.share(&mut rows);
        let conn = self.name_of(conn)?;
        let inserted = self.session.bulk_insert(conn, table, columns, rows).await;
        count(taped(inserted)?)
    }

    /// `connection.bulk-update`, `bulk-upsert` or `bulk-delete` (contract 0.2.0); `rows`
    /// hold the key values, then the values of `columns` (none for a delete).
    pub async fn plugin_bulk_write(
        &mut self,
        conn: &Resource<ConnectionResource>,
        kind: BulkWriteKind,
        table: String,
        keys: Vec<String>,
        columns: Vec<String>,
        mut rows: Vec<Vec<Value>>,
    ) -> DbAnswer<u64> {
        self.delivered.share(&mut rows);
        let conn = self.name_of(conn)?;
        let written = self
            .session
            .bulk_write(conn, kind, table, keys, columns, rows)
            .await;
        count(taped(written)?)
    }

    /// `cursor.next-batch`: `None` once the cursor is exhausted (or failed).
    pub async fn plugin_next_batch(
        &mut self,
        cursor: &Resource<CursorResource>,
    ) -> DbAnswer<Option<Vec<Vec<Value>>>> {
        let res = self.table.get(cursor)?;
        if res.exhausted {
            return Ok(Ok(None));
        }
        let id = res.id;
        let result = taped(self.session.next_batch(id).await)?;
        let res = self.table.get_mut(cursor)?;
        match result {
            CallResult::Batch { rows: Some(rows) } => {
                self.delivered.remember(&rows);
                Ok(Ok(Some(rows)))
            }
            CallResult::Batch { rows: None } => {
                res.exhausted = true;
                Ok(Ok(None))
            }
            other @ CallResult::Error { .. } => {
                res.exhausted = true;
                Ok(Err(error_of(other)?))
            }
            other => Err(unexpected(other)),
        }
    }

    /// The columns of `cursor`, `(name, type name)`.
    pub fn cursor_columns(
        &self,
        cursor: &Resource<CursorResource>,
    ) -> wasmtime::Result<&[(String, String)]> {
        Ok(&self.table.get(cursor)?.columns)
    }
}

/// The float arrays (embeddings) of the rows last handed to the plugin, by a cheap
/// fingerprint, so that the same floats coming back in a bulk write share the delivered
/// allocation instead of a copy lifted from the guest.
///
/// Why: a copy plugin returns each embedding it read unchanged, and the journal can then
/// tell it is a value it already recorded by its identity (`Arc` pointer) and refer to
/// it (`migrun_journal::binary::WriterWindow`): the journal finds an equal array only
/// while the earlier one is alive, and the delivered batch is gone by the time a bulk
/// write's entry is encoded — without this memo a copy's journal would hold every
/// embedding twice. Content decides, never the
/// fingerprint: a candidate is shared only when every float has the same bits (NaN
/// payloads included). The memo holds the arrays of the last rows delivered (one batch,
/// at most [`DELIVERED_FLOATS_MAX`] floats) until the next bulk write or the next rows:
/// while the plugin maps a batch — the host held it a moment before, and the journal
/// usually still does.
#[derive(Default)]
struct DeliveredArrays {
    by_print: HashMap<u64, Arc<Vec<f32>>>,
}

/// Arrays shorter than this are not worth the lookup.
const SHARED_ARRAY_MIN: usize = 16;

/// Floats the memo holds at most (16 MB): a query's larger result is remembered in part.
const DELIVERED_FLOATS_MAX: usize = 4 << 20;

impl DeliveredArrays {
    /// Forgets the previous rows and remembers the arrays of `rows`.
    fn remember(&mut self, rows: &[Vec<Value>]) {
        self.by_print.clear();
        let mut floats = 0;
        for value in rows.iter().flatten() {
            if let Value::Float32Array(array) = value
                && array.len() >= SHARED_ARRAY_MIN
            {
                floats += array.len();
                if floats > DELIVERED_FLOATS_MAX {
                    break;
                }
                self.by_print.insert(print(array), Arc::clone(array));
            }
        }
    }

    /// Replaces each array of `rows` equal (bit for bit) to a delivered one by that one,
    /// then forgets the delivered arrays (a copy writes a batch back once; holding them
    /// longer would only hold memory).
    fn share(&mut self, rows: &mut [Vec<Value>]) {
        if self.by_print.is_empty() {
            return;
        }
        for value in rows.iter_mut().flatten() {
            if let Value::Float32Array(array) = value
                && array.len() >= SHARED_ARRAY_MIN
                && let Some(delivered) = self.by_print.get(&print(array)).cloned()
                && !Arc::ptr_eq(&delivered, array)
                && migrun_types::value::same_bits(&delivered, array)
            {
                *array = delivered;
            }
        }
        self.by_print.clear();
    }
}

/// The length and four floats' bits, mixed: enough to find the one candidate.
fn print(v: &[f32]) -> u64 {
    let n = v.len();
    [0, 1, n / 2, n - 1].iter().fold(n as u64, |h, &i| {
        (h.rotate_left(23) ^ u64::from(v[i].to_bits())).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

fn count(result: CallResult) -> DbAnswer<u64> {
    match result {
        CallResult::Count { n } => Ok(Ok(n)),
        other => Ok(Err(error_of(other)?)),
    }
}

/// The database error of a failed call (a kind this migrun does not know reads
/// as `other`), or a host error when the result is no error at all.
pub(crate) fn error_of(result: CallResult) -> wasmtime::Result<DbError> {
    match result {
        CallResult::Error {
            error_kind,
            code,
            message,
        } => Ok(DbError {
            kind: DbErrorKind::from_name(&error_kind).unwrap_or(DbErrorKind::Other),
            code,
            message,
        }),
        other => Err(unexpected(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(v: &Value) -> &Arc<Vec<f32>> {
        match v {
            Value::Float32Array(a) => a,
            other => panic!("{other:?}"),
        }
    }

    /// A bulk write's array equal bit for bit to a delivered one shares its allocation;
    /// one that differs in a float, in a NaN's payload or in length does not; after
    /// the write the delivered arrays are no longer held.
    #[test]
    fn delivered_arrays_are_shared_only_when_every_bit_is_the_same() {
        let floats: Vec<f32> = (0..64).map(|i| i as f32 * 0.5).collect();
        let delivered = vec![
            vec![Value::Int(1), Value::Float32Array(floats.clone().into())],
            vec![
                Value::Int(2),
                Value::Float32Array(vec![f32::NAN; 32].into()),
            ],
        ];
        let mut memo = DeliveredArrays::default();
        memo.remember(&delivered);

        let mut changed = floats.clone();
        changed[40] += 1.0;
        let other_nan = f32::from_bits(f32::NAN.to_bits() | 1);
        let mut rows = vec![
            vec![Value::Float32Array(floats.clone().into())],
            vec![Value::Float32Array(changed.into())],
            vec![Value::Float32Array(vec![f32::NAN; 32].into())],
            vec![Value::Float32Array(vec![other_nan; 32].into())],
            vec![Value::Float32Array(floats[..63].to_vec().into())],
        ];
        memo.share(&mut rows);
        assert!(Arc::ptr_eq(array(&rows[0][0]), array(&delivered[0][1])));
        assert!(!Arc::ptr_eq(array(&rows[1][0]), array(&delivered[0][1])));
        assert!(Arc::ptr_eq(array(&rows[2][0]), array(&delivered[1][1])));
        assert!(!Arc::ptr_eq(array(&rows[3][0]), array(&delivered[1][1])));
        assert_eq!(array(&rows[4][0]).len(), 63);

        // A bulk write ends the memo: a second one shares nothing, and nothing is held.
        let mut again = vec![vec![Value::Float32Array(floats.clone().into())]];
        let before = Arc::as_ptr(array(&again[0][0]));
        memo.share(&mut again);
        assert_eq!(Arc::as_ptr(array(&again[0][0])), before);
    }
}
