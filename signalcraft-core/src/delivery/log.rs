//! The notification log (Alertmanager's nflog idea): one [`DeliveryRecord`] per
//! attempt, persisted in `Table::NotificationLog`, plus the per-notification
//! [`DeliveryState`] that makes delivery resumable and idempotent.
//!
//! Keys (all in `Table::NotificationLog`):
//! Notification ids are percent-encoded (`/` → `%2F`, `%` → `%25`) in keys.
//! * `{notification_id}/{attempt:06}` — one record per attempt, updated in place as
//!   the attempt moves from `sending` to its final status;
//! * `{notification_id}/state` — where the notification is in its failover chain
//!   (the cursor: every [`DeliveryState`] field except the notification);
//! * `{notification_id}/notification` — the notification itself, written once when
//!   it is accepted (the cursor changes on every attempt, the notification never,
//!   so it is not serialized again on each write), in the compact form of
//!   [`super::notification_row`] (rows of plain `Notification` JSON, written
//!   before, read as well);
//! * `~incident/{incident_id}/{notification_id}` — index for the delivery trail;
//! * `~provider/{provider_message_id}` — index for provider status callbacks;
//! * `~sending/{notification_id}` — present exactly while an attempt is in flight
//!   (written in the same batch as the attempt's `sending` record, deleted in the
//!   batch that records its outcome); its value is the attempt's start time. The
//!   shared watchdog ([`super::watchdog`]) finds interrupted attempts through it;
//! * `~throttle/{kind}/{address}` — a throttled contact method's next free slot
//!   (a timestamp), written with the `sent` record that took the slot;
//! * `~email-thread/{channel}/{thread}` — a channel's mark that it sent a message
//!   thread's root (the email channel: one per incident and recipient), a
//!   [`ThreadRoot`]; store retention removes it once old and its incident is gone;
//! * `~outbox/{notification_id}` — present while a notification the engine recorded
//!   in its decision batch ([`NotificationLog::record_accepted`], the log serving as
//!   the engine's outbox) has no state yet; deleted in the batch that writes its
//!   first state. A restart delivers what these markers name again.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::config::ChainStep;
use crate::channel::Notification;
use crate::store::{Scan, Store, StoreError, StoreExt, Table, WriteBatch};

/// Status of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted, waiting for its turn (throttled or not yet started).
    Queued,
    /// Handed to the channel; outcome unknown (a crash here means "maybe sent").
    Sending,
    /// The provider accepted it.
    Sent,
    /// The provider confirmed delivery to the person (status callback).
    Delivered,
    /// Failed with nothing left to try.
    Failed,
    /// Failed transiently; a retry is scheduled.
    Retrying,
    /// Failed; the next channel of the chain takes over.
    FailedOver,
    /// Not sent on purpose (already delivered, or the target was skipped).
    Suppressed,
}

impl DeliveryStatus {
    /// `sent` or `delivered`.
    pub fn is_success(self) -> bool {
        matches!(self, DeliveryStatus::Sent | DeliveryStatus::Delivered)
    }
}

/// One attempt in the notification log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Notification id.
    pub notification_id: String,
    /// Attempt number, 1-based, counted across the whole chain.
    pub attempt: u32,
    /// Index of the chain step this attempt used (0-based).
    pub step: u32,
    /// Channel instance name.
    pub channel: String,
    /// Channel kind (`slack`, `email`, `sms`, …).
    pub channel_kind: String,
    /// Target address, redacted when it is a URL.
    pub target: String,
    /// Incident id, for the delivery trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Current status.
    pub status: DeliveryStatus,
    /// When the attempt started.
    pub started_at: Timestamp,
    /// When the status last changed.
    pub updated_at: Timestamp,
    /// Time the channel took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Provider's id for the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// Redacted error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt is due (for `retrying` and `queued`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
}

/// Where a notification stands in its chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryState {
    /// The notification being delivered.
    pub notification: Notification,
    /// The resolved failover chain.
    pub steps: Vec<ChainStep>,
    /// Current step index.
    pub step: u32,
    /// Tries made on the current step.
    pub tries_on_step: u32,
    /// Last attempt number used (0 before the first).
    pub attempt: u32,
    /// The attempt number the next job must carry (stale jobs are ignored).
    pub next_attempt: u32,
    /// Set while a sent message waits for delivery confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_confirmation: Option<u32>,
    /// `true` once delivered, sent without confirmation needed, or failed for good.
    pub finished: bool,
    /// Sequence number of the last job armed for this notification.
    #[serde(default)]
    pub job_seq: u32,
    /// The one job id the pipeline expects next; any other job is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_job: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProviderIndex {
    notification_id: String,
    attempt: u32,
}

