//! The verifier of seed 001, as checks: identities ↔ users ↔ principals,
//! oauth and session copies, and per space in the target (so a subset run is
//! verified for what it migrated): memory counts and contents against the
//! shard, at least one admin, every member's effective access non-empty, and
//! access parity with the old model.

use std::collections::BTreeSet;

use migrun_sdk::{Connection, Result, Value, check, params};
use serde::Deserialize;

use crate::mapping::AccessRules;
use crate::mapping::{GrantSet, Level};
use crate::plan::{Access, Kind, old_rights, plan_space};
use crate::source::{self, space_schema, valid_slug};
use crate::target::control_plane_exists;

fn count(conn: &Connection, sql: &str) -> Result<i64> {
    conn.query_scalar(sql, params![])
}

/// Runs every check.
pub fn run(rules: &AccessRules) -> Result<()> {
    let accounts = Connection::open("accounts")?;
    let shard = Connection::open("shard")?;
    let target = Connection::open("target")?;
    if !control_plane_exists(&target)? {
        check(
            "control plane migrated",
            false,
            "auth.users or core.principal_space is missing in the target: no unit has run",
        );
        return Ok(());
    }
    identities(&accounts, &target)?;
    copies(&accounts, &target)?;

    #[derive(Deserialize)]
    struct Space {
        id: String,
        slug: String,
    }
    let spaces: Vec<Space> =
        target.query_as("SELECT id, slug FROM core.space ORDER BY slug", params![])?;
    let schemas = source::shard_schemas(&shard)?;
    let engines = source::active_engines(&accounts)?;
    for s in spaces {
        if !valid_slug(&s.slug) || !schemas.contains(&space_schema(&s.slug)) {
            check(
                &format!("space has a source engine — {}", s.slug),
                false,
                "no me_<slug> schema in the shard",
            );
            continue;
        }
        memories(&shard, &target, &s.slug, rules)?;
        let admins = count(
            &target,
            &format!(
                "SELECT count(*) FROM core.principal_space WHERE space_id = '{}' AND admin",
                s.id
            ),
        )?;
        check(
            &format!("≥1 admin — {}", s.slug),
            admins >= 1,
            &format!("admins={admins}"),
        );
        members_have_access(&target, &s.id, &s.slug)?;
        match engines.iter().find(|e| e.slug == s.slug) {
            Some(engine) => parity(&accounts, &shard, &target, engine, &s.id, rules)?,
            None => {
                check(
                    &format!("access parity — {}", s.slug),
                    false,
                    "the engine is no longer active in accounts",
                );
            }
        }
    }
    Ok(())
}

fn identities(accounts: &Connection, target: &Connection) -> Result<()> {
    let identities = count(accounts, "SELECT count(*) FROM accounts.identity")?;
    let users = count(target, "SELECT count(*) FROM auth.users")?;
    let principals = count(
        target,
        "SELECT count(*) FROM core.principal WHERE kind = 'u'",
    )?;
    let joined = count(
        target,
        "SELECT count(*) FROM auth.users u JOIN core.principal p ON p.id = u.id AND p.kind = 'u'",
    )?;
    check(
        "identities → auth.users → core.principal(u) all equal",
        identities == users && users == principals && principals == joined,
        &format!(
            "identity={identities} users={users} principals={principals} invariant-join={joined}"
        ),
    );
    Ok(())
}

/// The sorted first column of `sql`'s rows, as text (hex for bytes).
fn keys(conn: &Connection, sql: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = conn
        .query(sql, params![])?
        .into_iter()
        .map(|r| r.values()[0].to_string())
        .collect();
    out.sort();
    Ok(out)
}

fn first_difference(a: &[String], b: &[String]) -> String {
    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) = (a.iter().collect(), b.iter().collect());
    match (a.difference(&b).next(), b.difference(&a).next()) {
        (Some(x), _) => format!("; {x} only in the source"),
        (None, Some(x)) => format!("; {x} only in the target"),
        _ => String::new(),
    }
}

fn copies(accounts: &Connection, target: &Connection) -> Result<()> {
    let src = keys(
        accounts,
        "SELECT concat_ws(' ', id, identity_id, provider, provider_account_id, created_at) \
         FROM accounts.oauth_account o \
         WHERE EXISTS (SELECT 1 FROM accounts.identity i WHERE i.id = o.identity_id)",
    )?;
    let tgt = keys(
        target,
        "SELECT concat_ws(' ', id, user_id, provider_id, account_id, created_at) FROM auth.accounts",
    )?;
    check(
        "oauth accounts copied",
        src == tgt,
        &format!(
            "source={} target={}{}",
            src.len(),
            tgt.len(),
            first_difference(&src, &tgt)
        ),
    );
    // Sessions expire while time passes: compare the ones still live now. Rows of
    // identities that do not exist were left out by phase A, with a warning.
    let src = keys(
        accounts,
        "SELECT concat_ws(' ', id, identity_id, encode(token_hash, 'hex'), expires_at, created_at) \
         FROM accounts.session s WHERE expires_at > now() \
         AND EXISTS (SELECT 1 FROM accounts.identity i WHERE i.id = s.identity_id)",
    )?;
    let tgt = keys(
        target,
        "SELECT concat_ws(' ', id, user_id, encode(token_hash, 'hex'), expires_at, created_at) \
         FROM auth.sessions WHERE expires_at > now()",
    )?;
    check(
        "live sessions copied verbatim (token hashes identical)",
        src == tgt,
        &format!(
            "source={} target={}{}",
            src.len(),
            tgt.len(),
            first_difference(&src, &tgt)
        ),
    );
    Ok(())
}

