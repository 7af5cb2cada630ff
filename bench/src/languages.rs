//! The plugin-languages benchmark of issue 21 (`migrun-bench --shape languages`):
//! the accounts-merge twins — `plugins/accounts-merge` (Rust),
//! `plugins/accounts-merge-py` (componentize-py) and `plugins/accounts-merge-js`
//! (componentize-qjs, QuickJS: its `npm run build`; and, on request, componentize-js,
//! StarlingMonkey: `npm run build:starlingmonkey`) — run by the real `migrun` binary on the same SQLite
//! source (`migrun-fixtures auth-users`, seed 0) at two or more sizes, each run
//! into an empty SQLite target, in its own process under `/usr/bin/time` (wall
//! seconds, peak RSS). Every target is checked (accounts = users, identities =
//! NeoPass users, the same content digest for the three languages) before the
//! table prints: seconds, users/s, the ratio to Rust at the same size, and how
//! each language grows from the smallest size to the largest (1.00 = linear).
//!
//! The components are compiled into a fresh cache before anything is timed
//! (`migrun inspect`), so the seconds are the run, not cranelift compiling a
//! JavaScript or Python engine. `scripts/bench --shape languages` builds everything.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sqlx::{Connection, SqliteConnection};

use crate::{Measure, median, timed, timed_quiet};

/// The flags of `--shape languages` (flattened into the bench's arguments).
#[derive(clap::Args)]
pub struct LanguageArgs {
    /// `--shape languages`: the user counts to run at (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [20_000u32, 100_000])]
    users: Vec<u32>,
    /// `--shape languages`: which twins to run (comma-separated: rust, python, js, and
    /// js-sm for the JavaScript twin's StarlingMonkey build).
    #[arg(long, value_delimiter = ',', default_values_t = ["rust".to_owned(), "python".to_owned(), "js".to_owned()])]
    languages: Vec<String>,
    /// `--shape languages`: the twins' `batch_size` (their default is 500).
    #[arg(long, default_value_t = 500)]
    batch_size: u32,
    /// `--shape languages`: the Rust twin.
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/release/accounts_merge.wasm"
    )]
    rust_plugin: PathBuf,
    /// `--shape languages`: the Python twin (componentize-py).
    #[arg(long, default_value = "target/bench-guests/accounts_merge_py.wasm")]
    python_plugin: PathBuf,
    /// `--shape languages`: the JavaScript twin (componentize-qjs, QuickJS).
    #[arg(long, default_value = "target/bench-guests/accounts_merge_js.wasm")]
    js_plugin: PathBuf,
    /// `--shape languages`: the JavaScript twin built with componentize-js (StarlingMonkey).
    #[arg(long, default_value = "target/bench-guests/accounts_merge_js_sm.wasm")]
    js_sm_plugin: PathBuf,
}

/// One twin.
struct Twin {
    key: &'static str,
    label: &'static str,
    plugin: Option<PathBuf>,
}

/// One run's outcome: measured, or why not.
struct Run {
    users: u32,
    twin: usize,
    measure: Result<Measure, String>,
}

