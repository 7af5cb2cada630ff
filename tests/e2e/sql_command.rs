//! `migrun sql`: the operator's statements on a configured connection, the command the SDKs'
//! test helpers set up and inspect databases with.
//!
//! What is proven, on SQLite, PostgreSQL and MariaDB: statements run in order in one
//! transaction and the last one's rows print as text and as `migrun.sql/1` JSON with plain
//! JSON values; a failing statement exits 1 naming its position and leaves the rows the
//! earlier statements wrote uncommitted; a connection the config grants read-only to plugins
//! is still the operator's to write. Without a config, a name is the embedded SQLite file a
//! run would use.

use migrun::db::Dialect;

use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;

fn workspace(db: &TestDatabase) -> Workspace {
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-only\"\n",
        db.url
    ));
    ws
}

async fn statements_run_in_one_transaction(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    let ws = workspace(&db);
    ws.migrun(&[
        "sql",
        "target",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, price VARCHAR(20), cents BIGINT, paid BOOLEAN)",
    ])
    .expect_code(0)
    .expect_output("0 rows affected");
    ws.migrun(&[
        "sql",
        "target",
        "INSERT INTO orders VALUES (1, '12.50', 1250, TRUE), (2, 'n/a', NULL, FALSE)",
        "UPDATE orders SET price = '12.5' WHERE id = 1",
    ])
    .expect_code(0)
    .expect_output("1 row affected");

    let out = ws.migrun(&[
        "sql",
        "--json",
        "target",
        "SELECT id, price, cents FROM orders ORDER BY id",
    ]);
    out.expect_code(0);
    let json = out.json();
    assert_eq!(json["schema"], "migrun.sql/1");
    assert_eq!(json["columns"], serde_json::json!(["id", "price", "cents"]));
    assert_eq!(
        json["rows"],
        serde_json::json!([[1, "12.5", 1250], [2, "n/a", null]])
    );

    ws.migrun(&["sql", "target", "SELECT price FROM orders WHERE id = 2"])
        .expect_code(0)
        .expect_output("price\nn/a\n(1 row)");

    // The second statement fails: the first one's row is not committed.
    let failed = ws.migrun(&[
        "sql",
        "target",
        "INSERT INTO orders VALUES (3, '1.00', 100, TRUE)",
        "INSERT INTO orders VALUES (1, 'duplicate', 0, TRUE)",
    ]);
    failed
        .expect_code(1)
        .expect_output("statement 2 of 2 failed on `target`; the transaction was rolled back");
    let count = ws.migrun(&[
        "sql",
        "--json",
        "target",
        "SELECT COUNT(*) AS n FROM orders",
    ]);
    assert_eq!(
        count.json()["rows"],
        serde_json::json!([[2]]),
        "row 3 was rolled back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_run_in_one_transaction_sqlite() {
    statements_run_in_one_transaction(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_run_in_one_transaction_postgres() {
    statements_run_in_one_transaction(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_run_in_one_transaction_mysql() {
    statements_run_in_one_transaction(Dialect::MySql).await;
}

#[test]
fn without_a_config_a_name_is_the_embedded_database_a_run_uses() {
    let ws = Workspace::new();
    ws.migrun(&[
        "sql",
        "source",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)",
    ])
    .expect_code(0);
    assert!(
        ws.path().join("migrun-data/source.sqlite").is_file(),
        "the embedded database is created where a run looks for it"
    );
    ws.migrun(&[
        "sql",
        "source",
        "INSERT INTO users VALUES (1, 'a@example.com')",
    ])
    .expect_code(0);
    // `migrun status` (which reads the embedded files) and `--db` see the same database.
    let url = format!(
        "source=sqlite://{}",
        ws.path().join("migrun-data/source.sqlite").display()
    );
    let out = ws.migrun(&[
        "sql",
        "--json",
        "--db",
        &url,
        "source",
        "SELECT email FROM users",
    ]);
    assert_eq!(out.json()["rows"], serde_json::json!([["a@example.com"]]));
    // Bad input: no such table → exit 1 with the database's message; no statement → usage.
    ws.migrun(&["sql", "source", "SELECT * FROM nothing_here"])
        .expect_code(1)
        .expect_output("nothing_here");
    ws.migrun(&["sql", "source"]).expect_code(2);
}
