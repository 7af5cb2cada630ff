//! Table patterns: a declared write such as `me_<slug>.memory` names a
//! family of tables that the run may create (one schema per engine) rather
//! than one table.
//!
//! Each `<name>` placeholder matches one or more identifier characters
//! (`[A-Za-z0-9_]`), never a `.`, so a placeholder stays inside one part of a
//! `schema.table` name. Everything else matches itself, exactly: `_` and `%`
//! are ordinary characters (matching is done here, not by SQL `LIKE`).
//! An unqualified pattern (`log_<day>`) matches tables of the connection's
//! default schema only (PostgreSQL `public`, the MariaDB connection's
//! database, SQLite's `main`); a qualified one matches `schema.table` names.

use super::{BackupError, Manifest, ManifestPattern, check_table_name};

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Characters that must appear as they are.
    Literal(String),
    /// `<name>`: one or more of `[A-Za-z0-9_]`.
    Placeholder,
}

/// A declared write with `<…>` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    text: String,
    pieces: Vec<Piece>,
}

/// Whether `name` is written as a pattern (has a `<`), valid or not.
pub fn is_pattern(name: &str) -> bool {
    name.contains('<')
}

fn identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl TablePattern {
    /// Parses `text`. It must have at least one placeholder; placeholders are
    /// `<` + identifier characters + `>`; literal parts are identifier characters,
    /// `$` and at most one `.` (schema separator), with neither part empty.
    pub fn parse(text: &str) -> Result<TablePattern, BackupError> {
        let invalid = |why: &str| {
            BackupError::InvalidName(format!(
                "table pattern {text:?} {why} (expected names like `me_<slug>.memory`)"
            ))
        };
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '<' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('>') => break,
                            Some(n) if identifier_char(n) => name.push(n),
                            _ => return Err(invalid("has an unclosed or malformed `<…>`")),
                        }
                    }
                    if name.is_empty() {
                        return Err(invalid("has an empty `<>`"));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Placeholder);
                }
                c if identifier_char(c) || c == '$' || c == '.' => literal.push(c),
                _ => return Err(invalid(&format!("has the character {c:?}"))),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        if !pieces.contains(&Piece::Placeholder) {
            return Err(invalid("has no `<…>` placeholder"));
        }
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(invalid("is not `table` or `schema.table`"));
        }
        Ok(TablePattern {
            text: text.to_owned(),
            pieces,
        })
    }

    /// The pattern as declared.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The schema part of a qualified pattern (`me_<slug>` for `me_<slug>.memory`).
    pub fn schema(&self) -> Option<&str> {
        self.text.split_once('.').map(|(s, _)| s)
    }

    /// Whether `name` (`table`, or `schema.table` when the pattern is qualified) matches.
    pub fn matches(&self, name: &str) -> bool {
        if name.contains('.') != self.text.contains('.') {
            return false;
        }
        matches_from(&self.pieces, name)
    }
}

/// Backtracking match of `pieces` against all of `rest`.
fn matches_from(pieces: &[Piece], rest: &str) -> bool {
    match pieces.split_first() {
        None => rest.is_empty(),
        Some((Piece::Literal(lit), tail)) => rest
            .strip_prefix(lit.as_str())
            .is_some_and(|after| matches_from(tail, after)),
        Some((Piece::Placeholder, tail)) => {
            let run = rest.chars().take_while(|c| identifier_char(*c)).count();
            // Identifier characters are ASCII, so char counts are byte offsets.
            (1..=run).any(|taken| matches_from(tail, &rest[taken..]))
        }
    }
}

