// SQL values between JavaScript and the contract's `value` variant.
//
// Reading (decode): every value becomes a native JavaScript value where one is exact,
// and a small wrapper class where none is:
//
//   null                  -> null
//   boolean               -> true / false
//   int (s64)             -> Number when it is a safe integer (|n| <= 2^53 - 1), else BigInt
//                            (under QuickJS, whose bindings carry a Number: refused, see engine.js)
//   float                 -> Number
//   text                  -> string
//   bytes                 -> Uint8Array
//   json                  -> Json (its text, `.value` parses it)
//   uuid                  -> Uuid (its lowercase text; `String(u)`)
//   date                  -> SqlDate, a Date at UTC midnight, kind 'date'
//   timestamp             -> SqlDate, a Date reading the zone-less time as UTC, kind 'timestamp'
//   timestamptz           -> SqlDate, a Date, kind 'timestamptz'
//   time                  -> Time (its text, `HH:MM:SS[.ffffff]`)
//   decimal               -> Decimal (its exact text; `Number(d)` when a float will do)
//   float32-array         -> Float32Array
//   text-array            -> an array of strings
//   typed                 -> Typed { typeName, bytes }
//
// An SqlDate keeps the exact text it was read as (microseconds included, which a Date
// cannot hold) and writes it back unchanged unless the Date was modified.
//
// Writing (encode) is the other way, and also takes plain JavaScript values:
//
//   null, undefined       -> null
//   boolean               -> boolean
//   an integral Number    -> int (use `float(x)` to send 3 as a float)
//   any other Number      -> float (NaN and the infinities included)
//   BigInt                -> int (must fit 64 bits)
//   string                -> text
//   Uint8Array, ArrayBuffer, Buffer -> bytes
//   Float32Array, Float64Array, an array of numbers -> float32-array
//   an array of strings   -> text-array (an empty array too)
//   a plain Date          -> timestamptz (millisecond precision)
//   SqlDate, Json, Uuid, Time, Decimal, Float, Typed -> their own kind

import { QUICKJS } from './engine.js';
import { MigrunError } from './errors.js';

const MAX_SAFE = 9007199254740991n;
const MIN_SAFE = -9007199254740991n;
const I64_MAX = 9223372036854775807n;
const I64_MIN = -9223372036854775808n;

/** A value that keeps its SQL kind and canonical text. */
class TextValue {
  constructor(text) {
    this.text = String(text);
  }
  toString() {
    return this.text;
  }
  toJSON() {
    return this.text;
  }
  equals(other) {
    return other instanceof this.constructor && other.text === this.text;
  }
}

/** An exact decimal number as text (`-12.3400`), never rounded through a float. */
export class Decimal extends TextValue {
  get kind() {
    return 'decimal';
  }
  /** The nearest float (`Number(d)` does the same). */
  toNumber() {
    return Number(this.text);
  }
}

/** A UUID, lowercase hyphenated. */
export class Uuid extends TextValue {
  constructor(text) {
    super(String(text).toLowerCase());
  }
  get kind() {
    return 'uuid';
  }
}

/** A time of day without zone, `HH:MM:SS[.ffffff]`. */
export class Time extends TextValue {
  get kind() {
    return 'time';
  }
}

/** A JSON document, kept as its text; `.value` is the parsed document. */
export class Json extends TextValue {
  get kind() {
    return 'json';
  }
  get value() {
    return JSON.parse(this.text);
  }
  /** A Json of `value` (JSON.stringify). */
  static of(value) {
    return new Json(JSON.stringify(value));
  }
}

/** A float, also when integral: `float(3)` writes 3.0, where a bare 3 writes an int. */
export class Float {
  constructor(value) {
    this.value = Number(value);
  }
  get kind() {
    return 'float';
  }
  valueOf() {
    return this.value;
  }
}

/** A value of a type the host does not model (PostgreSQL binary form), passed on unchanged. */
export class Typed {
  constructor(typeName, bytes) {
    this.typeName = typeName;
    this.bytes = bytes;
  }
  get kind() {
    return 'typed';
  }
}

/**
 * A date, zone-less timestamp or instant read from the database: a Date (UTC) that keeps
 * its exact text and kind, so that writing it back is exact to the microsecond.
 */
