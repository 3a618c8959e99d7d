//! # signalcraft-providers
//!
//! Inbound sources (one file each under `sources/`) and outbound channels (one file
//! each under `channels/`), each behind an explicit registry and a cargo feature.
//!
//! # Layout
//!
//! * [`sources`]: `Provider` implementations and the source registry.
//! * [`channels`]: `Channel` implementations and the channel registry.

pub mod channels;
pub mod sources;
