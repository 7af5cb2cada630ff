// Batched, resumable work in key order: Backfill (walk a table, a checkpoint per batch) and
// copy (stream a source query into a target table, a checkpoint per batch). Both resume
// after the last committed batch when an interrupted unit runs again, and both page by
// keyset (`WHERE key > last ORDER BY key LIMIT n`), so no cursor stays open across a
// checkpoint and every batch costs the same however far into the table it is.

import { MigrunError, toMigrunError } from './errors.js';
import { checkpoint, log, progress } from './log.js';
import { Decimal, Json, SqlDate, Time, Uuid, decode, describe } from './values.js';
import { QUICKJS } from './engine.js';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `pause` sleeps on a timer, which only StarlingMonkey has (and only an async unit can
 * wait for): under QuickJS it is refused before any work, with what to do instead.
 */
function checkPause(pause, what) {
  if (QUICKJS && pause > 0) {
    throw new MigrunError(
      `${what}: \`pause\` needs a timer, which a QuickJS build of this plugin does not have; leave it out ` +
        '(smaller batches also leave the table to other writers sooner), or build with componentize-js (StarlingMonkey)',
    );
  }
}

/** `schema.table` quoted part by part. */
const quoteTable = (conn, table) => conn.quote(table);

/** The contract kind of a decoded key value, for the backfill's checkpoint. */
function kindOf(v) {
  if (typeof v === 'number' || typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'text';
  if (v instanceof SqlDate || v instanceof Uuid || v instanceof Decimal || v instanceof Time || v instanceof Json) return v.kind;
  return null;
}

/** A key value of `kind` read back from its text. */
function keyFromText(kind, text) {
  switch (kind) {
    case 'int':
      return decode({ tag: 'int', val: BigInt(text) });
    case 'text':
      return text;
    case 'uuid':
      return new Uuid(text);
    case 'date':
    case 'time':
    case 'timestamp':
    case 'timestamptz':
    case 'decimal':
    case 'json':
      return decode({ tag: kind, val: text });
    default:
      return undefined;
  }
}

const STATE_TAG = 'backfill/1';

/**
 * The backfill's position, as the Rust SDK writes it: `backfill/1`, then one line each:
 * task, rows done, batches done, the key's kind and its canonical text (last, so it may
 * hold anything). A Rust and a JavaScript build of a plugin resume each other's runs.
 */
function encodePosition(p) {
  const kind = kindOf(p.last);
  if (kind === null) throw new MigrunError(`a backfill key of kind ${typeof p.last} cannot be saved in a checkpoint`);
  return `${STATE_TAG}\n${p.task}\n${p.done}\n${p.batches}\n${kind}\n${String(p.last)}`;
}

function decodePosition(state) {
  const parts = [];
  let rest = state;
  for (let i = 0; i < 5; i++) {
    const nl = rest.indexOf('\n');
    if (nl < 0) return null;
    parts.push(rest.slice(0, nl));
    rest = rest.slice(nl + 1);
  }
  const [tag, task, done, batches, kind] = parts;
  if (tag !== STATE_TAG || !/^[0-9]+$/.test(done) || !/^[0-9]+$/.test(batches)) return null;
  const last = keyFromText(kind, rest);
  if (last === undefined) return null;
  return { task, done: Number(done), batches: Number(batches), last };
}

/** One batch of a Backfill. */
export class Batch {
  constructor(conn, key, after, rows, number) {
    this.conn = conn;
    /** The key column. */
    this.key = key;
    /** The key of the last row of the previous batch (null for the first batch). */
    this.after = after;
    /** The batch's rows as objects: the key, then the columns the backfill asked for, in key order. */
    this.rows = rows;
    /** The batch's number, counted from 1 over the whole backfill (resumed runs continue the count). */
    this.number = number;
    /** The keys of the batch's rows, ascending. */
    this.keys = rows.map((r) => r[key]);
  }

  get length() {
    return this.rows.length;
  }

  /** The key of the batch's last row. */
  get last() {
    return this.keys[this.keys.length - 1];
  }

  /**
   * A condition selecting exactly the batch's key range, with placeholders numbered from
   * `firstParam`, and its parameters: `{ sql: '"id" > $1 AND "id" <= $2', params: [after, last] }`
   * (`"id" <= $1` for the first batch). Use it in the batch's `UPDATE … WHERE`.
   */
  range(firstParam = 1) {
    const key = this.conn.quote(this.key);
    if (this.after !== null) {
      return { sql: `${key} > ${this.conn.ph(firstParam)} AND ${key} <= ${this.conn.ph(firstParam + 1)}`, params: [this.after, this.last] };
    }
    return { sql: `${key} <= ${this.conn.ph(firstParam)}`, params: [this.last] };
  }
}

/**
 * A batched, throttled, resumable walk over a table in key order (the Rust SDK's Backfill):
 *
 *   new Backfill(db, 'orders', { columns: ['amount_text'], batchSize: 500 }).run((batch) => {
 *     db.bulkUpdate('orders', batch.rows.map((r) => ({ id: r.id, amount_cents: cents(r.amount_text) })), { keys: 'id' });
 *   });
 *
 * Options: `key` (a unique NOT NULL column; default: the primary key), `columns` (read with
 * each batch's keys), `batchSize` (rows per batch and per checkpoint, default 1000),
 * `pause` (milliseconds between batches: run() then returns a promise — await it), `task`
 * (the progress task and checkpoint name, default `backfill <table>`), `failAfter`
 * (fail after that many batches of this run were committed: for testing resumes).
 */
export class Backfill {
  constructor(conn, table, { key, columns = [], batchSize = 1000, pause = 0, task, failAfter } = {}) {
    this.conn = conn;
    this.table = table;
    this.key = key ?? null;
    this.columns = columns;
    this.batchSize = batchSize;
    this.pause = pause;
    this.task = task ?? `backfill ${table}`;
    this.failAfter = failAfter ?? null;
  }

  /**
   * Calls `work(batch)` with each batch, then saves a checkpoint (committing the batch's
   * work with the position) and reports progress, then pauses. Resumes after the last
   * checkpoint of an earlier, interrupted run of this unit. Returns
   * `{ rows, batches, resumedAfter }` (a promise of it when `pause` is set).
   */
  run(work) {
    checkPause(this.pause, `backfill ${this.table}`);
    const walk = this.start();
    if (!(this.pause > 0)) {
      while (walk.step(work));
      return walk.report();
    }
    return (async () => {
      while (walk.step(work)) await sleep(this.pause);
      return walk.report();
    })();
  }

  start() {
    const { conn } = this;
    if (!(this.batchSize >= 1)) throw new MigrunError('backfill batch size must be at least 1');
    if (this.task.includes('\n')) throw new MigrunError("a backfill's task name must be one line");
    const key = this.key ?? keyOf(conn, this.table);
    const table = quoteTable(conn, this.table);
    const quotedKey = conn.quote(key);
    const selected = [quotedKey, ...this.columns.map((c) => conn.quote(c))].join(', ');
    const total = Number(conn.scalar(`SELECT COUNT(*) FROM ${table}`));

    const saved = checkpoint.last();
    const resumed = saved === null ? null : decodePosition(saved);
    const position = resumed !== null && resumed.task === this.task ? resumed : null;
    let after = null;
    let done = 0;
    let batches = 0;
    if (position !== null) {
      log.info(`resuming after batch ${position.batches} (key ${describe(position.last)})`, {
        task: this.task,
        batches: position.batches,
        rows: position.done,
      });
      ({ last: after, done, batches } = position);
    }
    const resumedAfter = position === null ? null : position.batches;
    let finished = false;
    let thisRun = 0;
    const self = this;
    return {
      report: () => ({ rows: done, batches, resumedAfter }),
      step(work) {
        if (finished) return false;
        if (self.failAfter !== null && self.failAfter > 0 && thisRun === self.failAfter) {
          throw new MigrunError(`stopping the backfill ${self.task} after ${thisRun} batches as configured (failAfter)`);
        }
        const sql =
          after !== null
            ? `SELECT ${selected} FROM ${table} WHERE ${quotedKey} > ${conn.ph(1)} ORDER BY ${quotedKey} LIMIT ${self.batchSize}`
            : `SELECT ${selected} FROM ${table} ORDER BY ${quotedKey} LIMIT ${self.batchSize}`;
        const rows = conn.query(sql, after !== null ? [after] : []);
        if (rows.length === 0) {
          finished = true;
          return false;
        }
        const keyName = rows.columns[0];
        for (const row of rows) {
          if (row[keyName] === null) {
            throw new MigrunError(`backfill key \`${key}\` of \`${self.table}\` holds NULL: page by a NOT NULL unique column`);
          }
        }
        batches += 1;
        const batch = new Batch(conn, keyName, after, rows, batches);
        try {
          work(batch);
        } catch (e) {
          throw toMigrunError(e).withContext(`batch ${batches}`);
        }
        done += batch.length;
        const last = batch.last;
        try {
          checkpoint.save(encodePosition({ task: self.task, done, batches, last }));
        } catch (e) {
          throw toMigrunError(e).withContext(`checkpoint after batch ${batches}`);
        }
        progress(self.task, done, Math.max(total, done));
        after = last;
        thisRun += 1;
        if (batch.length < self.batchSize) finished = true;
        return !finished;
      },
    };
  }
}

/**
 * The column to page `table` by: its one-column primary key, else a one-column unique key
 * on a NOT NULL column. A clear error when it has neither.
 */
export function keyOf(conn, table) {
  let columns; // [index, column, primary, notNull]
  // By the result's column order: Object.values would put integer-like names (`1`) first.
  const tuples = (rows) => rows.map((r) => rows.columns.map((c) => r[c]));
  if (conn.dialect === 'postgres') {
    columns = tuples(
      conn.query(
        'SELECT c.relname::text, a.attname::text, i.indisprimary, a.attnotnull ' +
          'FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid ' +
          'JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) ' +
          'WHERE i.indrelid = to_regclass($1::text) AND i.indisunique AND i.indpred IS NULL',
        [table],
      ),
    );
  } else if (conn.dialect === 'mysql') {
    columns = tuples(
      conn.query(
        "SELECT s.INDEX_NAME, s.COLUMN_NAME, s.INDEX_NAME = 'PRIMARY', c.IS_NULLABLE = 'NO' " +
          'FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c ' +
          'ON c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME ' +
          'WHERE s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = ? AND s.NON_UNIQUE = 0',
        [table],
      ),
    ).map(([i, c, p, n]) => [i, c, Boolean(p), Boolean(n)]);
  } else {
    // An INTEGER PRIMARY KEY is the rowid: never NULL, whatever the column says.
    columns = tuples(conn.query('SELECT \'primary\', name, 1, "notnull" FROM pragma_table_info(?) WHERE pk > 0', [table])).map(([i, c]) => [
      i,
      c,
      true,
      true,
    ]);
    columns.push(
      ...tuples(
        conn.query(
          'SELECT il.name, ii.name, 0, ti."notnull" FROM pragma_index_list(?1) il ' +
            'JOIN pragma_index_info(il.name) ii ' +
            'JOIN pragma_table_info(?1) ti ON ti.name = ii.name ' +
            "WHERE il.\"unique\" = 1 AND il.partial = 0 AND il.origin <> 'pk'",
          [table],
        ),
      ).map(([i, c, p, n]) => [i, c, Boolean(p), Boolean(n)]),
    );
  }
  const indexes = new Map();
  for (const c of columns) {
    if (!indexes.has(c[0])) indexes.set(c[0], []);
    indexes.get(c[0]).push(c);
  }
  const single = (primary) => {
    const found = [...indexes.values()].filter((cols) => cols.length === 1 && cols[0][2] === primary && cols[0][3]).map((cols) => cols[0][1]);
    found.sort();
    return found.length > 0 ? found[0] : null;
  };
  const key = single(true) ?? single(false);
  if (key === null) {
    throw new MigrunError(
      `cannot page through \`${table}\`: it has no one-column primary key and no one-column ` +
        `unique key on a NOT NULL column${columns.length === 0 ? ' (or the table does not exist)' : ''}; name a unique NOT NULL column with the \`key\` option`,
    );
  }
  return key;
}

// ---- copy ------------------------------------------------------------------------

/** A key value in the copy checkpoint's JSON: integers as exact numbers, everything else as its text. */
function keyJson(v) {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : JSON.stringify(String(v));
  if (typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  return JSON.stringify(String(v));
}

/** The copy checkpoint: `{"copy":"<name>","last_key":[…],"copied":n}`, as the Rust and Python SDKs write it. */
export function encodeCopyState(name, lastKey, copied) {
  return `{"copy":${JSON.stringify(name)},"last_key":[${lastKey.map(keyJson).join(',')}],"copied":${copied}}`;
}

/** Parses a copy checkpoint, integers exact (BigInt beyond 2^53); null if `state` is not one. */
export function decodeCopyState(state) {
  let parsed;
  try {
    parsed = parseExactJson(state);
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== 'object' || typeof parsed.copy !== 'string' || !Array.isArray(parsed.last_key)) return null;
  return { copy: parsed.copy, lastKey: parsed.last_key, copied: Number(parsed.copied ?? 0) };
}

/** JSON.parse, except that integers beyond 2^53 become BigInts instead of rounding. */
export function parseExactJson(text) {
  // Wrap long integer literals (outside strings) in a marker string, then revive them.
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && /[0-9eE.+-]/.test(text[j])) j++;
      const literal = text.slice(i, j);
      out += /^-?[0-9]{16,}$/.test(literal) ? `"\\u0000bigint:${literal}"` : literal;
      i = j;
    } else {
      out += c;
      i++;
    }
  }
  return JSON.parse(out, (_, v) => {
    if (typeof v === 'string' && v.startsWith('\u0000bigint:')) {
      const b = BigInt(v.slice(8));
      return b <= 9007199254740991n && b >= -9007199254740991n ? Number(b) : b;
    }
    return v;
  });
}

