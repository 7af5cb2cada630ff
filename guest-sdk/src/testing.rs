//! Test a plugin from its own `cargo test`, against the real `migrun` binary.
//!
//! Compiled only for targets other than `wasm32` (the tests run natively; the plugin is
//! built for `wasm32-wasip2` by a nested `cargo build`). It drives two commands, so a
//! test checks what an operator would see:
//!
//! - `migrun sql [--json] <connection> <SQL>...` sets up tables and reads them back;
//! - `migrun <plugin.wasm> --json [--dry-run] [--set k=v]` runs the plugin and returns its
//!   report (`migrun.run-report/1`).
//!
//! The `migrun` binary is the one the `MIGRUN` environment variable names, else the first
//! `migrun` on `PATH`. Each [`Workspace`] is a fresh temporary folder: without a
//! `migrun.toml` every connection is the embedded SQLite file
//! `migrun-data/<connection>.sqlite` there; [`Workspace::db`] points a connection at a
//! URL instead (`postgres://…`, `mysql://…`), and [`Workspace::config`] writes a whole
//! `migrun.toml`.
//!
//! ```no_run
//! // tests/plugin.rs of a plugin crate
//! use migrun_sdk::testing::{Component, Run, Workspace};
//!
//! #[test]
//! fn fills_the_table() {
//!     let plugin = Component::build(env!("CARGO_MANIFEST_DIR")); // cargo build --target wasm32-wasip2
//!     let ws = Workspace::new(&plugin);
//!     ws.sql("target", ["CREATE TABLE t (id INTEGER PRIMARY KEY)"]);
//!     let report = ws.run(Run::new().set("count", 5));
//!     report.expect_success();
//!     assert!(report.check("every row is there").unwrap().ok);
//!     let n: i64 = ws.sql("target", ["SELECT COUNT(*) FROM t"]).scalar();
//!     assert_eq!(n, 5);
//! }
//! ```
//!
//! Functions whose failure is the test's failure panic with a message that says what
//! went wrong (a `migrun sql` statement refused, a build that failed, no `migrun` found);
//! [`Workspace::try_sql`] returns SQL errors instead, for tests that expect one. A run
//! that fails is not a panic: [`Workspace::run`] returns its report, exit code included.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::Value as Json;

/// The environment variable naming the `migrun` binary to drive.
pub const MIGRUN_ENV: &str = "MIGRUN";

/// The `migrun` binary: `$MIGRUN`, else `migrun` found on `PATH`.
///
/// # Panics
///
/// When neither exists, with a message saying how to provide one.
pub fn migrun_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(MIGRUN_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{MIGRUN_ENV}={} is not a file: point it at the migrun binary",
            path.display()
        );
        return path;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("migrun"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no migrun binary: set {MIGRUN_ENV}=/path/to/migrun or put migrun on PATH \
             (`cargo install --path host` in a migrun checkout installs it)"
        )
    })
}

/// A plugin component (`.wasm`) to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    path: PathBuf,
}

impl Component {
    /// The component at `path`, built beforehand.
    pub fn at(path: impl Into<PathBuf>) -> Component {
        Component { path: path.into() }
    }

    /// Builds the plugin crate in `crate_dir` (pass `env!("CARGO_MANIFEST_DIR")`) with
    /// `cargo build --release --target wasm32-wasip2`, once per test process, and returns
    /// its component. The build uses the same cargo, target directory (`CARGO_TARGET_DIR`
    /// or the crate's) and lock file as the test, so it is quick after the first time.
    ///
    /// # Panics
    ///
    /// When the build fails (with cargo's diagnostics) or produces no component.
    pub fn build(crate_dir: impl AsRef<Path>) -> Component {
        static BUILT: OnceLock<Mutex<HashMap<PathBuf, Result<PathBuf, String>>>> = OnceLock::new();
        let dir = crate_dir.as_ref().to_owned();
        // Held while building: tests running in parallel wait for the one build.
        let mut built = BUILT
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let result = built
            .entry(dir.clone())
            .or_insert_with(|| build_component(&dir))
            .clone();
        match result {
            Ok(path) => Component { path },
            Err(e) => panic!("{e}"),
        }
    }

    /// Where the component is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `cargo build --release --target wasm32-wasip2` of the crate in `dir`; the `.wasm` it wrote.
fn build_component(dir: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(dir).args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--message-format=json-render-diagnostics",
    ]);
    // What cargo set for the test process describes the test build, not this one (the
    // user's own `CARGO_TARGET_DIR`, `CARGO_PROFILE_*`, … stay).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&&*key);
        if set_by_cargo {
            cmd.env_remove(&*key);
        }
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        return Err(format!(
            "building the plugin in {} failed (cargo build --release --target wasm32-wasip2; \
             `rustup target add wasm32-wasip2` if the target is missing):\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let manifest = dir.join("Cargo.toml");
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Json>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["manifest_path"].as_str().is_some_and(|p| {
                Path::new(p).canonicalize().ok().as_deref() == Some(manifest.as_path())
            })
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            format!(
                "cargo built {} but wrote no .wasm: is it a `crate-type = [\"cdylib\"]` library?",
                dir.display()
            )
        })
}

