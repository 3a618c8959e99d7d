//! Grouping, dedup and incident lifecycle scenarios on a manual clock.

mod scenario_dsl;

use scenario_dsl::*;
use signalcraft_core::incident::{Actor, EntryKind, IncidentFilter, IncidentState};

fn std_route() -> serde_json::Value {
    serde_json::json!({
        "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"
    })
}

#[tokio::test]
async fn full_lifecycle_fire_group_ack_resolve_reopen() {
    let s = Scenario::new(config(std_route()));
    let a1 = alert("Down", &[("instance", "1")]);
    let a2 = alert("Down", &[("instance", "2")]);

    s.at(0).await.push(vec![a1.clone()]).await;
    s.at(10).await.push(vec![a1.clone()]).await; // Prometheus re-send
    s.at(29).await;
    s.want(0, 29, &[]);
    s.at(30).await;
    s.want(30, 30, &[(30, &[&a1], &[])]);

    let inc = s.engine.list_incidents(&IncidentFilter::default()).items;
    assert_eq!(inc.len(), 1);
    let id = inc[0].id.clone();
    assert_eq!(inc[0].number, 1);
    assert_eq!(inc[0].state, IncidentState::Open);
    assert_eq!(inc[0].title, "Down is firing");

    // Identical re-sends cause nothing; a new alert joins at the next group_interval tick.
    for t in [60, 90, 120] {
        s.at(t).await.push(vec![a1.clone()]).await;
    }
    s.at(150).await.push(vec![a2.clone()]).await;
    s.at(329).await;
    s.want(31, 329, &[]);
    s.at(330).await;
    s.want(330, 330, &[(330, &[&a1, &a2], &[])]);

    s.at(400).await;
    let acked = s.engine.acknowledge(&id, Actor::user("ann")).await.unwrap();
    assert_eq!(acked.state, IncidentState::Acknowledged);

    // Partial resolve waits for the tick; the last resolve is delivered promptly.
    s.at(500).await.push(vec![resolved(&a1)]).await;
    s.at(600).await;
    s.want(331, 600, &[]);
    s.at(630).await;
    s.want(601, 630, &[(630, &[&a2], &[&a1])]);
    s.at(700).await.push(vec![resolved(&a2)]).await;
    s.want(700, 700, &[(700, &[], &[&a2])]);
    let inc = s.engine.get_incident(&id).unwrap();
    assert_eq!(inc.state, IncidentState::Resolved);
    s.at(2000).await;
    s.want(701, 2000, &[]);

    // A new firing alert re-opens the incident (PagerDuty semantics).
    s.at(2100).await.push(vec![a1.clone()]).await;
    s.at(2130).await;
    s.want(2100, 2130, &[(2130, &[&a1], &[])]);
    let inc = s.engine.get_incident(&id).unwrap();
    assert_eq!(inc.state, IncidentState::Open, "re-opened, same incident");
    assert_eq!(
        s.engine
            .list_incidents(&IncidentFilter::default())
            .items
            .len(),
        1
    );

    let tl = s.engine.timeline(&id).await.unwrap();
    let kinds: Vec<&str> = tl.iter().map(|e| e.kind.type_name()).collect();
    for k in [
        "ingested",
        "grouped",
        "routed",
        "notified",
        "acknowledged",
        "resolved",
        "reopened",
    ] {
        assert!(kinds.contains(&k), "timeline lacks {k}: {kinds:?}");
    }
    assert!(
        tl.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "gapless sequence"
    );
    let ack = tl
        .iter()
        .find(|e| matches!(e.kind, EntryKind::Acknowledged))
        .unwrap();
    assert_eq!(ack.actor, Actor::user("ann"));
}

#[tokio::test]
async fn fired_and_resolved_inside_group_wait_sends_nothing() {
    let s = Scenario::new(config(std_route()));
    let a = alert("Flap", &[]);
    s.at(0).await.push(vec![a.clone()]).await;
    s.at(10).await.push(vec![resolved(&a)]).await;
    s.at(3600).await;
    s.want(0, 3600, &[]);
    assert!(
        s.engine
            .list_incidents(&IncidentFilter::default())
            .items
            .is_empty()
    );
    assert_eq!(
        s.engine.with_core(|c| c.group_count()),
        0,
        "empty group retired"
    );
    assert_eq!(s.engine.with_core(|c| c.alert_count()), 0);
}

