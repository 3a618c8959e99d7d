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
use signalcraft_core::model::{
    Alert, AlertStatus, Annotations, Event, LabelsBuilder, Link, RawPayload, Severity,
};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, first_line_of, parse_timestamp, push_label};
use super::fast_json::{Nested, Plain, Seen};
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
    #[serde(
        default,
        rename = "AWSAccountId",
        borrow,
        deserialize_with = "super::decode::opt_str"
    )]
    aws_account_id: Option<Cow<'m, str>>,
    #[serde(borrow)]
    new_state_value: Cow<'m, str>,
    #[serde(default)]
    new_state_reason: Option<String>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    state_change_time: Option<Cow<'m, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    region: Option<Cow<'m, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    alarm_arn: Option<Cow<'m, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    old_state_value: Option<Cow<'m, str>>,
    #[serde(default, borrow)]
    trigger: Option<Trigger<'m>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Trigger<'m> {
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    metric_name: Option<Cow<'m, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
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

impl<'m> Alarm<'m> {
    /// The alarm read straight from the envelope's `Message` string literal (one pass,
    /// no unescaped copy; see [`Nested`]). `None` wherever the general route (unescape,
    /// then `serde_json`) must decide, which then gives the same alarm or the error it
    /// always gave: this answers only where that route would give this same alarm.
    #[cfg(test)]
    fn from_literal(literal: &'m str) -> Option<Self> {
        let mut r = Nested::of_literal(literal)?;
        let alarm = Alarm::read(&mut r)?;
        r.at_end().then_some(alarm)
    }

    /// The alarm object `r` is at (see [`Alarm::from_literal`]).
    fn read(r: &mut Nested<'m>) -> Option<Self> {
        let mut seen = Seen::default();
        let mut alarm_name = None;
        let mut alarm_description = None;
        let mut aws_account_id = None;
        let mut new_state_value = None;
        let mut new_state_reason = None;
        let mut state_change_time = None;
        let mut region = None;
        let mut alarm_arn = None;
        let mut old_state_value = None;
        let mut trigger = None;
        r.object(|r, key| {
            match key.as_ref() {
                "AlarmName" => alarm_name = Some(seen.once(0, r.string())?),
                "AlarmDescription" => {
                    alarm_description = seen.once(1, r.opt_string())?.map(Cow::into_owned)
                }
                "AWSAccountId" => aws_account_id = seen.once(2, r.opt_string())?,
                "NewStateValue" => new_state_value = Some(seen.once(3, r.string())?),
                "NewStateReason" => {
                    new_state_reason = seen.once(4, r.opt_string())?.map(Cow::into_owned)
                }
                "StateChangeTime" => state_change_time = seen.once(5, r.opt_string())?,
                "Region" => region = seen.once(6, r.opt_string())?,
                "AlarmArn" => alarm_arn = seen.once(7, r.opt_string())?,
                "OldStateValue" => old_state_value = seen.once(8, r.opt_string())?,
                "Trigger" => {
                    let t = if r.null()? {
                        None
                    } else {
                        Some(Trigger::from_nested(r)?)
                    };
                    trigger = seen.once(9, Some(t))?;
                }
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        Some(Alarm {
            alarm_name: alarm_name?,
            alarm_description,
            aws_account_id,
            new_state_value: new_state_value?,
            new_state_reason,
            state_change_time,
            region,
            alarm_arn,
            old_state_value,
            trigger,
        })
    }
}

impl<'m> Trigger<'m> {
    fn from_nested(r: &mut Nested<'m>) -> Option<Self> {
        let mut seen = Seen::default();
        let mut t = Trigger {
            metric_name: None,
            namespace: None,
            dimensions: Vec::new(),
        };
        r.object(|r, key| {
            match key.as_ref() {
                "MetricName" => t.metric_name = seen.once(0, r.opt_string())?,
                "Namespace" => t.namespace = seen.once(1, r.opt_string())?,
                "Dimensions" => {
                    let mut dims = Vec::new();
                    r.array(|r| {
                        dims.push(Dimension::from_nested(r)?);
                        Some(())
                    })?;
                    t.dimensions = seen.once(2, Some(dims))?;
                }
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        Some(t)
    }
}

impl<'m> Dimension<'m> {
    fn from_nested(r: &mut Nested<'m>) -> Option<Self> {
        let mut seen = Seen::default();
        let (mut name, mut value) = (None, None);
        r.object(|r, key| {
            match key.as_ref() {
                "name" | "Name" => name = Some(seen.once(0, r.string())?),
                "value" | "Value" => value = Some(seen.once(1, r.string())?),
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        Some(Dimension {
            name: name?,
            value: value?,
        })
    }
}

/// A `Notification` read in one pass: the envelope, whose `Message` is the alarm read
/// straight from the string literal. `None` wherever
/// the general route (`serde_json` into [`SnsEnvelope`], then the alarm from the
/// unescaped `Message`) must decide; where this answers, that route gives the same.
fn read_notification(text: &str) -> Option<SnsEnvelope<'_, Alarm<'_>>> {
    let mut r = Plain::new(text);
    let mut seen = Seen::default();
    let (mut kind, mut message_id, mut topic_arn, mut timestamp) = (None, None, None, None);
    let (mut subject, mut signature_version, mut signature) = (None, None, None);
    let (mut signing_cert_url, mut subscribe_url, mut token) = (None, None, None);
    let mut unsubscribe_url = None;
    let mut message = None;
    r.object(|r, key| {
        match key.as_ref() {
            "Type" => kind = Some(seen.once(0, r.string())?),
            "MessageId" => message_id = Some(seen.once(1, r.string())?),
            "TopicArn" => topic_arn = Some(seen.once(2, r.string())?),
            "Subject" => subject = seen.once(3, r.opt_string())?,
            "Message" => {
                let mut inner = r.nested()?;
                let alarm = Alarm::read(&mut inner)?;
                r.resume(inner)?;
                message = Some(seen.once(4, Some(alarm))?);
            }
            "Timestamp" => timestamp = Some(seen.once(5, r.string())?),
            "SignatureVersion" => signature_version = seen.once(6, r.opt_string())?,
            "Signature" => signature = seen.once(7, r.opt_string())?,
            "SigningCertURL" => signing_cert_url = seen.once(8, r.opt_string())?,
            "SubscribeURL" => subscribe_url = seen.once(9, r.opt_string())?,
            "Token" => token = seen.once(10, r.opt_string())?,
            "UnsubscribeURL" => unsubscribe_url = seen.once(11, r.opt_string())?,
            // Other fields: strings and nulls only here (serde skips any value).
            _ => drop(r.opt_string()?),
        }
        Some(())
    })?;
    if !r.at_end() {
        return None;
    }
    let alarm = message?;
    let env = SnsEnvelope {
        kind: kind?,
        message_id: message_id?,
        topic_arn: topic_arn?,
        subject,
        message: alarm,
        timestamp: timestamp?,
        signature_version,
        signature,
        signing_cert_url,
        subscribe_url,
        token,
        unsubscribe_url,
    };
    Some(env)
}

/// The envelope fields an alarm event carries.
struct Notice<'e> {
    topic_arn: &'e str,
    message_id: &'e str,
    subject: Option<Cow<'e, str>>,
}

impl<'e, M> From<&'e SnsEnvelope<'_, M>> for Notice<'e> {
    fn from(env: &'e SnsEnvelope<'_, M>) -> Self {
        Notice {
            topic_arn: &env.topic_arn,
            message_id: &env.message_id,
            subject: env.subject.as_deref().map(Cow::Borrowed),
        }
    }
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

    /// The event of a notification whose Message was read as `alarm`; `raw` gives its
    /// raw payload (the envelope as received), only called for an event.
    fn alarm_event(
        &self,
        env: Notice<'_>,
        alarm: Alarm<'_>,
        raw: impl FnOnce() -> RawPayload,
    ) -> Result<Option<Event>, ProviderError> {
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
        let mut labels = LabelsBuilder::with_capacity(8);
        push_label(&mut labels, "alarm_name", &alarm.alarm_name);
        let region_code = alarm
            .alarm_arn
            .as_deref()
            .and_then(arn_region)
            .unwrap_or("");
        push_label(&mut labels, "region", region_code);
        push_label(
            &mut labels,
            "aws_account_id",
            alarm.aws_account_id.as_deref().unwrap_or(""),
        );
        let mut service = None;
        if let Some(t) = &alarm.trigger {
            push_label(
                &mut labels,
                "namespace",
                t.namespace.as_deref().unwrap_or(""),
            );
            push_label(
                &mut labels,
                "metric_name",
                t.metric_name.as_deref().unwrap_or(""),
            );
            for d in &t.dimensions {
                if d.value.is_empty() {
                    continue;
                }
                let mut name = String::with_capacity("dimension_".len() + d.name.len());
                name.push_str("dimension_");
                name.push_str(&d.name);
                labels.push(name, &*d.value);
                if d.name == "ServiceName" {
                    service = Some(d.value.to_string());
                }
            }
        }
        let summary = env
            .subject
            .filter(|s| !s.is_empty())
            .map(|s| first_line_of(s, 512))
            .unwrap_or_else(|| format!("{}: {}", alarm.new_state_value, alarm.alarm_name));
        let description = alarm.alarm_description.filter(|d| !d.is_empty());
        let reason = alarm.new_state_reason.filter(|r| !r.is_empty());
        let annotations: Annotations = [("description", description), ("reason", reason)]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        let mut links = Vec::new();
        if !region_code.is_empty() {
            const CONSOLE: &str = "https://console.aws.amazon.com/cloudwatch/home?region=";
            const ALARM: &str = "#alarmsV2:alarm/";
            let mut href = String::with_capacity(
                CONSOLE.len() + region_code.len() + ALARM.len() + alarm.alarm_name.len() + 8,
            );
            href.push_str(CONSOLE);
            href.push_str(region_code);
            href.push_str(ALARM);
            href.extend(url::form_urlencoded::byte_serialize(
                alarm.alarm_name.as_bytes(),
            ));
            links.push(Link {
                href,
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
            details: {
                // Built directly (the keys and values `json!` gave, nulls included).
                let text = |v: &str| serde_json::Value::String(v.to_string());
                let opt = |v: Option<&str>| v.map_or(serde_json::Value::Null, text);
                let mut d = serde_json::Map::new();
                d.insert("TopicArn".into(), text(env.topic_arn));
                d.insert("MessageId".into(), text(env.message_id));
                d.insert("NewStateValue".into(), text(&alarm.new_state_value));
                d.insert(
                    "OldStateValue".into(),
                    opt(alarm.old_state_value.as_deref()),
                );
                d.insert("Region".into(), opt(alarm.region.as_deref()));
                serde_json::Value::Object(d)
            },
            labels: labels.build(),
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
            raw: raw(),
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
        self.common.check_size(&req.body)?;
        // One pass for the everyday notification: the Message stays the string literal
        // as sent and the alarm is read from it directly. Anything else (or anything
        // the one-pass reader declines) takes the general route below, whose results
        // and errors are the reference.
        if let Ok(text) = std::str::from_utf8(&req.body)
            && let Some(env) = read_notification(text)
            && env.kind == "Notification"
        {
            let notice = Notice {
                topic_arn: &env.topic_arn,
                message_id: &env.message_id,
                subject: env.subject,
            };
            // SAFETY: `read_notification` read the whole text and declines whatever is
            // not valid JSON.
            let raw = || unsafe { self.common.raw_text(text) };
            let event = self.alarm_event(notice, env.message, raw)?;
            return Ok(event.into_iter().collect());
        }
        self.parse_general(req)
    }
}

impl CloudWatchProvider {
    /// `parse` by the general route: the envelope through `serde_json` (Message
    /// unescaped), then the alarm from the unescaped text.
    fn parse_general(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let env = self.envelope(req)?;
        match env.kind.as_ref() {
            "Notification" => {
                let message: &str = &env.message;
                let alarm: Alarm = match serde_json::from_str(message) {
                    Ok(a) => a,
                    Err(_) => return Err(self.alarm_error(message)),
                };
                // SAFETY: `envelope` decoded the whole body with serde_json, which
                // accepts only one valid JSON value.
                let raw = || unsafe { self.common.raw_body(&req.body) };
                let event = self.alarm_event(Notice::from(&env), alarm, raw)?;
                Ok(event.into_iter().collect())
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::route_check::{assert_routes_agree, fixture_bodies, mutated_fixture};
    use proptest::prelude::*;

    /// The one-pass alarm of `alarm_json` (written as the Message string literal), after
    /// checking that wherever it answers, `serde_json` on the unescaped text gives the
    /// same alarm.
    fn one_pass(alarm_json: &str) -> Option<String> {
        let literal = serde_json::to_string(alarm_json).unwrap();
        let fast = Alarm::from_literal(&literal).map(|a| format!("{a:?}"));
        let general = serde_json::from_str::<Alarm>(alarm_json)
            .ok()
            .map(|a| format!("{a:?}"));
        if let Some(f) = &fast {
            assert_eq!(Some(f), general.as_ref(), "{alarm_json}");
        }
        fast
    }

    fn fixture_message(case: &str) -> String {
        let path = format!(
            "{}/../fixtures/cloudwatch/{case}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let env: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        env["Message"].as_str().unwrap().to_string()
    }

    #[test]
    fn fixtures_take_the_one_pass_route() {
        for case in ["alarm_firing", "alarm_ok", "insufficient_data"] {
            let message = fixture_message(case);
            assert!(one_pass(&message).is_some(), "{case}");
        }
    }

    #[test]
    fn one_pass_declines_what_serde_refuses() {
        for bad in [
            r#"{"AlarmName": "a", "NewStateValue": "OK", "AlarmName": "b"}"#,
            r#"{"NewStateValue": "OK"}"#,
            r#"{"AlarmName": null, "NewStateValue": "OK"}"#,
            r#"{"AlarmName": 5, "NewStateValue": "OK"}"#,
            r#"{"AlarmName": "a", "NewStateValue": "OK", "Trigger": {"Dimensions": null}}"#,
            r#"{"AlarmName": "a", "NewStateValue": "OK", "Trigger": {"Dimensions": [{"name": "x", "Name": "y", "value": "v"}]}}"#,
            r#"{"AlarmName": "a", "NewStateValue": "OK", "Trigger": {"Dimensions": [{"name": "x"}]}}"#,
            r#"{"AlarmName": "a", "NewStateValue": "OK", "Region": null, "Region": null}"#,
            r#"["a", "b"]"#,
            r#"{"AlarmName": "a", "NewStateValue": "OK"} x"#,
        ] {
            assert!(one_pass(bad).is_none(), "{bad}");
            assert!(serde_json::from_str::<Alarm>(bad).is_err(), "{bad}");
        }
        // serde reads a struct from an array too; the one-pass reader leaves that to it.
        let seq = r#"{"AlarmName": "a", "NewStateValue": "OK", "Trigger": []}"#;
        assert!(one_pass(seq).is_none());
        assert!(serde_json::from_str::<Alarm>(seq).is_ok());
        // Escapes at both levels, unknown fields of every kind, nulls.
        let ok = r#"{"AlarmName": "say \"hi\"\\/x", "Unknown": {"a": [1, 2.5e-3, true, null]},
            "NewStateValue": "ALARM", "AlarmDescription": null, "Region": "EU (Ireland)",
            "Trigger": {"Dimensions": [{"Name": "ServiceName", "Value": "api"}], "Period": 60}}"#;
        assert!(one_pass(ok).is_some());
    }

    fn provider(keep_raw: bool) -> CloudWatchProvider {
        let mut i = Integration::new(TYPE, "aws-prod");
        i.keep_raw = keep_raw;
        CloudWatchType::default()
            .build_provider(&i, Verification::Skip)
            .unwrap()
    }

    fn request(body: Vec<u8>) -> InboundRequest {
        InboundRequest {
            headers: Vec::new(),
            body,
            url: None,
            received_at: None,
        }
    }

    /// `parse` (one pass where it can) and the general route agree on `body`, results
    /// and errors alike, with and without raw payloads.
    fn routes_agree(body: &[u8]) {
        for keep_raw in [false, true] {
            let p = provider(keep_raw);
            let req = request(body.to_vec());
            assert_routes_agree(p.parse(&req), p.parse_general(&req), body);
        }
    }

    #[test]
    fn notifications_take_the_one_pass_route_and_agree_with_the_general_one() {
        let mut one_pass = Vec::new();
        for (name, body) in fixture_bodies("cloudwatch") {
            routes_agree(&body);
            let text = std::str::from_utf8(&body).unwrap();
            if read_notification(text).is_some() {
                one_pass.push(name);
            }
        }
        // The alarm state is checked after reading, on both routes alike.
        let want = [
            "alarm_firing",
            "alarm_ok",
            "insufficient_data",
            "malformed_unknown_state",
        ];
        assert_eq!(one_pass, want);
    }

    proptest! {
        #[test]
        fn routes_agree_on_mutated_envelopes(
            case in 0usize..9,
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), prop_oneof![
                    Just(b'"'), Just(b'\\'), Just(b','), Just(b'}'), Just(b'{'), Just(b':'),
                    Just(b'n'), Just(b'1'), Just(b' '), Just(b'\n'), Just(b'u'), Just(b'/'),
                ]),
                1..3,
            ),
        ) {
            let body = mutated_fixture("cloudwatch", case, edits);
            routes_agree(&body);
        }
    }

    fn field() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("AlarmName"),
            Just("AlarmDescription"),
            Just("AWSAccountId"),
            Just("NewStateValue"),
            Just("NewStateReason"),
            Just("StateChangeTime"),
            Just("Region"),
            Just("AlarmArn"),
            Just("OldStateValue"),
            Just("Trigger"),
            Just("Period"),
            Just("OKActions"),
        ];
        let text = "[a-z \"\\\\/\n\té]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap());
        let dimension = (text.clone(), text.clone(), any::<bool>()).prop_map(|(n, v, upper)| {
            if upper {
                format!(r#"{{"Name": {n}, "Value": {v}}}"#)
            } else {
                format!(r#"{{"value": {v}, "name": {n}}}"#)
            }
        });
        let trigger = (
            proptest::option::of(text.clone()),
            proptest::collection::vec(dimension, 0..3),
        )
            .prop_map(|(m, d)| {
                let metric = m
                    .map(|m| format!(r#""MetricName": {m}, "#))
                    .unwrap_or_default();
                format!(
                    r#"{{{metric}"Period": 60, "Dimensions": [{}]}}"#,
                    d.join(", ")
                )
            });
        let value = prop_oneof![
            text,
            Just("null".to_string()),
            Just("12.5".to_string()),
            Just(r#"["arn:a", {"x": [true, false]}]"#.to_string()),
            trigger,
        ];
        (key, value).prop_map(|(k, v)| format!("\"{k}\": {v}"))
    }

    proptest! {
        #[test]
        fn one_pass_agrees_with_serde_on_generated_alarms(
            fields in proptest::collection::vec(field(), 0..12),
            pretty in any::<bool>(),
        ) {
            let sep = if pretty { ",\n  " } else { ", " };
            let json = format!(
                r#"{{"AlarmName": "n", "NewStateValue": "OK"{}{}}}"#,
                if fields.is_empty() { "" } else { sep },
                fields.join(sep)
            );
            one_pass(&json);
        }

        #[test]
        fn one_pass_agrees_with_serde_on_mutated_fixtures(
            case in prop_oneof![Just("alarm_firing"), Just("alarm_ok"), Just("insufficient_data")],
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![Just(b'"'), Just(b'\\'), Just(b','), Just(b'}'), Just(b'n'), Just(b'1'), Just(b' ')],
        ) {
            let mut m = fixture_message(case).into_bytes();
            let i = at.index(m.len());
            m[i] = byte;
            if let Ok(m) = String::from_utf8(m) {
                one_pass(&m);
            }
        }
    }
}
