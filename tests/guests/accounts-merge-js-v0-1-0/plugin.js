// accounts-merge in JavaScript as it was written against the raw bindings of contract
// 0.1.0, frozen here when plugins/accounts-merge-js moved onto the SDK (@migrun/sdk) and
// contract 0.2.0: tests/e2e/contracts.rs builds it (tests/e2e/support/plugins.rs,
// `js_raw_plugin`, with the componentize-js of plugins/accounts-merge-js) to prove that a
// JavaScript component of 0.1.0 keeps running unchanged and writes what the Rust twin writes.
// Do not edit: it is a record of the 0.1.0 bindings.
//
// Reads openneo_id's Devise `users` through a read-only `source` and writes
// `accounts` and `identities` through a read-write `target`, as plugins/accounts-merge
// (Rust) specifies.
//
// The engine is StarlingMonkey (SpiderMonkey), through componentize-js.
// Conventions of its bindings: WIT `s64`/`u64` are BigInt (exact: ids beyond
// 2^53 survive), `u32` is a Number; a variant is `{ tag, val }`; an enum is
// its name as a string; `option<T>` is the value or `undefined`; an import
// returning `result<T, E>` returns T or throws an error whose `payload` is E;
// an export fails by throwing an error whose `payload` is the plugin-error.

import { open } from 'migrun:plugin/database@0.1.0';
import { write, progress } from 'migrun:plugin/log@0.1.0';
import { report } from 'migrun:plugin/checks@0.1.0';

const NAME = 'accounts-merge';
const VERSION = '0.1.0';
const UNIT_CREATE = 'create-tables';
const UNIT_ACCOUNTS = 'copy-accounts';
const UNIT_IDENTITIES = 'split-identities';
const MAX_BATCH = 100000;

// --- schema: verbatim copies of plugins/accounts-merge/src/schema.rs ---------

const ACCOUNTS = 'accounts';
const IDENTITIES = 'identities';
const ACCOUNT_COLUMNS = [
  'id',
  'name',
  'email',
  'email_domain',
  'password_kind',
  'sign_in_count',
  'locked',
  'created_at',
  'last_sign_in_at',
];
const IDENTITY_COLUMNS = ['provider', 'uid', 'account_id', 'email'];

const CREATE_TABLES = {
  sqlite: [
    'CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, email_domain TEXT, password_kind TEXT NOT NULL, sign_in_count INTEGER NOT NULL, locked BOOLEAN NOT NULL, created_at DATETIME, last_sign_in_at DATETIME)',
    'CREATE TABLE IF NOT EXISTS identities (provider TEXT NOT NULL, uid TEXT NOT NULL, account_id INTEGER NOT NULL REFERENCES accounts (id), email TEXT, PRIMARY KEY (provider, uid))',
  ],
  postgres: [
    'CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name varchar(30) NOT NULL, email varchar(50) UNIQUE, email_domain varchar(255), password_kind varchar(16) NOT NULL, sign_in_count integer NOT NULL, locked boolean NOT NULL, created_at timestamp(6), last_sign_in_at timestamp(6))',
    'CREATE TABLE IF NOT EXISTS identities (provider varchar(255) NOT NULL, uid varchar(255) NOT NULL, account_id bigint NOT NULL REFERENCES accounts (id), email varchar(255), PRIMARY KEY (provider, uid))',
  ],
  mysql: [
    'CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name varchar(30) NOT NULL, email varchar(50) UNIQUE, email_domain varchar(255), password_kind varchar(16) NOT NULL, sign_in_count int NOT NULL, locked boolean NOT NULL, created_at datetime(6), last_sign_in_at datetime(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
    'CREATE TABLE IF NOT EXISTS identities (provider varchar(255) NOT NULL, uid varchar(255) NOT NULL, account_id bigint NOT NULL REFERENCES accounts (id), email varchar(255), PRIMARY KEY (provider, uid)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
  ],
};

