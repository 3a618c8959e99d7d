//! RedbStore/RedbScheduler behaviour beyond the shared suites: persistence across
//! reopen, claims released on open, schema version checks, sealed secrets at rest,
//! group commit isolation, corrupt and truncated files.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use signalcraft_core::scheduler::{Job, JobKind, Scheduler};
use signalcraft_core::store::{Scan, Store, StoreError, Table, WriteBatch};
use signalcraft_store::{RedbStore, SealKey, StoreOptions};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("ts")
}

fn job(id: &str, secs: i64) -> Job {
    Job {
        id: id.into(),
        due: t(secs),
        kind: JobKind::Escalate {
            incident_id: "inc-1".into(),
            level: 0,
            repeat: 0,
        },
        attempts: 0,
    }
}

fn put(table: Table, key: &str, value: &str) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put_raw(table, key, value.as_bytes().to_vec());
    b
}

#[tokio::test]
async fn records_and_jobs_survive_reopen_and_claims_are_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    {
        let s = RedbStore::open(&path).expect("open");
        s.commit(put(Table::Incidents, "inc-1", r#"{"state":"triggered"}"#))
            .await
            .expect("commit");
        let sched = s.scheduler();
        sched.schedule(job("past", 0)).await.expect("schedule");
        sched.schedule(job("running", 5)).await.expect("schedule");
        sched
            .schedule(job("future", 10_000))
            .await
            .expect("schedule");
        // "running" is claimed (and "past") and the process "crashes" before complete.
        let got = sched
            .claim_due(t(5), Duration::from_secs(3600), 10)
            .await
            .expect("claim");
        assert_eq!(got.len(), 2);
        sched.complete("past").await.expect("complete");
        assert_eq!(s.released_claims(), 0);
    }
    let s = RedbStore::open(&path).expect("reopen");
    assert_eq!(
        s.get(Table::Incidents, "inc-1")
            .await
            .expect("get")
            .as_deref(),
        Some(br#"{"state":"triggered"}"#.as_slice())
    );
    assert_eq!(
        s.released_claims(),
        1,
        "the claim of 'running' was released"
    );
    let sched = s.scheduler();
    let pending: Vec<String> = sched
        .pending()
        .await
        .expect("pending")
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(
        pending,
        ["running", "future"],
        "completed job gone, others kept"
    );
    assert_eq!(sched.next_due().await.expect("next_due"), Some(t(5)));
    // Right after restart (well within the old hour-long lease) the crashed job runs
    // again, late, with its attempt counted; the future one stays armed.
    let got = sched
        .claim_due(t(6), Duration::from_secs(30), 10)
        .await
        .expect("claim");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, "running");
    assert_eq!(got[0].attempts, 1);
    assert_eq!(sched.next_due().await.expect("next_due"), Some(t(36)));
}

#[tokio::test]
async fn newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    drop(RedbStore::open(&path).expect("create"));
    {
        // Stamp a future version, as a newer build would.
        let db = redb::Database::open(&path).expect("raw open");
        let txn = db.begin_write().expect("begin");
        {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("__schema");
            txn.open_table(def)
                .expect("table")
                .insert("version", 99)
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let e = RedbStore::open(&path).expect_err("too new");
    assert_eq!(
        e,
        StoreError::SchemaTooNew {
            found: 99,
            supported: signalcraft_store::SCHEMA_VERSION
        }
    );
    assert!(e.to_string().contains("newer than supported"), "{e}");
    // Still refused (nothing was rewritten by the failed open).
    assert!(matches!(
        RedbStore::open(&path),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[tokio::test]
async fn integration_secrets_are_sealed_at_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let key = SealKey::parse(&"5a".repeat(32)).expect("key");
    let opts = StoreOptions {
        encryption_key: Some(key.clone()),
        ..StoreOptions::default()
    };
    let secret = "xoxb-very-secret-token-0123456789";
    {
        let s = RedbStore::open_with(&path, opts.clone()).expect("open");
        let rec = format!(r#"{{"kind":"slack","name":"ops","secrets":{{"token":"{secret}"}}}}"#);
        s.commit(put(Table::Integrations, "slack-ops", &rec))
            .await
            .expect("commit");
        // Reads return the cleartext to the holder of the key.
        let back = s
            .get(Table::Integrations, "slack-ops")
            .await
            .expect("get")
            .expect("row");
        let v: serde_json::Value = serde_json::from_slice(&back).expect("json");
        assert_eq!(v["secrets"]["token"], secret);
        let rows = s
            .scan(Table::Integrations, Scan::all())
            .await
            .expect("scan");
        assert!(String::from_utf8_lossy(&rows[0].1).contains(secret));
        // The backup keeps it sealed.
        let mut out = Vec::new();
        s.export(&mut out).expect("export");
        let text = String::from_utf8(out).expect("utf8");
        assert!(!text.contains(secret), "backup holds no cleartext secret");
        assert!(text.contains("scv1:"));
    }
    let raw = std::fs::read(&path).expect("read file");
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is not in the file in clear"
    );
    assert!(
        raw.windows(5).any(|w| w == b"\"ops\""),
        "non-secret fields stay readable"
    );
    // Without the key: a clear error naming the record, not ciphertext.
    {
        let s = RedbStore::open(&path).expect("open without key");
        let e = s
            .get(Table::Integrations, "slack-ops")
            .await
            .expect_err("sealed");
        assert!(e.to_string().contains("integrations/slack-ops"), "{e}");
        assert!(e.to_string().contains("no encryption key"), "{e}");
    }
    // With the wrong key: an error too.
    let wrong = StoreOptions {
        encryption_key: Some(SealKey::from_bytes(&[1u8; 32]).expect("key")),
        ..StoreOptions::default()
    };
    let s = RedbStore::open_with(&path, wrong).expect("open");
    let e = s
        .get(Table::Integrations, "slack-ops")
        .await
        .expect_err("wrong key");
    assert!(e.to_string().contains("wrong encryption key"), "{e}");
}

/// Key rotation: reopen with the new key and the old one as a previous key; reads
/// work throughout; `reseal_secrets` moves every record to the new key in one
/// transaction; afterwards the new key alone reads everything and the old key
/// reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_reseals_every_secret_under_the_new_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let old = SealKey::from_bytes(&[0x11; 32]).expect("key");
    let new = SealKey::from_bytes(&[0x22; 32]).expect("key");
    let token = |i: usize| format!("tok-{i:03}-{}", "s".repeat(20));
    let record = |i: usize| {
        format!(
            r#"{{"kind":"slack","n":{i},"secrets":{{"token":"{}"}}}}"#,
            token(i)
        )
    };
    let read_all = |s: RedbStore| async move {
        let mut out = Vec::new();
        for i in 0..40 {
            let v = s.get(Table::Integrations, &format!("int-{i:03}")).await?;
            let v: serde_json::Value = serde_json::from_slice(&v.expect("row")).expect("json");
            out.push(v["secrets"]["token"].as_str().expect("token").to_owned());
        }
        Ok::<_, StoreError>(out)
    };
    let expected: Vec<String> = (0..40).map(token).collect();
    {
        // 30 records sealed under the old key, 10 written before any key existed.
        let s = RedbStore::open(&path).expect("open keyless");
        for i in 30..40 {
            s.commit(put(Table::Integrations, &format!("int-{i:03}"), &record(i)))
                .await
                .expect("commit");
        }
        drop(s);
        let opts = StoreOptions {
            encryption_key: Some(old.clone()),
            ..StoreOptions::default()
        };
        let s = RedbStore::open_with(&path, opts).expect("open old key");
        for i in 0..30 {
            s.commit(put(Table::Integrations, &format!("int-{i:03}"), &record(i)))
                .await
                .expect("commit");
        }
    }
    let rotating = StoreOptions {
        encryption_key: Some(new.clone()),
        previous_keys: vec![old.clone()],
        ..StoreOptions::default()
    };
    {
        let s = RedbStore::open_with(&path, rotating.clone()).expect("open rotating");
        // During the rotation both old- and new-key records read back.
        assert_eq!(read_all(s.clone()).await.expect("read"), expected);
        // A write during the rotation is sealed under the new key.
        s.commit(put(Table::Integrations, "int-000", &record(0)))
            .await
            .expect("commit");
        let report = s.reseal_secrets().await.expect("reseal");
        assert_eq!(report.from_previous, 29, "{report:?}");
        assert_eq!(report.from_clear, 10, "{report:?}");
        assert_eq!(report.unchanged, 1, "{report:?}");
        // Idempotent: a second run has nothing left to do.
        let again = s.reseal_secrets().await.expect("reseal again");
        assert_eq!(again.unchanged, 40, "{again:?}");
        assert_eq!(read_all(s).await.expect("read"), expected);
    }
    // After the rotation: the new key alone reads everything...
    let only_new = StoreOptions {
        encryption_key: Some(new.clone()),
        ..StoreOptions::default()
    };
    {
        let s = RedbStore::open_with(&path, only_new).expect("open new key");
        assert_eq!(read_all(s).await.expect("read"), expected);
    }
    // ...no secret is in the file in clear, and the old key opens nothing.
    let raw = std::fs::read(&path).expect("read file");
    assert!(!raw.windows(8).any(|w| w == b"tok-000-" || w == b"tok-035-"));
    let only_old = StoreOptions {
        encryption_key: Some(old),
        ..StoreOptions::default()
    };
    let s = RedbStore::open_with(&path, only_old).expect("open old key");
    for i in [0usize, 5, 35] {
        let e = s
            .get(Table::Integrations, &format!("int-{i:03}"))
            .await
            .expect_err("old key no longer opens");
        assert!(e.to_string().contains("wrong encryption key"), "{e}");
    }
}

/// A record no configured key opens fails the re-seal, which then rewrites nothing;
/// re-sealing without a current key is an option error.
#[tokio::test]
async fn reseal_is_all_or_nothing_and_needs_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let a = SealKey::from_bytes(&[0xA; 32]).expect("key");
    let b = SealKey::from_bytes(&[0xB; 32]).expect("key");
    let stranger = SealKey::from_bytes(&[0xC; 32]).expect("key");
    let rec = r#"{"secrets":"hunter2"}"#;
    for (k, key) in [("int-a", &a), ("int-z", &stranger)] {
        let opts = StoreOptions {
            encryption_key: Some(key.clone()),
            ..StoreOptions::default()
        };
        let s = RedbStore::open_with(&path, opts).expect("open");
        s.commit(put(Table::Integrations, k, rec))
            .await
            .expect("commit");
    }
    let opts = StoreOptions {
        encryption_key: Some(b.clone()),
        previous_keys: vec![a.clone()],
        ..StoreOptions::default()
    };
    {
        let s = RedbStore::open_with(&path, opts).expect("open");
        let e = s
            .reseal_secrets()
            .await
            .expect_err("int-z opens with no key");
        assert!(e.to_string().contains("integrations/int-z"), "{e}");
    }
    // int-a was not rewritten: key a alone still opens it.
    let opts = StoreOptions {
        encryption_key: Some(a),
        ..StoreOptions::default()
    };
    let s = RedbStore::open_with(&path, opts).expect("open");
    assert!(
        s.get(Table::Integrations, "int-a")
            .await
            .expect("get")
            .is_some()
    );
    drop(s);
    let s = RedbStore::open(&path).expect("open keyless");
    let e = s.reseal_secrets().await.expect_err("no key");
    assert!(e.to_string().contains("encryption_key"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_batches_and_isolates_a_bad_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions {
        max_value_bytes: 1024,
        ..StoreOptions::default()
    };
    let s = Arc::new(RedbStore::open_with(dir.path().join("s.redb"), opts).expect("open"));
    let before = s.writer_stats();
    let mut tasks = Vec::new();
    for w in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..20 {
                let mut b = WriteBatch::new();
                b.put_raw(Table::Alerts, format!("w{w}/{i}"), b"{}".to_vec());
                // Writer 7's 5th batch is too big: it alone must fail, whole.
                if w == 7 && i == 5 {
                    b.put_raw(Table::Alerts, "huge", vec![b'x'; 4096]);
                }
                results.push(s.commit(b).await);
            }
            results
        }));
    }
    for (w, task) in tasks.into_iter().enumerate() {
        for (i, r) in task.await.expect("task").into_iter().enumerate() {
            if w == 7 && i == 5 {
                let e = r.expect_err("oversized batch fails");
                assert!(e.to_string().contains("alerts/huge"), "{e}");
                assert!(e.to_string().contains("max_value_bytes"), "{e}");
            } else {
                r.expect("every other batch succeeds");
            }
        }
    }
    assert_eq!(s.count(Table::Alerts).await.expect("count"), 64 * 20 - 1);
    assert_eq!(
        s.get(Table::Alerts, "w7/5").await.expect("get"),
        None,
        "no half batch"
    );
    assert_eq!(s.get(Table::Alerts, "huge").await.expect("get"), None);
    let stats = s.writer_stats();
    let requests = stats.requests - before.requests;
    let txns = stats.transactions - before.transactions;
    assert_eq!(requests, 64 * 20 - 1);
    assert!(
        txns < requests,
        "concurrent commits share transactions: {txns} transactions for {requests} requests"
    );
}

