//! `migrun new`: a plugin project that builds and dry-runs out of the box.
//!
//! One template per language under `host/src/bin/migrun/templates/`, compiled into the
//! binary with `include_str!`; placeholders are `{{name}}`, `{{crate_name}}`,
//! `{{type_name}}`, `{{sdk_dependency}}`, `{{python_sdk_literal}}`, `{{js_sdk}}` and
//! `{{migrun_version}}`. A Rust project depends on `migrun-sdk`, which carries the bindings.
//! A Python project gets a copy of the contract's WIT (`wit/migrun.wit`), which componentize-py
//! generates bindings from, and is written on `migrun_sdk` (`sdk/python`): its build puts the
//! checkout's SDK on componentize-py's path (`-p`), or the pip-installed one (`python3 -m
//! migrun_sdk path`). A JavaScript project depends on the npm package `@migrun/sdk` (`sdk/js`
//! of the checkout, linked with `file:`), which ships the WIT its build uses, and includes a
//! `node --test` test driving `migrun` through `@migrun/sdk/testing`.
//!
//! Every template writes to one read-write connection only, so that a dry-run
//! needs no data at all: with no `migrun.toml` it runs against an embedded
//! SQLite file that it never creates.
//!
//! # Example
//!
//! ```no_run
//! use migrun::scaffold::{Language, NewPlugin, SdkSource, scaffold};
//!
//! let project = scaffold(&NewPlugin {
//!     name: "hello".into(),
//!     language: Language::Python,
//!     dir: "hello".into(),
//!     sdk: SdkSource::default(),
//! })?;
//! println!("{}", project.next_steps());
//! # Ok::<(), migrun::scaffold::ScaffoldError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The contract the templates target.
const WIT: &str = include_str!("../../../../guest-sdk/wit/v0.2.0/migrun.wit");

/// A language `migrun new` can scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Language {
    /// Rust, with `migrun-sdk`, built with cargo for `wasm32-wasip2`.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-qjs (QuickJS).
    JavaScript,
}

impl Language {
    /// Every language, in the order `--help` lists them.
    #[cfg(test)]
    pub const ALL: [Language; 3] = [Language::Rust, Language::Python, Language::JavaScript];

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "js",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = String;

    fn from_str(s: &str) -> Result<Language, String> {
        match s.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Language::Rust),
            "python" | "py" => Ok(Language::Python),
            "js" | "javascript" => Ok(Language::JavaScript),
            _ => Err(format!(
                "unknown language {s:?}: expected rust, python or js"
            )),
        }
    }
}

/// Where a Rust project gets `migrun-sdk` from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A checkout's `guest-sdk` folder.
    Path(PathBuf),
    /// The crates.io release matching this migrun.
    CratesIo,
}

impl Default for SdkSource {
    /// The `guest-sdk` of the checkout this migrun was built from, when it is
    /// still there; otherwise crates.io.
    fn default() -> SdkSource {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
        match checkout.join("Cargo.toml").is_file() {
            true => SdkSource::Path(checkout.canonicalize().unwrap_or(checkout)),
            false => SdkSource::CratesIo,
        }
    }
}

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    /// The plugin's name: lowercase ASCII letters, digits and single hyphens, starting with a letter.
    pub name: String,
    /// Its language.
    pub language: Language,
    /// The project folder to create (it may exist if it is empty).
    pub dir: PathBuf,
    /// For Rust: where `migrun-sdk` comes from.
    pub sdk: SdkSource,
}

/// Why a project could not be scaffolded. Nothing was written, unless the error is `Io`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name cannot be a package name in every language.
    #[error(
        "invalid plugin name {0:?}: use lowercase ASCII letters, digits and single hyphens, starting with a letter (e.g. accounts-merge)"
    )]
    InvalidName(String),
    /// The folder exists and holds files.
    #[error("{0} already exists and is not empty; choose another name or --dir")]
    NotEmpty(PathBuf),
    /// The SDK path given has no `Cargo.toml`.
    #[error(
        "--sdk-path {0}: no Cargo.toml there (expected the guest-sdk folder of a migrun checkout)"
    )]
    NoSdk(PathBuf),
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A project written by [`scaffold`].
#[derive(Debug, Clone)]
pub struct Project {
    /// Its folder.
    pub dir: PathBuf,
    /// Its language.
    pub language: Language,
    /// The files written, relative to `dir`.
    pub files: Vec<PathBuf>,
    /// The commands that build it, run in `dir`.
    pub build: Vec<String>,
    /// The component the build writes, relative to `dir`.
    pub component: PathBuf,
    /// A note for the author (for instance where the SDK comes from), if any.
    pub note: Option<String>,
}

