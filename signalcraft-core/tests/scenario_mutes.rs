//! Silences, inhibition and mute windows: they hold back firing notifications, never
//! resolved ones.

mod scenario_dsl;

use scenario_dsl::*;
use signalcraft_core::engine::EngineConfig;
use signalcraft_core::incident::{Actor, AuditQuery, IncidentFilter, IncidentState};
use signalcraft_core::routing::MatcherSpec;
use signalcraft_core::silence::{SilenceSpec, SilenceState};

fn silence(s: &Scenario, matchers: &[&str], minutes: i64) -> SilenceSpec {
    SilenceSpec {
        id: None,
        matchers: matchers
            .iter()
            .map(|m| MatcherSpec::Text(m.to_string()))
            .collect(),
        starts_at: None,
        ends_at: s.engine.now() + jiff::SignedDuration::from_mins(minutes),
        created_by: "ann".into(),
        comment: "maintenance".into(),
    }
}

#[tokio::test]
async fn silence_holds_firing_until_it_expires() {
    let s = Scenario::new(config(
        serde_json::json!({"group_wait": "30s", "group_interval": "5m"}),
    ));
    let sil = s
        .engine
        .put_silence(silence(&s, &["team=db"], 60), Actor::user("ann"))
        .await
        .unwrap();
    assert_eq!(s.engine.list_silences(Some(SilenceState::Active)).len(), 1);
    let db = alert("Slow", &[("team", "db")]);
    let web = alert("Slow", &[("team", "web")]);
    s.at(0).await.push(vec![db.clone(), web.clone()]).await;
    s.at(30).await;
    s.want(0, 30, &[(30, &[&web], &[])]);
    s.at(100).await;
    s.engine
        .expire_silence(&sil.id, Actor::user("ann"))
        .await
        .unwrap();
    assert_eq!(s.engine.list_silences(Some(SilenceState::Expired)).len(), 1);
    s.at(330).await;
    s.want(31, 330, &[(330, &[&db, &web], &[])]);
    let audit = s
        .engine
        .audit(&AuditQuery {
            user: Some("ann".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["silence.expire", "silence.create"]);
}

#[tokio::test]
async fn resolve_passes_a_silence_so_incidents_close() {
    let s = Scenario::new(config(serde_json::json!({"group_wait": "30s"})));
    let a = alert("Down", &[("team", "db")]);
    s.at(0).await.push(vec![a.clone()]).await;
    s.at(30).await;
    s.engine
        .put_silence(silence(&s, &["team=db"], 600), Actor::user("ann"))
        .await
        .unwrap();
    s.at(60).await.push(vec![resolved(&a)]).await;
    s.want(31, 60, &[(60, &[], &[&a])]);
    let inc = &s.engine.list_incidents(&IncidentFilter::default()).items[0];
    assert_eq!(inc.state, IncidentState::Resolved);
}

#[tokio::test]
async fn silence_validation_names_fields() {
    let s = Scenario::new(config(serde_json::json!({})));
    let mut bad = silence(&s, &["team=~\"(\""], 10);
    let e = s
        .engine
        .put_silence(bad.clone(), Actor::user("a"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("matchers[0]"), "{e}");
    bad.matchers = vec![MatcherSpec::Text("a=b".into())];
    bad.ends_at = s.engine.now() - jiff::SignedDuration::from_mins(1);
    let e = s
        .engine
        .put_silence(bad, Actor::user("a"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ends_at"), "{e}");
    assert!(
        s.engine
            .expire_silence("nope", Actor::user("a"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn inhibition_mutes_targets_while_source_fires() {
    let mut cfg = config(
        serde_json::json!({"group_by": ["alertname"], "group_wait": "30s", "group_interval": "1m"}),
    );
    cfg.inhibit_rules = vec![serde_json::from_value(serde_json::json!({
        "source_matchers": ["severity=critical"], "target_matchers": ["severity=warning"], "equal": ["cluster"]
    }))
    .unwrap()];
    let s = Scenario::new(cfg);
    let crit = alert("NodeDown", &[("severity", "critical"), ("cluster", "a")]);
    let warn_a = alert("PodSlow", &[("severity", "warning"), ("cluster", "a")]);
    let warn_b = alert("PodSlow2", &[("severity", "warning"), ("cluster", "b")]);
    s.at(0)
        .await
        .push(vec![crit.clone(), warn_a.clone(), warn_b.clone()])
        .await;
    s.at(30).await;
    let mut got: Vec<String> = s
        .between(0, 30)
        .iter()
        .map(|x| x.n.group_labels["alertname"].to_owned())
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec!["NodeDown", "PodSlow2"],
        "PodSlow in cluster a is inhibited"
    );
    // When the source resolves, the target is notified at its next tick.
    s.at(40).await.push(vec![resolved(&crit)]).await;
    s.at(90).await;
    let later: Vec<String> = s
        .between(31, 90)
        .iter()
        .map(|x| x.n.group_labels["alertname"].to_owned())
        .collect();
    assert!(later.contains(&"PodSlow".to_string()), "{later:?}");
}

#[tokio::test]
async fn mute_time_interval_holds_firing_but_not_resolved() {
    // T0 is Monday 10:00 UTC; mute 10:30–11:00 UTC.
    let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
        "time_intervals": [{"name": "standup", "time_intervals": [
            {"weekdays": ["monday:friday"], "times": [{"start_time": "10:30", "end_time": "11:00"}], "location": "UTC"}
        ]}],
        "route": {"group_by": ["alertname"], "group_wait": "30s", "group_interval": "10m",
                  "mute_time_intervals": ["standup"],
                  "notify": [{"channel": "rec", "target": "#ops"}]}
    }))
    .unwrap();
    let s = Scenario::new(cfg);
    let a = alert("Cpu", &[]);
    let b = alert("Mem", &[]);
    s.at(0).await.push(vec![a.clone()]).await;
    s.at(30).await;
    s.want(0, 30, &[(30, &[&a], &[])]);
    // Inside the mute window: a resolve still goes out, a new firing alert waits.
    s.at(1900).await.push(vec![resolved(&a), b.clone()]).await;
    s.at(3599).await;
    s.want(31, 3599, &[(1900, &[], &[&a])]);
    s.at(4000).await;
    // b's group ticks every 10 minutes from 19:30 past T0: 1930, 2530, 3130 (muted), 3730.
    s.want(3600, 4000, &[(3730, &[&b], &[])]);
}

#[tokio::test]
async fn active_time_interval_only_notifies_inside() {
    let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
        "time_intervals": [{"name": "weekend", "time_intervals": [{"weekdays": ["saturday", "sunday"]}]}],
        "route": {"group_wait": "30s", "group_interval": "1h", "active_time_intervals": ["weekend"],
                  "notify": [{"channel": "rec", "target": "#ops"}]}
    }))
    .unwrap();
    let s = Scenario::new(cfg);
    let a = alert("Batch", &[]);
    s.at(0).await.push(vec![a.clone()]).await;
    // Monday 10:00 → Saturday 00:00 is 4 days 14 hours.
    let sat = (4 * 24 + 14) * 3600;
    s.at(sat - 1).await;
    s.want(0, sat - 1, &[]);
    s.at(sat + 3600).await;
    assert_eq!(s.between(sat, sat + 3600).len(), 1);
}
