//! Durations as Kubernetes and Istio write them: `250ms`, `10s`, `1m30s`, `1.5h`.
//!
//! The grammar is Go's `time.ParseDuration` (what Istio and most Kubernetes YAML use):
//! one or more decimal numbers, each with a unit `ns`, `us`/`µs`, `ms`, `s`, `m` or `h`.
//! A bare number is refused: `timeout: 5` is ambiguous, and the error says so.

use std::fmt;
use std::time::Duration;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was written.
    #[error("empty duration")]
    Empty,
    /// A number without a unit, as `5`.
    #[error("`{0}` has no unit; write it as `{0}s` or `{0}ms`")]
    MissingUnit(String),
    /// A unit that is not one of ours.
    #[error("unknown unit `{0}`; use ns, us, ms, s, m or h")]
    UnknownUnit(String),
    /// Anything else that is not a duration.
    #[error("`{0}` is not a duration such as `250ms`, `10s` or `1m30s`")]
    Invalid(String),
    /// Negative durations make no sense in a policy.
    #[error("durations cannot be negative")]
    Negative,
    /// More than the longest duration we represent.
    #[error("duration is too long")]
    Overflow,
}

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go-style duration.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = body;
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(DurationError::Invalid(text.to_string()));
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(if number_len == body.len() {
                DurationError::MissingUnit(text.to_string())
            } else {
                DurationError::Invalid(text.to_string())
            });
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?;
        total_ns = total_ns
            .checked_add(scaled(number, scale)?)
            .ok_or(DurationError::Overflow)?;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    let nanos = u32::try_from(total_ns % 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::new(secs, nanos))
}

/// `number` (digits, optionally with a fraction) times `scale` nanoseconds, truncated.
fn scaled(number: &str, scale: u128) -> Result<u128, DurationError> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| DurationError::Overflow)?
    };
    let mut total = whole.checked_mul(scale).ok_or(DurationError::Overflow)?;
    // Nanosecond precision needs at most 15 fractional digits (hours); ignore the rest.
    let mut divisor: u128 = 1;
    let mut fraction_value: u128 = 0;
    for digit in fraction.bytes().take(18) {
        fraction_value = fraction_value * 10 + u128::from(digit - b'0');
        divisor *= 10;
    }
    total = total
        .checked_add(fraction_value * scale / divisor)
        .ok_or(DurationError::Overflow)?;
    Ok(total)
}

/// Writes a duration the way [`parse`] reads it, with the largest exact units: `1m30s`,
/// `250ms`, `1h`, `0s`.
pub fn format(d: Duration) -> String {
    Formatted(d).to_string()
}

/// A duration that displays in the [`parse`] grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formatted(pub Duration);

impl fmt::Display for Formatted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let total_secs = d.as_secs();
        let nanos = d.subsec_nanos();
        if nanos == 0 {
            let (h, m, s) = (total_secs / 3600, total_secs / 60 % 60, total_secs % 60);
            if h > 0 {
                write!(f, "{h}h")?;
            }
            if m > 0 {
                write!(f, "{m}m")?;
            }
            if s > 0 {
                write!(f, "{s}s")?;
            }
            return Ok(());
        }
        let total_ns = d.as_nanos();
        if total_ns.is_multiple_of(1_000_000) {
            write!(f, "{}ms", total_ns / 1_000_000)
        } else if total_ns.is_multiple_of(1_000) {
            write!(f, "{}us", total_ns / 1_000)
        } else {
            write!(f, "{total_ns}ns")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_style_durations() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("100µs"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("1h2m3s4ms"), Ok(Duration::from_millis(3_723_004)));
    }

    #[test]
    fn bad_durations_say_why() {
        assert_eq!(parse("5"), Err(DurationError::MissingUnit("5".into())));
        assert_eq!(parse("5 s"), Err(DurationError::UnknownUnit(" s".into())));
        assert_eq!(parse("5d"), Err(DurationError::UnknownUnit("d".into())));
        assert_eq!(parse("-1s"), Err(DurationError::Negative));
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("s"), Err(DurationError::Invalid("s".into())));
        assert_eq!(parse("1..2s"), Err(DurationError::Invalid("1..2s".into())));
        assert_eq!(parse("1m5"), Err(DurationError::Invalid("1m5".into())));
        assert_eq!(
            parse("99999999999999999999999999h"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse("5").unwrap_err().to_string(),
            "`5` has no unit; write it as `5s` or `5ms`"
        );
    }

    #[test]
    fn formatting_uses_the_largest_exact_units() {
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(3600)), "1h");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::ZERO), "0s");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 0u64..10_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,40}") {
            let _ = parse(&text);
        }

        #[test]
        fn digit_and_unit_soup_never_panics(text in "[0-9.]{0,30}(ns|us|ms|s|m|h|x)?[0-9.]{0,30}(ns|us|ms|s|m|h)?") {
            let _ = parse(&text);
        }
    }
}
