"""Checkpoints inside a long unit (contract 0.1.1 and later).

`save(state)` commits the unit's work so far on every writable connection,
together with `state`, then continues in new transactions; if the run dies
later, the work up to there stays and `last()` returns `state` when the unit
runs again. In a dry-run nothing commits and `last()` is always None.

A checkpoint is refused while a cursor is open (the commit would end it):
page with keyset queries instead, as `Backfill` and `copy` do.
"""

import json as _json

from ._wit import wit
from .db import _db_error

__all__ = ["save", "last", "last_json"]


def save(state) -> None:
    """Commits the unit's work so far with `state` (a str, or anything JSON can hold)."""
    if not isinstance(state, str):
        state = _json.dumps(state, separators=(",", ":"))
    b = wit()
    try:
        b.checkpoint.save(state)
    except b.Err as e:
        raise _db_error(e) from None


def last():
    """The state of the last `save` of this unit by an earlier, unfinished run of the plugin, or None."""
    return wit().checkpoint.last()


def last_json():
    """`last()` parsed as JSON, or None when there is none or it is not JSON."""
    state = last()
    if state is None:
        return None
    try:
        return _json.loads(state)
    except ValueError:
        return None
