//! `migrun run --jobs N`: units in parallel in one process (`run::parallel`).
//! The plugin is `work-units` (each unit records itself in `work_log`, whose
//! primary key would refuse a unit run twice; `spin` makes units overlap).
//! What is checked is what an operator would: the rows, the ledger, the exit
//! code, the journal (one per run, lanes, `journal verify -c`, replay), and a
//! `kill -9` with two jobs running followed by a rerun that finishes every
//! unit exactly once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::row_count;
use crate::support::cli::{Workspace, wait_for_line};
use crate::support::database::TestDatabase;
use crate::support::plugins;

async fn work_log(dialect: Dialect) -> Option<TestDatabase> {
    let target = TestDatabase::create(dialect).await?;
    target
        .exec("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)")
        .await;
    Some(target)
}

fn workspace(target: &TestDatabase, units: u32, spin: u64) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nunits = {units}\nspin = {spin}\n",
        target.url
    ));
    ws
}

/// The units in `work_log`, sorted.
async fn units_done(target: &TestDatabase) -> Vec<String> {
    let mut conn = target.connect(Access::ReadOnly).await;
    let rows = conn
        .query("SELECT unit FROM work_log ORDER BY unit", &[])
        .await
        .unwrap();
    rows.rows
        .iter()
        .map(|r| match &r[0] {
            Value::Text(t) => t.clone(),
            other => panic!("unit {other:?}"),
        })
        .collect()
}

/// The ledger's (unit, status, rows written), sorted: what a rerun decides from.
async fn ledger(target: &TestDatabase) -> Vec<(String, String, i64)> {
    let mut conn = target.connect(Access::ReadOnly).await;
    let rows = conn
        .query(
            "SELECT unit, status, rows_written FROM migrun_ledger ORDER BY unit",
            &[],
        )
        .await
        .unwrap();
    rows.rows
        .iter()
        .map(|r| match (&r[0], &r[1], &r[2]) {
            (Value::Text(u), Value::Text(s), Value::Int(n)) => (u.clone(), s.clone(), *n),
            other => panic!("ledger row {other:?}"),
        })
        .collect()
}

