//! [`Level`]: how much a plugin's log message matters.

/// A log level, as the WIT's `log` interface and the journal spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Level {
    /// Fine detail.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something the operator should read.
    Warn,
    /// A failure.
    Error,
}
