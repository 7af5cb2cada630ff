//! Seed 002's table rename by `expand-contract-table-rename`, on every dialect, as the
//! seed's deployments: `expand` (copy of the definition, dual-write triggers), `backfill`
//! (interrupted and resumed), `switch`, `freeze`, and `contract` in a later run.
//!
//! An "application" — a connection of the test's own, plain SQL — writes between the runs:
//! its writes to the old table reach the new one through the dual-write before the switch,
//! its writes to the new table reach the old one after it, and after the freeze its writes
//! to the old table are refused. Rows changed in the new table outside the dual-write are
//! copied again by the switch. The tables' checksums prove the copy complete; a contract
//! before the switch is refused with nothing dropped; reruns change nothing; a dry-run plans
//! the copy and changes nothing. A writer that never stops during the backfill leaves both
//! tables equal; `migrun restore` says, before it acts, that it discards later writes.

use migrun::db::{Access, Connection, Dialect};
use migrun::value::Value;

use crate::support::checksum::{row_count, table_checksum};
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

const ORDERS: i64 = 2_000;
const BATCH: i64 = 300;

pub(crate) async fn create_orders(db: &TestDatabase) {
    let statements: &[&str] = match db.dialect {
        Dialect::Postgres => &[
            "CREATE TABLE customers (id BIGINT PRIMARY KEY)",
            "CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, \
             customer_id BIGINT NOT NULL REFERENCES customers (id), \
             email TEXT NOT NULL UNIQUE, \
             amount_cents BIGINT NOT NULL DEFAULT 0 CHECK (amount_cents >= 0), \
             note TEXT, meta JSON)",
            "CREATE INDEX orders_customer_idx ON orders (customer_id)",
        ],
        Dialect::MySql => &[
            "CREATE TABLE customers (id BIGINT PRIMARY KEY) ENGINE=InnoDB",
            "CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
             customer_id BIGINT NOT NULL, \
             email VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL, \
             amount_cents BIGINT NOT NULL DEFAULT 0, note TEXT, meta TEXT, \
             CONSTRAINT orders_amount_check CHECK (amount_cents >= 0), \
             UNIQUE KEY orders_email_key (email), KEY orders_customer_idx (customer_id), \
             CONSTRAINT orders_customer_fkey FOREIGN KEY (customer_id) REFERENCES customers (id)) ENGINE=InnoDB",
        ],
        Dialect::Sqlite => &[
            "CREATE TABLE customers (id INTEGER PRIMARY KEY)",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, \
             customer_id INTEGER NOT NULL REFERENCES customers (id), \
             email TEXT NOT NULL COLLATE NOCASE UNIQUE, \
             amount_cents INTEGER NOT NULL DEFAULT 0 CHECK (amount_cents >= 0), \
             note TEXT, meta TEXT)",
            "CREATE INDEX orders_customer_idx ON orders (customer_id)",
        ],
    };
    for statement in statements {
        db.exec(statement).await;
    }
    let mut conn = db.connect(Access::ReadWrite).await;
    let customers: Vec<Vec<Value>> = (1..=10).map(|id| vec![Value::Int(id)]).collect();
    conn.bulk_insert("customers", &["id".to_owned()], &customers)
        .await
        .expect("seed customers");
    let columns: Vec<String> = ["id", "customer_id", "email", "amount_cents", "note"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let rows: Vec<Vec<Value>> = (1..=ORDERS)
        .map(|id| {
            vec![
                Value::Int(id),
                Value::Int(id % 10 + 1),
                Value::Text(format!("user{id}@example.org")),
                Value::Int(id * 100),
                if id % 3 == 0 {
                    Value::Null
                } else {
                    Value::Text(format!("note {id}"))
                },
            ]
        })
        .collect();
    for chunk in rows.chunks(500) {
        conn.bulk_insert("orders", &columns, chunk)
            .await
            .expect("seed orders");
    }
    conn.close().await;
    if db.dialect == Dialect::Postgres {
        // Where the application's own inserts have taken `orders`' sequence (above every id
        // the test writes explicitly); after `contract` the new table draws from it.
        db.exec("SELECT setval('orders_id_seq', 1000000)").await;
    }
}

