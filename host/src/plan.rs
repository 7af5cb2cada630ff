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
//! - `bulk-insert` adds its rows as inserts;
//! - a failed call changed nothing and adds nothing.
//!
//! Upserts (`INSERT … ON CONFLICT DO UPDATE`, `ON DUPLICATE KEY UPDATE`,
//! `REPLACE`, `INSERT OR REPLACE`) and `MERGE` report one total for rows
//! inserted, updated (and deleted): they count as `upserted`. MySQL counts a
//! row an upsert updated as 2, and an `UPDATE` counts only rows it changed.
//!
//! The JSON form is versioned (`"schema": "migrun.plan/1"`) and documented in
//! `docs/PLAN.md`; within a version fields are only ever added.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::db::privileges::PrivilegeWarning;
use crate::db::sql::{self, Token};
use crate::db::{Access, Dialect};
use crate::journal::{CallResult, HostCall};
use crate::lint::LockWarning;
use crate::observer::CheckResult;
use crate::printable::printable;

/// The schema identifier of the JSON plan.
pub const PLAN_SCHEMA: &str = "migrun.plan/1";

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
    /// Connections whose role holds privileges beyond its tables, found when the
    /// dry-run started (`db::privileges`): what a real run would be warned about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileges: Vec<PrivilegeWarning>,
    /// Totals.
    pub summary: Summary,
    /// Cursors over writes with `RETURNING`: their batches' rows are counted.
    #[serde(skip)]
    cursors: BTreeMap<u64, (String, String, WriteOp)>,
    /// Connections not in the plan (read-only), by name.
    #[serde(skip)]
    read_only: Vec<String>,
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
            privileges: Vec::new(),
            summary: Summary::default(),
            cursors: BTreeMap::new(),
            read_only: connections
                .iter()
                .filter(|(_, _, access)| *access == Access::ReadOnly)
                .map(|(name, _, _)| name.clone())
                .collect(),
        }
    }

    /// Records what a real run would back up through `connection`.
    pub fn set_backup(&mut self, connection: &str, backup: PlannedBackup) {
        if let Some(c) = self.connections.iter_mut().find(|c| c.name == connection) {
            c.backup = Some(backup);
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

    /// The plan as pretty JSON (`migrun.plan/1`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plans serialize")
    }

    /// The plan for a terminal: per connection the schema changes, a table of
    /// rows per table, warnings with their safer pattern and notes; then the
    /// checks with ✓/✗ and a one-line summary.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        match &self.plugin {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "Plan for {} {} (sha256 {}) — dry-run: nothing was changed",
                    p.name,
                    p.version,
                    p.sha256.get(..12).unwrap_or(&p.sha256)
                );
            }
            None => out.push_str("Plan — dry-run: nothing was changed\n"),
        }
        if let Some(failure) = &self.failure {
            let _ = writeln!(
                out,
                "INCOMPLETE: the dry-run stopped ({failure}); the plan shows what it did until then"
            );
        }
        if !self.read_only.is_empty() {
            let _ = writeln!(out, "read-only, not written: {}", self.read_only.join(", "));
        }
        for w in &self.privileges {
            let _ = writeln!(
                out,
                "⚠ privileged connection {} ({}): {}",
                w.connection, w.access, w.message
            );
        }
        for c in &self.connections {
            let _ = writeln!(out, "\n{} ({})", c.name, c.dialect);
            if c.ddl.is_empty() && c.tables.is_empty() {
                out.push_str("  no changes\n");
            }
            if !c.ddl.is_empty() {
                let _ = writeln!(out, "  schema changes ({})", c.ddl.len());
                let width = c.ddl.len().to_string().len();
                for (i, d) in c.ddl.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "    {:>width$}. {}",
                        i + 1,
                        printable(&one_line(&d.statement, 110))
                    );
                }
            }
            if !c.tables.is_empty() {
                out.push_str("  rows\n");
                render_rows(&mut out, &c.tables);
            }
            if !c.warnings.is_empty() {
                let _ = writeln!(out, "  ⚠ warnings ({})", c.warnings.len());
                render_warnings(&mut out, &c.warnings);
            }
            if let Some(b) = &c.backup {
                let tables: Vec<String> = b
                    .tables
                    .iter()
                    .map(|(t, rows)| match rows {
                        Some(n) => format!("{t} ({} rows)", thousands(*n)),
                        None => format!("{t} (does not exist yet)"),
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "  backup before the first write: {} → {}",
                    tables.join(", "),
                    b.dir
                );
                for (pattern, matched) in &b.patterns {
                    if matched.is_empty() {
                        let _ = writeln!(out, "    pattern {pattern}: matches no table yet");
                    } else {
                        let _ =
                            writeln!(out, "    pattern {pattern}: matches {}", matched.join(", "));
                    }
                }
            }
            for note in &c.notes {
                let _ = writeln!(out, "  note: {}", printable(note));
            }
        }
        if !self.checkpoints.is_empty() {
            out.push_str(
                "\ncheckpoints (a live run commits at each; a rerun resumes after the last)\n",
            );
            for (unit, n) in &self.checkpoints {
                let _ = writeln!(out, "  {}: {n}", printable(unit));
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\n⚠ warnings ({})", self.warnings.len());
            render_warnings(&mut out, &self.warnings);
        }
        let s = &self.summary;
        if !self.checks.is_empty() {
            let _ = writeln!(
                out,
                "\nchecks ({} passed, {} failed)",
                s.checks_passed, s.checks_failed
            );
            let width = self
                .checks
                .iter()
                .map(|c| printable(&c.name).chars().count())
                .max()
                .unwrap_or(0);
            for check in &self.checks {
                let mark = if check.ok { '✓' } else { '✗' };
                let unit = check
                    .unit
                    .as_deref()
                    .map(|u| format!("[{}] ", printable(u)))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {mark} {:<width$}  {unit}{}",
                    printable(&check.name),
                    printable(&one_line(&check.detail, 100))
                );
            }
        }
        let mut parts = vec![
            format!("{} schema change(s)", s.ddl_statements),
            format!(
                "{} row(s) inserted, {} updated, {} deleted",
                thousands(s.rows_inserted),
                thousands(s.rows_updated),
                thousands(s.rows_deleted)
            ),
        ];
        if s.rows_upserted > 0 {
            parts.push(format!("{} upserted", thousands(s.rows_upserted)));
        }
        if !self.checks.is_empty() {
            parts.push(if s.checks_failed == 0 {
                format!("all {} check(s) passed", s.checks_passed)
            } else {
                format!(
                    "{} of {} check(s) FAILED",
                    s.checks_failed,
                    s.checks_passed + s.checks_failed
                )
            });
        }
        parts.push(format!("{} warning(s)", s.warnings));
        let _ = writeln!(out, "\nsummary: {}", parts.join(" · "));
        out
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

