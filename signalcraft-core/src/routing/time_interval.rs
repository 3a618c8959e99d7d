//! Named time intervals (Alertmanager `time_intervals`), evaluated in an IANA time zone
//! with jiff, for `active_time_intervals` / `mute_time_intervals` on routes.
//!
//! A [`TimeIntervalConfig`] is a name plus a list of [`TimeRangeSpec`]s; an instant is
//! inside the interval when it is inside any of them. A spec constrains times of day,
//! weekdays, days of month (negative counts from the end: `-1` is the last day), months
//! and years; an empty constraint matches everything. Times are `HH:MM`, start inclusive,
//! end exclusive, `24:00` allowed as an end.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// A named time interval as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    /// Name routes refer to.
    pub name: String,
    /// The instant is inside when inside any of these.
    #[serde(default)]
    pub time_intervals: Vec<TimeRangeSpec>,
}

/// One set of constraints, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeSpec {
    /// Times of day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeOfDaySpec>,
    /// Weekdays or ranges: `monday`, `monday:friday`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
    /// Days of month or ranges: `1`, `1:5`, `-1`, `-7:-1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_month: Vec<String>,
    /// Months by name or number, or ranges: `january:march`, `12`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<String>,
    /// Years or ranges: `2026`, `2025:2027`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub years: Vec<String>,
    /// IANA time zone (default `UTC`), e.g. `Europe/Berlin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// A time-of-day range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeOfDaySpec {
    /// `HH:MM`, inclusive.
    pub start_time: String,
    /// `HH:MM`, exclusive (`24:00` = end of day).
    pub end_time: String,
}

#[derive(Debug, Clone)]
struct CompiledRange {
    minutes: Vec<(u16, u16)>,
    weekdays: Vec<(u8, u8)>,
    days: Vec<(i8, i8)>,
    months: Vec<(u8, u8)>,
    years: Vec<(i16, i16)>,
    tz: TimeZone,
}

/// A compiled named time interval.
#[derive(Debug, Clone)]
pub struct TimeInterval {
    name: String,
    ranges: Vec<CompiledRange>,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn split_range(s: &str) -> (&str, &str) {
    // Negative day numbers contain '-', so ranges use ':' only (as Alertmanager).
    match s.split_once(':') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    }
}

fn parse_hhmm(s: &str) -> Result<u16, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected HH:MM"))?;
    let h: u16 = h.parse().map_err(|_| format!("{s:?}: bad hour"))?;
    let m: u16 = m.parse().map_err(|_| format!("{s:?}: bad minute"))?;
    if m > 59 || h > 24 || (h == 24 && m != 0) || m.to_string().len() > 2 {
        return Err(format!("{s:?}: out of range"));
    }
    Ok(h * 60 + m)
}

fn name_or_number(s: &str, names: &[&str], base: u8) -> Result<u8, String> {
    let l = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == l) {
        return Ok(i as u8 + base);
    }
    match l.parse::<u8>() {
        Ok(n) if n >= base && usize::from(n) < names.len() + usize::from(base) => Ok(n),
        _ => Err(format!("{s:?} is not a valid name or number")),
    }
}

