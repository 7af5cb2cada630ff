//! A statement's *shape*: its text with whitespace and comments normalised and inline
//! literals abstracted, so that a comparison (`replay --plugin`) can align the raw
//! `execute` statements of two plugin versions by what they do and show which of their
//! parameters changed, instead of comparing whole statement texts.
//!
//! `UPDATE t\n   SET a=$1 WHERE id = 7` has the shape `UPDATE t SET a = $1 WHERE id = {1}`
//! and the parameters `$1` (bound) and `{1}` (the inline literal `7`). Two statements
//! that differ only in their bound values or inline literals have the same shape.

use migrun_sql::lexer::{Tok, tokens};
use migrun_types::Dialect;
use migrun_types::value::Value;

/// A statement's shape and the values its parameters took in one execution.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Shaped {
    /// The normalised text (see the module docs).
    pub shape: String,
    /// The execution's values, labelled: the bound parameters (`$1`, `$2`… on PostgreSQL,
    /// `?1`, `?2`… elsewhere), then the inline literals (`{1}`, `{2}`…) as written.
    pub values: Vec<(String, Value)>,
}

/// The shape of `sql` in `dialect`, and the labelled values of one execution with `params`.
pub(super) fn shape(sql: &str, dialect: Dialect, params: &[Value]) -> Shaped {
    let mut shape = String::with_capacity(sql.len().min(4096));
    let mut literals = Vec::new();
    let mut previous: Option<char> = None;
    let mut previous_end = usize::MAX;
    for token in tokens(sql, dialect) {
        let touching = token.start == previous_end;
        previous_end = token.end;
        let piece = match &token.tok {
            Tok::Str(_) | Tok::Num => {
                literals.push(Value::Text(sql[token.start..token.end].to_owned()));
                format!("{{{}}}", literals.len())
            }
            _ => sql[token.start..token.end].to_owned(),
        };
        let first = piece.chars().next();
        // One space between tokens; none after `(` or `.`, before `)`, `,`, `.` or `;`,
        // around `::`, nor before a `(` written right after a name (`lower(x)`).
        let glued = matches!(previous, Some('(' | '.') | None)
            || matches!(first, Some(')' | ',' | '.' | ';'))
            || (previous == Some(':') && first == Some(':'))
            || (touching && (previous == Some(':') || first == Some(':')))
            || (touching && first == Some('('));
        if !glued {
            shape.push(' ');
        }
        shape.push_str(&piece);
        previous = piece.chars().last();
    }
    let bound = |i: usize| match dialect {
        Dialect::Postgres => format!("${}", i + 1),
        Dialect::MySql | Dialect::Sqlite => format!("?{}", i + 1),
    };
    let mut values: Vec<(String, Value)> = params
        .iter()
        .enumerate()
        .map(|(i, v)| (bound(i), v.clone()))
        .collect();
    values.extend(
        literals
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("{{{}}}", i + 1), v)),
    );
    Shaped { shape, values }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_comments_and_literals_do_not_change_the_shape() {
        let a = shape(
            "UPDATE t\n   SET a=$1 -- why\n WHERE id = 7",
            Dialect::Postgres,
            &[Value::Int(5)],
        );
        let b = shape(
            "UPDATE t SET a = $1 WHERE id = 8",
            Dialect::Postgres,
            &[Value::Int(6)],
        );
        assert_eq!(a.shape, "UPDATE t SET a = $1 WHERE id = {1}");
        assert_eq!(a.shape, b.shape);
        assert_eq!(
            a.values,
            vec![
                ("$1".to_owned(), Value::Int(5)),
                ("{1}".to_owned(), Value::Text("7".into()))
            ]
        );
        let c = shape(
            "UPDATE `t` SET name = CASE id WHEN 1 THEN 'x' END, n = lower(?)",
            Dialect::MySql,
            &[Value::Text("A".into())],
        );
        assert_eq!(
            c.shape,
            "UPDATE `t` SET name = CASE id WHEN {1} THEN {2} END, n = lower(?)"
        );
        assert_eq!(c.values[0].0, "?1");
        assert_eq!(c.values[2], ("{2}".to_owned(), Value::Text("'x'".into())));
        assert_eq!(
            shape(
                "DELETE FROM s.t WHERE (a, b) IN ((1, 2))",
                Dialect::Sqlite,
                &[]
            )
            .shape,
            "DELETE FROM s.t WHERE (a, b) IN (({1}, {2}))"
        );
    }
}