/** A checkpointed key value back in the kind the source returns for that column. */
function retype(saved, sample) {
  if (typeof saved !== 'string' || sample === null || sample === undefined || typeof sample === 'string') return saved;
  if (sample instanceof SqlDate) return new SqlDate(sample.kind, saved);
  if (sample instanceof Uuid) return new Uuid(saved);
  if (sample instanceof Decimal) return new Decimal(saved);
  if (sample instanceof Time) return new Time(saved);
  if (sample instanceof Json) return new Json(saved);
  return saved;
}

/**
 * Streams `select` from `source` into the table `into` on `target`, in batches in key
 * order, each batch written with one bulk insert (or upsert) and committed with a
 * checkpoint; after a crash the unit's next run resumes after the last committed batch.
 *
 *   const counts = copy(source, target, {
 *     select: 'SELECT id, email, country FROM customers',
 *     key: 'id',                       // or ['tenant', 'id']: unique, NOT NULL, in the select's output
 *     into: 'customers',
 *     map: (row) => ({ ...row, email: row.email.toLowerCase() }),   // null or undefined skips the row
 *     batch: 1000,
 *   });                                // { read, written, skipped }
 *
 * Each batch is one query, `SELECT * FROM (<select>) AS migrun_src WHERE (<key>) > (<last
 * key>) ORDER BY <key> LIMIT <batch>`, so no cursor stays open across a checkpoint and
 * the source can be any connection. The checkpoint is
 * `{"copy":"<name>","last_key":[…],"copied":<rows written so far>}`.
 *
 * Options: `select` (default: `SELECT * FROM <into>` on the source), `params` (the
 * select's parameters; the key's placeholders are numbered after them), `key` (default:
 * the one-column primary key of `into`), `map` (default: the row as read), `columns` (the
 * target columns; default: the first written row's keys), `upsert: true` (bulkUpsert by
 * `targetKeys`, default the key), `name` (the checkpoint's and progress task's name,
 * default `into`), `pause` (milliseconds between batches: copy() then returns a promise),
 * `failAfter` (fail before the next batch once that many batches of this run were
 * committed: for rehearsing a resume). Returns `{ read, written, skipped, batches,
 * copied, resumedAfter }`: this run's counts, `copied` over the whole copy, and the key
 * it resumed after (or null).
 */
