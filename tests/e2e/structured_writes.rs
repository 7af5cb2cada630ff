//! Structured writes by key (contract 0.2.0): `bulk-update`, `bulk-upsert` and
//! `bulk-delete`, on every dialect, through `tests/guests/structured-writes` (and its second
//! build `structured-writes-v2`, other repricing and pruning rules).
//!
//! What is proven, on SQLite, PostgreSQL and MariaDB:
//!
//! - the three writes change exactly the rows they name (the whole table is compared after
//!   a run) and answer the rows matched (the plugin's checks);
//! - the journal of that run replays to "verified" with the databases gone;
//! - a dry-run runs them in its rolled-back transaction: the plan counts their rows per
//!   table as updated / upserted / deleted, and the database is unchanged;
//! - a read-only connection refuses each of them as `read-only`, writing nothing;
//! - a call that fails (its last row breaks NOT NULL, after a first chunk that would
//!   change a row) writes nothing and leaves the unit's transaction usable; a
//!   non-transactional unit may not bulk-write (SQLite);
//! - `replay --plugin v2.wasm` compares them per row by key (`~ id=4 amount_cents: 493 →
//!   494`, `+ id=3` for a key only v2 deletes), and raw `execute` statements by shape
//!   (`~ UPDATE orders SET note = $1 WHERE id = $2  [#2] $1: s2 → t2`).

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::database_checksums;
use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// Orders the plugin seeds.
const ROWS: i64 = 20;

/// A workspace whose `migrun.toml` grants `target` read-write on `db` (and `source`
/// read-only on it, when `source`), with `config`.
fn workspace(db: &TestDatabase, source: bool, config: &str) -> Workspace {
    let ws = Workspace::new();
    let source = if source {
        format!(
            "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n\n",
            db.ro_url
        )
    } else {
        String::new()
    };
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n{source}[config]\nrows = {ROWS}\n{config}\n",
        db.url
    ));
    ws
}

