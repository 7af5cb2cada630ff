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
//! - `mod.rs`: the public types and [`Connection`] (connect, query, execute,
//!   close), written once for all dialects.
//! - `transaction.rs`: begin (at once, deferred, read-only phase), commit, rollback, DDL's effects.
//! - `cursor.rs`: the cursor API and the task that streams a cursor's rows in batches.
//! - `bulk.rs`: bulk inserts (COPY, chunked multi-row `INSERT`s).
//! - `bulk_write.rs`: structured writes by key (contract 0.2.0's `bulk-update`, `bulk-upsert`,
//!   `bulk-delete`): a staged `COPY` and one statement on PostgreSQL, chunked statements elsewhere.
//! - `stream.rs`: PostgreSQL's streaming bulk insert: consecutive calls into one table
//!   share one open `COPY`, sent by a writer task; errors surface when it ends.
//! - `cancel.rs`: server-side statement limits and cancelling a runaway statement.
//! - `timeouts.rs`: a unit's lock and statement timeouts per dialect, and the errors they raise.
//! - `host_sql.rs`: statements the host writes itself (no guard; a savepoint on PostgreSQL).
//! - `guard.rs`, `session_check.rs`, `sqlite_authorizer.rs`: what plugin SQL may do (below).
//! - `privileges.rs`: what a connection's role can do beyond its tables.
//! - `error.rs`: [`DbError`], [`DbErrorKind`] and code classification.
//! - `backend.rs`: one sqlx connection of any dialect behind a small set of operations.
//! - `postgres/`, `mysql/`, `sqlite/`: everything migrun does on one dialect, by role —
//!   connect options, encoding, decoding, and the implementations of `driver.rs`'s traits
//!   (`session.rs`, `catalog.rs`, `ledger.rs`, `lock.rs`).
//! - `driver.rs`: the dialect traits (`SessionSql`, `CatalogSql`, `LedgerSql`, `LockSql`, …);
//!   `driver_for(dialect)` (here at the root) is the one dispatch on the dialect.
//! - `sql.rs`: identifier quoting and the server-file guard over the pure lexer of
//!   [`crate::sql`] (re-exported here).
//! - `dry_run/`: what a dry-run's rollback does not undo — PostgreSQL sequences restored,
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
//!   rules (`dry_run/`).
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
//! | `Float32Array` | `float4[]`; pgvector `vector`, `halfvec` (binary16 widened exactly) | — (JSON text) | — (TEXT) |
//! | `TextArray` | `text[]`, `varchar[]`, `bpchar[]`, `name[]`, arrays of citext/enums | — (JSON text) | — (TEXT) |
//! | `Typed` | any other type (`sparsevec`, `interval`, `tstzrange`, `ltree`, `int8[]`, …): its binary form and type name | — | — |
//!
//! On MySQL any other type (`GEOMETRY`) fails with a [`DbErrorKind::Value`]
//! error that names the column and its type and suggests a cast in SQL. So
//! do PostgreSQL `infinity` dates, `NaN` numerics, multi-dimensional arrays
//! and arrays holding NULL. (A contract 0.1.x plugin gets that error for a
//! PostgreSQL `Typed` value too: it has no case for one.) MySQL sets the BINARY flag for text with a binary
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
//! | `Float32Array` | `real[]` (bulk insert into a `vector`/`halfvec` column: its binary form, dimensions and range checked) | JSON text | TEXT (JSON) |
//! | `TextArray` | `text[]` | JSON text | TEXT (JSON) |
//! | `Typed` | the oid its type name resolves to on this connection, its bytes as they are | refused | refused |
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
//! # async fn demo() -> Result<(), migrun_db::DbError> {
//! use migrun_db::{Access, Connection};
//! use migrun_types::value::Value;
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

#![deny(missing_docs)]

mod backend;
mod bulk;
mod bulk_write;
mod cancel;
mod catalog;
mod cursor;
pub(crate) mod driver;
mod dry_run;
mod error;
mod guard;
mod host_sql;
pub mod ledger;
pub mod lock;
pub mod mysql;
pub mod postgres;
pub mod privileges;
mod session_check;
pub(crate) mod sql;
pub mod sqlite;
mod sqlite_authorizer;
mod stream;
mod timeouts;
mod transaction;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

pub use cancel::StatementCanceller;
pub use catalog::RowCount;
pub use dry_run::{DryRunGuard, DryRunMode, DryRunRestore, SCRATCH_PREFIX};
pub use error::{DbError, DbErrorKind};
pub use session_check::SessionEscape;
pub use timeouts::UnitTimeouts;

use backend::{Backend, Bound, Step};
use cursor::{ActiveCursor, CursorShared, CursorStatus};
use migrun_types::value::Value;

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

/// The SQL dialect behind a connection and what it may do: shared with the
/// SDK through `migrun-types`.
pub use migrun_types::{Access, Dialect};

