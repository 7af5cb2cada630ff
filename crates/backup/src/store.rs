//! The backup directory: the only place backups are written, opened once
//! with cap-std so that no name can reach outside it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

use super::method::{SnapshotDir, methods};
use super::pattern::{Catalog, TablePattern, created_since};
use super::{
    BackupError, MANIFEST_FILE, MANIFEST_FORMAT, Manifest, ManifestFile, ManifestPattern,
    ManifestTable, Method, RestorePlan, RestoreReport, RestoredSchema, RunIdentity,
    SnapshotRequest, VerifyReport, check_plain_name,
};
use migrun_db::{Connection, Dialect};

/// An opened backup directory.
pub struct BackupStore {
    root: Dir,
    path: PathBuf,
}

/// What a dialect module produced for a snapshot.
pub(crate) struct Taken {
    pub method: Method,
    pub tables: Vec<ManifestTable>,
    pub files: Vec<ManifestFile>,
    pub patterns: Vec<ManifestPattern>,
    pub absent_schemas: Vec<String>,
}

/// The tables and schemas of the database at `url`, on a connection of its own.
async fn catalog_of(url: &str) -> Result<Catalog, BackupError> {
    let dialect = Connection::dialect_of_url(url).map_err(|e| BackupError::Database(e.message))?;
    methods(dialect).catalog_of(url).await
}

/// What each of `patterns` matches in the database at `url` now (for a dry-run's plan).
pub async fn pattern_matches(
    url: &str,
    patterns: &[String],
) -> Result<Vec<(String, Vec<String>)>, BackupError> {
    let catalog = catalog_of(url).await?;
    patterns
        .iter()
        .map(|p| Ok((p.clone(), catalog.matching(&TablePattern::parse(p)?))))
        .collect()
}

