//! Webhook deliveries per second to a local HTTP sink (127.0.0.1) through the
//! full delivery policy: render (Alertmanager v4 JSON) + send (pooled reqwest
//! client, connection reuse) + log (notification-log records and state in the
//! store, health window, timeout), 64 in flight.
//!
//! Sinks (every one answers each POST with `200 ok` on a kept-alive connection):
//! * `lean` — a minimal HTTP/1.1 keep-alive responder on tokio (reads the head,
//!   skips `Content-Length` body bytes, writes a fixed response), in this process;
//! * `axum` — an axum/hyper server in this process (the sink of earlier rounds);
//! * `lean_process` — the lean responder in a *separate* process (this binary
//!   re-executed with `SIGNALCRAFT_BENCH_SINK=1`, one tokio thread); its CPU is
//!   reported apart from the client's.
//!
//! The sink's CPU competes for the same 2 cores, so every case prints CPU µs per
//! delivery (user + system) beside wall-clock throughput.
//! The `channel_only` case sends the same notifications without the policy, to
//! show what the policy costs; `policy_only` runs the policy with a no-op channel.
//!
//! Target (issue 5): ≥ 20 000 webhook deliveries/s on a 2-core machine.
//!
//! `cargo bench -p signalcraft-benches --bench delivery -- flush_burst` instead runs
//! one burst of 10,000 first group flushes through the engine and the pipeline and
//! prints CPU per group (issue 7's group-notification target; see `flush_burst`).
//! `FLUSH_BURST_CASE=<substring>` runs only the matching flush cases; `--features
//! mimalloc` runs under the server's allocator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};

use axum::Router;
use axum::routing::post;
use axum::serve::ListenerExt;
use criterion::{Criterion, Throughput, criterion_group};
use signalcraft_core::channel::{Channel, Notification};
use signalcraft_core::clock::SystemClock;
use signalcraft_core::delivery::{DeliveryConfig, DeliveryOutcome, DeliveryPipeline};
use signalcraft_core::memory::{MemoryScheduler, MemoryStore};
use signalcraft_core::testing::channel::sample_notification;
use signalcraft_providers::channels::webhook::{WebhookChannel, WebhookConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BATCH: u64 = 2_048;

/// With `--features mimalloc`: the reference server's allocator (`signalcraft-server`
/// runs mimalloc), so `flush_burst` shows the flush path as the server runs it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// This process's user + system CPU time (`/proc/self/stat`, clock ticks of
/// 10 ms): on a shared machine, CPU per delivery says more than wall time.
fn cpu_time() -> Duration {
    proc_cpu_time("self")
}

/// User + system CPU time of process `pid` (`self` or a number).
fn proc_cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
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
    /// CPU of a sink running in another process.
    sink_cpu: Duration,
    deliveries: u64,
    /// Wall time of every iteration (warm-up included).
    wall: Duration,
}

impl CpuMeter {
    fn add(&mut self, cpu: Duration, deliveries: u64) {
        self.cpu += cpu;
        self.deliveries += deliveries;
    }

    /// Deliveries per wall-clock second over every iteration (warm-up included).
    fn per_sec(&self) -> f64 {
        self.deliveries as f64 / self.wall.as_secs_f64().max(1e-9)
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
            if self.sink_cpu > Duration::ZERO {
                let sink = self.sink_cpu.as_secs_f64() * 1e6 / self.deliveries as f64;
                eprintln!(
                    "{case}: + {sink:.1} µs CPU per delivery in the sink process (total {:.1} µs => ~{:.0}/s on 2 idle cores)",
                    us + sink,
                    2e6 / (us + sink)
                );
            }
        }
    }
}

const IN_FLIGHT: u64 = 64;

/// Environment variable that turns this binary into the out-of-process sink.
const SINK_ENV: &str = "SIGNALCRAFT_BENCH_SINK";

/// The axum sink (hyper HTTP/1.1 keep-alive, TCP_NODELAY) in this process.
fn axum_sink(rt: &tokio::runtime::Runtime) -> String {
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

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";

/// `Content-Length` of a request head (`0` when absent).
fn content_length(head: &[u8]) -> Option<usize> {
    let head = std::str::from_utf8(head).ok()?;
    for line in head.split("\r\n").skip(1) {
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            return v.trim().parse().ok();
        }
    }
    Some(0)
}

