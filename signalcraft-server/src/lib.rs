//! # signalcraft-server
//!
//! The reference server: a thin axum layer translating HTTP into engine calls,
//! plus config loading, auth and RBAC, callbacks, OpenAPI and metrics.
//! (Filled in by the server work.)
