//! Journaled ingest (`EngineBuilder::journal`, `Engine::submit`): an event is durable
//! once `submit` returns, decided and committed in the background with the journal's
//! applied mark, replayed by `recover` after a crash, and replayed by the applier
//! itself after a failed commit, without duplicating alerts or incidents.

mod shell_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use shell_support::{alert, at, config};
use signalcraft_core::clock::ManualClock;
use signalcraft_core::engine::{ChannelNotifier, Engine, JOURNAL_APPLIED_KEY, journal_applied};
use signalcraft_core::journal::{Journal, JournalSeq, OnDurable};
use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::model::Event;
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::store::{Scan, Store, StoreError, StoreExt, Table, WriteBatch};
use signalcraft_core::testing::channel::ScriptedChannel;

/// A journal in memory that outlives engines (a "disk" shared across restarts).
#[derive(Default)]
struct TestJournal {
    records: Mutex<Vec<(JournalSeq, Vec<u8>)>>,
    /// Every record ever appended (kept after release).
    appended: Mutex<Vec<Vec<u8>>>,
    last: Mutex<JournalSeq>,
    released: Mutex<JournalSeq>,
}

impl TestJournal {
    /// Puts every record ever appended back up for replay (numbered from 1, as
    /// appended), as if the released records were still on disk.
    fn restore_appended(&self) {
        self.records.lock().extend(
            self.appended
                .lock()
                .iter()
                .enumerate()
                .map(|(i, r)| (i as JournalSeq + 1, r.clone())),
        );
    }
}

#[async_trait]
impl Journal for TestJournal {
    async fn append(&self, record: Vec<u8>) -> Result<JournalSeq, StoreError> {
        self.append_then(record, Box::new(|_| {})).await
    }
    async fn append_then(
        &self,
        record: Vec<u8>,
        on_durable: OnDurable,
    ) -> Result<JournalSeq, StoreError> {
        // The lock is held across the callback: callbacks run in sequence order.
        let mut last = self.last.lock();
        *last += 1;
        let seq = *last;
        self.appended.lock().push(record.clone());
        self.records.lock().push((seq, record));
        on_durable(seq);
        Ok(seq)
    }
    async fn replay(&self, after: JournalSeq) -> Result<Vec<(JournalSeq, Vec<u8>)>, StoreError> {
        Ok(self
            .records
            .lock()
            .iter()
            .filter(|(s, _)| *s > after)
            .cloned()
            .collect())
    }
    async fn release(&self, through: JournalSeq) -> Result<(), StoreError> {
        self.records.lock().retain(|(s, _)| *s > through);
        let mut r = self.released.lock();
        *r = (*r).max(through);
        Ok(())
    }
    fn last_seq(&self) -> JournalSeq {
        *self.last.lock()
    }
}

/// A MemoryStore whose commits can be made to fail or wait.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail: AtomicBool,
    failed: AtomicUsize,
    /// Commits wait while a test holds this for writing.
    gate: tokio::sync::RwLock<()>,
}

#[async_trait]
impl Store for FlakyStore {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(table, key).await
    }
    async fn scan(&self, table: Table, scan: Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.scan(table, scan).await
    }
    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let _open = self.gate.read().await;
        if self.fail.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Io("disk full".into()));
        }
        self.inner.commit(batch).await
    }
    async fn count(&self, table: Table) -> Result<u64, StoreError> {
        self.inner.count(table).await
    }
}

/// The recording channel every test routes to.
fn rec() -> Arc<ScriptedChannel> {
    ScriptedChannel::new("test", "rec")
}

fn engine(
    store: Arc<dyn Store>,
    journal: Arc<dyn Journal>,
    clock: &ManualClock,
    rec: Arc<ScriptedChannel>,
) -> Engine {
    Engine::builder(config())
        .store(store)
        .scheduler(Arc::new(MemoryScheduler::new()) as Arc<dyn Scheduler>)
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(ChannelNotifier::new().with("rec", rec)))
        .in_memory_flush_timers(true)
        .journal(journal)
        .build()
        .expect("engine")
}

