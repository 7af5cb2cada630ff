//! A plugin attacks the operator rather than the database: it floods its
//! log, checks and progress, and hides terminal control sequences (ESC/CSI,
//! OSC 52, BEL, the one-byte C1 CSI, CR, DEL, a bidi override) in its
//! messages, check names and details, progress tasks, field names and unit
//! names (which the ledger stores and `migrun status` shows). migrun keeps a
//! byte-bounded share of the flood and summarises the rest, and no control
//! byte it was sent reaches stdout or stderr of any command, while the journal
//! and the ledger keep exactly what the plugin sent. See `docs/SECURITY.md`,
//! "Output and memory bounds".

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::checksum::database_checksums;
use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// What the `noisy` guest hides in everything it names (see its `TRAPS`).
const TRAPS: &str = "\u{1b}[2J\u{1b}]52;c;bWlncnVuIHB3bmVk\u{7}\u{9b}31m\r\u{7f}\u{202e}";
/// The same as migrun prints it.
const TRAPS_SHOWN: &str =
    "\\u{1b}[2J\\u{1b}]52;c;bWlncnVuIHB3bmVk\\u{7}\\u{9b}31m\\u{d}\\u{7f}\\u{202e}";

struct Noisy {
    ws: Workspace,
    target: TestDatabase,
}

impl Noisy {
    async fn new(dialect: Dialect, config: &str) -> Option<Noisy> {
        let target = TestDatabase::create(dialect).await?;
        target
            .exec("CREATE TABLE noisy_log (unit VARCHAR(200))")
            .await;
        let ws = Workspace::new();
        ws.config(&format!(
            "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[config]\n{config}\n",
            target.url
        ));
        Some(Noisy { ws, target })
    }

    fn migrun(&self, args: &[&str]) -> Outcome {
        let plugin = plugins::plugin("noisy");
        let mut all = vec![plugin.to_str().unwrap()];
        all.extend_from_slice(args);
        self.ws.migrun(&all)
    }

    /// The units recorded in `noisy_log`, exactly as stored.
    async fn logged_units(&self) -> Vec<String> {
        let mut conn = self.target.connect(Access::ReadOnly).await;
        let rows = conn
            .query("SELECT unit FROM noisy_log", &[])
            .await
            .expect("read noisy_log");
        conn.close().await;
        rows.rows
            .into_iter()
            .map(|row| match &row[0] {
                Value::Text(t) => t.clone(),
                other => panic!("unit is {other:?}"),
            })
            .collect()
    }
}

/// Panics if `what`'s stdout or stderr holds a byte that talks to a terminal.
#[track_caller]
fn assert_no_control_bytes(what: &str, out: &Outcome) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let found: Vec<String> = text
            .bytes()
            .filter(|b| matches!(b, 0x1b | 0x07 | 0x9b | 0x0d | 0x7f))
            .map(|b| format!("{b:#04x}"))
            .collect();
        assert!(
            found.is_empty(),
            "{what}: {stream} carries {found:?}:\n{text}"
        );
        assert!(
            !text.contains('\u{202e}'),
            "{what}: {stream} carries a bidi override"
        );
    }
}

