//! The contract 0.1.1 `backup` interface over the version-free [`BackupCtx`]
//! (`crate::capability::backup`): the generated `Host` trait implemented as a thin
//! conversion, and the `add_to_linker` of the 0.1.x linker.

use crate::capability::backup::{BackupCtx, PluginBackupError};
use crate::contract::v0_1_1::backup;
use migrun_backup::SnapshotInfo;
use wasmtime::component::{HasData, Linker};

struct Backup;

impl HasData for Backup {
    type Data<'a> = &'a mut BackupCtx;
}

/// Adds the `backup` interface to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut BackupCtx,
) -> wasmtime::Result<()> {
    backup::add_to_linker::<T, Backup>(linker, get)
}

impl From<SnapshotInfo> for backup::SnapshotInfo {
    fn from(info: SnapshotInfo) -> Self {
        backup::SnapshotInfo {
            id: info.id,
            connection: info.connection,
            method: info.method,
            tables: info
                .tables
                .into_iter()
                .map(|t| backup::TableSnapshot {
                    name: t.name,
                    rows: t.rows,
                    checksum: t.checksum,
                })
                .collect(),
        }
    }
}

impl From<PluginBackupError> for backup::BackupError {
    fn from(e: PluginBackupError) -> Self {
        use PluginBackupError as H;
        use backup::BackupError as E;
        match e {
            H::UnknownConnection(m) => E::UnknownConnection(m),
            H::UnknownTable(m) => E::UnknownTable(m),
            H::InvalidName(m) => E::InvalidName(m),
            H::Storage(m) => E::Storage(m),
            H::Database(m) => E::Database(m),
            H::NotFound(m) => E::NotFound(m),
            H::Corrupt(m) => E::Corrupt(m),
            H::Disabled(m) => E::Disabled(m),
        }
    }
}

/// Contract 0.1.1.
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
