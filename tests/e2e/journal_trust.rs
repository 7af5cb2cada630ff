//! A journal to trust after a crash: kill -9 at several points (mid-batch, after a
//! checkpoint's commit, during verify) leaves a journal
//! whose prefix verifies, holds every unit and checkpoint the ledger says
//! committed, and replays; a SIGINT-interrupted run replays verified; every
//! edit — footer cut, entry deleted, entries swapped, byte flipped, the chain
//! recomputed after an edited answer, an unknown version — is caught by
//! `migrun journal verify`, with the entry; `migrun.journal/1` journals of
//! the earlier release still verify and replay.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use migrun::db::Dialect;

use crate::backfill::{create_accounts, rename_config};
use crate::replay::{read_lines, write_lines};
use crate::support::checksum::row_count;
use crate::support::cli::{Workspace, wait_for_line, wait_for_progress};
use crate::support::database::TestDatabase;
use crate::support::plugins;

fn auth_config(source: &str, target: &str, batch: u32) -> String {
    format!(
        "[connections.source]\nurl = \"{source}\"\naccess = \"read-only\"\n[connections.target]\nurl = \"{target}\"\n[config]\nbatch_size = {batch}\n"
    )
}

/// The one journal a workspace's run wrote.
fn the_journal(ws: &Workspace) -> PathBuf {
    let journals: Vec<PathBuf> = std::fs::read_dir(ws.path().join("migrun-journal"))
        .expect("a journal directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    journals.into_iter().next().unwrap()
}

fn verify(ws: &Workspace, journal: &Path, with_ledger: bool) -> crate::support::cli::Outcome {
    let journal = journal.to_str().unwrap();
    if with_ledger {
        ws.migrun(&["journal", "verify", journal, "-c", "migrun.toml"])
    } else {
        ws.migrun(&["journal", "verify", journal])
    }
}

/// After a kill: the prefix verifies as incomplete, every ledger row of the run is
/// anchored in it, and it replays verified as a killed run.
fn check_killed_journal(ws: &Workspace, dialect: Dialect, ledger_rows: usize) {
    let journal = the_journal(ws);
    verify(ws, &journal, false)
        .expect_code(3)
        .expect_output("incomplete: the run did not finish")
        .expect_output("verdict   incomplete");
    let with_ledger = verify(ws, &journal, true);
    with_ledger.expect_code(3).expect_output(&format!(
        "ledger    target: {ledger_rows} of {ledger_rows} rows of this run anchored in the journal"
    ));
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified:")
        .expect_output("the recorded run was killed");
    let json = ws.migrun(&["replay", journal.to_str().unwrap(), "--json"]);
    json.expect_code(0);
    assert_eq!(json.json()["recorded"], "killed", "{dialect:?}");
}

/// kill -9 mid-batch, inside a unit after an earlier unit committed.
async fn kill_mid_batch(dialect: Dialect) {
    kill_when(dialect, "copy-users: ", 1).await;
}

/// kill -9 once `needle` is on stderr; `committed` ledger rows are then in the target.
async fn kill_when(dialect: Dialect, needle: &str, committed: i64) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 6000, 5)
        .await
        .expect("seed");
    let ws = Workspace::new();
    ws.config(&auth_config(&source.ro_url, &target.url, 40));
    let plugin = plugins::plugin("auth-consolidation");
    let mut child = ws.spawn(&[plugin.to_str().unwrap()]);
    wait_for_line(&mut child, needle);
    std::thread::sleep(Duration::from_millis(20));
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    eprintln!(
        "{dialect:?}: killed after {needle:?}: {}",
        status.code().is_none()
    );
    assert_eq!(row_count(&target.url, "migrun_ledger").await, committed);
    if status.code().is_none() || committed == 1 {
        assert!(status.code().is_none(), "killed by the signal: {status:?}");
        check_killed_journal(&ws, dialect, committed as usize);
    } else {
        // verify is short: the run may finish before the signal lands; its journal is whole.
        verify(&ws, &the_journal(&ws), true).expect_code(0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_verify_leaves_every_unit_in_the_journal_sqlite() {
    kill_when(Dialect::Sqlite, "▸ verify", 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_verify_leaves_every_unit_in_the_journal_postgres() {
    kill_when(Dialect::Postgres, "▸ verify", 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_verify_leaves_every_unit_in_the_journal_mysql() {
    kill_when(Dialect::MySql, "▸ verify", 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_batch_leaves_a_journal_that_verifies_and_replays_sqlite() {
    kill_mid_batch(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_batch_leaves_a_journal_that_verifies_and_replays_postgres() {
    kill_mid_batch(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_batch_leaves_a_journal_that_verifies_and_replays_mysql() {
    kill_mid_batch(Dialect::MySql).await;
}

/// kill -9 while a backfill pauses between a checkpoint's COMMIT and its next statement:
/// the checkpoint row the ledger holds is anchored in the journal.
async fn kill_after_checkpoint(dialect: Dialect) {
    let Some(db) = TestDatabase::create(dialect).await else {
        return;
    };
    create_accounts(&db).await;
    let plugin = plugins::plugin("expand-contract-rename");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    ws.config(&rename_config(&db, 0, 300));
    ws.migrun(&[plugin, "--only", "expand"]).expect_code(0);
    std::fs::remove_dir_all(ws.path().join("migrun-journal")).unwrap();
    let mut child = ws.spawn(&[plugin, "--only", "backfill"]);
    wait_for_line(&mut child, "backfill accounts.email_address: ");
    // The progress line follows a checkpoint; the pause after it is 300 ms.
    std::thread::sleep(Duration::from_millis(100));
    child.kill().expect("SIGKILL");
    assert!(
        child.wait().unwrap().code().is_none(),
        "killed by the signal"
    );
    let journal = the_journal(&ws);
    // Only the backfill run's rows: `expand`'s row names the other journal.
    let out = verify(&ws, &journal, true);
    out.expect_code(3)
        .expect_output("incomplete: the run did not finish");
    let report = ws.migrun(&[
        "journal",
        "verify",
        journal.to_str().unwrap(),
        "-c",
        "migrun.toml",
        "--json",
    ]);
    let rows = &report.json()["report"]["ledgers"][0]["rows"];
    let rows = rows.as_array().expect("rows of the run");
    assert_eq!(rows.len(), 1, "{dialect:?}: the checkpoint row: {rows:?}");
    assert_eq!(rows[0]["status"], "checkpoint");
    assert!(rows[0]["entry"].is_u64(), "anchored: {rows:?}");
    assert!(rows[0].get("mismatch").is_none(), "{rows:?}");
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified:")
        .expect_output("the recorded run was killed");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_after_a_checkpoint_commit_keeps_it_in_the_journal_sqlite() {
    kill_after_checkpoint(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_after_a_checkpoint_commit_keeps_it_in_the_journal_postgres() {
    kill_after_checkpoint(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_after_a_checkpoint_commit_keeps_it_in_the_journal_mysql() {
    kill_after_checkpoint(Dialect::MySql).await;
}

/// SIGINT mid-unit: the run exits 130, its journal is intact, and replay verifies it as
/// interrupted.
async fn sigint_then_replay(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    let Some(target) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 6000, 5)
        .await
        .expect("seed");
    let ws = Workspace::new();
    ws.config(&auth_config(&source.ro_url, &target.url, 40));
    let plugin = plugins::plugin("auth-consolidation");
    let mut child = ws.spawn(&[plugin.to_str().unwrap()]);
    wait_for_progress(&mut child, "copy-users", 20);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{dialect:?}");
    let journal = the_journal(&ws);
    verify(&ws, &journal, true)
        .expect_code(0)
        .expect_output("intact:")
        .expect_output("ledger    target: 1 of 1 rows of this run anchored in the journal");
    let replayed = ws.migrun(&["replay", journal.to_str().unwrap(), "--json"]);
    replayed.expect_code(0);
    assert_eq!(replayed.json()["outcome"], "verified", "{dialect:?}");
    assert_eq!(replayed.json()["recorded"], "interrupted", "{dialect:?}");
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_output("the recorded run was interrupted (SIGINT)");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_replays_verified_sqlite() {
    sigint_then_replay(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_replays_verified_postgres() {
    sigint_then_replay(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_replays_verified_mysql() {
    sigint_then_replay(Dialect::MySql).await;
}

/// A finished run of auth-consolidation; returns the workspace and its journal.
async fn finished_run(
    dialect: Dialect,
) -> Option<(Workspace, PathBuf, TestDatabase, TestDatabase)> {
    let source = TestDatabase::create(dialect).await?;
    let target = TestDatabase::create(dialect).await?;
    migrun_fixtures::seed_auth_users(&source.url, 200, 7)
        .await
        .expect("seed");
    let ws = Workspace::new();
    ws.config(&auth_config(&source.ro_url, &target.url, 64));
    let plugin = plugins::plugin("auth-consolidation");
    ws.migrun(&[plugin.to_str().unwrap()]).expect_code(0);
    let journal = the_journal(&ws);
    verify(&ws, &journal, true)
        .expect_code(0)
        .expect_output("intact:")
        .expect_output("ledger    target: 2 of 2 rows of this run anchored in the journal")
        .expect_output("the final hash stored in the ledger matches the journal's")
        .expect_output("verdict   intact");
    Some((ws, journal, source, target))
}

/// Every edit of a finished journal is caught, with the entry it is at.
async fn edits_are_caught(dialect: Dialect) {
    let Some((ws, journal, _source, _target)) = finished_run(dialect).await else {
        return;
    };
    let original = std::fs::read(&journal).unwrap();
    let lines = read_lines(&journal);
    let restore = || std::fs::write(&journal, &original).unwrap();

    // The footer cut off: never silently fine.
    write_lines(&journal, &lines[..lines.len() - 1], false);
    verify(&ws, &journal, false)
        .expect_code(3)
        .expect_output("incomplete: the run did not finish");

    // One entry deleted.
    let mid = lines.len() / 2;
    let mut deleted = lines.clone();
    deleted.remove(mid);
    write_lines(&journal, &deleted, false);
    verify(&ws, &journal, false)
        .expect_code(1)
        .expect_output(&format!("MODIFIED OR DAMAGED at entry {mid}"))
        .expect_output("hash chain broken");

    // Two entries swapped.
    let mut swapped = lines.clone();
    swapped.swap(mid, mid + 1);
    write_lines(&journal, &swapped, false);
    verify(&ws, &journal, false)
        .expect_code(1)
        .expect_output(&format!("MODIFIED OR DAMAGED at entry {mid}"));

    // One byte flipped in the file.
    restore();
    let mut flipped = original.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x20;
    std::fs::write(&journal, &flipped).unwrap();
    verify(&ws, &journal, false)
        .expect_code(1)
        .expect_output("MODIFIED OR DAMAGED at entry")
        .expect_output("modified or damaged after it was written");

    // A database answer edited and the whole chain recomputed: the file alone looks
    // intact, the ledger rows' anchors are not where they must be.
    let mut forged = lines.clone();
    let (_, batch) = forged
        .iter_mut()
        .find(|(_, json)| json.contains("\"fn\":\"next-batch\"") && json.contains("\"int\",\"1\""))
        .expect("a recorded batch");
    *batch = batch.replacen("\"int\",\"1\"", "\"int\",\"9\"", 1);
    write_lines(&journal, &forged, true);
    verify(&ws, &journal, false).expect_code(0);
    verify(&ws, &journal, true)
        .expect_code(1)
        .expect_output("the journal was rewritten after the run")
        .expect_output("verdict   modified");

    // The end of the journal — after the last unit's ledger row — edited and the chain
    // recomputed: the verify phase (a check's detail), then the footer (its counts). The
    // file alone looks intact; the final hash the ledger holds does not match.
    let last_ledger_row = lines
        .iter()
        .rposition(|(_, json)| json.contains("\"op\":\"record-ledger\""))
        .expect("a unit's ledger row");
    let mut forged = lines.clone();
    let (_, check) = forged[last_ledger_row..]
        .iter_mut()
        .rfind(|(_, json)| json.contains("\"fn\":\"check\""))
        .expect("a check in the verify phase");
    *check = check.replacen("\"detail\":\"", "\"detail\":\"forged ", 1);
    write_lines(&journal, &forged, true);
    verify(&ws, &journal, false).expect_code(0);
    verify(&ws, &journal, true)
        .expect_code(1)
        .expect_output("the final hash stored in the ledger does NOT match")
        .expect_output("the journal was rewritten after the run")
        .expect_output("verdict   modified");
    let mut forged = lines.clone();
    let (_, footer) = forged.last_mut().unwrap();
    assert!(footer.contains("\"type\":\"footer\""), "{footer}");
    *footer = footer.replacen("\"checks_failed\":0", "\"checks_failed\":1", 1);
    write_lines(&journal, &forged, true);
    verify(&ws, &journal, false).expect_code(0);
    verify(&ws, &journal, true)
        .expect_code(1)
        .expect_output("the journal was rewritten after the run")
        .expect_output("verdict   modified");
    // The footer cut off: the file alone says incomplete; the ledger says the run finished.
    write_lines(&journal, &lines[..lines.len() - 1], false);
    verify(&ws, &journal, true)
        .expect_code(1)
        .expect_output("its end was cut off after the run")
        .expect_output("verdict   modified");

    // A format version this migrun does not know.
    let mut future = original.clone();
    future[15] = b'7';
    std::fs::write(&journal, &future).unwrap();
    verify(&ws, &journal, false)
        .expect_code(2)
        .expect_output("format migrun.journal/7 is not supported (this migrun reads migrun.journal/3, migrun.journal/2 and migrun.journal/1)");
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(2)
        .expect_output("format migrun.journal/7 is not supported");
    restore();
    verify(&ws, &journal, true).expect_code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn journal_verify_catches_every_edit_sqlite() {
    edits_are_caught(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn journal_verify_catches_every_edit_postgres() {
    edits_are_caught(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn journal_verify_catches_every_edit_mysql() {
    edits_are_caught(Dialect::MySql).await;
}

/// A journal of an earlier format kept in `tests/e2e/fixtures/<dir>/` (hello-rust on the
/// embedded SQLite, its plugin in `journal-v1/`) still verifies and replays.
fn an_old_journal_verifies_and_replays(dir: &str, format: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/fixtures");
    let ws = Workspace::new();
    let journals = ws.path().join("migrun-journal");
    std::fs::create_dir_all(journals.join("plugins")).unwrap();
    let journal = journals.join("hello-rust.journal");
    std::fs::copy(fixtures.join(dir).join("hello-rust.journal"), &journal).unwrap();
    let wasm = zstd::decode_all(
        std::fs::File::open(fixtures.join("journal-v1/hello-rust.wasm.zst")).unwrap(),
    )
    .unwrap();
    let sha = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(&wasm))
    };
    std::fs::write(journals.join("plugins").join(format!("{sha}.wasm")), wasm).unwrap();
    verify(&ws, &journal, false)
        .expect_code(0)
        .expect_output(format)
        .expect_output("intact: 35 entries, the run finished (succeeded)");
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified: 12 calls")
        .expect_output("the recorded run succeeded");
    ws.migrun(&["journal", "stats", journal.to_str().unwrap()])
        .expect_code(0);
    let shown = ws.migrun(&["journal", "show", "--json", journal.to_str().unwrap()]);
    shown.expect_code(0).expect_output("\"type\":\"footer\"");
}

/// A `migrun.journal/1` journal written by the release before `/2` still verifies and replays.
#[test]
fn a_journal_of_the_first_format_still_verifies_and_replays() {
    an_old_journal_verifies_and_replays("journal-v1", "migrun.journal/1");
}

/// A `migrun.journal/2` journal written by the release before `/3` still verifies and replays.
#[test]
fn a_journal_of_the_second_format_still_verifies_and_replays() {
    an_old_journal_verifies_and_replays("journal-v2", "migrun.journal/2");
}
