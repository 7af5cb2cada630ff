//! The plugin, built for wasm32-wasip2 and run by the real `migrun` (the binary `MIGRUN`
//! names, else `migrun` on PATH) in a temporary folder, against an embedded SQLite file
//! there. `cargo test` runs it; `migrun_sdk::testing` documents the helpers, and
//! `Workspace::db("target", "postgres://…")` points a connection at a server instead.

use migrun_sdk::testing::{Component, Run, Workspace};

#[test]
fn fill_adds_the_missing_greetings() {
    let plugin = Component::build(env!("CARGO_MANIFEST_DIR"));
    let ws = Workspace::new(&plugin);
    // Set up: one greeting exists already.
    ws.sql(
        "target",
        [
            "CREATE TABLE greetings (id INTEGER PRIMARY KEY, message TEXT NOT NULL)",
            "INSERT INTO greetings (id, message) VALUES (1, 'hi')",
        ],
    );

    // A dry-run changes nothing.
    ws.run(Run::new().dry_run().set("count", 3)).expect_success();
    let n: i64 = ws.sql("target", ["SELECT COUNT(*) FROM greetings"]).scalar();
    assert_eq!(n, 1);

    // The run adds the two missing greetings and its check passes.
    let report = ws.run(Run::new().set("count", 3));
    report.expect_success();
    assert_eq!(report.unit_status("fill"), Some("committed"));
    assert!(report.check("every greeting is there").unwrap().ok);
    let rows: Vec<(i64, String)> = ws
        .sql("target", ["SELECT id, message FROM greetings ORDER BY id"])
        .rows_as();
    assert_eq!(
        rows,
        [
            (1, "hi".to_owned()),
            (2, "hello, world #2".to_owned()),
            (3, "hello, world #3".to_owned()),
        ]
    );
}
