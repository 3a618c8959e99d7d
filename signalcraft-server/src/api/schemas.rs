//! OpenAPI schemas of the core types the API returns (incidents, timeline entries,
//! alerts, delivery records, audit entries).
//!
//! `signalcraft-core` has no utoipa dependency (it stays free of HTTP concerns), so
//! these documentation-only mirrors describe the JSON the core types serialize to;
//! handlers refer to them with `#[schema(value_type = ...)]` and `body = ...`. A test
//! (`tests/openapi_schemas.rs`) validates real responses against them, so a core
//! change that breaks the documented shape fails CI.
//!
//! Fields the core omits when empty are `Option` here (not required); timestamps are
//! RFC 3339 strings.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

/// Who caused something.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A person.
    User {
        /// User id.
        id: String,
    },
    /// An inbound integration (alert source, Slack, SMS reply gateway).
    Integration {
        /// Integration name.
        id: String,
    },
    /// SignalCraft itself (grouping, escalation, timers).
    System,
    /// A remediation plugin.
    Plugin {
        /// Plugin name.
        name: String,
    },
}

/// A hyperlink.
#[derive(Debug, Serialize, ToSchema)]
pub struct Link {
    /// Target URL.
    pub href: String,
    /// Human-readable text.
    pub text: Option<String>,
}

/// An image (graph snapshot).
#[derive(Debug, Serialize, ToSchema)]
pub struct Image {
    /// Image URL.
    pub src: String,
    /// Where clicking it leads.
    pub href: Option<String>,
    /// Alternative text.
    pub alt: Option<String>,
}

/// Severity, most severe first.
#[derive(Debug, Serialize, ToSchema)]
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

/// Where an incident is in its life.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    /// Triggered; someone is being paged.
    Open,
    /// Someone is on it; escalation stopped.
    Acknowledged,
    /// Impact is over.
    Mitigated,
    /// Over; re-opens on a new firing alert.
    Resolved,
    /// Archived; terminal.
    Closed,
}

/// Paging urgency.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// Page now.
    High,
    /// Notify without waking anyone.
    Low,
}

/// A note on an incident.
#[derive(Debug, Serialize, ToSchema)]
pub struct Note {
    /// When (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// Who.
    pub actor: Actor,
    /// Text.
    pub text: String,
}

/// An incident.
#[derive(Debug, Serialize, ToSchema)]
pub struct Incident {
    /// Stable id: `inc-` and the 10-digit zero-padded number.
    pub id: String,
    /// Short human number.
    #[schema(minimum = 1)]
    pub number: u64,
    /// Title.
    pub title: String,
    /// Current state.
    pub state: IncidentState,
    /// Highest severity among its alerts.
    pub severity: Severity,
    /// Paging urgency.
    pub urgency: Urgency,
    /// Service id, if routed to one.
    pub service: Option<String>,
    /// Aggregation group key it came from.
    pub group_key: String,
    /// Route id that produced it (`route`, `route.routes[0]`, …).
    pub route: String,
    /// Receiver name.
    pub receiver: String,
    /// The group's labels.
    pub group_labels: BTreeMap<String, String>,
    /// Assigned escalation policy.
    pub escalation_policy: Option<String>,
    /// Directly assigned users.
    pub assignees: Vec<String>,
    /// Role (`commander`, `scribe`, `comms`) → user id.
    pub roles: BTreeMap<String, String>,
    /// Notes.
    pub notes: Vec<Note>,
    /// Runbook links.
    pub runbooks: Vec<Link>,
    /// Fingerprints (16 hex digits) of its alerts.
    pub alerts: Vec<String>,
    /// Created (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// First acknowledgement of the current opening.
    #[schema(format = DateTime)]
    pub acknowledged_at: Option<String>,
    /// Mitigated at.
    #[schema(format = DateTime)]
    pub mitigated_at: Option<String>,
    /// Resolved at.
    #[schema(format = DateTime)]
    pub resolved_at: Option<String>,
    /// Closed at.
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
    /// Number of timeline entries.
    pub timeline_len: u64,
    /// Paging assignment generation.
    pub paging_generation: u32,
    /// Incidents opened on the same policy before this one (round-robin).
    pub round_robin_cursor: u64,
}