const COUNT_USERS = 'SELECT COUNT(*) FROM users';
const SELECT_USERS = 'SELECT id, name, email, encrypted_password, password_salt, sign_in_count, unlock_token, locked_at, created_at, last_sign_in_at FROM users ORDER BY id';
const COUNT_PROVIDERS = 'SELECT COUNT(*) FROM users WHERE provider IS NOT NULL';
const SELECT_PROVIDERS = 'SELECT id, provider, uid, neopass_email FROM users WHERE provider IS NOT NULL ORDER BY id';
const COUNT_ACCOUNTS = 'SELECT COUNT(*) FROM accounts';
const COUNT_IDENTITIES = 'SELECT COUNT(*) FROM identities';
const SELECT_EMAILS = 'SELECT id, email FROM accounts WHERE email IS NOT NULL ORDER BY id';
const COUNT_ORPHANS = 'SELECT COUNT(*) FROM identities LEFT JOIN accounts ON accounts.id = identities.account_id WHERE accounts.id IS NULL';

const placeholder = (dialect, n) => (dialect === 'postgres' ? `$${n}` : '?');
const presentAccounts = (d) => `SELECT id FROM accounts WHERE id BETWEEN ${placeholder(d, 1)} AND ${placeholder(d, 2)}`;
const presentIdentities = (d) => `SELECT account_id FROM identities WHERE account_id BETWEEN ${placeholder(d, 1)} AND ${placeholder(d, 2)}`;

// --- normalisation: ASCII only, as in src/normalise.rs ------------------------

// Rust's char::is_ascii_whitespace; JS's own trim() also strips Unicode spaces.
const trimAscii = (s) => s.replace(/^[ \t\n\f\r]+|[ \t\n\f\r]+$/g, '');
// A-Z only; toLowerCase() would also map non-ASCII letters.
const lowerAscii = (s) => s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));

function normaliseEmail(email) {
  if (email === null) return null;
  const trimmed = trimAscii(email);
  return trimmed === '' ? null : lowerAscii(trimmed);
}

function emailDomain(email) {
  const at = email.lastIndexOf('@');
  const domain = at < 0 ? '' : email.slice(at + 1);
  return domain === '' ? null : domain;
}

function passwordKind(encrypted, salt) {
  if (encrypted === null || encrypted === '') return 'none';
  if (salt !== null && salt !== '') return 'legacy-sha';
  if (['$2a$', '$2b$', '$2y$'].some((p) => encrypted.startsWith(p))) return 'bcrypt';
  return 'unknown';
}

function timestamp(target, value) {
  if (target === 'sqlite') return value;
  if (value.tag === 'text') return { tag: 'timestamp', val: value.val.replace(' ', 'T') };
  if (value.tag === 'timestamptz') {
    const text = value.val;
    return { tag: 'timestamp', val: text.endsWith('Z') ? text.slice(0, -1) : text };
  }
  return value;
}

const NULL = { tag: 'null' };
const int = (n) => ({ tag: 'int', val: BigInt(n) });
const text = (s) => ({ tag: 'text', val: s });
const optionalText = (s) => (s === null ? NULL : text(s));

// --- a thin layer over the bindings, making the calls the Rust SDK makes -----

/** A failure that becomes the export's `plugin-error`. */
class PluginError extends Error {
  constructor(payload) {
    super(payload.tag === 'failed' ? payload.val : payload.val.message);
    this.payload = payload;
  }
}

const failed = (message) => new PluginError({ tag: 'failed', val: message });

/** A database error thrown by an import (its payload is a db-error), or undefined. */
const dbErrorOf = (e) => (e && e.payload && typeof e.payload.kind === 'string' ? e.payload : undefined);

/** Puts `context` in front of a failure's message, keeping a database error's kind and code. */
function withContext(e, context) {
  const db = dbErrorOf(e);
  if (db) return new PluginError({ tag: 'database', val: { ...db, message: `${context}: ${db.message}` } });
  if (e instanceof PluginError && e.payload.tag === 'failed') return failed(`${context}: ${e.payload.val}`);
  return e;
}

