"""SQL values as native Python values, and back.

Every value crosses the sandbox in the contract's canonical form (a WIT
`value`); the SDK turns it into the Python value you would expect, and a
Python value you pass as a parameter or in a row into the WIT value:

| WIT value     | Python                                   |
|---------------|------------------------------------------|
| null          | None                                     |
| boolean       | bool                                     |
| int           | int (64-bit signed)                      |
| float         | float                                    |
| text          | str                                      |
| bytes         | bytes (bytearray, memoryview accepted)    |
| json          | Json (a str holding the document; `.value` parses it); a dict, or a list that is not all floats or all str, is written as json |
| uuid          | uuid.UUID                                |
| date          | datetime.date                            |
| time          | datetime.time                            |
| timestamp     | datetime.datetime without tzinfo         |
| timestamptz   | datetime.datetime in UTC (any aware datetime is written as one) |
| decimal       | decimal.Decimal                          |
| float32-array | Vector (a list of float); a list of floats is written as one |
| text-array    | TextArray (a list of str); a list of str is written as one |
| typed         | Typed(type_name, data), passed on unchanged |

A value that has no exact Python form (a time with nanoseconds) arrives as a
`Raw(kind, text)`, which is written back unchanged. `Raw` also forces a kind:
`Raw("timestamp", "2024-01-02T03:04:05")`.

This module imports no binding: it is usable (and tested) outside a component.
"""

import datetime as _dt
import decimal as _decimal
import json as _json
import uuid as _uuid

__all__ = ["Json", "Vector", "TextArray", "Typed", "Raw", "to_wire", "from_wire", "kind_of"]


class Json(str):
    """A JSON document, as its text. `Json.of(obj)` serialises `obj`; `.value` parses the text."""

    @classmethod
    def of(cls, obj) -> "Json":
        return cls(_json.dumps(obj))

    @property
    def value(self):
        return _json.loads(self)


class Vector(list):
    """A list of 32-bit floats (an embedding): `real[]`, pgvector `vector`/`halfvec`, a JSON array elsewhere."""


class TextArray(list):
    """A list of texts: `text[]` on PostgreSQL, a JSON array elsewhere."""


class Typed:
    """A value of a type the host does not model (PostgreSQL binary form), passed on unchanged."""

    __slots__ = ("type_name", "data")

    def __init__(self, type_name: str, data: bytes):
        self.type_name = type_name
        self.data = bytes(data)

    def __eq__(self, other):
        return isinstance(other, Typed) and (self.type_name, self.data) == (other.type_name, other.data)

    def __hash__(self):
        return hash((self.type_name, self.data))

    def __repr__(self):
        return f"Typed({self.type_name!r}, {self.data!r})"


