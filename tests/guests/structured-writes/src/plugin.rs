// A plugin built with the SDK (`migrun-sdk`, contract 0.2.0) that writes by key through
// its `Connection::bulk_update`, `bulk_upsert` and `bulk_delete`, and raw `execute`
// statements, on `orders(id, amount_cents, note)` of `target`
// (`tests/e2e/structured_writes.rs`). Included by two crates: `structured-writes`
// (`V2 = false`) and `structured-writes-v2` (`V2 = true`), whose rules differ where noted,
// so that `replay --plugin` has a second build to compare.
//
// Units, in order (`rows` configured, 20 by default):
//
// - `seed`: creates `orders` when absent and bulk-inserts ids 1..=rows with
//   `amount_cents = id * 12345` and `note = 'n<id>'`;
// - `reprice`: reads every order and bulk-updates `amount_cents` of the even ids to
//   `amount_cents / 100` (v2: one more for ids divisible by 4), in calls of `batch` rows;
//   checks that the count answered is the number of even ids;
// - `upsert`: bulk-upserts ids rows-2..=rows+3 with `amount_cents = id`, `note = 'upserted'`
//   (three updated, three inserted); checks the count is 6;
// - `prune`: bulk-deletes the ids divisible by 5 up to rows+3, and rows+100 (no such row;
//   v2: also id 3); checks the count is the rows that existed (v1 only);
// - `statements`: raw `UPDATE orders SET note = <p1> WHERE id = <p2>` for ids 1..=3 with
//   notes `s<id>` (v2: `t2` for id 2);
// - `read-only-probe` (with `probe_read_only = true`): tries the three writes through the
//   optional read-only connection `source` and checks each is refused as `read-only`;
// - `all-or-nothing` (with `probe_failure = true`): a bulk-update of 1,502 rows (two
//   chunks on MariaDB and SQLite) whose first chunk sets order 1 to 0 and whose last row
//   sets order 2's NOT NULL amount to NULL: checks the call failed as a constraint
//   violation, order 1 kept its amount, and the unit's transaction still works;
// - `outside` (with `outside = true`): declared `transactional: false`, tries a
//   bulk-update (refused there) and fails with the error.

use migrun_sdk::{
    Access, Config, ConfigKey, Connection, DbErrorKind, Error, Need, Plugin, PluginInfo, Result,
    Unit, Value, bail, check, params,
};

struct StructuredWrites {
    rows: i64,
    batch: usize,
    probe_read_only: bool,
    probe_failure: bool,
    outside: bool,
}

/// Every order's `(id, amount_cents)`, by id.
fn amounts(target: &Connection) -> Result<Vec<(i64, i64)>> {
    let rows = target.query("SELECT id, amount_cents FROM orders ORDER BY id", params![])?;
    rows.iter()
        .map(|row| Ok((row.get_at(0)?, row.get_at(1)?)))
        .collect()
}

/// The amount of order `id`, read now.
fn amount_of(target: &Connection, id: i64) -> Result<Option<i64>> {
    let sql = format!(
        "SELECT amount_cents FROM orders WHERE id = {}",
        target.placeholder(1)
    );
    let rows = target.query(&sql, params![id])?;
    rows.iter().next().map(|row| row.get_at(0)).transpose()
}

/// The new price of an order, by this build's rule.
fn repriced(id: i64, amount_cents: i64) -> i64 {
    let extra = if V2 && id % 4 == 0 { 1 } else { 0 };
    amount_cents / 100 + extra
}

impl StructuredWrites {
    fn seed(&self) -> Result<()> {
        let target = Connection::open("target")?;
        target.execute(
            "CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, amount_cents BIGINT NOT NULL, note VARCHAR(100))",
            params![],
        )?;
        let rows: Vec<Vec<Value>> = (1..=self.rows)
            .map(|id| params![id, id * 12345, format!("n{id}")])
            .collect();
        target.bulk_insert("orders", &["id", "amount_cents", "note"], rows)?;
        Ok(())
    }

    fn reprice(&self) -> Result<()> {
        let target = Connection::open("target")?;
        let updates: Vec<Vec<Value>> = amounts(&target)?
            .into_iter()
            .filter(|(id, _)| id % 2 == 0)
            .map(|(id, cents)| params![id, repriced(id, cents)])
            .collect();
        let expected = updates.len() as u64;
        let mut updated = 0;
        for chunk in updates.chunks(self.batch.max(1)) {
            updated += target.bulk_update("orders", &["id"], &["amount_cents"], chunk.to_vec())?;
        }
        check(
            "reprice",
            updated == expected,
            &format!("{updated} updated of {expected} even ids"),
        );
        Ok(())
    }

    fn upsert(&self) -> Result<()> {
        let target = Connection::open("target")?;
        let rows: Vec<Vec<Value>> = (self.rows - 2..=self.rows + 3)
            .map(|id| params![id, id, "upserted"])
            .collect();
        let upserted = target.bulk_upsert("orders", &["id"], &["amount_cents", "note"], rows)?;
        check("upsert", upserted == 6, &format!("{upserted} upserted"));
        Ok(())
    }

