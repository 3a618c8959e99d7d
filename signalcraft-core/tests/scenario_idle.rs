//! Idle groups: after a flush with nothing pending a group parks its next flush at the
//! repeat deadline instead of ticking every group_interval, and pulls it back in to the
//! next tick when an alert joins, re-fires or resolves.

mod scenario_dsl;

use jiff::Timestamp;
use scenario_dsl::*;
use signalcraft_core::incident::{Actor, IncidentFilter};
use signalcraft_core::scheduler::{JobKind, Scheduler};

/// group_wait 30s, group_interval 5m, repeat_interval 4h.
fn std_route() -> serde_json::Value {
    serde_json::json!({
        "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"
    })
}

const KEY: &str = "route:{alertname=\"Down\"}";

/// Pending group-flush jobs as seconds after T0.
async fn flush_jobs(s: &Scenario) -> Vec<u64> {
    let mut v: Vec<u64> = s
        .scheduler
        .pending()
        .await
        .unwrap()
        .into_iter()
        .filter(|j| matches!(j.kind, JobKind::GroupFlush { .. }))
        .map(|j| secs_after(s, j.due))
        .collect();
    v.sort();
    v
}

fn secs_after(s: &Scenario, t: Timestamp) -> u64 {
    t.duration_since(s.t0).as_secs() as u64
}

fn next_flush(s: &Scenario) -> Option<u64> {
    s.engine
        .with_core(|c| c.group(KEY).and_then(|g| g.next_flush))
        .map(|t| secs_after(s, t))
}

fn last_flush(s: &Scenario) -> Option<u64> {
    s.engine
        .with_core(|c| c.group(KEY).and_then(|g| g.last_flush))
        .map(|t| secs_after(s, t))
}

#[tokio::test]
async fn idle_group_parks_until_repeat_and_a_joining_alert_still_lands_on_the_tick() {
    let s = Scenario::new(config(std_route()));
    let a1 = alert("Down", &[("instance", "1")]);
    let a2 = alert("Down", &[("instance", "2")]);

    s.at(0).await.push(vec![a1.clone()]).await;
    assert_eq!(
        flush_jobs(&s).await,
        vec![30],
        "first flush after group_wait"
    );
    s.at(30).await;
    s.want(0, 30, &[(30, &[&a1], &[])]);

    // Settled: the only armed flush is the repeat deadline (30s + 4h), not 30s + 5m.
    let repeat_due = 30 + 4 * 3600;
    assert_eq!(flush_jobs(&s).await, vec![repeat_due]);
    assert_eq!(next_flush(&s), Some(repeat_due));

    // Re-sends change nothing and arm nothing; no flush runs for an hour.
    for t in [60, 600, 1800, 3600] {
        s.at(t).await.push(vec![a1.clone()]).await;
        assert_eq!(flush_jobs(&s).await, vec![repeat_due], "at {t}s");
        assert_eq!(last_flush(&s), Some(30), "no flush ran by {t}s");
    }

    // A new alert joining at 3700s is notified at the group's next group_interval tick
    // counted from the last flush: 30 + 13·300 = 3930s.
    s.at(3700).await.push(vec![a2.clone()]).await;
    assert_eq!(
        flush_jobs(&s).await,
        vec![3930],
        "pulled in, parked job cancelled"
    );
    s.at(3929).await;
    s.want(31, 3929, &[]);
    s.at(3930).await;
    s.want(3930, 3930, &[(3930, &[&a1, &a2], &[])]);
    assert_eq!(flush_jobs(&s).await, vec![3930 + 4 * 3600], "parked again");

    // The repeat still comes exactly one repeat_interval after the last notification.
    s.at(3930 + 4 * 3600).await;
    s.want(
        3931,
        3930 + 4 * 3600,
        &[(3930 + 4 * 3600, &[&a1, &a2], &[])],
    );
}

#[tokio::test]
async fn joining_before_the_first_tick_is_notified_at_last_flush_plus_group_interval() {
    let s = Scenario::new(config(std_route()));
    let a1 = alert("Down", &[("instance", "1")]);
    let a2 = alert("Down", &[("instance", "2")]);
    s.at(0).await.push(vec![a1.clone()]).await;
    s.at(30).await;
    s.at(100).await.push(vec![a2.clone()]).await;
    assert_eq!(flush_jobs(&s).await, vec![330]);
    s.at(330).await;
    s.want(31, 330, &[(330, &[&a1, &a2], &[])]);
}

#[tokio::test]
async fn partial_resolve_waits_for_the_tick_and_last_resolve_is_prompt() {
    let s = Scenario::new(config(std_route()));
    let a1 = alert("Down", &[("instance", "1")]);
    let a2 = alert("Down", &[("instance", "2")]);
    s.at(0).await.push(vec![a1.clone(), a2.clone()]).await;
    s.at(30).await;
    s.want(0, 30, &[(30, &[&a1, &a2], &[])]);
    // Partial resolve at 1000s: the next tick from the last flush is 30 + 4·300 = 1230s.
    s.at(1000).await.push(vec![resolved(&a1)]).await;
    assert_eq!(flush_jobs(&s).await, vec![1230]);
    s.at(1230).await;
    s.want(31, 1230, &[(1230, &[&a2], &[&a1])]);
    // The last resolve is delivered at once (resolve_wait 0), not at a tick.
    s.at(2000).await.push(vec![resolved(&a2)]).await;
    s.want(1231, 2000, &[(2000, &[], &[&a2])]);
}

#[tokio::test]
async fn acknowledged_incident_is_not_flushed_every_tick() {
    let s = Scenario::new(config(std_route()));
    let a1 = alert("Down", &[("instance", "1")]);
    s.at(0).await.push(vec![a1.clone()]).await;
    s.at(30).await;
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    s.engine.acknowledge(&id, Actor::user("ann")).await.unwrap();
    // The repeat is suppressed (acknowledged): the check moves one repeat_interval on.
    let first = 30 + 4 * 3600;
    s.at(first).await;
    s.want(31, first, &[]);
    assert_eq!(flush_jobs(&s).await, vec![first + 4 * 3600]);
    assert_eq!(last_flush(&s), Some(first));
}

#[tokio::test]
async fn silenced_member_keeps_the_group_ticking_so_the_silence_expiry_is_noticed() {
    let s = Scenario::new(config(std_route()));
    let a1 = alert("Down", &[("instance", "1")]);
    let a2 = alert("Down", &[("instance", "2")]);
    s.at(0).await;
    let spec: signalcraft_core::silence::SilenceSpec = serde_json::from_value(serde_json::json!({
        "matchers": ["instance=\"2\""],
        "starts_at": "2026-03-02T10:00:00Z",
        "ends_at": "2026-03-02T10:20:00Z",
        "created_by": "ann",
        "comment": "maintenance"
    }))
    .unwrap();
    s.engine
        .put_silence(spec, Actor::user("ann"))
        .await
        .unwrap();
    s.at(1).await.push(vec![a1.clone(), a2.clone()]).await;
    s.at(31).await;
    s.want(0, 31, &[(31, &[&a1], &[])]);
    assert_eq!(
        flush_jobs(&s).await,
        vec![331],
        "a muted member keeps the tick"
    );
    // The silence ends at 1200s; the next tick after it (31 + 4·300 = 1231) notifies a2.
    s.at(1231).await;
    s.want(32, 1231, &[(1231, &[&a1, &a2], &[])]);
    assert_eq!(flush_jobs(&s).await, vec![1231 + 4 * 3600], "settled again");
}
