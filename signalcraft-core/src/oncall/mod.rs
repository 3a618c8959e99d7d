//! On-call: people, teams, rotations, layered schedules with restrictions, overrides,
//! handoffs, and who is on call at an instant.
//!
//! Everything here is pure: functions take instants and return data; nothing reads a
//! clock. Time-zone rules (DST gaps and folds) are in [`time`] and docs/oncall-time.md.
//!
//! # Layout
//!
//! * [`people`]: [`User`] (contact methods, notification rules), [`Team`].
//! * [`schedule`]: configuration — [`Schedule`], [`ScheduleLayer`], [`Rotation`],
//!   [`Restriction`], [`Override`] — and its validation.
//! * [`time`]: local wall time → instant with the DST rules.
//! * [`compiled`]: [`CompiledSchedule`] — who is on call, final shifts, handoffs, gaps.
//! * [`index`]: [`ScheduleIndex`] — a rendered window for million-per-second lookups.
//! * [`handoff`]: handoff notifications and the uncovered-gap warning.
//! * [`ical`]: iCalendar (RFC 5545) export of final shifts.

pub mod compiled;
pub mod handoff;
pub mod ical;
pub mod index;
pub mod people;
pub mod schedule;
pub mod time;

pub use compiled::{CompiledSchedule, Gap, Handoff, OnCall, OnCallSource, Shift};
pub use handoff::{HandoffNotice, ScheduleEvent, plan_handoff};
pub use index::ScheduleIndex;
pub use people::{
    ContactKind, ContactMethod, NotificationRule, NotificationRules, Team, TeamMember, TeamRole,
    User,
};
pub use schedule::{
    HandoffNotifications, Override, Restriction, Rotation, Schedule, ScheduleLayer, ShiftLength,
    Weekday,
};
