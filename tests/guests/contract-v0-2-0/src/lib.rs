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
//! `transactional: false` (it has no body here: `tests/guests/non-transactional` runs one).
//!
//! `describe` declares the unit timeouts of 0.2.0 on `write-rows` (lock 2s, statement
//! 30s) for `migrun inspect`; `list-units` declares them only when configured
//! (`lock_timeout_ms`, `statement_timeout_ms`), so that a run proves the unit's own
//! value overrides `[limits]`. With `sleep_ms = <n>`, `write-rows` first runs
//! `SELECT pg_sleep(n / 1000)` (PostgreSQL) so that a statement timeout can fire.
//!
//! `write-rows`' scope is part of its ledger identity: run with `rows = 3` and then
//! `rows = 5`, it runs twice (ids continue after the highest one there), and a third run
//! with either is skipped. With `always_run = true`, `list-units` adds `stamp`,
//! declared always-run: it appends one `contract_rows` row of contract `stamp` on every
//! run. With `skip = "<reason>"`, it adds `retired`, which it lists as skipped for that
//! reason (running it fails). With `probe_audit = true`, it adds `probe-audit`, which
//! opens the optional `audit` and reports a check saying whether it was provided (an
//! `unknown-connection` error means it was not; any other error fails the unit).
//!
//! With `copy = "<select> => <table>"`, `list-units` adds `copy-values`: it reads
//! the select on `audit` through a cursor and bulk-inserts every row unchanged
//! into `<table>` on `target` (the select's column names are the table's), never
//! looking inside a value — typed values (0.2.0) included, which it counts and
//! logs (`typed` field: `<type name>=<count>` per type, sorted).

wit_bindgen::generate!({
    path: "../../../guest-sdk/wit/v0.2.0",
    world: "migration",
});

use std::cell::RefCell;

use exports::migrun::plugin::plugin::{
    ConfigKey, ConnectionNeed, Guest, PluginError, PluginInfo, UnitInfo,
};
use migrun::plugin::database::{Access, Connection, Dialect, open};
use migrun::plugin::types::DbErrorKind;
use migrun::plugin::types::Value;
use migrun::plugin::{checkpoint, checks, log};

struct Settings {
    rows: i64,
    /// The unit's own timeouts, when configured.
    lock_timeout_ms: Option<u32>,
    statement_timeout_ms: Option<u32>,
    /// Sleep this long (PostgreSQL `pg_sleep`) before writing.
    sleep_ms: Option<u32>,
    non_transactional: bool,
    always_run: bool,
    skip: Option<String>,
    probe_audit: bool,
    /// `(select on audit, table on target)`.
    copy: Option<(String, String)>,
}

thread_local! {
    static SETTINGS: RefCell<Settings> = const {
        RefCell::new(Settings {
            rows: 3,
            lock_timeout_ms: None,
            statement_timeout_ms: None,
            sleep_ms: None,
            non_transactional: false,
            always_run: false,
            skip: None,
            probe_audit: false,
            copy: None,
        })
    };
}

/// Copies the rows of `select` (on `audit`) into `table` (on `target`), values untouched.
fn copy_values(select: &str, table: &str) -> Result<(), PluginError> {
    let source = open("audit").map_err(PluginError::Database)?;
    let target = open("target").map_err(PluginError::Database)?;
    let cursor = source
        .open_cursor(select, &[], 100)
        .map_err(PluginError::Database)?;
    let columns: Vec<String> = cursor.columns().into_iter().map(|c| c.name).collect();
    let mut typed = std::collections::BTreeMap::<String, u64>::new();
    let mut copied = 0u64;
    while let Some(batch) = cursor.next_batch().map_err(PluginError::Database)? {
        for row in &batch {
            for value in row {
                if let Value::Typed(t) = value {
                    *typed.entry(t.type_name.clone()).or_default() += 1;
                }
            }
        }
        copied += target
            .bulk_insert(table, &columns, &batch)
            .map_err(PluginError::Database)?;
    }
    drop(cursor);
    let typed: Vec<String> = typed.iter().map(|(k, n)| format!("{k}={n}")).collect();
    log::write(
        log::Level::Info,
        "copied values",
        &[
            ("rows".to_owned(), copied.to_string()),
            ("typed".to_owned(), typed.join(",")),
        ],
    );
    Ok(())
}

