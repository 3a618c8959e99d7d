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

    /// Called by [`Engine::recover`] after the engine's state was loaded (before it
    /// serves): resume paging that a crash interrupted between an incident's commit and
    /// the hook's own durable writes. Must be idempotent (a crash may interrupt it too).
    /// The default does nothing.
    async fn recover(&self, engine: &Engine) -> Result<(), CoreError> {
        let _ = engine;
        Ok(())
    }

    /// Escalate now, at `actor`'s request: page the incident's next escalation level
    /// immediately and record it (an `escalated` timeline entry by `actor`).
    ///
    /// The default refuses with [`CoreError::InvalidInput`]: a hook without escalation
    /// policies has no next level.
    async fn escalate_now(
        &self,
        engine: &Engine,
        incident_id: &str,
        actor: &Actor,
    ) -> Result<(), CoreError> {
        let _ = (engine, actor);
        Err(CoreError::input(
            "escalation_policy",
            format!("incident {incident_id}: this engine pages no escalation policies"),
        ))
    }
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
/// * Escalate now ([`Engine::escalate_now`]) → the pending escalation step runs at
///   once (the next level is paged, the current level's pending rule steps stop).
/// * Reassign → cancel and start over (the incident's `paging_generation` makes old
///   jobs stale); "page user" → the user's notification rules, ad hoc.
/// * Each page becomes a [`NotificationKind::Page`](crate::channel::NotificationKind)
///   notification with id `page/<contact kind>/<planner id>` — so a notifier routes it
///   by the contact kind (`sms`, `voice`, `email`, `slack_dm`, `push`, `webhook`) — to
///   the contact address, through the engine's [`Notifier`](super::Notifier).
/// * `Handoff` jobs run [`crate::escalation::run_handoff_job`] (arm them with
///   [`crate::escalation::arm_handoffs`]).
/// * Paging events become timeline entries (`escalated`, `paged`, or `custom` named
///   after the event's audit action) with audit entries; a step job run again
///   after a crash records only what its first run did not.
/// * After a restart ([`Engine::recover`]) paging that a crash cut off between an
///   incident's commit and its first armed step is resumed (see
///   [`EscalationHook::recover`] on this type for the crash-safety argument).
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

    /// Pages level 1 of `policy` for an incident and arms its next step (`rerun`:
    /// resumed after a crash, see [`Self::apply`]).
    async fn begin(
        &self,
        engine: &Engine,
        incident_id: &str,
        policy: &str,
        rerun: bool,
    ) -> Result<(), CoreError> {
        let inc = engine.fetch_incident(incident_id).await?;
        let mut v = view(&inc);
        v.policy_id = Some(policy.to_string());
        let dir = self.directory();
        let effects =
            crate::escalation::PagingPlanner::new(&dir).on_incident_opened(&v, engine.now());
        self.apply(engine, &inc, effects, &Actor::System, rerun)
            .await
    }

    /// Executes the planner's effects in order. With `rerun` (a job, or a start
    /// resumed by `recover`, that may have run before), the timeline events an earlier
    /// run recorded are skipped ([`Self::recorded_before`]: one timeline read); a
    /// first run (an incident's start, "escalate now") records all without reading.
    async fn apply(
        &self,
        engine: &Engine,
        incident: &crate::incident::Incident,
        effects: Vec<crate::escalation::PagingEffect>,
        actor: &Actor,
        rerun: bool,
    ) -> Result<(), CoreError> {
        use crate::channel::{NotificationKind, Target};
        use crate::escalation::PagingEffect;
        let recorded = if rerun {
            self.recorded_before(engine, incident, &effects).await?
        } else {
            Vec::new()
        };
        for (i, e) in effects.into_iter().enumerate() {
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
                        alerts: Default::default(),
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
                    if recorded.get(i).copied().unwrap_or(false) {
                        continue;
                    }
                    engine
                        .record_entry(&incident.id, actor.clone(), entry_kind(&ev))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Which of `effects`' events an earlier run of the same step recorded already
    /// (a job re-run after a crash, or a start resumed by `recover`), so a re-run
    /// records nothing twice.
    ///
    /// A policy step is identified within its paging generation (the timeline after
    /// the last `reopened` / `reassigned` entry) by its ordinal: every step records
    /// exactly one `escalated` entry, in order, so step (pass `r`, level `l`) of a
    /// policy of `n` levels owns the `r·n + l − 1`-th one. The step's events are
    /// recorded one by one in order, so a crash leaves a prefix of them: the events
    /// found in order after that entry (before the next step's) are skipped, the rest
    /// recorded. The exhaustion event is recorded once per generation. Other events
    /// (ad-hoc pages, delayed rule steps) are always recorded. Assumes the policy's
    /// level count did not change between the runs.
    async fn recorded_before(
        &self,
        engine: &Engine,
        incident: &crate::incident::Incident,
        effects: &[crate::escalation::PagingEffect],
    ) -> Result<Vec<bool>, CoreError> {
        use crate::escalation::{PagingEffect, PagingEvent};
        use crate::incident::EntryKind;
        let mut skip = vec![false; effects.len()];
        let step = effects.iter().find_map(|e| match e {
            PagingEffect::Event(PagingEvent::Escalated {
                policy_id,
                level,
                repeat,
                ..
            }) => Some((policy_id.as_str(), *level, *repeat)),
            _ => None,
        });
        let is_exhausted = |e: &PagingEffect| {
            matches!(e, PagingEffect::Event(PagingEvent::PolicyExhausted { .. }))
        };
        let exhausts = effects.iter().any(is_exhausted);
        if step.is_none() && !exhausts {
            return Ok(skip);
        }
        let timeline = engine.timeline(&incident.id).await?;
        let entries = &timeline[generation_start(&timeline)..];
        if exhausts && entries.iter().any(|e| is_exhaustion(&e.kind)) {
            for (i, e) in effects.iter().enumerate() {
                skip[i] |= is_exhausted(e);
            }
        }
        let Some((policy, level, repeat)) = step else {
            return Ok(skip);
        };
        let levels = self
            .directory()
            .policy(policy)
            .map_or(0, |p| p.levels.len());
        let ordinal = (repeat as usize)
            .saturating_mul(levels)
            .saturating_add(level.saturating_sub(1) as usize);
        let steps: Vec<usize> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.kind, EntryKind::Escalated { .. }))
            .map(|(i, _)| i)
            .collect();
        let Some(&at) = steps.get(ordinal) else {
            return Ok(skip);
        };
        let end = steps.get(ordinal + 1).copied().unwrap_or(entries.len());
        let mut next = at;
        for (i, e) in effects.iter().enumerate() {
            let PagingEffect::Event(ev) = e else {
                continue;
            };
            if is_exhausted(e) {
                continue;
            }
            let kind = entry_kind(ev);
            match entries[next..end].iter().position(|x| x.kind == kind) {
                Some(off) => {
                    skip[i] = true;
                    next += off + 1;
                }
                None => break,
            }
        }
        Ok(skip)
    }
}