export class SqlDate extends Date {
  constructor(kind, text) {
    super(dateMillis(kind, text));
    this.kind = kind;
    this.text = text;
    this.readMillis = this.getTime();
  }
  toString() {
    return Object.is(this.getTime(), this.readMillis) ? this.text : canonicalDateText(this.kind, this);
  }
  toJSON() {
    return this.toString();
  }
}

function dateMillis(kind, text) {
  if (kind === 'date') return Date.parse(`${text}T00:00:00Z`);
  // JavaScript parses at most milliseconds: cut the fraction to three digits. The host
  // always sends an instant in UTC (`…Z`); an offset is looked for only otherwise.
  let t = text.replace(' ', 'T');
  const zone = kind !== 'timestamptz' || t.endsWith('Z') ? 'Z' : (/[+-]\d\d:?\d\d$/.exec(t) || ['Z'])[0];
  if (kind === 'timestamptz' && t.endsWith(zone)) t = t.slice(0, t.length - zone.length);
  const dot = t.indexOf('.');
  if (dot >= 0) t = t.slice(0, dot + 4);
  return Date.parse(t + zone);
}

const pad = (n, w) => String(n).padStart(w, '0');

/** The canonical text of `date` as `kind` (a Date's milliseconds, as six digits). */
function canonicalDateText(kind, date) {
  if (Number.isNaN(date.getTime())) throw new TypeError('cannot write an invalid Date');
  const day = `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}`;
  if (kind === 'date') return day;
  const ms = date.getUTCMilliseconds();
  const time = `${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}${ms ? `.${pad(ms, 3)}000` : ''}`;
  return kind === 'timestamptz' ? `${day}T${time}Z` : `${day}T${time}`;
}

// ---- constructors for authors -------------------------------------------------

/** A `date` value from `YYYY-MM-DD` or a Date (its UTC day). */
export const date = (v) => (v instanceof Date ? new SqlDate('date', canonicalDateText('date', v)) : new SqlDate('date', String(v)));
/** A zone-less `timestamp` from `YYYY-MM-DDTHH:MM:SS[.ffffff]` or a Date (its UTC time). */
export const timestamp = (v) =>
  v instanceof Date ? new SqlDate('timestamp', canonicalDateText('timestamp', v)) : new SqlDate('timestamp', String(v).replace(' ', 'T'));
/** A `timestamptz` instant from its text (`…Z` or with an offset) or a Date. */
export const timestamptz = (v) => (v instanceof Date ? new SqlDate('timestamptz', canonicalDateText('timestamptz', v)) : new SqlDate('timestamptz', String(v)));
export const time = (text) => new Time(text);
export const decimal = (text) => new Decimal(text);
export const uuid = (text) => new Uuid(text);
export const json = (value) => Json.of(value);
export const float = (n) => new Float(n);

// ---- decode: contract value -> JavaScript ------------------------------------------

/** One contract value as JavaScript (see the table at the top). */
export function decode(v) {
  switch (v.tag) {
    case 'null':
      return null;
    case 'int': {
      const n = v.val;
      // QuickJS hands an s64 over as a Number (rounded beyond 2^53: refused, never
      // passed on); StarlingMonkey as a BigInt, most of which fit a Number exactly.
      if (typeof n === 'number') return Number.isSafeInteger(n) ? n : beyondQuickJs('read', n);
      return n <= MAX_SAFE && n >= MIN_SAFE ? Number(n) : n;
    }
    case 'text':
    case 'boolean':
    case 'float':
      return v.val;
    case 'bytes':
      return v.val instanceof Uint8Array ? v.val : Uint8Array.from(v.val);
    case 'timestamp':
    case 'timestamptz':
    case 'date':
      return new SqlDate(v.tag, v.val);
    case 'decimal':
      return new Decimal(v.val);
    case 'uuid':
      return new Uuid(v.val);
    case 'json':
      return new Json(v.val);
    case 'time':
      return new Time(v.val);
    case 'float32-array':
      return v.val instanceof Float32Array ? v.val : Float32Array.from(v.val);
    case 'text-array':
      return v.val;
    case 'typed':
      return new Typed(v.val.typeName, v.val.bytes);
    default:
      throw new TypeError(`unknown value kind ${v.tag}`);
  }
}

// ---- encode: JavaScript -> contract value --------------------------------------------

// Shared, immutable encodings of the most common constants: no allocation per value.
const NULL = Object.freeze({ tag: 'null' });
const TRUE = Object.freeze({ tag: 'boolean', val: true });
const FALSE = Object.freeze({ tag: 'boolean', val: false });

