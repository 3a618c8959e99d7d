//! The outbound seam: a [`Channel`] delivers one rendered [`Notification`] to one
//! target (a Slack channel, an email address, a phone, a webhook URL).

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{Alert, AlertStatus, ChangeEvent, CompactAlert, Labels, Link, Severity};

/// What a notification is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotificationKind {
    /// A group of alerts / an incident changed (new alerts, repeat, resolved).
    Incident,
    /// A person is being paged for an incident (escalation or "page user").
    Page {
        /// Escalation level (1-based) or 0 for an ad-hoc page.
        level: u32,
        /// Optional message from the person who paged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// An on-call shift is starting or ending.
    Handoff {
        /// Schedule name.
        schedule: String,
        /// `true` for the incoming person, `false` for the outgoing.
        incoming: bool,
    },
    /// A test message sent by an operator.
    Test,
}

/// The incident a notification refers to, as channels need it to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRef {
    /// Stable incident id.
    pub id: String,
    /// Short human number (e.g. 123, used in "ack 123" SMS replies).
    pub number: u64,
    /// Title.
    pub title: String,
    /// Current state, lowercase (`open`, `acknowledged`, …).
    pub state: String,
    /// Highest severity among its alerts.
    pub severity: Severity,
    /// Service name, if routed to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Link to the incident in the UI/API, if the server knows its external URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Who/where a notification goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// Channel-specific address: Slack channel id, email address, E.164 phone number, URL.
    pub address: String,
    /// The user being notified, if the target is a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A notification ready for a channel to render and send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key: a channel that supports it (or the notification log) uses it
    /// so the same notification is never delivered twice.
    pub id: String,
    /// What this is about.
    pub kind: NotificationKind,
    /// Aggregation group key (Alertmanager's `groupKey`).
    pub group_key: String,
    /// `firing` if any alert in the group fires, else `resolved`.
    pub status: AlertStatus,
    /// The incident, if one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentRef>,
    /// The alerts in the group at notification time (firing and resolved).
    #[serde(default)]
    pub alerts: NotificationAlerts,
    /// The route's group-by labels and their values.
    #[serde(default)]
    pub group_labels: Labels,
    /// Labels every alert shares.
    #[serde(default)]
    pub common_labels: Labels,
    /// Annotations every alert shares.
    #[serde(default)]
    pub common_annotations: crate::model::Annotations,
    /// Runbook links from the route and the service.
    #[serde(default)]
    pub runbooks: Vec<Link>,
    /// Recent change events for the service.
    #[serde(default)]
    pub recent_changes: Vec<ChangeEvent>,
    /// Receiver (route receiver name) this was produced for.
    pub receiver: String,
    /// Where it goes.
    pub target: Target,
    /// The server's external URL, used for links and action buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// When the engine produced it.
    pub created_at: Timestamp,
}

/// The alerts of a [`Notification`]: derefs to `[Alert]`, and reads and writes as a
/// plain list of alerts (JSON array, `From<Vec<Alert>>`).
///
/// The engine builds a notification's alerts from its packed in-memory alerts
/// ([`NotificationAlerts::from_packed`]) without unpacking them: the full [`Alert`]s
/// are built once, on the first use of the slice. A renderer that can work from the
/// packed form ([`NotificationAlerts::packed`], e.g. the webhook body and the
/// notification log's row) never builds them, which saves a dozen small allocations
/// (and frees) per alert on the first-notification path. [`NotificationAlerts::len`]
/// and [`NotificationAlerts::is_empty`] never build them either.
#[derive(Default)]
pub struct NotificationAlerts {
    /// The packed alerts, when built from them (the source of truth then), and their
    /// full form once built.
    packed: Option<(Box<[CompactAlert]>, Unpacked)>,
    /// The full alerts when not built from packed ones.
    full: Vec<Alert>,
}

/// The full form of packed alerts, built on first use.
type Unpacked = std::sync::OnceLock<Vec<Alert>>;

fn unpack(packed: &[CompactAlert]) -> Vec<Alert> {
    packed.iter().map(CompactAlert::to_alert).collect()
}

impl NotificationAlerts {
    /// Alerts kept packed until the slice is used; each reads back as
    /// [`CompactAlert::to_alert`] (a null raw payload).
    pub fn from_packed(packed: Vec<CompactAlert>) -> Self {
        NotificationAlerts {
            packed: Some((packed.into_boxed_slice(), std::sync::OnceLock::new())),
            full: Vec::new(),
        }
    }

