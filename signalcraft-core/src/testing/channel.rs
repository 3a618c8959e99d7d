//! The shared channel conformance suite ([`assert_channel_conformance`]) and a
//! scripted in-process channel ([`ScriptedChannel`]) for pipeline and engine tests.
//!
//! Every channel implementation runs the suite against a fake of its vendor's
//! endpoint (a real local server on 127.0.0.1) through a [`ConformanceRig`]. The
//! suite checks:
//! * the retry table: every status of [`ConformanceRig::status_table`] is
//!   classified as expected, and `Retry-After` is surfaced;
//! * timeouts: a server slower than the channel's timeout yields a retryable
//!   error within a bounded time;
//! * secrets: no secret appears in any error's `Display`/`Debug` or in any log line;
//! * idempotent re-send: through a [`DeliveryPipeline`], the same notification
//!   accepted twice and its stale job re-run reach the vendor exactly once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use parking_lot::Mutex;

use crate::channel::{
    Channel, Delivered, DeliveryError, IncidentRef, Notification, NotificationKind, RetryAction,
    Target,
};
use crate::clock::{Clock, ManualClock};
use crate::delivery::{DeliveryConfig, DeliveryOutcome, DeliveryPipeline, FixedJitter};
use crate::memory::{MemoryScheduler, MemoryStore};
use crate::model::{Alert, AlertStatus, Labels, Link, Severity, Source};
use crate::scheduler::Scheduler;

/// How the fake vendor endpoint should answer the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeBehaviour {
    /// Accept like the real vendor does.
    Accept,
    /// Answer with this status (HTTP status, or SMTP reply code for email).
    Status {
        /// Status / reply code.
        code: u16,
        /// `Retry-After` seconds to send along, if any.
        retry_after_secs: Option<u64>,
    },
    /// Accept the request but answer only after this long.
    Slow(Duration),
}

/// What the suite expects for one behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The behaviour to set.
    pub behaviour: FakeBehaviour,
    /// `None` = delivery succeeds; `Some(action)` = it fails with this classification.
    pub expect: Option<RetryAction>,
}

/// The standard HTTP retry table: 2xx succeed; 408, 429 and 5xx retry; other 4xx are permanent.
pub fn http_status_table() -> Vec<Expectation> {
    let mut t = vec![Expectation {
        behaviour: FakeBehaviour::Accept,
        expect: None,
    }];
    for code in [400u16, 401, 403, 404, 410, 413, 422] {
        t.push(Expectation {
            behaviour: FakeBehaviour::Status {
                code,
                retry_after_secs: None,
            },
            expect: Some(RetryAction::DontRetry),
        });
    }
    for code in [408u16, 429, 500, 502, 503, 504] {
        t.push(Expectation {
            behaviour: FakeBehaviour::Status {
                code,
                retry_after_secs: None,
            },
            expect: Some(RetryAction::Retry),
        });
    }
    t
}

/// A channel under test wired to a controllable fake of its vendor.
#[async_trait]
pub trait ConformanceRig: Send + Sync {
    /// The channel, configured against the fake with `timeout()` as its I/O bound.
    fn channel(&self) -> Arc<dyn Channel>;
    /// Sets how the fake answers from now on.
    async fn set_behaviour(&self, behaviour: FakeBehaviour);
    /// How many messages the fake accepted so far.
    async fn accepted(&self) -> usize;
    /// Every secret the channel was configured with (tokens, passwords, URL paths).
    fn secrets(&self) -> Vec<String>;
    /// Every log line captured so far (the rig installs a capturing subscriber).
    fn logs(&self) -> Vec<String>;
    /// The channel's own per-request timeout.
    fn timeout(&self) -> Duration;
    /// Target address valid for this channel.
    fn address(&self) -> String;
    /// The retry table to check (HTTP by default).
    fn status_table(&self) -> Vec<Expectation> {
        http_status_table()
    }
    /// Whether the fake can send `Retry-After` (HTTP vendors) — then the suite checks it.
    fn supports_retry_after(&self) -> bool {
        true
    }
}

