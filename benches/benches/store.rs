//! Store benchmarks: durable ingest (fsync on, group commit) with 1, 8 and 64
//! concurrent writers, one ~500-byte alert per commit (and 64 writers sending 4, 8
//! and 16 alerts per commit, like a grouped Alertmanager webhook), beside the
//! in-memory store;
//! incident-by-id reads; who-is-on-call answered from the on-call directory loaded
//! out of each store (as the server does at start: the schedules and users are
//! store records, queries are answered from memory); and per-commit latency
//! percentiles (printed before the criterion runs, since criterion reports means,
//! not p99).
//!
//! Also a bulk pass (write amplification of the journaled ingest's background apply):
//! 100,000 new ~570-byte alerts with random 16-hex-digit keys committed in batches of
//! 20,000 and of 800 into a fresh file, then the same keys updated once (in another
//! order), reporting
//! alerts/s, file size, bytes written (`/proc/self/io` `write_bytes`) and the store
//! writer thread's CPU time.
//!
//! Run: `cargo bench -p signalcraft-benches --bench store`
//! (about 3 minutes; the passes and the closing summary of the issue 6 targets
//! only: `... --bench store -- nomatch`; passes:
//! `STORE_BENCH_PASSES=bulk`, `latency` or `reads`; latency shapes:
//! `STORE_BENCH_SHAPES=64x1,64x8`; gathering off for an A/B run:
//! `STORE_BENCH_GROUP_WAIT_US=0`).

use signalcraft_benches::probe::{percentile, process_cpu};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use signalcraft_core::escalation::{Directory, DirectoryConfig};
use signalcraft_core::memory::MemoryStore;
use signalcraft_core::oncall::{Override, Rotation, Schedule, ScheduleLayer, ShiftLength, User};
use signalcraft_core::store::{Scan, Store, Table, WriteBatch};
use signalcraft_store::{RedbStore, StoreOptions};

/// A realistic normalized alert, about 500 bytes of JSON.
fn alert_json(key: &str) -> Vec<u8> {
    format!(
        concat!(
            r#"{{"fingerprint":"{k}","status":"firing","source":"alertmanager","#,
            r#""labels":{{"alertname":"HighLatency","severity":"critical","service":"checkout","#,
            r#""instance":"checkout-7f9c6d5b8-x2x9q:8080","job":"checkout","namespace":"prod","cluster":"eu-west-1"}},"#,
            r#""annotations":{{"summary":"p99 latency above 2s for 5 minutes","#,
            r#""description":"The checkout service p99 latency is 2.7s (threshold 2s) on eu-west-1.","#,
            r#""runbook_url":"https://runbooks.example.invalid/checkout/latency"}},"#,
            r#""starts_at":"2026-11-27T03:00:00Z","generator_url":"http://prometheus:9090/graph?g0.expr=x"}}"#
        ),
        k = key
    )
    .into_bytes()
}

/// One commit of `per` alerts with fresh keys.
fn batch(seq: &AtomicU64, per: usize) -> WriteBatch {
    let mut b = WriteBatch::new();
    for _ in 0..per {
        let key = format!("fp-{:012}", seq.fetch_add(1, Ordering::Relaxed));
        let value = alert_json(&key);
        b.put_raw(Table::Alerts, key, value);
    }
    b
}

