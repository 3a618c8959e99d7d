//! Store benchmarks: durable ingest (fsync on, group commit) with 1, 8 and 64
//! concurrent writers, one ~500-byte alert per commit (and 64 writers sending 4, 8
//! and 16 alerts per commit, like a grouped Alertmanager webhook), beside the
//! in-memory store;
//! incident-by-id reads; and per-commit latency percentiles (printed before the
//! criterion runs, since criterion reports means, not p99).
//!
//! Run: `cargo bench -p signalcraft-benches --bench store`
//! (latency pass only: `... --bench store -- nomatch`; its shapes:
//! `STORE_BENCH_SHAPES=64x1,64x8`; gathering off for an A/B run:
//! `STORE_BENCH_GROUP_WAIT_US=0`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use signalcraft_core::memory::MemoryStore;
use signalcraft_core::store::{Store, Table, WriteBatch};
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
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

/// User + system CPU time of this process so far, from `/proc/self/stat` (Linux;
/// zero elsewhere), so figures survive a machine shared with other work.
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // The kernel reports in USER_HZ, 100 on every Linux we run on.
    Duration::from_millis(ticks * 10)
}

/// Measures this disk: 200 synchronous 4 KiB writes (write + `sync_data`, like
/// `dd oflag=dsync`) in the directory the stores use; prints p50 and p99, so every
/// run's figures carry the fsync cost they were measured with.
fn disk_report() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut f = std::fs::File::create(dir.path().join("fsync.probe")).expect("probe file");
    let page = [0x5au8; 4096];
    let mut lat: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&page).expect("write");
            f.sync_data().expect("fsync");
            t.elapsed()
        })
        .collect();
    lat.sort();
    println!(
        "disk: synchronous 4 KiB write (write + fdatasync) p50 {:.2} ms, p99 {:.2} ms",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
    );
}

/// Prints throughput and latency percentiles of durable ingest per commit shape,
/// the writer's time split (inside the transaction vs in `commit`, i.e. page
/// write-out + fsync) and the process CPU time per alert.
fn latency_report(rt: &tokio::runtime::Runtime) {
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
    }
}

fn bench_ingest(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut g = c.benchmark_group("store_ingest");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (writers, per) in SHAPES {
        // One iteration = every writer commits once (so all `writers` are always
        // concurrent, whatever iteration count criterion picks).
        g.throughput(Throughput::Elements((writers * per) as u64));
        let label = format!("{writers}w_x{per}");
        let dir = tempfile::tempdir().expect("tempdir");
        let redb = Arc::new(RedbStore::open(dir.path().join("ingest.redb")).expect("open"));
        let seq = Arc::new(AtomicU64::new(0));
        g.bench_function(BenchmarkId::new("redb_durable", &label), |b| {
            b.iter_custom(|iters| {
                rt.block_on(ingest(
                    redb.clone(),
                    writers,
                    per,
                    iters * writers as u64,
                    seq.clone(),
                    false,
                ))
                .0
            })
        });
        let mem = Arc::new(MemoryStore::new());
        let seq = Arc::new(AtomicU64::new(0));
        g.bench_function(BenchmarkId::new("memory", &label), |b| {
            b.iter_custom(|iters| {
                rt.block_on(ingest(
                    mem.clone(),
                    writers,
                    per,
                    iters * writers as u64,
                    seq.clone(),
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
        .measurement_time(Duration::from_secs(4))
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

fn main() {
    let rt = runtime();
    let mut c = Criterion::default().configure_from_args();
    disk_report();
    latency_report(&rt);
    disk_report();
    bench_ingest(&mut c, &rt);
    bench_reads(&mut c, &rt);
    c.final_summary();
}
