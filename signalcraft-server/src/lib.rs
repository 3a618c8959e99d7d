//! # signalcraft-server
//!
//! The reference server: a thin axum layer translating HTTP into engine calls,
//! plus config loading, auth and RBAC, callbacks, OpenAPI and metrics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), signalcraft_server::error::ServerError> {
//! let cfg = signalcraft_server::config::ServerConfig::default();
//! let secrets = signalcraft_server::config::ResolvedSecrets::default();
//! signalcraft_server::server::serve(cfg, secrets).await // until SIGTERM / Ctrl-C
//! # }
//! ```
//!
//! # Layout
//!
//! * [`server`]: `signalcraft serve` / `check-config`, [`server::start`] and
//!   [`server::serve`], graceful shutdown; [`bootstrap`]: data dir, default config,
//!   admin token.
//! * [`router`]: [`router::build_router`] and the middleware (timeouts → 408,
//!   overload → 503, body limits → 413); [`state`]: [`state::AppState`].
//! * [`api`]: the handlers (Alertmanager v2, PagerDuty Events v2, webhooks, callbacks,
//!   `/api/v1`, OpenAPI).
//! * [`engine`]: the engine handle with the ingest batcher; [`oncall`]: users, teams,
//!   schedules, policies held as a validated directory; [`integrations`]: live
//!   inbound integrations by key; [`apply`]: `signalcraft apply` (config as code).
//! * [`config`]: the TOML config file, checked with every error's path; [`secret`]:
//!   `env:`/`file:` secret references.
//! * [`error`]: [`error::ServerError`] and the RFC 9457 problem+json [`error::ApiError`];
//!   [`extract`]: JSON/query extractors that reject with problems.
//! * [`auth`]: API tokens (SHA-256 only), roles, permissions, the [`auth::Auth`] extractor.
//! * [`ratelimit`]: per-key token buckets; [`metrics`]: Prometheus metrics.
//! * [`queue`]: the scheduler wrapper that counts pending jobs (`queue_depth`).
//! * [`retention`]: the `[retention]` sweep removing old closed incidents from the store.
//! * [`remediation`]: the approval gate and runner (WASM plugins with the
//!   `remediation` cargo feature).
//! * [`normalize`]: the `signalcraft normalize` subcommand (what does SignalCraft make of this payload?).

pub mod api;
pub mod apply;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod engine;
pub mod error;
pub mod extract;
pub mod integrations;
pub mod metrics;
pub mod normalize;
pub mod oncall;
pub mod queue;
pub mod ratelimit;
pub mod remediation;
pub mod retention;
pub mod router;
pub mod secret;
pub mod server;
pub mod state;

pub use router::build_router;
pub use server::{serve, start};
pub use state::AppState;
