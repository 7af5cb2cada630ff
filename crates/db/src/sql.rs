//! Identifier quoting per dialect and the lexical server-file guard, over the
//! pure lexer of [`migrun_sql::lexer`] (re-exported here for the db layer).
//!
//! Placeholders and identifier quoting live with `Dialect` in `migrun-types`.

pub(crate) use migrun_sql::lexer::{
    Tok, Token, is_single_sqlite_statement, leading_keywords, qualifiers, tokens,
};

use super::{DbError, Dialect};

/// A name the dialect refuses to quote (`migrun_types::Dialect::quote_identifier`)
/// is a usage error of whoever supplied it.
impl From<migrun_types::IdentifierError> for DbError {
    fn from(e: migrun_types::IdentifierError) -> Self {
        DbError::usage(e.to_string())
    }
}

/// Why `sql` would read or write a file (or run a program) on the database
/// server, if it would: PostgreSQL `COPY` (to/from a file or `PROGRAM`; a
/// plugin has no use for the copy protocol, `bulk-insert` covers loading) and
/// the server-file functions (`pg_read_file`, `pg_read_binary_file`,
/// `pg_ls_dir`, `pg_stat_file`, `lo_import`, `lo_export`); MySQL
/// `SELECT … INTO OUTFILE|DUMPFILE`, `LOAD DATA`, `LOAD XML` and `LOAD_FILE`.
///
/// Why a lexical guard: a read-only transaction does not stop these (they
/// write no table), and with a privileged role they reach the server's
/// filesystem. The real boundary is the database role (no superuser, no
/// `FILE` privilege): a privileged role can still reach them through
/// dynamic SQL (`DO`/`EXECUTE`, stored routines), which no lexer sees.
pub(crate) fn server_file_access(sql: &str, dialect: Dialect) -> Option<String> {
    let toks = tokens(sql, dialect);
    let functions: &[&str] = match dialect {
        Dialect::Postgres => &[
            "pg_read_file",
            "pg_read_binary_file",
            "pg_ls_dir",
            "pg_stat_file",
            "lo_import",
            "lo_export",
        ],
        Dialect::MySql => &["load_file"],
        Dialect::Sqlite => &[],
    };
    for (i, t) in toks.iter().enumerate() {
        let next = toks.get(i + 1);
        // A quoted name calls the same function (`"pg_read_file"(…)`).
        let named =
            |f: &&&str| t.is(f) || matches!(&t.tok, Tok::Quoted(q) if q.eq_ignore_ascii_case(f));
        if let Some(f) = functions.iter().find(named)
            && next.is_some_and(|n| n.is_punct('('))
        {
            return Some(format!(
                "`{f}()` reads or writes files on the database server"
            ));
        }
        match dialect {
            Dialect::Postgres if i == 0 && t.is("COPY") => {
                return Some(
                    "`COPY` reads or writes files or runs programs on the database server \
                     (load rows with bulk-insert instead)"
                        .to_owned(),
                );
            }
            Dialect::MySql
                if t.is("INTO") && next.is_some_and(|n| n.is("OUTFILE") || n.is("DUMPFILE")) =>
            {
                return Some(
                    "`INTO OUTFILE` / `INTO DUMPFILE` writes a file on the database server"
                        .to_owned(),
                );
            }
            Dialect::MySql
                if i == 0 && t.is("LOAD") && next.is_some_and(|n| n.is("DATA") || n.is("XML")) =>
            {
                return Some(
                    "`LOAD DATA` / `LOAD XML` reads a file on the database server or the client"
                        .to_owned(),
                );
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let err: DbError = Dialect::Postgres.quote_table(bad).unwrap_err().into();
            assert_eq!(err.kind, super::super::DbErrorKind::Usage, "{bad}");
        }
        assert!(Dialect::MySql.quote_identifier("a`b").is_err());
    }

    #[test]
    fn server_file_access_is_found_outside_strings_only() {
        use Dialect::*;
        for (sql, dialect) in [
            ("COPY (SELECT 1) TO '/tmp/x'", Postgres),
            ("  /* c */ copy t FROM PROGRAM 'id'", Postgres),
            ("SELECT pg_read_file('/etc/passwd')", Postgres),
            ("SELECT lo_export(1, '/tmp/x')", Postgres),
            ("SELECT 1 INTO OUTFILE '/tmp/x'", MySql),
            ("SELECT * FROM t INTO DUMPFILE '/tmp/x'", MySql),
            ("LOAD DATA INFILE '/etc/passwd' INTO TABLE t", MySql),
            ("SELECT LOAD_FILE('/etc/passwd')", MySql),
            ("/*! SELECT 1 INTO OUTFILE '/tmp/x' */", MySql),
        ] {
            assert!(server_file_access(sql, dialect).is_some(), "{sql}");
        }
        for (sql, dialect) in [
            ("SELECT 'COPY x TO y'", Postgres),
            ("SELECT copy FROM t", Postgres),
            ("INSERT INTO t (note) VALUES ('INTO OUTFILE')", MySql),
            ("SELECT pg_read_file FROM t", Postgres),
            ("SELECT 1 INTO @x", MySql),
            ("COPY (SELECT 1) TO '/tmp/x'", Sqlite),
        ] {
            assert!(server_file_access(sql, dialect).is_none(), "{sql}");
        }
    }
}
