//! `migrun.toml`: what the operator grants a plugin, checked in one place.
//!
//! The operator names connections (URL + access), gives plugin configuration
//! values and sets the sandbox limits. Unknown keys are rejected with the key
//! named, so a typo never silently loosens a limit. URLs may reference
//! environment variables (`${DB_ACCOUNTS}`) so that secrets stay out of the
//! file; `--db name=url` overrides a URL from the command line.
//!
//! With no file at all, every connection a plugin declares defaults to an
//! embedded SQLite file `<data_dir>/<name>.sqlite`, so the demo runs with
//! nothing installed.
//!
//! ```toml
//! [connections.source]
//! url = "${DB_ACCOUNTS}"
//! access = "read-only"
//!
//! [connections.target]
//! url = "postgres://migrate@db.internal/auth"
//! access = "read-write"
//! # allow_privileged = true   # accept a superuser/FILE role (refused on read-only otherwise)
//!
//! [config]
//! batch_size = 500
//!
//! [limits]
//! fuel = 50_000_000_000
//! memory_mib = 512
//! timeout_secs = 3600
//! conflict_retries = 3
//! lock_timeout = "5s"        # per unit transaction; unset = the database's default
//! statement_timeout = "30s"  # per statement of a unit; unset = the database's default
//!
//! [backup]
//! dir = "backups"        # default `migrun-backups`, next to this file
//! before_run = true      # snapshot the tables the plugin writes before the first write
//! method = "auto"        # or "native": never call pg_dump / mariadb-dump
//!
//! [files]
//! dir = "mappings"       # the plugin may read the files in it (contract 0.2.0 `files`)
//! [run]
//! on_unit_failure = "continue"   # default "stop"; "continue" = `--keep-going`
//! ```

#![deny(missing_docs)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use migrun_types::Access;

/// Why a configuration could not be used. Nothing has run when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, including the key and line.
        message: String,
    },
    /// A URL references an environment variable that is not set.
    #[error(
        "connection `{connection}`: environment variable `{variable}` is not set (referenced by its url)"
    )]
    MissingVariable {
        /// The connection whose URL references it.
        connection: String,
        /// The variable.
        variable: String,
    },
    /// A `${` without a closing `}` or with an invalid name.
    #[error("connection `{connection}`: malformed variable reference in url: {detail}")]
    BadVariable {
        /// The connection.
        connection: String,
        /// What is wrong.
        detail: String,
    },
    /// `[tenants]` is incomplete or contradicts the connections.
    #[error("[tenants]: {0}")]
    Tenants(String),
    /// A `--db` override is not of the form `name=url`.
    #[error("--db {0:?}: expected name=url")]
    BadOverride(String),
    /// A plugin configuration value is neither a string, number nor boolean.
    #[error("config key `{0}`: values must be strings, numbers or booleans")]
    BadValue(String),
}

/// The parsed, not yet resolved, contents of `migrun.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Named connections.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Values for the plugin's configuration keys.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// Sandbox limits.
    #[serde(default)]
    pub limits: Limits,
    /// Where embedded SQLite databases live when a connection is not configured (default `migrun-data`).
    pub data_dir: Option<PathBuf>,
    /// Where journals are written (default `migrun-journal`).
    pub journal_dir: Option<PathBuf>,
    /// The ledger table on every writable connection (default `migrun_ledger`).
    pub ledger_table: Option<String>,
    /// Backups before writes (`[backup]`: `dir`, `before_run`, `method`).
    #[serde(default)]
    pub backup: Option<BackupSettings>,
    /// How the run goes on (`[run]`: `on_unit_failure`).
    #[serde(default)]
    pub run: RunSettings,
    /// The directory whose files the plugin may read (`[files]`: `dir`).
    #[serde(default)]
    pub files: Option<FilesSettings>,
    /// One run per tenant database (`[tenants]`: `names`, `file` or `query`): every
    /// connection URL holding `${tenant}` names that tenant's database.
    #[serde(default)]
    pub tenants: Option<TenantsSettings>,
}

/// The placeholder a connection URL holds where the tenant's name goes
/// (`postgres://app@db/tenant_${tenant}`). Reserved: never read from the environment.
pub const TENANT_PLACEHOLDER: &str = "${tenant}";

/// The `[tenants]` section of `migrun.toml`, as written: where the tenants' names come
/// from — exactly one of a list, a file, or a query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsSettings {
    /// The names, in the file.
    pub names: Option<Vec<String>>,
    /// A file of names, one per line (blank lines and `#` comments skipped), relative to
    /// the config file's folder when relative.
    pub file: Option<PathBuf>,
    /// A query whose first column is the names, run read-only on `query_url`.
    pub query: Option<String>,
    /// Where `query` runs (`${VAR}` substituted from the environment).
    pub query_url: Option<String>,
}

