//! Side-by-side load generator for `POST /api/v2/alerts` (SignalCraft and
//! Alertmanager speak the same API), with a built-in webhook sink that records when
//! each aggregation group is first notified.
//!
//! ```text
//! loadgen --name signalcraft --url http://127.0.0.1:9093 --pid 1234 --sink 127.0.0.1:19999 \
//!         [--alerts 100000] [--batch 100] [--conns 8] [--groups 10000] [--idle-secs 10] \
//!         [--out result.json]
//! ```
//!
//! The target must route alerts grouped by `[alertname, service]` to a webhook at
//! `http://<sink>/` with group_wait 1s / group_interval 1s (benches/compare-alertmanager.sh
//! writes both configs). Measured:
//! * accepted alerts/s (all POSTs, 8 connections) and POST latency p50/p99;
//! * time from the first POST until every group was notified, and for each group the
//!   time from the POST that carried its first alert until its first notification
//!   (the issue's "every group notified within group_wait + 0.5 s");
//! * idle CPU over `--idle-secs` with all alerts active (`/proc/<pid>/stat`), measured
//!   once no notification arrived for 3 s;
//! * notifications caused by re-posting the same alerts (should be 0);
//! * peak RSS (`VmHWM` in `/proc/<pid>/status`).
//!
//! Only 127.0.0.1 addresses are used.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Args {
    name: String,
    url: String,
    pid: u32,
    sink: String,
    alerts: usize,
    batch: usize,
    conns: usize,
    groups: usize,
    idle_secs: u64,
    clk_tck: u64,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        name: "target".into(),
        url: String::new(),
        pid: 0,
        sink: "127.0.0.1:19999".into(),
        alerts: 100_000,
        batch: 100,
        conns: 8,
        groups: 10_000,
        idle_secs: 10,
        clk_tck: 100,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        let num = |s: String| {
            s.parse::<u64>()
                .map_err(|_| format!("{k}: not a number: {s}"))
        };
        match k.as_str() {
            "--name" => a.name = v()?,
            "--url" => a.url = v()?,
            "--pid" => a.pid = num(v()?)? as u32,
            "--sink" => a.sink = v()?,
            "--alerts" => a.alerts = num(v()?)? as usize,
            "--batch" => a.batch = num(v()?)? as usize,
            "--conns" => a.conns = num(v()?)? as usize,
            "--groups" => a.groups = num(v()?)? as usize,
            "--idle-secs" => a.idle_secs = num(v()?)?,
            "--clk-tck" => a.clk_tck = num(v()?)?,
            "--out" => a.out = Some(v()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.url.is_empty() || a.pid == 0 {
        return Err("--url and --pid are required".into());
    }
    if !a.url.starts_with("http://127.0.0.1:") || !a.sink.starts_with("127.0.0.1:") {
        return Err("only 127.0.0.1 targets and sinks are allowed".into());
    }
    if a.batch == 0 || a.conns == 0 || a.groups == 0 || !a.alerts.is_multiple_of(a.batch) {
        return Err("--alerts must be a multiple of --batch; batch, conns, groups > 0".into());
    }
    Ok(a)
}

#[derive(Default)]
struct Sink {
    first_seen: HashMap<String, Instant>,
    /// Alerts carried by each group's first notification.
    first_alerts: Vec<usize>,
    notifications: usize,
    last: Option<Instant>,
}

/// The parts of an Alertmanager webhook body the sink reads.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SinkBody {
    #[serde(default)]
    group_labels: HashMap<String, String>,
    #[serde(default)]
    alerts: Vec<serde::de::IgnoredAny>,
}

async fn sink_handler(State(s): State<Arc<Mutex<Sink>>>, body: axum::body::Bytes) -> &'static str {
    let now = Instant::now();
    // Only what is measured is decoded (the whole body is still parsed as JSON):
    // the sink shares the machine's 2 cores with the target.
    let v: SinkBody = serde_json::from_slice(&body).unwrap_or_default();
    let label = |name: &str| v.group_labels.get(name).map_or("?", String::as_str);
    let key = format!("{}/{}", label("alertname"), label("service"));
    let alerts = v.alerts.len();
    let mut s = s.lock();
    s.notifications += 1;
    s.last = Some(now);
    if let std::collections::hash_map::Entry::Vacant(e) = s.first_seen.entry(key) {
        e.insert(now);
        s.first_alerts.push(alerts);
    }
    "ok"
}

/// Every 100 ms from the first POST: (elapsed, target CPU ticks, own CPU ticks).
type CpuTrace = Arc<Mutex<Vec<(Duration, Option<u64>, Option<u64>)>>>;

/// Samples the target's and this process's CPU time every 100 ms for `secs`.
fn trace_cpu(pid: u32, t0: Instant, secs: u64) -> CpuTrace {
    let trace: CpuTrace = Arc::default();
    let out = trace.clone();
    tokio::spawn(async move {
        let me = std::process::id();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while t0.elapsed() < Duration::from_secs(secs) {
            tick.tick().await;
            let sample = (t0.elapsed(), cpu_ticks(pid), cpu_ticks(me));
            out.lock().push(sample);
        }
    });
    trace
}

