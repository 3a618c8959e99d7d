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
    ActionEvent, ActionKind, Alert, AlertStatus, ChangeEvent, Event, Image, LabelsBuilder, Link,
    RawPayload, Severity,
};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, first_line, parse_timestamp, push_label};
use super::fast_json::{Plain, Seen};
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

impl<'a> PdEvent<'a> {
    /// The event read in one pass by [`Plain`]; `None` wherever `serde_json` must
    /// decide (it then gives this same event or the error it always gave).
    fn read(text: &'a str) -> Option<Self> {
        let mut r = Plain::new(text);
        let mut seen = Seen::default();
        let mut e = PdEvent {
            event_action: None,
            dedup_key: None,
            payload: None,
            images: Vec::new(),
            links: Vec::new(),
            client: None,
            client_url: None,
        };
        let owned = |v: Option<Option<Cow<'_, str>>>| v.map(|v| v.map(Cow::into_owned));
        r.object(|r, key| {
            match key.as_ref() {
                "event_action" => e.event_action = seen.once(0, r.opt_string())?,
                "dedup_key" => e.dedup_key = seen.once(1, r.opt_string())?,
                "payload" => {
                    let p = if r.null()? {
                        Some(None)
                    } else {
                        PdPayload::read(r, text).map(Some)
                    };
                    e.payload = seen.once(2, p)?;
                }
                "images" => {
                    let mut images = Vec::new();
                    r.array(|r| {
                        let mut seen = Seen::default();
                        let (mut src, mut href, mut alt) = (None, None, None);
                        r.object(|r, key| {
                            match key.as_ref() {
                                "src" => src = Some(seen.once(0, r.string())?.into_owned()),
                                "href" => href = seen.once(1, owned(r.opt_string()))?,
                                "alt" => alt = seen.once(2, owned(r.opt_string()))?,
                                _ => r.skip_value()?,
                            }
                            Some(())
                        })?;
                        images.push(PdImage {
                            src: src?,
                            href,
                            alt,
                        });
                        Some(())
                    })?;
                    e.images = seen.once(3, Some(images))?;
                }
                "links" => {
                    let mut links = Vec::new();
                    r.array(|r| {
                        let mut seen = Seen::default();
                        let (mut href, mut text) = (None, None);
                        r.object(|r, key| {
                            match key.as_ref() {
                                "href" => href = Some(seen.once(0, r.string())?.into_owned()),
                                "text" => text = seen.once(1, owned(r.opt_string()))?,
                                _ => r.skip_value()?,
                            }
                            Some(())
                        })?;
                        links.push(PdLink { href: href?, text });
                        Some(())
                    })?;
                    e.links = seen.once(4, Some(links))?;
                }
                "client" => e.client = seen.once(5, owned(r.opt_string()))?,
                "client_url" => e.client_url = seen.once(6, owned(r.opt_string()))?,
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        r.at_end().then_some(e)
    }
}

impl<'a> PdPayload<'a> {
    /// The `payload` object of `text` (see [`PdEvent::read`]).
    fn read(r: &mut Plain<'a>, text: &'a str) -> Option<Self> {
        let mut seen = Seen::default();
        let mut p = PdPayload {
            summary: None,
            source: None,
            severity: None,
            timestamp: None,
            component: None,
            group: None,
            class: None,
            custom_details: None,
        };
        r.object(|r, key| {
            match key.as_ref() {
                "summary" => p.summary = seen.once(0, r.opt_string())?,
                "source" => p.source = seen.once(1, r.opt_string())?,
                "severity" => p.severity = seen.once(2, r.opt_string())?,
                "timestamp" => p.timestamp = seen.once(3, r.opt_string())?,
                "component" => p.component = seen.once(4, r.opt_string())?,
                "group" => p.group = seen.once(5, r.opt_string())?,
                "class" => p.class = seen.once(6, r.opt_string())?,
                "custom_details" => {
                    // Any JSON: its slice goes through serde_json itself.
                    let start = r.value_start()?;
                    r.skip_value()?;
                    let details = serde_json::from_str(&text[start..r.offset()]).ok();
                    p.custom_details = seen.once(7, details)?;
                }
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        Some(p)
    }
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
        let mut labels = LabelsBuilder::with_capacity(8);
        push_label(&mut labels, "source", source);
        push_label(
            &mut labels,
            "component",
            p.component.as_deref().unwrap_or(""),
        );
        push_label(&mut labels, "group", p.group.as_deref().unwrap_or(""));
        push_label(&mut labels, "class", p.class.as_deref().unwrap_or(""));
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
            labels: labels.build(),
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
        let mut labels = LabelsBuilder::with_capacity(8);
        push_label(&mut labels, "source", p.source.as_deref().unwrap_or(""));
        push_label(&mut labels, "change_type", "pagerduty_change");
        let labels = labels.build();
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
        // One pass where it can (see `PdEvent::read`); serde_json otherwise.
        if self.common.check_size(&req.body).is_ok()
            && let Ok(text) = std::str::from_utf8(&req.body)
            && let Some(e) = PdEvent::read(text)
        {
            // SAFETY: `read` read the whole text and declines whatever is not valid JSON.
            let raw = unsafe { self.common.raw_text(text) };
            return self.normalize(req, e, raw);
        }
        self.parse_general(req)
    }
}

impl PagerDutyProvider {
    /// `parse` through `serde_json` alone.
    fn parse_general(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (e, raw): (PdEvent, _) = self.common.decode_with_raw(&req.body)?;
        self.normalize(req, e, raw)
    }

    fn normalize(
        &self,
        req: &InboundRequest,
        e: PdEvent<'_>,
        raw: RawPayload,
    ) -> Result<Vec<Event>, ProviderError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::route_check::{assert_routes_agree, fixture_bodies, mutated_fixture};

    fn provider(keep_raw: bool) -> PagerDutyProvider {
        let mut i = Integration::new(TYPE, "pd");
        i.keep_raw = keep_raw;
        PagerDutyProvider {
            common: Common::new(TYPE, &i),
            routing_key: None,
            verification: Verification::Skip,
        }
    }

    /// `parse` (one pass where it can) and `serde_json` alone agree on `body`, results
    /// and errors alike, with and without raw payloads, on both endpoints.
    fn routes_agree(body: &[u8]) {
        for keep_raw in [false, true] {
            for url in [None, Some("http://127.0.0.1/v2/change/enqueue")] {
                let p = provider(keep_raw);
                let mut req = InboundRequest::from_body(body.to_vec());
                req.url = url.map(String::from);
                assert_routes_agree(p.parse(&req), p.parse_general(&req), body);
            }
        }
    }

    #[test]
    fn events_take_the_one_pass_route_and_agree_with_serde() {
        let mut one_pass = Vec::new();
        for (name, body) in fixture_bodies("pagerduty") {
            routes_agree(&body);
            if PdEvent::read(std::str::from_utf8(&body).unwrap()).is_some() {
                one_pass.push(name);
            }
        }
        for want in [
            "acknowledge",
            "change_event",
            "resolve",
            "trigger",
            "trigger_without_dedup_key",
        ] {
            assert!(one_pass.iter().any(|n| n == want), "{want}: {one_pass:?}");
        }
        for odd in [
            r#"{"event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "info", "custom_details": {"n": 1.5e3, "a": [null, true], "s": "x\ny"}}}"#,
            r#"{"event_action": "trigger", "payload": {"summary": "s", "source": "h", "severity": "info", "custom_details": 12}, "images": [{"src": "i", "alt": null, "x": 1}], "links": [{"href": "l", "text": "t"}]}"#,
            r#"{"event_action": "trigger", "payload": null}"#,
            r#"{"event_action": "trigger", "payload": {"summary": "s", "summary": "t", "source": "h", "severity": "info"}}"#,
            r#"{"event_action": "trigger", "images": null, "payload": {"summary": "s", "source": "h", "severity": "info"}}"#,
            r#"{"event_action": "trigger", "images": [{"href": "no src"}], "payload": {"summary": "s", "source": "h", "severity": "info"}}"#,
            r#"{"event_action": "trigger", "links": [{"href": null}], "payload": {"summary": "s", "source": "h", "severity": "info"}}"#,
            r#"{"event_action": "resolve", "dedup_key": "k", "client": "c", "client_url": null, "routing_key": "r"}"#,
            r#"{"event_action": "resolve", "dedup_key": "k\u0041"}"#,
            r#"{"payload": {"summary": "deploy", "timestamp": "2024-05-01T10:00:00Z"}}"#,
            r#"{"event_action": 5}"#,
            r#"[]"#,
        ] {
            routes_agree(odd.as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn routes_agree_on_mutated_events(
            case in 0usize..16,
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::sample::select(vec![
                    b'"', b'\\', b',', b'}', b'{', b'[', b']', b':', b'n', b'1', b'-', b'.',
                    b' ', b'\n', b'u', b't',
                ])),
                1..3,
            ),
        ) {
            let body = mutated_fixture("pagerduty", case, edits);
            routes_agree(&body);
        }
    }
}
