//! A durable escalation job that crashed mid-run runs again after a restart and
//! pages ONCE, thanks to the notification log: the real engine, paging planner and
//! delivery pipeline over one redb file (store, scheduler and notification log).
//!
//! The "crash" stops the process's work at the point named in each test and drops
//! every handle without completing the job; everything the next process sees comes
//! from the redb file, reopened (which releases the dead process's claims).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use signalcraft_core::channel::{Channel, NotificationKind};
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::delivery::{DeliveryConfig, DeliveryPipeline};
use signalcraft_core::engine::{Engine, EngineConfig, PlannerEscalation};
use signalcraft_core::incident::{EntryKind, IncidentFilter};
use signalcraft_core::model::{Alert, Event, Labels, Severity, Source};
use signalcraft_core::scheduler::{Job, JobKind, Scheduler};
use signalcraft_core::store::Store;
use signalcraft_core::testing::channel::{ScriptedChannel, Step};
use signalcraft_core::testing::fixtures::two_level_directory;
use signalcraft_store::RedbStore;

fn config() -> EngineConfig {
    serde_json::from_value(serde_json::json!({
        "route": {"group_wait": "30s", "escalation_policy": "db",
                  "notify": [{"channel": "chat", "target": "#db"}]}
    }))
    .expect("engine config")
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

/// One process: the store, the engine over it, and its channels.
struct Process {
    store: RedbStore,
    engine: Engine,
    sms: Arc<ScriptedChannel>,
    email: Arc<ScriptedChannel>,
}

impl Process {
    async fn start(path: &Path, clock: &ManualClock) -> Process {
        let store = RedbStore::open(path).expect("open store");
        let scheduler: Arc<dyn Scheduler> = Arc::new(store.scheduler());
        let sms = ScriptedChannel::new("sms", "sms");
        let email = ScriptedChannel::new("email", "email");
        let chat = ScriptedChannel::new("chat", "chat");
        let pipeline = DeliveryPipeline::new(
            DeliveryConfig::default(),
            vec![
                sms.clone() as Arc<dyn Channel>,
                email.clone() as Arc<dyn Channel>,
                chat as Arc<dyn Channel>,
            ],
            Arc::new(store.clone()) as Arc<dyn Store>,
            scheduler.clone(),
            Arc::new(clock.clone()),
        )
        .expect("pipeline");
        let engine = Engine::builder(config())
            .store(Arc::new(store.clone()) as Arc<dyn Store>)
            .scheduler(scheduler)
            .clock(Arc::new(clock.clone()))
            .notifier(Arc::new(pipeline))
            .escalation(Arc::new(PlannerEscalation::new(two_level_directory())))
            .build()
            .expect("engine");
        engine.recover().await.expect("recover");
        Process {
            store,
            engine,
            sms,
            email,
        }
    }

    /// Runs every job (and group flush) due up to `target`, moving the clock.
    async fn advance_to(&self, clock: &ManualClock, target: Timestamp) {
        while let Some(next) = self.engine.next_wakeup().await.expect("next wakeup") {
            if next > target {
                break;
            }
            if next > clock.now() {
                clock.set(next);
            }
            self.engine.run_due_jobs().await.expect("run due jobs");
        }
        clock.set(target);
    }

    /// Claims the one due `Escalate` job, as the engine's timer loop does.
    async fn claim_escalation(&self, now: Timestamp) -> Job {
        let mut jobs = self
            .engine
            .scheduler()
            .claim_due(now, Duration::from_secs(60), 10)
            .await
            .expect("claim");
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let job = jobs.remove(0);
        assert!(
            matches!(job.kind, JobKind::Escalate { .. }),
            "{:?}",
            job.kind
        );
        job
    }

    fn incident_id(&self) -> String {
        let page = self.engine.list_incidents(&IncidentFilter::default());
        assert_eq!(page.items.len(), 1, "one incident");
        page.items[0].id.clone()
    }

    /// The levels of the incident's `escalated` timeline entries.
    async fn escalated_levels(&self, id: &str) -> Vec<u32> {
        self.engine
            .timeline(id)
            .await
            .expect("timeline")
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::Escalated { level, .. } => Some(level),
                _ => None,
            })
            .collect()
    }
}

