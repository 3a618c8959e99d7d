//! Inbound callbacks (Slack interactivity, Twilio SMS replies, DTMF, status
//! callbacks) and bad input: forged or stale requests are typed 401 errors,
//! invalid config is a typed error naming its path, and nothing leaks a secret.
#![cfg(all(
    feature = "channel-slack",
    feature = "channel-email",
    feature = "channel-twilio",
    feature = "channel-webhook",
    feature = "channel-teams"
))]

#[path = "channel_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::json;
use signalcraft_core::clock::ManualClock;
use signalcraft_core::testing::channel::sample_notification;
use signalcraft_providers::channels::error::{CallbackError, ChannelError};
use signalcraft_providers::channels::registry::{ChannelConfig, ChannelRegistry};
use signalcraft_providers::channels::webhook::{self, WebhookChannel, WebhookConfig};
use signalcraft_providers::channels::{
    IncidentAction, IncidentActionRequest, IncidentSelector, slack, twilio,
};
use support::{Fake, Vendor, capture_logs};

const SLACK_SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

fn now() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

fn slack_body(action_id: &str, value: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U024BE7LH", "username": "alice", "name": "alice", "team_id": "T0"},
        "actions": [{"action_id": action_id, "block_id": "signalcraft:inc-42", "value": value, "type": "button"}],
        "response_url": "https://hooks.slack.com/actions/T0/1/abc"
    });
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

fn slack_headers(ts: i64, body: &str, secret: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-slack-request-timestamp", ts.to_string().parse().unwrap());
    h.insert(
        "x-slack-signature",
        slack::sign(secret, &ts.to_string(), body.as_bytes())
            .parse()
            .unwrap(),
    );
    h
}

#[test]
fn slack_signing_matches_slacks_documented_example() {
    // api.slack.com/authentication/verifying-requests-from-slack worked example.
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    assert_eq!(
        slack::sign(SLACK_SECRET, "1531420618", body.as_bytes()),
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    );
}

#[test]
fn slack_button_press_becomes_an_incident_action_with_the_slack_user() {
    let body = slack_body("signalcraft_ack", "ack:inc-42");
    let h = slack_headers(now().as_second() - 10, &body, SLACK_SECRET);
    let req = slack::handle_interaction(&h, body.as_bytes(), now(), SLACK_SECRET).unwrap();
    assert_eq!(
        req,
        IncidentActionRequest {
            incident: IncidentSelector::Id("inc-42".into()),
            action: IncidentAction::Acknowledge,
            actor: signalcraft_providers::channels::ExternalActor {
                channel: "slack".into(),
                id: "U024BE7LH".into(),
                name: Some("alice".into()),
            },
        }
    );
    let body = slack_body("signalcraft_resolve", "resolve:inc-42");
    let h = slack_headers(now().as_second(), &body, SLACK_SECRET);
    let req = slack::handle_interaction(&h, body.as_bytes(), now(), SLACK_SECRET).unwrap();
    assert_eq!(req.action, IncidentAction::Resolve);
}

#[test]
fn forged_stale_or_unsigned_slack_callbacks_are_rejected_with_401() {
    let (logs, _g) = capture_logs();
    let body = slack_body("signalcraft_ack", "ack:inc-42");
    // Signed with another secret.
    let h = slack_headers(now().as_second(), &body, b"not-the-secret");
    let e = slack::handle_interaction(&h, body.as_bytes(), now(), SLACK_SECRET).unwrap_err();
    assert_eq!(
        (e.clone(), e.http_status()),
        (CallbackError::BadSignature, 401)
    );
    // Body tampered after signing.
    let h = slack_headers(now().as_second(), &body, SLACK_SECRET);
    let tampered = slack_body("signalcraft_resolve", "resolve:inc-42");
    assert_eq!(
        slack::handle_interaction(&h, tampered.as_bytes(), now(), SLACK_SECRET).unwrap_err(),
        CallbackError::BadSignature
    );
    // Replayed six minutes later.
    let h = slack_headers(now().as_second() - 360, &body, SLACK_SECRET);
    let e = slack::handle_interaction(&h, body.as_bytes(), now(), SLACK_SECRET).unwrap_err();
    assert!(
        matches!(e, CallbackError::Stale { age_secs: 360, .. }),
        "{e:?}"
    );
    assert_eq!(e.http_status(), 401);
    // No headers at all.
    let e = slack::handle_interaction(&HeaderMap::new(), body.as_bytes(), now(), SLACK_SECRET)
        .unwrap_err();
    assert_eq!(e, CallbackError::MissingHeader("X-Slack-Request-Timestamp"));
    // Valid signature, but not our button / garbage payload.
    let body = slack_body("other_app", "x:y");
    let h = slack_headers(now().as_second(), &body, SLACK_SECRET);
    assert!(matches!(
        slack::handle_interaction(&h, body.as_bytes(), now(), SLACK_SECRET),
        Err(CallbackError::UnknownCommand(_))
    ));
    let body = "payload=%7Bnot-json";
    let h = slack_headers(now().as_second(), body, SLACK_SECRET);
    assert_eq!(
        slack::handle_interaction(&h, body.as_bytes(), now(), SLACK_SECRET)
            .unwrap_err()
            .http_status(),
        400
    );
    // Rejections were logged, without the secret.
    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| l.contains("slack callback rejected")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("8f742231b10e8888")));
}