impl Project {
    /// What to type next: build, then dry-run.
    pub fn next_steps(&self) -> String {
        let mut out = format!("cd {}\n", self.dir.display());
        for command in &self.build {
            out.push_str(command);
            out.push('\n');
        }
        out.push_str(&format!("migrun {} --dry-run\n", self.component.display()));
        out
    }
}

/// Whether `name` is usable as a crate, a Python component and an npm package name.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// `accounts-merge` → `AccountsMerge`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// One file of a template: where it goes and its text.
type Template = (&'static str, &'static str);

fn templates(language: Language) -> &'static [Template] {
    match language {
        Language::Rust => &[
            ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("templates/rust/lib.rs")),
            (
                "tests/plugin.rs",
                include_str!("templates/rust/plugin_test.rs"),
            ),
            ("README.md", include_str!("templates/rust/README.md")),
            (".gitignore", include_str!("templates/rust/gitignore")),
        ],
        Language::Python => &[
            ("app.py", include_str!("templates/python/app.py")),
            ("test_app.py", include_str!("templates/python/test_app.py")),
            ("conftest.py", include_str!("templates/python/conftest.py")),
            ("wit/migrun.wit", WIT),
            ("README.md", include_str!("templates/python/README.md")),
            (".gitignore", include_str!("templates/python/gitignore")),
        ],
        Language::JavaScript => &[
            ("plugin.js", include_str!("templates/js/plugin.js")),
            ("package.json", include_str!("templates/js/package.json")),
            (
                "test/plugin.test.js",
                include_str!("templates/js/test/plugin.test.js"),
            ),
            ("README.md", include_str!("templates/js/README.md")),
            (".gitignore", include_str!("templates/js/gitignore")),
        ],
    }
}

fn sdk_dependency(sdk: &SdkSource) -> String {
    match sdk {
        // TOML basic strings: escape what could break out of the quotes.
        SdkSource::Path(path) => {
            let path = path
                .display()
                .to_string()
                .replace('\\', "\\\\")
                .replace('"', "\\\"");
            format!("migrun-sdk = {{ path = \"{path}\" }}")
        }
        SdkSource::CratesIo => format!("migrun-sdk = \"{}\"", migrun::VERSION),
    }
}

/// The Python SDK (`sdk/python`) of the checkout whose `guest-sdk` the project is made
/// with, when it is there: the Python build puts it on componentize-py's path.
fn python_sdk(sdk: &SdkSource) -> Option<PathBuf> {
    match sdk {
        SdkSource::Path(guest_sdk) => {
            let dir = guest_sdk.parent()?.join("sdk/python");
            dir.join("migrun_sdk/__init__.py")
                .is_file()
                .then(|| std::path::absolute(&dir).unwrap_or(dir))
        }
        SdkSource::CratesIo => None,
    }
}

/// A path as a Python string literal (`None` for no path).
fn python_literal(path: Option<&Path>) -> String {
    match path {
        Some(path) => format!(
            "\"{}\"",
            path.display()
                .to_string()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        ),
        None => "None".to_owned(),
    }
}

/// A path for a shell command line, quoted when it holds anything but plain characters.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The JavaScript SDK of the checkout a Rust SDK path belongs to (`<checkout>/sdk/js` beside
/// `<checkout>/guest-sdk`), or the folder itself when it is the npm package.
fn js_sdk_dir(sdk: &SdkSource) -> Option<PathBuf> {
    let SdkSource::Path(path) = sdk else {
        return None;
    };
    if path.join("package.json").is_file() {
        return Some(path.clone());
    }
    let js = path.parent()?.join("sdk/js");
    js.join("package.json").is_file().then_some(js)
}

/// The `@migrun/sdk` dependency of a JavaScript project, as a JSON string's content: the
/// checkout's `sdk/js` (`file:`, which npm links), else the npm release matching this migrun.
fn js_sdk(sdk: &SdkSource) -> String {
    match js_sdk_dir(sdk) {
        Some(dir) => {
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            format!("file:{}", dir.display())
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        }
        None => "0.2.0".to_owned(),
    }
}

