//! Phase A, unit `identities`: the control plane, then every identity as an
//! `auth.users` row and a `core.principal` of kind `u` with its id preserved,
//! its oauth links, and its live sessions copied verbatim — the old and new
//! models both store `sha256(token)` as `bytea` and look it up by equality,
//! so users stay logged in.
//!
//! Idempotent: rows whose id the target already holds are left alone, so the
//! unit tops up a target an engine unit provisioned first (see the crate docs).

use std::collections::BTreeSet;

use migrun_sdk::{Connection, Result, Value, info, params, warn};

use crate::mapping::{AccessRules, principal_name};
use crate::target::provision_control_plane;

/// Ids already in `table`.
fn existing(target: &Connection, table: &str) -> Result<BTreeSet<String>> {
    let ids: Vec<String> = target.query_as(&format!("SELECT id FROM {table}"), params![])?;
    Ok(ids.into_iter().collect())
}

fn id_of(row: &[Value]) -> String {
    row[0].as_str().unwrap_or_default().to_owned()
}

/// What phase A wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// Users (and as many principals).
    pub users: u64,
    /// OAuth links.
    pub oauth_accounts: u64,
    /// Live sessions.
    pub sessions: u64,
}

/// Runs phase A on the open unit's transactions; `rules.email_verified` is what every
/// migrated user's `email_verified` says (the old identities record no verification).
pub fn run(rules: &AccessRules) -> Result<Copied> {
    let accounts = Connection::open("accounts")?;
    let target = Connection::open("target")?;
    provision_control_plane(&target)?;
    // The memories' embeddings keep their type: pgvector's need the extension.
    let shard = Connection::open("shard")?;
    if crate::source::shard_uses_pgvector(&shard)? {
        target.execute("CREATE EXTENSION IF NOT EXISTS vector", params![])?;
    }

    let identities = accounts.query(
        "SELECT id, name, email::text AS email, created_at, updated_at FROM accounts.identity ORDER BY id",
        params![],
    )?;
    let known: BTreeSet<String> = identities.iter().map(|r| id_of(r.values())).collect();
    let have_users = existing(&target, "auth.users")?;
    let have_principals = existing(&target, "core.principal")?;
    let mut users = Vec::new();
    let mut principals = Vec::new();
    for row in identities {
        let id = id_of(row.values());
        let v = row.into_values();
        let (name, email, created_at, updated_at) = (&v[1], &v[2], &v[3], &v[4]);
        if !have_principals.contains(&id) {
            let principal = principal_name(email.as_str().unwrap_or_default());
            principals.push(vec![
                v[0].clone(),
                Value::from("u"),
                Value::from(principal),
                created_at.clone(),
                updated_at.clone(),
            ]);
        }
        if !have_users.contains(&id) {
            // The old model kept no verification flag: the mapping says (by default
            // `true`: identities sign in through an OAuth provider).
            users.push(vec![
                v[0].clone(),
                name.clone(),
                email.clone(),
                Value::Bool(rules.email_verified),
                created_at.clone(),
                updated_at.clone(),
            ]);
        }
    }
    let copied_users = target.bulk_insert(
        "auth.users",
        &[
            "id",
            "name",
            "email",
            "email_verified",
            "created_at",
            "updated_at",
        ],
        users,
    )?;
    target.bulk_insert(
        "core.principal",
        &["id", "kind", "name", "created_at", "updated_at"],
        principals,
    )?;

    let oauth_accounts = copy_owned_rows(
        &accounts,
        &target,
        "SELECT id, identity_id AS user_id, provider AS provider_id, \
         provider_account_id AS account_id, created_at FROM accounts.oauth_account ORDER BY id",
        "auth.accounts",
        &["id", "user_id", "provider_id", "account_id", "created_at"],
        &known,
    )?;
    let sessions = copy_owned_rows(
        &accounts,
        &target,
        "SELECT id, identity_id AS user_id, token_hash, expires_at, created_at \
         FROM accounts.session WHERE expires_at > now() ORDER BY id",
        "auth.sessions",
        &["id", "user_id", "token_hash", "expires_at", "created_at"],
        &known,
    )?;
    let copied = Copied {
        users: copied_users,
        oauth_accounts,
        sessions,
    };
    info!(
        users = copied.users,
        oauth_accounts = copied.oauth_accounts,
        sessions = copied.sessions;
        "identities: {} users and principals, {} oauth links, {} live sessions copied",
        copied.users, copied.oauth_accounts, copied.sessions
    );
    Ok(copied)
}

/// Copies the rows of `sql` (first column the id, second the owning identity)
/// that `table` does not hold yet; rows of identities that do not exist are
/// left out with a warning.
fn copy_owned_rows(
    accounts: &Connection,
    target: &Connection,
    sql: &str,
    table: &str,
    columns: &[&str],
    identities: &BTreeSet<String>,
) -> Result<u64> {
    let have = existing(target, table)?;
    let mut rows = Vec::new();
    for row in accounts.query(sql, params![])? {
        let v = row.into_values();
        let owner = v[1].as_str().unwrap_or_default();
        if !identities.contains(owner) {
            warn!(table = table; "{table} row {} belongs to identity {owner}, which does not exist: skipped", id_of(&v));
            continue;
        }
        if !have.contains(&id_of(&v)) {
            rows.push(v);
        }
    }
    target.bulk_insert(table, columns, rows)
}
