//! Seed 000 end to end: the auth-consolidation plugin copies `users` into
//! `auth_users` on every dialect, dry-runs without changing a byte, verifies
//! its own work, and reruns as a no-op.

use migrun::db::Dialect;

use crate::support::checksum::{database_checksums, row_count, table_checksum};
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

const USERS: u32 = 1234;

fn config(source: &str, target: &str) -> String {
    format!(
        r#"
[connections.source]
url = "{source}"
access = "read-only"

[connections.target]
url = "{target}"
access = "read-write"

[config]
batch_size = 100
"#
    )
}

async fn scenario(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, USERS, 7)
        .await
        .expect("seed users");
    let ws = Workspace::new();
    ws.config(&config(&source.ro_url, &target.url));
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();

    let source_before = database_checksums(&source.url).await;
    let target_before = database_checksums(&target.url).await;

    // Dry-run on an empty target: PostgreSQL and SQLite run everything inside
    // a transaction that is rolled back; MariaDB runs it in a scratch copy of
    // the database (its DDL commits implicitly), dropped afterwards.
    let dry = ws.migrun(&[plugin, "--dry-run"]);
    dry.expect_code(0)
        .expect_output("dry-run ok")
        .expect_output("✓ row counts match")
        .expect_output("CREATE TABLE auth_users");
    assert!(
        dry.stdout.contains(&format!("target: {USERS} rows")),
        "plan shows the rows: {}",
        dry.stdout
    );
    assert_eq!(
        database_checksums(&source.url).await,
        source_before,
        "dry-run changed the source"
    );
    assert_eq!(
        database_checksums(&target.url).await,
        target_before,
        "dry-run changed the target"
    );

    // The real run copies every user, field for field.
    let run = ws.migrun(&[plugin, "--json"]);
    run.expect_code(0);
    let report = run.json();
    assert_eq!(report["schema"], "migrun.run-report/1");
    assert_eq!(report["succeeded"], true);
    let units: Vec<(String, String)> = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        units,
        [
            ("create-auth-users".to_owned(), "committed".to_owned()),
            ("copy-users".to_owned(), "committed".to_owned())
        ]
    );
    assert_eq!(report["units"][1]["writes"]["target"]["rows"], USERS as u64);
    let checks = report["checks"].as_array().unwrap();
    assert!(
        checks.len() >= 6,
        "row count, sample and four index checks: {checks:?}"
    );
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:?}");
    assert_eq!(row_count(&target.url, "auth_users").await, i64::from(USERS));
    assert_eq!(
        table_checksum(&source.url, "users").await,
        table_checksum(&target.url, "auth_users").await,
        "auth_users must equal users value for value"
    );
    assert_eq!(
        database_checksums(&source.url).await,
        source_before,
        "the run wrote to the read-only source"
    );

    // Now that the table exists, a dry-run works on every dialect and changes nothing.
    let target_after = database_checksums(&target.url).await;
    ws.migrun(&[plugin, "--dry-run"])
        .expect_code(0)
        .expect_output("dry-run ok");
    assert_eq!(database_checksums(&target.url).await, target_after);

    // A rerun copies nothing more.
    ws.migrun(&[plugin]).expect_code(0);
    assert_eq!(database_checksums(&target.url).await, target_after);
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_consolidation_sqlite() {
    scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_consolidation_postgres() {
    scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_consolidation_mysql() {
    scenario(Dialect::MySql).await;
}

/// The README's demo path: no config file at all, embedded SQLite files under `migrun-data/`.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_sqlite_default_needs_no_config() {
    let ws = Workspace::new();
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();

    // Without a source file the run stops before anything, saying what to do.
    ws.migrun(&[plugin, "--dry-run"])
        .expect_code(2)
        .expect_output("connection `source`")
        .expect_output("embedded default");

    std::fs::create_dir_all(ws.path().join("migrun-data")).unwrap();
    let source_url = format!(
        "sqlite://{}",
        ws.path().join("migrun-data/source.sqlite").display()
    );
    migrun_fixtures::seed_auth_users(&source_url, 50, 1)
        .await
        .expect("seed");
    let target_file = ws.path().join("migrun-data/target.sqlite");
    ws.migrun(&[plugin, "--dry-run"])
        .expect_code(0)
        .expect_output("(embedded default)")
        .expect_output("does not exist yet: the dry-run uses an empty in-memory database")
        .expect_output("✓ row counts match");
    assert!(
        !target_file.exists(),
        "a dry-run must not create the target file"
    );
    ws.migrun(&[plugin]).expect_code(0).expect_output("ok in");
    let target_url = format!("sqlite://{}", target_file.display());
    assert_eq!(row_count(&target_url, "auth_users").await, 50);
}
