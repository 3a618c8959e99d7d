//! The paging planner: pure decisions about whom to page, when, and how, returned
//! as [`PagingEffect`]s for the engine to execute.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::directory::Directory;
use super::policy::{EscalationPolicy, NotifyMode};
use crate::CoreError;
use crate::incident::Urgency;
use crate::oncall::{ContactKind, ContactMethod, User};
use crate::scheduler::{Job, JobKind};

/// What the planner needs to know about an incident (a projection of the engine's
/// incident, so this module does not depend on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentView {
    /// Incident id (no `/`).
    pub id: String,
    /// Human number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Urgency: selects the users' notification rules.
    pub urgency: Urgency,
    /// Acknowledged (escalation and notification rules stop).
    pub acknowledged: bool,
    /// Resolved (every pending page is cancelled).
    pub resolved: bool,
    /// The escalation policy currently assigned, if any.
    pub policy_id: Option<String>,
    /// Round-robin cursor: the number of incidents opened on this policy before this
    /// one (the engine keeps a per-policy counter). Round-robin levels page target
    /// `(cursor + pass) % targets`.
    pub round_robin_cursor: u64,
    /// Assignment generation: the engine increments it on every reassignment, so jobs
    /// armed for an earlier assignment are recognised as stale and do nothing.
    pub generation: u32,
}

/// A new assignment for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum ReassignTarget {
    /// Run this policy from level 1.
    Policy(String),
    /// Page this user (their notification rules) as level 1.
    User(String),
}

/// Why a page is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PageReason {
    /// An escalation policy level.
    Escalation {
        /// Policy id.
        policy_id: String,
    },
    /// The incident was assigned directly to the user.
    Assigned,
    /// Someone paged the user by hand.
    AdHoc {
        /// Who paged (user id), if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
}

/// One notification to a person through one contact method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Idempotency key (equal to the job id of the rule step it executes).
    pub notification_id: String,
    /// Incident id.
    pub incident_id: String,
    /// User id.
    pub user_id: String,
    /// The contact method (kind + address).
    pub contact: ContactMethod,
    /// Escalation level, 1-based; 0 for an ad-hoc page.
    pub level: u32,
    /// Pass through the policy, 0-based.
    pub repeat: u32,
    /// Index of the user's notification rule.
    pub rule: u32,
    /// Message from whoever paged by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why.
    pub reason: PageReason,
}

/// Typed paging events, for the incident timeline and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PagingEvent {
    /// A policy level was reached.
    Escalated {
        /// Policy id.
        policy_id: String,
        /// Level, 1-based.
        level: u32,
        /// Pass, 0-based.
        repeat: u32,
        /// The level's targets that were used (`user:ann`, `schedule:primary`, …).
        targets: Vec<String>,
        /// The users they resolved to.
        users: Vec<String>,
    },
    /// A user was paged (their notification rules started).
    Paged {
        /// User id.
        user: String,
        /// Level, 1-based (0 = ad hoc).
        level: u32,
        /// Pass, 0-based.
        repeat: u32,
        /// Ad-hoc message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Why.
        reason: PageReason,
    },
    /// A notification-rule step fired (a page attempt through one contact method).
    NotificationRuleStep {
        /// User id.
        user: String,
        /// Rule index.
        rule: u32,
        /// Contact method id.
        contact_method: String,
        /// Contact method kind.
        kind: ContactKind,
        /// The page's notification id.
        notification_id: String,
    },
    /// A schedule target had nobody on call.
    NoOneOnCall {
        /// Schedule id.
        schedule_id: String,
        /// Level, 1-based.
        level: u32,
    },
    /// A paged user has no contact method.
    Unreachable {
        /// User id.
        user: String,
    },
    /// Someone acknowledged; every pending page was cancelled.
    Acknowledged {
        /// Who, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// The channel the acknowledgement came from (`api`, `slack`, `sms`, `voice`, `email`, …).
        channel: String,
    },
    /// The incident was resolved; every pending page was cancelled.
    Cancelled {
        /// Why (`resolved`).
        reason: String,
    },
    /// The incident was reassigned; the policy restarts at level 1 for the new target.
    Reassigned {
        /// New target.
        target: ReassignTarget,
        /// Who did it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Every level of every pass was paged and nobody acknowledged.
    PolicyExhausted {
        /// Policy id.
        policy_id: String,
        /// Passes made.
        passes: u32,
    },
}

