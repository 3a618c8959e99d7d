//! Typed internal events for metrics and logs ([`EventSink`]).

use crate::model::Fingerprint;

/// Something the engine did, for counters and structured logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// An alert event was accepted.
    AlertReceived {
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// An identical firing alert was re-sent and changed nothing.
    AlertDeduplicated {
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// A firing alert was held back by a silence at flush time.
    AlertSilenced {
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// A firing alert was held back by an inhibit rule at flush time.
    AlertInhibited {
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// A notification was handed to the notifier and accepted.
    NotificationSent {
        /// Receiver.
        receiver: String,
        /// Channel name.
        channel: String,
    },
    /// The notifier refused a notification.
    NotificationFailed {
        /// Receiver.
        receiver: String,
        /// Channel name.
        channel: String,
        /// Redacted reason.
        reason: String,
    },
    /// An incident was opened.
    IncidentOpened {
        /// Incident id.
        incident_id: String,
    },
    /// An incident changed state.
    IncidentStateChanged {
        /// Incident id.
        incident_id: String,
        /// New state name.
        state: &'static str,
    },
    /// A timed job ran.
    JobRun {
        /// Job kind tag (`group_flush`, `escalate`, …).
        kind: &'static str,
    },
    /// Journaled events could not be applied (or released) yet; nothing is lost, they
    /// stay in the journal and are replayed.
    JournalTrouble {
        /// What failed.
        reason: String,
    },
}

/// Receives [`EngineEvent`]s synchronously; must be cheap and never block.
pub trait EventSink: Send + Sync + 'static {
    /// Records one event.
    fn emit(&self, event: &EngineEvent);
}

/// Discards every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopSink;

impl EventSink for NoopSink {
    fn emit(&self, _event: &EngineEvent) {}
}