fn render_rows(out: &mut String, tables: &[TableRows]) {
    let upserts = tables.iter().any(|t| t.upserted > 0);
    let uncounted = tables.iter().any(|t| t.uncounted_statements > 0);
    let mut header = vec!["table", "insert", "update", "delete"];
    if upserts {
        header.push("upsert");
    }
    if uncounted {
        header.push("uncounted stmts");
    }
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            let mut row = vec![
                printable(&t.table).into_owned(),
                thousands(t.inserted),
                thousands(t.updated),
                thousands(t.deleted),
            ];
            if upserts {
                row.push(thousands(t.upserted));
            }
            if uncounted {
                row.push(thousands(t.uncounted_statements));
            }
            row
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let mut s = String::from("   ");
        for (i, cell) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(s, " {cell:<w$}", w = widths[0]);
            } else {
                let _ = write!(s, "  {cell:>w$}", w = widths[i]);
            }
        }
        s.trim_end().to_owned()
    };
    let _ = writeln!(
        out,
        "{}",
        line(header.iter().map(|h| (*h).to_owned()).collect())
    );
    for row in rows {
        let _ = writeln!(out, "{}", line(row));
    }
}

fn render_warnings(out: &mut String, warnings: &[LockWarning]) {
    for w in warnings {
        let _ = writeln!(out, "    ⚠ {}", printable(&w.problem));
        let _ = writeln!(
            out,
            "      statement: {}",
            printable(&one_line(&w.statement, 100))
        );
        let _ = writeln!(out, "      safer: {}", printable(&w.safer));
    }
}

/// `s` on one line, whitespace collapsed, clipped to `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    } else {
        line
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------
// The statement classifier
// ---------------------------------------------------------------------------

