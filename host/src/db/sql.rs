//! Just enough SQL lexing for the host's guards, and identifier quoting.
//!
//! The host never rewrites a plugin's statement and never relies on parsing to
//! enforce read-only access (the database session does that). Lexing serves
//! three narrow purposes: finding a statement's leading keywords (to refuse DDL
//! in a dry-run and transaction control that belongs to the host), proving that
//! a SQLite string holds a single statement (SQLite would otherwise run them
//! all), and quoting identifiers for `bulk_insert`.

use super::{DbError, Dialect};

/// Up to `n` leading keywords of `sql`, uppercased, skipping whitespace and comments.
///
/// Stops at the first token that is not a bare word (a parenthesis, a quote, …).
/// On MySQL, executable comments (`/*! … */`, `/*M! … */`) are not comments: the
/// server runs their content, so their words count.
pub(crate) fn leading_keywords(sql: &str, dialect: Dialect, n: usize) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut words = Vec::new();
    while words.len() < n {
        i = skip_trivia(bytes, i, dialect);
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i == start {
            break;
        }
        words.push(sql[start..i].to_ascii_uppercase());
    }
    words
}

/// Skips whitespace and comments from `i`; returns the index of the next token.
fn skip_trivia(b: &[u8], mut i: usize, dialect: Dialect) -> usize {
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") || (dialect == Dialect::MySql && b.get(i) == Some(&b'#')) {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            if dialect == Dialect::MySql
                && (b[i..].starts_with(b"/*!") || b[i..].starts_with(b"/*M!"))
            {
                // An executable comment: skip the marker and the optional version number only.
                i += if b[i + 2] == b'!' { 3 } else { 4 };
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                continue;
            }
            i = skip_block_comment(b, i, dialect == Dialect::Postgres);
        } else if dialect == Dialect::MySql && b[i..].starts_with(b"*/") {
            // The end of an executable comment whose content we are reading.
            i += 2;
        } else {
            return i;
        }
    }
}

