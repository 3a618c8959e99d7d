//! [`RedbScheduler`]: the durable [`Scheduler`], in the same redb file as the store.
//!
//! Jobs live in `__jobs` (id → JSON record of the job and its lease) and are ordered
//! by `__job_queue` keyed `(effective time, id)`: the due time of an unclaimed job,
//! the lease expiry of a claimed one. `claim_due` walks the queue from the start up to
//! `now`, so a lease that expired makes its job claimable again (with `attempts + 1`).
//! Every mutation goes through the group-commit writer, so an acknowledged
//! `schedule` is durable. Opening the store releases every claim (counting the
//! interrupted run as an attempt): after a restart every past-due job runs, late, and
//! every future job stays armed.

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use serde::{Deserialize, Serialize};
use signalcraft_core::scheduler::{Job, Scheduler};
use signalcraft_core::store::StoreError;

use crate::RedbStore;
use crate::error::from_redb;
use crate::tables::{JOB_QUEUE, JOBS, prefix_end};
use crate::writer::{Op, Reply};

/// A job and its lease, as stored in `__jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub job: Job,
    #[serde(default)]
    pub claimed_until: Option<Timestamp>,
}

impl JobRecord {
    fn effective(&self) -> Timestamp {
        self.claimed_until.unwrap_or(self.job.due)
    }
}

/// A scheduler mutation, applied by the writer thread inside a transaction.
#[derive(Debug)]
pub(crate) enum SchedOp {
    Schedule(Job),
    Cancel(String),
    CancelPrefix(String),
    Claim {
        now: Timestamp,
        lease: Duration,
        limit: usize,
    },
    Complete(String),
    /// Restore jobs from a backup (ids must not exist yet).
    Import(Vec<Job>),
}

type Jobs<'t> = Table<'t, &'static str, &'static [u8]>;
type Queue<'t> = Table<'t, (i128, &'static str), ()>;

fn ns(t: Timestamp) -> i128 {
    t.as_nanosecond()
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

pub(crate) fn decode(id: &str, bytes: &[u8]) -> Result<JobRecord, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("scheduler job {id}: {e}")))
}

fn encode(rec: &JobRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(rec).map_err(|e| StoreError::Codec(e.to_string()))
}

fn load(jobs: &Jobs<'_>, id: &str) -> Result<Option<JobRecord>, StoreError> {
    match jobs.get(id).map_err(from_redb)? {
        Some(v) => decode(id, v.value()).map(Some),
        None => Ok(None),
    }
}

fn remove(jobs: &mut Jobs<'_>, queue: &mut Queue<'_>, id: &str) -> Result<bool, StoreError> {
    let Some(rec) = load(jobs, id)? else {
        return Ok(false);
    };
    queue.remove((ns(rec.effective()), id)).map_err(from_redb)?;
    jobs.remove(id).map_err(from_redb)?;
    Ok(true)
}

fn put(jobs: &mut Jobs<'_>, queue: &mut Queue<'_>, rec: &JobRecord) -> Result<(), StoreError> {
    let id = rec.job.id.as_str();
    jobs.insert(id, encode(rec)?.as_slice())
        .map_err(from_redb)?;
    queue
        .insert((ns(rec.effective()), id), ())
        .map_err(from_redb)?;
    Ok(())
}

impl SchedOp {
    pub(crate) fn apply(&self, txn: &WriteTransaction) -> Result<Reply, StoreError> {
        let mut jobs = txn.open_table(JOBS).map_err(from_redb)?;
        let mut queue = txn.open_table(JOB_QUEUE).map_err(from_redb)?;
        match self {
            SchedOp::Schedule(job) => {
                remove(&mut jobs, &mut queue, &job.id)?;
                let rec = JobRecord {
                    job: job.clone(),
                    claimed_until: None,
                };
                put(&mut jobs, &mut queue, &rec)?;
                Ok(Reply::Unit)
            }
            SchedOp::Cancel(id) | SchedOp::Complete(id) => {
                let existed = remove(&mut jobs, &mut queue, id)?;
                Ok(Reply::Bool(existed))
            }
            SchedOp::CancelPrefix(prefix) => {
                let end = prefix_end(prefix);
                let ids: Vec<String> = {
                    let range = match &end {
                        Some(e) => jobs.range::<&str>(prefix.as_str()..e.as_str()),
                        None => jobs.range::<&str>(prefix.as_str()..),
                    }
                    .map_err(from_redb)?;
                    let mut ids = Vec::new();
                    for e in range {
                        ids.push(e.map_err(from_redb)?.0.value().to_owned());
                    }
                    ids
                };
                for id in &ids {
                    remove(&mut jobs, &mut queue, id)?;
                }
                Ok(Reply::Count(ids.len()))
            }
            SchedOp::Claim { now, lease, limit } => {
                let due: Vec<(i128, String)> = {
                    let mut due = Vec::new();
                    for e in queue.iter().map_err(from_redb)? {
                        if due.len() >= *limit {
                            break;
                        }
                        let (k, _) = e.map_err(from_redb)?;
                        let (t, id) = k.value();
                        if t > ns(*now) {
                            break;
                        }
                        due.push((t, id.to_owned()));
                    }
                    due
                };
                let until = add(*now, *lease);
                let mut out = Vec::with_capacity(due.len());
                for (t, id) in due {
                    queue.remove((t, id.as_str())).map_err(from_redb)?;
                    let Some(mut rec) = load(&jobs, &id)? else {
                        continue; // a stray queue entry: dropped
                    };
                    if rec.claimed_until.is_some() {
                        rec.job.attempts = rec.job.attempts.saturating_add(1);
                    }
                    rec.claimed_until = Some(until);
                    put(&mut jobs, &mut queue, &rec)?;
                    out.push(rec.job);
                }
                Ok(Reply::Jobs(out))
            }
            SchedOp::Import(list) => {
                for job in list {
                    remove(&mut jobs, &mut queue, &job.id)?;
                    let rec = JobRecord {
                        job: job.clone(),
                        claimed_until: None,
                    };
                    put(&mut jobs, &mut queue, &rec)?;
                }
                Ok(Reply::Count(list.len()))
            }
        }
    }
}

