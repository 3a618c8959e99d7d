//! Engine API: actions, queries, persistence and recovery, tool actions, delivery
//! failures, services, change events and runbooks.

mod scenario_dsl;

use scenario_dsl::*;
use signalcraft_core::CoreError;
use signalcraft_core::engine::{Engine, EngineConfig};
use signalcraft_core::incident::{
    Actor, AuditQuery, EntryKind, IncidentFilter, IncidentState, Role, Urgency,
};
use signalcraft_core::model::{ActionEvent, ActionKind, ChangeEvent, Event, Severity, Source};
use signalcraft_core::service::Service;
use signalcraft_core::store::{Store, Table};

fn route() -> serde_json::Value {
    serde_json::json!({"group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m"})
}

#[tokio::test]
async fn ingest_is_durable_and_recover_continues_where_it_left_off() {
    let s = Scenario::new(config(route()));
    let a = alert("Down", &[("i", "1")]);
    s.at(0).await.push(vec![a.clone()]).await;
    assert_eq!(
        s.store.count(Table::Alerts).await.unwrap(),
        1,
        "committed before ingest returned"
    );
    assert_eq!(s.store.count(Table::Groups).await.unwrap(), 1);
    s.at(30).await;
    assert_eq!(s.sent().len(), 1);
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    s.engine.acknowledge(&id, Actor::user("ann")).await.unwrap();
    let b = alert("Down", &[("i", "2")]);
    s.at(100).await.push(vec![b.clone()]).await;

    // "Restart": a new engine on the same store and scheduler.
    let s2 = Scenario::with_parts(
        config(route()),
        s.store.clone(),
        s.scheduler.clone(),
        Some(s.clock.clone()),
    );
    s2.engine.recover().await.unwrap();
    let inc = s2.engine.get_incident(&id).unwrap();
    assert_eq!(inc.state, IncidentState::Acknowledged);
    assert_eq!(s2.engine.with_core(|c| c.alert_count()), 2);
    // The second alert is delivered at the group's next tick by the new engine, once.
    s2.at(330).await;
    s2.want(0, 330, &[(330, &[&a, &b], &[])]);
    // Re-sending known alerts after the restart is still deduplicated.
    s2.push(vec![a.clone(), b.clone()]).await;
    s2.at(600).await;
    s2.want(331, 600, &[]);
    // Numbering continues.
    s2.push(vec![alert("Other", &[])]).await;
    s2.at(700).await;
    let items = s2.engine.list_incidents(&IncidentFilter::default()).items;
    assert_eq!(items[0].number, 2);
    let tl = s2.engine.timeline(&id).await.unwrap();
    assert!(tl.iter().any(|e| matches!(e.kind, EntryKind::Acknowledged)));
}

#[tokio::test]
async fn tool_actions_by_dedup_key_ack_and_resolve() {
    let s = Scenario::new(config(route()));
    let src = Source {
        provider: "pagerduty".into(),
        integration: "pd".into(),
    };
    let mut a = alert("Api", &[]);
    a.source = src.clone();
    a.dedup_key = Some("k1".into());
    s.at(0).await.push(vec![a.clone()]).await;
    s.at(30).await;
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    let act = |k| {
        Event::Action(ActionEvent {
            source: src.clone(),
            action: k,
            dedup_key: "k1".into(),
            raw: Default::default(),
        })
    };
    s.engine
        .ingest(vec![act(ActionKind::Acknowledge)])
        .await
        .unwrap();
    let inc = s.engine.get_incident(&id).unwrap();
    assert_eq!(inc.state, IncidentState::Acknowledged);
    let tl = s.engine.timeline(&id).await.unwrap();
    let ack = tl
        .iter()
        .find(|e| matches!(e.kind, EntryKind::Acknowledged))
        .unwrap();
    assert_eq!(ack.actor, Actor::integration("pd"));
    // Acknowledging twice from a tool is harmless.
    s.engine
        .ingest(vec![act(ActionKind::Acknowledge)])
        .await
        .unwrap();
    s.at(60).await;
    s.engine
        .ingest(vec![act(ActionKind::Resolve)])
        .await
        .unwrap();
    s.engine.run_due_jobs().await.unwrap();
    assert_eq!(
        s.engine.get_incident(&id).unwrap().state,
        IncidentState::Resolved
    );
    s.want(31, 60, &[(60, &[], &[&a])]);
}