    /// The packed alerts, when built with [`NotificationAlerts::from_packed`] (and not
    /// changed since through [`NotificationAlerts::to_mut`]); the slice holds exactly
    /// their [`CompactAlert::to_alert`]s.
    pub fn packed(&self) -> Option<&[CompactAlert]> {
        self.packed.as_ref().map(|(p, _)| &**p)
    }

    /// Whether the full alerts exist (given, or built from the packed ones).
    pub fn unpacked(&self) -> bool {
        self.packed
            .as_ref()
            .is_none_or(|(_, full)| full.get().is_some())
    }

    /// How many alerts (builds nothing).
    pub fn len(&self) -> usize {
        self.packed
            .as_ref()
            .map_or(self.full.len(), |(p, _)| p.len())
    }

    /// Whether there are none (builds nothing).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The full alerts (built from the packed ones on first use).
    pub fn as_slice(&self) -> &[Alert] {
        match &self.packed {
            Some((p, full)) => full.get_or_init(|| unpack(p)),
            None => &self.full,
        }
    }

    /// The full alerts for changing (the packed form is dropped).
    pub fn to_mut(&mut self) -> &mut Vec<Alert> {
        if let Some((p, full)) = self.packed.take() {
            self.full = full.into_inner().unwrap_or_else(|| unpack(&p));
        }
        &mut self.full
    }

    /// The full alerts, by value.
    pub fn into_vec(mut self) -> Vec<Alert> {
        std::mem::take(self.to_mut())
    }
}

impl From<Vec<Alert>> for NotificationAlerts {
    fn from(alerts: Vec<Alert>) -> Self {
        NotificationAlerts {
            packed: None,
            full: alerts,
        }
    }
}

impl FromIterator<Alert> for NotificationAlerts {
    fn from_iter<I: IntoIterator<Item = Alert>>(iter: I) -> Self {
        Vec::from_iter(iter).into()
    }
}

impl std::ops::Deref for NotificationAlerts {
    type Target = [Alert];
    fn deref(&self) -> &[Alert] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for NotificationAlerts {
    /// The full alerts for changing in place (the packed form is dropped).
    fn deref_mut(&mut self) -> &mut [Alert] {
        self.to_mut()
    }
}

impl<'a> IntoIterator for &'a NotificationAlerts {
    type Item = &'a Alert;
    type IntoIter = std::slice::Iter<'a, Alert>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl Clone for NotificationAlerts {
    fn clone(&self) -> Self {
        match &self.packed {
            // The copy builds its full alerts when it needs them.
            Some((p, _)) => NotificationAlerts {
                packed: Some((p.clone(), std::sync::OnceLock::new())),
                full: Vec::new(),
            },
            None => self.full.clone().into(),
        }
    }
}

impl PartialEq for NotificationAlerts {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Vec<Alert>> for NotificationAlerts {
    fn eq(&self, other: &Vec<Alert>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl std::fmt::Debug for NotificationAlerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Serialize for NotificationAlerts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for NotificationAlerts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Alert>::deserialize(d).map(Into::into)
    }
}

/// A successful delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The provider's id for the message (Slack `ts`, Twilio SID, SMTP queue id).
    pub provider_message_id: Option<String>,
}

/// What the delivery pipeline knows from the notification log about earlier
/// deliveries, handed to [`Channel::deliver_in`]. Build it with
/// `DeliveryContext { .., ..Default::default() }` so new fields stay additive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryContext {
    /// The provider message id ([`Delivered::provider_message_id`]) of the latest
    /// message this channel instance delivered about the same incident to the same
    /// target, read from the notification log. Only looked up when the channel
    /// asks for it ([`Channel::wants_previous_message`]); `None` otherwise or when
    /// there is none.
    pub previous_message_id: Option<String>,
}

/// Whether a failed delivery is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAction {
    /// Transient: retry with backoff (honouring `retry_after` when given).
    Retry,
    /// Permanent: retrying cannot help; fail over instead.
    DontRetry,
}

/// A failed delivery, classified. `Display` never contains secrets or credentials.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryError {
    /// Timeouts, connection errors, 429, 5xx.
    #[error("retryable: {reason}")]
    Retryable {
        /// Redacted reason.
        reason: String,
        /// Server-requested delay (Retry-After), if any.
        retry_after: Option<Duration>,
    },
    /// Other 4xx, bad configuration, rejected recipient.
    #[error("permanent: {reason}")]
    Permanent {
        /// Redacted reason.
        reason: String,
    },
}

impl DeliveryError {
    /// Retry or not.
    pub fn retry_action(&self) -> RetryAction {
        match self {
            DeliveryError::Retryable { .. } => RetryAction::Retry,
            DeliveryError::Permanent { .. } => RetryAction::DontRetry,
        }
    }

