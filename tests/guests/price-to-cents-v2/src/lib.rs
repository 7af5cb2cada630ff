//! The second build of `plugins/price-to-cents`: the same sources with one rule changed —
//! a bare integer (`12`, no decimal point, no `$`) is read as cents, not dollars — so that
//! `migrun replay <journal> --plugin price_to_cents_v2.wasm` shows, by key, the rows that
//! rule converts differently (`~ id=3 amount_cents: 1200 → 12`).

#[path = "../../../../plugins/price-to-cents/src/amount.rs"]
pub mod amount;
#[path = "../../../../plugins/price-to-cents/src/plugin.rs"]
mod plugin;

/// How this build reads a number without a decimal point or `$`: as cents.
pub const BARE_INTEGERS: amount::BareIntegers = amount::BareIntegers::Cents;
