//! The plugin guides run as written: every code block of `docs/plugins-rust.md`,
//! `docs/plugins-python.md` and `docs/plugins-js.md` is extracted and run, in order, in one
//! bash session per guide, starting in an empty folder — what a newcomer following the page
//! would type.
//!
//! The convention the guides are written to (docs/ARCHITECTURE.md repeats it):
//!
//! - ```` ```sh ```` blocks run (`set -euo pipefail`); ```` ```sh skip-in-test ```` marks the
//!   one-time installs (building migrun, pip/npm toolchains) that the suite has already done:
//!   `migrun` is on `PATH`, `MIGRUN` and `MIGRUN_CHECKOUT` are set.
//! - ```` ```<lang> file=PATH ```` blocks are written to `PATH`, relative to the session's
//!   current folder at that point, before the blocks after them run.
//! - ```` ```text ```` blocks are output shown to the reader.
//!
//! Any other block fails the test: a fragment that cannot run must become part of a file that
//! does. A failure names the guide's line of the command that failed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::plugins::{target_dir, workspace_root};

/// One fenced block of a guide.
#[derive(Debug, PartialEq)]
struct Block {
    /// The info string's first word (`sh`, `python`, …).
    lang: String,
    /// `file=PATH`, when given.
    file: Option<String>,
    /// `skip-in-test` was given.
    skip: bool,
    /// The guide's line of the block's first content line (1-based).
    line: usize,
    text: String,
}

/// The fenced blocks of a Markdown text (``` or ~~~ fences, any length ≥ 3).
fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(String, Block)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                let fence: String = trimmed
                    .chars()
                    .take_while(|&c| c == '`' || c == '~')
                    .collect();
                if fence.len() >= 3 && fence.chars().all(|c| c == fence.chars().next().unwrap()) {
                    let info = trimmed[fence.len()..].trim();
                    let mut words = info.split_whitespace();
                    let lang = words.next().unwrap_or("").to_owned();
                    let mut block = Block {
                        lang,
                        file: None,
                        skip: false,
                        line: i + 2,
                        text: String::new(),
                    };
                    for word in words {
                        if let Some(path) = word.strip_prefix("file=") {
                            block.file = Some(path.to_owned());
                        } else if word == "skip-in-test" {
                            block.skip = true;
                        }
                    }
                    open = Some((fence, block));
                }
            }
            Some((fence, block)) => {
                if trimmed.starts_with(fence.as_str())
                    && trimmed.trim_end().chars().all(|c| c == '`' || c == '~')
                {
                    out.push(std::mem::replace(
                        block,
                        Block {
                            lang: String::new(),
                            file: None,
                            skip: false,
                            line: 0,
                            text: String::new(),
                        },
                    ));
                    open = None;
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "a code block is never closed");
    out
}

/// The bash script of a guide, and for each script line the guide's line (0 for lines the
/// runner added).
fn script(guide: &str, blocks: &[Block]) -> (String, Vec<usize>) {
    let mut text = String::new();
    let mut origin = Vec::new();
    let mut push = |line: &str, from: usize| {
        text.push_str(line);
        text.push('\n');
        origin.push(from);
    };
    push("set -euo pipefail", 0);
    push(
        "trap 'echo \"docs-runner: failed at script line $LINENO\" >&2' ERR",
        0,
    );
    let mut refused = Vec::new();
    for block in blocks {
        match (block.lang.as_str(), &block.file) {
            (_, Some(path)) => {
                push(&format!("mkdir -p \"$(dirname '{path}')\""), block.line);
                push(&format!("cat > '{path}' <<'MIGRUN_DOCS_EOF'"), block.line);
                for (i, line) in block.text.lines().enumerate() {
                    push(line, block.line + i);
                }
                push("MIGRUN_DOCS_EOF", block.line);
            }
            ("sh" | "bash" | "shell", None) if block.skip => {}
            ("sh" | "bash" | "shell", None) => {
                for (i, line) in block.text.lines().enumerate() {
                    push(line, block.line + i);
                }
            }
            ("text" | "console-output", None) => {}
            _ => refused.push(format!(
                "{guide}:{}: a ```{} block that neither runs nor is written to a file",
                block.line - 1,
                block.lang
            )),
        }
    }
    assert!(
        refused.is_empty(),
        "every code block of the guide must run (```sh, ```LANG file=PATH or ```text):\n{}",
        refused.join("\n")
    );
    (text, origin)
}

