//! PagerDuty Events API v2 compatible endpoint — so any tool that can page PagerDuty
//! can page SignalCraft unchanged.
//!
//! * `event_action: trigger` → a firing alert. `payload.summary`, `payload.source` and
//!   `payload.severity` (`critical`/`error`/`warning`/`info`) are required, as in
//!   PagerDuty. `dedup_key` is the alert identity; **without one** PagerDuty opens a new
//!   alert, and so do we: the key becomes `sc-` + the first 32 hex digits of
//!   SHA-256(body). It is derived from the bytes (not random) so `parse` stays
//!   deterministic; a byte-identical retry therefore lands on the same alert, which is
//!   what a retry should do.
//! * `acknowledge` / `resolve` → [`Event::Action`] addressed by the required
//!   `dedup_key`. Dedup keys are scoped to the integration (the routing key), so an
//!   action through another routing key never touches this integration's alerts. What
//!   happens after a resolve (a new trigger opens a new alert) is the engine's rule.
//! * Change events (posted to a URL ending in `/v2/change/enqueue`, or any body
//!   without `event_action`; `payload.summary` required) →
//!   [`Event::Change`] at `payload.timestamp` (or the receive time). The service hint is
//!   `payload.source`; `custom_details.repository`/`repository_url` fill `repository`.
//!
//! Authentication: the body's `routing_key` must equal the secret `routing_key`
//! (constant time) — it is PagerDuty's integration key.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use signalcraft_core::model::{
    ActionEvent, ActionKind, Alert, AlertStatus, ChangeEvent, Event, Image, Labels, Link,
    RawPayload, Severity,
};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, first_line, parse_timestamp, put_label};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::secret::Secret;
use super::signature::ct_eq;

const TYPE: &str = "pagerduty";

/// Options of a `pagerduty` integration (none today; unknown keys are refused).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {}

#[derive(Debug, Deserialize)]
struct PdEvent<'a> {
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    event_action: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    dedup_key: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    payload: Option<PdPayload<'a>>,
    #[serde(default)]
    images: Vec<PdImage>,
    #[serde(default)]
    links: Vec<PdLink>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    client_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PdPayload<'a> {
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    summary: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    source: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    severity: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    timestamp: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    component: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    group: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    class: Option<Cow<'a, str>>,
    #[serde(default)]
    custom_details: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct PdImage {
    src: String,
    #[serde(default)]
    href: Option<String>,
    #[serde(default)]
    alt: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PdLink {
    href: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RoutingOnly<'a> {
    #[serde(default, borrow)]
    routing_key: Option<&'a RawValue>,
}

/// A `pagerduty` provider.
#[derive(Debug)]
pub struct PagerDutyProvider {
    common: Common,
    routing_key: Option<Secret>,
    verification: Verification,
}

/// The dedup key given to a trigger without one: `sc-` + 32 hex digits of SHA-256(body).
pub fn generated_dedup_key(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut hex_digits = [0u8; 32];
    let mut key = String::with_capacity(3 + hex_digits.len());
    key.push_str("sc-");
    match hex::encode_to_slice(&digest[..16], &mut hex_digits) {
        // Hex digits are ASCII, so this always holds.
        Ok(()) => key.push_str(std::str::from_utf8(&hex_digits).unwrap_or_default()),
        Err(_) => key.push_str(&hex::encode(&digest[..16])),
    }
    key
}

impl PagerDutyProvider {
    fn required<'a>(
        &self,
        v: &'a Option<Cow<'_, str>>,
        field: &str,
    ) -> Result<&'a str, ProviderError> {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                self.common
                    .malformed(field, "required field is missing or empty")
            })
    }

    fn trigger(&self, e: PdEvent, body: &[u8], raw: RawPayload) -> Result<Event, ProviderError> {
        let mut p = e
            .payload
            .ok_or_else(|| self.common.malformed("$.payload", "required for trigger"))?;
        let summary = self.required(&p.summary, "$.payload.summary")?;
        let source = self.required(&p.source, "$.payload.source")?;
        let severity = match self.required(&p.severity, "$.payload.severity")? {
            "critical" => Severity::Critical,
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            "info" => Severity::Info,
            other => {
                return Err(self.common.malformed(
                    "$.payload.severity",
                    format!("{other:?} is not one of critical, error, warning, info"),
                ));
            }
        };
        let dedup_key = match e.dedup_key.as_deref().filter(|k| !k.is_empty()) {
            Some(k) if k.len() > 255 => {
                return Err(self
                    .common
                    .malformed("$.dedup_key", "longer than 255 characters"));
            }
            Some(k) => k.to_string(),
            None => generated_dedup_key(body),
        };
        let mut labels = Labels::new();
        put_label(&mut labels, "source", source);
        put_label(
            &mut labels,
            "component",
            p.component.as_deref().unwrap_or(""),
        );
        put_label(&mut labels, "group", p.group.as_deref().unwrap_or(""));
        put_label(&mut labels, "class", p.class.as_deref().unwrap_or(""));
        let mut links: Vec<Link> = e
            .links
            .into_iter()
            .map(|l| Link {
                href: l.href,
                text: l.text,
            })
            .collect();
        if let Some(u) = e.client_url.filter(|u| !u.is_empty()) {
            links.push(Link {
                href: u,
                text: e.client.or_else(|| Some("Client".into())),
            });
        }
        Ok(Event::Alert(Alert {
            source: self.common.source.clone(),
            dedup_key: Some(dedup_key),
            status: AlertStatus::Firing,
            severity,
            summary: first_line(summary, 1024),
            details: p.custom_details.take().unwrap_or(Value::Null),
            labels,
            annotations: Default::default(),
            links,
            images: e
                .images
                .into_iter()
                .map(|i| Image {
                    src: i.src,
                    href: i.href,
                    alt: i.alt,
                })
                .collect(),
            starts_at: p.timestamp.as_deref().and_then(parse_timestamp),
            ends_at: None,
            service: p.component.filter(|c| !c.is_empty()).map(Cow::into_owned),
            raw,
        }))
    }

    fn change(
        &self,
        e: PdEvent,
        req: &InboundRequest,
        raw: RawPayload,
    ) -> Result<Event, ProviderError> {
        let mut p = e.payload.ok_or_else(|| {
            self.common
                .malformed("$.payload", "required for change events")
        })?;
        let summary = self.required(&p.summary, "$.payload.summary")?;
        let timestamp = match p.timestamp.as_deref() {
            Some(t) => parse_timestamp(t).ok_or_else(|| {
                self.common
                    .malformed("$.payload.timestamp", format!("not a timestamp: {t:?}"))
            })?,
            None => req.received_at.ok_or_else(|| {
                self.common
                    .malformed("$.payload.timestamp", "missing and no receive time")
            })?,
        };
        let details = p.custom_details.take().unwrap_or(Value::Null);
        let repository = ["repository_url", "repository", "repo"]
            .iter()
            .find_map(|k| details.get(*k).and_then(Value::as_str))
            .filter(|r| r.starts_with("http"))
            .map(str::to_string);
        let mut labels = Labels::new();
        put_label(&mut labels, "source", p.source.as_deref().unwrap_or(""));
        put_label(&mut labels, "change_type", "pagerduty_change");
        Ok(Event::Change(ChangeEvent {
            source: self.common.source.clone(),
            summary: first_line(summary, 1024),
            timestamp,
            service: p
                .source
                .filter(|s| !s.is_empty())
                .map(Cow::into_owned)
                .or_else(|| repository.clone()),
            repository,
            labels,
            links: e
                .links
                .into_iter()
                .map(|l| Link {
                    href: l.href,
                    text: l.text,
                })
                .collect(),
            details,
            raw,
        }))
    }
}

