"""Batched, resumable backfills: walk a table in key order, batch by batch, committing
each batch with a checkpoint — the Rust SDK's `Backfill`, with the same checkpoint state.

```
def convert(batch):
    rows = [{"id": r["id"], "amount_cents": cents(r["price"])} for r in batch.rows]
    db.bulk_update("orders", rows, key="id")

Backfill(db, "orders", columns=["price"], batch_size=500).run(convert)
```

Each batch is one keyset query (`WHERE key > last ORDER BY key LIMIT n`), so every
batch costs the same however far into the table it is. After `work(batch)` the
backfill saves a checkpoint with its position (committing the batch's writes with
it) and reports progress; a unit that runs again after an interruption continues
after the last committed batch. The checkpoint's state is the Rust SDK's:
`backfill/1`, then one line each for the task, rows done, batches done, the key's
kind and its canonical text.
"""

import time as _time

from . import checkpoint, log
from ._wit import wit
from .db import Dialect
from .errors import Error, Failed, describe
from .values import native_of

__all__ = ["Backfill", "Batch", "BackfillReport", "key_of"]

STATE_TAG = "backfill/1"
_KINDS = ("int", "text", "uuid", "date", "time", "timestamp", "timestamptz", "decimal", "json")


def _encode_position(task, done, batches, last) -> str:
    kind, payload = wit().kind_and_text(wit().encode(last))
    if kind not in _KINDS:
        raise Failed(f"a backfill key of kind {kind} cannot be saved in a checkpoint")
    return f"{STATE_TAG}\n{task}\n{done}\n{batches}\n{kind}\n{payload}"


def decode_position(state):
    """(task, done, batches, last key) of a backfill's checkpoint state, or None for another state."""
    if state is None:
        return None
    parts = state.split("\n", 5)
    if len(parts) != 6 or parts[0] != STATE_TAG:
        return None
    _, task, done, batches, kind, text = parts
    try:
        done, batches = int(done), int(batches)
        last = int(text) if kind == "int" else native_of(kind, text)
    except ValueError:
        return None
    if kind not in _KINDS:
        return None
    return task, done, batches, last


class Batch:
    """One batch: `rows` (the key, then the columns asked for, in key order), `keys`, `number`
    (from 1 over the whole backfill), `after` (the previous batch's last key, None for the first)
    and `last` (its own last key)."""

    def __init__(self, dialect, key, after, rows, number):
        self.dialect = dialect
        self.key = key
        self.after = after
        self.rows = rows
        self.keys = [r._values[0] for r in rows]
        self.number = number

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    @property
    def last(self):
        return self.keys[-1]

    def range(self, first_param: int = 1):
        """A condition selecting exactly the batch's key range, with placeholders numbered from
        `first_param`, and its parameters: `("id" > $1 AND "id" <= $2, [after, last])`."""
        key = self.dialect.quote(self.key)
        ph = self.dialect.placeholder
        if self.after is None:
            return f"{key} <= {ph(first_param)}", [self.last]
        return f"{key} > {ph(first_param)} AND {key} <= {ph(first_param + 1)}", [self.after, self.last]


class BackfillReport:
    """What a finished backfill did: `rows` and `batches` over the whole backfill (resumed runs
    included) and `resumed_after` (the batches an earlier run had committed, or None)."""

    def __init__(self, rows, batches, resumed_after):
        self.rows = rows
        self.batches = batches
        self.resumed_after = resumed_after

    def __repr__(self):
        return f"BackfillReport(rows={self.rows}, batches={self.batches}, resumed_after={self.resumed_after})"


