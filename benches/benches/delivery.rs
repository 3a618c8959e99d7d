//! Webhook deliveries per second to a local HTTP sink (127.0.0.1) through the
//! full delivery policy: render (Alertmanager v4 JSON) + send (pooled reqwest
//! client, connection reuse) + log (notification-log records and state in the
//! store, watchdog job armed and cancelled in the scheduler), 64 in flight.
//! The `channel_only` case sends the same notifications without the policy, to
//! show what the policy costs.
//!
//! Target (issue 5): ≥ 20 000 webhook deliveries/s on a 2-core machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use axum::serve::ListenerExt;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use signalcraft_core::channel::Channel;
use signalcraft_core::clock::SystemClock;
use signalcraft_core::delivery::{DeliveryConfig, DeliveryOutcome, DeliveryPipeline};
use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::testing::channel::sample_notification;
use signalcraft_providers::channels::webhook::{WebhookChannel, WebhookConfig};

const BATCH: u64 = 2_048;

/// This process's user + system CPU time (`/proc/self/stat`, clock ticks of
/// 10 ms): on a shared machine, CPU per delivery says more than wall time.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command name: state is field 0, utime 11, stime 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Accumulates CPU time (client, policy and sink: one process) and deliveries over every iteration of one
/// case, and prints CPU µs per delivery at the end.
#[derive(Default)]
struct CpuMeter {
    cpu: Duration,
    deliveries: u64,
}

impl CpuMeter {
    fn add(&mut self, cpu: Duration, deliveries: u64) {
        self.cpu += cpu;
        self.deliveries += deliveries;
    }

    fn report(&self, case: &str) {
        if self.deliveries > 0 {
            let us = self.cpu.as_secs_f64() * 1e6 / self.deliveries as f64;
            eprintln!(
                "{case}: {:.1} µs CPU per delivery over {} deliveries (2 cores => ~{:.0}/s if CPU-bound and idle)",
                us,
                self.deliveries,
                2e6 / us
            );
        }
    }
}

const IN_FLIGHT: u64 = 64;

fn sink(rt: &tokio::runtime::Runtime) -> String {
    rt.block_on(async {
        let app = Router::new().route("/hook", post(|| async { "ok" }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Answer without waiting for Nagle + delayed ACK.
        let l = l.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            axum::serve(l, app).await.unwrap();
        });
        format!("http://{addr}/hook")
    })
}

fn webhook(url: &str) -> Arc<dyn Channel> {
    Arc::new(
        WebhookChannel::new(
            &WebhookConfig {
                name: "hook".into(),
                url: url.into(),
                headers: Default::default(),
                secret: Some("bench-secret".into()),
                timeout_ms: 10_000,
                max_alerts: 0,
            },
            "channels[0]",
        )
        .unwrap(),
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = sink(&rt);
    let channel = webhook(&url);
    let _guard = rt.enter();
    let pipeline = Arc::new(
        DeliveryPipeline::new(
            DeliveryConfig::default(),
            vec![channel.clone()],
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryScheduler::new()),
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    let seq = Arc::new(AtomicU64::new(0));
    let template = sample_notification("x", "hook", "");

    let mut g = c.benchmark_group("delivery");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));

    let mut meter = CpuMeter::default();
    g.bench_function("webhook_full_policy_64_in_flight", |b| {
        b.iter_custom(|iters| {
            let cpu0 = cpu_time();
            let p = pipeline.clone();
            let seq = seq.clone();
            let template = template.clone();
            let wall = rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tasks = Vec::new();
                    for _ in 0..IN_FLIGHT {
                        let p = p.clone();
                        let seq = seq.clone();
                        let template = template.clone();
                        tasks.push(tokio::spawn(async move {
                            for _ in 0..BATCH / IN_FLIGHT {
                                let mut n = template.clone();
                                n.id =
                                    format!("bench/hook/{}", seq.fetch_add(1, Ordering::Relaxed));
                                let out = p.notify(n).await.unwrap();
                                assert!(matches!(out, DeliveryOutcome::Sent { .. }), "{out:?}");
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
                start.elapsed()
            });
            meter.add(cpu_time() - cpu0, iters * BATCH);
            wall
        })
    });

    meter.report("webhook_full_policy_64_in_flight");
    let mut meter = CpuMeter::default();
    g.bench_function("webhook_channel_only_64_in_flight", |b| {
        b.iter_custom(|iters| {
            let cpu0 = cpu_time();
            let ch = channel.clone();
            let template = template.clone();
            let wall = rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tasks = Vec::new();
                    for _ in 0..IN_FLIGHT {
                        let ch = ch.clone();
                        let n = template.clone();
                        tasks.push(tokio::spawn(async move {
                            for _ in 0..BATCH / IN_FLIGHT {
                                ch.deliver(&n).await.unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
                start.elapsed()
            });
            meter.add(cpu_time() - cpu0, iters * BATCH);
            wall
        })
    });
    // The policy alone (log + scheduler + health, no HTTP): what it costs per delivery.
    let noop = signalcraft_core::testing::channel::ScriptedChannel::new("webhook", "hook");
    let policy_only = Arc::new(
        DeliveryPipeline::new(
            DeliveryConfig::default(),
            vec![noop as Arc<dyn Channel>],
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryScheduler::new()),
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    meter.report("webhook_channel_only_64_in_flight");
    let mut meter = CpuMeter::default();
    g.bench_function("policy_only_noop_channel", |b| {
        b.iter_custom(|iters| {
            let cpu0 = cpu_time();
            let p = policy_only.clone();
            let seq = seq.clone();
            let template = template.clone();
            let wall = rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters * BATCH {
                    let mut n = template.clone();
                    n.id = format!("noop/hook/{}", seq.fetch_add(1, Ordering::Relaxed));
                    p.notify(n).await.unwrap();
                }
                start.elapsed()
            });
            meter.add(cpu_time() - cpu0, iters * BATCH);
            wall
        })
    });
    meter.report("policy_only_noop_channel");
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