/// Typed access to the notification log in a [`Store`].
#[derive(Clone)]
pub struct NotificationLog {
    store: Arc<dyn Store>,
}

/// A notification id made safe as one key segment: engine ids contain `/`
/// (`<kind>/<channel>/<rest>`), so `%` and `/` are percent-encoded.
fn seg(id: &str) -> String {
    key(id, "")
}

/// `prefix` + the encoded id + `suffix` in one allocation (keys are built on
/// every commit, so no intermediate strings).
fn keyed(prefix: &str, id: &str, suffix: &str) -> String {
    let mut k = String::with_capacity(prefix.len() + id.len() + suffix.len() + 8);
    k.push_str(prefix);
    for c in id.chars() {
        match c {
            '%' => k.push_str("%25"),
            '/' => k.push_str("%2F"),
            c => k.push(c),
        }
    }
    k.push_str(suffix);
    k
}

/// The encoded id followed by `suffix`.
fn key(id: &str, suffix: &str) -> String {
    keyed("", id, suffix)
}

/// Inverse of [`seg`].
fn unseg(s: &str) -> String {
    s.replace("%2F", "/").replace("%25", "%")
}

/// Key of the record of one attempt.
pub fn record_key(notification_id: &str, attempt: u32) -> String {
    use std::fmt::Write;
    let mut k = key(notification_id, "/");
    let _ = write!(k, "{attempt:06}");
    k
}

fn state_key(notification_id: &str) -> String {
    key(notification_id, "/state")
}

fn notification_key(notification_id: &str) -> String {
    key(notification_id, "/notification")
}

const SENDING_PREFIX: &str = "~sending/";
const OUTBOX_PREFIX: &str = "~outbox/";

/// Where channels keep [`ThreadRoot`] marks: `{THREAD_ROOT_PREFIX}{channel}/{thread}`.
pub const THREAD_ROOT_PREFIX: &str = "~email-thread/";

/// A channel's mark that it sent the root message of a thread (so later messages
/// reply to it instead of starting another). Marks written before this type existed
/// hold `{}`: without `at` they are never judged old and stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRoot {
    /// The incident the thread is about (`None`: a group without incident).
    pub incident: Option<String>,
    /// When the root was sent (the notification's creation time).
    pub at: Timestamp,
}

fn throttle_key(kind: &str, address: &str) -> String {
    keyed(&keyed("~throttle/", kind, "/"), address, "")
}

/// JSON of `v` into a buffer pre-sized to `capacity` (a notification is ~2 KB;
/// growing from empty would reallocate several times per write), with a large
/// slack given back.
fn json<T: Serialize + ?Sized>(v: &T, capacity: usize) -> Result<Vec<u8>, StoreError> {
    let mut out =
        crate::store::json_sized(v, capacity).map_err(|e| StoreError::Codec(e.to_string()))?;
    // An in-memory store keeps the buffer as is: give a large slack back (an
    // in-place shrink in the allocator, not a copy).
    if out.capacity() - out.len() > out.len() / 4 {
        out.shrink_to_fit();
    }
    Ok(out)
}

/// The stored row of a notification ([`super::notification_row`]), pre-sized.
fn notification_row(n: &Notification) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(2048);
    super::notification_row::encode(n, &mut out).map_err(|e| StoreError::Codec(e.to_string()))?;
    if out.capacity() - out.len() > out.len() / 4 {
        out.shrink_to_fit();
    }
    Ok(out)
}

/// A throttled contact method's next free slot, to persist with a commit.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSlot<'a> {
    /// Channel kind (`sms`, `voice`, …).
    pub kind: &'a str,
    /// Contact address.
    pub address: &'a str,
    /// Not before this instant.
    pub next_free: Timestamp,
}

fn sending_key(notification_id: &str) -> String {
    keyed(SENDING_PREFIX, notification_id, "")
}

