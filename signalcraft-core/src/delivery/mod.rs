//! The channel-independent delivery policy: per-attempt timeout, retry with
//! exponential backoff and full jitter (honouring `Retry-After`), failover chains
//! (including a second provider of the same kind), per-contact-method throttles,
//! the notification log and delivery health.
//!
//! Channels only *classify* their failures ([`DeliveryError::retry_action`]); the
//! layers here do the retrying. The order of the layers, innermost first:
//!
//! 1. **timeout** — every `Channel::deliver` call is bounded by
//!    [`DeliveryConfig::attempt_timeout_ms`]; an elapsed timeout is a retryable failure.
//! 2. **retry** — a retryable failure is retried on the *same* step with
//!    [`Backoff`] (exponential, full jitter from an injected [`Jitter`], never
//!    sooner than `Retry-After`) up to `retry.max_attempts` tries per step. Retries
//!    are durable [`JobKind::Delivery`](crate::scheduler::JobKind::Delivery) jobs.
//! 3. **throttle** — per contact method (channel kind + address), e.g. at most one
//!    SMS per minute to a phone; a throttled send is delayed, not dropped.
//! 4. **failover** — a permanent failure, exhausted retries, an unhealthy target or
//!    a missed confirmation deadline moves on to the next step of the
//!    [`FailoverChain`].
//!
//! Every attempt writes one [`DeliveryRecord`] to the notification log
//! (`Table::NotificationLog`), which also makes delivery idempotent: a notification
//! id that was already delivered is never sent again.
//!
//! # Layout
//!
//! * [`config`] — `DeliveryConfig`, failover chains, retry/throttle/health settings.
//! * [`backoff`] — exponential backoff with full jitter and `Retry-After`.
//! * [`log`] — the notification log (records, statuses, delivery trail).
//! * `notification_row` — the compact stored form of an accepted notification.
//! * [`health`] — sliding-window success rate / latency per channel and target.
//! * [`throttle`] — per-contact-method rate limits.
//! * [`events`] — typed delivery events and the [`DeliverySink`] hook.
//! * [`watchdog`] — one shared durable job guarding every attempt in flight.
//! * [`pipeline`] — [`DeliveryPipeline`], which runs the policy against channels,
//!   the store, the scheduler and the clock.
//!
//! [`DeliveryError::retry_action`]: crate::channel::DeliveryError::retry_action

pub mod backoff;
pub mod config;
pub mod events;
pub mod health;
pub mod log;
mod notification_row;
pub mod pipeline;
pub mod throttle;
pub mod watchdog;

pub use backoff::{Backoff, FixedJitter, Jitter, RngJitter};
pub use config::{
    ChainStep, DeliveryConfig, FailoverChain, HealthConfig, RetryConfig, ThrottleConfig,
};
pub use events::{DeliveryEvent, DeliverySink, RecordingSink};
pub use health::{HealthSnapshot, HealthTracker};
pub use log::{DeliveryRecord, DeliveryState, DeliveryStatus, NotificationLog};
pub use pipeline::{DeliveryOutcome, DeliveryPipeline, HEALTH_JOB_PREFIX, ProviderStatus};
pub use throttle::Throttle;

#[cfg(test)]
mod tests;
