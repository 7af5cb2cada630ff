//! The target: the new model's `auth` and `core` schemas, one `me_<slug>`
//! schema per space, and the writes of a [`SpacePlan`].
//!
//! The DDL is this crate's reading of the new model (better-auth's `users`,
//! `accounts`, `sessions`; `core`'s spaces, principals, roster, groups and
//! ltree grants, with the `*_tree_access` functions that resolve effective
//! access, the agent clamp included). Every statement is idempotent
//! (`IF NOT EXISTS`, `CREATE OR REPLACE`), so phase A can run on a fresh
//! target or top up one. Nothing written takes a default from the clock or
//! a random generator: ids come from the sources, timestamps too, so two runs
//! over the same sources write the same rows.

use migrun_sdk::{Connection, Result, Value, params};

use crate::plan::SpacePlan;
use crate::source::{EmbeddingType, space_schema};

/// The control plane: extensions, `auth`, `core`, and the access functions.
pub const CONTROL_PLANE: &[&str] = &[
    "CREATE EXTENSION IF NOT EXISTS ltree",
    "CREATE EXTENSION IF NOT EXISTS citext",
    "CREATE SCHEMA IF NOT EXISTS auth",
    "CREATE TABLE IF NOT EXISTS auth.users
     ( id             uuid        NOT NULL PRIMARY KEY
     , name           text        NOT NULL
     , email          citext      NOT NULL UNIQUE
     , email_verified boolean     NOT NULL DEFAULT false
     , image          text
     , created_at     timestamptz NOT NULL
     , updated_at     timestamptz
     )",
    "CREATE TABLE IF NOT EXISTS auth.accounts
     ( id          uuid        NOT NULL PRIMARY KEY
     , user_id     uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE
     , provider_id text        NOT NULL CHECK (provider_id IN ('google', 'github'))
     , account_id  text        NOT NULL
     , created_at  timestamptz NOT NULL
     , updated_at  timestamptz
     , UNIQUE (provider_id, account_id)
     )",
    "CREATE INDEX IF NOT EXISTS accounts_user_id_idx ON auth.accounts (user_id)",
    "CREATE TABLE IF NOT EXISTS auth.sessions
     ( id          uuid        NOT NULL PRIMARY KEY
     , user_id     uuid        NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE
     , token_hash  bytea       NOT NULL
     , expires_at  timestamptz NOT NULL
     , ip_address  text
     , user_agent  text
     , created_at  timestamptz NOT NULL
     )",
    "CREATE UNIQUE INDEX IF NOT EXISTS sessions_token_hash_uniq ON auth.sessions (token_hash)",
    "CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON auth.sessions (user_id)",
    "CREATE SCHEMA IF NOT EXISTS core",
    "CREATE TABLE IF NOT EXISTS core.space
     ( id         uuid        NOT NULL PRIMARY KEY
     , slug       text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]{12}$')
     , name       citext      NOT NULL
     , language   text        NOT NULL DEFAULT 'english' CHECK (language ~ '^[a-z_]+$')
     , created_at timestamptz NOT NULL
     , updated_at timestamptz
     )",
    "CREATE TABLE IF NOT EXISTS core.principal
     ( id         uuid NOT NULL PRIMARY KEY
     , user_id    uuid UNIQUE GENERATED ALWAYS AS (CASE WHEN kind = 'u' THEN id END) STORED
     , group_id   uuid UNIQUE GENERATED ALWAYS AS (CASE WHEN kind = 'g' THEN id END) STORED
     , agent_id   uuid UNIQUE GENERATED ALWAYS AS (CASE WHEN kind = 'a' THEN id END) STORED
     , member_id  uuid UNIQUE GENERATED ALWAYS AS (CASE WHEN kind IN ('u', 'a') THEN id END) STORED
     , owner_id   uuid REFERENCES core.principal (user_id) ON DELETE CASCADE
     , space_id   uuid REFERENCES core.space (id) ON DELETE CASCADE
     , kind       text NOT NULL CHECK (kind IN ('g', 'u', 'a'))
     , name       citext NOT NULL CHECK (name::text !~ '/')
     , created_at timestamptz NOT NULL
     , updated_at timestamptz
     , CHECK ((kind = 'a') = (owner_id IS NOT NULL))
     , CHECK ((kind = 'g') = (space_id IS NOT NULL))
     )",
    "CREATE UNIQUE INDEX IF NOT EXISTS principal_user_name_uniq ON core.principal (name) WHERE kind = 'u'",
    "CREATE UNIQUE INDEX IF NOT EXISTS principal_agent_name_uniq ON core.principal (owner_id, name) WHERE kind = 'a'",
    "CREATE UNIQUE INDEX IF NOT EXISTS principal_group_name_uniq ON core.principal (space_id, name) WHERE kind = 'g'",
    "CREATE TABLE IF NOT EXISTS core.principal_space
     ( space_id     uuid    NOT NULL REFERENCES core.space (id) ON DELETE CASCADE
     , principal_id uuid    NOT NULL REFERENCES core.principal (id) ON DELETE CASCADE
     , admin        boolean NOT NULL DEFAULT false
     , PRIMARY KEY (principal_id, space_id)
     )",
    "CREATE TABLE IF NOT EXISTS core.group_member
     ( space_id  uuid    NOT NULL REFERENCES core.space (id) ON DELETE CASCADE
     , group_id  uuid    NOT NULL REFERENCES core.principal (group_id) ON DELETE CASCADE
     , member_id uuid    NOT NULL REFERENCES core.principal (member_id) ON DELETE CASCADE
     , admin     boolean NOT NULL DEFAULT false
     , PRIMARY KEY (space_id, member_id, group_id)
     )",
    "CREATE TABLE IF NOT EXISTS core.tree_access
     ( space_id     uuid  NOT NULL REFERENCES core.space (id) ON DELETE CASCADE
     , principal_id uuid  NOT NULL REFERENCES core.principal (id) ON DELETE CASCADE
     , tree_path    ltree NOT NULL
     , access       int   NOT NULL CHECK (access BETWEEN 1 AND 3)
     , PRIMARY KEY (space_id, principal_id, tree_path)
     )",
    "CREATE TABLE IF NOT EXISTS core.space_invitation
     ( space_id   uuid        NOT NULL REFERENCES core.space (id) ON DELETE CASCADE
     , email      citext      NOT NULL
     , admin      boolean     NOT NULL DEFAULT false
     , invited_by uuid        NOT NULL REFERENCES core.principal (user_id) ON DELETE CASCADE
     , expires_at timestamptz NOT NULL
     , created_at timestamptz NOT NULL
     , PRIMARY KEY (space_id, email)
     )",
    // A member's grants through its groups count only while it is in the space itself.
    "CREATE OR REPLACE FUNCTION core.member_tree_access(_member_id uuid, _space_id uuid)
     RETURNS TABLE (tree_path ltree, access int) AS $fn$
       SELECT ta.tree_path, ta.access
       FROM core.group_member gm
       JOIN core.tree_access ta ON ta.principal_id = gm.group_id AND ta.space_id = _space_id
       WHERE gm.member_id = _member_id AND gm.space_id = _space_id
         AND EXISTS (SELECT 1 FROM core.principal_space ps
                     WHERE ps.principal_id = _member_id AND ps.space_id = _space_id)
     $fn$ LANGUAGE sql STABLE",
    "CREATE OR REPLACE FUNCTION core.user_tree_access(_user_id uuid, _space_id uuid)
     RETURNS TABLE (tree_path ltree, access int) AS $fn$
       SELECT ta.tree_path, ta.access
       FROM core.principal u
       JOIN core.principal_space ps ON ps.principal_id = u.id AND ps.space_id = _space_id
       JOIN core.tree_access ta ON ta.principal_id = u.id AND ta.space_id = _space_id
       WHERE u.user_id = _user_id
       UNION
       SELECT x.tree_path, x.access FROM core.member_tree_access(_user_id, _space_id) x
     $fn$ LANGUAGE sql STABLE",
    // An agent gets least(agent, owner) at the deeper path of every pair on one lineage.
    "CREATE OR REPLACE FUNCTION core.agent_tree_access(_agent_id uuid, _space_id uuid)
     RETURNS TABLE (tree_path ltree, access int) AS $fn$
       WITH agent_access AS MATERIALIZED (
         SELECT ta.tree_path, ta.access
         FROM core.principal a
         JOIN core.principal_space ps ON ps.principal_id = a.id AND ps.space_id = _space_id
         JOIN core.tree_access ta ON ta.principal_id = a.id AND ta.space_id = _space_id
         WHERE a.agent_id = _agent_id
         UNION
         SELECT x.tree_path, x.access FROM core.member_tree_access(_agent_id, _space_id) x
       ), owner_access AS MATERIALIZED (
         SELECT x.tree_path, x.access
         FROM core.principal p
         CROSS JOIN LATERAL core.user_tree_access(p.owner_id, _space_id) x
         WHERE p.agent_id = _agent_id
       )
       SELECT x.tree_path, max(x.access)
       FROM (
         SELECT aa.tree_path, least(aa.access, oa.access) AS access
         FROM agent_access aa JOIN owner_access oa ON oa.tree_path @> aa.tree_path
         UNION ALL
         SELECT oa.tree_path, least(aa.access, oa.access)
         FROM agent_access aa JOIN owner_access oa ON aa.tree_path @> oa.tree_path
       ) x
       GROUP BY x.tree_path
     $fn$ LANGUAGE sql STABLE",
    "CREATE OR REPLACE FUNCTION core.build_tree_access(_member_id uuid, _space_id uuid)
     RETURNS jsonb AS $fn$
       SELECT coalesce(jsonb_agg(jsonb_build_object('tree_path', x.tree_path, 'access', x.access)
                                 ORDER BY x.tree_path, x.access), '[]'::jsonb)
       FROM core.principal p
       CROSS JOIN LATERAL (
         SELECT u.tree_path, u.access FROM core.user_tree_access(p.user_id, _space_id) u WHERE p.kind = 'u'
         UNION ALL
         SELECT a.tree_path, a.access FROM core.agent_tree_access(p.agent_id, _space_id) a WHERE p.kind = 'a'
       ) x
       WHERE p.member_id = _member_id
     $fn$ LANGUAGE sql STABLE",
];

