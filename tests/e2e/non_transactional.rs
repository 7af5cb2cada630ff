//! Units outside a transaction (contract 0.2.0, `unit-info.transactional = false`):
//! seed 003's "add an index without blocking writes", which PostgreSQL runs only
//! outside a transaction block.
//!
//! The plugin is `tests/guests/non-transactional`: `create-table` (transactional), then
//! `build-index` (non-transactional): `CREATE INDEX CONCURRENTLY IF NOT EXISTS` on
//! PostgreSQL (`CREATE INDEX IF NOT EXISTS` elsewhere) and an `UPDATE` of row 1, with an
//! optional last step that fails. What is proven:
//!
//! - a live run commits each statement on its own; the index is valid; the unit's ledger
//!   row is written after it succeeded; a rerun skips it; the journal replays to "verified";
//! - a dry-run plans it without running it ("non-transactional: not run in a dry-run");
//! - a failure midway keeps what ran (a transactional unit doing the same is rolled back),
//!   writes no ledger row and exits 1, and the next run runs the unit again;
//! - bulk inserts and checkpoints are refused in such a unit, by name;
//! - `CREATE INDEX CONCURRENTLY` in a transactional unit fails with the way out.

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// A workspace whose `migrun.toml` grants `target` read-write on `db`, with `config`.
fn workspace(db: &TestDatabase, config: &str) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\n{config}\n",
        db.url
    ));
    ws
}

