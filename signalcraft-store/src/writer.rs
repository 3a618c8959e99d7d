//! Group commit: one writer thread owns every write transaction.
//!
//! Callers send a request (an operation and a oneshot reply) over a bounded
//! channel. The writer takes the first waiting request plus every request already
//! queued (up to `max_group`), applies them all in ONE redb write transaction with
//! `Durability::Immediate`, commits (fsync), and only then answers each caller. Under
//! load, many callers therefore share one fsync, so durable throughput grows with the
//! number of concurrent writers while each caller still returns only once its own
//! writes are durable.
//!
//! Gathering: callers answered by one transaction usually send their next request
//! right away. Committing only what is queued at that instant would split them into
//! two half groups that alternate, each caller waiting for two fsyncs. So, before
//! each transaction, the writer expects as many requests as were already waiting
//! plus the callers it just answered, and waits for them, as long as they keep
//! arriving (no gap over 150 µs) and at most `StoreOptions::group_wait` (1 ms by
//! default). A lone caller is never delayed (it is the one expected request).
//!
//! Failure isolation: batches are validated by the caller before they are queued. If
//! applying one request of a group still fails, the whole group transaction is
//! aborted (nothing was written) and the requests are re-run one transaction each, so
//! only the faulty request gets the error. If the commit itself fails (I/O), nothing
//! of the group is acknowledged and every caller gets the error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use redb::{Database, Durability, WriteTransaction};
use signalcraft_core::store::{StoreError, WriteOp};
use tokio::sync::{mpsc, oneshot};

use crate::error::from_redb;
use crate::scheduler::SchedOp;
use crate::snapshot::ReadCache;
use crate::tables;

/// A write the writer thread can apply inside a transaction.
#[derive(Debug)]
pub(crate) enum Op {
    /// A validated (and sealed) store batch.
    Write(Vec<WriteOp>),
    /// A scheduler operation.
    Sched(SchedOp),
    /// Re-seal every integration record under `keys[0]` (see [`crate::seal`]).
    Reseal(Vec<crate::seal::SealKey>),
}

/// The answer to an [`Op`].
#[derive(Debug)]
pub(crate) enum Reply {
    Unit,
    Bool(bool),
    Count(usize),
    Jobs(Vec<signalcraft_core::scheduler::Job>),
    Resealed(crate::seal::ResealReport),
}

type ReplyTx = oneshot::Sender<Result<Reply, StoreError>>;

/// Messages to the writer thread.
pub(crate) enum Msg {
    Req(Op, ReplyTx),
    /// Run `Database::compact` between transactions.
    Compact(oneshot::Sender<Result<bool, StoreError>>),
}

/// Counters of the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    transactions: AtomicU64,
    fallbacks: AtomicU64,
    apply_nanos: AtomicU64,
    commit_nanos: AtomicU64,
}

/// A snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Requests (commits and scheduler writes) answered.
    pub requests: u64,
    /// Write transactions committed or attempted (fsyncs, roughly).
    pub transactions: u64,
    /// Groups that had to be re-run one transaction per request.
    pub fallbacks: u64,
    /// Wall time the writer spent inside transactions before their commit
    /// (begin, applying the writes), in nanoseconds.
    pub apply_nanos: u64,
    /// Wall time the writer spent in `commit` (writing pages out and the fsync), in
    /// nanoseconds. Comparing it with [`WriterStats::apply_nanos`] shows whether the
    /// disk or the CPU bounds durable throughput.
    pub commit_nanos: u64,
}

