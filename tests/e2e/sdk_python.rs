//! The Python SDK (`sdk/python`, `migrun_sdk`) inside a component: a guest written with it
//! (`tests/guests/sdk-py`, built by componentize-py) on every dialect — a value of every
//! kind the dialect stores written, read back as its native Python value, written back
//! unchanged and bound as a parameter; a database error caught as a `DbError` with its
//! kind and code, the unit going on after it (a savepoint); an exception escaping a unit ending it as a plugin error, not a crash.
//! (The SDK's own pytest suite runs in `examples_python::python_sdk_unit_tests_pass`.)

use migrun::db::Dialect;

use crate::support::checksum::row_count;
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// The checks of a `--json` report, as (name, ok, detail).
fn checks(report: &serde_json::Value) -> Vec<(String, bool, String)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["ok"] == true,
                c["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn sdk_guest(dialect: Dialect) {
    let Some(plugin) = plugins::python_plugin("tests/guests/sdk-py") else {
        return;
    };
    let plugin = plugin.to_str().unwrap();
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n",
        target.url
    ));

    let out = ws.migrun(&[plugin, "--json", "--only", "values"]);
    out.expect_code(0);
    let found = checks(&out.json());
    // Per dialect: the kinds it stores (sqlite 6, mysql 10, postgres 17), each read back
    // and (but NULL and the interval) bound; plus the write-back.
    let kinds = match dialect {
        Dialect::Sqlite => 6,
        Dialect::MySql => 10,
        Dialect::Postgres => 17,
    };
    let round_trips = found
        .iter()
        .filter(|c| c.0.ends_with("round-trips"))
        .count();
    assert_eq!(round_trips, kinds, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|c| c.0 == "read values write back unchanged"),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .filter(|c| c.0.ends_with("binds as a parameter"))
            .count()
            >= kinds - 2,
        "{found:#?}"
    );
    for (name, ok, detail) in &found {
        assert!(ok, "check {name} failed: {detail}\n{}", out.all());
    }

    let out = ws.migrun(&[plugin, "--json", "--only", "constraint"]);
    out.expect_code(0);
    let found = checks(&out.json());
    assert!(
        found.iter().any(|c| c.0 == "a duplicate is refused" && c.1),
        "{found:#?}"
    );
    // The unit went on after the caught error and committed both rows.
    assert_eq!(row_count(&target.url, "people").await, 2);

    let out = ws.migrun(&[plugin, "--json", "--only", "explode"]);
    out.expect_code(1);
    let failure = out.json()["failure"]["message"].to_string();
    assert!(failure.contains("TypeError"), "{failure}");
    assert!(!failure.contains("crashed"), "{failure}");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_guest_round_trips_every_value_kind_sqlite() {
    sdk_guest(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_guest_round_trips_every_value_kind_postgres() {
    sdk_guest(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_guest_round_trips_every_value_kind_mysql() {
    sdk_guest(Dialect::MySql).await;
}
