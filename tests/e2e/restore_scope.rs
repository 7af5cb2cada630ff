//! What a restore may drop or overwrite, and who says so: a plugin declaring a
//! catch-all write pattern is refused when its `describe` is read, before any
//! connection is opened; a plugin cannot snapshot under one either; and a full
//! restore names every table it overwrites or drops, never dropping a table
//! created since the backup (by the run, or by the application after it)
//! unless the operator named it. See `docs/SECURITY.md`, "Restore".

use migrun::db::Dialect;

use crate::backup::{data_checksums, script_config};
use crate::support::checksum::database_checksums;
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// `catch-all` declares it writes `<table>` (every table): refused at `describe`, exit 2,
/// naming the pattern; the target's tables, its `victim` rows included, are unchanged, no
/// ledger table, backup or journal entry appears.
async fn catch_all_scenario(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    target
        .exec("CREATE TABLE victim (id INTEGER PRIMARY KEY, note VARCHAR(40))")
        .await;
    target
        .exec("INSERT INTO victim (id, note) VALUES (1, 'keep me'), (2, 'me too')")
        .await;
    let before = database_checksums(&target.url).await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n",
        target.url
    ));
    let plugin = plugins::plugin("catch-all");
    for args in [vec![], vec!["--dry-run"]] {
        let mut all = vec![plugin.to_str().unwrap()];
        all.extend(args);
        ws.migrun(&all)
            .expect_code(2)
            .expect_output("connection `target` declares it writes `<table>`")
            .expect_output("catch-all")
            .expect_output("nothing was changed");
    }
    assert_eq!(
        database_checksums(&target.url).await,
        before,
        "nothing changed, not even a ledger table"
    );
    assert!(
        !ws.path().join("migrun-backups").exists(),
        "no backup taken"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn catch_all_write_pattern_is_refused_at_describe_sqlite() {
    catch_all_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn catch_all_write_pattern_is_refused_at_describe_postgres() {
    catch_all_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn catch_all_write_pattern_is_refused_at_describe_mysql() {
    catch_all_scenario(Dialect::MySql).await;
}

/// The refusal comes before any connection: with targets no server answers, the message is
/// still the catch-all one, not a connection error.
#[tokio::test(flavor = "multi_thread")]
async fn catch_all_write_pattern_is_refused_before_any_connection() {
    let plugin = plugins::plugin("catch-all");
    for url in [
        "postgres://postgres@127.0.0.1:1/nowhere",
        "mysql://root@127.0.0.1:1/nowhere",
    ] {
        let ws = Workspace::new();
        ws.config(&format!(
            "[connections.target]\nurl = \"{url}\"\naccess = \"read-write\"\n"
        ));
        let out = ws.migrun(&[plugin.to_str().unwrap()]);
        out.expect_code(2)
            .expect_output("declares it writes `<table>`")
            .expect_output("catch-all");
        let all = out.all();
        assert!(
            !all.contains("refused (os error") && !all.contains("cannot open connection"),
            "refused before connecting: {all}"
        );
    }
}

/// A plugin's own snapshot under a catch-all (`<t>`, `*`) is refused too (its restore
/// would drop every table created since): the unit fails, rolled back, nothing changed.
async fn catch_all_snapshot_scenario(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    target
        .exec("CREATE TABLE log_1 (id INTEGER PRIMARY KEY, line VARCHAR(40))")
        .await;
    target.exec("INSERT INTO log_1 VALUES (1, 'one')").await;
    let plugin = plugins::plugin("sql-script");
    for pattern in ["<t>", "*", "<a>_<b>"] {
        let before = database_checksums(&target.url).await;
        let ws = Workspace::new();
        let sql = format!("DELETE FROM log_1\n;;\n-- migrun:backup grab {pattern}");
        ws.config(&script_config(&target.url, &sql, ""));
        ws.migrun(&[plugin.to_str().unwrap()])
            .expect_code(1)
            .expect_output(&format!("`{pattern}`"))
            .expect_output("rolled back");
        let after = database_checksums(&target.url).await;
        let data = |m: &std::collections::BTreeMap<String, String>| {
            m.iter()
                .filter(|(t, _)| !t.ends_with("migrun_ledger"))
                .map(|(t, c)| (t.clone(), c.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(data(&after), data(&before), "{pattern}: nothing changed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn catch_all_snapshot_pattern_is_refused_sqlite() {
    catch_all_snapshot_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn catch_all_snapshot_pattern_is_refused_postgres() {
    catch_all_snapshot_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn catch_all_snapshot_pattern_is_refused_mysql() {
    catch_all_snapshot_scenario(Dialect::MySql).await;
}

/// A run snapshots `log_<n>` (log_1, log_2), writes log_1 and creates log_3; afterwards
/// the application creates log_9 with rows of its own. A full restore lists every table:
/// log_1 and log_2 overwritten, log_3 and log_9 dropped as not in the backup. Without
/// `--yes`, and with `--yes` but not naming both, it refuses and nothing changes; named
/// with `--drop`, exactly those are dropped and said so.
async fn created_since_scenario(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    for sql in [
        "CREATE TABLE log_1 (id INTEGER PRIMARY KEY, line VARCHAR(40))",
        "INSERT INTO log_1 VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        "CREATE TABLE log_2 (id INTEGER PRIMARY KEY, line VARCHAR(40))",
        "INSERT INTO log_2 VALUES (1, 'uno')",
    ] {
        target.exec(sql).await;
    }
    let sql = "-- migrun:backup pre log_<n>\n;;\nDELETE FROM log_1 WHERE id > 1\n;;\n\
               CREATE TABLE log_3 (id INTEGER PRIMARY KEY)\n;;\nINSERT INTO log_3 VALUES (7)";
    let ws = Workspace::new();
    ws.config(&script_config(&target.url, sql, ""));
    let original = data_checksums(&target.url).await;
    ws.migrun(&[plugins::plugin("sql-script").to_str().unwrap()])
        .expect_code(0);
    // The application, after the run, keeps its own data in a table the pattern matches.
    target
        .exec("CREATE TABLE log_9 (id INTEGER PRIMARY KEY, line VARCHAR(40))")
        .await;
    target
        .exec("INSERT INTO log_9 VALUES (1, 'the application''s row')")
        .await;
    let listed = ws.migrun(&["backup", "list", "--json"]);
    let id = listed.expect_code(0).json()["backups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["label"] == "pre")
        .expect("the plugin's snapshot")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = data_checksums(&target.url).await;

    // No terminal, no --yes: the full list, and nothing done.
    ws.migrun(&["restore", &id])
        .expect_code(2)
        .expect_output("overwrite with the backup's rows: log_1, log_2")
        .expect_output("DROP, not in the backup")
        .expect_output("log_3, log_9")
        .expect_output("--drop log_3,log_9")
        .expect_output("nothing was changed");
    assert_eq!(data_checksums(&target.url).await, now);

    // --yes alone, or naming only the run's table: refused, naming the rest.
    ws.migrun(&["restore", &id, "--yes"])
        .expect_code(2)
        .expect_output("log_3, log_9")
        .expect_output("--drop log_3,log_9")
        .expect_output("Nothing was changed");
    ws.migrun(&["restore", &id, "--yes", "--drop", "log_3"])
        .expect_code(2)
        .expect_output(
            "not in the backup (created since it was taken, by the run or by anyone else): log_9.",
        )
        .expect_output("--drop log_9");
    ws.migrun(&["restore", &id, "--yes", "--drop", "log_3,log_9,log_1"])
        .expect_code(2)
        .expect_output("--drop log_1: not a table this restore would drop");
    assert_eq!(data_checksums(&target.url).await, now, "nothing changed");

    // Named: exactly those dropped, and the output says which.
    ws.migrun(&["restore", &id, "--yes", "--drop", "log_3,log_9"])
        .expect_code(0)
        .expect_output("log_9 dropped: it was not in the backup")
        .expect_output("log_3 dropped: it was not in the backup")
        .expect_output("log_1 restored: 3 rows, checksum matches the backup")
        .expect_output("every table matches it");
    assert_eq!(data_checksums(&target.url).await, original);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_never_drops_a_table_created_since_unless_named_sqlite() {
    created_since_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_never_drops_a_table_created_since_unless_named_postgres() {
    created_since_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_never_drops_a_table_created_since_unless_named_mysql() {
    created_since_scenario(Dialect::MySql).await;
}
