//! `RetentionPolicy::for_engine` over the records the engine writes (real `Incident`
//! and `AlertRecord` values), on redb and in memory: only closed incidents older than
//! the age go; an alert goes only with the last incident listing it, once retired and
//! not seen since, or, listed by none, once retired and last seen before the cutoff;
//! the counters' high-water marks stay; a guard keeps what a live engine holds.

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use signalcraft_core::engine::AlertRecord;
use signalcraft_core::incident::{Incident, IncidentState, Urgency};
use signalcraft_core::memory::MemoryStore;
use signalcraft_core::model::{Event, Fingerprint, Severity};
use signalcraft_core::store::{Scan, Store, Table, WriteBatch};
use signalcraft_core::testing::fixtures::firing_alert;
use signalcraft_store::RedbStore;
use signalcraft_store::RetentionPolicy;
use signalcraft_store::retention::RetentionGuard;

const DAY: i64 = 86_400;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("ts")
}

fn incident(
    number: u64,
    state: IncidentState,
    closed_at: Option<Timestamp>,
    alerts: &[Fingerprint],
    policy: Option<&str>,
    cursor: u64,
) -> Incident {
    Incident {
        id: Incident::id_for(number),
        number,
        title: format!("incident {number}"),
        state,
        severity: Severity::Critical,
        urgency: Urgency::High,
        service: None,
        group_key: format!("{{}}:{{alertname=\"A{number}\"}}"),
        route: "root".into(),
        receiver: "oncall".into(),
        group_labels: Default::default(),
        escalation_policy: policy.map(str::to_string),
        assignees: Vec::new(),
        roles: BTreeMap::new(),
        notes: Vec::new(),
        runbooks: Vec::new(),
        alerts: alerts.to_vec(),
        created_at: t(0),
        updated_at: closed_at.unwrap_or(t(0)),
        acknowledged_at: None,
        mitigated_at: None,
        resolved_at: closed_at,
        closed_at: closed_at.filter(|_| state == IncidentState::Closed),
        timeline_len: 2,
        paging_generation: 0,
        round_robin_cursor: cursor,
    }
}

/// An alert record: retired (no groups) unless `active`, last seen at `last_seen`.
fn alert(name: &str, last_seen: Timestamp, active: bool) -> AlertRecord {
    let Event::Alert(a) = firing_alert(name, "db-1:9100") else {
        panic!("fixture is an alert")
    };
    AlertRecord {
        fingerprint: a.fingerprint(),
        alert: a,
        first_seen: t(0),
        last_seen,
        resolved_at: (!active).then_some(last_seen),
        groups: if active {
            vec!["{}:{alertname=\"x\"}".into()]
        } else {
            Vec::new()
        },
        payload_elided: false,
    }
}

fn put(b: &mut WriteBatch, i: &Incident) {
    b.put(Table::Incidents, i.id.clone(), i).expect("encode");
    for seq in 0..i.timeline_len {
        b.put(
            Table::Timeline,
            Incident::timeline_key(&i.id, seq),
            &serde_json::json!({"seq": seq, "kind": "note"}),
        )
        .expect("encode");
    }
}

fn put_alert(b: &mut WriteBatch, a: &AlertRecord) {
    b.put(Table::Alerts, a.fingerprint.to_string(), a)
        .expect("encode");
}

