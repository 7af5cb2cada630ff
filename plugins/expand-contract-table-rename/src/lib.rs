//! Seed 002's table rename between applications sharing one database, without
//! downtime, step by step as the seed describes it ("create a copy of the
//! existing table and perform dual-writes … backfill any data that changed …
//! use the new table as the primary table … stop dual-writing; the older table
//! will be frozen … drop the unused table"), as five units run on separate
//! deployments (`--only`):
//!
//! 1. `expand`: creates the new table with the old one's definition (columns,
//!    defaults, NOT NULL, primary key, unique and plain indexes, CHECKs,
//!    foreign keys to other tables; see `sql.rs` for what each dialect copies)
//!    and the **dual-write**: triggers on the old table that repeat every
//!    insert, update and delete on the new one. The applications keep using
//!    the old table. A rerun recreates the triggers; a new table that exists
//!    with rows but without this rename's triggers is refused.
//! 2. `backfill`: the **copy** of the rows written before the triggers, and
//!    the **backfill of changed rows**: in key-ordered batches of `batch_size`
//!    with `pause_ms` between them, each batch locks its rows of the old
//!    table, deletes the new table's rows that are missing from the old one or
//!    hold other values, and copies the old rows the new table lacks. Each
//!    batch commits with a checkpoint, so an interrupted backfill resumes after
//!    its last batch.
//! 3. `switch`: the new table becomes the primary one. Under a lock that holds
//!    off writers of the old table for the length of one comparison, it
//!    re-copies every row that still differs (a write that reached the new
//!    table outside the dual-write, rows changed in MariaDB's window between
//!    `CREATE TABLE` and `CREATE TRIGGER`, which commit one by one), checks
//!    that the two tables now hold the same rows (a `checks` entry; refused,
//!    nothing changed, if not), then turns the dual-write around: the old
//!    table's triggers go, and triggers on the new table repeat its writes on
//!    the old one, so whatever still reads the old table sees current rows
//!    while the applications are deployed against the new one. From here on
//!    the applications must write the new table: a write to the old table is
//!    no longer copied to the new one (`freeze` makes it fail instead).
//! 4. `freeze`: stops the dual-write and freezes the old table: triggers
//!    refuse every insert, update and delete (and `TRUNCATE` on PostgreSQL)
//!    with "table <old> is frozen: renamed to <new>".
//! 5. `contract`: drops the old table — only in a later run, alone: it is
//!    listed (as skipped) unless `phase = "contract"`, and that phase runs
//!    nothing else, so the run that froze the table can never drop it. It is
//!    refused, nothing dropped, unless the old table is frozen (the switch and
//!    the freeze happened), and while foreign keys of other tables still
//!    reference it. On PostgreSQL the sequences the old table owns (`serial`),
//!    which the new table's copied defaults draw from, are handed to the new
//!    table first.
//!
//! Both tables are declared as written, so the host backs them up before each
//! run's first write (the new table as absent before `expand`: restoring that
//! backup drops it). A restore after `expand` discards every application write
//! made since the backup, like any point-in-time restore.
//!
//! Each unit is recorded per rename (contract 0.2.0's scope, `<table>-><new_name>`).
//!
//! `fail_after_batches` (default 0: never) makes `backfill` fail after that
//! many batches of one run, to rehearse an interruption.

mod sql;

use std::time::Duration;

use migrun_sdk::{
    Backfill, Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Unit, bail, check,
    info, key_of, params, warn,
};

use crate::sql::{Direction, Phase, TableRename, phase};

/// Which units a run may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `expand`, `backfill`, `switch`, `freeze` (each when selected and not finished).
    Rename,
    /// `contract` only.
    Contract,
}

struct ExpandContractTableRename {
    table: String,
    new: String,
    key: Option<String>,
    batch_size: u32,
    pause: Duration,
    fail_after_batches: u64,
    mode: Mode,
}

impl ExpandContractTableRename {
    /// The rename on `db`, with the columns and key of `columns_from` (the old table while it
    /// exists).
    fn rename(&self, db: &Connection, columns_from: &str) -> Result<TableRename> {
        let key = match &self.key {
            Some(key) => key.clone(),
            None => key_of(db, columns_from).map_err(|e| {
                e.context(format!(
                    "the rename matches rows by a one-column key; set `key`; nothing was changed in `{}`",
                    self.table
                ))
            })?,
        };
        let columns = sql::columns(db, columns_from)?;
        if columns.is_empty() {
            bail!("table `{columns_from}` has no columns (or does not exist); nothing was changed");
        }
        Ok(TableRename {
            dialect: db.dialect(),
            old: self.table.clone(),
            new: self.new.clone(),
            key,
            columns,
        })
    }

