"""The edge to the componentize-py bindings (`wit_world`) of contract 0.2.0.

Generated types stay here: the rest of the SDK speaks Python values. The
bindings exist only inside a component build. They are imported when this
module is: componentize-py links only the interfaces the app imported while it
was initialised at build time, so an import made later, inside a call, would
find nothing. Outside a build (`migrun_sdk.values`, `migrun_sdk.testing`, the
SDK's own tests) the import fails quietly and `wit()` says why if called.
"""

from .values import Typed, native_of, wire_of

try:
    from componentize_py_types import Err as _Err
    from wit_world.exports import plugin as _plugin
    from wit_world.imports import checkpoint as _checkpoint
    from wit_world.imports import checks as _checks
    from wit_world.imports import database as _database
    from wit_world.imports import log as _log
    from wit_world.imports import types as _types
except ImportError as e:  # not inside a component build
    _MISSING = e
else:
    _MISSING = None


class _Case(StopIteration):
    """A case of the WIT `value` variant, built without running Python code.

    componentize-py builds every SQL value a host call returns by calling the case's
    class — `Value_Text(payload)` — from its runtime, and the generated classes are
    dataclasses whose `__init__` is Python bytecode: one interpreter frame per value,
    millions in a copy. StopIteration's constructor is C and keeps its first argument
    as `.value`, which is the one attribute componentize-py (lowering a value) and this
    SDK read. Nothing here raises one: it is a record with a fast constructor.
    """

    __slots__ = ()

    def __repr__(self):
        return f"{type(self).__name__}({self.value!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.value == self.value

    __hash__ = None


def _fast_cases(types):
    """Puts a `_Case` in place of every `Value_*` class of the bindings, under the same name.

    Done when this module is imported, inside the app's import at build time: componentize-py
    looks the case classes up by name after that import, so the replacements are the
    classes it builds values with, and the classes lowering recognises values by.
    """
    for name, cls in list(vars(types).items()):
        if name.startswith("Value_") and isinstance(cls, type) and not issubclass(cls, _Case):
            fast = type(name, (_Case,), {"__slots__": (), "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
            setattr(types, name, fast)


if _MISSING is None:
    _fast_cases(_types)

_B = None


class _Bindings:
    def __init__(self):
        if _MISSING is not None:
            raise ImportError(f"the migrun bindings (wit_world) are only there inside a component build: {_MISSING}")
        self.Err = _Err
        self.plugin = _plugin
        self.types = _types
        self.database = _database
        self.log = _log
        self.checks = _checks
        self.checkpoint = _checkpoint
        t = _types
        self.cases = {
            "null": lambda _: t.Value_Null(),
            "boolean": t.Value_Boolean,
            "int": t.Value_Int,
            "float": t.Value_Float,
            "text": t.Value_Text,
            "bytes": t.Value_Bytes,
            "json": t.Value_Json,
            "uuid": t.Value_Uuid,
            "date": t.Value_Date,
            "time": t.Value_Time,
            "timestamp": t.Value_Timestamp,
            "timestamptz": t.Value_Timestamptz,
            "decimal": t.Value_Decimal,
            "float32-array": t.Value_Float32Array,
            "text-array": t.Value_TextArray,
            "typed": lambda v: t.Value_Typed(t.TypedValue(v.type_name, v.data)),
        }
        self.kinds = {
            t.Value_Null: "null",
            t.Value_Boolean: "boolean",
            t.Value_Int: "int",
            t.Value_Float: "float",
            t.Value_Text: "text",
            t.Value_Bytes: "bytes",
            t.Value_Json: "json",
            t.Value_Uuid: "uuid",
            t.Value_Date: "date",
            t.Value_Time: "time",
            t.Value_Timestamp: "timestamp",
            t.Value_Timestamptz: "timestamptz",
            t.Value_Decimal: "decimal",
            t.Value_Float32Array: "float32-array",
            t.Value_TextArray: "text-array",
            t.Value_Typed: "typed",
        }
        # Every plain case (null, boolean, int, float, text, bytes) decodes as `v.value`
        # inline, without a call per value (`plain_kinds`, used by `db._rows`): a `_Case` without a
        # payload (`Value_Null()`) has `.value` None. The rest go through `decoders`.
        self.plain_kinds = frozenset((t.Value_Null, t.Value_Boolean, t.Value_Int, t.Value_Float, t.Value_Text, t.Value_Bytes))
        plain = lambda v: v.value  # noqa: E731
        self.decoders = {cls: plain for cls in (t.Value_Boolean, t.Value_Int, t.Value_Float, t.Value_Text, t.Value_Bytes)}
        self.decoders[t.Value_Null] = lambda v: None
        for cls, kind in self.kinds.items():
            if cls not in self.decoders:
                if kind == "typed":
                    self.decoders[cls] = lambda v: Typed(v.value.type_name, v.value.bytes)
                else:
                    self.decoders[cls] = lambda v, kind=kind: native_of(kind, v.value)
        # One NULL for every NULL written: the bindings only read it.
        self.null = t.Value_Null()
        self.encoders = {
            int: lambda v: t.Value_Int(v) if -(2**63) <= v < 2**63 else self.encode_slow(v),
            str: t.Value_Text,
            float: t.Value_Float,
            bool: t.Value_Boolean,
            type(None): lambda v: self.null,
        }
        self.error_kinds = {k: k.name.lower().replace("_", "-") for k in t.DbErrorKind}
        self.error_kind_of = {v: k for k, v in self.error_kinds.items()}

    def encode_slow(self, value):
        kind, payload = wire_of(value)
        return self.cases[kind](payload)

    def encode(self, value):
        enc = self.encoders.get(type(value))
        if enc is not None:
            return enc(value)
        return self.encode_slow(value)

    def encode_all(self, values):
        # Text, 64-bit ints, NULL and booleans (most of any row) inline, each value's type
        # taken once; the rest by type (`encode`).
        t = self.types
        text, int_, boolean, null, encode = t.Value_Text, t.Value_Int, t.Value_Boolean, self.null, self.encode
        return [
            text(v)
            if (k := type(v)) is str
            else int_(v)
            if k is int and -9223372036854775808 <= v <= 9223372036854775807
            else null
            if v is None
            else boolean(v)
            if k is bool
            else encode(v)
            for v in values
        ]

    def decode(self, value):
        return self.decoders[type(value)](value)

    def kind_and_text(self, value):
        """The WIT case name of an encoded value and its payload."""
        return self.kinds[type(value)], getattr(value, "value", None)


def wit() -> _Bindings:
    global _B
    if _B is None:
        _B = _Bindings()
    return _B
