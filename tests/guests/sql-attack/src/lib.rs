//! A hostile plugin for the least-privilege tests (`tests/e2e/attacks.rs`):
//! it sends the SQL it is configured with and ignores every error, as an
//! attacker probing the host would, so that what stops the attack is the
//! host and the database, never the plugin's good manners.
//!
//! Config:
//! - `on`: the connection the statements go to, `source` (read-only) or `target`;
//! - `phase`: when they run — `configure`, `list-units` or `run-unit`;
//! - `sql`: the statements, separated by lines holding only `;;`;
//! - `then`: optional statements sent on `target` afterwards (in the same phase),
//!   to show what a write after the attack becomes;
//! - `finally`: `ok` (default) or `fail`: the unit fails after the statements, so
//!   that a test can prove that nothing of them outlived the unit's rollback.
//!
//! Each statement's outcome is logged (`ok: <sql>` or `refused: <sql>: <error>`)
//! so that a test can name the statement that got through.

use migrun_sdk::{Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Unit, params};

struct SqlAttack {
    on: String,
    phase: String,
    statements: Vec<String>,
    then: Vec<String>,
    fail: bool,
}

fn split(sql: &str) -> Vec<String> {
    sql.split("\n;;\n")
        .map(|s| s.trim_matches(|c| c == ' ' || c == '\n'))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl SqlAttack {
    fn attack(&self, phase: &str) {
        if self.phase != phase {
            return;
        }
        let Ok(conn) = Connection::open(&self.on) else {
            return;
        };
        for statement in &self.statements {
            match conn.execute(statement, params![]) {
                Ok(n) => migrun_sdk::info!("ok ({n}): {statement:?}"),
                Err(e) => migrun_sdk::info!("refused: {statement:?}: {e}"),
            }
        }
        if let Ok(target) = Connection::open("target") {
            for statement in &self.then {
                match target.execute(statement, params![]) {
                    Ok(n) => migrun_sdk::info!("then ok ({n}): {statement:?}"),
                    Err(e) => migrun_sdk::info!("then refused: {statement:?}: {e}"),
                }
            }
        }
    }
}

impl Plugin for SqlAttack {
    fn describe() -> PluginInfo {
        PluginInfo::new("sql-attack", env!("CARGO_PKG_VERSION"))
            .description("sends configured SQL and ignores every error")
            .connection(Need::read_only("source", "a read-only source"))
            .connection(Need::read_write("target", "a writable target").writes(["victim"]))
            .unit("attack", "sends the statements (phase `run-unit`)")
            .config_key(ConfigKey::new("on", "source or target").default("target"))
            .config_key(
                ConfigKey::new("phase", "configure, list-units or run-unit").default("run-unit"),
            )
            .config_key(ConfigKey::new("sql", "statements separated by lines of `;;`").required())
            .config_key(ConfigKey::new("then", "statements on target afterwards").default(""))
            .config_key(ConfigKey::new("finally", "ok, or fail the unit afterwards").default("ok"))
    }

    fn configure(config: &Config) -> Result<Self> {
        let attack = SqlAttack {
            on: config.require("on")?.to_owned(),
            phase: config.require("phase")?.to_owned(),
            statements: split(config.require("sql")?),
            then: split(config.get("then").unwrap_or_default()),
            fail: config.require("finally")? == "fail",
        };
        attack.attack("configure");
        Ok(attack)
    }

    fn units(&self) -> Result<Vec<Unit>> {
        self.attack("list-units");
        Ok(Self::describe().units().to_vec())
    }

    fn run_unit(&mut self, _unit: &str) -> Result<()> {
        self.attack("run-unit");
        if self.fail {
            return Err(migrun_sdk::Error::failed(
                "failing on purpose after the attack",
            ));
        }
        Ok(())
    }
}

migrun_sdk::export_plugin!(SqlAttack);
