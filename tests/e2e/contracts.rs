//! Contract versions side by side: components built against 0.1.0, 0.1.1 and
//! 0.2.0 (preview) run in one suite and write what they should; versions
//! outside the supported range, or unknown inside it, are refused by name
//! before instantiation; what 0.2.0 declares reaches `migrun inspect`.
//! Units declared `transactional: false` have a topic of their own
//! (`non_transactional.rs`).
//!
//! The 0.1.0 components are the Python accounts-merge twin (componentize-py,
//! built against `guest-sdk/wit/v0.1.0`) and the JavaScript twin as it was written
//! against 0.1.0's raw bindings (`tests/guests/accounts-merge-js-v0-1-0`, frozen when
//! `plugins/accounts-merge-js` moved onto the SDK), compared with their Rust reference (the
//! SDK's contract, 0.2.0); the 0.1.1 one is `tests/guests/contract-v0-1-1`, frozen
//! when the SDK moved on, and the raw 0.2.0 one `tests/guests/contract-v0-2-0`.

use std::path::{Path, PathBuf};

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::{row_count, table_checksum};
use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// Users seeded for the accounts-merge twins.
const USERS: u32 = 40;
/// The fixture seed.
const SEED: u64 = 16;

/// A workspace whose `migrun.toml` names `connections` (`name`, url, access) and `config`.
fn workspace(connections: &[(&str, &str, &str)], config: &str) -> Workspace {
    let ws = Workspace::new();
    let mut toml = String::new();
    for (name, url, access) in connections {
        toml.push_str(&format!(
            "[connections.{name}]\nurl = \"{url}\"\naccess = \"{access}\"\n\n"
        ));
    }
    toml.push_str(&format!("[config]\n{config}\n"));
    ws.config(&toml);
    ws
}