fn twilio_signed(url: &str, params: &[(&str, &str)], token: &[u8]) -> (HeaderMap, String) {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(owned.iter())
        .finish();
    let mut h = HeaderMap::new();
    h.insert(
        "x-twilio-signature",
        twilio::expected_signature(url, &owned, token)
            .parse()
            .unwrap(),
    );
    (h, body)
}

#[test]
fn twilio_documented_example_verifies_through_the_request_api() {
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let body = "CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212";
    let mut h = HeaderMap::new();
    h.insert(
        "x-twilio-signature",
        "GvWf1cFY/Q7PnoempGyD5oXAezc=".parse().unwrap(),
    );
    assert!(twilio::verify_request(&h, body.as_bytes(), url, b"12345").is_ok());
    assert_eq!(
        twilio::verify_request(&h, body.as_bytes(), url, b"54321").unwrap_err(),
        CallbackError::BadSignature
    );
}

#[test]
fn sms_replies_and_dtmf_become_incident_actions() {
    let token = b"twilio-token";
    let url = "https://sc.example.com/callbacks/twilio/sms";
    let (h, body) = twilio_signed(
        url,
        &[
            ("From", "+15550001111"),
            ("To", "+15550009999"),
            ("Body", "ack 123"),
            ("MessageSid", "SM1"),
        ],
        token,
    );
    let req = twilio::handle_sms_reply(&h, body.as_bytes(), url, token).unwrap();
    assert_eq!(req.incident, IncidentSelector::Number(123));
    assert_eq!(req.action, IncidentAction::Acknowledge);
    assert_eq!(req.actor.id, "+15550001111");
    assert_eq!(req.actor.channel, "sms");

    let (h, body) = twilio_signed(
        url,
        &[("From", "+15550001111"), ("Body", "Resolve #123")],
        token,
    );
    assert_eq!(
        twilio::handle_sms_reply(&h, body.as_bytes(), url, token)
            .unwrap()
            .action,
        IncidentAction::Resolve
    );
    let (h, body) = twilio_signed(url, &[("From", "+15550001111"), ("Body", "thanks!")], token);
    assert_eq!(
        twilio::handle_sms_reply(&h, body.as_bytes(), url, token)
            .unwrap_err()
            .http_status(),
        422
    );

    let vurl = "https://sc.example.com/callbacks/twilio/voice?incident=inc-42&notification=n1";
    for (digit, action) in [
        ("1", IncidentAction::Acknowledge),
        ("2", IncidentAction::Escalate),
    ] {
        let (h, body) = twilio_signed(
            vurl,
            &[
                ("CallSid", "CA1"),
                ("Digits", digit),
                ("From", "+15550009999"),
                ("To", "+15550001111"),
            ],
            token,
        );
        let req = twilio::handle_dtmf(&h, body.as_bytes(), vurl, token).unwrap();
        assert_eq!(req.incident, IncidentSelector::Id("inc-42".into()));
        assert_eq!(req.action, action);
        assert_eq!(req.actor.id, "+15550001111");
    }
    let (h, body) = twilio_signed(vurl, &[("Digits", "9"), ("To", "+15550001111")], token);
    assert!(matches!(
        twilio::handle_dtmf(&h, body.as_bytes(), vurl, token),
        Err(CallbackError::UnknownCommand(_))
    ));
}