#[tokio::test]
async fn garbage_file_is_a_corrupt_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0xA5u8; 64 * 1024]).expect("write");
    let e = RedbStore::open(&path).expect_err("garbage");
    assert!(
        matches!(e, StoreError::Corrupt(_) | StoreError::Io(_)),
        "unexpected error kind: {e:?}"
    );
    assert!(
        e.to_string().contains("garbage.redb"),
        "error names the file: {e}"
    );
}

#[tokio::test]
async fn truncated_file_fails_cleanly_or_recovers_to_a_committed_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.redb");
    {
        let s = RedbStore::open(&path).expect("open");
        for i in 0..200 {
            let v = format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(400));
            s.commit(put(Table::Alerts, &format!("a{i:04}"), &v))
                .await
                .expect("commit");
        }
    }
    let len = std::fs::metadata(&path).expect("meta").len();
    for cut in [len / 2, len / 4, 100, 0] {
        let p = dir.path().join(format!("cut{cut}.redb"));
        std::fs::copy(&path, &p).expect("copy");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .expect("open");
        f.set_len(cut).expect("truncate");
        drop(f);
        match RedbStore::open(&p) {
            Err(e) => {
                assert!(
                    matches!(e, StoreError::Corrupt(_) | StoreError::Io(_)),
                    "cut at {cut}: unexpected error {e:?}"
                );
                assert!(
                    e.to_string().contains(&format!("cut{cut}.redb")),
                    "cut at {cut}: the error names the file: {e}"
                );
            }
            Ok(s) => {
                // Opening may succeed only if the result is a consistent store:
                // every record readable and intact.
                let rows = s.scan(Table::Alerts, Scan::all()).await.expect("scan");
                for (k, v) in rows {
                    let v: serde_json::Value = serde_json::from_slice(&v).expect("intact json");
                    assert_eq!(k, format!("a{:04}", v["i"].as_u64().expect("i")));
                }
            }
        }
    }
}