async fn keys<S: Store>(s: &S, table: Table) -> Vec<String> {
    s.scan(table, Scan::all())
        .await
        .expect("scan")
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

struct Guard {
    incidents: HashSet<String>,
    alerts: HashSet<String>,
}

impl RetentionGuard for Guard {
    fn incident_in_use(&self, id: &str) -> bool {
        self.incidents.contains(id)
    }
    fn alert_in_use(&self, key: &str) -> bool {
        self.alerts.contains(key)
    }
}

async fn engine_records_by_the_rules<S: Store>(s: &S) {
    let closed = IncidentState::Closed;
    let old = Some(t(DAY)); // 99 days before `now`
    let a_gone = alert("Gone", t(DAY), false); // retired, not seen since: removed
    let a_refired = alert("Refired", t(80 * DAY), false); // seen after 1 closed, recently
    let a_active = alert("Active", t(DAY), true); // still in a group
    let a_shared = alert("Shared", t(DAY), false); // also listed by an open incident
    let a_guarded = alert("Guarded", t(DAY), false); // the guard says in use
    let a_twice = alert("Twice", t(DAY), false); // listed by two removed incidents
    // Listed by no incident (resolved within group_wait, silenced):
    let a_unlisted_old = alert("UnlistedOld", t(DAY), false); // removed
    let a_unlisted_recent = alert("UnlistedRecent", t(80 * DAY), false); // kept
    let a_unlisted_active = alert("UnlistedActive", t(DAY), true); // kept
    let fp = |a: &AlertRecord| a.fingerprint;
    let incidents = [
        incident(
            1,
            closed,
            old,
            &[
                fp(&a_gone),
                fp(&a_refired),
                fp(&a_active),
                fp(&a_shared),
                fp(&a_guarded),
                fp(&a_twice),
            ],
            Some("pol-a"),
            0,
        ),
        // Resolved long ago but never closed: it can re-open, it stays.
        incident(2, IncidentState::Resolved, old, &[], None, 0),
        incident(3, IncidentState::Open, None, &[fp(&a_shared)], None, 0),
        // Closed recently.
        incident(4, closed, Some(t(90 * DAY)), &[], None, 0),
        // Highest round-robin cursor of pol-b: stays although old and closed.
        incident(5, closed, old, &[], Some("pol-b"), 7),
        incident(6, closed, old, &[], Some("pol-b"), 3),
        // In the engine's memory (the guard): stays.
        incident(7, closed, old, &[], None, 0),
        incident(8, closed, old, &[fp(&a_twice)], Some("pol-a"), 4),
        // pol-a's highest cursor: stays.
        incident(9, closed, old, &[], Some("pol-a"), 5),
        // The highest number: stays, whatever its age.
        incident(10, closed, old, &[], None, 0),
    ];
    let mut b = WriteBatch::new();
    for i in &incidents {
        put(&mut b, i);
    }
    for a in [
        &a_gone,
        &a_refired,
        &a_active,
        &a_shared,
        &a_guarded,
        &a_twice,
        &a_unlisted_old,
        &a_unlisted_recent,
        &a_unlisted_active,
    ] {
        put_alert(&mut b, a);
    }
    s.commit(b).await.expect("commit");

    let guard = Guard {
        incidents: HashSet::from([Incident::id_for(7)]),
        alerts: HashSet::from([a_guarded.fingerprint.to_string()]),
    };
    let policy = RetentionPolicy {
        page_size: 3, // several scan pages and removal batches
        ..RetentionPolicy::for_engine(Duration::from_secs(30 * DAY as u64))
    };
    let mut archive = Vec::new();
    let report = policy
        .run_guarded(s, t(100 * DAY), Some(&mut archive), &guard)
        .await
        .expect("retention");
    let gone = [1u64, 6, 8];
    assert_eq!(report.incidents, 3, "{report:?}");
    assert_eq!(
        report.alerts, 3,
        "Gone and Twice (once) with their incidents, UnlistedOld: {report:?}"
    );
    assert_eq!(report.timeline_entries, 6, "{report:?}");
    assert_eq!(report.archived, 6, "{report:?}");
    let left: Vec<String> = keys(s, Table::Incidents).await;
    let want: Vec<String> = (1..=10u64)
        .filter(|n| !gone.contains(n))
        .map(Incident::id_for)
        .collect();
    assert_eq!(left, want);
    let mut alerts_left = keys(s, Table::Alerts).await;
    alerts_left.sort();
    let mut want_alerts: Vec<String> = [
        &a_refired,
        &a_active,
        &a_shared,
        &a_guarded,
        &a_unlisted_recent,
        &a_unlisted_active,
    ]
    .iter()
    .map(|a| a.fingerprint.to_string())
    .collect();
    want_alerts.sort();
    assert_eq!(alerts_left, want_alerts);
    for n in gone {
        assert!(
            s.scan(
                Table::Timeline,
                Scan::prefix(format!("{}/", Incident::id_for(n)))
            )
            .await
            .expect("scan")
            .is_empty()
        );
    }
    assert_eq!(
        s.count(Table::Timeline).await.expect("count"),
        2 * 7,
        "the 7 incidents left keep their timelines"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(archive)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let archived: HashSet<String> = lines
        .iter()
        .map(|l| l["incident"].as_str().expect("incident").to_string())
        .collect();
    assert_eq!(
        archived,
        gone.iter()
            .map(|n| Incident::id_for(*n))
            .collect::<HashSet<_>>()
    );
    assert!(lines.iter().all(|l| l["entry"]["kind"] == "note"));

    // Once the engine lets go of 7, the next sweep takes it; nothing else changes.
    let again = policy
        .run_guarded::<S, std::io::Sink>(
            s,
            t(100 * DAY),
            None,
            &Guard {
                incidents: HashSet::new(),
                alerts: guard.alerts.clone(),
            },
        )
        .await
        .expect("retention");
    assert_eq!(again.incidents, 1, "{again:?}");
    assert!(
        s.get(Table::Incidents, &Incident::id_for(7))
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn engine_records_on_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path().join("r.redb")).expect("open");
    engine_records_by_the_rules(&s).await;
}

#[tokio::test]
async fn engine_records_in_memory() {
    engine_records_by_the_rules(&MemoryStore::new()).await;
}

/// In use from the `after`-th question on (the engine took it back meanwhile).
struct LateGuard {
    key: String,
    asked: std::sync::atomic::AtomicUsize,
    after: usize,
}

impl LateGuard {
    fn in_use(&self, key: &str) -> bool {
        key == self.key
            && self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= self.after
    }
}

struct LateIncident(LateGuard);
impl RetentionGuard for LateIncident {
    fn incident_in_use(&self, id: &str) -> bool {
        self.0.in_use(id)
    }
}

struct LateAlert(LateGuard);
impl RetentionGuard for LateAlert {
    fn alert_in_use(&self, key: &str) -> bool {
        self.0.in_use(key)
    }
}

/// The guard is asked again right before the commit: an incident or alert the engine
/// took back while the chunk was read stays (with everything of that incident).
#[tokio::test]
async fn the_guard_is_asked_again_before_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path().join("r.redb")).expect("open");
    let a1 = alert("One", t(DAY), false);
    let a2 = alert("Two", t(DAY), false);
    let mut b = WriteBatch::new();
    let closed = IncidentState::Closed;
    put(
        &mut b,
        &incident(1, closed, Some(t(DAY)), &[a1.fingerprint], None, 0),
    );
    put(
        &mut b,
        &incident(2, closed, Some(t(DAY)), &[a2.fingerprint], None, 0),
    );
    put(
        &mut b,
        &incident(3, IncidentState::Open, None, &[], None, 0),
    );
    put_alert(&mut b, &a1);
    put_alert(&mut b, &a2);
    s.commit(b).await.expect("commit");
    let policy = RetentionPolicy::for_engine(Duration::from_secs(30 * DAY as u64));

    // Alert One: free when its incident is read, in use at the commit.
    let guard = LateAlert(LateGuard {
        key: a1.fingerprint.to_string(),
        asked: Default::default(),
        after: 1,
    });
    let report = policy
        .run_guarded::<_, std::io::Sink>(&s, t(100 * DAY), None, &guard)
        .await
        .expect("retention");
    assert_eq!((report.incidents, report.alerts), (2, 1), "{report:?}");
    assert!(
        s.get(Table::Alerts, &a1.fingerprint.to_string())
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        s.get(Table::Alerts, &a2.fingerprint.to_string())
            .await
            .expect("get")
            .is_none()
    );

    // Incident 4: free at the first two questions (setting aside, reading), in use at
    // the commit: it stays whole, timeline and alert included.
    let a4 = alert("Four", t(DAY), false);
    let mut b = WriteBatch::new();
    put(
        &mut b,
        &incident(4, closed, Some(t(DAY)), &[a4.fingerprint], None, 0),
    );
    put(
        &mut b,
        &incident(5, IncidentState::Open, None, &[], None, 0),
    );
    put_alert(&mut b, &a4);
    s.commit(b).await.expect("commit");
    let guard = LateIncident(LateGuard {
        key: Incident::id_for(4),
        asked: Default::default(),
        after: 2,
    });
    let report = policy
        .run_guarded::<_, std::io::Sink>(&s, t(100 * DAY), None, &guard)
        .await
        .expect("retention");
    assert_eq!(report.incidents, 0, "{report:?}");
    assert!(
        s.get(Table::Incidents, &Incident::id_for(4))
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        s.scan(
            Table::Timeline,
            Scan::prefix(format!("{}/", Incident::id_for(4)))
        )
        .await
        .expect("scan")
        .len(),
        2
    );
    assert!(
        s.get(Table::Alerts, &a4.fingerprint.to_string())
            .await
            .expect("get")
            .is_some()
    );
}

