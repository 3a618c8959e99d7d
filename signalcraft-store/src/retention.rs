//! Retention: remove closed incidents older than a configured age, together with
//! their alerts and timeline, optionally archiving the timeline to JSON Lines first.
//!
//! It works over any [`Store`] (redb, in-memory, later PostgreSQL) and treats
//! incident records as generic JSON. The fields it relies on are configurable; the
//! defaults ([`RetentionPolicy::new`]) are:
//!
//! * `state` (string): the incident is closed when it is one of `closed_states`
//!   (`"resolved"`, `"closed"`);
//! * `closed_at`, else `resolved_at`: when it closed, an RFC 3339 string or an
//!   integer of milliseconds since the Unix epoch; a closed incident without either is
//!   kept (never guessed);
//! * `alerts` (optional): the keys of its alerts in [`Table::Alerts`], as strings or
//!   objects with a `fingerprint` field. An alert is removed only if no incident that
//!   stays lists it, and its own record has no `incident_id` or the same one (a
//!   fingerprint that fired again and now belongs to a newer incident is kept);
//! * timeline entries are the keys of [`Table::Timeline`] starting with `"<incident id>/"`.
//!
//! [`RetentionPolicy::for_engine`] is the mapping for the records the SignalCraft
//! engine writes (only `closed` incidents; alerts only once retired and not seen
//! since; the counters' high-water marks kept). A caller running it next to a live
//! engine passes a [`RetentionGuard`] so nothing the engine holds in memory is removed.
//!
//! The incidents of one chunk are removed in one atomic batch (each with its
//! alerts and timeline), so a crash in the middle never leaves half an incident.
//!
//! The guard is asked when a chunk is read and again right before its commit, and
//! the commit itself is conditional: each incident and alert record is deleted with
//! a [`WriteOp::Expect`] precondition on the bytes judged
//! ([`WriteBatch::delete_if_unchanged`]), checked inside the store's atomic apply. An
//! alert that fires again (or an incident an action loads back and changes) between
//! the read and the commit therefore fails the chunk's batch with
//! [`StoreError::Conflict`] instead of losing its record; the chunk is then committed
//! one incident per batch, and the incident whose record changed is left whole for a
//! later sweep ([`RetentionReport::raced`]). What no precondition can see is a write
//! the engine has decided but not yet committed (its record in the store is still the
//! old one): the guard covers that one, since the engine holds the record in memory
//! from the decision on, and its commit writes the record back whole.
//!
//! Archived lines are written and flushed before the batch commits: a crash in
//! between may archive an incident's timeline twice, never lose it.
//!
//! With [`RetentionPolicy::notification_log`] (on in `for_engine`), a removed
//! incident's delivery trail in [`Table::NotificationLog`] goes in the incident's
//! batch: for each notification the trail index (`~incident/<id>/…`) lists, its
//! attempt records, cursor and notification row, and the index rows pointing at it
//! (`~incident/…`, `~provider/…`). If one of them is not settled (cursor not
//! `finished`, an attempt in flight, an outbox marker waiting for a restart, a row
//! that does not decode), the incident is kept whole until a later sweep. A last pass
//! removes settled notifications last active before the cutoff whose incident no
//! longer exists, or that have none. Throttle slots (`~throttle/…`, one per contact
//! method, not per notification) go once their time is before the cutoff (a slot in
//! the past constrains nothing). Channels' thread-root marks (`~email-thread/…`) go once sent
//! before the cutoff with their incident gone. Nothing of the notification log is archived.
//!
//! A notification the pipeline never settled keeps its incident until it is
//! abandoned: last active longer ago than the age plus
//! [`RetentionPolicy::abandoned_notification_grace`] (a week in `for_engine`), e.g.
//! one whose channel was removed from the configuration. Its rows then go like a
//! settled one's ([`RetentionReport::abandoned_notifications`]).
//!
//! With [`RetentionPolicy::expired_silences`] (on in `for_engine`), silences whose
//! `ends_at` is before the cutoff go (an ended silence never mutes again).
//!
//! With [`RetentionPolicy::audit_age`], audit entries older than it go, and with
//! [`RetentionPolicy::change_age`] change events: their keys start with their time,
//! so it is a scan from the oldest key, one batch per `page_size` keys, up to the
//! first key at or after the cutoff.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use signalcraft_core::delivery::log;
use signalcraft_core::incident::audit::time_key;
use signalcraft_core::store::{Scan, Store, StoreError, Table, WriteBatch, WriteOp};

use crate::error::Error;

/// Where the notification log keeps throttle slots (see
/// [`signalcraft_core::delivery::log`]).
const THROTTLE_PREFIX: &str = "~throttle/";

/// The engine policy's [`RetentionPolicy::abandoned_notification_grace`]: a week past
/// the age. A notification still being delivered writes an attempt record at every
/// try, and the gap between tries is bounded by the delivery retry policy
/// (`max_backoff_ms`, `max_retry_after_ms`: a minute and five minutes by default), so
/// one silent for the age plus a week is not being worked on any more.
pub const ABANDONED_NOTIFICATION_GRACE: Duration = Duration::from_secs(7 * 86_400);

