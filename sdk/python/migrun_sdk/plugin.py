"""Declaring a plugin: a class with its connections, config keys and units, exported once.

```
import migrun_sdk as migrun
from migrun_sdk import Config, read_write, unit

class Greetings(migrun.Plugin):
    name = "greetings"
    version = "0.1.0"
    description = "Writes numbered greetings"
    connections = [read_write("target", "where the greetings go", writes=["greetings"])]
    count = Config.int(3, "how many greetings there should be")   # self.count is an int

    @unit("fill", "inserts the greetings that are missing")
    def fill(self):
        ...

    def verify(self):
        ...

Plugin = migrun.export(Greetings)   # componentize-py looks for `Plugin` in the app module
```

The host calls `describe` (static: the class attributes), then `configure`
(which builds one instance: config keys parsed, then your `__init__`), the
units in order, each in its own transaction per writable connection, then
`verify`. The instance lives for the whole run.
"""

import datetime as _dt
import gc as _gc

from ._wit import wit
from .db import _end_call
from .errors import DbError, Failed, describe

__all__ = ["Config", "Need", "read_only", "read_write", "Unit", "unit", "Plugin", "export"]


# ---- connections ------------------------------------------------------------------


class Need:
    """A connection the plugin needs: `read_only("source", "…")` or `read_write("target", "…", writes=[…])`."""

    def __init__(self, name, access, description="", writes=(), optional=False):
        self.name = name
        self.access = access
        self.description = description
        self.writes = list(writes)
        self.optional = optional

    def __repr__(self):
        return f"Need({self.name!r}, {self.access!r})"


def read_only(name: str, description: str = "", backs_up=(), optional: bool = False) -> Need:
    """A connection the plugin only reads. `backs_up`: tables the host snapshots before the run all the same.
    `optional=True`: the plugin runs without it when the operator does not configure it."""
    return Need(name, "read-only", description, backs_up, optional)


def read_write(name: str, description: str = "", writes=(), optional: bool = False) -> Need:
    """A connection the plugin writes through; `writes` names the tables (for backups and plans)."""
    return Need(name, "read-write", description, writes, optional)


# ---- configuration ----------------------------------------------------------------


def _parse_int(key, text):
    try:
        return int(text.strip())
    except ValueError:
        raise Failed(f"config key `{key}`: cannot parse {text!r} as an integer") from None


def _parse_float(key, text):
    try:
        return float(text.strip())
    except ValueError:
        raise Failed(f"config key `{key}`: cannot parse {text!r} as a number") from None


def _parse_bool(key, text):
    t = text.strip().lower()
    if t in ("true", "yes", "on", "1"):
        return True
    if t in ("false", "no", "off", "0"):
        return False
    raise Failed(f"config key `{key}`: expected true/false (or yes/no, on/off, 1/0), got {text!r}")


class Config:
    """A configuration key, declared as a class attribute; on the instance it reads as its parsed value.

    ```
    batch_size = Config.int(500, "rows per batch", min=1)
    mode = Config.str("fast", "how to run")
    token = Config.str(None, "the API token", required=True, secret=True)
    ```
    The key is the attribute's name unless `name=` says otherwise. Without a default and
    not required, an absent key reads as None.
    """

    def __init__(self, kind, parse, default, description, required=False, secret=False, name=None, min=None, max=None, choices=None):
        self.kind = kind
        self.parse = parse
        self.default = default
        self.description = description
        self.required = required
        self.secret = secret
        self.name = name
        self.min = min
        self.max = max
        self.choices = choices

    def __set_name__(self, owner, name):
        if self.name is None:
            self.name = name
        self.attr = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        try:
            return instance.__dict__["_migrun_config"][self.name]
        except KeyError:
            raise Failed(f"config key `{self.name}` read before configure") from None

    @classmethod
    def int(cls, default=None, description="", **kw) -> "Config":
        """An integer key (`min=`, `max=` bound it)."""
        return cls("int", _parse_int, default, description, **kw)

    @classmethod
    def float(cls, default=None, description="", **kw) -> "Config":
        """A number."""
        return cls("float", _parse_float, default, description, **kw)

    @classmethod
    def str(cls, default=None, description="", **kw) -> "Config":
        """A text (`choices=[…]` restricts it)."""
        return cls("str", lambda _k, t: t, default, description, **kw)

    @classmethod
    def bool(cls, default=None, description="", **kw) -> "Config":
        """A flag: true/false, yes/no, on/off, 1/0."""
        return cls("bool", _parse_bool, default, description, **kw)

    def default_text(self):
        if self.default is None:
            return None
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)

    def value(self, raw: dict):
        text = raw.get(self.name)
        if text is None:
            if self.required:
                raise Failed(f"config key `{self.name}` is required but was not given")
            if self.default is None:
                return None
            text = self.default_text()
        value = self.parse(self.name, text)
        if self.min is not None and value < self.min:
            raise Failed(f"config key `{self.name}` must be at least {self.min}, got {text!r}")
        if self.max is not None and value > self.max:
            raise Failed(f"config key `{self.name}` must be at most {self.max}, got {text!r}")
        if self.choices is not None and value not in self.choices:
            raise Failed(f"config key `{self.name}` must be one of {', '.join(map(str, self.choices))}, got {text!r}")
        return value