/// Where a run's tenants come from, resolved (paths made absolute, variables substituted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    /// Names listed in the config.
    Names(Vec<String>),
    /// A file of names, one per line.
    File(PathBuf),
    /// A read-only query whose first column is the names.
    Query {
        /// Where it runs.
        url: String,
        /// The query.
        sql: String,
    },
}

/// Checks a tenant's name before it goes into a URL, a folder name and a report: letters,
/// digits, `_`, `-` and `.` (not first), at most 63 characters — so a name can never
/// change which server, user or options a URL names, nor escape the journal folder.
pub fn check_tenant_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "tenant name {name:?} is not allowed: use 1 to 63 letters, digits, `_`, `-` or `.` (not first)"
        ))
    }
}

/// The `[files]` section of `migrun.toml`: the one directory a plugin may read files from
/// (contract 0.2.0 `files`), read-only, by relative name. Without it a plugin reads no file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSettings {
    /// The directory, relative to the config file's folder when relative.
    pub dir: PathBuf,
}

/// One named connection as the operator wrote it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The database URL (`sqlite://…`, `postgres://…`, `mysql://…`), possibly with `${VAR}` references.
    pub url: String,
    /// The most the plugin may do through it; when absent, the plugin gets the access it declares.
    pub access: Option<Access>,
    /// Run even though the connection's role holds privileges a read-only session does not
    /// contain (superuser, server files or programs, server-wide settings; see
    /// `db::privileges`). Without it such a read-only connection is refused at start; with it
    /// the run goes on and the report and plan carry the warning. Default `false`.
    #[serde(default)]
    pub allow_privileged: bool,
}

/// Sandbox limits. Each one, when hit, ends the run with a typed error and rolls back the open unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Fuel (roughly, WebAssembly instructions) for each plugin call: `describe`, `configure`,
    /// `list-units`, each `run-unit` and `verify` gets a fresh budget. Deterministic, unlike time.
    pub fuel: u64,
    /// The plugin's linear memory cap, in MiB.
    pub memory_mib: u64,
    /// Wall-clock limit for each plugin call, in seconds, database time included.
    pub timeout_secs: u64,
    /// How many times a unit that failed on a conflict (deadlock victim, serialisation
    /// failure, lock timeout: a database error of kind `conflict`, returned by the plugin or
    /// met by the commit) is rolled back and run again from its start. 0 (the default): the
    /// first conflict fails the run. A conflicting commit is retried only when the unit has one
    /// read-write connection: with several, another may already have committed.
    ///
    /// Opt-in because a retry calls `run-unit` again on the same plugin instance: a plugin
    /// whose unit changes its own state before failing must be written to start over.
    ///
    /// Left out of a journal header when 0, so a journal of a run without retries stays
    /// readable by a migrun that predates the setting (headers deny unknown fields).
    #[serde(skip_serializing_if = "is_zero")]
    pub conflict_retries: u32,
    /// How long a statement of a unit may wait for a lock before the database gives up
    /// (PostgreSQL `lock_timeout`, MariaDB `lock_wait_timeout` and
    /// `innodb_lock_wait_timeout`, SQLite's busy timeout). A unit that hits it rolls back
    /// and counts as a conflict for `conflict_retries`. Unset: the database's default.
    /// A unit may override it (contract 0.2.0 `unit-info.lock-timeout-ms`).
    ///
    /// Left out of a journal header when unset (headers deny unknown fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_timeout: Option<TimeLimit>,
    /// How long one statement of a unit may run before the database cancels it
    /// (PostgreSQL `statement_timeout`, MariaDB `max_statement_time`; SQLite has none).
    /// Like `lock_timeout`: a conflict when hit, unset = the database's default, a unit
    /// may override it (`unit-info.statement-timeout-ms`), left out of headers when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement_timeout: Option<TimeLimit>,
}

/// A duration setting of `[limits]` written as text (`"500ms"`, `"5s"`, `"2m"`, `"1h"`),
/// held in whole milliseconds.
///
/// Invariant: between 1 ms and `u32::MAX` ms (about 49 days), so it fits the contract's
/// `u32` millisecond fields and every database's setting; anything else is refused when
/// the file is read, naming the key and the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeLimit(u32);

impl TimeLimit {
    /// The limit of `ms` milliseconds; `None` for 0 (no limit is written by leaving the key out).
    pub fn from_millis(ms: u32) -> Option<TimeLimit> {
        (ms > 0).then_some(TimeLimit(ms))
    }

    /// Its length in milliseconds (at least 1).
    pub fn as_millis(self) -> u32 {
        self.0
    }

    /// Its length as a [`std::time::Duration`].
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.0))
    }
}

impl std::fmt::Display for TimeLimit {
    /// The shortest exact form: `1500ms`, `2s`, `3m`, `1h`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        match ms {
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

impl std::str::FromStr for TimeLimit {
    type Err = String;

