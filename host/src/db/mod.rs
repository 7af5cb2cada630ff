//! The host's database layer: named connections to SQLite, PostgreSQL and
//! MySQL/MariaDB over sqlx, speaking only [`Value`]s.
//!
//! This module owns everything between a plugin's `database` calls and the
//! wire: one physical connection per [`Connection`], the unit transaction,
//! read-only enforcement, value encoding and decoding, streaming cursors and
//! bulk inserts, and the classification of every failure into a [`DbError`].
//! It knows nothing about wasmtime; the runtime maps WIT calls onto this API.
//!
//! # Layout
//!
//! - `mod.rs`: the public types and [`Connection`], written once for all dialects.
//! - `error.rs`: [`DbError`], [`DbErrorKind`] and code classification.
//! - `backend.rs`: one sqlx connection of any dialect behind a small set of operations.
//! - `cursor.rs`: the task that streams a cursor's rows in batches.
//! - `postgres.rs`, `mysql.rs`, `sqlite.rs`: session setup, encoding, decoding.
//! - `sql.rs`: leading-keyword lexing, a token stream (for plans, lints and guards), the
//!   SQLite single-statement check, identifier quoting.
//! - `dry_run.rs`: what a dry-run's rollback does not undo — PostgreSQL sequences restored,
//!   a MySQL/MariaDB scratch database ([`Connection::enter_dry_run`], [`Connection::leave_dry_run`]).
//! - `catalog.rs`: row counts, exact or estimated ([`Connection::table_rows`]).
//!
//! # Read-only access
//!
//! Read-only is enforced by the database session, never by parsing SQL:
//!
//! | dialect | session | [`Connection::begin`] | a write fails with |
//! |---|---|---|---|
//! | PostgreSQL | startup option `default_transaction_read_only=on` | `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`, snapshot taken at once | SQLSTATE `25006` |
//! | MySQL/MariaDB | `SET SESSION TRANSACTION READ ONLY` | `START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT` | error `1792` |
//! | SQLite | `mode=ro` and `PRAGMA query_only=ON` | `BEGIN` | `8` (`SQLITE_READONLY`) |
//!
//! Read-write transactions begin with `BEGIN`, `START TRANSACTION` and
//! `BEGIN IMMEDIATE` respectively. A session setting can be changed by SQL,
//! so on PostgreSQL a read-only statement outside a host transaction runs in
//! its own `BEGIN READ ONLY … COMMIT` (`SET default_transaction_read_only=off`
//! then changes nothing), and a read-only host transaction takes its snapshot
//! at once (`SET TRANSACTION READ WRITE` is then too late). On MySQL, where
//! no such wrapper helps (DDL commits implicitly), see the guards below.
//!
//! # Guards, the authorizer and the session check
//!
//! What a plugin's SQL may not do is enforced by the database or checked by
//! asking it, never by reading the text alone:
//!
//! - `sqlite_authorizer.rs`: every SQLite connection attaches nothing
//!   (`SQLITE_LIMIT_ATTACHED = 0`), runs defensive, and compiles plugin
//!   statements under an authorizer that denies transaction control,
//!   `ATTACH`, most `PRAGMA`s and file functions;
//! - `session_check.rs`: after every plugin statement the database says
//!   whether the host's transaction, read-only mode and (MariaDB) database are
//!   still there; if not, the connection is closed to the plugin and the unit
//!   fails, reported as possibly committed ([`SessionEscape`]);
//! - `guard.rs`: statements refused by their text, for a clear message first:
//!   control characters, transaction control, MariaDB compound statements,
//!   dynamic SQL, executable comments and most `SET`s, server-file access,
//!   DDL while [`Connection::refuse_ddl`] holds a reason, and a dry-run's own
//!   rules (`dry_run.rs`).
//!
//! # Transactions and schema changes
//!
//! A [`Connection`] runs in autocommit mode until the host calls
//! [`Connection::begin`]; the unit's statements then share one transaction
//! until [`Connection::commit`] or [`Connection::rollback`]. PostgreSQL and
//! SQLite roll DDL back with everything else. MySQL commits implicitly before
//! a DDL statement: after a successful one inside a unit the host opens a new
//! transaction, so the rest of the unit stays atomic (the DDL and what came
//! before it are committed). A dry-run on MySQL therefore runs in a scratch
//! copy of the database ([`Connection::enter_dry_run`]), or refuses DDL
//! ([`Connection::refuse_ddl`]) when no copy can be made.
//!
//! sqlx caches prepared statements, which a schema change can make stale: a
//! successful DDL statement clears the cache on PostgreSQL and MySQL, and so
//! does the rollback of a PostgreSQL transaction that ran DDL. SQLite
//! connections compare `PRAGMA schema_version` before each statement, which
//! also catches changes made by other connections. On PostgreSQL another
//! connection's DDL makes the next use of a cached statement fail once with
//! `0A000`, after which it works.
//!
//! # Value mapping
//!
//! Reading, by the column's type as the database reports it:
//!
//! | [`Value`] | PostgreSQL | MySQL/MariaDB | SQLite (storage class) |
//! |---|---|---|---|
//! | `Null` | NULL | NULL | NULL |
//! | `Bool` | `bool` | `TINYINT(1)`/`BOOLEAN` holding 0 or 1 | INTEGER 0/1 in a column declared `BOOLEAN` |
//! | `Int` | `int2`, `int4`, `int8`, `oid` | integer types, `YEAR`, `BIT`; unsigned values above `i64::MAX` read as `Decimal` | INTEGER |
//! | `Float` | `float8`; `float4` as the double with the same shortest text | `DOUBLE`; `FLOAT` likewise | REAL |
//! | `Text` | `text`, `varchar`, `bpchar`, `name`, `"char"`, `xml`, `citext`, enums, domains over these | `CHAR`, `VARCHAR`, `TEXT`s, `ENUM`, `SET` | TEXT |
//! | `Bytes` | `bytea` | `BINARY`, `VARBINARY`, `BLOB`s, and any BINARY-flagged string (see below) | BLOB |
//! | `Json` | `json` (its text), `jsonb` (PostgreSQL's normalised text) | `JSON` as MySQL reports it | — (TEXT) |
//! | `Uuid` | `uuid` | — (text) | — (TEXT) |
//! | `Date` | `date` | `DATE` | — (TEXT) |
//! | `Time` | `time` | `TIME` within a day (else a `Value` error) | — (TEXT) |
//! | `Timestamp` | `timestamp` | `DATETIME` | — (TEXT) |
//! | `Timestamptz` | `timestamptz` | `TIMESTAMP` (the session is UTC) | — (TEXT) |
//! | `Decimal` | `numeric`, scale kept (`1.50`) | `DECIMAL`, at the column's scale | — (TEXT) |
//! | `Float32Array` | `float4[]` | — (JSON text) | — (TEXT) |
//! | `TextArray` | `text[]`, `varchar[]`, `bpchar[]`, `name[]`, arrays of citext/enums | — (JSON text) | — (TEXT) |
//!
//! Any other type (PostgreSQL `interval`, `tstzrange`, `ltree`, `halfvec`, …;
//! MySQL `GEOMETRY`) fails with a [`DbErrorKind::Value`] error that names the
//! column and its type and suggests a cast in SQL (`tree::text`). So do
//! PostgreSQL `infinity` dates, `NaN` numerics, multi-dimensional arrays and
//! arrays holding NULL. MySQL sets the BINARY flag for text with a binary
//! collation too (`utf8mb4_bin`, and MariaDB's `JSON`), and sqlx 0.8 does not
//! expose the collation that would tell them apart: such columns read as
//! `Bytes`; select them as `CAST(col AS CHAR)` to read text.
//!
//! Binding, per value kind:
//!
//! | [`Value`] | PostgreSQL (binary, declared type) | MySQL/MariaDB | SQLite |
//! |---|---|---|---|
//! | `Null` | type "unknown": the server infers it from context | NULL | NULL |
//! | `Bool` | `bool` | `TINYINT` 0/1 | INTEGER 0/1 |
//! | `Int` | `int8` | `BIGINT` | INTEGER |
//! | `Float` | `float8` (NaN, ±Infinity allowed) | `DOUBLE`; NaN/±Infinity refused | REAL; NaN refused (SQLite would store NULL) |
//! | `Text` | `text` | string | TEXT |
//! | `Bytes` | `bytea` | bytes | BLOB |
//! | `Json` | `jsonb` | string | TEXT |
//! | `Uuid` | `uuid` | hyphenated string | TEXT (canonical) |
//! | `Date`, `Time`, `Timestamp` | `date`, `time`, `timestamp` | `DATE`, `TIME`, `DATETIME` | TEXT (canonical) |
//! | `Timestamptz` | `timestamptz` | UTC `DATETIME` | TEXT (canonical, `…Z`) |
//! | `Decimal` | `numeric`, scale kept | string (exact) | TEXT (canonical) |
//! | `Float32Array` | `real[]` | JSON text | TEXT (JSON) |
//! | `TextArray` | `text[]` | JSON text | TEXT (JSON) |
//!
//! On PostgreSQL a parameter keeps its declared type, so the server applies
//! its usual casts (an `int8` into an `int4` column is fine; a `text` into a
//! `uuid`, `jsonb` or enum column is not: bind the matching kind or cast in
//! SQL, `$1::mood`). `Json` is declared `jsonb` so that jsonb operators work
//! (`doc @> $1`); a `json` column written through a parameter therefore holds
//! PostgreSQL's normalised text, while [`Connection::bulk_insert`] (`COPY`)
//! keeps the text as given. A NULL where the server cannot infer a type
//! (`jsonb_build_object('k', $1)`, `$1 IS NULL`) needs a cast (`$1::text`).
//! Sub-microsecond digits of temporal values are dropped.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), migrun::db::DbError> {
//! use migrun::db::{Access, Connection};
//! use migrun::value::Value;
//!
//! let mut target = Connection::connect("target", "sqlite:demo.sqlite", Access::ReadWrite).await?;
//! target.begin().await?;
//! target.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT)", &[]).await?;
//! target.bulk_insert("t", &["id".into(), "name".into()], &[vec![Value::Int(1), Value::Text("a".into())]]).await?;
//! let cursor = target.open_cursor("SELECT id, name FROM t ORDER BY id", &[], 500).await?;
//! while let Some(batch) = target.next_batch(&cursor).await? {
//!     println!("{} rows", batch.len());
//! }
//! target.commit().await?;
//! target.close().await;
//! # Ok(())
//! # }
//! ```

