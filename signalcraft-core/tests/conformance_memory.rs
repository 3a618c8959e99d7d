//! The shared Store and Scheduler conformance suites against the in-memory
//! implementations.
#![cfg(feature = "testing")]

use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::testing::{scheduler::run_scheduler_suite, store::run_store_suite};

#[tokio::test]
async fn memory_store_conforms() {
    run_store_suite(|| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn memory_scheduler_conforms() {
    run_scheduler_suite(|| async { MemoryScheduler::new() }).await;
}
