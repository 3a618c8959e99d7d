//! Retention keeps the store bounded under a steady stream, on redb and in memory:
//!
//! * a real engine (the eviction suite's rig, manual clock) opens incidents under new
//!   label sets every round, records change events and audit entries, delivers each
//!   incident's notification through the real notification log (with a throttle slot
//!   per new contact method) and sets a silence that ends within the hour, resolves and
//!   closes them; after each round the sweep runs
//!   with a guard over the live engine. The record count of every table (and the
//!   scheduler's pending jobs) stops growing once the age is reached;
//! * a record the engine changes exactly at the sweep's commit survives (the
//!   conditional delete), and the rest of its chunk still goes;
//! * a notification that never settles stops keeping its incident once abandoned
//!   (age + grace), and not before.

#[path = "support/delivery_log.rs"]
mod delivery_log;
#[path = "../../signalcraft-core/tests/eviction_suite/mod.rs"]
mod eviction_suite;
#[path = "support/redb_factory.rs"]
mod redb_factory;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use delivery_log::{Via, deliver, notification};
use eviction_suite::{Rig, StoreFactory};
use jiff::Timestamp;
use redb_factory::redb;
use serde_json::Value;
use signalcraft_core::delivery::log::{NotificationLog, THREAD_ROOT_PREFIX, ThreadRoot};
use signalcraft_core::engine::Engine;
use signalcraft_core::incident::{Actor, Incident, IncidentState};
use signalcraft_core::memory::MemoryStore;
use signalcraft_core::model::{ChangeEvent, Event, Fingerprint, Source};
use signalcraft_core::routing::MatcherSpec;
use signalcraft_core::silence::SilenceSpec;
use signalcraft_core::store::{Scan, Store, StoreError, Table, WriteBatch, WriteOp};
use signalcraft_store::retention::RetentionGuard;
use signalcraft_store::{RedbStore, RetentionPolicy};

const DAY: Duration = Duration::from_secs(86_400);

// ----- stores -------------------------------------------------------------------------

/// One in-memory store, the same on every open.
struct Memory(Arc<MemoryStore>);

impl StoreFactory for Memory {
    fn open(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
}

// ----- the guard a live engine needs (as the server's) ----------------------------------

/// Keeps what the engine holds in memory.
struct EngineGuard(Engine);

impl RetentionGuard for EngineGuard {
    fn incident_in_use(&self, id: &str) -> bool {
        self.0.get_incident(id).is_ok()
    }

    fn alert_in_use(&self, key: &str) -> bool {
        match serde_json::from_value::<Fingerprint>(Value::String(key.into())) {
            Ok(fp) => self.0.with_core(|c| c.alert_record(fp).is_some()),
            Err(_) => true,
        }
    }
}

// ----- notification-log helpers -------------------------------------------------------

/// Every notification of these tests goes out by SMS.
const SMS: Via = Via {
    channel: "sms",
    target: "+15550000",
};

fn change(summary: String, at: Timestamp) -> Event {
    Event::Change(ChangeEvent {
        source: Source {
            provider: "github".into(),
            integration: "gh".into(),
        },
        summary,
        timestamp: at,
        service: Some("api".into()),
        repository: None,
        labels: Default::default(),
        links: vec![],
        details: Value::Null,
        raw: Default::default(),
    })
}

async fn counts(s: &dyn Store) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for t in Table::ALL {
        out.insert(t.name(), s.count(t).await.expect("count"));
    }
    out
}

// ----- the steady stream ----------------------------------------------------------------

/// Shorter than the engine's `expired_silence_age` (120h), so the store's own removal of
/// ended silences (`expired_silences`) is what the stream exercises.
const AGE_DAYS: u64 = 3;
const PER_ROUND: usize = 3;
const ROUNDS: usize = 30;

