//! The async shell: [`Engine`] runs the pure [`EngineCore`] against a Store, a
//! Scheduler, a Clock and a Notifier.
//!
//! Every mutating call runs under one write lock: the core decides (under a short
//! synchronous lock), the shell commits the resulting writes as one atomic
//! [`WriteBatch`], then applies scheduler operations, then hands notifications to the
//! [`Notifier`] (outside the write lock). A call returns `Ok` only after its batch is
//! committed, so an acknowledged ingest is durable.
//!
//! Commits are pipelined: once a decision's batch is encoded, the write lock passes to
//! the next caller while the batch commits, so the next decision overlaps this
//! commit. Batches still commit one after another in decision order (a FIFO commit
//! lock), and a batch decided while the one before it was committing fails if that
//! one failed (it was decided on top of it). After a failed commit the next decision
//! first rebuilds the core from the store, so a failed call changes nothing, in the
//! store or in memory.
//!
//! With [`EngineBuilder::in_memory_flush_timers`] (the server turns it on), group
//! flushes are timers in memory, not durable jobs: every group record carries its
//! `next_flush`, and [`Engine::recover`] re-arms them all, so a durable flush job only
//! repeats what the group record already says, at the cost of durable writes to arm,
//! claim and complete it for every group every group_interval. Off by default, so
//! the Scheduler still lists flush jobs for embedders and tests that inspect it.
//!
//! With [`EngineBuilder::renotify_yield`] (the server turns it on), re-notifications
//! yield to ingest: a due flush of a group that was already notified is held while
//! ingest calls keep arriving (one within [`INGEST_BUSY_WINDOW`]), for at most the
//! configured hold, then runs. The held flush folds every change that arrived
//! meanwhile into one notification, as a flush delayed by a slow receiver does; a
//! group's first notification and a group's resolved notification are never held. A held flush lives in memory only: after
//! a crash the group record's `next_flush` re-arms it as usual.
//!
//! Notifications are written to an outbox (`Table::Meta`, key `outbox/<id>`) in the
//! same batch as the decision that produced them and removed once the notifier
//! accepted them; [`Engine::recover`] re-sends what a crash left in the outbox. A
//! notifier that keeps the outbox itself ([`Notifier::records_notifications`], the
//! delivery pipeline's notification log) adds its own writes to the decision batch
//! instead, so each notification is written once.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use parking_lot::Mutex;

use super::config::EngineConfig;
use super::core::{AlertRecord, EngineCore, IncidentAction};
use super::effects::{Effect, Record};
use super::escalation::{EscalationHook, NoEscalation};
use super::events::{EngineEvent, EventSink, NoopSink};
use super::journaled::Journaled;
use super::notifier::{ChannelNotifier, Notifier, channel_name};
use crate::CoreError;
use crate::channel::Notification;
use crate::clock::{Clock, SystemClock};
use crate::dispatch::AggregationGroup;
use crate::incident::{
    Actor, AuditEntry, AuditQuery, EntryKind, Incident, IncidentFilter, IncidentState, Page, Role,
    TimelineEntry,
};
use crate::journal::{Journal, JournalSeq};
use crate::memory::{MemoryScheduler, MemoryStore};
use crate::model::{ChangeEvent, Event};
use crate::scheduler::{Job, JobKind, Scheduler};
use crate::service::Service;
use crate::silence::{Silence, SilenceSpec, SilenceState};
use crate::store::{Scan, Store, StoreExt, Table, WriteBatch, WriteOp};

/// How long a claimed job is leased before another runner may retry it.
const JOB_LEASE: Duration = Duration::from_secs(60);
/// Jobs claimed per round.
const JOB_BATCH: usize = 256;
/// Most group flushes decided and committed together.
const FLUSH_BATCH: usize = 1024;
/// Flush rounds whose notifications may be handed over in the background at once.
/// Back-pressure like Alertmanager's (a group's next flush waits for its previous
/// notification): when delivery falls behind, later flushes wait and fold every
/// change that arrived meanwhile into one notification per group instead of queueing
/// one per group_interval.
const BACKGROUND_ROUNDS: usize = 4;

/// Ingest counts as busy for this long after an ingest call started (see
/// [`EngineBuilder::renotify_yield`]).
pub const INGEST_BUSY_WINDOW: Duration = Duration::from_millis(100);

/// Longest one ingest call waits for the notification backlog (see
/// [`EngineBuilder::ingest_waits_for_backlog`]).
pub const BACKLOG_WAIT: Duration = Duration::from_millis(250);

/// Most notifications handed to the notifier at once by one engine call.
const DELIVERY_CONCURRENCY: usize = 512;

/// Awaits every task; returns the first error (or panic, as an I/O error) after all
/// have finished, so no write is left running unobserved.
async fn first_error(
    mut set: tokio::task::JoinSet<Result<(), crate::store::StoreError>>,
) -> Result<(), CoreError> {
    let mut first: Option<CoreError> = None;
    while let Some(r) = set.join_next().await {
        let err = match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(CoreError::from(e)),
            Err(e) => Some(CoreError::from(crate::store::StoreError::Io(format!(
                "scheduler task failed: {e}"
            )))),
        };
        if first.is_none() {
            first = err;
        }
    }
    first.map_or(Ok(()), Err)
}
/// Id prefix of group flush jobs ([`AggregationGroup::job_id`]).
const FLUSH_PREFIX: &str = "flush/";

fn is_flush_id(id: &str) -> bool {
    id.starts_with(FLUSH_PREFIX)
}

/// Longest the run loop sleeps without checking the scheduler (covers jobs scheduled
/// by other processes sharing the store).
const MAX_IDLE: Duration = Duration::from_secs(1);

/// Outcome of an ingest call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Events accepted.
    pub accepted: usize,
    /// Notifications handed to the notifier.
    pub notifications: usize,
}

struct Inner {
    store: Arc<dyn Store>,
    scheduler: Arc<dyn Scheduler>,
    /// Group flush timers (see the module doc): job ids `flush/…`.
    flushes: MemoryScheduler,
    /// Whether group flushes use `flushes` instead of the Scheduler.
    memory_flushes: bool,
    /// Whether alerts are packed after each decision is staged
    /// ([`EngineBuilder::compact_alerts`]).
    compact_alerts: bool,
    /// A commit failed: the core holds decisions the store does not. The next
    /// decision first rebuilds the core from the store ([`Engine::rebuild_core`]).
    stale: std::sync::atomic::AtomicBool,
    /// Longest a re-notification flush is held while ingest is busy (zero: never).
    renotify_yield: Duration,
    /// When the last ingest call started (ms since the epoch on the engine's clock).
    last_ingest_ms: std::sync::atomic::AtomicI64,
    /// Re-notification flushes held while ingest is busy: (run at the latest, job).
    held: Mutex<Vec<(Timestamp, Job)>>,
    /// Notifications being handed over (decided and committed, not yet accepted).
    backlog: std::sync::atomic::AtomicUsize,
    /// Ingest waits while `backlog` exceeds this (0: never; see
    /// [`EngineBuilder::ingest_waits_for_backlog`]).
    backlog_limit: usize,
    /// Wakes the run loop when a timer earlier than its planned wake-up is armed.
    wake: tokio::sync::Notify,
    /// The run loop's planned wake-up (ms since the epoch; `i64::MAX` when not sleeping).
    sleep_until_ms: std::sync::atomic::AtomicI64,
    /// Commit order: held from the end of a decision until its batch is committed.
    commit_order: Arc<tokio::sync::Mutex<CommitChain>>,
    /// Whether a batch is committing now (read when a decision starts).
    committing: std::sync::atomic::AtomicBool,
    /// Bounds the notifications being handed over at once across all callers
    /// (background deliveries of the run loop included).
    hand_over_slots: tokio::sync::Semaphore,
    /// Flush rounds whose notifications the run loop may still be handing over in the
    /// background; a new round waits for a slot (see [`Engine::run`]).
    background_rounds: Arc<tokio::sync::Semaphore>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
    sink: Arc<dyn EventSink>,
    escalation: Arc<dyn EscalationHook>,
    core: Mutex<EngineCore>,
    write: tokio::sync::Mutex<()>,
    ext_seq: std::sync::atomic::AtomicU64,
    /// When the next closed incident is due to leave memory (ms since the epoch on the
    /// engine's clock; `i64::MAX`: none in memory). See [`Engine::evict_closed_incidents`].
    next_eviction_ms: std::sync::atomic::AtomicI64,
    /// When the next expired silence is due to be removed (ms since the epoch on the
    /// engine's clock; `i64::MAX`: no silence). See [`Engine::remove_expired_silences`].
    next_silence_gc_ms: std::sync::atomic::AtomicI64,
    /// Ids of stored silences the last load left out (ended longer ago than
    /// [`EngineConfig::expired_silence_age`]): the next silence sweep deletes them.
    unloaded_silences: Mutex<Vec<String>>,
    /// Incident actions running now ([`Engine::act`]): a sweep waits for none, so an
    /// action's hooks always find its incident in memory.
    acts_in_flight: std::sync::atomic::AtomicUsize,
    /// Some closed incident is in the Store only (evicted, or left out at start):
    /// listing closed incidents reads the Store too.
    evicted_any: std::sync::atomic::AtomicBool,
    /// Journaled ingest ([`EngineBuilder::journal`]).
    journal: Option<Journaled>,
}

/// The stored incidents a start-up (or rebuild) loads, and what it leaves in the
/// Store: of those, the one with the highest number and, per escalation policy, the
/// one with the highest round-robin cursor, enough for
/// [`EngineCore::count_stored_incident`] to give the same counters as counting all.
#[derive(Default)]
struct StoredIncidents {
    load: Vec<Incident>,
    left_out: bool,
    highest: Option<Incident>,
    per_policy: std::collections::HashMap<String, Incident>,
}

impl StoredIncidents {
    fn leave_out(&mut self, i: Incident) {
        self.left_out = true;
        if let Some(p) = &i.escalation_policy
            && self
                .per_policy
                .get(p)
                .is_none_or(|c| c.round_robin_cursor < i.round_robin_cursor)
        {
            self.per_policy.insert(p.clone(), i.clone());
        }
        if self.highest.as_ref().is_none_or(|h| h.number < i.number) {
            self.highest = Some(i);
        }
    }

    /// The left-out incidents the core's counters must count.
    fn counted(&self) -> impl Iterator<Item = &Incident> {
        self.highest.iter().chain(self.per_policy.values())
    }
}

/// State passed along the commit order.
#[derive(Default)]
struct CommitChain {
    /// The last batch's commit failed (its error message).
    failed: Option<String>,
}

/// A decided batch holding its place in the commit order.
struct Decided {
    staged: Staged,
    order: tokio::sync::OwnedMutexGuard<CommitChain>,
    on_top_of_inflight: bool,
}

/// An ingest decided but not yet durable: [`PendingIngest::wait`] commits it.
/// Batches commit in the order they were decided, so a caller may decide the next
/// batch before waiting for this one (the server's ingest batcher does).
#[must_use = "the events are durable only once `wait` returned Ok"]
pub struct PendingIngest {
    engine: Engine,
    decided: Decided,
    accepted: usize,
}

impl PendingIngest {
    /// Commits the batch (after every batch decided before it), runs its hooks and
    /// hands its notifications over. `Ok` means the events are durable.
    pub async fn wait(self) -> Result<IngestReport, CoreError> {
        let pending = self.engine.finish(self.decided).await?;
        let notifications = self.engine.deliver(pending).await;
        Ok(IngestReport {
            accepted: self.accepted,
            notifications,
        })
    }
}

