//! Number formatting shared by the markdown summary and the plots' axis labels: about
//! three significant digits, no exponent for the magnitudes a benchmark produces, and a
//! dash for what was not measured.

/// What a value that was not measured (no calls, NaN) reads as.
pub(crate) const NOT_MEASURED: &str = "–";

/// A plain number with about three significant digits: `0.0123`, `1.23`, `12.3`, `123`,
/// `12345`; whole numbers without decimals; [`NOT_MEASURED`] when not finite.
pub(crate) fn number(value: f64) -> String {
    if !value.is_finite() {
        return NOT_MEASURED.to_owned();
    }
    let magnitude = value.abs();
    if magnitude == 0.0 {
        "0".to_owned()
    } else if magnitude >= 100.0 || (value.fract() == 0.0 && magnitude < 1e15) {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else if magnitude >= 0.001 {
        // Three significant digits below one: 0.123, 0.0123, 0.00123.
        let decimals = 2 - magnitude.log10().floor() as i32;
        format!("{value:.prec$}", prec = decimals.clamp(3, 5) as usize)
    } else {
        format!("{value:.2e}")
    }
}

/// An axis tick: [`number`] without trailing zeros (`0.5`, not `0.500`).
pub(crate) fn tick(value: f64) -> String {
    let text = number(value);
    if text.contains('.') && !text.contains('e') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// Microseconds as milliseconds, [`NOT_MEASURED`] when not a positive finite time.
pub(crate) fn ms(us: f64) -> String {
    if us.is_finite() && us >= 0.0 {
        number(us / 1000.0)
    } else {
        NOT_MEASURED.to_owned()
    }
}

/// A share in `[0, 1]` as a percentage with one decimal: `25.1%`.
pub(crate) fn percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", share * 100.0)
    } else {
        NOT_MEASURED.to_owned()
    }
}

/// A rate in calls per second, as a run's label shows it: `500`, `12.5`.
pub(crate) fn rate(per_s: f64) -> String {
    number(per_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_about_three_significant_digits() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.01234), "0.0123");
        assert_eq!(number(0.1234), "0.123");
        assert_eq!(number(1.234), "1.23");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(1234.4), "1234");
        assert_eq!(number(4.0), "4");
        assert_eq!(number(-2.5), "-2.50");
        assert_eq!(number(0.000_012), "1.20e-5");
        assert_eq!(number(f64::NAN), NOT_MEASURED);
        assert_eq!(number(f64::INFINITY), NOT_MEASURED);
    }

    #[test]
    fn ticks_drop_trailing_zeros() {
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(20.0), "20");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(0.00001), "1.00e-5");
    }

    #[test]
    fn times_and_shares() {
        assert_eq!(ms(1234.0), "1.23");
        assert_eq!(ms(250.0), "0.250");
        assert_eq!(ms(f64::NAN), NOT_MEASURED);
        assert_eq!(ms(-1.0), NOT_MEASURED);
        assert_eq!(percent(0.2512), "25.1%");
        assert_eq!(percent(f64::NAN), NOT_MEASURED);
        assert_eq!(rate(500.0), "500");
        assert_eq!(rate(12.5), "12.5");
    }
}