/// Each round (one day on the clock): `PER_ROUND` incidents under new alert names, a
/// change event, a delivered notification per incident (a new contact method each
/// round), resolve and close, a sweep. Returns the counts after each round's sweep.
async fn steady_stream(stores: &dyn StoreFactory) {
    let r = Rig::new(stores, "0s").await;
    let store = r.engine.store().clone();
    let log = NotificationLog::new(store.clone());
    let guard = EngineGuard(r.engine.clone());
    let age = DAY * AGE_DAYS as u32;
    let policy = RetentionPolicy {
        page_size: 4, // several chunks per sweep
        audit_age: Some(age),
        change_age: Some(age),
        ..RetentionPolicy::for_engine(age)
    };
    let mut history: Vec<(BTreeMap<&'static str, u64>, usize)> = Vec::new();
    let mut removed_incidents = 0;
    let mut removed_changes = 0;
    let mut removed_silences = 0;
    for k in 0..ROUNDS {
        let names: Vec<String> = (0..PER_ROUND).map(|i| format!("R{k}N{i}")).collect();
        let ids = r.open(&names).await;
        r.engine
            .ingest(vec![change(format!("deploy {k}"), r.now())])
            .await
            .expect("change");
        // A maintenance silence for a host that is never seen again, ending in an hour.
        r.engine
            .put_silence(
                SilenceSpec {
                    id: None,
                    matchers: vec![MatcherSpec::Text(format!("instance=host-{k}"))],
                    starts_at: None,
                    ends_at: r.now() + jiff::SignedDuration::from_hours(1),
                    created_by: "ann".into(),
                    comment: "maintenance".into(),
                },
                Actor::user("ann"),
            )
            .await
            .expect("silence");
        for id in &ids {
            let n = notification(&format!("incident/sms/{id}"), Some(id), r.now());
            let address = format!("+1555{k:04}");
            deliver(&log, store.as_ref(), &n, SMS, true, Some(&address)).await;
        }
        r.resolve_alerts(&names).await;
        r.close(&ids).await;
        r.advance(DAY).await;
        let report = policy
            .run_guarded::<_, std::io::Sink>(store.as_ref(), r.now(), None, &guard)
            .await
            .expect("sweep");
        assert_eq!(report.raced, 0, "nothing runs beside this sweep");
        removed_incidents += report.incidents;
        removed_changes += report.changes;
        removed_silences += report.silences;
        let pending = r.scheduler.pending().await.expect("pending").len();
        history.push((counts(store.as_ref()).await, pending));
    }
    let opened = (ROUNDS * PER_ROUND) as u64;
    assert!(
        removed_incidents >= opened - (AGE_DAYS + 2) * PER_ROUND as u64 - 2,
        "removed {removed_incidents} of {opened}"
    );
    assert!(removed_changes >= (ROUNDS as u64) - AGE_DAYS - 2);
    assert!(removed_silences >= (ROUNDS as u64) - AGE_DAYS - 2);
    let (last, _) = history.last().expect("rounds");
    // What is left is about one age's worth (+ a round and the kept high-water marks),
    // not the whole stream.
    let bound = (AGE_DAYS + 2) * PER_ROUND as u64 + 2;
    assert!(last["incidents"] <= bound, "{last:?}");
    assert!(last["alerts"] <= bound, "{last:?}");
    assert!(last["changes"] <= AGE_DAYS + 1, "{last:?}");
    assert!(last["silences"] <= AGE_DAYS + 1, "{last:?}");
    assert!(last["groups"] <= PER_ROUND as u64, "{last:?}");
    // Every table (and the scheduler) stops growing once the age is reached: the last
    // rounds hold no more than the rounds just after the age did.
    let settled = &history[(AGE_DAYS as usize + 3)..(AGE_DAYS as usize + 10)];
    let tail = &history[ROUNDS - 10..];
    for t in Table::ALL {
        let early = settled.iter().map(|(c, _)| c[t.name()]).max().unwrap_or(0);
        let late = tail.iter().map(|(c, _)| c[t.name()]).max().unwrap_or(0);
        assert!(
            late <= early,
            "{} keeps growing: {early} after the age, {late} at the end ({:?})",
            t.name(),
            history.iter().map(|(c, _)| c[t.name()]).collect::<Vec<_>>()
        );
    }
    let early = settled.iter().map(|(_, p)| *p).max().unwrap_or(0);
    let late = tail.iter().map(|(_, p)| *p).max().unwrap_or(0);
    assert!(
        late <= early,
        "scheduler jobs keep growing: {early} → {late}"
    );
}

#[tokio::test]
async fn a_steady_stream_stays_bounded_on_redb() {
    steady_stream(&redb()).await;
}

#[tokio::test]
async fn a_steady_stream_stays_bounded_in_memory() {
    steady_stream(&Memory(Arc::new(MemoryStore::new()))).await;
}

// ----- the one-commit race --------------------------------------------------------------

/// A store that, on the first batch carrying a precondition, first commits
/// `sneak` (the engine writing at that very moment), then the batch.
struct Racing<S> {
    inner: S,
    sneak: parking_lot::Mutex<Option<WriteBatch>>,
    raced: AtomicBool,
}

#[async_trait]
impl<S: Store> Store for Racing<S> {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(table, key).await
    }
    async fn scan(&self, table: Table, scan: Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.scan(table, scan).await
    }
    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch
            .ops
            .iter()
            .any(|op| matches!(op, WriteOp::Expect { .. }))
        {
            let sneak = self.sneak.lock().take();
            if let Some(b) = sneak {
                self.inner.commit(b).await?;
                self.raced.store(true, Ordering::SeqCst);
            }
        }
        self.inner.commit(batch).await
    }
    async fn count(&self, table: Table) -> Result<u64, StoreError> {
        self.inner.count(table).await
    }
}

