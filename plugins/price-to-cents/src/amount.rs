//! The conversion rule: a price written as text to a whole number of cents.
//!
//! Accepted, after trimming surrounding whitespace: an optional `-`, an optional `$`
//! (either order), dollars as digits — plain (`1234`) or grouped by commas in threes
//! (`1,234`) — and optionally a decimal point followed by at least one digit (`12.30`,
//! `7.5`). Anything else (`n/a`, `12.`, `.5`, `1,23`, `12 USD`, an empty string) is
//! refused with the reason, never guessed at.
//!
//! Rounding: fractions of a cent round half away from zero on the exact decimal
//! (`12.345` → 1235, `-0.005` → -1, `12.3449` → 1234); no floating point is involved.
//!
//! Whole numbers (no decimal point): `$12` is always dollars (1200). A bare `12` is read
//! according to [`BareIntegers`]: dollars by the first build's rule, cents by the second
//! build's (`tests/guests/price-to-cents-v2`), whose `replay --plugin` diff shows exactly
//! the rows that rule changes.

use std::fmt;

/// How a number with neither a decimal point nor a `$` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareIntegers {
    /// `12` is twelve dollars: 1200 cents.
    Dollars,
    /// `12` is twelve cents (legacy rows written in cents): 12.
    Cents,
}

/// Why a text is not a price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing but whitespace.
    Empty,
    /// Not of an accepted form.
    NotAPrice,
    /// A price too large for a 64-bit number of cents.
    OutOfRange,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Empty => "empty",
            Refusal::NotAPrice => "not a price",
            Refusal::OutOfRange => "out of range",
        })
    }
}

/// `text` in cents, by the rule in the module's documentation.
pub fn to_cents(text: &str, bare: BareIntegers) -> Result<i64, Refusal> {
    let s = text.trim();
    if s.is_empty() {
        return Err(Refusal::Empty);
    }
    let (negative, s) = strip_sign(s);
    let (dollar_sign, s) = match s.strip_prefix('$') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    // `$-5` as well as `-$5`, but not `--5` or `-$-5`.
    let (negative, s) = match (negative, strip_sign(s)) {
        (false, (true, rest)) if dollar_sign => (true, rest),
        (_, (true, _)) => return Err(Refusal::NotAPrice),
        (negative, _) => (negative, s),
    };
    let (whole, fraction) = match s.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (s, None),
    };
    let whole_digits = whole_digits(whole).ok_or(Refusal::NotAPrice)?;
    if let Some(f) = fraction
        && (f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Refusal::NotAPrice);
    }
    let whole: i64 = whole_digits.parse().map_err(|_| Refusal::OutOfRange)?;
    let cents = match fraction {
        None if !dollar_sign && bare == BareIntegers::Cents => whole,
        None => whole.checked_mul(100).ok_or(Refusal::OutOfRange)?,
        Some(f) => {
            let digit = |i: usize| i64::from(f.as_bytes().get(i).map_or(0, |b| b - b'0'));
            let round_up = i64::from(digit(2) >= 5);
            whole
                .checked_mul(100)
                .and_then(|c| c.checked_add(digit(0) * 10 + digit(1) + round_up))
                .ok_or(Refusal::OutOfRange)?
        }
    };
    Ok(if negative { -cents } else { cents })
}

/// `(true, rest)` when `s` starts with `-`.
fn strip_sign(s: &str) -> (bool, &str) {
    match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    }
}

/// The digits of a dollar amount written plainly (`1234`) or grouped in threes by commas
/// (`1,234,567`); `None` for anything else.
fn whole_digits(whole: &str) -> Option<String> {
    let groups: Vec<&str> = whole.split(',').collect();
    let all_digits = |g: &str| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit());
    let grouped =
        groups.len() == 1 || (groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3));
    (grouped && groups.iter().all(|g| all_digits(g))).then(|| groups.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use BareIntegers::{Cents, Dollars};

    #[test]
    fn accepted_forms() {
        for (text, cents) in [
            ("12.30", 1230),
            ("$1,234.50", 123_450),
            ("12", 1200),
            (" 7.5 ", 750),
            ("0.99", 99),
            ("$12", 1200),
            ("1,234", 123_400),
            ("-3.10", -310),
            ("-$3.10", -310),
            ("$-3.10", -310),
            ("12.345", 1235),
            ("12.3449", 1234),
            ("-0.005", -1),
            ("0.004", 0),
        ] {
            assert_eq!(to_cents(text, Dollars), Ok(cents), "{text:?}");
        }
    }

    #[test]
    fn bare_integers_are_cents_by_the_second_rule() {
        assert_eq!(to_cents("12", Cents), Ok(12));
        assert_eq!(to_cents("1,234", Cents), Ok(1234));
        assert_eq!(to_cents("$12", Cents), Ok(1200));
        assert_eq!(to_cents("12.0", Cents), Ok(1200));
    }

    #[test]
    fn refused_forms() {
        for text in [
            "n/a", "12.", ".5", "1,23", "12,3456", "12 USD", "--5", "-$-5", "1.2.3", "$", "-",
            "12a", "1e3", "+5", "$ 5",
        ] {
            assert_eq!(to_cents(text, Dollars), Err(Refusal::NotAPrice), "{text:?}");
        }
        assert_eq!(to_cents("   ", Dollars), Err(Refusal::Empty));
        assert_eq!(
            to_cents("99999999999999999999", Dollars),
            Err(Refusal::OutOfRange)
        );
        assert_eq!(
            to_cents("92233720368547758.07", Dollars),
            Ok(i64::MAX),
            "the largest price"
        );
        assert_eq!(
            to_cents("92233720368547758.08", Dollars),
            Err(Refusal::OutOfRange)
        );
    }
}
