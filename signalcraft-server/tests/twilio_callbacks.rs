//! Twilio callbacks against a running server on 127.0.0.1, each request signed with a
//! real `X-Twilio-Signature` (HMAC-SHA1 over the public URL and the sorted form):
//! SMS "escalate 12" and voice keypress 2 move the incident's escalation policy to its
//! next level at once, keypress 1 acknowledges, status callbacks update the delivery
//! log, and forged signatures get 401 and change nothing. Twilio's REST API is a local
//! fake written to its documented Messages/Calls resources.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "twilio-auth-token";
const BASE: &str = "https://sc.example.com";
const ANN: &str = "+15550001111";
const BOB: &str = "+15550002222";
const CAT: &str = "+15550003333";
const OPS: &str = "+15550009999";

struct Setup {
    sc: TestServer,
    twilio: TwilioFake,
}

/// A server with a Twilio SMS channel (to the fake), ann/bob/cat reachable by SMS, and
/// the route paging policy `db`: ann, then bob, then cat, 10 minutes apart.
async fn setup() -> Setup {
    let twilio = TwilioFake::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let tok = secret_file(dir.path(), "twilio", TOKEN);
    let toml = format!(
        r#"
[twilio]
auth_token = "{tok}"
callback_base_url = "{BASE}"
users = {{ "{ANN}" = "ann", "{BOB}" = "bob", "{CAT}" = "cat" }}

[[channels]]
name = "sms"
type = "twilio_sms"
account_sid = "{acct}"
auth_token = "{tok}"
from = "+15550000000"
api_url = "{api}"
status_callback_url = "{BASE}/callbacks/twilio/status"

[route]
receiver = "oncall"
group_by = ["alertname"]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"
escalation_policy = "db"
notify = [{{ channel = "sms", target = "{OPS}" }}]
"#,
        acct = TwilioFake::ACCOUNT_SID,
        api = twilio.api_url(),
    );
    let sc = start_in(dir, &toml, |_| {}).await;
    let a = Some(sc.admin.as_str());
    for (id, phone) in [("ann", ANN), ("bob", BOB), ("cat", CAT)] {
        let user = json!({
            "id": id, "name": id,
            "contact_methods": [{"id": "sms", "kind": "sms", "address": phone}],
            "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "sms"}],
                                   "low": [{"delay_minutes": 0, "contact_method": "sms"}]},
        });
        let r = sc.post_json("/api/v1/users", a, &user).await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
    }
    let level = |u: &str| json!({"targets": [{"type": "user", "id": u}], "delay_minutes": 10});
    let policy =
        json!({"id": "db", "name": "DB", "levels": [level("ann"), level("bob"), level("cat")]});
    let r = sc
        .post_json("/api/v1/escalation-policies", a, &policy)
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    Setup { sc, twilio }
}

impl Setup {
    /// Posts a critical alert and waits for its incident; returns (id, number).
    async fn incident(&self) -> (String, u64) {
        let alerts = json!([{"labels": {"alertname": "DbDown", "severity": "critical"}}]);
        let r = self.sc.post_json("/api/v2/alerts", None, &alerts).await;
        assert_eq!(r.status(), 200);
        let items = self
            .sc
            .wait_incidents(Duration::from_secs(10), "incident", |i| !i.is_empty())
            .await;
        (
            items[0]["id"].as_str().unwrap().to_string(),
            items[0]["number"].as_u64().unwrap(),
        )
    }

