//! Retention (closed incidents by age, archive, bounded file size) and backup/restore.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use signalcraft_core::memory::MemoryStore;
use signalcraft_core::scheduler::{Job, JobKind, Scheduler};
use signalcraft_core::store::{Scan, Store, StoreError, Table, WriteBatch};
use signalcraft_store::{Error, RedbStore, RetentionPolicy, SealKey, StoreOptions};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("ts")
}

const HOUR: i64 = 3600;

/// Writes an incident with `n_alerts` alerts and `n_entries` timeline entries.
fn incident(
    b: &mut WriteBatch,
    id: &str,
    state: &str,
    closed_at: Option<Timestamp>,
    n_alerts: usize,
    n_entries: usize,
) {
    let alerts: Vec<String> = (0..n_alerts).map(|i| format!("{id}-fp{i}")).collect();
    let mut rec = serde_json::json!({"id": id, "state": state, "alerts": alerts, "title": "disk full on db-1"});
    if let Some(c) = closed_at {
        rec["closed_at"] = c.to_string().into();
    }
    b.put(Table::Incidents, id, &rec).expect("encode");
    for a in &alerts {
        let alert = serde_json::json!({"fingerprint": a, "incident_id": id, "labels": {"alertname": "DiskFull", "instance": "db-1:9100"}, "annotations": {"summary": "x".repeat(200)}});
        b.put(Table::Alerts, a.as_str(), &alert).expect("encode");
    }
    for e in 0..n_entries {
        b.put(
            Table::Timeline,
            format!("{id}/{e:06}"),
            &serde_json::json!({"kind": "note", "text": "y".repeat(200)}),
        )
        .expect("encode");
    }
}

async fn retention_removes_only_old_closed_incidents<S: Store>(s: &S) {
    let mut b = WriteBatch::new();
    incident(&mut b, "old-resolved", "resolved", Some(t(0)), 2, 3);
    incident(&mut b, "old-closed", "closed", Some(t(10)), 1, 1);
    incident(
        &mut b,
        "recent-resolved",
        "resolved",
        Some(t(47 * HOUR)),
        1,
        2,
    );
    incident(&mut b, "old-open", "triggered", None, 1, 2);
    incident(&mut b, "closed-no-time", "resolved", None, 1, 1);
    // An alert whose fingerprint fired again and now belongs to an open incident.
    incident(&mut b, "old-refired", "resolved", Some(t(5)), 1, 0);
    b.put(
        Table::Alerts,
        "old-refired-fp0",
        &serde_json::json!({"fingerprint": "old-refired-fp0", "incident_id": "old-open"}),
    )
    .expect("encode");
    // Millisecond closing time is understood too.
    b.put(
        Table::Incidents,
        "old-ms",
        &serde_json::json!({"state": "resolved", "resolved_at": t(0).as_millisecond()}),
    )
    .expect("encode");
    b.put_raw(Table::Incidents, "not-json", b"garbage".to_vec());
    s.commit(b).await.expect("commit");

    let policy = RetentionPolicy {
        page_size: 2, // exercise paging
        ..RetentionPolicy::new(Duration::from_secs(24 * 3600))
    };
    let mut archive = Vec::new();
    let report = policy
        .run_with_archive(s, t(48 * HOUR), &mut archive)
        .await
        .expect("retention");
    assert_eq!(report.incidents, 4, "{report:?}");
    assert_eq!(report.alerts, 3, "the re-fired alert is kept: {report:?}");
    assert_eq!(report.timeline_entries, 4, "{report:?}");
    assert_eq!(report.archived, 4);
    let remaining: Vec<String> = s
        .scan(Table::Incidents, Scan::all())
        .await
        .expect("scan")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        remaining,
        ["closed-no-time", "not-json", "old-open", "recent-resolved"]
    );
    assert!(
        s.get(Table::Alerts, "old-refired-fp0")
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        s.get(Table::Alerts, "old-resolved-fp1")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        s.get(Table::Alerts, "recent-resolved-fp0")
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        s.scan(Table::Timeline, Scan::prefix("old-resolved/"))
            .await
            .expect("scan")
            .is_empty()
    );
    assert_eq!(
        s.scan(Table::Timeline, Scan::prefix("old-open/"))
            .await
            .expect("scan")
            .len(),
        2
    );
    // The archive has one JSON line per removed timeline entry.
    let text = String::from_utf8(archive).expect("utf8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["incident"], "old-closed");
    assert_eq!(lines[1]["key"], "old-resolved/000000");
    assert_eq!(lines[1]["entry"]["kind"], "note");
    // A second run finds nothing more.
    let again = policy.run(s, t(48 * HOUR)).await.expect("retention");
    assert_eq!(again.incidents, 0);
}

