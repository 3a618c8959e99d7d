//! [`DeliveryPipeline`]: runs the delivery policy (timeout ⊂ retry ⊂ throttle ⊂
//! failover) for one notification at a time against the configured channels,
//! writing every attempt to the notification log and every wait to the scheduler.
//!
//! Durability: every attempt is written to the log (with an in-flight marker)
//! before it starts, under the shared [watchdog](super::watchdog) job that
//! resumes attempts a crash interrupted; every later wait (retry backoff,
//! throttle slot, confirmation deadline) is a [`JobKind::Delivery`] job. Each job
//! id is unique (`delivery/{notification_id}/{seq}`) and the state remembers the
//! one job it expects, so a stale or duplicated job is a no-op and a crash at any
//! point resumes from the log. A notification id that was already accepted is
//! never sent again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::backoff::{Backoff, Jitter, RngJitter};
use super::config::DeliveryConfig;
use super::events::{DeliveryEvent, DeliverySink};
use super::health::HealthTracker;
use super::log::{DeliveryRecord, DeliveryState, DeliveryStatus, NotificationLog, ThrottleSlot};
use super::throttle::Throttle;
use super::watchdog::{self, Watchdog};
use crate::channel::{Channel, DeliveryContext, DeliveryError, Notification, RetryAction};
use crate::clock::Clock;
use crate::error::CoreError;
use crate::model::Severity;
use crate::scheduler::{Job, JobKind, Scheduler};
use crate::store::Store;

/// What `notify` / `run_job` left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A channel accepted it (and no confirmation is awaited).
    Sent {
        /// Channel instance that delivered.
        channel: String,
        /// Attempt number.
        attempt: u32,
        /// Provider message id.
        provider_message_id: Option<String>,
    },
    /// Waiting: a retry, a throttle slot or a delivery confirmation is scheduled.
    Pending {
        /// When the pipeline looks at it again.
        next_at: Timestamp,
    },
    /// Every step of the chain failed.
    Failed {
        /// The last (redacted) error.
        error: String,
    },
    /// The notification id was accepted before; nothing was sent again.
    AlreadyAccepted,
    /// Dropped on purpose (a resolved notification to a throttled contact method).
    Suppressed,
    /// A stale or foreign job: nothing to do.
    Ignored,
    /// A watchdog job ran: it resumed this many interrupted attempts.
    Swept {
        /// Notifications whose interrupted attempt was resumed.
        resumed: usize,
    },
    /// A periodic health-check job ran this many channels' checks (and armed the next round).
    HealthChecked {
        /// Channels checked.
        channels: usize,
    },
}

/// Id prefix of the periodic health-check jobs
/// ([`DeliveryPipeline::start_health_checks`]). Notification jobs start with
/// `delivery/`, watchdog jobs with `delivery-watchdog/`.
pub const HEALTH_JOB_PREFIX: &str = "delivery-health/";

/// A delivery status reported by a provider callback (e.g. Twilio's `MessageStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    /// Still on its way (queued/sending/sent/ringing/in-progress).
    InProgress,
    /// Reached the person (delivered, read, a completed call).
    Delivered,
    /// Did not reach the person (undelivered, failed, busy, no-answer, canceled).
    Failed {
        /// Provider's reason, e.g. `undelivered (30003)`.
        reason: String,
    },
}

/// The delivery policy, executed.
pub struct DeliveryPipeline {
    channels: HashMap<String, Arc<dyn Channel>>,
    config: DeliveryConfig,
    backoff: Backoff,
    log: NotificationLog,
    scheduler: Arc<dyn Scheduler>,
    clock: Arc<dyn Clock>,
    jitter: Arc<dyn Jitter>,
    health: HealthTracker,
    throttle: Throttle,
    sink: Option<Arc<dyn DeliverySink>>,
    /// Notification ids whose `notify` is running, so two concurrent calls with
    /// the same id (an engine retry racing the original) send once.
    in_flight: parking_lot::Mutex<std::collections::HashSet<String>>,
    /// The shared watchdog over every attempt in flight.
    watchdog: Watchdog,
    /// The one health-check job this process expects next (any other is stale),
    /// and the sequence its ids are numbered by.
    health_job: tokio::sync::Mutex<(Option<String>, u64)>,
}

