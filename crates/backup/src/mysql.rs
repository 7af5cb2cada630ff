//! MariaDB/MySQL snapshots: `mariadb-dump` (or `mysqldump`) per table with
//! `--single-transaction` when present; otherwise native — the table's
//! `SHOW CREATE TABLE` and its rows (the journal's value form, zstd), read in
//! one consistent-snapshot transaction that also computes the checksums.

use std::io::{BufRead, BufReader, Read, Write};

use cap_std::fs::Dir;
use futures::TryStreamExt;
use sqlx::{Connection as _, Executor, MySqlConnection};

use super::external::{Tool, UrlParts, available};
use super::pattern::{Catalog, Expanded, expand};
use super::store::{HashingWriter, Taken, table_file};
use super::{
    BackupError, Manifest, ManifestTable, Method, MethodChoice, RestoredSchema, RestoredTable,
    SnapshotRequest, VerifyReport, db_error, digest, storage,
};
use migrun_db::Access;
use migrun_types::value::Value;

fn quote(name: &str) -> String {
    name.split('.')
        .map(|p| format!("`{}`", p.replace('`', "``")))
        .collect::<Vec<_>>()
        .join(".")
}

/// `(schema, table)`; the schema is `None` for the connection's database.
fn split(name: &str) -> (Option<&str>, &str) {
    match name.split_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, name),
    }
}

async fn connect(url: &str) -> Result<MySqlConnection, BackupError> {
    let options = migrun_db::mysql::connect_options(url).map_err(|e| db_error(e.message))?;
    MySqlConnection::connect_with(&options)
        .await
        .map_err(db_error)
}

async fn columns(conn: &mut MySqlConnection, table: &str) -> Result<Vec<String>, BackupError> {
    let (schema, name) = split(table);
    sqlx::query_scalar(
        "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
         WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? ORDER BY ordinal_position",
    )
    .bind(schema)
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)
}

async fn all_tables(conn: &mut MySqlConnection) -> Result<Vec<String>, BackupError> {
    sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)
}

/// The server's own databases, never matched by a pattern nor dropped.
const SYSTEM_DATABASES: &str = "('mysql', 'information_schema', 'performance_schema', 'sys')";

/// Every table (`database.table`) and database outside the system ones. On MariaDB a
/// `schema.table` name means a table of another database on the same server (as
/// everywhere in migrun), so a qualified pattern is matched across databases.
pub(crate) async fn catalog(conn: &mut MySqlConnection) -> Result<Catalog, BackupError> {
    let tables = sqlx::query_scalar(&format!(
        "SELECT CAST(CONCAT(table_schema, '.', table_name) AS CHAR) FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN {SYSTEM_DATABASES} ORDER BY 1"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let schemas = sqlx::query_scalar(&format!(
        "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata \
         WHERE schema_name NOT IN {SYSTEM_DATABASES} ORDER BY 1"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let database: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(Catalog {
        tables,
        default_schema: Some(database.unwrap_or_default()),
        schemas: Some(schemas),
    })
}

/// The catalog of the server at `url`, read on a connection of its own.
pub(crate) async fn catalog_of(url: &str) -> Result<Catalog, BackupError> {
    let mut conn = connect(url).await?;
    let catalog = catalog(&mut conn).await;
    let _ = conn.close().await;
    catalog
}

/// Drops each database in `names` that holds nothing: no table or view, routine or
/// event. `DROP DATABASE` has no RESTRICT, so emptiness is checked just before; a
/// database holding anything is kept, unchanged, and the reason is reported. The
/// connection's own database is never dropped.
pub(crate) async fn drop_empty_schemas(
    url: &str,
    names: &[String],
) -> Result<Vec<RestoredSchema>, BackupError> {
    let mut conn = connect(url).await?;
    let current: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
        .fetch_one(&mut conn)
        .await
        .map_err(db_error)?;
    let mut outcomes = Vec::new();
    for name in names {
        if current.as_deref() == Some(name.as_str()) {
            outcomes.push(RestoredSchema::kept(
                name,
                "it is the connection's own database; left as it is".to_owned(),
            ));
            continue;
        }
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
        )
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .map_err(db_error)?;
        if exists == 0 {
            outcomes.push(RestoredSchema::done(name, "gone"));
            continue;
        }
        let held: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = ? \
             UNION ALL SELECT CAST(routine_name AS CHAR) FROM information_schema.routines WHERE routine_schema = ? \
             UNION ALL SELECT CAST(event_name AS CHAR) FROM information_schema.events WHERE event_schema = ?",
        )
        .bind(name)
        .bind(name)
        .bind(name)
        .fetch_all(&mut conn)
        .await
        .map_err(db_error)?;
        if !held.is_empty() {
            outcomes.push(RestoredSchema::still_holding(name, &held));
            continue;
        }
        match conn
            .execute(format!("DROP DATABASE {}", quote(name)).as_str())
            .await
        {
            Ok(_) => outcomes.push(RestoredSchema::done(name, "dropped")),
            Err(e) => outcomes.push(RestoredSchema::kept(
                name,
                format!("it is empty but could not be dropped ({e}); left as it is"),
            )),
        }
    }
    let _ = conn.close().await;
    Ok(outcomes)
}

/// The dump tool on `PATH`, if any.
async fn dump_tool() -> Option<&'static str> {
    for program in ["mariadb-dump", "mysqldump"] {
        if available(program).await {
            return Some(program);
        }
    }
    None
}

async fn client_tool() -> Option<&'static str> {
    for program in ["mariadb", "mysql"] {
        if available(program).await {
            return Some(program);
        }
    }
    None
}

