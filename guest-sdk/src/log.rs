//! Leveled, structured logging, progress and verification checks.
//!
//! The CLI shows them and the run's journal keeps them. The macros
//! ([`info!`](crate::info), [`warn!`](crate::warn), …) take optional
//! `key = value` fields before a `;`, then a `format!` message:
//!
//! ```no_run
//! let (batch, rows) = (3, 1000);
//! migrun_sdk::info!("copied {rows} rows");
//! migrun_sdk::info!(table = "auth_users", batch = batch; "copied {rows} rows");
//! migrun_sdk::progress("copy-users", 3000, Some(5000));
//! migrun_sdk::check("row counts match", true, "users: 5000, auth_users: 5000");
//! ```

use crate::bindings::migrun::plugin::{checks, log as wit_log};

/// How important a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Fine detail, hidden unless asked for.
    Trace,
    /// Detail useful when something goes wrong.
    Debug,
    /// Normal progress.
    Info,
    /// Something the operator should read (a dropped row, a lossy mapping).
    Warn,
    /// A failure the plugin is about to report.
    Error,
}

/// Writes `message` at `level` with structured `fields`.
pub fn write(level: Level, message: &str, fields: &[(String, String)]) {
    let level = match level {
        Level::Trace => wit_log::Level::Trace,
        Level::Debug => wit_log::Level::Debug,
        Level::Info => wit_log::Level::Info,
        Level::Warn => wit_log::Level::Warn,
        Level::Error => wit_log::Level::Error,
    };
    wit_log::write(level, message, fields);
}

/// Reports progress of `task`: `done` of `total` items (when the total is known).
///
/// The CLI turns it into a progress bar; report after each batch, not each row.
pub fn progress(task: &str, done: u64, total: impl Into<Option<u64>>) {
    wit_log::progress(task, done, total.into());
}

/// Records one verification check and returns `ok`. A failed check fails the run.
///
/// `detail` should let an operator see why without rerunning: both counts,
/// the first mismatching id and column, the index's columns.
pub fn check(name: &str, ok: bool, detail: &str) -> bool {
    checks::report(name, ok, detail);
    ok
}

/// One structured field, for the logging macros.
#[doc(hidden)]
pub fn __field(key: &str, value: &dyn std::fmt::Display) -> (String, String) {
    (key.to_owned(), value.to_string())
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:expr, $($key:ident = $value:expr),+ ; $($fmt:tt)+) => {
        $crate::log::write(
            $level,
            &::std::format!($($fmt)+),
            &[$($crate::log::__field(::core::stringify!($key), &$value)),+],
        )
    };
    ($level:expr, $($fmt:tt)+) => {
        $crate::log::write($level, &::std::format!($($fmt)+), &[])
    };
}

/// Logs at trace level: `trace!("msg {x}")` or `trace!(key = value; "msg")`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Trace, $($arg)+) };
}

/// Logs at debug level: `debug!("msg {x}")` or `debug!(key = value; "msg")`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Debug, $($arg)+) };
}

/// Logs at info level: `info!("msg {x}")` or `info!(key = value, other = 2; "msg")`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Info, $($arg)+) };
}

/// Logs at warn level: `warn!("msg {x}")` or `warn!(key = value; "msg")`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Warn, $($arg)+) };
}

/// Logs at error level: `error!("msg {x}")` or `error!(key = value; "msg")`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Error, $($arg)+) };
}
