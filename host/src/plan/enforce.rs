//! Applying exactly an approved plan (`migrun plugin.wasm --plan plan.json`).
//!
//! A `migrun.plan/2` plan names what it was made for — the plugin build, the contract, the
//! configuration (secrets as sha256 only), each connection's identity, the seeds of the
//! sandbox's clock and randomness — and holds, per unit, the digests of every segment of
//! its writes ([`crate::session::written`]). A run given the plan:
//!
//! 1. is refused before anything runs when it is not for this build, configuration or
//!    these databases ([`PlanIdentity::refusal`], [`PlanRefusal`]);
//! 2. hands every segment of every unit (up to a checkpoint, or the unit's end) to a
//!    [`PlanGate`] before it commits; equal to the plan's → it commits; different → it is
//!    refused ([`PlanMismatch`]: per table the counts, then the first rows that differ),
//!    the unit is rolled back and the run stops (exit code [`PLAN_MISMATCH_EXIT_CODE`]).
//!
//! In a dry-run the [`PlanRecorder`] keeps each segment in the plan instead.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::db::{Access, Dialect};
use crate::ledger::UnitKey;
use crate::session::SegmentGate;
use crate::session::written::{TableWrites, WrittenRows};

use super::{PLAN_SCHEMA, Plan};

/// The exit code of a run refused by its plan: a stale plan (nothing ran), or a unit whose
/// writes differed from the plan's (it was rolled back; units before it stay committed).
pub const PLAN_MISMATCH_EXIT_CODE: i32 = 5;

/// How many differing rows a difference shows per table.
const ROWS_SHOWN: usize = 5;

/// sha256 of `text`, lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// One configuration value as a plan holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanConfigValue {
    /// The key.
    pub key: String,
    /// The value; `***redacted***` for a secret key.
    pub value: String,
    /// sha256 of the real value: a changed secret is noticed without being written down.
    pub sha256: String,
}

/// A database a plan was made against: never a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseIdentity {
    /// The connection's name.
    pub name: String,
    /// The access the plugin declared.
    pub access: Access,
    /// Its dialect.
    pub dialect: Dialect,
    /// `host:port` (default port filled in); empty for SQLite.
    pub server: String,
    /// The database name; for SQLite the file's absolute path.
    pub database: String,
}

impl DatabaseIdentity {
    /// The identity of `url` (with `sqlite_file`, the file a SQLite URL names).
    pub fn of(
        name: &str,
        access: Access,
        url: &str,
        sqlite_file: Option<&Path>,
    ) -> DatabaseIdentity {
        let dialect = crate::db::Connection::dialect_of_url(url).unwrap_or(Dialect::Sqlite);
        let (server, database) = match dialect {
            Dialect::Sqlite => {
                let file = sqlite_file
                    .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.to_owned()))
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| ":memory:".to_owned());
                (String::new(), file)
            }
            Dialect::Postgres | Dialect::MySql => match url::Url::parse(url) {
                Ok(parsed) => {
                    let port = parsed.port().unwrap_or(if dialect == Dialect::Postgres {
                        5432
                    } else {
                        3306
                    });
                    let host = parsed.host_str().unwrap_or("localhost");
                    (
                        format!("{host}:{port}"),
                        parsed.path().trim_start_matches('/').to_owned(),
                    )
                }
                Err(_) => (String::new(), String::new()),
            },
        };
        DatabaseIdentity {
            name: name.to_owned(),
            access,
            dialect,
            server,
            database,
        }
    }
}

/// What a plan was made for, and what a run given it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanIdentity {
    /// sha256 of the plugin component.
    pub plugin_sha256: String,
    /// The contract version it targets.
    pub contract: String,
    /// The configuration values (secrets redacted, hashed).
    pub config: Vec<PlanConfigValue>,
    /// Every declared connection's identity.
    pub databases: Vec<DatabaseIdentity>,
}