impl PagingEvent {
    /// The audit action name (`paging.escalated`, `paging.page`, …).
    pub fn audit_action(&self) -> &'static str {
        match self {
            PagingEvent::Escalated { .. } => "paging.escalated",
            PagingEvent::Paged { .. } => "paging.paged",
            PagingEvent::NotificationRuleStep { .. } => "paging.page_attempt",
            PagingEvent::NoOneOnCall { .. } => "paging.no_one_on_call",
            PagingEvent::Unreachable { .. } => "paging.unreachable",
            PagingEvent::Acknowledged { .. } => "paging.acknowledged",
            PagingEvent::Cancelled { .. } => "paging.cancelled",
            PagingEvent::Reassigned { .. } => "paging.reassigned",
            PagingEvent::PolicyExhausted { .. } => "paging.policy_exhausted",
        }
    }

    /// The user the event is about, for per-user audit queries.
    pub fn subject_user(&self) -> Option<&str> {
        match self {
            PagingEvent::Paged { user, .. }
            | PagingEvent::NotificationRuleStep { user, .. }
            | PagingEvent::Unreachable { user } => Some(user),
            PagingEvent::Acknowledged { user, .. } => user.as_deref(),
            PagingEvent::Reassigned {
                target: ReassignTarget::User(u),
                ..
            } => Some(u),
            _ => None,
        }
    }
}

/// What the engine must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum PagingEffect {
    /// Arm (or re-arm, same id) a durable job; pass it back to
    /// [`PagingPlanner::on_job`] when due.
    Schedule(Job),
    /// Cancel every pending job whose id starts with this prefix.
    CancelPrefix(String),
    /// Send a page (a `NotificationKind::Page` notification).
    Page(Page),
    /// Record an event in the incident timeline and the audit log.
    Event(PagingEvent),
}

/// The prefix of every paging job of an incident (`page/<incident>/`).
pub fn job_prefix(incident_id: &str) -> String {
    format!("page/{incident_id}/")
}

/// `t + m` minutes, saturating at the end of time.
pub(crate) fn add_minutes(t: Timestamp, m: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_mins(m))
        .unwrap_or(if m < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
}

/// Where a rule step belongs: a policy level or an ad-hoc/assigned page.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StepContext {
    Level { level: u32, repeat: u32 },
    Assigned,
    AdHoc { stamp: i64 },
}

impl StepContext {
    fn key(&self) -> String {
        match self {
            StepContext::Level { level, repeat } => format!("{repeat}.{level}"),
            StepContext::Assigned => "assigned".into(),
            StepContext::AdHoc { stamp } => format!("adhoc-{stamp}"),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        if s == "assigned" {
            return Some(StepContext::Assigned);
        }
        if let Some(n) = s.strip_prefix("adhoc-") {
            return n.parse().ok().map(|stamp| StepContext::AdHoc { stamp });
        }
        let (r, l) = s.split_once('.')?;
        Some(StepContext::Level {
            level: l.parse().ok()?,
            repeat: r.parse().ok()?,
        })
    }
}

/// Job id of an escalation step: `page/<incident>/g<gen>/esc/<repeat>/<level>`.
pub fn escalate_job_id(incident_id: &str, generation: u32, repeat: u32, level: u32) -> String {
    format!("page/{incident_id}/g{generation}/esc/{repeat}/{level}")
}

fn rule_job_id(
    incident_id: &str,
    generation: u32,
    ctx: &StepContext,
    user: &str,
    rule: u32,
) -> String {
    format!(
        "page/{incident_id}/g{generation}/rule/{}/{user}/{rule}",
        ctx.key()
    )
}

/// Parses `page/<incident>/g<gen>/<rest>` into (generation, rest segments).
fn parse_job_id<'j>(id: &'j str, incident_id: &str) -> Option<(u32, Vec<&'j str>)> {
    let rest = id
        .strip_prefix("page/")?
        .strip_prefix(incident_id)?
        .strip_prefix("/g")?;
    let mut parts = rest.split('/');
    let generation = parts.next()?.parse().ok()?;
    Some((generation, parts.collect()))
}

