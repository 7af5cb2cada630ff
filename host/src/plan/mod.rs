//! The plan of a dry-run: what a run would change, for a reviewer to sign off.
//!
//! A [`Plan`] is built while a dry-run happens, from the exact record of each
//! host call ([`Plan::observe`] with the journal's [`HostCall`] and
//! [`CallResult`]), the checks and the lint's warnings. For every writable
//! connection it holds the DDL statements in order, per table the rows the
//! run would insert, update and delete, warnings and notes; then the checks
//! with their ✓/✗. Read-only connections write nothing and do not appear.
//!
//! Row counts are the databases' own affected-row counts, attributed to a
//! table and an operation by [`classify`]ing the statement:
//!
//! - `execute` adds its count to the statement's table and operation; a
//!   `CREATE TABLE … AS SELECT` (or PostgreSQL `SELECT … INTO`) adds its rows
//!   as inserts into the new table;
//! - `query` and `open-cursor` add the rows they return when the statement
//!   writes with `RETURNING` (those rows are the written ones); without
//!   `RETURNING` the count is unknown and the statement is counted in
//!   `uncounted_statements`, as are writes made inside a data-modifying CTE
//!   (`WITH d AS (DELETE …) INSERT …`: only the main statement's count is
//!   reported by the database);
//! - `bulk-insert` adds its rows as inserts; `bulk-update`, `bulk-upsert` and `bulk-delete`
//!   (contract 0.2.0) add the rows they matched as `updated`, `upserted` and `deleted`;
//! - a failed call changed nothing and adds nothing.
//!
//! Upserts (`INSERT … ON CONFLICT DO UPDATE`, `ON DUPLICATE KEY UPDATE`,
//! `REPLACE`, `INSERT OR REPLACE`) and `MERGE` report one total for rows
//! inserted, updated (and deleted): they count as `upserted`. MySQL counts a
//! row an upsert updated as 2, and an `UPDATE` counts only rows it changed.
//!
//! Schema `/2` adds what makes a plan enforceable (`enforce`): what it was made for
//! (plugin, contract, configuration, databases, sandbox seeds) and, per unit, the digests
//! of the rows each segment of the unit wrote, which a `--plan` run compares before each
//! commit. Plans of schema `/1` are still read and rendered, never applied.
//!
//! The JSON form is versioned (`"schema": "migrun.plan/2"`) and documented in
//! `docs/PLAN.md`; within a version fields are only ever added.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capability::files::FileRead;
use crate::db::privileges::PrivilegeWarning;
use crate::db::{Access, Dialect};
use crate::journal::{CallResult, HostCall};
use crate::observer::CheckResult;
use crate::sql::lint::LockWarning;
use migrun_types::BulkWriteKind;

pub use crate::sql::classify::{Classified, Ddl, Effect, WriteOp, classify};
pub use crate::sql::thousands;

pub mod enforce;
pub use enforce::{
    DatabaseIdentity, GateState, PLAN_MISMATCH_EXIT_CODE, PlanConfigValue, PlanGate, PlanIdentity,
    PlanMismatch, PlanOutcome, PlanRecorder, PlanRefusal, PlannedSegment, PlannedUnit,
    TableDifference,
};

/// The schema identifier of the JSON plan.
pub const PLAN_SCHEMA: &str = "migrun.plan/2";

/// The schema of plans made before they could be enforced (read and rendered, never applied).
pub const PLAN_SCHEMA_V1: &str = "migrun.plan/1";

/// A secret configuration value as plans and journals show it.
pub const REDACTED: &str = "***redacted***";

