// Named connections: queries with rows as plain objects, cursors as iterators, bulk
// writes, dialect-correct placeholders.
//
// A Connection is a cheap handle naming a connection the plugin declared. The host
// resource behind it is opened on first use in each call into the plugin and shared by
// every handle of that name during the call; the SDK releases it (and any cursor left
// open) when the call returns. A handle kept between units therefore stays usable: it
// reopens, inside the new unit's transaction, the next time it is used. (The same rules
// as the Rust SDK's `Connection`, so the twins make the same host calls.)

import * as host from './host.js';
import { MigrunError, toMigrunError } from './errors.js';
import { decode, encode, encodeAll, encodeCommon } from './values.js';

/** Resources opened during the current call into the plugin. */
const session = { open: [], cursors: [] };

function resource(name) {
  for (const o of session.open) if (o.name === name) return o.resource;
  let r;
  try {
    r = host.open(name);
  } catch (e) {
    throw toMigrunError(e);
  }
  session.open.push({ name, resource: r });
  return r;
}

function dispose(r) {
  if (r && typeof r[Symbol.dispose] === 'function') r[Symbol.dispose]();
}

/**
 * Releases what the current call opened: unfinished cursors first (latest first), then
 * the connections (in the order they were opened). The export glue calls it when a call
 * into the plugin returns.
 */
export function closeAll() {
  const cursors = session.cursors;
  const open = session.open;
  session.cursors = [];
  session.open = [];
  for (let i = cursors.length - 1; i >= 0; i--) cursors[i].close();
  for (const o of open) dispose(o.resource);
}

/** Calls a host function; a database error becomes a MigrunError with its kind and code. */
function hostCall(f) {
  try {
    return f();
  } catch (e) {
    throw toMigrunError(e);
  }
}

/** A u64/s64 count from the host as a Number (exact up to 2^53). */
const count = (n) => (typeof n === 'bigint' ? Number(n) : n);

/**
 * One value as JavaScript: the common kinds inline (an interpreter pays for every call),
 * the rest in `decode`. Written out as text too, for `rowDecoder`.
 */
const decodeValue = (v) => {
  const tag = v.tag;
  return tag === 'text' || tag === 'float' || tag === 'boolean' || (tag === 'int' && typeof v.val === 'number' && Number.isSafeInteger(v.val))
    ? v.val
    : tag === 'null'
      ? null
      : decode(v);
};

const rowDecoders = new Map();

/**
 * A function turning one row of values into an object keyed by `names`, compiled once per
 * column list: an object literal whose property names the engine resolves when it
 * compiles it, where assigning `row[name]` looks each name up again for every row (the
 * larger part of reading a row under QuickJS). Falls back to assigning names when the
 * engine cannot compile code at run time, or when a name would mean something else in a
 * literal (`__proto__`).
 */
function rowDecoder(names) {
  const key = names.join('\u0000');
  let make = rowDecoders.get(key);
  if (make !== undefined) return make;
  make = (values) => {
    const row = {};
    for (let i = 0; i < names.length; i++) {
      const value = decodeValue(values[i]);
      // `row.__proto__ = x` would set the prototype: a column of that name is a field.
      if (names[i] === '__proto__') Object.defineProperty(row, names[i], { value, writable: true, enumerable: true, configurable: true });
      else row[names[i]] = value;
    }
    return row;
  };
  if (!names.includes('__proto__')) {
    const fields = names.map(
      (n, i) =>
        `${JSON.stringify(n)}: (x = v[${i}], t = x.tag, t === 'text' || t === 'float' || t === 'boolean' || (t === 'int' && typeof x.val === 'number' && Number.isSafeInteger(x.val)) ? x.val : t === 'null' ? null : d(x))`,
    );
    try {
      make = new Function('d', `return (v) => { let x, t; return { ${fields.join(', ')} }; };`)(decode);
    } catch {
      // no run-time compilation here: the loop above
    }
  }
  rowDecoders.set(key, make);
  return make;
}

/** Decodes the host's rows into objects keyed by column name. */
export function decodeRows(raw, names) {
  const make = rowDecoder(names);
  const out = new Array(raw.length);
  for (let r = 0; r < raw.length; r++) out[r] = make(raw[r]);
  return out;
}

const columnNames = (columns) => columns.map((c) => c.name);

/** Opens the connection the operator configured under `name` (a name the plugin declared). */
export function connect(name) {
  return new Connection(name);
}

/**
 * Opens a connection declared `optional`: null when the operator did not configure it, so
 * the plugin goes on without it.
 */
export function connectOptional(name) {
  try {
    return new Connection(name);
  } catch (e) {
    if (e instanceof MigrunError && e.kind === 'unknown-connection') return null;
    throw e;
  }
}