/// A store whose file was damaged in place (bytes overwritten inside its pages, as
/// by a bad disk or a stray write). With the default `verify_on_open` the open
/// fails with a clear error naming the file (or succeeds when only unused space was
/// hit); without it, the open may succeed and then every read either returns
/// intact records or fails with a typed error. Nothing panics out of the store and
/// no damaged record is returned as data.
#[tokio::test]
async fn damaged_pages_are_errors_or_intact_records_never_garbage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.redb");
    {
        let s = RedbStore::open(&path).expect("open");
        for chunk in 0..10 {
            let mut b = WriteBatch::new();
            for i in chunk * 50..(chunk + 1) * 50 {
                let v = format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(300));
                b.put_raw(Table::Alerts, format!("a{i:04}"), v.clone().into_bytes());
                b.put_raw(Table::Incidents, format!("i{i:04}"), v.into_bytes());
            }
            s.commit(b).await.expect("commit");
        }
    }
    let len = std::fs::metadata(&path).expect("meta").len();
    for verify_on_open in [true, false] {
        let opts = StoreOptions {
            verify_on_open,
            ..StoreOptions::default()
        };
        let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
        // 16 KiB steps over the whole file, 64 bytes of 0x5A at each.
        for (n, offset) in (0..len).step_by(16 * 1024).enumerate() {
            let p = dir.path().join(format!("damaged{n}.redb"));
            std::fs::copy(&path, &p).expect("copy");
            {
                use std::io::{Seek, SeekFrom, Write};
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .expect("open");
                f.seek(SeekFrom::Start(offset + 512)).expect("seek");
                f.write_all(&[0x5A; 64]).expect("write");
            }
            let s = match RedbStore::open_with(&p, opts.clone()) {
                Err(e) => {
                    assert!(
                        matches!(e, StoreError::Corrupt(_) | StoreError::Io(_)),
                        "damage at {offset}: unexpected error {e:?}"
                    );
                    assert!(
                        e.to_string().contains(&format!("damaged{n}.redb")),
                        "names the file: {e}"
                    );
                    *outcomes.entry("open refused").or_default() += 1;
                    continue;
                }
                Ok(s) => s,
            };
            let mut failed = false;
            for (table, prefix) in [(Table::Alerts, "a"), (Table::Incidents, "i")] {
                match s.scan(table, Scan::all()).await {
                    Err(e) => {
                        assert!(
                            matches!(e, StoreError::Corrupt(_) | StoreError::Io(_)),
                            "damage at {offset}: {e:?}"
                        );
                        failed = true;
                    }
                    Ok(rows) => {
                        for (k, v) in rows {
                            let v: serde_json::Value = serde_json::from_slice(&v)
                                .unwrap_or_else(|e| panic!("damage at {offset}: {k} garbage: {e}"));
                            let i = v["i"].as_u64().expect("i");
                            assert_eq!(k, format!("{prefix}{i:04}"), "damage at {offset}");
                        }
                    }
                }
            }
            // Writes after the damage fail cleanly or succeed; the store answers.
            let w = s.commit(put(Table::Meta, "after", "1")).await;
            if let Err(e) = &w {
                assert!(
                    matches!(e, StoreError::Corrupt(_) | StoreError::Io(_)),
                    "damage at {offset}: write {e:?}"
                );
            }
            *outcomes
                .entry(if failed {
                    "reads failed"
                } else {
                    "reads intact"
                })
                .or_default() += 1;
        }
        eprintln!("verify_on_open {verify_on_open}: {outcomes:?}");
        assert!(outcomes.values().sum::<usize>() >= 8, "{outcomes:?}");
        if verify_on_open {
            assert!(!outcomes.contains_key("reads failed"), "{outcomes:?}");
            assert!(outcomes.contains_key("open refused"), "{outcomes:?}");
        }
    }
}