/// Entry point of `--shape languages`.
pub async fn run(args: &crate::Args) -> anyhow::Result<()> {
    let la = &args.languages;
    let binary = std::fs::canonicalize(&args.migrun).with_context(|| {
        format!(
            "the migrun binary {} (scripts/bench --shape languages builds it)",
            args.migrun.display()
        )
    })?;
    let all = [
        ("rust", "Rust", &la.rust_plugin),
        ("python", "Python (componentize-py)", &la.python_plugin),
        ("js", "JavaScript (QuickJS)", &la.js_plugin),
        ("js-sm", "JavaScript (StarlingMonkey)", &la.js_sm_plugin),
    ];
    for wanted in &la.languages {
        if !all.iter().any(|(key, _, _)| key == wanted) {
            bail!("unknown language {wanted:?}: expected rust, python, js or js-sm");
        }
    }
    let twins: Vec<Twin> = all
        .iter()
        .filter(|(key, _, _)| la.languages.iter().any(|w| w == key))
        .map(|(key, label, path)| {
            let plugin = std::fs::canonicalize(path).ok();
            if plugin.is_none() {
                eprintln!(
                    "warning: {} is missing (scripts/bench --shape languages builds it): {label} is not measured",
                    path.display()
                );
            }
            Twin {
                key,
                label,
                plugin,
            }
        })
        .collect();
    let mut sizes = la.users.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        bail!("--users needs at least one size");
    }

    let work = std::env::temp_dir().join(format!("migrun-bench-languages-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let cache = work.join("component-cache");
    // Compile each component into the cache before anything is timed.
    for twin in &twins {
        if let Some(plugin) = &twin.plugin {
            eprintln!("compiling {} into the component cache …", twin.label);
            timed_quiet(
                Command::new(&binary)
                    .arg("inspect")
                    .arg(plugin)
                    .env("MIGRUN_CACHE_DIR", &cache)
                    .current_dir(&work),
            )?;
        }
    }

    let mut runs = Vec::new();
    for &users in &sizes {
        let dir = work.join(format!("users-{users}"));
        std::fs::create_dir_all(&dir)?;
        let source = dir.join("users.sqlite");
        let source_url = format!("sqlite:{}", source.display());
        eprintln!("generating {users} users …");
        let summary = migrun_fixtures::seed_users(&source_url, users, 0).await?;
        let mut reference: Option<(usize, Digest)> = None;
        let mut measured: Vec<Vec<Measure>> = twins.iter().map(|_| Vec::new()).collect();
        // `--runs` rounds, the twins' order rotated each round (so no twin always
        // runs first, or right after the source was written), the median kept.
        for round in 0..args.runs.max(1) {
            for k in 0..twins.len() {
                let i = (k + round as usize) % twins.len();
                let twin = &twins[i];
                let Some(plugin) = &twin.plugin else {
                    continue;
                };
                let folder = dir.join(twin.key);
                if folder.exists() {
                    std::fs::remove_dir_all(&folder)?;
                }
                std::fs::create_dir_all(&folder)?;
                let target = folder.join("target.sqlite");
                std::fs::write(
                    folder.join("migrun.toml"),
                    format!(
                        "[connections.source]\nurl = \"{source_url}\"\naccess = \"read-only\"\n\
                         [connections.target]\nurl = \"sqlite:{}\"\naccess = \"read-write\"\n\
                         [config]\nbatch_size = {}\n",
                        target.display(),
                        la.batch_size
                    ),
                )?;
                let label = format!("{} on {users} users", twin.label);
                let measure = timed(
                    twin.label,
                    Command::new(&binary)
                        .arg(plugin)
                        .env("MIGRUN_CACHE_DIR", &cache)
                        .current_dir(&folder),
                )?;
                let digest = digest(&target).await?;
                if digest.accounts != summary.rows as i64
                    || digest.identities != summary.neopass as i64
                {
                    bail!(
                        "{label}: {} accounts and {} identities, expected {} and {}",
                        digest.accounts,
                        digest.identities,
                        summary.rows,
                        summary.neopass
                    );
                }
                match &reference {
                    Some((first, expected)) if *expected != digest => bail!(
                        "{label}: the target differs from {}'s: {digest:?} vs {expected:?}",
                        twins[*first].label
                    ),
                    Some(_) => {}
                    None => reference = Some((i, digest)),
                }
                if !args.keep {
                    std::fs::remove_dir_all(&folder).ok();
                }
                measured[i].push(measure);
            }
        }
        for (i, twin) in twins.iter().enumerate() {
            runs.push(Run {
                users,
                twin: i,
                measure: median(std::mem::take(&mut measured[i])).ok_or_else(|| {
                    if twin.plugin.is_none() {
                        "not built".to_owned()
                    } else {
                        "no run".to_owned()
                    }
                }),
            });
        }
    }
    if args.keep {
        eprintln!("kept {}", work.display());
    } else {
        std::fs::remove_dir_all(&work).ok();
    }
    print_table(la, args.runs, &twins, &sizes, &runs);
    Ok(())
}

/// What the twins must agree on: the row counts and a digest over every column.
#[derive(Debug, PartialEq, Eq)]
struct Digest {
    accounts: i64,
    identities: i64,
    content: u64,
}

async fn digest(target: &Path) -> anyhow::Result<Digest> {
    let mut conn = SqliteConnection::connect(&format!("sqlite:{}?mode=ro", target.display()))
        .await
        .with_context(|| format!("opening {}", target.display()))?;
    let mut hasher = DefaultHasher::new();
    let accounts: Vec<(String,)> = sqlx::query_as(
        "SELECT id || '|' || name || '|' || COALESCE(email, '-') || '|' || COALESCE(email_domain, '-') \
         || '|' || password_kind || '|' || sign_in_count || '|' || locked || '|' \
         || COALESCE(created_at, '-') || '|' || COALESCE(last_sign_in_at, '-') FROM accounts ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await?;
    let identities: Vec<(String,)> = sqlx::query_as(
        "SELECT provider || '|' || uid || '|' || account_id || '|' || COALESCE(email, '-') \
         FROM identities ORDER BY provider, uid",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await?;
    accounts.hash(&mut hasher);
    identities.hash(&mut hasher);
    Ok(Digest {
        accounts: accounts.len() as i64,
        identities: identities.len() as i64,
        content: hasher.finish(),
    })
}

fn print_table(la: &LanguageArgs, rounds: u32, twins: &[Twin], sizes: &[u32], runs: &[Run]) {
    let seconds = |users: u32, twin: usize| {
        runs.iter()
            .find(|r| r.users == users && r.twin == twin)
            .and_then(|r| r.measure.as_ref().ok())
            .map(|m| m.seconds)
    };
    let rust = twins.iter().position(|t| t.key == "rust");
    println!(
        "\naccounts-merge twins, SQLite → SQLite, batch_size {}, median of {} alternating runs, every target checked \
         (accounts = users, identities = NeoPass users, the same content in every language)\n",
        la.batch_size,
        rounds.max(1)
    );
    println!("| language | users | wall s | users/s | peak RSS MB | × Rust |");
    println!("|---|---:|---:|---:|---:|---:|");
    for &users in sizes {
        for (i, twin) in twins.iter().enumerate() {
            let run = runs
                .iter()
                .find(|r| r.users == users && r.twin == i)
                .expect("every size runs every twin");
            match &run.measure {
                Ok(m) => {
                    let ratio = rust
                        .and_then(|r| seconds(users, r))
                        .map_or_else(|| "—".to_owned(), |r| format!("{:.2}×", m.seconds / r));
                    println!(
                        "| {} | {users} | {:.2} | {:.0} | {:.0} | {ratio} |",
                        twin.label,
                        m.seconds,
                        f64::from(users) / m.seconds,
                        m.peak_rss_mb
                    );
                }
                Err(why) => println!("| {} | {users} | {why} | | | |", twin.label),
            }
        }
    }
    let (small, large) = (sizes[0], sizes[sizes.len() - 1]);
    if small == large {
        return;
    }
    let data = f64::from(large) / f64::from(small);
    println!(
        "\ngrowth from {small} to {large} users (data ×{data:.1}): time ×, and time × / data × (1.00 = linear)"
    );
    for (i, twin) in twins.iter().enumerate() {
        if let (Some(a), Some(b)) = (seconds(small, i), seconds(large, i)) {
            println!("- {}: ×{:.1} — {:.2}", twin.label, b / a, b / a / data);
        }
    }
    if let Some(r) = rust {
        println!(
            "\ntargets (issue 21): Python and JavaScript (its default build, QuickJS) within 3× of Rust, and linear in the data"
        );
        let targeted = |t: &Twin| t.key == "python" || t.key == "js";
        for (i, twin) in twins
            .iter()
            .enumerate()
            .filter(|(i, t)| *i != r && targeted(t))
        {
            let worst = sizes
                .iter()
                .filter_map(|&u| Some(seconds(u, i)? / seconds(u, r)?))
                .reduce(f64::max);
            if let Some(worst) = worst {
                println!(
                    "- {} ≤ 3× Rust at every size: worst {worst:.2}× — {}",
                    twin.label,
                    if worst <= 3.0 { "met" } else { "NOT met" }
                );
            }
        }
    }
}
