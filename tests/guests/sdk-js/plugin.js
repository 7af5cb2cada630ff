// A test guest written with the JavaScript SDK (@migrun/sdk), built by
// tests/e2e/support/plugins.rs (`js_plugin`) and run by tests/e2e/sdk_js.rs: the copy
// helper and Backfill crashing after a batch and resuming, values of every kind
// round-tripping through a dialect, and exceptions ending a unit as a plugin-error.
import {
  definePlugin,
  readOnly,
  readWrite,
  unit,
  Config,
  connect,
  copy,
  Backfill,
  log,
  check,
  MigrunError,
  Decimal,
  SqlDate,
  Uuid,
  Json,
  json,
  uuid,
  decimal,
  date,
  engine,
} from '@migrun/sdk';

const PEOPLE = {
  sqlite: 'CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, email TEXT NOT NULL, country TEXT, domain TEXT)',
  postgres: 'CREATE TABLE IF NOT EXISTS people (id BIGINT PRIMARY KEY, email TEXT NOT NULL, country TEXT, domain TEXT)',
  mysql: 'CREATE TABLE IF NOT EXISTS people (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, country VARCHAR(64), domain VARCHAR(255))',
};

// The kinds each dialect stores natively, with a value of each (the column, its DDL type, the value, and what reading it back must give).
const BIG = 2n ** 60n + 1n;
// QuickJS's bindings carry 64-bit integers as Numbers: the SDK refuses one beyond 2^53
// there (checked in `values`), and StarlingMonkey's BigInts carry it exactly.
const EXACT_BIG = engine !== 'quickjs';
const KINDS = [
  ...(EXACT_BIG ? [['big', { sqlite: 'INTEGER', postgres: 'BIGINT', mysql: 'BIGINT' }, BIG, (v) => v === BIG]] : []),
  ['small', { sqlite: 'INTEGER', postgres: 'BIGINT', mysql: 'BIGINT' }, -42, (v) => v === -42],
  ['f', { sqlite: 'REAL', postgres: 'DOUBLE PRECISION', mysql: 'DOUBLE' }, 0.25, (v) => v === 0.25],
  ['t', { sqlite: 'TEXT', postgres: 'TEXT', mysql: 'TEXT' }, 'héllo', (v) => v === 'héllo'],
  ['b', { postgres: 'BOOLEAN' }, true, (v) => v === true],
  ['raw', { sqlite: 'BLOB', postgres: 'BYTEA', mysql: 'VARBINARY(16)' }, new Uint8Array([0, 1, 254, 255]), (v) => v instanceof Uint8Array && v.join() === '0,1,254,255'],
  ['d', { postgres: 'NUMERIC(12,4)', mysql: 'DECIMAL(12,4)' }, decimal('12.3400'), (v) => v instanceof Decimal && String(v) === '12.3400'],
  ['u', { postgres: 'UUID' }, uuid('67E55044-10B1-426F-9247-BB680E5FE0C8'), (v) => v instanceof Uuid && String(v) === '67e55044-10b1-426f-9247-bb680e5fe0c8'],
  ['ts', { postgres: 'TIMESTAMPTZ' }, new SqlDate('timestamptz', '2024-01-02T03:04:05.123456Z'), (v) => v instanceof Date && String(v) === '2024-01-02T03:04:05.123456Z'],
  ['day', { postgres: 'DATE', mysql: 'DATE' }, date('2024-02-29'), (v) => v instanceof SqlDate && v.getUTCDate() === 29 && String(v) === '2024-02-29'],
  ['doc', { postgres: 'JSONB' }, json({ a: 1 }), (v) => v instanceof Json && v.value.a === 1],
  ['tags', { postgres: 'TEXT[]' }, ['x', 'y'], (v) => Array.isArray(v) && v.join() === 'x,y'],
  ['vec', { postgres: 'REAL[]' }, new Float32Array([0.5, -1]), (v) => v instanceof Float32Array && v.join() === '0.5,-1'],
];

