//! The `migrun` command: argument parsing, terminal output and exit codes over the library.
//!
//! Exit codes: 0 success; 1 the run failed (a unit or `verify` failed, was
//! rolled back, or hit a limit); 2 nothing ran (bad arguments, config, plugin
//! or connection); 3 the run finished but a check failed; 4 units failed and
//! the others ran (`--keep-going`); 5 the plan given with `--plan` was refused (made
//! for another build, configuration or database: nothing ran) or a unit's writes
//! differed from it (that unit was rolled back; the units before it stay committed);
//! 130 interrupted.

mod backups;
mod console;
mod journal_verify;
mod render;
mod scaffold;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use migrun::config::RunConfig;
use migrun::printable::{printable, printable_json, printable_text};
use migrun::run::{self, RunOptions};
use migrun::runtime::{LoadedPlugin, Runtime};

/// Run database migrations written as sandboxed WebAssembly components.
#[derive(Parser)]
#[command(
    name = "migrun",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Print every entry, one line each (the hash chain is verified while reading).
    Show {
        /// The journal.
        journal: PathBuf,
        /// Print the entries as JSON lines instead.
        #[arg(long)]
        json: bool,
    },
    /// Verify a journal: header, hash chain, frames and footer ("incomplete" for a run that
    /// did not finish); with the run's connections, every ledger row of the run against it.
    /// Exit 0 intact, 1 modified, 2 unreadable or unsupported, 3 incomplete.
    Verify {
        /// The journal.
        journal: PathBuf,
        /// The config naming the run's connections (their ledgers are checked).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// A connection whose ledger is checked: --db name=url (repeatable).
        #[arg(long = "db", value_name = "NAME=URL")]
        db: Vec<String>,
        /// Print JSON (schema migrun.journal-verify/1).
        #[arg(long)]
        json: bool,
    },
    /// Count what a journal holds: calls by kind, rows read and written, units, outcome, final hash.
    Stats {
        /// The journal.
        journal: PathBuf,
        /// Print JSON (schema migrun.journal-stats/1).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// List the backups in the backup directory, oldest first.
    List {
        #[command(flatten)]
        place: BackupPlace,
        /// Print JSON (schema migrun.backup-list/1).
        #[arg(long)]
        json: bool,
    },
    /// Re-read a backup's files against its manifest (sizes, sha256, row counts, checksums).
    Verify {
        /// The backup id (see `migrun backup list`).
        id: String,
        #[command(flatten)]
        place: BackupPlace,
        /// Print JSON (schema migrun.backup-verify/1).
        #[arg(long)]
        json: bool,
    },
    /// Delete old backups: all but each plugin's N newest runs (--keep N), or those
    /// older than an age (--older-than 30d). A run's snapshots go together; the newest
    /// run of each plugin is never deleted without --force.
    #[command(group(clap::ArgGroup::new("rule").required(true).args(["keep", "older_than"])))]
    Prune {
        /// Keep the backups of each plugin's N newest runs.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Delete the backups of runs older than this (e.g. 30d, 12h, 2w, 90m).
        #[arg(long, value_name = "AGE", value_parser = parse_age_arg)]
        older_than: Option<std::time::Duration>,
        /// Also delete the newest run's backups of a plugin when the rule says so.
        #[arg(long)]
        force: bool,
        /// Print what would be deleted and delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        place: BackupPlace,
        /// Print JSON (schema migrun.backup-prune/1).
        #[arg(long)]
        json: bool,
    },
}

fn parse_age_arg(text: &str) -> Result<std::time::Duration, String> {
    migrun::backup::parse_age(text)
}

