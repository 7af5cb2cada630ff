//! Backups: snapshots of the tables a run is about to change, their
//! manifests, verification and restore.
//!
//! A snapshot is a directory `<backup dir>/<id>/` holding the per-dialect
//! files and a `manifest.json` ([`Manifest`]): what was saved (tables, row
//! counts, checksums, per-file sha256), by which method, for which run and
//! journal. It is written as `<id>.partial/` and renamed into place only once
//! every file and the manifest are on disk, so a crash or a full disk never
//! leaves something that `migrun backup list` would show as a backup.
//!
//! Methods, per dialect ([`Method`]):
//! - SQLite: the online backup API copies the whole database file
//!   consistently ([`sqlite`]); restore copies tables back from it.
//! - PostgreSQL: `pg_dump --format=custom`, one archive per table, all taken
//!   in one exported snapshot, when a `pg_dump` at least as new as the server
//!   is on `PATH`; otherwise a native `COPY` of the rows (data only)
//!   ([`postgres`]).
//! - MariaDB/MySQL: `mariadb-dump`/`mysqldump` per table when present;
//!   otherwise native: `SHOW CREATE TABLE` plus the rows ([`mysql`]).
//!
//! Checksums are taken from the live database in the snapshot's own read
//! (an order-independent sum of per-row hashes, [`TableDigest`]), so that
//! after `migrun restore` the same query proves the tables are back to what
//! they were. File sha256s make `migrun backup verify` name a corrupted file.
//!
//! Files are written only inside the backup directory, opened once with
//! cap-std: ids and labels are plain names (letters, digits, `-`, `_`, `.`
//! but never `..`), and the dump tools write to a pipe the host drains into
//! a file it created there, never to a path of their own.
//!
//! Each dialect's methods are behind one trait (`method.rs`, `BackupMethods`),
//! so the store (`store.rs`) is written once for all dialects.

#![deny(missing_docs)]

mod digest;
mod external;
mod method;
mod mysql;
mod pattern;
mod postgres;
pub mod prune;
mod sqlite;
mod store;

use serde::{Deserialize, Serialize};

use migrun_db::Dialect;

pub use digest::TableDigest;
pub use pattern::{TablePattern, catch_all, check_table_or_pattern, is_pattern};
pub use prune::{PrunePlan, PruneRule, RunBackups, parse_age, plan_prune};
pub use store::{BackupStore, pattern_matches};

/// The manifest format this host writes and reads.
pub const MANIFEST_FORMAT: &str = "migrun.backup/1";

/// The manifest's file name inside a snapshot directory.
pub const MANIFEST_FILE: &str = "manifest.json";

pub use migrun_journal::{SnapshotInfo, TableSnapshot};

/// How a snapshot's data was saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// SQLite's online backup API: a consistent copy of the whole file.
    SqliteBackup,
    /// `pg_dump --format=custom`, one archive per table, one snapshot for all.
    PgDump,
    /// `mariadb-dump`/`mysqldump`, one SQL file per table.
    MariadbDump,
    /// The host's own: PostgreSQL `COPY` text (data only), MariaDB `SHOW CREATE TABLE` + rows.
    Native,
}

impl Method {
    /// The name used in manifests, reports and the WIT (`sqlite-backup`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SqliteBackup => "sqlite-backup",
            Method::PgDump => "pg-dump",
            Method::MariadbDump => "mariadb-dump",
            Method::Native => "native",
        }
    }
}

pub use migrun_config::{BackupSettings, MethodChoice};

