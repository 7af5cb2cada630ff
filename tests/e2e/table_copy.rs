//! The Rust SDK's copy helper, `TableCopy`, through `tests/guests/table-copy`: a query on a
//! read-only source copied into a table of another database in keyset batches, each batch
//! one query, one bulk write and one checkpoint (`{"copy":…,"last_key":[…],"copied":n}`).
//!
//! What is proven, on SQLite, PostgreSQL and MariaDB:
//!
//! - every row arrives once, through the mapping (names upper-cased, `skip…` rows left out);
//! - a copy interrupted after two batches keeps them, with the last key in the ledger's
//!   checkpoint, and the rerun resumes after that key and ends with every row exactly once;
//! - a composite key (`grp, seq`) pages and resumes the same way, and `upsert` updates a
//!   row the target already holds;
//! - a dry-run plans the rows and the checkpoints and changes nothing.

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::database_checksums;
use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// `items` on the source: ids 1..=10, `skip 4` and `skip 8` left out by the mapping.
async fn seeded_items(dialect: Dialect) -> Option<(TestDatabase, TestDatabase)> {
    let source = TestDatabase::create(dialect).await?;
    let target = TestDatabase::create(dialect).await?;
    source
        .exec("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(40))")
        .await;
    let values: Vec<String> = (1..=10)
        .map(|id| match id {
            4 | 8 => format!("({id}, 'skip {id}')"),
            _ => format!("({id}, 'item {id}')"),
        })
        .collect();
    source
        .exec(&format!(
            "INSERT INTO items (id, name) VALUES {}",
            values.join(", ")
        ))
        .await;
    target
        .exec("CREATE TABLE copied (id BIGINT PRIMARY KEY, name VARCHAR(40))")
        .await;
    Some((source, target))
}

/// A workspace whose `migrun.toml` reads `source` through its reader and writes `target`.
fn workspace(source: &TestDatabase, target: &TestDatabase, config: &str) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n\n\
         [connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\n{config}\n",
        source.ro_url, target.url
    ));
    ws
}

