//! The Python examples of issue 21 on `migrun_sdk`, built from source with componentize-py
//! and run through the `migrun` binary, and the SDK's own unit tests (pytest).
//!
//! - `examples/price-cents-python`: a text price becomes integer cents with a checkpointed
//!   `Backfill` and one `bulk_update` per batch, on SQLite, PostgreSQL and MariaDB; the
//!   unparseable prices stay NULL and are warned about by key; a run failing after two
//!   batches keeps them and the rerun resumes after them.
//! - `examples/customers-copy-python`: PostgreSQL → SQLite with the SDK's `copy` (keyset
//!   batches, a checkpoint per batch): emails lower-cased, country names mapped to ISO codes
//!   (an unknown one warned about by key and copied as NULL), a count check; a run failing
//!   after one batch keeps it, the rerun resumes after its last key, a third run has nothing to do.

use std::process::Command;

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins::{self, toolchain_missing, workspace_root};

/// Orders: id, price text, its cents (None: stays NULL).
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
];

/// The plugin's warnings in a `--json` report: message and fields.
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

/// A check of a `--json` report by name: (ok, detail).
fn check(report: &serde_json::Value, name: &str) -> (bool, String) {
    let check = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("check {name:?} in {report}"));
    (
        check["ok"] == true,
        check["detail"].as_str().unwrap().to_owned(),
    )
}