/// The timeline entry recording a paging event.
fn entry_kind(ev: &crate::escalation::PagingEvent) -> crate::incident::EntryKind {
    use crate::escalation::PagingEvent;
    use crate::incident::EntryKind;
    match ev {
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
    }
}

/// Where the current paging generation starts in an incident's timeline: after its
/// last `reopened` / `reassigned` entry (each of them starts a new generation).
fn generation_start(timeline: &[crate::incident::TimelineEntry]) -> usize {
    use crate::incident::EntryKind;
    timeline
        .iter()
        .rposition(|e| matches!(e.kind, EntryKind::Reopened | EntryKind::Reassigned { .. }))
        .map_or(0, |i| i + 1)
}

/// Whether a timeline entry records that the policy ran out.
fn is_exhaustion(kind: &crate::incident::EntryKind) -> bool {
    matches!(kind, crate::incident::EntryKind::Custom { name, .. } if name == "paging.policy_exhausted")
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
        self.begin(engine, incident_id, policy, false).await
    }

    async fn stop(
        &self,
        engine: &Engine,
        incident_id: &str,
        actor: &Actor,
        reason: &str,
    ) -> Result<(), CoreError> {
        let inc = engine.fetch_incident(incident_id).await?;
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
        self.apply(engine, &inc, effects, &Actor::System, false)
            .await
    }

    async fn page_user(
        &self,
        engine: &Engine,
        incident_id: &str,
        user: &str,
        message: Option<&str>,
        actor: &Actor,
    ) -> Result<(), CoreError> {
        let inc = engine.fetch_incident(incident_id).await?;
        let dir = self.directory();
        let effects = crate::escalation::PagingPlanner::new(&dir).page_user(
            &view(&inc),
            user,
            message,
            actor.user_id(),
            engine.now(),
        )?;
        self.apply(engine, &inc, effects, &Actor::System, false)
            .await
    }

    /// Finds the incident's pending escalation step (a scan of the pending jobs: fine
    /// for a manual action), removes it by its exact id and runs the planner's
    /// [`escalate_now`](crate::escalation::PagingPlanner::escalate_now); every event is
    /// recorded with `actor`.
    async fn escalate_now(
        &self,
        engine: &Engine,
        incident_id: &str,
        actor: &Actor,
    ) -> Result<(), CoreError> {
        let inc = engine.fetch_incident(incident_id).await?;
        let v = view(&inc);
        let dir = self.directory();
        let planner = crate::escalation::PagingPlanner::new(&dir);
        let prefix = crate::escalation::job_prefix(&v.id);
        let jobs: Vec<Job> = engine
            .scheduler()
            .pending()
            .await?
            .into_iter()
            .filter(|j| j.id.starts_with(&prefix))
            .collect();
        let pending = planner.pending_step(&v, &jobs);
        let effects = planner.escalate_now(&v, pending, engine.now())?;
        // The step's successor is armed (by `apply`) before the step itself is
        // removed, so a crash in between never leaves the incident without a pending
        // escalation step (see `recover`).
        self.apply(engine, &inc, effects, actor, false).await?;
        if let Some(job) = pending {
            engine.scheduler().cancel(&job.id).await?;
        }
        Ok(())
    }

    /// Resumes every escalation a crash cut off before its first durable step.
    ///
    /// # Crash safety
    ///
    /// An incident's commit and its hook's writes (timeline entries, pages, the next
    /// `Escalate` job) are separate: a crash between them used to leave an open
    /// incident that never escalated. The invariant this restores: **every open
    /// incident with a policy it has not run out of has a pending `Escalate` job of its
    /// current paging generation**. Why it holds after `recover`:
    ///
    /// * While a policy runs, each step arms the next `Escalate` job (same
    ///   generation) *before* its own job is completed, so a running step's job stays
    ///   pending until its successor is durable; only the exhaustion step arms none
    ///   (and records `paging.policy_exhausted` first). "Escalate now" removes the
    ///   pending step only after its successor was armed.
    /// * So an open incident without such a job either exhausted its policy (a
    ///   `paging.policy_exhausted` entry after the timeline's last `reopened` /
    ///   `reassigned` entry, the entries that start a generation: left alone) or its
    ///   [`start`](EscalationHook::start) was cut short (none of its durable writes, or
    ///   only some before the `Escalate` job). For those `start` runs again now: level
    ///   1 is paged again with the *same* notification ids (`page/<kind>/page/<incident>/
    ///   g<gen>/rule/0.1/<user>/<rule>`, which a notification log delivers once) and its
    ///   next step is armed under its deterministic job id — re-arming an id replaces
    ///   the job, so running this twice (a crash during recovery) never schedules two.
    /// * The timeline entries the cut-short run recorded are not recorded again (see
    ///   `apply`).
    ///
    /// The resumed escalation is timed from the restart: level 2 comes its delay
    /// after recovery, not after the original open.
    async fn recover(&self, engine: &Engine) -> Result<(), CoreError> {
        use crate::incident::{IncidentFilter, IncidentState};
        use crate::scheduler::JobKind;
        let mut filter = IncidentFilter {
            states: vec![IncidentState::Open],
            limit: 500,
            ..Default::default()
        };
        let mut open = Vec::new();
        loop {
            let page = engine.list_incidents(&filter);
            open.extend(
                page.items
                    .into_iter()
                    .filter_map(|i| Some((i.escalation_policy.clone()?, i))),
            );
            match page.next {
                Some(n) => filter.before = Some(n),
                None => break,
            }
        }
        if open.is_empty() {
            return Ok(());
        }
        // `page/<incident>/g<generation>` of every pending escalation step.
        let armed: std::collections::HashSet<String> = engine
            .scheduler()
            .pending()
            .await?
            .into_iter()
            .filter(|j| matches!(j.kind, JobKind::Escalate { .. }))
            .filter_map(|j| {
                let (head, _) = j.id.split_once("/esc/")?;
                Some(head.to_string())
            })
            .collect();
        for (policy, inc) in open {
            if armed.contains(&format!("page/{}/g{}", inc.id, inc.paging_generation)) {
                continue;
            }
            let timeline = engine.timeline(&inc.id).await?;
            let exhausted = timeline[generation_start(&timeline)..]
                .iter()
                .any(|e| is_exhaustion(&e.kind));
            if !exhausted {
                self.begin(engine, &inc.id, &policy, true).await?;
            }
        }
        Ok(())
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
        let Ok(inc) = engine.fetch_incident(incident_id).await else {
            return Ok(());
        };
        let dir = self.directory();
        let effects =
            crate::escalation::PagingPlanner::new(&dir).on_job(job, &view(&inc), engine.now());
        self.apply(engine, &inc, effects, &Actor::System, true)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use parking_lot::Mutex;

    use super::*;
    use crate::channel::{Channel, Delivered, DeliveryError, Notification, NotificationKind};
    use crate::clock::ManualClock;
    use crate::engine::{ChannelNotifier, EngineConfig};
    use crate::escalation::{Directory, DirectoryConfig};
    use crate::incident::{EntryKind, IncidentFilter};
    use crate::model::{Alert, Event, Labels, Severity, Source};

    /// Records the level of every page it gets.
    #[derive(Default)]
    struct Pages(Mutex<Vec<(String, u32)>>);

    #[async_trait]
    impl Channel for Pages {
        fn kind(&self) -> &str {
            "rec"
        }
        fn name(&self) -> &str {
            "rec"
        }
        async fn deliver(&self, n: &Notification) -> Result<Delivered, DeliveryError> {
            if let NotificationKind::Page { level, .. } = n.kind {
                let user = n.target.user.clone().unwrap_or_default();
                self.0.lock().push((user, level));
            }
            Ok(Delivered::default())
        }
    }

    /// ann (level 1: SMS now, SMS again after 3 min), bob (level 2), one pass.
    fn engine() -> (Engine, ManualClock, Arc<Pages>) {
        let dir: DirectoryConfig = serde_json::from_value(serde_json::json!({
            "users": [
                {"id": "ann", "name": "Ann", "contact_methods": [{"id": "s", "kind": "sms", "address": "+4915100000001"}],
                 "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "s"},
                                                 {"delay_minutes": 3, "contact_method": "s"}]}},
                {"id": "bob", "name": "Bob", "contact_methods": [{"id": "s", "kind": "sms", "address": "+4915100000002"}],
                 "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "s"}]}}
            ],
            "escalation_policies": [{"id": "db", "name": "DB", "levels": [
                {"targets": [{"type": "user", "id": "ann"}], "delay_minutes": 10},
                {"targets": [{"type": "user", "id": "bob"}], "delay_minutes": 10}
            ]}]
        }))
        .unwrap();
        let cfg: EngineConfig = serde_json::from_value(serde_json::json!({
            "route": {"group_wait": "0s", "escalation_policy": "db",
                      "notify": [{"channel": "sms", "target": "#db"}]}
        }))
        .unwrap();
        let clock = ManualClock::new("2026-03-02T10:00:00Z".parse().unwrap());
        let pages = Arc::new(Pages::default());
        let engine = Engine::builder(cfg)
            .clock(Arc::new(clock.clone()))
            .notifier(Arc::new(ChannelNotifier::new().with("sms", pages.clone())))
            .escalation(Arc::new(PlannerEscalation::new(
                Directory::new(dir).unwrap(),
            )))
            .build()
            .unwrap();
        (engine, clock, pages)
    }

    async fn open_incident(engine: &Engine) -> String {
        let mut l = Labels::new();
        l.insert("alertname".into(), "PrimaryDown".into());
        let mut a = Alert::firing(
            Source {
                provider: "t".into(),
                integration: "prom".into(),
            },
            "primary down",
            l,
        );
        a.severity = Severity::Critical;
        engine.ingest(vec![Event::Alert(a)]).await.unwrap();
        engine.run_due_jobs().await.unwrap();
        let page = engine.list_incidents(&IncidentFilter::default());
        page.items[0].id.clone()
    }

    async fn job_ids(engine: &Engine, incident: &str) -> Vec<String> {
        let mut ids: Vec<String> = engine
            .scheduler()
            .pending()
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .filter(|id| id.starts_with(&format!("page/{incident}/")))
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn escalate_now_pages_the_next_level_at_once_as_the_actor() {
        let (engine, clock, pages) = engine();
        let id = open_incident(&engine).await;
        assert_eq!(pages.0.lock().clone(), [("ann".to_string(), 1)]);
        assert_eq!(
            job_ids(&engine, &id).await,
            [
                format!("page/{id}/g0/esc/0/1"),
                format!("page/{id}/g0/rule/0.1/ann/1"),
            ]
        );

        clock.advance(std::time::Duration::from_secs(60));
        engine.escalate_now(&id, Actor::user("ann")).await.unwrap();
        assert_eq!(
            pages.0.lock().clone(),
            [("ann".to_string(), 1), ("bob".to_string(), 2)],
            "level 2 paged at once, 9 minutes early"
        );
        // Level 2's step is armed from now; ann's pending SMS retry is cancelled and
        // the old level-2 job is gone (it would page bob a second time).
        let jobs = engine.scheduler().pending().await.unwrap();
        let mine: Vec<_> = jobs
            .iter()
            .filter(|j| j.id.starts_with(&format!("page/{id}/")))
            .collect();
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!(mine[0].id, format!("page/{id}/g0/esc/0/2"));
        assert_eq!(
            mine[0].due,
            "2026-03-02T10:11:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        let timeline = engine.timeline(&id).await.unwrap();
        let esc: Vec<_> = timeline
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Escalated { .. }))
            .collect();
        assert_eq!(esc.len(), 2, "{timeline:#?}");
        assert_eq!(esc[0].actor, Actor::System);
        assert_eq!(esc[1].actor, Actor::user("ann"));
        assert!(
            matches!(&esc[1].kind, EntryKind::Escalated { level: 2, targets } if targets == &["bob".to_string()])
        );
        let audit = engine
            .audit(&crate::incident::AuditQuery::default())
            .await
            .unwrap();
        assert!(
            audit
                .iter()
                .any(|a| a.action == "incident.escalated" && a.actor == Actor::user("ann")),
            "{audit:#?}"
        );

        // The last level of the only pass: nowhere to go; nothing changes.
        let e = engine
            .escalate_now(&id, Actor::user("bob"))
            .await
            .unwrap_err();
        assert!(matches!(e, CoreError::InvalidTransition { .. }), "{e}");
        assert_eq!(pages.0.lock().len(), 2);
        assert_eq!(job_ids(&engine, &id).await.len(), 1);

        // Acknowledged: refused too.
        engine.acknowledge(&id, Actor::user("bob")).await.unwrap();
        let e = engine
            .escalate_now(&id, Actor::user("bob"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("acknowledged"), "{e}");
    }

    #[tokio::test]
    async fn escalate_now_without_a_policy_is_refused() {
        let engine = Engine::builder(EngineConfig::default()).build().unwrap();
        let e = engine.escalate_now("inc-404", Actor::System).await;
        assert!(matches!(e, Err(CoreError::NotFound { .. })));
        let hook = NoEscalation;
        let e = hook
            .escalate_now(&engine, "inc-1", &Actor::System)
            .await
            .unwrap_err();
        assert!(
            matches!(e, CoreError::InvalidInput { ref field, .. } if field == "escalation_policy")
        );
    }
}