/// A realistic notification for `receiver`/`address`, with a critical incident,
/// runbooks, a recent change and one firing alert.
pub fn sample_notification(id: &str, receiver: &str, address: &str) -> Notification {
    let mut labels = Labels::new();
    labels.insert("alertname".into(), "HighErrorRate".into());
    labels.insert("service".into(), "checkout".into());
    labels.insert("severity".into(), "critical".into());
    let source = Source {
        provider: "alertmanager".into(),
        integration: "prom".into(),
    };
    let mut alert = Alert::firing(source.clone(), "5xx rate above 5% for 10m", labels.clone());
    alert.severity = Severity::Critical;
    alert.starts_at = Some(Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH));
    alert.annotations.insert(
        "description".into(),
        "Checkout returns 5xx to 7% of requests".into(),
    );
    let created = Timestamp::from_second(1_767_225_660).unwrap_or(Timestamp::UNIX_EPOCH);
    Notification {
        id: id.to_string(),
        kind: NotificationKind::Incident,
        group_key: "{}:{alertname=\"HighErrorRate\"}".into(),
        status: AlertStatus::Firing,
        incident: Some(IncidentRef {
            id: "inc-42".into(),
            number: 42,
            title: "HighErrorRate on checkout".into(),
            state: "open".into(),
            severity: Severity::Critical,
            service: Some("checkout".into()),
            url: Some("https://signalcraft.example.com/incidents/42".into()),
        }),
        alerts: vec![alert].into(),
        group_labels: Labels::from([("alertname", "HighErrorRate")]),
        common_labels: labels,
        common_annotations: Default::default(),
        runbooks: vec![Link {
            href: "https://runbooks.example.com/checkout-5xx".into(),
            text: Some("Checkout 5xx runbook".into()),
        }],
        recent_changes: vec![crate::model::ChangeEvent {
            source,
            summary: "Deployed checkout v2.3.1".into(),
            timestamp: created,
            service: Some("checkout".into()),
            repository: None,
            labels: Labels::new(),
            links: Vec::new(),
            details: serde_json::Value::Null,
            raw: Default::default(),
        }],
        receiver: receiver.to_string(),
        target: Target {
            address: address.to_string(),
            user: None,
        },
        external_url: Some("https://signalcraft.example.com".into()),
        created_at: created,
    }
}

fn assert_no_secret(rig: &dyn ConformanceRig, what: &str, text: &str) {
    for s in rig.secrets() {
        if !s.is_empty() {
            assert!(
                !text.contains(&s),
                "{what} leaks a secret ({} chars): {text}",
                s.len()
            );
        }
    }
}

/// Runs the whole conformance suite; panics (test failure) on the first violation.
pub async fn assert_channel_conformance(rig: &dyn ConformanceRig) {
    let ch = rig.channel();
    let address = rig.address();
    assert!(!ch.kind().is_empty(), "kind() must not be empty");
    assert!(!ch.name().is_empty(), "name() must not be empty");

    // 1. The retry table.
    for (i, row) in rig.status_table().into_iter().enumerate() {
        rig.set_behaviour(row.behaviour.clone()).await;
        let n = sample_notification(&format!("conf-table-{i}"), ch.name(), &address);
        let res = ch.deliver(&n).await;
        match (&res, row.expect) {
            (Ok(_), None) => {}
            (Err(e), Some(action)) => {
                assert_eq!(
                    e.retry_action(),
                    action,
                    "{:?} classified as {e} — expected {action:?}",
                    row.behaviour
                );
                assert_no_secret(rig, "error Display", &e.to_string());
                assert_no_secret(rig, "error Debug", &format!("{e:?}"));
            }
            (r, want) => panic!("{:?}: got {r:?}, expected {want:?}", row.behaviour),
        }
    }

    // 2. Retry-After is surfaced.
    if rig.supports_retry_after() {
        rig.set_behaviour(FakeBehaviour::Status {
            code: 429,
            retry_after_secs: Some(7),
        })
        .await;
        let n = sample_notification("conf-retry-after", ch.name(), &address);
        match ch.deliver(&n).await {
            Err(DeliveryError::Retryable { retry_after, .. }) => assert_eq!(
                retry_after,
                Some(Duration::from_secs(7)),
                "429 must carry Retry-After"
            ),
            other => panic!("429 with Retry-After: got {other:?}"),
        }
    }

    // 3. Timeouts hold: a slow server gives a retryable error, bounded in time.
    rig.set_behaviour(FakeBehaviour::Slow(
        rig.timeout() * 4 + Duration::from_millis(200),
    ))
    .await;
    let n = sample_notification("conf-timeout", ch.name(), &address);
    let bound = rig.timeout() * 3 + Duration::from_secs(1);
    match tokio::time::timeout(bound, ch.deliver(&n)).await {
        Ok(Err(e)) => {
            assert_eq!(
                e.retry_action(),
                RetryAction::Retry,
                "timeout must be retryable: {e}"
            );
            assert_no_secret(rig, "timeout error", &e.to_string());
        }
        Ok(Ok(_)) => panic!("a server slower than the timeout must not count as delivered"),
        Err(_) => panic!("deliver ignored its own timeout ({:?})", rig.timeout()),
    }

    // 4. Idempotent re-send through the delivery pipeline.
    rig.set_behaviour(FakeBehaviour::Accept).await;
    let before = rig.accepted().await;
    let clock =
        ManualClock::new(Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH));
    let scheduler = Arc::new(MemoryScheduler::new());
    let pipeline = DeliveryPipeline::new(
        DeliveryConfig::default(),
        vec![ch.clone()],
        Arc::new(MemoryStore::new()),
        scheduler.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap_or_else(|e| panic!("pipeline: {e}"))
    .with_jitter(Arc::new(FixedJitter(1.0)));
    let n = sample_notification("conf-idempotent", ch.name(), &address);
    let first = pipeline.notify(n.clone()).await;
    assert!(
        matches!(first, Ok(DeliveryOutcome::Sent { .. })),
        "first delivery: {first:?}"
    );
    let again = pipeline.notify(n).await;
    assert!(
        matches!(again, Ok(DeliveryOutcome::AlreadyAccepted)),
        "re-send: {again:?}"
    );
    // Even a stale job for it (a crashed worker's) must not send again.
    let stale = crate::scheduler::Job {
        id: "delivery/conf-idempotent/1".into(),
        due: clock.now(),
        kind: crate::scheduler::JobKind::Delivery {
            notification_id: "conf-idempotent".into(),
            attempt: 2,
        },
        attempts: 1,
    };
    let r = pipeline.run_job(&stale).await;
    assert!(
        matches!(r, Ok(DeliveryOutcome::Ignored)),
        "stale job: {r:?}"
    );
    assert!(
        scheduler
            .pending()
            .await
            .map(|p| p.is_empty())
            .unwrap_or(false),
        "a delivered notification leaves no job behind"
    );
    assert_eq!(rig.accepted().await, before + 1, "sent exactly once");

    // 5. No log line carries a secret.
    for line in rig.logs() {
        assert_no_secret(rig, "log line", &line);
    }
}

