//! The outbound seam: a [`Channel`] delivers one rendered [`Notification`] to one
//! target (a Slack channel, an email address, a phone, a webhook URL).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{Alert, AlertStatus, ChangeEvent, Labels, Link, Severity};

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
    pub alerts: Vec<Alert>,
    /// The route's group-by labels and their values.
    #[serde(default)]
    pub group_labels: Labels,
    /// Labels every alert shares.
    #[serde(default)]
    pub common_labels: Labels,
    /// Annotations every alert shares.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
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