/// Where backups are: the config's `[backup] dir`, or --backup-dir.
#[derive(Args)]
struct BackupPlace {
    /// The config file (default ./migrun.toml if present).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// The backup directory (overrides [backup] dir; default migrun-backups).
    #[arg(long)]
    backup_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// List and verify the backups taken before runs (and by plugins).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore tables from a backup into the connection it was taken from, then re-verify them.
    Restore {
        /// The backup id (see `migrun backup list`).
        id: String,
        /// Restore only these tables (default: every table of the backup).
        #[arg(long, value_delimiter = ',')]
        tables: Option<Vec<String>>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Tables created since the backup (matching one of its patterns, not in it) that
        /// a full restore may drop; with --yes, each must be named here or nothing is restored.
        #[arg(long, value_delimiter = ',', conflicts_with = "tables")]
        drop: Vec<String>,
        #[command(flatten)]
        place: BackupPlace,
        /// Override a connection URL: --db name=url (repeatable).
        #[arg(long = "db", value_name = "NAME=URL")]
        db: Vec<String>,
        /// Print JSON (schema migrun.restore/1).
        #[arg(long)]
        json: bool,
        /// Seconds to wait for a run on the target to finish (restore takes the run lock).
        #[arg(long, default_value_t = 30)]
        lock_timeout: u64,
    },
    /// Inspect a journal without replaying it.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Show the ledger of every configured connection: which units of which plugins finished, when, by which build.
    Status {
        /// The config file (default ./migrun.toml).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Override a connection URL: --db name=url (repeatable).
        #[arg(long = "db", value_name = "NAME=URL")]
        db: Vec<String>,
        /// Print JSON (schema migrun.status/1; every row, and a summary per plugin).
        #[arg(long)]
        json: bool,
        /// List every ledger row, however many (by default a ledger of more than 50 rows is
        /// summed up per plugin, listing only the unfinished and suspect rows).
        #[arg(long)]
        all: bool,
    },
    /// Run SQL on a configured connection, in one transaction, and print what the last statement
    /// returned: set up and inspect the databases a run uses (also what the SDKs' test helpers call).
    Sql {
        /// The config file (default ./migrun.toml when it exists; otherwise embedded SQLite files).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Override a connection URL: --db name=url (repeatable).
        #[arg(long = "db", value_name = "NAME=URL")]
        db: Vec<String>,
        /// Print JSON (schema migrun.sql/1: columns, rows, rows_affected).
        #[arg(long)]
        json: bool,
        /// The connection's name (an unconfigured name is migrun-data/<name>.sqlite).
        connection: String,
        /// The statements, one per argument, run in order; all are rolled back if one fails.
        #[arg(required = true, value_name = "SQL")]
        statements: Vec<String>,
    },
    /// Re-execute a journal's plugin on its recorded inputs, with no database: verify it
    /// (same plugin) or compare another version's writes (--plugin v2.wasm).
    Replay {
        /// The journal (a `.journal` file from a run's journal directory).
        journal: PathBuf,
        /// Run this plugin instead of the recorded one (found by sha256 next to the journal).
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Print JSON (schema migrun.replay-report/1).
        #[arg(long)]
        json: bool,
    },
    /// Show what a plugin declares (connections, units, config keys) and the contract version it targets.
    Inspect {
        /// The plugin component (.wasm).
        plugin: PathBuf,
        /// Print JSON (schema migrun.inspect/1).
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin project (Rust, Python or JavaScript) that builds and dry-runs out of the box.
    New {
        /// The plugin's name (lowercase letters, digits and hyphens); also its folder unless --dir.
        name: String,
        /// Its language: rust, python or js.
        #[arg(long, value_name = "LANG")]
        lang: scaffold::Language,
        /// The project folder (default: ./<name>).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rust: depend on the migrun-sdk in this folder (default: the checkout migrun was built from, else crates.io); JavaScript: the @migrun/sdk of that checkout (its sdk/js), or this folder when it is sdk/js.
        #[arg(long, value_name = "PATH")]
        sdk_path: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The plugin component (.wasm) to run.
    #[arg(required = true)]
    plugin: Option<PathBuf>,
    /// Run everything in transactions that are always rolled back: show what would happen, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The config file (default: ./migrun.toml when it exists; otherwise embedded SQLite files).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Override a connection URL: --db name=url (repeatable).
    #[arg(long = "db", value_name = "NAME=URL")]
    db: Vec<String>,
    /// Run only these units (comma-separated), in the plugin's order: `unit` (any scope) or `unit@scope` (contract 0.2.0: that scope only).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Set a plugin config value: --set key=value (repeatable; overrides the config file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// With --dry-run on MariaDB/MySQL when no scratch database can be made: dry-run in the
    /// real database with DDL refused. Risky: a statement that commits despite the host's
    /// guards would change real data; without this flag such a dry-run is refused.
    #[arg(long, requires = "dry_run")]
    dry_run_unsafe_mariadb: bool,
    /// With --dry-run: also write the plan as JSON (schema migrun.plan/2) to this file.
    #[arg(long, value_name = "FILE", requires = "dry_run")]
    plan_out: Option<PathBuf>,
    /// Apply exactly this plan (written by --dry-run --plan-out): refused before anything
    /// runs when made for another plugin build, configuration or database; each unit's
    /// writes are compared with the plan's before they commit, and a unit that differs is
    /// rolled back and stops the run (exit 5).
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    plan: Option<PathBuf>,
    /// Print the report as JSON (schema migrun.run-report/1) instead of text.
    #[arg(long)]
    json: bool,
    /// Fuel per plugin call (overrides [limits] fuel).
    #[arg(long)]
    fuel: Option<u64>,
    /// Memory cap in MiB (overrides [limits] memory_mib).
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Run only this worker's share of the units: --shard i/n (0 <= i < n), by a stable hash
    /// of each unit's name. `--shard auto` (Kubernetes Indexed Job): i from
    /// JOB_COMPLETION_INDEX, n from MIGRUN_SHARD_COUNT; `--shard auto/n` gives n itself.
    #[arg(long, value_parser = parse_shard, value_name = "I/N")]
    shard: Option<ShardArg>,
    /// Run up to N units at once, each with its own plugin instance, connections and
    /// transactions (default 1: one unit after another). Units start in list order; use it
    /// only when the plugin's units do not depend on each other. A dry-run runs one at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64), value_name = "N")]
    jobs: u32,
    /// When a unit fails, roll it back and run the other units anyway (also `[run]
    /// on_unit_failure = "continue"`); the report lists the failed units, the run exits 4, and
    /// a rerun runs only the units that did not finish. For units that do not depend on each
    /// other (one per tenant). A dry-run still stops at its first failure.
    #[arg(long)]
    keep_going: bool,
    /// Seconds to wait for another run's lock on a target before failing.
    #[arg(long, default_value_t = 30)]
    lock_timeout: u64,
    /// Rerun units the ledger says another build of this plugin finished; the reason is recorded in the ledger.
    #[arg(long, value_name = "REASON")]
    allow_plugin_change: Option<String>,
    /// Where the run's journal is written (overrides journal_dir; default migrun-journal).
    #[arg(long)]
    journal_dir: Option<PathBuf>,
    /// Where backups are written (overrides [backup] dir; default migrun-backups).
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Grant the plugin read-only access to the files in this directory (contract 0.2.0
    /// `files`; overrides [files] dir). Every file read is journaled and listed in the plan.
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
    /// Take no backup before the run (the operator's explicit choice; plugins may still take theirs).
    #[arg(long)]
    no_backup: bool,
    /// Wall-clock limit per plugin call in seconds (overrides [limits] timeout_secs).
    #[arg(long)]
    timeout_secs: Option<u64>,
    /// More log output (repeat for more); MIGRUN_LOG takes a tracing filter.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Buffers of 2 MiB and more come from their own mappings and go back to the operating
/// system when freed (glibc's `M_MMAP_THRESHOLD`, fixed). glibc otherwise raises that
/// threshold to the size of the largest block freed, after which a bulk copy's per-batch
/// buffers (the journal writer's ~6 MB block of a batch of embeddings and its compressed
/// frame) stay resident between batches: measured in docs/PERFORMANCE.md, ~12 MB more
/// peak memory for the same run. Smaller allocations (values, rows, COPY pieces) are
/// unaffected, and the heap keeps up to 16 MiB free at its top rather than giving it
/// back and faulting it in again batch after batch (fixing the first threshold would
/// otherwise leave glibc's trim threshold at 128 KiB: replay's page faults doubled).
///
/// And every thread allocates from one heap (`M_ARENA_MAX` 1): a batch's values are
/// decoded on a runtime worker, handed to the plugin on the main thread and freed by
/// the journal's thread, so with glibc's default of one heap per thread each heap kept
/// its own free memory of past batches — measured on the memory-copy benchmark, peak
/// memory 103 → 91 MB live and 107 → 100 MB in replay, no slower (docs/PERFORMANCE.md).
fn release_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn main() -> ExitCode {
    release_large_buffers();
    let cli = Cli::parse();
    console::init_tracing(cli.run.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Some(Command::Inspect { plugin, json }) => inspect(&plugin, json).await,
            Some(Command::Journal(cmd)) => journal(cmd).await,
            Some(Command::Backup(cmd)) => backups::backup(cmd).await,
            Some(Command::Restore {
                id,
                tables,
                yes,
                drop,
                place,
                db,
                json,
                lock_timeout,
            }) => {
                let wait = std::time::Duration::from_secs(lock_timeout);
                backups::restore(&id, tables, yes, &drop, &place, &db, json, wait).await
            }
            Some(Command::Status {
                config,
                db,
                json,
                all,
            }) => status(config.as_deref(), &db, json, all).await,
            Some(Command::Sql {
                config,
                db,
                json,
                connection,
                statements,
            }) => sql(config.as_deref(), &db, json, &connection, &statements).await,
            Some(Command::Replay {
                journal,
                plugin,
                json,
            }) => replay(&journal, plugin.as_deref(), json).await,
            Some(Command::New {
                name,
                lang,
                dir,
                sdk_path,
            }) => new_plugin(name, lang, dir, sdk_path),
            None => run_plugin(cli.run).await,
        }
    });
    match code {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", printable_text(&error_chain(&e)));
            ExitCode::from(2)
        }
    }
}

/// One line for an error and its causes, `outer: cause: root`. A library
/// error that already prints its source (`journal x: No such file…`) is
/// followed in the chain by that same source; it is shown once.
/// Prints a rendered text to stdout. Renderers escape what a plugin supplied field by field;
/// this is the last boundary, so no control character from a plugin reaches the terminal.
fn print_text(text: &str) {
    print!("{}", printable_text(text));
}

/// Prints a JSON document to stdout, with the characters serde_json leaves raw
/// (DEL, C1 controls, bidi controls) escaped as `\uXXXX`: same values, safe bytes.
fn print_json(json: &str) {
    println!("{}", printable_json(json));
}

fn error_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn new_plugin(
    name: String,
    language: scaffold::Language,
    dir: Option<PathBuf>,
    sdk_path: Option<PathBuf>,
) -> anyhow::Result<u8> {
    use scaffold::{NewPlugin, SdkSource};
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    let sdk = sdk_path.map(SdkSource::Path).unwrap_or_default();
    let project = scaffold::scaffold(&NewPlugin {
        name,
        language,
        dir,
        sdk,
    })?;
    println!(
        "created a {} plugin in {}:",
        project.language,
        project.dir.display()
    );
    for file in &project.files {
        println!("  {}", file.display());
    }
    if let Some(note) = &project.note {
        println!("\n{note}");
    }
    print!("\nbuild it and dry-run it:\n{}", project.next_steps());
    Ok(0)
}

async fn inspect(path: &std::path::Path, json: bool) -> anyhow::Result<u8> {
    let plugin = LoadedPlugin::load_file(Runtime::shared(), path)
        .with_context(|| format!("loading {}", path.display()))?;
    let inspection = run::inspect(&plugin)
        .await
        .with_context(|| format!("inspecting {}", path.display()))?;
    if json {
        print_json(&render::inspection_json(&inspection));
    } else {
        print_text(&render::inspection_text(&inspection));
    }
    Ok(0)
}

async fn journal(cmd: JournalCommand) -> anyhow::Result<u8> {
    use migrun::journal::stats;
    match cmd {
        JournalCommand::Show { journal, json } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut result = Ok(());
            // A `--jobs` run's entries name their lane (the worker that wrote them): a
            // `[lane N]` prefix, or a `"lane"` field in JSON; lane 0 adds nothing.
            stats::show(&journal, |index, hash, lane, entry| {
                use std::io::Write as _;
                if result.is_err() {
                    return;
                }
                result = if json {
                    serde_json::to_value(entry)
                        .map(|mut value| {
                            if lane != 0
                                && let Some(object) = value.as_object_mut()
                            {
                                object.insert("lane".into(), lane.into());
                            }
                            value.to_string()
                        })
                        .map_err(std::io::Error::other)
                        .and_then(|line| writeln!(out, "{}", printable_json(&line)))
                } else {
                    let lane = if lane == 0 {
                        String::new()
                    } else {
                        format!("[lane {lane}] ")
                    };
                    writeln!(
                        out,
                        "{index:>6} {}  {lane}{}",
                        render::short_hash(hash),
                        printable(&stats::describe(entry))
                    )
                };
            })
            .with_context(|| format!("reading {}", journal.display()))?;
            result.context("writing to stdout")?;
        }
        JournalCommand::Stats { journal, json } => {
            let s =
                stats::stats(&journal).with_context(|| format!("reading {}", journal.display()))?;
            if json {
                print_json(&render::journal_stats_json(&s));
            } else {
                print_text(&render::journal_stats_text(&s));
            }
        }
        JournalCommand::Verify {
            journal,
            config,
            db,
            json,
        } => return journal_verify::run(&journal, config.as_deref(), &db, json).await,
    }
    Ok(0)
}

