//! Multiplayer ETL: seed 001 as a migrun plugin.
//!
//! Migrates the old org/engine/role + RLS model of the memory engine (server
//! v0.2.5) from its two read-only production databases into a fresh third
//! one holding the new auth/core/space model:
//!
//! - `accounts` (`DB_ACCOUNTS`, read-only): schema `accounts` — identities,
//!   oauth links, sessions, orgs and their members, engines, invitations.
//! - `shard` (`DB_SHARD`, read-only): one `me_<slug>` schema per engine — its
//!   users (identities' logins, RBAC roles, service users), `tree_owner`,
//!   `tree_grant`, `role_membership` and the memories.
//! - `target` (read-write, optional: the survey runs without it): an empty
//!   database that receives `auth`
//!   (`users`, `accounts`, `sessions`), `core` (`space`, `principal`,
//!   `principal_space`, `group_member`, `tree_access`, `space_invitation`
//!   and the functions resolving effective access, `core.build_tree_access`)
//!   and one `me_<slug>` schema per space (`memory`, `embedding_queue`).
//!
//! The sources are never written, so rolling back is pointing the application
//! at them again.
//!
//! # Units
//!
//! 1. `identities` (phase A, always first): creates the control plane and
//!    copies every identity into `auth.users` and `core.principal` (kind `u`)
//!    with its id preserved, its oauth links, and its live sessions verbatim
//!    (`token_hash` is `sha256(token)` in both models: users stay logged in).
//! 2. One unit per active engine that has a shard schema, **named by the
//!    engine's slug** (`teamengine02`), in creation order, each in one
//!    transaction: the space (the engine's id and slug reused verbatim), its
//!    roster, groups, agents, grants and invitations, its `me_<slug>` schema,
//!    and every memory streamed from the shard (a cursor of `batch_size` rows,
//!    one `COPY` per batch).
//!
//! `--only <slug>,<slug>` runs a subset (seed 001's `MIGRATE_ENGINES`, for a
//! rehearsal): phase A still runs — an engine unit that finds no control
//! plane runs it first, in its own transaction, and the `identities` unit,
//! idempotent, later copies nothing twice. A requested slug that is not an
//! active engine with a shard schema is not a unit: migrun reports it as
//! skipped, with a warning. Deleted and suspended engines are not listed;
//! an active engine without a shard schema (an orphaned engine row) is left
//! out with a warning. Finished units are skipped on a rerun by the ledger,
//! so a subset run then a full run gives the same target as one full run:
//! nothing the units write depends on which units ran before (ids and
//! timestamps all come from the sources, agent names are decided from the
//! sources alone).
//!
//! # The mapping (see `mapping.rs` and `plan.rs`, unit-tested natively)
//!
//! Where seed 001 states no rule, the choice is `mapping::AccessRules`'s, each
//! changeable through the reviewed file the operator grants (config key
//! `access_rules`; docs/plugins-rust.md lists them as "choices this plugin makes
//! that the seed does not"): the rules file key is named in brackets below.
//!
//! - Org members join each space of their org and own their home
//!   (`owner@home.<id>`, `[member_homes]`); org owners and admins
//!   (`[admin_roles]`, the old engine superusers) are space admins with
//!   `owner@root`; so are engine superusers.
//! - `tree_owner` → `owner`; `tree_grant` `{actions}` → one level, lossy and
//!   over-permissive: grant option → owner; any of create/update/delete →
//!   write (even `{delete}` alone); `{read}` → read. The highest level per
//!   path wins.
//! - RBAC roles (login-less engine users) → groups of the space, their
//!   memberships → group members; a role inside a role cannot be expressed
//!   (groups do not nest): the edge is dropped with a warning.
//! - Service users (login, no identity) → agents (kind `a`) owned by the
//!   org's owner (or, `[agent_owner]`, its first migrated member when no owner
//!   migrated), joined to the space with `owner@home.<owner>.<agent>`, their
//!   grants re-created clamped under the owner's effective access (the owner
//!   holds `owner@root`, so all survive; the target's `agent_tree_access`
//!   applies the same clamp on every read). An agent name the same owner
//!   gets from another engine too is suffixed with the slug on both
//!   (`[agent_name_clash]`: or the unit fails).
//! - Every migrated user's `email_verified` is `true` (`[email_verified]`).
//! - An engine user whose identity does not exist (a dangling identity) is
//!   dropped with its grants, with a warning; so is an invitation from one.
//! - Pending invitations of the org → invitations of each of its spaces.
//! - Not migrated: api keys (argon2, unrecoverable: agents get new ones),
//!   oauth tokens, device-flow rows, expired sessions, accepted or expired
//!   invitations, the old memories' embedding bookkeeping, and their
//!   `created_by` (`[memory_created_by]`: or a `created_by` column keeps it).
//!
//! Embeddings are carried exactly and in binary: `real[]`, pgvector's
//! `halfvec(n)` and `vector(n)` columns are read without a cast as the
//! contract's `float32-array` (a half widens to a float exactly) and bulk
//! inserted as they were read; the host writes them in the target column's
//! binary form (binary16 for `halfvec`), so no float is formatted as text.
//! The target's embedding column has the source's type, and phase A creates
//! the `vector` extension in the target when the shard uses pgvector. `ltree`
//! and `tstzrange`, which contract 0.1.1 does not read natively, travel as
//! text and `COPY` parses them back.
//!
//! # Survey and verify
//!
//! - `mode = "survey"`: no units; `verify` surveys the sources read-only —
//!   drift of the DDL from the columns the ETL reads (checks), the shapes of
//!   the data (identities, engines by status, orphans, memories and the
//!   largest engine, multi-member orgs, RBAC roles, service users, lossy
//!   grants, dangling identities; info messages and a summary check) and
//!   whether any engine would fail (no owner or admin); whether `accounts`
//!   and `shard` are two distinct clusters, as the seed's survey confirmed
//!   (`topology.rs`: one cluster is a warning, or a failed check with
//!   `require_distinct_clusters = true`); and, when a target is configured,
//!   that it is empty and its server offers the extensions. Run it as
//!   `migrun multiplayer_etl.wasm --set mode=survey --dry-run` so that not
//!   even the ledger table is created; without a `target` connection the
//!   survey runs on the sources alone and says it skipped the target checks.
//! - `mode = "migrate"` (default): `verify` checks what seed 001's verifier
//!   does, for the spaces present in the target (a subset run verifies what
//!   it migrated): identities = users = principals (and the join invariant);
//!   oauth links and live sessions identical; per space the memory count and
//!   an order-independent digest of every memory's columns against the shard,
//!   the embedding queue, at least one admin, every member's effective access
//!   (`core.build_tree_access`) non-empty, and access parity — each member's
//!   effective access equals the mapping's and reaches every right the old
//!   model gave it. A ✗ makes migrun exit 3.
//!
//! # Configuration
//!
//! - `mode` (default `migrate`): `migrate` or `survey`.
//! - `batch_size` (default 500, 1 to 100000): memories per cursor fetch and per `COPY`.
//! - `access_rules` (default none: the built-in choices): the reviewed rules file.
//! - `require_distinct_clusters` (default `false`): sources on one cluster fail
//!   the survey and refuse the migration (units are listed only after the check).
//!
//! # Layout
//!
//! `mapping.rs` (the rules) · `plan.rs` (one engine → one space, effective
//! access, the old model's rights) · `source.rs` (expected DDL, embedding
//! types, reads) · `target.rs` (DDL, writes) · `identities.rs` (phase A) ·
//! `engine.rs` (phase B) · `verify.rs` · `survey.rs` · `topology.rs` (which
//! cluster each source is).