fn run(ws: &Workspace, args: &[&str]) -> Outcome {
    let plugin = plugins::plugin("structured-writes");
    let mut all = vec![plugin.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

/// Every order as `(id, amount_cents, note)`, by id.
async fn orders(db: &TestDatabase) -> Vec<(i64, i64, String)> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn
        .query("SELECT id, amount_cents, note FROM orders ORDER BY id", &[])
        .await
        .expect("read orders");
    conn.close().await;
    rows.rows
        .into_iter()
        .map(|row| match row.as_slice() {
            [Value::Int(id), Value::Int(cents), Value::Text(note)] => (*id, *cents, note.clone()),
            other => panic!("an order read as {other:?}"),
        })
        .collect()
}

/// The orders after every unit of the first build ran on `ROWS` seeded orders (see the
/// plugin's rules).
fn expected_orders() -> Vec<(i64, i64, String)> {
    let mut orders: Vec<(i64, i64, String)> = (1..=ROWS)
        .map(|id| (id, id * 12345, format!("n{id}")))
        .collect();
    // reprice: the even ids' amounts / 100.
    for o in &mut orders {
        if o.0 % 2 == 0 {
            o.1 /= 100;
        }
    }
    // upsert: ROWS-2..=ROWS+3, three updated and three inserted.
    for id in ROWS - 2..=ROWS + 3 {
        match orders.iter_mut().find(|o| o.0 == id) {
            Some(o) => *o = (id, id, "upserted".into()),
            None => orders.push((id, id, "upserted".into())),
        }
    }
    // prune: the ids divisible by 5.
    orders.retain(|o| o.0 % 5 != 0);
    // statements: notes of ids 1..=3.
    for o in &mut orders {
        if o.0 <= 3 {
            o.2 = format!("s{}", o.0);
        }
    }
    orders
}

/// The journal a `--json` run wrote.
fn journal_of(ws: &Workspace, out: &Outcome) -> std::path::PathBuf {
    ws.path().join(
        out.json()["journal"]["path"]
            .as_str()
            .expect("journal path"),
    )
}

/// Every check of a `--json` report passed; the names reported.
fn checks_passed(out: &Outcome) -> Vec<String> {
    let report = out.json();
    let checks = report["checks"].as_array().expect("checks");
    for c in checks {
        assert_eq!(c["ok"], true, "check failed: {c}\n{report}");
    }
    checks
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn change_exactly_the_right_rows(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    let ws = workspace(&db, false, "batch = 4");
    let out = run(&ws, &["--json"]);
    out.expect_code(0);
    assert_eq!(
        checks_passed(&out),
        ["reprice", "upsert", "prune"],
        "each write answered the rows it matched"
    );
    assert_eq!(orders(&db).await, expected_orders());
    // The report counts the calls apart from statements and bulk inserts.
    let report = out.json();
    let reprice = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "reprice")
        .expect("reprice in the report");
    assert_eq!(reprice["writes"]["target"]["bulk_writes"], 3, "{reprice}");
    assert_eq!(reprice["writes"]["target"]["rows"], ROWS / 2, "{reprice}");

    // The journal replays with the database gone.
    let journal = journal_of(&ws, &out);
    drop(db);
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified: ");
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_writes_change_exactly_the_right_rows_and_replay_sqlite() {
    change_exactly_the_right_rows(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_writes_change_exactly_the_right_rows_and_replay_postgres() {
    change_exactly_the_right_rows(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_writes_change_exactly_the_right_rows_and_replay_mysql() {
    change_exactly_the_right_rows(Dialect::MySql).await;
}

async fn dry_run_plans_and_changes_nothing(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    let ws = workspace(&db, false, "");
    run(&ws, &["--only", "seed"]).expect_code(0);
    let before = database_checksums(&db.url).await;
    let orders_before = orders(&db).await;

    let dry = run(
        &ws,
        &["--dry-run", "--only", "reprice,upsert,prune", "--json"],
    );
    dry.expect_code(0);
    assert_eq!(checks_passed(&dry), ["reprice", "upsert", "prune"]);
    let report = dry.json();
    let tables = report["plan"]["connections"][0]["tables"]
        .as_array()
        .expect("plan tables");
    let orders_plan = tables
        .iter()
        .find(|t| t["table"] == "orders")
        .unwrap_or_else(|| panic!("orders in the plan: {report}"));
    assert_eq!(orders_plan["updated"], ROWS / 2, "{orders_plan}");
    assert_eq!(orders_plan["upserted"], 6, "{orders_plan}");
    assert_eq!(orders_plan["deleted"], (ROWS + 3) / 5, "{orders_plan}");
    assert_eq!(orders_plan["inserted"], 0, "{orders_plan}");
    assert_eq!(orders_plan["statements"], 3, "{orders_plan}");
    assert_eq!(
        report["plan"]["summary"]["rows_updated"],
        ROWS / 2,
        "{report}"
    );

    assert_eq!(orders(&db).await, orders_before, "the dry-run changed rows");
    assert_eq!(database_checksums(&db.url).await, before);

    // The text plan names the table with its counts.
    let text = run(&ws, &["--dry-run", "--only", "reprice,upsert,prune"]);
    text.expect_code(0).expect_output("orders");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_plans_bulk_writes_per_table_and_changes_nothing_sqlite() {
    dry_run_plans_and_changes_nothing(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_plans_bulk_writes_per_table_and_changes_nothing_postgres() {
    dry_run_plans_and_changes_nothing(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_plans_bulk_writes_per_table_and_changes_nothing_mysql() {
    dry_run_plans_and_changes_nothing(Dialect::MySql).await;
}

async fn read_only_refuses(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    let seeded = workspace(&db, false, "");
    run(&seeded, &["--only", "seed"]).expect_code(0);
    let before = orders(&db).await;

    let ws = workspace(&db, true, "probe_read_only = true");
    let out = run(&ws, &["--only", "read-only-probe", "--json"]);
    out.expect_code(0);
    assert_eq!(checks_passed(&out), ["read-only refused"]);
    let detail = out.json()["checks"][0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    for call in ["bulk-update", "bulk-upsert", "bulk-delete"] {
        assert!(
            detail.contains(&format!(
                "{call} into `orders` refused: connection `source` is read-only"
            )),
            "{detail}"
        );
    }
    assert_eq!(orders(&db).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_connection_refuses_bulk_writes_sqlite() {
    read_only_refuses(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_connection_refuses_bulk_writes_postgres() {
    read_only_refuses(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_connection_refuses_bulk_writes_mysql() {
    read_only_refuses(Dialect::MySql).await;
}

/// Records a full run of the first build on `dialect` and compares the second build on its
/// journal: the `--json` report and the text.
async fn compare_v2(dialect: Dialect) -> Option<(serde_json::Value, String)> {
    let db = TestDatabase::create(dialect).await?;
    let ws = workspace(&db, false, "");
    let out = run(&ws, &["--json"]);
    out.expect_code(0);
    let journal = journal_of(&ws, &out);
    drop(db);
    let v2 = plugins::plugin("structured-writes-v2");
    let args = [
        "replay",
        journal.to_str().unwrap(),
        "--plugin",
        v2.to_str().unwrap(),
    ];
    let json = ws.migrun(&[&args[..], &["--json"]].concat());
    json.expect_code(1);
    let text = ws.migrun(&args);
    text.expect_code(1).expect_output("writes differ:");
    Some((json.json(), text.all()))
}

async fn bulk_writes_diff_by_key(dialect: Dialect) {
    let Some((json, text)) = compare_v2(dialect).await else {
        return;
    };
    assert_eq!(json["outcome"], "compared", "{json}");
    let tables = &json["diff"]["tables"];
    // reprice: v2 adds one cent to ids divisible by 4.
    let update = &tables["target.orders (update)"];
    assert_eq!(update["keys"], serde_json::json!(["id"]), "{update}");
    assert_eq!(update["identical"], 5, "{update}");
    let changed = update["changed"].as_array().expect("changed");
    let ids: Vec<i64> = changed
        .iter()
        .map(|c| c["key_values"][0][1][1].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, [4, 8, 12, 16, 20], "{update}");
    for c in changed {
        assert_eq!(c["changes"].as_array().unwrap().len(), 1, "{c}");
        assert_eq!(c["changes"][0][0], "amount_cents", "{c}");
    }
    assert!(update["only_recorded"].as_array().unwrap().is_empty());
    assert!(update["only_compared"].as_array().unwrap().is_empty());
    // upsert: the same rows.
    let upsert = &tables["target.orders (upsert)"];
    assert_eq!(upsert["identical"], 6, "{upsert}");
    assert!(upsert["changed"].as_array().unwrap().is_empty());
    // prune: v2 also deletes id 3.
    let delete = &tables["target.orders (delete)"];
    assert_eq!(delete["identical"], (ROWS + 3) / 5 + 1, "{delete}");
    assert_eq!(
        delete["only_compared"],
        serde_json::json!([[["int", "3"]]]),
        "{delete}"
    );
    assert!(delete["only_recorded"].as_array().unwrap().is_empty());
    // The seeded rows are identical.
    assert_eq!(tables["target.orders"]["identical"], ROWS, "{json}");

    for line in [
        "target.orders (update)",
        "~ id=4 amount_cents: 493 → 494",
        "~ id=8 amount_cents: 987 → 988",
        "+ id=3",
    ] {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_with_a_second_build_diffs_bulk_writes_per_row_by_key_sqlite() {
    bulk_writes_diff_by_key(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_with_a_second_build_diffs_bulk_writes_per_row_by_key_postgres() {
    bulk_writes_diff_by_key(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_with_a_second_build_diffs_bulk_writes_per_row_by_key_mysql() {
    bulk_writes_diff_by_key(Dialect::MySql).await;
}

async fn statements_align_by_shape(dialect: Dialect) {
    let Some((json, text)) = compare_v2(dialect).await else {
        return;
    };
    let placeholder = |n: usize| match dialect {
        Dialect::Postgres => format!("${n}"),
        Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
    };
    let shape = format!(
        "UPDATE orders SET note = {} WHERE id = {}",
        placeholder(1),
        placeholder(2)
    );
    let statements = json["diff"]["statements"].as_array().expect("statements");
    let update = statements
        .iter()
        .find(|s| s["shape"] == shape.as_str())
        .unwrap_or_else(|| panic!("`{shape}` in {statements:?}"));
    assert_eq!(update["connection"], "target");
    assert_eq!(update["table"], "orders");
    assert_eq!(update["identical"], 2, "{update}");
    let label = match dialect {
        Dialect::Postgres => "$1",
        Dialect::MySql | Dialect::Sqlite => "?1",
    };
    assert_eq!(
        update["changed"],
        serde_json::json!([{
            "occurrence": 2,
            "changes": [[label, ["text", "s2"], ["text", "t2"]]]
        }]),
        "{update}"
    );
    // Statements both builds ran alike (the CREATE TABLE) are summed, not listed.
    let line = format!("~ {shape}  [#2] {label}: s2 → t2");
    assert!(text.contains(&line), "`{line}` missing from:\n{text}");
    assert!(text.contains("target (statements)"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_with_a_second_build_aligns_raw_statements_by_shape_sqlite() {
    statements_align_by_shape(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_with_a_second_build_aligns_raw_statements_by_shape_postgres() {
    statements_align_by_shape(Dialect::Postgres).await;
}

async fn failed_write_writes_nothing(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    let seeded = workspace(&db, false, "");
    run(&seeded, &["--only", "seed"]).expect_code(0);
    let before = orders(&db).await;

    // A bulk-update whose first chunk changes order 1 and whose last row violates NOT NULL:
    // the plugin sees a constraint error, order 1 is unchanged, and the unit goes on.
    let ws = workspace(&db, false, "probe_failure = true");
    let out = run(&ws, &["--only", "all-or-nothing", "--json"]);
    out.expect_code(0);
    assert_eq!(checks_passed(&out), ["failed write undone"]);
    assert_eq!(orders(&db).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_bulk_write_writes_nothing_and_the_unit_goes_on_sqlite() {
    failed_write_writes_nothing(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_bulk_write_writes_nothing_and_the_unit_goes_on_postgres() {
    failed_write_writes_nothing(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_bulk_write_writes_nothing_and_the_unit_goes_on_mysql() {
    failed_write_writes_nothing(Dialect::MySql).await;
}

/// A unit declared `transactional: false` may not bulk-write: its statements commit one by
/// one and its rerun starts over, while a bulk write stages and chunks inside a transaction.
#[tokio::test(flavor = "multi_thread")]
async fn bulk_writes_are_refused_in_a_non_transactional_unit_sqlite() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let seeded = workspace(&db, false, "");
    run(&seeded, &["--only", "seed"]).expect_code(0);
    let before = orders(&db).await;
    let ws = workspace(&db, false, "outside = true");
    run(&ws, &["--only", "outside"])
        .expect_code(1)
        .expect_output(
            "bulk-update is refused in unit `outside`, which is declared non-transactional",
        );
    assert_eq!(orders(&db).await, before);
}
