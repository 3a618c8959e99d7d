//! Schedule configuration: [`Schedule`] → [`ScheduleLayer`]s (each a [`Rotation`] plus
//! optional [`Restriction`]s) and [`Override`]s, with validation that names the field.
//!
//! Precedence: layers listed **later** sit on top and win wherever they have someone
//! on call; overrides win over every layer; among overlapping overrides the one listed
//! last wins.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::people::check_id;
use super::time::{parse_hhmm, parse_zone};
use crate::CoreError;

/// An on-call schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// IANA time zone in which handoff times and restrictions are read.
    pub time_zone: String,
    /// Layers, lowest precedence first.
    pub layers: Vec<ScheduleLayer>,
    /// Overrides (win over every layer; the last listed wins where they overlap).
    #[serde(default)]
    pub overrides: Vec<Override>,
    /// Who is told at each handoff.
    #[serde(default)]
    pub handoff_notifications: HandoffNotifications,
}

/// Handoff notification settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffNotifications {
    /// Notify the person coming on call (default true).
    #[serde(default = "yes")]
    pub incoming: bool,
    /// Notify the person going off call (default false).
    #[serde(default)]
    pub outgoing: bool,
}

fn yes() -> bool {
    true
}

impl Default for HandoffNotifications {
    fn default() -> Self {
        HandoffNotifications {
            incoming: true,
            outgoing: false,
        }
    }
}

/// One layer of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleLayer {
    /// Display name (e.g. `primary`, `weekend cover`).
    pub name: String,
    /// The rotation.
    pub rotation: Rotation,
    /// When non-empty, the layer only has someone on call inside these windows (read
    /// in the schedule's zone); outside them lower layers show through.
    #[serde(default)]
    pub restrictions: Vec<Restriction>,
}

/// A rotation: participants take turns, one shift each, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// User ids in turn order (a user may appear more than once).
    pub participants: Vec<String>,
    /// Length of one shift.
    pub shift_length: ShiftLength,
    /// Local date (`YYYY-MM-DD`, schedule zone) of the first shift; nobody is on call
    /// in this layer before it.
    pub start: Date,
    /// Local wall time (`HH:MM`, schedule zone) at which the first shift starts; with
    /// day and week shifts every handoff happens at this wall time.
    pub handoff_time: String,
}

/// Shift length. Boundaries are computed in local wall-clock time (see
/// docs/oncall-time.md), so a daily 09:00 handoff stays at 09:00 across DST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftLength {
    /// N hours of wall-clock time.
    Hours(i64),
    /// N days.
    Days(i64),
    /// N weeks.
    Weeks(i64),
    /// A custom length in minutes of wall-clock time.
    Minutes(i64),
}

impl ShiftLength {
    /// Length in wall-clock minutes, or `None` when not positive or absurdly long
    /// (over 366 days).
    pub fn minutes(self) -> Option<i64> {
        let m = match self {
            ShiftLength::Hours(h) => h.checked_mul(60)?,
            ShiftLength::Days(d) => d.checked_mul(1440)?,
            ShiftLength::Weeks(w) => w.checked_mul(10080)?,
            ShiftLength::Minutes(m) => m,
        };
        (1..=366 * 1440).contains(&m).then_some(m)
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    /// Monday = 0 … Sunday = 6.
    pub fn index(self) -> u32 {
        self as u32
    }
}

/// A window in which a restricted layer is active. Times are `HH:MM` local wall time
/// in the schedule's zone, start inclusive, end exclusive; an end at or before the
/// start wraps past midnight (or past the end of the week).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Restriction {
    /// Every day from `start` to `end` (e.g. 09:00–17:00, or 22:00–06:00 overnight).
    TimeOfDay {
        /// `HH:MM`, inclusive.
        start: String,
        /// `HH:MM`, exclusive; `24:00` allowed.
        end: String,
    },
    /// From `start_day start` to `end_day end` each week (e.g. friday 18:00 → monday 09:00).
    Weekly {
        /// First day.
        start_day: Weekday,
        /// `HH:MM` on the first day, inclusive.
        start: String,
        /// Last day.
        end_day: Weekday,
        /// `HH:MM` on the last day, exclusive; `24:00` allowed.
        end: String,
    },
}

