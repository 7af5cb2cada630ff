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

/// Runs `migrun restore <args>` with a terminal (`script` allocates a pty) and types
/// `answer` at its prompt; the exit code and everything the terminal showed. `None`, with
/// a note, when `script` (util-linux) is missing.
fn answer_prompt(ws: &Workspace, args: &str, answer: &str) -> Option<(i32, String)> {
    use std::io::Write as _;
    if !std::process::Command::new("script")
        .args(["-qec", "true", "/dev/null"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return plugins::toolchain_missing("`script` (util-linux) is not installed");
    }
    let command = format!("{} restore {args}", env!("CARGO_BIN_EXE_migrun"));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(ws.path())
        .env_remove("MIGRUN_LOG")
        .env(migrun::runtime::cache::CACHE_DIR_ENV, ws.cache_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run script");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{answer}\n").as_bytes())
        .expect("type the answer");
    let output = child.wait_with_output().expect("script ends");
    Some((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

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

    // At a terminal the prompt lists every table by what happens to it; "n" changes nothing.
    if let Some((code, shown)) = answer_prompt(&ws, &id, "n") {
        assert_eq!(code, 1, "{shown}");
        for line in [
            "overwrite with the backup's rows: log_1, log_2",
            "DROP, not in the backup (created since, by the run or by anyone else; matching log_<n>): log_3, log_9",
            "Proceed? [y/N]",
            "not restored; nothing was changed",
        ] {
            assert!(shown.contains(line), "the prompt shows {line:?}:\n{shown}");
        }
        assert_eq!(data_checksums(&target.url).await, now, "nothing changed");
    }

    // Named: exactly those dropped, and the output says which.
    ws.migrun(&["restore", &id, "--yes", "--drop", "log_3,log_9"])
        .expect_code(0)
        .expect_output("log_9 dropped: it was not in the backup")
        .expect_output("log_3 dropped: it was not in the backup")
        .expect_output("log_1 restored: 3 rows, checksum matches the backup")
        .expect_output("every table matches it");
    assert_eq!(data_checksums(&target.url).await, original);
}

/// Confirming the prompt names what it listed: those tables, and only those, are dropped.
#[tokio::test(flavor = "multi_thread")]
async fn confirming_the_restore_prompt_drops_what_it_listed_sqlite() {
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    target
        .exec("CREATE TABLE log_1 (id INTEGER PRIMARY KEY, line VARCHAR(40))")
        .await;
    target.exec("INSERT INTO log_1 VALUES (1, 'one')").await;
    let ws = Workspace::new();
    ws.config(&script_config(
        &target.url,
        "-- migrun:backup pre log_<n>\n;;\nCREATE TABLE log_3 (id INTEGER PRIMARY KEY)",
        "",
    ));
    let original = data_checksums(&target.url).await;
    ws.migrun(&[plugins::plugin("sql-script").to_str().unwrap()])
        .expect_code(0);
    target
        .exec("CREATE TABLE log_9 (id INTEGER PRIMARY KEY)")
        .await;
    let listed = ws.migrun(&["backup", "list", "--json"]);
    let id = listed.expect_code(0).json()["backups"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let Some((code, shown)) = answer_prompt(&ws, &id, "y") else {
        return;
    };
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("matching log_<n>): log_3, log_9"), "{shown}");
    assert!(
        shown.contains("log_9 dropped: it was not in the backup"),
        "{shown}"
    );
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
