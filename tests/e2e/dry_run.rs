//! Issue 3: a dry-run provably changes nothing, on every dialect.
//!
//! Driven at the library level, the way `run` drives a connection in a
//! dry-run: `enter_dry_run` before the run-long transaction, the plugin's
//! statements (DDL included), `rollback`, `leave_dry_run`. Every test
//! compares a fingerprint of the database before and after — every table's
//! checksum, the schema as the server prints it (`SHOW CREATE TABLE` keeps
//! MariaDB's AUTO_INCREMENT counters), every PostgreSQL sequence's state —
//! and requires them identical. Also: sequences another session used are not
//! moved back, a crash mid-dry-run leaves a scratch database that the next
//! run drops, and the lint warns with real row counts.

use std::collections::BTreeMap;
use std::time::Duration;

use migrun::db::{Access, Connection, DbErrorKind, Dialect, DryRunMode, SCRATCH_PREFIX};
use migrun::lint;
use migrun::value::Value;

use crate::support::checksum::database_checksums;
use crate::support::database::{TestDatabase, for_each_dialect, server_url};

/// Everything a dry-run must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    checksums: BTreeMap<String, String>,
    schema: Vec<String>,
    sequences: Vec<(String, i64, bool)>,
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) | Value::Json(s) | Value::Decimal(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "NULL".into(),
        other => format!("{other:?}"),
    }
}

async fn query(conn: &mut Connection, sql: &str) -> Vec<Vec<Value>> {
    conn.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
}