pub(crate) async fn snapshot(request: &SnapshotRequest, dir: &Dir) -> Result<Taken, BackupError> {
    let mut conn = connect(&request.url).await?;
    let dump = match request.method {
        MethodChoice::Auto => dump_tool().await,
        MethodChoice::Native => None,
    };
    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(db_error)?;
    conn.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(db_error)?;
    let expanded = if request.tables.is_empty() {
        Expanded {
            tables: all_tables(&mut conn).await?,
            ..Expanded::default()
        }
    } else {
        expand(&request.tables, &catalog(&mut conn).await?)?
    };
    let parts = UrlParts::parse(&request.url)?;
    let mut entries = Vec::new();
    let mut files = Vec::new();
    for (index, table) in expanded.tables.into_iter().enumerate() {
        let cols = columns(&mut conn, &table).await?;
        if cols.is_empty() {
            entries.push(ManifestTable::absent(table));
            continue;
        }
        let q = quote(&table);
        let d = digest::mysql(&mut conn, &q, &cols)
            .await
            .map_err(db_error)?;
        let mut table_files = Vec::new();
        if let Some(program) = dump {
            let name = table_file(index, &table, "sql");
            let (schema, bare) = split(&table);
            let (mut args, env) = parts.mysql_args();
            args.extend([
                "--single-transaction".to_owned(),
                "--skip-dump-date".to_owned(),
                "--no-tablespaces".to_owned(),
                "--skip-triggers".to_owned(),
                schema.unwrap_or(&parts.database).to_owned(),
                bare.to_owned(),
            ]);
            let mut out = dir.create(&name).map_err(storage)?;
            let (bytes, sha256) = Tool {
                program: program.to_owned(),
                args,
                env,
            }
            .run_into(&mut out)
            .await?;
            out.sync_all().map_err(storage)?;
            table_files.push(super::ManifestFile {
                name,
                bytes,
                sha256,
            });
        } else {
            let ddl_name = table_file(index, &table, "ddl.sql");
            let (_, ddl): (String, String) = sqlx::query_as(&format!("SHOW CREATE TABLE {q}"))
                .fetch_one(&mut conn)
                .await
                .map_err(db_error)?;
            let mut ddl_out = HashingWriter::new(dir.create(&ddl_name).map_err(storage)?);
            ddl_out.write_all(ddl.as_bytes()).map_err(storage)?;
            table_files.push(ddl_out.finish(&ddl_name).map_err(storage)?);

            let rows_name = table_file(index, &table, "rows.zst");
            let out = dir.create(&rows_name).map_err(storage)?;
            let mut writer = zstd::Encoder::new(HashingWriter::new(out), 3).map_err(storage)?;
            let select = format!("SELECT * FROM {q}");
            let mut stream = sqlx::query(&select).fetch(&mut conn);
            while let Some(row) = stream.try_next().await.map_err(db_error)? {
                let values = migrun_db::mysql::decode_row(&row).map_err(|e| db_error(e.message))?;
                serde_json::to_writer(&mut writer, &values).map_err(storage)?;
                writer.write_all(b"\n").map_err(storage)?;
            }
            drop(stream);
            table_files.push(
                writer
                    .finish()
                    .map_err(storage)?
                    .finish(&rows_name)
                    .map_err(storage)?,
            );
        }
        entries.push(ManifestTable {
            name: table,
            present: true,
            rows: d.rows,
            checksum: d.checksum,
            files: table_files.iter().map(|f| f.name.clone()).collect(),
            columns: cols,
        });
        files.extend(table_files);
    }
    conn.execute("COMMIT").await.map_err(db_error)?;
    let _ = conn.close().await;
    Ok(Taken {
        method: if dump.is_some() {
            Method::MariadbDump
        } else {
            Method::Native
        },
        tables: entries,
        files,
        patterns: expanded.patterns,
        absent_schemas: expanded.absent_schemas,
    })
}

