//! iCalendar (RFC 5545) export of final shifts: one `VEVENT` per shift.
//!
//! * Times are UTC (`DTSTART:20260105T080000Z`), so no `VTIMEZONE` is needed and
//!   every client shows the shift in its own zone.
//! * `UID` is `<schedule>.<user>.<start unix seconds>.<source>@signalcraft`, computed
//!   from the **unclipped** shift, so re-exporting (another window, another day)
//!   keeps the UID of an unchanged shift and calendar clients update rather than
//!   duplicate. A shift that changes start gets a new UID (the old one disappears).
//! * Lines end in CRLF and are folded at 75 octets (continuation lines start with a
//!   space, never splitting a UTF-8 character); TEXT values escape `\`, `;`, `,` and
//!   newlines.

use std::fmt::Write as _;

use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};

use super::compiled::{CompiledSchedule, OnCallSource, Shift};
use super::people::User;

/// How far before/after the window shifts are rendered to find their true edges.
const EDGE_SEARCH: SignedDuration = SignedDuration::from_hours(35 * 24);

/// A calendar of every final shift of `schedule` intersecting `[from, to)`.
/// `user` looks up display names; `now` is the `DTSTAMP`.
pub fn schedule_calendar<'u>(
    schedule: &CompiledSchedule,
    user: &dyn Fn(&str) -> Option<&'u User>,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> String {
    let mut cal = Calendar::new(&format!("On call: {}", schedule.config().name));
    for s in shifts_touching(schedule, from, to) {
        cal.event(schedule, &s, user(&s.user), now);
    }
    cal.finish()
}

/// A calendar of `who`'s final shifts on each of `schedules` intersecting `[from, to)`.
pub fn user_calendar(
    who: &User,
    schedules: &[&CompiledSchedule],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> String {
    let mut cal = Calendar::new(&format!("On call: {}", who.name));
    let mut all: Vec<(&CompiledSchedule, Shift)> = Vec::new();
    for sch in schedules {
        for s in shifts_touching(sch, from, to) {
            if s.user == who.id {
                all.push((sch, s));
            }
        }
    }
    all.sort_by(|a, b| (a.1.start, a.0.id()).cmp(&(b.1.start, b.0.id())));
    for (sch, s) in all {
        cal.event(sch, &s, Some(who), now);
    }
    cal.finish()
}

/// Shifts intersecting `[from, to)`, with their true (unclipped) edges where those
/// lie within [`EDGE_SEARCH`] of the window.
fn shifts_touching(schedule: &CompiledSchedule, from: Timestamp, to: Timestamp) -> Vec<Shift> {
    if to <= from {
        return Vec::new();
    }
    let wide_from = from.checked_sub(EDGE_SEARCH).unwrap_or(Timestamp::MIN);
    let wide_to = to.checked_add(EDGE_SEARCH).unwrap_or(Timestamp::MAX);
    let mut v = schedule.render(wide_from, wide_to);
    v.retain(|s| s.end > from && s.start < to);
    v
}

fn utc(t: Timestamp) -> String {
    Offset::UTC
        .to_datetime(t)
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Escapes a TEXT value (RFC 5545 §3.3.11).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends `line` folded at 75 octets, with CRLF (RFC 5545 §3.1).
pub fn push_folded(out: &mut String, line: &str) {
    let mut budget = 75;
    let mut used = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > budget {
            out.push_str("\r\n ");
            // The leading space counts toward the next line's 75 octets.
            budget = 74;
            used = 0;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
}

struct Calendar {
    out: String,
}

impl Calendar {
    fn new(name: &str) -> Self {
        let mut out = String::new();
        for l in [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//SignalCraft//On-call schedules//EN",
            "CALSCALE:GREGORIAN",
            "METHOD:PUBLISH",
        ] {
            push_folded(&mut out, l);
        }
        push_folded(&mut out, &format!("X-WR-CALNAME:{}", escape_text(name)));
        Calendar { out }
    }

    fn event(&mut self, sch: &CompiledSchedule, s: &Shift, user: Option<&User>, now: Timestamp) {
        let source = match s.source {
            OnCallSource::Layer { index } => format!("l{index}"),
            OnCallSource::Override { index } => format!("o{index}"),
        };
        let name = user.map(|u| u.name.as_str()).unwrap_or(&s.user);
        let how = sch.source_name(s.source);
        let mut desc = String::new();
        let _ = write!(
            desc,
            "{name} is on call for {} ({}).\nSource: {how}",
            sch.config().name,
            sch.id()
        );
        let lines = [
            "BEGIN:VEVENT".to_string(),
            format!(
                "UID:{}.{}.{}.{source}@signalcraft",
                sch.id(),
                s.user,
                s.start.as_second()
            ),
            format!("DTSTAMP:{}", utc(now)),
            format!("DTSTART:{}", utc(s.start)),
            format!("DTEND:{}", utc(s.end)),
            format!(
                "SUMMARY:{}",
                escape_text(&format!("On call: {name} – {}", sch.config().name))
            ),
            format!("DESCRIPTION:{}", escape_text(&desc)),
            "TRANSP:TRANSPARENT".to_string(),
            "END:VEVENT".to_string(),
        ];
        for l in lines {
            push_folded(&mut self.out, &l);
        }
    }

    fn finish(mut self) -> String {
        push_folded(&mut self.out, "END:VCALENDAR");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_respects_75_octets_and_utf8() {
        let mut out = String::new();
        let line = format!("SUMMARY:{}", "é".repeat(100));
        push_folded(&mut out, &line);
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets", l.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded.trim_end(), line);
    }

    #[test]
    fn text_escaping() {
        assert_eq!(escape_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}
