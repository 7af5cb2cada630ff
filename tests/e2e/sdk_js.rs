//! The JavaScript SDK (`sdk/js`, `@migrun/sdk`) end to end: its own unit tests in Node,
//! its copy of the contract, and a guest written with it (`tests/guests/sdk-js`, bundled
//! with esbuild and built by componentize-qjs, the default, on every dialect, and by
//! componentize-js on two) — the copy helper and a `Backfill` stopped after a batch and
//! resumed after it by the next run, values of every kind the dialect stores
//! round-tripping, a database error caught with its kind and code, an exception escaping
//! a unit ending it as a plugin error, not a crash, and what differs between the engines
//! (integers beyond 2^53, async units) exact on one and refused with a message on the other.

use std::process::Command;

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::row_count;
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins::{self, JsEngine, has_program, toolchain_missing, workspace_root};

/// Customers seeded into the source: ids 1 to 25 (the guest skips 10 and 20).
const CUSTOMERS: i64 = 25;

#[test]
fn js_sdk_ships_the_contract_it_targets() {
    let root = workspace_root();
    let shipped = std::fs::read_to_string(root.join("sdk/js/wit/migrun.wit")).unwrap();
    let contract = std::fs::read_to_string(root.join("guest-sdk/wit/v0.2.0/migrun.wit")).unwrap();
    assert!(
        shipped == contract,
        "sdk/js/wit/migrun.wit differs from guest-sdk/wit/v0.2.0/migrun.wit: copy it again"
    );
}

#[test]
fn js_sdk_unit_tests_pass_in_node() {
    if !has_program("node") {
        toolchain_missing::<()>("Node.js is not installed");
        return;
    }
    let out = Command::new("node")
        .current_dir(workspace_root().join("sdk/js"))
        .args([
            "--import",
            "./test/register.js",
            "--test",
            "test/sdk.test.js",
            "test/quickjs.test.js",
        ])
        .output()
        .expect("run node --test");
    assert!(
        out.status.success(),
        "node --test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One query's rows through the test's own connection.
async fn rows(db: &TestDatabase, sql: &str) -> Vec<Vec<Value>> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn.query(sql, &[]).await.expect(sql).rows;
    conn.close().await;
    rows
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    match rows(db, sql).await[0][0] {
        Value::Int(n) => n,
        ref other => panic!("{sql}: {other:?}"),
    }
}

/// The checks of a `--json` report, as (name, ok).
fn checks(report: &serde_json::Value) -> Vec<(String, bool)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["ok"] == true))
        .collect()
}