/// `--shard` as given: a fixed share, or `auto` (from the environment, resolved when the run
/// starts by [`ShardArg::resolve`]) with or without its count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardArg {
    /// `--shard i/n`.
    Fixed(u32, u32),
    /// `--shard auto` (`None`: the count from `MIGRUN_SHARD_COUNT`) or `--shard auto/n`.
    Auto(Option<u32>),
}

/// The variable a Kubernetes Indexed Job sets in each pod: the pod's index, 0‥completions-1.
const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// The number of shards for `--shard auto`: the Job's `completions` (Kubernetes does not set
/// it in the pod, so the manifest does).
const SHARD_COUNT_VAR: &str = "MIGRUN_SHARD_COUNT";

impl ShardArg {
    /// This worker's `(index, count)`; `auto` reads them from `env`, and an index or count
    /// that is missing or wrong is an error saying which and how to give it.
    fn resolve(self, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<(u32, u32)> {
        let (given, count) = match self {
            ShardArg::Fixed(i, n) => return Ok((i, n)),
            ShardArg::Auto(count) => (count, env(SHARD_COUNT_VAR)),
        };
        let Some(index) = env(JOB_COMPLETION_INDEX) else {
            anyhow::bail!(
                "--shard auto: {JOB_COMPLETION_INDEX} is not set; a Kubernetes Indexed Job \
                 (completionMode: Indexed) sets it in each pod. Outside one, give the share \
                 with --shard I/N. Nothing was run"
            );
        };
        let index: u32 = index.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "--shard auto: {JOB_COMPLETION_INDEX}={index:?} is not a number. Nothing was run"
            )
        })?;
        let from_env = match count {
            Some(text) => Some(
                text.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--shard auto: {SHARD_COUNT_VAR}={text:?} is not a positive number. \
                         Nothing was run"
                        )
                    })?,
            ),
            None => None,
        };
        let count = match (given, from_env) {
            (Some(given), Some(env)) if given != env => anyhow::bail!(
                "--shard auto/{given} and {SHARD_COUNT_VAR}={env} disagree on the number of \
                 shards; give it once. Nothing was run"
            ),
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => anyhow::bail!(
                "--shard auto: the number of shards is not given; set {SHARD_COUNT_VAR} to the \
                 Job's completions (Kubernetes does not tell the pod), or pass --shard auto/N. \
                 Nothing was run"
            ),
        };
        if index >= count {
            anyhow::bail!(
                "--shard auto: {JOB_COMPLETION_INDEX}={index} is not below the number of shards \
                 {count}: the Job's completions and the shard count differ. Nothing was run"
            );
        }
        Ok((index, count))
    }
}

