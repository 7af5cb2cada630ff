"""Copying a query's rows into a table, batch by batch, each batch committed with a checkpoint.

```
copy(source, target, select="SELECT id, name, email FROM customers", key="id",
     into="customers", map=lambda row: {**row, "email": row["email"].lower()}, batch=1000)
```

Each batch is one keyset query on `source`, and no cursor stays open:

    SELECT * FROM (<select>) AS migrun_src WHERE (<key>) > (<last key>) ORDER BY <key> LIMIT <batch>

(the first batch without the `WHERE`). `map(row)` turns each source row (a dict)
into the target row (a dict: its keys are the target's columns), or None to skip
it. The batch's rows go into `into` with one bulk insert (`upsert=True`: one bulk
upsert by the key columns, or by the columns `upsert` lists), then a checkpoint
commits them with the state

    {"copy":"<name>","last_key":[<key values>],"copied":<rows written so far>}

(the same JSON in the Rust and JavaScript SDKs), and progress is reported. When
the unit runs again after a crash, the copy reads `checkpoint.last()` and goes on
after `last_key`. Key values are saved as JSON numbers and strings (a uuid, a date
or a decimal as its canonical text) and bound again with the key column's type.
"""

import json as _json

from . import checkpoint, log
from ._wit import wit
from .errors import Failed, context
from .values import native_of, wire_of

__all__ = ["copy", "CopyReport"]


class CopyReport:
    """What a copy did in this run (`read`, `written`, `skipped`), the rows `copied` over every
    run, and the key it resumed after (`resumed_after`, None when it started afresh)."""

    def __init__(self, read, written, skipped, copied, resumed_after):
        self.read = read
        self.written = written
        self.skipped = skipped
        self.copied = copied
        self.resumed_after = resumed_after

    def __repr__(self):
        return (
            f"CopyReport(read={self.read}, written={self.written}, skipped={self.skipped}, "
            f"copied={self.copied}, resumed_after={self.resumed_after})"
        )


def _json_key(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return wire_of(value)[1]


def copy(source, target, select, into, key="id", map=None, batch=1000, upsert=False, name=None, fail_after=None) -> CopyReport:
    """Copies the rows of `select` (on `source`) into the table `into` (on `target`) in key order,
    `batch` rows per query, bulk insert and checkpoint; resumes after the last checkpoint.

    - `key`: the column (or list of columns) of `select`'s result to page by: unique, not null;
    - `map`: row dict → target row dict, or None to skip the row (default: the row as it is);
    - `upsert`: True (or the target's key columns) to bulk-upsert instead of insert, so a
      rerun over rows already copied updates them;
    - `name`: the copy's name in its checkpoint and progress (default: `into`);
    - `fail_after`: fail after that many batches of this run (to rehearse a crash).
    """
    keys = [key] if isinstance(key, str) else list(key)
    if not keys:
        raise Failed("copy needs at least one key column")
    if batch < 1:
        raise Failed("copy batch size must be at least 1")
    name = name or into
    task = f"copy {name}"
    sd = source.dialect
    order = ", ".join(sd.quote(k) for k in keys)
    inner = select.strip().rstrip(";")
    total = source.query_scalar(f"SELECT COUNT(*) FROM ({inner}) AS migrun_src")

    last_key, copied, resumed_after = None, 0, None
    state = checkpoint.last_json()
    if isinstance(state, dict) and state.get("copy") == name and isinstance(state.get("last_key"), list):
        last_key = _typed_keys(source, inner, keys, order, state["last_key"])
        copied = int(state.get("copied", 0))
        resumed_after = list(state["last_key"])
        log.info(f"resuming copy {name} after key {_json.dumps(resumed_after)}", copied=copied)

    read = written = skipped = 0
    this_run = 0
    while True:
        if last_key is None:
            where, params = "", []
        elif len(keys) == 1:
            where, params = f" WHERE {order} > {sd.placeholder(1)}", last_key
        else:
            marks = ", ".join(sd.placeholder(i + 1) for i in range(len(keys)))
            where, params = f" WHERE ({order}) > ({marks})", last_key
        rows = source.query(f"SELECT * FROM ({inner}) AS migrun_src{where} ORDER BY {order} LIMIT {batch}", params)
        if not rows:
            break
        read += len(rows)
        out = []
        for row in rows:
            mapped = map(row) if map is not None else row
            if mapped is None:
                skipped += 1
            else:
                out.append(mapped)
        first, last = rows[0], rows[-1]
        with context(f"copying into {into} the rows with {order} from {_show(first, keys)} to {_show(last, keys)}"):
            if upsert:
                n = target.bulk_upsert(into, out, key=keys if upsert is True else upsert)
            else:
                n = target.bulk_insert(into, out)
        written += n
        copied += n
        last_key = [last[k] for k in keys]
        checkpoint.save(_json.dumps({"copy": name, "last_key": [_json_key(v) for v in last_key], "copied": copied}, separators=(",", ":")))
        log.progress(task, copied + skipped, max(total, copied + skipped))
        this_run += 1
        if len(rows) < batch:
            break
        if fail_after is not None and this_run >= fail_after:
            raise Failed(f"failing after {this_run} batches, as configured (fail_after)")
    log.info(f"copied {written} rows into {into}", read=read, written=written, skipped=skipped)
    return CopyReport(read, written, skipped, copied, resumed_after)


def _show(row, keys):
    values = [row[k] for k in keys]
    return str(values[0]) if len(values) == 1 else "(" + ", ".join(map(str, values)) + ")"


def _typed_keys(source, inner, keys, order, saved):
    """The saved key values, bound again with the type the key columns have (a uuid as a uuid)."""
    if len(saved) != len(keys):
        raise Failed(f"the copy's checkpoint holds {len(saved)} key values for {len(keys)} key columns")
    cols = ", ".join(source.dialect.quote(k) for k in keys)
    sample = source.query_opt(f"SELECT {cols} FROM ({inner}) AS migrun_src ORDER BY {order} LIMIT 1")
    if sample is None:
        return list(saved)
    b = wit()
    typed = []
    for value, current in zip(saved, sample.values_list()):
        kind = b.kind_and_text(b.encode(current))[0] if current is not None else None
        if isinstance(value, str) and kind not in (None, "text", "int"):
            value = native_of(kind, value)
        typed.append(value)
    return typed
