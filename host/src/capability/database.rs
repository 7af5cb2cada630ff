//! The `database` interface: named connections, queries, cursors and bulk inserts.
//!
//! This module owns the connections of one run. A plugin opens a connection
//! by the name it declared; the runner has already connected every declared
//! name (so a bad URL fails before any unit starts) and opens and closes the
//! unit transactions around the plugin's calls. The plugin therefore never
//! sees a URL and never begins or commits. Every database failure reaches the
//! plugin as a `db-error` value; only host bugs (a stale resource handle)
//! trap.

use std::collections::BTreeMap;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::contract::v0_1_0::{self as wit, database, types};
use crate::db::{self, Access, DbError, DbErrorKind};

/// A connection handle as the guest holds it: just the name it was opened by.
pub struct ConnectionResource {
    name: String,
}

/// An open cursor: the connection it streams from and the driver's handle.
pub struct CursorResource {
    connection: String,
    handle: db::CursorHandle,
    exhausted: bool,
}

/// Rows a unit wrote through one connection, as counted by the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteCounts {
    /// Statements run through `execute`.
    pub statements: u64,
    /// Rows affected by `execute` plus rows inserted by `bulk-insert`.
    pub rows: u64,
}

/// The connections of one run and the guest's handles to them.
pub struct DatabaseCtx {
    connections: BTreeMap<String, db::Connection>,
    table: ResourceTable,
    writes: BTreeMap<String, WriteCounts>,
}

impl DatabaseCtx {
    /// Wraps already opened connections, keyed by the name the plugin declared.
    pub fn new(connections: BTreeMap<String, db::Connection>) -> Self {
        DatabaseCtx {
            connections,
            table: ResourceTable::new(),
            writes: BTreeMap::new(),
        }
    }

    /// The connections, for the runner's transaction control.
    pub fn connections_mut(&mut self) -> impl Iterator<Item = &mut db::Connection> {
        self.connections.values_mut()
    }

    /// Takes the write counts since the last call (one unit's worth).
    pub fn take_writes(&mut self) -> BTreeMap<String, WriteCounts> {
        std::mem::take(&mut self.writes)
    }

    /// Closes every connection (rolling back whatever is still open).
    pub async fn close(self) {
        for (_, conn) in self.connections {
            conn.close().await;
        }
    }

    fn conn(&mut self, handle: &Resource<ConnectionResource>) -> wasmtime::Result<&mut db::Connection> {
        let name = &self.table.get(handle)?.name;
        // Names in the table were checked against `connections` when opened.
        Ok(self
            .connections
            .get_mut(name)
            .expect("opened connection names exist"))
    }

    fn count_write(&mut self, handle: &Resource<ConnectionResource>, statements: u64, rows: u64) {
        if let Ok(res) = self.table.get(handle) {
            let counts = self.writes.entry(res.name.clone()).or_default();
            counts.statements += statements;
            counts.rows += rows;
        }
    }
}

/// Marker tying the generated `add_to_linker` to [`DatabaseCtx`].
struct Database;

impl HasData for Database {
    type Data<'a> = &'a mut DatabaseCtx;
}

/// Adds the `database` interface to `linker`, reaching the context through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut DatabaseCtx,
) -> wasmtime::Result<()> {
    database::add_to_linker::<T, Database>(linker, get)?;
    types::add_to_linker::<T, Database>(linker, get)
}

impl types::Host for DatabaseCtx {}

type DbResult<T> = wasmtime::Result<Result<T, types::DbError>>;

