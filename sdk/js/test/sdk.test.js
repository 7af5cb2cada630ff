// Unit tests of the SDK's pure parts, in Node, against fake-host.js (`npm test` in sdk/js).
// What crosses into a real host is tested end to end by the repository's e2e suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { host } from './fake-host.js';
import {
  definePlugin,
  readOnly,
  readWrite,
  unit,
  Config,
  connect,
  copy,
  Backfill,
  MigrunError,
  SqlDate,
  Decimal,
  Uuid,
  float,
  timestamp,
} from '../src/index.js';
import { decode, encode } from '../src/values.js';
import { decodeCopyState, encodeCopyState, parseExactJson } from '../src/backfill.js';

const int = (n) => ({ tag: 'int', val: BigInt(n) });
const text = (s) => ({ tag: 'text', val: s });

test('ints are Numbers when safe and BigInts beyond 2^53, both ways', () => {
  assert.equal(decode(int(42)), 42);
  assert.equal(decode({ tag: 'int', val: 9007199254740993n }), 9007199254740993n);
  assert.deepEqual(encode(42), int(42));
  assert.deepEqual(encode(9007199254740993n), { tag: 'int', val: 9007199254740993n });
  assert.deepEqual(encode(1.5), { tag: 'float', val: 1.5 });
  assert.deepEqual(encode(float(3)), { tag: 'float', val: 3 });
  assert.throws(() => encode(2 ** 60), /beyond 2\^53/);
  assert.throws(() => encode(2n ** 64n), /64-bit/);
});

test('temporal, decimal and uuid values keep their kind and exact text', () => {
  const ts = decode({ tag: 'timestamptz', val: '2024-01-02T03:04:05.123456Z' });
  assert.ok(ts instanceof Date && ts instanceof SqlDate);
  assert.equal(ts.getTime(), Date.UTC(2024, 0, 2, 3, 4, 5, 123));
  assert.deepEqual(encode(ts), { tag: 'timestamptz', val: '2024-01-02T03:04:05.123456Z' });
  ts.setUTCFullYear(2025);
  assert.deepEqual(encode(ts), { tag: 'timestamptz', val: '2025-01-02T03:04:05.123000Z' });
  assert.deepEqual(encode(new Date(Date.UTC(2024, 5, 1))), { tag: 'timestamptz', val: '2024-06-01T00:00:00Z' });
  const day = decode({ tag: 'date', val: '2024-02-29' });
  assert.equal(day.getUTCDate(), 29);
  assert.deepEqual(encode(day), { tag: 'date', val: '2024-02-29' });
  assert.deepEqual(encode(timestamp('2024-01-02 03:04:05.5')), { tag: 'timestamp', val: '2024-01-02T03:04:05.5' });
  const d = decode({ tag: 'decimal', val: '-12.3400' });
  assert.ok(d instanceof Decimal);
  assert.equal(Number(d), -12.34);
  assert.equal(`${d}`, '-12.3400');
  assert.deepEqual(encode(d), { tag: 'decimal', val: '-12.3400' });
  assert.deepEqual(encode(new Uuid('67E55044-10B1-426F-9247-BB680E5FE0C8')), { tag: 'uuid', val: '67e55044-10b1-426f-9247-bb680e5fe0c8' });
  assert.deepEqual(encode(new Uint8Array([1, 2])).tag, 'bytes');
  assert.deepEqual(encode([0.5, 1]).tag, 'float32-array');
  assert.deepEqual(encode(['a']), { tag: 'text-array', val: ['a'] });
  assert.equal(encode(null).tag, 'null');
  assert.equal(encode(undefined).tag, 'null');
});

test('the copy checkpoint is compact JSON with exact integers', () => {
  const state = encodeCopyState('customers', [9007199254740993n, 'b"'], 1500);
  assert.equal(state, '{"copy":"customers","last_key":[9007199254740993,"b\\""],"copied":1500}');
  assert.deepEqual(decodeCopyState(state), { copy: 'customers', lastKey: [9007199254740993n, 'b"'], copied: 1500 });
  assert.deepEqual(parseExactJson('{"a":[1,-2.5e3,"12345678901234567890"]}'), { a: [1, -2500, '12345678901234567890'] });
  assert.equal(decodeCopyState('backfill/1\nx'), null);
});

