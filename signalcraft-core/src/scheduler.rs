//! The timer seam: durable, idempotent timed jobs (group flushes, escalations,
//! notification-rule steps, delivery retries, handoffs).

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// What a job does when it comes due. The engine interprets it; schedulers treat it
/// as opaque data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobKind {
    /// Flush an aggregation group (group_wait / group_interval / repeat_interval / resolve_wait).
    GroupFlush {
        /// Aggregation group key.
        group_key: String,
    },
    /// Run an escalation policy step for an incident.
    Escalate {
        /// Incident id.
        incident_id: String,
        /// Escalation level index (0-based).
        level: u32,
        /// Which repetition of the policy (0-based).
        repeat: u32,
    },
    /// Run one step of a user's notification rules for an incident.
    NotifyRule {
        /// Incident id.
        incident_id: String,
        /// User id.
        user_id: String,
        /// Index into the user's rule list for the incident's urgency.
        rule: u32,
    },
    /// Retry (or time out) a delivery attempt.
    Delivery {
        /// Notification id.
        notification_id: String,
        /// Attempt number (1-based) to run.
        attempt: u32,
    },
    /// A schedule handoff notification.
    Handoff {
        /// Schedule id.
        schedule_id: String,
    },
    /// Anything else (embedder-defined).
    Custom {
        /// Name the embedder dispatches on.
        name: String,
        /// Arbitrary payload.
        payload: serde_json::Value,
    },
}

/// A timed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Idempotency key: at most one pending job per id.
    pub id: String,
    /// When it should run.
    pub due: Timestamp,
    /// What to do.
    pub kind: JobKind,
    /// How many times it was claimed before (0 on first run; >0 means a previous run
    /// crashed or failed before completing).
    #[serde(default)]
    pub attempts: u32,
}

/// Durable timed jobs.
///
/// Contract:
/// * `schedule` is idempotent by [`Job::id`]: scheduling an id that is already pending
///   replaces its due time and kind (re-arm) rather than adding a second job.
/// * `claim_due` returns jobs with `due <= now` in (due, id) order and leases them for
///   `lease`; a claimed job that is not `complete`d before its lease expires (the
///   process crashed) is returned again by a later `claim_due`, with `attempts` increased.
///   A durable scheduler releases every claim when it is reopened, so after a restart
///   every job due in the past runs (late) and every future job stays armed.
/// * `complete` removes the job; `cancel` removes a pending job (returns whether it existed).
/// * Jobs survive restarts exactly when the implementation is durable; an acknowledged
///   `schedule` is never lost by a durable implementation.
/// * Running a job twice must be harmless: the engine makes effects idempotent
///   (the notification log), the scheduler guarantees at-least-once.
#[async_trait]
pub trait Scheduler: Send + Sync + 'static {
    /// Adds or re-arms a job.
    async fn schedule(&self, job: Job) -> Result<(), StoreError>;

    /// Removes a pending job. Returns `true` if it existed.
    async fn cancel(&self, id: &str) -> Result<bool, StoreError>;

    /// Removes every pending job whose id starts with `prefix`; returns how many.
    async fn cancel_prefix(&self, prefix: &str) -> Result<usize, StoreError>;

    /// Claims up to `limit` due jobs.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError>;

    /// Marks a claimed job done.
    async fn complete(&self, id: &str) -> Result<(), StoreError>;

    /// The earliest instant at which `claim_due` could return a job: the earliest due
    /// time of an unclaimed job or lease expiry of a claimed one.
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;

    /// All pending jobs (claimed or not), in (due, id) order. For inspection and tests.
    async fn pending(&self) -> Result<Vec<Job>, StoreError>;
}