fn run(ws: &Workspace, plugin: &std::path::Path, args: &[&str]) -> Outcome {
    let mut all = vec![plugin.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

async fn int_column(db: &TestDatabase, sql: &str) -> Vec<(i64, Option<i64>)> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn.query(sql, &[]).await.expect("query");
    conn.close().await;
    rows.rows
        .into_iter()
        .map(|row| match row.as_slice() {
            [Value::Int(id), Value::Int(c)] => (*id, Some(*c)),
            [Value::Int(id), Value::Null] => (*id, None),
            other => panic!("a row read as {other:?}"),
        })
        .collect()
}

async fn price_cents(dialect: Dialect) {
    let Some(plugin) = plugins::python_plugin("examples/price-cents-python") else {
        return;
    };
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    let cents_type = if dialect == Dialect::Sqlite {
        "integer"
    } else {
        "bigint"
    };
    db.exec(&format!(
        "CREATE TABLE orders (id integer primary key, price text, amount_cents {cents_type} null)"
    ))
    .await;
    let values: Vec<String> = PRICES
        .iter()
        .map(|(id, text, _)| match text {
            Some(t) => format!("({id}, '{t}')"),
            None => format!("({id}, NULL)"),
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO orders (id, price) VALUES {}",
        values.join(", ")
    ))
    .await;
    let ws = Workspace::new();
    let config = |extra: &str| {
        ws.config(&format!(
            "[connections.app]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbatch_size = 4\n{extra}",
            db.url
        ))
    };
    let cents = || int_column(&db, "SELECT id, amount_cents FROM orders ORDER BY id");

    // Interrupted after two batches: ids 1–8 are committed with their checkpoint.
    config("fail_after = 2\n");
    let failed = run(&ws, &plugin, &["--json"]);
    failed.expect_code(1);
    let done: Vec<_> = PRICES
        .iter()
        .map(|(id, _, c)| (*id, if *id <= 8 { *c } else { None }))
        .collect();
    assert_eq!(cents().await, done, "{}", failed.all());
    let warned = |report: &serde_json::Value| -> Vec<String> {
        warnings(report)
            .into_iter()
            .map(|(message, fields)| {
                assert_eq!(message, "unparseable price left NULL");
                fields
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    assert_eq!(warned(&failed.json()), ["id=5 price=n/a"]);

    // The rerun resumes after batch 2 and converts the rest; the check holds.
    config("");
    let resumed = run(&ws, &plugin, &["--json"]);
    resumed.expect_code(0);
    let report = resumed.json();
    assert!(
        resumed.all().contains("resuming after batch 2 (key 8)"),
        "{}",
        resumed.all()
    );
    let all: Vec<_> = PRICES.iter().map(|(id, _, c)| (*id, *c)).collect();
    assert_eq!(cents().await, all);
    assert_eq!(warned(&report), ["id=10 price=", "id=12 price=1,23"]);
    assert_eq!(
        check(&report, "amount_cents matches price"),
        (
            true,
            "9 converted, 3 unparseable (NULL), 0 differ".to_owned()
        )
    );

    // Nothing left to do.
    run(&ws, &plugin, &[]).expect_code(0);
    assert_eq!(cents().await, all);
}

#[tokio::test(flavor = "multi_thread")]
async fn price_cents_python_backfills_resumes_and_warns_by_key_sqlite() {
    price_cents(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_cents_python_backfills_resumes_and_warns_by_key_postgres() {
    price_cents(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_cents_python_backfills_resumes_and_warns_by_key_mysql() {
    price_cents(Dialect::MySql).await;
}

/// Customers in the PostgreSQL source: id, name, email, country.
const CUSTOMERS: &[(i64, &str, Option<&str>, Option<&str>)] = &[
    (1, "Ada", Some("Ada@Example.COM"), Some("United Kingdom")),
    (2, "Bo", Some("bo@example.se"), Some("Sweden")),
    (3, "Chen", Some(" CHEN@EXAMPLE.CN "), Some("china")),
    (4, "Dana", None, Some("USA")),
    (5, "Eli", Some("eli@example.org"), Some("Atlantis")),
    (6, "Fay", Some("FAY@example.fr"), None),
    (7, "Gus", Some("gus@example.de"), Some("Germany")),
    (8, "Hal", Some("HAL@EXAMPLE.JP"), Some("Japan")),
    (9, "Ivy", Some("ivy@example.br"), Some(" Brazil ")),
    (10, "Jo", Some("Jo@Example.com"), Some("United States")),
    (11, "Kai", Some("kai@example.nz"), Some("New Zealand")),
];

/// What the target must hold: id, name, email, country_code.
fn copied_customers() -> Vec<Vec<Value>> {
    let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_owned()));
    let codes = ["GB", "SE", "CN", "US", "", "", "DE", "JP", "BR", "US", "NZ"];
    CUSTOMERS
        .iter()
        .zip(codes)
        .map(|((id, name, email, _), code)| {
            vec![
                Value::Int(*id),
                Value::Text((*name).to_owned()),
                text(email.map(|e| e.trim().to_lowercase()).as_deref()),
                text((!code.is_empty()).then_some(code)),
            ]
        })
        .collect()
}

async fn target_customers(target: &TestDatabase) -> Vec<Vec<Value>> {
    let mut conn = target.connect(Access::ReadOnly).await;
    let rows = conn
        .query(
            "SELECT id, name, email, country_code FROM customers ORDER BY id",
            &[],
        )
        .await
        .expect("read customers");
    conn.close().await;
    rows.rows
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_copy_python_copies_postgres_into_sqlite_and_resumes_after_a_crash() {
    let Some(plugin) = plugins::python_plugin("examples/customers-copy-python") else {
        return;
    };
    let Some(source) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    source
        .exec("CREATE TABLE customers (id bigint primary key, name text not null, email text, country text)")
        .await;
    for (id, name, email, country) in CUSTOMERS {
        let opt = |s: &Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_owned()));
        source
            .exec_with(
                "INSERT INTO customers (id, name, email, country) VALUES ($1, $2, $3, $4)",
                &[
                    Value::Int(*id),
                    Value::Text((*name).to_owned()),
                    opt(email),
                    opt(country),
                ],
            )
            .await;
    }
    let ws = Workspace::new();
    let config = |extra: &str| {
        ws.config(&format!(
            "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n\n\
             [connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n\
             [config]\nbatch_size = 4\n{extra}",
            source.ro_url, target.url
        ))
    };

    // A crash after the first batch: its four rows stay, committed with the checkpoint.
    config("fail_after = 1\n");
    let failed = run(&ws, &plugin, &["--json"]);
    failed.expect_code(1);
    assert_eq!(
        target_customers(&target).await,
        copied_customers()[..4].to_vec(),
        "{}",
        failed.all()
    );

    // The rerun resumes after key 4: the rest arrives once, the count check holds.
    config("");
    let resumed = run(&ws, &plugin, &["--json"]);
    resumed.expect_code(0);
    let report = resumed.json();
    assert!(
        resumed.all().contains("resuming the copy after key 4"),
        "{}",
        resumed.all()
    );
    assert_eq!(target_customers(&target).await, copied_customers());
    assert_eq!(
        warnings(&report),
        [(
            "unknown country copied as NULL".to_owned(),
            vec![
                ("id".to_owned(), "5".to_owned()),
                ("country".to_owned(), "Atlantis".to_owned())
            ]
        )]
    );
    assert_eq!(
        check(&report, "every customer copied"),
        (true, "source: 11, target: 11".to_owned())
    );

    // A third run finds every unit done.
    let again = run(&ws, &plugin, &["--json"]);
    again.expect_code(0);
    assert_eq!(target_customers(&target).await, copied_customers());
}

/// The SDK's own tests (values, positions, errors, config; no component needed) pass.
#[test]
fn python_sdk_unit_tests_pass() {
    let python_ok = Command::new("python3")
        .args(["-m", "pytest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_ok {
        toolchain_missing::<()>("pytest is not installed (python3 -m pip install pytest)");
        return;
    }
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .current_dir(workspace_root().join("sdk/python"))
        .output()
        .expect("run pytest");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
