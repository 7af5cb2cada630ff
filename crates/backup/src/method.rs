//! Each dialect's backup methods behind one trait, so the store (`store.rs`)
//! is written once: `sqlite.rs` (the online backup API into a copy of the
//! file), `postgres.rs` (native binary `COPY` or `pg_dump`), `mysql.rs`
//! (native or `mariadb-dump`).
//!
//! [`methods`] is the one dispatch on the dialect. Verifying a snapshot is
//! dispatched by the method its manifest records, in the store.

use std::path::Path;

use cap_std::fs::Dir;
use futures::future::BoxFuture;

use super::pattern::Catalog;
use super::store::Taken;
use super::{BackupError, Manifest, ManifestTable, RestoredSchema, RestoredTable, SnapshotRequest};
use migrun_db::Dialect;

/// A snapshot's directory, opened in the store and by path (SQLite's online
/// backup API writes to a path).
#[derive(Clone, Copy)]
pub(crate) struct SnapshotDir<'a> {
    /// The directory, opened through the store.
    pub dir: &'a Dir,
    /// Its path.
    pub path: &'a Path,
}

/// What backing up and restoring does on one dialect.
pub(crate) trait BackupMethods: Sync {
    /// The tables and schemas of the database at `url`, on a connection of its own.
    fn catalog_of<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Catalog, BackupError>>;

    /// Writes the snapshot `request` asks for into `at`.
    fn snapshot<'a>(
        &'a self,
        request: &'a SnapshotRequest,
        at: SnapshotDir<'a>,
    ) -> BoxFuture<'a, Result<Taken, BackupError>>;

    /// Puts `tables` of the snapshot at `at` back into the database at `url`.
    fn restore<'a>(
        &'a self,
        manifest: &'a Manifest,
        at: SnapshotDir<'a>,
        url: &'a str,
        tables: &'a [&'a ManifestTable],
    ) -> BoxFuture<'a, Result<Vec<RestoredTable>, BackupError>>;

    /// Drops each of the schemas `names` that holds no relation (never
    /// CASCADE); nothing where the dialect has no schemas.
    fn drop_empty_schemas<'a>(
        &'a self,
        url: &'a str,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RestoredSchema>, BackupError>>;
}

/// The backup methods of `dialect`: the one place that matches on it.
pub(crate) fn methods(dialect: Dialect) -> &'static dyn BackupMethods {
    match dialect {
        Dialect::Sqlite => &SqliteBackup,
        Dialect::Postgres => &PostgresBackup,
        Dialect::MySql => &MySqlBackup,
    }
}

struct SqliteBackup;
struct PostgresBackup;
struct MySqlBackup;

impl BackupMethods for SqliteBackup {
    fn catalog_of<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Catalog, BackupError>> {
        Box::pin(super::sqlite::catalog_of(url))
    }

    fn snapshot<'a>(
        &'a self,
        request: &'a SnapshotRequest,
        at: SnapshotDir<'a>,
    ) -> BoxFuture<'a, Result<Taken, BackupError>> {
        Box::pin(super::sqlite::snapshot(request, at.dir, at.path))
    }

    fn restore<'a>(
        &'a self,
        _manifest: &'a Manifest,
        at: SnapshotDir<'a>,
        url: &'a str,
        tables: &'a [&'a ManifestTable],
    ) -> BoxFuture<'a, Result<Vec<RestoredTable>, BackupError>> {
        Box::pin(super::sqlite::restore(at.path, url, tables))
    }

    fn drop_empty_schemas<'a>(
        &'a self,
        _url: &'a str,
        _names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RestoredSchema>, BackupError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

impl BackupMethods for PostgresBackup {
    fn catalog_of<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Catalog, BackupError>> {
        Box::pin(super::postgres::catalog_of(url))
    }

    fn snapshot<'a>(
        &'a self,
        request: &'a SnapshotRequest,
        at: SnapshotDir<'a>,
    ) -> BoxFuture<'a, Result<Taken, BackupError>> {
        Box::pin(super::postgres::snapshot(request, at.dir))
    }

    fn restore<'a>(
        &'a self,
        manifest: &'a Manifest,
        at: SnapshotDir<'a>,
        url: &'a str,
        tables: &'a [&'a ManifestTable],
    ) -> BoxFuture<'a, Result<Vec<RestoredTable>, BackupError>> {
        Box::pin(super::postgres::restore(manifest, at.dir, url, tables))
    }

    fn drop_empty_schemas<'a>(
        &'a self,
        url: &'a str,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RestoredSchema>, BackupError>> {
        Box::pin(super::postgres::drop_empty_schemas(url, names))
    }
}

impl BackupMethods for MySqlBackup {
    fn catalog_of<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Catalog, BackupError>> {
        Box::pin(super::mysql::catalog_of(url))
    }

    fn snapshot<'a>(
        &'a self,
        request: &'a SnapshotRequest,
        at: SnapshotDir<'a>,
    ) -> BoxFuture<'a, Result<Taken, BackupError>> {
        Box::pin(super::mysql::snapshot(request, at.dir))
    }

    fn restore<'a>(
        &'a self,
        manifest: &'a Manifest,
        at: SnapshotDir<'a>,
        url: &'a str,
        tables: &'a [&'a ManifestTable],
    ) -> BoxFuture<'a, Result<Vec<RestoredTable>, BackupError>> {
        Box::pin(super::mysql::restore(manifest, at.dir, url, tables))
    }

    fn drop_empty_schemas<'a>(
        &'a self,
        url: &'a str,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RestoredSchema>, BackupError>> {
        Box::pin(super::mysql::drop_empty_schemas(url, names))
    }
}
