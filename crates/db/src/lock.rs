//! One run at a time per target: a lock every writer takes before its first write.
//!
//! The lock lives on a connection of its own that only the host uses: a lock
//! in the plugin's session could be released by the plugin's own SQL
//! (`pg_advisory_unlock_all()`, `RELEASE_ALL_LOCKS()`), letting a second run
//! start beside this one. `migrun restore` takes the same lock, so it never
//! runs in the middle of a run.
//!
//! - PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`),
//!   keyed by a hash of the lock name. It is released when the connection
//!   closes, so a killed migrun never leaves it behind. A sharded worker also
//!   holds the unsharded name in shared mode (`pg_try_advisory_lock_shared`),
//!   so that an unsharded run or a restore waits for every worker.
//! - MySQL/MariaDB: `GET_LOCK(name, 0)`, also tied to the session (MariaDB
//!   has no shared locks: a restore does not see sharded workers there).
//! - SQLite: an exclusive OS file lock on `<database>.migrun-lock` (released
//!   by the OS when the process dies), with the holder's pid and run id
//!   written into the file for the message a second process shows.
//!
//! A second run polls until `--lock-timeout` and then fails naming the holder
//! when the database can tell (PostgreSQL backend pid and application name,
//! MariaDB connection id, user and host; SQLite pid and run id).
//!
//! Sharded workers (`--shard i/n`) lock `name:shard-i-of-n`: the workers of
//! one job run side by side, two copies of the same worker do not. Units
//! never run twice across workers because of the ledger's primary key.
//!
//! The polling is written once here; each dialect's statements are its
//! `db/<dialect>/lock.rs` (`LockSql`).

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::driver_for;
use crate::{Access, Connection, DbError};
use migrun_types::value::Value;

/// How often a waiting run retries.
const POLL: Duration = Duration::from_millis(200);

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another run holds it.
    #[error(
        "connection `{connection}`: another migrun run holds the lock `{name}` ({holder}); waited {waited_secs} s (--lock-timeout)"
    )]
    Held {
        /// The connection.
        connection: String,
        /// The lock name.
        name: String,
        /// Who holds it, as far as the database tells.
        holder: String,
        /// How long this run waited.
        waited_secs: u64,
    },
    /// Taking it failed.
    #[error("connection `{connection}`: cannot take the run lock: {error}")]
    Database {
        /// The connection.
        connection: String,
        /// Why.
        error: DbError,
    },
    /// The SQLite lock file could not be opened.
    #[error("connection `{connection}`: cannot open the lock file {path}: {error}")]
    File {
        /// The connection.
        connection: String,
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// A held lock, released when this value is dropped (the database locks with the
/// host-only connection that holds them, the file lock with its file).
pub struct RunLock {
    /// The lock's name.
    pub name: String,
    _file: Option<std::fs::File>,
    _holder: Option<Connection>,
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLock").field("name", &self.name).finish()
    }
}

impl RunLock {
    /// Whether the lock is still held: its connection answers (a session-level lock is
    /// released only by its own session, which nothing but this value uses, or when
    /// the session ends). `Err` says why it is not.
    pub async fn verify(&mut self) -> Result<(), String> {
        let Some(conn) = self._holder.as_mut() else {
            return Ok(()); // A file lock lives as long as this process.
        };
        match conn.query("SELECT 1", &[]).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "the connection holding `{}` is gone ({e})",
                self.name
            )),
        }
    }

    /// Releases the lock now (closing its connection).
    pub async fn release(self) {
        if let Some(conn) = self._holder {
            conn.close().await;
        }
    }
}

/// The lock a run (and `migrun restore`) takes on a target whose ledger is `ledger_table`.
pub fn run_lock_name(ledger_table: &str) -> String {
    format!("migrun:{ledger_table}")
}

/// Takes the run lock `name` for the target `connection` at `url`, on a connection of
/// its own, waiting up to `timeout`. `shared` names a lock taken in shared mode beside it
/// (PostgreSQL only: a sharded worker's hold on the unsharded name).
///
/// `sqlite_file` is the database file of a SQLite connection (`None` for in-memory ones,
/// which no other process can see).
pub async fn acquire(
    connection: &str,
    url: &str,
    name: &str,
    shared: Option<&str>,
    run_id: &str,
    sqlite_file: Option<&Path>,
    timeout: Duration,
) -> Result<RunLock, LockError> {
    let db_err = |error| LockError::Database {
        connection: connection.to_owned(),
        error,
    };
    let dialect = Connection::dialect_of_url(url).map_err(db_err)?;
    if driver_for(dialect).try_lock(name).is_none() {
        let mut none = None;
        return take(
            &mut none,
            connection,
            name,
            None,
            run_id,
            sqlite_file,
            timeout,
        )
        .await;
    }
    let holder = Connection::connect(&format!("{connection} (run lock)"), url, Access::ReadWrite)
        .await
        .map_err(db_err)?;
    let mut holder = Some(holder);
    match take(
        &mut holder,
        connection,
        name,
        shared,
        run_id,
        sqlite_file,
        timeout,
    )
    .await
    {
        Ok(lock) => Ok(lock),
        Err(e) => {
            if let Some(conn) = holder {
                conn.close().await;
            }
            Err(e)
        }
    }
}