/// One line per 250 ms from the first POST until every group was notified: groups
/// first notified in it, and the target's and the load generator's CPU (cores).
fn print_timeline(name: &str, t0: Instant, sink: &Sink, trace: &CpuTrace, clk_tck: u64) {
    let end = sink
        .first_seen
        .values()
        .max()
        .map_or(Duration::ZERO, |l| l.duration_since(t0));
    let trace = trace.lock();
    // CPU cores used between two instants, from the samples at or before them.
    let cores = |from: Duration, to: Duration, target: bool| -> f64 {
        let at = |t: Duration| {
            let s = trace.iter().rfind(|s| s.0 <= t).or(trace.first())?;
            Some((s.0, if target { s.1? } else { s.2? }))
        };
        match (at(from), at(to)) {
            (Some((ta, a)), Some((tb, b))) if tb > ta => {
                b.saturating_sub(a) as f64 / clk_tck as f64 / (tb - ta).as_secs_f64()
            }
            _ => 0.0,
        }
    };
    let step = Duration::from_millis(250);
    let mut from = Duration::ZERO;
    let mut line = String::new();
    while from <= end {
        let to = from + step;
        let n = sink
            .first_seen
            .values()
            .filter(|t| {
                let d = t.duration_since(t0);
                d >= from && d < to
            })
            .count();
        line.push_str(&format!(
            "\n  {:>5.2}s groups {n:>5} target {:.2} loadgen {:.2} cores",
            from.as_secs_f64(),
            cores(from, to, true),
            cores(from, to, false)
        ));
        from = to;
    }
    let mut alerts = sink.first_alerts.clone();
    alerts.sort_unstable();
    eprintln!(
        "[{name}] timeline (per 250 ms from the first POST):{line}\n[{name}] alerts per first notification: min {} median {} max {}",
        alerts.first().unwrap_or(&0),
        alerts.get(alerts.len() / 2).unwrap_or(&0),
        alerts.last().unwrap_or(&0)
    );
}

/// The sink's key (`alertname/service`) of group `g`.
fn group_key(g: usize, groups: usize) -> String {
    let side = (groups as f64).sqrt().ceil() as usize;
    format!("Alert{}/svc{}", g / side, g % side)
}