/// What `manifest.json` records about a snapshot.
///
/// Fields added after the first release of `migrun.backup/1` are optional (`serde(default)`),
/// so older manifests still load and older readers ignore them:
/// - `patterns`: each declared pattern (`me_<slug>.memory`) with the tables it matched when
///   the snapshot was taken (those tables are also ordinary entries of `tables`) and the
///   schemas its schema part matched then;
/// - `absent_schemas`: the schemas (MariaDB: databases) of declared `schema.table` names that
///   did not exist when the snapshot was taken; a full restore drops them if they are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The snapshot's id (its directory name).
    pub id: String,
    /// The label it was taken under (`before-run` for the host's own).
    pub label: String,
    /// When it was taken (UTC, RFC 3339).
    pub created_at: String,
    /// The migrun that took it.
    pub migrun_version: String,
    /// The run that took it.
    pub run_id: String,
    /// The journal of that run.
    pub journal: String,
    /// The plugin of that run.
    pub plugin_name: String,
    /// Its sha256.
    pub plugin_sha256: String,
    /// The connection (by the name the plugin and the config use).
    pub connection: String,
    /// Its dialect.
    pub dialect: Dialect,
    /// Its URL, password redacted (restore takes the URL from the configuration).
    pub url: String,
    /// How the data was saved.
    pub method: Method,
    /// The tables, in the order asked for.
    pub tables: Vec<ManifestTable>,
    /// Every file of the snapshot, with its size and sha256.
    pub files: Vec<ManifestFile>,
    /// The declared patterns and what they matched (optional, see above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<ManifestPattern>,
    /// Schemas of declared names that did not exist yet (optional, see above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent_schemas: Vec<String>,
}

/// A declared pattern in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPattern {
    /// The pattern as declared (`me_<slug>.memory`).
    pub pattern: String,
    /// The tables it matched when the snapshot was taken (each also in [`Manifest::tables`]).
    /// A full restore drops the tables that match it then but are not listed here.
    pub tables: Vec<String>,
    /// When its schema part has a placeholder: the schemas that part matched when the
    /// snapshot was taken. Schemas matching it at restore time but not listed here were
    /// created afterwards; a full restore drops them if they are empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
}

/// One table in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTable {
    /// The table, as named (optionally `schema.table`).
    pub name: String,
    /// Whether it existed; a restore drops a table that did not.
    pub present: bool,
    /// Rows at snapshot time.
    pub rows: u64,
    /// [`TableDigest::checksum`] at snapshot time.
    pub checksum: String,
    /// The files holding it (empty for SQLite, whose one file holds every table).
    pub files: Vec<String>,
    /// Its columns, in order (native snapshots restore by them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

impl ManifestTable {
    /// A table that did not exist when the snapshot was taken: restoring drops it.
    pub fn absent(name: String) -> ManifestTable {
        ManifestTable {
            name,
            present: false,
            rows: 0,
            checksum: String::new(),
            files: Vec::new(),
            columns: Vec::new(),
        }
    }

    /// Whether `digest` (read back after a restore, or from the snapshot's copy) is what the
    /// manifest recorded: the same row count and checksum.
    pub fn matches(&self, digest: &TableDigest) -> bool {
        digest.rows == self.rows && digest.checksum == self.checksum
    }
}

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its name inside the snapshot directory.
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its sha256 (hex).
    pub sha256: String,
}

impl Manifest {
    /// The plugin-facing summary.
    pub fn info(&self) -> SnapshotInfo {
        SnapshotInfo {
            id: self.id.clone(),
            connection: self.connection.clone(),
            method: self.method.as_str().to_owned(),
            tables: self
                .tables
                .iter()
                .map(|t| TableSnapshot {
                    name: t.name.clone(),
                    rows: t.rows,
                    checksum: t.checksum.clone(),
                })
                .collect(),
        }
    }

    /// The table entry named `name`.
    pub fn table(&self, name: &str) -> Option<&ManifestTable> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The pattern entry declared as `pattern`.
    pub fn pattern(&self, pattern: &str) -> Option<&ManifestPattern> {
        self.patterns.iter().find(|p| p.pattern == pattern)
    }
}

/// Who takes a snapshot: recorded in its manifest.
#[derive(Debug, Clone, Default)]
pub struct RunIdentity {
    /// The run id.
    pub run_id: String,
    /// The journal path.
    pub journal: String,
    /// The plugin's name.
    pub plugin_name: String,
    /// The plugin's sha256.
    pub plugin_sha256: String,
}

