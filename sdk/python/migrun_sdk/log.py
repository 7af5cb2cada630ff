"""Leveled, structured logging, progress and verification checks.

The CLI shows them and the run's journal keeps them:

```
log.info("copied 1000 rows", table="accounts", batch=3)   # fields by keyword, in order
log.warn("cannot parse the price", id=12, price="n/a")     # one report line per message, with a count
progress("backfill orders", 3000, 5000)
check("row counts match", users == accounts, f"users: {users}, accounts: {accounts}")
```
"""

from ._wit import wit

__all__ = ["trace", "debug", "info", "warn", "error", "write", "progress", "check"]


def write(level: str, message: str, **fields):
    """Writes `message` at `level` (`trace`, `debug`, `info`, `warn`, `error`) with `fields` (values as `str()`)."""
    b = wit()
    b.log.write(getattr(b.log.Level, level.upper()), str(message), [(k, str(v)) for k, v in fields.items()])


def trace(message: str, **fields):
    """Fine detail, hidden unless asked for."""
    write("trace", message, **fields)


def debug(message: str, **fields):
    """Detail useful when something goes wrong."""
    write("debug", message, **fields)


def info(message: str, **fields):
    """Normal progress."""
    write("info", message, **fields)


def warn(message: str, **fields):
    """Something the operator should read (a skipped row, a lossy mapping); repeats are grouped in the report."""
    write("warn", message, **fields)


warning = warn


def error(message: str, **fields):
    """A failure the plugin is about to report."""
    write("error", message, **fields)


def progress(task: str, done: int, total=None):
    """Progress of `task`: `done` of `total` items (when known). Report per batch, not per row."""
    wit().log.progress(task, int(done), None if total is None else int(total))


def check(name: str, ok: bool, detail: str = "") -> bool:
    """Records one verification check and returns `ok`. A failed check fails the run (exit code 3)."""
    wit().checks.report(name, bool(ok), str(detail))
    return bool(ok)
