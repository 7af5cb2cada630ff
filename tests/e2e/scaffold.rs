//! `migrun new`: in each language, the scaffold builds with that language's
//! toolchain, exactly as `migrun new` tells its user, and dry-runs out of the
//! box against the embedded SQLite default — without creating its file.

use std::path::Path;
use std::process::Command;

use crate::support::cli::{Outcome, Workspace};
use crate::support::plugins::{
    self, COMPONENTIZE_PY, has_program, run_build, target_dir, toolchain_missing, workspace_root,
};

/// Scaffolds `name` in `language` into the (empty) workspace folder itself and
/// checks that `migrun new` printed `build`, the commands the test then runs.
fn scaffold(ws: &Workspace, name: &str, language: &str, extra: &[&str], build: &[&str]) {
    let mut args = vec!["new", name, "--lang", language, "--dir", "."];
    args.extend_from_slice(extra);
    let out = ws.migrun(&args);
    out.expect_code(0)
        .expect_output(&format!("created a {language} plugin in ."));
    for command in build {
        out.expect_output(command);
    }
}

/// The dry-run every scaffold must pass, whatever its language.
fn dry_run(ws: &Workspace, component: &str) -> Outcome {
    let component = ws.path().join(component);
    assert!(component.exists(), "{} was not built", component.display());
    let out = ws.migrun(&[component.to_str().unwrap(), "--dry-run"]);
    out.expect_code(0)
        .expect_output("(embedded default)")
        .expect_output("create-table")
        .expect_output("target: 3 rows")
        .expect_output("✓ every greeting is there — 3 greetings, at least 3 expected")
        .expect_output("dry-run ok");
    assert!(
        !ws.path().join("migrun-data/target.sqlite").exists(),
        "a dry-run must not create the embedded database"
    );
    out
}

fn in_dir(dir: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir);
    cmd
}

#[test]
fn rust_scaffold_builds_and_dry_runs() {
    let ws = Workspace::new();
    let sdk = workspace_root().join("guest-sdk");
    let build = "cargo build --release --target wasm32-wasip2";
    scaffold(
        &ws,
        "hello-rust",
        "rust",
        &["--sdk-path", sdk.to_str().unwrap()],
        &[build],
    );
    let manifest = std::fs::read_to_string(ws.path().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("path = \"{}\"", sdk.display())),
        "{manifest}"
    );

    // Our lock file pins the same dependency versions as the workspace's, and
    // our target directory and release profile let cargo reuse what the
    // workspace already compiled: the scaffold's build takes seconds.
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        ws.path().join("Cargo.lock"),
    )
    .unwrap();
    let mut cargo = plugins::cargo_command();
    cargo
        .current_dir(ws.path())
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only");
    run_build("the Rust scaffold", &mut cargo);
    let component = target_dir().join("wasm32-wasip2/release/hello_rust.wasm");
    let local = ws.path().join("hello_rust.wasm");
    std::fs::copy(&component, &local).unwrap();
    dry_run(&ws, "hello_rust.wasm");

    // And for real, into the embedded SQLite file.
    ws.migrun(&["hello_rust.wasm"])
        .expect_code(0)
        .expect_output("✓ every greeting is there");
    assert!(ws.path().join("migrun-data/target.sqlite").exists());
}

/// The Python scaffold's build command: the checkout's SDK on componentize-py's path.
fn python_build_command() -> String {
    format!(
        "componentize-py -d wit -w migration componentize app -p . -p {} -o hello_py.wasm",
        plugins::python_sdk_dir().display()
    )
}

#[test]
fn python_scaffold_builds_and_dry_runs() {
    if !has_program(COMPONENTIZE_PY) {
        toolchain_missing::<()>("componentize-py is not installed");
        return;
    }
    let ws = Workspace::new();
    let build = python_build_command();
    scaffold(&ws, "hello-py", "python", &[], &[&build]);
    let app = std::fs::read_to_string(ws.path().join("app.py")).unwrap();
    assert!(
        app.contains("import migrun_sdk") && app.contains("Plugin = migrun.export(HelloPy)"),
        "the scaffold is written on the SDK:\n{app}"
    );
    run_build(
        "the Python scaffold",
        in_dir(ws.path(), COMPONENTIZE_PY).args(build.split(' ').skip(1)),
    );
    dry_run(&ws, "hello_py.wasm");
}

