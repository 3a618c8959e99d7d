//! End-to-end paging through the real Engine on a ManualClock: alert → incident →
//! escalation policy → on-call schedule → notification rules → Page notifications,
//! with ack, resolve, reassign, page-user, timeline/audit entries, restart and
//! handoff notifications.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use signalcraft_core::CoreError;
use signalcraft_core::channel::{Notification, NotificationKind};
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::engine::{Engine, EngineConfig, Notifier, PlannerEscalation};
use signalcraft_core::escalation::{Directory, DirectoryConfig, arm_handoffs, run_handoff_job};
use signalcraft_core::incident::{Actor, AuditQuery, EntryKind, IncidentFilter};
use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::model::{Alert, Event, Labels, Severity, Source};
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::store::Store;

const T0: &str = "2026-02-02T10:00:00Z";

struct Recorder {
    clock: ManualClock,
    sent: Mutex<Vec<(i64, Notification)>>,
}

#[async_trait]
impl Notifier for Recorder {
    async fn notify(&self, n: Notification) -> Result<(), CoreError> {
        let m = (self.clock.now() - T0.parse::<Timestamp>().unwrap()).as_secs();
        let mut sent = self.sent.lock();
        // The notification id is the idempotency key: a replay is not a second page.
        if !sent.iter().any(|(_, o)| o.id == n.id) {
            sent.push((m, n));
        }
        Ok(())
    }
}

fn directory() -> Directory {
    let cfg: DirectoryConfig = serde_json::from_value(serde_json::json!({
        "users": [
            {"id": "ann", "name": "Ann", "contact_methods": [
                {"id": "push", "kind": "push", "address": "tok-ann"},
                {"id": "voice", "kind": "voice", "address": "+4930111111111"}],
             "notification_rules": {"high": [
                {"delay_minutes": 0, "contact_method": "push"},
                {"delay_minutes": 3, "contact_method": "voice"}]}},
            {"id": "bob", "name": "Bob", "contact_methods": [
                {"id": "sms", "kind": "sms", "address": "+4930222222222"}]},
            {"id": "cat", "name": "Cat", "contact_methods": [
                {"id": "mail", "kind": "email", "address": "cat@example.com"}]}
        ],
        "schedules": [{
            "id": "primary", "name": "Primary", "time_zone": "Europe/Berlin",
            "layers": [{"name": "daily", "rotation": {"participants": ["ann", "cat"],
                "shift_length": {"days": 1}, "start": "2026-02-02", "handoff_time": "09:00"}}],
            "handoff_notifications": {"incoming": true, "outgoing": true}
        }],
        "escalation_policies": [
            {"id": "db", "name": "DB", "levels": [
                {"targets": [{"type": "schedule", "id": "primary"}], "delay_minutes": 5},
                {"targets": [{"type": "user", "id": "bob"}], "delay_minutes": 10}]},
            {"id": "cat-only", "name": "Cat", "levels": [
                {"targets": [{"type": "user", "id": "cat"}], "delay_minutes": 10}]}
        ]
    }))
    .unwrap();
    Directory::new(cfg).unwrap()
}

struct World {
    engine: Engine,
    clock: ManualClock,
    rec: Arc<Recorder>,
    store: Arc<MemoryStore>,
    scheduler: Arc<MemoryScheduler>,
    dir: Directory,
}

fn engine_config() -> EngineConfig {
    serde_json::from_value(serde_json::json!({"route": {
        "group_by": ["alertname"], "group_wait": "0s", "group_interval": "5m",
        "escalation_policy": "db",
        "notify": [{"channel": "rec", "target": "#ops"}]
    }}))
    .unwrap()
}

