//! The in-memory pipeline: normalize → fingerprint → dedup → route → group, plus the
//! group flushes where silences and inhibition are evaluated, on the pure
//! `EngineCore` (one core, no I/O).
//!
//! Workload: 100,000 alerts over 10,000 aggregation groups (alertname × cluster, 10
//! instances each), a 6-route tree with equality and regex matchers, 10 silences (none
//! matching) and one inhibit rule.
//!
//! * `pipeline/normalize_to_group`: normalize each alert from raw fields (label map +
//!   Alert), then fingerprint → dedup → route → group into a fresh core, and evaluate
//!   its silence/inhibit mute as a flush does. Elements = alerts.
//! * `pipeline/to_group`: the same with alerts already normalized.
//! * `pipeline/resend`: the 100k alerts again, identical and firing, into a core that
//!   already knows them (Prometheus re-sending every evaluation), by reference.
//! * `pipeline/resend_owned`: the same through `EngineCore::ingest` by value, as the
//!   server calls it: each duplicate is also freed inside the timed loop.
//! * `pipeline/to_group_hot_input`, `pipeline/resend_hot_input`: the same work, timing
//!   only the engine on batches of 1,000 freshly copied (cache-hot) alerts, as after a
//!   provider parsed them.
//! * `pipeline/to_group_cpu_time`, `pipeline/resend_owned_cpu_time`: `to_group` and
//!   `resend_owned` timed by the thread's CPU time rather than the wall clock (the
//!   machine is shared; this is the "one core" figure).
//! * `pipeline/normalize_to_group_cpu_time`: `normalize_to_group` timed by thread CPU
//!   time (normalization from raw fields inside the timed loop).
//! * `pipeline/to_group_reserved_cpu_time`: `to_group_cpu_time` with the core's indexes
//!   pre-sized by `EngineCore::reserve` (untimed), as an embedder knowing its size does.
//! * `pipeline/to_group_batched_cpu_time`: `to_group_cpu_time` with the effects taken
//!   per batch of 1,000 alerts into one reused buffer, as the shell commits batches.
//! * `pipeline/resend_cpu_time`: `resend` (borrowed) timed by thread CPU time.
//! * `pipeline/resend_key_cpu_time`: the re-send check from borrowed parts
//!   (`ResendKeyBuilder` + `EngineCore::ingest_known_resend`), no owned `Alert`.
//! * `pipeline/resend_owned_all_cpu_time`: `resend_owned_cpu_time` with the 100k events
//!   handed over as one batch (`EngineCore::ingest_all`, as the shell's batch loop).
//! * `pipeline/compact_cpu_time`: `EngineCore::compact_alerts` over the 100k alerts just
//!   ingested (raw payloads released, alerts packed; what the shell runs once a batch's
//!   records are encoded), thread CPU time. Its per-alert cost adds to `to_group`'s.
//! * `pipeline/first_flush_10k_groups`: the first flush of all 10k groups (needs_update,
//!   incident creation with timeline entries, one notification with 10 alerts each).
//!   Elements = groups.
//!
//! Run: `cargo bench -p signalcraft-benches --bench pipeline`.

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jiff::Timestamp;
use signalcraft_core::engine::core::ResendKeyBuilder;
use signalcraft_core::engine::{Effect, EngineConfig, EngineCore};
use signalcraft_core::incident::Actor;
use signalcraft_core::inhibit::InhibitRuleConfig;
use signalcraft_core::model::{Alert, AlertStatus, Event, Fingerprint, Labels, Severity, Source};
use signalcraft_core::routing::{MatcherSpec, NotifyTarget, RouteConfig};
use signalcraft_core::scheduler::JobKind;
use signalcraft_core::silence::SilenceSpec;

