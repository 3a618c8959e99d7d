//! The shared watchdog: **one** durable job guards every attempt in flight,
//! instead of one job armed before and cancelled after each attempt.
//!
//! # What it protects against
//!
//! An attempt is "in flight" from the commit that writes its `sending` record to
//! the commit that writes its outcome. A process that dies in between leaves the
//! notification with no job to resume it (a re-`notify` of the same id answers
//! `AlreadyAccepted`), so something durable must bring it back.
//!
//! # How
//!
//! * The log keeps a marker `~sending/{id}` (start time) that is written in the
//!   same atomic batch as the `sending` record and deleted in the batch that
//!   records the outcome ([`NotificationLog::in_flight`](super::log::NotificationLog::in_flight)).
//!   So a marker exists **exactly** while an attempt may be in flight.
//! * [`Watchdog::enter`] runs *before* that first commit. When no watchdog job is
//!   armed by this process it schedules one (`delivery-watchdog/…`, due one
//!   watchdog period later) and waits for the scheduler to acknowledge it; only then
//!   may the attempt start. While other attempts are in flight the job is already
//!   armed and `enter` is one atomic increment — the common case under load.
//! * [`Guard::finish`] runs after the outcome commit. The job is cancelled only when
//!   the last attempt in flight has finished and no marker may be left behind
//!   (no attempt of this process was abandoned and the last sweep left nothing).
//! * When the job comes due (every attempt is bounded by the attempt timeout, so
//!   this only happens after a crash, an abandoned future or continuous load) the
//!   pipeline *sweeps*: every marker older than one watchdog period whose
//!   notification is not being delivered by this process is resumed exactly like
//!   the per-attempt watchdog job of earlier versions resumed it (a new attempt;
//!   the interrupted one stays `sending` in the log). If any marker is left, or an
//!   attempt is still in flight, a new job is armed.
//!
//! # Why it is crash-safe
//!
//! Invariant: *whenever a marker exists, a watchdog job that has not completed
//! exists in the scheduler, due at most one period after it was armed.*
//! * A marker is only written after `enter` returned, i.e. after a job was
//!   acknowledged by the scheduler (a durable scheduler never loses an
//!   acknowledged job) and while `active > 0`, which keeps it from being cancelled.
//! * A job is cancelled only by `finish` when `active == 0` and nothing was
//!   abandoned, i.e. every attempt this process started has committed its outcome,
//!   which deleted its marker. The `armed` flag is cleared *before* `active` is
//!   re-read and `enter` increments `active` *before* reading `armed`
//!   (sequentially consistent atomics), so an attempt that starts during a cancel
//!   either sees the job still armed and is counted by the cancel, or re-arms it.
//! * A sweep that finds markers it must leave (too young, or more than it reads
//!   at once) re-arms before the engine completes the job that ran it; a crash
//!   before that completion makes the scheduler hand the same job out again.
//! * After a crash the previous process's job fires in the new one (its id is not
//!   this process's, which is harmless: every sweep reads every marker).
//!
//! Cost: under load no scheduler call at all per attempt (the bench keeps 64 in
//! flight); a lone attempt pays the same arm + cancel as before.
//!
//! Limits: a crashed attempt is resumed between one and two watchdog periods
//! after it started (the old per-attempt job: after exactly one). As before, with a
//! scheduler that is not durable (`MemoryScheduler`) nothing survives a restart.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};

use jiff::Timestamp;

use crate::error::CoreError;
use crate::scheduler::{Job, JobKind, Scheduler};

/// Id prefix of watchdog jobs. Notification jobs start with `delivery/`, so the
/// two never collide.
pub const JOB_PREFIX: &str = "delivery-watchdog/";

/// Whether `job` is a watchdog job.
pub fn is_watchdog_job(job: &Job) -> bool {
    job.id.starts_with(JOB_PREFIX)
}

/// This process's side of the watchdog (see the module doc).
pub(crate) struct Watchdog {
    /// Serializes arming and cancelling; holds the id of this process's armed job.
    job: tokio::sync::Mutex<Option<String>>,
    /// Attempts between `enter` and `finish`.
    active: AtomicUsize,
    /// Whether this process's job is armed.
    armed: AtomicBool,
    /// A marker may exist that no running attempt of this process will clear.
    orphans: AtomicBool,
    /// Random per process, so job ids of two processes never meet.
    generation: u64,
    seq: AtomicU64,
}

impl Watchdog {
    pub(crate) fn new() -> Self {
        Watchdog {
            job: tokio::sync::Mutex::new(None),
            active: AtomicUsize::new(0),
            armed: AtomicBool::new(false),
            orphans: AtomicBool::new(false),
            generation: rand::random(),
            seq: AtomicU64::new(0),
        }
    }