/// Pure paging decisions over a [`Directory`].
///
/// # Contract with the engine
///
/// * Call [`on_incident_opened`](Self::on_incident_opened) when an incident with a
///   policy opens, [`on_job`](Self::on_job) with every due `Escalate`/`NotifyRule` job
///   whose id starts with `page/`, [`on_acknowledged`](Self::on_acknowledged),
///   [`on_resolved`](Self::on_resolved), [`on_reassigned`](Self::on_reassigned) and
///   [`page_user`](Self::page_user) on those actions. `now` is the engine clock.
/// * Execute the effects in order: `CancelPrefix` before the `Schedule`s that follow
///   it; turn each `Page` into a `NotificationKind::Page { level, message }`
///   notification with `id = notification_id` to `contact.address` for `user_id`
///   (the channel is `contact.kind`); append every `Event` to the incident timeline
///   and the audit log (action [`PagingEvent::audit_action`]).
/// * Job ids are idempotent by (incident, generation, pass, level, user, rule): a
///   job that runs twice yields pages with the same `notification_id`, which the
///   delivery notification log sends once. Jobs of an acknowledged or resolved
///   incident, or of an older `generation`, produce nothing.
/// * Timing: level `n + 1` is paged `delay_minutes` of level `n` after level `n`;
///   after the last level the next pass starts at level 1 (while passes remain), and
///   after the last pass a `PolicyExhausted` event is emitted. Notification-rule
///   steps run `delay_minutes` after the user was paged, until acknowledgement.
#[derive(Debug, Clone, Copy)]
pub struct PagingPlanner<'a> {
    dir: &'a Directory,
}

impl<'a> PagingPlanner<'a> {
    /// A planner over a directory.
    pub fn new(dir: &'a Directory) -> Self {
        PagingPlanner { dir }
    }

    /// The incident opened: page level 1 of its policy now. Nothing when it has no
    /// policy, is already acknowledged/resolved, or the policy is unknown.
    pub fn on_incident_opened(&self, view: &IncidentView, now: Timestamp) -> Vec<PagingEffect> {
        let mut out = Vec::new();
        if view.acknowledged || view.resolved {
            return out;
        }
        if let Some(pid) = &view.policy_id
            && let Some(pol) = self.dir.policy(pid)
        {
            self.run_level(view, pol, 0, 0, now, &mut out);
        }
        out
    }

    /// A due paging job (`Escalate` or `NotifyRule` whose id starts with `page/`).
    /// Anything else, or a stale job, yields nothing.
    pub fn on_job(&self, job: &Job, view: &IncidentView, now: Timestamp) -> Vec<PagingEffect> {
        let mut out = Vec::new();
        if view.acknowledged || view.resolved {
            return out;
        }
        let Some((generation, parts)) = parse_job_id(&job.id, &view.id) else {
            return out;
        };
        if generation != view.generation {
            return out;
        }
        match &job.kind {
            JobKind::Escalate {
                incident_id,
                level,
                repeat,
            } if *incident_id == view.id => {
                if let Some(pid) = &view.policy_id
                    && let Some(pol) = self.dir.policy(pid)
                {
                    self.run_level(view, pol, *level, *repeat, now, &mut out);
                }
            }
            JobKind::NotifyRule {
                incident_id,
                user_id,
                rule,
            } if *incident_id == view.id => {
                // parts: ["rule", ctx, user, rule]
                let ctx = parts.get(1).and_then(|c| StepContext::parse(c));
                if let (Some(ctx), Some(user)) = (ctx, self.dir.user(user_id)) {
                    self.rule_step(view, user, &ctx, *rule, None, now, &mut out);
                }
            }
            _ => {}
        }
        out
    }

    /// Acknowledged by `user` through `channel`: stop everything.
    pub fn on_acknowledged(
        &self,
        view: &IncidentView,
        user: Option<&str>,
        channel: &str,
    ) -> Vec<PagingEffect> {
        vec![
            PagingEffect::CancelPrefix(job_prefix(&view.id)),
            PagingEffect::Event(PagingEvent::Acknowledged {
                user: user.map(str::to_string),
                channel: channel.to_string(),
            }),
        ]
    }

