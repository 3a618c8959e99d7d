//! Twilio SMS (Messages resource) and voice (Calls resource with TwiML
//! `<Gather>`: "press 1 to acknowledge, 2 to escalate"), plus the inbound side:
//! SMS replies ("ack 123", "resolve 123"), DTMF digits and status callbacks,
//! each verified with `X-Twilio-Signature`.
//!
//! REST calls are form-encoded with HTTP basic auth (account SID + auth token)
//! against `{api_url}/2010-04-01/Accounts/{AccountSid}/{Messages,Calls}.json`;
//! `api_url` is configurable so tests use a local fake.
//!
//! Failure classification: 429 and 5xx retry, other 4xx (Twilio error JSON
//! `{code, message}`, e.g. 21211 invalid number) are permanent; a 2xx without a
//! JSON `sid` is retryable.
//!
//! Signature: base64(HMAC-SHA1(auth_token, url + concat(sorted(key + value))));
//! Twilio's scheme has no timestamp, so there is no replay window.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha1::Sha1;
use signalcraft_core::channel::{Channel, Delivered, DeliveryError, Notification};
use signalcraft_core::delivery::ProviderStatus;
use signalcraft_core::model::{AlertStatus, Severity};

use super::action::{ExternalActor, IncidentAction, IncidentActionRequest, IncidentSelector};
use super::error::{CallbackError, ChannelError};
use super::http;

/// SMS or voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TwilioMode {
    /// Messages resource.
    Sms,
    /// Calls resource.
    Voice,
}

/// Configuration of one Twilio account used for SMS or voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// Channel instance name.
    pub name: String,
    /// Account SID (`AC…`).
    pub account_sid: String,
    /// Auth token (a secret; also verifies callbacks).
    pub auth_token: String,
    /// Sending number in E.164.
    pub from: String,
    /// REST base URL (default `https://api.twilio.com`).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Public URL Twilio posts message/call status callbacks to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback_url: Option<String>,
    /// Public URL the voice `<Gather>` posts the pressed digit to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gather_action_url: Option<String>,
    /// Per-request timeout in milliseconds (default 10 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_api_url() -> String {
    "https://api.twilio.com".into()
}
fn default_timeout_ms() -> u64 {
    10_000
}

/// A Twilio SMS or voice channel.
pub struct TwilioChannel {
    name: String,
    mode: TwilioMode,
    sid: String,
    token: String,
    from: String,
    base: url::Url,
    shown: String,
    status_callback: Option<String>,
    gather_action: Option<url::Url>,
    client: reqwest::Client,
}

fn severity_of(n: &Notification) -> Severity {
    n.incident
        .as_ref()
        .map(|i| i.severity)
        .or_else(|| n.alerts.iter().map(|a| a.severity).min())
        .unwrap_or(Severity::Info)
}

