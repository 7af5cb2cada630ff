//! What migrun does differently on each database, behind traits with one
//! implementation per dialect (in the style of sqlx's driver crates).
//!
//! Each dialect's folder (`db/postgres/`, `db/mysql/`, `db/sqlite/`) is the
//! one place a reader opens to learn everything migrun does on it: session
//! setup and encode/decode in its `mod.rs`/codec files, and one file per role
//! implementing the traits here — `session.rs` ([`SessionSql`]), `catalog.rs`
//! ([`CatalogSql`]), `ledger.rs` ([`LedgerSql`]), `lock.rs` ([`LockSql`]),
//! `dry_run.rs` ([`DryRunMechanics`]), `privileges.rs` ([`PrivilegeCatalog`]).
//!
//! [`driver`] is the one dispatch on [`Dialect`]: callers ask it for the
//! dialect's implementation and never `match` on the dialect themselves.
//!
//! Invariants: the traits hold SQL text and dialect decisions only; the
//! procedures that run them (the ledger's read-back, the lock's polling, the
//! transaction state machine) are written once, in the modules that call
//! [`driver`]. A method that must run several statements with dialect logic
//! in between (a catalog lookup, the ledger's shield) takes the connection and
//! returns a boxed future, so dispatch stays dynamic.

use futures::future::BoxFuture;

use super::privileges::RolePrivileges;
use super::timeouts::{SessionTimeouts, TimeoutHit, UnitTimeouts};
use super::{Access, Connection, DbError, DryRunMode, RowCount};
use migrun_types::value::Value;

/// One statement the host runs, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HostStatement {
    /// The SQL text.
    pub sql: String,
    /// Its parameters.
    pub params: Vec<Value>,
}

impl HostStatement {
    pub(crate) fn new(sql: impl Into<String>, params: Vec<Value>) -> HostStatement {
        HostStatement {
            sql: sql.into(),
            params,
        }
    }
}

/// Everything dialect-specific migrun does on a connection; one implementation per dialect.
pub(crate) trait Driver:
    SessionSql + CatalogSql + LedgerSql + LockSql + DryRunMechanics + PrivilegeCatalog + Sync
{
}

impl<T: SessionSql + CatalogSql + LedgerSql + LockSql + DryRunMechanics + PrivilegeCatalog + Sync>
    Driver for T
{
}

/// What a successful schema change (`CREATE`, `ALTER`, `DROP`, `RENAME`,
/// `TRUNCATE`) does to a session (see the `db` module docs, "Transactions and
/// schema changes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DdlEffects {
    /// sqlx's prepared statements may describe the old columns: clear the
    /// cache (SQLite notices schema changes by itself).
    pub clears_statement_cache: bool,
    /// The DDL committed the open transaction: the host opens a new one so the
    /// rest of the unit stays atomic (`TEMPORARY` tables commit nothing).
    pub commits_transaction: bool,
    /// A rollback of a transaction that ran DDL brings old columns back: it
    /// clears the cache too.
    pub rollback_clears_statement_cache: bool,
}

/// Session and transaction statements.
pub(crate) trait SessionSql {
    /// The statement that opens a unit transaction with `access` (see the `db` module docs).
    fn begin_sql(&self, access: Access) -> &'static str;

    /// The session setting that makes the connection read-only for a
    /// read-only phase (`on`) and back (`!on`); `None` when the dialect makes
    /// the transaction itself read-only.
    fn read_only_phase_sql(&self, on: bool) -> Option<&'static str>;

    /// Whether a read-only statement outside a host transaction runs inside a
    /// `BEGIN READ ONLY … COMMIT` of its own (PostgreSQL; see the `db` module docs).
    fn wraps_read_only_statements(&self) -> bool {
        false
    }

    /// Whether an error inside a transaction aborts it (PostgreSQL), so the
    /// host's own statements run in a savepoint there.
    fn errors_abort_transaction(&self) -> bool {
        false
    }

    /// The session settings bounding every statement to `ms` milliseconds on
    /// the server; `None` where the database runs in migrun's process.
    fn statement_limit_sql(&self, ms: u128) -> Option<String>;

    /// The statement that cancels what session `server_id` runs, sent from
    /// another connection; `None` where there is no server.
    fn cancel_sql(&self, server_id: i64) -> Option<String>;

    /// The statements giving the transaction just begun the unit's timeouts where they
    /// are transaction settings (PostgreSQL `SET LOCAL`); a timeout the unit leaves
    /// unset goes back to `baseline_ms` (the session's statement limit) or the default.
    /// `None` where they are session settings (see `timeouts.rs`).
    fn transaction_timeouts_sql(
        &self,
        timeouts: &UnitTimeouts,
        baseline_ms: Option<u128>,
    ) -> Option<String> {
        let _ = (timeouts, baseline_ms);
        None
    }

    /// Where the unit's timeouts are session settings: how to read the values to
    /// restore and how to set the unit's; `None` when there is nothing to set.
    fn session_timeouts_sql(&self, timeouts: &UnitTimeouts) -> Option<SessionTimeouts> {
        let _ = timeouts;
        None
    }

    /// The statement putting back the values `session_timeouts_sql`'s query read
    /// (each a number as the server printed it; anything else restores nothing).
    fn restore_timeouts_sql(&self, saved: &[String]) -> Option<String> {
        let _ = saved;
        None
    }

    /// Which unit timeout an error `code` of this dialect means, if any.
    fn timeout_hit(&self, code: &str) -> Option<TimeoutHit>;

    /// What a successful schema change does to the session.
    fn ddl_effects(&self) -> DdlEffects;

