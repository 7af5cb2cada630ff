//! SQLite: what a plugin's statement may do, decided by SQLite itself.
//!
//! SQLite is embedded in migrun's own process, so a statement that opens a
//! file (`ATTACH`, `VACUUM INTO`) runs with migrun's rights on migrun's
//! machine: it could write anywhere the operator can, open the read-only
//! source for writing, or overwrite the run's own before-run backup. The host
//! therefore never decides this by reading the SQL text (a byte SQLite counts
//! as whitespace and the host does not was enough to get past such a check);
//! SQLite's compiler decides, through three locks installed on every
//! connection when it opens ([`install`]):
//!
//! - `SQLITE_LIMIT_ATTACHED = 0`: no database can be attached, by `ATTACH`
//!   or by the attach inside `VACUUM INTO` (both fail with "too many attached
//!   databases"), whatever the statement looks like;
//! - `SQLITE_DBCONFIG_DEFENSIVE` (no `writable_schema`, no raw writes to the
//!   schema or shadow tables), `TRUSTED_SCHEMA` off (functions and virtual
//!   tables named in the schema cannot run with side effects) and extension
//!   loading off;
//! - an authorizer callback that, while a plugin statement is being compiled
//!   ([`Authorizer::plugin_statement`]), denies transaction control (`BEGIN`,
//!   `COMMIT`, `ROLLBACK` other than `ROLLBACK TO`), `ATTACH`/`DETACH`, every
//!   `PRAGMA` outside a list of read-only ones, and the functions that reach
//!   files or load code. The host's own statements (its `BEGIN`, `COMMIT`,
//!   ledger rows) are compiled with the gate open.
//!
//! The authorizer runs when a statement is compiled, and sqlx caches compiled
//! statements by their text; the host's transaction statements therefore
//! never enter that cache (they run through `sqlx::raw_sql`), so a plugin
//! sending the same text compiles it afresh, under its own rules. Savepoints
//! stay allowed: a `RELEASE` that would end the unit's transaction is caught
//! after the statement by the session check (`sqlite3_get_autocommit`, see
//! [`Authorizer::in_transaction`]).

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

use super::DbError;

/// PRAGMAs a plugin may run: they read the schema or the file's state, or
/// (the last group) change only how the current transaction behaves.
/// Anything else — `query_only`, `writable_schema`, `journal_mode`,
/// `temp_store_directory`, `database_list` (which shows file paths), … — is
/// denied.
const ALLOWED_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
    "data_version",
    "freelist_count",
    "page_count",
    "schema_version",
    "user_version",
    "application_id",
    "encoding",
    "page_size",
    "foreign_keys",
    "defer_foreign_keys",
    "optimize",
];

/// PRAGMAs of the allowed list that set something when given a value
/// (`PRAGMA user_version = 3`): a plugin may only read them.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "schema_version",
    "user_version",
    "application_id",
    "encoding",
    "page_size",
    "foreign_keys",
    "data_version",
    "freelist_count",
    "page_count",
];

/// SQL functions that reach files or load code (from extensions or the CLI
/// that a build may include).
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// The gate of one connection: whether the statement being compiled is a plugin's.
///
/// Shared with SQLite's authorizer callback through a pointer to the flag.
/// The flag is leaked on purpose (one byte per connection ever opened):
/// sqlx closes the SQLite handle on its worker thread after the Rust value
/// is gone, and the callback must never see a freed pointer.
#[derive(Clone)]
pub(crate) struct Authorizer {
    plugin: Arc<AtomicBool>,
}

impl Authorizer {
    /// Marks the statements compiled from now on as the plugin's (`true`) or the host's.
    pub(crate) fn plugin_statement(&self, on: bool) {
        self.plugin.store(on, Ordering::SeqCst);
    }
}

/// Installs the locks described in the module docs on a freshly opened connection.
pub(crate) async fn install(conn: &mut SqliteConnection) -> Result<Authorizer, DbError> {
    let plugin = Arc::new(AtomicBool::new(false));
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // Leaked: see `Authorizer`.
    let user_data = Arc::into_raw(plugin.clone()) as *mut c_void;
    // SAFETY: `db` is a valid open handle, locked for this thread while `handle`
    // lives; `user_data` points to an `AtomicBool` that is never freed.
    let status = unsafe {
        ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, 0);
        let mut set = 0;
        let mut ok = ffi::SQLITE_OK;
        for (op, value) in [
            (ffi::SQLITE_DBCONFIG_DEFENSIVE, 1),
            (ffi::SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0),
            (ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0),
        ] {
            ok |= ffi::sqlite3_db_config(db, op, value as c_int, &mut set as *mut c_int);
        }
        ok | ffi::sqlite3_set_authorizer(db, Some(authorize), user_data)
    };
    if status != ffi::SQLITE_OK {
        return Err(DbError::new(
            super::DbErrorKind::Connection,
            format!("cannot lock down the SQLite connection (status {status})"),
        ));
    }
    Ok(Authorizer { plugin })
}

