//! Named connections, queries, cursors and bulk inserts.
//!
//! A [`Connection`] is a cheap handle naming a connection the plugin declared.
//! The host resource behind it is opened on first use in each call into the
//! plugin and shared by every handle of that name during the call; the SDK
//! drops it when the call returns. A handle kept in the plugin's state
//! therefore stays usable across units: it reopens, inside the new unit's
//! transaction, the next time it is used.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::migrun::plugin::database as wit_db;
use crate::row::rows_under;
use crate::wit::{
    access_from_wit, columns_from_wit, dialect_from_wit, rows_from_wit, values_to_wit,
};
use crate::{Column, Error, Result, Row, Rows, Value};

/// The SQL dialect behind a connection and what it may do, with placeholder
/// and quoting helpers: the same types the host uses (`migrun-types`).
pub use migrun_types::{Access, Dialect};

/// A host connection resource opened during the current call.
struct Open {
    name: Rc<str>,
    resource: Rc<wit_db::Connection>,
}

thread_local! {
    /// Connections opened during the current call into the plugin, by name.
    static OPEN: RefCell<Vec<Open>> = const { RefCell::new(Vec::new()) };
}

/// Drops every connection opened during the call; the export glue calls it
/// when a call into the plugin returns.
pub(crate) fn close_all() {
    let open = OPEN.with(|open| std::mem::take(&mut *open.borrow_mut()));
    drop(open);
}

fn resource(name: &Rc<str>) -> Result<Rc<wit_db::Connection>> {
    if let Some(found) = OPEN.with(|open| {
        open.borrow()
            .iter()
            .find(|o| o.name == *name)
            .map(|o| Rc::clone(&o.resource))
    }) {
        return Ok(found);
    }
    let resource = Rc::new(wit_db::open(name)?);
    OPEN.with(|open| {
        open.borrow_mut().push(Open {
            name: Rc::clone(name),
            resource: Rc::clone(&resource),
        })
    });
    Ok(resource)
}

/// A named database connection.
///
/// ```no_run
/// use migrun_sdk::{params, Connection};
///
/// # fn main() -> migrun_sdk::Result<()> {
/// let source = Connection::open("source")?;
/// let sql = format!("SELECT id, email FROM users WHERE id > {}", source.placeholder(1));
/// for row in source.query(&sql, params![100])? {
///     let email: Option<String> = row.get("email")?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Connection {
    name: Rc<str>,
    dialect: Dialect,
    access: Access,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.name)
            .field("dialect", &self.dialect)
            .field("access", &self.access)
            .finish()
    }
}

impl Connection {
    /// Opens the connection the operator configured under `name` (a name the plugin declared).
    pub fn open(name: &str) -> Result<Connection> {
        let name: Rc<str> = Rc::from(name);
        let resource = resource(&name)?;
        Ok(Connection {
            dialect: dialect_from_wit(resource.dialect()),
            access: access_from_wit(resource.access()),
            name,
        })
    }