/// A started engine on a fresh store and journal, routing to a recording channel.
struct Rig {
    store: Arc<FlakyStore>,
    journal: Arc<TestJournal>,
    clock: ManualClock,
    rec: Arc<ScriptedChannel>,
    e: Engine,
}

async fn started() -> Rig {
    let store = Arc::new(FlakyStore::default());
    let journal = Arc::new(TestJournal::default());
    let clock = ManualClock::new(at(0));
    let rec = rec();
    let e = engine(store.clone(), journal.clone(), &clock, rec.clone());
    e.recover().await.expect("recover");
    Rig {
        store,
        journal,
        clock,
        rec,
        e,
    }
}

async fn alert_count(store: &dyn Store) -> u64 {
    store.count(Table::Alerts).await.expect("count")
}

async fn incident_count(store: &dyn Store) -> u64 {
    store.count(Table::Incidents).await.expect("count")
}

/// Settles with a deadline, so a broken applier fails the test instead of hanging.
async fn settle(e: &Engine) {
    tokio::time::timeout(Duration::from_secs(10), e.journal_settled())
        .await
        .expect("the applier settles")
        .expect("settled");
}

/// Submits `events` while the store's commits are held by `gate`: the submit must
/// wait without appending to the journal; once the gate is released it goes through.
async fn submit_waits_until_released(
    e: &Engine,
    events: Vec<Event>,
    journal: &TestJournal,
    gate: tokio::sync::RwLockWriteGuard<'_, ()>,
) {
    let appended_before = journal.last_seq();
    let waiting = tokio::spawn({
        let e = e.clone();
        async move { e.submit(events).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "submit waits for the applier");
    assert_eq!(
        journal.last_seq(),
        appended_before,
        "and has not appended yet"
    );
    drop(gate);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("submit goes on once the applier caught up")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_events_are_committed_with_the_applied_mark() {
    let Rig {
        store, journal, e, ..
    } = started().await;

    let mut tasks = Vec::new();
    for r in 0..16 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let events = (0..25)
                .map(|i| alert(&format!("A{}", r % 4), &format!("{r}-{i}")))
                .collect();
            e.submit(events).await.expect("submit")
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=16).collect::<Vec<_>>(), "one record per submit");
    settle(&e).await;

    assert_eq!(alert_count(store.as_ref()).await, 400);
    assert_eq!(
        store
            .get_json::<JournalSeq>(Table::Meta, JOURNAL_APPLIED_KEY)
            .await
            .unwrap(),
        Some(16),
        "the store records the last applied record"
    );
    assert_eq!(e.journal_applied_seq(), Some(16));
    assert_eq!(*journal.released.lock(), 16, "applied records are released");
    assert!(journal.records.lock().is_empty());
    assert_eq!(e.pending_flushes().await, 4, "one group per alertname");
}

/// Nothing reached the store (every commit failed) when the process died; the
/// journal still has every submitted record and the next start replays them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_replays_what_the_store_never_got() {
    let store = Arc::new(FlakyStore::default());
    let journal = Arc::new(TestJournal::default());
    let clock = ManualClock::new(at(0));
    let first = engine(store.clone(), journal.clone(), &clock, rec());
    first.recover().await.unwrap();
    first
        .submit(vec![alert("Down", "1"), alert("Down", "2")])
        .await
        .unwrap();
    store.fail.store(true, Ordering::SeqCst);
    first.submit(vec![alert("Up", "1")]).await.unwrap();
    // Wait until the applier tried (and failed) to commit the second record.
    for _ in 0..200 {
        if store.failed.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(store.failed.load(Ordering::SeqCst) > 0, "a commit failed");
    drop(first); // the crash: the applier's retries die with the process
    store.fail.store(false, Ordering::SeqCst);
    let applied = journal_applied(store.as_ref()).await.unwrap();
    assert!(applied <= 2);

    let rec = rec();
    let second = engine(store.clone(), journal.clone(), &clock, rec.clone());
    second.recover().await.unwrap();
    assert_eq!(
        alert_count(store.as_ref()).await,
        3,
        "every submitted alert"
    );
    assert_eq!(journal_applied(store.as_ref()).await.unwrap(), 2);
    // Both groups flush once: nothing was doubled by the replay.
    clock.set(at(30));
    second.run_due_jobs().await.unwrap();
    let sent = rec.calls();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent.iter().map(|n| n.alerts.len()).sum::<usize>(), 3);
    assert_eq!(incident_count(store.as_ref()).await, 2);

    // New submits continue after the replayed records.
    let seq = second.submit(vec![alert("Up", "2")]).await.unwrap();
    assert!(seq > 2);
    settle(&second).await;
    assert_eq!(alert_count(store.as_ref()).await, 4);
}

