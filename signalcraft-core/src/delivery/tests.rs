//! Policy tests on virtual time with scripted in-process channels.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::channel::{Channel, DeliveryError};
use crate::clock::{Clock, ManualClock};
use crate::memory::{MemoryScheduler, MemoryStore};
use crate::scheduler::Scheduler;
use crate::store::Store;
use crate::testing::channel::{ScriptedChannel, Step, sample_notification};

struct Rig {
    clock: ManualClock,
    store: Arc<MemoryStore>,
    scheduler: Arc<MemoryScheduler>,
    sink: Arc<RecordingSink>,
    pipeline: DeliveryPipeline,
}

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn rig(config: DeliveryConfig, channels: Vec<Arc<ScriptedChannel>>) -> Rig {
    let clock = ManualClock::new(t0());
    let store = Arc::new(MemoryStore::new());
    let scheduler = Arc::new(MemoryScheduler::new());
    let sink = Arc::new(RecordingSink::new());
    let chans: Vec<Arc<dyn Channel>> = channels
        .into_iter()
        .map(|c| c as Arc<dyn Channel>)
        .collect();
    let pipeline = DeliveryPipeline::new(
        config,
        chans,
        store.clone() as Arc<dyn Store>,
        scheduler.clone() as Arc<dyn Scheduler>,
        Arc::new(clock.clone()),
    )
    .unwrap()
    .with_jitter(Arc::new(FixedJitter(1.0)))
    .with_sink(sink.clone());
    Rig {
        clock,
        store,
        scheduler,
        sink,
        pipeline,
    }
}

fn retryable(after: Option<u64>) -> Step {
    Step::Err(DeliveryError::Retryable {
        reason: "HTTP 503".into(),
        retry_after: after.map(Duration::from_secs),
    })
}

fn permanent() -> Step {
    Step::Err(DeliveryError::Permanent {
        reason: "HTTP 404".into(),
    })
}

fn statuses(recs: &[DeliveryRecord]) -> Vec<(String, DeliveryStatus)> {
    recs.iter().map(|r| (r.channel.clone(), r.status)).collect()
}

fn chain(steps: &[&str]) -> DeliveryConfig {
    let mut c = DeliveryConfig::default();
    c.chains.push(FailoverChain {
        receiver: steps[0].into(),
        severities: vec![],
        steps: steps
            .iter()
            .map(|s| ChainStep {
                channel: (*s).into(),
                target: None,
                confirm_within_secs: None,
            })
            .collect(),
    });
    c
}