/// A writer that counts and hashes what goes through it.
pub(crate) struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    /// Flushes and returns the manifest entry for a file called `name`.
    pub fn finish(mut self, name: &str) -> std::io::Result<ManifestFile> {
        self.inner.flush()?;
        Ok(ManifestFile {
            name: name.to_owned(),
            bytes: self.bytes,
            sha256: hex::encode(self.hash.finalize()),
        })
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl BackupStore {
    /// Opens (and with `for_writing`, creates and probes) the backup directory at `path`.
    ///
    /// Probing writes and removes a small file, so an unwritable or full
    /// directory is found before the run changes anything.
    pub fn open(path: &Path, for_writing: bool) -> Result<BackupStore, BackupError> {
        let storage = |message: String| BackupError::Storage {
            dir: path.display().to_string(),
            message,
        };
        if for_writing {
            // Backups hold whole tables: a folder migrun creates is its owner's only.
            migrun_journal::private_dir_all(path)
                .map_err(|e| storage(format!("cannot create it: {e}")))?;
        }
        let root = Dir::open_ambient_dir(path, ambient_authority())
            .map_err(|e| storage(format!("cannot open it: {e}")))?;
        let path = std::fs::canonicalize(path).map_err(|e| storage(e.to_string()))?;
        let store = BackupStore { root, path };
        if for_writing {
            store.probe()?;
        }
        Ok(store)
    }

    fn storage(&self, message: impl Into<String>) -> BackupError {
        BackupError::Storage {
            dir: self.path.display().to_string(),
            message: message.into(),
        }
    }

    fn probe(&self) -> Result<(), BackupError> {
        let name = ".migrun-write-probe";
        let written = self.root.create(name).and_then(|mut f| {
            f.write_all(&[0u8; 4096])?;
            f.sync_all()
        });
        let _ = self.root.remove_file(name);
        written.map_err(|e| self.storage(format!("not writable: {e}")))
    }

    /// The directory's canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every complete snapshot (directories with a readable manifest), oldest first.
    /// Unfinished ones (`*.partial`) and foreign entries are ignored.
    pub fn list(&self) -> Result<Vec<Manifest>, BackupError> {
        let mut manifests = Vec::new();
        let entries = self
            .root
            .entries()
            .map_err(|e| self.storage(format!("cannot list it: {e}")))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".partial") || check_plain_name("id", &name).is_err() {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir())
                && let Ok(manifest) = self.manifest(&name)
            {
                manifests.push(manifest);
            }
        }
        manifests.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(manifests)
    }

    /// The manifest of snapshot `id`.
    pub fn manifest(&self, id: &str) -> Result<Manifest, BackupError> {
        check_plain_name("backup id", id)?;
        let not_found = || BackupError::NotFound {
            id: id.to_owned(),
            dir: self.path.display().to_string(),
        };
        let dir = self.root.open_dir(id).map_err(|_| not_found())?;
        let text = dir
            .read_to_string(MANIFEST_FILE)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => not_found(),
                _ => BackupError::Corrupt {
                    id: id.to_owned(),
                    detail: format!("{MANIFEST_FILE}: {e}"),
                },
            })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| BackupError::Corrupt {
            id: id.to_owned(),
            detail: format!("{MANIFEST_FILE} is not a manifest: {e}"),
        })?;
        if manifest.format != MANIFEST_FORMAT || manifest.id != id {
            return Err(BackupError::Corrupt {
                id: id.to_owned(),
                detail: format!(
                    "{MANIFEST_FILE} has format {:?} and id {:?}",
                    manifest.format, manifest.id
                ),
            });
        }
        Ok(manifest)
    }

    /// Removes snapshot `id` and returns the bytes its files held.
    ///
    /// The directory is first renamed to `<id>.removing.partial` — a name `list` ignores —
    /// and then deleted, so a crash in between never leaves a half-deleted directory that
    /// looks like a backup. The `<run>.reuses` records that name `id` go with it: a
    /// later resume must not follow one to a snapshot that is gone.
    pub fn remove(&self, id: &str) -> Result<u64, BackupError> {
        let manifest = self.manifest(id)?;
        let doomed = format!("{id}.removing.partial");
        self.root
            .rename(id, &self.root, &doomed)
            .map_err(|e| self.storage(format!("cannot remove backup `{id}`: {e}")))?;
        self.root.remove_dir_all(&doomed).map_err(|e| {
            self.storage(format!(
                "backup `{id}` moved to {doomed} but not deleted: {e}"
            ))
        })?;
        self.forget_reuses_of(id)?;
        Ok(manifest.files.iter().map(|f| f.bytes).sum())
    }

    /// Deletes every `<run>.reuses` record that names snapshot `id`.
    fn forget_reuses_of(&self, id: &str) -> Result<(), BackupError> {
        let entries = self
            .root
            .entries()
            .map_err(|e| self.storage(format!("cannot list the backup folder: {e}")))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".reuses") || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let names_it = self
                .root
                .read_to_string(&name)
                .is_ok_and(|covered_by| covered_by.trim() == id);
            if names_it {
                self.root.remove_file(&name).map_err(|e| {
                    self.storage(format!(
                        "backup `{id}` removed, but not the record {name} that names it: {e}"
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// Records that the snapshot `id` was not taken because snapshot `covered_by`, of an
    /// earlier run of the same lineage, still covers it: a file `<id>.reuses` beside the
    /// snapshots (never a directory, so `list` does not take it for a backup) holding the
    /// covering id. A later run that resumes this one follows it ([`Self::covering`]).
    pub fn record_reuse(&self, id: &str, covered_by: &str) -> Result<(), BackupError> {
        check_plain_name("backup id", id)?;
        check_plain_name("backup id", covered_by)?;
        let name = format!("{id}.reuses");
        self.root
            .write(&name, format!("{covered_by}\n"))
            .map_err(|e| self.storage(format!("cannot write {name}: {e}")))
    }

    /// The snapshot that stands for `id`: `id` itself when it was taken, the snapshot its
    /// `<id>.reuses` file names when an earlier one was reused, `None` when neither is
    /// there (or the named one was deleted since).
    pub fn covering(&self, id: &str) -> Option<Manifest> {
        if let Ok(manifest) = self.manifest(id) {
            return Some(manifest);
        }
        check_plain_name("backup id", id).ok()?;
        let named = self.root.read_to_string(format!("{id}.reuses")).ok()?;
        self.manifest(named.trim()).ok()
    }

    /// Takes snapshot `id` of the request's tables. On any failure the
    /// unfinished directory is removed and nothing else was written.
    pub async fn snapshot(
        &self,
        request: &SnapshotRequest,
        run: &RunIdentity,
        id: &str,
    ) -> Result<Manifest, BackupError> {
        check_plain_name("backup id", id)?;
        for table in &request.tables {
            if let Some(problem) = super::catch_all(table) {
                return Err(BackupError::InvalidName(format!(
                    "table pattern `{table}`: {problem}"
                )));
            }
            super::check_table_or_pattern(table)?;
        }
        if self.root.exists(id) {
            return Err(BackupError::InvalidName(format!(
                "a backup `{id}` already exists in {}",
                self.path.display()
            )));
        }
        let partial = format!("{id}.partial");
        let _ = self.root.remove_dir_all(&partial);
        self.root
            .create_dir(&partial)
            .map_err(|e| self.storage(format!("cannot create {partial}: {e}")))?;
        let result = self.fill(request, run, id, &partial).await;
        match result {
            Ok(manifest) => {
                self.root
                    .rename(&partial, &self.root, id)
                    .map_err(|e| self.storage(format!("cannot finish {id}: {e}")))?;
                tracing::info!(
                    backup = id,
                    method = manifest.method.as_str(),
                    "backup taken"
                );
                Ok(manifest)
            }
            Err(e) => {
                let _ = self.root.remove_dir_all(&partial);
                Err(match e {
                    BackupError::Storage { dir, message } if dir.is_empty() => {
                        self.storage(message)
                    }
                    other => other,
                })
            }
        }
    }

    async fn fill(
        &self,
        request: &SnapshotRequest,
        run: &RunIdentity,
        id: &str,
        partial: &str,
    ) -> Result<Manifest, BackupError> {
        let dir = self
            .root
            .open_dir(partial)
            .map_err(|e| self.storage(format!("cannot open {partial}: {e}")))?;
        let dialect = Connection::dialect_of_url(&request.url)
            .map_err(|e| BackupError::Database(e.message))?;
        let path = self.path.join(partial);
        let taken = methods(dialect)
            .snapshot(
                request,
                SnapshotDir {
                    dir: &dir,
                    path: &path,
                },
            )
            .await?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.to_owned(),
            id: id.to_owned(),
            label: request.label.clone(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            // Every migrun crate shares the workspace version: this is the migrun that made it.
            migrun_version: env!("CARGO_PKG_VERSION").to_owned(),
            run_id: run.run_id.clone(),
            journal: run.journal.clone(),
            plugin_name: run.plugin_name.clone(),
            plugin_sha256: run.plugin_sha256.clone(),
            connection: request.connection.clone(),
            dialect,
            url: migrun_config::redact_url(&request.url),
            method: taken.method,
            tables: taken.tables,
            files: taken.files,
            patterns: taken.patterns,
            absent_schemas: taken.absent_schemas,
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
        let written = dir.create(MANIFEST_FILE).and_then(|mut f| {
            f.write_all(&text)?;
            f.sync_all()
        });
        written.map_err(|e| self.storage(format!("cannot write {MANIFEST_FILE}: {e}")))?;
        Ok(manifest)
    }

    /// Re-reads every file of snapshot `id` against its manifest (size and
    /// sha256), then what the method can check more deeply (SQLite: every
    /// table's rows and checksum read back from the copy; native: row counts).
    pub async fn verify(&self, id: &str) -> Result<VerifyReport, BackupError> {
        let manifest = self.manifest(id)?;
        let dir = self
            .root
            .open_dir(id)
            .map_err(|e| self.storage(format!("cannot open {id}: {e}")))?;
        let mut report = VerifyReport {
            id: id.to_owned(),
            bad_files: Vec::new(),
            bad_tables: Vec::new(),
            checked: Vec::new(),
        };
        for file in &manifest.files {
            match file_digest(&dir, &file.name) {
                Ok((bytes, sha)) if bytes == file.bytes && sha == file.sha256 => {
                    report
                        .checked
                        .push(format!("{}: {bytes} bytes, sha256 matches", file.name));
                }
                Ok((bytes, sha)) => report.bad_files.push(format!(
                    "{}: {bytes} bytes with sha256 {sha}, the manifest says {} bytes with sha256 {}",
                    file.name, file.bytes, file.sha256
                )),
                Err(e) => report.bad_files.push(format!("{}: {e}", file.name)),
            }
        }
        if !report.bad_files.is_empty() {
            return Ok(report);
        }
        match manifest.method {
            Method::SqliteBackup => {
                super::sqlite::verify_copy(&manifest, &self.path.join(id), &mut report).await?
            }
            Method::Native if manifest.dialect == Dialect::Postgres => {
                super::postgres::verify_native(&manifest, &dir, &mut report)?
            }
            Method::Native => super::mysql::verify_native(&manifest, &dir, &mut report)?,
            Method::PgDump => super::postgres::verify_dump(&manifest, &dir, &mut report).await?,
            Method::MariadbDump => report.checked.push(
                "dump files: sizes and sha256 match (their contents are re-checked by restore)"
                    .to_owned(),
            ),
        }
        Ok(report)
    }

    /// The dialect of `url`, refused unless it is the backup's.
    fn check_dialect(manifest: &Manifest, id: &str, url: &str) -> Result<Dialect, BackupError> {
        let dialect =
            Connection::dialect_of_url(url).map_err(|e| BackupError::Database(e.message))?;
        if dialect != manifest.dialect {
            return Err(BackupError::Database(format!(
                "backup `{id}` is of a {} database; the connection `{}` is {dialect}",
                manifest.dialect, manifest.connection
            )));
        }
        Ok(dialect)
    }

    /// The tables and schemas a full restore drops because they were created since the
    /// backup, read from the catalog before anything changes (a failure to read it stops
    /// the restore with nothing changed). The ledger is migrun's own record, never
    /// something a run created under a pattern: it is kept (its rows are forgotten).
    async fn created(
        manifest: &Manifest,
        url: &str,
        full: bool,
        ledger: &migrun_db::ledger::Ledger,
    ) -> Result<(Vec<String>, Vec<String>), BackupError> {
        let undoes_creations = !manifest.patterns.is_empty() || !manifest.absent_schemas.is_empty();
        if !(full && undoes_creations) {
            return Ok((Vec::new(), Vec::new()));
        }
        let (tables, schemas) = created_since(manifest, &catalog_of(url).await?);
        let is_ledger = |t: &str| {
            t == ledger.table()
                || t.rsplit_once('.')
                    .is_some_and(|(_, bare)| bare == ledger.table())
        };
        Ok((
            tables.into_iter().filter(|t| !is_ledger(t)).collect(),
            schemas,
        ))
    }

    /// What [`BackupStore::restore`] would change, read before anything changes, for the
    /// operator to confirm: every table it overwrites or drops, by name. Nothing is written.
    pub async fn restore_plan(
        &self,
        id: &str,
        url: &str,
        tables: Option<&[String]>,
        ledger: &migrun_db::ledger::Ledger,
    ) -> Result<RestorePlan, BackupError> {
        let manifest = self.manifest(id)?;
        Self::check_dialect(&manifest, id, url)?;
        let (drop_created, schemas) =
            Self::created(&manifest, url, tables.is_none(), ledger).await?;
        let chosen: Vec<&ManifestTable> = match tables {
            None => manifest.tables.iter().collect(),
            Some(names) => {
                let mut chosen = Vec::new();
                for n in names {
                    match manifest.pattern(n) {
                        Some(p) => chosen.extend(p.tables.iter().filter_map(|t| manifest.table(t))),
                        None => chosen.extend(manifest.table(n)),
                    }
                }
                chosen
            }
        };
        let mut plan = RestorePlan {
            drop_created,
            schemas,
            forgets_ledger_rows: tables.is_none(),
            ..RestorePlan::default()
        };
        for t in chosen {
            let list = if t.present {
                &mut plan.overwrite
            } else {
                &mut plan.drop_declared
            };
            if !list.contains(&t.name) {
                list.push(t.name.clone());
            }
        }
        for recorded in &manifest.patterns {
            let Ok(pattern) = TablePattern::parse(&recorded.pattern) else {
                continue;
            };
            if plan.drop_created.iter().any(|t| pattern.matches(t)) {
                plan.patterns.push(recorded.pattern.clone());
            }
        }
        Ok(plan)
    }

    /// Restores `tables` (all of the snapshot's when `None`) of snapshot `id`
    /// into the database at `url`, then re-reads each table's rows and checksum.
    ///
    /// The snapshot is verified first; a corrupt one restores nothing. A full restore
    /// (`tables` is `None`) undoes the run that took the backup: besides its tables, the
    /// tables matching one of its patterns now but not then are dropped (and checked gone),
    /// the schemas created since are dropped if empty (never with CASCADE: one still
    /// holding a table is kept and reported), and that run's rows in the ledger table
    /// `ledger` are removed so its units run again.
    ///
    /// `tables` may name a recorded pattern: it means the tables the pattern matched when
    /// the snapshot was taken. A partial restore drops nothing created since and leaves the
    /// ledger alone, even when it names every table.
    ///
    /// A table created since the backup (matching a recorded pattern now, not then) is
    /// never in the backup: it may be the run's, or the application's. It is dropped only
    /// when `named_drops` names it — the operator confirmed the prompt that listed it, or
    /// named it with `--drop`; otherwise the restore refuses before changing anything,
    /// naming it (see [`BackupStore::restore_plan`]).
    pub async fn restore(
        &self,
        id: &str,
        url: &str,
        tables: Option<&[String]>,
        ledger: &migrun_db::ledger::Ledger,
        named_drops: &[String],
    ) -> Result<RestoreReport, BackupError> {
        let manifest = self.manifest(id)?;
        let verified = self.verify(id).await?;
        if !verified.ok() {
            return Err(BackupError::Corrupt {
                id: id.to_owned(),
                detail: verified
                    .bad_files
                    .iter()
                    .chain(&verified.bad_tables)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        let dialect = Self::check_dialect(&manifest, id, url)?;
        let full = tables.is_none();
        let (created_tables, created_schemas) = Self::created(&manifest, url, full, ledger).await?;
        let unnamed: Vec<&String> = created_tables
            .iter()
            .filter(|t| !named_drops.contains(t))
            .collect();
        if !unnamed.is_empty() {
            return Err(BackupError::UnnamedDrop(format!(
                "restoring backup `{id}` would drop {} table(s) that were not in it (created \
                 since it was taken, by the run or by anyone else): {}; nothing was changed. \
                 Name each table to drop it (`--drop {}`), or restore only the backup's tables \
                 with `--tables`",
                unnamed.len(),
                unnamed
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                unnamed
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        }
        let created: Vec<ManifestTable> = created_tables
            .into_iter()
            .map(ManifestTable::absent)
            .collect();
        let mut selected: Vec<&ManifestTable> = match tables {
            None => manifest.tables.iter().chain(&created).collect(),
            Some(names) => {
                let mut chosen: Vec<&ManifestTable> = Vec::new();
                for n in names {
                    let found: Vec<&ManifestTable> = match manifest.pattern(n) {
                        Some(p) => p.tables.iter().filter_map(|t| manifest.table(t)).collect(),
                        None => manifest.table(n).into_iter().collect(),
                    };
                    if found.is_empty() && manifest.pattern(n).is_none() {
                        return Err(BackupError::UnknownTable(format!(
                            "table `{n}` is not in backup `{id}` (it holds: {}); nothing was restored",
                            manifest
                                .tables
                                .iter()
                                .map(|t| t.name.as_str())
                                .chain(manifest.patterns.iter().map(|p| p.pattern.as_str()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    chosen.extend(found);
                }
                chosen
            }
        };
        let mut seen = std::collections::BTreeSet::new();
        selected.retain(|t| seen.insert(t.name.clone()));
        let dir = self
            .root
            .open_dir(id)
            .map_err(|e| self.storage(format!("cannot open {id}: {e}")))?;
        let path = self.path.join(id);
        let at = SnapshotDir {
            dir: &dir,
            path: &path,
        };
        let tables = methods(dialect)
            .restore(&manifest, at, url, &selected)
            .await?;
        let schemas: Vec<RestoredSchema> = if created_schemas.is_empty() {
            Vec::new()
        } else {
            let dropped = methods(dialect)
                .drop_empty_schemas(url, &created_schemas)
                .await;
            dropped.map_err(|e| {
                BackupError::Database(format!(
                    "the tables are restored, but the schemas created since the backup ({}) \
                     could not be checked: {e}; they were left as they are",
                    created_schemas.join(", ")
                ))
            })?
        };
        // Only a full restore undoes the run; `--tables` (even naming every table) is a
        // repair of those tables and leaves the ledger, and what the run created, alone.
        let ledger_rows_forgotten = if full {
            let mut conn =
                Connection::connect(&manifest.connection, url, migrun_db::Access::ReadWrite)
                    .await
                    .map_err(|e| BackupError::Database(e.message))?;
            let forgotten = ledger
                .forget_since(
                    &mut conn,
                    &manifest.run_id,
                    &manifest.plugin_name,
                    &manifest.created_at,
                )
                .await;
            conn.close().await;
            Some(forgotten.map_err(|e| {
                BackupError::Database(format!(
                    "the tables are restored, but the ledger `{}` could not forget run {}: {e}",
                    ledger.table(),
                    manifest.run_id
                ))
            })?)
        } else {
            None
        };
        Ok(RestoreReport {
            id: id.to_owned(),
            tables,
            ledger_rows_forgotten,
            schemas,
        })
    }
}

/// Size and sha256 of a file in `dir`.
pub(crate) fn file_digest(dir: &Dir, name: &str) -> std::io::Result<(u64, String)> {
    let mut file = dir.open(name)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex::encode(hash.finalize())))
}

/// A file name for table number `index` of a snapshot: `NN-<table>.<ext>`.
pub(crate) fn table_file(index: usize, table: &str, ext: &str) -> String {
    format!("{index:02}-{table}.{ext}")
}
