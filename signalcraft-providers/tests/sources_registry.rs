//! Registry and integration validation: unknown types, missing/ill-formed secrets,
//! bad options, embedder-registered sources, redaction, raw payloads and
//! PagerDuty/Alertmanager identity semantics.

use jiff::Timestamp;
use serde_json::json;
use signalcraft_core::model::{AlertStatus, Event, Fingerprint};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};
use signalcraft_providers::sources::{Integration, Registry, SourceType, Verification};

fn invalid_field(e: ProviderError) -> (String, String) {
    match e {
        ProviderError::InvalidConfig {
            provider, field, ..
        } => (provider, field),
        other => panic!("want InvalidConfig, got {other:?}"),
    }
}

#[test]
fn builtin_registry_lists_the_nine_types() {
    let r = Registry::builtin();
    let types: Vec<&str> = r.types().collect();
    assert_eq!(
        types,
        [
            "alertmanager",
            "cloudwatch",
            "datadog",
            "generic",
            "github",
            "gitlab",
            "grafana",
            "pagerduty",
            "sentry"
        ]
    );
    assert_eq!(
        r.build(&Integration::new("nagios", "n")).err(),
        Some(ProviderError::UnknownProvider("nagios".into()))
    );
}

#[test]
fn validation_names_provider_and_field() {
    let r = Registry::builtin();
    let cases: Vec<(Integration, &str)> = vec![
        (Integration::new("github", "gh"), "secrets.webhook_secret"),
        (Integration::new("gitlab", "gl"), "secrets.token"),
        (Integration::new("sentry", "s"), "secrets.client_secret"),
        (Integration::new("pagerduty", "pd"), "secrets.routing_key"),
        (
            Integration::new("github", "gh").with_secret("webhook_secret", "abc\n"),
            "secrets.webhook_secret",
        ),
        (
            Integration::new("github", "gh").with_secret("webhook_secret", ""),
            "secrets.webhook_secret",
        ),
        (
            Integration::new("github", "gh")
                .with_secret("webhook_secret", "x")
                .with_secret("webhok_secret", "y"),
            "secrets.webhok_secret",
        ),
        (
            Integration::new("alertmanager", "am").with_secret("basic_auth", "no-colon"),
            "secrets.basic_auth",
        ),
        (
            Integration::new("alertmanager", "am")
                .with_options(json!({"default_severity": "loud"})),
            "options.default_severity",
        ),
        (
            Integration::new("grafana", "g").with_options(json!({"hmac_heder": "X"})),
            "options.hmac_heder",
        ),
        (
            Integration::new("generic", "x").with_options(json!({"summary": "title"})),
            "options.summary",
        ),
        (
            Integration::new("generic", "x").with_options(json!({"labels": {"host": "host"}})),
            "options.labels.host",
        ),
        (
            Integration::new("cloudwatch", "c").with_options(json!({"topic_arns": ["my-topic"]})),
            "options.topic_arns[0]",
        ),
        (
            Integration::new("cloudwatch", "c").with_options(
                json!({"certificates": {"https://sns.us-east-1.amazonaws.com/x.pem": "not pem"}}),
            ),
            "options.certificates.https://sns.us-east-1.amazonaws.com/x.pem",
        ),
        (
            Integration::new("gitlab", "gl")
                .with_secret("token", "t")
                .with_max_body_bytes(0),
            "max_body_bytes",
        ),
        (
            Integration::new("gitlab", "").with_secret("token", "t"),
            "key",
        ),
    ];
    for (i, field) in cases {
        let ty = i.provider_type.clone();
        let (provider, got) = invalid_field(r.validate(&i).unwrap_err());
        assert_eq!(provider, ty);
        assert_eq!(got, field, "{ty}");
    }
    // Skipping verification does not require secrets (operator tools), but options are still checked.
    assert!(
        r.build_with(&Integration::new("github", "gh"), Verification::Skip)
            .is_ok()
    );
    assert!(
        r.build_with(
            &Integration::new("generic", "x").with_options(json!({"summary": "t"})),
            Verification::Skip
        )
        .is_err()
    );
}

#[test]
fn integration_config_deserializes_and_never_prints_secrets() {
    let i: Integration = serde_json::from_value(json!({
        "type": "github", "key": "gh", "secrets": {"webhook_secret": "hunter2"},
        "options": {"all_branches": true}
    }))
    .unwrap();
    assert_eq!(i.max_body_bytes, 1 << 20);
    assert!(Registry::builtin().validate(&i).is_ok());
    let shown = format!("{i:?} {}", i.secret("webhook_secret").unwrap());
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        serde_json::from_value::<Integration>(json!({"type": "github", "key": "k", "secret": {}}))
            .is_err()
    );
    // A wrong secret never appears in an error either.
    let p = Registry::builtin().build(&i).unwrap();
    let e = p.verify(
        &InboundRequest::from_body("{}").with_header("X-Hub-Signature-256", "sha256=00"),
        Timestamp::UNIX_EPOCH,
    );
    assert!(!format!("{e:?}").contains("hunter2"));
}