function dispose(resource) {
  if (typeof resource[Symbol.dispose] === 'function') resource[Symbol.dispose]();
}

class Connection {
  constructor(session, name, resource) {
    this.session = session;
    this.name = name;
    this.resource = resource;
    this.dialect = resource.dialect();
    this.access = resource.access();
  }

  query(sql, params) {
    return this.resource.query(sql, params).rows;
  }

  scalarInt(sql) {
    const rows = this.query(sql, []);
    if (rows.length === 0) throw failed(`query returned no rows: ${sql}`);
    return intOf(rows[0][0]);
  }

  cursor(sql, params, batchSize) {
    const cursor = new Cursor(this.resource.openCursor(sql, params, batchSize));
    this.session.cursors.push(cursor);
    return cursor;
  }

  bulkInsert(table, columns, rows) {
    if (rows.length === 0) return 0n;
    return this.resource.bulkInsert(table, columns, rows);
  }
}

/** A streaming query result; released as soon as it is exhausted or fails. */
class Cursor {
  constructor(resource) {
    this.resource = resource;
    this.columns = resource.columns();
  }

  /** The next non-empty batch, or null at the end. */
  next() {
    while (this.resource !== null) {
      let batch;
      try {
        batch = this.resource.nextBatch();
      } catch (e) {
        this.close();
        throw e;
      }
      if (batch === undefined) this.close();
      else if (batch.length > 0) return batch;
    }
    return null;
  }

  close() {
    if (this.resource !== null) {
      dispose(this.resource);
      this.resource = null;
    }
  }
}

/**
 * The connections and cursors one export call opened, released when it
 * returns: unfinished cursors first (latest first), as Rust drops them when a
 * unit fails mid-stream, then the connections.
 */
class Session {
  constructor() {
    this.open = [];
    this.cursors = [];
  }

  connection(name) {
    const found = this.open.find((c) => c.name === name);
    if (found) return new Connection(this, name, found.resource);
    const conn = new Connection(this, name, open(name));
    this.open.push(conn);
    return conn;
  }

  close() {
    for (const cursor of this.cursors.reverse()) cursor.close();
    for (const conn of this.open) dispose(conn.resource);
    this.cursors = [];
    this.open = [];
  }
}

function intOf(value) {
  if (value.tag === 'int') return value.val;
  if (value.tag === 'boolean') return value.val ? 1n : 0n;
  throw failed(`cannot decode row: expected an integer, found ${value.tag}`);
}

function textOf(value) {
  if (value.tag === 'null') return null;
  if (typeof value.val === 'string') return value.val;
  throw failed(`cannot decode row: expected text, found ${value.tag}`);
}

const info = (message, fields) => write('info', message, fields);

/** Runs one export call: closes its connections, maps failures to plugin-error. */
function call(body) {
  const session = new Session();
  try {
    return body(session);
  } catch (e) {
    const db = dbErrorOf(e);
    if (db) throw new PluginError({ tag: 'database', val: db });
    throw e;
  } finally {
    session.close();
  }
}

// --- the units ---------------------------------------------------------------

function createTables(session) {
  const target = session.connection('target');
  const statements = CREATE_TABLES[target.dialect];
  [ACCOUNTS, IDENTITIES].forEach((table, i) => {
    try {
      target.resource.execute(statements[i], []);
    } catch (e) {
      throw withContext(e, `creating ${table}`);
    }
  });
  info(`${ACCOUNTS} and ${IDENTITIES} exist`, [['dialect', target.dialect]]);
}

function present(target, presentSql, batch) {
  const first = intOf(batch[0][0]);
  const last = intOf(batch[batch.length - 1][0]);
  const ids = new Set(target.query(presentSql, [int(first), int(last)]).map((row) => intOf(row[0])));
  return { first, last, ids };
}