/// The stored cursor: [`DeliveryState`] without the notification, borrowed for
/// writing. Field names and order match [`DeliveryState`].
#[derive(Serialize)]
struct CursorRef<'a> {
    steps: &'a [ChainStep],
    step: u32,
    tries_on_step: u32,
    attempt: u32,
    next_attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    awaiting_confirmation: Option<u32>,
    finished: bool,
    job_seq: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_job: Option<&'a str>,
}

impl<'a> CursorRef<'a> {
    fn of(s: &'a DeliveryState) -> Self {
        CursorRef {
            steps: &s.steps,
            step: s.step,
            tries_on_step: s.tries_on_step,
            attempt: s.attempt,
            next_attempt: s.next_attempt,
            awaiting_confirmation: s.awaiting_confirmation,
            finished: s.finished,
            job_seq: s.job_seq,
            pending_job: s.pending_job.as_deref(),
        }
    }
}

/// The stored cursor as read back. `notification` is present only in rows
/// written before the notification got its own row.
#[derive(Deserialize)]
struct Cursor {
    #[serde(default)]
    notification: Option<Notification>,
    steps: Vec<ChainStep>,
    step: u32,
    tries_on_step: u32,
    attempt: u32,
    next_attempt: u32,
    #[serde(default)]
    awaiting_confirmation: Option<u32>,
    finished: bool,
    #[serde(default)]
    job_seq: u32,
    #[serde(default)]
    pending_job: Option<String>,
}