fn with_raw(name: &str, instance: &str) -> Event {
    let Event::Alert(mut a) = alert(name, instance) else {
        unreachable!()
    };
    a.raw = signalcraft_core::model::RawPayload::from_json(&format!(
        r#"{{"labels": {{"instance": "{instance}"}}, "note": "as received"}}"#
    ))
    .unwrap();
    Event::Alert(a)
}

/// Alerts carrying their raw provider payload go through the journal: the applier
/// decodes their record (the queue holds records, not events) and a restart replays
/// it. Journal records of format version 1 could not be read back with a raw payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_with_raw_payloads_are_applied_and_replayed() {
    let Rig {
        store, journal, e, ..
    } = started().await;
    e.submit(vec![with_raw("Down", "1"), with_raw("Down", "2")])
        .await
        .unwrap();
    settle(&e).await;
    assert_eq!(alert_count(store.as_ref()).await, 2);
    let stored = store
        .scan(Table::Alerts, Scan::default())
        .await
        .unwrap()
        .into_iter()
        .map(|(_, v)| String::from_utf8(v).unwrap())
        .filter(|v| v.contains(r#""note":"as received""#))
        .count();
    assert!(stored >= 2, "the raw payloads reach the store");
    drop(e);

    // A fresh store and the same journal: recover replays both records' alerts.
    let replayed = Arc::new(FlakyStore::default());
    let clock = ManualClock::new(at(0));
    let second = engine(replayed.clone(), journal.clone(), &clock, rec());
    journal.restore_appended();
    second.recover().await.expect("the records decode");
    assert_eq!(alert_count(replayed.as_ref()).await, 2);
}

/// A failed commit in a running engine: the applier replays from the store's mark
/// once the store works again, and every event lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applier_replays_after_a_failed_commit() {
    let Rig {
        store,
        clock,
        rec,
        e,
        ..
    } = started().await;
    e.submit(vec![alert("Down", "1")]).await.unwrap();
    settle(&e).await;

    store.fail.store(true, Ordering::SeqCst);
    e.submit(vec![alert("Down", "2"), alert("Up", "1")])
        .await
        .expect("durable in the journal even though the store fails");
    for _ in 0..200 {
        if store.failed.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(store.failed.load(Ordering::SeqCst) > 0, "a commit failed");
    store.fail.store(false, Ordering::SeqCst);
    // The applier retries on its own: no further submit is needed.
    settle(&e).await;
    assert_eq!(alert_count(store.as_ref()).await, 3);
    e.submit(vec![alert("Up", "2")]).await.unwrap();
    settle(&e).await;
    assert_eq!(alert_count(store.as_ref()).await, 4);
    assert_eq!(journal_applied(store.as_ref()).await.unwrap(), 3);

    clock.set(at(30));
    e.run_due_jobs().await.unwrap();
    let sent = rec.calls();
    assert_eq!(sent.len(), 2, "one notification per group");
    assert_eq!(
        sent.iter().map(|n| n.alerts.len()).sum::<usize>(),
        4,
        "each alert once"
    );
    assert_eq!(incident_count(store.as_ref()).await, 2);
}

/// Without a journal, `submit` is a typed error (and `ingest` still works).
#[tokio::test]
async fn submit_without_a_journal_is_an_error() {
    let e = Engine::builder(config()).build().unwrap();
    let err = e.submit(vec![alert("Down", "1")]).await.unwrap_err();
    assert!(err.to_string().contains("journal"), "{err}");
    assert!(e.journal_settled().await.is_err());
    e.ingest(vec![alert("Down", "1")]).await.unwrap();
}

/// Polls `done` every few milliseconds until it holds or `within` has passed (the
/// caller asserts on the outcome).
async fn wait_for(within: Duration, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A started engine on a gated store that accepts at most `max_lag` unapplied events.
async fn lagging(max_lag: usize) -> (Arc<FlakyStore>, Arc<TestJournal>, Engine) {
    let store = Arc::new(FlakyStore::default());
    let journal = Arc::new(TestJournal::default());
    let e = Engine::builder(config())
        .store(store.clone() as Arc<dyn Store>)
        .clock(Arc::new(ManualClock::new(at(0))))
        .in_memory_flush_timers(true)
        .journal(journal.clone())
        .journal_max_lag(max_lag)
        .build()
        .unwrap();
    e.recover().await.unwrap();
    (store, journal, e)
}

/// Five firing `Down` alerts, instances `<i>-0` … `<i>-4`.
fn batch(i: usize) -> Vec<Event> {
    (0..5).map(|j| alert("Down", &format!("{i}-{j}"))).collect()
}

/// Submit waits while the applier is `journal_max_lag` events behind (commits held
/// at a gate), and goes on once the applier catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_waits_while_the_applier_is_too_far_behind() {
    let (store, journal, e) = lagging(10).await;
    let gate = store.gate.write().await;
    e.submit(batch(0)).await.unwrap();
    e.submit(batch(1)).await.unwrap();
    // 10 events are in flight behind the held commit: the next submit waits.
    submit_waits_until_released(&e, batch(2), &journal, gate).await;
    settle(&e).await;
    assert_eq!(alert_count(store.as_ref()).await, 15);
}

/// Submit also waits while the queued records reach `set_journal_max_lag_bytes`,
/// with far fewer events than `journal_max_lag`; a record alone in the queue is never
/// held back, however large; the queue counts the records' encoded bytes and empties
/// once the applier caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_waits_while_the_queued_records_reach_the_byte_bound() {
    let (store, journal, e) = lagging(1_000).await;
    // Smaller than any record: only a record alone in the queue goes through.
    e.set_journal_max_lag_bytes(1);
    let gate = store.gate.write().await;
    e.submit(batch(0)).await.unwrap();
    let (events, bytes) = e.journal_lag();
    assert_eq!(events, 5);
    let appended = journal.appended.lock()[0].len();
    assert_eq!(
        bytes, appended,
        "the queue counts the record's encoded bytes"
    );
    submit_waits_until_released(&e, batch(1), &journal, gate).await;
    settle(&e).await;
    assert_eq!(alert_count(store.as_ref()).await, 10);
    assert_eq!(e.journal_lag(), (0, 0), "nothing queued once settled");
}

