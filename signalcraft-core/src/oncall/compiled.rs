//! A validated, precomputed schedule: who is on call at an instant, final shifts over
//! a range, handoffs and gaps.
//!
//! Cost model: [`CompiledSchedule::who_is_on_call`] does one zone-offset lookup for
//! the instant, then per layer O(1) arithmetic in local wall-clock minutes plus a
//! couple of boundary checks, and a binary search over the pre-flattened overrides.
//! For hot paths, [`ScheduleIndex`](super::ScheduleIndex) renders a window once and
//! answers with one binary search.

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::schedule::{Schedule, WEEK_MINUTES};
use super::time::{parse_hhmm, resolve_local};
use crate::CoreError;

/// Why someone is on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OnCallSource {
    /// The layer at this index (see [`Schedule::layers`]) put them there.
    Layer {
        /// Layer index.
        index: usize,
    },
    /// The override at this index (see [`Schedule::overrides`]) put them there.
    Override {
        /// Override index.
        index: usize,
    },
}

/// The answer to "who is on call at t".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OnCall<'a> {
    /// User id.
    pub user: &'a str,
    /// The layer or override that put them there.
    pub source: OnCallSource,
}

/// One final, rendered shift: `user` is on call over `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    /// User id.
    pub user: String,
    /// Start (inclusive).
    pub start: Timestamp,
    /// End (exclusive).
    pub end: Timestamp,
    /// The layer or override that put them there.
    pub source: OnCallSource,
}

/// A change of the on-call person (or to/from nobody) at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handoff {
    /// The instant of the change.
    pub at: Timestamp,
    /// Who goes off call (`None` after a gap).
    pub outgoing: Option<String>,
    /// Who comes on call (`None` when a gap starts).
    pub incoming: Option<String>,
}

/// An interval with nobody on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Start (inclusive).
    pub start: Timestamp,
    /// End (exclusive).
    pub end: Timestamp,
}

#[derive(Debug, Clone)]
struct CompiledLayer {
    /// Local wall-clock minute (minutes since 1970-01-01T00:00 civil) of the first shift.
    start_cm: i64,
    /// Instant of the first shift start.
    start_at: Timestamp,
    /// Shift length in wall-clock minutes.
    len: i64,
    participants: Vec<String>,
    /// Minute-of-week windows, sorted, merged; empty = unrestricted.
    windows: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, Copy)]
struct OverrideSeg {
    start: Timestamp,
    end: Timestamp,
    index: usize,
}

/// A validated schedule ready for queries. Cheap to clone? No: build once, share.
#[derive(Debug, Clone)]
pub struct CompiledSchedule {
    config: Schedule,
    tz: TimeZone,
    fixed: Option<Offset>,
    layers: Vec<CompiledLayer>,
    overrides: Vec<OverrideSeg>,
}

fn civil_minute(dt: DateTime) -> i64 {
    // Civil time read as if it were UTC: a linear wall-clock minute count.
    Offset::UTC
        .to_timestamp(dt)
        .map(|t| t.as_second().div_euclid(60))
        .unwrap_or(0)
}

fn civil_from_minute(cm: i64) -> DateTime {
    Timestamp::from_second(cm.saturating_mul(60))
        .map(|t| Offset::UTC.to_datetime(t))
        .unwrap_or(DateTime::MAX)
}

impl CompiledSchedule {
    /// Validates (see [`Schedule::validate_at`], path prefix `schedule`) and compiles.
    pub fn new(config: Schedule) -> Result<Self, CoreError> {
        Self::compile(config, "schedule", &|_| true)
    }

