//! The example plugins under `examples/` (issue 21's lines-of-code measure), end to end:
//!
//! - `examples/price-cents-rust` on SQLite, PostgreSQL and MariaDB: every parseable text
//!   price lands as its cents, the others stay NULL and are warned about by key, `verify`
//!   passes, a dry-run changes nothing and a rerun finds the unit done;
//! - `examples/customers-copy-rust`, PostgreSQL → SQLite: emails lower-cased, countries
//!   mapped to ISO codes (an unknown one warned by key, NULL), the count check; a copy
//!   interrupted after one batch resumes after its last key and ends with every customer
//!   exactly once.
//!
//! Each example's plugin code stays within 100 lines (every line of its `src/*.rs`).

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::database_checksums;
use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins::{self, workspace_root};

async fn rows(db: &TestDatabase, sql: &str) -> Vec<Vec<Value>> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn.query(sql, &[]).await.expect(sql).rows;
    conn.close().await;
    rows
}

fn run(plugin: &str, ws: &Workspace, args: &[&str]) -> Outcome {
    let plugin = plugins::plugin(plugin);
    let mut all = vec![plugin.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

/// A report's warnings: message and fields.
fn warnings(report: &serde_json::Value) -> Vec<(String, Vec<(String, String)>)> {
    report["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["level"] == "warn")
        .map(|m| {
            let fields = m["fields"]
                .as_array()
                .unwrap()
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

fn check(report: &serde_json::Value, name: &str) -> (bool, String) {
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("check {name:?} in {report}"));
    (
        check["ok"] == true,
        check["detail"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn examples_stay_within_100_lines() {
    for example in ["examples/price-cents-rust", "examples/customers-copy-rust"] {
        let src = workspace_root().join(example).join("src");
        let lines: usize = std::fs::read_dir(&src)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "rs"))
            .map(|path| std::fs::read_to_string(path).unwrap().lines().count())
            .sum();
        assert!(lines <= 100, "{example}: {lines} lines of plugin code");
    }
}

/// The prices, by id, and their cents (`None`: not a price, stays NULL).
const PRICES: &[(i64, Option<&str>, Option<i64>)] = &[
    (1, Some("12.30"), Some(1230)),
    (2, Some("$1,234.50"), Some(123_450)),
    (3, Some(" 7.5 "), Some(750)),
    (4, Some("12"), Some(1200)),
    (5, Some("n/a"), None),
    (6, None, None),
    (7, Some(""), None),
    (8, Some("1,23"), None),
    (9, Some("0.99"), Some(99)),
    (10, Some("12.345"), None),
    (11, Some("$8"), Some(800)),
    (12, Some("1,000"), Some(100_000)),
];

async fn price_cents(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    db.exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, price TEXT, amount_cents INTEGER NULL)")
        .await;
    let values: Vec<String> = PRICES
        .iter()
        .map(|(id, price, _)| match price {
            Some(p) => format!("({id}, '{p}')"),
            None => format!("({id}, NULL)"),
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO orders (id, price) VALUES {}",
        values.join(", ")
    ))
    .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbatch_size = 5\n",
        db.url
    ));

    let before = database_checksums(&db.url).await;
    run("price-cents-rust", &ws, &["--dry-run"]).expect_code(0);
    assert_eq!(
        database_checksums(&db.url).await,
        before,
        "{dialect:?}: the dry-run changed the database"
    );

    let out = run("price-cents-rust", &ws, &[]);
    out.expect_code(0);
    let report = out.json();
    let cents: Vec<Vec<Value>> = PRICES
        .iter()
        .map(|(id, _, c)| vec![Value::Int(*id), c.map_or(Value::Null, Value::Int)])
        .collect();
    let sql = "SELECT id, amount_cents FROM orders ORDER BY id";
    assert_eq!(rows(&db, sql).await, cents, "{dialect:?}");
    let warned: Vec<(String, Vec<(String, String)>)> =
        [(5, "n/a"), (7, ""), (8, "1,23"), (10, "12.345")]
            .into_iter()
            .map(|(id, price)| {
                (
                    "unparseable price; amount_cents stays NULL".to_owned(),
                    vec![
                        ("id".to_owned(), id.to_string()),
                        ("price".to_owned(), price.to_owned()),
                    ],
                )
            })
            .collect();
    assert_eq!(warnings(&report), warned, "{dialect:?}");
    assert_eq!(
        check(&report, "amount_cents is the price in cents"),
        (true, "12 rows, 0 differ []".to_owned())
    );
    // Three batches of at most five rows: one bulk update each.
    let convert = &report["units"][0];
    assert_eq!(convert["writes"]["target"]["bulk_writes"], 3, "{convert}");

    // Done: a rerun skips the unit and changes nothing.
    run("price-cents-rust", &ws, &[]).expect_code(0);
    assert_eq!(rows(&db, sql).await, cents, "{dialect:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn price_cents_rust_example_sqlite() {
    price_cents(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_cents_rust_example_postgres() {
    price_cents(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn price_cents_rust_example_mysql() {
    price_cents(Dialect::MySql).await;
}

/// (id, name, email, country) on the source, then the email and country code the target gets.
type Customer = (
    i64,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// The source customers and what the target should hold.
const CUSTOMERS: &[Customer] = &[
    (
        1,
        "Ada",
        Some(" Ada@Example.COM"),
        Some("United Kingdom"),
        Some("ada@example.com"),
        Some("GB"),
    ),
    (
        2,
        "Grace",
        Some("grace@example.com"),
        Some("USA"),
        Some("grace@example.com"),
        Some("US"),
    ),
    (
        3,
        "Linus",
        Some("LINUS@kernel.org"),
        Some("finland"),
        Some("linus@kernel.org"),
        None,
    ),
    (4, "Yukihiro", None, Some("Japan"), None, Some("JP")),
    (
        5,
        "Margaret",
        Some("Margaret@NASA.gov"),
        Some("us"),
        Some("margaret@nasa.gov"),
        Some("US"),
    ),
    (
        6,
        "Edsger",
        Some("edsger@utexas.edu"),
        Some("netherlands"),
        Some("edsger@utexas.edu"),
        Some("NL"),
    ),
    (
        7,
        "Barbara",
        Some("Barbara@MIT.edu"),
        None,
        Some("barbara@mit.edu"),
        None,
    ),
];

fn sql_text(value: Option<&str>) -> String {
    value.map_or("NULL".to_owned(), |v| format!("'{v}'"))
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_copy_rust_example_postgres_to_sqlite_resumes() {
    let Some(source) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let target = TestDatabase::create(Dialect::Sqlite)
        .await
        .expect("a SQLite file");
    source
        .exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country TEXT)")
        .await;
    let values: Vec<String> = CUSTOMERS
        .iter()
        .map(|(id, name, email, country, _, _)| {
            format!(
                "({id}, '{name}', {}, {})",
                sql_text(*email),
                sql_text(*country)
            )
        })
        .collect();
    source
        .exec(&format!(
            "INSERT INTO customers (id, name, email, country) VALUES {}",
            values.join(", ")
        ))
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n\n\
         [connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbatch_size = 3\n",
        source.ro_url, target.url
    ));
    let sql = "SELECT id, name, email, country_code FROM customers ORDER BY id";

    // Interrupted after the first batch: ids 1–3 stay, with the checkpoint.
    let first = run(
        "customers-copy-rust",
        &ws,
        &["--set", "fail_after_batches=1"],
    );
    first.expect_code(1);
    assert_eq!(rows(&target, sql).await.len(), 3);
    let ledger = rows(
        &target,
        "SELECT checkpoint_state FROM migrun_ledger WHERE unit = 'copy' AND status = 'checkpoint'",
    )
    .await;
    assert_eq!(
        ledger,
        vec![vec![Value::Text(
            r#"{"copy":"customers","last_key":[3],"copied":3}"#.into()
        )]]
    );

    // The rerun resumes after id 3 and copies the rest once.
    let second = run("customers-copy-rust", &ws, &[]);
    second.expect_code(0);
    let report = second.json();
    let expected: Vec<Vec<Value>> = CUSTOMERS
        .iter()
        .map(|(id, name, _, _, email, code)| {
            vec![
                Value::Int(*id),
                Value::Text((*name).to_owned()),
                email.map_or(Value::Null, |e| Value::Text(e.to_owned())),
                code.map_or(Value::Null, |c| Value::Text(c.to_owned())),
            ]
        })
        .collect();
    assert_eq!(rows(&target, sql).await, expected);
    assert_eq!(
        check(&report, "every customer was copied"),
        (true, "source: 7, target: 7".to_owned())
    );
    // Linus (id 3) was warned about in the first run; this run read ids 4–7.
    assert_eq!(warnings(&report), Vec::new(), "{report}");
    let first_warnings = warnings(&first.json());
    assert_eq!(
        first_warnings,
        vec![(
            "unknown country; country_code stays NULL".to_owned(),
            vec![
                ("id".to_owned(), "3".to_owned()),
                ("country".to_owned(), "finland".to_owned())
            ]
        )]
    );
}
