// Declaring a plugin: definePlugin({ name, version, connections, config, units, verify })
// returns the object the component exports as `plugin`.

import { closeAll } from './db.js';
import { QUICKJS } from './engine.js';
import { MigrunError, DB_ERROR_KINDS, pluginErrorOf } from './errors.js';

// ---- connections -------------------------------------------------------------

/** A connection the plugin only reads. Options: `backsUp` (tables backed up all the same), `optional`. */
export function readOnly(name, description = '', { backsUp = [], optional = false } = {}) {
  return { name, access: 'read-only', description, writes: [...backsUp], optional };
}

/**
 * A connection the plugin writes through. `writes`: the tables it writes (backed up before
 * the run's first write, counted in plans; `me_<slug>.memory` patterns and `${key}` config
 * values allowed). `optional`: the plugin runs without it when the operator does not
 * configure it (connectOptional() then says null).
 */
export function readWrite(name, description = '', { writes = [], optional = false } = {}) {
  return { name, access: 'read-write', description, writes: [...writes], optional };
}

// ---- units -------------------------------------------------------------------

/**
 * A unit: a stable `name` (used by `--only` and in reports), what it does, and the function
 * that runs it, called with the plugin's context (`ctx.config`, and whatever the plugin
 * keeps on `ctx`). Attributes (contract 0.2.0):
 * - `transactional: false`: a step outside a transaction (CREATE INDEX CONCURRENTLY):
 *   each statement commits on its own; bulk inserts and checkpoints are refused; after a
 *   failure the whole unit runs again, so every statement must be safe to repeat.
 * - `lockTimeoutMs`, `statementTimeoutMs`: override the operator's `[limits]`.
 * - `alwaysRun: true`: runs on every run, even when the ledger says it finished.
 * - `skipped: 'reason'`: listed, never run.
 * - `scope: 'accounts.email'`: the instance this configuration makes (part of the ledger identity).
 */
export function unit(name, description, run, attributes = {}) {
  if (typeof run !== 'function' && run !== undefined) throw new TypeError(`unit ${name}: the third argument is the function that runs it`);
  return { name, description, run, ...attributes };
}

function unitInfo(u, scope) {
  return {
    name: u.name,
    description: u.description ?? '',
    scope: u.scope ?? scope ?? undefined,
    transactional: u.transactional !== false,
    lockTimeoutMs: millis(u.lockTimeoutMs),
    statementTimeoutMs: millis(u.statementTimeoutMs),
    alwaysRun: u.alwaysRun === true,
    skipped: u.skipped ?? undefined,
  };
}

const millis = (ms) => (ms === undefined || ms === null ? undefined : Math.min(Math.max(0, Math.round(Number(ms))), 4294967295));

// ---- configuration -----------------------------------------------------------

function key(type, defaultValue, description, options = {}) {
  return { type, default: defaultValue, description: description ?? '', ...options };
}

/**
 * Configuration keys by type, each with its default (`undefined`: none) and description:
 * `config: { batch_size: Config.int(500, 'rows per batch', { min: 1 }) }`. The plugin reads
 * them parsed, as `ctx.config.batch_size`. Options: `required: true` (the run must supply
 * it), `secret: true` (reports and journals redact it), `min`/`max` for numbers,
 * `choices` for strings.
 */
export const Config = Object.freeze({
  /** A whole number, read as a Number (a safe integer). */
  int: (defaultValue, description, options) => key('int', defaultValue, description, options),
  /** A number, read as a Number. */
  float: (defaultValue, description, options) => key('float', defaultValue, description, options),
  /** Text, read as a string. */
  string: (defaultValue, description, options) => key('string', defaultValue, description, options),
  /** true/false (also yes/no, on/off, 1/0), read as a boolean. */
  bool: (defaultValue, description, options) => key('bool', defaultValue, description, options),
  /** A secret string the run must supply (redacted in reports and journals). */
  secret: (description, options) => key('string', undefined, description, { required: true, secret: true, ...options }),
});

function configKey(name, k) {
  return {
    name,
    description: k.description,
    required: k.required === true,
    defaultValue: k.default === undefined || k.default === null ? undefined : String(k.default),
    secret: k.secret === true,
  };
}

