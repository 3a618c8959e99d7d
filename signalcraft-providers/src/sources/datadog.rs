//! Datadog Webhooks integration: the default payload and the extended template.
//!
//! The default payload (`body`, `last_updated`, `event_type`, `title`, `date`, `org`,
//! `id`) carries the transition only in the title prefix (`[Triggered]`, `[Recovered]`,
//! `[Warn]`, `[No Data]`, optionally after a `[P1]` priority). The extended template
//! adds `alert_transition`, `alert_type`, `alert_priority`, `aggregate`, `alert_id`,
//! `alert_scope`, `tags`, `link`, `hostname` and `snapshot` (any subset).
//!
//! * status: `Recovered` (or `alert_type: success`) → resolved; everything else fires.
//! * severity: `Warn`/`No Data` → warning; else `alert_priority` (P1 critical …), else
//!   `alert_type`, else `default_severity`.
//! * dedup key: `aggregate` ($AGGREG_KEY), else `alert_id` + `alert_scope`, else the
//!   title without its bracketed prefixes — so the Recovered notification resolves the
//!   Triggered one.
//!
//! Authentication (Datadog cannot sign): a shared secret in a custom header (secret
//! `token`, header `token_header`, default `X-Signalcraft-Token`) or basic auth
//! (`basic_auth`, `user:password`); at least one is required.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use signalcraft_core::model::{Alert, AlertStatus, Event, Image, Labels, Link, Severity};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{
    Common, contains_ignore_ascii_case, first_line, parse_timestamp, put_label, scalar_text,
};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::signature::TokenAuth;

const TYPE: &str = "datadog";
const SECRETS: &[&str] = &["token", "basic_auth", "bearer_token"];

/// Options of a `datadog` integration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatadogConfig {
    /// Header carrying the `token` secret. Default `X-Signalcraft-Token`.
    pub token_header: String,
    /// Severity when nothing in the payload says. Default `error`.
    pub default_severity: Severity,
    /// Tag (`name:value` in `tags`) used as the service hint. Default `service`.
    pub service_tag: String,
}

impl Default for DatadogConfig {
    fn default() -> Self {
        DatadogConfig {
            token_header: "X-Signalcraft-Token".into(),
            default_severity: Severity::Error,
            service_tag: "service".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Org<'a> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct DatadogPayload<'a> {
    #[serde(borrow)]
    title: Cow<'a, str>,
    #[serde(default, borrow)]
    body: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(default)]
    date: Option<Value>,
    #[serde(default)]
    last_updated: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, borrow)]
    org: Option<Org<'a>>,
    #[serde(default)]
    alert_id: Option<Value>,
    #[serde(default, borrow)]
    alert_transition: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    alert_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    alert_priority: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    alert_scope: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    alert_title: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    alert_query: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    alert_metric: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    aggregate: Option<Cow<'a, str>>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default, borrow)]
    link: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    hostname: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    snapshot: Option<Cow<'a, str>>,
}

/// Splits `[P1] [Triggered] CPU high` into (`["P1", "Triggered"]`, `CPU high`).
fn bracket_prefixes(title: &str) -> (Vec<&str>, &str) {
    let mut rest = title.trim_start();
    let mut tags = Vec::new();
    while let Some(r) = rest.strip_prefix('[') {
        let Some(end) = r.find(']') else { break };
        tags.push(&r[..end]);
        rest = r[end + 1..].trim_start();
    }
    (tags, rest)
}

fn nonempty<'s>(s: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.starts_with('$'))
}

/// A `datadog` provider.
#[derive(Debug)]
pub struct DatadogProvider {
    common: Common,
    config: DatadogConfig,
    auth: TokenAuth,
    verification: Verification,
}