impl NotificationLog {
    /// A log over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        NotificationLog { store }
    }

    /// The delivery state of a notification, if it was ever accepted.
    ///
    /// Errors: [`StoreError::Codec`] when the cursor exists but its notification
    /// row is missing or either does not decode.
    pub async fn state(&self, notification_id: &str) -> Result<Option<DeliveryState>, StoreError> {
        let Some(c) = self
            .store
            .get_json::<Cursor>(Table::NotificationLog, &state_key(notification_id))
            .await?
        else {
            return Ok(None);
        };
        let notification = match c.notification {
            Some(n) => n,
            None => self.notification(notification_id).await?.ok_or_else(|| {
                StoreError::Codec(format!(
                    "notification_log/{}: state without its notification",
                    state_key(notification_id)
                ))
            })?,
        };
        Ok(Some(DeliveryState {
            notification,
            steps: c.steps,
            step: c.step,
            tries_on_step: c.tries_on_step,
            attempt: c.attempt,
            next_attempt: c.next_attempt,
            awaiting_confirmation: c.awaiting_confirmation,
            finished: c.finished,
            job_seq: c.job_seq,
            pending_job: c.pending_job,
        }))
    }

    /// The stored notification row of an accepted notification (either form, see
    /// [`super::notification_row`]).
    async fn notification(
        &self,
        notification_id: &str,
    ) -> Result<Option<Notification>, StoreError> {
        let key = notification_key(notification_id);
        let Some(row) = self.store.get(Table::NotificationLog, &key).await? else {
            return Ok(None);
        };
        super::notification_row::decode(&row)
            .map(Some)
            .map_err(|e| StoreError::Codec(format!("notification_log/{key}: {e}")))
    }

    /// Writes the state (notification and cursor) and any records atomically
    /// (plus the trail and provider indexes).
    pub async fn write(
        &self,
        state: &DeliveryState,
        records: &[&DeliveryRecord],
    ) -> Result<(), StoreError> {
        self.commit(state, true, records, None).await
    }

    /// Like [`NotificationLog::write`], but leaves the notification row alone: for
    /// a state whose notification is already stored (it never changes after
    /// acceptance), so only the small cursor is serialized.
    pub async fn write_cursor(
        &self,
        state: &DeliveryState,
        records: &[&DeliveryRecord],
    ) -> Result<(), StoreError> {
        self.commit(state, false, records, None).await
    }

    /// Writes the state (with the notification row when `with_notification`),
    /// the records and, when given, a throttle slot, in one atomic batch.
    pub async fn commit(
        &self,
        state: &DeliveryState,
        with_notification: bool,
        records: &[&DeliveryRecord],
        throttle: Option<ThrottleSlot<'_>>,
    ) -> Result<(), StoreError> {
        self.commit_state(state, with_notification, false, records, throttle)
            .await
    }

    /// Adds the writes that record `n` as accepted to `batch` (the engine's decision
    /// batch): the notification row, its outbox marker and its incident's trail index.
    /// The first state written for it ([`NotificationLog::commit_state`] with
    /// `clear_outbox`) deletes the marker.
    pub fn record_accepted(
        &self,
        n: &Notification,
        batch: &mut WriteBatch,
    ) -> Result<(), StoreError> {
        batch.put_raw(
            Table::NotificationLog,
            notification_key(&n.id),
            notification_row(n)?,
        );
        batch.put_raw(
            Table::NotificationLog,
            keyed(OUTBOX_PREFIX, &n.id, ""),
            b"{}".to_vec(),
        );
        if let Some(inc) = &n.incident {
            batch.put_raw(
                Table::NotificationLog,
                keyed(&keyed("~incident/", &inc.id, "/"), &n.id, ""),
                b"{}".to_vec(),
            );
        }
        Ok(())
    }

    /// Recorded notifications ([`NotificationLog::record_accepted`]) that have no
    /// state yet, in key order. A marker whose notification row is missing, or whose
    /// state exists, is stale and removed.
    pub async fn recorded_pending(&self) -> Result<Vec<Notification>, StoreError> {
        let rows = self
            .store
            .scan(Table::NotificationLog, Scan::prefix(OUTBOX_PREFIX))
            .await?;
        let mut out = Vec::new();
        let mut stale = WriteBatch::new();
        for (k, _) in rows {
            let id = unseg(&k[OUTBOX_PREFIX.len()..]);
            let has_state = self
                .store
                .get(Table::NotificationLog, &state_key(&id))
                .await?
                .is_some();
            let n: Option<Notification> = if has_state {
                None
            } else {
                self.notification(&id).await?
            };
            match n {
                Some(n) => out.push(n),
                None => {
                    stale.delete(Table::NotificationLog, k);
                }
            }
        }
        if !stale.is_empty() {
            self.store.commit(stale).await?;
        }
        Ok(out)
    }

    /// Removes a recorded notification's outbox marker (it will not be delivered
    /// again after a restart).
    pub async fn clear_outbox(&self, notification_id: &str) -> Result<(), StoreError> {
        let mut b = WriteBatch::new();
        b.delete(
            Table::NotificationLog,
            keyed(OUTBOX_PREFIX, notification_id, ""),
        );
        self.store.commit(b).await
    }

    /// [`NotificationLog::commit`], and with `clear_outbox` the deletion of the
    /// notification's outbox marker in the same batch (its first state).
    pub async fn commit_state(
        &self,
        state: &DeliveryState,
        with_notification: bool,
        clear_outbox: bool,
        records: &[&DeliveryRecord],
        throttle: Option<ThrottleSlot<'_>>,
    ) -> Result<(), StoreError> {
        let mut b = WriteBatch::new();
        if clear_outbox {
            b.delete(
                Table::NotificationLog,
                keyed(OUTBOX_PREFIX, &state.notification.id, ""),
            );
        }
        if let Some(t) = throttle {
            b.put(
                Table::NotificationLog,
                throttle_key(t.kind, t.address),
                &t.next_free,
            )?;
        }
        if with_notification {
            b.put_raw(
                Table::NotificationLog,
                notification_key(&state.notification.id),
                notification_row(&state.notification)?,
            );
        }
        b.put_raw(
            Table::NotificationLog,
            state_key(&state.notification.id),
            json(&CursorRef::of(state), 256)?,
        );
        // The in-flight marker follows the attempt: set with its `sending`
        // record, cleared by any later write of the state. A recorded notification's
        // first state (`clear_outbox`) has none to clear: the marker is only ever
        // written with a state, and there was no state before this one.
        match records.iter().find(|r| r.status == DeliveryStatus::Sending) {
            Some(r) => {
                b.put(
                    Table::NotificationLog,
                    sending_key(&state.notification.id),
                    &r.started_at,
                )?;
            }
            None if clear_outbox => {}
            None => {
                b.delete(Table::NotificationLog, sending_key(&state.notification.id));
            }
        }
        for r in records {
            b.put_raw(
                Table::NotificationLog,
                record_key(&r.notification_id, r.attempt),
                json(*r, 512)?,
            );
            if r.attempt == 1
                && r.status == DeliveryStatus::Sending
                && let Some(inc) = &r.incident_id
            {
                b.put_raw(
                    Table::NotificationLog,
                    keyed(&keyed("~incident/", inc, "/"), &r.notification_id, ""),
                    b"{}".to_vec(),
                );
            }
            if let Some(pid) = &r.provider_message_id {
                b.put(
                    Table::NotificationLog,
                    keyed("~provider/", pid, ""),
                    &ProviderIndex {
                        notification_id: r.notification_id.clone(),
                        attempt: r.attempt,
                    },
                )?;
            }
        }
        self.store.commit(b).await
    }

    /// One attempt's record.
    pub async fn record(
        &self,
        notification_id: &str,
        attempt: u32,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.store
            .get_json(
                Table::NotificationLog,
                &record_key(notification_id, attempt),
            )
            .await
    }

    /// Every attempt of one notification, in attempt order.
    pub async fn records(&self, notification_id: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = self
            .store
            .scan(
                Table::NotificationLog,
                Scan::prefix(format!("{}/0", seg(notification_id))),
            )
            .await?;
        rows.into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Codec(format!("notification_log/{k}: {e}")))
            })
            .collect()
    }

    /// The delivery trail of an incident: every attempt of every notification
    /// about it, ordered by start time then attempt.
    pub async fn trail(&self, incident_id: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let prefix = format!("~incident/{}/", seg(incident_id));
        let ids = self
            .store
            .scan(Table::NotificationLog, Scan::prefix(prefix.clone()))
            .await?;
        let mut out = Vec::new();
        for (k, _) in ids {
            let nid = unseg(&k[prefix.len()..]);
            out.extend(self.records(&nid).await?);
        }
        out.sort_by_key(|r| (r.started_at, r.attempt));
        Ok(out)
    }

    /// The provider message id of the latest successful attempt (`sent` or
    /// `delivered`) of `channel` to `target` (as recorded: redacted when a URL)
    /// about `incident_id`, from its delivery trail. What a channel that keeps
    /// one message per incident current (Slack `chat.update`) needs after a
    /// restart. Reads the whole trail: call it only when the channel asks.
    pub async fn last_message(
        &self,
        incident_id: &str,
        channel: &str,
        target: &str,
    ) -> Result<Option<String>, StoreError> {
        let trail = self.trail(incident_id).await?;
        Ok(trail
            .into_iter()
            .filter(|r| r.channel == channel && r.target == target && r.status.is_success())
            .filter_map(|r| r.provider_message_id)
            .next_back())
    }

    /// Notifications with an attempt in flight (or interrupted by a crash), with
    /// the attempt's start time: at most `limit` (0 = all), in key order.
    pub async fn in_flight(&self, limit: usize) -> Result<Vec<(String, Timestamp)>, StoreError> {
        let rows = self
            .store
            .scan(
                Table::NotificationLog,
                Scan {
                    limit,
                    ..Scan::prefix(SENDING_PREFIX)
                },
            )
            .await?;
        rows.into_iter()
            .map(|(k, v)| {
                let at = serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Codec(format!("notification_log/{k}: {e}")))?;
                Ok((unseg(&k[SENDING_PREFIX.len()..]), at))
            })
            .collect()
    }

    /// Removes a notification's in-flight marker (a stale one: its state is finished).
    pub async fn clear_in_flight(&self, notification_id: &str) -> Result<(), StoreError> {
        let mut b = WriteBatch::new();
        b.delete(Table::NotificationLog, sending_key(notification_id));
        self.store.commit(b).await
    }

    /// The persisted throttle slot of `(kind, address)`, if any.
    pub async fn throttle_slot(
        &self,
        kind: &str,
        address: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.store
            .get_json(Table::NotificationLog, &throttle_key(kind, address))
            .await
    }

    /// Finds the attempt that produced a provider message id.
    pub async fn by_provider_id(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<(String, u32)>, StoreError> {
        let idx: Option<ProviderIndex> = self
            .store
            .get_json(
                Table::NotificationLog,
                &format!("~provider/{}", seg(provider_message_id)),
            )
            .await?;
        Ok(idx.map(|i| (i.notification_id, i.attempt)))
    }
}

