//! Running schedule handoff jobs inside the [`Engine`]: the imperative shell around
//! [`plan_handoff`](crate::oncall::handoff::plan_handoff).
//!
//! * [`arm_handoffs`] arms one `JobKind::Handoff` job per schedule (call it at
//!   start-up and after schedule changes; ids carry the due instant, so re-arming is
//!   idempotent).
//! * [`run_handoff_job`] runs a due one: it sends a `NotificationKind::Handoff`
//!   notification to the incoming (and, when configured, outgoing) person through
//!   each contact method of their low-urgency rules — notification id
//!   `handoff/<contact kind>/<schedule>/<unix seconds>/<in|out>/<user>/<contact id>`,
//!   so the notifier routes it by contact kind like pages —, arms the next handoff
//!   job, and writes a `schedule.uncovered_gap` audit entry when the next 7 days
//!   contain a gap.
//!
//! The engine's escalation hook should call [`run_handoff_job`] for
//! `JobKind::Handoff` jobs.

use crate::CoreError;
use crate::channel::{Notification, NotificationKind, Target};
use crate::engine::Engine;
use crate::incident::Actor;
use crate::model::AlertStatus;
use crate::oncall::handoff::{HandoffPlan, next_handoff_job, plan_handoff};
use crate::scheduler::{Job, JobKind};

use super::Directory;

/// Arms the next handoff job of every schedule; returns how many were armed.
pub async fn arm_handoffs(engine: &Engine, dir: &Directory) -> Result<usize, CoreError> {
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

/// The notifications a handoff plan sends (pure; `now` is their `created_at`).
pub fn handoff_notifications(plan: &HandoffPlan, now: jiff::Timestamp) -> Vec<Notification> {
    let mut out = Vec::new();
    for notice in &plan.notices {
        for c in &notice.contacts {
            let rest = notice
                .notification_id
                .strip_prefix("handoff/")
                .unwrap_or(&notice.notification_id);
            out.push(Notification {
                id: format!("handoff/{}/{rest}/{}", c.kind.as_str(), c.id),
                kind: NotificationKind::Handoff {
                    schedule: notice.schedule_name.clone(),
                    incoming: notice.incoming,
                },
                group_key: format!("schedule/{}", notice.schedule_id),
                status: AlertStatus::Firing,
                incident: None,
                alerts: Default::default(),
                group_labels: Default::default(),
                common_labels: Default::default(),
                common_annotations: Default::default(),
                runbooks: Vec::new(),
                recent_changes: Vec::new(),
                receiver: format!("user:{}", notice.user),
                target: Target {
                    address: c.address.clone(),
                    user: Some(notice.user.clone()),
                },
                external_url: None,
                created_at: now,
            });
        }
    }
    out
}

/// Runs a due `JobKind::Handoff` job (other kinds are ignored). A job for a schedule
/// that no longer exists simply ends.
pub async fn run_handoff_job(engine: &Engine, dir: &Directory, job: &Job) -> Result<(), CoreError> {
    let JobKind::Handoff { schedule_id } = &job.kind else {
        return Ok(());
    };
    let Some(s) = dir.schedule(schedule_id) else {
        return Ok(());
    };
    let now = engine.now();
    let plan = plan_handoff(s, &|u| dir.user(u), job.due, now);
    for n in handoff_notifications(&plan, now) {
        engine.send(n).await;
    }
    for ev in &plan.events {
        engine
            .audit_write(
                Actor::System,
                "schedule.uncovered_gap",
                &format!("schedule/{schedule_id}"),
                serde_json::to_value(ev).unwrap_or_default(),
            )
            .await?;
    }
    if let Some(next) = plan.next_job {
        // Its id carries its own due instant, so completing `job` cannot remove it.
        engine.scheduler().schedule(next).await?;
    }
    Ok(())
}