fn t(days: u64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + (days * 86_400) as i64).expect("ts")
}

fn closed_incident(number: u64, alerts: &[&str]) -> Incident {
    let mut inc: Incident = serde_json::from_value(serde_json::json!({
        "id": Incident::id_for(number),
        "number": number,
        "title": format!("incident {number}"),
        "state": "closed",
        "severity": "critical",
        "urgency": "high",
        "group_key": format!("{{}}:{{alertname=\"A{number}\"}}"),
        "route": "root",
        "receiver": "oncall",
        "created_at": t(0),
        "updated_at": t(1),
        "resolved_at": t(1),
        "closed_at": t(1),
        "alerts": [],
    }))
    .expect("incident");
    inc.alerts = alerts
        .iter()
        .map(|a| serde_json::from_value(Value::String((*a).into())).expect("fingerprint"))
        .collect();
    inc.state = IncidentState::Closed;
    inc
}

fn retired_alert(last_seen: Timestamp, incident: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "last_seen": last_seen, "groups": [], "incident_id": incident,
    }))
    .expect("json")
}

/// Two old closed incidents in one chunk, each with a retired alert; the first one's
/// alert is written again (fired for a new incident) exactly at the sweep's commit.
/// It survives with what the engine wrote, its incident stays whole for a later
/// sweep, and the other incident still goes; the next sweep takes the first incident
/// but not the re-fired alert.
async fn a_record_changed_at_the_commit_survives<S: Store>(inner: S) {
    let fa = "00000000000000aa";
    let fb = "00000000000000bb";
    let a = closed_incident(1, &[fa]);
    let b = closed_incident(2, &[fb]);
    let newest = {
        let mut n = closed_incident(3, &[]);
        n.state = IncidentState::Open;
        n.closed_at = None;
        n
    };
    let mut seed = WriteBatch::new();
    for inc in [&a, &b, &newest] {
        seed.put(Table::Incidents, inc.id.clone(), inc)
            .expect("put");
        seed.put_raw(
            Table::Timeline,
            Incident::timeline_key(&inc.id, 1),
            b"{}".to_vec(),
        );
    }
    seed.put_raw(Table::Alerts, fa, retired_alert(t(1), &a.id));
    seed.put_raw(Table::Alerts, fb, retired_alert(t(1), &b.id));
    inner.commit(seed).await.expect("seed");
    let refired = retired_alert(t(40), "inc-0000000009");
    let mut sneak = WriteBatch::new();
    sneak.put_raw(Table::Alerts, fa, refired.clone());
    let s = Racing {
        inner,
        sneak: parking_lot::Mutex::new(Some(sneak)),
        raced: AtomicBool::new(false),
    };
    let policy = RetentionPolicy::for_engine(30 * DAY);
    let report = policy.run(&s, t(40)).await.expect("sweep");
    assert!(
        s.raced.load(Ordering::SeqCst),
        "the engine wrote at the commit"
    );
    assert_eq!(report.raced, 1, "{report:?}");
    assert_eq!((report.incidents, report.alerts), (1, 1), "{report:?}");
    assert_eq!(
        s.get(Table::Alerts, fa).await.expect("get"),
        Some(refired.clone()),
        "the re-fired alert keeps what the engine wrote"
    );
    assert!(s.get(Table::Incidents, &a.id).await.expect("get").is_some());
    assert_eq!(
        s.scan(Table::Timeline, Scan::prefix(format!("{}/", a.id)))
            .await
            .expect("scan")
            .len(),
        1,
        "the raced incident stays whole"
    );
    assert!(s.get(Table::Incidents, &b.id).await.expect("get").is_none());
    assert!(s.get(Table::Alerts, fb).await.expect("get").is_none());

    // Next sweep: the incident goes; the alert, seen after it closed, stays.
    let again = policy.run(&s, t(41)).await.expect("sweep");
    assert_eq!((again.incidents, again.alerts, again.raced), (1, 0, 0));
    assert!(s.get(Table::Incidents, &a.id).await.expect("get").is_none());
    assert_eq!(s.get(Table::Alerts, fa).await.expect("get"), Some(refired));
}

