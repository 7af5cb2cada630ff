//! Dry-runs that change nothing, including what rolling back the run's
//! transaction does not undo.
//!
//! A dry-run holds one transaction per connection for the whole run and rolls
//! it back. Per dialect, one thing escapes that rollback; the host deals with
//! it through [`Connection::enter_dry_run`] (before the run's transaction
//! begins) and [`Connection::leave_dry_run`] (after its rollback):
//!
//! | dialect | escapes a rollback | what a dry-run does about it |
//! |---|---|---|
//! | PostgreSQL | sequence values: `nextval` (serial, identity, explicit) is never rolled back | snapshots every sequence before, restores the changed ones with `setval` after |
//! | MySQL/MariaDB | DDL, which commits implicitly (and with it everything before it); AUTO_INCREMENT counters | runs the session in a scratch database cloned for the run and dropped after it |
//! | SQLite | nothing | nothing: the rollback is complete |
//!
//! Read-only connections need nothing: their session refuses every write.
//!
//! # PostgreSQL: sequences
//!
//! Before the run, the last value and `is_called` flag of every sequence in a
//! non-system schema (serial and identity ones included) are read. After the
//! rollback, each sequence whose state changed is put back with
//! `setval(seq, last_value, is_called)`, outside any transaction — but only
//! when nothing says another session used it meanwhile, because moving a
//! sequence back past a value another session took would hand that value out
//! twice (a duplicate key, later, in someone else's transaction). The evidence
//! looked at, in order:
//!
//! 1. `currval` in the dry-run's own session: if the session never took a
//!    value, or the sequence moved beyond the last value this session took
//!    (plus what it may have cached), someone else took values after the
//!    dry-run's last one. The sequence is left where it is.
//! 2. For a sequence owned by a column (serial, identity), whether committed
//!    rows of that table hold values beyond the snapshot: the dry-run's own
//!    rows are gone after the rollback, so any such row was written by another
//!    session. The sequence is left where it is.
//!
//! Left sequences are reported ([`DryRunRestore::left`]): they only have a gap,
//! which is what any rolled-back PostgreSQL transaction leaves. What cannot be
//! detected: another session that took a value *between* two of the dry-run's
//! `nextval` calls and has not committed it yet (or stored it in a column the
//! sequence does not own), and a value taken in the instant between the check
//! and the `setval`. Restoring then hands that value out again. The window is
//! the dry-run's duration, and only for sequences both the dry-run and live
//! traffic advance; run dry-runs of plugins that insert into hot tables
//! against a copy when that matters.
//!
//! Making `nextval` transactional instead (`ALTER SEQUENCE … RESTART` inside
//! the run's transaction gives the sequence new storage, discarded by the
//! rollback) was rejected: it needs ownership of every sequence and holds a
//! lock that makes every other session's `nextval` wait for the whole dry-run.
//!
//! A crash during a dry-run rolls the transaction back (the server does) but
//! cannot restore sequences: they keep the gap.
//!
//! # MySQL/MariaDB: a scratch database
//!
//! `enter_dry_run` first drops stale scratch databases (below), then:
//!
//! 1. takes the user-level lock `GET_LOCK(<scratch name>, 0)` — held by this
//!    session for as long as the scratch exists, released by the server when
//!    the session ends, however it ends;
//! 2. creates the database `migrun_dryrun_<UTC yyyymmddhhmmss>_c<server
//!    connection id>_p<pid>_<run id prefix>` with the source's character set;
//! 3. clones the source database: every table (`SHOW CREATE TABLE`, so
//!    indexes, foreign keys, AUTO_INCREMENT counters and partitions come
//!    along), MariaDB sequences with their next value, the data (`INSERT …
//!    SELECT` of the non-generated columns, each table read as a consistent
//!    `READ COMMITTED` snapshot so no source row is locked), then triggers and
//!    views (definers dropped, references to the source rewritten);
//! 4. switches the session to it (`USE`), so the plugin's unqualified names,
//!    `DATABASE()` and `information_schema` queries on it see the copy.
//!
//! When the plugin declared the tables it writes (`writes`), only those and
//! the tables linked to them by foreign keys (both ways, transitively) are
//! copied; every other table becomes a `TEMPTABLE` view reading the real one
//! (`SQL SECURITY INVOKER`), which the server refuses to write through. A
//! trigger that writes such a table then fails the dry-run instead of
//! changing anything. With no declaration, everything is copied: the cost of a
//! dry-run is then the size of the database.
//!
//! DDL then runs for real, in the scratch. Its implicit commits commit only
//! scratch data. While the scratch is in use the host refuses statements that
//! could reach outside it: names qualified with another database (`db.t`; an
//! alias spelled like a database name is refused too, the host cannot tell
//! them apart), `USE`, `PREPARE`/`EXECUTE` (dynamic SQL), `CALL`, `LOCK`, and
//! statements that change the server (`GRANT`, `CREATE USER`, `CREATE
//! DATABASE`, `SET GLOBAL`, `… INTO OUTFILE`, …) — these last ones also when
//! no scratch could be made.
//!
//! `leave_dry_run` switches back, drops the scratch and releases the lock.
//!
//! What can remain, and until when: if the process dies, or the connection is
//! dropped without [`Connection::leave_dry_run`] or [`Connection::close`], the
//! scratch database stays on the server, without its lock. The next dry-run
//! against that server drops it first thing, and so does
//! [`Connection::cleanup_stale_dry_runs`], which the host calls at the start of
//! every run on every writable MySQL connection. A scratch whose lock is held
//! belongs to a live run and is never touched. Nothing of the source database
//! is ever changed, crash or not.
//!
//! When the scratch cannot be made (no `CREATE` privilege, no database in the
//! URL, a table that cannot be copied), it is cleaned up and the dry-run falls
//! back to refusing DDL ([`Connection::refuse_ddl`], with the reason in the
//! message). AUTO_INCREMENT counters, which InnoDB does not roll back, are then
//! snapshotted and put back after the rollback with `ALTER TABLE … AUTO_INCREMENT
//! = n` (InnoDB never sets a counter below the largest value in the table, so a
//! concurrent insert is never reused). MariaDB sequences advanced in that
//! fallback stay advanced.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Access, Connection, DbError, DbErrorKind, Dialect, sql};
use migrun_types::value::Value;