/// Why a declared write would claim tables no plugin can know it owns, if it would.
///
/// A restore drops what matches a pattern now but did not when the backup was taken, and
/// overwrites what matched then: a pattern must therefore name a family of tables, not
/// every table. Refused: a bare wildcard of another syntax (`*`, `*.*`, `%`, `?`: never a
/// migrun pattern, and what an author writing one means is "everything"), and a pattern
/// with a part (schema or table) that has no fixed letter or digit (`<t>`, `<s>.<t>`,
/// `<a>_<b>`, `public.<t>` is fine for its schema but not its table). `log_<day>` and
/// `me_<slug>.memory` pass.
pub fn catch_all(name: &str) -> Option<String> {
    if let Some(c) = name.chars().find(|c| matches!(c, '*' | '%' | '?')) {
        return Some(format!(
            "`{c}` is a wildcard that would claim every table; migrun patterns use `<name>` \
             placeholders next to fixed text (`log_<day>`, `me_<slug>.memory`)"
        ));
    }
    if !is_pattern(name) {
        return None;
    }
    for part in name.split('.') {
        let mut fixed = String::new();
        let mut inside = false;
        for c in part.chars() {
            match c {
                '<' => inside = true,
                '>' => inside = false,
                c if !inside => fixed.push(c),
                _ => {}
            }
        }
        if !fixed.chars().any(|c| c.is_ascii_alphanumeric()) {
            return Some(format!(
                "it is a catch-all: its part `{part}` is only placeholders, so it matches \
                 tables the plugin never created, which a restore would drop or overwrite; \
                 declare the tables, or a pattern with fixed text in each part \
                 (`log_<day>`, `me_<slug>.memory`)"
            ));
        }
    }
    None
}

/// Checks a declared write: a plain table name or a valid pattern.
pub fn check_table_or_pattern(name: &str) -> Result<(), BackupError> {
    if is_pattern(name) {
        TablePattern::parse(name).map(|_| ())
    } else {
        check_table_name(name)
    }
}

/// What a database holds, as far as patterns and schemas are concerned: read in the
/// snapshot's own transaction, and again at restore time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    /// Every table: `schema.table` when `default_schema` is set, bare names otherwise (SQLite).
    pub tables: Vec<String>,
    /// The schema unqualified names live in (PostgreSQL `public`, MariaDB the connection's
    /// database); `None` where names are never qualified (SQLite).
    pub default_schema: Option<String>,
    /// Every schema (MariaDB: database), system ones excepted; `None` where not applicable.
    pub schemas: Option<Vec<String>>,
}

impl Catalog {
    /// The tables matching `pattern`, named as the pattern is written: `schema.table` for a
    /// qualified pattern, bare names of the default schema for an unqualified one.
    pub fn matching(&self, pattern: &TablePattern) -> Vec<String> {
        let qualified = pattern.schema().is_some();
        let mut found: Vec<String> = self
            .tables
            .iter()
            .filter_map(|t| match (&self.default_schema, qualified) {
                (None, _) => Some(t.as_str()),
                (Some(_), true) => Some(t.as_str()),
                (Some(d), false) => t.strip_prefix(d.as_str())?.strip_prefix('.'),
            })
            .filter(|name| pattern.matches(name))
            .map(str::to_owned)
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// The schemas matching the schema part of `pattern`, when that part has a placeholder.
    pub fn schemas_matching(&self, pattern: &TablePattern) -> Vec<String> {
        let (Some(schemas), Some(schema_part)) = (&self.schemas, pattern.schema()) else {
            return Vec::new();
        };
        let Ok(schema_pattern) = TablePattern::parse(schema_part) else {
            return Vec::new();
        };
        schemas
            .iter()
            .filter(|s| schema_pattern.matches(s))
            .cloned()
            .collect()
    }
}

/// What a snapshot covers once its patterns are expanded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expanded {
    /// The tables to snapshot: the plain names as asked, then each pattern's matches
    /// (a table asked for twice is snapshotted once).
    pub tables: Vec<String>,
    /// Each pattern with what it matched.
    pub patterns: Vec<ManifestPattern>,
    /// Literal schemas of qualified names (and patterns) that do not exist.
    pub absent_schemas: Vec<String>,
}

