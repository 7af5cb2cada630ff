//! The SDK's error type: a database error the plugin gave up on, or the plugin's own failure.

use std::fmt;

/// The broad class of a database failure (the contract's `db-error-kind`):
/// the same type the host uses (`migrun-types`).
pub use migrun_types::DbErrorKind;

/// A database error, as the host reported it.
///
/// Database calls return it as a value, so a plugin can inspect the [`kind`](Self::kind),
/// recover (for instance from [`DbErrorKind::Refused`] during a dry-run) or give up with `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DbError {
    /// The broad kind, for code that reacts to a class of failures.
    pub kind: DbErrorKind,
    /// The database's own code: SQLSTATE on PostgreSQL, error number on MariaDB, extended result code on SQLite.
    pub code: Option<String>,
    /// The database's message, or the host's when the host refused the call.
    pub message: String,
}

impl DbError {
    /// A database error of `kind` with `message` and no code.
    pub fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        DbError {
            kind,
            code: None,
            message: message.into(),
        }
    }

    /// The same error with the database's own `code`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}", self.message, self.kind)?;
        if let Some(code) = &self.code {
            write!(f, ", code {code}")?;
        }
        f.write_str("]")
    }
}

impl std::error::Error for DbError {}

/// Why a plugin call failed; it becomes the contract's `plugin-error`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A database call failed and the plugin gave up on it (the kind and code reach the host intact).
    #[error("database error: {0}")]
    Database(#[from] DbError),
    /// The plugin's own failure, explained.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// The plugin's own failure with `message`; see also [`bail!`](crate::bail).
    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed(message.into())
    }

    /// The same error with `context` put in front of its message (`context: message`).
    ///
    /// A database error keeps its kind and code, so the host still sees, say, a
    /// `constraint` violation, now explained by what the plugin was doing.
    pub fn context(self, context: impl fmt::Display) -> Self {
        match self {
            Error::Database(mut e) => {
                e.message = format!("{context}: {}", e.message);
                Error::Database(e)
            }
            Error::Failed(m) => Error::Failed(format!("{context}: {m}")),
        }
    }

    /// The database error inside, if this is one.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match self {
            Error::Database(e) => Some(e),
            Error::Failed(_) => None,
        }
    }
}

/// The result type of every SDK call and [`Plugin`](crate::Plugin) method.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds context to the error of a `Result`, keeping database errors' kinds.
///
/// ```
/// use migrun_sdk::{Context, Error, Result};
///
/// fn step() -> Result<()> {
///     Err(Error::failed("disk on fire"))
/// }
/// let err = step().context("copying users").unwrap_err();
/// assert_eq!(err.to_string(), "copying users: disk on fire");
/// ```
pub trait Context<T> {
    /// Puts `context` in front of the error's message.
    fn context(self, context: impl fmt::Display) -> Result<T>;
    /// Like [`context`](Context::context), computing the context only on error.
    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

/// Returns early with [`Error::Failed`] and a formatted message.
///
/// ```
/// fn check(n: u32) -> migrun_sdk::Result<()> {
///     if n == 0 {
///         migrun_sdk::bail!("batch_size must be positive, got {n}");
///     }
///     Ok(())
/// }
/// assert!(check(0).is_err());
/// ```
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::Error::Failed(::std::format!($($arg)+)))
    };
}

/// Returns early with [`Error::Failed`] unless a condition holds.
///
/// ```
/// fn check(n: u32) -> migrun_sdk::Result<()> {
///     migrun_sdk::ensure!(n > 0, "batch_size must be positive, got {n}");
///     Ok(())
/// }
/// assert!(check(1).is_ok());
/// ```
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::bail!($($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_database_kind_and_code() {
        let err: Error = DbError::new(DbErrorKind::Constraint, "duplicate key")
            .with_code("23505")
            .into();
        let err = err.context("inserting batch at id 1000");
        let db = err.as_db_error().unwrap();
        assert_eq!(db.kind, DbErrorKind::Constraint);
        assert_eq!(db.code.as_deref(), Some("23505"));
        assert_eq!(
            err.to_string(),
            "database error: inserting batch at id 1000: duplicate key [constraint, code 23505]"
        );
    }

    #[test]
    fn bail_formats() {
        fn f(x: i32) -> Result<()> {
            ensure!(x > 0, "x must be positive, got {x}");
            bail!("unreachable for {}", x)
        }
        assert_eq!(
            f(-1).unwrap_err(),
            Error::Failed("x must be positive, got -1".into())
        );
        assert_eq!(f(2).unwrap_err().to_string(), "unreachable for 2");
    }
}
