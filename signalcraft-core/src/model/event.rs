//! The normalized event: what every provider produces and the engine consumes.
//!
//! The JSON form of [`Event`] is a public, versioned contract documented in
//! `docs/alert-schema.md` (schema `signalcraft.event/v1`). Golden provider tests
//! compare against it, so field names and enum spellings here must not change
//! without a new schema version.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::labels::{Annotations, Fingerprint, Labels};
pub use super::raw_payload::RawPayload;

/// The schema identifier written in every serialized event.
pub const EVENT_SCHEMA: &str = "signalcraft.event/v1";

/// One normalized inbound event.
///
/// JSON form: the variant's object with a `kind` field (`"alert"`, `"change"` or
/// `"action"`). Deserializing takes serde_json input (text or `Value`): the event is read
/// as raw JSON first and then as the variant its `kind` names, so a raw payload inside
/// it keeps its exact text (a derived internally tagged enum buffers its content, and a
/// buffered [`RawPayload`] cannot be read back).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// Something that can page.
    Alert(Alert),
    /// A deploy, push or other change, shown as context on incidents; never pages.
    Change(ChangeEvent),
    /// An acknowledge/resolve request sent by a tool (PagerDuty Events API semantics).
    Action(ActionEvent),
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;

        /// Only the tag; every other field is skipped.
        #[derive(Deserialize)]
        struct Kind<'a> {
            #[serde(borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        const KINDS: &[&str] = &["alert", "change", "action"];

        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let json = raw.get();
        let kind = serde_json::from_str::<Kind<'_>>(json).map_err(D::Error::custom)?;
        let event = match kind.kind.as_ref() {
            "alert" => serde_json::from_str(json).map(Event::Alert),
            "change" => serde_json::from_str(json).map(Event::Change),
            "action" => serde_json::from_str(json).map(Event::Action),
            other => return Err(D::Error::unknown_variant(other, KINDS)),
        };
        event.map_err(D::Error::custom)
    }
}

impl Event {
    /// The integration that produced this event.
    pub fn source(&self) -> &Source {
        match self {
            Event::Alert(a) => &a.source,
            Event::Change(c) => &c.source,
            Event::Action(a) => &a.source,
        }
    }
}

/// Where an event came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
///
/// Both fields are shared strings: a provider builds one `Source` per integration and
/// every event clones it (a reference-count increment, no allocation). The JSON form
/// is two plain strings.
pub struct Source {
    /// Provider type, e.g. `alertmanager`, `grafana`, `pagerduty`.
    pub provider: Arc<str>,
    /// The integration (configured instance of a provider) that received it.
    pub integration: Arc<str>,
}

/// Whether an alert is currently firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition cleared.
    Resolved,
}

/// Severity, most severe first (so `Critical < Info` in `Ord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Wake someone up.
    Critical,
    /// Something is broken.
    Error,
    /// Something may break.
    Warning,
    /// For information.
    Info,
}

impl Severity {
    /// Parses the common spellings tools use (`crit`, `page`, `err`, `warn`, `information`, …).
    pub fn parse_lenient(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "p1" | "page" | "fatal" | "emergency" | "alert" | "high" => {
                Some(Severity::Critical)
            }
            "error" | "err" | "p2" | "major" => Some(Severity::Error),
            "warning" | "warn" | "p3" | "minor" | "medium" => Some(Severity::Warning),
            "info" | "information" | "informational" | "p4" | "p5" | "low" | "notice" | "debug"
            | "none" => Some(Severity::Info),
            _ => None,
        }
    }

    /// Lowercase name as used in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A hyperlink attached to an alert or change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    /// Target URL.
    pub href: String,
    /// Human-readable text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// An image (graph snapshot) attached to an alert.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Image {
    /// Image URL.
    pub src: String,
    /// Where clicking the image leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Alternative text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
}

/// A normalized alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Producing integration.
    pub source: Source,
    /// Provider-supplied deduplication key, if the provider has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Normalized severity.
    pub severity: Severity,
    /// One-line summary.
    pub summary: String,
    /// Free-form structured details from the provider.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
    /// Identifying labels (Alertmanager semantics: same labels, same alert).
    #[serde(default)]
    pub labels: Labels,
    /// Non-identifying annotations.
    #[serde(default, skip_serializing_if = "Annotations::is_empty")]
    pub annotations: Annotations,
    /// Links (dashboards, runbooks, source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Images (graphs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// When the condition started, if the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// When the condition ended (or is expected to end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    /// A hint naming the service this alert is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The raw provider payload for this alert, kept for audit.
    #[serde(default, skip_serializing_if = "RawPayload::is_null")]
    pub raw: RawPayload,
}