    /// A whole number followed by `ms`, `s`, `m` or `h`, e.g. `"5s"`.
    fn from_str(text: &str) -> Result<TimeLimit, String> {
        let bad = |why: &str| {
            format!(
                "invalid duration {text:?}: {why} (write a whole number followed by ms, s, m or h, e.g. \"5s\" or \"500ms\")"
            )
        };
        let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &text[digits.len()..];
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(bad("no unit")),
            _ => return Err(bad("unknown unit")),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not a whole number"));
        }
        let ms = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .and_then(|ms| u32::try_from(ms).ok())
            .ok_or_else(|| bad("longer than 49 days"))?;
        TimeLimit::from_millis(ms)
            .ok_or_else(|| bad("zero; leave the key out for the database's default"))
    }
}

impl<'de> Deserialize<'de> for TimeLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for TimeLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Default for Limits {
    /// Generous defaults for real migrations: fuel for minutes of dense compute per call, 1 GiB of memory,
    /// one hour per call.
    fn default() -> Self {
        Limits {
            fuel: 10_000_000_000_000,
            memory_mib: 1024,
            timeout_secs: 3600,
            conflict_retries: 0,
            lock_timeout: None,
            statement_timeout: None,
        }
    }
}

/// The configuration a run uses: connections with URLs resolved, plugin values as strings, limits.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Connections the operator configured, URLs resolved.
    pub connections: BTreeMap<String, ResolvedConnection>,
    /// Plugin configuration values, stringified.
    pub values: BTreeMap<String, String>,
    /// Sandbox limits.
    pub limits: Limits,
    /// Directory of the embedded SQLite default.
    pub data_dir: PathBuf,
    /// Directory journals are written to.
    pub journal_dir: PathBuf,
    /// The ledger table on every writable connection.
    pub ledger_table: String,
    /// Backups: where, whether before the run, by which method.
    pub backup: BackupSettings,
    /// The directory granted to the plugin's `files` interface (`[files] dir`, `--files`);
    /// `None`: no file may be read.
    pub files_dir: Option<PathBuf>,
    /// `[run]`: what a unit's failure does to the rest of the run.
    pub run: RunSettings,
    /// `[tenants]`: the run is one run per tenant (see [`RunConfig::for_tenant`]); `None`
    /// for a single run.
    pub tenants: Option<TenantSource>,
    /// Where the plugin's copy is stored once for many journal folders (a tenant's run: the
    /// base journal folder's `.plugins/`), hard-linked into each journal folder's `plugins/`
    /// where replay finds it; `None`: stored in the journal folder itself.
    pub shared_plugin_dir: Option<PathBuf>,
}

/// A connection with its URL resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedConnection {
    /// The URL, environment variables substituted.
    pub url: String,
    /// The granted access, if the operator set one.
    pub access: Option<Access>,
    /// Whether this is the embedded SQLite default rather than something the operator configured.
    pub embedded_default: bool,
    /// `allow_privileged = true`: the operator accepts a privileged role on this connection.
    pub allow_privileged: bool,
}

impl Default for RunConfig {
    /// No configured connection: every connection is the embedded SQLite default under `migrun-data/`.
    fn default() -> Self {
        RunConfig {
            connections: BTreeMap::new(),
            values: BTreeMap::new(),
            limits: Limits::default(),
            data_dir: PathBuf::from("migrun-data"),
            journal_dir: PathBuf::from("migrun-journal"),
            ledger_table: DEFAULT_LEDGER_TABLE.to_owned(),
            backup: BackupSettings::default(),
            files_dir: None,
            run: RunSettings::default(),
            tenants: None,
            shared_plugin_dir: None,
        }
    }
}

impl RunConfig {
    /// The configuration used when there is no config file: embedded SQLite files under `migrun-data/`.
    pub fn default_embedded() -> RunConfig {
        RunConfig::default()
    }

