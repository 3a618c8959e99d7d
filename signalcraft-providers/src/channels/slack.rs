//! Slack: incoming webhooks, or the Web API (`chat.postMessage`, then
//! `chat.update` so each incident keeps one current message per Slack channel),
//! with Block Kit messages (severity, summary, service, runbooks, recent changes,
//! Acknowledge / Resolve buttons), and verification of the interactivity
//! callback with the v0 signing secret.
//!
//! Failure classification: HTTP 429 (with `Retry-After`) and 5xx retry; other 4xx
//! are permanent. The Web API answers HTTP 200 with `{"ok": false, "error": …}`:
//! `ratelimited`, `internal_error`, `fatal_error`, `service_unavailable`,
//! `request_timeout` retry, every other error is permanent. A 200 whose body is not
//! the documented JSON is retryable (the message may not have been posted).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use parking_lot::Mutex;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use signalcraft_core::channel::{Channel, Delivered, DeliveryContext, DeliveryError, Notification};
use signalcraft_core::model::{AlertStatus, Severity};

use super::action::{ExternalActor, IncidentAction, IncidentActionRequest, IncidentSelector};
use super::error::{CallbackError, ChannelError};
use super::http;

/// Slack's replay window for signed requests.
pub const REPLAY_WINDOW_SECS: i64 = 300;
/// `action_id` of the Acknowledge button.
pub const ACK_ACTION: &str = "signalcraft_ack";
/// `action_id` of the Resolve button.
pub const RESOLVE_ACTION: &str = "signalcraft_resolve";
/// Incident messages remembered in memory at most (see [`Messages`]); beyond it
/// the oldest half is forgotten and read back from the notification log when
/// needed again.
pub const MAX_REMEMBERED_MESSAGES: usize = 10_000;

/// Configuration of one Slack channel instance: either `webhook_url` (incoming
/// webhook) or `token` (bot token for the Web API), not both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Channel instance name.
    pub name: String,
    /// Incoming webhook URL (a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Bot token (`xoxb-…`) for the Web API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Web API base URL (tests point it at a local fake).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Slack channel id used when a notification's target address is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_channel: Option<String>,
    /// Signing secret for verifying interactivity callbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// Per-request timeout in milliseconds (default 10 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_api_url() -> String {
    "https://slack.com/api".into()
}
fn default_timeout_ms() -> u64 {
    10_000
}

enum Mode {
    Webhook(url::Url),
    Api { base: url::Url, token: String },
}

/// The Slack channel.
pub struct SlackChannel {
    name: String,
    mode: Mode,
    shown: String,
    default_channel: Option<String>,
    client: reqwest::Client,
    /// (incident id, target channel) → the message kept current.
    messages: Mutex<Messages>,
}

/// The messages kept current, as far as this process knows them: a cache of
/// what the notification log holds (the delivery pipeline hands the log's
/// answer in as [`DeliveryContext::previous_message_id`] when this has none).
/// Bounded: an incident's entry is dropped once its resolved notification went
/// out, and past `cap` entries the older half is forgotten.
struct Messages {
    map: HashMap<(String, String), Remembered>,
    seq: u64,
    cap: usize,
}

struct Remembered {
    channel: String,
    ts: String,
    seq: u64,
}

impl Messages {
    fn new(cap: usize) -> Self {
        Messages {
            map: HashMap::new(),
            seq: 0,
            cap: cap.max(2),
        }
    }

    fn get(&self, incident: &str, target: &str) -> Option<(String, String)> {
        self.map
            .get(&(incident.to_string(), target.to_string()))
            .map(|r| (r.channel.clone(), r.ts.clone()))
    }

    fn insert(&mut self, incident: String, target: String, channel: String, ts: String) {
        self.seq += 1;
        let seq = self.seq;
        self.map
            .insert((incident, target), Remembered { channel, ts, seq });
        if self.map.len() > self.cap {
            // Forget the older half (by insertion); amortized O(log n) per insert.
            let mut seqs: Vec<u64> = self.map.values().map(|r| r.seq).collect();
            let mid = seqs.len() / 2;
            let (_, cut, _) = seqs.select_nth_unstable(mid);
            let cut = *cut;
            self.map.retain(|_, r| r.seq >= cut);
        }
    }