class Backfill:
    """A batched, throttled, resumable walk over `table` (optionally `schema.table`) in key order.

    - `key`: the column to page by (unique, not null); default: the table's primary key;
    - `columns`: read with each batch's keys, so `batch.rows` holds what the work needs;
    - `batch_size` (rows per batch and per checkpoint), `pause` (seconds between batches);
    - `task`: the progress task and the checkpoint's name (`backfill <table>`);
    - `fail_after`: fail before the next batch once that many batches of this run were
      committed (None or 0: never), to rehearse an interruption.
    """

    def __init__(self, conn, table, key=None, columns=(), batch_size=1000, pause=0.0, task=None, fail_after=None):
        self.conn = conn
        self.table = table
        self.key = key
        self.columns = list(columns)
        self.batch_size = batch_size
        self.pause = pause
        self.task = task or f"backfill {table}"
        self.fail_after = fail_after

    def run(self, work) -> BackfillReport:
        """Calls `work(batch)` for each batch, then saves a checkpoint and reports progress."""
        if self.batch_size < 1:
            raise Failed("backfill batch size must be at least 1")
        if "\n" in self.task:
            raise Failed("a backfill's task name must be one line")
        conn, d = self.conn, self.conn.dialect
        key = self.key or key_of(conn, self.table)
        table = d.quote(self.table)
        qkey = d.quote(key)
        selected = ", ".join([qkey] + [d.quote(c) for c in self.columns])
        total = conn.query_scalar(f"SELECT COUNT(*) FROM {table}")

        resumed = decode_position(checkpoint.last())
        if resumed is not None and resumed[0] != self.task:
            resumed = None
        after, done, batches = None, 0, 0
        resumed_after = None
        if resumed is not None:
            _, done, batches, after = resumed
            resumed_after = batches
            shown = wit().kind_and_text(wit().encode(after))[1]
            log.info(f"resuming after batch {batches} (key {shown})", task=self.task, batches=batches, rows=done)
        this_run = 0
        while True:
            if self.fail_after and this_run == self.fail_after:
                raise Failed(f"stopping the backfill {self.task} after {this_run} batches as configured (fail_after)")
            this_run += 1
            if after is None:
                rows = conn.query(f"SELECT {selected} FROM {table} ORDER BY {qkey} LIMIT {self.batch_size}")
            else:
                rows = conn.query(f"SELECT {selected} FROM {table} WHERE {qkey} > {d.placeholder(1)} ORDER BY {qkey} LIMIT {self.batch_size}", [after])
            if not rows:
                break
            if any(r._values[0] is None for r in rows):
                raise Failed(f"backfill key `{key}` of `{self.table}` holds NULL: page by a NOT NULL unique column")
            batches += 1
            batch = Batch(d, key, after, rows, batches)
            try:
                work(batch)
            except Exception as e:
                if isinstance(e, Error):
                    raise e.with_context(f"batch {batches}") from e
                raise Failed(f"batch {batches}: {describe(e)}") from e
            done += len(batch)
            last = batch.last
            try:
                checkpoint.save(_encode_position(self.task, done, batches, last))
            except Error as e:
                raise e.with_context(f"checkpoint after batch {batches}") from e
            log.progress(self.task, done, max(total, done))
            after = last
            if len(batch) < self.batch_size:
                break
            if self.pause:
                _time.sleep(self.pause)
        return BackfillReport(done, batches, resumed_after)


def key_of(conn, table: str) -> str:
    """The column to page `table` by: its one-column primary key, else a one-column unique key on a NOT NULL column."""
    d = conn.dialect
    if d == Dialect.POSTGRES:
        found = [
            tuple(r._values)
            for r in conn.query(
                "SELECT c.relname::text, a.attname::text, i.indisprimary, a.attnotnull "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = to_regclass($1::text) AND i.indisunique AND i.indpred IS NULL",
                [table],
            )
        ]
    elif d == Dialect.MYSQL:
        found = [
            (i, c, bool(p), bool(n))
            for i, c, p, n in (
                tuple(r._values)
                for r in conn.query(
                    "SELECT s.INDEX_NAME, s.COLUMN_NAME, s.INDEX_NAME = 'PRIMARY', c.IS_NULLABLE = 'NO' "
                    "FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c "
                    "ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME "
                    "WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0",
                    [table],
                )
            )
        ]
    else:
        found = [("primary", r._values[1], True, True) for r in conn.query('SELECT \'primary\', name, 1, "notnull" FROM pragma_table_info(?) WHERE pk > 0', [table])]
        found += [
            (i, c, bool(p), bool(n))
            for i, c, p, n in (
                tuple(r._values)
                for r in conn.query(
                    'SELECT il.name, ii.name, 0, ti."notnull" FROM pragma_index_list(?1) il '
                    "JOIN pragma_index_info(il.name) ii "
                    'JOIN pragma_table_info(?1) ti ON ti.name = ii.name '
                    "WHERE il.\"unique\" = 1 AND il.partial = 0 AND il.origin <> 'pk'",
                    [table],
                )
            )
        ]
    indexes = {}
    for index, column, primary, not_null in found:
        indexes.setdefault(index, []).append((column, bool(primary), bool(not_null)))

    def single(primary):
        names = [cols[0][0] for cols in indexes.values() if len(cols) == 1 and cols[0][1] == primary and cols[0][2]]
        return min(names) if names else None

    key = single(True) or single(False)
    if key is None:
        missing = " (or the table does not exist)" if not found else ""
        raise Failed(
            f"cannot page through `{table}`: it has no one-column primary key and no one-column unique key "
            f"on a NOT NULL column{missing}; name a unique NOT NULL column with Backfill(key=...)"
        )
    return key
