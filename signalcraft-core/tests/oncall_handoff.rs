//! Handoff planning: incoming/outgoing notices at a handoff, the next handoff job,
//! and the uncovered-gap warning for the next 7 days.

use jiff::Timestamp;
use signalcraft_core::oncall::handoff::{coverage_warning, next_handoff_job, plan_handoff};
use signalcraft_core::oncall::{
    CompiledSchedule, ContactKind, ContactMethod, HandoffNotifications, Override, Restriction,
    Rotation, Schedule, ScheduleEvent, ScheduleLayer, ShiftLength, User,
};
use signalcraft_core::scheduler::JobKind;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn users() -> Vec<User> {
    ["ann", "bob"]
        .iter()
        .map(|id| {
            let mut u = User::new(*id, id.to_uppercase());
            u.contact_methods = vec![ContactMethod {
                id: "mail".into(),
                kind: ContactKind::Email,
                address: format!("{id}@example.com"),
            }];
            u
        })
        .collect()
}

fn schedule(restrictions: Vec<Restriction>, outgoing: bool) -> CompiledSchedule {
    CompiledSchedule::new(Schedule {
        id: "s".into(),
        name: "Support".into(),
        time_zone: "America/New_York".into(),
        layers: vec![ScheduleLayer {
            name: "l".into(),
            rotation: Rotation {
                participants: vec!["ann".into(), "bob".into()],
                shift_length: ShiftLength::Days(1),
                start: "2026-03-02".parse().unwrap(),
                handoff_time: "09:00".into(),
            },
            restrictions,
        }],
        overrides: vec![Override {
            id: None,
            user: "bob".into(),
            start: ts("2026-03-10T20:00:00Z"),
            end: ts("2026-03-10T22:00:00Z"),
        }],
        handoff_notifications: HandoffNotifications {
            incoming: true,
            outgoing,
        },
    })
    .unwrap()
}

#[test]
fn handoff_notices_and_next_job() {
    let s = schedule(vec![], true);
    let us = users();
    let find = |id: &str| us.iter().find(|u| u.id == id);
    // 2026-03-09 09:00 EDT (after the 2026-03-08 spring forward) = 13:00Z: shift 7 -> bob, after ann.
    let job = next_handoff_job(&s, ts("2026-03-09T12:00:00Z")).unwrap();
    assert_eq!(job.due, ts("2026-03-09T13:00:00Z"));
    assert_eq!(
        job.kind,
        JobKind::Handoff {
            schedule_id: "s".into()
        }
    );
    let plan = plan_handoff(&s, &find, job.due, job.due);
    let got: Vec<(&str, bool, &str)> = plan
        .notices
        .iter()
        .map(|n| (n.user.as_str(), n.incoming, n.contacts[0].address.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("bob", true, "bob@example.com"),
            ("ann", false, "ann@example.com")
        ]
    );
    // Planning again gives the same ids (idempotent).
    let again = plan_handoff(&s, &find, job.due, job.due);
    assert_eq!(plan.notices, again.notices);
    // The next handoff is the rotation's, back to ann at 09:00 EDT on the 10th (the
    // override at 20:00Z comes later).
    assert_eq!(plan.next_job.unwrap().due, ts("2026-03-10T13:00:00Z"));
    assert!(plan.events.is_empty(), "fully covered");
    // Without outgoing notifications only the incoming person is told.
    let s2 = schedule(vec![], false);
    let plan = plan_handoff(&s2, &find, job.due, job.due);
    assert_eq!(plan.notices.len(), 1);
}

#[test]
fn uncovered_gap_in_the_next_7_days_is_a_warning() {
    let s = schedule(
        vec![Restriction::TimeOfDay {
            start: "08:00".into(),
            end: "20:00".into(),
        }],
        false,
    );
    let now = ts("2026-03-09T12:00:00Z");
    match coverage_warning(&s, now) {
        Some(ScheduleEvent::UncoveredGap {
            schedule_id,
            gap,
            gaps,
        }) => {
            assert_eq!(schedule_id, "s");
            // 20:00 EDT on the 9th = 00:00Z on the 10th, until 08:00 EDT = 12:00Z.
            assert_eq!(
                (gap.start, gap.end),
                (ts("2026-03-10T00:00:00Z"), ts("2026-03-10T12:00:00Z"))
            );
            assert!(gaps >= 7, "{gaps}");
        }
        other => panic!("expected a gap warning, got {other:?}"),
    }
    assert_eq!(coverage_warning(&schedule(vec![], false), now), None);
}
