//! Property tests on the pure engine core.

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use signalcraft_core::engine::{Effect, EngineConfig, EngineCore};
use signalcraft_core::incident::Actor;
use signalcraft_core::model::{Alert, AlertStatus, Fingerprint, Labels, Source};
use signalcraft_core::routing::{RouteConfig, RouteTree, matcher::matches_all};
use signalcraft_core::scheduler::JobKind;
use signalcraft_core::silence::SilenceSpec;

const GROUP_INTERVAL: i64 = 60;

fn t0() -> Timestamp {
    "2026-03-02T10:00:00Z".parse().unwrap()
}

fn mk_alert(name: u8, inst: u8, team: u8, firing: bool) -> Alert {
    let mut l = Labels::new();
    l.insert("alertname".into(), format!("A{name}"));
    l.insert("instance".into(), format!("i{inst}"));
    l.insert(
        "team".into(),
        if team == 0 { "db".into() } else { "web".into() },
    );
    let mut a = Alert::firing(
        Source {
            provider: "p".into(),
            integration: "i".into(),
        },
        "s",
        l,
    );
    if !firing {
        a.status = AlertStatus::Resolved;
    }
    a
}

/// Drives an EngineCore with a simulated scheduler; returns (time offset, group key,
/// firing fingerprints, resolved count) per notification.
fn simulate(
    core: &mut EngineCore,
    events: &[(u16, Alert)],
    horizon: i64,
) -> Vec<(i64, String, Vec<Fingerprint>, usize)> {
    let t0 = t0();
    let mut jobs: BTreeMap<(Timestamp, String), (String, Timestamp)> = BTreeMap::new();
    let mut ids: HashMap<String, Timestamp> = HashMap::new();
    let mut sent = Vec::new();
    let handle = |out: Vec<Effect>,
                  now: Timestamp,
                  jobs: &mut BTreeMap<(Timestamp, String), (String, Timestamp)>,
                  ids: &mut HashMap<String, Timestamp>,
                  sent: &mut Vec<_>| {
        for e in out {
            match e {
                Effect::Schedule(j) => {
                    if let JobKind::GroupFlush { group_key } = j.kind {
                        if let Some(old) = ids.insert(j.id.clone(), j.due) {
                            jobs.remove(&(old, j.id.clone()));
                        }
                        jobs.insert((j.due, j.id), (group_key, j.due));
                    }
                }
                Effect::Cancel(id) => {
                    if let Some(old) = ids.remove(&id) {
                        jobs.remove(&(old, id));
                    }
                }
                Effect::Notify(n) => {
                    let firing: Vec<Fingerprint> = n
                        .alerts
                        .iter()
                        .filter(|a| a.status == AlertStatus::Firing)
                        .map(|a| a.fingerprint())
                        .collect();
                    let resolved = n.alerts.len() - firing.len();
                    sent.push((
                        now.duration_since(t0).as_secs(),
                        n.group_key.clone(),
                        firing,
                        resolved,
                    ));
                }
                _ => {}
            }
        }
    };
    let mut evs: Vec<(i64, Alert)> = events
        .iter()
        .map(|(t, a)| (i64::from(*t), a.clone()))
        .collect();
    evs.sort_by_key(|(t, _)| *t);
    let mut i = 0;
    loop {
        let next_ev = evs.get(i).map(|(t, _)| t0 + SignedDuration::from_secs(*t));
        let next_job = jobs.keys().next().map(|(t, _)| *t);
        let (now, is_job) = match (next_ev, next_job) {
            (Some(e), Some(j)) if j <= e => (j, true),
            (Some(e), _) => (e, false),
            (None, Some(j)) => (j, true),
            (None, None) => break,
        };
        if now > t0 + SignedDuration::from_secs(horizon) {
            break;
        }
        let mut out = Vec::new();
        if is_job {
            let key = jobs.keys().next().cloned().unwrap();
            let (group_key, due) = jobs.remove(&key).unwrap();
            ids.remove(&key.1);
            core.flush_job(&group_key, due, now, &mut out);
        } else {
            core.ingest_alert(evs[i].1.clone(), now, &mut out);
            i += 1;
        }
        handle(out, now, &mut jobs, &mut ids, &mut sent);
    }
    sent
}

fn core(route: serde_json::Value) -> EngineCore {
    let mut v = serde_json::json!({"route": route});
    v["route"]["notify"] = serde_json::json!([{"channel": "c", "target": "t"}]);
    let cfg: EngineConfig = serde_json::from_value(v).unwrap();
    EngineCore::new(cfg.compile().unwrap())
}

