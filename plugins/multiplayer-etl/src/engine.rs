//! Phase B, one unit per engine (named by its slug), in one transaction: the
//! space with its roster, groups, agents and grants ([`plan_space`]), then its
//! `me_<slug>` schema and every memory streamed from the shard in batches.

use migrun_sdk::{Connection, Error, Result, Value, bail, info, params, progress, warn};

use crate::plan::{Kind, plan_space};
use crate::source::{self, space_schema};
use crate::target::{self, memory_columns};
use crate::{Etl, identities};

/// Migrates engine `slug` into a new space.
pub fn run(etl: &Etl, slug: &str) -> Result<()> {
    let accounts = Connection::open("accounts")?;
    let shard = Connection::open("shard")?;
    let target = Connection::open("target")?;

    // Phase A always comes first: `--only <slug>` on a fresh target runs it here,
    // and the `identities` unit later finds nothing left to copy.
    if !target::control_plane_exists(&target)? {
        info!(engine = slug; "the control plane is not migrated yet: running phase A (identities) first");
        identities::run(&etl.rules)?;
    }

    let Some(engine) = source::active_engines(&accounts)?
        .into_iter()
        .find(|e| e.slug == slug)
    else {
        bail!("{slug} is not an active engine (any more)");
    };
    let taken: bool = target.query_scalar(
        "SELECT EXISTS (SELECT 1 FROM core.space WHERE id = $1 OR slug = $2)",
        params![Value::Uuid(engine.id.clone()), slug],
    )?;
    if taken {
        bail!(
            "a space {slug} already exists in the target, which this unit did not record as finished; \
             the ETL writes a fresh target (drop the space or start from an empty database)"
        );
    }

    let embedding = source::embedding_type(&shard, slug)?;
    let input = source::engine_input(&accounts, &shard, &engine, &etl.rules)?;
    let plan = plan_space(&input).map_err(Error::Failed)?;
    for w in &plan.warnings {
        warn!(engine = slug; "{w}");
    }
    target::write_space(&target, &plan)?;
    let keep_created_by = etl.rules.keep_memory_created_by;
    for statement in target::space_ddl(slug, embedding, keep_created_by) {
        target.execute(&statement, params![])?;
    }
    let memories = copy_memories(&shard, &target, slug, etl.batch_size, keep_created_by)?;
    for statement in target::space_indexes(slug) {
        target.execute(&statement, params![])?;
    }

    let count = |kind: Kind| plan.principals.iter().filter(|p| p.kind == kind).count();
    let members = plan.roster.len() - count(Kind::Group);
    info!(
        engine = slug,
        members = members,
        groups = count(Kind::Group),
        agents = count(Kind::Agent),
        memories = memories,
        warnings = plan.warnings.len();
        "{slug}: space with {members} members ({} agents), {} groups, {} grants, {} invitations, {memories} memories",
        count(Kind::Agent),
        count(Kind::Group),
        plan.grants.values().map(|g| g.len()).sum::<usize>(),
        plan.invitations.len()
    );
    Ok(())
}

/// Streams `me_<slug>.memory` from the shard into the target, `batch` rows per
/// cursor fetch and per `COPY`. Types the host does not read natively in
/// contract 0.1.1 travel as text (`ltree`, `tstzrange`) and `COPY` parses them
/// back by the target column's type, exactly; the embedding travels as it is
/// read — `real[]`, `halfvec(n)` or `vector(n)` as a float32 array, written in
/// the target column's binary form (the target has the source's type). `created_by`
/// comes along only when the mapping keeps it (`memory_created_by = keep`).
fn copy_memories(
    shard: &Connection,
    target: &Connection,
    slug: &str,
    batch: u32,
    keep_created_by: bool,
) -> Result<u64> {
    let schema = space_schema(slug);
    let total: i64 =
        shard.query_scalar(&format!("SELECT count(*) FROM {schema}.memory"), params![])?;
    let task = format!("memories {slug}");
    progress(&task, 0, total as u64);
    let sql = format!(
        "SELECT id, meta, tree::text AS tree, temporal::text AS temporal, content, embedding, \
         embedding_version, created_at, updated_at{} FROM {schema}.memory ORDER BY id",
        if keep_created_by { ", created_by" } else { "" }
    );
    let columns = memory_columns(keep_created_by);
    let table = format!("{schema}.memory");
    let mut done = 0u64;
    for rows in shard.cursor(&sql, params![], batch)? {
        let rows: Vec<Vec<Value>> = rows?.into_iter().map(|row| row.into_values()).collect();
        done += target.bulk_insert(&table, &columns, rows)?;
        progress(&task, done, total as u64);
    }
    Ok(done)
}
