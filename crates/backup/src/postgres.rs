//! PostgreSQL snapshots: `pg_dump --format=custom`, one archive per table,
//! all taken in one snapshot exported by the host's own read transaction
//! (which also computes the checksums, so they describe exactly what was
//! dumped); without a compatible `pg_dump`, a native `COPY … TO STDOUT` of
//! the rows (data only: restoring it needs the table to exist).

use std::io::{Read, Write};

use cap_std::fs::Dir;
use futures::TryStreamExt;
use sqlx::{Connection as _, Executor, PgConnection};

use super::external::{Tool, UrlParts, tool_major_version};
use super::pattern::{Catalog, Expanded, expand};
use super::store::{HashingWriter, Taken, table_file};
use super::{
    BackupError, Manifest, ManifestTable, Method, MethodChoice, RestoredSchema, RestoredTable,
    SnapshotRequest, VerifyReport, db_error, digest, storage,
};
use migrun_db::Access;

/// `schema.table` or `table`, each part double-quoted.
fn quote(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

async fn connect(url: &str, access: Access) -> Result<PgConnection, BackupError> {
    let options =
        migrun_db::postgres::connect_options(url, access).map_err(|e| db_error(e.message))?;
    PgConnection::connect_with(&options).await.map_err(db_error)
}

/// Whether a `pg_dump` at least as new as the server is on `PATH`.
async fn compatible_pg_dump(conn: &mut PgConnection) -> Result<bool, BackupError> {
    let Some(tool) = tool_major_version("pg_dump").await else {
        return Ok(false);
    };
    let server: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
    let compatible = tool as i32 >= server / 10000;
    if !compatible {
        tracing::warn!(
            pg_dump = tool,
            server = server / 10000,
            "pg_dump is older than the server; taking a native snapshot"
        );
    }
    Ok(compatible)
}

async fn columns(conn: &mut PgConnection, table: &str) -> Result<Vec<String>, BackupError> {
    sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute \
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    )
    .bind(quote(table))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)
}

async fn all_tables(conn: &mut PgConnection) -> Result<Vec<String>, BackupError> {
    sqlx::query_scalar(
        "SELECT CASE WHEN table_schema = 'public' THEN table_name::text \
                     ELSE table_schema || '.' || table_name END \
         FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)
}

/// Every table (`schema.table`) and schema outside the system ones (`pg_catalog`,
/// `information_schema`, `pg_toast`, `pg_temp_*`): what patterns are matched against.
pub(crate) async fn catalog(conn: &mut PgConnection) -> Result<Catalog, BackupError> {
    let tables = sqlx::query_scalar(
        "SELECT n.nspname::text || '.' || c.relname::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' \
           AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let schemas = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace \
         WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(Catalog {
        tables,
        default_schema: Some("public".to_owned()),
        schemas: Some(schemas),
    })
}

/// The catalog of the database at `url`, read on a connection of its own.
pub(crate) async fn catalog_of(url: &str) -> Result<Catalog, BackupError> {
    let mut conn = connect(url, Access::ReadOnly).await?;
    let catalog = catalog(&mut conn).await;
    let _ = conn.close().await;
    catalog
}

/// Drops each schema in `names` that holds no relation (table, view, sequence, …) any
/// more, never with CASCADE: the functions it still holds (a trigger function the run
/// created with its tables) are dropped one by one first, each without CASCADE, and
/// all of it in one transaction, so anything something else depends on (or a type, or
/// an extension's object) keeps the schema, unchanged, and the reason is reported.
pub(crate) async fn drop_empty_schemas(
    url: &str,
    names: &[String],
) -> Result<Vec<RestoredSchema>, BackupError> {
    let mut conn = connect(url, Access::ReadWrite).await?;
    let mut outcomes = Vec::new();
    for name in names {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .map_err(db_error)?;
        if !exists {
            outcomes.push(RestoredSchema::done(name, "gone"));
            continue;
        }
        let relations: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind NOT IN ('i', 'I') ORDER BY 1",
        )
        .bind(name)
        .fetch_all(&mut conn)
        .await
        .map_err(db_error)?;
        if !relations.is_empty() {
            outcomes.push(RestoredSchema::still_holding(name, &relations));
            continue;
        }
        match drop_schema_and_routines(&mut conn, name).await {
            Ok(()) => outcomes.push(RestoredSchema::done(name, "dropped")),
            Err(e) => {
                let _ = conn.execute("ROLLBACK").await;
                outcomes.push(RestoredSchema::kept(
                    name,
                    format!("it holds no table, but could not be dropped without CASCADE ({e}); left as it is"),
                ));
            }
        }
    }
    let _ = conn.close().await;
    Ok(outcomes)
}

