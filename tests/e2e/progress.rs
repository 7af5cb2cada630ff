//! Progress at the scale of many tenants: `--json` events (one JSON line per unit start and
//! finish on stderr, the report still alone on stdout), a log's summary lines over many
//! units, and `migrun status` summing a big ledger up (with `--all` for every row).

use migrun::db::{Access, Dialect};

use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

async fn work_log(dialect: Dialect, units: u32, spin: u64) -> Option<(TestDatabase, Workspace)> {
    let target = TestDatabase::create(dialect).await?;
    target
        .exec("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)")
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nunits = {units}\nspin = {spin}\n",
        target.url
    ));
    Some((target, ws))
}

/// The `migrun.event/1` lines of a run's stderr, parsed.
fn events(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON event ({e}): {l}"))
        })
        .inspect(|e| assert_eq!(e["schema"], "migrun.event/1", "{e}"))
        .collect()
}

/// 25 units, two jobs, one failing with `--keep-going`: one `units` event first, then one
/// `unit-started` and one `unit-finished` per unit (with status, error, and the counts so
/// far), the last saying 25 done, 1 failed, 0 left; stdout is still the JSON report alone.
#[tokio::test(flavor = "multi_thread")]
async fn json_events_one_per_unit_start_and_finish_postgres() {
    let Some((_target, ws)) = work_log(Dialect::Postgres, 25, 1_000_000).await else {
        return;
    };
    let plugin = plugins::plugin("work-units");
    let out = ws.migrun(&[
        plugin.to_str().unwrap(),
        "--jobs",
        "2",
        "--keep-going",
        "--set",
        "fail=unit-04",
        "--json",
    ]);
    let report = out.expect_code(4).json();
    assert_eq!(report["schema"], "migrun.run-report/1");
    let events = events(&out.stderr);
    assert_eq!(events[0]["event"], "units", "{events:?}");
    assert_eq!(events[0]["to_run"], 25);
    assert_eq!(events[0]["selected"], 25);
    for i in 0..25 {
        let unit = format!("unit-{i:02}");
        let of = |kind: &str| -> Vec<&serde_json::Value> {
            events
                .iter()
                .filter(|e| e["event"] == kind && e["unit"] == unit.as_str())
                .collect()
        };
        assert_eq!(of("unit-started").len(), 1, "{unit}: {events:?}");
        let finished = of("unit-finished");
        assert_eq!(finished.len(), 1, "{unit}: {events:?}");
        let end = finished[0];
        assert!(end["duration_ms"].is_u64(), "{end}");
        assert!(end["at"].is_string(), "{end}");
        if i == 4 {
            assert_eq!(end["status"], "failed", "{end}");
            assert!(
                end["error"]
                    .as_str()
                    .unwrap()
                    .contains("unit-04 is configured to fail"),
                "{end}"
            );
        } else {
            assert_eq!(end["status"], "committed", "{end}");
            assert!(end.get("error").is_none(), "{end}");
        }
    }
    let last = events
        .iter()
        .rev()
        .find(|e| e["event"] == "unit-finished")
        .unwrap();
    assert_eq!(
        (&last["done"], &last["failed"], &last["left"]),
        (&25.into(), &1.into(), &0.into()),
        "{last}"
    );
    // In `--json` a unit is an event, not a line for people.
    assert!(!out.stderr.contains("▸ unit"), "{}", out.stderr);
}