async fn exec(conn: &mut Connection, sql: &str) -> u64 {
    conn.execute(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// `(name, last_value, is_called)` of every sequence in a non-system schema.
async fn pg_sequences(conn: &mut Connection) -> Vec<(String, i64, bool)> {
    let names = query(
        conn,
        "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences ORDER BY 1",
    )
    .await;
    let mut out = Vec::new();
    for row in names {
        let name = text(&row[0]);
        let state = query(conn, &format!("SELECT last_value, is_called FROM {name}")).await;
        let (Value::Int(last), Value::Bool(called)) = (&state[0][0], &state[0][1]) else {
            panic!("unexpected sequence state {state:?}");
        };
        out.push((name, *last, *called));
    }
    out
}

async fn fingerprint(db: &TestDatabase) -> Fingerprint {
    let checksums = database_checksums(&db.url).await;
    let mut conn = db.connect(Access::ReadOnly).await;
    let (schema, sequences) = match db.dialect {
        Dialect::Postgres => {
            let columns = query(
                &mut conn,
                "SELECT table_schema || '.' || table_name || '.' || column_name || ' ' || data_type || ' ' || \
                 coalesce(column_default, '') || ' ' || is_nullable FROM information_schema.columns \
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            )
            .await;
            let indexes = query(
                &mut conn,
                "SELECT indexdef FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog') ORDER BY 1",
            )
            .await;
            let schema = columns
                .iter()
                .chain(&indexes)
                .map(|r| text(&r[0]))
                .collect();
            (schema, pg_sequences(&mut conn).await)
        }
        Dialect::MySql => {
            let mut schema = Vec::new();
            let objects = query(
                &mut conn,
                "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
            )
            .await;
            for row in objects {
                let name = text(&row[0]);
                let shown = query(&mut conn, &format!("SHOW CREATE TABLE `{name}`")).await;
                schema.push(text(&shown[0][1]));
            }
            let triggers = query(
                &mut conn,
                "SELECT CAST(CONCAT(TRIGGER_NAME, ' ', ACTION_STATEMENT) AS CHAR) FROM information_schema.TRIGGERS \
                 WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1",
            )
            .await;
            schema.extend(triggers.iter().map(|r| text(&r[0])));
            (schema, Vec::new())
        }
        Dialect::Sqlite => {
            let rows = query(
                &mut conn,
                "SELECT coalesce(sql, name) FROM sqlite_master ORDER BY 1",
            )
            .await;
            (rows.iter().map(|r| text(&r[0])).collect(), Vec::new())
        }
    };
    conn.close().await;
    Fingerprint {
        checksums,
        schema,
        sequences,
    }
}

/// Names of the scratch databases on the MariaDB server.
async fn scratch_databases(conn: &mut Connection) -> Vec<String> {
    query(
        conn,
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'migrun\\_dryrun\\_%'",
    )
    .await
    .iter()
    .map(|r| text(&r[0]))
    .collect()
}

/// A table with a generated key, a parent with a foreign key to it, and rows.
async fn seed(db: &TestDatabase) {
    let statements: &[&str] = match db.dialect {
        Dialect::Postgres => &[
            "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL, plan text)",
            "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             account_id int REFERENCES accounts (id), kind text)",
            "CREATE SEQUENCE invoice_numbers START 1000",
            "CREATE SEQUENCE never_used",
            "CREATE SCHEMA billing",
            "CREATE TABLE billing.invoices (id bigserial PRIMARY KEY, total numeric(10,2))",
            "INSERT INTO accounts (email, plan) VALUES ('a@x', 'free'), ('b@x', 'pro'), ('c@x', NULL)",
            "INSERT INTO events (account_id, kind) VALUES (1, 'signup'), (2, 'signup')",
            "INSERT INTO billing.invoices (total) VALUES (9.99)",
            "SELECT nextval('invoice_numbers')",
        ],
        Dialect::MySql => &[
            "CREATE TABLE accounts (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(100) NOT NULL, plan VARCHAR(20))",
            "CREATE TABLE events (id BIGINT AUTO_INCREMENT PRIMARY KEY, account_id INT, kind VARCHAR(20), \
             doubled INT AS (account_id * 2) VIRTUAL, FOREIGN KEY (account_id) REFERENCES accounts (id))",
            "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(100))",
            "CREATE TRIGGER events_audit AFTER INSERT ON events FOR EACH ROW INSERT INTO audit (note) VALUES (NEW.kind)",
            "CREATE VIEW pro_accounts AS SELECT id, email FROM accounts WHERE plan = 'pro'",
            "INSERT INTO accounts (email, plan) VALUES ('a@x', 'free'), ('b@x', 'pro'), ('c@x', NULL)",
            "INSERT INTO events (account_id, kind) VALUES (1, 'signup'), (2, 'signup')",
        ],
        Dialect::Sqlite => &[
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL, plan TEXT)",
            "CREATE TABLE events (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts (id), kind TEXT)",
            "INSERT INTO accounts (email, plan) VALUES ('a@x', 'free'), ('b@x', 'pro'), ('c@x', NULL)",
            "INSERT INTO events (account_id, kind) VALUES (1, 'signup'), (2, 'signup')",
        ],
    };
    for sql in statements {
        db.exec(sql).await;
    }
}

/// What a plugin might do in a dry-run: DDL of every kind and writes, with
/// reads that must see them.
async fn plugin_work(conn: &mut Connection) {
    let dialect = conn.dialect();
    exec(
        conn,
        "INSERT INTO accounts (email, plan) VALUES ('d@x', 'pro'), ('e@x', 'free')",
    )
    .await;
    exec(conn, "UPDATE accounts SET plan = 'team' WHERE plan = 'pro'").await;
    exec(
        conn,
        "INSERT INTO events (account_id, kind) VALUES (4, 'upgrade')",
    )
    .await;
    exec(
        conn,
        "DELETE FROM events WHERE kind = 'signup' AND account_id = 1",
    )
    .await;
    exec(
        conn,
        "CREATE TABLE migrated (id INT PRIMARY KEY, email VARCHAR(100))",
    )
    .await;
    exec(
        conn,
        "INSERT INTO migrated (id, email) SELECT id, email FROM accounts",
    )
    .await;
    exec(conn, "CREATE INDEX accounts_plan ON accounts (plan)").await;
    exec(conn, "ALTER TABLE accounts ADD COLUMN score INT").await;
    exec(conn, "UPDATE accounts SET score = 1").await;
    match dialect {
        Dialect::Postgres => {
            exec(conn, "INSERT INTO billing.invoices (total) VALUES (1), (2)").await;
            query(conn, "SELECT nextval('invoice_numbers'), nextval('invoice_numbers'), nextval('never_used')").await;
            exec(conn, "CREATE TABLE scratchpad (id bigserial PRIMARY KEY)").await;
            exec(conn, "INSERT INTO scratchpad DEFAULT VALUES").await;
        }
        Dialect::MySql => {
            // The trigger fires in the scratch copy.
            let audit = query(conn, "SELECT COUNT(*) FROM audit").await;
            assert_eq!(text(&audit[0][0]), "3", "the trigger was cloned and fired");
            exec(conn, "DROP VIEW pro_accounts").await;
            exec(conn, "TRUNCATE TABLE audit").await;
        }
        Dialect::Sqlite => {}
    }
    let seen = query(conn, "SELECT COUNT(*) FROM migrated").await;
    assert_eq!(text(&seen[0][0]), "5", "later statements see earlier ones");
}

#[tokio::test]
async fn dry_run_changes_nothing_on_every_dialect() {
    for_each_dialect(|db| async move {
        seed(&db).await;
        let before = fingerprint(&db).await;

        let mut conn = db.connect(Access::ReadWrite).await;
        let guard = conn
            .enter_dry_run("7c1f0e2a-every-dialect", &[])
            .await
            .expect("enter the dry-run");
        match (db.dialect, guard.mode()) {
            (Dialect::Sqlite, DryRunMode::Transaction) => {}
            (
                Dialect::Postgres,
                DryRunMode::Sequences {
                    sequences,
                    unrestorable,
                },
            ) => {
                assert_eq!(
                    *sequences, 5,
                    "serial, identity, bigserial and two plain sequences"
                );
                assert!(unrestorable.is_empty());
            }
            (
                Dialect::MySql,
                DryRunMode::Scratch {
                    database,
                    source,
                    copied,
                    read_through,
                    not_cloned,
                },
            ) => {
                assert!(database.starts_with(SCRATCH_PREFIX), "{database}");
                assert_eq!(source, &db.name);
                assert_eq!(copied, &["accounts", "audit", "events"]);
                assert!(read_through.is_empty());
                assert!(not_cloned.is_empty(), "{not_cloned:?}");
                let current = query(&mut conn, "SELECT CAST(DATABASE() AS CHAR)").await;
                assert_eq!(&text(&current[0][0]), database);
            }
            (dialect, mode) => panic!("{dialect}: unexpected dry-run mode {mode:?}"),
        }
        conn.begin().await.expect("begin");
        plugin_work(&mut conn).await;
        conn.rollback().await.expect("rollback");
        let restore = conn.leave_dry_run(guard).await;
        assert!(restore.is_clean(), "{restore:?}");
        match db.dialect {
            Dialect::Postgres => assert_eq!(
                restore.restored.len(),
                5,
                "three tables' sequences advanced by inserts, two by nextval: {restore:?}"
            ),
            Dialect::MySql => assert!(restore.dropped.is_some()),
            Dialect::Sqlite => assert!(restore.restored.is_empty() && restore.dropped.is_none()),
        }
        if db.dialect == Dialect::MySql {
            assert!(
                scratch_databases(&mut conn)
                    .await
                    .iter()
                    .all(|d| Some(d) != restore.dropped.as_ref())
            );
        }
        conn.close().await;

        assert_eq!(
            fingerprint(&db).await,
            before,
            "the dry-run changed {}",
            db.dialect
        );
    })
    .await;
}

#[tokio::test]
async fn postgres_sequences_another_session_used_are_not_moved_back() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    db.exec("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
        .await;
    db.exec("CREATE TABLE tickets (id serial PRIMARY KEY, note text)")
        .await;
    db.exec("CREATE SEQUENCE counter").await;
    let mut dry = db.connect(Access::ReadWrite).await;
    let mut live = db.connect(Access::ReadWrite).await;
    let guard = dry.enter_dry_run("run-concurrent", &[]).await.unwrap();
    dry.begin().await.unwrap();

    // orders: the dry-run takes 1, a live session takes and commits 2, the dry-run takes 3.
    exec(&mut dry, "INSERT INTO orders (note) VALUES ('dry')").await;
    exec(&mut live, "INSERT INTO orders (note) VALUES ('live')").await;
    exec(&mut dry, "INSERT INTO orders (note) VALUES ('dry')").await;
    // tickets: the live session takes a value after the dry-run's last one.
    exec(&mut dry, "INSERT INTO tickets (note) VALUES ('dry')").await;
    exec(&mut live, "INSERT INTO tickets (note) VALUES ('live')").await;
    // counter: only the live session uses it.
    query(&mut live, "SELECT nextval('counter')").await;

    dry.rollback().await.unwrap();
    let restore = dry.leave_dry_run(guard).await;
    assert!(restore.restored.is_empty(), "{restore:?}");
    assert_eq!(restore.left.len(), 3, "{restore:?}");
    assert!(
        restore
            .left
            .iter()
            .any(|l| l.contains("public.orders_id_seq") && l.contains("committed rows")),
        "{restore:?}"
    );
    assert!(
        restore
            .left
            .iter()
            .any(|l| l.contains("public.tickets_id_seq")
                && l.contains("after the dry-run's last one")),
        "{restore:?}"
    );
    assert!(
        restore
            .left
            .iter()
            .any(|l| l.contains("public.counter") && l.contains("took no value")),
        "{restore:?}"
    );

    // The next values never repeat one the live session has.
    let next = query(
        &mut live,
        "SELECT nextval('orders_id_seq'), nextval('tickets_id_seq'), nextval('counter')",
    )
    .await;
    assert_eq!(next[0], vec![Value::Int(4), Value::Int(3), Value::Int(2)]);
    dry.close().await;
    live.close().await;
}

#[tokio::test]
async fn mariadb_declared_writes_copy_their_tables_and_read_the_rest_through_views() {
    let Some(db) = TestDatabase::create(Dialect::MySql).await else {
        return;
    };
    db.exec("CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(100))")
        .await;
    db.exec("CREATE TABLE orgs (id INT PRIMARY KEY)").await;
    db.exec(
        "CREATE TABLE members (org_id INT, user_id INT, FOREIGN KEY (org_id) REFERENCES orgs (id))",
    )
    .await;
    db.exec("CREATE TABLE unrelated (id INT PRIMARY KEY)").await;
    db.exec("INSERT INTO users (email) VALUES ('a@x'), ('b@x'), ('c@x')")
        .await;
    db.exec("INSERT INTO orgs VALUES (1)").await;
    let before = fingerprint(&db).await;

    let mut conn = db.connect(Access::ReadWrite).await;
    let guard = conn
        .enter_dry_run(
            "run-declared",
            &["members".to_owned(), "auth_users".to_owned()],
        )
        .await
        .unwrap();
    let DryRunMode::Scratch {
        copied,
        read_through,
        ..
    } = guard.mode()
    else {
        panic!("{:?}", guard.mode());
    };
    assert_eq!(
        copied,
        &["members", "orgs"],
        "the declared table and its foreign-key parent"
    );
    assert_eq!(read_through, &["unrelated", "users"]);
    conn.begin().await.unwrap();
    // Reads of undeclared tables see the real rows; writes to them are refused by the server.
    let users = query(&mut conn, "SELECT COUNT(*) FROM users").await;
    assert_eq!(text(&users[0][0]), "3");
    let err = conn.execute("DELETE FROM users", &[]).await.unwrap_err();
    assert!(err.message.contains("users"), "{err}");
    // Names qualified with the real database are refused before they reach it.
    let err = conn
        .execute(&format!("DELETE FROM `{}`.users", db.name), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::Refused, "{err}");
    let err = conn
        .bulk_insert(
            &format!("{}.users", db.name),
            &["email".to_owned()],
            &[vec![Value::Text("z@x".into())]],
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::Refused, "{err}");
    // The declared work runs, DDL included.
    exec(
        &mut conn,
        "CREATE TABLE auth_users (id INT PRIMARY KEY, email VARCHAR(100))",
    )
    .await;
    exec(
        &mut conn,
        "INSERT INTO auth_users SELECT id, email FROM users",
    )
    .await;
    exec(&mut conn, "INSERT INTO members VALUES (1, 1), (1, 2)").await;
    // Row counts come from the real table for tables read through views.
    assert_eq!(conn.table_row_count("users").await.unwrap(), Some(3));
    assert_eq!(conn.table_row_count("auth_users").await.unwrap(), Some(3));
    assert_eq!(conn.table_row_count("nope").await.unwrap(), None);
    conn.rollback().await.unwrap();
    let restore = conn.leave_dry_run(guard).await;
    assert!(
        restore.is_clean() && restore.dropped.is_some(),
        "{restore:?}"
    );
    conn.close().await;
    assert_eq!(fingerprint(&db).await, before);
}

#[tokio::test]
async fn mariadb_crash_mid_dry_run_leaves_a_scratch_the_next_run_drops() {
    let Some(db) = TestDatabase::create(Dialect::MySql).await else {
        return;
    };
    seed(&db).await;
    let before = fingerprint(&db).await;

    // A live dry-run elsewhere must survive the clean-up.
    let mut live = db.connect(Access::ReadWrite).await;
    let live_guard = live.enter_dry_run("run-live", &[]).await.unwrap();
    let DryRunMode::Scratch {
        database: live_scratch,
        ..
    } = live_guard.mode().clone()
    else {
        panic!("{:?}", live_guard.mode());
    };

    let mut crashed = db.connect(Access::ReadWrite).await;
    let guard = crashed.enter_dry_run("run-crash", &[]).await.unwrap();
    let DryRunMode::Scratch {
        database: scratch, ..
    } = guard.mode().clone()
    else {
        panic!("{:?}", guard.mode());
    };
    crashed.begin().await.unwrap();
    exec(&mut crashed, "CREATE TABLE half_done (id INT)").await;
    exec(&mut crashed, "INSERT INTO accounts (email) VALUES ('z@x')").await;
    // The process dies: no rollback, no leave, no close.
    drop(guard);
    drop(crashed);

    let mut next = db.connect(Access::ReadWrite).await;
    assert!(
        scratch_databases(&mut next).await.contains(&scratch),
        "the crash left the scratch behind"
    );
    // The server notices the closed socket within moments and frees the lock.
    let mut dropped = Vec::new();
    for _ in 0..50 {
        dropped.extend(next.cleanup_stale_dry_runs().await.expect("clean up"));
        if dropped.contains(&scratch) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        dropped.contains(&scratch),
        "stale scratch {scratch} dropped: {dropped:?}"
    );
    assert!(
        !dropped.contains(&live_scratch),
        "a live dry-run's scratch is never dropped"
    );
    let remaining = scratch_databases(&mut next).await;
    assert!(
        !remaining.contains(&scratch) && remaining.contains(&live_scratch),
        "{remaining:?}"
    );
    next.close().await;

    let restore = live.leave_dry_run(live_guard).await;
    assert!(restore.is_clean(), "{restore:?}");
    live.close().await;
    assert_eq!(
        fingerprint(&db).await,
        before,
        "nothing of the real database changed"
    );
}

#[tokio::test]
async fn mariadb_without_create_privilege_refuses_ddl_and_restores_counters() {
    let Some(db) = TestDatabase::create(Dialect::MySql).await else {
        return;
    };
    seed(&db).await;
    let before = fingerprint(&db).await;
    let user = format!("{}_u", &db.name[..db.name.len().min(20)]);
    db.exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        .await;
    db.exec(&format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE, ALTER ON `{}`.* TO '{user}'@'%'",
        db.name
    ))
    .await;
    let server = server_url(Dialect::MySql).unwrap();
    let host = server
        .rsplit('@')
        .next()
        .unwrap()
        .trim_start_matches("mysql://");
    let url = format!("mysql://{user}:pw@{host}/{}", db.name);

    let mut conn = Connection::connect("target", &url, Access::ReadWrite)
        .await
        .unwrap();
    let guard = conn.enter_dry_run("run-noprivs", &[]).await.unwrap();
    let DryRunMode::DdlRefused { reason } = guard.mode() else {
        panic!("{:?}", guard.mode());
    };
    assert!(
        reason.contains("no scratch database could be made"),
        "{reason}"
    );
    assert!(guard.note().is_some());
    conn.begin().await.unwrap();
    exec(
        &mut conn,
        "INSERT INTO accounts (email) VALUES ('x@x'), ('y@x')",
    )
    .await;
    let err = conn
        .execute("CREATE TABLE t (id INT)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::Refused);
    assert!(
        err.message.contains("no scratch database could be made"),
        "{err}"
    );
    conn.rollback().await.unwrap();
    let restore = conn.leave_dry_run(guard).await;
    assert!(restore.is_clean(), "{restore:?}");
    assert!(
        restore
            .restored
            .iter()
            .any(|r| r.starts_with("AUTO_INCREMENT of accounts")),
        "InnoDB does not roll AUTO_INCREMENT back: {restore:?}"
    );
    // DDL is allowed again after the dry-run.
    exec(&mut conn, "ALTER TABLE accounts COMMENT ''").await;
    conn.close().await;
    db.exec(&format!("DROP USER '{user}'@'%'")).await;
    assert_eq!(fingerprint(&db).await, before);
}

#[tokio::test]
async fn lint_warns_with_the_real_row_count() {
    for_each_dialect(|db| async move {
        db.exec("CREATE TABLE big (id INT PRIMARY KEY, a INT)")
            .await;
        db.exec("CREATE TABLE empty_one (id INT PRIMARY KEY, a INT)")
            .await;
        db.exec("INSERT INTO big VALUES (1, 1), (2, 2), (3, 3)")
            .await;
        let mut conn = db.connect(Access::ReadWrite).await;
        let rows = conn.table_rows("big").await.unwrap().unwrap();
        assert!(rows.exact && rows.rows == 3, "{rows:?}");
        let (risky, safe) = match db.dialect {
            Dialect::Postgres => (
                "CREATE INDEX big_a ON big (a)",
                "CREATE INDEX CONCURRENTLY big_a ON big (a)",
            ),
            Dialect::MySql => (
                "ALTER TABLE big MODIFY a BIGINT",
                "ALTER TABLE big ADD COLUMN b INT",
            ),
            Dialect::Sqlite => (
                "CREATE INDEX big_a ON big (a)",
                "CREATE INDEX big_a ON big (a)",
            ),
        };
        let warnings = lint::lint_statement(&mut conn, risky).await.unwrap();
        if db.dialect == Dialect::Sqlite {
            assert!(warnings.is_empty());
            conn.close().await;
            return;
        }
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!((warnings[0].table.as_str(), warnings[0].rows), ("big", 3));
        assert_eq!(warnings[0].connection.as_deref(), Some("test"));
        assert!(
            warnings[0].problem.contains("big (3 rows)"),
            "{}",
            warnings[0].problem
        );
        assert!(
            lint::lint_statement(&mut conn, safe)
                .await
                .unwrap()
                .is_empty()
        );
        let empty = risky.replace("big", "empty_one");
        assert!(
            lint::lint_statement(&mut conn, &empty)
                .await
                .unwrap()
                .is_empty(),
            "an empty table does not warn"
        );

        // Mid-transaction (as in a dry-run) the count includes the run's own rows,
        // and looking up a missing table leaves the transaction usable.
        conn.begin().await.unwrap();
        exec(&mut conn, "INSERT INTO empty_one VALUES (1, 1), (2, 2)").await;
        let warnings = lint::lint_statement(&mut conn, &empty).await.unwrap();
        assert_eq!(warnings.first().map(|w| w.rows), Some(2), "{warnings:?}");
        assert_eq!(conn.table_row_count("no_such_table").await.unwrap(), None);
        exec(&mut conn, "INSERT INTO empty_one VALUES (3, 3)").await;
        conn.rollback().await.unwrap();
        conn.close().await;
    })
    .await;
}