/// Why a plan is refused before anything runs: it was made for something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanRefusal {
    /// The plan could not be read.
    #[error("the plan {file}: {problem}")]
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        problem: String,
    },
    /// A plan of schema `/1` holds no per-unit writes to compare.
    #[error(
        "the plan is {schema}, which holds no per-unit writes to compare; make a new plan with this migrun (--dry-run --plan-out)"
    )]
    OldSchema {
        /// The schema it has.
        schema: String,
    },
    /// The dry-run that made the plan did not finish.
    #[error("the plan is incomplete (its dry-run stopped: {failure}); make a new one")]
    Incomplete {
        /// Why the dry-run stopped.
        failure: String,
    },
    /// `--jobs` above 1: the segments of units running at once are not compared.
    #[error("--plan runs one unit at a time: leave out --jobs")]
    Jobs,
    /// It was made for another plugin build, configuration or database.
    #[error(
        "the plan was made for another {}: {}; nothing ran (make a new plan for this one, or run with the plan's)",
        what(.differences), .differences.join("; ")
    )]
    Stale {
        /// Each difference, for people.
        differences: Vec<String>,
    },
}

fn what(differences: &[String]) -> &'static str {
    let any = |p: &str| differences.iter().any(|d| d.starts_with(p));
    match (
        any("plugin") || any("contract"),
        any("config"),
        any("connection"),
    ) {
        (true, false, false) => "plugin build",
        (false, true, false) => "configuration",
        (false, false, true) => "database",
        _ => "plugin build, configuration or database",
    }
}

