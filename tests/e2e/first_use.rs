//! What a newcomer meets on first use (issue 22): `status` without a config and with a
//! checkpointed unit, relative paths from another folder, warnings a person can read,
//! output without a terminal, the scaffold's `.gitignore`.

use migrun::db::Dialect;

use crate::backfill::{expanded_sqlite_accounts, rename_config_with};
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;

/// `migrun status --db app=…` needs no migrun.toml (as a run does not), and a unit that
/// stopped after some checkpoints reads as checkpointed, with how far it got and a legend.
#[tokio::test(flavor = "multi_thread")]
async fn status_without_config_shows_a_checkpointed_unit() {
    let Some((db, ws, plugin)) = expanded_sqlite_accounts(500, 0, 0).await else {
        return;
    };
    // The backfill stops before batch 4: three batches committed with their checkpoint.
    ws.config(&rename_config_with(&db, 500, 3, 0, 0));
    ws.migrun(&[&plugin, "--only", "backfill"]).expect_code(1);

    let elsewhere = Workspace::new();
    let db_arg = format!("app={}", db.url);
    let out = elsewhere.migrun(&["status", "--db", &db_arg]);
    out.expect_code(0)
        .expect_output("◐ checkpointed: unfinished, the next run resumes after its last checkpoint")
        .expect_output("✓ expand")
        .expect_output("checkpoint 3 (key 1500, 1500 rows done)");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("  ◐ backfill") && l.contains("checkpoint 3")),
        "{}",
        out.stdout
    );
    let json = elsewhere
        .migrun(&["status", "--db", &db_arg, "--json"])
        .expect_code(0)
        .json();
    let target = &json["targets"][0];
    assert_eq!(target["connection"], "app", "{json}");
    let states = target["checkpoint_states"].as_array().expect("states");
    assert!(
        states
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.starts_with("backfill/1"))),
        "{json}"
    );

    // With nothing to read, status says what it looked for (and still exits 2).
    Workspace::new()
        .migrun(&["status"])
        .expect_code(2)
        .expect_output("no migrun.toml here, no --db name=url");
}

/// Without a config, status reads the embedded SQLite files a run without one wrote.
#[tokio::test(flavor = "multi_thread")]
async fn status_without_config_reads_the_embedded_databases() {
    let Some(_db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let ws = Workspace::new();
    let plugin = crate::support::plugins::plugin("auth-consolidation");
    let data = ws.path().join("migrun-data");
    std::fs::create_dir_all(&data).unwrap();
    let source = format!("sqlite://{}", data.join("source.sqlite").display());
    migrun_fixtures::seed_auth_users(&source, 20, 1)
        .await
        .expect("seed");
    ws.migrun(&[plugin.to_str().unwrap(), "--no-backup"])
        .expect_code(0);
    ws.migrun(&["status"])
        .expect_code(0)
        .expect_output("target  sqlite://migrun-data/target.sqlite")
        .expect_output("✓ copy-users");
}