/// With `--features mimalloc`: the reference server's allocator (`signalcraft-server`
/// runs mimalloc), so the figures show the pipeline as the server runs it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ALERTS: usize = 100_000;
const NAMES: usize = 100;
const CLUSTERS: usize = 100;
/// Alerts per freshly normalized batch in the hot-input variants.
const CHUNK: usize = 1_000;

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
    // Built in one go from borrowed pairs, as a provider builds it from its parsed
    // body: sorted once on the stack, every name and value copied into the set's one
    // allocation.
    let labels = Labels::from([
        ("alertname", r.name.as_str()),
        ("cluster", r.cluster.as_str()),
        ("instance", r.instance.as_str()),
        ("team", r.team),
        ("env", "prod"),
    ]);
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

/// The pipeline up to the group: ingest (fingerprint, dedup, route, group) each alert
/// and evaluate its silence/inhibit mute as a flush would. Returns how many are muted.
fn to_groups(
    core: &mut EngineCore,
    alerts: impl Iterator<Item = Alert>,
    out: &mut Vec<Effect>,
) -> usize {
    let now = t0();
    let mut muted = 0;
    for a in alerts {
        let fp = core.ingest_alert(a, now, out);
        muted += usize::from(core.is_muted(fp, now));
    }
    muted
}

/// Runs every flush job `out` scheduled (first notification of every group: needs_update,
/// incident creation with its timeline, one notification per group).
fn flush_all(core: &mut EngineCore, out: &[Effect]) -> usize {
    let later = t0() + jiff::SignedDuration::from_secs(30);
    let mut notified = 0;
    let mut flush_out = Vec::with_capacity(32);
    for e in out {
        if let Effect::Schedule(j) = e
            && let JobKind::GroupFlush { group_key } = &j.kind
        {
            flush_out.clear();
            core.flush_job(group_key, j.due, later, &mut flush_out);
            notified += flush_out
                .iter()
                .filter(|e| matches!(e, Effect::Notify(_)))
                .count();
        }
    }
    notified
}

/// With `--features mimalloc`, as `signalcraft-server` starts: transparent huge pages
/// off for this process (mimalloc would otherwise fault in and zero 2 MiB per first
/// touch of an arena region).
#[cfg(feature = "mimalloc")]
fn disable_transparent_huge_pages() {
    // SAFETY: prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) takes integer arguments only and
    // changes a per-process flag; no memory is passed to the kernel.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// CPU time this thread has run (Linux `/proc/thread-self/schedstat`, first field, ns).
fn thread_cpu_time() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat (Linux)");
    let ns: u64 = s
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .expect("schedstat run time");
    Duration::from_nanos(ns)
}

