//! migrun's own state out of the plugin's reach: the run lock, the ledger, the
//! backups, and the server-side locks a runaway statement would keep.
//!
//! The plugin (`sql-attack`) reaches the databases as an ordinary writer and
//! ignores every error; each test asserts what an operator would check: a
//! second run or a restore that waits, ledger rows that say what really
//! happened, `migrun status` flagging a forged row, no lock left on the server
//! after migrun gave up on a statement. See docs/SECURITY.md, "migrun's own
//! state".

use std::time::{Duration, Instant};

use migrun::db::{Access, Connection, Dialect};
use migrun::value::Value;

use crate::support::arena::Arena;
use crate::support::checksum::row_count;
use crate::support::cli::wait_for_line;

/// Forgets every ledger row (as an operator would after a restore), so that the unit runs again.
async fn forget_ledger(arena: &Arena) {
    arena.target.exec("DELETE FROM migrun_ledger").await;
}

/// Runs `statements` as the plugin's role would (the ordinary writer).
async fn as_writer(arena: &Arena, statements: &[&str]) {
    let mut writer = Connection::connect("writer", &arena.target.rw_url, Access::ReadWrite)
        .await
        .unwrap();
    for sql in statements {
        writer
            .execute(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    writer.close().await;
}

/// The statement that keeps the plugin busy on the server for `secs` seconds
/// (on SQLite, a count of tens of millions of generated rows: a few seconds).
fn sleep_sql(dialect: Dialect, secs: u32) -> String {
    match dialect {
        Dialect::Postgres => format!("SELECT pg_sleep({secs})::text"),
        Dialect::MySql => format!("SELECT SLEEP({secs})"),
        Dialect::Sqlite => format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {}) SELECT count(*) FROM c",
            u64::from(secs) * 10_000_000
        ),
    }
}