/// The SMS text: severity, incident number and title, first summaries, and the
/// reply commands. At most 1 600 characters (Twilio's limit).
pub fn render_sms(n: &Notification) -> String {
    let resolved = n.status == AlertStatus::Resolved;
    let head = match &n.incident {
        Some(i) => format!("#{} {}", i.number, i.title),
        None => n.group_key.clone(),
    };
    let tag = if resolved {
        "RESOLVED".to_string()
    } else {
        severity_of(n).as_str().to_uppercase()
    };
    let mut s = format!("[{tag}] {head}");
    for a in n.alerts.iter().take(3) {
        s.push_str("\n- ");
        s.push_str(&a.summary);
    }
    if let Some(i) = &n.incident
        && !resolved
    {
        s.push_str(&format!(
            "\nReply \"ack {0}\" or \"resolve {0}\".",
            i.number
        ));
    }
    s.chars().take(1600).collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The TwiML of a paging call: the message inside a one-digit `<Gather>` whose
/// action carries the incident id.
pub fn render_twiml(n: &Notification, action_url: Option<&url::Url>) -> String {
    let what = match &n.incident {
        Some(i) => format!(
            "SignalCraft alert. {} incident {}: {}.",
            i.severity.as_str(),
            i.number,
            i.title
        ),
        None => format!(
            "SignalCraft alert: {}.",
            n.alerts.first().map(|a| a.summary.as_str()).unwrap_or("")
        ),
    };
    let mut action_attr = String::new();
    if let Some(u) = action_url {
        let mut u = u.clone();
        if let Some(i) = &n.incident {
            u.query_pairs_mut().append_pair("incident", &i.id);
        }
        u.query_pairs_mut().append_pair("notification", &n.id);
        action_attr = format!(" action=\"{}\" method=\"POST\"", xml_escape(u.as_str()));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Gather numDigits=\"1\" timeout=\"10\"{action_attr}><Say>{}</Say><Say>Press 1 to acknowledge, 2 to escalate.</Say></Gather><Say>No input received. Goodbye.</Say></Response>",
        xml_escape(&what)
    )
}

impl TwilioChannel {
    /// Validates the config (`path` prefixes error paths) and builds the channel.
    pub fn new(c: &TwilioConfig, mode: TwilioMode, path: &str) -> Result<Self, ChannelError> {
        for (field, v) in [
            ("account_sid", &c.account_sid),
            ("auth_token", &c.auth_token),
        ] {
            if v.trim().is_empty() {
                return Err(ChannelError::MissingCredential {
                    path: format!("{path}.{field}"),
                });
            }
        }
        if !c.account_sid.starts_with("AC")
            || !c.account_sid.chars().all(|ch| ch.is_ascii_alphanumeric())
        {
            return Err(ChannelError::config(
                format!("{path}.account_sid"),
                "must look like AC followed by letters and digits",
            ));
        }
        if !is_e164(&c.from) {
            return Err(ChannelError::config(
                format!("{path}.from"),
                "must be an E.164 phone number like +15551230000",
            ));
        }
        let mut base = http::parse_url(&c.api_url, &format!("{path}.api_url"))?;
        base.set_path(&format!("/2010-04-01/Accounts/{}/", c.account_sid));
        if let Some(u) = &c.status_callback_url {
            http::parse_url(u, &format!("{path}.status_callback_url"))?;
        }
        let gather_action = c
            .gather_action_url
            .as_deref()
            .map(|u| http::parse_url(u, &format!("{path}.gather_action_url")))
            .transpose()?;
        if c.timeout_ms == 0 {
            return Err(ChannelError::config(
                format!("{path}.timeout_ms"),
                "must be greater than 0",
            ));
        }
        Ok(TwilioChannel {
            name: c.name.clone(),
            mode,
            sid: c.account_sid.clone(),
            token: c.auth_token.clone(),
            from: c.from.clone(),
            shown: http::redact_url(&base),
            base,
            status_callback: c.status_callback_url.clone(),
            gather_action,
            client: http::client(Duration::from_millis(c.timeout_ms), path)?,
        })
    }

    async fn call(&self, what: &str, req: reqwest::RequestBuilder) -> Result<Value, DeliveryError> {
        let what = format!("twilio {what} {}", self.shown);
        let resp = req
            .basic_auth(&self.sid, Some(&self.token))
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
        let detail = parsed.as_ref().and_then(|v| {
            let code = v.get("code").and_then(Value::as_u64)?;
            let msg = v.get("message").and_then(Value::as_str).unwrap_or("");
            Some(format!(
                "{code}: {}",
                msg.chars().take(80).collect::<String>()
            ))
        });
        if let Some(e) = http::classify_status(status, &headers, &what, detail.as_deref()) {
            return Err(e);
        }
        parsed.ok_or_else(|| DeliveryError::Retryable {
            reason: format!("{what}: malformed JSON response"),
            retry_after: None,
        })
    }
}

/// `+` followed by 8–15 digits.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

#[async_trait]
impl Channel for TwilioChannel {
    fn kind(&self) -> &str {
        match self.mode {
            TwilioMode::Sms => "sms",
            TwilioMode::Voice => "voice",
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        let to = n.target.address.trim();
        if !is_e164(to) {
            return Err(DeliveryError::Permanent {
                reason: "twilio: target is not an E.164 phone number".into(),
            });
        }
        let mut form: Vec<(&str, String)> =
            vec![("To", to.to_string()), ("From", self.from.clone())];
        if let Some(cb) = &self.status_callback {
            form.push(("StatusCallback", cb.clone()));
        }
        let (resource, what) = match self.mode {
            TwilioMode::Sms => {
                form.push(("Body", render_sms(n)));
                ("Messages.json", "Messages")
            }
            TwilioMode::Voice => {
                form.push(("Twiml", render_twiml(n, self.gather_action.as_ref())));
                ("Calls.json", "Calls")
            }
        };
        let url = self
            .base
            .join(resource)
            .map_err(|_| DeliveryError::Permanent {
                reason: "twilio: bad API URL".into(),
            })?;
        let v = self.call(what, self.client.post(url).form(&form)).await?;
        match v.get("sid").and_then(Value::as_str) {
            Some(sid) => Ok(Delivered {
                provider_message_id: Some(sid.to_string()),
            }),
            None => Err(DeliveryError::Retryable {
                reason: format!("twilio {what}: response without sid"),
                retry_after: None,
            }),
        }
    }

    /// Fetches the account (`GET /2010-04-01/Accounts/{sid}.json`) and requires
    /// `status: active`.
    async fn health_check(&self) -> Result<(), DeliveryError> {
        let mut url = self.base.clone();
        url.set_path(&format!("/2010-04-01/Accounts/{}.json", self.sid));
        let v = self.call("account fetch", self.client.get(url)).await?;
        match v.get("status").and_then(Value::as_str) {
            Some("active") => Ok(()),
            other => Err(DeliveryError::Permanent {
                reason: format!("twilio account status {}", other.unwrap_or("unknown")),
            }),
        }
    }
}

/// The signature Twilio sends for a request to `url` with form `params`.
pub fn expected_signature(url: &str, params: &[(String, String)], auth_token: &[u8]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies `X-Twilio-Signature` for a form-encoded POST to `url` (the full
/// public URL Twilio called, including any query string). Constant-time compare.
pub fn verify_request(
    headers: &HeaderMap,
    body: &[u8],
    url: &str,
    auth_token: &[u8],
) -> Result<Vec<(String, String)>, CallbackError> {
    let sig = http::header(headers, "x-twilio-signature")
        .ok_or(CallbackError::MissingHeader("X-Twilio-Signature"))?
        .trim();
    let params = http::form_pairs(body);
    let want = expected_signature(url, &params, auth_token);
    if subtle::ConstantTimeEq::ct_eq(want.as_bytes(), sig.as_bytes()).into() {
        Ok(params)
    } else {
        tracing::warn!("twilio callback rejected: signature mismatch");
        Err(CallbackError::BadSignature)
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Parses an SMS command: `ack 123`, `acknowledge #123`, `resolve 123`,
/// `escalate 123` (case-insensitive).
pub fn parse_sms_command(text: &str) -> Result<(IncidentAction, u64), CallbackError> {
    let mut words = text.split_whitespace();
    let verb = words.next().unwrap_or("").to_ascii_lowercase();
    let action = match verb.as_str() {
        "ack" | "acknowledge" | "a" => IncidentAction::Acknowledge,
        "resolve" | "res" | "r" | "close" => IncidentAction::Resolve,
        "escalate" | "esc" | "e" => IncidentAction::Escalate,
        _ => {
            return Err(CallbackError::UnknownCommand(
                text.chars().take(40).collect(),
            ));
        }
    };
    let number = words
        .next()
        .map(|w| w.trim_start_matches('#'))
        .and_then(|w| w.parse::<u64>().ok())
        .ok_or_else(|| {
            CallbackError::Malformed("expected an incident number after the command".into())
        })?;
    Ok((action, number))
}

/// Verifies and parses an inbound SMS (`From`, `Body`) into an incident action.
pub fn handle_sms_reply(
    headers: &HeaderMap,
    body: &[u8],
    url: &str,
    auth_token: &[u8],
) -> Result<IncidentActionRequest, CallbackError> {
    let params = verify_request(headers, body, url, auth_token)?;
    let from =
        param(&params, "From").ok_or_else(|| CallbackError::Malformed("From missing".into()))?;
    let text =
        param(&params, "Body").ok_or_else(|| CallbackError::Malformed("Body missing".into()))?;
    let (action, number) = parse_sms_command(text)?;
    Ok(IncidentActionRequest {
        incident: IncidentSelector::Number(number),
        action,
        actor: ExternalActor {
            channel: "sms".into(),
            id: from.to_string(),
            name: None,
        },
    })
}

/// Verifies and parses the `<Gather>` callback of a paging call: digit 1
/// acknowledges, 2 escalates. The incident id comes from the action URL's
/// `incident` query parameter; the actor is the called number (`To`).
pub fn handle_dtmf(
    headers: &HeaderMap,
    body: &[u8],
    url: &str,
    auth_token: &[u8],
) -> Result<IncidentActionRequest, CallbackError> {
    let params = verify_request(headers, body, url, auth_token)?;
    let u = url::Url::parse(url).map_err(|_| CallbackError::Malformed("callback URL".into()))?;
    let incident = u
        .query_pairs()
        .find(|(k, _)| k == "incident")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| CallbackError::Malformed("incident query parameter missing".into()))?;
    let action = match param(&params, "Digits") {
        Some("1") => IncidentAction::Acknowledge,
        Some("2") => IncidentAction::Escalate,
        Some(d) => {
            return Err(CallbackError::UnknownCommand(format!(
                "digits {}",
                d.chars().take(8).collect::<String>()
            )));
        }
        None => return Err(CallbackError::Malformed("Digits missing".into())),
    };
    let who = param(&params, "To")
        .or_else(|| param(&params, "Called"))
        .ok_or_else(|| CallbackError::Malformed("To missing".into()))?;
    Ok(IncidentActionRequest {
        incident: IncidentSelector::Id(incident),
        action,
        actor: ExternalActor {
            channel: "voice".into(),
            id: who.to_string(),
            name: None,
        },
    })
}

/// A verified message or call status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    /// `MessageSid` or `CallSid` (the provider message id in the delivery log).
    pub sid: String,
    /// The status, mapped for `DeliveryPipeline::record_provider_status`.
    pub status: ProviderStatus,
}

/// Verifies and parses a status callback (`MessageSid`/`MessageStatus` or
/// `CallSid`/`CallStatus`, plus `ErrorCode`).
pub fn handle_status_callback(
    headers: &HeaderMap,
    body: &[u8],
    url: &str,
    auth_token: &[u8],
) -> Result<StatusCallback, CallbackError> {
    let params = verify_request(headers, body, url, auth_token)?;
    let (sid, status) = match (param(&params, "MessageSid"), param(&params, "CallSid")) {
        (Some(sid), _) => (
            sid,
            param(&params, "MessageStatus").or(param(&params, "SmsStatus")),
        ),
        (None, Some(sid)) => (sid, param(&params, "CallStatus")),
        _ => {
            return Err(CallbackError::Malformed(
                "MessageSid/CallSid missing".into(),
            ));
        }
    };
    let status = status.ok_or_else(|| CallbackError::Malformed("status missing".into()))?;
    let code = param(&params, "ErrorCode").filter(|c| !c.is_empty());
    let mapped = match status {
        "accepted" | "scheduled" | "queued" | "sending" | "sent" | "initiated" | "ringing"
        | "in-progress" | "receiving" | "received" => ProviderStatus::InProgress,
        "delivered" | "read" | "completed" => ProviderStatus::Delivered,
        "undelivered" | "failed" | "busy" | "no-answer" | "canceled" => ProviderStatus::Failed {
            reason: match code {
                Some(c) => format!("{status} ({c})"),
                None => status.to_string(),
            },
        },
        other => {
            return Err(CallbackError::Malformed(format!(
                "unknown status {}",
                other.chars().take(20).collect::<String>()
            )));
        }
    };
    Ok(StatusCallback {
        sid: sid.to_string(),
        status: mapped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Twilio's published example (twilio.com/docs/usage/security), both the
    /// current and the older revision of the page.
    #[test]
    fn twilio_published_signature_examples() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        for (caller, sig) in [
            ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
            ("+12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        ] {
            let p = pairs(&[
                ("CallSid", "CA1234567890ABCDE"),
                ("Caller", caller),
                ("Digits", "1234"),
                ("From", caller),
                ("To", "+18005551212"),
            ]);
            assert_eq!(expected_signature(url, &p, b"12345"), sig);
        }
    }

    #[test]
    fn sms_commands() {
        assert_eq!(
            parse_sms_command("ACK 123").unwrap(),
            (IncidentAction::Acknowledge, 123)
        );
        assert_eq!(
            parse_sms_command(" resolve #7 ").unwrap(),
            (IncidentAction::Resolve, 7)
        );
        assert!(matches!(
            parse_sms_command("hello"),
            Err(CallbackError::UnknownCommand(_))
        ));
        assert!(matches!(
            parse_sms_command("ack"),
            Err(CallbackError::Malformed(_))
        ));
    }

    #[test]
    fn e164() {
        assert!(is_e164("+15551230000"));
        assert!(!is_e164("15551230000"));
        assert!(!is_e164("+1555abc0000"));
    }
}
