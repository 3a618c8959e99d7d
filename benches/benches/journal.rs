//! Ingest journal benchmarks: durable appends (`FileJournal`, fsync on, group commit)
//! with 1, 8 and 64 concurrent appenders, of 30 KB records (an Alertmanager batch of
//! 100 alerts) and of 300-byte records, in a temporary directory on the normal disk.
//!
//! A latency pass prints records/s, MB/s, p50/p99/max append latency, appends per
//! sync and process CPU per record for every shape (criterion reports means, not
//! p99); criterion then measures the append throughput of each shape.
//!
//! Run: `cargo bench -p signalcraft-benches --bench journal`
//! (latency pass only: `... --bench journal -- nomatch`; its length per shape:
//! `JOURNAL_BENCH_SECS=2`; gathering off for an A/B run: `JOURNAL_BENCH_GROUP_WAIT_US=0`).

use signalcraft_benches::probe::{percentile, process_cpu};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use signalcraft_core::journal::Journal;
use signalcraft_store::FileJournal;
use signalcraft_store::journal::JournalOptions;

/// Shapes measured: (concurrent appenders, record bytes).
const SHAPES: [(usize, usize); 6] = [
    (1, 30_000),
    (8, 30_000),
    (64, 30_000),
    (1, 300),
    (8, 300),
    (64, 300),
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn options() -> JournalOptions {
    let mut opts = JournalOptions::default();
    if let Some(us) = std::env::var("JOURNAL_BENCH_GROUP_WAIT_US")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.group_wait = Duration::from_micros(us);
    }
    opts
}

/// A record of `bytes` bytes (JSON-like text, not that the journal looks at it).
fn payload(bytes: usize) -> Vec<u8> {
    let unit = br#"{"labels":{"alertname":"HighLatency","service":"checkout"}},"#;
    unit.iter().copied().cycle().take(bytes).collect()
}

/// `appenders` tasks append `payload` until `limit` (a total count spread evenly, or
/// a duration) is reached; returns the elapsed time, the appends done and, when
/// asked, every append's latency.
async fn append_load(
    journal: Arc<FileJournal>,
    appenders: usize,
    payload: Arc<Vec<u8>>,
    limit: Limit,
    latencies: bool,
) -> (Duration, u64, Vec<Duration>) {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(appenders);
    for a in 0..appenders as u64 {
        let (journal, payload) = (journal.clone(), payload.clone());
        let count = match limit {
            Limit::Count(total) => {
                total / appenders as u64 + u64::from(a < total % appenders as u64)
            }
            Limit::Time(_) => u64::MAX,
        };
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut done = 0u64;
            while done < count {
                if let Limit::Time(d) = limit
                    && start.elapsed() >= d
                {
                    break;
                }
                let t = Instant::now();
                journal
                    .append(payload.as_ref().clone())
                    .await
                    .expect("append");
                if latencies {
                    lat.push(t.elapsed());
                }
                done += 1;
            }
            (done, lat)
        }));
    }
    let mut all = Vec::new();
    let mut done = 0;
    for t in tasks {
        let (n, lat) = t.await.expect("appender task");
        done += n;
        all.extend(lat);
    }
    (start.elapsed(), done, all)
}

#[derive(Clone, Copy)]
enum Limit {
    Count(u64),
    Time(Duration),
}

fn latency_report(rt: &tokio::runtime::Runtime) {
    let secs: f64 = std::env::var("JOURNAL_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let opts = options();
    println!(
        "durable journal appends (FileJournal, group commit, group_wait {:?}), {secs} s per shape",
        opts.group_wait
    );
    println!(
        "appenders | record bytes | records | records/s | MB/s | p50 ms | p99 ms | max ms | \
         appends/sync | CPU µs/record"
    );
    for (appenders, bytes) in SHAPES {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Arc::new(FileJournal::open_with(dir.path(), 0, opts).expect("open"));
        let payload = Arc::new(payload(bytes));
        // Warm up (creates the segment, wakes the writer).
        rt.block_on(append_load(
            journal.clone(),
            appenders,
            payload.clone(),
            Limit::Count(appenders as u64 * 2),
            false,
        ));
        let before = journal.stats();
        let cpu = process_cpu();
        let (elapsed, done, mut lat) = rt.block_on(append_load(
            journal.clone(),
            appenders,
            payload,
            Limit::Time(Duration::from_secs_f64(secs)),
            true,
        ));
        let cpu = process_cpu().saturating_sub(cpu);
        let after = journal.stats();
        lat.sort();
        let rate = done as f64 / elapsed.as_secs_f64();
        let syncs = after.syncs - before.syncs;
        println!(
            "{appenders} | {bytes} | {done} | {rate:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0}",
            rate * bytes as f64 / 1e6,
            percentile(&lat, 0.50).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            (after.appends - before.appends) as f64 / syncs.max(1) as f64,
            cpu.as_secs_f64() * 1e6 / done.max(1) as f64,
        );
    }
}

fn bench_appends(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("journal_append");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (appenders, bytes) in SHAPES {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Arc::new(FileJournal::open_with(dir.path(), 0, options()).expect("open"));
        let payload = Arc::new(payload(bytes));
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(
            BenchmarkId::new(format!("{appenders}_appenders"), format!("{bytes}B")),
            |b| {
                b.iter_custom(|iters| {
                    let (elapsed, _, _) = rt.block_on(append_load(
                        journal.clone(),
                        appenders,
                        payload.clone(),
                        Limit::Count(iters),
                        false,
                    ));
                    elapsed
                })
            },
        );
        // Each shape starts on an empty journal; release what this one wrote.
        rt.block_on(journal.release(u64::MAX)).expect("release");
    }
    group.finish();
}

fn main() {
    let rt = runtime();
    match tempfile::tempdir().map(|d| signalcraft_benches::probe::disk_report(d.path())) {
        Ok(Ok(line)) => println!("{line}"),
        _ => println!("disk: fsync probe unavailable"),
    }
    latency_report(&rt);
    let mut c = Criterion::default().configure_from_args();
    bench_appends(&mut c, &rt);
    c.final_summary();
}
