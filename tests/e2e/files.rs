//! Files the operator grants (contract 0.2.0 `files`, issue 19 item 6), with the
//! `files-guest` test plugin: a granted file of several MiB streams in chunks whose
//! bytes hash to what the host computes here; every way out of the granted
//! directory is refused (`..`, absolute names, symbolic links to a file or a folder
//! outside, NUL, a pipe) and nothing outside it reaches the plugin or the journal;
//! without a grant every open is `not-granted`; a replay needs no file (the
//! directory deleted), and `replay --plugin` serves the recorded bytes in other
//! chunks or stops on a file the recording never opened; the plan lists the files.
//!
//! The files capability does not depend on the database: the main streaming test
//! runs on every dialect, the rest on SQLite.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use migrun::db::{Access, Dialect};
use migrun::value::Value;
use sha2::{Digest, Sha256};

use crate::support::cli::{Outcome, Workspace};
use crate::support::database::{TestDatabase, for_each_dialect};
use crate::support::plugins::{self, cargo_command, target_dir, workspace_root};

const PLUGIN: &str = "files-guest";

/// 5 MiB and a bit: 81 chunks of 64 KiB, 6 reads at the host's 1 MiB cap.
const BIG: usize = 5 * 1024 * 1024 + 1234;

/// Deterministic bytes that compress badly (a xorshift stream).
fn big_bytes() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..BIG)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The guest built with `--cfg files_guest_v2` (reads in other chunks, opens `v2-only.txt`).
fn files_guest_v2() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = target_dir().join("variants-files");
            let mut cmd = cargo_command();
            cmd.current_dir(workspace_root())
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "-p",
                    PLUGIN,
                ])
                .arg("--target-dir")
                .arg(&dir)
                .env("RUSTFLAGS", "--cfg files_guest_v2");
            plugins::run_build("files-guest v2", &mut cmd);
            dir.join("wasm32-wasip2/release/files_guest.wasm")
        })
        .clone()
}

/// A workspace with `target` on `db`, `[files] dir = "mappings"` when `granted`, and the
/// plugin's `[config]`.
fn workspace(db: &TestDatabase, granted: bool, config: &str) -> Workspace {
    let ws = Workspace::new();
    let files = if granted {
        "[files]\ndir = \"mappings\"\n\n"
    } else {
        ""
    };
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n{files}[config]\n{config}\n",
        db.url
    ));
    ws
}

fn run(ws: &Workspace, args: &[&str]) -> Outcome {
    let plugin = plugins::plugin(PLUGIN);
    let mut all = vec![plugin.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

/// The granted folder with `big.bin`, `grants.toml`, `sub/levels.csv` and `v2-only.txt`.
fn granted_files(ws: &Workspace) -> PathBuf {
    let dir = ws.path().join("mappings");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("big.bin"), big_bytes()).unwrap();
    std::fs::write(dir.join("grants.toml"), "[levels]\nowner = \"admin\"\n").unwrap();
    std::fs::write(dir.join("sub/levels.csv"), "level,grant\n1,read\n").unwrap();
    std::fs::write(
        dir.join("v2-only.txt"),
        "only the next version reads this\n",
    )
    .unwrap();
    dir
}

/// A value as text (MariaDB may hand text back as bytes).
fn text(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Null => "NULL".to_owned(),
        other => other.to_string(),
    }
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        other => text(other).parse().unwrap_or_else(|_| panic!("{other:?}")),
    }
}

/// One `file_reads` row.
#[derive(Debug)]
struct FileRow {
    outcome: String,
    size: i64,
    sha256_host: String,
    sha256_guest: String,
    chunks: i64,
}

/// Every `file_reads` row, by name.
async fn file_rows(db: &TestDatabase) -> std::collections::BTreeMap<String, FileRow> {
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn
        .query(
            "SELECT name, outcome, size, sha256_host, sha256_guest, chunks FROM file_reads",
            &[],
        )
        .await
        .expect("read file_reads");
    conn.close().await;
    rows.rows
        .iter()
        .map(|r| {
            (
                text(&r[0]),
                FileRow {
                    outcome: text(&r[1]),
                    size: int(&r[2]),
                    sha256_host: text(&r[3]),
                    sha256_guest: text(&r[4]),
                    chunks: int(&r[5]),
                },
            )
        })
        .collect()
}