#[tokio::test]
async fn retention_on_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path().join("r.redb")).expect("open");
    retention_removes_only_old_closed_incidents(&s).await;
}

#[tokio::test]
async fn retention_on_memory() {
    retention_removes_only_old_closed_incidents(&MemoryStore::new()).await;
}

/// A steady stream of incidents (each closed an hour after it opens) with retention
/// of 2 hours keeps the file from growing: redb reuses the pages retention frees.
#[tokio::test]
async fn steady_ingest_with_retention_keeps_the_file_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path().join("steady.redb")).expect("open");
    let policy = RetentionPolicy::new(Duration::from_secs(2 * 3600));
    let mut sizes = Vec::new();
    for hour in 0..40i64 {
        // 100 incidents per hour, 3 alerts and 4 timeline entries each, ~300 KB.
        for chunk in 0..10 {
            let mut b = WriteBatch::new();
            for n in 0..10 {
                let id = format!("h{hour:03}-{chunk}-{n}");
                incident(&mut b, &id, "resolved", Some(t(hour * HOUR)), 3, 4);
            }
            s.commit(b).await.expect("commit");
        }
        policy.run(&s, t(hour * HOUR)).await.expect("retention");
        sizes.push(s.file_size().expect("size"));
    }
    eprintln!("file size per hour: {sizes:?}");
    assert!(
        s.count(Table::Incidents).await.expect("count") <= 300,
        "retention kept up"
    );
    let at10 = sizes[10];
    let max_after = *sizes[10..].iter().max().expect("sizes");
    assert!(
        max_after <= at10 + at10 / 2,
        "file grew without bound: {at10} bytes after 10 h, up to {max_after} later ({sizes:?})"
    );
    // Compaction gives space back once the stream stops and everything expires.
    policy.run(&s, t(100 * HOUR)).await.expect("retention");
    let before = s.file_size().expect("size");
    let mut ran = false;
    for _ in 0..4 {
        ran |= s.compact().await.expect("compact");
    }
    assert!(ran);
    assert!(
        s.file_size().expect("size") < before,
        "compaction shrank the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_while_writing_is_consistent_and_imports_into_an_empty_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SealKey::from_bytes(&[3u8; 32]).expect("key");
    let opts = StoreOptions {
        encryption_key: Some(key.clone()),
        ..StoreOptions::default()
    };
    let src =
        Arc::new(RedbStore::open_with(dir.path().join("src.redb"), opts.clone()).expect("open"));
    let mut b = WriteBatch::new();
    b.put_raw(
        Table::Integrations,
        "pd",
        br#"{"kind":"pagerduty","secrets":{"routing_key":"R0UT1NG"}}"#.to_vec(),
    );
    b.put_raw(Table::Meta, "binary", vec![0, 159, 146, 150]); // not JSON: exported as bytes
    b.put_raw(
        Table::Users,
        "u1",
        r#"{"name":"Ada","ü":"ß"}"#.as_bytes().to_vec(),
    );
    src.commit(b).await.expect("commit");
    let sched = src.scheduler();
    sched
        .schedule(Job {
            id: "esc/inc-1/0".into(),
            due: t(60),
            kind: JobKind::Escalate {
                incident_id: "inc-1".into(),
                level: 0,
                repeat: 0,
            },
            attempts: 2,
        })
        .await
        .expect("schedule");
    sched
        .claim_due(t(60), Duration::from_secs(60), 1)
        .await
        .expect("claim");

    // Writers keep committing pairs (x/i, y/i) while the export runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (src, stop) = (src.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let mut b = WriteBatch::new();
                b.put_raw(Table::Groups, format!("x/{i:06}"), b"{}".to_vec())
                    .put_raw(Table::Groups, format!("y/{i:06}"), b"{}".to_vec());
                src.commit(b).await.expect("commit");
                i += 1;
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let exporter = src.clone();
    let (backup, report) = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let report = exporter.export(&mut out).expect("export");
        (out, report)
    })
    .await
    .expect("export task");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.expect("writer");
    assert!(written > 0);
    assert_eq!(report.jobs, 1);
    let text = String::from_utf8(backup.clone()).expect("utf8");
    assert!(
        !text.contains("R0UT1NG"),
        "secrets stay sealed in the backup"
    );
    let xs = text.matches("\"x/").count();
    let ys = text.matches("\"y/").count();
    assert_eq!(xs, ys, "the snapshot holds whole batches only");

    // Import into an empty store with the same key.
    let dst = RedbStore::open_with(dir.path().join("dst.redb"), opts).expect("open");
    let imported = dst.import(backup.as_slice()).await.expect("import");
    assert_eq!(imported, report);
    assert_eq!(
        dst.count(Table::Groups).await.expect("count"),
        (xs + ys) as u64
    );
    let pd = dst
        .get(Table::Integrations, "pd")
        .await
        .expect("get")
        .expect("row");
    assert!(
        String::from_utf8_lossy(&pd).contains("R0UT1NG"),
        "readable with the key"
    );
    assert_eq!(
        dst.get(Table::Meta, "binary").await.expect("get"),
        Some(vec![0, 159, 146, 150]),
        "non-JSON bytes round-trip"
    );
    let u1: serde_json::Value = serde_json::from_slice(
        &dst.get(Table::Users, "u1")
            .await
            .expect("get")
            .expect("row"),
    )
    .expect("json");
    assert_eq!(u1["ü"], "ß");
    let jobs = dst.scheduler().pending().await.expect("pending");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempts, 2);
    // Restored jobs are unclaimed: due now.
    assert_eq!(
        dst.scheduler()
            .claim_due(t(60), Duration::from_secs(5), 5)
            .await
            .expect("claim")
            .len(),
        1
    );

    // A second import is refused: the store is not empty.
    let e = dst.import(backup.as_slice()).await.expect_err("non-empty");
    assert!(matches!(e, Error::NotEmpty { .. }), "{e:?}");
    assert!(e.to_string().contains("non-empty"), "{e}");
}