/// Runs a guide's script in an empty folder; panics with the guide's line of the failing
/// command and the output's tail.
#[allow(dead_code)]
pub fn run_guide(name: &str) {
    let root = workspace_root();
    let guide = Path::new("docs").join(name);
    let markdown = std::fs::read_to_string(root.join(&guide))
        .unwrap_or_else(|e| panic!("{}: {e}", guide.display()));
    let blocks = blocks(&markdown);
    assert!(
        blocks.iter().any(|b| b.lang == "sh" && !b.skip),
        "{} has no command to run",
        guide.display()
    );
    let (script, origin) = script(&guide.display().to_string(), &blocks);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let script_path = dir.path().join("guide.sh");
    std::fs::write(&script_path, &script).expect("write the guide's script");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("create the work folder");

    let migrun = PathBuf::from(env!("CARGO_BIN_EXE_migrun"));
    let bin_dir = migrun.parent().expect("the binary's folder").to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg(&script_path)
        .current_dir(&work)
        .env("PATH", path)
        .env("MIGRUN", &migrun)
        .env("MIGRUN_CHECKOUT", &root)
        // Rust builds inside a guide share one target folder (the SDK's dependencies
        // are compiled once), and components are compiled once per suite.
        .env("CARGO_TARGET_DIR", target_dir().join("docs-guides"))
        .env("MIGRUN_CACHE_DIR", target_dir().join("docs-guides-cache"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("NO_COLOR", "1")
        .output()
        .expect("bash runs");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let at = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("docs-runner: failed at script line "))
            .next_back()
            .and_then(|n| n.trim().parse::<usize>().ok())
            .and_then(|n| origin.get(n - 1).copied())
            .filter(|&l| l > 0)
            .map(|l| format!("{}:{l}", guide.display()))
            .unwrap_or_else(|| "(line unknown)".to_owned());
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        panic!(
            "{} does not run as written: the command at {at} failed ({})\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            guide.display(),
            output.status,
            tail(&stdout),
            tail(&stderr)
        );
    }
}

// Each guide's test is added with the guide's rewrite to this convention:
// `the_rust_guide_runs_as_written` → run_guide("plugins-rust.md"), and so on.

/// docs/plugins-rust.md: scaffold, `cargo test`, URLs and relative paths, the price-cents
/// backfill with its tests, the customers copy interrupted and resumed, replay, and
/// accounts-merge from the checkout.
#[test]
fn the_rust_guide_runs_as_written() {
    run_guide("plugins-rust.md");
}

#[test]
fn blocks_are_found_with_their_kind_file_and_line() {
    let md = "# t\n\n```sh\nmigrun --version\n```\n\n````python file=app.py\nprint(1)\n```\n````\n\n```sh skip-in-test\ncargo build\n```\n";
    let found = blocks(md);
    assert_eq!(found.len(), 3);
    assert_eq!((found[0].lang.as_str(), found[0].line), ("sh", 4));
    assert_eq!(found[1].file.as_deref(), Some("app.py"));
    assert_eq!(found[1].text, "print(1)\n```\n");
    assert!(found[2].skip);
    let (text, origin) = script("t.md", &found);
    assert!(text.contains("migrun --version\n"));
    assert!(text.contains("cat > 'app.py' <<'MIGRUN_DOCS_EOF'\nprint(1)\n```\nMIGRUN_DOCS_EOF\n"));
    assert!(!text.contains("cargo build"));
    assert_eq!(origin[2], 4, "the command's line in the guide");
}

#[test]
#[should_panic(expected = "t.md:3: a ```python block that neither runs nor is written to a file")]
fn a_fragment_that_does_not_run_is_refused() {
    script("t.md", &blocks("x\n\n```python\nconn.query()\n```\n"));
}

#[test]
fn the_python_guide_runs_as_written() {
    run_guide("plugins-python.md");
}

/// docs/plugins-js.md, top to bottom: the scaffold built, dry-run and its `npm test`; the
/// `shop` plugin (copy helper, Backfill writing cents back) built, run and tested; the
/// accounts-merge twin built, run and replayed.
#[test]
fn the_js_guide_runs_as_written() {
    if !crate::support::plugins::has_program("npm") {
        crate::support::plugins::toolchain_missing::<()>("Node.js and npm are not installed");
        return;
    }
    run_guide("plugins-js.md");
}
