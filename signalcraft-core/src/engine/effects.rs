//! Effects: what the pure engine core asks the shell to do.

use crate::channel::Notification;
use crate::incident::{Actor, AuditEntry, TimelineEntry};
use crate::model::Fingerprint;
use crate::scheduler::Job;
use crate::store::WriteOp;

use super::events::EngineEvent;

/// A record whose current in-memory state must be written to the Store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Record {
    /// An alert (`Table::Alerts`, key: fingerprint hex).
    Alert(Fingerprint),
    /// An aggregation group by its in-memory hash (`Table::Groups`, key: group key).
    Group(u64),
    /// An incident (`Table::Incidents`, key: id).
    Incident(String),
    /// A silence (`Table::Silences`, key: id).
    Silence(String),
    /// A service (`Table::Services`, key: id).
    Service(String),
}

/// One effect. The shell applies them in this order: writes (one atomic batch),
/// scheduler operations, notifications, escalation hooks, events.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write the record's current state (deduplicated per batch).
    Persist(Record),
    /// A write already encoded (deletes, records leaving memory, change events).
    Write(WriteOp),
    /// Append a timeline entry (`Table::Timeline`).
    Timeline {
        /// Incident id.
        incident_id: String,
        /// The entry (boxed: rare and large, it would otherwise set the size of every
        /// effect the per-alert hot path pushes).
        entry: Box<TimelineEntry>,
    },
    /// Append an audit entry (`Table::Audit`), boxed for the same reason.
    Audit(Box<AuditEntry>),
    /// Schedule (or re-arm) a job (boxed: a `Job` is 112 bytes and would set the size of
    /// every effect; one is pushed per new group, two effects per new alert).
    Schedule(Box<Job>),
    /// Cancel a pending job.
    Cancel(String),
    /// Cancel every pending job whose id starts with this.
    CancelPrefix(String),
    /// Hand a notification to the notifier.
    Notify(Box<Notification>),
    /// Start paging for an incident with its escalation policy.
    StartEscalation {
        /// Incident id.
        incident_id: String,
        /// Policy id.
        policy: String,
    },
    /// Stop paging for an incident (acknowledged, resolved, reassigned).
    StopEscalation {
        /// Incident id.
        incident_id: String,
        /// Who stopped it (for the escalation module's audit).
        actor: Actor,
        /// Why: `acknowledged`, `resolved`, `reassigned`, …
        reason: &'static str,
    },
    /// Page one user for an incident now (the "page user" action); boxed, as `Schedule`.
    PageUser(Box<PageUser>),
    /// A typed internal event for metrics.
    Event(EngineEvent),
}

/// The "page user" action's effect ([`Effect::PageUser`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PageUser {
    /// Incident id.
    pub incident_id: String,
    /// User id.
    pub user: String,
    /// Message from the person paging.
    pub message: Option<String>,
    /// Who paged.
    pub actor: Actor,
}

#[cfg(test)]
mod tests {
    use super::Effect;

    #[test]
    fn effects_stay_small() {
        // Two effects per new alert: their size is fresh memory on the ingest path.
        assert!(
            std::mem::size_of::<Effect>() <= 80,
            "{}",
            std::mem::size_of::<Effect>()
        );
    }
}