/// How a write's affected-row count is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteOp {
    /// Rows inserted (`INSERT`, `INSERT … ON CONFLICT DO NOTHING`, `INSERT IGNORE`).
    Insert,
    /// Rows updated.
    Update,
    /// Rows deleted.
    Delete,
    /// One total for rows inserted, updated (and for `MERGE`, deleted):
    /// upserts, `REPLACE`, `MERGE`.
    Upsert,
}

/// What a statement does to data or schema, as [`classify`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The main statement's effect.
    pub effect: Effect,
    /// Tables written by data-modifying CTEs, whose rows the database does not count.
    pub side_writes: Vec<(WriteOp, String)>,
    /// Whether the statement returns the rows it writes (`RETURNING`).
    pub returning: bool,
}

/// The effect of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Writes rows of `table`; the affected count reads as `op`.
    Write {
        /// How the count reads.
        op: WriteOp,
        /// The table, as the statement names it (PostgreSQL: unquoted words folded to lowercase).
        table: String,
    },
    /// Changes the schema.
    Ddl(Ddl),
    /// Only reads.
    Read,
    /// Anything else: session settings, savepoints, procedure calls, …
    Other,
}

/// A schema change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ddl {
    /// `CREATE TABLE`, `CREATE INDEX`, `ALTER TABLE`, `DROP TABLE`, `TRUNCATE`, …
    pub action: String,
    /// The object created, altered or dropped.
    pub object: Option<String>,
    /// The table concerned: the table itself, or an index's or trigger's table.
    pub table: Option<String>,
    /// Whether it fills `table` with rows (`CREATE TABLE … AS SELECT`, `SELECT … INTO`).
    pub fills: bool,
}

/// Classifies the first statement of `text` (see the module docs): the
/// table written and how its affected count reads, or the schema change.
///
/// It reads tokens, not a grammar: enough for the statements migrations
/// send (`INSERT`/`UPDATE`/`DELETE`/`MERGE`/`REPLACE`, upserts, CTEs, the DDL
/// verbs), with quoted and schema-qualified names. For MySQL multi-table
/// `UPDATE`/`DELETE` the first table named is the one reported.
pub fn classify(dialect: Dialect, text: &str) -> Classified {
    let tokens = sql::tokens(text, dialect);
    let statements = sql::split_statements(&tokens);
    match statements.first() {
        Some(first) => classify_tokens(dialect, first),
        None => Classified {
            effect: Effect::Other,
            side_writes: Vec::new(),
            returning: false,
        },
    }
}

fn classify_tokens(d: Dialect, t: &[Token]) -> Classified {
    let mut i = 0;
    while t.get(i).is_some_and(|x| x.is_punct('(')) {
        i += 1;
    }
    let mut side_writes = Vec::new();
    if t.get(i).is_some_and(|x| x.is("WITH")) {
        i += 1;
        if t.get(i).is_some_and(|x| x.is("RECURSIVE")) {
            i += 1;
        }
        while let Some((_, after)) = sql::name_at(t, i, d) {
            i = sql::skip_group(t, after);
            if t.get(i).is_some_and(|x| x.is("AS")) {
                i += 1;
            }
            if t.get(i).is_some_and(|x| x.is("NOT")) {
                i += 1;
            }
            if t.get(i).is_some_and(|x| x.is("MATERIALIZED")) {
                i += 1;
            }
            let end = sql::skip_group(t, i);
            if end > i + 1 {
                let body = classify_tokens(d, &t[i + 1..end - 1]);
                side_writes.extend(body.side_writes);
                if let Effect::Write { op, table } = body.effect {
                    side_writes.push((op, table));
                }
            }
            i = end;
            if t.get(i).is_some_and(|x| x.is_punct(',')) {
                i += 1;
            } else {
                break;
            }
        }
    }
    let main = &t[i.min(t.len())..];
    let returning = sql::top_level(main).any(|j| main[j].is("RETURNING"));
    Classified {
        effect: effect(d, main),
        side_writes,
        returning,
    }
}

/// Skips the words in `skip` from `i`; returns the index of the first other token.
fn skip_words(t: &[Token], mut i: usize, skip: &[&str]) -> usize {
    while t.get(i).is_some_and(|x| skip.iter().any(|w| x.is(w))) {
        i += 1;
    }
    i
}