fn journal_of(ws: &Workspace, report: &serde_json::Value) -> PathBuf {
    ws.path()
        .join(report["journal"]["path"].as_str().expect("journal path"))
}

/// A granted file of several MiB streams in 64 KiB chunks (and in 1 MiB ones when the
/// plugin asks for more): the bytes the plugin hashed are the file's, on every dialect.
#[tokio::test(flavor = "multi_thread")]
async fn a_granted_file_streams_in_chunks_and_hashes_as_on_disk() {
    for_each_dialect(|db| async move {
        let ws = workspace(&db, true, "names = \"big.bin|grants.toml|sub/levels.csv\"");
        granted_files(&ws);
        let out = run(&ws, &["--json"]);
        out.expect_code(0);
        let rows = file_rows(&db).await;
        let big = &rows["big.bin"];
        assert_eq!(big.outcome, "ok", "{rows:?}");
        assert_eq!(big.size, BIG as i64);
        let on_disk = sha256_hex(&big_bytes());
        assert_eq!(big.sha256_host, on_disk);
        assert_eq!(big.sha256_guest, on_disk, "the bytes the plugin read");
        assert_eq!(big.chunks, BIG.div_ceil(65536) as i64);
        let grants = &rows["grants.toml"];
        assert_eq!(grants.outcome, "ok");
        assert_eq!(
            grants.sha256_guest,
            sha256_hex(b"[levels]\nowner = \"admin\"\n")
        );
        assert_eq!(rows["sub/levels.csv"].outcome, "ok");
        // The report lists what was read.
        let report = out.json();
        let listed = report["files_read"].as_array().expect("files_read");
        let names: Vec<&str> = listed.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["big.bin", "grants.toml", "sub/levels.csv"]);
        assert_eq!(listed[0]["sha256"], on_disk);
        assert_eq!(listed[0]["size"], BIG as u64);
        assert_eq!(listed[0]["bytes_read"], BIG as u64);
    })
    .await;
}

/// A plugin asking for 4 MiB at a time gets at most 1 MiB per read: a large file is never
/// whole in its memory.
#[tokio::test(flavor = "multi_thread")]
async fn one_read_returns_at_most_one_mebibyte() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let ws = workspace(&db, true, "names = \"big.bin\"\nchunk = 4194304");
    granted_files(&ws);
    run(&ws, &[]).expect_code(0);
    let rows = file_rows(&db).await;
    assert_eq!(rows["big.bin"].outcome, "ok");
    assert_eq!(rows["big.bin"].chunks, 6, "5 MiB and a bit in 1 MiB reads");
    assert_eq!(rows["big.bin"].sha256_guest, sha256_hex(&big_bytes()));
}

