//! A hostile plugin: it misbehaves on purpose so the sandbox tests can check
//! that every limit holds and that the open unit is rolled back.
//!
//! It is a test fixture, kept apart from the example plugins; nothing here is
//! a pattern to copy.
//!
//! # Connections and configuration
//!
//! - `source` (read-only) and `target` (read-write, writes `victim`).
//! - `behaviour` (required): what unit `misbehave` does, one of the values below.
//!
//! # Units
//!
//! 1. `setup` creates `victim(id integer primary key, note text)` on `target`
//!    when it is absent, and commits normally.
//! 2. `misbehave` first inserts `(1000, 'should be rolled back')` into
//!    `victim` through `target`, then, by `behaviour`:
//!
//! | `behaviour` | what happens | what the host should do |
//! |---|---|---|
//! | `loop` | spins forever on a counter kept alive with `black_box` | stop it (fuel or epoch deadline, or wall-clock timeout) and roll back |
//! | `alloc` | allocates 1 MiB blocks without end, writing into every page and keeping them all | stop it at the memory cap and roll back |
//! | `recurse` | recurses without end, each frame holding a buffer | trap on stack exhaustion and roll back |
//! | `trap` | panics, which traps the instance | report the trap and roll back |
//! | `write-readonly` | tries `CREATE TABLE x(i int)` and `INSERT INTO victim …` through `source`; returns the session's refusal (preferring kind `read-only`) as the unit's `database` error, or a `failed` error naming any write that was accepted | refuse both in the session (kind `read-only`) and roll back |
//! | `escape` | tries to read and write files, list the working directory, read the environment, arguments and stdin, open a TCP connection and resolve a name; reports each door as a check and logs the clock and randomness it sees | every door shut; clock and randomness are the seeded stand-ins |
//! | `ok` | returns `Ok` after the insert | commit: row 1000 exists afterwards (the control case) |
//!
//! For `write-readonly` the source need not hold `victim`: the `CREATE
//! TABLE` needs no table and is refused by the session on every dialect,
//! while the `INSERT` may fail earlier with "no such table" (PostgreSQL and
//! SQLite resolve the table before checking for writes); the read-only
//! refusal is the one returned.

use std::hint::black_box;

use migrun_sdk::{
    Config, ConfigKey, Connection, DbErrorKind, Error, Need, Plugin, PluginInfo, Result, bail,
    params, warn,
};

/// What `misbehave` does after its insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Loop,
    Alloc,
    Recurse,
    Trap,
    WriteReadonly,
    Escape,
    Ok,
}

const BEHAVIOURS: [(&str, Behaviour); 7] = [
    ("loop", Behaviour::Loop),
    ("alloc", Behaviour::Alloc),
    ("recurse", Behaviour::Recurse),
    ("trap", Behaviour::Trap),
    ("write-readonly", Behaviour::WriteReadonly),
    ("escape", Behaviour::Escape),
    ("ok", Behaviour::Ok),
];

/// The hostile plugin.
struct Hostile {
    behaviour: Behaviour,
}

impl Plugin for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo::new("hostile", env!("CARGO_PKG_VERSION"))
            .description("Misbehaves on purpose, for migrun's sandbox tests")
            .connection(Need::read_only(
                "source",
                "a database the plugin must not write",
            ))
            .connection(Need::read_write("target", "holds the victim table").writes(["victim"]))
            .unit("setup", "creates victim(id, note) when absent")
            .unit(
                "misbehave",
                "inserts row 1000 into victim, then misbehaves as configured",
            )
            .config_key(
                ConfigKey::new(
                    "behaviour",
                    "loop, alloc, recurse, trap, write-readonly or ok",
                )
                .required(),
            )
    }

    fn configure(config: &Config) -> Result<Self> {
        let name = config.require("behaviour")?;
        let Some((_, behaviour)) = BEHAVIOURS.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = BEHAVIOURS.iter().map(|(n, _)| *n).collect();
            bail!(
                "unknown behaviour {name:?}; expected one of {}",
                known.join(", ")
            );
        };
        Ok(Hostile {
            behaviour: *behaviour,
        })
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        match unit {
            "setup" => setup(),
            "misbehave" => misbehave(self.behaviour),
            other => bail!("unknown unit {other:?}"),
        }
    }
}

fn setup() -> Result<()> {
    let target = Connection::open("target")?;
    target.execute(
        "CREATE TABLE IF NOT EXISTS victim (id integer primary key, note text)",
        params![],
    )?;
    Ok(())
}

fn misbehave(behaviour: Behaviour) -> Result<()> {
    let target = Connection::open("target")?;
    let sql = format!(
        "INSERT INTO victim (id, note) VALUES ({}, {})",
        target.placeholder(1),
        target.placeholder(2)
    );
    target.execute(&sql, params![1000, "should be rolled back"])?;

    match behaviour {
        Behaviour::Loop => spin(),
        Behaviour::Alloc => hoard(),
        Behaviour::Recurse => {
            black_box(descend(0));
            bail!("unbounded recursion returned")
        }
        Behaviour::Trap => panic!("hostile plugin: deliberate panic in unit misbehave"),
        Behaviour::WriteReadonly => write_through_source(),
        Behaviour::Escape => probe_the_sandbox(),
        Behaviour::Ok => Ok(()),
    }
}