#[tokio::test]
async fn a_record_changed_at_the_commit_survives_in_memory() {
    a_record_changed_at_the_commit_survives(MemoryStore::new()).await;
}

#[tokio::test]
async fn a_record_changed_at_the_commit_survives_on_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path().join("r.redb")).expect("open");
    a_record_changed_at_the_commit_survives(s).await;
}

// ----- abandoned notifications ----------------------------------------------------------

/// An old closed incident whose notification never settles (its channel is gone): it
/// stays while the notification is younger than age + grace, goes with all its rows
/// once older, counted as abandoned. An incident whose unsettled notification was
/// active recently stays. An orphaned never-settled notification goes the same way.
async fn abandoned_notifications_release_their_incident(s: Arc<dyn Store>) {
    let log = NotificationLog::new(s.clone());
    let stuck = closed_incident(1, &[]);
    let busy = closed_incident(2, &[]);
    let newest = {
        let mut n = closed_incident(3, &[]);
        n.state = IncidentState::Open;
        n.closed_at = None;
        n
    };
    let mut b = WriteBatch::new();
    for inc in [&stuck, &busy, &newest] {
        b.put(Table::Incidents, inc.id.clone(), inc).expect("put");
    }
    s.commit(b).await.expect("seed");
    let n_stuck = notification("incident/sms/n-stuck", Some(&stuck.id), t(1));
    let n_orphan = notification("incident/sms/n-orphan", Some("inc-gone"), t(1));
    // Retried recently: still being worked on.
    let n_busy = notification("incident/sms/n-busy", Some(&busy.id), t(33));
    for n in [&n_stuck, &n_orphan, &n_busy] {
        deliver(&log, s.as_ref(), n, SMS, false, Some("+15550000")).await;
    }
    assert_eq!(log.in_flight(0).await.expect("in flight").len(), 3);
    let policy = RetentionPolicy::for_engine(30 * DAY);
    assert_eq!(
        policy.abandoned_notification_grace,
        Some(signalcraft_store::retention::ABANDONED_NOTIFICATION_GRACE)
    );
    // Day 37: closed 36 days ago, the notification silent 36 days < 30 + 7: kept.
    let early = policy.run(s.as_ref(), t(37)).await.expect("sweep");
    assert_eq!(
        (early.incidents, early.abandoned_notifications),
        (0, 0),
        "{early:?}"
    );
    assert_eq!(log.in_flight(0).await.expect("in flight").len(), 3);
    // Day 39: silent 38 days > 37: abandoned, the incident and every row go; the busy
    // incident (its notification active on day 33) stays whole.
    let late = policy.run(s.as_ref(), t(39)).await.expect("sweep");
    assert_eq!(late.incidents, 1, "{late:?}");
    assert_eq!(late.abandoned_notifications, 2, "stuck + orphan: {late:?}");
    assert!(
        s.get(Table::Incidents, &stuck.id)
            .await
            .expect("get")
            .is_none()
    );
    assert!(log.trail(&stuck.id).await.expect("trail").is_empty());
    assert!(log.state(&n_stuck.id).await.expect("state").is_none());
    assert!(log.state(&n_orphan.id).await.expect("state").is_none());
    assert!(
        s.get(Table::Incidents, &busy.id)
            .await
            .expect("get")
            .is_some()
    );
    let left = log.in_flight(0).await.expect("in flight");
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(log.state(&n_busy.id).await.expect("state").is_some());
    // With the grace off, nothing is ever abandoned.
    let keep = RetentionPolicy {
        abandoned_notification_grace: None,
        ..policy
    };
    let never = keep.run(s.as_ref(), t(400)).await.expect("sweep");
    assert_eq!((never.incidents, never.abandoned_notifications), (0, 0));
}