impl PlanIdentity {
    /// Reads `file` as a plan this run can apply (schema `/2`, complete).
    pub fn read_plan(file: &Path) -> Result<Plan, PlanRefusal> {
        let unreadable = |problem: String| PlanRefusal::Unreadable {
            file: file.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(file).map_err(|e| unreadable(e.to_string()))?;
        let plan: Plan = serde_json::from_str(&text)
            .map_err(|e| unreadable(format!("not a migrun plan: {e}")))?;
        if plan.schema != PLAN_SCHEMA {
            return Err(PlanRefusal::OldSchema {
                schema: plan.schema,
            });
        }
        if !plan.complete {
            return Err(PlanRefusal::Incomplete {
                failure: plan.failure.unwrap_or_default(),
            });
        }
        Ok(plan)
    }

    /// Why `plan` is not for this identity, naming every difference; `None`: it is.
    pub fn refusal(&self, plan: &Plan) -> Option<PlanRefusal> {
        let mut differences = Vec::new();
        let planned_sha = plan.plugin.as_ref().map_or("", |p| p.sha256.as_str());
        if planned_sha != self.plugin_sha256 {
            differences.push(format!(
                "plugin sha256 {} in the plan, {} given",
                short(planned_sha),
                short(&self.plugin_sha256)
            ));
        }
        let contract = plan.contract.as_deref().unwrap_or("");
        if contract != self.contract {
            differences.push(format!(
                "contract {contract} in the plan, {} given",
                self.contract
            ));
        }
        let planned: BTreeMap<&str, &PlanConfigValue> =
            plan.config.iter().map(|c| (c.key.as_str(), c)).collect();
        let now: BTreeMap<&str, &PlanConfigValue> =
            self.config.iter().map(|c| (c.key.as_str(), c)).collect();
        for (key, value) in &now {
            match planned.get(key) {
                None => differences.push(format!("config `{key}` is set now, not in the plan")),
                Some(p) if p.sha256 != value.sha256 => differences.push(format!(
                    "config `{key}` is {} in the plan, {} now",
                    shown_value(p),
                    shown_value(value)
                )),
                Some(_) => {}
            }
        }
        for key in planned.keys().filter(|k| !now.contains_key(*k)) {
            differences.push(format!("config `{key}` is in the plan, not set now"));
        }
        for db in &self.databases {
            match plan.databases.iter().find(|p| p.name == db.name) {
                None => differences.push(format!("connection `{}` is not in the plan", db.name)),
                Some(p) if p != db => differences.push(format!(
                    "connection `{}` is {} in the plan, {} now",
                    db.name,
                    describe(p),
                    describe(db)
                )),
                Some(_) => {}
            }
        }
        for p in &plan.databases {
            if !self.databases.iter().any(|d| d.name == p.name) {
                differences.push(format!("connection `{}` is in the plan, not now", p.name));
            }
        }
        (!differences.is_empty()).then_some(PlanRefusal::Stale { differences })
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn shown_value(v: &PlanConfigValue) -> String {
    if v.value == super::REDACTED {
        format!("a secret with sha256 {}", short(&v.sha256))
    } else {
        format!("{:?}", v.value)
    }
}

fn describe(db: &DatabaseIdentity) -> String {
    let dialect = db.dialect.as_str();
    if db.server.is_empty() {
        format!("{dialect} {} ({})", db.database, db.access.as_str())
    } else {
        format!(
            "{dialect} database `{}` on {} ({})",
            db.database,
            db.server,
            db.access.as_str()
        )
    }
}

/// One unit's writes in a plan: a segment per checkpoint, and the last up to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedUnit {
    /// The unit.
    pub unit: String,
    /// Its scope (contract 0.2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// sha256 of the checkpoint state the dry-run resumed the unit from, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    /// The segments, in order.
    pub segments: Vec<PlannedSegment>,
}

/// The writes of a unit up to one of its checkpoints, or its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedSegment {
    /// sha256 of the state the checkpoint saved; `None`: the segment ends with the unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// What it wrote.
    #[serde(flatten)]
    pub writes: WrittenRows,
}

/// The dry-run's [`SegmentGate`]: every segment goes into the plan.
pub struct PlanRecorder {
    plan: Arc<Mutex<Plan>>,
}

impl PlanRecorder {
    /// Records into `plan`.
    pub fn new(plan: Arc<Mutex<Plan>>) -> Self {
        PlanRecorder { plan }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SegmentGate for PlanRecorder {
    fn unit_started(&mut self, unit: &UnitKey, resumed_from: Option<&str>) {
        lock(&self.plan).units.push(PlannedUnit {
            unit: unit.unit.clone(),
            scope: unit.scope.clone(),
            resumed_from: resumed_from.map(sha256_hex),
            segments: Vec::new(),
        });
    }

    fn segment_ended(
        &mut self,
        unit: &UnitKey,
        checkpoint: Option<&str>,
        mut writes: WrittenRows,
    ) -> Result<(), String> {
        // A plan keeps hashes, not the rows' text.
        for t in &mut writes.tables {
            t.row_texts.clear();
        }
        let mut plan = lock(&self.plan);
        if let Some(planned) = plan
            .units
            .iter_mut()
            .rev()
            .find(|u| u.unit == unit.unit && u.scope == unit.scope)
        {
            planned.segments.push(PlannedSegment {
                checkpoint: checkpoint.map(sha256_hex),
                writes,
            });
        }
        Ok(())
    }
}

/// How a unit of a `--plan` run compared with the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanOutcome {
    /// Every segment equalled the plan's: it committed.
    AsPlanned,
    /// A segment differed: it was refused and rolled back (segments before it, up to a
    /// checkpoint, stay committed).
    Differs,
    /// Declared non-transactional: the dry-run did not run it, so there was nothing to
    /// compare (the plan lists it under `not_run`).
    NotCompared,
}

/// A unit whose writes differ from the plan's: "the data changed since the plan was made".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanMismatch {
    /// The unit.
    pub unit: String,
    /// Which segment: 0 is the unit's start (up to its first checkpoint or its end).
    pub segment: usize,
    /// Why beyond the tables, when the unit cannot be compared at all (not in the plan,
    /// more checkpoints than planned, another checkpoint state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The tables that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableDifference>,
    /// The DDL, when it differs: planned, then now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddl: Option<(Vec<String>, Vec<String>)>,
}

/// One table (path, operation) whose writes differ from the plan's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDifference {
    /// The connection.
    pub connection: String,
    /// The table.
    pub table: String,
    /// `bulk` or `statement`.
    pub via: String,
    /// `insert`, `update`, `delete`, `upsert`, `uncounted`.
    pub op: String,
    /// Rows the plan has.
    pub planned_rows: u64,
    /// Rows written now.
    pub rows: u64,
    /// Calls the plan has.
    pub planned_calls: u64,
    /// Calls now.
    pub calls: u64,
    /// The first rows (as text) written now that the plan does not have.
    pub not_in_plan: Vec<String>,
    /// How many rows written now the plan does not have (when known).
    pub not_in_plan_count: Option<u64>,
    /// How many planned rows were not written now (when known), and the first ones' hashes.
    pub not_written_count: Option<u64>,
    /// The hashes (first 16 hex digits) of the first planned rows not written now.
    pub not_written: Vec<String>,
}