export class Connection {
  constructor(name) {
    const r = resource(name);
    /** The name the connection was opened by. */
    this.name = name;
    /** The SQL dialect: 'sqlite', 'postgres' or 'mysql' (MySQL and MariaDB). */
    this.dialect = r.dialect();
    /** The access the operator granted: 'read-only' or 'read-write'. */
    this.access = r.access();
  }

  /** The `n`th (1-based) bind placeholder for this dialect: `$n` on PostgreSQL, `?` elsewhere. */
  ph(n) {
    return this.dialect === 'postgres' ? `$${n}` : '?';
  }

  /** Same as ph(n) (the Rust SDK's name). */
  placeholder(n) {
    return this.ph(n);
  }

  /** `count` placeholders separated by commas, numbered from `first`: `$3, $4` or `?, ?`. */
  placeholders(count, first = 1) {
    const out = [];
    for (let i = 0; i < count; i++) out.push(this.ph(first + i));
    return out.join(', ');
  }

  /** An identifier quoted for this dialect (`"x"`, or `` `x` `` on MySQL); `schema.table` part by part. */
  quote(identifier) {
    return String(identifier)
      .split('.')
      .map((part) => (this.dialect === 'mysql' ? `\`${part.replaceAll('`', '``')}\`` : `"${part.replaceAll('"', '""')}"`))
      .join('.');
  }

  /** Runs one statement with bound parameters; returns its rows as objects (the array also has `.columns`). */
  query(sql, params = []) {
    const result = hostCall(() => resource(this.name).query(sql, encodeAll(params)));
    const names = columnNames(result.columns);
    const rows = decodeRows(result.rows, names);
    rows.columns = names;
    return rows;
  }

  /** The first row of a query, or null. */
  queryOne(sql, params = []) {
    const rows = this.query(sql, params);
    return rows.length > 0 ? rows[0] : null;
  }

  /** The first value of the first row (`SELECT COUNT(*) …`); no row is an error. */
  scalar(sql, params = []) {
    const result = hostCall(() => resource(this.name).query(sql, encodeAll(params)));
    if (result.rows.length === 0) throw new MigrunError(`query returned no rows: ${sql}`);
    const row = result.rows[0];
    if (row.length === 0) throw new MigrunError(`query returned no columns: ${sql}`);
    return decode(row[0]);
  }

  /** Runs one statement with bound parameters; returns the number of rows it affected. */
  execute(sql, params = []) {
    return count(hostCall(() => resource(this.name).execute(sql, encodeAll(params))));
  }

  /**
   * Streams a query in batches of at most `batch` rows: iterate it for arrays of row
   * objects, or `.rows()` for one row at a time. While it is open the connection runs no
   * other statement (read through one connection, write through another); it closes
   * when exhausted, on an error, by `close()`, or when the call into the plugin returns.
   */
  cursor(sql, params = [], { batch = 1000 } = {}) {
    if (!(batch >= 1)) throw new MigrunError('cursor batch size must be at least 1');
    const conn = resource(this.name);
    const r = hostCall(() => conn.openCursor(sql, encodeAll(params), batch));
    const cursor = new Cursor(r);
    session.cursors.push(cursor);
    return cursor;
  }

  /**
   * Inserts rows into `table` (optionally `schema.table`) on the dialect's fastest path
   * (`COPY` on PostgreSQL, multi-row INSERT elsewhere); returns the rows inserted.
   * `rows` are objects (the columns are `columns`, or the first row's keys) or arrays of
   * values in the order of `columns`. An empty `rows` makes no call.
   */
  bulkInsert(table, rows, { columns } = {}) {
    if (rows.length === 0) return 0;
    const cols = columns ?? columnsOf(rows[0], 'bulk insert', table);
    const encoded = encodeRows(rows, cols, 'bulk insert', table);
    return count(hostCall(() => resource(this.name).bulkInsert(table, cols, encoded)));
  }

  /**
   * Sets columns of the rows of `table` whose `keys` match; returns the rows matched.
   * Object rows: `keys` name the key fields, the other fields (or `columns`) the values
   * to set. Array rows: the key values (in the order of `keys`), then the values of
   * `columns`. A key appears at most once per call; a key no row has changes nothing.
   */
  bulkUpdate(table, rows, { keys, columns } = {}) {
    return this.keyed('bulkUpdate', 'bulk update', table, rows, keys, columns);
  }

  /**
   * Inserts each row, or sets `columns` of the row whose `keys` match where one exists
   * (the keys need a unique index or the primary key); returns the rows given. Rows as
   * for bulkUpdate.
   */
  bulkUpsert(table, rows, { keys, columns } = {}) {
    return this.keyed('bulkUpsert', 'bulk upsert', table, rows, keys, columns);
  }

  /**
   * Deletes the rows of `table` whose `keys` match; returns the rows deleted. Rows are
   * objects (their key fields are read), arrays of key values, or — for one key — the
   * key values themselves.
   */
  bulkDelete(table, rows, { keys } = {}) {
    if (rows.length === 0) return 0;
    const keyList = keyNames(keys, 'bulk delete', table);
    const encoded = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      if (Array.isArray(row)) encoded[i] = encodeAll(row);
      else if (row !== null && typeof row === 'object' && row.constructor === Object) encoded[i] = keyList.map((k) => encode(row[k]));
      else encoded[i] = [encode(row)];
      if (encoded[i].length !== keyList.length) {
        throw new MigrunError(`bulk delete of ${table}: row ${i} has ${encoded[i].length} values for ${keyList.length} keys`);
      }
    }
    return count(hostCall(() => resource(this.name).bulkDelete(table, keyList, encoded)));
  }

  keyed(method, what, table, rows, keys, columns) {
    if (rows.length === 0) return 0;
    const keyList = keyNames(keys, what, table);
    let cols = columns;
    let fields;
    if (!Array.isArray(rows[0])) {
      cols = cols ?? columnsOf(rows[0], what, table).filter((c) => !keyList.includes(c));
      fields = keyList.concat(cols);
    } else if (!cols) {
      throw new MigrunError(`${what} of ${table}: rows given as arrays need \`columns\``);
    }
    const encoded = encodeRows(rows, fields ?? keyList.concat(cols), what, table);
    return count(hostCall(() => resource(this.name)[method](table, keyList, cols, encoded)));
  }
}