    fn remove(&mut self, incident: &str, target: &str) {
        self.map.remove(&(incident.to_string(), target.to_string()));
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// `"{channel}:{ts}"`, the provider message id this channel reports.
fn parse_message_id(id: &str) -> Option<(String, String)> {
    let (ch, ts) = id.split_once(':')?;
    (!ch.is_empty() && !ts.is_empty()).then(|| (ch.to_string(), ts.to_string()))
}

/// Whether the notification closes its incident (its message needs no further updates).
fn is_resolved(n: &Notification) -> bool {
    n.status == AlertStatus::Resolved || n.incident.as_ref().is_some_and(|i| i.state == "resolved")
}

fn severity_emoji(s: Severity) -> &'static str {
    match s {
        Severity::Critical => ":red_circle:",
        Severity::Error => ":large_orange_circle:",
        Severity::Warning => ":large_yellow_circle:",
        Severity::Info => ":large_blue_circle:",
    }
}

/// Escapes `&`, `<`, `>` as Slack's mrkdwn requires.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn trunc(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The Block Kit message (`text` fallback + `blocks`) for a notification.
pub fn render(n: &Notification) -> Value {
    let severity = n
        .incident
        .as_ref()
        .map(|i| i.severity)
        .or_else(|| n.alerts.iter().map(|a| a.severity).min())
        .unwrap_or(Severity::Info);
    let resolved = n.status == AlertStatus::Resolved
        || n.incident.as_ref().is_some_and(|i| i.state == "resolved");
    let title = match &n.incident {
        Some(i) => format!("#{} {}", i.number, i.title),
        None => n
            .alerts
            .first()
            .map(|a| a.summary.clone())
            .unwrap_or_else(|| n.group_key.clone()),
    };
    let status_word = if resolved {
        "RESOLVED".to_string()
    } else {
        severity.as_str().to_uppercase()
    };
    let header = trunc(&format!("[{status_word}] {title}"), 150);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": header, "emoji": true}
    })];
    let service = n
        .incident
        .as_ref()
        .and_then(|i| i.service.clone())
        .or_else(|| n.alerts.iter().find_map(|a| a.service.clone()))
        .or_else(|| n.common_labels.get("service").map(str::to_owned))
        .unwrap_or_else(|| "—".into());
    let state = n
        .incident
        .as_ref()
        .map(|i| i.state.clone())
        .unwrap_or_else(|| format!("{:?}", n.status).to_lowercase());
    blocks.push(json!({
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": format!("*Severity*\n{} {}", severity_emoji(severity), severity.as_str())},
            {"type": "mrkdwn", "text": format!("*State*\n{}", esc(&state))},
            {"type": "mrkdwn", "text": format!("*Service*\n{}", esc(&service))},
            {"type": "mrkdwn", "text": format!("*Alerts*\n{} firing, {} resolved",
                n.alerts.iter().filter(|a| a.status == AlertStatus::Firing).count(),
                n.alerts.iter().filter(|a| a.status == AlertStatus::Resolved).count())},
        ]
    }));
    let mut summary: Vec<String> = n
        .alerts
        .iter()
        .take(5)
        .map(|a| format!("• {}", esc(&a.summary)))
        .collect();
    if n.alerts.len() > 5 {
        summary.push(format!("…and {} more", n.alerts.len() - 5));
    }
    if !summary.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": trunc(&format!("*Summary*\n{}", summary.join("\n")), 2900)}
        }));
    }
    if !n.runbooks.is_empty() {
        let links: Vec<String> = n
            .runbooks
            .iter()
            .map(|l| format!("<{}|{}>", l.href, esc(l.text.as_deref().unwrap_or(&l.href))))
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": trunc(&format!("*Runbooks*\n{}", links.join("\n")), 2900)}
        }));
    }
    if !n.recent_changes.is_empty() {
        let changes: Vec<Value> = n
            .recent_changes
            .iter()
            .take(5)
            .map(|c| {
                json!({"type": "mrkdwn", "text": trunc(&format!(":rocket: {} ({})", esc(&c.summary), c.timestamp), 300)})
            })
            .collect();
        blocks.push(json!({"type": "context", "elements": changes}));
    }
    if let Some(i) = &n.incident
        && !resolved
    {
        let mut elements = Vec::new();
        if i.state != "acknowledged" {
            elements.push(json!({
                "type": "button", "action_id": ACK_ACTION, "style": "primary",
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "value": format!("ack:{}", i.id)
            }));
        }
        elements.push(json!({
            "type": "button", "action_id": RESOLVE_ACTION, "style": "danger",
            "text": {"type": "plain_text", "text": "Resolve"},
            "value": format!("resolve:{}", i.id)
        }));
        if let Some(url) = &i.url {
            elements.push(json!({
                "type": "button", "action_id": "signalcraft_open",
                "text": {"type": "plain_text", "text": "Open incident"}, "url": url
            }));
        }
        blocks.push(json!({"type": "actions", "block_id": format!("signalcraft:{}", i.id), "elements": elements}));
    }
    json!({"text": header, "blocks": blocks})
}

