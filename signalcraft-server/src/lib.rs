//! # signalcraft-server
//!
//! The reference server: a thin axum layer translating HTTP into engine calls,
//! plus config loading, auth and RBAC, callbacks, OpenAPI and metrics.
//!
//! # Layout
//!
//! * [`normalize`]: the `signalcraft normalize` subcommand (what does SignalCraft make of this payload?).

pub mod normalize;