    /// Opens a connection declared [`Need::optional`](crate::Need::optional): `None` when
    /// the operator did not configure it, so the plugin goes on without it.
    pub fn open_optional(name: &str) -> Result<Option<Connection>> {
        match Connection::open(name) {
            Ok(conn) => Ok(Some(conn)),
            Err(Error::Database(e)) if e.kind == crate::DbErrorKind::UnknownConnection => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The name the connection was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQL dialect, to pick SQL that fits.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The access the operator granted.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The `n`th (1-based) bind placeholder for this connection's dialect.
    pub fn placeholder(&self, n: usize) -> String {
        self.dialect.placeholder(n)
    }

    /// Runs one statement with bound parameters and returns all of its rows.
    pub fn query(&self, sql: &str, params: Vec<Value>) -> Result<Rows> {
        let rows = resource(&self.name)?.query(sql, &values_to_wit(params))?;
        Ok(Rows::new(
            columns_from_wit(rows.columns),
            rows_from_wit(rows.rows),
        ))
    }

    /// Runs a query and decodes every row into `T` (see [`Row::deserialize`]).
    ///
    /// ```no_run
    /// # use migrun_sdk::{params, Connection};
    /// #[derive(serde::Deserialize)]
    /// struct User {
    ///     id: i64,
    ///     email: Option<String>,
    /// }
    /// # fn main() -> migrun_sdk::Result<()> {
    /// let users: Vec<User> = Connection::open("source")?.query_as("SELECT id, email FROM users", params![])?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn query_as<T: DeserializeOwned>(&self, sql: &str, params: Vec<Value>) -> Result<Vec<T>> {
        self.query(sql, params)?.deserialize()
    }

    /// Runs a query and decodes its first row into `T`; no row is an error.
    pub fn query_one_as<T: DeserializeOwned>(&self, sql: &str, params: Vec<Value>) -> Result<T> {
        self.query_opt_as(sql, params)?
            .ok_or_else(|| Error::Failed(format!("query returned no rows: {sql}")))
    }

    /// Runs a query and decodes its first row into `T`, if there is one.
    pub fn query_opt_as<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Option<T>> {
        self.query(sql, params)?
            .rows()
            .first()
            .map(Row::deserialize)
            .transpose()
    }

    /// Runs a one-column query (`SELECT COUNT(*) …`) and decodes the first row's value.
    pub fn query_scalar<T: DeserializeOwned>(&self, sql: &str, params: Vec<Value>) -> Result<T> {
        let rows = self.query(sql, params)?;
        let Some(row) = rows.rows().first() else {
            return Err(Error::Failed(format!("query returned no rows: {sql}")));
        };
        row.get_at(0)
    }

    /// Runs one statement with bound parameters and returns the number of rows it affected.
    pub fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64> {
        Ok(resource(&self.name)?.execute(sql, &values_to_wit(params))?)
    }

    /// Starts a query whose rows arrive in batches of at most `batch_size`, so memory stays bounded.
    ///
    /// While the cursor is open this connection runs no other statement;
    /// iterate it to the end or drop it first. Write through another connection.
    ///
    /// ```no_run
    /// # use migrun_sdk::{params, Connection};
    /// # fn main() -> migrun_sdk::Result<()> {
    /// let source = Connection::open("source")?;
    /// for batch in source.cursor("SELECT id, email FROM users ORDER BY id", params![], 1000)? {
    ///     for row in batch? {
    ///         let id: i64 = row.get("id")?;
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn cursor(&self, sql: &str, params: Vec<Value>, batch_size: u32) -> Result<Cursor> {
        if batch_size == 0 {
            return Err(Error::Failed("cursor batch size must be at least 1".into()));
        }
        let connection = resource(&self.name)?;
        let cursor = connection.open_cursor(sql, &values_to_wit(params), batch_size)?;
        let columns: Rc<[Column]> = columns_from_wit(cursor.columns()).into();
        Ok(Cursor {
            cursor: Some(cursor),
            columns,
            _connection: connection,
        })
    }

    /// Like [`cursor`](Self::cursor), decoding every row into `T`.
    pub fn cursor_as<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: Vec<Value>,
        batch_size: u32,
    ) -> Result<TypedCursor<T>> {
        Ok(self.cursor(sql, params, batch_size)?.typed())
    }