/// Request body of a Web API call: write methods take JSON, read methods
/// (`conversations.info`) only form fields.
enum ApiBody<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
}

fn api_error_is_retryable(code: &str) -> bool {
    matches!(
        code,
        "ratelimited"
            | "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
    )
}

impl SlackChannel {
    /// Validates the config (`path` prefixes error paths) and builds the channel.
    pub fn new(c: &SlackConfig, path: &str) -> Result<Self, ChannelError> {
        if c.timeout_ms == 0 {
            return Err(ChannelError::config(
                format!("{path}.timeout_ms"),
                "must be greater than 0",
            ));
        }
        let (mode, shown) = match (&c.webhook_url, &c.token) {
            (Some(_), Some(_)) => {
                return Err(ChannelError::config(
                    path,
                    "set either webhook_url or token, not both",
                ));
            }
            (None, None) => {
                return Err(ChannelError::MissingCredential {
                    path: format!("{path}.token"),
                });
            }
            (Some(w), None) => {
                let u = http::parse_url(w, &format!("{path}.webhook_url"))?;
                let shown = http::redact_url(&u);
                (Mode::Webhook(u), shown)
            }
            (None, Some(t)) => {
                if t.trim().is_empty() {
                    return Err(ChannelError::MissingCredential {
                        path: format!("{path}.token"),
                    });
                }
                let mut base = http::parse_url(&c.api_url, &format!("{path}.api_url"))?;
                if !base.path().ends_with('/') {
                    let p = format!("{}/", base.path());
                    base.set_path(&p);
                }
                let shown = http::redact_url(&base);
                (
                    Mode::Api {
                        base,
                        token: t.clone(),
                    },
                    shown,
                )
            }
        };
        if c.signing_secret.as_deref() == Some("") {
            return Err(ChannelError::MissingCredential {
                path: format!("{path}.signing_secret"),
            });
        }
        Ok(SlackChannel {
            name: c.name.clone(),
            mode,
            shown,
            default_channel: c.default_channel.clone(),
            client: http::client(Duration::from_millis(c.timeout_ms), path)?,
            messages: Mutex::new(Messages::new(MAX_REMEMBERED_MESSAGES)),
        })
    }

    /// Caps the in-memory message cache at `cap` entries (tests use a small one).
    pub fn with_message_cache(self, cap: usize) -> Self {
        *self.messages.lock() = Messages::new(cap);
        self
    }

    /// How many incident messages are remembered in memory.
    pub fn remembered_messages(&self) -> usize {
        self.messages.lock().len()
    }

    /// The Slack channel a notification goes to (its target, else `default_channel`).
    fn target_channel(&self, n: &Notification) -> Option<String> {
        if n.target.address.trim().is_empty() {
            self.default_channel.clone()
        } else {
            Some(n.target.address.clone())
        }
    }

    /// The message kept current for an incident in a Slack channel: `(channel, ts)`.
    pub fn message_for(&self, incident_id: &str, slack_channel: &str) -> Option<(String, String)> {
        self.messages.lock().get(incident_id, slack_channel)
    }

    /// Restores a known message (e.g. from the notification log after a restart),
    /// so the next notification for the incident updates it.
    /// The delivery pipeline does this on its own (see
    /// [`DeliveryContext::previous_message_id`]); this is for embedders without it.
    pub fn remember_message(&self, incident_id: &str, slack_channel: &str, ts: &str) {
        self.messages.lock().insert(
            incident_id.to_string(),
            slack_channel.to_string(),
            slack_channel.to_string(),
            ts.to_string(),
        );
    }

    async fn api_call(&self, method: &str, body: &Value) -> Result<Value, DeliveryError> {
        self.api_request(method, ApiBody::Json(body)).await
    }

