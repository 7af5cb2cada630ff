//! Running the dialects' own dump and restore tools.
//!
//! Credentials never appear on a command line (where `ps` shows them): they
//! travel in the tools' environment variables (`PGPASSWORD`, `MYSQL_PWD`).
//! Output goes to a pipe the host drains into a file it created inside the
//! backup directory; input is streamed from such a file. A tool is never
//! given a path of its own to write.

use std::io::{Read, Write};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::BackupError;

/// A tool invocation: program, arguments and environment.
pub(crate) struct Tool {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Tool {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    fn failed(&self, message: impl Into<String>) -> BackupError {
        BackupError::Tool {
            tool: self.program.clone(),
            message: message.into(),
        }
    }

    /// Runs the tool, writing its standard output to `out`; returns the bytes written and their sha256.
    pub async fn run_into(&self, out: &mut impl Write) -> Result<(u64, String), BackupError> {
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| self.failed(format!("cannot start: {e}")))?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let errors = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let mut hash = Sha256::new();
        let mut bytes = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        let mut write_error = None;
        loop {
            let n = stdout
                .read(&mut buf)
                .await
                .map_err(|e| self.failed(format!("reading its output: {e}")))?;
            if n == 0 {
                break;
            }
            if let Err(e) = out.write_all(&buf[..n]) {
                write_error = Some(e);
                let _ = child.start_kill();
                break;
            }
            hash.update(&buf[..n]);
            bytes += n as u64;
        }
        let status = child.wait().await.map_err(|e| self.failed(e.to_string()))?;
        let stderr = errors.await.unwrap_or_default();
        if let Some(e) = write_error {
            return Err(BackupError::Storage {
                dir: String::new(),
                message: format!("writing {}'s output: {e}", self.program),
            });
        }
        out.flush().map_err(|e| BackupError::Storage {
            dir: String::new(),
            message: format!("writing {}'s output: {e}", self.program),
        })?;
        if !status.success() {
            return Err(self.failed(format!("{status}: {}", stderr.trim())));
        }
        Ok((bytes, hex::encode(hash.finalize())))
    }

    /// Runs the tool with `input` as its standard input.
    pub async fn run_from(&self, mut input: impl Read + Send + 'static) -> Result<(), BackupError> {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| self.failed(format!("cannot start: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let errors = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| self.failed(format!("reading the backup file: {e}")))?;
            if n == 0 {
                break;
            }
            // A tool that stopped reading has failed; its status says why.
            if stdin.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        drop(stdin);
        let status = child.wait().await.map_err(|e| self.failed(e.to_string()))?;
        let stderr = errors.await.unwrap_or_default();
        if !status.success() {
            return Err(self.failed(format!("{status}: {}", stderr.trim())));
        }
        Ok(())
    }
}

/// The major version a tool prints for `--version` (`pg_dump (PostgreSQL) 15.20` → 15), if it runs.
pub(crate) async fn tool_major_version(program: &str) -> Option<u32> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .filter_map(|w| w.split('.').next()?.parse::<u32>().ok())
        .next()
}

/// Whether `program` runs at all.
pub(crate) async fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// The parts of a database URL the tools need.
pub(crate) struct UrlParts {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: String,
}

impl UrlParts {
    /// Splits `url` (`scheme://user:password@host:port/database?…`).
    pub fn parse(url: &str) -> Result<UrlParts, BackupError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| BackupError::Database(format!("cannot parse the connection URL: {e}")))?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(UrlParts {
            host: parsed.host_str().map(str::to_owned),
            port: parsed.port(),
            user: (!parsed.username().is_empty()).then(|| decode(parsed.username())),
            password: parsed.password().map(decode),
            database: decode(parsed.path().trim_start_matches('/')),
        })
    }

    /// The environment of a libpq tool.
    pub fn libpq_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("PGDATABASE".to_owned(), self.database.clone())];
        if let Some(h) = &self.host {
            env.push(("PGHOST".into(), h.clone()));
        }
        if let Some(p) = self.port {
            env.push(("PGPORT".into(), p.to_string()));
        }
        if let Some(u) = &self.user {
            env.push(("PGUSER".into(), u.clone()));
        }
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD".into(), p.clone()));
        }
        env
    }

    /// Arguments and environment of a MariaDB client tool (the database is not included).
    pub fn mysql_args(&self) -> (Vec<String>, Vec<(String, String)>) {
        let mut args = Vec::new();
        if let Some(h) = &self.host {
            args.push(format!("--host={h}"));
            // `localhost` would mean the socket; the URL means TCP.
            args.push("--protocol=TCP".to_owned());
        }
        if let Some(p) = self.port {
            args.push(format!("--port={p}"));
        }
        if let Some(u) = &self.user {
            args.push(format!("--user={u}"));
        }
        let env = match &self.password {
            Some(p) => vec![("MYSQL_PWD".to_owned(), p.clone())],
            None => Vec::new(),
        };
        (args, env)
    }
}