/// What the notification log holds about one notification, for store retention
/// ([`notification_footprint`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFootprint {
    /// Every key of its rows (attempts, cursor, notification row) and of the index
    /// rows naming it (`~incident/…`, the `~provider/…` rows that point at it, and its
    /// `~sending/…` and `~outbox/…` markers when present). Throttle slots are per
    /// contact method, not per notification, and are not listed.
    pub keys: Vec<String>,
    /// The incident it is about (its notification row, else its attempt records).
    pub incident_id: Option<String>,
    /// The latest of its notification's `created_at` and its attempts' `updated_at`
    /// (`None`: none of them could be read).
    pub last_activity: Option<Timestamp>,
    /// `true` when the delivery pipeline is done with it and will neither read nor
    /// retry it: its cursor says `finished` (or it has no cursor and no outbox marker),
    /// no attempt is in flight (`~sending/…`), no outbox marker waits for a restart,
    /// and every row decoded. `false` whenever that cannot be told.
    pub settled: bool,
}

/// The notification id a notification-log key belongs to, for keys of the
/// per-notification rows (`{id}/…`); `None` for index rows (`~…`).
pub fn notification_id_of_key(key: &str) -> Option<String> {
    if key.starts_with('~') {
        return None;
    }
    let (id, _) = key.split_once('/')?;
    Some(unseg(id))
}

