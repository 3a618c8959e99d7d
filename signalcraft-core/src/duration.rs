//! Durations in Alertmanager's string form: `30s`, `5m`, `1h30m`, `1d`, `1w`, `250ms`.
//!
//! Units: `ms`, `s`, `m`, `h`, `d` (24 h), `w` (7 d), `y` (365 d), largest first, each
//! at most once, as Prometheus' `model.ParseDuration` accepts. `0` alone means zero.

use std::time::Duration;

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses an Alertmanager duration. The error says what is wrong (the caller adds
/// the config path).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_unit = 0usize; // index into UNITS + 1 of the previous unit
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("{s:?}: expected a number at offset {start}"));
        }
        let n: u64 = s[start..i]
            .parse()
            .map_err(|_| format!("{s:?}: number too large"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ms, s, m, h, d, w, y)"
            ));
        };
        if pos < last_unit {
            return Err(format!(
                "{s:?}: units must go from largest to smallest, each once"
            ));
        }
        last_unit = pos + 1;
        let ms = n
            .checked_mul(UNITS[pos].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?}: duration too large"))?;
        total = ms;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration in the same form (`1h30m`, `0s`); inverse of [`parse_duration`]
/// for whole milliseconds.
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&(ms / size).to_string());
            out.push_str(unit);
            ms %= size;
        }
    }
    out
}

/// Serde helpers: `#[serde(with = "crate::duration::serde_str")]` reads and writes a
/// [`Duration`] as an Alertmanager string.
pub mod serde_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the string form.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Reads the string form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Converts to jiff's signed duration, saturating.
pub(crate) fn signed(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
}

/// `t + d`, saturating at the end of time.
pub(crate) fn add(t: jiff::Timestamp, d: Duration) -> jiff::Timestamp {
    t.checked_add(signed(d)).unwrap_or(jiff::Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alertmanager_forms() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1w").unwrap(), Duration::from_secs(604800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "1m1h",
            "1s1s",
            "-5m",
            "5 m",
            "99999999999999999999y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn format_round_trips() {
        for s in ["30s", "5m", "1h30m", "1d", "1w", "250ms", "1h1m1s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
