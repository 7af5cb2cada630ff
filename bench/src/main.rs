//! The copy benchmark of issue 10: seed 001's `memory` shape (uuid, text,
//! jsonb, ltree, tstzrange, a 1536-dimension `real[]` embedding, timestamps)
//! copied from one PostgreSQL database to another three ways, in one run:
//!
//! - **migrun**: the `memory-copy` plugin (cursor in batches, a per-row
//!   mapping, bulk insert), through the real `migrun` binary, journal and all;
//! - **native**: sqlx, binary `COPY … TO STDOUT` streamed into `COPY … FROM STDIN`;
//! - **psql**: `psql -c "COPY … TO STDOUT (FORMAT binary)" | psql -c "COPY … FROM STDIN (FORMAT binary)"`;
//!
//! then migrun again with its journal sent to the null sink (a benchmark-only
//! switch: `MIGRUN_BENCH_JOURNAL_SINK=null` in a binary built with the
//! `bench-null-sink` feature, which `scripts/bench` builds; no user-facing
//! option), to price journaling; then `migrun replay` of migrun's journal.
//! The journal's size is set against the bytes of the source's binary `COPY`
//! (the payload every path reads). Every path's target is checked
//! against the source (row count and a hash over every column). It prints one
//! table — seconds, rows/s, MB/s, peak RSS, ratio to native — measured in the
//! same run, so the ratios hold on a noisy machine. `scripts/bench` builds
//! everything and runs it; docs/PERFORMANCE.md records results.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use sqlx::{Connection, Executor, PgConnection, Row};

mod languages;
mod seed001;

#[derive(Parser)]
struct Args {
    /// Multiplies the row count (the issue's ×10 is `--scale 10`).
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// Rows at scale 1 (seed 001 copied 62,111 memories).
    #[arg(long, default_value_t = 62_111)]
    rows: u32,
    /// Embedding dimensions.
    #[arg(long, default_value_t = 1536)]
    dim: u32,
    /// The PostgreSQL server.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// The migrun binary.
    #[arg(long, default_value = "target/release/migrun")]
    migrun: PathBuf,
    /// The memory-copy plugin.
    #[arg(long, default_value = "target/wasm32-wasip2/release/memory_copy.wasm")]
    plugin: PathBuf,
    /// `--shape languages` and `--shape seed001`: rounds of every path (its order
    /// rotated each round); the table shows the median seconds and the largest peak RSS.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Keep the databases and the working folder (migrun.toml, journal) for profiling by hand.
    #[arg(long)]
    keep: bool,
    /// Internal: run only the native copy between two URLs (measured in its own process).
    #[arg(long, num_args = 2, value_names = ["FROM", "TO"])]
    native_copy: Option<Vec<String>>,
    /// `--shape seed001` and its flags (issue 18).
    #[command(flatten)]
    seed: seed001::SeedArgs,
    /// `--shape languages` and its flags (issue 21).
    #[command(flatten)]
    languages: languages::LanguageArgs,
}

const DDL: &str = "CREATE EXTENSION IF NOT EXISTS ltree; CREATE TABLE memory (\
    id uuid PRIMARY KEY, content text NOT NULL, meta jsonb NOT NULL, tree ltree NOT NULL, \
    temporal tstzrange, embedding real[], created_at timestamptz NOT NULL)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(urls) = &args.native_copy {
        return native_copy(&urls[0], &urls[1]).await;
    }
    if args.seed.shape == Some(seed001::Shape::Languages) {
        return languages::run(&args).await;
    }
    if args.seed.shape.is_some() {
        return seed001::run(&args).await;
    }
    let rows = u64::from(args.rows) * u64::from(args.scale);
    let tag = std::process::id();
    let url = |name: &str| format!("{}/{name}", args.server);
    let mut admin = PgConnection::connect(&url("postgres"))
        .await
        .context("connecting to PostgreSQL")?;
    let dbs =
        ["src", "native", "psql", "migrun", "null"].map(|n| format!("migrun_bench_{n}_{tag}"));
    for db in &dbs {
        admin
            .execute(format!("CREATE DATABASE {db}").as_str())
            .await?;
    }
    // migrun reads the source as a role that may only read it: it refuses a read-only
    // connection as a superuser (docs/SECURITY.md, "Privileges checked at start").
    let reader = format!("migrun_bench_reader_{tag}");
    admin
        .execute(format!("CREATE ROLE {reader} LOGIN PASSWORD '{READER_PASSWORD}'").as_str())
        .await?;
    let result = bench(&args, rows, &dbs.clone().map(|d| url(&d)), &reader).await;
    if args.keep {
        eprintln!("kept databases {} and role {reader}", dbs.join(", "));
        return result;
    }
    for db in &dbs {
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
            .await?;
    }
    admin
        .execute(format!("DROP ROLE IF EXISTS {reader}").as_str())
        .await?;
    result
}

