//! The two read-only sources: the columns the ETL reads (the drift check),
//! the embedding column's type, and the queries that fill an [`EngineInput`].

use std::collections::{BTreeMap, BTreeSet};

use migrun_sdk::{Connection, Result, Value, bail, params};
use serde::Deserialize;

use crate::mapping::{AccessRules, Member};
use crate::plan::{
    EngineInput, EngineRow, EngineUserRow, InvitationRow, OrgMemberRow, RoleMembershipRow,
    TreeGrantRow, TreeOwnerRow,
};

/// The schema holding identities, orgs and engines in `accounts`.
pub const ACCOUNTS_SCHEMA: &str = "accounts";

/// Columns the ETL reads in `accounts`, per table.
pub const ACCOUNTS_COLUMNS: &[(&str, &[&str])] = &[
    (
        "identity",
        &["id", "email", "name", "created_at", "updated_at"],
    ),
    (
        "oauth_account",
        &[
            "id",
            "identity_id",
            "provider",
            "provider_account_id",
            "created_at",
        ],
    ),
    (
        "session",
        &[
            "id",
            "identity_id",
            "token_hash",
            "expires_at",
            "created_at",
        ],
    ),
    ("org", &["id", "slug", "name"]),
    (
        "org_member",
        &["org_id", "identity_id", "role", "created_at"],
    ),
    (
        "engine",
        &[
            "id",
            "org_id",
            "slug",
            "name",
            "language",
            "status",
            "created_at",
        ],
    ),
    (
        "invitation",
        &[
            "org_id",
            "email",
            "role",
            "invited_by",
            "expires_at",
            "accepted_at",
            "created_at",
        ],
    ),
];

/// Columns the ETL reads in every `me_<slug>` schema of `shard`, per table.
pub const SHARD_COLUMNS: &[(&str, &[&str])] = &[
    (
        "memory",
        &[
            "id",
            "meta",
            "tree",
            "temporal",
            "content",
            "embedding",
            "embedding_version",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "user",
        &[
            "id",
            "name",
            "identity_id",
            "can_login",
            "superuser",
            "created_at",
        ],
    ),
    ("tree_owner", &["tree_path", "user_id"]),
    (
        "tree_grant",
        &["tree_path", "user_id", "actions", "with_grant_option"],
    ),
    (
        "role_membership",
        &["role_id", "member_id", "with_admin_option"],
    ),
];

/// Whether `slug` is an engine slug (`^[a-z0-9]{12}$`); only such slugs are
/// ever spliced into SQL, as `me_<slug>`.
pub fn valid_slug(slug: &str) -> bool {
    slug.len() == 12
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// An engine's data schema, in the shard and in the target: `me_<slug>`.
pub fn space_schema(slug: &str) -> String {
    format!("me_{slug}")
}

/// `expected` columns absent from `present` (schema → table → columns), as
/// `schema.table.column` or `schema.table (table absent)`.
pub fn missing_columns(
    schema: &str,
    expected: &[(&str, &[&str])],
    present: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut missing = Vec::new();
    for (table, columns) in expected {
        match present.get(*table) {
            None => missing.push(format!("{schema}.{table} (table absent)")),
            Some(have) => missing.extend(
                columns
                    .iter()
                    .filter(|c| !have.contains(**c))
                    .map(|c| format!("{schema}.{table}.{c}")),
            ),
        }
    }
    missing
}

#[derive(Deserialize)]
struct ColumnRow {
    table_schema: String,
    table_name: String,
    column_name: String,
}

/// The columns of every table in the schemas matching `pattern` (`LIKE`), by schema and table.
pub fn columns(
    conn: &Connection,
    pattern: &str,
) -> Result<BTreeMap<String, BTreeMap<String, BTreeSet<String>>>> {
    let rows: Vec<ColumnRow> = conn.query_as(
        "SELECT table_schema::text AS table_schema, table_name::text AS table_name, \
         column_name::text AS column_name FROM information_schema.columns \
         WHERE table_schema LIKE $1 ORDER BY 1, 2, 3",
        params![pattern],
    )?;
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for r in rows {
        out.entry(r.table_schema)
            .or_default()
            .entry(r.table_name)
            .or_default()
            .insert(r.column_name);
    }
    Ok(out)
}

/// The drift of the sources from what the ETL reads: missing tables and columns in
/// `accounts` and in each of the given engine schemas of `shard`.
pub fn drift(accounts: &Connection, shard: &Connection, schemas: &[String]) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    let acc = columns(accounts, ACCOUNTS_SCHEMA)?;
    missing.extend(missing_columns(
        ACCOUNTS_SCHEMA,
        ACCOUNTS_COLUMNS,
        &acc.get(ACCOUNTS_SCHEMA).cloned().unwrap_or_default(),
    ));
    let sh = columns(shard, "me\\_%")?;
    for schema in schemas {
        missing.extend(missing_columns(
            schema,
            SHARD_COLUMNS,
            &sh.get(schema).cloned().unwrap_or_default(),
        ));
    }
    Ok(missing)
}

/// The type of an engine's `embedding` column. Every one is read without a
/// cast and written as it was read: the host reads `real[]`, pgvector's
/// `halfvec(n)` and `vector(n)` as the contract's `float32-array` (a half
/// widens to a float exactly) and a bulk insert writes it back in the target
/// column's binary form, so no float is ever formatted as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingType {
    /// `real[]`.
    Real,
    /// pgvector `halfvec(n)`.
    Halfvec(u32),
    /// pgvector `vector(n)`.
    Vector(u32),
}

