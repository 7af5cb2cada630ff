//! The arena of the hostile-plugin tests (`attacks`, `own_state`): a read-only
//! source, a read-write target and a workspace, driven by the `sql-attack`
//! guest, which sends configured SQL and ignores every error.

use std::collections::BTreeMap;
use std::path::Path;

use migrun::db::Dialect;

use super::checksum::database_checksums;
use super::cli::{Outcome, Workspace};
use super::database::TestDatabase;
use super::plugins;

/// A read-only source holding `secrets`, a read-write target holding `victim`, and a
/// workspace. The plugin reaches both databases as an ordinary writer of each
/// (`TestDatabase::rw_url`): write grants, no server-wide privilege — so what keeps
/// the source read-only is migrun, not the role.
pub struct Arena {
    /// The working folder (config, journals, backups).
    pub ws: Workspace,
    /// The read-only source.
    pub source: TestDatabase,
    /// The read-write target.
    pub target: TestDatabase,
}

impl Arena {
    /// Both databases with their tables; `None` when the dialect's server is unreachable.
    pub async fn new(dialect: Dialect) -> Option<Arena> {
        let source = TestDatabase::create(dialect).await?;
        let target = TestDatabase::create(dialect).await?;
        source
            .exec("CREATE TABLE secrets (id INTEGER PRIMARY KEY, v VARCHAR(20))")
            .await;
        source
            .exec("INSERT INTO secrets (id, v) VALUES (1, 'keep me')")
            .await;
        target
            .exec("CREATE TABLE victim (id INTEGER PRIMARY KEY, v VARCHAR(20))")
            .await;
        target
            .exec("INSERT INTO victim (id, v) VALUES (1, 'original')")
            .await;
        Some(Arena {
            ws: Workspace::new(),
            source,
            target,
        })
    }

    /// Writes the configuration: `sql` sent on `on` during `phase`, then `then` on target.
    pub fn configure(&self, on: &str, phase: &str, sql: &[&str], then: &[&str], finally: &str) {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        self.ws.config(&format!(
            "[connections.source]\nurl = {}\naccess = \"read-only\"\n\n\
             [connections.target]\nurl = {}\naccess = \"read-write\"\n\n\
             [config]\non = \"{on}\"\nphase = \"{phase}\"\nfinally = \"{finally}\"\nsql = {}\nthen = {}\n",
            quote(&self.source.rw_url),
            quote(&self.target.rw_url),
            quote(&sql.join("\n;;\n")),
            quote(&then.join("\n;;\n")),
        ));
    }

    /// Runs `migrun sql-attack.wasm <args>` in the workspace.
    pub fn migrun(&self, args: &[&str]) -> Outcome {
        let plugin = plugins::plugin("sql-attack");
        let mut all = vec![plugin.to_str().unwrap()];
        all.extend_from_slice(args);
        self.ws.migrun(&all)
    }

    /// The checksums of the user's tables (migrun's own ledger left out: a unit that
    /// commits records itself there, as it should).
    pub async fn checksums(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let data = |mut sums: BTreeMap<String, String>| {
            sums.retain(|table, _| !table.contains("migrun_"));
            sums
        };
        (
            data(database_checksums(&self.source.url).await),
            data(database_checksums(&self.target.url).await),
        )
    }
}

/// The SQLite file a `sqlite://` URL names.
pub fn sqlite_path(url: &str) -> &Path {
    Path::new(url.strip_prefix("sqlite://").expect("a sqlite:// URL"))
}

/// The sha256 of a file's bytes.
pub fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        std::fs::read(path).expect("read file"),
    ))
}

/// Every statement of the attack was sent and logged as refused by the plugin
/// (the plugin logs each outcome; none may read `ok`).
pub fn expect_all_refused(out: &Outcome, attacks: &[&str]) {
    let all = out.all();
    for attack in attacks {
        let shown = format!("{attack:?}");
        // The plugin logs `ok (<count>): <sql>` for a statement the host ran.
        assert!(
            !all.contains(&format!("): {shown}")),
            "{attack:?} got through:\n{all}"
        );
        assert!(
            all.contains(&format!("refused: {shown}")),
            "{attack:?} was not refused (or never sent):\n{all}"
        );
    }
}