impl World {
    fn new() -> Self {
        Self::with_parts(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryScheduler::new()),
            ManualClock::new(T0.parse().unwrap()),
        )
    }

    fn with_parts(
        store: Arc<MemoryStore>,
        scheduler: Arc<MemoryScheduler>,
        clock: ManualClock,
    ) -> Self {
        let rec = Arc::new(Recorder {
            clock: clock.clone(),
            sent: Mutex::new(Vec::new()),
        });
        let hook = Arc::new(PlannerEscalation::new(directory()));
        let engine = Engine::builder(engine_config())
            .store(store.clone() as Arc<dyn Store>)
            .scheduler(scheduler.clone() as Arc<dyn Scheduler>)
            .clock(Arc::new(clock.clone()))
            .notifier(rec.clone())
            .escalation(hook.clone())
            .build()
            .unwrap();
        World {
            engine,
            clock,
            rec,
            store,
            scheduler,
            dir: directory(),
        }
    }

    /// Advances to `m` minutes after T0, running every job at its due time.
    async fn at_minute(&self, m: i64) {
        let target = T0.parse::<Timestamp>().unwrap() + SignedDuration::from_mins(m);
        while let Some(n) = self.engine.next_wakeup().await.unwrap() {
            if n > target {
                break;
            }
            if n > self.clock.now() {
                self.clock.set(n);
            }
            self.engine.run_due_jobs().await.unwrap();
        }
        self.clock.set(target);
        self.engine.run_due_jobs().await.unwrap();
    }

    async fn fire(&self, name: &str) -> String {
        let mut l = Labels::new();
        l.insert("alertname".into(), name.into());
        let mut a = Alert::firing(
            Source {
                provider: "test".into(),
                integration: "prom".into(),
            },
            format!("{name} is firing"),
            l,
        );
        a.severity = Severity::Critical;
        self.engine.ingest(vec![Event::Alert(a)]).await.unwrap();
        self.engine.run_due_jobs().await.unwrap();
        let items = self.engine.list_incidents(&IncidentFilter::default()).items;
        items
            .iter()
            .find(|i| i.title.contains(name))
            .unwrap()
            .id
            .clone()
    }

    /// (minute, user, channel-from-id) of every page so far.
    fn pages(&self) -> Vec<(i64, String, String)> {
        self.rec
            .sent
            .lock()
            .iter()
            .filter(|(_, n)| matches!(n.kind, NotificationKind::Page { .. }))
            .map(|(s, n)| {
                let ch = n.id.split('/').nth(1).unwrap_or("").to_string();
                (*s / 60, n.target.user.clone().unwrap_or_default(), ch)
            })
            .collect()
    }
}

fn p(m: i64, u: &str, c: &str) -> (i64, String, String) {
    (m, u.into(), c.into())
}