/// Up to the moment level 2 is due: the incident is open and ann was paged.
async fn until_level_2_is_due(path: &Path, clock: &ManualClock, t0: Timestamp) -> Process {
    let p = Process::start(path, clock).await;
    p.engine.ingest(vec![critical()]).await.expect("ingest");
    p.advance_to(clock, t0 + Duration::from_secs(30)).await;
    assert_eq!(p.sms.call_count(), 1, "level 1 paged ann");
    clock.set(t0 + Duration::from_secs(330));
    p
}

#[tokio::test]
async fn an_escalation_job_that_crashed_after_paging_pages_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let t0: Timestamp = "2026-03-02T10:00:00Z".parse().expect("t0");
    let clock = ManualClock::new(t0);

    // Process 1 claims the level 2 job and runs it (bob is paged), then dies before
    // `complete`.
    let p = until_level_2_is_due(&path, &clock, t0).await;
    let incident = p.incident_id();
    let job = p.claim_escalation(clock.now()).await;
    assert_eq!(job.attempts, 0);
    p.engine.run_job(&job).await.expect("run level 2");
    let pages = p.email.calls();
    assert_eq!(pages.len(), 1, "level 2 paged bob");
    assert!(
        matches!(pages[0].kind, NotificationKind::Page { level: 2, .. }),
        "{:?}",
        pages[0].kind
    );
    assert_eq!(pages[0].target.user.as_deref(), Some("bob"));
    drop(p);

    // Process 2: the claim is released, the job runs again (late, attempt 1) ...
    clock.set(t0 + Duration::from_secs(400));
    let p = Process::start(&path, &clock).await;
    assert_eq!(p.store.released_claims(), 1, "the dead process's claim");
    let pending = p.engine.scheduler().pending().await.expect("pending");
    assert!(
        pending.iter().any(|j| j.id == job.id && j.attempts == 1),
        "the crashed job is pending again: {pending:?}"
    );
    p.advance_to(&clock, t0 + Duration::from_secs(3600)).await;
    // ... and completes without paging bob again: the notification log knows page
    // `pages[0].id` was delivered.
    assert_eq!(p.email.call_count(), 0, "bob is not paged twice");
    assert_eq!(p.sms.call_count(), 0, "ann is not paged again");
    assert!(
        p.engine
            .scheduler()
            .pending()
            .await
            .expect("pending")
            .iter()
            .all(|j| j.id != job.id),
        "the job ran to completion"
    );
    assert_eq!(p.incident_id(), incident, "still one incident");
    assert!(p.escalated_levels(&incident).await.contains(&2));
}

#[tokio::test]
async fn an_escalation_job_that_crashed_during_the_page_pages_once_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let t0: Timestamp = "2026-03-02T10:00:00Z".parse().expect("t0");
    let clock = ManualClock::new(t0);

    // Process 1 dies while the email channel is still sending bob's page (it never
    // answers, so its outcome is unknown to the log).
    let p = until_level_2_is_due(&path, &clock, t0).await;
    let job = p.claim_escalation(clock.now()).await;
    p.email.script([Step::Hang]);
    let run = p.engine.run_job(&job);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), run)
            .await
            .is_err(),
        "the page hangs"
    );
    assert_eq!(
        p.email.call_count(),
        1,
        "the page was handed to the channel"
    );
    drop(p);

    // Process 2 re-sends the page it finds recorded but unfinished, once, and the
    // re-run job adds no other.
    let p = Process::start(&path, &clock).await;
    assert_eq!(p.store.released_claims(), 1);
    p.advance_to(&clock, t0 + Duration::from_secs(3600)).await;
    let pages = p.email.calls();
    assert_eq!(
        pages.len(),
        1,
        "bob paged once by the new process: {pages:?}"
    );
    assert!(matches!(
        pages[0].kind,
        NotificationKind::Page { level: 2, .. }
    ));
    assert_eq!(p.sms.call_count(), 0);
    assert!(
        p.engine
            .scheduler()
            .pending()
            .await
            .expect("pending")
            .iter()
            .all(|j| j.id != job.id)
    );
}
