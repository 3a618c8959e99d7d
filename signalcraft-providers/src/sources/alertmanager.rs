//! Prometheus Alertmanager webhook receiver (`webhook_configs`, payload version 4).
//!
//! One request carries a whole aggregation group: `alerts[]` (firing and resolved
//! mixed), `groupKey`, `truncatedAlerts` and `externalURL`. Each alert becomes one
//! [`Event::Alert`] whose identity is its label set (no dedup key), so the fingerprint
//! equals Alertmanager's own.
//!
//! Authentication: Alertmanager cannot sign; configure its `http_config`
//! (`authorization` / `basic_auth`) and the matching [`TokenAuth`] secret here.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use signalcraft_core::model::{
    Alert, AlertStatus, Annotations, Event, Labels, Link, RawPayload, Severity,
};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, parse_timestamp, severity_of};
use super::fast_json::{Plain, Seen, Span};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::signature::{TOKEN_AUTH_SECRETS, TokenAuth};

const TYPE: &str = "alertmanager";

/// Options of an `alertmanager` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Severity when the alert has no (recognisable) `severity` label. Default `error`.
    pub default_severity: Severity,
    /// Labels tried in order for the service hint. Default `["service", "job"]`.
    pub service_labels: Vec<String>,
    /// Header carrying the `token` secret, if used. Default `X-Signalcraft-Token`.
    pub token_header: String,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            default_severity: Severity::Error,
            service_labels: vec!["service".into(), "job".into()],
            token_header: "X-Signalcraft-Token".into(),
        }
    }
}

/// Alertmanager webhook payload (version 4), as `notify/webhook` sends it. Text the
/// events do not keep is borrowed from the body; `A` is [`AmAlert`] (one pass) or
/// `&RawValue` (each alert's slice, kept as its raw payload and decoded on its own).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AmMessage<'a, A> {
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    #[serde(default, borrow)]
    pub group_key: Cow<'a, str>,
    #[serde(default)]
    pub truncated_alerts: u64,
    #[serde(default, borrow)]
    pub receiver: Cow<'a, str>,
    #[serde(default, rename = "externalURL", borrow)]
    pub external_url: Cow<'a, str>,
    pub alerts: Vec<A>,
}

/// One alert of the payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AmAlert<'a> {
    pub status: AmStatus,
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Annotations,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    pub starts_at: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "super::decode::opt_str")]
    pub ends_at: Option<Cow<'a, str>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AmStatus {
    Firing,
    Resolved,
}

impl From<AmStatus> for AlertStatus {
    fn from(s: AmStatus) -> Self {
        match s {
            AmStatus::Firing => AlertStatus::Firing,
            AmStatus::Resolved => AlertStatus::Resolved,
        }
    }
}

/// The summary Alertmanager users expect: `summary`, then `description`, then
/// `message` annotations, then `alertname`.
pub(crate) fn summary_of(labels: &Labels, annotations: &Annotations) -> String {
    ["summary", "description", "message"]
        .iter()
        .find_map(|k| annotations.get(k).filter(|v| !v.is_empty()))
        .or_else(|| labels.get("alertname"))
        .map(|s| super::decode::first_line(s, 512))
        .unwrap_or_else(|| "alert".to_string())
}

pub(crate) fn ts(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(parse_timestamp)
}

/// Runbook links from the conventional `runbook_url` annotation.
pub(crate) fn runbook_link(annotations: &Annotations, links: &mut Vec<Link>) {
    if let Some(u) = annotations.get("runbook_url").filter(|u| !u.is_empty()) {
        links.push(Link {
            href: u.to_owned(),
            text: Some("Runbook".into()),
        });
    }
}

/// An `alertmanager` provider.
#[derive(Debug)]
pub struct AlertmanagerProvider {
    common: Common,
    config: AlertmanagerConfig,
    auth: TokenAuth,
    verification: Verification,
}

