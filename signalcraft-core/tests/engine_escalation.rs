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
use signalcraft_core::incident::{Actor, EntryKind, IncidentFilter};
use signalcraft_core::model::{Alert, Event, Labels, Severity, Source};
use signalcraft_core::testing::fixtures::two_level_directory;

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
        .escalation(Arc::new(PlannerEscalation::new(two_level_directory())))
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

// ----- crash recovery -------------------------------------------------------------
//
// One MemoryStore and MemoryScheduler outlive the engines built over them, as a
// database outlives a killed process: an engine whose escalation hook was cut short
// ("crashed") is dropped and a new one is built over the same state and recovered.

use signalcraft_core::CoreError;
use signalcraft_core::engine::EscalationHook;
use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::scheduler::{Job, JobKind, Scheduler};
use signalcraft_core::store::Store;

/// How far an escalation hook gets before the process "dies".
#[derive(Clone, Copy)]
enum Cut {
    /// Nothing of `start` ran (killed right after the incident's commit).
    BeforeStart,
    /// `start` recorded the `escalated` entry of level 1, then died (no page, no
    /// `paged` entry, no job).
    AfterFirstEntry,
}

/// [`PlannerEscalation`] whose `start` is cut short; everything else runs.
struct CutShort(PlannerEscalation, Cut);

#[async_trait]
impl EscalationHook for CutShort {
    async fn start(&self, engine: &Engine, id: &str, _policy: &str) -> Result<(), CoreError> {
        if let Cut::AfterFirstEntry = self.1 {
            engine
                .record_entry(
                    id,
                    Actor::System,
                    EntryKind::Escalated {
                        level: 1,
                        targets: vec!["ann".into()],
                    },
                )
                .await?;
        }
        Ok(())
    }
    async fn stop(&self, e: &Engine, id: &str, a: &Actor, r: &str) -> Result<(), CoreError> {
        self.0.stop(e, id, a, r).await
    }
    async fn page_user(
        &self,
        e: &Engine,
        id: &str,
        user: &str,
        message: Option<&str>,
        a: &Actor,
    ) -> Result<(), CoreError> {
        self.0.page_user(e, id, user, message, a).await
    }
    async fn run_job(&self, e: &Engine, job: &Job) -> Result<(), CoreError> {
        self.0.run_job(e, job).await
    }
}

/// The durable state and the pages of a sequence of engine processes.
struct Lives {
    store: Arc<MemoryStore>,
    scheduler: Arc<MemoryScheduler>,
    clock: ManualClock,
    sms: Arc<Rec>,
    email: Arc<Rec>,
    t0: i64,
}

impl Lives {
    fn new() -> Self {
        let t0: jiff::Timestamp = "2026-03-02T10:00:00Z".parse().unwrap();
        let clock = ManualClock::new(t0);
        Lives {
            store: Arc::new(MemoryStore::new()),
            scheduler: Arc::new(MemoryScheduler::new()),
            sms: Arc::new(Rec(Mutex::new(Vec::new()), Some(clock.clone()))),
            email: Arc::new(Rec(Mutex::new(Vec::new()), Some(clock.clone()))),
            clock,
            t0: t0.as_second(),
        }
    }

    /// A process over the shared state, recovered (as at startup).
    async fn engine(&self, hook: Arc<dyn EscalationHook>) -> Engine {
        let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
            "route": {"group_wait": "30s", "escalation_policy": "db",
                      "notify": [{"channel": "chat", "target": "#db"}]}
        }))
        .unwrap();
        let notifier = ChannelNotifier::new()
            .with("sms", self.sms.clone())
            .with("email", self.email.clone())
            .with("chat", Arc::new(Rec::default()));
        let engine = Engine::builder(cfg)
            .store(self.store.clone() as Arc<dyn Store>)
            .scheduler(self.scheduler.clone() as Arc<dyn Scheduler>)
            .clock(Arc::new(self.clock.clone()))
            .notifier(Arc::new(notifier))
            .escalation(hook)
            .build()
            .unwrap();
        engine.recover().await.unwrap();
        engine
    }

    async fn planner(&self) -> Engine {
        self.engine(Arc::new(PlannerEscalation::new(two_level_directory())))
            .await
    }

    async fn advance_to(&self, engine: &Engine, secs: i64) {
        let target = jiff::Timestamp::from_second(self.t0 + secs).unwrap();
        while let Some(next) = engine.next_wakeup().await.unwrap() {
            if next > target {
                break;
            }
            if next > self.clock.now() {
                self.clock.set(next);
            }
            engine.run_due_jobs().await.unwrap();
        }
        self.clock.set(target);
    }

    fn times(&self, r: &Rec) -> Vec<i64> {
        r.0.lock().iter().map(|(t, _)| t - self.t0).collect()
    }

    /// The engine's pending escalation steps.
    async fn escalation_jobs(&self) -> Vec<String> {
        self.scheduler
            .pending()
            .await
            .unwrap()
            .into_iter()
            .filter(|j| matches!(j.kind, JobKind::Escalate { .. }))
            .map(|j| j.id)
            .collect()
    }
}

