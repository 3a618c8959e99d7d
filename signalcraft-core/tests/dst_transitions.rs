//! DST rules across the 2026 and 2027 transitions of Europe/Berlin, America/New_York,
//! Australia/Sydney (southern hemisphere) and Australia/Adelaide (30-minute offset),
//! plus Asia/Kolkata (fixed +05:30):
//!
//! * day/week shifts keep their local handoff wall time across transitions;
//! * a handoff in a spring-forward gap moves to the first valid instant after it;
//! * a handoff in a fall-back fold happens at the first occurrence.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use signalcraft_core::oncall::{CompiledSchedule, Rotation, Schedule, ScheduleLayer, ShiftLength};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn daily(tz: &str, handoff: &str, start: &str, len: ShiftLength) -> CompiledSchedule {
    CompiledSchedule::new(Schedule {
        id: "s".into(),
        name: "S".into(),
        time_zone: tz.into(),
        layers: vec![ScheduleLayer {
            name: "l".into(),
            rotation: Rotation {
                participants: vec!["a".into(), "b".into()],
                shift_length: len,
                start: start.parse().unwrap(),
                handoff_time: handoff.into(),
            },
            restrictions: vec![],
        }],
        overrides: vec![],
        handoff_notifications: Default::default(),
    })
    .unwrap()
}

fn handoff_instants(s: &CompiledSchedule, from: &str, to: &str) -> Vec<Timestamp> {
    s.handoffs(ts(from), ts(to))
        .into_iter()
        .map(|h| h.at)
        .collect()
}

/// The transitions of `tz` in 2026 and 2027.
fn transitions(tz: &TimeZone) -> Vec<Timestamp> {
    tz.following(ts("2026-01-01T00:00:00Z"))
        .map(|t| t.timestamp())
        .take_while(|t| *t < ts("2028-01-01T00:00:00Z"))
        .collect()
}

/// The instant the rules expect for local wall time `dt` — computed independently of
/// the code under test, from the zone's offsets just before and after.
fn expected(tz: &TimeZone, dt: DateTime) -> Timestamp {
    // Candidates: dt read with every offset the zone uses around that day.
    let mut valid: Vec<Timestamp> = Vec::new();
    for secs in (-14 * 3600..=14 * 3600).step_by(15 * 60) {
        let off = jiff::tz::Offset::from_seconds(secs).unwrap();
        if let Ok(t) = off.to_timestamp(dt)
            && tz.to_offset(t) == off
        {
            valid.push(t);
        }
    }
    valid.sort();
    match valid.first() {
        // Exists once or twice: the first occurrence.
        Some(t) => *t,
        // In a gap: the first instant whose local wall time is later than dt.
        None => {
            let probe =
                jiff::tz::Offset::UTC.to_timestamp(dt).unwrap() - SignedDuration::from_hours(15);
            tz.following(probe)
                .map(|t| t.timestamp())
                .find(|t| tz.to_datetime(*t) > dt)
                .unwrap()
        }
    }
}

const ZONES: [&str; 5] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Asia/Kolkata",
];

#[test]
fn every_zone_has_the_expected_transitions() {
    for z in ZONES {
        let tz = TimeZone::get(z).unwrap();
        let n = transitions(&tz).len();
        let want = if z == "Asia/Kolkata" { 0 } else { 4 };
        assert_eq!(n, want, "{z}");
    }
}