/// Alert `n`: group `n % groups` (alertname × service), instance `n / groups`.
fn alert(n: usize, groups: usize) -> Value {
    let g = n % groups;
    let side = (groups as f64).sqrt().ceil() as usize;
    json!({
        "labels": {
            "alertname": format!("Alert{}", g / side),
            "service": format!("svc{}", g % side),
            "instance": format!("i{}", n / groups),
            "severity": "warning",
        },
        "annotations": {"summary": format!("load test alert {n}")},
    })
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One POST: its batch index, when it was sent, how long until it was answered.
type Posted = (usize, Instant, Duration);

async fn post_all(
    client: &reqwest::Client,
    a: &Args,
    bodies: Arc<Vec<Vec<u8>>>,
) -> Result<(Duration, Vec<Posted>), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.conns {
        let client = client.clone();
        let next = next.clone();
        let bodies = bodies.clone();
        let url = format!("{}/api/v2/alerts", a.url);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| format!("POST failed: {e}"))?;
                let status = r.status();
                let _ = r.bytes().await;
                if !status.is_success() {
                    return Err(format!("POST answered {status}"));
                }
                lat.push((i, t, t.elapsed()));
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    Ok((started.elapsed(), all))
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sink = Arc::new(Mutex::new(Sink::default()));
    let app = axum::Router::new()
        .route("/", post(sink_handler))
        .with_state(sink.clone());
    let listener = match tokio::net::TcpListener::bind(&a.sink).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("loadgen: cannot bind sink {}: {e}", a.sink);
            std::process::exit(1);
        }
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.conns)
        .http1_only()
        .build()
        .expect("http client");
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..a.alerts / a.batch)
            .map(|b| {
                let batch: Vec<Value> = (b * a.batch..(b + 1) * a.batch)
                    .map(|n| alert(n, a.groups))
                    .collect();
                serde_json::to_vec(&batch).expect("encode")
            })
            .collect(),
    );

    eprintln!(
        "[{}] posting {} alerts in batches of {} over {} connections",
        a.name, a.alerts, a.batch, a.conns
    );
    let cpu_before = cpu_ticks(a.pid);
    let t0 = Instant::now();
    let trace = trace_cpu(a.pid, t0, 10);
    let (post_time, posted) = match post_all(&client, &a, bodies.clone()).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    let posts_done = Instant::now();
    // The target's CPU time (user + system) spent while the POSTs ran: a figure that
    // other processes' load disturbs less than wall-clock throughput.
    let post_cpu_s = match (cpu_before, cpu_ticks(a.pid)) {
        (Some(x), Some(y)) => Some((y - x) as f64 / a.clk_tck as f64),
        _ => None,
    };
    let mut sent_at: Vec<Option<Instant>> = vec![None; a.alerts / a.batch];
    for (i, t, _) in &posted {
        sent_at[*i] = Some(*t);
    }
    let mut lat: Vec<Duration> = posted.iter().map(|p| p.2).collect();
    lat.sort();
    let accepted_per_s = a.alerts as f64 / post_time.as_secs_f64();
    eprintln!(
        "[{}] posted in {:.2?} ({accepted_per_s:.0} alerts/s), target CPU {post_cpu_s:?} s",
        a.name, post_time
    );

    // Every group notified?
    let deadline = Instant::now() + Duration::from_secs(180);
    let all_notified = loop {
        let (n, last) = {
            let s = sink.lock();
            (s.first_seen.len(), s.first_seen.values().max().copied())
        };
        if n >= a.groups {
            break last.map(|l| l.duration_since(t0));
        }
        if Instant::now() > deadline {
            eprintln!(
                "[{}] only {n} of {} groups notified after 180 s",
                a.name, a.groups
            );
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let groups_notified = sink.lock().first_seen.len();
    print_timeline(&a.name, t0, &sink.lock(), &trace, a.clk_tck);
    // Per group: from the POST carrying its first alert (alert `g`, batch `g / batch`)
    // to its first notification. Groups never notified count as missing.
    let mut per_group: Vec<Duration> = {
        let s = sink.lock();
        (0..a.groups.min(a.alerts))
            .filter_map(|g| {
                let sent = sent_at.get(g / a.batch).copied().flatten()?;
                let seen = s.first_seen.get(&group_key(g, a.groups))?;
                Some(seen.saturating_duration_since(sent))
            })
            .collect()
    };
    per_group.sort();
    let group_limit = Duration::from_millis(1500);
    let groups_late = per_group.iter().filter(|d| **d > group_limit).count()
        + a.groups.min(a.alerts).saturating_sub(per_group.len());
    eprintln!(
        "[{}] first alert → notified per group: p50 {:?}, p99 {:?}, max {:?}; {groups_late} over 1.5 s",
        a.name,
        pct(&per_group, 0.5),
        pct(&per_group, 0.99),
        per_group.last().copied().unwrap_or_default()
    );
    eprintln!(
        "[{}] {groups_notified} groups notified; last at {all_notified:?}",
        a.name
    );

    // Idle CPU with every alert active, once the target has gone quiet: groups whose
    // last alerts arrived late in the posting are re-notified one group_interval
    // later (and a target may hold re-notifications back until ingest ends), so wait
    // until no notification arrived for 3 s since the last POST was answered (at
    // most 60 s).
    let quiet_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = sink.lock().last.map_or(posts_done, |l| l.max(posts_done));
        let quiet = last.elapsed() >= Duration::from_secs(3);
        if quiet || Instant::now() > quiet_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c0 = cpu_ticks(a.pid);
    let w0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.idle_secs)).await;
    let idle_cores = match (c0, cpu_ticks(a.pid)) {
        (Some(x), Some(y)) => Some((y - x) as f64 / a.clk_tck as f64 / w0.elapsed().as_secs_f64()),
        _ => None,
    };
    eprintln!("[{}] idle CPU {idle_cores:?} cores", a.name);

    // Re-post the same alerts: nothing may be notified.
    let before = sink.lock().notifications;
    if let Err(e) = post_all(&client, &a, bodies).await {
        eprintln!("loadgen: repost: {e}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let repost_notifications = sink.lock().notifications - before;
    let rss_mib = vm_hwm_kib(a.pid).map(|k| k as f64 / 1024.0);
    let result = json!({
        "name": a.name,
        "alerts": a.alerts,
        "batch": a.batch,
        "conns": a.conns,
        "groups": a.groups,
        "post_seconds": post_time.as_secs_f64(),
        "post_cpu_seconds": post_cpu_s,
        "accepted_per_s": accepted_per_s,
        "post_p50_ms": pct(&lat, 0.50).as_secs_f64() * 1e3,
        "post_p99_ms": pct(&lat, 0.99).as_secs_f64() * 1e3,
        "groups_notified": groups_notified,
        "all_groups_notified_s": all_notified.map(|d| d.as_secs_f64()),
        "group_notify_p50_s": pct(&per_group, 0.5).as_secs_f64(),
        "group_notify_p99_s": pct(&per_group, 0.99).as_secs_f64(),
        "group_notify_max_s": per_group.last().map(|d| d.as_secs_f64()),
        "groups_over_1_5_s": groups_late,
        "idle_cpu_cores": idle_cores,
        "repost_notifications": repost_notifications,
        "peak_rss_mib": rss_mib,
        "total_notifications": sink.lock().notifications,
    });
    println!("{result}");
    if let Some(p) = &a.out
        && let Err(e) = std::fs::write(p, result.to_string())
    {
        eprintln!("loadgen: writing {p}: {e}");
    }
}