export function copy(source, target, options) {
  checkPause(options.pause, `copy into ${options.into}`);
  const walk = startCopy(source, target, options);
  if (!(options.pause > 0)) {
    while (walk.step());
    return walk.counts();
  }
  return (async () => {
    while (walk.step()) await sleep(options.pause);
    return walk.counts();
  })();
}

function startCopy(source, target, options) {
  const { select, params = [], key, into, map, batch = 1000, upsert = false, name, columns, targetKeys, failAfter } = options;
  if (typeof into !== 'string') throw new MigrunError('copy needs `into`, the target table');
  if (!(batch >= 1)) throw new MigrunError('copy batch size must be at least 1');
  const copyName = name ?? into;
  const task = `copy ${copyName}`;
  const query = typeof select === 'string' ? select.trim().replace(/;+$/, '') : `SELECT * FROM ${source.quote(into)}`;
  // The key: given, else the one-column primary key of `into` (on the source without a
  // select, on the target with one).
  const keys = key === undefined ? [keyOf(typeof select === 'string' ? target : source, into)] : typeof key === 'string' ? [key] : key;
  const src = `(${query}) AS migrun_src`;
  const order = keys.map((k) => source.quote(k)).join(', ');
  const firstKeyParam = params.length + 1;
  const condition =
    keys.length === 1 ? `${order} > ${source.ph(firstKeyParam)}` : `(${order}) > (${source.placeholders(keys.length, firstKeyParam)})`;
  const total = Number(source.scalar(`SELECT COUNT(*) FROM ${src}`, params));

  let lastKey = null;
  let resumedAfter = null;
  let copiedBefore = 0;
  const saved = checkpoint.last();
  const state = saved === null ? null : decodeCopyState(saved);
  if (state !== null && state.copy === copyName) {
    lastKey = state.lastKey;
    if (lastKey.some((v) => typeof v === 'string')) {
      // JSON keeps numbers and strings only: a key saved from a uuid, a date or a decimal
      // gets its kind back from the source's first row (PostgreSQL compares a uuid with a
      // uuid, not with text).
      const probe = source.query(`SELECT ${order} FROM ${src} ORDER BY ${order} LIMIT 1`, params);
      if (probe.length > 0) lastKey = lastKey.map((v, i) => retype(v, probe[0][probe.columns[i]]));
    }
    resumedAfter = lastKey;
    copiedBefore = state.copied;
    log.info(`resuming the copy after key ${shownKey(lastKey)}`, { copy: copyName, copied: state.copied });
  }
  const counts = { read: 0, written: 0, skipped: 0, batches: 0, copied: copiedBefore, resumedAfter };
  let finished = false;
  const writeKeys = targetKeys === undefined ? keys : typeof targetKeys === 'string' ? [targetKeys] : targetKeys;

  return {
    counts: () => counts,
    step() {
      if (finished) return false;
      if (failAfter !== undefined && failAfter !== null && failAfter > 0 && counts.batches === failAfter) {
        throw new MigrunError(`stopping the copy ${copyName} after ${counts.batches} batches as configured (failAfter)`);
      }
      const sql =
        lastKey === null
          ? `SELECT * FROM ${src} ORDER BY ${order} LIMIT ${batch}`
          : `SELECT * FROM ${src} WHERE ${condition} ORDER BY ${order} LIMIT ${batch}`;
      const rows = source.query(sql, lastKey === null ? params : params.concat(lastKey));
      if (rows.length === 0) {
        finished = true;
        return false;
      }
      for (const k of keys) {
        if (!rows.columns.includes(k)) {
          throw new MigrunError(`the copy's key column \`${k}\` is not in the rows (columns: ${rows.columns.join(', ')})`);
        }
      }
      const lastRow = rows[rows.length - 1];
      const nextKey = keys.map((k) => lastRow[k]);
      if (nextKey.some((v) => v === null)) {
        throw new MigrunError(`copy ${copyName}: key (${keys.join(', ')}) holds NULL; copy by unique NOT NULL columns`);
      }
      const out = [];
      for (const row of rows) {
        const mapped = map ? map(row) : row;
        if (mapped === null || mapped === undefined) counts.skipped += 1;
        else out.push(mapped);
      }
      counts.batches += 1;
      const number = counts.batches;
      let written = 0;
      if (out.length > 0) {
        const cols = columns ?? Object.keys(out[0]);
        try {
          written = upsert
            ? target.bulkUpsert(into, out, { keys: writeKeys, columns: cols.filter((c) => !writeKeys.includes(c)) })
            : target.bulkInsert(into, out, { columns: cols });
        } catch (e) {
          throw toMigrunError(e).withContext(`copy ${copyName}, batch ${number}`);
        }
      }
      counts.read += rows.length;
      counts.written += written;
      counts.copied += written;
      try {
        checkpoint.save(encodeCopyState(copyName, nextKey, counts.copied));
      } catch (e) {
        throw toMigrunError(e).withContext(`checkpoint after batch ${number} of copy ${copyName}`);
      }
      const done = copiedBefore + counts.read;
      progress(task, done, Math.max(total, done));
      lastKey = nextKey;
      if (rows.length < batch) finished = true;
      return !finished;
    },
  };
}

/** A key for messages: the value, or `(a, b)` for a composite key. */
function shownKey(key) {
  return key.length === 1 ? describe(key[0]) : `(${key.map(describe).join(', ')})`;
}
