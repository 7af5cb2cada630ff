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
//! - `probe_file`, `probe_port` (optional, for `escape`): a file the test planted on
//!   the host and a TCP port it listens on, so the test can check from the host side
//!   that neither was reached (the probe echoes whatever it obtained into its check
//!   details, so a leak would show in the report and the journal).
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
//! | `readonly-routes` | tries every route it knows to write through `source` or to end the unit's transaction early (list in [`routes`]); reports each as a check (`ok` = refused) and then fails on purpose | refuse every route; the unit (row 1000 included) is rolled back, so a route that escaped the unit transaction would leave row 1000 behind |
//! | `inject` | stores [`INJECTIONS`] as parameters in `victim` (ids 2000…), looks each up again by parameter, and looks one up in `source.secrets`; reports each as a check | commit: every payload stored verbatim, both tables intact |
//! | `oversized-param` | binds a 64 MiB text parameter (row 1001), then reads its length back | store it, or refuse it with the database's error (MariaDB: `max_allowed_packet`) |
//! | `oversized-row` | `query`s 80 MiB of result (one row on PostgreSQL and SQLite, 80 rows of 1 MiB on MariaDB, whose packets stop at 16 MiB) | refuse it with the host's `query` cap when the memory limit is lower |
//! | `cursor-million` | reads 1,000,000 generated rows (≈ 100 bytes each) from `source` through a cursor, checking their count and sum | succeed under a small memory limit |
//! | `query-million` | the same rows through a plain `query` | refuse it with the host's `query` cap, not exhaust memory |
//!
//! For `write-readonly` the source need not hold `victim`: the `CREATE
//! TABLE` needs no table and is refused by the session on every dialect,
//! while the `INSERT` may fail earlier with "no such table" (PostgreSQL and
//! SQLite resolve the table before checking for writes); the read-only
//! refusal is the one returned.

use std::hint::black_box;

use migrun_sdk::{
    Config, ConfigKey, Connection, DbErrorKind, Dialect, Error, Need, Plugin, PluginInfo, Result,
    bail, params, warn,
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
    ReadonlyRoutes,
    Inject,
    OversizedParam,
    OversizedRow,
    CursorMillion,
    QueryMillion,
}

const BEHAVIOURS: [(&str, Behaviour); 13] = [
    ("readonly-routes", Behaviour::ReadonlyRoutes),
    ("inject", Behaviour::Inject),
    ("oversized-param", Behaviour::OversizedParam),
    ("oversized-row", Behaviour::OversizedRow),
    ("cursor-million", Behaviour::CursorMillion),
    ("query-million", Behaviour::QueryMillion),
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
    probe: Probe,
}

/// What the test planted on the host for `escape` to reach for.
#[derive(Debug, Clone, Default)]
struct Probe {
    file: Option<String>,
    port: Option<u16>,
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
                    "loop, alloc, recurse, trap, write-readonly, escape, ok, readonly-routes, \
                     inject, oversized-param, oversized-row, cursor-million or query-million",
                )
                .required(),
            )
            .config_key(ConfigKey::new(
                "probe_file",
                "escape: a host file the plugin must not be able to read",
            ))
            .config_key(ConfigKey::new(
                "probe_port",
                "escape: a local TCP port the plugin must not be able to reach",
            ))
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
        let port = match config.get("probe_port") {
            Some(port) => Some(
                port.parse::<u16>()
                    .map_err(|e| Error::failed(format!("probe_port {port:?}: {e}")))?,
            ),
            None => None,
        };
        Ok(Hostile {
            behaviour: *behaviour,
            probe: Probe {
                file: config.get("probe_file").map(str::to_owned),
                port,
            },
        })
    }

    fn run_unit(&mut self, unit: &str) -> Result<()> {
        match unit {
            "setup" => setup(),
            "misbehave" => misbehave(self.behaviour, &self.probe),
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

fn misbehave(behaviour: Behaviour, probe: &Probe) -> Result<()> {
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
        Behaviour::Escape => probe_the_sandbox(probe),
        Behaviour::Ok => Ok(()),
        Behaviour::ReadonlyRoutes => try_every_route(&target),
        Behaviour::Inject => inject(&target),
        Behaviour::OversizedParam => oversized_param(&target),
        Behaviour::OversizedRow => oversized_row(&target),
        Behaviour::CursorMillion => million_rows(true),
        Behaviour::QueryMillion => million_rows(false),
    }
}

/// The file the file-writing routes aim at, per dialect (the test checks it never appears).
fn escape_file(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "/tmp/migrun-hostile-escape-postgres",
        Dialect::MySql => "/tmp/migrun-hostile-escape-mysql",
        _ => "/tmp/migrun-hostile-escape-sqlite",
    }
}

