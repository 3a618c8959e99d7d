//! AWS CloudWatch alarms delivered by Amazon SNS (HTTP/S subscription).
//!
//! The body is the SNS envelope. A `Notification` carries the alarm JSON as a string
//! in `Message`; `NewStateValue` `ALARM` → firing, `OK` → resolved,
//! `INSUFFICIENT_DATA` → per `insufficient_data` (default: firing at `warning`). The
//! dedup key is the `AlarmArn`, so the `OK` notification resolves the `ALARM` one.
//!
//! `SubscriptionConfirmation` and `UnsubscribeConfirmation` carry no alarm:
//! `parse` returns `ProviderError::NothingToIngest` whose message names the topic and
//! the `SubscribeURL` the operator must visit; [`CloudWatchProvider::confirm_subscription`]
//! confirms it through an injected [`SubscriptionConfirmer`] instead.
//!
//! `verify` checks the SNS signature (see [`super::sns`]) with a certificate from
//! `options.certificates` or the shared [`CertificateCache`] that is within its validity
//! period at `now` (else `Unauthorized`), the `SigningCertURL` host,
//! the topic allow-list `topic_arns`, and that `Timestamp` is within
//! `replay_window_secs` (default 3600, SNS's longest default retry span) of now.

use std::borrow::Cow;
use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use signalcraft_core::model::{Alert, AlertStatus, Event, Labels, Link, RawPayload, Severity};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, first_line, parse_timestamp, put_label};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::signature::{bad_signature, check_window, malformed_header};
use super::sns::{
    CertificateCache, SigningKey, SnsEnvelope, arn_region, check_signing_cert_url,
    check_subscribe_url, decode_signature,
};

const TYPE: &str = "cloudwatch";

/// What an `INSUFFICIENT_DATA` alarm state becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsufficientData {
    /// A firing alert at `warning` severity.
    Firing,
    /// Resolves the alarm's alert.
    Resolved,
    /// No event.
    Ignore,
}

/// Options of a `cloudwatch` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudWatchConfig {
    /// Signing certificates by `SigningCertURL` (PEM text), used before the cache.
    pub certificates: BTreeMap<String, String>,
    /// Accepted `TopicArn`s; empty accepts any topic (anyone can create an SNS topic,
    /// so set this in production).
    pub topic_arns: Vec<String>,
    /// What `INSUFFICIENT_DATA` becomes. Default `firing`.
    pub insufficient_data: InsufficientData,
    /// Severity of `ALARM` states. Default `error`.
    pub alarm_severity: Severity,
    /// Accepted age of the signed `Timestamp`, seconds. Default 3600.
    pub replay_window_secs: u32,
}

impl Default for CloudWatchConfig {
    fn default() -> Self {
        CloudWatchConfig {
            certificates: BTreeMap::new(),
            topic_arns: Vec::new(),
            insufficient_data: InsufficientData::Firing,
            alarm_severity: Severity::Error,
            replay_window_secs: 3600,
        }
    }
}

/// The CloudWatch alarm state-change JSON inside `Message` (text borrowed from the
/// unescaped message; fields the event does not use are skipped).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Alarm<'m> {
    #[serde(borrow)]
    alarm_name: Cow<'m, str>,
    #[serde(default)]
    alarm_description: Option<String>,
    #[serde(default, rename = "AWSAccountId", borrow)]
    aws_account_id: Option<Cow<'m, str>>,
    #[serde(borrow)]
    new_state_value: Cow<'m, str>,
    #[serde(default)]
    new_state_reason: Option<String>,
    #[serde(default, borrow)]
    state_change_time: Option<Cow<'m, str>>,
    #[serde(default, borrow)]
    region: Option<Cow<'m, str>>,
    #[serde(default, borrow)]
    alarm_arn: Option<Cow<'m, str>>,
    #[serde(default, borrow)]
    old_state_value: Option<Cow<'m, str>>,
    #[serde(default, borrow)]
    trigger: Option<Trigger<'m>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Trigger<'m> {
    #[serde(default, borrow)]
    metric_name: Option<Cow<'m, str>>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'m, str>>,
    #[serde(default, borrow)]
    dimensions: Vec<Dimension<'m>>,
}