/// What a run would change, built during its dry-run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_SCHEMA`].
    pub schema: String,
    /// The migrun that made it.
    pub migrun_version: String,
    /// The plugin, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PlanPlugin>,
    /// The contract version the plugin targets (`/2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// The configuration values the dry-run ran with, secrets redacted but hashed (`/2`).
    #[serde(default)]
    pub config: Vec<PlanConfigValue>,
    /// Every connection the plugin declared, read-only ones too: dialect, server and
    /// database, never a password (`/2`).
    #[serde(default)]
    pub databases: Vec<DatabaseIdentity>,
    /// The seeds of the sandbox's clock and randomness the dry-run ran with: a `--plan`
    /// run uses them too, so the plugin sees the same time and random numbers (`/2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<crate::runtime::sandbox::SandboxSeeds>,
    /// Whether the dry-run ran to its end; `false`: the plan stops where the run did.
    pub complete: bool,
    /// Why the dry-run stopped, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Every writable connection, in the plugin's order.
    pub connections: Vec<ConnectionPlan>,
    /// The checks, in the order they were reported.
    pub checks: Vec<PlanCheck>,
    /// Warnings not tied to one connection.
    pub warnings: Vec<LockWarning>,
    /// `checkpoint.save` calls per unit: where a live run would commit part of the unit
    /// (nothing was committed in the dry-run).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checkpoints: BTreeMap<String, u64>,
    /// Units declared non-transactional (contract 0.2.0), in run order: a live run runs each
    /// in autocommit, statement by statement; the dry-run planned them without running them,
    /// since nothing it rolls back could undo their statements (none of their writes,
    /// DDL or warnings are in this plan).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<String>,
    /// The granted files the dry-run read (contract 0.2.0 `files`), by name, with their size,
    /// sha256 and the bytes read: the operator data a real run would read (it reads them
    /// again, and its journal holds what it read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRead>,
    /// Connections whose role holds privileges beyond its tables, found when the
    /// dry-run started (`db::privileges`): what a real run would be warned about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileges: Vec<PrivilegeWarning>,
    /// Totals.
    pub summary: Summary,
    /// Per unit that ran, in order: its writes per segment, as digests (`/2`; see `enforce`).
    #[serde(default)]
    pub units: Vec<PlannedUnit>,
    /// Cursors over writes with `RETURNING`: their batches' rows are counted.
    #[serde(skip)]
    cursors: BTreeMap<u64, (String, String, WriteOp)>,
    /// Connections not in the plan (read-only), by name.
    #[serde(skip)]
    pub read_only: Vec<String>,
    /// What a real run would back up on read-only connections (`Need::backs_up`: tables
    /// it only reads, which an operator's rollback restores), by connection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub read_only_backups: BTreeMap<String, PlannedBackup>,
}

/// The plugin a plan is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanPlugin {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// sha256 of the component.
    pub sha256: String,
}

/// What a run would do through one writable connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionPlan {
    /// The connection's name.
    pub name: String,
    /// Its dialect.
    pub dialect: Dialect,
    /// Schema changes, in the order they ran.
    pub ddl: Vec<DdlStatement>,
    /// Rows written, per table, in the order tables were first written.
    pub tables: Vec<TableRows>,
    /// Locking or rewriting operations, with the safer pattern.
    pub warnings: Vec<LockWarning>,
    /// How the dry-run kept this database unchanged, and anything else worth knowing.
    pub notes: Vec<String>,
    /// What a real run would snapshot before its first write (the tables declared in `writes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<PlannedBackup>,
}

/// The snapshot a real run would take of one connection before writing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedBackup {
    /// The backup directory.
    pub dir: String,
    /// The tables with their current row counts (`None`: the table does not exist yet, so a
    /// restore would drop it). The tables a pattern matches now are among them.
    pub tables: Vec<(String, Option<u64>)>,
    /// Each declared pattern (`me_<slug>.memory`) with the tables it matches now (empty: it
    /// matches no table yet; the tables the run creates under it would be dropped by a restore).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<(String, Vec<String>)>,
}

/// One schema change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdlStatement {
    /// What it does: `CREATE TABLE`, `CREATE INDEX`, `ALTER TABLE`, `DROP TABLE`, `TRUNCATE`, …
    pub action: String,
    /// The object created, altered or dropped, when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The table it concerns (an index's or trigger's table), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The statement as the plugin sent it.
    pub statement: String,
}

/// Rows a run would write to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// The table, as the statements name it.
    pub table: String,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Rows inserted or updated (or, for `MERGE`, deleted) by statements that report one total.
    pub upserted: u64,
    /// Statements (and bulk inserts) that wrote the table.
    pub statements: u64,
    /// Of those, how many wrote rows the database did not count for them.
    pub uncounted_statements: u64,
}

/// A check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCheck {
    /// The unit that reported it; `None` for `verify`.
    pub unit: Option<String>,
    /// The check.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Detail.
    pub detail: String,
}

