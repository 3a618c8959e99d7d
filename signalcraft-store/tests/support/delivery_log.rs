//! Notification-log fixtures shared by the retention tests: notifications as the
//! engine produces them, delivered through the real [`NotificationLog`] the way the
//! delivery pipeline writes it.

use jiff::Timestamp;
use signalcraft_core::channel::Notification;
use signalcraft_core::delivery::config::ChainStep;
use signalcraft_core::delivery::log::{
    DeliveryRecord, DeliveryState, DeliveryStatus, NotificationLog, ThrottleSlot,
};
use signalcraft_core::store::{Store, WriteBatch};
use signalcraft_core::testing::channel::sample_notification;

/// The contact method a test delivers through.
#[derive(Clone, Copy)]
pub struct Via {
    /// Channel name and kind (`"slack"`, `"sms"`).
    pub channel: &'static str,
    /// Target of every attempt.
    pub target: &'static str,
}

/// A notification as the engine produces it (`incident`: the incident it is about).
pub fn notification(id: &str, incident: Option<&str>, at: Timestamp) -> Notification {
    let mut n = sample_notification(id, "oncall", "#ops");
    match incident {
        Some(i) => n.incident.as_mut().expect("the sample has an incident").id = i.into(),
        None => n.incident = None,
    }
    n.created_at = at;
    n
}

/// The delivery cursor of `n` on its first step, `finished` or not.
pub fn state(n: &Notification, via: Via, finished: bool) -> DeliveryState {
    DeliveryState {
        notification: n.clone(),
        steps: vec![ChainStep {
            channel: via.channel.into(),
            target: None,
            confirm_within_secs: None,
        }],
        step: 0,
        tries_on_step: 1,
        attempt: 1,
        next_attempt: 2,
        awaiting_confirmation: None,
        finished,
        job_seq: 0,
        pending_job: None,
    }
}

/// The first attempt of `n` in `status`; a `sent` one carries the provider message
/// id `pm-<notification id>`.
pub fn attempt(
    n: &Notification,
    via: Via,
    status: DeliveryStatus,
    at: Timestamp,
) -> DeliveryRecord {
    DeliveryRecord {
        notification_id: n.id.clone(),
        attempt: 1,
        step: 0,
        channel: via.channel.into(),
        channel_kind: via.channel.into(),
        target: via.target.into(),
        incident_id: n.incident.as_ref().map(|i| i.id.clone()),
        status,
        started_at: at,
        updated_at: at,
        latency_ms: Some(12),
        provider_message_id: matches!(status, DeliveryStatus::Sent).then(|| format!("pm-{}", n.id)),
        error: None,
        next_attempt_at: None,
    }
}

/// Delivers `n` through the notification log as the engine and the pipeline do:
/// accepted in a decision batch (outbox marker, trail index), then the first attempt
/// `sending` (in-flight marker); when `settle`, its outcome `sent` with the cursor
/// `finished`, and, with `throttle_address`, a throttle slot for that address one
/// minute ahead.
pub async fn deliver(
    log: &NotificationLog,
    s: &dyn Store,
    n: &Notification,
    via: Via,
    settle: bool,
    throttle_address: Option<&str>,
) {
    let mut b = WriteBatch::new();
    log.record_accepted(n, &mut b).expect("accepted");
    s.commit(b).await.expect("commit");
    let at = n.created_at;
    log.commit_state(
        &state(n, via, false),
        false,
        true,
        &[&attempt(n, via, DeliveryStatus::Sending, at)],
        None,
    )
    .await
    .expect("sending");
    if settle {
        log.commit_state(
            &state(n, via, true),
            false,
            false,
            &[&attempt(n, via, DeliveryStatus::Sent, at)],
            throttle_address.map(|address| ThrottleSlot {
                kind: via.channel,
                address,
                next_free: at + jiff::SignedDuration::from_secs(60),
            }),
        )
        .await
        .expect("sent");
    }
}
