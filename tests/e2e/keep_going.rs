//! `--keep-going` (`[run] on_unit_failure = "continue"`): a failed unit is rolled back and
//! the other units run; the report lists the failed units with their errors, the run exits
//! 4, and a rerun runs only what did not finish. The plugin is `work-units`, whose `fail`
//! and `panic` units fail (an error, a trap) *after* inserting their row into `work_log`,
//! so the rows show what was rolled back. Checked as an operator would: rows, ledger,
//! exit codes, the report (text and JSON), reruns, replays of the journal.

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

async fn work_log(dialect: Dialect) -> Option<TestDatabase> {
    let target = TestDatabase::create(dialect).await?;
    target
        .exec("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)")
        .await;
    Some(target)
}

/// A workspace whose `migrun.toml` points at `target` with `units` units, plus `extra` lines.
fn workspace(target: &TestDatabase, units: u32, extra: &str) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n{extra}\n[config]\nunits = {units}\nspin = 2000000\n",
        target.url
    ));
    ws
}

/// One text column of a query, in order.
async fn texts(target: &TestDatabase, sql: &str) -> Vec<String> {
    let mut conn = target.connect(Access::ReadOnly).await;
    let rows = conn.query(sql, &[]).await.unwrap();
    rows.rows
        .iter()
        .map(|r| match &r[0] {
            Value::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// The units in `work_log`, sorted.
async fn units_done(target: &TestDatabase) -> Vec<String> {
    texts(target, "SELECT unit FROM work_log ORDER BY unit").await
}

/// The units the ledger says finished, sorted.
async fn ledger_units(target: &TestDatabase) -> Vec<String> {
    texts(
        target,
        "SELECT unit FROM migrun_ledger WHERE status = 'finished' ORDER BY unit",
    )
    .await
}

fn names(range: std::ops::Range<u32>, except: &[&str]) -> Vec<String> {
    range
        .map(|i| format!("unit-{i:02}"))
        .filter(|u| !except.contains(&u.as_str()))
        .collect()
}

/// The names of the report's units with `status`, in report order.
fn with_status(report: &serde_json::Value, status: &str) -> Vec<String> {
    report["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["status"] == status)
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The `error` of the report's unit `name`.
fn error_of(report: &serde_json::Value, name: &str) -> String {
    report["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .and_then(|u| u["error"].as_str())
        .unwrap_or_else(|| panic!("no error for {name}: {report}"))
        .to_owned()
}

/// The newest journal of a workspace.
fn newest_journal(ws: &Workspace) -> std::path::PathBuf {
    let mut journals: Vec<_> = std::fs::read_dir(ws.path().join("migrun-journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect();
    journals.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    journals.pop().unwrap()
}

/// Two units fail (an error after their insert); the six others commit; the failed ones
/// are rolled back and listed with their errors (JSON, then text on a second failing run);
/// exit 4; the rerun after the fix runs exactly the two failed units.
async fn keep_going_then_rerun(dialect: Dialect) {
    let Some(target) = work_log(dialect).await else {
        return;
    };
    let ws = workspace(&target, 8, "");
    let plugin = plugins::plugin("work-units");
    let plugin = plugin.to_str().unwrap();
    let fail = "fail=unit-02,unit-05";

    let out = ws.migrun(&[plugin, "--keep-going", "--set", fail, "--json"]);
    let report = out.expect_code(4).json();
    assert_eq!(report["exit_code"], 4, "{report}");
    assert_eq!(report["kept_going"], true, "{report}");
    assert_eq!(report["failure"]["phase"], "units", "{report}");
    let message = report["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("2 of 8 unit(s) that ran failed") && message.contains("`unit-05`"),
        "{message}"
    );
    assert_eq!(with_status(&report, "failed"), ["unit-02", "unit-05"]);
    let committed = names(0..8, &["unit-02", "unit-05"]);
    assert_eq!(with_status(&report, "committed"), committed);
    assert!(
        error_of(&report, "unit-05").contains("unit-05 is configured to fail"),
        "{report}"
    );
    // The failed units' inserts were rolled back; every other unit committed with its row.
    assert_eq!(units_done(&target).await, committed, "{dialect:?}");
    assert_eq!(ledger_units(&target).await, committed, "{dialect:?}");
    // The journal of a run that kept going replays, past its failed units.
    ws.migrun(&["replay", newest_journal(&ws).to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified:");

    // Still failing: only the two run (the others are skipped), and the text lists them.
    let again = ws.migrun(&[plugin, "--keep-going", "--set", fail]);
    again
        .expect_code(4)
        .expect_output("failed units (2 of 8; each rolled back, the other units ran)")
        .expect_output("✗ unit-02  unit-02 is configured to fail (config `fail`)")
        .expect_output("FAILED in units: 2 of 2 unit(s) that ran failed");
    assert_eq!(units_done(&target).await, committed);

    // Fixed: the rerun runs exactly the units that did not finish.
    let fixed = ws.migrun(&[plugin, "--keep-going", "--json"]);
    let report = fixed.expect_code(0).json();
    assert_eq!(with_status(&report, "committed"), ["unit-02", "unit-05"]);
    assert_eq!(with_status(&report, "skipped").len(), 6, "{report}");
    assert!(report.get("kept_going").is_none(), "{report}");
    assert_eq!(units_done(&target).await, names(0..8, &[]));
    assert_eq!(ledger_units(&target).await, names(0..8, &[]));
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_going_rolls_back_failed_units_and_reruns_only_them_sqlite() {
    keep_going_then_rerun(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_going_rolls_back_failed_units_and_reruns_only_them_postgres() {
    keep_going_then_rerun(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_going_rolls_back_failed_units_and_reruns_only_them_mysql() {
    keep_going_then_rerun(Dialect::MySql).await;
}

/// `[run] on_unit_failure = "continue"` with `--jobs 2`: one unit fails with an error, one
/// traps (its worker's plugin is started afresh for the next unit); ten commit; the rerun
/// runs the two; the journal (two lanes) replays verified.
async fn keep_going_with_two_jobs(dialect: Dialect) {
    let Some(target) = work_log(dialect).await else {
        return;
    };
    let ws = workspace(&target, 12, "[run]\non_unit_failure = \"continue\"");
    let plugin = plugins::plugin("work-units");
    let plugin = plugin.to_str().unwrap();
    let broken = ["--set", "fail=unit-03", "--set", "panic=unit-07"];

    let mut args = vec![plugin, "--jobs", "2", "--json"];
    args.extend(broken);
    let out = ws.migrun(&args);
    let report = out.expect_code(4).json();
    assert_eq!(with_status(&report, "failed"), ["unit-03", "unit-07"]);
    assert!(
        error_of(&report, "unit-07").contains("the plugin crashed"),
        "{report}"
    );
    let committed = names(0..12, &["unit-03", "unit-07"]);
    assert_eq!(with_status(&report, "committed"), committed, "{report}");
    assert_eq!(units_done(&target).await, committed, "{dialect:?}");
    assert_eq!(ledger_units(&target).await, committed, "{dialect:?}");
    ws.migrun(&["replay", newest_journal(&ws).to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified:");
    // The ledger holds what committed; `migrun status` also names what failed, and why.
    ws.migrun(&["status"])
        .expect_code(0)
        .expect_output("✗ 2 unit(s) failed in their last run")
        .expect_output("work-units unit-03")
        .expect_output("work-units unit-07")
        .expect_output("the plugin crashed");
    let status = ws.migrun(&["status", "--json"]).expect_code(0).json();
    let failed: Vec<&str> = status["failed_units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["unit"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["unit-03", "unit-07"], "{status}");

    let fixed = ws.migrun(&[plugin, "--jobs", "2", "--json"]);
    let report = fixed.expect_code(0).json();
    assert_eq!(with_status(&report, "committed"), ["unit-03", "unit-07"]);
    assert_eq!(units_done(&target).await, names(0..12, &[]));
    assert_eq!(ledger_units(&target).await, names(0..12, &[]));
    let status = ws.migrun(&["status"]);
    status.expect_code(0);
    assert!(
        !status.stdout.contains("failed in their last run"),
        "finished since, no failure is shown: {}",
        status.stdout
    );
    let status = ws.migrun(&["status", "--json"]).expect_code(0).json();
    assert_eq!(status["failed_units"], serde_json::json!([]), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_going_with_two_jobs_survives_an_error_and_a_trap_sqlite() {
    keep_going_with_two_jobs(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_going_with_two_jobs_survives_an_error_and_a_trap_postgres() {
    keep_going_with_two_jobs(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_going_with_two_jobs_survives_an_error_and_a_trap_mysql() {
    keep_going_with_two_jobs(Dialect::MySql).await;
}

/// One run's outcome as its JSON report.
fn report_of(out: &Outcome, code: i32) -> serde_json::Value {
    out.expect_code(code).json()
}

/// `--only` and `--shard`: keep-going applies within the selection; two shard workers
/// together commit every unit not committed yet once but the failing one (the worker
/// holding it exits 4, the other 0), and a rerun of both shards runs only that unit.
#[tokio::test(flavor = "multi_thread")]
async fn keep_going_composes_with_only_and_shards_postgres() {
    let Some(target) = work_log(Dialect::Postgres).await else {
        return;
    };
    let ws = workspace(&target, 10, "");
    let plugin = plugins::plugin("work-units");
    let plugin = plugin.to_str().unwrap();

    let only = ws.migrun(&[
        plugin,
        "--keep-going",
        "--only",
        "unit-01,unit-02,unit-03",
        "--set",
        "fail=unit-02",
        "--json",
    ]);
    let report = report_of(&only, 4);
    assert_eq!(with_status(&report, "committed"), ["unit-01", "unit-03"]);
    assert_eq!(with_status(&report, "failed"), ["unit-02"]);
    assert_eq!(units_done(&target).await, ["unit-01", "unit-03"]);

    // Both shards, two jobs each, with unit-06 failing (unit-02 is fixed: it runs now).
    let shard = |i: u32, fail: &str| {
        let spec = format!("{i}/2");
        let set = format!("fail={fail}");
        ws.migrun(&[
            plugin,
            "--keep-going",
            "--jobs",
            "2",
            "--shard",
            &spec,
            "--set",
            &set,
            "--json",
        ])
    };
    let shard_of_06 = if migrun::ledger::in_shard("unit-06", 0, 2) {
        0
    } else {
        1
    };
    let mut committed = Vec::new();
    for i in 0..2 {
        let out = shard(i, "unit-06");
        let report = report_of(&out, if i == shard_of_06 { 4 } else { 0 });
        committed.extend(with_status(&report, "committed"));
        if i == shard_of_06 {
            assert_eq!(with_status(&report, "failed"), ["unit-06"], "{report}");
        }
    }
    committed.sort();
    assert_eq!(
        committed,
        names(0..10, &["unit-01", "unit-03", "unit-06"]),
        "every unit not committed before, but the failing one, ran in exactly one shard"
    );
    assert_eq!(units_done(&target).await, names(0..10, &["unit-06"]));

    // Fixed: each shard reruns only its failed units.
    let mut rerun = Vec::new();
    for i in 0..2 {
        let report = report_of(&shard(i, ""), 0);
        rerun.extend(with_status(&report, "committed"));
    }
    assert_eq!(rerun, ["unit-06"]);
    assert_eq!(units_done(&target).await, names(0..10, &[]));
    assert_eq!(ledger_units(&target).await, names(0..10, &[]));
}

/// A dry-run keeps one transaction per connection for the whole run, which a failed unit
/// rolls back: it stops at its first failure even with `--keep-going` (exit 1), and
/// nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_stops_at_its_first_failure_even_with_keep_going_sqlite() {
    let Some(target) = work_log(Dialect::Sqlite).await else {
        return;
    };
    let ws = workspace(&target, 5, "");
    let plugin = plugins::plugin("work-units");
    let out = ws.migrun(&[
        plugin.to_str().unwrap(),
        "--dry-run",
        "--keep-going",
        "--set",
        "fail=unit-01",
        "--json",
    ]);
    let report = report_of(&out, 1);
    assert_eq!(report["failure"]["phase"], "unit `unit-01`", "{report}");
    assert_eq!(with_status(&report, "not-run").len(), 3, "{report}");
    assert!(units_done(&target).await.is_empty());
}
