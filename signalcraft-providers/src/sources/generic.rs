//! Generic JSON webhook with configurable field mapping.
//!
//! Fields are located with JSON Pointers (RFC 6901, e.g. `/alert/title`). With
//! `alerts` set, each element of that array is one alert and the other pointers are
//! relative to the element; otherwise the whole body is one alert.
//!
//! * `summary` (required pointer; the value must be present in every alert).
//! * `status`: its text (case-insensitive) in `resolved_values` → resolved, else firing.
//! * `severity`: looked up in `severity_map` (exact text), then parsed leniently
//!   (`crit`, `warn`, `P1`, …), else `default_severity`.
//! * `dedup_key`, `service`, `starts_at`, `link`: optional pointers.
//! * `labels`: label name → pointer; missing values are skipped.
//!
//! Authentication: optional [`TokenAuth`] (`bearer_token`, `basic_auth`, `token`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use signalcraft_core::model::{Alert, AlertStatus, Event, LabelsBuilder, Link, Severity};
use signalcraft_core::provider::{InboundRequest, Provider, ProviderError};

use super::decode::{Common, first_line, parse_timestamp, scalar_text};
use super::integration::Integration;
use super::registry::{SourceType, Verification};
use super::signature::{TOKEN_AUTH_SECRETS, TokenAuth};

const TYPE: &str = "generic";

/// Options of a `generic` integration: where each field lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenericConfig {
    /// Pointer to an array of alerts; unset = the body is one alert.
    pub alerts: Option<String>,
    /// Pointer to the summary. Default `/summary`.
    pub summary: String,
    /// Pointer to the status text.
    pub status: Option<String>,
    /// Pointer to the severity text.
    pub severity: Option<String>,
    /// Pointer to the dedup key.
    pub dedup_key: Option<String>,
    /// Pointer to the service hint.
    pub service: Option<String>,
    /// Pointer to the start time.
    pub starts_at: Option<String>,
    /// Pointer to a link URL.
    pub link: Option<String>,
    /// Label name → pointer.
    pub labels: BTreeMap<String, String>,
    /// Exact severity text → severity, checked before lenient parsing.
    pub severity_map: BTreeMap<String, Severity>,
    /// Status texts meaning resolved (case-insensitive). Default
    /// `["resolved", "ok", "recovered", "closed"]`.
    pub resolved_values: Vec<String>,
    /// Severity when unmapped. Default `error`.
    pub default_severity: Severity,
    /// Header carrying the `token` secret. Default `X-Signalcraft-Token`.
    pub token_header: String,
}

impl Default for GenericConfig {
    fn default() -> Self {
        GenericConfig {
            alerts: None,
            summary: "/summary".into(),
            status: None,
            severity: None,
            dedup_key: None,
            service: None,
            starts_at: None,
            link: None,
            labels: BTreeMap::new(),
            severity_map: BTreeMap::new(),
            resolved_values: ["resolved", "ok", "recovered", "closed"]
                .map(String::from)
                .to_vec(),
            default_severity: Severity::Error,
            token_header: "X-Signalcraft-Token".into(),
        }
    }
}

impl GenericConfig {
    fn pointers(&self) -> impl Iterator<Item = (String, &String)> {
        let opt = [
            ("alerts", &self.alerts),
            ("status", &self.status),
            ("severity", &self.severity),
            ("dedup_key", &self.dedup_key),
            ("service", &self.service),
            ("starts_at", &self.starts_at),
            ("link", &self.link),
        ];
        std::iter::once(("summary".to_string(), &self.summary))
            .chain(
                opt.into_iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v))),
            )
            .chain(self.labels.iter().map(|(k, v)| (format!("labels.{k}"), v)))
    }
}

/// A `generic` provider.
#[derive(Debug)]
pub struct GenericProvider {
    common: Common,
    config: GenericConfig,
    auth: TokenAuth,
    verification: Verification,
}

fn text_at(v: &Value, pointer: &Option<String>) -> Option<String> {
    pointer
        .as_deref()
        .and_then(|p| v.pointer(p))
        .and_then(scalar_text)
}

impl GenericProvider {
    fn alert(&self, v: &Value, at: &str) -> Result<Alert, ProviderError> {
        let c = &self.config;
        let summary = v
            .pointer(&c.summary)
            .and_then(scalar_text)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                self.common.malformed(
                    format!("{at}{}", c.summary),
                    "summary (options.summary) is missing or not text",
                )
            })?;
        let status = match text_at(v, &c.status) {
            Some(s)
                if c.resolved_values
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(s.trim())) =>
            {
                AlertStatus::Resolved
            }
            _ => AlertStatus::Firing,
        };
        let severity = text_at(v, &c.severity)
            .and_then(|s| {
                c.severity_map
                    .get(&s)
                    .copied()
                    .or_else(|| Severity::parse_lenient(&s))
            })
            .unwrap_or(c.default_severity);
        let mut labels = LabelsBuilder::with_capacity(c.labels.len());
        for (name, p) in &c.labels {
            if let Some(t) = v.pointer(p).and_then(scalar_text).filter(|t| !t.is_empty()) {
                labels.push(name.as_str(), t);
            }
        }
        let mut a = Alert::firing(
            self.common.source.clone(),
            first_line(&summary, 1024),
            labels.build(),
        );
        a.status = status;
        a.severity = severity;
        a.dedup_key = text_at(v, &c.dedup_key).filter(|k| !k.is_empty());
        a.service = text_at(v, &c.service).filter(|s| !s.is_empty());
        a.starts_at = text_at(v, &c.starts_at).and_then(|t| parse_timestamp(&t));
        a.links = text_at(v, &c.link)
            .filter(|l| !l.is_empty())
            .map(|href| Link { href, text: None })
            .into_iter()
            .collect();
        if self.common.keep_raw {
            a.raw = v.clone().into();
        }
        Ok(a)
    }
}

impl Provider for GenericProvider {
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
        // The mapping is dynamic, so the body is a Value by necessity.
        let body: Value = Common {
            keep_raw: true,
            ..self.common.clone()
        }
        .decode(&req.body)?;
        match &self.config.alerts {
            None => Ok(vec![Event::Alert(self.alert(&body, "$")?)]),
            Some(p) => {
                let items = body.pointer(p).and_then(Value::as_array).ok_or_else(|| {
                    self.common.malformed(
                        format!("${p}"),
                        "expected an array of alerts (options.alerts)",
                    )
                })?;
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.alert(item, &format!("${p}/{i}")).map(Event::Alert))
                    .collect()
            }
        }
    }
}

/// The `generic` source type.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenericType;

impl SourceType for GenericType {
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
        let config: GenericConfig = integration.options_as(TYPE)?;
        for (field, p) in config.pointers() {
            if !p.is_empty() && !p.starts_with('/') {
                return Err(ProviderError::InvalidConfig {
                    provider: TYPE.into(),
                    field: format!("options.{field}"),
                    message: format!("{p:?} is not a JSON Pointer (must start with '/')"),
                });
            }
        }
        if verification == Verification::Verify {
            integration.check_secrets(TYPE, &[], TOKEN_AUTH_SECRETS)?;
        }
        let auth = TokenAuth::from_integration(TYPE, integration, &config.token_header)?;
        Ok(Box::new(GenericProvider {
            common: Common::new(TYPE, integration),
            config,
            auth,
            verification,
        }))
    }
}