/// The key of the trail index row (`~incident/{incident_id}/{notification_id}`) that
/// lists a notification in an incident's delivery trail.
pub fn incident_index_key(incident_id: &str, notification_id: &str) -> String {
    keyed(&keyed("~incident/", incident_id, "/"), notification_id, "")
}

/// The ids of the notifications the trail index lists for an incident
/// (`~incident/{incident_id}/…`), in key order.
pub async fn incident_notification_ids<S: Store + ?Sized>(
    store: &S,
    incident_id: &str,
) -> Result<Vec<String>, StoreError> {
    let prefix = keyed("~incident/", incident_id, "/");
    let rows = store
        .scan(Table::NotificationLog, Scan::prefix(prefix.clone()))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(k, _)| unseg(&k[prefix.len()..]))
        .collect())
}

/// Reads everything the notification log holds about `notification_id` (see
/// [`NotificationFootprint`]): what retention deletes, in one batch, to remove the
/// notification and every index row pointing at it. Reads only.
pub async fn notification_footprint<S: Store + ?Sized>(
    store: &S,
    notification_id: &str,
) -> Result<NotificationFootprint, StoreError> {
    let mut f = NotificationFootprint::default();
    let rows = store
        .scan(
            Table::NotificationLog,
            Scan::prefix(key(notification_id, "/")),
        )
        .await?;
    let mut decoded_all = true;
    let mut finished: Option<bool> = None;
    let mut providers = Vec::new();
    fn latest(f: &mut NotificationFootprint, t: Timestamp) {
        f.last_activity = Some(f.last_activity.map_or(t, |l| l.max(t)));
    }
    for (k, v) in rows {
        if k.ends_with("/state") {
            match serde_json::from_slice::<Cursor>(&v) {
                Ok(c) => {
                    finished = Some(c.finished);
                    if let Some(n) = c.notification {
                        f.incident_id = f.incident_id.or(n.incident.map(|i| i.id));
                        latest(&mut f, n.created_at);
                    }
                }
                Err(_) => decoded_all = false,
            }
        } else if k.ends_with("/notification") {
            match super::notification_row::decode(&v) {
                Ok(n) => {
                    if let Some(i) = n.incident {
                        f.incident_id = Some(i.id);
                    }
                    latest(&mut f, n.created_at);
                }
                Err(_) => decoded_all = false,
            }
        } else {
            match serde_json::from_slice::<DeliveryRecord>(&v) {
                Ok(r) => {
                    if f.incident_id.is_none() {
                        f.incident_id = r.incident_id.clone();
                    }
                    latest(&mut f, r.updated_at);
                    if let Some(pid) = r.provider_message_id {
                        providers.push(pid);
                    }
                }
                Err(_) => decoded_all = false,
            }
        }
        f.keys.push(k);
    }
    let sending = sending_key(notification_id);
    let outbox = keyed(OUTBOX_PREFIX, notification_id, "");
    let in_flight = store.get(Table::NotificationLog, &sending).await?.is_some();
    let queued = store.get(Table::NotificationLog, &outbox).await?.is_some();
    if in_flight {
        f.keys.push(sending);
    }
    if queued {
        f.keys.push(outbox);
    }
    for pid in providers {
        let k = keyed("~provider/", &pid, "");
        let idx: Option<ProviderIndex> = store
            .get(Table::NotificationLog, &k)
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok());
        // Only the index row that still points at this notification.
        if idx.is_some_and(|i| i.notification_id == notification_id) && !f.keys.contains(&k) {
            f.keys.push(k);
        }
    }
    if let Some(inc) = &f.incident_id {
        let k = keyed(&keyed("~incident/", inc, "/"), notification_id, "");
        if store.get(Table::NotificationLog, &k).await?.is_some() {
            f.keys.push(k);
        }
    }
    f.settled = decoded_all && !in_flight && !queued && finished.unwrap_or(true);
    Ok(f)
}

