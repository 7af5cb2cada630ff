//! A plugin built with `wit-bindgen` against `guest-sdk/wit/v0.2.0` whose second unit
//! is declared `transactional: false` (seed 003's "add an index without blocking
//! writes"), for `tests/e2e/non_transactional.rs`.
//!
//! - `create-table` (transactional): `step_rows(id, label)` on `target` with three rows.
//! - `build-index` (non-transactional unless `step_transactional = true`): the index
//!   `step_rows_label` — `CREATE INDEX CONCURRENTLY IF NOT EXISTS` on PostgreSQL,
//!   `CREATE INDEX IF NOT EXISTS` on SQLite and MariaDB — then
//!   `UPDATE step_rows SET label = 'outside' WHERE id = 1`. Both are safe to repeat, as a
//!   non-transactional unit's statements must be: a failed unit runs again from its start.
//!   With `then`, it goes on with something that fails after those two statements:
//!   `fail` (a duplicate key), `bulk-insert` or `checkpoint` (both refused by the host
//!   in a non-transactional unit). The unit returns the error it got.

wit_bindgen::generate!({
    path: "../../../guest-sdk/wit/v0.2.0",
    world: "migration",
});

use std::cell::RefCell;

use exports::migrun::plugin::plugin::{
    ConfigKey, ConnectionNeed, Guest, PluginError, PluginInfo, UnitInfo,
};
use migrun::plugin::database::{Access, Dialect, open};
use migrun::plugin::types::Value;
use migrun::plugin::{checkpoint, log};

struct Settings {
    step_transactional: bool,
    then: String,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = const {
        RefCell::new(Settings { step_transactional: false, then: String::new() })
    };
}

fn units(step_transactional: bool) -> Vec<UnitInfo> {
    vec![
        UnitInfo {
            name: "create-table".to_owned(),
            description: "creates step_rows with three rows".to_owned(),
            scope: None,
            transactional: true,
            lock_timeout_ms: None,
            statement_timeout_ms: None,
            always_run: false,
            skipped: None,
        },
        UnitInfo {
            name: "build-index".to_owned(),
            description: "indexes step_rows.label without blocking writes, outside a transaction"
                .to_owned(),
            scope: None,
            transactional: step_transactional,
            lock_timeout_ms: None,
            statement_timeout_ms: None,
            always_run: false,
            skipped: None,
        },
    ]
}

fn db(e: migrun::plugin::types::DbError) -> PluginError {
    PluginError::Database(e)
}

fn create_table() -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    target
        .execute(
            "CREATE TABLE step_rows (id INTEGER PRIMARY KEY, label VARCHAR(40))",
            &[],
        )
        .map_err(db)?;
    target
        .execute(
            "INSERT INTO step_rows (id, label) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            &[],
        )
        .map_err(db)?;
    Ok(())
}

fn build_index(then: &str) -> Result<(), PluginError> {
    let target = open("target").map_err(db)?;
    let index = match target.dialect() {
        Dialect::Postgres => {
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS step_rows_label ON step_rows (label)"
        }
        Dialect::Sqlite | Dialect::Mysql => {
            "CREATE INDEX IF NOT EXISTS step_rows_label ON step_rows (label)"
        }
    };
    target.execute(index, &[]).map_err(db)?;
    let updated = target
        .execute("UPDATE step_rows SET label = 'outside' WHERE id = 1", &[])
        .map_err(db)?;
    log::write(
        log::Level::Info,
        "index built",
        &[("updated".to_owned(), updated.to_string())],
    );
    match then {
        "fail" => {
            target
                .execute("INSERT INTO step_rows (id, label) VALUES (1, 'again')", &[])
                .map_err(db)?;
        }
        "bulk-insert" => {
            target
                .bulk_insert(
                    "step_rows",
                    &["id".to_owned(), "label".to_owned()],
                    &[vec![Value::Int(4), Value::Text("d".to_owned())]],
                )
                .map_err(db)?;
        }
        "checkpoint" => checkpoint::save("after the index").map_err(db)?,
        _ => {}
    }
    if target.access() != Access::ReadWrite {
        return Err(PluginError::Failed("target is not read-write".to_owned()));
    }
    Ok(())
}

struct NonTransactional;

impl Guest for NonTransactional {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "non-transactional".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: "Builds an index outside a transaction (contract 0.2.0 preview)"
                .to_owned(),
            connections: vec![ConnectionNeed {
                name: "target".to_owned(),
                access: Access::ReadWrite,
                description: "holds step_rows".to_owned(),
                writes: vec!["step_rows".to_owned()],
                optional: false,
            }],
            units: units(false),
            config: vec![
                ConfigKey {
                    name: "step_transactional".to_owned(),
                    description: "declare `build-index` transactional instead (for contrast)"
                        .to_owned(),
                    required: false,
                    default_value: Some("false".to_owned()),
                    secret: false,
                },
                ConfigKey {
                    name: "then".to_owned(),
                    description: "what `build-index` does last: fail, bulk-insert, checkpoint"
                        .to_owned(),
                    required: false,
                    default_value: None,
                    secret: false,
                },
            ],
        }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), PluginError> {
        SETTINGS.with_borrow_mut(|s| {
            for (key, value) in config {
                match key.as_str() {
                    "step_transactional" => s.step_transactional = value == "true",
                    "then" => s.then = value,
                    _ => {}
                }
            }
        });
        Ok(())
    }

    fn list_units() -> Result<Vec<UnitInfo>, PluginError> {
        Ok(SETTINGS.with_borrow(|s| units(s.step_transactional)))
    }

    fn run_unit(unit: String) -> Result<(), PluginError> {
        match unit.as_str() {
            "create-table" => create_table(),
            "build-index" => build_index(&SETTINGS.with_borrow(|s| s.then.clone())),
            other => Err(PluginError::Failed(format!("no unit {other}"))),
        }
    }

    fn verify() -> Result<(), PluginError> {
        Ok(())
    }
}

export!(NonTransactional);
