//! The [`Notifier`] seam between the engine and delivery, and [`ChannelNotifier`], a
//! direct, no-retry implementation for tests and simple embedders.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::channel::{Channel, Notification};
use crate::error::CoreError;
use crate::scheduler::Job;
use crate::store::{StoreError, WriteBatch};

/// Hands notifications produced by the engine to delivery.
///
/// Contract:
/// * `notify` is called once per [`Notification`] the engine decides to send, after the
///   decision was committed to the Store. `Ok` means the notification was accepted:
///   either delivered, or durably queued for delivery (a retrying implementation
///   schedules `JobKind::Delivery` jobs and returns `Ok`). `Err` means it was neither;
///   the engine records `delivery_failed` on the incident timeline.
/// * `Notification::id` is the idempotency key: the engine may call `notify` again with
///   the same id after a crash; implementations must not deliver it twice.
/// * `run_job` runs a `JobKind::Delivery` job the engine's scheduler loop claimed
///   (retries, timeouts). The default does nothing.
/// * Implementations never read the wall clock directly; they get time from the
///   `Clock` they were built with.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Accepts one notification for delivery.
    async fn notify(&self, n: Notification) -> Result<(), CoreError>;

    /// Runs a delivery job (retry/timeout). Default: nothing to do.
    async fn run_job(&self, job: &Job) -> Result<(), CoreError> {
        let _ = job;
        Ok(())
    }

    /// Whether this notifier keeps the engine's outbox itself. When `true` the
    /// engine, for every notification a decision produces, calls
    /// [`Notifier::record`] to add its writes to the decision's batch (instead of
    /// writing an outbox entry of its own), hands it over with
    /// [`Notifier::notify_recorded`] once that batch is committed, and at recovery
    /// hands over again whatever [`Notifier::recorded_pending`] returns. Default:
    /// `false` (the engine keeps its own outbox in `Table::Meta`).
    fn records_notifications(&self) -> bool {
        false
    }

    /// Adds the writes that make `n` durable as accepted to the engine's decision
    /// batch (only called when [`Notifier::records_notifications`]).
    fn record(&self, n: &Notification, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let _ = (n, batch);
        Ok(())
    }

    /// Accepts a notification [`Notifier::record`] recorded in a committed batch;
    /// same contract as `notify` otherwise. Default: `notify`.
    async fn notify_recorded(&self, n: Notification) -> Result<(), CoreError> {
        self.notify(n).await
    }

    /// Recorded notifications whose hand-over a crash interrupted (called once by
    /// the engine's recovery). Default: none.
    async fn recorded_pending(&self) -> Result<Vec<Notification>, CoreError> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    async fn notify(&self, n: Notification) -> Result<(), CoreError> {
        (**self).notify(n).await
    }
    async fn run_job(&self, job: &Job) -> Result<(), CoreError> {
        (**self).run_job(job).await
    }
    fn records_notifications(&self) -> bool {
        (**self).records_notifications()
    }
    fn record(&self, n: &Notification, batch: &mut WriteBatch) -> Result<(), StoreError> {
        (**self).record(n, batch)
    }
    async fn notify_recorded(&self, n: Notification) -> Result<(), CoreError> {
        (**self).notify_recorded(n).await
    }
    async fn recorded_pending(&self) -> Result<Vec<Notification>, CoreError> {
        (**self).recorded_pending().await
    }
}

/// Delivers each notification directly through one registered [`Channel`], with no
/// retry and no failover.
///
/// Lookup: the channel registered under the route target's channel name
/// ([`channel_name`]), else the one registered under the receiver name.
#[derive(Clone, Default)]
pub struct ChannelNotifier {
    channels: HashMap<String, Arc<dyn Channel>>,
}

impl ChannelNotifier {
    /// An empty notifier (every notify fails with `NotFound`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a channel under a name (route targets say `channel: <name>`).
    pub fn with(mut self, name: impl Into<String>, channel: Arc<dyn Channel>) -> Self {
        self.channels.insert(name.into(), channel);
        self
    }

