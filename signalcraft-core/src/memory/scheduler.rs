use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use parking_lot::Mutex;

use crate::scheduler::{Job, Scheduler};
use crate::store::StoreError;

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<String, (Job, Option<Timestamp>)>,
    /// (due, id) of unclaimed-or-lease-expired candidates; claimed jobs stay here keyed
    /// by their lease expiry instead of their due time.
    queue: BTreeSet<(Timestamp, String)>,
}

/// A [`Scheduler`] kept in process memory.
#[derive(Debug, Default)]
pub struct MemoryScheduler {
    inner: Mutex<Inner>,
}

impl MemoryScheduler {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self::default()
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

#[async_trait]
impl Scheduler for MemoryScheduler {
    async fn schedule(&self, job: Job) -> Result<(), StoreError> {
        let mut g = self.inner.lock();
        if let Some((old, claim)) = g.jobs.remove(&job.id) {
            let at = claim.unwrap_or(old.due);
            g.queue.remove(&(at, old.id));
        }
        g.queue.insert((job.due, job.id.clone()));
        g.jobs.insert(job.id.clone(), (job, None));
        Ok(())
    }

    async fn cancel(&self, id: &str) -> Result<bool, StoreError> {
        let mut g = self.inner.lock();
        match g.jobs.remove(id) {
            Some((job, claim)) => {
                let at = claim.unwrap_or(job.due);
                g.queue.remove(&(at, job.id));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn cancel_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let ids: Vec<String> = {
            let g = self.inner.lock();
            g.jobs
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect()
        };
        let mut n = 0;
        for id in ids {
            if self.cancel(&id).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let mut g = self.inner.lock();
        let due: Vec<(Timestamp, String)> = g
            .queue
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .cloned()
            .collect();
        let until = add(now, lease);
        let mut out = Vec::with_capacity(due.len());
        for key in due {
            g.queue.remove(&key);
            if let Some((job, claim)) = g.jobs.get_mut(&key.1) {
                if claim.is_some() {
                    job.attempts += 1;
                }
                *claim = Some(until);
                out.push(job.clone());
            }
            g.queue.insert((until, key.1));
        }
        Ok(out)
    }

    async fn complete(&self, id: &str) -> Result<(), StoreError> {
        self.cancel(id).await.map(|_| ())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.inner.lock().queue.iter().next().map(|(t, _)| *t))
    }

    async fn pending(&self) -> Result<Vec<Job>, StoreError> {
        let g = self.inner.lock();
        let mut jobs: Vec<Job> = g.jobs.values().map(|(j, _)| j.clone()).collect();
        jobs.sort_by(|a, b| (a.due, &a.id).cmp(&(b.due, &b.id)));
        Ok(jobs)
    }
}