/// The plan's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// DDL statements on every connection.
    pub ddl_statements: u64,
    /// Rows inserted.
    pub rows_inserted: u64,
    /// Rows updated.
    pub rows_updated: u64,
    /// Rows deleted.
    pub rows_deleted: u64,
    /// Rows upserted.
    pub rows_upserted: u64,
    /// Checks passed.
    pub checks_passed: u64,
    /// Checks failed.
    pub checks_failed: u64,
    /// Warnings, connection ones included.
    pub warnings: u64,
}

impl Plan {
    /// An empty plan for a run over `connections` (name, dialect, access);
    /// read-only ones are left out.
    pub fn new(connections: &[(String, Dialect, Access)]) -> Plan {
        Plan {
            schema: PLAN_SCHEMA.to_owned(),
            migrun_version: crate::VERSION.to_owned(),
            plugin: None,
            contract: None,
            config: Vec::new(),
            databases: Vec::new(),
            seeds: None,
            complete: true,
            failure: None,
            connections: connections
                .iter()
                .filter(|(_, _, access)| *access == Access::ReadWrite)
                .map(|(name, dialect, _)| ConnectionPlan {
                    name: name.clone(),
                    dialect: *dialect,
                    ddl: Vec::new(),
                    tables: Vec::new(),
                    warnings: Vec::new(),
                    notes: Vec::new(),
                    backup: None,
                })
                .collect(),
            checks: Vec::new(),
            warnings: Vec::new(),
            checkpoints: BTreeMap::new(),
            not_run: Vec::new(),
            files: Vec::new(),
            privileges: Vec::new(),
            summary: Summary::default(),
            units: Vec::new(),
            cursors: BTreeMap::new(),
            read_only: connections
                .iter()
                .filter(|(_, _, access)| *access == Access::ReadOnly)
                .map(|(name, _, _)| name.clone())
                .collect(),
            read_only_backups: BTreeMap::new(),
        }
    }

    /// Records what a real run would back up through `connection`.
    pub fn set_backup(&mut self, connection: &str, backup: PlannedBackup) {
        if let Some(c) = self.connections.iter_mut().find(|c| c.name == connection) {
            c.backup = Some(backup);
        } else if self.read_only.iter().any(|c| c == connection) {
            self.read_only_backups.insert(connection.to_owned(), backup);
        }
    }

    /// Names the plugin the plan is for.
    pub fn set_plugin(&mut self, name: &str, version: &str, sha256: &str) {
        self.plugin = Some(PlanPlugin {
            name: name.to_owned(),
            version: version.to_owned(),
            sha256: sha256.to_owned(),
        });
    }

    /// Records what the plan is for (see [`PlanIdentity`]) and the seeds it ran with.
    pub fn set_identity(
        &mut self,
        identity: &PlanIdentity,
        seeds: crate::runtime::sandbox::SandboxSeeds,
    ) {
        self.contract = Some(identity.contract.clone());
        self.config = identity.config.clone();
        self.databases = identity.databases.clone();
        self.seeds = Some(seeds);
    }

    /// Marks the plan incomplete: the dry-run stopped for `failure`.
    pub fn set_failure(&mut self, failure: Option<String>) {
        self.complete = failure.is_none();
        self.failure = failure;
    }

    /// Takes one host call of the dry-run and its result into account (see the module docs).
    pub fn observe(&mut self, call: &HostCall, result: &CallResult) {
        match (call, result) {
            (HostCall::Execute { conn, sql, .. }, CallResult::Count { n }) => {
                self.statement(conn, sql, Some(*n), false);
            }
            (HostCall::Query { conn, sql, .. }, CallResult::Rows { rows, .. }) => {
                self.statement(conn, sql, Some(rows.len() as u64), true);
            }
            (HostCall::OpenCursor { conn, sql, .. }, CallResult::Cursor { cursor, .. }) => {
                if let Some((table, op)) = self.statement(conn, sql, None, true) {
                    self.cursors.insert(*cursor, (conn.clone(), table, op));
                }
            }
            (HostCall::NextBatch { cursor }, CallResult::Batch { rows }) => match rows {
                Some(rows) => {
                    if let Some((conn, table, op)) = self.cursors.get(cursor).cloned()
                        && let Some(entry) = self.table_mut(&conn, &table)
                    {
                        entry.add(op, rows.len() as u64);
                    }
                }
                None => {
                    self.cursors.remove(cursor);
                }
            },
            (HostCall::CloseCursor { cursor }, _) => {
                self.cursors.remove(cursor);
            }
            (HostCall::BulkInsert { conn, table, .. }, CallResult::Count { n }) => {
                if let Some(entry) = self.table_mut(conn, table) {
                    entry.statements += 1;
                    entry.inserted += n;
                }
            }
            (
                HostCall::BulkWrite {
                    conn, kind, table, ..
                },
                CallResult::Count { n },
            ) => {
                if let Some(entry) = self.table_mut(conn, table) {
                    entry.statements += 1;
                    entry.add(
                        match kind {
                            BulkWriteKind::Update => WriteOp::Update,
                            BulkWriteKind::Upsert => WriteOp::Upsert,
                            BulkWriteKind::Delete => WriteOp::Delete,
                        },
                        *n,
                    );
                }
            }
            _ => {}
        }
        self.refresh_summary();
    }

