//! pgvector on a real server (PostgreSQL 18 + pgvector 0.8.6, started by the
//! suite itself: `support::pg_server::pgvector`): `vector` and `halfvec` read
//! as float32 arrays and written in their binary forms, bit for bit, with the
//! column's dimensions and binary16's range checked; `sparsevec` and every
//! other type the host does not model carried between PostgreSQL connections
//! as typed binary values (contract 0.2.0), refused anywhere else; a 0.1.x
//! plugin reading them; a 0.2.0 plugin carrying them, journaled and replayed.

use migrun::db::{Access, Connection, DbErrorKind, Dialect};
use migrun::value::Value;

use crate::support::cli::Workspace;
use crate::support::database::TestDatabase;
use crate::support::plugins;

/// The suite's own pgvector server runs and has the extension this file is about.
#[tokio::test(flavor = "multi_thread")]
async fn pgvector_server_serves_the_extension() {
    let Some(db) = TestDatabase::pgvector().await else {
        return;
    };
    let mut conn = db.connect(Access::ReadWrite).await;
    let rows = conn
        .query(
            "SELECT extversion, current_setting('server_version_num')::int8 FROM pg_extension WHERE extname = 'vector'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows.rows.len(),
        1,
        "vector is created in every pgvector test database"
    );
    assert_eq!(rows.rows[0][0], Value::Text("0.8.6".into()));
    let Value::Int(version) = rows.rows[0][1] else {
        panic!("{:?}", rows.rows[0][1]);
    };
    assert!(version >= 180_000, "PostgreSQL 18, got {version}");
    conn.close().await;
}

/// The embeddings table on both sides, and rows that hold the awkward cases:
/// -0, the smallest subnormals (f32's in a `vector`, binary16's in a
/// `halfvec`), binary16's largest finite value, the largest f32, an empty and
/// a NULL sparse vector.
const EMBEDDINGS: &str =
    "CREATE TABLE emb (id int8 PRIMARY KEY, v vector(3), h halfvec(4), s sparsevec(6))";
const EMBEDDING_ROWS: &str = "INSERT INTO emb VALUES \
    (1, '[1,-0,1e-45]', '[0.000000059604645,-0,65504,-0.33325195]', '{1:1.5,6:-2}/6'), \
    (2, '[3.4028235e38,-1.1754944e-38,0.1]', '[1,2,3,4]', '{}/6'), \
    (3, NULL, NULL, NULL)";

