//! Closed incidents leave the engine's memory and are served from redb, and expired
//! silences leave memory and redb: the shared suite of
//! signalcraft-core/tests/eviction_suite, over a RedbStore that every restart closes
//! and reopens.

#[path = "../../signalcraft-core/tests/eviction_suite/mod.rs"]
mod eviction_suite;
#[path = "support/redb_factory.rs"]
mod redb_factory;

use eviction_suite::silences;
use eviction_suite::*;
use redb_factory::redb;

#[tokio::test]
async fn eviction_waits_for_the_age_on_the_clock() {
    eviction_waits_for_the_age(&redb()).await;
}

#[tokio::test]
async fn get_and_list_are_unchanged_by_eviction() {
    reads_are_unchanged_by_eviction(&redb()).await;
}

#[tokio::test]
async fn an_action_on_an_evicted_incident_loads_it_back() {
    an_action_on_an_evicted_incident(&redb()).await;
}

#[tokio::test]
async fn a_group_firing_after_close_gets_a_new_incident() {
    a_new_alert_after_close_opens_a_new_incident(&redb()).await;
}

#[tokio::test]
async fn restart_loads_no_old_closed_incident_but_serves_it() {
    restart_leaves_old_closed_incidents_in_the_store(&redb()).await;
}

#[tokio::test]
async fn memory_stays_bounded_over_1000_incidents() {
    memory_stays_bounded(&redb(), 1000, 100).await;
}

#[tokio::test]
async fn counters_continue_past_incidents_left_out_at_start() {
    counters_continue_past_incidents_left_in_the_store(&redb()).await;
}

#[tokio::test]
async fn an_expired_silence_goes_after_the_age() {
    silences::expired_silence_goes_after_the_age(&redb()).await;
}

#[tokio::test]
async fn a_restart_leaves_old_expired_silences_out() {
    silences::restart_leaves_old_expired_silences_out(&redb()).await;
}