# ---- units --------------------------------------------------------------------------


def _millis(timeout):
    if timeout is None:
        return None
    if isinstance(timeout, _dt.timedelta):
        timeout = timeout.total_seconds()
    return min(int(round(timeout * 1000)), 2**32 - 1)


class Unit:
    """A unit of work: its name, description and contract 0.2.0 attributes.

    - `scope`: the instance the configuration makes (`accounts.email->email_address`), part of the ledger identity;
    - `transactional=False`: a step outside a transaction (`CREATE INDEX CONCURRENTLY`); every statement must be safe to repeat;
    - `lock_timeout`, `statement_timeout`: seconds (or a timedelta), overriding `[limits]`;
    - `always_run=True`: runs on every run; `skipped="reason"`: listed, never run.
    """

    def __init__(self, name, description="", scope=None, transactional=True, lock_timeout=None, statement_timeout=None, always_run=False, skipped=None, run=None):
        self.name = name
        self.description = description
        self.scope = scope
        self.transactional = transactional
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self.always_run = always_run
        self.skipped = skipped
        self.run = run

    def with_scope(self, scope):
        return Unit(self.name, self.description, scope, self.transactional, self.lock_timeout, self.statement_timeout, self.always_run, self.skipped, self.run)

    def __repr__(self):
        return f"Unit({self.name!r})"

    def _to_wit(self):
        p = wit().plugin
        return p.UnitInfo(
            name=self.name,
            description=self.description,
            scope=self.scope,
            transactional=self.transactional,
            lock_timeout_ms=_millis(self.lock_timeout),
            statement_timeout_ms=_millis(self.statement_timeout),
            always_run=self.always_run,
            skipped=self.skipped,
        )


def unit(name=None, description="", **attributes):
    """Declares the decorated method as a unit; units run in the order they are defined.

    `@unit("copy-users", "copies every user")`; the name defaults to the method's, with `-` for `_`.
    Keywords as for `Unit` (`transactional=False`, `always_run=True`, `scope=…`, …).
    """
    if callable(name):  # @unit without arguments
        return unit()(name)

    def decorate(method):
        method._migrun_unit = Unit(name or method.__name__.replace("_", "-"), description, run=method.__name__, **attributes)
        return method

    return decorate


# ---- the plugin ---------------------------------------------------------------------


