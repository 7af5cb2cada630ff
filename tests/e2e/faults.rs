//! Databases and disks that fail under a run: the connection killed by the
//! server mid-run, the server restarted mid-run (a private PostgreSQL or a
//! MariaDB), a unique violation mid-batch, a real deadlock against a
//! concurrent session (with and without `[limits] conflict_retries`), and the
//! journal's disk filling up. In each, the unit in flight is rolled back, the
//! report says what failed and what stayed committed, the tables hold exactly
//! what the ledger says finished, and (where it applies) a rerun finishes the
//! job exactly once. See `docs/SECURITY.md`.

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::row_count;
use crate::support::cli::{Workspace, wait_for_line};
use crate::support::database::TestDatabase;
use crate::support::pg_server::PgServer;
use crate::support::plugins;

async fn killed_connection(dialect: Dialect) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    target
        .exec("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)")
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nunits = 40\nspin = 200000000\n",
        target.url
    ));
    let plugin = plugins::plugin("work-units");
    let mut child = ws.spawn(&[plugin.to_str().unwrap()]);
    // Wait until a few units committed, then kill migrun's session from the server side.
    wait_for_line(&mut child, "▸ unit unit-03");
    let mut admin = target.connect(Access::ReadWrite).await;
    let killed = match dialect {
        Dialect::Postgres => {
            let rows = admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap();
            rows.rows.len()
        }
        Dialect::MySql => {
            let rows = admin
                .query(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()",
                    &[],
                )
                .await
                .unwrap();
            for row in &rows.rows {
                let Value::Int(id) = row[0] else {
                    panic!("{row:?}")
                };
                let _ = admin.execute(&format!("KILL {id}"), &[]).await;
            }
            rows.rows.len()
        }
        Dialect::Sqlite => unreachable!(),
    };
    admin.close().await;
    assert!(killed >= 1, "found migrun's session to kill");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED in unit `unit-"), "{stdout}");
    assert!(stdout.contains("earlier units stay committed"), "{stdout}");

    // What is in the table is exactly what the ledger says finished.
    let logged = row_count(&target.url, "work_log").await;
    let finished = row_count(&target.url, "migrun_ledger").await;
    assert_eq!(
        logged, finished,
        "{dialect:?}: a unit's rows and its ledger row commit together"
    );
    assert!(
        (3..40).contains(&logged),
        "{dialect:?}: {logged} units before the kill"
    );

    // The rerun finishes the job, each unit exactly once.
    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(0);
    assert_eq!(row_count(&target.url, "work_log").await, 40);
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_terminated_by_postgres_mid_run() {
    killed_connection(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_killed_by_mariadb_mid_run() {
    killed_connection(Dialect::MySql).await;
}

/// A unique violation in the middle of a multi-row write: the statement fails with the
/// database's code, the unit rolls back, and the table is exactly as before.
async fn unique_violation_mid_batch(dialect: Dialect, insert: &str, code: &str) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    target
        .exec("CREATE TABLE items (id INTEGER PRIMARY KEY, note VARCHAR(20))")
        .await;
    target
        .exec("INSERT INTO items (id, note) VALUES (5, 'already here')")
        .await;
    let before = crate::support::checksum::table_checksum(&target.url, "items").await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nsql = '''\nINSERT INTO items (id, note) VALUES (100, 'first statement')\n;;\n{insert}\n'''\n",
        target.url
    ));
    let plugin = plugins::plugin("sql-script");
    let out = ws.migrun(&[plugin.to_str().unwrap()]);
    out.expect_code(1)
        .expect_output("FAILED in unit `apply`")
        .expect_output(&format!("(code {code})"))
        .expect_output("unit `apply` was rolled back on every connection");
    assert_eq!(
        crate::support::checksum::table_checksum(&target.url, "items").await,
        before,
        "{dialect:?}: half a batch (or the statement before it) survived"
    );
    // The run started, so its (empty) ledger exists; the failed unit left no row in it.
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_violation_mid_batch_postgres() {
    unique_violation_mid_batch(
        Dialect::Postgres,
        "INSERT INTO items (id, note) SELECT i, 'new' FROM generate_series(1, 10) AS i",
        "23505",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_violation_mid_batch_mysql() {
    unique_violation_mid_batch(
        Dialect::MySql,
        "INSERT INTO items (id, note) VALUES (1, 'a'), (2, 'b'), (5, 'dup'), (6, 'c')",
        "1062",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_violation_mid_batch_sqlite() {
    unique_violation_mid_batch(
        Dialect::Sqlite,
        "INSERT INTO items (id, note) VALUES (1, 'a'), (2, 'b'), (5, 'dup'), (6, 'c')",
        "1555",
    )
    .await;
}

/// A real deadlock between the unit and a concurrent session, with the unit
/// as the victim, under `[limits] conflict_retries = retries`.
///
/// The plugin (`sql-script`) locks row 2, sleeps, then wants row 1. The test's
/// session holds row 1 (and, on MariaDB, enough other rows that InnoDB picks
/// the lighter unit as the victim), waits until the plugin sleeps, and asks for
/// row 2: when the plugin wakes and asks for row 1 the cycle closes with the
/// test's session already waiting, so the plugin's session is the one that
/// detects it (PostgreSQL; the test's own `deadlock_timeout` is 60 s) or is
/// rolled back (MariaDB). The test's session then commits.
///
/// With a retry the unit runs again after the rollback and commits on top of
/// the concurrent change; without one the run fails with the database's code,
/// a hint naming the setting, and only the concurrent change in the table.
async fn deadlock(dialect: Dialect, retries: u32) {
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    target
        .exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        .await;
    for id in 1..=20 {
        target
            .exec(&format!("INSERT INTO accounts (id, n) VALUES ({id}, 0)"))
            .await;
    }
    let sleep = match dialect {
        Dialect::Postgres => "SELECT pg_sleep(3)::text",
        _ => "SELECT SLEEP(3)",
    };
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[limits]\nconflict_retries = {retries}\n[config]\nsql = '''\nUPDATE accounts SET n = n + 1 WHERE id = 2\n;;\n{sleep}\n;;\nUPDATE accounts SET n = n + 10 WHERE id = 1\n'''\n",
        target.url
    ));

    let mut concurrent = target.connect(Access::ReadWrite).await;
    if dialect == Dialect::Postgres {
        concurrent
            .execute("SET deadlock_timeout = '60s'", &[])
            .await
            .unwrap();
    }
    concurrent.begin().await.unwrap();
    // One point update per row: a range or a scan would make InnoDB lock row 2 as well.
    for id in (1..=20).filter(|id| *id != 2) {
        concurrent
            .execute(
                &format!("UPDATE accounts SET n = n + 100 WHERE id = {id}"),
                &[],
            )
            .await
            .unwrap();
    }

    let plugin = plugins::plugin("sql-script");
    let child = ws.spawn(&[plugin.to_str().unwrap(), "--json"]);
    let sleeping = match dialect {
        Dialect::Postgres => {
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active'"
        }
        _ => {
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE 'SELECT SLEEP%'"
        }
    };
    let mut monitor = target.connect(Access::ReadOnly).await;
    let mut polls = 0;
    loop {
        let rows = monitor.query(sleeping, &[]).await.unwrap();
        if rows.rows[0][0] != Value::Int(0) {
            break;
        }
        polls += 1;
        if polls >= 1500 {
            let activity = monitor
                .query(
                    match dialect {
                        Dialect::Postgres => "SELECT query::text FROM pg_stat_activity WHERE datname = current_database()",
                        _ => "SELECT CONCAT(COMMAND, ' | ', COALESCE(STATE, ''), ' | ', COALESCE(INFO, '')) FROM information_schema.PROCESSLIST WHERE DB = DATABASE()",
                    },
                    &[],
                )
                .await
                .unwrap();
            panic!("the plugin never reached its sleep: {:?}", activity.rows);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    monitor.close().await;
    // Blocks until the plugin's session is rolled back as the deadlock victim.
    concurrent
        .execute("UPDATE accounts SET n = n + 1000 WHERE id = 2", &[])
        .await
        .expect("the concurrent session is not the victim");
    concurrent.commit().await.unwrap();
    concurrent.close().await;

    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let values = {
        let mut conn = target.connect(Access::ReadOnly).await;
        let rows = conn
            .query("SELECT n FROM accounts WHERE id IN (1, 2) ORDER BY id", &[])
            .await
            .unwrap();
        conn.close().await;
        rows.rows
    };
    let code = match dialect {
        Dialect::Postgres => "40P01",
        _ => "1213",
    };
    if retries == 0 {
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        let message = report["failure"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("(code {code})")), "{message}");
        assert!(
            message.contains("a conflict: `[limits] conflict_retries` would run the unit again"),
            "{message}"
        );
        let consequence = report["failure"]["consequence"].as_str().unwrap();
        assert!(
            consequence.contains("was rolled back on every connection"),
            "{consequence}"
        );
        // Only the concurrent session's change: nothing of the unit is left.
        assert_eq!(values, vec![vec![Value::Int(100)], vec![Value::Int(1000)]]);
        assert_eq!(row_count(&target.url, "migrun_ledger").await, 0);
    } else {
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        assert_eq!(report["units"][0]["status"], "committed");
        let note = report["units"][0]["note"].as_str().unwrap();
        assert!(
            note.starts_with("run 2 times: conflicts (1) were retried; the last: "),
            "{note}"
        );
        assert!(note.contains(&format!("(code {code})")), "{note}");
        // Both changes, the unit's exactly once.
        assert_eq!(values, vec![vec![Value::Int(110)], vec![Value::Int(1001)]]);
        assert_eq!(row_count(&target.url, "migrun_ledger").await, 1);
        // The journal holds both attempts, and a replay reproduces the retry.
        let journal = ws.path().join(report["journal"]["path"].as_str().unwrap());
        ws.migrun(&["replay", journal.to_str().unwrap()])
            .expect_code(0)
            .expect_output("verified:");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deadlock_is_retried_postgres() {
    deadlock(Dialect::Postgres, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deadlock_without_retries_fails_cleanly_postgres() {
    deadlock(Dialect::Postgres, 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deadlock_is_retried_mysql() {
    deadlock(Dialect::MySql, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deadlock_without_retries_fails_cleanly_mysql() {
    deadlock(Dialect::MySql, 0).await;
}

/// A tmpfs of `size` mounted for the life of the value; `None` (with a note)
/// when this machine cannot mount one, unless `MIGRUN_REQUIRE_DBS=1`.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(SmallDisk { dir }),
            other => {
                assert!(
                    !crate::support::database::require_dbs(),
                    "cannot mount a tmpfs ({other:?}) and MIGRUN_REQUIRE_DBS=1"
                );
                crate::support::skips::skipped(&format!("cannot mount a tmpfs here ({other:?})"));
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// The journal's disk fills up mid-run: the unit writing at that moment fails
/// with an error naming the journal and "No space left", it is rolled back,
/// the unit committed before it stays committed (with its ledger row), and the
/// exit code is 1.
#[tokio::test(flavor = "multi_thread")]
async fn journal_disk_full_mid_run() {
    let Some(source) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    source
        .exec("CREATE TABLE secrets (id INTEGER PRIMARY KEY, v VARCHAR(20))")
        .await;
    // Room for the journal's copy of the plugin and about 256 KiB of journal.
    let plugin = plugins::plugin("hostile");
    let room = std::fs::metadata(&plugin).unwrap().len() / 1024 + 256;
    let Some(disk) = SmallDisk::mount(&format!("{room}k")) else {
        return;
    };
    let ws = Workspace::new();
    ws.config(&format!(
        "journal_dir = \"{}\"\n\n[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n\n[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbehaviour = \"cursor-million\"\n",
        disk.dir.path().display(),
        source.ro_url,
        target.url
    ));
    let source_before = crate::support::checksum::database_checksums(&source.url).await;
    let out = ws.migrun(&[plugin.to_str().unwrap()]);
    out.expect_code(1)
        .expect_output("FAILED in unit `misbehave`: journal ")
        .expect_output("No space left on device")
        .expect_output("unit `misbehave` was rolled back on every connection")
        .expect_output("earlier units stay committed: `setup`");
    // `setup` committed with its ledger row; `misbehave` left nothing.
    assert_eq!(row_count(&target.url, "victim").await, 0);
    assert_eq!(row_count(&target.url, "migrun_ledger").await, 1);
    assert_eq!(
        crate::support::checksum::database_checksums(&source.url).await,
        source_before
    );
    drop(disk);
}

/// A PostgreSQL server of the test's own (`support::pg_server`: initdb into a
/// temporary folder, run as a user that is not root, on a free port), so that
/// restarting it disturbs no other test. `None` (with a note) when this
/// machine cannot run one, unless `MIGRUN_REQUIRE_DBS=1`. Stopped
/// (immediately) when dropped.
struct PrivatePostgres {
    server: PgServer,
    _dir: tempfile::TempDir,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl PrivatePostgres {
    fn start() -> Option<PrivatePostgres> {
        let dir = tempfile::tempdir().unwrap();
        let started =
            PgServer::init(std::path::Path::new(PG_BIN), dir.path()).and_then(
                |server| match server.pg_ctl("start") {
                    true => Ok(server),
                    false => Err("pg_ctl start failed".to_owned()),
                },
            );
        match started {
            Ok(server) => Some(PrivatePostgres { server, _dir: dir }),
            Err(e) => {
                assert!(
                    !crate::support::database::require_dbs(),
                    "cannot start a private PostgreSQL under {PG_BIN} and MIGRUN_REQUIRE_DBS=1: {e}"
                );
                crate::support::skips::skipped(&format!(
                    "cannot start a private PostgreSQL under {PG_BIN}: {e}"
                ));
                None
            }
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    /// `pg_ctl <action>` (start, restart, stop), waiting until it is done.
    fn pg_ctl(&self, action: &str) -> bool {
        self.server.pg_ctl(action)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.server.stop_immediately();
    }
}

/// The server restarts mid-run: the unit in flight fails with a connection
/// error and its transaction is gone with the old server process; the table
/// holds exactly the units the ledger says finished, and a rerun finishes the
/// job, each unit exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn server_restarted_mid_run_postgres() {
    let Some(server) = PrivatePostgres::start() else {
        return;
    };
    let url = server.url();
    {
        let mut admin = migrun::db::Connection::connect("admin", &url, Access::ReadWrite)
            .await
            .unwrap();
        admin
            .execute("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)", &[])
            .await
            .unwrap();
        admin.close().await;
    }
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{url}\"\n[config]\nunits = 40\nspin = 200000000\n"
    ));
    let plugin = plugins::plugin("work-units");
    let mut child = ws.spawn(&[plugin.to_str().unwrap()]);
    wait_for_line(&mut child, "▸ unit unit-03");
    assert!(server.pg_ctl("restart"), "pg_ctl restart");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED in unit `unit-"), "{stdout}");
    assert!(stdout.contains("earlier units stay committed"), "{stdout}");

    let logged = row_count(&url, "work_log").await;
    let finished = row_count(&url, "migrun_ledger").await;
    assert_eq!(
        logged, finished,
        "a unit's rows and its ledger row commit together"
    );
    assert!(
        (3..40).contains(&logged),
        "{logged} units before the restart"
    );

    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(0);
    assert_eq!(row_count(&url, "work_log").await, 40);
    assert_eq!(row_count(&url, "migrun_ledger").await, 40);
}

