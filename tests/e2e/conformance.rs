//! Conformance: one scenario, three languages, one behaviour.
//!
//! The accounts-merge plugin exists in Rust (`plugins/accounts-merge`, the
//! reference), Python (`plugins/accounts-merge-py`, on `migrun_sdk`, componentize-py) and
//! JavaScript (`plugins/accounts-merge-js`, the JavaScript SDK `sdk/js`, bundled with
//! esbuild and built by componentize-qjs), each built from
//! source. On SQLite and on PostgreSQL, the twins read one seeded
//! `users` table and each writes into a target of its own: dry-run, run,
//! rerun. Everything a user or auditor can observe must be the same as the
//! Rust twin's, compared in one place ([`Observation::assert_same_as`]):
//!
//! - the run reports: units and their writes, checks, log messages, failure;
//! - the journals: the sequence of writes (every `execute` and `bulk-insert`,
//!   with SQL, parameters, rows and results), and the whole sequence of host
//!   calls and transactions after the header (which names the plugin's sha256);
//! - the final checksums of `accounts` and `identities`.
//!
//! Each twin's journal then replays to "verified" with its own plugin, and a
//! second scenario makes all three fail on the same constraint violation,
//! with the same report and the same journal.
//!
//! The components are compiled once per test process and run in-process
//! (Python and JavaScript components take 10–15 s each for wasmtime to compile).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use migrun::config::RunConfig;
use migrun::db::Dialect;
use migrun::journal::{Entry, JournalReader};
use migrun::observer::Silent;
use migrun::run::{self, ReplayOutcome, RunOptions, RunReport};
use migrun::runtime::sandbox::SandboxSeeds;
use migrun::runtime::{LoadedPlugin, Runtime};
use migrun::value::Value;
use serde_json::Value as Json;

use crate::support::checksum::{row_count, table_checksum, user_tables};
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// Users in the fixture: 13 cursor batches of [`BATCH`], the last one partial.
const USERS: u32 = 1234;
const FIXTURE_SEED: u64 = 7;
const BATCH: &str = "100";
/// The same seeds for every run, so that runs are reproducible to the byte.
const SEEDS: SandboxSeeds = SandboxSeeds {
    clock_start_unix_nanos: 1_700_000_000_000_000_000,
    random_seed: 42,
};
/// The tables the plugin writes.
const TABLES: [&str; 2] = ["accounts", "identities"];

/// One implementation of the scenario.
struct Twin {
    language: &'static str,
    plugin: LoadedPlugin,
}

/// The twins whose toolchain is present, Rust first; built and compiled once per process.
fn twins() -> &'static [Twin] {
    static TWINS: OnceLock<Vec<Twin>> = OnceLock::new();
    TWINS.get_or_init(|| {
        let built = [
            ("rust", Some(plugins::plugin("accounts-merge"))),
            (
                "python",
                plugins::python_plugin("plugins/accounts-merge-py"),
            ),
            (
                "javascript",
                plugins::js_plugin("plugins/accounts-merge-js"),
            ),
        ];
        built
            .into_iter()
            .filter_map(|(language, path)| {
                let path = path?;
                let started = std::time::Instant::now();
                let plugin =
                    LoadedPlugin::load_file(Runtime::shared(), &path).unwrap_or_else(|e| {
                        panic!("loading the {language} twin {}: {e}", path.display())
                    });
                eprintln!(
                    "compiled the {language} twin ({} bytes) in {:.1}s",
                    plugin.size,
                    started.elapsed().as_secs_f64()
                );
                Some(Twin { language, plugin })
            })
            .collect()
    })
}

/// What one run of a twin let us observe.
struct Observation {
    language: &'static str,
    what: String,
    /// The report as JSON, without what legitimately differs (see [`normalise`]).
    report: Json,
    /// Every journal entry after the header (which names the plugin's sha256), as JSON.
    entries: Vec<Json>,
    /// The writes the plugin made (`execute`, `bulk-insert`) with their results, in order, as JSON.
    writes: Vec<Json>,
    journal: PathBuf,
}

impl Observation {
    /// Panics, naming the first difference, unless `self` behaved as `reference` did.
    #[track_caller]
    fn assert_same_as(&self, reference: &Observation) {
        let who = format!(
            "{} ({}) vs {} ({})",
            self.language, self.what, reference.language, reference.what
        );
        if let Some(difference) = json_difference(&self.report, &reference.report, "report") {
            panic!("{who}: the reports differ at {difference}");
        }
        first_difference(
            &self.writes,
            &reference.writes,
            &format!("{who}: the journals' write sequences differ"),
        );
        first_difference(
            &self.entries,
            &reference.entries,
            &format!("{who}: the journals' call sequences differ"),
        );
    }
}

