// Errors as exceptions: a database error the plugin gave up on, or the plugin's own failure.

/** The kinds of a database error (the contract's `db-error-kind`). */
export const DB_ERROR_KINDS = Object.freeze([
  'unknown-connection',
  'read-only',
  'constraint',
  'conflict',
  'connection',
  'value',
  'usage',
  'refused',
  'other',
]);

/**
 * The SDK's exception. `kind` is the database error's kind (`constraint`, `conflict`,
 * `unknown-connection`, … — see DB_ERROR_KINDS) for a failed database call, or `failed`
 * for the plugin's own failure; `code` is the database's own code (SQLSTATE on
 * PostgreSQL, the error number on MariaDB/MySQL, the extended result code on SQLite),
 * or null.
 *
 * Any exception escaping a unit, `configure`, `listUnits` or `verify` ends that call with
 * the contract's `plugin-error` (a MigrunError of a database kind as `database`, with its
 * kind and code; anything else as `failed`, with its message): the host rolls the unit
 * back and reports the message. It never traps the component.
 */
export class MigrunError extends Error {
  constructor(message, { kind = 'failed', code = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'MigrunError';
    this.kind = kind;
    this.code = code ?? null;
  }

  /** Whether a database call failed (any kind but `failed`). */
  get isDatabase() {
    return this.kind !== 'failed';
  }

  /**
   * The same error with `context` in front of its message (`inserting batch 3: duplicate
   * key …`), keeping its kind and code.
   */
  withContext(context) {
    return new MigrunError(`${context}: ${this.message}`, { kind: this.kind, code: this.code, cause: this.cause });
  }
}

/** Throws the plugin's own failure: `fail('unknown unit x')`. */
export function fail(message) {
  throw new MigrunError(message);
}

/** `e` as a MigrunError: a database error thrown by an import keeps its kind and code. */
export function toMigrunError(e) {
  if (e instanceof MigrunError) return e;
  // StarlingMonkey wraps an import's error in an Error with a `payload`; QuickJS throws
  // the error value itself.
  const payload = e && typeof e === 'object' ? (e.payload ?? (e instanceof Error ? undefined : e)) : undefined;
  if (payload && typeof payload.kind === 'string' && typeof payload.message === 'string') {
    return new MigrunError(payload.message, { kind: payload.kind, code: payload.code ?? null });
  }
  if (e instanceof Error) return new MigrunError(e.message || String(e), { cause: e });
  return new MigrunError(String(e));
}

/**
 * Runs `body`; a failure gets `context` in front of its message (kind and code kept).
 * `context` may be a function, called only on failure.
 */
export function withContext(context, body) {
  try {
    return body();
  } catch (e) {
    throw toMigrunError(e).withContext(typeof context === 'function' ? context() : context);
  }
}

/** The contract's `plugin-error` for any exception (used by the export glue). */
export function pluginErrorOf(e) {
  const err = toMigrunError(e);
  if (err.isDatabase) {
    return { tag: 'database', val: { kind: err.kind, code: err.code ?? undefined, message: err.message } };
  }
  let message = err.message;
  // Not a MigrunError: say what was thrown, so `TypeError: x is undefined` reads as such.
  if (!(e instanceof MigrunError) && e instanceof Error && e.name && e.name !== 'Error') message = `${e.name}: ${message}`;
  return { tag: 'failed', val: message };
}
