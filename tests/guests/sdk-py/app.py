"""A test guest written with the Python SDK (migrun_sdk), built by tests/e2e/support/plugins.rs
(`python_plugin`) and run by tests/e2e/sdk_python.rs: a value of every kind a dialect stores
written, read back as the native Python value, and written back unchanged; a database
error caught with its kind and code; an exception escaping a unit ending it as a plugin error.
"""

import datetime
import decimal
import uuid

import migrun_sdk as migrun
from migrun_sdk import DbError, Json, TextArray, Typed, Vector, check, connect, read_write, unit

BIG = 2**62 + 1
UTC = datetime.timezone.utc

# (column, its DDL type per dialect, the value written, what reading it back must give)
KINDS = [
    ("big", {"sqlite": "INTEGER", "postgres": "BIGINT", "mysql": "BIGINT"}, BIG, lambda v: v == BIG and type(v) is int),
    ("small", {"sqlite": "INTEGER", "postgres": "BIGINT", "mysql": "BIGINT"}, -42, lambda v: v == -42),
    ("f", {"sqlite": "REAL", "postgres": "DOUBLE PRECISION", "mysql": "DOUBLE"}, 0.1, lambda v: v == 0.1 and type(v) is float),
    ("t", {"sqlite": "TEXT", "postgres": "TEXT", "mysql": "TEXT"}, "héllo ✓", lambda v: v == "héllo ✓"),
    ("absent", {"sqlite": "TEXT", "postgres": "TEXT", "mysql": "TEXT"}, None, lambda v: v is None),
    ("b", {"postgres": "BOOLEAN"}, True, lambda v: v is True),
    ("raw", {"sqlite": "BLOB", "postgres": "BYTEA", "mysql": "VARBINARY(16)"}, b"\x00\x01\xfe\xff", lambda v: v == b"\x00\x01\xfe\xff" and type(v) is bytes),
    ("d", {"postgres": "NUMERIC(12,4)", "mysql": "DECIMAL(12,4)"}, decimal.Decimal("12.3400"), lambda v: isinstance(v, decimal.Decimal) and str(v) == "12.3400"),
    ("u", {"postgres": "UUID"}, uuid.UUID("67E55044-10B1-426F-9247-BB680E5FE0C8"), lambda v: v == uuid.UUID("67e55044-10b1-426f-9247-bb680e5fe0c8")),
    ("ts", {"postgres": "TIMESTAMPTZ"}, datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), lambda v: v == datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
    ("naive", {"postgres": "TIMESTAMP", "mysql": "DATETIME(6)"}, datetime.datetime(2024, 2, 29, 23, 59, 58, 5), lambda v: v == datetime.datetime(2024, 2, 29, 23, 59, 58, 5) and v.tzinfo is None),
    ("day", {"postgres": "DATE", "mysql": "DATE"}, datetime.date(2024, 2, 29), lambda v: v == datetime.date(2024, 2, 29) and not isinstance(v, datetime.datetime)),
    ("tod", {"postgres": "TIME", "mysql": "TIME(6)"}, datetime.time(12, 30, 1, 250000), lambda v: v == datetime.time(12, 30, 1, 250000)),
    ("doc", {"postgres": "JSONB"}, Json.of({"a": 1}), lambda v: isinstance(v, Json) and v.value == {"a": 1}),
    ("tags", {"postgres": "TEXT[]"}, TextArray(["x", "y"]), lambda v: isinstance(v, TextArray) and v == ["x", "y"]),
    ("vec", {"postgres": "REAL[]"}, Vector([0.5, -1.0, 3.25]), lambda v: isinstance(v, Vector) and v == [0.5, -1.0, 3.25]),
    ("span", {"postgres": "INTERVAL"}, "1 day 02:03:04", lambda v: isinstance(v, Typed) and v.type_name == "interval"),
]


class SdkPy(migrun.Plugin):
    name = "sdk-py"
    version = "1.0.0"
    description = "Exercises the Python SDK"
    connections = [read_write("target", "receives the kinds table", writes=["kinds", "people"])]

    @unit("values", "round-trips a value of every kind the dialect stores")
    def values(self):
        target = connect("target")
        kinds = [k for k in KINDS if target.dialect in k[1]]
        columns = ", ".join(f"{name} {types[target.dialect]}" for name, types, _, _ in kinds)
        target.execute(f"CREATE TABLE kinds (id BIGINT PRIMARY KEY, {columns})")
        if target.dialect == "postgres":
            # An interval has no Python form: written from text, read as a Typed value.
            written = {name: value for name, _, value, _ in kinds if name != "span"}
            target.bulk_insert("kinds", [{"id": 1, **written}])
            target.execute("UPDATE kinds SET span = CAST($1 AS interval) WHERE id = 1", ["1 day 02:03:04"])
        else:
            target.bulk_insert("kinds", [{"id": 1, **{name: value for name, _, value, _ in kinds}}])
        read = target.query_one(f"SELECT * FROM kinds WHERE id = {target.placeholder(1)}", [1])
        for name, _, _, ok in kinds:
            check(f"{name} round-trips", bool(ok(read[name])), f"read back {read[name]!r} ({type(read[name]).__name__})")
        # What was read writes back unchanged: a second row from the first, compared in SQL.
        target.bulk_insert("kinds", [{**read, "id": 2}])
        same = " AND ".join(f"(a.{name} = b.{name} OR (a.{name} IS NULL AND b.{name} IS NULL))" for name, _, _, _ in kinds)
        n = target.query_scalar(f"SELECT COUNT(*) FROM kinds a JOIN kinds b ON a.id = 1 AND b.id = 2 WHERE {same}")
        check("read values write back unchanged", n == 1, f"{n} matching pair")
        # Parameters bind every kind: each value finds its own row.
        for name, _, value, _ in kinds:
            if value is None or name == "span":
                continue
            found = target.query_scalar(f"SELECT COUNT(*) FROM kinds WHERE {name} = {target.placeholder(1)}", [value])
            check(f"{name} binds as a parameter", found == 2, f"{found} rows")

    @unit("constraint", "meets a duplicate key and reports its kind and code")
    def constraint(self):
        target = connect("target")
        target.execute("CREATE TABLE people (id BIGINT PRIMARY KEY, email VARCHAR(64) NOT NULL)")
        target.bulk_insert("people", [{"id": 1, "email": "a@example.com"}])
        # A savepoint, so that the unit goes on after the error (PostgreSQL aborts the
        # transaction at a failed statement; the savepoint is the plugin's own, inside the unit).
        target.execute("SAVEPOINT before_duplicate")
        try:
            target.execute(f"INSERT INTO people (id, email) VALUES ({target.placeholders(2)})", [1, "dup@example.com"])
            check("a duplicate is refused", False, "it was accepted")
        except DbError as e:
            target.execute("ROLLBACK TO SAVEPOINT before_duplicate")
            check("a duplicate is refused", e.kind == "constraint" and e.code is not None, f"{e.kind} {e.code}: {e}")
        target.bulk_insert("people", [{"id": 2, "email": "b@example.com"}])

    @unit("explode", "raises a TypeError")
    def explode(self):
        return len(None)


Plugin = migrun.export(SdkPy)