fn bench(c: &mut Criterion) {
    #[cfg(feature = "mimalloc")]
    disable_transparent_huge_pages();
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
        assert_eq!(to_groups(&mut core, prebuilt.iter().cloned(), &mut out), 0);
        assert_eq!(core.group_count(), NAMES * CLUSTERS);
        assert_eq!(flush_all(&mut core, &out), NAMES * CLUSTERS);
        assert!(prebuilt.iter().all(|a| a.status == AlertStatus::Firing));
    }

    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(ALERTS as u64));

    g.bench_function("normalize_to_group", |b| {
        b.iter_batched(
            || (fresh_core(), Vec::with_capacity(ALERTS * 3)),
            |(mut core, mut out)| {
                let n = to_groups(&mut core, raws.iter().map(|r| normalize(r, &src)), &mut out);
                (core, out, n)
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("to_group", |b| {
        b.iter_batched(
            || {
                (
                    fresh_core(),
                    prebuilt.clone(),
                    Vec::with_capacity(ALERTS * 3),
                )
            },
            |(mut core, alerts, mut out)| {
                let n = to_groups(&mut core, alerts.into_iter(), &mut out);
                (core, out, n)
            },
            BatchSize::PerIteration,
        )
    });

    let mut known = fresh_core();
    let mut out = Vec::new();
    to_groups(&mut known, prebuilt.iter().cloned(), &mut out);
    flush_all(&mut known, &out);
    let later = t0() + jiff::SignedDuration::from_secs(60);
    g.bench_function("resend", |b| {
        b.iter_batched(
            || Vec::with_capacity(ALERTS),
            |mut out| {
                for a in &prebuilt {
                    known.ingest_alert_ref(a, later, &mut out);
                }
                out
            },
            BatchSize::PerIteration,
        )
    });

    // The server's path: `EngineCore::ingest` takes the event by value, so a duplicate
    // is also dropped (freed) inside the timed loop. The copies are made untimed.
    g.bench_function("resend_owned", |b| {
        b.iter_batched(
            || (prebuilt.clone(), Vec::with_capacity(ALERTS)),
            |(alerts, mut out)| {
                for a in alerts {
                    known.ingest(Event::Alert(a), later, &mut out);
                }
                out
            },
            BatchSize::PerIteration,
        )
    });

    // Hot-input variants: in a server the alert was parsed and normalized a moment ago
    // and sits in cache. Each chunk of 1,000 alerts is copied untimed (fresh, cached
    // copies), then only the engine's work on it is timed (criterion `iter_custom`).
    g.bench_function("to_group_hot_input", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut core = fresh_core();
                let mut out = Vec::with_capacity(ALERTS * 3);
                for chunk in prebuilt.chunks(CHUNK) {
                    let fresh: Vec<Alert> = chunk.to_vec();
                    let start = Instant::now();
                    to_groups(&mut core, fresh.into_iter(), &mut out);
                    total += start.elapsed();
                }
                drop((core, out));
            }
            total
        })
    });

    g.bench_function("resend_hot_input", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut out = Vec::with_capacity(CHUNK);
            for _ in 0..iters {
                for chunk in prebuilt.chunks(CHUNK) {
                    let fresh: Vec<Alert> = chunk.to_vec();
                    out.clear();
                    let start = Instant::now();
                    for a in &fresh {
                        known.ingest_alert_ref(a, later, &mut out);
                    }
                    total += start.elapsed();
                }
            }
            total
        })
    });

    // CPU-time variants: the same work as `to_group` / `resend_owned`, timed by this
    // thread's CPU time (`/proc/thread-self/schedstat`) instead of the wall clock, so the
    // figure is "events/s on one core" even while other processes share the machine.
    g.bench_function("to_group_cpu_time", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (mut core, alerts) = (fresh_core(), prebuilt.clone());
                let mut out = Vec::with_capacity(ALERTS * 3);
                let start = thread_cpu_time();
                std::hint::black_box(to_groups(&mut core, alerts.into_iter(), &mut out));
                total += thread_cpu_time().saturating_sub(start);
                drop((core, out));
            }
            total
        })
    });

    // `normalize_to_group` timed by thread CPU time: each alert is built from its raw
    // fields (label map + `Alert`) inside the timed loop, then the whole pipeline runs.
    g.bench_function("normalize_to_group_cpu_time", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut core = fresh_core();
                let mut out = Vec::with_capacity(ALERTS * 3);
                let start = thread_cpu_time();
                std::hint::black_box(to_groups(
                    &mut core,
                    raws.iter().map(|r| normalize(r, &src)),
                    &mut out,
                ));
                total += thread_cpu_time().saturating_sub(start);
                drop((core, out));
            }
            total
        })
    });

    // As `to_group_cpu_time` with the core's indexes pre-sized (`EngineCore::reserve`),
    // as an embedder that knows its working set does once at start.
    g.bench_function("to_group_reserved_cpu_time", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (mut core, alerts) = (fresh_core(), prebuilt.clone());
                core.reserve(ALERTS, NAMES * CLUSTERS);
                let mut out = Vec::with_capacity(ALERTS * 3);
                let start = thread_cpu_time();
                std::hint::black_box(to_groups(&mut core, alerts.into_iter(), &mut out));
                total += thread_cpu_time().saturating_sub(start);
                drop((core, out));
            }
            total
        })
    });

    // As `to_group_cpu_time`, but the effects are taken in batches of 1,000 alerts into
    // one reused buffer (cleared, i.e. dropped, inside the timed region), as the shell
    // decides and commits a batch at a time: the effect buffer is warm memory instead of
    // 36 MB of fresh pages faulted in during the timed loop.
    g.bench_function("to_group_batched_cpu_time", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut out = Vec::with_capacity(CHUNK * 3);
            for _ in 0..iters {
                let (mut core, alerts) = (fresh_core(), prebuilt.clone());
                let mut it = alerts.into_iter();
                let mut effects = 0;
                let start = thread_cpu_time();
                while it.len() > 0 {
                    out.clear();
                    std::hint::black_box(to_groups(&mut core, it.by_ref().take(CHUNK), &mut out));
                    effects += out.len();
                }
                out.clear();
                total += thread_cpu_time().saturating_sub(start);
                assert!(effects >= 2 * ALERTS);
                drop(core);
            }
            total
        })
    });

    // `resend` (borrowed, `ingest_alert_ref`) timed by thread CPU time.
    g.bench_function("resend_cpu_time", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut out = Vec::with_capacity(ALERTS);
            for _ in 0..iters {
                out.clear();
                let start = thread_cpu_time();
                for a in &prebuilt {
                    known.ingest_alert_ref(a, later, &mut out);
                }
                total += thread_cpu_time().saturating_sub(start);
            }
            total
        })
    });

    // The re-send check before an owned Alert exists: fingerprint the (borrowed) labels,
    // hash the content from borrowed parts and settle through
    // `EngineCore::ingest_known_resend`, as a provider could on its inbound path.
    g.bench_function("resend_key_cpu_time", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut out = Vec::with_capacity(ALERTS);
            for _ in 0..iters {
                out.clear();
                let start = thread_cpu_time();
                let mut known_n = 0usize;
                for a in &prebuilt {
                    let fp = Fingerprint::of_label_pairs(a.labels.iter());
                    let mut kb = ResendKeyBuilder::new(&a.summary, a.severity);
                    for (k, v) in &a.annotations {
                        kb.annotation(k, v);
                    }
                    for l in &a.links {
                        kb.link(&l.href, l.text.as_deref());
                    }
                    let key = kb.finish(fp, a.status);
                    known_n += usize::from(known.ingest_known_resend(&key, later, &mut out));
                }
                total += thread_cpu_time().saturating_sub(start);
                assert_eq!(known_n, ALERTS);
            }
            total
        })
    });

    // The effect buffer is reused across iterations (cleared untimed), as in
    // `resend_cpu_time` and as the shell reuses its per-batch buffer.
    g.bench_function("resend_owned_cpu_time", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut out = Vec::with_capacity(ALERTS);
            for _ in 0..iters {
                let alerts = prebuilt.clone();
                out.clear();
                let start = thread_cpu_time();
                for a in alerts {
                    known.ingest(Event::Alert(a), later, &mut out);
                }
                total += thread_cpu_time().saturating_sub(start);
            }
            total
        })
    });

    // As `resend_owned_cpu_time`, the whole batch handed over at once
    // (`EngineCore::ingest_all`), as the shell hands over a request's events.
    g.bench_function("resend_owned_all_cpu_time", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let events: Vec<Event> = prebuilt.iter().cloned().map(Event::Alert).collect();
                let mut out = Vec::with_capacity(ALERTS);
                let start = thread_cpu_time();
                known.ingest_all(events, later, &mut out);
                total += thread_cpu_time().saturating_sub(start);
                assert_eq!(out.len(), ALERTS);
                drop(out);
            }
            total
        })
    });

    g.bench_function("compact_cpu_time", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut core = fresh_core();
                let mut out = Vec::with_capacity(ALERTS * 3);
                to_groups(&mut core, prebuilt.clone().into_iter(), &mut out);
                let start = thread_cpu_time();
                let n = core.compact_alerts();
                total += thread_cpu_time().saturating_sub(start);
                assert_eq!(n, ALERTS);
                drop((core, out));
            }
            total
        })
    });

    g.throughput(Throughput::Elements((NAMES * CLUSTERS) as u64));
    g.bench_function("first_flush_10k_groups", |b| {
        b.iter_batched(
            || {
                let mut core = fresh_core();
                let mut out = Vec::with_capacity(ALERTS * 3);
                to_groups(&mut core, prebuilt.iter().cloned(), &mut out);
                (core, out)
            },
            |(mut core, out)| {
                let n = flush_all(&mut core, &out);
                (core, out, n)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