impl EmbeddingType {
    /// Parses PostgreSQL's `format_type` of the column.
    pub fn parse(sql_type: &str) -> Option<EmbeddingType> {
        let dims = |rest: &str| rest.strip_suffix(')')?.parse().ok();
        match sql_type {
            "real[]" => Some(EmbeddingType::Real),
            t => {
                if let Some(rest) = t.strip_prefix("halfvec(") {
                    dims(rest).map(EmbeddingType::Halfvec)
                } else if let Some(rest) = t.strip_prefix("vector(") {
                    dims(rest).map(EmbeddingType::Vector)
                } else {
                    None
                }
            }
        }
    }

    /// The column's type in the target (the same as the source's).
    pub fn sql_type(self) -> String {
        match self {
            EmbeddingType::Real => "real[]".to_owned(),
            EmbeddingType::Halfvec(n) => format!("halfvec({n})"),
            EmbeddingType::Vector(n) => format!("vector({n})"),
        }
    }
}

/// Whether any engine's `embedding` column in the shard is a pgvector type
/// (`vector`, `halfvec`): the target then needs the `vector` extension.
pub fn shard_uses_pgvector(shard: &Connection) -> Result<bool> {
    shard.query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute a \
           JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_type t ON t.oid = a.atttypid \
           WHERE n.nspname LIKE 'me\\_%' AND c.relname = 'memory' AND a.attname = 'embedding' \
             AND NOT a.attisdropped AND t.typname IN ('vector', 'halfvec'))",
        params![],
    )
}

/// The type of `me_<slug>.memory.embedding` in the shard.
pub fn embedding_type(shard: &Connection, slug: &str) -> Result<EmbeddingType> {
    let found: Option<String> = shard
        .query_opt_as(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'memory' AND a.attname = 'embedding' AND NOT a.attisdropped",
            params![space_schema(slug)],
        )?;
    match found {
        Some(t) => match EmbeddingType::parse(&t) {
            Some(e) => Ok(e),
            None => bail!(
                "{}.memory.embedding has type {t}; the ETL carries real[], halfvec(n) or vector(n)",
                space_schema(slug)
            ),
        },
        None => bail!("{}.memory has no embedding column", space_schema(slug)),
    }
}

/// The engine schemas that exist in the shard (`me_<slug>`, valid slugs only).
pub fn shard_schemas(shard: &Connection) -> Result<BTreeSet<String>> {
    let names: Vec<String> = shard.query_as(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'me\\_%' ORDER BY 1",
        params![],
    )?;
    Ok(names
        .into_iter()
        .filter(|n| n.strip_prefix("me_").is_some_and(valid_slug))
        .collect())
}

#[derive(Deserialize)]
struct EngineDb {
    id: String,
    org_id: String,
    slug: String,
    name: String,
    language: String,
    created_at: String,
}

/// Active engines, in creation order.
pub fn active_engines(accounts: &Connection) -> Result<Vec<EngineRow>> {
    let rows: Vec<EngineDb> = accounts.query_as(
        "SELECT id, org_id, slug, name, language, created_at FROM accounts.engine \
         WHERE status = 'active' ORDER BY created_at, slug",
        params![],
    )?;
    Ok(rows
        .into_iter()
        .map(|e| EngineRow {
            id: e.id,
            org_id: e.org_id,
            slug: e.slug,
            name: e.name,
            language: e.language,
            created_at: e.created_at,
        })
        .collect())
}

