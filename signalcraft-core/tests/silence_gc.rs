//! Expired silences are garbage-collected: the shared suite (tests/silence_gc_suite)
//! over the in-memory store.

mod silence_gc_suite;

use std::sync::Arc;

use signalcraft_core::memory::MemoryStore;
use signalcraft_core::store::Store;
use silence_gc_suite::*;

/// One in-memory store, shared by every engine of a test (restarts included).
struct Memory(Arc<MemoryStore>);

impl StoreFactory for Memory {
    fn open(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
}

fn memory() -> Memory {
    Memory(Arc::new(MemoryStore::new()))
}

#[tokio::test]
async fn an_expired_silence_goes_after_the_age() {
    expired_silence_goes_after_the_age(&memory()).await;
}

#[tokio::test]
async fn a_silence_expired_via_the_api_counts_from_its_new_end() {
    expired_via_the_api_counts_from_the_new_end(&memory()).await;
}

#[tokio::test]
async fn zero_age_removes_at_the_next_sweep_after_the_end() {
    zero_age_removes_at_the_next_sweep(&memory()).await;
}

#[tokio::test]
async fn a_restart_leaves_old_expired_silences_out() {
    restart_leaves_old_expired_silences_out(&memory()).await;
}
