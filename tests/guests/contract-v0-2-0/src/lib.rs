//! A plugin built with `wit-bindgen` directly against `guest-sdk/wit/v0.2.0`
//! (the SDK stays on 0.1.1 until the contract issue moves it). It proves that a
//! 0.2.0 component runs beside 0.1.0 and 0.1.1 ones and that what 0.2.0 adds
//! reaches the host.
//!
//! It declares the 0.2.0 fields: connection `audit` is `optional`, unit
//! `write-rows` has a `scope` derived from its configuration (`rows=<n>`).
//! `write-rows` goes through every imported interface: it creates
//! `contract_rows(id, contract, label)` on `target`, bulk-inserts `rows` rows, reads
//! them back with a query and a cursor, logs, reports a check and asks for its last
//! checkpoint. With `non_transactional = true`, `list-units` adds `reindex`, declared
//! `transactional: false`, which this migrun must refuse before any unit runs.

wit_bindgen::generate!({
    path: "../../../guest-sdk/wit/v0.2.0",
    world: "migration",
});

use std::cell::RefCell;

use exports::migrun::plugin::plugin::{
    ConfigKey, ConnectionNeed, Guest, PluginError, PluginInfo, UnitInfo,
};
use migrun::plugin::database::{Access, open};
use migrun::plugin::types::Value;
use migrun::plugin::{checkpoint, checks, log};

struct Settings {
    rows: i64,
    non_transactional: bool,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = const {
        RefCell::new(Settings { rows: 3, non_transactional: false })
    };
}

fn write_rows(rows: i64) -> Result<(), PluginError> {
    let target = open("target").map_err(PluginError::Database)?;
    target
        .execute(
            "CREATE TABLE IF NOT EXISTS contract_rows (id INTEGER PRIMARY KEY, contract TEXT NOT NULL, label TEXT)",
            &[],
        )
        .map_err(PluginError::Database)?;
    let batch: Vec<Vec<Value>> = (1..=rows)
        .map(|id| {
            vec![
                Value::Int(id),
                Value::Text("0.2.0".to_owned()),
                if id % 2 == 0 {
                    Value::Null
                } else {
                    Value::Text(format!("row {id}"))
                },
            ]
        })
        .collect();
    let written = target
        .bulk_insert(
            "contract_rows",
            &["id".to_owned(), "contract".to_owned(), "label".to_owned()],
            &batch,
        )
        .map_err(PluginError::Database)?;
    let counted = target
        .query(
            "SELECT count(*) FROM contract_rows WHERE contract = ?",
            &[Value::Text("0.2.0".to_owned())],
        )
        .map_err(PluginError::Database)?;
    let count = match counted.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n,
        other => {
            return Err(PluginError::Failed(format!(
                "count(*) came back as {other:?}"
            )));
        }
    };
    let cursor = target
        .open_cursor("SELECT id FROM contract_rows ORDER BY id", &[], 2)
        .map_err(PluginError::Database)?;
    let mut seen = 0;
    while let Some(batch) = cursor.next_batch().map_err(PluginError::Database)? {
        seen += batch.len() as i64;
    }
    drop(cursor);
    log::write(
        log::Level::Info,
        "contract 0.2.0 wrote its rows",
        &[("rows".to_owned(), written.to_string())],
    );
    checks::report(
        "contract 0.2.0 rows",
        count == rows && seen == rows && target.access() == Access::ReadWrite,
        &format!("{count} counted, {seen} read through a cursor, {written} written"),
    );
    if let Some(state) = checkpoint::last() {
        return Err(PluginError::Failed(format!(
            "unexpected checkpoint {state}"
        )));
    }
    Ok(())
}

struct ContractV020;

impl Guest for ContractV020 {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "contract-v0-2-0".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Writes rows through contract 0.2.0 (preview)".to_owned(),
            connections: vec![
                ConnectionNeed {
                    name: "target".to_owned(),
                    access: Access::ReadWrite,
                    description: "holds contract_rows".to_owned(),
                    writes: vec!["contract_rows".to_owned()],
                    optional: false,
                },
                ConnectionNeed {
                    name: "audit".to_owned(),
                    access: Access::ReadOnly,
                    description: "never opened: shows an optional need".to_owned(),
                    writes: Vec::new(),
                    optional: true,
                },
            ],
            units: vec![UnitInfo {
                name: "write-rows".to_owned(),
                description: "bulk-inserts `rows` rows".to_owned(),
                scope: Some("rows=3".to_owned()),
                transactional: true,
            }],
            config: vec![
                ConfigKey {
                    name: "rows".to_owned(),
                    description: "how many rows to write".to_owned(),
                    required: false,
                    default_value: Some("3".to_owned()),
                    secret: false,
                },
                ConfigKey {
                    name: "non_transactional".to_owned(),
                    description: "whether list-units adds a non-transactional unit".to_owned(),
                    required: false,
                    default_value: Some("false".to_owned()),
                    secret: false,
                },
            ],
        }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), PluginError> {
        SETTINGS.with_borrow_mut(|s| {
            for (key, value) in config {
                match key.as_str() {
                    "rows" => {
                        s.rows = value
                            .parse()
                            .map_err(|e| PluginError::Failed(format!("rows: {e}")))?
                    }
                    "non_transactional" => s.non_transactional = value == "true",
                    _ => {}
                }
            }
            Ok(())
        })
    }

    fn list_units() -> Result<Vec<UnitInfo>, PluginError> {
        SETTINGS.with_borrow(|s| {
            let mut units = vec![UnitInfo {
                name: "write-rows".to_owned(),
                description: "bulk-inserts `rows` rows".to_owned(),
                scope: Some(format!("rows={}", s.rows)),
                transactional: true,
            }];
            if s.non_transactional {
                units.push(UnitInfo {
                    name: "reindex".to_owned(),
                    description: "a step outside a transaction".to_owned(),
                    scope: None,
                    transactional: false,
                });
            }
            Ok(units)
        })
    }

    fn run_unit(unit: String) -> Result<(), PluginError> {
        match unit.as_str() {
            "write-rows" => write_rows(SETTINGS.with_borrow(|s| s.rows)),
            other => Err(PluginError::Failed(format!("no unit {other}"))),
        }
    }

    fn verify() -> Result<(), PluginError> {
        Ok(())
    }
}

export!(ContractV020);
