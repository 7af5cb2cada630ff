//! Contract 0.2.0's units that know their instance (issue 19, item 3), on every
//! dialect: a unit's scope is part of its ledger identity (another scope runs, the
//! same one is skipped, `--only unit@scope` selects it, `migrun status` shows it);
//! an always-run unit runs on every run and keeps one ledger row; a unit the
//! plugin lists as skipped never runs and the report says why; an optional
//! connection the operator did not configure is not provided. A ledger made
//! before scopes is upgraded in place, its rows keeping "no scope".

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

const PLUGIN: &str = "contract-v0-2-0";

/// A workspace whose only connection is `target` (the optional `audit` is left out).
fn configure(ws: &Workspace, target: &TestDatabase, config: &str) {
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\n{config}\n",
        target.url
    ));
}

fn run(ws: &Workspace, args: &[&str]) -> Outcome {
    let plugin = plugins::plugin(PLUGIN);
    let mut all = vec![plugin.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

/// A value as text (MariaDB may hand text back as bytes).
fn text(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Null => "NULL".to_owned(),
        other => other.to_string(),
    }
}

/// Every ledger row of the plugin: (unit, unit_scope, status, run_id), ordered.
async fn ledger_rows(target: &TestDatabase) -> Vec<(String, String, String, String)> {
    let mut conn = target.connect(Access::ReadOnly).await;
    let rows = conn
        .query(
            &format!(
                "SELECT unit, unit_scope, status, run_id FROM migrun_ledger \
                 WHERE plugin_name = '{PLUGIN}' ORDER BY unit, unit_scope"
            ),
            &[],
        )
        .await
        .expect("read the ledger");
    conn.close().await;
    rows.rows
        .iter()
        .map(|r| (text(&r[0]), text(&r[1]), text(&r[2]), text(&r[3])))
        .collect()
}

/// How many `contract_rows` rows of `contract` there are.
async fn rows_of(target: &TestDatabase, contract: &str) -> i64 {
    let mut conn = target.connect(Access::ReadOnly).await;
    let rows = conn
        .query(
            &format!("SELECT count(*) FROM contract_rows WHERE contract = '{contract}'"),
            &[],
        )
        .await
        .expect("count contract_rows");
    conn.close().await;
    match rows.rows[0][0] {
        Value::Int(n) => n,
        ref other => panic!("count came back as {other:?}"),
    }
}

/// The report's unit `name`.
fn unit<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["units"]
        .as_array()
        .expect("units")
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("no unit {name} in {report}"))
}

