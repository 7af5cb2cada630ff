// The plugin's tests: `npm test` builds it, then runs this file with `node --test`.
// Each test gets a workspace of its own (a temporary folder, with the embedded SQLite
// database `migrun-data/target.sqlite`), sets it up and checks it with `ws.sql` (`migrun
// sql`), and runs the plugin with `ws.run` (`migrun {{crate_name}}.wasm --json`). The
// `migrun` binary comes from $MIGRUN, else PATH. Give `db: { target: 'postgres://…' }`
// to run against another database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Workspace, checkOf } from '@migrun/sdk/testing';

const PLUGIN = '{{crate_name}}.wasm';

test('a run writes the greetings and its check passes', (t) => {
  const ws = new Workspace(PLUGIN);
  t.after(() => ws.cleanup());

  const report = ws.run({ set: { count: 4 } });
  assert.equal(report.exitCode, 0, report.stderr);
  assert.equal(checkOf(report, 'every greeting is there').ok, true);
  assert.deepEqual(ws.rows('target', 'SELECT id, message FROM greetings ORDER BY id LIMIT 2'), [
    { id: 1, message: 'hello, world #1' },
    { id: 2, message: 'hello, world #2' },
  ]);
  assert.equal(ws.scalar('target', 'SELECT COUNT(*) FROM greetings'), 4);
});

test('greetings already there are kept', (t) => {
  const ws = new Workspace(PLUGIN);
  t.after(() => ws.cleanup());
  ws.sql('target', 'CREATE TABLE greetings (id INTEGER PRIMARY KEY, message TEXT NOT NULL)', "INSERT INTO greetings VALUES (1, 'kept')");

  const report = ws.run();
  assert.equal(report.exitCode, 0, report.stderr);
  assert.deepEqual(ws.rows('target', 'SELECT message FROM greetings ORDER BY id'), [
    { message: 'kept' },
    { message: 'hello, world #2' },
    { message: 'hello, world #3' },
  ]);
});