/// For every transition, daily rotations at several handoff times (including times
/// inside the gap/fold) hand off at exactly the expected instant on the days around it.
#[test]
fn daily_handoffs_follow_the_rules_around_every_transition() {
    for z in ZONES {
        let tz = TimeZone::get(z).unwrap();
        let mut checked = 0;
        let trans = transitions(&tz);
        let days: Vec<Date> = if trans.is_empty() {
            vec!["2026-03-29".parse().unwrap(), "2027-10-31".parse().unwrap()]
        } else {
            trans.iter().map(|t| tz.to_datetime(*t).date()).collect()
        };
        for day in days {
            for hm in [
                "00:30", "01:30", "02:00", "02:30", "03:00", "09:00", "23:30",
            ] {
                let start = day.checked_sub(jiff::Span::new().days(10)).unwrap();
                let s = daily(z, hm, &start.to_string(), ShiftLength::Days(1));
                let hm_t: jiff::civil::Time = hm.parse().unwrap();
                for d in -3i64..=3 {
                    let local_day = day.checked_add(jiff::Span::new().days(d)).unwrap();
                    let want = expected(&tz, local_day.to_datetime(hm_t));
                    let win_from = want - SignedDuration::from_mins(1);
                    let win_to = want + SignedDuration::from_mins(1);
                    let got = handoff_instants(&s, &win_from.to_string(), &win_to.to_string());
                    assert_eq!(got, vec![want], "{z} {local_day} {hm}");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 7 * 7 * 2, "{z}: {checked}");
    }
}

#[test]
fn berlin_gap_and_fold_explicit() {
    // 2026-03-29: 02:00 CET -> 03:00 CEST. A 02:30 handoff happens at 03:00 CEST.
    let s = daily("Europe/Berlin", "02:30", "2026-03-20", ShiftLength::Days(1));
    let h = handoff_instants(&s, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z");
    assert_eq!(
        h,
        vec![
            ts("2026-03-28T01:30:00Z"),
            ts("2026-03-29T01:00:00Z"),
            ts("2026-03-30T00:30:00Z")
        ]
    );
    // 2026-10-25: 03:00 CEST -> 02:00 CET. A 02:30 handoff happens at the first 02:30 (CEST).
    let s = daily("Europe/Berlin", "02:30", "2026-10-20", ShiftLength::Days(1));
    let h = handoff_instants(&s, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z");
    assert_eq!(
        h,
        vec![
            ts("2026-10-24T00:30:00Z"),
            ts("2026-10-25T00:30:00Z"),
            ts("2026-10-26T01:30:00Z")
        ]
    );
    // 09:00 stays 09:00: the shift spanning spring forward lasts 23 h, fall back 25 h.
    let s = daily("Europe/Berlin", "09:00", "2027-03-01", ShiftLength::Days(1));
    let shifts = s.render(ts("2027-03-27T08:00:00Z"), ts("2027-03-28T07:00:00Z"));
    assert_eq!(shifts.len(), 1);
    assert_eq!(
        shifts[0].end - shifts[0].start,
        SignedDuration::from_hours(23)
    );
    let shifts = s.render(ts("2027-10-30T07:00:00Z"), ts("2027-11-01T08:00:00Z"));
    let lens: Vec<_> = shifts.iter().map(|s| s.end - s.start).collect();
    assert_eq!(
        lens,
        vec![
            SignedDuration::from_hours(25),
            SignedDuration::from_hours(24)
        ],
        "{shifts:?}"
    );
}

#[test]
fn new_york_2026_2027() {
    // Spring forward 2026-03-08 02:00 EST -> 03:00 EDT; 02:30 handoff -> 07:00Z.
    let s = daily(
        "America/New_York",
        "02:30",
        "2026-03-01",
        ShiftLength::Days(1),
    );
    let h = handoff_instants(&s, "2026-03-08T00:00:00Z", "2026-03-08T12:00:00Z");
    assert_eq!(h, vec![ts("2026-03-08T07:00:00Z")]);
    // Fall back 2027-11-07 02:00 EDT -> 01:00 EST; 01:30 -> first (EDT) = 05:30Z.
    let s = daily(
        "America/New_York",
        "01:30",
        "2027-11-01",
        ShiftLength::Days(1),
    );
    let h = handoff_instants(&s, "2027-11-07T00:00:00Z", "2027-11-07T12:00:00Z");
    assert_eq!(h, vec![ts("2027-11-07T05:30:00Z")]);
    // Weekly Monday 09:00 across both 2026 transitions keeps 09:00 local.
    let s = daily(
        "America/New_York",
        "09:00",
        "2026-01-05",
        ShiftLength::Weeks(1),
    );
    let tz = TimeZone::get("America/New_York").unwrap();
    for h in s.handoffs(ts("2026-01-01T00:00:00Z"), ts("2027-01-01T00:00:00Z")) {
        let local = tz.to_datetime(h.at);
        assert_eq!((local.hour(), local.minute()), (9, 0), "{local}");
        assert_eq!(local.weekday(), jiff::civil::Weekday::Monday);
    }
}

#[test]
fn sydney_and_adelaide_southern_hemisphere() {
    // Sydney: DST ends 2026-04-05 03:00 AEDT -> 02:00 AEST; starts 2026-10-04 02:00 -> 03:00.
    let s = daily(
        "Australia/Sydney",
        "02:30",
        "2026-03-25",
        ShiftLength::Days(1),
    );
    assert_eq!(
        handoff_instants(&s, "2026-04-04T12:00:00Z", "2026-04-05T12:00:00Z"),
        vec![ts("2026-04-04T15:30:00Z")]
    );
    let s = daily(
        "Australia/Sydney",
        "02:30",
        "2026-09-25",
        ShiftLength::Days(1),
    );
    assert_eq!(
        handoff_instants(&s, "2026-10-03T12:00:00Z", "2026-10-04T12:00:00Z"),
        vec![ts("2026-10-03T16:00:00Z")]
    );
    // Adelaide (+09:30/+10:30): same dates, half-hour offsets.
    let s = daily(
        "Australia/Adelaide",
        "02:30",
        "2027-03-25",
        ShiftLength::Days(1),
    );
    assert_eq!(
        handoff_instants(&s, "2027-04-03T12:00:00Z", "2027-04-04T12:00:00Z"),
        vec![ts("2027-04-03T16:00:00Z")]
    );
    let s = daily(
        "Australia/Adelaide",
        "02:30",
        "2027-09-25",
        ShiftLength::Days(1),
    );
    assert_eq!(
        handoff_instants(&s, "2027-10-02T12:00:00Z", "2027-10-03T12:00:00Z"),
        vec![ts("2027-10-02T16:30:00Z")]
    );
}

#[test]
fn kolkata_half_hour_offset_has_fixed_handoffs() {
    let s = daily("Asia/Kolkata", "09:00", "2026-01-01", ShiftLength::Days(1));
    for h in s.handoffs(ts("2026-01-01T00:00:00Z"), ts("2028-01-01T00:00:00Z")) {
        assert_eq!(
            (h.at.as_second() - 3 * 3600 - 30 * 60).rem_euclid(86400),
            0,
            "{}",
            h.at
        );
    }
    assert_eq!(
        s.who_is_on_call(ts("2027-06-01T03:29:59Z"))
            .map(|o| o.user.to_string()),
        s.who_is_on_call(ts("2027-05-31T03:30:00Z"))
            .map(|o| o.user.to_string())
    );
}

#[test]
fn twelve_hour_shifts_keep_wall_times() {
    // 08:00/20:00 Berlin across spring forward and fall back.
    let s = daily(
        "Europe/Berlin",
        "08:00",
        "2026-03-01",
        ShiftLength::Hours(12),
    );
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    for h in s.handoffs(ts("2026-03-25T00:00:00Z"), ts("2026-11-01T00:00:00Z")) {
        let l = tz.to_datetime(h.at);
        assert!(matches!((l.hour(), l.minute()), (8, 0) | (20, 0)), "{l}");
    }
}
