//! The shell's in-memory group flush timers (`EngineBuilder::in_memory_flush_timers`)
//! and its pipelined commits: flushes run on time without durable flush jobs, recover
//! re-arms them from the group records, and a batch decided on top of a failed commit
//! fails too.

mod shell_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use shell_support::{alert, at, config};
use signalcraft_core::channel::{Channel, Delivered, DeliveryError, Notification};
use signalcraft_core::clock::ManualClock;
use signalcraft_core::engine::{ChannelNotifier, Engine};
use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::scheduler::Scheduler;
use signalcraft_core::store::{Scan, Store, StoreError, Table, WriteBatch};

#[derive(Default)]
struct Rec(Mutex<Vec<Notification>>);

#[async_trait]
impl Channel for Rec {
    fn kind(&self) -> &str {
        "test"
    }
    fn name(&self) -> &str {
        "rec"
    }
    async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
        self.0.lock().push(n.clone());
        Ok(Delivered::default())
    }
}

/// A MemoryStore whose commits can be held at a gate and made to fail.
#[derive(Default)]
struct GatedStore {
    inner: MemoryStore,
    fail: AtomicBool,
    hold: AtomicBool,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait]
impl Store for GatedStore {
    async fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(table, key).await
    }
    async fn scan(&self, table: Table, scan: Scan) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.scan(table, scan).await
    }
    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if self.hold.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Io("disk full".into()));
        }
        self.inner.commit(batch).await
    }
    async fn count(&self, table: Table) -> Result<u64, StoreError> {
        self.inner.count(table).await
    }
}

struct Rig {
    engine: Engine,
    clock: ManualClock,
    scheduler: Arc<MemoryScheduler>,
    rec: Arc<Rec>,
}

fn rig(store: Arc<dyn Store>, clock: ManualClock) -> Rig {
    let scheduler = Arc::new(MemoryScheduler::new());
    let rec = Arc::new(Rec::default());
    let engine = Engine::builder(config())
        .store(store)
        .scheduler(scheduler.clone() as Arc<dyn Scheduler>)
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(ChannelNotifier::new().with("rec", rec.clone())))
        .in_memory_flush_timers(true)
        .build()
        .expect("engine");
    Rig {
        engine,
        clock,
        scheduler,
        rec,
    }
}

#[tokio::test]
async fn flushes_run_on_time_without_durable_jobs() {
    let r = rig(Arc::new(MemoryStore::new()), ManualClock::new(at(0)));
    r.engine
        .ingest(vec![
            alert("Down", "1"),
            alert("Down", "2"),
            alert("Up", "1"),
        ])
        .await
        .unwrap();
    assert_eq!(r.engine.pending_flushes().await, 2, "one timer per group");
    assert!(r.scheduler.pending().await.unwrap().is_empty());
    assert_eq!(r.engine.next_wakeup().await.unwrap(), Some(at(30)));

    r.clock.set(at(29));
    r.engine.run_due_jobs().await.unwrap();
    assert!(r.rec.0.lock().is_empty(), "not before group_wait");
    r.clock.set(at(30));
    assert_eq!(r.engine.run_due_jobs().await.unwrap(), 2);
    let sent = r.rec.0.lock().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent.iter().map(|n| n.alerts.len()).sum::<usize>(),
        3,
        "every alert notified once"
    );
    // Each group re-armed in memory; still nothing durable.
    assert_eq!(r.engine.pending_flushes().await, 2);
    assert!(r.scheduler.pending().await.unwrap().is_empty());
    // Running again at the same instant does nothing.
    assert_eq!(r.engine.run_due_jobs().await.unwrap(), 0);
    assert_eq!(r.rec.0.lock().len(), 2);
}

#[tokio::test]
async fn recover_rearms_flush_timers_from_the_group_records() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(at(0));
    let first = rig(store.clone(), clock.clone());
    first.engine.ingest(vec![alert("Down", "1")]).await.unwrap();
    drop(first);

    // A restart: a fresh engine and scheduler on the same store.
    let second = rig(store, clock.clone());
    assert_eq!(second.engine.pending_flushes().await, 0);
    second.engine.recover().await.unwrap();
    assert_eq!(second.engine.pending_flushes().await, 1);
    clock.set(at(30));
    second.engine.run_due_jobs().await.unwrap();
    assert_eq!(
        second.rec.0.lock().len(),
        1,
        "the recovered group is notified"
    );
}

#[tokio::test]
async fn a_batch_decided_on_top_of_a_failed_commit_fails_too() {
    let store = Arc::new(GatedStore::default());
    let r = rig(store.clone() as Arc<dyn Store>, ManualClock::new(at(0)));

    // Batch A's commit is held; batch B is decided while A commits.
    store.hold.store(true, Ordering::SeqCst);
    let ea = r.engine.clone();
    let a = tokio::spawn(async move { ea.ingest(vec![alert("Down", "1")]).await });
    store.entered.notified().await;
    let eb = r.engine.clone();
    let b = tokio::spawn(async move { eb.ingest(vec![alert("Down", "2")]).await });
    // B decides (the write lock is free while A commits) and waits for A's commit.
    tokio::time::timeout(Duration::from_secs(5), async {
        while r.engine.with_core(|c| c.alert_count()) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("B was decided while A was committing");
    store.fail.store(true, Ordering::SeqCst);
    store.release.notify_one();
    let ra = a.await.unwrap();
    let rb = b.await.unwrap();
    assert!(ra.is_err(), "A's commit failed");
    let eb = rb.expect_err("B was built on A");
    assert!(eb.to_string().contains("disk full"), "{eb}");
    assert_eq!(store.inner.count(Table::Alerts).await.unwrap(), 0);

    // Once the store works again, a later batch commits.
    store.fail.store(false, Ordering::SeqCst);
    r.engine.ingest(vec![alert("Down", "3")]).await.unwrap();
    assert!(store.inner.count(Table::Alerts).await.unwrap() >= 1);
}

/// A failed commit leaves nothing of its decision in memory: the alert whose ingest
/// failed is new again when it is re-sent, so the retry persists it and opens its
/// group (without the rebuild the re-send was a duplicate and never stored).
#[tokio::test]
async fn after_a_failed_commit_the_core_is_rebuilt_from_the_store() {
    let store = Arc::new(GatedStore::default());
    let r = rig(store.clone() as Arc<dyn Store>, ManualClock::new(at(0)));
    r.engine.ingest(vec![alert("Up", "1")]).await.unwrap();

    store.fail.store(true, Ordering::SeqCst);
    let e = r
        .engine
        .ingest(vec![alert("Down", "1")])
        .await
        .expect_err("commit fails");
    assert!(e.to_string().contains("disk full"), "{e}");
    store.fail.store(false, Ordering::SeqCst);

    r.engine.ingest(vec![alert("Down", "1")]).await.unwrap();
    assert_eq!(r.engine.with_core(|c| c.alert_count()), 2);
    assert_eq!(store.inner.count(Table::Alerts).await.unwrap(), 2);
    assert_eq!(store.inner.count(Table::Groups).await.unwrap(), 2);

    // Both groups flush once, on time, from the rebuilt core.
    r.clock.set(at(30));
    r.engine.run_due_jobs().await.unwrap();
    let mut notified: Vec<String> = r
        .rec
        .0
        .lock()
        .iter()
        .map(|n| n.group_labels["alertname"].to_owned())
        .collect();
    notified.sort();
    assert_eq!(notified, ["Down", "Up"]);
}
