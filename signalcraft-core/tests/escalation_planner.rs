//! Escalation scenarios on a ManualClock: the paging planner driven through a real
//! (in-memory) Scheduler, so every step is a durable job that comes due.

use std::time::Duration;

use jiff::Timestamp;
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::escalation::{
    Directory, DirectoryConfig, EscalationLevel, EscalationPolicy, EscalationTarget, IncidentView,
    NotifyMode, Page, PagingEffect, PagingEvent, PagingPlanner, ReassignTarget, job_prefix,
    preview,
};
use signalcraft_core::incident::Urgency;
use signalcraft_core::memory::MemoryScheduler;
use signalcraft_core::oncall::{
    ContactKind, ContactMethod, NotificationRule, NotificationRules, Rotation, Schedule,
    ScheduleLayer, ShiftLength, User,
};
use signalcraft_core::scheduler::Scheduler;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const T0: &str = "2026-02-02T10:00:00Z";

fn user(id: &str) -> User {
    let mut u = User::new(id, id.to_uppercase());
    u.contact_methods = vec![
        ContactMethod {
            id: "push".into(),
            kind: ContactKind::Push,
            address: format!("device-{id}"),
        },
        ContactMethod {
            id: "sms".into(),
            kind: ContactKind::Sms,
            address: "+4915112345678".into(),
        },
        ContactMethod {
            id: "voice".into(),
            kind: ContactKind::Voice,
            address: "+4915112345678".into(),
        },
        ContactMethod {
            id: "mail".into(),
            kind: ContactKind::Email,
            address: format!("{id}@example.com"),
        },
    ];
    let rule = |d: i64, c: &str| NotificationRule {
        delay_minutes: d,
        contact_method: c.into(),
    };
    u.notification_rules = NotificationRules {
        high: vec![rule(0, "push"), rule(0, "sms"), rule(5, "voice")],
        low: vec![rule(0, "mail")],
    };
    u
}

fn level(targets: Vec<EscalationTarget>, delay: i64, mode: NotifyMode) -> EscalationLevel {
    EscalationLevel {
        targets,
        delay_minutes: delay,
        mode,
    }
}

fn u(id: &str) -> EscalationTarget {
    EscalationTarget::User(id.into())
}

fn directory() -> Directory {
    let schedule = Schedule {
        id: "primary".into(),
        name: "Primary".into(),
        time_zone: "UTC".into(),
        layers: vec![ScheduleLayer {
            name: "l".into(),
            rotation: Rotation {
                participants: vec!["ann".into(), "cat".into()],
                shift_length: ShiftLength::Days(1),
                start: "2026-02-01".parse().unwrap(),
                handoff_time: "09:00".into(),
            },
            restrictions: vec![],
        }],
        overrides: vec![],
        handoff_notifications: Default::default(),
    };
    Directory::new(DirectoryConfig {
        users: ["ann", "bob", "cat", "dan"]
            .iter()
            .map(|i| user(i))
            .collect(),
        teams: vec![],
        schedules: vec![schedule],
        escalation_policies: vec![
            EscalationPolicy {
                id: "main".into(),
                name: "Main".into(),
                levels: vec![
                    level(
                        vec![EscalationTarget::Schedule("primary".into())],
                        5,
                        NotifyMode::All,
                    ),
                    level(vec![u("bob")], 10, NotifyMode::All),
                ],
                repeat: 1,
            },
            EscalationPolicy {
                id: "twice".into(),
                name: "Twice".into(),
                levels: vec![
                    level(vec![u("ann")], 5, NotifyMode::All),
                    level(vec![u("bob")], 5, NotifyMode::All),
                ],
                repeat: 2,
            },
            EscalationPolicy {
                id: "rr".into(),
                name: "Round robin".into(),
                levels: vec![level(
                    vec![u("ann"), u("bob"), u("cat")],
                    30,
                    NotifyMode::RoundRobin,
                )],
                repeat: 1,
            },
            EscalationPolicy {
                id: "other".into(),
                name: "Other".into(),
                levels: vec![level(vec![u("dan")], 15, NotifyMode::All)],
                repeat: 1,
            },
        ],
    })
    .unwrap()
}