    async fn detail(&self, id: &str) -> Value {
        self.sc
            .get(&format!("/api/v1/incidents/{id}"), Some(&self.sc.admin))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Polls the incident's detail until `pred` holds (delivery outcomes and
    /// timeline entries are committed just after the fake sees the request).
    async fn detail_when(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let d = self.detail(id).await;
            if pred(&d) {
                return d;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {d:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Posts a form to `path` signed for `BASE + path` with `token`.
    async fn signed(&self, path: &str, params: &[(&str, &str)], token: &str) -> reqwest::Response {
        let url = format!("{BASE}{path}");
        self.sc
            .client
            .post(self.sc.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", twilio_signature(token, &url, params))
            .body(form_body(params))
            .send()
            .await
            .unwrap()
    }

    /// Waits until the fake sent an SMS to `to`.
    async fn sms_to(&self, to: &str) -> TwilioCall {
        let calls = self
            .twilio
            .wait(Duration::from_secs(10), &format!("an SMS to {to}"), |c| {
                c.iter()
                    .any(|m| m.form.get("To").map(String::as_str) == Some(to))
            })
            .await;
        calls
            .into_iter()
            .find(|m| m.form.get("To").map(String::as_str) == Some(to))
            .unwrap()
    }
}

fn escalations(detail: &Value) -> Vec<(u64, String)> {
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "escalated")
        .map(|e| {
            (
                e["level"].as_u64().unwrap_or(0),
                e["actor"]["id"].as_str().unwrap_or("system").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn sms_escalate_and_keypress_2_page_the_next_level_now_and_keypress_1_acknowledges() {
    let s = setup().await;
    let (id, number) = s.incident().await;
    // Level 1 (ann) is paged by SMS through the Twilio channel.
    let first = s.sms_to(ANN).await;
    assert_eq!(first.resource, "Messages");
    assert_eq!(first.form["From"], "+15550000000");

    // A forged "escalate" changes nothing.
    let body = format!("escalate {number}");
    let sms = [
        ("From", ANN),
        ("Body", body.as_str()),
        ("MessageSid", "SMin1"),
    ];
    let r = s
        .signed("/callbacks/twilio/sms", &sms, "not-the-token")
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let d = s
        .detail_when(&id, "the level-1 escalation entry", |d| {
            !escalations(d).is_empty()
        })
        .await;
    assert_eq!(escalations(&d), [(1, "system".to_string())]);
    assert!(!s.twilio.calls().iter().any(|m| m.form["To"] == BOB));

    // ann replies "escalate <n>": bob (level 2) is paged now, not in 10 minutes.
    let r = s.signed("/callbacks/twilio/sms", &sms, TOKEN).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/xml");
    let twiml = r.text().await.unwrap();
    assert!(
        twiml.contains(&format!("Escalated incident #{number}")),
        "{twiml}"
    );
    s.sms_to(BOB).await;
    let d = s.detail(&id).await;
    assert_eq!(
        escalations(&d),
        [(1, "system".to_string()), (2, "ann".to_string())]
    );
    let entry = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "escalated" && e["level"] == 2)
        .unwrap()
        .clone();
    assert_eq!(entry["targets"], json!(["bob"]));
    assert_eq!(d["incident"]["state"], "open");
    // Audited with the actor.
    let audit: Value =
        s.sc.get(
            &format!("/api/v1/audit?target=incident/{id}"),
            Some(&s.sc.admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let items = audit["items"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| audit.as_array().cloned().unwrap_or_default());
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "incident.escalated" && e["actor"]["id"] == "ann"),
        "{audit:#}"
    );

    // bob's phone: the <Gather> action URL carries the incident; keypress 2 escalates.
    let path = format!("/callbacks/twilio/voice?incident={id}");
    let press = |digit: &'static str, to: &'static str| {
        [
            ("CallSid", "CA123"),
            ("Digits", digit),
            ("To", to),
            ("From", "+15550000000"),
        ]
    };
    // Forged keypress: 401, nothing happens.
    let r = s.signed(&path, &press("2", BOB), "not-the-token").await;
    assert_eq!(r.status(), 401);
    // Signed for another incident's URL (the query is covered by the signature).
    let other = format!("{BASE}/callbacks/twilio/voice?incident=inc-0000000999");
    let params = press("2", BOB);
    let r =
        s.sc.client
            .post(s.sc.url(&path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "x-twilio-signature",
                twilio_signature(TOKEN, &other, &params),
            )
            .body(form_body(&params))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!s.twilio.calls().iter().any(|m| m.form["To"] == CAT));

    let r = s.signed(&path, &press("2", BOB), TOKEN).await;
    assert_eq!(r.status(), 200);
    let twiml = r.text().await.unwrap();
    assert!(twiml.contains("escalated to the next level"), "{twiml}");
    s.sms_to(CAT).await;
    assert_eq!(
        escalations(&s.detail(&id).await),
        [
            (1, "system".to_string()),
            (2, "ann".to_string()),
            (3, "bob".to_string())
        ]
    );

    // Escalating past the last level is refused (the caller hears why).
    let r = s.signed(&path, &press("2", CAT), TOKEN).await;
    assert_eq!(r.status(), 200);
    let twiml = r.text().await.unwrap();
    assert!(twiml.contains("last level"), "{twiml}");
    assert_eq!(escalations(&s.detail(&id).await).len(), 3);

    // cat presses 1: acknowledged by cat.
    let r = s.signed(&path, &press("1", CAT), TOKEN).await;
    assert_eq!(r.status(), 200);
    let twiml = r.text().await.unwrap();
    assert!(
        twiml.contains(&format!("Incident {number} acknowledged")),
        "{twiml}"
    );
    let d = s.detail(&id).await;
    assert_eq!(d["incident"]["state"], "acknowledged");
    let ack = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "acknowledged")
        .cloned()
        .unwrap();
    assert_eq!(ack["actor"]["id"], "cat");
    // Pending escalation jobs are gone.
    let pending =
        s.sc.server
            .state
            .engine
            .engine
            .scheduler()
            .pending()
            .await
            .unwrap();
    assert!(
        !pending
            .iter()
            .any(|j| j.id.starts_with(&format!("page/{id}/"))),
        "{pending:?}"
    );
}

#[tokio::test]
async fn api_escalate_needs_a_responder_and_is_audited() {
    let s = setup().await;
    let (id, _) = s.incident().await;
    s.sms_to(ANN).await;
    let viewer = {
        let r =
            s.sc.post_json(
                "/api/v1/tokens",
                Some(&s.sc.admin),
                &json!({"name": "v", "role": "viewer", "user": "ann"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let path = format!("/api/v1/incidents/{id}/escalate");
    let r = s.sc.post_json(&path, Some(&viewer), &json!({})).await;
    assert_eq!(r.status(), 403);
    let r = s.sc.post_json(&path, None, &json!({})).await;
    assert_eq!(r.status(), 401);
    assert_eq!(escalations(&s.detail(&id).await).len(), 1);
    let r = s.sc.post_json(&path, Some(&s.sc.admin), &json!({})).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    s.sms_to(BOB).await;
    let levels: Vec<u64> = escalations(&s.detail(&id).await)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(levels, [1, 2]);
    let r =
        s.sc.post_json(
            "/api/v1/incidents/inc-0000000999/escalate",
            Some(&s.sc.admin),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 404);
    s.sc.post_json(
        &format!("/api/v1/incidents/{id}/resolve"),
        Some(&s.sc.admin),
        &json!({}),
    )
    .await;
    let r = s.sc.post_json(&path, Some(&s.sc.admin), &json!({})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn status_callbacks_update_the_delivery_log_and_forgeries_are_refused() {
    let s = setup().await;
    // The server armed the periodic channel health checks (Twilio account fetch)
    // as one durable job.
    let health: Vec<_> =
        s.sc.server
            .state
            .engine
            .engine
            .scheduler()
            .pending()
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.id.starts_with("delivery-health/"))
            .collect();
    assert_eq!(health.len(), 1, "{health:?}");
    let (id, _) = s.incident().await;
    let to_ops = s.sms_to(OPS).await;
    let to_ann = s.sms_to(ANN).await;
    assert_eq!(
        to_ops.form.get("StatusCallback").map(String::as_str),
        Some("https://sc.example.com/callbacks/twilio/status")
    );
    let trail = |d: &Value, sid: &str| -> Value {
        d["delivery_trail"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["provider_message_id"] == sid)
            .cloned()
            .unwrap_or_else(|| panic!("no delivery record for {sid}: {d:#}"))
    };
    let has = |d: &Value, sid: &str| {
        d["delivery_trail"]
            .as_array()
            .is_some_and(|t| t.iter().any(|r| r["provider_message_id"] == sid))
    };
    let d = s
        .detail_when(&id, "both SMS in the delivery trail", |d| {
            has(d, &to_ops.sid) && has(d, &to_ann.sid)
        })
        .await;
    let before = trail(&d, &to_ops.sid);
    assert_eq!(before["status"], "sent");

    // Forged "delivered": 401, the record is unchanged.
    let delivered = [
        ("MessageSid", to_ops.sid.as_str()),
        ("MessageStatus", "delivered"),
        ("AccountSid", TwilioFake::ACCOUNT_SID),
    ];
    let r = s
        .signed("/callbacks/twilio/status", &delivered, "forged")
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(trail(&s.detail(&id).await, &to_ops.sid)["status"], "sent");
    // Missing signature: 401 too.
    let r =
        s.sc.client
            .post(s.sc.url("/callbacks/twilio/status"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&delivered))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);

    // Genuine callbacks: one delivered, one undelivered with Twilio's error code.
    let r = s
        .signed("/callbacks/twilio/status", &delivered, TOKEN)
        .await;
    assert_eq!(r.status(), 204);
    let failed = [
        ("MessageSid", to_ann.sid.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    let r = s.signed("/callbacks/twilio/status", &failed, TOKEN).await;
    assert_eq!(r.status(), 204);
    let d = s.detail(&id).await;
    assert_eq!(trail(&d, &to_ops.sid)["status"], "delivered");
    let ann = trail(&d, &to_ann.sid);
    assert_eq!(ann["status"], "failed", "{ann:#}");
    assert_eq!(ann["error"], "undelivered (30003)");

    // A malformed (but signed) callback is a 400 problem, not a crash.
    let bad = [
        ("MessageSid", to_ops.sid.as_str()),
        ("MessageStatus", "exploded"),
    ];
    let r = s.signed("/callbacks/twilio/status", &bad, TOKEN).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        trail(&s.detail(&id).await, &to_ops.sid)["status"],
        "delivered"
    );
}