/// The password of the bench's source reader (trust auth ignores it).
const READER_PASSWORD: &str = "migrun-bench";

/// `url` with its user and password replaced.
fn with_user(url: &str, user: &str, password: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{user}:{password}@{host}")
        }
        None => url.to_owned(),
    }
}

struct Measure {
    path: &'static str,
    seconds: f64,
    peak_rss_mb: f64,
    /// The path's own CPU (user + system, children included).
    cpu_seconds: f64,
    /// The whole machine's busy CPU over the run (`/proc/stat`; 0 where there is
    /// none): the path and the database servers it keeps busy. On a machine with
    /// fewer cores than busy threads, wall time follows this.
    machine_cpu_seconds: f64,
}

/// Busy CPU seconds of the whole machine so far (`/proc/stat`: every state but
/// idle and iowait); `None` off Linux.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let busy: u64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // USER_HZ is 100 on every Linux this runs on.
    Some(busy as f64 / 100.0)
}

async fn bench(args: &Args, rows: u64, urls: &[String; 5], reader: &str) -> anyhow::Result<()> {
    let [src, native, psql, migrun, null] = urls;
    // Every embedding its own random floats, as a real model's are: nothing for zstd
    // or the journal's value window to find twice (the `i` makes the subquery run per row, not once).
    eprintln!("generating {rows} rows of {} dimensions …", args.dim);
    let mut conn = PgConnection::connect(src).await?;
    conn.execute(DDL).await?;
    conn.execute(
        format!(
            "INSERT INTO memory SELECT md5(i::text)::uuid, '  memory ' || i || ' ', \
             jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 7)), \
             ('root.e' || (i % 34) || '.n' || (i % 97))::ltree, \
             CASE WHEN i % 5 = 0 THEN NULL ELSE tstzrange(timestamptz '2024-01-01' + i * interval '1 minute', NULL) END, \
             CASE WHEN i % 1000 = 7 THEN NULL ELSE (SELECT array_agg((random() * 2 - 1)::real) FROM generate_series(1, {}) d WHERE i > 0) END, \
             timestamptz '2024-01-01' + i * interval '1 second' FROM generate_series(1, {rows}) i",
            args.dim
        )
        .as_str(),
    )
    .await?;
    let bytes: i64 = sqlx::query("SELECT pg_total_relation_size('memory')")
        .fetch_one(&mut conn)
        .await?
        .get(0);
    conn.execute(format!("GRANT SELECT ON memory TO {reader}").as_str())
        .await?;
    let source_for_migrun = with_user(src, reader, READER_PASSWORD);
    let expected = fingerprint(src).await?;
    let payload = copy_payload_bytes(src).await?;
    for target in [native, psql, migrun, null] {
        let mut t = PgConnection::connect(target).await?;
        t.execute(DDL).await?;
    }

    let mut measures = Vec::new();
    let exe = std::env::current_exe()?;
    settle(src).await?;
    measures.push(timed(
        "native (sqlx binary COPY)",
        Command::new(&exe).arg("--native-copy").args([src, native]),
    )?);
    settle(src).await?;
    measures.push(timed(
        "psql COPY pipe",
        Command::new("bash").arg("-c").arg(format!(
            "psql -q '{src}' -c 'COPY memory TO STDOUT (FORMAT binary)' | psql -q '{psql}' -c 'COPY memory FROM STDIN (FORMAT binary)'"
        )),
    )?);
    let work = std::env::temp_dir().join(format!("migrun-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::write(
        work.join("migrun.toml"),
        format!(
            "[connections.source]\nurl = \"{source_for_migrun}\"\naccess = \"read-only\"\n[connections.target]\nurl = \"{migrun}\"\n"
        ),
    )?;
    let plugin = std::fs::canonicalize(&args.plugin)
        .context("the memory-copy plugin (scripts/bench builds it)")?;
    let binary = std::fs::canonicalize(&args.migrun)
        .context("the migrun binary (scripts/bench builds it)")?;
    // Cold start (process start, load, instantiate, describe: `migrun inspect`)
    // without a cache, with an empty cache (compile and store), then cached.
    let cache = work.join("component-cache");
    let inspect = |cache_dir: &Path| {
        let mut cmd = Command::new(&binary);
        cmd.arg("inspect")
            .arg(&plugin)
            .env("MIGRUN_CACHE_DIR", cache_dir)
            .current_dir(&work);
        cmd
    };
    let uncached = best_of(3, || timed_quiet(&mut inspect(Path::new("off"))))?;
    let first = timed_quiet(&mut inspect(&cache))?;
    let cached = best_of(5, || timed_quiet(&mut inspect(&cache)))?;
    settle(src).await?;
    measures.push(timed(
        "migrun + Rust plugin",
        Command::new(&binary)
            .arg(&plugin)
            .env("MIGRUN_CACHE_DIR", &cache)
            .current_dir(&work),
    )?);
    // The same run with the journal dropped unencoded (benchmark builds only).
    let null_work = work.join("null-sink");
    std::fs::create_dir_all(&null_work)?;
    std::fs::write(
        null_work.join("migrun.toml"),
        format!(
            "[connections.source]\nurl = \"{source_for_migrun}\"\naccess = \"read-only\"\n[connections.target]\nurl = \"{null}\"\n"
        ),
    )?;
    settle(src).await?;
    measures.push(timed(
        "migrun, journal to the null sink",
        Command::new(&binary)
            .arg(&plugin)
            .env("MIGRUN_CACHE_DIR", &cache)
            .env("MIGRUN_BENCH_JOURNAL_SINK", "null")
            .current_dir(&null_work),
    )?);
    let null_journal = newest_journal(&null_work.join("migrun-journal"))?;
    if std::fs::metadata(&null_journal)?.len() > 64 {
        bail!(
            "the null-sink run wrote a journal: build migrun with `--features bench-null-sink` (scripts/bench does)"
        );
    }
    let journal = newest_journal(&work.join("migrun-journal"))?;
    settle(src).await?;
    measures.push(timed(
        "migrun replay (no database)",
        Command::new(&binary)
            .arg("replay")
            .arg(&journal)
            .current_dir(&work),
    )?);
    let journal_bytes = std::fs::metadata(&journal)?.len() as f64;
    let journal_mb = journal_bytes / 1e6;

    for (name, url) in [
        ("native", native),
        ("psql", psql),
        ("migrun", migrun),
        ("migrun (null sink)", null),
    ] {
        let got = fingerprint(url).await?;
        if got != expected {
            bail!("the {name} copy differs from the source: {got:?} vs {expected:?}");
        }
    }
    if args.keep {
        eprintln!("kept {}", work.display());
    } else {
        std::fs::remove_dir_all(&work).ok();
    }

    let mb = bytes as f64 / 1e6;
    let native_s = measures[0].seconds;
    let psql_s = measures[1].seconds;
    let migrun_s = measures[2].seconds;
    println!(
        "\ncopy of {rows} memory rows ({:.0} MB on disk, {} dims), all targets verified against the source\n",
        mb, args.dim
    );
    println!("| path | seconds | rows/s | MB/s | peak RSS MB | speed vs native |");
    println!("|---|---:|---:|---:|---:|---:|");
    for m in &measures {
        println!(
            "| {} | {:.2} | {:.0} | {:.1} | {:.0} | {:.2}× |",
            m.path,
            m.seconds,
            rows as f64 / m.seconds,
            mb / m.seconds,
            m.peak_rss_mb,
            native_s / m.seconds
        );
    }
    let null_s = measures[3].seconds;
    let replay = &measures[4];
    println!(
        "\ntargets: migrun ≥ 0.8× native: {:.2}× · migrun ≥ 0.5× psql: {:.2}× · replay ≥ 10× live: {:.1}× · journal {:.1} MB",
        native_s / migrun_s,
        psql_s / migrun_s,
        migrun_s / replay.seconds,
        journal_mb
    );
    println!("\n| journal (issue 17) | value | target |");
    println!("|---|---:|---:|");
    println!(
        "| replay vs live (live s / replay s) | {:.1}× | ≥ 10× |",
        migrun_s / replay.seconds
    );
    println!(
        "| journal vs binary COPY payload read ({:.1} MB / {:.1} MB) | {:.3}× | ≤ 0.6× |",
        journal_mb,
        payload as f64 / 1e6,
        journal_bytes / payload as f64
    );
    println!(
        "| journaling cost ((live − null-sink live) / live; {:.2} s vs {:.2} s) | {:+.1}% | ≤ 10% |",
        migrun_s,
        null_s,
        (migrun_s - null_s) / migrun_s * 100.0
    );
    println!(
        "| peak RSS live / replay | {:.0} MB / {:.0} MB | ≤ 100 MB |",
        measures[2].peak_rss_mb, replay.peak_rss_mb
    );
    println!(
        "\ncold start of the plugin (`migrun inspect`: process, load, instantiate, describe): \
         no cache {:.0} ms · first run, compiling into the cache {:.0} ms · cached {:.0} ms (target ≤ 100 ms)",
        uncached * 1e3,
        first * 1e3,
        cached * 1e3
    );
    Ok(())
}

/// Wall-clock seconds of `cmd`, which must succeed.
fn timed_quiet(cmd: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output = cmd.output().context("running migrun inspect")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "migrun inspect failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(seconds)
}

/// The fastest of `n` runs (the least disturbed by the other load on the machine).
/// Starts each contender from the same state: the server's dirty buffers written
/// (`CHECKPOINT`) and the kernel's dirty pages on disk (`sync`), so that no contender
/// pays for the writeback of the copy before it (measured: a replay that met the
/// writeback of the two copies before it took 1.1 s instead of 0.8 s).
async fn settle(url: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute("CHECKPOINT").await?;
    conn.close().await?;
    let synced = Command::new("sync").status()?;
    anyhow::ensure!(synced.success(), "`sync` failed");
    Ok(())
}

fn best_of(n: usize, mut run: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..n {
        best = best.min(run()?);
    }
    Ok(best)
}

/// The run of median seconds, with the largest peak RSS of all; `None` when there were none.
pub(crate) fn median(mut runs: Vec<Measure>) -> Option<Measure> {
    if runs.is_empty() {
        return None;
    }
    let peak = runs.iter().map(|m| m.peak_rss_mb).fold(0.0, f64::max);
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let mut mid = runs.swap_remove(runs.len() / 2);
    mid.peak_rss_mb = peak;
    Some(mid)
}

/// Runs `cmd` under `/usr/bin/time -f "%M %U %S"` (peak RSS in KiB, user and system CPU
/// seconds, children included) and times it.
fn timed(path: &'static str, cmd: &mut Command) -> anyhow::Result<Measure> {
    let rss_file = std::env::temp_dir().join(format!("migrun-bench-rss-{}", std::process::id()));
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(&rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    eprintln!("running {path} …");
    let busy_before = machine_busy_seconds();
    let started = Instant::now();
    let output = wrapped
        .output()
        .with_context(|| format!("running {path}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let machine_cpu_seconds = match (busy_before, machine_busy_seconds()) {
        (Some(before), Some(after)) => after - before,
        _ => 0.0,
    };
    if !output.status.success() {
        bail!(
            "{path} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report = std::fs::read_to_string(&rss_file)?;
    std::fs::remove_file(&rss_file).ok();
    let fields: Vec<f64> = report
        .trim()
        .lines()
        .last()
        .unwrap_or("0 0 0")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0.0);
    Ok(Measure {
        path,
        seconds,
        peak_rss_mb: field(0) / 1024.0,
        cpu_seconds: field(1) + field(2),
        machine_cpu_seconds,
    })
}

fn newest_journal(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "journal"))
        .collect();
    journals.sort();
    journals.pop().context("migrun wrote no journal")
}

/// Row count and an order-independent hash over every column of every row (content trimmed:
/// trimming is the plugin's per-row mapping).
async fn fingerprint(url: &str) -> anyhow::Result<(i64, i64)> {
    let mut conn = PgConnection::connect(url).await?;
    let row = sqlx::query(
        "SELECT COUNT(*), COALESCE(SUM(hashtext(id::text || btrim(content) || meta::text || tree::text || \
         COALESCE(temporal::text, '-') || COALESCE(embedding::text, '-') || created_at::text)::bigint), 0)::bigint FROM memory",
    )
    .fetch_one(&mut conn)
    .await?;
    Ok((row.get(0), row.get(1)))
}

/// Bytes of the source table's binary `COPY` (the payload every path reads).
async fn copy_payload_bytes(url: &str) -> anyhow::Result<u64> {
    let mut conn = PgConnection::connect(url).await?;
    let mut output = conn
        .copy_out_raw("COPY memory TO STDOUT (FORMAT binary)")
        .await?;
    let mut bytes = 0u64;
    while let Some(chunk) = output.next().await {
        bytes += chunk?.len() as u64;
    }
    Ok(bytes)
}

/// The best native path: the server's binary COPY format streamed from one connection into the other.
async fn native_copy(from: &str, to: &str) -> anyhow::Result<()> {
    let mut src = PgConnection::connect(from).await?;
    let mut dst = PgConnection::connect(to).await?;
    let mut input = dst
        .copy_in_raw("COPY memory FROM STDIN (FORMAT binary)")
        .await?;
    let mut output = src
        .copy_out_raw("COPY memory TO STDOUT (FORMAT binary)")
        .await?;
    while let Some(chunk) = output.next().await {
        input.send(chunk?).await?;
    }
    input.finish().await?;
    Ok(())
}
