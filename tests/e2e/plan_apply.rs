//! `migrun plugin.wasm --plan plan.json`: the approved plan applied exactly, or nothing more
//! changed and the reason said (issue 20).
//!
//! What is proven, on SQLite, PostgreSQL and MariaDB:
//!
//! - a dry-run's plan (`migrun.plan/2`) applied as it stands: every unit `as-planned`, the
//!   report's `applied_plan` matched, exit 0;
//! - a source row changed between the plan and the apply: the unit that reads it is refused
//!   before its commit with the difference per table (counts, then the rows written now
//!   that the plan does not have), rolled back (the target as the earlier units left it),
//!   the run stops with exit 5; the unit before it stays committed and the ledger says so;
//!   once the row is back, a rerun with the same plan skips the finished unit and applies
//!   the rest;
//! - in a checkpointed unit (price-to-cents' `convert`), a row changed in the second batch:
//!   the first batch matches and commits at its checkpoint, the second is refused before
//!   its checkpoint and rolled back; the rerun resumes after the first batch, as planned;
//! - a plan made for another plugin build, another configuration or another database is
//!   refused before anything is written (no table, no ledger), naming what differs;
//! - for every example plugin that runs here, the plan's per-table counts are what the real
//!   run then wrote: every unit matched its planned digests, and the rows per connection
//!   the run reports equal the plan's.

use std::collections::BTreeMap;

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::{database_checksums, user_tables};
use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

const USERS: u32 = 240;

/// accounts-merge's source and target, seeded, and a workspace naming them.
struct Merge {
    source: TestDatabase,
    target: TestDatabase,
    ws: Workspace,
    plugin: String,
}

impl Merge {
    async fn new(dialect: Dialect) -> Option<Merge> {
        let source = TestDatabase::create(dialect).await?;
        let target = TestDatabase::create(dialect).await?;
        migrun_fixtures::seed_auth_users(&source.url, USERS, 11)
            .await
            .expect("seed users");
        let ws = Workspace::new();
        ws.config(&merge_config(&source.ro_url, &target.url, 50));
        let plugin = plugins::plugin("accounts-merge")
            .to_str()
            .unwrap()
            .to_owned();
        Some(Merge {
            source,
            target,
            ws,
            plugin,
        })
    }

    fn migrun(&self, args: &[&str]) -> Outcome {
        let mut all = vec![self.plugin.as_str()];
        all.extend_from_slice(args);
        self.ws.migrun(&all)
    }

    /// A dry-run writing its plan to `plan.json`; returns the plan's path.
    fn plan(&self) -> String {
        let file = self.ws.path().join("plan.json");
        self.migrun(&["--dry-run", "--plan-out", file.to_str().unwrap()])
            .expect_code(0);
        file.to_str().unwrap().to_owned()
    }
}

fn merge_config(source: &str, target: &str, batch: u32) -> String {
    format!(
        "[connections.source]\nurl = \"{source}\"\naccess = \"read-only\"\n\n\
         [connections.target]\nurl = \"{target}\"\naccess = \"read-write\"\n\n\
         [config]\nbatch_size = {batch}\n"
    )
}

fn read_plan(file: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(file).expect("read the plan")).expect("JSON")
}