fn parse_shard(spec: &str) -> Result<ShardArg, String> {
    if spec == "auto" {
        return Ok(ShardArg::Auto(None));
    }
    if let Some(count) = spec.strip_prefix("auto/") {
        let n: u32 = count.parse().map_err(|_| "N is not a number")?;
        if n == 0 {
            return Err("shard auto/0: need N > 0".into());
        }
        return Ok(ShardArg::Auto(Some(n)));
    }
    let (i, n) = spec
        .split_once('/')
        .ok_or("expected I/N (e.g. 0/3), auto or auto/N")?;
    let (i, n): (u32, u32) = (
        i.parse().map_err(|_| "I is not a number")?,
        n.parse().map_err(|_| "N is not a number")?,
    );
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N"));
    }
    Ok(ShardArg::Fixed(i, n))
}

async fn status(
    config: Option<&std::path::Path>,
    overrides: &[String],
    json: bool,
    all: bool,
) -> anyhow::Result<u8> {
    let mut config = match config {
        Some(file) => RunConfig::load(file)?,
        None if std::path::Path::new("migrun.toml").exists() => {
            RunConfig::load("migrun.toml".as_ref())?
        }
        // Without a config, status reads what a run without one would use: the --db
        // connections, and the embedded SQLite files already in migrun-data/.
        None => {
            let mut config = RunConfig::default_embedded();
            config.connections = embedded_connections(&config);
            config
        }
    };
    for spec in overrides {
        config.apply_override(spec)?;
    }
    if config.connections.is_empty() {
        anyhow::bail!(
            "nothing to show: no migrun.toml here, no --db name=url, and no embedded database in {}",
            config.data_dir.display()
        );
    }
    if config.tenants.is_some() {
        let tenants = migrun::tenants::list_tenants(&config)
            .await
            .context("listing the tenants")?;
        let ledgers = migrun::tenants::tenant_ledgers(&config, tenants).await;
        if json {
            print_json(&render::tenant_status_json(&ledgers));
        } else {
            print_text(&render::tenant_status_text(&ledgers, all));
        }
        let suspect = ledgers
            .iter()
            .any(|t| t.state == migrun::tenants::TenantLedgerState::Suspect);
        return Ok(if suspect { 1 } else { 0 });
    }
    let status = migrun::status::collect(&config).await;
    let failed = migrun::status::failed_units(&config, &status);
    if json {
        print_json(&render::status_json(&status, &failed));
    } else {
        let mut text = render::status_text(&status, all);
        if !failed.is_empty() {
            text.push('\n');
            text.push_str(&render::failed_units_text(&failed, all));
        }
        print_text(&text);
    }
    // A ledger row migrun did not write as it stands is worth a non-zero exit.
    let suspect = status
        .iter()
        .flat_map(|t| &t.anchors)
        .any(migrun::status::Anchor::is_suspect);
    Ok(if suspect { 1 } else { 0 })
}

