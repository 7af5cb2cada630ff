// A plugin built with `wit-bindgen` directly against `guest-sdk/wit/v0.2.0` that writes
// by key: contract 0.2.0's `bulk-update`, `bulk-upsert` and `bulk-delete`, and raw
// `execute` statements, on `orders(id, amount_cents, note)` of `target`
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

wit_bindgen::generate!({
    path: "../../../guest-sdk/wit/v0.2.0",
    world: "migration",
});

use std::cell::RefCell;

use exports::migrun::plugin::plugin::{
    ConfigKey, ConnectionNeed, Guest, PluginError, PluginInfo, UnitInfo,
};
use migrun::plugin::checks;
use migrun::plugin::database::{Access, Connection, Dialect, open};
use migrun::plugin::types::{DbErrorKind, Value};

struct Settings {
    rows: i64,
    batch: usize,
    probe_read_only: bool,
    probe_failure: bool,
    outside: bool,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = const {
        RefCell::new(Settings {
            rows: 20,
            batch: 1000,
            probe_read_only: false,
            probe_failure: false,
            outside: false,
        })
    };
}

fn db(e: migrun::plugin::types::DbError) -> PluginError {
    PluginError::Database(e)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The `n`th parameter placeholder on `conn`'s dialect.
fn ph(conn: &Connection, n: usize) -> String {
    match conn.dialect() {
        Dialect::Postgres => format!("${n}"),
        Dialect::Sqlite | Dialect::Mysql => "?".to_owned(),
    }
}

fn seed(rows: i64) -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    target
        .execute(
            "CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, amount_cents BIGINT NOT NULL, note VARCHAR(100))",
            &[],
        )
        .map_err(db)?;
    let batch: Vec<Vec<Value>> = (1..=rows)
        .map(|id| {
            vec![
                Value::Int(id),
                Value::Int(id * 12345),
                Value::Text(format!("n{id}")),
            ]
        })
        .collect();
    target
        .bulk_insert("orders", &names(&["id", "amount_cents", "note"]), &batch)
        .map_err(db)?;
    Ok(())
}

/// The new price of an order, by this build's rule.
fn repriced(id: i64, amount_cents: i64) -> i64 {
    let extra = if V2 && id % 4 == 0 { 1 } else { 0 };
    amount_cents / 100 + extra
}

fn reprice(batch: usize) -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    let orders = target
        .query("SELECT id, amount_cents FROM orders ORDER BY id", &[])
        .map_err(db)?;
    let updates: Vec<Vec<Value>> = orders
        .rows
        .iter()
        .filter_map(|row| match (&row[0], &row[1]) {
            (Value::Int(id), Value::Int(cents)) if id % 2 == 0 => {
                Some(vec![Value::Int(*id), Value::Int(repriced(*id, *cents))])
            }
            _ => None,
        })
        .collect();
    let mut updated = 0;
    for chunk in updates.chunks(batch.max(1)) {
        updated += target
            .bulk_update(
                "orders",
                &names(&["id"]),
                &names(&["amount_cents"]),
                chunk,
            )
            .map_err(db)?;
    }
    checks::report(
        "reprice",
        updated == updates.len() as u64,
        &format!("{updated} updated of {} even ids", updates.len()),
    );
    Ok(())
}

fn upsert(rows: i64) -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    let batch: Vec<Vec<Value>> = (rows - 2..=rows + 3)
        .map(|id| {
            vec![
                Value::Int(id),
                Value::Int(id),
                Value::Text("upserted".to_owned()),
            ]
        })
        .collect();
    let upserted = target
        .bulk_upsert(
            "orders",
            &names(&["id"]),
            &names(&["amount_cents", "note"]),
            &batch,
        )
        .map_err(db)?;
    checks::report("upsert", upserted == 6, &format!("{upserted} upserted"));
    Ok(())
}

