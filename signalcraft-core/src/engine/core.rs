//! The pure engine core: all state and every decision, no I/O, no clock.
//!
//! Every method takes `now` and appends [`Effect`]s to `out`; the async shell
//! ([`super::Engine`]) persists, schedules and notifies. The ingest hot path
//! (fingerprint → dedup → route → group) allocates only for alerts it has not seen.
//!
//! Grouping follows Alertmanager: a new group flushes after `group_wait`; after that
//! its flushes fall on `group_interval` ticks counted from the last flush, and a flush
//! notifies only when [`needs_update`] says so. Unlike Alertmanager, a settled group
//! (every member notified, none muted) does not flush every tick: its next flush is
//! parked at the repeat deadline and pulled back in to the next tick when an alert
//! joins, re-fires or resolves (`pull_in`), which sends exactly what the every-tick
//! flushes would, without a job and a write per group per tick. Two rules on top:
//! when the last firing alert of a notified group resolves, the flush is pulled in to
//! `now + resolve_wait` (prompt resolves, alertmanager#1510); and repeats of an unchanged
//! group are sent only while its incident is still `open` (nobody is paged again about
//! something acknowledged). Silences, inhibition and mute windows apply to firing alerts
//! at flush time; resolved alerts always pass so incidents can close.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::config::CompiledConfig;
use super::effects::{Effect, PageUser, Record};
use super::events::EngineEvent;
use crate::CoreError;
use crate::channel::{Notification, NotificationAlerts, NotificationKind, Target};
use crate::dispatch::group::{GroupProbe, format_labels, group_hash, group_key, group_labels};
use crate::dispatch::{
    AggregationGroup, FpSlab, GroupSet, IndexBuild, KeySlab, NflogEntry, ProbeKey, UpdateReason,
    needs_update,
};
use crate::duration::add;
use crate::incident::audit::time_key;
use crate::incident::{
    Actor, AuditEntry, EntryKind, Incident, IncidentFilter, IncidentState, Note, Page, Role,
    TimelineEntry, Urgency,
};
use crate::inhibit::Inhibitor;
use crate::model::{
    ActionEvent, ActionKind, Alert, AlertStatus, Annotations, ChangeEvent, CompactAlert, Event,
    Fingerprint, LabelView, Labels, Link, Severity,
};
use crate::scheduler::{Job, JobKind};
use crate::service::Service;
use crate::silence::{Silence, SilenceSpec, SilenceState, Silences};
use crate::store::{Table, WriteOp};

/// Events per window of [`EngineCore::ingest_all`]: enough re-send checks in a row for
/// their cache misses to overlap, few enough that the window's alerts stay cached.
pub const INGEST_WINDOW: usize = 32;
/// Most change events kept in memory for "recent changes".
const MAX_CHANGES_IN_MEMORY: usize = 10_000;
/// Longest note accepted.
const MAX_NOTE_LEN: usize = 16 * 1024;

/// An alert the engine knows.
#[derive(Debug, Clone)]
pub struct AlertEntry {
    /// The latest version received: in full until [`EngineCore::compact_alerts`], then
    /// packed without its raw payload.
    pub alert: StoredAlert,
    /// Whether the raw payload of the current version is no longer in memory (only in
    /// the record written when it was received): records encoded from now on say so
    /// ([`AlertRecord::payload_elided`]).
    pub raw_elided: bool,
    /// Identity.
    pub fingerprint: Fingerprint,
    /// First received (this occurrence).
    pub first_seen: Timestamp,
    /// Last received.
    pub last_seen: Timestamp,
    /// When it resolved.
    pub resolved_at: Option<Timestamp>,
    /// Groups it belongs to (in-memory hashes).
    pub groups: GroupSet,
}

/// What [`EngineCore::group_for`] tells the alert that joined a group.
struct Joined {
    /// The group's in-memory hash.
    hash: u64,
    /// The group was flushed before (the alert is pulled into its next flush).
    joins_flushed: bool,
    /// The group's incident, if any.
    incident: Option<String>,
}

/// The stored form of an alert (`Table::Alerts`, key: fingerprint hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Identity.
    pub fingerprint: Fingerprint,
    /// The alert.
    pub alert: Alert,
    /// First received.
    pub first_seen: Timestamp,
    /// Last received.
    pub last_seen: Timestamp,
    /// When it resolved.
    #[serde(default)]
    pub resolved_at: Option<Timestamp>,
    /// Group keys it belongs to (empty once retired).
    #[serde(default)]
    pub groups: Vec<String>,
    /// `true` when the engine wrote this record after it had released the alert's raw
    /// payload from memory ([`EngineCore::compact_alerts`]): `alert.raw` is null here
    /// although the alert had one, and the record written when this version was
    /// received holds it. A writer that replaces a stored record by this one should keep
    /// the stored `alert.raw` ([`AlertRecord::merge_stored_payload`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub payload_elided: bool,
}

impl AlertRecord {
    /// For a record with [`AlertRecord::payload_elided`]: takes the raw payload from the
    /// record currently stored under the same key (when that one has a payload) and
    /// clears the flag. Returns whether the record changed. Records without the flag are
    /// left alone (their payload is the newest).
    pub fn merge_stored_payload(&mut self, stored: &AlertRecord) -> bool {
        if !self.payload_elided || stored.alert.raw.is_null() {
            return false;
        }
        self.alert.raw = stored.alert.raw.clone();
        self.payload_elided = stored.payload_elided;
        true
    }
}

/// The latest version of a known alert as the engine holds it.
// The full form is boxed so a slab slot stays small once compacted (184 B, not 392 B);
// alternating A/B runs of `normalize_to_group` put the boxed and unboxed forms within
// run-to-run noise of each other.
#[derive(Debug, Clone)]
pub enum StoredAlert {
    /// As received (with its raw payload) until [`EngineCore::compact_alerts`]. Boxed:
    /// inline, every slab slot would stay as large as a full `Alert` after compaction.
    Full(Box<Alert>),
    /// Packed, raw payload released.
    Compact(CompactAlert),
}

/// Read access to a stored alert, whichever form it is in.
#[derive(Debug, Clone, Copy)]
pub enum AlertRef<'a> {
    /// Held in full.
    Full(&'a Alert),
    /// Packed.
    Compact(&'a CompactAlert),
    /// Not found (a broken internal invariant; reads as an empty resolved alert).
    Missing,
}

#[inline]
fn view(stored: &StoredAlert) -> AlertRef<'_> {
    match stored {
        StoredAlert::Full(a) => AlertRef::Full(a),
        StoredAlert::Compact(c) => AlertRef::Compact(c),
    }
}

impl AlertRef<'_> {
    /// Firing or resolved.
    #[inline]
    pub fn status(self) -> AlertStatus {
        match self {
            AlertRef::Full(a) => a.status,
            AlertRef::Compact(c) => c.status,
            AlertRef::Missing => AlertStatus::Resolved,
        }
    }

    /// Severity.
    pub fn severity(self) -> Severity {
        match self {
            AlertRef::Full(a) => a.severity,
            AlertRef::Compact(c) => c.severity,
            AlertRef::Missing => Severity::Info,
        }
    }

    /// Summary.
    pub fn summary(&self) -> &str {
        match self {
            AlertRef::Full(a) => &a.summary,
            AlertRef::Compact(c) => c.summary(),
            AlertRef::Missing => "",
        }
    }

    /// The integration that sent it.
    pub fn integration(&self) -> &str {
        match self {
            AlertRef::Full(a) => &a.source.integration,
            AlertRef::Compact(c) => &c.source.integration,
            AlertRef::Missing => "",
        }
    }

    /// The alert (a compact one comes back with a null raw payload).
    pub fn to_alert(self) -> Alert {
        match self {
            AlertRef::Full(a) => a.clone(),
            AlertRef::Compact(c) => c.to_alert(),
            AlertRef::Missing => {
                let src = crate::model::Source {
                    provider: "".into(),
                    integration: "".into(),
                };
                let mut a = Alert::firing(src, "", Labels::new());
                a.status = AlertStatus::Resolved;
                a
            }
        }
    }

    /// Runs `f` on the labels as a [`Labels`] map (a compact alert builds one).
    pub fn with_labels<T>(self, f: impl FnOnce(&Labels) -> T) -> T {
        match self {
            AlertRef::Full(a) => f(&a.labels),
            AlertRef::Compact(c) => f(&c.to_labels()),
            AlertRef::Missing => f(&Labels::new()),
        }
    }

    /// Whether `new` carries other content (summary, severity, annotations, links).
    fn content_differs(self, new: &Alert) -> bool {
        match self {
            AlertRef::Full(old) => content_changed(old, new),
            AlertRef::Compact(c) => {
                c.summary() != new.summary
                    || c.severity != new.severity
                    || !c.annotations().eq(new.annotations.iter())
                    || !c.links().eq(new
                        .links
                        .iter()
                        .map(|l| (l.href.as_str(), l.text.as_deref())))
            }
            AlertRef::Missing => true,
        }
    }
}

impl LabelView for AlertRef<'_> {
    #[inline]
    fn label(&self, name: &str) -> Option<&str> {
        match self {
            AlertRef::Full(a) => a.labels.label(name),
            AlertRef::Compact(c) => c.label(name),
            AlertRef::Missing => None,
        }
    }
}

/// Why a firing alert is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mute {
    /// By an active silence.
    Silenced,
    /// By an inhibit rule.
    Inhibited,
}

/// An action on an incident.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentAction {
    /// → acknowledged.
    Acknowledge,
    /// → mitigated.
    Mitigate,
    /// → resolved.
    Resolve,
    /// → closed.
    Close,
    /// Change the escalation policy and/or assignees (restarts paging).
    Reassign {
        /// New policy (None keeps none).
        escalation_policy: Option<String>,
        /// New direct assignees.
        assignees: Vec<String>,
    },
    /// Add a note.
    Note(String),
    /// Assign a role.
    AssignRole(Role, String),
    /// Page a user now.
    PageUser {
        /// User id.
        user: String,
        /// Message.
        message: Option<String>,
    },
    /// Record an entry (postmortem created, remediation run, escalation progress …).
    Record(EntryKind),
}

/// The engine's in-memory state and decisions.
pub struct EngineCore {
    cfg: CompiledConfig,
    /// Known alerts in never-moving chunks; the index beside each holds the compact
    /// per-alert state the re-send path reads ([`Hot`]), so a duplicate is one probe.
    alerts: FpSlab<AlertEntry, Hot>,
    /// Groups by in-memory hash, dense (the index stays small enough to stay cached).
    groups: KeySlab<u64, AggregationGroup>,
    group_by_key: HashMap<String, u64, IndexBuild>,
    /// Latest incident per group key (to re-open after the group was retired).
    incident_by_key: HashMap<String, String, IndexBuild>,
    incidents: BTreeMap<String, Incident>,
    silences: Silences,
    inhibitor: Inhibitor,
    services: BTreeMap<String, Service>,
    changes: VecDeque<ChangeEvent>,
    next_incident: u64,
    /// Incidents opened per escalation policy (round-robin cursors).
    policy_opens: HashMap<String, u64>,
    seq: u64,
    route_buf: Vec<usize>,
    /// Alerts whose latest version is held in full (with its raw payload) until
    /// [`EngineCore::compact_alerts`] (may hold stale or repeated entries).
    uncompacted: Vec<Fingerprint>,
}

/// Buffer for an alert, group or incident record's JSON: a typical one fits, where
/// serde_json's own buffer starts at 128 bytes and grows by doubling.
const RECORD_JSON_CAPACITY: usize = 768;

fn fp_key(fp: Fingerprint) -> String {
    fp.to_string()
}

impl EngineCore {
    /// A core with no state.
    pub fn new(cfg: CompiledConfig) -> Self {
        let inhibitor = Inhibitor::new(cfg.inhibit_rules.clone());
        let services = cfg
            .services
            .iter()
            .map(|s| (s.id.clone(), s.clone()))
            .collect();
        EngineCore {
            cfg,
            alerts: FpSlab::default(),
            groups: KeySlab::default(),
            group_by_key: HashMap::default(),
            incident_by_key: HashMap::default(),
            incidents: BTreeMap::new(),
            silences: Silences::new(),
            inhibitor,
            services,
            changes: VecDeque::new(),
            next_incident: 1,
            policy_opens: HashMap::new(),
            seq: 0,
            route_buf: Vec::with_capacity(4),
            uncompacted: Vec::new(),
        }
    }

    /// Makes room for `alerts` more known alerts and `groups` more aggregation groups, so
    /// filling up to that size never rehashes an index (an embedder that knows its
    /// working set, e.g. from the store at start or a configured expected size, calls it
    /// once). Only the indexes are sized up front; entries are still allocated as they
    /// arrive. Purely a capacity hint: behaviour is unchanged.
    pub fn reserve(&mut self, alerts: usize, groups: usize) {
        self.alerts.reserve(alerts);
        self.groups.reserve(groups);
        self.group_by_key.reserve(groups);
    }

    /// Forgets all state (alerts, groups, incidents, silences, services, changes,
    /// counters), keeping the configuration: the core is as after [`EngineCore::new`].
    /// For a shell whose durable commit failed after the core decided: the store holds
    /// the last committed state, so reset and load it again (the `load_*` methods, as at
    /// start) to drop the decisions that were not committed.
    pub fn reset(&mut self) {
        *self = EngineCore::new(self.cfg.clone());
    }

    /// The compiled configuration.
    pub fn config(&self) -> &CompiledConfig {
        &self.cfg
    }

