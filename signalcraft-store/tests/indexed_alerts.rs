//! The indexed alerts layout (schema 2): migration from a schema 1 file written in
//! the old layout, and the same answers as the in-memory store for any sequence of
//! puts, deletes, reopens and scans.

#[path = "support/raw_layout.rs"]
mod raw_layout;

use raw_layout::raw_layout;
use redb::TableDefinition;
use signalcraft_core::memory::MemoryStore;
use signalcraft_core::store::{Scan, Store, StoreError, Table, WriteBatch};
use signalcraft_store::{RedbStore, SCHEMA_VERSION};

/// Deterministic pseudo-random numbers (splitmix64), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn alert(key: &str, n: u64) -> Vec<u8> {
    format!(r#"{{"fingerprint":"{key}","status":"firing","n":{n}}}"#).into_bytes()
}

/// Writes a database exactly as a schema 1 build laid it out: every table a
/// `&str → &[u8]` table named after it (alerts included), the scheduler tables, and
/// `__schema` version 1.
fn write_schema_1_file(path: &std::path::Path, alerts: &[(String, Vec<u8>)]) {
    let db = redb::Database::create(path).expect("create");
    let txn = db.begin_write().expect("begin");
    for t in Table::ALL {
        let def: TableDefinition<&str, &[u8]> = TableDefinition::new(t.name());
        txn.open_table(def).expect("table");
    }
    let jobs: TableDefinition<&str, &[u8]> = TableDefinition::new("__jobs");
    txn.open_table(jobs).expect("jobs");
    let queue: TableDefinition<(i128, &str), ()> = TableDefinition::new("__job_queue");
    txn.open_table(queue).expect("queue");
    let schema: TableDefinition<&str, u64> = TableDefinition::new("__schema");
    txn.open_table(schema)
        .expect("schema")
        .insert("version", 1)
        .expect("version");
    {
        let def: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts");
        let mut t = txn.open_table(def).expect("alerts");
        for (k, v) in alerts {
            t.insert(k.as_str(), v.as_slice()).expect("insert");
        }
        let def: TableDefinition<&str, &[u8]> = TableDefinition::new("incidents");
        txn.open_table(def)
            .expect("incidents")
            .insert("inc-1", br#"{"state":"open"}"#.as_slice())
            .expect("insert");
    }
    txn.commit().expect("commit");
}

#[tokio::test]
async fn schema_1_alerts_migrate_to_the_indexed_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v1.redb");
    let mut rng = Rng(7);
    let mut alerts: Vec<(String, Vec<u8>)> = (0..3_000)
        .map(|i| {
            let k = format!("{:016x}", rng.next());
            let v = alert(&k, i);
            (k, v)
        })
        .collect();
    write_schema_1_file(&path, &alerts);
    alerts.sort();

    let s = RedbStore::open(&path).expect("open migrates");
    assert_eq!(s.count(Table::Alerts).await.expect("count"), 3_000);
    assert_eq!(
        s.scan(Table::Alerts, Scan::all()).await.expect("scan"),
        alerts
    );
    for (k, v) in alerts.iter().step_by(97) {
        assert_eq!(
            s.get(Table::Alerts, k).await.expect("get").as_ref(),
            Some(v)
        );
    }
    let page = s
        .scan(
            Table::Alerts,
            Scan {
                prefix: "a".into(),
                after: Some("a8".into()),
                limit: 5,
                reverse: true,
            },
        )
        .await
        .expect("scan");
    let want: Vec<_> = alerts
        .iter()
        .rev()
        .filter(|(k, _)| k.starts_with('a') && k.as_str() < "a8")
        .take(5)
        .cloned()
        .collect();
    assert_eq!(page, want);
    assert_eq!(
        s.get(Table::Incidents, "inc-1").await.expect("get"),
        Some(br#"{"state":"open"}"#.to_vec()),
        "other tables are untouched"
    );
    // New and updated alerts after the migration.
    let mut b = WriteBatch::new();
    b.put_raw(Table::Alerts, "new-fp", alert("new-fp", 1))
        .put_raw(Table::Alerts, alerts[0].0.clone(), alert("updated", 2))
        .delete(Table::Alerts, alerts[1].0.clone());
    s.commit(b).await.expect("commit");
    drop(s);

    let (names, version) = raw_layout(&path);
    assert_eq!(version, u64::from(SCHEMA_VERSION));
    assert_eq!(SCHEMA_VERSION, 2);
    assert!(!names.iter().any(|n| n == "alerts"), "{names:?}");
    assert!(names.iter().any(|n| n == "alerts.index"), "{names:?}");
    assert!(names.iter().any(|n| n == "alerts.records"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "alerts.index.recent"),
        "{names:?}"
    );

    // Reopening runs no migration again and keeps every write.
    let s = RedbStore::open(&path).expect("reopen");
    assert_eq!(s.count(Table::Alerts).await.expect("count"), 3_000);
    assert_eq!(
        s.get(Table::Alerts, &alerts[0].0).await.expect("get"),
        Some(alert("updated", 2))
    );
    assert_eq!(s.get(Table::Alerts, &alerts[1].0).await.expect("get"), None);
    assert_eq!(
        s.get(Table::Alerts, "new-fp").await.expect("get"),
        Some(alert("new-fp", 1))
    );
}

#[tokio::test]
async fn a_schema_1_file_without_alerts_migrates_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.redb");
    write_schema_1_file(&path, &[]);
    let s = RedbStore::open(&path).expect("open migrates");
    assert_eq!(s.count(Table::Alerts).await.expect("count"), 0);
    s.commit({
        let mut b = WriteBatch::new();
        b.put_raw(Table::Alerts, "fp", alert("fp", 0));
        b
    })
    .await
    .expect("commit");
    drop(s);

    // A schema 1 file that already holds the new tables is not one a schema 1
    // build wrote: refused, and left as it was.
    let path = dir.path().join("odd.redb");
    write_schema_1_file(&path, &[("fp".into(), alert("fp", 0))]);
    {
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("begin");
        let def: TableDefinition<&str, u64> = TableDefinition::new("alerts.index");
        txn.open_table(def)
            .expect("index")
            .insert("x", 0)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let e = RedbStore::open(&path).expect_err("refused");
    assert!(
        matches!(&e, StoreError::Corrupt(m) if m.contains("already holds alerts.index")),
        "{e}"
    );
    assert_eq!(raw_layout(&path).1, 1, "still schema 1");
}

/// A key from a small pool, so puts hit existing keys and deletes find them; the pool
/// mixes fingerprints with keys that share prefixes.
fn pool_key(rng: &mut Rng) -> String {
    // More keys than the recent index holds before a merge, so merges happen.
    let i = rng.below(1_200);
    match i % 4 {
        0 => format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        1 => format!("a/{i:03}"),
        2 => format!("a{i}"),
        _ => format!("b/{}/{i}", i % 3),
    }
}

fn random_scan(rng: &mut Rng) -> Scan {
    let prefixes = ["", "a", "a/", "a/1", "b/", "b/2/", "0", "f", "zz"];
    Scan {
        prefix: prefixes[rng.below(prefixes.len() as u64) as usize].into(),
        after: match rng.below(3) {
            0 => None,
            _ => Some(pool_key(rng)),
        },
        limit: rng.below(12) as usize,
        reverse: rng.below(2) == 0,
    }
}

#[tokio::test]
async fn indexed_alerts_answer_like_the_memory_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.redb");
    let mut redb = RedbStore::open(&path).expect("open");
    let memory = MemoryStore::new();
    let mut rng = Rng(42);
    for round in 0..400u64 {
        let mut b = WriteBatch::new();
        for _ in 0..=rng.below(30) {
            let key = pool_key(&mut rng);
            if rng.below(4) == 0 {
                b.delete(Table::Alerts, key);
            } else {
                // Sizes from empty to several pages, so records span overflow pages.
                let len = [0, 40, 600, 9_000][rng.below(4) as usize];
                let mut v = alert(&key, round);
                v.resize(v.len() + len, b' ');
                b.put_raw(Table::Alerts, key, v);
            }
        }
        redb.commit(b.clone()).await.expect("redb commit");
        memory.commit(b).await.expect("memory commit");
        if round % 97 == 96 {
            // Reopening recomputes the next sequence number from the file.
            drop(redb);
            redb = RedbStore::open(&path).expect("reopen");
        }
        assert_eq!(
            redb.count(Table::Alerts).await.expect("count"),
            memory.count(Table::Alerts).await.expect("count"),
            "round {round}"
        );
        for _ in 0..5 {
            let key = pool_key(&mut rng);
            assert_eq!(
                redb.get(Table::Alerts, &key).await.expect("get"),
                memory.get(Table::Alerts, &key).await.expect("get"),
                "round {round} key {key}"
            );
        }
        for _ in 0..3 {
            let scan = random_scan(&mut rng);
            assert_eq!(
                redb.scan(Table::Alerts, scan.clone()).await.expect("scan"),
                memory
                    .scan(Table::Alerts, scan.clone())
                    .await
                    .expect("scan"),
                "round {round} {scan:?}"
            );
        }
    }
    assert_eq!(
        redb.scan(Table::Alerts, Scan::all()).await.expect("scan"),
        memory.scan(Table::Alerts, Scan::all()).await.expect("scan")
    );
    assert!(redb.count(Table::Alerts).await.expect("count") > 300);
}
