// @migrun/sdk/testing: test a plugin's units from `node --test`, through the `migrun`
// binary itself (found via the MIGRUN environment variable, else on PATH).
//
//   import { test } from 'node:test';
//   import assert from 'node:assert/strict';
//   import { Workspace } from '@migrun/sdk/testing';
//
//   test('fill writes the greetings', () => {
//     const ws = new Workspace('hello_js.wasm');          // a temp folder; embedded SQLite by default
//     const report = ws.run({ set: { count: 5 } });       // `migrun hello_js.wasm --json --set count=5`
//     assert.equal(report.exitCode, 0);
//     assert.deepEqual(ws.sql('target', 'SELECT COUNT(*) AS n FROM greetings').rows, [{ n: 5 }]);
//   });
//
// `ws.sql(connection, ...statements)` runs `migrun sql --json` on the same connection the
// run uses (the embedded SQLite file `migrun-data/<connection>.sqlite` of the workspace, or
// the URL given with `db`), all statements in one transaction, and returns the last one's
// rows. Runs only in Node (it spawns processes); the plugin itself never imports it.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The `migrun` binary: $MIGRUN, else `migrun` on PATH. */
export function migrunBinary() {
  return process.env.MIGRUN || 'migrun';
}

function spawn(args, cwd) {
  const bin = migrunBinary();
  const out = spawnSync(bin, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 30, env: { ...process.env, NO_COLOR: '1' } });
  if (out.error) {
    throw new Error(
      out.error.code === 'ENOENT'
        ? `cannot run \`${bin}\`: put migrun on PATH or set MIGRUN to its path`
        : `cannot run \`${bin}\`: ${out.error.message}`,
    );
  }
  return out;
}

/** A value of `migrun sql --json` as JavaScript: `{ "hex": "…" }` becomes a Uint8Array. */
function sqlValue(v) {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.hex === 'string') {
    return Uint8Array.from(v.hex.match(/../g) ?? [], (h) => parseInt(h, 16));
  }
  return v;
}

/** A migrun workspace in a fresh temporary folder, for one test. */
export class Workspace {
  /**
   * `plugin`: the component (a path, relative to the current folder). Options:
   * `db: { target: 'postgres://…' }` — connection URLs (default: the embedded SQLite
   * file `migrun-data/<name>.sqlite` in the workspace); `config: { key: value }` — written
   * to the workspace's `migrun.toml` `[config]`; `dir` — use this folder instead of a
   * temporary one; `keep: true` — leave the folder behind (its path is `ws.dir`).
   */
  constructor(plugin, { db = {}, config = {}, dir, keep = false } = {}) {
    this.plugin = plugin === undefined ? undefined : resolve(plugin);
    if (this.plugin !== undefined && !existsSync(this.plugin)) {
      throw new Error(`${this.plugin} does not exist: build the plugin first (npm run build)`);
    }
    this.dir = dir ? resolve(dir) : mkdtempSync(join(tmpdir(), 'migrun-test-'));
    this.db = { ...db };
    this.keep = keep || Boolean(dir);
    const keys = Object.entries(config);
    if (keys.length > 0) {
      const lines = keys.map(([k, v]) => `${k} = ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`);
      writeFileSync(join(this.dir, 'migrun.toml'), `[config]\n${lines.join('\n')}\n`);
    }
  }

  dbArgs() {
    return Object.entries(this.db).flatMap(([name, url]) => ['--db', `${name}=${url}`]);
  }

  /**
   * Runs `statements` in order, in one transaction, on `connection`; returns the last
   * statement's `{ columns, rows, rowsAffected }`, rows as objects keyed by column (ints
   * and floats as Numbers, NULL as null, bytes as Uint8Array, other typed values as text).
   * Throws with migrun's message when a statement fails (nothing is committed then).
   */
  sql(connection, ...statements) {
    const out = spawn(['sql', '--json', ...this.dbArgs(), connection, ...statements], this.dir);
    if (out.status !== 0) {
      throw new Error(`migrun sql ${connection} failed (exit ${out.status}): ${out.stderr.trim()}`);
    }
    const parsed = JSON.parse(out.stdout);
    const columns = parsed.columns ?? [];
    const rows = (parsed.rows ?? []).map((values) => {
      const row = {};
      columns.forEach((c, i) => {
        row[c] = sqlValue(values[i]);
      });
      return row;
    });
    return { columns, rows, rowsAffected: parsed.rows_affected ?? 0 };
  }

  /** The rows of one query, as objects: `ws.rows('target', 'SELECT * FROM t ORDER BY id')`. */
  rows(connection, query) {
    return this.sql(connection, query).rows;
  }

  /** The first value of the first row: `ws.scalar('target', 'SELECT COUNT(*) FROM t')`. */
  scalar(connection, query) {
    const { columns, rows } = this.sql(connection, query);
    if (rows.length === 0) throw new Error(`no rows: ${query}`);
    return rows[0][columns[0]];
  }

  /**
   * Runs the plugin: `migrun <plugin> --json` in the workspace, with `set` as `--set k=v`,
   * `dryRun`, `only` (unit names) and extra `args`. Returns the parsed report
   * (`migrun.run-report/1`: `units`, `checks`, `messages`, `failure`, …) with `exitCode`
   * (0 ok, 1 failed, 3 a check failed, …) and `stderr` added.
   */
  run({ set = {}, dryRun = false, only = [], args = [], plugin = this.plugin } = {}) {
    if (plugin === undefined) throw new Error('Workspace.run: no plugin (new Workspace(pathToWasm))');
    const argv = [resolve(plugin), '--json', ...this.dbArgs()];
    for (const [k, v] of Object.entries(set)) argv.push('--set', `${k}=${v}`);
    if (dryRun) argv.push('--dry-run');
    if (only.length > 0) argv.push('--only', only.join(','));
    argv.push(...args);
    const out = spawn(argv, this.dir);
    let report;
    try {
      report = JSON.parse(out.stdout);
    } catch {
      throw new Error(`migrun exited ${out.status} without a JSON report:\n${out.stderr}`);
    }
    Object.defineProperty(report, 'exitCode', { value: out.status, enumerable: false });
    Object.defineProperty(report, 'stderr', { value: out.stderr, enumerable: false });
    return report;
  }

  /** Deletes the workspace folder (unless `keep` or `dir` was given). */
  cleanup() {
    if (!this.keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The check named `name` of a report, or undefined. */
export function checkOf(report, name) {
  return (report.checks ?? []).find((c) => c.name === name);
}

/** The unit named `name` of a report, or undefined. */
export function unitOf(report, name) {
  return (report.units ?? []).find((u) => u.name === name);
}