    /// Resolved: cancel every pending page and escalation.
    pub fn on_resolved(&self, view: &IncidentView) -> Vec<PagingEffect> {
        vec![
            PagingEffect::CancelPrefix(job_prefix(&view.id)),
            PagingEffect::Event(PagingEvent::Cancelled {
                reason: "resolved".into(),
            }),
        ]
    }

    /// Reassigned: cancel everything pending and start over at level 1 for the new
    /// target. `view` must already carry the new assignment: `policy_id` set to the
    /// new policy (or `None` for a user) and `generation` incremented.
    pub fn on_reassigned(
        &self,
        view: &IncidentView,
        target: &ReassignTarget,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<PagingEffect>, CoreError> {
        let mut out = vec![
            PagingEffect::CancelPrefix(job_prefix(&view.id)),
            PagingEffect::Event(PagingEvent::Reassigned {
                target: target.clone(),
                by: by.map(str::to_string),
            }),
        ];
        if view.resolved {
            return Ok(out);
        }
        match target {
            ReassignTarget::Policy(p) => {
                let pol = self.dir.policy(p).ok_or_else(|| CoreError::NotFound {
                    kind: "escalation policy",
                    id: p.clone(),
                })?;
                self.run_level(view, pol, 0, 0, now, &mut out);
            }
            ReassignTarget::User(u) => {
                let user = self.dir.user(u).ok_or_else(|| CoreError::NotFound {
                    kind: "user",
                    id: u.clone(),
                })?;
                self.start_user(
                    view,
                    user,
                    StepContext::Assigned,
                    PageReason::Assigned,
                    None,
                    now,
                    &mut out,
                );
            }
        }
        Ok(out)
    }

    /// Ad-hoc "page user" with an optional message: runs the user's notification
    /// rules for the incident's urgency (until acknowledged). The message travels
    /// with the immediate (delay 0) steps and the `Paged` event; delayed steps are
    /// plain `NotifyRule` jobs and page without it.
    pub fn page_user(
        &self,
        view: &IncidentView,
        user_id: &str,
        message: Option<&str>,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<PagingEffect>, CoreError> {
        let user = self.dir.user(user_id).ok_or_else(|| CoreError::NotFound {
            kind: "user",
            id: user_id.to_string(),
        })?;
        if let Some(m) = message
            && m.len() > 1024
        {
            return Err(CoreError::input("message", "at most 1024 bytes"));
        }
        let mut out = Vec::new();
        let stamp = now.as_millisecond();
        self.start_user(
            view,
            user,
            StepContext::AdHoc { stamp },
            PageReason::AdHoc {
                by: by.map(str::to_string),
            },
            message,
            now,
            &mut out,
        );
        Ok(out)
    }

    /// The incident's pending escalation step among `jobs`: the `Escalate` job of the
    /// current generation (at most one is pending per generation, since every level
    /// arms exactly one next step). Pass it to [`escalate_now`](Self::escalate_now).
    pub fn pending_step<'j>(&self, view: &IncidentView, jobs: &'j [Job]) -> Option<&'j Job> {
        jobs.iter().find(|j| {
            matches!(&j.kind, JobKind::Escalate { incident_id, .. } if *incident_id == view.id)
                && parse_job_id(&j.id, &view.id)
                    .is_some_and(|(g, parts)| g == view.generation && parts.first() == Some(&"esc"))
        })
    }

