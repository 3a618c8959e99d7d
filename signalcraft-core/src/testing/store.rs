//! The [`Store`] conformance suite. Every implementation runs it:
//!
//! ```ignore
//! signalcraft_core::testing::store::run_store_suite(|| async { MyStore::new() }).await;
//! ```
//!
//! The factory must return a fresh, empty store each time. Each case panics with a
//! message naming the contract it checks.

use std::future::Future;
use std::sync::Arc;

use crate::store::{Scan, Store, StoreError, StoreExt, Table, WriteBatch};

/// Runs every case, each on a fresh store from `factory`.
pub async fn run_store_suite<F, Fut, S>(mut factory: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
    S: Store,
{
    get_put_delete(&factory().await).await;
    batch_ops_apply_in_order(&factory().await).await;
    tables_are_independent(&factory().await).await;
    scan_prefix(&factory().await).await;
    scan_after_and_limit(&factory().await).await;
    scan_reverse(&factory().await).await;
    keys_order_bytewise(&factory().await).await;
    count_tracks_puts_and_deletes(&factory().await).await;
    typed_helpers_roundtrip(&factory().await).await;
    batches_are_atomic_to_readers(Arc::new(factory().await)).await;
    concurrent_commits_all_land(Arc::new(factory().await)).await;
    expect_preconditions_guard_the_batch(&factory().await).await;
    failed_precondition_fails_its_batch_alone(Arc::new(factory().await)).await;
}

fn put(table: Table, pairs: &[(&str, &str)]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (k, v) in pairs {
        b.put_raw(table, *k, v.as_bytes().to_vec());
    }
    b
}

fn keys(rows: &[(String, Vec<u8>)]) -> Vec<&str> {
    rows.iter().map(|(k, _)| k.as_str()).collect()
}

/// get of a missing key is `None`; put then get returns the bytes; put replaces;
/// delete removes; deleting a missing key is not an error; an empty batch is fine.
pub async fn get_put_delete<S: Store + ?Sized>(s: &S) {
    assert_eq!(
        s.get(Table::Alerts, "a").await.expect("get"),
        None,
        "missing key"
    );
    s.commit(put(Table::Alerts, &[("a", r#"{"v":1}"#)]))
        .await
        .expect("commit");
    assert_eq!(
        s.get(Table::Alerts, "a").await.expect("get").as_deref(),
        Some(br#"{"v":1}"#.as_slice()),
        "read-your-writes"
    );
    s.commit(put(Table::Alerts, &[("a", r#"{"v":2}"#)]))
        .await
        .expect("commit");
    assert_eq!(
        s.get(Table::Alerts, "a").await.expect("get").as_deref(),
        Some(br#"{"v":2}"#.as_slice()),
        "put replaces"
    );
    let mut d = WriteBatch::new();
    d.delete(Table::Alerts, "a")
        .delete(Table::Alerts, "never-existed");
    s.commit(d).await.expect("delete commit");
    assert_eq!(
        s.get(Table::Alerts, "a").await.expect("get"),
        None,
        "deleted"
    );
    s.commit(WriteBatch::new()).await.expect("empty batch");
    // The empty key and non-ASCII keys are ordinary keys.
    s.commit(put(Table::Alerts, &[("", "{}"), ("zé/ü", "{}")]))
        .await
        .expect("odd keys");
    assert!(
        s.get(Table::Alerts, "").await.expect("get").is_some(),
        "empty key"
    );
    assert!(
        s.get(Table::Alerts, "zé/ü").await.expect("get").is_some(),
        "utf-8 key"
    );
}

/// Ops of one batch apply in order: put-then-delete leaves nothing,
/// delete-then-put leaves the put.
pub async fn batch_ops_apply_in_order<S: Store + ?Sized>(s: &S) {
    let mut b = WriteBatch::new();
    b.put_raw(Table::Incidents, "x", b"1".to_vec())
        .delete(Table::Incidents, "x")
        .delete(Table::Incidents, "y")
        .put_raw(Table::Incidents, "y", b"2".to_vec())
        .put_raw(Table::Incidents, "z", b"3".to_vec())
        .put_raw(Table::Incidents, "z", b"4".to_vec());
    s.commit(b).await.expect("commit");
    assert_eq!(
        s.get(Table::Incidents, "x").await.expect("get"),
        None,
        "put then delete"
    );
    assert_eq!(
        s.get(Table::Incidents, "y").await.expect("get").as_deref(),
        Some(b"2".as_slice()),
        "delete then put"
    );
    assert_eq!(
        s.get(Table::Incidents, "z").await.expect("get").as_deref(),
        Some(b"4".as_slice()),
        "last put wins"
    );
}

/// The same key in two tables holds two records; every table is usable.
pub async fn tables_are_independent<S: Store + ?Sized>(s: &S) {
    let mut b = WriteBatch::new();
    for t in Table::ALL {
        b.put_raw(t, "k", format!("\"{}\"", t.name()).into_bytes());
    }
    s.commit(b).await.expect("commit");
    for t in Table::ALL {
        assert_eq!(
            s.get(t, "k").await.expect("get"),
            Some(format!("\"{}\"", t.name()).into_bytes()),
            "table {} holds its own record",
            t.name()
        );
        assert_eq!(s.count(t).await.expect("count"), 1, "count of {}", t.name());
    }
    let mut d = WriteBatch::new();
    d.delete(Table::Users, "k");
    s.commit(d).await.expect("commit");
    assert_eq!(s.get(Table::Users, "k").await.expect("get"), None);
    assert!(
        s.get(Table::Teams, "k").await.expect("get").is_some(),
        "other table untouched"
    );
}

/// `Scan::prefix` returns exactly the keys with the prefix, in order.
pub async fn scan_prefix<S: Store + ?Sized>(s: &S) {
    s.commit(put(
        Table::Timeline,
        &[
            ("inc-1/0002", "2"),
            ("inc-1/0001", "1"),
            ("inc-10/0001", "x"),
            ("inc-1", "bare"),
            ("inc-0/0009", "y"),
            ("inc-2/0001", "z"),
        ],
    ))
    .await
    .expect("commit");
    let rows = s
        .scan(Table::Timeline, Scan::prefix("inc-1/"))
        .await
        .expect("scan");
    assert_eq!(keys(&rows), ["inc-1/0001", "inc-1/0002"], "prefix scan");
    assert_eq!(rows[0].1, b"1".to_vec(), "values come with keys");
    let rows = s
        .scan(Table::Timeline, Scan::prefix("inc-1"))
        .await
        .expect("scan");
    assert_eq!(
        keys(&rows),
        ["inc-1", "inc-1/0001", "inc-1/0002", "inc-10/0001"],
        "prefix includes the key equal to it"
    );
    let rows = s.scan(Table::Timeline, Scan::all()).await.expect("scan");
    assert_eq!(rows.len(), 6, "empty prefix is everything");
    let rows = s
        .scan(Table::Timeline, Scan::prefix("nope/"))
        .await
        .expect("scan");
    assert!(rows.is_empty(), "no match");
    let rows = s.scan(Table::Alerts, Scan::all()).await.expect("scan");
    assert!(rows.is_empty(), "other tables empty");
}

/// `after` is an exclusive cursor and `limit` caps the page; paging through with
/// them visits every key once.
pub async fn scan_after_and_limit<S: Store + ?Sized>(s: &S) {
    let mut b = WriteBatch::new();
    for i in 0..25 {
        b.put_raw(Table::Audit, format!("p/{i:03}"), b"{}".to_vec());
    }
    b.put_raw(Table::Audit, "o/999", b"{}".to_vec());
    b.put_raw(Table::Audit, "q/000", b"{}".to_vec());
    s.commit(b).await.expect("commit");
    let page = s
        .scan(
            Table::Audit,
            Scan {
                prefix: "p/".into(),
                after: Some("p/004".into()),
                limit: 3,
                reverse: false,
            },
        )
        .await
        .expect("scan");
    assert_eq!(
        keys(&page),
        ["p/005", "p/006", "p/007"],
        "after is exclusive"
    );
    // A cursor that is not itself a key still works.
    let page = s
        .scan(
            Table::Audit,
            Scan {
                prefix: "p/".into(),
                after: Some("p/0045".into()),
                limit: 1,
                reverse: false,
            },
        )
        .await
        .expect("scan");
    assert_eq!(keys(&page), ["p/005"], "cursor between keys");
    // A cursor before the prefix range is ignored; one after it yields nothing.
    let page = s
        .scan(
            Table::Audit,
            Scan {
                prefix: "p/".into(),
                after: Some("a".into()),
                limit: 2,
                reverse: false,
            },
        )
        .await
        .expect("scan");
    assert_eq!(keys(&page), ["p/000", "p/001"], "cursor before range");
    let page = s
        .scan(
            Table::Audit,
            Scan {
                prefix: "p/".into(),
                after: Some("z".into()),
                limit: 0,
                reverse: false,
            },
        )
        .await
        .expect("scan");
    assert!(page.is_empty(), "cursor past range");
    // Paging visits all 25 exactly once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .scan(
                Table::Audit,
                Scan {
                    prefix: "p/".into(),
                    after: after.clone(),
                    limit: 7,
                    reverse: false,
                },
            )
            .await
            .expect("scan");
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        seen.extend(page.into_iter().map(|(k, _)| k));
    }
    let want: Vec<String> = (0..25).map(|i| format!("p/{i:03}")).collect();
    assert_eq!(seen, want, "paging");
}

/// `reverse` returns the largest keys first; `after` then means "before" in key
/// order (the cursor of the previous reversed page); `limit` takes the newest.
pub async fn scan_reverse<S: Store + ?Sized>(s: &S) {
    let mut b = WriteBatch::new();
    for i in 0..10 {
        b.put_raw(Table::Changes, format!("t/{i:02}"), b"{}".to_vec());
    }
    b.put_raw(Table::Changes, "u/00", b"{}".to_vec());
    b.put_raw(Table::Changes, "s/99", b"{}".to_vec());
    s.commit(b).await.expect("commit");
    let rows = s
        .scan(
            Table::Changes,
            Scan {
                prefix: "t/".into(),
                after: None,
                limit: 3,
                reverse: true,
            },
        )
        .await
        .expect("scan");
    assert_eq!(
        keys(&rows),
        ["t/09", "t/08", "t/07"],
        "newest first, limited"
    );
    let rows = s
        .scan(
            Table::Changes,
            Scan {
                prefix: "t/".into(),
                after: Some("t/07".into()),
                limit: 2,
                reverse: true,
            },
        )
        .await
        .expect("scan");
    assert_eq!(keys(&rows), ["t/06", "t/05"], "reverse cursor is exclusive");
    let rows = s
        .scan(
            Table::Changes,
            Scan {
                prefix: "t/".into(),
                after: Some("t/02".into()),
                limit: 0,
                reverse: true,
            },
        )
        .await
        .expect("scan");
    assert_eq!(keys(&rows), ["t/01", "t/00"], "reverse to the start");
    let rows = s
        .scan(
            Table::Changes,
            Scan {
                prefix: String::new(),
                after: None,
                limit: 0,
                reverse: true,
            },
        )
        .await
        .expect("scan");
    assert_eq!(rows.len(), 12, "reverse everything");
    assert_eq!(rows[0].0, "u/00");
    assert_eq!(rows[11].0, "s/99");
}

/// Keys are ordered bytewise (UTF-8), not by locale or length.
pub async fn keys_order_bytewise<S: Store + ?Sized>(s: &S) {
    s.commit(put(
        Table::Services,
        &[
            ("b", "1"),
            ("B", "1"),
            ("a", "1"),
            ("ä", "1"),
            ("aa", "1"),
            ("a~", "1"),
            ("10", "1"),
            ("9", "1"),
        ],
    ))
    .await
    .expect("commit");
    let rows = s.scan(Table::Services, Scan::all()).await.expect("scan");
    assert_eq!(
        keys(&rows),
        ["10", "9", "B", "a", "aa", "a~", "b", "ä"],
        "bytewise order"
    );
}

/// `count` follows puts (new keys only), replacements and deletes.
pub async fn count_tracks_puts_and_deletes<S: Store + ?Sized>(s: &S) {
    assert_eq!(s.count(Table::Silences).await.expect("count"), 0);
    s.commit(put(Table::Silences, &[("a", "1"), ("b", "1"), ("c", "1")]))
        .await
        .expect("commit");
    s.commit(put(Table::Silences, &[("a", "2")]))
        .await
        .expect("commit");
    assert_eq!(
        s.count(Table::Silences).await.expect("count"),
        3,
        "replace keeps count"
    );
    let mut d = WriteBatch::new();
    d.delete(Table::Silences, "b").delete(Table::Silences, "zz");
    s.commit(d).await.expect("commit");
    assert_eq!(s.count(Table::Silences).await.expect("count"), 2, "delete");
    assert_eq!(
        s.count(Table::Policies).await.expect("count"),
        0,
        "other table"
    );
}

/// `WriteBatch::put` / `StoreExt::get_json` / `scan_json` round-trip typed records.
pub async fn typed_helpers_roundtrip<S: Store + ?Sized>(s: &S) {
    let rec = serde_json::json!({"id": "u1", "name": "Ada", "tags": ["sre"]});
    let mut b = WriteBatch::new();
    b.put(Table::Users, "u1", &rec).expect("encode");
    s.commit(b).await.expect("commit");
    let back: Option<serde_json::Value> = s.get_json(Table::Users, "u1").await.expect("get_json");
    assert_eq!(back, Some(rec.clone()));
    let rows: Vec<(String, serde_json::Value)> = s
        .scan_json(Table::Users, Scan::all())
        .await
        .expect("scan_json");
    assert_eq!(rows, vec![("u1".to_string(), rec)]);
    // A record that is not valid for the requested type is a Codec error, not a panic.
    s.commit(put(Table::Users, &[("bad", "not json")]))
        .await
        .expect("commit");
    let e = s
        .get_json::<serde_json::Value>(Table::Users, "bad")
        .await
        .expect_err("codec error");
    assert!(matches!(e, crate::store::StoreError::Codec(_)), "{e}");
}

/// A concurrent reader never sees half a batch: each batch puts `x/i` and `y/i`
/// together, and every scan sees both or neither.
pub async fn batches_are_atomic_to_readers<S: Store>(s: Arc<S>) {
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let mut b = WriteBatch::new();
                b.put_raw(Table::Groups, format!("x/{i:04}"), b"{}".to_vec())
                    .put_raw(Table::Groups, format!("y/{i:04}"), b"{}".to_vec());
                if i > 0 {
                    // Also move a marker, so each batch has a delete too.
                    b.delete(Table::Groups, format!("m/{:04}", i - 1));
                }
                b.put_raw(Table::Groups, format!("m/{i:04}"), b"{}".to_vec());
                s.commit(b).await.expect("commit");
            }
        })
    };
    let mut checks = 0;
    loop {
        let done = writer.is_finished();
        let rows = s.scan(Table::Groups, Scan::all()).await.expect("scan");
        let xs = rows.iter().filter(|(k, _)| k.starts_with("x/")).count();
        let ys = rows.iter().filter(|(k, _)| k.starts_with("y/")).count();
        let ms = rows.iter().filter(|(k, _)| k.starts_with("m/")).count();
        assert_eq!(xs, ys, "a reader saw half a batch");
        assert!(
            ms == usize::from(xs > 0),
            "marker moved atomically: {ms} markers, {xs} batches"
        );
        checks += 1;
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    writer.await.expect("writer task");
    assert!(checks > 0);
    assert_eq!(s.count(Table::Groups).await.expect("count"), 401);
}

/// Many concurrent committers (as under group commit) each get `Ok` and every
/// acknowledged record is readable afterwards.
pub async fn concurrent_commits_all_land<S: Store>(s: Arc<S>) {
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let mut b = WriteBatch::new();
                b.put_raw(
                    Table::Alerts,
                    format!("w{w:02}/{i:03}"),
                    format!("{{\"w\":{w},\"i\":{i}}}").into_bytes(),
                );
                s.commit(b).await.expect("concurrent commit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(s.count(Table::Alerts).await.expect("count"), 16 * 25);
    for w in 0..16 {
        let rows = s
            .scan(Table::Alerts, Scan::prefix(format!("w{w:02}/")))
            .await
            .expect("scan");
        assert_eq!(rows.len(), 25, "writer {w}");
        for (i, (_, v)) in rows.iter().enumerate() {
            assert_eq!(
                v,
                &format!("{{\"w\":{w},\"i\":{i}}}").into_bytes(),
                "record content"
            );
        }
    }
}

/// [`WriteOp::Expect`](crate::store::WriteOp::Expect) and
/// [`WriteBatch::delete_if_unchanged`], on a plain table and on [`Table::Alerts`]: a
/// delete applies while the record holds the bytes read; once it changed (or went)
/// the whole batch fails with [`StoreError::Conflict`] and writes nothing; `None`
/// expects the key absent; a precondition sees the batch's earlier ops.
pub async fn expect_preconditions_guard_the_batch<S: Store + ?Sized>(s: &S) {
    for table in [Table::Groups, Table::Alerts] {
        s.commit(put(table, &[("a", r#"{"v":1}"#), ("b", r#"{"v":1}"#)]))
            .await
            .expect("seed");
        // Unchanged: the delete and the rest of the batch apply.
        let mut b = WriteBatch::new();
        b.delete_if_unchanged(table, "a", br#"{"v":1}"#.to_vec())
            .put_raw(table, "side-1", b"{}".to_vec());
        s.commit(b)
            .await
            .expect("unchanged record: the batch applies");
        assert_eq!(s.get(table, "a").await.expect("get"), None, "deleted");
        assert!(s.get(table, "side-1").await.expect("get").is_some());
        // Changed since read: nothing of the batch is written.
        s.commit(put(table, &[("b", r#"{"v":2}"#)]))
            .await
            .expect("rewrite");
        let mut b = WriteBatch::new();
        b.put_raw(table, "side-2", b"{}".to_vec())
            .delete_if_unchanged(table, "b", br#"{"v":1}"#.to_vec());
        match s.commit(b).await {
            Err(StoreError::Conflict(m)) => assert!(m.contains("b"), "names the key: {m}"),
            other => panic!(
                "{}: changed record must fail the batch, got {other:?}",
                table.name()
            ),
        }
        assert_eq!(
            s.get(table, "b").await.expect("get").as_deref(),
            Some(br#"{"v":2}"#.as_slice()),
            "the changed record stays"
        );
        assert_eq!(
            s.get(table, "side-2").await.expect("get"),
            None,
            "a failed precondition writes nothing of its batch, even ops before it"
        );
        // Gone since read: also a conflict.
        let mut b = WriteBatch::new();
        b.delete_if_unchanged(table, "a", br#"{"v":1}"#.to_vec());
        assert!(
            matches!(s.commit(b).await, Err(StoreError::Conflict(_))),
            "a record gone since read fails the precondition"
        );
        // `None`: the key must be absent (an insert-if-absent).
        let mut b = WriteBatch::new();
        b.expect(table, "new", None)
            .put_raw(table, "new", b"1".to_vec());
        s.commit(b).await.expect("absent key");
        let mut b = WriteBatch::new();
        b.expect(table, "new", None)
            .put_raw(table, "new", b"2".to_vec());
        assert!(matches!(s.commit(b).await, Err(StoreError::Conflict(_))));
        assert_eq!(
            s.get(table, "new").await.expect("get").as_deref(),
            Some(b"1".as_slice())
        );
        // The batch's own earlier ops count.
        let mut b = WriteBatch::new();
        b.put_raw(table, "x", b"7".to_vec())
            .delete_if_unchanged(table, "x", b"7".to_vec())
            .expect(table, "x", None);
        s.commit(b)
            .await
            .expect("a precondition sees the batch's earlier ops");
        assert_eq!(s.get(table, "x").await.expect("get"), None);
    }
}

/// A batch whose precondition fails among many concurrent batches (one group commit
/// under a grouping store) fails alone: every other batch lands.
pub async fn failed_precondition_fails_its_batch_alone<S: Store>(s: Arc<S>) {
    s.commit(put(Table::Groups, &[("k", "2")]))
        .await
        .expect("seed");
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let mut b = WriteBatch::new();
                b.put_raw(Table::Groups, format!("w{w}/{i:02}"), b"{}".to_vec());
                s.commit(b).await.expect("an unconditional batch lands");
            }
        }));
    }
    let mut conflicts = 0;
    for _ in 0..10 {
        let mut b = WriteBatch::new();
        b.put_raw(Table::Groups, "loser", b"{}".to_vec())
            .delete_if_unchanged(Table::Groups, "k", b"1".to_vec());
        if matches!(s.commit(b).await, Err(StoreError::Conflict(_))) {
            conflicts += 1;
        }
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(conflicts, 10, "every conditional batch failed");
    assert_eq!(s.get(Table::Groups, "loser").await.expect("get"), None);
    assert_eq!(
        s.get(Table::Groups, "k").await.expect("get").as_deref(),
        Some(b"2".as_slice())
    );
    assert_eq!(s.count(Table::Groups).await.expect("count"), 1 + 8 * 10);
}