fn resolved(name: &str, instance: &str) -> Event {
    let Event::Alert(mut a) = alert(name, instance) else {
        unreachable!()
    };
    a.status = signalcraft_core::model::AlertStatus::Resolved;
    Event::Alert(a)
}

/// Identical re-sends while the applier is caught up are settled in memory without a
/// journal record; a changed alert in the same request is journaled alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_up_resends_need_no_journal_record() {
    let Rig {
        store,
        journal,
        clock,
        e,
        ..
    } = started().await;
    assert_eq!(
        e.submit(vec![alert("Down", "1"), alert("Down", "2")])
            .await
            .unwrap(),
        1
    );
    settle(&e).await;
    clock.set(at(10));
    assert_eq!(
        e.submit(vec![alert("Down", "1"), alert("Down", "2")])
            .await
            .unwrap(),
        0,
        "nothing to journal"
    );
    assert_eq!(journal.last_seq(), 1);
    // A re-send's last seen moves in memory, as through a decision.
    let fp = match alert("Down", "1") {
        Event::Alert(a) => a.fingerprint(),
        _ => unreachable!(),
    };
    assert_eq!(
        e.with_core(|c| c.alert_record(fp).map(|r| r.last_seen)),
        Some(at(10))
    );
    // One changed alert among re-sends: only it is journaled.
    let seq = e
        .submit(vec![alert("Down", "1"), resolved("Down", "2")])
        .await
        .unwrap();
    assert_eq!(seq, 2);
    let appended = journal.appended.lock().clone();
    let last = appended.last().expect("a record");
    let text = String::from_utf8_lossy(last);
    assert_eq!(text.matches("{\"alert\":{").count(), 1, "{text}");
    assert!(text.contains("resolved"), "{text}");
    settle(&e).await;
    assert_eq!(alert_count(store.as_ref()).await, 2);
}

