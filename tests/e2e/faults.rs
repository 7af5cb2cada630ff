//! Databases that fail under a run: the connection is killed by the server
//! mid-run. The unit in flight fails with a connection error and is rolled
//! back (by the server), the report says what failed and what stayed
//! committed, and a rerun finishes the job exactly once.

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::row_count;
use crate::support::cli::{Workspace, wait_for_line};
use crate::support::database::TestDatabase;
use crate::support::plugins;

async fn killed_connection(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    target
        .exec("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)")
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nunits = 40\nspin = 200000000\n",
        target.url
    ));
    let plugin = plugins::plugin("work-units");
    let mut child = ws.spawn(&[plugin.to_str().unwrap()]);
    // Wait until a few units committed, then kill migrun's session from the server side.
    wait_for_line(&mut child, "▸ unit unit-03");
    let mut admin = target.connect(Access::ReadWrite).await;
    let killed = match dialect {
        Dialect::Postgres => {
            let rows = admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap();
            rows.rows.len()
        }
        Dialect::MySql => {
            let rows = admin
                .query(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()",
                    &[],
                )
                .await
                .unwrap();
            for row in &rows.rows {
                let Value::Int(id) = row[0] else {
                    panic!("{row:?}")
                };
                let _ = admin.execute(&format!("KILL {id}"), &[]).await;
            }
            rows.rows.len()
        }
        Dialect::Sqlite => unreachable!(),
    };
    admin.close().await;
    assert!(killed >= 1, "found migrun's session to kill");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED in unit `unit-"), "{stdout}");
    assert!(stdout.contains("earlier units stay committed"), "{stdout}");

    // What is in the table is exactly what the ledger says finished.
    let logged = row_count(&target.url, "work_log").await;
    let finished = row_count(&target.url, "migrun_ledger").await;
    assert_eq!(
        logged, finished,
        "{dialect:?}: a unit's rows and its ledger row commit together"
    );
    assert!(
        (3..40).contains(&logged),
        "{dialect:?}: {logged} units before the kill"
    );

    // The rerun finishes the job, each unit exactly once.
    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(0);
    assert_eq!(row_count(&target.url, "work_log").await, 40);
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_terminated_by_postgres_mid_run() {
    killed_connection(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_killed_by_mariadb_mid_run() {
    killed_connection(Dialect::MySql).await;
}

/// A unique violation in the middle of a multi-row write: the statement fails with the
/// database's code, the unit rolls back, and the table is exactly as before.
async fn unique_violation_mid_batch(dialect: Dialect, insert: &str, code: &str) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    target
        .exec("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(20))")
        .await;
    target
        .exec("INSERT INTO items (id, note) VALUES (5, 'already here')")
        .await;
    let before = crate::support::checksum::table_checksum(&target.url, "items").await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nsql = '''\nINSERT INTO items (id, note) VALUES (100, 'first statement')\n;;\n{insert}\n'''\n",
        target.url
    ));
    let plugin = plugins::plugin("sql-script");
    let out = ws.migrun(&[plugin.to_str().unwrap()]);
    out.expect_code(1)
        .expect_output("FAILED in unit `apply`")
        .expect_output(&format!("(code {code})"))
        .expect_output("unit `apply` was rolled back on every connection");
    assert_eq!(
        crate::support::checksum::table_checksum(&target.url, "items").await,
        before,
        "{dialect:?}: half a batch (or the statement before it) survived"
    );
    // The run started, so its (empty) ledger exists; the failed unit left no row in it.
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_violation_mid_batch_postgres() {
    unique_violation_mid_batch(
        Dialect::Postgres,
        "INSERT INTO items (id, note) SELECT i, 'new' FROM generate_series(1, 10) AS i",
        "23505",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_violation_mid_batch_mysql() {
    unique_violation_mid_batch(
        Dialect::MySql,
        "INSERT INTO items (id, note) VALUES (1, 'a'), (2, 'b'), (5, 'dup'), (6, 'c')",
        "1062",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_violation_mid_batch_sqlite() {
    unique_violation_mid_batch(
        Dialect::Sqlite,
        "INSERT INTO items (id, note) VALUES (1, 'a'), (2, 'b'), (5, 'dup'), (6, 'c')",
        "1555",
    )
    .await;
}
