//! The typed result of an inbound callback: "this person wants to do this to
//! that incident". The server's handlers pass it to the engine.

use serde::{Deserialize, Serialize};

/// Which incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum IncidentSelector {
    /// By stable id (Slack buttons carry it).
    Id(String),
    /// By short number (SMS replies: "ack 123").
    Number(u64),
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    /// Acknowledge.
    Acknowledge,
    /// Resolve.
    Resolve,
    /// Escalate to the next level now.
    Escalate,
}

/// Who asked, as the channel knows them (the server maps this to a user through
/// their contact methods).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalActor {
    /// Channel kind: `slack`, `sms`, `voice`.
    pub channel: String,
    /// Slack user id, or the phone number in E.164.
    pub id: String,
    /// Display name, when the channel provides one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A verified request to act on an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentActionRequest {
    /// The incident.
    pub incident: IncidentSelector,
    /// The action.
    pub action: IncidentAction,
    /// Who.
    pub actor: ExternalActor,
}