    /// "Escalate now" (a responder's request: the API, SMS `escalate 12`, keypress 2):
    /// the policy's next level is paged immediately instead of when the current level's
    /// delay runs out.
    ///
    /// `pending` is the incident's pending escalation step
    /// ([`pending_step`](Self::pending_step)); **the caller removes that job by its exact
    /// id** before executing the effects (its step runs now). The effects, in order:
    /// cancel the current level's pending notification-rule steps (those people asked
    /// for someone else), an `Escalated` event for the new level, its pages, and the
    /// job for the step after it, timed from `now` as usual. After the last level of a
    /// pass the next level is level 1 of the next pass.
    ///
    /// Errors: acknowledged or resolved → [`CoreError::InvalidTransition`] (nothing is
    /// paging); no policy → [`CoreError::InvalidInput`] (`escalation_policy`); unknown
    /// policy → [`CoreError::NotFound`]; no pending step, or the last level of the last
    /// pass was already paged → [`CoreError::InvalidTransition`] (nowhere to escalate).
    pub fn escalate_now(
        &self,
        view: &IncidentView,
        pending: Option<&Job>,
        now: Timestamp,
    ) -> Result<Vec<PagingEffect>, CoreError> {
        let refused = |from: String| CoreError::InvalidTransition {
            from,
            to: "escalated to the next level".into(),
        };
        if view.resolved {
            return Err(refused("resolved".into()));
        }
        if view.acknowledged {
            return Err(refused("acknowledged".into()));
        }
        let pid = view.policy_id.as_deref().ok_or_else(|| {
            CoreError::input(
                "escalation_policy",
                format!("incident {} has no escalation policy to escalate", view.id),
            )
        })?;
        let pol = self.dir.policy(pid).ok_or_else(|| CoreError::NotFound {
            kind: "escalation policy",
            id: pid.to_string(),
        })?;
        let last = || refused(format!("the last level of escalation policy {pid}"));
        let Some(JobKind::Escalate { level, repeat, .. }) = pending.map(|j| &j.kind) else {
            return Err(last());
        };
        let (level, repeat) = (*level, *repeat);
        if level as usize >= pol.levels.len() {
            return Err(last());
        }
        // The level being paged now (1-based, pass) — the one escalated away from.
        let current = if level > 0 {
            Some((repeat, level))
        } else {
            repeat.checked_sub(1).map(|r| (r, pol.levels.len() as u32))
        };
        let mut out = Vec::new();
        if let Some((r, l)) = current {
            out.push(PagingEffect::CancelPrefix(format!(
                "page/{}/g{}/rule/{}/",
                view.id,
                view.generation,
                StepContext::Level {
                    level: l,
                    repeat: r
                }
                .key()
            )));
        }
        self.run_level(view, pol, level, repeat, now, &mut out);
        Ok(out)
    }

    /// Pages level `level` (0-based) of pass `repeat` and arms the next step.
    fn run_level(
        &self,
        view: &IncidentView,
        pol: &EscalationPolicy,
        level: u32,
        repeat: u32,
        now: Timestamp,
        out: &mut Vec<PagingEffect>,
    ) {
        let Some(lvl) = pol.levels.get(level as usize) else {
            out.push(PagingEffect::Event(PagingEvent::PolicyExhausted {
                policy_id: pol.id.clone(),
                passes: repeat + 1,
            }));
            return;
        };
        let targets: Vec<_> = match lvl.mode {
            NotifyMode::All => lvl.targets.iter().collect(),
            NotifyMode::RoundRobin => {
                let n = lvl.targets.len() as u64;
                let i = (view.round_robin_cursor.wrapping_add(u64::from(repeat))) % n.max(1);
                lvl.targets.get(i as usize).into_iter().collect()
            }
        };
        let mut users: Vec<String> = Vec::new();
        let mut empty = Vec::new();
        for t in &targets {
            let r = self.dir.resolve_target(t, now);
            for u in r.users {
                if !users.contains(&u) {
                    users.push(u);
                }
            }
            empty.extend(r.empty_schedules);
        }
        out.push(PagingEffect::Event(PagingEvent::Escalated {
            policy_id: pol.id.clone(),
            level: level + 1,
            repeat,
            targets: targets.iter().map(|t| t.label()).collect(),
            users: users.clone(),
        }));
        for s in empty {
            out.push(PagingEffect::Event(PagingEvent::NoOneOnCall {
                schedule_id: s,
                level: level + 1,
            }));
        }
        for uid in &users {
            if let Some(user) = self.dir.user(uid) {
                self.start_user(
                    view,
                    user,
                    StepContext::Level {
                        level: level + 1,
                        repeat,
                    },
                    PageReason::Escalation {
                        policy_id: pol.id.clone(),
                    },
                    None,
                    now,
                    out,
                );
            }
        }
        // Next step: the next level, the next pass, or the exhaustion marker.
        let (next_level, next_repeat) = if (level as usize) + 1 < pol.levels.len() {
            (level + 1, repeat)
        } else if repeat + 1 < pol.repeat {
            (0, repeat + 1)
        } else {
            (pol.levels.len() as u32, repeat)
        };
        out.push(PagingEffect::Schedule(Job {
            id: escalate_job_id(&view.id, view.generation, next_repeat, next_level),
            due: add_minutes(now, lvl.delay_minutes),
            kind: JobKind::Escalate {
                incident_id: view.id.clone(),
                level: next_level,
                repeat: next_repeat,
            },
            attempts: 0,
        }));
    }