/// Every identity id.
pub fn identity_ids(accounts: &Connection) -> Result<BTreeSet<String>> {
    let ids: Vec<String> = accounts.query_as("SELECT id FROM accounts.identity", params![])?;
    Ok(ids.into_iter().collect())
}

#[derive(Deserialize)]
struct MemberDb {
    identity_id: String,
    role: String,
}

/// An org's members, by membership date.
pub fn org_members(accounts: &Connection, org_id: &str) -> Result<Vec<OrgMemberRow>> {
    let rows: Vec<MemberDb> = accounts.query_as(
        "SELECT identity_id, role FROM accounts.org_member WHERE org_id = $1 \
         ORDER BY created_at, identity_id",
        params![Value::Uuid(org_id.to_owned())],
    )?;
    Ok(rows
        .into_iter()
        .map(|m| OrgMemberRow {
            identity_id: m.identity_id,
            role: m.role,
        })
        .collect())
}

#[derive(Deserialize)]
struct InvitationDb {
    email: String,
    role: String,
    invited_by: String,
    expires_at: String,
    created_at: String,
}

/// An org's pending invitations (not accepted, not expired).
pub fn pending_invitations(accounts: &Connection, org_id: &str) -> Result<Vec<InvitationRow>> {
    let rows: Vec<InvitationDb> = accounts.query_as(
        "SELECT email::text AS email, role, invited_by, expires_at, created_at FROM accounts.invitation \
         WHERE org_id = $1 AND accepted_at IS NULL AND expires_at > now() ORDER BY created_at, email",
        params![Value::Uuid(org_id.to_owned())],
    )?;
    Ok(rows
        .into_iter()
        .map(|i| InvitationRow {
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            expires_at: i.expires_at,
            created_at: i.created_at,
        })
        .collect())
}

#[derive(Deserialize)]
struct UserDb {
    id: String,
    name: String,
    identity_id: Option<String>,
    can_login: bool,
    superuser: bool,
    created_at: String,
}

/// An engine's users, roles and service users, by creation.
pub fn engine_users(shard: &Connection, slug: &str) -> Result<Vec<EngineUserRow>> {
    let rows: Vec<UserDb> = shard.query_as(
        &format!(
            "SELECT id, name::text AS name, identity_id, can_login, superuser, created_at \
             FROM {}.\"user\" ORDER BY created_at, id",
            space_schema(slug)
        ),
        params![],
    )?;
    Ok(rows
        .into_iter()
        .map(|u| EngineUserRow {
            id: u.id,
            name: u.name,
            identity_id: u.identity_id,
            can_login: u.can_login,
            superuser: u.superuser,
            created_at: u.created_at,
        })
        .collect())
}

#[derive(Deserialize)]
struct OwnerDb {
    tree_path: String,
    user_id: String,
}

#[derive(Deserialize)]
struct GrantDb {
    tree_path: String,
    user_id: String,
    actions: Vec<String>,
    with_grant_option: bool,
}

#[derive(Deserialize)]
struct RoleDb {
    role_id: String,
    member_id: String,
    with_admin_option: bool,
}

/// Names of an engine's service users (login users with no identity).
pub fn service_user_names(shard: &Connection, slug: &str) -> Result<Vec<String>> {
    shard.query_as(
        &format!(
            "SELECT name::text FROM {}.\"user\" WHERE can_login AND identity_id IS NULL ORDER BY 1",
            space_schema(slug)
        ),
        params![],
    )
}

/// Service user names that the agent owner of `engine` gets from its other
/// active engines with a shard schema (where it is the agent owner too).
fn owner_agents_elsewhere(
    accounts: &Connection,
    shard: &Connection,
    engine: &EngineRow,
    owner: &str,
    identities: &BTreeSet<String>,
    schemas: &BTreeSet<String>,
    rules: &AccessRules,
) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Other {
        slug: String,
        org_id: String,
    }
    let others: Vec<Other> = accounts.query_as(
        "SELECT slug, org_id FROM accounts.engine WHERE status = 'active' AND slug <> $1 \
         AND org_id IN (SELECT org_id FROM accounts.org_member WHERE identity_id = $2) ORDER BY slug",
        params![engine.slug.as_str(), Value::Uuid(owner.to_owned())],
    )?;
    let mut names = Vec::new();
    for other in others {
        if !valid_slug(&other.slug) || !schemas.contains(&space_schema(&other.slug)) {
            continue;
        }
        let members: Vec<Member> = org_members(accounts, &other.org_id)?
            .into_iter()
            .map(|m| Member {
                identity_id: m.identity_id,
                role: m.role,
            })
            .collect();
        if rules.agent_owner(&members, |id| identities.contains(id)) == Some(owner) {
            names.extend(service_user_names(shard, &other.slug)?);
        }
    }
    Ok(names)
}