/// Every way out of the granted directory is refused by the host, with the kind of
/// refusal the contract names, and nothing outside it reaches the plugin or the journal;
/// the WASI file system stays shut although files are granted.
#[tokio::test(flavor = "multi_thread")]
async fn every_escape_from_the_granted_directory_is_refused() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let secret = "SECRET-OUTSIDE-THE-GRANT";
    let ws = Workspace::new();
    let granted = granted_files(&ws);
    let outside = ws.path().join("secret.txt");
    std::fs::write(&outside, secret).unwrap();
    let outside_dir = ws.path().join("elsewhere");
    std::fs::create_dir_all(&outside_dir).unwrap();
    std::fs::write(outside_dir.join("secret.txt"), secret).unwrap();
    std::os::unix::fs::symlink("../secret.txt", granted.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink(&outside, granted.join("absolute-link")).unwrap();
    std::os::unix::fs::symlink("../elsewhere", granted.join("link-to-dir")).unwrap();
    std::os::unix::fs::symlink("link-to-file", granted.join("link-to-link")).unwrap();
    let fifo = granted.join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let attempts: Vec<(String, &str)> = vec![
        ("../secret.txt".into(), "escape"),
        ("sub/../../secret.txt".into(), "escape"),
        ("/etc/passwd".into(), "escape"),
        (outside.display().to_string(), "escape"),
        ("link-to-file".into(), "escape"),
        ("absolute-link".into(), "escape"),
        ("link-to-dir/secret.txt".into(), "escape"),
        ("link-to-link".into(), "escape"),
        ("big.bin\u{0}.txt".into(), "invalid-name"),
        ("sub".into(), "invalid-name"),
        ("pipe".into(), "invalid-name"),
        ("missing.toml".into(), "not-found"),
    ];
    let names: Vec<String> = attempts.iter().map(|(n, _)| n.clone()).collect();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[files]\ndir = \"mappings\"\n\n\
         [config]\nmode = \"escape\"\nnames = {}\n",
        db.url,
        toml_string(&names.join("|"))
    ));
    let out = run(&ws, &["--json"]);
    out.expect_code(0);
    let report = out.json();
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["ok"], true, "{check}");
    }
    let rows = file_rows(&db).await;
    for (name, kind) in &attempts {
        let row = &rows[name];
        assert!(
            row.outcome.starts_with(&format!("{kind}: ")),
            "{name:?}: expected {kind}, got {:?}",
            row.outcome
        );
        assert_eq!(row.size, 0, "{name:?} opened nothing");
    }
    // Nothing of the secret is in the journal (chunks are hex in its JSON form).
    let journal = journal_of(&ws, &report);
    let shown = ws.migrun(&["journal", "show", "--json", journal.to_str().unwrap()]);
    shown.expect_code(0);
    assert!(!shown.stdout.contains(secret));
    assert!(!shown.stdout.contains(&hex::encode(secret)));
    assert!(shown.stdout.contains("\"error_kind\":\"escape\""));
    // The wasi doors were tried and reported shut.
    let wasi: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("wasi "))
        .collect();
    assert!(wasi.len() >= 3, "{wasi:?}");
    // The run opened nothing: the report lists no file read.
    assert!(report.get("files_read").is_none(), "{report}");
}

/// A TOML basic string holding `s` (NUL and quotes escaped).
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Without `[files]` every open is `not-granted`, saying how to grant; a granted folder
/// that does not exist stops the run before anything is written.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_grant_every_open_is_not_granted() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let ws = workspace(&db, false, "names = \"grants.toml\"");
    granted_files(&ws);
    let out = run(&ws, &["--json"]);
    out.expect_code(3);
    let rows = file_rows(&db).await;
    assert!(
        rows["grants.toml"]
            .outcome
            .starts_with("not-granted: the operator granted no files directory: set `[files] dir`"),
        "{rows:?}"
    );

    let other = TestDatabase::create(Dialect::Sqlite).await.unwrap();
    let ws = workspace(&other, false, "names = \"grants.toml\"");
    let out = run(&ws, &["--files", "no-such-folder"]);
    out.expect_code(2)
        .expect_output("the files directory no-such-folder (granted by [files] dir or --files) cannot be opened")
        .expect_output("nothing was changed");
}

/// `--files DIR` grants a folder without a config entry; `files.list` lists it sorted
/// (folders end with `/`) and refuses to list outside it.
#[tokio::test(flavor = "multi_thread")]
async fn the_files_flag_grants_a_folder_and_list_stays_inside_it() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let ws = workspace(&db, false, "mode = \"list\"\nnames = \".|sub|..|/\"");
    granted_files(&ws);
    let out = run(&ws, &["--files", "mappings"]);
    out.expect_code(3);
    let rows = file_rows(&db).await;
    assert_eq!(rows["."].outcome, "ok big.bin,grants.toml,sub/,v2-only.txt");
    assert_eq!(rows["sub"].outcome, "ok levels.csv");
    assert!(rows[".."].outcome.starts_with("escape: "), "{rows:?}");
    assert!(rows["/"].outcome.starts_with("escape: "), "{rows:?}");
}