impl Provider for AlertmanagerProvider {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn verify(&self, req: &InboundRequest, _now: Timestamp) -> Result<(), ProviderError> {
        match self.verification {
            Verification::Skip => Ok(()),
            Verification::Verify => self.auth.verify(TYPE, req),
        }
    }

    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        // One pass where it can (see `AmMessage::read`); serde_json otherwise.
        let body = &req.body;
        if self.common.check_size(body).is_ok()
            && let Ok(text) = std::str::from_utf8(body)
            && let Some(mut msg) = AmMessage::read(text)
            && msg.version == "4"
        {
            let alerts = std::mem::take(&mut msg.alerts);
            let shared = self.common.share(text);
            let group = Group::of(&msg);
            return Ok(alerts
                .into_iter()
                .map(|(a, span)| {
                    // SAFETY: `read` read `text` to its end and declines whatever is not
                    // valid JSON; `span` is one alert object it read in full.
                    let raw = unsafe {
                        self.common
                            .raw_span(shared.as_ref(), span.range, span.compact)
                    };
                    self.event(&group, a, raw)
                })
                .collect());
        }
        self.parse_general(req)
    }
}

impl AlertmanagerProvider {
    /// `parse` through `serde_json` alone.
    fn parse_general(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let body = &req.body;
        if !self.common.keep_raw {
            let mut msg: AmMessage<AmAlert> = self.common.decode(body)?;
            self.check_version(&msg)?;
            let alerts = std::mem::take(&mut msg.alerts);
            let group = Group::of(&msg);
            return Ok(alerts
                .into_iter()
                .map(|a| self.event(&group, a, RawPayload::null()))
                .collect());
        }
        // Raw payloads kept: each alert's slice is its raw payload and is decoded on
        // its own (no Value of the body is built).
        let msg: AmMessage<&RawValue> = self.common.decode(body)?;
        let alerts = self
            .common
            .decode_each::<AmAlert, AmMessage<AmAlert>>(body, &msg.alerts)?;
        self.check_version(&msg)?;
        let group = Group::of(&msg);
        Ok(alerts
            .into_iter()
            .map(|(a, raw)| self.event(&group, a, self.common.raw(raw)))
            .collect())
    }
}