impl TimeIntervalConfig {
    /// Validates and compiles; errors name `path.time_intervals[i].<field>[j]`.
    pub fn compile(&self, path: &str) -> Result<TimeInterval, CoreError> {
        if self.name.trim().is_empty() {
            return Err(CoreError::config(
                format!("{path}.name"),
                "must not be empty",
            ));
        }
        let mut ranges = Vec::new();
        for (i, r) in self.time_intervals.iter().enumerate() {
            let p = format!("{path}.time_intervals[{i}]");
            let err = |f: &str, j: usize, m: String| CoreError::config(format!("{p}.{f}[{j}]"), m);
            let mut minutes = Vec::new();
            for (j, t) in r.times.iter().enumerate() {
                let a = parse_hhmm(&t.start_time).map_err(|m| err("times", j, m))?;
                let b = parse_hhmm(&t.end_time).map_err(|m| err("times", j, m))?;
                if a >= b {
                    return Err(err("times", j, "start_time must be before end_time".into()));
                }
                minutes.push((a, b));
            }
            let mut weekdays = Vec::new();
            for (j, w) in r.weekdays.iter().enumerate() {
                let (a, b) = split_range(w);
                let a = name_or_number(a, &WEEKDAYS, 0).map_err(|m| err("weekdays", j, m))?;
                let b = name_or_number(b, &WEEKDAYS, 0).map_err(|m| err("weekdays", j, m))?;
                if a > b {
                    return Err(err("weekdays", j, "range start after end".into()));
                }
                weekdays.push((a, b));
            }
            let mut days = Vec::new();
            for (j, d) in r.days_of_month.iter().enumerate() {
                let (a, b) = split_range(d);
                let pa: i8 = a
                    .parse()
                    .map_err(|_| err("days_of_month", j, format!("{a:?} is not a day")))?;
                let pb: i8 = b
                    .parse()
                    .map_err(|_| err("days_of_month", j, format!("{b:?} is not a day")))?;
                for v in [pa, pb] {
                    if v == 0 || !(-31..=31).contains(&v) {
                        return Err(err(
                            "days_of_month",
                            j,
                            format!("{v} out of range 1..31 / -31..-1"),
                        ));
                    }
                }
                if (pa > 0) == (pb > 0) && pa > pb {
                    return Err(err("days_of_month", j, "range start after end".into()));
                }
                days.push((pa, pb));
            }
            let mut months = Vec::new();
            for (j, m) in r.months.iter().enumerate() {
                let (a, b) = split_range(m);
                let a = name_or_number(a, &MONTHS, 1).map_err(|m| err("months", j, m))?;
                let b = name_or_number(b, &MONTHS, 1).map_err(|m| err("months", j, m))?;
                if a > b {
                    return Err(err("months", j, "range start after end".into()));
                }
                months.push((a, b));
            }
            let mut years = Vec::new();
            for (j, y) in r.years.iter().enumerate() {
                let (a, b) = split_range(y);
                let a: i16 = a
                    .parse()
                    .map_err(|_| err("years", j, format!("{a:?} is not a year")))?;
                let b: i16 = b
                    .parse()
                    .map_err(|_| err("years", j, format!("{b:?} is not a year")))?;
                if a > b || a < 1 {
                    return Err(err("years", j, "invalid year range".into()));
                }
                years.push((a, b));
            }
            let tz = match &r.location {
                None => TimeZone::UTC,
                Some(l) => TimeZone::get(l).map_err(|e| {
                    CoreError::config(
                        format!("{p}.location"),
                        format!("unknown time zone {l:?}: {e}"),
                    )
                })?,
            };
            ranges.push(CompiledRange {
                minutes,
                weekdays,
                days,
                months,
                years,
                tz,
            });
        }
        Ok(TimeInterval {
            name: self.name.clone(),
            ranges,
        })
    }
}

impl TimeInterval {
    /// The interval's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `t` is inside the interval.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.ranges.iter().any(|r| r.contains(t))
    }
}

