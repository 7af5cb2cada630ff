//! One migration across tenant databases (`[tenants]`, `${tenant}` in a connection URL):
//! each tenant's database gets the run with its own ledger, a failing tenant does not stop
//! the others under `--keep-going`, a rerun runs only what is unfinished, shards split the
//! tenants without overlap, and the tenants come from a list, a file or a query.

use migrun::db::{Access, Connection, Dialect};
use migrun::value::Value;

use crate::support::cli::{Outcome, Workspace};
use crate::support::database::{TestDatabase, server_url};
use crate::support::plugins;

/// A small real migration per tenant: add a column, fill it, index it.
const MIGRATION: &str = "ALTER TABLE accounts ADD COLUMN plan_code VARCHAR(20)\n;;\n\
    UPDATE accounts SET plan_code = 'free' WHERE plan_code IS NULL\n;;\n\
    CREATE INDEX accounts_plan_code ON accounts (plan_code)";

/// Tenant databases on one server (or SQLite files in the workspace), reached through one
/// URL template.
struct Tenants {
    ws: Workspace,
    dialect: Dialect,
    names: Vec<String>,
    /// The server databases, dropped with the test (empty on SQLite).
    _databases: Vec<TestDatabase>,
    template: String,
}

impl Tenants {
    /// `count` tenant databases, each with `accounts` (3 rows) except those in `broken`.
    async fn new(dialect: Dialect, count: usize, broken: &[usize]) -> Option<Tenants> {
        let ws = Workspace::new();
        let mut names = Vec::new();
        let mut databases = Vec::new();
        let template = if dialect == Dialect::Sqlite {
            std::fs::create_dir_all(ws.path().join("tenants")).unwrap();
            for i in 0..count {
                names.push(format!("tenant-{i:02}"));
            }
            "sqlite://tenants/${tenant}.db".to_owned()
        } else {
            for _ in 0..count {
                let db = TestDatabase::create(dialect).await?;
                names.push(db.name.clone());
                databases.push(db);
            }
            format!("{}/${{tenant}}", server_url(dialect).unwrap())
        };
        let tenants = Tenants {
            ws,
            dialect,
            names,
            _databases: databases,
            template,
        };
        for i in 0..count {
            if broken.contains(&i) {
                // The database exists (SQLite: the file), without `accounts`.
                tenants.connect(i).await.close().await;
            } else {
                tenants.seed_accounts(i).await;
            }
        }
        Some(tenants)
    }

    /// Creates tenant `i`'s `accounts` with its 3 rows.
    async fn seed_accounts(&self, i: usize) {
        let mut conn = self.connect(i).await;
        for sql in [
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name VARCHAR(40))",
            "INSERT INTO accounts (id, name) VALUES (1, 'ada'), (2, 'bo'), (3, 'cy')",
        ] {
            conn.execute(sql, &[]).await.unwrap();
        }
        conn.close().await;
    }

    fn url(&self, i: usize) -> String {
        let url = self.template.replace("${tenant}", &self.names[i]);
        match url.strip_prefix("sqlite://") {
            Some(relative) => format!("sqlite://{}", self.ws.path().join(relative).display()),
            None => url,
        }
    }

    async fn connect(&self, i: usize) -> Connection {
        Connection::connect("test", &self.url(i), Access::ReadWrite)
            .await
            .unwrap_or_else(|e| panic!("tenant {}: {e}", self.names[i]))
    }

    /// `migrun.toml` with the tenants from `source` (a `[tenants]` body).
    fn config(&self, source: &str) {
        self.ws.config(&format!(
            "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\n[tenants]\n{source}\n\n[config]\nsql = \"\"\"\n{MIGRATION}\n\"\"\"\n",
            self.template
        ));
    }

    /// `[tenants] file = "tenants.txt"` listing every tenant (with a comment and a blank line).
    fn config_with_file(&self) {
        let mut list = String::from("# the tenants to migrate\n\n");
        for name in &self.names {
            list.push_str(name);
            list.push('\n');
        }
        std::fs::write(self.ws.path().join("tenants.txt"), list).unwrap();
        self.config("file = \"tenants.txt\"");
    }

    fn migrun(&self, args: &[&str]) -> Outcome {
        let plugin = plugins::plugin("sql-script");
        let mut all = vec![plugin.to_str().unwrap()];
        all.extend_from_slice(args);
        self.ws.migrun(&all)
    }

    /// Whether tenant `i` was migrated: every row has its plan code, and the index exists.
    async fn migrated(&self, i: usize) -> bool {
        let mut conn = self.connect(i).await;
        let filled = conn
            .query(
                "SELECT COUNT(*) FROM accounts WHERE plan_code = 'free'",
                &[],
            )
            .await;
        let index_sql = match self.dialect {
            Dialect::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'accounts_plan_code'"
            }
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'accounts_plan_code'"
            }
            _ => {
                "SELECT COUNT(*) FROM information_schema.statistics \
                 WHERE table_schema = DATABASE() AND index_name = 'accounts_plan_code'"
            }
        };
        let index = conn.query(index_sql, &[]).await.unwrap();
        conn.close().await;
        let count = |v: &Value| match v {
            Value::Int(n) => *n,
            Value::Decimal(d) => d.parse().unwrap(),
            other => panic!("a count: {other:?}"),
        };
        match filled {
            Ok(rows) => count(&rows.rows[0][0]) == 3 && count(&index.rows[0][0]) >= 1,
            Err(_) => false,
        }
    }
}

fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Four tenants, the third without `accounts`: with `--keep-going --jobs 2` the other three
/// are migrated, the failure is named with its error, the exit code is 4 and one JSON event
/// per tenant start and end is printed; `migrun status` sums the tenants up and names the
/// one left; once the broken tenant is fixed, a rerun migrates it alone (the others are up
/// to date by their own ledgers).
async fn keep_going_past_a_failed_tenant_and_rerun_only_it(dialect: Dialect) {
    let Some(t) = Tenants::new(dialect, 4, &[2]).await else {
        return;
    };
    t.config_with_file();
    let out = t.migrun(&["--keep-going", "--jobs", "2", "--json"]);
    let report = out.expect_code(4).json();
    assert_eq!(
        report["schema"], "migrun.tenants-report/1",
        "{}",
        out.stdout
    );
    let seen = statuses(&report);
    let expected: Vec<(String, String)> = t
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                n.clone(),
                if i == 2 { "failed" } else { "migrated" }.to_owned(),
            )
        })
        .collect();
    assert_eq!(seen, expected, "{}", out.stdout);
    // (On MariaDB the failed ALTER also ended the unit's transaction — the server commits
    // before any DDL — and the error says both.)
    let error = report["tenants"][2]["error"].as_str().unwrap();
    assert!(
        error.contains("accounts"),
        "the error names the cause: {error}"
    );
    for i in [0, 1, 3] {
        assert!(t.migrated(i).await, "tenant {} migrated", t.names[i]);
    }
    assert!(!t.migrated(2).await);
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "tenant-finished")
        .collect();
    assert_eq!(finished.len(), 4, "{}", out.stderr);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "tenant-started")
            .count(),
        4
    );
    assert_eq!(finished.last().unwrap()["left"], 0);
    assert!(
        finished
            .iter()
            .any(|e| e["tenant"] == t.names[2].as_str() && e["status"] == "failed"),
        "{}",
        out.stderr
    );
    // Each tenant has a journal folder of its own, and the plugin is stored once: each
    // folder's `plugins/<sha256>.wasm` (where replay looks) is a link to the one copy.
    let shared: Vec<std::path::PathBuf> =
        std::fs::read_dir(t.ws.path().join("migrun-journal/.plugins"))
            .expect("the shared plugin folder")
            .map(|e| e.unwrap().path())
            .collect();
    assert_eq!(shared.len(), 1, "one copy of the plugin: {shared:?}");
    let inode = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(p).unwrap().ino()
    };
    for name in &t.names {
        let folder = t.ws.path().join("migrun-journal").join(name);
        assert!(folder.is_dir(), "journal folder of {name}");
        let copy = folder.join("plugins").join(shared[0].file_name().unwrap());
        assert_eq!(
            inode(&copy),
            inode(&shared[0]),
            "{name}'s copy is the shared one"
        );
    }
    let journal = std::fs::read_dir(t.ws.path().join("migrun-journal").join(&t.names[0]))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "journal"))
        .expect("the first tenant's journal");
    t.ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified");

    // `migrun status` sums the tenants up by their own ledgers and names the one that
    // failed, with its unit and error (recorded beside the tenant's journals: a failed
    // unit leaves no ledger row).
    let status = t.ws.migrun(&["status"]);
    status
        .expect_code(0)
        .expect_output("4 tenants: 3 finished, 1 failed")
        .expect_output(&format!("{} — failed", t.names[2]))
        .expect_output("1 unit(s) failed in their last run");
    let status = t.ws.migrun(&["status", "--json"]).expect_code(0).json();
    let states: Vec<&str> = status["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["finished", "finished", "failed", "finished"]);
    let failed = &status["tenants"][2]["failed_units"];
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{status}");
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("accounts")),
        "the error names what was missing: {status}"
    );

    t.seed_accounts(2).await;
    let rerun = t.migrun(&[]);
    rerun
        .expect_code(0)
        .expect_output("1 migrated")
        .expect_output("3 up-to-date")
        .expect_output("every tenant is done");
    assert!(t.migrated(2).await);
    t.ws.migrun(&["status"])
        .expect_code(0)
        .expect_output("4 tenants: 4 finished");
}

