//! Journals and replay: every run writes a hash-chained journal; `migrun
//! replay` re-executes the plugin on it with the databases gone; an edited
//! journal is detected; a forged call is a divergence naming the entry; a
//! second plugin version is compared per table on the recorded inputs.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use migrun::db::Dialect;
use sha2::{Digest, Sha256};

use crate::support::checksum::row_count;
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins::{self, cargo_command, target_dir, workspace_root};

/// auth-consolidation built with `--cfg auth_consolidation_v2`: skips locked
/// accounts and resets failed-login counters (see `plugins/auth-consolidation/src/copy.rs`).
pub fn auth_consolidation_v2() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = target_dir().join("variants");
            let mut cmd = cargo_command();
            cmd.current_dir(workspace_root())
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "-p",
                    "auth-consolidation",
                ])
                .arg("--target-dir")
                .arg(&dir)
                .env("RUSTFLAGS", "--cfg auth_consolidation_v2");
            plugins::run_build("auth-consolidation v2", &mut cmd);
            dir.join("wasm32-wasip2/release/auth_consolidation.wasm")
        })
        .clone()
}

/// Runs auth-consolidation for real on `dialect` and returns the workspace, the
/// journal and the counts a user would check, with the databases already dropped.
struct Recorded {
    ws: Workspace,
    journal: PathBuf,
    final_hash: String,
    calls: u64,
    locked: i64,
    reset: i64,
}

async fn record(dialect: Dialect, users: u32) -> Option<Recorded> {
    let source = TestDatabase::create(dialect).await?;
    let target = TestDatabase::create(dialect).await?;
    migrun_fixtures::seed_auth_users(&source.url, users, 11)
        .await
        .expect("seed");
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n[connections.target]\nurl = \"{}\"\n[config]\nbatch_size = 128\n",
        source.ro_url, target.url
    ));
    let plugin = plugins::plugin("auth-consolidation");
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--json"]);
    out.expect_code(0);
    let report = out.json();
    let journal = ws
        .path()
        .join(report["journal"]["path"].as_str().expect("journal path"));
    assert!(journal.exists(), "{}", journal.display());
    assert!(
        journal
            .parent()
            .unwrap()
            .join("plugins")
            .join(format!(
                "{}.wasm",
                report["plugin_sha256"].as_str().unwrap()
            ))
            .exists(),
        "the plugin is stored next to the journal by sha256"
    );
    assert_eq!(row_count(&target.url, "auth_users").await, i64::from(users));

    let count = |sql: &'static str| {
        let url = source.url.clone();
        async move {
            let mut conn =
                migrun::db::Connection::connect("count", &url, migrun::db::Access::ReadOnly)
                    .await
                    .unwrap();
            let rows = conn.query(sql, &[]).await.unwrap();
            match rows.rows[0][0] {
                migrun::value::Value::Int(n) => n,
                ref other => panic!("count: {other:?}"),
            }
        }
    };
    let locked = count("SELECT COUNT(*) FROM users WHERE locked_at IS NOT NULL").await;
    let reset =
        count("SELECT COUNT(*) FROM users WHERE locked_at IS NULL AND failed_attempts <> 0").await;
    Some(Recorded {
        journal,
        final_hash: report["journal"]["final_hash"].as_str().unwrap().to_owned(),
        calls: report["journal"]["calls"].as_u64().unwrap(),
        locked,
        reset,
        ws,
    })
    // `source` and `target` are dropped here: the databases no longer exist when replay runs.
}