impl CompiledRange {
    fn contains(&self, t: Timestamp) -> bool {
        let z = t.to_zoned_datetime(self.tz.clone());
        let minute = z.hour() as u16 * 60 + z.minute() as u16;
        if !self.minutes.is_empty() && !self.minutes.iter().any(|(a, b)| (*a..*b).contains(&minute))
        {
            return false;
        }
        let wd = z.weekday().to_sunday_zero_offset() as u8;
        if !self.weekdays.is_empty() && !self.weekdays.iter().any(|(a, b)| (*a..=*b).contains(&wd))
        {
            return false;
        }
        if !self.days.is_empty() {
            let dim = z.date().days_in_month();
            let day = z.day();
            let resolve = |d: i8| if d < 0 { dim + 1 + d } else { d.min(dim) };
            if !self
                .days
                .iter()
                .any(|(a, b)| (resolve(*a)..=resolve(*b)).contains(&day))
            {
                return false;
            }
        }
        let month = z.month() as u8;
        if !self.months.is_empty() && !self.months.iter().any(|(a, b)| (*a..=*b).contains(&month)) {
            return false;
        }
        let year = z.year();
        if !self.years.is_empty() && !self.years.iter().any(|(a, b)| (*a..=*b).contains(&year)) {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn business_hours_berlin() -> TimeInterval {
        TimeIntervalConfig {
            name: "business".into(),
            time_intervals: vec![TimeRangeSpec {
                times: vec![TimeOfDaySpec {
                    start_time: "09:00".into(),
                    end_time: "17:00".into(),
                }],
                weekdays: vec!["monday:friday".into()],
                location: Some("Europe/Berlin".into()),
                ..Default::default()
            }],
        }
        .compile("time_intervals[0]")
        .unwrap()
    }

    #[test]
    fn weekday_and_time_in_zone() {
        let b = business_hours_berlin();
        // 2026-03-02 is a Monday. 08:30 UTC = 09:30 CET.
        assert!(b.contains(ts("2026-03-02T08:30:00Z")));
        // 07:30 UTC = 08:30 CET: before opening.
        assert!(!b.contains(ts("2026-03-02T07:30:00Z")));
        // 16:00 UTC = 17:00 CET: end exclusive.
        assert!(!b.contains(ts("2026-03-02T16:00:00Z")));
        // Saturday.
        assert!(!b.contains(ts("2026-03-07T10:00:00Z")));
        // After DST start (2026-03-29) 07:30 UTC = 09:30 CEST.
        assert!(b.contains(ts("2026-03-30T07:30:00Z")));
    }

    #[test]
    fn negative_days_months_years() {
        let c = TimeIntervalConfig {
            name: "month-end".into(),
            time_intervals: vec![TimeRangeSpec {
                days_of_month: vec!["-2:-1".into()],
                months: vec!["february".into(), "11:december".into()],
                years: vec!["2026:2027".into()],
                ..Default::default()
            }],
        }
        .compile("x")
        .unwrap();
        assert!(c.contains(ts("2026-02-27T12:00:00Z")));
        assert!(c.contains(ts("2026-02-28T12:00:00Z")));
        assert!(!c.contains(ts("2026-02-26T12:00:00Z")));
        assert!(c.contains(ts("2026-12-31T00:00:00Z")));
        assert!(!c.contains(ts("2026-03-31T00:00:00Z")));
        assert!(!c.contains(ts("2028-02-29T00:00:00Z")));
    }

    #[test]
    fn bad_config_names_the_path() {
        let bad = |r: TimeRangeSpec| {
            TimeIntervalConfig {
                name: "n".into(),
                time_intervals: vec![TimeRangeSpec::default(), r],
            }
            .compile("time_intervals[3]")
            .unwrap_err()
            .to_string()
        };
        let e = bad(TimeRangeSpec {
            location: Some("Mars/Olympus".into()),
            ..Default::default()
        });
        assert!(
            e.contains("time_intervals[3].time_intervals[1].location"),
            "{e}"
        );
        let e = bad(TimeRangeSpec {
            weekdays: vec!["funday".into()],
            ..Default::default()
        });
        assert!(e.contains("time_intervals[1].weekdays[0]"), "{e}");
        let e = bad(TimeRangeSpec {
            times: vec![TimeOfDaySpec {
                start_time: "10:00".into(),
                end_time: "25:00".into(),
            }],
            ..Default::default()
        });
        assert!(e.contains("times[0]"), "{e}");
        let e = bad(TimeRangeSpec {
            days_of_month: vec!["0".into()],
            ..Default::default()
        });
        assert!(e.contains("days_of_month[0]"), "{e}");
        let e = bad(TimeRangeSpec {
            months: vec!["march:january".into()],
            ..Default::default()
        });
        assert!(e.contains("months[0]"), "{e}");
    }
}