/// An archive that cannot be written (a full disk): the sweep fails with the archive
/// named and removes nothing, so no timeline is lost.
#[tokio::test]
async fn a_failing_archive_removes_nothing() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            ))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path().join("r.redb")).expect("open");
    let a = alert("One", t(DAY), false);
    let mut b = WriteBatch::new();
    put(
        &mut b,
        &incident(
            1,
            IncidentState::Closed,
            Some(t(DAY)),
            &[a.fingerprint],
            None,
            0,
        ),
    );
    put(
        &mut b,
        &incident(2, IncidentState::Open, None, &[], None, 0),
    );
    put_alert(&mut b, &a);
    s.commit(b).await.expect("commit");
    let policy = RetentionPolicy::for_engine(Duration::from_secs(30 * DAY as u64));
    let err = policy
        .run_with_archive(&s, t(100 * DAY), &mut Full)
        .await
        .expect_err("the archive is full");
    assert!(err.to_string().contains("timeline archive"), "{err}");
    assert!(err.to_string().contains("no space left"), "{err}");
    assert_eq!(keys(&s, Table::Incidents).await.len(), 2);
    assert_eq!(s.count(Table::Timeline).await.expect("count"), 4);
    assert_eq!(s.count(Table::Alerts).await.expect("count"), 1);
}