/// Whether the top level of `t` holds the words `seq` in a row.
fn has_sequence(t: &[Token], seq: &[&str]) -> bool {
    let top: Vec<usize> = sql::top_level(t).collect();
    top.windows(seq.len())
        .any(|w| w.iter().zip(seq).all(|(&j, word)| t[j].is(word)))
}

fn effect(d: Dialect, t: &[Token]) -> Effect {
    let Some(first) = t.first() else {
        return Effect::Other;
    };
    let write = |op: WriteOp, i: usize| match sql::name_at(t, i, d) {
        Some((table, _)) => Effect::Write { op, table },
        None => Effect::Other,
    };
    match first.upper().as_str() {
        "INSERT" => {
            let mut i = skip_words(
                t,
                1,
                &["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"],
            );
            let mut op = WriteOp::Insert;
            if t.get(i).is_some_and(|x| x.is("OR")) {
                if t.get(i + 1).is_some_and(|x| x.is("REPLACE")) {
                    op = WriteOp::Upsert;
                }
                i += 2;
            }
            i = skip_words(t, i, &["INTO"]);
            let upsert = has_sequence(t, &["ON", "DUPLICATE", "KEY", "UPDATE"])
                || (has_sequence(t, &["ON", "CONFLICT"]) && has_sequence(t, &["DO", "UPDATE"]));
            if upsert {
                op = WriteOp::Upsert;
            }
            write(op, i)
        }
        "REPLACE" => write(
            WriteOp::Upsert,
            skip_words(t, 1, &["LOW_PRIORITY", "DELAYED", "INTO"]),
        ),
        "UPDATE" => {
            let mut i = skip_words(t, 1, &["LOW_PRIORITY", "IGNORE", "ONLY"]);
            if t.get(i).is_some_and(|x| x.is("OR")) {
                i += 2;
            }
            write(WriteOp::Update, i)
        }
        "DELETE" => {
            let i = skip_words(t, 1, &["LOW_PRIORITY", "QUICK", "IGNORE", "FROM", "ONLY"]);
            write(WriteOp::Delete, i)
        }
        "MERGE" => write(WriteOp::Upsert, skip_words(t, 1, &["INTO", "ONLY"])),
        "SELECT" => select_into(d, t).map_or(Effect::Read, Effect::Ddl),
        "VALUES" | "TABLE" | "SHOW" | "EXPLAIN" | "DESCRIBE" | "DESC" => Effect::Read,
        "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "RENAME" | "COMMENT" | "REINDEX" | "CLUSTER"
        | "VACUUM" | "ANALYZE" | "OPTIMIZE" | "REPAIR" | "GRANT" | "REVOKE" | "REFRESH" => {
            Effect::Ddl(ddl(d, t))
        }
        _ => Effect::Other,
    }
}

/// PostgreSQL `SELECT … INTO new_table …`, which creates and fills a table.
fn select_into(d: Dialect, t: &[Token]) -> Option<Ddl> {
    if d != Dialect::Postgres {
        return None; // MySQL's SELECT … INTO assigns variables or writes files
    }
    let at = sql::top_level(t).find(|&j| t[j].is("INTO"))?;
    let i = skip_words(t, at + 1, &["TEMPORARY", "TEMP", "UNLOGGED", "TABLE"]);
    let (table, _) = sql::name_at(t, i, d)?;
    Some(Ddl {
        action: "CREATE TABLE".into(),
        object: Some(table.clone()),
        table: Some(table),
        fills: true,
    })
}

/// Words between a DDL verb and the kind of object.
const CREATE_MODIFIERS: &[&str] = &[
    "TEMP",
    "TEMPORARY",
    "UNLOGGED",
    "GLOBAL",
    "LOCAL",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "RECURSIVE",
    "ONLINE",
    "OFFLINE",
    "IGNORE",
    "CONSTRAINT",
    "AGGREGATE",
    "TRUSTED",
    "PROCEDURAL",
    "DEFAULT",
];