fn event() -> impl Strategy<Value = (u16, Alert)> {
    (0u16..3000, 0u8..3, 0u8..4, 0u8..2, any::<bool>())
        .prop_map(|(t, n, i, team, f)| (t, mk_alert(n, i, team, f)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn fingerprint_is_independent_of_label_order(
        pairs in proptest::collection::btree_map("[a-z]{1,6}", "[a-z0-9]{0,6}", 0..8)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_shuffle()
    ) {
        let shuffled: Labels = pairs.iter().cloned().collect();
        let mut sorted_pairs = pairs.clone();
        sorted_pairs.sort();
        let sorted: Labels = sorted_pairs.into_iter().collect();
        prop_assert_eq!(Fingerprint::of_labels(&shuffled), Fingerprint::of_labels(&sorted));
        let src = Source { provider: "p".into(), integration: "i".into() };
        prop_assert_eq!(
            Alert::firing(src.clone(), "x", shuffled).fingerprint(),
            Alert::firing(src, "y", sorted).fingerprint()
        );
    }

    #[test]
    fn a_group_never_notifies_faster_than_group_interval_except_resolves(
        events in proptest::collection::vec(event(), 1..60),
        resolve_wait in 0u16..90,
    ) {
        let mut c = core(serde_json::json!({
            "group_by": ["alertname"], "group_wait": "10s", "group_interval": format!("{GROUP_INTERVAL}s"),
            "repeat_interval": "2m", "resolve_wait": format!("{resolve_wait}s")
        }));
        let sent = simulate(&mut c, &events, 10_000);
        // (time, firing set) of each group's previous notification.
        let mut last: HashMap<String, (i64, Vec<Fingerprint>)> = HashMap::new();
        for (t, key, firing, _) in &sent {
            if !firing.is_empty() && let Some((prev, prev_firing)) = last.get(key) {
                // A flush brought forward by resolve_wait carries an alert that fired in
                // the previous notification and no longer does; it may come early (and
                // take newly firing alerts along). Every other notification waits out
                // group_interval.
                let resolve_flush = prev_firing.iter().any(|f| !firing.contains(f));
                prop_assert!(
                    resolve_flush || t - prev >= GROUP_INTERVAL,
                    "{key}: firing notification at {t} only {}s after {prev}", t - prev
                );
            }
            last.insert(key.clone(), (*t, firing.clone()));
        }
    }

    #[test]
    fn a_matching_silence_always_suppresses_firing(events in proptest::collection::vec(event(), 1..60)) {
        let mut c = core(serde_json::json!({"group_by": ["alertname"], "group_wait": "10s", "group_interval": "30s"}));
        let spec: SilenceSpec = serde_json::from_value(serde_json::json!({
            "matchers": ["team=db"], "starts_at": t0(), "ends_at": t0() + SignedDuration::from_hours(10),
            "created_by": "prop"
        })).unwrap();
        let mut out = Vec::new();
        c.put_silence(&spec, Actor::System, t0(), &mut out).unwrap();
        let db: Vec<Fingerprint> = events.iter().filter(|(_, a)| &a.labels["team"] == "db").map(|(_, a)| a.fingerprint()).collect();
        for (_, _, firing, _) in simulate(&mut c, &events, 10_000) {
            for f in firing {
                prop_assert!(!db.contains(&f), "silenced alert {f} notified as firing");
            }
        }
    }

    #[test]
    fn routing_is_deterministic_and_total(labels in proptest::collection::btree_map("[a-c]", "[x-z]{0,2}", 0..4)) {
        let cfg: RouteConfig = serde_json::from_value(serde_json::json!({
            "routes": [
                {"matchers": ["a=x"], "continue": true},
                {"matchers": ["b=~\"y.*\""], "routes": [{"matchers": ["c!=z"]}]},
                {"matchers": ["a!~\"x|\""]}
            ]
        })).unwrap();
        let tree = RouteTree::compile(&cfg, &|_| None).unwrap();
        let labels = Labels::from(labels);
        let r1 = tree.match_labels(&labels);
        let r2 = tree.match_labels(&labels);
        prop_assert!(!r1.is_empty());
        prop_assert_eq!(&r1, &r2);
        for i in r1 {
            prop_assert!(matches_all(&tree.get(i).unwrap().matchers, &labels));
        }
    }
}

/// The simulator the properties rely on does deliver notifications (guards against a
/// vacuous property).
#[test]
fn simulator_produces_notifications() {
    let mut c = core(
        serde_json::json!({"group_by": ["alertname"], "group_wait": "10s", "group_interval": "60s"}),
    );
    let a = mk_alert(0, 0, 1, true);
    let b = mk_alert(0, 1, 1, true);
    let sent = simulate(
        &mut c,
        &[(0, a.clone()), (20, b), (200, mk_alert(0, 0, 1, false))],
        1000,
    );
    let shape: Vec<(i64, usize, usize)> =
        sent.iter().map(|(t, _, f, r)| (*t, f.len(), *r)).collect();
    assert_eq!(shape, vec![(10, 1, 0), (70, 2, 0), (250, 1, 1)]);
}
