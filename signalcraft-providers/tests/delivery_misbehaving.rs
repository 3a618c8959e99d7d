//! The delivery policy against real local HTTP servers that misbehave on
//! purpose (500s, 429 + Retry-After, slow past the timeout, connection refused,
//! malformed JSON): retry counts and backoff timing on a manual clock, failover
//! order, health changes, the delivery trail, nothing lost or sent twice.
#![cfg(all(
    feature = "channel-slack",
    feature = "channel-email",
    feature = "channel-twilio",
    feature = "channel-webhook",
    feature = "channel-teams"
))]
#![allow(clippy::field_reassign_with_default)] // configs are tweaked field by field for readability

#[path = "channel_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use signalcraft_core::channel::Channel;
use signalcraft_core::clock::ManualClock;
use signalcraft_core::delivery::{
    ChainStep, DeliveryConfig, DeliveryOutcome, DeliveryPipeline, DeliveryStatus, FailoverChain,
    FixedJitter, ProviderStatus,
};
use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::testing::channel::{FakeBehaviour, sample_notification};
use signalcraft_providers::channels::email::{EmailChannel, EmailConfig, SmtpTls};
use signalcraft_providers::channels::slack::{SlackChannel, SlackConfig};
use signalcraft_providers::channels::twilio::{
    self, TwilioChannel, TwilioConfig, TwilioMode, expected_signature,
};
use signalcraft_providers::channels::webhook::{WebhookChannel, WebhookConfig};
use support::{Fake, FakeSmtp, Mode, Vendor, refused_port};

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn status(code: u16, retry_after_secs: Option<u64>) -> Mode {
    Mode::Core(FakeBehaviour::Status {
        code,
        retry_after_secs,
    })
}

fn webhook(name: &str, url: String, timeout_ms: u64) -> Arc<dyn Channel> {
    Arc::new(
        WebhookChannel::new(
            &WebhookConfig {
                name: name.into(),
                url,
                headers: Default::default(),
                secret: None,
                timeout_ms,
                max_alerts: 0,
                max_in_flight: 256,
            },
            "channels[0]",
        )
        .unwrap(),
    )
}

fn slack_api(name: &str, base: String) -> Arc<SlackChannel> {
    Arc::new(
        SlackChannel::new(
            &SlackConfig {
                name: name.into(),
                webhook_url: None,
                token: Some("xoxb-test".into()),
                api_url: base,
                default_channel: None,
                signing_secret: None,
                timeout_ms: 2_000,
            },
            "channels[0]",
        )
        .unwrap(),
    )
}

fn twilio(name: &str, fake: &Fake, mode: TwilioMode) -> Arc<dyn Channel> {
    Arc::new(
        TwilioChannel::new(
            &TwilioConfig {
                name: name.into(),
                account_sid: "AC00000000000000000000000000000001".into(),
                auth_token: "tok".into(),
                from: "+15550009999".into(),
                api_url: fake.url(""),
                status_callback_url: None,
                gather_action_url: None,
                timeout_ms: 2_000,
            },
            mode,
            "channels[0]",
        )
        .unwrap(),
    )
}

fn chain(receiver: &str, steps: &[(&str, Option<&str>)]) -> FailoverChain {
    FailoverChain {
        receiver: receiver.into(),
        severities: vec![],
        steps: steps
            .iter()
            .map(|(c, t)| ChainStep {
                channel: (*c).into(),
                target: t.map(str::to_owned),
                confirm_within_secs: None,
            })
            .collect(),
    }
}

struct P {
    clock: ManualClock,
    scheduler: Arc<MemoryScheduler>,
    pipeline: DeliveryPipeline,
}

fn pipeline(config: DeliveryConfig, channels: Vec<Arc<dyn Channel>>) -> P {
    let clock = ManualClock::new(t0());
    let scheduler = Arc::new(MemoryScheduler::new());
    let pipeline = DeliveryPipeline::new(
        config,
        channels,
        Arc::new(MemoryStore::new()),
        scheduler.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap()
    .with_jitter(Arc::new(FixedJitter(1.0)));
    P {
        clock,
        scheduler,
        pipeline,
    }
}

async fn statuses(p: &P, id: &str) -> Vec<(String, DeliveryStatus)> {
    p.pipeline
        .log()
        .records(id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.channel, r.status))
        .collect()
}