    /// Reads `path` and resolves it against the process environment.
    pub fn load(path: &Path) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = ConfigFile::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        // Relative paths in the file are relative to its folder, whatever the current folder:
        // a config given from elsewhere (`-c /x/migrun.toml`) has its folder made absolute, so
        // the paths the report prints are the ones used; one in the current folder keeps them short.
        let base = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir
                .canonicalize()
                .or_else(|_| std::path::absolute(dir))
                .unwrap_or_else(|_| dir.to_owned()),
            _ => PathBuf::new(),
        };
        RunConfig::resolve(file, &base, &|name| std::env::var(name).ok())
    }

    /// Resolves a parsed file: substitutes `${VAR}` through `env`, stringifies plugin values and
    /// makes every relative path relative to `base` (the config file's folder): `data_dir`,
    /// `journal_dir`, `[backup] dir` (set or default), `[files] dir` and the file of a
    /// `sqlite:` URL. One rule,
    /// so a run from another folder reads and writes the same files as one from the config's.
    pub fn resolve(
        file: ConfigFile,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, ConfigError> {
        let mut connections = BTreeMap::new();
        for (name, conn) in file.connections {
            let url = sqlite_url_relative_to(&substitute_env(&name, &conn.url, env)?, base);
            connections.insert(
                name,
                ResolvedConnection {
                    url,
                    access: conn.access,
                    embedded_default: false,
                    allow_privileged: conn.allow_privileged,
                },
            );
        }
        let mut values = BTreeMap::new();
        for (key, value) in file.config {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => return Err(ConfigError::BadValue(key)),
            };
            values.insert(key, text);
        }
        let relative = |dir: Option<PathBuf>, default: &str| match dir {
            Some(dir) if dir.is_relative() => under(base, &dir),
            Some(dir) => dir,
            None => under(base, Path::new(default)),
        };
        let tenants = match file.tenants {
            None => None,
            Some(settings) => Some(resolve_tenants(settings, base, env)?),
        };
        check_tenant_placeholders(&connections, tenants.is_some())?;
        if tenants.is_none()
            && file
                .ledger_table
                .as_deref()
                .is_some_and(|t| t.contains(TENANT_PLACEHOLDER))
        {
            return Err(ConfigError::Tenants(
                "`ledger_table` holds `${tenant}`, but there is no [tenants] section".into(),
            ));
        }
        Ok(RunConfig {
            connections,
            values,
            limits: file.limits,
            data_dir: relative(file.data_dir, "migrun-data"),
            journal_dir: relative(file.journal_dir, "migrun-journal"),
            ledger_table: file
                .ledger_table
                .unwrap_or_else(|| DEFAULT_LEDGER_TABLE.to_owned()),
            backup: {
                let mut backup = file.backup.unwrap_or_default();
                backup.dir = relative(Some(backup.dir), "migrun-backups");
                backup
            },
            files_dir: file.files.map(|files| relative(Some(files.dir), "")),
            run: file.run,
            tenants,
            shared_plugin_dir: None,
        })
    }

    /// The configuration of one tenant's run: `${tenant}` replaced by `tenant` in every
    /// connection URL and in `ledger_table`, and the tenant's own journal and backup folders (`<dir>/<tenant>`),
    /// so each tenant's runs replay and restore on their own. `tenant` must have passed
    /// [`check_tenant_name`].
    pub fn for_tenant(&self, tenant: &str) -> RunConfig {
        let mut config = self.clone();
        for conn in config.connections.values_mut() {
            conn.url = conn.url.replace(TENANT_PLACEHOLDER, tenant);
        }
        // Tenants in schemas of one database: a ledger (and so a run lock) per tenant.
        config.ledger_table = self.ledger_table.replace(TENANT_PLACEHOLDER, tenant);
        config.journal_dir = self.journal_dir.join(tenant);
        // One copy of the plugin for every tenant (a Python plugin is ~18 MB: ten thousand
        // copies would be 180 GB), linked into each tenant's folder.
        // `.plugins`: a tenant name never starts with a dot, so no tenant's folder is it.
        config.shared_plugin_dir = Some(self.journal_dir.join(".plugins"));
        config.backup.dir = self.backup.dir.join(tenant);
        config.tenants = None;
        config
    }

    /// Applies a `--db name=url` override (the access and `allow_privileged` configured for
    /// `name`, if any, are kept).
    pub fn apply_override(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (name, url) = spec
            .split_once('=')
            .filter(|(n, u)| !n.is_empty() && !u.is_empty())
            .ok_or_else(|| ConfigError::BadOverride(spec.to_owned()))?;
        let url = substitute_env(name, url, &|v| std::env::var(v).ok())?;
        let access = self.connections.get(name).and_then(|c| c.access);
        let allow_privileged = self
            .connections
            .get(name)
            .is_some_and(|c| c.allow_privileged);
        self.connections.insert(
            name.to_owned(),
            ResolvedConnection {
                url,
                access,
                embedded_default: false,
                allow_privileged,
            },
        );
        Ok(())
    }

    /// The connection for `name`: the configured one, or the embedded SQLite default.
    pub fn connection(&self, name: &str) -> ResolvedConnection {
        self.connections.get(name).cloned().unwrap_or_else(|| {
            let path = self.data_dir.join(format!("{name}.sqlite"));
            ResolvedConnection {
                url: format!("sqlite://{}", path.display()),
                access: None,
                embedded_default: true,
                allow_privileged: false,
            }
        })
    }
}

impl ConfigFile {
    /// Parses TOML text, rejecting unknown keys with the key named.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }
}