    fn next_id(&mut self, prefix: &str, now: Timestamp) -> String {
        self.seq += 1;
        format!("{prefix}-{}-{}", time_key(now), self.seq)
    }

    // ----- ingest -------------------------------------------------------------------

    /// Handles one normalized event.
    pub fn ingest(&mut self, ev: Event, now: Timestamp, out: &mut Vec<Effect>) {
        match ev {
            Event::Alert(a) => {
                self.ingest_alert(a, now, out);
            }
            Event::Change(c) => self.ingest_change(c, now, out),
            Event::Action(a) => self.ingest_action(a, now, out),
        }
    }

    /// Handles a batch of events in order, with exactly the decisions and effects of
    /// calling [`EngineCore::ingest`] on each in turn (what a shell does with the events
    /// of one request).
    ///
    /// Faster for re-sends: the events are taken [`INGEST_WINDOW`] at a time; the
    /// fingerprint and content hash of every alert in the window are computed first (the
    /// alert's [`ResendKey`], computed once and carried), then the window's re-send checks
    /// run back to back, so their index probes (cache misses on a large index) overlap
    /// instead of queueing behind each other's hashing and freeing. An event that is not a
    /// plain re-send is settled the normal way at its place in the order; the re-sends
    /// are freed together at the end of the window.
    pub fn ingest_all(
        &mut self,
        events: impl IntoIterator<Item = Event>,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let mut events = events.into_iter();
        let mut window: Vec<Option<Event>> = Vec::with_capacity(INGEST_WINDOW);
        let mut keys: Vec<Option<ResendKey>> = Vec::with_capacity(INGEST_WINDOW);
        loop {
            window.extend(events.by_ref().take(INGEST_WINDOW).map(Some));
            if window.is_empty() {
                return;
            }
            keys.extend(window.iter().map(|ev| match ev {
                Some(Event::Alert(a)) => Some(ResendKey::of_alert(a)),
                _ => None,
            }));
            for (slot, key) in window.iter_mut().zip(&keys) {
                if let Some(k) = key
                    && self.ingest_known_resend(k, now, out)
                {
                    // Settled; freed with the window.
                    continue;
                }
                match slot.take() {
                    Some(Event::Alert(a)) => {
                        let fp = key.map_or_else(|| a.fingerprint(), |k| k.fingerprint);
                        self.settle(fp, a, now, out);
                    }
                    Some(ev) => self.ingest(ev, now, out),
                    None => {}
                }
            }
            window.clear();
            keys.clear();
        }
    }

