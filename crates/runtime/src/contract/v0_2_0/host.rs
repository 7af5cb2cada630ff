//! The `Host` implementations of contract 0.2.0 and the linker setup of the
//! 0.2.x line.
//!
//! Each is a thin delegation: `log`, `checks` and `backup` call the
//! version-free methods of their capability contexts; the value-carrying
//! `database` calls (`query`, `execute`, `open-cursor`, `bulk-insert`,
//! `next-batch`, and 0.2.0's own `bulk-update`, `bulk-upsert`, `bulk-delete`) the version-free surface of [`DatabaseCtx`] with 0.2.0's
//! value conversions (typed values included); the other `database` calls and
//! `checkpoint` the 0.1.1 implementations. Every call goes through the same
//! tape, budgets and transaction control as 0.1.x calls.
//! Resources (`connection`, `cursor`) are the same host types in both
//! versions, so a handle passes through unchanged.

use wasmtime::component::{HasData, Linker, Resource};

use super::{
    backup, checkpoint, checks, database, files, log, rows_to_wit, types, values_from_wit,
};
use crate::capability::backup::BackupCtx;
use crate::capability::checks::ChecksCtx;
use crate::capability::database::{ConnectionResource, CursorResource, DatabaseCtx, HostRows};
use crate::capability::files::{FileResource, FilesCtx};
use crate::capability::log::LogCtx;
use crate::contract::v0_1_1;
use migrun_types::BulkWriteKind;

/// Where the store's data keeps each capability's context.
pub struct ContextAccessors<T> {
    /// The database context (also serves `checkpoint`).
    pub database: fn(&mut T) -> &mut DatabaseCtx,
    /// The log context.
    pub log: fn(&mut T) -> &mut LogCtx,
    /// The checks context.
    pub checks: fn(&mut T) -> &mut ChecksCtx,
    /// The backup context.
    pub backup: fn(&mut T) -> &mut BackupCtx,
    /// The files context.
    pub files: fn(&mut T) -> &mut FilesCtx,
}

struct Database;
impl HasData for Database {
    type Data<'a> = &'a mut DatabaseCtx;
}
struct Log;
impl HasData for Log {
    type Data<'a> = &'a mut LogCtx;
}
struct Checks;
impl HasData for Checks {
    type Data<'a> = &'a mut ChecksCtx;
}
struct Backup;
impl HasData for Backup {
    type Data<'a> = &'a mut BackupCtx;
}
struct Files;
impl HasData for Files {
    type Data<'a> = &'a mut FilesCtx;
}

/// Adds every 0.2.0 interface to `linker` (the 0.2.x line's linker; WASI is added by the runtime).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    contexts: ContextAccessors<T>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<T, Database>(linker, contexts.database)?;
    database::add_to_linker::<T, Database>(linker, contexts.database)?;
    checkpoint::add_to_linker::<T, Database>(linker, contexts.database)?;
    log::add_to_linker::<T, Log>(linker, contexts.log)?;
    checks::add_to_linker::<T, Checks>(linker, contexts.checks)?;
    backup::add_to_linker::<T, Backup>(linker, contexts.backup)?;
    files::add_to_linker::<T, Files>(linker, contexts.files)
}

type DbResult<T> = wasmtime::Result<Result<T, types::DbError>>;

/// A 0.1.1 answer in its 0.2.0 form.
fn answer<A, B: From<A>>(
    result: wasmtime::Result<Result<A, v0_1_1::types::DbError>>,
) -> DbResult<B> {
    Ok(result?.map(B::from).map_err(types::DbError::from))
}

impl types::Host for DatabaseCtx {}

impl database::Host for DatabaseCtx {
    async fn open(&mut self, name: String) -> DbResult<Resource<ConnectionResource>> {
        answer(v0_1_1::database::Host::open(self, name).await)
    }
}

impl database::HostConnection for DatabaseCtx {
    async fn dialect(
        &mut self,
        conn: Resource<ConnectionResource>,
    ) -> wasmtime::Result<database::Dialect> {
        Ok(v0_1_1::database::HostConnection::dialect(self, conn)
            .await?
            .into())
    }

    async fn access(
        &mut self,
        conn: Resource<ConnectionResource>,
    ) -> wasmtime::Result<database::Access> {
        Ok(v0_1_1::database::HostConnection::access(self, conn)
            .await?
            .into())
    }

    async fn query(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
    ) -> DbResult<types::Rows> {
        let params = match values_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(self
            .plugin_query(&conn, sql, params)
            .await?
            .map(|HostRows { columns, rows }| types::Rows {
                columns: columns
                    .into_iter()
                    .map(|(name, type_name)| types::Column { name, type_name })
                    .collect(),
                rows: rows_to_wit(rows),
            })
            .map_err(Into::into))
    }

    async fn execute(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
    ) -> DbResult<u64> {
        let params = match values_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(self
            .plugin_execute(&conn, sql, params)
            .await?
            .map_err(Into::into))
    }