impl std::error::Error for PlanMismatch {}

impl fmt::Display for PlanMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unit `{}`: the data changed since the plan was made",
            self.unit
        )?;
        if self.segment > 0 {
            write!(f, " (after its checkpoint {})", self.segment)?;
        }
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        for t in &self.tables {
            write!(
                f,
                "; {}.{} ({} {}): {} row(s) in {} call(s) planned, {} in {} now",
                t.connection,
                t.table,
                t.via,
                t.op,
                t.planned_rows,
                t.planned_calls,
                t.rows,
                t.calls
            )?;
            if !t.not_in_plan.is_empty() {
                write!(
                    f,
                    "; written now, not in the plan: {}",
                    t.not_in_plan.join(" | ")
                )?;
                if let Some(n) = t.not_in_plan_count
                    && n as usize > t.not_in_plan.len()
                {
                    write!(f, " and {} more", n as usize - t.not_in_plan.len())?;
                }
            }
            if let Some(n) = t.not_written_count
                && n > 0
            {
                write!(
                    f,
                    "; {n} planned row(s) not written now (row sha256 {}{})",
                    t.not_written.join(", "),
                    if n as usize > t.not_written.len() {
                        ", …"
                    } else {
                        ""
                    }
                )?;
            }
        }
        if let Some((planned, now)) = &self.ddl {
            write!(
                f,
                "; schema changes planned: [{}], now: [{}]",
                planned.join("; "),
                now.join("; ")
            )?;
        }
        Ok(())
    }
}

/// Compares one segment with the plan's.
pub fn compare_segment(
    unit: &str,
    segment: usize,
    planned: &WrittenRows,
    now: &WrittenRows,
) -> Option<PlanMismatch> {
    type Key<'a> = (&'a str, &'a str, &'a str, &'a str);
    fn key(t: &TableWrites) -> Key<'_> {
        (&t.connection, &t.table, &t.via, &t.op)
    }
    let planned_by: BTreeMap<Key<'_>, &TableWrites> =
        planned.tables.iter().map(|t| (key(t), t)).collect();
    let now_by: BTreeMap<Key<'_>, &TableWrites> = now.tables.iter().map(|t| (key(t), t)).collect();
    let mut keys: Vec<Key<'_>> = planned_by.keys().chain(now_by.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    let mut tables = Vec::new();
    for k in keys {
        let p = planned_by.get(&k).copied();
        let n = now_by.get(&k).copied();
        let same = match (p, n) {
            (Some(p), Some(n)) => p.rows == n.rows && p.calls == n.calls && p.digest == n.digest,
            _ => false,
        };
        if same {
            continue;
        }
        tables.push(table_difference(k, p, n));
    }
    let planned_ddl: Vec<String> = planned.ddl.iter().map(ddl_text).collect();
    let now_ddl: Vec<String> = now.ddl.iter().map(ddl_text).collect();
    let ddl = (planned_ddl != now_ddl).then_some((planned_ddl, now_ddl));
    (!tables.is_empty() || ddl.is_some()).then(|| PlanMismatch {
        unit: unit.to_owned(),
        segment,
        reason: None,
        tables,
        ddl,
    })
}

