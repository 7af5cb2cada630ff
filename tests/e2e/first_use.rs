//! What a newcomer meets on first use (issue 22): `status` without a config and with a
//! checkpointed unit, relative paths from another folder, warnings a person can read,
//! output without a terminal, the scaffold's `.gitignore`.

use migrun::db::Dialect;

use crate::backfill::{expanded_sqlite_accounts, rename_config_with};
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;

/// `migrun status --db app=…` needs no migrun.toml (as a run does not), and a unit that
/// stopped after some checkpoints reads as checkpointed, with how far it got and a legend.
#[tokio::test(flavor = "multi_thread")]
async fn status_without_config_shows_a_checkpointed_unit() {
    let Some((db, ws, plugin)) = expanded_sqlite_accounts(500, 0, 0).await else {
        return;
    };
    // The backfill stops before batch 4: three batches committed with their checkpoint.
    ws.config(&rename_config_with(&db, 500, 3, 0, 0));
    ws.migrun(&[&plugin, "--only", "backfill"]).expect_code(1);

    let elsewhere = Workspace::new();
    let db_arg = format!("app={}", db.url);
    let out = elsewhere.migrun(&["status", "--db", &db_arg]);
    out.expect_code(0)
        .expect_output("◐ checkpointed: unfinished, the next run resumes after its last checkpoint")
        .expect_output("✓ expand")
        .expect_output("checkpoint 3 (key 1500, 1500 rows done)");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("  ◐ backfill") && l.contains("checkpoint 3")),
        "{}",
        out.stdout
    );
    let json = elsewhere
        .migrun(&["status", "--db", &db_arg, "--json"])
        .expect_code(0)
        .json();
    let target = &json["targets"][0];
    assert_eq!(target["connection"], "app", "{json}");
    let states = target["checkpoint_states"].as_array().expect("states");
    assert!(
        states
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.starts_with("backfill/1"))),
        "{json}"
    );

    // With nothing to read, status says what it looked for (and still exits 2).
    Workspace::new()
        .migrun(&["status"])
        .expect_code(2)
        .expect_output("no migrun.toml here, no --db name=url");
}

/// Without a config, status reads the embedded SQLite files a run without one wrote.
#[tokio::test(flavor = "multi_thread")]
async fn status_without_config_reads_the_embedded_databases() {
    let Some(_db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let ws = Workspace::new();
    let plugin = crate::support::plugins::plugin("auth-consolidation");
    let data = ws.path().join("migrun-data");
    std::fs::create_dir_all(&data).unwrap();
    let source = format!("sqlite://{}", data.join("source.sqlite").display());
    migrun_fixtures::seed_auth_users(&source, 20, 1)
        .await
        .expect("seed");
    ws.migrun(&[plugin.to_str().unwrap(), "--no-backup"])
        .expect_code(0);
    ws.migrun(&["status"])
        .expect_code(0)
        .expect_output("target  sqlite://migrun-data/target.sqlite")
        .expect_output("✓ copy-users");
}

/// One rule for relative paths: with `-c <other folder>/migrun.toml`, the SQLite files, the
/// journal and the backups are all in the config's folder, none in the current one; the
/// report prints where they are, and its undo command works as printed from here.
#[tokio::test(flavor = "multi_thread")]
async fn relative_paths_follow_the_config_from_another_folder() {
    let Some(_db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let project = Workspace::new();
    let project_dir = project.path().canonicalize().unwrap();
    migrun_fixtures::seed_auth_users(
        &format!("sqlite://{}", project_dir.join("src.sqlite").display()),
        20,
        1,
    )
    .await
    .expect("seed");
    let config = project.config(
        "[connections.source]\nurl = \"sqlite://src.sqlite\"\naccess = \"read-only\"\n\
         [connections.target]\nurl = \"sqlite://target.sqlite?mode=rwc\"\n",
    );
    let elsewhere = Workspace::new();
    let plugin = crate::support::plugins::plugin("auth-consolidation");
    let config_arg = config.to_str().unwrap();
    let out = elsewhere.migrun(&[plugin.to_str().unwrap(), "-c", config_arg]);
    out.expect_code(0)
        .expect_output(&format!(
            "sqlite://{}",
            project_dir.join("target.sqlite").display()
        ))
        .expect_output(&format!(
            "journal   {}",
            project_dir.join("migrun-journal").display()
        ))
        .expect_output(&format!(
            "in {} — undo with: migrun restore",
            project_dir.join("migrun-backups").display()
        ))
        .expect_output(&format!("--yes -c {config_arg}"));
    for made in ["target.sqlite", "migrun-journal", "migrun-backups"] {
        assert!(project_dir.join(made).exists(), "{made} next to the config");
    }
    let strays: Vec<_> = std::fs::read_dir(elsewhere.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != ".migrun-cache")
        .collect();
    assert!(
        strays.is_empty(),
        "nothing in the current folder: {strays:?}"
    );

    // status from here holds the rows against their journals (found: verified, not "unverified").
    let status = elsewhere.migrun(&["status", "-c", config_arg]);
    status.expect_code(0).expect_output("✓ copy-users");
    assert!(!status.stdout.contains("unverified"), "{}", status.stdout);

    // The undo command, as printed, restores from here.
    let undo = out
        .stdout
        .lines()
        .find_map(|l| l.split_once("undo with: ").map(|(_, cmd)| cmd.to_owned()))
        .expect("an undo command");
    let words: Vec<&str> = undo.split_whitespace().skip(1).collect();
    elsewhere
        .migrun(&words)
        .expect_code(0)
        .expect_output("every table matches it");
}

/// A SQLite target for the `noisy` guest's `repeats` behaviour: 400 warnings of one message
/// with the row's fields, and one failing check.
async fn repeats_workspace() -> Option<(TestDatabase, Workspace)> {
    let target = TestDatabase::create(Dialect::Sqlite).await?;
    target
        .exec("CREATE TABLE noisy_log (unit VARCHAR(200))")
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nbehaviour = \"repeats\"\n",
        target.url
    ));
    Some((target, ws))
}