function account(target, user) {
  const email = textOf(user[2]);
  const normalised = normaliseEmail(email);
  const domain = normalised === null ? null : emailDomain(normalised);
  const signIns = user[5].tag === 'null' ? 0n : intOf(user[5]);
  const locked = textOf(user[6]) !== null || user[7].tag !== 'null';
  return {
    values: [
      int(intOf(user[0])),
      text(textOf(user[1])),
      optionalText(normalised),
      optionalText(domain),
      text(passwordKind(textOf(user[3]), textOf(user[4]))),
      int(signIns),
      { tag: 'boolean', val: locked },
      timestamp(target, user[8]),
      timestamp(target, user[9]),
    ],
    emailChanged: email !== null && normalised !== email,
    withoutEmail: normalised === null,
  };
}

function identity(user) {
  return [
    text(lowerAscii(trimAscii(textOf(user[1])))),
    user[2],
    int(intOf(user[0])),
    optionalText(normaliseEmail(textOf(user[3]))),
  ];
}

/** The next batch of `cursor`, with `context` on a database failure. */
function nextBatch(cursor, context) {
  try {
    return cursor.next();
  } catch (e) {
    throw withContext(e, context);
  }
}

function copyAccounts(session, batchSize) {
  const source = session.connection('source');
  const target = session.connection('target');
  const dialect = target.dialect;
  const total = source.scalarInt(COUNT_USERS);
  const presentSql = presentAccounts(dialect);

  let [done, copied, skipped, normalised, withoutEmail] = [0n, 0n, 0n, 0n, 0n];
  progress(UNIT_ACCOUNTS, 0n, total);
  const cursor = source.cursor(SELECT_USERS, [], batchSize);
  for (let batch; (batch = nextBatch(cursor, 'reading users')) !== null; ) {
    const { first, last, ids } = present(target, presentSql, batch);
    done += BigInt(batch.length);
    const rows = [];
    for (const user of batch) {
      if (ids.has(intOf(user[0]))) {
        skipped += 1n;
        continue;
      }
      const a = account(dialect, user);
      if (a.emailChanged) normalised += 1n;
      if (a.withoutEmail) withoutEmail += 1n;
      rows.push(a.values);
    }
    try {
      copied += target.bulkInsert(ACCOUNTS, ACCOUNT_COLUMNS, rows);
    } catch (e) {
      throw withContext(e, `inserting accounts ${first} to ${last}`);
    }
    progress(UNIT_ACCOUNTS, done, total);
  }
  info(
    `copied ${copied} users into ${ACCOUNTS}; ${skipped} were already present, ` +
      `${normalised} emails were normalised, ${withoutEmail} have no email`,
    [
      ['copied', `${copied}`],
      ['skipped', `${skipped}`],
      ['normalised', `${normalised}`],
      ['without_email', `${withoutEmail}`],
    ],
  );
}

function splitIdentities(session, batchSize) {
  const source = session.connection('source');
  const target = session.connection('target');
  const total = source.scalarInt(COUNT_PROVIDERS);
  const presentSql = presentIdentities(target.dialect);

  let [done, copied, skipped, withoutEmail] = [0n, 0n, 0n, 0n];
  progress(UNIT_IDENTITIES, 0n, total);
  const cursor = source.cursor(SELECT_PROVIDERS, [], batchSize);
  for (let batch; (batch = nextBatch(cursor, 'reading users with a provider')) !== null; ) {
    const { first, last, ids } = present(target, presentSql, batch);
    done += BigInt(batch.length);
    const rows = [];
    for (const user of batch) {
      if (ids.has(intOf(user[0]))) {
        skipped += 1n;
        continue;
      }
      const row = identity(user);
      if (row[3].tag === 'null') withoutEmail += 1n;
      rows.push(row);
    }
    try {
      copied += target.bulkInsert(IDENTITIES, IDENTITY_COLUMNS, rows);
    } catch (e) {
      throw withContext(e, `inserting identities of accounts ${first} to ${last}`);
    }
    progress(UNIT_IDENTITIES, done, total);
  }
  info(
    `split ${copied} identities into ${IDENTITIES}; ${skipped} were already present, ${withoutEmail} have no email`,
    [
      ['copied', `${copied}`],
      ['skipped', `${skipped}`],
      ['without_email', `${withoutEmail}`],
    ],
  );
}

