"""Copying a query's rows into a table, batch by batch, each batch committed with a checkpoint
— the Rust SDK's `TableCopy`, with the same queries and checkpoint state.

```
copy(source, target, select="SELECT id, name, email FROM customers", key="id",
     into="customers", map=lambda row: {**row, "email": row["email"].lower()}, batch=1000)
```

Each batch is one keyset query on `source`, and no cursor stays open:

    SELECT * FROM (<select>) AS migrun_src WHERE (<key>) > (<last key>) ORDER BY <key> LIMIT <batch>

(the first batch without the `WHERE`). `map(row)` turns each source row (a dict)
into the target row (a dict: its keys are the target's columns), or None to skip
it. The batch's rows go into `into` with one bulk insert (`upsert=True`: one bulk
upsert by the key), then a checkpoint commits them with the state

    {"copy":"<name>","last_key":[<key values>],"copied":<rows written so far>}

(the same JSON in the Rust and JavaScript SDKs), and progress is reported. When
the unit runs again after a crash, the copy reads `checkpoint.last()` and goes on
after `last_key`. Key values are saved as JSON numbers and strings (a uuid, a date
or a decimal as its canonical text) and bound again with the key column's type.
"""

import json as _json
import time as _time

from . import checkpoint, log
from ._wit import wit
from .backfill import key_of
from .errors import Error, Failed
from .values import native_of, wire_of

__all__ = ["copy", "CopyReport"]


class CopyReport:
    """What a copy did in this run (`read`, `written`, `skipped`, `batches`), the rows `copied`
    over every run, and the key it resumed after (`resumed_after`, None when it started afresh)."""

    def __init__(self, read=0, written=0, skipped=0, batches=0, copied=0, resumed_after=None):
        self.read = read
        self.written = written
        self.skipped = skipped
        self.batches = batches
        self.copied = copied
        self.resumed_after = resumed_after

    def __repr__(self):
        return (
            f"CopyReport(read={self.read}, written={self.written}, skipped={self.skipped}, batches={self.batches}, "
            f"copied={self.copied}, resumed_after={self.resumed_after})"
        )


def _json_key(value):
    if isinstance(value, (bool, int, float, str)):
        return value
    kind, payload = wire_of(value)
    if not isinstance(payload, str):
        raise Failed(f"a copy key of kind {kind} cannot be saved in a checkpoint")
    return payload


def _encode_state(name, last_key, copied) -> str:
    # Field by field, in the documented order: the same text as the Rust SDK's.
    return _json.dumps({"copy": name, "last_key": [_json_key(v) for v in last_key], "copied": copied}, separators=(",", ":"), ensure_ascii=False)


def _shown_key(values):
    shown = [str(wit().kind_and_text(wit().encode(v))[1]) for v in values]
    return shown[0] if len(shown) == 1 else "(" + ", ".join(shown) + ")"