async fn replay_verifies_without_databases(dialect: Dialect) {
    let Some(rec) = record(dialect, 700).await else {
        return;
    };
    let out = rec.ws.migrun(&["replay", rec.journal.to_str().unwrap()]);
    out.expect_code(0)
        .expect_output(&format!("verified: {} calls, writes identical", rec.calls));

    let json = rec
        .ws
        .migrun(&["replay", rec.journal.to_str().unwrap(), "--json"]);
    let json = json.expect_code(0).json();
    assert_eq!(json["schema"], "migrun.replay-report/1");
    assert_eq!(json["mode"], "verify");
    assert_eq!(json["outcome"], "verified");
    assert_eq!(json["calls"], rec.calls);
    assert!(
        json["run"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );

    // `journal stats` reads the same journal without replaying it and agrees on its seal.
    let stats = rec
        .ws
        .migrun(&["journal", "stats", rec.journal.to_str().unwrap(), "--json"]);
    let stats = stats.expect_code(0).json();
    assert_eq!(stats["schema"], "migrun.journal-stats/1");
    assert_eq!(stats["final_hash"], rec.final_hash.as_str());
    assert_eq!(
        stats["units"],
        serde_json::json!(["create-auth-users", "copy-users"])
    );
    // Every user, and Rails' schema_migrations row.
    assert_eq!(stats["rows_written"]["target"], 701);
    assert_eq!(stats["footer"]["outcome"], "succeeded");
    let show = rec
        .ws
        .migrun(&["journal", "show", rec.journal.to_str().unwrap()]);
    show.expect_code(0)
        .expect_output("→ run-unit(\"copy-users\")")
        .expect_output("target.bulk-insert(auth_users; 21 columns; 128 rows) → 128")
        .expect_output("footer: succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_verifies_with_the_databases_gone_sqlite() {
    replay_verifies_without_databases(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_verifies_with_the_databases_gone_postgres() {
    replay_verifies_without_databases(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_verifies_with_the_databases_gone_mysql() {
    replay_verifies_without_databases(Dialect::MySql).await;
}

/// A journal's entries as `(hash, JSON)` lines, of any format, unverified: a
/// `/2` file's own lines; a `/3` file's binary records decoded and shown as the
/// same JSON a `/2` line holds (its hash in hex). For tests that edit journals.
pub fn read_lines(path: &Path) -> Vec<(String, String)> {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(migrun::journal::frame::MAGIC) {
        let records = migrun::journal::frame::read_records(&bytes[..]).unwrap();
        let mut window = migrun::journal::binary::ReaderWindow::default();
        return records
            .iter()
            .map(|r| {
                let entry = migrun::journal::binary::Decoder::new(&r.payload[2..], &mut window)
                    .entry()
                    .unwrap();
                (hex::encode(r.hash), serde_json::to_string(&entry).unwrap())
            })
            .collect();
    }
    let text = migrun::journal::frame::read_lines(&bytes[..]).unwrap();
    text.as_slice()
        .lines()
        .map(|l| {
            let l = l.unwrap();
            let (h, j) = l.split_once('\t').unwrap();
            (h.to_owned(), j.to_owned())
        })
        .collect()
}

/// Writes lines back in the format of the file at `path` (a `/3` file's entries
/// encoded again, lane 0); with `rechain`, recomputes every hash (a forger who
/// knows the format), otherwise keeps the hashes given.
pub fn write_lines(path: &Path, lines: &[(String, String)], rechain: bool) {
    let v3 = std::fs::read(path)
        .unwrap_or_default()
        .starts_with(migrun::journal::frame::MAGIC);
    let mut file = Vec::new();
    if v3 {
        let mut window = migrun::journal::binary::WriterWindow::default();
        let records: Vec<_> = lines
            .iter()
            .map(|(hash, json)| {
                let entry: migrun::journal::Entry = serde_json::from_str(json).unwrap();
                let mut payload = vec![0u8, 0u8];
                migrun::journal::binary::Encoder::new(&mut payload, &mut window)
                    .entry(&entry)
                    .unwrap();
                migrun::journal::frame::RawRecord {
                    hash: hex::decode(hash).unwrap().try_into().unwrap(),
                    payload,
                }
            })
            .collect();
        migrun::journal::frame::write_records(&mut file, &records, rechain).unwrap();
    } else {
        let mut text = Vec::new();
        let mut prev = [0u8; 32];
        for (hash, json) in lines {
            let hash = if rechain {
                let mut h = Sha256::new();
                h.update(prev);
                h.update(json.as_bytes());
                prev = h.finalize().into();
                hex::encode(prev)
            } else {
                hash.clone()
            };
            writeln!(text, "{hash}\t{json}").unwrap();
        }
        migrun::journal::frame::write_lines(&mut file, &text).unwrap();
    }
    std::fs::write(path, file).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_journal_breaks_the_hash_chain() {
    let Some(rec) = record(Dialect::Sqlite, 100).await else {
        return;
    };
    let mut lines = read_lines(&rec.journal);
    let (index, line) = lines
        .iter_mut()
        .enumerate()
        .find(|(_, (_, json))| json.contains("\"fn\":\"next-batch\""))
        .expect("a recorded batch");
    line.1 = line.1.replacen("\"int\",\"1\"", "\"int\",\"9\"", 1);
    write_lines(&rec.journal, &lines, false);
    rec.ws
        .migrun(&["replay", rec.journal.to_str().unwrap()])
        .expect_code(2)
        .expect_output(&format!("entry {index}: hash chain broken"))
        .expect_output("the journal was modified");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_differs_is_a_divergence_naming_the_entry() {
    let Some(rec) = record(Dialect::Sqlite, 100).await else {
        return;
    };
    let mut lines = read_lines(&rec.journal);
    let (index, line) = lines
        .iter_mut()
        .enumerate()
        .find(|(_, (_, json))| json.contains("SELECT COUNT(*) FROM users"))
        .expect("the recorded count query");
    line.1 = line
        .1
        .replace("SELECT COUNT(*) FROM users", "SELECT COUNT(*) FROM people");
    write_lines(&rec.journal, &lines, true);
    let out = rec.ws.migrun(&["replay", rec.journal.to_str().unwrap()]);
    out.expect_code(1)
        .expect_output(&format!("replay diverged at journal entry {index}"))
        .expect_output("the journal has source.query(\"SELECT COUNT(*) FROM people\"")
        .expect_output("the plugin made source.query(\"SELECT COUNT(*) FROM users\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_plugin_version_is_compared_per_table() {
    let Some(rec) = record(Dialect::Postgres, 600).await else {
        return;
    };
    let v2 = auth_consolidation_v2();
    let out = rec.ws.migrun(&[
        "replay",
        rec.journal.to_str().unwrap(),
        "--plugin",
        v2.to_str().unwrap(),
        "--json",
    ]);
    out.expect_code(1);
    let json = out.json();
    assert_eq!(json["mode"], "compare");
    assert_eq!(json["outcome"], "compared");
    assert_eq!(json["identical"], false);
    let table = &json["diff"]["tables"]["target.auth_users"];
    assert_eq!(
        table["only_recorded"].as_array().unwrap().len() as i64,
        rec.locked,
        "locked users v2 does not copy"
    );
    assert_eq!(table["only_compared"].as_array().unwrap().len(), 0);
    let changed = table["changed"].as_array().unwrap();
    assert_eq!(
        changed.len() as i64,
        rec.reset,
        "users whose failed_attempts v2 resets"
    );
    assert!(
        changed
            .iter()
            .all(|c| c["changes"].as_array().unwrap().len() == 1
                && c["changes"][0][0] == "failed_attempts")
    );
    assert_eq!(
        table["identical"].as_i64().unwrap(),
        600 - rec.locked - rec.reset
    );

    let text = rec.ws.migrun(&[
        "replay",
        rec.journal.to_str().unwrap(),
        "--plugin",
        v2.to_str().unwrap(),
    ]);
    text.expect_code(1)
        .expect_output("compared  auth-consolidation 0.2.0")
        .expect_output("writes differ:")
        .expect_output(&format!("{} only recorded", rec.locked))
        .expect_output("failed_attempts:");
}

/// A plugin version that reads something the recorded run never read stops the comparison, naming the call.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_never_recorded_stops_the_comparison() {
    let Some(rec) = record(Dialect::Sqlite, 50).await else {
        return;
    };
    // Take the count query out of the record (re-chained, so the journal itself is valid).
    let lines: Vec<(String, String)> = read_lines(&rec.journal)
        .into_iter()
        .filter(|(_, json)| !json.contains("SELECT COUNT(*) FROM users\""))
        .collect();
    write_lines(&rec.journal, &lines, true);
    let v2 = auth_consolidation_v2();
    rec.ws
        .migrun(&["replay", rec.journal.to_str().unwrap(), "--plugin", v2.to_str().unwrap()])
        .expect_code(1)
        .expect_output("the plugin asked for something the journal never recorded: source.query(\"SELECT COUNT(*) FROM users\"")
        .expect_output("the comparison stops here");
}

/// Dry-runs and failed runs are journaled too, and replay verifies them (a failure at the same point).
#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_and_failed_runs_are_journaled_and_replayable() {
    let Some(source) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    source
        .exec("CREATE TABLE secrets (id INTEGER PRIMARY KEY)")
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.source]\nurl = \"{}\"\n[connections.target]\nurl = \"{}\"\n[config]\nbehaviour = \"trap\"\n",
        source.ro_url, target.url
    ));
    let hostile = plugins::plugin("hostile");
    for args in [vec!["--dry-run", "--json"], vec!["--json"]] {
        let mut all = vec![hostile.to_str().unwrap()];
        all.extend(args);
        let out = ws.migrun(&all);
        out.expect_code(1);
        let journal = ws.path().join(
            out.json()["journal"]["path"]
                .as_str()
                .expect("a failed run has a journal"),
        );
        ws.migrun(&["replay", journal.to_str().unwrap()])
            .expect_code(0)
            .expect_output("verified:");
    }
}