/// The text report shows a plugin's repeated warning once, counted, with the fields of a
/// few rows; the dry-run summary counts the plugin's warnings, not only the lint's.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_plugin_warnings_are_grouped_with_their_fields() {
    let Some((_target, ws)) = repeats_workspace().await else {
        return;
    };
    let plugin = crate::support::plugins::plugin("noisy");
    let dry = ws.migrun(&[plugin.to_str().unwrap(), "--dry-run"]);
    dry.expect_code(3)
        .expect_output(
            "  ! [repeats] 400× cannot parse amount; amount_cents stays NULL — \
             id=7 amount_text=\"12,50 EUR\", id=14 amount_text=\"n/a\", \
             id=21 amount_text=\"12,50 EUR\", and 397 more\n",
        )
        .expect_output("400 warning(s) (0 lint, 400 from the plugin)");
    assert_eq!(
        dry.stdout.matches("cannot parse amount").count(),
        1,
        "{}",
        dry.stdout
    );
    // stderr streams each one with its fields, quoted where a value has spaces or slashes.
    assert!(
        dry.stderr.contains(
            "warning: cannot parse amount; amount_cents stays NULL  id=14 amount_text=\"n/a\""
        ),
        "{}",
        dry.stderr
    );
}

/// No escape sequences where no terminal is, and none under `NO_COLOR`; each failed check is
/// printed once on stderr. `script` gives migrun a real terminal.
#[tokio::test(flavor = "multi_thread")]
async fn no_colour_without_a_terminal_or_with_no_color_and_failed_checks_once() {
    let Some((_target, ws)) = repeats_workspace().await else {
        return;
    };
    let plugin = crate::support::plugins::plugin("noisy");
    // stderr to a pipe: the failed check once, no escape byte.
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--dry-run"]);
    out.expect_code(3);
    assert_eq!(
        out.stderr.matches("every amount parsed").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains('\u{1b}'), "{}", out.stderr);

    if !std::process::Command::new("script")
        .args(["-qec", "true", "/dev/null"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let _: Option<()> =
            crate::support::plugins::toolchain_missing("`script` (util-linux) is not installed");
        return;
    }
    let sgr = |bytes: &[u8]| {
        bytes
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == b"\x1b[")
            .any(|(i, _)| {
                bytes[i + 2..]
                    .iter()
                    .find(|b| !(b.is_ascii_digit() || **b == b';'))
                    == Some(&b'm')
            })
    };
    // `-vv` turns on the host's debug log, coloured on a terminal.
    let in_terminal = |env: &str, args: &str| {
        let command = format!(
            "env {env} {} {} --dry-run {args}",
            env!("CARGO_BIN_EXE_migrun"),
            plugin.display()
        );
        std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(ws.path())
            .env_remove("MIGRUN_LOG")
            .env_remove("NO_COLOR")
            .env(migrun::runtime::cache::CACHE_DIR_ENV, ws.cache_dir())
            .output()
            .expect("run script")
            .stdout
    };
    assert!(
        sgr(&in_terminal("", "-vv")),
        "a terminal gets colours (else this test proves nothing)"
    );
    let plain = in_terminal("NO_COLOR=1", "-vv");
    assert!(
        !sgr(&plain),
        "NO_COLOR: no colour\n{}",
        String::from_utf8_lossy(&plain)
    );
    // stdout a terminal, stderr a file: the file gets no escape byte, and each check once.
    in_terminal("", "2>stderr.txt");
    let stderr = std::fs::read_to_string(ws.path().join("stderr.txt")).unwrap();
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert_eq!(stderr.matches("every amount parsed").count(), 1, "{stderr}");
    in_terminal("", "-vv 2>stderr.txt");
    let stderr = std::fs::read_to_string(ws.path().join("stderr.txt")).unwrap();
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

/// Counts that mean one thing across an interrupted, resumed unit: the failed run says how
/// many batches and rows its checkpoints kept (not "rolled back … rows"), and the ledger's
/// `rows_written` of the finished unit is its total over both runs, not the last run's share.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_unit_counts_its_kept_and_total_rows() {
    let Some((db, ws, plugin)) = expanded_sqlite_accounts(500, 0, 0).await else {
        return;
    };
    ws.config(&rename_config_with(&db, 500, 3, 0, 0));
    let failed = ws.migrun(&[&plugin, "--only", "backfill"]);
    failed.expect_code(1).expect_output(
        "failed after 3 committed batches (1,500 rows kept); the open batch was rolled back",
    );
    assert!(
        !failed.stdout.contains("failed, rolled back"),
        "{}",
        failed.stdout
    );
    let json = ws
        .migrun(&[&plugin, "--only", "backfill", "--json"])
        .expect_code(1)
        .json();
    // The second try resumes and stops 3 batches later again: its own 3 batches are kept.
    assert_eq!(json["units"][0]["kept"]["checkpoints"], 3, "{json}");
    assert_eq!(json["units"][0]["kept"]["rows"], 1500, "{json}");

    ws.config(&rename_config_with(&db, 500, 0, 0, 0));
    ws.migrun(&[&plugin, "--only", "backfill"]).expect_code(0);
    let status = ws.migrun(&["status", "--json"]).expect_code(0).json();
    let backfill = status["targets"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unit"] == "backfill")
        .cloned()
        .expect("the backfill's ledger row");
    assert_eq!(backfill["status"], "finished", "{backfill}");
    assert_eq!(
        backfill["rows_written"], 20_000,
        "the unit's total over its three runs: {backfill}"
    );
}

/// The first build compiles only what migrun uses (issue 22 item 7): the demo's build of
/// `migrun` must not pull in sqlx's compile-time query macros (a second build of sqlx and of
/// SQLite's C amalgamation), WASI preview 1 (wiggle and witx: migrun runs components through
/// preview 2 only), ICU4X's IDNA tables (`url` uses the unicode-rs backend), `futures`'
/// macros, or two versions of cap-std. Read from `cargo tree` of the locked graph, so a new
/// dependency or a feature turned back on fails here with the path that brings it in.
#[test]
fn the_first_build_leaves_out_what_migrun_does_not_use() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let tree = std::process::Command::new(&cargo)
        .current_dir(crate::support::plugins::workspace_root())
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            "migrun",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        tree.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let tree = String::from_utf8(tree.stdout).expect("utf-8");
    let crates: std::collections::BTreeSet<(&str, &str)> = tree
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .collect();
    assert!(
        crates.iter().any(|(name, _)| *name == "wasmtime"),
        "not the graph of migrun:\n{tree}"
    );
    let unwanted = [
        (
            "sqlx-macros",
            "sqlx's `macros` feature (no `query!` is used)",
        ),
        (
            "wiggle",
            "wasmtime-wasi's `p1` feature (components use preview 2 only)",
        ),
        ("witx", "wasmtime-wasi's `p1` feature"),
        (
            "icu_normalizer",
            "url's ICU4X IDNA backend (pin idna_adapter to the unicode-rs one)",
        ),
        (
            "futures-macro",
            "futures' default features (its macros are unused)",
        ),
    ];
    for (name, why) in unwanted {
        assert!(
            !crates.iter().any(|(crate_name, _)| *crate_name == name),
            "the build of migrun compiles {name}: {why}. `cargo tree -p migrun -i {name}` says why"
        );
    }
    for name in ["cap-std", "cap-primitives", "sqlx-core", "wasmtime"] {
        let versions: std::collections::BTreeSet<&str> = crates
            .iter()
            .filter(|(crate_name, _)| *crate_name == name)
            .map(|(_, version)| *version)
            .collect();
        assert_eq!(
            versions.len(),
            1,
            "{name} is compiled in {} versions: {versions:?}",
            versions.len()
        );
    }
}
