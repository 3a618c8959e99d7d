//! Escalation policies, per-user notification rules, the paging planner and
//! escalation preview.
//!
//! Everything here is pure and clock-injected: the [`PagingPlanner`] takes an
//! [`IncidentView`] and `now` and returns [`PagingEffect`]s (jobs to arm, job prefixes
//! to cancel, pages to send, events to record). The engine executes them; see
//! [`PagingPlanner`] for the full contract.
//!
//! # Layout
//!
//! * [`policy`]: [`EscalationPolicy`], levels, targets, notify mode, repeat.
//! * [`directory`]: [`Directory`] — users, teams, schedules and policies validated
//!   together (references, escalation loops) — and target resolution.
//! * [`planner`]: [`PagingPlanner`], [`IncidentView`], [`PagingEffect`],
//!   [`PagingEvent`], job ids.
//! * [`preview`]: [`preview`](preview::preview) — who would be paged, when, how.
//! * [`handoffs`]: running schedule handoff jobs in the engine (notifications to the
//!   incoming/outgoing person, re-arming, uncovered-gap audit entries).
//!
//! The engine runs the planner through `engine::PlannerEscalation`.
//!
//! # Job ids
//!
//! Every paging job id starts with `page/<incident>/` ([`job_prefix`]), so ack and
//! resolve cancel them all with one `cancel_prefix`:
//! `page/<incident>/g<generation>/esc/<pass>/<level>` for escalation steps and
//! `page/<incident>/g<generation>/rule/<pass>.<level>|assigned|adhoc-<ms>/<user>/<rule>`
//! for notification-rule steps.

pub mod directory;
pub mod handoffs;
pub mod planner;
pub mod policy;
pub mod preview;

pub use directory::{Directory, DirectoryConfig, Resolved};
pub use handoffs::{arm_handoffs, run_handoff_job};
pub use planner::{
    IncidentView, Page, PageReason, PagingEffect, PagingEvent, PagingPlanner, ReassignTarget,
    escalate_job_id, job_prefix,
};
pub use policy::{EscalationLevel, EscalationPolicy, EscalationTarget, NotifyMode};
pub use preview::{PreviewEntry, preview};