/// What to snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    /// The connection's name.
    pub connection: String,
    /// Its URL (resolved, with credentials).
    pub url: String,
    /// The tables and table patterns (`me_<slug>.memory`: every table matching it now);
    /// empty means every table of the database.
    pub tables: Vec<String>,
    /// A plain label (letters, digits, `-`, `_`).
    pub label: String,
    /// The allowed method.
    pub method: MethodChoice,
}

/// What a verification found, per table and file.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The snapshot.
    pub id: String,
    /// Files whose size or sha256 differ from the manifest, or that are missing.
    pub bad_files: Vec<String>,
    /// Tables whose rows or checksum read back from the snapshot differ from the manifest.
    pub bad_tables: Vec<String>,
    /// What was checked, one line each.
    pub checked: Vec<String>,
}

impl VerifyReport {
    /// Whether everything matched.
    pub fn ok(&self) -> bool {
        self.bad_files.is_empty() && self.bad_tables.is_empty()
    }
}

/// What a restore would change, by name, read before anything changes: what the
/// `migrun restore` prompt lists (see [`BackupStore::restore_plan`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestorePlan {
    /// Tables that existed when the backup was taken: their rows are replaced by the backup's.
    pub overwrite: Vec<String>,
    /// Tables the backup records as absent then: dropped if they exist.
    pub drop_declared: Vec<String>,
    /// Tables not in the backup that match one of its patterns now: created since, by the
    /// run or by anyone else. Dropped only when the operator names them.
    pub drop_created: Vec<String>,
    /// The recorded patterns those tables match.
    pub patterns: Vec<String>,
    /// Schemas created since, dropped only when empty.
    pub schemas: Vec<String>,
    /// Whether the ledger forgets the run's rows (a full restore).
    pub forgets_ledger_rows: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The snapshot.
    pub id: String,
    /// Per table: what was done and what the live table's rows/checksum are now.
    pub tables: Vec<RestoredTable>,
    /// After a full restore: the ledger rows of the run that took the backup and of the
    /// plugin's later runs, removed so that their units run again (`None`: a partial
    /// restore leaves the ledger alone).
    pub ledger_rows_forgotten: Option<u64>,
    /// After a full restore: the schemas created since the backup, dropped when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<RestoredSchema>,
}

/// A schema that did not exist when the backup was taken, after a full restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoredSchema {
    /// The schema (MariaDB: database).
    pub name: String,
    /// `dropped`, `kept` (it still holds something; see `detail`) or `gone` (already absent).
    pub action: String,
    /// Why it was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl RestoredSchema {
    /// A schema left in place, with the reason.
    pub(crate) fn kept(name: &str, detail: String) -> RestoredSchema {
        RestoredSchema {
            name: name.to_owned(),
            action: "kept".to_owned(),
            detail: Some(detail),
        }
    }

    /// A schema the run created that still holds `objects` after the restore: it is kept,
    /// because dropping it would take objects no backup holds.
    pub(crate) fn still_holding(name: &str, objects: &[String]) -> RestoredSchema {
        RestoredSchema::kept(
            name,
            format!(
                "it did not exist before the run but still holds {}: {} (left as it is; \
                 migrun never drops data it did not back up)",
                objects.len(),
                objects.join(", ")
            ),
        )
    }

    /// A schema dropped, or found already gone.
    pub(crate) fn done(name: &str, action: &str) -> RestoredSchema {
        RestoredSchema {
            name: name.to_owned(),
            action: action.to_owned(),
            detail: None,
        }
    }
}

/// One restored table.
#[derive(Debug, Clone, Serialize)]
pub struct RestoredTable {
    /// The table.
    pub name: String,
    /// `restored` or `dropped` (it did not exist at snapshot time).
    pub action: String,
    /// Rows now.
    pub rows: u64,
    /// Whether the live table's checksum equals the manifest's after the restore.
    pub verified: bool,
}

impl RestoreReport {
    /// Whether every table matched the manifest afterwards.
    pub fn verified(&self) -> bool {
        self.tables.iter().all(|t| t.verified)
    }
}

