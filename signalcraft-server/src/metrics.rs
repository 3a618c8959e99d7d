//! Prometheus metrics (`GET /metrics`), fed by the HTTP layer and by the engine's
//! typed [`EngineEvent`]s through [`Metrics`]' [`EventSink`] implementation.
//!
//! Series (all prefixed `signalcraft_`):
//! * `ingest_alerts_total{endpoint}`, `ingest_requests_total{endpoint,outcome}`,
//!   `ingest_request_duration_seconds{endpoint}` (histogram);
//! * `alerts_received_total`, `alerts_deduplicated_total`, `alerts_dedup_ratio`;
//! * `notifications_total{channel,outcome}`, `escalations_total`, `incidents_opened_total`,
//!   `jobs_run_total{kind}`;
//! * `queue_depth` (pending durable jobs, read at scrape time from the in-memory
//!   index of [`crate::queue::CountingScheduler`]);
//! * `retention_removed_total{kind}` (`incidents`, `alerts`, `timeline_entries`,
//!   `notification_log` (rows), `audit` (entries), `changes` (change events),
//!   `silences` (ended silences): removed
//!   from the store; `abandoned_notifications`: never-settled notifications among the
//!   removed rows; and
//!   `archived`: timeline lines archived, by the `[retention]` sweep), `retention_sweeps_total{outcome}` (`ok`, `error`).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use signalcraft_core::engine::{EngineEvent, EventSink};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointOutcome {
    endpoint: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelOutcome {
    channel: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The server's metric set.
pub struct Metrics {
    registry: Registry,
    ingest_alerts: Family<EndpointLabel, Counter>,
    ingest_requests: Family<EndpointOutcome, Counter>,
    ingest_duration: Family<EndpointLabel, Histogram>,
    received: Counter,
    deduplicated: Counter,
    dedup_ratio: Gauge<f64, AtomicU64>,
    notifications: Family<ChannelOutcome, Counter>,
    escalations: Counter,
    incidents_opened: Counter,
    jobs: Family<KindLabel, Counter>,
    queue_depth: Gauge,
    queue_source: std::sync::OnceLock<QueueDepthSource>,
    retention_removed: Family<KindLabel, Counter>,
    retention_sweeps: Family<OutcomeLabel, Counter>,
}

/// Reads the number of pending jobs without touching the store.
type QueueDepthSource = Box<dyn Fn() -> u64 + Send + Sync>;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh, registered metric set.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("signalcraft");
        let ingest_alerts = Family::<EndpointLabel, Counter>::default();
        let ingest_requests = Family::<EndpointOutcome, Counter>::default();
        let ingest_duration = Family::<EndpointLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0001, 2.5, 14))) as fn() -> Histogram,
        );
        let received = Counter::default();
        let deduplicated = Counter::default();
        let dedup_ratio = Gauge::<f64, AtomicU64>::default();
        let notifications = Family::<ChannelOutcome, Counter>::default();
        let escalations = Counter::default();
        let incidents_opened = Counter::default();
        let jobs = Family::<KindLabel, Counter>::default();
        let queue_depth = Gauge::default();
        let retention_removed = Family::<KindLabel, Counter>::default();
        let retention_sweeps = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "ingest_alerts",
            "Alerts and events accepted, by ingest endpoint",
            ingest_alerts.clone(),
        );
        registry.register(
            "ingest_requests",
            "Ingest requests by endpoint and outcome (accepted, rejected, rate_limited, error)",
            ingest_requests.clone(),
        );
        registry.register(
            "ingest_request_duration_seconds",
            "Latency of ingest requests until the events are durable",
            ingest_duration.clone(),
        );
        registry.register(
            "alerts_received",
            "Alert events the engine received",
            received.clone(),
        );
        registry.register(
            "alerts_deduplicated",
            "Alert events that repeated a known alert and changed nothing",
            deduplicated.clone(),
        );
        registry.register(
            "alerts_dedup_ratio",
            "alerts_deduplicated_total / alerts_received_total",
            dedup_ratio.clone(),
        );
        registry.register(
            "notifications",
            "Notifications handed to delivery, by channel and outcome (sent, failed)",
            notifications.clone(),
        );
        registry.register("escalations", "Escalation steps run", escalations.clone());
        registry.register(
            "incidents_opened",
            "Incidents opened",
            incidents_opened.clone(),
        );
        registry.register("jobs_run", "Durable timed jobs run, by kind", jobs.clone());
        registry.register(
            "queue_depth",
            "Pending durable jobs (group flushes, escalations, retries)",
            queue_depth.clone(),
        );
        registry.register(
            "retention_removed",
            "Records the retention sweep removed from the store (incidents, alerts, timeline_entries, notification_log, audit, changes, silences; abandoned_notifications: never-settled notifications removed as abandoned, their rows also in notification_log) and timeline lines it archived (archived)",
            retention_removed.clone(),
        );
        registry.register(
            "retention_sweeps",
            "Retention sweeps run, by outcome (ok, error)",
            retention_sweeps.clone(),
        );
        Metrics {
            registry,
            ingest_alerts,
            ingest_requests,
            ingest_duration,
            received,
            deduplicated,
            dedup_ratio,
            notifications,
            escalations,
            incidents_opened,
            jobs,
            queue_depth,
            queue_source: std::sync::OnceLock::new(),
            retention_removed,
            retention_sweeps,
        }
    }

    /// Records one retention sweep that succeeded.
    pub fn retention_swept(&self, report: &signalcraft_store::RetentionReport) {
        for (kind, n) in [
            ("incidents", report.incidents),
            ("alerts", report.alerts),
            ("timeline_entries", report.timeline_entries),
            ("archived", report.archived),
            ("notification_log", report.notification_log),
            ("audit", report.audit),
            ("changes", report.changes),
            ("silences", report.silences),
            ("abandoned_notifications", report.abandoned_notifications),
        ] {
            // Created even at 0, so the series exist from the first sweep.
            self.retention_removed
                .get_or_create(&KindLabel { kind: kind.into() })
                .inc_by(n);
        }
        self.retention_sweeps
            .get_or_create(&OutcomeLabel {
                outcome: "ok".into(),
            })
            .inc();
    }

    /// Records one retention sweep that failed (part of it may have been removed;
    /// each removed incident was removed whole).
    pub fn retention_failed(&self) {
        self.retention_sweeps
            .get_or_create(&OutcomeLabel {
                outcome: "error".into(),
            })
            .inc();
    }

    /// Records one ingest request.
    pub fn ingest(&self, endpoint: &str, outcome: &str, events: u64, took: Duration) {
        self.ingest_requests
            .get_or_create(&EndpointOutcome {
                endpoint: endpoint.into(),
                outcome: outcome.into(),
            })
            .inc();
        let ep = EndpointLabel {
            endpoint: endpoint.into(),
        };
        if events > 0 {
            self.ingest_alerts.get_or_create(&ep).inc_by(events);
        }
        self.ingest_duration
            .get_or_create(&ep)
            .observe(took.as_secs_f64());
    }

    /// Where `queue_depth` comes from at scrape time (the server sets it once, to its
    /// [`crate::queue::CountingScheduler`]); later calls are ignored.
    pub fn set_queue_depth_source(&self, source: impl Fn() -> u64 + Send + Sync + 'static) {
        let _ = self.queue_source.set(Box::new(source));
    }

    /// Samples `queue_depth` from its source; `false` when none was set.
    pub fn sample_queue_depth(&self) -> bool {
        match self.queue_source.get() {
            Some(f) => {
                self.set_queue_depth(f());
                true
            }
            None => false,
        }
    }

    /// Sets the sampled queue depth.
    pub fn set_queue_depth(&self, depth: u64) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// The text exposition (OpenMetrics text, which Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn update_ratio(&self) {
        let r = self.received.get();
        if r > 0 {
            self.dedup_ratio
                .set(self.deduplicated.get() as f64 / r as f64);
        }
    }
}