/** A fake connection over in-memory tables, understanding the SQL the helpers send. */
function fakeDb(tables, dialect = 'sqlite') {
  return {
    dialect: () => dialect,
    access: () => 'read-write',
    query(sql, params) {
      host.calls.push(['query', sql, params]);
      const count = /^SELECT COUNT\(\*\) FROM \((SELECT .* FROM (\w+))\) AS migrun_src$/.exec(sql) ?? /^SELECT COUNT\(\*\) FROM "(\w+)"$/.exec(sql);
      if (count) {
        const table = count[2] ?? count[1];
        return { columns: [{ name: 'n', typeName: 'INTEGER' }], rows: [[int(tables[table].length)]] };
      }
      const page = /FROM (?:\(SELECT \* FROM (\w+)\) AS migrun_src|"(\w+)")(?: WHERE "id" > [?$1]+)? ORDER BY "id" LIMIT (\d+)$/.exec(sql);
      if (page) {
        const rows = tables[page[1] ?? page[2]];
        const after = params.length ? Number(params[0].val) : -Infinity;
        const out = rows.filter((r) => r.id > after).slice(0, Number(page[3]));
        const names = Object.keys(rows[0]);
        return { columns: names.map((name) => ({ name, typeName: 'x' })), rows: out.map((r) => names.map((k) => encode(r[k]))) };
      }
      throw new Error(`fake db: unexpected SQL ${sql}`);
    },
    bulkInsert(table, columns, rows) {
      host.calls.push(['bulkInsert', table, columns, rows.length]);
      for (const r of rows) tables[table].push(Object.fromEntries(columns.map((c, i) => [c, decode(r[i])])));
      return BigInt(rows.length);
    },
  };
}

function withHost(tables, body) {
  host.calls = [];
  const db = fakeDb(tables);
  host.answer = (name) => (name === 'open' ? db : undefined);
  return body();
}

test('a plugin declared with definePlugin describes itself, parses its config and maps errors', () => {
  const ran = [];
  const plugin = definePlugin({
    name: 'demo',
    version: '1.2.3',
    description: 'a demo',
    connections: [readOnly('source', 'reads'), readWrite('target', 'writes', { writes: ['t'] })],
    config: { batch_size: Config.int(500, 'rows per batch', { min: 1, max: 1000 }), token: Config.secret('a token'), loud: Config.bool(false, 'say more') },
    units: [
      unit('a', 'first', (ctx) => ran.push(['a', ctx.config.batch_size, ctx.config.loud])),
      unit('b', 'second', () => {
        throw new MigrunError('duplicate key', { kind: 'constraint', code: '23505' });
      }, { transactional: false, lockTimeoutMs: 2000 }),
      unit('c', 'third', () => {
        null.x; // eslint-disable-line no-unused-expressions
      }),
    ],
  });
  const info = plugin.describe();
  assert.deepEqual(info.connections[1], { name: 'target', access: 'read-write', description: 'writes', writes: ['t'], optional: false });
  assert.deepEqual(info.config[0], { name: 'batch_size', description: 'rows per batch', required: false, defaultValue: '500', secret: false });
  assert.equal(info.config[1].secret, true);
  assert.equal(info.units[1].transactional, false);
  assert.equal(info.units[1].lockTimeoutMs, 2000);

  assert.throws(() => plugin.runUnit('a'), (e) => e.payload.tag === 'failed' && /before configure/.test(e.payload.val));
  assert.throws(
    () => plugin.configure([['batch_size', '0'], ['token', 's']]),
    (e) => e.payload.val === 'config key `batch_size` must be a whole number from 1 to 1000, got `0`',
  );
  assert.throws(() => plugin.configure([]), (e) => /`token` is required/.test(e.payload.val));
  plugin.configure([['token', 's'], ['loud', 'yes']]);
  assert.equal(plugin.listUnits().length, 3);
  withHost({}, () => plugin.runUnit('a'));
  assert.deepEqual(ran, [['a', 500, true]]);
  assert.throws(
    () => plugin.runUnit('b'),
    (e) => e.payload.tag === 'database' && e.payload.val.kind === 'constraint' && e.payload.val.code === '23505',
  );
  assert.throws(() => plugin.runUnit('c'), (e) => e.payload.tag === 'failed' && /^TypeError: /.test(e.payload.val));
  assert.throws(() => plugin.runUnit('zz'), (e) => e.payload.val === 'unknown unit `zz` (this plugin runs: a, b, c)');
});

