//! Step one of a run: the inputs, resolved once. The plugin is instantiated and
//! `describe`d (no connection open yet), its configuration values checked against
//! what it reads, the `${key}`s of its declared writes replaced, the values the
//! journal may keep (secrets redacted) and the run's id fixed. What comes out is
//! handed down the run; nothing here is looked up again.

use std::path::PathBuf;

use crate::capability::database::DatabaseCtx;
use crate::capability::files::FilesGrant;
use crate::config::{RunConfig, redact_url, sqlite_file};
use crate::contract::PluginInfo;
use crate::db::Access;
use crate::ledger::Ledger;
use crate::runtime::sandbox::SandboxSeeds;
use crate::runtime::{LoadedPlugin, PluginInstance, RunState, Runtime};
use crate::session::Session;
use crate::tape::Tape;

use super::{RunError, RunOptions, describe};

/// What a run works from, resolved once before any connection is opened.
pub(super) struct Inputs {
    /// The plugin's declaration, its declared writes resolved.
    pub(super) info: PluginInfo,
    /// The plugin's configuration values (defaults applied).
    pub(super) values: Vec<(String, String)>,
    /// The same values as the journal keeps them: secrets redacted.
    pub(super) redacted: Vec<(String, String)>,
    /// Seeds of the deterministic clock and randomness.
    pub(super) seeds: SandboxSeeds,
    /// This run's id (`<UTC time>-<plugin>-<random>`).
    pub(super) run_id: String,
    /// The ledger table of the targets.
    pub(super) ledger: Ledger,
    /// Every connection the plugin declared, in its order, resolved against the configuration
    /// (optional ones the operator did not configure excepted: see `absent`).
    pub(super) connections: Vec<ConnectionInput>,
    /// Optional connections (contract 0.2.0) the operator did not configure: not provided,
    /// so never opened, locked, backed up or given a ledger; `database.open` answers
    /// `unknown-connection` for them.
    pub(super) absent: Vec<String>,
    /// The directory granted to the plugin's `files` (`[files] dir`, `--files`), opened once;
    /// `None`: every `files.open` is `not-granted`. Granted after `describe`.
    pub(super) files: Option<FilesGrant>,
}

impl Inputs {
    /// What a plan made from these inputs is for, and what a `--plan` run must be: the
    /// plugin build and contract, the configuration (each value's sha256; secrets shown
    /// redacted) and every declared connection's identity (never a password; the URL's
    /// database, not a dry-run's scratch copy).
    pub(super) fn plan_identity(&self, plugin: &LoadedPlugin) -> crate::plan::PlanIdentity {
        use crate::plan::{DatabaseIdentity, PlanConfigValue, PlanIdentity, enforce::sha256_hex};
        PlanIdentity {
            plugin_sha256: plugin.sha256.clone(),
            contract: plugin.contract.0.clone(),
            config: self
                .values
                .iter()
                .zip(&self.redacted)
                .map(|((key, value), (_, shown))| PlanConfigValue {
                    key: key.clone(),
                    value: shown.clone(),
                    sha256: sha256_hex(value),
                })
                .collect(),
            databases: self
                .connections
                .iter()
                .map(|c| DatabaseIdentity::of(&c.name, c.access, &c.url, c.sqlite_file.as_deref()))
                .collect(),
        }
    }

    /// The resolved connection `name` (one the plugin declared).
    pub(super) fn connection(&self, name: &str) -> &ConnectionInput {
        self.connections
            .iter()
            .find(|c| c.name == name)
            .expect("only declared connections are opened")
    }
}

/// A connection the plugin declared, resolved against the configuration once: the
/// grant is checked here, and every later step reads its URL, access and declared
/// writes from this value instead of asking the configuration again.
#[derive(Debug, Clone)]
pub(super) struct ConnectionInput {
    /// The name the plugin opens.
    pub(super) name: String,
    /// The URL connected to, environment variables substituted (holds the password).
    pub(super) url: String,
    /// The same URL with its password redacted, as reports and the journal show it.
    pub(super) redacted_url: String,
    /// What the plugin gets through it: the access it declared, which the grant allows.
    pub(super) access: Access,
    /// The embedded SQLite default rather than a configured connection.
    pub(super) embedded_default: bool,
    /// `allow_privileged = true`: the operator accepts a privileged role here.
    pub(super) allow_privileged: bool,
    /// The SQLite file behind the URL, when it is one.
    pub(super) sqlite_file: Option<PathBuf>,
    /// The tables the plugin declares it writes through it, `${key}`s resolved.
    pub(super) writes: Vec<String>,
}