#[tokio::test]
async fn http_500s_are_retried_with_exponential_backoff_and_delivered_once() {
    let fake = Fake::start(Vendor::Webhook).await;
    fake.script([status(500, None), status(503, None)]);
    let p = pipeline(
        DeliveryConfig::default(),
        vec![webhook("hook", fake.url("/hook"), 2_000)],
    );
    let out = p
        .pipeline
        .notify(sample_notification("n1", "hook", ""))
        .await
        .unwrap();
    assert_eq!(
        out,
        DeliveryOutcome::Pending {
            next_at: t0() + SignedDuration::from_secs(1)
        }
    );
    // Nothing happens before the backoff elapses.
    p.clock.advance(Duration::from_millis(900));
    assert_eq!(p.pipeline.run_due().await.unwrap(), 0);
    assert_eq!(fake.requests().len(), 1);
    p.clock.advance(Duration::from_millis(100));
    p.pipeline.run_due().await.unwrap();
    assert_eq!(fake.requests().len(), 2);
    // Second backoff doubles: 2 s.
    p.clock.advance(Duration::from_millis(1_999));
    assert_eq!(p.pipeline.run_due().await.unwrap(), 0);
    p.clock.advance(Duration::from_millis(1));
    p.pipeline.run_due().await.unwrap();
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(fake.accepted(), 1);
    use DeliveryStatus::*;
    assert_eq!(
        statuses(&p, "n1").await,
        vec![
            ("hook".into(), Retrying),
            ("hook".into(), Retrying),
            ("hook".into(), Sent)
        ]
    );
    // Every request carried the same idempotency key.
    for r in fake.requests() {
        assert_eq!(r.headers["x-signalcraft-notification-id"], "n1");
    }
    // Re-running everything later sends nothing more.
    p.clock.advance(Duration::from_secs(3600));
    p.pipeline.run_due().await.unwrap();
    assert_eq!(
        p.pipeline
            .notify(sample_notification("n1", "hook", ""))
            .await
            .unwrap(),
        DeliveryOutcome::AlreadyAccepted
    );
    assert_eq!(fake.requests().len(), 3);
    assert!(p.scheduler.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn slack_429_retry_after_sets_the_next_attempt() {
    let fake = Fake::start_with(Vendor::SlackApi, Some("xoxb-test"), None).await;
    fake.script([status(429, Some(30))]);
    let p = pipeline(
        DeliveryConfig::default(),
        vec![slack_api("slack", fake.url("/api"))],
    );
    let out = p
        .pipeline
        .notify(sample_notification("n1", "slack", "C1"))
        .await
        .unwrap();
    assert_eq!(
        out,
        DeliveryOutcome::Pending {
            next_at: t0() + SignedDuration::from_secs(30)
        }
    );
    let recs = p.pipeline.log().records("n1").await.unwrap();
    assert!(
        recs[0].error.as_deref().unwrap().contains("HTTP 429"),
        "{:?}",
        recs[0].error
    );
    p.clock.advance(Duration::from_secs(29));
    p.pipeline.run_due().await.unwrap();
    assert_eq!(fake.requests().len(), 1, "Retry-After honoured");
    p.clock.advance(Duration::from_secs(1));
    p.pipeline.run_due().await.unwrap();
    assert_eq!(fake.accepted(), 1);
    let recs = p.pipeline.log().records("n1").await.unwrap();
    assert_eq!(recs[1].status, DeliveryStatus::Sent);
    assert_eq!(
        recs[1].provider_message_id.as_deref(),
        Some("C1:1700000000.000001")
    );
}

#[tokio::test]
async fn slow_endpoint_times_out_and_fails_over_to_the_second_endpoint() {
    let slow = Fake::start(Vendor::Webhook).await;
    slow.set(Mode::Core(FakeBehaviour::Slow(Duration::from_secs(3))));
    let good = Fake::start(Vendor::Webhook).await;
    let mut c = DeliveryConfig::default();
    c.attempt_timeout_ms = 200;
    c.retry.max_attempts = 1;
    c.chains
        .push(chain("primary", &[("primary", None), ("secondary", None)]));
    let p = pipeline(
        c,
        vec![
            webhook("primary", slow.url("/a"), 10_000),
            webhook("secondary", good.url("/b"), 10_000),
        ],
    );
    let out = p
        .pipeline
        .notify(sample_notification("n1", "primary", ""))
        .await
        .unwrap();
    assert!(
        matches!(out, DeliveryOutcome::Sent { ref channel, .. } if channel == "secondary"),
        "{out:?}"
    );
    let recs = p.pipeline.log().records("n1").await.unwrap();
    assert_eq!(recs[0].status, DeliveryStatus::FailedOver);
    assert_eq!(
        recs[0].error.as_deref(),
        Some("retryable: timed out after 200 ms")
    );
    assert_eq!(good.accepted(), 1);
}

#[tokio::test]
async fn refused_slack_then_rejecting_smtp_then_failing_sms_fail_over_to_the_second_sms_provider() {
    let refused = refused_port();
    let port = refused.port;
    let smtp = FakeSmtp::start().await;
    *smtp.mode.lock().unwrap() = FakeBehaviour::Status {
        code: 550,
        retry_after_secs: None,
    };
    let sms_a = Fake::start(Vendor::Twilio).await;
    sms_a.set(status(500, None));
    let sms_b = Fake::start(Vendor::Twilio).await;
    let email: Arc<dyn Channel> = Arc::new(
        EmailChannel::new(
            &EmailConfig {
                name: "smtp".into(),
                host: "127.0.0.1".into(),
                port: Some(smtp.port),
                tls: SmtpTls::None,
                username: None,
                password: None,
                from: "alerts@example.com".into(),
                subject_template: None,
                text_template: None,
                html_template: None,
                timeout_ms: 2_000,
                ca_file: None,
            },
            "channels[1]",
        )
        .unwrap(),
    );
    let mut c = DeliveryConfig::default();
    c.retry.max_attempts = 2;
    c.chains.push(chain(
        "slack",
        &[
            ("slack", None),
            ("smtp", Some("oncall@example.com")),
            ("sms-a", Some("+15550001111")),
            ("sms-b", Some("+15550001111")),
        ],
    ));
    let p = pipeline(
        c,
        vec![
            slack_api("slack", format!("http://127.0.0.1:{port}/api")),
            email,
            twilio("sms-a", &sms_a, TwilioMode::Sms),
            twilio("sms-b", &sms_b, TwilioMode::Sms),
        ],
    );
    // Slack: connection refused (retryable) → retried once, then failover.
    p.pipeline
        .notify(sample_notification("n1", "slack", "C1"))
        .await
        .unwrap();
    p.clock.advance(Duration::from_secs(1));
    p.pipeline.run_due().await.unwrap();
    // SMTP 550 is permanent → SMS A 500 → retry after 1 s → SMS B.
    p.clock.advance(Duration::from_secs(1));
    p.pipeline.run_due().await.unwrap();
    use DeliveryStatus::*;
    assert_eq!(
        statuses(&p, "n1").await,
        vec![
            ("slack".into(), Retrying),
            ("slack".into(), FailedOver),
            ("smtp".into(), FailedOver),
            ("sms-a".into(), Retrying),
            ("sms-a".into(), FailedOver),
            ("sms-b".into(), Sent),
        ]
    );
    let seen: Vec<_> = sms_a
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{} {} {:?}",
                r.method,
                r.path,
                String::from_utf8_lossy(&r.body)
            )
        })
        .collect();
    assert_eq!(seen.len(), 2, "requests to SMS A: {seen:#?}");
    assert_eq!(sms_b.accepted(), 1);
    assert_eq!(smtp.accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    let trail = p.pipeline.log().trail("inc-42").await.unwrap();
    assert_eq!(trail.len(), 6);
    assert!(
        trail[0]
            .error
            .as_deref()
            .unwrap()
            .contains("connection failed")
    );
    assert!(
        trail[2].error.as_deref().unwrap().contains("550")
            || trail[2].error.as_deref().unwrap().contains("rejected")
    );
    assert!(
        trail[5]
            .provider_message_id
            .as_deref()
            .unwrap()
            .starts_with("SM")
    );
    let h = p.pipeline.health().snapshot("slack", "*", p.clock.now_ts());
    assert_eq!((h.attempts, h.success_rate), (2, 0.0));
}

