// The SDK as it runs under QuickJS (componentize-qjs), in Node: `__cqjs` is the global
// componentize-qjs defines, set here before the SDK is loaded (its own process: `npm
// test` runs each test file separately). QuickJS's bindings carry 64-bit integers as
// Numbers, throw an import's error value itself and take a thrown value as an export's
// error; the e2e suite runs the same on a real QuickJS build (tests/e2e/sdk_js.rs).
import { test } from 'node:test';
import assert from 'node:assert/strict';

globalThis.__cqjs = {};
const { host } = await import('./fake-host.js');
const sdk = await import('../src/index.js');
const { decode, encode } = await import('../src/values.js');

test('the engine is QuickJS', () => {
  assert.equal(sdk.engine, 'quickjs');
});

test('ints are Numbers both ways; beyond 2^53 they are refused, never rounded', () => {
  assert.equal(decode({ tag: 'int', val: 42 }), 42);
  assert.deepEqual(encode(42), { tag: 'int', val: 42 });
  assert.deepEqual(encode(-(2 ** 53 - 1)), { tag: 'int', val: -(2 ** 53 - 1) });
  assert.deepEqual(encode(42n), { tag: 'int', val: 42 });
  const beyond = (e) => e instanceof sdk.MigrunError && e.kind === 'value' && /beyond 2\^53/.test(e.message) && /CAST/.test(e.message);
  assert.throws(() => decode({ tag: 'int', val: 2 ** 60 }), beyond);
  assert.throws(() => encode(2n ** 60n + 1n), beyond);
  assert.throws(() => encode(2 ** 60), /beyond 2\^53/);
  // A BigInt from the host (a checkpoint's key) still decodes.
  assert.equal(decode({ tag: 'int', val: 7n }), 7);
});

test('errors: an import throws its value, an export throws the plugin-error itself', () => {
  const plugin = sdk.definePlugin({
    name: 'q',
    version: '1.0.0',
    description: 'quickjs',
    connections: [sdk.readWrite('target', 'writes', { writes: ['t'] })],
    units: [
      sdk.unit('insert', 'meets a duplicate', () => sdk.connect('target').execute('INSERT')),
      sdk.unit('later', 'async', async () => {}),
    ],
  });
  plugin.configure([]);
  const failing = {
    dialect: () => 'sqlite',
    access: () => 'read-write',
    execute: () => {
      throw { kind: 'constraint', code: '2067', message: 'UNIQUE constraint failed' };
    },
  };
  host.answer = (name) => (name === 'open' ? failing : undefined);
  assert.throws(
    () => plugin.runUnit('insert'),
    (e) => !(e instanceof Error) && e.tag === 'database' && e.val.kind === 'constraint' && e.val.code === '2067',
  );
  assert.throws(
    () => plugin.runUnit('later'),
    (e) => e.tag === 'failed' && /cannot run in a QuickJS build/.test(e.val),
  );
});

test('progress counts are Numbers', () => {
  host.calls = [];
  sdk.progress('copy', 5, 10n);
  assert.deepEqual(host.calls, [['progress', 'copy', 5, 10]]);
});

test('pause (a timer) is refused before any work', () => {
  host.calls = [];
  const conn = { dialect: 'sqlite' };
  assert.throws(() => new sdk.Backfill(conn, 'people', { key: 'id', pause: 10 }).run(() => {}), /`pause` needs a timer/);
  assert.throws(() => sdk.copy(conn, conn, { select: 'SELECT 1', key: 'id', into: 'people', pause: 5 }), /copy into people: `pause` needs a timer/);
  assert.deepEqual(host.calls, []);
});

test('console writes log lines (QuickJS has no console of its own)', async () => {
  const { consoleOverLog } = await import('../src/log.js');
  const lines = [];
  const target = Object.fromEntries(['trace', 'debug', 'info', 'warn', 'error'].map((l) => [l, (m) => lines.push([l, m])]));
  const c = consoleOverLog(target);
  c.log('copied', 3, 'rows', { table: 'people' });
  c.warn(new TypeError('bad'));
  c.error('id', 9007199254740993n);
  c.debug([1, 2], new Uint8Array([0, 255]));
  assert.deepEqual(lines, [
    ['info', 'copied 3 rows {"table":"people"}'],
    ['warn', 'TypeError: bad'],
    ['error', 'id 9007199254740993'],
    ['debug', '[1,2] 00ff'],
  ]);
});