/// 50 MB of warnings, 20,000 checks of 1 KiB and 10,000 progress tasks under a 16 MiB
/// memory limit: the run finishes, commits, and says how much it did not keep; what
/// migrun prints stays a few MB whatever the plugin sends.
async fn flood_scenario(dialect: Dialect) {
    let Some(n) = Noisy::new(dialect, "behaviour = \"flood\"\nmegabytes = 50").await else {
        return;
    };
    let out = n.migrun(&["--memory-mib", "16"]);
    out.expect_code(0)
        .expect_output("more message(s) (")
        .expect_output("warning(s), 0 error(s);")
        .expect_output("MB) not kept")
        .expect_output("more check(s) (")
        .expect_output("the plugin's further messages are not shown");
    let printed = out.stdout.len() + out.stderr.len();
    assert!(
        printed < 8_000_000,
        "migrun printed {printed} bytes for a 50 MB flood"
    );
    assert_eq!(n.logged_units().await, ["flood"], "the unit committed");

    // The unit finished (a rerun would skip it): the JSON report comes from a fresh target.
    let Some(n) = Noisy::new(dialect, "behaviour = \"flood\"\nmegabytes = 50").await else {
        return;
    };
    let json = n.migrun(&["--memory-mib", "16", "--json"]);
    let report = json.expect_code(0).json();
    let not_kept = &report["messages_not_kept"];
    assert!(not_kept["warnings"].as_u64().unwrap() > 400, "{not_kept}");
    assert!(
        not_kept["bytes"].as_u64().unwrap() > 25_000_000,
        "{not_kept}"
    );
    assert!(report["checks_not_kept"]["passed"].as_u64().unwrap() > 15_000);
    assert!(
        json.stdout.len() < 8_000_000,
        "JSON report of {} bytes",
        json.stdout.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn log_flood_is_kept_within_a_byte_bound_sqlite() {
    flood_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn log_flood_is_kept_within_a_byte_bound_postgres() {
    flood_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn log_flood_is_kept_within_a_byte_bound_mysql() {
    flood_scenario(Dialect::MySql).await;
}

/// A failed check past the bound is not kept but still fails the run (exit 3), and the
/// report says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_check_past_the_bound_still_fails_the_run() {
    let Some(n) = Noisy::new(
        Dialect::Sqlite,
        "behaviour = \"flood\"\nmegabytes = 1\nlast_check_fails = true",
    )
    .await
    else {
        return;
    };
    n.migrun(&[])
        .expect_code(3)
        .expect_output("passed, 1 FAILED;")
        .expect_output("FAILED: 1 check(s) failed");
}

/// Every command that shows what the plugin named — the run (text and JSON), the dry-run
/// plan, `status` (unit names from the ledger), `replay`, `journal show|stats` — escapes it; the
/// ledger and the journal keep it exactly.
async fn escapes_scenario(dialect: Dialect) {
    let Some(n) = Noisy::new(dialect, "behaviour = \"escapes\"").await else {
        return;
    };
    let unit = format!("escapes{TRAPS}unit");
    let before = database_checksums(&n.target.url).await;
    let dry = n.migrun(&["--dry-run"]);
    dry.expect_code(0)
        .expect_output(&format!("check{TRAPS_SHOWN}name"))
        .expect_output("dry-run: nothing was changed");
    assert_no_control_bytes("dry-run", &dry);
    let dry_json = n.migrun(&["--dry-run", "--json"]);
    assert_no_control_bytes("dry-run --json", &dry_json);
    assert_eq!(
        dry_json.expect_code(0).json()["plan"]["checks"][0]["name"],
        format!("check{TRAPS}name"),
        "the JSON carries the exact name, escaped as JSON"
    );
    assert_eq!(database_checksums(&n.target.url).await, before);

    let run = n.migrun(&[]);
    run.expect_code(0)
        .expect_output(&format!("message{TRAPS_SHOWN}\\u{{a}}forged line"))
        .expect_output(&format!("key{TRAPS_SHOWN}=\"value{TRAPS_SHOWN}\""))
        .expect_output(&format!("task{TRAPS_SHOWN}"))
        .expect_output(&format!("escapes{TRAPS_SHOWN}unit"));
    assert_no_control_bytes("run", &run);
    assert!(
        !run.all().lines().any(|l| l.starts_with("forged line")),
        "a plugin's newline cannot start a line of the report"
    );
    assert_eq!(n.logged_units().await, vec![unit.clone()], "stored exactly");

    let status = n.ws.migrun(&["status"]);
    status
        .expect_code(0)
        .expect_output(&format!("escapes{TRAPS_SHOWN}unit"));
    assert_no_control_bytes("status", &status);
    let status_json = n.ws.migrun(&["status", "--json"]);
    assert_no_control_bytes("status --json", &status_json);
    let targets = status_json.expect_code(0).json();
    let rows = targets["targets"][0]["rows"]
        .as_array()
        .expect("ledger rows");
    assert!(
        rows.iter().any(|r| r["unit"] == unit.as_str()),
        "the ledger holds the exact name: {rows:?}"
    );

    let journal = std::fs::read_dir(n.ws.path().join("migrun-journal"))
        .expect("journal dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "journal")
                && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
        })
        .expect("a journal");
    let journal = journal.to_str().unwrap();
    for args in [
        vec!["replay", journal],
        vec!["replay", journal, "--json"],
        vec!["journal", "show", journal],
        vec!["journal", "show", journal, "--json"],
        vec!["journal", "stats", journal],
    ] {
        let out = n.ws.migrun(&args);
        out.expect_code(0);
        assert_no_control_bytes(&args.join(" "), &out);
    }
    let shown = n.ws.migrun(&["journal", "show", journal, "--json"]);
    let sent = serde_json::to_string(&format!("check{TRAPS}name")).unwrap();
    assert!(
        shown.stdout.lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|entry| entry.to_string().contains(&sent))
        }),
        "the journal records the check's name exactly as sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_escapes_from_a_plugin_never_reach_the_terminal_sqlite() {
    escapes_scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_escapes_from_a_plugin_never_reach_the_terminal_postgres() {
    escapes_scenario(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_escapes_from_a_plugin_never_reach_the_terminal_mysql() {
    escapes_scenario(Dialect::MySql).await;
}

/// The same plugin with a real terminal on stdout and stderr (`script` allocates a pty), so
/// that progress bars are drawn: migrun's own cursor movement is there, but none of the
/// plugin's sequences (clear screen, OSC 52, BEL, C1 CSI, bidi override); the bar's task
/// name is shown escaped.
#[tokio::test(flavor = "multi_thread")]
async fn terminal_escapes_never_reach_a_real_terminal_through_progress_bars() {
    if !std::process::Command::new("script")
        .args(["-qec", "true", "/dev/null"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let _: Option<()> = plugins::toolchain_missing("`script` (util-linux) is not installed");
        return;
    }
    let Some(n) = Noisy::new(Dialect::Sqlite, "behaviour = \"escapes\"").await else {
        return;
    };
    let command = format!(
        "{} {}",
        env!("CARGO_BIN_EXE_migrun"),
        plugins::plugin("noisy").display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(n.ws.path())
        .env_remove("MIGRUN_LOG")
        .env(migrun::runtime::cache::CACHE_DIR_ENV, n.ws.cache_dir())
        .output()
        .expect("run script");
    let tty = output.stdout;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&tty)
    );
    let contains = |needle: &[u8]| tty.windows(needle.len()).any(|w| w == needle);
    for (what, sequence) in [
        ("clear screen", b"\x1b[2J".as_slice()),
        ("OSC 52", b"\x1b]52".as_slice()),
        ("BEL", b"\x07".as_slice()),
        ("C1 CSI", "\u{9b}".as_bytes()),
        ("bidi override", "\u{202e}".as_bytes()),
    ] {
        assert!(
            !contains(sequence),
            "the plugin's {what} reached the terminal:\n{}",
            String::from_utf8_lossy(&tty)
        );
    }
    assert!(
        contains(format!("task{TRAPS_SHOWN} [").as_bytes()),
        "a progress bar was drawn with the escaped name:\n{}",
        String::from_utf8_lossy(&tty)
    );
    assert_eq!(n.logged_units().await, vec![format!("escapes{TRAPS}unit")]);
}