#[derive(Debug, Deserialize)]
struct Dimension<'m> {
    #[serde(alias = "Name", borrow)]
    name: Cow<'m, str>,
    #[serde(alias = "Value", borrow)]
    value: Cow<'m, str>,
}

/// A subscription (or unsubscription) the operator may confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRequest {
    /// `SubscriptionConfirmation` or `UnsubscribeConfirmation`.
    pub kind: String,
    /// The topic.
    pub topic_arn: String,
    /// The URL that confirms the subscription (already checked to be an SNS endpoint).
    pub subscribe_url: String,
}

/// Performs the HTTP GET on a `SubscribeURL`. Injected so the library does no I/O and
/// tests need no AWS.
pub trait SubscriptionConfirmer: Send + Sync {
    /// GETs `subscribe_url`; `Err` carries a message for the operator.
    fn confirm(&self, subscribe_url: &str) -> Result<(), String>;
}

/// A `cloudwatch` provider.
#[derive(Debug)]
pub struct CloudWatchProvider {
    common: Common,
    config: CloudWatchConfig,
    configured_keys: BTreeMap<String, SigningKey>,
    cache: CertificateCache,
    verification: Verification,
}

impl CloudWatchProvider {
    fn envelope<'b>(&self, req: &'b InboundRequest) -> Result<SnsEnvelope<'b>, ProviderError> {
        self.common.decode(&req.body)
    }

    /// The `SigningCertURL` of a request if its certificate is neither configured nor
    /// cached — what a fetcher should download (the host is already checked).
    pub fn certificate_to_fetch(
        &self,
        req: &InboundRequest,
    ) -> Result<Option<String>, ProviderError> {
        let env = self.envelope(req)?;
        let url = self.cert_url(&env)?;
        let known = self.configured_keys.contains_key(&url) || self.cache.get(&url).is_some();
        Ok((!known).then_some(url))
    }

    fn cert_url(&self, env: &SnsEnvelope) -> Result<String, ProviderError> {
        let url = env
            .signing_cert_url
            .as_deref()
            .map(str::to_string)
            .ok_or_else(|| ProviderError::MissingHeader {
                provider: TYPE.into(),
                header: "SigningCertURL".into(),
            })?;
        let region = check_signing_cert_url(&url)
            .map_err(|m| malformed_header(TYPE, "SigningCertURL", m))?;
        if arn_region(&env.topic_arn) != Some(region.as_str()) {
            return Err(malformed_header(
                TYPE,
                "SigningCertURL",
                "certificate region does not match the TopicArn region",
            ));
        }
        Ok(url)
    }

    /// Returns the subscription request carried by `req`, if it is one.
    pub fn subscription_request(
        &self,
        req: &InboundRequest,
    ) -> Result<Option<SubscriptionRequest>, ProviderError> {
        let env = self.envelope(req)?;
        self.subscription_of(&env)
    }

    fn subscription_of(
        &self,
        env: &SnsEnvelope,
    ) -> Result<Option<SubscriptionRequest>, ProviderError> {
        if env.kind != "SubscriptionConfirmation" && env.kind != "UnsubscribeConfirmation" {
            return Ok(None);
        }
        let url = env
            .subscribe_url
            .as_deref()
            .map(str::to_string)
            .ok_or_else(|| self.common.malformed("$.SubscribeURL", "missing"))?;
        check_subscribe_url(&url).map_err(|m| self.common.malformed("$.SubscribeURL", m))?;
        Ok(Some(SubscriptionRequest {
            kind: env.kind.to_string(),
            topic_arn: env.topic_arn.to_string(),
            subscribe_url: url,
        }))
    }

    /// Verifies `req` (signature, topic, replay window) and, if it is a
    /// `SubscriptionConfirmation`, confirms it through `confirmer`. Returns what was
    /// confirmed, or `None` when `req` is not a subscription confirmation.
    pub fn confirm_subscription(
        &self,
        req: &InboundRequest,
        now: Timestamp,
        confirmer: &dyn SubscriptionConfirmer,
    ) -> Result<Option<SubscriptionRequest>, ProviderError> {
        self.verify(req, now)?;
        let env = self.envelope(req)?;
        match self.subscription_of(&env)? {
            Some(s) if s.kind == "SubscriptionConfirmation" => {
                confirmer.confirm(&s.subscribe_url).map_err(|m| {
                    ProviderError::NothingToIngest {
                        provider: TYPE.into(),
                        message: format!(
                            "confirming the subscription to {} failed: {m}",
                            s.topic_arn
                        ),
                    }
                })?;
                Ok(Some(s))
            }
            _ => Ok(None),
        }
    }

    /// Why `message` is not CloudWatch alarm JSON, worded as before raw payloads
    /// became slices: with raw payloads kept a syntax error is reported as a whole and
    /// type errors carry no position; without, type errors carry the position.
    fn alarm_error(&self, message: &str) -> ProviderError {
        let not_alarm = |e: &dyn std::fmt::Display| {
            self.common
                .malformed("$.Message", format!("not CloudWatch alarm JSON: {e}"))
        };
        if self.common.keep_raw
            && let Err(e) = serde_json::from_str::<serde_json::Value>(message)
        {
            return not_alarm(&e);
        }
        let mut de = serde_json::Deserializer::from_str(message);
        match serde_path_to_error::deserialize::<_, Alarm>(&mut de) {
            Err(e) if self.common.keep_raw || e.inner().is_data() => {
                let path = format!("$.Message.{}", e.path());
                let inner = e.into_inner();
                let text = inner.to_string();
                let text = match text.rfind(" at line ") {
                    Some(i) if self.common.keep_raw && inner.line() > 0 => text[..i].to_string(),
                    _ => text,
                };
                self.common.malformed(path, text)
            }
            Err(e) => not_alarm(e.inner()),
            Ok(_) => not_alarm(&"trailing characters"),
        }
    }

    /// The raw payload of a notification: `{"envelope": <body>, "alarm": <Message>}`.
    fn alarm_raw(&self, body: &[u8], message: &str) -> RawPayload {
        if !self.common.keep_raw {
            return RawPayload::null();
        }
        let Ok(body) = std::str::from_utf8(body) else {
            return RawPayload::null();
        };
        let mut text = String::with_capacity(body.len() + message.len() + 24);
        text.push_str("{\"envelope\":");
        text.push_str(body.trim());
        text.push_str(",\"alarm\":");
        text.push_str(message.trim());
        text.push('}');
        RawPayload::from_json(&text).unwrap_or_default()
    }

    fn alarm_event(
        &self,
        env: &SnsEnvelope<'_>,
        body: &[u8],
    ) -> Result<Option<Event>, ProviderError> {
        let message: &str = &env.message;
        let alarm: Alarm = match serde_json::from_str(message) {
            Ok(a) => a,
            Err(_) => return Err(self.alarm_error(message)),
        };
        let (status, severity) = match alarm.new_state_value.as_ref() {
            "ALARM" => (AlertStatus::Firing, self.config.alarm_severity),
            "OK" => (AlertStatus::Resolved, self.config.alarm_severity),
            "INSUFFICIENT_DATA" => match self.config.insufficient_data {
                InsufficientData::Firing => (AlertStatus::Firing, Severity::Warning),
                InsufficientData::Resolved => (AlertStatus::Resolved, self.config.alarm_severity),
                InsufficientData::Ignore => return Ok(None),
            },
            other => {
                return Err(self.common.malformed(
                    "$.Message.NewStateValue",
                    format!(
                        "unknown alarm state {other:?} (expected ALARM, OK or INSUFFICIENT_DATA)"
                    ),
                ));
            }
        };
        let mut labels = Labels::new();
        put_label(&mut labels, "alarm_name", &alarm.alarm_name);
        let region_code = alarm
            .alarm_arn
            .as_deref()
            .and_then(arn_region)
            .unwrap_or("");
        put_label(&mut labels, "region", region_code);
        put_label(
            &mut labels,
            "aws_account_id",
            alarm.aws_account_id.as_deref().unwrap_or(""),
        );
        let mut service = None;
        if let Some(t) = &alarm.trigger {
            put_label(
                &mut labels,
                "namespace",
                t.namespace.as_deref().unwrap_or(""),
            );
            put_label(
                &mut labels,
                "metric_name",
                t.metric_name.as_deref().unwrap_or(""),
            );
            for d in &t.dimensions {
                put_label(&mut labels, &format!("dimension_{}", d.name), &d.value);
                if d.name == "ServiceName" && !d.value.is_empty() {
                    service = Some(d.value.to_string());
                }
            }
        }
        let summary = env
            .subject
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| first_line(s, 512))
            .unwrap_or_else(|| format!("{}: {}", alarm.new_state_value, alarm.alarm_name));
        let mut annotations = BTreeMap::new();
        if let Some(d) = alarm.alarm_description.filter(|d| !d.is_empty()) {
            annotations.insert("description".to_string(), d);
        }
        if let Some(r) = alarm.new_state_reason.filter(|r| !r.is_empty()) {
            annotations.insert("reason".to_string(), r);
        }
        let mut links = Vec::new();
        if !region_code.is_empty() {
            let name: String =
                url::form_urlencoded::byte_serialize(alarm.alarm_name.as_bytes()).collect();
            links.push(Link {
                href: format!(
                    "https://console.aws.amazon.com/cloudwatch/home?region={region_code}#alarmsV2:alarm/{name}"
                ),
                text: Some("CloudWatch alarm".into()),
            });
        }
        let changed = alarm.state_change_time.as_deref().and_then(parse_timestamp);
        let dedup_key = alarm
            .alarm_arn
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "{}:{}:{}",
                    alarm.aws_account_id.as_deref().unwrap_or(""),
                    alarm.region.as_deref().unwrap_or(""),
                    alarm.alarm_name
                )
            });
        Ok(Some(Event::Alert(Alert {
            source: self.common.source.clone(),
            dedup_key: Some(dedup_key),
            status,
            severity,
            summary,
            details: serde_json::json!({
                "TopicArn": env.topic_arn,
                "MessageId": env.message_id,
                "NewStateValue": alarm.new_state_value,
                "OldStateValue": alarm.old_state_value,
                "Region": alarm.region,
            }),
            labels,
            annotations,
            links,
            images: Vec::new(),
            starts_at: if status == AlertStatus::Firing {
                changed
            } else {
                None
            },
            ends_at: if status == AlertStatus::Resolved {
                changed
            } else {
                None
            },
            service,
            raw: self.alarm_raw(body, message),
        })))
    }
}