/// The `n`th parameter placeholder on `conn`'s dialect.
fn ph(conn: &Connection, n: usize) -> String {
    match conn.dialect() {
        Dialect::Postgres => format!("${n}"),
        Dialect::Sqlite | Dialect::Mysql => "?".to_owned(),
    }
}

fn write_rows(rows: i64, sleep_ms: Option<u32>) -> Result<(), PluginError> {
    let target = open("target").map_err(PluginError::Database)?;
    if let Some(ms) = sleep_ms {
        target
            .execute(&format!("SELECT pg_sleep({})", f64::from(ms) / 1000.0), &[])
            .map_err(PluginError::Database)?;
    }
    target
        .execute(
            "CREATE TABLE IF NOT EXISTS contract_rows (id INTEGER PRIMARY KEY, contract TEXT NOT NULL, label TEXT)",
            &[],
        )
        .map_err(PluginError::Database)?;
    // Ids continue after the highest one there: a run with another scope adds its rows.
    let base = match target
        .query("SELECT max(id) FROM contract_rows", &[])
        .map_err(PluginError::Database)?
        .rows
        .first()
        .and_then(|r| r.first())
    {
        Some(Value::Int(n)) => *n,
        _ => 0,
    };
    let batch: Vec<Vec<Value>> = (base + 1..=base + rows)
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
            &format!(
                "SELECT count(*) FROM contract_rows WHERE contract = {} AND id > {}",
                ph(&target, 1),
                ph(&target, 2)
            ),
            &[Value::Text("0.2.0".to_owned()), Value::Int(base)],
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
        .open_cursor(
            &format!(
                "SELECT id FROM contract_rows WHERE id > {} ORDER BY id",
                ph(&target, 1)
            ),
            &[Value::Int(base)],
            2,
        )
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

/// `stamp` (always-run): one more `contract_rows` row of contract `stamp` per run.
fn stamp() -> Result<(), PluginError> {
    let target = open("target").map_err(PluginError::Database)?;
    target
        .execute(
            "CREATE TABLE IF NOT EXISTS contract_rows (id INTEGER PRIMARY KEY, contract TEXT NOT NULL, label TEXT)",
            &[],
        )
        .map_err(PluginError::Database)?;
    target
        .execute(
            "INSERT INTO contract_rows (id, contract, label) \
             SELECT COALESCE(MAX(id), 0) + 1, 'stamp', NULL FROM contract_rows",
            &[],
        )
        .map_err(PluginError::Database)?;
    Ok(())
}

/// `probe-audit`: whether the optional `audit` connection was provided, as a check.
fn probe_audit() -> Result<(), PluginError> {
    match open("audit") {
        Ok(_) => checks::report("audit connection", true, "provided"),
        Err(e) if e.kind == DbErrorKind::UnknownConnection => {
            checks::report(
                "audit connection",
                true,
                &format!("not provided: {}", e.message),
            );
        }
        Err(e) => return Err(PluginError::Database(e)),
    }
    Ok(())
}

/// A unit as this plugin lists it: transactional, run once, not skipped, unless changed.
fn unit(name: &str, description: &str, scope: Option<String>) -> UnitInfo {
    UnitInfo {
        name: name.to_owned(),
        description: description.to_owned(),
        scope,
        transactional: true,
        always_run: false,
        skipped: None,
        lock_timeout_ms: None,
        statement_timeout_ms: None,
    }
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
                    description:
                        "read by `copy-values` only (when `copy` is set): an optional need"
                            .to_owned(),
                    writes: Vec::new(),
                    optional: true,
                },
            ],
            units: vec![UnitInfo {
                lock_timeout_ms: Some(2000),
                statement_timeout_ms: Some(30_000),
                ..unit(
                    "write-rows",
                    "bulk-inserts `rows` rows",
                    Some("rows=3".to_owned()),
                )
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
                    name: "copy".to_owned(),
                    description: "`<select on audit> => <table on target>`: adds `copy-values`"
                        .to_owned(),
                    required: false,
                    default_value: None,
                    secret: false,
                },
                ConfigKey {
                    name: "always_run".to_owned(),
                    description: "whether list-units adds the always-run unit `stamp`".to_owned(),
                    required: false,
                    default_value: Some("false".to_owned()),
                    secret: false,
                },
                ConfigKey {
                    name: "skip".to_owned(),
                    description: "a reason: list-units adds `retired`, skipped for it".to_owned(),
                    required: false,
                    default_value: None,
                    secret: false,
                },
                ConfigKey {
                    name: "lock_timeout_ms".to_owned(),
                    description: "`write-rows`'s own lock timeout, in ms".to_owned(),
                    required: false,
                    default_value: None,
                    secret: false,
                },
                ConfigKey {
                    name: "statement_timeout_ms".to_owned(),
                    description: "`write-rows`'s own statement timeout, in ms".to_owned(),
                    required: false,
                    default_value: None,
                    secret: false,
                },
                ConfigKey {
                    name: "sleep_ms".to_owned(),
                    description: "`write-rows` sleeps this long first (PostgreSQL)".to_owned(),
                    required: false,
                    default_value: None,
                    secret: false,
                },
                ConfigKey {
                    name: "probe_audit".to_owned(),
                    description: "whether list-units adds `probe-audit`".to_owned(),
                    required: false,
                    default_value: Some("false".to_owned()),
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
                    "lock_timeout_ms" | "statement_timeout_ms" | "sleep_ms" => {
                        let ms = value
                            .parse()
                            .map_err(|e| PluginError::Failed(format!("{key}: {e}")))?;
                        match key.as_str() {
                            "lock_timeout_ms" => s.lock_timeout_ms = Some(ms),
                            "statement_timeout_ms" => s.statement_timeout_ms = Some(ms),
                            _ => s.sleep_ms = Some(ms),
                        }
                    }
                    "always_run" => s.always_run = value == "true",
                    "probe_audit" => s.probe_audit = value == "true",
                    "skip" => s.skip = Some(value),
                    "copy" => {
                        let (select, table) = value.split_once("=>").ok_or_else(|| {
                            PluginError::Failed("copy: expected `<select> => <table>`".into())
                        })?;
                        s.copy = Some((select.trim().to_owned(), table.trim().to_owned()));
                    }
                    _ => {}
                }
            }
            Ok(())
        })
    }

    fn list_units() -> Result<Vec<UnitInfo>, PluginError> {
        SETTINGS.with_borrow(|s| {
            let mut units = Vec::new();
            if s.always_run {
                units.push(UnitInfo {
                    always_run: true,
                    ..unit("stamp", "appends one `stamp` row on every run", None)
                });
            }
            units.push(UnitInfo {
                lock_timeout_ms: s.lock_timeout_ms,
                statement_timeout_ms: s.statement_timeout_ms,
                ..unit(
                    "write-rows",
                    "bulk-inserts `rows` rows",
                    Some(format!("rows={}", s.rows)),
                )
            });
            if let Some(reason) = &s.skip {
                units.push(UnitInfo {
                    skipped: Some(reason.clone()),
                    ..unit("retired", "never runs: listed as skipped", None)
                });
            }
            if s.probe_audit {
                units.push(unit(
                    "probe-audit",
                    "reports whether `audit` was provided",
                    None,
                ));
            }
            if s.copy.is_some() {
                units.push(unit(
                    "copy-values",
                    "copies the `copy` select into its table",
                    None,
                ));
            }
            if s.non_transactional {
                units.push(UnitInfo {
                    transactional: false,
                    ..unit("reindex", "a step outside a transaction", None)
                });
            }
            Ok(units)
        })
    }

    fn run_unit(unit: String) -> Result<(), PluginError> {
        match unit.as_str() {
            "write-rows" => {
                let (rows, sleep_ms) = SETTINGS.with_borrow(|s| (s.rows, s.sleep_ms));
                write_rows(rows, sleep_ms)
            }
            "stamp" => stamp(),
            "probe-audit" => probe_audit(),
            "retired" => Err(PluginError::Failed(
                "`retired` is listed as skipped and must never run".into(),
            )),
            "copy-values" => {
                let (select, table) = SETTINGS
                    .with_borrow(|s| s.copy.clone())
                    .ok_or_else(|| PluginError::Failed("copy is not configured".into()))?;
                copy_values(&select, &table)
            }
            other => Err(PluginError::Failed(format!("no unit {other}"))),
        }
    }

    fn verify() -> Result<(), PluginError> {
        Ok(())
    }
}

export!(ContractV020);
