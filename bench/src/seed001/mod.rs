//! The seed-001-shape benchmark of issue 18 (`migrun-bench --shape seed001`):
//! seed 001's shard as it really is — 34 `me_<slug>` schemas, each with a
//! `memory` table, 62,111 rows at ×1 spread unevenly, `halfvec(1536)` or
//! `real[]` embeddings (`--vector`) — copied into an empty database by every
//! path in the same run, each path in its own process under `/usr/bin/time`
//! (wall seconds, peak RSS), each target verified against the source column by
//! column (the embedding by its binary send form) before the table prints:
//!
//! - native Rust, every row decoded and re-encoded, table after table
//!   ([`native`]), and the same over two tasks (two tables at once);
//! - the seed's own ETL, cursor + batched `unnest` of text ([`seed_etl`]);
//! - migrun with the `bench/seed-copy` plugin, and with `--jobs 2` when the
//!   build has it;
//! - the cached plugin start (`migrun inspect` with a warm cache).
//!
//! The server: `--pg-bin DIR` (or `MIGRUN_BENCH_PG_BIN`) starts a private
//! PostgreSQL from that install ([`server`]; `scripts/bench` passes the
//! pgvector one), else `--server URL`.

mod generate;
mod native;
mod seed_etl;
mod server;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use clap::ValueEnum;
use sqlx::{Connection, Executor, PgConnection};

use crate::{Measure, best_of, median, timed, timed_quiet, with_user};

/// The data shape to benchmark.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// Seed 001's shard: 34 `me_<slug>.memory` tables.
    Seed001,
    /// The accounts-merge twins (Rust, Python, JavaScript) on SQLite (issue 21).
    Languages,
}

/// The embedding column's type.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Vector {
    /// pgvector `halfvec(1536)` (needs pgvector on the server).
    Halfvec,
    /// `real[]`.
    Real,
}

impl Vector {
    fn column_type(self) -> &'static str {
        match self {
            Vector::Halfvec => "halfvec(1536)",
            Vector::Real => "real[]",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Vector::Halfvec => "halfvec",
            Vector::Real => "real",
        }
    }

    fn parse(text: &str) -> anyhow::Result<Vector> {
        Vector::from_str(text, false).map_err(|e| anyhow::anyhow!(e))
    }
}

/// How the seed-copy plugin carries the embedding (its `embedding` config key).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PluginEmbedding {
    /// Read without a cast, written as the host gave it (`float32-array` for
    /// `real[]`; for `halfvec` it needs a host with vector types).
    AsIs,
    /// Read `embedding::real[]`, write pgvector's text literal.
    RealCast,
}

impl PluginEmbedding {
    fn config_value(self) -> &'static str {
        match self {
            PluginEmbedding::AsIs => "as-is",
            PluginEmbedding::RealCast => "real-cast",
        }
    }
}

/// The flags of `--shape seed001` (flattened into the bench's arguments).
#[derive(clap::Args)]
pub struct SeedArgs {
    /// Benchmark another data shape: `seed001` is seed 001's 34 `me_<slug>.memory`
    /// tables (issue 18); `languages` the accounts-merge twins in Rust, Python and
    /// JavaScript (issue 21); without it, the one-table copy bench of issue 10.
    #[arg(long, value_enum)]
    pub shape: Option<Shape>,
    /// `--shape seed001`: the embedding column's type.
    #[arg(long, value_enum, default_value_t = Vector::Halfvec)]
    vector: Vector,
    /// `--shape seed001`: start a private PostgreSQL from this install's bin folder
    /// (initdb, pg_ctl, postgres; with pgvector for `--vector halfvec`) instead of using --server.
    #[arg(long, env = "MIGRUN_BENCH_PG_BIN", value_name = "DIR")]
    pg_bin: Option<PathBuf>,
    /// `--shape seed001`: the seed-copy plugin.
    #[arg(long, default_value = "target/wasm32-wasip2/release/seed_copy.wasm")]
    seed_plugin: PathBuf,
    /// `--shape seed001`: how the plugin carries the embedding. Default: `as-is` (a
    /// float32-array in binary, for `real[]` and pgvector columns alike); `real-cast`
    /// measures what a plugin had to do on a host without vector types.
    #[arg(long, value_enum)]
    plugin_embedding: Option<PluginEmbedding>,
    /// Internal: run one native path (native | native2 | seed-etl) between two URLs.
    #[arg(long, hide = true, num_args = 4, value_names = ["KIND", "VECTOR", "FROM", "TO"])]
    seed001_worker: Option<Vec<String>>,
}