#[tokio::test]
async fn retries_with_exponential_backoff_on_the_manual_clock() {
    let slack = ScriptedChannel::new("slack", "slack");
    slack.script([retryable(None), retryable(None), retryable(None)]);
    let r = rig(DeliveryConfig::default(), vec![slack.clone()]);
    let n = sample_notification("n1", "slack", "#ops");
    let out = r.pipeline.notify(n).await.unwrap();
    // Full jitter with u = 1.0: caps 1 s, 2 s, 4 s.
    assert_eq!(
        out,
        DeliveryOutcome::Pending {
            next_at: t0() + SignedDuration::from_secs(1)
        }
    );
    assert_eq!(r.pipeline.run_due().await.unwrap(), 0, "not due yet");
    r.clock.advance(Duration::from_millis(999));
    assert_eq!(r.pipeline.run_due().await.unwrap(), 0);
    r.clock.advance(Duration::from_millis(1));
    assert_eq!(r.pipeline.run_due().await.unwrap(), 1);
    assert_eq!(slack.call_count(), 2);
    let recs = r.pipeline.log().records("n1").await.unwrap();
    assert_eq!(
        recs[1].next_attempt_at,
        Some(t0() + SignedDuration::from_secs(3))
    );
    r.clock.advance(Duration::from_secs(2));
    r.pipeline.run_due().await.unwrap();
    r.clock.advance(Duration::from_secs(4));
    r.pipeline.run_due().await.unwrap();
    assert_eq!(slack.call_count(), 4);
    let recs = r.pipeline.log().records("n1").await.unwrap();
    use DeliveryStatus::*;
    assert_eq!(
        recs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![Retrying, Retrying, Retrying, Sent]
    );
    assert_eq!(
        recs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(r.scheduler.pending().await.unwrap().is_empty());
    // Running everything again sends nothing more.
    r.clock.advance(Duration::from_secs(3600));
    r.pipeline.run_due().await.unwrap();
    assert_eq!(slack.call_count(), 4);
}

#[tokio::test]
async fn retry_after_is_honoured_and_an_excessive_one_fails_over() {
    let slack = ScriptedChannel::new("slack", "slack");
    let email = ScriptedChannel::new("email", "email");
    slack.script([retryable(Some(30)), retryable(Some(3600))]);
    let r = rig(
        chain(&["slack", "email"]),
        vec![slack.clone(), email.clone()],
    );
    let out = r
        .pipeline
        .notify(sample_notification("n1", "slack", "#ops"))
        .await
        .unwrap();
    assert_eq!(
        out,
        DeliveryOutcome::Pending {
            next_at: t0() + SignedDuration::from_secs(30)
        }
    );
    r.clock.advance(Duration::from_secs(30));
    r.pipeline.run_due().await.unwrap();
    // An hour's Retry-After exceeds max_retry_after: fail over to email now.
    assert_eq!(email.call_count(), 1);
    let recs = r.pipeline.log().records("n1").await.unwrap();
    use DeliveryStatus::*;
    assert_eq!(
        statuses(&recs),
        vec![
            ("slack".into(), Retrying),
            ("slack".into(), FailedOver),
            ("email".into(), Sent)
        ]
    );
}

#[tokio::test]
async fn permanent_failures_fail_over_in_chain_order_including_a_second_sms_provider() {
    let slack = ScriptedChannel::new("slack", "slack");
    let sms_a = ScriptedChannel::new("sms", "sms-a");
    let sms_b = ScriptedChannel::new("sms", "sms-b");
    let voice = ScriptedChannel::new("voice", "voice");
    slack.script([permanent()]);
    sms_a.script([retryable(None), retryable(None)]);
    let mut c = chain(&["slack", "sms-a", "sms-b", "voice"]);
    c.retry.max_attempts = 2;
    let r = rig(
        c,
        vec![slack.clone(), sms_a.clone(), sms_b.clone(), voice.clone()],
    );
    r.pipeline
        .notify(sample_notification("n1", "slack", "+15550001"))
        .await
        .unwrap();
    r.clock.advance(Duration::from_secs(1));
    let _ = r.pipeline.run_due().await.unwrap();
    assert_eq!(sms_b.call_count(), 1, "second SMS provider took over");
    assert_eq!(voice.call_count(), 0);
    let recs = r.pipeline.log().records("n1").await.unwrap();
    use DeliveryStatus::*;
    assert_eq!(
        statuses(&recs),
        vec![
            ("slack".into(), FailedOver),
            ("sms-a".into(), Retrying),
            ("sms-a".into(), FailedOver),
            ("sms-b".into(), Sent),
        ]
    );
    let failovers: Vec<_> = r
        .sink
        .events()
        .into_iter()
        .filter_map(|e| match e {
            DeliveryEvent::FailedOver { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failovers,
        vec![
            ("slack".into(), "sms-a".into()),
            ("sms-a".into(), "sms-b".into())
        ]
    );
    // The trail of the incident shows all four attempts.
    assert_eq!(r.pipeline.log().trail("inc-42").await.unwrap().len(), 4);
}

#[tokio::test]
async fn last_step_failure_is_failed_and_nothing_is_left_pending() {
    let slack = ScriptedChannel::new("slack", "slack");
    slack.script([permanent()]);
    let r = rig(DeliveryConfig::default(), vec![slack.clone()]);
    let out = r
        .pipeline
        .notify(sample_notification("n1", "slack", "#ops"))
        .await
        .unwrap();
    assert!(matches!(out, DeliveryOutcome::Failed { .. }), "{out:?}");
    assert!(r.scheduler.pending().await.unwrap().is_empty());
    let recs = r.pipeline.log().records("n1").await.unwrap();
    assert_eq!(recs[0].status, DeliveryStatus::Failed);
    assert_eq!(recs[0].error.as_deref(), Some("permanent: HTTP 404"));
}

#[tokio::test]
async fn same_notification_twice_and_stale_jobs_send_once() {
    let slack = ScriptedChannel::new("slack", "slack");
    slack.script([retryable(None)]);
    let r = rig(DeliveryConfig::default(), vec![slack.clone()]);
    let n = sample_notification("n1", "slack", "#ops");
    r.pipeline.notify(n.clone()).await.unwrap();
    assert_eq!(
        r.pipeline.notify(n.clone()).await.unwrap(),
        DeliveryOutcome::AlreadyAccepted
    );
    r.clock.advance(Duration::from_secs(1));
    let jobs = r
        .scheduler
        .claim_due(r.clock.now(), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    // The job runs twice (a worker crashed after sending, before completing).
    r.pipeline.run_job(&jobs[0]).await.unwrap();
    assert_eq!(
        r.pipeline.run_job(&jobs[0]).await.unwrap(),
        DeliveryOutcome::Ignored
    );
    assert_eq!(slack.call_count(), 2, "one failure + one success");
}

#[tokio::test]
async fn sms_throttle_delays_the_second_page_to_the_same_phone() {
    let sms = ScriptedChannel::new("sms", "sms");
    let r = rig(DeliveryConfig::default(), vec![sms.clone()]);
    let out1 = r
        .pipeline
        .notify(sample_notification("n1", "sms", "+15550001"))
        .await
        .unwrap();
    assert!(matches!(out1, DeliveryOutcome::Sent { .. }));
    r.clock.advance(Duration::from_secs(5));
    let out2 = r
        .pipeline
        .notify(sample_notification("n2", "sms", "+15550001"))
        .await
        .unwrap();
    assert_eq!(
        out2,
        DeliveryOutcome::Pending {
            next_at: t0() + SignedDuration::from_secs(60)
        }
    );
    // The throttled page shows as `queued` until its slot.
    let recs = r.pipeline.log().records("n2").await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].attempt, 1);
    assert_eq!(recs[0].status, DeliveryStatus::Queued);
    assert_eq!(
        recs[0].next_attempt_at,
        Some(t0() + SignedDuration::from_secs(60))
    );
    // A different phone is not throttled.
    let out3 = r
        .pipeline
        .notify(sample_notification("n3", "sms", "+15550002"))
        .await
        .unwrap();
    assert!(matches!(out3, DeliveryOutcome::Sent { .. }));
    assert_eq!(sms.call_count(), 2);
    r.clock.advance(Duration::from_secs(55));
    r.pipeline.run_due().await.unwrap();
    assert_eq!(sms.call_count(), 3);
    assert_eq!(sms.calls()[2].id, "n2");
    let recs = r.pipeline.log().records("n2").await.unwrap();
    assert_eq!(recs.len(), 1, "the queued record became the attempt");
    assert_eq!(recs[0].status, DeliveryStatus::Sent);
    assert_eq!(recs[0].error, None);
    // A resolved notice to the still-throttled phone is suppressed, not queued.
    let mut resolved = sample_notification("n4", "sms", "+15550001");
    resolved.status = crate::model::AlertStatus::Resolved;
    assert_eq!(
        r.pipeline.notify(resolved).await.unwrap(),
        DeliveryOutcome::Suppressed
    );
    let recs = r.pipeline.log().records("n4").await.unwrap();
    assert_eq!(recs[0].status, DeliveryStatus::Suppressed);
    assert_eq!(sms.call_count(), 3);
    assert!(r.scheduler.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn unhealthy_targets_are_skipped_straight_to_failover() {
    let slack = ScriptedChannel::new("slack", "slack");
    let email = ScriptedChannel::new("email", "email");
    let mut c = chain(&["slack", "email"]);
    c.retry.max_attempts = 1;
    let r = rig(c, vec![slack.clone(), email.clone()]);
    slack.script([permanent(), permanent(), permanent()]);
    for i in 0..3 {
        r.pipeline
            .notify(sample_notification(&format!("n{i}"), "slack", "#ops"))
            .await
            .unwrap();
    }
    assert_eq!(slack.call_count(), 3);
    assert!(
        !r.pipeline
            .health()
            .is_healthy("slack", "#ops", r.clock.now())
    );
    assert!(r.sink.events().contains(&DeliveryEvent::HealthChanged {
        channel: "slack".into(),
        target: "#ops".into(),
        healthy: false
    }));
    r.pipeline
        .notify(sample_notification("n9", "slack", "#ops"))
        .await
        .unwrap();
    assert_eq!(slack.call_count(), 3, "unhealthy slack was not tried");
    assert_eq!(email.call_count(), 4);
    let recs = r.pipeline.log().records("n9").await.unwrap();
    assert_eq!(recs[0].status, DeliveryStatus::FailedOver);
    assert_eq!(recs[0].error.as_deref(), Some("target unhealthy; skipped"));
    // A failed health check also marks the channel unhealthy.
    email.set_health(Err(DeliveryError::Retryable {
        reason: "connect refused".into(),
        retry_after: None,
    }));
    r.pipeline.run_health_checks().await;
    let snap = r.pipeline.health().snapshot("email", "*", r.clock.now());
    assert!(!snap.healthy);
    assert_eq!(
        snap.check_error.as_deref(),
        Some("retryable: connect refused")
    );
    assert_eq!(snap.attempts, 4);
}

#[tokio::test]
async fn unconfirmed_sms_fails_over_after_the_deadline_and_callbacks_confirm() {
    let sms = ScriptedChannel::new("sms", "sms");
    let voice = ScriptedChannel::new("voice", "voice");
    let mut c = chain(&["sms", "voice"]);
    c.chains[0].steps[0].confirm_within_secs = Some(120);
    let r = rig(c, vec![sms.clone(), voice.clone()]);
    sms.script([Step::Ok(Some("SM1".into())), Step::Ok(Some("SM2".into()))]);
    // n1: confirmed by the provider callback → no failover.
    r.pipeline
        .notify(sample_notification("n1", "sms", "+1555"))
        .await
        .unwrap();
    assert!(
        r.pipeline
            .record_provider_status("SM1", ProviderStatus::Delivered)
            .await
            .unwrap()
    );
    // n2: never confirmed → voice after 120 s.
    r.clock.advance(Duration::from_secs(61));
    r.pipeline
        .notify(sample_notification("n2", "sms", "+1666"))
        .await
        .unwrap();
    r.clock.advance(Duration::from_secs(120));
    r.pipeline.run_due().await.unwrap();
    assert_eq!(voice.call_count(), 1);
    assert_eq!(voice.calls()[0].id, "n2");
    let n1 = r.pipeline.log().records("n1").await.unwrap();
    assert_eq!(n1[0].status, DeliveryStatus::Delivered);
    let n2 = r.pipeline.log().records("n2").await.unwrap();
    assert_eq!(
        statuses(&n2),
        vec![
            ("sms".into(), DeliveryStatus::FailedOver),
            ("voice".into(), DeliveryStatus::Sent)
        ]
    );
    assert!(
        !r.pipeline
            .record_provider_status("SMunknown", ProviderStatus::Delivered)
            .await
            .unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_channel_times_out_and_a_crash_mid_send_resumes_from_the_watchdog() {
    let slack = ScriptedChannel::new("slack", "slack");
    slack.script([Step::Hang]);
    let c = DeliveryConfig {
        attempt_timeout_ms: 500,
        ..Default::default()
    };
    let r = rig(c.clone(), vec![slack.clone()]);
    let out = r
        .pipeline
        .notify(sample_notification("n1", "slack", "#ops"))
        .await
        .unwrap();
    assert!(matches!(out, DeliveryOutcome::Pending { .. }), "{out:?}");
    let recs = r.pipeline.log().records("n1").await.unwrap();
    assert_eq!(
        recs[0].error.as_deref(),
        Some("retryable: timed out after 500 ms")
    );

    // Crash mid-send: the notify future is dropped while the channel hangs.
    slack.script([Step::Hang]);
    let fut = r
        .pipeline
        .notify(sample_notification("n2", "slack", "#ops"));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), fut)
            .await
            .is_err()
    );
    drop(r.pipeline);
    // A new process over the same store and scheduler picks it up.
    let slack2 = ScriptedChannel::new("slack", "slack");
    let p2 = DeliveryPipeline::new(
        c,
        vec![slack2.clone() as Arc<dyn Channel>],
        r.store.clone() as Arc<dyn Store>,
        r.scheduler.clone() as Arc<dyn Scheduler>,
        Arc::new(r.clock.clone()),
    )
    .unwrap();
    r.clock.advance(Duration::from_secs(7));
    p2.run_due().await.unwrap();
    let sent: Vec<String> = slack2.calls().into_iter().map(|n| n.id).collect();
    assert!(sent.contains(&"n2".to_string()), "{sent:?}");
    let n2 = p2.log().records("n2").await.unwrap();
    assert_eq!(
        n2.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![DeliveryStatus::Sending, DeliveryStatus::Sent],
        "the interrupted attempt stays visible as `sending`"
    );
}

#[tokio::test]
async fn unknown_receivers_and_bad_chains_are_typed_errors() {
    let slack = ScriptedChannel::new("slack", "slack");
    let r = rig(DeliveryConfig::default(), vec![slack.clone()]);
    let e = r
        .pipeline
        .notify(sample_notification("n1", "nope", "#ops"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("notification.receiver"), "{e}");
    let e = DeliveryPipeline::new(
        chain(&["slack", "ghost"]),
        vec![slack as Arc<dyn Channel>],
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryScheduler::new()),
        Arc::new(ManualClock::new(t0())),
    )
    .err()
    .unwrap();
    assert!(
        e.to_string()
            .contains("delivery.chains[0].steps[1].channel"),
        "{e}"
    );
}

#[test]
fn url_targets_are_redacted() {
    assert_eq!(
        pipeline::redact_address("https://hooks.slack.com/services/T0/B0/secret"),
        "https://hooks.slack.com/…"
    );
    assert_eq!(
        pipeline::redact_address("https://user:pw@example.com/x?token=1"),
        "https://example.com/…"
    );
    assert_eq!(pipeline::redact_address("+15550001"), "+15550001");
}

#[tokio::test]
async fn engine_ids_with_slashes_route_by_channel_name_through_the_notifier_seam() {
    use crate::engine::Notifier;
    let slack = ScriptedChannel::new("slack", "ops-slack");
    let email = ScriptedChannel::new("email", "smtp");
    slack.script([permanent()]);
    let mut c = chain(&["ops-slack", "smtp"]);
    c.chains[0].steps[1].target = Some("oncall@example.com".into());
    let r = rig(c, vec![slack.clone(), email.clone()]);
    let n = sample_notification("incident/ops-slack/inc-42/1", "team-receiver", "#ops");
    Notifier::notify(&r.pipeline, n.clone()).await.unwrap();
    Notifier::notify(&r.pipeline, n).await.unwrap();
    assert_eq!(email.call_count(), 1);
    assert_eq!(email.calls()[0].target.address, "oncall@example.com");
    let recs = r
        .pipeline
        .log()
        .records("incident/ops-slack/inc-42/1")
        .await
        .unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(r.pipeline.log().trail("inc-42").await.unwrap().len(), 2);
    // Every step failing is an Err for the engine's timeline.
    slack.script([permanent()]);
    email.script([permanent()]);
    let n2 = sample_notification("incident/ops-slack/inc-42/2", "team-receiver", "#ops");
    assert!(Notifier::notify(&r.pipeline, n2).await.is_err());
}

/// A store whose reads yield to the scheduler first, as a real database's do,
/// so two concurrent `notify` calls both get past the "already accepted?" read.
struct YieldingStore(MemoryStore);

#[async_trait::async_trait]
impl Store for YieldingStore {
    async fn get(
        &self,
        table: crate::store::Table,
        key: &str,
    ) -> Result<Option<Vec<u8>>, crate::store::StoreError> {
        tokio::task::yield_now().await;
        self.0.get(table, key).await
    }
    async fn scan(
        &self,
        table: crate::store::Table,
        scan: crate::store::Scan,
    ) -> Result<Vec<(String, Vec<u8>)>, crate::store::StoreError> {
        self.0.scan(table, scan).await
    }
    async fn commit(
        &self,
        batch: crate::store::WriteBatch,
    ) -> Result<(), crate::store::StoreError> {
        tokio::task::yield_now().await;
        self.0.commit(batch).await
    }
    async fn count(&self, table: crate::store::Table) -> Result<u64, crate::store::StoreError> {
        self.0.count(table).await
    }
}

#[tokio::test]
async fn concurrent_notify_with_the_same_id_sends_once() {
    let slack = ScriptedChannel::new("slack", "slack");
    let p = DeliveryPipeline::new(
        DeliveryConfig::default(),
        vec![slack.clone() as Arc<dyn Channel>],
        Arc::new(YieldingStore(MemoryStore::new())),
        Arc::new(MemoryScheduler::new()),
        Arc::new(ManualClock::new(t0())),
    )
    .unwrap();
    let n = sample_notification("n1", "slack", "#ops");
    let (a, b) = tokio::join!(p.notify(n.clone()), p.notify(n));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert!(
        outcomes.contains(&DeliveryOutcome::AlreadyAccepted),
        "{outcomes:?}"
    );
    assert_eq!(slack.call_count(), 1);
}

/// The notification is stored once; cursor-only writes keep it, and a state row
/// written in the older one-row form (notification inside) still reads back.
#[tokio::test]
async fn log_stores_the_notification_once_and_reads_old_rows() {
    use crate::store::{StoreExt, Table, WriteBatch};
    let store = Arc::new(MemoryStore::new());
    let log = NotificationLog::new(store.clone() as Arc<dyn Store>);
    let mut state = DeliveryState {
        notification: sample_notification("a/b%c", "hook", "ops@example.com"),
        steps: vec![],
        step: 0,
        tries_on_step: 1,
        attempt: 1,
        next_attempt: 2,
        awaiting_confirmation: Some(1),
        finished: false,
        job_seq: 3,
        pending_job: Some("delivery/a%2Fb/3".into()),
    };
    log.write(&state, &[]).await.unwrap();
    assert_eq!(log.state("a/b%c").await.unwrap().as_ref(), Some(&state));
    let row: serde_json::Value = store
        .get_json(Table::NotificationLog, "a%2Fb%25c/state")
        .await
        .unwrap()
        .unwrap();
    assert!(row.get("notification").is_none(), "{row}");

    state.finished = true;
    state.awaiting_confirmation = None;
    state.pending_job = None;
    log.write_cursor(&state, &[]).await.unwrap();
    assert_eq!(log.state("a/b%c").await.unwrap().as_ref(), Some(&state));

    let mut b = WriteBatch::new();
    let mut old = state.clone();
    old.notification.id = "old".into();
    b.put(Table::NotificationLog, "old/state", &old).unwrap();
    store.commit(b).await.unwrap();
    assert_eq!(log.state("old").await.unwrap(), Some(old));

    // A cursor whose notification row is missing is a codec error, not a panic.
    let mut b = WriteBatch::new();
    b.put_raw(
        Table::NotificationLog,
        "lost/state",
        br#"{"steps":[],"step":0,"tries_on_step":0,"attempt":0,"next_attempt":1,"finished":false}"#
            .to_vec(),
    );
    store.commit(b).await.unwrap();
    assert!(log.state("lost").await.is_err());
}

/// A scheduler that counts `schedule` and `cancel` calls.
#[derive(Default)]
struct CountingScheduler {
    inner: MemoryScheduler,
    scheduled: std::sync::atomic::AtomicUsize,
    cancelled: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Scheduler for CountingScheduler {
    async fn schedule(&self, job: crate::scheduler::Job) -> Result<(), crate::store::StoreError> {
        self.scheduled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.schedule(job).await
    }
    async fn cancel(&self, id: &str) -> Result<bool, crate::store::StoreError> {
        self.cancelled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.cancel(id).await
    }
    async fn cancel_prefix(&self, prefix: &str) -> Result<usize, crate::store::StoreError> {
        self.inner.cancel_prefix(prefix).await
    }
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<crate::scheduler::Job>, crate::store::StoreError> {
        self.inner.claim_due(now, lease, limit).await
    }
    async fn complete(&self, id: &str) -> Result<(), crate::store::StoreError> {
        self.inner.complete(id).await
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, crate::store::StoreError> {
        self.inner.next_due().await
    }
    async fn pending(&self) -> Result<Vec<crate::scheduler::Job>, crate::store::StoreError> {
        self.inner.pending().await
    }
}

/// A channel whose deliveries wait at a gate the test opens.
struct GateChannel {
    arrived: std::sync::atomic::AtomicUsize,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl Channel for GateChannel {
    fn kind(&self) -> &str {
        "webhook"
    }
    fn name(&self) -> &str {
        "hook"
    }
    async fn deliver(
        &self,
        _n: &crate::channel::Notification,
    ) -> Result<crate::channel::Delivered, DeliveryError> {
        self.arrived
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _p = self.gate.acquire().await;
        Ok(crate::channel::Delivered {
            provider_message_id: None,
        })
    }
}

/// Attempts in flight together share one watchdog job: armed once by the first,
/// cancelled once by the last, so concurrent deliveries make no per-attempt
/// scheduler calls; nothing is left pending afterwards.
#[tokio::test]
async fn concurrent_attempts_share_one_watchdog_job() {
    let gate = Arc::new(GateChannel {
        arrived: 0.into(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let scheduler = Arc::new(CountingScheduler::default());
    let p = DeliveryPipeline::new(
        DeliveryConfig::default(),
        vec![gate.clone() as Arc<dyn Channel>],
        Arc::new(MemoryStore::new()),
        scheduler.clone() as Arc<dyn Scheduler>,
        Arc::new(ManualClock::new(t0())),
    )
    .unwrap();
    let opener = async {
        while gate.arrived.load(std::sync::atomic::Ordering::SeqCst) < 4 {
            tokio::task::yield_now().await;
        }
        // Every attempt is in flight: one watchdog job guards them all, and
        // each has its in-flight marker.
        let pending = scheduler.pending().await.unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert!(watchdog::is_watchdog_job(&pending[0]));
        assert_eq!(p.log().in_flight(0).await.unwrap().len(), 4);
        gate.gate.add_permits(4);
    };
    let n = |i: u32| sample_notification(&format!("n{i}"), "hook", "https://x.example/h");
    let (a, b, c, d, ()) = tokio::join!(
        p.notify(n(1)),
        p.notify(n(2)),
        p.notify(n(3)),
        p.notify(n(4)),
        opener
    );
    for o in [a, b, c, d] {
        assert!(matches!(o.unwrap(), DeliveryOutcome::Sent { .. }));
    }
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(scheduler.scheduled.load(SeqCst), 1, "armed once");
    assert_eq!(scheduler.cancelled.load(SeqCst), 1, "cancelled once");
    assert!(scheduler.pending().await.unwrap().is_empty());
    assert!(p.log().in_flight(0).await.unwrap().is_empty());
}

/// Two attempts are abandoned mid-send (as by a crash) at different times: the
/// watchdog resumes the one older than its period, re-arms for the younger one
/// and resumes it on its next run; each is sent exactly once more, and then
/// nothing is left pending.
#[tokio::test(start_paused = true)]
async fn the_watchdog_resumes_old_interrupted_attempts_and_rearms_for_young_ones() {
    let slack = ScriptedChannel::new("slack", "slack");
    slack.script([Step::Hang, Step::Hang]);
    let c = DeliveryConfig {
        attempt_timeout_ms: 60_000, // the test abandons the futures long before
        ..Default::default()
    };
    let period = Duration::from_secs(2 * 60 + 5);
    let r = rig(c, vec![slack.clone()]);
    let abandon = |id: &'static str| {
        let fut = r.pipeline.notify(sample_notification(id, "slack", "#ops"));
        async move {
            assert!(
                tokio::time::timeout(Duration::from_millis(10), fut)
                    .await
                    .is_err()
            );
        }
    };
    abandon("old").await;
    r.clock.advance(Duration::from_secs(100));
    abandon("young").await;
    let pending = r.scheduler.pending().await.unwrap();
    assert_eq!(pending.len(), 1, "one watchdog: {pending:?}");
    assert_eq!(
        pending[0].due,
        t0() + SignedDuration::try_from(period).unwrap()
    );

    // First run: `old` (started at t0) is resumed, `young` (t0 + 100 s) is not
    // yet older than the period, so the watchdog is re-armed.
    r.clock.advance(period - Duration::from_secs(100));
    assert_eq!(r.pipeline.run_due().await.unwrap(), 1);
    let sent = |s: &ScriptedChannel| s.calls().into_iter().map(|n| n.id).collect::<Vec<_>>();
    assert_eq!(sent(&slack), ["old", "young", "old"]);
    assert_eq!(
        r.pipeline.log().records("old").await.unwrap()[1].status,
        DeliveryStatus::Sent
    );
    let pending = r.scheduler.pending().await.unwrap();
    assert_eq!(pending.len(), 1, "re-armed for `young`: {pending:?}");
    assert!(watchdog::is_watchdog_job(&pending[0]));

    // Second run: `young` is resumed; nothing left to guard.
    r.clock.advance(period);
    assert_eq!(r.pipeline.run_due().await.unwrap(), 1);
    assert_eq!(sent(&slack), ["old", "young", "old", "young"]);
    assert!(r.scheduler.pending().await.unwrap().is_empty());
    assert!(r.pipeline.log().in_flight(0).await.unwrap().is_empty());
    // A rerun of a watchdog job finds nothing more to do.
    let again = crate::scheduler::Job {
        id: format!("{}x", watchdog::JOB_PREFIX),
        due: r.clock.now(),
        kind: crate::scheduler::JobKind::Delivery {
            notification_id: String::new(),
            attempt: 0,
        },
        attempts: 1,
    };
    assert_eq!(
        r.pipeline.run_job(&again).await.unwrap(),
        DeliveryOutcome::Swept { resumed: 0 }
    );
    assert_eq!(slack.call_count(), 4);
}

/// The SMS throttle survives a restart: a new pipeline over the same store
/// (a restarted process) still holds the second page to the same phone until
/// the minute is over, while another phone goes through.
#[tokio::test]
async fn sms_throttle_survives_a_restart() {
    let sms = ScriptedChannel::new("sms", "sms");
    let r = rig(DeliveryConfig::default(), vec![sms.clone()]);
    let out1 = r
        .pipeline
        .notify(sample_notification("n1", "sms", "+15550001"))
        .await
        .unwrap();
    assert!(matches!(out1, DeliveryOutcome::Sent { .. }));
    drop(r.pipeline);

    let sms2 = ScriptedChannel::new("sms", "sms");
    let p2 = DeliveryPipeline::new(
        DeliveryConfig::default(),
        vec![sms2.clone() as Arc<dyn Channel>],
        r.store.clone() as Arc<dyn Store>,
        r.scheduler.clone() as Arc<dyn Scheduler>,
        Arc::new(r.clock.clone()),
    )
    .unwrap();
    r.clock.advance(Duration::from_secs(10));
    assert_eq!(
        p2.notify(sample_notification("n2", "sms", "+15550001"))
            .await
            .unwrap(),
        DeliveryOutcome::Pending {
            next_at: t0() + SignedDuration::from_secs(60)
        }
    );
    assert!(matches!(
        p2.notify(sample_notification("n3", "sms", "+15550002"))
            .await
            .unwrap(),
        DeliveryOutcome::Sent { .. }
    ));
    assert_eq!(sms2.call_count(), 1);
    r.clock.advance(Duration::from_secs(50));
    p2.run_due().await.unwrap();
    assert_eq!(
        sms2.calls().into_iter().map(|n| n.id).collect::<Vec<_>>(),
        ["n3", "n2"]
    );
}

/// A store that counts the writes of notification rows (the ~KB JSON of a
/// notification with its alerts) in any table.
struct CountingStore {
    inner: MemoryStore,
    notification_writes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Store for CountingStore {
    async fn get(
        &self,
        table: crate::store::Table,
        key: &str,
    ) -> Result<Option<Vec<u8>>, crate::store::StoreError> {
        self.inner.get(table, key).await
    }
    async fn scan(
        &self,
        table: crate::store::Table,
        scan: crate::store::Scan,
    ) -> Result<Vec<(String, Vec<u8>)>, crate::store::StoreError> {
        self.inner.scan(table, scan).await
    }
    async fn commit(
        &self,
        batch: crate::store::WriteBatch,
    ) -> Result<(), crate::store::StoreError> {
        for op in &batch.ops {
            if let crate::store::WriteOp::Put { value, .. } = op
                && super::notification_row::decode(value).is_ok()
            {
                self.notification_writes
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        self.inner.commit(batch).await
    }
    async fn count(&self, table: crate::store::Table) -> Result<u64, crate::store::StoreError> {
        self.inner.count(table).await
    }
}

/// With the pipeline as the engine's notifier, the notification log is the outbox:
/// each notification is written once (in the decision's batch), the first attempt
/// has no `sending` commit of its own, and nothing is left in either outbox.
#[tokio::test]
async fn the_engine_records_each_notification_once_in_the_log() {
    use crate::engine::{Engine, EngineConfig, Notifier};
    use crate::model::{Alert, Event, Labels, Source};
    use crate::store::{Scan, Table};
    let slack = ScriptedChannel::new("slack", "slack");
    let clock = ManualClock::new(t0());
    let store = Arc::new(CountingStore {
        inner: MemoryStore::new(),
        notification_writes: Default::default(),
    });
    let scheduler = Arc::new(MemoryScheduler::new());
    let pipeline = Arc::new(
        DeliveryPipeline::new(
            DeliveryConfig::default(),
            vec![slack.clone() as Arc<dyn Channel>],
            store.clone() as Arc<dyn Store>,
            scheduler.clone() as Arc<dyn Scheduler>,
            Arc::new(clock.clone()),
        )
        .unwrap(),
    );
    let cfg: EngineConfig = serde_json::from_value(serde_json::json!({"route": {
        "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m",
        "notify": [{"channel": "slack", "target": "#ops"}]
    }}))
    .unwrap();
    let engine = Engine::builder(cfg)
        .store(store.clone() as Arc<dyn Store>)
        .scheduler(scheduler.clone() as Arc<dyn Scheduler>)
        .clock(Arc::new(clock.clone()))
        .notifier(pipeline.clone() as Arc<dyn Notifier>)
        .in_memory_flush_timers(true)
        .build()
        .unwrap();
    let alerts: Vec<Event> = ["A", "B", "C"]
        .iter()
        .map(|name| {
            let mut l = Labels::new();
            l.insert("alertname".into(), (*name).into());
            Event::Alert(Alert::firing(
                Source {
                    provider: "test".into(),
                    integration: "prom".into(),
                },
                format!("{name} fires"),
                l,
            ))
        })
        .collect();
    engine.ingest(alerts).await.unwrap();
    clock.advance(Duration::from_secs(30));
    engine.run_due_jobs().await.unwrap();
    assert_eq!(slack.call_count(), 3, "one notification per group");
    assert_eq!(
        store
            .notification_writes
            .load(std::sync::atomic::Ordering::SeqCst),
        3,
        "each notification serialized and written once"
    );
    for n in slack.calls() {
        let recs = pipeline.log().records(&n.id).await.unwrap();
        assert_eq!(
            statuses(&recs),
            vec![("slack".to_string(), DeliveryStatus::Sent)],
            "the first attempt is recorded by its outcome commit"
        );
        let state = pipeline.log().state(&n.id).await.unwrap().expect("state");
        assert!(state.finished);
        assert_eq!(state.notification, n);
        let inc = n.incident.as_ref().expect("incident").id.clone();
        assert_eq!(pipeline.log().trail(&inc).await.unwrap().len(), 1);
    }
    let meta = store
        .scan(Table::Meta, Scan::prefix("outbox/"))
        .await
        .unwrap();
    assert!(meta.is_empty(), "no engine outbox rows: {meta:?}");
    assert!(pipeline.recorded_pending().await.unwrap().is_empty());
    assert!(
        pipeline.log().in_flight(0).await.unwrap().is_empty(),
        "no attempt left marked in flight"
    );
}

/// A recorded notification survives a crash before its hand-over and a crash in
/// the middle of its first send (which had no commit before it): the next process
/// finds it through `recorded_pending` and delivers it, once.
#[tokio::test(start_paused = true)]
async fn a_recorded_notification_survives_a_crash_before_and_during_its_first_send() {
    use crate::engine::Notifier;
    let slack = ScriptedChannel::new("slack", "slack");
    let r = rig(DeliveryConfig::default(), vec![slack.clone()]);
    let n1 = sample_notification("incident/slack/inc-42/1", "slack", "#ops");
    let n2 = sample_notification("incident/slack/inc-42/2", "slack", "#ops");
    let mut b = crate::store::WriteBatch::new();
    r.pipeline.log().record_accepted(&n1, &mut b).unwrap();
    r.pipeline.log().record_accepted(&n2, &mut b).unwrap();
    r.store.commit(b).await.unwrap();
    // n1: never handed over. n2: the process dies while the channel hangs.
    slack.script([Step::Hang]);
    let fut = Notifier::notify_recorded(&r.pipeline, n2.clone());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), fut)
            .await
            .is_err()
    );
    assert_eq!(slack.call_count(), 1);

    let slack2 = ScriptedChannel::new("slack", "slack");
    let p2 = DeliveryPipeline::new(
        DeliveryConfig::default(),
        vec![slack2.clone() as Arc<dyn Channel>],
        r.store.clone() as Arc<dyn Store>,
        r.scheduler.clone() as Arc<dyn Scheduler>,
        Arc::new(r.clock.clone()),
    )
    .unwrap();
    let pending = p2.recorded_pending().await.unwrap();
    assert_eq!(pending, vec![n1.clone(), n2.clone()]);
    for n in pending {
        Notifier::notify_recorded(&p2, n).await.unwrap();
    }
    let sent: Vec<String> = slack2.calls().into_iter().map(|n| n.id).collect();
    assert_eq!(sent, vec![n1.id.clone(), n2.id.clone()]);
    assert!(
        p2.recorded_pending().await.unwrap().is_empty(),
        "markers cleared"
    );
    // Handing one over again (a duplicate) sends nothing.
    Notifier::notify_recorded(&p2, n1.clone()).await.unwrap();
    assert_eq!(slack2.call_count(), 2);
    assert_eq!(p2.log().trail("inc-42").await.unwrap().len(), 2);
}

/// A recorded notification whose receiver names no channel is an error and its
/// marker is removed (a restart could not deliver it either).
#[tokio::test]
async fn a_recorded_notification_for_no_channel_is_an_error_and_not_retried() {
    use crate::engine::Notifier;
    let slack = ScriptedChannel::new("slack", "slack");
    let r = rig(DeliveryConfig::default(), vec![slack.clone()]);
    let n = sample_notification("x", "nowhere", "#ops");
    let mut b = crate::store::WriteBatch::new();
    r.pipeline.log().record_accepted(&n, &mut b).unwrap();
    r.store.commit(b).await.unwrap();
    assert_eq!(r.pipeline.recorded_pending().await.unwrap().len(), 1);
    assert!(Notifier::notify_recorded(&r.pipeline, n).await.is_err());
    assert!(r.pipeline.recorded_pending().await.unwrap().is_empty());
    assert_eq!(slack.call_count(), 0);
}

/// Periodic health checks are a durable job on the manual clock: one job per
/// interval, a failed check makes the channel unhealthy (so a chain skips it), a
/// stale or duplicated job runs nothing and arms nothing, and a restarted
/// pipeline replaces the previous process's job instead of adding a second.
#[tokio::test]
async fn periodic_health_checks_run_on_the_scheduler_and_survive_a_restart() {
    let slack = ScriptedChannel::new("slack", "slack");
    let email = ScriptedChannel::new("email", "email");
    let mut c = chain(&["slack", "email"]);
    c.health.check_interval_secs = 30;
    let r = rig(c.clone(), vec![slack.clone(), email.clone()]);
    let health_jobs = |s: Arc<MemoryScheduler>| async move {
        s.pending()
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.id.starts_with(HEALTH_JOB_PREFIX))
            .collect::<Vec<_>>()
    };
    r.pipeline.start_health_checks().await.unwrap();
    let jobs = health_jobs(r.scheduler.clone()).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].due, t0() + SignedDuration::from_secs(30));
    assert_eq!(r.pipeline.run_due().await.unwrap(), 0, "not due yet");

    slack.set_health(Err(DeliveryError::Permanent {
        reason: "invalid_auth".into(),
    }));
    r.clock.advance(Duration::from_secs(30));
    assert_eq!(r.pipeline.run_due().await.unwrap(), 1);
    let now = r.clock.now();
    assert!(!r.pipeline.health().is_healthy("slack", "#ops", now));
    assert!(r.pipeline.health().is_healthy("email", "#ops", now));
    let next = health_jobs(r.scheduler.clone()).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].due, t0() + SignedDuration::from_secs(60));
    // The unhealthy channel is skipped straight to failover.
    r.pipeline
        .notify(sample_notification("n1", "slack", "#ops"))
        .await
        .unwrap();
    assert_eq!(slack.call_count(), 0);
    assert_eq!(email.call_count(), 1);
    // The job that already ran, run again (a duplicate claim): nothing happens.
    let again = r.pipeline.run_job(&jobs[0]).await.unwrap();
    assert_eq!(again, DeliveryOutcome::Ignored);
    assert_eq!(health_jobs(r.scheduler.clone()).await.len(), 1);

    // The check recovers on the next round.
    slack.set_health(Ok(()));
    r.clock.advance(Duration::from_secs(30));
    assert_eq!(r.pipeline.run_due().await.unwrap(), 1);
    assert!(
        r.pipeline
            .health()
            .is_healthy("slack", "#ops", r.clock.now())
    );

    // Restart: a new pipeline over the same scheduler replaces the old job.
    let p2 = DeliveryPipeline::new(
        c,
        vec![slack.clone() as Arc<dyn Channel>, email.clone()],
        r.store.clone() as Arc<dyn Store>,
        r.scheduler.clone() as Arc<dyn Scheduler>,
        Arc::new(r.clock.clone()),
    )
    .unwrap();
    let old = health_jobs(r.scheduler.clone()).await;
    p2.start_health_checks().await.unwrap();
    let new = health_jobs(r.scheduler.clone()).await;
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].due, r.clock.now() + SignedDuration::from_secs(30));
    // The old process's job, should it still be handed out, is stale here.
    assert_eq!(p2.run_job(&old[0]).await.unwrap(), DeliveryOutcome::Ignored);
    slack.set_health(Err(DeliveryError::Permanent {
        reason: "account_inactive".into(),
    }));
    r.clock.advance(Duration::from_secs(30));
    assert_eq!(
        p2.run_job(&new[0]).await.unwrap(),
        DeliveryOutcome::HealthChecked { channels: 2 }
    );
    assert!(!p2.health().is_healthy("slack", "#ops", r.clock.now()));
}

/// `check_interval_secs: 0` turns the periodic checks off.
#[tokio::test]
async fn health_checks_interval_zero_arms_nothing() {
    let slack = ScriptedChannel::new("slack", "slack");
    let mut c = DeliveryConfig::default();
    c.health.check_interval_secs = 0;
    let r = rig(c, vec![slack]);
    r.pipeline.start_health_checks().await.unwrap();
    assert!(r.scheduler.pending().await.unwrap().is_empty());
}

/// A retry backoff and a confirmation deadline armed by one process fire in
/// the next (same store and scheduler, new pipeline and channels): the retry
/// is sent once and the unconfirmed SMS fails over to voice.
#[tokio::test]
async fn retry_and_confirmation_timers_survive_a_restart() {
    let slack = ScriptedChannel::new("slack", "slack");
    let sms = ScriptedChannel::new("sms", "sms");
    let voice = ScriptedChannel::new("voice", "voice");
    let mut c = DeliveryConfig::default();
    c.chains.push(FailoverChain {
        receiver: "sms".into(),
        severities: vec![],
        steps: vec![
            ChainStep {
                channel: "sms".into(),
                target: None,
                confirm_within_secs: Some(120),
            },
            ChainStep {
                channel: "voice".into(),
                target: None,
                confirm_within_secs: None,
            },
        ],
    });
    let r = rig(c.clone(), vec![slack.clone(), sms.clone(), voice.clone()]);
    slack.script([retryable(None)]);
    sms.script([Step::Ok(Some("SM1".into()))]);
    let a = r
        .pipeline
        .notify(sample_notification("a", "slack", "#ops"))
        .await
        .unwrap();
    assert_eq!(
        a,
        DeliveryOutcome::Pending {
            next_at: t0() + SignedDuration::from_secs(1)
        }
    );
    let b = r
        .pipeline
        .notify(sample_notification("b", "sms", "+1555"))
        .await
        .unwrap();
    assert_eq!(
        b,
        DeliveryOutcome::Pending {
            next_at: t0() + SignedDuration::from_secs(120)
        }
    );
    drop(r.pipeline);

    let (slack2, sms2, voice2) = (
        ScriptedChannel::new("slack", "slack"),
        ScriptedChannel::new("sms", "sms"),
        ScriptedChannel::new("voice", "voice"),
    );
    let p2 = DeliveryPipeline::new(
        c,
        vec![
            slack2.clone() as Arc<dyn Channel>,
            sms2.clone(),
            voice2.clone(),
        ],
        r.store.clone() as Arc<dyn Store>,
        r.scheduler.clone() as Arc<dyn Scheduler>,
        Arc::new(r.clock.clone()),
    )
    .unwrap();
    r.clock.advance(Duration::from_secs(1));
    assert_eq!(p2.run_due().await.unwrap(), 1);
    assert_eq!(slack2.call_count(), 1, "the retry ran in the new process");
    assert_eq!(
        statuses(&p2.log().records("a").await.unwrap()),
        vec![
            ("slack".into(), DeliveryStatus::Retrying),
            ("slack".into(), DeliveryStatus::Sent)
        ]
    );
    assert_eq!(voice2.call_count(), 0, "deadline not reached yet");
    r.clock.advance(Duration::from_secs(119));
    assert_eq!(p2.run_due().await.unwrap(), 1);
    assert_eq!(sms2.call_count(), 0, "the SMS is not sent again");
    assert_eq!(voice2.call_count(), 1);
    assert_eq!(
        statuses(&p2.log().records("b").await.unwrap()),
        vec![
            ("sms".into(), DeliveryStatus::FailedOver),
            ("voice".into(), DeliveryStatus::Sent)
        ]
    );
    assert!(r.scheduler.pending().await.unwrap().is_empty());
}