fn ddl_text(d: &crate::session::written::DdlWritten) -> String {
    format!("{}: {}", d.connection, d.statement)
}

fn table_difference(
    (connection, table, via, op): (&str, &str, &str, &str),
    planned: Option<&TableWrites>,
    now: Option<&TableWrites>,
) -> TableDifference {
    let planned_hashes = planned.and_then(|p| p.row_hashes.as_ref());
    let now_hashes = now.and_then(|n| n.row_hashes.as_ref());
    let empty = Vec::new();
    // Rows now that the plan does not have: known when the plan kept its hashes (or has none).
    let (not_in_plan, not_in_plan_count) = match (planned.map(|_| planned_hashes), now) {
        (Some(None), _) | (_, None) => (Vec::new(), None),
        (planned, Some(now)) => {
            let planned = planned.flatten().unwrap_or(&empty);
            let mut missing: Vec<&String> = now
                .row_texts
                .keys()
                .filter(|h| planned.binary_search(h).is_err())
                .collect();
            missing.sort();
            let shown = missing
                .iter()
                .take(ROWS_SHOWN)
                .map(|h| now.row_texts[*h].clone())
                .collect();
            let count = now_hashes.map(|_| missing.len() as u64);
            (shown, count)
        }
    };
    let (not_written, not_written_count) = match (planned_hashes, now.map(|n| &n.row_hashes)) {
        (Some(planned), None) => (
            planned.iter().take(ROWS_SHOWN).cloned().collect(),
            Some(planned.len() as u64),
        ),
        (Some(planned), Some(Some(now))) => {
            let gone: Vec<&String> = planned
                .iter()
                .filter(|h| now.binary_search(h).is_err())
                .collect();
            (
                gone.iter().take(ROWS_SHOWN).map(|h| (*h).clone()).collect(),
                Some(gone.len() as u64),
            )
        }
        _ => (Vec::new(), None),
    };
    TableDifference {
        connection: connection.to_owned(),
        table: table.to_owned(),
        via: via.to_owned(),
        op: op.to_owned(),
        planned_rows: planned.map_or(0, |p| p.rows),
        rows: now.map_or(0, |n| n.rows),
        planned_calls: planned.map_or(0, |p| p.calls),
        calls: now.map_or(0, |n| n.calls),
        not_in_plan,
        not_in_plan_count,
        not_written_count,
        not_written,
    }
}

/// What a `--plan` run's gate found, shared with the runner.
#[derive(Debug, Default)]
pub struct GateState {
    /// The current unit's outcome so far.
    pub outcome: Option<PlanOutcome>,
    /// The difference that refused a segment, until the runner takes it.
    pub mismatch: Option<PlanMismatch>,
}

/// A `--plan` run's [`SegmentGate`]: each segment must equal the plan's.
pub struct PlanGate {
    plan: Arc<Plan>,
    state: Arc<Mutex<GateState>>,
    /// The unit running, its planned writes (if any) and the next segment's index.
    current: Option<(String, Option<usize>, Result<usize, String>)>,
}

impl PlanGate {
    /// Compares with `plan`, reporting into `state`.
    pub fn new(plan: Arc<Plan>, state: Arc<Mutex<GateState>>) -> Self {
        PlanGate {
            plan,
            state,
            current: None,
        }
    }
}

impl SegmentGate for PlanGate {
    fn unit_started(&mut self, unit: &UnitKey, resumed_from: Option<&str>) {
        let found = self
            .plan
            .units
            .iter()
            .position(|u| u.unit == unit.unit && u.scope == unit.scope);
        let next = match (found, resumed_from) {
            (None, _) => Ok(0),
            (Some(_), None) => Ok(0),
            (Some(i), Some(state)) => {
                let hash = sha256_hex(state);
                let planned = &self.plan.units[i];
                if planned.resumed_from.as_deref() == Some(hash.as_str()) {
                    Ok(0)
                } else {
                    planned
                        .segments
                        .iter()
                        .position(|s| s.checkpoint.as_deref() == Some(hash.as_str()))
                        .map(|p| p + 1)
                        .ok_or_else(|| {
                            "it resumes from a checkpoint the plan does not have".to_owned()
                        })
                }
            }
        };
        let not_compared = found.is_none() && self.plan.not_run.contains(&unit.unit);
        lock(&self.state).outcome = Some(if not_compared {
            PlanOutcome::NotCompared
        } else {
            PlanOutcome::AsPlanned
        });
        self.current = Some((unit.to_string(), found, next));
    }

