// Structured logging, progress, checks and checkpoints.

import * as host from './host.js';
import { toMigrunError } from './errors.js';
import { describe } from './values.js';
import { QUICKJS } from './engine.js';

function fieldsOf(fields) {
  if (!fields) return [];
  const out = [];
  for (const k of Object.keys(fields)) out.push([k, describe(fields[k])]);
  return out;
}

function write(level, message, fields) {
  host.write(level, String(message), fieldsOf(fields));
}

/**
 * Leveled messages with structured fields, shown by the CLI and kept in the journal:
 * `log.info('copied 500 rows', { table: 'people', batch: 3 })`. Repeated warnings are one
 * line of the report with a count and the fields of their first rows.
 */
export const log = Object.freeze({
  trace: (message, fields) => write('trace', message, fields),
  debug: (message, fields) => write('debug', message, fields),
  info: (message, fields) => write('info', message, fields),
  warn: (message, fields) => write('warn', message, fields),
  error: (message, fields) => write('error', message, fields),
});

/**
 * A `console` over `log` (`console.log`/`info` → info, `debug`, `warn`, `error`), for an
 * engine without one: QuickJS has no `console`, and a `console.log` left in a plugin
 * would otherwise fail the unit with "console is not defined". Its lines go to the
 * report and the journal like any log line.
 */
export function consoleOverLog(target = log) {
  const text = (args) => args.map((a) => (typeof a === 'string' ? a : describeForConsole(a))).join(' ');
  return Object.freeze({
    log: (...args) => target.info(text(args)),
    info: (...args) => target.info(text(args)),
    debug: (...args) => target.debug(text(args)),
    trace: (...args) => target.trace(text(args)),
    warn: (...args) => target.warn(text(args)),
    error: (...args) => target.error(text(args)),
  });
}

function describeForConsole(v) {
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  // Plain data as JSON; everything else (bytes, dates, the SDK's value classes) as in log fields.
  if (Array.isArray(v) || (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype)) {
    try {
      return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x));
    } catch {
      return String(v);
    }
  }
  return describe(v);
}

if (QUICKJS && typeof globalThis.console === 'undefined') globalThis.console = consoleOverLog();

// A count as the bindings' u64: a Number under QuickJS, a BigInt under StarlingMonkey.
const u64 = (n) => {
  if (QUICKJS) return Math.max(0, Math.trunc(Number(n))) || 0;
  const b = typeof n === 'bigint' ? n : BigInt(Math.max(0, Math.trunc(Number(n))));
  return b < 0n ? 0n : b;
};

/** Progress of a named task: `done` of `total` items (total may be left out). The CLI draws a bar with an ETA. */
export function progress(task, done, total) {
  host.progress(String(task), u64(done), total === undefined || total === null ? undefined : u64(total));
}

/** Records one verification check (a failed check fails the run); returns `ok`. */
export function check(name, ok, detail = '') {
  host.report(String(name), Boolean(ok), String(detail));
  return Boolean(ok);
}

/**
 * Checkpoints inside a long unit. `save(state)` commits the unit's work so far on every
 * writable connection together with `state` (a string; anything else is JSON.stringify'd),
 * then continues in new transactions; close every cursor first (the commit would end it:
 * the host refuses with a `usage` error). `last()` returns the state of the last save by
 * an earlier, unfinished run of this unit, or null when it starts afresh (always null in
 * a dry-run, where nothing commits).
 */
export const checkpoint = Object.freeze({
  save(state) {
    const text = typeof state === 'string' ? state : JSON.stringify(state);
    try {
      host.save(text);
    } catch (e) {
      throw toMigrunError(e);
    }
  },
  last() {
    const found = host.last();
    return found === undefined ? null : found;
  },
});
