//! Which contract versions this host speaks, and how a component's version is
//! read and checked before anything is instantiated.
//!
//! Invariants: a version is parsed as semver (`major.minor.patch`, nothing
//! else); a component is accepted only when its version lies within
//! [`MIN_SUPPORTED`]..=[`MAX_SUPPORTED`] *and* names a [`ContractRelease`] this
//! host implements; anything else is refused by name, saying which side of the
//! range it is on. Each release belongs to one [`ContractLine`] (semver-compatible
//! releases), and each line has its own linker in the runtime.

use std::fmt;

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The WIT package every plugin targets.
pub const PACKAGE: &str = "migrun:plugin";

/// The oldest contract version this host runs.
pub const MIN_SUPPORTED: Semver = Semver::new(0, 1, 0);

/// The newest contract version this host runs.
pub const MAX_SUPPORTED: Semver = Semver::new(0, 2, 0);

/// The contract versions this host can run, newest first (one per [`ContractRelease`]).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.2.0", "0.1.1", "0.1.0"];

/// The version new plugins (the SDK, `migrun new`) target.
pub const CURRENT_VERSION: &str = "0.2.0";

/// A `major.minor.patch` version (no pre-release or build part: the contract has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Semver {
    /// The major version.
    pub major: u64,
    /// The minor version.
    pub minor: u64,
    /// The patch version.
    pub patch: u64,
}

impl Semver {
    /// `major.minor.patch`.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Semver {
        Semver {
            major,
            minor,
            patch,
        }
    }

    /// Parses `major.minor.patch` (decimal, no sign, no leading `+`, nothing after).
    pub fn parse(text: &str) -> Option<Semver> {
        let number = |part: &str| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten()
        };
        let mut parts = text.split('.');
        let version = Semver::new(
            number(parts.next()?)?,
            number(parts.next()?)?,
            number(parts.next()?)?,
        );
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for Semver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A contract release this host implements. Exhaustive on purpose: the
/// places that dispatch on it (the linkers and export bindings in `runtime`)
/// stop compiling until a new release is handled, instead of falling back to
/// another release's bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractRelease {
    /// `migrun:plugin@0.1.0`, the first contract.
    V0_1_0,
    /// `migrun:plugin@0.1.1`: adds `backup` and `checkpoint`.
    V0_1_1,
    /// `migrun:plugin@0.2.0` (preview): units declare `scope` and `transactional`,
    /// connections `optional`.
    V0_2_0,
}

/// Releases that are semver-compatible with each other, served by one linker:
/// a component's imports are matched against the newest release of its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContractLine {
    /// 0.1.x: 0.1.0 and 0.1.1, served by the 0.1.1 implementations.
    V0_1,
    /// 0.2.x: 0.2.0.
    V0_2,
}

impl ContractRelease {
    /// Every release, newest first (as [`SUPPORTED_VERSIONS`]).
    pub const ALL: [ContractRelease; 3] = [
        ContractRelease::V0_2_0,
        ContractRelease::V0_1_1,
        ContractRelease::V0_1_0,
    ];

    /// Its version.
    pub const fn semver(self) -> Semver {
        match self {
            ContractRelease::V0_1_0 => Semver::new(0, 1, 0),
            ContractRelease::V0_1_1 => Semver::new(0, 1, 1),
            ContractRelease::V0_2_0 => Semver::new(0, 2, 0),
        }
    }

    /// Its version text.
    pub fn version(self) -> &'static str {
        match self {
            ContractRelease::V0_1_0 => "0.1.0",
            ContractRelease::V0_1_1 => "0.1.1",
            ContractRelease::V0_2_0 => "0.2.0",
        }
    }

    /// The line (and so the linker) that serves it.
    pub fn line(self) -> ContractLine {
        match self {
            ContractRelease::V0_1_0 | ContractRelease::V0_1_1 => ContractLine::V0_1,
            ContractRelease::V0_2_0 => ContractLine::V0_2,
        }
    }

    /// The release with this exact version, if this host implements it.
    pub fn of(version: &str) -> Option<ContractRelease> {
        let version = Semver::parse(version)?;
        Self::ALL.into_iter().find(|r| r.semver() == version)
    }
}

