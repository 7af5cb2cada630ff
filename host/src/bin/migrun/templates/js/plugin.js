// {{name}}: a migrun plugin, in JavaScript.
//
// It declares one read-write connection, `target`, and two units: one creates
// a table, the other fills it; `verify` checks the result. Replace them with
// your migration: add a read-only `source` connection, stream it with
// `openCursor`/`nextBatch` and write with `bulkInsert`. migrun's
// `docs/plugins-js.md` walks through the bindings.
//
// Build:   npm install && npm run build
// Dry-run: migrun {{crate_name}}.wasm --dry-run
//
// Conventions of the bindings (componentize-js, StarlingMonkey): WIT `s64` and
// `u64` are BigInt, `u32` a Number; a variant is `{ tag, val }`; an enum is its
// name as a string; `option<T>` is the value or `undefined`; an import
// returning `result<T, E>` returns T or throws an error whose `payload` is E;
// an export fails by throwing an error whose `payload` is the `plugin-error`.

import { open } from 'migrun:plugin/database@0.2.0';
import { write, progress } from 'migrun:plugin/log@0.2.0';
import { report } from 'migrun:plugin/checks@0.2.0';

const TABLE = 'greetings';

// The configuration, kept between calls (one component instance is one run).
let count = 3n;

/** An error ending the export call with the given `plugin-error`. */
class PluginError extends Error {
  constructor(payload) {
    super(payload.tag === 'failed' ? payload.val : payload.val.message);
    this.payload = payload;
  }
}

const fail = (message) => {
  throw new PluginError({ tag: 'failed', val: message });
};

/** Turns a database error thrown by an import into the export's `plugin-error`. */
function pluginErrors(body) {
  try {
    return body();
  } catch (e) {
    if (e && e.payload && typeof e.payload.kind === 'string') {
      throw new PluginError({ tag: 'database', val: e.payload });
    }
    throw e;
  }
}

/** The first column of the first row of a query returning one integer (a BigInt). */
const scalar = (conn, sql) => conn.query(sql, []).rows[0][0].val;

/**
 * A unit with the contract's defaults: inside the host's transactions, no scope of its
 * own, the operator's timeouts. Set `transactional: false` for a step outside a
 * transaction (CREATE INDEX CONCURRENTLY), `scope` when the configuration makes it a
 * different piece of work, `alwaysRun`, or `skipped` (a reason).
 */
const unit = (name, description) => ({
  name,
  description,
  scope: undefined,
  transactional: true,
  lockTimeoutMs: undefined,
  statementTimeoutMs: undefined,
  alwaysRun: false,
  skipped: undefined,
});

function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    description: 'Writes numbered greetings (a starting point: replace with your migration)',
    connections: [{ name: 'target', access: 'read-write', description: 'where the greetings go', writes: [TABLE], optional: false }],
    units: [
      unit('create-table', 'creates the greetings table when absent'),
      unit('fill', 'inserts the greetings that are missing'),
    ],
    config: [{ name: 'count', description: 'how many greetings there should be', required: false, defaultValue: '3', secret: false }],
  };
}

export const plugin = {
  describe,

  configure(config) {
    const given = config.find(([key]) => key === 'count');
    const value = given ? given[1] : '3';
    if (!/^[0-9]+$/.test(value)) fail(`config key \`count\` must be a whole number, got \`${value}\``);
    count = BigInt(value);
  },

  listUnits() {
    return describe().units;
  },

  runUnit(unit) {
    // The host opened a transaction on `target` for this unit and commits it
    // when the unit returns (a dry-run rolls it back).
    pluginErrors(() => {
      const target = open('target');
      if (unit === 'create-table') {
        target.execute('CREATE TABLE IF NOT EXISTS greetings (id INTEGER PRIMARY KEY, message TEXT NOT NULL)', []);
        write('info', `${TABLE} exists`, [['dialect', target.dialect()]]);
      } else if (unit === 'fill') {
        const last = scalar(target, 'SELECT COALESCE(MAX(id), 0) FROM greetings');
        const rows = [];
        for (let id = last + 1n; id <= count; id++) {
          rows.push([{ tag: 'int', val: id }, { tag: 'text', val: `hello, world #${id}` }]);
        }
        const total = BigInt(rows.length);
        progress('fill', 0n, total);
        const written = rows.length > 0 ? target.bulkInsert(TABLE, ['id', 'message'], rows) : 0n;
        progress('fill', written, total);
        write('info', `wrote ${written} greetings`, [['written', `${written}`]]);
      } else {
        fail(`unknown unit \`${unit}\``);
      }
    });
  },

  verify() {
    pluginErrors(() => {
      const n = scalar(open('target'), 'SELECT COUNT(*) FROM greetings');
      report('every greeting is there', n >= count, `${n} greetings, at least ${count} expected`);
    });
  },
};