test('copy pages by key, checkpoints each batch and resumes after the last one', () => {
  const source = [];
  for (let id = 1; id <= 25; id++) source.push({ id, email: `User${id}@Example.com` });
  const tables = { customers: source, people: [] };
  host.state = null;
  const run = (failAfter) =>
    withHost(tables, () => {
      const src = connect('source');
      return copy(src, src, {
        select: 'SELECT * FROM customers',
        key: 'id',
        into: 'people',
        batch: 10,
        map: (row) => (row.id % 5 === 0 ? null : { id: row.id, email: row.email.toLowerCase() }),
        failAfter,
      });
    });
  assert.throws(() => run(2), /stopping the copy people after 2 batches as configured/);
  assert.equal(host.state, '{"copy":"people","last_key":[20],"copied":16}');
  assert.equal(tables.people.length, 16);
  const counts = run();
  assert.deepEqual(counts, { read: 5, written: 4, skipped: 1, batches: 1, copied: 20, resumedAfter: [20] });
  assert.equal(tables.people.length, 20);
  assert.equal(tables.people[19].email, 'user24@example.com');
  assert.ok(host.calls.some((c) => c[0] === 'query' && /WHERE "id" > \?/.test(c[1]) && c[2][0].val === 20n));
});

test('Backfill walks in key order with the Rust checkpoint format', () => {
  const rows = [];
  for (let id = 1; id <= 7; id++) rows.push({ id, v: `x${id}` });
  const tables = { items: rows };
  host.state = null;
  const seen = [];
  const report = withHost(tables, () =>
    new Backfill(connect('app'), 'items', { key: 'id', batchSize: 3, task: 'fill items' }).run((batch) => {
      seen.push([batch.number, batch.keys, batch.range(1)]);
    }),
  );
  assert.deepEqual(report, { rows: 7, batches: 3, resumedAfter: null });
  assert.deepEqual(seen[1], [2, [4, 5, 6], { sql: '"id" > ? AND "id" <= ?', params: [3, 6] }]);
  assert.equal(host.state, 'backfill/1\nfill items\n7\n3\nint\n7');
});

test('rows decode into objects keyed by column, whatever the names', async () => {
  const { decodeRows } = await import('../src/db.js');
  const raw = [[int(1), text('a'), { tag: 'null' }, { tag: 'decimal', val: '1.50' }]];
  const [row] = decodeRows(raw, ['id', 'name', 'gone', 'price']);
  assert.deepEqual(Object.keys(row), ['id', 'name', 'gone', 'price']);
  assert.equal(row.id, 1);
  assert.equal(row.name, 'a');
  assert.equal(row.gone, null);
  assert.ok(row.price instanceof Decimal && String(row.price) === '1.50');
  // The same name twice: the last value, in the first place (as assigning them would).
  assert.deepEqual(decodeRows([[int(1), int(2), text('x')]], ['a', 'b', 'a']), [{ a: 'x', b: 2 }]);
  // Names that mean something in an object literal, or need quoting, stay plain keys.
  const odd = decodeRows([[int(1), text('p'), text('q')]], ['__proto__', 'with space', '1']);
  assert.equal(Object.getPrototypeOf(odd[0]), Object.prototype);
  assert.equal(odd[0]['__proto__'], 1);
  assert.equal(odd[0]['with space'], 'p');
  assert.equal(odd[0]['1'], 'q');
});