    /// Validates with a config path and a user check, then compiles.
    pub fn compile(
        config: Schedule,
        path: &str,
        user_exists: &dyn Fn(&str) -> bool,
    ) -> Result<Self, CoreError> {
        config.validate_at(path, user_exists)?;
        let tz = TimeZone::get(&config.time_zone).map_err(|_| {
            CoreError::config(format!("{path}.time_zone"), "unknown IANA time zone")
        })?;
        let fixed = if tz.following(Timestamp::MIN).next().is_none() {
            Some(tz.to_offset(Timestamp::UNIX_EPOCH))
        } else {
            None
        };
        let mut layers = Vec::with_capacity(config.layers.len());
        for (i, l) in config.layers.iter().enumerate() {
            let lp = format!("{path}.layers[{i}]");
            let r = &l.rotation;
            let hm = parse_hhmm(
                &r.handoff_time,
                &format!("{lp}.rotation.handoff_time"),
                false,
            )?;
            let start_dt = r.start.to_datetime(jiff::civil::Time::midnight())
                + SignedDuration::from_mins(i64::from(hm));
            let len = r.shift_length.minutes().ok_or_else(|| {
                CoreError::config(format!("{lp}.rotation.shift_length"), "must be positive")
            })?;
            let mut windows = Vec::new();
            for (j, rs) in l.restrictions.iter().enumerate() {
                windows.extend(rs.windows(&format!("{lp}.restrictions[{j}]"))?);
            }
            windows.sort_unstable();
            let mut merged: Vec<(u32, u32)> = Vec::with_capacity(windows.len());
            for (s, e) in windows {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            if merged == [(0, WEEK_MINUTES)] {
                merged.clear();
            }
            layers.push(CompiledLayer {
                start_cm: civil_minute(start_dt),
                start_at: resolve_local(&tz, start_dt),
                len,
                participants: r.participants.clone(),
                windows: merged,
            });
        }
        let overrides = flatten_overrides(&config);
        Ok(CompiledSchedule {
            config,
            tz,
            fixed,
            layers,
            overrides,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Schedule {
        &self.config
    }

    /// The schedule's id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The schedule's zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    fn offset(&self, t: Timestamp) -> Offset {
        match self.fixed {
            Some(o) => o,
            None => self.tz.to_offset(t),
        }
    }

    fn resolve_cm(&self, cm: i64) -> Timestamp {
        match self.fixed {
            Some(o) => Timestamp::from_second(cm.saturating_mul(60) - i64::from(o.seconds()))
                .unwrap_or(Timestamp::MAX),
            None => resolve_local(&self.tz, civil_from_minute(cm)),
        }
    }

    /// Instant at which shift `k` of layer `l` starts.
    fn boundary(&self, l: &CompiledLayer, k: i64) -> Timestamp {
        self.resolve_cm(l.start_cm.saturating_add(k.saturating_mul(l.len)))
    }

    /// The shift index of layer `l` at `t` (`None` before the layer starts). `local_cm`
    /// is `t`'s local wall-clock minute.
    fn shift_index(&self, l: &CompiledLayer, t: Timestamp, local_cm: i64) -> Option<i64> {
        if t < l.start_at {
            return None;
        }
        let mut k = (local_cm - l.start_cm).div_euclid(l.len).max(0);
        if self.fixed.is_none() {
            // Wall-clock estimate; correct it near DST transitions.
            while k > 0 && t < self.boundary(l, k) {
                k -= 1;
            }
            while t >= self.boundary(l, k + 1) {
                k += 1;
            }
        }
        Some(k)
    }

    fn layer_user<'s>(
        &'s self,
        l: &'s CompiledLayer,
        t: Timestamp,
        local_cm: i64,
    ) -> Option<&'s str> {
        if !l.windows.is_empty() {
            // 1970-01-01 was a Thursday (Monday-based index 3).
            let mow = ((local_cm.div_euclid(1440) + 3).rem_euclid(7) * 1440
                + local_cm.rem_euclid(1440)) as u32;
            if !l.windows.iter().any(|&(s, e)| s <= mow && mow < e) {
                return None;
            }
        }
        let k = self.shift_index(l, t, local_cm)?;
        let n = l.participants.len() as i64;
        l.participants
            .get(k.rem_euclid(n) as usize)
            .map(String::as_str)
    }

    fn local_cm(&self, t: Timestamp) -> i64 {
        (t.as_second() + i64::from(self.offset(t).seconds())).div_euclid(60)
    }

    fn override_at(&self, t: Timestamp) -> Option<&OverrideSeg> {
        let i = self.overrides.partition_point(|s| s.end <= t);
        self.overrides.get(i).filter(|s| s.start <= t)
    }

    /// Who is on call at `t`, and which layer or override put them there; `None` when
    /// nobody is (before every rotation starts, or where restrictions leave a gap).
    pub fn who_is_on_call(&self, t: Timestamp) -> Option<OnCall<'_>> {
        if let Some(seg) = self.override_at(t) {
            return Some(OnCall {
                user: &self.config.overrides[seg.index].user,
                source: OnCallSource::Override { index: seg.index },
            });
        }
        let local_cm = self.local_cm(t);
        for (index, l) in self.layers.iter().enumerate().rev() {
            if let Some(user) = self.layer_user(l, t, local_cm) {
                return Some(OnCall {
                    user,
                    source: OnCallSource::Layer { index },
                });
            }
        }
        None
    }

    /// Every instant in `(from, to)` at which the answer of [`Self::who_is_on_call`]
    /// may change, sorted and deduplicated.
    fn change_points(&self, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut pts = Vec::new();
        let mut push = |t: Timestamp| {
            if from < t && t < to {
                pts.push(t);
            }
        };
        for seg in &self.overrides {
            push(seg.start);
            push(seg.end);
        }
        if self.fixed.is_none() {
            // Restriction windows are wall-clock: a repeated hour can re-enter one.
            for tr in self.tz.following(from) {
                if tr.timestamp() >= to {
                    break;
                }
                push(tr.timestamp());
            }
        }
        let from_cm = self.local_cm(from);
        let to_cm = self.local_cm(to);
        for l in &self.layers {
            push(l.start_at);
            if to > l.start_at {
                // Wall-clock estimates widened by one shift each side absorb DST skew.
                let k0 = ((from_cm - l.start_cm).div_euclid(l.len) - 1).max(1);
                let k1 = (to_cm - l.start_cm).div_euclid(l.len) + 2;
                for k in k0..=k1 {
                    push(self.boundary(l, k));
                }
            }
            if !l.windows.is_empty() {
                // Monday 00:00 of the week containing `from` (local), minus a week for skew.
                let day = from_cm.div_euclid(1440);
                let monday = day - (day + 3).rem_euclid(7) - 7;
                let mut week = monday * 1440;
                while week <= to_cm + 1440 {
                    for &(s, e) in &l.windows {
                        push(self.resolve_cm(week + i64::from(s)));
                        push(self.resolve_cm(week + i64::from(e)));
                    }
                    week += i64::from(WEEK_MINUTES);
                }
            }
        }
        pts.sort_unstable();
        pts.dedup();
        pts
    }