#[tokio::test]
async fn delivery_failure_is_on_the_timeline() {
    let s = Scenario::new(config(route()));
    *s.rec.fail.lock() = true;
    s.at(0).await.push(vec![alert("X", &[])]).await;
    s.at(30).await;
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    let tl = s.engine.timeline(&id).await.unwrap();
    let f = tl.iter().find_map(|e| match &e.kind {
        EntryKind::DeliveryFailed {
            channel, reason, ..
        } => Some((channel.clone(), reason.clone())),
        _ => None,
    });
    let (channel, reason) = f.expect("delivery_failed entry");
    assert_eq!(channel, "rec");
    assert!(reason.contains("recipient rejected"), "{reason}");
    assert_eq!(
        s.store
            .scan(
                Table::Meta,
                signalcraft_core::store::Scan::prefix("outbox/")
            )
            .await
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn notes_roles_reassign_page_and_audit() {
    let s = Scenario::new(config(route()));
    s.at(0).await.push(vec![alert("X", &[])]).await;
    s.at(30).await;
    let id = s.engine.list_incidents(&IncidentFilter::default()).items[0]
        .id
        .clone();
    s.engine
        .add_note(&id, Actor::user("ann"), "looking at db")
        .await
        .unwrap();
    assert!(matches!(
        s.engine.add_note(&id, Actor::user("ann"), "  ").await,
        Err(CoreError::InvalidInput { .. })
    ));
    s.engine
        .assign_role(&id, Actor::user("ann"), Role::Commander, "bob")
        .await
        .unwrap();
    let inc = s
        .engine
        .reassign(
            &id,
            Actor::user("ann"),
            Some("db-policy".into()),
            vec!["carol".into()],
        )
        .await
        .unwrap();
    assert_eq!(inc.escalation_policy.as_deref(), Some("db-policy"));
    s.engine
        .page_user(&id, Actor::user("ann"), "dave", Some("need help".into()))
        .await
        .unwrap();
    s.engine
        .record_entry(
            &id,
            Actor::user("ann"),
            EntryKind::PostmortemCreated {
                url: "https://docs/pm/1".into(),
            },
        )
        .await
        .unwrap();
    let inc = s.engine.get_incident(&id).unwrap();
    assert_eq!(
        inc.roles.get(&Role::Commander).map(String::as_str),
        Some("bob")
    );
    assert_eq!(inc.notes.len(), 1);
    // Filters: by user (role holder or assignee), by state, by number lookup.
    let f = IncidentFilter {
        user: Some("bob".into()),
        ..Default::default()
    };
    assert_eq!(s.engine.list_incidents(&f).items.len(), 1);
    let f = IncidentFilter {
        user: Some("zed".into()),
        ..Default::default()
    };
    assert!(s.engine.list_incidents(&f).items.is_empty());
    let f = IncidentFilter {
        states: vec![IncidentState::Resolved],
        ..Default::default()
    };
    assert!(s.engine.list_incidents(&f).items.is_empty());
    assert_eq!(s.engine.get_incident("1").unwrap().id, id);
    let tl = s.engine.timeline(&id).await.unwrap();
    let kinds: Vec<&str> = tl.iter().map(|e| e.kind.type_name()).collect();
    for k in [
        "note",
        "role_assigned",
        "reassigned",
        "paged",
        "postmortem_created",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let per_incident = s
        .engine
        .audit(&AuditQuery {
            target: Some(format!("incident/{id}")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(per_incident.len(), 5, "{per_incident:?}");
    assert!(per_incident.iter().all(|e| e.actor == Actor::user("ann")));
    assert!(matches!(
        s.engine.acknowledge("inc-9999999999", Actor::System).await,
        Err(CoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn cursor_paging_lists_newest_first() {
    let s = Scenario::new(config(
        serde_json::json!({"group_by": ["alertname"], "group_wait": "1s"}),
    ));
    let alerts: Vec<_> = (0..5).map(|i| alert(&format!("A{i}"), &[])).collect();
    s.at(0).await.push(alerts).await;
    s.at(1).await;
    let p1 = s.engine.list_incidents(&IncidentFilter {
        limit: 2,
        ..Default::default()
    });
    assert_eq!(
        p1.items.iter().map(|i| i.number).collect::<Vec<_>>(),
        vec![5, 4]
    );
    let p2 = s.engine.list_incidents(&IncidentFilter {
        limit: 2,
        before: p1.next.clone(),
        ..Default::default()
    });
    assert_eq!(
        p2.items.iter().map(|i| i.number).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let p3 = s.engine.list_incidents(&IncidentFilter {
        limit: 2,
        before: p2.next.clone(),
        ..Default::default()
    });
    assert_eq!(
        p3.items.iter().map(|i| i.number).collect::<Vec<_>>(),
        vec![1]
    );
    assert!(p3.next.is_none());
}

#[tokio::test]
async fn service_runbooks_and_recent_changes_travel_with_notifications() {
    let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
        "route": {"group_wait": "30s", "notify": [{"channel": "rec", "target": "#ops"}],
                  "routes": [{"matchers": ["team=api"], "service": "api", "urgency": "low",
                              "runbooks": [{"href": "https://wiki/route-api"}]}]},
        "services": [{"id": "api", "name": "Public API", "repository_url": "https://github.com/acme/api",
                      "runbooks": [{"href": "https://wiki/api"}]}]
    }))
    .unwrap();
    let s = Scenario::new(cfg);
    let change = ChangeEvent {
        source: Source {
            provider: "github".into(),
            integration: "gh".into(),
        },
        summary: "deploy v2".into(),
        timestamp: s.engine.now(),
        service: None,
        repository: Some("https://github.com/acme/api.git".into()),
        labels: Default::default(),
        links: vec![],
        details: serde_json::Value::Null,
        raw: Default::default(),
    };
    s.engine.ingest(vec![Event::Change(change)]).await.unwrap();
    assert_eq!(s.store.count(Table::Changes).await.unwrap(), 1);
    let mut a = alert("Err", &[("team", "api")]);
    a.severity = Severity::Critical;
    s.at(10).await.push(vec![a]).await;
    s.at(40).await;
    let sent = s.sent();
    assert_eq!(sent.len(), 1);
    let n = &sent[0].n;
    let hrefs: Vec<&str> = n.runbooks.iter().map(|l| l.href.as_str()).collect();
    assert_eq!(hrefs, vec!["https://wiki/route-api", "https://wiki/api"]);
    assert_eq!(n.recent_changes.len(), 1);
    assert_eq!(
        n.incident.as_ref().unwrap().service.as_deref(),
        Some("Public API")
    );
    let inc = &s.engine.list_incidents(&IncidentFilter::default()).items[0];
    assert_eq!(inc.urgency, Urgency::Low, "route override");
    assert_eq!(inc.severity, Severity::Critical);
    assert_eq!(inc.runbooks.len(), 2);
    assert_eq!(s.engine.recent_changes(&inc.id, None).unwrap().len(), 1);
    assert!(
        s.engine
            .recent_changes(&inc.id, Some(secs(5)))
            .unwrap()
            .is_empty()
    );

    // Service CRUD with validation and audit.
    let mut svc: Service = s.engine.get_service("api").unwrap();
    svc.tags = vec!["tier1".into()];
    s.engine.put_service(svc, Actor::user("ann")).await.unwrap();
    assert_eq!(s.engine.get_service("api").unwrap().tags, vec!["tier1"]);
    let mut bad = s.engine.get_service("api").unwrap();
    bad.id = "bad id".into();
    assert!(s.engine.put_service(bad, Actor::user("ann")).await.is_err());
    s.engine
        .delete_service("api", Actor::user("ann"))
        .await
        .unwrap();
    assert!(s.engine.get_service("api").is_err());
    let audit = s
        .engine
        .audit(&AuditQuery {
            user: Some("ann".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
}

#[tokio::test]
async fn bad_config_is_rejected_at_build_with_the_path() {
    let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
        "route": {"routes": [{"matchers": ["a=b"]}, {"group_interval": "fast"}]}
    }))
    .unwrap();
    let e = Engine::builder(cfg).build().err().unwrap();
    assert!(
        e.to_string().contains("route.routes[1].group_interval"),
        "{e}"
    );
}
