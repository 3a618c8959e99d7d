//! Crash and bad-environment tests with real child processes:
//!
//! * a child ingests (commits alerts + incidents + timeline, schedules and completes
//!   jobs) and is killed with SIGKILL at random moments, 20 rounds on the same file;
//!   after each kill the parent reopens and checks that every acknowledged write is
//!   present and whole, nothing is duplicated, every acknowledged job is still
//!   pending or was completed;
//! * a child holds the database open: the parent's open fails with `Locked`;
//! * a child runs under a file size limit (RLIMIT_FSIZE via `ulimit -f`, SIGXFSZ
//!   ignored): commits fail with a clear I/O error, no panic, and after reopening
//!   without the limit every acknowledged batch is there and the failed one is not.
//! * a child on a 2 MiB tmpfs in its own user and mount namespace fills the disk:
//!   `disk full (ENOSPC)`, no panic, and after freeing space and reopening every
//!   acknowledged batch is there and the failed one is not;
//! * the real engine (paging planner, escalation policy) in a child killed with
//!   SIGKILL at random moments, 20 rounds: no group gets a second incident, no
//!   acknowledged alert or pending escalation job is lost.
//!
//! The child is this same test binary re-executed with `CHILD_ENV` set; the test
//! `child_process_entry` is its entry point and does nothing in a normal run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use signalcraft_core::channel::{Channel, Delivered, DeliveryError, Notification};
use signalcraft_core::clock::{Clock, ManualClock};
use signalcraft_core::engine::{ChannelNotifier, Engine, EngineConfig, PlannerEscalation};
use signalcraft_core::model::{Alert, Event, Labels, Severity, Source};
use signalcraft_core::scheduler::{Job, JobKind, Scheduler};
use signalcraft_core::store::{Scan, Store, StoreError, Table, WriteBatch};
use signalcraft_core::testing::fixtures::two_level_directory;
use signalcraft_store::RedbStore;

const CHILD_ENV: &str = "SIGNALCRAFT_STORE_TEST_CHILD";
const PATH_ENV: &str = "SIGNALCRAFT_STORE_TEST_PATH";
const ROUND_ENV: &str = "SIGNALCRAFT_STORE_TEST_ROUND";

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("ts")
}

// ---------------------------------------------------------------- child side

/// Entry point of the child process (no-op unless `CHILD_ENV` is set).
#[test]
fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    // The test harness has printed "test child_process_entry ... " without a newline.
    println!();
    let path = PathBuf::from(std::env::var(PATH_ENV).expect("path env"));
    let round: u32 = std::env::var(ROUND_ENV)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        match mode.as_str() {
            "ingest" => child_ingest(&path, round).await,
            "hold" => child_hold(&path).await,
            "fill" => child_fill(&path).await,
            "engine" => child_engine(&path, round).await,
            "tmpfs" => child_tmpfs(&path).await,
            other => panic!("unknown child mode {other}"),
        }
    });
    std::process::exit(0);
}

fn say(out: &Mutex<std::io::Stdout>, line: &str) {
    let out = out.lock().expect("stdout lock");
    let mut out = out.lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn alert_value(key: &str, round: u32, i: u64) -> String {
    format!(
        r#"{{"key":"{key}","round":{round},"i":{i},"incident":"inc-{round}-{}","pad":"{}"}}"#,
        i / 10,
        "x".repeat(300)
    )
}

async fn child_ingest(path: &Path, round: u32) {
    let store = RedbStore::open(path).expect("child open");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    say(&out, "READY");
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, out, next) = (store.clone(), out.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let sched = store.scheduler();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let key = format!("r{round:02}-{i:06}");
                let inc = format!("inc-{round}-{}", i / 10);
                let mut b = WriteBatch::new();
                b.put_raw(
                    Table::Alerts,
                    &key,
                    alert_value(&key, round, i).into_bytes(),
                )
                .put_raw(
                    Table::Incidents,
                    &inc,
                    format!(r#"{{"id":"{inc}","last_alert":"{key}"}}"#).into_bytes(),
                )
                .put_raw(
                    Table::Timeline,
                    format!("{inc}/{key}"),
                    format!(r#"{{"alert":"{key}"}}"#).into_bytes(),
                );
                store.commit(b).await.expect("commit");
                say(&out, &format!("ACK {key}"));
                if i % 3 == 0 {
                    let id = format!("esc/{key}");
                    let due = if i % 2 == 0 {
                        t(i as i64)
                    } else {
                        t(1_000_000 + i as i64)
                    };
                    sched
                        .schedule(Job {
                            id: id.clone(),
                            due,
                            kind: JobKind::Escalate {
                                incident_id: inc.clone(),
                                level: 0,
                                repeat: 0,
                            },
                            attempts: 0,
                        })
                        .await
                        .expect("schedule");
                    say(&out, &format!("SCHED {id}"));
                }
            }
        }));
    }
    // A worker that runs due jobs, like the engine's timer loop.
    let sched = store.scheduler();
    loop {
        let jobs = sched
            .claim_due(t(500_000), Duration::from_secs(3600), 4)
            .await
            .expect("claim");
        if jobs.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for j in jobs {
            // Said before completing: a kill right after `complete` still leaves a trace.
            say(&out, &format!("RUN {}", j.id));
            sched.complete(&j.id).await.expect("complete");
            say(&out, &format!("DONE {}", j.id));
        }
    }
}

