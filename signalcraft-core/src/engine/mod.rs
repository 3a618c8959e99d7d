//! The engine: the one entry point embedders use.
//!
//! * [`config`]: [`EngineConfig`] (routes, time intervals, inhibit rules, services).
//! * [`core`]: [`EngineCore`], the pure state machine (state + `now` → [`Effect`]s).
//! * [`effects`]: the [`Effect`]s it returns.
//! * [`shell`]: [`Engine`], the async shell embedders use.
//! * [`journaled`]: journaled ingest ([`Engine::submit`]): durable in a journal first,
//!   decided and committed in the background.
//! * [`escalation`]: the [`EscalationHook`] seam to paging.
//! * [`notifier`]: the [`Notifier`] seam to delivery and [`ChannelNotifier`].
//! * [`events`]: typed internal events ([`EventSink`]) for metrics.

pub mod config;
pub mod core;
pub mod effects;
pub mod escalation;
pub mod events;
pub mod journaled;
pub mod notifier;
pub mod shell;

pub use config::{CompiledConfig, EngineConfig};
pub use core::{AlertEntry, AlertRecord, EngineCore, IncidentAction, Mute};
pub use effects::{Effect, Record};
pub use escalation::{EscalationHook, NoEscalation, PlannerEscalation};
pub use events::{EngineEvent, EventSink, NoopSink};
pub use journaled::{JOURNAL_APPLIED_KEY, journal_applied};
pub use notifier::{ChannelNotifier, Notifier, channel_name};
pub use shell::{Engine, EngineBuilder, IngestReport, PendingIngest};
