//! Lock and statement timeouts (`[limits] lock_timeout` / `statement_timeout`, and a
//! 0.2.0 unit's own) against real locks held by a concurrent session, and the lint
//! on real runs (seed 003: timeouts around migrations; lock warnings on the run
//! that takes the lock, not only in a dry-run).
//!
//! A unit that hits a timeout is rolled back with a message naming the timeout,
//! its value and the connection; nothing it wrote stays and its ledger row is not
//! written. It counts as a conflict: with `conflict_retries` it runs again, and
//! once the lock is gone the retry commits exactly once.

use std::time::{Duration, Instant};

use migrun::db::{Access, Connection, Dialect};
use migrun::value::Value;

use crate::support::checksum::row_count;
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// `items(id, note)` with row 1, and a workspace running `sql` through `sql-script`
/// under `limits` (lines of `[limits]`).
async fn items(dialect: Dialect, limits: &str, sql: &[&str]) -> Option<(TestDatabase, Workspace)> {
    let target = TestDatabase::create(dialect).await?;
    target
        .exec("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(40) NOT NULL)")
        .await;
    target
        .exec("INSERT INTO items (id, note) VALUES (1, 'before')")
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[limits]\n{limits}\n[config]\nsql = '''\n{}\n'''\n",
        target.url,
        sql.join("\n;;\n")
    ));
    Some((target, ws))
}

/// A concurrent session holding row 1 of `items` in an open transaction.
async fn hold_row_one(target: &TestDatabase) -> Connection {
    let mut holder = target.connect(Access::ReadWrite).await;
    holder.begin().await.unwrap();
    holder
        .execute("UPDATE items SET note = 'held' WHERE id = 1", &[])
        .await
        .unwrap();
    holder
}

/// Rows of `items`, in id order.
async fn rows(target: &TestDatabase) -> Vec<Vec<Value>> {
    let mut conn = target.connect(Access::ReadOnly).await;
    let rows = conn
        .query("SELECT id, note FROM items ORDER BY id", &[])
        .await
        .unwrap();
    conn.close().await;
    rows.rows
}

fn row(id: i64, note: &str) -> Vec<Value> {
    vec![Value::Int(id), Value::Text(note.into())]
}

/// The unit's statements: a row of its own first, then row 1, which the concurrent
/// session holds.
const WRITES: [&str; 2] = [
    "INSERT INTO items (id, note) VALUES (2, 'unit')",
    "UPDATE items SET note = 'unit' WHERE id = 1",
];

