//! [`PagingHook`]: the [`EscalationHook`] that runs the [`PagingPlanner`] inside the
//! [`Engine`] — the imperative shell around the pure planner.
//!
//! * Per-incident paging state (assignment generation, round-robin cursor) and the
//!   per-policy round-robin counters live in the Store (`Table::Meta`, keys
//!   `paging/incident/<id>` and `paging/rr/<policy>`), so a restart neither repeats
//!   nor loses a page: every step is a Scheduler job and every page carries an
//!   idempotent notification id.
//! * Pages become `NotificationKind::Page` notifications with id
//!   `page/<channel>/<incident>/…`, where `<channel>` is the engine channel name for
//!   the contact method's kind ([`PagingHook::with_channel`]; default: the kind's
//!   snake_case name, e.g. `sms`, `voice`, `email`, `slack_dm`, `push`, `webhook`).
//! * Events go to the incident timeline (and so to the audit log) through
//!   [`Engine::record_entry`]: a page attempt is a `paged` entry with its channel, a
//!   level reached is `escalated`, the rest are `custom` entries named after
//!   [`PagingEvent::audit_action`]. Acknowledgements also record the channel they came
//!   from (`paging.acknowledged`).
//! * Handoff jobs (`JobKind::Handoff`) send `NotificationKind::Handoff` notifications,
//!   re-arm themselves, and write `schedule.uncovered_gap` audit entries. Call
//!   [`PagingHook::arm_handoffs`] once at start-up (and after schedule changes).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::directory::Directory;
use super::planner::{IncidentView, PagingEffect, PagingEvent, PagingPlanner, job_prefix};
use crate::CoreError;
use crate::channel::{Notification, NotificationKind, Target};
use crate::engine::{Engine, EscalationHook};
use crate::incident::{Actor, EntryKind, Incident, IncidentState};
use crate::model::AlertStatus;
use crate::oncall::ContactKind;
use crate::oncall::handoff::{next_handoff_job, plan_handoff};
use crate::scheduler::{Job, JobKind};
use crate::store::{StoreExt, Table, WriteBatch};

/// Per-incident paging state kept in `Table::Meta`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct IncidentPaging {
    generation: u32,
    cursor: u64,
}

