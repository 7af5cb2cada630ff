"""{{name}}: a migrun plugin, in Python, on migrun_sdk (contract 0.2.0).

It declares one read-write connection, `target`, and two units: one creates a
table, the other fills it; `verify` checks the result. Replace them with your
migration: add `read_only("source", ...)`, read it with `connect("source")`,
and write with `bulk_insert`, `Backfill` or `copy` (see migrun's
docs/plugins-python.md).

Build:   componentize-py -d wit -w migration componentize app -p . -p "$(python3 -m migrun_sdk path)" -o {{crate_name}}.wasm
Dry-run: migrun {{crate_name}}.wasm --dry-run
Test:    python3 -m pytest
"""

import migrun_sdk as migrun
from migrun_sdk import Config, check, connect, log, progress, read_write, unit


class {{type_name}}(migrun.Plugin):
    name = "{{name}}"
    version = "0.1.0"
    description = "Writes numbered greetings (a starting point: replace with your migration)"
    connections = [read_write("target", "where the greetings go", writes=["greetings"])]
    count = Config.int(3, "how many greetings there should be", min=0)

    @unit("create-table", "creates the greetings table when absent")
    def create_table(self):
        # The host opened a transaction on `target` for this unit and commits it
        # when the unit returns (a dry-run rolls it back).
        target = connect("target")
        target.execute("CREATE TABLE IF NOT EXISTS greetings (id INTEGER PRIMARY KEY, message TEXT NOT NULL)")
        log.info("greetings exists", dialect=target.dialect)

    @unit("fill", "inserts the greetings that are missing")
    def fill(self):
        target = connect("target")
        last = target.query_scalar("SELECT COALESCE(MAX(id), 0) FROM greetings")
        rows = [{"id": i, "message": f"hello, world #{i}"} for i in range(last + 1, self.count + 1)]
        written = target.bulk_insert("greetings", rows)
        progress("fill", written, len(rows))
        log.info(f"wrote {written} greetings", written=written)

    def verify(self):
        n = connect("target").query_scalar("SELECT COUNT(*) FROM greetings")
        check("every greeting is there", n >= self.count, f"{n} greetings, at least {self.count} expected")


# componentize-py looks for the class `Plugin` in this module.
Plugin = migrun.export({{type_name}})
