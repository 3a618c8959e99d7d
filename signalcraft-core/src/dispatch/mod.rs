//! Dispatch: aggregation groups and the notification log (Alertmanager's `dispatch/`
//! and `nflog/`, as pure data and decisions).
//!
//! * [`group`]: [`AggregationGroup`], [`GroupSet`], group keys and hashes.
//! * [`nflog`]: [`NflogEntry`] and [`needs_update`].
//! * [`slab`]: [`FpSlab`], dense per-fingerprint storage (plus a hot part in the index)
//!   for the engine's alerts.

pub mod group;
pub mod nflog;
pub mod slab;

pub use group::{AggregationGroup, GroupSet, IndexBuild, ProbeKey, format_labels};
pub use nflog::{NflogEntry, UpdateReason, needs_update};
pub use slab::{FpSlab, KeySlab};
