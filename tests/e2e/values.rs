//! The database layer on real databases: every value kind on every dialect
//! (NULLs and extremes included) written through `execute` and `bulk_insert`
//! and read back through `query` and a cursor; read-only enforcement; error
//! classification; cursor streaming; bulk inserts; the host's guards.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use migrun::db::{Access, Connection, DbErrorKind, Dialect, Rows};
use migrun::value::{Value, float32_array_json};

use crate::support::checksum::{database_checksums, row_count, table_checksum};
use crate::support::database::{TestDatabase, for_each_dialect};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The `n`-th (1-based) placeholder in `dialect`.
fn ph(dialect: Dialect, n: usize) -> String {
    if dialect == Dialect::Postgres {
        format!("${n}")
    } else {
        "?".to_owned()
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn time(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f").unwrap()
}

fn timestamp(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").unwrap()
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Equality that treats NaN as equal to NaN and tells -0.0 from 0.0.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::Float32Array(x), Value::Float32Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
        }
        _ => a == b,
    }
}

fn short(v: &Value) -> String {
    let s = format!("{v:?}");
    if s.len() > 120 {
        format!("{}… ({} chars)", &s[..s.floor_char_boundary(120)], s.len())
    } else {
        s
    }
}

// ---------------------------------------------------------------------------
// The value matrix
// ---------------------------------------------------------------------------

/// One typed column of the value table, with its SQL type per dialect.
struct Col {
    name: &'static str,
    pg: &'static str,
    mysql: &'static str,
    sqlite: &'static str,
}

const COLS: &[Col] = &[
    Col {
        name: "b",
        pg: "boolean",
        mysql: "BOOLEAN",
        sqlite: "BOOLEAN",
    },
    Col {
        name: "i",
        pg: "int8",
        mysql: "BIGINT",
        sqlite: "INTEGER",
    },
    Col {
        name: "f",
        pg: "float8",
        mysql: "DOUBLE",
        sqlite: "REAL",
    },
    Col {
        name: "t",
        pg: "text",
        mysql: "LONGTEXT",
        sqlite: "TEXT",
    },
    Col {
        name: "bl",
        pg: "bytea",
        mysql: "LONGBLOB",
        sqlite: "BLOB",
    },
    Col {
        name: "j",
        pg: "jsonb",
        mysql: "LONGTEXT",
        sqlite: "TEXT",
    },
    Col {
        name: "u",
        pg: "uuid",
        mysql: "CHAR(36)",
        sqlite: "TEXT",
    },
    Col {
        name: "d",
        pg: "date",
        mysql: "DATE",
        sqlite: "TEXT",
    },
    Col {
        name: "tm",
        pg: "time",
        mysql: "TIME(6)",
        sqlite: "TEXT",
    },
    Col {
        name: "ts",
        pg: "timestamp",
        mysql: "DATETIME(6)",
        sqlite: "TEXT",
    },
    Col {
        name: "tz",
        pg: "timestamptz",
        mysql: "TIMESTAMP(6) NULL DEFAULT NULL",
        sqlite: "TEXT",
    },
    Col {
        name: "n",
        pg: "numeric",
        mysql: "DECIMAL(65,30)",
        sqlite: "TEXT",
    },
    Col {
        name: "fa",
        pg: "real[]",
        mysql: "LONGTEXT",
        sqlite: "TEXT",
    },
    Col {
        name: "ta",
        pg: "text[]",
        mysql: "LONGTEXT",
        sqlite: "TEXT",
    },
];

fn create_value_table(dialect: Dialect, table: &str) -> String {
    let cols: Vec<String> = COLS
        .iter()
        .map(|c| {
            let ty = match dialect {
                Dialect::Postgres => c.pg,
                Dialect::MySql => c.mysql,
                Dialect::Sqlite => c.sqlite,
            };
            format!("{} {ty}", c.name)
        })
        .collect();
    format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, {})",
        cols.join(", ")
    )
}

/// One sample: the column it goes in, the value written and the value expected back.
struct Sample {
    col: usize,
    written: Value,
    expected: Value,
}