mod backend;
mod catalog;
mod cursor;
mod dry_run;
mod error;
mod guard;
pub(crate) mod mysql;
pub(crate) mod postgres;
pub mod privileges;
mod session_check;
pub(crate) mod sql;
pub(crate) mod sqlite;
mod sqlite_authorizer;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub use catalog::RowCount;
pub use dry_run::{DryRunGuard, DryRunMode, DryRunRestore, SCRATCH_PREFIX};
pub use error::{DbError, DbErrorKind};
pub use session_check::SessionEscape;

use crate::value::Value;
use backend::{Backend, Bound, Step};
use cursor::{ActiveCursor, CursorShared, CursorStatus};

/// How long [`Connection::connect`] waits for a server before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Rows per batch never exceed this, whatever a plugin asks for, so that a
/// cursor's memory stays bounded (the WIT promises *at most* `batch-size`).
pub const MAX_BATCH_ROWS: u32 = 100_000;

/// Placeholders per multi-row `INSERT`: SQLite's limit is 32766, MySQL's 65535.
const SQLITE_MAX_PARAMS: usize = 32_766;
const MYSQL_MAX_PARAMS: usize = 65_535;
/// Rows per multi-row `INSERT`, and a budget for the values' bytes, so a
/// statement stays well under MySQL's `max_allowed_packet` (16 MiB by default).
const INSERT_MAX_ROWS: usize = 1_000;
const INSERT_MAX_BYTES: usize = 4 << 20;
/// The default cap on one `query` result (the default memory limit, 1 GiB).
const DEFAULT_MAX_RESULT_BYTES: usize = 1 << 30;
/// What a row costs beyond its values, for the `query` result cap.
const ROW_OVERHEAD: usize = 24;

/// The SQL dialect behind a connection; mirrors `dialect` in the WIT.
/// Serialises as its lowercase name (`"sqlite"`, `"postgres"`, `"mysql"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Dialect {
    /// The lowercase name used in configuration and messages (`sqlite`, `postgres`, `mysql`).
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a connection may do; mirrors `access` in the WIT and reads from
/// configuration as `"read-only"` / `"read-write"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Reads only, enforced by the database session.
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        })
    }
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column name as the database reports it.
    pub name: String,
    /// The database's own type name (`int8` on PostgreSQL, `VARCHAR` on
    /// MySQL, the declared type on SQLite), for diagnostics only.
    pub type_name: String,
}

/// The complete result of [`Connection::query`].
///
/// Invariant: every row has exactly `columns.len()` values, in column order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    /// The columns, in order (present even when there are no rows).
    pub columns: Vec<Column>,
    /// The rows.
    pub rows: Vec<Vec<Value>>,
}

/// A streaming result opened by [`Connection::open_cursor`].
///
/// The handle is only an identity: the rows are read through the connection
/// that opened it ([`Connection::next_batch`]), which runs nothing else until
/// the cursor is exhausted or closed. Clones refer to the same cursor.
#[derive(Debug, Clone)]
pub struct CursorHandle {
    id: u64,
    columns: Vec<Column>,
    shared: Arc<CursorShared>,
}

impl CursorHandle {
    /// The result's columns, known as soon as the cursor is open.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Whether the cursor has been read to the end (its connection is free again).
    pub fn is_exhausted(&self) -> bool {
        self.shared.status() == CursorStatus::Exhausted
    }
}

/// Where the physical connection is.
enum State {
    /// Here, ready for a statement.
    Idle(Backend),
    /// Inside the task of an open cursor.
    Cursor(ActiveCursor),
    /// Lost: a cursor task died or was abandoned mid-hand-back.
    Broken(String),
}