    async fn api_request(&self, method: &str, body: ApiBody<'_>) -> Result<Value, DeliveryError> {
        let Mode::Api { base, token } = &self.mode else {
            return Err(DeliveryError::Permanent {
                reason: "slack: Web API call on a webhook channel".into(),
            });
        };
        let what = format!("slack {method}");
        let url = base.join(method).map_err(|_| DeliveryError::Permanent {
            reason: format!("{what}: bad API URL"),
        })?;
        let req = self
            .client
            .post(url)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        let req = match body {
            ApiBody::Json(v) => req.json(v),
            ApiBody::Form(f) => req.form(f),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| http::classify_send_error(e, &what))?;
        let status = resp.status();
        let headers: HeaderMap = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| http::classify_send_error(e, &what))?;
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(e) = http::classify_status(status, &headers, &what, code.as_deref()) {
            return Err(e);
        }
        let Some(v) = parsed else {
            return Err(DeliveryError::Retryable {
                reason: format!("{what}: malformed JSON response"),
                retry_after: None,
            });
        };
        if v.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(v);
        }
        let code = code.unwrap_or_else(|| "missing ok/error".into());
        let reason = format!("{what}: {}", trunc(&code, 80));
        if api_error_is_retryable(&code) {
            Err(DeliveryError::Retryable {
                reason,
                retry_after: http::retry_after(&headers),
            })
        } else {
            Err(DeliveryError::Permanent { reason })
        }
    }

    async fn deliver_webhook(
        &self,
        url: &url::Url,
        msg: &Value,
    ) -> Result<Delivered, DeliveryError> {
        let what = format!("slack webhook {}", self.shown);
        let resp = self
            .client
            .post(url.clone())
            .json(msg)
            .send()
            .await
            .map_err(|e| http::classify_send_error(e, &what))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        // Incoming webhooks answer with short plain-text codes ("invalid_payload").
        let detail: String = body
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(60)
            .collect();
        if let Some(e) = http::classify_status(status, &headers, &what, Some(&detail)) {
            return Err(e);
        }
        Ok(Delivered::default())
    }
}

#[async_trait]
impl Channel for SlackChannel {
    fn kind(&self) -> &str {
        "slack"
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        self.deliver_in(n, &DeliveryContext::default()).await
    }

    /// Web API with an incident whose message this process does not remember:
    /// the pipeline reads it from the notification log (after a restart, or
    /// once the cache forgot it).
    fn wants_previous_message(&self, n: &Notification) -> bool {
        let (Mode::Api { .. }, Some(inc)) = (&self.mode, &n.incident) else {
            return false;
        };
        self.target_channel(n)
            .is_some_and(|ch| self.message_for(&inc.id, &ch).is_none())
    }

    async fn deliver_in(
        &self,
        n: &Notification,
        ctx: &DeliveryContext,
    ) -> Result<Delivered, DeliveryError> {
        let mut msg = render(n);
        match &self.mode {
            Mode::Webhook(url) => self.deliver_webhook(url, &msg).await,
            Mode::Api { .. } => {
                let channel = self
                    .target_channel(n)
                    .ok_or_else(|| DeliveryError::Permanent {
                        reason: "slack: no target channel and no default_channel".into(),
                    })?;
                let incident = n.incident.as_ref().map(|i| i.id.clone());
                let known = incident.as_ref().and_then(|i| {
                    self.message_for(i, &channel).or_else(|| {
                        ctx.previous_message_id
                            .as_deref()
                            .and_then(parse_message_id)
                    })
                });
                let done = |ch: String, ts: String| {
                    if let Some(i) = &incident {
                        let mut m = self.messages.lock();
                        if is_resolved(n) {
                            // Nothing updates it any more; a late notification
                            // finds it in the log again.
                            m.remove(i, &channel);
                        } else {
                            m.insert(i.clone(), channel.clone(), ch.clone(), ts.clone());
                        }
                    }
                    Ok(Delivered {
                        provider_message_id: Some(format!("{ch}:{ts}")),
                    })
                };
                if let Some((ch, ts)) = known {
                    msg["channel"] = json!(ch);
                    msg["ts"] = json!(ts);
                    match self.api_call("chat.update", &msg).await {
                        Ok(_) => return done(ch, ts),
                        // The message was deleted or can no longer be edited
                        // (documented chat.update errors): post a new one below.
                        Err(DeliveryError::Permanent { reason })
                            if [
                                "message_not_found",
                                "cant_update_message",
                                "edit_window_closed",
                            ]
                            .iter()
                            .any(|c| reason.contains(c)) => {}
                        Err(e) => return Err(e),
                    }
                    if let Some(obj) = msg.as_object_mut() {
                        obj.remove("ts");
                    }
                }
                msg["channel"] = json!(channel);
                let v = self.api_call("chat.postMessage", &msg).await?;
                let ts = v.get("ts").and_then(Value::as_str).map(str::to_owned);
                let ch = v
                    .get("channel")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or(channel.clone());
                let Some(ts) = ts else {
                    return Err(DeliveryError::Retryable {
                        reason: "slack chat.postMessage: response without ts".into(),
                        retry_after: None,
                    });
                };
                done(ch, ts)
            }
        }
    }