    /// The alert hot path: fingerprint → dedup → route → group. Returns the alert's
    /// fingerprint (so a caller need not hash the labels again).
    pub fn ingest_alert(
        &mut self,
        alert: Alert,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Fingerprint {
        let fp = alert.fingerprint();
        self.settle(fp, alert, now, out);
        fp
    }

    fn settle(&mut self, fp: Fingerprint, alert: Alert, now: Timestamp, out: &mut Vec<Effect>) {
        let known = match self.peek_duplicate(fp, &alert, now, out) {
            Some(Known::Duplicate) => return,
            Some(k) => k,
            None => self.dedup(fp, &alert, now, out),
        };
        match known {
            Known::Duplicate => {}
            Known::Changed => {
                self.touch_hot(fp, &alert, now);
                self.set_full(fp, alert);
                out.push(Effect::Persist(Record::Alert(fp)));
            }
            Known::Resolves => {
                self.touch_hot(fp, &alert, now);
                self.resolve_alert(fp, alert, now, out)
            }
            Known::Refires => {
                self.touch_hot(fp, &alert, now);
                self.refire_alert(fp, alert, now, out)
            }
            Known::New => {
                out.push(Effect::Event(EngineEvent::AlertReceived {
                    fingerprint: fp,
                }));
                // A resolve for an alert never seen firing (or already retired): nothing to do.
                if alert.status == AlertStatus::Firing {
                    self.new_alert(fp, alert, now, out);
                }
            }
        }
    }

    /// Like [`EngineCore::ingest_alert`] for a borrowed alert: the re-send path
    /// (identical firing alert already known) neither clones nor frees anything.
    pub fn ingest_alert_ref(&mut self, alert: &Alert, now: Timestamp, out: &mut Vec<Effect>) {
        let fp = alert.fingerprint();
        if let Some(Known::Duplicate) = self.peek_duplicate(fp, alert, now, out) {
            return;
        }
        self.settle(fp, alert.clone(), now, out);
    }

    /// Settles `alert` here only if it is an identical re-send of a known firing alert
    /// (last seen := `now`, one [`EngineEvent::AlertDeduplicated`] effect) and returns
    /// `true`; otherwise changes nothing, pushes nothing and returns `false` (the
    /// caller ingests it as usual). Same decision as [`EngineCore::ingest`] makes for
    /// a re-send.
    pub fn settle_if_resend(
        &mut self,
        alert: &Alert,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> bool {
        let fp = alert.fingerprint();
        match self.alerts.hot_mut(&fp) {
            Some(h) if h.tag == Hot::tag_of(alert) => {
                h.last_seen_ns = Hot::ns(now);
                out.push(Effect::Event(EngineEvent::AlertDeduplicated {
                    fingerprint: fp,
                }));
                true
            }
            _ => false,
        }
    }

    /// The duplicate check alone, without consuming the alert: one lookup in the compact
    /// `hot` map (status + content hash + last seen), no access to the stored alert.
    /// `Some(Duplicate)` or `Some(New)` settle it; `None`: known but not a plain
    /// duplicate, [`EngineCore::dedup`] decides. `hot` and `alerts` hold the same
    /// fingerprints (inserted and removed together), so a miss in `hot` is a new alert.
    #[inline]
    fn peek_duplicate(
        &mut self,
        fp: Fingerprint,
        alert: &Alert,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Option<Known> {
        let Some(h) = self.alerts.hot_mut(&fp) else {
            return Some(Known::New);
        };
        if h.tag == Hot::tag_of(alert) {
            h.last_seen_ns = Hot::ns(now);
            out.push(Effect::Event(EngineEvent::AlertDeduplicated {
                fingerprint: fp,
            }));
            return Some(Known::Duplicate);
        }
        None
    }

    /// The re-send check alone, for an event the caller has not turned into an owned
    /// [`Alert`] yet (e.g. a provider that fingerprints borrowed labels): if the core
    /// knows `key.fingerprint` with the same status and content, the event is settled
    /// exactly as [`EngineCore::ingest`] settles an identical re-send (last seen := `now`,
    /// one [`EngineEvent::AlertDeduplicated`] effect) and `true` is returned. Otherwise
    /// nothing changes, no effect is pushed, and the caller ingests the event normally.
    ///
    /// Contract for callers (the server's `POST /api/v2/alerts` path):
    /// * Build `key` from the values the provider *would put in the [`Alert`]*, after all
    ///   of its normalization (status derived from `endsAt`, severity mapping, summary
    ///   fallbacks, trimmed or defaulted fields): fingerprint
    ///   [`Fingerprint::of_dedup_key`]`(integration, key)` when the alert has a dedup key,
    ///   else [`Fingerprint::of_label_pairs`] over the label pairs in byte-wise name order
    ///   (the order of [`Labels`]; with duplicate names, only the value the provider
    ///   keeps); content with [`ResendKeyBuilder`] (annotations in name order, links in
    ///   order). Any deviation can only produce a miss (`false`), never a false
    ///   duplicate (except a 2^-63 hash collision).
    /// * On `true` the event is fully handled: do not ingest it, and write nothing for it
    ///   (as for a duplicate through `ingest`, the stored alert record is left as is; its
    ///   `last_seen` is kept in memory and written with the next record of that alert).
    ///   Apply the pushed effect like any other (it is a metrics event only).
    /// * On `false` build the `Alert` and [`EngineCore::ingest`] it as usual.
    /// * Call it under the same lock as `ingest`, with the same `now`, in the events'
    ///   order: a check and an `ingest` of the same fingerprint in one batch must keep
    ///   their order.
    /// * Works whether or not the known alert was compacted ([`EngineCore::compact_alerts`]):
    ///   the check reads only the index entry (status, content hash, last seen).
    pub fn ingest_known_resend(
        &mut self,
        key: &ResendKey,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> bool {
        match self.alerts.hot_mut(&key.fingerprint) {
            Some(h) if h.tag == key.tag => {
                h.last_seen_ns = Hot::ns(now);
                out.push(Effect::Event(EngineEvent::AlertDeduplicated {
                    fingerprint: key.fingerprint,
                }));
                true
            }
            _ => false,
        }
    }

    fn touch_hot(&mut self, fp: Fingerprint, alert: &Alert, now: Timestamp) {
        if let Some(h) = self.alerts.hot_mut(&fp) {
            *h = Hot::of(alert, now);
        }
    }

    fn dedup(
        &mut self,
        fp: Fingerprint,
        alert: &Alert,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Known {
        let Some(e) = self.alerts.get_mut(&fp) else {
            return Known::New;
        };
        let stored = view(&e.alert);
        match (stored.status(), alert.status) {
            (a, b) if a == b => {
                // Re-send (Prometheus re-sends every evaluation): nothing to notify.
                e.last_seen = now;
                if stored.content_differs(alert) {
                    Known::Changed
                } else {
                    out.push(Effect::Event(EngineEvent::AlertDeduplicated {
                        fingerprint: fp,
                    }));
                    Known::Duplicate
                }
            }
            (AlertStatus::Firing, _) => Known::Resolves,
            _ => Known::Refires,
        }
    }

    fn new_alert(&mut self, fp: Fingerprint, alert: Alert, now: Timestamp, out: &mut Vec<Effect>) {
        if !self.inhibitor.is_empty() {
            self.inhibitor.observe(fp, &alert.labels, true);
        }
        let mut routes = std::mem::take(&mut self.route_buf);
        self.cfg.routes.match_into(&alert.labels, &mut routes);
        let mut groups = GroupSet::default();
        for &ri in &routes {
            let Some(Joined {
                hash: h,
                joins_flushed,
                incident: inc,
            }) = self.group_for(ri, fp, &alert, now, out)
            else {
                groups.push(0);
                continue;
            };
            groups.push(h);
            if joins_flushed {
                self.pull_in(h, None, now, out);
            }
            if let Some(inc) = inc {
                self.timeline_if_active(
                    &inc,
                    Actor::integration(&*alert.source.integration),
                    now,
                    EntryKind::Ingested {
                        fingerprint: fp,
                        status: AlertStatus::Firing,
                        summary: alert.summary.clone(),
                    },
                    out,
                );
            }
        }
        self.route_buf = routes;
        let hot = Hot::of(&alert, now);
        self.alerts.insert(
            fp,
            AlertEntry {
                alert: StoredAlert::Full(Box::new(alert)),
                raw_elided: false,
                fingerprint: fp,
                first_seen: now,
                last_seen: now,
                resolved_at: None,
                groups,
            },
            hot,
        );
        self.note_full(fp);
        out.push(Effect::Persist(Record::Alert(fp)));
    }

    /// Makes `alert` the latest version of the known alert `fp`, held in full.
    fn set_full(&mut self, fp: Fingerprint, alert: Alert) {
        if let Some(e) = self.alerts.get_mut(&fp) {
            e.alert = StoredAlert::Full(Box::new(alert));
            e.raw_elided = false;
            self.note_full(fp);
        }
    }

    /// Records that `fp`'s latest version is held in full, for
    /// [`EngineCore::compact_alerts`]. Bounded even if that is never called: once the
    /// list outgrows twice the alerts known, stale and repeated entries are dropped.
    fn note_full(&mut self, fp: Fingerprint) {
        if self.uncompacted.len() >= 2 * self.alerts.len() + 4096 {
            let alerts = &self.alerts;
            self.uncompacted.retain(|f| {
                alerts
                    .get(f)
                    .is_some_and(|e| matches!(e.alert, StoredAlert::Full(_)))
            });
            self.uncompacted.sort_unstable();
            self.uncompacted.dedup();
        }
        self.uncompacted.push(fp);
    }

    /// Releases the raw payloads of the alert versions received since the last call and
    /// packs those alerts ([`CompactAlert`]: every string in one allocation; ≈1.8 KB →
    /// ≈0.3 KB of heap for an Alertmanager alert). Returns how many were packed.
    ///
    /// Contract: call only once the effects of every earlier call on this core were
    /// encoded ([`EngineCore::encode`]): the [`Record::Alert`] writes they hold are the
    /// only durable copy of those raw payloads (the shell encodes a decision's effects
    /// under the same lock right after deciding, so calling this right after staging
    /// is safe). Records encoded later for these alerts carry no raw payload and are
    /// marked [`AlertRecord::payload_elided`]. Decisions are unaffected; notifications
    /// built later carry the alerts without their raw payloads.
    pub fn compact_alerts(&mut self) -> usize {
        let mut n = 0;
        let mut todo = std::mem::take(&mut self.uncompacted);
        for fp in todo.drain(..) {
            let Some(e) = self.alerts.get_mut(&fp) else {
                continue;
            };
            if let StoredAlert::Full(a) = &e.alert {
                let had_raw = !a.raw.is_null();
                e.alert = StoredAlert::Compact(CompactAlert::from_alert(a));
                e.raw_elided |= had_raw;
                n += 1;
            }
        }
        // Keep a modest buffer for the next batch, not the largest one ever seen.
        todo.shrink_to(4096);
        self.uncompacted = todo;
        n
    }

    /// Finds or creates the group for a new firing alert `fp` under route `ri` and adds
    /// the alert to it (one index probe for both). `None` when `ri` is not a route.
    fn group_for(
        &mut self,
        ri: usize,
        fp: Fingerprint,
        alert: &Alert,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Option<Joined> {
        let route = self.cfg.routes.get(ri)?;
        let probe = GroupProbe::new(route, &alert.labels);
        let mut h = probe.hash();
        loop {
            match self.groups.get_mut(&h) {
                Some(g) if probe.matches(g) => {
                    g.firing += 1;
                    g.alerts.push(fp);
                    return Some(Joined {
                        hash: h,
                        joins_flushed: g.last_flush.is_some(),
                        incident: g.incident.clone(),
                    });
                }
                Some(_) => h = h.wrapping_add(1), // hash collision: probe on
                None => break,
            }
        }
        let labels = group_labels(route, &alert.labels);
        let key = group_key(&route.id, &labels);
        let due = add(now, route.group_wait);
        let incident = self.incident_by_key.get(&key).cloned();
        out.push(Effect::Schedule(Box::new(flush_job(&key, due))));
        out.push(Effect::Persist(Record::Group(h)));
        self.group_by_key.insert(key.clone(), h);
        // Room for a few members, as a first `push` onto `Vec::new()` would make.
        let mut alerts = Vec::with_capacity(4);
        alerts.push(fp);
        let joined = Joined {
            hash: h,
            joins_flushed: false,
            incident: incident.clone(),
        };
        self.groups.insert(
            h,
            AggregationGroup {
                key,
                route: route.id.clone(),
                route_index: ri,
                alerts,
                firing: 1,
                created_at: now,
                last_flush: None,
                next_flush: Some(due),
                nflog: None,
                incident,
                probe: ProbeKey::of_labels(&labels),
                labels,
            },
            (),
        );
        Some(joined)
    }

    fn resolve_alert(
        &mut self,
        fp: Fingerprint,
        alert: Alert,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        if !self.alerts.contains_key(&fp) {
            return;
        }
        if !self.inhibitor.is_empty() {
            self.inhibitor.observe(fp, &alert.labels, false);
        }
        let Some(e) = self.alerts.get_mut(&fp) else {
            return;
        };
        let summary = alert.summary.clone();
        let integration = alert.source.integration.clone();
        let mut alert = alert;
        alert.status = AlertStatus::Resolved;
        e.resolved_at = Some(now);
        e.last_seen = now;
        let groups = e.groups.clone();
        self.set_full(fp, alert);
        out.push(Effect::Persist(Record::Alert(fp)));
        for h in groups.iter() {
            let Some(g) = self.groups.get_mut(&h) else {
                continue;
            };
            g.firing = g.firing.saturating_sub(1);
            let left = g.firing;
            let inc = g.incident.clone();
            // The last firing alert of a notified group resolved: deliver the resolve
            // after resolve_wait instead of at the next tick (alertmanager#1510).
            let sooner = (left == 0 && g.nflog.as_ref().is_some_and(|n| !n.firing.is_empty()))
                .then(|| {
                    let wait = self
                        .cfg
                        .routes
                        .get(g.route_index)
                        .map(|r| r.resolve_wait)
                        .unwrap_or_default();
                    add(now, wait)
                });
            self.pull_in(h, sooner, now, out);
            if let Some(inc) = inc {
                self.timeline_if_active(
                    &inc,
                    Actor::integration(&*integration),
                    now,
                    EntryKind::Ingested {
                        fingerprint: fp,
                        status: AlertStatus::Resolved,
                        summary: summary.clone(),
                    },
                    out,
                );
            }
        }
    }

    fn refire_alert(
        &mut self,
        fp: Fingerprint,
        alert: Alert,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        if !self.alerts.contains_key(&fp) {
            return;
        }
        if !self.inhibitor.is_empty() {
            self.inhibitor.observe(fp, &alert.labels, true);
        }
        let Some(e) = self.alerts.get_mut(&fp) else {
            return;
        };
        let summary = alert.summary.clone();
        let integration = alert.source.integration.clone();
        e.resolved_at = None;
        e.last_seen = now;
        let groups = e.groups.clone();
        self.set_full(fp, alert);
        out.push(Effect::Persist(Record::Alert(fp)));
        for h in groups.iter() {
            if let Some(g) = self.groups.get_mut(&h) {
                g.firing += 1;
            }
            self.pull_in(h, None, now, out);
            if let Some(inc) = self.groups.get(&h).and_then(|g| g.incident.clone()) {
                self.timeline_if_active(
                    &inc,
                    Actor::integration(&*integration),
                    now,
                    EntryKind::Ingested {
                        fingerprint: fp,
                        status: AlertStatus::Firing,
                        summary: summary.clone(),
                    },
                    out,
                );
            }
        }
    }

    fn ingest_change(&mut self, c: ChangeEvent, now: Timestamp, out: &mut Vec<Effect>) {
        let id = self.next_id("chg", now);
        let key = format!("{}/{id}", time_key(c.timestamp));
        if let Ok(v) = serde_json::to_vec(&c) {
            out.push(Effect::Write(WriteOp::Put {
                table: Table::Changes,
                key,
                value: v,
            }));
        }
        self.remember_change(c);
    }

    /// Adds a change event to the in-memory window (also used by recovery).
    pub fn remember_change(&mut self, c: ChangeEvent) {
        let pos = self.changes.partition_point(|x| x.timestamp <= c.timestamp);
        self.changes.insert(pos, c);
        while self.changes.len() > MAX_CHANGES_IN_MEMORY {
            self.changes.pop_front();
        }
    }

    fn ingest_action(&mut self, a: ActionEvent, now: Timestamp, out: &mut Vec<Effect>) {
        let fp = a.fingerprint();
        let Some(e) = self.alerts.get(&fp) else {
            return;
        };
        match a.action {
            ActionKind::Resolve => {
                let mut alert = view(&e.alert).to_alert();
                let elided = e.raw_elided || matches!(e.alert, StoredAlert::Compact(_));
                alert.status = AlertStatus::Resolved;
                self.settle(fp, alert, now, out);
                // The resolved version repeats the stored one: its raw payload (if it had
                // one) is still only in the stored record.
                if elided && let Some(e) = self.alerts.get_mut(&fp) {
                    e.raw_elided = true;
                }
            }
            ActionKind::Acknowledge => {
                let incidents: Vec<String> = e
                    .groups
                    .iter()
                    .filter_map(|h| self.groups.get(&h)?.incident.clone())
                    .collect();
                for id in incidents {
                    // A tool acknowledging twice is not an error worth surfacing.
                    let _ = self.act(
                        &id,
                        IncidentAction::Acknowledge,
                        Actor::integration(&*a.source.integration),
                        now,
                        out,
                    );
                }
            }
        }
    }

    // ----- flush --------------------------------------------------------------------

    /// Whether a firing alert is muted now by a silence or an inhibit rule (what a
    /// flush checks for every firing member).
    #[inline]
    pub fn mute_of(&self, fp: Fingerprint, labels: &Labels, now: Timestamp) -> Option<Mute> {
        if !self.silences.is_empty() && self.silences.muted_by(labels, now).is_some() {
            return Some(Mute::Silenced);
        }
        if !self.inhibitor.is_empty() && self.inhibitor.is_inhibited(fp, labels) {
            return Some(Mute::Inhibited);
        }
        None
    }

    /// [`EngineCore::mute_of`] for a stored alert (a compact one builds a label map only
    /// if an inhibit rule must be checked).
    fn stored_mute(&self, fp: Fingerprint, a: AlertRef<'_>, now: Timestamp) -> Option<Mute> {
        if let AlertRef::Full(a) = a {
            return self.mute_of(fp, &a.labels, now);
        }
        if !self.silences.is_empty() && self.silences.muted_by(&a, now).is_some() {
            return Some(Mute::Silenced);
        }
        if !self.inhibitor.is_empty() && self.inhibitor.is_inhibited(fp, &a) {
            return Some(Mute::Inhibited);
        }
        None
    }

    /// [`EngineCore::mute_of`] for a known alert by fingerprint.
    pub fn is_muted(&self, fp: Fingerprint, now: Timestamp) -> bool {
        self.alerts
            .get(&fp)
            .is_some_and(|e| self.stored_mute(fp, view(&e.alert), now).is_some())
    }

    /// Runs a `GroupFlush` job. Stale jobs (the group is gone or was re-armed to another
    /// time) do nothing, so running a job twice notifies once.
    pub fn flush_job(
        &mut self,
        group_key: &str,
        due: Timestamp,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let Some(&h) = self.group_by_key.get(group_key) else {
            return;
        };
        if self
            .groups
            .get(&h)
            .is_none_or(|g| g.next_flush != Some(due))
        {
            return;
        }
        self.flush(h, now, out);
    }

    /// Flushes a group now.
    pub fn flush(&mut self, h: u64, now: Timestamp, out: &mut Vec<Effect>) {
        let Some(g) = self.groups.get(&h) else { return };
        let Some(route) = self.cfg.routes.get(g.route_index) else {
            return;
        };
        let time_muted = (!route.active_time_intervals.is_empty()
            && !route
                .active_time_intervals
                .iter()
                .any(|&i| self.cfg.intervals.get(i).is_some_and(|t| t.contains(now))))
            || route
                .mute_time_intervals
                .iter()
                .any(|&i| self.cfg.intervals.get(i).is_some_and(|t| t.contains(now)));
        let mut firing = Vec::new();
        let mut resolved = Vec::new();
        let mut any_firing = false;
        // A firing alert held back by a silence, an inhibit rule or a mute window: those
        // can lift without any event reaching this group, so the group keeps ticking.
        let mut any_muted = false;
        for fp in &g.alerts {
            let Some(e) = self.alerts.get(fp) else {
                continue;
            };
            let a = view(&e.alert);
            if a.status() == AlertStatus::Resolved {
                resolved.push(*fp);
                continue;
            }
            any_firing = true;
            if time_muted {
                any_muted = true;
                continue;
            }
            if self.silences.muted_by(&a, now).is_some() {
                any_muted = true;
                out.push(Effect::Event(EngineEvent::AlertSilenced {
                    fingerprint: *fp,
                }));
                continue;
            }
            if !self.inhibitor.is_empty() && self.inhibitor.is_inhibited(*fp, &a) {
                any_muted = true;
                out.push(Effect::Event(EngineEvent::AlertInhibited {
                    fingerprint: *fp,
                }));
                continue;
            }
            firing.push(*fp);
        }
        firing.sort_unstable();
        resolved.sort_unstable();
        let mut reason = if firing.is_empty() && resolved.is_empty() {
            None
        } else {
            needs_update(
                g.nflog.as_ref(),
                &firing,
                &resolved,
                route.repeat_interval,
                now,
            )
        };
        if reason == Some(UpdateReason::AllResolved) && any_firing {
            // Everything still firing is muted: only newly resolved alerts are news.
            let prev = g
                .nflog
                .as_ref()
                .map(|n| n.resolved.as_slice())
                .unwrap_or(&[]);
            reason = (!resolved.iter().all(|r| prev.binary_search(r).is_ok()))
                .then_some(UpdateReason::NewResolved);
        }
        // An incident no longer in memory was closed and evicted: not open either.
        if reason == Some(UpdateReason::Repeat)
            && g.incident.as_ref().is_some_and(|i| {
                self.incidents
                    .get(i)
                    .is_none_or(|i| i.state != IncidentState::Open)
            })
        {
            reason = None;
        }
        let notified = reason.is_some();
        if let Some(reason) = reason {
            self.notify_group(h, reason, &firing, &resolved, now, out);
        }
        self.retire_resolved(h, &resolved, now, out);
        let Some(g) = self.groups.get_mut(&h) else {
            return;
        };
        g.last_flush = Some(now);
        if g.alerts.is_empty() && !notified {
            let key = g.key.clone();
            self.groups.remove(&h);
            self.group_by_key.remove(&key);
            out.push(Effect::Write(WriteOp::Delete {
                table: Table::Groups,
                key,
            }));
            return;
        }
        let (interval, repeat) = self
            .cfg
            .routes
            .get(g.route_index)
            .map(|r| (r.group_interval, r.repeat_interval))
            .unwrap_or((Duration::from_secs(300), Duration::from_secs(4 * 3600)));
        let due = if g.alerts.is_empty() || any_muted {
            // Retire the emptied group next tick / re-check the mutes every tick.
            add(now, interval)
        } else {
            // Settled: the receiver knows every member and nothing is muted, so only a
            // repeat can be due until an alert joins, re-fires or resolves (those pull
            // the flush in, see `pull_in`). A repeat suppressed now (incident no longer
            // open) is next looked at one repeat_interval later.
            let repeat_at = g
                .nflog
                .as_ref()
                .map(|n| add(n.at, repeat))
                .filter(|&t| t > now)
                .unwrap_or_else(|| add(now, repeat));
            next_tick(now, interval, repeat_at)
        };
        g.next_flush = Some(due);
        out.push(Effect::Schedule(Box::new(flush_job(&g.key, due))));
        // An idle flush changed nothing worth keeping: the stored record (with its older
        // `next_flush`, re-armed at recovery and then re-decided) stays valid.
        if notified {
            out.push(Effect::Persist(Record::Group(h)));
        }
    }

    /// An alert joined, re-fired or resolved in group `h`: make sure a flush is armed at
    /// the group's next `group_interval` tick (Alertmanager's timing), pulling in a
    /// flush parked at the repeat deadline. No-op while the first flush (`group_wait`)
    /// is pending. `sooner` is an earlier due time wanted anyway (resolve_wait).
    fn pull_in(
        &mut self,
        h: u64,
        sooner: Option<Timestamp>,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let Some(g) = self.groups.get_mut(&h) else {
            return;
        };
        let tick = match (g.last_flush, self.cfg.routes.get(g.route_index)) {
            (Some(lf), Some(r)) => Some(next_tick(lf, r.group_interval, now)),
            _ => None,
        };
        let Some(due) = [tick, sooner].into_iter().flatten().min() else {
            return;
        };
        if g.next_flush.is_some_and(|nf| nf <= due) {
            return;
        }
        if let Some(old) = g.next_flush {
            out.push(Effect::Cancel(AggregationGroup::job_id(&g.key, old)));
        }
        g.next_flush = Some(due);
        out.push(Effect::Schedule(Box::new(flush_job(&g.key, due))));
        out.push(Effect::Persist(Record::Group(h)));
    }

    /// Removes resolved alerts from a group after a flush; alerts in no group leave memory.
    fn retire_resolved(
        &mut self,
        h: u64,
        resolved: &[Fingerprint],
        _now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        if resolved.is_empty() {
            return;
        }
        let key = match self.groups.get_mut(&h) {
            Some(g) => {
                g.alerts.retain(|fp| resolved.binary_search(fp).is_err());
                g.key.clone()
            }
            None => return,
        };
        for fp in resolved {
            let Some(e) = self.alerts.get_mut(fp) else {
                continue;
            };
            e.groups.retain(|x| x != h);
            if e.groups.is_empty() {
                let seen = self.alerts.hot(fp).and_then(Hot::last_seen);
                if let Some(e) = self.alerts.remove(fp) {
                    let rec = AlertRecord {
                        fingerprint: *fp,
                        payload_elided: e.raw_elided,
                        alert: match e.alert {
                            StoredAlert::Full(a) => *a,
                            StoredAlert::Compact(c) => c.to_alert(),
                        },
                        first_seen: e.first_seen,
                        last_seen: seen.map_or(e.last_seen, |s| s.max(e.last_seen)),
                        resolved_at: e.resolved_at,
                        groups: Vec::new(),
                    };
                    if let Ok(v) = serde_json::to_vec(&rec) {
                        out.push(Effect::Write(WriteOp::Put {
                            table: Table::Alerts,
                            key: fp_key(*fp),
                            value: v,
                        }));
                    }
                }
            } else {
                out.push(Effect::Persist(Record::Alert(*fp)));
            }
        }
        let _ = key;
    }

    fn notify_group(
        &mut self,
        h: u64,
        reason: UpdateReason,
        firing: &[Fingerprint],
        resolved: &[Fingerprint],
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let opens = matches!(reason, UpdateReason::First | UpdateReason::NewFiring);
        let incident_id = if opens {
            Some(self.open_or_reopen(h, firing, now, out))
        } else {
            self.groups.get(&h).and_then(|g| g.incident.clone())
        };
        let Some(g) = self.groups.get_mut(&h) else {
            return;
        };
        g.nflog = Some(NflogEntry {
            firing: firing.to_vec(),
            resolved: resolved.to_vec(),
            at: now,
        });
        let Some(g) = self.groups.get(&h) else { return };
        let Some(route) = self.cfg.routes.get(g.route_index) else {
            return;
        };
        let members = || {
            firing
                .iter()
                .chain(resolved)
                .filter_map(|fp| self.alerts.get(fp))
        };
        // Compacted alerts (the server's case) go out packed: the notification's
        // full alerts are built only if a channel asks for them (see
        // `NotificationAlerts`); the webhook body and the notification log's row are
        // written from the packed form.
        let all_packed = members().all(|e| matches!(e.alert, StoredAlert::Compact(_)));
        let (mut alerts, (mut common_labels, mut common_annotations)) = if all_packed {
            let mut packed: Vec<CompactAlert> = Vec::with_capacity(firing.len() + resolved.len());
            packed.extend(members().filter_map(|e| match &e.alert {
                StoredAlert::Compact(c) => Some(c.clone()),
                StoredAlert::Full(_) => None,
            }));
            let shared = common_packed(&packed);
            (NotificationAlerts::from_packed(packed), shared)
        } else {
            let full: Vec<Alert> = members().map(|e| view(&e.alert).to_alert()).collect();
            let shared = common(&full);
            (NotificationAlerts::from(full), shared)
        };
        let status = if firing.is_empty() {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        };
        let incident = incident_id.as_ref().and_then(|i| self.incidents.get(i));
        let service = route.service.as_ref().and_then(|s| self.services.get(s));
        let mut runbooks = route.runbooks.clone();
        if let Some(s) = service {
            for r in &s.runbooks {
                if !runbooks.contains(r) {
                    runbooks.push(r.clone());
                }
            }
        }
        let mut recent_changes = service
            .map(|s| self.recent_changes_for(s, now))
            .unwrap_or_default();
        let mut incident_ref = incident.map(|i| {
            i.to_ref(
                service.map(|s| s.name.clone()),
                self.cfg.external_url.as_deref(),
            )
        });
        let mut entries = Vec::with_capacity(route.notify.len());
        let last = route.notify.len().saturating_sub(1);
        for (ti, t) in route.notify.iter().enumerate() {
            let id = format!("incident/{}/{ti}-{h:016x}-{}", t.channel, time_key(now));
            entries.push((id.clone(), t.channel.clone(), t.target.clone()));
            // The last target's notification takes the alerts, maps and lists instead
            // of a copy.
            let (alerts, common_labels, common_annotations, incident, runbooks, recent_changes) =
                if ti == last {
                    (
                        std::mem::take(&mut alerts),
                        std::mem::take(&mut common_labels),
                        std::mem::take(&mut common_annotations),
                        incident_ref.take(),
                        std::mem::take(&mut runbooks),
                        std::mem::take(&mut recent_changes),
                    )
                } else {
                    (
                        alerts.clone(),
                        common_labels.clone(),
                        common_annotations.clone(),
                        incident_ref.clone(),
                        runbooks.clone(),
                        recent_changes.clone(),
                    )
                };
            out.push(Effect::Notify(Box::new(Notification {
                id,
                kind: NotificationKind::Incident,
                group_key: g.key.clone(),
                status,
                incident,
                alerts,
                group_labels: g.labels.clone(),
                common_labels,
                common_annotations,
                runbooks,
                recent_changes,
                receiver: route.receiver.clone(),
                target: Target {
                    address: t.target.clone(),
                    user: None,
                },
                external_url: self.cfg.external_url.clone(),
                created_at: now,
            })));
        }
        out.push(Effect::Persist(Record::Group(h)));
        if let Some(inc) = incident_id {
            for (id, channel, target) in entries {
                self.timeline(
                    &inc,
                    Actor::System,
                    now,
                    EntryKind::Notified {
                        notification_id: id,
                        channel,
                        target,
                        status,
                        firing: firing.len(),
                        resolved: resolved.len(),
                    },
                    out,
                );
            }
            if reason == UpdateReason::AllResolved {
                let active = self
                    .incidents
                    .get(&inc)
                    .is_some_and(|i| i.state.is_active());
                if active {
                    let _ = self.transition(&inc, IncidentState::Resolved, Actor::System, now, out);
                }
            }
        }
    }

    /// Ensures the group has an open incident: creates one, re-opens a resolved one, or
    /// replaces a closed one. Returns its id.
    fn open_or_reopen(
        &mut self,
        h: u64,
        firing: &[Fingerprint],
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> String {
        let existing = self.groups.get(&h).and_then(|g| g.incident.clone());
        if let Some(id) = existing {
            let state = self.incidents.get(&id).map(|i| i.state);
            match state {
                Some(s) if s.is_active() => {
                    self.absorb(&id, firing, now, out);
                    return id;
                }
                Some(IncidentState::Resolved) => {
                    self.absorb(&id, firing, now, out);
                    let _ = self.transition(&id, IncidentState::Open, Actor::System, now, out);
                    return id;
                }
                _ => {}
            }
        }
        self.create_incident(h, firing, now, out)
    }

    /// Adds newly notified alerts to an incident and raises its severity.
    fn absorb(&mut self, id: &str, firing: &[Fingerprint], now: Timestamp, out: &mut Vec<Effect>) {
        let sev = firing
            .iter()
            .filter_map(|f| self.alerts.get(f))
            .map(|e| view(&e.alert).severity())
            .min();
        if let Some(inc) = self.incidents.get_mut(id) {
            for f in firing {
                if !inc.alerts.contains(f) {
                    inc.alerts.push(*f);
                }
            }
            if let Some(s) = sev {
                inc.severity = inc.severity.min(s);
            }
            inc.updated_at = now;
            out.push(Effect::Persist(Record::Incident(id.to_string())));
        }
    }

    fn create_incident(
        &mut self,
        h: u64,
        firing: &[Fingerprint],
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> String {
        let number = self.next_incident;
        self.next_incident += 1;
        let id = Incident::id_for(number);
        let Some(g) = self.groups.get_mut(&h) else {
            return id;
        };
        g.incident = Some(id.clone());
        // Borrowed, not cloned: only the timeline calls at the end need `&mut self`,
        // and what they take from the group and route is extracted before them.
        let Some(g) = self.groups.get(&h) else {
            return id;
        };
        self.incident_by_key.insert(g.key.clone(), id.clone());
        let route = self.cfg.routes.get(g.route_index);
        let first: Vec<&AlertEntry> = firing.iter().filter_map(|f| self.alerts.get(f)).collect();
        let severity = first
            .iter()
            .map(|e| view(&e.alert).severity())
            .min()
            .unwrap_or(crate::model::Severity::Error);
        let title = first
            .iter()
            .min_by_key(|e| (e.first_seen, e.fingerprint))
            .map(|e| view(&e.alert).summary().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format_labels(&g.labels));
        let service = route.as_ref().and_then(|r| r.service.clone());
        let mut runbooks: Vec<Link> = route
            .as_ref()
            .map(|r| r.runbooks.clone())
            .unwrap_or_default();
        if let Some(s) = service.as_ref().and_then(|s| self.services.get(s)) {
            for r in &s.runbooks {
                if !runbooks.contains(r) {
                    runbooks.push(r.clone());
                }
            }
        }
        let members: Vec<(Fingerprint, Timestamp, AlertStatus, String, String)> = g
            .alerts
            .iter()
            .filter_map(|f| self.alerts.get(f))
            .map(|e| {
                (
                    e.fingerprint,
                    e.first_seen,
                    view(&e.alert).status(),
                    view(&e.alert).summary().to_string(),
                    view(&e.alert).integration().to_string(),
                )
            })
            .collect();
        let incident = Incident {
            id: id.clone(),
            number,
            title,
            state: IncidentState::Open,
            severity,
            urgency: route
                .as_ref()
                .and_then(|r| r.urgency)
                .unwrap_or_else(|| Urgency::from_severity(severity)),
            service: service.clone(),
            group_key: g.key.clone(),
            route: g.route.clone(),
            receiver: route
                .as_ref()
                .map(|r| r.receiver.clone())
                .unwrap_or_default(),
            group_labels: g.labels.clone(),
            escalation_policy: route.as_ref().and_then(|r| r.escalation_policy.clone()),
            assignees: Vec::new(),
            roles: BTreeMap::new(),
            notes: Vec::new(),
            runbooks,
            alerts: firing.to_vec(),
            created_at: now,
            updated_at: now,
            acknowledged_at: None,
            mitigated_at: None,
            resolved_at: None,
            closed_at: None,
            timeline_len: 0,
            paging_generation: 0,
            round_robin_cursor: 0,
        };
        let mut incident = incident;
        if let Some(p) = &incident.escalation_policy {
            let c = self.policy_opens.entry(p.clone()).or_insert(0);
            incident.round_robin_cursor = *c;
            *c += 1;
        }
        let policy = incident.escalation_policy.clone();
        let grouped = EntryKind::Grouped {
            group_key: g.key.clone(),
            alerts: g.alerts.len(),
        };
        let routed = route.map(|r| EntryKind::Routed {
            route: r.id.clone(),
            receiver: r.receiver.clone(),
            service,
            escalation_policy: policy.clone(),
        });
        self.incidents.insert(id.clone(), incident);
        out.push(Effect::Persist(Record::Incident(id.clone())));
        for (fp, at, status, summary, integration) in members {
            self.timeline(
                &id,
                Actor::integration(integration),
                at,
                EntryKind::Ingested {
                    fingerprint: fp,
                    status,
                    summary,
                },
                out,
            );
        }
        self.timeline(&id, Actor::System, now, grouped, out);
        if let Some(routed) = routed {
            self.timeline(&id, Actor::System, now, routed, out);
        }
        out.push(Effect::Event(EngineEvent::IncidentOpened {
            incident_id: id.clone(),
        }));
        if let Some(p) = policy {
            out.push(Effect::StartEscalation {
                incident_id: id.clone(),
                policy: p,
            });
        }
        id
    }

    // ----- incidents ----------------------------------------------------------------

    fn timeline_if_active(
        &mut self,
        id: &str,
        actor: Actor,
        at: Timestamp,
        kind: EntryKind,
        out: &mut Vec<Effect>,
    ) {
        if self.incidents.get(id).is_some_and(|i| i.state.is_active()) {
            self.timeline(id, actor, at, kind, out);
        }
    }

    /// Appends a timeline entry to an incident.
    fn timeline(
        &mut self,
        id: &str,
        actor: Actor,
        at: Timestamp,
        kind: EntryKind,
        out: &mut Vec<Effect>,
    ) {
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        let entry = TimelineEntry {
            seq: inc.timeline_len,
            at,
            actor,
            kind,
        };
        inc.timeline_len += 1;
        let timeline = Effect::Timeline {
            incident_id: id.to_string(),
            entry: Box::new(entry),
        };
        // The incident record is encoded from its state when the batch is staged, so
        // one `Persist` of it per run of entries is enough: when the previous effect
        // already persists this incident, the entry goes before it (an incident's
        // first decision appends a dozen entries in a row).
        match out.last() {
            Some(Effect::Persist(Record::Incident(last))) if last == id => {
                out.insert(out.len() - 1, timeline);
            }
            _ => {
                out.push(timeline);
                out.push(Effect::Persist(Record::Incident(id.to_string())));
            }
        }
    }

    fn audit(
        &mut self,
        actor: &Actor,
        action: &str,
        target: String,
        details: serde_json::Value,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        self.seq += 1;
        out.push(Effect::Audit(Box::new(AuditEntry {
            id: format!("{}-{}", time_key(now), self.seq),
            at: now,
            actor: actor.clone(),
            action: action.into(),
            target,
            details,
        })));
    }

    fn transition(
        &mut self,
        id: &str,
        to: IncidentState,
        actor: Actor,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<(), CoreError> {
        let inc = self
            .incidents
            .get_mut(id)
            .ok_or_else(|| CoreError::NotFound {
                kind: "incident",
                id: id.into(),
            })?;
        let from = inc.state;
        inc.state = from.transition(to)?;
        inc.updated_at = now;
        let kind = match to {
            IncidentState::Open => {
                inc.acknowledged_at = None;
                inc.mitigated_at = None;
                inc.resolved_at = None;
                inc.paging_generation += 1;
                EntryKind::Reopened
            }
            IncidentState::Acknowledged => {
                inc.acknowledged_at = Some(now);
                EntryKind::Acknowledged
            }
            IncidentState::Mitigated => {
                inc.mitigated_at = Some(now);
                EntryKind::Mitigated
            }
            IncidentState::Resolved => {
                inc.resolved_at = Some(now);
                EntryKind::Resolved
            }
            IncidentState::Closed => {
                inc.closed_at = Some(now);
                EntryKind::Closed
            }
        };
        let policy = inc.escalation_policy.clone();
        self.timeline(id, actor.clone(), now, kind, out);
        self.audit(
            &actor,
            &format!("incident.{}", verb(to)),
            format!("incident/{id}"),
            serde_json::json!({"from": from.as_str(), "to": to.as_str()}),
            now,
            out,
        );
        out.push(Effect::Event(EngineEvent::IncidentStateChanged {
            incident_id: id.into(),
            state: to.as_str(),
        }));
        match to {
            IncidentState::Open => {
                if let Some(p) = policy {
                    out.push(Effect::StartEscalation {
                        incident_id: id.into(),
                        policy: p,
                    });
                }
            }
            // Leaving `open` (ack, mitigate, resolve) stops paging; resolving from a
            // later state cancels whatever is left (e.g. ad-hoc pages).
            _ if from == IncidentState::Open || to == IncidentState::Resolved => {
                out.push(Effect::StopEscalation {
                    incident_id: id.into(),
                    actor,
                    reason: verb_past(to),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Applies an action by `actor` to an incident; returns the updated incident.
    pub fn act(
        &mut self,
        id: &str,
        action: IncidentAction,
        actor: Actor,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<Incident, CoreError> {
        if !self.incidents.contains_key(id) {
            return Err(CoreError::NotFound {
                kind: "incident",
                id: id.into(),
            });
        }
        let target = format!("incident/{id}");
        match action {
            IncidentAction::Acknowledge => {
                self.transition(id, IncidentState::Acknowledged, actor, now, out)?
            }
            IncidentAction::Mitigate => {
                self.transition(id, IncidentState::Mitigated, actor, now, out)?
            }
            IncidentAction::Resolve => {
                self.transition(id, IncidentState::Resolved, actor, now, out)?
            }
            IncidentAction::Close => self.transition(id, IncidentState::Closed, actor, now, out)?,
            IncidentAction::Reassign {
                escalation_policy,
                assignees,
            } => {
                for (i, a) in assignees.iter().enumerate() {
                    if a.trim().is_empty() {
                        return Err(CoreError::input(
                            format!("assignees[{i}]"),
                            "must not be empty",
                        ));
                    }
                }
                let Some(inc) = self.incidents.get_mut(id) else {
                    return Err(not_found(id));
                };
                inc.escalation_policy = escalation_policy.clone();
                inc.assignees = assignees.clone();
                inc.paging_generation += 1;
                inc.updated_at = now;
                let active = inc.state == IncidentState::Open;
                out.push(Effect::StopEscalation {
                    incident_id: id.into(),
                    actor: actor.clone(),
                    reason: "reassigned",
                });
                self.timeline(
                    id,
                    actor.clone(),
                    now,
                    EntryKind::Reassigned {
                        escalation_policy: escalation_policy.clone(),
                        assignees: assignees.clone(),
                    },
                    out,
                );
                self.audit(&actor, "incident.reassign", target, serde_json::json!({"escalation_policy": escalation_policy, "assignees": assignees}), now, out);
                if active {
                    if let Some(p) = escalation_policy {
                        out.push(Effect::StartEscalation {
                            incident_id: id.into(),
                            policy: p,
                        });
                    }
                    for u in assignees {
                        out.push(Effect::PageUser(Box::new(PageUser {
                            incident_id: id.into(),
                            user: u,
                            message: None,
                            actor: actor.clone(),
                        })));
                    }
                }
            }
            IncidentAction::Note(text) => {
                let text = text.trim().to_string();
                if text.is_empty() || text.len() > MAX_NOTE_LEN {
                    return Err(CoreError::input(
                        "text",
                        format!("note must be 1..{MAX_NOTE_LEN} bytes"),
                    ));
                }
                let Some(inc) = self.incidents.get_mut(id) else {
                    return Err(not_found(id));
                };
                inc.notes.push(Note {
                    at: now,
                    actor: actor.clone(),
                    text: text.clone(),
                });
                inc.updated_at = now;
                self.timeline(id, actor.clone(), now, EntryKind::Note { text }, out);
                self.audit(
                    &actor,
                    "incident.note",
                    target,
                    serde_json::Value::Null,
                    now,
                    out,
                );
            }
            IncidentAction::AssignRole(role, user) => {
                if user.trim().is_empty() {
                    return Err(CoreError::input("user", "must not be empty"));
                }
                let Some(inc) = self.incidents.get_mut(id) else {
                    return Err(not_found(id));
                };
                inc.roles.insert(role, user.clone());
                inc.updated_at = now;
                self.timeline(
                    id,
                    actor.clone(),
                    now,
                    EntryKind::RoleAssigned {
                        role,
                        user: user.clone(),
                    },
                    out,
                );
                self.audit(
                    &actor,
                    "incident.assign_role",
                    target,
                    serde_json::json!({"role": role, "user": user}),
                    now,
                    out,
                );
            }
            IncidentAction::PageUser { user, message } => {
                if user.trim().is_empty() {
                    return Err(CoreError::input("user", "must not be empty"));
                }
                if self.incidents.get(id).is_some_and(|i| !i.state.is_active()) {
                    return Err(CoreError::input(
                        "incident",
                        format!("incident {id} is not active"),
                    ));
                }
                self.timeline(
                    id,
                    actor.clone(),
                    now,
                    EntryKind::Paged {
                        user: user.clone(),
                        channel: None,
                        message: message.clone(),
                    },
                    out,
                );
                self.audit(
                    &actor,
                    "incident.page_user",
                    target,
                    serde_json::json!({"user": user}),
                    now,
                    out,
                );
                out.push(Effect::PageUser(Box::new(PageUser {
                    incident_id: id.into(),
                    user,
                    message,
                    actor,
                })));
            }
            IncidentAction::Record(kind) => {
                let name = kind.type_name();
                // The entry itself is the audit detail, so a page or escalation is found
                // by the user it concerns (AuditQuery::user), not only by its actor.
                let details = serde_json::to_value(&kind).unwrap_or_default();
                self.timeline(id, actor.clone(), now, kind, out);
                self.audit(
                    &actor,
                    &format!("incident.{name}"),
                    target,
                    details,
                    now,
                    out,
                );
            }
        }
        self.incidents.get(id).cloned().ok_or_else(|| not_found(id))
    }

    /// Drops closed incidents (closed at or before `closed_before`) from memory and
    /// returns their ids. Their stored records (written when they closed) stay the only
    /// copy, so callers must answer queries for them from the store: [`EngineCore::incident`]
    /// and [`EngineCore::list_incidents`] no longer see them.
    ///
    /// Decisions are unchanged: a group whose incident was evicted behaves as with a
    /// closed incident (no repeat notifications; a new firing alert opens a new
    /// incident). Two differences: notifications sent for such a group (e.g. its
    /// alerts resolving) carry no incident reference, and no timeline entry is appended
    /// to the evicted incident for them. Call it only after the batch that closed them
    /// was encoded ([`EngineCore::encode`] reads the incident from memory).
    pub fn evict_closed_incidents(&mut self, closed_before: Timestamp) -> Vec<String> {
        let gone: Vec<String> = self
            .incidents
            .values()
            .filter(|i| {
                i.state == IncidentState::Closed && i.closed_at.is_some_and(|t| t <= closed_before)
            })
            .map(|i| i.id.clone())
            .collect();
        for id in &gone {
            if let Some(i) = self.incidents.remove(id)
                && self.incident_by_key.get(&i.group_key) == Some(&i.id)
            {
                // A closed incident is never re-opened: the entry would only lead a
                // new group of this key to open a new incident, as no entry does.
                self.incident_by_key.remove(&i.group_key);
            }
        }
        gone
    }

    /// Removes every silence that ended strictly before `ended_before` from memory and
    /// deletes its stored record (one [`Effect::Write`] delete each); returns how many.
    /// The garbage collection of [`EngineConfig::expired_silence_age`]: the shell
    /// commits the deletes like any decision's.
    ///
    /// [`EngineConfig::expired_silence_age`]: super::config::EngineConfig::expired_silence_age
    pub fn remove_expired_silences(
        &mut self,
        ended_before: Timestamp,
        out: &mut Vec<Effect>,
    ) -> usize {
        let gone = self.silences.remove_ended_before(ended_before);
        let n = gone.len();
        for key in gone {
            out.push(Effect::Write(WriteOp::Delete {
                table: Table::Silences,
                key,
            }));
        }
        n
    }

    /// When the earliest-closed incident still in memory closed (`None`: no closed
    /// incident in memory); the shell's next eviction is due this long after it.
    pub fn earliest_closed_at(&self) -> Option<Timestamp> {
        self.incidents
            .values()
            .filter(|i| i.state == IncidentState::Closed)
            .filter_map(|i| i.closed_at)
            .min()
    }

    /// Number of incidents in memory.
    pub fn incident_count(&self) -> usize {
        self.incidents.len()
    }

    /// An incident by id, or by number (`"42"`).
    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id).or_else(|| {
            id.parse::<u64>()
                .ok()
                .and_then(|n| self.incidents.get(&Incident::id_for(n)))
        })
    }

    /// Incidents matching a filter, newest first, paged by id cursor.
    pub fn list_incidents(&self, f: &IncidentFilter) -> Page<Incident> {
        let size = f.page_size();
        let iter = self
            .incidents
            .values()
            .rev()
            .filter(|i| f.before.as_ref().is_none_or(|b| i.id < *b));
        let mut items: Vec<Incident> = iter
            .filter(|i| f.matches(i))
            .take(size + 1)
            .cloned()
            .collect();
        let next = if items.len() > size {
            items.truncate(size);
            items.last().map(|i| i.id.clone())
        } else {
            None
        };
        Page { items, next }
    }

    /// The alerts of an incident still in memory (firing or not yet retired).
    pub fn incident_alerts(&self, id: &str) -> Vec<AlertRecord> {
        let Some(inc) = self.incident(id) else {
            return Vec::new();
        };
        inc.alerts
            .iter()
            .filter_map(|fp| self.alert_record(*fp))
            .collect()
    }

    // ----- silences and services ----------------------------------------------------

    /// Creates or updates a silence.
    pub fn put_silence(
        &mut self,
        spec: &SilenceSpec,
        actor: Actor,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<Silence, CoreError> {
        let (id, action) = match &spec.id {
            Some(id) => {
                let old = self.silences.get(id).ok_or_else(|| CoreError::NotFound {
                    kind: "silence",
                    id: id.clone(),
                })?;
                if old.state(now) == SilenceState::Expired {
                    return Err(CoreError::input(
                        "id",
                        format!("silence {id} is expired and cannot change"),
                    ));
                }
                (id.clone(), "silence.update")
            }
            None => (self.next_id("sil", now), "silence.create"),
        };
        let s = spec.build(id.clone(), now)?;
        self.silences.upsert(s.clone());
        out.push(Effect::Persist(Record::Silence(id.clone())));
        self.audit(
            &actor,
            action,
            format!("silence/{id}"),
            serde_json::json!({"comment": s.comment}),
            now,
            out,
        );
        Ok(s)
    }

    /// Expires a silence now.
    pub fn expire_silence(
        &mut self,
        id: &str,
        actor: Actor,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<Silence, CoreError> {
        let s = self.silences.expire(id, now)?;
        out.push(Effect::Persist(Record::Silence(id.into())));
        self.audit(
            &actor,
            "silence.expire",
            format!("silence/{id}"),
            serde_json::Value::Null,
            now,
            out,
        );
        Ok(s)
    }

    /// The silences.
    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    /// Creates or replaces a service.
    pub fn put_service(
        &mut self,
        s: Service,
        actor: Actor,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<Service, CoreError> {
        s.validate("")?;
        let id = s.id.clone();
        self.services.insert(id.clone(), s.clone());
        out.push(Effect::Persist(Record::Service(id.clone())));
        self.audit(
            &actor,
            "service.put",
            format!("service/{id}"),
            serde_json::Value::Null,
            now,
            out,
        );
        Ok(s)
    }

    /// Deletes a service.
    pub fn delete_service(
        &mut self,
        id: &str,
        actor: Actor,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<(), CoreError> {
        self.services
            .remove(id)
            .ok_or_else(|| CoreError::NotFound {
                kind: "service",
                id: id.into(),
            })?;
        out.push(Effect::Write(WriteOp::Delete {
            table: Table::Services,
            key: id.into(),
        }));
        self.audit(
            &actor,
            "service.delete",
            format!("service/{id}"),
            serde_json::Value::Null,
            now,
            out,
        );
        Ok(())
    }

    /// The service catalog.
    pub fn services(&self) -> &BTreeMap<String, Service> {
        &self.services
    }

    fn recent_changes_for(&self, s: &Service, now: Timestamp) -> Vec<ChangeEvent> {
        let since = now
            .checked_sub(crate::duration::signed(self.cfg.change_window))
            .unwrap_or(Timestamp::MIN);
        self.changes
            .iter()
            .rev()
            .take_while(|c| c.timestamp >= since)
            .filter(|c| c.timestamp <= now && s.owns_change(c))
            .take(20)
            .cloned()
            .collect()
    }

    /// Change events for an incident's service in `[now - window, now]`, newest first
    /// (window defaults to the configured change window).
    pub fn recent_changes(
        &self,
        incident_id: &str,
        window: Option<Duration>,
        now: Timestamp,
    ) -> Result<Vec<ChangeEvent>, CoreError> {
        let inc = self
            .incident(incident_id)
            .ok_or_else(|| not_found(incident_id))?;
        Ok(self.recent_changes_of(inc, window, now))
    }

    /// [`EngineCore::recent_changes`] for an incident given whole (one read from the
    /// store after it was evicted from memory).
    pub fn recent_changes_of(
        &self,
        inc: &Incident,
        window: Option<Duration>,
        now: Timestamp,
    ) -> Vec<ChangeEvent> {
        let Some(svc) = inc.service.as_ref().and_then(|s| self.services.get(s)) else {
            return Vec::new();
        };
        let w = window.unwrap_or(self.cfg.change_window);
        let since = now
            .checked_sub(crate::duration::signed(w))
            .unwrap_or(Timestamp::MIN);
        self.changes
            .iter()
            .rev()
            .filter(|c| c.timestamp >= since && c.timestamp <= now && svc.owns_change(c))
            .cloned()
            .collect()
    }

    // ----- records for the shell ----------------------------------------------------

    /// The stored form of an alert in memory.
    pub fn alert_record(&self, fp: Fingerprint) -> Option<AlertRecord> {
        let e = self.alerts.get(&fp)?;
        let last_seen = self
            .alerts
            .hot(&fp)
            .and_then(Hot::last_seen)
            .map_or(e.last_seen, |h| h.max(e.last_seen));
        Some(AlertRecord {
            fingerprint: fp,
            alert: view(&e.alert).to_alert(),
            payload_elided: e.raw_elided,
            first_seen: e.first_seen,
            last_seen,
            resolved_at: e.resolved_at,
            groups: e
                .groups
                .iter()
                .filter_map(|h| self.groups.get(&h).map(|g| g.key.clone()))
                .collect(),
        })
    }

    /// Encodes a record's current state as a write: a delete when a group, silence or
    /// service no longer exists; nothing for an alert no longer in memory (retired alerts
    /// are written explicitly when they leave, and alert records are never deleted).
    pub fn encode(&self, r: &Record) -> Option<WriteOp> {
        if let Record::Alert(fp) = r
            && !self.alerts.contains_key(fp)
        {
            return None;
        }
        let (table, key, value) = match r {
            Record::Alert(fp) => (
                Table::Alerts,
                fp_key(*fp),
                self.alert_record(*fp)
                    .map(|a| crate::store::json_sized(&a, RECORD_JSON_CAPACITY)),
            ),
            Record::Group(h) => {
                let g = self.groups.get(h)?;
                (
                    Table::Groups,
                    g.key.clone(),
                    Some(crate::store::json_sized(g, RECORD_JSON_CAPACITY)),
                )
            }
            // Incidents are never deleted by the engine: one no longer in memory was
            // evicted after closing ([`EngineCore::evict_closed_incidents`]) and its
            // stored record is final.
            Record::Incident(id) => (
                Table::Incidents,
                id.clone(),
                Some(crate::store::json_sized(
                    self.incidents.get(id)?,
                    RECORD_JSON_CAPACITY,
                )),
            ),
            Record::Silence(id) => (
                Table::Silences,
                id.clone(),
                self.silences.get(id).map(serde_json::to_vec),
            ),
            Record::Service(id) => (
                Table::Services,
                id.clone(),
                self.services.get(id).map(serde_json::to_vec),
            ),
        };
        match value {
            Some(Ok(value)) => Some(WriteOp::Put { table, key, value }),
            Some(Err(_)) => None,
            None => Some(WriteOp::Delete { table, key }),
        }
    }

    /// Every firing alert the engine tracks (not resolved), as stored records, in
    /// no particular order. Served from memory: no store scan.
    pub fn firing_alert_records(&self) -> impl Iterator<Item = AlertRecord> + '_ {
        self.alerts
            .values()
            .filter(|e| view(&e.alert).status() == AlertStatus::Firing && e.resolved_at.is_none())
            .filter_map(|e| self.alert_record(e.fingerprint))
    }

    /// Number of alerts in memory.
    pub fn alert_count(&self) -> usize {
        self.alerts.len()
    }

    /// Number of aggregation groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// An aggregation group by key.
    pub fn group(&self, key: &str) -> Option<&AggregationGroup> {
        self.group_by_key.get(key).and_then(|h| self.groups.get(h))
    }

    /// Every group's key and armed flush time (for re-arming jobs after recovery).
    pub fn armed_flushes(&self) -> Vec<(String, Timestamp)> {
        self.groups
            .values()
            .filter_map(|g| g.next_flush.map(|t| (g.key.clone(), t)))
            .collect()
    }

    // ----- recovery -----------------------------------------------------------------

    /// Loads state read from the Store. Call `load_group` for every group first, then
    /// `load_alert`, `load_incident`, `load_silence`, `load_service`.
    pub fn load_group(&mut self, mut g: AggregationGroup) {
        let Some(route) = self.cfg.routes.by_id(&g.route) else {
            return;
        };
        g.route_index = route.index;
        g.alerts.clear();
        g.probe = ProbeKey::of_labels(&g.labels);
        // The hash the hot path computes for members of this group (it only reads the
        // group-by labels, which `g.labels` holds).
        let mut h = group_hash(route, &g.labels);
        while self.groups.contains_key(&h) {
            h = h.wrapping_add(1);
        }
        if let Some(i) = &g.incident {
            self.incident_by_key.insert(g.key.clone(), i.clone());
        }
        self.group_by_key.insert(g.key.clone(), h);
        self.groups.insert(h, g, ());
    }

    /// Loads an alert record (retired ones are ignored).
    pub fn load_alert(&mut self, r: AlertRecord) {
        let groups: GroupSet = r
            .groups
            .iter()
            .filter_map(|k| self.group_by_key.get(k).copied())
            .collect();
        if groups.is_empty() {
            return;
        }
        let firing = r.alert.status == AlertStatus::Firing;
        for h in groups.iter() {
            if let Some(g) = self.groups.get_mut(&h) {
                g.alerts.push(r.fingerprint);
                g.firing += usize::from(firing);
            }
        }
        if firing && !self.inhibitor.is_empty() {
            self.inhibitor.observe(r.fingerprint, &r.alert.labels, true);
        }
        let hot = Hot::of(&r.alert, r.last_seen);
        // Already stored: nothing needs the raw payload in memory.
        self.alerts.insert(
            r.fingerprint,
            AlertEntry {
                raw_elided: r.payload_elided || !r.alert.raw.is_null(),
                alert: StoredAlert::Compact(CompactAlert::from_alert(&r.alert)),
                fingerprint: r.fingerprint,
                first_seen: r.first_seen,
                last_seen: r.last_seen,
                resolved_at: r.resolved_at,
                groups,
            },
            hot,
        );
    }

    /// Loads an incident.
    pub fn load_incident(&mut self, i: Incident) {
        self.count_stored_incident(&i);
        let newer = self
            .incident_by_key
            .get(&i.group_key)
            .is_none_or(|cur| *cur < i.id);
        if newer {
            self.incident_by_key
                .insert(i.group_key.clone(), i.id.clone());
        }
        self.incidents.insert(i.id.clone(), i);
    }

    /// Takes a stored incident that stays out of memory (closed and evicted) into
    /// account: the incident number and round-robin counters move past it, so ids stay
    /// unique and round-robin goes on as if it were loaded.
    pub fn count_stored_incident(&mut self, i: &Incident) {
        self.next_incident = self.next_incident.max(i.number + 1);
        if let Some(p) = &i.escalation_policy {
            let c = self.policy_opens.entry(p.clone()).or_insert(0);
            *c = (*c).max(i.round_robin_cursor + 1);
        }
    }

    /// Loads a silence.
    pub fn load_silence(&mut self, s: Silence) {
        self.silences.upsert(s);
    }

    /// Loads a service (the stored version wins over the config seed).
    pub fn load_service(&mut self, s: Service) {
        self.services.insert(s.id.clone(), s);
    }

    /// Restores the id counter so new ids stay unique after a restart.
    pub fn bump_seq(&mut self, at_least: u64) {
        self.seq = self.seq.max(at_least);
    }
}

/// The part of an alert's state the re-send path needs, packed into 16 bytes so the
/// slab index entry (fingerprint, position, this) is 32.
#[derive(Debug, Clone, Copy)]
struct Hot {
    /// [`content_hash`] with its lowest bit replaced by the status (1 = resolved):
    /// equal tags mean same status and unchanged content (collisions: 2^-63).
    tag: u64,
    /// Last received, nanoseconds since the Unix epoch (saturating: i64 spans the
    /// years 1677–2262; [`EngineCore::alert_record`] takes the later of this and the
    /// entry's own `last_seen`).
    last_seen_ns: i64,
}

impl Hot {
    #[inline]
    fn of(alert: &Alert, now: Timestamp) -> Self {
        Hot {
            tag: Self::tag_of(alert),
            last_seen_ns: Self::ns(now),
        }
    }

    #[inline]
    fn tag_of(alert: &Alert) -> u64 {
        (content_hash(alert) & !1) | u64::from(alert.status == AlertStatus::Resolved)
    }

    #[inline]
    fn ns(t: Timestamp) -> i64 {
        let n = t.as_nanosecond();
        i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
    }

    fn last_seen(&self) -> Option<Timestamp> {
        Timestamp::from_nanosecond(i128::from(self.last_seen_ns)).ok()
    }
}

/// A 64-bit hash of what [`content_changed`] compares (summary, severity, annotations,
/// links): equal hashes mean an unchanged re-send (collisions: 2^-64).
#[inline]
fn content_hash(a: &Alert) -> u64 {
    let mut b = ResendKeyBuilder::new(&a.summary, a.severity);
    for (k, v) in &a.annotations {
        b.annotation(k, v);
    }
    for l in &a.links {
        b.link(&l.href, l.text.as_deref());
    }
    b.h
}

/// What the re-send check needs to know about an alert event: its fingerprint, status
/// and a hash of its content (summary, severity, annotations, links). Built from an
/// [`Alert`] ([`ResendKey::of_alert`]) or, before any owned `Alert` exists, from the
/// borrowed parts of an inbound payload ([`ResendKeyBuilder`]); then
/// [`EngineCore::ingest_known_resend`] settles an identical re-send without the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResendKey {
    /// The alert's fingerprint ([`Alert::fingerprint`]: dedup key or label set).
    pub fingerprint: Fingerprint,
    /// Content hash with its lowest bit replaced by the status (1 = resolved).
    tag: u64,
}

impl ResendKey {
    /// The key of an alert (what the engine compares on ingest).
    pub fn of_alert(alert: &Alert) -> Self {
        ResendKey {
            fingerprint: alert.fingerprint(),
            tag: Hot::tag_of(alert),
        }
    }
}

/// Hashes an alert's content from borrowed parts, the same way the engine hashes an
/// [`Alert`]: call [`ResendKeyBuilder::annotation`] for every annotation in name order
/// (the order of [`Alert::annotations`]), then [`ResendKeyBuilder::link`] for every link
/// in order, then [`ResendKeyBuilder::finish`].
///
/// Contract: for parts equal to an alert's, the key equals [`ResendKey::of_alert`].
/// Parts fed in another order (or a part left out) give another key, which can only
/// make [`EngineCore::ingest_known_resend`] answer "not known" (the event then takes
/// the normal path): never a false duplicate (other than a 2^-63 hash collision).
#[derive(Debug, Clone)]
pub struct ResendKeyBuilder {
    h: u64,
}

impl ResendKeyBuilder {
    /// Odd 64-bit multiplier (2^64 / golden ratio).
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    /// One mixing step: folded 64×64→128-bit multiply of the state with the word.
    #[inline]
    fn mix(h: u64, w: u64) -> u64 {
        let m = u128::from(h ^ w).wrapping_mul(u128::from(Self::K));
        (m as u64) ^ ((m >> 64) as u64)
    }

    /// Feeds one field: its length, then its bytes 8 at a time (the last word padded
    /// with zeros; the length keeps field boundaries unambiguous). A word per step
    /// instead of FNV's byte per step: the hash is in-memory only, never stored.
    #[inline]
    fn eat(&mut self, b: &[u8]) {
        let mut h = Self::mix(self.h, b.len() as u64);
        let mut words = b.chunks_exact(8);
        for w in &mut words {
            let mut x = [0u8; 8];
            x.copy_from_slice(w);
            h = Self::mix(h, u64::from_le_bytes(x));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut x = [0u8; 8];
            if let Some(d) = x.get_mut(..rest.len()) {
                d.copy_from_slice(rest);
            }
            h = Self::mix(h, u64::from_le_bytes(x));
        }
        self.h = h;
    }

    /// Starts with the alert's summary and severity.
    #[inline]
    pub fn new(summary: &str, severity: Severity) -> Self {
        let mut b = ResendKeyBuilder {
            h: 0xcbf2_9ce4_8422_2325,
        };
        b.eat(summary.as_bytes());
        b.eat(severity.as_str().as_bytes());
        b
    }

    /// Adds one annotation (call in name order).
    #[inline]
    pub fn annotation(&mut self, name: &str, value: &str) -> &mut Self {
        self.eat(name.as_bytes());
        self.eat(value.as_bytes());
        self
    }

    /// Adds one link (call in the alert's link order).
    #[inline]
    pub fn link(&mut self, href: &str, text: Option<&str>) -> &mut Self {
        self.eat(href.as_bytes());
        self.eat(text.unwrap_or("").as_bytes());
        self
    }

    /// The key for an alert with this content, `fingerprint` and `status`.
    #[inline]
    pub fn finish(&self, fingerprint: Fingerprint, status: AlertStatus) -> ResendKey {
        ResendKey {
            fingerprint,
            tag: (self.h & !1) | u64::from(status == AlertStatus::Resolved),
        }
    }
}

/// What an incoming alert is relative to what the core knows.
enum Known {
    New,
    Duplicate,
    Changed,
    Resolves,
    Refires,
}

/// Whether a re-sent alert carries new content worth storing (not worth notifying).
#[inline]
fn content_changed(old: &Alert, new: &Alert) -> bool {
    old.summary != new.summary
        || old.severity != new.severity
        || old.annotations != new.annotations
        || old.links != new.links
}

fn not_found(id: &str) -> CoreError {
    CoreError::NotFound {
        kind: "incident",
        id: id.into(),
    }
}

fn verb(s: IncidentState) -> &'static str {
    match s {
        IncidentState::Open => "reopen",
        IncidentState::Acknowledged => "acknowledge",
        IncidentState::Mitigated => "mitigate",
        IncidentState::Resolved => "resolve",
        IncidentState::Closed => "close",
    }
}

fn verb_past(s: IncidentState) -> &'static str {
    match s {
        IncidentState::Open => "reopened",
        IncidentState::Acknowledged => "acknowledged",
        IncidentState::Mitigated => "mitigated",
        IncidentState::Resolved => "resolved",
        IncidentState::Closed => "closed",
    }
}

/// The first `anchor + k·interval` (k ≥ 1) at or after `at_least`: the group's
/// `group_interval` ticks counted from its last flush. A zero interval gives
/// `max(anchor, at_least)`.
fn next_tick(anchor: Timestamp, interval: Duration, at_least: Timestamp) -> Timestamp {
    let first = add(anchor, interval);
    if first >= at_least || interval.is_zero() {
        return first.max(at_least);
    }
    let behind = at_least.duration_since(anchor).as_nanos();
    let step = i128::try_from(interval.as_nanos()).unwrap_or(i128::MAX);
    let k = (behind + step - 1) / step;
    let ticks = u32::try_from(k).unwrap_or(u32::MAX);
    let total = interval.checked_mul(ticks).unwrap_or(Duration::MAX);
    add(anchor, total).max(at_least)
}

/// The flush job for a group at `due`.
pub fn flush_job(key: &str, due: Timestamp) -> Job {
    Job {
        id: AggregationGroup::job_id(key, due),
        due,
        kind: JobKind::GroupFlush {
            group_key: key.to_string(),
        },
        attempts: 0,
    }
}

/// [`common`] of packed alerts (the same maps, without unpacking the alerts).
fn common_packed(alerts: &[CompactAlert]) -> (Labels, Annotations) {
    let Some(first) = alerts.first() else {
        return Default::default();
    };
    let mut labels = first.to_labels();
    let mut ann: Annotations = first.annotations().collect();
    for a in &alerts[1..] {
        labels.retain(|k, v| a.label(k) == Some(v));
        ann.retain(|k, v| a.annotation(k) == Some(v));
    }
    (labels, ann)
}

fn common(alerts: &[Alert]) -> (Labels, Annotations) {
    let Some(first) = alerts.first() else {
        return Default::default();
    };
    let mut labels = first.labels.clone();
    let mut ann = first.annotations.clone();
    for a in &alerts[1..] {
        labels.retain(|k, v| a.labels.get(k) == Some(v));
        ann.retain(|k, v| a.annotations.get(k) == Some(v));
    }
    (labels, ann)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;

    /// A silence of `a=quiet` from t(0) to t(100_000).
    fn quiet_silence() -> SilenceSpec {
        SilenceSpec {
            id: None,
            matchers: vec![crate::routing::MatcherSpec::Text("a=quiet".into())],
            starts_at: Some(t(0)),
            ends_at: t(100_000),
            created_by: "u".into(),
            comment: String::new(),
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_772_445_600 + s).unwrap()
    }

    fn core() -> EngineCore {
        let cfg: super::super::EngineConfig = serde_json::from_value(serde_json::json!({
            "route": {"group_wait": "30s", "group_interval": "5m",
                      "notify": [{"channel": "c", "target": "t"}]}
        }))
        .unwrap();
        EngineCore::new(cfg.compile().unwrap())
    }

    fn alert() -> Alert {
        let src = Source {
            provider: "p".into(),
            integration: "i".into(),
        };
        Alert::firing(src, "s", [("a".to_string(), "1".to_string())].into())
    }

    #[test]
    fn duplicate_needs_same_status_and_content_and_keeps_last_seen() {
        let mut c = core();
        let mut out = Vec::new();
        let a = alert();
        let fp = c.ingest_alert(a.clone(), t(0), &mut out);
        out.clear();
        c.ingest_alert(a.clone(), t(10), &mut out);
        assert!(matches!(
            out.as_slice(),
            [Effect::Event(EngineEvent::AlertDeduplicated { .. })]
        ));
        assert_eq!(c.alert_record(fp).unwrap().last_seen, t(10));
        // Same content, other status: not a duplicate.
        let mut r = a.clone();
        r.status = AlertStatus::Resolved;
        out.clear();
        c.ingest_alert(r.clone(), t(20), &mut out);
        assert!(out.contains(&Effect::Persist(Record::Alert(fp))));
        assert_eq!(
            c.alert_record(fp).unwrap().alert.status,
            AlertStatus::Resolved
        );
        // A re-sent resolve is a duplicate; the retired record written at the flush
        // carries its time (kept only in the hot part).
        c.ingest_alert(r, t(25), &mut out);
        out.clear();
        c.flush_job(
            &c.armed_flushes()[0].0.clone(),
            c.armed_flushes()[0].1,
            t(30),
            &mut out,
        );
        assert_eq!(c.alert_count(), 0, "fired and resolved inside group_wait");
        let rec = out.iter().find_map(|e| match e {
            Effect::Write(WriteOp::Put {
                table: Table::Alerts,
                value,
                ..
            }) => serde_json::from_slice::<AlertRecord>(value).ok(),
            _ => None,
        });
        assert_eq!(rec.map(|r| r.last_seen), Some(t(25)));
    }

    /// Strips what compaction legitimately changes (raw payloads, the elided flag) so
    /// the two cores' outputs can be compared.
    fn without_raw(effects: &[Effect]) -> Vec<Effect> {
        effects
            .iter()
            .map(|e| match e {
                Effect::Notify(n) => {
                    let mut n = n.clone();
                    for a in n.alerts.to_mut() {
                        a.raw = crate::model::RawPayload::null();
                    }
                    Effect::Notify(n)
                }
                Effect::Write(WriteOp::Put {
                    table: Table::Alerts,
                    key,
                    value,
                }) => {
                    let mut r: AlertRecord = serde_json::from_slice(value).unwrap();
                    r.alert.raw = crate::model::RawPayload::null();
                    r.payload_elided = false;
                    Effect::Write(WriteOp::Put {
                        table: Table::Alerts,
                        key: key.clone(),
                        value: serde_json::to_vec(&r).unwrap(),
                    })
                }
                other => other.clone(),
            })
            .collect()
    }

    /// A core that compacts after every call decides exactly as one that never does:
    /// same effects (but raw payloads), same records; its records written after the
    /// compaction are marked `payload_elided` and merge back the stored raw payload.
    #[test]
    fn compacting_changes_no_decision_and_marks_elided_records() {
        let cfg: super::super::EngineConfig = serde_json::from_value(serde_json::json!({
            "route": {"group_wait": "30s", "group_interval": "5m", "group_by": ["g"],
                      "notify": [{"channel": "c", "target": "t"}]},
            "inhibit_rules": [{"source_matchers": ["a=src"], "target_matchers": ["sev=low"],
                               "equal": ["g"]}]
        }))
        .unwrap();
        let compiled = cfg.compile().unwrap();
        let (mut plain, mut packed) =
            (EngineCore::new(compiled.clone()), EngineCore::new(compiled));
        let src = Source {
            provider: "p".into(),
            integration: "i".into(),
        };
        let mk = |pairs: &[(&str, &str)], summary: &str| {
            let mut a = Alert::firing(
                src.clone(),
                summary,
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            a.annotations.insert("d".into(), format!("about {summary}"));
            a.links.push(crate::model::Link {
                href: "https://g".into(),
                text: Some("graph".into()),
            });
            a.raw =
                crate::model::RawPayload::from_json(&format!(r#"{{"s":"{summary}"}}"#)).unwrap();
            a
        };
        let target = mk(&[("a", "t"), ("g", "1"), ("sev", "low")], "target");
        let mut source = mk(&[("a", "src"), ("g", "1")], "source");
        source.dedup_key = Some("src-key".into());
        let silenced = mk(&[("a", "quiet"), ("g", "2")], "quiet");
        let other = mk(&[("a", "x"), ("g", "2")], "x");
        let mut changed = other.clone();
        changed.summary = "x changed".into();
        let mut resolved = target.clone();
        resolved.status = AlertStatus::Resolved;
        let spec = quiet_silence();
        type Step<'a> = Box<dyn Fn(&mut EngineCore, &mut Vec<Effect>) + 'a>;
        let steps: Vec<Step> = vec![
            Box::new(|c, o| {
                c.put_silence(&spec, Actor::System, t(0), o).unwrap();
            }),
            Box::new(|c, o| {
                for a in [&target, &source, &silenced, &other] {
                    c.ingest_alert(a.clone(), t(1), o);
                }
            }),
            Box::new(|c, o| {
                c.ingest_alert(other.clone(), t(5), o);
                c.ingest_alert(changed.clone(), t(6), o);
            }),
            Box::new(|c, o| {
                for (k, due) in c.armed_flushes() {
                    c.flush_job(&k, due, t(40), o);
                }
            }),
            Box::new(|c, o| {
                c.ingest_alert(resolved.clone(), t(50), o);
                c.ingest(
                    Event::Action(ActionEvent {
                        source: src.clone(),
                        action: ActionKind::Resolve,
                        dedup_key: "src-key".into(),
                        raw: Default::default(),
                    }),
                    t(51),
                    o,
                );
            }),
            Box::new(|c, o| {
                for (k, due) in c.armed_flushes() {
                    c.flush_job(&k, due, t(400), o);
                }
            }),
            Box::new(|c, o| {
                c.ingest_alert(target.clone(), t(500), o);
                for (k, due) in c.armed_flushes() {
                    c.flush_job(&k, due, t(1000), o);
                }
            }),
        ];
        let fps: Vec<Fingerprint> = [&target, &source, &silenced, &other]
            .iter()
            .map(|a| a.fingerprint())
            .collect();
        let mut elided = 0;
        let mut notified = 0;
        for step in &steps {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            step(&mut plain, &mut a);
            step(&mut packed, &mut b);
            assert_eq!(without_raw(&a), without_raw(&b));
            notified += a.iter().filter(|e| matches!(e, Effect::Notify(_))).count();
            for fp in &fps {
                let (x, y) = (plain.alert_record(*fp), packed.alert_record(*fp));
                assert_eq!(x.is_some(), y.is_some());
                if let (Some(mut x), Some(mut y)) = (x, y) {
                    elided += usize::from(y.payload_elided);
                    // An elided record merges the stored raw payload back.
                    if y.payload_elided {
                        assert!(y.alert.raw.is_null());
                        assert!(y.merge_stored_payload(&x));
                        assert!(!y.payload_elided);
                    }
                    assert_eq!(x.alert.raw, y.alert.raw);
                    x.payload_elided = false;
                    y.payload_elided = false;
                    assert_eq!(x, y);
                }
            }
            assert_eq!(
                without_raw(
                    &fps.iter()
                        .filter_map(|f| plain.encode(&Record::Alert(*f)))
                        .map(Effect::Write)
                        .collect::<Vec<_>>()
                ),
                without_raw(
                    &fps.iter()
                        .filter_map(|f| packed.encode(&Record::Alert(*f)))
                        .map(Effect::Write)
                        .collect::<Vec<_>>()
                )
            );
            packed.compact_alerts();
            assert!(packed.uncompacted.is_empty());
        }
        assert!(elided > 0, "some records were written after compaction");
        assert!(notified >= 3, "the scenario notifies ({notified})");
        assert!(
            packed
                .alerts
                .values()
                .all(|e| matches!(e.alert, StoredAlert::Compact(_)))
        );
    }

    #[test]
    fn uncompacted_list_stays_bounded_without_compaction() {
        let mut c = core();
        let mut out = Vec::new();
        let base = alert();
        for i in 0..20_000 {
            let mut a = base.clone();
            a.summary = format!("v{i}");
            c.ingest_alert(a, t(i), &mut out);
            out.clear();
        }
        assert_eq!(c.alert_count(), 1);
        assert!(c.uncompacted.len() <= 2 * c.alert_count() + 4096 + 1);
        assert_eq!(c.compact_alerts(), 1);
        assert!(c.uncompacted.capacity() <= 4096);
    }

    #[test]
    fn evicted_closed_incidents_behave_as_closed_and_are_never_deleted() {
        let (mut kept, mut evicted) = (core(), core());
        let a = alert();
        let mut b = alert();
        b.labels.insert("b".into(), "2".into());
        let run = |c: &mut EngineCore, evict: bool| -> Vec<Vec<Effect>> {
            let mut steps = Vec::new();
            let mut out = Vec::new();
            c.ingest_alert(a.clone(), t(0), &mut out);
            let (k, due) = c.armed_flushes()[0].clone();
            c.flush_job(&k, due, t(30), &mut out);
            let id = c.list_incidents(&IncidentFilter::default()).items[0]
                .id
                .clone();
            c.act(&id, IncidentAction::Resolve, Actor::System, t(40), &mut out)
                .unwrap();
            c.act(&id, IncidentAction::Close, Actor::System, t(50), &mut out)
                .unwrap();
            steps.push(std::mem::take(&mut out));
            if evict {
                assert_eq!(c.evict_closed_incidents(t(49)), Vec::<String>::new());
                assert_eq!(c.evict_closed_incidents(t(50)), vec![id.clone()]);
                assert!(c.incident(&id).is_none());
                assert_eq!(c.incident_count(), 0);
                assert_eq!(
                    c.encode(&Record::Incident(id.clone())),
                    None,
                    "never a delete"
                );
            }
            // Repeats of the still-firing alert: none, the incident is closed.
            for (k, due) in c.armed_flushes() {
                c.flush_job(&k, due, t(5 * 3600), &mut out);
            }
            steps.push(std::mem::take(&mut out));
            // A new alert in the group opens a new incident.
            c.ingest_alert(b.clone(), t(5 * 3600 + 10), &mut out);
            for (k, due) in c.armed_flushes() {
                c.flush_job(&k, due, due, &mut out);
            }
            let now_open = c.list_incidents(&IncidentFilter::default()).items;
            assert!(
                now_open
                    .iter()
                    .any(|i| i.id != id && i.state == IncidentState::Open)
            );
            steps.push(out);
            steps
        };
        let x = run(&mut kept, false);
        let y = run(&mut evicted, true);
        assert_eq!(x[0], y[0]);
        assert!(
            !y[1].iter().any(|e| matches!(e, Effect::Notify(_))),
            "no repeat"
        );
        assert_eq!(x[1], y[1]);
        assert!(y[2].iter().any(|e| matches!(e, Effect::Notify(_))));
        assert_eq!(x[2], y[2]);
    }

    #[test]
    fn reset_forgets_state_and_keeps_config() {
        let mut c = core();
        let mut out = Vec::new();
        c.ingest_alert(alert(), t(0), &mut out);
        assert_eq!((c.alert_count(), c.group_count()), (1, 1));
        c.reset();
        assert_eq!(
            (c.alert_count(), c.group_count(), c.incident_count()),
            (0, 0, 0)
        );
        assert!(c.armed_flushes().is_empty());
        // Same configuration: the same alert is new again and groups the same way.
        out.clear();
        c.ingest_alert(alert(), t(0), &mut out);
        assert!(out.contains(&Effect::Event(EngineEvent::AlertReceived {
            fingerprint: alert().fingerprint()
        })));
        assert_eq!(c.group_count(), 1);
    }

    fn rich_alert() -> Alert {
        let mut a = alert();
        a.severity = Severity::Warning;
        a.annotations
            .insert("runbook".to_string(), "https://r".to_string());
        a.annotations.insert("desc".to_string(), "d".to_string());
        a.links.push(crate::model::Link {
            href: "https://g".into(),
            text: Some("graph".into()),
        });
        a.links.push(crate::model::Link {
            href: "https://h".into(),
            text: None,
        });
        a
    }

    fn key_from_parts(a: &Alert) -> ResendKey {
        let mut b = ResendKeyBuilder::new(&a.summary, a.severity);
        for (k, v) in &a.annotations {
            b.annotation(k, v);
        }
        for l in &a.links {
            b.link(&l.href, l.text.as_deref());
        }
        b.finish(
            crate::model::Fingerprint::of_label_pairs(a.labels.iter()),
            a.status,
        )
    }

    #[test]
    fn resend_key_from_parts_equals_key_of_alert_and_tells_content_apart() {
        let a = rich_alert();
        assert_eq!(key_from_parts(&a), ResendKey::of_alert(&a));
        let mut other = a.clone();
        other.summary = "t".into();
        assert_ne!(ResendKey::of_alert(&other), ResendKey::of_alert(&a));
        let mut other = a.clone();
        other.status = AlertStatus::Resolved;
        assert_ne!(ResendKey::of_alert(&other), ResendKey::of_alert(&a));
        let mut other = a.clone();
        other.links.pop();
        assert_ne!(ResendKey::of_alert(&other), ResendKey::of_alert(&a));
        // Annotations out of name order: another key (a miss, never a false duplicate).
        let mut b = ResendKeyBuilder::new(&a.summary, a.severity);
        b.annotation("runbook", "https://r").annotation("desc", "d");
        for l in &a.links {
            b.link(&l.href, l.text.as_deref());
        }
        assert_ne!(b.finish(a.fingerprint(), a.status), ResendKey::of_alert(&a));
    }

    #[test]
    fn known_resend_settles_like_ingest_and_misses_leave_state_alone() {
        let a = rich_alert();
        let mut c = core();
        let mut out = Vec::new();
        // Unknown alert: a miss, nothing pushed.
        assert!(!c.ingest_known_resend(&key_from_parts(&a), t(0), &mut out));
        assert!(out.is_empty());
        let fp = c.ingest_alert(a.clone(), t(0), &mut out);
        // The same effects as ingesting the identical alert by value.
        let mut twin = core();
        let mut twin_out = Vec::new();
        twin.ingest_alert(a.clone(), t(0), &mut twin_out);
        twin_out.clear();
        twin.ingest_alert(a.clone(), t(10), &mut twin_out);
        out.clear();
        assert!(c.ingest_known_resend(&key_from_parts(&a), t(10), &mut out));
        assert_eq!(out, twin_out);
        assert_eq!(c.alert_record(fp).unwrap().last_seen, t(10));
        assert_eq!(
            c.alert_record(fp),
            twin.alert_record(fp),
            "same state as after ingest"
        );
        // Changed content or status: a miss, no effect, last seen unchanged; the normal
        // path then handles it.
        for changed in [
            Alert {
                summary: "other".into(),
                ..a.clone()
            },
            Alert {
                status: AlertStatus::Resolved,
                ..a.clone()
            },
        ] {
            out.clear();
            assert!(!c.ingest_known_resend(&key_from_parts(&changed), t(20), &mut out));
            assert!(out.is_empty());
            assert_eq!(c.alert_record(fp).unwrap().last_seen, t(10));
        }
        let mut r = a.clone();
        r.status = AlertStatus::Resolved;
        c.ingest_alert(r.clone(), t(20), &mut out);
        out.clear();
        // Now the resolve is the known state: its re-send is settled, the firing one not.
        assert!(c.ingest_known_resend(&ResendKey::of_alert(&r), t(25), &mut out));
        assert!(!c.ingest_known_resend(&ResendKey::of_alert(&a), t(25), &mut out));
        assert_eq!(out.len(), 1);
    }

    /// `ingest_all` over random batches (re-sends, content changes, resolves, re-fires,
    /// new alerts, dedup-keyed alerts and actions, change events, the same alert several
    /// times in one window, batches shorter and longer than a window) decides exactly as
    /// `ingest` one event at a time: same effects in the same order after every batch and
    /// every flush, same alert records, groups and incidents.
    #[test]
    fn ingest_all_decides_exactly_as_ingest_one_by_one() {
        let cfg: super::super::EngineConfig = serde_json::from_value(serde_json::json!({
            "route": {"group_wait": "30s", "group_interval": "5m", "group_by": ["g"],
                      "notify": [{"channel": "c", "target": "t"}],
                      "routes": [{"matchers": ["g=1"], "continue": true},
                                 {"matchers": ["sev=high"]}]},
            "inhibit_rules": [{"source_matchers": ["a=src"], "target_matchers": ["sev=low"],
                               "equal": ["g"]}]
        }))
        .unwrap();
        let compiled = cfg.compile().unwrap();
        let (mut one, mut all) = (EngineCore::new(compiled.clone()), EngineCore::new(compiled));
        let src = Source {
            provider: "p".into(),
            integration: "i".into(),
        };
        let spec = quiet_silence();
        let mut o = Vec::new();
        one.put_silence(&spec, Actor::System, t(0), &mut o).unwrap();
        all.put_silence(&spec, Actor::System, t(0), &mut o).unwrap();
        // xorshift64*: deterministic, no dependency.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            seed.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        };
        let names = ["src", "quiet", "x", "y", "z"];
        let event = |rnd: &mut dyn FnMut(u64) -> u64| -> Event {
            let pick = rnd(100);
            let k = rnd(4);
            if pick < 6 {
                return Event::Change(ChangeEvent {
                    source: src.clone(),
                    summary: format!("deploy {k}"),
                    timestamp: t(1),
                    service: None,
                    repository: None,
                    labels: Labels::new(),
                    links: Vec::new(),
                    details: serde_json::Value::Null,
                    raw: Default::default(),
                });
            }
            if pick < 14 {
                return Event::Action(ActionEvent {
                    source: src.clone(),
                    action: if rnd(2) == 0 {
                        ActionKind::Resolve
                    } else {
                        ActionKind::Acknowledge
                    },
                    dedup_key: format!("key-{k}"),
                    raw: Default::default(),
                });
            }
            let name = names[rnd(names.len() as u64) as usize];
            let labels: Labels = [
                ("a".to_string(), name.to_string()),
                ("g".to_string(), (1 + rnd(3)).to_string()),
                (
                    "sev".to_string(),
                    ["low", "high"][rnd(2) as usize].to_string(),
                ),
            ]
            .into();
            let mut a = Alert::firing(src.clone(), ["s", "s2"][rnd(8).min(1) as usize], labels);
            if rnd(5) == 0 {
                a.status = AlertStatus::Resolved;
            }
            if rnd(6) == 0 {
                a.annotations.insert("d".into(), "more".into());
            }
            if rnd(10) == 0 {
                a.dedup_key = Some(format!("key-{k}"));
            }
            Event::Alert(a)
        };
        let mut dedups = 0;
        let mut notified = 0;
        let mut fps = std::collections::BTreeSet::new();
        for round in 0..60i64 {
            let n = 1 + rnd(80) as usize;
            let batch: Vec<Event> = (0..n).map(|_| event(&mut rnd)).collect();
            for ev in &batch {
                if let Event::Alert(a) = ev {
                    fps.insert(a.fingerprint());
                }
            }
            let now = t(round * 20);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for ev in batch.clone() {
                one.ingest(ev, now, &mut a);
            }
            all.ingest_all(batch, now, &mut b);
            assert_eq!(a, b, "round {round}");
            dedups += a
                .iter()
                .filter(|e| matches!(e, Effect::Event(EngineEvent::AlertDeduplicated { .. })))
                .count();
            if round % 3 == 2 {
                let later = t(round * 20 + 400);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for (k, due) in one.armed_flushes() {
                    one.flush_job(&k, due, later, &mut a);
                }
                for (k, due) in all.armed_flushes() {
                    all.flush_job(&k, due, later, &mut b);
                }
                assert_eq!(a, b, "flush after round {round}");
                notified += a.iter().filter(|e| matches!(e, Effect::Notify(_))).count();
            }
            if round % 7 == 6 {
                one.compact_alerts();
                all.compact_alerts();
            }
        }
        for fp in &fps {
            assert_eq!(one.alert_record(*fp), all.alert_record(*fp));
        }
        assert_eq!(one.alert_count(), all.alert_count());
        assert_eq!(one.group_count(), all.group_count());
        assert_eq!(one.armed_flushes(), all.armed_flushes());
        let (x, y) = (
            one.list_incidents(&IncidentFilter::default()),
            all.list_incidents(&IncidentFilter::default()),
        );
        assert_eq!(x.items, y.items);
        // The scenario exercises what it claims to.
        assert!(dedups > 300, "re-sends: {dedups}");
        assert!(notified > 5, "notifications: {notified}");
        assert!(!x.items.is_empty());
    }
}