/// Without `--keep-going`, the first failed tenant stops the run: with one tenant at a
/// time, the tenants after it are not started (and unchanged), and the exit code is the
/// failed run's.
async fn a_failed_tenant_stops_the_others_without_keep_going(dialect: Dialect) {
    let Some(t) = Tenants::new(dialect, 3, &[1]).await else {
        return;
    };
    let names: Vec<String> = t.names.iter().map(|n| format!("{n:?}")).collect();
    t.config(&format!("names = [{}]", names.join(", ")));
    let out = t.migrun(&["--json"]);
    let report = out.expect_code(1).json();
    let seen: Vec<String> = statuses(&report).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        seen,
        ["migrated", "failed", "not-started"],
        "{}",
        out.stdout
    );
    assert!(t.migrated(0).await);
    assert!(
        !t.migrated(2).await,
        "the tenant after the failure is unchanged"
    );
}

/// A dry-run changes no tenant; then two shards split the tenants between them: each
/// tenant is migrated by exactly one.
async fn shards_split_the_tenants(dialect: Dialect) {
    let Some(t) = Tenants::new(dialect, 5, &[]).await else {
        return;
    };
    t.config_with_file();
    // A dry-run over the tenants plans each one and changes none.
    let planned = t.migrun(&["--dry-run", "--json"]);
    let report = planned.expect_code(0).json();
    assert!(
        statuses(&report).iter().all(|(_, s)| s == "dry-run"),
        "{}",
        planned.stdout
    );
    for i in 0..5 {
        assert!(!t.migrated(i).await, "a dry-run changed {}", t.names[i]);
    }
    let mut taken = Vec::new();
    for shard in ["0/2", "1/2"] {
        let out = t.migrun(&["--shard", shard, "--json"]);
        let report = out.expect_code(0).json();
        assert_eq!(report["listed"], 5);
        for (name, status) in statuses(&report) {
            assert_eq!(status, "migrated", "{name}: {}", out.stdout);
            taken.push(name);
        }
    }
    taken.sort();
    let mut all = t.names.clone();
    all.sort();
    assert_eq!(taken, all, "every tenant exactly once");
    for i in 0..5 {
        assert!(t.migrated(i).await);
    }
}

macro_rules! on_every_dialect {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                use super::*;

                #[tokio::test(flavor = "multi_thread")]
                async fn sqlite() {
                    super::$test(Dialect::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn postgres() {
                    super::$test(Dialect::Postgres).await;
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn mysql() {
                    super::$test(Dialect::MySql).await;
                }
            }
        )*
    };
}

on_every_dialect!(
    keep_going_past_a_failed_tenant_and_rerun_only_it,
    a_failed_tenant_stops_the_others_without_keep_going,
    shards_split_the_tenants,
);

/// On a terminal (a pseudo-terminal from util-linux `script`), many tenants get one bar
/// over the tenants — done, failed, left — and the failed tenant its line with its error;
/// every healthy tenant is migrated.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_shows_one_bar_over_many_tenants_sqlite() {
    let Some(t) = Tenants::new(Dialect::Sqlite, 22, &[5]).await else {
        return;
    };
    t.config_with_file();
    let plugin = plugins::plugin("sql-script");
    let Some(output) =
        t.ws.migrun_on_terminal(&[plugin.to_str().unwrap(), "--keep-going"])
    else {
        return;
    };
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{screen}");
    assert!(screen.contains("  tenants ["), "{screen}");
    assert!(
        screen.contains("22/22 tenants done, 1 failed, 0 left"),
        "{screen}"
    );
    assert!(
        screen.contains(&t.names[5]),
        "the failed tenant is named: {screen}"
    );
    for i in (0..22).filter(|&i| i != 5) {
        assert!(t.migrated(i).await, "tenant {}: {screen}", t.names[i]);
    }
    assert!(!t.migrated(5).await);
}

/// The tenants can come from a read-only query: here the PostgreSQL catalog's list of
/// the test's tenant databases.
#[tokio::test(flavor = "multi_thread")]
async fn tenants_listed_by_a_query_postgres() {
    let Some(t) = Tenants::new(Dialect::Postgres, 3, &[]).await else {
        return;
    };
    let server = server_url(Dialect::Postgres).unwrap();
    let list: Vec<String> = t.names.iter().map(|n| format!("'{n}'")).collect();
    t.config(&format!(
        "query = \"SELECT datname FROM pg_database WHERE datname IN ({}) ORDER BY datname\"\nquery_url = \"{server}/postgres\"",
        list.join(", ")
    ));
    let out = t.migrun(&["--jobs", "3", "--json"]);
    let report = out.expect_code(0).json();
    let mut seen: Vec<String> = statuses(&report).into_iter().map(|(n, _)| n).collect();
    let mut expected = t.names.clone();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
    for i in 0..3 {
        assert!(t.migrated(i).await);
    }
}

