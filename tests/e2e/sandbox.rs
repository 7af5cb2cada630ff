//! The sandbox holds: a plugin that loops, allocates, recurses, crashes or
//! writes through a read-only connection is stopped with a clear error, its
//! unit is rolled back, and no table changes.

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
        let ws = Workspace::new();
        ws.config(&format!(
            "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n\n[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\nbehaviour = \"{behaviour}\"\n",
            source.url, target.url
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

#[tokio::test(flavor = "multi_thread")]
async fn endless_loop_runs_out_of_fuel() {
    let Some(h) = Hostile::new(Dialect::Sqlite, "loop").await else {
        return;
    };
    h.expect_stopped(&["--fuel", "200000000"], "fuel limit exhausted")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_loop_hits_the_wall_clock_timeout() {
    let Some(h) = Hostile::new(Dialect::Sqlite, "loop").await else {
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
        "the timeout did not stop the loop promptly"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_hits_the_memory_limit() {
    let Some(h) = Hostile::new(Dialect::Sqlite, "alloc").await else {
        return;
    };
    h.expect_stopped(&["--memory-mib", "64"], "memory limit exceeded")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_is_reported_with_its_message() {
    let Some(h) = Hostile::new(Dialect::Sqlite, "trap").await else {
        return;
    };
    h.expect_stopped(&[], "the plugin crashed")
        .await
        .expect_output("panicked");
}

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_recursion_is_a_stack_overflow() {
    let Some(h) = Hostile::new(Dialect::Sqlite, "recurse").await else {
        return;
    };
    h.expect_stopped(&[], "stack overflow").await;
}

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
#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_shuts_every_door_and_hands_over_only_seeded_clock_and_randomness() {
    let mut seen = Vec::new();
    for _ in 0..2 {
        // A fresh target each time: the ledger would skip a unit that finished.
        let Some(h) = Hostile::new(Dialect::Sqlite, "escape").await else {
            return;
        };
        let out = h.migrun(&["--only", "misbehave", "--json"]);
        let report = out.expect_code(0).json();
        let checks = report["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 8, "{}", out.stdout);
        for check in checks {
            assert_eq!(check["ok"], true, "a door opened: {check}");
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
        let journal =
            h.ws.path()
                .join(report["journal"]["path"].as_str().unwrap());
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