/// Whether the connection is inside a transaction, as SQLite itself says
/// (`sqlite3_get_autocommit`), independent of what the host believes.
pub(crate) async fn in_transaction(conn: &mut SqliteConnection) -> Result<bool, DbError> {
    let mut handle = conn.lock_handle().await?;
    let db: NonNull<ffi::sqlite3> = handle.as_raw_handle();
    // SAFETY: a valid handle, locked for this thread while `handle` lives.
    Ok(unsafe { ffi::sqlite3_get_autocommit(db.as_ptr()) } == 0)
}

/// The decision for one action of a statement being compiled.
extern "C" fn authorize(
    user_data: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    _database: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    // SAFETY: `user_data` is the leaked `AtomicBool` of `install`.
    let plugin = unsafe { &*(user_data as *const AtomicBool) };
    if !plugin.load(Ordering::SeqCst) {
        return ffi::SQLITE_OK;
    }
    let text = |p: *const c_char| {
        if p.is_null() {
            None
        } else {
            // SAFETY: SQLite passes NUL-terminated strings valid for the call.
            Some(
                unsafe { CStr::from_ptr(p) }
                    .to_string_lossy()
                    .to_ascii_lowercase(),
            )
        }
    };
    if decide(action, text(arg1).as_deref(), text(arg2).as_deref()) {
        ffi::SQLITE_OK
    } else {
        ffi::SQLITE_DENY
    }
}

/// Whether a plugin statement may perform `action` (SQLite's action code) on
/// `arg1`/`arg2` (lowercased), as described in the module docs.
fn decide(action: c_int, arg1: Option<&str>, arg2: Option<&str>) -> bool {
    match action {
        ffi::SQLITE_TRANSACTION | ffi::SQLITE_ATTACH | ffi::SQLITE_DETACH => false,
        ffi::SQLITE_PRAGMA => {
            let name = arg1.unwrap_or_default();
            ALLOWED_PRAGMAS.contains(&name)
                && !(arg2.is_some() && READ_ONLY_PRAGMAS.contains(&name))
        }
        ffi::SQLITE_FUNCTION => !DENIED_FUNCTIONS.contains(&arg2.unwrap_or_default()),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection as _, Executor as _};

    async fn open() -> (SqliteConnection, Authorizer) {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let gate = install(&mut conn).await.unwrap();
        (conn, gate)
    }

    #[tokio::test]
    async fn plugin_statements_cannot_attach_end_transactions_or_change_pragmas() {
        let (mut conn, gate) = open().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("escaped.db");
        conn.execute(sqlx::raw_sql("CREATE TABLE t (x INTEGER)"))
            .await
            .unwrap();
        conn.execute(sqlx::raw_sql("BEGIN")).await.unwrap();
        gate.plugin_statement(true);
        for sql in [
            format!("ATTACH '{}' AS x", file.display()),
            format!("\x0bATTACH '{}' AS x", file.display()),
            format!("VACUUM INTO '{}'", file.display()),
            "COMMIT".to_owned(),
            "\x0bCOMMIT".to_owned(),
            "END".to_owned(),
            "ROLLBACK".to_owned(),
            "BEGIN".to_owned(),
            "PRAGMA query_only = OFF".to_owned(),
            "PRAGMA writable_schema = ON".to_owned(),
            "PRAGMA journal_mode = OFF".to_owned(),
            "PRAGMA user_version = 7".to_owned(),
            "PRAGMA database_list".to_owned(),
            "SELECT load_extension('/tmp/x')".to_owned(),
        ] {
            assert!(
                conn.execute(sqlx::raw_sql(&sql)).await.is_err(),
                "{sql:?} was allowed"
            );
            assert!(
                in_transaction(&mut conn).await.unwrap(),
                "{sql:?} ended the transaction"
            );
        }
        assert!(!file.exists(), "a plugin statement created a file");
        // What plugins do every day still works.
        for sql in [
            "INSERT INTO t VALUES (1)",
            "SAVEPOINT a",
            "INSERT INTO t VALUES (2)",
            "ROLLBACK TO a",
            "RELEASE a",
            "PRAGMA table_info(t)",
            "PRAGMA user_version",
            "PRAGMA defer_foreign_keys = ON",
            "SELECT * FROM pragma_table_info('t')",
        ] {
            conn.execute(sqlx::raw_sql(sql))
                .await
                .unwrap_or_else(|e| panic!("{sql:?} was refused: {e}"));
        }
        gate.plugin_statement(false);
        conn.execute(sqlx::raw_sql("COMMIT")).await.unwrap();
        assert!(!in_transaction(&mut conn).await.unwrap());
    }
}