    async fn open_cursor(
        &mut self,
        conn: Resource<ConnectionResource>,
        sql: String,
        params: Vec<types::Value>,
        batch_size: u32,
    ) -> DbResult<Resource<CursorResource>> {
        let params = match values_from_wit(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.into())),
        };
        Ok(self
            .plugin_open_cursor(&conn, sql, params, batch_size)
            .await?
            .map_err(Into::into))
    }

    async fn bulk_insert(
        &mut self,
        conn: Resource<ConnectionResource>,
        table: String,
        columns: Vec<String>,
        rows: Vec<types::Row>,
    ) -> DbResult<u64> {
        let mut converted = Vec::with_capacity(rows.len());
        for row in rows {
            match values_from_wit(row) {
                Ok(r) => converted.push(r),
                Err(e) => return Ok(Err(e.into())),
            }
        }
        Ok(self
            .plugin_bulk_insert(&conn, table, columns, converted)
            .await?
            .map_err(Into::into))
    }

    async fn bulk_update(
        &mut self,
        conn: Resource<ConnectionResource>,
        table: String,
        keys: Vec<String>,
        columns: Vec<String>,
        rows: Vec<types::Row>,
    ) -> DbResult<u64> {
        self.bulk_write(conn, BulkWriteKind::Update, table, keys, columns, rows)
            .await
    }

    async fn bulk_upsert(
        &mut self,
        conn: Resource<ConnectionResource>,
        table: String,
        keys: Vec<String>,
        columns: Vec<String>,
        rows: Vec<types::Row>,
    ) -> DbResult<u64> {
        self.bulk_write(conn, BulkWriteKind::Upsert, table, keys, columns, rows)
            .await
    }

    async fn bulk_delete(
        &mut self,
        conn: Resource<ConnectionResource>,
        table: String,
        keys: Vec<String>,
        rows: Vec<types::Row>,
    ) -> DbResult<u64> {
        self.bulk_write(conn, BulkWriteKind::Delete, table, keys, Vec::new(), rows)
            .await
    }

    async fn drop(&mut self, conn: Resource<ConnectionResource>) -> wasmtime::Result<()> {
        v0_1_1::database::HostConnection::drop(self, conn).await
    }
}

impl DatabaseCtx {
    /// The structured writes' common conversion: 0.2.0 rows to host values.
    async fn bulk_write(
        &mut self,
        conn: Resource<ConnectionResource>,
        kind: BulkWriteKind,
        table: String,
        keys: Vec<String>,
        columns: Vec<String>,
        rows: Vec<types::Row>,
    ) -> DbResult<u64> {
        let mut converted = Vec::with_capacity(rows.len());
        for row in rows {
            match values_from_wit(row) {
                Ok(r) => converted.push(r),
                Err(e) => return Ok(Err(e.into())),
            }
        }
        Ok(self
            .plugin_bulk_write(&conn, kind, table, keys, columns, converted)
            .await?
            .map_err(Into::into))
    }
}

impl database::HostCursor for DatabaseCtx {
    async fn columns(
        &mut self,
        cursor: Resource<CursorResource>,
    ) -> wasmtime::Result<Vec<types::Column>> {
        Ok(v0_1_1::database::HostCursor::columns(self, cursor)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn next_batch(
        &mut self,
        cursor: Resource<CursorResource>,
    ) -> DbResult<Option<Vec<types::Row>>> {
        Ok(self
            .plugin_next_batch(&cursor)
            .await?
            .map(|batch| batch.map(rows_to_wit))
            .map_err(Into::into))
    }

    async fn drop(&mut self, cursor: Resource<CursorResource>) -> wasmtime::Result<()> {
        v0_1_1::database::HostCursor::drop(self, cursor).await
    }
}

impl checkpoint::Host for DatabaseCtx {
    async fn save(&mut self, state: String) -> DbResult<()> {
        answer(v0_1_1::checkpoint::Host::save(self, state).await)
    }

    async fn last(&mut self) -> wasmtime::Result<Option<String>> {
        v0_1_1::checkpoint::Host::last(self).await
    }
}

impl log::Host for LogCtx {
    async fn write(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.plugin_message(level.into(), message, fields)
    }

    async fn progress(
        &mut self,
        task: String,
        done: u64,
        total: Option<u64>,
    ) -> wasmtime::Result<()> {
        self.plugin_progress(task, done, total)
    }
}

impl checks::Host for ChecksCtx {
    async fn report(&mut self, name: String, ok: bool, detail: String) -> wasmtime::Result<()> {
        self.plugin_check(name, ok, detail)
    }
}

impl backup::Host for BackupCtx {
    async fn snapshot(
        &mut self,
        connection: String,
        tables: Vec<String>,
        label: String,
    ) -> wasmtime::Result<Result<backup::SnapshotInfo, backup::BackupError>> {
        Ok(self
            .plugin_snapshot(connection, tables, label)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn snapshots(&mut self) -> wasmtime::Result<Vec<backup::SnapshotInfo>> {
        Ok(self
            .plugin_snapshots()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn verify(
        &mut self,
        id: String,
    ) -> wasmtime::Result<Result<backup::SnapshotInfo, backup::BackupError>> {
        Ok(self
            .plugin_verify(id)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }
}

type FileResult<T> = wasmtime::Result<Result<T, files::FileError>>;

impl files::Host for FilesCtx {
    async fn open(&mut self, name: String) -> FileResult<Resource<FileResource>> {
        Ok(self.plugin_open(name).await?.map_err(Into::into))
    }

    async fn list(&mut self, dir: String) -> FileResult<Vec<String>> {
        Ok(self.plugin_list(dir).await?.map_err(Into::into))
    }
}

impl files::HostFile for FilesCtx {
    async fn name(&mut self, file: Resource<FileResource>) -> wasmtime::Result<String> {
        self.plugin_file(&file, |f| f.name().to_owned())
    }

    async fn size(&mut self, file: Resource<FileResource>) -> wasmtime::Result<u64> {
        self.plugin_file(&file, FileResource::size)
    }

    async fn sha256(&mut self, file: Resource<FileResource>) -> wasmtime::Result<String> {
        self.plugin_file(&file, |f| f.sha256().to_owned())
    }

    async fn read(&mut self, file: Resource<FileResource>, max_bytes: u32) -> FileResult<Vec<u8>> {
        Ok(self
            .plugin_read(&file, max_bytes)
            .await?
            .map_err(Into::into))
    }

    async fn drop(&mut self, file: Resource<FileResource>) -> wasmtime::Result<()> {
        self.plugin_close(file).await
    }
}