/// Which incidents to remove, and where their parts live.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    /// Remove incidents closed longer ago than this.
    pub max_age: Duration,
    /// The table of incident records.
    pub incidents: Table,
    /// The field holding the incident state.
    pub state_field: String,
    /// The states that count as closed.
    pub closed_states: Vec<String>,
    /// Fields holding the closing time, tried in order.
    pub closed_at_fields: Vec<String>,
    /// Field listing the incident's alert keys (`None`: alerts are not removed).
    pub alerts_field: Option<String>,
    /// Field of an alert record naming its incident (guards re-fired fingerprints).
    pub alert_incident_field: String,
    /// Remove timeline entries `"<incident id>/…"` (`false`: keep them).
    pub timeline: bool,
    /// Incidents read per scan page, and removed per atomic batch.
    pub page_size: usize,
    /// Field of an alert record listing where it is still active (a non-empty array:
    /// the alert is kept). `None`: not checked.
    pub alert_active_field: Option<String>,
    /// Field of an alert record holding when it was last seen (RFC 3339 or ms); an
    /// alert seen after its incident closed fired again and is kept. `None`: not checked.
    pub alert_last_seen_field: Option<String>,
    /// Also remove alert records that no incident lists (e.g. alerts resolved
    /// within `group_wait`, or silenced, that never belonged to an incident) once
    /// inactive (`alert_active_field`) and last seen (`alert_last_seen_field`) before
    /// the cutoff. Needs both fields; a full scan of [`Table::Alerts`] per run.
    pub remove_unlisted_alerts: bool,
    /// Keep the incident with the greatest key, whatever its age.
    pub keep_last_incident: bool,
    /// `(group field, counter field)`: per value of the group field, keep the incident
    /// with the greatest counter (an unsigned integer), whatever its age.
    pub keep_max_by: Option<(String, String)>,
    /// Remove incidents at all (`false`: only the audit pass runs, e.g. with
    /// `closed_incident_age = "off"` and an `audit_age`).
    pub remove_incidents: bool,
    /// Remove a removed incident's delivery trail from [`Table::NotificationLog`]
    /// (the rows the SignalCraft notification log writes, and every index row
    /// pointing at them) in the incident's batch, and old notification-log records
    /// whose incident no longer exists or that have none. An incident with a
    /// notification the delivery pipeline is not done with stays whole until it is.
    pub notification_log: bool,
    /// Remove [`Table::Audit`] entries older than this (`None`: keep them forever).
    /// Audit keys start with their time ([`signalcraft_core::incident::audit::time_key`]),
    /// so this is a key range scan, `page_size` keys per atomic batch.
    pub audit_age: Option<Duration>,
    /// Remove [`Table::Changes`] entries (change events, keyed
    /// `"<time key of the change's timestamp>/<id>"`) older than this (`None`: keep
    /// them forever). Like the audit pass, a key range scan, `page_size` keys per
    /// atomic batch. The engine reads only the last `change_window` of them at start,
    /// so an age at least that long removes nothing it would read.
    pub change_age: Option<Duration>,
    /// With [`RetentionPolicy::notification_log`]: a notification the delivery
    /// pipeline never finished (its cursor not `finished`, e.g. its channel was
    /// removed from the configuration, or an attempt marker a crash left behind)
    /// whose last activity is older than the age plus this grace counts as abandoned:
    /// it no longer keeps its incident, and its rows go with it (counted in
    /// [`RetentionReport::abandoned_notifications`]). `None`: such a notification
    /// keeps its incident forever. One without a readable last activity is never
    /// treated as abandoned.
    pub abandoned_notification_grace: Option<Duration>,
    /// Remove [`Table::Silences`] records whose `ends_at` (RFC 3339 or ms) is before
    /// the cutoff (`now - max_age`): silences that ended longer ago than a closed
    /// incident is kept. An ended silence never mutes again and cannot be changed;
    /// a record without a readable `ends_at` stays.
    pub expired_silences: bool,
}

impl RetentionPolicy {
    /// The default field mapping (see the module docs) with the given age.
    pub fn new(max_age: Duration) -> Self {
        RetentionPolicy {
            max_age,
            incidents: Table::Incidents,
            state_field: "state".into(),
            closed_states: vec!["resolved".into(), "closed".into()],
            closed_at_fields: vec!["closed_at".into(), "resolved_at".into()],
            alerts_field: Some("alerts".into()),
            alert_incident_field: "incident_id".into(),
            timeline: true,
            page_size: 500,
            alert_active_field: None,
            alert_last_seen_field: None,
            remove_unlisted_alerts: false,
            keep_last_incident: false,
            keep_max_by: None,
            remove_incidents: true,
            notification_log: false,
            audit_age: None,
            change_age: None,
            abandoned_notification_grace: None,
            expired_silences: false,
        }
    }
}

/// What one retention run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Incidents removed.
    pub incidents: u64,
    /// Alerts removed.
    pub alerts: u64,
    /// Timeline entries removed.
    pub timeline_entries: u64,
    /// Lines written to the archive.
    pub archived: u64,
    /// Notification-log rows removed (attempts, cursors, notification rows and the
    /// index rows pointing at them).
    pub notification_log: u64,
    /// Audit entries removed.
    pub audit: u64,
    /// Change events removed.
    pub changes: u64,
    /// Ended silences removed.
    pub silences: u64,
    /// Notifications removed although never settled, as abandoned (see
    /// [`RetentionPolicy::abandoned_notification_grace`]); their rows are counted in
    /// `notification_log` too.
    pub abandoned_notifications: u64,
    /// Incidents (or alert records) left for a later sweep because the engine
    /// changed them between the read and the commit (a [`WriteOp::Expect`] failed).
    pub raced: u64,
}

/// What a caller running retention next to a live engine protects: an incident or
/// alert the engine still holds in memory is never removed from the store (the
/// engine's copy would outlive the stored one, or be written back half-complete).
///
/// Checked for each candidate right before its removal is added to a batch.
pub trait RetentionGuard: Send + Sync {
    /// `true`: the incident with this key is in use (e.g. in the engine's memory); keep it.
    fn incident_in_use(&self, _id: &str) -> bool {
        false
    }
    /// `true`: the alert with this key is in use (e.g. active in the engine); keep it.
    fn alert_in_use(&self, _key: &str) -> bool {
        false
    }
}