impl Alert {
    /// The alert's identity: see [`Fingerprint`].
    pub fn fingerprint(&self) -> Fingerprint {
        match &self.dedup_key {
            Some(k) => Fingerprint::of_dedup_key(&self.source.integration, k),
            None => Fingerprint::of_labels(&self.labels),
        }
    }

    /// A minimal firing alert with the given labels, for tests and embedders.
    pub fn firing(source: Source, summary: impl Into<String>, labels: Labels) -> Self {
        Alert {
            source,
            dedup_key: None,
            status: AlertStatus::Firing,
            severity: Severity::Error,
            summary: summary.into(),
            details: serde_json::Value::Null,
            labels,
            annotations: Annotations::new(),
            links: Vec::new(),
            images: Vec::new(),
            starts_at: None,
            ends_at: None,
            service: None,
            raw: RawPayload::null(),
        }
    }
}

/// A change event (deploy, push, config change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Producing integration.
    pub source: Source,
    /// One-line summary, e.g. "Deployed api v1.4.2 to production".
    pub summary: String,
    /// When the change happened.
    pub timestamp: Timestamp,
    /// Service hint (name or repository URL) used to link the change to a service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Repository URL, when the change came from a forge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Labels (environment, ref, …).
    #[serde(default)]
    pub labels: Labels,
    /// Links (commit, deployment, pipeline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Free-form details.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
    /// The raw provider payload, kept for audit.
    #[serde(default, skip_serializing_if = "RawPayload::is_null")]
    pub raw: RawPayload,
}

/// What an action event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Acknowledge the alert's incident.
    Acknowledge,
    /// Resolve the alert.
    Resolve,
}

/// An acknowledge/resolve request from a tool, addressed by dedup key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// Producing integration (the dedup key is scoped to it).
    pub source: Source,
    /// Which action.
    pub action: ActionKind,
    /// The dedup key of the alert acted upon.
    pub dedup_key: String,
    /// The raw provider payload, kept for audit.
    #[serde(default, skip_serializing_if = "RawPayload::is_null")]
    pub raw: RawPayload,
}

impl ActionEvent {
    /// The fingerprint of the alert this action addresses.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_dedup_key(&self.source.integration, &self.dedup_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_has_kind_and_status() {
        let mut labels = Labels::new();
        labels.insert("alertname".into(), "HighLatency".into());
        let a = Alert::firing(
            Source {
                provider: "alertmanager".into(),
                integration: "prom".into(),
            },
            "latency high",
            labels,
        );
        let v = serde_json::to_value(Event::Alert(a.clone())).unwrap();
        assert_eq!(v["kind"], "alert");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["severity"], "error");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, Event::Alert(a));
    }

    #[test]
    fn events_with_raw_payloads_read_back_from_text_and_value() {
        let mut labels = Labels::new();
        labels.insert("alertname".into(), "DiskFull".into());
        let mut a = Alert::firing(
            Source {
                provider: "alertmanager".into(),
                integration: "prom".into(),
            },
            "disk full",
            labels,
        );
        a.raw = RawPayload::from_json(r#"{"labels":{"alertname":"DiskFull"},"n":1.50}"#).unwrap();
        let text = serde_json::to_string(&Event::Alert(a.clone())).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, Event::Alert(a.clone()));
        let Event::Alert(back) = back else {
            unreachable!()
        };
        // The payload's own text survives (a number written as 1.50 stays so).
        assert!(back.raw.compact_json().contains("1.50"));
        let from_value: Vec<Event> = serde_json::from_value(serde_json::json!([
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        ]))
        .unwrap();
        assert_eq!(from_value.len(), 1);
        let bad = serde_json::from_str::<Event>(r#"{"kind":"page","summary":"x"}"#).unwrap_err();
        assert!(bad.to_string().contains("unknown variant `page`"), "{bad}");
        let untagged = serde_json::from_str::<Event>(r#"{"summary":"x"}"#).unwrap_err();
        assert!(untagged.to_string().contains("kind"), "{untagged}");
    }

    #[test]
    fn severity_lenient_parsing() {
        assert_eq!(Severity::parse_lenient("CRIT"), Some(Severity::Critical));
        assert_eq!(Severity::parse_lenient("warn"), Some(Severity::Warning));
        assert_eq!(Severity::parse_lenient("bogus"), None);
        assert!(Severity::Critical < Severity::Info);
    }
}
