//! A small scenario DSL in the spirit of Alertmanager's `acceptance/` tests: drive an
//! [`Engine`] on a [`ManualClock`] with a recording channel, then assert what was
//! notified when (`want(between(a, b), ...)`).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use parking_lot::Mutex;
use signalcraft_core::channel::{Channel, Delivered, DeliveryError, Notification};
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::engine::{ChannelNotifier, Engine, EngineConfig};
use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::model::{Alert, AlertStatus, Event, Fingerprint, Labels, Source};
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::store::Store;

/// Start of every scenario: a Monday.
pub const T0: &str = "2026-03-02T10:00:00Z";

/// One recorded delivery.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Seconds since T0.
    pub at: u64,
    /// The notification.
    pub n: Notification,
}

impl Sent {
    /// Fingerprints of firing alerts (sorted).
    pub fn firing(&self) -> Vec<Fingerprint> {
        self.set(AlertStatus::Firing)
    }
    /// Fingerprints of resolved alerts (sorted).
    pub fn resolved(&self) -> Vec<Fingerprint> {
        self.set(AlertStatus::Resolved)
    }
    fn set(&self, s: AlertStatus) -> Vec<Fingerprint> {
        let mut v: Vec<_> = self
            .n
            .alerts
            .iter()
            .filter(|a| a.status == s)
            .map(|a| a.fingerprint())
            .collect();
        v.sort();
        v
    }
}

/// A channel that records what it is asked to deliver, optionally failing.
pub struct Recorder {
    clock: ManualClock,
    t0: Timestamp,
    pub sent: Mutex<Vec<Sent>>,
    pub fail: Mutex<bool>,
}

#[async_trait]
impl Channel for Recorder {
    fn kind(&self) -> &str {
        "test"
    }
    fn name(&self) -> &str {
        "rec"
    }
    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        if *self.fail.lock() {
            return Err(DeliveryError::Permanent {
                reason: "recipient rejected".into(),
            });
        }
        let at = self.clock.now().duration_since(self.t0).as_secs() as u64;
        self.sent.lock().push(Sent { at, n: n.clone() });
        Ok(Delivered::default())
    }
}

/// A running scenario.
pub struct Scenario {
    pub engine: Engine,
    pub clock: ManualClock,
    pub rec: Arc<Recorder>,
    pub t0: Timestamp,
    pub store: Arc<MemoryStore>,
    pub scheduler: Arc<MemoryScheduler>,
}

/// Route config with one target on the recording channel.
pub fn config(route: serde_json::Value) -> EngineConfig {
    let mut v = serde_json::json!({ "route": route });
    if v["route"].get("notify").is_none() {
        v["route"]["notify"] = serde_json::json!([{"channel": "rec", "target": "#ops"}]);
    }
    serde_json::from_value(v).expect("scenario config")
}

impl Scenario {
    /// A scenario on fresh in-memory parts.
    pub fn new(cfg: EngineConfig) -> Self {
        Self::with_parts(
            cfg,
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryScheduler::new()),
            None,
        )
    }

    /// A scenario on given parts (for restart tests), clock at `at` (default T0).
    pub fn with_parts(
        cfg: EngineConfig,
        store: Arc<MemoryStore>,
        scheduler: Arc<MemoryScheduler>,
        clock: Option<ManualClock>,
    ) -> Self {
        let t0: Timestamp = T0.parse().unwrap();
        let clock = clock.unwrap_or_else(|| ManualClock::new(t0));
        let rec = Arc::new(Recorder {
            clock: clock.clone(),
            t0,
            sent: Mutex::new(Vec::new()),
            fail: Mutex::new(false),
        });
        let notifier = ChannelNotifier::new().with("rec", rec.clone());
        let engine = Engine::builder(cfg)
            .store(store.clone() as Arc<dyn Store>)
            .scheduler(scheduler.clone() as Arc<dyn Scheduler>)
            .clock(Arc::new(clock.clone()))
            .notifier(Arc::new(notifier))
            .build()
            .expect("engine");
        Scenario {
            engine,
            clock,
            rec,
            t0,
            store,
            scheduler,
        }
    }

    /// Seconds since T0 now.
    pub fn now_s(&self) -> u64 {
        self.clock.now().duration_since(self.t0).as_secs() as u64
    }

    /// Advances to `t` seconds after T0, running every job at its exact due time.
    pub async fn at(&self, t: u64) -> &Self {
        let target = self.t0 + jiff::SignedDuration::from_secs(t as i64);
        assert!(
            self.clock.now() <= target,
            "time goes forward: now {} > {t}",
            self.now_s()
        );
        loop {
            let next = self.engine.next_wakeup().await.unwrap();
            match next {
                Some(n) if n <= target => {
                    if n > self.clock.now() {
                        self.clock.set(n);
                    }
                    self.engine.run_due_jobs().await.unwrap();
                }
                _ => break,
            }
        }
        self.clock.set(target);
        self.engine.run_due_jobs().await.unwrap();
        self
    }

    /// Ingests alerts now, then runs whatever became due (as the run loop would).
    pub async fn push(&self, alerts: Vec<Alert>) -> &Self {
        self.engine
            .ingest(alerts.into_iter().map(Event::Alert).collect())
            .await
            .unwrap();
        self.engine.run_due_jobs().await.unwrap();
        self
    }

    /// Everything recorded so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.rec.sent.lock().clone()
    }

    /// Notifications recorded with `a <= at <= b`.
    pub fn between(&self, a: u64, b: u64) -> Vec<Sent> {
        self.sent()
            .into_iter()
            .filter(|s| (a..=b).contains(&s.at))
            .collect()
    }

    /// Asserts exactly these (time, firing, resolved) notifications happened in `[a, b]`.
    pub fn want(&self, a: u64, b: u64, want: &[(u64, &[&Alert], &[&Alert])]) {
        let got: Vec<(u64, Vec<Fingerprint>, Vec<Fingerprint>)> = self
            .between(a, b)
            .iter()
            .map(|s| (s.at, s.firing(), s.resolved()))
            .collect();
        let fps = |v: &[&Alert]| {
            let mut f: Vec<Fingerprint> = v.iter().map(|a| a.fingerprint()).collect();
            f.sort();
            f
        };
        let want: Vec<(u64, Vec<Fingerprint>, Vec<Fingerprint>)> =
            want.iter().map(|(t, f, r)| (*t, fps(f), fps(r))).collect();
        assert_eq!(got, want, "notifications between {a}s and {b}s");
    }
}

/// A firing alert with labels `alertname=<name>` plus `extra`.
pub fn alert(name: &str, extra: &[(&str, &str)]) -> Alert {
    let mut l = Labels::new();
    l.insert("alertname".into(), name.into());
    for (k, v) in extra {
        l.insert((*k).into(), (*v).into());
    }
    Alert::firing(
        Source {
            provider: "test".into(),
            integration: "prom".into(),
        },
        format!("{name} is firing"),
        l,
    )
}

/// The same alert, resolved.
pub fn resolved(a: &Alert) -> Alert {
    let mut r = a.clone();
    r.status = AlertStatus::Resolved;
    r
}

/// Seconds as a Duration.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