class Plugin:
    """Base class of a plugin. Set `name`, `version`, `description`, `connections`; declare config
    keys with `Config.*` and units with `@unit`; override `verify` (and, for units that depend on
    data, `units` and `run_unit`). Export it with `Plugin = migrun_sdk.export(YourClass)`."""

    name = "plugin"
    version = "0.1.0"
    description = ""
    connections = ()

    @classmethod
    def declared_units(cls):
        """The units declared with `@unit`, in definition order (base classes first)."""
        seen, units = set(), []
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                u = getattr(value, "_migrun_unit", None)
                if u is not None and u.name not in seen:
                    seen.add(u.name)
                    units.append(u)
        return units

    @classmethod
    def config_keys(cls):
        """The declared config keys, in definition order."""
        keys = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, Config):
                    keys[value.name] = value
        return list(keys.values())

    @property
    def config(self) -> dict:
        """Every config value given, as text (the declared keys, defaults applied)."""
        return self.__dict__.get("_migrun_raw", {})

    def scope(self):
        """The instance of the units this configuration makes (applied to units without their own scope); None: one instance."""
        return None

    def units(self):
        """The units to run, in order; defaults to the declared ones, scoped by `scope()`."""
        scope = self.scope()
        return [u if u.scope is not None or scope is None else u.with_scope(scope) for u in self.declared_units()]

    def run_unit(self, name: str):
        """Runs the unit `name`; defaults to calling the method declared for it."""
        for u in self.declared_units():
            if u.name == name and u.run is not None:
                return getattr(self, u.run)()
        known = ", ".join(u.name for u in self.declared_units())
        raise Failed(f"unknown unit `{name}` (this plugin runs: {known})")

    def verify(self):
        """Read-only verification after the units: report with `check(name, ok, detail)`."""


_INSTANCE = {}


def _plugin_error(error: BaseException):
    b = wit()
    p = b.plugin
    if isinstance(error, DbError):
        kind = b.error_kind_of.get(error.kind, b.types.DbErrorKind.OTHER)
        return p.PluginError_Database(b.types.DbError(kind, error.code, error.message))
    return p.PluginError_Failed(describe(error))


# The cycle collector's youngest generation is collected every 50,000 net allocations
# instead of CPython's 700 (or 2,000): a unit that streams rows allocates a value object
# per column per row, none of them in a cycle, and the default made the collector
# rescan them over and over (~5% of the accounts-merge twin's run). Cycles are still
# collected, just in larger steps.
_gc.set_threshold(50_000, 10, 10)


def _call(body):
    """Runs one export call: releases what it opened, turns any exception into plugin-error."""
    b = wit()
    try:
        return body()
    except b.Err:
        raise
    except BaseException as e:  # noqa: BLE001 - nothing may trap the instance
        error = e
    finally:
        _end_call()
    raise b.Err(_plugin_error(error))


def export(cls):
    """The class componentize-py instantiates for the exported interface: `Plugin = export(MyPlugin)`."""
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise TypeError("export() takes a subclass of migrun_sdk.Plugin")

    def instance(export_name):
        inst = _INSTANCE.get("plugin")
        if inst is None:
            raise Failed(f"{export_name} was called before configure")
        return inst

    try:  # the Protocol componentize-py generated (absent outside a build)
        from wit_world.exports import Plugin as Base
    except ImportError:
        Base = object

    class Export(Base):
        def describe(self):
            p = wit().plugin
            access = wit().database.Access
            return p.PluginInfo(
                name=cls.name,
                version=cls.version,
                description=cls.description,
                connections=[
                    p.ConnectionNeed(n.name, access.READ_ONLY if n.access == "read-only" else access.READ_WRITE, n.description, list(n.writes), n.optional)
                    for n in cls.connections
                ],
                units=[u._to_wit() for u in cls.declared_units()],
                config=[p.ConfigKey(k.name, k.description, k.required, k.default_text(), k.secret) for k in cls.config_keys()],
            )

        def configure(self, config):
            def body():
                raw = dict(config)
                inst = cls.__new__(cls)
                inst.__dict__["_migrun_raw"] = raw
                inst.__dict__["_migrun_config"] = {k.name: k.value(raw) for k in cls.config_keys()}
                inst.__init__()
                _INSTANCE["plugin"] = inst

            _call(body)

        def list_units(self):
            return _call(lambda: [u._to_wit() for u in instance("list-units").units()])

        def run_unit(self, name):
            _call(lambda: instance("run-unit").run_unit(name))

        def verify(self):
            _call(lambda: instance("verify").verify())

    Export.__name__ = Export.__qualname__ = "Plugin"
    Export.plugin_class = cls
    return Export
