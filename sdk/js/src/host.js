// The contract's imports (migrun:plugin@0.2.0), in one place: componentize-js generates
// them from the WIT at build time; everything else in the SDK goes through this module.
export { open } from 'migrun:plugin/database@0.2.0';
export { write, progress } from 'migrun:plugin/log@0.2.0';
export { report } from 'migrun:plugin/checks@0.2.0';
export { save, last } from 'migrun:plugin/checkpoint@0.2.0';
