//! Kubernetes-shaped workers: docs/OPERATIONS.md's Indexed Job manifest validated offline
//! (PyPI `kubernetes-validate`, installed by `scripts/guest-toolchains`), and N `migrun`
//! processes started the way the Job controller starts its pods — `--shard auto` with
//! `JOB_COMPLETION_INDEX` and `MIGRUN_SHARD_COUNT` in their environment — one of them killed
//! mid-run and started again with the same index, as `backoffLimitPerIndex` does. Every
//! unit must end up migrated exactly once: in the target table and in the ledger.

use std::process::Command;

use migrun::db::{Access, Dialect};
use migrun::value::Value;

use crate::support::cli::{Workspace, wait_for_line};
use crate::support::database::{TestDatabase, require_dbs};
use crate::support::plugins;

/// The `yaml` block under "As a Kubernetes Indexed Job" in docs/OPERATIONS.md.
fn documented_manifest() -> String {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/OPERATIONS.md"),
    )
    .expect("docs/OPERATIONS.md");
    let section = doc
        .find("### As a Kubernetes Indexed Job")
        .expect("the Indexed Job section");
    let start = doc[section..].find("```yaml\n").expect("its yaml block") + section + 8;
    let end = doc[start..].find("```").expect("the block's end") + start;
    doc[start..end].to_owned()
}

