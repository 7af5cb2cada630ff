//! Running the real `migrun` binary as a user would, in a folder of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use migrun::runtime::cache::CACHE_DIR_ENV;

/// The outcome of one `migrun` invocation.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output (the report).
    pub stdout: String,
    /// Standard error (progress and errors).
    pub stderr: String,
}

impl Outcome {
    /// Panics with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// stdout and stderr together, for message assertions.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics unless the combined output contains `needle`.
    #[track_caller]
    pub fn expect_output(&self, needle: &str) -> &Self {
        assert!(
            self.all().contains(needle),
            "expected output to contain {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The `--json` report.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A working folder for a scenario, with its own `migrun.toml`.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    /// An empty working folder.
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `migrun.toml`.
    pub fn config(&self, toml: &str) -> PathBuf {
        let path = self.dir.path().join("migrun.toml");
        std::fs::write(&path, toml).expect("write config");
        path
    }

    /// Starts `migrun` with `args` in this folder, stdout and stderr piped, to be stopped mid-run.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.spawn_with_env(args, &[])
    }

    /// [`Workspace::spawn`] with environment variables set (a Kubernetes pod's, say).
    pub fn spawn_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_migrun"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MIGRUN_LOG")
            .env(CACHE_DIR_ENV, self.cache_dir())
            .envs(vars.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn migrun")
    }

    /// Runs `migrun` with `args` in this folder.
    pub fn migrun(&self, args: &[&str]) -> Outcome {
        self.migrun_with_cache(args, &self.cache_dir())
    }

    /// Runs `migrun` with `args` in this folder, with environment variables set and
    /// `input` on its standard input (what a plugin must never see).
    pub fn migrun_with_input(&self, args: &[&str], vars: &[(&str, &str)], input: &[u8]) -> Outcome {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_migrun"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MIGRUN_LOG")
            .env(CACHE_DIR_ENV, self.cache_dir())
            .envs(vars.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn migrun");
        let mut stdin = child.stdin.take().expect("piped stdin");
        // migrun may never read it: a closed pipe is not an error here.
        let _ = stdin.write_all(input);
        drop(stdin);
        let output = child.wait_with_output().expect("wait for migrun");
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `migrun` with `args` in this folder on a pseudo-terminal (util-linux `script`),
    /// as an operator at a terminal would; the screen is the output's stdout. `None` when
    /// `script` is missing (skipped, or a failure under `MIGRUN_REQUIRE_DBS=1`).
    pub fn migrun_on_terminal(&self, args: &[&str]) -> Option<std::process::Output> {
        let mut command = env!("CARGO_BIN_EXE_migrun").to_owned();
        for arg in args {
            command.push(' ');
            command.push_str(arg);
        }
        let ran = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(self.dir.path())
            .env(CACHE_DIR_ENV, self.cache_dir())
            .env_remove("MIGRUN_LOG")
            .env_remove("NO_COLOR")
            .stdin(std::process::Stdio::null())
            .output();
        match ran {
            Ok(output) => Some(output),
            Err(e) => {
                assert!(
                    !crate::support::database::require_dbs(),
                    "util-linux `script` is needed for the terminal tests: {e}"
                );
                eprintln!("skipped: no `script` ({e})");
                None
            }
        }
    }

    /// The compiled-component cache of this workspace's runs (its own, so
    /// that no test reads what another test or an earlier build compiled).
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join(".migrun-cache")
    }

    /// Runs `migrun` with `args` in this folder, with `MIGRUN_CACHE_DIR` set to `cache`.
    pub fn migrun_with_cache(&self, args: &[&str], cache: &Path) -> Outcome {
        let output = Command::new(env!("CARGO_BIN_EXE_migrun"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MIGRUN_LOG")
            .env(CACHE_DIR_ENV, cache)
            .output()
            .expect("run migrun");
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Reads a spawned child's stderr until a line contains `needle` (then keeps draining it in
/// the background so the child never blocks on a full pipe); panics if the child ends first.
pub fn wait_for_line(child: &mut std::process::Child, needle: &str) {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if line.contains(needle) {
                    std::thread::spawn(move || for _ in lines.by_ref() {});
                    return;
                }
                seen.push(line);
            }
            _ => panic!(
                "migrun ended before printing {needle:?}; stderr:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// Waits until `child` prints a progress line of `task` (`  task: done/total (P%…`) at
/// `percent` or more — proof that rows were written (inside the unit's transaction)
/// before the test interrupts it, unlike the first line of a task, which says 0%.
pub fn wait_for_progress(child: &mut std::process::Child, task: &str, percent: u64) {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let prefix = format!("{task}: ");
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                let reached = line
                    .trim_start()
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.split_once(" ("))
                    .and_then(|(_, rest)| rest.split_once('%'))
                    .and_then(|(p, _)| p.parse::<u64>().ok())
                    .is_some_and(|p| p >= percent);
                if reached {
                    std::thread::spawn(move || for _ in lines.by_ref() {});
                    return;
                }
                seen.push(line);
            }
            _ => panic!(
                "migrun ended before {task} reached {percent}%; stderr:\n{}",
                seen.join("\n")
            ),
        }
    }
}