    /// Registers a channel under a name.
    pub fn insert(&mut self, name: impl Into<String>, channel: Arc<dyn Channel>) {
        self.channels.insert(name.into(), channel);
    }

    /// The channel for a notification: by [`channel_name`], else by receiver name.
    fn lookup(&self, n: &Notification) -> Option<&Arc<dyn Channel>> {
        channel_name(n)
            .and_then(|c| self.channels.get(c))
            .or_else(|| self.channels.get(&n.receiver))
    }
}

/// The channel name the engine addressed a notification to. The engine builds
/// notification ids as `<kind>/<channel>/<rest>`; this returns `<channel>`.
pub fn channel_name(n: &Notification) -> Option<&str> {
    let mut parts = n.id.splitn(3, '/');
    let _kind = parts.next()?;
    let ch = parts.next()?;
    parts.next()?;
    Some(ch)
}

#[async_trait]
impl Notifier for ChannelNotifier {
    async fn notify(&self, n: Notification) -> Result<(), CoreError> {
        let Some(ch) = self.lookup(&n) else {
            return Err(CoreError::NotFound {
                kind: "channel",
                id: channel_name(&n).unwrap_or(&n.receiver).to_string(),
            });
        };
        ch.deliver(&n)
            .await
            .map(|_| ())
            // CoreError has no delivery variant (error.rs is not ours); the field names
            // the channel so the timeline's delivery_failed entry is readable.
            .map_err(|e| CoreError::Delivery {
                channel: ch.name().to_string(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Delivered, DeliveryError, NotificationKind, Target};
    use crate::model::AlertStatus;
    use parking_lot::Mutex;

    struct Rec(Mutex<Vec<String>>, bool);

    #[async_trait]
    impl Channel for Rec {
        fn kind(&self) -> &str {
            "rec"
        }
        fn name(&self) -> &str {
            "rec"
        }
        async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
            if self.1 {
                return Err(DeliveryError::Permanent {
                    reason: "no such channel".into(),
                });
            }
            self.0.lock().push(n.id.clone());
            Ok(Delivered::default())
        }
    }

    fn n(id: &str, receiver: &str) -> Notification {
        Notification {
            id: id.into(),
            kind: NotificationKind::Test,
            group_key: "g".into(),
            status: AlertStatus::Firing,
            incident: None,
            alerts: Default::default(),
            group_labels: Default::default(),
            common_labels: Default::default(),
            common_annotations: Default::default(),
            runbooks: vec![],
            recent_changes: vec![],
            receiver: receiver.into(),
            target: Target {
                address: "#x".into(),
                user: None,
            },
            external_url: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn channel_name_is_the_second_id_segment() {
        assert_eq!(
            channel_name(&n("incident/slack/0-abc-1", "r")),
            Some("slack")
        );
        assert_eq!(
            channel_name(&n("page/sms/page/inc-1/g0/rule", "r")),
            Some("sms")
        );
        assert_eq!(channel_name(&n("plain", "r")), None);
        assert_eq!(channel_name(&n("a/b", "r")), None);
    }

    #[tokio::test]
    async fn routes_by_channel_then_receiver_and_reports_failures() {
        let ok = Arc::new(Rec(Mutex::new(vec![]), false));
        let notifier = ChannelNotifier::new()
            .with("slack", ok.clone())
            .with("fallback-receiver", ok.clone())
            .with("broken", Arc::new(Rec(Mutex::new(vec![]), true)));
        notifier.notify(n("incident/slack/1", "r")).await.unwrap();
        notifier
            .notify(n("custom-id", "fallback-receiver"))
            .await
            .unwrap();
        assert_eq!(*ok.0.lock(), vec!["incident/slack/1", "custom-id"]);
        let e = notifier
            .notify(n("incident/broken/1", "r"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no such channel"), "{e}");
        let e = notifier
            .notify(n("incident/missing/1", "r"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                CoreError::NotFound {
                    kind: "channel",
                    ..
                }
            ),
            "{e}"
        );
    }
}