async fn sdk_guest(dialect: Dialect, engine: JsEngine) {
    let Some(plugin) = plugins::js_plugin_on("tests/guests/sdk-js", engine) else {
        return;
    };
    let plugin = plugin.to_str().unwrap();
    let (Some(source), Some(target)) = (
        TestDatabase::create(dialect).await,
        TestDatabase::create(dialect).await,
    ) else {
        return;
    };
    source
        .exec("CREATE TABLE customers (id BIGINT PRIMARY KEY, email VARCHAR(100) NOT NULL, country VARCHAR(40))")
        .await;
    let values: Vec<String> = (1..=CUSTOMERS)
        .map(|id| format!("({id}, 'Customer{id}@Example.COM', 'NL')"))
        .collect();
    source
        .exec(&format!(
            "INSERT INTO customers (id, email, country) VALUES {}",
            values.join(", ")
        ))
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n\n[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbatch = 4\n",
        source.ro_url, target.url
    ));

    // The copy stops after its second batch: two checkpoints committed 8 rows.
    let out = ws.migrun(&[
        plugin,
        "--json",
        "--only",
        "create,copy",
        "--set",
        "fail_after=2",
    ]);
    out.expect_code(1);
    let failure = out.json()["failure"]["message"].to_string();
    assert!(
        failure.contains("stopping the copy people after 2 batches"),
        "{failure}"
    );
    assert_eq!(row_count(&target.url, "people").await, 8);
    if engine == JsEngine::QuickJs {
        // QuickJS has no console of its own: the SDK's writes log lines.
        assert!(
            out.json().to_string().contains("people exists on"),
            "{}",
            out.all()
        );
    }

    // The rerun resumes after the last key and copies the rest, every tenth skipped.
    let out = ws.migrun(&[plugin, "--json", "--only", "create,copy"]);
    out.expect_code(0);
    assert_eq!(row_count(&target.url, "people").await, CUSTOMERS - 2);
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM people WHERE email <> LOWER(email) OR id IN (10, 20)"
        )
        .await,
        0
    );
    assert!(
        out.all().contains("resuming the copy after key 8"),
        "{}",
        out.all()
    );

    // The backfill stops after three batches (12 rows), then resumes after them.
    ws.migrun(&[
        plugin,
        "--json",
        "--only",
        "domains",
        "--set",
        "fail_after=3",
    ])
    .expect_code(1);
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM people WHERE domain IS NOT NULL"
        )
        .await,
        12
    );
    let out = ws.migrun(&[plugin, "--json", "--only", "domains,values"]);
    out.expect_code(0);
    assert!(
        out.all().contains("resuming after batch 3"),
        "{}",
        out.all()
    );
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM people WHERE domain = 'example.com'"
        )
        .await,
        CUSTOMERS - 2
    );
    let report = out.json();
    let found = checks(&report);
    assert!(found.len() >= 6, "{found:?}");
    for (name, ok) in &found {
        assert!(ok, "check {name} failed: {}", out.all());
    }

    // A duplicate key: a MigrunError with the constraint kind and the database's code.
    let out = ws.migrun(&[plugin, "--json", "--only", "constraint"]);
    let report = out.json();
    assert!(
        checks(&report).contains(&("a duplicate is refused".to_owned(), true)),
        "{}",
        out.all()
    );

    // An exception escaping a unit ends it as a plugin error with its message: no crash.
    let out = ws.migrun(&[plugin, "--json", "--only", "explode"]);
    out.expect_code(1);
    let failure = out.json()["failure"]["message"].to_string();
    assert!(failure.contains("TypeError"), "{failure}");
    assert!(!failure.contains("crashed"), "{failure}");

    // An async unit runs to its end under StarlingMonkey; under QuickJS, whose calls are
    // synchronous, it is refused with a message saying so, and what it did rolled back.
    let out = ws.migrun(&[plugin, "--json", "--only", "later"]);
    let changed = count(
        &target,
        "SELECT COUNT(*) FROM people WHERE country = 'async'",
    )
    .await;
    match engine {
        JsEngine::StarlingMonkey => {
            out.expect_code(0);
            assert_eq!(changed, 1, "{}", out.all());
        }
        JsEngine::QuickJs => {
            out.expect_code(1);
            let failure = out.json()["failure"]["message"].to_string();
            assert!(
                failure.contains("cannot run in a QuickJS build"),
                "{failure}"
            );
            assert_eq!(changed, 0, "{}", out.all());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn js_sdk_guest_copies_backfills_resumes_and_round_trips_sqlite() {
    sdk_guest(Dialect::Sqlite, JsEngine::QuickJs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_sdk_guest_copies_backfills_resumes_and_round_trips_postgres() {
    sdk_guest(Dialect::Postgres, JsEngine::QuickJs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_sdk_guest_copies_backfills_resumes_and_round_trips_mysql() {
    sdk_guest(Dialect::MySql, JsEngine::QuickJs).await;
}

// The same guest built with componentize-js: BigInts beyond 2^53 exact, async units.
#[tokio::test(flavor = "multi_thread")]
async fn js_sdk_guest_on_starlingmonkey_sqlite() {
    sdk_guest(Dialect::Sqlite, JsEngine::StarlingMonkey).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_sdk_guest_on_starlingmonkey_postgres() {
    sdk_guest(Dialect::Postgres, JsEngine::StarlingMonkey).await;
}