/// Expands the requested names against `catalog`.
pub(crate) fn expand(requested: &[String], catalog: &Catalog) -> Result<Expanded, BackupError> {
    let mut expanded = Expanded::default();
    let push = |tables: &mut Vec<String>, name: &str| {
        if !tables.iter().any(|t| t == name) {
            tables.push(name.to_owned());
        }
    };
    let mut literal_schemas = Vec::new();
    for name in requested.iter().filter(|n| !is_pattern(n)) {
        check_table_name(name)?;
        push(&mut expanded.tables, name);
        if let Some((schema, _)) = name.split_once('.') {
            literal_schemas.push(schema.to_owned());
        }
    }
    for name in requested.iter().filter(|n| is_pattern(n)) {
        let pattern = TablePattern::parse(name)?;
        let tables = catalog.matching(&pattern);
        for t in &tables {
            push(&mut expanded.tables, t);
        }
        if let Some(schema) = pattern.schema()
            && !is_pattern(schema)
        {
            literal_schemas.push(schema.to_owned());
        }
        expanded.patterns.push(ManifestPattern {
            pattern: name.clone(),
            tables,
            schemas: catalog.schemas_matching(&pattern),
        });
    }
    if let Some(schemas) = &catalog.schemas {
        for schema in literal_schemas {
            if !schemas.contains(&schema) && !expanded.absent_schemas.contains(&schema) {
                expanded.absent_schemas.push(schema);
            }
        }
    }
    Ok(expanded)
}