/// One kept-alive connection of the lean sink: answers every complete request
/// (head + `Content-Length` body, pipelining allowed) with [`RESPONSE`]. Chunked
/// bodies are not supported (the webhook channel always sends a length).
async fn lean_connection(mut s: tokio::net::TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(4 * RESPONSE.len());
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(4096);
        }
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut at = 0;
        while let Some(end) = buf[at..].windows(4).position(|w| w == b"\r\n\r\n") {
            let head_end = at + end + 4;
            let Some(len) = content_length(&buf[at..head_end]) else {
                return; // malformed: drop the connection
            };
            if buf.len() < head_end + len {
                break; // body not complete yet
            }
            out.extend_from_slice(RESPONSE);
            at = head_end + len;
        }
        buf.drain(..at);
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// Binds the lean sink on 127.0.0.1 and serves it from the current runtime.
async fn lean_sink_listen() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(lean_connection(s));
        }
    });
    format!("http://{addr}/hook")
}

/// The lean sink in this process.
fn lean_sink(rt: &tokio::runtime::Runtime) -> String {
    rt.block_on(lean_sink_listen())
}

/// The lean sink as a child process: this binary with [`SINK_ENV`] set; it
/// prints its URL and runs until its stdin closes.
fn lean_sink_process() -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SINK_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_string())
}

/// Body of the child process: a one-thread runtime serving the lean sink.
fn run_sink_process() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = lean_sink_listen().await;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{url}");
        let _ = out.flush();
        // Exit when the parent closes stdin (or dies).
        let mut stdin = tokio::io::stdin();
        let mut b = [0u8; 64];
        while matches!(stdin.read(&mut b).await, Ok(n) if n > 0) {}
    });
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
                max_in_flight: 256,
            },
            "channels[0]",
        )
        .unwrap(),
    )
}

fn pipeline(channel: Arc<dyn Channel>) -> Arc<DeliveryPipeline> {
    Arc::new(
        DeliveryPipeline::new(
            DeliveryConfig::default(),
            vec![channel],
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryScheduler::new()),
            Arc::new(SystemClock),
        )
        .unwrap(),
    )
}

/// `iters` batches of [`BATCH`] deliveries through the full policy, [`IN_FLIGHT`]
/// tasks at a time; returns the wall time.
fn run_full_policy(
    rt: &tokio::runtime::Runtime,
    p: &Arc<DeliveryPipeline>,
    seq: &Arc<AtomicU64>,
    template: &Notification,
    iters: u64,
) -> Duration {
    let p = p.clone();
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
                        n.id = format!("bench/hook/{}", seq.fetch_add(1, Ordering::Relaxed));
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
}

