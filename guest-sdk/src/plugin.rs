//! The [`Plugin`] trait, the self-description a plugin returns from `describe`, and
//! [`Steps`]: units declared once, each with the method that runs it.

use std::time::Duration;

use crate::{Access, Config, Error, Result};

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

    /// The units with the method that runs each, declared once: the host sees them in
    /// `describe` (after the units [`PluginInfo::unit`] lists, if any) and the default
    /// [`run_unit`](Self::run_unit) calls the method of the unit it is asked for.
    ///
    /// ```
    /// use migrun_sdk::{Config, Plugin, PluginInfo, Result, Steps, Unit};
    ///
    /// struct Rename;
    /// impl Plugin for Rename {
    ///     fn describe() -> PluginInfo {
    ///         PluginInfo::new("rename", "1.0.0")
    ///     }
    ///     fn configure(_: &Config) -> Result<Self> {
    ///         Ok(Rename)
    ///     }
    ///     fn steps() -> Steps<Self> {
    ///         Steps::new()
    ///             .step(Unit::new("expand", "adds the new column"), Self::expand)
    ///             .step(Unit::new("index", "builds the index").outside_transaction(), Self::index)
    ///     }
    /// }
    /// impl Rename {
    ///     fn expand(&mut self) -> Result<()> { Ok(()) }
    ///     fn index(&mut self) -> Result<()> { Ok(()) }
    /// }
    /// # let names: Vec<String> = Rename::steps().units().map(|u| u.name().to_owned()).collect();
    /// # assert_eq!(names, ["expand", "index"]);
    /// ```
    fn steps() -> Steps<Self> {
        Steps::new()
    }

    /// The instance this configuration makes of the plugin's units, e.g.
    /// `accounts.email->email_address` for a rename: part of each unit's ledger identity
    /// (contract 0.2.0), so the same unit configured for another column runs again instead
    /// of being skipped as done. Applied by the default [`units`](Self::units) to every
    /// unit that does not set its own [`Unit::scope`]. `None` (the default): one instance.
    fn scope(&self) -> Option<String> {
        None
    }

    /// The units to run, in order. Defaults to the units of [`describe`](Self::describe)
    /// and [`steps`](Self::steps), each scoped by [`scope`](Self::scope); override it to
    /// derive units from data (one per engine, one per shard…).
    fn units(&self) -> Result<Vec<Unit>> {
        let scope = self.scope();
        Ok(declared_units::<Self>()
            .into_iter()
            .map(|unit| match (&unit.scope, &scope) {
                (None, Some(scope)) => unit.scope(scope.clone()),
                _ => unit,
            })
            .collect())
    }

    /// Does the work of one unit, named as in [`units`](Self::units). Defaults to the
    /// method [`steps`](Self::steps) gives for it; a plugin whose units come from data
    /// overrides it.
    fn run_unit(&mut self, unit: &str) -> Result<()> {
        let steps = Self::steps();
        match steps.find(unit) {
            Some(run) => run(self),
            None => Err(Error::Failed(format!(
                "unknown unit `{unit}` (this plugin runs: {})",
                steps
                    .units()
                    .map(|u| u.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Read-only verification after the units: report results with [`check`](crate::check).
    /// A failed check fails the run; an `Err` means verification itself could not run.
    fn verify(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The units of [`Plugin::describe`] followed by those of [`Plugin::steps`] it does not
/// already name: what `describe` tells the host and what `units` defaults to.
pub(crate) fn declared_units<P: Plugin>() -> Vec<Unit> {
    let mut units = P::describe().units;
    for unit in P::steps().entries.into_iter().map(|(unit, _)| unit) {
        if !units.iter().any(|u| u.name == unit.name) {
            units.push(unit);
        }
    }
    units
}

/// The method that runs one unit of a plugin `P`.
pub type StepFn<P> = fn(&mut P) -> Result<()>;

/// A plugin's units, each with the method that runs it: see [`Plugin::steps`].
pub struct Steps<P> {
    entries: Vec<(Unit, StepFn<P>)>,
}

impl<P> Steps<P> {
    /// No units yet.
    pub fn new() -> Self {
        Steps {
            entries: Vec::new(),
        }
    }

    /// Adds `unit`, run by `run`. Units run in the order they are added.
    pub fn step(mut self, unit: Unit, run: StepFn<P>) -> Self {
        self.entries.push((unit, run));
        self
    }

    /// The units, in order.
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.entries.iter().map(|(unit, _)| unit)
    }

    /// The method of the unit called `name`.
    pub fn find(&self, name: &str) -> Option<StepFn<P>> {
        self.entries
            .iter()
            .find(|(unit, _)| unit.name == name)
            .map(|(_, run)| *run)
    }
}

impl<P> Default for Steps<P> {
    fn default() -> Self {
        Steps::new()
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

    /// Adds a unit with its attributes (`Unit::new(…).outside_transaction()`, `.always_run()`, …).
    pub fn with_unit(mut self, unit: Unit) -> Self {
        self.units.push(unit);
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
    pub(crate) optional: bool,
}

impl Need {
    /// A connection the plugin only reads.
    pub fn read_only(name: impl Into<String>, description: impl Into<String>) -> Self {
        Need {
            name: name.into(),
            access: Access::ReadOnly,
            description: description.into(),
            writes: Vec::new(),
            optional: false,
        }
    }

    /// The plugin runs without this connection when the operator does not configure it
    /// (a read-only survey needs no target): [`Connection::open`](crate::Connection::open)
    /// then fails with [`DbErrorKind::UnknownConnection`](crate::DbErrorKind::UnknownConnection)
    /// — or use [`Connection::open_optional`](crate::Connection::open_optional), which says
    /// `None`. No embedded SQLite default stands in for it, and no ledger, lock or backup is
    /// kept there. Without this, an unconfigured connection is the embedded default.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
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

    /// Tables of a connection the plugin only reads that the host backs up before the run's
    /// first write all the same: the database an operator's rollback restores is not always
    /// one the run writes (seed 000 restores the `openneo_id` it copied from). They are
    /// snapshotted with the declared writes, listed in the plan and the report, and
    /// `migrun restore <id>` puts them back (with a URL allowed to write there, `--db
    /// name=url`, when the configured one is read-only). The same names as
    /// [`writes`](Self::writes) accept; on a read-write need this is `writes`. They travel in
    /// the contract's `writes` list: the host backs up what is declared there whatever the
    /// access, and a read-only session never writes.
    pub fn backs_up<I, S>(self, tables: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.writes(tables)
    }

    /// The name the plugin opens and the operator configures.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The access needed.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The tables written through this connection (on a read-only one: backed up, see
    /// [`backs_up`](Self::backs_up)).
    pub fn tables_written(&self) -> &[String] {
        &self.writes
    }

    /// Whether the plugin runs without this connection.
    pub fn is_optional(&self) -> bool {
        self.optional
    }
}

/// A unit of work: it runs in one transaction per writable connection (unless
/// [`outside_transaction`](Self::outside_transaction)), and the ledger remembers it done
/// per (plugin, unit, [`scope`](Self::scope), build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) scope: Option<String>,
    pub(crate) transactional: bool,
    pub(crate) lock_timeout: Option<Duration>,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) always_run: bool,
    pub(crate) skipped: Option<String>,
}

impl Unit {
    /// A unit with a stable `name` (used by `--only` and in reports).
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Unit {
            name: name.into(),
            description: description.into(),
            scope: None,
            transactional: true,
            lock_timeout: None,
            statement_timeout: None,
            always_run: false,
            skipped: None,
        }
    }

    /// The instance of the unit this configuration makes (`accounts.email->email_address`):
    /// part of its ledger identity, shown by `migrun status`, selected by
    /// `--only unit@scope`. 1 to 190 characters, no control characters.
    /// [`Plugin::scope`] sets one for every unit.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// A step outside a transaction (`CREATE INDEX CONCURRENTLY`, `VACUUM`,
    /// `ALTER TYPE … ADD VALUE`): each statement commits on its own, the ledger row is
    /// written after the unit succeeds, and after a failure or crash the whole unit runs
    /// again — so every statement must be safe to repeat (`IF NOT EXISTS`; on PostgreSQL
    /// drop an INVALID index a failed `CONCURRENTLY` build left). Bulk inserts and
    /// checkpoints are refused in it; a dry-run plans it without running it.
    pub fn outside_transaction(mut self) -> Self {
        self.transactional = false;
        self
    }

    /// How long a statement of this unit may wait for a lock (overrides
    /// `[limits] lock_timeout`); hitting it rolls the unit back and retries it as a conflict.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// How long one statement of this unit may run (overrides `[limits] statement_timeout`;
    /// SQLite has none); hitting it is a conflict, as for [`lock_timeout`](Self::lock_timeout).
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Runs on every run, even when the ledger says it finished (a phase that refreshes
    /// lookup tables before the units that read them).
    pub fn always_run(mut self) -> Self {
        self.always_run = true;
        self
    }

    /// Listed but never run, for `reason` (shown in the report and `--json`).
    pub fn skipped(mut self, reason: impl Into<String>) -> Self {
        self.skipped = Some(reason.into());
        self
    }

    /// The unit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the unit does.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The unit's scope, if any.
    pub fn scope_name(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Whether the unit runs inside the host's transactions.
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }

    /// Whether the unit runs on every run.
    pub fn is_always_run(&self) -> bool {
        self.always_run
    }

    /// Why the unit is skipped, if it is.
    pub fn skip_reason(&self) -> Option<&str> {
        self.skipped.as_deref()
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