async fn drop_schema_and_routines(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    conn.execute("BEGIN").await?;
    let routines: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = $1 AND NOT EXISTS \
           (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await?;
    for routine in routines {
        conn.execute(format!("DROP ROUTINE {routine}").as_str())
            .await?;
    }
    conn.execute(format!("DROP SCHEMA {}", quote(name)).as_str())
        .await?;
    conn.execute("COMMIT").await?;
    Ok(())
}

pub(crate) async fn snapshot(request: &SnapshotRequest, dir: &Dir) -> Result<Taken, BackupError> {
    let mut conn = connect(&request.url, Access::ReadOnly).await?;
    let use_dump = request.method == MethodChoice::Auto && compatible_pg_dump(&mut conn).await?;
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(db_error)?;
    let snapshot_id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
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
        let d = digest::postgres(&mut conn, &quote(&table))
            .await
            .map_err(db_error)?;
        let file = if use_dump {
            let name = table_file(index, &table, "pgdump");
            let tool = Tool {
                program: "pg_dump".into(),
                args: vec![
                    "--format=custom".into(),
                    format!("--snapshot={snapshot_id}"),
                    format!("--table={}", quote(&table)),
                    "--no-owner".into(),
                    "--no-privileges".into(),
                ],
                env: parts.libpq_env(),
            };
            let mut out = dir.create(&name).map_err(storage)?;
            let (bytes, sha256) = tool.run_into(&mut out).await?;
            out.sync_all().map_err(storage)?;
            super::ManifestFile {
                name,
                bytes,
                sha256,
            }
        } else {
            let name = table_file(index, &table, "copy.zst");
            let out = dir.create(&name).map_err(storage)?;
            let mut writer = zstd::Encoder::new(HashingWriter::new(out), 3).map_err(storage)?;
            let copy = format!("COPY (SELECT * FROM {}) TO STDOUT", quote(&table));
            let mut stream = conn.copy_out_raw(copy.as_str()).await.map_err(db_error)?;
            while let Some(chunk) = stream.try_next().await.map_err(db_error)? {
                writer.write_all(&chunk).map_err(storage)?;
            }
            drop(stream);
            writer
                .finish()
                .map_err(storage)?
                .finish(&name)
                .map_err(storage)?
        };
        entries.push(ManifestTable {
            name: table,
            present: true,
            rows: d.rows,
            checksum: d.checksum,
            files: vec![file.name.clone()],
            columns: cols,
        });
        files.push(file);
    }
    conn.execute("COMMIT").await.map_err(db_error)?;
    let _ = conn.close().await;
    Ok(Taken {
        method: if use_dump {
            Method::PgDump
        } else {
            Method::Native
        },
        tables: entries,
        files,
        patterns: expanded.patterns,
        absent_schemas: expanded.absent_schemas,
    })
}

/// Native snapshots: each file decompresses and holds as many rows as the manifest says.
pub(crate) fn verify_native(
    manifest: &Manifest,
    dir: &Dir,
    report: &mut VerifyReport,
) -> Result<(), BackupError> {
    for table in manifest.tables.iter().filter(|t| t.present) {
        for name in &table.files {
            let counted = dir.open(name).and_then(|f| {
                let mut decoder = zstd::Decoder::new(f)?;
                let mut lines = 0u64;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = decoder.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
                }
                Ok(lines)
            });
            match counted {
                Ok(rows) if rows == table.rows => report
                    .checked
                    .push(format!("{}: {rows} rows in {name}", table.name)),
                Ok(rows) => report.bad_tables.push(format!(
                    "{}: {name} holds {rows} rows, the manifest says {}",
                    table.name, table.rows
                )),
                Err(e) => report
                    .bad_tables
                    .push(format!("{}: {name}: {e}", table.name)),
            }
        }
    }
    Ok(())
}