/// The one journal a workspace's runs wrote (the newest, when several).
fn journals(ws: &Workspace) -> Vec<PathBuf> {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(ws.path().join("migrun-journal"))
        .expect("a journal directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect();
    journals.sort();
    journals
}

/// The lane of every entry of a journal (as its `/3` records carry them), with the entry.
fn laned_entries(journal: &Path) -> Vec<(u16, migrun::journal::Entry)> {
    let (mut reader, _) = migrun::journal::JournalReader::open(journal).unwrap();
    let mut entries = Vec::new();
    while let Some((_, entry)) = reader.next_entry().unwrap() {
        entries.push((reader.lane(), entry));
    }
    entries
}

/// The lanes of the `run-unit` exports of a journal, per unit.
fn lanes_of_units(journal: &Path) -> Vec<(String, u32)> {
    laned_entries(journal)
        .into_iter()
        .filter_map(|(lane, entry)| match entry {
            migrun::journal::Entry::Export {
                export,
                unit: Some(unit),
                ..
            } if export == "run-unit" => Some((unit, u32::from(lane))),
            _ => None,
        })
        .collect()
}

/// `--jobs 2` and `--jobs 1` leave the same rows and ledger; the `--jobs 2` journal has
/// units in two lanes, verifies against the ledger and replays verified.
async fn two_jobs_equal_one(dialect: Dialect) {
    let (Some(one), Some(two)) = (work_log(dialect).await, work_log(dialect).await) else {
        return;
    };
    let plugin = plugins::plugin("work-units");
    let plugin = plugin.to_str().unwrap();
    let ws_one = workspace(&one, 12, 3_000_000);
    ws_one
        .migrun(&[plugin, "--jobs", "1", "--json"])
        .expect_code(0);
    let ws_two = workspace(&two, 12, 3_000_000);
    let out = ws_two.migrun(&[plugin, "--jobs", "2", "--json"]);
    out.expect_code(0);
    let report = out.json();
    let statuses: Vec<&str> = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["committed"; 12], "{report}");

    let expected: Vec<String> = (0..12).map(|i| format!("unit-{i:02}")).collect();
    assert_eq!(units_done(&one).await, expected);
    assert_eq!(units_done(&two).await, expected);
    assert_eq!(ledger(&one).await, ledger(&two).await, "{dialect:?}");

    // One journal, both lanes ran units, each unit exactly once.
    let journal = journals(&ws_two).pop().unwrap();
    let lanes = lanes_of_units(&journal);
    let units: BTreeSet<&str> = lanes.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(lanes.len(), 12, "{lanes:?}");
    assert_eq!(units.len(), 12);
    let used: BTreeSet<u32> = lanes.iter().map(|(_, l)| *l).collect();
    assert_eq!(used, BTreeSet::from([0, 1]), "{lanes:?}");
    // `--jobs 1` writes no lane at all.
    let single = journals(&ws_one).pop().unwrap();
    assert!(
        laned_entries(&single).iter().all(|(lane, _)| *lane == 0),
        "a --jobs 1 journal has lanes"
    );

    ws_two
        .migrun(&[
            "journal",
            "verify",
            journal.to_str().unwrap(),
            "-c",
            "migrun.toml",
        ])
        .expect_code(0)
        .expect_output("intact")
        .expect_output("ledger    target: 12 of 12 rows of this run anchored in the journal");
    ws_two
        .migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified:");
    // `journal show` says whose entry is whose: lane 1's with a prefix, in JSON a field.
    ws_two
        .migrun(&["journal", "show", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("[lane 1] → run-unit(");
    let shown = ws_two.migrun(&["journal", "show", "--json", journal.to_str().unwrap()]);
    shown.expect_code(0);
    let lane_one: Vec<serde_json::Value> = shown
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["lane"] == 1)
        .collect();
    assert!(
        lane_one
            .iter()
            .any(|e| e["type"] == "export" && e["export"] == "run-unit"),
        "lane 1 ran units: {lane_one:?}"
    );
    // Another build of the plugin (same code, one more custom section: another sha256)
    // compared on the --jobs journal: every lane's reads answer it, and it writes what
    // the two lanes wrote together.
    let v2 = ws_two.path().join("work-units-v2.wasm");
    let mut bytes = std::fs::read(plugin).unwrap();
    let name = b"migrun-test-build";
    let payload = b"v2";
    bytes.push(0); // custom section
    bytes.push(u8::try_from(1 + name.len() + payload.len()).unwrap());
    bytes.push(u8::try_from(name.len()).unwrap());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    std::fs::write(&v2, bytes).unwrap();
    let compared = ws_two.migrun(&[
        "replay",
        journal.to_str().unwrap(),
        "--plugin",
        v2.to_str().unwrap(),
        "--json",
    ]);
    let compared = compared.expect_code(0).json();
    assert_eq!(compared["mode"], "compare", "{compared}");
    assert_eq!(compared["identical"], true, "{compared}");
    assert_eq!(
        compared["diff"]["tables"]["target.work_log"]["identical"], 12,
        "every unit's row, from both lanes, compared: {compared}"
    );
    // A rerun with --jobs skips every unit.
    let again = ws_two.migrun(&[plugin, "--jobs", "2", "--json"]);
    let again = again.expect_code(0).json();
    assert!(
        again["units"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["status"] == "skipped"),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_jobs_leave_what_one_leaves_and_replay_sqlite() {
    two_jobs_equal_one(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_jobs_leave_what_one_leaves_and_replay_postgres() {
    two_jobs_equal_one(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_jobs_leave_what_one_leaves_and_replay_mysql() {
    two_jobs_equal_one(Dialect::MySql).await;
}

/// `kill -9` while two jobs run units; the journal's prefix verifies and replays; a rerun
/// with `--jobs 2` finishes every unit exactly once.
async fn kill_with_two_jobs_then_rerun(dialect: Dialect) {
    let Some(target) = work_log(dialect).await else {
        return;
    };
    let ws = workspace(&target, 16, 200_000_000);
    let plugin = plugins::plugin("work-units");
    let plugin = plugin.to_str().unwrap();
    let mut child = ws.spawn(&[plugin, "--jobs", "2"]);
    wait_for_line(&mut child, "▸ unit unit-04");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let done = units_done(&target).await;
    assert!(
        done.len() < 16,
        "{dialect:?}: the run finished before the kill"
    );
    // Exactly the units the ledger says finished are in the table.
    let finished: Vec<String> = ledger(&target).await.into_iter().map(|(u, ..)| u).collect();
    assert_eq!(done, finished, "{dialect:?}");

    let journal = journals(&ws).pop().unwrap();
    ws.migrun(&[
        "journal",
        "verify",
        journal.to_str().unwrap(),
        "-c",
        "migrun.toml",
    ])
    .expect_code(3)
    .expect_output(&format!(
        "ledger    target: {0} of {0} rows of this run anchored in the journal",
        finished.len()
    ));
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified:")
        .expect_output("the recorded run was killed");

    let out = ws.migrun(&[plugin, "--jobs", "2", "--json"]);
    let report = out.expect_code(0).json();
    let ran: Vec<&str> = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["status"] == "committed")
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(ran.len(), 16 - finished.len(), "{report}");
    let expected: Vec<String> = (0..16).map(|i| format!("unit-{i:02}")).collect();
    assert_eq!(units_done(&target).await, expected);
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 16);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_with_two_jobs_then_rerun_finishes_exactly_once_postgres() {
    kill_with_two_jobs_then_rerun(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_with_two_jobs_then_rerun_finishes_exactly_once_mysql() {
    kill_with_two_jobs_then_rerun(Dialect::MySql).await;
}

/// `--jobs 2 --shard i/2`: two processes of two jobs each run every unit exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_compose_with_shards_postgres() {
    let Some(target) = work_log(Dialect::Postgres).await else {
        return;
    };
    let ws = workspace(&target, 20, 2_000_000);
    let plugin = plugins::plugin("work-units");
    let plugin = plugin.to_str().unwrap();
    let workers: Vec<_> = (0..2)
        .map(|i| {
            ws.spawn(&[
                plugin,
                "--jobs",
                "2",
                "--shard",
                &format!("{i}/2"),
                "--json",
            ])
        })
        .collect();
    let mut ran = Vec::new();
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        for unit in report["units"].as_array().unwrap() {
            assert_eq!(unit["status"], "committed");
            ran.push(unit["name"].as_str().unwrap().to_owned());
        }
    }
    ran.sort();
    let expected: Vec<String> = (0..20).map(|i| format!("unit-{i:02}")).collect();
    assert_eq!(ran, expected, "every unit ran in exactly one shard");
    assert_eq!(units_done(&target).await, expected);
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 20);
    for journal in journals(&ws) {
        ws.migrun(&["replay", journal.to_str().unwrap()])
            .expect_code(0)
            .expect_output("verified:");
    }
}

/// A unit failing with two jobs: the failure is reported with the unit and the exit
/// code of a failed run; no unit starts after it; what committed is in the ledger.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_unit_stops_new_units_postgres() {
    let Some(target) = work_log(Dialect::Postgres).await else {
        return;
    };
    // unit-03 is already in work_log: its insert fails on the key.
    target
        .exec("INSERT INTO work_log (unit) VALUES ('unit-03')")
        .await;
    // Each unit spins ~tens of milliseconds before its insert, so a unit the other worker
    // starts takes far longer than the failing unit needs to be rolled back and stop the run.
    let ws = workspace(&target, 12, 30_000_000);
    let plugin = plugins::plugin("work-units");
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--jobs", "2", "--json"]);
    out.expect_code(1);
    let report = out.json();
    assert_eq!(report["failure"]["phase"], "unit `unit-03`", "{report}");
    let units = report["units"].as_array().unwrap();
    let committed: Vec<&str> = units
        .iter()
        .filter(|u| u["status"] == "committed")
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    let not_run = units.iter().filter(|u| u["status"] == "not-run").count();
    // Units 00–02 before it; beside it, the other worker's unit in flight — and, when that
    // one committed in the moment between unit-03's error and the stop (its rollback), at
    // most one more it had already taken. Nothing after that starts.
    assert!(committed.len() <= 5, "{report}");
    assert!(not_run >= 6, "{report}");
    let finished: Vec<String> = ledger(&target).await.into_iter().map(|(u, ..)| u).collect();
    assert_eq!(finished, committed, "{report}");
    let journal = journals(&ws).pop().unwrap();
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified:");
}
