//! The engine: the one entry point embedders use.
//!
//! * [`notifier`]: the [`Notifier`] seam to delivery and [`ChannelNotifier`].
//! * [`events`]: typed internal events ([`EventSink`]) for metrics.

pub mod events;
pub mod notifier;

pub use events::{EngineEvent, EventSink, NoopSink};
pub use notifier::{ChannelNotifier, Notifier, channel_name};