/// Executes planner effects against a MemoryScheduler and records pages and events
/// with the minute (since T0) they happened at.
struct Harness {
    dir: Directory,
    sched: MemoryScheduler,
    clock: ManualClock,
    view: IncidentView,
    pages: Vec<(i64, Page)>,
    events: Vec<(i64, PagingEvent)>,
}

impl Harness {
    fn new(policy: &str, urgency: Urgency, cursor: u64) -> Self {
        Harness {
            dir: directory(),
            sched: MemoryScheduler::new(),
            clock: ManualClock::new(ts(T0)),
            view: IncidentView {
                id: format!("inc-{cursor:010}"),
                number: cursor,
                title: "disk full".into(),
                urgency,
                acknowledged: false,
                resolved: false,
                policy_id: Some(policy.into()),
                round_robin_cursor: cursor,
                generation: 0,
            },
            pages: vec![],
            events: vec![],
        }
    }

    fn minute(&self) -> i64 {
        (self.clock.now() - ts(T0)).as_secs() / 60
    }

    async fn apply(&mut self, effects: Vec<PagingEffect>) {
        let m = self.minute();
        for e in effects {
            match e {
                PagingEffect::Schedule(job) => self.sched.schedule(job).await.unwrap(),
                PagingEffect::CancelPrefix(p) => {
                    self.sched.cancel_prefix(&p).await.unwrap();
                }
                PagingEffect::Page(p) => self.pages.push((m, p)),
                PagingEffect::Event(ev) => self.events.push((m, ev)),
            }
        }
    }

    async fn open(&mut self) {
        let eff = PagingPlanner::new(&self.dir).on_incident_opened(&self.view, self.clock.now());
        self.apply(eff).await;
    }

    /// Runs every job due up to `minute`, moving the clock job by job.
    async fn run_until(&mut self, minute: i64) {
        let end = ts(T0) + jiff::SignedDuration::from_mins(minute);
        while let Some(due) = self.sched.next_due().await.unwrap() {
            if due > end {
                break;
            }
            self.clock.set(due.max(self.clock.now()));
            let jobs = self
                .sched
                .claim_due(self.clock.now(), Duration::from_secs(60), 100)
                .await
                .unwrap();
            for job in jobs {
                let eff = PagingPlanner::new(&self.dir).on_job(&job, &self.view, self.clock.now());
                self.sched.complete(&job.id).await.unwrap();
                self.apply(eff).await;
            }
        }
        self.clock.set(end);
    }

    fn paged(&self) -> Vec<(i64, String, String)> {
        self.pages
            .iter()
            .map(|(m, p)| (*m, p.user_id.clone(), p.contact.id.clone()))
            .collect()
    }

    async fn pending(&self) -> usize {
        self.sched.pending().await.unwrap().len()
    }
}

fn p(m: i64, user: &str, c: &str) -> (i64, String, String) {
    (m, user.into(), c.into())
}

#[tokio::test]
async fn primary_no_ack_in_5_minutes_pages_secondary() {
    let mut h = Harness::new("main", Urgency::High, 0);
    h.open().await;
    // 10:00 UTC on 2026-02-02: day 1 of the rotation started 2026-02-01 09:00 -> cat.
    assert_eq!(h.paged(), vec![p(0, "cat", "push"), p(0, "cat", "sms")]);
    h.run_until(4).await;
    assert_eq!(h.pages.len(), 2, "nothing before minute 5");
    h.run_until(5).await;
    assert_eq!(
        h.paged()[2..],
        [
            p(5, "bob", "push"),
            p(5, "bob", "sms"),
            p(5, "cat", "voice")
        ]
    );
    let escalated: Vec<u32> = h
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            PagingEvent::Escalated { level, .. } => Some(*level),
            _ => None,
        })
        .collect();
    assert_eq!(escalated, vec![1, 2]);
    h.run_until(60).await;
    assert!(
        h.events
            .iter()
            .any(|(m, e)| *m == 15 && matches!(e, PagingEvent::PolicyExhausted { .. }))
    );
    assert_eq!(
        h.pages.len(),
        6,
        "bob's voice at minute 10 is the last page"
    );
    assert_eq!(h.pending().await, 0);
}