async fn scopes_always_run_skipped_and_optional(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    let ws = Workspace::new();
    let flags = "always_run = true\nskip = \"engine retired: no rows\"\nprobe_audit = true";

    // First run, scope rows=3: every unit but the skipped one runs; `audit` is not provided.
    configure(&ws, &target, &format!("rows = 3\n{flags}"));
    let first = run(&ws, &["--json"]);
    first.expect_code(0);
    let report = first.json();
    assert_eq!(report["absent_connections"], serde_json::json!(["audit"]));
    let connections: Vec<&str> = report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        connections,
        ["target"],
        "no embedded default stands in for `audit`"
    );
    let write = unit(&report, "write-rows");
    assert_eq!(write["status"], "committed");
    assert_eq!(write["scope"], "rows=3");
    let stamp = unit(&report, "stamp");
    assert_eq!(stamp["status"], "committed");
    assert_eq!(stamp["always_run"], true);
    assert_eq!(stamp["note"], "always runs");
    let retired = unit(&report, "retired");
    assert_eq!(retired["status"], "skipped");
    assert_eq!(retired["skipped"], "engine retired: no rows");
    assert_eq!(retired["note"], "skipped: engine retired: no rows");
    let probe = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "audit connection")
        .unwrap_or_else(|| panic!("no audit check: {report}"));
    assert_eq!(probe["ok"], true);
    assert_eq!(
        probe["detail"],
        "not provided: connection `audit` is optional and the operator did not configure it: \
         it is not provided in this run"
    );

    // Second run, scope rows=5 (text report): write-rows runs again (another scope),
    // probe-audit is finished, stamp runs again.
    configure(&ws, &target, &format!("rows = 5\n{flags}"));
    let second = run(&ws, &[]);
    second
        .expect_code(0)
        .expect_output("write-rows@rows=5")
        .expect_output("skipped by the plugin")
        .expect_output("skipped: engine retired: no rows")
        .expect_output("always runs")
        .expect_output("audit        not configured (optional): not provided");
    assert_eq!(rows_of(&target, "0.2.0").await, 8, "3 rows, then 5 more");
    assert_eq!(rows_of(&target, "stamp").await, 2);

    // Third run, the same scope: skipped; the always-run unit runs once more.
    let third = run(&ws, &["--json"]);
    third.expect_code(0);
    let report = third.json();
    let write = unit(&report, "write-rows");
    assert_eq!(write["status"], "skipped", "{report}");
    assert_eq!(write["scope"], "rows=5");
    assert_eq!(unit(&report, "probe-audit")["status"], "skipped");
    assert_eq!(unit(&report, "stamp")["status"], "committed");
    assert_eq!(unit(&report, "retired")["status"], "skipped");
    assert_eq!(rows_of(&target, "0.2.0").await, 8, "nothing written twice");
    assert_eq!(rows_of(&target, "stamp").await, 3);

    // `--only unit@scope` selects the unit with that scope; another scope is no unit.
    configure(&ws, &target, &format!("rows = 3\n{flags}"));
    let only = run(&ws, &["--only", "write-rows@rows=3", "--json"]);
    only.expect_code(0);
    let units: Vec<(String, String)> = only.json()["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(units, [("write-rows".to_owned(), "skipped".to_owned())]);
    run(&ws, &["--only", "write-rows@rows=9"])
        .expect_code(2)
        .expect_output("`write-rows@rows=3`");
    assert_eq!(rows_of(&target, "stamp").await, 3, "--only left stamp out");

    // The ledger: one row per scope of write-rows, one (replaced) row of stamp, none of retired.
    let rows = ledger_rows(&target).await;
    let keys: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(u, s, st, _)| (u.as_str(), s.as_str(), st.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("probe-audit", "", "finished"),
            ("stamp", "", "finished"),
            ("write-rows", "rows=3", "finished"),
            ("write-rows", "rows=5", "finished"),
        ]
    );
    // Stamp ran in runs 1, 2 and 3: its one row is run 3's, which wrote no write-rows row.
    assert_ne!(rows[1].3, rows[2].3, "stamp's row is not run 1's");
    assert_ne!(rows[1].3, rows[3].3, "stamp's row is not run 2's");

    // `migrun status` shows the scopes, in text and JSON.
    ws.migrun(&["status"])
        .expect_code(0)
        .expect_output("write-rows@rows=3")
        .expect_output("write-rows@rows=5");
    let status = ws.migrun(&["status", "--json"]).expect_code(0).json();
    let scopes: Vec<&str> = status["targets"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["scope"].as_str())
        .collect();
    assert_eq!(scopes.len(), 2, "{status}");
    assert!(scopes.contains(&"rows=3") && scopes.contains(&"rows=5"));
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_always_run_skipped_units_and_optional_connections_sqlite() {
    scopes_always_run_skipped_and_optional(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_always_run_skipped_units_and_optional_connections_postgres() {
    scopes_always_run_skipped_and_optional(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_always_run_skipped_units_and_optional_connections_mariadb() {
    scopes_always_run_skipped_and_optional(Dialect::MySql).await;
}

/// The ledger table as migrun created it before scopes (primary key without them).
fn old_ledger_ddl(dialect: Dialect) -> String {
    let (key, text, state) = match dialect {
        Dialect::MySql => ("VARCHAR(190)", "VARCHAR(255)", "MEDIUMTEXT"),
        _ => ("TEXT", "TEXT", "TEXT"),
    };
    format!(
        "CREATE TABLE migrun_ledger (\
         plugin_name {key} NOT NULL, unit {key} NOT NULL, plugin_sha256 CHAR(64) NOT NULL, \
         plugin_version {text} NOT NULL, run_id {text} NOT NULL, status {text} NOT NULL, \
         started_at {text} NOT NULL, finished_at {text} NOT NULL, rows_written BIGINT NOT NULL, \
         journal_id {text} NOT NULL, journal_hash CHAR(64) NOT NULL, override_reason {text}, \
         checkpoint_state {state}, run_final_hash CHAR(64), \
         PRIMARY KEY (plugin_name, unit, plugin_sha256))"
    )
}

async fn old_ledger_upgraded(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    let ws = Workspace::new();
    let plugin = plugins::plugin(PLUGIN);
    let inspected = ws
        .migrun(&["inspect", plugin.to_str().unwrap(), "--json"])
        .expect_code(0)
        .json();
    let sha256 = inspected["sha256"].as_str().expect("sha256").to_owned();
    target.exec(&old_ledger_ddl(dialect)).await;
    // An old row of the unscoped `probe-audit`, finished by this very build.
    let zeros = "0".repeat(64);
    target
        .exec(&format!(
            "INSERT INTO migrun_ledger (plugin_name, unit, plugin_sha256, plugin_version, run_id, \
             status, started_at, finished_at, rows_written, journal_id, journal_hash) VALUES \
             ('{PLUGIN}', 'probe-audit', '{sha256}', '0.1.0', 'old-run', 'finished', \
             '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', 0, 'old.journal', '{zeros}')"
        ))
        .await;

    configure(&ws, &target, "rows = 2\nprobe_audit = true");
    // A dry-run reads the old table as it is (every row unscoped) and changes nothing.
    run(&ws, &["--dry-run"]).expect_code(0);
    let report = run(&ws, &["--json"]).expect_code(0).json();
    assert_eq!(
        unit(&report, "probe-audit")["status"],
        "skipped",
        "an old row keeps meaning `no scope`: {report}"
    );
    assert_eq!(unit(&report, "write-rows")["status"], "committed");
    let rows = ledger_rows(&target).await;
    let keys: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(u, s, _, r)| (u.as_str(), s.as_str(), r.as_str()))
        .collect();
    assert_eq!(keys[0], ("probe-audit", "", "old-run"));
    assert_eq!((keys[1].0, keys[1].1), ("write-rows", "rows=2"));
    assert_eq!(keys.len(), 2);

    // The new primary key holds the scope: the same unit and build with another scope
    // is a second row beside the first.
    configure(&ws, &target, "rows = 4\nprobe_audit = true");
    run(&ws, &[]).expect_code(0);
    let rows = ledger_rows(&target).await;
    let scopes: Vec<&str> = rows
        .iter()
        .filter(|r| r.0 == "write-rows")
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(scopes, ["rows=2", "rows=4"]);
    assert_eq!(rows_of(&target, "0.2.0").await, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_made_before_scopes_is_upgraded_in_place_sqlite() {
    old_ledger_upgraded(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_made_before_scopes_is_upgraded_in_place_postgres() {
    old_ledger_upgraded(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_made_before_scopes_is_upgraded_in_place_mariadb() {
    old_ledger_upgraded(Dialect::MySql).await;
}

/// The wall of issue 19: renaming a second column with the same build of
/// `expand-contract-rename` used to skip every unit (the ledger knew only plugin, unit and
/// build) and exit 0 with the column unrenamed. The plugin's scope is the rename it is
/// configured for, so the second rename runs its three units, and the first stays done.
async fn a_second_rename_runs(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    let text_type = if dialect == Dialect::MySql {
        "VARCHAR(255)"
    } else {
        "TEXT"
    };
    db.exec(&format!(
        "CREATE TABLE people (id BIGINT PRIMARY KEY, email {text_type}, nick {text_type})"
    ))
    .await;
    db.exec(
        "INSERT INTO people (id, email, nick) VALUES (1, 'a@example.org', 'ann'), \
         (2, 'b@example.org', 'bob'), (3, NULL, 'cy')",
    )
    .await;
    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    let rename = |old: &str, new: &str| {
        ws.config(&format!(
            "[connections.app]\nurl = \"{}\"\n[config]\ntable = \"people\"\nold_column = \"{old}\"\nnew_column = \"{new}\"\nbatch_size = 2\n",
            db.url
        ));
        let out = ws.migrun(&[plugin, "--json"]);
        out.expect_code(0);
        out.json()
    };
    let statuses = |report: &serde_json::Value| -> Vec<(String, String, String)> {
        report["units"]
            .as_array()
            .expect("units")
            .iter()
            .map(|u| {
                (
                    u["name"].as_str().unwrap_or_default().to_owned(),
                    u["scope"].as_str().unwrap_or_default().to_owned(),
                    u["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let committed = |scope: &str| {
        ["expand", "backfill", "contract"]
            .map(|unit| (unit.to_owned(), scope.to_owned(), "committed".to_owned()))
            .to_vec()
    };

    let first = rename("email", "email_address");
    assert_eq!(
        statuses(&first),
        committed("people.email->email_address"),
        "{first}"
    );
    let second = rename("nick", "nickname");
    assert_eq!(
        statuses(&second),
        committed("people.nick->nickname"),
        "{dialect:?}: the second rename must run, not be skipped as done: {second}"
    );
    // The first rename, configured again, is done.
    let again = rename("email", "email_address");
    assert!(
        statuses(&again)
            .iter()
            .all(|(_, _, status)| status == "skipped"),
        "{dialect:?}: {again}"
    );

    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn
        .query(
            "SELECT id, email_address, nickname FROM people ORDER BY id",
            &[],
        )
        .await
        .expect("both renamed columns are there");
    conn.close().await;
    let rows: Vec<Vec<String>> = rows
        .rows
        .iter()
        .map(|r| r.iter().map(text).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["1".to_owned(), "a@example.org".to_owned(), "ann".to_owned()],
            vec!["2".to_owned(), "b@example.org".to_owned(), "bob".to_owned()],
            vec!["3".to_owned(), "NULL".to_owned(), "cy".to_owned()],
        ]
    );
    // `migrun status` tells the two renames apart.
    let status = ws.migrun(&["status"]);
    status.expect_code(0);
    for scope in ["people.email->email_address", "people.nick->nickname"] {
        assert!(
            status.stdout.contains(scope),
            "{dialect:?}: {}",
            status.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_rename_of_another_column_runs_sqlite() {
    a_second_rename_runs(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_rename_of_another_column_runs_postgres() {
    a_second_rename_runs(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_rename_of_another_column_runs_mariadb() {
    a_second_rename_runs(Dialect::MySql).await;
}
