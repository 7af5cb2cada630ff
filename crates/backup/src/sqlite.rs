//! SQLite snapshots: the online backup API copies the whole database into
//! the snapshot directory as one consistent file; restore copies tables back
//! from it (schema, rows, indexes and triggers), one transaction for all.

use std::ffi::CString;
use std::path::Path;

use cap_std::fs::Dir;
use sqlx::{Connection as _, Executor, Row, SqliteConnection};

use super::pattern::{Catalog, Expanded, expand};
use super::store::{Taken, file_digest};
use super::{
    BackupError, Manifest, ManifestTable, Method, RestoredTable, SnapshotRequest, VerifyReport,
    db_error, digest,
};
use migrun_db::Access;

/// The file inside a SQLite snapshot.
pub(crate) const COPY_FILE: &str = "database.sqlite";

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn connect(url: &str, access: Access) -> Result<SqliteConnection, BackupError> {
    let options =
        migrun_db::sqlite::connect_options(url, access).map_err(|e| db_error(e.message))?;
    SqliteConnection::connect_with(&options)
        .await
        .map_err(db_error)
}

/// Copies the database behind `url` into `<dir_path>/database.sqlite` with the
/// online backup API, then reads every requested table's digest from the copy.
pub(crate) async fn snapshot(
    request: &SnapshotRequest,
    dir: &Dir,
    dir_path: &Path,
) -> Result<Taken, BackupError> {
    let mut source = connect(&request.url, Access::ReadOnly).await?;
    let dest = dir_path.join(COPY_FILE);
    {
        let mut handle = source.lock_handle().await.map_err(db_error)?;
        online_backup(handle.as_raw_handle().as_ptr(), &dest).map_err(|message| {
            BackupError::Storage {
                dir: String::new(),
                message: format!("SQLite backup into {}: {message}", dest.display()),
            }
        })?;
    }
    let _ = source.close().await;

    let (bytes, sha256) = file_digest(dir, COPY_FILE).map_err(|e| BackupError::Storage {
        dir: String::new(),
        message: e.to_string(),
    })?;
    let mut copy = connect(&format!("sqlite://{}", dest.display()), Access::ReadOnly).await?;
    let expanded = if request.tables.is_empty() {
        Expanded {
            tables: all_tables(&mut copy).await?,
            ..Expanded::default()
        }
    } else {
        expand(&request.tables, &catalog(&mut copy).await?)?
    };
    let mut entries = Vec::new();
    for table in expanded.tables {
        let present = table_exists(&mut copy, &table).await?;
        let digest = if present {
            digest::sqlite(&mut copy, &quote(&table))
                .await
                .map_err(BackupError::Database)?
        } else {
            super::TableDigest::seal("sqlite-rows", 0, &[])
        };
        entries.push(ManifestTable {
            name: table,
            present,
            rows: digest.rows,
            checksum: digest.checksum,
            files: vec![COPY_FILE.to_owned()],
            columns: Vec::new(),
        });
    }
    let _ = copy.close().await;
    Ok(Taken {
        method: Method::SqliteBackup,
        tables: entries,
        files: vec![super::ManifestFile {
            name: COPY_FILE.to_owned(),
            bytes,
            sha256,
        }],
        patterns: expanded.patterns,
        absent_schemas: expanded.absent_schemas,
    })
}

/// Every table, by bare name: SQLite has no schemas to create, so patterns are matched
/// against the tables of `main` only and no schema is ever recorded or dropped.
pub(crate) async fn catalog(conn: &mut SqliteConnection) -> Result<Catalog, BackupError> {
    Ok(Catalog {
        tables: all_tables(conn).await?,
        default_schema: None,
        schemas: None,
    })
}

/// The catalog of the database file at `url`, opened read-only (a file that does not
/// exist holds no table).
pub(crate) async fn catalog_of(url: &str) -> Result<Catalog, BackupError> {
    let Ok(mut conn) = connect(url, Access::ReadOnly).await else {
        return Ok(Catalog::default());
    };
    let catalog = catalog(&mut conn).await;
    let _ = conn.close().await;
    catalog
}