    /// Inserts `rows` into `table` (optionally `schema.table`) on the dialect's fastest
    /// path (`COPY` on PostgreSQL, multi-row `INSERT` elsewhere); returns the rows inserted.
    ///
    /// Every row holds one value per column, in the order of `columns`.
    ///
    /// **When errors come (PostgreSQL, inside a unit).** Consecutive calls into the same
    /// table and columns stream into one open `COPY`: this returns the rows *accepted into
    /// the stream* as soon as they are sent, and the server judges them when the stream
    /// ends — at the next other call on this connection (a query, a statement, a cursor, a
    /// bulk insert into another table) or at the unit's end. A refused row is then that
    /// call's error, or fails the unit (rolled back), with a message naming the batch: the
    /// n-th bulk insert into the table in this unit and its first row's position. Once a
    /// stream failed the transaction is aborted: the unit fails whatever the plugin does
    /// with the error. Errors the host finds itself (no such table or column, a row of the
    /// wrong width) still come from this call. MySQL/MariaDB and SQLite, and PostgreSQL
    /// outside a unit: each call is complete (all rows or none) when it returns.
    pub fn bulk_insert<S: AsRef<str>>(
        &self,
        table: &str,
        columns: &[S],
        rows: Vec<Vec<Value>>,
    ) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        check_widths(table, columns.len(), &rows)?;
        let columns: Vec<String> = columns.iter().map(|c| c.as_ref().to_owned()).collect();
        let rows: Vec<_> = rows.into_iter().map(values_to_wit).collect();
        Ok(resource(&self.name)?.bulk_insert(table, &columns, &rows)?)
    }

    /// Sets `columns` of the rows of `table` whose `keys` match (contract 0.2.0
    /// `bulk-update`); returns the rows matched (also those already holding the new values).
    ///
    /// Each row holds its key values (in the order of `keys`), then its new values (in the
    /// order of `columns`): with keys `["id"]` and columns `["amount_cents"]`, a row is
    /// `[id, amount_cents]`. A key appears at most once per call; a key holding NULL, or one
    /// no row has, changes nothing. The host writes all rows or none, in the dialect's
    /// fastest form (on PostgreSQL a `COPY` into a temporary table then one `UPDATE … FROM`),
    /// and quotes every name.
    ///
    /// ```no_run
    /// # fn f(target: &migrun_sdk::Connection) -> migrun_sdk::Result<()> {
    /// use migrun_sdk::Value;
    /// let repriced = vec![vec![Value::Int(17), Value::Int(1200)]];
    /// target.bulk_update("orders", &["id"], &["amount_cents"], repriced)?;
    /// # Ok(()) }
    /// ```
    pub fn bulk_update<K: AsRef<str>, C: AsRef<str>>(
        &self,
        table: &str,
        keys: &[K],
        columns: &[C],
        rows: Vec<Vec<Value>>,
    ) -> Result<u64> {
        let (keys, columns, rows) = keyed("bulk update", table, keys, columns, rows)?;
        if rows.is_empty() {
            return Ok(0);
        }
        Ok(resource(&self.name)?.bulk_update(table, &keys, &columns, &rows)?)
    }

    /// Inserts each row into `table`, or sets `columns` of the row whose `keys` match where
    /// one exists (contract 0.2.0 `bulk-upsert`; the keys need a unique index or the primary
    /// key); returns the rows given, each inserted or updated once. Rows as for
    /// [`bulk_update`](Self::bulk_update): key values, then the values of `columns`.
    pub fn bulk_upsert<K: AsRef<str>, C: AsRef<str>>(
        &self,
        table: &str,
        keys: &[K],
        columns: &[C],
        rows: Vec<Vec<Value>>,
    ) -> Result<u64> {
        let (keys, columns, rows) = keyed("bulk upsert", table, keys, columns, rows)?;
        if rows.is_empty() {
            return Ok(0);
        }
        Ok(resource(&self.name)?.bulk_upsert(table, &keys, &columns, &rows)?)
    }

    /// Deletes the rows of `table` whose `keys` match (contract 0.2.0 `bulk-delete`); each
    /// of `rows` is one key's values, in the order of `keys`. Returns the rows deleted.
    pub fn bulk_delete<K: AsRef<str>>(
        &self,
        table: &str,
        keys: &[K],
        rows: Vec<Vec<Value>>,
    ) -> Result<u64> {
        let (keys, _, rows) = keyed::<K, &str>("bulk delete", table, keys, &[], rows)?;
        if rows.is_empty() {
            return Ok(0);
        }
        Ok(resource(&self.name)?.bulk_delete(table, &keys, &rows)?)
    }

    /// A [`BulkWriter`] into `table` that flushes every `batch_rows` rows.
    pub fn bulk_writer<S: AsRef<str>>(
        &self,
        table: &str,
        columns: &[S],
        batch_rows: usize,
    ) -> BulkWriter {
        BulkWriter {
            connection: self.clone(),
            table: table.to_owned(),
            columns: columns.iter().map(|c| c.as_ref().to_owned()).collect(),
            batch_rows: batch_rows.max(1),
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// The names and rows of a bulk write by key, checked for width and converted.
type KeyedCall = (
    Vec<String>,
    Vec<String>,
    Vec<Vec<crate::bindings::migrun::plugin::types::Value>>,
);

fn keyed<K: AsRef<str>, C: AsRef<str>>(
    what: &str,
    table: &str,
    keys: &[K],
    columns: &[C],
    rows: Vec<Vec<Value>>,
) -> Result<KeyedCall> {
    let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_owned()).collect();
    let columns: Vec<String> = columns.iter().map(|c| c.as_ref().to_owned()).collect();
    let width = keys.len() + columns.len();
    if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(Error::Failed(format!(
            "{what} of {table}: row {i} has {} values for {} keys and {} columns",
            row.len(),
            keys.len(),
            columns.len()
        )));
    }
    let rows = rows.into_iter().map(values_to_wit).collect();
    Ok((keys, columns, rows))
}

fn check_widths(table: &str, width: usize, rows: &[Vec<Value>]) -> Result<()> {
    if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
        return Err(Error::Failed(format!(
            "bulk insert into {table}: row {i} has {} values for {width} columns",
            row.len()
        )));
    }
    Ok(())
}