use crate::driver_for;

/// The name prefix of every scratch database a MySQL/MariaDB dry-run creates.
pub const SCRATCH_PREFIX: &str = "migrun_dryrun_";

/// Sequences read per query when snapshotting PostgreSQL sequences.
pub(super) const SEQUENCES_PER_QUERY: usize = 200;

/// How long restoring an AUTO_INCREMENT counter waits for a table's metadata lock.
pub(super) const LOCK_WAIT_SECONDS: u32 = 5;

/// Proof that a connection is in a dry-run, returned by
/// [`Connection::enter_dry_run`] and given back to
/// [`Connection::leave_dry_run`] after the run's rollback.
#[must_use = "give the guard back to Connection::leave_dry_run after the rollback"]
#[derive(Debug)]
pub struct DryRunGuard {
    connection: String,
    mode: DryRunMode,
}

impl DryRunGuard {
    /// The connection it belongs to.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// How the dry-run keeps this connection's database unchanged.
    pub fn mode(&self) -> &DryRunMode {
        &self.mode
    }

    /// One line for the operator when the mode is worth knowing (a scratch
    /// database, refused DDL, sequences that cannot be restored); `None` otherwise.
    pub fn note(&self) -> Option<String> {
        match &self.mode {
            DryRunMode::Transaction => None,
            DryRunMode::Sequences { unrestorable, .. } if unrestorable.is_empty() => None,
            DryRunMode::Sequences { unrestorable, .. } => Some(format!(
                "sequences this connection may advance but cannot read or reset (no SELECT/UPDATE privilege): {}",
                unrestorable.join(", ")
            )),
            DryRunMode::Scratch {
                database,
                source,
                copied,
                read_through,
                not_cloned,
            } => {
                let mut note = format!(
                    "dry-run in scratch database `{database}`, a copy of `{source}` ({} table(s) copied",
                    copied.len()
                );
                if !read_through.is_empty() {
                    note.push_str(&format!(
                        ", {} read through read-only views",
                        read_through.len()
                    ));
                }
                note.push(')');
                if !not_cloned.is_empty() {
                    note.push_str(&format!("; not cloned: {}", not_cloned.join("; ")));
                }
                Some(note)
            }
            DryRunMode::DdlRefused { reason } => Some(reason.clone()),
        }
    }
}