/// A decision's effects, sorted for the commit.
///
/// Only the records encoded from the core's state ([`EngineCore::encode`]) are in
/// `batch` when the decision ends; the notifications' records and the timeline runs
/// need nothing from the core and are encoded by [`Staged::encode_rest`] in the
/// commit step, outside the core lock and the write lock, so the next decision
/// runs meanwhile (a burst of first notifications spends about a third of its
/// decision CPU encoding them).
struct Staged {
    batch: WriteBatch,
    jobs: Vec<Effect>,
    notifications: Vec<Notification>,
    /// Timeline entries, one run per incident, each stored as one record
    /// (`timeline::encode_run`); encoded by [`Staged::encode_rest`].
    runs: Vec<(String, Vec<TimelineEntry>)>,
    /// Whether `notifications` still need their records in `batch`.
    unrecorded: bool,
    hooks: Vec<Effect>,
    events: Vec<EngineEvent>,
}

impl Staged {
    /// Adds the writes [`Engine::stage`] left for the commit step: each
    /// notification's record (the notifier's, or the engine's outbox entry) and the
    /// timeline runs. Idempotent (runs once).
    fn encode_rest(&mut self, notifier: &dyn Notifier) -> Result<(), CoreError> {
        if std::mem::take(&mut self.unrecorded) {
            let recorded = notifier.records_notifications();
            for n in &self.notifications {
                if recorded {
                    notifier.record(n, &mut self.batch)?;
                } else {
                    self.batch.put(Table::Meta, outbox_key(&n.id), n)?;
                }
            }
        }
        for (incident_id, entries) in std::mem::take(&mut self.runs) {
            let Some(first) = entries.first() else {
                continue;
            };
            let key = Incident::timeline_key(&incident_id, first.seq);
            let value = crate::incident::timeline::encode_run(&entries)
                .map_err(|e| crate::store::StoreError::Codec(format!("timeline/{key}: {e}")))?;
            self.batch.put_raw(Table::Timeline, key, value);
        }
        Ok(())
    }
}

/// The SignalCraft engine. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// A reference to an [`Engine`] that does not keep it alive (background tasks that
/// must end when the last `Engine` is dropped).
#[derive(Clone)]
pub(super) struct WeakEngine(std::sync::Weak<Inner>);

impl WeakEngine {
    /// The engine, unless every `Engine` was dropped.
    pub(super) fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

/// Builds an [`Engine`]; every part defaults to the in-memory / system one.
pub struct EngineBuilder {
    config: EngineConfig,
    store: Option<Arc<dyn Store>>,
    scheduler: Option<Arc<dyn Scheduler>>,
    clock: Option<Arc<dyn Clock>>,
    notifier: Option<Arc<dyn Notifier>>,
    sink: Option<Arc<dyn EventSink>>,
    escalation: Option<Arc<dyn EscalationHook>>,
    memory_flushes: bool,
    journal: Option<Arc<dyn Journal>>,
    journal_max_lag: usize,
    journal_apply_batch: usize,
    renotify_yield: Duration,
    backlog_limit: usize,
    compact_alerts: bool,
}

impl EngineBuilder {
    /// Packs every alert after the decision that received it is staged and drops its
    /// raw payload from memory (default: off; see [`EngineCore::compact_alerts`]):
    /// about a third of the memory per active alert. The raw payload stays in the
    /// Store: the record written when a version was received holds it, and a later
    /// rewrite of that record by the engine (a retire, a group change) takes it over
    /// from the stored record before committing. Notifications built from compacted
    /// alerts carry no raw payload.
    pub fn compact_alerts(mut self, on: bool) -> Self {
        self.compact_alerts = on;
        self
    }

    /// Keeps group flush timers in memory instead of the Scheduler (default: off).
    /// Safe because group records carry their next flush and [`Engine::recover`]
    /// re-arms it; saves three durable writes per group flush. The Scheduler's
    /// `pending` then lists no flush jobs ([`Engine::pending_flushes`] counts them).
    pub fn in_memory_flush_timers(mut self, on: bool) -> Self {
        self.memory_flushes = on;
        self
    }
    /// Lets re-notifications yield to ingest for at most `hold` (at most 30 s, below
    /// the flush timers' lease; default: zero, off;
    /// see the module doc). A due flush of a group that was already notified is held
    /// while ingest calls keep arriving, so a burst of alerts is folded into fewer
    /// notifications and ingest keeps the CPU and the store's writer; a group's first
    /// notification is never held.
    pub fn renotify_yield(mut self, hold: Duration) -> Self {
        self.renotify_yield = hold.min(Duration::from_secs(30));
        self
    }
    /// Lets ingest yield to notification delivery (default: 0, off): an ingest call
    /// waits, for at most [`BACKLOG_WAIT`], while more than `limit` notifications are
    /// being handed over. A burst of new groups comes due together one group_wait
    /// after its alerts; without this their first notifications share the CPU and
    /// the store's writer with the ingest that keeps arriving and are sent late.
    /// With [`EngineBuilder::renotify_yield`] the order is: first notifications,
    /// then ingest, then re-notifications.
    pub fn ingest_waits_for_backlog(mut self, limit: usize) -> Self {
        self.backlog_limit = limit;
        self
    }
    /// Journaled ingest: [`Engine::submit`] returns once events are durable in this
    /// journal and the engine decides on them in the background (see
    /// [`super::journaled`]). Open the journal with [`super::journal_applied`] of the
    /// same Store, and call [`Engine::recover`] before submitting.
    pub fn journal(mut self, j: Arc<dyn Journal>) -> Self {
        self.journal = Some(j);
        self
    }

    /// Most submitted events the background decision may be behind before
    /// [`Engine::submit`] waits (default [`super::journaled::DEFAULT_MAX_LAG`]).
    pub fn journal_max_lag(mut self, events: usize) -> Self {
        self.journal_max_lag = events;
        self
    }

    /// Most journaled events decided on (and committed) together (default
    /// [`super::journaled::APPLY_BATCH`]): larger batches amortize the store's
    /// commit, smaller ones let group flushes interleave sooner.
    pub fn journal_apply_batch(mut self, events: usize) -> Self {
        self.journal_apply_batch = events;
        self
    }

    /// The Store (default: [`MemoryStore`]).
    pub fn store(mut self, s: Arc<dyn Store>) -> Self {
        self.store = Some(s);
        self
    }
    /// The Scheduler (default: [`MemoryScheduler`]).
    pub fn scheduler(mut self, s: Arc<dyn Scheduler>) -> Self {
        self.scheduler = Some(s);
        self
    }
    /// The Clock (default: [`SystemClock`]).
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = Some(c);
        self
    }
    /// The Notifier (default: an empty [`ChannelNotifier`]).
    pub fn notifier(mut self, n: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(n);
        self
    }
    /// The event sink (default: [`NoopSink`]).
    pub fn event_sink(mut self, s: Arc<dyn EventSink>) -> Self {
        self.sink = Some(s);
        self
    }
    /// The escalation hook (default: [`NoEscalation`]).
    pub fn escalation(mut self, e: Arc<dyn EscalationHook>) -> Self {
        self.escalation = Some(e);
        self
    }

    /// Validates the config and builds the engine. Call [`Engine::recover`] before use
    /// when the Store may hold state from a previous run.
    pub fn build(self) -> Result<Engine, CoreError> {
        let cfg = self.config.compile()?;
        Ok(Engine {
            inner: Arc::new(Inner {
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                scheduler: self
                    .scheduler
                    .unwrap_or_else(|| Arc::new(MemoryScheduler::new())),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                notifier: self
                    .notifier
                    .unwrap_or_else(|| Arc::new(ChannelNotifier::new())),
                sink: self.sink.unwrap_or_else(|| Arc::new(NoopSink)),
                escalation: self.escalation.unwrap_or_else(|| Arc::new(NoEscalation)),
                core: Mutex::new(EngineCore::new(cfg)),
                flushes: MemoryScheduler::new(),
                memory_flushes: self.memory_flushes,
                compact_alerts: self.compact_alerts,
                stale: std::sync::atomic::AtomicBool::new(false),
                renotify_yield: self.renotify_yield,
                last_ingest_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
                held: Mutex::new(Vec::new()),
                backlog: std::sync::atomic::AtomicUsize::new(0),
                backlog_limit: self.backlog_limit,
                wake: tokio::sync::Notify::new(),
                sleep_until_ms: std::sync::atomic::AtomicI64::new(i64::MAX),
                commit_order: Arc::new(tokio::sync::Mutex::new(CommitChain::default())),
                committing: std::sync::atomic::AtomicBool::new(false),
                hand_over_slots: tokio::sync::Semaphore::new(2 * DELIVERY_CONCURRENCY),
                background_rounds: Arc::new(tokio::sync::Semaphore::new(BACKGROUND_ROUNDS)),
                write: tokio::sync::Mutex::new(()),
                ext_seq: std::sync::atomic::AtomicU64::new(0),
                next_eviction_ms: std::sync::atomic::AtomicI64::new(i64::MAX),
                next_silence_gc_ms: std::sync::atomic::AtomicI64::new(i64::MAX),
                unloaded_silences: Mutex::new(Vec::new()),
                acts_in_flight: std::sync::atomic::AtomicUsize::new(0),
                evicted_any: std::sync::atomic::AtomicBool::new(false),
                journal: self
                    .journal
                    .map(|j| Journaled::new(j, self.journal_max_lag, self.journal_apply_batch)),
            }),
        })
    }
}

fn outbox_key(id: &str) -> String {
    format!("outbox/{id}")
}

impl Engine {
    /// Starts building an engine with this configuration.
    pub fn builder(config: EngineConfig) -> EngineBuilder {
        EngineBuilder {
            config,
            store: None,
            scheduler: None,
            clock: None,
            notifier: None,
            sink: None,
            escalation: None,
            memory_flushes: false,
            renotify_yield: Duration::ZERO,
            backlog_limit: 0,
            compact_alerts: false,
            journal: None,
            journal_max_lag: super::journaled::DEFAULT_MAX_LAG,
            journal_apply_batch: super::journaled::APPLY_BATCH,
        }
    }

    /// A reference that does not keep the engine alive.
    pub(super) fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// The journaled-ingest state, when the engine has a journal.
    pub(super) fn journal_state(&self) -> Option<&Journaled> {
        self.inner.journal.as_ref()
    }

    /// Emits an engine event to the sink.
    pub(super) fn emit(&self, ev: &EngineEvent) {
        self.inner.sink.emit(ev);
    }

    /// The current time on the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The Store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The Scheduler.
    pub fn scheduler(&self) -> &Arc<dyn Scheduler> {
        &self.inner.scheduler
    }

    /// Runs `f` on the core under its lock, then applies the effects it produced:
    /// commits them (pipelined, see the module doc), runs the hooks and hands the
    /// notifications over. Returns after the commit and the hand-over.
    async fn mutate<T>(
        &self,
        f: impl FnOnce(&mut EngineCore, Timestamp, &mut Vec<Effect>) -> Result<T, CoreError>,
    ) -> Result<(T, usize), CoreError> {
        let (value, pending) = self.decide_and_commit(f).await?;
        Ok((value, self.deliver(pending).await))
    }

    /// The decision and its commit (and hooks); returns the notifications to hand out.
    async fn decide_and_commit<T>(
        &self,
        f: impl FnOnce(&mut EngineCore, Timestamp, &mut Vec<Effect>) -> Result<T, CoreError>,
    ) -> Result<(T, Vec<Notification>), CoreError> {
        let (value, decided) = self.decide(f).await?;
        Ok((value, self.finish(decided).await?))
    }