/// A channel that accepts everything (the engine child's pages go nowhere).
struct Sink(&'static str);

#[async_trait::async_trait]
impl Channel for Sink {
    fn kind(&self) -> &str {
        self.0
    }
    fn name(&self) -> &str {
        self.0
    }
    async fn deliver(&self, _: &Notification) -> Result<Delivered, DeliveryError> {
        Ok(Delivered::default())
    }
}

/// The engine of the engine child (and of the parent's final check) over `store`.
fn engine_over(store: &RedbStore, clock: &ManualClock) -> Engine {
    let notifier = ChannelNotifier::new()
        .with("chat", Arc::new(Sink("chat")))
        .with("sms", Arc::new(Sink("sms")))
        .with("email", Arc::new(Sink("email")));
    let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
        "route": {"group_by": ["alertname"], "group_wait": "1s", "escalation_policy": "db",
                  "notify": [{"channel": "chat", "target": "#db"}]}
    }))
    .expect("engine config");
    Engine::builder(cfg)
        .store(Arc::new(store.clone()) as Arc<dyn Store>)
        .scheduler(Arc::new(store.scheduler()))
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(notifier))
        .escalation(Arc::new(PlannerEscalation::new(two_level_directory())))
        .build()
        .expect("engine")
}

/// The number of alert groups of the engine child (`alertname` G0..G5); their
/// alerts never resolve, so each must have exactly one incident, ever.
const ENGINE_GROUPS: u64 = 6;

/// Each round starts an hour after the previous one, so escalation jobs armed by an
/// earlier round (5 minutes) are past due when the next process starts.
fn round_start(round: u32) -> Timestamp {
    t(i64::from(round) * 3600)
}

