//! `migrun plugin.wasm --dry-run` as a reviewer meets it: the plan names every
//! schema change, the rows per table and the locking hazards of seed 003, and
//! the databases — tables, PostgreSQL sequences, the ledger — are exactly as
//! before. On MariaDB, DDL runs in a scratch copy that is dropped after.

use migrun::db::Dialect;

use crate::support::checksum::database_checksums;
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

fn script(ws: &Workspace, url: &str, statements: &[&str]) {
    let sql = statements.join("\n;;\n");
    ws.config(&format!(
        "[connections.target]\nurl = \"{url}\"\n\n[config]\nsql = '''\n{sql}\n'''\n"
    ));
}

async fn pg_sequence(db: &TestDatabase) -> String {
    let mut conn = db.connect(migrun::db::Access::ReadOnly).await;
    let rows = conn
        .query(
            "SELECT last_value::text || '/' || is_called::text FROM events_id_seq",
            &[],
        )
        .await
        .unwrap();
    format!("{:?}", rows.rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_plan_warns_on_locking_statements_and_changes_nothing() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    db.exec("CREATE TABLE events (id serial PRIMARY KEY, kind text, payload text)")
        .await;
    db.exec("INSERT INTO events (kind, payload) SELECT 'k' || (i % 7), 'p' FROM generate_series(1, 1500) i").await;
    let ws = Workspace::new();
    script(
        &ws,
        &db.url,
        &[
            "CREATE INDEX events_kind ON events (kind)",
            "ALTER TABLE events ALTER COLUMN kind SET NOT NULL",
            "ALTER TABLE events ALTER COLUMN payload TYPE varchar(200)",
            "INSERT INTO events (kind, payload) VALUES ('new', 'x'), ('new', 'y')",
            "UPDATE events SET payload = 'q' WHERE kind = 'k1'",
            "DELETE FROM events WHERE kind = 'k2'",
        ],
    );
    let before = database_checksums(&db.url).await;
    let sequence_before = pg_sequence(&db).await;
    let plugin = plugins::plugin("sql-script");
    let plan_file = ws.path().join("plan.json");
    let out = ws.migrun(&[
        plugin.to_str().unwrap(),
        "--dry-run",
        "--plan-out",
        plan_file.to_str().unwrap(),
    ]);
    out.expect_code(0)
        .expect_output("schema changes (3)")
        .expect_output("CREATE INDEX events_kind ON events (kind)")
        .expect_output("CONCURRENTLY")
        .expect_output("1,500");
    assert_eq!(
        database_checksums(&db.url).await,
        before,
        "the dry-run changed a table"
    );
    assert_eq!(
        pg_sequence(&db).await,
        sequence_before,
        "the dry-run advanced events_id_seq"
    );

    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    assert_eq!(plan["schema"], "migrun.plan/2");
    let target = &plan["connections"][0];
    assert_eq!(target["name"], "target");
    assert_eq!(target["ddl"].as_array().unwrap().len(), 3);
    let events = target["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "events")
        .expect("events in the plan");
    assert_eq!(events["inserted"], 2);
    assert!(events["updated"].as_u64().unwrap() > 100);
    assert!(events["deleted"].as_u64().unwrap() > 100);
    let warnings = target["warnings"].as_array().unwrap();
    let problems: Vec<&str> = warnings
        .iter()
        .map(|w| w["statement"].as_str().unwrap())
        .collect();
    assert!(
        problems.iter().any(|s| s.starts_with("CREATE INDEX")),
        "{warnings:?}"
    );
    assert!(
        problems.iter().any(|s| s.contains("SET NOT NULL")),
        "{warnings:?}"
    );
    assert!(
        problems.iter().any(|s| s.contains("TYPE varchar")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .all(|w| w["table"] == "events" && w["rows"] == 1500),
        "{warnings:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_safe_patterns_draw_no_warning() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    db.exec("CREATE TABLE events (id serial PRIMARY KEY, kind text)")
        .await;
    db.exec("INSERT INTO events (kind) SELECT 'k' FROM generate_series(1, 100)")
        .await;
    let ws = Workspace::new();
    script(
        &ws,
        &db.url,
        &[
            "ALTER TABLE events ADD COLUMN note text",
            "ALTER TABLE events ADD CONSTRAINT kind_present CHECK (kind IS NOT NULL) NOT VALID",
            "CREATE TABLE fresh (id int PRIMARY KEY)",
            "CREATE INDEX fresh_id ON fresh (id)",
        ],
    );
    let plugin = plugins::plugin("sql-script");
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--dry-run", "--json"]);
    let report = out.expect_code(0).json();
    let warnings = report["plan"]["connections"][0]["warnings"]
        .as_array()
        .unwrap();
    assert!(warnings.is_empty(), "safe patterns warned: {warnings:?}");
}

/// MariaDB commits DDL implicitly; the dry-run runs it in a scratch copy and the real
/// database stays byte-identical.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_dry_run_with_ddl_changes_nothing() {
    let Some(db) = TestDatabase::create(Dialect::MySql).await else {
        return;
    };
    db.exec(
        "CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, kind VARCHAR(20), payload TEXT)",
    )
    .await;
    for i in 0..50 {
        db.exec(&format!(
            "INSERT INTO events (kind, payload) VALUES ('k{}', 'p')",
            i % 5
        ))
        .await;
    }
    let ws = Workspace::new();
    script(
        &ws,
        &db.url,
        &[
            "CREATE TABLE audit (id INT PRIMARY KEY, note TEXT)",
            "ALTER TABLE events MODIFY kind VARCHAR(50) NOT NULL",
            "INSERT INTO events (kind, payload) VALUES ('new', 'x')",
            "INSERT INTO audit (id, note) VALUES (1, 'created')",
        ],
    );
    let before = database_checksums(&db.url).await;
    let plugin = plugins::plugin("sql-script");
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--dry-run", "--json"]);
    let report = out.expect_code(0).json();
    assert_eq!(
        database_checksums(&db.url).await,
        before,
        "the MariaDB dry-run changed the database"
    );
    let target = &report["plan"]["connections"][0];
    assert_eq!(target["ddl"].as_array().unwrap().len(), 2);
    let warnings = target["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w["table"] == "events" && w["statement"].as_str().unwrap().contains("MODIFY")),
        "{warnings:?}"
    );
    // The real run then does it for real.
    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(0);
    assert_ne!(database_checksums(&db.url).await, before);
}

/// Counts mean one thing on every database: an `UPDATE` counts the rows it matched, also
/// those whose values it leaves as they were (MariaDB too: migrun connects with
/// CLIENT_FOUND_ROWS), in the dry-run's plan and in the run's report alike; the report
/// shows rows, statements and bulk inserts apart.
async fn updates_count_matched_rows(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(10))")
        .await;
    db.exec("INSERT INTO items (id, v) VALUES (1, 'same'), (2, 'same'), (3, 'other')")
        .await;
    let ws = Workspace::new();
    // Two rows already hold 'same', one does not: three rows matched, one changed.
    script(&ws, &db.url, &["UPDATE items SET v = 'same'"]);
    let plugin = plugins::plugin("sql-script");
    let dry = ws.migrun(&[plugin.to_str().unwrap(), "--dry-run", "--json"]);
    let plan = dry.expect_code(0).json();
    let items = plan["plan"]["connections"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "items")
        .cloned()
        .expect("items in the plan");
    assert_eq!(items["updated"], 3, "{dialect:?}: {items}");
    ws.migrun(&[plugin.to_str().unwrap(), "--no-backup"])
        .expect_code(0)
        .expect_output("target: 3 rows (1 statement)");
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_count_matched_rows_sqlite() {
    updates_count_matched_rows(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_count_matched_rows_postgres() {
    updates_count_matched_rows(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_count_matched_rows_mysql() {
    updates_count_matched_rows(Dialect::MySql).await;
}

/// Seed 003's two named anti-patterns on a populated table, on every dialect: `ADD COLUMN …
/// NOT NULL DEFAULT …` in one step and dropping a column the running application may still
/// read. The dry-run's plan warns about each with the table's row count and the seed's safer
/// pattern; the column's warning names the index (and, on PostgreSQL, the view) that use it.
async fn seed_003_anti_patterns_are_warned_about(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    db.exec(
        "CREATE TABLE documents (id INT PRIMARY KEY, title VARCHAR(100), old_field VARCHAR(100))",
    )
    .await;
    for chunk in 0..4 {
        let values: Vec<String> = (1..=30)
            .map(|i| {
                let id = chunk * 30 + i;
                format!("({id}, 'title {id}', 'old {id}')")
            })
            .collect();
        db.exec(&format!(
            "INSERT INTO documents (id, title, old_field) VALUES {}",
            values.join(", ")
        ))
        .await;
    }
    let drop = match dialect {
        Dialect::Postgres => {
            db.exec("CREATE INDEX documents_old_field_idx ON documents (old_field)")
                .await;
            db.exec("CREATE VIEW documents_with_old AS SELECT id, old_field FROM documents")
                .await;
            "ALTER TABLE documents DROP COLUMN old_field CASCADE"
        }
        Dialect::MySql => {
            db.exec("CREATE INDEX documents_old_field_idx ON documents (old_field)")
                .await;
            "ALTER TABLE documents DROP COLUMN old_field"
        }
        // SQLite refuses to drop a column an index or view uses: none here.
        Dialect::Sqlite => "ALTER TABLE documents DROP COLUMN old_field",
    };
    let ws = Workspace::new();
    script(
        &ws,
        &db.url,
        &[
            "ALTER TABLE documents ADD COLUMN status VARCHAR(20) NOT NULL DEFAULT 'pending'",
            drop,
        ],
    );
    let before = database_checksums(&db.url).await;
    let plugin = plugins::plugin("sql-script");
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--dry-run", "--json"]);
    let report = out.expect_code(0).json();
    assert_eq!(database_checksums(&db.url).await, before, "{dialect:?}");
    let warnings = report["plan"]["connections"][0]["warnings"]
        .as_array()
        .unwrap()
        .clone();
    let find = |rule: &str| {
        warnings
            .iter()
            .find(|w| w["rule"] == rule)
            .unwrap_or_else(|| panic!("{dialect:?}: no {rule} warning in {warnings:?}"))
            .clone()
    };
    let add = find("add-column-not-null-default");
    assert_eq!(
        (add["table"].as_str(), add["rows"].as_u64()),
        (Some("documents"), Some(120))
    );
    let problem = add["problem"].as_str().unwrap();
    assert!(
        problem.starts_with(
            "ADD COLUMN status … NOT NULL DEFAULT … in one step on documents (120 rows)"
        ),
        "{dialect:?}: {problem}"
    );
    let safer = add["safer"].as_str().unwrap();
    assert!(
        safer.contains("ADD COLUMN status without NOT NULL and without a default")
            && safer.contains("then SET DEFAULT")
            && safer.contains("backfill the existing rows in batches"),
        "{dialect:?}: {safer}"
    );
    let dropped = find("drop-column-still-read");
    assert_eq!(dropped["rows"].as_u64(), Some(120), "{dialect:?}");
    let problem = dropped["problem"].as_str().unwrap();
    assert!(
        problem.starts_with(
            "DROP COLUMN old_field on documents (120 rows): an application instance still running"
        ),
        "{dialect:?}: {problem}"
    );
    match dialect {
        Dialect::Postgres => assert!(
            problem.contains("the schema still uses it: ")
                && problem.contains("index documents_old_field_idx")
                && problem.contains("view documents_with_old"),
            "{dialect:?}: {problem}"
        ),
        Dialect::MySql => assert!(
            problem.contains("the schema still uses it: index documents_old_field_idx"),
            "{dialect:?}: {problem}"
        ),
        Dialect::Sqlite => assert!(!problem.contains("the schema still uses it"), "{problem}"),
    }
    assert!(
        dropped["safer"].as_str().unwrap().contains("Pattern 2"),
        "{dialect:?}: {dropped}"
    );
    // The human plan shows them too.
    ws.migrun(&[plugin.to_str().unwrap(), "--dry-run"])
        .expect_code(0)
        .expect_output("DROP COLUMN old_field on documents (120 rows)");
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_003_anti_patterns_are_warned_about_sqlite() {
    seed_003_anti_patterns_are_warned_about(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_003_anti_patterns_are_warned_about_postgres() {
    seed_003_anti_patterns_are_warned_about(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_003_anti_patterns_are_warned_about_mysql() {
    seed_003_anti_patterns_are_warned_about(Dialect::MySql).await;
}