    fn next_id(&self) -> String {
        format!(
            "{JOB_PREFIX}{:016x}-{}",
            self.generation,
            self.seq.fetch_add(1, SeqCst) + 1
        )
    }

    /// Schedules a new job due at `due` and records it as this process's.
    async fn arm_locked(
        &self,
        slot: &mut Option<String>,
        scheduler: &dyn Scheduler,
        due: Timestamp,
    ) -> Result<(), CoreError> {
        let id = self.next_id();
        scheduler
            .schedule(Job {
                id: id.clone(),
                due,
                kind: JobKind::Delivery {
                    notification_id: String::new(),
                    attempt: 0,
                },
                attempts: 0,
            })
            .await?;
        *slot = Some(id);
        self.armed.store(true, SeqCst);
        Ok(())
    }

    /// Call before the commit that starts an attempt; the attempt may start once
    /// this returns `Ok`. `due` is when a new job would fire (now + one period).
    pub(crate) async fn enter<'a>(
        &'a self,
        scheduler: &'a dyn Scheduler,
        due: Timestamp,
    ) -> Result<Guard<'a>, CoreError> {
        self.active.fetch_add(1, SeqCst);
        let guard = Guard {
            dog: self,
            scheduler,
            done: false,
        };
        if !self.armed.load(SeqCst) {
            let mut slot = self.job.lock().await;
            if !self.armed.load(SeqCst) {
                // On error the guard drops: counted as possibly abandoned, which
                // is conservative (nothing was written yet).
                self.arm_locked(&mut slot, scheduler, due).await?;
            }
        }
        Ok(guard)
    }

    /// Start of a sweep run by `job`: forgets the job if it is this process's
    /// (it is being consumed) and clears the orphan flag (the sweep reads every
    /// marker). Returns nothing; pair with [`Watchdog::after_sweep`].
    pub(crate) async fn before_sweep(&self, job: &Job) {
        let mut slot = self.job.lock().await;
        if slot.as_deref() == Some(job.id.as_str()) {
            *slot = None;
            self.armed.store(false, SeqCst);
        }
        self.orphans.store(false, SeqCst);
    }

    /// End of a sweep: `leftover` = it left markers it did not resume (too young,
    /// busy in this process, or more than one run reads). Re-arms when anything
    /// is left to guard.
    pub(crate) async fn after_sweep(
        &self,
        scheduler: &dyn Scheduler,
        leftover: bool,
        due: Timestamp,
    ) -> Result<(), CoreError> {
        if leftover {
            self.orphans.store(true, SeqCst);
        }
        let mut slot = self.job.lock().await;
        if !self.armed.load(SeqCst) && (self.active.load(SeqCst) > 0 || self.orphans.load(SeqCst)) {
            self.arm_locked(&mut slot, scheduler, due).await?;
        }
        Ok(())
    }
}

/// One attempt (or one run of the policy loop) inside the watchdog. Call
/// [`Guard::finish`] after the outcome is committed; dropping it unfinished
/// (the future was abandoned, or the outcome commit failed) marks a possible
/// orphan marker, which keeps the job armed until a sweep clears it.
pub(crate) struct Guard<'a> {
    dog: &'a Watchdog,
    scheduler: &'a dyn Scheduler,
    done: bool,
}

impl Guard<'_> {
    /// Leaves the watchdog. `clean`: the outcome was committed (no marker left).
    /// The last attempt out cancels the job when nothing may be left behind.
    pub(crate) async fn finish(mut self, clean: bool) -> Result<(), CoreError> {
        self.done = true;
        let dog = self.dog;
        if !clean {
            dog.orphans.store(true, SeqCst);
        }
        if dog.active.fetch_sub(1, SeqCst) != 1 || dog.orphans.load(SeqCst) {
            return Ok(());
        }
        let mut slot = dog.job.lock().await;
        if !dog.armed.load(SeqCst) {
            return Ok(());
        }
        // Clear `armed` before re-reading `active`: an `enter` that raced us
        // either is counted here or sees `armed == false` and waits for the lock.
        dog.armed.store(false, SeqCst);
        if dog.active.load(SeqCst) == 0 && !dog.orphans.load(SeqCst) {
            if let Some(id) = slot.take() {
                self.scheduler.cancel(&id).await?;
            }
        } else {
            dog.armed.store(true, SeqCst);
        }
        Ok(())
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Orphan first, then leave: whoever sees `active` drop also sees it.
            self.dog.orphans.store(true, SeqCst);
            self.dog.active.fetch_sub(1, SeqCst);
        }
    }
}
