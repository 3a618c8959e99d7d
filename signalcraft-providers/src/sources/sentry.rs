//! Sentry integration-platform webhooks (internal/public integrations).
//!
//! `Sentry-Hook-Resource` selects the payload:
//! * `event_alert` — an issue alert rule fired (`action: triggered`): a firing alert
//!   keyed `sentry-issue:<issue_id>`, severity from the event `level`.
//! * `metric_alert` — `action` `critical` / `warning` / `resolved`: an alert keyed
//!   `sentry-metric-alert:<metric_alert.id>`.
//! * `issue` — `created` fires and `resolved` resolves `sentry-issue:<id>` (other
//!   actions, e.g. `assigned`, yield no events).
//! * anything else (`installation`, `comment`, `error`) → `NothingToIngest`.
//!
//! Authentication: `Sentry-Hook-Signature` = hex `HMAC-SHA256(client_secret, body)`
//! (required secret `client_secret`). Sentry does not sign `Sentry-Hook-Timestamp`,
//! so no replay window applies.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use signalcraft_core::model::{Alert, AlertStatus, Event, Labels, Link, Severity};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, first_line, parse_timestamp, put_label, scalar_text};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::secret::Secret;
use super::signature::{require_header, verify_hex_hmac};

const TYPE: &str = "sentry";

/// Options of a `sentry` integration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentryConfig {
    /// Event tag used as the service hint (e.g. `service`). Default: none.
    pub service_tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EventAlertHook {
    action: String,
    data: EventAlertData,
}