/// Every sample for `dialect`, with what that dialect gives back (see the
/// mapping tables in `migrun::db`).
fn samples(dialect: Dialect) -> Vec<Sample> {
    let pg = dialect == Dialect::Postgres;
    let mysql = dialect == Dialect::MySql;
    let sqlite = dialect == Dialect::Sqlite;
    let mut out = Vec::new();
    let col = |name: &str| COLS.iter().position(|c| c.name == name).unwrap();
    let mut push = |c: &str, written: Value, expected: Value| {
        out.push(Sample {
            col: col(c),
            written,
            expected,
        })
    };
    let mut same_back = |c: &str, v: Value| push(c, v.clone(), v);

    for b in [true, false] {
        same_back("b", Value::Bool(b));
    }
    for i in [0, 1, -1, 42, i64::MIN, i64::MAX] {
        same_back("i", Value::Int(i));
    }
    let mut floats = vec![
        0.0,
        1.5,
        -2.25,
        0.1,
        1e-300,
        123456789.12345679,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::EPSILON,
    ];
    if pg {
        floats.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 5e-324]);
    }
    if sqlite {
        floats.extend([f64::INFINITY, f64::NEG_INFINITY, 5e-324]);
    }
    for f in floats {
        same_back("f", Value::Float(f));
    }
    let long_text: String = "lorem ipsum dolor sit amet ünïcödé 🦀 ".repeat(3_000);
    for s in [
        "",
        "plain",
        "héllo wörld — 🦀 中文 ∑ 𝄞",
        "tab\tnew\nline\rcr \u{1}\u{1f}\u{7f} end",
        "quotes ' \" \\ backslash \\N \\. {} ,",
        "NULL",
        "  padded  ",
        long_text.as_str(),
    ] {
        same_back("t", text(s));
    }
    let all_bytes: Vec<u8> = (0..=255).collect();
    let big: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for b in [Vec::new(), vec![0], all_bytes, big] {
        same_back("bl", Value::Bytes(b));
    }
    // jsonb keeps PostgreSQL's normalised text; the others keep the text as written.
    let object = r#"{"a":[1,2.5,{"b":null}],"c":"é\"q","d":true,"e":{"f":{"g":[[]]}}}"#;
    let normalised =
        r#"{"a": [1, 2.5, {"b": null}], "c": "é\"q", "d": true, "e": {"f": {"g": [[]]}}}"#;
    for (j, jsonb) in [
        (object, normalised),
        ("[]", "[]"),
        (r#""just a string""#, r#""just a string""#),
        ("123", "123"),
        ("null", "null"),
    ] {
        let expected = if pg {
            Value::Json(jsonb.into())
        } else {
            text(j)
        };
        push("j", Value::Json(j.into()), expected);
    }
    for u in [
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "67e55044-10b1-426f-9247-bb680e5fe0c8",
    ] {
        let v = Value::parse_uuid(u).unwrap();
        push("u", v.clone(), if pg { v } else { text(u) });
    }
    for d in ["0001-01-01", "9999-12-31", "2024-02-29", "1970-01-01"] {
        let v = Value::Date(date(d));
        push("d", v.clone(), if sqlite { text(d) } else { v });
    }
    for t in [
        "00:00:00",
        "23:59:59.999999",
        "12:34:56.000001",
        "08:00:00.5",
    ] {
        let v = Value::Time(time(t));
        let back = if sqlite {
            text(&v.canonical_text().unwrap())
        } else {
            v.clone()
        };
        push("tm", v, back);
    }
    for t in [
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59.999999",
        "2024-02-29T12:00:00.123456",
    ] {
        let v = Value::Timestamp(timestamp(t));
        let back = if sqlite {
            text(&v.canonical_text().unwrap())
        } else {
            v.clone()
        };
        push("ts", v, back);
    }
    let instants: &[&str] = if mysql {
        // MariaDB's TIMESTAMP range.
        &[
            "1970-01-01T00:00:01Z",
            "2038-01-19T03:14:07.999999Z",
            "2024-06-01T14:00:00.5+02:00",
        ]
    } else {
        &[
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2024-06-01T14:00:00.5+02:00",
        ]
    };
    for t in instants {
        let v = Value::Timestamptz(instant(t));
        let back = if sqlite {
            text(&v.canonical_text().unwrap())
        } else {
            v.clone()
        };
        push("tz", v, back);
    }
    let decimals: &[&str] = if mysql {
        &[
            "0",
            "1.50",
            "-1.50",
            "12345678901234567890.123456789012345678900000000000",
            "-0.000000000000000000000000000001",
            "99999999999999999999999999999999999.999999999999999999999999999999",
        ]
    } else {
        &[
            "0",
            "1.50",
            "-1.50",
            "10000",
            "0.0000",
            "12345678901234567890.123456789012345678900",
            "-0.000000000000000000000000000001",
            "123456789012345678901234567890123456789012345678901234567890.5",
        ]
    };
    for d in decimals {
        let v = Value::parse_decimal(d).unwrap();
        let back = match dialect {
            Dialect::Postgres => v.clone(),
            // DECIMAL(65,30) gives every value the column's scale.
            Dialect::MySql => Value::Decimal(
                BigDecimal::from_str(d)
                    .unwrap()
                    .with_scale(30)
                    .to_plain_string(),
            ),
            Dialect::Sqlite => text(d),
        };
        push("n", v, back);
    }
    let mut float_arrays = vec![
        vec![],
        vec![
            1.5f32,
            0.1,
            -3.25,
            f32::MAX,
            f32::MIN_POSITIVE,
            16_777_216.0,
        ],
    ];
    if pg {
        float_arrays.push(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
    }
    for a in float_arrays {
        let back = if pg {
            Value::Float32Array(a.clone().into())
        } else {
            text(&float32_array_json(&a))
        };
        push("fa", Value::Float32Array(a.into()), back);
    }
    let text_arrays: Vec<Vec<String>> = vec![
        vec![],
        vec!["a".into()],
        [
            "",
            "with \"quotes\"",
            "back\\slash",
            "comma,brace{}",
            "NULL",
            "🦀",
            " spaced ",
            "tab\tnl\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ];
    for a in text_arrays {
        let back = if pg {
            Value::TextArray(a.clone())
        } else {
            text(&serde_json::to_string(&a).unwrap())
        };
        push("ta", Value::TextArray(a), back);
    }
    out
}

/// Reads `table` back through `query` and a cursor and checks every sample.
async fn check_value_table(conn: &mut Connection, table: &str, samples: &[Sample], path: &str) {
    let dialect = conn.dialect();
    let names: Vec<&str> = COLS.iter().map(|c| c.name).collect();
    let select = format!("SELECT id, {} FROM {table} ORDER BY id", names.join(", "));
    let queried = conn
        .query(&select, &[])
        .await
        .unwrap_or_else(|e| panic!("{dialect} {path}: {e}"));
    assert_eq!(queried.columns.len(), COLS.len() + 1);
    assert_eq!(queried.columns[1].name, "b");

    let cursor = conn.open_cursor(&select, &[], 7).await.unwrap();
    let mut streamed = Vec::new();
    while let Some(batch) = conn.next_batch(&cursor).await.unwrap() {
        assert!(!batch.is_empty() && batch.len() <= 7);
        streamed.extend(batch);
    }
    assert_eq!(cursor.columns(), queried.columns.as_slice());

    for (how, rows) in [("query", &queried.rows), ("cursor", &streamed)] {
        assert_eq!(
            rows.len(),
            samples.len() + 1,
            "{dialect} {path} via {how}: row count"
        );
        for (k, row) in rows.iter().enumerate() {
            assert_eq!(
                row[0],
                Value::Int(k as i64),
                "{dialect} {path} via {how}: ids in order"
            );
            for (c, value) in row[1..].iter().enumerate() {
                let expected = match samples.get(k) {
                    Some(s) if s.col == c => &s.expected,
                    _ => &Value::Null,
                };
                assert!(
                    same(value, expected),
                    "{dialect} {path} via {how}: row {k}, column {}: wrote {}, expected {}, read {}",
                    COLS[c].name,
                    samples
                        .get(k)
                        .filter(|s| s.col == c)
                        .map(|s| short(&s.written))
                        .unwrap_or("NULL".into()),
                    short(expected),
                    short(value)
                );
            }
        }
    }
}

/// Text values bulk-inserted into `ltree`, `tstzrange`, `jsonb`, `varchar(n)`
/// and `char(n)` columns store exactly what the same text gives through an
/// `INSERT` (binary COPY for the forms the host encodes, text for the rest), and
/// bad input is refused with the server's message, leaving the table unchanged.
/// Creates `by_insert` and `by_copy` with the same `columns`.
async fn create_inserted_and_copied(conn: &mut Connection, columns: &str) {
    for table in ["by_insert", "by_copy"] {
        conn.execute(&format!("CREATE TABLE {table} ({columns})"), &[])
            .await
            .unwrap();
    }
}

/// The rows of `by_insert` (written by INSERT from text) and `by_copy` (by a bulk
/// insert), each read by `read` with `{}` standing for the table.
async fn inserted_and_copied(conn: &mut Connection, read: &str) -> (Rows, Rows) {
    let mut rows = Vec::new();
    for table in ["by_insert", "by_copy"] {
        rows.push(conn.query(&read.replace("{}", table), &[]).await.unwrap());
    }
    let by_copy = rows.pop().unwrap();
    (rows.pop().unwrap(), by_copy)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_bulk_insert_stores_what_text_input_stores() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let mut conn = db.connect(Access::ReadWrite).await;
    conn.execute("CREATE EXTENSION IF NOT EXISTS ltree", &[])
        .await
        .unwrap();
    create_inserted_and_copied(
        &mut conn,
        "id int4, tree ltree, span tstzrange, doc jsonb, v varchar(4), c char(3), e real[]",
    )
    .await;
    let spans = [
        "[\"2024-01-01 00:01:00+00\",)",
        "(\"2024-01-01 05:30:00.123456+05:30\",\"2024-02-01 00:00:00+00\"]",
        "(,\"2024-02-01 00:00:00-03\")",
        "empty",
        "[\"2024-01-01 00:00:00+00\",\"2024-01-01 00:00:00+00\")",
        "[\"2024-03-01 00:00:00\",)",
        "[-infinity,infinity)",
        "[2024-01-01,2024-01-02]",
    ];
    let rows: Vec<Vec<Value>> = spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            vec![
                Value::Int(i as i64),
                text(&format!("root.e{i}.n")),
                text(span),
                text(&format!("{{\"i\": {i}, \"a\": [1, 2]}}")),
                text("ab"),
                text("x"),
                Value::Float32Array(vec![0.1, -0.0, f32::NAN, f32::INFINITY, 1e-45].into()),
            ]
        })
        .collect();
    let columns: Vec<String> = ["id", "tree", "span", "doc", "v", "c", "e"]
        .map(str::to_owned)
        .to_vec();
    for row in &rows {
        conn.execute(
            "INSERT INTO by_insert VALUES ($1, $2::text::ltree, $3::text::tstzrange, $4::text::jsonb, $5, $6, $7)",
            row,
        )
        .await
        .unwrap();
        // One row per call: each takes the binary format when its values allow.
        assert_eq!(
            conn.bulk_insert("by_copy", &columns, std::slice::from_ref(row))
                .await
                .unwrap(),
            1
        );
    }
    let (by_insert, by_copy) = inserted_and_copied(
        &mut conn,
        "SELECT id, tree::text, span::text, doc, v, c::text, e::text FROM {} ORDER BY id",
    )
    .await;
    assert_eq!(by_insert.rows.len(), spans.len());
    assert_eq!(by_copy.rows, by_insert.rows);
    assert_eq!(
        by_copy.rows[1][2],
        text("(\"2024-01-01 00:00:00.123456+00\",\"2024-02-01 00:00:00+00\"]")
    );
    assert_eq!(by_copy.rows[4][2], text("empty"));

    for (bad, message) in [
        (vec![text("root..x"), text("empty")], "ltree"),
        (
            vec![
                text("root"),
                text("[\"2024-02-01 00:00:00+00\",\"2024-01-01 00:00:00+00\")"),
            ],
            "range lower bound",
        ),
        (vec![text("too long"), text("empty")], "too long"),
    ] {
        let mut row = vec![Value::Int(99)];
        row.extend(bad);
        let columns = if message == "too long" {
            ["id", "v", "span"]
        } else {
            ["id", "tree", "span"]
        };
        let columns = columns.map(str::to_owned).to_vec();
        let err = conn
            .bulk_insert("by_copy", &columns, &[row])
            .await
            .unwrap_err();
        assert!(err.message.contains(message), "{message}: {err}");
    }
    let count = conn
        .query("SELECT count(*) FROM by_copy", &[])
        .await
        .unwrap();
    assert_eq!(count.rows[0][0], Value::Int(spans.len() as i64));
    conn.close().await;
}

/// Decimals go into `numeric` columns in `numeric_send`'s binary form (a decimal no
/// longer sends its call as text): what is stored is what text input stores — scale
/// kept, rounded to the column's scale, zero without a sign, exponents expanded — and
/// what the column cannot hold fails as text input fails, with nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_bulk_insert_of_decimals_stores_what_text_input_stores() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let mut conn = db.connect(Access::ReadWrite).await;
    create_inserted_and_copied(
        &mut conn,
        "id int4, fixed numeric(12,4), free numeric, span interval",
    )
    .await;
    let decimals = [
        "0",
        "-0.00",
        "12.3400",
        "1.23456",
        "-1.23455",
        "0.0001",
        "99999999.9999",
        "1e5",
        "1.50e1",
        "-0.000000000000000000000000000001",
        "123456789012345678901234567890.123456789",
    ];
    let columns: Vec<String> = ["id", "fixed", "free", "span"].map(str::to_owned).to_vec();
    // An interval (a typed value) in the same call: it travels only in binary, which
    // refused the call while decimals had no binary form.
    let span = conn
        .query("SELECT '1 day 02:03:04'::interval", &[])
        .await
        .unwrap()
        .rows[0][0]
        .clone();
    assert!(matches!(span, Value::Typed { .. }), "{span:?}");
    for (i, d) in decimals.iter().enumerate() {
        let fixed = if d.len() > 20 { "1" } else { d };
        let row = vec![
            Value::Int(i as i64),
            Value::Decimal(fixed.to_string()),
            Value::Decimal(d.to_string()),
            span.clone(),
        ];
        conn.execute(
            "INSERT INTO by_insert VALUES ($1, $2::text::numeric(12,4), $3::text::numeric, '1 day 02:03:04')",
            &[row[0].clone(), text(fixed), text(d)],
        )
        .await
        .unwrap();
        assert_eq!(
            conn.bulk_insert("by_copy", &columns, std::slice::from_ref(&row))
                .await
                .unwrap(),
            1,
            "{d}"
        );
    }
    let (by_insert, by_copy) = inserted_and_copied(
        &mut conn,
        "SELECT id, fixed::text, free::text, span::text FROM {} ORDER BY id",
    )
    .await;
    assert_eq!(by_insert.rows.len(), decimals.len());
    assert_eq!(by_copy.rows, by_insert.rows);
    assert_eq!(by_copy.rows[1][2], text("0.00"));
    assert_eq!(by_copy.rows[3][1], text("1.2346"));
    assert_eq!(by_copy.rows[7][2], text("100000"));
    assert_eq!(by_copy.rows[8][2], text("15.0"));

    // Too large for numeric(12,4): refused as text input refuses it, nothing written.
    let err = conn
        .bulk_insert(
            "by_copy",
            &columns[..2],
            &[vec![Value::Int(99), Value::Decimal("100000000".into())]],
        )
        .await
        .unwrap_err();
    assert!(err.message.contains("numeric field overflow"), "{err}");
    let count = conn
        .query("SELECT count(*) FROM by_copy", &[])
        .await
        .unwrap();
    assert_eq!(count.rows[0][0], Value::Int(decimals.len() as i64));
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_value_kind_round_trips_on_every_dialect() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        let samples = samples(dialect);
        db.exec(&create_value_table(dialect, "v_execute")).await;
        db.exec(&create_value_table(dialect, "v_bulk")).await;
        db.exec(&create_value_table(dialect, "v_bulk_rows")).await;
        let mut conn = db.connect(Access::ReadWrite).await;

        // Through `execute`, one typed parameter at a time, then an all-NULL row
        // that binds a NULL to every column type.
        conn.begin().await.unwrap();
        for (k, s) in samples.iter().enumerate() {
            let sql = format!(
                "INSERT INTO v_execute (id, {}) VALUES ({}, {})",
                COLS[s.col].name,
                ph(dialect, 1),
                ph(dialect, 2)
            );
            let n = conn
                .execute(&sql, &[Value::Int(k as i64), s.written.clone()])
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "{dialect}: writing {} into {}: {e}",
                        short(&s.written),
                        COLS[s.col].name
                    )
                });
            assert_eq!(n, 1);
        }
        let placeholders: Vec<String> = (1..=COLS.len() + 1).map(|n| ph(dialect, n)).collect();
        let names: Vec<&str> = COLS.iter().map(|c| c.name).collect();
        let mut nulls = vec![Value::Int(samples.len() as i64)];
        nulls.extend(COLS.iter().map(|_| Value::Null));
        let insert_all = format!(
            "INSERT INTO v_execute (id, {}) VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        conn.execute(&insert_all, &nulls)
            .await
            .unwrap_or_else(|e| panic!("{dialect}: all NULLs: {e}"));
        conn.commit().await.unwrap();

        // Through `bulk_insert`: every column in every row, NULL but for one.
        let mut columns = vec!["id".to_owned()];
        columns.extend(COLS.iter().map(|c| c.name.to_owned()));
        let mut rows: Vec<Vec<Value>> = samples
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let mut row = vec![Value::Int(k as i64)];
                row.extend((0..COLS.len()).map(|c| {
                    if c == s.col {
                        s.written.clone()
                    } else {
                        Value::Null
                    }
                }));
                row
            })
            .collect();
        rows.push(nulls.clone());
        let n = conn
            .bulk_insert("v_bulk", &columns, &rows)
            .await
            .unwrap_or_else(|e| panic!("{dialect}: bulk: {e}"));
        assert_eq!(n, rows.len() as u64);

        // One bulk insert per row: on PostgreSQL every value whose kind has a
        // binary COPY form then takes it (a call falls back to text as a whole).
        for row in &rows {
            let n = conn
                .bulk_insert("v_bulk_rows", &columns, std::slice::from_ref(row))
                .await
                .unwrap_or_else(|e| panic!("{dialect}: bulk, one row: {e}"));
            assert_eq!(n, 1);
        }

        check_value_table(&mut conn, "v_execute", &samples, "execute").await;
        check_value_table(&mut conn, "v_bulk", &samples, "bulk_insert").await;
        check_value_table(&mut conn, "v_bulk_rows", &samples, "bulk_insert by row").await;
        assert_eq!(
            table_checksum(&db.url, "v_execute").await,
            table_checksum(&db.url, "v_bulk").await
        );
        assert_eq!(
            table_checksum(&db.url, "v_execute").await,
            table_checksum(&db.url, "v_bulk_rows").await
        );
        conn.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn values_a_dialect_cannot_store_are_refused_not_altered() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        db.exec("CREATE TABLE f (x DOUBLE PRECISION)").await;
        let mut conn = db.connect(Access::ReadWrite).await;
        let insert = format!("INSERT INTO f (x) VALUES ({})", ph(dialect, 1));
        match dialect {
            Dialect::Postgres => {
                conn.execute(&insert, &[Value::Float(f64::NAN)])
                    .await
                    .unwrap();
            }
            Dialect::MySql => {
                for f in [f64::NAN, f64::INFINITY] {
                    let err = conn.execute(&insert, &[Value::Float(f)]).await.unwrap_err();
                    assert_eq!(err.kind, DbErrorKind::Value, "{err}");
                }
            }
            Dialect::Sqlite => {
                let err = conn
                    .execute(&insert, &[Value::Float(f64::NAN)])
                    .await
                    .unwrap_err();
                assert_eq!(err.kind, DbErrorKind::Value, "{err}");
                assert!(err.message.contains("NaN"), "{err}");
            }
        }
        // A bad decimal text never reaches the server.
        let err = conn
            .execute(&insert, &[Value::Decimal("12,5".into())])
            .await;
        if dialect == Dialect::Postgres {
            assert_eq!(err.unwrap_err().kind, DbErrorKind::Value);
        }
        conn.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_specific_types() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let mut conn = db.connect(Access::ReadWrite).await;
    conn.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')", &[])
        .await
        .unwrap();
    conn.execute("CREATE DOMAIN short_text AS varchar(10)", &[])
        .await
        .unwrap();
    conn.execute(
        "CREATE TABLE p (i2 int2, i4 int4, r real, jb jsonb, m mood, s short_text, c char(3), vc varchar(5)[], n numeric(10,2))",
        &[],
    )
    .await
    .unwrap();
    let n = conn
        .execute(
            "INSERT INTO p VALUES ($1, $2, $3, $4, $5::mood, $6, $7, $8, $9)",
            &[
                Value::Int(-32768),
                Value::Int(2147483647),
                Value::Float(0.1),
                Value::Json(r#"{"b":1, "a":[1,2]}"#.into()),
                text("happy"),
                text("short"),
                text("ab"),
                Value::TextArray(vec!["x".into(), "yz".into()]),
                Value::Decimal("1.5".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The same statement with NULLs (a different type signature) and again with values.
    let insert = "INSERT INTO p (i2, jb, m) VALUES ($1, $2, $3::mood)";
    conn.execute(insert, &[Value::Null, Value::Null, Value::Null])
        .await
        .unwrap();
    conn.execute(
        insert,
        &[Value::Int(7), Value::Json("[]".into()), text("sad")],
    )
    .await
    .unwrap();
    conn.execute(
        insert,
        &[Value::Null, Value::Json("{}".into()), Value::Null],
    )
    .await
    .unwrap();

    let rows = conn
        .query(
            "SELECT * FROM p ORDER BY i2 NULLS FIRST, m NULLS FIRST",
            &[],
        )
        .await
        .unwrap();
    let full = rows
        .rows
        .iter()
        .find(|r| r[0] == Value::Int(-32768))
        .unwrap();
    assert_eq!(
        full,
        &vec![
            Value::Int(-32768),
            Value::Int(2147483647),
            Value::Float(0.1),
            Value::Json(r#"{"a": [1, 2], "b": 1}"#.into()),
            text("happy"),
            text("short"),
            text("ab "),
            Value::TextArray(vec!["x".into(), "yz".into()]),
            Value::Decimal("1.50".into()),
        ]
    );
    assert_eq!(rows.rows.len(), 4);

    // A `json` column keeps the text exactly when it is copied in; a bound
    // parameter is declared `jsonb` (so that jsonb operators work) and is normalised.
    conn.execute("CREATE TABLE js (id int, doc json)", &[])
        .await
        .unwrap();
    let doc = r#"{"z":1,  "a" : [true]}"#;
    conn.bulk_insert(
        "js",
        &["id".into(), "doc".into()],
        &[vec![Value::Int(1), Value::Json(doc.into())]],
    )
    .await
    .unwrap();
    conn.execute("INSERT INTO js VALUES (2, $1)", &[Value::Json(doc.into())])
        .await
        .unwrap();
    let docs = conn
        .query("SELECT doc FROM js ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(
        docs.rows,
        [
            vec![Value::Json(doc.into())],
            vec![Value::Json(r#"{"a": [true], "z": 1}"#.into())]
        ]
    );
    let hit = conn
        .query(
            "SELECT count(*) FROM p WHERE jb @> $1",
            &[Value::Json(r#"{"b":1}"#.into())],
        )
        .await
        .unwrap();
    assert_eq!(hit.rows[0][0], Value::Int(1));
    assert_eq!(
        rows.columns
            .iter()
            .map(|c| c.type_name.as_str())
            .collect::<Vec<_>>()[..3],
        ["int2", "int4", "float4"]
    );

    // Server-side values: oid, name, "char", xml-free text-likes, arrays.
    let rows = conn
        .query(
            "SELECT 'pg_class'::regclass::oid AS o, 'n'::name AS nm, 'r'::\"char\" AS ch, ARRAY['a','b']::text[] AS ta, \
             ARRAY[1.5, 2]::real[] AS fa, '{}'::real[] AS empty, 12.3400::numeric AS n, 'NaN'::float8 AS nan",
            &[],
        )
        .await
        .unwrap();
    let r = &rows.rows[0];
    assert_eq!(r[0], Value::Int(1259));
    assert_eq!(
        r[1..4],
        [
            text("n"),
            text("r"),
            Value::TextArray(vec!["a".into(), "b".into()])
        ]
    );
    assert_eq!(
        r[4..7],
        [
            Value::Float32Array(vec![1.5, 2.0].into()),
            Value::Float32Array(vec![].into()),
            Value::Decimal("12.3400".into())
        ]
    );
    assert!(matches!(r[7], Value::Float(f) if f.is_nan()));
    conn.close().await;
}

/// Types the host does not model read as typed values (their binary form,
/// tagged with the type's name: contract 0.2.0's `typed`; a 0.1.x plugin gets
/// the old error, `vectors::contract_0_1_plugins_read_halfvec_but_not_typed_columns`);
/// values of modelled types that cannot be represented stay errors that name
/// the column and a cast.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_unmodelled_types_read_as_typed_and_unrepresentable_values_name_a_cast() {
    let Some(db) = TestDatabase::create(Dialect::Postgres).await else {
        return;
    };
    let mut conn = db.connect(Access::ReadWrite).await;
    for (expr, type_name, send) in [
        ("'1 day 2 hours'::interval", "interval", "interval_send"),
        (
            "tstzrange('2024-01-01 00:00:00+00', '2024-01-01 01:00:00+00')",
            "tstzrange",
            "range_send",
        ),
    ] {
        let rows = conn
            .query(&format!("SELECT {expr} AS v, {send}({expr}) AS b"), &[])
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        let Value::Bytes(expected) = &rows.rows[0][1] else {
            panic!("{expr}: {:?}", rows.rows[0][1]);
        };
        assert_eq!(
            rows.rows[0][0],
            Value::Typed {
                type_name: type_name.into(),
                bytes: expected.clone()
            },
            "{expr}"
        );
    }
    for (sql, column, type_name) in [
        ("SELECT 'infinity'::date AS forever", "forever", "date"),
        ("SELECT 'NaN'::numeric AS nan", "nan", "numeric"),
        ("SELECT ARRAY['a', NULL] AS holes", "holes", "text[]"),
    ] {
        let err = conn.query(sql, &[]).await.unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Value, "{sql}: {err}");
        assert!(err.message.contains(&format!("`{column}`")), "{sql}: {err}");
        assert!(err.message.contains(type_name), "{sql}: {err}");
        assert!(err.code.is_none());
    }
    // The connection is fine afterwards.
    let rows = conn
        .query("SELECT '1 day'::interval::text AS span", &[])
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], text("1 day"));
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_specific_types() {
    let Some(db) = TestDatabase::create(Dialect::MySql).await else {
        return;
    };
    db.exec(
        "CREATE TABLE m (u64 BIGINT UNSIGNED, u8 TINYINT UNSIGNED, y YEAR, fl FLOAT, e ENUM('x','y'), \
         js JSON, bin VARBINARY(4), tb TINYINT(1), tm TIME)",
    )
    .await;
    db.exec("INSERT INTO m VALUES (18446744073709551615, 255, 2024, 0.1, 'y', '{\"a\": 1}', x'00ff', 1, '12:00:00')")
        .await;
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn
        .query(
            "SELECT u64, u8, y, fl, e, bin, tb, tm, CAST(js AS CHAR) FROM m",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows.rows[0],
        [
            Value::Decimal("18446744073709551615".into()),
            Value::Int(255),
            Value::Int(2024),
            Value::Float(0.1),
            text("y"),
            Value::Bytes(vec![0, 255]),
            Value::Bool(true),
            Value::Time(time("12:00:00")),
            text("{\"a\": 1}"),
        ]
    );
    // MariaDB's JSON is LONGTEXT with a binary collation: it reads as bytes (see the module docs).
    let js = conn.query("SELECT js FROM m", &[]).await.unwrap();
    assert_eq!(js.rows[0][0], Value::Bytes(b"{\"a\": 1}".to_vec()));
    let err = conn
        .query("SELECT CAST('838:59:59' AS TIME) AS long_time", &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::Value);
    assert!(err.message.contains("`long_time`"), "{err}");
    assert_eq!(
        conn.query("SELECT 5 + tb AS x FROM m", &[])
            .await
            .unwrap()
            .rows[0][0],
        Value::Int(6)
    );
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_booleans_and_storage_classes() {
    let Some(db) = TestDatabase::create(Dialect::Sqlite).await else {
        return;
    };
    db.exec("CREATE TABLE s (flag BOOLEAN, anything)").await;
    db.exec("INSERT INTO s VALUES (1, 1), (0, 2.5), (NULL, 'x'), (1, x'00')")
        .await;
    let mut conn = db.connect(Access::ReadOnly).await;
    let rows = conn
        .query("SELECT flag, anything FROM s ORDER BY rowid", &[])
        .await
        .unwrap();
    assert_eq!(
        rows.rows,
        [
            vec![Value::Bool(true), Value::Int(1)],
            vec![Value::Bool(false), Value::Float(2.5)],
            vec![Value::Null, text("x")],
            vec![Value::Bool(true), Value::Bytes(vec![0])],
        ]
    );
    conn.close().await;
    db.exec("INSERT INTO s VALUES (2, NULL)").await;
    let mut conn = db.connect(Access::ReadOnly).await;
    let err = conn.query("SELECT flag FROM s", &[]).await.unwrap_err();
    assert_eq!(err.kind, DbErrorKind::Value);
    assert!(err.message.contains("`flag`"), "{err}");
    conn.close().await;
}

// ---------------------------------------------------------------------------
// Read-only access
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn read_only_connections_refuse_writes_in_the_session() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        db.exec("CREATE TABLE kept (id INTEGER PRIMARY KEY, v VARCHAR(20))")
            .await;
        db.exec("INSERT INTO kept (id, v) VALUES (1, 'keep me')")
            .await;
        let before = table_checksum(&db.url, "kept").await;
        let mut conn = Connection::connect("source", &db.url, Access::ReadOnly)
            .await
            .unwrap();
        assert_eq!(conn.access(), Access::ReadOnly);
        let expected_code = match dialect {
            Dialect::Postgres => "25006",
            Dialect::MySql => "1792",
            Dialect::Sqlite => "8",
        };
        let insert = format!("INSERT INTO kept (id, v) VALUES ({}, 'x')", ph(dialect, 1));

        // Outside and inside a unit transaction.
        for in_transaction in [false, true] {
            if in_transaction {
                conn.begin().await.unwrap();
            }
            let err = conn.execute(&insert, &[Value::Int(2)]).await.unwrap_err();
            assert_eq!(err.kind, DbErrorKind::ReadOnly, "{dialect}: {err}");
            assert_eq!(err.code.as_deref(), Some(expected_code), "{dialect}: {err}");
            assert!(
                err.message.contains("connection `source` is read-only"),
                "{dialect}: {err}"
            );
            if in_transaction {
                conn.rollback().await.unwrap();
            }
        }
        let err = conn
            .execute("UPDATE kept SET v = 'changed'", &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind, DbErrorKind::ReadOnly, "{dialect}: {err}");
        let err = conn.execute("DELETE FROM kept", &[]).await.unwrap_err();
        assert_eq!(err.kind, DbErrorKind::ReadOnly, "{dialect}: {err}");
        let err = conn
            .bulk_insert(
                "kept",
                &["id".into(), "v".into()],
                &[vec![Value::Int(3), text("x")]],
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind, DbErrorKind::ReadOnly, "{dialect}: {err}");
        let err = conn
            .execute("CREATE TABLE sneaky (x INTEGER)", &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind, DbErrorKind::ReadOnly, "{dialect}: {err}");

        // Undoing the session setting does not help.
        let escapes: &[&str] = match dialect {
            Dialect::Postgres => &[
                "SET default_transaction_read_only = off",
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                "SELECT set_config('default_transaction_read_only', 'off', false)",
            ],
            Dialect::MySql => &[
                "SET SESSION TRANSACTION READ WRITE",
                "SET @@session.tx_read_only = 0",
            ],
            Dialect::Sqlite => &["PRAGMA query_only = OFF"],
        };
        for escape in escapes {
            let _ = conn.execute(escape, &[]).await;
            let err = conn.execute(&insert, &[Value::Int(4)]).await.unwrap_err();
            assert_eq!(
                err.kind,
                DbErrorKind::ReadOnly,
                "{dialect} after {escape}: {err}"
            );
        }
        if dialect == Dialect::Postgres {
            // Inside a read-only unit, the snapshot is already taken: too late for READ WRITE.
            conn.begin().await.unwrap();
            let err = conn
                .execute("SET TRANSACTION READ WRITE", &[])
                .await
                .unwrap_err();
            assert_eq!(err.code.as_deref(), Some("25001"), "{err}");
            conn.rollback().await.unwrap();
        }
        let err = conn.execute("COMMIT", &[]).await.unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Usage, "{dialect}: {err}");

        // Reads work, and nothing changed.
        let rows = conn.query("SELECT v FROM kept", &[]).await.unwrap();
        assert_eq!(rows.rows, [vec![text("keep me")]]);
        conn.close().await;
        assert_eq!(
            table_checksum(&db.url, "kept").await,
            before,
            "{dialect}: the table changed"
        );
        assert_eq!(row_count(&db.url, "kept").await, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_sqlite_does_not_create_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("missing.sqlite").display());
    let err = Connection::connect("source", &url, Access::ReadOnly)
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind, DbErrorKind::Connection);
    assert!(
        err.message
            .contains("cannot open connection `source` (sqlite)"),
        "{err}"
    );
    assert!(!dir.path().join("missing.sqlite").exists());
}

// ---------------------------------------------------------------------------
// Transactions, guards and errors
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn unit_transactions_commit_and_roll_back() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
        let mut conn = db.connect(Access::ReadWrite).await;
        let insert = format!("INSERT INTO t (id) VALUES ({})", ph(dialect, 1));
        conn.begin().await.unwrap();
        assert!(conn.in_transaction());
        assert_eq!(conn.begin().await.unwrap_err().kind, DbErrorKind::Usage);
        conn.execute(&insert, &[Value::Int(1)]).await.unwrap();
        conn.rollback().await.unwrap();
        assert!(!conn.in_transaction());
        assert_eq!(row_count(&db.url, "t").await, 0);
        conn.begin().await.unwrap();
        conn.execute(&insert, &[Value::Int(2)]).await.unwrap();
        // A savepoint is the plugin's, a rollback to it too.
        conn.execute("SAVEPOINT sp", &[]).await.unwrap();
        conn.execute(&insert, &[Value::Int(3)]).await.unwrap();
        conn.execute("ROLLBACK TO SAVEPOINT sp", &[]).await.unwrap();
        for control in [
            "COMMIT",
            "  /* x */ rollback",
            "BEGIN",
            "START TRANSACTION",
            "END",
        ] {
            let err = conn.execute(control, &[]).await.unwrap_err();
            assert_eq!(err.kind, DbErrorKind::Usage, "{dialect} {control}: {err}");
        }
        conn.commit().await.unwrap();
        assert_eq!(conn.commit().await.unwrap_err().kind, DbErrorKind::Usage);
        conn.rollback().await.unwrap();
        assert_eq!(row_count(&db.url, "t").await, 1);
        // A trailing semicolon and comment are part of one statement.
        let one = conn
            .query(
                &format!("SELECT {} AS x; -- done", ph(dialect, 1)),
                &[Value::Int(5)],
            )
            .await
            .unwrap();
        assert_eq!(one.rows, [vec![Value::Int(5)]], "{dialect}");
        // execute() counts affected rows, or returned rows for a SELECT.
        assert_eq!(conn.execute("UPDATE t SET id = id", &[]).await.unwrap(), 1);
        assert_eq!(conn.execute("SELECT id FROM t", &[]).await.unwrap(), 1);
        assert_eq!(
            conn.execute("CREATE TABLE u (x INTEGER)", &[])
                .await
                .unwrap(),
            0
        );
        conn.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_changes_inside_a_unit() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
        let mut conn = db.connect(Access::ReadWrite).await;
        let insert = format!("INSERT INTO t (id) VALUES ({})", ph(dialect, 1));
        assert_eq!(
            conn.query("SELECT * FROM t", &[])
                .await
                .unwrap()
                .columns
                .len(),
            1
        );
        conn.begin().await.unwrap();
        conn.execute(&insert, &[Value::Int(1)]).await.unwrap();
        conn.execute("ALTER TABLE t ADD COLUMN extra INTEGER", &[])
            .await
            .unwrap();
        // The cached `SELECT *` would now return another row type.
        assert_eq!(
            conn.query("SELECT * FROM t", &[])
                .await
                .unwrap()
                .columns
                .len(),
            2
        );
        conn.execute(&insert, &[Value::Int(2)]).await.unwrap();
        conn.rollback().await.unwrap();
        let (count, columns) = match dialect {
            // MySQL committed the first insert and the ALTER; the second insert ran
            // in the transaction opened after the DDL and was rolled back.
            Dialect::MySql => (1, 2),
            _ => (0, 1),
        };
        assert_eq!(row_count(&db.url, "t").await, count, "{dialect}");
        assert_eq!(
            conn.query("SELECT * FROM t", &[])
                .await
                .unwrap()
                .columns
                .len(),
            columns,
            "{dialect}"
        );
        conn.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_changes_by_another_connection() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)").await;
        db.exec("INSERT INTO t (id) VALUES (1)").await;
        let mut reader = db.connect(Access::ReadOnly).await;
        assert_eq!(
            reader.query("SELECT * FROM t", &[]).await.unwrap().rows[0].len(),
            1
        );
        db.exec("ALTER TABLE t ADD COLUMN extra INTEGER").await;
        let again = match reader.query("SELECT * FROM t", &[]).await {
            Ok(rows) => rows,
            Err(e) => {
                // PostgreSQL refuses the stale plan once; the next attempt prepares afresh.
                assert_eq!(
                    (dialect, e.code.as_deref()),
                    (Dialect::Postgres, Some("0A000")),
                    "{e}"
                );
                assert!(
                    e.message.contains("the next attempt prepares it afresh"),
                    "{e}"
                );
                reader.query("SELECT * FROM t", &[]).await.unwrap()
            }
        };
        assert_eq!(again.columns.len(), 2, "{dialect}");
        assert_eq!(again.rows, [vec![Value::Int(1), Value::Null]], "{dialect}");
        reader.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_classified_with_the_database_code() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        db.exec("CREATE TABLE parent (id INTEGER PRIMARY KEY)").await;
        db.exec("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id), CHECK (id > 0))")
            .await;
        db.exec("INSERT INTO parent (id) VALUES (1)").await;
        let mut conn = db.connect(Access::ReadWrite).await;
        let cases: &[(&str, DbErrorKind, [&str; 3])] = &[
            ("INSERT INTO parent (id) VALUES (1)", DbErrorKind::Constraint, ["23505", "1062", "1555"]),
            ("INSERT INTO child (id, parent_id) VALUES (1, 99)", DbErrorKind::Constraint, ["23503", "1452", "787"]),
            ("INSERT INTO child (id, parent_id) VALUES (2, NULL)", DbErrorKind::Constraint, ["23502", "1048", "1299"]),
            ("INSERT INTO child (id, parent_id) VALUES (-1, 1)", DbErrorKind::Constraint, ["23514", "4025", "275"]),
            ("SELEKT 1", DbErrorKind::Other, ["42601", "1064", "1"]),
            ("SELECT * FROM missing_table", DbErrorKind::Other, ["42P01", "1146", "1"]),
        ];
        let index = match dialect {
            Dialect::Postgres => 0,
            Dialect::MySql => 1,
            Dialect::Sqlite => 2,
        };
        for (sql, kind, codes) in cases {
            let err = conn.execute(sql, &[]).await.unwrap_err();
            assert_eq!((err.kind, err.code.as_deref()), (*kind, Some(codes[index])), "{dialect} {sql}: {err}");
            assert!(err.to_string().ends_with(&format!("(code {})", codes[index])), "{err}");
        }
        // SQLite runs one statement per call, like the servers.
        if dialect == Dialect::Sqlite {
            let err = conn.execute("SELECT 1; DROP TABLE parent", &[]).await.unwrap_err();
            assert_eq!(err.kind, DbErrorKind::Usage);
            let err = conn.execute("ATTACH DATABASE '/tmp/x.sqlite' AS x", &[]).await.unwrap_err();
            assert_eq!(err.kind, DbErrorKind::Refused);
        } else {
            let err = conn.execute("SELECT 1; DROP TABLE parent", &[]).await.unwrap_err();
            assert_eq!(err.kind, DbErrorKind::Other, "{err}");
        }
        assert_eq!(row_count(&db.url, "parent").await, 1);
        conn.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_can_be_refused_with_a_reason() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        let mut conn = db.connect(Access::ReadWrite).await;
        conn.refuse_ddl(Some("dry-run: DDL would commit on MariaDB".into()));
        for sql in [
            "CREATE TABLE x (id INTEGER)",
            "  -- comment\n /* block */ alter table y add column z int",
            "DROP TABLE y",
            "truncate y",
            "RENAME TABLE a TO b",
        ] {
            let err = conn.execute(sql, &[]).await.unwrap_err();
            assert_eq!(err.kind, DbErrorKind::Refused, "{dialect} {sql}: {err}");
            assert!(
                err.message.contains("dry-run: DDL would commit on MariaDB"),
                "{err}"
            );
        }
        if dialect == Dialect::MySql {
            let err = conn
                .execute("/*!50000 CREATE TABLE x (id INT) */", &[])
                .await
                .unwrap_err();
            assert_eq!(err.kind, DbErrorKind::Refused);
            let err = conn.execute("LOCK TABLES x WRITE", &[]).await.unwrap_err();
            assert_eq!(err.kind, DbErrorKind::Refused);
        }
        assert_eq!(conn.query("SELECT 1", &[]).await.unwrap().rows.len(), 1);
        // Temporary tables commit nothing, even on MySQL.
        conn.execute("CREATE TEMPORARY TABLE scratch (id INTEGER)", &[])
            .await
            .unwrap();
        conn.refuse_ddl(None);
        conn.execute("CREATE TABLE x (id INTEGER)", &[])
            .await
            .unwrap();
        conn.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_connection_is_a_connection_error() {
    for dialect in [Dialect::Postgres, Dialect::MySql] {
        let Some(db) = TestDatabase::create(dialect).await else {
            continue;
        };
        let mut victim = db.connect(Access::ReadWrite).await;
        let mut killer = db.connect(Access::ReadWrite).await;
        victim.begin().await.unwrap();
        let who = match dialect {
            Dialect::Postgres => "SELECT pg_backend_pid()",
            _ => "SELECT CONNECTION_ID()",
        };
        let id = victim.query(who, &[]).await.unwrap().rows[0][0].to_string();
        let kill = match dialect {
            Dialect::Postgres => format!("SELECT pg_terminate_backend({id})"),
            _ => format!("KILL {id}"),
        };
        killer.execute(&kill, &[]).await.unwrap();
        let err = victim.execute("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Connection, "{dialect}: {err}");
        assert!(err.message.contains("connection `test`"), "{err}");
        // Every later call fails the same way, quickly; nothing panics.
        assert_eq!(
            victim.execute("SELECT 1", &[]).await.unwrap_err().kind,
            DbErrorKind::Connection
        );
        let _ = victim.rollback().await;
        victim.close().await;
        killer.close().await;
    }
}

// ---------------------------------------------------------------------------
// Cursors
// ---------------------------------------------------------------------------

/// `SELECT n, label` over 1..=`n`, ordered, optionally only rows with `n <= $1`.
fn series(dialect: Dialect, n: u32, filtered: bool) -> String {
    let filter = if filtered {
        format!(" WHERE n <= {}", ph(dialect, 1))
    } else {
        String::new()
    };
    match dialect {
        Dialect::Postgres => {
            format!(
                "SELECT n, 'row ' || n AS label FROM generate_series(1, {n}) AS g (n){filter} ORDER BY n"
            )
        }
        // Recursive CTEs stop at 1000 iterations by default on MariaDB (and fail on MySQL): cross digits instead.
        Dialect::MySql => format!(
            "WITH d (x) AS (SELECT 0 UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
             UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9) \
             SELECT n, CONCAT('row ', n) AS label FROM \
             (SELECT 1 + a.x + 10 * b.x + 100 * c.x + 1000 * e.x + 10000 * f.x AS n FROM d a, d b, d c, d e, d f) AS s \
             WHERE n <= {n}{} ORDER BY n",
            filter.replace(" WHERE", " AND")
        ),
        Dialect::Sqlite => format!(
            "WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
             SELECT n, 'row ' || n AS label FROM s{filter} ORDER BY n"
        ),
    }
}

/// Rows of a 100,000-character text: a cursor of 1,000-row batches over them holds a
/// few MiB a batch, not 100 MB.
#[tokio::test(flavor = "multi_thread")]
async fn cursor_batches_of_wide_rows_are_bounded_by_bytes_too() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        let wide = match dialect {
            Dialect::Postgres => "repeat('x', 100000)",
            Dialect::MySql => "REPEAT('x', 100000)",
            // 50,000 zero bytes in hex are 100,000 characters.
            Dialect::Sqlite => "replace(hex(zeroblob(50000)), '00', 'xx')",
        };
        let select = series(dialect, 300, false).replace(
            " AS label FROM",
            &format!(" AS label, {wide} AS body FROM"),
        );
        let mut conn = db.connect(Access::ReadOnly).await;
        conn.begin().await.unwrap();
        let cursor = conn.open_cursor(&select, &[], 1_000).await.unwrap();
        let mut next = 1i64;
        let mut sizes = Vec::new();
        while let Some(batch) = conn.next_batch(&cursor).await.unwrap() {
            sizes.push(batch.len());
            for row in batch {
                assert_eq!(row[0], Value::Int(next));
                assert!(matches!(&row[2], Value::Text(body) if body.len() == 100_000 && body.bytes().all(|b| b == b'x')));
                next += 1;
            }
        }
        assert_eq!(next, 301, "every row once, in order");
        // About 3 MiB a batch: 32 rows of 100 kB (the first batch of a ramp-up is no
        // larger either), then what is left.
        let (last, full) = sizes.split_last().unwrap();
        assert!(full.iter().all(|&n| n == 32), "{sizes:?}");
        assert!(*last >= 1 && *last <= 32, "{sizes:?}");
        conn.rollback().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cursors_stream_every_row_once_in_bounded_batches() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        let mut conn = db.connect(Access::ReadOnly).await;
        conn.begin().await.unwrap();
        let cursor = conn
            .open_cursor(&series(dialect, 50_000, false), &[], 1_000)
            .await
            .unwrap();
        assert_eq!(
            cursor
                .columns()
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["n", "label"]
        );

        // The connection is busy while the cursor is open.
        let err = conn.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Usage);
        assert!(
            err.message
                .contains("connection `test` is busy: a cursor is open"),
            "{err}"
        );
        assert_eq!(
            conn.open_cursor("SELECT 1", &[], 10)
                .await
                .unwrap_err()
                .kind,
            DbErrorKind::Usage
        );

        let mut next = 1i64;
        let mut sizes = Vec::new();
        while let Some(batch) = conn.next_batch(&cursor).await.unwrap() {
            sizes.push(batch.len());
            for row in batch {
                assert_eq!(row, [Value::Int(next), text(&format!("row {next}"))]);
                next += 1;
            }
        }
        assert_eq!(next, 50_001);
        // Batches of 1,000 ramp up (an eighth, a quarter, a half), then stay at 1,000;
        // the last holds what is left of the 50,000 rows.
        let mut expected = vec![125, 250, 500];
        expected.extend(std::iter::repeat_n(1_000, 49));
        expected.push(125);
        assert_eq!(sizes, expected);
        assert!(cursor.is_exhausted());
        assert_eq!(conn.next_batch(&cursor).await.unwrap(), None);
        // Free again: still inside the same read-only unit.
        assert_eq!(
            conn.query("SELECT 1 AS one", &[]).await.unwrap().rows,
            [vec![Value::Int(1)]]
        );

        // Closing early frees the connection; the closed cursor says so.
        let early = conn
            .open_cursor(&series(dialect, 50_000, false), &[], 100)
            .await
            .unwrap();
        assert_eq!(conn.next_batch(&early).await.unwrap().unwrap().len(), 100);
        conn.close_cursor(&early).await;
        conn.close_cursor(&early).await;
        assert_eq!(
            conn.next_batch(&early).await.unwrap_err().kind,
            DbErrorKind::Usage
        );
        assert_eq!(
            conn.query("SELECT 2 AS two", &[]).await.unwrap().rows,
            [vec![Value::Int(2)]]
        );

        // Rollback closes an open cursor.
        let abandoned = conn
            .open_cursor(&series(dialect, 1_000, false), &[], 10)
            .await
            .unwrap();
        conn.rollback().await.unwrap();
        assert_eq!(
            conn.next_batch(&abandoned).await.unwrap_err().kind,
            DbErrorKind::Usage
        );

        // Parameters, an empty result, and a batch that ends exactly at the last row.
        let filter = series(dialect, 100, true);
        let empty = conn
            .open_cursor(&filter, &[Value::Int(0)], 10)
            .await
            .unwrap();
        assert_eq!(empty.columns().len(), 2);
        assert_eq!(conn.next_batch(&empty).await.unwrap(), None);
        let exact = conn
            .open_cursor(&filter, &[Value::Int(20)], 10)
            .await
            .unwrap();
        assert_eq!(conn.next_batch(&exact).await.unwrap().unwrap().len(), 10);
        assert_eq!(conn.next_batch(&exact).await.unwrap().unwrap().len(), 10);
        assert!(
            exact.is_exhausted(),
            "the batch with the last row frees the connection"
        );
        assert_eq!(conn.next_batch(&exact).await.unwrap(), None);
        assert_eq!(
            conn.open_cursor("SELECT 1", &[], 0).await.unwrap_err().kind,
            DbErrorKind::Usage
        );
        if dialect == Dialect::Postgres {
            // An error met while streaming ends the cursor and frees the connection.
            let failing = conn
                .open_cursor(
                    "SELECT 1 / (500 - n) FROM generate_series(1, 1000) AS g (n)",
                    &[],
                    100,
                )
                .await
                .unwrap();
            let mut seen = 0;
            let err = loop {
                match conn.next_batch(&failing).await {
                    Ok(Some(batch)) => seen += batch.len(),
                    Ok(None) => panic!("the division by zero was not reported"),
                    Err(e) => break e,
                }
            };
            assert!(seen < 500);
            assert_eq!(
                (err.kind, err.code.as_deref()),
                (DbErrorKind::Value, Some("22012")),
                "{err}"
            );
            assert_eq!(
                conn.next_batch(&failing).await.unwrap_err().kind,
                DbErrorKind::Usage
            );
            assert_eq!(
                conn.query("SELECT 4 AS four", &[]).await.unwrap().rows,
                [vec![Value::Int(4)]]
            );
        }

        // A plain connection (no unit) streams too, and commit closes a leftover cursor.
        let mut rw = db.connect(Access::ReadWrite).await;
        rw.begin().await.unwrap();
        let left = rw
            .open_cursor(&series(dialect, 10, false), &[], 3)
            .await
            .unwrap();
        rw.next_batch(&left).await.unwrap();
        rw.commit().await.unwrap();
        assert_eq!(
            rw.query("SELECT 3 AS three", &[]).await.unwrap().rows,
            [vec![Value::Int(3)]]
        );
        rw.close().await;
        conn.close().await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Bulk inserts
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn bulk_insert_ten_thousand_rows() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        db.exec("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100), price DECIMAL(12, 2), payload TEXT)").await;
        let columns: Vec<String> = ["id", "name", "price", "payload"].iter().map(|s| s.to_string()).collect();
        let rows: Vec<Vec<Value>> = (0..10_000)
            .map(|i| {
                vec![
                    Value::Int(i),
                    text(&format!("item\t{i} \"é\" \\")),
                    Value::Decimal(format!("{}.{:02}", i, i % 100)),
                    if i % 7 == 0 { Value::Null } else { text(&"x".repeat((i % 50) as usize)) },
                ]
            })
            .collect();
        let mut conn = db.connect(Access::ReadWrite).await;
        conn.begin().await.unwrap();
        assert_eq!(conn.bulk_insert("items", &columns, &rows).await.unwrap(), 10_000);
        assert_eq!(conn.bulk_insert("items", &columns, &[]).await.unwrap(), 0);
        conn.commit().await.unwrap();
        assert_eq!(row_count(&db.url, "items").await, 10_000);
        let back = conn.query(&format!("SELECT id, name, price, payload FROM items WHERE id = {}", ph(dialect, 1)), &[Value::Int(4321)]).await.unwrap();
        let price = if dialect == Dialect::Sqlite { Value::Float(4321.21) } else { Value::Decimal("4321.21".into()) };
        assert_eq!(back.rows, [vec![Value::Int(4321), text("item\t4321 \"é\" \\"), price, text(&"x".repeat(21))]]);

        // Shape errors never reach the database.
        let err = conn.bulk_insert("items", &columns, &[vec![Value::Int(1)]]).await.unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Usage);
        assert_eq!(conn.bulk_insert("it\"ems`", &columns, &rows[..1]).await.unwrap_err().kind, DbErrorKind::Usage);
        assert_eq!(conn.bulk_insert("items", &[], &[]).await.unwrap_err().kind, DbErrorKind::Usage);
        if dialect == Dialect::Postgres {
            conn.execute("CREATE SCHEMA other", &[]).await.unwrap();
            conn.execute("CREATE TABLE other.t (id int)", &[]).await.unwrap();
            assert_eq!(conn.bulk_insert("other.t", &["id".into()], &[vec![Value::Int(1)]]).await.unwrap(), 1);
        }
        conn.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_insert_is_all_or_nothing_and_reports_the_constraint() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        db.exec("CREATE TABLE uniq (id BIGINT PRIMARY KEY, v TEXT)")
            .await;
        db.exec("INSERT INTO uniq (id, v) VALUES (5000, 'already here')")
            .await;
        let columns = vec!["id".to_owned(), "v".to_owned()];
        // Several chunks on MySQL/SQLite; the duplicate sits in the last one.
        let rows: Vec<Vec<Value>> = (0..6_000)
            .map(|i| vec![Value::Int(i), text("new")])
            .collect();
        let code = match dialect {
            Dialect::Postgres => "23505",
            Dialect::MySql => "1062",
            Dialect::Sqlite => "1555",
        };
        let mut conn = db.connect(Access::ReadWrite).await;
        let err = conn.bulk_insert("uniq", &columns, &rows).await.unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_deref()),
            (DbErrorKind::Constraint, Some(code)),
            "{dialect}: {err}"
        );
        assert_eq!(
            row_count(&db.url, "uniq").await,
            1,
            "{dialect}: outside a unit nothing stays"
        );

        // Inside a unit on MySQL/SQLite the unit survives, without the failed rows.
        conn.begin().await.unwrap();
        if dialect == Dialect::Postgres {
            // Streamed (`db::stream`): accepted now, refused when the stream ends, naming
            // the batch; the commit then refuses too, and nothing stays.
            assert_eq!(
                conn.bulk_insert("uniq", &columns, &rows).await.unwrap(),
                6_000
            );
            let err = conn.finish_bulk_insert().await.unwrap_err();
            assert_eq!(
                (err.kind, err.code.as_deref()),
                (DbErrorKind::Constraint, Some(code)),
                "{err}"
            );
            assert!(
                err.message
                    .contains("the 1st bulk insert into `uniq` in this unit")
                    && err.message.contains("the failing row is its row 5000"),
                "{err}"
            );
            let err = conn.commit().await.unwrap_err();
            assert_eq!(err.kind, DbErrorKind::Constraint);
            assert_eq!(row_count(&db.url, "uniq").await, 1);
            conn.close().await;
            return;
        }
        let err = conn.bulk_insert("uniq", &columns, &rows).await.unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Constraint);
        if dialect != Dialect::Postgres {
            conn.bulk_insert("uniq", &columns, &[vec![Value::Int(1), text("after")]])
                .await
                .unwrap();
            conn.commit().await.unwrap();
            assert_eq!(row_count(&db.url, "uniq").await, 2);
        } else {
            conn.rollback().await.unwrap();
        }
        conn.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checksums_see_every_change() {
    for_each_dialect(|db| async move {
        let dialect = db.dialect;
        db.exec("CREATE TABLE a (id INTEGER PRIMARY KEY, v VARCHAR(10))")
            .await;
        db.exec("CREATE TABLE b (id INTEGER PRIMARY KEY, v VARCHAR(10))")
            .await;
        db.exec("INSERT INTO a (id, v) VALUES (1, ''), (2, 'x')")
            .await;
        db.exec("INSERT INTO b (id, v) VALUES (2, 'x'), (1, NULL)")
            .await;
        let sums = database_checksums(&db.url).await;
        let names: Vec<&str> = sums.keys().map(String::as_str).collect();
        let expected = if dialect == Dialect::Postgres {
            ["public.a", "public.b"]
        } else {
            ["a", "b"]
        };
        assert_eq!(names, expected, "{dialect}");
        // NULL and empty text differ.
        assert_ne!(
            table_checksum(&db.url, "a").await,
            table_checksum(&db.url, "b").await
        );
        db.exec("UPDATE b SET v = '' WHERE id = 1").await;
        // Equal rows give equal checksums, whatever the table and insertion order.
        assert_eq!(
            table_checksum(&db.url, "a").await,
            table_checksum(&db.url, "b").await
        );
        db.exec("UPDATE b SET v = 'y' WHERE id = 2").await;
        let after = database_checksums(&db.url).await;
        assert_eq!(after.values().next(), sums.values().next());
        assert_ne!(after.values().nth(1), sums.values().nth(1));
        assert_eq!(row_count(&db.url, "b").await, 2);
    })
    .await;
}