/// One named, physical database connection.
///
/// Invariants: at most one cursor is open at a time, and while it is, every
/// other call except [`Connection::next_batch`], [`Connection::close_cursor`],
/// [`Connection::rollback`], [`Connection::commit`] and [`Connection::close`]
/// fails with [`DbErrorKind::Usage`]. Transactions are opened and ended only by
/// the host ([`Connection::begin`] and friends); a plugin's SQL cannot.
/// `Send + 'static`, so the runtime can keep it in a resource table.
pub struct Connection {
    name: String,
    dialect: Dialect,
    access: Access,
    state: State,
    in_transaction: bool,
    /// The open transaction's `BEGIN` has not been sent yet: it goes out with
    /// the next statement ([`Connection::begin_deferred`]).
    begin_pending: bool,
    /// Whether DDL ran in the open transaction (its rollback then invalidates cached plans).
    ddl_in_transaction: bool,
    refuse_ddl: Option<String>,
    /// What a dry-run must undo or confine beyond the rollback ([`Connection::enter_dry_run`]).
    dry_run: Option<dry_run::Active>,
    /// The most value data one [`Connection::query`] may return ([`Connection::limit_results`]).
    max_result_bytes: usize,
    /// Set by [`Connection::begin_read_only_phase`]: a read-write connection runs
    /// read-only (in the session) until the phase's rollback.
    read_only_phase: bool,
    /// What the session check expects ([`session_check`]).
    marks: session_check::SessionMarks,
    /// A plugin statement took the session out of the host's hands: the plugin's
    /// statements are refused from then on ([`session_check`]).
    escape: Option<SessionEscape>,
    /// A cursor ended since the last session check: check before the next statement.
    check_due: bool,
    /// Where it connects (to cancel a runaway statement from a connection of its own).
    url: String,
    /// The session's id on the server (PostgreSQL backend pid, MariaDB connection id).
    server_id: Option<i64>,
    /// PostgreSQL's `search_path` when the session opened.
    search_path: Option<String>,
}

static NEXT_CURSOR_ID: AtomicU64 = AtomicU64::new(1);

/// Cancels the statement a session runs on the server, from a connection of its own.
pub struct StatementCanceller {
    name: String,
    dialect: Dialect,
    url: String,
    server_id: Option<i64>,
}

impl StatementCanceller {
    /// Asks the server to cancel the session's statement (`pg_cancel_backend`, `KILL
    /// QUERY`); best effort, the outcome is logged. Nothing on SQLite.
    pub async fn cancel(&self) {
        let Some(id) = self.server_id else {
            return;
        };
        let sql = match self.dialect {
            Dialect::Postgres => format!("SELECT pg_cancel_backend({id})"),
            Dialect::MySql => format!("KILL QUERY {id}"),
            Dialect::Sqlite => return,
        };
        let cancelled = async {
            let mut backend = Backend::connect(self.dialect, &self.url, Access::ReadWrite).await?;
            let result = backend.simple(&sql).await;
            backend.close().await;
            result
        };
        let name = &self.name;
        match tokio::time::timeout(CONNECT_TIMEOUT, cancelled).await {
            Ok(Ok(())) => {
                tracing::warn!(connection = %name, "cancelled the statement still running on the server")
            }
            Ok(Err(e)) => {
                tracing::warn!(connection = %name, "cannot cancel the statement running on the server: {e}")
            }
            Err(_) => {
                tracing::warn!(connection = %name, "cannot cancel the statement running on the server: no answer")
            }
        }
    }
}

impl Connection {
    /// The dialect a URL selects, from its scheme: `sqlite:`, `postgres:`/`postgresql:`, `mysql:`/`mariadb:`.
    pub fn dialect_of_url(url: &str) -> Result<Dialect, DbError> {
        let scheme = url
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        match scheme.as_str() {
            "sqlite" => Ok(Dialect::Sqlite),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            // Never echo the URL itself: it may hold a password.
            _ => Err(DbError::usage(format!(
                "unsupported database URL scheme {scheme:?}: expected sqlite:, postgres:, postgresql:, mysql: or mariadb:"
            ))),
        }
    }

    /// Opens the connection `name` to `url` with `access`, applying the session
    /// settings described in the module docs. Any failure is a
    /// [`DbErrorKind::Connection`] error that names the connection (and keeps
    /// the server's code, e.g. `28P01` for a wrong password).
    pub async fn connect(name: &str, url: &str, access: Access) -> Result<Connection, DbError> {
        let dialect = Self::dialect_of_url(url)?;
        let opened =
            tokio::time::timeout(CONNECT_TIMEOUT, Backend::connect(dialect, url, access)).await;
        let mut backend = match opened {
            Ok(Ok(backend)) => backend,
            Ok(Err(e)) => {
                return Err(DbError {
                    kind: DbErrorKind::Connection,
                    code: e.code,
                    message: format!("cannot open connection `{name}` ({dialect}): {}", e.message),
                });
            }
            Err(_) => {
                return Err(DbError::new(
                    DbErrorKind::Connection,
                    format!(
                        "cannot open connection `{name}` ({dialect}): no answer within {CONNECT_TIMEOUT:?}"
                    ),
                ));
            }
        };
        let facts = backend.session_facts().await.map_err(|e| DbError {
            kind: DbErrorKind::Connection,
            code: e.code.clone(),
            message: format!("cannot open connection `{name}` ({dialect}): {}", e.message),
        })?;
        Ok(Connection {
            name: name.to_owned(),
            dialect,
            access,
            state: State::Idle(backend),
            in_transaction: false,
            begin_pending: false,
            ddl_in_transaction: false,
            refuse_ddl: None,
            dry_run: None,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            read_only_phase: false,
            marks: session_check::SessionMarks {
                mariadb_database: facts.database,
                ..Default::default()
            },
            url: url.to_owned(),
            server_id: facts.server_id,
            search_path: facts.search_path,
            escape: None,
            check_due: false,
        })
    }

    /// Caps the value data one [`query`](Self::query) may return, in bytes
    /// (estimated as the bulk insert's chunking does: text and bytes by their
    /// length, scalars at 16 bytes each).
    ///
    /// Why: `query` materialises the whole result on the host before handing
    /// it to the plugin, so without a cap a plugin could make the host hold a
    /// result of any size. The runner sets it to the plugin's memory limit: a
    /// result bigger than that could not be lowered into the plugin anyway.
    /// The statement is stopped as soon as the rows read so far pass the cap,
    /// and the plugin gets a `refused` error pointing it to a cursor, whose
    /// memory is bounded by its batch size.
    pub fn limit_results(&mut self, max_bytes: usize) {
        self.max_result_bytes = max_bytes;
    }

    /// Bounds every statement on the server to `limit` (PostgreSQL
    /// `statement_timeout` and `lock_timeout`, MariaDB `max_statement_time`), so
    /// that a statement outliving the plugin's wall-clock limit is ended by the
    /// server itself and cannot keep its locks after migrun has given up on it.
    /// A plugin cannot lift it on MariaDB (the guard refuses that `SET`); on
    /// PostgreSQL [`Connection::cancel_server_statement`] is the second line.
    /// Nothing on SQLite, which runs in migrun's process and dies with it.
    pub async fn limit_statement_time(&mut self, limit: Duration) -> Result<(), DbError> {
        let ms = limit.as_millis().max(1);
        let sql = match self.dialect {
            Dialect::Postgres => format!("SET statement_timeout = {ms}; SET lock_timeout = {ms}"),
            Dialect::MySql => format!("SET SESSION max_statement_time = {}", ms as f64 / 1000.0),
            Dialect::Sqlite => return Ok(()),
        };
        self.host_simple(&sql).await
    }

    /// Asks the server to cancel whatever statement this session is running,
    /// through a short-lived connection of its own (`pg_cancel_backend`,
    /// `KILL QUERY`): after a timeout the session itself is stuck waiting for
    /// that statement, and the server would otherwise finish it — holding its
    /// locks — long after migrun stopped. Best effort: the outcome is logged.
    pub async fn cancel_server_statement(&self) {
        self.canceller().cancel().await;
    }

