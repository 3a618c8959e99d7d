//! iCalendar export, parsed by a real iCalendar parser (Python `icalendar`).

use std::io::Write;
use std::process::{Command, Stdio};

use jiff::Timestamp;
use signalcraft_core::oncall::ical::{schedule_calendar, user_calendar};
use signalcraft_core::oncall::{
    CompiledSchedule, Override, Rotation, Schedule, ScheduleLayer, ShiftLength, User,
};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn users() -> Vec<User> {
    vec![
        User::new("ann", "Ann Müller, SRE; \"lead\" \\ ops"),
        User::new("bob", "Bob"),
    ]
}

fn schedule(overrides: Vec<Override>) -> CompiledSchedule {
    CompiledSchedule::new(Schedule {
        id: "primary".into(),
        name: "Primary on-call for the payments platform, Europe; a very long name indeed".into(),
        time_zone: "Europe/Berlin".into(),
        layers: vec![ScheduleLayer {
            name: "weekly".into(),
            rotation: Rotation {
                participants: vec!["ann".into(), "bob".into()],
                shift_length: ShiftLength::Weeks(1),
                start: "2026-03-02".parse().unwrap(),
                handoff_time: "09:00".into(),
            },
            restrictions: vec![],
        }],
        overrides,
        handoff_notifications: Default::default(),
    })
    .unwrap()
}

/// Parses `ics` with Python's icalendar and returns one line per VEVENT:
/// `uid|dtstart iso|dtend iso|summary`.
fn parse_with_python(ics: &str) -> Vec<String> {
    let script = r#"
import sys, icalendar
data = sys.stdin.buffer.read()
cal = icalendar.Calendar.from_ical(data)
assert cal.get('VERSION') == '2.0', cal.get('VERSION')
assert cal.get('PRODID')
for ev in cal.walk('VEVENT'):
    for k in ('UID', 'DTSTAMP', 'DTSTART', 'DTEND', 'SUMMARY'):
        assert k in ev, k
    print('|'.join([str(ev['UID']), ev['DTSTART'].dt.isoformat(), ev['DTEND'].dt.isoformat(), str(ev['SUMMARY'])]))
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (install icalendar via .ci/install-deps)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "parser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn schedule_export_parses_and_matches_rendered_shifts() {
    let s = schedule(vec![Override {
        id: Some("cover".into()),
        user: "bob".into(),
        start: ts("2026-03-04T12:00:00Z"),
        end: ts("2026-03-05T12:00:00Z"),
    }]);
    let us = users();
    let find = |id: &str| us.iter().find(|u| u.id == id);
    let (from, to) = (ts("2026-03-02T00:00:00Z"), ts("2026-04-06T00:00:00Z"));
    let ics = schedule_calendar(&s, &find, from, to, ts("2026-03-01T00:00:00Z"));
    // Structure: CRLF everywhere, lines ≤ 75 octets.
    assert!(ics.ends_with("END:VCALENDAR\r\n"));
    assert!(!ics.replace("\r\n", "").contains('\n'));
    for line in ics.split("\r\n") {
        assert!(line.len() <= 75, "{} octets: {line}", line.len());
    }
    assert!(ics.contains("\r\n "), "long lines are folded");
    let events = parse_with_python(&ics);
    let shifts = s.render(from, to);
    assert_eq!(events.len(), shifts.len());
    for (i, (ev, sh)) in events.iter().zip(&shifts).enumerate() {
        let parts: Vec<&str> = ev.split('|').collect();
        let start: Timestamp = parts[1].parse().unwrap();
        let end: Timestamp = parts[2].parse().unwrap();
        // Events carry the true shift edges: the last shift runs past the window end.
        assert_eq!(start, sh.start);
        if i + 1 < shifts.len() {
            assert_eq!(end, sh.end);
        } else {
            assert_eq!((sh.end, end), (to, ts("2026-04-06T07:00:00Z")));
        }
        let name = &find(&sh.user).unwrap().name;
        assert!(
            parts[3].contains(name.as_str()),
            "escaping round-trips: {}",
            parts[3]
        );
    }
}

#[test]
fn uids_are_stable_across_windows_and_user_export_filters() {
    let s = schedule(vec![]);
    let us = users();
    let find = |id: &str| us.iter().find(|u| u.id == id);
    let now = ts("2026-03-01T00:00:00Z");
    let a = parse_with_python(&schedule_calendar(
        &s,
        &find,
        ts("2026-03-02T00:00:00Z"),
        ts("2026-03-30T00:00:00Z"),
        now,
    ));
    // A window starting mid-shift still reports the shift's true start and the same UID.
    let b = parse_with_python(&schedule_calendar(
        &s,
        &find,
        ts("2026-03-12T00:00:00Z"),
        ts("2026-04-20T00:00:00Z"),
        now,
    ));
    let uid = |l: &String| l.split('|').next().unwrap().to_string();
    let shared: Vec<_> = a.iter().filter(|l| b.contains(l)).collect();
    assert!(shared.len() >= 2, "{a:?} vs {b:?}");
    let a_uids: Vec<_> = a.iter().map(uid).collect();
    let mut dedup = a_uids.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), a_uids.len(), "UIDs are unique");
    let ann = &us[0];
    let mine = parse_with_python(&user_calendar(
        ann,
        &[&s],
        ts("2026-03-02T00:00:00Z"),
        ts("2026-03-30T00:00:00Z"),
        now,
    ));
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|l| a.contains(l)));
    assert!(mine.iter().all(|l| l.contains("Ann")));
}
