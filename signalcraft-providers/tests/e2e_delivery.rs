//! End to end: a critical alert goes through the real engine (grouping →
//! incident → notification) into the delivery pipeline; Slack is down (503 on
//! every call), SMTP is up (a real aiosmtpd process): the email is delivered and
//! the incident's delivery trail shows Slack's retry and its `failed_over` record.
#![cfg(all(
    feature = "channel-slack",
    feature = "channel-email",
    feature = "channel-twilio",
    feature = "channel-webhook",
    feature = "channel-teams"
))]

#[path = "channel_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use signalcraft_core::clock::ManualClock;
use signalcraft_core::delivery::{
    ChainStep, DeliveryConfig, DeliveryPipeline, DeliveryStatus, FailoverChain, FixedJitter,
};
use signalcraft_core::engine::{Engine, EngineConfig};
use signalcraft_core::incident::IncidentFilter;
use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::model::{Alert, Event, Labels, Severity, Source};
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::testing::channel::FakeBehaviour;
use signalcraft_providers::channels::registry::{ChannelConfig, ChannelRegistry};
use support::{Aiosmtpd, Fake, Mode, Vendor};

#[tokio::test]
async fn critical_alert_with_slack_down_is_emailed_and_leaves_a_failed_over_record() {
    let smtp = Aiosmtpd::start().await;
    let slack = Fake::start_with(Vendor::SlackApi, Some("xoxb-e2e"), None).await;
    slack.set(Mode::Core(FakeBehaviour::Status {
        code: 503,
        retry_after_secs: None,
    }));

    let channels: Vec<ChannelConfig> = serde_json::from_value(serde_json::json!([
        {"type": "slack", "name": "ops-slack", "token": "xoxb-e2e", "api_url": slack.url("/api"), "timeout_ms": 2000},
        {"type": "email", "name": "smtp", "host": "127.0.0.1", "port": smtp.port, "tls": "none",
         "from": "SignalCraft <alerts@signalcraft.example.com>", "timeout_ms": 5000}
    ]))
    .unwrap();
    let registry = ChannelRegistry::from_configs(&channels).unwrap();
    let mut delivery = DeliveryConfig::default();
    delivery.retry.max_attempts = 2;
    delivery.chains.push(FailoverChain {
        receiver: "ops-slack".into(),
        severities: vec![Severity::Critical],
        steps: vec![
            ChainStep {
                channel: "ops-slack".into(),
                target: None,
                confirm_within_secs: None,
            },
            ChainStep {
                channel: "smtp".into(),
                target: Some("oncall@example.com".into()),
                confirm_within_secs: None,
            },
        ],
    });

    let clock = ManualClock::new("2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap());
    let store = Arc::new(MemoryStore::new());
    let scheduler = Arc::new(MemoryScheduler::new());
    let pipeline = Arc::new(
        DeliveryPipeline::new(
            delivery,
            registry.channels(),
            store.clone(),
            scheduler.clone(),
            Arc::new(clock.clone()),
        )
        .unwrap()
        .with_jitter(Arc::new(FixedJitter(1.0))),
    );
    let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
        "route": {"group_by": ["alertname"], "group_wait": "10s",
                  "notify": [{"channel": "ops-slack", "target": "C0OPS"}]}
    }))
    .unwrap();
    let engine = Engine::builder(cfg)
        .store(store.clone())
        .scheduler(scheduler.clone())
        .clock(Arc::new(clock.clone()))
        .notifier(pipeline.clone())
        .build()
        .unwrap();

    let mut labels = Labels::new();
    labels.insert("alertname".into(), "CheckoutDown".into());
    labels.insert("service".into(), "checkout".into());
    let mut alert = Alert::firing(
        Source {
            provider: "alertmanager".into(),
            integration: "prom".into(),
        },
        "checkout returns 503 for every request",
        labels,
    );
    alert.severity = Severity::Critical;
    engine.ingest(vec![Event::Alert(alert)]).await.unwrap();

    // group_wait elapses: the incident's notification goes to Slack, which is down.
    clock.advance(Duration::from_secs(10));
    engine.run_due_jobs().await.unwrap();
    assert_eq!(slack.requests().len(), 1);
    // The retry (backoff 1 s) fails too; the chain fails over to email.
    clock.advance(Duration::from_secs(1));
    engine.run_due_jobs().await.unwrap();
    assert_eq!(slack.requests().len(), 2);

    let mails = smtp.wait_for(1).await;
    let incident = &engine.list_incidents(&IncidentFilter::default()).items[0];
    assert!(mails[0].contains(&format!(
        "Subject: [SignalCraft] Incident #{}",
        incident.number
    )));
    assert!(mails[0].contains("checkout returns 503 for every request"));
    assert!(mails[0].contains("To: oncall@example.com"));

    let trail = pipeline.log().trail(&incident.id).await.unwrap();
    let steps: Vec<(&str, DeliveryStatus)> = trail
        .iter()
        .map(|r| (r.channel.as_str(), r.status))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("ops-slack", DeliveryStatus::Retrying),
            ("ops-slack", DeliveryStatus::FailedOver),
            ("smtp", DeliveryStatus::Sent),
        ]
    );
    assert!(trail[1].error.as_deref().unwrap().contains("HTTP 503"));
    assert_eq!(trail[2].target, "oncall@example.com");
    assert!(
        trail[2]
            .provider_message_id
            .as_deref()
            .unwrap()
            .ends_with("@signalcraft.example.com>")
    );

    // Nothing is left to run and nothing is sent twice.
    clock.advance(Duration::from_secs(3600));
    engine.run_due_jobs().await.unwrap();
    let pending: Vec<_> = scheduler
        .pending()
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.id.starts_with("delivery/"))
        .collect();
    assert!(pending.is_empty(), "{pending:?}");
    assert_eq!(slack.requests().len(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(smtp.wait_for(1).await.len(), 1);
}