/// What a [`ScriptedChannel`] does on one `deliver` call.
#[derive(Debug, Clone)]
pub enum Step {
    /// Succeed with this provider message id.
    Ok(Option<String>),
    /// Fail with this error.
    Err(DeliveryError),
    /// Never answer (the pipeline's timeout must fire).
    Hang,
}

/// An in-process channel that plays a script of outcomes (then succeeds) and
/// records every notification it was asked to deliver.
pub struct ScriptedChannel {
    kind: String,
    name: String,
    script: Mutex<VecDeque<Step>>,
    calls: Mutex<Vec<Notification>>,
    health: Mutex<Result<(), DeliveryError>>,
}

impl ScriptedChannel {
    /// A channel of `kind` called `name` that succeeds until scripted otherwise.
    pub fn new(kind: &str, name: &str) -> Arc<Self> {
        Arc::new(ScriptedChannel {
            kind: kind.into(),
            name: name.into(),
            script: Mutex::new(VecDeque::new()),
            calls: Mutex::new(Vec::new()),
            health: Mutex::new(Ok(())),
        })
    }

    /// Appends outcomes for the next calls.
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.script.lock().extend(steps);
    }

    /// Sets what `health_check` returns.
    pub fn set_health(&self, r: Result<(), DeliveryError>) {
        *self.health.lock() = r;
    }

    /// Every notification passed to `deliver`, in order.
    pub fn calls(&self) -> Vec<Notification> {
        self.calls.lock().clone()
    }

    /// Number of `deliver` calls.
    pub fn call_count(&self) -> usize {
        self.calls.lock().len()
    }
}

#[async_trait]
impl Channel for ScriptedChannel {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn name(&self) -> &str {
        &self.name
    }
    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        self.calls.lock().push(n.clone());
        let step = self.script.lock().pop_front();
        match step {
            None => Ok(Delivered {
                provider_message_id: Some(format!("{}-{}", self.name, self.call_count())),
            }),
            Some(Step::Ok(id)) => Ok(Delivered {
                provider_message_id: id,
            }),
            Some(Step::Err(e)) => Err(e),
            Some(Step::Hang) => {
                std::future::pending::<()>().await;
                Err(DeliveryError::Permanent {
                    reason: "unreachable".into(),
                })
            }
        }
    }
    async fn health_check(&self) -> Result<(), DeliveryError> {
        self.health.lock().clone()
    }
}