/// The routes around read-only access and the unit transaction, per dialect:
/// a name and the statements tried in order, on `source` unless the name
/// starts with `target:`. A route is refused when one of its statements fails.
///
/// The test prepares `source` with `secrets(id, v)`, a sequence
/// `secrets_seq` (PostgreSQL) and a function `bump_secrets()` that inserts
/// into `secrets` (PostgreSQL, MariaDB; plus a procedure `bump_proc()` on
/// MariaDB).
fn routes(dialect: Dialect) -> Vec<(&'static str, Vec<String>)> {
    const INSERT: &str = "INSERT INTO secrets (id, v) VALUES (666, 'escaped')";
    let file = escape_file(dialect);
    let w = |first: &str| vec![first.to_owned(), INSERT.to_owned()];
    let one = |only: String| vec![only];
    let mut routes = vec![
        ("target: COMMIT mid-unit", one("COMMIT".into())),
        ("target: ROLLBACK mid-unit", one("ROLLBACK".into())),
        ("target: BEGIN mid-unit", one("BEGIN".into())),
        ("COMMIT then write", w("COMMIT")),
        ("ROLLBACK then write", w("ROLLBACK")),
        ("END then write", w("END")),
        (
            "two statements in one string",
            one(format!("SELECT 1; {INSERT}")),
        ),
        ("plain write", one(INSERT.into())),
    ];
    match dialect {
        Dialect::Postgres => routes.extend([
            (
                "SET default_transaction_read_only = off",
                w("SET default_transaction_read_only = off"),
            ),
            (
                "SET SESSION CHARACTERISTICS … READ WRITE",
                w("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"),
            ),
            (
                "SET TRANSACTION READ WRITE",
                w("SET TRANSACTION READ WRITE"),
            ),
            (
                "set_config('transaction_read_only', 'off')",
                w("SELECT set_config('transaction_read_only', 'off', true)"),
            ),
            ("BEGIN READ WRITE", w("BEGIN READ WRITE")),
            (
                "SAVEPOINT / RELEASE then write",
                vec![
                    "SAVEPOINT s1".into(),
                    "RELEASE SAVEPOINT s1".into(),
                    INSERT.into(),
                ],
            ),
            (
                "PREPARE TRANSACTION",
                one("PREPARE TRANSACTION 'hostile'".into()),
            ),
            (
                "nextval() on a sequence",
                one("SELECT nextval('secrets_seq')".into()),
            ),
            (
                "a volatile function that writes",
                one("SELECT bump_secrets()".into()),
            ),
            (
                "SELECT … FOR UPDATE",
                one("SELECT id FROM secrets FOR UPDATE".into()),
            ),
            (
                "DO block that writes",
                one(format!("DO $$ BEGIN {INSERT}; END $$")),
            ),
            (
                "COPY … TO a server file",
                one(format!("COPY (SELECT 1) TO '{file}'")),
            ),
            (
                "COPY … FROM PROGRAM",
                one("COPY secrets (v) FROM PROGRAM 'id'".into()),
            ),
            (
                "pg_read_file()",
                one("SELECT pg_read_file('/etc/hostname')".into()),
            ),
            (
                "lo_export() to a server file",
                one(format!("SELECT lo_export(0, '{file}')")),
            ),
        ]),
        Dialect::MySql => routes.extend([
            (
                "SET SESSION TRANSACTION READ WRITE",
                w("SET SESSION TRANSACTION READ WRITE"),
            ),
            (
                "SET @@session.transaction_read_only = 0",
                w("SET @@session.transaction_read_only = 0"),
            ),
            (
                "SET SESSION tx_read_only = 0",
                w("SET SESSION tx_read_only = 0"),
            ),
            ("SET autocommit = 1", w("SET autocommit = 1")),
            (
                "target: SET autocommit = 1",
                one("SET autocommit = 1".into()),
            ),
            (
                "START TRANSACTION READ WRITE",
                w("START TRANSACTION READ WRITE"),
            ),
            (
                "SAVEPOINT / RELEASE then write",
                vec![
                    "SAVEPOINT s1".into(),
                    "RELEASE SAVEPOINT s1".into(),
                    INSERT.into(),
                ],
            ),
            ("XA START", one("XA START 'hostile'".into())),
            (
                "a function that writes",
                one("SELECT bump_secrets()".into()),
            ),
            ("a procedure that writes", one("CALL bump_proc()".into())),
            (
                "SELECT … FOR UPDATE",
                one("SELECT id FROM secrets FOR UPDATE".into()),
            ),
            (
                "PREPARE / EXECUTE dynamic SQL",
                vec![
                    format!("PREPARE s FROM '{}'", INSERT.replace('\'', "''")),
                    "EXECUTE s".into(),
                ],
            ),
            (
                "SELECT … INTO OUTFILE",
                one(format!("SELECT 1 INTO OUTFILE '{file}'")),
            ),
            (
                "SELECT … INTO DUMPFILE",
                one(format!("SELECT 1 INTO DUMPFILE '{file}'")),
            ),
            (
                "LOAD DATA INFILE",
                one("LOAD DATA INFILE '/etc/hostname' INTO TABLE secrets (v)".into()),
            ),
            (
                "LOAD_FILE()",
                one("SELECT LOAD_FILE('/etc/hostname')".into()),
            ),
            (
                "executable comment hiding a write",
                one(format!("/*! {INSERT} */")),
            ),
        ]),
        _ => routes.extend([
            ("PRAGMA query_only = OFF", w("PRAGMA query_only = OFF")),
            ("BEGIN IMMEDIATE", w("BEGIN IMMEDIATE")),
            (
                "SAVEPOINT / RELEASE then write",
                vec!["SAVEPOINT s1".into(), "RELEASE s1".into(), INSERT.into()],
            ),
            (
                "ATTACH another file",
                one(format!("ATTACH DATABASE '{file}' AS escape")),
            ),
            ("VACUUM INTO a file", one(format!("VACUUM INTO '{file}'"))),
            (
                "load_extension()",
                one("SELECT load_extension('/tmp/nothing')".into()),
            ),
            (
                "PRAGMA writable_schema then write",
                w("PRAGMA writable_schema = ON"),
            ),
        ]),
    }
    routes
}