/// The real engine over the store: 4 tasks ingest alerts of [`ENGINE_GROUPS`]
/// groups (`ACK <id>` once `ingest` returned), a timer task moves the clock one
/// second per pass, runs due jobs (group flushes open incidents, escalation jobs
/// page) and reports every pending escalation job (`PENDING <id>`).
async fn child_engine(path: &Path, round: u32) {
    let store = RedbStore::open(path).expect("child open");
    let clock = ManualClock::new(round_start(round));
    let engine = engine_over(&store, &clock);
    let scheduler = engine.scheduler().clone();
    engine.recover().await.expect("recover");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    say(&out, "READY");
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..4 {
        let (engine, out, next) = (engine.clone(), out.clone(), next.clone());
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let id = format!("r{round:02}-{i:06}");
                let mut labels = Labels::new();
                labels.insert("alertname".into(), format!("G{}", i % ENGINE_GROUPS));
                labels.insert("id".into(), id.clone());
                let mut a = Alert::firing(
                    Source {
                        provider: "t".into(),
                        integration: "prom".into(),
                    },
                    "crash test",
                    labels,
                );
                a.severity = Severity::Critical;
                engine.ingest(vec![Event::Alert(a)]).await.expect("ingest");
                say(&out, &format!("ACK {id}"));
            }
        });
    }
    let mut reported = BTreeSet::new();
    loop {
        clock.advance(Duration::from_secs(1));
        engine.run_due_jobs().await.expect("run due jobs");
        for j in scheduler.pending().await.expect("pending") {
            if let JobKind::Escalate {
                incident_id, level, ..
            } = &j.kind
                && reported.insert(j.id.clone())
            {
                say(&out, &format!("PENDING {} {incident_id} {level}", j.id));
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn child_hold(path: &Path) {
    let _store = RedbStore::open(path).expect("child open");
    println!("READY");
    let _ = std::io::stdout().flush();
    tokio::time::sleep(Duration::from_secs(60)).await;
}

async fn child_fill(path: &Path) {
    let store = match RedbStore::open(path) {
        Ok(s) => s,
        Err(e) => {
            println!("OPENERR {e}");
            return;
        }
    };
    for i in 0..100_000u32 {
        let key = format!("big-{i:06}");
        let mut b = WriteBatch::new();
        b.put_raw(
            Table::Alerts,
            &key,
            format!(r#"{{"pad":"{}"}}"#, "y".repeat(8000)).into_bytes(),
        );
        b.put_raw(Table::Timeline, format!("{key}/0"), b"{}".to_vec());
        match store.commit(b).await {
            Ok(()) => println!("ACK {key}"),
            Err(e) => {
                println!("FAIL {key}");
                println!("ERR {e:?} | {e}");
                // A further write also fails cleanly (no panic, no hang).
                let mut b = WriteBatch::new();
                b.put_raw(Table::Alerts, "after-failure", b"{}".to_vec());
                match store.commit(b).await {
                    Ok(()) => println!("ACK after-failure"),
                    Err(e) => println!("ERR2 {e}"),
                }
                let _ = std::io::stdout().flush();
                return;
            }
        }
    }
    println!("NOFAIL");
}

/// Runs on a tiny tmpfs (mounted by the parent's wrapper): a ballast file takes
/// 512 KiB, then alerts (each with its timeline entry) are committed until the
/// disk is full. The failure must be a typed `disk full (ENOSPC)` error and later
/// writes fail cleanly too. Then the store is closed, the ballast deleted, the store
/// reopened (the tmpfs vanishes with the child, so it checks itself): every
/// acknowledged alert is there, the failed batch is wholly absent, and writes work.
async fn child_tmpfs(path: &Path) {
    let ballast = path.with_file_name("ballast");
    if let Err(e) = std::fs::write(&ballast, vec![0u8; 512 * 1024]) {
        println!("SETUP ballast: {e}");
        return;
    }
    let store = match RedbStore::open(path) {
        Ok(s) => s,
        Err(e) => {
            println!("OPENERR {e}");
            return;
        }
    };
    let mut acked = Vec::new();
    let mut failed = None;
    for i in 0..100_000u32 {
        let key = format!("full-{i:06}");
        let mut b = WriteBatch::new();
        b.put_raw(
            Table::Alerts,
            &key,
            format!(r#"{{"pad":"{}"}}"#, "z".repeat(4000)).into_bytes(),
        );
        b.put_raw(Table::Timeline, format!("{key}/0"), b"{}".to_vec());
        match store.commit(b).await {
            Ok(()) => acked.push(key),
            Err(e) => {
                println!("ERR {e:?} | {e}");
                failed = Some(key);
                break;
            }
        }
    }
    let Some(failed) = failed else {
        println!("NOFAIL");
        return;
    };
    let mut b = WriteBatch::new();
    b.put_raw(Table::Alerts, "after-failure", b"{}".to_vec());
    match store.commit(b).await {
        Ok(()) => println!("ACK after-failure"),
        Err(e) => println!("ERR2 {e}"),
    }
    drop(store);
    if let Err(e) = std::fs::remove_file(&ballast) {
        println!("SETUP remove ballast: {e}");
        return;
    }
    let store = match RedbStore::open(path) {
        Ok(s) => s,
        Err(e) => {
            println!("REOPENERR {e}");
            return;
        }
    };
    for k in &acked {
        match store.get(Table::Alerts, k).await {
            Ok(Some(_)) => {}
            other => {
                println!("LOST {k} {other:?}");
                return;
            }
        }
    }
    let absent = matches!(store.get(Table::Alerts, &failed).await, Ok(None))
        && matches!(
            store.get(Table::Timeline, &format!("{failed}/0")).await,
            Ok(None)
        );
    let whole = match (
        store.count(Table::Alerts).await,
        store.count(Table::Timeline).await,
    ) {
        // "after-failure" has no timeline entry, if it was acknowledged.
        (Ok(a), Ok(t)) => a == t || a == t + 1,
        _ => false,
    };
    let mut b = WriteBatch::new();
    b.put_raw(Table::Alerts, "after-reopen", b"{}".to_vec());
    let writes = store.commit(b).await.is_ok();
    println!(
        "VERIFIED acked={} failed_absent={absent} batches_whole={whole} writes_after={writes}",
        acked.len()
    );
}

// ---------------------------------------------------------------- parent side

fn child(mode: &str, path: &Path, round: u32) -> Command {
    let exe = std::env::current_exe().expect("current exe");
    let mut c = Command::new(exe);
    c.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, mode)
    .env(PATH_ENV, path)
    .env(ROUND_ENV, round.to_string())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// The ids of the store's pending jobs.
async fn pending_ids(s: &RedbStore) -> BTreeSet<String> {
    s.scheduler()
        .pending()
        .await
        .expect("pending")
        .into_iter()
        .map(|j| j.id)
        .collect()
}

/// SIGKILLs the child of `round` once `reader` (from [`collect`]) has its output,
/// and asserts it had not panicked before the kill.
fn kill(c: &mut std::process::Child, reader: std::thread::JoinHandle<()>, round: u32) {
    c.kill().expect("SIGKILL");
    let status = c.wait().expect("wait");
    reader.join().expect("reader");
    let mut stderr = String::new();
    if let Some(mut e) = c.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(
        !stderr.contains("panicked"),
        "round {round}: child panicked before the kill ({status}):\n{stderr}"
    );
}

/// Collects the child's complete stdout lines on a thread.
fn collect(
    stdout: std::process::ChildStdout,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    let h = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = String::new();
        loop {
            buf.clear();
            match r.read_line(&mut buf) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill has no newline: it was never fully said.
                Ok(_) if buf.ends_with('\n') => {
                    l.lock().expect("lock").push(buf.trim_end().to_owned())
                }
                Ok(_) => break,
            }
        }
    });
    (lines, h)
}

fn wait_for(lines: &Mutex<Vec<String>>, what: &str, timeout: Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if lines.lock().expect("lock").iter().any(|l| l == what) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn sigkill_during_ingest_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.redb");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut rng = rand::rng();
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut scheduled: BTreeSet<String> = BTreeSet::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut ran: BTreeSet<String> = BTreeSet::new();
    let mut total_released = 0;
    let rounds = 20;
    for round in 0..rounds {
        let mut c = child("ingest", &path, round).spawn().expect("spawn child");
        let (lines, reader) = collect(c.stdout.take().expect("stdout"));
        // Most rounds kill mid-ingest; a few kill during startup/open.
        let delay = if round % 7 == 3 {
            rng.random_range(0..15)
        } else {
            rng.random_range(40..220)
        };
        std::thread::sleep(Duration::from_millis(delay));
        kill(&mut c, reader, round);
        for l in lines.lock().expect("lock").iter() {
            if let Some(k) = l.strip_prefix("ACK ") {
                acked.insert(k.to_owned());
            } else if let Some(k) = l.strip_prefix("SCHED ") {
                scheduled.insert(k.to_owned());
            } else if let Some(k) = l.strip_prefix("DONE ") {
                done.insert(k.to_owned());
            } else if let Some(k) = l.strip_prefix("RUN ") {
                ran.insert(k.to_owned());
            }
        }
        // Reopen and verify.
        rt.block_on(async {
            let s = RedbStore::open(&path)
                .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
            total_released += s.released_claims();
            let alerts: BTreeMap<String, Vec<u8>> = s
                .scan(Table::Alerts, Scan::all())
                .await
                .expect("scan")
                .into_iter()
                .collect();
            for k in &acked {
                let v = alerts
                    .get(k)
                    .unwrap_or_else(|| panic!("round {round}: acknowledged alert {k} is missing"));
                let v: serde_json::Value = serde_json::from_slice(v).expect("alert json");
                assert_eq!(v["key"], k.as_str(), "record content matches its key");
            }
            // Atomic batches: every alert present has its incident and timeline entry.
            let incidents = s.count(Table::Incidents).await.expect("count");
            let mut want_incidents = BTreeSet::new();
            for (k, v) in &alerts {
                let v: serde_json::Value = serde_json::from_slice(v).expect("alert json");
                let inc = v["incident"].as_str().expect("incident").to_owned();
                assert!(
                    s.get(Table::Timeline, &format!("{inc}/{k}"))
                        .await
                        .expect("get")
                        .is_some(),
                    "round {round}: alert {k} without its timeline entry (half a batch)"
                );
                want_incidents.insert(inc);
            }
            assert_eq!(
                incidents,
                want_incidents.len() as u64,
                "round {round}: incidents are neither lost nor duplicated"
            );
            assert_eq!(
                s.count(Table::Timeline).await.expect("count"),
                alerts.len() as u64,
                "one timeline entry per alert"
            );
            // Jobs: every acknowledged schedule is still pending or has run (a job
            // whose `complete` landed just before the kill shows as RUN only).
            let pending = pending_ids(&s).await;
            for id in &scheduled {
                assert!(
                    pending.contains(id) || ran.contains(id),
                    "round {round}: acknowledged job {id} vanished"
                );
            }
            for id in &done {
                assert!(
                    !pending.contains(id),
                    "round {round}: completed job {id} came back"
                );
            }
        });
    }
    assert!(
        acked.len() > 200,
        "the children acknowledged enough writes to make the test meaningful: {}",
        acked.len()
    );
    assert!(!done.is_empty(), "some jobs ran");
    eprintln!(
        "{rounds} SIGKILL rounds: {} acknowledged alerts, {} jobs scheduled, {} completed, {total_released} claims released on reopen",
        acked.len(),
        scheduled.len(),
        done.len()
    );
    // Finally the file passes a full integrity check.
    rt.block_on(async {
        let s = RedbStore::open(&path).expect("open");
        assert!(
            s.check_integrity().await.expect("integrity"),
            "file is consistent"
        );
    });
}

/// Every `rNN-NNNNNN` alert id found anywhere in the stored alert records.
fn stored_alert_ids(rows: &[(String, Vec<u8>)]) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::String(s)
                if s.len() == 10 && s.starts_with('r') && s.as_bytes()[3] == b'-' =>
            {
                out.insert(s.clone());
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for (_, v) in rows {
        walk(&serde_json::from_slice(v).expect("alert json"), &mut out);
    }
    out
}

/// Incident ids by group key, from the stored incident records.
async fn incidents_by_group(s: &RedbStore) -> BTreeMap<String, Vec<String>> {
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in s.scan(Table::Incidents, Scan::all()).await.expect("scan") {
        let v: serde_json::Value = serde_json::from_slice(&v).expect("incident json");
        let g = v["group_key"].as_str().expect("group_key").to_owned();
        by_group.entry(g).or_default().push(k);
    }
    by_group
}

/// The paging steps an incident's timeline records, in order: the level of each
/// `escalated` entry (1-based), and 3 for the policy's exhaustion (what the job
/// after the last of the 2 levels records). A job of 0-based `level` has run when
/// `level + 1` is among them.
async fn paging_steps(s: &RedbStore, incident: &str) -> Vec<u64> {
    s.scan(Table::Timeline, Scan::prefix(format!("{incident}/")))
        .await
        .expect("timeline")
        .iter()
        .filter_map(|(_, v)| {
            let v: serde_json::Value = serde_json::from_slice(v).ok()?;
            match v["type"].as_str()? {
                "escalated" => v["level"].as_u64(),
                "custom" if v["name"] == "paging.policy_exhausted" => Some(3),
                _ => None,
            }
        })
        .collect()
}

/// The real engine over redb, killed with SIGKILL at random moments (20 rounds on
/// one file, each round an hour of clock after the previous): after each kill the
/// file opens cleanly, every alert whose ingest returned is stored, no alert group
/// has two incidents (its alerts never resolve), and every escalation job that was
/// pending is still pending or has run (its incident's timeline shows the step).
/// At the end an engine on the file runs every job that is left: each group has
/// exactly one incident, every escalation job seen pending has run, none is left,
/// and every incident has paged level 1, level 2 and then run out of its policy,
/// each step recorded once — also when a kill lands after an incident's commit and
/// before its escalation hook durably armed the next step (recovery resumes that
/// escalation: `EscalationHook::recover`), or after a step ran and before its job
/// was completed (the re-run records nothing new).
#[test]
fn sigkill_during_engine_ingest_duplicates_no_incident_and_every_incident_escalates_fully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("engine.redb");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut rng = rand::rng();
    let mut acked: BTreeSet<String> = BTreeSet::new();
    // Job id -> (incident id, 0-based level).
    let mut escalations: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let rounds = 20;
    for round in 0..rounds {
        let mut c = child("engine", &path, round).spawn().expect("spawn child");
        let (lines, reader) = collect(c.stdout.take().expect("stdout"));
        // Most rounds kill mid-run; a few during startup (open, recovery).
        if round % 7 == 3 {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..30)));
        } else {
            assert!(
                wait_for(&lines, "READY", Duration::from_secs(30)),
                "round {round}: the child started"
            );
            std::thread::sleep(Duration::from_millis(rng.random_range(30..250)));
        }
        kill(&mut c, reader, round);
        for l in lines.lock().expect("lock").iter() {
            if let Some(id) = l.strip_prefix("ACK ") {
                acked.insert(id.to_owned());
            } else if let Some(rest) = l.strip_prefix("PENDING ") {
                let mut f = rest.split(' ');
                let (Some(id), Some(inc), Some(level)) = (f.next(), f.next(), f.next()) else {
                    panic!("bad PENDING line {l}");
                };
                let level = level.parse().expect("level");
                escalations.insert(id.to_owned(), (inc.to_owned(), level));
            }
        }
        rt.block_on(async {
            let s = RedbStore::open(&path)
                .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
            let rows = s.scan(Table::Alerts, Scan::all()).await.expect("scan");
            let stored = stored_alert_ids(&rows);
            for id in &acked {
                assert!(
                    stored.contains(id),
                    "round {round}: acknowledged alert {id} is missing"
                );
            }
            for (g, ids) in incidents_by_group(&s).await {
                assert_eq!(
                    ids.len(),
                    1,
                    "round {round}: group {g} has incidents {ids:?}"
                );
            }
            let pending = pending_ids(&s).await;
            for (id, (incident, level)) in &escalations {
                assert!(
                    pending.contains(id) || paging_steps(&s, incident).await.contains(&(level + 1)),
                    "round {round}: escalation job {id} (level {level} of {incident}) \
                     neither pending nor run"
                );
            }
        });
    }
    assert!(acked.len() > 100, "enough ingests: {}", acked.len());
    assert!(!escalations.is_empty(), "escalation jobs were armed");
    // The end: a last process runs everything left (the clock a day later).
    rt.block_on(async {
        let s = RedbStore::open(&path).expect("open");
        let clock = ManualClock::new(round_start(rounds + 24));
        let engine = engine_over(&s, &clock);
        engine.recover().await.expect("recover");
        // An hour of clock: every past-due job runs now, the repeat notifications of
        // the firing groups come hours later.
        let until = round_start(rounds + 25);
        while let Some(next) = engine.next_wakeup().await.expect("next") {
            if next > until {
                break;
            }
            if next > clock.now() {
                clock.set(next);
            }
            engine.run_due_jobs().await.expect("run");
        }
        let groups = incidents_by_group(&s).await;
        assert_eq!(
            groups.len() as u64,
            ENGINE_GROUPS.min(acked.len() as u64),
            "one incident per group: {groups:?}"
        );
        for ids in groups.values() {
            assert_eq!(ids.len(), 1, "{groups:?}");
            let steps = paging_steps(&s, &ids[0]).await;
            assert_eq!(steps, vec![1, 2, 3], "{}", ids[0]);
        }
        for (id, (incident, level)) in &escalations {
            assert!(
                paging_steps(&s, incident).await.contains(&(level + 1)),
                "escalation job {id} (level {level} of {incident}) never ran"
            );
        }
        assert!(
            engine
                .scheduler()
                .pending()
                .await
                .expect("pending")
                .iter()
                .all(|j| !matches!(j.kind, JobKind::Escalate { .. })),
            "every escalation ran"
        );
        drop(engine);
        assert!(s.check_integrity().await.expect("integrity"));
        eprintln!(
            "{rounds} SIGKILL rounds of the engine: {} acknowledged alerts, {} escalation jobs seen pending",
            acked.len(),
            escalations.len()
        );
    });
}