/// Where an unsupported version lies relative to what this host speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// Below [`MIN_SUPPORTED`]: the plugin is older than anything this host runs.
    Older,
    /// Above [`MAX_SUPPORTED`]: the plugin needs a newer migrun.
    Newer,
    /// Within the range, but no release has this version (`0.1.7`).
    UnknownInRange,
    /// Not `major.minor.patch` at all (or no version in the names).
    NotSemver,
}

impl Unsupported {
    /// Classifies a version this host has no release for.
    pub fn of(found: &str) -> Unsupported {
        match Semver::parse(found) {
            None => Unsupported::NotSemver,
            Some(v) if v < MIN_SUPPORTED => Unsupported::Older,
            Some(v) if v > MAX_SUPPORTED => Unsupported::Newer,
            Some(_) => Unsupported::UnknownInRange,
        }
    }

    /// What to do about it.
    pub fn hint(self) -> &'static str {
        match self {
            Unsupported::Newer => {
                "it is newer than the newest contract this migrun speaks: upgrade migrun, or rebuild the plugin against an older contract"
            }
            Unsupported::Older => {
                "it is older than the oldest contract this migrun speaks: rebuild the plugin against a supported contract"
            }
            Unsupported::UnknownInRange => {
                "it lies within the supported range but no contract was released with this version: rebuild the plugin against a released contract (guest-sdk/wit/)"
            }
            Unsupported::NotSemver => {
                "rebuild the plugin against a supported contract (guest-sdk/wit/), or upgrade migrun"
            }
        }
    }
}

/// The version of the `migrun:plugin` package a component was built against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractVersion(pub String);

impl ContractVersion {
    /// The release this version names. Only [`detect_version`] makes a
    /// `ContractVersion` for a component, and it accepts supported releases only.
    pub fn release(&self) -> ContractRelease {
        ContractRelease::of(&self.0).expect("detect_version accepts supported releases only")
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PACKAGE}@{}", self.0)
    }
}

/// Why a component cannot be run by this host. Nothing was instantiated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// The component does not export the `migrun:plugin/plugin` interface at all.
    #[error(
        "not a migrun plugin: the component does not export `{PACKAGE}/plugin` (it exports: {exports})"
    )]
    NotAPlugin {
        /// What it exports instead.
        exports: String,
    },
    /// The component targets a contract version this host does not speak.
    #[error(
        "unsupported contract version: the plugin targets {PACKAGE}@{found}, this migrun supports {supported}; {}",
        .side.hint()
    )]
    Unsupported {
        /// The version the plugin targets.
        found: String,
        /// The versions this host supports, and the range they span.
        supported: String,
        /// Where the version lies relative to that range.
        side: Unsupported,
    },
    /// The component mixes several versions of the contract.
    #[error("the plugin mixes contract versions {0}; build it against one wit/ folder")]
    Mixed(String),
}

/// `migrun:plugin@0.2.0, migrun:plugin@0.1.1, migrun:plugin@0.1.0 (0.1.0 to 0.2.0)`.
fn supported_text() -> String {
    let releases = SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("{PACKAGE}@{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{releases} (from {MIN_SUPPORTED} to {MAX_SUPPORTED})")
}

/// Checks one version text against the supported range and releases.
pub fn check_version(found: &str) -> Result<ContractRelease, ContractError> {
    ContractRelease::of(found).ok_or_else(|| ContractError::Unsupported {
        side: Unsupported::of(found),
        found: if found.is_empty() {
            "(unversioned)".into()
        } else {
            found.to_owned()
        },
        supported: supported_text(),
    })
}