/// Removes an id from the in-flight set when `notify` returns or is dropped.
struct InFlight<'a> {
    set: &'a parking_lot::Mutex<std::collections::HashSet<String>>,
    id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.id);
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// Hides URL paths, queries and credentials (webhook URLs carry their secret in
/// the path); other addresses are kept.
pub fn redact_address(address: &str) -> String {
    if let Some((scheme, rest)) = address.split_once("://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit('@').next().unwrap_or(host);
        format!("{scheme}://{host}/…")
    } else {
        address.to_string()
    }
}

/// What of a notification is in the log already (see [`DeliveryPipeline::save`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// Nothing: the first save writes the notification row too.
    No,
    /// The notification row and its state.
    Yes,
    /// The notification row and its outbox marker, written by the engine's decision
    /// batch ([`NotificationLog::record_accepted`]); no state yet. The first save
    /// writes the state and deletes the marker; until then the marker makes a restart
    /// deliver it again, so the first attempt needs no `sending` commit before it.
    Recorded,
}

fn job_id(notification_id: &str, seq: u32) -> String {
    format!("delivery/{notification_id}/{seq}")
}

fn severity_of(n: &Notification) -> Option<Severity> {
    n.incident
        .as_ref()
        .map(|i| i.severity)
        .or_else(|| n.alerts.iter().map(|a| a.severity).min())
}

