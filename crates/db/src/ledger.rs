//! The ledger: which units of which plugin have finished on a target.
//!
//! Every writable connection gets a ledger table (`migrun_ledger` unless the
//! config names another). A unit's ledger row is inserted **inside the unit's
//! own transaction**, just before it commits, so the unit's writes and its
//! record commit together or not at all: a run killed at any point leaves
//! either both or neither. A rerun skips the units whose rows are there with
//! the same plugin sha256 and refuses, naming both hashes, when a finished
//! unit was run by a different build of the plugin, unless the operator
//! overrides with a reason (which is recorded).
//!
//! The primary key `(plugin_name, unit, unit_scope, plugin_sha256)` makes
//! "exactly once" a database guarantee: two workers that somehow ran the same
//! unit cannot both commit it — the second commit fails on the key and rolls
//! back.
//!
//! A unit's identity is its [`UnitKey`]: its name and the scope a contract
//! 0.2.0 plugin derives from its configuration (`accounts.email→email_address`),
//! so the same unit configured for another column is another piece of work. The
//! column `unit_scope` holds `''` for "no scope": every 0.1 unit, and every row
//! written before scopes existed. Ledgers made before the column get it from
//! [`Ledger::ensure`], which also moves the primary key to include it (one
//! `ALTER TABLE` on PostgreSQL and MariaDB, a table rebuild in one transaction on
//! SQLite); reads before that treat every row as unscoped.
//!
//! The ledger shares its connection (and so its role) with the plugin, which
//! could try to change what the host writes or reads there. What the host
//! holds it to: a ledger table with triggers or rules is refused before any
//! plugin code runs ([`Ledger::tampering`]: a trigger could drop the rows
//! that keep a unit from running twice, or forge finished ones); every row is
//! written through names the plugin cannot redirect (PostgreSQL's
//! `search_path` pinned to the session's opening one with `pg_temp` last; a
//! temporary table shadowing the ledger on MariaDB or SQLite refused), must
//! affect exactly one row, and is read back and compared before the commit.
//!
//! A unit that calls `checkpoint.save` (contract 0.1.1) commits part of its
//! work early. Each save replaces the unit's one row of status `checkpoint`
//! (whatever plugin build wrote it) with a new one carrying the plugin's
//! state in `checkpoint_state`, in the same transaction as the work it
//! seals; the final `finished` row replaces the checkpoint row the same way.
//! A unit with only a `checkpoint` row is therefore unfinished: it runs again
//! and `checkpoint.last` hands the plugin the saved state to resume from.
//!
//! When a run has finished — its journal's footer written and synced — the
//! host stores the journal's **final hash** in column `run_final_hash` of
//! every row the run committed on the connection ([`Ledger::seal_run`]). The
//! units' `journal_hash` anchors hold the journal up to each commit; the final
//! hash holds its end (the verify phase, the footer), so a journal edited there
//! and re-chained after the run is caught against the database too (`migrun
//! journal verify -c`). Ledgers made before the column existed get it added by
//! [`Ledger::ensure`], like `checkpoint_state`; their older rows keep NULL.
//!
//! The procedure is written once here; each dialect's statements are its
//! `db/<dialect>/ledger.rs` (`LedgerSql`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::driver::{LedgerColumnTypes, ScopeUpgrade};
use crate::driver_for;
use crate::{Connection, DbError, Dialect};
use migrun_types::value::Value;

/// The ledger table's name when the configuration names none.
pub const DEFAULT_TABLE: &str = migrun_config::DEFAULT_LEDGER_TABLE;

/// The status of a unit that committed all of its work.
pub const STATUS_FINISHED: &str = "finished";

/// The status of a unit that saved a checkpoint and has not finished yet.
pub const STATUS_CHECKPOINT: &str = "checkpoint";

/// The column holding a unit's scope, `''` for none (added to ledgers made before scopes).
const SCOPE_COLUMN: &str = "unit_scope";

/// The column holding a checkpoint's state (added to ledgers made before contract 0.1.1).
const STATE_COLUMN: &str = "checkpoint_state";

/// The column holding the final hash of the run that committed the row, once that run
/// finished (added to ledgers made before it; NULL until the run's end).
const FINAL_HASH_COLUMN: &str = "run_final_hash";

