//! The seam between incidents and paging: [`EscalationHook`].
//!
//! The engine core emits `StartEscalation` / `StopEscalation` / `PageUser` effects and
//! the shell routes `JobKind::{Escalate, NotifyRule, Handoff}` jobs here. Hooks run
//! after the triggering write was committed and outside the engine's write lock, so
//! they may call back into the [`Engine`] (record timeline entries, send pages with
//! [`Engine::send`]).

use async_trait::async_trait;

use super::shell::Engine;
use crate::CoreError;
use crate::incident::Actor;
use crate::scheduler::Job;

/// Paging for incidents.
///
/// Contract: every method is idempotent (a job or effect may be replayed after a
/// crash), schedules its own follow-up jobs durably, and reports pages it sends as
/// `paged` / `escalated` timeline entries via [`Engine::record_entry`].
#[async_trait]
pub trait EscalationHook: Send + Sync + 'static {
    /// An incident opened (or re-opened, or was reassigned) with this policy.
    async fn start(
        &self,
        engine: &Engine,
        incident_id: &str,
        policy: &str,
    ) -> Result<(), CoreError>;

    /// Paging for an incident must stop (`reason`: acknowledged, resolved, reassigned).
    async fn stop(
        &self,
        engine: &Engine,
        incident_id: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<(), CoreError>;

    /// Page one user now.
    async fn page_user(
        &self,
        engine: &Engine,
        incident_id: &str,
        user: &str,
        message: Option<&str>,
        actor: &Actor,
    ) -> Result<(), CoreError>;

    /// Run an `Escalate`, `NotifyRule` or `Handoff` job.
    async fn run_job(&self, engine: &Engine, job: &Job) -> Result<(), CoreError>;
}

/// No paging: incidents only notify their route's targets.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEscalation;

#[async_trait]
impl EscalationHook for NoEscalation {
    async fn start(&self, _: &Engine, _: &str, _: &str) -> Result<(), CoreError> {
        Ok(())
    }
    async fn stop(&self, _: &Engine, _: &str, _: &Actor, _: &str) -> Result<(), CoreError> {
        Ok(())
    }
    async fn page_user(
        &self,
        _: &Engine,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &Actor,
    ) -> Result<(), CoreError> {
        Ok(())
    }
    async fn run_job(&self, _: &Engine, _: &Job) -> Result<(), CoreError> {
        Ok(())
    }
}
