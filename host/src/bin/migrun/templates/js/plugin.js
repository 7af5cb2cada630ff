// {{name}}: a migrun plugin, in JavaScript, written with the SDK (@migrun/sdk).
//
// It declares one read-write connection, `target`, and two units: one creates
// a table, the other fills it; `verify` checks the result. Replace them with
// your migration: add `readOnly('source', …)`, stream it with
// `connect('source').cursor(sql)` or copy it with `copy(…)`, write with
// `bulkInsert`. migrun's `docs/plugins-js.md` walks through the SDK.
//
// Build:   npm install && npm run build
// Dry-run: migrun {{crate_name}}.wasm --dry-run
// Test:    npm test   (builds, then runs test/ with node --test)

import { definePlugin, readWrite, unit, Config, connect, log, progress, check } from '@migrun/sdk';

const TABLE = 'greetings';

export const plugin = definePlugin({
  name: '{{name}}',
  version: '0.1.0',
  description: 'Writes numbered greetings (a starting point: replace with your migration)',
  connections: [readWrite('target', 'where the greetings go', { writes: [TABLE] })],
  config: { count: Config.int(3, 'how many greetings there should be', { min: 0 }) },
  units: [
    // Each unit runs in a transaction the host commits when it returns (a dry-run rolls it
    // back); an exception rolls it back and fails the run with its message.
    unit('create-table', 'creates the greetings table when absent', () => {
      const target = connect('target');
      target.execute('CREATE TABLE IF NOT EXISTS greetings (id INTEGER PRIMARY KEY, message TEXT NOT NULL)');
      log.info(`${TABLE} exists`, { dialect: target.dialect });
    }),
    unit('fill', 'inserts the greetings that are missing', ({ config }) => {
      const target = connect('target');
      const last = target.scalar('SELECT COALESCE(MAX(id), 0) FROM greetings');
      const rows = [];
      for (let id = last + 1; id <= config.count; id++) rows.push({ id, message: `hello, world #${id}` });
      progress('fill', 0, rows.length);
      const written = target.bulkInsert(TABLE, rows);
      progress('fill', written, rows.length);
      log.info(`wrote ${written} greetings`, { written });
    }),
  ],
  verify({ config }) {
    const n = connect('target').scalar('SELECT COUNT(*) FROM greetings');
    check('every greeting is there', n >= config.count, `${n} greetings, at least ${config.count} expected`);
  },
});
