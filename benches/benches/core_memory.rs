//! Memory of the engine's in-memory state per known alert (not a timed bench).
//!
//! A counting global allocator tracks live heap bytes. The workload is the pipeline
//! bench's shape (100,000 alerts over 10,000 groups, 5 labels each) with what an
//! Alertmanager alert carries besides: two annotations, a generator link and the raw
//! payload (~300 bytes of JSON, as the server's `/api/v2/alerts` keeps it). Reported:
//!
//! * the inline sizes that set the core's per-alert slots: `Alert`, `AlertEntry` (one
//!   slot of the alert slab, as large as a full `Alert` plus the entry's own fields even
//!   after compaction), `CompactAlert`, and `Effect` (one element of the effect buffer);
//! * the heap one provider-built alert owns (label and annotation maps, strings, link,
//!   raw payload; not its 320-byte inline part), and the raw payload's JSON size;
//! * everything the core holds after the alerts were moved into it (their heap, its
//!   slabs, indexes and groups), then after `EngineCore::compact_alerts` (what the shell
//!   calls once a batch's records are encoded: raw payloads released, alerts packed),
//!   and after the first flush of every group (plus incidents and notification log
//!   entries; notifications are handed out and dropped);
//! * each divided by 100,000.
//!
//! Run: `cargo bench -p signalcraft-benches --bench core_memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use jiff::Timestamp;
use signalcraft_core::engine::{Effect, EngineConfig, EngineCore};
use signalcraft_core::model::Alert;
use signalcraft_core::routing::{NotifyTarget, RouteConfig};
use signalcraft_core::scheduler::JobKind;

/// Live heap bytes (requested sizes; malloc's per-chunk overhead of ~8–16 bytes is not
/// counted).
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const ALERTS: usize = 100_000;
const NAMES: usize = 100;
const CLUSTERS: usize = 100;

fn config() -> EngineConfig {
    EngineConfig {
        route: RouteConfig {
            receiver: Some("default".into()),
            notify: Some(vec![NotifyTarget {
                channel: "webhook".into(),
                target: "http://127.0.0.1:9/hook".into(),
            }]),
            group_by: Some(vec!["alertname".into(), "cluster".into()]),
            group_wait: Some("1s".into()),
            group_interval: Some("1s".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// One normalized alert as the Alertmanager v2 provider would produce it, built through
/// the event's JSON form (so it works whatever type `raw` has).
fn alert(i: usize) -> Alert {
    let name = format!("Alert{}", i % NAMES);
    let cluster = format!("c{}", (i / NAMES) % CLUSTERS);
    let instance = format!("10.0.{}.{}:9100", i / 256 % 256, i % 256);
    let team = ["infra", "payments", "web", "platform"][i % 4];
    let labels = serde_json::json!({
        "alertname": name, "cluster": cluster, "instance": instance,
        "team": team, "env": "prod"
    });
    let annotations = serde_json::json!({
        "summary": format!("{name} on {instance}"),
        "description": "p99 latency above 500ms for 5 minutes"
    });
    let raw = serde_json::json!({
        "labels": labels, "annotations": annotations,
        "startsAt": "2026-03-02T10:00:00Z",
        "generatorURL": format!("http://prometheus:9090/graph?g0.expr=up%7Binstance%3D%22{instance}%22%7D")
    });
    serde_json::from_value(serde_json::json!({
        "source": {"provider": "alertmanager", "integration": "prom"},
        "status": "firing", "severity": "warning",
        "summary": format!("{name} on {instance}"),
        "labels": labels, "annotations": annotations,
        "links": [{"href": raw["generatorURL"], "text": "Prometheus"}],
        "starts_at": "2026-03-02T10:00:00Z",
        "raw": raw
    }))
    .expect("alert JSON")
}

fn per_alert(bytes: isize) -> String {
    format!(
        "{:>8.1} MiB  {:>6.0} B/alert",
        bytes as f64 / 1048576.0,
        bytes as f64 / ALERTS as f64
    )
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let now: Timestamp = "2026-03-02T10:00:00Z".parse().expect("t0");
    let base = live();
    let alerts: Vec<Alert> = (0..ALERTS).map(alert).collect();
    let input = live() - base - (alerts.capacity() * std::mem::size_of::<Alert>()) as isize;
    let raw_json: usize = alerts
        .iter()
        .map(|a| serde_json::to_string(&a.raw).map_or(0, |s| s.len()))
        .sum();

    let before_core = live();
    let mut core = EngineCore::new(config().compile().expect("bench config"));
    let empty_core = live() - before_core;

    // From here on `base` counts everything: the alerts move into the core, and their
    // Vec's buffer is freed once consumed.
    let before_ingest = base;
    let mut out: Vec<Effect> = Vec::new();
    let mut jobs = Vec::new();
    for a in alerts {
        core.ingest_alert(a, now, &mut out);
        for e in out.drain(..) {
            if let Effect::Schedule(j) = e
                && let JobKind::GroupFlush { group_key } = j.kind
            {
                jobs.push((group_key, j.due));
            }
        }
    }
    let jobs_bytes: isize = jobs
        .iter()
        .map(|(k, _)| k.capacity() as isize)
        .sum::<isize>()
        + (jobs.capacity() * std::mem::size_of::<(String, Timestamp)>()) as isize;
    drop(out);
    let after_ingest = live() - before_ingest - jobs_bytes;
    assert_eq!(core.alert_count(), ALERTS);
    assert_eq!(core.compact_alerts(), ALERTS);
    let after_compact = live() - before_ingest - jobs_bytes;
    assert_eq!(core.group_count(), NAMES * CLUSTERS);

    let later = now + jiff::SignedDuration::from_secs(1);
    let mut out = Vec::new();
    let mut notified = 0;
    for (k, due) in &jobs {
        core.flush_job(k, *due, later, &mut out);
        notified += out
            .iter()
            .filter(|e| matches!(e, Effect::Notify(_)))
            .count();
        out.clear();
    }
    drop(out);
    drop(jobs);
    let after_flush = live() - before_ingest;
    assert_eq!(notified, NAMES * CLUSTERS);

    println!(
        "core_memory: {ALERTS} alerts, {} groups",
        core.group_count()
    );
    println!(
        "  inline sizes: Alert {} B, AlertEntry (slab slot) {} B, CompactAlert {} B, Effect {} B",
        std::mem::size_of::<Alert>(),
        std::mem::size_of::<signalcraft_core::engine::core::AlertEntry>(),
        std::mem::size_of::<signalcraft_core::model::CompactAlert>(),
        std::mem::size_of::<Effect>(),
    );
    println!(
        "  heap owned by one normalized alert (incl. raw)  {}",
        per_alert(input)
    );
    println!(
        "    of which raw payload JSON text                {}",
        per_alert(raw_json as isize)
    );
    println!(
        "  empty core (config)                             {}",
        per_alert(empty_core)
    );
    println!(
        "  core after ingest (alerts moved in)             {}",
        per_alert(after_ingest)
    );
    println!(
        "  core after compact_alerts (raw released, packed) {}",
        per_alert(after_compact)
    );
    println!(
        "  core after first flush of every group           {}",
        per_alert(after_flush)
    );
    drop(core);
}