/// The running application: plain SQL through a connection of its own.
struct Application {
    conn: Connection,
    dialect: Dialect,
}

impl Application {
    async fn connect(db: &TestDatabase) -> Application {
        Application {
            conn: Connection::connect("application", &db.url, Access::ReadWrite)
                .await
                .expect("the application connects"),
            dialect: db.dialect,
        }
    }

    /// `sql` with `$n` placeholders turned into `?` outside PostgreSQL.
    fn sql(&self, sql: &str) -> String {
        match self.dialect {
            Dialect::Postgres => sql.to_owned(),
            _ => {
                let mut out = sql.to_owned();
                for n in (1..=9).rev() {
                    out = out.replace(&format!("${n}"), "?");
                }
                out
            }
        }
    }

    async fn write(&mut self, sql: &str, params: &[Value]) -> Result<u64, String> {
        let sql = self.sql(sql);
        self.conn
            .execute(&sql, params)
            .await
            .map_err(|e| e.to_string())
    }

    async fn must(&mut self, sql: &str, params: &[Value]) {
        if let Err(e) = self.write(sql, params).await {
            panic!(
                "{:?}: the application's write {sql} failed: {e}",
                self.dialect
            );
        }
    }

    /// `email` and `note` of the row `id` of `table`, or `None`.
    async fn row(&mut self, table: &str, id: i64) -> Option<(String, Option<String>)> {
        let sql = self.sql(&format!("SELECT email, note FROM {table} WHERE id = $1"));
        let rows = self
            .conn
            .query(&sql, &[Value::Int(id)])
            .await
            .expect("read a row")
            .rows;
        rows.first().map(|row| {
            let text = |v: &Value| match v {
                Value::Null => None,
                Value::Text(s) => Some(s.clone()),
                Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                other => Some(other.to_string()),
            };
            (text(&row[0]).expect("email"), text(&row[1]))
        })
    }

    async fn close(self) {
        self.conn.close().await;
    }
}

async fn table_exists(db: &TestDatabase, table: &str) -> bool {
    let mut conn = db.connect(Access::ReadOnly).await;
    let sql = match db.dialect {
        Dialect::Sqlite => {
            format!("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'")
        }
        Dialect::Postgres => format!(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '{table}'"
        ),
        Dialect::MySql => format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
        ),
    };
    let rows = conn.query(&sql, &[]).await.expect("catalog").rows;
    conn.close().await;
    matches!(rows[0][0], Value::Int(n) if n > 0)
}

pub(crate) fn config(db: &TestDatabase) -> String {
    format!(
        "[connections.app]\nurl = \"{}\"\n[config]\ntable = \"orders\"\nnew_name = \"purchases\"\nbatch_size = {BATCH}\n",
        db.url
    )
}

async fn same_rows(db: &TestDatabase, what: &str) {
    let dialect = db.dialect;
    assert_eq!(
        table_checksum(&db.url, "orders").await,
        table_checksum(&db.url, "purchases").await,
        "{dialect:?}: {what}: orders and purchases differ"
    );
}

