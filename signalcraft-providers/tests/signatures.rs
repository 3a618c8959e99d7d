//! Signature and authentication tests for every source: good, bad, missing,
//! malformed and replayed requests each give the documented typed outcome.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sha2::Sha256;
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};
use signalcraft_providers::sources::cloudwatch::{CloudWatchType, SubscriptionConfirmer};
use signalcraft_providers::sources::sns::CertificateCache;
use signalcraft_providers::sources::{Integration, Registry, Verification};

fn fixture(rel: &str) -> Vec<u8> {
    fs::read(root().join(rel)).unwrap()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    for p in parts {
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

fn build(i: &Integration) -> Box<dyn Provider> {
    Registry::builtin().build(i).unwrap()
}

fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn kind(r: Result<(), ProviderError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(e) => e.kind(),
    }
}

#[test]
fn github_signature_good_bad_missing_malformed() {
    let p = build(&Integration::new("github", "gh").with_secret("webhook_secret", "s3cr3t"));
    let body = fixture("github/push_default_branch.json");
    let sig = format!("sha256={}", hmac_hex("s3cr3t", &[&body]));
    let good = InboundRequest::from_body(body.clone()).with_header("X-Hub-Signature-256", &sig);
    assert_eq!(kind(p.verify(&good, now())), "ok");
    let mut tampered = good.clone();
    tampered.body[10] ^= 1;
    assert_eq!(kind(p.verify(&tampered, now())), "bad_signature");
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(body.clone()), now())),
        "missing_header"
    );
    let no_prefix = InboundRequest::from_body(body.clone())
        .with_header("X-Hub-Signature-256", sig.trim_start_matches("sha256="));
    assert_eq!(kind(p.verify(&no_prefix, now())), "malformed_header");
    let not_hex = InboundRequest::from_body(body).with_header("X-Hub-Signature-256", "sha256=zz");
    assert_eq!(kind(p.verify(&not_hex, now())), "malformed_header");
}

#[test]
fn gitlab_token_good_bad_missing() {
    let p = build(&Integration::new("gitlab", "gl").with_secret("token", "fixture-token"));
    let body = fixture("gitlab/deployment_success.json");
    let req = |t: &str| InboundRequest::from_body(body.clone()).with_header("X-Gitlab-Token", t);
    assert_eq!(kind(p.verify(&req("fixture-token"), now())), "ok");
    assert_eq!(
        kind(p.verify(&req("fixture-tokem"), now())),
        "bad_signature"
    );
    assert_eq!(
        kind(p.verify(&req("fixture-token-longer"), now())),
        "bad_signature"
    );
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(body.clone()), now())),
        "missing_header"
    );
}

#[test]
fn sentry_signature_good_bad_missing() {
    let p = build(&Integration::new("sentry", "s").with_secret("client_secret", "c1ient"));
    let body = fixture("sentry/metric_alert_critical.json");
    let sig = hmac_hex("c1ient", &[&body]);
    let good = InboundRequest::from_body(body.clone())
        .with_header("Sentry-Hook-Resource", "metric_alert")
        .with_header("Sentry-Hook-Signature", &sig);
    assert_eq!(kind(p.verify(&good, now())), "ok");
    assert_eq!(p.ingest(&good, now()).unwrap().len(), 1);
    let other = hmac_hex("other", &[&body]);
    let bad = InboundRequest::from_body(body.clone()).with_header("Sentry-Hook-Signature", &other);
    assert_eq!(kind(p.verify(&bad, now())), "bad_signature");
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(body), now())),
        "missing_header"
    );
}

#[test]
fn grafana_hmac_with_timestamp_has_a_replay_window() {
    let p = build(
        &Integration::new("grafana", "g")
            .with_secret("hmac_secret", "gr4fana")
            .with_options(
                json!({"hmac_timestamp_header": "X-Grafana-Alerting-Signature-Timestamp"}),
            ),
    );
    let body = fixture("grafana/resolved.json");
    let signed = |ts: i64| {
        let t = ts.to_string();
        InboundRequest::from_body(body.clone())
            .with_header("X-Grafana-Alerting-Signature-Timestamp", &t)
            .with_header(
                "X-Grafana-Alerting-Signature",
                hmac_hex("gr4fana", &[t.as_bytes(), b":", &body]),
            )
    };
    let now_s = now().as_second();
    assert_eq!(kind(p.verify(&signed(now_s - 10), now())), "ok");
    // Replayed: a genuine signature from an hour ago.
    assert_eq!(kind(p.verify(&signed(now_s - 3600), now())), "expired");
    // Timestamp moved forward without re-signing.
    let mut moved = signed(now_s - 3600);
    moved
        .headers
        .retain(|(k, _)| k != "X-Grafana-Alerting-Signature-Timestamp");
    let moved = moved.with_header("X-Grafana-Alerting-Signature-Timestamp", now_s.to_string());
    assert_eq!(kind(p.verify(&moved, now())), "bad_signature");
    let no_ts = InboundRequest::from_body(body.clone()).with_header(
        "X-Grafana-Alerting-Signature",
        hmac_hex("gr4fana", &[&body]),
    );
    assert_eq!(kind(p.verify(&no_ts, now())), "missing_header");
}

