//! The sandbox holds: a plugin that loops, allocates, recurses, crashes,
//! writes through a read-only connection by any route, tries to end the unit
//! transaction, reaches for server files, injects SQL through parameters or
//! sends and asks for oversized values is stopped with a clear error (or, for
//! the harmless cases, changes only what it may), its unit is rolled back, and
//! no table changes. See `docs/SECURITY.md` for the list and what each proves.

use std::collections::BTreeMap;

use migrun::db::Dialect;

use crate::support::checksum::database_checksums;
use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

struct Hostile {
    ws: Workspace,
    source: TestDatabase,
    target: TestDatabase,
}

impl Hostile {
    /// A source with one table, a target with the `victim` table created by the plugin's `setup` unit.
    async fn new(dialect: Dialect, behaviour: &str) -> Option<Hostile> {
        let hostile = Hostile::without_setup(dialect, behaviour).await?;
        hostile.migrun(&["--only", "setup"]).expect_code(0);
        Some(hostile)
    }

    /// The same, before `setup` has run.
    async fn without_setup(dialect: Dialect, behaviour: &str) -> Option<Hostile> {
        let source = TestDatabase::create(dialect).await?;
        let target = TestDatabase::create(dialect).await?;
        source
            .exec("CREATE TABLE secrets (id INTEGER PRIMARY KEY, v VARCHAR(20))")
            .await;
        source
            .exec("INSERT INTO secrets (id, v) VALUES (1, 'keep me')")
            .await;
        // The routes around read-only access (`write-readonly`, `readonly-routes`) must be
        // refused by migrun's session and guards even for a role that could do anything
        // (a least-privilege role would have the server refuse them for lack of grants,
        // proving nothing about migrun): those behaviours read the source as the
        // superuser, which migrun refuses at start unless `allow_privileged` says the
        // operator accepts it. Every other behaviour reads it as the least-privilege reader.
        let privileged = matches!(behaviour, "write-readonly" | "readonly-routes");
        let (source_url, allow) = if privileged {
            (&source.url, "allow_privileged = true\n")
        } else {
            (&source.ro_url, "")
        };
        let ws = Workspace::new();
        ws.config(&format!(
            "[connections.source]\nurl = \"{source_url}\"\naccess = \"read-only\"\n{allow}\n[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbehaviour = \"{behaviour}\"\n",
            target.url
        ));
        Some(Hostile { ws, source, target })
    }

    fn migrun(&self, args: &[&str]) -> Outcome {
        let plugin = plugins::plugin("hostile");
        let mut all = vec![plugin.to_str().unwrap()];
        all.extend_from_slice(args);
        self.ws.migrun(&all)
    }

    async fn checksums(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        (
            database_checksums(&self.source.url).await,
            database_checksums(&self.target.url).await,
        )
    }

    /// Runs `misbehave` and asserts it failed with `message`, rolled back, and changed nothing.
    async fn expect_stopped(&self, args: &[&str], message: &str) -> Outcome {
        let before = self.checksums().await;
        let mut all = vec!["--only", "misbehave"];
        all.extend_from_slice(args);
        let out = self.migrun(&all);
        out.expect_code(1)
            .expect_output("FAILED in unit `misbehave`")
            .expect_output(message)
            .expect_output("unit `misbehave` was rolled back on every connection");
        assert_eq!(
            self.checksums().await,
            before,
            "a stopped unit changed data"
        );
        out
    }
}

/// The limits hold on every dialect: the unit wrote a row through a server
/// connection (PostgreSQL, MariaDB) or a file (SQLite) before it misbehaved, and the
/// stop rolls that row back there too.
async fn endless_loop_runs_out_of_fuel(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "loop").await else {
        return;
    };
    h.expect_stopped(&["--fuel", "200000000"], "fuel limit exhausted")
        .await;
}