impl Provider for CloudWatchProvider {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn verify(&self, req: &InboundRequest, now: Timestamp) -> Result<(), ProviderError> {
        if self.verification == Verification::Skip {
            return Ok(());
        }
        let env = self.envelope(req)?;
        let version =
            env.signature_version
                .as_deref()
                .ok_or_else(|| ProviderError::MissingHeader {
                    provider: TYPE.into(),
                    header: "SignatureVersion".into(),
                })?;
        if version != "1" && version != "2" {
            return Err(malformed_header(
                TYPE,
                "SignatureVersion",
                format!("unsupported version {version:?}"),
            ));
        }
        let sig_b64 = env
            .signature
            .as_deref()
            .ok_or_else(|| ProviderError::MissingHeader {
                provider: TYPE.into(),
                header: "Signature".into(),
            })?;
        let signature = decode_signature(sig_b64)
            .ok_or_else(|| malformed_header(TYPE, "Signature", "not base64"))?;
        let url = self.cert_url(&env)?;
        let key = self
            .configured_keys
            .get(&url)
            .cloned()
            .or_else(|| self.cache.get(&url))
            .ok_or_else(|| ProviderError::CertificateUnavailable {
                provider: TYPE.into(),
                url: url.clone(),
            })?;
        // A certificate outside its validity period signs nothing (checked at the
        // caller's clock, which the replay window below ties to the message time).
        key.check_valid_at(now)
            .map_err(|e| ProviderError::Unauthorized {
                provider: TYPE.into(),
                message: format!("{url}: {e}"),
            })?;
        let to_sign = env.string_to_sign().ok_or_else(|| {
            self.common
                .malformed("$.Type", format!("unknown SNS message type {:?}", env.kind))
        })?;
        key.verify(version, to_sign.as_bytes(), &signature)
            .map_err(|_| bad_signature(TYPE))?;
        if !self.config.topic_arns.is_empty()
            && !self.config.topic_arns.iter().any(|t| *t == env.topic_arn)
        {
            return Err(ProviderError::Unauthorized {
                provider: TYPE.into(),
                message: format!("topic {} is not in options.topic_arns", env.topic_arn),
            });
        }
        let sent = parse_timestamp(&env.timestamp)
            .ok_or_else(|| malformed_header(TYPE, "Timestamp", "not an ISO 8601 time"))?;
        check_window(
            TYPE,
            sent,
            now,
            SignedDuration::from_secs(i64::from(self.config.replay_window_secs)),
        )
    }

    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let env = self.envelope(req)?;
        match env.kind.as_ref() {
            "Notification" => Ok(self.alarm_event(&env, &req.body)?.into_iter().collect()),
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let s = self
                    .subscription_of(&env)?
                    .ok_or_else(|| self.common.malformed("$.Type", "not a subscription"))?;
                Err(ProviderError::NothingToIngest {
                    provider: TYPE.into(),
                    message: format!(
                        "{} for topic {}: to confirm, GET {}",
                        s.kind, s.topic_arn, s.subscribe_url
                    ),
                })
            }
            other => Err(self
                .common
                .malformed("$.Type", format!("unknown SNS message type {other:?}"))),
        }
    }
}