/// Releases every claim (run on open): the interrupted run counts as an attempt and
/// the job becomes claimable at its due time again. Returns how many were released.
pub(crate) fn release_all(txn: &WriteTransaction) -> Result<usize, StoreError> {
    let mut jobs = txn.open_table(JOBS).map_err(from_redb)?;
    let mut queue = txn.open_table(JOB_QUEUE).map_err(from_redb)?;
    let claimed: Vec<JobRecord> = {
        let mut v = Vec::new();
        for e in jobs.iter().map_err(from_redb)? {
            let (k, val) = e.map_err(from_redb)?;
            let rec = decode(k.value(), val.value())?;
            if rec.claimed_until.is_some() {
                v.push(rec);
            }
        }
        v
    };
    for mut rec in claimed.iter().cloned() {
        remove(&mut jobs, &mut queue, &rec.job.id)?;
        rec.job.attempts = rec.job.attempts.saturating_add(1);
        rec.claimed_until = None;
        put(&mut jobs, &mut queue, &rec)?;
    }
    Ok(claimed.len())
}

/// The durable [`Scheduler`] of a [`RedbStore`]; get one with
/// [`RedbStore::scheduler`]. Cloning shares the same database.
#[derive(Debug, Clone)]
pub struct RedbScheduler {
    store: RedbStore,
}

impl RedbScheduler {
    pub(crate) fn new(store: RedbStore) -> Self {
        RedbScheduler { store }
    }

    async fn submit(&self, op: SchedOp) -> Result<Reply, StoreError> {
        self.store.inner.writer.submit(Op::Sched(op)).await
    }

    /// Number of pending jobs (claimed or not).
    pub fn len(&self) -> Result<u64, StoreError> {
        let r = self.store.snapshot()?;
        let t = r.txn().open_table(JOBS).map_err(from_redb)?;
        t.len().map_err(from_redb)
    }

    /// `true` when no job is pending.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

fn unexpected(r: Reply) -> StoreError {
    StoreError::Io(format!("internal: unexpected writer reply {r:?}"))
}

#[async_trait]
impl Scheduler for RedbScheduler {
    async fn schedule(&self, job: Job) -> Result<(), StoreError> {
        match self.submit(SchedOp::Schedule(job)).await? {
            Reply::Unit => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    async fn cancel(&self, id: &str) -> Result<bool, StoreError> {
        match self.submit(SchedOp::Cancel(id.to_owned())).await? {
            Reply::Bool(b) => Ok(b),
            r => Err(unexpected(r)),
        }
    }

    async fn cancel_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        match self
            .submit(SchedOp::CancelPrefix(prefix.to_owned()))
            .await?
        {
            Reply::Count(n) => Ok(n),
            r => Err(unexpected(r)),
        }
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match self.submit(SchedOp::Claim { now, lease, limit }).await? {
            Reply::Jobs(j) => Ok(j),
            r => Err(unexpected(r)),
        }
    }

    async fn complete(&self, id: &str) -> Result<(), StoreError> {
        match self.submit(SchedOp::Complete(id.to_owned())).await? {
            Reply::Bool(_) => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let r = self.store.snapshot()?;
        let q = r.txn().open_table(JOB_QUEUE).map_err(from_redb)?;
        let first = q.first().map_err(from_redb)?;
        match first {
            Some((k, _)) => {
                let (t, _) = k.value();
                Timestamp::from_nanosecond(t)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(format!("scheduler queue time {t}: {e}")))
            }
            None => Ok(None),
        }
    }

    async fn pending(&self) -> Result<Vec<Job>, StoreError> {
        let r = self.store.snapshot()?;
        let t = r.txn().open_table(JOBS).map_err(from_redb)?;
        let mut out = Vec::new();
        for e in t.iter().map_err(from_redb)? {
            let (k, v) = e.map_err(from_redb)?;
            out.push(decode(k.value(), v.value())?.job);
        }
        out.sort_by(|a, b| (a.due, &a.id).cmp(&(b.due, &b.id)));
        Ok(out)
    }
}