async fn endless_loop_hits_the_wall_clock_timeout(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "loop").await else {
        return;
    };
    let started = std::time::Instant::now();
    h.expect_stopped(
        &["--fuel", "1000000000000000", "--timeout-secs", "2"],
        "timeout: the call ran longer than 2 s",
    )
    .await;
    assert!(
        started.elapsed().as_secs() < 60,
        "{dialect:?}: the timeout did not stop the loop promptly"
    );
}

async fn memory_bomb_hits_the_memory_limit(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "alloc").await else {
        return;
    };
    h.expect_stopped(&["--memory-mib", "64"], "memory limit exceeded")
        .await;
}

async fn panic_is_reported_with_its_message(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "trap").await else {
        return;
    };
    h.expect_stopped(&[], "the plugin crashed")
        .await
        .expect_output("panicked");
}

async fn unbounded_recursion_is_a_stack_overflow(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "recurse").await else {
        return;
    };
    h.expect_stopped(&[], "stack overflow").await;
}

/// One test per limit and dialect.
macro_rules! on_every_dialect {
    ($($limit:ident),* $(,)?) => {
        $(
            mod $limit {
                use super::*;

                #[tokio::test(flavor = "multi_thread")]
                async fn sqlite() {
                    super::$limit(Dialect::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn postgres() {
                    super::$limit(Dialect::Postgres).await;
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn mysql() {
                    super::$limit(Dialect::MySql).await;
                }
            }
        )*
    };
}

on_every_dialect!(
    endless_loop_runs_out_of_fuel,
    endless_loop_hits_the_wall_clock_timeout,
    memory_bomb_hits_the_memory_limit,
    panic_is_reported_with_its_message,
    unbounded_recursion_is_a_stack_overflow,
);

async fn read_only_is_enforced(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "write-readonly").await else {
        return;
    };
    h.expect_stopped(&[], "read-only").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_connection_refuses_writes_sqlite() {
    read_only_is_enforced(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_connection_refuses_writes_postgres() {
    read_only_is_enforced(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_connection_refuses_writes_mysql() {
    read_only_is_enforced(Dialect::MySql).await;
}

/// The control case: the same plugin, behaving, commits its row.
#[tokio::test(flavor = "multi_thread")]
async fn well_behaved_unit_commits() {
    let Some(h) = Hostile::new(Dialect::Sqlite, "ok").await else {
        return;
    };
    let before = h.checksums().await;
    h.migrun(&["--only", "misbehave"]).expect_code(0);
    assert_ne!(
        h.checksums().await.1,
        before.1,
        "the ok unit should have written its row"
    );
}

/// A failing unit rolls back alone: the unit before it in the same run stays committed.
#[tokio::test(flavor = "multi_thread")]
async fn earlier_units_stay_committed_when_a_later_one_fails() {
    for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
        let Some(h) = Hostile::without_setup(dialect, "trap").await else {
            continue;
        };
        let out = h.migrun(&["--json"]);
        out.expect_code(1);
        let report = out.json();
        assert_eq!(report["units"][0]["status"], "committed", "{dialect:?}");
        assert_eq!(report["units"][1]["status"], "failed", "{dialect:?}");
        let consequence = report["failure"]["consequence"].as_str().unwrap();
        assert!(
            consequence.contains("earlier units stay committed: `setup`"),
            "{consequence}"
        );
        // `setup` created the table and committed; `misbehave`'s row was rolled back.
        assert_eq!(
            crate::support::checksum::row_count(&h.target.url, "victim").await,
            0,
            "{dialect:?}"
        );
    }
}

/// Every WASI door besides the host's capabilities is shut, and the clock and randomness
/// the plugin sees are the run's seeded stand-ins (recorded, so replay reproduces them).
///
/// The guest's own ✓ is not the evidence: the test plants things on the host the plugin
/// must not reach — a file with a secret, an environment variable, text on migrun's
/// stdin, a listening TCP port — and checks from the host side that none was reached:
/// the listener saw no connection, no file appeared, and no secret shows anywhere in the
/// report, the output or the journal (the probe echoes whatever it obtained into its
/// check details, so a leak would be recorded there).
#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_shuts_every_door_and_hands_over_only_seeded_clock_and_randomness() {
    let mut seen = Vec::new();
    for round in 0..2 {
        // A fresh target each time: the ledger would skip a unit that finished.
        let Some(h) = Hostile::new(Dialect::Sqlite, "escape").await else {
            return;
        };
        let nonce = format!(
            "{}-{round}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let (file_secret, env_secret, stdin_secret) = (
            format!("planted-file-{nonce}"),
            format!("planted-env-{nonce}"),
            format!("planted-stdin-{nonce}"),
        );
        let planted = h.ws.path().join("planted.txt");
        std::fs::write(&planted, &file_secret).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = std::fs::read_to_string(h.ws.path().join("migrun.toml")).unwrap();
        h.ws.config(&format!(
            "{config}probe_file = {:?}\nprobe_port = \"{port}\"\n",
            planted.to_str().unwrap()
        ));

        let plugin = plugins::plugin("hostile");
        let out = h.ws.migrun_with_input(
            &[plugin.to_str().unwrap(), "--only", "misbehave", "--json"],
            &[("MIGRUN_SANDBOX_CANARY", env_secret.as_str())],
            stdin_secret.as_bytes(),
        );
        let report = out.expect_code(0).json();
        let checks = report["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 10, "{}", out.stdout);
        for check in checks {
            assert_eq!(check["ok"], true, "a door opened: {check}");
        }
        let journal =
            h.ws.path()
                .join(report["journal"]["path"].as_str().unwrap());
        let entries =
            h.ws.migrun(&["journal", "show", "--json", journal.to_str().unwrap()]);
        entries.expect_code(0);
        assert!(
            entries
                .stdout
                .contains("the host's planted file cannot be read")
                && entries
                    .stdout
                    .contains("the host's listening port is unreachable"),
            "the journal records the probe's checks with their details: {}",
            entries.stdout
        );
        for secret in [&file_secret, &env_secret, &stdin_secret] {
            assert!(
                !out.all().contains(secret.as_str()) && !entries.stdout.contains(secret.as_str()),
                "the plugin obtained {secret:?}: {}\n{}",
                out.all(),
                entries.stdout
            );
        }
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the plugin reached the host's port: {other:?}"),
        }
        let fields = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["message"] == "the sandbox's clock and randomness")
            .expect("the probe logged what it saw")["fields"]
            .clone();
        let field = |name: &str| -> u128 {
            fields
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f[0] == name)
                .unwrap()[1]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        };
        let start = u128::from(report["seeds"]["clock_start_unix_nanos"].as_u64().unwrap());
        let clock = field("wall_clock_nanos");
        assert!(
            clock >= start && clock < start + 1_000_000,
            "the clock is the seeded one: {clock} vs {start}"
        );
        seen.push(field("random"));
        h.ws.migrun(&["replay", journal.to_str().unwrap()])
            .expect_code(0)
            .expect_output("verified:");
        assert!(
            !h.ws.path().join("escaped.txt").exists(),
            "nothing was written outside the sandbox"
        );
    }
    assert_ne!(seen[0], seen[1], "each run gets fresh seeds");
}

/// Objects on `source` the routes of `readonly-routes` aim at: a sequence and
/// functions/procedures that write (see the hostile plugin's `routes`).
async fn prepare_routes(h: &Hostile, dialect: Dialect) {
    match dialect {
        Dialect::Postgres => {
            h.source.exec("CREATE SEQUENCE secrets_seq").await;
            h.source
                .exec(
                    "CREATE FUNCTION bump_secrets() RETURNS integer VOLATILE LANGUAGE plpgsql AS $$ \
                     BEGIN INSERT INTO secrets (id, v) VALUES (667, 'function'); RETURN 1; END $$",
                )
                .await;
        }
        Dialect::MySql => {
            h.source
                .exec(
                    "CREATE FUNCTION bump_secrets() RETURNS INT MODIFIES SQL DATA \
                     BEGIN INSERT INTO secrets (id, v) VALUES (667, 'function'); RETURN 1; END",
                )
                .await;
            h.source
                .exec(
                    "CREATE PROCEDURE bump_proc() MODIFIES SQL DATA \
                     BEGIN INSERT INTO secrets (id, v) VALUES (668, 'procedure'); END",
                )
                .await;
        }
        Dialect::Sqlite => {}
    }
}

/// Every route around read-only access and the unit transaction the hostile
/// plugin knows is refused (one check per route), the unit is rolled back as a
/// whole (so no route ended it early: row 1000 is gone), no table changed and
/// no file appeared where the file-writing routes aimed.
async fn every_route_is_refused(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "readonly-routes").await else {
        return;
    };
    prepare_routes(&h, dialect).await;
    let escape = std::path::PathBuf::from(format!(
        "/tmp/migrun-hostile-escape-{}",
        match dialect {
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    ));
    let _ = std::fs::remove_file(&escape);
    let before = h.checksums().await;
    let out = h.migrun(&["--only", "misbehave", "--json"]);
    out.expect_code(1);
    let report = out.json();
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 15, "{dialect:?}: {} routes", checks.len());
    let through: Vec<String> = checks
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| format!("{} → {}", c["name"], c["detail"]))
        .collect();
    assert!(
        through.is_empty(),
        "{dialect:?}: routes got through: {through:#?}"
    );
    let message = report["failure"]["message"].as_str().unwrap();
    assert!(message.contains("none got through"), "{message}");
    assert_eq!(
        h.checksums().await,
        before,
        "{dialect:?}: a route changed data"
    );
    assert_eq!(
        crate::support::checksum::row_count(&h.target.url, "victim").await,
        0,
        "{dialect:?}: row 1000 survived: a route ended the unit's transaction early"
    );
    assert!(!escape.exists(), "{dialect:?}: a route wrote {escape:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_around_read_only_is_refused_postgres() {
    every_route_is_refused(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_around_read_only_is_refused_mysql() {
    every_route_is_refused(Dialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_around_read_only_is_refused_sqlite() {
    every_route_is_refused(Dialect::Sqlite).await;
}

/// The payloads the hostile plugin binds (its `INJECTIONS`), in order.
const INJECTIONS: [&str; 12] = [
    "'; DROP TABLE victim; --",
    "' OR '1'='1",
    "Robert'); DROP TABLE secrets;--",
    "\\'; DROP TABLE victim; #",
    "$$; DROP TABLE victim; $$",
    "1; DELETE FROM victim",
    "\" OR \"\"=\"",
    "%' AND 1=0 UNION SELECT v FROM secrets --",
    "\u{2019}; DROP TABLE victim; --",
    "?",
    "$1",
    "/*! DROP TABLE victim */",
];

/// SQL injection through parameters: every payload is stored verbatim, found
/// again by parameter, and both tables are intact.
async fn injection_is_inert(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "inject").await else {
        return;
    };
    let source_before = h.checksums().await.0;
    let out = h.migrun(&["--only", "misbehave", "--json"]);
    out.expect_code(0);
    for check in out.json()["checks"].as_array().unwrap() {
        assert_eq!(check["ok"], true, "{dialect:?}: {check}");
    }
    assert_eq!(h.checksums().await.0, source_before, "{dialect:?}");
    let mut conn = h.target.connect(migrun::db::Access::ReadOnly).await;
    let rows = conn
        .query(
            "SELECT id, note FROM victim WHERE id >= 2000 ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    conn.close().await;
    let stored: Vec<String> = rows
        .rows
        .iter()
        .map(|r| match &r[1] {
            migrun::value::Value::Text(s) => s.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(stored, INJECTIONS, "{dialect:?}: stored verbatim, in order");
    // `victim` kept its committed row 1000 too; `secrets` still holds its row.
    assert_eq!(
        crate::support::checksum::row_count(&h.target.url, "victim").await,
        1 + INJECTIONS.len() as i64
    );
    assert_eq!(
        crate::support::checksum::row_count(&h.source.url, "secrets").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_injection_through_parameters_is_inert_postgres() {
    injection_is_inert(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_injection_through_parameters_is_inert_mysql() {
    injection_is_inert(Dialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_injection_through_parameters_is_inert_sqlite() {
    injection_is_inert(Dialect::Sqlite).await;
}

/// A 64 MiB text parameter: PostgreSQL and SQLite store it whole (and the
/// plugin reads its length back); MariaDB refuses it (its packets stop at
/// `max_allowed_packet`, 16 MiB here) with a clear error, the unit is rolled
/// back and no table changed. The host survives either way.
async fn oversized_parameter(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "oversized-param").await else {
        return;
    };
    match dialect {
        Dialect::MySql => {
            h.expect_stopped(
                &["--memory-mib", "512"],
                "more than the server accepts in one packet (max_allowed_packet = 16 MiB); nothing was sent",
            )
            .await;
        }
        _ => {
            h.migrun(&["--only", "misbehave", "--memory-mib", "512"])
                .expect_code(0)
                .expect_output("committed");
            let mut conn = h.target.connect(migrun::db::Access::ReadOnly).await;
            let rows = conn
                .query("SELECT LENGTH(note) FROM victim WHERE id = 1001", &[])
                .await
                .unwrap();
            conn.close().await;
            assert_eq!(rows.rows, vec![vec![migrun::value::Value::Int(64 << 20)]]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_parameter_postgres() {
    oversized_parameter(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_parameter_mysql() {
    oversized_parameter(Dialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_parameter_sqlite() {
    oversized_parameter(Dialect::Sqlite).await;
}

/// A `query` result bigger than the plugin's memory limit (80 MiB against
/// 64 MiB) is refused by the host before it is handed over, with an error
/// that names the cap and the way out (a cursor); the unit is rolled back.
async fn oversized_result(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "oversized-row").await else {
        return;
    };
    h.expect_stopped(
        &["--memory-mib", "64"],
        "the query's result passed 64 MiB after",
    )
    .await
    .expect_output("read it through a cursor");
}

#[tokio::test(flavor = "multi_thread")]
async fn result_bigger_than_the_memory_limit_is_refused_postgres() {
    oversized_result(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn result_bigger_than_the_memory_limit_is_refused_mysql() {
    oversized_result(Dialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn result_bigger_than_the_memory_limit_is_refused_sqlite() {
    oversized_result(Dialect::Sqlite).await;
}

/// A million rows (≈ 100 MiB of values, generated by the server) read through
/// a cursor under a 16 MiB memory limit: the run succeeds and the plugin saw
/// every row once. The same rows through a plain `query` are refused by the
/// host's result cap with a clear error instead of exhausting memory.
async fn million_rows(dialect: Dialect) {
    let Some(h) = Hostile::new(dialect, "cursor-million").await else {
        return;
    };
    let out = h.migrun(&["--only", "misbehave", "--memory-mib", "16", "--json"]);
    out.expect_code(0);
    let report = out.json();
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{}", out.stdout);
    assert_eq!(checks[0]["ok"], true, "{}", checks[0]);

    let Some(h) = Hostile::new(dialect, "query-million").await else {
        return;
    };
    h.expect_stopped(
        &["--memory-mib", "16"],
        "the query's result passed 16 MiB after",
    )
    .await
    .expect_output("read it through a cursor");
}

#[tokio::test(flavor = "multi_thread")]
async fn million_row_cursor_in_bounded_memory_postgres() {
    million_rows(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn million_row_cursor_in_bounded_memory_mysql() {
    million_rows(Dialect::MySql).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn million_row_cursor_in_bounded_memory_sqlite() {
    million_rows(Dialect::Sqlite).await;
}