/// What a full restore must undo beyond the manifest's tables: the tables matching a
/// pattern now that it did not match at backup time, and the schemas created since
/// (recorded absent, or matching a pattern's schema part now but not then).
pub(crate) fn created_since(manifest: &Manifest, catalog: &Catalog) -> (Vec<String>, Vec<String>) {
    let mut tables = Vec::new();
    let mut schemas: Vec<String> = manifest.absent_schemas.clone();
    for recorded in &manifest.patterns {
        let Ok(pattern) = TablePattern::parse(&recorded.pattern) else {
            continue;
        };
        for t in catalog.matching(&pattern) {
            if !recorded.tables.contains(&t) && manifest.table(&t).is_none() && !tables.contains(&t)
            {
                tables.push(t);
            }
        }
        for s in catalog.schemas_matching(&pattern) {
            if !recorded.schemas.contains(&s) && !schemas.contains(&s) {
                schemas.push(s);
            }
        }
    }
    (tables, schemas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> TablePattern {
        TablePattern::parse(text).unwrap()
    }

    #[test]
    fn catch_all_patterns_are_named() {
        for name in [
            "*",
            "*.*",
            "%",
            "public.*",
            "log_%",
            "<t>",
            "<s>.<t>",
            "<a>_<b>",
            "<a>$<b>",
            "public.<t>",
            "me_<slug>.<t>",
            "<s>.memory",
        ] {
            assert!(catch_all(name).is_some(), "{name} is a catch-all");
        }
        for name in [
            "log_<day>",
            "me_<slug>.memory",
            "auth.users",
            "users",
            "a<x>",
        ] {
            assert_eq!(catch_all(name), None, "{name}");
        }
    }

    #[test]
    fn placeholders_match_one_or_more_identifier_characters() {
        let memory = p("me_<slug>.memory");
        assert!(memory.matches("me_acme.memory"));
        assert!(memory.matches("me_a_b_1.memory"));
        assert!(
            !memory.matches("me_.memory"),
            "a placeholder is never empty"
        );
        assert!(!memory.matches("me_acme.memory_old"));
        assert!(!memory.matches("xme_acme.memory"));
        assert!(!memory.matches("me_acme.embedding_queue"));
        assert!(
            !memory.matches("memory"),
            "qualified patterns need a schema"
        );
        assert_eq!(memory.schema(), Some("me_<slug>"));

        let two = p("<a>_<b>");
        assert!(two.matches("x_y"));
        assert!(two.matches("x_y_z"), "backtracking finds a split");
        assert!(!two.matches("xy"));
        assert!(
            !two.matches("s.x_y"),
            "unqualified patterns match unqualified names"
        );
        assert_eq!(two.schema(), None);
    }

    #[test]
    fn placeholders_never_cross_a_dot() {
        let any = p("<t>");
        assert!(any.matches("users"));
        assert!(!any.matches("auth.users"));
        let schema = p("<s>.users");
        assert!(schema.matches("auth.users"));
        assert!(!schema.matches("a.b.users"));
        assert!(!p("a<x>").matches("a.b"));
    }

    #[test]
    fn underscore_and_percent_are_literal() {
        let q = p("log_<day>");
        assert!(q.matches("log_2024"));
        assert!(!q.matches("logx2024"), "`_` is not a wildcard");
        assert!(
            TablePattern::parse("log%<day>").is_err(),
            "`%` is not allowed at all"
        );
        assert!(!p("a<x>").matches("a%"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "plain",
            "me_<>.memory",
            "me_<slug.memory",
            "me_<sl-ug>.memory",
            "<a>.<b>.<c>",
            ".<t>",
            "<s>.",
            "me <x>",
            "x;<y>",
        ] {
            assert!(TablePattern::parse(bad).is_err(), "{bad:?}");
        }
        check_table_or_pattern("me_<slug>.memory").unwrap();
        check_table_or_pattern("auth.users").unwrap();
        assert!(check_table_or_pattern("a b").is_err());
    }

    fn pg_catalog(tables: &[&str], schemas: &[&str]) -> Catalog {
        Catalog {
            tables: tables.iter().map(|t| t.to_string()).collect(),
            default_schema: Some("public".to_owned()),
            schemas: Some(schemas.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn expansion_records_matches_and_absent_schemas() {
        let before = pg_catalog(
            &[
                "public.users",
                "me_old.memory",
                "me_old.notes",
                "public.log_1",
            ],
            &["public", "me_old"],
        );
        let requested: Vec<String> = ["auth.users", "me_<slug>.memory", "log_<n>", "users"]
            .map(String::from)
            .to_vec();
        let expanded = expand(&requested, &before).unwrap();
        assert_eq!(
            expanded.tables,
            ["auth.users", "users", "me_old.memory", "log_1"]
        );
        assert_eq!(expanded.absent_schemas, ["auth"]);
        assert_eq!(expanded.patterns[0].tables, ["me_old.memory"]);
        assert_eq!(expanded.patterns[0].schemas, ["me_old"]);
        assert_eq!(
            expanded.patterns[1].tables,
            ["log_1"],
            "bare names of `public`"
        );
        assert!(expanded.patterns[1].schemas.is_empty());
    }

    #[test]
    fn created_since_names_what_the_run_added() {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "format": "migrun.backup/1", "id": "x", "label": "before-run",
            "created_at": "", "migrun_version": "", "run_id": "r", "journal": "",
            "plugin_name": "", "plugin_sha256": "", "connection": "target",
            "dialect": "postgres", "url": "", "method": "native",
            "tables": [], "files": [],
            "patterns": [{"pattern": "me_<slug>.memory", "tables": ["me_old.memory"], "schemas": ["me_old"]}],
            "absent_schemas": ["auth"]
        }))
        .unwrap();
        let after = pg_catalog(
            &[
                "me_old.memory",
                "me_new.memory",
                "me_new.embedding_queue",
                "auth.users",
            ],
            &["public", "me_old", "me_new", "auth"],
        );
        let (tables, schemas) = created_since(&manifest, &after);
        assert_eq!(tables, ["me_new.memory"]);
        assert_eq!(schemas, ["auth", "me_new"]);
    }

    #[test]
    fn manifests_without_the_optional_fields_still_load() {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "format": "migrun.backup/1", "id": "x", "label": "before-run",
            "created_at": "", "migrun_version": "", "run_id": "r", "journal": "",
            "plugin_name": "", "plugin_sha256": "", "connection": "target",
            "dialect": "sqlite", "url": "", "method": "sqlite-backup",
            "tables": [], "files": []
        }))
        .unwrap();
        assert!(manifest.patterns.is_empty() && manifest.absent_schemas.is_empty());
        let text = serde_json::to_string(&manifest).unwrap();
        assert!(!text.contains("patterns") && !text.contains("absent_schemas"));
    }
}
