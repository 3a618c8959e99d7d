//! Typed delivery events, emitted before (and instead of) log lines so embedders
//! can count, export or assert on them.

use parking_lot::Mutex;

use super::log::DeliveryStatus;

/// Something the delivery pipeline did.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryEvent {
    /// An attempt finished (any outcome) — one per notification-log record update.
    Attempt {
        /// Notification id.
        notification_id: String,
        /// Channel instance.
        channel: String,
        /// Attempt number (1-based, across the chain).
        attempt: u32,
        /// Final status of this attempt.
        status: DeliveryStatus,
        /// Redacted error, if it failed.
        error: Option<String>,
    },
    /// Moved from one chain step to the next.
    FailedOver {
        /// Notification id.
        notification_id: String,
        /// Channel given up on.
        from: String,
        /// Channel tried next.
        to: String,
        /// Why.
        reason: String,
    },
    /// A channel or target changed health.
    HealthChanged {
        /// Channel instance.
        channel: String,
        /// Target address, or `*` for the channel as a whole.
        target: String,
        /// New state.
        healthy: bool,
    },
}

/// Receives [`DeliveryEvent`]s. Must be cheap and must not block.
pub trait DeliverySink: Send + Sync {
    /// Called synchronously for every event.
    fn emit(&self, event: &DeliveryEvent);
}

/// A sink that keeps every event, for tests.
#[derive(Debug, Default)]
pub struct RecordingSink(Mutex<Vec<DeliveryEvent>>);

impl RecordingSink {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<DeliveryEvent> {
        self.0.lock().clone()
    }
}

impl DeliverySink for RecordingSink {
    fn emit(&self, event: &DeliveryEvent) {
        self.0.lock().push(event.clone());
    }
}