    /// A user is paged: event, immediate rule steps, jobs for delayed ones.
    #[allow(clippy::too_many_arguments)]
    fn start_user(
        &self,
        view: &IncidentView,
        user: &User,
        ctx: StepContext,
        reason: PageReason,
        message: Option<&str>,
        now: Timestamp,
        out: &mut Vec<PagingEffect>,
    ) {
        let (level, repeat) = match ctx {
            StepContext::Level { level, repeat } => (level, repeat),
            StepContext::Assigned => (1, 0),
            StepContext::AdHoc { .. } => (0, 0),
        };
        out.push(PagingEffect::Event(PagingEvent::Paged {
            user: user.id.clone(),
            level,
            repeat,
            message: message.map(str::to_string),
            reason,
        }));
        let rules = user.effective_rules(view.urgency);
        if rules.is_empty() {
            out.push(PagingEffect::Event(PagingEvent::Unreachable {
                user: user.id.clone(),
            }));
        }
        for (i, r) in rules.iter().enumerate() {
            let i = i as u32;
            if r.delay_minutes <= 0 {
                self.rule_step(view, user, &ctx, i, message, now, out);
            } else {
                out.push(PagingEffect::Schedule(Job {
                    id: rule_job_id(&view.id, view.generation, &ctx, &user.id, i),
                    due: add_minutes(now, r.delay_minutes),
                    kind: JobKind::NotifyRule {
                        incident_id: view.id.clone(),
                        user_id: user.id.clone(),
                        rule: i,
                    },
                    attempts: 0,
                }));
            }
        }
    }