    /// Runs the decision under the write lock and stages its batch; returns holding
    /// the batch's place in the commit order, with the write lock released so the next
    /// decision may run while this batch commits ([`Engine::finish`]).
    async fn decide<T>(
        &self,
        f: impl FnOnce(&mut EngineCore, Timestamp, &mut Vec<Effect>) -> Result<T, CoreError>,
    ) -> Result<(T, Decided), CoreError> {
        use std::sync::atomic::Ordering;
        let guard = self.inner.write.lock().await;
        if self.inner.stale.load(Ordering::SeqCst) {
            self.rebuild_core().await?;
        }
        // A batch committing now is one this decision builds on.
        let on_top_of_inflight = self.inner.committing.load(Ordering::Acquire);
        let now = self.now();
        let mut effects = Vec::new();
        let (value, staged) = {
            let mut core = self.inner.core.lock();
            let value = f(&mut core, now, &mut effects)?;
            let staged = Self::stage(&core, effects)?;
            if self.inner.compact_alerts {
                // Safe here: this decision's alert records (the only durable copy of
                // their raw payloads) were just encoded into `staged`.
                core.compact_alerts();
            }
            (value, staged)
        };
        let order = self.inner.commit_order.clone().lock_owned().await;
        self.inner.committing.store(true, Ordering::Release);
        drop(guard);
        Ok((
            value,
            Decided {
                staged,
                order,
                on_top_of_inflight,
            },
        ))
    }

    /// Commits a decided batch in its turn, then runs its hooks; returns the
    /// notifications to hand out.
    async fn finish(&self, d: Decided) -> Result<Vec<Notification>, CoreError> {
        use std::sync::atomic::Ordering;
        let Decided {
            staged,
            mut order,
            on_top_of_inflight,
        } = d;
        let result = match order.failed.as_ref() {
            Some(e) if on_top_of_inflight => Err(CoreError::from(crate::store::StoreError::Io(
                format!("an earlier commit this decision built on failed: {e}"),
            ))),
            _ => self.apply_staged(staged).await,
        };
        order.failed = result.as_ref().err().map(|e| e.to_string());
        if result.is_err() {
            self.inner.stale.store(true, Ordering::SeqCst);
        }
        self.inner.committing.store(false, Ordering::Release);
        drop(order);
        let (pending, hooks) = result?;
        self.run_hooks(hooks).await?;
        Ok(pending)
    }

    /// Sorts a decision's effects and encodes the writes that read the core into one
    /// batch (under the core lock, which `encode` reads); the rest is encoded in the
    /// commit step ([`Staged::encode_rest`]).
    fn stage(core: &EngineCore, effects: Vec<Effect>) -> Result<Staged, CoreError> {
        // Sized for the effects at hand: a burst of flushes stages thousands of
        // records, and growing these one doubling at a time showed in profiles.
        let persists = effects
            .iter()
            .filter(|e| matches!(e, Effect::Persist(_) | Effect::Write(_) | Effect::Audit(_)))
            .count();
        let notifies = effects
            .iter()
            .filter(|e| matches!(e, Effect::Notify(_)))
            .count();
        let mut st = Staged {
            batch: WriteBatch {
                ops: Vec::with_capacity(persists),
            },
            jobs: Vec::new(),
            notifications: Vec::with_capacity(notifies),
            runs: Vec::new(),
            unrecorded: true,
            hooks: Vec::new(),
            events: Vec::new(),
        };
        let mut seen: HashSet<Record> = HashSet::with_capacity(persists);
        // Timeline entries, one run per incident (in the order incidents first
        // appear); each run is stored as one record (`timeline::encode_run`).
        let runs = &mut st.runs;
        let mut run_of: std::collections::HashMap<String, usize> = Default::default();
        for e in effects {
            match e {
                Effect::Persist(r) => {
                    if !seen.contains(&r) {
                        if let Some(op) = core.encode(&r) {
                            st.batch.ops.push(op);
                        }
                        seen.insert(r);
                    }
                }
                Effect::Write(op) => st.batch.ops.push(op),
                Effect::Timeline { incident_id, entry } => match run_of.get(&incident_id) {
                    // The core appends an incident's entries with consecutive `seq`s;
                    // anything else starts a record of its own.
                    Some(&i) if runs[i].1.last().is_some_and(|l| l.seq + 1 == entry.seq) => {
                        runs[i].1.push(*entry);
                    }
                    _ => {
                        run_of.insert(incident_id.clone(), runs.len());
                        runs.push((incident_id, vec![*entry]));
                    }
                },
                Effect::Audit(a) => {
                    st.batch.put(Table::Audit, a.key(), &a)?;
                }
                Effect::Notify(n) => st.notifications.push(*n),
                Effect::Schedule(_) | Effect::Cancel(_) | Effect::CancelPrefix(_) => {
                    st.jobs.push(e)
                }
                Effect::StartEscalation { .. }
                | Effect::StopEscalation { .. }
                | Effect::PageUser { .. } => st.hooks.push(e),
                Effect::Event(ev) => st.events.push(ev),
            }
        }
        Ok(st)
    }

    /// Commits a staged batch, then applies its scheduler operations and emits its
    /// events; returns the notifications and the escalation hooks.
    async fn apply_staged(
        &self,
        mut st: Staged,
    ) -> Result<(Vec<Notification>, Vec<Effect>), CoreError> {
        st.encode_rest(self.inner.notifier.as_ref())?;
        if !st.batch.is_empty() {
            if self.inner.compact_alerts {
                self.restore_elided_payloads(&mut st.batch).await?;
            }
            self.inner.store.commit(st.batch).await?;
        }
        self.apply_jobs(st.jobs).await?;
        for ev in st.events {
            self.inner.sink.emit(&ev);
        }
        Ok((st.notifications, st.hooks))
    }

    /// Gives every alert record in `batch` that the core wrote without the raw
    /// payload it released ([`AlertRecord::payload_elided`]) the payload of the record
    /// it replaces. Runs in commit order, so the stored record includes every earlier
    /// batch. Only elided records are decoded: serde writes the flag last and only
    /// when set, so the check is a suffix comparison.
    async fn restore_elided_payloads(&self, batch: &mut WriteBatch) -> Result<(), CoreError> {
        const ELIDED: &[u8] = b",\"payload_elided\":true}";
        for op in &mut batch.ops {
            let WriteOp::Put {
                table: Table::Alerts,
                key,
                value,
            } = op
            else {
                continue;
            };
            if !value.ends_with(ELIDED) {
                continue;
            }
            let mut rec: AlertRecord = serde_json::from_slice(value)
                .map_err(|e| crate::store::StoreError::Codec(format!("alerts/{key}: {e}")))?;
            let stored = self
                .inner
                .store
                .get_json::<AlertRecord>(Table::Alerts, key)
                .await?;
            if let Some(stored) = stored
                && rec.merge_stored_payload(&stored)
            {
                *value = serde_json::to_vec(&rec)
                    .map_err(|e| crate::store::StoreError::Codec(format!("alerts/{key}: {e}")))?;
            }
        }
        Ok(())
    }

    /// Commits effects produced outside a decision (the write lock held by the caller).
    async fn commit(
        &self,
        effects: Vec<Effect>,
    ) -> Result<(Vec<Notification>, Vec<Effect>), CoreError> {
        let staged = Self::stage(&self.inner.core.lock(), effects)?;
        let _order = self.inner.commit_order.lock().await;
        let result = self.apply_staged(staged).await;
        if result.is_err() {
            self.inner
                .stale
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        result
    }

    /// Applies scheduler effects. Runs of consecutive `Schedule`s are submitted
    /// concurrently, so a durable scheduler with group commit makes them one
    /// transaction instead of one fsync each; cancels are barriers, keeping the
    /// effects' order wherever it matters (a cancel before a re-schedule).
    ///
    /// Group flushes go to the in-memory timers instead (see the module doc).
    async fn apply_jobs(&self, jobs: Vec<Effect>) -> Result<(), CoreError> {
        let mut run: Vec<Job> = Vec::new();
        let mut earliest: Option<Timestamp> = None;
        for j in jobs {
            match j {
                Effect::Schedule(job) if is_flush_id(&job.id) => {
                    earliest = Some(earliest.map_or(job.due, |e| e.min(job.due)));
                    if self.inner.memory_flushes {
                        self.inner.flushes.schedule(*job).await?;
                    } else {
                        run.push(*job);
                    }
                }
                Effect::Schedule(job) => run.push(*job),
                Effect::Cancel(id) if self.inner.memory_flushes && is_flush_id(&id) => {
                    self.inner.flushes.cancel(&id).await?;
                }
                Effect::Cancel(id) => {
                    self.schedule_all(std::mem::take(&mut run)).await?;
                    self.inner.scheduler.cancel(&id).await?;
                }
                Effect::CancelPrefix(p) => {
                    let memory = self.inner.memory_flushes;
                    if memory && (FLUSH_PREFIX.starts_with(p.as_str()) || is_flush_id(&p)) {
                        self.inner.flushes.cancel_prefix(&p).await?;
                    }
                    if !memory || !is_flush_id(&p) {
                        self.schedule_all(std::mem::take(&mut run)).await?;
                        self.inner.scheduler.cancel_prefix(&p).await?;
                    }
                }
                _ => {}
            }
        }
        if let Some(t) = earliest {
            self.wake_before(t);
        }
        self.schedule_all(run).await
    }

    /// Wakes the run loop when it plans to sleep past `t`.
    fn wake_before(&self, t: Timestamp) {
        let planned = self
            .inner
            .sleep_until_ms
            .load(std::sync::atomic::Ordering::Acquire);
        if t.as_millisecond() < planned {
            self.inner.wake.notify_one();
        }
    }

    /// Schedules jobs concurrently; returns the first error after all have finished.
    async fn schedule_all(&self, jobs: Vec<Job>) -> Result<(), CoreError> {
        if jobs.len() <= 1 {
            for job in jobs {
                self.inner.scheduler.schedule(job).await?;
            }
            return Ok(());
        }
        let mut set = tokio::task::JoinSet::new();
        for job in jobs {
            let scheduler = self.inner.scheduler.clone();
            set.spawn(async move { scheduler.schedule(job).await });
        }
        first_error(set).await
    }

    /// Marks claimed jobs complete, concurrently (see [`Engine::schedule_all`]).
    async fn complete_all(&self, ids: Vec<String>) -> Result<(), CoreError> {
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            let scheduler = self.inner.scheduler.clone();
            set.spawn(async move { scheduler.complete(&id).await });
        }
        first_error(set).await
    }

    async fn run_hooks(&self, hooks: Vec<Effect>) -> Result<(), CoreError> {
        for h in hooks {
            let r = match h {
                Effect::StartEscalation {
                    incident_id,
                    policy,
                } => {
                    self.inner
                        .escalation
                        .start(self, &incident_id, &policy)
                        .await
                }
                Effect::StopEscalation {
                    incident_id,
                    actor,
                    reason,
                } => {
                    self.inner
                        .escalation
                        .stop(self, &incident_id, &actor, reason)
                        .await
                }
                Effect::PageUser(p) => {
                    self.inner
                        .escalation
                        .page_user(
                            self,
                            &p.incident_id,
                            &p.user,
                            p.message.as_deref(),
                            &p.actor,
                        )
                        .await
                }
                _ => Ok(()),
            };
            r?;
        }
        Ok(())
    }

    /// Hands one notification (e.g. a page built by the escalation hook) to the
    /// notifier, recording a failure on the incident timeline. Returns whether the
    /// notifier accepted it.
    pub async fn send(&self, n: Notification) -> bool {
        self.deliver_as(vec![n], false).await == 1
    }

    /// Hands notifications to the notifier; failures go to the incident timeline.
    /// Several notifications are handed over concurrently (at most
    /// [`DELIVERY_CONCURRENCY`] at a time), so a slow channel does not serialize a
    /// burst of group flushes; each one is independent and idempotent by id. Their
    /// outbox entries are removed afterwards in one commit.
    async fn deliver(&self, pending: Vec<Notification>) -> usize {
        let recorded = self.inner.notifier.records_notifications();
        self.deliver_as(pending, recorded).await
    }