/// A SQL statement `migrun sql` refused (exit code 1): nothing of the call was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// migrun's exit code.
    pub code: i32,
    /// Its message (standard error).
    pub message: String,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "migrun sql exited {}: {}",
            self.code,
            self.message.trim()
        )
    }
}

impl std::error::Error for SqlError {}

/// The result of the last statement of a `migrun sql` call (`migrun.sql/1`).
///
/// Values are JSON: integers and floats as numbers, text as strings, NULL as `null`,
/// booleans as `true`/`false`, bytes as `{"hex": "…"}`, other typed values (dates,
/// decimals, uuids) as their text.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlResult {
    /// The column names.
    pub columns: Vec<String>,
    /// The rows, one JSON value per column.
    pub rows: Vec<Vec<Json>>,
    /// Rows the last statement affected (inserted, updated, deleted).
    pub rows_affected: u64,
}

impl SqlResult {
    /// Every row decoded into `T`, usually a tuple: `Vec<(i64, Option<String>)>`.
    ///
    /// # Panics
    ///
    /// When a row does not decode, naming it.
    pub fn rows_as<T: DeserializeOwned>(&self) -> Vec<T> {
        self.rows
            .iter()
            .map(|row| {
                serde_json::from_value(Json::Array(row.clone())).unwrap_or_else(|e| {
                    panic!(
                        "cannot decode the row {row:?} of ({}): {e}",
                        self.columns.join(", ")
                    )
                })
            })
            .collect()
    }

    /// The first column of the first row, decoded into `T` (`SELECT COUNT(*) …`).
    ///
    /// # Panics
    ///
    /// When there is no row or the value does not decode.
    pub fn scalar<T: DeserializeOwned>(&self) -> T {
        let value = self
            .rows
            .first()
            .and_then(|row| row.first())
            .unwrap_or_else(|| panic!("the query returned no rows"));
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("cannot decode {value} as the query's value: {e}"))
    }
}

/// How to run the plugin: `--set`, `--dry-run`, `--only` and any other arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Run {
    /// A plain run (`migrun <plugin.wasm> --json`).
    pub fn new() -> Run {
        Run::default()
    }

    /// Sets a config key (`--set key=value`).
    pub fn set(self, key: &str, value: impl fmt::Display) -> Run {
        self.arg("--set").arg(format!("{key}={value}"))
    }

    /// A dry-run (`--dry-run`): everything rolled back.
    pub fn dry_run(self) -> Run {
        self.arg("--dry-run")
    }

    /// Only this unit (`--only unit`).
    pub fn only(self, unit: &str) -> Run {
        self.arg("--only").arg(unit)
    }

    /// Any other argument, passed as is.
    pub fn arg(mut self, arg: impl Into<String>) -> Run {
        self.args.push(arg.into());
        self
    }

    /// An environment variable for the run (for `${VAR}` in a `migrun.toml`).
    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// One check of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Its name.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// The plugin's detail.
    pub detail: String,
}

/// One message the plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The text.
    pub message: String,
    /// Its `key = value` fields, in order.
    pub fields: Vec<(String, String)>,
}

/// What a run printed: its `--json` report (`migrun.run-report/1`), exit code and stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// migrun's exit code: 0 success, 1 a unit failed, 3 a check failed, … (its README).
    pub exit_code: i32,
    /// The whole report, for what the helpers below do not cover.
    pub json: Json,
    /// Standard error: progress lines and errors.
    pub stderr: String,
}

impl Report {
    /// Whether the run succeeded (exit code 0).
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0
    }

    /// Panics, showing the failure and stderr, unless the run succeeded.
    #[track_caller]
    pub fn expect_success(&self) -> &Report {
        self.expect_exit(0)
    }

    /// Panics, showing the failure and stderr, unless migrun exited with `code`.
    #[track_caller]
    pub fn expect_exit(&self, code: i32) -> &Report {
        assert_eq!(
            self.exit_code, code,
            "migrun exited {} (expected {code}); failure: {}\n--- stderr\n{}",
            self.exit_code, self.json["failure"], self.stderr
        );
        self
    }

    /// Every check, in the order the plugin reported them.
    pub fn checks(&self) -> Vec<Check> {
        array(&self.json["checks"])
            .iter()
            .map(|c| Check {
                name: text(&c["name"]),
                ok: c["ok"] == true,
                detail: text(&c["detail"]),
            })
            .collect()
    }

    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<Check> {
        self.checks().into_iter().find(|c| c.name == name)
    }

    /// The messages the plugin logged at `level` (`"warn"`, `"info"`, …).
    pub fn messages(&self, level: &str) -> Vec<Message> {
        array(&self.json["messages"])
            .iter()
            .filter(|m| m["level"] == level)
            .map(|m| Message {
                level: text(&m["level"]),
                message: text(&m["message"]),
                fields: array(&m["fields"])
                    .iter()
                    .map(|f| (text(&f[0]), text(&f[1])))
                    .collect(),
            })
            .collect()
    }

    /// The report of the unit called `name` (its `status`, `writes`, `note`, `error`, …).
    pub fn unit(&self, name: &str) -> Option<&Json> {
        array(&self.json["units"])
            .iter()
            .find(|u| u["name"] == name)
    }

    /// The status of the unit called `name`: `committed`, `dry-run`, `failed`, `skipped`, …
    pub fn unit_status(&self, name: &str) -> Option<&str> {
        self.unit(name).and_then(|u| u["status"].as_str())
    }
}

