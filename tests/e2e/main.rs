//! End-to-end tests: real plugins built from source, real databases (a
//! database of its own per test), the real `migrun` binary.
//!
//! Topics: `values` (every value kind on every dialect), `auth_consolidation`
//! (seed 000), `sandbox` (hostile plugins), `cli` (inspect and refusals).

mod auth_consolidation;
mod cli;
mod sandbox;
mod support;
mod values;
