//! Seed 002's column rename between two applications sharing one database,
//! without downtime, as three units run on separate deployments:
//!
//! 1. `expand`: adds the new column (nullable, the old column's type unless
//!    `column_type` says otherwise) and triggers that keep the two columns
//!    equal on every insert and update (see `sql.rs` for each dialect), so
//!    the old application keeps writing the old column and the new one the
//!    new column. Idempotent: a rerun recreates the triggers.
//! 2. `backfill`: copies old into new for the rows written before the
//!    triggers, in key-ordered batches of `batch_size` rows with a pause of
//!    `pause_ms` between them; each batch commits with a checkpoint, so an
//!    interrupted backfill resumes after its last batch (seed 003's batched
//!    backfill with progress and pauses).
//! 3. `contract`: once both applications use the new column, checks that no
//!    row's old and new values differ (a `checks` entry either way) and
//!    refuses, changing nothing, when some do; otherwise drops the triggers
//!    and then:
//!    - a plain rename (no `column_type`): drops the *new* column and renames
//!      the *old* one to the new name (one `ALTER TABLE` on MariaDB, two
//!      statements in the unit's transaction on PostgreSQL and SQLite). The
//!      column that stays is physically the old one, so it keeps its whole
//!      definition — type, NOT NULL, DEFAULT, collation, CHECKs, the indexes
//!      and UNIQUE constraints over it, foreign keys from it and to it, its
//!      place among the columns — and every index and constraint keeps its
//!      name (a name that mentions the old column, such as
//!      `accounts_email_key`, is not renamed). Only the catalog changes: no
//!      table rewrite, no index build, a brief exclusive lock. An index or
//!      constraint added to the *new* column during the transition goes with
//!      it (SQLite refuses the drop instead): add those to the old column.
//!    - a type change (`column_type` set): drops the old column; the new
//!      column has the configured type and **none** of the old column's NOT
//!      NULL, DEFAULT, collation, indexes or constraints (a warning in the
//!      log says so): recreate those the new column needs in a migration of
//!      your own. Seed 002's type change has its own plugin.
//!
//! Between `expand` and `contract` the old column's constraints keep acting
//! on writes through either name: the triggers copy a write of the new
//! column into the old one, where NOT NULL, UNIQUE, CHECK and foreign keys
//! apply (PostgreSQL and MariaDB check NOT NULL after their `BEFORE`
//! triggers). Two limits: on SQLite the triggers run `AFTER` the row is
//! written, so an insert that leaves a NOT NULL old column without a value
//! fails there; and when the old column has a DEFAULT, an insert that sets
//! only the new column gets the old column's default instead of a copy, so
//! `contract` finds the row differing and refuses (write both columns, or
//! fix the row, until the old application is gone).
//!
//! Run them one at a time with `--only` between deployments; run in one go
//! (no `--only`) they rename with nobody else writing.
//!
//! The table is declared as written through `${table}`, so the host backs it
//! up before each run's first write; restoring the `expand` run's backup
//! (`migrun restore <id> --yes`) undoes the whole rename, and the ledger then
//! lets all three units run again.
//!
//! Each unit is recorded per rename (contract 0.2.0's scope,
//! `<table>.<old>-><new>`): renaming a second column with the same build runs
//! the three units again, and `migrun status` lists the renames apart.
//!
//! `fail_after_batches` (default 0: never) makes `backfill` fail after that
//! many batches of one run, to rehearse an interruption: the batches before
//! it stay committed and the next run resumes.

mod sql;

use std::time::Duration;

use migrun_sdk::{
    Backfill, Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, bail, check, info,
    params, warn,
};

use crate::sql::{Rename, column_type};

struct ExpandContractRename {
    table: String,
    old: String,
    new: String,
    column_type: Option<String>,
    key: Option<String>,
    batch_size: u32,
    pause: Duration,
    fail_after_batches: u64,
}

impl ExpandContractRename {
    fn rename(&self, db: &Connection) -> Rename {
        Rename {
            dialect: db.dialect(),
            table: self.table.clone(),
            old: self.old.clone(),
            new: self.new.clone(),
        }
    }

    fn expand(&self, db: &Connection) -> Result<()> {
        let rename = self.rename(db);
        let Some(old_type) = column_type(db, &self.table, &self.old)? else {
            bail!(
                "table `{}` has no column `{}` to rename; nothing was changed",
                self.table,
                self.old
            );
        };
        match column_type(db, &self.table, &self.new)? {
            Some(_) => info!(column = self.new; "the new column exists already; keeping it"),
            None => {
                let ty = self.column_type.clone().unwrap_or(old_type);
                db.execute(&rename.add_column(&ty), params![])?;
                info!(column = self.new, column_type = ty; "added the new column");
            }
        }
        for statement in rename.create_triggers() {
            db.execute(&statement, params![])?;
        }
        info!(table = self.table; "old and new columns are kept in sync by triggers");
        Ok(())
    }