impl database::Host for DatabaseCtx {
    async fn open(&mut self, name: String) -> DbResult<Resource<ConnectionResource>> {
        if !self.connections.contains_key(&name) {
            let known: Vec<&str> = self.connections.keys().map(String::as_str).collect();
            return Ok(Err(DbError {
                kind: DbErrorKind::UnknownConnection,
                code: None,
                message: format!(
                    "no connection named `{name}`: the plugin declared {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            }
            .into()));
        }
        Ok(Ok(self.table.push(ConnectionResource { name })?))
    }
}

impl database::HostConnection for DatabaseCtx {
    async fn dialect(&mut self, conn: Resource<ConnectionResource>) -> wasmtime::Result<database::Dialect> {
        Ok(self.conn(&conn)?.dialect().into())
    }

    async fn access(&mut self, conn: Resource<ConnectionResource>) -> wasmtime::Result<database::Access> {
        Ok(self.conn(&conn)?.access().into())
    }

    async fn query(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
    ) -> DbResult<types::Rows> {
        let params = match wit::values_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.into())),
        };
        let result = self.conn(&conn)?.query(&sql, &params).await;
        Ok(result
            .map(|rows| types::Rows {
                columns: wit::columns_to_wit(&rows.columns),
                rows: wit::rows_to_wit(rows.rows),
            })
            .map_err(Into::into))
    }

    async fn execute(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
    ) -> DbResult<u64> {
        let params = match wit::values_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.into())),
        };
        let c = self.conn(&conn)?;
        let writable = c.access() == Access::ReadWrite;
        let result = c.execute(&sql, &params).await;
        if let (Ok(rows), true) = (&result, writable) {
            self.count_write(&conn, 1, *rows);
        }
        Ok(result.map_err(Into::into))
    }

    async fn open_cursor(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
        batch_size: u32,
    ) -> DbResult<Resource<CursorResource>> {
        let params = match wit::values_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.into())),
        };
        let name = self.table.get(&conn)?.name.clone();
        let result = self.conn(&conn)?.open_cursor(&sql, &params, batch_size).await;
        match result {
            Ok(handle) => Ok(Ok(self.table.push(CursorResource {
                connection: name,
                handle,
                exhausted: false,
            })?)),
            Err(e) => Ok(Err(e.into())),
        }
    }

    async fn bulk_insert(
        &mut self,
        conn: Resource<ConnectionResource>,
        table: String,
        columns: Vec<String>,
        rows: Vec<Vec<types::Value>>,
    ) -> DbResult<u64> {
        let mut converted = Vec::with_capacity(rows.len());
        for row in rows {
            match wit::values_from_wit(row) {
                Ok(r) => converted.push(r),
                Err(e) => return Ok(Err(e.into())),
            }
        }
        let result = self.conn(&conn)?.bulk_insert(&table, &columns, &converted).await;
        if let Ok(rows) = &result {
            self.count_write(&conn, 0, *rows);
        }
        Ok(result.map_err(Into::into))
    }

    async fn drop(&mut self, conn: Resource<ConnectionResource>) -> wasmtime::Result<()> {
        // The physical connection belongs to the run, not to the handle.
        self.table.delete(conn)?;
        Ok(())
    }
}

impl database::HostCursor for DatabaseCtx {
    async fn columns(&mut self, cursor: Resource<CursorResource>) -> wasmtime::Result<Vec<types::Column>> {
        Ok(wit::columns_to_wit(self.table.get(&cursor)?.handle.columns()))
    }

    async fn next_batch(
        &mut self,
        cursor: Resource<CursorResource>,
    ) -> DbResult<Option<Vec<Vec<types::Value>>>> {
        let res = self.table.get(&cursor)?;
        if res.exhausted {
            return Ok(Ok(None));
        }
        let name = res.connection.clone();
        let conn = self
            .connections
            .get_mut(&name)
            .expect("cursor connections exist");
        let res = self.table.get_mut(&cursor)?;
        let result = conn.next_batch(&res.handle).await;
        if matches!(result, Ok(None) | Err(_)) {
            res.exhausted = true;
            conn.close_cursor(&res.handle).await;
        }
        Ok(result.map(|b| b.map(wit::rows_to_wit)).map_err(Into::into))
    }

    async fn drop(&mut self, cursor: Resource<CursorResource>) -> wasmtime::Result<()> {
        let res = self.table.delete(cursor)?;
        if !res.exhausted
            && let Some(conn) = self.connections.get_mut(&res.connection)
        {
            conn.close_cursor(&res.handle).await;
        }
        Ok(())
    }
}
