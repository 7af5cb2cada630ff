"""Tests of {{name}}, run with `python3 -m pytest`: each builds the plugin (once) and runs it
with the `migrun` binary (`$MIGRUN`, else on PATH) against an embedded SQLite file in a
temporary folder. Give `Workspace(..., dbs={"target": "postgres://…"})` to run elsewhere."""

from migrun_sdk.testing import Workspace, build


def test_writes_the_greetings_once(tmp_path):
    ws = Workspace(tmp_path, plugin=build(".", output="{{crate_name}}.wasm"))

    report = ws.run(set={"count": 5})
    assert report.checks["every greeting is there"]["ok"]
    assert ws.sql("target", "SELECT id, message FROM greetings ORDER BY id").rows[0] == [1, "hello, world #1"]
    assert ws.sql("target", "SELECT COUNT(*) FROM greetings").scalar() == 5

    # A second run finds its units done (migrun's ledger) and changes nothing.
    ws.run(set={"count": 5})
    assert ws.sql("target", "SELECT COUNT(*) FROM greetings").scalar() == 5