/// One timeline entry: `seq`, `at`, `actor` and a `type` naming what happened, with
/// that type's fields beside them (e.g. `escalated` has `level` and `targets`,
/// `note` has `text`, `remediation_run` has `plugin`, `status`, `message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// Position in the timeline (0-based, gapless).
    pub seq: u64,
    /// When (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// Who.
    pub actor: Actor,
    /// `ingested`, `opened`, `notified`, `delivery_failed`, `acknowledged`,
    /// `escalated`, `paged`, `mitigated`, `resolved`, `reopened`, `closed`, `note`,
    /// `role_assigned`, `reassigned`, `remediation_run`, `custom`, …
    #[serde(rename = "type")]
    pub kind: String,
}

/// Where an event came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct Source {
    /// Provider type (`alertmanager`, `grafana`, `pagerduty`, …).
    pub provider: String,
    /// The integration that received it.
    pub integration: String,
}

/// Firing or resolved.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition cleared.
    Resolved,
}

/// A normalized alert (`signalcraft.event/v1`, see docs/).
#[derive(Debug, Serialize, ToSchema)]
pub struct Alert {
    /// Producing integration.
    pub source: Source,
    /// Provider-supplied deduplication key.
    pub dedup_key: Option<String>,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Normalized severity.
    pub severity: Severity,
    /// One-line summary.
    pub summary: String,
    /// Free-form details from the provider.
    pub details: Option<serde_json::Value>,
    /// Identifying labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Links.
    pub links: Option<Vec<Link>>,
    /// Images.
    pub images: Option<Vec<Image>>,
    /// When the condition started.
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// When it ended.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    /// Service hint.
    pub service: Option<String>,
    /// The raw provider payload (kept for audit).
    pub raw: Option<serde_json::Value>,
}

/// An alert as stored, with its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRecord {
    /// Fingerprint (16 hex digits).
    pub fingerprint: String,
    /// The alert.
    pub alert: Alert,
    /// First received.
    #[schema(format = DateTime)]
    pub first_seen: String,
    /// Last received.
    #[schema(format = DateTime)]
    pub last_seen: String,
    /// When it resolved.
    #[schema(format = DateTime)]
    pub resolved_at: Option<String>,
    /// Group keys it belongs to.
    pub groups: Vec<String>,
}

/// Status of one delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its turn.
    Queued,
    /// Handed to the channel; outcome unknown.
    Sending,
    /// The provider accepted it.
    Sent,
    /// The provider confirmed delivery (status callback).
    Delivered,
    /// Failed with nothing left to try.
    Failed,
    /// Failed transiently; a retry is scheduled.
    Retrying,
    /// Failed; the next channel of the chain takes over.
    FailedOver,
    /// Not sent on purpose.
    Suppressed,
}

/// One delivery attempt of a notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryRecord {
    /// Notification id.
    pub notification_id: String,
    /// Attempt number (1-based).
    pub attempt: u32,
    /// Chain step (0-based).
    pub step: u32,
    /// Channel instance name.
    pub channel: String,
    /// Channel kind.
    pub channel_kind: String,
    /// Target address (URLs redacted).
    pub target: String,
    /// Incident id.
    pub incident_id: Option<String>,
    /// Current status.
    pub status: DeliveryStatus,
    /// When the attempt started.
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When the status last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Time the channel took (ms).
    pub latency_ms: Option<u64>,
    /// The provider's message id (Twilio sid, Slack ts, …).
    pub provider_message_id: Option<String>,
    /// Redacted error.
    pub error: Option<String>,
    /// When the next attempt is due.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
}