#[tokio::test]
async fn no_ack_escalates_to_the_secondary_and_ack_stops_everything() {
    let w = World::new();
    let id = w.fire("DiskFull").await;
    // 10:00Z = 11:00 Berlin on the first day: ann is on call.
    assert_eq!(w.pages(), vec![p(0, "ann", "push")]);
    w.at_minute(4).await;
    assert_eq!(w.pages(), vec![p(0, "ann", "push"), p(3, "ann", "voice")]);
    w.at_minute(5).await;
    assert_eq!(w.pages()[2..], [p(5, "bob", "sms")]);
    // Ack at minute 7 from Slack: nothing more, no pending paging job.
    w.at_minute(7).await;
    w.engine
        .acknowledge(&id, Actor::integration("slack"))
        .await
        .unwrap();
    let pending = w.scheduler.pending().await.unwrap();
    assert!(
        pending.iter().all(|j| !j.id.starts_with("page/")),
        "{pending:?}"
    );
    w.at_minute(120).await;
    assert_eq!(w.pages().len(), 3);
    // Timeline: escalations, page attempts with channel, the ack with its channel.
    let tl = w.engine.timeline(&id).await.unwrap();
    let levels: Vec<u32> = tl
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Escalated { level, .. } => Some(*level),
            _ => None,
        })
        .collect();
    assert_eq!(levels, vec![1, 2]);
    let paged: Vec<(String, Option<String>)> = tl
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Paged { user, channel, .. } => Some((user.clone(), channel.clone())),
            _ => None,
        })
        .collect();
    // One `paged` entry when a user is paged (no channel), one per page attempt
    // (with the contact method's channel).
    assert_eq!(
        paged,
        vec![
            ("ann".into(), None),
            ("ann".into(), Some("push".into())),
            ("ann".into(), Some("voice".into())),
            ("bob".into(), None),
            ("bob".into(), Some("sms".into()))
        ]
    );
    assert!(
        tl.iter()
            .any(|e| matches!(&e.kind, EntryKind::Custom { name, details }
        if name == "paging.acknowledged" && details["channel"] == "slack"))
    );
    // The audit log has an entry for every page attempt and escalation step.
    let audit = w
        .engine
        .audit(&AuditQuery {
            target: Some(format!("incident/{id}")),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "incident.paged")
            .count(),
        5
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "incident.escalated")
            .count(),
        2
    );
    // Queryable per user: bob's audit trail holds the page and the page attempt for him
    // (and the level-2 escalation that named him), none of ann's pages.
    let bob = w
        .engine
        .audit(&AuditQuery {
            user: Some("bob".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        bob.iter().filter(|a| a.action == "incident.paged").count(),
        2,
        "{bob:?}"
    );
    assert!(bob.iter().all(|a| a.details["user"] != "ann"));
}

#[tokio::test]
async fn resolve_cancels_pending_rule_steps_and_levels() {
    let w = World::new();
    let id = w.fire("CpuHigh").await;
    w.at_minute(1).await;
    w.engine.resolve(&id, Actor::user("ann")).await.unwrap();
    w.at_minute(60).await;
    assert_eq!(w.pages(), vec![p(0, "ann", "push")]);
    assert!(
        w.scheduler
            .pending()
            .await
            .unwrap()
            .iter()
            .all(|j| !j.id.starts_with("page/"))
    );
}

#[tokio::test]
async fn reassign_restarts_at_level_1_and_page_user_carries_the_message() {
    let w = World::new();
    let id = w.fire("Latency").await;
    w.at_minute(2).await;
    w.engine
        .reassign(&id, Actor::user("ann"), Some("cat-only".into()), vec![])
        .await
        .unwrap();
    w.at_minute(30).await;
    // ann's voice step (minute 3) and bob (minute 5) never happen; cat is paged at 2.
    assert_eq!(w.pages(), vec![p(0, "ann", "push"), p(2, "cat", "email")]);
    w.engine
        .page_user(
            &id,
            Actor::user("cat"),
            "bob",
            Some("need the DB owner".into()),
        )
        .await
        .unwrap();
    let sent = w.rec.sent.lock().clone();
    let (_, last) = sent.last().unwrap();
    assert_eq!(last.target.address, "+4930222222222");
    assert_eq!(
        last.kind,
        NotificationKind::Page {
            level: 0,
            message: Some("need the DB owner".into())
        }
    );
}

#[tokio::test]
async fn a_restart_neither_loses_nor_repeats_a_page() {
    let w = World::new();
    let _id = w.fire("Disk").await;
    w.at_minute(2).await;
    // New engine + hook on the same store, scheduler and clock.
    let w2 = World::with_parts(w.store.clone(), w.scheduler.clone(), w.clock.clone());
    w2.engine.recover().await.unwrap();
    w2.at_minute(30).await;
    assert_eq!(w2.pages(), vec![p(3, "ann", "voice"), p(5, "bob", "sms")]);
    assert_eq!(w.pages(), vec![p(0, "ann", "push")]);
}

#[tokio::test]
async fn handoff_notifications_go_to_incoming_and_outgoing() {
    let w = World::new();
    assert_eq!(arm_handoffs(&w.engine, &w.dir).await.unwrap(), 1);
    // Next handoff: 2026-02-03 09:00 Berlin = 08:00Z, 22 h after T0; the engine's
    // PlannerEscalation runs the Handoff job.
    w.at_minute(22 * 60 + 1).await;
    // Running the same job again sends nothing new (same notification ids).
    let replay = signalcraft_core::scheduler::Job {
        id: "handoff/primary/replay".into(),
        due: "2026-02-03T08:00:00Z".parse().unwrap(),
        kind: signalcraft_core::scheduler::JobKind::Handoff {
            schedule_id: "primary".into(),
        },
        attempts: 1,
    };
    run_handoff_job(&w.engine, &w.dir, &replay).await.unwrap();
    let handoffs: Vec<(i64, String, bool, String)> = w
        .rec
        .sent
        .lock()
        .iter()
        .filter_map(|(s, n)| match &n.kind {
            NotificationKind::Handoff { incoming, .. } => Some((
                *s / 60,
                n.target.user.clone().unwrap(),
                *incoming,
                n.target.address.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        handoffs,
        vec![
            (22 * 60, "cat".into(), true, "cat@example.com".into()),
            (22 * 60, "ann".into(), false, "tok-ann".into())
        ]
    );
    // Re-armed for the following day.
    let next: Vec<_> = w
        .scheduler
        .pending()
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.id.starts_with("handoff/primary/"))
        .collect();
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].due,
        "2026-02-04T08:00:00Z".parse::<Timestamp>().unwrap()
    );
}
