//! Outbound webhook: POSTs Alertmanager's webhook v4 JSON (so every existing
//! Alertmanager receiver works unchanged) extended with a `signalcraft` object,
//! with configurable headers and an optional HMAC-SHA256 signature.
//!
//! # Signature scheme (for receivers)
//!
//! When `secret` is set, each request carries
//! * `X-Signalcraft-Timestamp: <unix seconds>`
//! * `X-Signalcraft-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`
//!
//! A receiver recomputes the HMAC over the timestamp header, a `.` and the exact
//! body bytes, compares in constant time, and rejects timestamps more than five
//! minutes from its clock ([`verify_signature`] does exactly this).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use signalcraft_core::channel::{Channel, Delivered, DeliveryError, Notification};
use signalcraft_core::clock::{Clock, SystemClock};
use signalcraft_core::model::{AlertStatus, CompactAlert, Labels};

use super::error::{CallbackError, ChannelError};
use super::http;

/// Header carrying the notification id (the receiver's idempotency key).
pub const NOTIFICATION_ID_HEADER: &str = "x-signalcraft-notification-id";
/// Header carrying the signing timestamp.
pub const TIMESTAMP_HEADER: &str = "x-signalcraft-timestamp";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-signalcraft-signature";
/// Replay window receivers should enforce.
pub const REPLAY_WINDOW_SECS: i64 = 300;
/// Requests one webhook channel sends at once by default: the idle connections
/// its client keeps per host ([`http::client`]), so a burst of deliveries (a
/// thousand groups due at the same group_wait) reuses kept-alive connections
/// instead of opening one per request beyond the pool and closing it afterwards.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Configuration of one webhook channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Channel instance name.
    pub name: String,
    /// Endpoint URL (treated as a secret: only its host is ever shown).
    pub url: String,
    /// Extra request headers (e.g. `Authorization`); values are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HMAC-SHA256 signing secret; no signature headers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Per-request timeout in milliseconds (default 10 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Send at most this many alerts (0 = all); the rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: usize,
    /// Most requests in flight at once (default [`DEFAULT_MAX_IN_FLIGHT`], at least 1);
    /// further deliveries wait for a free slot.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_in_flight() -> usize {
    DEFAULT_MAX_IN_FLIGHT
}

/// Alertmanager webhook v4 payload plus the `signalcraft` extension.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Always `"4"`.
    pub version: String,
    /// Aggregation group key.
    pub group_key: String,
    /// Alerts left out because of `max_alerts`.
    pub truncated_alerts: usize,
    /// `firing` or `resolved`.
    pub status: AlertStatus,
    /// Receiver name.
    pub receiver: String,
    /// Group-by labels.
    pub group_labels: Labels,
    /// Labels shared by every alert.
    pub common_labels: Labels,
    /// Annotations shared by every alert.
    pub common_annotations: Labels,
    /// The server's external URL.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
    /// SignalCraft's extension (ignored by Alertmanager receivers).
    pub signalcraft: SignalcraftExtension,
}

/// One alert in Alertmanager's webhook form.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: AlertStatus,
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// RFC 3339 start.
    pub starts_at: String,
    /// RFC 3339 end, `0001-01-01T00:00:00Z` while firing (Alertmanager's zero time).
    pub ends_at: String,
    /// Link to the source.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Alertmanager-compatible fingerprint (16 hex digits).
    pub fingerprint: String,
}

/// The `signalcraft` object.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SignalcraftExtension {
    /// Notification id (idempotency key).
    pub notification_id: String,
    /// Incident, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<WebhookIncident>,
    /// Runbook links.
    pub runbooks: Vec<signalcraft_core::model::Link>,
}

/// Incident summary in the extension.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct WebhookIncident {
    /// Stable id.
    pub id: String,
    /// Short number.
    pub number: u64,
    /// State (`open`, `acknowledged`, …).
    pub state: String,
    /// Severity.
    pub severity: String,
    /// Title.
    pub title: String,
    /// Link, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Builds the payload for a notification.
