//! What a plugin's SQL text may not say, refused before it is sent.
//!
//! This is the *first* line, not the boundary: it exists to give a plugin a
//! clear message for a statement the host will not run. What actually holds
//! is enforced by the database and checked after the statement:
//! SQLite's authorizer and limits (`sqlite_authorizer.rs`), read-only
//! sessions, and the session check after every plugin statement
//! (`session_check.rs`), which notices a transaction ended or a database
//! switched however the statement was spelled.
//!
//! Where lexing is used to refuse, it fails closed: a statement is allowed
//! by what it *starts with* only when the host is sure what that is; bytes the
//! servers lex differently from the host are refused outright:
//!
//! - control characters other than tab, LF and CR, anywhere in the text
//!   (SQLite and MariaDB count a vertical tab as whitespace; the first wave
//!   of this guard did not, and `\x0bCOMMIT` walked past it);
//! - on MariaDB, executable comments (`/*! … */`, `/*M! … */`), whose
//!   content the server runs or ignores depending on its version;
//! - on MariaDB, compound statements (`BEGIN NOT ATOMIC`, `IF`, `WHILE`,
//!   `CASE`, `LOOP`, `REPEAT`, `FOR`, labels) and dynamic SQL (`PREPARE`,
//!   `EXECUTE`, `DEALLOCATE`): they can commit and switch the session to
//!   read-write *inside* one statement, before any check after it;
//! - on a read-only MariaDB connection, anything that does not start with a
//!   read (`SELECT`, `WITH`, `SHOW`, …), a savepoint, or a plain write the
//!   session refuses itself (`INSERT`, `UPDATE`, …): a procedure (`CALL`) or
//!   a `SET` other than of user variables could end the read-only
//!   transaction and write before the host looks again;
//! - on MariaDB, `SET` of anything but user variables and a short list of
//!   harmless session settings (`SET STATEMENT … FOR`, `SET GLOBAL`,
//!   `SET ROLE`, `SET autocommit`, `SET SESSION TRANSACTION …` and the like).
//!
//! Then, as before: transaction control (the host owns the unit's
//! transaction), more than one statement per call on SQLite, statements that
//! reach the database server's files, DDL while [`Connection::refuse_ddl`]
//! holds a reason, and the dry-run's own guard.

use super::{Access, Connection, DbError, DbErrorKind, Dialect, sql};

/// Session settings a plugin may `SET` on MariaDB: they change how the
/// plugin's own statements behave, never the transaction, the session's
/// access, its time zone or character set (which the host's decoding relies
/// on), its time limits, or anything server-wide.
const MARIADB_SETTABLE: &[&str] = &[
    "foreign_key_checks",
    "unique_checks",
    "sql_safe_updates",
    "group_concat_max_len",
    "div_precision_increment",
    "max_recursive_iterations",
    "cte_max_recursion_depth",
    "check_constraint_checks",
    "sql_notes",
    "sql_warnings",
    "innodb_lock_wait_timeout",
    "lock_wait_timeout",
];

/// What a read-only MariaDB connection's statements may start with.
const MARIADB_READ_ONLY_STARTS: &[&str] = &[
    "SELECT",
    "WITH",
    "VALUES",
    "TABLE",
    "SHOW",
    "DESCRIBE",
    "DESC",
    "EXPLAIN",
    "HELP",
    "DO",
    "SAVEPOINT",
    "RELEASE",
    "ROLLBACK",
    "SET", // `SET` narrowed to user variables below
    // Writes the read-only transaction refuses itself (error 1792): allowed through so
    // that the plugin hears the server's answer.
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
];

/// Statement starts that make a MariaDB compound statement or dynamic SQL.
const MARIADB_COMPOUND_STARTS: &[&str] = &[
    "BEGIN",
    "IF",
    "WHILE",
    "CASE",
    "LOOP",
    "REPEAT",
    "FOR",
    "DECLARE",
    "ITERATE",
    "LEAVE",
    "RETURN",
    "GET",
    "SIGNAL",
    "RESIGNAL",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
];