/// Resolves every declared connection, refusing (before anything is opened) one whose
/// grant is narrower than what the plugin declares it needs. An optional one the operator
/// did not configure is left out (its name returned second): the embedded SQLite default
/// stands in only for connections the plugin cannot run without.
fn resolve_connections(
    info: &PluginInfo,
    config: &RunConfig,
) -> Result<(Vec<ConnectionInput>, Vec<String>), RunError> {
    let mut connections = Vec::with_capacity(info.connections.len());
    let mut absent = Vec::new();
    for need in &info.connections {
        let resolved = config.connection(&need.name);
        if need.optional && resolved.embedded_default {
            absent.push(need.name.clone());
            continue;
        }
        if let Some(granted) = resolved.access
            && granted == Access::ReadOnly
            && need.access == Access::ReadWrite
        {
            return Err(RunError::AccessDenied {
                connection: need.name.clone(),
                needed: need.access,
                granted,
            });
        }
        connections.push(ConnectionInput {
            name: need.name.clone(),
            redacted_url: redact_url(&resolved.url),
            sqlite_file: sqlite_file(&resolved.url),
            url: resolved.url,
            access: need.access,
            embedded_default: resolved.embedded_default,
            allow_privileged: resolved.allow_privileged,
            writes: need.writes.clone(),
        });
    }
    Ok((connections, absent))
}

/// Instantiates the plugin, calls `describe` and resolves the run's inputs.
pub(super) async fn resolve(
    plugin: &LoadedPlugin,
    config: &RunConfig,
    options: &RunOptions,
) -> Result<(PluginInstance, Inputs), RunError> {
    let runtime = Runtime::shared();
    // A granted directory that cannot be opened stops the run before anything else.
    let files = config
        .files_dir
        .as_deref()
        .map(|dir| {
            FilesGrant::open(dir).map_err(|source| RunError::FilesDir {
                dir: dir.to_owned(),
                source,
            })
        })
        .transpose()?;
    // A `--plan` run sees the clock and randomness its dry-run saw.
    let seeds = options
        .seeds
        .or_else(|| options.plan.as_ref().and_then(|p| p.seeds))
        .unwrap_or_else(SandboxSeeds::fresh);
    let state = RunState::new(
        DatabaseCtx::new(Session::empty(Tape::Off)),
        options.observer.clone(),
        Tape::Off,
        seeds,
        &config.limits,
    );
    let mut instance = PluginInstance::instantiate(runtime, plugin, state, config.limits).await?;

    options.observer.phase_started("describe");
    let mut info = describe(&mut instance).await?;
    options.observer.phase_finished("describe", true);
    let values = plugin_values(&info, config)?;
    resolve_declared_writes(&mut info, &values)?;
    let (connections, absent) = resolve_connections(&info, config)?;
    let redacted = redacted(&info, &values);
    let run_id = super::journal::run_id(&info.name);
    let inputs = Inputs {
        connections,
        absent,
        files,
        info,
        values,
        redacted,
        seeds,
        run_id,
        ledger: Ledger::new(&config.ledger_table),
    };
    Ok((instance, inputs))
}