/// The `cloudwatch` source type. Every provider it builds shares its certificate cache.
#[derive(Debug, Clone, Default)]
pub struct CloudWatchType {
    cache: CertificateCache,
}

impl CloudWatchType {
    /// A source type whose providers use `cache` (fill it after fetching certificates).
    pub fn with_cache(cache: CertificateCache) -> Self {
        CloudWatchType { cache }
    }

    /// The shared certificate cache.
    pub fn cache(&self) -> &CertificateCache {
        &self.cache
    }

    /// Builds the concrete provider (for callers that need `confirm_subscription`).
    pub fn build_provider(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<CloudWatchProvider, ProviderError> {
        let config: CloudWatchConfig = integration.options_as(TYPE)?;
        integration.check_secrets(TYPE, &[], &[])?;
        let invalid = |field: String, message: String| ProviderError::InvalidConfig {
            provider: TYPE.into(),
            field,
            message,
        };
        let mut configured_keys = BTreeMap::new();
        for (url, pem) in &config.certificates {
            check_signing_cert_url(url)
                .map_err(|m| invalid(format!("options.certificates.{url}"), m))?;
            let key = SigningKey::from_pem(pem)
                .map_err(|m| invalid(format!("options.certificates.{url}"), m))?;
            configured_keys.insert(url.clone(), key);
        }
        for (i, arn) in config.topic_arns.iter().enumerate() {
            if !arn.starts_with("arn:") || arn.split(':').count() < 6 {
                return Err(invalid(
                    format!("options.topic_arns[{i}]"),
                    "not an SNS topic ARN".into(),
                ));
            }
        }
        if config.replay_window_secs == 0 {
            return Err(invalid(
                "options.replay_window_secs".into(),
                "must be positive".into(),
            ));
        }
        Ok(CloudWatchProvider {
            common: Common::new(TYPE, integration),
            config,
            configured_keys,
            cache: self.cache.clone(),
            verification,
        })
    }
}

impl SourceType for CloudWatchType {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&[], &[])
    }

    fn primary_secret(&self) -> Option<&'static str> {
        None
    }

    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        Ok(Box::new(self.build_provider(integration, verification)?))
    }
}