/// Without a terminal and with many units, the log keeps each unit's line and sums the
/// units up every 10%; the last summary says everything is done. The text report counts
/// the 60 units by status and lists the failed one with its error, not every unit.
#[tokio::test(flavor = "multi_thread")]
async fn many_units_get_summary_lines_and_a_counted_report_sqlite() {
    let Some((_target, ws)) = work_log(Dialect::Sqlite, 60, 0).await else {
        return;
    };
    let plugin = plugins::plugin("work-units");
    let out = ws.migrun(&[
        plugin.to_str().unwrap(),
        "--keep-going",
        "--set",
        "fail=unit-04",
    ]);
    out.expect_code(4)
        .expect_output("▸ unit unit-59")
        .expect_output("units: 60/60 units done, 1 failed, 0 left")
        .expect_output("  60 units: 59 committed; 1 failed, rolled back")
        .expect_output("failed units (1 of 60; each rolled back, the other units ran)")
        .expect_output("✗ unit-04  unit-04 is configured to fail (config `fail`)");
    let summaries = out
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("units: "))
        .count();
    assert_eq!(summaries, 10, "{}", out.stderr);
    assert!(!out.stdout.contains("✓ unit-10"), "{}", out.stdout);
}

/// A ledger of 200 rows is summed up per plugin, with the one suspect row listed; `--all`
/// lists every row; `--json` carries every row and the summary.
#[tokio::test(flavor = "multi_thread")]
async fn status_sums_up_a_big_ledger_and_lists_every_row_with_all_sqlite() {
    let Some((target, ws)) = work_log(Dialect::Sqlite, 200, 0).await else {
        return;
    };
    let plugin = plugins::plugin("work-units");
    ws.migrun(&[plugin.to_str().unwrap(), "--no-backup"])
        .expect_code(0);
    // One row altered by hand: its anchor no longer matches its journal.
    let mut conn = target.connect(Access::ReadWrite).await;
    conn.execute(
        "UPDATE migrun_ledger SET journal_hash = 'forged' WHERE unit = 'unit-107'",
        &[],
    )
    .await
    .unwrap();
    conn.close().await;

    let summed = ws.migrun(&["status"]);
    summed
        .expect_code(1)
        .expect_output(
            "work-units: 200 row(s): ✓ 199 finished, ◐ 0 checkpointed, ⚠ 1 not written by migrun as it is",
        )
        .expect_output("unfinished or suspect (1):")
        .expect_output("⚠ unit-107")
        .expect_output("(200 rows summed up; every row: migrun status --all)");
    assert!(!summed.stdout.contains("unit-150"), "{}", summed.stdout);
    assert!(summed.stdout.lines().count() < 20, "{}", summed.stdout);

    let all = ws.migrun(&["status", "--all"]);
    all.expect_code(1);
    let rows = all
        .stdout
        .lines()
        .filter(|l| l.starts_with("  ✓ unit-") || l.starts_with("  ⚠ unit-"))
        .count();
    assert_eq!(rows, 200, "{}", all.stdout);

    let json = ws.migrun(&["status", "--json"]);
    let json = json.expect_code(1).json();
    let target = &json["targets"][0];
    assert_eq!(target["rows"].as_array().unwrap().len(), 200);
    assert_eq!(target["summary"][0]["plugin"], "work-units", "{target}");
    assert_eq!(target["summary"][0]["finished"], 199);
    assert_eq!(target["summary"][0]["suspect"], 1);
}

/// On a terminal (here a pseudo-terminal from util-linux `script`), more than 20 units get
/// one bar over the units — done, failed, left — instead of a `▸` line per unit; a failed
/// unit still gets its line, with its error.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_shows_one_bar_over_many_units_sqlite() {
    let Some((_target, ws)) = work_log(Dialect::Sqlite, 30, 0).await else {
        return;
    };
    let plugin = plugins::plugin("work-units");
    let plugin = plugin.to_str().unwrap();
    let Some(output) = ws.migrun_on_terminal(&[plugin, "--keep-going", "--set", "fail=unit-02"])
    else {
        return;
    };
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{screen}");
    assert!(screen.contains("  units ["), "{screen}");
    assert!(
        screen.contains("30/30 units done, 1 failed, 0 left"),
        "{screen}"
    );
    assert!(
        screen.contains("✗ unit unit-02 failed: unit-02 is configured to fail"),
        "{screen}"
    );
    assert!(!screen.contains("▸ unit unit-"), "{screen}");
}