/// Levels of the `escalated` entries, and 3 for `paging.policy_exhausted`.
async fn steps(engine: &Engine, id: &str) -> Vec<u32> {
    engine
        .timeline(id)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Escalated { level, .. } => Some(*level),
            EntryKind::Custom { name, .. } if name == "paging.policy_exhausted" => Some(3),
            _ => None,
        })
        .collect()
}

async fn paged(engine: &Engine, id: &str) -> Vec<(String, Option<String>)> {
    engine
        .timeline(id)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Paged { user, channel, .. } => Some((user.clone(), channel.clone())),
            _ => None,
        })
        .collect()
}

/// Opens the incident in a process whose hook is cut short at `cut`; returns its id.
async fn open_and_crash(lives: &Lives, cut: Cut) -> String {
    let crashed = lives
        .engine(Arc::new(CutShort(
            PlannerEscalation::new(two_level_directory()),
            cut,
        )))
        .await;
    crashed.ingest(vec![critical()]).await.unwrap();
    lives.advance_to(&crashed, 30).await;
    let id = crashed.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    assert!(
        lives.sms.0.lock().is_empty(),
        "the crashed hook paged nobody"
    );
    assert!(
        lives.escalation_jobs().await.is_empty(),
        "and armed nothing"
    );
    id
}

#[tokio::test]
async fn an_escalation_cut_off_by_a_crash_resumes_on_recover() {
    let lives = Lives::new();
    let id = open_and_crash(&lives, Cut::BeforeStart).await;

    // The next process starts 70 s later: recovery pages level 1 at once, level 2
    // comes 5 minutes after that, then the policy runs out.
    lives
        .clock
        .set(jiff::Timestamp::from_second(lives.t0 + 100).unwrap());
    let engine = lives.planner().await;
    assert_eq!(
        lives.times(&lives.sms),
        vec![100],
        "level 1 paged by recovery"
    );
    assert_eq!(
        lives.escalation_jobs().await,
        [format!("page/{id}/g0/esc/0/1")]
    );

    // A second restart before level 2 is due: the step is armed, nothing restarts.
    lives
        .clock
        .set(jiff::Timestamp::from_second(lives.t0 + 200).unwrap());
    drop(engine);
    let engine = lives.planner().await;
    assert_eq!(
        lives.times(&lives.sms),
        vec![100],
        "level 1 not paged again"
    );
    assert_eq!(
        lives.escalation_jobs().await,
        [format!("page/{id}/g0/esc/0/1")]
    );

    lives.advance_to(&engine, 399).await;
    assert!(lives.email.0.lock().is_empty());
    lives.advance_to(&engine, 400).await;
    assert_eq!(lives.times(&lives.email), vec![400], "level 2 at its delay");
    lives.advance_to(&engine, 3600).await;
    assert_eq!(steps(&engine, &id).await, [1, 2, 3]);
    assert!(lives.escalation_jobs().await.is_empty());

    // The policy ran out: a restart leaves it alone.
    drop(engine);
    let engine = lives.planner().await;
    lives.advance_to(&engine, 7200).await;
    assert_eq!(lives.times(&lives.sms), vec![100]);
    assert_eq!(lives.times(&lives.email), vec![400]);
    assert_eq!(steps(&engine, &id).await, [1, 2, 3]);
    assert!(lives.escalation_jobs().await.is_empty());
}

