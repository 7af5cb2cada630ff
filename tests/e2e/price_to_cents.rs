//! Seed 002's type change through `plugins/price-to-cents` (a text price column becomes
//! integer cents; contract 0.2.0's `bulk-update`, one per batch) and its second build
//! `tests/guests/price-to-cents-v2` (a bare integer is cents, not dollars).
//!
//! What is proven, on SQLite, PostgreSQL and MariaDB:
//!
//! - every convertible price lands as its exact number of cents (plain, `$`, comma
//!   grouping, surrounding spaces, a sign, half-away-from-zero rounding); unconvertible
//!   texts stay NULL and are logged as warnings carrying their key and text (`--json`),
//!   grouped into one line of the text report; a NULL text stays NULL without a warning;
//!   `verify`'s check counts converted, unconvertible and price-less rows;
//! - a dry-run plans the converted rows as `updated` on `orders` and changes nothing;
//! - a `convert` interrupted after two batches keeps them, and the rerun resumes after
//!   them (its warnings name only the later batches' rows);
//! - `replay --plugin price_to_cents_v2.wasm` on the first build's journal lists exactly
//!   the rows the changed rule converts differently, by key
//!   (`~ id=3 amount_cents: 1200 → 12`).

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::database_checksums;
use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// The seeded prices, by id: the text, its cents by the first build's rule (`None`: stays
/// NULL), and by the second build's where that differs.
const PRICES: &[(i64, Option<&str>, Option<i64>)] = &[
    (1, Some("12.30"), Some(1230)),
    (2, Some("$1,234.50"), Some(123_450)),
    (3, Some("12"), Some(1200)),
    (4, Some(" 7.5 "), Some(750)),
    (5, Some("n/a"), None),
    (6, None, None),
    (7, Some("0.99"), Some(99)),
    (8, Some("45"), Some(4500)),
    (9, Some("12.345"), Some(1235)),
    (10, Some(""), None),
    (11, Some("-$3.10"), Some(-310)),
    (12, Some("1,23"), None),
    (13, Some("$8"), Some(800)),
    (14, Some("100"), Some(10_000)),
    (15, Some("abc"), None),
    (16, Some("1,000"), Some(100_000)),
];

/// The rows whose cents the second build computes differently: (id, v1, v2).
const CHANGED_BY_V2: &[(i64, i64, i64)] = &[
    (3, 1200, 12),
    (8, 4500, 45),
    (14, 10_000, 100),
    (16, 100_000, 1000),
];

/// The ids whose text is not a price, in order, with the text.
const UNCONVERTIBLE: &[(i64, &str)] = &[(5, "n/a"), (10, ""), (12, "1,23"), (15, "abc")];

const WARNING: &str = "cannot convert the price; amount_cents stays NULL";

/// A database holding `orders(id, amount_text)` with [`PRICES`].
async fn seeded(dialect: Dialect) -> Option<TestDatabase> {
    let db = TestDatabase::create(dialect).await?;
    db.exec("CREATE TABLE orders (id BIGINT PRIMARY KEY, amount_text VARCHAR(64))")
        .await;
    let values: Vec<String> = PRICES
        .iter()
        .map(|(id, text, _)| match text {
            Some(t) => format!("({id}, '{t}')"),
            None => format!("({id}, NULL)"),
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO orders (id, amount_text) VALUES {}",
        values.join(", ")
    ))
    .await;
    Some(db)
}

/// A workspace whose `migrun.toml` grants `target` read-write on `db`, batches of 4 rows,
/// and `extra` config.
fn workspace(db: &TestDatabase, extra: &str) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbatch_size = 4\n{extra}\n",
        db.url
    ));
    ws
}

