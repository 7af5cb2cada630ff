//! The plugin: configuration, the three units and `verify` (see the crate's documentation).
//! Shared with the second build (`tests/guests/price-to-cents-v2`), which differs only in
//! `crate::BARE_INTEGERS`.

use migrun_sdk::log::{Level, write as log};
use migrun_sdk::{
    Backfill, Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Steps, Unit, Value,
    bail, check, info, key_of, params,
};

use crate::BARE_INTEGERS;
use crate::amount::to_cents;

/// How many rows `verify` reads per round trip.
const VERIFY_BATCH: u32 = 1000;

/// How many differing keys `verify` names in its check.
const NAMED_DIFFERENCES: usize = 5;

struct PriceToCents {
    table: String,
    text_column: String,
    cents_column: String,
    key: Option<String>,
    batch_size: u32,
    fail_after_batches: u64,
    /// Whether `convert` finished in this run: then `verify` also fails on a convertible
    /// row still without cents.
    converted_this_run: bool,
}

/// A key or text value as the warning shows it.
fn shown(value: &Value) -> String {
    match value {
        Value::Int(i) => i.to_string(),
        Value::Null => "NULL".to_owned(),
        other => other
            .as_str()
            .map_or_else(|| format!("{other:?}"), str::to_owned),
    }
}

/// The text of a price cell: `None` for NULL.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Int(i) => Some(i.to_string()),
        other => Some(
            other
                .as_str()
                .map_or_else(|| format!("{other:?}"), str::to_owned),
        ),
    }
}

impl PriceToCents {
    fn target() -> Result<Connection> {
        Connection::open("target")
    }

    /// The column the rows are keyed by: configured, or the table's primary key.
    fn key_column(&self, db: &Connection) -> Result<String> {
        match &self.key {
            Some(key) => Ok(key.clone()),
            None => key_of(db, &self.table),
        }
    }

    fn require_text_column(&self, db: &Connection) -> Result<()> {
        if !db.column_exists(&self.table, &self.text_column)? {
            bail!(
                "table `{}` has no column `{}` to convert; nothing was changed",
                self.table,
                self.text_column
            );
        }
        Ok(())
    }

    fn add_column(&mut self) -> Result<()> {
        let db = Self::target()?;
        self.require_text_column(&db)?;
        if db.column_exists(&self.table, &self.cents_column)? {
            info!(column = self.cents_column; "the cents column exists already; keeping it");
            return Ok(());
        }
        let dialect = db.dialect();
        db.execute(
            &format!(
                "ALTER TABLE {} ADD COLUMN {} BIGINT",
                dialect.quote_ident(&self.table),
                dialect.quote_ident(&self.cents_column)
            ),
            params![],
        )?;
        info!(table = self.table, column = self.cents_column; "added the cents column (BIGINT, nullable)");
        Ok(())
    }

    fn convert(&mut self) -> Result<()> {
        let db = Self::target()?;
        self.require_text_column(&db)?;
        if !db.column_exists(&self.table, &self.cents_column)? {
            bail!(
                "column `{}` does not exist: run the `add-column` unit first; nothing was changed",
                self.cents_column
            );
        }
        let key = self.key_column(&db)?;
        let warning = format!("cannot convert the price; {} stays NULL", self.cents_column);
        let (mut this_run, mut converted, mut unconvertible, mut without_price) = (0, 0, 0, 0);
        let report = Backfill::new(&db, &self.table)
            .key(&key)
            .columns([self.text_column.as_str()])
            .batch_size(self.batch_size)
            .task(&format!("convert {}.{}", self.table, self.text_column))
            .run(|batch| {
                if self.fail_after_batches > 0 && this_run == self.fail_after_batches {
                    bail!(
                        "stopping before batch {} as configured (fail_after_batches = {})",
                        batch.number(),
                        self.fail_after_batches
                    );
                }
                this_run += 1;
                let mut updates = Vec::with_capacity(batch.len());
                for row in batch.rows() {
                    let (id, text) = match row.values() {
                        [id, text] => (id, text),
                        other => bail!("a batch row holds {} values, not 2", other.len()),
                    };
                    let Some(text) = text_of(text) else {
                        without_price += 1;
                        continue;
                    };
                    match to_cents(&text, BARE_INTEGERS) {
                        Ok(cents) => updates.push(vec![id.clone(), Value::Int(cents)]),
                        Err(reason) => {
                            unconvertible += 1;
                            log(
                                Level::Warn,
                                &warning,
                                &[
                                    (key.clone(), shown(id)),
                                    (self.text_column.clone(), text),
                                    ("reason".to_owned(), reason.to_string()),
                                ],
                            );
                        }
                    }
                }
                converted +=
                    db.bulk_update(&self.table, &[&key], &[&self.cents_column], updates)?;
                Ok(())
            })?;
        info!(
            rows = report.rows,
            batches = report.batches,
            converted = converted,
            unconvertible = unconvertible,
            without_price = without_price,
            resumed_after = report.resumed_after.unwrap_or(0);
            "conversion finished"
        );
        self.converted_this_run = true;
        Ok(())
    }
}

