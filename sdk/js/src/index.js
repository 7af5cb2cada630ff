// @migrun/sdk: write migrun migration plugins in JavaScript (contract migrun:plugin@0.2.0).
//
//   import { definePlugin, readWrite, unit, Config, connect, log, check } from '@migrun/sdk';
//
// - definePlugin, readOnly, readWrite, unit, Config (plugin.js): declaring the plugin.
// - connect, connectOptional, Connection, Cursor (db.js): queries with rows as objects,
//   cursors as iterators, bulk insert/update/upsert/delete, placeholders.
// - values (values.js): how SQL values map to JavaScript, and the wrappers that keep a
//   value's exact kind (SqlDate, Decimal, Uuid, Time, Json, Float, Typed).
// - log, progress, check, checkpoint (log.js).
// - Backfill, copy (backfill.js): batched, checkpointed, resumable work in key order.
// - MigrunError, fail, withContext (errors.js): errors as exceptions with a kind and code.
// - engine (engine.js): which engine runs the plugin ('quickjs' or 'starlingmonkey').
//
// Build a plugin by bundling it with the SDK (esbuild), then componentize-qjs (QuickJS)
// or componentize-js (StarlingMonkey) against `wit/migrun.wit` of this package: see
// docs/plugins-js.md.

export { definePlugin, readOnly, readWrite, unit, Config } from './plugin.js';
export { connect, connectOptional, Connection, Cursor } from './db.js';
export {
  SqlDate,
  Decimal,
  Uuid,
  Time,
  Json,
  Float,
  Typed,
  date,
  timestamp,
  timestamptz,
  time,
  decimal,
  uuid,
  json,
  float,
} from './values.js';
export { log, progress, check, checkpoint } from './log.js';
export { Backfill, Batch, keyOf, copy } from './backfill.js';
export { MigrunError, fail, withContext, DB_ERROR_KINDS } from './errors.js';
export { engine } from './engine.js';
