//! Seed 000 end to end: the auth-consolidation plugin copies `users` into
//! `auth_users` on every dialect, dry-runs without changing a byte, verifies
//! its own work, and reruns as a no-op. Then the seed's own steps: the source
//! (`openneo_id`) backed up before the run and restored by `migrun restore`,
//! Rails' `schema_migrations` row, a rerun re-syncing rows changed since an
//! earlier copy, a source shaped like the seed's (MariaDB utf8mb3, `datetime`
//! without fractions), and each verification check failing once.

use migrun::db::{Access, Dialect};
use migrun::value::Value;

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
        dry.stdout
            .contains("    auth_users          1,234       0       0"),
        "plan shows the rows: {}",
        dry.stdout
    );
    dry.expect_output(
        "source (read-only, backed up)\n  backup before the first write: users (1,234 rows)",
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
    // Every user, and Rails' schema_migrations row.
    assert_eq!(
        report["units"][1]["writes"]["target"]["rows"],
        USERS as u64 + 1
    );
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

    assert_eq!(
        migration_versions(&target).await,
        ["20251102064247"],
        "Rails' schema_migrations records the seed's migration"
    );

    // A rerun copies nothing more (copy-users runs again, finds every row equal and the
    // version recorded; only its ledger row is renewed).
    ws.migrun(&[plugin]).expect_code(0);
    assert_eq!(
        without_ledger(database_checksums(&target.url).await),
        without_ledger(target_after)
    );
    assert_eq!(migration_versions(&target).await, ["20251102064247"]);
}

fn without_ledger(
    sums: std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    sums.into_iter()
        .filter(|(table, _)| !table.ends_with("migrun_ledger"))
        .collect()
}

/// Every row of `sql` at `db`, each value as canonical text (`None` for NULL).
async fn rows(db: &TestDatabase, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await;
    rows.rows
        .into_iter()
        .map(|r| r.iter().map(Value::canonical_text).collect())
        .collect()
}