trait NowTs {
    fn now_ts(&self) -> Timestamp;
}
impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        signalcraft_core::clock::Clock::now(self)
    }
}

#[tokio::test]
async fn malformed_json_reply_is_retried_and_nothing_is_lost() {
    let fake = Fake::start_with(Vendor::SlackApi, Some("xoxb-test"), None).await;
    fake.script([Mode::Malformed]);
    let p = pipeline(
        DeliveryConfig::default(),
        vec![slack_api("slack", fake.url("/api"))],
    );
    p.pipeline
        .notify(sample_notification("n1", "slack", "C1"))
        .await
        .unwrap();
    let recs = p.pipeline.log().records("n1").await.unwrap();
    assert_eq!(recs[0].status, DeliveryStatus::Retrying);
    assert!(recs[0].error.as_deref().unwrap().contains("malformed JSON"));
    p.clock.advance(Duration::from_secs(1));
    p.pipeline.run_due().await.unwrap();
    assert_eq!(statuses(&p, "n1").await[1].1, DeliveryStatus::Sent);
    assert_eq!(fake.accepted(), 1);
}

#[tokio::test]
async fn failing_slack_turns_unhealthy_and_is_skipped_and_health_checks_count() {
    let fake = Fake::start_with(Vendor::SlackApi, Some("xoxb-test"), None).await;
    fake.set(status(503, None));
    let hook = Fake::start(Vendor::Webhook).await;
    let mut c = DeliveryConfig::default();
    c.retry.max_attempts = 1;
    c.chains
        .push(chain("slack", &[("slack", None), ("hook", None)]));
    let slack = slack_api("slack", fake.url("/api"));
    let p = pipeline(
        c,
        vec![slack.clone(), webhook("hook", hook.url("/h"), 2_000)],
    );
    for i in 0..3 {
        p.pipeline
            .notify(sample_notification(&format!("n{i}"), "slack", "C1"))
            .await
            .unwrap();
    }
    assert_eq!(fake.requests().len(), 3);
    assert!(
        !p.pipeline
            .health()
            .is_healthy("slack", "C1", p.clock.now_ts())
    );
    p.pipeline
        .notify(sample_notification("n3", "slack", "C1"))
        .await
        .unwrap();
    assert_eq!(fake.requests().len(), 3, "unhealthy Slack skipped");
    assert_eq!(hook.accepted(), 4);
    let recs = p.pipeline.log().records("n3").await.unwrap();
    assert_eq!(recs[0].error.as_deref(), Some("target unhealthy; skipped"));
    // auth.test against a Slack that answers invalid_auth.
    fake.set(Mode::SlackError("invalid_auth"));
    p.pipeline.run_health_checks().await;
    let h = p.pipeline.health().snapshot("slack", "*", p.clock.now_ts());
    assert!(h.check_error.unwrap().contains("invalid_auth"));
    let h = p.pipeline.health().snapshot("hook", "*", p.clock.now_ts());
    assert!(h.healthy && h.check_error.is_none());
}

