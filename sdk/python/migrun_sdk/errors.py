"""Errors as exceptions.

- `DbError`: a database call failed. `kind` is the contract's db-error kind
  (`"constraint"`, `"conflict"`, `"unknown-connection"`, `"read-only"`,
  `"connection"`, `"value"`, `"usage"`, `"refused"`, `"other"`), `code` the
  database's own (SQLSTATE, MariaDB error number, SQLite extended code) or None.
- `Failed`: the plugin's own failure, explained (`raise Failed("why")`).

Any exception escaping a unit, `verify` or the plugin's `__init__` ends that
call with the contract's plugin-error: a `DbError` keeps its kind and code (the
report shows them), every other exception becomes a failure with its message
(and, for an exception that is not a `Failed`, its type and where it was
raised). The host then rolls the unit back; nothing traps.
"""

import contextlib

__all__ = ["Error", "DbError", "Failed", "context"]


class Error(Exception):
    """Base of the SDK's errors. `kind` is the db-error kind, or None for a plugin failure."""

    kind = None
    code = None

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def with_context(self, context: str) -> "Error":
        raise NotImplementedError


class DbError(Error):
    """A database call failed; `kind`, `code` and `message` are the host's."""

    def __init__(self, kind: str, message: str, code=None):
        super().__init__(message)
        self.kind = kind
        self.code = code

    def with_context(self, context: str) -> "DbError":
        return DbError(self.kind, f"{context}: {self.message}", self.code)

    def __str__(self):
        code = f", code {self.code}" if self.code else ""
        return f"{self.message} [{self.kind}{code}]"

    def __repr__(self):
        return f"DbError({self.kind!r}, {self.message!r}, code={self.code!r})"


class Failed(Error):
    """The plugin's own failure: `raise Failed("batch_size must be positive")`."""

    def with_context(self, context: str) -> "Failed":
        return Failed(f"{context}: {self.message}")


def describe(error: BaseException) -> str:
    """A one-line message for any exception: its type and the line that raised it, unless it is one of ours."""
    if isinstance(error, Error):
        return error.message
    where = ""
    tb = error.__traceback__
    if tb is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        code = tb.tb_frame.f_code
        where = f" (at {code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name})"
    text = str(error)
    return f"{type(error).__name__}: {text}{where}" if text else f"{type(error).__name__}{where}"


@contextlib.contextmanager
def context(what: str):
    """Puts `what` in front of the message of an error raised inside, keeping a `DbError`'s kind and code.

    ```
    with context(f"inserting accounts {first} to {last}"):
        target.bulk_insert("accounts", rows)
    ```
    """
    try:
        yield
    except Error as e:
        raise e.with_context(what) from e
    except Exception as e:
        raise Failed(f"{what}: {describe(e)}") from e