/// Fills a template's placeholders.
fn render(text: &str, spec: &NewPlugin) -> String {
    text.replace("{{name}}", &spec.name)
        .replace(
            "{{python_sdk_literal}}",
            &python_literal(python_sdk(&spec.sdk).as_deref()),
        )
        .replace("{{crate_name}}", &spec.name.replace('-', "_"))
        .replace("{{type_name}}", &type_name(&spec.name))
        .replace("{{sdk_dependency}}", &sdk_dependency(&spec.sdk))
        .replace("{{js_sdk}}", &js_sdk(&spec.sdk))
        .replace("{{migrun_version}}", migrun::VERSION)
}

/// Writes a new plugin project for `spec` and says how to build and dry-run it.
pub fn scaffold(spec: &NewPlugin) -> Result<Project, ScaffoldError> {
    if !valid_name(&spec.name) {
        return Err(ScaffoldError::InvalidName(spec.name.clone()));
    }
    if spec.dir.exists() {
        let mut entries = std::fs::read_dir(&spec.dir).map_err(|source| ScaffoldError::Io {
            path: spec.dir.clone(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(ScaffoldError::NotEmpty(spec.dir.clone()));
        }
    }
    let mut spec = spec.clone();
    if let (Language::Rust, SdkSource::Path(path)) = (spec.language, &spec.sdk) {
        // Cargo reads a path dependency relative to the project: make it absolute.
        match path.join("Cargo.toml").is_file() {
            true => {
                spec.sdk =
                    SdkSource::Path(std::path::absolute(path).unwrap_or_else(|_| path.clone()))
            }
            false => return Err(ScaffoldError::NoSdk(path.clone())),
        }
    }
    let spec = &spec;

    let mut files = Vec::new();
    for (relative, text) in templates(spec.language) {
        let path = spec.dir.join(relative);
        let io = |source| ScaffoldError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, render(text, spec)).map_err(io)?;
        files.push(PathBuf::from(relative));
    }

    let wasm = format!("{}.wasm", spec.name.replace('-', "_"));
    let (build, component, note) = match spec.language {
        Language::Rust => (
            vec!["cargo build --release --target wasm32-wasip2".to_owned()],
            Path::new("target/wasm32-wasip2/release").join(&wasm),
            Some(match &spec.sdk {
                SdkSource::Path(path) => format!("migrun-sdk comes from {}", path.display()),
                SdkSource::CratesIo => format!(
                    "migrun-sdk {} is taken from crates.io, where it is not published yet: \
                     scaffold with --sdk-path <migrun checkout>/guest-sdk to build against a checkout",
                    migrun::VERSION
                ),
            }),
        ),
        Language::Python => {
            let (sdk, note) = match python_sdk(&spec.sdk) {
                Some(dir) => (
                    shell_word(&dir),
                    format!("migrun_sdk comes from {}", dir.display()),
                ),
                None => (
                    "\"$(python3 -m migrun_sdk path)\"".to_owned(),
                    "migrun_sdk must be installed: pip install <migrun checkout>/sdk/python"
                        .to_owned(),
                ),
            };
            (
                vec![format!(
                    "componentize-py -d wit -w migration componentize app -p . -p {sdk} -o {wasm}"
                )],
                PathBuf::from(&wasm),
                Some(format!(
                    "needs componentize-py 0.25.1 and pytest (pip install componentize-py==0.25.1 pytest); {note}\n\
                     test it with `python3 -m pytest` (test_app.py builds it, runs it, checks the table)"
                )),
            )
        }
        Language::JavaScript => (
            vec!["npm install".to_owned(), "npm run build".to_owned()],
            PathBuf::from(&wasm),
            Some(match js_sdk_dir(&spec.sdk) {
                Some(dir) => format!(
                    "needs Node.js 20 or newer; @migrun/sdk comes from {}; `npm test` builds and runs test/",
                    dir.display()
                ),
                None => "needs Node.js 20 or newer; @migrun/sdk 0.2.0 is taken from npm, where it is not \
                         published yet: scaffold with --sdk-path <migrun checkout>/sdk/js to build against a checkout"
                    .to_owned(),
            }),
        ),
    };
    Ok(Project {
        dir: spec.dir.clone(),
        language: spec.language,
        files,
        build,
        component,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, language: Language, dir: &Path) -> NewPlugin {
        NewPlugin {
            name: name.into(),
            language,
            dir: dir.to_owned(),
            sdk: SdkSource::CratesIo,
        }
    }

    #[test]
    fn names_must_suit_every_package_manager() {
        for good in ["a", "accounts-merge", "seed000", "x-1-y"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Accounts",
            "1st",
            "-a",
            "a-",
            "a--b",
            "a_b",
            "a b",
            "ü",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(type_name("accounts-merge-2"), "AccountsMerge2");
    }

    #[test]
    fn languages_parse_from_their_usual_names() {
        assert_eq!("py".parse::<Language>(), Ok(Language::Python));
        assert_eq!("JavaScript".parse::<Language>(), Ok(Language::JavaScript));
        assert_eq!("rust".parse::<Language>(), Ok(Language::Rust));
        assert!(
            "go".parse::<Language>()
                .unwrap_err()
                .contains("rust, python or js")
        );
        for language in Language::ALL {
            assert_eq!(language.as_str().parse::<Language>(), Ok(language));
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let dir = tempfile::tempdir().unwrap();
        for language in Language::ALL {
            let target = dir.path().join(language.as_str());
            let project = scaffold(&spec("hello-world", language, &target)).unwrap();
            for file in &project.files {
                let text = std::fs::read_to_string(target.join(file)).unwrap();
                assert!(
                    !text.contains("{{"),
                    "{language}: {} keeps a placeholder",
                    file.display()
                );
            }
            assert!(
                project.next_steps().contains("hello_world.wasm --dry-run"),
                "{}",
                project.next_steps()
            );
        }
        let cargo = std::fs::read_to_string(dir.path().join("rust/Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"hello-world\""), "{cargo}");
        assert!(
            cargo.contains(&format!("migrun-sdk = \"{}\"", migrun::VERSION)),
            "{cargo}"
        );
        assert!(cargo.contains("\n[workspace]\n"), "a workspace of its own");
        let lib = std::fs::read_to_string(dir.path().join("rust/src/lib.rs")).unwrap();
        assert!(lib.contains("export_plugin!(HelloWorld)"));
        let wit = std::fs::read_to_string(dir.path().join("python/wit/migrun.wit")).unwrap();
        assert!(wit.contains("\npackage migrun:plugin@0.2.0;"));
        // JavaScript: the SDK package (from npm without a checkout) ships the WIT.
        let package = std::fs::read_to_string(dir.path().join("js/package.json")).unwrap();
        let package: serde_json::Value = serde_json::from_str(&package).unwrap();
        assert_eq!(package["dependencies"]["@migrun/sdk"], "0.2.0");
        assert!(
            package["scripts"]["build"]
                .as_str()
                .unwrap()
                .contains("-o hello_world.wasm")
        );
        assert!(dir.path().join("js/test/plugin.test.js").is_file());
        assert!(!dir.path().join("js/wit").exists());
    }

    #[test]
    fn js_projects_link_the_checkouts_sdk() {
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for given in [checkout.join("guest-sdk"), checkout.join("sdk/js")] {
            let dependency = js_sdk(&SdkSource::Path(given.clone()));
            let dir = dependency
                .strip_prefix("file:")
                .unwrap_or_else(|| panic!("{}: {dependency}", given.display()));
            assert!(
                Path::new(dir).join("wit/migrun.wit").is_file(),
                "{dependency}"
            );
        }
    }

    #[test]
    fn sdk_paths_are_quoted_for_toml() {
        let dependency = sdk_dependency(&SdkSource::Path(PathBuf::from(r#"C:\a "b"\guest-sdk"#)));
        let parsed: toml::Table = toml::from_str(&dependency).unwrap();
        assert_eq!(
            parsed["migrun-sdk"]["path"].as_str(),
            Some(r#"C:\a "b"\guest-sdk"#)
        );
    }

    #[test]
    fn refuses_a_bad_name_a_full_folder_and_a_missing_sdk() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            scaffold(&spec("Bad_Name", Language::Python, &dir.path().join("x"))),
            Err(ScaffoldError::InvalidName(_))
        ));
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = scaffold(&spec("ok", Language::Python, dir.path())).unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty(_)), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
            "mine"
        );
        let mut rust = spec("ok", Language::Rust, &dir.path().join("empty"));
        rust.sdk = SdkSource::Path(dir.path().join("nowhere"));
        assert!(matches!(scaffold(&rust), Err(ScaffoldError::NoSdk(_))));
        // An existing empty folder is fine.
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        assert!(scaffold(&spec("ok", Language::JavaScript, &dir.path().join("empty"))).is_ok());
    }
}