/// The implementation of the dialect traits (`driver`) for `dialect`: the one place
/// that matches on it. Here at the root, which knows every dialect, so that the
/// trait definitions and the dialect folders never import each other both ways.
pub(crate) fn driver_for(dialect: Dialect) -> &'static dyn driver::Driver {
    match dialect {
        Dialect::Postgres => &postgres::PgDriver,
        Dialect::MySql => &mysql::MySqlDriver,
        Dialect::Sqlite => &sqlite::SqliteDriver,
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
    /// Inside the writer task of an open bulk insert stream (`stream.rs`).
    Copy(stream::ActiveCopy),
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
    /// What the unit bulk-inserted so far, per table (the batch an error names).
    bulk_counts: stream::BulkCounts,
    /// A bulk insert stream failed in the open transaction: no commit follows.
    stream_failure: Option<DbError>,
    /// Whether a plugin call has been answered with `stream_failure` already.
    stream_failure_told: bool,
    /// The running unit's lock and statement timeouts ([`Connection::set_unit_timeouts`]).
    unit_timeouts: UnitTimeouts,
    /// The statement putting the session's own timeout settings back when the unit ends.
    timeouts_restore: Option<String>,
    /// The session's statement limit, in ms ([`Connection::limit_statement_time`]): what a
    /// PostgreSQL transaction goes back to when a unit leaves a timeout unset.
    statement_limit_ms: Option<u128>,
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
            bulk_counts: stream::BulkCounts::default(),
            stream_failure: None,
            stream_failure_told: false,
            unit_timeouts: UnitTimeouts::default(),
            timeouts_restore: None,
            statement_limit_ms: None,
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

    /// Runs one statement with bound parameters and returns all of its rows.
    pub async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let max_result_bytes = self.max_result_bytes;
        self.settle_for_plugin().await?;
        self.idle()?;
        self.before_plugin_statement().await?;
        self.guard(sql)?;
        let wrapped = self.wrap_begin().await?;
        let result = async {
            let backend = self.idle()?;
            backend.check_schema().await?;
            backend.plugin_statement(true);
            let bound = backend.bind(sql, params).await?;
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
        result.map_err(|e: DbError| self.explain(e))
    }

    /// Runs one statement with bound parameters and returns the number of rows
    /// it affected; for a statement that returns rows (`SELECT`, `… RETURNING`),
    /// the number of rows returned.
    pub async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.settle_for_plugin().await?;
        self.idle()?;
        self.before_plugin_statement().await?;
        self.guard(sql)?;
        let dialect = self.dialect;
        let wrapped = self.wrap_begin().await?;
        let result = async {
            let backend = self.idle()?;
            backend.check_schema().await?;
            backend.plugin_statement(true);
            let bound = backend.bind(sql, params).await?;
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
        result.map_err(|e: DbError| self.explain(e))
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

    /// The physical connection, if it is free.
    fn idle(&mut self) -> Result<&mut Backend, DbError> {
        match &mut self.state {
            State::Idle(backend) => Ok(backend),
            State::Cursor(_) => Err(DbError::usage(format!(
                "connection `{}` is busy: a cursor is open; read it to the end or drop it",
                self.name
            ))),
            // Every entry point ends the stream first (`settle_stream`): not reached.
            State::Copy(_) => Err(DbError::usage(format!(
                "connection `{}` is busy: a bulk insert stream is open",
                self.name
            ))),
            State::Broken(why) => Err(DbError::new(
                DbErrorKind::Connection,
                format!("connection `{}` failed: {why}", self.name),
            )),
        }
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
                // The statement failed and still ended the transaction (MariaDB commits
                // before any DDL, even one that then fails): the operator needs both facts.
                Err(original) => {
                    let failed = format!("; the statement itself failed: {}", original.message);
                    if let Some(found) = self.escape.as_mut() {
                        found.found.push_str(&failed);
                    }
                    let mut escape = escape;
                    escape.message.push_str(&failed);
                    Err(escape)
                }
                Ok(_) => Err(escape),
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
            Err(mut e) if self.in_transaction && outside_transaction_only(&e) => {
                e.message.push_str(NON_TRANSACTIONAL_HINT);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// Appended to PostgreSQL's "… cannot run inside a transaction block" when a plugin
/// statement (`CREATE INDEX CONCURRENTLY`, `VACUUM`, `REINDEX … CONCURRENTLY`) meets the
/// host's transaction: the way out is a unit of its own the host runs without one.
pub const NON_TRANSACTIONAL_HINT: &str = " (every statement of a transactional unit runs inside \
     the host's transaction: put this one in a unit of its own declared `transactional: false` \
     (contract 0.2.0), which runs in autocommit, and make it safe to rerun, e.g. \
     `CREATE INDEX CONCURRENTLY IF NOT EXISTS`)";

/// Whether `e` is PostgreSQL refusing a statement that may only run outside a transaction
/// block (SQLSTATE `25001` with `PreventInTransactionBlock`'s message; the same code is
/// also used for other things, such as a late `SET TRANSACTION ISOLATION LEVEL`).
fn outside_transaction_only(e: &DbError) -> bool {
    e.code.as_deref() == Some("25001")
        && e.message.contains("cannot run inside a transaction block")
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
                    kept_bytes = kept_bytes.saturating_add(
                        row.iter().map(backend::value_size).sum::<usize>() + ROW_OVERHEAD,
                    );
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

/// Why a typed value ([`Value::Typed`]: a PostgreSQL type's binary form) cannot
/// be written through a connection of `dialect`.
pub(crate) fn typed_refusal(type_name: &str, dialect: Dialect) -> String {
    format!(
        "a typed `{type_name}` value holds PostgreSQL's binary form and cannot be written \
         through a {dialect} connection; read the column as text (`column::text`) to move \
         it to another dialect"
    )
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
            is_send(&conn.bulk_write(migrun_types::BulkWriteKind::Update, "", &[], &[], &[]));
            is_send(&Connection::connect("", "", Access::ReadOnly));
        }
    }
}
