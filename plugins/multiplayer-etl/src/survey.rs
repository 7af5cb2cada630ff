//! The read-only survey (`mode = "survey"`): before migrating, does the source
//! DDL still match what the ETL reads, and what shapes does the data hold —
//! how much of the mapping will prod actually exercise? Aggregates only: no
//! emails, contents or secrets. Runs in `verify` (rolled-back transactions);
//! the plugin lists no unit in this mode.
//!
//! It also checks what seed 001's survey confirmed first — that the two sources
//! are two distinct clusters ([`Topology`]; one cluster is a warning unless
//! `require_distinct_clusters = true`) — and, when a target is configured, that it
//! is what the ETL needs: an empty database whose server offers the extensions. The
//! survey runs without a target (the connection is optional) and then says that it
//! skipped those checks.

use std::collections::BTreeSet;

use migrun_sdk::{Connection, Result, check, info, params, warn};
use serde::Deserialize;

use crate::mapping::{AccessRules, Member};
use crate::source::{self, space_schema};
use crate::topology::Topology;

#[derive(Deserialize)]
struct AccountCounts {
    identities: i64,
    oauth_accounts: i64,
    sessions_total: i64,
    sessions_live: i64,
    orgs: i64,
    org_members: i64,
    multi_member_orgs: i64,
    engines: i64,
    engines_active: i64,
    engines_suspended: i64,
    engines_deleted: i64,
    pending_invites: i64,
}

#[derive(Deserialize, Default)]
struct ShardCounts {
    memories: i64,
    largest: i64,
    null_embeddings: i64,
    rbac_roles: i64,
    service_users: i64,
    role_edges: i64,
    tree_owners: i64,
    grants: i64,
    lossy_grants: i64,
}

