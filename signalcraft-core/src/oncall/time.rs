//! Local wall time → instant, with SignalCraft's DST rules (see docs/oncall-time.md):
//!
//! * an unambiguous local time maps to its one instant;
//! * a local time inside a spring-forward gap (it never happens on the clock) maps to
//!   the **first valid instant after it**, which is the transition instant itself
//!   (02:30 on the Berlin spring-forward day → 03:00 CEST);
//! * a local time inside a fall-back fold (it happens twice) maps to its **first
//!   occurrence** (the earlier instant, still on summer time).
//!
//! This mapping is monotonic (a later wall time never maps to an earlier instant),
//! which keeps shift boundaries ordered.

use jiff::Timestamp;
use jiff::civil::{DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::CoreError;

/// Maps a local wall time in `tz` to an instant by the rules above.
pub fn resolve_local(tz: &TimeZone, dt: DateTime) -> Timestamp {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => at_offset(dt, offset),
        AmbiguousOffset::Fold { before, after } => {
            let a = at_offset(dt, before);
            let b = at_offset(dt, after);
            a.min(b)
        }
        AmbiguousOffset::Gap { before, after } => {
            // Both readings fall on either side of the transition; the transition is
            // the first instant whose wall time is at or after `dt`.
            let a = at_offset(dt, before);
            let b = at_offset(dt, after);
            let (early, late) = if a <= b { (a, b) } else { (b, a) };
            tz.following(early)
                .next()
                .map(|t| t.timestamp())
                .filter(|t| *t <= late)
                .unwrap_or(late)
        }
    }
}

fn at_offset(dt: DateTime, offset: jiff::tz::Offset) -> Timestamp {
    offset.to_timestamp(dt).unwrap_or(if offset.seconds() >= 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Parses an IANA zone name; `path` names the config field on error.
pub fn parse_zone(name: &str, path: &str) -> Result<TimeZone, CoreError> {
    TimeZone::get(name)
        .map_err(|_| CoreError::config(path, format!("unknown IANA time zone {name:?}")))
}

/// Parses `HH:MM` (or `HH:MM:SS`); `24:00` is accepted when `allow_24` (end of day,
/// returned as minute 1440). Returns minutes since midnight.
pub fn parse_hhmm(s: &str, path: &str, allow_24: bool) -> Result<u32, CoreError> {
    if allow_24 && (s == "24:00" || s == "24:00:00") {
        return Ok(1440);
    }
    let t: Time = s
        .parse()
        .map_err(|_| CoreError::config(path, format!("{s:?} is not a time of day (HH:MM)")))?;
    if t.second() != 0 || t.subsec_nanosecond() != 0 {
        return Err(CoreError::config(path, "times must be whole minutes"));
    }
    Ok(t.hour() as u32 * 60 + t.minute() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn gap_moves_to_transition_and_fold_takes_first() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let gap: DateTime = "2026-03-29T02:30".parse().unwrap();
        assert_eq!(resolve_local(&tz, gap), ts("2026-03-29T01:00:00Z"));
        let fold: DateTime = "2026-10-25T02:30".parse().unwrap();
        assert_eq!(resolve_local(&tz, fold), ts("2026-10-25T00:30:00Z"));
        let plain: DateTime = "2026-06-01T09:00".parse().unwrap();
        assert_eq!(resolve_local(&tz, plain), ts("2026-06-01T07:00:00Z"));
    }

    #[test]
    fn hhmm_parsing() {
        assert_eq!(parse_hhmm("09:30", "x", false).unwrap(), 570);
        assert_eq!(parse_hhmm("24:00", "x", true).unwrap(), 1440);
        assert!(parse_hhmm("24:00", "x", false).is_err());
        assert!(parse_hhmm("9h", "x", false).is_err());
    }
}