/// A run's journal holds every byte read: the replay verifies with the granted folder
/// deleted, `journal verify` and `journal stats` read the new entries, and
/// `replay --plugin` serves the recorded bytes in the new version's chunks — or stops,
/// naming the file, when the new version opens one the recording never opened.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_needs_no_files() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let ws = workspace(&db, true, "names = \"big.bin|v2-only.txt\"");
    let granted = granted_files(&ws);
    let out = run(&ws, &["--json"]);
    out.expect_code(0);
    let journal = journal_of(&ws, &out.json());
    std::fs::remove_dir_all(&granted).unwrap();
    let journal = journal.to_str().unwrap();

    ws.migrun(&["replay", journal])
        .expect_code(0)
        .expect_output("verified");
    ws.migrun(&["journal", "verify", journal]).expect_code(0);
    let stats = ws.migrun(&["journal", "stats", "--json", journal]);
    stats.expect_code(0);
    let stats = stats.json();
    assert_eq!(stats["files_read"]["big.bin"], BIG as u64, "{stats}");
    assert_eq!(stats["calls"]["file-open"], 2);

    // The next version reads the same bytes in chunks of 131073 (and `v2-only.txt` again):
    // its writes differ only by the chunk counts.
    let v2 = files_guest_v2();
    let compared = ws.migrun(&[
        "replay",
        journal,
        "--plugin",
        v2.to_str().unwrap(),
        "--json",
    ]);
    let report = compared.json();
    assert_eq!(report["outcome"], "compared", "{report}");
    let table = &report["diff"]["tables"]["target.file_reads"];
    let changed = table["changed"].as_array().expect("changed rows");
    assert_eq!(changed.len(), 1, "{table}");
    assert_eq!(changed[0]["key"], serde_json::json!(["text", "big.bin"]));
    let changes = changed[0]["changes"].as_array().unwrap();
    assert_eq!(
        changes.len(),
        1,
        "only the chunk count differs: {changes:?}"
    );
    assert_eq!(changes[0][0], "#6");

    // A recording that never opened `v2-only.txt` cannot answer the next version.
    let db2 = TestDatabase::create(Dialect::Sqlite).await.unwrap();
    let ws2 = workspace(&db2, true, "names = \"grants.toml\"");
    granted_files(&ws2);
    let out = run(&ws2, &["--json"]);
    out.expect_code(0);
    let journal2 = journal_of(&ws2, &out.json());
    ws2.migrun(&[
        "replay",
        journal2.to_str().unwrap(),
        "--plugin",
        v2.to_str().unwrap(),
    ])
    .expect_code(1)
    .expect_output("files.open(\"v2-only.txt\")")
    .expect_output("the recorded run never opened `v2-only.txt`");
}

/// A dry-run reads the files like a run, and its plan (JSON and text) lists each with its
/// size and sha256; nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn the_plan_lists_the_files_read() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let ws = workspace(&db, true, "names = \"grants.toml|big.bin\"");
    granted_files(&ws);
    let out = run(&ws, &["--dry-run", "--json", "--plan-out", "plan.json"]);
    out.expect_code(0);
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path().join("plan.json")).unwrap()).unwrap();
    let files = plan["files"].as_array().expect("plan.files");
    assert_eq!(files.len(), 2, "{plan}");
    assert_eq!(files[0]["name"], "big.bin");
    assert_eq!(files[0]["size"], BIG as u64);
    assert_eq!(files[0]["sha256"], sha256_hex(&big_bytes()));
    assert_eq!(files[1]["name"], "grants.toml");
    assert_eq!(out.json()["plan"]["files"], plan["files"]);

    let text = run(&ws, &["--dry-run"]);
    text.expect_code(0)
        .expect_output("files read (2, from the granted directory)")
        .expect_output(&format!(
            "big.bin  {} bytes  sha256 {}",
            migrun::plan::thousands(BIG as u64),
            sha256_hex(&big_bytes())
        ));
    // Nothing was written by either dry-run.
    let mut conn = db.connect(Access::ReadOnly).await;
    let tables = conn
        .query(
            "SELECT count(*) FROM sqlite_master WHERE name = 'file_reads'",
            &[],
        )
        .await
        .unwrap();
    conn.close().await;
    assert_eq!(tables.rows[0][0], Value::Int(0));
}

/// The granted folder is resolved against the config file's folder, whatever the
/// current folder is.
#[tokio::test(flavor = "multi_thread")]
async fn the_granted_folder_is_relative_to_the_config_file() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let ws = workspace(&db, true, "names = \"grants.toml\"");
    granted_files(&ws);
    let elsewhere = Workspace::new();
    let config = ws.path().join("migrun.toml");
    let plugin = plugins::plugin(PLUGIN);
    elsewhere
        .migrun(&[
            plugin.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--journal-dir",
            "journal",
        ])
        .expect_code(0);
    assert_eq!(file_rows(&db).await["grants.toml"].outcome, "ok");
    let _: &Path = elsewhere.path();
}
