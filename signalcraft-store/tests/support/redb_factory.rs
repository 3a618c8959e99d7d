//! The eviction suite's store factory over redb, for test crates that include
//! `signalcraft-core/tests/eviction_suite` as the module `eviction_suite`.

use std::path::PathBuf;
use std::sync::Arc;

use signalcraft_core::store::Store;
use signalcraft_store::RedbStore;

use crate::eviction_suite::StoreFactory;

/// A redb file in a temporary directory, opened anew by each engine.
pub struct Redb {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl StoreFactory for Redb {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(RedbStore::open(&self.path).expect("open redb"))
    }
}

/// A fresh redb file.
pub fn redb() -> Redb {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("signalcraft.redb");
    Redb { _dir: dir, path }
}