function parseConfig(name, k, text) {
  const bad = (expected) => new MigrunError(`config key \`${name}\` must be ${expected}, got \`${text}\``);
  let value;
  const range = k.min !== undefined && k.max !== undefined ? ` from ${k.min} to ${k.max}` : k.min !== undefined ? ` of at least ${k.min}` : k.max !== undefined ? ` of at most ${k.max}` : '';
  switch (k.type) {
    case 'int':
      if (!/^-?[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) throw bad(`a whole number${range}`);
      value = Number(text);
      if ((k.min !== undefined && value < k.min) || (k.max !== undefined && value > k.max)) throw bad(`a whole number${range}`);
      break;
    case 'float':
      value = Number(text);
      if (text.trim() === '' || Number.isNaN(value)) throw bad('a number');
      break;
    case 'bool': {
      const t = text.trim().toLowerCase();
      if (['true', 'yes', 'on', '1'].includes(t)) value = true;
      else if (['false', 'no', 'off', '0'].includes(t)) value = false;
      else throw bad('true or false (or yes/no, on/off, 1/0)');
      break;
    }
    default:
      value = text;
      if (k.choices && !k.choices.includes(value)) throw bad(`one of ${k.choices.join(', ')}`);
  }
  if ((k.min !== undefined && value < k.min) || (k.max !== undefined && value > k.max)) throw bad(`a number${range}`);
  return value;
}

// ---- the export ----------------------------------------------------------------

/**
 * The error an export throws under StarlingMonkey: componentize-js turns its `payload`
 * into the `plugin-error`. QuickJS takes the thrown value itself as the error.
 */
class PluginCallError extends Error {
  constructor(payload) {
    super(payload.tag === 'failed' ? payload.val : payload.val.message);
    this.payload = payload;
  }
}

function exportError(e) {
  const payload = pluginErrorOf(e);
  if (payload.tag === 'database' && !DB_ERROR_KINDS.includes(payload.val.kind)) payload.val.kind = 'other';
  return QUICKJS ? payload : new PluginCallError(payload);
}

/**
 * Runs one export call: releases the connections and cursors it opened when it returns,
 * and turns any exception into the contract's plugin-error (never a trap). A unit may be
 * `async` under StarlingMonkey: the call then ends when its promise settles. QuickJS's
 * synchronous runtime would return before the promise runs (the rest of the unit would
 * silently never happen), so there a promise fails the call, which rolls back what ran.
 */
function call(body, keep = false) {
  let result;
  try {
    result = body();
  } catch (e) {
    closeAll();
    throw exportError(e);
  }
  const isPromise = result !== null && typeof result === 'object' && typeof result.then === 'function';
  if (isPromise && QUICKJS) {
    closeAll();
    throw exportError(
      new MigrunError(
        'an async function (one that returns a Promise) cannot run in a QuickJS build of this plugin, whose calls are ' +
          'synchronous: write it as a plain function (every migrun call returns its result directly, nothing needs ' +
          'await), or build the plugin with componentize-js (StarlingMonkey)',
      ),
    );
  }
  if (isPromise) {
    return result.then(
      (v) => {
        closeAll();
        return keep ? v : undefined;
      },
      (e) => {
        closeAll();
        throw exportError(e);
      },
    );
  }
  closeAll();
  return keep ? result : undefined;
}

/**
 * Declares a plugin and returns the object to export as `plugin`:
 *
 *   export const plugin = definePlugin({
 *     name: 'copy-people', version: '1.0.0', description: 'Copies users into people',
 *     connections: [readOnly('source', 'where users live'), readWrite('target', 'where people go', { writes: ['people'] })],
 *     config: { batch_size: Config.int(1000, 'rows per batch', { min: 1 }) },
 *     units: [unit('copy', 'copies every user', (ctx) => { … })],
 *     verify(ctx) { … },
 *   });
 *
 * Optional members: `configure(ctx)` (called once after the configuration is parsed, to
 * check it or prepare state on `ctx`), `scope(ctx)` (the instance this configuration
 * makes of every unit without its own scope), `listUnits(ctx)` and `runUnit(name, ctx)`
 * for units derived from data.
 */
export function definePlugin(def) {
  for (const field of ['name', 'version']) {
    if (typeof def[field] !== 'string' || def[field] === '') throw new TypeError(`definePlugin: \`${field}\` is required`);
  }
  const units = def.units ?? [];
  const configKeys = def.config ?? {};
  let ctx = null;

  const info = () => ({
    name: def.name,
    version: def.version,
    description: def.description ?? '',
    connections: (def.connections ?? []).map((c) => ({ ...c, writes: [...c.writes] })),
    units: units.map((u) => unitInfo(u)),
    config: Object.entries(configKeys).map(([name, k]) => configKey(name, k)),
  });

  const configured = (what) => {
    if (ctx === null) throw new MigrunError(`${what} was called before configure`);
    return ctx;
  };

  return {
    describe: info,

    configure(pairs) {
      return call(() => {
        const given = new Map(pairs);
        const config = {};
        for (const [name, k] of Object.entries(configKeys)) {
          const text = given.has(name) ? given.get(name) : k.default === undefined || k.default === null ? undefined : String(k.default);
          if (text === undefined) {
            if (k.required) throw new MigrunError(`config key \`${name}\` is required but was not given`);
            config[name] = null;
          } else {
            config[name] = parseConfig(name, k, text);
          }
        }
        const next = { config: Object.freeze(config) };
        ctx = next;
        if (typeof def.configure === 'function') {
          try {
            return def.configure(next);
          } catch (e) {
            ctx = null;
            throw e;
          }
        }
        return undefined;
      });
    },

    listUnits() {
      return call(() => {
        const c = configured('list-units');
        if (typeof def.listUnits === 'function') return def.listUnits(c).map((u) => unitInfo(u));
        const scope = typeof def.scope === 'function' ? def.scope(c) ?? undefined : undefined;
        return units.map((u) => unitInfo(u, scope));
      }, true);
    },

    runUnit(name) {
      return call(() => {
        const c = configured('run-unit');
        const found = units.find((u) => u.name === name && typeof u.run === 'function');
        if (found) return found.run(c);
        if (typeof def.runUnit === 'function') return def.runUnit(name, c);
        throw new MigrunError(`unknown unit \`${name}\` (this plugin runs: ${units.map((u) => u.name).join(', ')})`);
      });
    },

    verify() {
      return call(() => {
        const c = configured('verify');
        return typeof def.verify === 'function' ? def.verify(c) : undefined;
      });
    },
  };
}
