// accounts-merge, in JavaScript: the twin of plugins/accounts-merge (Rust), written with
// the JavaScript SDK (@migrun/sdk, sdk/js) against contract 0.2.0.
//
// Reads openneo_id's Devise `users` through a read-only `source` and writes
// `accounts` (one per user, email trimmed and lower-cased, password reduced
// to its kind) and `identities` (one per provider identity) through a
// read-write `target`. The behaviour, the SQL text and the order of every
// host call are those of the Rust plugin, whose `src/lib.rs` specifies them;
// the conformance suite (tests/e2e/conformance.rs) holds the three twins to it.
//
// Build (from this folder): `npm install --no-save && npm run build`: esbuild bundles this
// module with the SDK into dist/plugin.js, and componentize-js turns that into
// accounts_merge_js.wasm (see package.json and docs/plugins-js.md).

import { definePlugin, readOnly, readWrite, unit, Config, connect, log, progress, check, withContext, SqlDate, timestamp } from '@migrun/sdk';

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

const presentAccounts = (conn) => `SELECT id FROM accounts WHERE id BETWEEN ${conn.ph(1)} AND ${conn.ph(2)}`;
const presentIdentities = (conn) => `SELECT account_id FROM identities WHERE account_id BETWEEN ${conn.ph(1)} AND ${conn.ph(2)}`;

// --- normalisation: ASCII only, as in src/normalise.rs ------------------------

// Rust's char::is_ascii_whitespace (space, \t, \n, \f, \r); JS's own trim() also strips
// Unicode spaces. Two character tests for most text, where an anchored regex scans it all.
const isAsciiSpace = (c) => c === 32 || c === 9 || c === 10 || c === 12 || c === 13;
function trimAscii(s) {
  let start = 0;
  let end = s.length;
  while (start < end && isAsciiSpace(s.charCodeAt(start))) start++;
  while (end > start && isAsciiSpace(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}
// A-Z only: toLowerCase() also maps non-ASCII letters, so it is used (it is native, a
// callback per letter is not) only on text that is all ASCII.
const NON_ASCII = /[^\x00-\x7f]/;
const lowerAscii = (s) =>
  NON_ASCII.test(s) ? s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32)) : s.toLowerCase();

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

const BCRYPT_PREFIXES = ['$2a$', '$2b$', '$2y$'];

function passwordKind(encrypted, salt) {
  if (encrypted === null || encrypted === '') return 'none';
  if (salt !== null && salt !== '') return 'legacy-sha';
  if (BCRYPT_PREFIXES.some((p) => encrypted.startsWith(p))) return 'bcrypt';
  return 'unknown';
}

/** A timestamp read from `source`, as `target` holds it: unchanged into SQLite, zone-less elsewhere. */
function asTargetTimestamp(dialect, value) {
  if (dialect === 'sqlite' || value === null) return value;
  if (typeof value === 'string') return timestamp(value);
  if (value instanceof SqlDate && value.kind === 'timestamptz') return timestamp(value.text.endsWith('Z') ? value.text.slice(0, -1) : value.text);
  return value;
}

/** A row of `accounts` (in ACCOUNT_COLUMNS order) for a `users` row. */
function account(dialect, user) {
  const email = user.email;
  const normalised = normaliseEmail(email);
  return {
    values: [
      user.id,
      user.name,
      normalised,
      normalised === null ? null : emailDomain(normalised),
      passwordKind(user.encrypted_password, user.password_salt),
      user.sign_in_count ?? 0,
      user.unlock_token !== null || user.locked_at !== null,
      asTargetTimestamp(dialect, user.created_at),
      asTargetTimestamp(dialect, user.last_sign_in_at),
    ],
    emailChanged: email !== null && normalised !== email,
    withoutEmail: normalised === null,
  };
}

/** A row of `identities` (in IDENTITY_COLUMNS order) for a `users` row with a provider. */
const identity = (user) => [lowerAscii(trimAscii(user.provider)), user.uid, user.id, normaliseEmail(user.neopass_email)];

// --- the units ---------------------------------------------------------------

function createTables() {
  const target = connect('target');
  const statements = CREATE_TABLES[target.dialect];
  [ACCOUNTS, IDENTITIES].forEach((table, i) => withContext(`creating ${table}`, () => target.execute(statements[i])));
  log.info(`${ACCOUNTS} and ${IDENTITIES} exist`, { dialect: target.dialect });
}

/** The first and last id of a batch, and the ids `target` already holds between them. */
function present(target, presentSql, batch, idColumn) {
  const first = batch[0].id;
  const last = batch[batch.length - 1].id;
  const ids = new Set(target.query(presentSql, [first, last]).map((row) => row[idColumn]));
  return { first, last, ids };
}