#[tokio::test]
async fn abandoned_notifications_in_memory() {
    abandoned_notifications_release_their_incident(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn abandoned_notifications_on_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path().join("r.redb")).expect("open");
    abandoned_notifications_release_their_incident(Arc::new(s)).await;
}

/// A throttle slot in the past goes once older than the age; a current one stays.
#[tokio::test]
async fn stale_throttle_slots_go() {
    let s: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let log = NotificationLog::new(s.clone());
    let newest = {
        let mut n = closed_incident(1, &[]);
        n.state = IncidentState::Open;
        n.closed_at = None;
        n
    };
    let mut b = WriteBatch::new();
    b.put(Table::Incidents, newest.id.clone(), &newest)
        .expect("put");
    s.commit(b).await.expect("seed");
    let old = notification("incident/sms/n-old", Some(&newest.id), t(1));
    let new = notification("incident/sms/n-new", Some(&newest.id), t(39));
    deliver(&log, s.as_ref(), &old, SMS, true, Some("+1old")).await;
    deliver(&log, s.as_ref(), &new, SMS, true, Some("+1new")).await;
    assert!(
        log.throttle_slot("sms", "+1old")
            .await
            .expect("slot")
            .is_some()
    );
    let report = RetentionPolicy::for_engine(30 * DAY)
        .run(s.as_ref(), t(40))
        .await
        .expect("sweep");
    assert_eq!(report.notification_log, 1, "one slot: {report:?}");
    assert_eq!(log.throttle_slot("sms", "+1old").await.expect("slot"), None);
    assert!(
        log.throttle_slot("sms", "+1new")
            .await
            .expect("slot")
            .is_some()
    );
    // The open incident's trail is untouched.
    assert_eq!(log.trail(&newest.id).await.expect("trail").len(), 2);
}

/// Email thread-root marks go once sent before the cutoff with their incident gone
/// (or naming none); a mark of an existing incident, a recent one and one without a
/// time (written before marks carried one) stay.
#[tokio::test]
async fn old_thread_roots_of_gone_incidents_go() {
    let s: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let open = {
        let mut n = closed_incident(1, &[]);
        n.state = IncidentState::Open;
        n.closed_at = None;
        n
    };
    let mark = |incident: Option<&str>, day: u64| ThreadRoot {
        incident: incident.map(str::to_owned),
        at: t(day),
    };
    let key = |thread: &str| format!("{THREAD_ROOT_PREFIX}smtp/{thread}");
    let mut b = WriteBatch::new();
    b.put(Table::Incidents, open.id.clone(), &open)
        .expect("put");
    for (thread, m) in [
        ("gone/a@x", mark(Some("inc-gone"), 1)),
        ("open/a@x", mark(Some(&open.id), 1)),
        ("recent/a@x", mark(Some("inc-gone-too"), 39)),
        ("group/a@x", mark(None, 1)),
    ] {
        b.put(Table::NotificationLog, key(thread), &m).expect("put");
    }
    b.put_raw(Table::NotificationLog, key("legacy/a@x"), b"{}".to_vec());
    s.commit(b).await.expect("seed");

    let report = RetentionPolicy::for_engine(30 * DAY)
        .run(s.as_ref(), t(40))
        .await
        .expect("sweep");
    assert_eq!(report.notification_log, 2, "{report:?}");
    let left: Vec<String> = s
        .scan(Table::NotificationLog, Scan::prefix(THREAD_ROOT_PREFIX))
        .await
        .expect("scan")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        left,
        [key("legacy/a@x"), key("open/a@x"), key("recent/a@x")],
        "old marks of gone incidents and without incident went"
    );
}