/// The first byte of `text` that is a control character other than tab, LF
/// and CR (C0, DEL, or a C1 control as a Unicode character), with its offset.
pub(crate) fn forbidden_control(text: &str) -> Option<(usize, char)> {
    text.char_indices()
        .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

impl Connection {
    /// Refuses what the host does not let a plugin's SQL do (see the module docs).
    pub(super) fn guard(&self, text: &str) -> Result<(), DbError> {
        let name = &self.name;
        if let Some((at, c)) = forbidden_control(text) {
            return Err(DbError::new(
                DbErrorKind::Refused,
                format!(
                    "refused on connection `{name}`: the SQL holds the control character U+{:04X} at byte {at}; \
                     only tab, line feed and carriage return are accepted in SQL text (pass data as parameters)",
                    c as u32
                ),
            ));
        }
        if self.dialect == Dialect::Sqlite && !sql::is_single_sqlite_statement(text) {
            return Err(DbError::usage(format!(
                "connection `{name}` runs one statement per call; split the SQL into separate calls"
            )));
        }
        let words = sql::leading_keywords(text, self.dialect, 4);
        let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        let transaction_control = match word(0) {
            "BEGIN" | "COMMIT" | "END" | "ABORT" | "XA" => true,
            "START" | "PREPARE" => word(1) == "TRANSACTION",
            "ROLLBACK" => {
                !(word(1) == "TO" || (matches!(word(1), "WORK" | "TRANSACTION") && word(2) == "TO"))
            }
            _ => false,
        };
        if transaction_control {
            return Err(DbError::usage(format!(
                "`{}` is not allowed on connection `{name}`: the host opens and ends transactions \
                 (use SAVEPOINT / ROLLBACK TO for a partial rollback)",
                word(0)
            )));
        }
        if self.dialect == Dialect::MySql {
            self.guard_mariadb(text, &words)?;
        }
        if let Some(why) = sql::server_file_access(text, self.dialect) {
            return Err(DbError::new(
                DbErrorKind::Refused,
                format!("refused on connection `{name}`: {why}"),
            ));
        }
        if self.dialect == Dialect::Sqlite && matches!(word(0), "ATTACH" | "DETACH" | "VACUUM") {
            return Err(DbError::new(
                DbErrorKind::Refused,
                format!(
                    "`{}` is not allowed on connection `{name}`: it would open or write other files",
                    word(0)
                ),
            ));
        }
        if let Some(reason) = &self.refuse_ddl {
            // Temporary tables are private to the session and commit nothing.
            let temporary = words
                .iter()
                .any(|w| matches!(w.as_str(), "TEMP" | "TEMPORARY"));
            let ddl = (matches!(word(0), "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "RENAME")
                && !temporary)
                || (self.dialect == Dialect::MySql
                    && matches!(
                        word(0),
                        "GRANT"
                            | "REVOKE"
                            | "LOCK"
                            | "UNLOCK"
                            | "ANALYZE"
                            | "OPTIMIZE"
                            | "REPAIR"
                            | "FLUSH"
                            | "INSTALL"
                            | "UNINSTALL"
                            | "CACHE"
                            | "RESET"
                    ));
            if ddl {
                return Err(DbError::new(
                    DbErrorKind::Refused,
                    format!(
                        "{reason}: `{}` statements are refused on connection `{name}`",
                        word(0)
                    ),
                ));
            }
        }
        if let Some(active) = &self.dry_run {
            active.guard(name, self.dialect, text, &words)?;
        }
        Ok(())
    }

    /// The MariaDB rules of the module docs.
    fn guard_mariadb(&self, text: &str, words: &[String]) -> Result<(), DbError> {
        let name = &self.name;
        let refused = |why: String| {
            Err(DbError::new(
                DbErrorKind::Refused,
                format!("refused on connection `{name}`: {why}"),
            ))
        };
        if text.contains("/*!") || text.contains("/*M!") || text.contains("/*m!") {
            return refused(
                "executable comments (`/*! … */`) are not accepted: the server runs or skips their \
                 content depending on its version"
                    .into(),
            );
        }
        let tokens = sql::tokens(text, Dialect::MySql);
        let first = words.first().map(String::as_str).unwrap_or("");
        let labelled = tokens.len() > 1
            && matches!(tokens[0].tok, sql::Tok::Word(_) | sql::Tok::Quoted(_))
            && tokens[1].is_punct(':');
        if labelled || MARIADB_COMPOUND_STARTS.contains(&first) {
            return refused(format!(
                "`{}` starts a compound statement or dynamic SQL, which can end the unit's transaction \
                 from inside one statement; send each statement on its own",
                if labelled { "label:" } else { first }
            ));
        }
        let read_only = self.effective_access() == Access::ReadOnly;
        if read_only && !MARIADB_READ_ONLY_STARTS.contains(&first) {
            return Err(DbError::new(
                DbErrorKind::ReadOnly,
                format!(
                    "connection `{name}` is read-only: `{}` is not accepted on it (reads, savepoints and \
                     user variables only)",
                    if first.is_empty() {
                        "this statement"
                    } else {
                        first
                    }
                ),
            ));
        }
        if first == "SET"
            && let Some(target) = unsettable_mariadb_target(text, &tokens, read_only)
        {
            let kind = if read_only {
                DbErrorKind::ReadOnly
            } else {
                DbErrorKind::Refused
            };
            return Err(DbError::new(
                kind,
                format!(
                    "`SET {target}` is not allowed on connection `{name}`: a plugin may set user \
                     variables (`@x`){} only; the host owns transactions, access, time limits, \
                     time zone and character set",
                    if read_only {
                        ""
                    } else {
                        " and a few session settings (foreign_key_checks, unique_checks, …)"
                    }
                ),
            ));
        }
        Ok(())
    }
}

/// The first target of a MariaDB `SET` statement a plugin may not set, as
/// written; `None` when every target is a user variable (or, unless
/// `read_only`, a session setting of [`MARIADB_SETTABLE`]).
fn unsettable_mariadb_target(text: &str, tokens: &[sql::Token], read_only: bool) -> Option<String> {
    // Top-level comma-separated assignments after `SET`.
    let mut i = 1;
    loop {
        let t = tokens.get(i)?;
        let written = &text[t.start..t.end.min(text.len())];
        let target = match &t.tok {
            sql::Tok::Param if written.starts_with("@@") => {
                let lower = written.to_ascii_lowercase();
                let bare = lower
                    .strip_prefix("@@session.")
                    .or_else(|| lower.strip_prefix("@@local."))
                    .or_else(|| lower.strip_prefix("@@"))
                    .unwrap_or(&lower)
                    .to_owned();
                (!read_only && !bare.contains('.') && MARIADB_SETTABLE.contains(&bare.as_str()))
                    .then_some(())
                    .map_or(Some(written.to_owned()), |()| None)
            }
            sql::Tok::Param => None, // `@user_variable`
            sql::Tok::Word(w) => {
                let lower = w.to_ascii_lowercase();
                let (setting, next) = if matches!(lower.as_str(), "session" | "local") {
                    match tokens.get(i + 1).map(|t| &t.tok) {
                        Some(sql::Tok::Word(v)) => (v.to_ascii_lowercase(), i + 1),
                        _ => return Some(written.to_owned()),
                    }
                } else {
                    (lower, i)
                };
                i = next;
                (!read_only && MARIADB_SETTABLE.contains(&setting.as_str()))
                    .then_some(())
                    .map_or(Some(setting), |()| None)
            }
            _ => Some(written.to_owned()),
        };
        if target.is_some() {
            return target;
        }
        // The assignment operator, then the value up to the next top-level comma.
        let mut depth = 0usize;
        i += 1;
        loop {
            let t = tokens.get(i)?;
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                depth = depth.saturating_sub(1);
            } else if t.is_punct(',') && depth == 0 {
                break;
            }
            i += 1;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_target(sql: &str, read_only: bool) -> Option<String> {
        let tokens = sql::tokens(sql, Dialect::MySql);
        unsettable_mariadb_target(sql, &tokens, read_only)
    }

    #[test]
    fn control_characters_other_than_tab_lf_cr_are_found() {
        assert_eq!(forbidden_control("SELECT 1\t\r\n"), None);
        assert_eq!(forbidden_control("\x0bCOMMIT"), Some((0, '\x0b')));
        assert_eq!(forbidden_control("SELECT\x0c1"), Some((6, '\x0c')));
        assert_eq!(forbidden_control("SELECT 'é'\u{85}"), Some((11, '\u{85}')));
        assert_eq!(forbidden_control("x\0"), Some((1, '\0')));
        assert_eq!(forbidden_control("x\x7f"), Some((1, '\x7f')));
    }

    #[test]
    fn mariadb_set_allows_user_variables_and_listed_settings_only() {
        assert_eq!(set_target("SET @a = 1, @b = (SELECT 1, 2)", true), None);
        assert_eq!(set_target("SET foreign_key_checks = 0", false), None);
        assert_eq!(
            set_target("SET SESSION unique_checks = 0, @x = 1", false),
            None
        );
        assert_eq!(
            set_target("SET @@session.foreign_key_checks = 0", false),
            None
        );
        for (sql, target) in [
            ("SET autocommit = 1", "autocommit"),
            ("SET @x = 1, autocommit = 1", "autocommit"),
            ("SET SESSION TRANSACTION READ WRITE", "transaction"),
            ("SET TRANSACTION READ WRITE", "transaction"),
            (
                "SET STATEMENT max_statement_time = 1 FOR COMMIT",
                "statement",
            ),
            ("SET GLOBAL general_log = 1", "global"),
            ("SET @@global.init_connect = 'x'", "@@global.init_connect"),
            ("SET @@session.tx_read_only = 0", "@@session.tx_read_only"),
            ("SET ROLE admin", "role"),
            ("SET NAMES latin1", "names"),
            ("SET time_zone = '+05:00'", "time_zone"),
            ("SET max_statement_time = 0", "max_statement_time"),
            ("SET PASSWORD = PASSWORD('x')", "password"),
        ] {
            assert_eq!(set_target(sql, false).as_deref(), Some(target), "{sql}");
        }
        assert_eq!(
            set_target("SET foreign_key_checks = 0", true).as_deref(),
            Some("foreign_key_checks")
        );
    }
}
