//! Streaming bulk inserts on PostgreSQL (`db::stream`): consecutive
//! `bulk-insert` calls into one table share one open `COPY`, which ends when
//! the plugin does anything else on that connection or the unit ends. The
//! plugin is `sql-script` with its `-- migrun:bulk` and `-- migrun:expect`
//! directives; the checks are what an operator would look at: the rows, their
//! order, the ledger, the error message, the exit code, the replay.

use std::path::PathBuf;

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::{row_count, table_checksum};
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// `count` bulk-insert directives of `rows` rows into `table`, ids from `first`.
fn batches(table: &str, first: i64, count: i64, rows: i64) -> Vec<String> {
    (0..count)
        .map(|i| format!("-- migrun:bulk {table} {} {rows}", first + i * rows))
        .collect()
}

/// A workspace whose `sql-script` runs `statements` on `target`.
fn script(target: &TestDatabase, statements: &[String]) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nsql = '''\n{}\n'''\n",
        target.url,
        statements.join("\n;;\n")
    ));
    ws
}

fn journal_of(ws: &Workspace, report: &serde_json::Value) -> PathBuf {
    ws.path()
        .join(report["journal"]["path"].as_str().expect("journal path"))
}

/// Tables `items` and `others`: an id, a note, and the order rows arrived in.
async fn tables(target: &TestDatabase) {
    for table in ["items", "others"] {
        target
            .exec(&format!(
                "CREATE TABLE {table} (id BIGINT PRIMARY KEY, note TEXT NOT NULL, \
                 arrived BIGSERIAL, CHECK (id <> 1250))"
            ))
            .await;
    }
}

/// The ids of `table` in the order the rows arrived.
async fn ids_in_arrival_order(target: &TestDatabase, table: &str) -> Vec<i64> {
    let mut conn = target.connect(Access::ReadOnly).await;
    let rows = conn
        .query(&format!("SELECT id FROM {table} ORDER BY arrived"), &[])
        .await
        .unwrap();
    rows.rows
        .iter()
        .map(|r| match r[0] {
            Value::Int(i) => i,
            ref other => panic!("id {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn many_batches_two_tables_and_a_query_between_postgres() {
    let Some(target) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    tables(&target).await;
    for table in ["items", "others"] {
        target
            .exec(&format!(
                "ALTER TABLE {table} DROP CONSTRAINT {table}_id_check"
            ))
            .await;
    }
    // 12 batches of 500 into `items`, interleaved with 4 batches into `others` in the
    // middle, and a query on the same connection (which ends the open stream) that
    // must see every row sent before it.
    let mut statements = batches("items", 0, 4, 500);
    statements.push("-- migrun:expect 2000 SELECT count(*) FROM items".into());
    for i in 0..4 {
        statements.push(format!("-- migrun:bulk others {} 250", i * 250));
        statements.push(format!("-- migrun:bulk items {} 500", 2000 + i * 500));
    }
    statements.extend(batches("items", 4000, 4, 500));
    statements.push("-- migrun:expect 6000 SELECT count(*) FROM items".into());
    statements.push("-- migrun:expect 1000 SELECT count(*) FROM others".into());
    let ws = script(&target, &statements);
    let plugin = plugins::plugin("sql-script");
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--json"]);
    out.expect_code(0);
    let report = out.json();
    assert_eq!(report["units"][0]["status"], "committed", "{report}");
    assert_eq!(report["units"][0]["writes"]["target"]["rows"], 7000);

    // Complete and in order: every id once, arrived in the order they were sent.
    assert_eq!(
        ids_in_arrival_order(&target, "items").await,
        (0..6000).collect::<Vec<i64>>()
    );
    assert_eq!(
        ids_in_arrival_order(&target, "others").await,
        (0..1000).collect::<Vec<i64>>()
    );
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 1);

    // The replay, with no database, gives every call the answer the run gave.
    let journal = journal_of(&ws, &report);
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified:");
}

/// A bad row in the 3rd batch (id 1250 breaks the CHECK): the server says so when the
/// stream ends — at the unit's end (`at_commit`), or at the next call on the connection.
async fn bad_row_in_third_batch(at_commit: bool, dry_run: bool) {
    let Some(target) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    tables(&target).await;
    target
        .exec("INSERT INTO items (id, note) VALUES (-1, 'before the run')")
        .await;
    let before = table_checksum(&target.url, "items").await;
    let mut statements = batches("items", 0, 5, 500);
    if !at_commit {
        statements.insert(3, "-- migrun:expect 1501 SELECT count(*) FROM items".into());
    }
    let ws = script(&target, &statements);
    let plugin = plugins::plugin("sql-script");
    let mut args = vec![plugin.to_str().unwrap(), "--json"];
    if dry_run {
        args.push("--dry-run");
    }
    let out = ws.migrun(&args);
    out.expect_code(1);
    let report = out.json();
    let message = report["failure"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("the 3rd bulk insert into `items` in this unit"),
        "{message}"
    );
    assert!(
        message.contains("its first row is row 1000 of the unit's rows into `items`"),
        "{message}"
    );
    assert!(
        message.contains("the failing row is its row 250"),
        "{message}"
    );
    assert!(message.contains("(code 23514)"), "{message}");
    assert_eq!(report["units"][0]["status"], "failed", "{report}");
    // Rolled back: the table as it was, and no ledger row for the unit.
    assert_eq!(table_checksum(&target.url, "items").await, before);
    assert_eq!(row_count(&target.url, "items").await, 1);
    if !dry_run {
        assert_eq!(row_count(&target.url, "migrun_ledger").await, 0);
    }
    // The replay meets the same failure at the same point, and verifies.
    let journal = journal_of(&ws, &report);
    let replay = ws.migrun(&["replay", journal.to_str().unwrap(), "--json"]);
    replay.expect_code(0);
    let replayed = replay.json();
    assert_eq!(replayed["recorded"], "failed", "{replayed}");
    let again = replayed["run"]["failure"]["message"].as_str().unwrap_or("");
    assert!(
        again.contains("the 3rd bulk insert into `items` in this unit"),
        "{replayed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_row_in_third_batch_fails_at_the_units_end_postgres() {
    bad_row_in_third_batch(true, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_row_in_third_batch_fails_at_the_next_call_postgres() {
    bad_row_in_third_batch(false, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_row_in_third_batch_fails_the_dry_run_too_postgres() {
    bad_row_in_third_batch(true, true).await;
}