    fn prune(&self) -> Result<()> {
        let target = Connection::open("target")?;
        let mut keys: Vec<Vec<Value>> = (1..=self.rows + 3)
            .filter(|id| id % 5 == 0)
            .map(|id| params![id])
            .collect();
        let existing = keys.len() as u64 + u64::from(V2);
        keys.push(params![self.rows + 100]);
        if V2 {
            keys.push(params![3]);
        }
        let deleted = target.bulk_delete("orders", &["id"], keys)?;
        // A comparison answers a delete it has no record of with the keys given (it has no
        // database to count the rows that existed): v2, compared on v1's journal, says nothing.
        if !V2 {
            check(
                "prune",
                deleted == existing,
                &format!("{deleted} deleted of {existing} existing"),
            );
        }
        Ok(())
    }

    fn statements(&self) -> Result<()> {
        let target = Connection::open("target")?;
        let sql = format!(
            "UPDATE orders SET note = {} WHERE id = {}",
            target.placeholder(1),
            target.placeholder(2)
        );
        for id in 1..=3i64 {
            let note = if V2 && id == 2 {
                "t2".to_owned()
            } else {
                format!("s{id}")
            };
            target.execute(&sql, params![note, id])?;
        }
        Ok(())
    }

    fn read_only_probe(&self) -> Result<()> {
        let source = Connection::open("source")?;
        let attempts = [
            source.bulk_update("orders", &["id"], &["amount_cents"], vec![params![1, 1]]),
            source.bulk_upsert("orders", &["id"], &["amount_cents"], vec![params![1, 1]]),
            source.bulk_delete("orders", &["id"], vec![params![1]]),
        ];
        let mut details = Vec::new();
        let mut refused = source.access() == Access::ReadOnly;
        for attempt in attempts {
            match attempt {
                Ok(n) => {
                    refused = false;
                    details.push(format!("wrote {n}"));
                }
                Err(Error::Database(e)) => {
                    refused &= e.kind == DbErrorKind::ReadOnly;
                    details.push(format!("{:?}: {}", e.kind, e.message));
                }
                Err(other) => return Err(other),
            }
        }
        check("read-only refused", refused, &details.join(" | "));
        Ok(())
    }

    fn all_or_nothing(&self) -> Result<()> {
        let target = Connection::open("target")?;
        let before = amount_of(&target, 1)?;
        let mut rows = vec![params![1, 0]];
        rows.extend((1000..2500i64).map(|id| params![id, 0]));
        rows.push(vec![Value::Int(2), Value::Null]);
        let outcome = target.bulk_update("orders", &["id"], &["amount_cents"], rows);
        let after = amount_of(&target, 1)?;
        let detail = format!("{outcome:?}; order 1: {before:?} before, {after:?} after");
        let failed_as_constraint =
            matches!(&outcome, Err(Error::Database(e)) if e.kind == DbErrorKind::Constraint);
        check(
            "failed write undone",
            failed_as_constraint && before.is_some() && after == before,
            &detail,
        );
        Ok(())
    }

    fn outside(&self) -> Result<()> {
        let target = Connection::open("target")?;
        target.bulk_update("orders", &["id"], &["amount_cents"], vec![params![1, 0]])?;
        Ok(())
    }
}

impl Plugin for StructuredWrites {
    fn describe() -> PluginInfo {
        PluginInfo::new("structured-writes", env!("CARGO_PKG_VERSION"))
            .description("Writes orders by key through contract 0.2.0's bulk writes")
            .connection(Need::read_write("target", "holds orders").writes(["orders"]))
            .connection(
                Need::read_only("source", "read-only: `read-only-probe` tries to write through it")
                    .optional(),
            )
            .config_key(ConfigKey::new("rows", "orders seeded").default("20"))
            .config_key(ConfigKey::new("batch", "rows per bulk-update call of `reprice`").default("1000"))
            .config_key(
                ConfigKey::new("probe_read_only", "whether list-units adds `read-only-probe`")
                    .default("false"),
            )
            .config_key(
                ConfigKey::new("probe_failure", "whether list-units adds `all-or-nothing`")
                    .default("false"),
            )
            .config_key(
                ConfigKey::new("outside", "whether list-units adds the non-transactional `outside`")
                    .default("false"),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        Ok(StructuredWrites {
            rows: config.parse("rows")?,
            batch: config.parse("batch")?,
            probe_read_only: config.flag("probe_read_only", false)?,
            probe_failure: config.flag("probe_failure", false)?,
            outside: config.flag("outside", false)?,
        })
    }

    fn units(&self) -> Result<Vec<Unit>> {
        let mut units = vec![
            Unit::new("seed", "creates and fills orders"),
            Unit::new("reprice", "bulk-updates the even orders' amounts"),
            Unit::new("upsert", "bulk-upserts six orders around the last id"),
            Unit::new("prune", "bulk-deletes the orders whose id is divisible by 5"),
            Unit::new("statements", "three raw UPDATE statements"),
        ];
        if self.probe_read_only {
            units.push(Unit::new(
                "read-only-probe",
                "tries the bulk writes through a read-only connection",
            ));
        }
        if self.probe_failure {
            units.push(Unit::new(
                "all-or-nothing",
                "a bulk-update whose last row fails writes nothing",
            ));
        }
        if self.outside {
            units.push(
                Unit::new("outside", "a bulk-update outside a transaction").outside_transaction(),
            );
        }
        Ok(units)
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        match unit {
            "seed" => self.seed(),
            "reprice" => self.reprice(),
            "upsert" => self.upsert(),
            "prune" => self.prune(),
            "statements" => self.statements(),
            "read-only-probe" => self.read_only_probe(),
            "all-or-nothing" => self.all_or_nothing(),
            "outside" => self.outside(),
            other => bail!("no unit {other}"),
        }
    }
}

migrun_sdk::export_plugin!(StructuredWrites);