/// The polling loop of [`acquire`] on the lock's own connection (`None` for SQLite).
async fn take(
    holder: &mut Option<Connection>,
    connection: &str,
    name: &str,
    shared: Option<&str>,
    run_id: &str,
    sqlite_file: Option<&Path>,
    timeout: Duration,
) -> Result<RunLock, LockError> {
    let started = Instant::now();
    let db_err = |error| LockError::Database {
        connection: connection.to_owned(),
        error,
    };
    if let (Some(conn), Some(shared)) = (holder.as_mut(), shared)
        && let Some(take_shared) = driver_for(conn.dialect()).try_lock_shared(shared)
    {
        loop {
            let rows = conn
                .query(&take_shared.sql, &take_shared.params)
                .await
                .map_err(db_err)?;
            if first_is_true(&rows.rows) {
                break;
            }
            if started.elapsed() >= timeout {
                return Err(LockError::Held {
                    connection: connection.to_owned(),
                    name: shared.to_owned(),
                    holder: holder_of(conn, shared, None).await,
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
    loop {
        let Some(conn) = holder.as_mut() else {
            let (taken, file) = match sqlite_file {
                None => (true, None),
                Some(db) => try_file_lock(connection, db, run_id)?,
            };
            if taken {
                return Ok(RunLock {
                    name: name.to_owned(),
                    _file: file,
                    _holder: None,
                });
            }
            if started.elapsed() >= timeout {
                return Err(LockError::Held {
                    connection: connection.to_owned(),
                    name: name.to_owned(),
                    holder: sqlite_holder(sqlite_file),
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
            continue;
        };
        let Some(take) = driver_for(conn.dialect()).try_lock(name) else {
            unreachable!("a connection holds only the locks of a dialect that locks in its session")
        };
        let rows = conn.query(&take.sql, &take.params).await.map_err(db_err)?;
        let (taken, file) = (first_is_true(&rows.rows), None);
        if taken {
            return Ok(RunLock {
                name: name.to_owned(),
                _file: file,
                _holder: holder.take(),
            });
        }
        if started.elapsed() >= timeout {
            return Err(LockError::Held {
                connection: connection.to_owned(),
                name: name.to_owned(),
                holder: holder_of(conn, name, sqlite_file).await,
                waited_secs: started.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn first_is_true(rows: &[Vec<Value>]) -> bool {
    matches!(
        rows.first().and_then(|r| r.first()),
        Some(Value::Bool(true)) | Some(Value::Int(1))
    )
}

fn lock_file_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push(".migrun-lock");
    db.with_file_name(name)
}

fn try_file_lock(
    connection: &str,
    db: &Path,
    run_id: &str,
) -> Result<(bool, Option<std::fs::File>), LockError> {
    let path = lock_file_path(db);
    let file_err = |error| LockError::File {
        connection: connection.to_owned(),
        path: path.clone(),
        error,
    };
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(file_err)?;
    match file.try_lock() {
        Ok(()) => {
            let note = format!("pid {} run {run_id}\n", std::process::id());
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(note.as_bytes()))
                .map_err(file_err)?;
            Ok((true, Some(file)))
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok((false, None)),
        Err(std::fs::TryLockError::Error(e)) => Err(file_err(e)),
    }
}

/// Who holds a SQLite file lock, as its file tells.
fn sqlite_holder(sqlite_file: Option<&Path>) -> String {
    let Some(db) = sqlite_file else {
        return "holder unknown".to_owned();
    };
    let mut note = String::new();
    match std::fs::File::open(lock_file_path(db)).and_then(|mut f| f.read_to_string(&mut note)) {
        Ok(_) if !note.trim().is_empty() => format!("held by {}", note.trim()),
        _ => "holder unknown".to_owned(),
    }
}

/// Who holds the lock, as far as the database tells.
async fn holder_of(conn: &mut Connection, name: &str, sqlite_file: Option<&Path>) -> String {
    let sql = driver_for(conn.dialect());
    let Some(holder) = sql.lock_holder(name) else {
        return sqlite_holder(sqlite_file);
    };
    match conn.query(&holder.sql, &holder.params).await {
        Ok(rows) if !rows.rows.is_empty() => sql.describe_lock_holder(&rows.rows[0]),
        _ => "holder unknown".to_owned(),
    }
}
