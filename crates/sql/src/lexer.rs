//! The SQL lexer: leading keywords, a token stream ([`tokens`]) and the helpers
//! that walk it (names, groups, top-level positions, statement splitting), and
//! the SQLite single-statement check.
//!
//! Pure: text in, tokens out, no I/O. The host never rewrites a plugin's
//! statement and never relies on parsing to enforce read-only access (the
//! database session does that). Lexing serves narrow purposes: finding a
//! statement's leading keywords (to refuse DDL in a dry-run and transaction
//! control that belongs to the host), proving that a SQLite string holds a
//! single statement (SQLite would otherwise run them all), and a token stream
//! from which the plan classifies statements and the lint reads DDL, and from
//! which a scratch-database dry-run finds names qualified with another
//! database ([`qualifiers`]).
//!
//! Invariant: every function is total over any input text (no panics on
//! unterminated quotes or comments), which is what makes it fuzzable.

use super::Dialect;

/// Up to `n` leading keywords of `sql`, uppercased, skipping whitespace and comments.
///
/// Stops at the first token that is not a bare word (a parenthesis, a quote, …).
/// On MySQL, executable comments (`/*! … */`, `/*M! … */`) are not comments: the
/// server runs their content, so their words count.
pub fn leading_keywords(sql: &str, dialect: Dialect, n: usize) -> Vec<String> {
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
        // MySQL/MariaDB: `--` starts a comment only before whitespace, a control
        // character or the end (`5--1` is five minus minus one).
        let dashes = b[i..].starts_with(b"--")
            && (dialect != Dialect::MySql
                || b.get(i + 2)
                    .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()));
        if dashes || (dialect == Dialect::MySql && b.get(i) == Some(&b'#')) {
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
pub fn is_single_sqlite_statement(sql: &str) -> bool {
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

/// One lexical token of a SQL statement (see [`tokens`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A bare word: keyword or unquoted identifier, as written.
    Word(String),
    /// A quoted identifier (`"x"`, `` `x` ``, `[x]`), unescaped.
    Quoted(String),
    /// A string literal, unescaped as far as the host needs (`''` and backslash escapes).
    Str(String),
    /// A numeric literal.
    Num,
    /// A parameter or variable: `$1`, `?`, `:name`, `@var`, `@@session.var`.
    Param,
    /// Any other character: `(`, `)`, `,`, `;`, `.`, `=`, `*`, …
    Punct(char),
}

/// A token and where it is in the statement (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub tok: Tok,
    /// Its first byte.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

impl Token {
    /// Whether this is the bare word `kw` (case-insensitive).
    pub fn is(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    /// Whether this is the punctuation `c`.
    pub fn is_punct(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }

    /// The bare word, uppercased; empty for any other token.
    pub fn upper(&self) -> String {
        match &self.tok {
            Tok::Word(w) => w.to_ascii_uppercase(),
            _ => String::new(),
        }
    }
}

/// The tokens of `sql` in this dialect's lexical rules, comments and
/// whitespace dropped.
///
/// Strings: `'…'` everywhere (`''` escapes; backslash escapes on MySQL and in
/// PostgreSQL `E'…'`), `"…"` on MySQL (no `ANSI_QUOTES`), `$tag$…$tag$` on
/// PostgreSQL. Quoted identifiers: `"…"` on PostgreSQL and SQLite, `` `…` ``
/// on MySQL and SQLite, `[…]` on SQLite. MySQL's executable comments
/// (`/*! … */`) are read as code, like [`leading_keywords`] does. Malformed
/// input (an unterminated string) ends the stream; nothing here fails.
pub fn tokens(sql: &str, dialect: Dialect) -> Vec<Token> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let text = |s: usize, e: usize| String::from_utf8_lossy(&b[s..e.min(b.len())]).into_owned();
    while i < b.len() {
        i = skip_trivia(b, i, dialect);
        if i >= b.len() {
            break;
        }
        let start = i;
        let c = b[i];
        let tok = match c {
            b'\'' => {
                let backslash = dialect == Dialect::MySql
                    || (dialect == Dialect::Postgres
                        && out
                            .last()
                            .is_some_and(|t: &Token| t.end == start && t.is("E")));
                if backslash && dialect == Dialect::Postgres {
                    // The `E` prefix was lexed as a word: it belongs to this string.
                    out.pop();
                }
                let (content, end) = quoted(b, i, b'\'', backslash);
                i = end;
                Tok::Str(content)
            }
            b'"' if dialect == Dialect::MySql => {
                let (content, end) = quoted(b, i, b'"', true);
                i = end;
                Tok::Str(content)
            }
            b'"' => {
                let (content, end) = quoted(b, i, b'"', false);
                i = end;
                Tok::Quoted(content)
            }
            b'`' if dialect != Dialect::Postgres => {
                let (content, end) = quoted(b, i, b'`', false);
                i = end;
                Tok::Quoted(content)
            }
            b'[' if dialect == Dialect::Sqlite => {
                let end = b[i..]
                    .iter()
                    .position(|&x| x == b']')
                    .map_or(b.len(), |p| i + p + 1);
                let content = text(i + 1, end.saturating_sub(1).max(i + 1));
                i = end;
                Tok::Quoted(content)
            }
            b'$' if dialect == Dialect::Postgres => {
                // `$1` parameter, or a `$tag$ … $tag$` string.
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                if j > i + 1 {
                    i = j;
                    Tok::Param
                } else {
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                        j += 1;
                    }
                    if j < b.len() && b[j] == b'$' {
                        let tag = &b[i..=j];
                        let body = j + 1;
                        let close = b[body..]
                            .windows(tag.len())
                            .position(|w| w == tag)
                            .map_or(b.len(), |p| body + p);
                        let content = text(body, close);
                        i = (close + tag.len()).min(b.len());
                        Tok::Str(content)
                    } else {
                        i += 1;
                        Tok::Punct('$')
                    }
                }
            }
            b'?' => {
                i += 1;
                Tok::Param
            }
            b'@' | b':' | b'$'
                if ((c == b'@' && dialect != Dialect::Postgres) || dialect == Dialect::Sqlite)
                    && b.get(i + 1)
                        .is_some_and(|&n| n.is_ascii_alphabetic() || n == b'_' || n == b'@') =>
            {
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'@' | b'$' | b'.'))
                {
                    i += 1;
                }
                Tok::Param
            }
            c if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    let exponent = matches!(b[i], b'e' | b'E');
                    i += 1;
                    if exponent && i < b.len() && matches!(b[i], b'+' | b'-') {
                        i += 1;
                    }
                }
                Tok::Num
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'$') || b[i] >= 0x80)
                {
                    i += 1;
                }
                Tok::Word(text(start, i))
            }
            _ => {
                // One (possibly multi-byte) character.
                let ch = sql[i..].chars().next().unwrap_or('?');
                i += ch.len_utf8();
                Tok::Punct(ch)
            }
        };
        out.push(Token { tok, start, end: i });
    }
    out
}

