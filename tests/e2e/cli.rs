//! The command line as an operator meets it: `inspect`, and every way a run
//! can be refused before it starts (exit code 2, nothing changed).

use migrun::db::Dialect;

use crate::support::checksum::database_checksums;
use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

#[test]
fn inspect_shows_declaration_and_contract_version() {
    let ws = Workspace::new();
    let plugin = plugins::plugin("auth-consolidation");
    let out = ws.migrun(&["inspect", plugin.to_str().unwrap()]);
    out.expect_code(0)
        .expect_output("contract   migrun:plugin@0.2.0")
        .expect_output("create-auth-users")
        .expect_output("copy-users")
        .expect_output("batch_size");
    let json = ws.migrun(&["inspect", plugin.to_str().unwrap(), "--json"]);
    let json = json.expect_code(0).json();
    assert_eq!(json["schema"], "migrun.inspect/1");
    assert_eq!(json["contract"], "0.2.0");
    assert_eq!(json["plugin"]["connections"][0]["name"], "source");
    assert_eq!(json["plugin"]["connections"][0]["access"], "read-only");
    assert_eq!(json["plugin"]["connections"][1]["access"], "read-write");
}

#[test]
fn unsupported_contract_version_is_refused_naming_both_versions() {
    let ws = Workspace::new();
    let plugin = plugins::plugin("future-contract");
    for args in [
        vec![plugin.to_str().unwrap(), "--dry-run"],
        vec!["inspect", plugin.to_str().unwrap()],
    ] {
        ws.migrun(&args)
            .expect_code(2)
            .expect_output("unsupported contract version: the plugin targets migrun:plugin@9.0.0, this migrun supports migrun:plugin@0.2.0, migrun:plugin@0.1.1, migrun:plugin@0.1.0 (from 0.1.0 to 0.2.0)")
            .expect_output("it is newer than the newest contract this migrun speaks: upgrade migrun");
    }
}

#[test]
fn malformed_plugin_is_refused() {
    let ws = Workspace::new();
    let bogus = ws.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x0d\0\x01\0garbage").unwrap();
    ws.migrun(&[bogus.to_str().unwrap()])
        .expect_code(2)
        .expect_output("not a valid WebAssembly component");
    let core = ws.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    ws.migrun(&[core.to_str().unwrap()])
        .expect_code(2)
        .expect_output("core WebAssembly module, not a component");
    ws.migrun(&["missing.wasm"])
        .expect_code(2)
        .expect_output("cannot read plugin missing.wasm");
}

/// Each bad configuration names what is wrong, exits 2 and leaves the databases untouched.
#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_is_refused_before_anything_runs() {
    let Some(source) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 10, 3)
        .await
        .unwrap();
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();
    let ws = Workspace::new();
    let good = format!(
        "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n[connections.target]\nurl = \"{}\"\n",
        source.ro_url, target.url
    );
    let before = (
        database_checksums(&source.url).await,
        database_checksums(&target.url).await,
    );

    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            format!("{good}[config]\nbogus = 1\n"),
            vec![],
            "unknown config key `bogus`",
        ),
        (
            format!("{good}[limits]\ntimeout = 5\n"),
            vec![],
            "unknown field `timeout`",
        ),
        (
            good.replace(&target.url, "${MIGRUN_TEST_UNSET_VARIABLE}"),
            vec![],
            "environment variable `MIGRUN_TEST_UNSET_VARIABLE` is not set",
        ),
        (
            good.replace(
                &format!("url = \"{}\"\n", target.url),
                &format!("url = \"{}\"\naccess = \"read-only\"\n", target.url),
            ),
            vec![],
            "the plugin needs read-write access but the config grants only read-only",
        ),
        (
            good.clone(),
            vec!["--only", "nope,nada"],
            "none of the units given to --only exist (`nope`, `nada`); the plugin's units are `create-auth-users`, `copy-users`",
        ),
        (
            good.clone(),
            vec!["--db", "target=postgres://nobody@127.0.0.1:1/none"],
            "connection `target`",
        ),
        // The journal directory is a file: the journal cannot be created, so nothing may run.
        (
            good.clone(),
            vec!["--journal-dir", "migrun.toml/journals"],
            "journal migrun.toml/journals/plugins",
        ),
    ];
    for (config, args, message) in cases {
        ws.config(&config);
        let mut all = vec![plugin];
        all.extend(args);
        ws.migrun(&all).expect_code(2).expect_output(message);
    }
    assert_eq!(
        (
            database_checksums(&source.url).await,
            database_checksums(&target.url).await
        ),
        before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_required_config_key_is_named() {
    let ws = Workspace::new();
    let plugin = plugins::plugin("hostile");
    std::fs::create_dir_all(ws.path().join("migrun-data")).unwrap();
    let source = format!(
        "sqlite://{}",
        ws.path().join("migrun-data/source.sqlite").display()
    );
    // An empty source file: the run must stop at the missing key, before any connection matters.
    migrun::db::Connection::connect("source", &source, migrun::db::Access::ReadWrite)
        .await
        .unwrap()
        .close()
        .await;
    ws.migrun(&[plugin.to_str().unwrap()])
        .expect_code(2)
        .expect_output("missing config key `behaviour`");
}

/// `--only` with a name that is not a unit (an engine deleted since the list was made): the
/// other units run, and the unknown one is reported as skipped with a warning.
#[tokio::test(flavor = "multi_thread")]
async fn only_reports_names_that_are_not_units_as_skipped() {
    let Some(source) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    migrun_fixtures::seed_auth_users(&source.url, 10, 3)
        .await
        .unwrap();
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.source]\nurl = \"{}\"\n[connections.target]\nurl = \"{}\"\n",
        source.ro_url, target.url
    ));
    let plugin = plugins::plugin("auth-consolidation");
    let out = ws.migrun(&[
        plugin.to_str().unwrap(),
        "--only",
        "create-auth-users,deleted-engine,copy-users",
        "--json",
    ]);
    let report = out.expect_code(0).json();
    let status: Vec<(&str, &str)> = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["name"].as_str().unwrap(), u["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        status,
        [
            ("deleted-engine", "not-found"),
            ("create-auth-users", "committed"),
            ("copy-users", "committed")
        ]
    );
    assert!(report["messages"].as_array().unwrap().iter().any(|m| {
        m["level"] == "warn"
            && m["message"]
                .as_str()
                .unwrap()
                .contains("`deleted-engine`, which is not a unit of this plugin")
    }));
}