/// An embedder's own source type.
struct Heartbeat;

struct HeartbeatProvider(String);

impl Provider for HeartbeatProvider {
    fn provider_type(&self) -> &str {
        "heartbeat"
    }
    fn verify(&self, _: &InboundRequest, _: Timestamp) -> Result<(), ProviderError> {
        Ok(())
    }
    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        Err(ProviderError::NothingToIngest {
            provider: self.0.clone(),
            message: format!("{} bytes", req.body.len()),
        })
    }
}

impl SourceType for Heartbeat {
    fn provider_type(&self) -> &str {
        "heartbeat"
    }
    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&[], &[])
    }
    fn primary_secret(&self) -> Option<&'static str> {
        None
    }
    fn build(&self, i: &Integration, _: Verification) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(HeartbeatProvider(i.key.clone())))
    }
}

#[test]
fn embedders_register_their_own_sources() {
    let mut r = Registry::empty();
    assert_eq!(r.types().count(), 0);
    r.register(Box::new(Heartbeat));
    let p = r.build(&Integration::new("heartbeat", "hb")).unwrap();
    assert_eq!(
        p.parse(&InboundRequest::from_body("abc"))
            .unwrap_err()
            .to_string(),
        "hb: 3 bytes"
    );
}

fn parse(
    ty: &str,
    i: Integration,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<Event>, ProviderError> {
    let mut req = InboundRequest::from_body(body.to_vec());
    for (k, v) in headers {
        req = req.with_header(*k, *v);
    }
    let _ = ty;
    Registry::builtin()
        .build_with(&i, Verification::Skip)?
        .parse(&req)
}

#[test]
fn raw_payload_is_the_alert_object_for_multi_alert_bodies() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/alertmanager/mixed_firing_resolved.json"
    ))
    .unwrap();
    let full: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let events = parse(
        "alertmanager",
        Integration::new("alertmanager", "am"),
        &[],
        &body,
    )
    .unwrap();
    assert_eq!(events.len(), 3);
    for (i, e) in events.iter().enumerate() {
        let Event::Alert(a) = e else { panic!() };
        assert_eq!(a.raw, full["alerts"][i]);
    }
    let mut off = Integration::new("alertmanager", "am");
    off.keep_raw = false;
    let events = parse("alertmanager", off, &[], &body).unwrap();
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Event::Alert(a) if a.raw.is_null()))
    );
}

/// With raw payloads kept, each Grafana alert's `raw` is its own object: the exact
/// bytes of its slice of the body (pretty-printed here, as the fixture is), written
/// compactly (serialized events stay one line). A CloudWatch alarm's `raw` is the SNS
/// envelope exactly as received (the alarm JSON is inside it, in `Message`).
#[test]
fn raw_payloads_are_exact_slices_written_compactly() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
    let body = std::fs::read(format!("{root}/grafana/firing_with_images.json")).unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    let full: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let events = parse("grafana", Integration::new("grafana", "g"), &[], &body).unwrap();
    assert!(events.len() >= 2);
    for (i, e) in events.iter().enumerate() {
        let Event::Alert(a) = e else { panic!() };
        assert_eq!(a.raw, full["alerts"][i]);
        assert!(text.contains(a.raw.get()), "{}", a.raw.get());
        assert!(a.raw.get().contains('\n'), "the fixture's own layout");
        let line = serde_json::to_string(e).unwrap();
        assert!(!line.contains('\n'), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["raw"], full["alerts"][i]);
        assert_eq!(
            serde_json::to_string(&back["raw"]).unwrap().len(),
            a.raw.compact_json().len()
        );
    }
    let body = std::fs::read(format!("{root}/cloudwatch/alarm_firing.json")).unwrap();
    let full: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let events = parse(
        "cloudwatch",
        Integration::new("cloudwatch", "c"),
        &[],
        &body,
    )
    .unwrap();
    let Event::Alert(a) = &events[0] else {
        panic!()
    };
    assert_eq!(a.raw, full);
    assert_eq!(a.raw.get(), std::str::from_utf8(&body).unwrap().trim());
    let line = serde_json::to_string(&events[0]).unwrap();
    assert!(!line.contains('\n'), "{line}");
}