/// Skips a `/* … */` comment starting at `i` (nested when `nested`, as PostgreSQL does).
fn skip_block_comment(b: &[u8], mut i: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i..].starts_with(b"/*") && (nested || depth == 0) {
            depth += 1;
            i += 2;
        } else if b[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Whether a SQLite string holds at most one statement (empty statements aside).
///
/// sqlx runs every statement of a multi-statement string on SQLite, which would
/// let `SELECT 1; DROP TABLE t` past every guard that looks at the first
/// keyword. This is the state machine of SQLite's own `sqlite3_complete()`,
/// which knows that the semicolons inside `CREATE TRIGGER … BEGIN … END` do not
/// end the statement.
pub(crate) fn is_single_sqlite_statement(sql: &str) -> bool {
    #[derive(Clone, Copy)]
    enum Tok {
        Semi = 0,
        Ws = 1,
        Other = 2,
        Explain = 3,
        Create = 4,
        Temp = 5,
        Trigger = 6,
        End = 7,
    }
    // Rows are states (0 invalid, 1 start, 2 normal, 3 explain, 4 create,
    // 5 trigger, 6 semi, 7 end), columns are tokens; from SQLite's complete.c.
    const TRANS: [[u8; 8]; 8] = [
        [1, 0, 2, 3, 4, 2, 2, 2],
        [1, 1, 2, 3, 4, 2, 2, 2],
        [1, 2, 2, 2, 2, 2, 2, 2],
        [1, 3, 3, 2, 4, 2, 2, 2],
        [1, 4, 2, 2, 2, 4, 5, 2],
        [6, 5, 5, 5, 5, 5, 5, 5],
        [6, 6, 5, 5, 5, 5, 5, 7],
        [1, 7, 5, 5, 5, 5, 5, 5],
    ];
    let b = sql.as_bytes();
    let mut i = 0;
    let mut state = 0u8;
    let mut finished_one = false;
    while i < b.len() {
        let tok = match b[i] {
            b';' => {
                i += 1;
                Tok::Semi
            }
            b' ' | b'\r' | b'\t' | b'\n' | b'\x0c' => {
                i += 1;
                Tok::Ws
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(b, i, false);
                Tok::Ws
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                Tok::Ws
            }
            b'[' => {
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
                i += 1;
                Tok::Other
            }
            q @ (b'`' | b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i += 1;
                Tok::Other
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                match sql[start..i].to_ascii_lowercase().as_str() {
                    "explain" => Tok::Explain,
                    "create" => Tok::Create,
                    "temp" | "temporary" => Tok::Temp,
                    "trigger" => Tok::Trigger,
                    "end" => Tok::End,
                    _ => Tok::Other,
                }
            }
            _ => {
                i += 1;
                Tok::Other
            }
        };
        if finished_one && !matches!(tok, Tok::Semi | Tok::Ws) {
            return false;
        }
        let next = TRANS[state as usize][tok as usize];
        if matches!(tok, Tok::Semi) && next == 1 && !matches!(state, 0 | 1) {
            finished_one = true;
        }
        state = next;
    }
    true
}

impl Dialect {
    /// Quotes one identifier for this dialect (`"name"`, or `` `name` `` on MySQL).
    ///
    /// A name that is empty or contains the quote character (or a NUL) is
    /// refused rather than escaped: such names are almost always a mistake or an
    /// injection attempt, and refusing keeps the quoting trivially correct.
    pub fn quote_identifier(self, name: &str) -> Result<String, DbError> {
        let quote = if self == Dialect::MySql { '`' } else { '"' };
        if name.is_empty() {
            return Err(DbError::usage("an identifier must not be empty"));
        }
        if name.contains(quote) || name.contains('\0') {
            return Err(DbError::usage(format!(
                "identifier {name:?} contains {quote} or a NUL character, which migrun does not quote"
            )));
        }
        Ok(format!("{quote}{name}{quote}"))
    }

    /// Quotes `table` or `schema.table` (split on the dot) for this dialect.
    pub fn quote_table(self, table: &str) -> Result<String, DbError> {
        let parts: Vec<&str> = table.split('.').collect();
        if parts.len() > 2 {
            return Err(DbError::usage(format!(
                "table {table:?} has more than one dot: expected `table` or `schema.table`"
            )));
        }
        let quoted: Result<Vec<String>, DbError> =
            parts.iter().map(|p| self.quote_identifier(p)).collect();
        Ok(quoted?.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_skip_comments() {
        let kw = |s: &str, d| leading_keywords(s, d, 2);
        assert_eq!(
            kw(
                "  -- hi\n /* a /* nested */ b */ create table t",
                Dialect::Postgres
            ),
            ["CREATE", "TABLE"]
        );
        assert_eq!(kw("# c\nDrop table x", Dialect::MySql), ["DROP", "TABLE"]);
        assert_eq!(kw("/*!50001 CREATE */ x", Dialect::MySql), ["CREATE", "X"]);
        assert_eq!(kw("/*M!100101 alter */", Dialect::MySql), ["ALTER"]);
        assert_eq!(kw("/* plain */ select 1", Dialect::MySql), ["SELECT", "1"]);
        assert_eq!(kw("(select 1)", Dialect::Sqlite), Vec::<String>::new());
        assert_eq!(kw("", Dialect::Sqlite), Vec::<String>::new());
        assert_eq!(
            kw("/* unterminated", Dialect::Postgres),
            Vec::<String>::new()
        );
    }

    #[test]
    fn sqlite_single_statement() {
        assert!(is_single_sqlite_statement("select 1"));
        assert!(is_single_sqlite_statement(
            "select 1;  -- trailing\n ; /* c */"
        ));
        assert!(is_single_sqlite_statement(
            "select ';' as x, \"a;b\" from [c;d]"
        ));
        assert!(is_single_sqlite_statement(
            "CREATE TEMP TRIGGER t AFTER INSERT ON x BEGIN UPDATE y SET a = 1; DELETE FROM z; END;"
        ));
        assert!(!is_single_sqlite_statement("select 1; drop table t"));
        assert!(!is_single_sqlite_statement("select 1;attach 'x' as y"));
        assert!(!is_single_sqlite_statement(
            "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; END; DROP TABLE x"
        ));
    }

    #[test]
    fn quoting() {
        assert_eq!(Dialect::Postgres.quote_table("s.t").unwrap(), "\"s\".\"t\"");
        assert_eq!(Dialect::MySql.quote_table("t").unwrap(), "`t`");
        assert_eq!(
            Dialect::Sqlite.quote_identifier("we ird").unwrap(),
            "\"we ird\""
        );
        assert_eq!(Dialect::MySql.quote_identifier("a\"b").unwrap(), "`a\"b`");
        for bad in ["a\"b", "", "a.b.c"] {
            let err = Dialect::Postgres.quote_table(bad).unwrap_err();
            assert_eq!(err.kind, super::super::DbErrorKind::Usage, "{bad}");
        }
        assert!(Dialect::MySql.quote_identifier("a`b").is_err());
    }
}