/// A unit as the ledger identifies it: its name and its scope (contract 0.2.0).
///
/// Invariant: `scope` is never `Some("")` — the ledger stores "no scope" as `''`, and
/// [`UnitKey::new`] maps it back to `None`, so a row written before scopes and a unit
/// without one are the same key. Shown (and matched by `--only`) as `unit@scope`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct UnitKey {
    /// The unit's name.
    pub unit: String,
    /// Its scope, if it declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl UnitKey {
    /// The key of `unit` with `scope` (an empty scope is no scope).
    pub fn new(unit: &str, scope: Option<&str>) -> UnitKey {
        UnitKey {
            unit: unit.to_owned(),
            scope: scope.filter(|s| !s.is_empty()).map(str::to_owned),
        }
    }

    /// The scope as the ledger column holds it (`''` for none).
    pub fn scope_column(&self) -> &str {
        self.scope.as_deref().unwrap_or("")
    }
}

impl std::fmt::Display for UnitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.scope {
            Some(scope) => write!(f, "{}@{scope}", self.unit),
            None => f.write_str(&self.unit),
        }
    }
}

/// The last checkpoint of an unfinished unit, as one target's ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointRow {
    /// The unit.
    pub unit: String,
    /// Its scope (contract 0.2.0), if it declares one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The plugin build that saved it.
    pub plugin_sha256: String,
    /// The plugin's state at its last `checkpoint.save`.
    pub state: String,
    /// The run that saved it.
    pub run_id: String,
    /// When it was saved (RFC 3339).
    pub saved_at: String,
}

impl CheckpointRow {
    /// The unit it belongs to.
    pub fn key(&self) -> UnitKey {
        UnitKey::new(&self.unit, self.scope.as_deref())
    }
}

/// One finished unit as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerRow {
    /// The plugin's name.
    pub plugin_name: String,
    /// The unit.
    pub unit: String,
    /// Its scope (contract 0.2.0), if it declares one; left out of JSON when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// sha256 of the plugin build that ran it.
    pub plugin_sha256: String,
    /// The plugin's version.
    pub plugin_version: String,
    /// The run that committed it.
    pub run_id: String,
    /// [`STATUS_FINISHED`] or [`STATUS_CHECKPOINT`].
    pub status: String,
    /// When the unit started (RFC 3339).
    pub started_at: String,
    /// When it committed (RFC 3339).
    pub finished_at: String,
    /// Rows it wrote on this connection.
    pub rows_written: i64,
    /// The journal file of the run.
    pub journal_id: String,
    /// The journal's chain head when the unit committed: it seals every call up to this unit.
    pub journal_hash: String,
    /// Why a finished unit was rerun with another plugin build, if it was.
    pub override_reason: Option<String>,
}

impl LedgerRow {
    /// The unit it records.
    pub fn key(&self) -> UnitKey {
        UnitKey::new(&self.unit, self.scope.as_deref())
    }
}

const COLUMNS: &[&str] = &[
    "plugin_name",
    "unit",
    "plugin_sha256",
    "plugin_version",
    "run_id",
    "status",
    "started_at",
    "finished_at",
    "rows_written",
    "journal_id",
    "journal_hash",
    "override_reason",
];

/// The ledger table on one connection.
#[derive(Debug, Clone)]
pub struct Ledger {
    table: String,
}

