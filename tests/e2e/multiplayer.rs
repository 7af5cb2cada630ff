//! Seed 001 end to end: the multiplayer-etl plugin migrates the complex
//! fixture (`migrun_fixtures::multiplayer`, small shape) from two read-only
//! PostgreSQL sources (`accounts`, `shard`) into a fresh third database.
//!
//! - `full_migration`: a dry-run changes none of the three databases; the run
//!   exits 0 with every check ✓; the seed's scenarios are in the target
//!   (multi-member org, role → group, explicit grants, clamped agent grants,
//!   the dangling identity dropped with a warning, invitations, deleted and
//!   orphaned engines not migrated); its journal replays verified; a rerun
//!   changes nothing; and tampering with the target makes the verifier fail.
//! - `subset_then_full_equals_one_full_run`: `--only` two engines (and a slug
//!   that is no engine) then the full run leaves the same target as one full run.
//! - `survey_reports_and_catches_drift`: the read-only survey, and a source
//!   whose DDL drifted refused before anything runs.
//! - `halfvec_memories_move_bit_exactly_on_pgvector`: the seed's real shape of
//!   embedding, `halfvec(n)`, on the suite's PostgreSQL 18 + pgvector: the
//!   target creates the extension, every memory arrives bit for bit (the
//!   verifier's digest, and the server's `halfvec_send` bytes), the dry-run
//!   and the replay hold.
//!
//! The other tests use `real[]` embeddings on the PostgreSQL under test (15).
//!
//! PostgreSQL only: the plugin is written for it (ltree, tstzrange, jsonb).

use std::collections::BTreeMap;

use migrun::db::{Access, Connection, Dialect};
use migrun_fixtures::multiplayer::{
    self, DANGLING_IDENTITY, DELETED_SLUG, EmbeddingColumn, ORPHAN_SLUG, PERSONAL_SLUG,
    SUSPENDED_SLUG, Shape, Sources, TEAM_SLUG,
};

use crate::support::cli::{Outcome, Workspace};
use crate::support::database::TestDatabase;
use crate::support::plugins;

const SEED: u64 = 1;
const PLUGIN: &str = "multiplayer-etl";

/// Three databases of their own, the sources seeded, a workspace whose config names them.
pub(crate) struct Setup {
    accounts: TestDatabase,
    shard: TestDatabase,
    pub(crate) target: TestDatabase,
    sources: Sources,
    pub(crate) ws: Workspace,
    plugin: String,
}

impl Setup {
    /// The small shape with `real[]` embeddings on the PostgreSQL under test.
    pub(crate) async fn new() -> Option<Setup> {
        let accounts = TestDatabase::create(Dialect::Postgres).await?;
        let shard = TestDatabase::create(Dialect::Postgres).await?;
        let target = TestDatabase::create(Dialect::Postgres).await?;
        Self::seeded(accounts, shard, target, Shape::small()).await
    }

    /// The small shape with the seed's own `halfvec` embeddings, on the suite's
    /// pgvector server; no database has an extension yet.
    async fn with_halfvec() -> Option<Setup> {
        let accounts = TestDatabase::on_pgvector_server().await?;
        let shard = TestDatabase::on_pgvector_server().await?;
        let target = TestDatabase::on_pgvector_server().await?;
        let shape = Shape {
            embedding: EmbeddingColumn::Halfvec,
            ..Shape::small()
        };
        Self::seeded(accounts, shard, target, shape).await
    }

    async fn seeded(
        accounts: TestDatabase,
        shard: TestDatabase,
        target: TestDatabase,
        shape: Shape,
    ) -> Option<Setup> {
        let sources = multiplayer::seed(&accounts.url, &shard.url, shape, SEED)
            .await
            .expect("seed the sources");
        let ws = Workspace::new();
        ws.config(&format!(
            r#"
[connections.accounts]
url = "{}"
access = "read-only"

[connections.shard]
url = "{}"
access = "read-only"

[connections.target]
url = "{}"
access = "read-write"

[config]
batch_size = 64
"#,
            accounts.ro_url, shard.ro_url, target.url
        ));
        let plugin = plugins::plugin(PLUGIN).to_str().unwrap().to_owned();
        Some(Setup {
            accounts,
            shard,
            target,
            sources,
            ws,
            plugin,
        })
    }

    pub(crate) fn migrun(&self, args: &[&str]) -> Outcome {
        let mut all = vec![self.plugin.as_str()];
        all.extend_from_slice(args);
        self.ws.migrun(&all)
    }

    /// The migratable engines' slugs, in creation (unit) order.
    fn slugs(&self) -> Vec<String> {
        self.sources
            .migratable_engines()
            .iter()
            .map(|e| e.slug.clone())
            .collect()
    }
}