/// Bad tenant configuration is refused before anything runs, saying what is wrong: a
/// `${tenant}` URL without `[tenants]`, a listed name that could change the URL, a tenant
/// whose database does not exist (that tenant fails, "did not start").
#[tokio::test(flavor = "multi_thread")]
async fn bad_tenant_configuration_is_refused_before_anything_runs() {
    let ws = Workspace::new();
    let plugin = plugins::plugin("sql-script");
    let plugin = plugin.to_str().unwrap();
    ws.config(
        "[connections.target]\nurl = \"sqlite://t/${tenant}.db\"\n\n[config]\nsql = \"SELECT 1\"\n",
    );
    ws.migrun(&[plugin])
        .expect_code(2)
        .expect_output("no [tenants] section");
    ws.config(
        "[connections.target]\nurl = \"sqlite://t/${tenant}.db\"\n\n[tenants]\nnames = [\"a/../../etc\"]\n\n[config]\nsql = \"SELECT 1\"\n",
    );
    ws.migrun(&[plugin])
        .expect_code(2)
        .expect_output("is not allowed");
    std::fs::write(ws.path().join("tenants.txt"), "good\nbad name\n").unwrap();
    ws.config(
        "[connections.target]\nurl = \"sqlite://t/${tenant}.db\"\n\n[tenants]\nfile = \"tenants.txt\"\n\n[config]\nsql = \"SELECT 1\"\n",
    );
    ws.migrun(&[plugin])
        .expect_code(2)
        .expect_output("tenants.txt:2")
        .expect_output("nothing was run");
    assert!(
        !ws.path().join("t").exists(),
        "no tenant database was created"
    );
}

/// Tenants in schemas of one PostgreSQL database: the search path set in the URL
/// (`options=-csearch_path=t_${tenant}`) and a ledger per tenant (`ledger_table` with
/// `${tenant}`, so each tenant also has a run lock of its own and `--jobs` runs them side
/// by side). Each schema is migrated, a rerun finds every tenant up to date, and
/// `migrun status` reads each tenant's ledger in its schema.
#[tokio::test(flavor = "multi_thread")]
async fn tenants_in_schemas_of_one_database_postgres() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let names = ["a", "b", "c"];
    for name in names {
        db.exec(&format!("CREATE SCHEMA t_{name}")).await;
        db.exec(&format!(
            "CREATE TABLE t_{name}.accounts (id INTEGER PRIMARY KEY, name VARCHAR(40))"
        ))
        .await;
        db.exec(&format!(
            "INSERT INTO t_{name}.accounts VALUES (1, 'ada'), (2, 'bo'), (3, 'cy')"
        ))
        .await;
    }
    let ws = Workspace::new();
    ws.config(&format!(
        "ledger_table = \"migrun_ledger_${{tenant}}\"\n\n[connections.target]\nurl = \"{}?options=-csearch_path%3Dt_${{tenant}}\"\naccess = \"read-write\"\n\n[tenants]\nnames = [\"a\", \"b\", \"c\"]\n\n[config]\nsql = \"\"\"\n{MIGRATION}\n\"\"\"\n",
        db.url
    ));
    let plugin = plugins::plugin("sql-script");
    let plugin = plugin.to_str().unwrap();
    let out = ws.migrun(&[plugin, "--jobs", "3", "--json"]);
    let report = out.expect_code(0).json();
    let seen: Vec<String> = statuses(&report).into_iter().map(|(_, s)| s).collect();
    assert_eq!(seen, ["migrated", "migrated", "migrated"], "{}", out.stdout);
    let mut conn = db.connect(Access::ReadOnly).await;
    for name in names {
        let filled = conn
            .query(
                &format!("SELECT COUNT(*) FROM t_{name}.accounts WHERE plan_code = 'free'"),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(filled.rows[0][0], Value::Int(3), "schema t_{name}");
        let objects = conn
            .query(
                &format!(
                    "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = 't_{name}' AND c.relname IN ('accounts_plan_code', 'migrun_ledger_{name}')"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            objects.rows[0][0],
            Value::Int(2),
            "the index and the tenant's ledger are in t_{name}"
        );
    }
    conn.close().await;
    ws.migrun(&[plugin])
        .expect_code(0)
        .expect_output("3 up-to-date");
    ws.migrun(&["status"])
        .expect_code(0)
        .expect_output("3 tenants: 3 finished");
}