/// Reads the contract version from the component's import and export names
/// (`migrun:plugin/database@0.1.0`, …) and checks that this host supports it.
pub fn detect_version(
    engine: &Engine,
    component: &Component,
) -> Result<ContractVersion, ContractError> {
    let ty = component.component_type();
    let export_names: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
    let import_names = ty.imports(engine).map(|(n, _)| n.to_owned());
    let mut versions: Vec<String> = export_names
        .iter()
        .cloned()
        .chain(import_names)
        .filter_map(|name| {
            let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
            Some(rest.split_once('@').map_or("", |(_, v)| v).to_owned())
        })
        .collect();
    versions.sort();
    versions.dedup();
    let exports_plugin = export_names
        .iter()
        .any(|n| n.starts_with(&format!("{PACKAGE}/plugin")));
    if !exports_plugin {
        return Err(ContractError::NotAPlugin {
            exports: if export_names.is_empty() {
                "nothing".to_owned()
            } else {
                export_names.join(", ")
            },
        });
    }
    match versions.as_slice() {
        [one] => check_version(one).map(|release| ContractVersion(release.version().to_owned())),
        many => Err(ContractError::Mixed(many.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_and_supported_versions_agree_newest_first_within_the_range() {
        let versions: Vec<&str> = ContractRelease::ALL.iter().map(|r| r.version()).collect();
        assert_eq!(versions, SUPPORTED_VERSIONS);
        for release in ContractRelease::ALL {
            assert_eq!(Semver::parse(release.version()), Some(release.semver()));
            assert!((MIN_SUPPORTED..=MAX_SUPPORTED).contains(&release.semver()));
        }
        assert_eq!(ContractRelease::ALL[0].semver(), MAX_SUPPORTED);
        assert_eq!(ContractRelease::ALL[2].semver(), MIN_SUPPORTED);
        // The SDK and the scaffolds target the newest release.
        assert_eq!(
            ContractRelease::of(CURRENT_VERSION),
            Some(ContractRelease::V0_2_0)
        );
        assert_eq!(ContractRelease::of("0.2.0"), Some(ContractRelease::V0_2_0));
        assert_eq!(ContractRelease::of("0.1.2"), None);
        assert_eq!(ContractRelease::of("0.3.0"), None);
    }

    #[test]
    fn one_linker_per_semver_compatible_line() {
        assert_eq!(ContractRelease::V0_1_0.line(), ContractLine::V0_1);
        assert_eq!(ContractRelease::V0_1_1.line(), ContractLine::V0_1);
        assert_eq!(ContractRelease::V0_2_0.line(), ContractLine::V0_2);
    }

    #[test]
    fn versions_parse_as_semver_only() {
        assert_eq!(Semver::parse("0.2.0"), Some(Semver::new(0, 2, 0)));
        assert_eq!(Semver::parse("10.20.30"), Some(Semver::new(10, 20, 30)));
        for bad in [
            "",
            "0.1",
            "0.1.x",
            "0.1.0.0",
            "0.1.0-rc1",
            "+0.1.0",
            "0.-1.0",
            "0..0",
        ] {
            assert_eq!(Semver::parse(bad), None, "{bad}");
        }
        assert!(Semver::new(0, 10, 0) > Semver::new(0, 9, 9));
    }

    #[test]
    fn unsupported_versions_are_refused_naming_their_side_of_the_range() {
        assert_eq!(Unsupported::of("0.3.0"), Unsupported::Newer);
        assert_eq!(Unsupported::of("1.0.0"), Unsupported::Newer);
        assert_eq!(Unsupported::of("9.0.0"), Unsupported::Newer);
        assert_eq!(Unsupported::of("0.0.9"), Unsupported::Older);
        assert_eq!(Unsupported::of("0.1.2"), Unsupported::UnknownInRange);
        assert_eq!(Unsupported::of(""), Unsupported::NotSemver);
        assert_eq!(Unsupported::of("0.1.x"), Unsupported::NotSemver);
        assert!(Unsupported::Newer.hint().starts_with("it is newer"));
        assert!(Unsupported::Older.hint().starts_with("it is older"));
        assert!(Unsupported::NotSemver.hint().starts_with("rebuild"));

        let refused = check_version("0.0.9").unwrap_err().to_string();
        assert_eq!(
            refused,
            "unsupported contract version: the plugin targets migrun:plugin@0.0.9, this migrun supports \
             migrun:plugin@0.2.0, migrun:plugin@0.1.1, migrun:plugin@0.1.0 (from 0.1.0 to 0.2.0); \
             it is older than the oldest contract this migrun speaks: rebuild the plugin against a supported contract"
        );
        let refused = check_version("0.1.7").unwrap_err().to_string();
        assert!(refused.contains("targets migrun:plugin@0.1.7"), "{refused}");
        assert!(refused.contains("within the supported range"), "{refused}");
        assert!(
            check_version("")
                .unwrap_err()
                .to_string()
                .contains("targets migrun:plugin@(unversioned)")
        );
        assert_eq!(check_version("0.2.0").unwrap(), ContractRelease::V0_2_0);
    }
}