impl DeliveryPipeline {
    /// Builds a pipeline. Fails with [`CoreError::InvalidConfig`] when the config is
    /// invalid, two channels share a name, or a chain names an unknown channel.
    pub fn new(
        config: DeliveryConfig,
        channels: Vec<Arc<dyn Channel>>,
        store: Arc<dyn Store>,
        scheduler: Arc<dyn Scheduler>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CoreError> {
        config.validate()?;
        let mut map = HashMap::new();
        for (i, c) in channels.into_iter().enumerate() {
            let name = c.name().to_string();
            if map.insert(name.clone(), c).is_some() {
                return Err(CoreError::config(
                    format!("channels[{i}].name"),
                    format!("duplicate channel name `{name}`"),
                ));
            }
        }
        config.validate_channels(|n| map.contains_key(n))?;
        Ok(DeliveryPipeline {
            backoff: Backoff::from_config(&config.retry)?,
            health: HealthTracker::new(config.health.clone()),
            throttle: Throttle::new(&config.throttle),
            channels: map,
            config,
            log: NotificationLog::new(store),
            scheduler,
            clock,
            jitter: Arc::new(RngJitter::from_os()),
            sink: None,
            in_flight: parking_lot::Mutex::new(std::collections::HashSet::new()),
            watchdog: Watchdog::new(),
            health_job: tokio::sync::Mutex::new((None, 0)),
        })
    }

    /// Replaces the random source of the backoff jitter (tests inject a fixed one).
    pub fn with_jitter(mut self, jitter: Arc<dyn Jitter>) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sends typed [`DeliveryEvent`]s to `sink`.
    pub fn with_sink(mut self, sink: Arc<dyn DeliverySink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The notification log.
    pub fn log(&self) -> &NotificationLog {
        &self.log
    }

    /// Delivery health.
    pub fn health(&self) -> &HealthTracker {
        &self.health
    }

    /// The configured channel instance called `name`.
    pub fn channel(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.channels.get(name)
    }

    fn emit(&self, e: DeliveryEvent) {
        if let Some(s) = &self.sink {
            s.emit(&e);
        }
    }

    /// Accepts a notification and runs its chain until it is sent, fails for good,
    /// or has to wait (the wait is a durable job). Idempotent by `n.id`.
    ///
    /// Errors: [`CoreError::InvalidInput`] when `n.receiver` names no channel and no
    /// chain; [`CoreError::Store`] when the log or the scheduler fails.
    pub async fn notify(&self, n: Notification) -> Result<DeliveryOutcome, CoreError> {
        self.accept(n, Stored::No).await
    }

    /// Accepts a notification the engine recorded with
    /// [`NotificationLog::record_accepted`] in a batch that is committed, and runs
    /// its chain like [`DeliveryPipeline::notify`]. The first attempt starts without
    /// a commit of its own (the recorded outbox marker brings the notification back
    /// after a crash, see [`DeliveryPipeline::recorded_pending`]); its outcome commit
    /// writes the state and deletes the marker. Idempotent by `n.id`.
    ///
    /// Errors: as [`DeliveryPipeline::notify`]; a notification naming no channel
    /// has its marker removed (retrying it after a restart cannot succeed).
    pub async fn notify_recorded(&self, n: Notification) -> Result<DeliveryOutcome, CoreError> {
        self.accept(n, Stored::Recorded).await
    }

    /// [`DeliveryPipeline::notify`] and [`DeliveryPipeline::notify_recorded`]: once per
    /// id (in this process and in the log), then the chain from its first step.
    async fn accept(&self, n: Notification, stored: Stored) -> Result<DeliveryOutcome, CoreError> {
        if !self.in_flight.lock().insert(n.id.clone()) {
            return Ok(DeliveryOutcome::AlreadyAccepted);
        }
        let _guard = InFlight {
            set: &self.in_flight,
            id: n.id.clone(),
        };
        if self.log.state(&n.id).await?.is_some() {
            return Ok(DeliveryOutcome::AlreadyAccepted);
        }
        let state = match self.initial_state(n) {
            Ok(s) => s,
            Err((id, e)) => {
                if stored == Stored::Recorded {
                    self.log.clear_outbox(&id).await?;
                }
                return Err(e);
            }
        };
        self.drive(state, stored).await
    }

    /// Notifications recorded with [`NotificationLog::record_accepted`] whose
    /// delivery never recorded a state (a crash between the engine's commit and the
    /// first outcome): hand each to [`DeliveryPipeline::notify_recorded`] again.
    pub async fn recorded_pending(&self) -> Result<Vec<Notification>, CoreError> {
        Ok(self.log.recorded_pending().await?)
    }

    /// The state a newly accepted notification starts in; the error names the
    /// notification id when its receiver resolves to no channel.
    fn initial_state(&self, n: Notification) -> Result<DeliveryState, (String, CoreError)> {
        // The engine addresses a channel in the id (`<kind>/<channel>/<rest>`);
        // otherwise the receiver names the channel or chain.
        let key = crate::engine::channel_name(&n)
            .filter(|c| {
                self.channels.contains_key(*c)
                    || self.config.chains.iter().any(|ch| ch.receiver == *c)
            })
            .unwrap_or(&n.receiver)
            .to_string();
        let steps = self.config.chain_for(&key, severity_of(&n));
        if let Some(s) = steps
            .iter()
            .find(|s| !self.channels.contains_key(&s.channel))
        {
            return Err((
                n.id.clone(),
                CoreError::input(
                    "notification.receiver",
                    format!("no channel or failover chain named `{}`", s.channel),
                ),
            ));
        }
        Ok(DeliveryState {
            notification: n,
            steps,
            step: 0,
            tries_on_step: 0,
            attempt: 0,
            next_attempt: 1,
            awaiting_confirmation: None,
            finished: false,
            job_seq: 0,
            pending_job: None,
        })
    }

    /// Runs a due [`JobKind::Delivery`] job. Other kinds, unknown notifications,
    /// finished deliveries and stale jobs are ignored, so running a job twice is
    /// harmless. The caller completes the job afterwards.
    pub async fn run_job(&self, job: &Job) -> Result<DeliveryOutcome, CoreError> {
        if watchdog::is_watchdog_job(job) {
            return self.sweep(job).await;
        }
        if job.id.starts_with(HEALTH_JOB_PREFIX) {
            return self.health_job(job).await;
        }
        let JobKind::Delivery {
            notification_id,
            attempt,
        } = &job.kind
        else {
            return Ok(DeliveryOutcome::Ignored);
        };
        let Some(mut state) = self.log.state(notification_id).await? else {
            return Ok(DeliveryOutcome::Ignored);
        };
        if state.finished || state.pending_job.as_deref() != Some(job.id.as_str()) {
            return Ok(DeliveryOutcome::Ignored);
        }
        state.pending_job = None;
        if state.awaiting_confirmation == Some(*attempt) {
            return self.confirmation_deadline(state, *attempt).await;
        }
        self.drive(state, Stored::Yes).await
    }

    /// Claims and runs every due delivery job (for embedders without the engine's
    /// job loop, and for tests), completing each. Returns how many ran.
    ///
    /// Meant for a scheduler that only this pipeline uses: other jobs it claims are
    /// left uncompleted, so they come back when their 60 s lease expires. With the
    /// engine, let the engine's job loop call [`DeliveryPipeline::run_job`] instead.
    pub async fn run_due(&self) -> Result<usize, CoreError> {
        let now = self.clock.now();
        let jobs = self
            .scheduler
            .claim_due(now, Duration::from_secs(60), 1000)
            .await?;
        let mut n = 0;
        for job in jobs {
            if matches!(job.kind, JobKind::Delivery { .. }) {
                self.run_job(&job).await?;
                self.scheduler.complete(&job.id).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Applies a provider's delivery report (e.g. a Twilio status callback) to the
    /// attempt that produced `provider_message_id`. A failure while the pipeline
    /// awaits confirmation fails over at once. Returns `false` for unknown ids.
    pub async fn record_provider_status(
        &self,
        provider_message_id: &str,
        status: ProviderStatus,
    ) -> Result<bool, CoreError> {
        let Some((nid, attempt)) = self.log.by_provider_id(provider_message_id).await? else {
            return Ok(false);
        };
        let (Some(mut rec), Some(mut state)) = (
            self.log.record(&nid, attempt).await?,
            self.log.state(&nid).await?,
        ) else {
            return Ok(false);
        };
        let now = self.clock.now();
        match status {
            ProviderStatus::InProgress => return Ok(true),
            ProviderStatus::Delivered => {
                rec.status = DeliveryStatus::Delivered;
                rec.updated_at = now;
                if state.awaiting_confirmation == Some(attempt) {
                    state.awaiting_confirmation = None;
                    state.finished = true;
                    self.cancel_pending(&mut state).await?;
                }
                self.log.write_cursor(&state, &[&rec]).await?;
                self.emit_attempt(&rec);
            }
            ProviderStatus::Failed { reason } => {
                rec.error = Some(reason);
                rec.updated_at = now;
                if state.awaiting_confirmation == Some(attempt) {
                    self.cancel_pending(&mut state).await?;
                    self.log.write_cursor(&state, &[&rec]).await?;
                    self.confirmation_deadline(state, attempt).await?;
                } else {
                    if rec.status != DeliveryStatus::Delivered {
                        rec.status = DeliveryStatus::Failed;
                    }
                    self.log.write_cursor(&state, &[&rec]).await?;
                    self.emit_attempt(&rec);
                }
            }
        }
        Ok(true)
    }

    /// Starts the periodic health checks: cancels every health-check job a
    /// previous process left in the scheduler and arms this process's first one,
    /// due one `health.check_interval_secs` from now (nothing when the interval is
    /// 0 or there are no channels). Each run records the results
    /// ([`DeliveryPipeline::run_health_checks`]) and arms the next run; a job this
    /// process did not arm (a stale or duplicated one) runs nothing. Call once at
    /// start-up, with the job loop feeding `run_job`.
    ///
    /// Errors: [`CoreError::Store`] when the scheduler fails.
    pub async fn start_health_checks(&self) -> Result<(), CoreError> {
        let mut slot = self.health_job.lock().await;
        self.scheduler.cancel_prefix(HEALTH_JOB_PREFIX).await?;
        slot.0 = None;
        self.arm_health_locked(&mut slot).await
    }

    /// Arms the next health-check job (one interval from now) and records it as expected.
    async fn arm_health_locked(&self, slot: &mut (Option<String>, u64)) -> Result<(), CoreError> {
        let secs = self.config.health.check_interval_secs;
        if secs == 0 || self.channels.is_empty() {
            return Ok(());
        }
        slot.1 += 1;
        let id = format!("{HEALTH_JOB_PREFIX}{}", slot.1);
        self.scheduler
            .schedule(Job {
                id: id.clone(),
                due: add(self.clock.now(), Duration::from_secs(secs)),
                kind: JobKind::Delivery {
                    notification_id: String::new(),
                    attempt: 0,
                },
                attempts: 0,
            })
            .await?;
        slot.0 = Some(id);
        Ok(())
    }

    /// Runs a health-check job: the checks, then the next job (see
    /// [`DeliveryPipeline::start_health_checks`]).
    async fn health_job(&self, job: &Job) -> Result<DeliveryOutcome, CoreError> {
        let mut slot = self.health_job.lock().await;
        if slot.0.as_deref() != Some(job.id.as_str()) {
            return Ok(DeliveryOutcome::Ignored);
        }
        slot.0 = None;
        self.run_health_checks().await;
        self.arm_health_locked(&mut slot).await?;
        Ok(DeliveryOutcome::HealthChecked {
            channels: self.channels.len(),
        })
    }

    /// Runs every channel's health check and records the results.
    pub async fn run_health_checks(&self) {
        let timeout = self.config.attempt_timeout();
        for (name, ch) in &self.channels {
            let res = match tokio::time::timeout(timeout, ch.health_check()).await {
                Ok(r) => r,
                Err(_) => Err(DeliveryError::Retryable {
                    reason: "health check timed out".into(),
                    retry_after: None,
                }),
            };
            let now = self.clock.now();
            let was = self.health.is_healthy(name, super::health::ANY_TARGET, now);
            self.health
                .record_check(name, now, res.err().map(|e| e.to_string()));
            let is = self.health.is_healthy(name, super::health::ANY_TARGET, now);
            if was != is {
                self.emit(DeliveryEvent::HealthChanged {
                    channel: name.clone(),
                    target: super::health::ANY_TARGET.into(),
                    healthy: is,
                });
            }
        }
    }

    async fn confirmation_deadline(
        &self,
        mut state: DeliveryState,
        attempt: u32,
    ) -> Result<DeliveryOutcome, CoreError> {
        state.awaiting_confirmation = None;
        let nid = state.notification.id.clone();
        let Some(mut rec) = self.log.record(&nid, attempt).await? else {
            return Ok(DeliveryOutcome::Ignored);
        };
        if rec.status == DeliveryStatus::Delivered {
            state.finished = true;
            self.log.write_cursor(&state, &[]).await?;
            return Ok(DeliveryOutcome::Sent {
                channel: rec.channel,
                attempt,
                provider_message_id: rec.provider_message_id,
            });
        }
        let reason = rec
            .error
            .clone()
            .unwrap_or_else(|| "delivery not confirmed before the deadline".into());
        let now = self.clock.now();
        rec.updated_at = now;
        rec.error = Some(reason.clone());
        if (state.step as usize) + 1 < state.steps.len() {
            rec.status = DeliveryStatus::FailedOver;
            self.fail_over(&mut state, &reason);
            self.log.write_cursor(&state, &[&rec]).await?;
            self.emit_attempt(&rec);
            self.drive(state, Stored::Yes).await
        } else {
            rec.status = DeliveryStatus::Failed;
            state.finished = true;
            self.log.write_cursor(&state, &[&rec]).await?;
            self.emit_attempt(&rec);
            Ok(DeliveryOutcome::Failed { error: reason })
        }
    }

    /// How long an attempt may look in flight before the watchdog resumes it:
    /// twice the attempt timeout plus 5 s (an attempt cannot legitimately take
    /// longer than its timeout).
    fn watchdog_period(&self) -> Duration {
        self.config.attempt_timeout() * 2 + Duration::from_secs(5)
    }

    /// Runs a watchdog job: resumes every attempt interrupted more than one
    /// watchdog period ago (a crash, or an abandoned `notify` future) that this
    /// process is not delivering, and re-arms the watchdog when anything is left
    /// to guard. See [`super::watchdog`].
    async fn sweep(&self, job: &Job) -> Result<DeliveryOutcome, CoreError> {
        const BATCH: usize = 1000;
        self.watchdog.before_sweep(job).await;
        let now = self.clock.now();
        let period = self.watchdog_period();
        let markers = self.log.in_flight(BATCH).await?;
        let mut leftover = markers.len() == BATCH;
        let mut resumed = 0;
        for (id, started) in markers {
            if add(started, period) > now || !self.in_flight.lock().insert(id.clone()) {
                // Too young to call interrupted, or its id is busy in this process
                // (an attempt, or a duplicate `notify` that will answer
                // `AlreadyAccepted`): look again on the next run.
                leftover = true;
                continue;
            }
            let _guard = InFlight {
                set: &self.in_flight,
                id: id.clone(),
            };
            match self.log.state(&id).await? {
                Some(state) if !state.finished && state.pending_job.is_none() => {
                    self.drive(state, Stored::Yes).await?;
                    resumed += 1;
                }
                // A marker whose attempt has an outcome: nothing to resume.
                _ => self.log.clear_in_flight(&id).await?,
            }
        }
        let due = add(self.clock.now(), period);
        self.watchdog
            .after_sweep(self.scheduler.as_ref(), leftover, due)
            .await?;
        Ok(DeliveryOutcome::Swept { resumed })
    }

    fn fail_over(&self, state: &mut DeliveryState, reason: &str) {
        let from = state.steps[state.step as usize].channel.clone();
        state.step += 1;
        state.tries_on_step = 0;
        let to = state.steps[state.step as usize].channel.clone();
        self.emit(DeliveryEvent::FailedOver {
            notification_id: state.notification.id.clone(),
            from,
            to,
            reason: reason.to_string(),
        });
    }

    fn emit_attempt(&self, r: &DeliveryRecord) {
        if self.sink.is_none() {
            return; // nothing listens: skip building the event
        }
        self.emit(DeliveryEvent::Attempt {
            notification_id: r.notification_id.clone(),
            channel: r.channel.clone(),
            attempt: r.attempt,
            status: r.status,
            error: r.error.clone(),
        });
    }

    /// Arms the one job the state expects next (cancelling the previous one).
    async fn arm(
        &self,
        state: &mut DeliveryState,
        due: Timestamp,
        attempt: u32,
    ) -> Result<(), CoreError> {
        self.cancel_pending(state).await?;
        state.job_seq += 1;
        let id = job_id(&state.notification.id, state.job_seq);
        self.scheduler
            .schedule(Job {
                id: id.clone(),
                due,
                kind: JobKind::Delivery {
                    notification_id: state.notification.id.clone(),
                    attempt,
                },
                attempts: 0,
            })
            .await?;
        state.pending_job = Some(id);
        Ok(())
    }

    async fn cancel_pending(&self, state: &mut DeliveryState) -> Result<(), CoreError> {
        if let Some(id) = state.pending_job.take() {
            self.scheduler.cancel(&id).await?;
        }
        Ok(())
    }

    fn record(
        &self,
        state: &DeliveryState,
        status: DeliveryStatus,
        now: Timestamp,
    ) -> DeliveryRecord {
        let step = &state.steps[state.step as usize];
        let channel = self.channels.get(&step.channel);
        let n = &state.notification;
        DeliveryRecord {
            notification_id: n.id.clone(),
            attempt: state.attempt,
            step: state.step,
            channel: step.channel.clone(),
            channel_kind: channel.map(|c| c.kind().to_string()).unwrap_or_default(),
            target: redact_address(step.target.as_deref().unwrap_or(&n.target.address)),
            incident_id: n.incident.as_ref().map(|i| i.id.clone()),
            status,
            started_at: now,
            updated_at: now,
            latency_ms: None,
            provider_message_id: None,
            error: None,
            next_attempt_at: None,
        }
    }

    /// Writes the state and records: the whole state the first time, then only
    /// the cursor (the notification never changes after acceptance).
    async fn save(
        &self,
        state: &DeliveryState,
        records: &[&DeliveryRecord],
        stored: &mut Stored,
    ) -> Result<(), CoreError> {
        self.save_with(state, records, stored, None).await
    }

    /// [`DeliveryPipeline::save`] plus a throttle slot to persist in the same batch.
    async fn save_with(
        &self,
        state: &DeliveryState,
        records: &[&DeliveryRecord],
        stored: &mut Stored,
        throttle: Option<ThrottleSlot<'_>>,
    ) -> Result<(), CoreError> {
        self.log
            .commit_state(
                state,
                *stored == Stored::No,
                *stored == Stored::Recorded,
                records,
                throttle,
            )
            .await?;
        *stored = Stored::Yes;
        Ok(())
    }

    /// Runs [`DeliveryPipeline::attempts`] inside the shared watchdog: entered
    /// before the first attempt's commit, left after the last outcome's.
    async fn drive(
        &self,
        state: DeliveryState,
        stored: Stored,
    ) -> Result<DeliveryOutcome, CoreError> {
        let due = add(self.clock.now(), self.watchdog_period());
        let guard = self.watchdog.enter(self.scheduler.as_ref(), due).await?;
        let out = self.attempts(state, stored).await;
        guard.finish(out.is_ok()).await?;
        out
    }

    /// The loop: one attempt per iteration until sent, failed for good, or waiting.
    ///
    /// `stored`: what of the notification is in the log already (once the
    /// notification row is, only the cursor is rewritten).
    async fn attempts(
        &self,
        mut state: DeliveryState,
        mut stored: Stored,
    ) -> Result<DeliveryOutcome, CoreError> {
        loop {
            let now = self.clock.now();
            let idx = state.step as usize;
            let step = state.steps[idx].clone();
            let Some(channel) = self.channels.get(&step.channel).cloned() else {
                return Err(CoreError::input(
                    "notification.receiver",
                    format!("no channel named `{}`", step.channel),
                ));
            };
            let address = step
                .target
                .clone()
                .unwrap_or_else(|| state.notification.target.address.clone());
            let has_next = idx + 1 < state.steps.len();

            // Unhealthy target: skip straight to the next step (the last step is
            // always tried — there is nothing better left).
            if has_next
                && state.tries_on_step == 0
                && !self.health.is_healthy(&step.channel, &address, now)
            {
                state.attempt += 1;
                state.next_attempt = state.attempt + 1;
                let mut rec = self.record(&state, DeliveryStatus::FailedOver, now);
                rec.error = Some("target unhealthy; skipped".into());
                self.fail_over(&mut state, "target unhealthy");
                self.save(&state, &[&rec], &mut stored).await?;
                self.emit_attempt(&rec);
                continue;
            }

            // Throttle: wait for the contact method's next free slot (read back
            // from the log the first time this process sees the address).
            if self.throttle.limits(channel.kind())
                && !self.throttle.is_known(channel.kind(), &address)
            {
                let slot = self.log.throttle_slot(channel.kind(), &address).await?;
                self.throttle.restore(channel.kind(), &address, slot);
            }
            if let Some(free) = self.throttle.check(channel.kind(), &address, now) {
                if self.config.throttle.suppress_resolved
                    && state.notification.status == crate::model::AlertStatus::Resolved
                {
                    state.attempt = state.next_attempt;
                    state.next_attempt = state.attempt + 1;
                    state.finished = true;
                    let mut rec = self.record(&state, DeliveryStatus::Suppressed, now);
                    rec.error = Some("throttled; resolved notification suppressed".into());
                    self.cancel_pending(&mut state).await?;
                    self.save(&state, &[&rec], &mut stored).await?;
                    self.emit_attempt(&rec);
                    return Ok(DeliveryOutcome::Suppressed);
                }
                // The waiting attempt shows as `queued` (its record is updated in
                // place once it is sent).
                let next = state.next_attempt;
                let mut rec = self.record(&state, DeliveryStatus::Queued, now);
                rec.attempt = next;
                rec.error = Some("throttled".into());
                rec.next_attempt_at = Some(free);
                self.arm(&mut state, free, next).await?;
                self.save(&state, &[&rec], &mut stored).await?;
                self.emit_attempt(&rec);
                return Ok(DeliveryOutcome::Pending { next_at: free });
            }

            // The attempt itself: its `sending` record and in-flight marker are
            // committed first, under the shared watchdog (see `drive`), so a crash
            // mid-send is resumed by the watchdog's sweep.
            state.attempt = state.next_attempt;
            state.next_attempt = state.attempt + 1;
            state.tries_on_step += 1;
            self.cancel_pending(&mut state).await?;
            let mut rec = self.record(&state, DeliveryStatus::Sending, now);
            if stored != Stored::Recorded {
                self.save(&state, &[&rec], &mut stored).await?;
            }

            // Only a chain step with its own target needs a re-addressed copy.
            let n = if address == state.notification.target.address {
                std::borrow::Cow::Borrowed(&state.notification)
            } else {
                let mut n = state.notification.clone();
                n.target.address = address.clone();
                std::borrow::Cow::Owned(n)
            };
            // What the channel wants to know from the log (e.g. the Slack message
            // to update after a restart); channels that want nothing get plain
            // `deliver` (no context, no extra boxed future).
            let ctx = match &n.incident {
                Some(inc) if channel.wants_previous_message(&n) => Some(DeliveryContext {
                    previous_message_id: self
                        .log
                        .last_message(&inc.id, &step.channel, &redact_address(&address))
                        .await?,
                }),
                _ => None,
            };
            let send = match &ctx {
                Some(ctx) => channel.deliver_in(&n, ctx),
                None => channel.deliver(&n),
            };
            let result = match tokio::time::timeout(self.config.attempt_timeout(), send).await {
                Ok(r) => r,
                Err(_) => Err(DeliveryError::Retryable {
                    reason: format!("timed out after {} ms", self.config.attempt_timeout_ms),
                    retry_after: None,
                }),
            };
            let done = self.clock.now();
            let latency = elapsed(now, done);
            rec.latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
            rec.updated_at = done;
            let changes = self.health.record(
                &step.channel,
                &address,
                done,
                result.is_ok(),
                latency,
                state.tries_on_step > 1,
            );
            for (target, healthy) in changes {
                self.emit(DeliveryEvent::HealthChanged {
                    channel: step.channel.clone(),
                    target,
                    healthy,
                });
            }

            match result {
                Ok(d) => {
                    let slot =
                        self.throttle
                            .mark_sent(channel.kind(), &address, done)
                            .map(|next_free| ThrottleSlot {
                                kind: channel.kind(),
                                address: &address,
                                next_free,
                            });
                    rec.status = DeliveryStatus::Sent;
                    rec.provider_message_id = d.provider_message_id.clone();
                    if let Some(secs) = step.confirm_within_secs {
                        let due = add(done, Duration::from_secs(secs));
                        state.awaiting_confirmation = Some(state.attempt);
                        let this = state.attempt;
                        self.arm(&mut state, due, this).await?;
                        self.save_with(&state, &[&rec], &mut stored, slot).await?;
                        self.emit_attempt(&rec);
                        return Ok(DeliveryOutcome::Pending { next_at: due });
                    }
                    state.finished = true;
                    self.cancel_pending(&mut state).await?;
                    self.save_with(&state, &[&rec], &mut stored, slot).await?;
                    self.emit_attempt(&rec);
                    return Ok(DeliveryOutcome::Sent {
                        channel: step.channel,
                        attempt: state.attempt,
                        provider_message_id: d.provider_message_id,
                    });
                }
                Err(e) => {
                    let reason = e.to_string();
                    rec.error = Some(reason.clone());
                    let retry_after = match &e {
                        DeliveryError::Retryable { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let too_long = retry_after.is_some_and(|ra| {
                        ra > Duration::from_millis(self.config.retry.max_retry_after_ms)
                    });
                    if e.retry_action() == RetryAction::Retry
                        && state.tries_on_step < self.config.retry.max_attempts
                        && !too_long
                    {
                        let delay = self.backoff.delay(
                            state.tries_on_step,
                            self.jitter.as_ref(),
                            retry_after,
                        );
                        let due = add(done, delay);
                        rec.status = DeliveryStatus::Retrying;
                        rec.next_attempt_at = Some(due);
                        let next = state.next_attempt;
                        self.arm(&mut state, due, next).await?;
                        self.save(&state, &[&rec], &mut stored).await?;
                        self.emit_attempt(&rec);
                        return Ok(DeliveryOutcome::Pending { next_at: due });
                    }
                    if has_next {
                        rec.status = DeliveryStatus::FailedOver;
                        self.fail_over(&mut state, &reason);
                        self.save(&state, &[&rec], &mut stored).await?;
                        self.emit_attempt(&rec);
                        continue;
                    }
                    rec.status = DeliveryStatus::Failed;
                    state.finished = true;
                    self.cancel_pending(&mut state).await?;
                    self.save(&state, &[&rec], &mut stored).await?;
                    self.emit_attempt(&rec);
                    return Ok(DeliveryOutcome::Failed { error: reason });
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl crate::engine::Notifier for DeliveryPipeline {
    /// `Ok` when delivered or durably queued (retry, throttle, confirmation
    /// pending, or already accepted); `Err` when every step failed for good.
    async fn notify(&self, n: Notification) -> Result<(), CoreError> {
        let receiver = n.receiver.clone();
        match DeliveryPipeline::notify(self, n).await? {
            DeliveryOutcome::Failed { error } => Err(CoreError::Delivery {
                channel: receiver.to_string(),
                reason: error.to_string(),
            }),
            _ => Ok(()),
        }
    }

    async fn run_job(&self, job: &Job) -> Result<(), CoreError> {
        DeliveryPipeline::run_job(self, job).await.map(|_| ())
    }

    /// The notification log is the engine's outbox: one write of the notification.
    fn records_notifications(&self) -> bool {
        true
    }

    fn record(
        &self,
        n: &Notification,
        batch: &mut crate::store::WriteBatch,
    ) -> Result<(), crate::store::StoreError> {
        self.log.record_accepted(n, batch)
    }

    async fn notify_recorded(&self, n: Notification) -> Result<(), CoreError> {
        let receiver = n.receiver.clone();
        match DeliveryPipeline::notify_recorded(self, n).await? {
            DeliveryOutcome::Failed { error } => Err(CoreError::Delivery {
                channel: receiver.to_string(),
                reason: error.to_string(),
            }),
            _ => Ok(()),
        }
    }

    async fn recorded_pending(&self) -> Result<Vec<Notification>, CoreError> {
        DeliveryPipeline::recorded_pending(self).await
    }
}