fn placeholders(dialect: Dialect, n: usize) -> String {
    let sql = driver_for(dialect);
    (1..=n)
        .map(|i| sql.placeholder(i))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Ledger {
    /// A ledger kept in `table` (a plain or `schema.table` name).
    pub fn new(table: &str) -> Ledger {
        Ledger {
            table: table.to_owned(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the ledger table exists on `conn` (asked of the catalog, so no error aborts a transaction).
    pub async fn exists(&self, conn: &mut Connection) -> Result<bool, DbError> {
        self.catalog_says(conn, driver_for(conn.dialect()).ledger_exists_sql())
            .await
    }

    /// What makes the ledger table untrustworthy, if anything: triggers (and on
    /// PostgreSQL rules) on it, which would run with every row the host writes.
    /// Asked before any plugin code runs; the run is refused while it says something.
    pub async fn tampering(&self, conn: &mut Connection) -> Result<Option<String>, DbError> {
        if !self.exists(conn).await? {
            return Ok(None);
        }
        let sql = driver_for(conn.dialect()).ledger_triggers_sql();
        let rows = conn.query(sql, &[Value::Text(self.table.clone())]).await?;
        let count = match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Int(n)) => *n,
            Some(Value::Decimal(d)) => d.parse().unwrap_or(1),
            _ => 0,
        };
        Ok((count > 0).then(|| {
            format!(
                "the ledger table `{}` has {count} trigger(s) or rule(s): they would run with every \
                 row migrun records there, and could drop or forge the rows that keep a unit from \
                 running twice; drop them (migrun's ledger is written by migrun only)",
                self.table
            )
        }))
    }

    /// Before the host writes its row: the names it uses must reach the real ledger table.
    async fn shield(&self, conn: &mut Connection) -> Result<(), DbError> {
        let shadowed = driver_for(conn.dialect())
            .shield_ledger(conn, &self.table)
            .await?;
        if shadowed {
            return Err(DbError::new(
                crate::DbErrorKind::Refused,
                format!(
                    "a temporary table named `{}` shadows the ledger in this session; the unit's row \
                     would not reach the ledger",
                    self.table
                ),
            ));
        }
        Ok(())
    }

    /// Forgets the units whose work a full `migrun restore` undid, so that they run again:
    /// those of run `run_id` (which took the backup), and those plugin `plugin_name` started
    /// at or after `since` (the backup's time) in later runs. A later run of the same plugin
    /// wrote the same declared tables, which the restore put back to before it; keeping its
    /// rows would skip units whose work is gone (restoring the expand run's backup after the
    /// backfill and contract runs must let all three run again). Checkpoints count too.
    /// Returns the rows removed.
    pub async fn forget_since(
        &self,
        conn: &mut Connection,
        run_id: &str,
        plugin_name: &str,
        since: &str,
    ) -> Result<u64, DbError> {
        if !self.exists(conn).await? {
            return Ok(0);
        }
        let sql = driver_for(conn.dialect());
        let p = |n: usize| sql.placeholder(n);
        let sql = format!(
            "DELETE FROM {} WHERE run_id = {} OR (plugin_name = {} AND started_at >= {})",
            self.table,
            p(1),
            p(2),
            p(3)
        );
        conn.execute(
            &sql,
            &[
                Value::Text(run_id.to_owned()),
                Value::Text(plugin_name.to_owned()),
                Value::Text(since.to_owned()),
            ],
        )
        .await
    }

    /// Creates the table when it is absent, and brings a table made by an older migrun up
    /// to date: the checkpoint, final-hash and scope columns (outside any unit: on MySQL DDL
    /// commits implicitly). Adding the scope also moves the primary key to include it; the
    /// rows already there keep `''`, "no scope".
    pub async fn ensure(&self, conn: &mut Connection) -> Result<(), DbError> {
        let types = driver_for(conn.dialect()).ledger_column_types();
        let state = types.state;
        let ddl = create_sql(&self.table, types, "IF NOT EXISTS ");
        match conn.execute(&ddl, &[]).await {
            Ok(_) => {}
            // Two workers creating it at once: `IF NOT EXISTS` does not make PostgreSQL's
            // catalog inserts atomic, so the loser gets a duplicate key in `pg_type` (23505),
            // "type … already exists" (42710) or "relation … already exists" (42P07),
            // depending on where the two meet. The table is there either way.
            Err(e) if self.exists(conn).await? => {
                tracing::debug!(table = %self.table, "another run created the ledger first: {e}");
            }
            Err(e) => return Err(e),
        }
        if !self.has_state_column(conn).await? {
            let ddl = format!(
                "ALTER TABLE {} ADD COLUMN {STATE_COLUMN} {state}",
                self.table
            );
            conn.execute(&ddl, &[]).await?;
        }
        if !self.has_final_hash_column(conn).await? {
            let ddl = format!(
                "ALTER TABLE {} ADD COLUMN {FINAL_HASH_COLUMN} CHAR(64)",
                self.table
            );
            conn.execute(&ddl, &[]).await?;
        }
        if !self.has_scope_column(conn).await? {
            let columns = format!(
                "{}, {STATE_COLUMN}, {FINAL_HASH_COLUMN}",
                COLUMNS.join(", ")
            );
            let create = |name: &str| create_sql(name, types, "");
            let upgraded = driver_for(conn.dialect())
                .upgrade_ledger_scope(
                    conn,
                    ScopeUpgrade {
                        table: &self.table,
                        columns: &columns,
                        create: &create,
                    },
                )
                .await;
            // Two runs upgrading at once: the second finds the column there afterwards.
            if let Err(e) = upgraded
                && !self.has_scope_column(conn).await?
            {
                return Err(DbError::new(
                    e.kind,
                    format!(
                        "adding the scope column to the ledger table `{}` failed, and the table \
                         was left as it was: {}",
                        self.table, e.message
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The answer of one of the dialect's catalog questions about this table (`$1`/`?` is
    /// the table's name; the answer a boolean or a count): whether it exists, whether it has
    /// a column added after its first version.
    async fn catalog_says(&self, conn: &mut Connection, sql: &str) -> Result<bool, DbError> {
        let rows = conn.query(sql, &[Value::Text(self.table.clone())]).await?;
        Ok(matches!(
            rows.rows.first().and_then(|r| r.first()),
            Some(Value::Bool(true)) | Some(Value::Int(1..))
        ))
    }

    /// Whether the table has the scope column (ledgers made before contract 0.2.0's scopes do not).
    async fn has_scope_column(&self, conn: &mut Connection) -> Result<bool, DbError> {
        self.catalog_says(conn, driver_for(conn.dialect()).ledger_scope_column_sql())
            .await
    }

    /// What a read selects as the scope: the column, or `''` (no scope) on a ledger not
    /// upgraded yet (reads happen before [`Ledger::ensure`], which a dry-run never calls).
    async fn scope_expr(&self, conn: &mut Connection) -> Result<&'static str, DbError> {
        Ok(if self.has_scope_column(conn).await? {
            SCOPE_COLUMN
        } else {
            "''"
        })
    }

    /// Whether the table has the final-hash column (ledgers made before it do not).
    async fn has_final_hash_column(&self, conn: &mut Connection) -> Result<bool, DbError> {
        self.catalog_says(
            conn,
            driver_for(conn.dialect()).ledger_final_hash_column_sql(),
        )
        .await
    }

    /// Stores run `run_id`'s final hash in every row it committed on `conn` (its units'
    /// and checkpoints'), after its journal's footer is synced, outside any unit. Each row
    /// is updated by its primary key (read first, without locks), so that on InnoDB the
    /// statement locks only that row, never a gap a concurrent worker inserts into.
    /// Returns the rows sealed: 0 when the run committed nothing here.
    pub async fn seal_run(
        &self,
        conn: &mut Connection,
        run_id: &str,
        final_hash: &str,
    ) -> Result<u64, DbError> {
        if !self.exists(conn).await? {
            return Ok(0);
        }
        self.shield(conn).await?;
        let dialect = driver_for(conn.dialect());
        let p = |i| dialect.placeholder(i);
        let keys = format!(
            "SELECT plugin_name, unit, {SCOPE_COLUMN}, plugin_sha256 FROM {} WHERE run_id = {}",
            self.table,
            p(1)
        );
        let rows = conn
            .query(&keys, &[Value::Text(run_id.to_owned())])
            .await?
            .rows;
        let update = format!(
            "UPDATE {} SET {FINAL_HASH_COLUMN} = {} WHERE plugin_name = {} AND unit = {} \
             AND {SCOPE_COLUMN} = {} AND plugin_sha256 = {} AND run_id = {}",
            self.table,
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        );
        let mut sealed = 0;
        for key in rows {
            let mut params = vec![Value::Text(final_hash.to_owned())];
            params.extend(key);
            params.push(Value::Text(run_id.to_owned()));
            sealed += conn.execute(&update, &params).await?;
        }
        Ok(sealed)
    }

    /// The final hash each row of run `run_id` on `conn` holds (unit as `unit@scope` when
    /// scoped, status, final hash),
    /// `None` for a row the run did not seal (it did not finish, or an older migrun ran it).
    pub async fn final_hashes(
        &self,
        conn: &mut Connection,
        run_id: &str,
    ) -> Result<Vec<(String, String, Option<String>)>, DbError> {
        if !self.exists(conn).await? || !self.has_final_hash_column(conn).await? {
            return Ok(Vec::new());
        }
        let scope = self.scope_expr(conn).await?;
        let dialect = driver_for(conn.dialect());
        let sql = format!(
            "SELECT unit, {scope}, status, {FINAL_HASH_COLUMN} FROM {} WHERE run_id = {} ORDER BY unit",
            self.table,
            dialect.placeholder(1)
        );
        let rows = conn.query(&sql, &[Value::Text(run_id.to_owned())]).await?;
        Ok(rows
            .rows
            .into_iter()
            .map(|row| {
                let mut it = row.into_iter().map(|v| match v {
                    Value::Text(s) => Some(s.trim_end().to_owned()),
                    Value::Bytes(b) => Some(String::from_utf8_lossy(&b).trim_end().to_owned()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                });
                let unit = it.next().flatten().unwrap_or_default();
                let scope = it.next().flatten();
                (
                    UnitKey::new(&unit, scope.as_deref()).to_string(),
                    it.next().flatten().unwrap_or_default(),
                    it.next().flatten(),
                )
            })
            .collect())
    }

    /// Whether the table has the checkpoint column (ledgers made before contract 0.1.1 do not).
    async fn has_state_column(&self, conn: &mut Connection) -> Result<bool, DbError> {
        self.catalog_says(conn, driver_for(conn.dialect()).ledger_state_column_sql())
            .await
    }

    /// The saved checkpoints of `plugin`'s unfinished units on `conn` (none when the table or
    /// its checkpoint column does not exist yet).
    pub async fn checkpoints(
        &self,
        conn: &mut Connection,
        plugin: &str,
    ) -> Result<Vec<CheckpointRow>, DbError> {
        if !self.exists(conn).await? || !self.has_state_column(conn).await? {
            return Ok(Vec::new());
        }
        let scope = self.scope_expr(conn).await?;
        let dialect = driver_for(conn.dialect());
        let p = |i| dialect.placeholder(i);
        let sql = format!(
            "SELECT unit, {scope}, plugin_sha256, {STATE_COLUMN}, run_id, finished_at FROM {} \
             WHERE plugin_name = {} AND status = {} ORDER BY unit",
            self.table,
            p(1),
            p(2)
        );
        let rows = conn
            .query(
                &sql,
                &[
                    Value::Text(plugin.to_owned()),
                    Value::Text(STATUS_CHECKPOINT.to_owned()),
                ],
            )
            .await?;
        Ok(rows
            .rows
            .into_iter()
            .map(|row| {
                let mut it = row.into_iter().map(|v| match v {
                    Value::Text(s) => s,
                    Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                });
                let unit = it.next().unwrap_or_default();
                let scope = it.next().filter(|s| !s.is_empty());
                CheckpointRow {
                    unit,
                    scope,
                    plugin_sha256: it.next().unwrap_or_default(),
                    state: it.next().unwrap_or_default(),
                    run_id: it.next().unwrap_or_default(),
                    saved_at: it.next().unwrap_or_default(),
                }
            })
            .collect())
    }

    /// The rows an unfinished unit's checkpoint row (saved by build `sha256`) says the unit
    /// has written so far on `conn`: a resumed unit's rows add to these, so the ledger keeps
    /// the unit's total rather than its last run's share.
    pub async fn checkpoint_rows_written(
        &self,
        conn: &mut Connection,
        plugin: &str,
        unit: &UnitKey,
        sha256: &str,
    ) -> Result<u64, DbError> {
        if !self.exists(conn).await? {
            return Ok(0);
        }
        let scope = self.scope_expr(conn).await?;
        let dialect = driver_for(conn.dialect());
        let p = |i| dialect.placeholder(i);
        let sql = format!(
            "SELECT rows_written FROM {} WHERE plugin_name = {} AND unit = {} AND {scope} = {} \
             AND plugin_sha256 = {} AND status = {}",
            self.table,
            p(1),
            p(2),
            p(3),
            p(4),
            p(5)
        );
        let rows = conn
            .query(
                &sql,
                &[
                    Value::Text(plugin.to_owned()),
                    Value::Text(unit.unit.clone()),
                    Value::Text(unit.scope_column().to_owned()),
                    Value::Text(sha256.to_owned()),
                    Value::Text(STATUS_CHECKPOINT.to_owned()),
                ],
            )
            .await?;
        Ok(match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Int(n)) => (*n).max(0) as u64,
            Some(other) => other.to_string().parse().unwrap_or(0),
            None => 0,
        })
    }

    /// Every finished unit of `plugin` on `conn` (none when the table does not exist).
    pub async fn finished(
        &self,
        conn: &mut Connection,
        plugin: &str,
    ) -> Result<Vec<LedgerRow>, DbError> {
        if !self.exists(conn).await? {
            return Ok(Vec::new());
        }
        let scope = self.scope_expr(conn).await?;
        let sql = format!(
            "SELECT {}, {scope} FROM {} WHERE plugin_name = {} AND status = '{STATUS_FINISHED}' ORDER BY finished_at, unit",
            COLUMNS.join(", "),
            self.table,
            placeholders(conn.dialect(), 1)
        );
        let rows = conn.query(&sql, &[Value::Text(plugin.to_owned())]).await?;
        Ok(rows.rows.into_iter().map(row_from_values).collect())
    }

    /// Every row, all plugins (for `migrun status`).
    pub async fn all(&self, conn: &mut Connection) -> Result<Option<Vec<LedgerRow>>, DbError> {
        if !self.exists(conn).await? {
            return Ok(None);
        }
        let scope = self.scope_expr(conn).await?;
        let sql = format!(
            "SELECT {}, {scope} FROM {} ORDER BY finished_at, unit",
            COLUMNS.join(", "),
            self.table
        );
        let rows = conn.query(&sql, &[]).await?;
        Ok(Some(rows.rows.into_iter().map(row_from_values).collect()))
    }

    /// Records `row` (with the checkpoint `state` when it is a checkpoint row), first deleting
    /// the unit's checkpoint rows saved by the builds in `replaces` (rows known to exist: a
    /// delete by the full primary key locks only that row on InnoDB, where a delete that
    /// finds nothing locks a gap and deadlocks concurrent workers' inserts). An always-run
    /// unit (`replace_finished`) also replaces its own `finished` row of this build, when
    /// the ledger holds one (looked up first, without locks, for the same reason). Call it
    /// inside the unit's transaction, before the commit, so the row and the work it seals
    /// commit together.
    pub async fn record(
        &self,
        conn: &mut Connection,
        row: &LedgerRow,
        state: Option<&str>,
        replaces: &[String],
        replace_finished: bool,
    ) -> Result<(), DbError> {
        let dialect = conn.dialect();
        let p = |i: usize| driver_for(dialect).placeholder(i);
        self.shield(conn).await?;
        let key = row.key();
        let by_key = format!(
            "FROM {} WHERE plugin_name = {} AND unit = {} AND {SCOPE_COLUMN} = {} AND plugin_sha256 = {} AND status = {}",
            self.table,
            p(1),
            p(2),
            p(3),
            p(4),
            p(5)
        );
        let key_params = |sha256: &str, status: &str| {
            vec![
                Value::Text(row.plugin_name.clone()),
                Value::Text(key.unit.clone()),
                Value::Text(key.scope_column().to_owned()),
                Value::Text(sha256.to_owned()),
                Value::Text(status.to_owned()),
            ]
        };
        let mut deletes: Vec<Vec<Value>> = replaces
            .iter()
            .map(|sha256| key_params(sha256, STATUS_CHECKPOINT))
            .collect();
        if replace_finished {
            let params = key_params(&row.plugin_sha256, STATUS_FINISHED);
            let found = conn
                .query(&format!("SELECT COUNT(*) {by_key}"), &params)
                .await?;
            if matches!(
                found.rows.first().and_then(|r| r.first()),
                Some(Value::Int(1..))
            ) {
                deletes.push(params);
            }
        }
        for params in deletes {
            conn.execute(&format!("DELETE {by_key}"), &params).await?;
        }
        let sql = format!(
            "INSERT INTO {} ({}, {STATE_COLUMN}, {SCOPE_COLUMN}) VALUES ({})",
            self.table,
            COLUMNS.join(", "),
            placeholders(dialect, COLUMNS.len() + 2)
        );
        let text = |s: &str| Value::Text(s.to_owned());
        let params = vec![
            text(&row.plugin_name),
            text(&row.unit),
            text(&row.plugin_sha256),
            text(&row.plugin_version),
            text(&row.run_id),
            text(&row.status),
            text(&row.started_at),
            text(&row.finished_at),
            Value::Int(row.rows_written),
            text(&row.journal_id),
            text(&row.journal_hash),
            row.override_reason.as_deref().map_or(Value::Null, text),
            state.map_or(Value::Null, text),
            text(key.scope_column()),
        ];
        let inserted = conn.execute(&sql, &params).await?;
        // Read back what the database now holds for this row: anything but exactly the
        // row written means something else writes this table.
        let check = format!(
            "SELECT {}, {STATE_COLUMN}, {SCOPE_COLUMN} FROM {} WHERE plugin_name = {} AND unit = {} \
             AND {SCOPE_COLUMN} = {} AND plugin_sha256 = {}",
            COLUMNS.join(", "),
            self.table,
            p(1),
            p(2),
            p(3),
            p(4)
        );
        let check_params = [
            params[0].clone(),
            params[1].clone(),
            text(key.scope_column()),
            params[2].clone(),
        ];
        let found = conn
            .query(&check, &check_params)
            .await?
            .rows
            .into_iter()
            .map(|r| r.iter().map(comparable).collect::<Vec<_>>())
            .collect::<Vec<_>>();
        let expected: Vec<String> = params.iter().map(comparable).collect();
        if inserted != 1 || found != [expected] {
            return Err(DbError::new(
                crate::DbErrorKind::Refused,
                format!(
                    "the ledger table `{}` did not keep the row for unit `{}` as written \
                     ({inserted} row(s) inserted, {} found): something else writes that table; \
                     the unit is not recorded",
                    self.table,
                    key,
                    found.len()
                ),
            ));
        }
        Ok(())
    }
}

/// The `CREATE TABLE` of a current ledger named `table` (`exists` is `"IF NOT EXISTS "` or `""`).
fn create_sql(table: &str, types: LedgerColumnTypes, exists: &str) -> String {
    let LedgerColumnTypes { key, text, state } = types;
    format!(
        "CREATE TABLE {exists}{table} (\
         plugin_name {key} NOT NULL, unit {key} NOT NULL, plugin_sha256 CHAR(64) NOT NULL, \
         plugin_version {text} NOT NULL, run_id {text} NOT NULL, status {text} NOT NULL, \
         started_at {text} NOT NULL, finished_at {text} NOT NULL, rows_written BIGINT NOT NULL, \
         journal_id {text} NOT NULL, journal_hash CHAR(64) NOT NULL, override_reason {text}, \
         {STATE_COLUMN} {state}, {FINAL_HASH_COLUMN} CHAR(64), \
         {SCOPE_COLUMN} {key} NOT NULL DEFAULT '', \
         PRIMARY KEY (plugin_name, unit, {SCOPE_COLUMN}, plugin_sha256))"
    )
}

/// A ledger value as text to compare what was written with what was read back
/// (MariaDB may hand text back as bytes; `CHAR` columns may come back padded).
fn comparable(value: &Value) -> String {
    match value {
        Value::Bytes(b) => String::from_utf8_lossy(b).trim_end().to_owned(),
        other => other.to_string().trim_end().to_owned(),
    }
}

fn row_from_values(values: Vec<Value>) -> LedgerRow {
    let mut it = values.into_iter();
    let mut text = || match it.next() {
        Some(Value::Text(s)) => s,
        Some(Value::Bytes(b)) => String::from_utf8_lossy(&b).into_owned(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let plugin_name = text();
    let unit = text();
    let plugin_sha256 = text();
    let plugin_version = text();
    let run_id = text();
    let status = text();
    let started_at = text();
    let finished_at = text();
    let rows_written = text().parse().unwrap_or(0);
    let journal_id = text();
    let journal_hash = text();
    let reason = text();
    let scope = text();
    LedgerRow {
        plugin_name,
        unit,
        scope: (!scope.is_empty()).then_some(scope),
        plugin_sha256,
        plugin_version,
        run_id,
        status,
        started_at,
        finished_at,
        rows_written,
        journal_id,
        journal_hash,
        override_reason: (!reason.is_empty()).then_some(reason),
    }
}

/// What the ledgers of every writable target say about one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitHistory {
    /// Not finished anywhere: run it.
    Pending,
    /// Finished on every writable target by this plugin build: skip it.
    Finished {
        /// The run that finished it (on the first target).
        run_id: String,
    },
    /// Finished by another build of the plugin.
    ChangedPlugin {
        /// The sha256 the ledger records.
        recorded_sha256: String,
    },
    /// Finished on some writable targets and not on others (a crash between two commits).
    Partial {
        /// Targets where it finished.
        finished_on: Vec<String>,
        /// Targets where it did not.
        missing_on: Vec<String>,
    },
}

/// Decides a unit's history from each target's finished rows (`target name → rows of this
/// plugin`): only rows of the same [`UnitKey`] count, so another scope is another unit.
pub fn history(
    unit: &UnitKey,
    sha256: &str,
    ledgers: &BTreeMap<String, Vec<LedgerRow>>,
) -> UnitHistory {
    if ledgers.is_empty() {
        return UnitHistory::Pending;
    }
    let mut finished_on = Vec::new();
    let mut missing_on = Vec::new();
    let mut same: Option<String> = None;
    let mut other: Option<String> = None;
    for (target, rows) in ledgers {
        let for_unit: Vec<&LedgerRow> = rows.iter().filter(|r| &r.key() == unit).collect();
        if for_unit.is_empty() {
            missing_on.push(target.clone());
            continue;
        }
        finished_on.push(target.clone());
        match for_unit.iter().find(|r| r.plugin_sha256 == sha256) {
            Some(row) => {
                same.get_or_insert_with(|| row.run_id.clone());
            }
            None => {
                other.get_or_insert_with(|| for_unit[for_unit.len() - 1].plugin_sha256.clone());
            }
        }
    }
    if finished_on.is_empty() {
        UnitHistory::Pending
    } else if !missing_on.is_empty() {
        UnitHistory::Partial {
            finished_on,
            missing_on,
        }
    } else if let Some(recorded_sha256) = other.filter(|_| same.is_none()) {
        UnitHistory::ChangedPlugin { recorded_sha256 }
    } else {
        UnitHistory::Finished {
            run_id: same.unwrap_or_default(),
        }
    }
}

/// Whether `unit` belongs to shard `index` of `count`: a stable hash of its name, so a
/// unit keeps its shard when other units appear or disappear (engines added between runs).
pub fn in_shard(unit: &str, index: u32, count: u32) -> bool {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(unit.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    n % u64::from(count) == u64::from(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(unit: &str, sha: &str) -> LedgerRow {
        LedgerRow {
            plugin_name: "p".into(),
            unit: unit.into(),
            scope: None,
            plugin_sha256: sha.into(),
            plugin_version: "1".into(),
            run_id: "r1".into(),
            status: "finished".into(),
            started_at: String::new(),
            finished_at: String::new(),
            rows_written: 0,
            journal_id: String::new(),
            journal_hash: String::new(),
            override_reason: None,
        }
    }

    #[test]
    fn history_decides_skip_refuse_and_partial() {
        let mut ledgers = BTreeMap::new();
        ledgers.insert("a".to_owned(), vec![row("u1", "s1"), row("u2", "s0")]);
        ledgers.insert("b".to_owned(), vec![row("u1", "s1")]);
        let key = |unit: &str| UnitKey::new(unit, None);
        assert_eq!(
            history(&key("u1"), "s1", &ledgers),
            UnitHistory::Finished {
                run_id: "r1".into()
            }
        );
        assert_eq!(history(&key("u3"), "s1", &ledgers), UnitHistory::Pending);
        assert_eq!(
            history(&key("u2"), "s1", &ledgers),
            UnitHistory::Partial {
                finished_on: vec!["a".into()],
                missing_on: vec!["b".into()]
            }
        );
        ledgers.get_mut("b").unwrap().push(row("u2", "s0"));
        assert_eq!(
            history(&key("u2"), "s1", &ledgers),
            UnitHistory::ChangedPlugin {
                recorded_sha256: "s0".into()
            }
        );
    }

    #[test]
    fn another_scope_is_another_unit_and_no_scope_is_the_old_rows() {
        let mut ledgers = BTreeMap::new();
        let scoped = LedgerRow {
            scope: Some("accounts.email".into()),
            ..row("rename", "s1")
        };
        ledgers.insert("a".to_owned(), vec![scoped, row("plain", "s1")]);
        let finished = UnitHistory::Finished {
            run_id: "r1".into(),
        };
        assert_eq!(
            history(
                &UnitKey::new("rename", Some("accounts.email")),
                "s1",
                &ledgers
            ),
            finished
        );
        assert_eq!(
            history(
                &UnitKey::new("rename", Some("accounts.name")),
                "s1",
                &ledgers
            ),
            UnitHistory::Pending
        );
        assert_eq!(
            history(&UnitKey::new("rename", None), "s1", &ledgers),
            UnitHistory::Pending
        );
        assert_eq!(
            history(&UnitKey::new("plain", Some("")), "s1", &ledgers),
            finished,
            "an empty scope is no scope"
        );
        assert_eq!(
            UnitKey::new("rename", Some("accounts.email")).to_string(),
            "rename@accounts.email"
        );
        assert_eq!(UnitKey::new("plain", None).to_string(), "plain");
    }

    #[test]
    fn shards_partition_units() {
        let units: Vec<String> = (0..300).map(|i| format!("engine-{i}")).collect();
        let mut seen = 0;
        for index in 0..3 {
            let mine = units.iter().filter(|u| in_shard(u, index, 3)).count();
            assert!(mine > 60, "shards are roughly balanced: {mine}");
            seen += mine;
        }
        assert_eq!(seen, 300, "every unit is in exactly one shard");
    }
}
