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

/// A precondition on a sealed integration record cannot be checked (the stored bytes
/// are sealed, and differ from one sealing to the next): refused with a typed error
/// naming the table, nothing written; without a key it works like on any table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_refuses_a_precondition_on_sealed_integrations() {
    use signalcraft_core::store::{Store, StoreError, Table, WriteBatch};
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = br#"{"name":"pd","secrets":{"key":"s3cret"}}"#.to_vec();
    let sealed = RedbStore::open_with(
        dir.path().join("sealed.redb"),
        StoreOptions {
            encryption_key: Some(SealKey::from_bytes(&[7u8; 32]).expect("key")),
            ..StoreOptions::default()
        },
    )
    .expect("open");
    let plain = RedbStore::open(dir.path().join("plain.redb")).expect("open");
    for s in [&sealed, &plain] {
        let mut b = WriteBatch::new();
        b.put_raw(Table::Integrations, "pd", rec.clone());
        s.commit(b).await.expect("put");
    }
    let mut b = WriteBatch::new();
    b.put_raw(Table::Groups, "side", b"{}".to_vec())
        .delete_if_unchanged(Table::Integrations, "pd", rec.clone());
    match sealed.commit(b.clone()).await {
        Err(StoreError::Codec(m)) => assert!(m.contains("integrations/pd"), "{m}"),
        other => panic!("expected a codec error, got {other:?}"),
    }
    assert_eq!(sealed.get(Table::Groups, "side").await.expect("get"), None);
    assert_eq!(
        sealed.get(Table::Integrations, "pd").await.expect("get"),
        Some(rec.clone())
    );
    plain
        .commit(b)
        .await
        .expect("unsealed: the precondition holds");
    assert_eq!(
        plain.get(Table::Integrations, "pd").await.expect("get"),
        None
    );
}
