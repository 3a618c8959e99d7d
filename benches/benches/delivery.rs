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

    g.bench_function("webhook_full_policy_64_in_flight", |b| {
        b.iter_custom(|iters| {
            let p = pipeline.clone();
            let seq = seq.clone();
            let template = template.clone();
            rt.block_on(async move {
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
            })
        })
    });

    g.bench_function("webhook_channel_only_64_in_flight", |b| {
        b.iter_custom(|iters| {
            let ch = channel.clone();
            let template = template.clone();
            rt.block_on(async move {
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
            })
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
    g.bench_function("policy_only_noop_channel", |b| {
        b.iter_custom(|iters| {
            let p = policy_only.clone();
            let seq = seq.clone();
            let template = template.clone();
            rt.block_on(async move {
                let start = Instant::now();
                for _ in 0..iters * BATCH {
                    let mut n = template.clone();
                    n.id = format!("noop/hook/{}", seq.fetch_add(1, Ordering::Relaxed));
                    p.notify(n).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