/// A re-send never overtakes an earlier event about the same alert: not one still
/// in flight (commits held), and not one earlier in the same request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_never_overtakes_an_earlier_change() {
    let Rig { store, e, .. } = started().await;
    e.submit(vec![alert("Down", "1")]).await.unwrap();
    settle(&e).await;
    let fp = match alert("Down", "1") {
        Event::Alert(a) => a.fingerprint(),
        _ => unreachable!(),
    };
    let status = |e: &Engine| e.with_core(|c| c.alert_record(fp).map(|r| r.alert.status));

    // Same request: resolve, then the identical firing alert: it fires in the end.
    let seq = e
        .submit(vec![resolved("Down", "1"), alert("Down", "1")])
        .await
        .unwrap();
    assert_eq!(seq, 2, "both journaled");
    settle(&e).await;
    assert_eq!(
        status(&e),
        Some(signalcraft_core::model::AlertStatus::Firing)
    );

    // In flight: a resolve waits behind a held commit; the re-send that follows is
    // journaled behind it instead of being settled against the stale state.
    let gate = store.gate.write().await;
    e.submit(vec![resolved("Down", "1")]).await.unwrap();
    let seq = e.submit(vec![alert("Down", "1")]).await.unwrap();
    assert_eq!(seq, 4, "journaled, not settled in memory");
    drop(gate);
    settle(&e).await;
    assert_eq!(
        status(&e),
        Some(signalcraft_core::model::AlertStatus::Firing)
    );
}

/// The applier does not keep the engine alive: once the last `Engine` is dropped it
/// ends and the store is released (a server can reopen its file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_engine_stops_the_applier_and_releases_the_store() {
    let Rig {
        store, journal, e, ..
    } = started().await;
    e.submit(vec![alert("Down", "1")]).await.unwrap();
    settle(&e).await;
    drop(e);
    wait_for(Duration::from_secs(5), || Arc::strong_count(&store) == 1).await;
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "the engine still holds the store"
    );
    assert_eq!(
        Arc::strong_count(&journal),
        1,
        "the engine still holds the journal"
    );
}

/// Neither does an applier retrying a store that keeps failing: the engine is not
/// held between attempts, so dropping it ends the retries (the next start replays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_applier_does_not_keep_a_dropped_engine_alive() {
    let Rig { store, e, .. } = started().await;
    store.fail.store(true, Ordering::SeqCst);
    e.submit(vec![alert("Down", "1")]).await.unwrap();
    wait_for(Duration::from_secs(5), || {
        store.failed.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(
        store.failed.load(Ordering::SeqCst) >= 2,
        "the applier retried"
    );
    drop(e);
    wait_for(Duration::from_secs(10), || Arc::strong_count(&store) == 1).await;
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "the retrying applier holds the engine"
    );
}

