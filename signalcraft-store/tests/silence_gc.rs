//! Expired silences are garbage-collected from memory and from redb: the shared suite
//! of signalcraft-core/tests/silence_gc_suite, over a RedbStore that every restart
//! closes and reopens.

#[path = "../../signalcraft-core/tests/silence_gc_suite/mod.rs"]
mod silence_gc_suite;

use std::path::PathBuf;
use std::sync::Arc;

use signalcraft_core::store::Store;
use signalcraft_store::RedbStore;
use silence_gc_suite::*;

/// A redb file in a temporary directory, opened anew by each engine.
struct Redb {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl StoreFactory for Redb {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(RedbStore::open(&self.path).expect("open redb"))
    }
}

fn redb() -> Redb {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("signalcraft.redb");
    Redb { _dir: dir, path }
}

#[tokio::test]
async fn an_expired_silence_goes_after_the_age() {
    expired_silence_goes_after_the_age(&redb()).await;
}

#[tokio::test]
async fn a_restart_leaves_old_expired_silences_out() {
    restart_leaves_old_expired_silences_out(&redb()).await;
}
