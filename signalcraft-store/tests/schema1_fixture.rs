//! Migration of a REAL schema 1 database: `fixtures/store/schema1.redb` was written by
//! the schema 1 build of this crate (commit ecb7628, see `fixtures/store/README.md`)
//! with records in every table, sealed integration secrets, and scheduler jobs (one
//! left claimed, as by a crash mid-run). `schema1.manifest.jsonl` is what that build
//! read back from it. Today's build must open a copy, migrate it to
//! [`SCHEMA_VERSION`], return every record and job exactly as the old build did, and
//! keep working (writes, jobs, reopen).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "support/raw_layout.rs"]
mod raw_layout;

use jiff::Timestamp;
use raw_layout::raw_layout;
use redb::TableDefinition;
use signalcraft_core::scheduler::{Job, Scheduler};
use signalcraft_core::store::{Scan, Store, StoreError, Table, WriteBatch};
use signalcraft_store::{RedbStore, SCHEMA_VERSION, SealKey, StoreOptions};

/// The test key the fixture's integration secrets are sealed under (README.md).
const KEY_HEX: &str = "4f1c2a7e9b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
/// The job the generator left claimed (a crash mid-run).
const RUNNING: &str = "running/notify/inc-000002/ann/0";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/store")
        .join(name)
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("ts")
}

fn options() -> StoreOptions {
    StoreOptions {
        encryption_key: Some(SealKey::parse(KEY_HEX).expect("key")),
        ..StoreOptions::default()
    }
}

/// The old build's view: records per table (key order) and pending jobs (with
/// whether each was claimed).
struct Manifest {
    records: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    jobs: Vec<(Job, bool)>,
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixture("schema1.manifest.jsonl")).expect("manifest");
    let mut m = Manifest {
        records: BTreeMap::new(),
        jobs: Vec::new(),
    };
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("manifest line");
        if let Some(job) = v.get("job") {
            let job: Job = serde_json::from_value(job.clone()).expect("job");
            m.jobs.push((job, v["claimed"].as_bool().expect("claimed")));
        } else {
            let table = v["table"].as_str().expect("table").to_owned();
            let key = v["key"].as_str().expect("key").to_owned();
            let value = v["value"].as_str().expect("value").as_bytes().to_vec();
            m.records.entry(table).or_default().push((key, value));
        }
    }
    m
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn pending(s: &RedbStore) -> Vec<Job> {
    s.scheduler().pending().await.expect("pending")
}