    fn run_all(&self, db: &Connection, statements: &[String]) -> Result<()> {
        for statement in statements {
            db.execute(statement, params![])?;
        }
        Ok(())
    }

    fn expand(&self, db: &Connection) -> Result<()> {
        if !db.table_exists(&self.table)? {
            bail!(
                "table `{}` does not exist: nothing to rename; nothing was changed",
                self.table
            );
        }
        let state = phase(db, &self.table, &self.new)?;
        match state {
            Phase::NotStarted => {
                let rename = self.rename(db, &self.table)?;
                let copy = sql::copy_definition(db, &self.table, &self.new)?;
                self.run_all(db, &copy)?;
                info!(table = self.new, statements = copy.len(); "created `{}` with the definition of `{}`", self.new, self.table);
                self.run_all(db, &rename.create_mirror(Direction::Forward))?;
            }
            Phase::Created => {
                let rows: i64 = db.query_scalar(
                    &format!(
                        "SELECT COUNT(*) FROM {}",
                        db.dialect().quote_ident(&self.new)
                    ),
                    params![],
                )?;
                let old_columns: Vec<String> = sql::columns(db, &self.table)?
                    .into_iter()
                    .map(|c| c.name)
                    .collect();
                let new_columns: Vec<String> = sql::columns(db, &self.new)?
                    .into_iter()
                    .map(|c| c.name)
                    .collect();
                if rows > 0 || old_columns != new_columns {
                    bail!(
                        "table `{}` exists already ({rows} row(s), columns {}) and is not this rename's copy of `{}` (columns {}): drop or rename it first; nothing was changed",
                        self.new,
                        new_columns.join(", "),
                        self.table,
                        old_columns.join(", ")
                    );
                }
                info!(table = self.new; "the new table exists already, empty, with the same columns: keeping it");
                let rename = self.rename(db, &self.table)?;
                self.run_all(db, &rename.create_mirror(Direction::Forward))?;
            }
            Phase::Expanded => {
                let rename = self.rename(db, &self.table)?;
                self.run_all(db, &rename.create_mirror(Direction::Forward))?;
            }
            Phase::Switched | Phase::Frozen | Phase::Contracted => {
                info!(phase = state.describe(); "past `expand` already: nothing to do");
                return Ok(());
            }
        }
        info!(table = self.table, new_table = self.new;
            "every write to `{}` is now repeated on `{}` (dual-write)", self.table, self.new);
        Ok(())
    }

    fn backfill(&self, db: &Connection) -> Result<()> {
        let state = phase(db, &self.table, &self.new)?;
        match state {
            Phase::Expanded => {}
            Phase::Switched | Phase::Frozen | Phase::Contracted => {
                info!(phase = state.describe(); "past the switch already: nothing to backfill");
                return Ok(());
            }
            Phase::NotStarted | Phase::Created => bail!(
                "the rename of `{}` to `{}` is {}: run `expand` first; nothing was changed",
                self.table,
                self.new,
                state.describe()
            ),
        }
        let rename = self.rename(db, &self.table)?;
        let new_q = rename.q(&self.new);
        let mut this_run = 0;
        let (mut written, mut stale) = (0u64, 0u64);
        let report = Backfill::new(db, &self.table)
            .key(&rename.key)
            .batch_size(self.batch_size)
            .pause(self.pause)
            .task(&format!("backfill {}", self.new))
            .run(|batch| {
                if self.fail_after_batches > 0 && this_run == self.fail_after_batches {
                    bail!(
                        "stopping before batch {} as configured (fail_after_batches = {})",
                        batch.number(),
                        self.fail_after_batches
                    );
                }
                this_run += 1;
                let (on_old, params) = rename.range("o", batch.after(), batch.last());
                if let Some(lock) = rename.lock_range(&on_old) {
                    db.query(&lock, params.clone())?;
                }
                let (on_new, new_params) = rename.range(&new_q, batch.after(), batch.last());
                stale += db.execute(&rename.delete_stale(Some(&on_new)), new_params)?;
                written += db.execute(&rename.insert_missing(Some(&on_old)), params)?;
                Ok(())
            })?;
        info!(
            rows = report.rows,
            batches = report.batches,
            copied = written.saturating_sub(stale),
            recopied_changed = stale,
            resumed_after = report.resumed_after.unwrap_or(0);
            "backfill of `{}` finished", self.new
        );
        Ok(())
    }

