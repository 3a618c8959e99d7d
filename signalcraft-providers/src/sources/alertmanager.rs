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
use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use signalcraft_core::model::{Alert, AlertStatus, Event, Labels, Link, RawPayload, Severity};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, parse_timestamp, severity_of};
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
    pub annotations: BTreeMap<String, String>,
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
pub(crate) fn summary_of(labels: &Labels, annotations: &BTreeMap<String, String>) -> String {
    ["summary", "description", "message"]
        .iter()
        .find_map(|k| annotations.get(*k).filter(|v| !v.is_empty()))
        .or_else(|| labels.get("alertname"))
        .map(|s| super::decode::first_line(s, 512))
        .unwrap_or_else(|| "alert".to_string())
}

pub(crate) fn ts(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(parse_timestamp)
}

/// Runbook links from the conventional `runbook_url` annotation.
pub(crate) fn runbook_link(annotations: &BTreeMap<String, String>, links: &mut Vec<Link>) {
    if let Some(u) = annotations.get("runbook_url").filter(|u| !u.is_empty()) {
        links.push(Link {
            href: u.clone(),
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
            .and_then(|s| severity_of(s))
            .unwrap_or(self.config.default_severity);
        let service = self
            .config
            .service_labels
            .iter()
            .find_map(|l| a.labels.get(l).filter(|v| !v.is_empty()).cloned());
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