fn run(ws: &Workspace, args: &[&str]) -> Outcome {
    let plugin = plugins::plugin("table-copy");
    let mut all = vec![plugin.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

async fn rows(db: &TestDatabase, sql: &str) -> Vec<Vec<Value>> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn.query(sql, &[]).await.expect(sql).rows;
    conn.close().await;
    rows
}

fn row(id: i64, name: &str) -> Vec<Value> {
    vec![Value::Int(id), Value::Text(name.to_owned())]
}

/// The unit `copy`'s checkpoint state in the target's ledger, if it has one.
async fn checkpoint_state(target: &TestDatabase) -> Option<String> {
    let ledger = rows(
        target,
        "SELECT status, checkpoint_state FROM migrun_ledger WHERE unit = 'copy'",
    )
    .await;
    match ledger.as_slice() {
        [] => None,
        [r] if r[0] == Value::Text("checkpoint".into()) => match &r[1] {
            Value::Text(state) => Some(state.clone()),
            other => panic!("a checkpoint state: {other:?}"),
        },
        [r] if r[0] == Value::Text("finished".into()) => None,
        other => panic!("the ledger of `copy`: {other:?}"),
    }
}

/// The fields of the guest's `copied` message.
fn copied_fields(report: &serde_json::Value) -> Vec<(String, String)> {
    let message = report["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["message"] == "copied")
        .unwrap_or_else(|| panic!("the `copied` message in {report}"));
    message["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f[0].as_str().unwrap().to_owned(),
                f[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn interrupted_copy_resumes(dialect: Dialect) {
    let Some((source, target)) = seeded_items(dialect).await else {
        return;
    };
    let ws = workspace(&source, &target, "batch_size = 3");

    // Two batches (ids 1–3 and 4–6, `skip 4` left out), then the configured failure.
    let first = run(&ws, &["--set", "fail_after_batches=2"]);
    first.expect_code(1);
    let report = first.json();
    assert_eq!(report["units"][0]["status"], "failed", "{report}");
    assert!(
        report["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("stopping the copy copied after 2 batches"),
        "{report}"
    );
    let sql = "SELECT id, name FROM copied ORDER BY id";
    assert_eq!(
        rows(&target, sql).await,
        vec![
            row(1, "ITEM 1"),
            row(2, "ITEM 2"),
            row(3, "ITEM 3"),
            row(5, "ITEM 5"),
            row(6, "ITEM 6")
        ],
        "{dialect:?}: the two committed batches stay"
    );
    assert_eq!(
        checkpoint_state(&target).await.as_deref(),
        Some(r#"{"copy":"copied","last_key":[6],"copied":5}"#),
        "{dialect:?}"
    );

    // The rerun resumes after id 6: two more batches (7–9, 10), every row exactly once.
    let second = run(&ws, &[]);
    second.expect_code(0);
    let report = second.json();
    assert_eq!(report["units"][0]["status"], "committed", "{report}");
    assert_eq!(
        copied_fields(&report),
        fields(&[
            ("read", "4"),
            ("written", "3"),
            ("skipped", "1"),
            ("batches", "2"),
            ("copied", "8"),
            ("resumed_after", "6"),
        ]),
        "{dialect:?}"
    );
    let expected: Vec<Vec<Value>> = [1, 2, 3, 5, 6, 7, 9, 10]
        .into_iter()
        .map(|id| row(id, &format!("ITEM {id}")))
        .collect();
    assert_eq!(rows(&target, sql).await, expected, "{dialect:?}");
    assert_eq!(checkpoint_state(&target).await, None, "{dialect:?}");

    // Finished: a third run skips the unit and changes nothing.
    run(&ws, &[]).expect_code(0);
    assert_eq!(rows(&target, sql).await, expected, "{dialect:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn table_copy_resumes_after_the_last_key_sqlite() {
    interrupted_copy_resumes(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_copy_resumes_after_the_last_key_postgres() {
    interrupted_copy_resumes(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_copy_resumes_after_the_last_key_mysql() {
    interrupted_copy_resumes(Dialect::MySql).await;
}

async fn composite_key_copy(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    let table = "(grp BIGINT, seq BIGINT, name VARCHAR(40), PRIMARY KEY (grp, seq))";
    source.exec(&format!("CREATE TABLE parts {table}")).await;
    // Inserted out of order: the copy orders by the key, not by insertion.
    let mut values = Vec::new();
    for grp in (1..=3).rev() {
        for seq in 1..=4 {
            let name = match (grp, seq) {
                (2, 2) => "skip".to_owned(),
                _ => format!("g{grp}s{seq}"),
            };
            values.push(format!("({grp}, {seq}, '{name}')"));
        }
    }
    source
        .exec(&format!(
            "INSERT INTO parts (grp, seq, name) VALUES {}",
            values.join(", ")
        ))
        .await;
    target
        .exec(&format!("CREATE TABLE parts_copy {table}"))
        .await;
    // A row the target already holds: the upserting rerun updates it.
    target
        .exec("INSERT INTO parts_copy (grp, seq, name) VALUES (3, 4, 'old')")
        .await;
    let ws = workspace(
        &source,
        &target,
        "select = \"SELECT grp, seq, name FROM parts\"\nkey = \"grp, seq\"\n\
         into = \"parts_copy\"\nbatch_size = 5",
    );

    let first = run(&ws, &["--set", "fail_after_batches=1"]);
    first.expect_code(1);
    assert_eq!(
        checkpoint_state(&target).await.as_deref(),
        Some(r#"{"copy":"parts_copy","last_key":[2,1],"copied":5}"#),
        "{dialect:?}"
    );
    let sql = "SELECT grp, seq, name FROM parts_copy ORDER BY grp, seq";
    let part = |grp: i64, seq: i64, name: &str| {
        vec![
            Value::Int(grp),
            Value::Int(seq),
            Value::Text(name.to_owned()),
        ]
    };
    assert_eq!(
        rows(&target, sql).await,
        vec![
            part(1, 1, "G1S1"),
            part(1, 2, "G1S2"),
            part(1, 3, "G1S3"),
            part(1, 4, "G1S4"),
            part(2, 1, "G2S1"),
            part(3, 4, "old"),
        ],
        "{dialect:?}"
    );

    let second = run(&ws, &["--set", "upsert=true"]);
    second.expect_code(0);
    let report = second.json();
    assert_eq!(
        copied_fields(&report),
        fields(&[
            ("read", "7"),
            ("written", "6"),
            ("skipped", "1"),
            ("batches", "2"),
            ("copied", "11"),
            ("resumed_after", "2,1"),
        ]),
        "{dialect:?}"
    );
    let mut expected = Vec::new();
    for grp in 1..=3 {
        for seq in 1..=4 {
            if (grp, seq) != (2, 2) {
                expected.push(part(grp, seq, &format!("G{grp}S{seq}")));
            }
        }
    }
    assert_eq!(rows(&target, sql).await, expected, "{dialect:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn table_copy_composite_key_resumes_and_upserts_sqlite() {
    composite_key_copy(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_copy_composite_key_resumes_and_upserts_postgres() {
    composite_key_copy(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_copy_composite_key_resumes_and_upserts_mysql() {
    composite_key_copy(Dialect::MySql).await;
}

async fn dry_run_changes_nothing(dialect: Dialect) {
    let Some((source, target)) = seeded_items(dialect).await else {
        return;
    };
    let ws = workspace(&source, &target, "batch_size = 3");
    let before = database_checksums(&target.url).await;
    let dry = run(&ws, &["--dry-run"]);
    dry.expect_code(0);
    let report = dry.json();
    assert_eq!(report["units"][0]["status"], "dry-run", "{report}");
    let plan = &report["plan"];
    assert_eq!(plan["checkpoints"]["copy"], 4, "{dialect:?}: {plan}");
    let copied = plan["connections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["tables"].as_array().unwrap())
        .find(|t| t["table"] == "copied")
        .unwrap_or_else(|| panic!("`copied` in the plan: {plan}"));
    assert_eq!(copied["inserted"], 8, "{copied}");
    assert_eq!(
        database_checksums(&target.url).await,
        before,
        "{dialect:?}: the dry-run changed the target"
    );
    assert!(
        rows(&target, "SELECT id FROM copied").await.is_empty(),
        "{dialect:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn table_copy_dry_run_changes_nothing_sqlite() {
    dry_run_changes_nothing(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_copy_dry_run_changes_nothing_postgres() {
    dry_run_changes_nothing(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_copy_dry_run_changes_nothing_mysql() {
    dry_run_changes_nothing(Dialect::MySql).await;
}

/// kill -9 in the middle of a copy (PostgreSQL → PostgreSQL): the batches up to the last
/// checkpoint stay, with the key in the ledger, and the rerun copies the rest — every row
/// exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn killed_table_copy_resumes_after_its_last_checkpoint() {
    let Some(source) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    source
        .exec("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(40))")
        .await;
    source
        .exec("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 90) AS i")
        .await;
    target
        .exec("CREATE TABLE copied (id BIGINT PRIMARY KEY, name VARCHAR(40))")
        .await;
    let ws = workspace(&source, &target, "batch_size = 3\npause_ms = 100");
    let plugin = plugins::plugin("table-copy");
    let mut child = ws.spawn(&[plugin.to_str().unwrap()]);
    // The first progress line comes after the first committed batch.
    crate::support::cli::wait_for_line(&mut child, "copy copied: ");
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "killed by the signal: {status:?}");

    let state = checkpoint_state(&target)
        .await
        .expect("a checkpoint after the kill");
    let state: serde_json::Value = serde_json::from_str(&state).expect("the state is JSON");
    let last = state["last_key"][0].as_i64().expect("one integer key");
    let copied = state["copied"].as_i64().unwrap();
    assert!((3..90).contains(&last), "killed mid-way: {state}");
    assert_eq!(copied, last, "{state}");
    assert_eq!(
        rows(&target, "SELECT COUNT(*), MAX(id) FROM copied").await,
        vec![vec![Value::Int(copied), Value::Int(last)]],
        "exactly the checkpointed batches stay"
    );

    let rerun = run(&ws, &["--set", "pause_ms=0"]);
    rerun.expect_code(0);
    let fields = copied_fields(&rerun.json());
    assert!(
        fields.contains(&("resumed_after".to_owned(), last.to_string())),
        "{fields:?}"
    );
    assert_eq!(
        rows(
            &target,
            "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM copied"
        )
        .await,
        vec![vec![
            Value::Int(90),
            Value::Int(90),
            Value::Int(1),
            Value::Int(90)
        ]]
    );
}