/// The manifest validates against Kubernetes' schemas (strict: an unknown or misspelt field
/// fails), uses `--shard auto`, and sets `MIGRUN_SHARD_COUNT` to its `completions`.
#[test]
fn the_indexed_job_manifest_in_operations_validates() {
    let manifest = documented_manifest();
    for needle in [
        "completionMode: Indexed",
        "backoffLimitPerIndex:",
        "--shard=auto",
        "name: MIGRUN_SHARD_COUNT",
    ] {
        assert!(manifest.contains(needle), "manifest lacks {needle}");
    }
    let field = |key: &str| -> String {
        let line = manifest
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in the manifest"));
        line.trim_start()[key.len()..]
            .split('#')
            .next()
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_owned()
    };
    let completions = field("completions:");
    let count_line = manifest
        .lines()
        .skip_while(|l| !l.contains("name: MIGRUN_SHARD_COUNT"))
        .nth(1)
        .expect("MIGRUN_SHARD_COUNT's value");
    assert!(
        count_line.contains(&format!("value: \"{completions}\"")),
        "MIGRUN_SHARD_COUNT must equal completions ({completions}): {count_line}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, &manifest).unwrap();
    let validated = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(&file)
        .output();
    let output = match validated {
        Ok(output) => output,
        Err(e) => {
            assert!(
                !require_dbs(),
                "kubernetes-validate is not installed ({e}): run scripts/guest-toolchains"
            );
            eprintln!("skipped: kubernetes-validate not installed ({e})");
            return;
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the manifest does not validate:\n{said}"
    );
    assert!(said.contains("passed for resource job/"), "{said}");

    // The check has teeth: a misspelt field fails it.
    std::fs::write(
        &file,
        manifest.replace("backoffLimitPerIndex", "backofLimitPerIndex"),
    )
    .unwrap();
    let broken = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!broken.status.success(), "a misspelt field passed");
}

/// The target's rows of one text column, sorted.
async fn texts(target: &TestDatabase, sql: &str) -> Vec<String> {
    let mut conn = target.connect(Access::ReadOnly).await;
    conn.query(sql, &[])
        .await
        .unwrap()
        .rows
        .iter()
        .map(|r| match &r[0] {
            Value::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Three pods of an Indexed Job (`--shard auto`, two jobs each, `--keep-going`, `--json`);
/// pod 1 is killed after its first unit finished and started again with index 1. Every
/// unit is in `work_log` once, the ledger holds each once, no report has a failed unit (a
/// unit run twice would fail on `work_log`'s key), and the restarted pod ran only what the
/// killed one had not committed.
#[tokio::test(flavor = "multi_thread")]
async fn indexed_job_workers_killed_and_restarted_migrate_each_unit_once_postgres() {
    let Some(target) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    target
        .exec("CREATE TABLE work_log (unit VARCHAR(40) PRIMARY KEY)")
        .await;
    const UNITS: u32 = 24;
    const PODS: u32 = 3;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nunits = {UNITS}\nspin = 150000000\n",
        target.url
    ));
    let plugin = plugins::plugin("work-units");
    let plugin = plugin.to_str().unwrap();
    let count = PODS.to_string();
    let pod = |index: u32| {
        let index = index.to_string();
        let journals = format!("--journal-dir=journals/{index}");
        ws.spawn_with_env(
            &[
                plugin,
                "--shard=auto",
                "--keep-going",
                "--jobs=2",
                &journals,
                "--json",
            ],
            &[
                ("JOB_COMPLETION_INDEX", &index),
                ("MIGRUN_SHARD_COUNT", &count),
            ],
        )
    };
    let mut pods: Vec<_> = (0..PODS).map(pod).collect();
    // Pod 1 dies after its first unit finished (the event on its stderr), units in flight.
    wait_for_line(&mut pods[1], "\"event\":\"unit-finished\"");
    pods[1].kill().expect("SIGKILL");
    pods[1].wait().unwrap();
    // The killed pod's run, by its journal (named after the run).
    let killed_run: Vec<String> = std::fs::read_dir(ws.path().join("journals/1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(killed_run.len(), 1, "{killed_run:?}");
    // The controller starts index 1 again.
    pods[1] = pod(1);

    let mut committed = Vec::new();
    let mut skipped = Vec::new();
    for (index, child) in pods.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(0),
            "pod {index}:\n{stdout}\n{stderr}"
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        for unit in report["units"].as_array().unwrap() {
            let name = unit["name"].as_str().unwrap().to_owned();
            assert!(
                migrun::ledger::in_shard(&name, index as u32, PODS),
                "pod {index} ran {name}, not of its shard"
            );
            match unit["status"].as_str().unwrap() {
                "committed" => committed.push(name),
                "skipped" => skipped.push(name),
                other => panic!("pod {index}: {name} {other}: {report}"),
            }
        }
    }
    // What the restarted pod skipped is exactly what the killed pod had committed.
    let ledger_rows = texts(&target, "SELECT unit FROM migrun_ledger ORDER BY unit").await;
    skipped.sort();
    let mut all = committed.clone();
    all.extend(skipped.iter().cloned());
    all.sort();
    let expected: Vec<String> = (0..UNITS).map(|i| format!("unit-{i:02}")).collect();
    assert_eq!(all, expected, "each unit committed once, by one pod");
    assert_eq!(
        texts(&target, "SELECT unit FROM work_log ORDER BY unit").await,
        expected
    );
    assert_eq!(ledger_rows, expected, "one ledger row per unit");
    assert!(
        !skipped.is_empty(),
        "the restarted pod skipped the killed one's units"
    );
    let killed_committed = texts(
        &target,
        &format!(
            "SELECT unit FROM migrun_ledger WHERE run_id = '{}' ORDER BY unit",
            killed_run[0]
        ),
    )
    .await;
    assert_eq!(skipped, killed_committed);
}

/// `--shard auto` outside an Indexed Job, or without the count: refused before anything
/// runs (exit 2), naming the variable and the way to give it.
#[test]
fn shard_auto_without_the_jobs_variables_is_refused() {
    let ws = Workspace::new();
    let plugin = plugins::plugin("work-units");
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--shard", "auto"]);
    out.expect_code(2)
        .expect_output("--shard auto: JOB_COMPLETION_INDEX is not set")
        .expect_output("Nothing was run");
    assert!(
        !ws.path().join("migrun-data").exists(),
        "nothing was created"
    );
}