    fn switch(&self, db: &Connection) -> Result<()> {
        let state = phase(db, &self.table, &self.new)?;
        match state {
            Phase::Expanded => {}
            Phase::Switched | Phase::Frozen | Phase::Contracted => {
                info!(phase = state.describe(); "switched already: nothing to do");
                return Ok(());
            }
            Phase::NotStarted | Phase::Created => bail!(
                "the rename of `{}` to `{}` is {}: run `expand` and `backfill` first; nothing was changed",
                self.table,
                self.new,
                state.describe()
            ),
        }
        let rename = self.rename(db, &self.table)?;
        if let Some(lock) = rename.lock_old_table() {
            db.query(&lock, params![])?;
        }
        let stale = db.execute(&rename.delete_stale(None), params![])?;
        let written = db.execute(&rename.insert_missing(None), params![])?;
        if stale > 0 {
            warn!(table = self.new, rows = stale;
                "{stale} row(s) of `{}` differed from `{}` (written outside the dual-write): copied again", self.new, self.table);
        }
        if written.saturating_sub(stale) > u64::from(self.batch_size) {
            warn!(table = self.new, rows = written - stale;
                "the switch copied {} missing row(s) in one statement under a lock: run `backfill` before `switch`", written - stale);
        }
        let differing: i64 = db.query_scalar(&rename.count_differing(), params![])?;
        let name = format!("{} and {} hold the same rows", self.table, self.new);
        if !check(&name, differing == 0, &format!("{differing} row(s) differ")) {
            bail!(
                "{differing} row(s) differ between `{}` and `{}` after the catch-up copy: the switch was refused; the dual-write stays as it was",
                self.table,
                self.new
            );
        }
        for column in sql::identity_columns(db, &self.new)? {
            db.query(
                &format!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), GREATEST((SELECT MAX({c}) FROM {t}), 1))",
                    c = rename.q(&column),
                    t = rename.q(&self.new)
                ),
                params![self.new.clone(), column.clone()],
            )?;
        }
        self.run_all(db, &rename.drop_mirror(Direction::Forward))?;
        self.run_all(db, &rename.create_mirror(Direction::Reverse))?;
        info!(table = self.new, old_table = self.table;
            "`{}` is the primary table: its writes are repeated on `{}`; writes to `{}` are no longer copied — deploy the applications against `{}`",
            self.new, self.table, self.table, self.new);
        Ok(())
    }

    fn freeze(&self, db: &Connection) -> Result<()> {
        let state = phase(db, &self.table, &self.new)?;
        match state {
            Phase::Switched | Phase::Frozen => {}
            Phase::Contracted => {
                info!(phase = state.describe(); "nothing to freeze");
                return Ok(());
            }
            Phase::NotStarted | Phase::Created | Phase::Expanded => bail!(
                "the rename of `{}` to `{}` is {}: run `switch` first; nothing was changed",
                self.table,
                self.new,
                state.describe()
            ),
        }
        let rename = self.rename(db, &self.table)?;
        self.run_all(db, &rename.drop_mirror(Direction::Reverse))?;
        self.run_all(db, &rename.create_freeze())?;
        info!(table = self.table;
            "dual-write stopped; `{}` is frozen: every write to it is refused (`{}`)", self.table, rename.frozen_message());
        Ok(())
    }

    fn contract(&self, db: &Connection) -> Result<()> {
        let state = phase(db, &self.table, &self.new)?;
        match state {
            Phase::Frozen => {}
            Phase::Contracted => {
                info!(table = self.table; "`{}` is dropped already", self.table);
                let rename = TableRename {
                    dialect: db.dialect(),
                    old: self.table.clone(),
                    new: self.new.clone(),
                    key: String::new(),
                    columns: Vec::new(),
                };
                return self.run_all(db, &rename.drop_functions());
            }
            other => bail!(
                "contract refused: the rename of `{}` to `{}` is {}; `{}` is dropped only after `switch` and `freeze` ran, in an earlier run; nothing was dropped",
                self.table,
                self.new,
                other.describe(),
                self.table
            ),
        }
        let referencing = sql::referencing_foreign_keys(db, &self.table)?;
        if !referencing.is_empty() {
            bail!(
                "contract refused: foreign keys still reference `{}` ({}): point them at `{}` first; nothing was dropped",
                self.table,
                referencing
                    .iter()
                    .map(|(name, table)| format!("{table}.{name}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.new
            );
        }
        let rename = self.rename(db, &self.table)?;
        for (sequence, column) in sql::owned_sequences(db, &self.table)? {
            db.execute(
                &format!(
                    "ALTER SEQUENCE {sequence} OWNED BY {}.{}",
                    rename.q(&self.new),
                    rename.q(&column)
                ),
                params![],
            )?;
            info!(sequence = sequence; "the sequence now belongs to `{}`", self.new);
        }
        db.execute(&rename.drop_old(), params![])?;
        self.run_all(db, &rename.drop_functions())?;
        info!(table = self.table; "dropped `{}`; `{}` stays", self.table, self.new);
        Ok(())
    }
}

impl Plugin for ExpandContractTableRename {
    fn describe() -> PluginInfo {
        PluginInfo::new("expand-contract-table-rename", env!("CARGO_PKG_VERSION"))
            .description(
                "renames a table without downtime: copy, dual-write, backfill of changed rows, switch, freeze, drop in a later run (seed 002)",
            )
            .connection(
                // Both tables come from the configuration; the host backs them up before the
                // first write of every run (the new one as absent until `expand` made it).
                Need::read_write("app", "the database the applications share")
                    .writes(["${table}", "${new_name}"]),
            )
            .unit(
                "expand",
                "creates the new table with the old one's definition and triggers that repeat every write of the old table on it",
            )
            .unit(
                "backfill",
                "copies missing and changed rows in key-ordered batches, a checkpoint per batch",
            )
            .unit(
                "switch",
                "re-copies rows that still differ, checks both tables hold the same rows, then mirrors the new table's writes into the old one",
            )
            .unit(
                "freeze",
                "stops the dual-write; triggers refuse every write to the old table",
            )
            .unit(
                "contract",
                "drops the frozen old table (phase = \"contract\", in a later run)",
            )
            .config_key(ConfigKey::new("table", "the table to rename").required())
            .config_key(ConfigKey::new("new_name", "the table's new name").required())
            .config_key(
                ConfigKey::new(
                    "key",
                    "one-column unique NOT NULL key rows are matched and paged by (empty: the primary key)",
                )
                .default(""),
            )
            .config_key(ConfigKey::new("batch_size", "rows per backfill batch").default("1000"))
            .config_key(
                ConfigKey::new("pause_ms", "pause between batches, in milliseconds").default("0"),
            )
            .config_key(
                ConfigKey::new(
                    "phase",
                    "`rename`: expand, backfill, switch, freeze; `contract`: only drop the frozen old table",
                )
                .default("rename"),
            )
            .config_key(
                ConfigKey::new(
                    "fail_after_batches",
                    "rehearsal: fail the backfill after this many batches (0: never)",
                )
                .default("0"),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        let table = config.identifier("table")?;
        let new = config.identifier("new_name")?;
        if table == new {
            bail!("table and new_name are both `{table}`: nothing to rename");
        }
        let key = config.identifier_opt("key")?;
        let batch_size = config.positive("batch_size")?;
        let mode = match config.get_or("phase", "rename") {
            "rename" => Mode::Rename,
            "contract" => Mode::Contract,
            other => bail!("phase `{other}` is neither `rename` nor `contract`"),
        };
        Ok(ExpandContractTableRename {
            table,
            new,
            key,
            batch_size,
            pause: Duration::from_millis(config.parse("pause_ms")?),
            fail_after_batches: config.parse("fail_after_batches")?,
            mode,
        })
    }

    /// Each configured rename is its own piece of work.
    fn scope(&self) -> Option<String> {
        Some(format!("{}->{}", self.table, self.new))
    }

    /// The declared units, scoped; `phase` decides which of them may run: `contract` never
    /// shares a run with the units before it.
    fn units(&self) -> Result<Vec<Unit>> {
        let scope = self.scope().unwrap_or_default();
        Ok(Self::describe()
            .units()
            .iter()
            .cloned()
            .map(|unit| {
                let contract = unit.name() == "contract";
                let unit = unit.scope(scope.clone());
                match (self.mode, contract) {
                    (Mode::Rename, true) => unit.skipped(format!(
                        "drops `{}` only in a run of its own after `freeze`: set phase = \"contract\"",
                        self.table
                    )),
                    (Mode::Contract, false) => {
                        unit.skipped("phase = \"contract\" runs only `contract`")
                    }
                    _ => unit,
                }
            })
            .collect())
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        let db = Connection::open("app")?;
        match unit {
            "expand" => self.expand(&db),
            "backfill" => self.backfill(&db),
            "switch" => self.switch(&db),
            "freeze" => self.freeze(&db),
            "contract" => self.contract(&db),
            other => bail!("unknown unit `{other}`"),
        }
    }

    fn verify(&mut self) -> Result<()> {
        let db = Connection::open("app")?;
        let state = phase(&db, &self.table, &self.new)?;
        check(
            &format!("{} exists", self.new),
            state != Phase::NotStarted,
            state.describe(),
        );
        if state == Phase::Switched {
            let rename = self.rename(&db, &self.table)?;
            let differing: i64 = db.query_scalar(&rename.count_differing(), params![])?;
            check(
                &format!("{} and {} hold the same rows", self.table, self.new),
                differing == 0,
                &format!("{differing} row(s) differ"),
            );
        }
        if self.mode == Mode::Contract {
            check(
                &format!("{} is dropped", self.table),
                state == Phase::Contracted,
                state.describe(),
            );
        }
        Ok(())
    }
}

migrun_sdk::export_plugin!(ExpandContractTableRename);