#[tokio::test]
async fn second_open_in_the_same_process_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let _s = RedbStore::open(&path).expect("open");
    let e = RedbStore::open(&path).expect_err("already open");
    assert!(matches!(e, StoreError::Locked(_)), "{e:?}");
}

#[tokio::test]
async fn compaction_shrinks_the_file_after_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path().join("c.redb")).expect("open");
    let mut b = WriteBatch::new();
    for i in 0..3000 {
        b.put_raw(Table::Alerts, format!("a{i:05}"), vec![b'7'; 900]);
    }
    s.commit(b).await.expect("commit");
    let mut d = WriteBatch::new();
    for i in 0..3000 {
        d.delete(Table::Alerts, format!("a{i:05}"));
    }
    s.commit(d).await.expect("delete");
    let big = s.file_size().expect("size");
    // A couple of empty commits let redb free the pages of older transactions.
    for _ in 0..3 {
        s.commit(put(Table::Meta, "tick", "1")).await.expect("tick");
    }
    let mut compacted = false;
    for _ in 0..5 {
        compacted |= s.compact().await.expect("compact");
    }
    let small = s.file_size().expect("size");
    assert!(compacted, "compaction ran");
    assert!(small < big / 2, "file shrank from {big} to {small}");
    assert_eq!(
        s.get(Table::Meta, "tick").await.expect("get").as_deref(),
        Some(b"1".as_slice())
    );
}