/// The handle callers use to reach the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer thread over `db`.
    pub(crate) fn start(
        db: Arc<RwLock<Database>>,
        cache: Arc<ReadCache>,
        max_group: usize,
        group_wait: Duration,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(max_group.max(1) * 2);
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("signalcraft-store-writer".into())
            .spawn(move || {
                let limits = Limits {
                    max_group: max_group.max(1),
                    group_wait,
                    idle_gap: GATHER_IDLE_GAP,
                };
                run(db, cache, rx, limits, &c)
            })
            .map_err(|e| StoreError::Io(format!("cannot start writer thread: {e}")))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    /// The writer's counters so far.
    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            fallbacks: self.counters.fallbacks.load(Ordering::Relaxed),
            apply_nanos: self.counters.apply_nanos.load(Ordering::Relaxed),
            commit_nanos: self.counters.commit_nanos.load(Ordering::Relaxed),
        }
    }

    /// Queues `op` and waits until its transaction is durable.
    pub(crate) async fn submit(&self, op: Op) -> Result<Reply, StoreError> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(Msg::Req(op, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Asks the writer to compact the file.
    pub(crate) async fn compact(&self) -> Result<bool, StoreError> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(Msg::Compact(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once the queue is drained.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the writer forms groups.
#[derive(Clone, Copy)]
struct Limits {
    max_group: usize,
    group_wait: Duration,
    idle_gap: Duration,
}

/// How long the gather step waits for the next request before it commits what it
/// has (see [`gather`]).
const GATHER_IDLE_GAP: Duration = Duration::from_micros(150);

fn run(
    db: Arc<RwLock<Database>>,
    cache: Arc<ReadCache>,
    mut rx: mpsc::Receiver<Msg>,
    limits: Limits,
    c: &Counters,
) {
    // Requests that arrived while the previous transaction ran (taken before its
    // callers were answered), and how many callers that transaction answered.
    let mut carried: Vec<Msg> = Vec::new();
    let mut answered = 0usize;
    loop {
        let mut msgs = std::mem::take(&mut carried);
        // Callers just answered usually come straight back (a closed loop of
        // writers): expect them beside the requests that were already waiting.
        let expected = (msgs.len() + answered).min(limits.max_group);
        if msgs.is_empty() {
            match rx.blocking_recv() {
                Some(m) => msgs.push(m),
                None => return,
            }
        }
        let mut group = Vec::new();
        let mut compactions = Vec::new();
        let mut push = |m: Msg, group: &mut Vec<(Op, ReplyTx)>| match m {
            Msg::Req(op, reply) => group.push((op, reply)),
            Msg::Compact(reply) => compactions.push(reply),
        };
        for m in msgs {
            push(m, &mut group);
        }
        gather(&mut rx, &mut group, &mut push, expected, limits);
        answered = 0;
        if !group.is_empty() {
            c.requests.fetch_add(group.len() as u64, Ordering::Relaxed);
            let results = run_group(&db, &cache, group, c);
            // Take what arrived during the transaction BEFORE answering, so the
            // next group knows how many requests were already waiting.
            while carried.len() < limits.max_group {
                match rx.try_recv() {
                    Ok(m) => carried.push(m),
                    Err(_) => break,
                }
            }
            answered = results.len();
            for (tx, r) in results {
                let _ = tx.send(r);
            }
        }
        for reply in compactions {
            let result = compact(&db, &cache);
            let _ = reply.send(result);
        }
    }
}

/// Adds waiting requests to `group`: everything already queued, then, while the
/// group is smaller than `expected` (the callers the previous transaction answered
/// plus those already waiting), keeps collecting as long as requests keep coming
/// (no gap longer than `idle_gap`, [`GATHER_IDLE_GAP`]) and at most `group_wait` in all. One
/// fsync then serves every writer of a closed loop instead of alternating between
/// two half groups, each caller waiting for both fsyncs.
fn gather(
    rx: &mut mpsc::Receiver<Msg>,
    group: &mut Vec<(Op, ReplyTx)>,
    push: &mut impl FnMut(Msg, &mut Vec<(Op, ReplyTx)>),
    expected: usize,
    limits: Limits,
) {
    let mut started: Option<(Instant, Instant)> = None;
    while group.len() < limits.max_group {
        match rx.try_recv() {
            Ok(m) => {
                push(m, group);
                if let Some((_, last)) = started.as_mut() {
                    *last = Instant::now();
                }
                continue;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => return,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if group.len() >= expected || limits.group_wait.is_zero() {
            return;
        }
        let now = Instant::now();
        let (first, last) = *started.get_or_insert((now, now));
        if now - first >= limits.group_wait || now - last >= limits.idle_gap {
            return;
        }
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// Compacts the file. Two small commits first let redb release the pages that the
/// latest transactions freed (they are only reusable once no snapshot needs them).
fn compact(db: &RwLock<Database>, cache: &ReadCache) -> Result<bool, StoreError> {
    let mut guard = db.write();
    cache.invalidate(); // the shared snapshot would count as a read in progress
    for _ in 0..2 {
        let mut txn = guard.begin_write().map_err(from_redb)?;
        txn.set_durability(Durability::Immediate)
            .map_err(from_redb)?;
        // An empty transaction frees nothing: write a marker so the commit runs.
        txn.open_table(tables::SCHEMA)
            .map_err(from_redb)?
            .insert("last_compaction", 0)
            .map_err(from_redb)?;
        txn.commit().map_err(from_redb)?;
    }
    guard.compact().map_err(from_redb)
}

enum GroupFailure {
    /// Applying one op failed; the transaction was aborted, nothing written.
    Apply(StoreError),
    /// Beginning or committing failed; nothing of the group is acknowledged.
    Commit(StoreError),
}

/// Runs a group; returns each caller's reply channel with its result, in order
/// (the caller sends them, so it can look at the queue first).
fn run_group(
    db: &RwLock<Database>,
    cache: &ReadCache,
    group: Vec<(Op, ReplyTx)>,
    c: &Counters,
) -> Vec<(ReplyTx, Result<Reply, StoreError>)> {
    let ops: Vec<&Op> = group.iter().map(|(op, _)| op).collect();
    c.transactions.fetch_add(1, Ordering::Relaxed);
    let outcome = transact_guarded(db, cache, &ops, c);
    drop(ops);
    match outcome {
        Ok(replies) => group
            .into_iter()
            .zip(replies)
            .map(|((_, tx), r)| (tx, Ok(r)))
            .collect(),
        Err(GroupFailure::Apply(e)) if group.len() == 1 => group
            .into_iter()
            .map(|(_, tx)| (tx, Err(e.clone())))
            .collect(),
        Err(GroupFailure::Apply(_)) => {
            // Isolate the faulty request: one transaction per request.
            c.fallbacks.fetch_add(1, Ordering::Relaxed);
            group
                .into_iter()
                .map(|(op, tx)| {
                    c.transactions.fetch_add(1, Ordering::Relaxed);
                    let result = match transact_guarded(db, cache, &[&op], c) {
                        Ok(mut r) => Ok(r.pop().unwrap_or(Reply::Unit)),
                        Err(GroupFailure::Apply(e) | GroupFailure::Commit(e)) => Err(e),
                    };
                    (tx, result)
                })
                .collect()
        }
        Err(GroupFailure::Commit(e)) => group
            .into_iter()
            .map(|(_, tx)| (tx, Err(e.clone())))
            .collect(),
    }
}

/// [`transact`], with a panic of redb (a page damaged in place, see
/// [`crate::error::guard`]) failing the group with [`StoreError::Corrupt`] instead
/// of ending the writer thread.
fn transact_guarded(
    db: &RwLock<Database>,
    cache: &ReadCache,
    ops: &[&Op],
    c: &Counters,
) -> Result<Vec<Reply>, GroupFailure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| transact(db, cache, ops, c)))
        .unwrap_or_else(|p| {
            cache.invalidate();
            Err(GroupFailure::Commit(crate::error::damaged(
                "write",
                p.as_ref(),
            )))
        })
}

/// Runs `ops` in one durable transaction. The read cache is invalidated after the
/// commit (and before the caller answers anyone), so callers read their writes.
fn transact(
    db: &RwLock<Database>,
    cache: &ReadCache,
    ops: &[&Op],
    c: &Counters,
) -> Result<Vec<Reply>, GroupFailure> {
    let started = Instant::now();
    let mut txn = db
        .read()
        .begin_write()
        .map_err(|e| GroupFailure::Commit(from_redb(e)))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| GroupFailure::Commit(from_redb(e)))?;
    let mut replies = Vec::with_capacity(ops.len());
    let mut i = 0;
    while i < ops.len() {
        // A run of store batches is applied as one stream of writes, so a table
        // is opened once per run rather than once per batch.
        let run = ops[i..]
            .iter()
            .take_while(|op| matches!(op, Op::Write(_)))
            .count();
        let result = if run > 0 {
            let writes = ops[i..i + run].iter().flat_map(|op| match op {
                Op::Write(w) => w.as_slice(),
                Op::Sched(_) | Op::Reseal(_) => &[],
            });
            tables::apply_writes(&txn, writes).map(|()| {
                replies.extend((0..run).map(|_| Reply::Unit));
                run
            })
        } else {
            apply(&txn, ops[i]).map(|r| {
                replies.push(r);
                1
            })
        };
        match result {
            Ok(n) => i += n,
            Err(e) => {
                let _ = txn.abort();
                return Err(GroupFailure::Apply(e));
            }
        }
    }
    let applied = Instant::now();
    let committed = txn.commit();
    cache.invalidate();
    c.apply_nanos
        .fetch_add(nanos(applied - started), Ordering::Relaxed);
    c.commit_nanos
        .fetch_add(nanos(applied.elapsed()), Ordering::Relaxed);
    committed.map_err(|e| GroupFailure::Commit(from_redb(e)))?;
    Ok(replies)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn apply(txn: &WriteTransaction, op: &Op) -> Result<Reply, StoreError> {
    match op {
        Op::Write(ops) => {
            tables::apply_writes(txn, ops)?;
            Ok(Reply::Unit)
        }
        Op::Sched(s) => s.apply(txn),
        Op::Reseal(keys) => crate::seal::reseal_table(txn, keys).map(Reply::Resealed),
    }
}

#[cfg(test)]
mod tests {
    use signalcraft_core::store::Table;

    use super::*;

    fn msg() -> (Msg, oneshot::Receiver<Result<Reply, StoreError>>) {
        let (tx, rx) = oneshot::channel();
        (Msg::Req(Op::Write(Vec::new()), tx), rx)
    }

    fn gathered(
        rx: &mut mpsc::Receiver<Msg>,
        expected: usize,
        limits: Limits,
    ) -> (usize, Duration) {
        let mut group = Vec::new();
        let mut push = |m: Msg, g: &mut Vec<(Op, ReplyTx)>| {
            if let Msg::Req(op, tx) = m {
                g.push((op, tx));
            }
        };
        let t = Instant::now();
        gather(rx, &mut group, &mut push, expected, limits);
        (group.len(), t.elapsed())
    }

    /// The gather step waits for the expected requests, returns as soon as they are
    /// in, gives up after the idle gap, and never waits with `group_wait` zero.
    #[test]
    fn gather_waits_for_expected_requests_within_its_limits() {
        let limits = Limits {
            max_group: 64,
            group_wait: Duration::from_secs(10),
            idle_gap: Duration::from_secs(2),
        };
        let (tx, mut rx) = mpsc::channel(64);
        let mut keep = Vec::new();
        let (m, r) = msg();
        keep.push(r);
        tx.try_send(m).map_err(|_| "send").expect("send");
        // Three more arrive 5 ms later, from another thread.
        let sender = {
            let tx = tx.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                (0..3)
                    .map(|_| {
                        let (m, r) = msg();
                        tx.blocking_send(m).map_err(|_| "send").expect("send");
                        r
                    })
                    .collect::<Vec<_>>()
            })
        };
        let (n, took) = gathered(&mut rx, 4, limits);
        keep.extend(sender.join().expect("sender"));
        assert_eq!(n, 4);
        assert!(took >= Duration::from_millis(4), "{took:?}");
        assert!(
            took < Duration::from_secs(2),
            "returned once all 4 were in: {took:?}"
        );

        // Nobody else comes: it gives up after the idle gap.
        let limits = Limits {
            idle_gap: Duration::from_millis(20),
            ..limits
        };
        let (m, r) = msg();
        keep.push(r);
        tx.try_send(m).map_err(|_| "send").expect("send");
        let (n, took) = gathered(&mut rx, 4, limits);
        assert_eq!(n, 1);
        assert!(took >= Duration::from_millis(20), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");

        // group_wait zero, or the expected count already queued: no wait at all.
        for (limits, expected) in [
            (
                Limits {
                    group_wait: Duration::ZERO,
                    ..limits
                },
                4,
            ),
            (limits, 1),
        ] {
            let (m, r) = msg();
            keep.push(r);
            tx.try_send(m).map_err(|_| "send").expect("send");
            let (n, took) = gathered(&mut rx, expected, limits);
            assert_eq!(n, 1);
            assert!(took < Duration::from_millis(20), "{took:?}");
        }
    }

    /// A group in which one request fails while being applied: the group
    /// transaction is dropped and every other request still commits, alone.
    #[test]
    fn a_failing_request_does_not_poison_its_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("w.redb")).expect("create");
        let txn = db.begin_write().expect("begin");
        crate::tables::create_all(&txn).expect("tables");
        // A job record that cannot be decoded: cancelling it fails inside apply.
        txn.open_table(crate::tables::JOBS)
            .expect("jobs")
            .insert("bad", b"not json".as_slice())
            .expect("insert");
        txn.commit().expect("commit");
        let db = RwLock::new(db);
        let put = |k: &str| {
            Op::Write(vec![WriteOp::Put {
                table: Table::Alerts,
                key: k.into(),
                value: b"{}".to_vec(),
            }])
        };
        let mut group = Vec::new();
        let mut replies = Vec::new();
        for op in [put("a"), Op::Sched(SchedOp::Cancel("bad".into())), put("b")] {
            let (tx, rx) = oneshot::channel();
            group.push((op, tx));
            replies.push(rx);
        }
        let counters = Counters::default();
        for (tx, r) in run_group(&db, &ReadCache::default(), group, &counters) {
            let _ = tx.send(r);
        }
        let results: Vec<_> = replies
            .into_iter()
            .map(|mut rx| rx.try_recv().expect("answered"))
            .collect();
        assert!(matches!(results[0], Ok(Reply::Unit)), "{:?}", results[0]);
        assert!(
            matches!(&results[1], Err(StoreError::Corrupt(m)) if m.contains("scheduler job bad")),
            "{:?}",
            results[1]
        );
        assert!(matches!(results[2], Ok(Reply::Unit)), "{:?}", results[2]);
        assert_eq!(counters.fallbacks.load(Ordering::Relaxed), 1);
        assert_eq!(counters.transactions.load(Ordering::Relaxed), 4);
        let snap = ReadCache::default().get(&db).expect("snapshot");
        let alerts = snap.records(Table::Alerts).expect("alerts");
        assert!(alerts.get("a").expect("get").is_some());
        assert!(alerts.get("b").expect("get").is_some());
    }
}