impl RetentionReport {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &RetentionReport) {
        self.incidents += other.incidents;
        self.alerts += other.alerts;
        self.timeline_entries += other.timeline_entries;
        self.archived += other.archived;
        self.notification_log += other.notification_log;
        self.audit += other.audit;
        self.changes += other.changes;
        self.silences += other.silences;
        self.abandoned_notifications += other.abandoned_notifications;
        self.raced += other.raced;
    }
}

/// The guard that protects nothing (a store no engine is running on).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGuard;

impl RetentionGuard for NoGuard {}

/// What a pass of [`RetentionPolicy::remove_judged`] decides for one record.
enum Verdict {
    Keep,
    Remove,
    /// Remove it unless incident `.0` exists (in the store, or the guard holds it).
    RemoveUnlessIncidentExists(String),
}

impl Verdict {
    fn remove_if(old: bool) -> Self {
        if old { Verdict::Remove } else { Verdict::Keep }
    }
}

impl RetentionPolicy {
    /// The policy for the records the SignalCraft engine writes
    /// (`signalcraft_core::incident::Incident`, `signalcraft_core::engine::AlertRecord`):
    ///
    /// * only `closed` incidents are removed (a `resolved` one can still re-open), by
    ///   their `closed_at`;
    /// * an alert is removed with the last incident that lists it, only once retired
    ///   (its `groups` empty) and not seen since the incident closed (`last_seen`);
    /// * the incident with the highest number and, per escalation policy, the one with
    ///   the highest `round_robin_cursor` are kept: the engine derives its next incident
    ///   number and its round-robin positions from the stored incidents at start, so
    ///   removing them would hand out numbers again;
    /// * alert records no incident lists (resolved within `group_wait`, silenced) go
    ///   once retired and last seen before the cutoff;
    /// * the notification log's delivery trail of a removed incident goes with it
    ///   ([`RetentionPolicy::notification_log`]);
    /// * a notification never settled and last active before the age plus
    ///   [`ABANDONED_NOTIFICATION_GRACE`] is abandoned and no longer keeps its incident;
    /// * silences that ended before the cutoff go ([`RetentionPolicy::expired_silences`];
    ///   the engine keeps the ones it loaded in memory until its next start).
    ///
    /// The audit log and change events are kept unless [`RetentionPolicy::audit_age`]
    /// and [`RetentionPolicy::change_age`] are set.
    pub fn for_engine(max_age: Duration) -> Self {
        RetentionPolicy {
            closed_states: vec!["closed".into()],
            closed_at_fields: vec!["closed_at".into()],
            alert_active_field: Some("groups".into()),
            alert_last_seen_field: Some("last_seen".into()),
            remove_unlisted_alerts: true,
            keep_last_incident: true,
            keep_max_by: Some(("escalation_policy".into(), "round_robin_cursor".into())),
            notification_log: true,
            abandoned_notification_grace: Some(ABANDONED_NOTIFICATION_GRACE),
            expired_silences: true,
            ..RetentionPolicy::new(max_age)
        }
    }

    /// When a record closed, if it is closed.
    fn closed_at(&self, rec: &Value) -> Option<Timestamp> {
        let state = rec.get(&self.state_field)?.as_str()?;
        if !self.closed_states.iter().any(|s| s == state) {
            return None;
        }
        self.closed_at_fields
            .iter()
            .find_map(|f| timestamp(rec.get(f)?))
    }