/// The first place where `actual` and `expected` differ: its path and both values.
fn json_difference(actual: &Json, expected: &Json, path: &str) -> Option<String> {
    match (actual, expected) {
        (Json::Object(a), Json::Object(e)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(e.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (a, e) = (
                    a.get(k).unwrap_or(&Json::Null),
                    e.get(k).unwrap_or(&Json::Null),
                );
                json_difference(a, e, &format!("{path}.{k}"))
            })
        }
        (Json::Array(a), Json::Array(e)) if a.len() == e.len() => a
            .iter()
            .zip(e)
            .enumerate()
            .find_map(|(i, (a, e))| json_difference(a, e, &format!("{path}[{i}]"))),
        _ if actual == expected => None,
        _ => Some(format!(
            "{path}:\n  expected {}\n  actual   {}",
            clip(expected),
            clip(actual)
        )),
    }
}

/// A value's JSON, cut to a readable length.
fn clip(value: &Json) -> String {
    let text = value.to_string();
    match text.char_indices().nth(2000) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Panics with the first differing entry of two journal excerpts.
#[track_caller]
fn first_difference(actual: &[Json], expected: &[Json], what: &str) {
    let show = |e: Option<&Json>| e.map_or_else(|| "(nothing)".to_owned(), clip);
    if let Some(i) =
        (0..actual.len().max(expected.len())).find(|&i| actual.get(i) != expected.get(i))
    {
        panic!(
            "{what} at entry {i} (of {} vs {}):\n  expected {}\n  actual   {}",
            expected.len(),
            actual.len(),
            show(expected.get(i)),
            show(actual.get(i))
        );
    }
}

/// Replaces every run id in `value`'s strings by its ordinal in `run_ids`
/// (the ledger names the run that finished a unit, and ids differ between twins).
fn replace_run_ids(value: &mut Json, run_ids: &[String]) {
    match value {
        Json::Object(map) => map.values_mut().for_each(|v| replace_run_ids(v, run_ids)),
        Json::Array(items) => items.iter_mut().for_each(|v| replace_run_ids(v, run_ids)),
        Json::String(text) => {
            for (i, id) in run_ids.iter().enumerate() {
                *text = text.replace(id.as_str(), &format!("<run {i}>"));
            }
        }
        _ => {}
    }
}

/// Removes what may differ between twins from a report: timings, the
/// plugin's sha256 (wherever the report names it), URLs, backup directories,
/// the journal's identity, run ids and the contract version (checked per twin; a plan's
/// `contract` and `databases`, each twin's target being a database of its own).
fn normalise(mut report: Json, run_ids: &[String]) -> Json {
    if let Json::Object(map) = &mut report {
        map.remove("contract");
        // A dry-run's plan names the contract and each twin's own databases too.
        if let Some(Json::Object(plan)) = map.get_mut("plan") {
            plan.remove("contract");
            plan.remove("databases");
        }
    }
    fn strip(v: &mut Json) {
        match v {
            Json::Object(map) => {
                map.retain(|key, _| {
                    !(["duration_ms", "journal", "url", "dir"].contains(&key.as_str())
                        || key.ends_with("sha256"))
                });
                map.values_mut().for_each(strip);
            }
            Json::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut report);
    replace_run_ids(&mut report, run_ids);
    report
}

/// The entries of a journal after its header, and the header's run id.
fn read_journal(path: &Path) -> (Vec<Entry>, String) {
    let (mut reader, header) =
        JournalReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut entries = Vec::new();
    while let Some((_, entry)) = reader
        .next_entry()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        entries.push(entry);
    }
    (entries, header.run_id)
}

/// A twin's working folder: its `migrun.toml` and its journals.
struct Folder {
    dir: tempfile::TempDir,
    /// The ids of the runs made here, in order.
    run_ids: std::sync::Mutex<Vec<String>>,
}

impl Folder {
    fn new(source: &str, target: &str) -> Folder {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            r#"journal_dir = "{}"

[connections.source]
url = "{source}"
access = "read-only"

[connections.target]
url = "{target}"
access = "read-write"

[config]
batch_size = {BATCH}
"#,
            dir.path().join("journals").display()
        );
        std::fs::write(dir.path().join("migrun.toml"), config).expect("write migrun.toml");
        Folder {
            dir,
            run_ids: Default::default(),
        }
    }

    async fn run(&self, twin: &Twin, what: &str, dry_run: bool) -> (RunReport, Observation) {
        self.run_only(twin, what, dry_run, None).await
    }

    async fn run_only(
        &self,
        twin: &Twin,
        what: &str,
        dry_run: bool,
        only: Option<&[&str]>,
    ) -> (RunReport, Observation) {
        let config = RunConfig::load(&self.dir.path().join("migrun.toml")).expect("config");
        let options = RunOptions {
            dry_run,
            only: only.map(|units| units.iter().map(|u| u.to_string()).collect()),
            seeds: Some(SEEDS),
            observer: Arc::new(Silent),
            ..Default::default()
        };
        let report = run::run(&twin.plugin, &config, options)
            .await
            .unwrap_or_else(|e| panic!("the {} twin did not start ({what}): {e}", twin.language));
        let journal = report
            .journal
            .as_ref()
            .expect("every run writes a journal")
            .path
            .clone();
        let (entries, run_id) = read_journal(&journal);
        let run_ids = {
            let mut ids = self.run_ids.lock().expect("run ids");
            ids.push(run_id);
            ids.clone()
        };
        let (mut all, mut writes) = (Vec::new(), Vec::new());
        for entry in &entries {
            let mut json = serde_json::to_value(entry).expect("entries serialize");
            replace_run_ids(&mut json, &run_ids);
            if matches!(entry, Entry::Call { call, .. } if call.is_write()) {
                writes.push(json.clone());
            }
            all.push(json);
        }
        // Every twin is built with its SDK, on the current contract; the 0.1.0 builds of the
        // Python and JavaScript twins are frozen and proven in tests/e2e/contracts.rs.
        assert_eq!(
            report.contract.0,
            migrun::contract::CURRENT_VERSION,
            "{} twin's contract version",
            twin.language
        );
        let observation = Observation {
            language: twin.language,
            what: what.to_owned(),
            report: normalise(
                serde_json::to_value(&report).expect("reports serialize"),
                &run_ids,
            ),
            entries: all,
            writes,
            journal,
        };
        (report, observation)
    }
}