/// The engine stores a decision's timeline entries as one compact run record; the
/// archive still gets one line per entry, each whole (its own seq, at and actor).
#[tokio::test]
async fn a_timeline_run_is_archived_one_full_entry_per_line() {
    use signalcraft_core::incident::timeline::{decode_stored, encode_run};
    use signalcraft_core::incident::{Actor, EntryKind, TimelineEntry};
    let s = MemoryStore::new();
    let old = incident(1, IncidentState::Closed, Some(t(DAY)), &[], None, 0);
    let newest = incident(2, IncidentState::Open, None, &[], None, 0);
    let entries: Vec<TimelineEntry> = (0..3)
        .map(|i| TimelineEntry {
            seq: 4 + i,
            at: t(DAY - 10 + (i as i64 / 2)),
            actor: if i == 0 {
                Actor::System
            } else {
                Actor::user("ana")
            },
            kind: EntryKind::Note {
                text: format!("note {i}"),
            },
        })
        .collect();
    let run = encode_run(&entries).expect("encode run");
    assert_eq!(decode_stored(&run).expect("decode"), entries);
    let mut b = WriteBatch::new();
    b.put(Table::Incidents, old.id.clone(), &old)
        .expect("encode");
    b.put(Table::Incidents, newest.id.clone(), &newest)
        .expect("encode");
    b.put_raw(Table::Timeline, Incident::timeline_key(&old.id, 4), run);
    s.commit(b).await.expect("commit");

    let mut archive = Vec::new();
    let report = RetentionPolicy::for_engine(Duration::from_secs(30 * DAY as u64))
        .run_with_archive(&s, t(40 * DAY), &mut archive)
        .await
        .expect("sweep");
    assert_eq!(report.incidents, 1, "{report:?}");
    assert_eq!(report.timeline_entries, 1, "one stored record");
    assert_eq!(report.archived, 3, "one line per entry: {report:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(archive)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let got: Vec<TimelineEntry> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["incident"], old.id.as_str());
            serde_json::from_value(l["entry"].clone()).expect("a whole entry")
        })
        .collect();
    assert_eq!(got, entries);
}

