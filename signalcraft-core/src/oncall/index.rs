//! [`ScheduleIndex`]: a schedule's final shifts over a window, rendered once, answering
//! "who is on call at t" with one binary search.

use jiff::Timestamp;

use super::compiled::{CompiledSchedule, OnCall, Shift};

/// A precomputed window of final shifts. Queries inside `[from, to)` are a binary
/// search; queries outside fall back to [`CompiledSchedule::who_is_on_call`]. Answers
/// are identical either way (a property test checks it).
#[derive(Debug, Clone)]
pub struct ScheduleIndex<'a> {
    schedule: &'a CompiledSchedule,
    from: Timestamp,
    to: Timestamp,
    shifts: Vec<Shift>,
}

impl<'a> ScheduleIndex<'a> {
    /// Renders `[from, to)` of `schedule`.
    pub fn build(schedule: &'a CompiledSchedule, from: Timestamp, to: Timestamp) -> Self {
        ScheduleIndex {
            schedule,
            from,
            to,
            shifts: schedule.render(from, to),
        }
    }

    /// The rendered shifts.
    pub fn shifts(&self) -> &[Shift] {
        &self.shifts
    }

    /// Who is on call at `t`.
    pub fn who_is_on_call(&self, t: Timestamp) -> Option<OnCall<'_>> {
        if t < self.from || t >= self.to {
            return self.schedule.who_is_on_call(t);
        }
        let i = self.shifts.partition_point(|s| s.end <= t);
        self.shifts.get(i).filter(|s| s.start <= t).map(|s| OnCall {
            user: &s.user,
            source: s.source,
        })
    }
}