fn read_rows(dir: &Dir, name: &str) -> std::io::Result<Vec<Vec<Value>>> {
    let decoder = zstd::Decoder::new(dir.open(name)?)?;
    let mut rows = Vec::new();
    for line in BufReader::new(decoder).lines() {
        let line = line?;
        let row: Vec<Value> = serde_json::from_str(&line)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Native snapshots: every rows file decodes and holds the manifest's row count.
pub(crate) fn verify_native(
    manifest: &Manifest,
    dir: &Dir,
    report: &mut VerifyReport,
) -> Result<(), BackupError> {
    for table in manifest.tables.iter().filter(|t| t.present) {
        for name in table.files.iter().filter(|n| n.ends_with(".rows.zst")) {
            match read_rows(dir, name) {
                Ok(rows) if rows.len() as u64 == table.rows => {
                    report
                        .checked
                        .push(format!("{}: {} rows in {name}", table.name, rows.len()))
                }
                Ok(rows) => report.bad_tables.push(format!(
                    "{}: {name} holds {} rows, the manifest says {}",
                    table.name,
                    rows.len(),
                    table.rows
                )),
                Err(e) => report
                    .bad_tables
                    .push(format!("{}: {name}: {e}", table.name)),
            }
        }
    }
    Ok(())
}

pub(crate) async fn restore(
    manifest: &Manifest,
    dir: &Dir,
    url: &str,
    tables: &[&ManifestTable],
) -> Result<Vec<RestoredTable>, BackupError> {
    let mut conn = connect(url).await?;
    // The tables go back one at a time, to one point in time: while some are put back, a
    // foreign key between two of them (accounts-merge's `identities` → `accounts`) would
    // refuse the drop of a referenced table or rows whose parent comes later. Checks are off
    // for this session only, as `mariadb-dump`'s own files do; once every selected table is
    // back, the references hold as they did when the snapshot was taken.
    conn.execute("SET SESSION foreign_key_checks = 0")
        .await
        .map_err(db_error)?;
    let parts = UrlParts::parse(url)?;
    let mut restored = Vec::new();
    for table in tables {
        let q = quote(&table.name);
        let action = if !table.present {
            conn.execute(format!("DROP TABLE IF EXISTS {q}").as_str())
                .await
                .map_err(|e| db_error(format!("dropping {}: {e}", table.name)))?;
            "dropped"
        } else if manifest.method == Method::MariadbDump {
            let program = client_tool().await.ok_or_else(|| BackupError::Tool {
                tool: "mariadb".into(),
                message: "neither `mariadb` nor `mysql` is on PATH to load the dump".into(),
            })?;
            let (schema, _) = split(&table.name);
            let (mut args, env) = parts.mysql_args();
            args.push(schema.unwrap_or(&parts.database).to_owned());
            for name in &table.files {
                let file = dir.open(name).map_err(storage)?.into_std();
                Tool {
                    program: program.to_owned(),
                    args: args.clone(),
                    env: env.clone(),
                }
                .run_from(file)
                .await?;
            }
            "restored"
        } else {
            restore_native(&mut conn, url, dir, table).await?;
            "restored"
        };
        let (rows, verified) = if table.present {
            let cols = columns(&mut conn, &table.name).await?;
            let d = digest::mysql(&mut conn, &q, &cols)
                .await
                .map_err(db_error)?;
            (d.rows, table.matches(&d))
        } else {
            (0, columns(&mut conn, &table.name).await?.is_empty())
        };
        restored.push(RestoredTable {
            name: table.name.clone(),
            action: action.to_owned(),
            rows,
            verified,
        });
    }
    let _ = conn.close().await;
    Ok(restored)
}

/// Recreates the table from its recorded `CREATE TABLE` and loads its rows
/// (DDL commits implicitly on MariaDB; the rows go in one transaction).
async fn restore_native(
    conn: &mut MySqlConnection,
    url: &str,
    dir: &Dir,
    table: &ManifestTable,
) -> Result<(), BackupError> {
    let ddl_name = table
        .files
        .iter()
        .find(|n| n.ends_with(".ddl.sql"))
        .ok_or_else(|| db_error(format!("no schema file for {}", table.name)))?;
    let rows_name = table
        .files
        .iter()
        .find(|n| n.ends_with(".rows.zst"))
        .ok_or_else(|| db_error(format!("no rows file for {}", table.name)))?;
    let mut ddl = String::new();
    dir.open(ddl_name)
        .and_then(|mut f| f.read_to_string(&mut ddl))
        .map_err(storage)?;
    let rows = read_rows(dir, rows_name).map_err(storage)?;
    let q = quote(&table.name);
    conn.execute(format!("DROP TABLE IF EXISTS {q}").as_str())
        .await
        .map_err(|e| db_error(format!("dropping {}: {e}", table.name)))?;
    conn.execute(ddl.as_str())
        .await
        .map_err(|e| db_error(format!("recreating {}: {e}", table.name)))?;
    let mut target = migrun_db::Connection::connect("restore", url, Access::ReadWrite)
        .await
        .map_err(|e| db_error(e.message))?;
    let loaded = async {
        // As in `restore`: a child's rows may come back before its parent's.
        target
            .execute("SET SESSION foreign_key_checks = 0", &[])
            .await?;
        target.begin().await?;
        for chunk in rows.chunks(500) {
            target
                .bulk_insert(&table.name, &table.columns, chunk)
                .await?;
        }
        target.commit().await
    }
    .await;
    if loaded.is_err() {
        let _ = target.rollback().await;
    }
    target.close().await;
    loaded.map_err(|e| db_error(format!("loading the rows of {}: {}", table.name, e.message)))
}