/// The configuration values as the journal keeps them: a secret key's value redacted.
fn redacted(info: &PluginInfo, values: &[(String, String)]) -> Vec<(String, String)> {
    values
        .iter()
        .map(|(k, v)| {
            let secret = info.config.iter().any(|c| &c.name == k && c.secret);
            (
                k.clone(),
                if secret {
                    crate::plan::REDACTED.to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

/// The plugin's configuration values: every given key known, every required key present, defaults applied.
fn plugin_values(info: &PluginInfo, config: &RunConfig) -> Result<Vec<(String, String)>, RunError> {
    for key in config.values.keys() {
        if !info.config.iter().any(|k| &k.name == key) {
            let known: Vec<String> = info
                .config
                .iter()
                .map(|k| format!("`{}`", k.name))
                .collect();
            return Err(RunError::UnknownConfigKey {
                key: key.clone(),
                known: if known.is_empty() {
                    "no keys".into()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    let mut values = Vec::new();
    for key in &info.config {
        match config.values.get(&key.name).or(key.default_value.as_ref()) {
            Some(v) => values.push((key.name.clone(), v.clone())),
            None if key.required => {
                return Err(RunError::MissingConfigKey {
                    key: key.name.clone(),
                    description: key.description.clone(),
                });
            }
            None => {}
        }
    }
    Ok(values)
}

/// Puts configuration values into the table names a plugin declares it writes.
///
/// `describe` is static, but a plugin whose tables are configured (the rename of seed
/// 002 takes its table from `table`) can still declare them: a declared name may hold
/// `${key}`, replaced here by the key's value. The resolved name must then name a table
/// (or be a pattern, see [`crate::backup::check_table_or_pattern`]): it is what the host
/// backs up before the first write and what a dry-run confines, so a value that cannot
/// name one stops the run before anything is written. Secret keys are refused (a table
/// name appears in plans, manifests and journals).
fn resolve_declared_writes(
    info: &mut PluginInfo,
    values: &[(String, String)],
) -> Result<(), RunError> {
    for need in &mut info.connections {
        for declared in &mut need.writes {
            if !declared.contains("${") {
                continue;
            }
            let problem = |problem: String| RunError::DeclaredWrite {
                connection: need.name.clone(),
                declared: declared.clone(),
                problem,
            };
            let mut resolved = String::new();
            let mut rest = declared.as_str();
            while let Some(start) = rest.find("${") {
                resolved.push_str(&rest[..start]);
                let Some(len) = rest[start + 2..].find('}') else {
                    return Err(problem("`${` without its closing `}`".into()));
                };
                let key = &rest[start + 2..start + 2 + len];
                if info.config.iter().any(|k| k.name == key && k.secret) {
                    return Err(problem(format!(
                        "config key `{key}` is secret and cannot name a table"
                    )));
                }
                let Some((_, value)) = values.iter().find(|(k, _)| k == key) else {
                    return Err(problem(format!(
                        "the plugin reads no config key `{key}` (or it has no value)"
                    )));
                };
                if !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
                {
                    return Err(problem(format!(
                        "config key `{key}` is `{value}`, which cannot be part of a table name \
                         (letters, digits, `_`, `$`, and `.` between schema and table)"
                    )));
                }
                resolved.push_str(value);
                rest = &rest[start + 2 + len + 1..];
            }
            resolved.push_str(rest);
            if let Err(e) = crate::backup::check_table_or_pattern(&resolved) {
                return Err(problem(format!(
                    "with the configured values it is `{resolved}`, which names no table ({e})"
                )));
            }
            *declared = resolved;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::resolve_declared_writes;
    use crate::contract::{ConfigKey, ConnectionNeed, PluginInfo};
    use crate::db::Access;

    fn declaring(writes: &[&str]) -> PluginInfo {
        let key = |name: &str, secret: bool| ConfigKey {
            name: name.into(),
            description: String::new(),
            required: true,
            default_value: None,
            secret,
        };
        PluginInfo {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            connections: vec![ConnectionNeed {
                name: "app".into(),
                access: Access::ReadWrite,
                description: String::new(),
                writes: writes.iter().map(|w| (*w).to_owned()).collect(),
                optional: false,
            }],
            units: Vec::new(),
            config: vec![
                key("table", false),
                key("schema", false),
                key("password", true),
            ],
        }
    }

    fn resolve(writes: &[&str], values: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let mut info = declaring(writes);
        let values: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve_declared_writes(&mut info, &values).map_err(|e| e.to_string())?;
        Ok(info.connections[0].writes.clone())
    }

    #[test]
    fn declared_writes_take_configured_table_names() {
        assert_eq!(
            resolve(
                &[
                    "${table}",
                    "${schema}.${table}_history",
                    "audit",
                    "me_<slug>.memory"
                ],
                &[("table", "accounts"), ("schema", "app")]
            )
            .unwrap(),
            [
                "accounts",
                "app.accounts_history",
                "audit",
                "me_<slug>.memory"
            ]
        );
        let refused = |writes: &[&str], values: &[(&str, &str)], needle: &str| {
            let e = resolve(writes, values).unwrap_err();
            assert!(e.contains(needle), "{e}");
            assert!(
                e.starts_with("connection `app` declares it writes `"),
                "{e}"
            );
        };
        refused(&["${tabel}"], &[("table", "a")], "no config key `tabel`");
        refused(&["${table"], &[("table", "a")], "without its closing `}`");
        refused(&["${password}"], &[("password", "hunter2")], "is secret");
        refused(
            &["${table}"],
            &[("table", "a; DROP")],
            "cannot be part of a table name",
        );
        refused(
            &["${table}"],
            &[("table", "../etc")],
            "cannot be part of a table name",
        );
        refused(&["${table}"], &[("table", "a.b.c")], "names no table");
        refused(&["${table}"], &[("table", "")], "names no table");
    }
}
