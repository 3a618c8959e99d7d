//! The in-memory pipeline: normalize → fingerprint → dedup → route → group, plus the
//! group flushes where silences and inhibition are evaluated, on the pure
//! `EngineCore` (one core, no I/O).
//!
//! Workload: 100,000 alerts over 10,000 aggregation groups (alertname × cluster, 10
//! instances each), a 6-route tree with equality and regex matchers, 10 silences (none
//! matching) and one inhibit rule.
//!
//! * `pipeline/new_alerts`: normalize each alert from raw fields (label map + Alert),
//!   ingest all 100k into a fresh core, then flush all 10k groups once (silence and
//!   inhibit checks, needs_update, incident creation, notification effects).
//! * `pipeline/new_alerts_prebuilt`: the same, with alerts already normalized.
//! * `pipeline/resend`: the 100k alerts again, identical and firing, into a core that
//!   already knows them (Prometheus re-sending every evaluation).
//!
//! Run: `cargo bench -p signalcraft-benches --bench pipeline`.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use signalcraft_core::engine::{Effect, EngineConfig, EngineCore};
use signalcraft_core::incident::Actor;
use signalcraft_core::inhibit::InhibitRuleConfig;
use signalcraft_core::model::{Alert, AlertStatus, Labels, Severity, Source};
use signalcraft_core::routing::{MatcherSpec, NotifyTarget, RouteConfig};
use signalcraft_core::scheduler::JobKind;
use signalcraft_core::silence::SilenceSpec;

const ALERTS: usize = 100_000;
const NAMES: usize = 100;
const CLUSTERS: usize = 100;

fn m(s: &str) -> MatcherSpec {
    MatcherSpec::Text(s.into())
}

fn child(matchers: &[&str], receiver: &str) -> RouteConfig {
    RouteConfig {
        matchers: matchers.iter().map(|s| m(s)).collect(),
        receiver: Some(receiver.into()),
        ..Default::default()
    }
}

fn config() -> EngineConfig {
    let route = RouteConfig {
        receiver: Some("default".into()),
        notify: Some(vec![NotifyTarget {
            channel: "slack".into(),
            target: "#ops".into(),
        }]),
        group_by: Some(vec!["alertname".into(), "cluster".into()]),
        group_wait: Some("30s".into()),
        group_interval: Some("5m".into()),
        routes: vec![
            child(&["team=payments"], "payments"),
            child(&["severity=~\"critical|error\"", "env=prod"], "pager"),
            RouteConfig {
                routes: vec![child(&["cluster=~\"c1.*\""], "eu")],
                ..child(&["team=~\"infra|platform\""], "infra")
            },
            child(&["env!=prod"], "staging"),
            child(&["service!~\"api|web\""], "backend"),
        ],
        ..Default::default()
    };
    EngineConfig {
        route,
        inhibit_rules: vec![InhibitRuleConfig {
            source_matchers: vec![m("alertname=ClusterDown")],
            target_matchers: vec![m("severity=warning")],
            equal: vec!["cluster".into()],
        }],
        ..Default::default()
    }
}

fn t0() -> Timestamp {
    "2026-03-02T10:00:00Z".parse().unwrap()
}

/// The raw fields a provider extracts before normalizing.
struct Raw {
    name: String,
    cluster: String,
    instance: String,
    team: &'static str,
}

fn raws() -> Vec<Raw> {
    (0..ALERTS)
        .map(|i| Raw {
            name: format!("Alert{}", i % NAMES),
            cluster: format!("c{}", (i / NAMES) % CLUSTERS),
            instance: format!("10.0.{}.{}:9100", i / 256 % 256, i % 256),
            team: ["infra", "payments", "web", "platform"][i % 4],
        })
        .collect()
}

fn normalize(r: &Raw, src: &Source) -> Alert {
    let mut labels = Labels::new();
    labels.insert("alertname".into(), r.name.clone());
    labels.insert("cluster".into(), r.cluster.clone());
    labels.insert("instance".into(), r.instance.clone());
    labels.insert("team".into(), r.team.into());
    labels.insert("env".into(), "prod".into());
    let mut a = Alert::firing(src.clone(), "high latency", labels);
    a.severity = Severity::Warning;
    a
}

fn fresh_core() -> EngineCore {
    let mut core = EngineCore::new(config().compile().expect("bench config"));
    let mut out = Vec::new();
    for i in 0..10 {
        let spec = SilenceSpec {
            id: None,
            matchers: vec![m(&format!("alertname=Other{i}")), m("cluster=~\"c9.*\"")],
            starts_at: Some(t0()),
            ends_at: t0() + jiff::SignedDuration::from_hours(24),
            created_by: "bench".into(),
            comment: String::new(),
        };
        core.put_silence(&spec, Actor::System, t0(), &mut out)
            .expect("silence");
    }
    core
}

/// Ingests every alert, then runs every flush job the ingest scheduled.
fn run_pipeline(
    core: &mut EngineCore,
    alerts: impl Iterator<Item = Alert>,
    out: &mut Vec<Effect>,
) -> usize {
    let now = t0();
    for a in alerts {
        core.ingest_alert(a, now, out);
    }
    let flushes: Vec<(String, Timestamp)> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Schedule(j) => match &j.kind {
                JobKind::GroupFlush { group_key } => Some((group_key.clone(), j.due)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let later = now + jiff::SignedDuration::from_secs(30);
    let mut notified = 0;
    let mut flush_out = Vec::with_capacity(8);
    for (key, due) in &flushes {
        flush_out.clear();
        core.flush_job(key, *due, later, &mut flush_out);
        notified += flush_out
            .iter()
            .filter(|e| matches!(e, Effect::Notify(_)))
            .count();
    }
    notified
}

fn bench(c: &mut Criterion) {
    let src = Source {
        provider: "alertmanager".into(),
        integration: "prom".into(),
    };
    let raws = raws();
    let prebuilt: Vec<Alert> = raws.iter().map(|r| normalize(r, &src)).collect();

    // Sanity: the workload really makes 10k groups and notifies each once.
    {
        let mut core = fresh_core();
        let mut out = Vec::new();
        let n = run_pipeline(&mut core, prebuilt.iter().cloned(), &mut out);
        assert_eq!(core.group_count(), NAMES * CLUSTERS);
        assert_eq!(n, NAMES * CLUSTERS);
        assert!(prebuilt.iter().all(|a| a.status == AlertStatus::Firing));
    }

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(ALERTS as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));

    g.bench_function("new_alerts", |b| {
        b.iter_batched(
            || (fresh_core(), Vec::with_capacity(ALERTS * 3)),
            |(mut core, mut out)| {
                let n = run_pipeline(&mut core, raws.iter().map(|r| normalize(r, &src)), &mut out);
                (core, out, n)
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("new_alerts_prebuilt", |b| {
        b.iter_batched(
            || {
                (
                    fresh_core(),
                    prebuilt.clone(),
                    Vec::with_capacity(ALERTS * 3),
                )
            },
            |(mut core, alerts, mut out)| {
                let n = run_pipeline(&mut core, alerts.into_iter(), &mut out);
                (core, out, n)
            },
            BatchSize::PerIteration,
        )
    });

    let mut known = fresh_core();
    let mut out = Vec::new();
    run_pipeline(&mut known, prebuilt.iter().cloned(), &mut out);
    let later = t0() + jiff::SignedDuration::from_secs(60);
    g.bench_function("resend", |b| {
        b.iter_batched(
            || (prebuilt.clone(), Vec::with_capacity(ALERTS)),
            |(alerts, mut out)| {
                for a in alerts {
                    known.ingest_alert(a, later, &mut out);
                }
                out
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