fn run(ws: &Workspace, plugin: &Path, args: &[&str]) -> Outcome {
    let mut all = vec![plugin.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

/// The run report's contract and its units' statuses.
fn contract_and_units(out: &Outcome) -> (String, Vec<(String, String)>) {
    let report = out.json();
    let units = report["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (
        report["contract"].as_str().unwrap_or_default().to_owned(),
        units,
    )
}

/// Runs accounts-merge `plugin` from `source` into a fresh SQLite target; returns the target.
async fn accounts_merge(plugin: &Path, source: &TestDatabase, contract: &str) -> TestDatabase {
    let target = TestDatabase::create(Dialect::Sqlite).await.expect("sqlite");
    let ws = workspace(
        &[
            ("source", &source.url, "read-only"),
            ("target", &target.url, "read-write"),
        ],
        "batch_size = 7",
    );
    let out = run(&ws, plugin, &["--json"]);
    out.expect_code(0);
    let (found, units) = contract_and_units(&out);
    assert_eq!(found, contract, "{}", out.all());
    assert!(!units.is_empty(), "{}", out.all());
    assert!(
        units.iter().all(|(_, status)| status == "committed"),
        "{units:?}"
    );
    target
}

/// Reads `contract_rows` of the 0.2.0 guest, in id order.
async fn contract_rows(target: &TestDatabase) -> Vec<Vec<Value>> {
    let mut conn = target.connect(Access::ReadOnly).await;
    let rows = conn
        .query(
            "SELECT id, contract, label FROM contract_rows ORDER BY id",
            &[],
        )
        .await
        .expect("read contract_rows");
    conn.close().await;
    rows.rows
}

#[tokio::test(flavor = "multi_thread")]
async fn components_of_contracts_0_1_0_0_1_1_and_0_2_0_all_run_and_write_their_rows_sqlite() {
    let source = TestDatabase::create(Dialect::Sqlite).await.expect("sqlite");
    migrun_fixtures::seed_auth_users(&source.url, USERS, SEED)
        .await
        .expect("seed users");

    // The Rust reference: the SDK's contract, 0.2.0.
    let rust = accounts_merge(&plugins::plugin("accounts-merge"), &source, "0.2.0").await;
    let accounts = row_count(&rust.url, "accounts").await;
    assert!(accounts > 0, "the Rust reference wrote no accounts");

    // 0.1.0: the Python twin as it was built against the first contract (frozen in
    // tests/guests/accounts-merge-py-v0-1-0), served by the 0.1.x linker's 0.1.1
    // implementations, writes exactly the same rows as the 0.2.0 build.
    if let Some(python) =
        plugins::python_plugin_against("tests/guests/accounts-merge-py-v0-1-0", "v0.1.0")
    {
        let target = accounts_merge(&python, &source, "0.1.0").await;
        for table in ["accounts", "identities"] {
            assert_eq!(
                table_checksum(&target.url, table).await,
                table_checksum(&rust.url, table).await,
                "0.1.0 and 0.2.0 wrote different {table}"
            );
        }
    }

    // 0.1.0 in JavaScript: the twin frozen on the raw 0.1.0 bindings (componentize-js),
    // the same rows again.
    if let Some(js) = plugins::js_raw_plugin("tests/guests/accounts-merge-js-v0-1-0", "0.1.0") {
        let target = accounts_merge(&js, &source, "0.1.0").await;
        for table in ["accounts", "identities"] {
            assert_eq!(
                table_checksum(&target.url, table).await,
                table_checksum(&rust.url, table).await,
                "the 0.1.0 JavaScript component and 0.2.0 wrote different {table}"
            );
        }
    }

    // 0.1.1: a component built against it before the SDK moved on. Its checkpoints
    // (0.1.1's addition) commit batches: failing after the second, it keeps 8 rows,
    // and the rerun resumes after them and finishes; the check passes; the journal
    // replays.
    let target_011 = TestDatabase::create(Dialect::Sqlite).await.expect("sqlite");
    let ws = workspace(
        &[("target", &target_011.url, "read-write")],
        "rows = 10\nbatch = 4\nfail_after = 2",
    );
    let plugin_011 = plugins::plugin("contract-v0-1-1");
    let failed = run(&ws, &plugin_011, &["--json"]);
    failed.expect_code(1);
    assert_eq!(contract_and_units(&failed).0, "0.1.1");
    assert_eq!(row_count(&target_011.url, "contract_rows").await, 8);
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nrows = 10\nbatch = 4\n",
        target_011.url
    ));
    let resumed = run(&ws, &plugin_011, &["--json"]);
    resumed.expect_code(0);
    assert!(
        resumed.all().contains("resumed after 8"),
        "{}",
        resumed.all()
    );
    let (contract, units) = contract_and_units(&resumed);
    assert_eq!(contract, "0.1.1");
    assert_eq!(
        units,
        vec![("write-rows".to_owned(), "committed".to_owned())]
    );
    assert_eq!(row_count(&target_011.url, "contract_rows").await, 10);
    let report = resumed.json();
    assert!(
        report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["name"] == "contract 0.1.1 rows" && c["ok"] == true),
        "{report}"
    );
    let journal = ws
        .path()
        .join(report["journal"]["path"].as_str().expect("journal path"));
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified: ");

    // 0.2.0: its own linker and bindings; every imported interface is used.
    let target = TestDatabase::create(Dialect::Sqlite).await.expect("sqlite");
    let ws = workspace(
        &[
            ("target", &target.url, "read-write"),
            ("audit", &source.url, "read-only"),
        ],
        "rows = 5",
    );
    let plugin = plugins::plugin("contract-v0-2-0");
    let out = run(&ws, &plugin, &["--json"]);
    out.expect_code(0);
    let (contract, units) = contract_and_units(&out);
    assert_eq!(contract, "0.2.0");
    assert_eq!(
        units,
        vec![("write-rows".to_owned(), "committed".to_owned())]
    );
    let report = out.json();
    let checks = report["checks"].as_array().expect("checks");
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "contract 0.2.0 rows" && c["ok"] == true),
        "{report}"
    );
    let rows = contract_rows(&target).await;
    let expected: Vec<Vec<Value>> = (1..=5)
        .map(|id| {
            vec![
                Value::Int(id),
                Value::Text("0.2.0".into()),
                if id % 2 == 0 {
                    Value::Null
                } else {
                    Value::Text(format!("row {id}"))
                },
            ]
        })
        .collect();
    assert_eq!(rows, expected);
    // The scope is carried, and the operator told it does not key the ledger yet.
    assert_eq!(report["units"][0]["scope"], "rows=5", "{report}");
    assert!(
        !out.all().contains("does not yet record in the ledger"),
        "a scope is part of the ledger identity now, not a warning"
    );

    // The 0.2.0 run journaled like any other: it replays to "verified".
    let journal = ws
        .path()
        .join(report["journal"]["path"].as_str().expect("journal path"));
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified: ");

    // And the same 0.2.0 plugin dry-runs; nothing more is written.
    run(&ws, &plugin, &["--dry-run"]).expect_code(0);
    assert_eq!(contract_rows(&target).await.len(), 5);
}