impl Provider for DatadogProvider {
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
        let (p, raw): (DatadogPayload, _) = self.common.decode_with_raw(&req.body)?;
        let (prefixes, bare_title) = bracket_prefixes(&p.title);
        let transition = nonempty(&p.alert_transition)
            .map(str::to_string)
            .or_else(|| {
                prefixes
                    .iter()
                    .find(|t| !(t.len() == 2 && t.starts_with('P')))
                    .map(|t| t.to_string())
            })
            .unwrap_or_default();
        let t = transition.as_str();
        let alert_type = nonempty(&p.alert_type).unwrap_or("");
        let status = if contains_ignore_ascii_case(t, "recovered")
            || alert_type.eq_ignore_ascii_case("success")
        {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        };
        let priority = nonempty(&p.alert_priority).map(str::to_string).or_else(|| {
            prefixes
                .iter()
                .find(|t| t.len() == 2 && t.starts_with('P'))
                .map(|s| s.to_string())
        });
        let severity =
            if contains_ignore_ascii_case(t, "warn") || contains_ignore_ascii_case(t, "no data") {
                Severity::Warning
            } else if let Some(s) = priority.as_deref().and_then(Severity::parse_lenient) {
                s
            } else {
                match alert_type {
                    a if a.eq_ignore_ascii_case("error") => Severity::Error,
                    a if a.eq_ignore_ascii_case("warning") => Severity::Warning,
                    a if a.eq_ignore_ascii_case("info") => Severity::Info,
                    _ => self.config.default_severity,
                }
            };
        let mut labels = Labels::new();
        // Tags: a comma-separated string or an array of them (each element may itself
        // hold several comma-separated tags).
        let mut service = None;
        let mut add_tags = |text: &str| {
            for tag in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let (k, v) = tag.split_once(':').unwrap_or((tag, ""));
                put_label(&mut labels, k, if v.is_empty() { "true" } else { v });
                if k == self.config.service_tag && !v.is_empty() {
                    service = Some(v.to_string());
                }
            }
        };
        match &p.tags {
            Some(Value::Array(a)) => {
                for v in a {
                    match v {
                        Value::String(s) => add_tags(s),
                        other => {
                            if let Some(t) = scalar_text(other) {
                                add_tags(&t)
                            }
                        }
                    }
                }
            }
            Some(Value::String(s)) => add_tags(s),
            Some(other) => {
                if let Some(t) = scalar_text(other) {
                    add_tags(&t)
                }
            }
            None => {}
        }
        put_label(&mut labels, "hostname", nonempty(&p.hostname).unwrap_or(""));
        put_label(
            &mut labels,
            "alert_metric",
            nonempty(&p.alert_metric).unwrap_or(""),
        );
        if let Some(name) = p.org.as_ref().and_then(|o| o.name.as_deref()) {
            put_label(&mut labels, "org", name);
        }
        let alert_id = p
            .alert_id
            .as_ref()
            .and_then(scalar_text)
            .filter(|s| !s.starts_with('$'));
        let dedup_key = if let Some(agg) = nonempty(&p.aggregate) {
            agg.to_string()
        } else if let Some(id) = &alert_id {
            format!("{id}:{}", nonempty(&p.alert_scope).unwrap_or(""))
        } else {
            format!("title:{bare_title}")
        };
        let summary = nonempty(&p.alert_title)
            .map(str::to_string)
            .unwrap_or_else(|| first_line(bare_title, 512));
        let mut annotations = std::collections::BTreeMap::new();
        if let Some(b) = p.body.filter(|b| !b.trim().is_empty()) {
            annotations.insert("body".to_string(), b.into_owned());
        }
        if let Some(q) = nonempty(&p.alert_query) {
            annotations.insert("query".to_string(), q.to_string());
        }
        let at = p
            .last_updated
            .as_ref()
            .or(p.date.as_ref())
            .and_then(scalar_text)
            .and_then(|s| parse_timestamp(&s));
        let link = nonempty(&p.link).map(str::to_string);
        Ok(vec![Event::Alert(Alert {
            source: self.common.source.clone(),
            dedup_key: Some(dedup_key),
            status,
            severity,
            summary,
            details: serde_json::json!({
                "transition": transition,
                "event_type": p.event_type,
                "event_id": p.id.as_ref().and_then(scalar_text),
                "alert_id": alert_id,
                "priority": priority,
                "scope": nonempty(&p.alert_scope),
                "org_id": p.org.as_ref().and_then(|o| o.id.as_ref()).and_then(scalar_text),
            }),
            labels,
            annotations,
            links: link
                .iter()
                .map(|h| Link {
                    href: h.clone(),
                    text: Some("Datadog".into()),
                })
                .collect(),
            images: nonempty(&p.snapshot)
                .map(|src| Image {
                    src: src.to_string(),
                    href: link.clone(),
                    alt: Some(summary_alt(bare_title)),
                })
                .into_iter()
                .collect(),
            starts_at: if status == AlertStatus::Firing {
                at
            } else {
                None
            },
            ends_at: if status == AlertStatus::Resolved {
                at
            } else {
                None
            },
            service,
            raw,
        })])
    }
}

fn summary_alt(title: &str) -> String {
    first_line(title, 120)
}

/// The `datadog` source type.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatadogType;

impl SourceType for DatadogType {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&[], SECRETS)
    }

    fn primary_secret(&self) -> Option<&'static str> {
        Some("token")
    }

    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let config: DatadogConfig = integration.options_as(TYPE)?;
        let auth = TokenAuth::from_integration(TYPE, integration, &config.token_header)?;
        if verification == Verification::Verify {
            integration.check_secrets(TYPE, &[], SECRETS)?;
            if !auth.is_configured() {
                return Err(ProviderError::InvalidConfig {
                    provider: TYPE.into(),
                    field: "secrets".into(),
                    message: "configure secret \"token\" (custom header) or \"basic_auth\"".into(),
                });
            }
        }
        Ok(Box::new(DatadogProvider {
            common: Common::new(TYPE, integration),
            config,
            auth,
            verification,
        }))
    }
}