/// A change event (deploy, push, config change).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeEvent {
    /// Producing integration.
    pub source: Source,
    /// One-line summary.
    pub summary: String,
    /// When the change happened.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Service hint.
    pub service: Option<String>,
    /// Repository URL.
    pub repository: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Links.
    pub links: Option<Vec<Link>>,
    /// Details.
    pub details: Option<serde_json::Value>,
    /// The raw provider payload.
    pub raw: Option<serde_json::Value>,
}

/// One audited write.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Unique id.
    pub id: String,
    /// When.
    #[schema(format = DateTime)]
    pub at: String,
    /// Who (the token's principal).
    pub actor: Actor,
    /// What (`incident.acknowledge`, `remediation.approve`, …).
    pub action: String,
    /// On what (`incident/inc-0000000001`).
    pub target: String,
    /// Details.
    pub details: Option<serde_json::Value>,
}

/// A label matcher.
#[derive(Debug, Serialize, ToSchema)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// `=`, `!=`, `=~` (anchored regex) or `!~`.
    #[schema(pattern = "^(=|!=|=~|!~)$")]
    pub op: String,
    /// Value or regex.
    pub value: String,
}

/// A silence.
#[derive(Debug, Serialize, ToSchema)]
pub struct Silence {
    /// Id.
    pub id: String,
    /// All must match for an alert to be silenced.
    pub matchers: Vec<Matcher>,
    /// Start (inclusive).
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// End (exclusive).
    #[schema(format = DateTime)]
    pub ends_at: String,
    /// Author.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Created or last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// Where a remediation run is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for approval.
    PendingApproval,
    /// May start.
    Approved,
    /// Handed to the plugin host.
    Running,
    /// Finished; see its record.
    Completed,
    /// Rejected; never runs.
    Rejected,
}

/// One requested run of a remediation action.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemediationRun {
    /// Run id (`rem-` + number).
    pub id: String,
    /// Action id.
    pub action_id: String,
    /// Plugin.
    pub plugin: String,
    /// The incident it acts on.
    pub incident_id: String,
    /// Who asked (`system` for runs created when the incident opened).
    pub triggered_by: Actor,
    /// When.
    #[schema(format = DateTime)]
    pub requested_at: String,
    /// Plan only.
    pub dry_run: bool,
    /// Parameters.
    pub params: Option<serde_json::Value>,
    /// State.
    pub state: RunState,
    /// Who approved (`{"type":"auto"}` or `{"type":"user","id","role","at"}`).
    pub approval: Option<serde_json::Value>,
    /// Least role that may approve.
    pub approval_role: String,
    /// When it started.
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
}

/// What a finished run produced (also in the timeline and the audit log).
#[derive(Debug, Serialize, ToSchema)]
pub struct RemediationRecord {
    /// Run id.
    pub run_id: String,
    /// Action id.
    pub action_id: String,
    /// Plugin.
    pub plugin: String,
    /// Incident.
    pub incident_id: String,
    /// Who triggered it.
    pub triggered_by: Actor,
    /// Who approved it (`{"type":"auto"}` for auto actions).
    pub approved_by: serde_json::Value,
    /// Plan only.
    pub dry_run: bool,
    /// Parameters the plugin got.
    pub inputs: Option<serde_json::Value>,
    /// Requested.
    #[schema(format = DateTime)]
    pub requested_at: String,
    /// Started.
    #[schema(format = DateTime)]
    pub started_at: String,
    /// Finished.
    #[schema(format = DateTime)]
    pub finished_at: String,
    /// `success`, `failure`, `noop` or `error`.
    pub outcome: String,
    /// The plugin's message, or the error.
    pub message: String,
    /// The plugin's details.
    pub details: Option<serde_json::Value>,
    /// The follow-up applied to the incident (`{"type":"note","text":…}`, …).
    pub follow_up: Option<serde_json::Value>,
    /// The typed error (`{"kind":"out_of_fuel"}`, …) when the run failed.
    pub error: Option<serde_json::Value>,
    /// Wall time (µs).
    pub duration_us: u64,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Peak linear memory (bytes).
    pub memory_peak: u64,
}