    fn alert_keys(&self, rec: &Value) -> Vec<String> {
        let Some(field) = &self.alerts_field else {
            return Vec::new();
        };
        let Some(Value::Array(items)) = rec.get(field) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|a| match a {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o
                    .get("fingerprint")
                    .and_then(|f| f.as_str())
                    .map(str::to_owned),
                _ => None,
            })
            .collect()
    }

    /// Removes every incident closed before `now - max_age`.
    pub async fn run<S: Store + ?Sized>(
        &self,
        store: &S,
        now: Timestamp,
    ) -> Result<RetentionReport, Error> {
        self.run_guarded::<S, std::io::Sink>(store, now, None, &NoGuard)
            .await
    }

    /// Like [`RetentionPolicy::run`], and first writes each removed timeline entry to
    /// `archive` as a JSON line `{"incident":"…","key":"…","entry":{…}}`.
    pub async fn run_with_archive<S: Store + ?Sized, W: Write + Send + ?Sized>(
        &self,
        store: &S,
        now: Timestamp,
        archive: &mut W,
    ) -> Result<RetentionReport, Error> {
        self.run_guarded(store, now, Some(archive), &NoGuard).await
    }

    /// The full form: archives to `archive` when given, and keeps whatever `guard`
    /// says is in use.
    ///
    /// Two passes: the first reads every incident record (a page at a time) and notes
    /// the candidates, the alert keys that incidents staying behind (guarded ones
    /// included) still list (such an alert is kept) and the counter high-water marks
    /// to keep; the second removes the candidates, `page_size` incidents per atomic
    /// batch, each re-read and re-checked (and checked against `guard`) right before.
    /// With [`RetentionPolicy::remove_unlisted_alerts`], a third removes the old alert
    /// records no incident lists; with [`RetentionPolicy::notification_log`], a fourth
    /// the old notification-log records whose incident is gone (or that have none).
    /// Last, with [`RetentionPolicy::audit_age`] and [`RetentionPolicy::change_age`],
    /// the old audit entries and change events.
    pub async fn run_guarded<S: Store + ?Sized, W: Write + Send + ?Sized>(
        &self,
        store: &S,
        now: Timestamp,
        archive: Option<&mut W>,
        guard: &dyn RetentionGuard,
    ) -> Result<RetentionReport, Error> {
        let mut report = RetentionReport::default();
        if self.remove_incidents {
            let cutoff = cutoff(now, self.max_age);
            self.remove_closed(store, cutoff, archive, guard, &mut report)
                .await?;
            if self.expired_silences {
                let ended = self.remove_ended_silences(store, cutoff).await?;
                report.add(&ended);
            }
        }
        if let Some(age) = self.audit_age {
            report.audit = self
                .remove_time_keyed(store, Table::Audit, cutoff(now, age))
                .await?;
        }
        if let Some(age) = self.change_age {
            report.changes = self
                .remove_time_keyed(store, Table::Changes, cutoff(now, age))
                .await?;
        }
        Ok(report)
    }

    /// The incident passes of [`RetentionPolicy::run_guarded`], adding to `report`.
    async fn remove_closed<S: Store + ?Sized, W: Write + Send + ?Sized>(
        &self,
        store: &S,
        cutoff: Timestamp,
        mut archive: Option<&mut W>,
        guard: &dyn RetentionGuard,
        report: &mut RetentionReport,
    ) -> Result<(), Error> {
        let Plan {
            candidates,
            mut kept_alerts,
            mut candidate_alerts,
        } = self.plan(store, cutoff).await?;
        // Incidents in use stay, and so do the alerts they list.
        let candidates: Vec<String> = candidates
            .into_iter()
            .filter(|id| {
                let in_use = guard.incident_in_use(id);
                if in_use {
                    kept_alerts.extend(candidate_alerts.remove(id).unwrap_or_default());
                }
                !in_use
            })
            .collect();
        let mut gone_alerts: HashSet<String> = HashSet::new();
        let abandoned_before = self.abandoned_before(cutoff);
        for chunk in candidates.chunks(self.page_size.max(1)) {
            // One commit per chunk: each incident is whole inside it.
            let mut parts: Vec<(&str, WriteBatch, RetentionReport)> = Vec::new();
            for id in chunk {
                if guard.incident_in_use(id) {
                    continue;
                }
                // Re-read: it may have changed since the first pass.
                let Some(bytes) = store.get(self.incidents, id).await? else {
                    continue;
                };
                let Ok(rec) = serde_json::from_slice::<Value>(&bytes) else {
                    continue;
                };
                let closed_at = match self.closed_at(&rec) {
                    Some(t) if t < cutoff => t,
                    _ => continue,
                };
                let mut part = WriteBatch::new();
                let mut removed = RetentionReport::default();
                // Its delivery trail first: an incident whose notifications the
                // pipeline is not done with stays whole (archive untouched).
                if self.notification_log {
                    match notification_trail(store, id, abandoned_before).await? {
                        Some(trail) => {
                            removed.notification_log = trail.keys.len() as u64;
                            removed.abandoned_notifications = trail.abandoned;
                            for k in trail.keys {
                                part.delete(Table::NotificationLog, k);
                            }
                        }
                        None => continue,
                    }
                }
                self.remove_incident(
                    store,
                    Removal {
                        id,
                        bytes: &bytes,
                        rec: &rec,
                        closed_at,
                        kept_alerts: &kept_alerts,
                        guard,
                    },
                    &mut part,
                    archive.as_deref_mut(),
                    &mut gone_alerts,
                    &mut removed,
                )
                .await?;
                parts.push((id, part, removed));
            }
            if parts.is_empty() {
                continue;
            }
            if let Some(out) = archive.as_deref_mut() {
                out.flush().map_err(archive_err)?;
            }
            // Checked once more right before the commit: the engine may have taken an
            // incident or alert back while the chunk was read. What remains, the
            // time of the commit itself, is closed by the preconditions: each incident
            // and alert record is deleted only if it still holds the bytes read.
            let mut ready: Vec<(WriteBatch, RetentionReport)> = Vec::new();
            for (id, part, mut removed) in parts {
                if guard.incident_in_use(id) {
                    continue;
                }
                let mut ops = WriteBatch::new();
                for op in part.ops {
                    match &op {
                        WriteOp::Delete {
                            table: Table::Alerts,
                            key,
                        } if guard.alert_in_use(key) => {
                            removed.alerts -= 1;
                            continue;
                        }
                        WriteOp::Expect {
                            table: Table::Alerts,
                            key,
                            ..
                        } if guard.alert_in_use(key) => continue,
                        _ => {}
                    }
                    ops.ops.push(op);
                }
                ready.push((ops, removed));
            }
            self.commit_parts(store, ready, report).await?;
        }
        if self.remove_unlisted_alerts {
            let unlisted = self
                .remove_unlisted(store, cutoff, &kept_alerts, &gone_alerts, guard)
                .await?;
            report.add(&unlisted);
        }
        if self.notification_log {
            let (rows, abandoned) = self
                .remove_orphan_notifications(store, cutoff, guard)
                .await?;
            report.notification_log += rows;
            report.abandoned_notifications += abandoned;
            let slots = self.remove_stale_throttle_slots(store, cutoff).await?;
            report.add(&slots);
            let roots = self.remove_old_thread_roots(store, cutoff, guard).await?;
            report.add(&roots);
        }
        Ok(())
    }

    /// The silence pass ([`RetentionPolicy::expired_silences`]): removes silences whose
    /// `ends_at` is before `cutoff`, a page per batch, each only while it holds the
    /// record judged.
    async fn remove_ended_silences<S: Store + ?Sized>(
        &self,
        store: &S,
        cutoff: Timestamp,
    ) -> Result<RetentionReport, Error> {
        let one = RetentionReport {
            silences: 1,
            ..RetentionReport::default()
        };
        self.remove_judged(store, Table::Silences, "", &one, &NoGuard, |bytes| {
            Verdict::remove_if(
                serde_json::from_slice::<Value>(bytes)
                    .ok()
                    .and_then(|v| v.get("ends_at").and_then(timestamp))
                    .is_some_and(|t| t < cutoff),
            )
        })
        .await
    }

    /// The throttle pass: removes throttle slots (`~throttle/{kind}/{address}`, a
    /// contact method's next free send time) whose time is before `cutoff`. A slot in
    /// the past constrains nothing (the throttle treats it as no slot), so this only
    /// drops those of contact methods not written to since, e.g. removed from the
    /// configuration; each only while it holds the value judged. A value that is not
    /// a time is not ours to judge and stays. Counted as notification-log rows.
    async fn remove_stale_throttle_slots<S: Store + ?Sized>(
        &self,
        store: &S,
        cutoff: Timestamp,
    ) -> Result<RetentionReport, Error> {
        let one = RetentionReport {
            notification_log: 1,
            ..RetentionReport::default()
        };
        self.remove_judged(
            store,
            Table::NotificationLog,
            THROTTLE_PREFIX,
            &one,
            &NoGuard,
            |bytes| {
                Verdict::remove_if(
                    serde_json::from_slice::<Timestamp>(bytes)
                        .is_ok_and(|next_free| next_free < cutoff),
                )
            },
        )
        .await
    }

    /// The thread-root pass: removes channels' thread-root marks
    /// ([`log::ThreadRoot`], `~email-thread/…`, one per incident and recipient) sent
    /// before `cutoff` whose incident no longer exists (or that name none), each only
    /// while it holds the value judged. A later email of a removed incident cannot
    /// come, so nothing replies to a forgotten root; a mark without a readable time
    /// (written before marks carried one) is not judged and stays. Counted as
    /// notification-log rows.
    async fn remove_old_thread_roots<S: Store + ?Sized>(
        &self,
        store: &S,
        cutoff: Timestamp,
        guard: &dyn RetentionGuard,
    ) -> Result<RetentionReport, Error> {
        let one = RetentionReport {
            notification_log: 1,
            ..RetentionReport::default()
        };
        self.remove_judged(
            store,
            Table::NotificationLog,
            log::THREAD_ROOT_PREFIX,
            &one,
            guard,
            |bytes| match serde_json::from_slice::<log::ThreadRoot>(bytes) {
                Ok(mark) if mark.at < cutoff => match mark.incident {
                    Some(id) => Verdict::RemoveUnlessIncidentExists(id),
                    None => Verdict::Remove,
                },
                _ => Verdict::Keep,
            },
        )
        .await
    }

    /// Scans `table` under `prefix` a page at a time and removes every record `judge`
    /// finds removable (asking the store and `guard` whether an incident exists), each only while it still holds the bytes judged
    /// ([`WriteBatch::delete_if_unchanged`]); one batch per page. Each removal adds
    /// `one` to the report.
    async fn remove_judged<S: Store + ?Sized>(
        &self,
        store: &S,
        table: Table,
        prefix: &str,
        one: &RetentionReport,
        guard: &dyn RetentionGuard,
        judge: impl Fn(&[u8]) -> Verdict,
    ) -> Result<RetentionReport, Error> {
        let mut report = RetentionReport::default();
        let mut known: HashMap<String, bool> = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .scan(
                    table,
                    Scan {
                        prefix: prefix.into(),
                        after: after.take(),
                        limit: self.page_size.max(1),
                        ..Scan::default()
                    },
                )
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let mut parts = Vec::new();
            for (key, bytes) in page {
                let goes = match judge(&bytes) {
                    Verdict::Keep => false,
                    Verdict::Remove => true,
                    Verdict::RemoveUnlessIncidentExists(id) => {
                        !self.incident_exists(store, &id, guard, &mut known).await?
                    }
                };
                if goes {
                    let mut part = WriteBatch::new();
                    part.delete_if_unchanged(table, key, bytes);
                    parts.push((part, one.clone()));
                }
            }
            self.commit_parts(store, parts, &mut report).await?;
        }
        Ok(report)
    }

    /// Before when a notification never settled must have been last active to count
    /// as abandoned (`None`: never).
    fn abandoned_before(&self, cutoff: Timestamp) -> Option<Timestamp> {
        self.abandoned_notification_grace
            .filter(|_| self.notification_log)
            .map(|grace| self::cutoff(cutoff, grace))
    }

    /// Commits the parts of one chunk (each an incident whole, with its
    /// preconditions) as one batch, adding each part's counts to `report`. If a
    /// precondition fails (the engine changed a record between the read and the
    /// commit), the parts are committed one by one instead, and a part whose own
    /// precondition fails is left for a later sweep (counted in `raced`).
    async fn commit_parts<S: Store + ?Sized>(
        &self,
        store: &S,
        parts: Vec<(WriteBatch, RetentionReport)>,
        report: &mut RetentionReport,
    ) -> Result<(), Error> {
        let mut all = WriteBatch::new();
        for (part, _) in &parts {
            all.ops.extend(part.ops.iter().cloned());
        }
        if all.is_empty() {
            return Ok(());
        }
        match store.commit(all).await {
            Ok(()) => {
                for (_, removed) in &parts {
                    report.add(removed);
                }
                Ok(())
            }
            Err(StoreError::Conflict(_)) => {
                for (part, removed) in parts {
                    match store.commit(part).await {
                        Ok(()) => report.add(&removed),
                        Err(StoreError::Conflict(_)) => report.raced += 1,
                        Err(e) => return Err(Error::Store(e)),
                    }
                }
                Ok(())
            }
            Err(e) => Err(Error::Store(e)),
        }
    }

    /// The notification-log pass: a notification whose incident no longer exists (its
    /// trail outlived it: removed before this pass existed, or by hand) or that has no
    /// incident goes, with every index row pointing at it, once the pipeline is done
    /// with it ([`log::NotificationFootprint::settled`]) and its last activity (creation,
    /// last attempt update) is before `cutoff`, or, never settled, once abandoned
    /// ([`RetentionPolicy::abandoned_notification_grace`]). Reads the per-notification rows a page
    /// at a time (the index rows, `~…`, sort after them and are not scanned) and
    /// commits one batch per page. Returns the rows removed.
    async fn remove_orphan_notifications<S: Store + ?Sized>(
        &self,
        store: &S,
        cutoff: Timestamp,
        guard: &dyn RetentionGuard,
    ) -> Result<(u64, u64), Error> {
        let mut removed = 0;
        let mut abandoned = 0;
        let abandoned_before = self.abandoned_before(cutoff);
        let mut after: Option<String> = None;
        let mut last_id: Option<String> = None;
        let mut skipped_index = false;
        // Whether an incident exists, for the notifications of one page.
        let mut known: HashMap<String, bool> = HashMap::new();
        loop {
            known.clear();
            let page = store
                .scan(
                    Table::NotificationLog,
                    Scan {
                        after: after.take(),
                        limit: self.page_size.max(1),
                        ..Scan::default()
                    },
                )
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let mut batch = WriteBatch::new();
            let mut reached_index = false;
            for (key, value) in page {
                let Some(id) = log::notification_id_of_key(&key) else {
                    if key.starts_with('~') {
                        reached_index = true;
                        break;
                    }
                    continue; // not a key the log writes: not ours to judge
                };
                // A notification's rows are adjacent: judge it once.
                if last_id.as_deref() == Some(id.as_str()) {
                    continue;
                }
                last_id = Some(id.clone());
                // Cheap first look at its first attempt (its first row, when it has
                // attempts): recent, or its incident exists, and it stays.
                if let Ok(r) = serde_json::from_slice::<log::DeliveryRecord>(&value) {
                    if r.updated_at >= cutoff {
                        continue;
                    }
                    if let Some(inc) = &r.incident_id
                        && self.incident_exists(store, inc, guard, &mut known).await?
                    {
                        continue;
                    }
                }
                let f = log::notification_footprint(store, &id).await?;
                let old = f.last_activity.is_some_and(|t| t < cutoff);
                let given_up = !f.settled && is_abandoned(&f, abandoned_before);
                if !((f.settled && old) || given_up) {
                    continue;
                }
                if let Some(inc) = &f.incident_id
                    && self.incident_exists(store, inc, guard, &mut known).await?
                {
                    continue; // its incident exists: the trail goes with it
                }
                removed += f.keys.len() as u64;
                abandoned += u64::from(given_up);
                for k in f.keys {
                    batch.delete(Table::NotificationLog, k);
                }
            }
            if !batch.is_empty() {
                store.commit(batch).await.map_err(Error::Store)?;
            }
            if reached_index {
                // The index rows (`~…`) are not scanned: jump past them, once, to any
                // notification whose id sorts after `~` (non-ASCII).
                if skipped_index {
                    break;
                }
                skipped_index = true;
                after = Some("~\u{10FFFF}".to_owned());
            }
        }
        Ok((removed, abandoned))
    }

    /// Whether incident `id` exists in the store (or the engine holds it), asked of
    /// the store once per `known` cache.
    async fn incident_exists<S: Store + ?Sized>(
        &self,
        store: &S,
        id: &str,
        guard: &dyn RetentionGuard,
        known: &mut HashMap<String, bool>,
    ) -> Result<bool, Error> {
        if let Some(&e) = known.get(id) {
            return Ok(e);
        }
        let e = guard.incident_in_use(id) || store.get(self.incidents, id).await?.is_some();
        known.insert(id.to_owned(), e);
        Ok(e)
    }

    /// The audit and change passes: removes the entries of `table` (keyed
    /// `"<time key>/…"`) whose time key is before `cutoff`, scanning from the oldest
    /// key, `page_size` entries per atomic batch, until the first key at or after it.
    /// Keys not starting with a time key sort after every time key and are never
    /// removed. Returns how many.
    async fn remove_time_keyed<S: Store + ?Sized>(
        &self,
        store: &S,
        table: Table,
        cutoff: Timestamp,
    ) -> Result<u64, Error> {
        let bound = time_key(cutoff);
        let mut removed = 0;
        loop {
            // Always from the start: the previous chunk is gone.
            let page = store
                .scan(
                    table,
                    Scan {
                        limit: self.page_size.max(1),
                        ..Scan::default()
                    },
                )
                .await?;
            let full = page.len() >= self.page_size.max(1);
            let mut batch = WriteBatch::new();
            let mut done = !full;
            for (key, _) in page {
                if key.as_str() >= bound.as_str() {
                    done = true;
                    break;
                }
                batch.delete(table, key);
            }
            if !batch.is_empty() {
                removed += batch.len() as u64;
                store.commit(batch).await.map_err(Error::Store)?;
            }
            if done {
                break;
            }
        }
        Ok(removed)
    }

    /// The third pass ([`RetentionPolicy::remove_unlisted_alerts`]): removes alert
    /// records no incident lists (neither one that stays, `kept`, nor one just
    /// removed, `gone`) once inactive and last seen before `cutoff`, each only while it
    /// holds the bytes judged (else it is left for a later sweep, counted in `raced`).
    /// Returns the counts. Needs both `alert_active_field` and `alert_last_seen_field`
    /// (otherwise it cannot judge, and removes nothing).
    async fn remove_unlisted<S: Store + ?Sized>(
        &self,
        store: &S,
        cutoff: Timestamp,
        kept: &KeySet,
        gone: &HashSet<String>,
        guard: &dyn RetentionGuard,
    ) -> Result<RetentionReport, Error> {
        let mut report = RetentionReport::default();
        let (Some(active), Some(seen)) = (&self.alert_active_field, &self.alert_last_seen_field)
        else {
            return Ok(report);
        };
        let mut after: Option<String> = None;
        loop {
            let page = store
                .scan(
                    Table::Alerts,
                    Scan {
                        after: after.take(),
                        limit: self.page_size.max(1),
                        ..Scan::default()
                    },
                )
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let mut parts: Vec<(WriteBatch, RetentionReport)> = Vec::new();
            for (key, bytes) in page {
                if kept.contains(&key) || gone.contains(&key) {
                    continue;
                }
                let Ok(a) = serde_json::from_slice::<Value>(&bytes) else {
                    continue;
                };
                let inactive = match a.get(active) {
                    None | Some(Value::Null) => true,
                    Some(Value::Array(groups)) => groups.is_empty(),
                    Some(_) => false,
                };
                let old = a.get(seen).and_then(timestamp).is_some_and(|t| t < cutoff);
                if inactive && old && !guard.alert_in_use(&key) {
                    // Only while it still holds what was judged here.
                    let mut part = WriteBatch::new();
                    part.delete_if_unchanged(Table::Alerts, key, bytes);
                    parts.push((
                        part,
                        RetentionReport {
                            alerts: 1,
                            ..RetentionReport::default()
                        },
                    ));
                }
            }
            // Checked once more right before the commit (a re-fired alert is in use).
            parts.retain(|(part, _)| part.ops.iter().all(|op| !guard.alert_in_use(op.target().1)));
            self.commit_parts(store, parts, &mut report).await?;
        }
        Ok(report)
    }

    /// The first pass: candidates (closed before `cutoff`, not a kept high-water mark)
    /// and the alert keys listed by every incident that stays.
    async fn plan<S: Store + ?Sized>(&self, store: &S, cutoff: Timestamp) -> Result<Plan, Error> {
        let mut candidates: Vec<String> = Vec::new();
        let mut kept_alerts = KeySet::default();
        let mut last_key: Option<String> = None;
        // Per value of keep_max_by.0: (greatest keep_max_by.1, its incident).
        let mut high: HashMap<String, (u64, String)> = HashMap::new();
        let mut candidate_alerts: HashMap<String, Vec<String>> = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .scan(
                    self.incidents,
                    Scan {
                        after: after.take(),
                        limit: self.page_size.max(1),
                        ..Scan::default()
                    },
                )
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            last_key = Some(last.clone());
            for (id, bytes) in page {
                let Ok(rec) = serde_json::from_slice::<Value>(&bytes) else {
                    continue; // not ours to judge: keep it
                };
                if let Some((by, value)) = &self.keep_max_by
                    && let Some(k) = rec.get(by).and_then(Value::as_str)
                {
                    let v = rec.get(value).and_then(Value::as_u64).unwrap_or(0);
                    let e = high.entry(k.to_owned()).or_insert((v, id.clone()));
                    if v > e.0 {
                        *e = (v, id.clone());
                    }
                }
                match self.closed_at(&rec) {
                    Some(t) if t < cutoff => {
                        candidate_alerts.insert(id.clone(), self.alert_keys(&rec));
                        candidates.push(id);
                    }
                    _ => kept_alerts.extend(self.alert_keys(&rec)),
                }
            }
        }
        let mut protected: HashSet<String> = high.into_values().map(|(_, id)| id).collect();
        if self.keep_last_incident
            && let Some(k) = last_key
        {
            protected.insert(k);
        }
        candidates.retain(|id| {
            if protected.contains(id) {
                kept_alerts.extend(candidate_alerts.remove(id).unwrap_or_default());
                false
            } else {
                true
            }
        });
        Ok(Plan {
            candidates,
            kept_alerts,
            candidate_alerts,
        })
    }

    /// The stored bytes of an alert record that may go with the incident `r`
    /// removes (`None`: it stays).
    async fn alert_removable<S: Store + ?Sized>(
        &self,
        store: &S,
        key: &str,
        r: &Removal<'_>,
    ) -> Result<Option<Vec<u8>>, Error> {
        if r.kept_alerts.contains(key) || r.guard.alert_in_use(key) {
            return Ok(None);
        }
        let Some(bytes) = store.get(Table::Alerts, key).await? else {
            return Ok(None);
        };
        let Ok(a) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(None);
        };
        let owner_ok = a
            .get(&self.alert_incident_field)
            .and_then(|v| v.as_str())
            .is_none_or(|owner| owner == r.id);
        let retired = self
            .alert_active_field
            .as_ref()
            .is_none_or(|f| match a.get(f) {
                None | Some(Value::Null) => true,
                Some(Value::Array(groups)) => groups.is_empty(),
                Some(_) => false,
            });
        // Seen after the incident closed: it fired again (for a newer incident).
        let not_seen_since = self.alert_last_seen_field.as_ref().is_none_or(|f| {
            a.get(f)
                .and_then(timestamp)
                .is_none_or(|t| t <= r.closed_at)
        });
        Ok((owner_ok && retired && not_seen_since).then_some(bytes))
    }

    /// Adds the deletes of one incident to `batch` and archives its timeline.
    async fn remove_incident<S: Store + ?Sized, W: Write + Send + ?Sized>(
        &self,
        store: &S,
        r: Removal<'_>,
        batch: &mut WriteBatch,
        archive: Option<&mut W>,
        gone_alerts: &mut HashSet<String>,
        report: &mut RetentionReport,
    ) -> Result<(), Error> {
        let id = r.id;
        // Only while it still holds what was judged (see `commit_parts`).
        batch.delete_if_unchanged(self.incidents, id, r.bytes.to_vec());
        let mut alerts = 0;
        for key in self.alert_keys(r.rec) {
            if gone_alerts.contains(&key) {
                continue;
            }
            if let Some(bytes) = self.alert_removable(store, &key, &r).await? {
                batch.delete_if_unchanged(Table::Alerts, key.clone(), bytes);
                gone_alerts.insert(key);
                alerts += 1;
            }
        }
        let mut entries = Vec::new();
        if self.timeline {
            entries = store
                .scan(Table::Timeline, Scan::prefix(format!("{id}/")))
                .await?;
            for (k, _) in &entries {
                batch.delete(Table::Timeline, k.clone());
            }
        }
        let mut archived = 0;
        if let Some(out) = archive {
            for (k, v) in &entries {
                for entry in archived_entries(v) {
                    let line = serde_json::json!({ "incident": id, "key": k, "entry": entry });
                    serde_json::to_writer(&mut *out, &line).map_err(|e| Error::File {
                        path: "timeline archive".into(),
                        source: std::io::Error::other(e),
                    })?;
                    out.write_all(b"\n").map_err(archive_err)?;
                    archived += 1;
                }
            }
        }
        report.incidents += 1;
        report.alerts += alerts;
        report.timeline_entries += entries.len() as u64;
        report.archived += archived;
        Ok(())
    }
}