fn run(ws: &Workspace, args: &[&str]) -> Outcome {
    let plugin = plugins::plugin("price-to-cents");
    let mut all = vec![plugin.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

/// Every order's `(id, amount_cents)`, by id.
async fn cents(db: &TestDatabase) -> Vec<(i64, Option<i64>)> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn
        .query("SELECT id, amount_cents FROM orders ORDER BY id", &[])
        .await
        .expect("read orders");
    conn.close().await;
    rows.rows
        .into_iter()
        .map(|row| match row.as_slice() {
            [Value::Int(id), Value::Int(c)] => (*id, Some(*c)),
            [Value::Int(id), Value::Null] => (*id, None),
            other => panic!("an order read as {other:?}"),
        })
        .collect()
}

fn expected_cents() -> Vec<(i64, Option<i64>)> {
    PRICES.iter().map(|(id, _, c)| (*id, *c)).collect()
}

/// The plugin's warnings in a `--json` report: each one's message and fields.
fn warnings(report: &serde_json::Value) -> Vec<(String, Vec<(String, String)>)> {
    report["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["level"] == "warn")
        .map(|m| {
            let fields = m["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .map(|f| {
                    (
                        f[0].as_str().unwrap().to_owned(),
                        f[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (m["message"].as_str().unwrap().to_owned(), fields)
        })
        .collect()
}

/// The warnings expected for the unconvertible rows among `ids`.
fn expected_warnings(ids: std::ops::RangeInclusive<i64>) -> Vec<(String, Vec<(String, String)>)> {
    UNCONVERTIBLE
        .iter()
        .filter(|(id, _)| ids.contains(id))
        .map(|(id, text)| {
            let reason = if text.is_empty() {
                "empty"
            } else {
                "not a price"
            };
            (
                WARNING.to_owned(),
                vec![
                    ("id".to_owned(), id.to_string()),
                    ("amount_text".to_owned(), (*text).to_owned()),
                    ("reason".to_owned(), reason.to_owned()),
                ],
            )
        })
        .collect()
}

/// The `verify` check of a `--json` report: (ok, detail).
fn verify_check(report: &serde_json::Value) -> (bool, String) {
    let check = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "orders.amount_cents holds amount_text in cents")
        .unwrap_or_else(|| panic!("the verify check in {report}"));
    (
        check["ok"] == true,
        check["detail"].as_str().unwrap().to_owned(),
    )
}

const VERIFIED: &str = "16 rows: 11 converted, 4 unconvertible (NULL), 1 without a price, 0 not converted yet; 0 differ";

async fn converts_and_reports(dialect: Dialect) {
    let Some(db) = seeded(dialect).await else {
        return;
    };
    let ws = workspace(&db, "");
    let out = run(&ws, &["--json"]);
    out.expect_code(0);
    let report = out.json();
    assert_eq!(cents(&db).await, expected_cents());
    assert_eq!(warnings(&report), expected_warnings(1..=16), "{report}");
    assert_eq!(verify_check(&report), (true, VERIFIED.to_owned()));
    // One bulk-update per batch: four batches of four rows, 11 rows matched.
    let convert = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "convert")
        .unwrap_or_else(|| panic!("convert in {report}"));
    assert_eq!(convert["writes"]["target"]["bulk_writes"], 4, "{convert}");
    assert_eq!(convert["writes"]["target"]["rows"], 11, "{convert}");

    // A rerun finds both units done and changes nothing.
    run(&ws, &[]).expect_code(0);
    assert_eq!(cents(&db).await, expected_cents());
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_converts_every_price_and_warns_by_key_sqlite() {
    converts_and_reports(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_converts_every_price_and_warns_by_key_postgres() {
    converts_and_reports(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_converts_every_price_and_warns_by_key_mysql() {
    converts_and_reports(Dialect::MySql).await;
}

async fn dry_run_plans(dialect: Dialect) {
    let Some(db) = seeded(dialect).await else {
        return;
    };
    let ws = workspace(&db, "");
    // The column first, for real (DDL commits at once on MariaDB, dry-run or not).
    run(&ws, &["--only", "add-column"]).expect_code(0);
    let before = database_checksums(&db.url).await;

    let dry = run(&ws, &["--dry-run", "--only", "convert", "--json"]);
    dry.expect_code(0);
    let report = dry.json();
    let tables = report["plan"]["connections"][0]["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("plan tables in {report}"));
    let orders = tables
        .iter()
        .find(|t| t["table"] == "orders")
        .unwrap_or_else(|| panic!("orders in the plan: {report}"));
    assert_eq!(orders["updated"], 11, "{orders}");
    assert_eq!(orders["inserted"], 0, "{orders}");
    assert_eq!(report["plan"]["summary"]["rows_updated"], 11, "{report}");
    assert_eq!(warnings(&report), expected_warnings(1..=16));
    assert_eq!(verify_check(&report), (true, VERIFIED.to_owned()));

    // The text report groups the warnings into one line naming the first rows.
    let text = run(&ws, &["--dry-run", "--only", "convert"]);
    text.expect_code(0).expect_output(&format!(
        "4× {WARNING} — id=5 amount_text=\"n/a\" reason=\"not a price\", id=10 amount_text=\"\" reason=empty, id=12 amount_text=\"1,23\" reason=\"not a price\", and 1 more"
    ));

    assert_eq!(
        database_checksums(&db.url).await,
        before,
        "the dry-run changed the database"
    );
    assert!(
        cents(&db).await.iter().all(|(_, c)| c.is_none()),
        "the dry-run converted rows"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_dry_run_plans_updated_rows_and_changes_nothing_sqlite() {
    dry_run_plans(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_dry_run_plans_updated_rows_and_changes_nothing_postgres() {
    dry_run_plans(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_dry_run_plans_updated_rows_and_changes_nothing_mysql() {
    dry_run_plans(Dialect::MySql).await;
}

async fn resumes(dialect: Dialect) {
    let Some(db) = seeded(dialect).await else {
        return;
    };
    let failing = workspace(&db, "fail_after_batches = 2");
    run(&failing, &[])
        .expect_code(1)
        .expect_output("stopping before batch 3 as configured");
    // The first two batches (ids 1..=8) stay converted; the rest is untouched.
    let partial: Vec<(i64, Option<i64>)> = expected_cents()
        .into_iter()
        .map(|(id, c)| (id, if id <= 8 { c } else { None }))
        .collect();
    assert_eq!(cents(&db).await, partial);

    let ws = workspace(&db, "");
    let out = run(&ws, &["--json"]);
    out.expect_code(0);
    let report = out.json();
    assert_eq!(cents(&db).await, expected_cents());
    assert!(
        report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["message"]
                .as_str()
                .unwrap()
                .starts_with("resuming after batch 2")),
        "{report}"
    );
    // Only the batches left ran: their unconvertible rows are the only ones warned about.
    assert_eq!(warnings(&report), expected_warnings(9..=16), "{report}");
    assert_eq!(verify_check(&report), (true, VERIFIED.to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_resumes_an_interrupted_conversion_sqlite() {
    resumes(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_resumes_an_interrupted_conversion_postgres() {
    resumes(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_resumes_an_interrupted_conversion_mysql() {
    resumes(Dialect::MySql).await;
}

async fn v2_diff_by_key(dialect: Dialect) {
    let Some(db) = seeded(dialect).await else {
        return;
    };
    let ws = workspace(&db, "");
    let out = run(&ws, &["--json"]);
    out.expect_code(0);
    let journal = ws.path().join(
        out.json()["journal"]["path"]
            .as_str()
            .expect("journal path"),
    );
    drop(db);

    // The same build replays to "verified" with the database gone.
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified: ");

    let v2 = plugins::plugin("price-to-cents-v2");
    let args = [
        "replay",
        journal.to_str().unwrap(),
        "--plugin",
        v2.to_str().unwrap(),
    ];
    let json = ws.migrun(&[&args[..], &["--json"]].concat());
    json.expect_code(1);
    let json = json.json();
    assert_eq!(json["outcome"], "compared", "{json}");
    let update = &json["diff"]["tables"]["target.orders (update)"];
    assert_eq!(update["keys"], serde_json::json!(["id"]), "{json}");
    assert_eq!(update["identical"], 11 - CHANGED_BY_V2.len(), "{update}");
    let changed: Vec<(i64, serde_json::Value)> = update["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .map(|c| {
            (
                c["key_values"][0][1][1].as_str().unwrap().parse().unwrap(),
                c["changes"].clone(),
            )
        })
        .collect();
    let ids: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
    let expected_ids: Vec<i64> = CHANGED_BY_V2.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(ids, expected_ids, "{update}");
    for (_, changes) in &changed {
        assert_eq!(changes.as_array().unwrap().len(), 1, "{changes}");
        assert_eq!(changes[0][0], "amount_cents", "{changes}");
    }
    assert!(
        update["only_recorded"].as_array().unwrap().is_empty(),
        "{update}"
    );
    assert!(
        update["only_compared"].as_array().unwrap().is_empty(),
        "{update}"
    );

    let text = ws.migrun(&args);
    text.expect_code(1).expect_output("writes differ:");
    let text = text.all();
    assert!(text.contains("target.orders (update)"), "{text}");
    for (id, v1, v2) in CHANGED_BY_V2 {
        let line = format!("~ id={id} amount_cents: {v1} → {v2}");
        assert!(text.contains(&line), "`{line}` missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_v2_replay_diffs_changed_rows_by_key_sqlite() {
    v2_diff_by_key(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_v2_replay_diffs_changed_rows_by_key_postgres() {
    v2_diff_by_key(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_to_cents_v2_replay_diffs_changed_rows_by_key_mysql() {
    v2_diff_by_key(Dialect::MySql).await;
}
