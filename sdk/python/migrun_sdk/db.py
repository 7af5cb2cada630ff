"""Named connections: queries, cursors, bulk writes.

`connect("source")` gives a `Connection` to a connection the plugin declared.
The host resource behind it is opened on first use in each call into the
plugin (a unit, `verify`, …) and released when that call returns, as in the
Rust SDK; a `Connection` kept on the plugin stays usable across units.

Every statement runs in the transaction the host opened for the unit: a
plugin never begins or commits (a checkpoint commits, see `checkpoint`).
"""

import enum

from ._wit import wit
from .errors import DbError, Failed

__all__ = ["Dialect", "Access", "Connection", "Cursor", "Row", "connect"]


class Dialect(str, enum.Enum):
    """The SQL dialect behind a connection. Compares equal to its name: `conn.dialect == "postgres"`."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"
    MYSQL = "mysql"

    def __str__(self):
        return self.value

    __hash__ = str.__hash__

    def placeholder(self, n: int) -> str:
        """The `n`th (1-based) bind placeholder: `$n` on PostgreSQL, `?` elsewhere."""
        return f"${n}" if self is Dialect.POSTGRES else "?"

    def quote(self, identifier: str) -> str:
        """An identifier quoted for the dialect (`"name"`, or `` `name` `` on MySQL/MariaDB); `schema.table` part by part."""
        q = "`" if self is Dialect.MYSQL else '"'
        return ".".join(q + part.replace(q, q + q) + q for part in identifier.split("."))


class Access(str, enum.Enum):
    """What a connection may do."""

    READ_ONLY = "read-only"
    READ_WRITE = "read-write"

    def __str__(self):
        return self.value

    __hash__ = str.__hash__


class Row(dict):
    """One row: a dict from column name to value, also indexable by position (`row[0]`).

    Two columns of the same name keep the last one under that name; positions keep both.
    """

    __slots__ = ("_values",)

    # A name is looked up by dict itself (no Python call per access: rows are read a
    # column at a time in every plugin's inner loop); only a key that is not a name —
    # a position — comes here.
    def __missing__(self, key):
        if type(key) is int:
            return self._values[key]
        raise KeyError(key)

    def values_list(self) -> list:
        """The values in column order."""
        return self._values


def _rows(names, wire_rows):
    # Values decode inline (plain kinds as `.value`, the rest through `decoders`): one Python call per batch, not per row.
    b = wit()
    plain, decoders = b.plain_kinds, b.decoders
    out = []
    for wire in wire_rows:
        values = [v.value if type(v) in plain else decoders[type(v)](v) for v in wire]
        row = Row(zip(names, values))
        row._values = values
        out.append(row)
    return out


class _Call:
    """The host resources one export call opened, released when it returns."""

    def __init__(self):
        self.connections = {}
        self.cursors = []

    def close(self):
        # Cursors first, latest first (as Rust drops them when a unit fails mid-stream), then connections.
        cursors, self.cursors = self.cursors, []
        for cursor in reversed(cursors):
            cursor.close()
        connections, self.connections = self.connections, {}
        for resource in connections.values():
            resource.__exit__(None, None, None)


_CALL = _Call()


def _end_call():
    """Releases what the call opened; the export glue calls it when a call returns."""
    _CALL.close()


def _db_error(err) -> DbError:
    b = wit()
    value = err.value
    if isinstance(value, b.types.DbError):
        return DbError(b.error_kinds[value.kind], value.message, value.code)
    return Failed(str(value))


def _resource(name: str):
    res = _CALL.connections.get(name)
    if res is None:
        b = wit()
        try:
            res = b.database.open(name)
        except b.Err as e:
            raise _db_error(e) from None
        _CALL.connections[name] = res
    return res


_DIALECTS = {0: Dialect.SQLITE, 1: Dialect.POSTGRES, 2: Dialect.MYSQL}


def connect(name: str, optional: bool = False):
    """The connection the operator configured under `name` (a name the plugin declared).

    With `optional=True` (for a connection declared `optional`), None when the operator did not configure it.
    """
    try:
        res = _resource(name)
    except DbError as e:
        if optional and e.kind == "unknown-connection":
            return None
        raise
    return Connection(name, _DIALECTS[res.dialect().value], Access.READ_ONLY if res.access().value == 0 else Access.READ_WRITE)


def _keys(key):
    if isinstance(key, str):
        return [key]
    keys = list(key)
    if not keys:
        raise Failed("a write by key needs at least one key column")
    return keys


class Connection:
    """A named database connection: `connect("target")`."""

    __slots__ = ("name", "dialect", "access")

    def __init__(self, name: str, dialect: Dialect, access: Access):
        self.name = name
        self.dialect = dialect
        self.access = access

    open = staticmethod(connect)

    def __repr__(self):
        return f"Connection({self.name!r}, {self.dialect.value}, {self.access.value})"

    # ---- SQL helpers ----

    def placeholder(self, n: int) -> str:
        """The `n`th (1-based) bind placeholder for this dialect: `$3` or `?`."""
        return self.dialect.placeholder(n)

    def placeholders(self, count: int, start: int = 1) -> str:
        """`count` placeholders separated by commas, numbered from `start`: `$1, $2, $3` or `?, ?, ?`."""
        return ", ".join(self.dialect.placeholder(start + i) for i in range(count))

    def quote(self, identifier: str) -> str:
        """An identifier quoted for this dialect."""
        return self.dialect.quote(identifier)

    # ---- statements ----

    def _call(self, method, *args):
        b = wit()
        try:
            return getattr(_resource(self.name), method)(*args)
        except b.Err as e:
            raise _db_error(e) from None

    def query(self, sql: str, params=()) -> list:
        """Runs one statement with bound parameters and returns all of its rows (`Row`s)."""
        result = self._call("query", sql, wit().encode_all(params))
        return _rows([c.name for c in result.columns], result.rows)

    def query_one(self, sql: str, params=()) -> Row:
        """The first row of a query; `Failed` when there is none."""
        rows = self.query(sql, params)
        if not rows:
            raise Failed(f"query returned no rows: {sql}")
        return rows[0]

    def query_opt(self, sql: str, params=()):
        """The first row of a query, or None."""
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def query_scalar(self, sql: str, params=()):
        """The first value of the first row (`SELECT COUNT(*) …`); `Failed` when there is no row."""
        return self.query_one(sql, params)._values[0]

    def execute(self, sql: str, params=()) -> int:
        """Runs one statement with bound parameters; returns the rows it affected."""
        return self._call("execute", sql, wit().encode_all(params))

    def cursor(self, sql: str, params=(), batch: int = 1000) -> "Cursor":
        """A query whose rows arrive in batches of at most `batch`: iterate it for batches
        (`for rows in conn.cursor(...)`), or `.rows()` for rows.

        While a cursor is open this connection runs no other statement (write through
        another one), and a checkpoint is refused: page with keyset queries instead
        (`Backfill`, `copy`).
        """
        if batch < 1:
            raise Failed("cursor batch size must be at least 1")
        b = wit()
        res = _resource(self.name)
        try:
            handle = res.open_cursor(sql, b.encode_all(params), batch)
        except b.Err as e:
            raise _db_error(e) from None
        cursor = Cursor(handle)
        _CALL.cursors.append(cursor)
        return cursor

    # ---- bulk writes ----

    def bulk_insert(self, table: str, rows, columns=None) -> int:
        """Inserts rows into `table` on the dialect's fastest path (`COPY` on PostgreSQL);
        returns the rows inserted. Rows are dicts (columns from the first row's keys) or,
        with `columns`, sequences of values in that order."""
        columns, wire = _table_rows("bulk insert", table, rows, columns, [])
        if not wire:
            return 0
        return self._call("bulk_insert", table, columns, wire)

    def bulk_update(self, table: str, rows, key="id", columns=None) -> int:
        """Sets columns of the rows of `table` whose `key` (a column or a list) matches;
        returns the rows matched. Dict rows: the key columns plus the columns to set. Sequence
        rows (with `columns`): the key values, then the new values."""
        keys = _keys(key)
        columns, wire = _table_rows("bulk update", table, rows, columns, keys)
        if not wire:
            return 0
        return self._call("bulk_update", table, keys, columns, wire)

    def bulk_upsert(self, table: str, rows, key="id", columns=None) -> int:
        """Inserts each row, or sets `columns` of the row with its key where one exists (the key
        needs a unique index); returns the rows given. Rows as for `bulk_update`."""
        keys = _keys(key)
        columns, wire = _table_rows("bulk upsert", table, rows, columns, keys)
        if not wire:
            return 0
        return self._call("bulk_upsert", table, keys, columns, wire)

    def bulk_delete(self, table: str, rows, key="id") -> int:
        """Deletes the rows of `table` whose key matches; `rows` are dicts, key tuples, or
        plain values for a one-column key. Returns the rows deleted."""
        keys = _keys(key)
        b = wit()
        wire = []
        for row in rows:
            if isinstance(row, dict):
                values = [row[k] for k in keys]
            elif isinstance(row, (list, tuple)):
                values = list(row)
            else:
                values = [row]
            if len(values) != len(keys):
                raise Failed(f"bulk delete of {table}: a row has {len(values)} values for {len(keys)} keys")
            wire.append(b.encode_all(values))
        if not wire:
            return 0
        return self._call("bulk_delete", table, keys, wire)


def _table_rows(what, table, rows, columns, keys):
    """The columns (without the keys) and the encoded rows (keys first) of a bulk call."""
    b = wit()
    rows = list(rows)
    if not rows:
        return list(columns or []), []
    if columns is None:
        first = rows[0]
        if not isinstance(first, dict):
            raise Failed(f"{what} of {table}: rows are sequences, so name their columns (columns=[...])")
        columns = [c for c in first if c not in keys]
        names = list(keys) + columns
        wire = []
        for i, row in enumerate(rows):
            try:
                values = [row[c] for c in names]
            except KeyError as e:
                raise Failed(f"{what} of {table}: row {i} has no column {e.args[0]!r}") from None
            if len(row) != len(names):
                extra = sorted(set(row) - set(names))
                raise Failed(f"{what} of {table}: row {i} has columns the first row has not: {', '.join(extra)}")
            wire.append(b.encode_all(values))
        return columns, wire
    columns = list(columns)
    names = list(keys) + columns
    width = len(names)
    wire = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            values = [row[c] for c in names]
        else:
            values = row if type(row) is list or type(row) is tuple else list(row)
        if len(values) != width:
            raise Failed(f"{what} of {table}: row {i} has {len(values)} values for {len(keys)} keys and {len(columns)} columns")
        wire.append(b.encode_all(values))
    return columns, wire


class Cursor:
    """A streaming query result: an iterator of batches (lists of `Row`).

    It frees its connection when exhausted, after an error, or when the call into the plugin returns.
    """

    def __init__(self, handle):
        self._handle = handle
        self.columns = [c.name for c in handle.columns()]

    def __iter__(self):
        return self

    def __next__(self) -> list:
        b = wit()
        while self._handle is not None:
            try:
                batch = self._handle.next_batch()
            except b.Err as e:
                self.close()
                raise _db_error(e) from None
            if batch is None:
                self.close()
                break
            if batch:
                return _rows(self.columns, batch)
        raise StopIteration

    def rows(self):
        """The rows one by one, fetched a batch at a time."""
        for batch in self:
            yield from batch

    def close(self):
        """Releases the cursor now (before its end)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.__exit__(None, None, None)
            try:
                _CALL.cursors.remove(self)
            except ValueError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