/// Tries every route of [`routes`]; a check per route (`ok` = refused), then
/// fails on purpose, so the unit is rolled back: a route that had ended the
/// unit's transaction early would leave row 1000 behind.
fn try_every_route(target: &Connection) -> Result<()> {
    let source = Connection::open("source")?;
    let dialect = source.dialect();
    // On PostgreSQL the first error aborts the transaction: each route runs
    // inside a savepoint of its own so the next one is really tried.
    let savepoints = dialect == Dialect::Postgres;
    let mut accepted = Vec::new();
    let all = routes(dialect);
    for (name, statements) in &all {
        let (conn, label) = match name.strip_prefix("target: ") {
            Some(rest) => (target, rest),
            None => (&source, *name),
        };
        if savepoints {
            conn.execute("SAVEPOINT route", params![])?;
        }
        let mut refusal = None;
        for statement in statements {
            if let Err(e) = conn.execute(statement, params![]) {
                refusal = Some(e.to_string());
                break;
            }
        }
        if savepoints {
            conn.execute("ROLLBACK TO SAVEPOINT route", params![])?;
            conn.execute("RELEASE SAVEPOINT route", params![])?;
        }
        let detail = refusal
            .clone()
            .unwrap_or_else(|| format!("accepted: {}", statements.join(" ; ")));
        migrun_sdk::check(&format!("refused: {name}"), refusal.is_some(), &detail);
        if refusal.is_none() {
            accepted.push(label.to_owned());
        }
    }
    if accepted.is_empty() {
        bail!("probed {} routes; none got through", all.len())
    }
    bail!("routes that got through: {}", accepted.join(", "))
}

/// Classic injection payloads, bound as parameters: each must be stored and
/// found again verbatim.
pub const INJECTIONS: [&str; 12] = [
    "'; DROP TABLE victim; --",
    "' OR '1'='1",
    "Robert'); DROP TABLE secrets;--",
    "\\'; DROP TABLE victim; #",
    "$$; DROP TABLE victim; $$",
    "1; DELETE FROM victim",
    "\" OR \"\"=\"",
    "%' AND 1=0 UNION SELECT v FROM secrets --",
    "\u{2019}; DROP TABLE victim; --",
    "?",
    "$1",
    "/*! DROP TABLE victim */",
];