/// The versions in the target's `schema_migrations`, ascending.
async fn migration_versions(db: &TestDatabase) -> Vec<String> {
    rows(db, "SELECT version FROM schema_migrations ORDER BY version")
        .await
        .into_iter()
        .map(|r| r[0].clone().expect("a version"))
        .collect()
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

/// `config` with extra `[config]` lines (`key = value`).
fn config_with(source: &str, target: &str, extra: &str) -> String {
    format!("{}{extra}\n", config(source, target))
}

/// A timestamp's canonical text without a zero fraction (`2010-01-01T00:00:05`), so a
/// `datetime` and a `datetime(6)` holding the same second compare equal.
fn whole_second(text: &str) -> String {
    let text = text.replacen(' ', "T", 1);
    match text.split_once('.') {
        Some((whole, fraction)) if fraction.trim_end_matches('0').is_empty() => whole.to_owned(),
        _ => text,
    }
}

/// The id of the `i`-th user [`migrun_fixtures::seed_auth_users`] inserts for `(count, seed)`.
fn user_id(count: u32, seed: u64, i: usize) -> i64 {
    migrun_fixtures::generate_users(count, seed)[i].id
}

/// The seed's Phase 2 backs up `openneo_id` and its rollback restores it: the run backs up
/// the read-only source's `users` before its first write (besides `auth_users`), and when
/// `users` is damaged afterwards, `migrun restore` of that backup (with a URL allowed to
/// write there) brings it back row for row.
async fn source_backup_scenario(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 300, 3)
        .await
        .expect("seed users");
    let ws = Workspace::new();
    ws.config(&config(&source.ro_url, &target.url));
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();
    let users_before = table_checksum(&source.url, "users").await;

    ws.migrun(&[plugin, "--dry-run"])
        .expect_code(0)
        .expect_output(
            "source (read-only, backed up)\n  backup before the first write: users (300 rows)",
        );
    let run = ws.migrun(&[plugin, "--json"]);
    let report = run.expect_code(0).json();
    let backups = report["backups"].as_array().expect("backups").clone();
    let ids: Vec<&str> = backups.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{dialect:?}: target and source: {ids:?}");
    assert!(ids[0].ends_with(".target.before-run"), "{ids:?}");
    assert!(ids[1].ends_with(".source.before-run"), "{ids:?}");
    assert_eq!(backups[1]["tables"][0]["name"], "users");
    assert_eq!(backups[1]["tables"][0]["rows"], 300);
    assert_eq!(
        table_checksum(&source.url, "users").await,
        users_before,
        "backing up the source changed nothing there"
    );
    ws.migrun(&["backup", "verify", ids[1]]).expect_code(0);

    // openneo_id damaged after the copy: rows gone, others changed.
    let (first, tenth) = (user_id(300, 3, 0), user_id(300, 3, 9));
    source
        .exec(&format!("DELETE FROM users WHERE id > {tenth}"))
        .await;
    source
        .exec(&format!(
            "UPDATE users SET email = NULL, name = 'damaged' WHERE id = {first}"
        ))
        .await;
    assert_ne!(table_checksum(&source.url, "users").await, users_before);

    let auth_users = table_checksum(&target.url, "auth_users").await;
    ws.migrun(&[
        "restore",
        ids[1],
        "--yes",
        "--db",
        &format!("source={}", source.url),
    ])
    .expect_code(0)
    .expect_output("users");
    assert_eq!(
        table_checksum(&source.url, "users").await,
        users_before,
        "{dialect:?}: the restore brought openneo_id's users back"
    );
    assert_eq!(
        table_checksum(&target.url, "auth_users").await,
        auth_users,
        "restoring the source leaves the target alone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_source_backup_restores_users_sqlite() {
    source_backup_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_source_backup_restores_users_postgres() {
    source_backup_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_source_backup_restores_users_mysql() {
    source_backup_scenario(Dialect::MySql).await;
}

/// A rerun after an earlier (rehearsal) copy re-syncs: rows changed in `users` since are
/// updated (whether or not the change moved `updated_at`), new users are copied, and a
/// copy changed after its source (the application writes `auth_users` after the switch)
/// is not overwritten until the source changes again.
async fn resync_scenario(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    const N: u32 = 300;
    migrun_fixtures::seed_auth_users(&source.url, N, 5)
        .await
        .expect("seed users");
    let ws = Workspace::new();
    // The sample is the first and last user only, so the copy kept on purpose below is
    // not sampled and the run's checks pass.
    ws.config(&config_with(&source.ro_url, &target.url, "sample_size = 2"));
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();
    // The rehearsal copy. The source's backup says how to restore it (not "undo": the run
    // wrote nothing there).
    ws.migrun(&[plugin])
        .expect_code(0)
        .expect_output(".source.before-run --yes --db source=<a URL allowed to write>");

    let (renamed, reemailed, newer) = (user_id(N, 5, 5), user_id(N, 5, 6), user_id(N, 5, 7));
    source
        .exec(&format!(
            "UPDATE users SET name = 'renamed', updated_at = '2030-01-01 00:00:00' WHERE id = {renamed}"
        ))
        .await;
    source
        .exec(&format!(
            "UPDATE users SET email = 'changed.quietly@example.org' WHERE id = {reemailed}"
        ))
        .await;
    source
        .exec(
            "INSERT INTO users (id, name, email, created_at, updated_at) \
             VALUES (900000, 'Newcomer', 'newcomer@example.org', '2030-01-02 00:00:00', '2030-01-02 00:00:00')",
        )
        .await;
    target
        .exec(&format!(
            "UPDATE auth_users SET name = 'changed after the switch', updated_at = '2031-01-01 00:00:00' \
             WHERE id = {newer}"
        ))
        .await;

    let rerun = ws.migrun(&[plugin]);
    rerun
        .expect_code(0)
        .expect_output("1 inserted, 2 updated")
        .expect_output(&format!(
            "{TARGET} id {newer} differs from users but was updated after it"
        ));
    let name_of = |id: i64| {
        let target = &target;
        async move {
            rows(
                target,
                &format!("SELECT name, email FROM auth_users WHERE id = {id}"),
            )
            .await
        }
    };
    assert_eq!(name_of(renamed).await[0][0].as_deref(), Some("renamed"));
    assert_eq!(
        name_of(reemailed).await[0][1].as_deref(),
        Some("changed.quietly@example.org"),
        "{dialect:?}: a change that left updated_at alone is re-synced too"
    );
    assert_eq!(name_of(900000).await[0][0].as_deref(), Some("Newcomer"));
    assert_eq!(
        name_of(newer).await[0][0].as_deref(),
        Some("changed after the switch"),
        "{dialect:?}: a copy newer than its source is kept"
    );

    // Once the source changes after it, the copy follows: the tables are equal again.
    source
        .exec(&format!(
            "UPDATE users SET name = 'changed at the source', updated_at = '2032-01-01 00:00:00' WHERE id = {newer}"
        ))
        .await;
    ws.migrun(&[plugin]).expect_code(0);
    assert_eq!(
        table_checksum(&source.url, "users").await,
        table_checksum(&target.url, "auth_users").await,
        "{dialect:?}: auth_users equals users after the re-sync"
    );
    assert_eq!(migration_versions(&target).await, ["20251102064247"]);
}

const TARGET: &str = "auth_users";

#[tokio::test(flavor = "multi_thread")]
async fn seed000_rerun_resyncs_changed_rows_sqlite() {
    resync_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_rerun_resyncs_changed_rows_postgres() {
    resync_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_rerun_resyncs_changed_rows_mysql() {
    resync_scenario(Dialect::MySql).await;
}

/// The seed's source as production holds it: MariaDB `utf8mb3` (`utf8mb3_general_ci`) with
/// second-precision `datetime`. Every row is copied with its exact values (the check
/// samples all of them), the accented emails pass the target's unique email index, which
/// refuses what the source's refuses (the same email in other letter case), and a
/// configured migration version joins the versions Rails' table already holds, once.
#[tokio::test(flavor = "multi_thread")]
async fn seed000_utf8mb3_datetime_source_copies_exact_values_mysql() {
    let Some(source) = TestDatabase::create(Dialect::MySql).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::MySql).await else {
        return;
    };
    const N: u32 = 700;
    let users = migrun_fixtures::seed_auth_users_as_in_seed(&source.url, N, 11)
        .await
        .expect("seed users as in the seed");
    let shape = rows(
        &source,
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COALESCE(CHARACTER_SET_NAME, '') AS CHAR), \
                CAST(COLUMN_TYPE AS CHAR) \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' \
           AND COLUMN_NAME IN ('email', 'updated_at') ORDER BY COLUMN_NAME",
    )
    .await;
    assert_eq!(
        shape,
        [
            [
                Some("email".into()),
                Some("utf8mb3".into()),
                Some("varchar(50)".into())
            ],
            [
                Some("updated_at".into()),
                Some(String::new()),
                Some("datetime".into())
            ],
        ],
        "the source is shaped like the seed's"
    );
    // Rails' table as an application that ran earlier migrations has it.
    target
        .exec("CREATE TABLE schema_migrations (version varchar(255) NOT NULL PRIMARY KEY)")
        .await;
    target
        .exec("INSERT INTO schema_migrations (version) VALUES ('20240101000000')")
        .await;

    let ws = Workspace::new();
    ws.config(&config_with(
        &source.ro_url,
        &target.url,
        &format!("sample_size = {N}\nschema_migrations_version = \"20260101000000\""),
    ));
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();
    ws.migrun(&[plugin])
        .expect_code(0)
        .expect_output("✓ sample rows match")
        .expect_output(&format!("{N} sampled rows"));

    let copied = rows(
        &target,
        "SELECT id, name, email, created_at, updated_at, locked_at FROM auth_users ORDER BY id",
    )
    .await;
    assert_eq!(copied.len(), users.len());
    let second = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    for (row, user) in copied.iter().zip(&users) {
        let expected = [
            Some(user.id.to_string()),
            Some(user.name.clone()),
            user.email.clone(),
            Some(second(user.created_at)),
            Some(second(user.updated_at)),
            user.locked_at.map(second),
        ];
        let got: Vec<Option<String>> = row
            .iter()
            .enumerate()
            .map(|(i, v)| match i {
                3..=5 => v.as_deref().map(whole_second),
                _ => v.clone(),
            })
            .collect();
        assert_eq!(got, expected, "user {}", user.id);
    }
    let accented = users
        .iter()
        .filter_map(|u| u.email.as_deref())
        .find(|e| e.starts_with('é'))
        .expect("an accented email");
    // The same address in capitals: one account under utf8mb3_general_ci, refused by
    // the source's unique index and by the copy's alike.
    let capitals = accented.to_uppercase();
    for (db, table) in [(&source, "users"), (&target, "auth_users")] {
        let mut conn = db.connect(Access::ReadWrite).await;
        let refused = conn
            .execute(
                &format!("INSERT INTO {table} (id, name, email) VALUES (990001, 'twin', ?)"),
                &[Value::Text(capitals.clone())],
            )
            .await;
        conn.close().await;
        let error = refused.expect_err("the unique email index refuses the same address");
        assert!(
            error.to_string().to_lowercase().contains("duplicate"),
            "{table}: {error}"
        );
    }
    assert_eq!(
        migration_versions(&target).await,
        ["20240101000000", "20260101000000"]
    );
    ws.migrun(&[plugin]).expect_code(0);
    assert_eq!(
        migration_versions(&target).await,
        ["20240101000000", "20260101000000"],
        "a rerun records the version once"
    );

    // A version that is not one is refused before anything is written.
    let before = database_checksums(&target.url).await;
    ws.migrun(&[
        plugin,
        "--set",
        "schema_migrations_version=next; DROP TABLE x",
    ])
    .expect_code(2)
    .expect_output("config key `schema_migrations_version` must be a Rails migration version");
    assert_eq!(database_checksums(&target.url).await, before);
}

/// Each check of `verify` fails end to end once, the target tampered with and the run
/// limited to the finished `create-auth-users` (so `copy-users` does not repair the
/// copy first): the ✗ line names what is wrong and the run exits 3. A full run then
/// repairs what `copy-users` owns (rows, the version row); a dropped index stays dropped
/// (the finished unit does not run again) and its check keeps failing.
async fn failing_checks_scenario(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    const N: u32 = 200;
    if dialect == Dialect::MySql {
        migrun_fixtures::seed_auth_users_as_in_seed(&source.url, N, 13)
            .await
            .expect("seed users as in the seed");
    } else {
        migrun_fixtures::seed_auth_users(&source.url, N, 13)
            .await
            .expect("seed users");
    }
    let ws = Workspace::new();
    ws.config(&config(&source.ro_url, &target.url));
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();
    ws.migrun(&[plugin])
        .expect_code(0)
        .expect_output("✓ row counts match")
        .expect_output("✓ sample rows match")
        .expect_output("✓ index on email exists")
        .expect_output("✓ schema_migrations records the migration");
    let verify_only = || ws.migrun(&[plugin, "--only", "create-auth-users"]);
    let first = user_id(N, 13, 0);

    // Row counts: a row the source does not hold.
    target
        .exec("INSERT INTO auth_users (id, name) VALUES (990000, 'stray')")
        .await;
    verify_only()
        .expect_code(3)
        .expect_output(&format!(
            "✗ row counts match — users: {N}, auth_users: {}",
            N + 1
        ))
        .expect_output("✓ sample rows match");
    target
        .exec("DELETE FROM auth_users WHERE id = 990000")
        .await;

    // The sample: the first user (always sampled) changed in the copy.
    target
        .exec(&format!(
            "UPDATE auth_users SET email = 'tampered@example.org' WHERE id = {first}"
        ))
        .await;
    verify_only()
        .expect_code(3)
        .expect_output("✓ row counts match")
        .expect_output("✗ sample rows match")
        .expect_output(&format!("id {first}, column email: users has"));

    // The migration's row.
    target
        .exec("DELETE FROM schema_migrations WHERE version = '20251102064247'")
        .await;
    verify_only().expect_code(3).expect_output(
        "✗ schema_migrations records the migration — no row with version 20251102064247",
    );

    // A full run re-syncs the row and records the version again.
    ws.migrun(&[plugin])
        .expect_code(0)
        .expect_output("✓ sample rows match")
        .expect_output("✓ schema_migrations records the migration");

    // The four indexes, each dropped.
    for (index, check) in [
        ("index_auth_users_on_email", "index on email exists"),
        (
            "index_auth_users_on_provider_and_uid",
            "index on provider+uid exists",
        ),
        (
            "index_auth_users_on_reset_password_token",
            "index on reset_password_token exists",
        ),
        (
            "index_auth_users_on_unlock_token",
            "index on unlock_token exists",
        ),
    ] {
        target
            .exec(&match dialect {
                Dialect::MySql => format!("DROP INDEX {index} ON auth_users"),
                _ => format!("DROP INDEX {index}"),
            })
            .await;
        verify_only()
            .expect_code(3)
            .expect_output(&format!("✗ {check} — no UNIQUE index on ("));
    }
    ws.migrun(&[plugin])
        .expect_code(3)
        .expect_output("✗ index on email exists")
        .expect_output("✓ row counts match");
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_each_verify_check_fails_once_sqlite() {
    failing_checks_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_each_verify_check_fails_once_postgres() {
    failing_checks_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_each_verify_check_fails_once_mysql() {
    failing_checks_scenario(Dialect::MySql).await;
}

/// The seed's risk "schema mismatch": a target that already has an `auth_users` lacking a
/// column is refused before anything is written — the run fails naming the missing
/// columns, no row is copied, no `schema_migrations` is created, the ledger records nothing.
async fn schema_mismatch_scenario(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 50, 3)
        .await
        .expect("seed users");
    target
        .exec("CREATE TABLE auth_users (id INTEGER PRIMARY KEY, email VARCHAR(255))")
        .await;
    let ws = Workspace::new();
    ws.config(&config(&source.ro_url, &target.url));
    let plugin = plugins::plugin("auth-consolidation");
    ws.migrun(&[plugin.to_str().unwrap()])
        .expect_code(1)
        .expect_output("auth_users already exists but lacks the columns")
        .expect_output("encrypted_password");
    assert_eq!(
        rows(&target, "SELECT COUNT(*) FROM auth_users").await,
        vec![vec![Some("0".to_owned())]],
        "{dialect:?}: nothing was copied"
    );
    let mut conn = target.connect(Access::ReadOnly).await;
    let migrations = conn
        .query("SELECT COUNT(*) FROM schema_migrations", &[])
        .await;
    let ledger = conn
        .query("SELECT COUNT(*) FROM migrun_ledger", &[])
        .await
        .map(|r| r.rows[0][0].canonical_text());
    conn.close().await;
    assert!(
        migrations.is_err(),
        "{dialect:?}: schema_migrations was created"
    );
    // The ledger may exist (created once the run was sure to start), but holds no unit.
    if let Ok(count) = ledger {
        assert_eq!(
            count.as_deref(),
            Some("0"),
            "{dialect:?}: the ledger recorded a unit"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_schema_mismatch_is_refused_before_writing_sqlite() {
    schema_mismatch_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_schema_mismatch_is_refused_before_writing_postgres() {
    schema_mismatch_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seed000_schema_mismatch_is_refused_before_writing_mysql() {
    schema_mismatch_scenario(Dialect::MySql).await;
}