#[tokio::test]
async fn ack_at_minute_7_stops_everything() {
    let mut h = Harness::new("main", Urgency::High, 0);
    h.open().await;
    h.run_until(7).await;
    let before = h.pages.len();
    assert_eq!(before, 5);
    assert!(
        h.pending().await > 0,
        "bob's voice step and level 3 marker are armed"
    );
    h.view.acknowledged = true;
    let eff = PagingPlanner::new(&h.dir).on_acknowledged(&h.view, Some("bob"), "sms");
    h.apply(eff).await;
    assert_eq!(h.pending().await, 0);
    h.run_until(120).await;
    assert_eq!(h.pages.len(), before);
    assert!(h.events.iter().any(|(m, e)| *m == 7
        && *e
            == PagingEvent::Acknowledged {
                user: Some("bob".into()),
                channel: "sms".into()
            }));
    assert!(
        !h.events
            .iter()
            .any(|(_, e)| matches!(e, PagingEvent::PolicyExhausted { .. }))
    );
}

#[tokio::test]
async fn repeat_2_pages_the_policy_twice_then_stops() {
    let mut h = Harness::new("twice", Urgency::Low, 0);
    h.open().await;
    h.run_until(240).await;
    assert_eq!(
        h.paged(),
        vec![
            p(0, "ann", "mail"),
            p(5, "bob", "mail"),
            p(10, "ann", "mail"),
            p(15, "bob", "mail")
        ]
    );
    let exhausted: Vec<_> = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, PagingEvent::PolicyExhausted { passes: 2, .. }))
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(exhausted, vec![20]);
    // The two passes use distinct notification ids (no dedup of the second pass).
    let ids: std::collections::BTreeSet<_> =
        h.pages.iter().map(|(_, p)| &p.notification_id).collect();
    assert_eq!(ids.len(), 4);
}

#[tokio::test]
async fn resolve_cancels_pending_notification_rule_steps() {
    let mut h = Harness::new("main", Urgency::High, 0);
    h.open().await;
    h.run_until(2).await;
    assert!(
        h.sched
            .pending()
            .await
            .unwrap()
            .iter()
            .any(|j| j.id.contains("/rule/"))
    );
    h.view.resolved = true;
    let eff = PagingPlanner::new(&h.dir).on_resolved(&h.view);
    h.apply(eff).await;
    assert_eq!(h.pending().await, 0);
    h.run_until(60).await;
    assert_eq!(h.paged(), vec![p(0, "cat", "push"), p(0, "cat", "sms")]);
}

#[tokio::test]
async fn round_robin_rotates_across_incidents() {
    let mut who = Vec::new();
    for cursor in 0..4 {
        let mut h = Harness::new("rr", Urgency::Low, cursor);
        h.open().await;
        let users: Vec<_> = h.pages.iter().map(|(_, p)| p.user_id.clone()).collect();
        assert_eq!(users.len(), 1);
        who.push(users[0].clone());
    }
    assert_eq!(who, ["ann", "bob", "cat", "ann"]);
}

#[tokio::test]
async fn reassign_restarts_at_level_1_for_the_new_target() {
    let mut h = Harness::new("main", Urgency::Low, 0);
    h.open().await;
    h.run_until(6).await;
    assert_eq!(h.paged(), vec![p(0, "cat", "mail"), p(5, "bob", "mail")]);
    // Reassign to policy "other": the engine records the assignment and bumps the generation.
    h.view.policy_id = Some("other".into());
    h.view.generation += 1;
    let eff = PagingPlanner::new(&h.dir)
        .on_reassigned(
            &h.view,
            &ReassignTarget::Policy("other".into()),
            Some("ann"),
            h.clock.now(),
        )
        .unwrap();
    h.apply(eff).await;
    h.run_until(120).await;
    assert_eq!(h.paged()[2..], [p(6, "dan", "mail")]);
    assert!(h.events.iter().any(|(m, e)| *m == 21
        && matches!(e, PagingEvent::PolicyExhausted { policy_id, .. } if policy_id == "other")));
    // Reassign to a user: that user is paged as level 1.
    h.view.policy_id = None;
    h.view.generation += 1;
    let eff = PagingPlanner::new(&h.dir)
        .on_reassigned(
            &h.view,
            &ReassignTarget::User("ann".into()),
            None,
            h.clock.now(),
        )
        .unwrap();
    h.apply(eff).await;
    assert_eq!(
        h.pages.last().map(|(_, p)| (p.user_id.as_str(), p.level)),
        Some(("ann", 1))
    );
    let bad = PagingPlanner::new(&h.dir).on_reassigned(
        &h.view,
        &ReassignTarget::User("nobody".into()),
        None,
        h.clock.now(),
    );
    assert!(bad.is_err());
}