/// The planner wired into the engine. Share the directory handle with whoever edits
/// on-call configuration; the hook reads the current directory on every call.
pub struct PagingHook {
    directory: Arc<RwLock<Arc<Directory>>>,
    channels: BTreeMap<ContactKind, String>,
    /// Serialises read-modify-write of the paging state (hooks run outside the
    /// engine's write lock).
    state_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PagingHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagingHook")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

fn state_key(incident_id: &str) -> String {
    format!("paging/incident/{incident_id}")
}

fn rr_key(policy: &str) -> String {
    format!("paging/rr/{policy}")
}

fn ack_channel(actor: &Actor) -> String {
    match actor {
        Actor::Integration { id } => id.clone(),
        Actor::User { .. } => "api".into(),
        Actor::System => "system".into(),
        Actor::Plugin { name } => format!("plugin:{name}"),
    }
}

impl PagingHook {
    /// A hook over a shared directory handle.
    pub fn new(directory: Arc<RwLock<Arc<Directory>>>) -> Self {
        PagingHook {
            directory,
            channels: BTreeMap::new(),
            state_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// A hook over a fixed directory.
    pub fn with_directory(directory: Directory) -> Self {
        Self::new(Arc::new(RwLock::new(Arc::new(directory))))
    }

    /// Sends pages for contact methods of `kind` through the engine channel `name`.
    pub fn with_channel(mut self, kind: ContactKind, name: impl Into<String>) -> Self {
        self.channels.insert(kind, name.into());
        self
    }

    fn channel(&self, kind: ContactKind) -> String {
        self.channels
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| kind.as_str().to_string())
    }

    fn dir(&self) -> Arc<Directory> {
        self.directory.read().clone()
    }

    async fn load_state(
        &self,
        engine: &Engine,
        id: &str,
    ) -> Result<Option<IncidentPaging>, CoreError> {
        Ok(engine.store().get_json(Table::Meta, &state_key(id)).await?)
    }

    fn view(inc: &Incident, policy: Option<String>, st: &IncidentPaging) -> IncidentView {
        IncidentView {
            id: inc.id.clone(),
            number: inc.number,
            title: inc.title.clone(),
            urgency: inc.urgency,
            acknowledged: inc.state != IncidentState::Open,
            resolved: !inc.state.is_active(),
            policy_id: policy,
            round_robin_cursor: st.cursor,
            generation: st.generation,
        }
    }

    /// Executes planner effects against the engine.
    async fn execute(
        &self,
        engine: &Engine,
        inc: &Incident,
        effects: Vec<PagingEffect>,
        skip_adhoc_paged: bool,
    ) -> Result<(), CoreError> {
        let now = engine.now();
        for e in effects {
            match e {
                PagingEffect::Schedule(job) => engine.scheduler().schedule(job).await?,
                PagingEffect::CancelPrefix(p) => {
                    engine.scheduler().cancel_prefix(&p).await?;
                }
                PagingEffect::Page(p) => {
                    let channel = self.channel(p.contact.kind);
                    let rest = p
                        .notification_id
                        .strip_prefix("page/")
                        .unwrap_or(&p.notification_id);
                    let n = Notification {
                        id: format!("page/{channel}/{rest}"),
                        kind: NotificationKind::Page {
                            level: p.level,
                            message: p.message.clone(),
                        },
                        group_key: inc.group_key.clone(),
                        status: AlertStatus::Firing,
                        incident: Some(inc.to_ref(None, None)),
                        alerts: Vec::new(),
                        group_labels: inc.group_labels.clone(),
                        common_labels: Default::default(),
                        common_annotations: Default::default(),
                        runbooks: inc.runbooks.clone(),
                        recent_changes: Vec::new(),
                        receiver: inc.receiver.clone(),
                        target: Target {
                            address: p.contact.address.clone(),
                            user: Some(p.user_id.clone()),
                        },
                        external_url: None,
                        created_at: now,
                    };
                    engine.send(n).await;
                }
                PagingEffect::Event(ev) => {
                    let kind = match &ev {
                        PagingEvent::Escalated { level, targets, .. } => EntryKind::Escalated {
                            level: *level,
                            targets: targets.clone(),
                        },
                        PagingEvent::NotificationRuleStep { user, kind, .. } => EntryKind::Paged {
                            user: user.clone(),
                            channel: Some(kind.as_str().to_string()),
                            message: None,
                        },
                        PagingEvent::Paged {
                            reason: super::planner::PageReason::AdHoc { .. },
                            ..
                        } if skip_adhoc_paged => continue,
                        other => EntryKind::Custom {
                            name: other.audit_action().to_string(),
                            details: serde_json::to_value(other).unwrap_or_default(),
                        },
                    };
                    engine.record_entry(&inc.id, Actor::System, kind).await?;
                }
            }
        }
        Ok(())
    }

    /// Arms the handoff job of every schedule (idempotent: one job per schedule).
    pub async fn arm_handoffs(&self, engine: &Engine) -> Result<usize, CoreError> {
        let dir = self.dir();
        let now = engine.now();
        let mut n = 0;
        for s in dir.schedules() {
            if let Some(job) = next_handoff_job(s, now) {
                engine.scheduler().schedule(job).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn run_handoff(
        &self,
        engine: &Engine,
        job: &Job,
        schedule_id: &str,
    ) -> Result<(), CoreError> {
        let dir = self.dir();
        let Some(s) = dir.schedule(schedule_id) else {
            return Ok(()); // schedule deleted: the job simply ends
        };
        let now = engine.now();
        let plan = plan_handoff(s, &|u| dir.user(u), job.due, now);
        for notice in plan.notices {
            for c in &notice.contacts {
                let channel = self.channel(c.kind);
                let n = Notification {
                    id: format!("handoff/{channel}/{}/{}", notice.notification_id, c.id),
                    kind: NotificationKind::Handoff {
                        schedule: notice.schedule_name.clone(),
                        incoming: notice.incoming,
                    },
                    group_key: format!("schedule/{}", notice.schedule_id),
                    status: AlertStatus::Firing,
                    incident: None,
                    alerts: Vec::new(),
                    group_labels: Default::default(),
                    common_labels: Default::default(),
                    common_annotations: Default::default(),
                    runbooks: Vec::new(),
                    recent_changes: Vec::new(),
                    receiver: "oncall".into(),
                    target: Target {
                        address: c.address.clone(),
                        user: Some(notice.user.clone()),
                    },
                    external_url: None,
                    created_at: now,
                };
                engine.send(n).await;
            }
        }
        for ev in plan.events {
            engine
                .audit_write(
                    Actor::System,
                    "schedule.uncovered_gap",
                    &format!("schedule/{schedule_id}"),
                    serde_json::to_value(&ev).unwrap_or_default(),
                )
                .await?;
        }
        if let Some(next) = plan.next_job {
            // Ids carry the due instant, so the engine completing `job` cannot remove
            // its successor and re-arming at start-up is idempotent.
            engine.scheduler().schedule(next).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl EscalationHook for PagingHook {
    async fn start(
        &self,
        engine: &Engine,
        incident_id: &str,
        policy: &str,
    ) -> Result<(), CoreError> {
        let inc = engine.get_incident(incident_id)?;
        let dir = self.dir();
        let _g = self.state_lock.lock().await;
        let prev = self.load_state(engine, incident_id).await?;
        let counter: u64 = engine
            .store()
            .get_json(Table::Meta, &rr_key(policy))
            .await?
            .unwrap_or(0);
        let st = IncidentPaging {
            generation: prev.map(|p| p.generation + 1).unwrap_or(0),
            cursor: counter,
        };
        let mut b = WriteBatch::new();
        b.put(Table::Meta, rr_key(policy), &(counter + 1))?;
        b.put(Table::Meta, state_key(incident_id), &st)?;
        engine.store().commit(b).await?;
        drop(_g);
        let view = Self::view(&inc, Some(policy.to_string()), &st);
        let planner = PagingPlanner::new(&dir);
        // A restart (reopen or reassignment) cancels whatever an earlier generation
        // left armed, then begins at level 1; the engine records the reassignment.
        let mut effects = Vec::new();
        if st.generation > 0 {
            effects.push(PagingEffect::CancelPrefix(job_prefix(incident_id)));
        }
        effects.extend(planner.on_incident_opened(&view, engine.now()));
        self.execute(engine, &inc, effects, false).await
    }

    async fn stop(
        &self,
        engine: &Engine,
        incident_id: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<(), CoreError> {
        let inc = engine.get_incident(incident_id)?;
        let dir = self.dir();
        let st = self
            .load_state(engine, incident_id)
            .await?
            .unwrap_or_default();
        let view = Self::view(&inc, inc.escalation_policy.clone(), &st);
        let planner = PagingPlanner::new(&dir);
        let effects = match reason {
            "acknowledged" => planner.on_acknowledged(&view, actor.user_id(), &ack_channel(actor)),
            "resolved" => planner.on_resolved(&view),
            _ => vec![PagingEffect::CancelPrefix(job_prefix(incident_id))],
        };
        self.execute(engine, &inc, effects, false).await
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
        let dir = self.dir();
        let st = self
            .load_state(engine, incident_id)
            .await?
            .unwrap_or_default();
        let view = Self::view(&inc, inc.escalation_policy.clone(), &st);
        let effects = PagingPlanner::new(&dir).page_user(
            &view,
            user,
            message,
            actor.user_id(),
            engine.now(),
        )?;
        self.execute(engine, &inc, effects, true).await
    }

    async fn run_job(&self, engine: &Engine, job: &Job) -> Result<(), CoreError> {
        let incident_id = match &job.kind {
            JobKind::Handoff { schedule_id } => {
                return self.run_handoff(engine, job, schedule_id).await;
            }
            JobKind::Escalate { incident_id, .. } | JobKind::NotifyRule { incident_id, .. } => {
                incident_id
            }
            _ => return Ok(()),
        };
        let inc = match engine.get_incident(incident_id) {
            Ok(i) => i,
            Err(CoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let dir = self.dir();
        let st = self
            .load_state(engine, incident_id)
            .await?
            .unwrap_or_default();
        let view = Self::view(&inc, inc.escalation_policy.clone(), &st);
        let effects = PagingPlanner::new(&dir).on_job(job, &view, engine.now());
        self.execute(engine, &inc, effects, false).await
    }
}