    fn segment_ended(
        &mut self,
        unit: &UnitKey,
        checkpoint: Option<&str>,
        writes: WrittenRows,
    ) -> Result<(), String> {
        let Some((name, found, next)) = &mut self.current else {
            return Ok(());
        };
        let mut state = lock(&self.state);
        if state.outcome == Some(PlanOutcome::NotCompared) {
            return Ok(());
        }
        let refuse = |state: &mut GateState, mismatch: PlanMismatch| {
            let message = mismatch.to_string();
            state.outcome = Some(PlanOutcome::Differs);
            state.mismatch = Some(mismatch);
            Err(message)
        };
        let index = match next {
            Ok(i) => *i,
            Err(reason) => {
                let reason = reason.clone();
                return refuse(
                    &mut state,
                    PlanMismatch {
                        unit: name.clone(),
                        segment: 0,
                        reason: Some(reason),
                        tables: Vec::new(),
                        ddl: None,
                    },
                );
            }
        };
        let planned = match found {
            Some(i) => self.plan.units[*i].segments.get(index),
            None if writes.is_empty() => {
                *next = Ok(index + 1);
                return Ok(());
            }
            None => {
                return refuse(
                    &mut state,
                    PlanMismatch {
                        unit: name.clone(),
                        segment: index,
                        reason: Some(format!(
                            "unit `{unit}` is not in the plan (it did not run in its dry-run)"
                        )),
                        tables: Vec::new(),
                        ddl: None,
                    },
                );
            }
        };
        let Some(planned) = planned else {
            return refuse(
                &mut state,
                PlanMismatch {
                    unit: name.clone(),
                    segment: index,
                    reason: Some(format!(
                        "the plan has {index} segment(s) of it, and it writes more (more checkpoints than planned)"
                    )),
                    tables: Vec::new(),
                    ddl: None,
                },
            );
        };
        let now_checkpoint = checkpoint.map(sha256_hex);
        let mut mismatch = compare_segment(name, index, &planned.writes, &writes);
        if planned.checkpoint != now_checkpoint {
            let reason = match (&planned.checkpoint, &now_checkpoint) {
                (Some(_), None) => "the plan has a checkpoint here; now the unit ended".to_owned(),
                (None, Some(_)) => {
                    "the plan has the unit's end here; now it saves a checkpoint".to_owned()
                }
                _ => "the checkpoint's saved state differs from the plan's".to_owned(),
            };
            let m = mismatch.get_or_insert_with(|| PlanMismatch {
                unit: name.clone(),
                segment: index,
                reason: None,
                tables: Vec::new(),
                ddl: None,
            });
            m.reason = Some(reason);
        }
        match mismatch {
            Some(m) => refuse(&mut state, m),
            None => {
                *next = Ok(index + 1);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::written::TableWrites;

    fn identity() -> PlanIdentity {
        PlanIdentity {
            plugin_sha256: "a".repeat(64),
            contract: "0.2.0".into(),
            config: vec![
                PlanConfigValue {
                    key: "batch_size".into(),
                    value: "50".into(),
                    sha256: sha256_hex("50"),
                },
                PlanConfigValue {
                    key: "token".into(),
                    value: super::super::REDACTED.into(),
                    sha256: sha256_hex("hunter2"),
                },
            ],
            databases: vec![DatabaseIdentity::of(
                "target",
                Access::ReadWrite,
                "postgres://u:secret@db.internal/app",
                None,
            )],
        }
    }

    fn plan_for(identity: &PlanIdentity) -> Plan {
        let mut plan = Plan::new(&[]);
        plan.set_plugin("p", "1", &identity.plugin_sha256);
        plan.set_identity(
            identity,
            crate::runtime::sandbox::SandboxSeeds {
                clock_start_unix_nanos: 0,
                random_seed: 1,
            },
        );
        plan
    }

    #[test]
    fn identities_never_hold_a_password_and_name_every_difference() {
        let id = identity();
        let db = &id.databases[0];
        assert_eq!(
            (db.server.as_str(), db.database.as_str()),
            ("db.internal:5432", "app")
        );
        let plan = plan_for(&id);
        assert!(!plan.to_json().contains("secret") && !plan.to_json().contains("hunter2"));
        assert_eq!(id.refusal(&plan), None);

        let mut other = identity();
        other.config[1].sha256 = sha256_hex("changed");
        other.databases[0] = DatabaseIdentity::of(
            "target",
            Access::ReadWrite,
            "postgres://u:secret@db.internal/app2",
            None,
        );
        let refusal = other.refusal(&plan).expect("refused").to_string();
        assert!(
            refusal.contains("config `token` is a secret with sha256")
                && refusal.contains("database `app` on db.internal:5432")
                && refusal.contains("database `app2`")
                && refusal.contains("nothing ran"),
            "{refusal}"
        );
        let mut build = identity();
        build.plugin_sha256 = "b".repeat(64);
        let refusal = build.refusal(&plan).unwrap().to_string();
        assert!(refusal.contains("another plugin build"), "{refusal}");
    }

    fn table(digest: &str, rows: u64, hashes: &[&str], texts: &[(&str, &str)]) -> TableWrites {
        TableWrites {
            connection: "target".into(),
            table: "accounts".into(),
            via: "bulk".into(),
            op: "insert".into(),
            rows,
            calls: 1,
            digest: digest.into(),
            row_hashes: Some(hashes.iter().map(|h| (*h).to_owned()).collect()),
            row_texts: texts
                .iter()
                .map(|(h, t)| ((*h).to_owned(), (*t).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_segment_that_differs_shows_its_rows() {
        let planned = WrittenRows {
            tables: vec![table("d1", 2, &["01", "02"], &[])],
            ddl: Vec::new(),
        };
        let same = WrittenRows {
            tables: vec![table(
                "d1",
                2,
                &["01", "02"],
                &[("01", "id=1"), ("02", "id=2")],
            )],
            ddl: Vec::new(),
        };
        assert_eq!(compare_segment("u", 0, &planned, &same), None);
        let now = WrittenRows {
            tables: vec![table(
                "d2",
                2,
                &["01", "03"],
                &[("01", "id=1"), ("03", "id=2, email=\"new\"")],
            )],
            ddl: Vec::new(),
        };
        let m = compare_segment("u", 0, &planned, &now).expect("differs");
        let t = &m.tables[0];
        assert_eq!(t.not_in_plan, ["id=2, email=\"new\""]);
        assert_eq!(
            (t.not_written_count, t.not_written.clone()),
            (Some(1), vec!["02".to_owned()])
        );
        assert!(
            m.to_string()
                .starts_with("unit `u`: the data changed since the plan was made"),
            "{m}"
        );
    }
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn a_plan_of_schema_1_is_read_but_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plan.json");
        let mut plan = Plan::new(&[]);
        plan.schema = super::super::PLAN_SCHEMA_V1.into();
        std::fs::write(&file, plan.to_json()).unwrap();
        let refused = PlanIdentity::read_plan(&file).unwrap_err();
        assert!(
            matches!(refused, PlanRefusal::OldSchema { .. }),
            "{refused}"
        );
        std::fs::write(&file, "{").unwrap();
        assert!(matches!(
            PlanIdentity::read_plan(&file),
            Err(PlanRefusal::Unreadable { .. })
        ));
    }
}