// ----- the notification log and the audit log -------------------------------------

#[path = "support/delivery_log.rs"]
mod delivery_log;

mod logs {
    use std::sync::Arc;

    use super::*;
    use crate::delivery_log::{Via, attempt, deliver, notification, state};
    use signalcraft_core::clock::ManualClock;
    use signalcraft_core::delivery::log::{DeliveryStatus, NotificationLog};
    use signalcraft_core::engine::{Engine, EngineConfig};
    use signalcraft_core::incident::{Actor, AuditQuery};
    use signalcraft_core::memory::MemoryScheduler;

    /// Every notification of these tests goes to Slack.
    const SLACK: Via = Via {
        channel: "slack",
        target: "#ops",
    };

    /// The encoded id as it appears in notification-log keys.
    fn enc(id: &str) -> String {
        id.replace('%', "%25").replace('/', "%2F")
    }

    async fn delivery_trails_go_with_their_incidents(s: Arc<dyn Store>) {
        let log = NotificationLog::new(s.clone());
        let closed = IncidentState::Closed;
        let old_inc = incident(1, closed, Some(t(DAY)), &[], None, 0);
        // Old and closed too, but one of its notifications is still in flight.
        let busy_inc = incident(2, closed, Some(t(DAY)), &[], None, 0);
        let open_inc = incident(3, IncidentState::Open, None, &[], None, 0);
        let mut b = WriteBatch::new();
        for i in [&old_inc, &busy_inc, &open_inc] {
            put(&mut b, i);
        }
        s.commit(b).await.expect("commit");

        let n_old = notification("incident/slack/n-old", Some(&old_inc.id), t(DAY));
        let n_old2 = notification("page/slack/n-old2", Some(&old_inc.id), t(DAY + 5));
        let n_busy = notification("incident/slack/n-busy", Some(&busy_inc.id), t(DAY));
        let n_open = notification("incident/slack/n-open", Some(&open_inc.id), t(DAY));
        // Its incident was removed before the trail went with it (an older sweep).
        let n_orphan = notification("incident/slack/n-orphan", Some("inc-gone"), t(DAY));
        // No incident at all (e.g. a test message), old and recent.
        let n_plain_old = notification("test/slack/n-plain-old", None, t(DAY));
        let n_plain_new = notification("test/slack/n-plain-new", None, t(95 * DAY));
        for n in [
            &n_old,
            &n_old2,
            &n_open,
            &n_orphan,
            &n_plain_old,
            &n_plain_new,
        ] {
            deliver(&log, s.as_ref(), n, SLACK, true, None).await;
        }
        deliver(&log, s.as_ref(), &n_busy, SLACK, false, None).await;
        assert_eq!(log.trail(&old_inc.id).await.expect("trail").len(), 2);
        assert_eq!(log.trail("inc-gone").await.expect("trail").len(), 1);
        let open_trail = log.trail(&open_inc.id).await.expect("trail");
        let busy_trail = log.trail(&busy_inc.id).await.expect("trail");
        assert_eq!((open_trail.len(), busy_trail.len()), (1, 1));

        let policy = RetentionPolicy {
            page_size: 2, // several scan pages and batches
            // The busy notification stays in flight however old it is here; when
            // one counts as abandoned is `retention_bounded.rs`'s subject.
            abandoned_notification_grace: None,
            ..RetentionPolicy::for_engine(Duration::from_secs(30 * DAY as u64))
        };
        let report = policy
            .run(s.as_ref(), t(100 * DAY))
            .await
            .expect("retention");
        assert_eq!(report.incidents, 1, "only the settled old one: {report:?}");
        // n-old, n-old2: 3 rows + trail index + provider index each; n-orphan: the
        // same; n-plain-old: 3 rows + provider index (no trail index).
        assert_eq!(report.notification_log, 5 + 5 + 5 + 4, "{report:?}");

        // The removed incident's trail is gone, and so is every row of it.
        assert!(log.trail(&old_inc.id).await.expect("trail").is_empty());
        assert!(log.trail("inc-gone").await.expect("trail").is_empty());
        for n in [&n_old, &n_old2, &n_orphan, &n_plain_old] {
            assert!(log.state(&n.id).await.expect("state").is_none(), "{}", n.id);
            assert!(log.records(&n.id).await.expect("records").is_empty());
            let pid = format!("pm-{}", n.id);
            assert_eq!(log.by_provider_id(&pid).await.expect("provider"), None);
        }
        let left: Vec<String> = keys(&s, Table::NotificationLog).await;
        for n in [&n_old, &n_old2, &n_orphan, &n_plain_old] {
            assert!(
                !left.iter().any(|k| k.contains(&enc(&n.id))),
                "{} left rows: {left:#?}",
                n.id
            );
        }
        // What stays is whole: the open incident's trail, the busy incident (with its
        // in-flight notification, which the pipeline will still read), the recent one.
        assert_eq!(log.trail(&open_inc.id).await.expect("trail"), open_trail);
        assert_eq!(log.trail(&busy_inc.id).await.expect("trail"), busy_trail);
        assert!(
            s.get(Table::Incidents, &busy_inc.id)
                .await
                .expect("get")
                .is_some()
        );
        assert_eq!(
            s.scan(Table::Timeline, Scan::prefix(format!("{}/", busy_inc.id)))
                .await
                .expect("scan")
                .len(),
            2,
            "the busy incident stays whole"
        );
        assert_eq!(log.in_flight(0).await.expect("in flight").len(), 1);
        let st = log.state(&n_busy.id).await.expect("state").expect("kept");
        assert!(!st.finished);
        assert!(log.state(&n_open.id).await.expect("state").is_some());
        assert!(log.state(&n_plain_new.id).await.expect("state").is_some());
        assert_eq!(
            log.by_provider_id(&format!("pm-{}", n_open.id))
                .await
                .expect("provider"),
            Some((n_open.id.clone(), 1))
        );

        // Once the attempt's outcome is in, the next sweep takes the busy incident
        // and its trail.
        log.commit_state(
            &state(&n_busy, SLACK, true),
            false,
            false,
            &[&attempt(&n_busy, SLACK, DeliveryStatus::Failed, t(DAY))],
            None,
        )
        .await
        .expect("failed for good");
        let again = policy
            .run(s.as_ref(), t(100 * DAY))
            .await
            .expect("retention");
        assert_eq!(again.incidents, 1, "{again:?}");
        assert_eq!(again.notification_log, 4, "3 rows + trail index: {again:?}");
        assert!(log.trail(&busy_inc.id).await.expect("trail").is_empty());
        assert!(log.in_flight(0).await.expect("in flight").is_empty());
        assert_eq!(log.trail(&open_inc.id).await.expect("trail"), open_trail);
    }