/// How a dry-run keeps one connection's database unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DryRunMode {
    /// The rolled-back transaction is enough (SQLite, and read-only connections).
    Transaction,
    /// PostgreSQL: the transaction, and sequences restored after it.
    Sequences {
        /// Sequences snapshotted.
        sequences: usize,
        /// Sequences the connection can advance but not read or reset, for lack of privileges.
        unrestorable: Vec<String>,
    },
    /// MySQL/MariaDB: the session works in a scratch copy of its database.
    Scratch {
        /// The scratch database.
        database: String,
        /// The database it copies.
        source: String,
        /// Tables copied with their data.
        copied: Vec<String>,
        /// Tables read through read-only views of the source.
        read_through: Vec<String>,
        /// Triggers and views that could not be cloned, with why.
        not_cloned: Vec<String>,
    },
    /// MySQL/MariaDB without a scratch database: DDL is refused.
    DdlRefused {
        /// Why, as DDL refusals say it.
        reason: String,
    },
}

/// What [`Connection::leave_dry_run`] put back and what it could not.
#[must_use]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DryRunRestore {
    /// The connection.
    pub connection: String,
    /// What was put back, from the value the dry-run left to the one before it
    /// (`sequence public.users_id_seq: 44 → 41`).
    pub restored: Vec<String>,
    /// What was deliberately left as it is, with why (a sequence another session used).
    pub left: Vec<String>,
    /// The scratch database dropped, if any.
    pub dropped: Option<String>,
    /// What failed (privileges, a lost connection), with what remains.
    pub problems: Vec<String>,
}

impl DryRunRestore {
    /// Whether everything was put back exactly.
    pub fn is_clean(&self) -> bool {
        self.left.is_empty() && self.problems.is_empty()
    }

    /// One line per fact, for a report.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .restored
            .iter()
            .map(|r| format!("restored {r}"))
            .collect();
        notes.extend(self.left.iter().map(|l| format!("left {l}")));
        if let Some(db) = &self.dropped {
            notes.push(format!("scratch database `{db}` dropped"));
        }
        notes.extend(self.problems.iter().cloned());
        notes
    }
}

/// What a connection in a dry-run must undo or confine.
pub(crate) enum Active {
    /// PostgreSQL: the sequences as they were.
    Sequences(Vec<Sequence>),
    /// MySQL/MariaDB: the scratch database in use.
    Scratch(Scratch),
    /// MySQL/MariaDB without scratch: AUTO_INCREMENT counters as they were, by table.
    AutoIncrements(BTreeMap<String, i64>),
}

/// One PostgreSQL sequence as the dry-run found it.
pub(crate) struct Sequence {
    pub(crate) oid: i64,
    /// `schema.name`, for people.
    pub(crate) display: String,
    /// `"schema"."name"`, for SQL.
    pub(crate) quoted: String,
    pub(crate) increment: i64,
    pub(crate) cache: i64,
    /// The owning column as `("schema"."table", "column")`, for serial and identity sequences.
    pub(crate) owner: Option<(String, String)>,
    /// `(last_value, is_called)`, `None` when it cannot be read.
    pub(crate) state: Option<(i64, bool)>,
    /// Whether this connection may `setval` it.
    pub(crate) updatable: bool,
}

/// A scratch database in use.
pub(crate) struct Scratch {
    pub(crate) database: String,
    pub(crate) source: String,
    /// Every other database of the server, lowercased (for the guard).
    pub(crate) other_databases: BTreeSet<String>,
    /// Tables read through views of the source, lowercased.
    pub(crate) read_through: BTreeSet<String>,
}

impl Scratch {
    /// The source database when `table` (unqualified) is read through a view of it.
    pub(crate) fn reads_through(&self, table: &str) -> Option<&str> {
        self.read_through
            .contains(&table.to_lowercase())
            .then_some(self.source.as_str())
    }
}

impl Active {
    /// The scratch database, when one is in use.
    pub(crate) fn scratch(&self) -> Option<&Scratch> {
        match self {
            Active::Scratch(s) => Some(s),
            _ => None,
        }
    }

