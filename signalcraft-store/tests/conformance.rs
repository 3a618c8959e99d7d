//! The shared Store and Scheduler conformance suites against redb.

use std::sync::atomic::{AtomicUsize, Ordering};

use signalcraft_core::testing::{scheduler::run_scheduler_suite, store::run_store_suite};
use signalcraft_store::{RedbStore, SealKey, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = AtomicUsize::new(0);
    run_store_suite(|| {
        let path = dir
            .path()
            .join(format!("s{}.redb", n.fetch_add(1, Ordering::SeqCst)));
        async move { RedbStore::open(path).expect("open") }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_with_encryption_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = AtomicUsize::new(0);
    run_store_suite(|| {
        let path = dir
            .path()
            .join(format!("e{}.redb", n.fetch_add(1, Ordering::SeqCst)));
        async move {
            let opts = StoreOptions {
                encryption_key: Some(SealKey::from_bytes(&[42u8; 32]).expect("key")),
                ..StoreOptions::default()
            };
            RedbStore::open_with(path, opts).expect("open")
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_scheduler_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = AtomicUsize::new(0);
    run_scheduler_suite(|| {
        let path = dir
            .path()
            .join(format!("j{}.redb", n.fetch_add(1, Ordering::SeqCst)));
        async move { RedbStore::open(path).expect("open").scheduler() }
    })
    .await;
}