    /// The `n`th (1-based) parameter placeholder.
    fn placeholder(&self, n: usize) -> String {
        let _ = n;
        "?".to_owned()
    }
}

/// Catalog lookups.
pub(crate) trait CatalogSql {
    /// The rows of `table` (`table` or `schema.table`, unquoted), exact or
    /// estimated (see `db/catalog.rs`); `None` when there is no such table.
    fn table_rows<'a>(
        &'a self,
        conn: &'a mut Connection,
        table: &'a str,
    ) -> BoxFuture<'a, Result<Option<RowCount>, DbError>>;
}

/// Column types of the ledger table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LedgerColumnTypes {
    /// Key columns (`plugin_name`, `unit`): indexable on every dialect.
    pub key: &'static str,
    /// Other text columns.
    pub text: &'static str,
    /// The checkpoint state: small JSON documents, but unbounded.
    pub state: &'static str,
}

/// What a dialect needs to add the scope to an existing ledger table.
pub(crate) struct ScopeUpgrade<'a> {
    /// The ledger table (plain or `schema.table`).
    pub table: &'a str,
    /// The table's columns before the upgrade, comma-separated (what a rebuild copies).
    pub columns: &'a str,
    /// The `CREATE TABLE` of a complete, current ledger under the given name.
    pub create: &'a (dyn Fn(&str) -> String + Sync),
}

/// The ledger table's dialect-specific statements (the procedure is `crate::ledger`).
pub(crate) trait LedgerSql {
    /// Whether a table exists: one text parameter (the table), one boolean or count back.
    fn ledger_exists_sql(&self) -> &'static str;

    /// How many triggers (and rules) a table has: one text parameter (the table).
    fn ledger_triggers_sql(&self) -> &'static str;

    /// Whether the table has the `checkpoint_state` column: one text parameter (the table).
    fn ledger_state_column_sql(&self) -> &'static str;

    /// Whether the table has the `run_final_hash` column: one text parameter (the table).
    fn ledger_final_hash_column_sql(&self) -> &'static str;

    /// Whether the table has the `unit_scope` column: one text parameter (the table).
    fn ledger_scope_column_sql(&self) -> &'static str;

    /// The ledger's column types.
    fn ledger_column_types(&self) -> LedgerColumnTypes;

    /// Upgrades a ledger made before scopes: adds `unit_scope` (`''` on every existing row,
    /// which means "no scope") and makes the primary key `(plugin_name, unit, unit_scope,
    /// plugin_sha256)`, atomically (one `ALTER TABLE`, or SQLite's table rebuild in one
    /// transaction). Outside any unit; the caller checked the column is missing.
    fn upgrade_ledger_scope<'a>(
        &'a self,
        conn: &'a mut Connection,
        upgrade: ScopeUpgrade<'a>,
    ) -> BoxFuture<'a, Result<(), DbError>>;

    /// Makes the names the host writes the ledger through reach the real
    /// table `table` on `conn`; answers whether a temporary table shadows it
    /// in this session (the write is then refused).
    fn shield_ledger<'a>(
        &'a self,
        conn: &'a mut Connection,
        table: &'a str,
    ) -> BoxFuture<'a, Result<bool, DbError>>;
}

/// The run lock's statements (the polling is `crate::lock`).
pub(crate) trait LockSql {
    /// Tries to take the lock `name` at once, in the database session; one
    /// boolean (or 1/0) back. `None`: the dialect locks an OS file beside the
    /// database instead (SQLite), which `crate::lock` takes itself.
    fn try_lock(&self, name: &str) -> Option<HostStatement>;

    /// Tries to take `name` in shared mode; `None` where the dialect has no shared locks.
    fn try_lock_shared(&self, name: &str) -> Option<HostStatement> {
        let _ = name;
        None
    }

    /// Who holds `name`: one row, read by [`LockSql::describe_lock_holder`];
    /// `None` where the database cannot tell.
    fn lock_holder(&self, name: &str) -> Option<HostStatement>;

    /// The holder row of [`LockSql::lock_holder`] in words.
    fn describe_lock_holder(&self, row: &[Value]) -> String;
}

/// What a read-write connection's dry-run does about what its rollback does
/// not undo (see `db/dry_run/`): PostgreSQL sequence snapshots, a MySQL/MariaDB
/// scratch clone, nothing on SQLite.
pub(crate) trait DryRunMechanics {
    /// Prepares `conn`'s dry-run before its transaction begins and sets its
    /// dry-run state; `run_id` names what the dry-run creates, `writes` are
    /// the tables the plugin declared it writes there.
    fn enter_dry_run<'a>(
        &'a self,
        conn: &'a mut Connection,
        run_id: &'a str,
        writes: &'a [String],
    ) -> BoxFuture<'a, Result<DryRunMode, DbError>>;

    /// Drops what crashed dry-runs left behind and returns its names.
    fn cleanup_stale_dry_runs<'a>(
        &'a self,
        conn: &'a mut Connection,
    ) -> BoxFuture<'a, Result<Vec<String>, DbError>> {
        let _ = conn;
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// What a connection's role can do beyond its tables (see `db::privileges`).
pub(crate) trait PrivilegeCatalog {
    /// Reads and classifies the privileges of `conn`'s role (host SQL only).
    fn role_privileges<'a>(
        &'a self,
        conn: &'a mut Connection,
    ) -> BoxFuture<'a, Result<RolePrivileges, DbError>>;
}

/// A value read back as text (MariaDB may hand text back as bytes).
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Text(s) => s.clone(),
        other => other.to_string(),
    }
}
