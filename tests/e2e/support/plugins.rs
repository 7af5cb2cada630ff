//! Building the guest plugins from source, once per test binary.
//!
//! Every plugin a test runs is compiled here, so a test never runs a stale or
//! checked-in binary:
//!
//! - Rust guests ([`plugin`]): the crates in the workspace (`plugins/*`,
//!   `tests/guests/*`), for `wasm32-wasip2`, with the same cargo and target
//!   directory as the tests.
//! - Python guests ([`python_plugin`]): componentize-py (PyPI, pinned in
//!   `plugins/accounts-merge-py/requirements.txt`) on `PATH`, with the checkout's
//!   `sdk/python` on its path (`-p`), against contract 0.2.0 (or another, [`python_plugin_against`]).
//! - JavaScript guests ([`js_plugin`]): written with the SDK (`sdk/js`, `@migrun/sdk`),
//!   bundled with esbuild and built by componentize-qjs (QuickJS, `--sync`) against the
//!   SDK's WIT (contract 0.2.0), as the folder's `npm run build` does, or by
//!   componentize-js (StarlingMonkey, [`js_plugin_on`]), with the tools of the
//!   folder's own `node_modules` (`npm install --no-save` by `scripts/guest-toolchains`,
//!   pinned by its `package-lock.json`). Guests written against raw bindings
//!   ([`js_raw_plugin`], e.g. the frozen 0.1.0 twin) are built without a bundle.
//!
//! Python and JavaScript components land in `target/guests/`. `scripts/test`
//! and `.ci/run` install both toolchains; when one is missing a test skips
//! that language with a note, unless `MIGRUN_REQUIRE_DBS=1` (CI), where it fails.

#![allow(
    dead_code,
    reason = "each test topic uses a different part of the fixture"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::database::require_dbs;

/// The crates built for the tests, by package name.
const GUESTS: &[&str] = &[
    "auth-consolidation",
    "accounts-merge",
    "multiplayer-etl",
    "expand-contract-rename",
    "expand-contract-table-rename",
    "fresh-baseline",
    "hostile",
    "future-contract",
    "work-units",
    "sql-script",
    "sql-attack",
    "noisy",
    "catch-all",
    "contract-v0-1-1",
    "contract-v0-2-0",
    "non-transactional",
    "structured-writes",
    "structured-writes-v2",
    "files-guest",
    "price-to-cents",
    "price-to-cents-v2",
    "table-copy",
    "price-cents-rust",
    "customers-copy-rust",
];

/// The pinned componentize-py, as `scripts/test` installs it.
pub const COMPONENTIZE_PY: &str = "componentize-py";

/// The workspace root (this checkout).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_owned()
}

/// The cargo target directory the tests build into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The contract's WIT folder.
pub fn wit_dir() -> PathBuf {
    workspace_root().join("guest-sdk/wit/v0.1.0")
}

/// A `cargo` command that does not inherit the variables cargo set for the
/// test build (the guest build has its own target and flags).
pub fn cargo_command() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUSTFLAGS");
    cmd
}

