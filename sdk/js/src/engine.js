// Which engine's bindings the SDK talks to. The two JavaScript toolchains that build a
// component hand the contract's 64-bit integers over differently, and the SDK adapts
// here, in one place:
//
// - QuickJS (componentize-qjs `--sync`, the scaffold's default build; also reachable as
//   `jco componentize --backend qjs`): an `s64`/`u64` is a Number both ways, a function returning
//   `result<T, E>` throws its `E` value, and an export fails by throwing its `E`.
//   Its bindings are native code, so rows cross the boundary ~3x faster than with
//   StarlingMonkey, at a fraction of the memory. A Number holds integers exactly only
//   up to 2^53: the SDK refuses a larger one (read or written) with an error saying
//   so, never a rounded value.
// - StarlingMonkey (componentize-js): an `s64`/`u64` is a BigInt, an import's error
//   arrives as an Error whose `payload` is the `E` value, and an export fails by
//   throwing an Error with a `payload`. Every 64-bit integer is exact.
//
// componentize-qjs defines the global `__cqjs` (its runtime's own namespace);
// StarlingMonkey and Node do not.

/** True when the plugin runs on QuickJS (componentize-qjs). */
export const QUICKJS = typeof globalThis.__cqjs !== 'undefined';

/**
 * The engine running this code: `'quickjs'` (componentize-qjs), `'starlingmonkey'`
 * (componentize-js), or `'node'` (the SDK's own tests, `@migrun/sdk/testing`).
 */
export const engine = QUICKJS ? 'quickjs' : typeof process !== 'undefined' && process.versions?.node ? 'node' : 'starlingmonkey';