use migrun_sdk::{
    Config, ConfigKey, Connection, Dialect, Need, Plugin, PluginInfo, Result, Unit, bail, ensure,
    warn,
};

mod engine;
mod identities;
pub mod mapping;
pub mod plan;
mod source;
mod survey;
mod target;
pub mod topology;
mod verify;

/// The phase-A unit.
pub const UNIT_IDENTITIES: &str = "identities";

/// The largest `batch_size` accepted.
const MAX_BATCH: u32 = 100_000;

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Migrate,
    Survey,
}

/// The plugin's state between calls.
#[derive(Debug)]
pub struct Etl {
    mode: Mode,
    batch_size: u32,
    /// The access rules: built in, or read from the granted file `access_rules` names.
    rules: mapping::AccessRules,
    /// Whether sources on one cluster fail the survey and refuse the migration.
    require_distinct_clusters: bool,
}

impl Plugin for Etl {
    fn describe() -> PluginInfo {
        PluginInfo::new("multiplayer-etl", env!("CARGO_PKG_VERSION"))
            .description(
                "Migrates the memory engine's org/engine/role model (accounts + shard) into a fresh \
                 auth/core/space database: identities, sessions, spaces, grants, agents, memories",
            )
            .connection(Need::read_only(
                "accounts",
                "DB_ACCOUNTS: identities, oauth links, sessions, orgs, engines, invitations (schema accounts)",
            ))
            .connection(Need::read_only(
                "shard",
                "DB_SHARD: one me_<slug> schema per engine with its users, grants and memories",
            ))
            .connection(
                Need::read_write(
                    "target",
                    "the new, empty database: auth, core and me_<slug> schemas (the survey runs without it)",
                )
                .optional()
                .writes([
                        "auth.users",
                        "auth.accounts",
                        "auth.sessions",
                        "core.space",
                        "core.principal",
                        "core.principal_space",
                        "core.group_member",
                        "core.tree_access",
                        "core.space_invitation",
                        "me_<slug>.memory",
                        "me_<slug>.embedding_queue",
                ]),
            )
            .unit(
                UNIT_IDENTITIES,
                "phase A: control plane; identities → auth.users + core.principal (ids preserved), \
                 oauth links, live sessions verbatim",
            )
            .config_key(
                ConfigKey::new(
                    "mode",
                    "`migrate` (units, then seed 001's verifier) or `survey` (no units: a read-only \
                     survey of the sources in verify)",
                )
                .default("migrate"),
            )
            .config_key(
                ConfigKey::new("batch_size", "memories per cursor fetch and per COPY").default("500"),
            )
            .config_key(ConfigKey::new(
                "access_rules",
                "a reviewed file of the mapping choices the seed does not state, in the directory \
                 the operator grants ([files] dir): grant actions that write, the grant option, \
                 admin roles, member homes, the agent owner, agent name clashes, email_verified, \
                 memories' created_by (docs: mapping::AccessRules); empty: the built-in choices",
            ))
            .config_key(
                ConfigKey::new(
                    "require_distinct_clusters",
                    "`true`: accounts and shard on one PostgreSQL cluster fail the survey and \
                     refuse the migration; `false`: a warning (rehearsals on one server)",
                )
                .default("false"),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        let mode = match config.get_or("mode", "migrate") {
            "migrate" => Mode::Migrate,
            "survey" => Mode::Survey,
            other => bail!("config key `mode`: expected `migrate` or `survey`, got {other:?}"),
        };
        let batch_size: u32 = config.parse_or("batch_size", 500)?;
        ensure!(
            (1..=MAX_BATCH).contains(&batch_size),
            "config key `batch_size` must be between 1 and {MAX_BATCH}, got {batch_size}"
        );
        let rules = match config.get_or("access_rules", "") {
            "" => mapping::AccessRules::default(),
            name => {
                let mut file = migrun_sdk::files::File::open(name)?;
                let sha256 = file.sha256().to_owned();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut file, &mut text).map_err(|e| {
                    migrun_sdk::Error::failed(format!("access rules `{name}`: {e}"))
                })?;
                let rules = mapping::AccessRules::parse(&text).map_err(|e| {
                    migrun_sdk::Error::failed(format!("access rules `{name}`: {e}"))
                })?;
                migrun_sdk::info!(file = name, sha256 = sha256, rules = rules.describe();
                    "access rules from the granted file {name}");
                rules
            }
        };
        Ok(Etl {
            mode,
            batch_size,
            rules,
            require_distinct_clusters: config.flag("require_distinct_clusters", false)?,
        })
    }