#[tokio::test]
async fn repeat_interval_rounds_up_and_stops_after_ack() {
    let s = Scenario::new(config(serde_json::json!({
        "group_wait": "30s", "group_interval": "1m", "repeat_interval": "150s"
    })));
    let a = alert("Disk", &[]);
    s.at(0).await.push(vec![a.clone()]).await;
    let mut t = 15;
    while t <= 600 {
        s.at(t).await.push(vec![a.clone()]).await;
        t += 15;
    }
    // 150s rounds up to 180s: 30, 210, 390, 570.
    s.want(
        0,
        600,
        &[
            (30, &[&a], &[]),
            (210, &[&a], &[]),
            (390, &[&a], &[]),
            (570, &[&a], &[]),
        ],
    );
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    s.engine.acknowledge(&id, Actor::user("bob")).await.unwrap();
    s.at(2000).await;
    s.want(601, 2000, &[]);
}

#[tokio::test]
async fn resolve_wait_delays_the_all_resolved_notification() {
    let s = Scenario::new(config(serde_json::json!({
        "group_wait": "30s", "group_interval": "5m", "resolve_wait": "2m"
    })));
    let a = alert("Lat", &[]);
    s.at(0).await.push(vec![a.clone()]).await;
    s.at(100).await.push(vec![resolved(&a)]).await;
    s.at(219).await;
    s.want(31, 219, &[]);
    s.at(220).await;
    s.want(220, 220, &[(220, &[], &[&a])]);
    s.at(5000).await;
    s.want(221, 5000, &[]);
}

#[tokio::test]
async fn manual_resolve_then_close_then_new_incident() {
    let s = Scenario::new(config(std_route()));
    let a = alert("Mem", &[]);
    s.at(0).await.push(vec![a.clone()]).await;
    s.at(30).await;
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    let e = s.engine.close(&id, Actor::user("x")).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid incident transition from open to closed"
    );
    s.engine.mitigate(&id, Actor::user("x")).await.unwrap();
    let e = s
        .engine
        .acknowledge(&id, Actor::user("x"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("from mitigated to acknowledged"),
        "{e}"
    );
    s.engine.resolve(&id, Actor::user("x")).await.unwrap();
    s.engine.close(&id, Actor::user("x")).await.unwrap();
    // The alert resolves, then a new one fires: the closed incident stays closed.
    s.at(100).await.push(vec![resolved(&a)]).await;
    s.at(1000).await.push(vec![a.clone()]).await;
    s.at(1100).await;
    let all = s.engine.list_incidents(&IncidentFilter::default()).items;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].number, 2);
    assert_eq!(all[0].state, IncidentState::Open);
    assert_eq!(all[1].state, IncidentState::Closed);
}

#[tokio::test]
async fn group_by_all_labels_makes_one_group_per_alert() {
    let s = Scenario::new(config(
        serde_json::json!({"group_by": ["..."], "group_wait": "10s"}),
    ));
    let a = alert("X", &[("i", "1")]);
    let b = alert("X", &[("i", "2")]);
    s.at(0).await.push(vec![a.clone(), b.clone()]).await;
    s.at(10).await;
    let got = s.between(0, 10);
    assert_eq!(got.len(), 2);
    assert_eq!(
        s.engine
            .list_incidents(&IncidentFilter::default())
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn changed_content_on_resend_is_stored_but_not_notified() {
    let s = Scenario::new(config(std_route()));
    let a = alert("Lag", &[]);
    s.at(0).await.push(vec![a.clone()]).await;
    s.at(30).await;
    let mut changed = a.clone();
    changed.summary = "Lag is worse".into();
    changed.annotations.insert("value".into(), "42s".into());
    s.at(60).await.push(vec![changed.clone()]).await;
    s.at(100).await.push(vec![changed.clone()]).await;
    s.at(400).await;
    s.want(31, 400, &[]);
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    let alerts = s.engine.incident_alerts(&id).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].alert.summary, "Lag is worse");
    assert_eq!(
        alerts[0].last_seen,
        s.t0 + jiff::SignedDuration::from_secs(100)
    );
}