/// Voice calls report through the same status callback as messages, with
/// `CallSid`/`CallStatus` (twilio.com/docs/voice/api/call-resource#statuscallback):
/// `completed` confirms, `busy`/`no-answer`/`failed`/`canceled` fail (with the
/// error code when given), `initiated`/`ringing`/`in-progress` are progress; an
/// unknown status or a missing sid is a typed error.
#[test]
fn call_status_callbacks_map_to_provider_statuses() {
    use signalcraft_core::delivery::ProviderStatus;
    let token = b"twilio-token";
    let url = "https://sc.example.com/callbacks/twilio/status";
    let cb = |params: &[(&str, &str)]| {
        let (h, body) = twilio_signed(url, params, token);
        twilio::handle_status_callback(&h, body.as_bytes(), url, token)
    };
    for (status, want) in [
        ("completed", ProviderStatus::Delivered),
        ("ringing", ProviderStatus::InProgress),
        ("in-progress", ProviderStatus::InProgress),
        (
            "no-answer",
            ProviderStatus::Failed {
                reason: "no-answer".into(),
            },
        ),
        (
            "busy",
            ProviderStatus::Failed {
                reason: "busy".into(),
            },
        ),
    ] {
        let got = cb(&[("CallSid", "CA0001"), ("CallStatus", status)]).unwrap();
        assert_eq!(got.sid, "CA0001");
        assert_eq!(got.status, want, "{status}");
    }
    let got = cb(&[
        ("CallSid", "CA0002"),
        ("CallStatus", "failed"),
        ("ErrorCode", "13224"),
    ])
    .unwrap();
    assert_eq!(
        got.status,
        ProviderStatus::Failed {
            reason: "failed (13224)".into()
        }
    );
    assert!(matches!(
        cb(&[("CallSid", "CA0003"), ("CallStatus", "exploded")]),
        Err(CallbackError::Malformed(_))
    ));
    let e = cb(&[("CallStatus", "completed")]).unwrap_err();
    assert_eq!(e.http_status(), 400, "{e}");
}

#[test]
fn forged_twilio_callbacks_are_rejected_with_401() {
    let (logs, _g) = capture_logs();
    let token = b"twilio-token";
    let url = "https://sc.example.com/callbacks/twilio/sms";
    let (h, body) = twilio_signed(
        url,
        &[("From", "+15550001111"), ("Body", "ack 1")],
        b"attacker",
    );
    let e = twilio::handle_sms_reply(&h, body.as_bytes(), url, token).unwrap_err();
    assert_eq!(
        (e.clone(), e.http_status()),
        (CallbackError::BadSignature, 401)
    );
    // Signed for another URL.
    let (h, body) = twilio_signed(
        "https://evil.example.com/x",
        &[("From", "+1"), ("Body", "ack 1")],
        token,
    );
    assert_eq!(
        twilio::handle_sms_reply(&h, body.as_bytes(), url, token).unwrap_err(),
        CallbackError::BadSignature
    );
    // A parameter added after signing.
    let (h, body) = twilio_signed(url, &[("From", "+15550001111"), ("Body", "ack 1")], token);
    let body = format!("{body}&Extra=1");
    assert_eq!(
        twilio::handle_status_callback(&h, body.as_bytes(), url, token).unwrap_err(),
        CallbackError::BadSignature
    );
    assert_eq!(
        twilio::handle_dtmf(&HeaderMap::new(), b"Digits=1", url, token).unwrap_err(),
        CallbackError::MissingHeader("X-Twilio-Signature")
    );
    // Rejections were logged, without the auth token or the expected signature.
    let lines = logs.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("twilio callback rejected"))
            .count(),
        3,
        "{lines:?}"
    );
    let expected = twilio::expected_signature(
        url,
        &[
            ("From".to_string(), "+15550001111".to_string()),
            ("Body".to_string(), "ack 1".to_string()),
        ],
        token,
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("twilio-token") && !l.contains(&expected)),
        "{lines:?}"
    );
}