/// `total` commits of `alerts` alerts each, spread over `writers` tasks; returns the
/// elapsed time and, when `latencies` is set, every commit's latency.
async fn ingest<S: Store>(
    store: Arc<S>,
    writers: usize,
    alerts: usize,
    total: u64,
    seq: Arc<AtomicU64>,
    latencies: bool,
) -> (Duration, Vec<Duration>) {
    // Exactly `total` commits (criterion's iteration count), spread evenly.
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers as u64 {
        let per_writer = total / writers as u64 + u64::from(w < total % writers as u64);
        let (store, seq) = (store.clone(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for _ in 0..per_writer {
                let b = batch(&seq, alerts);
                let t = Instant::now();
                store.commit(b).await.expect("commit");
                if latencies {
                    lat.push(t.elapsed());
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer task"));
    }
    (start.elapsed(), all)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Commit shapes measured: (concurrent writers, alerts per commit).
const SHAPES: [(usize, usize); 6] = [(1, 1), (8, 1), (64, 1), (64, 4), (64, 8), (64, 16)];

/// The shapes of the latency pass: all of [`SHAPES`], or those listed in
/// `STORE_BENCH_SHAPES` (e.g. `64x1,64x8`).
fn latency_shapes() -> Vec<(usize, usize)> {
    let Ok(list) = std::env::var("STORE_BENCH_SHAPES") else {
        return SHAPES.to_vec();
    };
    list.split(',')
        .filter_map(|s| {
            let (w, k) = s.trim().split_once('x')?;
            Some((w.parse().ok()?, k.parse().ok()?))
        })
        .collect()
}

/// Store options of the latency pass: defaults, except `group_wait` from
/// `STORE_BENCH_GROUP_WAIT_US` (microseconds; `0` turns gathering off, for A/B runs).
fn latency_options() -> StoreOptions {
    let mut opts = StoreOptions::default();
    if let Some(us) = std::env::var("STORE_BENCH_GROUP_WAIT_US")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.group_wait = Duration::from_micros(us);
    }
    opts
}

/// Prints throughput and latency percentiles of durable ingest per commit shape,
/// the writer's time split (inside the transaction vs in `commit`, i.e. page
/// write-out + fsync) and the process CPU time per alert.
fn latency_report(rt: &tokio::runtime::Runtime) -> Vec<IngestRow> {
    let mut rows = Vec::new();
    println!("durable ingest (redb, fsync per group commit), ~500-byte alerts");
    println!(
        "writers | alerts/commit | commits | alerts/s | p50 | p99 | max | transactions | \
         apply ms/txn | commit ms/txn | CPU µs/alert"
    );
    let opts = latency_options();
    println!("group_wait {:?}", opts.group_wait);
    for (writers, per) in latency_shapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            RedbStore::open_with(dir.path().join("lat.redb"), opts.clone()).expect("open"),
        );
        let total = match (writers, per) {
            (1, _) => 2_000,
            (8, _) => 10_000,
            (_, 1) => 50_000,
            (_, 4) => 25_000,
            _ => 10_000,
        };
        let seq = Arc::new(AtomicU64::new(0));
        // Warm up.
        rt.block_on(ingest(
            store.clone(),
            writers,
            per,
            total / 10,
            seq.clone(),
            false,
        ));
        let before = store.writer_stats();
        let cpu = process_cpu();
        let (elapsed, mut lat) = rt.block_on(ingest(store.clone(), writers, per, total, seq, true));
        let cpu = process_cpu().saturating_sub(cpu);
        let after = store.writer_stats();
        let txns = after.transactions - before.transactions;
        let per_txn = |ns: u64| ns as f64 / 1e6 / txns.max(1) as f64;
        lat.sort();
        let alerts = (lat.len() * per) as f64;
        println!(
            "{writers} | {per} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {txns} | {:.2} | {:.2} | {:.1}",
            lat.len(),
            alerts / elapsed.as_secs_f64(),
            percentile(&lat, 0.50).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            percentile(&lat, 1.0).as_secs_f64() * 1e3,
            per_txn(after.apply_nanos - before.apply_nanos),
            per_txn(after.commit_nanos - before.commit_nanos),
            cpu.as_secs_f64() * 1e6 / alerts,
        );
        rows.push(IngestRow {
            writers,
            per,
            alerts_per_sec: alerts / elapsed.as_secs_f64(),
            p99: percentile(&lat, 0.99),
        });
    }
    rows
}

/// One row of the latency pass, for the closing summary.
struct IngestRow {
    writers: usize,
    per: usize,
    alerts_per_sec: f64,
    p99: Duration,
}

/// Single-thread read rates measured directly (1,000,000 operations each, after a
/// warm-up), for the closing summary: incident by id (`Store::get`, 100,000
/// incidents of ~500 bytes, random order) and who is on call (the directory loaded
/// from the store), on redb and in memory. Criterion's rows below give the spread.
fn reads_report(rt: &tokio::runtime::Runtime) -> Vec<(String, f64)> {
    const N: u64 = 100_000;
    const OPS: u64 = 1_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let redb = Arc::new(RedbStore::open(dir.path().join("reads.redb")).expect("open"));
    let mem = Arc::new(MemoryStore::new());
    let (users, schedule) = oncall_records();
    rt.block_on(async {
        for chunk in 0..(N / 1000) {
            let mut b = WriteBatch::new();
            for i in chunk * 1000..(chunk + 1) * 1000 {
                let key = format!("inc-{i:08}");
                let v = alert_json(&key);
                b.put_raw(Table::Incidents, key, v);
            }
            if chunk == 0 {
                for u in &users {
                    b.put_raw(
                        Table::Users,
                        u.id.clone(),
                        serde_json::to_vec(u).expect("json"),
                    );
                }
                let v = serde_json::to_vec(&schedule).expect("json");
                b.put_raw(Table::Schedules, schedule.id.clone(), v);
            }
            redb.commit(b.clone()).await.expect("commit");
            mem.commit(b).await.expect("commit");
        }
    });
    let keys: Vec<String> = (0..N)
        .map(|i| format!("inc-{:08}", (i * 7919) % N))
        .collect();
    let from: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
    let instants: Vec<jiff::Timestamp> = (0..4096u64)
        .map(|i| {
            from + jiff::SignedDuration::from_secs(((i * 2_654_435_761) % (365 * 86_400)) as i64)
        })
        .collect();
    let mut out = Vec::new();
    for (name, store) in [
        ("redb", redb as Arc<dyn Store>),
        ("memory", mem as Arc<dyn Store>),
    ] {
        let rate = |f: &mut dyn FnMut(u64)| {
            for i in 0..OPS / 10 {
                f(i);
            }
            let t = Instant::now();
            for i in 0..OPS {
                f(i);
            }
            OPS as f64 / t.elapsed().as_secs_f64()
        };
        let by_id = rate(&mut |i| {
            let v = futures_lite_block(store.get(Table::Incidents, &keys[(i % N) as usize]));
            assert!(v.expect("get").is_some());
        });
        out.push((format!("incident by id, {name}, 1 thread"), by_id));
        let directory = rt.block_on(load_directory(store.as_ref()));
        let s = directory.schedule("primary").expect("schedule");
        let oncall = rate(&mut |i| {
            std::hint::black_box(
                s.who_is_on_call(instants[(i & 4095) as usize])
                    .map(|o| o.user.len()),
            );
        });
        out.push((
            format!("who is on call, directory loaded from {name}, 1 thread"),
            oncall,
        ));
    }
    out
}

/// The issue 6 targets against this run's figures.
fn print_summary(ingest: &[IngestRow], reads: &[(String, f64)]) {
    println!();
    println!("== store summary (issue 6 targets) ==");
    for r in ingest.iter().filter(|r| r.writers == 64) {
        let met = r.alerts_per_sec >= 100_000.0 && r.p99 < Duration::from_millis(10);
        println!(
            "durable ingest, 64 writers x {} alerts/commit: {:.0} alerts/s, p99 {:.2} ms  \
             (target >= 100,000/s with p99 < 10 ms: {})",
            r.per,
            r.alerts_per_sec,
            r.p99.as_secs_f64() * 1e3,
            if met { "met" } else { "not met" }
        );
    }
    for r in ingest.iter().filter(|r| r.writers < 64) {
        println!(
            "durable ingest, {} writer(s) x {}: {:.0} alerts/s, p99 {:.2} ms",
            r.writers,
            r.per,
            r.alerts_per_sec,
            r.p99.as_secs_f64() * 1e3
        );
    }
    for (what, rate) in reads {
        println!(
            "{what}: {rate:.0}/s  (target >= 500,000/s: {})",
            if *rate >= 500_000.0 { "met" } else { "not met" }
        );
    }
    println!("(in-memory ingest beside redb: criterion rows store_ingest/memory/*)");
}

fn bench_ingest(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("store_ingest");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (writers, per) in SHAPES {
        // One iteration = every writer commits once (so all `writers` are always
        // concurrent, whatever iteration count criterion picks). Each sample writes
        // into a fresh store (file), so memory and disk stay bounded (at 1.4 M
        // alerts/s the in-memory rows held ~14 GB when one store took every sample).
        g.throughput(Throughput::Elements((writers * per) as u64));
        let label = format!("{writers}w_x{per}");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut n = 0u64;
        g.bench_function(BenchmarkId::new("redb_durable", &label), |b| {
            b.iter_custom(|iters| {
                n += 1;
                let path = dir.path().join(format!("ingest{n}.redb"));
                let redb = Arc::new(RedbStore::open(&path).expect("open"));
                let seq = Arc::new(AtomicU64::new(0));
                let took = rt
                    .block_on(ingest(
                        redb,
                        writers,
                        per,
                        iters * writers as u64,
                        seq,
                        false,
                    ))
                    .0;
                let _ = std::fs::remove_file(&path);
                took
            })
        });
        g.bench_function(BenchmarkId::new("memory", &label), |b| {
            b.iter_custom(|iters| {
                let mem = Arc::new(MemoryStore::new());
                let seq = Arc::new(AtomicU64::new(0));
                rt.block_on(ingest(
                    mem,
                    writers,
                    per,
                    iters * writers as u64,
                    seq,
                    false,
                ))
                .0
            })
        });
    }
    g.finish();
}

fn bench_reads(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    const N: u64 = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let redb = Arc::new(RedbStore::open(dir.path().join("reads.redb")).expect("open"));
    let mem = Arc::new(MemoryStore::new());
    rt.block_on(async {
        for chunk in 0..(N / 1000) {
            let mut b = WriteBatch::new();
            for i in chunk * 1000..(chunk + 1) * 1000 {
                let key = format!("inc-{i:08}");
                let v = alert_json(&key);
                b.put_raw(Table::Incidents, key, v);
            }
            redb.commit(b.clone()).await.expect("commit");
            mem.commit(b).await.expect("commit");
        }
    });
    let keys: Vec<String> = (0..N)
        .map(|i| format!("inc-{:08}", (i * 7919) % N))
        .collect();
    let mut g = c.benchmark_group("store_get_incident_by_id");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("redb", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let v = futures_lite_block(redb.get(Table::Incidents, &keys[i]));
            assert!(v.expect("get").is_some());
        })
    });
    let mut i = 0usize;
    g.bench_function("memory", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            let v = futures_lite_block(mem.get(Table::Incidents, &keys[i]));
            assert!(v.expect("get").is_some());
        })
    });
    // Two reader threads (the machine has two cores).
    for (name, store) in [
        ("redb_2_threads", redb.clone() as Arc<dyn Store>),
        ("memory_2_threads", mem.clone() as Arc<dyn Store>),
    ] {
        let keys = &keys;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for t in 0..2u64 {
                        let store = store.clone();
                        scope.spawn(move || {
                            let n = iters / 2 + u64::from(t < iters % 2);
                            for j in 0..n {
                                let k = &keys[((j * 2 + t) % keys.len() as u64) as usize];
                                let v = futures_lite_block(store.get(Table::Incidents, k));
                                assert!(v.expect("get").is_some());
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

/// A weekly primary rotation of 8 people with 100 overrides over 2026, and its users.
fn oncall_records() -> (Vec<User>, Schedule) {
    let users: Vec<User> = (0..8)
        .map(|i| User::new(format!("u{i}"), format!("User {i}")))
        .collect();
    let from: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
    let overrides = (0..100i64)
        .map(|i| {
            let start = from + jiff::SignedDuration::from_hours(i * 87);
            Override {
                id: Some(format!("o{i}")),
                user: format!("u{}", i % 8),
                start,
                end: start + jiff::SignedDuration::from_hours(6),
            }
        })
        .collect();
    let schedule = Schedule {
        id: "primary".into(),
        name: "Primary".into(),
        time_zone: "Europe/Berlin".into(),
        layers: vec![ScheduleLayer {
            name: "weekly".into(),
            rotation: Rotation {
                participants: users.iter().map(|u| u.id.clone()).collect(),
                shift_length: ShiftLength::Weeks(1),
                start: "2025-12-29".parse().expect("date"),
                handoff_time: "09:00".into(),
            },
            restrictions: vec![],
        }],
        overrides,
        handoff_notifications: Default::default(),
    };
    (users, schedule)
}

/// The on-call directory as the server builds it at start: every user and schedule
/// record read from the store.
async fn load_directory(store: &dyn Store) -> Directory {
    let mut cfg = DirectoryConfig::default();
    for (_, v) in store.scan(Table::Users, Scan::all()).await.expect("users") {
        cfg.users.push(serde_json::from_slice(&v).expect("user"));
    }
    for (_, v) in store
        .scan(Table::Schedules, Scan::all())
        .await
        .expect("schedules")
    {
        cfg.schedules
            .push(serde_json::from_slice(&v).expect("schedule"));
    }
    Directory::new(cfg).expect("directory")
}

/// Who is on call at a random instant of 2026, answered from the directory loaded
/// out of redb and out of the in-memory store (the store is not read per query).
fn bench_oncall(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("tempdir");
    let redb = Arc::new(RedbStore::open(dir.path().join("oncall.redb")).expect("open"));
    let mem = Arc::new(MemoryStore::new());
    let (users, schedule) = oncall_records();
    let mut b = WriteBatch::new();
    for u in &users {
        b.put_raw(
            Table::Users,
            u.id.clone(),
            serde_json::to_vec(u).expect("json"),
        );
    }
    b.put_raw(
        Table::Schedules,
        schedule.id.clone(),
        serde_json::to_vec(&schedule).expect("json"),
    );
    let from: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
    let mut x: u64 = 42;
    let instants: Vec<jiff::Timestamp> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            from + jiff::SignedDuration::from_secs(((x >> 33) % (365 * 86_400)) as i64)
        })
        .collect();
    let mut g = c.benchmark_group("store_who_is_on_call");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for (name, store) in [
        ("redb", redb as Arc<dyn Store>),
        ("memory", mem as Arc<dyn Store>),
    ] {
        rt.block_on(store.commit(b.clone())).expect("commit");
        let t = Instant::now();
        let directory = rt.block_on(load_directory(store.as_ref()));
        println!(
            "on-call directory loaded from {name} in {:.2} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                let s = directory.schedule("primary").expect("schedule");
                std::hint::black_box(s.who_is_on_call(instants[i]).map(|o| o.user.len()))
            })
        });
    }
    g.finish();
}