/// Builds every Rust guest (once) and returns the path of `package`'s component.
pub fn plugin(package: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let mut cmd = cargo_command();
        cmd.current_dir(workspace_root())
            .args(["build", "--release", "--target", "wasm32-wasip2"]);
        for p in GUESTS {
            cmd.args(["-p", p]);
        }
        let output = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "building the guest plugins failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    assert!(GUESTS.contains(&package), "{package} is not in GUESTS");
    let path = target_dir()
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A toolchain is missing: `None` (the caller skips) with a note, or a panic under `MIGRUN_REQUIRE_DBS=1`.
pub fn toolchain_missing<T>(what: &str) -> Option<T> {
    if require_dbs() {
        panic!("MIGRUN_REQUIRE_DBS=1 but {what}");
    }
    super::skips::skipped(&format!("{what} (scripts/test installs it)"));
    None
}

/// Whether `program --version` runs.
pub fn has_program(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a build command; panics with its output unless it succeeds.
pub fn run_build(what: &str, cmd: &mut Command) {
    let started = std::time::Instant::now();
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    assert!(
        output.status.success(),
        "{what} failed ({:?})\n--- stdout\n{}\n--- stderr\n{}",
        cmd,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("built {what} in {:.1}s", started.elapsed().as_secs_f64());
}

/// Builds a component at most once per test process: `key` names it, `build`
/// writes it to the path it is given. `None` when its toolchain is missing.
fn build_once(key: &str, build: impl FnOnce(&Path) -> Option<()>) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<String, Option<PathBuf>>>> = OnceLock::new();
    // Held while building: one guest toolchain at a time (two cores).
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = built.get(key) {
        return found.clone();
    }
    let out = target_dir()
        .join("guests")
        .join(format!("{}.wasm", key.replace('-', "_")));
    std::fs::create_dir_all(out.parent().expect("a parent")).expect("create target/guests");
    // Written under a name of this process's own, then renamed into place: test
    // processes sharing the target directory never read a half-written file.
    let partial = out.with_extension(format!("{}.partial.wasm", std::process::id()));
    let result = build(&partial).map(|()| {
        std::fs::rename(&partial, &out)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", partial.display()));
        out
    });
    built.insert(key.to_owned(), result.clone());
    result
}

/// The Python SDK (`sdk/python`, package `migrun_sdk`), put on componentize-py's path
/// with `-p` so a build bundles this checkout's SDK, never one pip installed elsewhere.
pub fn python_sdk_dir() -> PathBuf {
    workspace_root().join("sdk/python")
}

/// Builds the Python plugin in `folder` (relative to the workspace root; its
/// module is `app`) with componentize-py against contract 0.2.0, with this checkout's
/// `migrun_sdk` on the path, once. `None` when componentize-py is missing.
pub fn python_plugin(folder: &str) -> Option<PathBuf> {
    python_plugin_against(folder, "v0.2.0")
}

/// Builds a Python plugin against the WIT of `version` (`v0.1.0`, `v0.2.0`) of
/// `guest-sdk/wit`, as [`python_plugin`] does; the SDK is on the path whatever the
/// version (a 0.1.0 plugin does not import it).
pub fn python_plugin_against(folder: &str, version: &str) -> Option<PathBuf> {
    let dir = workspace_root().join(folder);
    let key = dir
        .file_name()
        .expect("a folder name")
        .to_string_lossy()
        .into_owned();
    build_once(&key, |out| {
        if !has_program(COMPONENTIZE_PY) {
            return toolchain_missing(
                "componentize-py is not installed (pip install -r plugins/accounts-merge-py/requirements.txt)",
            );
        }
        let mut cmd = Command::new(COMPONENTIZE_PY);
        cmd.current_dir(&dir)
            .arg("-d")
            .arg(workspace_root().join("guest-sdk/wit").join(version))
            .args(["-w", "migration", "componentize", "app", "-p", "."])
            .arg("-p")
            .arg(python_sdk_dir())
            .arg("-o")
            .arg(out);
        run_build(&format!("{folder} (componentize-py, {version})"), &mut cmd);
        Some(())
    })
}

/// The componentize-js of a JavaScript plugin folder, installed by `scripts/guest-toolchains`.
pub fn componentize_js(dir: &Path) -> PathBuf {
    dir.join("node_modules/.bin/componentize-js")
}

/// The folder whose `node_modules` holds the JavaScript toolchain for the guest in `dir`:
/// its own, else `plugins/accounts-merge-js`'s (test guests have none of their own).
fn js_tools(dir: &Path) -> PathBuf {
    if dir.join("node_modules").is_dir() {
        dir.to_owned()
    } else {
        workspace_root().join("plugins/accounts-merge-js")
    }
}

/// The engine a JavaScript plugin is built on (see `sdk/js/src/engine.js`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsEngine {
    /// componentize-qjs (QuickJS): the scaffold's and the twins' `npm run build`.
    QuickJs,
    /// componentize-js (StarlingMonkey): exact 64-bit integers (BigInt) and async units.
    StarlingMonkey,
}

/// Builds the JavaScript plugin in `folder` on QuickJS, as its `npm run build` does
/// (see [`js_plugin_on`]).
pub fn js_plugin(folder: &str) -> Option<PathBuf> {
    js_plugin_on(folder, JsEngine::QuickJs)
}

/// Builds the JavaScript plugin in `folder` (relative to the workspace root; its module
/// is `plugin.js`, importing `@migrun/sdk`) once per engine: esbuild bundles the module
/// with the SDK (the contract's imports stay external), then componentize-qjs
/// (`--sync`) or componentize-js builds the bundle against the SDK's WIT. A folder
/// without a `node_modules` of its own (a test guest) uses `plugins/accounts-merge-js`'s,
/// SDK included. `None` when Node or that `node_modules` is missing.
pub fn js_plugin_on(folder: &str, engine: JsEngine) -> Option<PathBuf> {
    let dir = workspace_root().join(folder);
    let name = dir
        .file_name()
        .expect("a folder name")
        .to_string_lossy()
        .into_owned();
    let key = match engine {
        JsEngine::QuickJs => name,
        JsEngine::StarlingMonkey => format!("{name}-starlingmonkey"),
    };
    build_once(&key, |out| {
        if !has_program("node") {
            return toolchain_missing("Node.js is not installed");
        }
        let tools = js_tools(&dir);
        let (tool, esbuild) = (
            match engine {
                JsEngine::QuickJs => tools.join("node_modules/.bin/componentize-qjs"),
                JsEngine::StarlingMonkey => componentize_js(&tools),
            },
            tools.join("node_modules/.bin/esbuild"),
        );
        if !tool.exists() || !esbuild.exists() {
            return toolchain_missing(&format!(
                "{} or {} is missing (`scripts/guest-toolchains` installs them)",
                tool.display(),
                esbuild.display()
            ));
        }
        let bundle = out.with_extension("bundle.js");
        let mut bundling = Command::new(esbuild);
        bundling
            .current_dir(&dir)
            // Where `@migrun/sdk` resolves from when the folder has no node_modules.
            .env("NODE_PATH", tools.join("node_modules"))
            .args([
                "plugin.js",
                "--bundle",
                "--format=esm",
                "--platform=neutral",
                "--external:migrun:*",
                "--log-level=warning",
            ])
            .arg(format!("--outfile={}", bundle.display()));
        run_build(&format!("{folder} (esbuild)"), &mut bundling);
        let wit = tools.join("node_modules/@migrun/sdk/wit");
        let mut cmd = Command::new(tool);
        cmd.current_dir(&dir);
        match engine {
            JsEngine::QuickJs => {
                cmd.arg("--wit")
                    .arg(&wit)
                    .args(["--world", "migration", "--sync", "--js"])
                    .arg(&bundle)
                    .arg("-o")
                    .arg(out);
            }
            JsEngine::StarlingMonkey => starlingmonkey_build(&mut cmd, &bundle, &wit, out),
        }
        run_build(&format!("{folder} ({engine:?})"), &mut cmd);
        let _ = std::fs::remove_file(&bundle);
        Some(())
    })
}

/// componentize-js's arguments: `entry` against the world `migration` of `wit`, without
/// StarlingMonkey's HTTP support (it would import `wasi:http`, which migrun does not grant).
fn starlingmonkey_build(cmd: &mut Command, entry: &Path, wit: &Path, out: &Path) {
    cmd.arg(entry)
        .arg("--wit")
        .arg(wit)
        .args([
            "--world-name",
            "migration",
            "-d",
            "http",
            "fetch-event",
            "-o",
        ])
        .arg(out);
}

/// Builds a JavaScript guest written against the raw bindings of contract `version`
/// (`plugin.js` in `folder`, no SDK, no bundle) once, with the componentize-js of
/// `plugins/accounts-merge-js`. `None` when Node or that toolchain is missing.
pub fn js_raw_plugin(folder: &str, version: &str) -> Option<PathBuf> {
    let dir = workspace_root().join(folder);
    let key = dir
        .file_name()
        .expect("a folder name")
        .to_string_lossy()
        .into_owned();
    build_once(&key, |out| {
        if !has_program("node") {
            return toolchain_missing("Node.js is not installed");
        }
        let tool = componentize_js(&workspace_root().join("plugins/accounts-merge-js"));
        if !tool.exists() {
            return toolchain_missing(&format!(
                "{} is missing (`scripts/guest-toolchains` installs it)",
                tool.display()
            ));
        }
        let mut cmd = Command::new(tool);
        cmd.current_dir(&dir);
        let wit = workspace_root()
            .join("guest-sdk/wit")
            .join(format!("v{version}"));
        starlingmonkey_build(&mut cmd, Path::new("plugin.js"), &wit, out);
        run_build(&format!("{folder} (componentize-js)"), &mut cmd);
        Some(())
    })
}
