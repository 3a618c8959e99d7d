//! Incidents: what an aggregation group becomes once it notifies.
//!
//! * [`state`]: the enforced state machine.
//! * [`timeline`]: the append-only timeline and [`Actor`].
//! * [`audit`]: the audit log entry type.
//!
//! Store keys: `Table::Incidents` by [`Incident::id`] (`inc-` + 10-digit number, so keys
//! sort by number); `Table::Timeline` by `<incident id>/<seq, 10 digits>`, one record
//! per entry or per run of consecutive entries appended together, keyed by the run's
//! first `seq` ([`timeline::encode_run`], read back by [`timeline::decode_stored`]).

pub mod audit;
pub mod state;
pub mod timeline;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::channel::IncidentRef;
use crate::model::{Labels, Link, Severity};

pub use audit::{AuditEntry, AuditQuery};
pub use state::IncidentState;
pub use timeline::{Actor, EntryKind, TimelineEntry};

/// Paging urgency (PagerDuty semantics): high pages now, low can wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// Page immediately.
    High,
    /// Notify without waking anyone.
    Low,
}

impl Urgency {
    /// Default urgency for a severity: critical and error are high.
    pub fn from_severity(s: Severity) -> Self {
        match s {
            Severity::Critical | Severity::Error => Urgency::High,
            Severity::Warning | Severity::Info => Urgency::Low,
        }
    }
}

/// Incident response roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the response.
    Commander,
    /// Keeps the timeline.
    Scribe,
    /// Talks to stakeholders.
    Comms,
}

impl Role {
    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "commander" => Some(Role::Commander),
            "scribe" => Some(Role::Scribe),
            "comms" => Some(Role::Comms),
            _ => None,
        }
    }
}

/// A note on an incident (also recorded in the timeline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// Text.
    pub text: String,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id: `inc-` followed by the 10-digit zero-padded number.
    pub id: String,
    /// Short human number, monotonic from 1.
    pub number: u64,
    /// Title (the first alert's summary, or the group labels).
    pub title: String,
    /// Current state.
    pub state: IncidentState,
    /// Highest severity seen among its alerts.
    pub severity: Severity,
    /// Paging urgency.
    pub urgency: Urgency,
    /// Service id, if routed to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Aggregation group key it came from.
    pub group_key: String,
    /// Route id that produced it.
    pub route: String,
    /// Receiver name.
    pub receiver: String,
    /// The group's labels (route group_by values).
    #[serde(default)]
    pub group_labels: Labels,
    /// Assigned escalation policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy: Option<String>,
    /// Directly assigned users.
    #[serde(default)]
    pub assignees: Vec<String>,
    /// Role assignments.
    #[serde(default)]
    pub roles: BTreeMap<Role, String>,
    /// Notes (also in the timeline).
    #[serde(default)]
    pub notes: Vec<Note>,
    /// Runbook links (route's then service's).
    #[serde(default)]
    pub runbooks: Vec<Link>,
    /// Fingerprints of the alerts that belong to it (firing or resolved).
    #[serde(default)]
    pub alerts: Vec<crate::model::Fingerprint>,
    /// Created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// First acknowledgement of the current opening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Timestamp>,
    /// Mitigated at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigated_at: Option<Timestamp>,
    /// Resolved at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// Closed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    /// Number of timeline entries (the next entry's `seq`).
    #[serde(default)]
    pub timeline_len: u64,
    /// Paging assignment generation: bumped on every re-open and reassignment so
    /// escalation jobs armed for an earlier assignment are stale.
    #[serde(default)]
    pub paging_generation: u32,
    /// Incidents opened on the same escalation policy before this one (round-robin).
    #[serde(default)]
    pub round_robin_cursor: u64,
}

impl Incident {
    /// The id for an incident number.
    pub fn id_for(number: u64) -> String {
        format!("inc-{number:010}")
    }

    /// The store key of a timeline entry.
    pub fn timeline_key(incident_id: &str, seq: u64) -> String {
        format!("{incident_id}/{seq:010}")
    }

    /// The compact form channels render.
    pub fn to_ref(&self, service_name: Option<String>, external_url: Option<&str>) -> IncidentRef {
        IncidentRef {
            id: self.id.clone(),
            number: self.number,
            title: self.title.clone(),
            state: self.state.as_str().into(),
            severity: self.severity,
            service: service_name.or_else(|| self.service.clone()),
            url: external_url.map(|u| format!("{}/incidents/{}", u.trim_end_matches('/'), self.id)),
        }
    }
}

/// Filters for listing incidents. All set fields must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentFilter {
    /// Only these states (empty = any).
    #[serde(default)]
    pub states: Vec<IncidentState>,
    /// Only this service id.
    #[serde(default)]
    pub service: Option<String>,
    /// Only this urgency.
    #[serde(default)]
    pub urgency: Option<Urgency>,
    /// Only incidents assigned to this user (assignee or role holder).
    #[serde(default)]
    pub user: Option<String>,
    /// Cursor: only incidents with id strictly less than this (newest first paging).
    #[serde(default)]
    pub before: Option<String>,
    /// Page size (0 = 50, max 500).
    #[serde(default)]
    pub limit: usize,
}

impl IncidentFilter {
    /// Whether an incident passes the filter (cursor excluded).
    pub fn matches(&self, i: &Incident) -> bool {
        (self.states.is_empty() || self.states.contains(&i.state))
            && self
                .service
                .as_ref()
                .is_none_or(|s| i.service.as_ref() == Some(s))
            && self.urgency.is_none_or(|u| i.urgency == u)
            && self
                .user
                .as_ref()
                .is_none_or(|u| i.assignees.contains(u) || i.roles.values().any(|r| r == u))
    }

    /// The effective page size.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => 50,
            n => n.min(500),
        }
    }
}

/// One page of results with the cursor for the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `before` to get the next page; `None` at the end.
    pub next: Option<String>,
}