fn inject(target: &Connection) -> Result<()> {
    let p1 = target.placeholder(1);
    let p2 = target.placeholder(2);
    let insert = format!("INSERT INTO victim (id, note) VALUES ({p1}, {p2})");
    let lookup = format!("SELECT id FROM victim WHERE note = {p1}");
    let mut failures = Vec::new();
    for (i, payload) in INJECTIONS.iter().enumerate() {
        target.execute(&insert, params![2000 + i as i64, *payload])?;
    }
    for (i, payload) in INJECTIONS.iter().enumerate() {
        let ids: Vec<(i64,)> = target.query_as(&lookup, params![*payload])?;
        let ok = ids == [(2000 + i as i64,)];
        migrun_sdk::check(
            &format!("payload {i} found verbatim"),
            ok,
            &format!("{ids:?}"),
        );
        if !ok {
            failures.push(i);
        }
    }
    let source = Connection::open("source")?;
    let sql = format!(
        "SELECT COUNT(*) FROM secrets WHERE v = {}",
        source.placeholder(1)
    );
    let matched: i64 = source.query_scalar(&sql, params!["' OR '1'='1"])?;
    migrun_sdk::check(
        "a tautology bound as a parameter matches nothing",
        matched == 0,
        &format!("{matched} rows"),
    );
    if matched != 0 {
        failures.push(usize::MAX);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("injection payloads not stored verbatim: {failures:?}")
    }
}

/// The oversized parameter: 64 MiB of text.
const OVERSIZED: usize = 64 << 20;

fn oversized_param(target: &Connection) -> Result<()> {
    let big = "x".repeat(OVERSIZED);
    let sql = format!(
        "INSERT INTO victim (id, note) VALUES (1001, {})",
        target.placeholder(1)
    );
    target.execute(&sql, params![big])?;
    let stored: i64 =
        target.query_scalar("SELECT LENGTH(note) FROM victim WHERE id = 1001", params![])?;
    if stored as usize != OVERSIZED {
        bail!("stored {stored} bytes of {OVERSIZED}");
    }
    migrun_sdk::info!(bytes = stored; "the oversized value round-tripped");
    Ok(())
}

fn oversized_row(target: &Connection) -> Result<()> {
    let sql = match target.dialect() {
        Dialect::Postgres => "SELECT repeat('x', 80 * 1024 * 1024) AS big",
        // max_allowed_packet (16 MiB) turns a bigger REPEAT into NULL: 80 rows of 1 MiB instead.
        Dialect::MySql => "SELECT REPEAT('x', 1048576) AS big FROM seq_1_to_80",
        _ => "SELECT zeroblob(80 * 1024 * 1024) AS big",
    };
    let rows = target.query(sql, params![])?;
    bail!(
        "the host handed over {} rows of the oversized result",
        rows.len()
    )
}

/// One million rows of about 100 bytes each, generated by the server.
const MILLION: i64 = 1_000_000;

fn million_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => {
            "SELECT i::bigint AS i, repeat('x', 100) AS pad FROM generate_series(1, 1000000) AS i"
        }
        // MariaDB stops recursive CTEs at `max_recursive_iterations` (1000 by
        // default); its SEQUENCE engine generates the rows instead.
        Dialect::MySql => "SELECT seq AS i, REPEAT('x', 100) AS pad FROM seq_1_to_1000000",
        _ => {
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000000) \
             SELECT i, hex(zeroblob(50)) AS pad FROM s"
        }
    }
}

fn million_rows(through_cursor: bool) -> Result<()> {
    let source = Connection::open("source")?;
    let sql = million_sql(source.dialect());
    let (mut count, mut sum) = (0i64, 0i64);
    if through_cursor {
        for batch in source.cursor(sql, params![], 1000)? {
            for row in batch? {
                sum += row.get_at::<i64>(0)?;
                count += 1;
            }
        }
    } else {
        let rows = source.query(sql, params![])?;
        for row in rows.iter() {
            sum += row.get_at::<i64>(0)?;
            count += 1;
        }
    }
    let ok = count == MILLION && sum == MILLION * (MILLION + 1) / 2;
    migrun_sdk::check(
        "every generated row arrived once",
        ok,
        &format!("{count} rows, sum {sum}"),
    );
    if !ok {
        bail!("read {count} rows (sum {sum}) of {MILLION}");
    }
    Ok(())
}

/// Tries every door WASI has besides the host's capabilities and reports each
/// as a check (`ok` = the door was shut); logs what the clocks and randomness
/// gave, so the test can compare them with the run's seeds. The unit fails if
/// any door opened.
fn probe_the_sandbox(probe: &Probe) -> Result<()> {
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
    door("environment is empty", env.is_empty(), format!("{env:?}"));
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
        format!("{read_stdin:?}: {stdin:?}"),
    );
    if let Some(file) = &probe.file {
        let planted = std::fs::read(file);
        door(
            "the host's planted file cannot be read",
            planted.is_err(),
            format!(
                "{:?}",
                planted.map(|b| String::from_utf8_lossy(&b).into_owned())
            ),
        );
    }
    if let Some(port) = probe.port {
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port));
        door(
            "the host's listening port is unreachable",
            tcp.is_err(),
            format!("{:?}", tcp.map(|_| "connected")),
        );
    }

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