async fn checksums(url: &str) -> Vec<String> {
    let mut sums = Vec::new();
    for table in TABLES {
        sums.push(table_checksum(url, table).await);
    }
    sums
}

/// The observations of the reference (the first twin) that the others must match.
#[derive(Default)]
struct Reference {
    observations: Vec<Observation>,
    checksums: Vec<String>,
}

impl Reference {
    /// Keeps the first twin's observations; holds every later twin to them.
    #[track_caller]
    fn hold(&mut self, observations: Vec<Observation>, checksums: Vec<String>) {
        if self.observations.is_empty() {
            self.observations = observations;
            self.checksums = checksums;
            return;
        }
        assert_eq!(observations.len(), self.observations.len());
        for (actual, expected) in observations.iter().zip(&self.observations) {
            actual.assert_same_as(expected);
        }
        let language = observations[0].language;
        assert_eq!(
            checksums, self.checksums,
            "{language}: the final tables differ from the {} twin's ({TABLES:?})",
            self.observations[0].language
        );
    }
}

/// Each twin on a target of its own: dry-run, run, rerun; returns each twin's run journal (in its folder).
async fn twins_agree(source: &TestDatabase) -> Vec<(&'static Twin, Folder, PathBuf)> {
    let dialect = source.dialect;
    let mut reference = Reference::default();
    let mut journals = Vec::new();
    for twin in twins() {
        let Some(target) = TestDatabase::create(dialect).await else {
            return Vec::new();
        };
        let folder = Folder::new(&source.ro_url, &target.url);
        let language = twin.language;

        let (dry, dry_seen) = folder.run(twin, "dry-run", true).await;
        assert!(dry.succeeded(), "{language} dry-run: {:?}", dry.failure);
        assert!(
            user_tables(&target.url).await.is_empty(),
            "the {language} dry-run left tables behind"
        );

        let (run, run_seen) = folder.run(twin, "run", false).await;
        assert!(run.succeeded(), "{language} run: {:?}", run.failure);
        assert_eq!(run.checks.len(), 4, "{:?}", run.checks);
        assert_eq!(
            run_seen.writes.len(),
            2 + 13 + 2,
            "2 DDL statements, 13 + 2 bulk inserts"
        );
        assert_eq!(row_count(&target.url, "accounts").await, i64::from(USERS));
        let sums = checksums(&target.url).await;
        if reference.observations.is_empty() {
            spot_check(&target).await;
        }

        let (rerun, rerun_seen) = folder.run(twin, "rerun", false).await;
        assert!(rerun.succeeded(), "{language} rerun: {:?}", rerun.failure);
        let rows: u64 = rerun
            .units
            .iter()
            .flat_map(|u| u.writes.values())
            .map(|w| w.rows)
            .sum();
        assert_eq!(rows, 0, "{language}: a rerun writes no rows");
        assert_eq!(
            checksums(&target.url).await,
            sums,
            "{language}: the rerun changed the tables"
        );

        let journal = run_seen.journal.clone();
        reference.hold(vec![dry_seen, run_seen, rerun_seen], sums);
        journals.push((twin, folder, journal));
    }
    journals
}