#[test]
fn datadog_shared_header_or_basic_auth() {
    let p = build(
        &Integration::new("datadog", "dd")
            .with_secret("token", "dd-tok")
            .with_secret("basic_auth", "datadog:pw"),
    );
    let body = fixture("datadog/extended_triggered.json");
    let r = InboundRequest::from_body(body.clone());
    assert_eq!(
        kind(p.verify(
            &r.clone().with_header("X-Signalcraft-Token", "dd-tok"),
            now()
        )),
        "ok"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("datadog:pw");
    assert_eq!(
        kind(
            p.verify(
                &r.clone()
                    .with_header("Authorization", format!("Basic {basic}")),
                now()
            )
        ),
        "ok"
    );
    assert_eq!(
        kind(p.verify(&r.clone().with_header("X-Signalcraft-Token", "nope"), now())),
        "bad_signature"
    );
    assert_eq!(kind(p.verify(&r, now())), "missing_header");
    // Datadog cannot sign, so an integration without any credential is refused at save time.
    let err = Registry::builtin()
        .validate(&Integration::new("datadog", "dd"))
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::InvalidConfig { ref field, .. } if field == "secrets"),
        "{err}"
    );
}

#[test]
fn pagerduty_routing_key_scopes_the_integration() {
    let p = build(&Integration::new("pagerduty", "pd").with_secret("routing_key", "samplekeyhere"));
    let good = InboundRequest::from_body(fixture("pagerduty/resolve.json"));
    assert_eq!(kind(p.verify(&good, now())), "ok");
    let other =
        build(&Integration::new("pagerduty", "pd2").with_secret("routing_key", "another-key"));
    assert_eq!(kind(other.verify(&good, now())), "unauthorized");
    let missing = InboundRequest::from_body(r#"{"event_action":"resolve","dedup_key":"k"}"#);
    assert_eq!(kind(p.verify(&missing, now())), "missing_header");
}

#[test]
fn token_sources_without_credentials_accept_and_with_them_require() {
    let body = fixture("alertmanager/firing_single.json");
    let open = build(&Integration::new("alertmanager", "am"));
    assert_eq!(
        kind(open.verify(&InboundRequest::from_body(body.clone()), now())),
        "ok"
    );
    let closed = build(&Integration::new("alertmanager", "am").with_secret("bearer_token", "t0k"));
    let r = InboundRequest::from_body(body);
    assert_eq!(kind(closed.verify(&r, now())), "missing_header");
    assert_eq!(
        kind(closed.verify(&r.clone().with_header("Authorization", "Bearer t0k"), now())),
        "ok"
    );
    assert_eq!(
        kind(closed.verify(&r.with_header("Authorization", "Bearer t0K"), now())),
        "bad_signature"
    );
}

// ---------------------------------------------------------------- CloudWatch / SNS

const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-fixture.pem";

fn test_cert() -> String {
    fs::read_to_string(root().join("cloudwatch/signing/test-cert.pem")).unwrap()
}

fn cloudwatch(options: Value) -> Box<dyn Provider> {
    let mut opts = json!({"certificates": {CERT_URL: test_cert()}});
    if let (Some(o), Some(extra)) = (opts.as_object_mut(), options.as_object()) {
        o.extend(extra.clone());
    }
    build(&Integration::new("cloudwatch", "aws").with_options(opts))
}

fn sns_time(body: &[u8]) -> Timestamp {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["Timestamp"].as_str().unwrap().parse().unwrap()
}

fn edit(body: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn sns_signature_versions_1_and_2_verify() {
    let p = cloudwatch(json!({}));
    for case in [
        "alarm_firing",
        "alarm_ok",
        "insufficient_data",
        "subscription_confirmation",
        "unsubscribe_confirmation",
    ] {
        let body = fixture(&format!("cloudwatch/{case}.json"));
        let at = sns_time(&body) + SignedDuration::from_secs(30);
        assert_eq!(
            kind(p.verify(&InboundRequest::from_body(body), at)),
            "ok",
            "{case}"
        );
    }
}

#[test]
fn sns_tampering_replay_and_missing_fields_are_typed() {
    let p = cloudwatch(json!({}));
    let body = fixture("cloudwatch/alarm_firing.json");
    let at = sns_time(&body) + SignedDuration::from_secs(30);
    let tampered = edit(&body, |v| {
        v["Message"] = Value::String(v["Message"].as_str().unwrap().replace("ALARM", "OK"))
    });
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(tampered), at)),
        "bad_signature"
    );
    let subject = edit(&body, |v| v["Subject"] = "OK: all good".into());
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(subject), at)),
        "bad_signature"
    );
    // A genuine message replayed two hours later.
    let later = sns_time(&body) + SignedDuration::from_hours(2);
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(body.clone()), later)),
        "expired"
    );
    let unsigned = edit(&body, |v| {
        v.as_object_mut().unwrap().remove("Signature");
    });
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(unsigned), at)),
        "missing_header"
    );
    let v3 = edit(&body, |v| v["SignatureVersion"] = "3".into());
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(v3), at)),
        "malformed_header"
    );
    let not_b64 = edit(&body, |v| v["Signature"] = "%%%".into());
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(not_b64), at)),
        "malformed_header"
    );
}

