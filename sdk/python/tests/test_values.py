"""The pure parts of the SDK, outside a component: `python3 -m pytest sdk/python/tests`."""

import datetime as dt
import decimal
import uuid

import pytest

from migrun_sdk.backfill import decode_position
from migrun_sdk.errors import DbError, Failed, context
from migrun_sdk.plugin import Config, Plugin, unit
from migrun_sdk.values import Json, Raw, TextArray, Typed, Vector, native_of, wire_of

CANONICAL = [
    ("int", -42),
    ("text", "a\nb"),
    ("float", 0.25),
    ("boolean", True),
    ("bytes", b"\x00\xff"),
    ("json", '{"a": [1, 2]}'),
    ("uuid", "67e55044-10b1-426f-9247-bb680e5fe0c8"),
    ("date", "2024-02-29"),
    ("time", "03:04:05"),
    ("time", "03:04:05.250000"),
    ("time", "03:04:05.123456789"),
    ("timestamp", "2024-01-02T03:04:05"),
    ("timestamp", "2024-01-02T03:04:05.000001"),
    ("timestamptz", "2024-01-02T03:04:05Z"),
    ("timestamptz", "2024-01-02T03:04:05.5Z"),
    ("decimal", "-12.3400"),
    ("decimal", "100000000000000000000.000000000001"),
    ("float32-array", [0.5, -1.0]),
    ("float32-array", []),
    ("text-array", ["a", "b"]),
    ("text-array", []),
]


@pytest.mark.parametrize("kind,payload", CANONICAL)
def test_every_canonical_value_comes_back_unchanged(kind, payload):
    native = native_of(kind, payload)
    again = wire_of(native)
    assert again == (kind, payload)


def test_native_types():
    assert native_of("uuid", "67e55044-10b1-426f-9247-bb680e5fe0c8") == uuid.UUID("67e55044-10b1-426f-9247-bb680e5fe0c8")
    assert native_of("decimal", "1.50") == decimal.Decimal("1.50")
    assert native_of("timestamptz", "2024-01-02T03:04:05Z") == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert native_of("timestamp", "2024-01-02T03:04:05").tzinfo is None
    assert native_of("date", "2024-01-02") == dt.date(2024, 1, 2)
    assert native_of("json", "[1]").value == [1]
    assert isinstance(native_of("float32-array", [1.0]), Vector)
    assert native_of("time", "03:04:05.123456789") == Raw("time", "03:04:05.123456789")
    # Not the host's six digits: kept as text, so it is written back as it came.
    assert native_of("timestamptz", "2024-01-02T03:04:05.5Z") == Raw("timestamptz", "2024-01-02T03:04:05.5Z")


