//! [`Dialect`] and [`Access`], and the dialect knowledge both sides need to
//! write SQL text: bind placeholders and identifier quoting.

use std::fmt;

/// The SQL dialect behind a connection; mirrors `dialect` in the WIT.
/// Serialises as its lowercase name (`"sqlite"`, `"postgres"`, `"mysql"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Dialect {
    /// The SDK's spelling before the host and the SDK shared this type.
    /// Kept so that plugins written against migrun-sdk 0.1 keep compiling
    /// (it works in patterns too).
    #[deprecated(since = "0.1.0", note = "spelled `Dialect::MySql`, as in the host")]
    #[allow(non_upper_case_globals)]
    pub const Mysql: Dialect = Dialect::MySql;

    /// Every dialect.
    pub const ALL: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql];

    /// The lowercase name used in configuration, reports and messages
    /// (`sqlite`, `postgres`, `mysql`).
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }

    /// The `n`th (1-based) bind placeholder: `$n` on PostgreSQL, `?` elsewhere.
    ///
    /// ```
    /// use migrun_types::Dialect;
    /// assert_eq!(Dialect::Postgres.placeholder(2), "$2");
    /// assert_eq!(Dialect::MySql.placeholder(2), "?");
    /// ```
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite | Dialect::MySql => "?".to_owned(),
        }
    }

    /// `count` comma-separated placeholders numbered from `first` (for `IN (…)`
    /// lists and `VALUES (…)`).
    ///
    /// ```
    /// use migrun_types::Dialect;
    /// assert_eq!(Dialect::Postgres.placeholders(3, 2), "$3, $4");
    /// assert_eq!(Dialect::Sqlite.placeholders(1, 3), "?, ?, ?");
    /// ```
    pub fn placeholders(self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|n| self.placeholder(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The character that quotes an identifier: `` ` `` on MySQL, `"` elsewhere.
    pub fn identifier_quote(self) -> char {
        match self {
            Dialect::MySql => '`',
            Dialect::Sqlite | Dialect::Postgres => '"',
        }
    }

    /// `ident` quoted as an identifier, the quote character doubled inside:
    /// `"name"` on SQLite and PostgreSQL, `` `name` `` on MySQL. For plugin
    /// code building its own SQL from names it trusts.
    ///
    /// ```
    /// use migrun_types::Dialect;
    /// assert_eq!(Dialect::Postgres.quote_ident("order"), "\"order\"");
    /// assert_eq!(Dialect::MySql.quote_ident("we`ird"), "`we``ird`");
    /// ```
    pub fn quote_ident(self, ident: &str) -> String {
        let q = self.identifier_quote();
        let doubled: String = [q, q].iter().collect();
        format!("{q}{}{q}", ident.replace(q, &doubled))
    }

    /// `name` quoted as an identifier, refusing rather than escaping a name
    /// that is empty or holds the quote character or a NUL: the host quotes
    /// names a plugin or an operator supplied, where such a name is almost
    /// always a mistake or an injection attempt, and refusing keeps the
    /// quoting trivially correct.
    ///
    /// ```
    /// use migrun_types::Dialect;
    /// assert_eq!(Dialect::MySql.quote_identifier("users").unwrap(), "`users`");
    /// assert!(Dialect::Postgres.quote_identifier("a\"b").is_err());
    /// ```
    pub fn quote_identifier(self, name: &str) -> Result<String, IdentifierError> {
        let quote = self.identifier_quote();
        if name.is_empty() {
            return Err(IdentifierError::Empty);
        }
        if name.contains(quote) || name.contains('\0') {
            return Err(IdentifierError::Unquotable {
                name: name.to_owned(),
                quote,
            });
        }
        Ok(format!("{quote}{name}{quote}"))
    }

    /// `table` or `schema.table` (split on the dot), each part quoted as by
    /// [`quote_identifier`](Self::quote_identifier).
    ///
    /// ```
    /// use migrun_types::Dialect;
    /// assert_eq!(Dialect::Postgres.quote_table("me_x.memories").unwrap(), "\"me_x\".\"memories\"");
    /// ```
    pub fn quote_table(self, table: &str) -> Result<String, IdentifierError> {
        let parts: Vec<&str> = table.split('.').collect();
        if parts.len() > 2 {
            return Err(IdentifierError::TooManyDots {
                table: table.to_owned(),
            });
        }
        let quoted: Result<Vec<String>, IdentifierError> =
            parts.iter().map(|p| self.quote_identifier(p)).collect();
        Ok(quoted?.join("."))
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name [`Dialect::quote_identifier`] or [`Dialect::quote_table`] refuses to quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifierError {
    /// The name is empty.
    Empty,
    /// The name holds the dialect's quote character or a NUL.
    Unquotable {
        /// The name as given.
        name: String,
        /// The dialect's quote character.
        quote: char,
    },
    /// A table name with more than one dot.
    TooManyDots {
        /// The table name as given.
        table: String,
    },
}

impl fmt::Display for IdentifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentifierError::Empty => f.write_str("an identifier must not be empty"),
            IdentifierError::Unquotable { name, quote } => write!(
                f,
                "identifier {name:?} contains {quote} or a NUL character, which migrun does not quote"
            ),
            IdentifierError::TooManyDots { table } => write!(
                f,
                "table {table:?} has more than one dot: expected `table` or `schema.table`"
            ),
        }
    }
}

impl std::error::Error for IdentifierError {}

/// What a connection may do; mirrors `access` in the WIT and reads from
/// configuration as `"read-only"` / `"read-write"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Access {
    /// Reads only, enforced by the database session itself.
    ReadOnly,
    /// Reads and writes, inside the unit's transaction.
    ReadWrite,
}

impl Access {
    /// The name used in configuration and reports (`read-only`, `read-write`).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn the_old_sdk_spelling_still_matches() {
        let d = Dialect::MySql;
        assert!(matches!(d, Dialect::Mysql));
        assert_eq!(Dialect::Mysql.as_str(), "mysql");
    }

    #[test]
    fn refused_identifiers_say_why() {
        assert_eq!(
            Dialect::Sqlite
                .quote_identifier("")
                .unwrap_err()
                .to_string(),
            "an identifier must not be empty"
        );
        assert_eq!(
            Dialect::MySql.quote_identifier("a`b").unwrap_err(),
            IdentifierError::Unquotable {
                name: "a`b".into(),
                quote: '`'
            }
        );
        assert!(Dialect::Postgres.quote_identifier("a\0b").is_err());
        assert!(matches!(
            Dialect::Postgres.quote_table("a.b.c"),
            Err(IdentifierError::TooManyDots { .. })
        ));
    }

    #[test]
    fn escaping_quote_doubles_the_quote_character() {
        assert_eq!(Dialect::Sqlite.quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(Dialect::MySql.quote_ident("a\"b"), "`a\"b`");
    }
}