    /// Adds checks as they were reported.
    pub fn add_checks(&mut self, checks: &[CheckResult]) {
        self.checks.extend(checks.iter().map(|c| PlanCheck {
            unit: c.unit.clone(),
            name: c.name.clone(),
            ok: c.ok,
            detail: c.detail.clone(),
        }));
        self.refresh_summary();
    }

    /// Adds the warning about a connection's privileged role (once per connection).
    pub fn add_privilege_warning(&mut self, warning: PrivilegeWarning) {
        if !self
            .privileges
            .iter()
            .any(|w| w.connection == warning.connection)
        {
            self.privileges.push(warning);
        }
    }

    /// Records that the dry-run planned the non-transactional `unit` without running it.
    pub fn add_not_run(&mut self, unit: &str) {
        self.not_run.push(unit.to_owned());
    }

    /// Counts one `checkpoint.save` of `unit`.
    pub fn add_checkpoint(&mut self, unit: &str) {
        *self.checkpoints.entry(unit.to_owned()).or_default() += 1;
    }

    /// Adds a lint warning to its connection (to the plan when it names none
    /// or a connection not in the plan). Dropped when the same warning is
    /// there already, or when its table was created earlier in this plan:
    /// nobody else can be using a table the run itself creates, so locking it
    /// blocks no one (the count the lint saw is the run's own rows).
    pub fn add_warning(&mut self, warning: LockWarning) {
        let slot = warning
            .connection
            .as_deref()
            .and_then(|name| self.connections.iter_mut().find(|c| c.name == name));
        match slot {
            Some(connection) => {
                let created = connection.ddl.iter().any(|d| {
                    d.action == "CREATE TABLE"
                        && d.table
                            .as_deref()
                            .is_some_and(|t| same_name(connection.dialect, t, &warning.table))
                });
                if !created && !connection.warnings.contains(&warning) {
                    connection.warnings.push(warning);
                }
            }
            None => {
                if !self.warnings.contains(&warning) {
                    self.warnings.push(warning);
                }
            }
        }
        self.refresh_summary();
    }

    /// Adds a note to a writable connection (how the dry-run kept it
    /// unchanged, what could not be restored, …); a note for a connection not
    /// in the plan is dropped.
    pub fn add_note(&mut self, connection: &str, note: impl Into<String>) {
        if let Some(c) = self.connections.iter_mut().find(|c| c.name == connection) {
            c.notes.push(note.into());
        }
    }

    /// Whether every check passed.
    pub fn checks_passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The plan as pretty JSON (`migrun.plan/2`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plans serialize")
    }