/// Runs the survey; `require_distinct_clusters` makes sources on one cluster a failed check.
pub fn run(rules: &AccessRules, require_distinct_clusters: bool) -> Result<()> {
    let accounts = Connection::open("accounts")?;
    let shard = Connection::open("shard")?;

    // Seed 001, §9: "two distinct physical clusters confirmed".
    let topology = Topology::read(&accounts, &shard)?;
    if topology.is_distinct() {
        check("sources on two distinct clusters", true, topology.detail());
    } else if require_distinct_clusters {
        check(
            "sources on two distinct clusters",
            false,
            &format!("{} (require_distinct_clusters = true)", topology.detail()),
        );
    } else {
        warn!(
            "{}: production runs them as two clusters (seed 001); a rehearsal may share one \
             (set require_distinct_clusters = true to fail here)",
            topology.detail()
        );
        check(
            "sources on two distinct clusters (not required)",
            true,
            &format!(
                "{} — allowed: require_distinct_clusters = false",
                topology.detail()
            ),
        );
    }
    let target_note = match Connection::open_optional("target")? {
        Some(target) => {
            survey_target(&target, &shard)?;
            "target checked"
        }
        None => {
            info!(
                "no target configured: the survey skips the target checks (an empty database, \
                 the extensions the ETL creates)"
            );
            "no target configured: target checks skipped"
        }
    };

    // DDL drift: every column the ETL reads, in accounts and in every engine schema.
    let schemas: Vec<String> = source::shard_schemas(&shard)?.into_iter().collect();
    let missing = source::drift(&accounts, &shard, &[])?;
    check(
        "accounts DDL as the ETL expects",
        missing.is_empty(),
        &if missing.is_empty() {
            "every column the ETL reads is present".to_owned()
        } else {
            format!("missing: {}", missing.join(", "))
        },
    );
    if !missing.is_empty() {
        return Ok(());
    }
    let missing = source::drift(&accounts, &shard, &schemas)?;
    check(
        &format!(
            "shard DDL as the ETL expects ({} engine schemas)",
            schemas.len()
        ),
        missing.is_empty(),
        &if missing.is_empty() {
            "every column the ETL reads is present".to_owned()
        } else {
            format!("missing: {}", missing.join(", "))
        },
    );
    // Schemas that drifted are left out of the counts below (their queries would fail).
    let drifted: BTreeSet<String> = missing
        .iter()
        .filter_map(|m| m.split('.').next())
        .map(str::to_owned)
        .collect();
    if !drifted.is_empty() {
        warn!(
            "left out of the counts, their DDL drifted: {}",
            drifted.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mut types = BTreeSet::new();
    let mut unsupported = Vec::new();
    for schema in &schemas {
        let slug = &schema[3..];
        match source::embedding_type(&shard, slug) {
            Ok(t) => {
                types.insert(t.sql_type());
            }
            Err(e) => unsupported.push(e.to_string()),
        }
    }
    check(
        "embedding columns of a type carried exactly",
        unsupported.is_empty(),
        &if unsupported.is_empty() {
            format!(
                "{} (real[] natively; halfvec/vector through real[] and their text literal)",
                types.into_iter().collect::<Vec<_>>().join(", ")
            )
        } else {
            unsupported.join("; ")
        },
    );

    // Control-plane shapes.
    let c: AccountCounts = accounts.query_one_as(
        "SELECT \
           (SELECT count(*) FROM accounts.identity) AS identities, \
           (SELECT count(*) FROM accounts.oauth_account) AS oauth_accounts, \
           (SELECT count(*) FROM accounts.session) AS sessions_total, \
           (SELECT count(*) FROM accounts.session WHERE expires_at > now()) AS sessions_live, \
           (SELECT count(*) FROM accounts.org) AS orgs, \
           (SELECT count(*) FROM accounts.org_member) AS org_members, \
           (SELECT count(*) FROM (SELECT org_id FROM accounts.org_member GROUP BY org_id \
              HAVING count(*) > 1) t) AS multi_member_orgs, \
           (SELECT count(*) FROM accounts.engine) AS engines, \
           (SELECT count(*) FROM accounts.engine WHERE status = 'active') AS engines_active, \
           (SELECT count(*) FROM accounts.engine WHERE status = 'suspended') AS engines_suspended, \
           (SELECT count(*) FROM accounts.engine WHERE status = 'deleted') AS engines_deleted, \
           (SELECT count(*) FROM accounts.invitation WHERE accepted_at IS NULL AND expires_at > now()) \
              AS pending_invites",
        params![],
    )?;
    info!(
        identities = c.identities,
        oauth_accounts = c.oauth_accounts,
        sessions_live = c.sessions_live,
        sessions_total = c.sessions_total,
        orgs = c.orgs,
        org_members = c.org_members,
        multi_member_orgs = c.multi_member_orgs,
        pending_invites = c.pending_invites;
        "accounts: {} identities, {} oauth links, {} of {} sessions live, {} orgs ({} with more than one member), {} pending invitations",
        c.identities, c.oauth_accounts, c.sessions_live, c.sessions_total, c.orgs, c.multi_member_orgs, c.pending_invites
    );

    // Engines against shard schemas.
    let active = source::active_engines(&accounts)?;
    let active_slugs: BTreeSet<String> = active.iter().map(|e| e.slug.clone()).collect();
    let schema_slugs: BTreeSet<String> = schemas.iter().map(|s| s[3..].to_owned()).collect();
    let orphans: Vec<&String> = active_slugs.difference(&schema_slugs).collect();
    let unowned: Vec<&String> = schema_slugs.difference(&active_slugs).collect();
    let migrating: Vec<String> = active_slugs.intersection(&schema_slugs).cloned().collect();
    let counted: Vec<&String> = migrating
        .iter()
        .filter(|slug| !drifted.contains(&space_schema(slug)))
        .collect();
    info!(
        engines = c.engines,
        active = c.engines_active,
        suspended = c.engines_suspended,
        deleted = c.engines_deleted,
        orphaned = orphans.len(),
        migrating = migrating.len();
        "engines: {} ({} active, {} suspended, {} deleted); {} active engines migrate",
        c.engines, c.engines_active, c.engines_suspended, c.engines_deleted, migrating.len()
    );
    if !orphans.is_empty() {
        warn!(
            "active engines with no shard schema (orphaned engine rows, skipped): {}",
            join(&orphans)
        );
    }
    if !unowned.is_empty() {
        warn!(
            "shard schemas with no active engine (not migrated): {}",
            join(&unowned)
        );
    }

    // Data shapes per migrating engine, in one round trip.
    let mut s = ShardCounts::default();
    let mut identity_refs: BTreeSet<String> = BTreeSet::new();
    if !counted.is_empty() {
        let per_engine: Vec<String> = counted
            .iter()
            .map(|slug| {
                let m = space_schema(slug);
                format!(
                    "SELECT (SELECT count(*) FROM {m}.memory) AS memories, \
                       (SELECT count(*) FROM {m}.memory WHERE embedding IS NULL) AS null_embeddings, \
                       (SELECT count(*) FROM {m}.\"user\" WHERE NOT can_login) AS rbac_roles, \
                       (SELECT count(*) FROM {m}.\"user\" WHERE can_login AND identity_id IS NULL) AS service_users, \
                       (SELECT count(*) FROM {m}.role_membership) AS role_edges, \
                       (SELECT count(*) FROM {m}.tree_owner) AS tree_owners, \
                       (SELECT count(*) FROM {m}.tree_grant) AS grants, \
                       (SELECT count(*) FROM {m}.tree_grant WHERE with_grant_option \
                          OR (actions && '{{create,update,delete}}' AND NOT actions @> '{{read,create,update,delete}}')) \
                          AS lossy_grants"
                )
            })
            .collect();
        let sql = format!(
            "SELECT sum(memories)::bigint AS memories, max(memories)::bigint AS largest, \
               sum(null_embeddings)::bigint AS null_embeddings, sum(rbac_roles)::bigint AS rbac_roles, \
               sum(service_users)::bigint AS service_users, sum(role_edges)::bigint AS role_edges, \
               sum(tree_owners)::bigint AS tree_owners, sum(grants)::bigint AS grants, \
               sum(lossy_grants)::bigint AS lossy_grants FROM ({}) t",
            per_engine.join(" UNION ALL ")
        );
        s = shard.query_one_as(&sql, params![])?;
        let refs = counted
            .iter()
            .map(|slug| {
                format!(
                    "SELECT identity_id::text FROM {}.\"user\" WHERE identity_id IS NOT NULL",
                    space_schema(slug)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ");
        identity_refs = shard
            .query_as::<String>(&refs, params![])?
            .into_iter()
            .collect();
    }
    info!(
        memories = s.memories,
        largest = s.largest,
        null_embeddings = s.null_embeddings,
        rbac_roles = s.rbac_roles,
        service_users = s.service_users,
        role_edges = s.role_edges,
        tree_owners = s.tree_owners,
        grants = s.grants,
        lossy_grants = s.lossy_grants;
        "shard: {} memories (largest engine {}, {} without embedding), {} RBAC roles, {} service users (→ agents), \
         {} role edges, {} tree owners, {} grants ({} mapped lossily)",
        s.memories, s.largest, s.null_embeddings, s.rbac_roles, s.service_users, s.role_edges,
        s.tree_owners, s.grants, s.lossy_grants
    );
    let identities = source::identity_ids(&accounts)?;
    let dangling: Vec<&String> = identity_refs.difference(&identities).collect();
    if !dangling.is_empty() {
        warn!(
            "engine users with a dangling identity_id (dropped by the ETL with their grants): {}",
            join(&dangling)
        );
    }

    // Would any engine unit fail? A space needs an admin.
    let mut no_admin = Vec::new();
    for e in active.iter().filter(|e| schema_slugs.contains(&e.slug)) {
        let members: Vec<Member> = source::org_members(&accounts, &e.org_id)?
            .into_iter()
            .filter(|m| identities.contains(&m.identity_id))
            .map(|m| Member {
                identity_id: m.identity_id,
                role: m.role,
            })
            .collect();
        if !members.iter().any(|m| rules.is_admin(&m.role))
            || rules.agent_owner(&members, |_| true).is_none()
        {
            no_admin.push(e.slug.clone());
        }
    }
    check(
        "every migrating engine's org has an owner or admin",
        no_admin.is_empty(),
        &if no_admin.is_empty() {
            format!("{} engines", migrating.len())
        } else {
            format!("these engines would fail: {}", no_admin.join(", "))
        },
    );
    check(
        "survey (read-only)",
        true,
        &format!(
            "{} identities, {} active engines ({} orphaned), {} memories (largest {}), \
             {} multi-member orgs, {} RBAC roles, {} service users, {} dangling identities; {}",
            c.identities,
            c.engines_active,
            orphans.len(),
            s.memories,
            s.largest,
            c.multi_member_orgs,
            s.rbac_roles,
            s.service_users,
            dangling.len(),
            target_note
        ),
    );
    Ok(())
}

/// The target as the ETL needs it: no `auth`, `core` or `me_*` schema yet (it writes a
/// fresh database), and the extensions it creates offered by the server.
fn survey_target(target: &Connection, shard: &Connection) -> Result<()> {
    let taken: Vec<String> = target.query_as(
        "SELECT nspname::text FROM pg_namespace \
         WHERE nspname IN ('auth', 'core') OR nspname LIKE 'me\\_%' ORDER BY 1",
        params![],
    )?;
    check(
        "target is an empty database",
        taken.is_empty(),
        &if taken.is_empty() {
            "no auth, core or me_<slug> schema yet".to_owned()
        } else {
            format!(
                "it holds {}: the ETL writes a fresh target",
                taken.join(", ")
            )
        },
    );
    let mut needed = vec!["ltree", "citext"];
    if source::shard_uses_pgvector(shard)? {
        needed.push("vector");
    }
    let offered: Vec<String> = target.query_as(
        "SELECT name::text FROM pg_available_extensions ORDER BY 1",
        params![],
    )?;
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|n| !offered.iter().any(|o| o == n))
        .collect();
    check(
        "target server offers the extensions the ETL creates",
        missing.is_empty(),
        &if missing.is_empty() {
            needed.join(", ")
        } else {
            format!("missing: {}", missing.join(", "))
        },
    );
    Ok(())
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