impl Provider for PagerDutyProvider {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn verify(&self, req: &InboundRequest, _now: Timestamp) -> Result<(), ProviderError> {
        if self.verification == Verification::Skip {
            return Ok(());
        }
        let Some(want) = &self.routing_key else {
            return Err(ProviderError::InvalidConfig {
                provider: TYPE.into(),
                field: "secrets.routing_key".into(),
                message: "required secret is missing".into(),
            });
        };
        self.common.check_size(&req.body)?;
        let r: RoutingOnly = match serde_json::from_slice(&req.body) {
            Ok(r) => r,
            // Errors as a decode without raw payloads words them.
            Err(_) => {
                return Err(Common {
                    keep_raw: false,
                    ..self.common.clone()
                }
                .error_of::<RoutingOnly>(&req.body));
            }
        };
        // Only a JSON string is a routing key.
        let got = match r
            .routing_key
            .and_then(|raw| serde_json::from_str::<Cow<str>>(raw.get()).ok())
        {
            Some(s) => s,
            _ => {
                return Err(ProviderError::MissingHeader {
                    provider: TYPE.into(),
                    header: "routing_key (body field)".into(),
                });
            }
        };
        if ct_eq(got.as_bytes(), want.expose().as_bytes()) {
            Ok(())
        } else {
            Err(ProviderError::Unauthorized {
                provider: TYPE.into(),
                message: "routing_key does not belong to this integration".into(),
            })
        }
    }

    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (e, raw): (PdEvent, _) = self.common.decode_with_raw(&req.body)?;
        // PagerDuty's change endpoint is /v2/change/enqueue; bodies posted there are
        // change events whatever they contain. Elsewhere, no event_action means change.
        let change_endpoint = req
            .url
            .as_deref()
            .map(|u| {
                u.split('?')
                    .next()
                    .unwrap_or(u)
                    .trim_end_matches('/')
                    .ends_with("/change/enqueue")
            })
            .unwrap_or(false);
        let action = if change_endpoint {
            None
        } else {
            e.event_action.as_deref()
        };
        let event = match action {
            Some("trigger") => self.trigger(e, &req.body, raw)?,
            Some(action @ ("acknowledge" | "resolve")) => {
                let action = if action == "acknowledge" {
                    ActionKind::Acknowledge
                } else {
                    ActionKind::Resolve
                };
                let dedup_key = self.required(&e.dedup_key, "$.dedup_key")?.to_string();
                Event::Action(ActionEvent {
                    source: self.common.source.clone(),
                    action,
                    dedup_key,
                    raw,
                })
            }
            Some(other) => {
                return Err(self.common.malformed(
                    "$.event_action",
                    format!("{other:?} is not one of trigger, acknowledge, resolve"),
                ));
            }
            None => self.change(e, req, raw)?,
        };
        Ok(vec![event])
    }
}

/// The `pagerduty` source type.
#[derive(Debug, Clone, Copy, Default)]
pub struct PagerDutyType;

impl SourceType for PagerDutyType {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&["routing_key"], &[])
    }

    fn primary_secret(&self) -> Option<&'static str> {
        Some("routing_key")
    }

    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let _config: PagerDutyConfig = integration.options_as(TYPE)?;
        if verification == Verification::Verify {
            integration.check_secrets(TYPE, &["routing_key"], &[])?;
        }
        Ok(Box::new(PagerDutyProvider {
            common: Common::new(TYPE, integration),
            routing_key: integration.secret("routing_key").cloned(),
            verification,
        }))
    }
}
