//! Inbound parse + normalize throughput per provider, on the provider's own fixtures
//! (`fixtures/<provider>/*.json`, cases that produce events), side by side with
//! `serde_json::from_slice::<serde_json::Value>` on the same bytes.
//!
//! Three rows per provider, each over the whole fixture set of that provider:
//! * `value` — the baseline: untyped parse into `serde_json::Value`.
//! * `typed` — `Provider::parse` with raw payloads off (typed decode + normalize).
//! * `typed+raw` — `Provider::parse` with raw payloads kept (the default): each
//!   event's `raw` is a compact copy of its slice of the body (`RawPayload`).
//! * `typed+raw/to_json` — not a parse: the `typed+raw` events of one iteration
//!   written as JSON (`serde_json::to_writer` into a reused buffer, raw payloads
//!   included), the step where a raw payload's text is copied out again. Its
//!   throughput figure is relative to the request bytes, like the other rows.
//!
//! All rows parse exactly the same request bodies. `Provider::verify` (signatures,
//! tokens) is not part of any row: every provider is built with `Verification::Skip`.
//! For CloudWatch the `value` row parses the SNS envelope (its `Message` stays a
//! string, unescaped), while `typed` also reads the alarm JSON inside `Message` and
//! normalizes it — strictly more work than the baseline.
//!
//! `--features mimalloc` runs every row under the server's allocator (mimalloc)
//! instead of the system allocator (glibc here).
//!
//! Time is this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not the wall clock,
//! so the three rows stay comparable while other processes share the machine (on an
//! idle machine the two agree). Throughput is reported in bytes/s by criterion;
//! events per iteration are printed once at start so events/s = (events per
//! iteration) / (time per iteration).

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use signalcraft_core::model::Event;
use signalcraft_core::provider::{InboundRequest, Provider};
use signalcraft_providers::sources::{Integration, Registry, Verification};

/// With `--features mimalloc`: the reference server's allocator (`signalcraft-server`
/// runs mimalloc), for figures as the server parses; the default is the system
/// allocator. Every row of a run uses the same allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Case {
    req: InboundRequest,
}

fn load(provider: &str, registry: &Registry) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(provider);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") && !n.contains(".expected.") && !n.contains("integration"))
        .collect();
    names.sort();
    let probe = registry
        .build_with(&Integration::new(provider, "bench"), Verification::Skip)
        .unwrap();
    let mut cases = Vec::new();
    for n in names {
        let case = n.trim_end_matches(".json");
        let headers = fs::read_to_string(dir.join(format!("{case}.headers")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let req = InboundRequest {
            headers,
            body: fs::read(dir.join(&n)).unwrap(),
            url: None,
            received_at: Some("2026-01-01T00:00:00Z".parse().unwrap()),
        };
        // Only cases that normalize to events under default options.
        if probe.parse(&req).map(|e| !e.is_empty()).unwrap_or(false) {
            cases.push(Case { req });
        }
    }
    cases
}

fn provider_for(registry: &Registry, provider: &str, keep_raw: bool) -> Box<dyn Provider> {
    let mut i = Integration::new(provider, "bench");
    i.keep_raw = keep_raw;
    if provider == "generic" {
        // The generic fixtures' own mapping.
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/generic/integration.json");
        let cfg: Integration = serde_json::from_str(&fs::read_to_string(dir).unwrap()).unwrap();
        i.options = cfg.options;
    }
    registry.build_with(&i, Verification::Skip).unwrap()
}

/// CPU time this thread has run (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution;
/// `/proc/thread-self/schedstat` only advances at scheduler ticks, too coarse for
/// the few-millisecond samples here).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` `iters` times and returns the CPU time this thread spent.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = thread_cpu_time();
    for _ in 0..iters {
        f();
    }
    thread_cpu_time().saturating_sub(start)
}

fn bench(c: &mut Criterion) {
    let registry = Registry::builtin();
    let types: Vec<String> = registry.types().map(String::from).collect();
    for ty in types {
        let cases = load(&ty, &registry);
        if cases.is_empty() {
            continue;
        }
        let bytes: usize = cases.iter().map(|c| c.req.body.len()).sum();
        let typed = provider_for(&registry, &ty, false);
        let with_raw = provider_for(&registry, &ty, true);
        let events: usize = cases
            .iter()
            .map(|c| typed.parse(&c.req).map(|e| e.len()).unwrap_or(0))
            .sum();
        println!(
            "providers/{ty}: {} fixtures, {bytes} bytes, {events} events per iteration",
            cases.len()
        );
        let mut g = c.benchmark_group(format!("providers/{ty}"));
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function("value", |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for c in &cases {
                        black_box(
                            serde_json::from_slice::<serde_json::Value>(black_box(&c.req.body))
                                .unwrap(),
                        );
                    }
                })
            })
        });
        g.bench_function("typed", |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for c in &cases {
                        black_box(typed.parse(black_box(&c.req)).unwrap());
                    }
                })
            })
        });
        g.bench_function("typed+raw", |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for c in &cases {
                        black_box(with_raw.parse(black_box(&c.req)).unwrap());
                    }
                })
            })
        });
        // The step after parsing that raw payloads add work to: writing the events as
        // JSON (as the store record of each alert is written), raw payloads included.
        let parsed: Vec<Event> = cases
            .iter()
            .flat_map(|c| with_raw.parse(&c.req).unwrap())
            .collect();
        let mut out = Vec::new();
        g.bench_function("typed+raw/to_json", |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for e in &parsed {
                        out.clear();
                        serde_json::to_writer(&mut out, black_box(e)).unwrap();
                        black_box(&out);
                    }
                })
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