/// User `user` is on call from `start` to `end`, whoever the layers say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Optional id (shown as the source of the shift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Who covers.
    pub user: String,
    /// Start (inclusive).
    pub start: Timestamp,
    /// End (exclusive); must be after `start`.
    pub end: Timestamp,
}

/// Minutes in a week.
pub(crate) const WEEK_MINUTES: u32 = 7 * 1440;

impl Restriction {
    /// Minute-of-week windows `[start, end)` (Monday 00:00 = 0), wrap split in two.
    pub(crate) fn windows(&self, path: &str) -> Result<Vec<(u32, u32)>, CoreError> {
        let mut out = Vec::new();
        match self {
            Restriction::TimeOfDay { start, end } => {
                let s = parse_hhmm(start, &format!("{path}.start"), false)?;
                let e = parse_hhmm(end, &format!("{path}.end"), true)?;
                if s == e {
                    return Err(CoreError::config(
                        format!("{path}.end"),
                        "a time-of-day window must not be empty (use no restriction for all day)",
                    ));
                }
                for d in 0..7 {
                    let ws = d * 1440 + s;
                    let we = if e > s {
                        d * 1440 + e
                    } else {
                        d * 1440 + 1440 + e
                    };
                    push_wrapped(&mut out, ws, we);
                }
            }
            Restriction::Weekly {
                start_day,
                start,
                end_day,
                end,
            } => {
                let s =
                    start_day.index() * 1440 + parse_hhmm(start, &format!("{path}.start"), false)?;
                let e = end_day.index() * 1440 + parse_hhmm(end, &format!("{path}.end"), true)?;
                let e = if e > s { e } else { e + WEEK_MINUTES };
                push_wrapped(&mut out, s, e);
            }
        }
        Ok(out)
    }
}

fn push_wrapped(out: &mut Vec<(u32, u32)>, s: u32, e: u32) {
    if e <= WEEK_MINUTES {
        out.push((s, e));
    } else {
        out.push((s, WEEK_MINUTES));
        out.push((0, e - WEEK_MINUTES));
    }
}

impl Schedule {
    /// Checks the schedule with `schedule` as the config path prefix.
    pub fn validate(&self) -> Result<(), CoreError> {
        self.validate_at("schedule", &|_| true)
    }

    /// Checks the schedule; `path` is its config path (e.g. `schedules[0]`) and
    /// `user_exists` answers whether a user id is known.
    pub fn validate_at(
        &self,
        path: &str,
        user_exists: &dyn Fn(&str) -> bool,
    ) -> Result<(), CoreError> {
        check_id(&self.id, &format!("{path}.id"))?;
        parse_zone(&self.time_zone, &format!("{path}.time_zone"))?;
        if self.layers.is_empty() {
            return Err(CoreError::config(
                format!("{path}.layers"),
                "needs at least one layer",
            ));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let lp = format!("{path}.layers[{i}]");
            let r = &layer.rotation;
            if r.participants.is_empty() {
                return Err(CoreError::config(
                    format!("{lp}.rotation.participants"),
                    "a rotation needs at least one participant",
                ));
            }
            for (j, p) in r.participants.iter().enumerate() {
                if !user_exists(p) {
                    return Err(CoreError::config(
                        format!("{lp}.rotation.participants[{j}]"),
                        format!("unknown user {p:?}"),
                    ));
                }
            }
            if r.shift_length.minutes().is_none() {
                return Err(CoreError::config(
                    format!("{lp}.rotation.shift_length"),
                    "must be positive and at most 366 days",
                ));
            }
            parse_hhmm(
                &r.handoff_time,
                &format!("{lp}.rotation.handoff_time"),
                false,
            )?;
            for (j, rs) in layer.restrictions.iter().enumerate() {
                rs.windows(&format!("{lp}.restrictions[{j}]"))?;
            }
        }
        for (i, o) in self.overrides.iter().enumerate() {
            let op = format!("{path}.overrides[{i}]");
            if o.end <= o.start {
                return Err(CoreError::config(
                    format!("{op}.end"),
                    "an override must end after it starts",
                ));
            }
            if !user_exists(&o.user) {
                return Err(CoreError::config(
                    format!("{op}.user"),
                    format!("unknown user {:?}", o.user),
                ));
            }
        }
        Ok(())
    }
}