function keyNames(keys, what, table) {
  const list = typeof keys === 'string' ? [keys] : keys;
  if (!Array.isArray(list) || list.length === 0) throw new MigrunError(`${what} of ${table}: name the key column(s) with \`keys\``);
  return list;
}

function columnsOf(row, what, table) {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) {
    throw new MigrunError(`${what} into ${table}: rows given as arrays need \`columns\``);
  }
  return Object.keys(row);
}

/** Encodes rows (objects read by `fields`, or arrays of exactly `fields.length` values). */
function encodeRows(rows, fields, what, table) {
  const width = fields.length;
  const out = new Array(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    const values = new Array(width);
    if (Array.isArray(row)) {
      if (row.length !== width) {
        throw new MigrunError(`${what} into ${table}: row ${r} has ${row.length} values for ${width} columns (${fields.join(', ')})`);
      }
      for (let i = 0; i < width; i++) values[i] = encodeCommon(row[i]);
    } else {
      for (let i = 0; i < width; i++) values[i] = encodeCommon(row[fields[i]]);
    }
    out[r] = values;
  }
  return out;
}

/** A streaming query result: an iterable of batches (arrays of row objects). */
export class Cursor {
  constructor(r) {
    this.resource = r;
    /** The result's column names. */
    this.columns = columnNames(hostCall(() => r.columns()));
  }

  /** The next non-empty batch, or null once the result is exhausted. */
  next() {
    while (this.resource !== null) {
      let raw;
      try {
        raw = this.resource.nextBatch();
      } catch (e) {
        this.close();
        throw toMigrunError(e);
      }
      if (raw === undefined || raw === null) this.close();
      else if (raw.length > 0) return decodeRows(raw, this.columns);
    }
    return null;
  }

  /** Batch by batch: `for (const batch of conn.cursor(sql))`. */
  *[Symbol.iterator]() {
    try {
      for (let batch; (batch = this.next()) !== null; ) yield batch;
    } finally {
      this.close(); // a loop left early (break, an exception) frees the connection at once
    }
  }

  /**
   * Row by row: `for (const row of conn.cursor(sql).rows())`. A plain iterator rather than
   * a generator (cheaper per row in an interpreter); leaving the loop early closes the cursor.
   */
  rows() {
    const cursor = this;
    let batch = [];
    let at = 0;
    return {
      [Symbol.iterator]() {
        return this;
      },
      next() {
        while (at === batch.length) {
          const nextBatch = cursor.next();
          if (nextBatch === null) return { done: true, value: undefined };
          batch = nextBatch;
          at = 0;
        }
        return { done: false, value: batch[at++] };
      },
      return() {
        cursor.close();
        return { done: true, value: undefined };
      },
    };
  }

  /** Frees the cursor (and with it its connection) now. */
  close() {
    if (this.resource !== null) {
      const r = this.resource;
      this.resource = null;
      dispose(r);
    }
  }

  [Symbol.dispose]() {
    this.close();
  }
}
