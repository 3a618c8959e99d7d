//! The remediation seam: running an approved action (a WASM plugin in the reference
//! implementation, `signalcraft-plugins`) against an incident.
//!
//! * This file: the [`RemediationRunner`] seam and its request/outcome/error types.
//! * [`gate`]: approval gating (auto / approval by role), dry runs, and the
//!   [`gate::RemediationRecord`] every run leaves in the timeline and audit log.

pub mod gate;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The input a remediation receives (ABI v1 JSON input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationRequest {
    /// Plugin name.
    pub plugin: String,
    /// Incident id; a plugin may only act on this incident.
    pub incident_id: String,
    /// Incident snapshot (JSON form).
    pub incident: serde_json::Value,
    /// The incident's alerts (JSON form).
    #[serde(default)]
    pub alerts: Vec<serde_json::Value>,
    /// The service, if any (JSON form).
    #[serde(default)]
    pub service: Option<serde_json::Value>,
    /// Runbook URLs.
    #[serde(default)]
    pub runbooks: Vec<String>,
    /// The action's parameters (validated against the plugin's parameter schema).
    #[serde(default)]
    pub params: serde_json::Value,
    /// Plan only: the plugin must not cause side effects.
    #[serde(default)]
    pub dry_run: bool,
}

/// A follow-up the plugin asks the engine to apply to its own incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FollowUp {
    /// Resolve the incident.
    Resolve,
    /// Acknowledge the incident.
    Acknowledge,
    /// Mark the incident mitigated.
    Mitigate,
    /// Add a note to the timeline.
    Note {
        /// Note text.
        text: String,
    },
}

/// Outcome status reported by a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationStatus {
    /// The action succeeded.
    Success,
    /// The action ran and failed.
    Failure,
    /// Nothing needed doing.
    Noop,
}

/// What a run produced, with its resource usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationOutcome {
    /// Status reported by the plugin.
    pub status: RemediationStatus,
    /// Human-readable message.
    pub message: String,
    /// Structured details.
    #[serde(default)]
    pub details: serde_json::Value,
    /// Optional follow-up action on the incident.
    #[serde(default)]
    pub follow_up: Option<FollowUp>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Peak linear memory in bytes.
    pub memory_peak: u64,
    /// Wall time.
    #[serde(with = "duration_micros")]
    pub duration: Duration,
    /// Lines the plugin logged through the `log` host call (bounded by the runner).
    #[serde(default)]
    pub logs: Vec<String>,
}

/// Why a run did not produce an outcome.
#[derive(Debug, Clone, Error, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RemediationError {
    /// No such plugin.
    #[error("unknown plugin {0:?}")]
    UnknownPlugin(String),
    /// The guest trapped (unreachable, out-of-bounds, stack overflow, …).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The fuel budget ran out.
    #[error("plugin ran out of fuel")]
    OutOfFuel,
    /// The wall-clock deadline passed.
    #[error("plugin timed out after {0:?}")]
    Timeout(Duration),
    /// The run was cancelled before it finished.
    #[error("plugin run cancelled")]
    Cancelled,
    /// The guest exceeded its memory limit.
    #[error("plugin exceeded its memory limit")]
    MemoryLimit,
    /// The guest used a capability it was not granted.
    #[error("plugin denied: {0}")]
    Denied(String),
    /// The guest's output broke the ABI (bad pointer, invalid UTF-8 or JSON).
    #[error("plugin broke the ABI: {0}")]
    Abi(String),
    /// The module could not be loaded (hash mismatch, invalid module, missing export/import).
    #[error("plugin could not be loaded: {0}")]
    Load(String),
    /// Input failed validation against the parameter schema.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// The runner has no free capacity right now (every sandbox slot is in use); retry later.
    #[error("remediation runner busy: {0}")]
    Busy(String),
}

/// Runs remediations.
///
/// Contract: `run` never panics and never lets a guest harm the host: every failure
/// of the guest is a [`RemediationError`]; the runner stays usable afterwards.
#[async_trait]
pub trait RemediationRunner: Send + Sync {
    /// Runs one remediation.
    async fn run(&self, req: RemediationRequest) -> Result<RemediationOutcome, RemediationError>;

    /// Names of the plugins this runner can run.
    fn plugins(&self) -> Vec<String>;
}

mod duration_micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}
