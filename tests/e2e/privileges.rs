//! Privileges checked at start (docs/SECURITY.md, "Privileges checked at
//! start" and "Least-privilege roles"), on PostgreSQL and MariaDB, through the
//! real binary and the auth-consolidation plugin (read-only `source`,
//! read-write `target`):
//!
//! - a read-only connection as the superuser / root is refused, exit 2, with a
//!   message naming the connection, role, privilege, why and the override, and
//!   nothing changed (checksums, no ledger table, no journal);
//! - with `allow_privileged = true` the run goes on and the report says so;
//! - a read-write superuser connection runs with a warning in the report and
//!   the dry-run plan (text and JSON);
//! - the documented least-privilege roles, created with the SQL read from
//!   docs/SECURITY.md, run the plugin end to end without a warning;
//! - a role holding only `pg_read_server_files` / `FILE`, or reaching
//!   `pg_execute_server_program` / `FILE` through a role it may `SET ROLE` to,
//!   is refused on a read-only connection.
//!
//! Every role and user made here has a unique name and is dropped after the
//! databases (a [`Roles`] guard declared before them).

use migrun::db::{Access, Connection, Dialect};

use crate::support::checksum::{database_checksums, row_count, user_tables};
use crate::support::cli::{Outcome, Workspace};
use crate::support::database::{TestDatabase, server_url, with_user};
use crate::support::plugins;

const USERS: u32 = 50;
const PASSWORD: &str = "change-me";

fn config(source: &str, source_extra: &str, target: &str) -> String {
    format!(
        "[connections.source]\nurl = \"{source}\"\naccess = \"read-only\"\n{source_extra}\n\
         [connections.target]\nurl = \"{target}\"\naccess = \"read-write\"\n\n\
         [config]\nbatch_size = 20\n"
    )
}

/// Roles and users made by one test, dropped when it ends (after its databases).
struct Roles {
    dialect: Dialect,
    names: Vec<String>,
}

impl Roles {
    fn new(dialect: Dialect) -> Roles {
        Roles {
            dialect,
            names: Vec::new(),
        }
    }

    /// A fresh unique name, remembered for the drop.
    fn name(&mut self, what: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "migrun_p_{what}_{}_{}_{nanos}",
            std::process::id(),
            self.names.len()
        );
        self.names.push(name.clone());
        name
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        let Some(server) = server_url(self.dialect) else {
            return;
        };
        let (dialect, names) = (self.dialect, std::mem::take(&mut self.names));
        let admin_url = match dialect {
            Dialect::Postgres => format!("{server}/postgres"),
            _ => server,
        };
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let Ok(mut admin) =
                    Connection::connect("test-admin", &admin_url, Access::ReadWrite).await
                else {
                    return;
                };
                // Reverse order: a role granted to another goes after it.
                for name in names.iter().rev() {
                    let sql = match dialect {
                        Dialect::MySql => format!("DROP USER IF EXISTS '{name}'@'%'"),
                        _ => format!("DROP ROLE IF EXISTS \"{name}\""),
                    };
                    if let Err(e) = admin.execute(&sql, &[]).await {
                        eprintln!("warning: {sql}: {e}");
                    }
                    if dialect == Dialect::MySql {
                        // Roles made with CREATE ROLE are dropped with DROP ROLE.
                        let _ = admin
                            .execute(&format!("DROP ROLE IF EXISTS `{name}`"), &[])
                            .await;
                    }
                }
                admin.close().await;
            });
        })
        .join()
        .expect("drop roles");
    }
}

/// A source seeded with users and an empty target.
async fn databases(dialect: Dialect) -> Option<(TestDatabase, TestDatabase)> {
    let source = TestDatabase::create(dialect).await?;
    let target = TestDatabase::create(dialect).await?;
    migrun_fixtures::seed_auth_users(&source.url, USERS, 3)
        .await
        .expect("seed users");
    Some((source, target))
}

fn plugin() -> String {
    plugins::plugin("auth-consolidation")
        .to_str()
        .unwrap()
        .to_owned()
}

fn migrun(ws: &Workspace, args: &[&str]) -> Outcome {
    let plugin = plugin();
    let mut all = vec![plugin.as_str()];
    all.extend_from_slice(args);
    ws.migrun(&all)
}

/// No journal file was written in the workspace.
fn no_journal(ws: &Workspace) -> bool {
    let dir = ws.path().join("migrun-journal");
    !dir.exists()
        || std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .all(|e| e.path().is_dir())
}