#[test]
fn bad_channel_config_is_a_typed_error_naming_the_path() {
    let bad = |v: serde_json::Value| {
        ChannelConfig::from_json(&v, "channels[3]").and_then(|c| c.build("channels[3]").map(|_| ()))
    };
    let e = bad(json!({"type": "pager", "name": "x"})).unwrap_err();
    assert!(
        matches!(e, ChannelError::UnknownType { ref kind, .. } if kind == "pager"),
        "{e}"
    );
    assert!(e.to_string().contains("channels[3].type"), "{e}");
    let e = bad(json!({"type": "webhook", "name": "w", "url": "not a url"})).unwrap_err();
    assert!(e.to_string().contains("channels[3].url"), "{e}");
    let e = bad(json!({"type": "webhook", "name": "w", "url": "ftp://example.com/x"})).unwrap_err();
    assert!(e.to_string().contains("http or https"), "{e}");
    let e = bad(json!({"type": "webhook", "name": "w", "url": "https://x.example.com", "headers": {"bad header": "v"}})).unwrap_err();
    assert!(
        e.to_string().contains("channels[3].headers.bad header"),
        "{e}"
    );
    let e = bad(json!({"type": "slack", "name": "s"})).unwrap_err();
    assert_eq!(
        e,
        ChannelError::MissingCredential {
            path: "channels[3].token".into()
        }
    );
    let e = bad(json!({"type": "twilio_sms", "name": "t", "account_sid": "AC1", "auth_token": "", "from": "+15550009999"})).unwrap_err();
    assert_eq!(
        e,
        ChannelError::MissingCredential {
            path: "channels[3].auth_token".into()
        }
    );
    let e = bad(json!({"type": "twilio_sms", "name": "t", "account_sid": "AC1", "auth_token": "x", "from": "555"})).unwrap_err();
    assert!(e.to_string().contains("channels[3].from"), "{e}");
    let e = bad(json!({"type": "email", "name": "m", "host": "smtp.example.com", "from": "a@example.com", "username": "u"})).unwrap_err();
    assert_eq!(
        e,
        ChannelError::MissingCredential {
            path: "channels[3].password".into()
        }
    );
    let e = bad(
        json!({"type": "email", "name": "m", "host": "smtp.example.com", "from": "not-an-address"}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("channels[3].from"), "{e}");
    let e = bad(json!({"type": "email", "name": "m", "host": "h", "from": "a@b.c", "html_template": "{% if %}"})).unwrap_err();
    assert!(e.to_string().contains("channels[3].html_template"), "{e}");
    let e = bad(
        json!({"type": "webhook", "name": "w", "url": "https://x.example.com", "colour": "red"}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
    // Errors never carry secrets.
    let e = bad(json!({"type": "slack", "name": "s", "webhook_url": "https://hooks.slack.com/services/T/B/SECRET", "token": "xoxb-SECRET"})).unwrap_err();
    assert!(!e.to_string().contains("SECRET"), "{e}");
}

#[test]
fn registry_builds_every_type_and_rejects_duplicates() {
    let configs: Vec<ChannelConfig> = serde_json::from_value(json!([
        {"type": "slack", "name": "slack", "token": "xoxb-1"},
        {"type": "email", "name": "smtp", "host": "127.0.0.1", "port": 2525, "tls": "none", "from": "a@example.com"},
        {"type": "twilio_sms", "name": "sms", "account_sid": "AC1", "auth_token": "t", "from": "+15550009999"},
        {"type": "twilio_voice", "name": "voice", "account_sid": "AC1", "auth_token": "t", "from": "+15550009999"},
        {"type": "webhook", "name": "hook", "url": "http://127.0.0.1:9/x"},
        {"type": "teams", "name": "teams", "url": "http://127.0.0.1:9/y"}
    ]))
    .unwrap();
    let r = ChannelRegistry::from_configs(&configs).unwrap();
    let kinds: Vec<String> = r
        .channels()
        .iter()
        .map(|c| format!("{}:{}", c.name(), c.kind()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "hook:webhook",
            "slack:slack",
            "sms:sms",
            "smtp:email",
            "teams:teams",
            "voice:voice"
        ]
    );
    let mut dup = configs.clone();
    dup.push(configs[0].clone());
    let e = ChannelRegistry::from_configs(&dup).err().unwrap();
    assert!(e.to_string().contains("channels[6].name"), "{e}");
}

#[tokio::test]
async fn webhook_body_is_alertmanager_v4_plus_signalcraft_and_the_signature_verifies() {
    let fake = Fake::start(Vendor::Webhook).await;
    let clock = ManualClock::new(now());
    let ch = WebhookChannel::new(
        &WebhookConfig {
            name: "hook".into(),
            url: fake.url("/am-receiver"),
            headers: BTreeMap::from([("X-Team".into(), "payments".into())]),
            secret: Some("whsec".into()),
            timeout_ms: 2_000,
            max_alerts: 0,
            max_in_flight: 256,
        },
        "channels[0]",
    )
    .unwrap()
    .with_clock(Arc::new(clock));
    let n = sample_notification("n1", "hook", "");
    use signalcraft_core::channel::Channel;
    ch.deliver(&n).await.unwrap();
    let req = &fake.requests()[0];
    let v = req.json();
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "hook");
    assert_eq!(v["groupKey"], n.group_key);
    assert_eq!(v["groupLabels"]["alertname"], "HighErrorRate");
    assert_eq!(v["commonLabels"]["service"], "checkout");
    assert_eq!(v["externalURL"], "https://signalcraft.example.com");
    assert_eq!(v["truncatedAlerts"], 0);
    let a = &v["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a["startsAt"], "2026-01-01T00:00:00Z");
    assert_eq!(a["fingerprint"], n.alerts[0].fingerprint().to_string());
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    assert!(a.get("generatorURL").is_some());
    assert_eq!(v["signalcraft"]["incident"]["number"], 42);
    assert_eq!(v["signalcraft"]["incident"]["state"], "open");
    assert_eq!(
        v["signalcraft"]["runbooks"][0]["href"],
        "https://runbooks.example.com/checkout-5xx"
    );
    assert_eq!(req.headers["x-team"], "payments");
    assert_eq!(req.headers["content-type"], "application/json");
    // A receiver verifies the signature; a forged body or old timestamp fails.
    assert!(webhook::verify_signature(&req.headers, &req.body, now(), b"whsec").is_ok());
    assert_eq!(
        webhook::verify_signature(&req.headers, b"{}", now(), b"whsec").unwrap_err(),
        CallbackError::BadSignature
    );
    let later = Timestamp::from_second(now().as_second() + 301).unwrap();
    assert!(matches!(
        webhook::verify_signature(&req.headers, &req.body, later, b"whsec"),
        Err(CallbackError::Stale { .. })
    ));
}

#[test]
fn slack_blocks_carry_severity_summary_service_runbooks_changes_and_buttons() {
    let n = sample_notification("n1", "slack", "C1");
    let m = slack::render(&n);
    let s = m.to_string();
    assert_eq!(m["text"], "[CRITICAL] #42 HighErrorRate on checkout");
    for needle in [
        "*Severity*\\n:red_circle: critical",
        "*Service*\\ncheckout",
        "5xx rate above 5% for 10m",
        "<https://runbooks.example.com/checkout-5xx|Checkout 5xx runbook>",
        "Deployed checkout v2.3.1",
        "\"action_id\":\"signalcraft_ack\"",
        "\"value\":\"ack:inc-42\"",
        "\"value\":\"resolve:inc-42\"",
    ] {
        assert!(s.contains(needle), "missing {needle} in {s}");
    }
    let mut resolved = n.clone();
    resolved.status = signalcraft_core::model::AlertStatus::Resolved;
    let s = slack::render(&resolved).to_string();
    assert!(s.contains("[RESOLVED]") && !s.contains("signalcraft_ack"));
}

#[test]
fn sms_text_and_twiml() {
    let n = sample_notification("n1", "sms", "+15550001111");
    let sms = twilio::render_sms(&n);
    assert!(
        sms.starts_with("[CRITICAL] #42 HighErrorRate on checkout"),
        "{sms}"
    );
    assert!(sms.contains("Reply \"ack 42\" or \"resolve 42\"."), "{sms}");
    let action = url::Url::parse("https://sc.example.com/callbacks/twilio/voice").unwrap();
    let twiml = twilio::render_twiml(&n, Some(&action));
    assert!(twiml.contains("<Gather numDigits=\"1\" timeout=\"10\" action=\"https://sc.example.com/callbacks/twilio/voice?incident=inc-42&amp;notification=n1\" method=\"POST\">"), "{twiml}");
    assert!(twiml.contains("Press 1 to acknowledge, 2 to escalate."));
    let mut evil = n.clone();
    evil.incident.as_mut().unwrap().title = "<Hangup/>".into();
    assert!(twilio::render_twiml(&evil, None).contains("&lt;Hangup/&gt;"));
}