impl<'a> AmMessage<'a, (AmAlert<'a>, Span)> {
    /// The message read in one pass by [`Plain`], each alert with its span in `text`;
    /// `None` wherever `serde_json` must decide (it then gives this same message or
    /// the error it always gave).
    fn read(text: &'a str) -> Option<Self> {
        let mut r = Plain::new(text);
        let mut seen = Seen::default();
        let mut m = AmMessage {
            version: Cow::Borrowed(""),
            group_key: Cow::Borrowed(""),
            truncated_alerts: 0,
            receiver: Cow::Borrowed(""),
            external_url: Cow::Borrowed(""),
            alerts: Vec::new(),
        };
        r.object(|r, key| {
            match key.as_ref() {
                "version" => m.version = seen.once(0, r.string())?,
                "groupKey" => m.group_key = seen.once(1, r.string())?,
                "truncatedAlerts" => {
                    let n = r.integer().and_then(|t| t.parse().ok());
                    m.truncated_alerts = seen.once(2, n)?;
                }
                "receiver" => m.receiver = seen.once(3, r.string())?,
                "externalURL" => m.external_url = seen.once(4, r.string())?,
                "alerts" => {
                    let mut alerts = Vec::new();
                    r.array(|r| {
                        alerts.push(r.spanned(AmAlert::read)?);
                        Some(())
                    })?;
                    m.alerts = seen.once(5, Some(alerts))?;
                }
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        (r.at_end() && seen.has(0) && seen.has(5)).then_some(m)
    }
}

impl<'a> AmAlert<'a> {
    /// One alert object (see [`AmMessage::read`]).
    fn read(r: &mut Plain<'a>) -> Option<Self> {
        let mut seen = Seen::default();
        let mut status = None;
        let mut labels = None;
        let mut a = AmAlert {
            status: AmStatus::Firing,
            labels: Labels::new(),
            annotations: Annotations::new(),
            starts_at: None,
            ends_at: None,
            generator_url: None,
            fingerprint: None,
        };
        r.object(|r, key| {
            match key.as_ref() {
                "status" => {
                    let s = match r.string()?.as_ref() {
                        "firing" => AmStatus::Firing,
                        "resolved" => AmStatus::Resolved,
                        _ => return None,
                    };
                    status = Some(seen.once(0, Some(s))?);
                }
                "labels" => labels = Some(seen.once(1, string_map(r))?),
                "annotations" => a.annotations = seen.once(2, string_map(r))?,
                "startsAt" => a.starts_at = seen.once(3, r.opt_string())?,
                "endsAt" => a.ends_at = seen.once(4, r.opt_string())?,
                "generatorURL" => {
                    a.generator_url = seen.once(5, r.opt_string())?.map(Cow::into_owned)
                }
                "fingerprint" => a.fingerprint = seen.once(6, r.opt_string())?.map(Cow::into_owned),
                _ => r.skip_value()?,
            }
            Some(())
        })?;
        a.status = status?;
        a.labels = labels?;
        Some(a)
    }
}

/// An object of strings as serde reads it into a map (a repeated key keeps the last):
/// the pairs are borrowed from the body where they have no escapes and the set is
/// written in one allocation.
pub(crate) fn string_map(r: &mut Plain<'_>) -> Option<Labels> {
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(8);
    r.object(|r, key| {
        let value = r.string()?;
        pairs.push((key, value));
        Some(())
    })?;
    Some(Labels::from_slice_mut(&mut pairs))
}

/// What every alert of a request shares.
struct Group<'m> {
    group_key: &'m str,
    receiver: &'m str,
    truncated_alerts: u64,
    external_url: &'m str,
}

impl<'m> Group<'m> {
    fn of<A>(msg: &'m AmMessage<'_, A>) -> Self {
        Group {
            group_key: &msg.group_key,
            receiver: &msg.receiver,
            truncated_alerts: msg.truncated_alerts,
            external_url: &msg.external_url,
        }
    }
}

impl AlertmanagerProvider {
    fn check_version<A>(&self, msg: &AmMessage<'_, A>) -> Result<(), ProviderError> {
        if msg.version != "4" {
            return Err(self.common.malformed(
                "$.version",
                format!(
                    "unsupported webhook version {:?} (expected \"4\")",
                    msg.version
                ),
            ));
        }
        Ok(())
    }

    fn event(&self, group: &Group<'_>, a: AmAlert<'_>, raw: RawPayload) -> Event {
        let severity = a
            .labels
            .get("severity")
            .and_then(severity_of)
            .unwrap_or(self.config.default_severity);
        let service = self
            .config
            .service_labels
            .iter()
            .find_map(|l| a.labels.get(l).filter(|v| !v.is_empty()).map(str::to_owned));
        let mut links = Vec::new();
        if let Some(g) = a.generator_url.filter(|u| !u.is_empty()) {
            links.push(Link {
                href: g,
                text: Some("Source".into()),
            });
        }
        runbook_link(&a.annotations, &mut links);
        if !group.external_url.is_empty() {
            links.push(Link {
                href: group.external_url.to_string(),
                text: Some("Alertmanager".into()),
            });
        }
        // Group context shared by every alert of the request (the group labels are a
        // subset of each alert's labels, so they are not repeated here).
        let mut d = serde_json::Map::new();
        d.insert("groupKey".into(), group.group_key.into());
        d.insert("receiver".into(), group.receiver.into());
        d.insert("truncatedAlerts".into(), group.truncated_alerts.into());
        if let Some(f) = a.fingerprint {
            d.insert("fingerprint".into(), f.into());
        }
        Event::Alert(Alert {
            source: self.common.source.clone(),
            dedup_key: None,
            status: a.status.into(),
            severity,
            summary: summary_of(&a.labels, &a.annotations),
            details: serde_json::Value::Object(d),
            labels: a.labels,
            annotations: a.annotations,
            links,
            images: Vec::new(),
            starts_at: ts(a.starts_at.as_deref()),
            ends_at: ts(a.ends_at.as_deref()),
            service,
            raw,
        })
    }
}

/// The `alertmanager` source type.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertmanagerType;

impl SourceType for AlertmanagerType {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&[], TOKEN_AUTH_SECRETS)
    }

    fn primary_secret(&self) -> Option<&'static str> {
        Some("bearer_token")
    }

    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let config: AlertmanagerConfig = integration.options_as(TYPE)?;
        if verification == Verification::Verify {
            integration.check_secrets(TYPE, &[], TOKEN_AUTH_SECRETS)?;
        }
        let auth = TokenAuth::from_integration(TYPE, integration, &config.token_header)?;
        Ok(Box::new(AlertmanagerProvider {
            common: Common::new(TYPE, integration),
            config,
            auth,
            verification,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::route_check::{assert_routes_agree, fixture_bodies, mutated_fixture};

    fn provider(keep_raw: bool) -> AlertmanagerProvider {
        let mut i = Integration::new(TYPE, "am");
        i.keep_raw = keep_raw;
        AlertmanagerProvider {
            common: Common::new(TYPE, &i),
            config: AlertmanagerConfig::default(),
            auth: TokenAuth::default(),
            verification: Verification::Skip,
        }
    }

    /// `parse` (one pass where it can) and `serde_json` alone agree on `body`, results
    /// and errors alike, with and without raw payloads.
    fn routes_agree(body: &[u8]) {
        for keep_raw in [false, true] {
            let p = provider(keep_raw);
            let req = InboundRequest::from_body(body.to_vec());
            assert_routes_agree(p.parse(&req), p.parse_general(&req), body);
        }
    }

    #[test]
    fn messages_take_the_one_pass_route_and_agree_with_serde() {
        let mut one_pass = Vec::new();
        for (name, body) in fixture_bodies("alertmanager") {
            routes_agree(&body);
            if AmMessage::read(std::str::from_utf8(&body).unwrap()).is_some() {
                one_pass.push(name);
            }
        }
        for want in ["firing_single", "mixed_firing_resolved", "resolved"] {
            assert!(one_pass.iter().any(|n| n == want), "{want}: {one_pass:?}");
        }
        for odd in [
            r#"{"version": "4", "alerts": [{"status": "firing", "labels": {"a": "1", "a": "2"}}]}"#,
            r#"{"version": "4", "alerts": [{"status": "firing", "labels": {}, "labels": {}}]}"#,
            r#"{"version": "4", "alerts": [{"status": "pending", "labels": {}}]}"#,
            r#"{"version": "4", "alerts": [{"labels": {"a": "b"}}]}"#,
            r#"{"version": "4", "alerts": [{"status": "resolved", "labels": {"a": null}}]}"#,
            r#"{"version": "4", "truncatedAlerts": -1, "alerts": []}"#,
            r#"{"version": "4", "truncatedAlerts": 2.0, "alerts": []}"#,
            r#"{"version": "4", "truncatedAlerts": 7, "alerts": [], "groupLabels": {"x": [1, {}]}}"#,
            r#"{"version": "3", "alerts": []}"#,
            r#"{"alerts": []}"#,
            r#"{"version": "4"}"#,
            r#"{"version": "4", "alerts": [["firing", {}]]}"#,
            r#"{"version": "4", "alerts": [{"status": "firing", "labels": {"a\u0041": "b\n"}, "startsAt": null, "generatorURL": "g\/x", "fingerprint": null}]}"#,
            r#"{"version": "4", "alerts": []} x"#,
        ] {
            routes_agree(odd.as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn routes_agree_on_mutated_messages(
            case in 0usize..8,
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::sample::select(vec![
                    b'"', b'\\', b',', b'}', b'{', b'[', b']', b':', b'n', b'1', b'-', b'.',
                    b' ', b'\n', b'u', b't',
                ])),
                1..3,
            ),
        ) {
            let body = mutated_fixture("alertmanager", case, edits);
            routes_agree(&body);
        }
    }
}