/// A streaming query result: an iterator of row batches.
///
/// The cursor frees its connection when it is exhausted, after an error, or when dropped.
pub struct Cursor {
    // Declared before the connection so the cursor resource is dropped first.
    cursor: Option<wit_db::Cursor>,
    columns: Rc<[Column]>,
    _connection: Rc<wit_db::Connection>,
}

impl Cursor {
    /// The columns of the result.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The same cursor, decoding every row into `T`.
    pub fn typed<T: DeserializeOwned>(self) -> TypedCursor<T> {
        TypedCursor {
            cursor: self,
            _row: PhantomData,
        }
    }
}

impl Iterator for Cursor {
    type Item = Result<Vec<Row>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let cursor = self.cursor.as_ref()?;
            match cursor.next_batch() {
                Ok(Some(batch)) if batch.is_empty() => continue,
                Ok(Some(batch)) => {
                    return Some(Ok(rows_under(&self.columns, rows_from_wit(batch))));
                }
                Ok(None) => {
                    self.cursor = None;
                    return None;
                }
                Err(e) => {
                    self.cursor = None;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor")
            .field("columns", &self.columns)
            .field("open", &self.cursor.is_some())
            .finish()
    }
}

/// A [`Cursor`] whose rows decode into `T`: an iterator of `Result<Vec<T>>` batches.
pub struct TypedCursor<T> {
    cursor: Cursor,
    _row: PhantomData<fn() -> T>,
}

impl<T> TypedCursor<T> {
    /// The columns of the result.
    pub fn columns(&self) -> &[Column] {
        self.cursor.columns()
    }
}

impl<T: DeserializeOwned> Iterator for TypedCursor<T> {
    type Item = Result<Vec<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.cursor.next()?;
        Some(batch.and_then(|rows| rows.iter().map(Row::deserialize).collect()))
    }
}

/// Buffers rows and bulk-inserts them every `batch_rows` rows.
///
/// Call [`finish`](Self::finish) to write the last partial batch and get the
/// total. A writer dropped with rows still buffered does not write them (it
/// cannot report an error from `drop`); it logs a warning instead.
///
/// ```no_run
/// # use migrun_sdk::{params, Connection};
/// # fn main() -> migrun_sdk::Result<()> {
/// let target = Connection::open("target")?;
/// let mut writer = target.bulk_writer("auth_users", &["id", "email"], 500);
/// for id in 1..=1200 {
///     writer.push(params![id, format!("user{id}@example.com")])?; // flushes at 500 and 1000
/// }
/// assert_eq!(writer.finish()?, 1200);
/// # Ok(())
/// # }
/// ```
pub struct BulkWriter {
    connection: Connection,
    table: String,
    columns: Vec<String>,
    batch_rows: usize,
    pending: Vec<Vec<Value>>,
    written: u64,
}

impl BulkWriter {
    /// Buffers one row (one value per column), flushing when the batch is full.
    pub fn push(&mut self, row: Vec<Value>) -> Result<()> {
        if row.len() != self.columns.len() {
            return Err(Error::Failed(format!(
                "bulk insert into {}: row has {} values for {} columns ({})",
                self.table,
                row.len(),
                self.columns.len(),
                self.columns.join(", ")
            )));
        }
        self.pending.push(row);
        if self.pending.len() >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Buffers a `Serialize` struct or tuple as one row (see [`to_values`](crate::to_values));
    /// its fields must be in the order of the writer's columns.
    pub fn push_serialize<T: Serialize + ?Sized>(&mut self, row: &T) -> Result<()> {
        self.push(crate::to_values(row)?)
    }

    /// Buffers many rows.
    pub fn extend<I: IntoIterator<Item = Vec<Value>>>(&mut self, rows: I) -> Result<()> {
        rows.into_iter().try_for_each(|row| self.push(row))
    }

    /// Writes the buffered rows now; returns how many were written.
    pub fn flush(&mut self) -> Result<u64> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let rows = std::mem::take(&mut self.pending);
        let n = self
            .connection
            .bulk_insert(&self.table, &self.columns, rows)?;
        self.written += n;
        Ok(n)
    }

    /// Writes what is left and returns the total number of rows written.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.written)
    }

    /// Rows written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Rows buffered and not yet written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

impl Drop for BulkWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() && !std::thread::panicking() {
            crate::log::write(
                crate::log::Level::Warn,
                &format!(
                    "bulk writer for {} dropped with {} rows not written (call finish())",
                    self.table,
                    self.pending.len()
                ),
                &[],
            );
        }
    }
}

impl fmt::Debug for BulkWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkWriter")
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field("batch_rows", &self.batch_rows)
            .field("pending", &self.pending.len())
            .field("written", &self.written)
            .finish()
    }
}