    /// What [`Connection::cancel_server_statement`] needs, apart from the connection
    /// (which may be gone by the time the cancel is sent).
    pub fn canceller(&self) -> StatementCanceller {
        StatementCanceller {
            name: self.name.clone(),
            dialect: self.dialect,
            url: self.url.clone(),
            server_id: self.server_id,
        }
    }

    /// The `search_path` the session opened with (PostgreSQL).
    pub fn opening_search_path(&self) -> Option<&str> {
        self.search_path.as_deref()
    }

    /// The name the plugin and the configuration use for this connection.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection's dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The access the operator granted.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The access the session runs with now: read-only during a read-only phase
    /// ([`Connection::begin_read_only_phase`]), else the access granted.
    pub fn effective_access(&self) -> Access {
        if self.read_only_phase {
            Access::ReadOnly
        } else {
            self.access
        }
    }

    /// Opens a transaction in which even a read-write connection is read-only in
    /// the session, for the plugin code that runs before the before-run backup
    /// (`configure`, `list-units`): PostgreSQL `BEGIN … READ ONLY` with its
    /// snapshot taken, MariaDB `SET SESSION TRANSACTION READ ONLY` and `START
    /// TRANSACTION READ ONLY`, SQLite `PRAGMA query_only = ON` and `BEGIN`.
    /// The phase ends with [`Connection::rollback`], which restores the access.
    pub async fn begin_read_only_phase(&mut self) -> Result<(), DbError> {
        if self.access == Access::ReadOnly {
            return self.begin().await;
        }
        self.read_only_phase = true;
        let setup = match self.dialect {
            Dialect::MySql => Some("SET SESSION TRANSACTION READ ONLY"),
            Dialect::Sqlite => Some("PRAGMA query_only = ON"),
            Dialect::Postgres => None,
        };
        if let Some(setup) = setup
            && let Err(e) = self.host_simple(setup).await
        {
            self.read_only_phase = false;
            return Err(e);
        }
        let begun = self.begin().await;
        if begun.is_err() {
            self.end_read_only_phase().await?;
        }
        begun
    }

    /// Gives a read-write connection its access back after a read-only phase.
    async fn end_read_only_phase(&mut self) -> Result<(), DbError> {
        if !std::mem::take(&mut self.read_only_phase) {
            return Ok(());
        }
        match self.dialect {
            Dialect::MySql => self.host_simple("SET SESSION TRANSACTION READ WRITE").await,
            Dialect::Sqlite => self.host_simple("PRAGMA query_only = OFF").await,
            Dialect::Postgres => Ok(()),
        }
    }

    /// Whether a host transaction ([`Connection::begin`]) is open.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// When `Some(reason)`, statements whose first keyword is `CREATE`, `ALTER`,
    /// `DROP`, `TRUNCATE` or `RENAME` (on MySQL also the other statements that
    /// commit implicitly: `GRANT`, `REVOKE`, `LOCK`, `UNLOCK`, `ANALYZE`,
    /// `OPTIMIZE`, `REPAIR`, `FLUSH`, `INSTALL`, `UNINSTALL`, `CACHE`, `RESET`)
    /// fail with [`DbErrorKind::Refused`] and `reason` in the message;
    /// `CREATE`/`DROP` of `TEMP`/`TEMPORARY` objects stay allowed. Used for
    /// dry-runs on MySQL, where DDL would commit the transaction meant to be rolled back.
    pub fn refuse_ddl(&mut self, reason: Option<String>) {
        self.refuse_ddl = reason;
    }

    /// Opens the unit transaction (see the module docs for the statement per dialect).
    pub async fn begin(&mut self) -> Result<(), DbError> {
        if self.in_transaction {
            return Err(DbError::usage(format!(
                "connection `{}` already has an open transaction",
                self.name
            )));
        }
        if let Some(escape) = self.escape.as_ref().filter(|e| e.may_have_committed) {
            return Err(DbError::new(
                DbErrorKind::Refused,
                format!(
                    "connection `{}` takes no new transaction in this run: {}",
                    self.name, escape.found
                ),
            ));
        }
        let sql = self.begin_sql();
        self.idle()?
            .simple(sql)
            .await
            .map_err(|e| e.on_connection(&self.name))?;
        self.in_transaction = true;
        self.mark_session()
            .await
            .map_err(|e| e.on_connection(&self.name))
    }

    /// Opens the unit transaction as [`Connection::begin`] does, but sends the
    /// `BEGIN` with the next statement instead of now.
    ///
    /// Used after a checkpoint: the work so far is committed and the plugin
    /// typically pauses before its next batch. On SQLite a read-write
    /// transaction begins with `BEGIN IMMEDIATE`, which takes the database's
    /// write lock, so beginning at once would hold the lock through the pause
    /// and leave other writers (the application whose table is backfilled)
    /// no room. Deferred, the lock is free until the next batch starts.
    /// A read-only transaction still begins at once: it takes its snapshot
    /// then (see the module docs). Commit and rollback of a transaction that
    /// never sent its `BEGIN` have nothing to do.
    pub async fn begin_deferred(&mut self) -> Result<(), DbError> {
        if self.access == Access::ReadOnly {
            return self.begin().await;
        }
        if self.in_transaction {
            return Err(DbError::usage(format!(
                "connection `{}` already has an open transaction",
                self.name
            )));
        }
        self.idle()?;
        self.in_transaction = true;
        self.begin_pending = true;
        Ok(())
    }

    /// Sends the `BEGIN` of a deferred transaction, before the first
    /// statement that runs in it.
    async fn send_pending_begin(&mut self) -> Result<(), DbError> {
        if !self.begin_pending {
            return Ok(());
        }
        let sql = self.begin_sql();
        self.idle()?
            .simple(sql)
            .await
            .map_err(|e| e.on_connection(&self.name))?;
        self.begin_pending = false;
        self.mark_session()
            .await
            .map_err(|e| e.on_connection(&self.name))
    }

    /// Commits the unit transaction. An open cursor is closed first (its rows
    /// were only read). If the commit fails the transaction is over anyway
    /// (rolled back), and the error says why.
    pub async fn commit(&mut self) -> Result<(), DbError> {
        self.finish_cursor(CursorStatus::Closed).await;
        if !self.in_transaction {
            return Err(DbError::usage(format!(
                "connection `{}` has no open transaction to commit",
                self.name
            )));
        }
        // A cursor's statement is checked like any other before its work is committed.
        if std::mem::take(&mut self.check_due) {
            let _ = self.check_session("", true).await;
        }
        if let Some(escape) = &self.escape {
            return Err(DbError::new(
                DbErrorKind::Refused,
                format!(
                    "connection `{}`: nothing was committed by the host: {}",
                    self.name, escape.found
                ),
            ));
        }
        self.in_transaction = false;
        self.ddl_in_transaction = false;
        self.marks.pg_transaction_start = None;
        self.marks.mariadb_counters = None;
        if std::mem::take(&mut self.begin_pending) {
            return Ok(());
        }
        let backend = self.idle()?;
        if let Err(e) = backend.simple("COMMIT").await {
            // SQLite keeps the transaction open after a failed COMMIT (e.g. SQLITE_BUSY).
            let _ = backend.simple("ROLLBACK").await;
            return Err(e.on_connection(&self.name));
        }
        Ok(())
    }

