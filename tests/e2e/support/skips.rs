//! The tests that skipped, and why: without `MIGRUN_REQUIRE_DBS=1` a test whose
//! server, toolchain or privilege is missing returns early and *passes*, which a
//! green run would otherwise hide. Every skip goes through [`skipped`], which says
//! so on stderr and, when `MIGRUN_SKIP_LOG` names a file (`scripts/test` sets it),
//! appends one line `test<TAB>reason` there; `scripts/test` ends with a summary of
//! that file (and `.ci/run` fails on any skip, through `MIGRUN_REQUIRE_DBS=1`).

use std::io::Write;

/// The environment variable naming the file skips are appended to.
pub const SKIP_LOG: &str = "MIGRUN_SKIP_LOG";

/// Records that the current test skips (part of) itself because of `reason`.
pub fn skipped(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("an unnamed test thread")
        .to_owned();
    eprintln!("note: skipped: {reason}");
    if let Some(path) = std::env::var_os(SKIP_LOG) {
        record(std::path::Path::new(&path), &test, reason);
    }
}

/// Appends `test<TAB>reason` to the file at `path`. One short `write` per line on a
/// file opened for appending: lines of tests running in parallel do not interleave.
fn record(path: &std::path::Path, test: &str, reason: &str) {
    let line = format!("{test}\t{}\n", reason.replace(['\n', '\t'], " "));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("warning: cannot record the skip in {}: {e}", path.display());
    }
}

#[test]
fn skips_are_recorded_one_line_each_with_the_test_and_its_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("skips.log");
    record(
        &log,
        "topic::a_test_sqlite",
        "postgres test server unreachable\t(refused)",
    );
    record(
        &log,
        "topic::b",
        "componentize-py is not installed\nsee scripts/test",
    );
    let text = std::fs::read_to_string(&log).expect("the skips were recorded");
    assert_eq!(
        text,
        "topic::a_test_sqlite\tpostgres test server unreachable (refused)\n\
         topic::b\tcomponentize-py is not installed see scripts/test\n"
    );
}