    /// Records one statement; returns the table and operation of a write
    /// whose rows are returned (for a cursor to count).
    fn statement(
        &mut self,
        conn: &str,
        text: &str,
        count: Option<u64>,
        returns_rows: bool,
    ) -> Option<(String, WriteOp)> {
        let dialect = self.connections.iter().find(|c| c.name == conn)?.dialect;
        let classified = classify(dialect, text);
        for (_, table) in &classified.side_writes {
            if let Some(entry) = self.table_mut(conn, table) {
                entry.statements += 1;
                entry.uncounted_statements += 1;
            }
        }
        match classified.effect {
            Effect::Write { op, table } => {
                let entry = self.table_mut(conn, &table)?;
                entry.statements += 1;
                // A query's rows are the written ones only with RETURNING.
                let rows = if returns_rows && !classified.returning {
                    None
                } else {
                    count
                };
                match rows {
                    Some(n) => entry.add(op, n),
                    None if returns_rows && classified.returning => {
                        return Some((table, op));
                    }
                    None => entry.uncounted_statements += 1,
                }
                None
            }
            Effect::Ddl(ddl) => {
                let connection = self.connections.iter_mut().find(|c| c.name == conn)?;
                connection.ddl.push(DdlStatement {
                    action: ddl.action.clone(),
                    object: ddl.object.clone(),
                    table: ddl.table.clone(),
                    statement: text.trim().to_owned(),
                });
                if ddl.fills
                    && let Some(table) = &ddl.table
                    && let Some(entry) = self.table_mut(conn, table)
                {
                    entry.statements += 1;
                    match count {
                        Some(n) if !returns_rows => entry.inserted += n,
                        _ => entry.uncounted_statements += 1,
                    }
                }
                None
            }
            Effect::Read | Effect::Other => None,
        }
    }

    fn table_mut(&mut self, conn: &str, table: &str) -> Option<&mut TableRows> {
        let connection = self.connections.iter_mut().find(|c| c.name == conn)?;
        let dialect = connection.dialect;
        let index = match connection
            .tables
            .iter()
            .position(|t| same_name(dialect, &t.table, table))
        {
            Some(i) => i,
            None => {
                connection.tables.push(TableRows {
                    table: table.to_owned(),
                    ..TableRows::default()
                });
                connection.tables.len() - 1
            }
        };
        connection.tables.get_mut(index)
    }

    fn refresh_summary(&mut self) {
        let mut s = Summary::default();
        for c in &self.connections {
            s.ddl_statements += c.ddl.len() as u64;
            s.warnings += c.warnings.len() as u64;
            for t in &c.tables {
                s.rows_inserted += t.inserted;
                s.rows_updated += t.updated;
                s.rows_deleted += t.deleted;
                s.rows_upserted += t.upserted;
            }
        }
        s.warnings += self.warnings.len() as u64;
        s.checks_passed = self.checks.iter().filter(|c| c.ok).count() as u64;
        s.checks_failed = self.checks.len() as u64 - s.checks_passed;
        self.summary = s;
    }
}

impl TableRows {
    fn add(&mut self, op: WriteOp, n: u64) {
        match op {
            WriteOp::Insert => self.inserted += n,
            WriteOp::Update => self.updated += n,
            WriteOp::Delete => self.deleted += n,
            WriteOp::Upsert => self.upserted += n,
        }
    }
}