fn run(ws: &Workspace, args: &[&str]) -> Outcome {
    let plugin = plugins::plugin("non-transactional");
    let mut all = vec![plugin.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

/// The units of a `--json` report: (name, status).
fn unit_statuses(out: &Outcome) -> Vec<(String, String)> {
    out.json()["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn statuses(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
        .collect()
}

/// One value read on a fresh read-only connection.
async fn read_one(db: &TestDatabase, sql: &str) -> Vec<Vec<Value>> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await;
    rows.rows
}

/// The label of row 1: `'a'` as `create-table` wrote it, `'outside'` once `build-index` ran.
async fn label_of_row_1(db: &TestDatabase) -> Value {
    read_one(db, "SELECT label FROM step_rows WHERE id = 1").await[0][0].clone()
}

/// `finished` ledger rows of `build-index`.
async fn finished_rows(db: &TestDatabase) -> Value {
    read_one(
        db,
        "SELECT count(*) FROM migrun_ledger WHERE unit = 'build-index' AND status = 'finished'",
    )
    .await[0][0]
        .clone()
}

/// The journal of a `--json` run, replayed: it must verify.
fn replay_verifies(ws: &Workspace, out: &Outcome) {
    let journal = ws.path().join(
        out.json()["journal"]["path"]
            .as_str()
            .expect("journal path"),
    );
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified: ");
}

#[tokio::test(flavor = "multi_thread")]
async fn create_index_concurrently_runs_outside_a_transaction_and_a_dry_run_plans_it_postgres() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let ws = workspace(&db, "");
    run(&ws, &["--only", "create-table"]).expect_code(0);
    let index = "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE c.relname = 'step_rows_label'";

    // In a transactional unit the statement fails, and the error names the way out.
    let tx = workspace(&db, "step_transactional = true");
    run(&tx, &[])
        .expect_code(1)
        .expect_output("CREATE INDEX CONCURRENTLY cannot run inside a transaction block")
        .expect_output(
            "declared `transactional: false` (contract 0.2.0), which runs in autocommit",
        );
    assert!(read_one(&db, index).await.is_empty());

    // A dry-run plans the unit without running it: no index, row 1 untouched.
    let dry = run(&ws, &["--dry-run", "--json"]);
    dry.expect_code(0);
    assert_eq!(
        unit_statuses(&dry),
        statuses(&[("create-table", "skipped"), ("build-index", "planned")])
    );
    let report = dry.json();
    assert_eq!(
        report["units"][1]["note"],
        "non-transactional: not run in a dry-run"
    );
    assert_eq!(report["units"][1]["transactional"], false);
    assert_eq!(
        report["plan"]["not_run"],
        serde_json::json!(["build-index"])
    );
    run(&ws, &["--dry-run"])
        .expect_code(0)
        .expect_output("planned, not run")
        .expect_output("non-transactional units: not run in a dry-run");
    assert!(
        read_one(&db, index).await.is_empty(),
        "the dry-run built the index"
    );
    assert_eq!(label_of_row_1(&db).await, Value::Text("a".into()));
    // Its journal replays, planning the unit again without running it.
    replay_verifies(&ws, &dry);

    // The real run builds it, valid, and records the unit's ledger row after it.
    let out = run(&ws, &["--json"]);
    out.expect_code(0);
    assert_eq!(
        unit_statuses(&out),
        statuses(&[("create-table", "skipped"), ("build-index", "committed")])
    );
    assert_eq!(read_one(&db, index).await, vec![vec![Value::Bool(true)]]);
    assert_eq!(label_of_row_1(&db).await, Value::Text("outside".into()));
    assert_eq!(finished_rows(&db).await, Value::Int(1));
    replay_verifies(&ws, &out);

    // A rerun is a no-op: the ledger says the unit finished.
    let again = run(&ws, &["--json"]);
    again.expect_code(0);
    assert_eq!(
        unit_statuses(&again),
        statuses(&[("create-table", "skipped"), ("build-index", "skipped")])
    );
    assert_eq!(finished_rows(&db).await, Value::Int(1));
}

/// A failure after the unit's first statements: what a transactional unit rolls back, a
/// non-transactional one keeps; no ledger row; the next run runs the unit again.
async fn a_failure_keeps_what_ran(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    // The same steps in a transactional unit: the UPDATE is rolled back with the unit.
    let tx = workspace(&db, "step_transactional = true\nthen = \"fail\"");
    let out = run(&tx, &["--json"]);
    out.expect_code(1);
    assert_eq!(
        unit_statuses(&out),
        statuses(&[("create-table", "committed"), ("build-index", "failed")])
    );
    assert_eq!(label_of_row_1(&db).await, Value::Text("a".into()));

    // Non-transactional: the UPDATE committed on its own and stays.
    let ws = workspace(&db, "then = \"fail\"");
    let out = run(&ws, &["--json"]);
    out.expect_code(1);
    assert_eq!(
        unit_statuses(&out),
        statuses(&[("create-table", "skipped"), ("build-index", "failed")])
    );
    let report = out.json();
    assert_eq!(report["units"][1]["transactional"], false);
    let consequence = report["failure"]["consequence"].as_str().unwrap();
    assert!(
        consequence.starts_with(
            "unit `build-index` is non-transactional: statements that ran before the failure stay"
        ),
        "{consequence}"
    );
    assert_eq!(label_of_row_1(&db).await, Value::Text("outside".into()));
    assert_eq!(finished_rows(&db).await, Value::Int(0));
    replay_verifies(&ws, &out);
    run(&ws, &[])
        .expect_code(1)
        .expect_output("failed, not rolled back")
        .expect_output("is non-transactional: statements that ran before the failure stay");

    // Fixed, the next run runs it again from its start; its statements are safe to repeat.
    let ws = workspace(&db, "");
    let out = run(&ws, &["--json"]);
    out.expect_code(0);
    assert_eq!(
        unit_statuses(&out),
        statuses(&[("create-table", "skipped"), ("build-index", "committed")])
    );
    assert_eq!(finished_rows(&db).await, Value::Int(1));
    replay_verifies(&ws, &out);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_non_transactional_unit_keeps_what_ran_and_runs_again_sqlite() {
    a_failure_keeps_what_ran(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_non_transactional_unit_keeps_what_ran_and_runs_again_mariadb() {
    a_failure_keeps_what_ran(Dialect::MySql).await;
}

/// On PostgreSQL the transactional contrast fails at `CREATE INDEX CONCURRENTLY` already;
/// row 1 is untouched all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_non_transactional_unit_keeps_what_ran_and_runs_again_postgres() {
    a_failure_keeps_what_ran(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_inserts_and_checkpoints_are_refused_in_a_non_transactional_unit_sqlite() {
    let db = TestDatabase::create(Dialect::Sqlite).await.expect("sqlite");
    for (then, refused) in [
        (
            "bulk-insert",
            "bulk-insert is refused in unit `build-index`, which is declared non-transactional",
        ),
        (
            "checkpoint",
            "checkpoint.save is refused in unit `build-index`, which is declared non-transactional",
        ),
    ] {
        let ws = workspace(&db, &format!("then = \"{then}\""));
        let out = run(&ws, &["--json"]);
        out.expect_code(1)
            .expect_output(refused)
            .expect_output("move bulk inserts and checkpointed batches into a transactional unit");
        assert_eq!(
            unit_statuses(&out)[1],
            ("build-index".to_owned(), "failed".to_owned())
        );
        // The refusal is an answer in the journal like any other.
        replay_verifies(&ws, &out);
    }
    // Nothing was inserted, no ledger row written.
    assert_eq!(
        read_one(&db, "SELECT count(*) FROM step_rows").await,
        vec![vec![Value::Int(3)]]
    );
    assert_eq!(finished_rows(&db).await, Value::Int(0));
}

#[test]
fn inspect_says_a_non_transactional_unit_runs_in_autocommit() {
    let ws = Workspace::new();
    let plugin = plugins::plugin("non-transactional");
    let plugin = plugin.to_str().unwrap();
    ws.migrun(&["inspect", plugin])
        .expect_code(0)
        .expect_output("non-transactional: runs in autocommit");
    let json = ws
        .migrun(&["inspect", plugin, "--json"])
        .expect_code(0)
        .json();
    assert_eq!(json["plugin"]["units"][1]["name"], "build-index");
    assert_eq!(json["plugin"]["units"][1]["transactional"], false);
    assert_eq!(json["plugin"]["units"][0].get("transactional"), None);
}