/// A MariaDB server of the test's own (`mariadb-install-db` into a temporary
/// folder, root without a password over TCP on a free port), so that
/// restarting it disturbs no other test (the shared server on 3306 is left
/// alone). `None` (with a note) when this machine cannot run one, unless
/// `MIGRUN_REQUIRE_DBS=1`. Killed (immediately) when dropped.
struct PrivateMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    process: Option<std::process::Child>,
}

const MARIADBD: &str = "/usr/sbin/mariadbd";

/// Server options shared by `mariadb-install-db` and `mariadbd`: a small redo
/// log, so that the data folder stays small.
const MARIADB_OPTIONS: &[&str] = &["--innodb-log-file-size=8M"];

impl PrivateMariaDb {
    async fn start() -> Option<PrivateMariaDb> {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = PrivateMariaDb {
            dir,
            port,
            process: None,
        };
        let installed = std::process::Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", server.data()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(server.user())
            .args(MARIADB_OPTIONS)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let problem = match installed {
            Ok(s) if s.success() => server.launch().await.err(),
            other => Some(format!("mariadb-install-db: {other:?}")),
        };
        let Some(problem) = problem else {
            return Some(server);
        };
        assert!(
            !crate::support::database::require_dbs(),
            "cannot start a private MariaDB ({problem}) and MIGRUN_REQUIRE_DBS=1"
        );
        crate::support::skips::skipped(&format!("cannot start a private MariaDB ({problem})"));
        None
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// `--user=root` when running as root (mariadbd refuses root otherwise).
    fn user(&self) -> Option<&'static str> {
        use std::os::unix::fs::MetadataExt;
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        root.then_some("--user=root")
    }

