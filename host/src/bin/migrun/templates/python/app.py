"""{{name}}: a migrun plugin, in Python.

It declares one read-write connection, `target`, and two units: one creates
a table, the other fills it; `verify` checks the result. Replace them with
your migration: add a read-only `source` connection, stream it with
`open_cursor`/`next_batch` and write with `bulk_insert`. migrun's
`docs/plugins-python.md` walks through the bindings.

Build:   componentize-py -d wit -w migration componentize app -o {{crate_name}}.wasm
Dry-run: migrun {{crate_name}}.wasm --dry-run

The bindings (`wit_world`) are generated from `wit/` at build time. Imports
returning `result<T, db-error>` return T or raise `Err(db_error)`; an export
fails by raising `Err(plugin_error)`.
"""

from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.plugin import (
    ConfigKey,
    ConnectionNeed,
    PluginError_Database,
    PluginError_Failed,
    PluginInfo,
    UnitInfo,
)
from wit_world.imports import checks, database, log
from wit_world.imports.types import DbError, Value_Int, Value_Text

TABLE = "greetings"

# The configuration, kept between calls (one component instance is one run).
STATE = {"count": 3}


def fail(message: str):
    """Ends the export call with the plugin's own error."""
    raise Err(PluginError_Failed(message))


def plugin_errors(export):
    """Turns a database error raised by an import into the export's `plugin-error`."""

    def wrapper(*args):
        try:
            return export(*args)
        except Err as e:
            if isinstance(e.value, DbError):
                raise Err(PluginError_Database(e.value))
            raise

    return wrapper


def unit(name: str, description: str) -> UnitInfo:
    """A unit with the contract's defaults: inside the host's transactions, no scope of
    its own, the operator's timeouts. Pass transactional=False for a step outside a
    transaction (CREATE INDEX CONCURRENTLY), a scope when the configuration makes it a
    different piece of work, always_run=True, or skipped="reason"."""
    return UnitInfo(
        name,
        description,
        scope=None,
        transactional=True,
        lock_timeout_ms=None,
        statement_timeout_ms=None,
        always_run=False,
        skipped=None,
    )


def scalar(conn: database.Connection, sql: str) -> int:
    """The first column of the first row of a query returning one integer."""
    return conn.query(sql, []).rows[0][0].value


class Plugin(exports.Plugin):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            description="Writes numbered greetings (a starting point: replace with your migration)",
            connections=[
                ConnectionNeed("target", database.Access.READ_WRITE, "where the greetings go", [TABLE], optional=False),
            ],
            units=[
                unit("create-table", "creates the greetings table when absent"),
                unit("fill", "inserts the greetings that are missing"),
            ],
            config=[ConfigKey("count", "how many greetings there should be", False, "3", False)],
        )

    @plugin_errors
    def configure(self, config: List[Tuple[str, str]]) -> None:
        value = dict(config).get("count", "3")
        if not value.isdigit():
            fail(f"config key `count` must be a whole number, got `{value}`")
        STATE["count"] = int(value)

    def list_units(self) -> List[UnitInfo]:
        return self.describe().units

    @plugin_errors
    def run_unit(self, unit: str) -> None:
        # The host opened a transaction on `target` for this unit and commits
        # it when the unit returns (a dry-run rolls it back).
        with database.open("target") as target:
            if unit == "create-table":
                target.execute(
                    "CREATE TABLE IF NOT EXISTS greetings (id INTEGER PRIMARY KEY, message TEXT NOT NULL)",
                    [],
                )
                log.write(log.Level.INFO, f"{TABLE} exists", [("dialect", target.dialect().name.lower())])
            elif unit == "fill":
                last = scalar(target, "SELECT COALESCE(MAX(id), 0) FROM greetings")
                rows = [[Value_Int(i), Value_Text(f"hello, world #{i}")] for i in range(last + 1, STATE["count"] + 1)]
                log.progress("fill", 0, len(rows))
                written = target.bulk_insert(TABLE, ["id", "message"], rows) if rows else 0
                log.progress("fill", written, len(rows))
                log.write(log.Level.INFO, f"wrote {written} greetings", [("written", str(written))])
            else:
                fail(f"unknown unit `{unit}`")

    @plugin_errors
    def verify(self) -> None:
        with database.open("target") as target:
            n = scalar(target, "SELECT COUNT(*) FROM greetings")
            count = STATE["count"]
            checks.report("every greeting is there", n >= count, f"{n} greetings, at least {count} expected")