#[tokio::test]
async fn stale_jobs_of_an_older_generation_do_nothing() {
    let mut h = Harness::new("main", Urgency::High, 0);
    h.open().await;
    let jobs = h.sched.pending().await.unwrap();
    assert!(!jobs.is_empty());
    let mut newer = h.view.clone();
    newer.generation = 1;
    for j in &jobs {
        assert!(
            PagingPlanner::new(&h.dir)
                .on_job(j, &newer, ts(T0))
                .is_empty()
        );
    }
    // A job that runs twice yields the same notification ids (idempotent).
    let esc = jobs.iter().find(|j| j.id.contains("/esc/")).unwrap();
    let at = esc.due;
    let a = PagingPlanner::new(&h.dir).on_job(esc, &h.view, at);
    let b = PagingPlanner::new(&h.dir).on_job(esc, &h.view, at);
    assert_eq!(a, b);
    assert!(a.iter().any(|e| matches!(e, PagingEffect::Page(_))));
    assert!(
        jobs.iter()
            .all(|j| j.id.starts_with(&job_prefix(&h.view.id)))
    );
}

#[tokio::test]
async fn ad_hoc_page_user_with_a_message_stops_on_ack() {
    let mut h = Harness::new("main", Urgency::High, 0);
    h.view.policy_id = None;
    let eff = PagingPlanner::new(&h.dir)
        .page_user(
            &h.view,
            "dan",
            Some("need DB help"),
            Some("ann"),
            h.clock.now(),
        )
        .unwrap();
    h.apply(eff).await;
    assert_eq!(h.paged(), vec![p(0, "dan", "push"), p(0, "dan", "sms")]);
    assert!(
        h.pages
            .iter()
            .all(|(_, p)| p.level == 0 && p.message.as_deref() == Some("need DB help"))
    );
    assert!(h.events.iter().any(|(_, e)| matches!(e, PagingEvent::Paged { user, message: Some(m), .. } if user == "dan" && m == "need DB help")));
    h.run_until(3).await;
    h.view.acknowledged = true;
    let eff = PagingPlanner::new(&h.dir).on_acknowledged(&h.view, Some("dan"), "push");
    h.apply(eff).await;
    h.run_until(30).await;
    assert_eq!(h.pages.len(), 2, "the voice step at minute 5 never fires");
    assert!(
        PagingPlanner::new(&h.dir)
            .page_user(&h.view, "ghost", None, None, h.clock.now())
            .is_err()
    );
}

#[tokio::test]
async fn events_cover_every_page_attempt_for_the_audit_log() {
    let mut h = Harness::new("main", Urgency::High, 0);
    h.open().await;
    h.run_until(60).await;
    let attempts = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, PagingEvent::NotificationRuleStep { .. }))
        .count();
    assert_eq!(attempts, h.pages.len());
    for (_, e) in &h.events {
        assert!(e.audit_action().starts_with("paging."));
    }
}

#[test]
fn preview_lists_minute_level_user_and_contact() {
    let dir = directory();
    let pv = preview(&dir, "main", ts(T0), Urgency::High, 0).unwrap();
    let rows: Vec<_> = pv
        .iter()
        .map(|e| {
            (
                e.minute,
                e.level,
                e.user.as_str(),
                e.contact_method.id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (0, 1, "cat", "push"),
            (0, 1, "cat", "sms"),
            (5, 1, "cat", "voice"),
            (5, 2, "bob", "push"),
            (5, 2, "bob", "sms"),
            (10, 2, "bob", "voice"),
        ]
    );
    // At 08:00 the next day the schedule level resolves to whoever is on call then (cat
    // until 09:00), and at 09:30 to ann.
    let pv = preview(&dir, "main", ts("2026-02-03T09:30:00Z"), Urgency::Low, 0).unwrap();
    assert_eq!(pv[0].user, "ann");
    assert!(preview(&dir, "missing", ts(T0), Urgency::Low, 0).is_err());
}