    /// Refuses a bulk insert into `db.table` of another database while a scratch is in use.
    pub(crate) fn guard_table(&self, name: &str, table: &str) -> Result<(), DbError> {
        let Active::Scratch(scratch) = self else {
            return Ok(());
        };
        match table.split_once('.') {
            Some((db, _)) if scratch.other_databases.contains(&db.to_lowercase()) => {
                Err(DbError::new(
                    DbErrorKind::Refused,
                    format!(
                        "`{table}` names the database `{db}`, while this dry-run works in `{}`, a scratch copy of `{}`: \
                         name the table unqualified: refused on connection `{name}` during a dry-run",
                        scratch.database, scratch.source
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Refuses, on MySQL, what could change something outside the dry-run's reach
    /// (see the module docs). `words` are the statement's leading keywords.
    pub(crate) fn guard(
        &self,
        name: &str,
        dialect: Dialect,
        text: &str,
        words: &[String],
    ) -> Result<(), DbError> {
        if dialect != Dialect::MySql {
            return Ok(());
        }
        let refuse = |what: String| {
            Err(DbError::new(
                DbErrorKind::Refused,
                format!("{what}: refused on connection `{name}` during a dry-run"),
            ))
        };
        let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        match word(0) {
            "GRANT" | "REVOKE" | "INSTALL" | "UNINSTALL" | "FLUSH" | "RESET" | "PURGE" | "KILL"
            | "SHUTDOWN" | "BINLOG" | "CHANGE" | "BACKUP" => {
                return refuse(format!(
                    "`{}` changes the server, not the database",
                    word(0)
                ));
            }
            "USE" | "PREPARE" | "EXECUTE" | "CALL" | "LOCK" | "UNLOCK" => {
                return refuse(format!(
                    "`{}` could reach past what a dry-run can undo (another database, dynamic SQL, a procedure, locks on real tables)",
                    word(0)
                ));
            }
            "START" | "STOP" if matches!(word(1), "SLAVE" | "REPLICA" | "ALL") => {
                return refuse(format!("`{} {}` changes replication", word(0), word(1)));
            }
            "CREATE" | "DROP" | "ALTER" | "RENAME" => {
                let object = if word(1) == "OR" { word(3) } else { word(1) };
                if matches!(
                    object,
                    "USER" | "ROLE" | "DATABASE" | "SCHEMA" | "SERVER" | "TABLESPACE" | "LOGFILE"
                ) {
                    return refuse(format!(
                        "`{} {object}` changes the server, not the database",
                        word(0)
                    ));
                }
            }
            _ => {}
        }
        let tokens = sql::tokens(text, dialect);
        for t in &tokens {
            match &t.tok {
                sql::Tok::Word(w)
                    if word(0) == "SET"
                        && matches!(
                            w.to_ascii_uppercase().as_str(),
                            "GLOBAL" | "PERSIST" | "PERSIST_ONLY" | "PASSWORD"
                        ) =>
                {
                    return refuse(
                        "`SET` of a global setting or a password changes the server".into(),
                    );
                }
                sql::Tok::Param => {
                    let p = text[t.start..t.end].to_ascii_lowercase();
                    if p.starts_with("@@global") || p.starts_with("@@persist") {
                        return refuse("`@@global` settings change the server".into());
                    }
                }
                sql::Tok::Word(w)
                    if w.eq_ignore_ascii_case("OUTFILE") || w.eq_ignore_ascii_case("DUMPFILE") =>
                {
                    return refuse("`INTO OUTFILE`/`DUMPFILE` writes a file on the server".into());
                }
                _ => {}
            }
        }
        if let Active::Scratch(scratch) = self {
            for qualifier in sql::qualifiers(text, dialect) {
                let lower = qualifier.to_lowercase();
                if scratch.other_databases.contains(&lower) {
                    return refuse(format!(
                        "`{qualifier}.` names the database `{qualifier}` (or an alias spelled like it, which the host cannot tell apart), \
                         while this dry-run works in `{}`, a scratch copy of `{}`: name the tables unqualified",
                        scratch.database, scratch.source
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Connection {
    /// Prepares this connection for a dry-run, before the run's transaction
    /// begins (see the module docs): on PostgreSQL snapshots every sequence;
    /// on MySQL/MariaDB drops stale scratch databases and moves the session
    /// into a scratch copy of its database — or, when no copy can be made,
    /// refuses DDL for the run ([`DryRunMode::DdlRefused`], not an error);
    /// on SQLite and on read-only connections does nothing.
    ///
    /// `run_id` goes into the scratch database's name; `writes` are the tables
    /// the plugin declared it writes through this connection (empty: copy
    /// every table). Give the guard back to [`Connection::leave_dry_run`]
    /// after the rollback.
    ///
    /// Errors: a transaction or cursor is open, the connection is already in
    /// a dry-run, or (PostgreSQL) the sequences cannot be listed.
    pub async fn enter_dry_run(
        &mut self,
        run_id: &str,
        writes: &[String],
    ) -> Result<DryRunGuard, DbError> {
        self.idle()?;
        if self.dry_run.is_some() {
            return Err(DbError::usage(format!(
                "connection `{}` is already in a dry-run",
                self.name
            )));
        }
        if self.in_transaction {
            return Err(DbError::usage(format!(
                "connection `{}`: enter the dry-run before its transaction begins",
                self.name
            )));
        }
        let mode = match self.access {
            Access::ReadOnly => DryRunMode::Transaction,
            Access::ReadWrite => {
                driver_for(self.dialect)
                    .enter_dry_run(self, run_id, writes)
                    .await?
            }
        };
        Ok(DryRunGuard {
            connection: self.name.clone(),
            mode,
        })
    }

    /// Ends the dry-run `guard` began, after the run's rollback (an open
    /// transaction is rolled back first): restores PostgreSQL sequences and
    /// MySQL AUTO_INCREMENT counters, or drops the scratch database and moves
    /// the session back. Never fails: what could not be done is in
    /// [`DryRunRestore::problems`], what was deliberately left in
    /// [`DryRunRestore::left`].
    pub async fn leave_dry_run(&mut self, guard: DryRunGuard) -> DryRunRestore {
        if guard.connection != self.name {
            return DryRunRestore {
                connection: self.name.clone(),
                problems: vec![format!(
                    "internal error: the dry-run guard of connection `{}` was given to `{}`",
                    guard.connection, self.name
                )],
                ..DryRunRestore::default()
            };
        }
        if let Err(e) = self.rollback().await {
            tracing::warn!(connection = %self.name, "rollback before leaving the dry-run failed: {e}");
        }
        self.finish_dry_run().await
    }

    /// Drops the MySQL/MariaDB scratch databases of dry-runs whose session is
    /// gone (their lock is free) and returns their names. Does nothing on the
    /// other dialects and on read-only connections. Call it at the start of a
    /// run, outside a transaction.
    pub async fn cleanup_stale_dry_runs(&mut self) -> Result<Vec<String>, DbError> {
        if self.access == Access::ReadOnly {
            return Ok(Vec::new());
        }
        driver_for(self.dialect).cleanup_stale_dry_runs(self).await
    }

    /// The scratch database in use, if any.
    pub(crate) fn scratch(&self) -> Option<&Scratch> {
        self.dry_run.as_ref().and_then(Active::scratch)
    }

    /// Undoes what the dry-run state holds (see [`Connection::leave_dry_run`]).
    pub(super) async fn finish_dry_run(&mut self) -> DryRunRestore {
        let mut restore = DryRunRestore {
            connection: self.name.clone(),
            ..DryRunRestore::default()
        };
        match self.dry_run.take() {
            None => {}
            Some(Active::Sequences(sequences)) => {
                self.restore_sequences(sequences, &mut restore).await
            }
            Some(Active::Scratch(scratch)) => self.drop_scratch(scratch, &mut restore).await,
            Some(Active::AutoIncrements(counters)) => {
                self.refuse_ddl = None;
                self.restore_auto_increments(counters, &mut restore).await;
            }
        }
        restore
    }
}

/// A value as text (MySQL may report names as binary strings).
pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    }
}

/// A value as an integer (counts and counters may come back as decimals or text).
pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Decimal(s) | Value::Text(s) => s.parse().ok(),
        Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

pub(super) fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Int(i) => Some(*i != 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::dry_run::{scratch_name, without_definer};
    use crate::postgres::dry_run::show_state;

    #[test]
    fn scratch_names_are_bounded_and_identify_their_run() {
        let name = scratch_name("3f2a9c1e-7b44-4c1d-9a0e-0123456789ab", 4_294_967_295);
        assert!(name.starts_with(SCRATCH_PREFIX));
        assert!(name.len() <= 64, "{name}");
        assert!(name.contains("_c4294967295_p"));
        let short = scratch_name("Run-42", 7);
        assert!(short.ends_with("_run42"), "{short}");
    }

    #[test]
    fn definers_are_dropped() {
        assert_eq!(
            without_definer(
                "CREATE DEFINER=`root`@`localhost` TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1"
            ),
            "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1"
        );
        assert_eq!(
            without_definer(
                "CREATE ALGORITHM=UNDEFINED DEFINER=`a b`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1"
            ),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(without_definer("CREATE TRIGGER t"), "CREATE TRIGGER t");
    }

    fn scratch_guard() -> Active {
        Active::Scratch(Scratch {
            database: "migrun_dryrun_x".into(),
            source: "app".into(),
            other_databases: ["app".to_owned(), "billing".to_owned(), "mysql".to_owned()].into(),
            read_through: BTreeSet::new(),
        })
    }

    fn check(active: &Active, sql_text: &str) -> Result<(), DbError> {
        let words = sql::leading_keywords(sql_text, Dialect::MySql, 4);
        active.guard("target", Dialect::MySql, sql_text, &words)
    }

    #[test]
    fn scratch_guard_refuses_what_reaches_outside() {
        let g = scratch_guard();
        for ok in [
            "INSERT INTO t (a) VALUES (1)",
            "CREATE TABLE t2 (id INT)",
            "ALTER TABLE t ADD COLUMN c INT",
            "SELECT t.a, x.b FROM t JOIN u x ON x.id = t.id",
            "SELECT 'app.t' AS s",
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
            "SET @x = 1",
            "SET SESSION sql_mode = 'ANSI'",
        ] {
            assert!(check(&g, ok).is_ok(), "{ok}");
        }
        for refused in [
            "INSERT INTO app.t (a) VALUES (1)",
            "UPDATE `billing`.`invoices` SET paid = 1",
            "DELETE FROM APP.t",
            "USE app",
            "PREPARE s FROM 'DROP TABLE t'",
            "EXECUTE s",
            "CALL refresh()",
            "LOCK TABLES t WRITE",
            "GRANT SELECT ON t TO x",
            "CREATE USER x",
            "CREATE OR REPLACE DATABASE y",
            "DROP DATABASE app",
            "SET GLOBAL read_only = 1",
            "SET @@global.max_connections = 10",
            "SELECT * FROM t INTO OUTFILE '/tmp/x'",
            "/*!50001 INSERT INTO app.t VALUES (1) */",
        ] {
            let err = check(&g, refused).expect_err(refused);
            assert_eq!(err.kind, DbErrorKind::Refused, "{refused}");
        }
        assert_eq!(
            g.guard_table("target", "Billing.invoices")
                .unwrap_err()
                .kind,
            DbErrorKind::Refused
        );
        assert!(g.guard_table("target", "invoices").is_ok());
        let err = check(&g, "INSERT INTO app.t VALUES (1)").unwrap_err();
        assert!(
            err.message.contains("scratch copy of `app`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn fallback_guard_refuses_server_changes_but_not_names() {
        let g = Active::AutoIncrements(BTreeMap::new());
        assert!(check(&g, "INSERT INTO app.t VALUES (1)").is_ok());
        assert!(check(&g, "EXECUTE s").is_err());
        assert!(check(&g, "CREATE USER x").is_err());
        assert!(g.guard("c", Dialect::Postgres, "CALL p()", &[]).is_ok());
    }

    #[test]
    fn values_read_as_numbers_and_text() {
        assert_eq!(
            int(&Value::Decimal("18446744073709".into())),
            Some(18_446_744_073_709)
        );
        assert_eq!(int(&Value::Bytes(b"12".to_vec())), Some(12));
        assert_eq!(
            text(&Value::Bytes(b"users".to_vec())).as_deref(),
            Some("users")
        );
        assert_eq!(show_state((5, false)), "5 (not yet called)");
    }
}