    /// The server without a database, for `CREATE DATABASE`.
    fn server_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("{}/migrun_restart", self.server_url())
    }

    /// Runs `mariadbd` on the data folder and waits until it takes connections.
    async fn launch(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("server.log");
        let child = std::process::Command::new(MARIADBD)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data()))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--log-error={}", log.display()))
            .args(self.user())
            .args(MARIADB_OPTIONS)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("{MARIADBD}: {e}"))?;
        let url = self.server_url();
        let process = self.process.insert(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = process.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("{MARIADBD} exited with {status}:\n{log}"));
            }
            match migrun::db::Connection::connect("admin", &url, Access::ReadWrite).await {
                Ok(admin) => {
                    admin.close().await;
                    return Ok(());
                }
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(format!("{MARIADBD} not taking connections: {e}"));
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    /// Stops the server cleanly (SIGTERM, waiting for it to exit), as an
    /// administrator restarting it would.
    fn stop(&mut self) {
        let mut process = self.process.take().expect("the server is running");
        let terminated = std::process::Command::new("kill")
            .args(["-TERM", &process.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(terminated, "kill -TERM {}", process.id());
        process.wait().unwrap();
    }

    async fn restart(&mut self) {
        self.stop();
        if let Err(problem) = self.launch().await {
            panic!("restart the private MariaDB: {problem}");
        }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// The MariaDB twin of `server_restarted_mid_run_postgres`: the server
/// restarts mid-run, the unit in flight fails with a connection error and its
/// transaction is gone with the old server; the table holds exactly the units
/// the ledger says finished, and a rerun finishes the job, each unit exactly
/// once.
#[tokio::test(flavor = "multi_thread")]
async fn server_restarted_mid_run_mysql() {
    let Some(mut server) = PrivateMariaDb::start().await else {
        return;
    };
    let url = server.url();
    {
        let mut admin =
            migrun::db::Connection::connect("admin", &server.server_url(), Access::ReadWrite)
                .await
                .unwrap();
        admin
            .execute(
                "CREATE DATABASE migrun_restart CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
                &[],
            )
            .await
            .unwrap();
        admin.close().await;
        let mut admin = migrun::db::Connection::connect("admin", &url, Access::ReadWrite)
            .await
            .unwrap();
        admin
            .execute("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)", &[])
            .await
            .unwrap();
        admin.close().await;
    }
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{url}\"\n[config]\nunits = 40\nspin = 200000000\n"
    ));
    let plugin = plugins::plugin("work-units");
    let mut child = ws.spawn(&[plugin.to_str().unwrap()]);
    wait_for_line(&mut child, "▸ unit unit-03");
    server.restart().await;
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED in unit `unit-"), "{stdout}");
    // The old server took the connection (and the unit's transaction) with it.
    assert!(stdout.contains("connection `target` failed"), "{stdout}");
    assert!(stdout.contains("earlier units stay committed"), "{stdout}");

    let logged = row_count(&url, "work_log").await;
    let finished = row_count(&url, "migrun_ledger").await;
    assert_eq!(
        logged, finished,
        "a unit's rows and its ledger row commit together"
    );
    assert!(
        (3..40).contains(&logged),
        "{logged} units before the restart"
    );

    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(0);
    assert_eq!(row_count(&url, "work_log").await, 40);
    assert_eq!(row_count(&url, "migrun_ledger").await, 40);
}