/// A target already holding an account with the email the second user
/// normalises to: every twin fails in `copy-accounts` on the same constraint,
/// with the same report and journal, and leaves the target as it was.
async fn twins_fail_alike(source: &TestDatabase) {
    let dialect = source.dialect;
    let user = &migrun_fixtures::generate_users(USERS, FIXTURE_SEED)[1];
    let email = user.email.clone().expect("the second user has an email");
    let mut reference = Reference::default();
    for twin in twins() {
        let Some(target) = TestDatabase::create(dialect).await else {
            return;
        };
        let folder = Folder::new(&source.ro_url, &target.url);
        // Its checks fail on the empty tables; the unit itself commits.
        let (created, _) = folder
            .run_only(twin, "create-tables", false, Some(&["create-tables"]))
            .await;
        assert!(created.failure.is_none(), "{:?}", created.failure);
        target
            .exec_with(
                &format!(
                    "INSERT INTO accounts (id, name, email, password_kind, sign_in_count, locked) VALUES (100000, 'squatter', {}, 'none', 0, FALSE)",
                    placeholder(dialect)
                ),
                &[Value::Text(email.clone())],
            )
            .await;
        let before = checksums(&target.url).await;

        let (failed, seen) = folder.run(twin, "failing run", false).await;
        let failure = failed
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("{}: the run should fail", twin.language));
        assert!(failure.phase.contains("copy-accounts"), "{failure:?}");
        // On PostgreSQL the bulk insert streams into an open COPY, whose verdict comes
        // when the stream ends (at the unit's end here): the host names the batch. On
        // the other dialects the bulk insert's own answer carries the plugin's context.
        let expected = match dialect {
            Dialect::Postgres => "the 1st bulk insert into `accounts` in this unit",
            _ => "inserting accounts",
        };
        assert!(failure.message.contains(expected), "{failure:?}");
        assert_eq!(
            checksums(&target.url).await,
            before,
            "{}: the failed unit was not rolled back",
            twin.language
        );
        reference.hold(vec![seen], before);
    }
}

async fn scenario(dialect: Dialect) {
    let Some(source) = TestDatabase::create(dialect).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, USERS, FIXTURE_SEED)
        .await
        .expect("seed users");
    let journals = twins_agree(&source).await;

    // Each twin's real run replays, with no database, to "verified".
    for (twin, _folder, journal) in &journals {
        let replayed = run::replay(journal, None, Arc::new(Silent))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "replaying the {} journal {}: {e}",
                    twin.language,
                    journal.display()
                )
            });
        assert!(
            matches!(replayed.outcome, ReplayOutcome::Verified { writes, .. } if writes > 0),
            "the {} journal did not replay as verified: {:?}",
            twin.language,
            replayed.outcome
        );
    }

    twins_fail_alike(&source).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_merge_twins_agree_on_sqlite() {
    scenario(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_merge_twins_agree_on_postgres() {
    scenario(Dialect::Postgres).await;
}

/// The dialect's first bind placeholder.
fn placeholder(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "$1",
        _ => "?",
    }
}

/// What the normalisation means, checked on the reference's tables: emails
/// lower-cased with their domain split out; a NeoPass-only user has no email,
/// no password, and its identity.
async fn spot_check(target: &TestDatabase) {
    let users = migrun_fixtures::generate_users(USERS, FIXTURE_SEED);
    let mut conn = target.connect(migrun::db::Access::ReadOnly).await;
    let p = placeholder(target.dialect);
    let mixed_case = users.iter().filter(|u| {
        u.email
            .as_deref()
            .is_some_and(|e| e.contains("Example.COM"))
    });
    for user in mixed_case.take(3) {
        let sql = format!("SELECT email, email_domain FROM accounts WHERE id = {p}");
        let rows = conn
            .query(&sql, &[Value::Int(user.id)])
            .await
            .expect("query accounts");
        let email = user.email.as_deref().unwrap().to_ascii_lowercase();
        assert_eq!(
            rows.rows[0],
            [Value::Text(email), Value::Text("example.com".into())],
            "user {}",
            user.id
        );
    }
    let neopass_only = users
        .iter()
        .find(|u| u.email.is_none())
        .expect("a NeoPass-only user");
    let sql = format!(
        "SELECT a.email, a.password_kind, i.provider, i.uid FROM accounts a \
         JOIN identities i ON i.account_id = a.id WHERE a.id = {p}"
    );
    let rows = conn
        .query(&sql, &[Value::Int(neopass_only.id)])
        .await
        .expect("query identities");
    let uid = neopass_only.uid.clone().expect("a NeoPass uid");
    assert_eq!(
        rows.rows[0],
        [
            Value::Null,
            Value::Text("none".into()),
            Value::Text("neopass".into()),
            Value::Text(uid)
        ],
        "user {}",
        neopass_only.id
    );
    conn.close().await;
}