/// A plugin that releases every lock its session holds cannot let a second run in:
/// the run lock is on a connection only the host uses.
async fn plugin_cannot_release_the_run_lock(dialect: Dialect) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    let release = match dialect {
        Dialect::Postgres => "SELECT pg_advisory_unlock_all()::text",
        _ => "SELECT RELEASE_ALL_LOCKS()",
    };
    let sleep = sleep_sql(dialect, 4);
    arena.configure("target", "run-unit", &[release, &sleep], &[], "ok");
    let plugin = crate::support::plugins::plugin("sql-attack");
    let mut first = arena.ws.spawn(&[plugin.to_str().unwrap()]);
    wait_for_line(&mut first, &format!("{release:?}"));
    let second = arena.migrun(&["--lock-timeout", "1"]);
    second
        .expect_code(2)
        .expect_output("another migrun run holds the lock `migrun:migrun_ledger`");
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the first run finished");
    assert_eq!(
        row_count(&arena.target.url, "migrun_ledger").await,
        1,
        "the unit ran once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_cannot_release_the_run_lock_postgres() {
    plugin_cannot_release_the_run_lock(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_cannot_release_the_run_lock_mysql() {
    plugin_cannot_release_the_run_lock(Dialect::MySql).await;
}

/// `migrun restore` takes the run lock: it waits for a run in progress, then fails
/// naming the holder, and changes nothing.
async fn restore_waits_for_a_running_run(dialect: Dialect) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    // A first run leaves a before-run backup of `victim`.
    arena.configure(
        "target",
        "run-unit",
        &["UPDATE victim SET v = 'first run' WHERE id = 1"],
        &[],
        "ok",
    );
    let out = arena.migrun(&["--json"]);
    out.expect_code(0);
    let backup = out.json()["backups"][0]["id"]
        .as_str()
        .expect("a backup id")
        .to_owned();
    // A second run of the unit (the ledger forgotten, as after a restore) is busy on the target.
    forget_ledger(&arena).await;
    let sleep = sleep_sql(dialect, 4);
    arena.configure(
        "target",
        "run-unit",
        &["UPDATE victim SET v = 'second run' WHERE id = 1", &sleep],
        &[],
        "ok",
    );
    let plugin = crate::support::plugins::plugin("sql-attack");
    let mut running = arena.ws.spawn(&[plugin.to_str().unwrap()]);
    wait_for_line(&mut running, "ok (1): \"UPDATE victim");
    let before = arena.checksums().await;
    // The operator restores as the tables' owner.
    let owner = format!("target={}", arena.target.url);
    let restore = arena.ws.migrun(&[
        "restore",
        &backup,
        "--yes",
        "--lock-timeout",
        "1",
        "--db",
        &owner,
    ]);
    restore
        .expect_code(2)
        .expect_output("another migrun run holds the lock")
        .expect_output("nothing was changed");
    assert_eq!(
        arena.checksums().await,
        before,
        "the refused restore changed data"
    );
    assert_eq!(running.wait().unwrap().code(), Some(0));
    // Once the run is over, the restore goes through.
    arena
        .ws
        .migrun(&["restore", &backup, "--yes", "--db", &owner])
        .expect_code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_waits_for_a_running_run_postgres() {
    restore_waits_for_a_running_run(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_waits_for_a_running_run_mysql() {
    restore_waits_for_a_running_run(Dialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_waits_for_a_running_run_sqlite() {
    restore_waits_for_a_running_run(Dialect::Sqlite).await;
}

/// A trigger on the ledger table (one that deletes the rows a rerun would skip by,
/// say) makes the next run refuse to start, naming it; nothing runs.
async fn a_ledger_with_triggers_is_refused(dialect: Dialect) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    arena.configure(
        "target",
        "run-unit",
        &["UPDATE victim SET v = 'run' WHERE id = 1"],
        &[],
        "ok",
    );
    arena.migrun(&[]).expect_code(0);
    let trigger = match dialect {
        Dialect::Postgres => vec![
            "CREATE FUNCTION forget() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN DELETE FROM migrun_ledger; RETURN NULL; END$$",
            "CREATE TRIGGER forget AFTER INSERT ON migrun_ledger FOR EACH STATEMENT EXECUTE FUNCTION forget()",
        ],
        Dialect::MySql => vec![
            "CREATE TRIGGER forget BEFORE INSERT ON migrun_ledger FOR EACH ROW SET NEW.status = 'finished'",
        ],
        Dialect::Sqlite => vec![
            "CREATE TRIGGER forget AFTER INSERT ON migrun_ledger BEGIN DELETE FROM migrun_ledger; END",
        ],
    };
    // The plugin's own role can do this (it owns what it writes): run as the writer.
    as_writer(&arena, &trigger).await;
    let before = arena.checksums().await;
    let out = arena.migrun(&[]);
    out.expect_code(2)
        .expect_output("has 1 trigger(s) or rule(s)")
        .expect_output("ledger table `migrun_ledger`");
    assert_eq!(arena.checksums().await, before);
}

#[tokio::test]
async fn a_ledger_with_triggers_is_refused_postgres() {
    a_ledger_with_triggers_is_refused(Dialect::Postgres).await;
}

#[tokio::test]
async fn a_ledger_with_triggers_is_refused_mysql() {
    a_ledger_with_triggers_is_refused(Dialect::MySql).await;
}

#[tokio::test]
async fn a_ledger_with_triggers_is_refused_sqlite() {
    a_ledger_with_triggers_is_refused(Dialect::Sqlite).await;
}

/// A plugin that shadows the ledger with a temporary table, or (PostgreSQL) points
/// `search_path` at a ledger of its own, cannot make the host record its unit
/// anywhere but in the real ledger: the unit is recorded there, or not at all.
async fn the_ledger_cannot_be_redirected(dialect: Dialect) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    // The ledger exists before the attack (a first run creates it).
    arena.configure("target", "run-unit", &["SELECT 1"], &[], "ok");
    arena.migrun(&[]).expect_code(0);
    let shadow = match dialect {
        Dialect::Postgres => vec![
            "CREATE SCHEMA decoy",
            "CREATE TABLE decoy.migrun_ledger (LIKE public.migrun_ledger INCLUDING ALL)",
            "SET search_path = decoy, public",
            "CREATE TEMP TABLE migrun_ledger (LIKE public.migrun_ledger INCLUDING ALL)",
        ],
        Dialect::MySql => vec![
            "CREATE TEMPORARY TABLE migrun_ledger (plugin_name VARCHAR(190), unit VARCHAR(190), \
             plugin_sha256 CHAR(64), plugin_version VARCHAR(255), run_id VARCHAR(255), status VARCHAR(255), \
             started_at VARCHAR(255), finished_at VARCHAR(255), rows_written BIGINT, journal_id VARCHAR(255), \
             journal_hash CHAR(64), override_reason VARCHAR(255), checkpoint_state MEDIUMTEXT)",
        ],
        Dialect::Sqlite => {
            vec!["CREATE TEMP TABLE migrun_ledger AS SELECT * FROM main.migrun_ledger WHERE 0"]
        }
    };
    let mut statements = shadow.clone();
    statements.push("UPDATE victim SET v = 'redirected' WHERE id = 1");
    arena.configure("target", "run-unit", &statements, &[], "ok");
    forget_ledger(&arena).await;
    let out = arena.migrun(&[]);
    let ledger_rows = row_count(&arena.target.url, "migrun_ledger").await;
    match dialect {
        // The pinned search_path (pg_temp last) reaches the real ledger.
        Dialect::Postgres => {
            out.expect_code(0);
            assert_eq!(ledger_rows, 1, "the unit's row is in the real ledger");
            assert_eq!(row_count(&arena.target.url, "decoy.migrun_ledger").await, 0);
        }
        // A shadow is refused: the unit fails, rolled back, and is not recorded.
        _ => {
            out.expect_code(1)
                .expect_output("shadows the ledger")
                .expect_output("was rolled back on every connection");
            assert_eq!(ledger_rows, 0, "no row for the shadowed unit");
            let mut conn = arena.target.connect(Access::ReadOnly).await;
            let rows = conn
                .query("SELECT v FROM victim WHERE id = 1", &[])
                .await
                .unwrap();
            conn.close().await;
            assert_eq!(rows.rows, vec![vec![Value::Text("original".into())]]);
        }
    }
}

#[tokio::test]
async fn the_ledger_cannot_be_redirected_postgres() {
    the_ledger_cannot_be_redirected(Dialect::Postgres).await;
}

#[tokio::test]
async fn the_ledger_cannot_be_redirected_mysql() {
    the_ledger_cannot_be_redirected(Dialect::MySql).await;
}

#[tokio::test]
async fn the_ledger_cannot_be_redirected_sqlite() {
    the_ledger_cannot_be_redirected(Dialect::Sqlite).await;
}

/// A ledger row the plugin wrote itself (a forged "finished" unit) is flagged by
/// `migrun status`, which exits 1; the rows migrun wrote verify against their journal.
async fn status_flags_a_forged_ledger_row(dialect: Dialect) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    arena.configure(
        "target",
        "run-unit",
        &["UPDATE victim SET v = 'real' WHERE id = 1"],
        &[],
        "ok",
    );
    arena.migrun(&[]).expect_code(0);
    arena.ws.migrun(&["status"]).expect_code(0);
    // The forgery (by the plugin's role, in an earlier run of any plugin) copies the real
    // row's journal and run, and claims another unit.
    let forge = "INSERT INTO migrun_ledger (plugin_name, unit, plugin_sha256, plugin_version, run_id, status, \
                 started_at, finished_at, rows_written, journal_id, journal_hash) \
                 SELECT plugin_name, 'never-ran', plugin_sha256, plugin_version, run_id, status, started_at, \
                 finished_at, 0, journal_id, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' \
                 FROM migrun_ledger";
    as_writer(&arena, &[forge]).await;
    let status = arena.ws.migrun(&["status"]);
    status
        .expect_code(1)
        .expect_output("⚠ never-ran")
        .expect_output("NOT WRITTEN BY MIGRUN AS IT IS")
        .expect_output("✓ attack");
    let json = arena.ws.migrun(&["status", "--json"]).json();
    let target = json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["connection"] == "target")
        .unwrap();
    let anchors = target["anchors"].as_array().cloned().unwrap_or_default();
    assert!(
        anchors.iter().any(|a| a["anchor"] == "not-in-journal"),
        "{json}"
    );
}

#[tokio::test]
async fn status_flags_a_forged_ledger_row_postgres() {
    status_flags_a_forged_ledger_row(Dialect::Postgres).await;
}

#[tokio::test]
async fn status_flags_a_forged_ledger_row_sqlite() {
    status_flags_a_forged_ledger_row(Dialect::Sqlite).await;
}

/// A statement that holds a lock and then runs past the plugin's wall-clock limit:
/// migrun stops, and no lock is left on the server afterwards (the server's own
/// statement limit, and the host's cancel, end the statement).
async fn no_lock_outlives_the_run(dialect: Dialect) {
    let Some(arena) = Arena::new(dialect).await else {
        return;
    };
    let lock = match dialect {
        Dialect::Postgres => "LOCK TABLE victim IN ACCESS EXCLUSIVE MODE",
        _ => "SELECT * FROM victim FOR UPDATE",
    };
    let sleep = sleep_sql(dialect, 600);
    arena.configure("target", "run-unit", &[lock, &sleep], &[], "ok");
    let started = Instant::now();
    let out = arena.migrun(&["--timeout-secs", "2", "--no-backup"]);
    out.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "migrun waited for the 600 s statement"
    );
    // Right after migrun exits, another session can take the lock at once.
    let mut other = arena.target.connect(Access::ReadWrite).await;
    let (set, write) = match dialect {
        Dialect::Postgres => (
            "SET lock_timeout = '5s'",
            "UPDATE victim SET v = 'free' WHERE id = 1",
        ),
        _ => (
            "SET SESSION innodb_lock_wait_timeout = 5",
            "UPDATE victim SET v = 'free' WHERE id = 1",
        ),
    };
    other.execute(set, &[]).await.unwrap();
    other
        .execute(write, &[])
        .await
        .expect("the lock taken by the stopped plugin is gone");
    let busy = match dialect {
        Dialect::Postgres => {
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active'"
        }
        _ => {
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE 'SELECT SLEEP%'"
        }
    };
    let rows = other.query(busy, &[]).await.unwrap();
    assert_eq!(
        rows.rows[0][0],
        Value::Int(0),
        "the sleeping statement still runs"
    );
    other.close().await;
}

#[tokio::test]
async fn no_lock_outlives_the_run_postgres() {
    no_lock_outlives_the_run(Dialect::Postgres).await;
}

#[tokio::test]
async fn no_lock_outlives_the_run_mysql() {
    no_lock_outlives_the_run(Dialect::MySql).await;
}

/// A plugin that ends the host's lock connection (same role, so PostgreSQL lets it:
/// `pg_terminate_backend`) gets no unit committed: the lock is checked before every
/// commit, and a lost lock fails the unit, rolled back.
#[tokio::test]
async fn plugin_ending_the_lock_connection_commits_nothing_postgres() {
    let Some(arena) = Arena::new(Dialect::Postgres).await else {
        return;
    };
    let kill = "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity \
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = current_user";
    arena.configure(
        "target",
        "run-unit",
        &[
            "UPDATE victim SET v = 'with the lock gone' WHERE id = 1",
            kill,
        ],
        &[],
        "ok",
    );
    let before = arena.checksums().await;
    let out = arena.migrun(&[]);
    out.expect_code(1)
        .expect_output("the run lock was lost")
        .expect_output("was rolled back on every connection");
    assert_eq!(
        arena.checksums().await,
        before,
        "the unit committed without its lock"
    );
}

/// The same when something else ends the lock connection while the unit runs
/// (MariaDB `KILL` by another session of the same account).
#[tokio::test(flavor = "multi_thread")]
async fn losing_the_lock_connection_commits_nothing_mysql() {
    let Some(arena) = Arena::new(Dialect::MySql).await else {
        return;
    };
    let sleep = sleep_sql(Dialect::MySql, 3);
    arena.configure(
        "target",
        "run-unit",
        &[
            "UPDATE victim SET v = 'with the lock gone' WHERE id = 1",
            &sleep,
        ],
        &[],
        "ok",
    );
    let before = arena.checksums().await;
    let plugin = crate::support::plugins::plugin("sql-attack");
    let mut child = arena.ws.spawn(&[plugin.to_str().unwrap()]);
    wait_for_line(&mut child, "\"UPDATE victim");
    // The lock connection: the run's idle session on the target database.
    let mut admin = arena.target.connect(Access::ReadWrite).await;
    let rows = admin
        .query(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() \
             AND ID <> CONNECTION_ID() AND COMMAND = 'Sleep'",
            &[],
        )
        .await
        .unwrap();
    assert!(!rows.rows.is_empty(), "no idle session of the run");
    for row in &rows.rows {
        admin
            .execute(&format!("KILL {}", row[0]), &[])
            .await
            .unwrap();
    }
    admin.close().await;
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("the run lock was lost"), "{stdout}");
    assert_eq!(
        arena.checksums().await,
        before,
        "the unit committed without its lock"
    );
}

#[tokio::test]
async fn status_flags_a_forged_ledger_row_mysql() {
    status_flags_a_forged_ledger_row(Dialect::MySql).await;
}