#[test]
fn sns_certificate_host_is_checked_before_any_lookup() {
    let p = cloudwatch(json!({}));
    let body = fixture("cloudwatch/alarm_firing.json");
    let at = sns_time(&body);
    for evil in [
        "https://evil.example/SimpleNotificationService-fixture.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-fixture.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-fixture.pem",
    ] {
        let b = edit(&body, |v| v["SigningCertURL"] = evil.into());
        assert_eq!(
            kind(p.verify(&InboundRequest::from_body(b), at)),
            "malformed_header",
            "{evil}"
        );
    }
    // Refused at configuration time too.
    let err = Registry::builtin()
        .validate(
            &Integration::new("cloudwatch", "aws")
                .with_options(json!({"certificates": {"https://evil.example/x.pem": test_cert()}})),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_config");
}

#[test]
fn sns_certificate_comes_from_the_cache_when_not_configured() {
    let cache = CertificateCache::new();
    let ty = CloudWatchType::with_cache(cache.clone());
    let p = ty
        .build_provider(&Integration::new("cloudwatch", "aws"), Verification::Verify)
        .unwrap();
    let body = fixture("cloudwatch/alarm_ok.json");
    let req = InboundRequest::from_body(body.clone());
    let at = sns_time(&body);
    match p.verify(&req, at) {
        Err(ProviderError::CertificateUnavailable { url, .. }) => assert_eq!(url, CERT_URL),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.certificate_to_fetch(&req).unwrap().as_deref(),
        Some(CERT_URL)
    );
    assert!(
        cache
            .insert_pem("https://evil.example/x.pem", &test_cert())
            .is_err()
    );
    cache.insert_pem(CERT_URL, &test_cert()).unwrap();
    assert_eq!(kind(p.verify(&req, at)), "ok");
    assert_eq!(p.certificate_to_fetch(&req).unwrap(), None);
}

/// A certificate (same key, so the signature itself verifies) used outside its
/// validity period is refused as `unauthorized`, both after `notAfter` and before
/// `notBefore`; the same message verifies with the valid certificate.
#[test]
fn sns_certificate_outside_its_validity_period_is_refused() {
    let expired = fs::read_to_string(root().join("cloudwatch/signing/expired-cert.pem")).unwrap();
    let key = signalcraft_providers::sources::sns::SigningKey::from_pem(&expired).unwrap();
    let (nb, na) = key.validity();
    assert_eq!(nb, "2020-01-01T00:00:00Z".parse::<Timestamp>().unwrap());
    assert_eq!(na, "2021-01-01T00:00:00Z".parse::<Timestamp>().unwrap());
    let body = fixture("cloudwatch/alarm_firing.json");
    let at = sns_time(&body); // 2024: after notAfter
    let req = InboundRequest::from_body(body.clone());
    let p = build(
        &Integration::new("cloudwatch", "aws")
            .with_options(json!({"certificates": {CERT_URL: expired}})),
    );
    match p.verify(&req, at) {
        Err(ProviderError::Unauthorized { message, .. }) => {
            assert!(
                message.contains("expired at 2021-01-01T00:00:00Z"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(kind(cloudwatch(json!({})).verify(&req, at)), "ok");
    // Before notBefore (the check runs before the replay window).
    let early: Timestamp = "2019-06-01T00:00:00Z".parse().unwrap();
    match p.verify(&req, early) {
        Err(ProviderError::Unauthorized { message, .. }) => {
            assert!(
                message.contains("not valid before 2020-01-01T00:00:00Z"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        key.check_valid_at("2020-06-01T00:00:00Z".parse().unwrap()),
        Ok(())
    ));
    // The same holds for a certificate that came through the cache.
    let cache = CertificateCache::new();
    cache
        .insert_pem(
            CERT_URL,
            &fs::read_to_string(root().join("cloudwatch/signing/expired-cert.pem")).unwrap(),
        )
        .unwrap();
    let cached = CloudWatchType::with_cache(cache)
        .build_provider(&Integration::new("cloudwatch", "aws"), Verification::Verify)
        .unwrap();
    assert_eq!(kind(cached.verify(&req, at)), "unauthorized");
}

#[test]
fn sns_topic_allow_list() {
    let p = cloudwatch(json!({"topic_arns": ["arn:aws:sns:us-east-1:123456789012:other-topic"]}));
    let body = fixture("cloudwatch/alarm_firing.json");
    assert_eq!(
        kind(p.verify(&InboundRequest::from_body(body.clone()), sns_time(&body))),
        "unauthorized"
    );
    let ok =
        cloudwatch(json!({"topic_arns": ["arn:aws:sns:us-east-1:123456789012:cloudwatch-alarms"]}));
    assert_eq!(
        kind(ok.verify(&InboundRequest::from_body(body.clone()), sns_time(&body))),
        "ok"
    );
}

/// Signs a fresh SignatureVersion 2 message with the committed test key (ring signs
/// SHA-256 only, which is why the SHA-1 fixtures are pre-signed by sign.py).
#[test]
fn sns_fresh_signature_v2_round_trip() {
    let pem = fs::read_to_string(root().join("cloudwatch/signing/test-key.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let ts = "2026-01-01T00:00:00.000Z";
    let mut v: Value = serde_json::from_slice(&fixture("cloudwatch/alarm_ok.json")).unwrap();
    v["Timestamp"] = ts.into();
    v["MessageId"] = "fresh-1".into();
    let to_sign = format!(
        "Message\n{}\nMessageId\nfresh-1\nSubject\n{}\nTimestamp\n{ts}\nTopicArn\n{}\nType\nNotification\n",
        v["Message"].as_str().unwrap(),
        v["Subject"].as_str().unwrap(),
        v["TopicArn"].as_str().unwrap()
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        to_sign.as_bytes(),
        &mut sig,
    )
    .unwrap();
    v["Signature"] = base64::engine::general_purpose::STANDARD
        .encode(&sig)
        .into();
    let p = cloudwatch(json!({"replay_window_secs": 60}));
    let req = InboundRequest::from_body(serde_json::to_vec(&v).unwrap());
    assert_eq!(
        kind(p.verify(&req, now() + SignedDuration::from_secs(59))),
        "ok"
    );
    assert_eq!(
        kind(p.verify(&req, now() + SignedDuration::from_secs(61))),
        "expired"
    );
    // Version 1 over the same bytes must not verify with a SHA-256 signature.
    v["SignatureVersion"] = "1".into();
    let req1 = InboundRequest::from_body(serde_json::to_vec(&v).unwrap());
    assert_eq!(kind(p.verify(&req1, now())), "bad_signature");
}

#[derive(Default)]
struct RecordingConfirmer(Mutex<Vec<String>>);

impl SubscriptionConfirmer for RecordingConfirmer {
    fn confirm(&self, url: &str) -> Result<(), String> {
        self.0.lock().unwrap().push(url.to_string());
        Ok(())
    }
}

#[test]
fn subscription_confirmation_is_surfaced_and_confirmed_only_when_authentic() {
    let cache = CertificateCache::new();
    cache.insert_pem(CERT_URL, &test_cert()).unwrap();
    let p = CloudWatchType::with_cache(cache)
        .build_provider(&Integration::new("cloudwatch", "aws"), Verification::Verify)
        .unwrap();
    let body = fixture("cloudwatch/subscription_confirmation.json");
    let at = sns_time(&body);
    let req = InboundRequest::from_body(body.clone());
    match p.parse(&req) {
        Err(ProviderError::NothingToIngest { message, .. }) => {
            assert!(message.contains("Action=ConfirmSubscription"), "{message}");
            assert!(message.contains("cloudwatch-alarms"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let confirmer = RecordingConfirmer::default();
    let confirmed = p
        .confirm_subscription(&req, at, &confirmer)
        .unwrap()
        .unwrap();
    assert!(
        confirmed
            .subscribe_url
            .starts_with("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription")
    );
    assert_eq!(
        confirmer.0.lock().unwrap().as_slice(),
        std::slice::from_ref(&confirmed.subscribe_url)
    );
    // A forged confirmation pointing elsewhere is never fetched.
    let forged = edit(&body, |v| {
        v["SubscribeURL"] = "https://attacker.example/confirm".into()
    });
    let e = p
        .confirm_subscription(&InboundRequest::from_body(forged), at, &confirmer)
        .unwrap_err();
    assert_eq!(e.kind(), "bad_signature");
    assert_eq!(confirmer.0.lock().unwrap().len(), 1);
    // Notifications are not subscriptions.
    let n = fixture("cloudwatch/alarm_firing.json");
    assert_eq!(
        p.confirm_subscription(
            &InboundRequest::from_body(n.clone()),
            sns_time(&n),
            &confirmer
        )
        .unwrap(),
        None
    );
}
