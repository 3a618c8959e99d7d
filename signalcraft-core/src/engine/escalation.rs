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

/// Paging through [`crate::escalation::PagingPlanner`] over a
/// [`Directory`](crate::escalation::Directory) of users, schedules and policies.
///
/// * Incident opened / re-opened with a policy → level 1 is paged, later levels and
///   notification-rule steps are armed as durable `Escalate` / `NotifyRule` jobs.
/// * Acknowledge / mitigate → every pending paging job is cancelled; resolve likewise.
/// * Reassign → cancel and start over (the incident's `paging_generation` makes old
///   jobs stale); "page user" → the user's notification rules, ad hoc.
/// * Each page becomes a [`NotificationKind::Page`](crate::channel::NotificationKind)
///   notification with id `page/<contact kind>/<planner id>` — so a notifier routes it
///   by the contact kind (`sms`, `voice`, `email`, `slack_dm`, `push`, `webhook`) — to
///   the contact address, through the engine's [`Notifier`](super::Notifier).
/// * `Handoff` jobs run [`crate::escalation::run_handoff_job`] (arm them with
///   [`crate::escalation::arm_handoffs`]).
/// * Paging events become timeline entries (`escalated`, `paged`, or `custom` named
///   after the event's audit action) with audit entries.
pub struct PlannerEscalation {
    dir: parking_lot::RwLock<std::sync::Arc<crate::escalation::Directory>>,
}

impl PlannerEscalation {
    /// Paging over this directory.
    pub fn new(dir: crate::escalation::Directory) -> Self {
        PlannerEscalation {
            dir: parking_lot::RwLock::new(std::sync::Arc::new(dir)),
        }
    }

    /// Replaces the directory (config reload); running jobs use the new one.
    pub fn set_directory(&self, dir: crate::escalation::Directory) {
        *self.dir.write() = std::sync::Arc::new(dir);
    }

    fn directory(&self) -> std::sync::Arc<crate::escalation::Directory> {
        self.dir.read().clone()
    }

    async fn apply(
        &self,
        engine: &Engine,
        incident: &crate::incident::Incident,
        effects: Vec<crate::escalation::PagingEffect>,
    ) -> Result<(), CoreError> {
        use crate::channel::{NotificationKind, Target};
        use crate::escalation::{PagingEffect, PagingEvent};
        use crate::incident::EntryKind;
        for e in effects {
            match e {
                PagingEffect::Schedule(job) => engine.scheduler().schedule(job).await?,
                PagingEffect::CancelPrefix(p) => {
                    engine.scheduler().cancel_prefix(&p).await?;
                }
                PagingEffect::Page(page) => {
                    let n = crate::channel::Notification {
                        id: format!(
                            "page/{}/{}",
                            page.contact.kind.as_str(),
                            page.notification_id
                        ),
                        kind: NotificationKind::Page {
                            level: page.level,
                            message: page.message.clone(),
                        },
                        group_key: incident.group_key.clone(),
                        status: crate::model::AlertStatus::Firing,
                        incident: Some(incident.to_ref(None, None)),
                        alerts: Vec::new(),
                        group_labels: incident.group_labels.clone(),
                        common_labels: Default::default(),
                        common_annotations: Default::default(),
                        runbooks: incident.runbooks.clone(),
                        recent_changes: Vec::new(),
                        receiver: format!("user:{}", page.user_id),
                        target: Target {
                            address: page.contact.address.clone(),
                            user: Some(page.user_id.clone()),
                        },
                        external_url: None,
                        created_at: engine.now(),
                    };
                    engine.send(n).await;
                }
                PagingEffect::Event(ev) => {
                    let kind = match &ev {
                        PagingEvent::Escalated { level, users, .. } => EntryKind::Escalated {
                            level: *level,
                            targets: users.clone(),
                        },
                        PagingEvent::Paged { user, message, .. } => EntryKind::Paged {
                            user: user.clone(),
                            channel: None,
                            message: message.clone(),
                        },
                        PagingEvent::NotificationRuleStep { user, kind, .. } => EntryKind::Paged {
                            user: user.clone(),
                            channel: Some(kind.as_str().to_string()),
                            message: None,
                        },
                        other => EntryKind::Custom {
                            name: other.audit_action().to_string(),
                            details: serde_json::to_value(other).unwrap_or_default(),
                        },
                    };
                    engine
                        .record_entry(&incident.id, Actor::System, kind)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

fn view(i: &crate::incident::Incident) -> crate::escalation::IncidentView {
    use crate::incident::IncidentState;
    crate::escalation::IncidentView {
        id: i.id.clone(),
        number: i.number,
        title: i.title.clone(),
        urgency: i.urgency,
        acknowledged: matches!(
            i.state,
            IncidentState::Acknowledged | IncidentState::Mitigated
        ),
        resolved: matches!(i.state, IncidentState::Resolved | IncidentState::Closed),
        policy_id: i.escalation_policy.clone(),
        round_robin_cursor: i.round_robin_cursor,
        generation: i.paging_generation,
    }
}

#[async_trait]
impl EscalationHook for PlannerEscalation {
    async fn start(
        &self,
        engine: &Engine,
        incident_id: &str,
        policy: &str,
    ) -> Result<(), CoreError> {
        let inc = engine.get_incident(incident_id)?;
        let mut v = view(&inc);
        v.policy_id = Some(policy.to_string());
        let dir = self.directory();
        let effects =
            crate::escalation::PagingPlanner::new(&dir).on_incident_opened(&v, engine.now());
        self.apply(engine, &inc, effects).await
    }

    async fn stop(
        &self,
        engine: &Engine,
        incident_id: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<(), CoreError> {
        let inc = engine.get_incident(incident_id)?;
        let v = view(&inc);
        let dir = self.directory();
        let planner = crate::escalation::PagingPlanner::new(&dir);
        let effects = match reason {
            "resolved" | "closed" => planner.on_resolved(&v),
            "reassigned" => vec![crate::escalation::PagingEffect::CancelPrefix(
                crate::escalation::job_prefix(&v.id),
            )],
            _ => {
                let channel = match actor {
                    Actor::Integration { id } => id.as_str(),
                    _ => "api",
                };
                planner.on_acknowledged(&v, actor.user_id(), channel)
            }
        };
        self.apply(engine, &inc, effects).await
    }

    async fn page_user(
        &self,
        engine: &Engine,
        incident_id: &str,
        user: &str,
        message: Option<&str>,
        actor: &Actor,
    ) -> Result<(), CoreError> {
        let inc = engine.get_incident(incident_id)?;
        let dir = self.directory();
        let effects = crate::escalation::PagingPlanner::new(&dir).page_user(
            &view(&inc),
            user,
            message,
            actor.user_id(),
            engine.now(),
        )?;
        self.apply(engine, &inc, effects).await
    }

    async fn run_job(&self, engine: &Engine, job: &Job) -> Result<(), CoreError> {
        use crate::scheduler::JobKind;
        let incident_id = match &job.kind {
            JobKind::Escalate { incident_id, .. } | JobKind::NotifyRule { incident_id, .. } => {
                incident_id
            }
            JobKind::Handoff { .. } => {
                let dir = self.directory();
                return crate::escalation::run_handoff_job(engine, &dir, job).await;
            }
            _ => return Ok(()),
        };
        // An incident that no longer exists has nothing to page.
        let Ok(inc) = engine.get_incident(incident_id) else {
            return Ok(());
        };
        let dir = self.directory();
        let effects =
            crate::escalation::PagingPlanner::new(&dir).on_job(job, &view(&inc), engine.now());
        self.apply(engine, &inc, effects).await
    }
}