    /// Classifies an HTTP status the way every HTTP channel must: 429 and 5xx
    /// (and 408) are retryable, other 4xx permanent. `None` for 1xx–3xx success-ish codes.
    pub fn from_http_status(
        status: u16,
        reason: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Option<Self> {
        let reason = reason.into();
        match status {
            408 | 429 | 500..=599 => Some(DeliveryError::Retryable {
                reason,
                retry_after,
            }),
            400..=499 => Some(DeliveryError::Permanent { reason }),
            _ => None,
        }
    }
}

/// An outbound channel type instance (one configured Slack app, SMTP relay, Twilio account, webhook).
///
/// Contract:
/// * `deliver` sends one notification to `n.target` and classifies any failure as
///   [`DeliveryError::Retryable`] or [`DeliveryError::Permanent`]; it does not retry itself
///   (the delivery policy does) and bounds its own I/O by a timeout.
/// * Errors and logs never contain secrets (tokens, passwords, signed URLs).
/// * `health_check` performs a cheap authenticated round trip (Slack `auth.test`,
///   SMTP NOOP, Twilio account fetch).
#[async_trait]
pub trait Channel: Send + Sync {
    /// Channel type name, e.g. `slack`, `email`, `sms`, `voice`, `webhook`.
    fn kind(&self) -> &str;

    /// Channel instance name from config (distinguishes a second SMS provider).
    fn name(&self) -> &str;

    /// Delivers one notification.
    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError>;

    /// Whether delivering `n` needs [`DeliveryContext::previous_message_id`]: a
    /// channel that keeps one message per incident current (Slack `chat.update`)
    /// answers `true` when it does not know that message itself (e.g. after a
    /// restart). The lookup reads the incident's delivery trail, so answer `false`
    /// whenever the channel can do without. Default: `false`.
    fn wants_previous_message(&self, n: &Notification) -> bool {
        let _ = n;
        false
    }

    /// Delivers one notification with what the pipeline knows about earlier
    /// deliveries. Same contract as [`Channel::deliver`], which the default calls.
    /// The delivery pipeline calls this one when [`Channel::wants_previous_message`]
    /// answered `true`, and `deliver` otherwise.
    async fn deliver_in(
        &self,
        n: &Notification,
        ctx: &DeliveryContext,
    ) -> Result<Delivered, DeliveryError> {
        let _ = ctx;
        self.deliver(n).await
    }

    /// Checks the channel can reach its provider.
    async fn health_check(&self) -> Result<(), DeliveryError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;

    fn alert(n: u32) -> Alert {
        let mut labels = Labels::new();
        labels.insert("alertname".into(), "Disk".into());
        labels.insert("instance".into(), format!("i{n}"));
        let mut a = Alert::firing(
            Source {
                provider: "alertmanager".into(),
                integration: "prom".into(),
            },
            format!("disk full {n}"),
            labels,
        );
        a.annotations.insert("summary".into(), format!("s{n}"));
        a
    }

    #[test]
    fn packed_alerts_read_as_their_unpacked_form_and_unpack_only_when_used() {
        let full: Vec<Alert> = (0..3).map(alert).collect();
        let packed =
            NotificationAlerts::from_packed(full.iter().map(CompactAlert::from_alert).collect());
        // Counted and copied without unpacking.
        assert_eq!(packed.len(), 3);
        assert!(!packed.is_empty());
        let copy = packed.clone();
        assert!(!packed.unpacked() && !copy.unpacked());
        assert_eq!(packed.packed().map(<[_]>::len), Some(3));
        // The slice is the unpacked alerts (a raw payload is not kept).
        assert_eq!(&packed[..], &full[..]);
        assert!(packed.unpacked());
        assert_eq!(copy, packed);
        // The JSON is the plain list of alerts, and reads back as one.
        let json = serde_json::to_string(&copy).unwrap();
        assert_eq!(json, serde_json::to_string(&full).unwrap());
        let back: NotificationAlerts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, full);
        assert!(back.packed().is_none());
        // Changing it drops the packed form, so renderers see the change.
        let mut changed = copy;
        changed[1].summary = "changed".into();
        assert!(changed.packed().is_none());
        assert_eq!(changed[1].summary, "changed");
        assert_eq!(changed.len(), 3);
        changed.to_mut().push(alert(9));
        assert_eq!(changed.into_vec().len(), 4);
        // Empty either way.
        assert!(NotificationAlerts::from_packed(Vec::new()).is_empty());
        assert!(NotificationAlerts::default().is_empty());
    }
}