fn prune(rows: i64) -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    let mut keys: Vec<Vec<Value>> = (1..=rows + 3)
        .filter(|id| id % 5 == 0)
        .map(|id| vec![Value::Int(id)])
        .collect();
    let existing = keys.len() as u64 + u64::from(V2);
    keys.push(vec![Value::Int(rows + 100)]);
    if V2 {
        keys.push(vec![Value::Int(3)]);
    }
    let deleted = target
        .bulk_delete("orders", &names(&["id"]), &keys)
        .map_err(db)?;
    // A comparison answers a delete it has no record of with the keys given (it has no
    // database to count the rows that existed): v2, compared on v1's journal, says nothing.
    if !V2 {
        checks::report(
            "prune",
            deleted == existing,
            &format!("{deleted} deleted of {existing} existing"),
        );
    }
    Ok(())
}

fn statements() -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    let sql = format!(
        "UPDATE orders SET note = {} WHERE id = {}",
        ph(&target, 1),
        ph(&target, 2)
    );
    for id in 1..=3 {
        let note = if V2 && id == 2 {
            "t2".to_owned()
        } else {
            format!("s{id}")
        };
        target
            .execute(&sql, &[Value::Text(note), Value::Int(id)])
            .map_err(db)?;
    }
    Ok(())
}

fn read_only_probe() -> Result<(), PluginError> {
    let source = open("source").map_err(db)?;
    let row = vec![vec![Value::Int(1), Value::Int(1)]];
    let attempts = [
        source.bulk_update("orders", &names(&["id"]), &names(&["amount_cents"]), &row),
        source.bulk_upsert("orders", &names(&["id"]), &names(&["amount_cents"]), &row),
        source.bulk_delete("orders", &names(&["id"]), &[vec![Value::Int(1)]]),
    ];
    let mut details = Vec::new();
    let mut refused = source.access() == Access::ReadOnly;
    for attempt in attempts {
        match attempt {
            Ok(n) => {
                refused = false;
                details.push(format!("wrote {n}"));
            }
            Err(e) => {
                refused &= e.kind == DbErrorKind::ReadOnly;
                details.push(format!("{:?}: {}", e.kind, e.message));
            }
        }
    }
    checks::report("read-only refused", refused, &details.join(" | "));
    Ok(())
}

/// The amount of order `id`, read now.
fn amount_of(target: &Connection, id: i64) -> Result<Option<i64>, PluginError> {
    let rows = target
        .query(
            &format!("SELECT amount_cents FROM orders WHERE id = {}", ph(target, 1)),
            &[Value::Int(id)],
        )
        .map_err(db)?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    })
}

fn all_or_nothing() -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    let before = amount_of(&target, 1)?;
    let mut rows = vec![vec![Value::Int(1), Value::Int(0)]];
    rows.extend((1000..2500).map(|id| vec![Value::Int(id), Value::Int(0)]));
    rows.push(vec![Value::Int(2), Value::Null]);
    let outcome = target.bulk_update(
        "orders",
        &names(&["id"]),
        &names(&["amount_cents"]),
        &rows,
    );
    let after = amount_of(&target, 1)?;
    let detail = format!("{outcome:?}; order 1: {before:?} before, {after:?} after");
    let failed_as_constraint =
        matches!(&outcome, Err(e) if e.kind == DbErrorKind::Constraint);
    checks::report(
        "failed write undone",
        failed_as_constraint && before.is_some() && after == before,
        &detail,
    );
    Ok(())
}

fn outside() -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    target
        .bulk_update(
            "orders",
            &names(&["id"]),
            &names(&["amount_cents"]),
            &[vec![Value::Int(1), Value::Int(0)]],
        )
        .map_err(db)?;
    Ok(())
}

fn unit(name: &str, description: &str) -> UnitInfo {
    UnitInfo {
        name: name.to_owned(),
        description: description.to_owned(),
        scope: None,
        transactional: true,
        always_run: false,
        skipped: None,
        lock_timeout_ms: None,
        statement_timeout_ms: None,
    }
}