impl EventSink for Metrics {
    fn emit(&self, event: &EngineEvent) {
        match event {
            EngineEvent::AlertReceived { .. } => {
                self.received.inc();
                self.update_ratio();
            }
            EngineEvent::AlertDeduplicated { .. } => {
                self.deduplicated.inc();
                self.update_ratio();
            }
            EngineEvent::NotificationSent { channel, .. } => {
                self.notifications
                    .get_or_create(&ChannelOutcome {
                        channel: channel.clone(),
                        outcome: "sent".into(),
                    })
                    .inc();
            }
            EngineEvent::NotificationFailed { channel, .. } => {
                self.notifications
                    .get_or_create(&ChannelOutcome {
                        channel: channel.clone(),
                        outcome: "failed".into(),
                    })
                    .inc();
            }
            EngineEvent::IncidentOpened { .. } => {
                self.incidents_opened.inc();
            }
            EngineEvent::JobRun { kind } => {
                if *kind == "escalate" {
                    self.escalations.inc();
                }
                self.jobs
                    .get_or_create(&KindLabel {
                        kind: (*kind).to_string(),
                    })
                    .inc();
            }
            EngineEvent::JournalTrouble { reason } => {
                // Nothing is lost (the events stay in the journal), but the operator
                // must see that the store is refusing the applier's commits.
                tracing::warn!(reason = %reason, "ingest journal: applying events is failing");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signalcraft_core::model::Fingerprint;

    #[test]
    fn engine_events_show_in_the_exposition() {
        let m = Metrics::new();
        let fp = Fingerprint(1);
        m.emit(&EngineEvent::AlertReceived { fingerprint: fp });
        m.emit(&EngineEvent::AlertReceived { fingerprint: fp });
        m.emit(&EngineEvent::AlertDeduplicated { fingerprint: fp });
        m.emit(&EngineEvent::NotificationSent {
            receiver: "r".into(),
            channel: "slack".into(),
        });
        m.emit(&EngineEvent::JobRun { kind: "escalate" });
        m.ingest("alertmanager_v2", "accepted", 100, Duration::from_millis(3));
        m.set_queue_depth(7);
        let text = m.encode();
        assert!(
            text.contains("signalcraft_alerts_received_total 2"),
            "{text}"
        );
        assert!(
            text.contains("signalcraft_alerts_dedup_ratio 0.5"),
            "{text}"
        );
        assert!(
            text.contains("signalcraft_notifications_total{channel=\"slack\",outcome=\"sent\"} 1")
        );
        assert!(text.contains("signalcraft_escalations_total 1"));
        assert!(text.contains("signalcraft_ingest_alerts_total{endpoint=\"alertmanager_v2\"} 100"));
        assert!(text.contains("signalcraft_queue_depth 7"));
        assert!(text.contains("signalcraft_ingest_request_duration_seconds_bucket"));
        assert!(!text.contains("signalcraft_retention_sweeps_total{"));
        m.retention_swept(&signalcraft_store::RetentionReport {
            incidents: 2,
            alerts: 3,
            timeline_entries: 7,
            archived: 7,
            notification_log: 12,
            audit: 40,
            changes: 9,
            silences: 2,
            abandoned_notifications: 1,
            raced: 0,
        });
        m.retention_swept(&signalcraft_store::RetentionReport {
            incidents: 1,
            audit: 2,
            ..Default::default()
        });
        m.retention_failed();
        let text = m.encode();
        for line in [
            "signalcraft_retention_removed_total{kind=\"incidents\"} 3",
            "signalcraft_retention_removed_total{kind=\"alerts\"} 3",
            "signalcraft_retention_removed_total{kind=\"timeline_entries\"} 7",
            "signalcraft_retention_removed_total{kind=\"archived\"} 7",
            "signalcraft_retention_removed_total{kind=\"notification_log\"} 12",
            "signalcraft_retention_removed_total{kind=\"audit\"} 42",
            "signalcraft_retention_removed_total{kind=\"changes\"} 9",
            "signalcraft_retention_removed_total{kind=\"silences\"} 2",
            "signalcraft_retention_removed_total{kind=\"abandoned_notifications\"} 1",
            "signalcraft_retention_sweeps_total{outcome=\"ok\"} 2",
            "signalcraft_retention_sweeps_total{outcome=\"error\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }
}
