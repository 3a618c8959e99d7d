//! Handoff notifications and the uncovered-gap warning, planned as data.
//!
//! The engine keeps one [`JobKind::Handoff`] job per schedule (id
//! [`handoff_job_id`], which includes the due instant). When it comes due, [`plan_handoff`] says whom to notify for
//! the handoff at the job's due instant, when the next handoff job is due, and
//! whether the next 7 days contain an uncovered gap.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::compiled::{CompiledSchedule, Gap};
use super::people::{ContactMethod, User};
use crate::incident::Urgency;
use crate::scheduler::{Job, JobKind};

/// How far ahead the coverage check looks.
pub const GAP_LOOKAHEAD: SignedDuration = SignedDuration::from_hours(7 * 24);

/// How far ahead [`plan_handoff`] searches for the next handoff before re-arming a
/// plain re-check at that horizon.
pub const HANDOFF_SEARCH: SignedDuration = SignedDuration::from_hours(35 * 24);

/// Tell `user` that their on-call shift starts (`incoming`) or ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandoffNotice {
    /// Schedule id.
    pub schedule_id: String,
    /// Schedule display name.
    pub schedule_name: String,
    /// The handoff instant.
    pub at: Timestamp,
    /// User id.
    pub user: String,
    /// `true` for the person coming on call, `false` for the one going off.
    pub incoming: bool,
    /// Where to tell them: the contact methods of their low-urgency rules (or their
    /// first contact method).
    pub contacts: Vec<ContactMethod>,
    /// Idempotency key: `handoff/<schedule>/<unix seconds>/<in|out>/<user>`.
    pub notification_id: String,
}

/// Events about a schedule (for the audit log and operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScheduleEvent {
    /// Nobody is on call during `gap` within the next 7 days.
    UncoveredGap {
        /// Schedule id.
        schedule_id: String,
        /// The first uncovered interval.
        gap: Gap,
        /// How many uncovered intervals the look-ahead found.
        gaps: usize,
    },
}

/// What to do when a schedule's handoff job is due.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandoffPlan {
    /// Notifications to send.
    pub notices: Vec<HandoffNotice>,
    /// The next handoff job (re-arms the same id).
    pub next_job: Option<Job>,
    /// Warnings.
    pub events: Vec<ScheduleEvent>,
}

/// The job id of a schedule's handoff timer due at `due`:
/// `handoff/<schedule>/<unix seconds>` (cancel all with the prefix `handoff/<schedule>/`).
pub fn handoff_job_id(schedule_id: &str, due: Timestamp) -> String {
    format!("handoff/{schedule_id}/{}", due.as_second())
}

/// The first handoff job for a schedule at or after `now` (`None` if no handoff
/// happens within [`HANDOFF_SEARCH`]; then a re-check job at the horizon).
pub fn next_handoff_job(schedule: &CompiledSchedule, now: Timestamp) -> Option<Job> {
    let horizon = now.checked_add(HANDOFF_SEARCH).ok()?;
    let due = schedule
        .handoffs(now, horizon)
        .first()
        .map(|h| h.at)
        .unwrap_or(horizon);
    Some(Job {
        id: handoff_job_id(schedule.id(), due),
        due,
        kind: JobKind::Handoff {
            schedule_id: schedule.id().to_string(),
        },
        attempts: 0,
    })
}

/// Plans the handoff job due at `due` (run at `now >= due`). `user` looks users up.
/// Running it twice yields the same notification ids.
pub fn plan_handoff<'u>(
    schedule: &CompiledSchedule,
    user: &dyn Fn(&str) -> Option<&'u User>,
    due: Timestamp,
    now: Timestamp,
) -> HandoffPlan {
    let cfg = schedule.config();
    let mut notices = Vec::new();
    let after = due
        .checked_add(SignedDuration::from_nanos(1))
        .unwrap_or(Timestamp::MAX);
    for h in schedule.handoffs(due, after) {
        let mut push = |uid: &Option<String>, incoming: bool| {
            if let Some(uid) = uid
                && let Some(u) = user(uid)
            {
                notices.push(HandoffNotice {
                    schedule_id: cfg.id.clone(),
                    schedule_name: cfg.name.clone(),
                    at: h.at,
                    user: uid.clone(),
                    incoming,
                    contacts: handoff_contacts(u),
                    notification_id: format!(
                        "handoff/{}/{}/{}/{}",
                        cfg.id,
                        h.at.as_second(),
                        if incoming { "in" } else { "out" },
                        uid
                    ),
                });
            }
        };
        if cfg.handoff_notifications.incoming {
            push(&h.incoming, true);
        }
        if cfg.handoff_notifications.outgoing {
            push(&h.outgoing, false);
        }
    }
    let mut events = Vec::new();
    if let Some(w) = coverage_warning(schedule, now) {
        events.push(w);
    }
    HandoffPlan {
        notices,
        next_job: next_handoff_job(schedule, after.max(now)),
        events,
    }
}

/// A warning if the schedule has an uncovered gap in `[now, now + 7 days)`.
pub fn coverage_warning(schedule: &CompiledSchedule, now: Timestamp) -> Option<ScheduleEvent> {
    let end = now.checked_add(GAP_LOOKAHEAD).ok()?;
    let gaps = schedule.gaps(now, end);
    gaps.first().map(|g| ScheduleEvent::UncoveredGap {
        schedule_id: schedule.id().to_string(),
        gap: *g,
        gaps: gaps.len(),
    })
}

fn handoff_contacts(u: &User) -> Vec<ContactMethod> {
    let mut out: Vec<ContactMethod> = Vec::new();
    for r in u.effective_rules(Urgency::Low) {
        if let Some(c) = u.contact(&r.contact_method)
            && !out.iter().any(|o| o.id == c.id)
        {
            out.push(c.clone());
        }
    }
    out
}