function intOfBigInt(b) {
  if (b > I64_MAX || b < I64_MIN) throw new RangeError(`${b} does not fit a 64-bit integer`);
  if (!QUICKJS) return { tag: 'int', val: b };
  if (b > MAX_SAFE || b < MIN_SAFE) beyondQuickJs('written', b);
  return { tag: 'int', val: Number(b) };
}

/**
 * The error for a 64-bit integer beyond 2^53 under QuickJS, whose bindings carry s64 as
 * a Number: it would be rounded, so it is refused and nothing is read or written.
 */
function beyondQuickJs(what, n) {
  throw new MigrunError(
    `an integer beyond 2^53 (${what === 'read' ? 'about ' : ''}${n}) cannot be ${what} exactly by a QuickJS build of this plugin, ` +
      'whose bindings carry 64-bit integers as Numbers; select it as text (CAST(col AS TEXT)) and bind it as text ' +
      '(CAST($1 AS BIGINT)), or build the plugin with componentize-js (StarlingMonkey), which carries them as BigInts',
    { kind: 'value' },
  );
}

/** One JavaScript value as a contract value (see the table at the top). */
export function encode(v) {
  switch (typeof v) {
    case 'string':
      return { tag: 'text', val: v };
    case 'number':
      return Number.isInteger(v) ? intOfNumber(v) : { tag: 'float', val: v };
    case 'bigint':
      return intOfBigInt(v);
    case 'boolean':
      return v ? TRUE : FALSE;
    case 'undefined':
      return NULL;
    case 'object':
      return encodeObject(v);
    default:
      throw new TypeError(`cannot send a ${typeof v} to the database`);
  }
}

function intOfNumber(n) {
  if (!Number.isSafeInteger(n)) {
    if (QUICKJS) beyondQuickJs('written', n);
    throw new RangeError(`${n} is beyond 2^53 and may have been rounded: pass a BigInt (or float(${n}) for a float)`);
  }
  return { tag: 'int', val: QUICKJS ? n : BigInt(n) };
}

function encodeObject(v) {
  if (v === null) return NULL;
  if (v instanceof SqlDate) return { tag: v.kind, val: v.toString() };
  if (v instanceof Date) return { tag: 'timestamptz', val: canonicalDateText('timestamptz', v) };
  if (v instanceof TextValue) return { tag: v.kind, val: v.text };
  if (v instanceof Float) return { tag: 'float', val: v.value };
  if (v instanceof Uint8Array) return { tag: 'bytes', val: v };
  if (v instanceof Float32Array) return { tag: 'float32-array', val: v };
  if (v instanceof Float64Array) return { tag: 'float32-array', val: Float32Array.from(v) };
  if (v instanceof ArrayBuffer) return { tag: 'bytes', val: new Uint8Array(v) };
  if (v instanceof Typed) return { tag: 'typed', val: { typeName: v.typeName, bytes: v.bytes } };
  if (Array.isArray(v)) {
    if (v.length === 0 || typeof v[0] === 'string') {
      for (const s of v) if (typeof s !== 'string') throw new TypeError('a text array holds strings only');
      return { tag: 'text-array', val: v };
    }
    for (const n of v) if (typeof n !== 'number') throw new TypeError('a vector holds numbers only (or use a Float32Array)');
    return { tag: 'float32-array', val: Float32Array.from(v) };
  }
  if (typeof v.toSqlValue === 'function') return encode(v.toSqlValue());
  throw new TypeError(`cannot send a ${v.constructor ? v.constructor.name : 'object'} to the database`);
}

/**
 * `encode`, with text and safe integers (most of any row) first: the same result, fewer
 * steps per value in an interpreter.
 */
export function encodeCommon(v) {
  if (typeof v === 'string') return { tag: 'text', val: v };
  if (typeof v === 'number' && Number.isSafeInteger(v)) return { tag: 'int', val: QUICKJS ? v : BigInt(v) };
  if (v === null || v === undefined) return NULL;
  return encode(v);
}

/** Encodes a list of parameters. */
export function encodeAll(values) {
  const out = new Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = encode(values[i]);
  return out;
}

/** The text a value shows in messages (a key in a log line, a checkpoint). */
export function describe(v) {
  if (v === null || v === undefined) return 'NULL';
  if (v instanceof Uint8Array) return Array.from(v, (b) => b.toString(16).padStart(2, '0')).join('');
  return String(v);
}