fn array(value: &Json) -> &[Json] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// A temporary folder to run a plugin in, removed when dropped (kept when the environment
/// variable `MIGRUN_TEST_KEEP` is set, to look at after a failure).
#[derive(Debug)]
pub struct Workspace {
    dir: PathBuf,
    component: PathBuf,
    migrun: PathBuf,
    dbs: Vec<(String, String)>,
}

impl Workspace {
    /// A fresh folder for runs of `component`, with no `migrun.toml`: every connection is
    /// an embedded SQLite file `migrun-data/<connection>.sqlite` in it.
    ///
    /// # Panics
    ///
    /// When no `migrun` binary is found (see [`migrun_binary`]) or the folder cannot be made.
    pub fn new(component: &Component) -> Workspace {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "migrun-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("migrun-data"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Workspace {
            dir,
            component: std::path::absolute(component.path())
                .unwrap_or_else(|_| component.path().to_owned()),
            migrun: migrun_binary(),
            dbs: Vec::new(),
        }
    }

    /// Points `connection` at `url` (`--db connection=url`) for every later `sql` and `run`.
    pub fn db(mut self, connection: &str, url: &str) -> Workspace {
        self.dbs.push((connection.to_owned(), url.to_owned()));
        self
    }

    /// Writes `migrun.toml` into the folder: later commands read it (paths in it are
    /// relative to the folder).
    pub fn config(&self, toml: &str) -> &Workspace {
        let path = self.dir.join("migrun.toml");
        std::fs::write(&path, toml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        self
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Runs `statements` on `connection`, in order, in one transaction, and returns the
    /// last one's rows.
    ///
    /// # Panics
    ///
    /// When a statement fails (nothing was committed), with the database's message.
    #[track_caller]
    pub fn sql<I, S>(&self, connection: &str, statements: I) -> SqlResult
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.try_sql(connection, statements)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`sql`](Self::sql), returning a failed statement as an error.
    pub fn try_sql<I, S>(&self, connection: &str, statements: I) -> Result<SqlResult, SqlError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut args = vec!["sql".to_owned(), "--json".to_owned()];
        args.extend(self.db_args());
        args.push(connection.to_owned());
        args.extend(statements.into_iter().map(|s| s.as_ref().to_owned()));
        let output = self.migrun(&args, &[]);
        let code = output.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if code != 0 {
            return Err(SqlError {
                code,
                message: stderr,
            });
        }
        let json: Json = serde_json::from_slice(&output.stdout).map_err(|e| SqlError {
            code,
            message: format!(
                "its output is not migrun.sql/1 JSON ({e}): {}{stderr}",
                String::from_utf8_lossy(&output.stdout)
            ),
        })?;
        Ok(SqlResult {
            columns: array(&json["columns"]).iter().map(text).collect(),
            rows: array(&json["rows"])
                .iter()
                .map(|row| array(row).to_vec())
                .collect(),
            rows_affected: json["rows_affected"].as_u64().unwrap_or(0),
        })
    }

    /// Runs the plugin (`migrun <component> --json …`) and returns its report, whatever
    /// the exit code.
    ///
    /// # Panics
    ///
    /// When migrun cannot be started or prints no JSON report (a refused argument: exit
    /// code 2 with a message on stderr).
    pub fn run(&self, run: Run) -> Report {
        let mut args = vec![self.component.display().to_string(), "--json".to_owned()];
        args.extend(self.db_args());
        args.extend(run.args);
        let output = self.migrun(&args, &run.env);
        let exit_code = output.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "migrun {} exited {exit_code} without a JSON report ({e})\n--- stdout\n{}\n--- stderr\n{stderr}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout)
            )
        });
        Report {
            exit_code,
            json,
            stderr,
        }
    }

    fn db_args(&self) -> Vec<String> {
        self.dbs
            .iter()
            .flat_map(|(name, url)| ["--db".to_owned(), format!("{name}={url}")])
            .collect()
    }

    fn migrun(&self, args: &[String], env: &[(String, String)]) -> Output {
        Command::new(&self.migrun)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("MIGRUN_LOG")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.migrun.display()))
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if std::env::var_os("MIGRUN_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