#[tokio::test]
async fn a_resumed_start_records_only_the_entries_the_crash_lost() {
    let lives = Lives::new();
    let id = open_and_crash(&lives, Cut::AfterFirstEntry).await;
    let engine = lives.planner().await;
    assert_eq!(lives.times(&lives.sms), vec![30]);
    assert_eq!(steps(&engine, &id).await, [1], "level 1 recorded once");
    assert_eq!(
        paged(&engine, &id).await,
        [
            ("ann".to_string(), None),
            ("ann".to_string(), Some("sms".into()))
        ],
        "the entries after the crash are recorded"
    );
    lives.advance_to(&engine, 330).await;
    assert_eq!(lives.times(&lives.email), vec![330]);
    assert_eq!(steps(&engine, &id).await, [1, 2]);
}

#[tokio::test]
async fn an_acknowledged_or_healthy_incident_is_not_restarted() {
    let lives = Lives::new();
    let engine = lives.planner().await;
    engine.ingest(vec![critical()]).await.unwrap();
    lives.advance_to(&engine, 30).await;
    let id = engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    drop(engine);
    // Paging is armed: a restart adds nothing.
    let engine = lives.planner().await;
    assert_eq!(lives.times(&lives.sms), vec![30]);
    assert_eq!(
        lives.escalation_jobs().await,
        [format!("page/{id}/g0/esc/0/1")]
    );
    engine.acknowledge(&id, Actor::user("ann")).await.unwrap();
    drop(engine);
    let engine = lives.planner().await;
    lives.advance_to(&engine, 3600).await;
    assert_eq!(lives.times(&lives.sms), vec![30]);
    assert!(lives.email.0.lock().is_empty());
    assert!(lives.escalation_jobs().await.is_empty());
    assert_eq!(steps(&engine, &id).await, [1]);
}

#[tokio::test]
async fn a_step_job_run_again_after_a_crash_records_nothing_new() {
    let lives = Lives::new();
    let engine = lives.planner().await;
    engine.ingest(vec![critical()]).await.unwrap();
    lives.advance_to(&engine, 30).await;
    let id = engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    let step = lives
        .scheduler
        .pending()
        .await
        .unwrap()
        .into_iter()
        .find(|j| matches!(j.kind, JobKind::Escalate { .. }))
        .unwrap();
    lives.advance_to(&engine, 330).await;
    assert_eq!(steps(&engine, &id).await, [1, 2]);
    let before = engine.timeline(&id).await.unwrap().len();
    // The process died after the step ran, before its job was completed: the job
    // runs again.
    engine.run_job(&step).await.unwrap();
    assert_eq!(steps(&engine, &id).await, [1, 2], "no second level-2 entry");
    assert_eq!(engine.timeline(&id).await.unwrap().len(), before);
    lives.advance_to(&engine, 3600).await;
    assert_eq!(steps(&engine, &id).await, [1, 2, 3]);
}

#[tokio::test]
async fn a_reassignment_cut_off_by_a_crash_resumes_in_its_new_generation() {
    let lives = Lives::new();
    let engine = lives.planner().await;
    engine.ingest(vec![critical()]).await.unwrap();
    lives.advance_to(&engine, 3600).await;
    let id = engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    assert_eq!(steps(&engine, &id).await, [1, 2, 3], "the policy ran out");
    drop(engine);
    // Reassigned to the same policy (paging restarts, generation 1); the process
    // dies before the hook's start ran.
    let crashed = lives
        .engine(Arc::new(CutShort(
            PlannerEscalation::new(two_level_directory()),
            Cut::BeforeStart,
        )))
        .await;
    crashed
        .reassign(&id, Actor::user("ann"), Some("db".into()), Vec::new())
        .await
        .unwrap();
    drop(crashed);
    // The old generation's exhaustion does not count for the new one.
    let engine = lives.planner().await;
    assert_eq!(lives.times(&lives.sms), vec![30, 3600]);
    assert_eq!(
        lives.escalation_jobs().await,
        [format!("page/{id}/g1/esc/0/1")]
    );
    lives.advance_to(&engine, 3900).await;
    assert_eq!(lives.times(&lives.email), vec![330, 3900]);
    assert_eq!(steps(&engine, &id).await, [1, 2, 3, 1, 2]);
}