    /// Rolls the unit transaction back, closing any open cursor first. Does
    /// nothing when no transaction is open.
    pub async fn rollback(&mut self) -> Result<(), DbError> {
        self.finish_cursor(CursorStatus::Closed).await;
        self.check_due = false;
        // A transaction the database rolled back itself is over now for the host too.
        if self.escape.as_ref().is_some_and(|e| !e.may_have_committed) {
            self.escape = None;
        }
        self.marks.pg_transaction_start = None;
        self.marks.mariadb_counters = None;
        if !self.in_transaction {
            return self.end_read_only_phase().await;
        }
        self.in_transaction = false;
        let ddl = std::mem::take(&mut self.ddl_in_transaction);
        if std::mem::take(&mut self.begin_pending) {
            return Ok(());
        }
        let backend = self.idle()?;
        let result = backend.simple("ROLLBACK").await;
        if ddl && result.is_ok() {
            // Rolled-back DDL leaves cached plans for a schema that no longer exists.
            backend
                .clear_statement_cache()
                .await
                .map_err(|e| e.on_connection(&self.name))?;
        }
        result.map_err(|e| e.on_connection(&self.name))?;
        self.end_read_only_phase()
            .await
            .map_err(|e| e.on_connection(&self.name))
    }

    /// Runs one statement with bound parameters and returns all of its rows.
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let max_result_bytes = self.max_result_bytes;
        self.idle()?;
        self.before_plugin_statement().await?;
        self.guard(sql)?;
        let wrapped = self.wrap_begin().await?;
        let result = async {
            let backend = self.idle()?;
            backend.check_schema().await?;
            backend.plugin_statement(true);
            let bound = backend.bind(sql, params)?;
            let columns = backend.columns(&bound).await?;
            let outcome = run_to_end(backend, bound, Some(max_result_bytes)).await?;
            Ok(Rows {
                columns: outcome.columns.unwrap_or(columns),
                rows: outcome.rows,
            })
        }
        .await;
        self.plugin_statement_done();
        self.wrap_end(wrapped, result.is_ok()).await;
        let result = self.after_statement(sql, result).await;
        let result = self.after_plugin_statement(sql, result).await;
        result.map_err(|e: DbError| e.on_connection(&self.name))
    }

    /// Runs one statement with bound parameters and returns the number of rows
    /// it affected; for a statement that returns rows (`SELECT`, `… RETURNING`),
    /// the number of rows returned.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.idle()?;
        self.before_plugin_statement().await?;
        self.guard(sql)?;
        let dialect = self.dialect;
        let wrapped = self.wrap_begin().await?;
        let result = async {
            let backend = self.idle()?;
            backend.check_schema().await?;
            backend.plugin_statement(true);
            let bound = backend.bind(sql, params)?;
            // SQLite reports the changes of the last *modifying* statement even
            // for a SELECT or DDL, so whether the statement returns rows decides.
            let returns_rows = match dialect {
                Dialect::Sqlite => Some(!backend.columns(&bound).await?.is_empty()),
                _ => None,
            };
            let Outcome {
                returned, affected, ..
            } = run_to_end(backend, bound, None).await?;
            Ok(match returns_rows {
                Some(true) => returned,
                Some(false) => {
                    let first = sql::leading_keywords(sql, dialect, 1);
                    let modifies = matches!(
                        first.first().map(String::as_str),
                        Some("INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "WITH")
                    );
                    if modifies { affected } else { 0 }
                }
                None if returned > 0 => returned,
                None => affected,
            })
        }
        .await;
        self.plugin_statement_done();
        self.wrap_end(wrapped, result.is_ok()).await;
        let result = self.after_statement(sql, result).await;
        let result = self.after_plugin_statement(sql, result).await;
        result.map_err(|e: DbError| e.on_connection(&self.name))
    }

    /// Starts a query whose rows are fetched in batches of at most `batch_size`
    /// (capped at [`MAX_BATCH_ROWS`]). The connection runs nothing else until
    /// the cursor is read to the end, closed, or the transaction rolls back.
    /// Errors of the statement's planning surface here; errors met while
    /// running it surface from [`Connection::next_batch`].
    ///
    /// Closing a cursor early is cheap on SQLite; on PostgreSQL and MySQL the
    /// server keeps sending the rest of the result, which the connection reads
    /// and discards before its next statement (sqlx 0.8 cannot cancel a
    /// query). Use `LIMIT` when only the first rows matter.
    pub async fn open_cursor(
        &mut self,
        sql: &str,
        params: &[Value],
        batch_size: u32,
    ) -> Result<CursorHandle, DbError> {
        self.idle()?;
        if batch_size == 0 {
            return Err(DbError::usage("a cursor's batch size must be at least 1"));
        }
        self.before_plugin_statement().await?;
        self.guard(sql)?;
        let wrapped = self.wrap_begin().await?;
        let prepared = async {
            let backend = self.idle()?;
            backend.check_schema().await?;
            backend.plugin_statement(true);
            let bound = backend.bind(sql, params)?;
            let columns = backend.columns(&bound).await?;
            Ok::<_, DbError>((bound, columns))
        }
        .await;
        let (bound, columns) = match prepared {
            Ok(ok) => ok,
            Err(e) => {
                self.plugin_statement_done();
                self.wrap_end(wrapped, false).await;
                let result = self.after_plugin_statement(sql, Err(e)).await;
                return result.map_err(|e: DbError| e.on_connection(&self.name));
            }
        };
        // Checked when the cursor hands the connection back (`finish_cursor`),
        // at the latest before the next statement or the commit.
        self.check_due = true;
        let backend = match std::mem::replace(&mut self.state, State::Broken(String::new())) {
            State::Idle(backend) => backend,
            other => {
                // Not reachable: the connection was idle above and nothing since took it.
                self.state = other;
                return Err(DbError::usage(format!(
                    "connection `{}` is busy",
                    self.name
                )));
            }
        };
        let id = NEXT_CURSOR_ID.fetch_add(1, Ordering::Relaxed);
        let shared = CursorShared::new();
        let batch = batch_size.min(MAX_BATCH_ROWS) as usize;
        let end_sql = wrapped.then_some("COMMIT");
        self.state = State::Cursor(cursor::spawn(
            id,
            shared.clone(),
            backend,
            bound,
            batch,
            end_sql,
        ));
        Ok(CursorHandle {
            id,
            columns,
            shared,
        })
    }

    /// The next batch of `cursor`'s rows; `None` once the result is exhausted.
    /// The batch holding the last row already frees the connection. A cursor
    /// that failed or was closed gives a [`DbErrorKind::Usage`] error.
    pub async fn next_batch(
        &mut self,
        cursor: &CursorHandle,
    ) -> Result<Option<Vec<Vec<Value>>>, DbError> {
        match cursor.shared.status() {
            CursorStatus::Exhausted => return Ok(None),
            CursorStatus::Closed => return Err(DbError::usage("the cursor is closed")),
            CursorStatus::Open => {}
        }
        let State::Cursor(active) = &self.state else {
            return Err(DbError::usage(format!(
                "the cursor was not opened on connection `{}`",
                self.name
            )));
        };
        if active.id != cursor.id {
            return Err(DbError::usage(format!(
                "the cursor was not opened on connection `{}`",
                self.name
            )));
        }
        let (reply, answer) = oneshot::channel();
        let sent = active.requests.send(reply).await.is_ok();
        let batch = match (sent, answer.await) {
            (true, Ok(batch)) => batch,
            _ => {
                self.finish_cursor(CursorStatus::Closed).await;
                return Err(DbError::new(
                    DbErrorKind::Connection,
                    format!(
                        "connection `{}` failed: the cursor task stopped unexpectedly",
                        self.name
                    ),
                ));
            }
        };
        if batch.finished {
            let status = if batch.rows.is_ok() {
                CursorStatus::Exhausted
            } else {
                CursorStatus::Closed
            };
            self.finish_cursor(status).await;
        }
        match batch.rows {
            Ok(rows) if rows.is_empty() && batch.finished => Ok(None),
            Ok(rows) => Ok(Some(rows)),
            Err(e) => Err(e.on_connection(&self.name)),
        }
    }

    /// Closes `cursor` and frees the connection; idempotent, and a no-op for a
    /// cursor of another connection or one already exhausted.
    pub async fn close_cursor(&mut self, cursor: &CursorHandle) {
        if matches!(&self.state, State::Cursor(active) if active.id == cursor.id) {
            self.finish_cursor(CursorStatus::Closed).await;
        }
    }

    /// Inserts `rows` into `table` (`table` or `schema.table`) on the dialect's
    /// fastest path and returns the number of rows inserted: `COPY … FROM STDIN`
    /// on PostgreSQL, multi-row `INSERT`s elsewhere (chunked under the
    /// placeholder limits, inside a transaction or savepoint when there is
    /// more than one, so the call inserts all rows or none).
    pub async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        self.idle()?;
        self.before_plugin_statement().await?;
        if let Some(active) = &self.dry_run {
            active.guard_table(&self.name, table)?;
        }
        let table_sql = self.dialect.quote_table(table)?;
        if columns.is_empty() {
            return Err(DbError::usage("bulk_insert needs at least one column"));
        }
        let column_sql = columns
            .iter()
            .map(|c| self.dialect.quote_identifier(c))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ");
        if let Some((i, row)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != columns.len())
        {
            return Err(DbError::usage(format!(
                "row {i} has {} values but {} columns were given",
                row.len(),
                columns.len()
            )));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        self.send_pending_begin().await?;
        let result = if self.dialect == Dialect::Postgres {
            let wrapped = self.wrap_begin().await?;
            let result = self
                .idle()?
                .copy_in(&table_sql, &column_sql, columns, rows)
                .await;
            self.wrap_end(wrapped, result.is_ok()).await;
            result
        } else {
            self.insert_chunks(&table_sql, &column_sql, columns, rows)
                .await
        };
        result.map_err(|e| e.on_connection(&self.name))
    }

    /// Closes the connection: closes a cursor, rolls back an open transaction
    /// (the server would anyway), ends a dry-run that was not left (as
    /// [`Connection::leave_dry_run`] would) and says goodbye to the server.
    pub async fn close(mut self) {
        let _ = self.rollback().await;
        if self.dry_run.is_some() {
            let restore = self.finish_dry_run().await;
            if !restore.is_clean() {
                tracing::warn!(connection = %self.name, "dry-run ended by close: {}", restore.notes().join("; "));
            }
        }
        if let State::Idle(backend) =
            std::mem::replace(&mut self.state, State::Broken(String::new()))
        {
            backend.close().await;
        }
    }

    // -- internals ----------------------------------------------------------

    /// Runs host-written SQL (catalog reads, dry-run set-up) with `params` and
    /// returns its rows. No guard applies. Inside a PostgreSQL transaction it
    /// runs in a savepoint, so that its failure cannot abort the plugin's
    /// transaction (MySQL and SQLite keep a transaction usable after an error).
    pub(crate) async fn host_query(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Vec<Value>>, DbError> {
        self.send_pending_begin().await?;
        let savepoint = self.dialect == Dialect::Postgres && self.in_transaction;
        let backend = self.idle()?;
        backend.check_schema().await?;
        if savepoint {
            backend.simple("SAVEPOINT migrun_host").await?;
        }
        let result = async {
            let bound = backend.bind(sql, params)?;
            Ok::<_, DbError>(run_to_end(backend, bound, Some(usize::MAX)).await?.rows)
        }
        .await;
        if savepoint {
            if result.is_err() {
                let _ = backend.simple("ROLLBACK TO SAVEPOINT migrun_host").await;
            }
            backend.simple("RELEASE SAVEPOINT migrun_host").await?;
        }
        result.map_err(|e| e.on_connection(&self.name))
    }

    /// Runs host-written SQL through the simple (text) protocol, discarding
    /// any result: DDL and session statements that cannot be prepared.
    pub(crate) async fn host_simple(&mut self, sql: &str) -> Result<(), DbError> {
        self.send_pending_begin().await?;
        let name = self.name.clone();
        self.idle()?
            .simple(sql)
            .await
            .map_err(|e| e.on_connection(&name))
    }

    /// Runs host-written SQL through the text protocol and returns its rows
    /// (MySQL's `SHOW CREATE …`, which not every server version prepares).
    pub(crate) async fn host_text_query(&mut self, sql: &str) -> Result<Vec<Vec<Value>>, DbError> {
        self.send_pending_begin().await?;
        let name = self.name.clone();
        self.idle()?
            .simple_rows(sql)
            .await
            .map_err(|e| e.on_connection(&name))
    }

    /// The physical connection, if it is free.
    fn idle(&mut self) -> Result<&mut Backend, DbError> {
        match &mut self.state {
            State::Idle(backend) => Ok(backend),
            State::Cursor(_) => Err(DbError::usage(format!(
                "connection `{}` is busy: a cursor is open; read it to the end or drop it",
                self.name
            ))),
            State::Broken(why) => Err(DbError::new(
                DbErrorKind::Connection,
                format!("connection `{}` failed: {why}", self.name),
            )),
        }
    }

    /// Ends the open cursor (if any), marks it `status`, and takes the
    /// physical connection back from its task.
    async fn finish_cursor(&mut self, status: CursorStatus) {
        // Broken until the task hands the connection back; stays so if this
        // future is dropped meanwhile (the task then drops the connection).
        let placeholder =
            State::Broken("a cursor was abandoned while it handed the connection back".into());
        let active = match std::mem::replace(&mut self.state, placeholder) {
            State::Cursor(active) => active,
            other => {
                self.state = other;
                return;
            }
        };
        active.shared.set(status);
        drop(active.requests);
        self.state = match active.task.await {
            Ok(backend) => {
                backend.plugin_statement(false);
                State::Idle(backend)
            }
            Err(e) => State::Broken(format!("the cursor task failed: {e}")),
        };
    }

    /// Before a plugin statement: refused after an escape; a cursor that ended
    /// since the last statement is checked now.
    async fn before_plugin_statement(&mut self) -> Result<(), DbError> {
        self.refuse_after_escape()?;
        if std::mem::take(&mut self.check_due) {
            self.check_session("", true).await?;
        }
        Ok(())
    }

    /// The statements the backend compiles from now on are the host's again.
    fn plugin_statement_done(&mut self) {
        if let State::Idle(backend) = &mut self.state {
            backend.plugin_statement(false);
        }
    }

    /// After a plugin statement: the session check ([`session_check`]). The
    /// plugin gets the escape instead of the statement's result when work may
    /// have been committed, and the statement's own error otherwise.
    async fn after_plugin_statement<T>(
        &mut self,
        text: &str,
        result: Result<T, DbError>,
    ) -> Result<T, DbError> {
        match self.check_session(text, result.is_ok()).await {
            Ok(()) => result,
            Err(escape) => match result {
                Err(original) if self.escape.as_ref().is_some_and(|e| !e.may_have_committed) => {
                    Err(original)
                }
                _ => Err(escape),
            },
        }
    }

    /// After a statement: keeps the connection's invariants after a schema
    /// change ([`Connection::after_ddl`]), and on PostgreSQL recovers from a
    /// cached plan that another connection's DDL made stale: the cache is
    /// cleared so the next attempt prepares afresh, and the error says so.
    async fn after_statement<T>(
        &mut self,
        text: &str,
        result: Result<T, DbError>,
    ) -> Result<T, DbError> {
        match result {
            Ok(value) => {
                self.after_ddl(text).await?;
                Ok(value)
            }
            Err(mut e)
                if e.code.as_deref() == Some("0A000") && e.message.contains("cached plan") =>
            {
                if let Ok(backend) = self.idle() {
                    let _ = backend.clear_statement_cache().await;
                }
                e.message.push_str(" (the tables changed since this statement was prepared; the next attempt prepares it afresh)");
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps the connection's invariants after a successful schema change.
    ///
    /// PostgreSQL: sqlx keeps prepared statements, and one whose result columns
    /// changed (`SELECT *` after `ALTER TABLE … ADD COLUMN`) would fail with
    /// "cached plan must not change result type"; the cache is cleared (also
    /// on MySQL, whose cached statements would report the old columns).
    /// MySQL: DDL commits the open transaction implicitly; a new one is opened
    /// so that the rest of the unit still runs in a transaction (the DDL and
    /// what came before it stay committed; `TEMPORARY` tables commit nothing).
    async fn after_ddl(&mut self, text: &str) -> Result<(), DbError> {
        let words = sql::leading_keywords(text, self.dialect, 4);
        if !matches!(
            words.first().map(String::as_str),
            Some("CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE")
        ) {
            return Ok(());
        }
        let (dialect, in_transaction, begin) =
            (self.dialect, self.in_transaction, self.begin_sql());
        if dialect == Dialect::Postgres && in_transaction {
            self.ddl_in_transaction = true;
        }
        let name = self.name.clone();
        let backend = self.idle()?;
        match dialect {
            // SQLite notices schema changes by itself (`Backend::check_schema`).
            Dialect::Postgres => backend.clear_statement_cache().await,
            Dialect::MySql => {
                backend.clear_statement_cache().await?;
                if in_transaction && !words.iter().any(|w| w == "TEMPORARY") {
                    backend.simple(begin).await?;
                    // The host's own `START TRANSACTION` moved the session's counters.
                    return self
                        .mark_session()
                        .await
                        .map_err(|e| e.on_connection(&name));
                }
                Ok(())
            }
            _ => Ok(()),
        }
        .map_err(|e| e.on_connection(&name))
    }

    fn begin_sql(&self) -> &'static str {
        match (self.dialect, self.effective_access()) {
            (Dialect::Postgres, Access::ReadWrite) => "BEGIN",
            // Taking the snapshot at once also makes `SET TRANSACTION READ WRITE` impossible.
            (Dialect::Postgres, Access::ReadOnly) => {
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1"
            }
            (Dialect::MySql, Access::ReadWrite) => "START TRANSACTION",
            (Dialect::MySql, Access::ReadOnly) => {
                "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT"
            }
            (Dialect::Sqlite, Access::ReadWrite) => "BEGIN IMMEDIATE",
            (Dialect::Sqlite, Access::ReadOnly) => "BEGIN",
        }
    }

    /// On a read-only PostgreSQL connection outside a host transaction, opens
    /// a `READ ONLY` transaction around one call (see the module docs).
    ///
    /// Every statement path passes here first, so it also sends a deferred
    /// transaction's `BEGIN` ([`Connection::begin_deferred`]).
    async fn wrap_begin(&mut self) -> Result<bool, DbError> {
        self.send_pending_begin().await?;
        if self.dialect != Dialect::Postgres
            || self.access != Access::ReadOnly
            || self.in_transaction
        {
            return Ok(false);
        }
        self.idle()?
            .simple("BEGIN READ ONLY")
            .await
            .map_err(|e| e.on_connection(&self.name))?;
        Ok(true)
    }

    async fn wrap_end(&mut self, wrapped: bool, ok: bool) {
        if wrapped && let Ok(backend) = self.idle() {
            let _ = backend.simple(if ok { "COMMIT" } else { "ROLLBACK" }).await;
        }
    }

    /// Multi-row `INSERT`s for MySQL and SQLite, all-or-nothing across chunks.
    async fn insert_chunks(
        &mut self,
        table_sql: &str,
        column_sql: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<u64, DbError> {
        let width = columns.len();
        let max_params = if self.dialect == Dialect::Sqlite {
            SQLITE_MAX_PARAMS
        } else {
            MYSQL_MAX_PARAMS
        };
        let max_rows = (max_params / width).clamp(1, INSERT_MAX_ROWS);
        let chunks = chunk_rows(rows, max_rows, INSERT_MAX_BYTES);
        // One statement is atomic by itself; several need a transaction (or a
        // savepoint inside the host's transaction).
        let (open, commit, undo) = match (chunks.len() > 1, self.in_transaction) {
            (false, _) => (None, None, None),
            (true, true) => (
                Some("SAVEPOINT migrun_bulk_insert"),
                Some("RELEASE SAVEPOINT migrun_bulk_insert"),
                Some("ROLLBACK TO SAVEPOINT migrun_bulk_insert"),
            ),
            (true, false) => (Some(self.begin_sql()), Some("COMMIT"), Some("ROLLBACK")),
        };
        let dialect = self.dialect;
        let in_transaction = self.in_transaction;
        let backend = self.idle()?;
        backend.check_schema().await?;
        if let Some(sql) = open {
            backend.simple(sql).await?;
        }
        let mut inserted = 0u64;
        let mut failure = None;
        let mut first_row = 0;
        for chunk in &chunks {
            let sql = insert_sql(table_sql, column_sql, width, chunk.len());
            // Names the row and column of a value the dialect cannot take.
            let at = |i: usize, j: usize, e: sqlx::error::BoxDynError| {
                DbError::value(format!(
                    "row {}, column `{}`: {e}",
                    first_row + i,
                    columns[j]
                ))
            };
            let outcome = async {
                let args = match dialect {
                    Dialect::MySql => {
                        let mut args = sqlx::mysql::MySqlArguments::default();
                        for (i, row) in chunk.iter().enumerate() {
                            for (j, value) in row.iter().enumerate() {
                                mysql::add(&mut args, value).map_err(|e| at(i, j, e))?;
                            }
                        }
                        backend::Args::MySql(args)
                    }
                    _ => {
                        let mut args = sqlx::sqlite::SqliteArguments::default();
                        for (i, row) in chunk.iter().enumerate() {
                            for (j, value) in row.iter().enumerate() {
                                sqlite::add(&mut args, value).map_err(|e| at(i, j, e))?;
                            }
                        }
                        backend::Args::Sqlite(args)
                    }
                };
                let outcome = run_to_end(backend, Bound { sql, args }, None).await?;
                Ok::<u64, DbError>(outcome.affected)
            }
            .await;
            first_row += chunk.len();
            match outcome {
                Ok(n) => inserted += n,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        match failure {
            None => {
                if let Some(sql) = commit {
                    backend.simple(sql).await?;
                }
                Ok(inserted)
            }
            Some(e) => {
                if let Some(sql) = undo {
                    let _ = backend.simple(sql).await;
                    if in_transaction {
                        let _ = backend.simple("RELEASE SAVEPOINT migrun_bulk_insert").await;
                    }
                }
                Err(e)
            }
        }
    }
}

/// What [`run_to_end`] saw of a statement.
#[derive(Default)]
struct Outcome {
    /// The rows' columns, as reported with the first row.
    columns: Option<Vec<Column>>,
    /// The rows, when kept.
    rows: Vec<Vec<Value>>,
    /// How many rows the statement returned.
    returned: u64,
    /// How many rows it affected.
    affected: u64,
}

/// Runs `bound` to its end.
///
/// `keep` is `None` to count rows only, or `Some(max_bytes)` to keep them up to
/// `max_bytes` of value data (see [`Connection::limit_results`]); past that the
/// statement is abandoned with a `refused` error.
async fn run_to_end(
    backend: &mut Backend,
    bound: Bound,
    keep: Option<usize>,
) -> Result<Outcome, DbError> {
    let Bound { sql, args } = bound;
    let mut stream = backend.run(&sql, args);
    let mut outcome = Outcome::default();
    let mut kept_bytes = 0usize;
    while let Some(step) = stream.next().await {
        match step? {
            Step::Columns(columns) => outcome.columns = Some(columns),
            Step::Row(row) => {
                outcome.returned += 1;
                if let Some(max_bytes) = keep {
                    kept_bytes = kept_bytes
                        .saturating_add(row.iter().map(value_size).sum::<usize>() + ROW_OVERHEAD);
                    if kept_bytes > max_bytes {
                        return Err(DbError::new(
                            DbErrorKind::Refused,
                            format!(
                                "the query's result passed {} MiB after {} rows, more than the plugin's memory limit allows; \
                                 read it through a cursor (open-cursor), whose memory is bounded by its batch size",
                                max_bytes >> 20,
                                outcome.returned
                            ),
                        ));
                    }
                    outcome.rows.push(row);
                }
            }
            Step::Done(n) => outcome.affected += n,
        }
    }
    Ok(outcome)
}

/// Splits `rows` into chunks of at most `max_rows` rows and about `max_bytes`
/// of value data (a single larger row still gets a chunk of its own).
fn chunk_rows(rows: &[Vec<Value>], max_rows: usize, max_bytes: usize) -> Vec<&[Vec<Value>]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, row) in rows.iter().enumerate() {
        let size: usize = row.iter().map(value_size).sum();
        if i > start && (i - start >= max_rows || bytes + size > max_bytes) {
            chunks.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

/// Rough encoded size of a value, for chunking.
fn value_size(v: &Value) -> usize {
    match v {
        Value::Text(s) | Value::Json(s) | Value::Decimal(s) => s.len() + 9,
        Value::Bytes(b) => b.len() + 9,
        Value::Float32Array(a) => a.len() * 12 + 2,
        Value::TextArray(a) => a.iter().map(|s| s.len() + 3).sum::<usize>() + 2,
        _ => 16,
    }
}

/// `INSERT INTO t (a, b) VALUES (?, ?), (?, ?)` for `rows` rows of `width` values.
fn insert_sql(table_sql: &str, column_sql: &str, width: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    let mut sql =
        String::with_capacity(32 + table_sql.len() + column_sql.len() + rows * (row.len() + 2));
    sql.push_str("INSERT INTO ");
    sql.push_str(table_sql);
    sql.push_str(" (");
    sql.push_str(column_sql);
    sql.push_str(") VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql
}

/// An `f32` as the `f64` whose shortest text is the same (`0.1f32` reads as
/// `0.1`, not `0.10000000149011612`): a `real` reads as the number the database shows.
pub(crate) fn widen_f32(f: f32) -> f64 {
    if f.is_finite() {
        format!("{f}").parse().unwrap_or(f64::from(f))
    } else {
        f64::from(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_from_urls() {
        assert_eq!(
            Connection::dialect_of_url("sqlite:x.db").unwrap(),
            Dialect::Sqlite
        );
        assert_eq!(
            Connection::dialect_of_url("sqlite::memory:").unwrap(),
            Dialect::Sqlite
        );
        assert_eq!(
            Connection::dialect_of_url("postgresql://u@h/db").unwrap(),
            Dialect::Postgres
        );
        assert_eq!(
            Connection::dialect_of_url("Postgres://u@h/db").unwrap(),
            Dialect::Postgres
        );
        assert_eq!(
            Connection::dialect_of_url("mariadb://root@h/db").unwrap(),
            Dialect::MySql
        );
        let err = Connection::dialect_of_url("oracle://scott:tiger@h").unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Usage);
        assert!(!err.message.contains("tiger"));
    }

    #[test]
    fn access_reads_kebab_case() {
        let a: Access = serde_json::from_str("\"read-only\"").unwrap();
        assert_eq!(a, Access::ReadOnly);
        let a: Access = serde_json::from_str("\"read-write\"").unwrap();
        assert_eq!(a.to_string(), "read-write");
        assert_eq!(Dialect::MySql.to_string(), "mysql");
    }

    /// The runtime keeps connections in a resource table and awaits these
    /// futures from wasmtime's async host calls, which require `Send`.
    #[test]
    fn connections_and_their_futures_are_send() {
        fn is_send<T: Send>(_: &T) {}
        fn is_static_send<T: Send + 'static>() {}
        is_static_send::<Connection>();
        is_static_send::<CursorHandle>();
        is_static_send::<DbError>();
        #[allow(dead_code, reason = "only type-checked")]
        fn futures(conn: &mut Connection, cursor: &CursorHandle) {
            is_send(&conn.begin());
            is_send(&conn.commit());
            is_send(&conn.rollback());
            is_send(&conn.query("", &[]));
            is_send(&conn.execute("", &[]));
            is_send(&conn.open_cursor("", &[], 1));
            is_send(&conn.next_batch(cursor));
            is_send(&conn.close_cursor(cursor));
            is_send(&conn.bulk_insert("", &[], &[]));
            is_send(&Connection::connect("", "", Access::ReadOnly));
        }
    }

    #[test]
    fn chunks_respect_rows_and_bytes() {
        let rows: Vec<Vec<Value>> = (0..10).map(|i| vec![Value::Int(i)]).collect();
        let sizes: Vec<usize> = chunk_rows(&rows, 3, usize::MAX)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        let big: Vec<Vec<Value>> = (0..4).map(|_| vec![Value::Bytes(vec![0; 100])]).collect();
        let sizes: Vec<usize> = chunk_rows(&big, 100, 150).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [1, 1, 1, 1]);
        assert!(chunk_rows(&[], 3, 10).is_empty());
        assert_eq!(
            insert_sql("`t`", "`a`, `b`", 2, 2),
            "INSERT INTO `t` (`a`, `b`) VALUES (?, ?), (?, ?)"
        );
    }
}