#[tokio::test]
async fn bad_backups_are_refused_with_the_line_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &str); 6] = [
        ("", "no header"),
        ("{\"hello\":1}\n", "line 1"),
        (
            "{\"signalcraft_backup\":1,\"schema\":1}\nnot json\n",
            "line 2",
        ),
        (
            "{\"signalcraft_backup\":1,\"schema\":1}\n{\"table\":\"nope\",\"key\":\"k\",\"value\":1}\n",
            "unknown table",
        ),
        (
            "{\"signalcraft_backup\":1,\"schema\":1}\n\n{\"table\":\"alerts\",\"key\":\"k\"}\n",
            "line 3",
        ),
        (
            "{\"signalcraft_backup\":1,\"schema\":999}\n",
            "newer than supported",
        ),
    ];
    for (i, (input, want)) in cases.iter().enumerate() {
        let s = RedbStore::open(dir.path().join(format!("b{i}.redb"))).expect("open");
        let e = s.import(input.as_bytes()).await.expect_err("bad backup");
        assert!(e.to_string().contains(want), "case {i}: {e}");
    }
    // A schema-too-new backup is the typed store error.
    let s = RedbStore::open(dir.path().join("typed.redb")).expect("open");
    let e = s
        .import("{\"signalcraft_backup\":1,\"schema\":999}\n".as_bytes())
        .await
        .expect_err("too new");
    assert!(matches!(
        e,
        Error::Store(StoreError::SchemaTooNew { found: 999, .. })
    ));
}