/// Whether two table names name the same table: exactly on PostgreSQL (names
/// are already folded), ignoring ASCII case elsewhere.
fn same_name(dialect: Dialect, a: &str, b: &str) -> bool {
    if dialect == Dialect::Postgres {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Dialect::Postgres;
    use crate::value::Value;

    fn plan() -> Plan {
        Plan::new(&[
            ("target".into(), Postgres, Access::ReadWrite),
            ("source".into(), Postgres, Access::ReadOnly),
        ])
    }

    fn exec(sql: &str) -> HostCall {
        HostCall::Execute {
            conn: "target".into(),
            sql: sql.into(),
            params: vec![],
        }
    }

    #[test]
    fn a_read_only_connections_backup_is_planned_apart() {
        let mut p = plan();
        let backup = |table: &str| PlannedBackup {
            dir: "migrun-backups".into(),
            tables: vec![(table.into(), Some(3))],
            patterns: vec![],
        };
        p.set_backup("target", backup("auth_users"));
        p.set_backup("source", backup("users"));
        p.set_backup("elsewhere", backup("ignored"));
        assert_eq!(p.connections[0].backup, Some(backup("auth_users")));
        assert_eq!(
            p.read_only_backups.into_iter().collect::<Vec<_>>(),
            [("source".to_owned(), backup("users"))]
        );
    }

    #[test]
    fn observed_calls_become_rows_per_table() {
        let mut p = plan();
        p.observe(
            &exec("CREATE TABLE auth_users (id int, email text)"),
            &CallResult::Count { n: 0 },
        );
        p.observe(
            &HostCall::BulkInsert {
                conn: "target".into(),
                table: "auth_users".into(),
                columns: vec!["id".into()],
                rows: vec![vec![Value::Int(1)]; 3],
            },
            &CallResult::Count { n: 3 },
        );
        p.observe(
            &exec("UPDATE users SET migrated = true"),
            &CallResult::Count { n: 7 },
        );
        p.observe(
            &exec("DELETE FROM users WHERE bad"),
            &CallResult::Count { n: 2 },
        );
        p.observe(
            &exec("INSERT INTO users VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 1"),
            &CallResult::Count { n: 4 },
        );
        // Failed calls and read-only connections change nothing.
        p.observe(
            &exec("DELETE FROM users"),
            &CallResult::Error {
                error_kind: "other".into(),
                code: None,
                message: "no".into(),
            },
        );
        p.observe(
            &HostCall::Execute {
                conn: "source".into(),
                sql: "DELETE FROM x".into(),
                params: vec![],
            },
            &CallResult::Count { n: 9 },
        );
        // A query with RETURNING counts its rows; without, it is uncounted.
        p.observe(
            &HostCall::Query {
                conn: "target".into(),
                sql: "INSERT INTO log VALUES (1), (2) RETURNING id".into(),
                params: vec![],
            },
            &CallResult::Rows {
                columns: vec![],
                rows: vec![vec![Value::Int(1)], vec![Value::Int(2)]],
            },
        );
        p.observe(
            &HostCall::Query {
                conn: "target".into(),
                sql: "UPDATE log SET a = 1".into(),
                params: vec![],
            },
            &CallResult::Rows {
                columns: vec![],
                rows: vec![],
            },
        );
        // A cursor over a write with RETURNING counts its batches.
        p.observe(
            &HostCall::OpenCursor {
                conn: "target".into(),
                sql: "DELETE FROM log RETURNING *".into(),
                params: vec![],
                batch_size: 10,
            },
            &CallResult::Cursor {
                cursor: 1,
                columns: vec![],
            },
        );
        p.observe(
            &HostCall::NextBatch { cursor: 1 },
            &CallResult::Batch {
                rows: Some(vec![vec![]; 5]),
            },
        );
        p.observe(
            &HostCall::NextBatch { cursor: 1 },
            &CallResult::Batch { rows: None },
        );
        p.observe(
            &HostCall::NextBatch { cursor: 1 },
            &CallResult::Batch {
                rows: Some(vec![vec![]; 5]),
            },
        );

        let c = &p.connections[0];
        assert_eq!(
            p.connections.len(),
            1,
            "read-only connections are not in the plan"
        );
        assert_eq!(c.ddl.len(), 1);
        assert_eq!(c.ddl[0].action, "CREATE TABLE");
        let rows = |t: &str| c.tables.iter().find(|r| r.table == t).cloned().unwrap();
        assert_eq!(rows("auth_users").inserted, 3);
        let users = rows("users");
        assert_eq!(
            (
                users.updated,
                users.deleted,
                users.upserted,
                users.statements
            ),
            (7, 2, 4, 3)
        );
        let log = rows("log");
        assert_eq!(
            (
                log.inserted,
                log.deleted,
                log.uncounted_statements,
                log.statements
            ),
            (2, 5, 1, 3)
        );
        assert_eq!(p.summary.rows_inserted, 5);
        assert_eq!(p.summary.ddl_statements, 1);
    }

    fn warning(table: &str) -> LockWarning {
        LockWarning {
            connection: Some("target".into()),
            rule: "pg-create-index-blocking".into(),
            table: table.into(),
            rows: 1204,
            statement: format!("CREATE INDEX ON {table} (a)"),
            problem: format!(
                "CREATE INDEX without CONCURRENTLY on {table} (1,204 rows): blocks writes"
            ),
            safer: "CREATE INDEX CONCURRENTLY".into(),
        }
    }

    #[test]
    fn warnings_on_tables_the_run_creates_are_dropped() {
        let mut p = plan();
        p.observe(
            &exec("CREATE TABLE fresh (a int)"),
            &CallResult::Count { n: 0 },
        );
        p.add_warning(warning("fresh"));
        p.add_warning(warning("users"));
        p.add_warning(warning("users"));
        assert_eq!(p.connections[0].warnings.len(), 1);
        assert_eq!(p.summary.warnings, 1);
        let mut orphan = warning("x");
        orphan.connection = None;
        p.add_warning(orphan);
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