async fn lock_timeout_rolls_back(dialect: Dialect, code: &str) {
    let Some((target, ws)) = items(dialect, "lock_timeout = \"1s\"", &WRITES).await else {
        return;
    };
    let mut holder = hold_row_one(&target).await;
    let started = Instant::now();
    let out = ws.migrun(&[plugins::plugin("sql-script").to_str().unwrap(), "--json"]);
    let waited = started.elapsed();
    holder.rollback().await.unwrap();
    holder.close().await;

    out.expect_code(1);
    let report = out.json();
    let message = report["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("lock_timeout 1s exceeded on `target` while waiting for a lock"),
        "{message}"
    );
    assert!(message.contains(&format!("(code {code})")), "{message}");
    assert!(
        message.contains("a conflict: `[limits] conflict_retries` would run the unit again"),
        "{message}"
    );
    let consequence = report["failure"]["consequence"].as_str().unwrap();
    assert!(
        consequence.contains("was rolled back on every connection"),
        "{consequence}"
    );
    assert_eq!(report["units"][0]["status"], "failed");
    // The unit's own row went with the rollback; row 1 is the concurrent session's again.
    assert_eq!(rows(&target).await, vec![row(1, "before")]);
    assert_eq!(
        row_count(&target.url, "migrun_ledger").await,
        0,
        "no ledger row"
    );
    assert!(
        waited < Duration::from_secs(20),
        "the unit waited {waited:?}: the lock timeout did not apply"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_timeout_rolls_the_unit_back_and_names_the_timeout_postgres() {
    lock_timeout_rolls_back(Dialect::Postgres, "55P03").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_timeout_rolls_the_unit_back_and_names_the_timeout_mysql() {
    lock_timeout_rolls_back(Dialect::MySql, "1205").await;
}

/// Whether a session of this database waits for a lock now.
async fn someone_waits(monitor: &mut Connection, dialect: Dialect) -> bool {
    let sql = match dialect {
        Dialect::Postgres => {
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'"
        }
        _ => {
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() \
             AND INFO LIKE 'UPDATE items%'"
        }
    };
    let rows = monitor.query(sql, &[]).await.unwrap();
    rows.rows[0][0] != Value::Int(0)
}

/// The first attempt times out behind the concurrent session (2 s); the lock is
/// released 3 s after the unit began to wait, inside the second attempt's wait, so the
/// retry takes the row and commits.
async fn lock_timeout_is_retried(dialect: Dialect) {
    let Some((target, ws)) = items(
        dialect,
        "lock_timeout = \"2s\"\nconflict_retries = 1",
        &WRITES,
    )
    .await
    else {
        return;
    };
    let mut holder = hold_row_one(&target).await;
    let child = ws.spawn(&[plugins::plugin("sql-script").to_str().unwrap(), "--json"]);
    let mut monitor = target.connect(Access::ReadOnly).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !someone_waits(&mut monitor, dialect).await {
        assert!(
            Instant::now() < deadline,
            "the unit never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    monitor.close().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    holder.rollback().await.unwrap();
    holder.close().await;

    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["units"][0]["status"], "committed");
    let note = report["units"][0]["note"].as_str().unwrap();
    assert!(
        note.starts_with("run 2 times: conflicts (1) were retried; the last: "),
        "{note}"
    );
    assert!(
        note.contains("lock_timeout 2s exceeded on `target` while waiting for a lock"),
        "{note}"
    );
    // The unit's writes, exactly once.
    assert_eq!(rows(&target).await, vec![row(1, "unit"), row(2, "unit")]);
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 1);
    // The journal holds both attempts (and the limits): a replay repeats the retry.
    let journal = ws.path().join(report["journal"]["path"].as_str().unwrap());
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified:");
    ws.migrun(&["journal", "show", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("lock_timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_timeout_is_retried_once_the_lock_is_released_postgres() {
    lock_timeout_is_retried(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_timeout_is_retried_once_the_lock_is_released_mysql() {
    lock_timeout_is_retried(Dialect::MySql).await;
}

async fn statement_timeout_cancels(dialect: Dialect, sleep: &str, code: &str) {
    let Some((target, ws)) = items(
        dialect,
        "statement_timeout = \"1s\"",
        &["INSERT INTO items (id, note) VALUES (2, 'unit')", sleep],
    )
    .await
    else {
        return;
    };
    let started = Instant::now();
    let out = ws.migrun(&[plugins::plugin("sql-script").to_str().unwrap(), "--json"]);
    out.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the 10 s sleep ran to its end"
    );
    let report = out.json();
    let message = report["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("statement_timeout 1s exceeded on `target`: the statement was cancelled"),
        "{message}"
    );
    assert!(message.contains(&format!("(code {code})")), "{message}");
    assert_eq!(rows(&target).await, vec![row(1, "before")]);
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_timeout_cancels_the_statement_and_rolls_back_postgres() {
    statement_timeout_cancels(Dialect::Postgres, "SELECT pg_sleep(10)::text", "57014").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_timeout_cancels_the_statement_and_rolls_back_mysql() {
    statement_timeout_cancels(Dialect::MySql, "SELECT SLEEP(10)", "1969").await;
}

/// SQLite: the test holds the database's write lock; the unit's `BEGIN IMMEDIATE` waits
/// the busy timeout (`lock_timeout`, not SQLite's 5 s default) and the unit fails as a
/// conflict, naming the timeout.
#[tokio::test(flavor = "multi_thread")]
async fn lock_timeout_is_the_busy_timeout_sqlite() {
    // The ledger table first (a run whose unit fails creates it and writes no row):
    // creating it later would wait for the held lock before any unit runs.
    let Some((target, ws)) = items(Dialect::Sqlite, "", &["SELECT no_such_function()"]).await
    else {
        return;
    };
    let plugin = plugins::plugin("sql-script");
    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(1);
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[limits]\nlock_timeout = \"1s\"\n[config]\nsql = '''\n{}\n'''\n",
        target.url,
        WRITES.join("\n;;\n")
    ));
    let mut holder = target.connect(Access::ReadWrite).await;
    holder.begin().await.unwrap();
    let started = Instant::now();
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--json"]);
    let waited = started.elapsed();
    holder.rollback().await.unwrap();
    holder.close().await;
    out.expect_code(1);
    let message = out.json()["failure"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("lock_timeout 1s exceeded on `target` while waiting for a lock"),
        "{message}"
    );
    assert!(message.contains("(code 5)"), "{message}");
    assert!(
        message.contains("a conflict: `[limits] conflict_retries` would run the unit again"),
        "{message}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "waited {waited:?}: SQLite's own 5 s busy timeout applied"
    );
    assert_eq!(rows(&target).await, vec![row(1, "before")]);
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 0);
}

/// A 0.2.0 unit's own statement timeout overrides `[limits]`: one hour in the
/// configuration, 500 ms declared by the unit, and the unit's sleep of 3 s is cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn a_units_own_statement_timeout_overrides_the_limits_postgres() {
    let Some(target) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{0}\"\n[connections.audit]\nurl = \"{0}\"\naccess = \"read-only\"\nallow_privileged = true\n\
         [limits]\nstatement_timeout = \"1h\"\n\
         [config]\nstatement_timeout_ms = \"500\"\nsleep_ms = \"3000\"\n",
        target.url
    ));
    let out = ws.migrun(&[
        plugins::plugin("contract-v0-2-0").to_str().unwrap(),
        "--json",
    ]);
    out.expect_code(1);
    let message = out.json()["failure"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("statement_timeout 500ms exceeded on `target`"),
        "{message}"
    );
    assert!(message.contains("(code 57014)"), "{message}");
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 0);
}

/// A real run lints its writes as a dry-run does and says so before the statement runs
/// (stderr) and in the report (`--json`), and runs the statement all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_run_shows_the_lint_warnings_of_its_writes_postgres() {
    let Some((target, ws)) = items(
        Dialect::Postgres,
        "",
        &["CREATE INDEX items_note ON items (note)"],
    )
    .await
    else {
        return;
    };
    let out = ws.migrun(&[plugins::plugin("sql-script").to_str().unwrap(), "--json"]);
    out.expect_code(0);
    assert!(
        out.stderr
            .contains("warning: lock hazard (unit apply, on `target`):"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("CONCURRENTLY"), "{}", out.stderr);
    let report = out.json();
    let warnings = report["lock_warnings"].as_array().expect("lock_warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["unit"], "apply");
    assert_eq!(warnings[0]["connection"], "target");
    assert_eq!(warnings[0]["table"], "items");
    assert_eq!(warnings[0]["rows"], 1);
    assert!(
        warnings[0]["statement"]
            .as_str()
            .unwrap()
            .starts_with("CREATE INDEX items_note")
    );
    // Behaviour unchanged: the index was built and the unit committed.
    assert_eq!(report["units"][0]["status"], "committed");
    let mut conn = target.connect(Access::ReadOnly).await;
    let found = conn
        .query(
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'items_note'",
            &[],
        )
        .await
        .unwrap();
    conn.close().await;
    assert_eq!(found.rows, vec![vec![Value::Int(1)]]);
}

/// SQLite has no statement timeout: a configured one is not silently dropped, the run
/// says it was not applied (and runs the unit as usual).
#[tokio::test(flavor = "multi_thread")]
async fn a_statement_timeout_on_sqlite_is_said_not_applied_sqlite() {
    let Some((target, ws)) = items(
        Dialect::Sqlite,
        "statement_timeout = \"30s\"\nlock_timeout = \"2s\"",
        &WRITES,
    )
    .await
    else {
        return;
    };
    let out = ws.migrun(&[plugins::plugin("sql-script").to_str().unwrap(), "--json"]);
    out.expect_code(0).expect_output(
        "statement_timeout 30s of unit `apply` is not applied on `target`: SQLite has no statement timeout",
    );
    let report = out.json();
    assert!(
        report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["level"] == "warn"
                && m["message"]
                    .as_str()
                    .unwrap()
                    .contains("is not applied on `target`")),
        "{}",
        report["messages"]
    );
    assert_eq!(rows(&target).await, vec![row(1, "unit"), row(2, "unit")]);
}