/// The benches' runtime: two workers, as the machine has two cores.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let lean = webhook(&lean_sink(&rt));
    let axum = webhook(&axum_sink(&rt));
    let (mut sink_child, child_url) = lean_sink_process();
    let lean_process = webhook(&child_url);
    let seq = Arc::new(AtomicU64::new(0));
    let template = sample_notification("x", "hook", "");

    let mut g = c.benchmark_group("delivery");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(15);
    g.warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(7));

    // The headline case first: the lean sink in its own process is the honest
    // "local HTTP sink" (its CPU is not the client's, as with a real receiver).
    let mut headline = None;
    for (case, channel, child) in [
        (HEADLINE_CASE, &lean_process, Some(sink_child.id())),
        ("webhook_full_policy_64_in_flight_lean_sink", &lean, None),
        ("webhook_full_policy_64_in_flight_axum_sink", &axum, None),
    ] {
        let p = pipeline(channel.clone());
        let mut meter = CpuMeter::default();
        let child = child.map(|pid| pid.to_string());
        g.bench_function(case, |b| {
            b.iter_custom(|iters| {
                let cpu0 = cpu_time();
                let sink0 = child.as_deref().map(proc_cpu_time);
                let wall = run_full_policy(&rt, &p, &seq, &template, iters);
                meter.add(cpu_time() - cpu0, iters * BATCH);
                meter.wall += wall;
                if let (Some(pid), Some(s0)) = (child.as_deref(), sink0) {
                    meter.sink_cpu += proc_cpu_time(pid) - s0;
                }
                wall
            })
        });
        meter.report(case);
        if case == HEADLINE_CASE {
            headline = Some(meter);
        }
    }
    drop(sink_child.stdin.take());
    let _ = sink_child.wait();

    let mut meter = CpuMeter::default();
    g.bench_function("webhook_channel_only_64_in_flight_lean_sink", |b| {
        b.iter_custom(|iters| {
            let cpu0 = cpu_time();
            let ch = lean.clone();
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
    meter.report("webhook_channel_only_64_in_flight_lean_sink");

    // The policy alone (log + health, no HTTP): what it costs per delivery.
    let noop = signalcraft_core::testing::channel::ScriptedChannel::new("webhook", "hook");
    let policy_only = pipeline(noop as Arc<dyn Channel>);
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
    if let Some(m) = headline.filter(|m| m.deliveries > 0) {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        eprintln!();
        eprintln!(
            "=== issue 5 headline: webhook deliveries through the full policy (render + send + log) ==="
        );
        eprintln!(
            "    sink: lean HTTP/1.1 keep-alive responder in a separate process on 127.0.0.1, {IN_FLIGHT} in flight"
        );
        eprintln!(
            "    {:.0} deliveries/s (wall, mean over {} deliveries incl. warm-up; criterion's thrpt line for {HEADLINE_CASE} is the measured figure)",
            m.per_sec(),
            m.deliveries
        );
        eprintln!(
            "    target >= 20000/s on 2 cores; load average at the end: {}",
            load.join(" ")
        );
    }
}

/// The case whose figure answers issue 5's target.
const HEADLINE_CASE: &str = "webhook_full_policy_64_in_flight_lean_sink_process";

criterion_group!(benches, bench);

/// User + system CPU time of this process's threads named `name` (`comm`, as the
/// kernel truncates it to 15 bytes).
fn thread_cpu_time(name: &str) -> Duration {
    let mut total = Duration::ZERO;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return total;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let tid = t.file_name().to_string_lossy().into_owned();
        total += proc_cpu_time(&format!("self/task/{tid}"));
    }
    total
}

/// A channel that accepts every notification and does nothing (no HTTP, no copy).
struct NoopChannel;

/// `Channel` is an `async_trait`; this is its desugared form (the benches crate does
/// not depend on the macro).
impl Channel for NoopChannel {
    fn kind(&self) -> &str {
        "webhook"
    }
    fn name(&self) -> &str {
        "hook"
    }
    fn deliver<'a, 'b, 't>(
        &'a self,
        _n: &'b Notification,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<
                        signalcraft_core::channel::Delivered,
                        signalcraft_core::channel::DeliveryError,
                    >,
                > + Send
                + 't,
        >,
    >
    where
        'a: 't,
        'b: 't,
        Self: 't,
    {
        Box::pin(async { Ok(Default::default()) })
    }
}

/// With `PERF_CTL_FIFO=<path>` (the fifo of `perf record --control fifo:<path> -D -1`),
/// turns perf's recording on (`enable`) or off (`disable`), so a profile covers the
/// flush phase only, not the ingest before it.
fn perf_control(cmd: &str) {
    if let Some(path) = std::env::var_os("PERF_CTL_FIFO")
        && let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path)
    {
        let _ = writeln!(f, "{cmd}");
    }
}

/// Counts sent deliveries; [`SentCounter::wait_for`] returns once `n` were sent.
#[derive(Default)]
struct SentCounter {
    sent: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

impl SentCounter {
    fn count(&self) -> usize {
        self.sent.load(Ordering::Acquire)
    }

    async fn wait_for(&self, n: usize) {
        loop {
            let changed = self.changed.notified();
            if self.count() >= n {
                return;
            }
            changed.await;
        }
    }
}

impl signalcraft_core::delivery::DeliverySink for SentCounter {
    fn emit(&self, event: &signalcraft_core::delivery::DeliveryEvent) {
        if let signalcraft_core::delivery::DeliveryEvent::Attempt {
            status: signalcraft_core::delivery::DeliveryStatus::Sent,
            ..
        } = event
        {
            self.sent.fetch_add(1, Ordering::AcqRel);
            self.changed.notify_waiters();
        }
    }
}

/// Alerts and groups of the flush burst (issue 7's workload: 100k alerts in 10,000
/// groups of [alertname, service]).
const BURST_ALERTS: usize = 100_000;
const BURST_GROUPS: usize = 10_000;

/// One burst of first group flushes, the shape of issue 7's group-notification
/// target: [`BURST_ALERTS`] alerts in [`BURST_GROUPS`] groups are ingested (not
/// measured), then every group's first flush comes due at the same instant and the
/// engine's run loop (`Engine::run`, as the server runs it) decides them (incident,
/// timeline, notification log), commits them and delivers every notification through
/// the delivery pipeline.
/// Prints the CPU of the whole process (engine, store writer, client, in-process
/// sink) per group for that flush phase, and its wall time. Variants: the redb store
/// and a webhook to the lean sink (what the server does), the same with a no-op
/// channel (no HTTP), and the in-memory store with a no-op channel.
fn flush_burst() {
    use signalcraft_core::clock::ManualClock;
    use signalcraft_core::engine::{Engine, EngineConfig, Notifier};
    use signalcraft_core::model::{Alert, Event, Labels, Source};
    use signalcraft_core::scheduler::Scheduler;
    use signalcraft_core::store::Store;

    let rt = runtime();
    let _guard = rt.enter();
    let url = lean_sink(&rt);
    let side = (BURST_GROUPS as f64).sqrt().ceil() as usize;
    let events: Vec<Event> = (0..BURST_ALERTS)
        .map(|n| {
            let g = n % BURST_GROUPS;
            let mut l = Labels::new();
            l.insert("alertname".into(), format!("Alert{}", g / side));
            l.insert("service".into(), format!("svc{}", g % side));
            l.insert("instance".into(), format!("i{}", n / BURST_GROUPS));
            l.insert("severity".into(), "warning".into());
            let mut a = Alert::firing(
                Source {
                    provider: "alertmanager".into(),
                    integration: "prometheus".into(),
                },
                format!("load test alert {n}"),
                l,
            );
            a.annotations
                .insert("summary".into(), format!("load test alert {n}"));
            Event::Alert(a)
        })
        .collect();
    // `FLUSH_BURST_CASE=<substring>` runs only the matching cases.
    let only = std::env::var("FLUSH_BURST_CASE").unwrap_or_default();
    for (case, redb, http) in [
        ("flush_burst_redb_webhook_lean_sink", true, true),
        ("flush_burst_redb_noop_channel", true, false),
        ("flush_burst_memory_store_noop_channel", false, false),
    ] {
        if !case.contains(only.as_str()) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut redb_store: Option<Arc<signalcraft_store::RedbStore>> = None;
        let (store, scheduler): (Arc<dyn Store>, Arc<dyn Scheduler>) = if redb {
            // `FLUSH_BURST_GROUP_WAIT_US`: the store writer's group_wait (default 1 ms).
            let mut opts = signalcraft_store::StoreOptions::default();
            if let Some(us) = std::env::var("FLUSH_BURST_GROUP_WAIT_US")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                opts.group_wait = Duration::from_micros(us);
            }
            let s = Arc::new(
                signalcraft_store::RedbStore::open_with(dir.path().join("store.redb"), opts)
                    .unwrap(),
            );
            let sched = s.scheduler();
            redb_store = Some(s.clone());
            (s, Arc::new(sched))
        } else {
            (
                Arc::new(MemoryStore::new()),
                Arc::new(MemoryScheduler::new()),
            )
        };
        let clock = ManualClock::new(jiff::Timestamp::from_second(1_800_000_000).unwrap());
        let channel: Arc<dyn Channel> = if http {
            webhook(&url)
        } else {
            Arc::new(NoopChannel)
        };
        let sent = Arc::new(SentCounter::default());
        let pipeline = Arc::new(
            DeliveryPipeline::new(
                DeliveryConfig::default(),
                vec![channel],
                store.clone(),
                scheduler.clone(),
                Arc::new(clock.clone()),
            )
            .unwrap()
            .with_sink(sent.clone()),
        );
        let cfg: EngineConfig = serde_json::from_value(serde_json::json!({"route": {
            "receiver": "hook",
            "group_by": ["alertname", "service"], "group_wait": "1s", "group_interval": "1s",
            "repeat_interval": "24h", "notify": [{"channel": "hook", "target": url}]
        }}))
        .unwrap();
        let engine = Engine::builder(cfg)
            .store(store)
            .scheduler(scheduler)
            .clock(Arc::new(clock.clone()))
            .notifier(pipeline as Arc<dyn Notifier>)
            .in_memory_flush_timers(true)
            .compact_alerts(true)
            .build()
            .unwrap();
        let ingest_wall = Instant::now();
        rt.block_on(async {
            for chunk in events.chunks(1_000) {
                engine.ingest(chunk.to_vec()).await.unwrap();
            }
        });
        let ingest_wall = ingest_wall.elapsed();
        clock.advance(Duration::from_secs(1));
        let cpu0 = cpu_time();
        let writer0 = thread_cpu_time("signalcraft-sto");
        let stats0 = redb_store.as_ref().map(|s| s.writer_stats());
        perf_control("enable");
        let wall = Instant::now();
        // As the server runs it: the engine's run loop (flush rounds decided while
        // earlier rounds commit and deliver), until every group's notification is sent.
        let all_sent = sent.clone();
        rt.block_on(engine.run(async move { all_sent.wait_for(BURST_GROUPS).await }))
            .unwrap();
        let wall = wall.elapsed();
        perf_control("disable");
        let cpu = cpu_time() - cpu0;
        let writer = thread_cpu_time("signalcraft-sto") - writer0;
        // The store writer's requests and transactions in the flush phase.
        let writes = match (redb_store.as_ref(), stats0) {
            (Some(s), Some(before)) => {
                let after = s.writer_stats();
                format!(
                    "; store writer: {} requests in {} transactions, {:.0} ms applying, \
                     {:.0} ms committing (wall)",
                    after.requests - before.requests,
                    after.transactions - before.transactions,
                    (after.apply_nanos - before.apply_nanos) as f64 / 1e6,
                    (after.commit_nanos - before.commit_nanos) as f64 / 1e6
                )
            }
            _ => String::new(),
        };
        assert_eq!(sent.count(), BURST_GROUPS, "every group notified once");
        assert_eq!(
            engine.with_core(|c| c.incident_count()),
            BURST_GROUPS,
            "one incident per group"
        );
        eprintln!(
            "{case}: {BURST_GROUPS} first flushes of {} alerts each: {:.0} µs CPU per group \
             (whole process; {:.0} µs of it in the store's writer thread), wall {:.2?} \
             ({:.0} groups/s); ingest took {ingest_wall:.2?}{writes}",
            BURST_ALERTS / BURST_GROUPS,
            cpu.as_secs_f64() * 1e6 / BURST_GROUPS as f64,
            writer.as_secs_f64() * 1e6 / BURST_GROUPS as f64,
            wall,
            BURST_GROUPS as f64 / wall.as_secs_f64()
        );
        if std::env::var_os("FLUSH_BURST_BYTES").is_some() {
            print_stored_bytes(&rt, engine.store().as_ref());
        }
        drop(engine);
    }
}

/// With `FLUSH_BURST_BYTES=1`: rows and bytes per group the burst left in the tables
/// a first notification writes (the notification log: rows, cursors, records,
/// markers and indexes, by key kind).
fn print_stored_bytes(rt: &tokio::runtime::Runtime, store: &dyn signalcraft_core::store::Store) {
    use signalcraft_core::store::{Scan, Table};
    for table in [
        Table::Groups,
        Table::Incidents,
        Table::Timeline,
        Table::NotificationLog,
    ] {
        let rows = rt.block_on(store.scan(table, Scan::all())).unwrap();
        let mut kinds: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        for (k, v) in &rows {
            let kind = if k.starts_with('~') {
                k.split('/').next().unwrap_or("").to_string()
            } else {
                k.rsplit('/').next().unwrap_or("").chars().take(4).collect()
            };
            let e = kinds.entry(kind).or_default();
            e.0 += 1;
            e.1 += k.len() + v.len();
        }
        for (kind, (n, bytes)) in kinds {
            eprintln!(
                "  {table:?} {kind}: {:.2} rows, {:.0} B (key + value) per group",
                n as f64 / BURST_GROUPS as f64,
                bytes as f64 / BURST_GROUPS as f64
            );
        }
    }
}

fn main() {
    #[cfg(feature = "mimalloc")]
    disable_transparent_huge_pages();
    if std::env::var_os(SINK_ENV).is_some() {
        run_sink_process();
        return;
    }
    if std::env::args().any(|a| a == "flush_burst") {
        flush_burst();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
