//! Closed incidents and expired silences leave memory and are served from (or deleted
//! in) the store: the shared suite (tests/eviction_suite) over the in-memory store.

mod eviction_suite;

use std::sync::Arc;

use eviction_suite::silences;
use eviction_suite::*;
use signalcraft_core::memory::MemoryStore;
use signalcraft_core::store::Store;

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
async fn eviction_waits_for_the_age_on_the_clock() {
    eviction_waits_for_the_age(&memory()).await;
}

#[tokio::test]
async fn get_and_list_are_unchanged_by_eviction() {
    reads_are_unchanged_by_eviction(&memory()).await;
}

#[tokio::test]
async fn an_action_on_an_evicted_incident_loads_it_back() {
    an_action_on_an_evicted_incident(&memory()).await;
}

#[tokio::test]
async fn a_group_firing_after_close_gets_a_new_incident() {
    a_new_alert_after_close_opens_a_new_incident(&memory()).await;
}

#[tokio::test]
async fn restart_loads_no_old_closed_incident_but_serves_it() {
    restart_leaves_old_closed_incidents_in_the_store(&memory()).await;
}

#[tokio::test]
async fn memory_stays_bounded_over_1000_incidents() {
    memory_stays_bounded(&memory(), 1000, 50).await;
}

#[tokio::test]
async fn counters_continue_past_incidents_left_out_at_start() {
    counters_continue_past_incidents_left_in_the_store(&memory()).await;
}

#[tokio::test]
async fn an_expired_silence_goes_after_the_age() {
    silences::expired_silence_goes_after_the_age(&memory()).await;
}

#[tokio::test]
async fn a_silence_expired_via_the_api_counts_from_its_new_end() {
    silences::expired_via_the_api_counts_from_the_new_end(&memory()).await;
}

#[tokio::test]
async fn zero_age_removes_at_the_next_sweep_after_the_end() {
    silences::zero_age_removes_at_the_next_sweep(&memory()).await;
}

#[tokio::test]
async fn a_restart_leaves_old_expired_silences_out() {
    silences::restart_leaves_old_expired_silences_out(&memory()).await;
}