#[cfg(test)]
mod retention_helper_tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::testing::channel::sample_notification;

    #[test]
    fn keys_name_their_notification() {
        let id = "page/slack%x/1";
        assert_eq!(
            notification_id_of_key(&record_key(id, 3)).as_deref(),
            Some(id)
        );
        assert_eq!(notification_id_of_key(&state_key(id)).as_deref(), Some(id));
        assert_eq!(
            notification_id_of_key(&incident_index_key("inc-1", id)),
            None
        );
        assert_eq!(
            incident_index_key("inc/1", id),
            "~incident/inc%2F1/page%2Fslack%25x%2F1"
        );
    }

    /// The footprint lists every row the log wrote for a notification, and is settled
    /// only once the attempt's outcome is recorded and the cursor is finished.
    #[tokio::test]
    async fn footprint_lists_rows_and_indexes_and_settles_when_finished() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let log = NotificationLog::new(store.clone());
        let n = sample_notification("incident/slack/1", "oncall", "#ops");
        let inc = n
            .incident
            .as_ref()
            .map(|i| i.id.clone())
            .unwrap_or_default();
        let mut b = WriteBatch::new();
        log.record_accepted(&n, &mut b).unwrap();
        store.commit(b).await.unwrap();
        let f = notification_footprint(store.as_ref(), &n.id).await.unwrap();
        assert!(!f.settled, "an outbox marker waits: {f:?}");
        let mut st = DeliveryState {
            notification: n.clone(),
            steps: Vec::new(),
            step: 0,
            tries_on_step: 1,
            attempt: 1,
            next_attempt: 2,
            awaiting_confirmation: None,
            finished: false,
            job_seq: 0,
            pending_job: None,
        };
        let mut rec = DeliveryRecord {
            notification_id: n.id.clone(),
            attempt: 1,
            step: 0,
            channel: "slack".into(),
            channel_kind: "slack".into(),
            target: "#ops".into(),
            incident_id: Some(inc.clone()),
            status: DeliveryStatus::Sending,
            started_at: n.created_at,
            updated_at: n.created_at,
            latency_ms: None,
            provider_message_id: None,
            error: None,
            next_attempt_at: None,
        };
        log.commit_state(&st, false, true, &[&rec], None)
            .await
            .unwrap();
        let f = notification_footprint(store.as_ref(), &n.id).await.unwrap();
        assert!(!f.settled, "an attempt is in flight: {f:?}");
        st.finished = true;
        rec.status = DeliveryStatus::Sent;
        rec.provider_message_id = Some("pm-1".into());
        let later = n.created_at + jiff::SignedDuration::from_secs(9);
        rec.updated_at = later;
        log.commit_state(&st, false, false, &[&rec], None)
            .await
            .unwrap();
        let f = notification_footprint(store.as_ref(), &n.id).await.unwrap();
        assert!(f.settled, "{f:?}");
        assert_eq!(f.incident_id.as_deref(), Some(inc.as_str()));
        assert_eq!(f.last_activity, Some(later));
        let mut got = f.keys.clone();
        got.sort();
        let mut all: Vec<String> = store
            .scan(Table::NotificationLog, Scan::all())
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        all.sort();
        assert_eq!(got, all, "every row of the log is this notification's");
        assert_eq!(
            all.len(),
            5,
            "attempt, state, notification, trail, provider"
        );
        assert_eq!(
            incident_notification_ids(store.as_ref(), &inc)
                .await
                .unwrap(),
            vec![n.id.clone()]
        );
    }
}
