//! [`DbErrorKind`]: the broad class of a failed database call.

use std::fmt;

/// What kind of failure a database call met; mirrors `db-error-kind` in the WIT.
///
/// The host classifies by the database's own code (SQLSTATE, MariaDB error
/// number, SQLite extended code), never by message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum DbErrorKind {
    /// The plugin asked for a connection name that was not declared or configured.
    UnknownConnection,
    /// A write through a connection granted read-only (refused by the database session).
    ReadOnly,
    /// A unique, foreign key, not-null or check constraint was violated.
    Constraint,
    /// Deadlock victim, serialisation failure or lock timeout: retrying may succeed.
    Conflict,
    /// The connection to the server failed, was closed or could not be opened.
    Connection,
    /// A value could not be converted to or from the column's type.
    Value,
    /// The API was used wrongly (busy connection, closed cursor, bad argument).
    Usage,
    /// The host refused the statement in this mode (e.g. DDL during a MariaDB dry-run).
    Refused,
    /// Anything else the database reported (syntax, missing table, permissions, …).
    Other,
}

impl DbErrorKind {
    /// Every kind, in the WIT's order.
    pub const ALL: [DbErrorKind; 9] = [
        DbErrorKind::UnknownConnection,
        DbErrorKind::ReadOnly,
        DbErrorKind::Constraint,
        DbErrorKind::Conflict,
        DbErrorKind::Connection,
        DbErrorKind::Value,
        DbErrorKind::Usage,
        DbErrorKind::Refused,
        DbErrorKind::Other,
    ];

    /// The kind's name as the WIT spells it (`read-only`, `unknown-connection`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DbErrorKind::UnknownConnection => "unknown-connection",
            DbErrorKind::ReadOnly => "read-only",
            DbErrorKind::Constraint => "constraint",
            DbErrorKind::Conflict => "conflict",
            DbErrorKind::Connection => "connection",
            DbErrorKind::Value => "value",
            DbErrorKind::Usage => "usage",
            DbErrorKind::Refused => "refused",
            DbErrorKind::Other => "other",
        }
    }

    /// The kind named `name` as the WIT spells it.
    pub fn from_name(name: &str) -> Option<DbErrorKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for DbErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in DbErrorKind::ALL {
            assert_eq!(DbErrorKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(DbErrorKind::from_name("nope"), None);
    }
}