function verifyAll(session, batchSize) {
  const source = session.connection('source');
  const target = session.connection('target');

  const users = source.scalarInt(COUNT_USERS);
  const accounts = target.scalarInt(COUNT_ACCOUNTS);
  report('accounts match users', users === accounts, `users: ${users}, accounts: ${accounts}`);

  const withProvider = source.scalarInt(COUNT_PROVIDERS);
  const identities = target.scalarInt(COUNT_IDENTITIES);
  report(
    'identities match users with a provider',
    withProvider === identities,
    `users with a provider: ${withProvider}, identities: ${identities}`,
  );

  let checked = 0n;
  let wrong = 0n;
  let firstWrong = null;
  const cursor = target.cursor(SELECT_EMAILS, [], batchSize);
  for (let batch; (batch = cursor.next()) !== null; ) {
    for (const row of batch) {
      const id = intOf(row[0]);
      const email = textOf(row[1]);
      checked += 1n;
      if (normaliseEmail(email) !== email) {
        wrong += 1n;
        if (firstWrong === null) firstWrong = id;
      }
    }
  }
  const detail =
    firstWrong === null
      ? `${checked} emails are trimmed and lower-case`
      : `${wrong} of ${checked} emails are not trimmed and lower-case; first: account ${firstWrong}`;
  report('emails are normalised', wrong === 0n, detail);

  const orphans = target.scalarInt(COUNT_ORPHANS);
  report('every identity has an account', orphans === 0n, `${orphans} identities without an account`);
}

// --- the export -----------------------------------------------------------------

function parseBatchSize(value) {
  if (/^[0-9]{1,6}$/.test(value)) {
    const n = Number(value);
    if (n >= 1 && n <= MAX_BATCH) return n;
  }
  throw failed(`config key \`batch_size\` must be a whole number from 1 to ${MAX_BATCH}, got \`${value}\``);
}

// The configuration, kept between calls: one component instance is one plugin run.
let batchSize = null;

function configured() {
  if (batchSize === null) throw failed('run-unit was called before configure');
  return batchSize;
}

function describe() {
  return {
    name: NAME,
    version: VERSION,
    description: "Merges openneo_id's users into normalised accounts and provider identities",
    connections: [
      { name: 'source', access: 'read-only', description: "the openneo_id database, holding Devise's users table", writes: [] },
      { name: 'target', access: 'read-write', description: 'the database receiving accounts and identities', writes: [ACCOUNTS, IDENTITIES] },
    ],
    units: [
      { name: UNIT_CREATE, description: 'creates accounts and identities when absent' },
      { name: UNIT_ACCOUNTS, description: 'copies every user into accounts in id order, email normalised, skipping ids already present' },
      { name: UNIT_IDENTITIES, description: 'copies each provider identity into identities, skipping accounts already split' },
    ],
    config: [{ name: 'batch_size', description: 'rows fetched and inserted per batch', required: false, defaultValue: '500', secret: false }],
  };
}

export const plugin = {
  describe,

  configure(config) {
    call(() => {
      const given = config.find(([key]) => key === 'batch_size');
      batchSize = parseBatchSize(given ? given[1] : '500');
    });
  },

  listUnits() {
    return call(() => describe().units);
  },

  runUnit(unit) {
    call((session) => {
      const size = configured();
      if (unit === UNIT_CREATE) createTables(session);
      else if (unit === UNIT_ACCOUNTS) copyAccounts(session, size);
      else if (unit === UNIT_IDENTITIES) splitIdentities(session, size);
      else throw failed(`unknown unit \`${unit}\` (expected ${UNIT_CREATE}, ${UNIT_ACCOUNTS} or ${UNIT_IDENTITIES})`);
    });
  },

  verify() {
    call((session) => verifyAll(session, configured()));
  },
};