fn ddl(d: Dialect, t: &[Token]) -> Ddl {
    let verb = t[0].upper();
    let mut i = 1;
    if verb == "CREATE" && t.get(1).is_some_and(|x| x.is("OR")) {
        i = 3; // OR REPLACE
    }
    // MySQL's `CREATE ALGORITHM=… DEFINER=… SQL SECURITY … VIEW` and plain modifiers.
    loop {
        let before = i;
        i = skip_words(t, i, CREATE_MODIFIERS);
        if t.get(i)
            .is_some_and(|x| x.is("ALGORITHM") || x.is("DEFINER"))
            && t.get(i + 1).is_some_and(|x| x.is_punct('='))
        {
            i += 2;
            let mut end = t.get(i).map_or(0, |x| x.end);
            i += 1;
            while t.get(i).is_some_and(|x| x.start == end) {
                end = t[i].end;
                i += 1;
            }
        }
        if t.get(i).is_some_and(|x| x.is("SQL")) && t.get(i + 1).is_some_and(|x| x.is("SECURITY")) {
            i += 3;
        }
        if i == before {
            break;
        }
    }
    let object_kind = |i: usize| -> (String, usize) {
        let Some(word) = t.get(i).map(Token::upper).filter(|w| !w.is_empty()) else {
            return (String::new(), i);
        };
        match word.as_str() {
            "MATERIALIZED" | "FOREIGN" | "EVENT"
                if t.get(i + 1).is_some_and(|x| !x.upper().is_empty()) =>
            {
                (format!("{word} {}", t[i + 1].upper()), i + 2)
            }
            _ => (word, i + 1),
        }
    };
    let named = |i: usize| {
        let i = skip_words(t, i, &["CONCURRENTLY", "IF", "NOT", "EXISTS", "ONLY"]);
        sql::name_at(t, i, d)
    };
    match verb.as_str() {
        "CREATE" => {
            let (kind, i) = object_kind(i);
            let action = format!("CREATE {kind}");
            match kind.as_str() {
                "INDEX" => {
                    let i = skip_words(t, i, &["CONCURRENTLY", "IF", "NOT", "EXISTS"]);
                    let (object, i) = if t.get(i).is_some_and(|x| x.is("ON")) {
                        (None, i)
                    } else {
                        match sql::name_at(t, i, d) {
                            Some((name, j)) => (Some(name), j),
                            None => (None, i),
                        }
                    };
                    let on = (i..t.len()).find(|&j| t[j].is("ON"));
                    let table = on
                        .and_then(|j| sql::name_at(t, skip_words(t, j + 1, &["ONLY"]), d))
                        .map(|(n, _)| n);
                    Ddl {
                        action,
                        object,
                        table,
                        fills: false,
                    }
                }
                "TRIGGER" => {
                    let object = named(i).map(|(n, _)| n);
                    let table = sql::top_level(t)
                        .find(|&j| j > i && t[j].is("ON"))
                        .and_then(|j| sql::name_at(t, j + 1, d))
                        .map(|(n, _)| n);
                    Ddl {
                        action,
                        object,
                        table,
                        fills: false,
                    }
                }
                "TABLE" => {
                    let found = named(i);
                    let table = found.as_ref().map(|(n, _)| n.clone());
                    let after = found.map_or(i, |(_, j)| j);
                    let fills = sql::top_level(t).filter(|&j| j >= after).any(|j| {
                        t[j].is("SELECT")
                            || (t[j].is("AS")
                                && t.get(j + 1).is_some_and(|x| {
                                    x.is("SELECT")
                                        || x.is("WITH")
                                        || x.is("VALUES")
                                        || x.is("TABLE")
                                        || x.is_punct('(')
                                }))
                    });
                    Ddl {
                        action,
                        object: table.clone(),
                        table,
                        fills,
                    }
                }
                _ => Ddl {
                    action,
                    object: named(i).map(|(n, _)| n),
                    table: None,
                    fills: false,
                },
            }
        }
        "ALTER" | "DROP" => {
            let i = skip_words(t, i, &["ONLINE", "IGNORE"]);
            let (kind, i) = object_kind(i);
            let object = named(i).map(|(n, _)| n);
            let table = match kind.as_str() {
                "TABLE" => object.clone(),
                // MySQL: DROP INDEX name ON table
                "INDEX" => sql::top_level(t)
                    .find(|&j| j > i && t[j].is("ON"))
                    .and_then(|j| sql::name_at(t, j + 1, d))
                    .map(|(n, _)| n),
                _ => None,
            };
            Ddl {
                action: format!("{verb} {kind}").trim_end().to_owned(),
                object,
                table,
                fills: false,
            }
        }
        "TRUNCATE" | "RENAME" => {
            let i = skip_words(t, i, &["TABLE", "ONLY"]);
            let table = sql::name_at(t, i, d).map(|(n, _)| n);
            Ddl {
                action: if verb == "RENAME" {
                    "RENAME TABLE".into()
                } else {
                    verb
                },
                object: table.clone(),
                table,
                fills: false,
            }
        }
        _ => Ddl {
            action: verb,
            object: None,
            table: None,
            fills: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn write(d: Dialect, s: &str) -> (WriteOp, String) {
        match classify(d, s).effect {
            Effect::Write { op, table } => (op, table),
            other => panic!("{s}: {other:?}"),
        }
    }

    fn ddl_of(d: Dialect, s: &str) -> Ddl {
        match classify(d, s).effect {
            Effect::Ddl(ddl) => ddl,
            other => panic!("{s}: {other:?}"),
        }
    }

    use Dialect::{MySql, Postgres, Sqlite};
    use WriteOp::{Delete, Insert, Update, Upsert};

    #[test]
    fn dml_statements_name_their_table_and_count() {
        let cases: &[(Dialect, &str, WriteOp, &str)] = &[
            (
                Postgres,
                "INSERT INTO users (id) VALUES ($1)",
                Insert,
                "users",
            ),
            (
                Postgres,
                "insert into Public.Users select * from x",
                Insert,
                "public.users",
            ),
            (
                Postgres,
                r#"INSERT INTO "Auth"."Users" VALUES (1)"#,
                Insert,
                "Auth.Users",
            ),
            (
                Postgres,
                "INSERT INTO t VALUES (1) ON CONFLICT (id) DO NOTHING",
                Insert,
                "t",
            ),
            (
                Postgres,
                "INSERT INTO t AS x VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 2",
                Upsert,
                "t",
            ),
            (
                Postgres,
                "UPDATE ONLY accounts SET a = 1 WHERE id IN (SELECT id FROM b)",
                Update,
                "accounts",
            ),
            (Postgres, "DELETE FROM ONLY s.t WHERE x", Delete, "s.t"),
            (
                Postgres,
                "MERGE INTO target t USING src s ON t.id = s.id WHEN MATCHED THEN DELETE",
                Upsert,
                "target",
            ),
            (
                Postgres,
                "-- note\n/* c */ UPDATE t SET a = 'x;y' WHERE b = $1",
                Update,
                "t",
            ),
            (
                MySql,
                "INSERT IGNORE INTO `order items` (a) VALUES (?)",
                Insert,
                "order items",
            ),
            (
                MySql,
                "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = VALUES(a)",
                Upsert,
                "t",
            ),
            (MySql, "REPLACE INTO db.t VALUES (1)", Upsert, "db.t"),
            (MySql, "REPLACE t SET a = 1", Upsert, "t"),
            (MySql, "INSERT t SET a = 1", Insert, "t"),
            (
                MySql,
                "UPDATE LOW_PRIORITY a JOIN b ON a.id = b.id SET a.x = b.x",
                Update,
                "a",
            ),
            (MySql, "DELETE QUICK FROM Logs WHERE ts < ?", Delete, "Logs"),
            (
                MySql,
                "DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id",
                Delete,
                "t1",
            ),
            (
                Sqlite,
                "INSERT OR REPLACE INTO kv VALUES (?1, ?2)",
                Upsert,
                "kv",
            ),
            (
                Sqlite,
                "INSERT OR IGNORE INTO [my table] VALUES (1)",
                Insert,
                "my table",
            ),
            (Sqlite, "UPDATE OR ROLLBACK t SET a = 1", Update, "t"),
            (
                Sqlite,
                "INSERT INTO t VALUES (1) ON CONFLICT(id) DO UPDATE SET v = excluded.v",
                Upsert,
                "t",
            ),
            (Sqlite, "REPLACE INTO t VALUES (1)", Upsert, "t"),
        ];
        for (d, s, op, table) in cases {
            assert_eq!(write(*d, s), (*op, (*table).to_owned()), "{s}");
        }
    }

    #[test]
    fn ctes_classify_the_main_statement_and_keep_side_writes() {
        let c = classify(
            Postgres,
            "WITH src AS (SELECT * FROM users WHERE active) INSERT INTO auth_users SELECT * FROM src",
        );
        assert_eq!(
            c.effect,
            Effect::Write {
                op: Insert,
                table: "auth_users".into()
            }
        );
        assert!(c.side_writes.is_empty());
        let c = classify(
            Postgres,
            "WITH RECURSIVE moved(id) AS (DELETE FROM a WHERE x RETURNING id), b AS NOT MATERIALIZED (SELECT 1) \
             INSERT INTO archive SELECT id FROM moved RETURNING id",
        );
        assert_eq!(
            c.effect,
            Effect::Write {
                op: Insert,
                table: "archive".into()
            }
        );
        assert_eq!(c.side_writes, vec![(Delete, "a".to_owned())]);
        assert!(c.returning);
        let c = classify(
            Postgres,
            "WITH d AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM d",
        );
        assert_eq!(c.effect, Effect::Read);
        assert_eq!(c.side_writes, vec![(Update, "t".to_owned())]);
        assert!(!classify(Postgres, "SELECT 'RETURNING' FROM t").returning);
    }

    #[test]
    fn reads_and_others() {
        for s in [
            "SELECT * FROM t",
            "(SELECT 1) UNION (SELECT 2)",
            "VALUES (1)",
            "SHOW TABLES",
            "EXPLAIN SELECT 1",
        ] {
            assert_eq!(classify(MySql, s).effect, Effect::Read, "{s}");
        }
        for s in [
            "SET search_path = x",
            "SAVEPOINT a",
            "CALL p()",
            "",
            "  ;  ",
        ] {
            assert_eq!(classify(Postgres, s).effect, Effect::Other, "{s}");
        }
        // MySQL's SELECT … INTO assigns variables; PostgreSQL's creates a table.
        assert_eq!(
            classify(MySql, "SELECT a INTO @x FROM t").effect,
            Effect::Read
        );
        let d = ddl_of(Postgres, "SELECT * INTO TEMP copy FROM t");
        assert_eq!(
            (d.action.as_str(), d.table.as_deref(), d.fills),
            ("CREATE TABLE", Some("copy"), true)
        );
    }

    #[test]
    fn ddl_kinds_objects_and_tables() {
        type Case<'a> = (
            Dialect,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            bool,
        );
        let cases: &[Case] = &[
            (
                Postgres,
                "CREATE TABLE IF NOT EXISTS auth_users (id int)",
                "CREATE TABLE",
                Some("auth_users"),
                Some("auth_users"),
                false,
            ),
            (
                Postgres,
                "CREATE UNLOGGED TABLE s.t AS SELECT * FROM u",
                "CREATE TABLE",
                Some("s.t"),
                Some("s.t"),
                true,
            ),
            (
                MySql,
                "CREATE TABLE t2 SELECT * FROM t",
                "CREATE TABLE",
                Some("t2"),
                Some("t2"),
                true,
            ),
            (
                MySql,
                "CREATE TABLE t2 (LIKE t)",
                "CREATE TABLE",
                Some("t2"),
                Some("t2"),
                false,
            ),
            (
                Postgres,
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix ON ONLY public.Users (email)",
                "CREATE INDEX",
                Some("ix"),
                Some("public.users"),
                false,
            ),
            (
                Postgres,
                "CREATE INDEX ON t (a)",
                "CREATE INDEX",
                None,
                Some("t"),
                false,
            ),
            (
                MySql,
                "CREATE FULLTEXT INDEX ft ON `docs` (body)",
                "CREATE INDEX",
                Some("ft"),
                Some("docs"),
                false,
            ),
            (
                Postgres,
                "CREATE OR REPLACE VIEW v AS SELECT 1",
                "CREATE VIEW",
                Some("v"),
                None,
                false,
            ),
            (
                Postgres,
                "CREATE MATERIALIZED VIEW mv AS SELECT 1",
                "CREATE MATERIALIZED VIEW",
                Some("mv"),
                None,
                false,
            ),
            (
                MySql,
                "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1",
                "CREATE VIEW",
                Some("v"),
                None,
                false,
            ),
            (
                MySql,
                "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
                "CREATE TRIGGER",
                Some("tr"),
                Some("t"),
                false,
            ),
            (
                Postgres,
                "ALTER TABLE IF EXISTS ONLY \"Big\" ADD COLUMN c int",
                "ALTER TABLE",
                Some("Big"),
                Some("Big"),
                false,
            ),
            (
                MySql,
                "ALTER ONLINE TABLE t ADD INDEX (a)",
                "ALTER TABLE",
                Some("t"),
                Some("t"),
                false,
            ),
            (
                Postgres,
                "ALTER SEQUENCE s RESTART",
                "ALTER SEQUENCE",
                Some("s"),
                None,
                false,
            ),
            (
                Postgres,
                "DROP TABLE IF EXISTS a, b CASCADE",
                "DROP TABLE",
                Some("a"),
                Some("a"),
                false,
            ),
            (
                Postgres,
                "DROP INDEX CONCURRENTLY ix",
                "DROP INDEX",
                Some("ix"),
                None,
                false,
            ),
            (
                MySql,
                "DROP INDEX ix ON t",
                "DROP INDEX",
                Some("ix"),
                Some("t"),
                false,
            ),
            (
                Postgres,
                "TRUNCATE TABLE ONLY t RESTART IDENTITY",
                "TRUNCATE",
                Some("t"),
                Some("t"),
                false,
            ),
            (
                MySql,
                "RENAME TABLE a TO b",
                "RENAME TABLE",
                Some("a"),
                Some("a"),
                false,
            ),
            (
                Postgres,
                "COMMENT ON TABLE t IS 'x'",
                "COMMENT",
                None,
                None,
                false,
            ),
        ];
        for (d, s, action, object, table, fills) in cases {
            let got = ddl_of(*d, s);
            assert_eq!(
                (
                    got.action.as_str(),
                    got.object.as_deref(),
                    got.table.as_deref(),
                    got.fills
                ),
                (*action, *object, *table, *fills),
                "{s}"
            );
        }
    }

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
    fn text_and_json_forms() {
        let mut p = plan();
        p.set_plugin("auth-consolidation", "0.1.0", "0123456789abcdef0123");
        p.observe(
            &exec("CREATE UNIQUE INDEX users_email ON users (email)"),
            &CallResult::Count { n: 0 },
        );
        p.observe(
            &exec("INSERT INTO auth_users SELECT * FROM users"),
            &CallResult::Count { n: 1_234_567 },
        );
        p.observe(
            &exec("UPDATE users SET a = 1"),
            &CallResult::Count { n: 12 },
        );
        p.add_warning(warning("users"));
        p.add_note("target", "sequences restored after the rollback");
        p.add_checks(&[
            CheckResult {
                unit: None,
                name: "row counts match".into(),
                ok: true,
                detail: "1234567 = 1234567".into(),
            },
            CheckResult {
                unit: Some("copy".into()),
                name: "sample".into(),
                ok: false,
                detail: "3 rows differ".into(),
            },
        ]);
        let text = p.render_text();
        assert!(
            text.contains("Plan for auth-consolidation 0.1.0 (sha256 0123456789ab)"),
            "{text}"
        );
        assert!(
            text.contains("    1. CREATE UNIQUE INDEX users_email ON users (email)"),
            "{text}"
        );
        assert!(
            text.contains("    table          insert  update  delete"),
            "{text}"
        );
        assert!(
            text.contains("    auth_users  1,234,567       0       0"),
            "{text}"
        );
        assert!(
            text.contains("    users               0      12       0"),
            "{text}"
        );
        assert!(
            text.contains(
                "    ⚠ CREATE INDEX without CONCURRENTLY on users (1,204 rows): blocks writes"
            ),
            "{text}"
        );
        assert!(text.contains("safer: CREATE INDEX CONCURRENTLY"), "{text}");
        assert!(text.contains("✓ row counts match"), "{text}");
        assert!(
            text.contains("✗ sample            [copy] 3 rows differ"),
            "{text}"
        );
        assert!(text.contains("1 of 2 check(s) FAILED"), "{text}");
        assert!(text.contains("read-only, not written: source"), "{text}");

        let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(json["schema"], "migrun.plan/1");
        assert_eq!(json["connections"][0]["tables"][0]["inserted"], 1_234_567);
        assert_eq!(json["connections"][0]["ddl"][0]["action"], "CREATE INDEX");
        assert_eq!(json["summary"]["checks_failed"], 1);
        let back: Plan = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(back.summary, p.summary);

        p.set_failure(Some("unit `copy` failed".into()));
        assert!(
            p.render_text()
                .contains("INCOMPLETE: the dry-run stopped (unit `copy` failed)")
        );
        assert!(!p.complete);
    }

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