/// The test `migrun new --lang python` writes (`test_app.py`, on `migrun_sdk.testing`)
/// passes under pytest as the scaffold's README says to run it: it builds the plugin,
/// runs it with this `migrun` against the embedded SQLite default, and asserts on the
/// table through `migrun sql`.
#[test]
fn python_scaffold_test_passes_under_pytest() {
    if !has_program(COMPONENTIZE_PY) {
        toolchain_missing::<()>("componentize-py is not installed");
        return;
    }
    if !in_dir(Path::new("."), "python3")
        .args(["-m", "pytest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        toolchain_missing::<()>("pytest is not installed (python3 -m pip install pytest)");
        return;
    }
    let ws = Workspace::new();
    scaffold(&ws, "hello-py", "python", &[], &["python3 -m pytest"]);
    let out = in_dir(ws.path(), "python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .env("MIGRUN", env!("CARGO_BIN_EXE_migrun"))
        .env("MIGRUN_CACHE_DIR", ws.cache_dir())
        .env_remove("MIGRUN_LOG")
        .output()
        .expect("run pytest");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "pytest failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(ws.path().join("hello_py.wasm").exists());
}

#[test]
fn js_scaffold_builds_and_dry_runs() {
    if !has_program("npm") || !has_program("node") {
        toolchain_missing::<()>("Node.js and npm are not installed");
        return;
    }
    let ws = Workspace::new();
    scaffold(
        &ws,
        "hello-js",
        "js",
        &[],
        &["npm install", "npm run build"],
    );
    // `--prefer-offline`: the packages are those `scripts/guest-toolchains`
    // installed for plugins/accounts-merge-js, so npm's cache has them.
    run_build(
        "npm install (the JavaScript scaffold)",
        in_dir(ws.path(), "npm").args([
            "install",
            "--prefer-offline",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]),
    );
    run_build(
        "the JavaScript scaffold",
        in_dir(ws.path(), "npm").args(["run", "build"]),
    );
    dry_run(&ws, "hello_js.wasm");
}

/// The JavaScript scaffold's own test (`test/plugin.test.js`, `node --test` over
/// `@migrun/sdk/testing`, which drives this `migrun`) passes out of the box: `npm test`
/// builds the plugin, then runs it.
#[test]
fn js_scaffold_test_passes() {
    if !has_program("npm") || !has_program("node") {
        toolchain_missing::<()>("Node.js and npm are not installed");
        return;
    }
    let ws = Workspace::new();
    scaffold(&ws, "tested-js", "js", &[], &["npm install"]);
    run_build(
        "npm install (the JavaScript scaffold)",
        in_dir(ws.path(), "npm").args([
            "install",
            "--prefer-offline",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]),
    );
    let output = in_dir(ws.path(), "npm")
        .arg("test")
        .env("MIGRUN", env!("CARGO_BIN_EXE_migrun"))
        .output()
        .expect("run npm test");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "npm test failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("# pass 2") && stdout.contains("# fail 0"),
        "{stdout}"
    );
}

/// What a run leaves in a project folder — backups, journals, embedded databases and their
/// lock files — is ignored by git in every language's scaffold, so none of it is committed.
#[test]
fn scaffold_gitignore_covers_what_a_run_leaves() {
    if !has_program("git") {
        let _: Option<()> = toolchain_missing("git is not installed");
        return;
    }
    for language in ["rust", "python", "js"] {
        let ws = Workspace::new();
        ws.migrun(&["new", "ignored", "--lang", language, "--dir", "."])
            .expect_code(0);
        let git = |args: &[&str]| {
            in_dir(ws.path(), "git")
                .args(args)
                .output()
                .expect("run git")
        };
        assert!(git(&["init", "-q"]).status.success());
        let left = [
            "migrun-backups/20261206T044759Z-x.target.before-run/manifest.json",
            "migrun-journal/20261206T044759Z-x.journal",
            "migrun-data/target.sqlite",
            "migrun-data/target.sqlite.migrun-lock",
            "elsewhere.sqlite.migrun-lock",
        ];
        let mut args = vec!["check-ignore", "--no-index"];
        args.extend_from_slice(&left);
        let ignored = git(&args);
        let ignored = String::from_utf8_lossy(&ignored.stdout);
        for path in left {
            assert!(
                ignored.lines().any(|l| l == path),
                "{language}: {path} is not ignored; git check-ignore said:\n{ignored}"
            );
        }
    }
}

/// The Rust scaffold's own `cargo test` passes: `tests/plugin.rs` builds the component
/// with a nested `cargo build --target wasm32-wasip2` (`migrun_sdk::testing::Component`),
/// sets up its table with `migrun sql`, dry-runs and runs the plugin with `--json` through
/// this migrun (`MIGRUN`), and asserts on the report and the rows.
#[test]
fn rust_scaffold_cargo_test_passes() {
    let ws = Workspace::new();
    let sdk = workspace_root().join("guest-sdk");
    scaffold(
        &ws,
        "hello-tested",
        "rust",
        &["--sdk-path", sdk.to_str().unwrap()],
        &["cargo build --release --target wasm32-wasip2"],
    );
    assert!(ws.path().join("tests/plugin.rs").is_file());
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        ws.path().join("Cargo.lock"),
    )
    .unwrap();
    let mut cargo = plugins::cargo_command();
    cargo
        .current_dir(ws.path())
        .arg("test")
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only")
        .env("MIGRUN", env!("CARGO_BIN_EXE_migrun"));
    let started = std::time::Instant::now();
    let output = cargo.output().expect("run cargo test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the scaffold's cargo test failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("test fill_adds_the_missing_greetings ... ok"),
        "{stdout}"
    );
    eprintln!(
        "the scaffold's cargo test passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