/// Replaces every `${NAME}` in `url` by the variable's value.
/// Resolves `[tenants]`: exactly one source, its file relative to `base`, its query URL's
/// variables substituted, listed names checked.
fn resolve_tenants(
    settings: TenantsSettings,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TenantSource, ConfigError> {
    let given = [
        settings.names.is_some(),
        settings.file.is_some(),
        settings.query.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ConfigError::Tenants(
            "give exactly one of `names`, `file` or `query`".into(),
        ));
    }
    if settings.query_url.is_some() && settings.query.is_none() {
        return Err(ConfigError::Tenants(
            "`query_url` is only used with `query`".into(),
        ));
    }
    if let Some(names) = settings.names {
        for name in &names {
            check_tenant_name(name).map_err(ConfigError::Tenants)?;
        }
        return Ok(TenantSource::Names(names));
    }
    if let Some(file) = settings.file {
        return Ok(TenantSource::File(if file.is_relative() {
            under(base, &file)
        } else {
            file
        }));
    }
    let sql = settings.query.unwrap_or_default();
    let url = settings.query_url.ok_or_else(|| {
        ConfigError::Tenants("`query` needs `query_url`, the database it runs on".into())
    })?;
    let url = substitute_env("tenants.query_url", &url, env)?;
    if url.contains(TENANT_PLACEHOLDER) {
        return Err(ConfigError::Tenants(
            "`query_url` cannot hold `${tenant}`: it is where the tenants are listed".into(),
        ));
    }
    Ok(TenantSource::Query {
        url: sqlite_url_relative_to(&url, base),
        sql,
    })
}

/// `${tenant}` in a URL needs `[tenants]`, and `[tenants]` needs a URL holding `${tenant}`
/// (else every tenant's run would write the same database).
fn check_tenant_placeholders(
    connections: &BTreeMap<String, ResolvedConnection>,
    has_tenants: bool,
) -> Result<(), ConfigError> {
    let templated: Vec<&str> = connections
        .iter()
        .filter(|(_, c)| c.url.contains(TENANT_PLACEHOLDER))
        .map(|(name, _)| name.as_str())
        .collect();
    match (has_tenants, templated.is_empty()) {
        (false, false) => Err(ConfigError::Tenants(format!(
            "connection `{}` holds `${{tenant}}` in its url, but there is no [tenants] section \
             saying which tenants there are",
            templated[0]
        ))),
        (true, true) => Err(ConfigError::Tenants(
            "no connection url holds `${tenant}`: every tenant's run would use the same \
             databases"
                .into(),
        )),
        _ => Ok(()),
    }
}