def test_python_values_pick_their_kind():
    assert wire_of(None) == ("null", None)
    assert wire_of(True) == ("boolean", True)
    assert wire_of(7) == ("int", 7)
    assert wire_of(dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == ("timestamptz", "2024-01-01T22:00:00Z")
    assert wire_of(dt.datetime(2024, 1, 2)) == ("timestamp", "2024-01-02T00:00:00")
    assert wire_of(decimal.Decimal("1E+3")) == ("decimal", "1000")
    assert wire_of([1.5, 2]) == ("float32-array", [1.5, 2.0])
    assert wire_of(["a"]) == ("text-array", ["a"])
    assert wire_of({"a": 1}) == ("json", '{"a": 1}')
    assert wire_of([{"a": 1}]) == ("json", '[{"a": 1}]')
    assert wire_of(Json.of({"b": 2})) == ("json", '{"b": 2}')
    assert wire_of(TextArray()) == ("text-array", [])
    assert wire_of(Typed("ltree", b"\x01a")) == ("typed", Typed("ltree", b"\x01a"))
    assert wire_of(Raw("timestamp", "2024-01-02 03:04:05")) == ("timestamp", "2024-01-02 03:04:05")
    with pytest.raises(ValueError, match="64-bit"):
        wire_of(2**63)
    with pytest.raises(ValueError, match="finite"):
        wire_of(decimal.Decimal("NaN"))
    with pytest.raises(TypeError, match="cannot store a set"):
        wire_of({1})


def test_backfill_positions_read_the_rust_sdks_state():
    # The text the Rust SDK's Backfill saves (guest-sdk/src/backfill.rs, `Position::encode`).
    assert decode_position("backfill/1\nbackfill users\n1500\n3\nint\n-42") == ("backfill users", 1500, 3, -42)
    assert decode_position("backfill/1\nt\n1\n1\ntext\na\nb c") == ("t", 1, 1, "a\nb c")
    uid = decode_position("backfill/1\nt\n1\n1\nuuid\n67e55044-10b1-426f-9247-bb680e5fe0c8")[3]
    assert uid == uuid.UUID("67e55044-10b1-426f-9247-bb680e5fe0c8")
    assert decode_position("something else") is None
    assert decode_position('{"copy":"x","last_key":[1],"copied":1}') is None
    assert decode_position(None) is None


def test_errors_keep_kind_and_code_under_context():
    with pytest.raises(DbError) as caught:
        with context("inserting accounts 1 to 100"):
            raise DbError("constraint", "duplicate key", "23505")
    e = caught.value
    assert (e.kind, e.code, e.message) == ("constraint", "23505", "inserting accounts 1 to 100: duplicate key")
    assert str(e) == "inserting accounts 1 to 100: duplicate key [constraint, code 23505]"
    with pytest.raises(Failed, match=r"^reading: KeyError: 'x' \(at test_values.py:\d+ in "):
        with context("reading"):
            {}["x"]


class Example(Plugin):
    name = "example"
    batch_size = Config.int(500, "rows per batch", min=1)
    mode = Config.str("fast", "how", choices=["fast", "slow"])
    dry = Config.bool(False, "a flag")
    token = Config.str(None, "secret", required=True, secret=True)

    @unit("first-step", "one")
    def first(self):
        return "first"

    @unit
    def second_step(self):
        return "second"


def test_config_keys_and_units_are_declared_in_order():
    assert [k.name for k in Example.config_keys()] == ["batch_size", "mode", "dry", "token"]
    assert [k.default_text() for k in Example.config_keys()] == ["500", "fast", "false", None]
    assert [u.name for u in Example.declared_units()] == ["first-step", "second-step"]
    values = {k.name: k.value({"batch_size": " 20 ", "dry": "yes", "token": "t"}) for k in Example.config_keys()}
    assert values == {"batch_size": 20, "mode": "fast", "dry": True, "token": "t"}
    with pytest.raises(Failed, match="config key `batch_size`: cannot parse 'x' as an integer"):
        Example.config_keys()[0].value({"batch_size": "x"})
    with pytest.raises(Failed, match="at least 1"):
        Example.config_keys()[0].value({"batch_size": "0"})
    with pytest.raises(Failed, match="config key `token` is required"):
        Example.config_keys()[3].value({})
    p = Example.__new__(Example)
    p.__dict__["_migrun_config"] = values
    assert p.batch_size == 20 and p.run_unit("second-step") == "second"
    with pytest.raises(Failed, match=r"unknown unit `nope` \(this plugin runs: first-step, second-step\)"):
        p.run_unit("nope")
    p.scope = lambda: "orders.price"
    assert [u.scope for u in p.units()] == ["orders.price", "orders.price"]


def test_a_row_is_read_by_name_and_by_position():
    from migrun_sdk.db import Row

    row = Row(zip(["id", "email"], [7, "a@example.com"]))
    row._values = [7, "a@example.com"]
    assert row["email"] == "a@example.com"
    assert (row[0], row[1]) == (7, "a@example.com")
    assert row.values_list() == [7, "a@example.com"]
    assert dict(row) == {"id": 7, "email": "a@example.com"}
    with pytest.raises(KeyError):
        row["missing"]
    with pytest.raises(IndexError):
        row[2]
