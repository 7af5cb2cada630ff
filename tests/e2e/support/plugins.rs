//! Building the guest plugins from source, once per test binary.
//!
//! Every plugin a test runs is compiled here for `wasm32-wasip2` from the
//! crates in the workspace (`plugins/*`, `tests/guests/*`), with the same
//! cargo and target directory as the tests, so a test never runs a stale or
//! checked-in binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The crates built for the tests, by package name.
const GUESTS: &[&str] = &["auth-consolidation", "hostile", "future-contract"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds every guest (once) and returns the path of `package`'s component.
pub fn plugin(package: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root()).args(["build", "--release", "--target", "wasm32-wasip2"]);
        for p in GUESTS {
            cmd.args(["-p", p]);
        }
        // The test process inherits cargo's variables for the host build; the guest build must not.
        for (key, _) in std::env::vars() {
            if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUSTFLAGS");
        let output = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("building the guest plugins failed:\n{}", String::from_utf8_lossy(&output.stderr)))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    assert!(GUESTS.contains(&package), "{package} is not in GUESTS");
    let path = target_dir().join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}