    /// [`Engine::deliver`]; `recorded`: the notifications were recorded by the
    /// notifier ([`Notifier::record`]) rather than written to the engine's outbox.
    async fn deliver_as(&self, pending: Vec<Notification>, recorded: bool) -> usize {
        if pending.is_empty() {
            return 0;
        }
        self.inner
            .backlog
            .fetch_add(pending.len(), std::sync::atomic::Ordering::AcqRel);
        let mut done = Vec::with_capacity(pending.len());
        let mut sent = 0;
        if pending.len() == 1 {
            for n in pending {
                let (id, ok) = self.hand_over(n, recorded).await;
                sent += usize::from(ok);
                done.push(id);
            }
        } else {
            let mut set = tokio::task::JoinSet::new();
            for n in pending {
                if set.len() >= DELIVERY_CONCURRENCY
                    && let Some(Ok((id, ok))) = set.join_next().await
                {
                    sent += usize::from(ok);
                    done.push(id);
                }
                let engine = self.clone();
                set.spawn(async move {
                    let _slot = engine.inner.hand_over_slots.acquire().await;
                    engine.hand_over(n, recorded).await
                });
            }
            while let Some(r) = set.join_next().await {
                if let Ok((id, ok)) = r {
                    sent += usize::from(ok);
                    done.push(id);
                }
            }
        }
        if recorded {
            // The notifier's first state write removed each one's record marker.
            return sent;
        }
        let mut b = WriteBatch::new();
        for id in done {
            b.delete(Table::Meta, outbox_key(&id));
        }
        // Losing these deletes only means a duplicate hand-over after a crash, which the
        // notification id makes idempotent.
        let _ = self.inner.store.commit(b).await;
        sent
    }

    /// Hands one notification over; returns its id and whether the notifier accepted it.
    async fn hand_over(&self, n: Notification, recorded: bool) -> (String, bool) {
        /// Takes one notification off the backlog when the hand-over ends (or is dropped).
        struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Counted<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        let _counted = Counted(&self.inner.backlog);
        let id = n.id.clone();
        let receiver = n.receiver.clone();
        let channel = channel_name(&n).unwrap_or("").to_string();
        let incident = n.incident.as_ref().map(|i| i.id.clone());
        let accepted = if recorded {
            self.inner.notifier.notify_recorded(n).await
        } else {
            self.inner.notifier.notify(n).await
        };
        match accepted {
            Ok(()) => {
                self.inner
                    .sink
                    .emit(&EngineEvent::NotificationSent { receiver, channel });
                (id, true)
            }
            Err(e) => {
                let reason = e.to_string();
                self.inner.sink.emit(&EngineEvent::NotificationFailed {
                    receiver,
                    channel: channel.clone(),
                    reason: reason.clone(),
                });
                if let Some(inc) = incident {
                    let kind = EntryKind::DeliveryFailed {
                        notification_id: id.clone(),
                        channel,
                        reason,
                    };
                    // Best effort: the failure itself is already reported through the sink.
                    let _ = self.record_quiet(&inc, kind).await;
                }
                (id, false)
            }
        }
    }

    /// Records a system timeline entry without running hooks or notifications (a
    /// `Record` action produces neither); used from `deliver`, which `mutate` calls.
    async fn record_quiet(&self, id: &str, kind: EntryKind) -> Result<(), CoreError> {
        let _g = self.inner.write.lock().await;
        let now = self.now();
        let mut out = Vec::new();
        self.inner.core.lock().act(
            id,
            IncidentAction::Record(kind),
            Actor::System,
            now,
            &mut out,
        )?;
        self.commit(out).await?;
        Ok(())
    }

    // ----- ingest and jobs ----------------------------------------------------------

    /// Decides on normalized events now and returns their commit as a
    /// [`PendingIngest`]: the decision of the next call may run while this one commits.
    /// Returns once every batch decided earlier holds its place in the commit order.
    pub async fn ingest_begin(&self, events: Vec<Event>) -> Result<PendingIngest, CoreError> {
        let received = super::journaled::Received { at: None, events };
        self.ingest_begin_marked(vec![received], None).await
    }

    /// [`Engine::ingest_begin`]; with `applied`, the batch also records that journal
    /// records up to that sequence number are applied (see [`super::journaled`]).
    pub(super) async fn ingest_begin_marked(
        &self,
        received: Vec<super::journaled::Received>,
        applied: Option<JournalSeq>,
    ) -> Result<PendingIngest, CoreError> {
        self.wait_for_backlog().await;
        self.mark_ingest();
        let accepted = received.iter().map(|r| r.events.len()).sum();
        let ((), mut decided) = self
            .decide(|core, now, out| {
                // Each group of events is decided at the time it was received (never
                // later than now, never before an earlier group's), so its timers count
                // from acceptance even when the decision comes later.
                let mut at = None;
                for r in received {
                    let t = r.at.map_or(now, |t| t.min(now));
                    let t = at.map_or(t, |prev: Timestamp| t.max(prev));
                    at = Some(t);
                    core.ingest_all(r.events, t, out);
                }
                Ok(())
            })
            .await?;
        if let Some(seq) = applied {
            decided
                .staged
                .batch
                .put(Table::Meta, super::journaled::JOURNAL_APPLIED_KEY, &seq)?;
        }
        Ok(PendingIngest {
            engine: self.clone(),
            decided,
            accepted,
        })
    }