impl Plugin for PriceToCents {
    fn describe() -> PluginInfo {
        PluginInfo::new("price-to-cents", env!("CARGO_PKG_VERSION"))
            .description(
                "converts a text price column into integer cents, one bulk-update per batch (seed 002)",
            )
            .connection(
                // The table comes from the configuration: the host resolves `${table}` and
                // backs that table up before the first write of every run.
                Need::read_write("target", "holds the table whose prices are converted")
                    .writes(["${table}"]),
            )
            .config_key(ConfigKey::new("table", "the table holding the prices").default("orders"))
            .config_key(
                ConfigKey::new("text_column", "the price as text").default("amount_text"),
            )
            .config_key(
                ConfigKey::new("cents_column", "the new integer column, in cents")
                    .default("amount_cents"),
            )
            .config_key(
                ConfigKey::new(
                    "key",
                    "unique NOT NULL column to page and update by (empty: the primary key)",
                )
                .default(""),
            )
            .config_key(
                ConfigKey::new("batch_size", "rows per batch (one bulk-update, one checkpoint)")
                    .default("1000"),
            )
            .config_key(
                ConfigKey::new(
                    "fail_after_batches",
                    "rehearsal: fail `convert` after this many batches (0: never)",
                )
                .default("0"),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        let table = config.identifier("table")?;
        let text_column = config.identifier("text_column")?;
        let cents_column = config.identifier("cents_column")?;
        if text_column.eq_ignore_ascii_case(&cents_column) {
            bail!(
                "text_column and cents_column are both `{text_column}`: the cents need a column of their own"
            );
        }
        let key = config.identifier_opt("key")?;
        let batch_size = config.positive("batch_size")?;
        Ok(PriceToCents {
            table,
            text_column,
            cents_column,
            key,
            batch_size,
            fail_after_batches: config.parse("fail_after_batches")?,
            converted_this_run: false,
        })
    }

    fn steps() -> Steps<Self> {
        Steps::new()
            .step(
                Unit::new("add-column", "adds the integer cents column unless it exists"),
                Self::add_column,
            )
            .step(
                Unit::new(
                    "convert",
                    "converts the text prices batch by batch, one bulk-update and one checkpoint per batch",
                ),
                Self::convert,
            )
    }

    /// Each configured conversion is its own piece of work.
    fn scope(&self) -> Option<String> {
        Some(format!(
            "{}.{}->{}",
            self.table, self.text_column, self.cents_column
        ))
    }

    /// Fails on a row whose cents are not the conversion of its text (or not NULL where
    /// the text is no price); a convertible row without cents fails it only when `convert`
    /// finished in this run, and is otherwise counted as not converted yet (`--only
    /// add-column`, or rows written since the conversion).
    fn verify(&mut self) -> Result<()> {
        let db = Self::target()?;
        let name = format!(
            "{}.{} holds {} in cents",
            self.table, self.cents_column, self.text_column
        );
        if !db.column_exists(&self.table, &self.cents_column)? {
            check(
                &name,
                false,
                &format!("column `{}` does not exist", self.cents_column),
            );
            return Ok(());
        }
        let key = self.key_column(&db)?;
        let q = |c: &str| db.dialect().quote_ident(c);
        let sql = format!(
            "SELECT {}, {}, {} FROM {} ORDER BY {}",
            q(&key),
            q(&self.text_column),
            q(&self.cents_column),
            q(&self.table),
            q(&key)
        );
        let (mut rows, mut converted, mut unconvertible, mut without_price, mut pending) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut differing: Vec<String> = Vec::new();
        let mut differ = 0u64;
        for batch in db.cursor(&sql, params![], VERIFY_BATCH)? {
            for row in batch? {
                rows += 1;
                let [id, text, cents] = row.values() else {
                    bail!("verify read {} values, not 3", row.len());
                };
                let expected = text_of(text).map(|t| to_cents(&t, BARE_INTEGERS));
                let found = match cents {
                    Value::Null => None,
                    Value::Int(c) => Some(*c),
                    other => bail!(
                        "{} of {} is {other:?}, not an integer",
                        self.cents_column,
                        shown(id)
                    ),
                };
                match (expected, found) {
                    (None, None) => without_price += 1,
                    (Some(Err(_)), None) => unconvertible += 1,
                    (Some(Ok(e)), Some(f)) if e == f => converted += 1,
                    // Not converted yet: `convert` has not run, or the row came after it.
                    (Some(Ok(_)), None) if !self.converted_this_run => pending += 1,
                    (expected, found) => {
                        differ += 1;
                        if differing.len() < NAMED_DIFFERENCES {
                            let expected = match expected {
                                Some(Ok(cents)) => cents.to_string(),
                                Some(Err(reason)) => format!("NULL ({reason})"),
                                None => "NULL (no price)".to_owned(),
                            };
                            let found = found.map_or_else(|| "NULL".to_owned(), |c| c.to_string());
                            differing.push(format!(
                                "{key}={} {}={:?} holds {found}, expected {expected}",
                                shown(id),
                                self.text_column,
                                text_of(text).unwrap_or_else(|| "NULL".into()),
                            ));
                        }
                    }
                }
            }
        }
        let mut detail = format!(
            "{rows} rows: {converted} converted, {unconvertible} unconvertible (NULL), \
             {without_price} without a price, {pending} not converted yet; {differ} differ"
        );
        if !differing.is_empty() {
            detail.push_str(&format!(" ({})", differing.join("; ")));
        }
        check(&name, differ == 0, &detail);
        Ok(())
    }
}

migrun_sdk::export_plugin!(PriceToCents);