/// The embedded SQLite databases already in the config's `data_dir` (`<name>.sqlite`), by connection name.
/// `migrun sql`: the statements on one connection; exit 0, or 1 when a statement failed
/// (rolled back, the database's error on stderr).
async fn sql(
    config: Option<&std::path::Path>,
    overrides: &[String],
    json: bool,
    connection: &str,
    statements: &[String],
) -> anyhow::Result<u8> {
    let mut config = match config {
        Some(file) => RunConfig::load(file)?,
        None if std::path::Path::new("migrun.toml").exists() => {
            RunConfig::load("migrun.toml".as_ref())?
        }
        None => RunConfig::default_embedded(),
    };
    for spec in overrides {
        config.apply_override(spec)?;
    }
    if config.connection(connection).url.contains("${tenant}") {
        anyhow::bail!(
            "connection `{connection}` is one per tenant ([tenants]): give one tenant's URL with --db {connection}=URL"
        );
    }
    match migrun::statements::run_statements(&config, connection, statements).await {
        Ok(outcome) => {
            if json {
                print_json(&outcome.to_json().to_string());
            } else {
                print_text(&outcome.to_text());
            }
            Ok(0)
        }
        Err(e @ migrun::statements::StatementsError::Statement { .. }) => {
            eprintln!("error: {}", printable_text(&e.to_string()));
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

fn embedded_connections(
    config: &RunConfig,
) -> std::collections::BTreeMap<String, migrun::config::ResolvedConnection> {
    let mut found = std::collections::BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&config.data_dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "sqlite")
            && let Some(name) = path.file_stem().and_then(|s| s.to_str())
        {
            found.insert(name.to_owned(), config.connection(name));
        }
    }
    found
}

async fn replay(
    journal: &std::path::Path,
    plugin: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<u8> {
    let observer = Arc::new(console::Console::new(json));
    let report = run::replay(journal, plugin, observer.clone())
        .await
        .with_context(|| format!("replaying {}", journal.display()))?;
    observer.finish();
    if json {
        print_json(&render::replay_report_json(&report));
    } else {
        print_text(&render::replay_report_text(&report));
    }
    Ok(report.exit_code() as u8)
}

async fn run_plugin(args: RunArgs) -> anyhow::Result<u8> {
    let path = args.plugin.expect("clap requires the plugin");
    let shard = args
        .shard
        .map(|spec| spec.resolve(&|name| std::env::var(name).ok()))
        .transpose()?;
    let mut config = match &args.config {
        Some(file) => RunConfig::load(file)?,
        None if std::path::Path::new("migrun.toml").exists() => {
            RunConfig::load("migrun.toml".as_ref())?
        }
        None => RunConfig::default_embedded(),
    };
    for spec in &args.db {
        config.apply_override(spec)?;
    }
    for spec in &args.set {
        let (key, value) = spec
            .split_once('=')
            .with_context(|| format!("--set {spec:?}: expected key=value"))?;
        config.values.insert(key.to_owned(), value.to_owned());
    }
    if let Some(fuel) = args.fuel {
        config.limits.fuel = fuel;
    }
    if let Some(mib) = args.memory_mib {
        config.limits.memory_mib = mib;
    }
    if let Some(secs) = args.timeout_secs {
        config.limits.timeout_secs = secs;
    }
    if let Some(dir) = args.journal_dir {
        config.journal_dir = dir;
    }
    if let Some(dir) = args.files {
        config.files_dir = Some(dir);
    }
    let backup_dir_flag = args.backup_dir.is_some();
    if let Some(dir) = args.backup_dir {
        config.backup.dir = dir;
    }

    let plugin = LoadedPlugin::load_file(Runtime::shared(), &path)
        .with_context(|| format!("loading {}", path.display()))?;
    let over_tenants = config.tenants.is_some();
    if over_tenants && args.plan_out.is_some() {
        anyhow::bail!(
            "--plan-out is not supported with [tenants]: each tenant's dry-run plan is in its \
             journal folder. Nothing was run"
        );
    }
    let tenants = if over_tenants {
        migrun::tenants::list_tenants(&config)
            .await
            .context("listing the tenants; nothing was run")?
    } else {
        Vec::new()
    };
    let observer = Arc::new(if over_tenants {
        console::Console::for_tenants(args.json)
    } else {
        console::Console::new(args.json)
    });
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "interrupted: rolling back the current unit (press Ctrl-C again to abort at once)"
            );
            flag.store(true, Ordering::Relaxed);
            if tokio::signal::ctrl_c().await.is_ok() {
                // The databases roll back the open transactions when the connections drop.
                std::process::exit(130);
            }
        }
    });
    let approved = match &args.plan {
        Some(file) => match migrun::plan::PlanIdentity::read_plan(file) {
            Ok(plan) => Some(Arc::new(plan)),
            Err(refusal @ migrun::plan::PlanRefusal::Unreadable { .. }) => {
                return Err(anyhow::Error::new(refusal));
            }
            Err(refusal) => {
                eprintln!(
                    "error: {} did not start; nothing was changed: {}",
                    path.display(),
                    printable_text(&refusal.to_string())
                );
                return Ok(migrun::plan::PLAN_MISMATCH_EXIT_CODE as u8);
            }
        },
        None => None,
    };
    let options = RunOptions {
        dry_run: args.dry_run,
        only: args.only,
        seeds: None,
        observer: observer.clone(),
        shard,
        jobs: args.jobs,
        keep_going: args.keep_going
            || config.run.on_unit_failure == migrun::config::OnUnitFailure::Continue,
        lock_timeout: std::time::Duration::from_secs(args.lock_timeout),
        allow_plugin_change: args.allow_plugin_change,
        interrupt,
        no_backup: args.no_backup,
        unsafe_mariadb_dry_run: args.dry_run_unsafe_mariadb,
        plan: approved,
    };
    if over_tenants {
        // One plan is for one set of databases; each tenant's run has databases of its own.
        if options.plan.is_some() {
            anyhow::bail!(
                "--plan cannot be used with [tenants]: a plan is for one set of databases, and each \
                 tenant's run has its own; nothing was changed"
            );
        }
        let name = path.display().to_string();
        let report =
            migrun::tenants::run_tenants(Arc::new(plugin), &config, tenants, options).await;
        observer.finish();
        if args.json {
            print_json(&render::tenants_report_json(&report));
        } else {
            print_text(&render::tenants_report_text(&name, &report));
        }
        return Ok(report.exit_code() as u8);
    }
    let report = match run::run(&plugin, &config, options).await {
        Ok(report) => report,
        // A plan made for something else: its own exit code, nothing ran.
        Err(e @ run::RunError::Plan(_)) => {
            eprintln!(
                "error: {} did not start; nothing was changed: {}",
                path.display(),
                printable_text(&e.to_string())
            );
            return Ok(e.exit_code() as u8);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "{} did not start; nothing was changed",
                path.display()
            )));
        }
    };
    observer.finish();
    if let (Some(file), Some(plan)) = (&args.plan_out, &report.plan) {
        std::fs::write(file, plan.to_json())
            .with_context(|| format!("writing the plan to {}", file.display()))?;
    }
    if args.json {
        print_json(&render::run_report_json(&report));
    } else {
        let places = render::RunPlaces {
            backup_dir: &config.backup.dir,
            config: args.config.as_deref(),
            backup_dir_flag,
        };
        print_text(&render::run_report_text(&report, &places));
    }
    Ok(report.exit_code() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// `--shard auto` takes the index from the Indexed Job and the count from the flag or
    /// the manifest's variable; anything missing or inconsistent is refused by name.
    #[test]
    fn shard_auto_reads_the_indexed_job_and_refuses_what_is_missing() {
        assert_eq!(parse_shard("1/3"), Ok(ShardArg::Fixed(1, 3)));
        assert_eq!(parse_shard("auto"), Ok(ShardArg::Auto(None)));
        assert_eq!(parse_shard("auto/4"), Ok(ShardArg::Auto(Some(4))));
        assert!(parse_shard("auto/0").is_err());
        let auto = ShardArg::Auto(None);
        let both = [("JOB_COMPLETION_INDEX", "2"), ("MIGRUN_SHARD_COUNT", "3")];
        assert_eq!(auto.resolve(&env(&both)).unwrap(), (2, 3));
        assert_eq!(
            ShardArg::Auto(Some(3))
                .resolve(&env(&[("JOB_COMPLETION_INDEX", "0")]))
                .unwrap(),
            (0, 3)
        );
        let error =
            |arg: ShardArg, vars: &[(&str, &str)]| arg.resolve(&env(vars)).unwrap_err().to_string();
        let no_index = error(auto, &[("MIGRUN_SHARD_COUNT", "3")]);
        assert!(
            no_index.contains("JOB_COMPLETION_INDEX is not set"),
            "{no_index}"
        );
        let no_count = error(auto, &[("JOB_COMPLETION_INDEX", "0")]);
        assert!(
            no_count.contains("set MIGRUN_SHARD_COUNT") && no_count.contains("--shard auto/N"),
            "{no_count}"
        );
        let outside = error(
            auto,
            &[("JOB_COMPLETION_INDEX", "3"), ("MIGRUN_SHARD_COUNT", "3")],
        );
        assert!(
            outside.contains("not below the number of shards 3"),
            "{outside}"
        );
        let disagree = error(ShardArg::Auto(Some(2)), &both);
        assert!(disagree.contains("disagree"), "{disagree}");
        let garbage = error(
            auto,
            &[("JOB_COMPLETION_INDEX", "x"), ("MIGRUN_SHARD_COUNT", "3")],
        );
        assert!(garbage.contains("is not a number"), "{garbage}");
    }
}