#[tokio::test]
async fn a_schema_1_database_migrates_with_every_record_and_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    std::fs::copy(fixture("schema1.redb"), &path).expect("copy fixture");
    let m = manifest();

    // The fixture really is a schema 1 file: version 1, alerts in one plain table.
    let (names, version) = raw_layout(&path);
    assert_eq!(version, 1, "fixture schema version");
    assert!(names.iter().any(|n| n == "alerts"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("alerts.")), "{names:?}");

    let s = RedbStore::open_with(&path, options()).expect("open migrates");
    assert_eq!(s.released_claims(), 1, "the job claimed at the crash");

    // Every table answers exactly what the schema 1 build answered.
    for table in Table::ALL {
        let want = m.records.get(table.name()).cloned().unwrap_or_default();
        let got = s.scan(table, Scan::all()).await.expect("scan");
        assert_eq!(got.len(), want.len(), "{} record count", table.name());
        for ((gk, gv), (wk, wv)) in got.iter().zip(&want) {
            assert_eq!(gk, wk, "{} key order", table.name());
            assert_eq!(
                String::from_utf8_lossy(gv),
                String::from_utf8_lossy(wv),
                "{}/{gk}",
                table.name()
            );
        }
        assert_eq!(s.count(table).await.expect("count"), want.len() as u64);
        for (k, v) in &want {
            assert_eq!(
                s.get(table, k).await.expect("get").as_deref(),
                Some(v.as_slice()),
                "get {}/{k}",
                table.name()
            );
        }
    }
    // Independent of the manifest: what the generator wrote.
    assert_eq!(s.count(Table::Alerts).await.expect("count"), 119);
    let alerts = s.scan(Table::Alerts, Scan::all()).await.expect("scan");
    let resolved = alerts
        .iter()
        .filter(|(_, v)| contains(v, br#""status":"resolved""#))
        .count();
    assert_eq!(resolved, 1, "the one updated alert");
    assert_eq!(s.count(Table::Incidents).await.expect("count"), 6);
    assert_eq!(s.count(Table::Timeline).await.expect("count"), 24);
    let slack = s
        .get(Table::Integrations, "slack-ops")
        .await
        .expect("get")
        .expect("slack-ops");
    let slack: serde_json::Value = serde_json::from_slice(&slack).expect("json");
    assert_eq!(
        slack["secrets"]["bot_token"],
        "xoxb-fixture-0123456789-secret"
    );
    assert_eq!(
        s.get(Table::Meta, "incident_counter")
            .await
            .expect("get")
            .as_deref(),
        Some(b"6".as_slice())
    );

    // Jobs: the same pending jobs; the one claimed at the crash is released with its
    // attempt counted, so it runs again.
    let want_jobs: Vec<Job> = m
        .jobs
        .iter()
        .map(|(j, claimed)| Job {
            attempts: j.attempts + u32::from(*claimed),
            ..j.clone()
        })
        .collect();
    assert_eq!(m.jobs.len(), 5, "{:?}", m.jobs);
    assert_eq!(pending(&s).await, want_jobs);

    // After migration: writes (new, update, delete) and the scheduler work.
    let (first, _) = alerts[0].clone();
    let (second, _) = alerts[1].clone();
    let mut b = WriteBatch::new();
    b.put_raw(
        Table::Alerts,
        "ffffffffffffffff",
        br#"{"status":"firing"}"#.to_vec(),
    )
    .put_raw(
        Table::Alerts,
        &first,
        br#"{"status":"resolved","n":2}"#.to_vec(),
    )
    .delete(Table::Alerts, &second)
    .put_raw(
        Table::Integrations,
        "slack-new",
        br#"{"kind":"slack","secrets":{"bot_token":"xoxb-after-migration"}}"#.to_vec(),
    );
    s.commit(b).await.expect("commit after migration");
    let sched = s.scheduler();
    // Every job due in the past runs (late), the released one included; the two
    // future ones stay armed.
    let due = sched
        .claim_due(t(1_000), Duration::from_secs(60), 10)
        .await
        .expect("claim");
    let ids: Vec<&str> = due.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        ids,
        ["escalate/inc-000001/0/0", "flush/svc-0", RUNNING],
        "due order"
    );
    assert_eq!(due[2].attempts, 1);
    for j in &due {
        sched.complete(&j.id).await.expect("complete");
    }
    let left: Vec<String> = pending(&s).await.into_iter().map(|j| j.id).collect();
    assert_eq!(left, ["escalate/inc-000004/1/0", "handoff/sch-primary"]);
    assert!(s.check_integrity().await.expect("integrity"));
    drop((sched, s));

    // On disk: this build's version, the indexed alerts layout, no plain table, and
    // no secret in clear.
    let (names, version) = raw_layout(&path);
    assert_eq!(version, u64::from(SCHEMA_VERSION));
    assert!(!names.iter().any(|n| n == "alerts"), "{names:?}");
    for n in ["alerts.records", "alerts.index"] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }
    let bytes = std::fs::read(&path).expect("read file");
    for secret in [
        &b"xoxb-fixture-0123456789-secret"[..],
        b"fixture-signing-secret",
        b"xoxb-after-migration",
    ] {
        assert!(
            !contains(&bytes, secret),
            "{} in clear",
            String::from_utf8_lossy(secret)
        );
    }

    // Reopening runs no migration again and keeps everything.
    let s = RedbStore::open_with(&path, options()).expect("reopen");
    assert_eq!(s.released_claims(), 0);
    assert_eq!(s.count(Table::Alerts).await.expect("count"), 119);
    assert_eq!(
        s.get(Table::Alerts, &first).await.expect("get").as_deref(),
        Some(br#"{"status":"resolved","n":2}"#.as_slice())
    );
    assert_eq!(s.get(Table::Alerts, &second).await.expect("get"), None);
    assert!(
        s.get(Table::Alerts, "ffffffffffffffff")
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(pending(&s).await.len(), 2);
    drop(s);

    // Without the key, the sealed secrets are not readable: a clear error naming
    // the record, not the ciphertext.
    let s = RedbStore::open(&path).expect("open without a key");
    let e = s
        .get(Table::Integrations, "slack-ops")
        .await
        .expect_err("sealed");
    assert!(matches!(e, StoreError::Codec(_)), "{e:?}");
    assert!(e.to_string().contains("slack-ops"), "{e}");
}

/// The migration is all-or-nothing: when it cannot complete (here the new layout's
/// index already holds an entry) the open fails with a clear error and the file is
/// left at schema 1, as it was. (A newer schema than this build's is refused by
/// `behaviour.rs::newer_schema_is_refused_and_left_untouched`.)
#[tokio::test]
async fn a_migration_that_cannot_complete_leaves_the_schema_1_file_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    std::fs::copy(fixture("schema1.redb"), &path).expect("copy fixture");
    {
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("begin");
        let index: TableDefinition<&str, u64> = TableDefinition::new("alerts.index");
        txn.open_table(index)
            .expect("index")
            .insert("stray", 0)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let before = raw_layout(&path);
    let e = RedbStore::open_with(&path, options()).expect_err("refused");
    assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
    assert!(e.to_string().contains("alerts.index"), "{e}");
    assert_eq!(raw_layout(&path), before, "nothing was migrated");
}