def copy(source, target, into, select=None, key=None, map=None, batch=1000, upsert=False, name=None, params=(), pause=0.0, fail_after=None) -> CopyReport:
    """Copies the rows of `select` (on `source`; default `SELECT * FROM <into>`) into the table
    `into` (on `target`) in key order, `batch` rows per query, bulk write and checkpoint;
    resumes after the last checkpoint of an interrupted run of the unit.

    - `key`: the column (or list of columns) of `select`'s result to page by, unique and not
      null (default: the primary key of `into`);
    - `map`: row dict → target row dict, or None to skip the row (default: the row as it is);
    - `upsert=True`: bulk-upsert by the key instead of inserting, so rows the target holds
      already are updated;
    - `name`: the copy's name in its checkpoint and progress (default: `into`);
    - `params`: the parameters of `select` (the key's placeholders are numbered after them);
    - `pause`: seconds to sleep after each batch;
    - `fail_after`: fail before the next batch once that many batches of this run were
      committed (None or 0: never), to rehearse a crash.
    """
    if batch < 1:
        raise Failed("copy batch size must be at least 1")
    name = name or into
    task = f"copy {name}"
    d = source.dialect
    inner = (select or f"SELECT * FROM {d.quote(into)}").strip().rstrip(";")
    if key is None:
        keys = [key_of(source if select is None else target, into)]
    else:
        keys = [key] if isinstance(key, str) else list(key)
    if not keys:
        raise Failed("copy needs at least one key column")
    params = list(params)
    order = ", ".join(d.quote(k) for k in keys)
    source_rows = f"({inner}) AS migrun_src"
    total = source.query_scalar(f"SELECT COUNT(*) FROM {source_rows}", params)

    report = CopyReport()
    last_key = None
    state = checkpoint.last_json()
    if (
        isinstance(state, dict)
        and state.get("copy") == name
        and isinstance(state.get("last_key"), list)
        and isinstance(state.get("copied"), int)
    ):
        last_key = _typed_key(source, source_rows, order, params, state["last_key"])
        report.copied = state["copied"]
        report.resumed_after = list(last_key)
        log.info(f"resuming the copy after key {_shown_key(last_key)}", copy=name, copied=report.copied)
    copied_before = report.copied
    first_key_param = len(params) + 1

    while True:
        if fail_after and report.batches == fail_after:
            raise Failed(f"stopping the copy {name} after {report.batches} batches as configured (fail_after)")
        if last_key is None:
            sql, args = f"SELECT * FROM {source_rows} ORDER BY {order} LIMIT {batch}", params
        else:
            marks = [d.placeholder(first_key_param + i) for i in range(len(keys))]
            condition = f"{order} > {marks[0]}" if len(keys) == 1 else f"({order}) > ({', '.join(marks)})"
            sql, args = f"SELECT * FROM {source_rows} WHERE {condition} ORDER BY {order} LIMIT {batch}", params + list(last_key)
        rows = source.query(sql, args)
        if not rows:
            break
        last = rows[-1]
        missing = [k for k in keys if k not in last]
        if missing:
            raise Failed(f"the copy's key column `{missing[0]}` is not in the rows (columns: {', '.join(last)})")
        last_key = [last[k] for k in keys]
        if any(v is None for v in last_key):
            raise Failed(f"copy {name}: key ({', '.join(keys)}) holds NULL; copy by unique NOT NULL columns")
        out = []
        for row in rows:
            mapped = map(row) if map is not None else row
            if mapped is None:
                report.skipped += 1
            else:
                out.append(mapped)
        report.batches += 1
        number = report.batches
        try:
            if not out:
                written = 0
            elif upsert:
                written = target.bulk_upsert(into, out, key=keys)
            else:
                written = target.bulk_insert(into, out)
        except Error as e:
            raise e.with_context(f"copy {name}, batch {number}") from e
        report.read += len(rows)
        report.written += written
        report.copied += written
        try:
            checkpoint.save(_encode_state(name, last_key, report.copied))
        except Error as e:
            raise e.with_context(f"checkpoint after batch {number} of copy {name}") from e
        done = copied_before + report.read
        log.progress(task, done, max(total, done))
        if len(rows) < batch:
            break
        if pause:
            _time.sleep(pause)
    return report


def _typed_key(source, source_rows, order, params, saved):
    """The saved key values, bound again with the type the key columns have (a uuid as a uuid)."""
    if not any(isinstance(v, str) for v in saved):
        return list(saved)
    probe = source.query_opt(f"SELECT {order} FROM {source_rows} ORDER BY {order} LIMIT 1", params)
    if probe is None:
        return list(saved)
    b = wit()
    typed = []
    for value, like in zip(saved, probe.values_list()):
        kind = b.kind_and_text(b.encode(like))[0]
        if isinstance(value, str) and kind in ("uuid", "date", "time", "timestamp", "timestamptz", "decimal"):
            value = native_of(kind, value)
        typed.append(value)
    return typed