    /// Web API: `auth.test`, then (with a `default_channel`) `conversations.info`
    /// to check the channel is reachable and not archived. Incoming webhooks
    /// cannot be checked without posting, so they always report healthy.
    async fn health_check(&self) -> Result<(), DeliveryError> {
        if let Mode::Webhook(_) = &self.mode {
            return Ok(());
        }
        self.api_call("auth.test", &json!({})).await?;
        if let Some(ch) = &self.default_channel {
            let v = self
                .api_request(
                    "conversations.info",
                    ApiBody::Form(&[("channel", ch.as_str())]),
                )
                .await?;
            if v.pointer("/channel/is_archived").and_then(Value::as_bool) == Some(true) {
                return Err(DeliveryError::Permanent {
                    reason: "slack conversations.info: channel is archived".into(),
                });
            }
        }
        Ok(())
    }
}

/// `v0=<hex HMAC-SHA256(secret, "v0:<timestamp>:<body>")>`.
pub fn sign(signing_secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(signing_secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies `X-Slack-Signature` / `X-Slack-Request-Timestamp` over the raw body
/// (constant-time compare, 5-minute replay window).
pub fn verify_request(
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    signing_secret: &[u8],
) -> Result<(), CallbackError> {
    let ts = http::header(headers, "x-slack-request-timestamp")
        .ok_or(CallbackError::MissingHeader("X-Slack-Request-Timestamp"))?
        .trim();
    let sig = http::header(headers, "x-slack-signature")
        .ok_or(CallbackError::MissingHeader("X-Slack-Signature"))?
        .trim();
    let secs: i64 = ts.parse().map_err(|_| {
        CallbackError::Malformed("X-Slack-Request-Timestamp is not an integer".into())
    })?;
    let age = now.as_second() - secs;
    if age.abs() > REPLAY_WINDOW_SECS {
        return Err(CallbackError::Stale {
            age_secs: age,
            window_secs: REPLAY_WINDOW_SECS,
        });
    }
    let want = sign(signing_secret, ts, body);
    if subtle::ConstantTimeEq::ct_eq(want.as_bytes(), sig.as_bytes()).into() {
        Ok(())
    } else {
        Err(CallbackError::BadSignature)
    }
}

/// Parses a verified `block_actions` interaction (form body `payload=<json>`)
/// into the incident action of the pressed button, with the Slack user as actor.
pub fn parse_interaction(body: &[u8]) -> Result<IncidentActionRequest, CallbackError> {
    let payload = http::form_pairs(body)
        .into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or_else(|| CallbackError::Malformed("no payload field".into()))?;
    let v: Value = serde_json::from_str(&payload)
        .map_err(|e| CallbackError::Malformed(format!("payload is not JSON: {e}")))?;
    let user = v
        .get("user")
        .ok_or_else(|| CallbackError::Malformed("payload.user missing".into()))?;
    let user_id = user
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| CallbackError::Malformed("payload.user.id missing".into()))?;
    let name = user
        .get("username")
        .or_else(|| user.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let action = v
        .get("actions")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .ok_or_else(|| CallbackError::Malformed("payload.actions[0] missing".into()))?;
    let action_id = action
        .get("action_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = action.get("value").and_then(Value::as_str).unwrap_or("");
    let (verb, incident) = value.split_once(':').ok_or_else(|| {
        CallbackError::Malformed("actions[0].value is not `verb:incident`".into())
    })?;
    let act = match (action_id, verb) {
        (ACK_ACTION, "ack") => IncidentAction::Acknowledge,
        (RESOLVE_ACTION, "resolve") => IncidentAction::Resolve,
        _ => return Err(CallbackError::UnknownCommand(trunc(action_id, 40))),
    };
    if incident.is_empty() {
        return Err(CallbackError::Malformed("empty incident id".into()));
    }
    Ok(IncidentActionRequest {
        incident: IncidentSelector::Id(incident.to_string()),
        action: act,
        actor: ExternalActor {
            channel: "slack".into(),
            id: user_id.to_string(),
            name,
        },
    })
}

/// Verifies, then parses, an interactivity callback. A rejected request should be
/// answered with [`CallbackError::http_status`] (401 for signature failures).
pub fn handle_interaction(
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    signing_secret: &[u8],
) -> Result<IncidentActionRequest, CallbackError> {
    verify_request(headers, body, now, signing_secret)
        .inspect_err(|e| tracing::warn!(error = %e, "slack callback rejected"))?;
    parse_interaction(body)
}