/// Everything [`plan_space`](crate::plan::plan_space) needs about `engine`.
pub fn engine_input(
    accounts: &Connection,
    shard: &Connection,
    engine: &EngineRow,
    rules: &AccessRules,
) -> Result<EngineInput> {
    let schema = space_schema(&engine.slug);
    let identities = identity_ids(accounts)?;
    let org_members = org_members(accounts, &engine.org_id)?;
    let invitations = pending_invitations(accounts, &engine.org_id)?;
    let users = engine_users(shard, &engine.slug)?;
    let owners: Vec<OwnerDb> = shard.query_as(
        &format!("SELECT tree_path::text AS tree_path, user_id FROM {schema}.tree_owner ORDER BY tree_path"),
        params![],
    )?;
    let grants: Vec<GrantDb> = shard.query_as(
        &format!(
            "SELECT tree_path::text AS tree_path, user_id, actions, with_grant_option \
             FROM {schema}.tree_grant ORDER BY tree_path, user_id"
        ),
        params![],
    )?;
    let memberships: Vec<RoleDb> = shard.query_as(
        &format!(
            "SELECT role_id, member_id, with_admin_option FROM {schema}.role_membership \
             ORDER BY role_id, member_id"
        ),
        params![],
    )?;
    let members: Vec<Member> = org_members
        .iter()
        .map(|m| Member {
            identity_id: m.identity_id.clone(),
            role: m.role.clone(),
        })
        .collect();
    let owner_agents_elsewhere = match rules.agent_owner(&members, |id| identities.contains(id)) {
        Some(owner) => {
            let schemas = shard_schemas(shard)?;
            owner_agents_elsewhere(accounts, shard, engine, owner, &identities, &schemas, rules)?
        }
        None => Vec::new(),
    };
    Ok(EngineInput {
        engine: Some(engine.clone()),
        org_members,
        invitations,
        users,
        owners: owners
            .into_iter()
            .map(|o| TreeOwnerRow {
                tree_path: o.tree_path,
                user_id: o.user_id,
            })
            .collect(),
        grants: grants
            .into_iter()
            .map(|g| TreeGrantRow {
                tree_path: g.tree_path,
                user_id: g.user_id,
                actions: g.actions,
                with_grant_option: g.with_grant_option,
            })
            .collect(),
        memberships: memberships
            .into_iter()
            .map(|r| RoleMembershipRow {
                role_id: r.role_id,
                member_id: r.member_id,
                with_admin_option: r.with_admin_option,
            })
            .collect(),
        identities,
        owner_agents_elsewhere,
        rules: rules.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(valid_slug("teamengine02"));
        assert!(!valid_slug("TeamEngine02"));
        assert!(!valid_slug("team\"; drop"));
        assert!(!valid_slug("short"));
        assert_eq!(space_schema("abc"), "me_abc");
    }

    #[test]
    fn drift_names_missing_tables_and_columns() {
        let mut present: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        present.insert(
            "identity".into(),
            ["id", "email", "name", "created_at"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        );
        let missing = missing_columns("accounts", &ACCOUNTS_COLUMNS[..2], &present);
        assert_eq!(
            missing,
            [
                "accounts.identity.updated_at",
                "accounts.oauth_account (table absent)"
            ]
        );
    }

    #[test]
    fn embedding_types() {
        assert_eq!(EmbeddingType::parse("real[]"), Some(EmbeddingType::Real));
        assert_eq!(
            EmbeddingType::parse("halfvec(1536)"),
            Some(EmbeddingType::Halfvec(1536))
        );
        assert_eq!(
            EmbeddingType::parse("vector(3)"),
            Some(EmbeddingType::Vector(3))
        );
        assert_eq!(EmbeddingType::parse("double precision[]"), None);
        assert_eq!(EmbeddingType::parse("halfvec(x)"), None);
        assert_eq!(EmbeddingType::Halfvec(8).sql_type(), "halfvec(8)");
    }
}