/// group_wait counts from when the journal accepted an alert, not from when the
/// applier got to it: with the applier held back for 20 s, a group created from an
/// alert accepted at 0 is notified at group_wait (30 s), not at 50 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_wait_counts_from_acceptance_when_the_applier_lags() {
    let Rig {
        store,
        clock,
        rec,
        e,
        ..
    } = started().await;
    let gate = store.gate.write().await;
    // The first record is decided and its commit waits at the gate; the second is
    // decided and waits for the first commit; the third waits in the queue.
    e.submit(vec![alert("First", "1")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    e.submit(vec![alert("Second", "1")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    e.submit(vec![alert("Third", "1")]).await.unwrap();
    clock.set(at(20));
    drop(gate);
    settle(&e).await;

    clock.set(at(30));
    e.run_due_jobs().await.unwrap();
    let mut notified: Vec<String> = rec
        .calls()
        .iter()
        .map(|n| n.group_labels["alertname"].to_owned())
        .collect();
    notified.sort();
    assert_eq!(notified, ["First", "Second", "Third"]);
}

/// A test wire format: the payload is `name/instance` pairs separated by commas,
/// decoded into the same alerts `alert(name, instance)` builds.
struct Pairs {
    decoded: AtomicUsize,
}

impl signalcraft_core::engine::journaled::RecordFormat for Pairs {
    fn decode(
        &self,
        _context: &str,
        payload: &[u8],
        _at: jiff::Timestamp,
    ) -> Result<Vec<Event>, signalcraft_core::CoreError> {
        self.decoded.fetch_add(1, Ordering::SeqCst);
        let text = std::str::from_utf8(payload)
            .map_err(|_| StoreError::Codec("pairs: not UTF-8".into()))?;
        text.split(',')
            .map(|p| {
                let (name, instance) = p
                    .split_once('/')
                    .ok_or_else(|| StoreError::Codec(format!("pairs: {p:?}")))?;
                Ok(alert(name, instance))
            })
            .collect()
    }
}

/// A request journaled in a registered wire format (`submit_encoded`) is decoded by
/// the applier, committed like submitted events, and replayed from the journal by
/// `recover` into a store that never got it. An unregistered format is refused
/// before anything is journaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_journaled_in_a_registered_format_are_applied_and_replayed() {
    let Rig {
        store, journal, e, ..
    } = started().await;
    let err = e
        .submit_encoded("pairs", "", b"Down/1", 1)
        .await
        .expect_err("not registered yet");
    assert!(err.to_string().contains("\"pairs\""), "{err}");
    assert!(journal.appended.lock().is_empty(), "nothing journaled");

    let pairs = Arc::new(Pairs {
        decoded: AtomicUsize::new(0),
    });
    e.register_journal_format("pairs", pairs.clone());
    let seq = e
        .submit_encoded("pairs", "ctx", b"Down/1,Down/2,Up/1", 3)
        .await
        .expect("journaled");
    assert!(seq > 0);
    // The journal holds the payload as it was given, not re-encoded events.
    let last = journal.appended.lock().last().cloned().expect("a record");
    assert!(
        last.windows(18).any(|w| w == b"Down/1,Down/2,Up/1"),
        "the payload is journaled as is"
    );
    // Mixed with ordinary submits, in order.
    e.submit(vec![alert("Up", "2")]).await.unwrap();
    settle(&e).await;
    assert_eq!(alert_count(store.as_ref()).await, 4);
    assert_eq!(pairs.decoded.load(Ordering::SeqCst), 1);
    drop(e);

    // A fresh store and the same journal: recover decodes the record again.
    let replayed = Arc::new(FlakyStore::default());
    let clock = ManualClock::new(at(0));
    let second = engine(replayed.clone(), journal.clone(), &clock, rec());
    second.register_journal_format("pairs", pairs.clone());
    journal.restore_appended();
    second.recover().await.expect("the records decode");
    assert_eq!(alert_count(replayed.as_ref()).await, 4);
    assert_eq!(pairs.decoded.load(Ordering::SeqCst), 2);
    drop(second);

    // Without the format registered, the replay reports the record as corrupt.
    let third = engine(
        Arc::new(FlakyStore::default()),
        journal.clone(),
        &clock,
        rec(),
    );
    journal.restore_appended();
    let err = third.recover().await.expect_err("cannot decode");
    assert!(err.to_string().contains("no decoder"), "{err}");
}