/// One hash over every memory's columns, order-independent; the text forms
/// are exact (shortest round-trip floats, normalised jsonb, UTC instants).
/// With `created_by`, the old column kept by the mapping is part of it.
fn memory_digest(conn: &Connection, slug: &str, created_by: bool) -> Result<(i64, String)> {
    #[derive(Deserialize)]
    struct Digest {
        n: i64,
        digest: String,
    }
    let d: Digest = conn.query_one_as(
        &format!(
            "SELECT count(*) AS n, md5(coalesce(string_agg(h, '' ORDER BY h), '')) AS digest FROM ( \
               SELECT md5(concat_ws(',', quote_nullable(id), quote_nullable(meta), quote_nullable(tree), \
                 quote_nullable(temporal), quote_nullable(content), quote_nullable(embedding), \
                 quote_nullable(embedding_version), quote_nullable(created_at), quote_nullable(updated_at){})) AS h \
               FROM {}.memory) m",
            if created_by { ", quote_nullable(created_by)" } else { "" },
            space_schema(slug)
        ),
        params![],
    )?;
    Ok((d.n, d.digest))
}

fn memories(
    shard: &Connection,
    target: &Connection,
    slug: &str,
    rules: &AccessRules,
) -> Result<()> {
    let created_by = rules.keep_memory_created_by;
    let (src, src_digest) = memory_digest(shard, slug, created_by)?;
    let (tgt, tgt_digest) = memory_digest(target, slug, created_by)?;
    check(
        &format!("memory count matches source — {slug}"),
        src == tgt,
        &format!("source={src} target={tgt}"),
    );
    check(
        &format!("memories identical, embeddings exact — {slug}"),
        src_digest == tgt_digest,
        &format!("md5 source={src_digest} target={tgt_digest}"),
    );
    let queued = count(
        target,
        &format!(
            "SELECT count(*) FROM {}.embedding_queue",
            space_schema(slug)
        ),
    )?;
    let unembedded = count(
        target,
        &format!(
            "SELECT count(*) FROM {}.memory WHERE embedding IS NULL",
            space_schema(slug)
        ),
    )?;
    check(
        &format!("memories without an embedding queued — {slug}"),
        queued == unembedded,
        &format!("queued={queued} without embedding={unembedded}"),
    );
    Ok(())
}

#[derive(Deserialize)]
struct Member {
    id: String,
    name: String,
}

fn space_members(target: &Connection, space_id: &str) -> Result<Vec<Member>> {
    target.query_as(
        "SELECT p.id, p.name::text AS name FROM core.principal_space ps \
         JOIN core.principal p ON p.id = ps.principal_id \
         WHERE ps.space_id = $1 AND p.kind IN ('u', 'a') ORDER BY p.kind DESC, p.name",
        params![Value::Uuid(space_id.to_owned())],
    )
}

/// A member's effective access as the target computes it (`core.build_tree_access`).
fn effective(target: &Connection, member: &str, space_id: &str) -> Result<GrantSet> {
    #[derive(Deserialize)]
    struct G {
        tree_path: String,
        access: i64,
    }
    let rows: Vec<G> = target.query_as(
        "SELECT x.tree_path, x.access FROM jsonb_to_recordset(core.build_tree_access($1, $2)) \
         AS x(tree_path text, access int)",
        params![
            Value::Uuid(member.to_owned()),
            Value::Uuid(space_id.to_owned())
        ],
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|g| Level::from_i64(g.access).map(|l| (g.tree_path, l)))
        .collect())
}

fn members_have_access(target: &Connection, space_id: &str, slug: &str) -> Result<()> {
    for m in space_members(target, space_id)? {
        let access = effective(target, &m.id, space_id)?;
        check(
            &format!("effective access non-empty — {slug}/{}", m.name),
            !access.is_empty(),
            &format!("grants={}", access.len()),
        );
    }
    Ok(())
}

/// Every member's effective access in the target equals what the mapping
/// computes from the sources, and reaches every right the old model gave.
fn parity(
    accounts: &Connection,
    shard: &Connection,
    target: &Connection,
    engine: &crate::plan::EngineRow,
    space_id: &str,
    rules: &AccessRules,
) -> Result<()> {
    let name = format!("access parity with the old model — {}", engine.slug);
    let input = source::engine_input(accounts, shard, engine, rules)?;
    let plan = match plan_space(&input) {
        Ok(plan) => plan,
        Err(e) => {
            check(&name, false, &e);
            return Ok(());
        }
    };
    let expected = Access::new(&plan);
    let rights = old_rights(&input, &plan);
    let mut problems = Vec::new();
    let mut principals = 0;
    for (id, _) in &plan.roster {
        if plan
            .principals
            .iter()
            .any(|p| &p.id == id && p.kind == Kind::Group)
        {
            continue;
        }
        principals += 1;
        let actual = effective(target, id, space_id)?;
        let want = expected.of(id);
        if actual != want {
            problems.push(format!("{id}: target {actual}, mapping {want}"));
        }
        for r in rights.iter().filter(|r| &r.principal == id) {
            if !actual.reaches(&r.path, r.level) {
                problems.push(format!(
                    "{id}: lost {}@{}",
                    r.level,
                    if r.path.is_empty() { "/" } else { &r.path }
                ));
            }
        }
    }
    let detail = if problems.is_empty() {
        format!(
            "{principals} members: effective access equals the mapping's and reaches all {} old rights",
            rights.len()
        )
    } else {
        format!("{} problem(s): {}", problems.len(), problems.join("; "))
    };
    check(&name, problems.is_empty(), &detail);
    Ok(())
}