/// The first pass's outcome.
struct Plan {
    /// Incidents to remove, in key order.
    candidates: Vec<String>,
    /// Alert keys listed by incidents that stay.
    kept_alerts: KeySet,
    /// Alert keys each candidate lists.
    candidate_alerts: HashMap<String, Vec<String>>,
}

/// One incident being removed, and what protects its alerts.
struct Removal<'a> {
    id: &'a str,
    /// The incident record's stored bytes, as judged.
    bytes: &'a [u8],
    rec: &'a Value,
    closed_at: Timestamp,
    kept_alerts: &'a KeySet,
    guard: &'a dyn RetentionGuard,
}

/// A set of keys held as 64-bit hashes (8 bytes per alert listed by a kept incident,
/// however long the key): a collision can only make an alert look listed, which keeps
/// it, never removes one that is.
#[derive(Default)]
struct KeySet(HashSet<u64>);

impl KeySet {
    fn hash(key: &str) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(key)
    }

    fn contains(&self, key: &str) -> bool {
        self.0.contains(&Self::hash(key))
    }

    fn extend(&mut self, keys: impl IntoIterator<Item = String>) {
        self.0.extend(keys.into_iter().map(|k| Self::hash(&k)));
    }
}

/// `now - age`, or the earliest instant when that is out of range (nothing is older).
fn cutoff(now: Timestamp, age: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(age)
        .ok()
        .and_then(|d| now.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

/// An incident's delivery trail in the notification log.
struct Trail {
    /// Every key of it.
    keys: Vec<String>,
    /// Notifications in it never settled but abandoned.
    abandoned: u64,
}

/// Whether a notification never settled counts as abandoned: last active before
/// `before` (never when that is `None` or its last activity is unknown).
fn is_abandoned(f: &log::NotificationFootprint, before: Option<Timestamp>) -> bool {
    matches!((before, f.last_activity), (Some(b), Some(t)) if t < b)
}

/// Every notification-log key of an incident's delivery trail (each notification the
/// trail index lists: its rows and every index row pointing at them, the trail index
/// rows included), or `None` when the delivery pipeline is not done with one of them
/// (the incident is then kept whole, see [`log::NotificationFootprint::settled`])
/// and it is not abandoned (last active before `abandoned_before`).
async fn notification_trail<S: Store + ?Sized>(
    store: &S,
    incident_id: &str,
    abandoned_before: Option<Timestamp>,
) -> Result<Option<Trail>, Error> {
    let mut keys: Vec<String> = Vec::new();
    let mut abandoned = 0;
    let mut seen: HashSet<String> = HashSet::new();
    for id in log::incident_notification_ids(store, incident_id).await? {
        let f = log::notification_footprint(store, &id).await?;
        if !f.settled {
            if !is_abandoned(&f, abandoned_before) {
                return Ok(None);
            }
            abandoned += 1;
        }
        keys.extend(f.keys.into_iter().filter(|k| seen.insert(k.clone())));
        // The trail index row itself, even when the notification's own rows name
        // another incident (or none, or are gone).
        let idx = log::incident_index_key(incident_id, &id);
        if seen.insert(idx.clone()) {
            keys.push(idx);
        }
    }
    Ok(Some(Trail { keys, abandoned }))
}

/// An RFC 3339 string or integer milliseconds since the Unix epoch.
fn timestamp(v: &Value) -> Option<Timestamp> {
    match v {
        Value::String(s) => s.parse::<Timestamp>().ok(),
        Value::Number(n) => n
            .as_i64()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        _ => None,
    }
}

/// The archive lines' `entry` values of one stored timeline record: each full entry of
/// an engine record (a run of entries is stored as one compact record, see
/// [`signalcraft_core::incident::timeline::decode_stored`]), one line each; any other
/// record as its JSON (or, if not JSON, its text), so nothing is dropped.
fn archived_entries(v: &[u8]) -> Vec<Value> {
    if let Ok(entries) = signalcraft_core::incident::timeline::decode_stored(v)
        && let Ok(values) = entries
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<Value>, _>>()
    {
        return values;
    }
    vec![
        serde_json::from_slice::<Value>(v)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(v).into_owned())),
    ]
}

fn archive_err(e: std::io::Error) -> Error {
    Error::File {
        path: "timeline archive".into(),
        source: e,
    }
}