#[test]
fn inspect_shows_what_a_0_2_0_plugin_declares() {
    let ws = Workspace::new();
    let plugin = plugins::plugin("contract-v0-2-0");
    let plugin = plugin.to_str().unwrap();
    ws.migrun(&["inspect", plugin])
        .expect_code(0)
        .expect_output("contract   migrun:plugin@0.2.0")
        .expect_output("optional (contract 0.2.0)")
        .expect_output("scope rows=3")
        .expect_output("lock_timeout 2s (the unit's own: overrides [limits] lock_timeout)")
        .expect_output(
            "statement_timeout 30s (the unit's own: overrides [limits] statement_timeout",
        )
        .expect_output("migrun:plugin/database@0.2.0");
    let json = ws
        .migrun(&["inspect", plugin, "--json"])
        .expect_code(0)
        .json();
    assert_eq!(json["schema"], "migrun.inspect/1");
    assert_eq!(json["contract"], "0.2.0");
    let connections = &json["plugin"]["connections"];
    assert_eq!(connections[0]["name"], "target");
    assert_eq!(connections[0].get("optional"), None, "false is left out");
    assert_eq!(connections[1]["name"], "audit");
    assert_eq!(connections[1]["optional"], true);
    let unit = &json["plugin"]["units"][0];
    assert_eq!(unit["name"], "write-rows");
    assert_eq!(unit["scope"], "rows=3");
    assert_eq!(unit.get("transactional"), None, "true is left out");
    assert_eq!(unit["lock_timeout_ms"], 2000);
    assert_eq!(unit["statement_timeout_ms"], 30_000);

    // A 0.1.1 plugin's inspect JSON gains nothing.
    let json = ws
        .migrun(&[
            "inspect",
            plugins::plugin("contract-v0-1-1").to_str().unwrap(),
            "--json",
        ])
        .expect_code(0)
        .json();
    assert_eq!(json["contract"], "0.1.1");
    for c in json["plugin"]["connections"].as_array().unwrap() {
        assert_eq!(c.get("optional"), None);
    }
    for u in json["plugin"]["units"].as_array().unwrap() {
        assert_eq!(u.get("scope"), None);
        assert_eq!(u.get("transactional"), None);
        assert_eq!(u.get("lock_timeout_ms"), None);
        assert_eq!(u.get("statement_timeout_ms"), None);
    }
}

/// `future-contract` (built against `migrun:plugin@9.0.0`) with its version text
/// replaced by `version` (same length, so the component stays well-formed).
fn component_targeting(ws: &Workspace, version: &str) -> PathBuf {
    assert_eq!(version.len(), "9.0.0".len());
    let bytes = std::fs::read(plugins::plugin("future-contract")).expect("read future-contract");
    let (from, to) = (b"@9.0.0".as_slice(), format!("@{version}").into_bytes());
    let mut patched = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut replaced = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            patched.extend_from_slice(&to);
            i += from.len();
            replaced += 1;
        } else {
            patched.push(bytes[i]);
            i += 1;
        }
    }
    assert!(replaced > 0, "no version text in future-contract");
    let path = ws.path().join(format!("contract-{version}.wasm"));
    std::fs::write(&path, patched).expect("write patched component");
    path
}

#[test]
fn contract_versions_outside_the_range_or_unknown_inside_it_are_refused_by_name() {
    let ws = Workspace::new();
    let supported = "this migrun supports migrun:plugin@0.2.0, migrun:plugin@0.1.1, migrun:plugin@0.1.0 (from 0.1.0 to 0.2.0)";
    for (version, side) in [
        (
            "0.0.9",
            "it is older than the oldest contract this migrun speaks",
        ),
        (
            "0.3.0",
            "it is newer than the newest contract this migrun speaks: upgrade migrun",
        ),
        (
            "1.0.0",
            "it is newer than the newest contract this migrun speaks: upgrade migrun",
        ),
        (
            "0.1.7",
            "it lies within the supported range but no contract was released with this version",
        ),
    ] {
        let plugin = component_targeting(&ws, version);
        for args in [
            vec![plugin.to_str().unwrap(), "--dry-run"],
            vec!["inspect", plugin.to_str().unwrap()],
        ] {
            ws.migrun(&args)
                .expect_code(2)
                .expect_output(&format!(
                    "unsupported contract version: the plugin targets migrun:plugin@{version}, {supported}; {side}"
                ));
        }
    }
}