    fn units(&self) -> Result<Vec<Unit>> {
        let accounts = Connection::open("accounts")?;
        let shard = Connection::open("shard")?;
        let target = Connection::open_optional("target")?;
        for c in [Some(&accounts), Some(&shard), target.as_ref()]
            .into_iter()
            .flatten()
        {
            ensure!(
                c.dialect() == Dialect::Postgres,
                "connection `{}` is {}: the multiplayer ETL runs on PostgreSQL only",
                c.name(),
                c.dialect()
            );
        }
        if self.mode == Mode::Survey {
            return Ok(Vec::new());
        }
        ensure!(
            target.is_some(),
            "the migration writes connection `target`, which is not configured (only \
             `mode = \"survey\"` runs without it): nothing was migrated"
        );
        let topology = topology::Topology::read(&accounts, &shard)?;
        if !topology.is_distinct() {
            ensure!(
                !self.require_distinct_clusters,
                "{}, and require_distinct_clusters = true: nothing was migrated",
                topology.detail()
            );
            warn!(
                "{}: production runs them as two clusters (seed 001); set \
                 require_distinct_clusters = true to refuse this",
                topology.detail()
            );
        }
        let schemas = source::shard_schemas(&shard)?;
        let engines = source::active_engines(&accounts)?;
        let mut migrating = Vec::new();
        for e in engines {
            if !source::valid_slug(&e.slug) {
                warn!(engine = e.slug; "engine slug {:?} is not [a-z0-9]{{12}}: skipped", e.slug);
            } else if !schemas.contains(&source::space_schema(&e.slug)) {
                warn!(
                    engine = e.slug;
                    "engine {} is active but has no shard schema (an orphaned engine row): skipped",
                    e.slug
                );
            } else {
                migrating.push(e);
            }
        }
        let drift = source::drift(
            &accounts,
            &shard,
            &migrating
                .iter()
                .map(|e| source::space_schema(&e.slug))
                .collect::<Vec<_>>(),
        )?;
        ensure!(
            drift.is_empty(),
            "the sources no longer match what the ETL reads (run the survey): missing {}",
            drift.join(", ")
        );
        let mut units = vec![Self::describe().units()[0].clone()];
        units.extend(migrating.into_iter().map(|e| {
            Unit::new(
                e.slug.clone(),
                format!(
                    "engine {:?} → space {} (roster, groups, agents, grants, memories) in one transaction",
                    e.name, e.slug
                ),
            )
        }));
        Ok(units)
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        match (self.mode, unit) {
            (Mode::Survey, _) => bail!("no unit runs in survey mode"),
            (Mode::Migrate, UNIT_IDENTITIES) => identities::run(&self.rules).map(drop),
            (Mode::Migrate, slug) if source::valid_slug(slug) => engine::run(self, slug),
            (Mode::Migrate, other) => bail!("unknown unit {other:?}"),
        }
    }

    fn verify(&mut self) -> Result<()> {
        match self.mode {
            Mode::Survey => survey::run(&self.rules, self.require_distinct_clusters),
            Mode::Migrate => verify::run(&self.rules),
        }
    }
}

migrun_sdk::export_plugin!(Etl);
