//! [`CountingScheduler`]: the server's scheduler with an in-memory index of pending
//! job ids, so the `queue_depth` metric is a counter read instead of a scan of the
//! durable job table on every scrape.
//!
//! The index is loaded once at start ([`CountingScheduler::wrap`]) and kept in step
//! with every call that adds or removes jobs (`schedule`, `cancel`, `cancel_prefix`,
//! `complete`); `claim_due` only leases jobs, which stay pending. It counts what this
//! process does: jobs another process adds to a shared store are not seen until the
//! next start (the reference server owns its store alone). Two concurrent calls on
//! the same id (a job re-armed while it is being completed) can leave the index one
//! off until the next start; the metric is a gauge, not an accounting record.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use parking_lot::Mutex;
use signalcraft_core::scheduler::{Job, Scheduler};
use signalcraft_core::store::StoreError;

/// A [`Scheduler`] that forwards every call and tracks the pending job ids.
pub struct CountingScheduler {
    inner: Arc<dyn Scheduler>,
    pending: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for CountingScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingScheduler")
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

impl CountingScheduler {
    /// Wraps `inner`, loading its pending jobs once.
    pub async fn wrap(inner: Arc<dyn Scheduler>) -> Result<Arc<Self>, StoreError> {
        let ids = inner.pending().await?.into_iter().map(|j| j.id).collect();
        Ok(Arc::new(CountingScheduler {
            inner,
            pending: Mutex::new(ids),
        }))
    }

    /// Pending jobs (claimed or not), without touching the store.
    pub fn depth(&self) -> u64 {
        self.pending.lock().len() as u64
    }
}

#[async_trait]
impl Scheduler for CountingScheduler {
    async fn schedule(&self, job: Job) -> Result<(), StoreError> {
        let id = job.id.clone();
        self.inner.schedule(job).await?;
        self.pending.lock().insert(id);
        Ok(())
    }

    async fn cancel(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self.inner.cancel(id).await?;
        self.pending.lock().remove(id);
        Ok(existed)
    }

    async fn cancel_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let n = self.inner.cancel_prefix(prefix).await?;
        self.pending.lock().retain(|id| !id.starts_with(prefix));
        Ok(n)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.inner.claim_due(now, lease, limit).await
    }

    async fn complete(&self, id: &str) -> Result<(), StoreError> {
        self.inner.complete(id).await?;
        self.pending.lock().remove(id);
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_due().await
    }

    async fn pending(&self) -> Result<Vec<Job>, StoreError> {
        self.inner.pending().await
    }
}

#[cfg(test)]
mod tests {
    use signalcraft_core::memory::MemoryScheduler;
    use signalcraft_core::scheduler::JobKind;

    use super::*;

    fn job(id: &str, secs: i64) -> Job {
        Job {
            id: id.into(),
            due: Timestamp::from_second(1_800_000_000 + secs).unwrap(),
            kind: JobKind::Custom {
                name: "t".into(),
                payload: serde_json::Value::Null,
            },
            attempts: 0,
        }
    }

    /// After every operation the count equals what the wrapped scheduler holds.
    #[tokio::test]
    async fn depth_tracks_the_wrapped_scheduler() {
        let inner = Arc::new(MemoryScheduler::new());
        inner.schedule(job("pre/1", 0)).await.unwrap();
        let s = CountingScheduler::wrap(inner.clone()).await.unwrap();
        let check = |s: &Arc<CountingScheduler>| {
            let s = s.clone();
            let inner = inner.clone();
            async move {
                assert_eq!(
                    s.depth(),
                    inner.pending().await.unwrap().len() as u64,
                    "{s:?}"
                );
            }
        };
        check(&s).await;
        assert_eq!(s.depth(), 1, "loaded at start");
        for (id, t) in [("page/a/1", 5), ("page/a/2", 10), ("page/b/1", 1), ("x", 2)] {
            s.schedule(job(id, t)).await.unwrap();
            check(&s).await;
        }
        // Re-arming an id does not add a job.
        s.schedule(job("x", 3)).await.unwrap();
        check(&s).await;
        assert_eq!(s.depth(), 5);
        assert!(s.cancel("x").await.unwrap());
        assert!(!s.cancel("x").await.unwrap());
        check(&s).await;
        assert_eq!(s.cancel_prefix("page/a/").await.unwrap(), 2);
        check(&s).await;
        // Claimed jobs stay pending until completed.
        let claimed = s
            .claim_due(
                Timestamp::from_second(1_800_000_100).unwrap(),
                Duration::from_secs(60),
                10,
            )
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        check(&s).await;
        for j in claimed {
            s.complete(&j.id).await.unwrap();
            check(&s).await;
        }
        assert_eq!(s.depth(), 0);
    }
}