pub fn render(n: &Notification, max_alerts: usize) -> WebhookPayload {
    let take = if max_alerts == 0 {
        n.alerts.len()
    } else {
        max_alerts.min(n.alerts.len())
    };
    WebhookPayload {
        version: "4".into(),
        group_key: n.group_key.clone(),
        truncated_alerts: n.alerts.len() - take,
        status: n.status,
        receiver: n.receiver.clone(),
        group_labels: n.group_labels.clone(),
        common_labels: n.common_labels.clone(),
        common_annotations: n.common_annotations.clone(),
        external_url: n.external_url.clone().unwrap_or_default(),
        alerts: n.alerts[..take]
            .iter()
            .map(|a| WebhookAlert {
                status: a.status,
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.starts_at.unwrap_or(n.created_at).to_string(),
                ends_at: match (a.status, a.ends_at) {
                    (AlertStatus::Resolved, Some(t)) => t.to_string(),
                    (AlertStatus::Resolved, None) => n.created_at.to_string(),
                    _ => ZERO_TIME.into(),
                },
                generator_url: a.links.first().map(|l| l.href.clone()).unwrap_or_default(),
                fingerprint: a.fingerprint().to_string(),
            })
            .collect(),
        signalcraft: SignalcraftExtension {
            notification_id: n.id.clone(),
            incident: n.incident.as_ref().map(|i| WebhookIncident {
                id: i.id.clone(),
                number: i.number,
                state: i.state.clone(),
                severity: i.severity.as_str().into(),
                title: i.title.clone(),
                url: i.url.clone(),
            }),
            runbooks: n.runbooks.clone(),
        },
    }
}

/// Borrowed mirror of [`WebhookPayload`] (same fields, order and names), so a
/// delivery serializes straight from the notification without cloning its maps.
/// `render_body` is tested to produce exactly `serde_json::to_vec(&render(..))`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PayloadRef<'a> {
    version: &'static str,
    group_key: &'a str,
    truncated_alerts: usize,
    status: AlertStatus,
    receiver: &'a str,
    group_labels: &'a Labels,
    common_labels: &'a Labels,
    common_annotations: &'a Labels,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    alerts: AlertsRef<'a>,
    signalcraft: ExtensionRef<'a>,
}

struct AlertsRef<'a> {
    n: &'a Notification,
    take: usize,
}