#[test]
fn alertmanager_fingerprint_is_label_identity() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/alertmanager/firing_single.json"
    ))
    .unwrap();
    let resolved = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/alertmanager/resolved.json"
    ))
    .unwrap();
    let a = parse(
        "alertmanager",
        Integration::new("alertmanager", "am"),
        &[],
        &body,
    )
    .unwrap();
    let b = parse(
        "alertmanager",
        Integration::new("alertmanager", "am"),
        &[],
        &resolved,
    )
    .unwrap();
    let (Event::Alert(a), Event::Alert(b)) = (&a[0], &b[0]) else {
        panic!()
    };
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(
        (a.status, b.status),
        (AlertStatus::Firing, AlertStatus::Resolved)
    );
    assert_eq!(a.fingerprint(), Fingerprint::of_labels(&a.labels));
}

#[test]
fn pagerduty_trigger_ack_resolve_share_the_dedup_key() {
    let pd = |b: serde_json::Value| {
        parse(
            "pagerduty",
            Integration::new("pagerduty", "pd"),
            &[],
            b.to_string().as_bytes(),
        )
        .unwrap()
        .remove(0)
    };
    let trig = pd(
        json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "db-down",
        "payload": {"summary": "db down", "source": "db-1", "severity": "critical"}}),
    );
    let ack =
        pd(json!({"routing_key": "k", "event_action": "acknowledge", "dedup_key": "db-down"}));
    let res = pd(json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "db-down"}));
    let (Event::Alert(t), Event::Action(a), Event::Action(r)) = (&trig, &ack, &res) else {
        panic!("{trig:?} {ack:?} {res:?}")
    };
    assert_eq!(t.fingerprint(), a.fingerprint());
    assert_eq!(t.fingerprint(), r.fingerprint());
    // No dedup_key: a new, deterministic key per distinct body.
    let body1 = json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "a", "source": "s", "severity": "info"}});
    let body2 = json!({"routing_key": "k", "event_action": "trigger", "payload": {"summary": "b", "source": "s", "severity": "info"}});
    let (Event::Alert(x1), Event::Alert(x1b), Event::Alert(x2)) =
        (pd(body1.clone()), pd(body1), pd(body2))
    else {
        panic!()
    };
    assert_eq!(x1.dedup_key, x1b.dedup_key);
    assert_ne!(x1.dedup_key, x2.dedup_key);
    assert!(x1.dedup_key.as_deref().unwrap().starts_with("sc-"));
    // The same key through another integration (routing key) is another alert.
    let other = parse(
        "pagerduty",
        Integration::new("pagerduty", "pd-other"),
        &[],
        json!({"routing_key": "k2", "event_action": "resolve", "dedup_key": "db-down"})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let Event::Action(o) = &other[0] else {
        panic!()
    };
    assert_ne!(o.fingerprint(), t.fingerprint());
}

#[test]
fn change_events_carry_service_and_repository() {
    let gh = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/github/deployment_status_success.json"
    ))
    .unwrap();
    let e = parse(
        "github",
        Integration::new("github", "gh"),
        &[("X-GitHub-Event", "deployment_status")],
        &gh,
    )
    .unwrap();
    let Event::Change(c) = &e[0] else {
        panic!("{e:?}")
    };
    assert_eq!(
        c.repository.as_deref(),
        Some("https://github.com/baxterthehacker/public-repo")
    );
    assert_eq!(c.service, c.repository);
    assert_eq!(&c.labels["environment"], "production");
    let pd = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/pagerduty/change_event.json"
    ))
    .unwrap();
    let e = parse("pagerduty", Integration::new("pagerduty", "pd"), &[], &pd).unwrap();
    let Event::Change(c) = &e[0] else {
        panic!("{e:?}")
    };
    assert_eq!(
        c.repository.as_deref(),
        Some("https://github.com/acme/snapshots")
    );
}

#[test]
fn pagerduty_change_endpoint_url_forces_a_change_event() {
    let body = json!({"routing_key": "k", "event_action": "trigger",
        "payload": {"summary": "Deployed api v2", "timestamp": "2024-05-01T10:00:00Z", "source": "api", "severity": "info"}});
    let p = Registry::builtin()
        .build_with(&Integration::new("pagerduty", "pd"), Verification::Skip)
        .unwrap();
    let mut req = InboundRequest::from_body(body.to_string());
    req.url = Some("https://signalcraft.example/v2/change/enqueue".into());
    assert!(matches!(p.parse(&req).unwrap()[0], Event::Change(_)));
    req.url = Some("https://signalcraft.example/v2/enqueue".into());
    assert!(matches!(p.parse(&req).unwrap()[0], Event::Alert(_)));
}