    /// Executes rule `rule` of `user` for a context: one page.
    #[allow(clippy::too_many_arguments)]
    fn rule_step(
        &self,
        view: &IncidentView,
        user: &User,
        ctx: &StepContext,
        rule: u32,
        message: Option<&str>,
        _now: Timestamp,
        out: &mut Vec<PagingEffect>,
    ) {
        let rules = user.effective_rules(view.urgency);
        let Some(r) = rules.get(rule as usize) else {
            return;
        };
        let Some(contact) = user.contact(&r.contact_method) else {
            return;
        };
        let (level, repeat, reason) = match ctx {
            StepContext::Level { level, repeat } => (
                *level,
                *repeat,
                PageReason::Escalation {
                    policy_id: view.policy_id.clone().unwrap_or_default(),
                },
            ),
            StepContext::Assigned => (1, 0, PageReason::Assigned),
            StepContext::AdHoc { .. } => (0, 0, PageReason::AdHoc { by: None }),
        };
        let notification_id = rule_job_id(&view.id, view.generation, ctx, &user.id, rule);
        out.push(PagingEffect::Event(PagingEvent::NotificationRuleStep {
            user: user.id.clone(),
            rule,
            contact_method: contact.id.clone(),
            kind: contact.kind,
            notification_id: notification_id.clone(),
        }));
        out.push(PagingEffect::Page(Page {
            notification_id,
            incident_id: view.id.clone(),
            user_id: user.id.clone(),
            contact: contact.clone(),
            level,
            repeat,
            rule,
            message: message.map(str::to_string),
            reason,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::DirectoryConfig;

    fn dir() -> Directory {
        let cfg: DirectoryConfig = serde_json::from_value(serde_json::json!({
            "users": [
                {"id": "ann", "name": "Ann", "contact_methods": [{"id": "s", "kind": "sms", "address": "+15550001111"}],
                 "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "s"}]}},
                {"id": "bob", "name": "Bob", "contact_methods": [{"id": "s", "kind": "sms", "address": "+15550002222"}],
                 "notification_rules": {"high": [{"delay_minutes": 0, "contact_method": "s"}]}}
            ],
            "escalation_policies": [{"id": "p", "name": "P", "repeat": 2, "levels": [
                {"targets": [{"type": "user", "id": "ann"}], "delay_minutes": 5},
                {"targets": [{"type": "user", "id": "bob"}], "delay_minutes": 7}
            ]}]
        }))
        .unwrap();
        Directory::new(cfg).unwrap()
    }

    fn view() -> IncidentView {
        IncidentView {
            id: "inc-1".into(),
            number: 1,
            title: "t".into(),
            urgency: Urgency::High,
            acknowledged: false,
            resolved: false,
            policy_id: Some("p".into()),
            round_robin_cursor: 0,
            generation: 3,
        }
    }

    fn job(repeat: u32, level: u32) -> Job {
        Job {
            id: escalate_job_id("inc-1", 3, repeat, level),
            due: "2026-01-01T00:10:00Z".parse().unwrap(),
            kind: JobKind::Escalate {
                incident_id: "inc-1".into(),
                level,
                repeat,
            },
            attempts: 0,
        }
    }

    #[test]
    fn pending_step_ignores_other_generations_and_rule_jobs() {
        let d = dir();
        let p = PagingPlanner::new(&d);
        let mut stale = job(0, 1);
        stale.id = escalate_job_id("inc-1", 2, 0, 1);
        let rule = Job {
            id: "page/inc-1/g3/rule/0.1/ann/0".into(),
            kind: JobKind::NotifyRule {
                incident_id: "inc-1".into(),
                user_id: "ann".into(),
                rule: 0,
            },
            ..job(0, 1)
        };
        assert_eq!(
            p.pending_step(&view(), &[stale.clone(), rule.clone()]),
            None
        );
        let current = job(0, 1);
        let jobs = [stale, rule, current.clone()];
        assert_eq!(p.pending_step(&view(), &jobs), Some(&current));
    }

    #[test]
    fn escalating_from_the_last_level_starts_the_next_pass_and_stops_the_last_level() {
        let d = dir();
        let p = PagingPlanner::new(&d);
        let now: Timestamp = "2026-01-01T00:03:00Z".parse().unwrap();
        // Pass 0 paged bob (level 2); the pending step is level 1 of pass 1.
        let eff = p.escalate_now(&view(), Some(&job(1, 0)), now).unwrap();
        assert_eq!(
            eff[0],
            PagingEffect::CancelPrefix("page/inc-1/g3/rule/0.2/".into())
        );
        assert!(eff.iter().any(|e| matches!(e,
            PagingEffect::Event(PagingEvent::Escalated { level: 1, repeat: 1, users, .. }) if users == &["ann".to_string()])));
        assert!(eff.iter().any(|e| matches!(e, PagingEffect::Page(pg) if pg.user_id == "ann" && pg.level == 1 && pg.repeat == 1)));
        let next = eff
            .iter()
            .find_map(|e| match e {
                PagingEffect::Schedule(j) => Some(j.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(next.id, escalate_job_id("inc-1", 3, 1, 1));
        assert_eq!(next.due, add_minutes(now, 5));

        // The exhaustion marker pending (last level of the last pass already paged).
        let e = p.escalate_now(&view(), Some(&job(1, 2)), now).unwrap_err();
        assert!(matches!(e, CoreError::InvalidTransition { .. }), "{e}");
        let e = p.escalate_now(&view(), None, now).unwrap_err();
        assert!(matches!(e, CoreError::InvalidTransition { .. }), "{e}");
        let mut v = view();
        v.policy_id = None;
        assert!(matches!(
            p.escalate_now(&v, Some(&job(0, 1)), now),
            Err(CoreError::InvalidInput { .. })
        ));
        v.policy_id = Some("gone".into());
        assert!(matches!(
            p.escalate_now(&v, Some(&job(0, 1)), now),
            Err(CoreError::NotFound { .. })
        ));
        let mut v = view();
        v.resolved = true;
        assert!(p.escalate_now(&v, Some(&job(0, 1)), now).is_err());
    }
}