/// Runs the control-plane DDL (idempotent).
pub fn provision_control_plane(target: &Connection) -> Result<()> {
    for statement in CONTROL_PLANE {
        target.execute(statement, params![])?;
    }
    Ok(())
}

/// Whether phase A has provisioned the control plane.
pub fn control_plane_exists(target: &Connection) -> Result<bool> {
    target.query_scalar(
        "SELECT to_regclass('auth.users') IS NOT NULL AND to_regclass('core.principal_space') IS NOT NULL",
        params![],
    )
}

/// One space's data schema: memories, the embedding queue and the trigger that
/// enqueues every memory inserted without an embedding.
/// With `keep_created_by` the memory table has the old `created_by uuid` column too.
pub fn space_ddl(slug: &str, embedding: EmbeddingType, keep_created_by: bool) -> Vec<String> {
    let s = space_schema(slug);
    vec![
        format!("CREATE SCHEMA {s}"),
        format!(
            "CREATE TABLE {s}.memory
             ( id                uuid        NOT NULL PRIMARY KEY
             , meta              jsonb       NOT NULL DEFAULT '{{}}'
             , tree              ltree       NOT NULL DEFAULT ''
             , temporal          tstzrange
             , content           text        NOT NULL
             , embedding         {}
             , embedding_version int         NOT NULL DEFAULT 1
             , created_at        timestamptz NOT NULL
             , updated_at        timestamptz{}
             )",
            embedding.sql_type(),
            if keep_created_by {
                "\n             , created_by        uuid"
            } else {
                ""
            }
        ),
        format!(
            "CREATE TABLE {s}.embedding_queue
             ( memory_id         uuid NOT NULL PRIMARY KEY REFERENCES {s}.memory (id) ON DELETE CASCADE
             , embedding_version int  NOT NULL
             )"
        ),
        format!(
            "CREATE FUNCTION {s}.enqueue_embedding() RETURNS trigger AS $fn$
             BEGIN
               INSERT INTO {s}.embedding_queue (memory_id, embedding_version)
               VALUES (NEW.id, NEW.embedding_version);
               RETURN NULL;
             END
             $fn$ LANGUAGE plpgsql"
        ),
        format!(
            "CREATE TRIGGER memory_enqueue_embedding AFTER INSERT ON {s}.memory
             FOR EACH ROW WHEN (NEW.embedding IS NULL) EXECUTE FUNCTION {s}.enqueue_embedding()"
        ),
    ]
}