    /// The final shifts over `[from, to)`, clipped to the range, in time order.
    /// Consecutive pieces with the same user and source are joined; instants with
    /// nobody on call are simply not covered. Empty when `to <= from`.
    ///
    /// Cost is linear in the number of rotation boundaries, restriction edges and
    /// override edges inside the range (a year of daily shifts: about 0.5 ms); callers
    /// taking ranges from untrusted input should bound them.
    pub fn render(&self, from: Timestamp, to: Timestamp) -> Vec<Shift> {
        let mut out: Vec<Shift> = Vec::new();
        if to <= from {
            return out;
        }
        let pts = self.change_points(from, to);
        let mut start = from;
        for end in pts.into_iter().chain(std::iter::once(to)) {
            if let Some(oc) = self.who_is_on_call(start) {
                match out.last_mut() {
                    Some(last)
                        if last.end == start
                            && last.user == oc.user
                            && last.source == oc.source =>
                    {
                        last.end = end;
                    }
                    _ => out.push(Shift {
                        user: oc.user.to_string(),
                        start,
                        end,
                        source: oc.source,
                    }),
                }
            }
            start = end;
        }
        out
    }

    /// The final shifts of one user over `[from, to)`.
    pub fn render_user(&self, user: &str, from: Timestamp, to: Timestamp) -> Vec<Shift> {
        let mut v = self.render(from, to);
        v.retain(|s| s.user == user);
        v
    }

    /// Every change of the on-call person in `[from, to)` (a change of source with the
    /// same person is not a handoff).
    pub fn handoffs(&self, from: Timestamp, to: Timestamp) -> Vec<Handoff> {
        let mut out = Vec::new();
        let before = from
            .checked_sub(SignedDuration::from_nanos(1))
            .ok()
            .and_then(|t| self.who_is_on_call(t))
            .map(|o| o.user.to_string());
        let mut current = before;
        let mut at = from;
        let mut note = |at: Timestamp, incoming: Option<String>, current: &mut Option<String>| {
            if incoming != *current {
                out.push(Handoff {
                    at,
                    outgoing: current.clone(),
                    incoming: incoming.clone(),
                });
                *current = incoming;
            }
        };
        for s in self.render(from, to) {
            if s.start > at {
                note(at, None, &mut current);
            }
            note(s.start, Some(s.user.clone()), &mut current);
            at = s.end;
        }
        if at < to {
            note(at, None, &mut current);
        }
        out
    }

    /// Intervals in `[from, to)` with nobody on call.
    pub fn gaps(&self, from: Timestamp, to: Timestamp) -> Vec<Gap> {
        let mut out = Vec::new();
        let mut at = from;
        for s in self.render(from, to) {
            if s.start > at {
                out.push(Gap {
                    start: at,
                    end: s.start,
                });
            }
            at = s.end;
        }
        if at < to {
            out.push(Gap { start: at, end: to });
        }
        out
    }

    /// The display name of a source (layer name or override id).
    pub fn source_name(&self, source: OnCallSource) -> String {
        match source {
            OnCallSource::Layer { index } => self
                .config
                .layers
                .get(index)
                .map(|l| l.name.clone())
                .unwrap_or_default(),
            OnCallSource::Override { index } => self
                .config
                .overrides
                .get(index)
                .map(|o| o.id.clone().unwrap_or_else(|| format!("override-{index}")))
                .unwrap_or_default(),
        }
    }
}

/// Flattens possibly overlapping overrides into disjoint, sorted segments, each owned
/// by the last-listed override that covers it.
fn flatten_overrides(config: &Schedule) -> Vec<OverrideSeg> {
    let mut edges: Vec<Timestamp> = config
        .overrides
        .iter()
        .flat_map(|o| [o.start, o.end])
        .collect();
    edges.sort_unstable();
    edges.dedup();
    let mut out: Vec<OverrideSeg> = Vec::new();
    for w in edges.windows(2) {
        let (s, e) = (w[0], w[1]);
        let winner = config
            .overrides
            .iter()
            .enumerate()
            .rev()
            .find(|(_, o)| o.start <= s && s < o.end)
            .map(|(i, _)| i);
        if let Some(index) = winner {
            match out.last_mut() {
                Some(last) if last.end == s && last.index == index => last.end = e,
                _ => out.push(OverrideSeg {
                    start: s,
                    end: e,
                    index,
                }),
            }
        }
    }
    out
}
