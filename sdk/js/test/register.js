// `node --import ./test/register.js --test test/`: the SDK's unit tests run in Node, where
// the contract's imports (`migrun:plugin/…`) resolve to fake-host.js.
import { register } from 'node:module';

register('./hooks.js', import.meta.url);