#[derive(Debug, Deserialize)]
struct EventAlertData {
    event: SentryEvent,
    #[serde(default)]
    triggered_rule: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SentryEvent {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    culprit: Option<String>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    issue_id: Option<serde_json::Value>,
    #[serde(default)]
    project: Option<serde_json::Value>,
    #[serde(default)]
    datetime: Option<String>,
    /// `[["key", "value"], …]` (as sent), or `[{"key": …, "value": …}]` (API form).
    #[serde(default)]
    tags: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct MetricAlertHook {
    action: String,
    data: MetricAlertData,
}

#[derive(Debug, Deserialize)]
struct MetricAlertData {
    metric_alert: MetricAlert,
    #[serde(default)]
    description_text: Option<String>,
    #[serde(default)]
    description_title: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MetricAlert {
    id: serde_json::Value,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    date_started: Option<String>,
    #[serde(default)]
    date_closed: Option<String>,
    #[serde(default)]
    alert_rule: Option<AlertRule>,
    #[serde(default)]
    projects: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct AlertRule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    environment: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IssueHook {
    action: String,
    data: IssueData,
}

#[derive(Debug, Deserialize)]
struct IssueData {
    issue: Issue,
}

#[derive(Debug, Deserialize)]
struct Issue {
    id: serde_json::Value,
    title: String,
    #[serde(default)]
    culprit: Option<String>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    permalink: Option<String>,
    #[serde(default, rename = "firstSeen")]
    first_seen: Option<String>,
    #[serde(default)]
    project: Option<IssueProject>,
}

#[derive(Debug, Deserialize)]
struct IssueProject {
    #[serde(default)]
    slug: Option<String>,
}

/// A `sentry` provider.
#[derive(Debug)]
pub struct SentryProvider {
    common: Common,
    config: SentryConfig,
    secret: Option<Secret>,
    verification: Verification,
}

/// One Sentry tag as `(key, value)`, from either spelling; `None` for anything else.
fn tag_pair(v: &serde_json::Value) -> Option<(String, String)> {
    match v {
        serde_json::Value::Array(kv) if kv.len() == 2 => {
            Some((scalar_text(&kv[0])?, scalar_text(&kv[1])?))
        }
        serde_json::Value::Object(o) => {
            Some((scalar_text(o.get("key")?)?, scalar_text(o.get("value")?)?))
        }
        _ => None,
    }
}

fn level_severity(level: Option<&str>) -> Severity {
    match level.unwrap_or("error") {
        "fatal" => Severity::Critical,
        "error" => Severity::Error,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    }
}

fn link(href: Option<String>, text: &str) -> Vec<Link> {
    href.filter(|h| !h.is_empty())
        .map(|href| Link {
            href,
            text: Some(text.into()),
        })
        .into_iter()
        .collect()
}

impl SentryProvider {
    fn alert(
        &self,
        dedup_key: String,
        status: AlertStatus,
        severity: Severity,
        summary: String,
    ) -> Alert {
        let mut a = Alert::firing(self.common.source.clone(), summary, Labels::new());
        a.dedup_key = Some(dedup_key);
        a.status = status;
        a.severity = severity;
        a
    }

    fn event_alert(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (h, raw): (EventAlertHook, _) = self.common.decode_with_raw(&req.body)?;
        if h.action != "triggered" {
            return Ok(Vec::new());
        }
        let e = h.data.event;
        let issue = e
            .issue_id
            .as_ref()
            .and_then(scalar_text)
            .or(e.event_id.clone())
            .ok_or_else(|| {
                self.common
                    .malformed("$.data.event.issue_id", "missing (and no event_id)")
            })?;
        let summary = e
            .title
            .as_deref()
            .or(e.message.as_deref())
            .map(|t| first_line(t, 512))
            .unwrap_or_else(|| format!("Sentry issue {issue}"));
        let mut a = self.alert(
            format!("sentry-issue:{issue}"),
            AlertStatus::Firing,
            level_severity(e.level.as_deref()),
            summary,
        );
        put_label(&mut a.labels, "level", e.level.as_deref().unwrap_or(""));
        if let Some(p) = e.project.as_ref().and_then(scalar_text) {
            put_label(&mut a.labels, "project", &p);
        }
        put_label(
            &mut a.labels,
            "rule",
            h.data.triggered_rule.as_deref().unwrap_or(""),
        );
        let tags: BTreeMap<String, String> = e.tags.iter().filter_map(tag_pair).collect();
        if let Some(env) = tags.get("environment") {
            put_label(&mut a.labels, "environment", env);
        }
        a.service = self
            .config
            .service_tag
            .as_ref()
            .and_then(|t| tags.get(t).cloned());
        if let Some(c) = e.culprit.filter(|c| !c.is_empty()) {
            a.annotations.insert("culprit".into(), c);
        }
        a.links = link(e.web_url, "Sentry event");
        a.starts_at = e.datetime.as_deref().and_then(parse_timestamp);
        a.details = serde_json::json!({ "event_id": e.event_id, "tags": tags });
        a.raw = raw;
        Ok(vec![Event::Alert(a)])
    }

    fn metric_alert(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (h, raw): (MetricAlertHook, _) = self.common.decode_with_raw(&req.body)?;
        let (status, severity) = match h.action.as_str() {
            "critical" => (AlertStatus::Firing, Severity::Critical),
            "warning" => (AlertStatus::Firing, Severity::Warning),
            "resolved" => (AlertStatus::Resolved, Severity::Warning),
            other => {
                return Err(self.common.malformed(
                    "$.action",
                    format!("unknown metric alert action {other:?} (expected critical, warning or resolved)"),
                ));
            }
        };
        let m = h.data.metric_alert;
        let id = scalar_text(&m.id).ok_or_else(|| {
            self.common
                .malformed("$.data.metric_alert.id", "not a string or number")
        })?;
        let rule = m
            .alert_rule
            .as_ref()
            .and_then(|r| r.name.clone())
            .unwrap_or_default();
        let summary = h
            .data
            .description_title
            .as_deref()
            .or(m.title.as_deref())
            .map(|t| first_line(t, 512))
            .unwrap_or_else(|| format!("Sentry metric alert {rule}"));
        let mut a = self.alert(
            format!("sentry-metric-alert:{id}"),
            status,
            severity,
            summary,
        );
        put_label(&mut a.labels, "rule", &rule);
        if let Some(env) = m.alert_rule.as_ref().and_then(|r| r.environment.as_deref()) {
            put_label(&mut a.labels, "environment", env);
        }
        put_label(&mut a.labels, "project", &m.projects.join(","));
        if let Some(t) = h.data.description_text.filter(|t| !t.is_empty()) {
            a.annotations.insert("description".into(), t);
        }
        a.links = link(h.data.web_url, "Sentry metric alert");
        a.starts_at = m.date_started.as_deref().and_then(parse_timestamp);
        a.ends_at = m.date_closed.as_deref().and_then(parse_timestamp);
        a.raw = raw;
        Ok(vec![Event::Alert(a)])
    }

    fn issue(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        let (h, raw): (IssueHook, _) = self.common.decode_with_raw(&req.body)?;
        let status = match h.action.as_str() {
            "created" | "unresolved" => AlertStatus::Firing,
            "resolved" => AlertStatus::Resolved,
            _ => return Ok(Vec::new()),
        };
        let i = h.data.issue;
        let id = scalar_text(&i.id).ok_or_else(|| {
            self.common
                .malformed("$.data.issue.id", "not a string or number")
        })?;
        let mut a = self.alert(
            format!("sentry-issue:{id}"),
            status,
            level_severity(i.level.as_deref()),
            first_line(&i.title, 512),
        );
        put_label(&mut a.labels, "level", i.level.as_deref().unwrap_or(""));
        if let Some(slug) = i.project.and_then(|p| p.slug) {
            put_label(&mut a.labels, "project", &slug);
        }
        if let Some(c) = i.culprit.filter(|c| !c.is_empty()) {
            a.annotations.insert("culprit".into(), c);
        }
        a.links = link(i.web_url.or(i.permalink), "Sentry issue");
        a.starts_at = i.first_seen.as_deref().and_then(parse_timestamp);
        a.raw = raw;
        Ok(vec![Event::Alert(a)])
    }
}

impl Provider for SentryProvider {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn verify(&self, req: &InboundRequest, _now: Timestamp) -> Result<(), ProviderError> {
        match (&self.verification, &self.secret) {
            (Verification::Skip, _) => Ok(()),
            (Verification::Verify, Some(key)) => {
                verify_hex_hmac(TYPE, req, "Sentry-Hook-Signature", "", key, &[&req.body])
            }
            (Verification::Verify, None) => Err(ProviderError::InvalidConfig {
                provider: TYPE.into(),
                field: "secrets.client_secret".into(),
                message: "required secret is missing".into(),
            }),
        }
    }

    fn parse(&self, req: &InboundRequest) -> Result<Vec<Event>, ProviderError> {
        self.common.check_size(&req.body)?;
        match require_header(TYPE, req, "Sentry-Hook-Resource")?.trim() {
            "event_alert" => self.event_alert(req),
            "metric_alert" => self.metric_alert(req),
            "issue" => self.issue(req),
            other => Err(ProviderError::NothingToIngest {
                provider: TYPE.into(),
                message: format!(
                    "resource {other:?} is not ingested (only event_alert, metric_alert, issue)"
                ),
            }),
        }
    }
}

/// The `sentry` source type.
#[derive(Debug, Clone, Copy, Default)]
pub struct SentryType;

impl SourceType for SentryType {
    fn provider_type(&self) -> &str {
        TYPE
    }

    fn secret_names(&self) -> (&'static [&'static str], &'static [&'static str]) {
        (&["client_secret"], &[])
    }

    fn primary_secret(&self) -> Option<&'static str> {
        Some("client_secret")
    }

    fn build(
        &self,
        integration: &Integration,
        verification: Verification,
    ) -> Result<Box<dyn Provider>, ProviderError> {
        let config: SentryConfig = integration.options_as(TYPE)?;
        if verification == Verification::Verify {
            integration.check_secrets(TYPE, &["client_secret"], &[])?;
        }
        Ok(Box::new(SentryProvider {
            common: Common::new(TYPE, integration),
            config,
            secret: integration.secret("client_secret").cloned(),
            verification,
        }))
    }
}