#[tokio::test]
async fn slack_keeps_one_message_per_incident_current() {
    let fake = Fake::start_with(Vendor::SlackApi, Some("xoxb-test"), None).await;
    let slack = slack_api("slack", fake.url("/api"));
    let p = pipeline(DeliveryConfig::default(), vec![slack.clone()]);
    p.pipeline
        .notify(sample_notification("n1", "slack", "C1"))
        .await
        .unwrap();
    let mut n2 = sample_notification("n2", "slack", "C1");
    n2.incident.as_mut().unwrap().state = "acknowledged".into();
    p.pipeline.notify(n2).await.unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs[0].path, "/api/chat.postMessage");
    assert_eq!(reqs[1].path, "/api/chat.update");
    assert_eq!(reqs[1].json()["ts"], "1700000000.000001");
    assert_eq!(reqs[1].json()["channel"], "C1");
    // Acknowledged: only the Resolve button remains.
    let blocks = reqs[1].json()["blocks"].clone();
    let actions = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap();
    let ids: Vec<&str> = actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["signalcraft_resolve", "signalcraft_open"]);
    assert_eq!(
        slack.message_for("inc-42", "C1"),
        Some(("C1".into(), "1700000000.000001".into()))
    );
    // The message was deleted in Slack: chat.update fails, a new message is posted
    // and becomes the incident's message.
    fake.script([Mode::SlackError("message_not_found")]);
    p.pipeline
        .notify(sample_notification("n3", "slack", "C1"))
        .await
        .unwrap();
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(&paths[2..], ["/api/chat.update", "/api/chat.postMessage"]);
    assert_eq!(
        slack.message_for("inc-42", "C1"),
        Some(("C1".into(), "1700000000.000003".into()))
    );
}

