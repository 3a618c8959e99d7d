//! # signalcraft-core
//!
//! The heart of SignalCraft: the normalized alert model, the traits at every seam,
//! and the engine that turns alerts into incidents, pages and notifications.
//!
//! No network, no database, no wasmtime here, and no wall clock: time comes from an
//! injected [`clock::Clock`]. Decisions are pure functions of state and `now` that
//! return effects as data; a thin tokio runtime executes them against a
//! [`store::Store`], a [`scheduler::Scheduler`] and [`channel::Channel`]s.
//!
//! # Layout
//!
//! * Model: [`model`] (events, alerts, labels, fingerprints).
//! * Seams: [`provider`] (inbound), [`channel`] (outbound), [`store`] (persistence),
//!   [`scheduler`] (durable timers), [`journal`] (durable ingest before the decision),
//!   [`clock`] (time), [`remediation`] (plugins).
//! * On-call: [`oncall`] (people, rotations, schedules, overrides), [`escalation`]
//!   (policies, notification rules, paging).
//! * Delivery: [`delivery`] (retry, backoff, failover, notification log, health).
//! * Implementations for tests and embedders: [`memory`].
//! * Errors: [`error`].
#![deny(missing_docs)]

pub mod channel;
pub mod clock;
pub mod delivery;
pub mod dispatch;
pub mod duration;
pub mod engine;
pub mod error;
pub mod escalation;
pub mod incident;
pub mod inhibit;
pub mod journal;
pub mod memory;
pub mod model;
pub mod oncall;
pub mod provider;
pub mod remediation;
pub mod routing;
pub mod scheduler;
pub mod service;
pub mod silence;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{CoreError, Result};