    #[tokio::test]
    async fn delivery_trails_in_memory() {
        delivery_trails_go_with_their_incidents(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn delivery_trails_on_redb() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = RedbStore::open(dir.path().join("r.redb")).expect("open");
        delivery_trails_go_with_their_incidents(Arc::new(s)).await;
    }

    /// Audit entries written by a real engine at two times: those older than the
    /// age go (in chunks), the newer ones stay and read back through `Engine::audit`;
    /// with incidents switched off, no incident is touched.
    async fn old_audit_entries_go(s: Arc<dyn Store>) {
        let clock = ManualClock::new(t(DAY));
        let engine = Engine::builder(EngineConfig::default())
            .store(s.clone())
            .scheduler(Arc::new(MemoryScheduler::new()))
            .clock(Arc::new(clock.clone()))
            .build()
            .expect("engine");
        for i in 0..5 {
            engine
                .audit_write(
                    Actor::user("ana"),
                    "service.put",
                    &format!("service/old-{i}"),
                    serde_json::Value::Null,
                )
                .await
                .expect("audit");
        }
        clock.set(t(80 * DAY));
        for i in 0..2 {
            engine
                .audit_write(
                    Actor::user("bo"),
                    "service.put",
                    &format!("service/new-{i}"),
                    serde_json::Value::Null,
                )
                .await
                .expect("audit");
        }
        let old = incident(1, IncidentState::Closed, Some(t(DAY)), &[], None, 0);
        let newest = incident(2, IncidentState::Open, None, &[], None, 0);
        let mut b = WriteBatch::new();
        put(&mut b, &old);
        put(&mut b, &newest);
        s.commit(b).await.expect("commit");
        let all = AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        };
        assert_eq!(engine.audit(&all).await.expect("audit").len(), 7);

        let policy = RetentionPolicy {
            page_size: 2, // the 5 old entries in three batches
            remove_incidents: false,
            audit_age: Some(Duration::from_secs(30 * DAY as u64)),
            ..RetentionPolicy::for_engine(Duration::from_secs(30 * DAY as u64))
        };
        let report = policy
            .run(s.as_ref(), t(100 * DAY))
            .await
            .expect("retention");
        assert_eq!(report.audit, 5, "{report:?}");
        assert_eq!(report.incidents, 0, "incidents are off: {report:?}");
        assert_eq!(keys(&s, Table::Incidents).await.len(), 2);
        let left = engine.audit(&all).await.expect("audit");
        let targets: Vec<&str> = left.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(targets, ["service/new-1", "service/new-0"], "newest first");
        assert!(left.iter().all(|e| e.at == t(80 * DAY)));

        // Nothing older left: a second run removes nothing; a later one takes the rest.
        let again = policy.run(s.as_ref(), t(100 * DAY)).await.expect("again");
        assert_eq!(again.audit, 0);
        let later = policy.run(s.as_ref(), t(111 * DAY)).await.expect("later");
        assert_eq!(later.audit, 2);
        assert!(engine.audit(&all).await.expect("audit").is_empty());
    }

    #[tokio::test]
    async fn old_audit_entries_go_in_memory() {
        old_audit_entries_go(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn old_audit_entries_go_on_redb() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = RedbStore::open(dir.path().join("r.redb")).expect("open");
        old_audit_entries_go(Arc::new(s)).await;
    }

    /// The default policy keeps the audit log; `for_engine` alone does too.
    #[tokio::test]
    async fn the_audit_log_is_kept_without_an_age() {
        let s = MemoryStore::new();
        let mut b = WriteBatch::new();
        b.put_raw(
            Table::Audit,
            format!("{}/x", signalcraft_core::incident::audit::time_key(t(0))),
            b"{}".to_vec(),
        );
        s.commit(b).await.expect("commit");
        let report = RetentionPolicy::for_engine(Duration::from_secs(DAY as u64))
            .run(&s, t(1000 * DAY))
            .await
            .expect("retention");
        assert_eq!(report.audit, 0);
        assert_eq!(s.count(Table::Audit).await.expect("count"), 1);
    }
}
