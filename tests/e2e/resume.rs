//! The ledger, the run lock, crash-resume and sharding: kill -9 at any point,
//! rerun, and the result equals a clean run; two concurrent runs never both
//! write; three sharded workers finish the job exactly once.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use migrun::db::Dialect;

use crate::support::checksum::{row_count, table_checksum};
use crate::support::cli::{Workspace, wait_for_progress};
use crate::support::database::TestDatabase;
use crate::support::plugins;

fn auth_config(source: &str, target: &str, batch: u32) -> String {
    format!(
        "[connections.source]\nurl = \"{source}\"\naccess = \"read-only\"\n[connections.target]\nurl = \"{target}\"\n[config]\nbatch_size = {batch}\n"
    )
}

async fn kill_and_resume(dialect: Dialect) {
    const USERS: u32 = 6000;
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(clean) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, USERS, 5)
        .await
        .expect("seed");
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();

    // The reference: an uninterrupted run.
    let clean_ws = Workspace::new();
    clean_ws.config(&auth_config(&source.ro_url, &clean.url, 40));
    clean_ws.migrun(&[plugin]).expect_code(0);

    // kill -9 in the middle of `copy-users`, after some batches went in.
    let ws = Workspace::new();
    ws.config(&auth_config(&source.ro_url, &target.url, 40));
    let mut child = ws.spawn(&[plugin]);
    // After some batches went into the unit's open transaction: at least 20% of the rows.
    wait_for_progress(&mut child, "copy-users", 20);
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "migrun should have died by the signal, not exited: {status:?}"
    );
    // The unit was one transaction: nothing of it is there, the earlier unit is.
    assert_eq!(
        row_count(&target.url, "auth_users").await,
        0,
        "{dialect:?}: a killed unit left rows"
    );
    assert_eq!(
        row_count(&target.url, "migrun_ledger").await,
        1,
        "{dialect:?}: only create-auth-users finished"
    );

    // The rerun skips the finished unit and redoes the killed one.
    let out = ws.migrun(&[plugin, "--json"]);
    out.expect_code(0);
    let report = out.json();
    assert_eq!(report["units"][0]["status"], "skipped");
    assert_eq!(report["units"][1]["status"], "committed");
    assert_eq!(row_count(&target.url, "auth_users").await, i64::from(USERS));
    assert_eq!(
        table_checksum(&target.url, "auth_users").await,
        table_checksum(&clean.url, "auth_users").await,
        "{dialect:?}: the resumed result differs from a clean run"
    );
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_unit_then_rerun_equals_a_clean_run_sqlite() {
    kill_and_resume(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_unit_then_rerun_equals_a_clean_run_postgres() {
    kill_and_resume(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_unit_then_rerun_equals_a_clean_run_mysql() {
    kill_and_resume(Dialect::MySql).await;
}

/// SIGINT mid-unit: the unit in flight is rolled back, the earlier one stays, exit code 130.
async fn sigint_rolls_back(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 6000, 5)
        .await
        .expect("seed");
    let ws = Workspace::new();
    ws.config(&auth_config(&source.ro_url, &target.url, 40));
    let plugin = plugins::plugin("auth-consolidation");
    let mut child = ws.spawn(&[plugin.to_str().unwrap()]);
    wait_for_progress(&mut child, "copy-users", 20);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "stdout:\n{stdout}");
    assert!(
        stdout.contains("interrupted by the operator (SIGINT)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unit `copy-users` was rolled back"),
        "{stdout}"
    );
    assert_eq!(row_count(&target.url, "auth_users").await, 0, "{dialect:?}");
    assert_eq!(
        row_count(&target.url, "migrun_ledger").await,
        1,
        "{dialect:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_rolls_back_the_current_unit_and_exits_cleanly() {
    sigint_rolls_back(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_rolls_back_the_current_unit_and_exits_cleanly_mysql() {
    sigint_rolls_back(Dialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_rolls_back_the_current_unit_and_exits_cleanly_sqlite() {
    sigint_rolls_back(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rerun_skips_finished_units_and_refuses_another_build_without_a_reason() {
    let Some(source) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 200, 2)
        .await
        .expect("seed");
    let ws = Workspace::new();
    ws.config(&auth_config(&source.ro_url, &target.url, 50));
    let v1 = plugins::plugin("auth-consolidation");
    let v1 = v1.to_str().unwrap();
    ws.migrun(&[v1]).expect_code(0);
    ws.migrun(&[v1])
        .expect_code(0)
        .expect_output("= create-auth-users        skipped: already finished")
        // copy-users re-syncs on every run (seed 000's rerun after a rehearsal copy).
        .expect_output("✓ copy-users               committed");

    let v2 = crate::replay::auth_consolidation_v2();
    let v2 = v2.to_str().unwrap();
    let sha = |path: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
    };
    ws.migrun(&[v2])
        .expect_code(2)
        .expect_output("unit `create-auth-users` was finished by another build of the plugin")
        .expect_output(&format!("ledger sha256 {}", sha(v1)))
        .expect_output(&format!("this plugin {}", sha(v2)))
        .expect_output("--allow-plugin-change");
    ws.migrun(&[
        v2,
        "--allow-plugin-change",
        "locked accounts policy, ticket 42",
    ])
    .expect_code(0);
    let status = ws.migrun(&["status", "--json"]);
    let status = status.expect_code(0).json();
    let target_rows = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["connection"] == "target")
        .unwrap()["rows"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        target_rows.len(),
        4,
        "two units by two builds: {target_rows:?}"
    );
    // The reason is recorded where v2 reran v1's finished unit; copy-users runs on every
    // run whatever the build (it re-syncs), so nothing is overridden there.
    let v2_row = |unit: &str| {
        target_rows
            .iter()
            .find(|r| r["plugin_sha256"] == sha(v2) && r["unit"] == unit)
            .unwrap_or_else(|| panic!("{unit} by v2: {target_rows:?}"))
    };
    assert!(
        v2_row("create-auth-users")["override_reason"]
            .as_str()
            .unwrap()
            .contains("ticket 42")
    );
    assert!(v2_row("copy-users")["override_reason"].is_null());
    ws.migrun(&["status"])
        .expect_code(0)
        .expect_output("override: rerun over sha256");
}

async fn second_run_is_locked_out(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    target
        .exec("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)")
        .await;
    let ws = Workspace::new();
    ws.config(&format!("[connections.target]\nurl = \"{}\"\n", target.url));
    let plugin = plugins::plugin("work-units");
    // Another run holds the lock (taken here through the library, as a run takes it).
    let file = target
        .url
        .strip_prefix("sqlite://")
        .map(std::path::PathBuf::from);
    let lock = migrun::lock::acquire(
        "target",
        &target.url,
        "migrun:migrun_ledger",
        None,
        "the-holder",
        file.as_deref(),
        Duration::ZERO,
    )
    .await
    .expect("take the lock");
    let started = Instant::now();
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--lock-timeout", "1"]);
    out.expect_code(2)
        .expect_output("another migrun run holds the lock `migrun:migrun_ledger`");
    match dialect {
        Dialect::Postgres => out.expect_output("held by PostgreSQL backend pid"),
        Dialect::MySql => out.expect_output("held by MariaDB connection"),
        Dialect::Sqlite => out.expect_output("run the-holder"),
    };
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited for the lock"
    );
    assert_eq!(
        row_count(&target.url, "work_log").await,
        0,
        "the locked-out run wrote nothing"
    );
    lock.release().await;
    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(0);
    assert_eq!(row_count(&target.url, "work_log").await, 24);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_waits_then_fails_naming_the_holder_sqlite() {
    second_run_is_locked_out(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_waits_then_fails_naming_the_holder_postgres() {
    second_run_is_locked_out(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_waits_then_fails_naming_the_holder_mysql() {
    second_run_is_locked_out(Dialect::MySql).await;
}

async fn three_workers_run_every_unit_once(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    target
        .exec("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)")
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nunits = 30\nspin = 2000000\n",
        target.url
    ));
    let plugin = plugins::plugin("work-units");
    let plugin = plugin.to_str().unwrap();
    let workers: Vec<Child> = (0..3)
        .map(|i| ws.spawn(&[plugin, "--shard", &format!("{i}/3"), "--json"]))
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
    let expected: Vec<String> = (0..30).map(|i| format!("unit-{i:02}")).collect();
    assert_eq!(
        ran, expected,
        "{dialect:?}: every unit ran in exactly one worker"
    );
    assert_eq!(row_count(&target.url, "work_log").await, 30);
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 30);

    // Rerunning the whole job does nothing more.
    for i in 0..3 {
        let out = ws.migrun(&[plugin, "--shard", &format!("{i}/3"), "--json"]);
        let report = out.expect_code(0).json();
        assert!(
            report["units"]
                .as_array()
                .unwrap()
                .iter()
                .all(|u| u["status"] == "skipped")
        );
    }
    assert_eq!(row_count(&target.url, "work_log").await, 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_sharded_workers_finish_the_job_exactly_once_postgres() {
    three_workers_run_every_unit_once(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_sharded_workers_finish_the_job_exactly_once_mysql() {
    three_workers_run_every_unit_once(Dialect::MySql).await;
}