/// A quoted run starting at `b[i] == q`: its unescaped content and the index after it.
/// A doubled quote is an escaped quote; so is `\q` when `backslash`.
fn quoted(b: &[u8], i: usize, q: u8, backslash: bool) -> (String, usize) {
    let mut j = i + 1;
    let mut content = Vec::new();
    while j < b.len() {
        if backslash && b[j] == b'\\' && j + 1 < b.len() {
            content.push(b[j + 1]);
            j += 2;
        } else if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                content.push(q);
                j += 2;
            } else {
                return (String::from_utf8_lossy(&content).into_owned(), j + 1);
            }
        } else {
            content.push(b[j]);
            j += 1;
        }
    }
    (String::from_utf8_lossy(&content).into_owned(), b.len())
}

/// Identifiers of `sql` that qualify another name (`x` in `x.y`), as written
/// (quoted ones unquoted). On MySQL `db.table` and `table.column` look alike,
/// so a caller compares these with the names it cares about.
pub fn qualifiers(sql: &str, dialect: Dialect) -> Vec<String> {
    let toks = tokens(sql, dialect);
    let mut out = Vec::new();
    for w in toks.windows(2) {
        if let (Tok::Word(name) | Tok::Quoted(name), Tok::Punct('.')) = (&w[0].tok, &w[1].tok)
            && w[1].start == w[0].end
        {
            out.push(name.clone());
        }
    }
    out
}

/// The name (possibly qualified: `schema.table`) starting at `tokens[i]`,
/// normalised as the catalog stores it — PostgreSQL folds unquoted words to
/// lowercase; MySQL and SQLite names are kept as written — and the index of
/// the token after it.
pub fn name_at(tokens: &[Token], i: usize, dialect: Dialect) -> Option<(String, usize)> {
    let part = |t: &Token| match &t.tok {
        Tok::Word(w) if dialect == Dialect::Postgres => Some(w.to_lowercase()),
        Tok::Word(w) | Tok::Quoted(w) => Some(w.clone()),
        _ => None,
    };
    let mut name = part(tokens.get(i)?)?;
    let mut j = i + 1;
    while tokens.get(j).is_some_and(|t| t.is_punct('.')) {
        let Some(next) = tokens.get(j + 1).and_then(part) else {
            break;
        };
        name.push('.');
        name.push_str(&next);
        j += 2;
    }
    Some((name, j))
}

/// The index after the parenthesised group opening at `tokens[i]` (`i` itself
/// when it is not `(`); the end of `tokens` when the group is not closed.
pub fn skip_group(tokens: &[Token], i: usize) -> usize {
    if !tokens.get(i).is_some_and(|t| t.is_punct('(')) {
        return i;
    }
    let mut depth = 0usize;
    for (j, t) in tokens.iter().enumerate().skip(i) {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth -= 1;
            if depth == 0 {
                return j + 1;
            }
        }
    }
    tokens.len()
}

/// The indexes of `tokens` outside any parentheses.
pub fn top_level(tokens: &[Token]) -> impl Iterator<Item = usize> + '_ {
    let mut depth = 0usize;
    tokens.iter().enumerate().filter_map(move |(i, t)| {
        if t.is_punct('(') {
            depth += 1;
            None
        } else if t.is_punct(')') {
            depth = depth.saturating_sub(1);
            None
        } else {
            (depth == 0).then_some(i)
        }
    })
}

/// Splits `tokens` into statements at top-level `;`, dropping empty ones.
pub fn split_statements(tokens: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        if t.is_punct(';') {
            if i > start {
                out.push(&tokens[start..i]);
            }
            start = i + 1;
        }
    }
    if start < tokens.len() {
        out.push(&tokens[start..]);
    }
    out
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
}