/// Tries every door WASI has besides the host's capabilities and reports each
/// as a check (`ok` = the door was shut); logs what the clocks and randomness
/// gave, so the test can compare them with the run's seeds. The unit fails if
/// any door opened.
fn probe_the_sandbox() -> Result<()> {
    use std::io::Read;
    let mut opened = Vec::new();
    let mut door = |name: &str, shut: bool, detail: String| {
        migrun_sdk::check(name, shut, &detail);
        if !shut {
            opened.push(name.to_owned());
        }
    };
    let read = std::fs::read_to_string("/etc/passwd");
    door(
        "files cannot be read",
        read.is_err(),
        format!("{:?}", read.map(|s| s.len())),
    );
    let cwd = std::fs::read_dir(".");
    door(
        "no directory is visible",
        cwd.is_err(),
        format!("{:?}", cwd.map(|_| "listed")),
    );
    let written = std::fs::write("escaped.txt", b"out");
    door(
        "files cannot be written",
        written.is_err(),
        format!("{written:?}"),
    );
    let env: Vec<(String, String)> = std::env::vars().collect();
    door(
        "environment is empty",
        env.is_empty(),
        format!("{} variables", env.len()),
    );
    let args: Vec<String> = std::env::args().collect();
    door("arguments are empty", args.is_empty(), format!("{args:?}"));
    let tcp = std::net::TcpStream::connect("127.0.0.1:5432");
    door(
        "network is unreachable",
        tcp.is_err(),
        format!("{:?}", tcp.map(|_| "connected")),
    );
    let dns = std::net::ToSocketAddrs::to_socket_addrs("localhost:80");
    door(
        "names cannot be resolved",
        dns.is_err(),
        format!("{:?}", dns.map(|a| a.count())),
    );
    let mut stdin = String::new();
    let read_stdin = std::io::stdin().read_to_string(&mut stdin);
    door(
        "stdin is empty",
        stdin.is_empty(),
        format!("{read_stdin:?}"),
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut bytes = [0u8; 8];
    let random = getrandom_like(&mut bytes);
    migrun_sdk::info!(wall_clock_nanos = now, random = random; "the sandbox's clock and randomness");
    if opened.is_empty() {
        Ok(())
    } else {
        bail!("the sandbox let through: {}", opened.join(", "))
    }
}

/// Eight bytes from WASI's random source, through std's hasher seeding (no extra crate).
fn getrandom_like(_buf: &mut [u8; 8]) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}

/// Spins forever. `black_box` makes every iteration observable, so the
/// optimizer can neither delete the loop nor fold the counter.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocates 1 MiB at a time forever, writing one byte per 4 KiB page so the
/// memory is really committed, and keeping every block alive.
fn hoard() -> ! {
    const BLOCK: usize = 1 << 20;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        // Zeroed memory may come from calloc without a write; the loop below
        // writes into every page regardless.
        let mut block = vec![0u8; BLOCK];
        for (i, byte) in block.iter_mut().enumerate().step_by(4096) {
            *byte = black_box(i as u8 | 1);
        }
        blocks.push(black_box(block));
        black_box(&blocks);
    }
}

/// Recurses without end; each frame keeps a 1 KiB buffer alive across the
/// call, and the condition hidden behind `black_box` keeps the compiler from
/// proving the recursion unconditional or turning it into a loop.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    let frame = black_box([depth; 128]);
    if black_box(true) {
        descend(depth + 1).wrapping_add(frame[depth as usize % 128])
    } else {
        frame[0]
    }
}

/// Tries two writes through the read-only `source`; returns the session's refusal.
///
/// `CREATE TABLE` goes first: it needs no existing table, so its error is the
/// read-only refusal itself on every dialect. The source's unit transaction
/// is `READ ONLY`, and on PostgreSQL the first error aborts it, so whatever
/// comes second may only report "transaction aborted".
fn write_through_source() -> Result<()> {
    let source = Connection::open("source")?;
    let create = source.execute("CREATE TABLE x(i int)", params![]);
    let sql = format!(
        "INSERT INTO victim (id, note) VALUES ({}, {})",
        source.placeholder(1),
        source.placeholder(2)
    );
    let insert = source.execute(
        &sql,
        params![1001, "written through a read-only connection"],
    );

    let mut accepted = Vec::new();
    let mut refusals = Vec::new();
    for (what, result) in [("CREATE TABLE x", create), ("INSERT INTO victim", insert)] {
        match result {
            Ok(_) => accepted.push(what),
            Err(Error::Database(e)) => {
                warn!(statement = what, kind = e.kind; "refused: {}", e.message);
                refusals.push(e);
            }
            Err(other) => return Err(other),
        }
    }
    if !accepted.is_empty() {
        bail!(
            "the read-only connection `source` accepted: {}",
            accepted.join(", ")
        );
    }
    // Prefer a read-only refusal over "no such table" or "transaction aborted".
    let refusal = match refusals
        .iter()
        .position(|e| e.kind == DbErrorKind::ReadOnly)
    {
        Some(i) => refusals.swap_remove(i),
        None => refusals.swap_remove(0),
    };
    Err(Error::Database(refusal))
}

migrun_sdk::export_plugin!(Hostile);