/// Runs `sqlite3_backup_*` from the open connection `source` into a new file `dest`.
fn online_backup(source: *mut libsqlite3_sys::sqlite3, dest: &Path) -> Result<(), String> {
    use libsqlite3_sys as ffi;
    let path = CString::new(dest.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    let main = CString::new("main").expect("no NUL");
    // SAFETY: `source` is a live handle, locked for us by sqlx for the duration of this
    // call; `dest_db` is opened and closed here; every pointer passed is valid and
    // NUL-terminated, and the backup object is finished before either handle is released.
    unsafe {
        let mut dest_db: *mut ffi::sqlite3 = std::ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
        let rc = ffi::sqlite3_open_v2(path.as_ptr(), &mut dest_db, flags, std::ptr::null());
        if rc != ffi::SQLITE_OK {
            let message = errmsg(dest_db);
            ffi::sqlite3_close(dest_db);
            return Err(message);
        }
        let backup = ffi::sqlite3_backup_init(dest_db, main.as_ptr(), source, main.as_ptr());
        if backup.is_null() {
            let message = errmsg(dest_db);
            ffi::sqlite3_close(dest_db);
            return Err(message);
        }
        let mut busy_retries = 0;
        let step = loop {
            let rc = ffi::sqlite3_backup_step(backup, -1);
            match rc {
                ffi::SQLITE_DONE => break rc,
                ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED if busy_retries < 100 => {
                    busy_retries += 1;
                    ffi::sqlite3_sleep(50);
                }
                ffi::SQLITE_OK => {}
                _ => break rc,
            }
        };
        ffi::sqlite3_backup_finish(backup);
        let result = if step == ffi::SQLITE_DONE {
            Ok(())
        } else {
            Err(errmsg(dest_db))
        };
        ffi::sqlite3_close(dest_db);
        result
    }
}

/// The message of the last error on `db`.
///
/// # Safety
/// `db` must be a handle returned by `sqlite3_open_v2` (possibly failed) and not yet closed.
unsafe fn errmsg(db: *mut libsqlite3_sys::sqlite3) -> String {
    // SAFETY: per this function's contract; sqlite3_errmsg never returns null for a handle.
    unsafe {
        let msg = libsqlite3_sys::sqlite3_errmsg(db);
        if msg.is_null() {
            return "out of memory".to_owned();
        }
        std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned()
    }
}

async fn all_tables(conn: &mut SqliteConnection) -> Result<Vec<String>, BackupError> {
    let rows = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
}

async fn table_exists(conn: &mut SqliteConnection, table: &str) -> Result<bool, BackupError> {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
    Ok(n > 0)
}

/// Reads every table's rows and checksum back from the copy.
pub(crate) async fn verify_copy(
    manifest: &Manifest,
    dir_path: &Path,
    report: &mut VerifyReport,
) -> Result<(), BackupError> {
    let url = format!("sqlite://{}", dir_path.join(COPY_FILE).display());
    let mut copy = connect(&url, Access::ReadOnly)
        .await
        .map_err(|e| BackupError::Corrupt {
            id: manifest.id.clone(),
            detail: format!("{COPY_FILE}: {e}"),
        })?;
    for table in &manifest.tables {
        if !table.present {
            continue;
        }
        let digest = digest::sqlite(&mut copy, &quote(&table.name)).await;
        match digest {
            Ok(d) if table.matches(&d) => report
                .checked
                .push(format!("{}: {} rows, checksum matches", table.name, d.rows)),
            Ok(d) => report.bad_tables.push(format!(
                "{} in {COPY_FILE}: {} rows, checksum {}; the manifest says {} rows, checksum {}",
                table.name, d.rows, d.checksum, table.rows, table.checksum
            )),
            Err(e) => report
                .bad_tables
                .push(format!("{} in {COPY_FILE}: {e}", table.name)),
        }
    }
    let _ = copy.close().await;
    Ok(())
}

/// Copies `tables` back from the snapshot's file into the database at `url`, in one
/// transaction: a table that did not exist is dropped; the others are recreated from
/// their recorded schema, filled, and get their indexes and triggers back.
pub(crate) async fn restore(
    dir_path: &Path,
    url: &str,
    tables: &[&ManifestTable],
) -> Result<Vec<RestoredTable>, BackupError> {
    let mut conn = connect(url, Access::ReadWrite).await?;
    let copy = dir_path.join(COPY_FILE);
    // Foreign keys are checked per statement otherwise; the switch is a no-op inside a transaction.
    conn.execute("PRAGMA foreign_keys = OFF")
        .await
        .map_err(db_error)?;
    sqlx::query("ATTACH DATABASE ? AS migrun_restore")
        .bind(copy.display().to_string())
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    let result = restore_tables(&mut conn, tables).await;
    if result.is_err() {
        let _ = conn.execute("ROLLBACK").await;
    }
    let _ = conn.execute("DETACH DATABASE migrun_restore").await;
    let _ = conn.execute("PRAGMA foreign_keys = ON").await;
    let actions = result?;

    let mut restored = Vec::new();
    for (table, action) in tables.iter().zip(actions) {
        let (rows, verified) = if table.present {
            let d = digest::sqlite(&mut conn, &quote(&table.name))
                .await
                .map_err(BackupError::Database)?;
            (d.rows, table.matches(&d))
        } else {
            (0, !table_exists(&mut conn, &table.name).await?)
        };
        restored.push(RestoredTable {
            name: table.name.clone(),
            action,
            rows,
            verified,
        });
    }
    let _ = conn.close().await;
    Ok(restored)
}

async fn restore_tables(
    conn: &mut SqliteConnection,
    tables: &[&ManifestTable],
) -> Result<Vec<String>, BackupError> {
    conn.execute("BEGIN IMMEDIATE").await.map_err(db_error)?;
    let mut actions = Vec::new();
    for table in tables {
        let q = quote(&table.name);
        conn.execute(format!("DROP TABLE IF EXISTS main.{q}").as_str())
            .await
            .map_err(|e| db_error(format!("dropping {}: {e}", table.name)))?;
        if !table.present {
            actions.push("dropped".to_owned());
            continue;
        }
        let schema: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT type, sql FROM migrun_restore.sqlite_master \
             WHERE tbl_name = ? AND sql IS NOT NULL ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END",
        )
        .bind(&table.name)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        let Some((_, Some(create))) = schema.iter().find(|(t, _)| t == "table") else {
            return Err(BackupError::UnknownTable(format!(
                "table `{}` is not in the snapshot's copy",
                table.name
            )));
        };
        conn.execute(create.as_str())
            .await
            .map_err(|e| db_error(format!("recreating {}: {e}", table.name)))?;
        conn.execute(format!("INSERT INTO main.{q} SELECT * FROM migrun_restore.{q}").as_str())
            .await
            .map_err(|e| db_error(format!("copying the rows of {}: {e}", table.name)))?;
        for (kind, sql) in &schema {
            if kind != "table"
                && let Some(sql) = sql
            {
                conn.execute(sql.as_str())
                    .await
                    .map_err(|e| db_error(format!("recreating a {kind} of {}: {e}", table.name)))?;
            }
        }
        let has_sequence: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM migrun_restore.sqlite_master WHERE name = 'sqlite_sequence'",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
        let main_sequence: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM main.sqlite_master WHERE name = 'sqlite_sequence'",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
        if has_sequence > 0 && main_sequence > 0 {
            sqlx::query("DELETE FROM main.sqlite_sequence WHERE name = ?")
                .bind(&table.name)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            sqlx::query(
                "INSERT INTO main.sqlite_sequence SELECT * FROM migrun_restore.sqlite_sequence WHERE name = ?",
            )
            .bind(&table.name)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        }
        actions.push("restored".to_owned());
    }
    conn.execute("COMMIT").await.map_err(db_error)?;
    Ok(actions)
}