impl Serialize for AlertsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let n = self.n;
        let mut seq = s.serialize_seq(Some(self.take))?;
        // A group's alerts mostly share their start (and end) times: each distinct
        // time is formatted once, not once per alert.
        let mut starts = TimeText::default();
        let mut ends = TimeText::default();
        if let Some(packed) = n.alerts.packed() {
            // The same body from the engine's packed alerts, without unpacking them.
            for a in packed.iter().take(self.take) {
                seq.serialize_element(&AlertRef {
                    status: a.status,
                    labels: Pairs::Packed(a, false),
                    annotations: Pairs::Packed(a, true),
                    starts_at: starts.of(a.starts_at().unwrap_or(n.created_at)),
                    ends_at: match (a.status, a.ends_at()) {
                        (AlertStatus::Resolved, Some(t)) => ends.of(t),
                        (AlertStatus::Resolved, None) => ends.of(n.created_at),
                        _ => ZERO_TIME,
                    },
                    generator_url: a.links().next().map_or("", |(href, _)| href),
                    fingerprint: a.fingerprint(),
                })?;
            }
            return seq.end();
        }
        for a in &n.alerts[..self.take] {
            seq.serialize_element(&AlertRef {
                status: a.status,
                labels: Pairs::Map(&a.labels),
                annotations: Pairs::Map(&a.annotations),
                starts_at: starts.of(a.starts_at.unwrap_or(n.created_at)),
                ends_at: match (a.status, a.ends_at) {
                    (AlertStatus::Resolved, Some(t)) => ends.of(t),
                    (AlertStatus::Resolved, None) => ends.of(n.created_at),
                    _ => ZERO_TIME,
                },
                generator_url: a.links.first().map_or("", |l| l.href.as_str()),
                fingerprint: a.fingerprint(),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertRef<'a> {
    status: AlertStatus,
    labels: Pairs<'a>,
    annotations: Pairs<'a>,
    /// RFC 3339 (the `Display` of the time).
    starts_at: &'a str,
    /// RFC 3339, or Alertmanager's zero time.
    ends_at: &'a str,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    #[serde(serialize_with = "display")]
    fingerprint: signalcraft_core::model::Fingerprint,
}

/// A string map of an alert, full or packed (`true`: its annotations, `false`: its
/// labels); both in name order, so they serialize alike.
enum Pairs<'a> {
    Map(&'a Labels),
    Packed(&'a CompactAlert, bool),
}

impl Serialize for Pairs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match *self {
            Pairs::Map(m) => m.serialize(s),
            Pairs::Packed(a, annotations) => {
                let (labels, notes, _) = a.counts();
                let mut m = s.serialize_map(Some(if annotations { notes } else { labels }))?;
                if annotations {
                    for (k, v) in a.annotations() {
                        m.serialize_entry(k, v)?;
                    }
                } else {
                    for (k, v) in a.labels() {
                        m.serialize_entry(k, v)?;
                    }
                }
                m.end()
            }
        }
    }
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The text of the last time formatted (see [`AlertsRef`]'s serialization).
#[derive(Default)]
struct TimeText {
    last: Option<(Timestamp, String)>,
}

impl TimeText {
    /// `t` as its `Display` text, formatted only when it differs from the last one.
    fn of(&mut self, t: Timestamp) -> &str {
        if self.last.as_ref().is_none_or(|(l, _)| *l != t) {
            self.last = Some((t, t.to_string()));
        }
        self.last.as_ref().map_or("", |(_, s)| s.as_str())
    }
}

#[derive(Serialize)]
struct ExtensionRef<'a> {
    notification_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: Option<IncidentRef<'a>>,
    runbooks: &'a [signalcraft_core::model::Link],
}

#[derive(Serialize)]
struct IncidentRef<'a> {
    id: &'a str,
    number: u64,
    state: &'a str,
    severity: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

/// The JSON body for a notification: byte for byte
/// `serde_json::to_vec(&render(n, max_alerts))`, without the intermediate copy.
pub fn render_body(n: &Notification, max_alerts: usize) -> serde_json::Result<Vec<u8>> {
    let take = if max_alerts == 0 {
        n.alerts.len()
    } else {
        max_alerts.min(n.alerts.len())
    };
    let payload = PayloadRef {
        version: "4",
        group_key: &n.group_key,
        truncated_alerts: n.alerts.len() - take,
        status: n.status,
        receiver: &n.receiver,
        group_labels: &n.group_labels,
        common_labels: &n.common_labels,
        common_annotations: &n.common_annotations,
        external_url: n.external_url.as_deref().unwrap_or(""),
        alerts: AlertsRef { n, take },
        signalcraft: ExtensionRef {
            notification_id: &n.id,
            incident: n.incident.as_ref().map(|i| IncidentRef {
                id: &i.id,
                number: i.number,
                state: &i.state,
                severity: i.severity.as_str(),
                title: &i.title,
                url: i.url.as_deref(),
            }),
            runbooks: &n.runbooks,
        },
    };
    let mut body = Vec::with_capacity(1024 + 512 * take);
    serde_json::to_writer(&mut body, &payload)?;
    Ok(body)
}

/// `v1=<hex>` for `timestamp` and `body`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies a SignalCraft webhook signature as a receiver would (constant time,
/// five-minute replay window).
pub fn verify_signature(
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    secret: &[u8],
) -> Result<(), CallbackError> {
    let ts: i64 = http::header(headers, TIMESTAMP_HEADER)
        .ok_or(CallbackError::MissingHeader("X-Signalcraft-Timestamp"))?
        .trim()
        .parse()
        .map_err(|_| CallbackError::Malformed("timestamp is not an integer".into()))?;
    let sig = http::header(headers, SIGNATURE_HEADER)
        .ok_or(CallbackError::MissingHeader("X-Signalcraft-Signature"))?;
    let age = now.as_second() - ts;
    if age.abs() > REPLAY_WINDOW_SECS {
        return Err(CallbackError::Stale {
            age_secs: age,
            window_secs: REPLAY_WINDOW_SECS,
        });
    }
    let want = sign(secret, ts, body);
    if subtle::ConstantTimeEq::ct_eq(want.as_bytes(), sig.trim().as_bytes()).into() {
        Ok(())
    } else {
        Err(CallbackError::BadSignature)
    }
}

/// The webhook channel.
pub struct WebhookChannel {
    name: String,
    url: url::Url,
    shown: String,
    headers: HeaderMap,
    secret: Option<Vec<u8>>,
    max_alerts: usize,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// Bounds requests in flight (see [`WebhookChannel::with_max_in_flight`]).
    in_flight: tokio::sync::Semaphore,
}

impl WebhookChannel {
    /// Validates the config (`path` prefixes error paths) and builds the channel.
    pub fn new(c: &WebhookConfig, path: &str) -> Result<Self, ChannelError> {
        let url = http::parse_url(&c.url, &format!("{path}.url"))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                ChannelError::config(format!("{path}.headers.{k}"), "invalid header name")
            })?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                ChannelError::config(format!("{path}.headers.{k}"), "invalid header value")
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if c.secret.as_deref() == Some("") {
            return Err(ChannelError::MissingCredential {
                path: format!("{path}.secret"),
            });
        }
        if c.timeout_ms == 0 {
            return Err(ChannelError::config(
                format!("{path}.timeout_ms"),
                "must be greater than 0",
            ));
        }
        if c.max_in_flight == 0 {
            return Err(ChannelError::config(
                format!("{path}.max_in_flight"),
                "must be greater than 0",
            ));
        }
        Ok(WebhookChannel {
            name: c.name.clone(),
            shown: http::redact_url(&url),
            url,
            headers,
            secret: c.secret.as_ref().map(|s| s.as_bytes().to_vec()),
            max_alerts: c.max_alerts,
            client: http::client(Duration::from_millis(c.timeout_ms), path)?,
            clock: Arc::new(SystemClock),
            in_flight: tokio::sync::Semaphore::new(c.max_in_flight),
        })
    }

    /// Sends at most `n` requests at once (at least 1; default
    /// [`DEFAULT_MAX_IN_FLIGHT`]); further deliveries wait for a free slot.
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.in_flight = tokio::sync::Semaphore::new(n.max(1));
        self
    }

    /// Uses `clock` for signature timestamps.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn kind(&self) -> &str {
        "webhook"
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        let body = render_body(n, self.max_alerts).map_err(|e| DeliveryError::Permanent {
            reason: format!("webhook: rendering failed: {e}"),
        })?;
        // The request is built by hand with a header map sized for everything
        // reqwest and hyper add later (user agent, accept, host, length), so no
        // map grows on the hot path.
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 8);
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let id = HeaderValue::from_str(&n.id).map_err(|_| DeliveryError::Permanent {
            reason: "webhook: the notification id is not a valid header value".into(),
        })?;
        headers.insert(HeaderName::from_static(NOTIFICATION_ID_HEADER), id);
        if let Some(secret) = &self.secret {
            let ts = self.clock.now().as_second();
            let signature = HeaderValue::try_from(sign(secret, ts, &body))
                .unwrap_or_else(|_| unreachable!("`v1=` + hex is a valid header value"));
            headers.insert(HeaderName::from_static(TIMESTAMP_HEADER), ts.into());
            headers.insert(HeaderName::from_static(SIGNATURE_HEADER), signature);
        }
        let mut req = reqwest::Request::new(reqwest::Method::POST, self.url.clone());
        *req.headers_mut() = headers;
        *req.body_mut() = Some(body.into());
        // Never closed, so `acquire` cannot fail; without a permit it would only
        // mean one request more in flight.
        let _slot = self.in_flight.acquire().await.ok();
        let resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| http::classify_send_error(e, &format!("webhook {}", self.shown)))?;
        let status = resp.status();
        if status.is_success() {
            // Drain the body so the connection goes back to the pool.
            let _ = resp.bytes().await;
            return Ok(Delivered {
                provider_message_id: None,
            });
        }
        let headers = resp.headers().clone();
        let _ = resp.bytes().await;
        tracing::debug!(channel = %self.name, status = status.as_u16(), "webhook rejected");
        if let Some(e) =
            http::classify_status(status, &headers, &format!("webhook {}", self.shown), None)
        {
            return Err(e);
        }
        Ok(Delivered {
            provider_message_id: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use signalcraft_core::channel::NotificationAlerts;
    use signalcraft_core::model::{AlertStatus, CompactAlert, Link};
    use signalcraft_core::testing::channel::sample_notification;

    use super::{render, render_body};

    /// A burst of deliveries never has more requests in flight than the configured
    /// `max_in_flight`, and every one is delivered; 0 is refused with its config path.
    #[tokio::test]
    async fn requests_in_flight_are_bounded() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use axum::routing::post;
        use signalcraft_core::channel::Channel;

        #[derive(Default)]
        struct Seen {
            now: AtomicUsize,
            max: AtomicUsize,
            total: AtomicUsize,
        }
        let seen = Arc::new(Seen::default());
        let s = seen.clone();
        let app = axum::Router::new().route(
            "/",
            post(move || {
                let s = s.clone();
                async move {
                    let n = s.now.fetch_add(1, Ordering::SeqCst) + 1;
                    s.max.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    s.now.fetch_sub(1, Ordering::SeqCst);
                    s.total.fetch_add(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let cfg = super::WebhookConfig {
            name: "hook".into(),
            url: format!("http://{addr}/"),
            headers: Default::default(),
            secret: None,
            timeout_ms: 5_000,
            max_alerts: 0,
            max_in_flight: 0,
        };
        let err = super::WebhookChannel::new(&cfg, "channels[0]")
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("channels[0].max_in_flight"),
            "{err}"
        );
        let cfg = super::WebhookConfig {
            max_in_flight: 2,
            ..cfg
        };
        let ch = Arc::new(super::WebhookChannel::new(&cfg, "channels[0]").unwrap());
        let mut set = tokio::task::JoinSet::new();
        for i in 0..8 {
            let ch = ch.clone();
            set.spawn(async move {
                let n = sample_notification(&format!("incident/hook/{i}"), "hook", "");
                ch.deliver(&n).await
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(seen.total.load(Ordering::SeqCst), 8);
        assert_eq!(
            seen.max.load(Ordering::SeqCst),
            2,
            "at most 2, and the bound was reached"
        );
    }

    /// The fast body must be exactly the documented payload's JSON.
    #[test]
    fn render_body_matches_rendered_payload() {
        let mut n = sample_notification("id/with \"quotes\"", "hook", "");
        let mut second = n.alerts[0].clone();
        second.status = AlertStatus::Resolved;
        second.links.push(Link {
            href: "https://prom.example.com/graph?g0.expr=x".into(),
            text: None,
        });
        second.labels.insert("pod".into(), "ü\n\"x\"".into());
        second.annotations.insert("b".into(), "two".into());
        second.annotations.insert("a".into(), "one".into());
        n.alerts.to_mut().push(second.clone());
        second.ends_at = Some(n.created_at);
        second.dedup_key = Some("dk-1".into());
        n.alerts.to_mut().push(second.clone());
        second.dedup_key = None;
        // Start and end times that change from one alert to the next and back (each
        // distinct time is formatted once).
        for secs in [60, 0, 60] {
            let mut a = second.clone();
            a.starts_at = Some(n.created_at - jiff::SignedDuration::from_secs(secs + 5));
            a.ends_at = Some(n.created_at - jiff::SignedDuration::from_secs(secs));
            n.alerts.to_mut().push(a);
        }
        let mut cases = vec![n.clone()];
        n.incident = None;
        n.external_url = None;
        n.status = AlertStatus::Resolved;
        cases.push(n);
        for n in &cases {
            // The same alerts packed, as the engine hands them over.
            let mut packed = n.clone();
            packed.alerts = NotificationAlerts::from_packed(
                n.alerts.iter().map(CompactAlert::from_alert).collect(),
            );
            for max in [0, 1, 2, 3, 10] {
                let want = serde_json::to_vec(&render(n, max)).unwrap();
                assert_eq!(
                    String::from_utf8(render_body(n, max).unwrap()).unwrap(),
                    String::from_utf8(want.clone()).unwrap(),
                    "max_alerts {max}"
                );
                assert_eq!(
                    String::from_utf8(render_body(&packed, max).unwrap()).unwrap(),
                    String::from_utf8(want).unwrap(),
                    "packed, max_alerts {max}"
                );
                assert!(!packed.alerts.unpacked(), "rendered without unpacking");
            }
        }
    }
}