/// Why a backup operation failed. Nothing outside the backup directory was
/// written; a snapshot that failed half-way is removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The connection is not known.
    #[error("unknown connection `{0}`")]
    UnknownConnection(String),
    /// A table to restore is not in the snapshot, or cannot be read.
    #[error("{0}")]
    UnknownTable(String),
    /// A full restore would drop tables created since the backup that nobody named.
    #[error("{0}")]
    UnnamedDrop(String),
    /// A label, id or table name is not a plain name.
    #[error("{0}")]
    InvalidName(String),
    /// The backup directory is missing, unwritable or full.
    #[error("backup directory {dir}: {message}")]
    Storage {
        /// The directory.
        dir: String,
        /// What failed.
        message: String,
    },
    /// The database failed while a snapshot was read or restored.
    #[error("{0}")]
    Database(String),
    /// No snapshot with that id.
    #[error("no backup `{id}` in {dir}")]
    NotFound {
        /// The id.
        id: String,
        /// The backup directory.
        dir: String,
    },
    /// A snapshot no longer matches its manifest.
    #[error("backup `{id}` is corrupt: {detail}")]
    Corrupt {
        /// The id.
        id: String,
        /// Which file or table, and how.
        detail: String,
    },
    /// A dump or restore tool failed.
    #[error("{tool} failed: {message}")]
    Tool {
        /// The tool.
        tool: String,
        /// Its error output.
        message: String,
    },
}

impl BackupError {
    /// The `backup-error` case of the WIT this error maps to.
    pub fn wit_kind(&self) -> &'static str {
        match self {
            BackupError::UnknownConnection(_) => "unknown-connection",
            BackupError::UnknownTable(_) | BackupError::UnnamedDrop(_) => "unknown-table",
            BackupError::InvalidName(_) => "invalid-name",
            BackupError::Storage { .. } => "storage",
            BackupError::Database(_) | BackupError::Tool { .. } => "database",
            BackupError::NotFound { .. } => "not-found",
            BackupError::Corrupt { .. } => "corrupt",
        }
    }
}

/// A database failure while a snapshot is read or restored.
pub(crate) fn db_error(e: impl std::fmt::Display) -> BackupError {
    BackupError::Database(e.to_string())
}

/// A file of the snapshot could not be written or read; the store fills in the directory.
pub(crate) fn storage(e: impl std::fmt::Display) -> BackupError {
    BackupError::Storage {
        dir: String::new(),
        message: e.to_string(),
    }
}

/// Checks that `name` is a plain name usable as one path component:
/// ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn check_plain_name(what: &str, name: &str) -> Result<(), BackupError> {
    let plain = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        Ok(())
    } else {
        Err(BackupError::InvalidName(format!(
            "{what} {name:?} is not a plain name (letters, digits, `-`, `_`, `.`; no `/`, no `..`, not absolute)"
        )))
    }
}

/// Checks that a table name is an identifier or `schema.identifier`.
pub fn check_table_name(name: &str) -> Result<(), BackupError> {
    let ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
            && !part.starts_with(|c: char| c.is_ascii_digit())
    };
    let valid = match name.split_once('.') {
        Some((schema, table)) => ok(schema) && ok(table),
        None => ok(name),
    };
    if valid {
        Ok(())
    } else {
        Err(BackupError::InvalidName(format!(
            "table {name:?} is not an identifier (or schema.identifier)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_refuse_escapes() {
        for bad in [
            "", "..", "../x", "/etc", "a/b", ".hidden", "a\\b", "x y", "é",
        ] {
            assert!(check_plain_name("label", bad).is_err(), "{bad:?}");
        }
        for good in [
            "before-run",
            "run_1",
            "20261121T000000Z-p-1.target.before-run",
        ] {
            check_plain_name("label", good).unwrap();
        }
    }

    #[test]
    fn table_names_are_identifiers() {
        for bad in ["", "a;b", "a b", "x.y.z", "1abc", "a\"b", "../t"] {
            assert!(check_table_name(bad).is_err(), "{bad:?}");
        }
        for good in ["users", "auth.users", "t_1"] {
            check_table_name(good).unwrap();
        }
    }
}