function copyAccounts(batchSize) {
  const source = connect('source');
  const target = connect('target');
  const dialect = target.dialect;
  const total = source.scalar(COUNT_USERS);
  const presentSql = presentAccounts(target);

  let [done, copied, skipped, normalised, withoutEmail] = [0, 0, 0, 0, 0];
  progress(UNIT_ACCOUNTS, 0, total);
  const cursor = source.cursor(SELECT_USERS, [], { batch: batchSize });
  for (let batch; (batch = withContext('reading users', () => cursor.next())) !== null; ) {
    const { first, last, ids } = present(target, presentSql, batch, 'id');
    done += batch.length;
    const rows = [];
    for (const user of batch) {
      if (ids.has(user.id)) {
        skipped += 1;
        continue;
      }
      const a = account(dialect, user);
      if (a.emailChanged) normalised += 1;
      if (a.withoutEmail) withoutEmail += 1;
      rows.push(a.values);
    }
    copied += withContext(`inserting accounts ${first} to ${last}`, () => target.bulkInsert(ACCOUNTS, rows, { columns: ACCOUNT_COLUMNS }));
    progress(UNIT_ACCOUNTS, done, total);
  }
  log.info(
    `copied ${copied} users into ${ACCOUNTS}; ${skipped} were already present, ` +
      `${normalised} emails were normalised, ${withoutEmail} have no email`,
    { copied, skipped, normalised, without_email: withoutEmail },
  );
}

function splitIdentities(batchSize) {
  const source = connect('source');
  const target = connect('target');
  const total = source.scalar(COUNT_PROVIDERS);
  const presentSql = presentIdentities(target);

  let [done, copied, skipped, withoutEmail] = [0, 0, 0, 0];
  progress(UNIT_IDENTITIES, 0, total);
  const cursor = source.cursor(SELECT_PROVIDERS, [], { batch: batchSize });
  for (let batch; (batch = withContext('reading users with a provider', () => cursor.next())) !== null; ) {
    const { first, last, ids } = present(target, presentSql, batch, 'account_id');
    done += batch.length;
    const rows = [];
    for (const user of batch) {
      if (ids.has(user.id)) {
        skipped += 1;
        continue;
      }
      const row = identity(user);
      if (row[3] === null) withoutEmail += 1;
      rows.push(row);
    }
    copied += withContext(`inserting identities of accounts ${first} to ${last}`, () =>
      target.bulkInsert(IDENTITIES, rows, { columns: IDENTITY_COLUMNS }),
    );
    progress(UNIT_IDENTITIES, done, total);
  }
  log.info(`split ${copied} identities into ${IDENTITIES}; ${skipped} were already present, ${withoutEmail} have no email`, {
    copied,
    skipped,
    without_email: withoutEmail,
  });
}

function verifyAll(batchSize) {
  const source = connect('source');
  const target = connect('target');

  const users = source.scalar(COUNT_USERS);
  const accounts = target.scalar(COUNT_ACCOUNTS);
  check('accounts match users', users === accounts, `users: ${users}, accounts: ${accounts}`);

  const withProvider = source.scalar(COUNT_PROVIDERS);
  const identities = target.scalar(COUNT_IDENTITIES);
  check(
    'identities match users with a provider',
    withProvider === identities,
    `users with a provider: ${withProvider}, identities: ${identities}`,
  );

  // Streamed and checked with the very function that normalised them.
  let [checked, wrong, firstWrong] = [0, 0, null];
  for (const { id, email } of target.cursor(SELECT_EMAILS, [], { batch: batchSize }).rows()) {
    checked += 1;
    if (normaliseEmail(email) !== email) {
      wrong += 1;
      if (firstWrong === null) firstWrong = id;
    }
  }
  const detail =
    firstWrong === null
      ? `${checked} emails are trimmed and lower-case`
      : `${wrong} of ${checked} emails are not trimmed and lower-case; first: account ${firstWrong}`;
  check('emails are normalised', wrong === 0, detail);

  const orphans = target.scalar(COUNT_ORPHANS);
  check('every identity has an account', orphans === 0, `${orphans} identities without an account`);
}

// --- the plugin --------------------------------------------------------------------

export const plugin = definePlugin({
  name: NAME,
  version: VERSION,
  description: "Merges openneo_id's users into normalised accounts and provider identities",
  connections: [
    readOnly('source', "the openneo_id database, holding Devise's users table"),
    readWrite('target', 'the database receiving accounts and identities', { writes: [ACCOUNTS, IDENTITIES] }),
  ],
  config: { batch_size: Config.int(500, 'rows fetched and inserted per batch', { min: 1, max: MAX_BATCH }) },
  units: [
    unit(UNIT_CREATE, 'creates accounts and identities when absent', createTables),
    unit(UNIT_ACCOUNTS, 'copies every user into accounts in id order, email normalised, skipping ids already present', ({ config }) =>
      copyAccounts(config.batch_size),
    ),
    unit(UNIT_IDENTITIES, 'copies each provider identity into identities, skipping accounts already split', ({ config }) =>
      splitIdentities(config.batch_size),
    ),
  ],
  verify: ({ config }) => verifyAll(config.batch_size),
});