/// Writers that keep an invariant across tables: writer `w`'s batch `i` writes
/// `alerts/w{w}/{i}`, `incidents/w{w}/{i}` and sets `meta/w{w}` to `i`. In any
/// consistent snapshot, for every writer, exactly the batches `0..=meta` exist in
/// both tables. Returns (handles, stop flag, per-writer count of acknowledged batches).
struct InvariantWriters {
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<Vec<std::sync::atomic::AtomicU64>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

const WRITERS: usize = 8;

impl InvariantWriters {
    fn start(s: &Arc<RedbStore>) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Vec<AtomicU64>> =
            Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
        let tasks = (0..WRITERS)
            .map(|w| {
                let (s, stop, acked) = (s.clone(), stop.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let mut b = WriteBatch::new();
                        let k = format!("w{w}/{i:08}");
                        b.put(
                            Table::Alerts,
                            k.as_str(),
                            &serde_json::json!({"w": w, "i": i, "pad": "p".repeat(300)}),
                        )
                        .expect("encode")
                        .put(
                            Table::Incidents,
                            k.as_str(),
                            &serde_json::json!({"w": w, "i": i}),
                        )
                        .expect("encode")
                        .put(Table::Meta, format!("w{w}"), &serde_json::json!(i))
                        .expect("encode");
                        s.commit(b).await.expect("commit");
                        i += 1;
                        acked[w].store(i, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        InvariantWriters { stop, acked, tasks }
    }

    fn acked(&self) -> Vec<u64> {
        self.acked
            .iter()
            .map(|a| a.load(std::sync::atomic::Ordering::SeqCst))
            .collect()
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("writer");
        }
    }
}

/// Checks the invariant on a store's contents and that every batch acknowledged
/// before the backup started (`floor`) is in it. Returns the batches it holds.
async fn check_invariant(s: &RedbStore, floor: &[u64]) -> u64 {
    let mut total = 0;
    for (w, &floor) in floor.iter().enumerate() {
        let meta = s.get(Table::Meta, &format!("w{w}")).await.expect("get");
        let count = match meta {
            Some(v) => serde_json::from_slice::<u64>(&v).expect("counter") + 1,
            None => 0,
        };
        assert!(
            count >= floor,
            "writer {w}: {count} batches, {floor} acknowledged before the backup"
        );
        for table in [Table::Alerts, Table::Incidents] {
            let rows = s
                .scan(table, Scan::prefix(format!("w{w}/")))
                .await
                .expect("scan");
            let keys: Vec<String> = rows.into_iter().map(|(k, _)| k).collect();
            let want: Vec<String> = (0..count).map(|i| format!("w{w}/{i:08}")).collect();
            assert_eq!(
                keys,
                want,
                "writer {w}, table {}: exactly batches 0..{count}",
                table.name()
            );
        }
        total += count;
    }
    total
}

/// JSON Lines export while 8 writers commit: the export spans many commits, holds
/// whole batches only and a prefix of each writer's batches (one snapshot), and has
/// everything acknowledged before it started; the import reproduces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_export_is_one_snapshot_while_writers_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Arc::new(RedbStore::open(dir.path().join("src.redb")).expect("open"));
    let writers = InvariantWriters::start(&src);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let floor = writers.acked();
    let before = src.writer_stats().transactions;
    let exporter = src.clone();
    let backup = tokio::task::spawn_blocking(move || {
        // A slow sink: the export lasts long enough for writers to commit meanwhile.
        struct Slow(Vec<u8>, u64);
        impl std::io::Write for Slow {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.1 += 1;
                if self.1.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_micros(200));
                }
                self.0.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = Slow(Vec::new(), 0);
        exporter.export(&mut out).expect("export");
        out.0
    })
    .await
    .expect("export task");
    let during = src.writer_stats().transactions - before;
    writers.stop().await;
    assert!(
        during > 5,
        "writers committed during the export ({during} transactions)"
    );
    let dst = RedbStore::open(dir.path().join("dst.redb")).expect("open");
    dst.import(backup.as_slice()).await.expect("import");
    let held = check_invariant(&dst, &floor).await;
    let total = check_invariant(&src, &floor).await;
    assert!(
        held < total,
        "the backup is a snapshot: later commits are not in it"
    );
}

/// The redb-file backup taken while 8 writers commit: same snapshot properties;
/// the copy opens as a store (jobs pending, sealed secrets readable with the key),
/// an existing target is refused, and no `.partial` file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_file_backup_is_one_snapshot_while_writers_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SealKey::from_bytes(&[5u8; 32]).expect("key");
    let opts = StoreOptions {
        encryption_key: Some(key),
        ..StoreOptions::default()
    };
    let src =
        Arc::new(RedbStore::open_with(dir.path().join("src.redb"), opts.clone()).expect("open"));
    let mut b = WriteBatch::new();
    b.put_raw(
        Table::Integrations,
        "pd",
        br#"{"kind":"pagerduty","secrets":{"routing_key":"R0UT1NG"}}"#.to_vec(),
    );
    src.commit(b).await.expect("commit");
    let job = Job {
        id: "esc/inc-1/0".into(),
        due: t(60),
        kind: JobKind::Escalate {
            incident_id: "inc-1".into(),
            level: 0,
            repeat: 0,
        },
        attempts: 1,
    };
    src.scheduler()
        .schedule(job.clone())
        .await
        .expect("schedule");
    let writers = InvariantWriters::start(&src);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let floor = writers.acked();
    let target = dir.path().join("backup.redb");
    let copier = src.clone();
    let t2 = target.clone();
    let report = tokio::task::spawn_blocking(move || copier.backup_to_file(&t2))
        .await
        .expect("backup task")
        .expect("backup");
    writers.stop().await;
    assert_eq!(report.jobs, 1);
    assert!(!dir.path().join("backup.redb.partial").exists());
    let e = src.backup_to_file(&target).expect_err("target exists");
    assert!(e.to_string().contains("already exists"), "{e}");
    let missing = dir.path().join("no-such-dir").join("b.redb");
    let e = src.backup_to_file(&missing).expect_err("no directory");
    assert!(e.to_string().contains("no-such-dir"), "{e}");

    let copy = RedbStore::open_with(&target, opts).expect("open the copy");
    let held = check_invariant(&copy, &floor).await;
    assert!(held > 0);
    let raw = std::fs::read(&target).expect("read copy");
    assert!(
        !raw.windows(7).any(|w| w == b"R0UT1NG"),
        "secrets stay sealed"
    );
    let pd = copy
        .get(Table::Integrations, "pd")
        .await
        .expect("get")
        .expect("row");
    assert!(String::from_utf8_lossy(&pd).contains("R0UT1NG"));
    assert_eq!(
        copy.scheduler().pending().await.expect("pending"),
        vec![job]
    );
    let mut records = 0;
    for table in Table::ALL {
        records += copy.count(table).await.expect("count");
    }
    assert_eq!(report.records, records);
    assert_eq!(
        copy.count(Table::Alerts).await.expect("count"),
        held,
        "one alert per batch held"
    );
}