/// Polls a future that never waits (store reads complete on the first poll) without
/// the cost of entering a runtime per call.
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A realistic stored alert record with a 16-hex-digit fingerprint, about 570 bytes;
/// `version` tells an update from the first write.
fn bulk_alert_json(key: &str, version: u32) -> Vec<u8> {
    let mut v = alert_json(key);
    v.pop(); // the closing brace
    v.extend_from_slice(format!(r#","updated":{version}}}"#).as_bytes());
    v
}

/// Deterministic pseudo-random 16-hex-digit fingerprints (splitmix64).
fn random_keys(n: usize) -> Vec<String> {
    let mut x: u64 = 0x005e_ed0f_a1e7;
    (0..n)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// `write_bytes` of `/proc/self/io`: bytes this process caused to be written to
/// storage (Linux; zero elsewhere).
fn io_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time of the store's writer thread(s) (`signalcraft-store-writer`, the comm is
/// cut to 15 bytes) from `/proc/self/task/*/schedstat`, in nanoseconds.
fn writer_cpu_nanos() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "signalcraft-sto")
        })
        .filter_map(|t| {
            std::fs::read_to_string(t.path().join("schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The bulk pass: what one big background apply costs in bytes written and writer
/// CPU, for new alerts and for updates of the same alerts.
fn bulk_report(rt: &tokio::runtime::Runtime) {
    const N: usize = 100_000;
    let keys = random_keys(N);
    println!(
        "bulk apply (redb, one durable commit per batch), {N} alerts of {} bytes, random keys",
        bulk_alert_json(&keys[0], 1).len()
    );
    println!(
        "phase | alerts/batch | alerts/s | file MB | written MB | written bytes/alert | \
         writer CPU s | writer µs/alert | process CPU µs/alert"
    );
    for per in [20_000usize, 800] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bulk.redb");
        let store = RedbStore::open(&path).expect("open");
        // Updates come in another order than the inserts (a stride permutation),
        // as re-fired alerts do: a layout that stores records by arrival order must
        // not get sequential updates for free.
        let shuffled: Vec<String> = (0..N).map(|i| keys[(i * 7919) % N].clone()).collect();
        for (phase, version, keys) in [("insert", 1u32, &keys), ("update", 2, &shuffled)] {
            let batches: Vec<WriteBatch> = keys
                .chunks(per)
                .map(|chunk| {
                    let mut b = WriteBatch::new();
                    for k in chunk {
                        b.put_raw(Table::Alerts, k.clone(), bulk_alert_json(k, version));
                    }
                    b
                })
                .collect();
            let (io, wcpu, cpu) = (io_write_bytes(), writer_cpu_nanos(), process_cpu());
            let t = Instant::now();
            for b in batches {
                rt.block_on(store.commit(b)).expect("commit");
            }
            let elapsed = t.elapsed();
            let written = io_write_bytes().saturating_sub(io);
            let wcpu = writer_cpu_nanos().saturating_sub(wcpu);
            let cpu = process_cpu().saturating_sub(cpu);
            let file = store.file_size().expect("size");
            println!(
                "{phase} | {per} | {:.0} | {:.1} | {:.1} | {:.0} | {:.2} | {:.1} | {:.1}",
                N as f64 / elapsed.as_secs_f64(),
                file as f64 / 1e6,
                written as f64 / 1e6,
                written as f64 / N as f64,
                wcpu as f64 / 1e9,
                wcpu as f64 / 1e3 / N as f64,
                cpu.as_secs_f64() * 1e6 / N as f64,
            );
        }
        assert_eq!(
            rt.block_on(store.count(Table::Alerts)).expect("count"),
            N as u64
        );
        // What a restart pays to load every alert (the engine's recovery scan).
        let t = Instant::now();
        let rows = rt
            .block_on(store.scan(Table::Alerts, Scan::all()))
            .expect("scan");
        println!(
            "scan all | {per} | {} rows in {:.1} ms",
            rows.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
        // What a restart pays to open the file, with and without the page check.
        drop((rows, store));
        let mut open_ms = Vec::new();
        for verify_on_open in [true, false] {
            let opts = StoreOptions {
                verify_on_open,
                ..StoreOptions::default()
            };
            let t = Instant::now();
            drop(RedbStore::open_with(&path, opts).expect("reopen"));
            open_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "reopen | {per} | {:.1} ms with verify_on_open, {:.1} ms without ({:.1} MB file)",
            open_ms[0],
            open_ms[1],
            std::fs::metadata(&path).map_or(0.0, |m| m.len() as f64 / 1e6)
        );
    }
}

/// Whether `pass` is selected by `STORE_BENCH_PASSES` (all when unset).
fn pass_enabled(pass: &str) -> bool {
    std::env::var("STORE_BENCH_PASSES").map_or(true, |v| v.split(',').any(|p| p.trim() == pass))
}

fn main() {
    let rt = runtime();
    let mut c = Criterion::default().configure_from_args();
    match tempfile::tempdir().map(|d| signalcraft_benches::probe::disk_report(d.path())) {
        Ok(Ok(line)) => println!("{line}"),
        _ => println!("disk: fsync probe unavailable"),
    }
    if pass_enabled("bulk") {
        bulk_report(&rt);
    }
    let ingest = if pass_enabled("latency") {
        latency_report(&rt)
    } else {
        Vec::new()
    };
    let reads = if pass_enabled("reads") {
        reads_report(&rt)
    } else {
        Vec::new()
    };
    match tempfile::tempdir().map(|d| signalcraft_benches::probe::disk_report(d.path())) {
        Ok(Ok(line)) => println!("{line}"),
        _ => println!("disk: fsync probe unavailable"),
    }
    bench_ingest(&mut c, &rt);
    bench_reads(&mut c, &rt);
    bench_oncall(&mut c, &rt);
    c.final_summary();
    print_summary(&ingest, &reads);
}