class Raw:
    """A value in the contract's own terms: its kind (`timestamp`, `decimal`, …) and canonical text."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: str, value):
        self.kind = kind
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Raw) and (self.kind, self.value) == (other.kind, other.value)

    def __hash__(self):
        return hash((self.kind, str(self.value)))

    def __repr__(self):
        return f"Raw({self.kind!r}, {self.value!r})"

    def __str__(self):
        return str(self.value)


# ---- canonical text <-> Python ----------------------------------------------------


def _time_text(t: _dt.time) -> str:
    if t.tzinfo is not None:
        raise ValueError(f"a time with a zone cannot be stored: {t!r} (drop tzinfo)")
    return t.isoformat()


def _timestamptz_text(t: _dt.datetime) -> str:
    utc = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return utc.isoformat() + "Z"


def _decimal_text(d: _decimal.Decimal) -> str:
    if not d.is_finite():
        raise ValueError(f"a decimal must be finite, got {d}")
    return format(d, "f")


def _is_float_list(items) -> bool:
    return all(isinstance(x, (float, int)) and not isinstance(x, bool) for x in items)


def wire_of(value):
    """(kind, payload) of a Python value: the WIT case's name and its payload."""
    if value is None:
        return "null", None
    t = type(value)
    simple = _SIMPLE.get(t)
    if simple is not None:
        return simple, value
    if isinstance(value, bool):
        return "boolean", bool(value)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{value} does not fit in a 64-bit integer (use decimal.Decimal)")
        return "int", int(value)
    if isinstance(value, float):
        return "float", float(value)
    if isinstance(value, Json):
        return "json", str(value)
    if isinstance(value, str):
        return "text", str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes", bytes(value)
    if isinstance(value, _uuid.UUID):
        return "uuid", str(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            return "timestamp", value.isoformat()
        return "timestamptz", _timestamptz_text(value)
    if isinstance(value, _dt.date):
        return "date", value.isoformat()
    if isinstance(value, _dt.time):
        return "time", _time_text(value)
    if isinstance(value, _decimal.Decimal):
        return "decimal", _decimal_text(value)
    if isinstance(value, Vector):
        return "float32-array", [float(x) for x in value]
    if isinstance(value, TextArray):
        return "text-array", [str(x) for x in value]
    if isinstance(value, Raw):
        return value.kind, value.value
    if isinstance(value, Typed):
        return "typed", value
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(x, str) for x in value):
            return "text-array", list(value)
        if value and _is_float_list(value):
            return "float32-array", [float(x) for x in value]
        return "json", _json.dumps(list(value))
    if isinstance(value, dict):
        return "json", _json.dumps(value)
    raise TypeError(
        f"cannot store a {t.__name__} ({value!r}) in the database: use None, bool, int, float, str, "
        "bytes, Decimal, UUID, date/time/datetime, dict/list (json), Vector, TextArray or Raw"
    )


_SIMPLE = {str: "text", float: "float", bool: "boolean", bytes: "bytes"}


def _parse_time(text: str):
    try:
        return _dt.time.fromisoformat(text)
    except ValueError:
        return Raw("time", text)


def _parse_timestamp(text: str):
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return Raw("timestamp", text)


def _parse_timestamptz(text: str):
    try:
        return _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return Raw("timestamptz", text)


def native_of(kind: str, payload):
    """The Python value of a WIT value of case `kind` carrying `payload`."""
    if kind in ("int", "text", "float", "boolean", "bytes", "null"):
        return payload
    parse = _NATIVE.get(kind)
    if parse is None:
        return Raw(kind, payload)
    return parse(payload)


def _exact_time(text):
    value = _parse_time(text)
    # Nanoseconds (nine digits) do not fit a datetime.time: keep the text.
    if isinstance(value, _dt.time) and _time_text(value) != text:
        return Raw("time", text)
    return value


def _exact_timestamp(text):
    value = _parse_timestamp(text)
    if isinstance(value, _dt.datetime) and value.isoformat() != text:
        return Raw("timestamp", text)
    return value


def _exact_timestamptz(text):
    value = _parse_timestamptz(text)
    if isinstance(value, _dt.datetime) and _timestamptz_text(value) != text:
        return Raw("timestamptz", text)
    return value


_NATIVE = {
    "json": Json,
    "uuid": _uuid.UUID,
    "date": _dt.date.fromisoformat,
    "time": _exact_time,
    "timestamp": _exact_timestamp,
    "timestamptz": _exact_timestamptz,
    "decimal": _decimal.Decimal,
    "float32-array": Vector,
    "text-array": TextArray,
    "typed": lambda t: t if isinstance(t, Typed) else Typed(t.type_name, t.bytes),
}


def kind_of(value) -> str:
    """The WIT case a Python value is written as (`int`, `text`, `timestamptz`, …)."""
    return wire_of(value)[0]


def to_wire(value):
    """Alias of `wire_of`, for symmetry with `from_wire`."""
    return wire_of(value)


def from_wire(kind: str, payload):
    """Alias of `native_of`."""
    return native_of(kind, payload)