fn config_key(name: &str, description: &str, default: &str) -> ConfigKey {
    ConfigKey {
        name: name.to_owned(),
        description: description.to_owned(),
        required: false,
        default_value: Some(default.to_owned()),
        secret: false,
    }
}

struct StructuredWrites;

impl Guest for StructuredWrites {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "structured-writes".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Writes orders by key through contract 0.2.0's bulk writes".to_owned(),
            connections: vec![
                ConnectionNeed {
                    name: "target".to_owned(),
                    access: Access::ReadWrite,
                    description: "holds orders".to_owned(),
                    writes: vec!["orders".to_owned()],
                    optional: false,
                },
                ConnectionNeed {
                    name: "source".to_owned(),
                    access: Access::ReadOnly,
                    description: "read-only: `read-only-probe` tries to write through it"
                        .to_owned(),
                    writes: Vec::new(),
                    optional: true,
                },
            ],
            units: Vec::new(),
            config: vec![
                config_key("rows", "orders seeded", "20"),
                config_key("batch", "rows per bulk-update call of `reprice`", "1000"),
                config_key(
                    "probe_read_only",
                    "whether list-units adds `read-only-probe`",
                    "false",
                ),
                config_key(
                    "probe_failure",
                    "whether list-units adds `all-or-nothing`",
                    "false",
                ),
                config_key(
                    "outside",
                    "whether list-units adds the non-transactional `outside`",
                    "false",
                ),
            ],
        }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), PluginError> {
        SETTINGS.with_borrow_mut(|s| {
            for (key, value) in config {
                let bad = |e: std::num::ParseIntError| PluginError::Failed(format!("{key}: {e}"));
                match key.as_str() {
                    "rows" => s.rows = value.parse().map_err(bad)?,
                    "batch" => s.batch = value.parse().map_err(bad)?,
                    "probe_read_only" => s.probe_read_only = value == "true",
                    "probe_failure" => s.probe_failure = value == "true",
                    "outside" => s.outside = value == "true",
                    _ => {}
                }
            }
            Ok(())
        })
    }

    fn list_units() -> Result<Vec<UnitInfo>, PluginError> {
        let mut units = vec![
            unit("seed", "creates and fills orders"),
            unit("reprice", "bulk-updates the even orders' amounts"),
            unit("upsert", "bulk-upserts six orders around the last id"),
            unit("prune", "bulk-deletes the orders whose id is divisible by 5"),
            unit("statements", "three raw UPDATE statements"),
        ];
        let (probe_read_only, probe_failure, outside) =
            SETTINGS.with_borrow(|s| (s.probe_read_only, s.probe_failure, s.outside));
        if probe_read_only {
            units.push(unit(
                "read-only-probe",
                "tries the bulk writes through a read-only connection",
            ));
        }
        if probe_failure {
            units.push(unit(
                "all-or-nothing",
                "a bulk-update whose last row fails writes nothing",
            ));
        }
        if outside {
            units.push(UnitInfo {
                transactional: false,
                ..unit("outside", "a bulk-update outside a transaction")
            });
        }
        Ok(units)
    }

    fn run_unit(unit: String) -> Result<(), PluginError> {
        let (rows, batch) = SETTINGS.with_borrow(|s| (s.rows, s.batch));
        match unit.as_str() {
            "seed" => seed(rows),
            "reprice" => reprice(batch),
            "upsert" => upsert(rows),
            "prune" => prune(rows),
            "statements" => statements(),
            "read-only-probe" => read_only_probe(),
            "all-or-nothing" => all_or_nothing(),
            "outside" => outside(),
            other => Err(PluginError::Failed(format!("no unit {other}"))),
        }
    }

    fn verify() -> Result<(), PluginError> {
        Ok(())
    }
}

export!(StructuredWrites);
