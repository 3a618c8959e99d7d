//! The engine wired to the paging planner: incidents page their route's escalation
//! policy, escalate on durable jobs, and stop on acknowledge / resolve.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use signalcraft_core::channel::{
    Channel, Delivered, DeliveryError, Notification, NotificationKind,
};
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::engine::{ChannelNotifier, Engine, EngineConfig, PlannerEscalation};
use signalcraft_core::escalation::{Directory, DirectoryConfig};
use signalcraft_core::incident::{Actor, EntryKind, IncidentFilter};
use signalcraft_core::model::{Alert, Event, Labels, Severity, Source};

#[derive(Default)]
struct Rec(Mutex<Vec<(i64, Notification)>>, Option<ManualClock>);

#[async_trait]
impl Channel for Rec {
    fn kind(&self) -> &str {
        "rec"
    }
    fn name(&self) -> &str {
        "rec"
    }
    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        let t = self.1.as_ref().map(|c| c.now().as_second()).unwrap_or(0);
        self.0.lock().push((t, n.clone()));
        Ok(Delivered::default())
    }
}

struct Setup {
    engine: Engine,
    clock: ManualClock,
    sms: Arc<Rec>,
    email: Arc<Rec>,
    t0: i64,
}

fn setup() -> Setup {
    let dir: DirectoryConfig = serde_json::from_value(serde_json::json!({
        "users": [
            {"id": "ann", "name": "Ann", "contact_methods": [{"id": "s", "kind": "sms", "address": "+4915100000001"}],
             "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "s"}]}},
            {"id": "bob", "name": "Bob", "contact_methods": [{"id": "e", "kind": "email", "address": "bob@example.com"}],
             "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "e"}]}}
        ],
        "escalation_policies": [{"id": "db", "name": "DB", "levels": [
            {"targets": [{"type": "user", "id": "ann"}], "delay_minutes": 5},
            {"targets": [{"type": "user", "id": "bob"}], "delay_minutes": 5}
        ]}]
    }))
    .unwrap();
    let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
        "route": {"group_wait": "30s", "escalation_policy": "db",
                  "notify": [{"channel": "chat", "target": "#db"}]}
    }))
    .unwrap();
    let t0: jiff::Timestamp = "2026-03-02T10:00:00Z".parse().unwrap();
    let clock = ManualClock::new(t0);
    let sms = Arc::new(Rec(Mutex::new(Vec::new()), Some(clock.clone())));
    let email = Arc::new(Rec(Mutex::new(Vec::new()), Some(clock.clone())));
    let notifier = ChannelNotifier::new()
        .with("sms", sms.clone())
        .with("email", email.clone())
        .with("chat", Arc::new(Rec::default()));
    let engine = Engine::builder(cfg)
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(notifier))
        .escalation(Arc::new(PlannerEscalation::new(
            Directory::new(dir).unwrap(),
        )))
        .build()
        .unwrap();
    Setup {
        engine,
        clock,
        sms,
        email,
        t0: t0.as_second(),
    }
}

impl Setup {
    async fn advance_to(&self, secs: i64) {
        let target = jiff::Timestamp::from_second(self.t0 + secs).unwrap();
        while let Some(next) = self.engine.next_wakeup().await.unwrap() {
            if next > target {
                break;
            }
            if next > self.clock.now() {
                self.clock.set(next);
            }
            self.engine.run_due_jobs().await.unwrap();
        }
        self.clock.set(target);
    }
    fn times(&self, r: &Rec) -> Vec<i64> {
        r.0.lock().iter().map(|(t, _)| t - self.t0).collect()
    }
}

fn critical() -> Event {
    let mut l = Labels::new();
    l.insert("alertname".into(), "PrimaryDown".into());
    let mut a = Alert::firing(
        Source {
            provider: "t".into(),
            integration: "prom".into(),
        },
        "primary down",
        l,
    );
    a.severity = Severity::Critical;
    Event::Alert(a)
}

#[tokio::test]
async fn unacknowledged_incident_escalates_to_the_next_level() {
    let s = setup();
    s.engine.ingest(vec![critical()]).await.unwrap();
    s.advance_to(30).await;
    assert_eq!(
        s.times(&s.sms),
        vec![30],
        "level 1 paged when the incident opens"
    );
    let page = s.sms.0.lock()[0].1.clone();
    assert!(
        matches!(page.kind, NotificationKind::Page { level: 1, .. }),
        "{:?}",
        page.kind
    );
    assert_eq!(page.target.address, "+4915100000001");
    assert_eq!(page.target.user.as_deref(), Some("ann"));
    assert!(page.id.starts_with("page/sms/"), "{}", page.id);
    s.advance_to(329).await;
    assert!(s.email.0.lock().is_empty());
    s.advance_to(330).await;
    assert_eq!(s.times(&s.email), vec![330], "level 2 after 5 minutes");
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    let tl = s.engine.timeline(&id).await.unwrap();
    let levels: Vec<u32> = tl
        .iter()
        .filter_map(|e| match e.kind {
            EntryKind::Escalated { level, .. } => Some(level),
            _ => None,
        })
        .collect();
    assert_eq!(levels, vec![1, 2]);
    assert!(
        tl.iter()
            .any(|e| matches!(&e.kind, EntryKind::Paged { user, .. } if user == "bob"))
    );
}

#[tokio::test]
async fn acknowledge_stops_escalation_and_page_user_pages_now() {
    let s = setup();
    s.engine.ingest(vec![critical()]).await.unwrap();
    s.advance_to(30).await;
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    s.advance_to(100).await;
    s.engine.acknowledge(&id, Actor::user("ann")).await.unwrap();
    s.advance_to(3600).await;
    assert!(s.email.0.lock().is_empty(), "no escalation after ack");
    assert!(
        s.engine
            .scheduler()
            .pending()
            .await
            .unwrap()
            .iter()
            .all(|j| !j.id.starts_with("page/"))
    );
    // Ad-hoc page with a message.
    s.engine
        .page_user(&id, Actor::user("ann"), "bob", Some("need a DBA".into()))
        .await
        .unwrap();
    s.advance_to(3601).await;
    let got = s.email.0.lock().clone();
    assert_eq!(got.len(), 1);
    assert!(
        matches!(&got[0].1.kind, NotificationKind::Page { level: 0, message: Some(m) } if m == "need a DBA"),
        "{:?}",
        got[0].1.kind
    );
}