fn substitute_env(
    connection: &str,
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| ConfigError::BadVariable {
            connection: connection.to_owned(),
            detail: format!("`${{` without `}}` in {url:?}"),
        })?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::BadVariable {
                connection: connection.to_owned(),
                detail: format!("`${{{name}}}` is not a variable name"),
            });
        }
        if name == "tenant" {
            // The tenant placeholder: filled per tenant by `RunConfig::for_tenant`.
            out.push_str(TENANT_PLACEHOLDER);
            rest = &after[end + 1..];
            continue;
        }
        let value = env(name).ok_or_else(|| ConfigError::MissingVariable {
            connection: connection.to_owned(),
            variable: name.to_owned(),
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces the password of a URL by `***`, for reports and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..authority_start],
                &authority[..colon],
                &url[authority_start + at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Whether `base` is the current folder (`""` or `"."`), where a relative path stays as written.
fn is_current(base: &Path) -> bool {
    base.as_os_str().is_empty() || base == Path::new(".")
}

/// The relative `path` under `base`, unchanged when `base` is the current folder.
fn under(base: &Path, path: &Path) -> PathBuf {
    if is_current(base) {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// `url` with the file of a `sqlite:` URL made relative to `base` when it is relative; any
/// other URL (and in-memory SQLite) unchanged.
pub fn sqlite_url_relative_to(url: &str, base: &Path) -> String {
    let Some(file) = sqlite_file(url) else {
        return url.to_owned();
    };
    if file.is_absolute() || is_current(base) {
        return url.to_owned();
    }
    let query = url.split_once('?').map(|(_, q)| q);
    let resolved = base.join(file);
    match query {
        Some(q) => format!("sqlite://{}?{q}", resolved.display()),
        None => format!("sqlite://{}", resolved.display()),
    }
}

/// The file a SQLite URL names, if any (not for in-memory databases): where the run
/// lock's file goes beside it.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "DB_ACCOUNTS").then(|| "postgres://u:pw@h/accounts".to_owned())
    }

    /// A journal header records the limits; one without retries reads as it did before
    /// `conflict_retries` existed, and both forms read back equal.
    #[test]
    fn limits_without_retries_serialise_as_before_the_setting() {
        let plain = Limits::default();
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains("conflict_retries"), "{text}");
        assert_eq!(serde_json::from_str::<Limits>(&text).unwrap(), plain);
        let retrying = Limits {
            conflict_retries: 2,
            ..plain
        };
        let text = serde_json::to_string(&retrying).unwrap();
        assert!(text.contains("\"conflict_retries\":2"), "{text}");
        assert_eq!(serde_json::from_str::<Limits>(&text).unwrap(), retrying);
    }

    /// `${tenant}` is kept for `for_tenant` (never read from the environment), each
    /// tenant gets its own URL, journal and backup folders, and a missing or needless
    /// `[tenants]`, two sources, or a name that could change a URL are refused.
    #[test]
    fn tenants_fill_the_placeholder_and_are_checked() {
        let resolve = |text: &str| {
            RunConfig::resolve(
                ConfigFile::parse(text).unwrap(),
                Path::new("/srv/app"),
                &env,
            )
        };
        let config = resolve(
            r#"
            [connections.app]
            url = "postgres://u@h/tenant_${tenant}"
            [tenants]
            file = "tenants.txt"
            "#,
        )
        .unwrap();
        assert_eq!(
            config.tenants,
            Some(TenantSource::File("/srv/app/tenants.txt".into()))
        );
        let acme = config.for_tenant("acme");
        assert_eq!(acme.connections["app"].url, "postgres://u@h/tenant_acme");
        assert_eq!(acme.journal_dir, Path::new("/srv/app/migrun-journal/acme"));
        assert_eq!(
            acme.shared_plugin_dir.as_deref(),
            Some(Path::new("/srv/app/migrun-journal/.plugins")),
            "one copy of the plugin for every tenant"
        );
        assert_eq!(acme.backup.dir, Path::new("/srv/app/migrun-backups/acme"));
        assert_eq!(acme.tenants, None);

        // Tenants in schemas of one database: the search path in the URL, a ledger each.
        let schemas = resolve(
            r#"
            ledger_table = "migrun_ledger_${tenant}"
            [connections.app]
            url = "postgres://u@h/app?options=-csearch_path%3Dt_${tenant}"
            [tenants]
            names = ["a1"]
            "#,
        )
        .unwrap()
        .for_tenant("a1");
        assert_eq!(schemas.ledger_table, "migrun_ledger_a1");
        assert_eq!(
            schemas.connections["app"].url,
            "postgres://u@h/app?options=-csearch_path%3Dt_a1"
        );
        let ledger_without =
            resolve("ledger_table = \"l_${tenant}\"\n[connections.app]\nurl = \"sqlite://x.db\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            ledger_without.contains("no [tenants] section"),
            "{ledger_without}"
        );

        let no_section = resolve("[connections.app]\nurl = \"sqlite://t/${tenant}.db\"\n")
            .unwrap_err()
            .to_string();
        assert!(no_section.contains("no [tenants] section"), "{no_section}");
        let no_placeholder =
            resolve("[connections.app]\nurl = \"sqlite://t.db\"\n[tenants]\nnames = [\"a\"]\n")
                .unwrap_err()
                .to_string();
        assert!(
            no_placeholder.contains("same databases"),
            "{no_placeholder}"
        );
        let two = resolve(
            "[connections.app]\nurl = \"sqlite://${tenant}.db\"\n[tenants]\nnames = [\"a\"]\nfile = \"t\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(two.contains("exactly one of"), "{two}");
        let query_without_url = resolve(
            "[connections.app]\nurl = \"sqlite://${tenant}.db\"\n[tenants]\nquery = \"SELECT 1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            query_without_url.contains("needs `query_url`"),
            "{query_without_url}"
        );
        for bad in ["a/b", "a@h", "../x", "", ".hidden", "a b", "a?sslmode=off"] {
            assert!(check_tenant_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["acme", "tenant_0001", "eu-west.42"] {
            check_tenant_name(good).unwrap();
        }
        let listed_bad = resolve(
            "[connections.app]\nurl = \"sqlite://${tenant}.db\"\n[tenants]\nnames = [\"x/../y\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(listed_bad.contains("not allowed"), "{listed_bad}");
    }

    #[test]
    fn resolves_variables_values_and_limits() {
        let file = ConfigFile::parse(
            r#"
            [connections.source]
            url = "${DB_ACCOUNTS}?sslmode=disable"
            access = "read-only"
            [config]
            batch_size = 500
            dry = true
            [limits]
            memory_mib = 64
            conflict_retries = 2
            "#,
        )
        .unwrap();
        let config = RunConfig::resolve(file, Path::new("/etc/migrun"), &env).unwrap();
        let source = &config.connections["source"];
        assert_eq!(source.url, "postgres://u:pw@h/accounts?sslmode=disable");
        assert_eq!(source.access, Some(Access::ReadOnly));
        assert_eq!(config.values["batch_size"], "500");
        assert_eq!(config.values["dry"], "true");
        assert_eq!(config.limits.memory_mib, 64);
        assert_eq!(config.limits.fuel, Limits::default().fuel);
        assert_eq!(config.limits.conflict_retries, 2);
        assert_eq!(Limits::default().conflict_retries, 0);
    }

    /// `[run] on_unit_failure`: "stop" unless set, "continue" read, anything else refused
    /// naming the key.
    #[test]
    fn on_unit_failure_defaults_to_stop_and_refuses_other_words() {
        let none = ConfigFile::parse("").unwrap();
        assert_eq!(none.run.on_unit_failure, OnUnitFailure::Stop);
        let go_on = ConfigFile::parse("[run]\non_unit_failure = \"continue\"\n").unwrap();
        let config = RunConfig::resolve(go_on, Path::new("/etc/migrun"), &env).unwrap();
        assert_eq!(config.run.on_unit_failure, OnUnitFailure::Continue);
        let wrong = ConfigFile::parse("[run]\non_unit_failure = \"skip\"\n").unwrap_err();
        assert!(wrong.contains("on_unit_failure"), "{wrong}");
        assert!(
            wrong.contains("stop") && wrong.contains("continue"),
            "{wrong}"
        );
    }

    /// `allow_privileged` is per connection, off unless set, and survives a `--db` override.
    #[test]
    fn allow_privileged_is_per_connection_and_kept_by_overrides() {
        let file = ConfigFile::parse(
            "[connections.source]\nurl = \"postgres://a/b\"\naccess = \"read-only\"\nallow_privileged = true\n\
             [connections.target]\nurl = \"postgres://a/c\"\n",
        )
        .unwrap();
        let mut config = RunConfig::resolve(file, Path::new("."), &env).unwrap();
        assert!(config.connection("source").allow_privileged);
        assert!(!config.connection("target").allow_privileged);
        assert!(!config.connection("other").allow_privileged);
        config.apply_override("source=postgres://x/y").unwrap();
        assert!(config.connection("source").allow_privileged);
        let err = ConfigFile::parse("[connections.x]\nurl = \"a\"\nallow_privilege = true\n")
            .unwrap_err();
        assert!(err.contains("unknown field `allow_privilege`"), "{err}");
    }

    /// Timeouts are durations as text, refused with the key and the value when malformed,
    /// and recorded in a journal header as written (in their shortest form).
    #[test]
    fn timeouts_parse_validate_and_serialise() {
        let file =
            ConfigFile::parse("[limits]\nlock_timeout = \"5s\"\nstatement_timeout = \"1500ms\"\n")
                .unwrap();
        assert_eq!(
            file.limits.lock_timeout.map(TimeLimit::as_millis),
            Some(5000)
        );
        assert_eq!(
            file.limits.statement_timeout.map(TimeLimit::as_millis),
            Some(1500)
        );
        let text = serde_json::to_string(&file.limits).unwrap();
        assert!(text.contains("\"lock_timeout\":\"5s\""), "{text}");
        assert!(text.contains("\"statement_timeout\":\"1500ms\""), "{text}");
        assert_eq!(serde_json::from_str::<Limits>(&text).unwrap(), file.limits);
        assert!(
            !serde_json::to_string(&Limits::default())
                .unwrap()
                .contains("timeout\":\"")
        );
        assert_eq!("2m".parse::<TimeLimit>().unwrap().to_string(), "2m");
        assert_eq!("60s".parse::<TimeLimit>().unwrap().to_string(), "1m");
        assert_eq!("1h".parse::<TimeLimit>().unwrap().as_millis(), 3_600_000);
        for (value, why) in [
            ("5", "no unit"),
            ("5 sec", "unknown unit"),
            ("1.5s", "not a whole number"),
            ("0s", "zero"),
            ("50d", "unknown unit"),
            ("2000h", "longer than 49 days"),
        ] {
            let err =
                ConfigFile::parse(&format!("[limits]\nlock_timeout = \"{value}\"\n")).unwrap_err();
            assert!(
                err.contains(&format!("invalid duration {value:?}: {why}")),
                "{value}: {err}"
            );
            assert!(err.contains("lock_timeout"), "the key is named: {err}");
        }
        let err = ConfigFile::parse("[limits]\nstatement_timeout = 30\n").unwrap_err();
        assert!(err.contains("statement_timeout"), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = ConfigFile::parse("[limits]\nmemory_mb = 5\n").unwrap_err();
        assert!(err.contains("unknown field `memory_mb`"), "{err}");
        let err =
            ConfigFile::parse("[connections.x]\nurl = \"sqlite://a\"\nacess = \"read-only\"\n")
                .unwrap_err();
        assert!(err.contains("unknown field `acess`"), "{err}");
    }

    #[test]
    fn missing_variable_is_named() {
        let file = ConfigFile::parse("[connections.t]\nurl = \"${NOPE}\"\n").unwrap();
        let err = RunConfig::resolve(file, Path::new("."), &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection `t`: environment variable `NOPE` is not set (referenced by its url)"
        );
    }

    #[test]
    fn embedded_default_and_overrides() {
        let mut config = RunConfig::resolve(ConfigFile::default(), Path::new("."), &env).unwrap();
        let source = config.connection("source");
        assert!(source.embedded_default);
        assert_eq!(source.url, "sqlite://migrun-data/source.sqlite");
        config
            .apply_override("source=sqlite://elsewhere.db")
            .unwrap();
        assert_eq!(config.connection("source").url, "sqlite://elsewhere.db");
        assert!(config.apply_override("nourl").is_err());
    }

    /// Every relative path of a config file is relative to its folder: SQLite files, the
    /// journal, backup and data directories, set or default; absolute ones and other URLs stay.
    #[test]
    fn relative_paths_are_relative_to_the_config_folder() {
        let file = ConfigFile::parse(
            "journal_dir = \"journals\"\n\
             [connections.app]\nurl = \"sqlite://app.sqlite?mode=rwc\"\n\
             [connections.abs]\nurl = \"sqlite:///srv/abs.sqlite\"\n\
             [connections.mem]\nurl = \"sqlite::memory:\"\n\
             [connections.pg]\nurl = \"postgres://h/db\"\n",
        )
        .unwrap();
        let config = RunConfig::resolve(file, Path::new("/etc/migrun"), &env).unwrap();
        assert_eq!(
            config.connections["app"].url,
            "sqlite:///etc/migrun/app.sqlite?mode=rwc"
        );
        assert_eq!(config.connections["abs"].url, "sqlite:///srv/abs.sqlite");
        assert_eq!(config.connections["mem"].url, "sqlite::memory:");
        assert_eq!(config.connections["pg"].url, "postgres://h/db");
        assert_eq!(config.journal_dir, Path::new("/etc/migrun/journals"));
        assert_eq!(config.data_dir, Path::new("/etc/migrun/migrun-data"));
        assert_eq!(config.backup.dir, Path::new("/etc/migrun/migrun-backups"));
        assert_eq!(
            config.connection("other").url,
            "sqlite:///etc/migrun/migrun-data/other.sqlite"
        );
    }

    /// The README's example must stay a valid config.
    #[test]
    fn readme_example_parses() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme
            .find("## Configuration")
            .expect("README has a Configuration section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + section[start..].find("```").expect("closed block");
        let file = ConfigFile::parse(&section[start..end]).unwrap();
        assert_eq!(
            file.journal_dir.as_deref(),
            Some(Path::new("migrun-journal"))
        );
        assert_eq!(file.connections["source"].access, Some(Access::ReadOnly));
        assert_eq!(file.limits.memory_mib, 1024);
    }

    #[test]
    fn the_files_dir_is_relative_to_the_config_file() {
        let file = ConfigFile::parse("[files]\ndir = \"mappings\"\n").unwrap();
        let config = RunConfig::resolve(file, Path::new("/etc/migrun"), &env).unwrap();
        assert_eq!(
            config.files_dir.as_deref(),
            Some(Path::new("/etc/migrun/mappings"))
        );
        let file = ConfigFile::parse("[files]\ndir = \"/srv/mappings\"\n").unwrap();
        let config = RunConfig::resolve(file, Path::new("/etc/migrun"), &env).unwrap();
        assert_eq!(
            config.files_dir.as_deref(),
            Some(Path::new("/srv/mappings"))
        );
        let none = RunConfig::resolve(ConfigFile::parse("").unwrap(), Path::new("/x"), &env);
        assert_eq!(none.unwrap().files_dir, None);
        let typo = ConfigFile::parse("[files]\ndirectory = \"m\"\n").unwrap_err();
        assert!(typo.contains("directory"), "{typo}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}

/// The ledger table's name when `[run] ledger_table` does not name one.
pub const DEFAULT_LEDGER_TABLE: &str = "migrun_ledger";

/// What a unit's failure does to the units after it (`[run] on_unit_failure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnUnitFailure {
    /// The failed unit is rolled back and no unit starts after it (the default: units may
    /// depend on the ones before them, and a failure usually means the plugin needs fixing).
    #[default]
    Stop,
    /// The failed unit is rolled back and the other units run (`--keep-going`): for units
    /// that do not depend on each other, such as one per tenant. The run still fails, and a
    /// rerun runs only the units that did not finish.
    Continue,
}

/// The `[run]` section of `migrun.toml`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// `"stop"` (default) or `"continue"` (the same as `--keep-going`).
    pub on_unit_failure: OnUnitFailure,
}

/// Which backup method the operator allows (`[backup] method` in `migrun.toml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodChoice {
    /// The dialect's dump tool when a compatible one is on `PATH`, else native.
    #[default]
    Auto,
    /// Always the host's own method (SQLite always uses its online backup).
    Native,
}

/// The `[backup]` section of `migrun.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSettings {
    /// Where snapshots are written (default `migrun-backups`, relative to the config file).
    pub dir: PathBuf,
    /// Whether the host snapshots the tables a plugin declares it writes before the run's
    /// first write. Turning it off is the operator's explicit choice (`--no-backup` does too).
    pub before_run: bool,
    /// Which method may be used.
    pub method: MethodChoice,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            dir: PathBuf::from("migrun-backups"),
            before_run: true,
            method: MethodChoice::Auto,
        }
    }
}