/// Entry point of `--shape seed001`.
pub async fn run(args: &crate::Args) -> anyhow::Result<()> {
    let seed = &args.seed;
    if let Some(worker) = &seed.seed001_worker {
        let vector = Vector::parse(&worker[1])?;
        let (from, to) = (&worker[2], &worker[3]);
        return match worker[0].as_str() {
            "native" => native::copy_tables(from, to, vector, 1).await,
            "native2" => native::copy_tables(from, to, vector, 2).await,
            "seed-etl" => seed_etl::copy_tables(from, to, vector).await,
            other => bail!("unknown worker {other:?}"),
        };
    }
    let server = match &seed.pg_bin {
        Some(bin) => Some(server::PgServer::start(bin, args.keep)?),
        None => None,
    };
    let base = server
        .as_ref()
        .map_or_else(|| args.server.clone(), |s| s.url());
    let result = bench(args, &base).await;
    drop(server);
    result
}

/// One path's measure, or why it was not measured.
struct PathResult {
    label: &'static str,
    measure: Result<Measure, &'static str>,
}

async fn bench(args: &crate::Args, base: &str) -> anyhow::Result<()> {
    let seed = &args.seed;
    let vector = seed.vector;
    // The host models vector types (issue 18, Deliver 2): both shapes read and write
    // the embedding as a float32-array in binary; `real-cast` measures the old way.
    let embedding_mode = seed.plugin_embedding.unwrap_or(PluginEmbedding::AsIs);
    let tag = std::process::id();
    let url = |db: &str| format!("{base}/{db}");
    let mut admin = PgConnection::connect(&url("postgres"))
        .await
        .with_context(|| format!("connecting to PostgreSQL at {base}"))?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut admin)
        .await?;
    let src_db = format!("migrun_bench_s001_src_{tag}");
    let reader = format!("migrun_bench_s001_reader_{tag}");
    admin
        .execute(format!("CREATE DATABASE {src_db}").as_str())
        .await?;
    admin
        .execute(
            format!(
                "CREATE ROLE {reader} LOGIN PASSWORD '{}'",
                crate::READER_PASSWORD
            )
            .as_str(),
        )
        .await?;
    let mut created = vec![src_db.clone()];
    let result = paths(
        args,
        base,
        vector,
        embedding_mode,
        &src_db,
        &reader,
        &version,
        &mut created,
    )
    .await;
    if args.keep {
        eprintln!("kept databases {} and role {reader}", created.join(", "));
    } else {
        for db in &created {
            admin
                .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
                .await?;
        }
        admin
            .execute(format!("DROP ROLE IF EXISTS {reader}").as_str())
            .await?;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn paths(
    args: &crate::Args,
    base: &str,
    vector: Vector,
    embedding_mode: PluginEmbedding,
    src_db: &str,
    reader: &str,
    version: &str,
    created: &mut Vec<String>,
) -> anyhow::Result<()> {
    let tag = std::process::id();
    let url = |db: &str| format!("{base}/{db}");
    let src = url(src_db);
    let rows_total = generate::ROWS * u64::from(args.scale);
    eprintln!(
        "generating {rows_total} rows in {} tables ({} embeddings) …",
        generate::ENGINES,
        vector.column_type()
    );
    let counts = generate::fill(&src, vector, args.scale).await?;
    generate::grant_read(&src, reader).await?;
    let mut conn = PgConnection::connect(&src).await?;
    let bytes: i64 = sqlx::query_scalar(
        "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname LIKE 'me\\_%' AND c.relname = 'memory'",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    let expected = generate::digest(&src, vector).await?;

    let exe = std::env::current_exe()?;
    // scripts/bench always builds both; run by hand without them, the bench still
    // measures the baselines and says that migrun was not measured.
    let migrun_built = std::fs::canonicalize(&args.migrun)
        .ok()
        .zip(std::fs::canonicalize(&args.seed.seed_plugin).ok());
    if migrun_built.is_none() {
        eprintln!(
            "warning: {} or {} is missing (scripts/bench builds them): migrun is not measured",
            args.migrun.display(),
            args.seed.seed_plugin.display()
        );
    }
    let work = std::env::temp_dir().join(format!("migrun-bench-seed001-{tag}"));
    std::fs::create_dir_all(&work)?;
    let cache = work.join("component-cache");
    // `--jobs` comes with issue 18's parallel units: measured only when this build has it.
    let has_jobs = match &migrun_built {
        Some((binary, _)) => {
            String::from_utf8_lossy(&Command::new(binary).arg("--help").output()?.stdout)
                .contains("--jobs")
        }
        None => false,
    };

    let kinds: [(&'static str, &str); 5] = [
        (
            "native Rust, rows decoded + re-encoded, table after table",
            "native",
        ),
        ("native Rust, 2 tables at once", "native2"),
        (
            "the seed's ETL (cursor + batched unnest of text)",
            "seed-etl",
        ),
        ("migrun + seed-copy plugin", "migrun"),
        ("migrun --jobs 2", "migrun-jobs2"),
    ];
    let skipped: Vec<Option<&'static str>> = kinds
        .iter()
        .map(|(_, kind)| match *kind {
            "migrun" | "migrun-jobs2" if migrun_built.is_none() => {
                Some("not measured (migrun not built)")
            }
            "migrun-jobs2" if !has_jobs => Some("n/a (no --jobs in this build)"),
            _ => None,
        })
        .collect();
    let mut measured: Vec<Vec<Measure>> = kinds.iter().map(|_| Vec::new()).collect();
    // `--runs` rounds, the median kept. The seed's ETL, the heaviest writer by far
    // (~10× the others' time), runs last in each round and the other paths' order
    // rotates: no path always runs right after it (a plain rotation of all five kept
    // the cyclic order, so one path followed the ETL in every round). Before each path
    // a CHECKPOINT: every path starts with the previous ones' writes flushed, instead
    // of paying for them in its own time.
    let rounds = args.runs.max(1) as usize;
    let etl = kinds.iter().position(|(_, kind)| *kind == "seed-etl");
    let others: Vec<usize> = (0..kinds.len()).filter(|i| Some(*i) != etl).collect();
    for round in 0..rounds {
        let order = (0..others.len())
            .map(|k| others[(k + round) % others.len()])
            .chain(etl);
        for i in order {
            let (label, kind) = kinds[i];
            if skipped[i].is_some() {
                continue;
            }
            if rounds > 1 {
                eprintln!("round {} of {rounds}: {label} …", round + 1);
            }
            let db = format!("migrun_bench_s001_{}_{tag}", kind.replace('-', "_"));
            admin_execute(base, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await?;
            admin_execute(base, &format!("CREATE DATABASE {db}")).await?;
            if !created.contains(&db) {
                created.push(db.clone());
            }
            let target = url(&db);
            let mut t = PgConnection::connect(&target).await?;
            generate::create_tables(&mut t, vector).await?;
            t.close().await?;
            admin_execute(base, "CHECKPOINT").await?;
            let measure = match kind {
                "native" | "native2" | "seed-etl" => timed(
                    label,
                    Command::new(&exe)
                        .args([
                            "--shape",
                            "seed001",
                            "--seed001-worker",
                            kind,
                            vector.name(),
                        ])
                        .args([&src, &target]),
                )?,
                _ => {
                    let (binary, plugin) = migrun_built.as_ref().expect("checked above");
                    let dir = work.join(kind);
                    if dir.exists() {
                        std::fs::remove_dir_all(&dir)?;
                    }
                    std::fs::create_dir_all(&dir)?;
                    std::fs::write(
                        dir.join("migrun.toml"),
                        format!(
                            "[connections.source]\nurl = \"{}\"\naccess = \"read-only\"\n\
                             [connections.target]\nurl = \"{target}\"\n\
                             [config]\nembedding = \"{}\"\nbatch_size = 1000\n",
                            with_user(&src, reader, crate::READER_PASSWORD),
                            embedding_mode.config_value()
                        ),
                    )?;
                    let mut cmd = Command::new(binary);
                    if kind == "migrun-jobs2" {
                        cmd.args(["--jobs", "2"]);
                    }
                    cmd.arg(plugin)
                        .env("MIGRUN_CACHE_DIR", &cache)
                        .current_dir(&dir);
                    timed(label, &mut cmd)?
                }
            };
            let got = generate::digest(&target, vector).await?;
            if got != expected {
                let differing: Vec<&str> = got
                    .iter()
                    .zip(&expected)
                    .filter(|(g, e)| g != e)
                    .map(|(g, _)| g.0.as_str())
                    .collect();
                bail!("{label}: the copy differs from the source in {differing:?}");
            }
            if !args.keep {
                admin_execute(base, &format!("DROP DATABASE {db} WITH (FORCE)")).await?;
                created.retain(|d| d != &db);
            }
            eprintln!(
                "  {label}: {:.2} s, peak RSS {:.0} MB, CPU {:.2} s (machine {:.2} s)",
                measure.seconds,
                measure.peak_rss_mb,
                measure.cpu_seconds,
                measure.machine_cpu_seconds
            );
            measured[i].push(measure);
        }
    }
    let results: Vec<PathResult> = kinds
        .iter()
        .zip(skipped)
        .zip(measured)
        .map(|(((label, _), skipped), runs)| PathResult {
            label,
            measure: match skipped {
                Some(why) => Err(why),
                None => median(runs).ok_or("no run"),
            },
        })
        .collect();

    // Cached plugin start: the cache was filled by the runs above.
    let cached = match &migrun_built {
        Some((binary, plugin)) => {
            let inspect = || {
                let mut cmd = Command::new(binary);
                cmd.arg("inspect")
                    .arg(plugin)
                    .env("MIGRUN_CACHE_DIR", &cache)
                    .current_dir(&work);
                cmd
            };
            // fills the cache when no migrun run did
            timed_quiet(&mut inspect())?;
            Some(best_of(5, || timed_quiet(&mut inspect()))?)
        }
        None => None,
    };
    if args.keep {
        eprintln!("kept {}", work.display());
    } else {
        std::fs::remove_dir_all(&work).ok();
    }
    print_table(
        args,
        vector,
        embedding_mode,
        version,
        rows_total,
        &counts,
        bytes,
        &results,
        cached,
    );
    Ok(())
}

async fn admin_execute(base: &str, sql: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&format!("{base}/postgres")).await?;
    admin.execute(sql).await?;
    admin.close().await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn print_table(
    args: &crate::Args,
    vector: Vector,
    embedding_mode: PluginEmbedding,
    version: &str,
    rows: u64,
    counts: &[u64],
    bytes: i64,
    results: &[PathResult],
    cached_start: Option<f64>,
) {
    let seconds = |i: usize| results[i].measure.as_ref().ok().map(|m| m.seconds);
    let native = seconds(0).expect("native always runs");
    let native2 = seconds(1).expect("native2 always runs");
    let seed_etl = seconds(2).expect("the seed's ETL always runs");
    println!(
        "\nseed 001 shape, --vector {} ×{}: {rows} rows in {} me_<slug>.memory tables \
         (largest {}, smallest {}; {:.0} MB on disk), embedding {}, PostgreSQL {version}; \
         plugin embedding mode `{}`; median of {} rounds (the seed's ETL last in each, the others rotated; a CHECKPOINT before each path); \
         every target verified column by column against the source\n",
        vector.name(),
        args.scale,
        counts.len(),
        counts.iter().max().unwrap_or(&0),
        counts.iter().min().unwrap_or(&0),
        bytes as f64 / 1e6,
        vector.column_type(),
        embedding_mode.config_value(),
        args.runs.max(1)
    );
    println!(
        "| path | wall s | rows/s | peak RSS MB | client CPU s | machine CPU s | vs native per-row | vs native 2 at once | vs seed's ETL |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        match &r.measure {
            Ok(m) => println!(
                "| {} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2}× | {:.2}× | {:.1}× |",
                r.label,
                m.seconds,
                rows as f64 / m.seconds,
                m.peak_rss_mb,
                m.cpu_seconds,
                m.machine_cpu_seconds,
                native / m.seconds,
                native2 / m.seconds,
                seed_etl / m.seconds
            ),
            Err(why) => println!("| {} | {why} | | | | | | | |", r.label),
        }
    }
    println!(
        "\n(client CPU: the path's process, user + system; machine CPU: every core's busy \
         time over the run, the database server's included — with two cores, wall time \
         follows it.)"
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\ntargets (issue 18):");
    match &results[3].measure {
        Ok(migrun) => {
            println!(
                "- migrun ≥ 0.85× native per-row: {:.2}× — {}",
                native / migrun.seconds,
                verdict(native / migrun.seconds >= 0.85)
            );
            println!(
                "- migrun ≥ 8× the seed's ETL: {:.1}× — {}",
                seed_etl / migrun.seconds,
                verdict(seed_etl / migrun.seconds >= 8.0)
            );
        }
        Err(why) => println!("- migrun ≥ 0.85× native per-row, ≥ 8× the seed's ETL: {why}"),
    }
    match &results[4].measure {
        Ok(jobs) => println!(
            "- migrun --jobs 2 ≥ 0.85× native 2 at once: {:.2}× — {}",
            native2 / jobs.seconds,
            verdict(native2 / jobs.seconds >= 0.85)
        ),
        Err(why) => println!("- migrun --jobs 2 ≥ 0.85× native 2 at once: {why}"),
    }
    let peaks: Vec<f64> = results[3..]
        .iter()
        .filter_map(|r| r.measure.as_ref().ok().map(|m| m.peak_rss_mb))
        .collect();
    if let Some(peak) = peaks.iter().copied().reduce(f64::max) {
        println!(
            "- migrun peak RSS ≤ 100 MB: {peak:.0} MB — {} (flat ×1 → ×10: compare with the --scale 10 run)",
            verdict(peak <= 100.0)
        );
    }
    match cached_start {
        Some(s) => println!(
            "- cached plugin start (`migrun inspect`, warm cache, best of 5) ≤ 50 ms: {:.0} ms — {}",
            s * 1e3,
            verdict(s <= 0.050)
        ),
        None => println!("- cached plugin start ≤ 50 ms: not measured (migrun not built)"),
    }
}
