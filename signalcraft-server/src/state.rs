//! [`AppState`]: what every handler can reach (engine, store, config, auth, metrics).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use signalcraft_core::clock::Clock;
use signalcraft_core::store::Store;

use crate::auth::{HasTokens, TokenRegistry};
use crate::config::{ResolvedSecrets, ServerConfig};
use crate::integrations::Integrations;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;

/// Shared state of the HTTP server (cheap to clone).
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// The shared parts.
pub struct Inner {
    /// The engine: every decision goes through it.
    pub engine: Arc<crate::engine::EngineHandle>,
    /// The store (reads for audit log, tokens).
    pub store: Arc<dyn Store>,
    /// The config as loaded.
    pub config: ServerConfig,
    /// Resolved secrets.
    pub secrets: ResolvedSecrets,
    /// API tokens.
    pub tokens: TokenRegistry,
    /// Users, teams, schedules, escalation policies.
    pub oncall: crate::oncall::OnCall,
    /// Inbound integrations by key.
    pub integrations: Integrations,
    /// The providers registry (validates API-created integrations).
    pub registry: signalcraft_providers::sources::Registry,
    /// Paging over the on-call directory.
    pub paging: Arc<signalcraft_core::engine::PlannerEscalation>,
    /// Remediation (when enabled).
    pub remediation: Option<Arc<crate::remediation::Remediation>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Rate limits (integrations, PagerDuty routing keys).
    pub limiter: RateLimiter,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// When the server started.
    pub started_at: Timestamp,
    /// False once shutdown began (`/-/ready` then answers 503).
    pub ready: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The current time from the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Whether the server accepts work.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Hands the current on-call directory to paging (after every on-call change) and
    /// re-arms every schedule's next handoff job, so new schedules get handoff
    /// notifications and changed ones do not notify at their old handoff times.
    pub fn oncall_changed(&self) {
        let dir = self.oncall.directory();
        self.paging.set_directory((*dir).clone());
        let engine = self.engine.engine.clone();
        tokio::spawn(async move {
            if let Err(e) = rearm_handoffs(&engine, &dir).await {
                tracing::warn!(error = %e, "re-arming handoff jobs failed");
            }
        });
    }

    /// Marks the server as draining.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

impl HasTokens for AppState {
    fn tokens(&self) -> &TokenRegistry {
        &self.tokens
    }
}

/// Cancels every pending handoff job and arms each schedule's next one. Job ids carry
/// their due instant, so arming an unchanged schedule again is idempotent.
pub async fn rearm_handoffs(
    engine: &signalcraft_core::engine::Engine,
    dir: &signalcraft_core::escalation::Directory,
) -> Result<usize, signalcraft_core::CoreError> {
    engine.scheduler().cancel_prefix("handoff/").await?;
    signalcraft_core::escalation::arm_handoffs(engine, dir).await
}
