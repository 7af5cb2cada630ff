//! A plugin built with `wit-bindgen` directly against `guest-sdk/wit/v0.1.1`, frozen
//! here since the SDK moved to 0.2.0: the proof that a component of the previous
//! contract keeps running unchanged (issue 19: "0.1.0 and 0.1.1 plugins keep running").
//!
//! Unit `write-rows` creates `contract_rows(id, contract, label)` on `target` and
//! inserts `rows` rows (`contract` = `0.1.1`) in batches of `batch` rows with one bulk
//! insert each, saving a checkpoint (0.1.1's `checkpoint` interface) after every batch
//! with the last id written. With `fail_after = <n>` it fails after its `n`th
//! checkpoint, so a rerun resumes: `checkpoint.last` gives the id to continue after,
//! and the rerun logs `resumed after <id>`. It then counts its rows with a query, reads
//! them back through a cursor, and `verify` reports the check `contract 0.1.1 rows`.
//!
//! With `query = "<select>"`, `write-rows` first runs that query on `target` and logs
//! each value it read (`read` with field `value`, its debug form); a query the host
//! refuses fails the unit with the host's message (how a 0.1.x plugin meets a column of
//! a type the host does not model).

wit_bindgen::generate!({
    path: "../../../guest-sdk/wit/v0.1.1",
    world: "migration",
});

use std::cell::{Cell, RefCell};

use exports::migrun::plugin::plugin::{
    ConfigKey, ConnectionNeed, Guest, PluginError, PluginInfo, UnitInfo,
};
use migrun::plugin::database::{Access, Dialect, open};
use migrun::plugin::types::Value;
use migrun::plugin::{checkpoint, checks, log};

thread_local! {
    static ROWS: Cell<i64> = const { Cell::new(10) };
    static BATCH: Cell<i64> = const { Cell::new(4) };
    static FAIL_AFTER: Cell<i64> = const { Cell::new(0) };
    static QUERY: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn db(e: migrun::plugin::types::DbError) -> PluginError {
    PluginError::Database(e)
}

fn count_rows() -> Result<i64, PluginError> {
    let target = open("target").map_err(db)?;
    let counted = target
        .query(
            "SELECT count(*) FROM contract_rows WHERE contract = '0.1.1'",
            &[],
        )
        .map_err(db)?;
    match counted.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => Ok(*n),
        other => Err(PluginError::Failed(format!(
            "count(*) came back as {other:?}"
        ))),
    }
}

fn write_rows() -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    if let Some(sql) = QUERY.with(|q| q.borrow().clone()) {
        for row in target.query(&sql, &[]).map_err(db)?.rows {
            for value in row {
                log::write(
                    log::Level::Info,
                    "read",
                    &[("value".to_owned(), format!("{value:?}"))],
                );
            }
        }
    }
    target
        .execute(
            "CREATE TABLE IF NOT EXISTS contract_rows (id INTEGER PRIMARY KEY, contract TEXT NOT NULL, label TEXT)",
            &[],
        )
        .map_err(db)?;
    let mut after: i64 = match checkpoint::last() {
        Some(state) => {
            let id: i64 = state
                .parse()
                .map_err(|_| PluginError::Failed(format!("not my checkpoint: {state}")))?;
            log::write(
                log::Level::Info,
                &format!("resumed after {id}"),
                &[("after".to_owned(), id.to_string())],
            );
            id
        }
        None => 0,
    };
    let (rows, batch, fail_after) = (ROWS.get(), BATCH.get(), FAIL_AFTER.get());
    let columns = ["id".to_owned(), "contract".to_owned(), "label".to_owned()];
    let mut checkpoints = 0;
    while after < rows {
        let last = (after + batch).min(rows);
        let values: Vec<Vec<Value>> = (after + 1..=last)
            .map(|id| {
                vec![
                    Value::Int(id),
                    Value::Text("0.1.1".to_owned()),
                    if id % 2 == 0 {
                        Value::Null
                    } else {
                        Value::Text(format!("row {id}"))
                    },
                ]
            })
            .collect();
        target
            .bulk_insert("contract_rows", &columns, &values)
            .map_err(db)?;
        checkpoint::save(&last.to_string()).map_err(db)?;
        log::progress("write-rows", last as u64, Some(rows as u64));
        after = last;
        checkpoints += 1;
        if checkpoints == fail_after {
            return Err(PluginError::Failed(format!(
                "failing after checkpoint {checkpoints} as configured (fail_after)"
            )));
        }
    }
    let placeholder = match target.dialect() {
        Dialect::Postgres => "$1",
        Dialect::Sqlite | Dialect::Mysql => "?",
    };
    let cursor = target
        .open_cursor(
            &format!("SELECT id FROM contract_rows WHERE id > {placeholder} ORDER BY id"),
            &[Value::Int(0)],
            3,
        )
        .map_err(db)?;
    let mut seen = 0;
    while let Some(batch) = cursor.next_batch().map_err(db)? {
        seen += batch.len() as i64;
    }
    drop(cursor);
    log::write(
        log::Level::Info,
        "wrote rows",
        &[
            ("rows".to_owned(), count_rows()?.to_string()),
            ("read back".to_owned(), seen.to_string()),
        ],
    );
    Ok(())
}

struct Contract011;

impl Guest for Contract011 {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "contract-v0-1-1".to_owned(),
            version: "0.1.1".to_owned(),
            description: "writes rows through contract 0.1.1, with a checkpoint per batch"
                .to_owned(),
            connections: vec![ConnectionNeed {
                name: "target".to_owned(),
                access: Access::ReadWrite,
                description: "where contract_rows goes".to_owned(),
                writes: vec!["contract_rows".to_owned()],
            }],
            units: vec![UnitInfo {
                name: "write-rows".to_owned(),
                description: "inserts the rows in batches, a checkpoint after each".to_owned(),
            }],
            config: ["rows", "batch", "fail_after", "query"]
                .into_iter()
                .map(|name| ConfigKey {
                    name: name.to_owned(),
                    description: format!("{name} (a whole number)"),
                    required: false,
                    default_value: None,
                    secret: false,
                })
                .collect(),
        }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), PluginError> {
        for (key, value) in config {
            if key == "query" {
                QUERY.with(|q| *q.borrow_mut() = Some(value));
                continue;
            }
            let n: i64 = value
                .parse()
                .map_err(|_| PluginError::Failed(format!("{key} must be a whole number")))?;
            match key.as_str() {
                "rows" => ROWS.set(n),
                "batch" => BATCH.set(n.max(1)),
                "fail_after" => FAIL_AFTER.set(n),
                _ => {}
            }
        }
        Ok(())
    }

    fn list_units() -> Result<Vec<UnitInfo>, PluginError> {
        Ok(Self::describe().units)
    }

    fn run_unit(unit: String) -> Result<(), PluginError> {
        match unit.as_str() {
            "write-rows" => write_rows(),
            other => Err(PluginError::Failed(format!("unknown unit {other}"))),
        }
    }

    fn verify() -> Result<(), PluginError> {
        let n = count_rows()?;
        let expected = ROWS.get();
        checks::report(
            "contract 0.1.1 rows",
            n == expected,
            &format!("{n} rows of contract 0.1.1, {expected} expected"),
        );
        Ok(())
    }
}

export!(Contract011);