async fn table_rename_end_to_end(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    create_orders(&db).await;
    let plugin = plugins::plugin("expand-contract-table-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    ws.config(&config(&db));
    let mut app = Application::connect(&db).await;

    // A dry-run of the whole rename plans the copy of every row and changes nothing.
    let before = table_checksum(&db.url, "orders").await;
    let dry = ws.migrun(&[plugin, "--dry-run", "--json"]);
    dry.expect_code(0);
    let plan = dry.json();
    let purchases = plan["plan"]["connections"][0]["tables"]
        .as_array()
        .expect("tables in the plan")
        .iter()
        .find(|t| t["table"] == "purchases")
        .cloned()
        .unwrap_or_else(|| panic!("{dialect:?}: purchases not in the plan: {plan}"));
    assert_eq!(purchases["inserted"], ORDERS, "{dialect:?}: {purchases}");
    assert_eq!(
        table_checksum(&db.url, "orders").await,
        before,
        "{dialect:?}"
    );
    assert!(
        !table_exists(&db, "purchases").await,
        "{dialect:?}: the dry-run created it"
    );

    // Deployment 1: expand. The copy of the definition is empty; the dual-write is on.
    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);
    assert_eq!(row_count(&db.url, "purchases").await, 0, "{dialect:?}");

    // The application keeps writing the old table; each write reaches the new one.
    app.must(
        "INSERT INTO orders (id, customer_id, email, amount_cents, note) VALUES ($1, 1, $2, 5, 'new')",
        &[Value::Int(100_001), Value::Text("late@example.org".into())],
    )
    .await;
    app.must(
        "UPDATE orders SET email = $1 WHERE id = $2",
        &[Value::Text("changed-5@example.org".into()), Value::Int(5)],
    )
    .await;
    app.must("DELETE FROM orders WHERE id = $1", &[Value::Int(7)])
        .await;
    // A change of case only: equal under the case-insensitive collation, still a change.
    app.must(
        "UPDATE orders SET email = $1 WHERE id = $2",
        &[Value::Text("USER9@example.org".into()), Value::Int(9)],
    )
    .await;
    assert_eq!(
        app.row("purchases", 100_001).await,
        Some(("late@example.org".into(), Some("new".into()))),
        "{dialect:?}: an insert into orders reached purchases"
    );
    assert_eq!(
        app.row("purchases", 5).await.map(|r| r.0),
        Some("changed-5@example.org".into()),
        "{dialect:?}: an update of orders reached purchases"
    );
    assert_eq!(
        app.row("purchases", 9).await.map(|r| r.0),
        Some("USER9@example.org".into())
    );
    assert_eq!(app.row("purchases", 7).await, None, "{dialect:?}");
    assert_eq!(row_count(&db.url, "purchases").await, 3, "{dialect:?}");

    // A contract before the switch is refused; nothing is dropped.
    let refused = ws.migrun(&[plugin, "--set", "phase=contract"]);
    refused.expect_code(1);
    refused.expect_output("contract refused");
    refused.expect_output("nothing was dropped");
    assert!(
        table_exists(&db, "orders").await,
        "{dialect:?}: orders was dropped"
    );

    // Deployment 2: the backfill, interrupted after two batches, then resumed.
    ws.migrun(&[
        plugin,
        "--only",
        "backfill",
        "--set",
        "fail_after_batches=2",
    ])
    .expect_code(1);
    let partly = row_count(&db.url, "purchases").await;
    assert!(
        partly >= 2 * BATCH,
        "{dialect:?}: {partly} rows after two batches"
    );
    assert!(
        partly < ORDERS,
        "{dialect:?}: {partly} rows after two batches"
    );
    // A write to a row the interrupted backfill already copied.
    app.must(
        "UPDATE orders SET note = $1 WHERE id = $2",
        &[Value::Text("edited between batches".into()), Value::Int(10)],
    )
    .await;
    let resumed = ws.migrun(&[plugin, "--only", "backfill"]);
    resumed.expect_code(0);
    resumed.expect_output("resuming after batch 2");
    same_rows(&db, "after the backfill").await;
    assert_eq!(
        app.row("purchases", 10).await.and_then(|r| r.1),
        Some("edited between batches".into())
    );

    // Writes that reach the new table outside the dual-write: a changed row, a deleted row,
    // a row the old table never had. The switch copies the old table's rows again.
    app.must(
        "UPDATE purchases SET note = $1 WHERE id = $2",
        &[Value::Text("stray write".into()), Value::Int(11)],
    )
    .await;
    app.must("DELETE FROM purchases WHERE id = $1", &[Value::Int(12)])
        .await;
    app.must(
        "INSERT INTO purchases (id, customer_id, email, amount_cents) VALUES ($1, 1, $2, 1)",
        &[Value::Int(200_000), Value::Text("stray@example.org".into())],
    )
    .await;
    let switch = ws.migrun(&[plugin, "--only", "switch"]);
    switch.expect_code(0);
    switch.expect_output("copied again");
    same_rows(&db, "after the switch").await;
    assert_eq!(
        app.row("purchases", 11).await.and_then(|r| r.1),
        Some("note 11".into()),
        "{dialect:?}: the changed row was copied again"
    );
    assert!(app.row("purchases", 12).await.is_some(), "{dialect:?}");
    assert_eq!(app.row("purchases", 200_000).await, None, "{dialect:?}");

    // The applications now write the new table; the old one follows.
    app.must(
        "INSERT INTO purchases (id, customer_id, email, amount_cents) VALUES ($1, 2, $2, 7)",
        &[
            Value::Int(100_002),
            Value::Text("after-switch@example.org".into()),
        ],
    )
    .await;
    app.must(
        "UPDATE purchases SET note = $1 WHERE id = $2",
        &[Value::Text("written to purchases".into()), Value::Int(13)],
    )
    .await;
    app.must("DELETE FROM purchases WHERE id = $1", &[Value::Int(14)])
        .await;
    same_rows(&db, "after writes to purchases").await;

    // Deployment 3: freeze. Writes to the old table are refused; the new one goes on alone.
    ws.migrun(&[plugin, "--only", "freeze"]).expect_code(0);
    let frozen = table_checksum(&db.url, "orders").await;
    for (sql, params) in [
        (
            "INSERT INTO orders (id, customer_id, email) VALUES ($1, 1, $2)",
            vec![
                Value::Int(100_003),
                Value::Text("refused@example.org".into()),
            ],
        ),
        (
            "UPDATE orders SET note = $1 WHERE id = $2",
            vec![Value::Text("refused".into()), Value::Int(15)],
        ),
        ("DELETE FROM orders WHERE id = $1", vec![Value::Int(16)]),
    ] {
        let error = app
            .write(sql, &params)
            .await
            .expect_err("a write to the frozen table");
        assert!(
            error.contains("table orders is frozen: renamed to purchases"),
            "{dialect:?}: {sql}: {error}"
        );
    }
    assert_eq!(
        table_checksum(&db.url, "orders").await,
        frozen,
        "{dialect:?}"
    );
    app.must(
        "UPDATE purchases SET note = $1 WHERE id = $2",
        &[Value::Text("after the freeze".into()), Value::Int(15)],
    )
    .await;
    assert_eq!(
        table_checksum(&db.url, "orders").await,
        frozen,
        "{dialect:?}"
    );

    // A rerun of the whole rename changes nothing: every unit is finished.
    let purchases = table_checksum(&db.url, "purchases").await;
    let rerun = ws.migrun(&[plugin, "--json"]);
    rerun.expect_code(0);
    for unit in rerun.json()["units"].as_array().expect("units") {
        assert_eq!(unit["status"], "skipped", "{dialect:?}: {unit}");
    }
    assert_eq!(
        table_checksum(&db.url, "orders").await,
        frozen,
        "{dialect:?}"
    );
    assert_eq!(
        table_checksum(&db.url, "purchases").await,
        purchases,
        "{dialect:?}"
    );

    // Deployment 4, a later run: contract drops the old table.
    ws.migrun(&[plugin, "--set", "phase=contract"])
        .expect_code(0);
    assert!(
        !table_exists(&db, "orders").await,
        "{dialect:?}: orders is still there"
    );
    assert_eq!(
        table_checksum(&db.url, "purchases").await,
        purchases,
        "{dialect:?}"
    );
    let again = ws.migrun(&[plugin, "--set", "phase=contract"]);
    again.expect_code(0);
    assert_eq!(
        table_checksum(&db.url, "purchases").await,
        purchases,
        "{dialect:?}"
    );

    // The new table kept the definition: generated keys continue, defaults, UNIQUE, CHECK
    // and (PostgreSQL, MariaDB) the foreign key still apply.
    app.must(
        "INSERT INTO purchases (customer_id, email) VALUES (3, 'after-contract@example.org')",
        &[],
    )
    .await;
    let refusals: &[&str] = match dialect {
        Dialect::Sqlite => &[
            "INSERT INTO purchases (customer_id, email) VALUES (3, 'after-contract@example.org')",
            "INSERT INTO purchases (customer_id, email, amount_cents) VALUES (3, 'negative@example.org', -1)",
        ],
        _ => &[
            "INSERT INTO purchases (customer_id, email) VALUES (3, 'after-contract@example.org')",
            "INSERT INTO purchases (customer_id, email, amount_cents) VALUES (3, 'negative@example.org', -1)",
            "INSERT INTO purchases (customer_id, email) VALUES (999, 'no-customer@example.org')",
        ],
    };
    for sql in refusals {
        assert!(
            app.write(sql, &[]).await.is_err(),
            "{dialect:?}: the new table accepted {sql}"
        );
    }
    app.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_rename_end_to_end_sqlite() {
    table_rename_end_to_end(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_rename_end_to_end_postgres() {
    table_rename_end_to_end(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_rename_end_to_end_mysql() {
    table_rename_end_to_end(Dialect::MySql).await;
}

/// `migrun restore` of the `expand` run's backup says, before it acts, that every write made
/// since the backup is discarded — and it is: the application's row written through the
/// dual-write after `expand` is gone, `orders` is back to the backup, `purchases` dropped.
async fn restore_says_it_discards_later_writes(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    create_orders(&db).await;
    let before = table_checksum(&db.url, "orders").await;
    let plugin = plugins::plugin("expand-contract-table-rename");
    let ws = Workspace::new();
    ws.config(&config(&db));
    ws.migrun(&[plugin.to_str().unwrap(), "--only", "expand"])
        .expect_code(0);
    let mut app = Application::connect(&db).await;
    app.must(
        "INSERT INTO orders (id, customer_id, email) VALUES ($1, 1, $2)",
        &[
            Value::Int(100_001),
            Value::Text("after-backup@example.org".into()),
        ],
    )
    .await;
    app.close().await;
    let list = ws.migrun(&["backup", "list", "--json"]);
    list.expect_code(0);
    let id = list.json()["backups"][0]["id"]
        .as_str()
        .expect("backup id")
        .to_owned();

    // Without --yes (and no terminal): the plan and the note, nothing changed.
    let note = "restoring it discards every write made to";
    let refused = ws.migrun(&["restore", &id]);
    refused.expect_code(2);
    refused.expect_output(note);
    refused.expect_output("as any point-in-time restore does");
    assert_eq!(
        row_count(&db.url, "orders").await,
        ORDERS + 1,
        "{dialect:?}"
    );

    // With --yes: the note on stderr before the restore acts, then the restore.
    let restored = ws.migrun(&["restore", &id, "--yes"]);
    restored.expect_code(0);
    assert!(
        restored.stderr.contains(note) && restored.stderr.contains("orders"),
        "{dialect:?}: {}",
        restored.stderr
    );
    assert_eq!(
        table_checksum(&db.url, "orders").await,
        before,
        "{dialect:?}: the application's write after the backup is gone"
    );
    assert!(!table_exists(&db, "purchases").await, "{dialect:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_says_it_discards_later_writes_sqlite() {
    restore_says_it_discards_later_writes(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_says_it_discards_later_writes_postgres() {
    restore_says_it_discards_later_writes(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_says_it_discards_later_writes_mysql() {
    restore_says_it_discards_later_writes(Dialect::MySql).await;
}

/// The dual-write and the backfill under an application writing all along: a thread with its
/// own connection inserts, updates (the key too) and deletes rows of the old table while the
/// backfill copies it in small, paused batches. Once the writer stops, with no `switch` to
/// repair anything, both tables hold exactly the same rows.
async fn backfill_under_concurrent_writes(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    create_orders(&db).await;
    let plugin = plugins::plugin("expand-contract-table-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    ws.config(&config(&db));
    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let url = db.url.clone();
    let writer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut app = Application {
                conn: Connection::connect("application", &url, Access::ReadWrite)
                    .await
                    .expect("the application connects"),
                dialect,
            };
            let mut writes = 0u64;
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) || writes < 50 {
                writes += 1;
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let id = (seed % ORDERS as u64) as i64 + 1;
                let (sql, params) = match writes % 5 {
                    0 => (
                        "INSERT INTO orders (id, customer_id, email, amount_cents) VALUES ($1, 2, $2, 3)",
                        vec![
                            Value::Int(500_000 + writes as i64),
                            Value::Text(format!("concurrent-{writes}@example.org")),
                        ],
                    ),
                    1 => ("DELETE FROM orders WHERE id = $1", vec![Value::Int(id)]),
                    2 => (
                        "UPDATE orders SET id = $1 WHERE id = $2",
                        vec![Value::Int(800_000 + writes as i64), Value::Int(id)],
                    ),
                    _ => (
                        "UPDATE orders SET note = $1, amount_cents = amount_cents + 1 WHERE id = $2",
                        vec![Value::Text(format!("write {writes}")), Value::Int(id)],
                    ),
                };
                let mut attempts = 0;
                while let Err(e) = app.write(sql, &params).await {
                    attempts += 1;
                    assert!(attempts < 400, "{dialect:?}: the application cannot write: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
            app.close().await;
            writes
        })
    });
    ws.migrun(&[
        plugin,
        "--only",
        "backfill",
        "--set",
        "batch_size=100",
        "--set",
        "pause_ms=20",
    ])
    .expect_code(0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().expect("the application's thread");
    assert!(writes >= 50, "{dialect:?}: {writes} writes");
    same_rows(
        &db,
        &format!("after the backfill under {writes} concurrent writes"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_under_concurrent_writes_sqlite() {
    backfill_under_concurrent_writes(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_under_concurrent_writes_postgres() {
    backfill_under_concurrent_writes(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_under_concurrent_writes_mysql() {
    backfill_under_concurrent_writes(Dialect::MySql).await;
}

/// What the rename refuses, each time with a message that says why and that nothing
/// changed: a `purchases` table that is not this rename's copy, a `freeze` before the
/// `switch`, a `contract` while another table's foreign key still references the old table.
async fn refusals_say_why_and_change_nothing(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    create_orders(&db).await;
    let plugin = plugins::plugin("expand-contract-table-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    ws.config(&config(&db));
    let orders = table_checksum(&db.url, "orders").await;

    db.exec("CREATE TABLE purchases (id INT PRIMARY KEY, other VARCHAR(10))")
        .await;
    db.exec("INSERT INTO purchases (id, other) VALUES (1, 'theirs')")
        .await;
    let refused = ws.migrun(&[plugin, "--only", "expand"]);
    refused.expect_code(1);
    refused.expect_output("table `purchases` exists already (1 row(s)");
    refused.expect_output("nothing was changed");
    assert_eq!(
        table_checksum(&db.url, "orders").await,
        orders,
        "{dialect:?}"
    );
    db.exec("DROP TABLE purchases").await;

    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);
    let refused = ws.migrun(&[plugin, "--only", "freeze"]);
    refused.expect_code(1);
    refused.expect_output("run `switch` first; nothing was changed");
    let mut app = Application::connect(&db).await;
    app.must(
        "UPDATE orders SET note = $1 WHERE id = $2",
        &[Value::Text("still writable".into()), Value::Int(1)],
    )
    .await;

    db.exec(match dialect {
        Dialect::MySql => {
            "CREATE TABLE refunds (id BIGINT PRIMARY KEY, order_id BIGINT, \
             CONSTRAINT refunds_order_fkey FOREIGN KEY (order_id) REFERENCES orders (id)) ENGINE=InnoDB"
        }
        _ => {
            "CREATE TABLE refunds (id BIGINT PRIMARY KEY, \
             order_id BIGINT CONSTRAINT refunds_order_fkey REFERENCES orders (id))"
        }
    })
    .await;
    ws.migrun(&[plugin, "--only", "backfill,switch,freeze"])
        .expect_code(0);
    let refused = ws.migrun(&[plugin, "--set", "phase=contract"]);
    refused.expect_code(1);
    refused.expect_output("contract refused: foreign keys still reference `orders`");
    refused.expect_output("refunds");
    refused.expect_output("nothing was dropped");
    assert!(table_exists(&db, "orders").await, "{dialect:?}");
    // Re-pointed, the contract goes through.
    db.exec("DROP TABLE refunds").await;
    ws.migrun(&[plugin, "--set", "phase=contract"])
        .expect_code(0);
    assert!(!table_exists(&db, "orders").await, "{dialect:?}");
    app.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_say_why_and_change_nothing_sqlite() {
    refusals_say_why_and_change_nothing(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_say_why_and_change_nothing_postgres() {
    refusals_say_why_and_change_nothing(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_say_why_and_change_nothing_mysql() {
    refusals_say_why_and_change_nothing(Dialect::MySql).await;
}
