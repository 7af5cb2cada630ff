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
use crate::value::Value;

/// The name prefix of every scratch database a MySQL/MariaDB dry-run creates.
pub const SCRATCH_PREFIX: &str = "migrun_dryrun_";

/// Sequences read per query when snapshotting PostgreSQL sequences.
const SEQUENCES_PER_QUERY: usize = 200;

/// How long restoring an AUTO_INCREMENT counter waits for a table's metadata lock.
const LOCK_WAIT_SECONDS: u32 = 5;

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
    oid: i64,
    /// `schema.name`, for people.
    display: String,
    /// `"schema"."name"`, for SQL.
    quoted: String,
    increment: i64,
    cache: i64,
    /// The owning column as `("schema"."table", "column")`, for serial and identity sequences.
    owner: Option<(String, String)>,
    /// `(last_value, is_called)`, `None` when it cannot be read.
    state: Option<(i64, bool)>,
    /// Whether this connection may `setval` it.
    updatable: bool,
}

/// A scratch database in use.
pub(crate) struct Scratch {
    database: String,
    source: String,
    /// Every other database of the server, lowercased (for the guard).
    other_databases: BTreeSet<String>,
    /// Tables read through views of the source, lowercased.
    read_through: BTreeSet<String>,
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
        let mode = match (self.dialect, self.access) {
            (Dialect::Sqlite, _) | (_, Access::ReadOnly) => DryRunMode::Transaction,
            (Dialect::Postgres, Access::ReadWrite) => {
                let sequences = self.snapshot_sequences().await?;
                let unrestorable: Vec<String> = sequences
                    .iter()
                    .filter(|s| s.state.is_none() || !s.updatable)
                    .map(|s| s.display.clone())
                    .collect();
                let mode = DryRunMode::Sequences {
                    sequences: sequences.len(),
                    unrestorable,
                };
                self.dry_run = Some(Active::Sequences(sequences));
                mode
            }
            (Dialect::MySql, Access::ReadWrite) => {
                if let Err(e) = self.cleanup_stale_dry_runs().await {
                    tracing::warn!(connection = %self.name, "cannot drop stale dry-run scratch databases: {e}");
                }
                match self.make_scratch(run_id, writes).await {
                    Ok((scratch, mode)) => {
                        self.refuse_ddl = None;
                        self.dry_run = Some(Active::Scratch(scratch));
                        mode
                    }
                    Err(why) => {
                        let reason = format!(
                            "DDL is refused during this dry-run on MySQL/MariaDB: it commits implicitly, \
                             and no scratch database could be made to run it in ({why})"
                        );
                        self.refuse_ddl = Some(reason.clone());
                        let counters = match self.auto_increments().await {
                            Ok(counters) => counters,
                            Err(e) => {
                                tracing::warn!(connection = %self.name, "cannot read AUTO_INCREMENT counters: {e}");
                                BTreeMap::new()
                            }
                        };
                        self.dry_run = Some(Active::AutoIncrements(counters));
                        DryRunMode::DdlRefused { reason }
                    }
                }
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
        if self.dialect != Dialect::MySql || self.access == Access::ReadOnly {
            return Ok(Vec::new());
        }
        if self.in_transaction {
            return Err(DbError::usage(format!(
                "connection `{}`: dropping stale scratch databases would commit the open transaction",
                self.name
            )));
        }
        let rows = self
            .host_query(
                "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
                &[Value::Text(format!("{}%", SCRATCH_PREFIX.replace('_', "\\_")))],
            )
            .await?;
        let mut dropped = Vec::new();
        for row in rows {
            let Some(name) = row.first().and_then(text) else {
                continue;
            };
            let free = self
                .host_query("SELECT IS_FREE_LOCK(?)", &[Value::Text(name.clone())])
                .await?;
            if free.first().and_then(|r| r.first()).and_then(int) != Some(1) {
                continue; // a live dry-run holds it
            }
            let quoted = Dialect::MySql.quote_identifier(&name)?;
            self.host_simple(&format!("DROP DATABASE IF EXISTS {quoted}"))
                .await?;
            tracing::info!(connection = %self.name, "dropped stale dry-run scratch database `{name}`");
            dropped.push(name);
        }
        Ok(dropped)
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

    // -- PostgreSQL ---------------------------------------------------------

    async fn snapshot_sequences(&mut self) -> Result<Vec<Sequence>, DbError> {
        const LIST: &str = "\
            SELECT c.oid::int8, n.nspname || '.' || c.relname, \
                   quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                   s.seqincrement, s.seqcache, \
                   has_sequence_privilege(c.oid, 'SELECT'), has_sequence_privilege(c.oid, 'UPDATE'), \
                   owner.tbl, owner.col \
            FROM pg_class c \
            JOIN pg_namespace n ON n.oid = c.relnamespace \
            JOIN pg_sequence s ON s.seqrelid = c.oid \
            LEFT JOIN LATERAL ( \
                SELECT quote_ident(tn.nspname) || '.' || quote_ident(t.relname) AS tbl, quote_ident(a.attname) AS col \
                FROM pg_depend d \
                JOIN pg_class t ON t.oid = d.refobjid \
                JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 \
                LIMIT 1) owner ON true \
            WHERE c.relkind = 'S' \
              AND (has_sequence_privilege(c.oid, 'USAGE') OR has_sequence_privilege(c.oid, 'UPDATE')) \
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
              AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
            ORDER BY 2";
        let rows = self.host_query(LIST, &[]).await?;
        let mut sequences = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |i: usize| row.get(i).cloned().unwrap_or(Value::Null);
            let (Some(oid), Some(display), Some(quoted)) =
                (int(&get(0)), text(&get(1)), text(&get(2)))
            else {
                continue;
            };
            let readable = boolean(&get(5)).unwrap_or(false);
            sequences.push(Sequence {
                oid,
                display,
                quoted,
                increment: int(&get(3)).unwrap_or(1),
                cache: int(&get(4)).unwrap_or(1).max(1),
                owner: text(&get(7)).zip(text(&get(8))),
                state: readable.then_some((0, false)),
                updatable: boolean(&get(6)).unwrap_or(false),
            });
        }
        let states = self.sequence_states(&sequences).await?;
        for (sequence, state) in sequences.iter_mut().zip(states) {
            sequence.state = state;
        }
        Ok(sequences)
    }

    /// `(last_value, is_called)` of each readable sequence (`None` for the others).
    async fn sequence_states(
        &mut self,
        sequences: &[Sequence],
    ) -> Result<Vec<Option<(i64, bool)>>, DbError> {
        let mut states = vec![None; sequences.len()];
        let readable: Vec<usize> = (0..sequences.len())
            .filter(|&i| sequences[i].state.is_some())
            .collect();
        for chunk in readable.chunks(SEQUENCES_PER_QUERY) {
            let sql = chunk
                .iter()
                .map(|&i| {
                    format!(
                        "SELECT {i}::int8, last_value, is_called FROM {}",
                        sequences[i].quoted
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            for row in self.host_query(&sql, &[]).await? {
                if let (Some(i), Some(last), Some(called)) = (
                    row.first().and_then(int),
                    row.get(1).and_then(int),
                    row.get(2).and_then(boolean),
                ) && let Some(slot) = states.get_mut(i as usize)
                {
                    *slot = Some((last, called));
                }
            }
        }
        Ok(states)
    }

    async fn restore_sequences(
        &mut self,
        mut sequences: Vec<Sequence>,
        restore: &mut DryRunRestore,
    ) {
        let now = match self.sequence_states(&sequences).await {
            Ok(now) => now,
            Err(e) => {
                restore.problems.push(format!(
                    "cannot read the sequences after the dry-run, none restored: {e}"
                ));
                return;
            }
        };
        for (sequence, now) in sequences.iter_mut().zip(now) {
            let (Some(before), Some(now)) = (sequence.state, now) else {
                continue;
            };
            if before == now {
                continue;
            }
            let name = sequence.display.clone();
            let moved = format!("{} → {}", show_state(before), show_state(now));
            if !sequence.updatable {
                restore.problems.push(format!(
                    "sequence {name} moved ({moved}) and cannot be reset: no UPDATE privilege on it"
                ));
                continue;
            }
            match self.used_elsewhere(sequence, before, now).await {
                Ok(Some(why)) => {
                    restore
                        .left
                        .push(format!("sequence {name} at {} ({why})", show_state(now)));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    restore.left.push(format!(
                        "sequence {name} at {} (cannot tell whether another session used it: {e})",
                        show_state(now)
                    ));
                    continue;
                }
            }
            let set = self
                .host_query(
                    "SELECT setval($1::oid::regclass, $2, $3)",
                    &[
                        Value::Int(sequence.oid),
                        Value::Int(before.0),
                        Value::Bool(before.1),
                    ],
                )
                .await;
            match set {
                Ok(_) => restore.restored.push(format!(
                    "sequence {name}: {} → {}",
                    show_state(now),
                    show_state(before)
                )),
                Err(e) => restore.problems.push(format!(
                    "sequence {name} moved ({moved}) and cannot be reset: {e}"
                )),
            }
        }
    }

    /// Why `sequence` must not be put back from `now` to `before`, if another
    /// session evidently used it (see the module docs); `None` when only this
    /// session did.
    async fn used_elsewhere(
        &mut self,
        sequence: &Sequence,
        before: (i64, bool),
        now: (i64, bool),
    ) -> Result<Option<String>, DbError> {
        // 1. The last value this session took, and what it may have cached beyond it.
        let mine = match self
            .host_query(
                "SELECT currval($1::oid::regclass)",
                &[Value::Int(sequence.oid)],
            )
            .await
        {
            Ok(rows) => rows.first().and_then(|r| r.first()).and_then(int),
            Err(e) if e.code.as_deref() == Some("55000") => None,
            Err(e) => return Err(e),
        };
        let Some(mine) = mine else {
            return Ok(Some(
                "another session advanced it; the dry-run took no value from it".into(),
            ));
        };
        let cached = sequence.increment.saturating_mul(sequence.cache - 1);
        let (low, high) = if sequence.increment > 0 {
            (mine, mine.saturating_add(cached))
        } else {
            (mine.saturating_add(cached), mine)
        };
        if !(low..=high).contains(&now.0) {
            return Ok(Some(format!(
                "another session took values after the dry-run's last one, {mine}"
            )));
        }
        // 2. Committed rows beyond the snapshot can only be another session's.
        if let Some((table, column)) = &sequence.owner {
            let op = match (sequence.increment > 0, before.1) {
                (true, true) => ">",
                (true, false) => ">=",
                (false, true) => "<",
                (false, false) => "<=",
            };
            let rows = self
                .host_query(
                    &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} {op} $1)"),
                    &[Value::Int(before.0)],
                )
                .await?;
            if rows.first().and_then(|r| r.first()).and_then(boolean) == Some(true) {
                return Ok(Some(format!(
                    "committed rows of {table} hold values beyond {}: another session used it",
                    before.0
                )));
            }
        }
        Ok(None)
    }

    // -- MySQL/MariaDB ------------------------------------------------------

    /// Creates, fills and enters the scratch database; on failure cleans up
    /// and returns why, for the refusal message.
    async fn make_scratch(
        &mut self,
        run_id: &str,
        writes: &[String],
    ) -> Result<(Scratch, DryRunMode), String> {
        let row = self
            .host_query("SELECT CAST(DATABASE() AS CHAR), CONNECTION_ID()", &[])
            .await
            .map_err(|e| e.to_string())?;
        let row = row.into_iter().next().unwrap_or_default();
        let Some(source) = row.first().and_then(text) else {
            return Err("the connection's URL names no database".into());
        };
        let connection_id = row.get(1).and_then(int).unwrap_or(0);
        let database = scratch_name(run_id, connection_id);
        let other_databases: BTreeSet<String> = self
            .host_query(
                "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|r| r.first().and_then(text))
            .map(|n| n.to_lowercase())
            .filter(|n| n != "information_schema")
            .collect();
        // The lock first: a scratch database never exists without its owner's lock held.
        let locked = self
            .host_query("SELECT GET_LOCK(?, 0)", &[Value::Text(database.clone())])
            .await
            .map_err(|e| e.to_string())?;
        if locked.first().and_then(|r| r.first()).and_then(int) != Some(1) {
            return Err(format!("the lock `{database}` is taken"));
        }
        let saved = match self
            .host_query(
                "SELECT @@SESSION.sql_mode, @@SESSION.foreign_key_checks",
                &[],
            )
            .await
        {
            Ok(rows) => rows.into_iter().next().unwrap_or_default(),
            Err(e) => {
                self.abandon_scratch(&source, &database).await;
                return Err(e.to_string());
            }
        };
        let cloned = self.clone_database(&source, &database, writes).await;
        // Session settings back as they were, whatever happened.
        let mut restored = Ok(());
        if let Some(mode) = saved.first().and_then(text) {
            restored = self
                .host_query("SET SESSION sql_mode = ?", &[Value::Text(mode)])
                .await
                .map(|_| ());
        }
        if let Some(checks) = saved.get(1).and_then(int) {
            restored = restored.and(
                self.host_simple(&format!("SET SESSION foreign_key_checks = {checks}"))
                    .await,
            );
        }
        if let Ok(backend) = self.idle() {
            let _ = backend.clear_statement_cache().await;
        }
        match cloned.and_then(|ok| restored.map(|()| ok)) {
            Ok(mode) => {
                let read_through = match &mode {
                    DryRunMode::Scratch { read_through, .. } => read_through.clone(),
                    _ => Vec::new(),
                };
                Ok((
                    Scratch {
                        database,
                        source,
                        other_databases,
                        read_through: read_through.iter().map(|t| t.to_lowercase()).collect(),
                    },
                    mode,
                ))
            }
            Err(e) => {
                self.abandon_scratch(&source, &database).await;
                Err(e.message)
            }
        }
    }

    /// Drops a scratch that could not be completed, and releases its lock.
    async fn abandon_scratch(&mut self, source: &str, database: &str) {
        if let Ok(q) = Dialect::MySql.quote_identifier(source) {
            let _ = self.host_simple(&format!("USE {q}")).await;
        }
        self.marks.mariadb_database = Some(source.to_owned());
        if let Ok(q) = Dialect::MySql.quote_identifier(database) {
            let _ = self
                .host_simple(&format!("DROP DATABASE IF EXISTS {q}"))
                .await;
        }
        let _ = self
            .host_query(
                "SELECT RELEASE_LOCK(?)",
                &[Value::Text(database.to_owned())],
            )
            .await;
        if let Ok(backend) = self.idle() {
            let _ = backend.clear_statement_cache().await;
        }
    }

    /// Clones `source` into the new database `database` and enters it (see the module docs).
    async fn clone_database(
        &mut self,
        source: &str,
        database: &str,
        writes: &[String],
    ) -> Result<DryRunMode, DbError> {
        let q = |n: &str| Dialect::MySql.quote_identifier(n);
        let (qs, qd) = (q(source)?, q(database)?);
        let charset = self
            .host_query(
                "SELECT CAST(DEFAULT_CHARACTER_SET_NAME AS CHAR), CAST(DEFAULT_COLLATION_NAME AS CHAR) \
                 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                &[Value::Text(source.to_owned())],
            )
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut create = format!("CREATE DATABASE {qd}");
        if let (Some(cs), Some(coll)) = (
            charset.first().and_then(text),
            charset.get(1).and_then(text),
        ) && [&cs, &coll]
            .iter()
            .all(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            create.push_str(&format!(" CHARACTER SET {cs} COLLATE {coll}"));
        }
        self.host_simple(&create).await?;

        let objects = self
            .host_query(
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_TYPE AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
                &[Value::Text(source.to_owned())],
            )
            .await?;
        let (mut tables, mut views, mut sequences) = (Vec::new(), Vec::new(), Vec::new());
        for row in &objects {
            let (Some(name), Some(kind)) = (row.first().and_then(text), row.get(1).and_then(text))
            else {
                continue;
            };
            match kind.as_str() {
                "VIEW" => views.push(name),
                "SEQUENCE" => sequences.push(name),
                _ => tables.push(name),
            }
        }
        let copied = self.tables_to_copy(source, &tables, writes).await?;
        let read_through: Vec<String> = tables
            .iter()
            .filter(|t| !copied.contains(*t))
            .cloned()
            .collect();

        self.host_simple("SET SESSION foreign_key_checks = 0")
            .await?;
        self.host_simple("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'")
            .await?;
        self.host_simple(&format!("USE {qd}")).await?;
        // The session check now holds the session to the scratch.
        self.marks.mariadb_database = Some(database.to_owned());

        for table in &copied {
            let shown = self
                .host_text_query(&format!("SHOW CREATE TABLE {qs}.{}", q(table)?))
                .await?;
            let ddl = shown
                .first()
                .and_then(|r| r.get(1))
                .and_then(text)
                .ok_or_else(|| {
                    DbError::new(
                        DbErrorKind::Other,
                        format!("SHOW CREATE TABLE {table} returned nothing"),
                    )
                })?;
            self.host_simple(&ddl).await?;
        }
        for sequence in &sequences {
            let shown = self
                .host_text_query(&format!("SHOW CREATE SEQUENCE {qs}.{}", q(sequence)?))
                .await?;
            if let Some(ddl) = shown.first().and_then(|r| r.get(1)).and_then(text) {
                self.host_simple(&ddl).await?;
                let next = self
                    .host_text_query(&format!(
                        "SELECT next_not_cached_value FROM {qs}.{}",
                        q(sequence)?
                    ))
                    .await?;
                if let Some(next) = next.first().and_then(|r| r.first()).and_then(int) {
                    self.host_simple(&format!("SELECT SETVAL({}, {next}, 0)", q(sequence)?))
                        .await?;
                }
            }
        }
        for table in &read_through {
            let qt = q(table)?;
            self.host_simple(&format!(
                "CREATE ALGORITHM=TEMPTABLE SQL SECURITY INVOKER VIEW {qt} AS SELECT * FROM {qs}.{qt}"
            ))
            .await?;
        }
        for table in &copied {
            self.copy_rows(&qs, &qd, source, table).await?;
        }

        let mut not_cloned = Vec::new();
        let triggers = self
            .host_query(
                "SELECT CAST(TRIGGER_NAME AS CHAR), CAST(EVENT_OBJECT_TABLE AS CHAR) FROM information_schema.TRIGGERS \
                 WHERE TRIGGER_SCHEMA = ? ORDER BY ACTION_ORDER",
                &[Value::Text(source.to_owned())],
            )
            .await?;
        for row in triggers {
            let (Some(trigger), Some(table)) =
                (row.first().and_then(text), row.get(1).and_then(text))
            else {
                continue;
            };
            if !copied.contains(&table) {
                continue;
            }
            let shown = self
                .host_text_query(&format!("SHOW CREATE TRIGGER {qs}.{}", q(&trigger)?))
                .await?;
            let Some(ddl) = shown.first().and_then(|r| r.get(2)).and_then(text) else {
                not_cloned.push(format!(
                    "trigger `{trigger}`: SHOW CREATE TRIGGER returned nothing"
                ));
                continue;
            };
            if let Err(e) = self.host_simple(&without_definer(&ddl)).await {
                not_cloned.push(format!("trigger `{trigger}`: {e}"));
            }
        }
        // Views may depend on views: retry until no progress.
        let mut pending: Vec<(String, String)> = Vec::new();
        for view in &views {
            let shown = self
                .host_text_query(&format!("SHOW CREATE VIEW {qs}.{}", q(view)?))
                .await?;
            if let Some(ddl) = shown.first().and_then(|r| r.get(1)).and_then(text) {
                let ddl = without_definer(&ddl).replace(&format!("{qs}."), &format!("{qd}."));
                pending.push((view.clone(), ddl));
            }
        }
        while !pending.is_empty() {
            let attempted = pending.len();
            let mut failed = Vec::new();
            for (view, ddl) in std::mem::take(&mut pending) {
                if let Err(e) = self.host_simple(&ddl).await {
                    failed.push((view, ddl, e));
                }
            }
            if failed.len() == attempted {
                not_cloned.extend(
                    failed
                        .into_iter()
                        .map(|(v, _, e)| format!("view `{v}`: {e}")),
                );
                break;
            }
            pending = failed.into_iter().map(|(v, d, _)| (v, d)).collect();
        }
        Ok(DryRunMode::Scratch {
            database: database.to_owned(),
            source: source.to_owned(),
            copied,
            read_through,
            not_cloned,
        })
    }

    /// The tables whose data the scratch copies: all of them without a
    /// declaration, else the declared ones and their foreign-key relatives.
    async fn tables_to_copy(
        &mut self,
        source: &str,
        tables: &[String],
        writes: &[String],
    ) -> Result<Vec<String>, DbError> {
        if writes.is_empty() {
            return Ok(tables.to_vec());
        }
        let by_lower: BTreeMap<String, &String> =
            tables.iter().map(|t| (t.to_lowercase(), t)).collect();
        let mut set: BTreeSet<String> = writes
            .iter()
            .filter_map(|w| {
                let unqualified = match w.split_once('.') {
                    Some((db, t)) if db.eq_ignore_ascii_case(source) => t,
                    Some(_) => return None,
                    None => w.as_str(),
                };
                by_lower
                    .get(&unqualified.to_lowercase())
                    .map(|t| (*t).clone())
            })
            .collect();
        let edges: Vec<(String, String)> = self
            .host_query(
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(REFERENCED_TABLE_NAME AS CHAR) \
                 FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL",
                &[Value::Text(source.to_owned()), Value::Text(source.to_owned())],
            )
            .await?
            .iter()
            .filter_map(|r| Some((r.first().and_then(text)?, r.get(1).and_then(text)?)))
            .collect();
        loop {
            let size = set.len();
            for (child, parent) in &edges {
                if set.contains(child) || set.contains(parent) {
                    set.insert(child.clone());
                    set.insert(parent.clone());
                }
            }
            if set.len() == size {
                break;
            }
        }
        Ok(tables
            .iter()
            .filter(|t| set.contains(*t))
            .cloned()
            .collect())
    }

    /// Copies the rows of `source.table` into the scratch, reading a
    /// `READ COMMITTED` snapshot so that no source row is locked.
    async fn copy_rows(
        &mut self,
        qs: &str,
        qd: &str,
        source: &str,
        table: &str,
    ) -> Result<(), DbError> {
        let columns: Vec<String> = self
            .host_query(
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND EXTRA NOT LIKE '%GENERATED%' \
                 ORDER BY ORDINAL_POSITION",
                &[
                    Value::Text(source.to_owned()),
                    Value::Text(table.to_owned()),
                ],
            )
            .await?
            .iter()
            .filter_map(|r| r.first().and_then(text))
            .map(|c| Dialect::MySql.quote_identifier(&c))
            .collect::<Result<_, _>>()?;
        if columns.is_empty() {
            return Ok(());
        }
        let qt = Dialect::MySql.quote_identifier(table)?;
        let list = columns.join(", ");
        let insert = format!("INSERT INTO {qd}.{qt} ({list}) SELECT {list} FROM {qs}.{qt}");
        self.host_simple("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await?;
        self.host_simple("START TRANSACTION").await?;
        match self.host_simple(&insert).await {
            Ok(()) => self.host_simple("COMMIT").await,
            Err(e) => {
                let _ = self.host_simple("ROLLBACK").await;
                // Statement-based binary logging refuses READ COMMITTED inserts (1665):
                // copy at the session's own isolation level instead.
                if e.code.as_deref() == Some("1665") {
                    self.host_simple(&insert).await
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn drop_scratch(&mut self, scratch: Scratch, restore: &mut DryRunRestore) {
        let database = scratch.database.clone();
        // Dropped first, so that nothing else failing can keep it; the lock
        // goes last, so that no clean-up can race the drop.
        let dropped = match Dialect::MySql.quote_identifier(&database) {
            Ok(qd) => {
                self.host_simple(&format!("DROP DATABASE IF EXISTS {qd}"))
                    .await
            }
            Err(e) => Err(e),
        };
        let switched = match Dialect::MySql.quote_identifier(&scratch.source) {
            Ok(qs) => self.host_simple(&format!("USE {qs}")).await,
            Err(e) => Err(e),
        };
        self.marks.mariadb_database = Some(scratch.source.clone());
        let _ = self
            .host_query("SELECT RELEASE_LOCK(?)", &[Value::Text(database.clone())])
            .await;
        if let Ok(backend) = self.idle() {
            let _ = backend.clear_statement_cache().await;
        }
        match dropped {
            Ok(()) => restore.dropped = Some(database),
            Err(e) => restore.problems.push(format!(
                "scratch database `{database}` could not be dropped ({e}); the next run against this server drops it \
                 once this session has ended"
            )),
        }
        if let Err(e) = switched {
            restore.problems.push(format!(
                "connection `{}` could not switch back to `{}`: {e}",
                self.name, scratch.source
            ));
        }
    }

    /// AUTO_INCREMENT counters of the connection's database, by table.
    async fn auto_increments(&mut self) -> Result<BTreeMap<String, i64>, DbError> {
        // MySQL 8 caches these statistics for a day unless told otherwise; MariaDB has no such setting.
        let _ = self
            .host_simple("SET SESSION information_schema_stats_expiry = 0")
            .await;
        Ok(self
            .host_query(
                "SELECT CAST(TABLE_NAME AS CHAR), AUTO_INCREMENT FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL",
                &[],
            )
            .await?
            .iter()
            .filter_map(|r| Some((r.first().and_then(text)?, r.get(1).and_then(int)?)))
            .collect())
    }

    async fn restore_auto_increments(
        &mut self,
        before: BTreeMap<String, i64>,
        restore: &mut DryRunRestore,
    ) {
        let now = match self.auto_increments().await {
            Ok(now) => now,
            Err(e) => {
                restore.problems.push(format!(
                    "cannot read AUTO_INCREMENT counters after the dry-run, none restored: {e}"
                ));
                return;
            }
        };
        let changed: Vec<(&String, i64, i64)> = before
            .iter()
            .filter_map(|(t, &b)| now.get(t).filter(|&&n| n != b).map(|&n| (t, b, n)))
            .collect();
        if changed.is_empty() {
            return;
        }
        let saved = self
            .host_query("SELECT @@SESSION.lock_wait_timeout", &[])
            .await
            .ok()
            .and_then(|r| r.first().and_then(|r| r.first()).and_then(int));
        let _ = self
            .host_simple(&format!(
                "SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}"
            ))
            .await;
        for (table, before, now) in changed {
            let result = match Dialect::MySql.quote_identifier(table) {
                Ok(qt) => {
                    self.host_simple(&format!("ALTER TABLE {qt} AUTO_INCREMENT = {before}"))
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => restore
                    .restored
                    .push(format!("AUTO_INCREMENT of {table}: {now} → {before}")),
                Err(e) => restore.problems.push(format!(
                    "AUTO_INCREMENT of {table} moved ({before} → {now}) and cannot be reset: {e}"
                )),
            }
        }
        if let Some(saved) = saved {
            let _ = self
                .host_simple(&format!("SET SESSION lock_wait_timeout = {saved}"))
                .await;
        }
    }
}

/// `migrun_dryrun_<UTC yyyymmddhhmmss>_c<connection id>_p<pid>_<run id prefix>`, at most 64 characters.
fn scratch_name(run_id: &str, connection_id: i64) -> String {
    let run: String = run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    let mut name = format!(
        "{SCRATCH_PREFIX}{}_c{connection_id}_p{}_{run}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        std::process::id()
    );
    name.truncate(64);
    name
}

/// `CREATE DEFINER=`u`@`h` TRIGGER …` without its `DEFINER=…` clause, so the
/// object is created for the current user (another definer needs `SUPER`).
fn without_definer(ddl: &str) -> String {
    let tokens = sql::tokens(ddl, Dialect::MySql);
    let Some(at) = tokens.iter().position(|t| t.is("DEFINER")) else {
        return ddl.to_owned();
    };
    let mut end = tokens[at].end;
    let mut i = at + 1;
    if tokens.get(i).is_some_and(|t| t.is_punct('=')) {
        end = tokens[i].end;
        i += 1;
        // `user`@`host` (or CURRENT_USER): adjacent tokens, no space between them.
        let mut previous = None::<usize>;
        while let Some(t) = tokens.get(i) {
            if previous.is_some_and(|p| t.start != p) {
                break;
            }
            end = t.end;
            previous = Some(t.end);
            i += 1;
        }
    }
    format!("{}{}", &ddl[..tokens[at].start], ddl[end..].trim_start())
}

fn show_state((last, called): (i64, bool)) -> String {
    if called {
        format!("{last}")
    } else {
        format!("{last} (not yet called)")
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

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Int(i) => Some(*i != 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