#[test]
fn a_file_held_by_another_process_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("held.redb");
    let mut c = child("hold", &path, 0).spawn().expect("spawn child");
    let (lines, reader) = collect(c.stdout.take().expect("stdout"));
    assert!(
        wait_for(&lines, "READY", Duration::from_secs(20)),
        "child opened the store"
    );
    let e = RedbStore::open(&path).expect_err("locked by the child");
    c.kill().expect("kill");
    c.wait().expect("wait");
    reader.join().expect("reader");
    assert!(matches!(e, StoreError::Locked(_)), "{e:?}");
    assert!(e.to_string().contains("held.redb"), "names the file: {e}");
    // Once the holder is gone the file opens.
    RedbStore::open(&path).expect("open after the holder died");
}

/// A real full disk (ENOSPC): the child runs in its own user and mount namespace
/// (`unshare -rm`) on a 2 MiB tmpfs and checks itself (see [`child_tmpfs`]).
/// Skipped where namespaces or tmpfs mounts are not allowed.
#[test]
fn a_full_tmpfs_fails_commits_with_enospc_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let exe = std::env::current_exe().expect("exe");
    let script = r#"mount -t tmpfs -o size=2m tmpfs "$0" || exit 97; exec "$@""#;
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .arg(&mnt)
        .arg(exe)
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "tmpfs")
        .env(PATH_ENV, mnt.join("full.redb"))
        .output();
    let out = match out {
        // 97: the mount failed; 1: unshare could not create the namespaces.
        Ok(o) if matches!(o.status.code(), Some(97) | Some(1)) => {
            eprintln!(
                "SKIPPED: no tmpfs in a user namespace here ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Ok(o) => o,
        Err(e) => {
            eprintln!("SKIPPED: unshare not available: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child exited cleanly (no panic): {}\n{stdout}\n{stderr}",
        out.status
    );
    let err = stdout
        .lines()
        .find(|l| l.starts_with("ERR "))
        .unwrap_or_else(|| panic!("the disk filled up:\n{stdout}"));
    assert!(
        err.contains("Io(") && err.contains("disk full (ENOSPC)"),
        "a clear, typed I/O error: {err}"
    );
    let verified = stdout
        .lines()
        .find(|l| l.starts_with("VERIFIED "))
        .unwrap_or_else(|| panic!("the child verified after freeing space:\n{stdout}"));
    assert!(
        verified.contains("failed_absent=true")
            && verified.contains("batches_whole=true")
            && verified.contains("writes_after=true"),
        "{verified}"
    );
    let acked: usize = verified
        .split_whitespace()
        .find_map(|f| f.strip_prefix("acked="))
        .and_then(|n| n.parse().ok())
        .expect("acked count");
    assert!(
        acked > 10,
        "some batches were acknowledged first: {verified}"
    );
}

#[test]
fn a_full_disk_fails_commits_cleanly_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("full.redb");
    let exe = std::env::current_exe().expect("exe");
    // 4 MiB limit (ulimit -f counts 1024-byte blocks in bash, 512 in dash: either is small).
    let script = r#"trap '' XFSZ; ulimit -f 4096 || exit 97; exec "$0" "$@""#;
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(exe)
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "fill")
        .env(PATH_ENV, &path)
        .output()
        .expect("run child under a file size limit");
    if out.status.code() == Some(97) {
        eprintln!("SKIPPED: this shell cannot set a file size limit (ulimit -f)");
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child exited cleanly (no panic): {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(!stdout.contains("NOFAIL"), "the limit was hit");
    let err_line = stdout
        .lines()
        .find(|l| l.starts_with("ERR ") || l.starts_with("OPENERR "))
        .unwrap_or_else(|| panic!("child reported the failure:\n{stdout}"));
    assert!(
        err_line.contains("Io(") && err_line.contains("file size limit"),
        "a clear, typed I/O error: {err_line}"
    );
    let failed: Option<&str> = stdout.lines().find_map(|l| l.strip_prefix("FAIL "));
    let acked: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ACK "))
        .collect();
    assert!(!acked.is_empty() || stdout.contains("OPENERR"), "{stdout}");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let s = RedbStore::open(&path).expect("reopen without the limit");
        for k in &acked {
            assert!(
                s.get(Table::Alerts, k).await.expect("get").is_some(),
                "acknowledged {k} survived the full disk"
            );
        }
        if let Some(f) = failed {
            assert_eq!(
                s.get(Table::Alerts, f).await.expect("get"),
                None,
                "failed batch absent"
            );
            assert_eq!(
                s.get(Table::Timeline, &format!("{f}/0"))
                    .await
                    .expect("get"),
                None,
                "no half of the failed batch"
            );
        }
        let n = s.count(Table::Alerts).await.expect("count");
        let t = s.count(Table::Timeline).await.expect("count");
        assert_eq!(n, t, "every batch is whole");
        // And the store works again once there is room.
        let mut b = WriteBatch::new();
        b.put_raw(Table::Alerts, "after-reopen", b"{}".to_vec());
        s.commit(b).await.expect("commit after reopen");
    });
}