    /// Ingests normalized events. Returns after the resulting writes are committed.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<IngestReport, CoreError> {
        self.wait_for_backlog().await;
        self.mark_ingest();
        let n = events.len();
        let ((), sent) = self
            .mutate(|core, now, out| {
                core.ingest_all(events, now, out);
                Ok(())
            })
            .await?;
        Ok(IngestReport {
            accepted: n,
            notifications: sent,
        })
    }

    /// Notifications being handed over now (see
    /// [`EngineBuilder::ingest_waits_for_backlog`]).
    pub fn notification_backlog(&self) -> usize {
        self.inner
            .backlog
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits (at most [`BACKLOG_WAIT`]) while the notification backlog is over the
    /// limit (see [`EngineBuilder::ingest_waits_for_backlog`]).
    async fn wait_for_backlog(&self) {
        let limit = self.inner.backlog_limit;
        if limit == 0 {
            return;
        }
        // Runtime time (not the engine's Clock): this bounds a real wait.
        let until = tokio::time::Instant::now() + BACKLOG_WAIT;
        while self.notification_backlog() > limit && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Notes that an ingest call started (see [`EngineBuilder::renotify_yield`]).
    pub(super) fn mark_ingest(&self) {
        if !self.inner.renotify_yield.is_zero() {
            self.inner.last_ingest_ms.store(
                self.now().as_millisecond(),
                std::sync::atomic::Ordering::Release,
            );
        }
    }

    /// Whether an ingest call started within [`INGEST_BUSY_WINDOW`] before `now`.
    fn ingest_busy(&self, now: Timestamp) -> bool {
        let last = self
            .inner
            .last_ingest_ms
            .load(std::sync::atomic::Ordering::Acquire);
        last != i64::MIN
            && now.as_millisecond().saturating_sub(last)
                < i64::try_from(INGEST_BUSY_WINDOW.as_millis()).unwrap_or(i64::MAX)
    }

    /// When ingest stops counting as busy (`None` when it never ran).
    fn ingest_quiet_at(&self) -> Option<Timestamp> {
        let last = self
            .inner
            .last_ingest_ms
            .load(std::sync::atomic::Ordering::Acquire);
        if last == i64::MIN {
            return None;
        }
        Timestamp::from_millisecond(last)
            .ok()?
            .checked_add(crate::duration::signed(INGEST_BUSY_WINDOW))
            .ok()
    }

    /// Splits claimed flushes into those to run now and re-notifications to hold
    /// while ingest is busy (see [`EngineBuilder::renotify_yield`]); releases held
    /// flushes once ingest is quiet or their hold is over, oldest first and at most
    /// [`FLUSH_BATCH`] per call. Returns the flushes to run and whether more held
    /// ones may run now.
    fn hold_renotifications(&self, claimed: Vec<Job>, now: Timestamp) -> (Vec<Job>, bool) {
        let hold = self.inner.renotify_yield;
        if hold.is_zero() {
            return (claimed, false);
        }
        let busy = self.ingest_busy(now);
        let mut held = self.inner.held.lock();
        let mut run = Vec::with_capacity(claimed.len());
        let mut more = false;
        if !held.is_empty() {
            let room = FLUSH_BATCH.saturating_sub(claimed.len()).max(1);
            // Held in claim order, so their `until` ascends: release from the front.
            let ready = held
                .iter()
                .take_while(|(until, _)| !busy || *until <= now)
                .count();
            let n = ready.min(room);
            more = ready > n;
            run.extend(held.drain(..n).map(|(_, j)| j));
        }
        if !busy {
            run.extend(claimed);
            return (run, more);
        }
        let core = self.inner.core.lock();
        for job in claimed {
            // Only a group the receiver has heard of and that still fires waits: its
            // first notification and its resolved notification (a prompt resolve,
            // pulled in to `resolve_wait`) are never held.
            let renotify = matches!(&job.kind, JobKind::GroupFlush { group_key }
                if core.group(group_key).is_some_and(|g| g.nflog.is_some() && g.firing > 0));
            if renotify {
                let until = job
                    .due
                    .checked_add(crate::duration::signed(hold))
                    .unwrap_or(Timestamp::MAX);
                held.push((until, job));
            } else {
                run.push(job);
            }
        }
        (run, more)
    }

    /// When the earliest held re-notification may run: its hold's end, or once
    /// ingest is quiet, whichever comes first.
    fn held_wakeup(&self) -> Option<Timestamp> {
        let until = self.inner.held.lock().iter().map(|(u, _)| *u).min()?;
        Some(self.ingest_quiet_at().map_or(until, |q| q.min(until)))
    }

    /// Runs every job due now; returns how many ran. Returns after the notifications
    /// the jobs produced were handed over.
    pub async fn run_due_jobs(&self) -> Result<usize, CoreError> {
        self.run_due(false).await
    }

    /// Runs every job due now. Group flushes due together run as one decision and one
    /// commit per [`FLUSH_BATCH`] (a burst of new groups comes due at the same
    /// group_wait); other jobs one by one, after them. With `detach`, the flushes'
    /// notifications are handed over by a background task, so the next due flushes
    /// are not held back by slow deliveries (they are in the outbox already).
    async fn run_due(&self, detach: bool) -> Result<usize, CoreError> {
        self.evict_if_due().await;
        let mut ran = 0;
        loop {
            // Detached: wait for a free background round *before* claiming, so a round
            // takes everything that came due while the earlier ones were busy (up to
            // FLUSH_BATCH) instead of the few flushes due at an earlier claim.
            let mut round = if detach {
                self.inner
                    .background_rounds
                    .clone()
                    .acquire_owned()
                    .await
                    .ok()
            } else {
                None
            };
            let now = self.now();
            let claimed = self
                .inner
                .flushes
                .claim_due(now, JOB_LEASE, FLUSH_BATCH)
                .await?;
            let claimed_all = claimed.len() >= FLUSH_BATCH;
            let (mut flushes, more_held) = self.hold_renotifications(claimed, now);
            let claimed_all = claimed_all || more_held;
            let jobs = if !claimed_all {
                self.inner
                    .scheduler
                    .claim_due(now, JOB_LEASE, JOB_BATCH)
                    .await?
            } else {
                Vec::new()
            };
            if !claimed_all && flushes.is_empty() && jobs.is_empty() {
                return Ok(ran);
            }
            // Flush jobs armed durably by an earlier version run the same way.
            let mut durable_flushes = Vec::new();
            let mut others = Vec::new();
            for j in jobs {
                if matches!(j.kind, JobKind::GroupFlush { .. }) {
                    durable_flushes.push(j.id.clone());
                    flushes.push(j);
                } else {
                    others.push(j);
                }
            }
            if !flushes.is_empty() {
                let decide = |core: &mut EngineCore, now: Timestamp, out: &mut Vec<Effect>| {
                    for job in &flushes {
                        if let JobKind::GroupFlush { group_key } = &job.kind {
                            core.flush_job(group_key, job.due, now, out);
                        }
                    }
                    Ok(())
                };
                // Detached: the round commits and hands over in the background, so the
                // next round is decided while this one commits (commits stay in
                // decision order). A failed commit leaves the durable flush jobs
                // claimed, to be retried after their lease, as before.
                let pending = if detach {
                    let ((), decided) = self.decide(decide).await?;
                    let engine = self.clone();
                    let durable = std::mem::take(&mut durable_flushes);
                    let round = round.take();
                    tokio::spawn(async move {
                        if let Ok(pending) = engine.finish(decided).await
                            && engine.complete_all(durable).await.is_ok()
                        {
                            engine.deliver(pending).await;
                        }
                        drop(round);
                    });
                    Vec::new()
                } else {
                    self.decide_and_commit(decide).await?.1
                };
                for _ in &flushes {
                    self.inner.sink.emit(&EngineEvent::JobRun {
                        kind: "group_flush",
                    });
                }
                ran += flushes.len();
                for j in &flushes {
                    if is_flush_id(&j.id) {
                        self.inner.flushes.complete(&j.id).await?;
                    }
                }
                if !detach {
                    self.complete_all(durable_flushes).await?;
                    self.deliver(pending).await;
                }
            }
            for job in others {
                self.run_job(&job).await?;
                self.inner.scheduler.complete(&job.id).await?;
                ran += 1;
            }
        }
    }

    /// Runs one claimed job.
    pub async fn run_job(&self, job: &Job) -> Result<(), CoreError> {
        let kind = match &job.kind {
            JobKind::GroupFlush { group_key } => {
                let due = job.due;
                self.mutate(|core, now, out| {
                    core.flush_job(group_key, due, now, out);
                    Ok(())
                })
                .await?;
                "group_flush"
            }
            JobKind::Delivery { .. } => {
                self.inner.notifier.run_job(job).await?;
                "delivery"
            }
            JobKind::Escalate { .. } => {
                self.inner.escalation.run_job(self, job).await?;
                "escalate"
            }
            JobKind::NotifyRule { .. } => {
                self.inner.escalation.run_job(self, job).await?;
                "notify_rule"
            }
            JobKind::Handoff { .. } => {
                self.inner.escalation.run_job(self, job).await?;
                "handoff"
            }
            _ => "custom",
        };
        self.inner.sink.emit(&EngineEvent::JobRun { kind });
        Ok(())
    }

    /// The next time a job (or a group flush) is due, if any.
    pub async fn next_wakeup(&self) -> Result<Option<Timestamp>, CoreError> {
        let flush = self.inner.flushes.next_due().await?;
        let job = self.inner.scheduler.next_due().await?;
        let at = |ms: &std::sync::atomic::AtomicI64| match ms
            .load(std::sync::atomic::Ordering::Acquire)
        {
            i64::MAX => None,
            ms => Timestamp::from_millisecond(ms).ok(),
        };
        let evict = at(&self.inner.next_eviction_ms);
        let silence_gc = at(&self.inner.next_silence_gc_ms);
        Ok([flush, job, self.held_wakeup(), evict, silence_gc]
            .into_iter()
            .flatten()
            .min())
    }

    /// Group flushes armed in memory (the durable scheduler's `pending` does not list
    /// them; see the module doc).
    pub async fn pending_flushes(&self) -> usize {
        self.inner.flushes.pending().await.map_or(0, |p| p.len())
    }

    /// Re-notification flushes held while ingest is busy (see
    /// [`EngineBuilder::renotify_yield`]); they are still counted by
    /// [`Engine::pending_flushes`] (claimed timers stay pending until they ran).
    pub fn held_renotifications(&self) -> usize {
        self.inner.held.lock().len()
    }

    /// Runs due jobs until `shutdown` completes, sleeping until the next due job (at
    /// most 1 s at a time, measured on the engine's clock). Job errors are reported
    /// through the event sink's `JobRun` absence and retried after the lease.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), CoreError> {
        tokio::pin!(shutdown);
        use std::sync::atomic::Ordering;
        loop {
            // A failing job stays claimed and is retried after its lease.
            let _ = self.run_due(true).await;
            let now = self.now();
            let wait = match self.next_wakeup().await? {
                Some(t) if t > now => Duration::try_from(t.duration_since(now))
                    .unwrap_or(MAX_IDLE)
                    .min(MAX_IDLE),
                Some(_) => Duration::from_millis(1),
                None => MAX_IDLE,
            };
            let until = now
                .checked_add(crate::duration::signed(wait))
                .unwrap_or(Timestamp::MAX);
            self.inner
                .sleep_until_ms
                .store(until.as_millisecond(), Ordering::Release);
            // A timer armed between `next_wakeup` and here already called `notify_one`,
            // which leaves a permit, so `notified` returns at once.
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.wake.notified() => {}
            }
            self.inner.sleep_until_ms.store(i64::MAX, Ordering::Release);
        }
    }

    /// Rebuilds in-memory state from the Store (call once at startup, before serving),
    /// re-arms every group's flush job, re-sends notifications left in the outbox and
    /// lets the escalation hook resume paging a crash cut short
    /// ([`EscalationHook::recover`]: every open incident with a policy it has not run
    /// out of has a pending escalation step afterwards).
    pub async fn recover(&self) -> Result<(), CoreError> {
        let w = self.inner.write.lock().await;
        let outbox: Vec<(String, Notification)> = self
            .inner
            .store
            .scan_json(Table::Meta, Scan::prefix("outbox/"))
            .await?;
        self.load_core(false).await?;
        drop(w);
        self.replay_journal().await?;
        // Outbox entries of an earlier version (or of a notifier that does not
        // record), then what the notifier recorded but never handed over.
        self.deliver_as(outbox.into_iter().map(|(_, n)| n).collect(), false)
            .await;
        let recorded = self.inner.notifier.recorded_pending().await?;
        self.deliver_as(recorded, true).await;
        self.inner.escalation.recover(self).await?;
        Ok(())
    }

    /// After a failed commit (the write lock held): waits until every batch decided
    /// before has committed or failed, then replaces the core's state by the store's,
    /// so no decision of a failed batch survives in memory (an alert whose ingest
    /// failed is new again when it is re-sent). On error the core stays marked stale
    /// and the decision that called this fails.
    async fn rebuild_core(&self) -> Result<(), CoreError> {
        let _order = self.inner.commit_order.lock().await;
        self.load_core(true).await?;
        self.inner
            .stale
            .store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Loads groups, alerts, incidents, silences, services and recent changes from
    /// the store into the core (after [`EngineCore::reset`] when `reset`) and arms
    /// the groups' flushes. The caller holds the write lock.
    async fn load_core(&self, reset: bool) -> Result<(), CoreError> {
        let store = &self.inner.store;
        let groups: Vec<(String, AggregationGroup)> =
            store.scan_json(Table::Groups, Scan::all()).await?;
        let alerts: Vec<(String, AlertRecord)> =
            store.scan_json(Table::Alerts, Scan::all()).await?;
        let silences: Vec<(String, Silence)> =
            store.scan_json(Table::Silences, Scan::all()).await?;
        let services: Vec<(String, Service)> =
            store.scan_json(Table::Services, Scan::all()).await?;
        let now = self.now();
        let (window, age, silence_age) = {
            let core = self.inner.core.lock();
            (
                core.config().change_window,
                core.config().closed_incident_memory_age,
                core.config().expired_silence_age,
            )
        };
        // Silences that ended longer ago than the retention are not loaded; the first
        // sweep deletes their records.
        let silences_ended_before = Self::silence_cutoff(now, silence_age);
        let (silences, unloaded): (Vec<_>, Vec<_>) = silences
            .into_iter()
            .partition(|(_, s)| s.ends_at >= silences_ended_before);
        let unloaded: Vec<String> = unloaded.into_iter().map(|(k, _)| k).collect();
        let since = crate::incident::audit::time_key(
            now.checked_sub(crate::duration::signed(window))
                .unwrap_or(Timestamp::UNIX_EPOCH),
        );
        let changes: Vec<(String, ChangeEvent)> = store
            .scan_json(
                Table::Changes,
                Scan {
                    after: Some(since),
                    ..Scan::all()
                },
            )
            .await?;
        let mut incidents = self.scan_incidents(now, age).await?;
        let armed = {
            let mut core = self.inner.core.lock();
            if reset {
                core.reset();
            }
            for (_, g) in groups {
                core.load_group(g);
            }
            for (_, a) in alerts {
                core.load_alert(a);
            }
            for i in std::mem::take(&mut incidents.load) {
                core.load_incident(i);
            }
            for i in incidents.counted() {
                core.count_stored_incident(i);
            }
            for (_, s) in silences {
                core.load_silence(s);
            }
            for (_, s) in services {
                core.load_service(s);
            }
            for (_, c) in changes {
                core.remember_change(c);
            }
            core.bump_seq(u64::try_from(now.as_millisecond()).unwrap_or(0));
            self.inner.next_eviction_ms.store(
                Self::eviction_due_ms(core.earliest_closed_at(), age),
                std::sync::atomic::Ordering::Release,
            );
            let silence_due = if unloaded.is_empty() {
                Self::silence_gc_due_ms(core.silences().earliest_end(), silence_age)
            } else {
                now.as_millisecond()
            };
            *self.inner.unloaded_silences.lock() = unloaded;
            self.inner
                .next_silence_gc_ms
                .store(silence_due, std::sync::atomic::Ordering::Release);
            core.armed_flushes()
        };
        if incidents.left_out {
            self.inner
                .evicted_any
                .store(true, std::sync::atomic::Ordering::Release);
        }
        for (key, due) in armed {
            let job = super::core::flush_job(&key, due);
            if self.inner.memory_flushes {
                self.inner.flushes.schedule(job).await?;
            } else {
                self.inner.scheduler.schedule(job).await?;
            }
        }
        Ok(())
    }

    /// Reads the stored incidents a page at a time and keeps those to load: every one
    /// except those closed longer than `age` before `now`, which stay in the Store
    /// only. Of those, only what moves the core's counters is kept (see
    /// [`StoredIncidents`]).
    async fn scan_incidents(
        &self,
        now: Timestamp,
        age: Duration,
    ) -> Result<StoredIncidents, CoreError> {
        const PAGE: usize = 1024;
        let closed_before = now
            .checked_sub(crate::duration::signed(age))
            .unwrap_or(Timestamp::MIN);
        let mut out = StoredIncidents::default();
        let mut after: Option<String> = None;
        loop {
            let page: Vec<(String, Incident)> = self
                .inner
                .store
                .scan_json(
                    Table::Incidents,
                    Scan {
                        after: after.take(),
                        limit: PAGE,
                        ..Scan::all()
                    },
                )
                .await?;
            let full = page.len() == PAGE;
            after = page.last().map(|(k, _)| k.clone());
            for (_, i) in page {
                if i.state == IncidentState::Closed
                    && i.closed_at.is_some_and(|t| t <= closed_before)
                {
                    out.leave_out(i);
                } else {
                    out.load.push(i);
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// When an incident closed at `closed_at` is due to leave memory (ms; `i64::MAX`
    /// for none).
    fn eviction_due_ms(closed_at: Option<Timestamp>, age: Duration) -> i64 {
        closed_at.map_or(i64::MAX, |t| {
            t.checked_add(crate::duration::signed(age))
                .unwrap_or(Timestamp::MAX)
                .as_millisecond()
        })
    }

    /// How long a closed incident stays in memory
    /// ([`EngineConfig::closed_incident_memory_age`]).
    fn closed_memory_age(&self) -> Duration {
        self.inner.core.lock().config().closed_incident_memory_age
    }

    /// Notes that an incident in memory is closed since `closed_at`: the next eviction
    /// is due no later than `closed_at` + the memory age (wakes the run loop).
    fn note_closed(&self, closed_at: Timestamp) {
        let due = Self::eviction_due_ms(Some(closed_at), self.closed_memory_age());
        self.inner
            .next_eviction_ms
            .fetch_min(due, std::sync::atomic::Ordering::AcqRel);
        if let Ok(t) = Timestamp::from_millisecond(due) {
            self.wake_before(t);
        }
    }

    /// Runs [`Engine::evict_closed_incidents`] when an eviction is due on the clock,
    /// and [`Engine::remove_expired_silences`] when a silence is due to go.
    async fn evict_if_due(&self) {
        use std::sync::atomic::Ordering;
        let is_due = |due: i64| due != i64::MAX && self.now().as_millisecond() >= due;
        if is_due(self.inner.next_eviction_ms.load(Ordering::Acquire)) {
            self.evict_closed_incidents().await;
        }
        if is_due(self.inner.next_silence_gc_ms.load(Ordering::Acquire)) {
            // A failure is retried a second later (see the method).
            let _ = self.remove_expired_silences().await;
        }
    }

    /// Silences that ended strictly before this go at `now`.
    fn silence_cutoff(now: Timestamp, age: Duration) -> Timestamp {
        now.checked_sub(crate::duration::signed(age))
            .unwrap_or(Timestamp::MIN)
    }

    /// When a silence that ends at `ends_at` is due to go (ms; `i64::MAX` for none):
    /// the first millisecond after `ends_at` + the age (it is listed until exactly then).
    fn silence_gc_due_ms(ends_at: Option<Timestamp>, age: Duration) -> i64 {
        ends_at.map_or(i64::MAX, |t| {
            t.checked_add(crate::duration::signed(age))
                .unwrap_or(Timestamp::MAX)
                .as_millisecond()
                .saturating_add(1)
        })
    }

    /// Notes a silence in memory ending at `ends_at`: the next silence sweep is due no
    /// later than `ends_at` + [`EngineConfig::expired_silence_age`] (wakes the run
    /// loop).
    fn note_silence_end(&self, ends_at: Timestamp) {
        let age = self.inner.core.lock().config().expired_silence_age;
        let due = Self::silence_gc_due_ms(Some(ends_at), age);
        self.inner
            .next_silence_gc_ms
            .fetch_min(due, std::sync::atomic::Ordering::AcqRel);
        if let Ok(t) = Timestamp::from_millisecond(due) {
            self.wake_before(t);
        }
    }

    /// Removes from memory every silence that ended longer ago than
    /// [`EngineConfig::expired_silence_age`] and deletes its stored record, together
    /// with the records of silences the last load left out (one delete each, committed
    /// as one batch through the normal decision path, after every batch decided before
    /// it); returns how many records were deleted. The run loop calls it when one is
    /// due (Alertmanager's silence garbage collection). On a failed commit nothing is
    /// lost (the core is rebuilt from the Store) and the sweep is retried a second
    /// later.
    pub async fn remove_expired_silences(&self) -> Result<usize, CoreError> {
        use std::sync::atomic::Ordering;
        let inner = &self.inner;
        let result = self
            .mutate(|core, now, out| {
                let age = core.config().expired_silence_age;
                let mut n = core.remove_expired_silences(Self::silence_cutoff(now, age), out);
                for key in std::mem::take(&mut *inner.unloaded_silences.lock()) {
                    out.push(Effect::Write(WriteOp::Delete {
                        table: Table::Silences,
                        key,
                    }));
                    n += 1;
                }
                // Under the core lock: a silence put meanwhile notes itself after this.
                inner.next_silence_gc_ms.store(
                    Self::silence_gc_due_ms(core.silences().earliest_end(), age),
                    Ordering::Release,
                );
                Ok(n)
            })
            .await;
        match result {
            Ok((n, _)) => Ok(n),
            Err(e) => {
                let later = self.now().as_millisecond().saturating_add(1_000);
                inner.next_silence_gc_ms.store(later, Ordering::Release);
                Err(e)
            }
        }
    }

    /// Drops from memory every incident closed longer ago than
    /// [`EngineConfig::closed_incident_memory_age`] (the run loop calls it when one is
    /// due); returns how many left. They stay in the Store, and every read answers
    /// for them from there ([`Engine::fetch_incident`], [`Engine::fetch_incidents`],
    /// [`Engine::timeline`], [`Engine::incident_alerts`]); an action on one loads it
    /// back for the action.
    ///
    /// Waits for every decided batch to commit (an evicted incident's stored record is
    /// its last state). While an incident action is running, or after a failed commit
    /// (the core is rebuilt from the Store by the next decision), it evicts nothing
    /// and the sweep is retried a second later.
    pub async fn evict_closed_incidents(&self) -> usize {
        use std::sync::atomic::Ordering;
        // Not `fetch_min`: a due time in the past would keep the run loop spinning
        // until the action ends. The sweep recomputes what is due when it runs.
        let retry = |engine: &Engine| {
            let later = engine.now().as_millisecond().saturating_add(1_000);
            engine
                .inner
                .next_eviction_ms
                .store(later, Ordering::Release);
        };
        if self.inner.acts_in_flight.load(Ordering::Acquire) > 0 {
            retry(self);
            return 0;
        }
        let _w = self.inner.write.lock().await;
        let _order = self.inner.commit_order.lock().await;
        if self.inner.stale.load(Ordering::SeqCst)
            || self.inner.acts_in_flight.load(Ordering::Acquire) > 0
        {
            retry(self);
            return 0;
        }
        let now = self.now();
        let mut core = self.inner.core.lock();
        let age = core.config().closed_incident_memory_age;
        let closed_before = now
            .checked_sub(crate::duration::signed(age))
            .unwrap_or(Timestamp::MIN);
        let gone = core.evict_closed_incidents(closed_before).len();
        // Under the core lock: a close decided meanwhile notes itself after this.
        self.inner.next_eviction_ms.store(
            Self::eviction_due_ms(core.earliest_closed_at(), age),
            Ordering::Release,
        );
        if gone > 0 {
            self.inner.evicted_any.store(true, Ordering::Release);
        }
        gone
    }

    // ----- incidents ----------------------------------------------------------------

    /// Incidents in memory matching a filter, newest first: every incident that is
    /// not closed, and closed ones until they are evicted
    /// ([`Engine::evict_closed_incidents`]). [`Engine::fetch_incidents`] lists the
    /// evicted ones too.
    pub fn list_incidents(&self, filter: &IncidentFilter) -> Page<Incident> {
        self.inner.core.lock().list_incidents(filter)
    }

    /// Incidents matching a filter, newest first, paged by id cursor (as
    /// [`EngineCore::list_incidents`]), closed incidents evicted from memory included:
    /// they are read from the Store, and the page, its order and its `next` cursor are
    /// what [`Engine::list_incidents`] returned before they were evicted.
    pub async fn fetch_incidents(
        &self,
        filter: &IncidentFilter,
    ) -> Result<Page<Incident>, CoreError> {
        const CHUNK: usize = 256;
        let mem = self.list_incidents(filter);
        let only_active =
            !filter.states.is_empty() && !filter.states.contains(&IncidentState::Closed);
        if only_active
            || !self
                .inner
                .evicted_any
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(mem);
        }
        let size = filter.page_size();
        // `mem` holds the first `size` matches in memory; with more in memory, no
        // stored incident below its last one can make this page.
        let mem_more = mem.next.is_some();
        let floor = if mem_more {
            mem.items.last().map(|i| i.id.clone())
        } else {
            None
        };
        let mut stored: Vec<Incident> = Vec::new();
        let mut after = filter.before.clone();
        'scan: loop {
            let rows: Vec<(String, Incident)> = self
                .inner
                .store
                .scan_json(
                    Table::Incidents,
                    Scan {
                        after: after.take(),
                        limit: CHUNK,
                        reverse: true,
                        ..Scan::all()
                    },
                )
                .await?;
            let full = rows.len() == CHUNK;
            after = rows.last().map(|(k, _)| k.clone());
            let core = self.inner.core.lock();
            for (key, i) in rows {
                if floor.as_ref().is_some_and(|f| key < *f) {
                    break 'scan;
                }
                if core.incident(&key).is_none() && filter.matches(&i) {
                    stored.push(i);
                    if stored.len() > size {
                        break 'scan;
                    }
                }
            }
            if !full {
                break;
            }
        }
        let mut items = mem.items;
        items.extend(stored);
        items.sort_by(|a, b| b.id.cmp(&a.id));
        let next = if items.len() > size || mem_more {
            items.truncate(size);
            items.last().map(|i| i.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// One incident by id or number, from memory or, once evicted
    /// ([`Engine::evict_closed_incidents`]), from the Store: the same record either way.
    pub async fn fetch_incident(&self, id: &str) -> Result<Incident, CoreError> {
        if let Ok(i) = self.get_incident(id) {
            return Ok(i);
        }
        let store = &self.inner.store;
        if let Some(i) = store.get_json::<Incident>(Table::Incidents, id).await? {
            return Ok(i);
        }
        if let Ok(n) = id.parse::<u64>()
            && let Some(i) = store
                .get_json::<Incident>(Table::Incidents, &Incident::id_for(n))
                .await?
        {
            return Ok(i);
        }
        Err(CoreError::NotFound {
            kind: "incident",
            id: id.into(),
        })
    }

    /// One incident in memory by id or number (every incident that is not closed, and
    /// closed ones until they are evicted); [`Engine::fetch_incident`] also finds the
    /// evicted ones.
    pub fn get_incident(&self, id: &str) -> Result<Incident, CoreError> {
        self.inner
            .core
            .lock()
            .incident(id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound {
                kind: "incident",
                id: id.into(),
            })
    }

    /// An incident's timeline, oldest first (evicted incidents included).
    pub async fn timeline(&self, id: &str) -> Result<Vec<TimelineEntry>, CoreError> {
        let inc = self.fetch_incident(id).await?;
        let rows = self
            .inner
            .store
            .scan(Table::Timeline, Scan::prefix(format!("{}/", inc.id)))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            out.extend(
                crate::incident::timeline::decode_stored(&value)
                    .map_err(|e| crate::store::StoreError::Codec(format!("timeline/{key}: {e}")))?,
            );
        }
        Ok(out)
    }

    /// An incident's alerts (from memory while active, else from the Store), evicted
    /// incidents included.
    pub async fn incident_alerts(&self, id: &str) -> Result<Vec<AlertRecord>, CoreError> {
        let inc = self.fetch_incident(id).await?;
        // As `EngineCore::incident_alerts`, which needs the incident in memory.
        let mut found: Vec<AlertRecord> = {
            let core = self.inner.core.lock();
            inc.alerts
                .iter()
                .filter_map(|fp| core.alert_record(*fp))
                .collect()
        };
        for fp in &inc.alerts {
            if !found.iter().any(|a| a.fingerprint == *fp)
                && let Some(a) = self
                    .inner
                    .store
                    .get_json::<AlertRecord>(Table::Alerts, &fp.to_string())
                    .await?
            {
                found.push(a);
            }
        }
        Ok(found)
    }

    /// Applies an action to an incident; one evicted from memory is loaded back for it
    /// (and leaves again at the next sweep).
    async fn act(
        &self,
        id: &str,
        action: IncidentAction,
        actor: Actor,
    ) -> Result<Incident, CoreError> {
        use std::sync::atomic::Ordering;
        /// Counts the action in `acts_in_flight` until it ends (or is dropped).
        struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.inner.acts_in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(&self.inner.acts_in_flight);
        let inc = self.fetch_incident(id).await?;
        let id = inc.id.clone();
        let was_closed = inc.closed_at.filter(|_| inc.state == IncidentState::Closed);
        let result = self
            .mutate(|core, now, out| {
                if core.incident(&id).is_none() {
                    core.load_incident(inc);
                }
                core.act(&id, action, actor, now, out)
            })
            .await
            .map(|r| r.0);
        let closed = match &result {
            Ok(r) if r.state == IncidentState::Closed => r.closed_at,
            _ => was_closed,
        };
        if let Some(t) = closed {
            self.note_closed(t);
        }
        result
    }

    /// open → acknowledged (stops escalation).
    pub async fn acknowledge(&self, id: &str, actor: Actor) -> Result<Incident, CoreError> {
        self.act(id, IncidentAction::Acknowledge, actor).await
    }
    /// → mitigated.
    pub async fn mitigate(&self, id: &str, actor: Actor) -> Result<Incident, CoreError> {
        self.act(id, IncidentAction::Mitigate, actor).await
    }
    /// → resolved.
    pub async fn resolve(&self, id: &str, actor: Actor) -> Result<Incident, CoreError> {
        self.act(id, IncidentAction::Resolve, actor).await
    }
    /// resolved → closed.
    pub async fn close(&self, id: &str, actor: Actor) -> Result<Incident, CoreError> {
        self.act(id, IncidentAction::Close, actor).await
    }
    /// Changes escalation policy and direct assignees (restarts paging when open).
    pub async fn reassign(
        &self,
        id: &str,
        actor: Actor,
        escalation_policy: Option<String>,
        assignees: Vec<String>,
    ) -> Result<Incident, CoreError> {
        self.act(
            id,
            IncidentAction::Reassign {
                escalation_policy,
                assignees,
            },
            actor,
        )
        .await
    }
    /// Adds a note.
    pub async fn add_note(
        &self,
        id: &str,
        actor: Actor,
        text: impl Into<String>,
    ) -> Result<Incident, CoreError> {
        self.act(id, IncidentAction::Note(text.into()), actor).await
    }
    /// Assigns a role to a user.
    pub async fn assign_role(
        &self,
        id: &str,
        actor: Actor,
        role: Role,
        user: impl Into<String>,
    ) -> Result<Incident, CoreError> {
        self.act(id, IncidentAction::AssignRole(role, user.into()), actor)
            .await
    }
    /// Pages a user now (through the escalation hook).
    pub async fn page_user(
        &self,
        id: &str,
        actor: Actor,
        user: impl Into<String>,
        message: Option<String>,
    ) -> Result<Incident, CoreError> {
        self.act(
            id,
            IncidentAction::PageUser {
                user: user.into(),
                message,
            },
            actor,
        )
        .await
    }
    /// Escalate now: the incident's escalation moves to its policy's next level
    /// immediately, through the escalation hook, which pages that level and records an
    /// `escalated` timeline entry (with an audit entry) by `actor`.
    pub async fn escalate_now(&self, id: &str, actor: Actor) -> Result<Incident, CoreError> {
        let id = self.fetch_incident(id).await?.id;
        self.inner
            .escalation
            .escalate_now(self, &id, &actor)
            .await?;
        self.get_incident(&id)
    }

    /// Appends an entry to an incident's timeline (postmortem created, remediation run,
    /// escalation progress …) with an audit entry.
    pub async fn record_entry(
        &self,
        id: &str,
        actor: Actor,
        kind: EntryKind,
    ) -> Result<Incident, CoreError> {
        self.act(id, IncidentAction::Record(kind), actor).await
    }

    /// Change events for the incident's service within `window` (default: configured
    /// change window), newest first.
    pub fn recent_changes(
        &self,
        incident_id: &str,
        window: Option<Duration>,
    ) -> Result<Vec<ChangeEvent>, CoreError> {
        let now = self.now();
        self.inner
            .core
            .lock()
            .recent_changes(incident_id, window, now)
    }

    /// [`Engine::recent_changes`] for an incident given whole, e.g. one from
    /// [`Engine::fetch_incident`] that was evicted from memory.
    pub fn recent_changes_of(
        &self,
        incident: &Incident,
        window: Option<Duration>,
    ) -> Vec<ChangeEvent> {
        let now = self.now();
        self.inner
            .core
            .lock()
            .recent_changes_of(incident, window, now)
    }

    // ----- silences -----------------------------------------------------------------

    /// Creates (no `id`) or updates (with `id`) a silence.
    pub async fn put_silence(&self, spec: SilenceSpec, actor: Actor) -> Result<Silence, CoreError> {
        let s = self
            .mutate(|core, now, out| core.put_silence(&spec, actor, now, out))
            .await?
            .0;
        self.note_silence_end(s.ends_at);
        Ok(s)
    }

    /// Expires a silence now.
    pub async fn expire_silence(&self, id: &str, actor: Actor) -> Result<Silence, CoreError> {
        let s = self
            .mutate(|core, now, out| core.expire_silence(id, actor, now, out))
            .await?
            .0;
        self.note_silence_end(s.ends_at);
        Ok(s)
    }

    /// Silences in a state (all when `None`), newest first.
    pub fn list_silences(&self, state: Option<SilenceState>) -> Vec<Silence> {
        let now = self.now();
        self.inner.core.lock().silences().list(state, now)
    }

    /// One silence.
    pub fn get_silence(&self, id: &str) -> Result<Silence, CoreError> {
        self.inner
            .core
            .lock()
            .silences()
            .get(id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound {
                kind: "silence",
                id: id.into(),
            })
    }

    // ----- services -----------------------------------------------------------------

    /// Creates or replaces a service.
    pub async fn put_service(&self, s: Service, actor: Actor) -> Result<Service, CoreError> {
        Ok(self
            .mutate(|core, now, out| core.put_service(s, actor, now, out))
            .await?
            .0)
    }

    /// Deletes a service.
    pub async fn delete_service(&self, id: &str, actor: Actor) -> Result<(), CoreError> {
        self.mutate(|core, now, out| core.delete_service(id, actor, now, out))
            .await?;
        Ok(())
    }

    /// Every service, by id.
    pub fn list_services(&self) -> Vec<Service> {
        self.inner
            .core
            .lock()
            .services()
            .values()
            .cloned()
            .collect()
    }

    /// One service.
    pub fn get_service(&self, id: &str) -> Result<Service, CoreError> {
        self.inner
            .core
            .lock()
            .services()
            .get(id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound {
                kind: "service",
                id: id.into(),
            })
    }

    // ----- audit --------------------------------------------------------------------

    /// Audit entries matching the query, newest first.
    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, CoreError> {
        let limit = if q.limit == 0 { 100 } else { q.limit };
        let rows: Vec<(String, AuditEntry)> = self
            .inner
            .store
            .scan_json(
                Table::Audit,
                Scan {
                    reverse: true,
                    ..Scan::all()
                },
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| q.matches(e))
            .take(limit)
            .collect())
    }

    /// Appends an audit entry for a write done outside the engine (on-call config,
    /// integrations, tokens) so every write is audited in one place.
    pub async fn audit_write(
        &self,
        actor: Actor,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> Result<(), CoreError> {
        let now = self.now();
        let seq = self
            .inner
            .ext_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let e = AuditEntry {
            id: format!("{}-ext{seq}", crate::incident::audit::time_key(now)),
            at: now,
            actor,
            action: action.into(),
            target: target.into(),
            details,
        };
        let mut b = WriteBatch::new();
        b.put(Table::Audit, e.key(), &e)?;
        self.inner.store.commit(b).await?;
        Ok(())
    }

    /// Direct access to the pure core (read-only inspection, tests, benches).
    pub fn with_core<T>(&self, f: impl FnOnce(&EngineCore) -> T) -> T {
        f(&self.inner.core.lock())
    }

    /// The core under its lock, for decisions that need no commit (the journaled
    /// path's re-sends); `None` while the core is stale (a commit failed and the core
    /// holds decisions the store does not).
    pub(super) fn with_core_mut<T>(&self, f: impl FnOnce(&mut EngineCore) -> T) -> Option<T> {
        let mut core = self.inner.core.lock();
        if self.inner.stale.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        Some(f(&mut core))
    }

    /// Raw write for embedders extending the engine (e.g. the store's retention jobs).
    pub async fn commit_raw(&self, ops: Vec<WriteOp>) -> Result<(), CoreError> {
        self.inner.store.commit(WriteBatch { ops }).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Channel, Delivered, DeliveryError};
    use crate::clock::ManualClock;
    use crate::engine::ChannelNotifier;

    #[derive(Default)]
    struct Rec(Mutex<Vec<Notification>>);

    #[async_trait::async_trait]
    impl Channel for Rec {
        fn kind(&self) -> &str {
            "test"
        }
        fn name(&self) -> &str {
            "rec"
        }
        async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
            self.0.lock().push(n.clone());
            Ok(Delivered::default())
        }
    }

    fn at_ms(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).expect("time")
    }

    use crate::testing::fixtures::firing_alert as alert;

    fn rig(hold: Duration) -> (Engine, ManualClock, Arc<Rec>) {
        rig_with(|b| b.in_memory_flush_timers(true).renotify_yield(hold))
    }

    /// An engine on a manual clock (group_wait = group_interval = 1 s) notifying a
    /// recording channel, with `tweak` applied to its builder.
    fn rig_with(
        tweak: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> (Engine, ManualClock, Arc<Rec>) {
        let cfg: EngineConfig = serde_json::from_value(serde_json::json!({"route": {
            "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
            "repeat_interval": "4h", "notify": [{"channel": "rec", "target": "#ops"}]
        }}))
        .expect("config");
        let clock = ManualClock::new(at_ms(0));
        let rec = Arc::new(Rec::default());
        let builder = Engine::builder(cfg)
            .clock(Arc::new(clock.clone()))
            .notifier(Arc::new(ChannelNotifier::new().with("rec", rec.clone())));
        let engine = tweak(builder).build().expect("engine");
        (engine, clock, rec)
    }

    fn sent(rec: &Rec) -> Vec<(String, usize)> {
        rec.0
            .lock()
            .iter()
            .map(|n| {
                let name = n
                    .group_labels
                    .get("alertname")
                    .unwrap_or_default()
                    .to_owned();
                (name, n.alerts.len())
            })
            .collect()
    }

    /// Several groups flushed in one round: each is notified once, and each
    /// incident's first-notification entries (one per member alert, grouped, routed,
    /// notified) are stored as one record and read back complete and gapless; a later
    /// lone entry gets a record of its own after them.
    #[tokio::test]
    async fn a_flush_rounds_timeline_runs_are_one_record_per_incident_and_read_back_whole() {
        let (engine, clock, rec) = rig(Duration::ZERO);
        engine
            .ingest(vec![
                alert("A", "1"),
                alert("A", "2"),
                alert("A", "3"),
                alert("B", "1"),
            ])
            .await
            .unwrap();
        clock.set(at_ms(1_000));
        assert_eq!(
            engine.run_due_jobs().await.unwrap(),
            2,
            "one round, two groups"
        );
        let mut got = sent(&rec);
        got.sort();
        assert_eq!(
            got,
            vec![("A".into(), 3), ("B".into(), 1)],
            "each group once"
        );
        let store = engine.store().clone();
        let page = engine.list_incidents(&IncidentFilter::default());
        assert_eq!(page.items.len(), 2);
        for inc in &page.items {
            let rows = store
                .scan(Table::Timeline, Scan::prefix(format!("{}/", inc.id)))
                .await
                .unwrap();
            assert_eq!(rows.len(), 1, "one record for the run of {}", inc.id);
            let tl = engine.timeline(&inc.id).await.unwrap();
            let members = inc.alerts.len();
            let kinds: Vec<&str> = tl.iter().map(|e| e.kind.type_name()).collect();
            let mut want = vec!["ingested"; members];
            want.extend(["grouped", "routed", "notified"]);
            assert_eq!(kinds, want, "{}", inc.id);
            let seqs: Vec<u64> = tl.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (0..tl.len() as u64).collect::<Vec<_>>());
        }
        let a = page
            .items
            .iter()
            .find(|i| i.alerts.len() == 3)
            .expect("incident of A");
        engine
            .acknowledge(&a.id, Actor::user("alice"))
            .await
            .unwrap();
        let rows = store
            .scan(Table::Timeline, Scan::prefix(format!("{}/", a.id)))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        let tl = engine.timeline(&a.id).await.unwrap();
        assert_eq!(tl.len(), 7);
        assert_eq!(tl[6].seq, 6);
        assert_eq!(tl[6].kind.type_name(), "acknowledged");
    }

    /// While ingest keeps arriving, a due re-notification is held and then folds the
    /// later changes in; a new group's first notification is not held; once ingest
    /// is quiet the held flush runs.
    #[tokio::test]
    async fn renotifications_yield_to_busy_ingest_first_notifications_do_not() {
        let (engine, clock, rec) = rig(Duration::from_secs(5));
        engine.ingest(vec![alert("Down", "1")]).await.unwrap();
        clock.set(at_ms(1_000));
        engine.run_due_jobs().await.unwrap();
        assert_eq!(
            sent(&rec),
            vec![("Down".to_string(), 1)],
            "first flush on time"
        );

        // A second member joins (re-notification due at 2 s) and a new group starts
        // (first notification due at 2.9 s).
        engine.ingest(vec![alert("Down", "2")]).await.unwrap();
        clock.set(at_ms(1_900));
        engine.ingest(vec![alert("Up", "1")]).await.unwrap();
        clock.set(at_ms(1_950));
        engine.ingest(vec![alert("Down", "3")]).await.unwrap();
        clock.set(at_ms(2_000));
        engine.run_due_jobs().await.unwrap();
        assert_eq!(
            sent(&rec).len(),
            1,
            "re-notification held while ingest is busy"
        );
        assert_eq!(engine.held_renotifications(), 1);
        // The loop wakes when ingest turns quiet (1.95 s + the busy window).
        assert_eq!(engine.next_wakeup().await.unwrap(), Some(at_ms(2_050)));

        // Ingest keeps going; the new group's first notification still runs on time.
        clock.set(at_ms(2_880));
        engine.ingest(vec![alert("Other", "1")]).await.unwrap();
        clock.set(at_ms(2_900));
        engine.run_due_jobs().await.unwrap();
        assert_eq!(
            sent(&rec),
            vec![("Down".to_string(), 1), ("Up".to_string(), 1)],
            "a first notification is never held"
        );
        assert_eq!(engine.held_renotifications(), 1);

        // Quiet (no ingest for the busy window): the held flush runs with every change.
        clock.set(at_ms(2_980));
        engine.run_due_jobs().await.unwrap();
        assert_eq!(engine.held_renotifications(), 0);
        assert_eq!(
            sent(&rec)[2],
            ("Down".to_string(), 3),
            "one notification, all members"
        );
        assert_eq!(sent(&rec).len(), 3);
    }

    /// A notified group whose last alert resolves is told at once (resolve_wait 0)
    /// even while ingest is busy: a resolved notification is never held.
    #[tokio::test]
    async fn a_resolved_notification_is_not_held_by_busy_ingest() {
        let (engine, clock, rec) = rig(Duration::from_secs(5));
        engine.ingest(vec![alert("Down", "1")]).await.unwrap();
        clock.set(at_ms(1_000));
        engine.run_due_jobs().await.unwrap();
        assert_eq!(sent(&rec).len(), 1);
        let Event::Alert(mut resolved) = alert("Down", "1") else {
            panic!("an alert event")
        };
        resolved.status = crate::model::AlertStatus::Resolved;
        clock.set(at_ms(1_400));
        engine.ingest(vec![Event::Alert(resolved)]).await.unwrap();
        clock.set(at_ms(1_450));
        engine.ingest(vec![alert("Noise", "1")]).await.unwrap();
        engine.run_due_jobs().await.unwrap();
        assert_eq!(engine.held_renotifications(), 0);
        let n = rec.0.lock();
        assert_eq!(n.len(), 2, "the resolve went out while ingest was busy");
        assert_eq!(n[1].status, crate::model::AlertStatus::Resolved);
    }

    /// With compaction on, the record an alert retires with still holds the raw
    /// payload of its last version (the resolve's), taken over from the stored record,
    /// although memory released it; the notifications are unchanged.
    #[tokio::test]
    async fn compacted_alerts_retire_with_their_stored_raw_payload() {
        let (engine, clock, rec) = rig_with(|b| b.compact_alerts(true));
        let with_raw = |status, v: u32| {
            let Event::Alert(mut a) = alert("Down", "1") else {
                panic!("an alert event")
            };
            a.status = status;
            a.raw = crate::model::RawPayload::from_value(&serde_json::json!({ "v": v }));
            a
        };
        let firing = with_raw(crate::model::AlertStatus::Firing, 1);
        let fp = firing.fingerprint();
        engine.ingest(vec![Event::Alert(firing)]).await.unwrap();
        clock.set(at_ms(1_000));
        engine.run_due_jobs().await.unwrap();
        let resolved = with_raw(crate::model::AlertStatus::Resolved, 2);
        clock.set(at_ms(1_400));
        engine.ingest(vec![Event::Alert(resolved)]).await.unwrap();
        engine.run_due_jobs().await.unwrap();

        let n = rec.0.lock().clone();
        assert_eq!(n.len(), 2);
        assert_eq!(n[1].status, crate::model::AlertStatus::Resolved);
        let stored = engine
            .store()
            .get_json::<AlertRecord>(Table::Alerts, &fp.to_string())
            .await
            .unwrap()
            .expect("alert record");
        assert!(stored.groups.is_empty(), "retired: {stored:?}");
        assert!(!stored.payload_elided);
        assert_eq!(
            serde_json::to_value(&stored.alert.raw).unwrap(),
            serde_json::json!({"v": 2})
        );
    }

    /// Under ingest that never pauses, a held re-notification runs once its hold is over.
    #[tokio::test]
    async fn a_held_renotification_runs_when_its_hold_is_over() {
        let (engine, clock, rec) = rig(Duration::from_millis(1_500));
        engine.ingest(vec![alert("Down", "1")]).await.unwrap();
        clock.set(at_ms(1_000));
        engine.run_due_jobs().await.unwrap();
        engine.ingest(vec![alert("Down", "2")]).await.unwrap();
        let mut t = 1_000;
        let mut renotified_at = None;
        while t < 5_000 && renotified_at.is_none() {
            t += 50;
            clock.set(at_ms(t));
            engine
                .ingest(vec![alert("Noise", &t.to_string())])
                .await
                .unwrap();
            engine.run_due_jobs().await.unwrap();
            if rec.0.lock().iter().any(|n| n.alerts.len() == 2) {
                renotified_at = Some(t);
            }
        }
        // Due at 2 s, held for at most 1.5 s.
        assert_eq!(renotified_at, Some(3_500));
    }

    /// More held re-notifications than one flush round takes are all released once
    /// ingest is quiet (in rounds of at most [`FLUSH_BATCH`]), by one call.
    #[tokio::test]
    async fn held_renotifications_beyond_one_round_are_all_released() {
        let (engine, clock, rec) = rig(Duration::from_secs(5));
        let groups = FLUSH_BATCH + 100;
        let names: Vec<String> = (0..groups).map(|g| format!("G{g}")).collect();
        engine
            .ingest(names.iter().map(|n| alert(n, "1")).collect())
            .await
            .unwrap();
        clock.set(at_ms(1_000));
        engine.run_due_jobs().await.unwrap();
        assert_eq!(rec.0.lock().len(), groups);
        engine
            .ingest(names.iter().map(|n| alert(n, "2")).collect())
            .await
            .unwrap();
        clock.set(at_ms(1_950));
        engine.ingest(vec![alert("Busy", "1")]).await.unwrap();
        clock.set(at_ms(2_000));
        engine.run_due_jobs().await.unwrap();
        assert_eq!(engine.held_renotifications(), groups);
        clock.set(at_ms(2_100));
        engine.run_due_jobs().await.unwrap();
        assert_eq!(engine.held_renotifications(), 0);
        let sent = rec.0.lock();
        assert_eq!(sent.len(), 2 * groups);
        assert!(sent[groups..].iter().all(|n| n.alerts.len() == 2));
    }

    /// A notifier whose hand-overs wait at a gate.
    struct Gated {
        gate: tokio::sync::Semaphore,
    }

    #[async_trait::async_trait]
    impl Notifier for Gated {
        async fn notify(&self, _n: Notification) -> Result<(), CoreError> {
            let _ = self.gate.acquire().await;
            Ok(())
        }
    }

    /// With `ingest_waits_for_backlog`, ingest waits (bounded) while more
    /// notifications than the limit are being handed over, and goes on at once when
    /// the backlog is under it.
    #[tokio::test(start_paused = true)]
    async fn ingest_waits_while_the_notification_backlog_is_over_the_limit() {
        let cfg: EngineConfig = serde_json::from_value(serde_json::json!({"route": {
            "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1s",
            "notify": [{"channel": "rec", "target": "#ops"}]
        }}))
        .expect("config");
        let clock = ManualClock::new(at_ms(0));
        let gated = Arc::new(Gated {
            gate: tokio::sync::Semaphore::new(0),
        });
        let engine = Engine::builder(cfg)
            .clock(Arc::new(clock.clone()))
            .notifier(gated.clone())
            .in_memory_flush_timers(true)
            .ingest_waits_for_backlog(1)
            .build()
            .expect("engine");
        let start = tokio::time::Instant::now();
        engine
            .ingest(vec![alert("A", "1"), alert("B", "1")])
            .await
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "no backlog yet"
        );
        clock.set(at_ms(1_000));
        let runner = engine.clone();
        let flush = tokio::spawn(async move { runner.run_due_jobs().await });
        while engine.notification_backlog() < 2 {
            tokio::task::yield_now().await;
        }
        let start = tokio::time::Instant::now();
        engine.ingest(vec![alert("C", "1")]).await.unwrap();
        let waited = start.elapsed();
        assert!(
            waited >= BACKLOG_WAIT && waited < BACKLOG_WAIT + Duration::from_millis(50),
            "waited {waited:?}"
        );
        gated.gate.add_permits(10);
        flush.await.unwrap().unwrap();
        assert_eq!(engine.notification_backlog(), 0);
        let start = tokio::time::Instant::now();
        engine.ingest(vec![alert("D", "1")]).await.unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "backlog drained"
        );
    }

    /// Off by default: a due re-notification runs while ingest is busy.
    #[tokio::test]
    async fn without_renotify_yield_nothing_is_held() {
        let (engine, clock, rec) = rig(Duration::ZERO);
        engine.ingest(vec![alert("Down", "1")]).await.unwrap();
        clock.set(at_ms(1_000));
        engine.run_due_jobs().await.unwrap();
        engine.ingest(vec![alert("Down", "2")]).await.unwrap();
        clock.set(at_ms(1_990));
        engine.ingest(vec![alert("Down", "3")]).await.unwrap();
        clock.set(at_ms(2_000));
        engine.run_due_jobs().await.unwrap();
        assert_eq!(engine.held_renotifications(), 0);
        assert_eq!(
            sent(&rec),
            vec![("Down".to_string(), 1), ("Down".to_string(), 3)]
        );
    }
}