/// A restart (a new Slack channel and pipeline over the same store) keeps
/// updating the incident's message: the pipeline reads it from the delivery
/// trail. The in-memory cache drops an incident once it is resolved and stays
/// within its cap; both are read back from the log when needed.
#[tokio::test]
async fn slack_updates_the_incident_message_after_a_restart_and_its_cache_is_bounded() {
    let fake = Fake::start_with(Vendor::SlackApi, Some("xoxb-test"), None).await;
    let store: Arc<dyn signalcraft_core::store::Store> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(t0());
    let run = |slack: Arc<SlackChannel>| {
        DeliveryPipeline::new(
            DeliveryConfig::default(),
            vec![slack as Arc<dyn Channel>],
            store.clone(),
            Arc::new(MemoryScheduler::new()),
            Arc::new(clock.clone()),
        )
        .unwrap()
    };
    let first = slack_api("slack", fake.url("/api"));
    let p1 = run(first.clone());
    p1.notify(sample_notification("n1", "slack", "C1"))
        .await
        .unwrap();
    // Another incident in another Slack channel, so the trail lookup must pick
    // the right (incident, channel).
    let mut other = sample_notification("n1b", "slack", "C2");
    other.incident.as_mut().unwrap().id = "inc-43".into();
    p1.notify(other).await.unwrap();
    drop(p1);
    drop(first);

    // "Restart": nothing in memory knows the message.
    let second = slack_api("slack", fake.url("/api"));
    assert_eq!(second.message_for("inc-42", "C1"), None);
    let p2 = run(second.clone());
    clock.advance(Duration::from_secs(60));
    let mut n2 = sample_notification("n2", "slack", "C1");
    n2.incident.as_mut().unwrap().state = "acknowledged".into();
    assert!(matches!(
        p2.notify(n2).await.unwrap(),
        DeliveryOutcome::Sent { provider_message_id: Some(ref id), .. } if id == "C1:1700000000.000001"
    ));
    let reqs = fake.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/chat.postMessage",
            "/api/chat.postMessage",
            "/api/chat.update"
        ],
        "the restarted channel updates instead of posting anew"
    );
    assert_eq!(reqs[2].json()["channel"], "C1");
    assert_eq!(reqs[2].json()["ts"], "1700000000.000001");
    assert_eq!(
        second.message_for("inc-42", "C1"),
        Some(("C1".into(), "1700000000.000001".into()))
    );

    // Resolved: the last update goes out and the cache forgets the incident.
    clock.advance(Duration::from_secs(60));
    let mut n3 = sample_notification("n3", "slack", "C1");
    n3.status = signalcraft_core::model::AlertStatus::Resolved;
    n3.incident.as_mut().unwrap().state = "resolved".into();
    p2.notify(n3).await.unwrap();
    assert_eq!(fake.requests()[3].path, "/api/chat.update");
    assert_eq!(fake.requests()[3].json()["ts"], "1700000000.000001");
    assert_eq!(second.message_for("inc-42", "C1"), None);
    assert_eq!(second.remembered_messages(), 0);
    // A late notification about it still updates the same message (from the log).
    clock.advance(Duration::from_secs(60));
    p2.notify(sample_notification("n4", "slack", "C1"))
        .await
        .unwrap();
    assert_eq!(fake.requests()[4].path, "/api/chat.update");
    assert_eq!(fake.requests()[4].json()["ts"], "1700000000.000001");

    // A cache of 4 over 10 incidents: never more than 4 remembered, and a
    // forgotten incident is still updated, not posted again.
    let small = Arc::new(
        Arc::try_unwrap(slack_api("slack", fake.url("/api")))
            .ok()
            .unwrap()
            .with_message_cache(4),
    );
    let p3 = run(small.clone());
    let mut first_id = None;
    for i in 0..10 {
        let mut n = sample_notification(&format!("c{i}"), "slack", "C1");
        n.incident.as_mut().unwrap().id = format!("inc-c{i}");
        let out = p3.notify(n).await.unwrap();
        let DeliveryOutcome::Sent {
            provider_message_id: Some(id),
            ..
        } = out
        else {
            panic!("{out:?}");
        };
        first_id.get_or_insert(id);
        assert!(small.remembered_messages() <= 4, "cache over its cap");
    }
    assert_eq!(
        small.message_for("inc-c0", "C1"),
        None,
        "the oldest was forgotten"
    );
    let before = fake.requests().len();
    let mut again = sample_notification("c0-again", "slack", "C1");
    again.incident.as_mut().unwrap().id = "inc-c0".into();
    p3.notify(again).await.unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), before + 1);
    assert_eq!(reqs[before].path, "/api/chat.update");
    let (_, ts) = first_id.as_deref().unwrap().split_once(':').unwrap();
    assert_eq!(reqs[before].json()["ts"], ts);
}

