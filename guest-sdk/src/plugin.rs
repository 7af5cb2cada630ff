//! The [`Plugin`] trait and the self-description a plugin returns from `describe`.

use crate::{Access, Config, Result};

/// A migration plugin. Implement it and export it with [`export_plugin!`](crate::export_plugin).
///
/// The host calls, in order: [`describe`](Self::describe);
/// [`configure`](Self::configure) once, which builds the plugin's state;
/// [`units`](Self::units); [`run_unit`](Self::run_unit) for each selected unit,
/// each inside one transaction per writable connection that the host commits
/// only when the unit returns `Ok` (a dry-run rolls them back); then
/// [`verify`](Self::verify). A plugin never begins or commits a transaction.
///
/// New methods will come with defaults, so a plugin keeps compiling as the SDK grows.
pub trait Plugin: Sized + 'static {
    /// Declares the plugin: name, version, connections, units and config keys.
    /// Must not depend on data or configuration.
    fn describe() -> PluginInfo;

    /// Builds the plugin from its configuration (declared keys only, defaults applied).
    fn configure(config: &Config) -> Result<Self>;

    /// The units to run, in order. Defaults to the units of [`describe`](Self::describe);
    /// override it to derive units from data (one per engine, one per shard…).
    fn units(&self) -> Result<Vec<Unit>> {
        Ok(Self::describe().units)
    }

    /// Does the work of one unit, named as in [`units`](Self::units).
    fn run_unit(&mut self, unit: &str) -> Result<()>;

    /// Read-only verification after the units: report results with [`check`](crate::check).
    /// A failed check fails the run; an `Err` means verification itself could not run.
    fn verify(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What a plugin declares about itself.
///
/// ```
/// use migrun_sdk::{ConfigKey, Need, PluginInfo};
///
/// let info = PluginInfo::new("auth-consolidation", "0.1.0")
///     .description("Copies users into auth_users")
///     .connection(Need::read_only("source", "the openneo_id database"))
///     .connection(Need::read_write("target", "the openneo_impress database").writes(["auth_users"]))
///     .unit("copy-users", "copies every user")
///     .config_key(ConfigKey::new("batch_size", "rows per batch").default("1000"));
/// assert_eq!(info.units()[0].name(), "copy-users");
/// assert_eq!(info.connections()[1].tables_written(), ["auth_users"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) connections: Vec<Need>,
    pub(crate) units: Vec<Unit>,
    pub(crate) config: Vec<ConfigKey>,
}

impl PluginInfo {
    /// A plugin called `name` at `version` (often `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            connections: Vec::new(),
            units: Vec::new(),
            config: Vec::new(),
        }
    }

    /// One line on what the plugin migrates.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a connection the plugin needs.
    pub fn connection(mut self, need: Need) -> Self {
        self.connections.push(need);
        self
    }

    /// Adds a unit known statically.
    pub fn unit(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.units.push(Unit::new(name, description));
        self
    }

    /// Adds a configuration key the plugin reads.
    pub fn config_key(mut self, key: ConfigKey) -> Self {
        self.config.push(key);
        self
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The connections declared.
    pub fn connections(&self) -> &[Need] {
        &self.connections
    }

    /// The units declared.
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The configuration keys declared.
    pub fn config_keys(&self) -> &[ConfigKey] {
        &self.config
    }
}

/// A connection the plugin needs, by name, with the least access it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub(crate) name: String,
    pub(crate) access: Access,
    pub(crate) description: String,
    pub(crate) writes: Vec<String>,
}

impl Need {
    /// A connection the plugin only reads.
    pub fn read_only(name: impl Into<String>, description: impl Into<String>) -> Self {
        Need {
            name: name.into(),
            access: Access::ReadOnly,
            description: description.into(),
            writes: Vec::new(),
        }
    }

    /// A connection the plugin writes through; name the tables with [`writes`](Self::writes).
    pub fn read_write(name: impl Into<String>, description: impl Into<String>) -> Self {
        Need {
            access: Access::ReadWrite,
            ..Need::read_only(name, description)
        }
    }

    /// The tables written through this connection (for backups and plans).
    ///
    /// The host snapshots them before a run's first write and a full `migrun restore`
    /// puts them back. Besides plain names (`accounts`, `auth.users`) a name may be
    /// - a pattern, `me_<slug>.memory`: every table matching it (each `<…>` stands for
    ///   identifier characters), including those the run creates, which a restore drops;
    /// - or hold a configuration value, `${table}`: replaced by the value of config key
    ///   `table` (not a secret one), for plugins whose tables are configured. A value
    ///   that cannot be part of a table name stops the run before anything is written.
    pub fn writes<I, S>(mut self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.writes.extend(tables.into_iter().map(Into::into));
        self
    }

    /// The name the plugin opens and the operator configures.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The access needed.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The tables written through this connection.
    pub fn tables_written(&self) -> &[String] {
        &self.writes
    }
}

/// A unit of work: it runs in one transaction per writable connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub(crate) name: String,
    pub(crate) description: String,
}

impl Unit {
    /// A unit with a stable `name` (used by `--only` and in reports).
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Unit {
            name: name.into(),
            description: description.into(),
        }
    }

    /// The unit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the unit does.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// A configuration key the plugin reads (`[config]` in `migrun.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKey {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) required: bool,
    pub(crate) default: Option<String>,
    pub(crate) secret: bool,
}

impl ConfigKey {
    /// An optional key without default.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        ConfigKey {
            name: name.into(),
            description: description.into(),
            required: false,
            default: None,
            secret: false,
        }
    }

    /// The value used when the operator gives none.
    pub fn default(mut self, value: impl Into<String>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// The run must supply the key.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// The value is a secret that reports and records redact.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// The key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The default value, if any.
    pub fn default_value(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// Whether the run must supply the key.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Whether the value is secret.
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}