/// Asserts a refusal of the read-only `source` naming `privilege`, and that nothing changed.
async fn expect_refused(
    ws: &Workspace,
    source: &TestDatabase,
    target: &TestDatabase,
    role: &str,
    privilege: &str,
) {
    let before = (
        database_checksums(&source.url).await,
        database_checksums(&target.url).await,
    );
    for args in [&["--dry-run"][..], &[][..], &["--json"][..]] {
        let out = migrun(ws, args);
        out.expect_code(2)
            .expect_output("connection `source` is read-only")
            .expect_output(&format!("its role `{role}"))
            .expect_output(privilege)
            .expect_output("a read-only session does not contain")
            .expect_output("Least-privilege roles")
            .expect_output("allow_privileged = true")
            .expect_output("[connections.source]")
            .expect_output("Nothing ran and no database was changed");
    }
    assert_eq!(
        (
            database_checksums(&source.url).await,
            database_checksums(&target.url).await,
        ),
        before,
        "a refused run changed a database"
    );
    assert!(
        user_tables(&target.url).await.is_empty(),
        "a refused run created a table (the ledger?): {:?}",
        user_tables(&target.url).await
    );
    assert!(no_journal(ws), "a refused run wrote a journal");
}

/// The login role of the admin URL as migrun names it: `postgres`, `root@…`.
fn superuser(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::MySql => "root@",
        _ => "postgres",
    }
}

/// What the superuser's refusal names.
fn superuser_privilege(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::MySql => "SUPER — changes server-wide settings",
        _ => "superuser — bypasses every permission check",
    }
}

// -- (a) a read-only superuser connection is refused ------------------------