/// Each row's binary forms as the server sends them (`vector_send`, …).
async fn sent_forms(conn: &mut Connection) -> Vec<Vec<Value>> {
    conn.query(
        "SELECT id, vector_send(v), halfvec_send(h), sparsevec_send(s) FROM emb ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .rows
}

fn bits(v: &Value) -> Vec<u32> {
    match v {
        Value::Float32Array(v) => v.iter().map(|f| f.to_bits()).collect(),
        other => panic!("not a float32 array: {other:?}"),
    }
}

/// `vector`, `halfvec` and `sparsevec` read from one database and written into
/// another — by bulk insert (binary COPY) and by parameters — arrive bit for bit:
/// the server's own `*_send` bytes are equal, and so is `=` against the literals.
/// The target's pgvector types have other oids (the extension is created after
/// another one there): the typed `sparsevec` is resolved by name.
#[tokio::test(flavor = "multi_thread")]
async fn vectors_round_trip_bit_exactly_between_databases() {
    let (Some(source), Some(target)) = (
        TestDatabase::pgvector().await,
        TestDatabase::pgvector().await,
    ) else {
        return;
    };
    source.exec(EMBEDDINGS).await;
    source.exec(EMBEDDING_ROWS).await;
    target.exec("DROP EXTENSION vector").await;
    target.exec("CREATE EXTENSION citext").await;
    target.exec("CREATE EXTENSION vector").await;
    target.exec(EMBEDDINGS).await;
    target
        .exec(&EMBEDDINGS.replace("emb (", "expected ("))
        .await;
    target
        .exec(&EMBEDDING_ROWS.replace("INTO emb", "INTO expected"))
        .await;
    target
        .exec(&EMBEDDINGS.replace("emb (", "by_params ("))
        .await;

    let mut src = Connection::connect("source", &source.ro_url, Access::ReadOnly)
        .await
        .unwrap();
    let read = src
        .query("SELECT id, v, h, s FROM emb ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(read.rows.len(), 3);
    assert_eq!(
        bits(&read.rows[0][1]),
        [1f32.to_bits(), (-0f32).to_bits(), 1],
        "a vector reads as its floats, -0 and the smallest subnormal included"
    );
    assert_eq!(
        bits(&read.rows[0][2]),
        [
            5.960_464_5e-8f32.to_bits(), // 2^-24, binary16's smallest subnormal, widened exactly
            (-0f32).to_bits(),
            65504f32.to_bits(),
            (-0.333_251_95f32).to_bits()
        ]
    );
    match &read.rows[0][3] {
        Value::Typed { type_name, bytes } => {
            assert_eq!(type_name, "sparsevec");
            // int32 dim 6, int32 nnz 2, int32 0, indices 0 and 5, then 1.5 and -2.
            assert_eq!(
                hex::encode(bytes),
                "00000006000000020000000000000000000000053fc00000c0000000"
            );
        }
        other => panic!("sparsevec reads as a typed value, got {other:?}"),
    }
    assert_eq!(read.rows[2][1..], [Value::Null, Value::Null, Value::Null]);

    let mut dst = target.connect(Access::ReadWrite).await;
    let columns: Vec<String> = ["id", "v", "h", "s"].map(String::from).to_vec();
    let n = dst.bulk_insert("emb", &columns, &read.rows).await.unwrap();
    assert_eq!(n, 3);
    for row in &read.rows {
        dst.execute("INSERT INTO by_params VALUES ($1, $2, $3, $4)", row)
            .await
            .unwrap();
    }

    let sent = sent_forms(&mut src).await;
    assert_eq!(
        sent_forms(&mut dst).await,
        sent,
        "bulk insert: the same bytes"
    );
    let by_params = dst
        .query(
            "SELECT id, vector_send(v), halfvec_send(h), sparsevec_send(s) FROM by_params ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .rows;
    assert_eq!(by_params, sent, "parameters: the same bytes");
    for table in ["emb", "by_params"] {
        let equal = dst
            .query(
                &format!(
                    "SELECT count(*) FROM {table} t JOIN expected x USING (id) \
                     WHERE t.v IS NOT DISTINCT FROM x.v AND t.h IS NOT DISTINCT FROM x.h \
                     AND t.s IS NOT DISTINCT FROM x.s"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(equal.rows[0][0], Value::Int(3), "{table} = the literals");
    }
    src.close().await;
    dst.close().await;
}

/// A float32 array into a `halfvec`/`vector` column of other dimensions, or
/// holding what binary16 cannot hold, is a `value` error naming the table,
/// row, column and type, and the bulk insert writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn dimension_mismatch_and_halfvec_range_are_refused_by_name() {
    let Some(db) = TestDatabase::pgvector().await else {
        return;
    };
    db.exec("CREATE TABLE memory (id int8, embedding halfvec(4), v vector(3))")
        .await;
    let mut conn = db.connect(Access::ReadWrite).await;
    let columns: Vec<String> = ["id", "embedding", "v"].map(String::from).to_vec();
    let row = |id: i64, h: Vec<f32>, v: Vec<f32>| {
        vec![
            Value::Int(id),
            Value::Float32Array(h.into()),
            Value::Float32Array(v.into()),
        ]
    };
    let good = row(1, vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 2.0, 3.0]);
    for (bad, expected) in [
        (
            row(2, vec![1.0, 2.0, 3.0], vec![1.0, 2.0, 3.0]),
            "row 1, column `embedding` of \"memory\": halfvec(4): expected 4 dimensions, not 3",
        ),
        (
            row(2, vec![1.0, 2.0, 3.0, 4.0], vec![1.0; 1536]),
            "row 1, column `v` of \"memory\": vector(3): expected 3 dimensions, not 1536",
        ),
        (
            row(2, vec![1.0, 2.0, 3.0, 70000.0], vec![1.0, 2.0, 3.0]),
            "halfvec(4): 70000 at index 3 is out of range for type halfvec",
        ),
        (
            row(2, vec![1.0, f32::NAN, 3.0, 4.0], vec![1.0, 2.0, 3.0]),
            "NaN at index 1 is not allowed in halfvec",
        ),
    ] {
        let err = conn
            .bulk_insert("memory", &columns, &[good.clone(), bad])
            .await
            .unwrap_err();
        assert_eq!(err.kind, DbErrorKind::Value, "{err}");
        assert!(err.message.contains(expected), "{expected}\n{err}");
    }
    let count = conn
        .query("SELECT count(*) FROM memory", &[])
        .await
        .unwrap();
    assert_eq!(count.rows[0][0], Value::Int(0), "nothing was written");
    conn.close().await;
}

/// A float32 array written into a `halfvec` is rounded to binary16 exactly as
/// pgvector rounds a `real[]` cast to `halfvec` (to nearest, ties to even):
/// the server's `halfvec_send` of both is the same.
#[tokio::test(flavor = "multi_thread")]
async fn float32_array_into_halfvec_rounds_as_pgvector_does() {
    let Some(db) = TestDatabase::pgvector().await else {
        return;
    };
    db.exec("CREATE TABLE h (id int8, e halfvec)").await;
    let floats = vec![
        0.1f32,
        1.0 / 3.0,
        65519.0, // rounds down to 65504, binary16's largest
        1e-8,    // below half of the smallest subnormal: 0
        -4.5e-8, // rounds to binary16's smallest subnormal, -2^-24
        3.000_000_2,
        -0.0,
        2049.0, // a tie: to even, 2048
    ];
    let mut conn = db.connect(Access::ReadWrite).await;
    conn.bulk_insert(
        "h",
        &["id".into(), "e".into()],
        &[vec![
            Value::Int(1),
            Value::Float32Array(floats.clone().into()),
        ]],
    )
    .await
    .unwrap();
    let rows = conn
        .query(
            "SELECT halfvec_send(e), halfvec_send($1::real[]::halfvec), e::text FROM h",
            &[Value::Float32Array(floats.into())],
        )
        .await
        .unwrap();
    assert_eq!(rows.rows[0][0], rows.rows[0][1], "{:?}", rows.rows[0][2]);
    assert_eq!(
        rows.rows[0][2],
        Value::Text("[0.099975586,0.33325195,65504,0,-5.9604645e-08,3,-0,2048]".into())
    );
    conn.close().await;
}

/// Types the host does not model (`ltree`, `ltree[]`, `tstzrange`, `interval`,
/// `int8[]`, `point`) cross from one PostgreSQL database to another as typed
/// values, by bulk insert and by parameters, unchanged; the target's `ltree`
/// has another oid, which the `ltree[]` binary form names (rewritten).
#[tokio::test(flavor = "multi_thread")]
async fn typed_values_cross_between_postgres_databases() {
    let (Some(source), Some(target)) = (
        TestDatabase::pgvector().await,
        TestDatabase::pgvector().await,
    ) else {
        return;
    };
    let table = "CREATE TABLE t (id int8, tree ltree, trees ltree[], span tstzrange, gap interval, ids int8[], at point)";
    source.exec("CREATE EXTENSION ltree").await;
    source.exec(table).await;
    source
        .exec(
            "INSERT INTO t VALUES \
             (1, 'root.a.b', ARRAY['x.y'::ltree, 'z'], tstzrange('2024-01-01 00:00:00+00', NULL), \
              '1 year 2 mons 3 days 04:05:06.789', ARRAY[1, -2, 9223372036854775807], '(1.5,-2)'), \
             (2, '', '{}', 'empty', '-1 day', '{}', '(0,0)'), \
             (3, NULL, NULL, NULL, NULL, NULL, NULL)",
        )
        .await;
    target.exec("CREATE EXTENSION citext").await;
    target.exec("CREATE EXTENSION ltree").await;
    target.exec(table).await;
    target.exec(&table.replace("t (", "p (")).await;

    let text_form =
        "SELECT id, tree::text, trees::text, span::text, gap::text, ids::text, at::text FROM";
    let mut src = Connection::connect("source", &source.ro_url, Access::ReadOnly)
        .await
        .unwrap();
    let read = src.query("SELECT * FROM t ORDER BY id", &[]).await.unwrap();
    let names: Vec<&str> = read.rows[0][1..]
        .iter()
        .map(|v| match v {
            Value::Typed { type_name, .. } => type_name.as_str(),
            other => panic!("a typed value, got {other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "ltree",
            "ltree[]",
            "tstzrange",
            "interval",
            "int8[]",
            "point"
        ]
    );
    let expected = src
        .query(&format!("{text_form} t ORDER BY id"), &[])
        .await
        .unwrap()
        .rows;

    let mut dst = target.connect(Access::ReadWrite).await;
    let columns: Vec<String> = read.columns.iter().map(|c| c.name.clone()).collect();
    dst.bulk_insert("t", &columns, &read.rows).await.unwrap();
    for row in &read.rows {
        dst.execute("INSERT INTO p VALUES ($1, $2, $3, $4, $5, $6, $7)", row)
            .await
            .unwrap();
    }
    for table in ["t", "p"] {
        let got = dst
            .query(&format!("{text_form} {table} ORDER BY id"), &[])
            .await
            .unwrap()
            .rows;
        assert_eq!(got, expected, "{table}");
    }
    src.close().await;
    dst.close().await;
}

/// A typed value goes only into a column of its own type on PostgreSQL: into
/// another type, into a database without the type, or through SQLite or
/// MariaDB it is a `value` error that says why.
#[tokio::test(flavor = "multi_thread")]
async fn typed_values_are_refused_by_other_types_and_dialects() {
    let Some(db) = TestDatabase::pgvector().await else {
        return;
    };
    db.exec("CREATE TABLE t (note text, gap interval)").await;
    let interval = Value::Typed {
        type_name: "interval".into(),
        bytes: vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    let mut conn = db.connect(Access::ReadWrite).await;
    let err = conn
        .bulk_insert("t", &["note".into()], &[vec![interval.clone()]])
        .await
        .unwrap_err();
    assert_eq!(err.kind, DbErrorKind::Value);
    assert!(
        err.message.contains(
            "row 0, column `note` of \"t\": a typed `interval` value cannot be written into a column of type text"
        ),
        "{err}"
    );
    let ltree = Value::Typed {
        type_name: "ltree".into(),
        bytes: vec![1, b'a'],
    };
    let err = conn
        .execute("INSERT INTO t (note) VALUES ($1::text)", &[ltree])
        .await
        .unwrap_err();
    assert!(
        err.message.contains("this database has no type `ltree`"),
        "{err}"
    );
    // The right column takes it.
    conn.bulk_insert("t", &["gap".into()], &[vec![interval.clone()]])
        .await
        .unwrap();
    let gap = conn.query("SELECT gap::text FROM t", &[]).await.unwrap();
    assert_eq!(gap.rows[0][0], Value::Text("00:00:00.000001".into()));
    conn.close().await;

    for dialect in [Dialect::Sqlite, Dialect::MySql] {
        let Some(other) = TestDatabase::create(dialect).await else {
            continue;
        };
        other.exec("CREATE TABLE t (note TEXT)").await;
        let mut conn = other.connect(Access::ReadWrite).await;
        let by_param = conn
            .execute(
                "INSERT INTO t (note) VALUES (?)",
                std::slice::from_ref(&interval),
            )
            .await
            .unwrap_err();
        let by_bulk = conn
            .bulk_insert("t", &["note".into()], &[vec![interval.clone()]])
            .await
            .unwrap_err();
        for err in [by_param, by_bulk] {
            assert_eq!(err.kind, DbErrorKind::Value, "{dialect}: {err}");
            assert!(
                err.message.contains(&format!(
                    "a typed `interval` value holds PostgreSQL's binary form and cannot be written through a {dialect} connection"
                )),
                "{dialect}: {err}"
            );
        }
        conn.close().await;
    }
}

/// A contract 0.1.x plugin (`tests/guests/contract-v0-1-1`) reads a `halfvec` column
/// without a cast, as a float32 array; a column of a type the host does not model still
/// fails with the message it always had, naming a cast. The SDK's plugins (0.2.0, here
/// `sql-script`) read that column as a typed value instead.
#[tokio::test(flavor = "multi_thread")]
async fn contract_0_1_plugins_read_halfvec_but_not_typed_columns() {
    let Some(db) = TestDatabase::pgvector().await else {
        return;
    };
    db.exec("CREATE EXTENSION ltree").await;
    db.exec("CREATE TABLE x (h halfvec(3), tree ltree)").await;
    db.exec("INSERT INTO x VALUES ('[1,-2.5,0.099975586]', 'a.b')")
        .await;
    let plugin = plugins::plugin("contract-v0-1-1");
    let ws = Workspace::new();
    let config = |sql: &str| {
        format!(
            "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n[config]\nrows = 1\nquery = \"{sql}\"\n",
            db.url
        )
    };
    ws.config(&config("SELECT h FROM x"));
    ws.migrun(&[plugin.to_str().unwrap(), "--no-backup"])
        .expect_code(0)
        .expect_output("Float32Array([1.0, -2.5, 0.099975586])");
    // The same build finished `write-rows` above: forget that, so it runs again.
    db.exec("DELETE FROM migrun_ledger").await;
    ws.config(&config("SELECT tree FROM x"));
    ws.migrun(&[plugin.to_str().unwrap(), "--no-backup"])
        .expect_code(1)
        .expect_output("column `tree` has type ltree, which migrun cannot read")
        .expect_output("`tree::text`");

    // A 0.2.0 plugin (the SDK's sql-script) reads the same column as a typed value.
    let sdk = plugins::plugin("sql-script");
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\n[config]\nsql = \"-- migrun:query SELECT tree FROM x\"\n",
        db.url
    ));
    ws.migrun(&[sdk.to_str().unwrap(), "--no-backup"])
        .expect_code(0)
        .expect_output("Typed { type_name:")
        .expect_output("ltree");
}

/// A contract 0.2.0 plugin carries a table of vectors and typed values from a
/// read-only source to a target without looking inside them: the target holds
/// the same bytes, the run's journal replays to "verified", and the same copy
/// into SQLite fails on the first typed value, naming why.
#[tokio::test(flavor = "multi_thread")]
async fn a_0_2_0_plugin_carries_vectors_and_typed_values_and_replays() {
    let (Some(source), Some(target)) = (
        TestDatabase::pgvector().await,
        TestDatabase::pgvector().await,
    ) else {
        return;
    };
    let table = "CREATE TABLE mem (id int8 PRIMARY KEY, tree ltree, span tstzrange, gap interval, \
                 s sparsevec(5), h halfvec(3), v vector(2))";
    for db in [&source, &target] {
        db.exec("CREATE EXTENSION ltree").await;
        db.exec(table).await;
    }
    source
        .exec(
            "INSERT INTO mem SELECT i, ('n' || i)::ltree, tstzrange(now(), NULL), i * interval '1 minute', \
             ('{' || (i % 5 + 1) || ':' || i || '}/5')::sparsevec, \
             ARRAY[i, -i, 1.0 / (i + 1)]::real[]::halfvec, ARRAY[i, 0.1]::real[]::vector \
             FROM generate_series(1, 250) i",
        )
        .await;
    let plugin = plugins::plugin("contract-v0-2-0");
    let copy = "copy = \"SELECT * FROM mem ORDER BY id => mem\"\n";
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\
         [connections.audit]\nurl = \"{}\"\naccess = \"read-only\"\n[config]\n{copy}",
        target.url, source.ro_url
    ));
    let out = ws.migrun(&[plugin.to_str().unwrap(), "--only", "copy-values", "--json"]);
    out.expect_code(0)
        .expect_output("interval=250,ltree=250,sparsevec=250,tstzrange=250");
    let sent = "SELECT id, ltree_send(tree), range_send(span), interval_send(gap), \
                sparsevec_send(s), halfvec_send(h), vector_send(v) FROM mem ORDER BY id";
    let mut src = source.connect(Access::ReadWrite).await;
    let mut dst = target.connect(Access::ReadWrite).await;
    let expected = src.query(sent, &[]).await.unwrap().rows;
    assert_eq!(expected.len(), 250);
    assert_eq!(dst.query(sent, &[]).await.unwrap().rows, expected);
    src.close().await;
    dst.close().await;

    let report = out.json();
    let journal = ws
        .path()
        .join(report["journal"]["path"].as_str().expect("journal path"));
    ws.migrun(&["replay", journal.to_str().unwrap()])
        .expect_code(0)
        .expect_output("verified: ");

    let sqlite = TestDatabase::create(Dialect::Sqlite).await.expect("sqlite");
    sqlite
        .exec(
            "CREATE TABLE mem (id INTEGER, tree TEXT, span TEXT, gap TEXT, s TEXT, h TEXT, v TEXT)",
        )
        .await;
    let ws = Workspace::new();
    ws.config(&format!(
        "[connections.target]\nurl = \"{}\"\naccess = \"read-write\"\n\
         [connections.audit]\nurl = \"{}\"\naccess = \"read-only\"\n[config]\n{copy}",
        sqlite.url, source.ro_url
    ));
    ws.migrun(&[plugin.to_str().unwrap(), "--only", "copy-values", "--no-backup"])
        .expect_code(1)
        .expect_output("a typed `ltree` value holds PostgreSQL's binary form and cannot be written through a sqlite connection");
}