/// Every row of `sql` with every value as its canonical text (`NULL` for null).
async fn rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    let mut conn = Connection::connect("multiplayer-test", url, Access::ReadOnly)
        .await
        .expect("connect");
    let result = conn
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await;
    result
        .rows
        .into_iter()
        .map(|r| {
            r.iter()
                .map(|v| v.canonical_text().unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

/// The single value of a one-row, one-column query.
async fn scalar(url: &str, sql: &str) -> String {
    let r = rows(url, sql).await;
    assert_eq!(r.len(), 1, "{sql}: {r:?}");
    r[0][0].clone()
}

/// A content snapshot of a whole PostgreSQL database: its non-system schemas,
/// extensions and functions, and per table the row count and an
/// order-independent digest of its rows' text (every type has one, ltree and
/// tstzrange included). Tables named in `except` are left out.
pub(crate) async fn snapshot(url: &str, except: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let schemas = "nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg\\_%'";
    out.insert(
        "schemas".into(),
        scalar(url, &format!("SELECT coalesce(string_agg(nspname::text, ',' ORDER BY nspname), '') FROM pg_namespace WHERE {schemas}")).await,
    );
    out.insert(
        "extensions".into(),
        scalar(
            url,
            "SELECT string_agg(extname::text, ',' ORDER BY extname) FROM pg_extension",
        )
        .await,
    );
    out.insert(
        "functions".into(),
        scalar(
            url,
            &format!(
                "SELECT coalesce(string_agg(n.nspname || '.' || p.proname || ':' || md5(p.prosrc), ',' \
                 ORDER BY n.nspname, p.proname), '') \
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE {schemas} AND n.nspname <> 'public'"
            ),
        )
        .await,
    );
    let tables = rows(
        url,
        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .await;
    for t in tables {
        let table = &t[0];
        if except.iter().any(|e| table.ends_with(e)) {
            continue;
        }
        let digest = scalar(
            url,
            &format!(
                "SELECT count(*) || ' ' || md5(coalesce(string_agg(h, '' ORDER BY h), '')) \
                 FROM (SELECT md5(t::text) AS h FROM {table} t) d"
            ),
        )
        .await;
        out.insert(table.clone(), digest);
    }
    out
}

async fn snapshots(s: &Setup) -> [BTreeMap<String, String>; 3] {
    [
        snapshot(&s.accounts.url, &[]).await,
        snapshot(&s.shard.url, &[]).await,
        snapshot(&s.target.url, &[]).await,
    ]
}

fn units(report: &serde_json::Value) -> Vec<(String, String)> {
    report["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_all_checks_pass(report: &serde_json::Value) -> usize {
    let checks = report["checks"].as_array().expect("checks");
    let failed: Vec<_> = checks.iter().filter(|c| c["ok"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    checks.len()
}

fn warnings(report: &serde_json::Value) -> Vec<String> {
    report["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["level"] == "warn")
        .map(|m| m["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn full_migration() {
    let Some(s) = Setup::new().await else { return };
    let slugs = s.slugs();
    assert_eq!(slugs.len(), 6);
    let before = snapshots(&s).await;

    // A dry-run does everything, checks included, and changes none of the three databases.
    let dry = s.migrun(&["--dry-run", "--json"]);
    let report = dry.expect_code(0).json();
    assert_eq!(report["dry_run"], true);
    assert_all_checks_pass(&report);
    assert!(
        units(&report).iter().all(|(_, status)| status == "dry-run"),
        "{:?}",
        units(&report)
    );
    assert_eq!(
        snapshots(&s).await,
        before,
        "the dry-run changed a database"
    );

    // The run: phase A, then one unit per migratable engine, in creation order; every check ✓.
    let run = s.migrun(&["--json"]);
    let report = run.expect_code(0).json();
    let mut expected: Vec<(String, String)> = vec![("identities".into(), "committed".into())];
    expected.extend(slugs.iter().map(|slug| (slug.clone(), "committed".into())));
    assert_eq!(units(&report), expected);
    let checks = assert_all_checks_pass(&report);
    // 3 control-plane checks; per space 6 (counts, digest, queue, admin, parity, …) plus one per member.
    assert!(checks >= 3 + 6 * 5, "{checks} checks");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for slug in &slugs {
        for check in [
            "memory count matches source",
            "memories identical, embeddings exact",
            "≥1 admin",
            "access parity with the old model",
        ] {
            assert!(
                names.contains(&format!("{check} — {slug}").as_str()),
                "no check {check:?} for {slug}: {names:?}"
            );
        }
    }
    let [accounts_after, shard_after, _] = snapshots(&s).await;
    assert_eq!(
        [&accounts_after, &shard_after],
        [&before[0], &before[1]],
        "the run wrote to a read-only source"
    );

    scenario_rows(&s, &report).await;

    // The journal replays verified, with no database.
    let journal =
        s.ws.path()
            .join(report["journal"]["path"].as_str().expect("journal path"));
    let replay =
        s.ws.migrun(&["replay", journal.to_str().unwrap(), "--json"]);
    let replayed = replay.expect_code(0).json();
    assert_eq!(replayed["outcome"], "verified", "{replayed:#}");
    assert_eq!(replayed["calls"], report["journal"]["calls"]);

    // A rerun skips every unit (the ledger) and changes nothing.
    let target_after = snapshot(&s.target.url, &["migrun_ledger"]).await;
    let rerun = s.migrun(&["--json"]).expect_code(0).json();
    assert!(
        units(&rerun).iter().all(|(_, status)| status == "skipped"),
        "{:?}",
        units(&rerun)
    );
    assert_eq!(
        snapshot(&s.target.url, &["migrun_ledger"]).await,
        target_after
    );

    // The verifier sees what went wrong: a lost group membership breaks access
    // parity, one changed float breaks the memories' digest; exit 3.
    s.target
        .exec(&format!(
            "DELETE FROM core.group_member WHERE member_id = '{}'",
            s.sources.identity("member@example.com").unwrap().id
        ))
        .await;
    s.target
        .exec(&format!(
            "UPDATE me_{TEAM_SLUG}.memory SET embedding[2] = embedding[2] + 1 \
             WHERE id = (SELECT id FROM me_{TEAM_SLUG}.memory WHERE embedding IS NOT NULL ORDER BY id LIMIT 1)"
        ))
        .await;
    let tampered = s.migrun(&["--json"]);
    let report = tampered.expect_code(3).json();
    let failed: Vec<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert!(
        failed[0].starts_with(&format!(
            "memories identical, embeddings exact — {TEAM_SLUG}"
        )),
        "{failed:?}"
    );
    assert!(
        failed[1].starts_with(&format!("access parity with the old model — {TEAM_SLUG}")),
        "{failed:?}"
    );
    assert!(failed[1].contains("lost write@team.beta"), "{failed:?}");
}

/// The seed's own embedding type, `halfvec(16)` at the small shape, on a real
/// pgvector server: read without a cast, written in binary, bit for bit.
#[tokio::test(flavor = "multi_thread")]
async fn halfvec_memories_move_bit_exactly_on_pgvector() {
    let Some(s) = Setup::with_halfvec().await else {
        return;
    };
    let slugs = s.slugs();
    let has_vector = "SELECT count(*) FROM pg_extension WHERE extname = 'vector'";
    assert_eq!(scalar(&s.target.url, has_vector).await, "0");
    assert_eq!(
        scalar(
            &s.shard.url,
            &format!(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                      WHERE attrelid = 'me_{TEAM_SLUG}.memory'::regclass AND attname = 'embedding'"
            )
        )
        .await,
        "halfvec(16)"
    );

    // The dry-run creates the extension and the spaces inside its transaction, checks
    // pass, and nothing stays.
    let before = snapshots(&s).await;
    let dry = s.migrun(&["--dry-run", "--json"]).expect_code(0).json();
    assert_all_checks_pass(&dry);
    assert_eq!(
        snapshots(&s).await,
        before,
        "the dry-run changed a database"
    );
    assert_eq!(scalar(&s.target.url, has_vector).await, "0");

    let report = s.migrun(&["--json"]).expect_code(0).json();
    let checks = assert_all_checks_pass(&report);
    assert!(checks >= 3 + 6 * 5, "{checks} checks");
    assert_eq!(
        scalar(&s.target.url, has_vector).await,
        "1",
        "phase A created vector"
    );
    let sent = |slug: &str| {
        format!(
            "SELECT id::text, encode(halfvec_send(embedding), 'hex') FROM me_{slug}.memory ORDER BY id"
        )
    };
    let mut embedded = 0;
    for slug in &slugs {
        let source = rows(&s.shard.url, &sent(slug)).await;
        assert_eq!(rows(&s.target.url, &sent(slug)).await, source, "{slug}");
        embedded += source.iter().filter(|r| r[1] != "NULL").count();
        assert_eq!(
            scalar(
                &s.target.url,
                &format!(
                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                          WHERE attrelid = 'me_{slug}.memory'::regclass AND attname = 'embedding'"
                )
            )
            .await,
            "halfvec(16)"
        );
    }
    assert!(embedded > 500, "{embedded} embeddings compared");

    let journal =
        s.ws.path()
            .join(report["journal"]["path"].as_str().expect("journal path"));
    let replayed =
        s.ws.migrun(&["replay", journal.to_str().unwrap(), "--json"])
            .expect_code(0)
            .json();
    assert_eq!(replayed["outcome"], "verified", "{replayed:#}");

    // One changed half breaks the verifier's digest for that space only.
    s.target
        .exec(&format!(
            "UPDATE me_{TEAM_SLUG}.memory SET embedding = ('[' || repeat('1,', 15) || '1]')::halfvec \
             WHERE id = (SELECT id FROM me_{TEAM_SLUG}.memory WHERE embedding IS NOT NULL ORDER BY id LIMIT 1)"
        ))
        .await;
    let tampered = s.migrun(&["--json"]).expect_code(3).json();
    let failed: Vec<String> = tampered["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        failed,
        [format!(
            "memories identical, embeddings exact — {TEAM_SLUG}"
        )]
    );
}

/// The seed's scenarios, row by row in the target.
async fn scenario_rows(s: &Setup, report: &serde_json::Value) {
    let t = &s.target.url;
    let src = &s.sources;
    let id = |email: &str| {
        src.identity(email)
            .unwrap_or_else(|| panic!("{email}"))
            .id
            .clone()
    };
    let (owner, admin, member, member2) = (
        id("teamowner@example.com"),
        id("teamadmin@example.com"),
        id("member@example.com"),
        id("member2@example.com"),
    );

    // Identities → users + principals, ids preserved; live sessions verbatim.
    let mut ids: Vec<String> = src.identities.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    let users: Vec<String> = rows(t, "SELECT id FROM auth.users ORDER BY id")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(users, ids);
    let principals = rows(
        t,
        "SELECT id FROM core.principal WHERE kind = 'u' ORDER BY id",
    )
    .await;
    assert_eq!(
        principals
            .into_iter()
            .map(|r| r[0].clone())
            .collect::<Vec<_>>(),
        ids
    );
    let mut live: Vec<String> = src
        .sessions
        .iter()
        .filter(|x| x.expires_at.format("%Y").to_string() == "2100")
        .map(|x| x.token_hash.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    live.sort();
    assert_eq!(live.len(), src.live_sessions());
    let hashes = rows(
        t,
        "SELECT encode(token_hash, 'hex') FROM auth.sessions ORDER BY 1",
    )
    .await;
    assert_eq!(
        hashes.into_iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        live
    );

    // Only the active engines with a shard schema became spaces; ids and slugs reused.
    let mut expected: Vec<Vec<String>> = src
        .migratable_engines()
        .iter()
        .map(|e| vec![e.id.clone(), e.slug.clone()])
        .collect();
    expected.sort_by(|a, b| a[1].cmp(&b[1]));
    assert_eq!(
        rows(t, "SELECT id::text, slug FROM core.space ORDER BY slug").await,
        expected
    );
    for gone in [DELETED_SLUG, ORPHAN_SLUG, SUSPENDED_SLUG] {
        assert_eq!(
            scalar(
                t,
                &format!("SELECT count(*) FROM pg_namespace WHERE nspname = 'me_{gone}'")
            )
            .await,
            "0"
        );
    }
    let team = src.engine(TEAM_SLUG).unwrap().id.clone();

    // The multi-member org: owner and admin are space admins with owner@root, members are not.
    let roster = rows(
        t,
        &format!(
            "SELECT p.kind, p.name::text, ps.admin FROM core.principal_space ps JOIN core.principal p ON p.id = ps.principal_id \
             WHERE ps.space_id = '{team}' ORDER BY p.kind, p.name"
        ),
    )
    .await;
    assert_eq!(
        roster,
        [
            ["a", "codex", "false"],
            ["g", "leads", "false"],
            ["g", "reviewers", "false"],
            ["u", "member2@example.com", "false"],
            ["u", "member@example.com", "false"],
            ["u", "teamadmin@example.com", "true"],
            ["u", "teamowner@example.com", "true"],
        ]
        .map(|r| r.map(String::from).to_vec())
    );
    let grants = |principal: String| {
        let team = team.clone();
        async move {
            rows(
                t,
                &format!(
                    "SELECT tree_path::text, access FROM core.tree_access WHERE space_id = '{team}' \
                     AND principal_id = '{principal}' ORDER BY 1"
                ),
            )
            .await
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect::<Vec<_>>()
        }
    };
    let home = |id: &str| format!("home.{}", id.replace('-', ""));
    let pair = |p: &str, l: &str| (p.to_owned(), l.to_owned());
    assert_eq!(
        grants(owner.clone()).await,
        [pair("", "3"), pair(&home(&owner), "3")]
    );
    assert_eq!(
        grants(admin.clone()).await,
        [pair("", "3"), pair(&home(&admin), "3")]
    );
    assert_eq!(grants(member2.clone()).await, [pair(&home(&member2), "3")]);
    // Explicit grants, mapped over-permissively: {delete} → write, tree_owner → owner.
    assert_eq!(
        grants(member.clone()).await,
        [
            pair("archive", "2"),
            pair("docs", "1"),
            pair(&home(&member), "3"),
            pair("team.alpha", "3")
        ]
    );

    // RBAC roles → groups of the space with their grants; the nested role edge is dropped.
    let team_shard = src.shard(TEAM_SLUG).unwrap();
    let old = |name: &str| {
        team_shard
            .users
            .iter()
            .find(|u| u.name == name)
            .unwrap()
            .id
            .clone()
    };
    let (reviewers, leads, codex) = (old("reviewers"), old("leads"), old("codex"));
    assert_eq!(
        grants(reviewers.clone()).await,
        [pair("team.beta", "2"), pair("team.gamma", "3")]
    );
    assert_eq!(grants(leads.clone()).await, [pair("team.leads", "2")]);
    assert_eq!(
        rows(t, &format!("SELECT group_id::text, member_id::text, admin FROM core.group_member WHERE space_id = '{team}' ORDER BY 2")).await,
        {
            let mut v = vec![
                vec![reviewers.clone(), codex.clone(), "false".to_owned()],
                vec![reviewers.clone(), member.clone(), "true".to_owned()],
            ];
            v.sort_by(|a, b| a[1].cmp(&b[1]));
            v
        }
    );

    // The service user became an agent owned by the org owner, joined to the space,
    // its grants re-created under the owner's owner@root, its home under the owner's.
    assert_eq!(
        rows(
            t,
            &format!(
                "SELECT kind, name::text, owner_id::text FROM core.principal WHERE id = '{codex}'"
            )
        )
        .await,
        [vec!["a".to_owned(), "codex".to_owned(), owner.clone()]]
    );
    let agent_home = format!("{}.{}", home(&owner), codex.replace('-', ""));
    assert_eq!(
        grants(codex.clone()).await,
        [
            pair(&agent_home, "3"),
            pair("pb", "1"),
            pair("team.shared", "2")
        ]
    );
    // Its effective access (clamped by the target's agent_tree_access) adds the group's grants.
    let effective = rows(
        t,
        &format!(
            "SELECT x.tree_path, x.access FROM jsonb_to_recordset(core.build_tree_access('{codex}', '{team}')) \
             AS x(tree_path text, access int) ORDER BY 1"
        ),
    )
    .await;
    assert_eq!(
        effective
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect::<Vec<_>>(),
        [
            pair(&agent_home, "3"),
            pair("pb", "1"),
            pair("team.beta", "2"),
            pair("team.gamma", "3"),
            pair("team.shared", "2")
        ]
    );
    // Two claude service users of one owner: two agents, named apart by slug.
    let claudes = rows(t, "SELECT name::text FROM core.principal WHERE kind = 'a' AND name::text LIKE 'claude%' ORDER BY 1").await;
    assert_eq!(claudes.len(), 2);
    assert!(
        claudes.iter().all(|r| r[0].starts_with("claude-")),
        "{claudes:?}"
    );
    assert_eq!(
        scalar(t, "SELECT count(*) FROM core.principal WHERE kind = 'a'").await,
        src.service_users().to_string()
    );

    // The dangling identity: dropped with its grants, and said so.
    let orphan = old("orphan-svc");
    assert_eq!(scalar(t, &format!("SELECT count(*) FROM core.principal WHERE id IN ('{orphan}', '{DANGLING_IDENTITY}')")).await, "0");
    assert_eq!(
        scalar(
            t,
            "SELECT count(*) FROM core.tree_access WHERE tree_path = 'secret'"
        )
        .await,
        "0"
    );
    let warned = warnings(report);
    assert!(
        warned.iter().any(|w| w.contains("dangling identity")
            && w.contains(DANGLING_IDENTITY)
            && w.contains("orphan-svc")),
        "{warned:#?}"
    );
    assert!(
        warned
            .iter()
            .any(|w| w.contains(ORPHAN_SLUG) && w.contains("no shard schema")),
        "{warned:#?}"
    );
    assert!(
        warned.iter().any(|w| w.contains("nested role membership")),
        "{warned:#?}"
    );

    // Pending invitations of the org → invitations of its space; accepted, expired and
    // ghost-sent ones are not.
    assert_eq!(
        rows(t, &format!("SELECT email::text, admin FROM core.space_invitation WHERE space_id = '{team}' ORDER BY 1")).await,
        [vec!["invitee@example.com".to_owned(), "false".to_owned()], vec!["newadmin@example.com".to_owned(), "true".to_owned()]]
    );
    assert_eq!(
        scalar(t, "SELECT count(*) FROM core.space_invitation").await,
        "2"
    );

    // The personal engine: one superuser owner, its memories, the first one queued for embedding.
    let personal = src.engine(PERSONAL_SLUG).unwrap();
    let count = src.shard(PERSONAL_SLUG).unwrap().memory_count;
    assert_eq!(
        scalar(
            t,
            &format!("SELECT count(*) FROM me_{PERSONAL_SLUG}.memory")
        )
        .await,
        count.to_string()
    );
    assert_eq!(
        scalar(
            t,
            &format!(
                "SELECT count(*) FROM core.principal_space WHERE space_id = '{}'",
                personal.id
            )
        )
        .await,
        "1"
    );
    // Embeddings exact to the bit, -0 and the smallest subnormal included.
    let first = rows(
        &s.shard.url,
        &format!("SELECT id::text, embedding[1:2]::text FROM me_{PERSONAL_SLUG}.memory WHERE embedding[1] = 0 AND embedding[2] > 0"),
    )
    .await;
    assert_eq!(first.len(), 1, "the fixture's -0/subnormal memory");
    assert_eq!(first[0][1], "{-0,1e-45}");
    assert_eq!(
        scalar(
            t,
            &format!(
                "SELECT embedding[1:2]::text FROM me_{PERSONAL_SLUG}.memory WHERE id = '{}'",
                first[0][0]
            )
        )
        .await,
        "{-0,1e-45}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn subset_then_full_equals_one_full_run() {
    let Some(s) = Setup::new().await else { return };
    let Some(other) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let slugs = s.slugs();
    let (a, b) = (slugs[1].clone(), slugs[3].clone());

    // A rehearsal: two engines and a slug that is no engine; phase A comes along.
    let subset = s.migrun(&["--only", &format!("{a},{b},nosuchengine1"), "--json"]);
    let report = subset.expect_code(0).json();
    let mut expected = vec![
        ("nosuchengine1".to_owned(), "not-found".to_owned()),
        (a.clone(), "committed".to_owned()),
        (b.clone(), "committed".to_owned()),
    ];
    expected.sort();
    let mut got = units(&report);
    got.sort();
    assert_eq!(got, expected);
    assert!(
        warnings(&report)
            .iter()
            .any(|w| w.contains("nosuchengine1")),
        "{:?}",
        warnings(&report)
    );
    assert_all_checks_pass(&report);
    assert_eq!(
        scalar(&s.target.url, "SELECT count(*) FROM auth.users").await,
        s.sources.identities.len().to_string()
    );
    assert_eq!(
        scalar(&s.target.url, "SELECT count(*) FROM core.space").await,
        "2"
    );

    // The full run skips what the subset finished.
    let full = s.migrun(&["--json"]).expect_code(0).json();
    for (name, status) in units(&full) {
        let want = if name == a || name == b {
            "skipped"
        } else {
            "committed"
        };
        assert_eq!(status, want, "{name}");
    }
    assert_all_checks_pass(&full);

    // One full run on a second target gives the same database.
    let target_b = format!("target={}", other.url);
    let once = s
        .migrun(&["--db", &target_b, "--json"])
        .expect_code(0)
        .json();
    assert!(units(&once).iter().all(|(_, status)| status == "committed"));
    assert_all_checks_pass(&once);
    let (twice, once) = (
        snapshot(&s.target.url, &["migrun_ledger"]).await,
        snapshot(&other.url, &["migrun_ledger"]).await,
    );
    assert!(twice.len() > 20, "{twice:?}");
    assert_eq!(twice, once, "subset then full ≠ one full run");
}

#[tokio::test(flavor = "multi_thread")]
async fn survey_reports_and_catches_drift() {
    let Some(s) = Setup::new().await else { return };
    let target_before = snapshot(&s.target.url, &[]).await;

    let survey = s.migrun(&["--set", "mode=survey", "--dry-run", "--json"]);
    let report = survey.expect_code(0).json();
    assert!(units(&report).is_empty());
    assert_all_checks_pass(&report);
    let summary = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "survey (read-only)")
        .expect("the survey's summary")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    let src = &s.sources;
    for part in [
        format!("{} identities", src.identities.len()),
        "7 active engines (1 orphaned)".to_owned(),
        format!("{} memories", src.migratable_memories()),
        "1 multi-member orgs".to_owned(),
        "2 RBAC roles".to_owned(),
        format!("{} service users", src.service_users()),
        "1 dangling identities".to_owned(),
    ] {
        assert!(summary.contains(&part), "{part:?} not in {summary:?}");
    }
    assert!(warnings(&report).iter().any(|w| w.contains(ORPHAN_SLUG)));
    assert!(
        warnings(&report)
            .iter()
            .any(|w| w.contains(DELETED_SLUG) && w.contains(SUSPENDED_SLUG))
    );
    assert_eq!(
        snapshot(&s.target.url, &[]).await,
        target_before,
        "the survey wrote to the target"
    );

    // The old DDL drifts: the survey says where, and the migration refuses before anything runs.
    s.shard
        .exec(&format!(
            "ALTER TABLE me_{TEAM_SLUG}.tree_grant RENAME COLUMN with_grant_option TO delegate"
        ))
        .await;
    let drifted = s.migrun(&["--set", "mode=survey", "--dry-run", "--json"]);
    let report = drifted.expect_code(3).json();
    let ddl = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ok"] == false)
        .expect("a failed check")
        .clone();
    assert!(
        ddl["name"]
            .as_str()
            .unwrap()
            .starts_with("shard DDL as the ETL expects"),
        "{ddl}"
    );
    assert!(
        ddl["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("me_{TEAM_SLUG}.tree_grant.with_grant_option")),
        "{ddl}"
    );
    s.migrun(&[])
        .expect_code(2)
        .expect_output("the sources no longer match what the ETL reads")
        .expect_output(&format!("me_{TEAM_SLUG}.tree_grant.with_grant_option"));
    assert_eq!(
        snapshot(&s.target.url, &[]).await,
        target_before,
        "a refused run wrote to the target"
    );
}

/// The generated sources are what the scenario assertions above assume.
#[test]
fn fixture_holds_the_scenario() {
    let src = multiplayer::generate(Shape::small(), SEED);
    let team = src.shard(TEAM_SLUG).unwrap();
    assert!(
        team.users
            .iter()
            .any(|u| u.identity_id.as_deref() == Some(DANGLING_IDENTITY))
    );
    assert_eq!(team.users.iter().filter(|u| !u.can_login).count(), 2);
    assert!(
        src.migratable_engines()
            .iter()
            .all(|e| ![DELETED_SLUG, ORPHAN_SLUG, SUSPENDED_SLUG].contains(&e.slug.as_str()))
    );
}

/// The access rules the seed does not state are the operator's to review (issue 19 item 6,
/// issue 24 item 2): a file in the granted directory, named by `access_rules`, replaces the
/// built-in ones. The team engine's member holds `docs` with `{read}` (read under the
/// built-in rules); rules where every action writes make it write, the verifier checks
/// parity under the same rules, the file is journaled, and the journal replays with the
/// file gone. Rules stricter than the old model (`delete` alone reads) migrate, and the
/// verifier's parity check then fails, naming the old rights the new model no longer gives.
#[tokio::test(flavor = "multi_thread")]
async fn access_rules_from_a_granted_file_replace_the_built_in_ones() {
    let Some(s) = Setup::new().await else {
        return;
    };
    let levels = |url: String| async move {
        rows(
            &url,
            "SELECT tree_path::text, access::text FROM core.tree_access \
             WHERE tree_path::text IN ('docs', 'archive') ORDER BY 1, 2",
        )
        .await
    };
    let pair = |p: &str, l: &str| vec![p.to_owned(), l.to_owned()];
    s.migrun(&["--json"]).expect_code(0);
    let before = levels(s.target.url.clone()).await;
    assert!(
        before.contains(&pair("docs", "1")) && before.contains(&pair("archive", "2")),
        "the built-in rules: {before:?}"
    );

    // A workspace whose migrun.toml grants `mappings/` and names the rules file in it.
    let with_rules = |rules: &str, target: &str| {
        let ws = Workspace::new();
        std::fs::create_dir_all(ws.path().join("mappings")).unwrap();
        std::fs::write(ws.path().join("mappings/access-rules.txt"), rules).unwrap();
        ws.config(&format!(
            "[connections.accounts]\nurl = \"{}\"\naccess = \"read-only\"\n\n\
             [connections.shard]\nurl = \"{}\"\naccess = \"read-only\"\n\n\
             [connections.target]\nurl = \"{target}\"\naccess = \"read-write\"\n\n\
             [files]\ndir = \"mappings\"\n\n\
             [config]\nbatch_size = 64\naccess_rules = \"access-rules.txt\"\n",
            s.accounts.ro_url, s.shard.ro_url
        ));
        ws
    };

    let Some(wider) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let ws = with_rules(
        "# reviewed by the team: every old action writes\nwrite_actions = read, create, update, delete\n",
        &wider.url,
    );
    let out = ws.migrun(&[s.plugin.as_str(), "--json"]);
    out.expect_code(0);
    assert!(
        out.all()
            .contains("access rules from the granted file access-rules.txt"),
        "{}",
        out.all()
    );
    let report = out.json();
    assert_all_checks_pass(&report);
    let after = levels(wider.url.clone()).await;
    assert!(after.contains(&pair("docs", "2")), "{after:?}");
    assert_eq!(after.len(), before.len(), "{before:?} → {after:?}");

    // The file was journaled: the run replays with the granted directory gone.
    std::fs::remove_dir_all(ws.path().join("mappings")).unwrap();
    let journal = ws
        .path()
        .join(report["journal"]["path"].as_str().expect("journal path"));
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified: ");

    // Stricter than the old model: the rows go in, and the verifier says what was lost.
    let Some(stricter) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let ws = with_rules("write_actions = create, update\n", &stricter.url);
    let out = ws.migrun(&[s.plugin.as_str(), "--json"]);
    out.expect_code(3);
    let report = out.json();
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert!(
        !failed.is_empty()
            && failed.iter().all(|c| c["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("access parity")),
        "only access parity fails: {failed:?}"
    );
    assert!(
        levels(stricter.url.clone())
            .await
            .contains(&pair("archive", "1"))
    );

    // A file that is not valid rules stops the run before any unit, naming the line.
    let Some(third) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let bad = with_rules("colour = blue\n", &third.url);
    let refused = bad.migrun(&[s.plugin.as_str()]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.all().contains("line 1: unknown key `colour`"),
        "{}",
        refused.all()
    );
}

/// A workspace whose migrun.toml names the sources of `s`, the target `target` (none when
/// `None`) and, when `rules` is given, grants `mappings/` holding it as `access-rules.txt`.
fn workspace_with(s: &Setup, target: Option<&str>, rules: Option<&str>) -> Workspace {
    let ws = Workspace::new();
    let mut config = format!(
        "[connections.accounts]\nurl = \"{}\"\naccess = \"read-only\"\n\n\
         [connections.shard]\nurl = \"{}\"\naccess = \"read-only\"\n\n",
        s.accounts.ro_url, s.shard.ro_url
    );
    if let Some(target) = target {
        config.push_str(&format!(
            "[connections.target]\nurl = \"{target}\"\naccess = \"read-write\"\n\n"
        ));
    }
    config.push_str("[config]\nbatch_size = 64\n");
    if let Some(rules) = rules {
        std::fs::create_dir_all(ws.path().join("mappings")).unwrap();
        std::fs::write(ws.path().join("mappings/access-rules.txt"), rules).unwrap();
        config.push_str("access_rules = \"access-rules.txt\"\n\n[files]\ndir = \"mappings\"\n");
    }
    ws.config(&config);
    ws
}

fn check_named<'r>(report: &'r serde_json::Value, name: &str) -> &'r serde_json::Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?}: {}", report["checks"]))
}

/// Seed 001's survey confirmed "two distinct physical clusters" before choosing a
/// cross-database ETL (issue 24 item 2). The tests' sources share one server: the survey
/// says "same cluster" as a warning and passes, fails when `require_distinct_clusters =
/// true` asks for two, and the migration then refuses before anything runs. Sources on
/// two servers (the suite's PostgreSQL and its pgvector server) pass even when required.
#[tokio::test(flavor = "multi_thread")]
async fn survey_says_whether_the_sources_are_two_clusters() {
    let Some(s) = Setup::new().await else { return };
    let target_before = snapshot(&s.target.url, &[]).await;

    let report = s
        .migrun(&["--set", "mode=survey", "--dry-run", "--json"])
        .expect_code(0)
        .json();
    assert_all_checks_pass(&report);
    let allowed = check_named(&report, "sources on two distinct clusters (not required)");
    assert!(
        allowed["detail"]
            .as_str()
            .unwrap()
            .contains("accounts and shard are on the same PostgreSQL cluster (system identifier "),
        "{allowed}"
    );
    assert!(
        warnings(&report)
            .iter()
            .any(|w| w.contains("same PostgreSQL cluster")
                && w.contains("require_distinct_clusters = true")),
        "{:?}",
        warnings(&report)
    );

    let required = s.migrun(&[
        "--set",
        "mode=survey",
        "--set",
        "require_distinct_clusters=true",
        "--dry-run",
        "--json",
    ]);
    let report = required.expect_code(3).json();
    let failed = check_named(&report, "sources on two distinct clusters");
    assert_eq!(failed["ok"], false, "{failed}");
    let detail = failed["detail"].as_str().unwrap();
    assert!(
        detail.contains("same PostgreSQL cluster")
            && detail.contains("require_distinct_clusters = true"),
        "{failed}"
    );

    s.migrun(&["--set", "require_distinct_clusters=true"])
        .expect_code(2)
        .expect_output("accounts and shard are on the same PostgreSQL cluster")
        .expect_output("require_distinct_clusters = true: nothing was migrated");
    assert_eq!(
        snapshot(&s.target.url, &[]).await,
        target_before,
        "a refused migration wrote to the target"
    );

    // Two servers: distinct, as production.
    let Some(accounts) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let Some(shard) = TestDatabase::on_pgvector_server().await else {
        return;
    };
    let Some(target) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let apart = Setup::seeded(accounts, shard, target, Shape::small())
        .await
        .expect("seeded");
    let report = apart
        .migrun(&[
            "--set",
            "mode=survey",
            "--set",
            "require_distinct_clusters=true",
            "--dry-run",
            "--json",
        ])
        .expect_code(0)
        .json();
    assert_all_checks_pass(&report);
    let distinct = check_named(&report, "sources on two distinct clusters");
    assert!(
        distinct["detail"]
            .as_str()
            .unwrap()
            .starts_with("two distinct PostgreSQL clusters (system identifiers "),
        "{distinct}"
    );
}

/// The survey needs only the two read-only sources (issue 24 item 2): with no target
/// configured it runs and says it skipped the target checks; the migration without a
/// target refuses, naming the connection; a target that is not empty fails the survey.
#[tokio::test(flavor = "multi_thread")]
async fn survey_runs_without_a_target() {
    let Some(s) = Setup::new().await else { return };
    let ws = workspace_with(&s, None, None);
    let out = ws.migrun(&[s.plugin.as_str(), "--set", "mode=survey", "--json"]);
    out.expect_code(0)
        .expect_output("no target configured: the survey skips the target checks");
    let report = out.json();
    assert_all_checks_pass(&report);
    assert!(
        check_named(&report, "survey (read-only)")["detail"]
            .as_str()
            .unwrap()
            .contains("no target configured: target checks skipped")
    );
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("target")),
        "no target check ran: {names:?}"
    );

    let refused = ws.migrun(&[s.plugin.as_str()]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    refused.expect_output("the migration writes connection `target`, which is not configured");

    // With a target: it must be empty.
    s.target.exec("CREATE SCHEMA auth").await;
    let report = s
        .migrun(&["--set", "mode=survey", "--dry-run", "--json"])
        .expect_code(3)
        .json();
    let empty = check_named(&report, "target is an empty database");
    assert_eq!(empty["ok"], false, "{empty}");
    assert!(
        empty["detail"].as_str().unwrap().contains("it holds auth"),
        "{empty}"
    );
    assert_eq!(
        check_named(
            &report,
            "target server offers the extensions the ETL creates"
        )["ok"],
        true
    );
}

/// Every choice the seed leaves open is the operator's (issue 24 item 2): each key of the
/// reviewed rules file changes what the migration writes. The team org's owner is taken
/// out of the org first, so its service user `codex` has no org owner: by default its
/// first migrated member owns the agent; `agent_owner = org-owner` drops it.
#[tokio::test(flavor = "multi_thread")]
async fn each_choice_the_seed_leaves_open_changes_through_the_rules_file() {
    let Some(s) = Setup::new().await else { return };
    s.accounts
        .exec(&format!(
            "DELETE FROM accounts.org_member WHERE role = 'owner' AND org_id = \
             (SELECT org_id FROM accounts.engine WHERE slug = '{TEAM_SLUG}')"
        ))
        .await;
    let facts = |url: String| async move {
        [
            scalar(
                &url,
                "SELECT count(*) FROM core.tree_access WHERE tree_path::text LIKE 'home.%'",
            )
            .await,
            scalar(&url, "SELECT bool_or(email_verified)::text || '/' || bool_and(email_verified)::text FROM auth.users").await,
            scalar(
                &url,
                &format!(
                    "SELECT count(*) FROM information_schema.columns WHERE table_schema = \
                     'me_{TEAM_SLUG}' AND table_name = 'memory' AND column_name = 'created_by'"
                ),
            )
            .await,
            scalar(&url, "SELECT count(*) FROM core.principal WHERE kind = 'a' AND name = 'codex'").await,
            scalar(&url, "SELECT count(*) FROM core.principal WHERE kind = 'a' AND name LIKE 'claude-%'").await,
        ]
    };

    // Today's choices, by default.
    let out = s.migrun(&["--json"]);
    out.expect_code(0);
    assert!(
        warnings(&out.json())
            .iter()
            .any(|w| w.contains("accounts and shard are on the same PostgreSQL cluster")),
        "the migration warns about one cluster too: {:?}",
        warnings(&out.json())
    );
    let [homes, verified, created_by, codex, suffixed] = facts(s.target.url.clone()).await;
    assert_ne!(
        homes, "0",
        "member_homes = owner: every member owns home.<id>"
    );
    assert_eq!(verified, "true/true", "email_verified = true");
    assert_eq!(created_by, "0", "memory_created_by = drop");
    assert_eq!(codex, "1", "agent_owner = owner-or-first-member");
    assert_eq!(suffixed, "2", "agent_name_clash = suffix-slug");

    // The other choice of each key.
    let Some(other) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let ws = workspace_with(
        &s,
        Some(&other.url),
        Some(
            "member_homes = none\nagent_owner = org-owner\nemail_verified = false\n\
             memory_created_by = keep\n",
        ),
    );
    let out = ws.migrun(&[s.plugin.as_str(), "--json"]);
    let report = out.json();
    let [homes, verified, created_by, codex, _] = facts(other.url.clone()).await;
    assert_eq!(homes, "0", "member_homes = none");
    assert_eq!(verified, "false/false", "email_verified = false");
    assert_eq!(created_by, "1", "memory_created_by = keep");
    assert_eq!(codex, "0", "agent_owner = org-owner");
    assert!(
        warnings(&report)
            .iter()
            .any(|w| w.contains("codex") && w.contains("agent_owner = org-owner")),
        "{:?}",
        warnings(&report)
    );
    let kept = format!("SELECT id::text, created_by::text FROM me_{TEAM_SLUG}.memory ORDER BY id");
    let source_ids = rows(&s.shard.url, &kept).await;
    assert!(source_ids.iter().any(|r| r[1] != "NULL"));
    assert_eq!(
        rows(&other.url, &kept).await,
        source_ids,
        "created_by copied as it was"
    );
    // The verifier follows the same choices: memories (created_by included) and parity hold;
    // only members left with no grant at all (no home any more) have empty access.
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert!(
        failed.iter().all(|c| c["name"]
            .as_str()
            .unwrap()
            .starts_with("effective access non-empty")),
        "{failed:#?}"
    );
    assert_eq!(out.code, if failed.is_empty() { 0 } else { 3 });

    // A name clash refused instead of suffixed.
    let Some(third) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let ws = workspace_with(&s, Some(&third.url), Some("agent_name_clash = refuse\n"));
    let refused = ws.migrun(&[s.plugin.as_str(), "--keep-going", "--json"]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    refused
        .expect_output("claude twice")
        .expect_output("agent_name_clash = refuse");
    assert_eq!(
        scalar(
            &third.url,
            "SELECT count(*) FROM core.principal WHERE kind = 'a' AND name LIKE 'claude%'"
        )
        .await,
        "0"
    );
}