async fn read_only_superuser_is_refused(dialect: Dialect) {
    let Some((source, target)) = databases(dialect).await else {
        return;
    };
    let ws = Workspace::new();
    ws.config(&config(&source.url, "", &target.url));
    expect_refused(
        &ws,
        &source,
        &target,
        superuser(dialect),
        superuser_privilege(dialect),
    )
    .await;
    if dialect == Dialect::MySql {
        // Every flagged privilege is named, FILE among them.
        migrun(&ws, &[])
            .expect_output("FILE — reads and writes files on the database server")
            .expect_output("INSERT, UPDATE, DELETE, CREATE, DROP")
            .expect_output("ON *.* — a server-wide privilege beyond reading");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_superuser_is_refused_postgres() {
    read_only_superuser_is_refused(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_superuser_is_refused_mysql() {
    read_only_superuser_is_refused(Dialect::MySql).await;
}

// -- (b) the override: it runs, and the report says so -----------------------

async fn override_runs_and_the_report_says_so(dialect: Dialect) {
    let Some((source, target)) = databases(dialect).await else {
        return;
    };
    let ws = Workspace::new();
    ws.config(&config(
        &source.url,
        "allow_privileged = true\n",
        &target.url,
    ));
    let source_before = database_checksums(&source.url).await;
    let dry = migrun(&ws, &["--dry-run"]);
    dry.expect_code(0)
        .expect_output("⚠ privileged connection source (read-only)")
        .expect_output("the config sets `allow_privileged = true` for this connection");
    let out = migrun(&ws, &["--json"]);
    out.expect_code(0);
    let json = out.json();
    let connections = json["connections"].as_array().unwrap();
    let source_report = connections.iter().find(|c| c["name"] == "source").unwrap();
    let warning = &source_report["privileges"];
    assert_eq!(warning["allowed"], true, "{warning}");
    assert_eq!(warning["access"], "read-only", "{warning}");
    assert!(
        warning["role"]
            .as_str()
            .unwrap()
            .starts_with(superuser(dialect)),
        "{warning}"
    );
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("the run went on because the config sets `allow_privileged = true`"),
        "{warning}"
    );
    let names: Vec<&str> = warning["privileges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let expected = match dialect {
        Dialect::MySql => "SUPER",
        _ => "superuser",
    };
    assert!(names.contains(&expected), "{names:?}");
    assert_eq!(row_count(&target.url, "auth_users").await, i64::from(USERS));
    assert_eq!(
        database_checksums(&source.url).await,
        source_before,
        "the run wrote to the read-only source"
    );
    // The text report of a rerun (units skipped) carries it under the connection.
    migrun(&ws, &[])
        .expect_code(0)
        .expect_output("⚠ privileged: role")
        .expect_output("allow_privileged = true");
}

#[tokio::test(flavor = "multi_thread")]
async fn override_runs_and_the_report_says_so_postgres() {
    override_runs_and_the_report_says_so(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn override_runs_and_the_report_says_so_mysql() {
    override_runs_and_the_report_says_so(Dialect::MySql).await;
}

// -- (c) a read-write superuser connection is warned -------------------------

async fn read_write_superuser_is_warned_in_report_and_plan(dialect: Dialect) {
    let Some((source, target)) = databases(dialect).await else {
        return;
    };
    let ws = Workspace::new();
    ws.config(&config(&source.ro_url, "", &target.url));
    let dry = migrun(&ws, &["--dry-run"]);
    dry.expect_code(0)
        .expect_output("⚠ privileged connection target (read-write)")
        .expect_output(superuser_privilege(dialect))
        .expect_output("grant a least-privilege role");
    assert!(
        !dry.stdout.contains("privileged connection source"),
        "the least-privilege source was warned about:\n{}",
        dry.stdout
    );
    let dry_json = migrun(&ws, &["--dry-run", "--json"]);
    dry_json.expect_code(0);
    let json = dry_json.json();
    let plan_warnings = json["plan"]["privileges"].as_array().unwrap();
    assert_eq!(plan_warnings.len(), 1, "{plan_warnings:?}");
    assert_eq!(plan_warnings[0]["connection"], "target");
    assert_eq!(plan_warnings[0]["access"], "read-write");
    assert_eq!(plan_warnings[0]["allowed"], false);
    assert!(
        user_tables(&target.url).await.is_empty(),
        "the dry-run wrote"
    );

    let run = migrun(&ws, &[]);
    run.expect_code(0)
        .expect_output("⚠ privileged: role")
        .expect_output(superuser_privilege(dialect));
    assert_eq!(row_count(&target.url, "auth_users").await, i64::from(USERS));
    let json = migrun(&ws, &["--json"]).json();
    let connections = json["connections"].as_array().unwrap();
    let by_name = |name: &str| connections.iter().find(|c| c["name"] == name).unwrap();
    assert!(
        by_name("source").get("privileges").is_none(),
        "{}",
        by_name("source")
    );
    let target_warning = &by_name("target")["privileges"];
    assert_eq!(target_warning["access"], "read-write");
    let risks: Vec<&str> = target_warning["privileges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["risk"].as_str().unwrap())
        .collect();
    let expected = match dialect {
        Dialect::MySql => "server-files",
        _ => "superuser",
    };
    assert!(risks.contains(&expected), "{risks:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_write_superuser_is_warned_in_report_and_plan_postgres() {
    read_write_superuser_is_warned_in_report_and_plan(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_write_superuser_is_warned_in_report_and_plan_mysql() {
    read_write_superuser_is_warned_in_report_and_plan(Dialect::MySql).await;
}

// -- (d) the documented least-privilege roles --------------------------------

/// The ```sql block under the heading `### {heading}` of docs/SECURITY.md.
fn documented_sql(heading: &str) -> String {
    let doc = std::fs::read_to_string(plugins::workspace_root().join("docs/SECURITY.md"))
        .expect("read docs/SECURITY.md");
    let start = doc
        .find(&format!("\n### {heading}\n"))
        .unwrap_or_else(|| panic!("docs/SECURITY.md has no section `### {heading}`"));
    let section = &doc[start..];
    let open = section.find("```sql\n").expect("an sql block") + "```sql\n".len();
    let close = open + section[open..].find("```").expect("a closed sql block");
    section[open..close].to_owned()
}

/// Runs the documented statements of `heading` on `db` as its admin, with the example
/// names replaced: `appdb` by the database, `role_token` by `role`.
async fn create_documented_role(db: &TestDatabase, heading: &str, role_token: &str, role: &str) {
    let sql = documented_sql(heading)
        .replace("appdb", &db.name)
        .replace(role_token, role);
    assert!(sql.contains(PASSWORD), "the documented password changed");
    for statement in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        db.exec(statement.trim_end_matches(';')).await;
    }
}

async fn documented_least_privilege_roles_run_a_plugin(dialect: Dialect) {
    let mut roles = Roles::new(dialect);
    let reader = roles.name("reader");
    let writer = roles.name("writer");
    let Some((source, target)) = databases(dialect).await else {
        return;
    };
    let (server, reads, writes) = match dialect {
        Dialect::MySql => ("MariaDB", "read-only source user", "read-write target user"),
        _ => (
            "PostgreSQL",
            "read-only source role",
            "read-write target role",
        ),
    };
    create_documented_role(
        &source,
        &format!("{server}: {reads}"),
        "migrun_reader",
        &reader,
    )
    .await;
    create_documented_role(
        &target,
        &format!("{server}: {writes}"),
        "migrun_writer",
        &writer,
    )
    .await;
    let source_url = with_user(&source.url, &reader, PASSWORD);
    let target_url = with_user(&target.url, &writer, PASSWORD);
    let ws = Workspace::new();
    ws.config(&config(&source_url, "", &target_url));
    let source_before = database_checksums(&source.url).await;

    let dry = migrun(&ws, &["--dry-run"]);
    dry.expect_code(0).expect_output("✓ row counts match");
    let run = migrun(&ws, &[]);
    run.expect_code(0).expect_output("✓ row counts match");
    for out in [&dry, &run] {
        assert!(
            !out.all().contains("privileged"),
            "least-privilege roles were warned about:\n{}",
            out.all()
        );
    }
    assert_eq!(row_count(&target.url, "auth_users").await, i64::from(USERS));
    assert_eq!(database_checksums(&source.url).await, source_before);
    // The rerun skips the finished unit, reading the ledger as the writer; copy-users runs
    // on every run (it re-syncs) and, with nothing changed, writes nothing.
    let json = migrun(&ws, &["--json"]).json();
    let units = json["units"].as_array().unwrap();
    assert_eq!(units[0]["status"], "skipped", "{}", json["units"]);
    assert_eq!(units[1]["status"], "committed", "{}", json["units"]);
    assert_eq!(
        units[1]["writes"],
        serde_json::json!({}),
        "{}",
        json["units"]
    );
    for c in json["connections"].as_array().unwrap() {
        assert!(c.get("privileges").is_none(), "{c}");
    }
    // The reader really is read-only on the server too: it cannot write the source.
    let mut as_reader = Connection::connect("probe", &source_url, Access::ReadWrite)
        .await
        .expect("connect as the reader");
    let denied = as_reader
        .execute("DELETE FROM users WHERE id = 1", &[])
        .await
        .expect_err("the documented reader may write");
    assert!(denied.message.to_lowercase().contains("denied"), "{denied}");
    as_reader.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn documented_least_privilege_roles_run_a_plugin_postgres() {
    documented_least_privilege_roles_run_a_plugin(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn documented_least_privilege_roles_run_a_plugin_mysql() {
    documented_least_privilege_roles_run_a_plugin(Dialect::MySql).await;
}

// -- (e) a file privilege alone is refused on a read-only connection ---------

async fn file_privilege_alone_is_refused_on_read_only(dialect: Dialect) {
    let mut roles = Roles::new(dialect);
    let direct = roles.name("files");
    let ops = roles.name("ops");
    let member = roles.name("member");
    let Some((source, target)) = databases(dialect).await else {
        return;
    };
    let (statements, direct_privilege, via_privilege) = match dialect {
        Dialect::MySql => (
            vec![
                format!("CREATE USER '{direct}'@'%' IDENTIFIED BY '{PASSWORD}'"),
                format!("GRANT SELECT ON `{}`.* TO '{direct}'@'%'", source.name),
                format!("GRANT FILE ON *.* TO '{direct}'@'%'"),
                format!("CREATE ROLE `{ops}`"),
                format!("GRANT FILE ON *.* TO `{ops}`"),
                format!("CREATE USER '{member}'@'%' IDENTIFIED BY '{PASSWORD}'"),
                format!("GRANT SELECT ON `{}`.* TO '{member}'@'%'", source.name),
                format!("GRANT `{ops}` TO '{member}'@'%'"),
            ],
            "FILE — reads and writes files on the database server".to_owned(),
            format!("FILE (via role `{ops}`)"),
        ),
        _ => (
            vec![
                format!("CREATE ROLE \"{direct}\" LOGIN PASSWORD '{PASSWORD}'"),
                format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{direct}\""),
                format!("GRANT pg_read_server_files TO \"{direct}\""),
                format!("CREATE ROLE \"{ops}\" NOLOGIN"),
                format!("GRANT pg_execute_server_program TO \"{ops}\""),
                format!("CREATE ROLE \"{member}\" LOGIN PASSWORD '{PASSWORD}'"),
                format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{member}\""),
                format!("GRANT \"{ops}\" TO \"{member}\""),
            ],
            "pg_read_server_files — reads any file the database server can read".to_owned(),
            "pg_execute_server_program — runs programs on the database server".to_owned(),
        ),
    };
    for sql in &statements {
        source.exec(sql).await;
    }
    for (role, privilege) in [(&direct, &direct_privilege), (&member, &via_privilege)] {
        let ws = Workspace::new();
        ws.config(&config(
            &with_user(&source.url, role, PASSWORD),
            "",
            &target.url,
        ));
        expect_refused(&ws, &source, &target, role, privilege).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn file_privilege_alone_is_refused_on_read_only_postgres() {
    file_privilege_alone_is_refused_on_read_only(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn file_privilege_alone_is_refused_on_read_only_mysql() {
    file_privilege_alone_is_refused_on_read_only(Dialect::MySql).await;
}

// -- a privilege a read-only session contains is warned about, not refused ---

/// `CREATEROLE` and `BYPASSRLS` cannot act through a read-only transaction (no
/// `GRANT`, no writes), so a read-only connection holding them runs, with the
/// warning in the report.
#[tokio::test(flavor = "multi_thread")]
async fn createrole_on_read_only_is_warned_not_refused_postgres() {
    let mut roles = Roles::new(Dialect::Postgres);
    let reader = roles.name("creator");
    let Some((source, target)) = databases(Dialect::Postgres).await else {
        return;
    };
    for sql in [
        format!("CREATE ROLE \"{reader}\" LOGIN CREATEROLE BYPASSRLS PASSWORD '{PASSWORD}'"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{reader}\""),
    ] {
        source.exec(&sql).await;
    }
    let ws = Workspace::new();
    ws.config(&config(
        &with_user(&source.url, &reader, PASSWORD),
        "",
        &target.url,
    ));
    let out = migrun(&ws, &["--json"]);
    out.expect_code(0);
    let json = out.json();
    let source_report = json["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "source")
        .unwrap()
        .clone();
    let warning = &source_report["privileges"];
    assert_eq!(warning["access"], "read-only", "{source_report}");
    assert_eq!(warning["allowed"], false, "{warning}");
    let names: Vec<&str> = warning["privileges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CREATEROLE", "BYPASSRLS"], "{warning}");
    assert_eq!(row_count(&target.url, "auth_users").await, i64::from(USERS));
}

// -- MariaDB: reading the roles' grants leaves the session's role as it was ---

/// The check activates each of the account's roles to read its grants: the
/// session's role afterwards is the one it had (the default role, or none), so
/// the plugin starts with exactly the privileges the account logs in with.
#[tokio::test(flavor = "multi_thread")]
async fn role_inspection_puts_the_session_role_back_mysql() {
    let mut roles = Roles::new(Dialect::MySql);
    let with_default = roles.name("dflt");
    let without = roles.name("none");
    let reads = roles.name("reads");
    let files = roles.name("files");
    let Some(db) = TestDatabase::create(Dialect::MySql).await else {
        return;
    };
    for sql in [
        format!("CREATE ROLE `{reads}`"),
        format!("GRANT SELECT ON `{}`.* TO `{reads}`", db.name),
        format!("CREATE ROLE `{files}`"),
        format!("GRANT FILE ON *.* TO `{files}`"),
        format!("CREATE USER '{with_default}'@'%' IDENTIFIED BY '{PASSWORD}'"),
        format!("GRANT `{reads}` TO '{with_default}'@'%'"),
        format!("GRANT `{files}` TO '{with_default}'@'%'"),
        format!("SET DEFAULT ROLE `{reads}` FOR '{with_default}'@'%'"),
        format!("CREATE USER '{without}'@'%' IDENTIFIED BY '{PASSWORD}'"),
        format!("GRANT SELECT ON `{}`.* TO '{without}'@'%'", db.name),
        format!("GRANT `{files}` TO '{without}'@'%'"),
    ] {
        // As the administrator: migrun refuses `SET DEFAULT ROLE` from plugin SQL.
        db.admin_exec(&sql).await;
    }
    for (user, expected_role) in [(&with_default, Some(reads.as_str())), (&without, None)] {
        let mut conn = Connection::connect(
            "source",
            &with_user(&db.url, user, PASSWORD),
            Access::ReadOnly,
        )
        .await
        .expect("connect");
        let found = migrun::db::privileges::inspect(&mut conn)
            .await
            .expect("inspect");
        let labels: Vec<String> = found.dangerous.iter().map(|d| d.label()).collect();
        assert_eq!(labels, [format!("FILE (via role `{files}`)")], "{user}");
        let role = conn
            .query("SELECT CURRENT_ROLE()", &[])
            .await
            .expect("current role")
            .rows;
        let role = match &role[0][0] {
            migrun::value::Value::Text(r) => Some(r.clone()),
            migrun::value::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        assert_eq!(
            role.as_deref(),
            expected_role,
            "{user}: the session's role changed"
        );
        conn.close().await;
    }
}