#[tokio::test]
async fn twilio_status_callbacks_confirm_or_fail_over_the_sms() {
    let sms = Fake::start(Vendor::Twilio).await;
    let voice = Fake::start(Vendor::Twilio).await;
    let mut c = DeliveryConfig::default();
    let mut ch = chain("sms", &[("sms", None), ("voice", None)]);
    ch.steps[0].confirm_within_secs = Some(120);
    c.chains.push(ch);
    let p = pipeline(
        c,
        vec![
            twilio("sms", &sms, TwilioMode::Sms),
            twilio("voice", &voice, TwilioMode::Voice),
        ],
    );
    let url = "https://sc.example.com/callbacks/twilio/status";
    let callback = |sid: &str, st: &str, code: Option<&str>| {
        let mut params = vec![
            ("MessageSid".to_string(), sid.to_string()),
            ("MessageStatus".to_string(), st.to_string()),
            (
                "AccountSid".to_string(),
                "AC00000000000000000000000000000001".to_string(),
            ),
        ];
        if let Some(c) = code {
            params.push(("ErrorCode".into(), c.into()));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-twilio-signature",
            expected_signature(url, &params, b"tok").parse().unwrap(),
        );
        twilio::handle_status_callback(&headers, body.as_bytes(), url, b"tok").unwrap()
    };
    // n1 delivered.
    p.pipeline
        .notify(sample_notification("n1", "sms", "+15550001111"))
        .await
        .unwrap();
    let sid1 = p.pipeline.log().records("n1").await.unwrap()[0]
        .provider_message_id
        .clone()
        .unwrap();
    let cb = callback(&sid1, "delivered", None);
    assert_eq!(cb.status, ProviderStatus::Delivered);
    assert!(
        p.pipeline
            .record_provider_status(&cb.sid, cb.status)
            .await
            .unwrap()
    );
    // n2 undelivered → voice at once, without waiting for the deadline.
    p.pipeline
        .notify(sample_notification("n2", "sms", "+15550002222"))
        .await
        .unwrap();
    let sid2 = p.pipeline.log().records("n2").await.unwrap()[0]
        .provider_message_id
        .clone()
        .unwrap();
    let cb = callback(&sid2, "undelivered", Some("30003"));
    p.pipeline
        .record_provider_status(&cb.sid, cb.status)
        .await
        .unwrap();
    assert_eq!(voice.accepted(), 1);
    let calls = voice.requests();
    assert!(calls[0].path.ends_with("/Calls.json"));
    assert!(
        calls[0]
            .form_get("Twiml")
            .unwrap()
            .contains("<Gather numDigits=\"1\"")
    );
    use DeliveryStatus::*;
    assert_eq!(statuses(&p, "n1").await, vec![("sms".into(), Delivered)]);
    assert_eq!(
        statuses(&p, "n2").await,
        vec![("sms".into(), FailedOver), ("voice".into(), Sent)]
    );
    let recs = p.pipeline.log().records("n2").await.unwrap();
    assert_eq!(recs[0].error.as_deref(), Some("undelivered (30003)"));
    // Deadlines passing later change nothing.
    p.clock.advance(Duration::from_secs(600));
    p.pipeline.run_due().await.unwrap();
    assert_eq!(voice.accepted(), 1);
    assert!(p.scheduler.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn slack_health_check_covers_auth_and_channel_reachability() {
    use signalcraft_core::channel::Channel;
    let fake = Fake::start_with(Vendor::SlackApi, Some("xoxb-test"), None).await;
    let mk = |ch: &str, token: &str| {
        SlackChannel::new(
            &SlackConfig {
                name: "slack".into(),
                webhook_url: None,
                token: Some(token.into()),
                api_url: fake.url("/api"),
                default_channel: Some(ch.into()),
                signing_secret: None,
                timeout_ms: 2_000,
            },
            "channels[0]",
        )
        .unwrap()
    };
    mk("C0OPS", "xoxb-test").health_check().await.unwrap();
    let e = mk("G-missing", "xoxb-test")
        .health_check()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("channel_not_found"), "{e}");
    let e = mk("C0ARCH", "xoxb-test").health_check().await.unwrap_err();
    assert!(e.to_string().contains("archived"), "{e}");
    let e = mk("C0OPS", "xoxb-wrong").health_check().await.unwrap_err();
    assert!(e.to_string().contains("invalid_auth"), "{e}");
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(&paths[..2], ["/api/auth.test", "/api/conversations.info"]);
}

/// Twilio's health check is the documented account fetch
/// (`GET /2010-04-01/Accounts/{sid}.json`, basic auth): healthy with the right
/// credentials; a wrong token is a permanent failure that names no secret and
/// makes the channel unhealthy in the pipeline; an unreachable API retries.
#[tokio::test]
async fn twilio_health_check_is_an_account_fetch() {
    let sid = "AC00000000000000000000000000000001";
    let good = Fake::start_with(Vendor::Twilio, None, Some((sid, "tok"))).await;
    let sms = twilio("sms", &good, TwilioMode::Sms);
    sms.health_check().await.unwrap();
    let reqs = good.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, format!("/2010-04-01/Accounts/{sid}.json"));

    let wrong = Fake::start_with(Vendor::Twilio, None, Some((sid, "other-token"))).await;
    let bad = twilio("sms-b", &wrong, TwilioMode::Sms);
    let e = bad.health_check().await.unwrap_err();
    assert_eq!(
        e.retry_action(),
        signalcraft_core::channel::RetryAction::DontRetry,
        "{e}"
    );
    assert!(!e.to_string().contains("tok"), "{e}");
    let p = pipeline(DeliveryConfig::default(), vec![sms.clone(), bad.clone()]);
    p.pipeline.run_health_checks().await;
    let now = p.clock.now_ts();
    assert!(p.pipeline.health().is_healthy("sms", "+15550001111", now));
    assert!(!p.pipeline.health().is_healthy("sms-b", "+15550001111", now));
    assert!(
        p.pipeline
            .health()
            .snapshot("sms-b", "*", now)
            .check_error
            .is_some()
    );

    let refused = refused_port();
    let down = Arc::new(
        TwilioChannel::new(
            &TwilioConfig {
                name: "sms-down".into(),
                account_sid: sid.into(),
                auth_token: "tok".into(),
                from: "+15550009999".into(),
                api_url: format!("http://127.0.0.1:{}", refused.port),
                status_callback_url: None,
                gather_action_url: None,
                timeout_ms: 2_000,
            },
            TwilioMode::Voice,
            "channels[0]",
        )
        .unwrap(),
    );
    let e = down.health_check().await.unwrap_err();
    assert_eq!(
        e.retry_action(),
        signalcraft_core::channel::RetryAction::Retry,
        "{e}"
    );
}