/// Indexes built once the memories are in (faster than maintaining them row by row).
pub fn space_indexes(slug: &str) -> Vec<String> {
    let s = space_schema(slug);
    vec![
        format!("CREATE INDEX memory_tree_gist ON {s}.memory USING gist (tree)"),
        format!("CREATE INDEX memory_created_at_idx ON {s}.memory (created_at)"),
    ]
}

/// The memory columns copied, in order (the source's, minus the old engine's bookkeeping
/// and, unless the mapping keeps it, `created_by`).
pub fn memory_columns(keep_created_by: bool) -> Vec<&'static str> {
    let mut columns = MEMORY_COLUMNS.to_vec();
    if keep_created_by {
        columns.push("created_by");
    }
    columns
}

const MEMORY_COLUMNS: [&str; 9] = [
    "id",
    "meta",
    "tree",
    "temporal",
    "content",
    "embedding",
    "embedding_version",
    "created_at",
    "updated_at",
];

fn uuid(s: &str) -> Value {
    Value::Uuid(s.to_owned())
}

fn instant(s: &str) -> Value {
    Value::Timestamptz(s.to_owned())
}

/// Writes a planned space's control-plane rows: the space, its groups and
/// agents, roster, grants, group members and invitations.
pub fn write_space(target: &Connection, plan: &SpacePlan) -> Result<u64> {
    let e = &plan.engine;
    let space = uuid(&e.id);
    let mut written = target.execute(
        "INSERT INTO core.space (id, slug, name, language, created_at) VALUES ($1, $2, $3, $4, $5)",
        params![
            space.clone(),
            e.slug.as_str(),
            e.name.as_str(),
            e.language.as_str(),
            instant(&e.created_at)
        ],
    )?;
    let principals = plan
        .principals
        .iter()
        .map(|p| {
            let space_id = match p.kind {
                crate::plan::Kind::Group => space.clone(),
                _ => Value::Null,
            };
            vec![
                uuid(&p.id),
                Value::from(p.kind.letter()),
                Value::from(p.name.as_str()),
                p.owner_id.as_deref().map_or(Value::Null, uuid),
                space_id,
                instant(&p.created_at),
            ]
        })
        .collect();
    written += target.bulk_insert(
        "core.principal",
        &["id", "kind", "name", "owner_id", "space_id", "created_at"],
        principals,
    )?;
    let roster = plan
        .roster
        .iter()
        .map(|(p, admin)| vec![space.clone(), uuid(p), Value::Bool(*admin)])
        .collect();
    written += target.bulk_insert(
        "core.principal_space",
        &["space_id", "principal_id", "admin"],
        roster,
    )?;
    let grants = plan
        .grants
        .iter()
        .flat_map(|(principal, set)| {
            let space = space.clone();
            set.iter()
                .map(move |(path, level)| {
                    vec![
                        space.clone(),
                        uuid(principal),
                        Value::from(path),
                        Value::Int(level.as_i64()),
                    ]
                })
                .collect::<Vec<_>>()
        })
        .collect();
    written += target.bulk_insert(
        "core.tree_access",
        &["space_id", "principal_id", "tree_path", "access"],
        grants,
    )?;
    let members = plan
        .group_members
        .iter()
        .map(|gm| {
            vec![
                space.clone(),
                uuid(&gm.group_id),
                uuid(&gm.member_id),
                Value::Bool(gm.admin),
            ]
        })
        .collect();
    written += target.bulk_insert(
        "core.group_member",
        &["space_id", "group_id", "member_id", "admin"],
        members,
    )?;
    let invitations = plan
        .invitations
        .iter()
        .map(|i| {
            vec![
                space.clone(),
                Value::from(i.email.as_str()),
                Value::Bool(i.admin),
                uuid(&i.invited_by),
                instant(&i.expires_at),
                instant(&i.created_at),
            ]
        })
        .collect();
    written += target.bulk_insert(
        "core.space_invitation",
        &[
            "space_id",
            "email",
            "admin",
            "invited_by",
            "expires_at",
            "created_at",
        ],
        invitations,
    )?;
    Ok(written)
}