/// Dumps: `pg_restore --list` must read every archive.
pub(crate) async fn verify_dump(
    manifest: &Manifest,
    dir: &Dir,
    report: &mut VerifyReport,
) -> Result<(), BackupError> {
    for table in manifest.tables.iter().filter(|t| t.present) {
        for name in &table.files {
            let file = dir.open(name).map_err(storage)?.into_std();
            let tool = Tool {
                program: "pg_restore".into(),
                args: vec!["--list".into()],
                env: Vec::new(),
            };
            match tool.run_from(file).await {
                Ok(()) => report.checked.push(format!(
                    "{}: {name} is a readable pg_dump archive",
                    table.name
                )),
                Err(e) => report.bad_files.push(format!("{name}: {e}")),
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
    let mut conn = connect(url, Access::ReadWrite).await?;
    let parts = UrlParts::parse(url)?;
    // Tables that did not exist are dropped in one statement: foreign keys between them
    // (`auth.accounts` → `auth.users`) need no CASCADE when both go at once.
    let absent: Vec<String> = tables
        .iter()
        .filter(|t| !t.present)
        .map(|t| quote(&t.name))
        .collect();
    if !absent.is_empty() {
        conn.execute(format!("DROP TABLE IF EXISTS {}", absent.join(", ")).as_str())
            .await
            .map_err(|e| {
                db_error(format!(
                    "dropping the tables created since the backup ({}): {e}; none of them was dropped",
                    absent.join(", ")
                ))
            })?;
    }
    let mut restored = Vec::new();
    for table in tables {
        let action = if !table.present {
            "dropped"
        } else if manifest.method == Method::PgDump {
            for name in &table.files {
                let file = dir.open(name).map_err(storage)?.into_std();
                Tool {
                    program: "pg_restore".into(),
                    args: vec![
                        "--clean".into(),
                        "--if-exists".into(),
                        "--single-transaction".into(),
                        "--exit-on-error".into(),
                        "--no-owner".into(),
                        "--no-privileges".into(),
                        format!("--dbname={}", parts.database),
                    ],
                    env: parts.libpq_env(),
                }
                .run_from(file)
                .await?;
            }
            "restored"
        } else {
            restore_native(&mut conn, dir, table).await?;
            "restored"
        };
        let (rows, verified) = if table.present {
            let d = digest::postgres(&mut conn, &quote(&table.name))
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

/// Replaces a table's rows by the snapshot's, in one transaction. The table must still
/// have the snapshot's columns: a native snapshot holds data, not schema.
async fn restore_native(
    conn: &mut PgConnection,
    dir: &Dir,
    table: &ManifestTable,
) -> Result<(), BackupError> {
    let now = columns(conn, &table.name).await?;
    if now.is_empty() {
        return Err(BackupError::Database(format!(
            "table `{}` no longer exists; a native snapshot holds its rows, not its schema (recreate it, then restore)",
            table.name
        )));
    }
    let missing: Vec<&String> = table.columns.iter().filter(|c| !now.contains(c)).collect();
    if !missing.is_empty() {
        return Err(BackupError::Database(format!(
            "table `{}` lacks the snapshot's columns {missing:?}; nothing was changed",
            table.name
        )));
    }
    let q = quote(&table.name);
    let cols = table
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    conn.execute("BEGIN").await.map_err(db_error)?;
    let result = async {
        conn.execute(format!("DELETE FROM {q}").as_str())
            .await
            .map_err(db_error)?;
        let mut copy = conn
            .copy_in_raw(format!("COPY {q} ({cols}) FROM STDIN").as_str())
            .await
            .map_err(db_error)?;
        for name in &table.files {
            let mut decoder =
                zstd::Decoder::new(dir.open(name).map_err(storage)?).map_err(storage)?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = decoder.read(&mut buf).map_err(storage)?;
                if n == 0 {
                    break;
                }
                copy.send(&buf[..n]).await.map_err(db_error)?;
            }
        }
        copy.finish().await.map_err(db_error)?;
        Ok::<(), BackupError>(())
    }
    .await;
    match result {
        Ok(()) => conn.execute("COMMIT").await.map(|_| ()).map_err(db_error),
        Err(e) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(e)
        }
    }
}
