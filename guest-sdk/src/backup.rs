//! Snapshots before risky writes (contract 0.1.1's `backup` interface).
//!
//! The host already snapshots every table a plugin declares in
//! [`Need::writes`](crate::Need) before the run's first write; call
//! [`snapshot`] for anything else you are about to change (a table you only
//! discover at run time, a whole database). Restoring is the operator's
//! `migrun restore <id>`, never the plugin's.

use crate::bindings::migrun::plugin::backup as wit;
use crate::error::{Error, Result};

/// A snapshot the host took and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its id, as `migrun backup list|verify` and `migrun restore` name it.
    pub id: String,
    /// The connection whose tables it holds.
    pub connection: String,
    /// `sqlite-backup`, `pg-dump`, `mariadb-dump` or `native`.
    pub method: String,
    /// Each table with its row count and checksum.
    pub tables: Vec<(String, u64, String)>,
}

fn from_wit(s: wit::SnapshotInfo) -> Snapshot {
    Snapshot {
        id: s.id,
        connection: s.connection,
        method: s.method,
        tables: s
            .tables
            .into_iter()
            .map(|t| (t.name, t.rows, t.checksum))
            .collect(),
    }
}

fn error(e: wit::BackupError) -> Error {
    use wit::BackupError as E;
    let (kind, message) = match e {
        E::UnknownConnection(m) => ("unknown connection", m),
        E::UnknownTable(m) => ("unknown table", m),
        E::InvalidName(m) => ("invalid name", m),
        E::Storage(m) => ("backup storage", m),
        E::Database(m) => ("database", m),
        E::NotFound(m) => ("not found", m),
        E::Corrupt(m) => ("corrupt backup", m),
        E::Disabled(m) => ("backups disabled", m),
    };
    Error::failed(format!("backup failed ({kind}): {message}"))
}

/// Snapshots `tables` of `connection` (every table when empty) under a plain `label`.
pub fn snapshot(connection: &str, tables: &[&str], label: &str) -> Result<Snapshot> {
    let tables: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    wit::snapshot(connection, &tables, label)
        .map(from_wit)
        .map_err(error)
}

/// The snapshots taken so far in this run (the host's own first).
pub fn snapshots() -> Vec<Snapshot> {
    wit::snapshots().into_iter().map(from_wit).collect()
}

/// Re-reads snapshot `id` against its manifest.
pub fn verify(id: &str) -> Result<Snapshot> {
    wit::verify(id).map(from_wit).map_err(error)
}