    fn backfill(&self, db: &Connection) -> Result<()> {
        let rename = self.rename(db);
        if column_type(db, &self.table, &self.new)?.is_none() {
            bail!(
                "column `{}` does not exist: run the `expand` unit first; nothing was changed",
                self.new
            );
        }
        let mut backfill = Backfill::new(db, &self.table)
            .batch_size(self.batch_size)
            .pause(self.pause)
            .task(&format!("backfill {}.{}", self.table, self.new));
        if let Some(key) = &self.key {
            backfill = backfill.key(key);
        }
        let mut this_run = 0;
        let mut copied = 0;
        let report = backfill.run(|batch| {
            if self.fail_after_batches > 0 && this_run == self.fail_after_batches {
                bail!(
                    "stopping before batch {} as configured (fail_after_batches = {})",
                    batch.number(),
                    self.fail_after_batches
                );
            }
            this_run += 1;
            let (range, params) = batch.range(1);
            copied += db.execute(&rename.copy_range(&range), params)?;
            Ok(())
        })?;
        info!(
            rows = report.rows,
            batches = report.batches,
            copied = copied,
            resumed_after = report.resumed_after.unwrap_or(0);
            "backfill finished"
        );
        Ok(())
    }

    fn contract(&self, db: &Connection) -> Result<()> {
        let rename = self.rename(db);
        if column_type(db, &self.table, &self.old)?.is_none() {
            info!(column = self.old; "the old column is gone already");
            for statement in rename.drop_triggers() {
                db.execute(&statement, params![])?;
            }
            return Ok(());
        }
        if column_type(db, &self.table, &self.new)?.is_none() {
            bail!(
                "column `{}` does not exist: run `expand` and `backfill` first; nothing was changed",
                self.new
            );
        }
        let differing: i64 = db.query_scalar(&rename.count_differing(), params![])?;
        let name = format!(
            "{}.{} equals {}.{} on every row",
            self.table, self.new, self.table, self.old
        );
        if !check(&name, differing == 0, &format!("{differing} row(s) differ")) {
            bail!(
                "{differing} row(s) of `{}` have `{}` different from `{}`: run `backfill` again; the old column and the triggers were left in place",
                self.table,
                self.new,
                self.old
            );
        }
        for statement in rename.drop_triggers() {
            db.execute(&statement, params![])?;
        }
        match &self.column_type {
            None => {
                for statement in rename.keep_old_under_new_name() {
                    db.execute(&statement, params![])?;
                }
                info!(
                    table = self.table,
                    column = self.new;
                    "dropped the new column's copy and renamed the old column to `{}`: its type, NOT NULL, default, collation, indexes and constraints stay as they were",
                    self.new
                );
            }
            Some(column_type) => {
                db.execute(&rename.drop_old(), params![])?;
                warn!(
                    table = self.table,
                    column = self.old,
                    column_type = column_type;
                    "dropped the old column; the new column has the configured type and none of the old column's NOT NULL, default, collation, indexes or constraints: recreate those it needs"
                );
            }
        }
        Ok(())
    }
}

impl Plugin for ExpandContractRename {
    fn describe() -> PluginInfo {
        PluginInfo::new("expand-contract-rename", env!("CARGO_PKG_VERSION"))
            .description(
                "renames a column without downtime: expand, batched backfill, contract (seed 002)",
            )
            .connection(
                // The table comes from the configuration: the host resolves `${table}` and
                // backs that table up before the first write of every run.
                Need::read_write("app", "the database both applications share")
                    .writes(["${table}"]),
            )
            .unit(
                "expand",
                "adds the new column and triggers that keep old and new equal",
            )
            .unit(
                "backfill",
                "copies old into new in key-ordered batches, a checkpoint per batch",
            )
            .unit(
                "contract",
                "checks that no row differs, drops the triggers, then keeps the old column (and its constraints) under the new name",
            )
            .config_key(ConfigKey::new("table", "the table").required())
            .config_key(ConfigKey::new("old_column", "the column's current name").required())
            .config_key(ConfigKey::new("new_column", "the column's new name").required())
            .config_key(
                ConfigKey::new(
                    "column_type",
                    "SQL type of the new column (empty: the old column's, and contract keeps the old column's constraints; set: they are dropped with it)",
                )
                .default(""),
            )
            .config_key(
                ConfigKey::new(
                    "key",
                    "unique NOT NULL column to page by (empty: the primary key)",
                )
                .default(""),
            )
            .config_key(ConfigKey::new("batch_size", "rows per backfill batch").default("1000"))
            .config_key(
                ConfigKey::new("pause_ms", "pause between batches, in milliseconds").default("0"),
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
        let old = config.identifier("old_column")?;
        let new = config.identifier("new_column")?;
        if old == new {
            bail!("old_column and new_column are both `{old}`: nothing to rename");
        }
        let key = config.identifier_opt("key")?;
        let column_type =
            Some(config.get_or("column_type", "").to_owned()).filter(|t| !t.is_empty());
        let batch_size = config.positive("batch_size")?;
        Ok(ExpandContractRename {
            table,
            old,
            new,
            column_type,
            key,
            batch_size,
            pause: Duration::from_millis(config.parse("pause_ms")?),
            fail_after_batches: config.parse("fail_after_batches")?,
        })
    }

    /// Each configured rename is its own piece of work: renaming `accounts.name` after
    /// `accounts.email` runs the three units again instead of finding them done.
    fn scope(&self) -> Option<String> {
        Some(format!("{}.{}->{}", self.table, self.old, self.new))
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        let db = Connection::open("app")?;
        match unit {
            "expand" => self.expand(&db),
            "backfill" => self.backfill(&db),
            "contract" => self.contract(&db),
            other => bail!("unknown unit `{other}`"),
        }
    }

    fn verify(&mut self) -> Result<()> {
        let db = Connection::open("app")?;
        let has_new = column_type(&db, &self.table, &self.new)?.is_some();
        check(&format!("{}.{} exists", self.table, self.new), has_new, "");
        Ok(())
    }
}

migrun_sdk::export_plugin!(ExpandContractRename);