function values(target) {
  const kinds = KINDS.filter(([, types]) => types[target.dialect] !== undefined);
  target.execute(`CREATE TABLE kinds (id BIGINT PRIMARY KEY, ${kinds.map(([name, types]) => `${name} ${types[target.dialect]}`).join(', ')})`);
  const row = { id: 1 };
  for (const [name, , value] of kinds) row[name] = value;
  target.bulkInsert('kinds', [row]);
  const read = target.queryOne('SELECT * FROM kinds WHERE id = ' + target.ph(1), [1]);
  for (const [name, , , ok] of kinds) check(`${name} round-trips`, ok(read[name]), `read back ${String(read[name])}`);
  // What was read writes back unchanged: a second row from the first, compared in SQL.
  target.bulkInsert('kinds', [{ ...read, id: 2 }]);
  const same = kinds.map(([name]) => `a.${name} = b.${name}`).join(' AND ');
  const n = target.scalar(`SELECT COUNT(*) FROM kinds a JOIN kinds b ON a.id = 1 AND b.id = 2 WHERE ${same}`);
  check('read values write back unchanged', n === 1, `${n} matching pair`);
  if (EXACT_BIG) {
    // Integers beyond 2^53 bind exactly as parameters.
    const found = target.scalar(`SELECT COUNT(*) FROM kinds WHERE big = ${target.ph(1)}`, [BIG]);
    check('a BigInt parameter matches', found === 2, `${found} rows`);
    return;
  }
  // QuickJS: an integer beyond 2^53 is refused both ways with an error that says so,
  // never rounded; the same value as text is exact.
  const refused = (f) => {
    try {
      f();
      return 'accepted';
    } catch (e) {
      return e instanceof MigrunError && e.kind === 'value' && e.message.includes('beyond 2^53') ? 'refused' : `${e.kind}: ${e.message}`;
    }
  };
  const written = refused(() => target.execute(`UPDATE kinds SET small = ${target.ph(1)} WHERE id = 1`, [BIG]));
  check('a BigInt beyond 2^53 is refused when written', written === 'refused', written);
  const readBack = refused(() => target.scalar(`SELECT ${String(BIG)}`));
  check('an integer beyond 2^53 is refused when read', readBack === 'refused', readBack);
  const text = target.scalar(`SELECT CAST(${String(BIG)} AS ${target.dialect === 'mysql' ? 'CHAR' : 'TEXT'})`);
  check('an integer beyond 2^53 reads exactly as text', text === String(BIG), String(text));
}

export const plugin = definePlugin({
  name: 'sdk-js',
  version: '1.0.0',
  description: 'Exercises the JavaScript SDK',
  connections: [
    readOnly('source', 'holds customers', { optional: true }),
    readWrite('target', 'receives people', { writes: ['people', 'kinds'] }),
  ],
  config: {
    batch: Config.int(4, 'rows per batch', { min: 1 }),
    fail_after: Config.int(0, 'fail after this many batches of a run (0: never)', { min: 0 }),
  },
  units: [
    unit('create', 'creates people', () => {
      const target = connect('target');
      target.execute(PEOPLE[target.dialect]);
      console.log('people exists on', target.dialect);
    }),
    unit('copy', 'copies customers into people, e-mails lower-cased, every tenth skipped', ({ config }) => {
      const counts = copy(connect('source'), connect('target'), {
        select: 'SELECT id, email, country FROM customers',
        key: 'id',
        into: 'people',
        batch: config.batch,
        map: (row) => (row.id % 10 === 0 ? null : { ...row, email: row.email.toLowerCase() }),
        failAfter: config.fail_after || undefined,
      });
      log.info(`copied ${counts.written} customers`, counts);
    }),
    unit('domains', 'fills people.domain from the e-mail, batch by batch', ({ config }) => {
      const target = connect('target');
      const report = new Backfill(target, 'people', { columns: ['email'], batchSize: config.batch, failAfter: config.fail_after || undefined }).run(
        (batch) => {
          target.bulkUpdate(
            'people',
            batch.rows.map((r) => ({ id: r.id, domain: r.email.slice(r.email.indexOf('@') + 1) })),
            { keys: 'id' },
          );
        },
      );
      log.info(`filled ${report.rows} domains`, report);
    }),
    unit('values', 'round-trips a value of every kind the dialect stores', () => values(connect('target'))),
    unit('constraint', 'meets a duplicate key and reports its kind and code', () => {
      const target = connect('target');
      try {
        target.bulkInsert('people', [{ id: 1, email: 'dup@example.com' }]);
        target.execute(`INSERT INTO people (id, email) VALUES (${target.placeholders(2)})`, [1, 'dup@example.com']);
        check('a duplicate is refused', false, 'it was accepted');
      } catch (e) {
        check('a duplicate is refused', e instanceof MigrunError && e.kind === 'constraint' && e.code !== null, `${e.kind} ${e.code}: ${e.message}`);
      }
    }),
    unit('later', 'an async unit: runs under StarlingMonkey, refused under QuickJS', async () => {
      await null;
      connect('target').execute(`UPDATE people SET country = ${connect('target').ph(1)} WHERE id = 1`, ['async']);
    }),
    unit('explode', 'throws a TypeError', () => {
      const nothing = null;
      return nothing.field;
    }),
  ],
  verify() {
    let [checked, upper] = [0, 0];
    for (const { email } of connect('target').cursor('SELECT email FROM people ORDER BY id', [], { batch: 3 }).rows()) {
      checked += 1;
      if (email !== email.toLowerCase()) upper += 1;
    }
    check('e-mails are lower-case', upper === 0, `${upper} of ${checked} are not`);
  },
});