/// Every unit of a `--plan` report that ran, with how it compared.
fn unit_outcomes(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["status"].as_str().unwrap().to_owned(),
                u["plan"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Asserts that every unit the report ran committed as planned; returns how many did.
#[track_caller]
fn assert_all_as_planned(report: &serde_json::Value) -> usize {
    let outcomes = unit_outcomes(report);
    let ran: Vec<_> = outcomes
        .iter()
        .filter(|(_, status, _)| status != "skipped")
        .collect();
    assert!(!ran.is_empty(), "no unit ran: {outcomes:?}");
    for (name, status, plan) in &ran {
        assert_eq!(
            (status.as_str(), plan.as_str()),
            ("committed", "as-planned"),
            "unit {name}: {outcomes:?}"
        );
    }
    assert_eq!(report["applied_plan"]["matched"], true, "{report:#}");
    assert_eq!(report["applied_plan"]["schema"], "migrun.plan/2");
    ran.len()
}

async fn applied_exactly(dialect: Dialect) {
    let Some(m) = Merge::new(dialect).await else {
        return;
    };
    let file = m.plan();
    let plan = read_plan(&file);
    assert_eq!(plan["schema"], "migrun.plan/2");
    // What the plan is for: build, contract, configuration, every connection's identity.
    assert_eq!(plan["plugin"]["sha256"].as_str().unwrap().len(), 64);
    assert!(plan["contract"].as_str().is_some(), "{plan:#}");
    assert_eq!(plan["config"][0]["key"], "batch_size");
    assert_eq!(plan["config"][0]["value"], "50");
    let databases = plan["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 2, "{databases:?}");
    let target_db = databases.iter().find(|d| d["name"] == "target").unwrap();
    let expected_name = match dialect {
        Dialect::Sqlite => m.target.url.trim_start_matches("sqlite://").to_owned(),
        _ => m.target.url.rsplit('/').next().unwrap().to_owned(),
    };
    assert_eq!(
        target_db["database"], expected_name,
        "the user's database, never a dry-run's scratch copy: {target_db}"
    );
    // Never a password: the reader's URL carries one on the servers.
    let text = std::fs::read_to_string(&file).unwrap();
    if let Some((credentials, _)) = m.source.ro_url.split_once('@')
        && let Some((_, password)) = credentials.rsplit_once(':')
        && !password.starts_with("//")
    {
        assert!(
            !text.contains(&format!(":{password}@")),
            "a password in the plan"
        );
        assert!(!text.contains(&m.source.ro_url), "a URL in the plan");
    }
    // Per unit, per table: the rows and their digests.
    let units = plan["units"].as_array().unwrap();
    let names: Vec<&str> = units.iter().map(|u| u["unit"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["create-tables", "copy-accounts", "split-identities"]
    );
    assert_eq!(units[0]["segments"][0]["ddl"].as_array().unwrap().len(), 2);
    let accounts = &units[1]["segments"][0]["tables"][0];
    assert_eq!(
        (
            accounts["table"].as_str(),
            accounts["via"].as_str(),
            accounts["op"].as_str()
        ),
        (Some("accounts"), Some("bulk"), Some("insert"))
    );
    assert_eq!(accounts["rows"], u64::from(USERS));
    assert_eq!(accounts["digest"].as_str().unwrap().len(), 64);

    let out = m.migrun(&["--plan", &file, "--json"]);
    out.expect_code(0);
    let report = out.json();
    assert_eq!(assert_all_as_planned(&report), 3);
    assert_eq!(report["applied_plan"]["units_as_planned"], 3);
    // The text report says it too.
    let again_target = TestDatabase::create(dialect).await.unwrap();
    let ws = Workspace::new();
    ws.config(&merge_config(&m.source.ro_url, &again_target.url, 50));
    let plan_file = ws.path().join("plan.json");
    ws.migrun(&[
        &m.plugin,
        "--dry-run",
        "--plan-out",
        plan_file.to_str().unwrap(),
    ])
    .expect_code(0);
    ws.migrun(&[&m.plugin, "--plan", plan_file.to_str().unwrap()])
        .expect_code(0)
        .expect_output("plan      applied")
        .expect_output("committed, as planned");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_is_applied_exactly_sqlite() {
    applied_exactly(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_is_applied_exactly_postgres() {
    applied_exactly(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_is_applied_exactly_mysql() {
    applied_exactly(Dialect::MySql).await;
}

async fn scalar(db: &TestDatabase, sql: &str) -> Value {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn.query(sql, &[]).await.expect(sql);
    conn.close().await;
    rows.rows[0][0].clone()
}

async fn changed_source_row(dialect: Dialect) {
    let Some(m) = Merge::new(dialect).await else {
        return;
    };
    let file = m.plan();
    // The data changes after the reviewer approved the plan.
    let Value::Int(id) = scalar(&m.source, "SELECT MAX(id) FROM users").await else {
        panic!("an id");
    };
    let Value::Text(email) = scalar(
        &m.source,
        &format!("SELECT email FROM users WHERE id = {id}"),
    )
    .await
    else {
        panic!("an email");
    };
    m.source
        .exec(&format!(
            "UPDATE users SET email = 'changed.since@plan.example' WHERE id = {id}"
        ))
        .await;

    let out = m.migrun(&["--plan", &file, "--json"]);
    out.expect_code(5)
        .expect_output("the data changed since the plan was made");
    let report = out.json();
    assert_eq!(report["exit_code"], 5);
    let outcomes = unit_outcomes(&report);
    assert_eq!(
        outcomes,
        [
            (
                "create-tables".into(),
                "committed".into(),
                "as-planned".into()
            ),
            ("copy-accounts".into(), "failed".into(), "differs".into()),
            ("split-identities".into(), "not-run".into(), String::new()),
        ]
    );
    let difference = &report["units"][1]["plan_difference"];
    let table = &difference["tables"][0];
    assert_eq!(table["table"], "accounts", "{difference:#}");
    assert_eq!(
        (table["planned_rows"].as_u64(), table["rows"].as_u64()),
        (Some(240), Some(240))
    );
    let shown = table["not_in_plan"][0].as_str().unwrap();
    assert!(
        shown.contains(&format!("id={id}")) && shown.contains("changed.since@plan.example"),
        "the row written now that the plan does not have: {shown}"
    );
    assert_eq!(table["not_written_count"], 1, "{table}");
    assert_eq!(report["applied_plan"]["matched"], false);
    // The target: the tables the first unit created, and no row of the refused unit.
    let count = scalar(&m.target, "SELECT COUNT(*) FROM accounts").await;
    assert_eq!(count, Value::Int(0), "the refused unit was rolled back");
    // The ledger says create-tables finished, and only that; `status` names the refused
    // unit as failed in its last run.
    let status = m.ws.migrun(&["status", "--json"]).json();
    let finished: Vec<&str> = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["rows"].as_array().into_iter().flatten())
        .map(|r| r["unit"].as_str().unwrap())
        .collect();
    assert_eq!(finished, ["create-tables"], "{status}");
    assert_eq!(
        status["failed_units"][0]["unit"], "copy-accounts",
        "{status}"
    );

    // The text report shows the difference per table with the row.
    m.migrun(&["--plan", &file])
        .expect_code(5)
        .expect_output("the data changed since the plan was made")
        .expect_output("target.accounts (bulk insert): planned 240 row(s)")
        .expect_output("changed.since@plan.example");

    // `--keep-going` does not go past a difference: the rest is not what was approved either.
    let out = m.migrun(&["--plan", &file, "--keep-going", "--json"]);
    out.expect_code(5);
    let outcomes = unit_outcomes(&out.json());
    assert_eq!(outcomes[1].2, "differs", "{outcomes:?}");
    assert_eq!(outcomes[2].1, "not-run", "{outcomes:?}");

    // With the row back as it was, the same plan resumes: the finished unit is skipped.
    m.source
        .exec(&format!(
            "UPDATE users SET email = '{email}' WHERE id = {id}"
        ))
        .await;
    let out = m.migrun(&["--plan", &file, "--json"]);
    out.expect_code(0);
    let report = out.json();
    let outcomes = unit_outcomes(&report);
    assert_eq!(outcomes[0].1, "skipped", "{outcomes:?}");
    assert_eq!(assert_all_as_planned(&report), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_source_row_refuses_the_unit_sqlite() {
    changed_source_row(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_source_row_refuses_the_unit_postgres() {
    changed_source_row(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_source_row_refuses_the_unit_mysql() {
    changed_source_row(Dialect::MySql).await;
}

/// Asserts that `out` refused the plan before anything ran, and that `target` is as it was.
#[track_caller]
fn assert_refused(out: &Outcome, needle: &str) {
    out.expect_code(5)
        .expect_output("nothing ran")
        .expect_output(needle);
}

async fn stale_plans(dialect: Dialect) {
    let Some(m) = Merge::new(dialect).await else {
        return;
    };
    let file = m.plan();
    let before = database_checksums(&m.target.url).await;
    let tables_before = user_tables(&m.target.url).await;
    assert!(tables_before.is_empty(), "{tables_before:?}");

    // Another configuration.
    let out = m.migrun(&["--plan", &file, "--set", "batch_size=7"]);
    assert_refused(&out, "config `batch_size` is \"50\" in the plan, \"7\" now");
    out.expect_output("another configuration");

    // Units at once are not compared segment by segment: refused.
    m.migrun(&["--plan", &file, "--jobs", "2"])
        .expect_code(5)
        .expect_output("leave out --jobs");

    // Another database: the same plugin and configuration against a second target.
    let other = TestDatabase::create(dialect).await.unwrap();
    let ws = Workspace::new();
    ws.config(&merge_config(&m.source.ro_url, &other.url, 50));
    let out = ws.migrun(&[&m.plugin, "--plan", &file]);
    assert_refused(&out, "connection `target` is");
    out.expect_output("another database");
    assert!(
        user_tables(&other.url).await.is_empty(),
        "nothing was written"
    );

    // Another build of the plugin: price-to-cents' plan given to its second build.
    let Some(orders) = TestDatabase::create(dialect).await else {
        return;
    };
    orders
        .exec("CREATE TABLE orders (id BIGINT PRIMARY KEY, amount_text VARCHAR(64))")
        .await;
    orders
        .exec("INSERT INTO orders (id, amount_text) VALUES (1, '12'), (2, '3.50')")
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n",
        orders.url
    ));
    let v1 = plugins::plugin("price-to-cents");
    let v2 = plugins::plugin("price-to-cents-v2");
    let plan_file = ws.path().join("plan.json");
    ws.migrun(&[
        v1.to_str().unwrap(),
        "--dry-run",
        "--plan-out",
        plan_file.to_str().unwrap(),
    ])
    .expect_code(0);
    let orders_before = database_checksums(&orders.url).await;
    let out = ws.migrun(&[v2.to_str().unwrap(), "--plan", plan_file.to_str().unwrap()]);
    assert_refused(&out, "plugin sha256");
    out.expect_output("another plugin build");
    assert_eq!(database_checksums(&orders.url).await, orders_before);

    // None of it wrote anything to the first target either.
    assert_eq!(database_checksums(&m.target.url).await, before);
    assert!(user_tables(&m.target.url).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_plan_is_refused_before_any_write_sqlite() {
    stale_plans(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_plan_is_refused_before_any_write_postgres() {
    stale_plans(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_plan_is_refused_before_any_write_mysql() {
    stale_plans(Dialect::MySql).await;
}

/// Dry-runs with `--plan-out`, then runs with `--plan --json`; asserts every unit matched and
/// the rows per connection the run reports equal the plan's per-table counts. `extra` runs
/// before the plan (a plugin's own preparation). Returns the run's report.
fn plan_then_run(ws: &Workspace, plugin: &str, extra: &[&str]) -> serde_json::Value {
    let file = ws.path().join("plan.json");
    let mut dry = vec![plugin, "--dry-run", "--plan-out", file.to_str().unwrap()];
    dry.extend_from_slice(extra);
    ws.migrun(&dry).expect_code(0);
    let plan = read_plan(file.to_str().unwrap());
    let mut run = vec![plugin, "--plan", file.to_str().unwrap(), "--json"];
    run.extend_from_slice(extra);
    let out = ws.migrun(&run);
    out.expect_code(0);
    let report = out.json();
    assert_all_as_planned(&report);

    // The plan's per-table counts, summed per connection…
    let mut planned: BTreeMap<String, u64> = BTreeMap::new();
    for c in plan["connections"].as_array().unwrap() {
        let rows: u64 = c["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                ["inserted", "updated", "deleted", "upserted"]
                    .iter()
                    .map(|k| t[*k].as_u64().unwrap())
                    .sum::<u64>()
            })
            .sum();
        planned.insert(c["name"].as_str().unwrap().to_owned(), rows);
    }
    // …equal the per-unit digests' counts the run matched…
    let mut digested: BTreeMap<String, u64> = BTreeMap::new();
    for unit in plan["units"].as_array().unwrap() {
        for segment in unit["segments"].as_array().unwrap() {
            for t in segment["tables"].as_array().unwrap() {
                if t["op"] != "uncounted" {
                    *digested
                        .entry(t["connection"].as_str().unwrap().to_owned())
                        .or_default() += t["rows"].as_u64().unwrap();
                }
            }
        }
    }
    // …and the rows the real run wrote.
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    for unit in report["units"].as_array().unwrap() {
        for (conn, w) in unit["writes"].as_object().unwrap() {
            *written.entry(conn.clone()).or_default() += w["rows"].as_u64().unwrap();
        }
    }
    planned.retain(|_, n| *n > 0);
    digested.retain(|_, n| *n > 0);
    written.retain(|_, n| *n > 0);
    assert_eq!(planned, digested, "plan tables vs unit digests");
    assert_eq!(planned, written, "plan vs the real run");
    report
}

async fn every_example(dialect: Dialect) {
    // accounts-merge.
    let Some(m) = Merge::new(dialect).await else {
        return;
    };
    plan_then_run(&m.ws, &m.plugin, &[]);

    // auth-consolidation.
    let source = TestDatabase::create(dialect).await.unwrap();
    let target = TestDatabase::create(dialect).await.unwrap();
    migrun_fixtures::seed_auth_users(&source.url, 300, 7)
        .await
        .expect("seed users");
    let ws = Workspace::new();
    ws.config(&merge_config(&source.ro_url, &target.url, 100));
    let auth = plugins::plugin("auth-consolidation");
    plan_then_run(&ws, auth.to_str().unwrap(), &[]);

    // expand-contract-rename: expand, backfill in checkpointed batches, contract.
    let db = TestDatabase::create(dialect).await.unwrap();
    crate::backfill::create_accounts(&db).await;
    let ws = Workspace::new();
    ws.config(&crate::backfill::rename_config(&db, 0, 0));
    let rename = plugins::plugin("expand-contract-rename");
    let rename = rename.to_str().unwrap();
    // Each phase's plan is made after the one before it ran (the contract reads the backfill).
    for phase in ["expand", "backfill", "contract"] {
        plan_then_run(&ws, rename, &["--only", phase]);
    }

    // price-to-cents: add-column, then the bulk-update batches with a checkpoint each.
    let db = TestDatabase::create(dialect).await.unwrap();
    db.exec("CREATE TABLE orders (id BIGINT PRIMARY KEY, amount_text VARCHAR(64))")
        .await;
    db.exec(
        "INSERT INTO orders (id, amount_text) VALUES (1, '12.30'), (2, '$1,234.50'), (3, '12'), \
         (4, 'n/a'), (5, NULL), (6, '0.99'), (7, '45'), (8, '-$3.10'), (9, '100')",
    )
    .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbatch_size = 4\n",
        db.url
    ));
    let cents = plugins::plugin("price-to-cents");
    plan_then_run(&ws, cents.to_str().unwrap(), &["--only", "add-column"]);
    plan_then_run(&ws, cents.to_str().unwrap(), &[]);

    // expand-contract-table-rename: each step planned after the one before it ran, the
    // contract (which only runs alone, `phase = "contract"`) in a later run.
    let db = TestDatabase::create(dialect).await.unwrap();
    crate::table_rename::create_orders(&db).await;
    let ws = Workspace::new();
    ws.config(&crate::table_rename::config(&db));
    let rename = plugins::plugin("expand-contract-table-rename");
    let rename = rename.to_str().unwrap();
    for phase in ["expand", "backfill", "switch", "freeze"] {
        plan_then_run(&ws, rename, &["--only", phase]);
    }
    plan_then_run(&ws, rename, &["--set", "phase=contract"]);

    if dialect == Dialect::Sqlite {
        // fresh-baseline (SQLite only).
        let db = TestDatabase::create(Dialect::Sqlite).await.unwrap();
        let ws = Workspace::new();
        ws.config(&format!("[connections.app]\nurl = \"{}\"\n", db.url));
        let fresh = plugins::plugin("fresh-baseline");
        plan_then_run(&ws, fresh.to_str().unwrap(), &[]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_plugin_writes_what_its_plan_counts_sqlite() {
    every_example(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_plugin_writes_what_its_plan_counts_postgres() {
    every_example(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_plugin_writes_what_its_plan_counts_mysql() {
    every_example(Dialect::MySql).await;
}

/// Seed 001's ETL (PostgreSQL only): every engine's unit as planned.
#[tokio::test(flavor = "multi_thread")]
async fn multiplayer_etl_writes_what_its_plan_counts_postgres() {
    let Some(setup) = crate::multiplayer::Setup::new().await else {
        return;
    };
    let plugin = plugins::plugin("multiplayer-etl");
    plan_then_run(&setup.ws, plugin.to_str().unwrap(), &[]);
}

/// The Python and JavaScript twins of accounts-merge (SQLite; their toolchains are optional
/// outside CI).
#[tokio::test(flavor = "multi_thread")]
async fn accounts_merge_twins_write_what_their_plans_count_sqlite() {
    for plugin in [
        plugins::python_plugin("plugins/accounts-merge-py"),
        plugins::js_plugin("plugins/accounts-merge-js"),
    ]
    .into_iter()
    .flatten()
    {
        let Some(m) = Merge::new(Dialect::Sqlite).await else {
            return;
        };
        plan_then_run(&m.ws, plugin.to_str().unwrap(), &[]);
    }
}

/// A checkpointed unit (price-to-cents' `convert`, a `bulk-update` and a checkpoint per
/// batch of 4): a row of its second batch changed after the plan. The first batch matches
/// and commits at its checkpoint; the second is refused before its checkpoint commits and
/// rolled back; once the row is back, a rerun with the same plan resumes after the first
/// batch and matches the plan's segments from there.
async fn changed_row_in_a_later_batch(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    db.exec("CREATE TABLE orders (id BIGINT PRIMARY KEY, amount_text VARCHAR(64))")
        .await;
    db.exec(
        "INSERT INTO orders (id, amount_text) VALUES (1, '1.00'), (2, '2.00'), (3, '3.00'), \
         (4, '4.00'), (5, '5.00'), (6, '6.00'), (7, '7.00'), (8, '8.00'), (9, '9.00')",
    )
    .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbatch_size = 4\n",
        db.url
    ));
    let plugin = plugins::plugin("price-to-cents");
    let plugin = plugin.to_str().unwrap();
    let file = ws.path().join("plan.json");
    let file = file.to_str().unwrap();
    ws.migrun(&[plugin, "--dry-run", "--plan-out", file])
        .expect_code(0);
    let plan = read_plan(file);
    let convert = plan["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == "convert")
        .expect("convert in the plan");
    let segments = convert["segments"].as_array().unwrap();
    assert!(segments.len() >= 3, "a segment per checkpoint: {convert:#}");
    assert!(segments[0]["checkpoint"].as_str().is_some());

    db.exec("UPDATE orders SET amount_text = '70.00' WHERE id = 7")
        .await;
    let out = ws.migrun(&[plugin, "--plan", file, "--json"]);
    out.expect_code(5);
    let report = out.json();
    let unit = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "convert")
        .unwrap();
    assert_eq!(unit["plan"], "differs", "{unit:#}");
    assert_eq!(unit["plan_difference"]["segment"], 1, "{unit:#}");
    assert_eq!(unit["kept"]["checkpoints"], 1, "{unit:#}");
    let shown = unit["plan_difference"]["tables"][0]["not_in_plan"][0]
        .as_str()
        .unwrap();
    assert!(shown.contains("id=7") && shown.contains("7000"), "{shown}");
    let cents = |rows: Vec<Vec<Value>>| -> Vec<Option<i64>> {
        rows.into_iter()
            .map(|r| match r[0] {
                Value::Int(c) => Some(c),
                _ => None,
            })
            .collect()
    };
    let read = || async {
        let mut conn = db.connect(Access::ReadOnly).await;
        let rows = conn
            .query("SELECT amount_cents FROM orders ORDER BY id", &[])
            .await
            .unwrap();
        conn.close().await;
        cents(rows.rows)
    };
    assert_eq!(
        read().await,
        [
            Some(100),
            Some(200),
            Some(300),
            Some(400),
            None,
            None,
            None,
            None,
            None
        ],
        "the first batch stays committed, the refused one was rolled back"
    );

    db.exec("UPDATE orders SET amount_text = '7.00' WHERE id = 7")
        .await;
    let out = ws.migrun(&[plugin, "--plan", file, "--json"]);
    out.expect_code(0);
    assert_all_as_planned(&out.json());
    assert_eq!(
        read().await,
        (1..=9).map(|i| Some(i * 100)).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_row_in_a_later_batch_keeps_the_batches_before_it_sqlite() {
    changed_row_in_a_later_batch(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_row_in_a_later_batch_keeps_the_batches_before_it_postgres() {
    changed_row_in_a_later_batch(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_row_in_a_later_batch_keeps_the_batches_before_it_mysql() {
    changed_row_in_a_later_batch(Dialect::MySql).await;
}
