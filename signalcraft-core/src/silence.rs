//! Silences (Alertmanager semantics): a set of matchers muting matching firing alerts
//! between `starts_at` and `ends_at`.
//!
//! Unlike Alertmanager, a silence never holds back a *resolved* notification, so
//! incidents can always close. Store key: `Table::Silences` by [`Silence::id`].

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::model::{LabelView, Labels};
use crate::routing::matcher::{MatchOp, Matcher, MatcherSpec};

/// A silence's state at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts in the future.
    Pending,
    /// In force.
    Active,
    /// Over (ended or expired).
    Expired,
}

/// A silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Id.
    pub id: String,
    /// All must match for an alert to be silenced (non-empty).
    pub matchers: Vec<Matcher>,
    /// Start (inclusive).
    pub starts_at: Timestamp,
    /// End (exclusive).
    pub ends_at: Timestamp,
    /// Author (user id).
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Created or last changed.
    pub updated_at: Timestamp,
}

impl Silence {
    /// State at `now`.
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Whether it silences `labels` at `now` (active and every matcher matches).
    #[inline]
    pub fn mutes<L: LabelView + ?Sized>(&self, labels: &L, now: Timestamp) -> bool {
        self.starts_at <= now
            && now < self.ends_at
            && self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// What a client sends to create or update a silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceSpec {
    /// Set to update an existing silence; absent to create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Matchers (string or structured form).
    pub matchers: Vec<MatcherSpec>,
    /// Start; default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// End.
    pub ends_at: Timestamp,
    /// Author.
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

impl SilenceSpec {
    /// Validates into a [`Silence`] with the given id; errors name the field.
    pub fn build(&self, id: String, now: Timestamp) -> Result<Silence, CoreError> {
        if self.matchers.is_empty() {
            return Err(CoreError::input(
                "matchers",
                "a silence needs at least one matcher",
            ));
        }
        let matchers = self
            .matchers
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.compile()
                    .map_err(|e| CoreError::input(format!("matchers[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A silence matching everything (every matcher matches the empty label set with
        // an empty value) would mute the whole system; Alertmanager rejects it too.
        if matchers.iter().all(|m| m.matches(&Labels::new())) {
            return Err(CoreError::input(
                "matchers",
                "at least one matcher must not match the empty label set",
            ));
        }
        let starts_at = self.starts_at.unwrap_or(now);
        if self.ends_at <= starts_at {
            return Err(CoreError::input("ends_at", "must be after starts_at"));
        }
        if self.ends_at <= now {
            return Err(CoreError::input("ends_at", "must be in the future"));
        }
        if self.created_by.trim().is_empty() {
            return Err(CoreError::input("created_by", "must not be empty"));
        }
        Ok(Silence {
            id,
            matchers,
            starts_at,
            ends_at: self.ends_at,
            created_by: self.created_by.clone(),
            comment: self.comment.clone(),
            updated_at: now,
        })
    }
}

/// A silence's first `=` matcher (name, value): what the index files it under.
fn eq_key(s: &Silence) -> Option<(&str, &str)> {
    s.matchers
        .iter()
        .find(|m| m.op() == MatchOp::Eq)
        .map(|m| (m.name(), m.value()))
}

/// The set of silences, with fast lookups for the ingest path.
///
/// Silences with an `=` matcher are indexed by that matcher's label name and value, so
/// checking an alert costs one label lookup and one hash probe per distinct indexed
/// name (plus the full check of the few candidates), not one full check per silence.
#[derive(Debug, Clone, Default)]
pub struct Silences {
    all: Vec<Silence>,
    /// Id → position in `all`.
    by_id: HashMap<String, usize>,
    /// Per label name: value → positions in `all` (ascending) of the silences whose
    /// first `=` matcher is `name = value`.
    by_eq: Vec<(String, HashMap<String, Vec<usize>>)>,
    /// Positions in `all` (ascending) of the silences without an `=` matcher.
    scan: Vec<usize>,
}

impl Silences {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces by id. A new silence is indexed on its own (loading n
    /// silences costs O(n)); a replacement keeps its position and re-indexes only when
    /// its first `=` matcher changed.
    pub fn upsert(&mut self, s: Silence) {
        match self.by_id.get(&s.id).copied() {
            Some(i) => {
                let same_key = self.all.get(i).map(eq_key) == Some(eq_key(&s));
                if let Some(x) = self.all.get_mut(i) {
                    *x = s;
                }
                if !same_key {
                    self.reindex();
                }
            }
            None => {
                let i = self.all.len();
                self.by_id.insert(s.id.clone(), i);
                self.all.push(s);
                self.index_one(i);
            }
        }
    }

    /// Adds the silence at position `i` to the `=` index (or the scan list); `i` must be
    /// above every position indexed so far, which keeps the lists ascending.
    fn index_one(&mut self, i: usize) {
        let Some(s) = self.all.get(i) else {
            return;
        };
        let Some((name, value)) = eq_key(s) else {
            self.scan.push(i);
            return;
        };
        let pos = match self.by_eq.iter().position(|(n, _)| n == name) {
            Some(p) => p,
            None => {
                self.by_eq.push((name.to_string(), HashMap::new()));
                self.by_eq.len() - 1
            }
        };
        if let Some((_, by_value)) = self.by_eq.get_mut(pos) {
            by_value.entry(value.to_string()).or_default().push(i);
        }
    }

    /// Rebuilds the id map and the `=` index (silences change rarely; alerts are
    /// checked constantly).
    fn reindex(&mut self) {
        self.by_id.clear();
        self.by_eq.clear();
        self.scan.clear();
        for i in 0..self.all.len() {
            if let Some(s) = self.all.get(i) {
                self.by_id.insert(s.id.clone(), i);
            }
            self.index_one(i);
        }
    }

    /// By id.
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id).and_then(|&i| self.all.get(i))
    }

    /// Ends a silence now (no-op error if already expired). Returns the updated silence.
    pub fn expire(&mut self, id: &str, now: Timestamp) -> Result<Silence, CoreError> {
        let s = self
            .by_id
            .get(id)
            .and_then(|&i| self.all.get_mut(i))
            .ok_or_else(|| CoreError::NotFound {
                kind: "silence",
                id: id.into(),
            })?;
        if s.state(now) == SilenceState::Expired {
            return Err(CoreError::input(
                "silence",
                format!("silence {id} is already expired"),
            ));
        }
        // A pending silence expires by ending where it starts.
        s.ends_at = if now < s.starts_at { s.starts_at } else { now };
        s.updated_at = now;
        Ok(s.clone())
    }

    /// Silences in a state at `now` (all when `state` is `None`), newest first.
    pub fn list(&self, state: Option<SilenceState>, now: Timestamp) -> Vec<Silence> {
        let mut v: Vec<Silence> = self
            .all
            .iter()
            .filter(|s| state.is_none_or(|st| s.state(now) == st))
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        v
    }

    /// The first active silence (in insertion order) muting `labels`, if any.
    #[inline]
    pub fn muted_by<L: LabelView + ?Sized>(&self, labels: &L, now: Timestamp) -> Option<&Silence> {
        // The lowest position among the muting silences: candidates are ascending, so
        // each list stops at its first hit or once past the best so far.
        let mut best: Option<usize> = None;
        let mut consider = |positions: &[usize]| {
            for &i in positions {
                if best.is_some_and(|b| b < i) {
                    break;
                }
                if self.all.get(i).is_some_and(|s| s.mutes(labels, now)) {
                    best = Some(i);
                    break;
                }
            }
        };
        for (name, by_value) in &self.by_eq {
            let v = labels.label(name).unwrap_or("");
            if let Some(positions) = by_value.get(v) {
                consider(positions);
            }
        }
        consider(&self.scan);
        best.and_then(|i| self.all.get(i))
    }

    /// Removes every silence that ended strictly before `cutoff` (the garbage
    /// collection of expired silences, as Alertmanager's `--data.retention`); returns
    /// their ids in insertion order. The index is rebuilt once; the remaining silences
    /// keep their relative order, so [`Silences::muted_by`] answers as before for them.
    pub fn remove_ended_before(&mut self, cutoff: Timestamp) -> Vec<String> {
        if self.all.iter().all(|s| s.ends_at >= cutoff) {
            return Vec::new();
        }
        let mut gone = Vec::new();
        self.all.retain(|s| {
            let keep = s.ends_at >= cutoff;
            if !keep {
                gone.push(s.id.clone());
            }
            keep
        });
        self.reindex();
        gone
    }

    /// The earliest `ends_at` of any silence (`None` when empty): the next
    /// [`Silences::remove_ended_before`] can remove nothing before this plus the
    /// retention.
    pub fn earliest_end(&self) -> Option<Timestamp> {
        self.all.iter().map(|s| s.ends_at).min()
    }

    /// Number of silences (any state).
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// `true` when empty.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(m: &[&str]) -> SilenceSpec {
        SilenceSpec {
            id: None,
            matchers: m.iter().map(|s| MatcherSpec::Text(s.to_string())).collect(),
            starts_at: Some(ts("2026-01-01T10:00:00Z")),
            ends_at: ts("2026-01-01T12:00:00Z"),
            created_by: "ann".into(),
            comment: "maintenance".into(),
        }
    }

    #[test]
    fn states_and_muting() {
        let now = ts("2026-01-01T09:00:00Z");
        let s = spec(&["team=db"]).build("s1".into(), now).unwrap();
        let l: Labels = [("team".to_string(), "db".to_string())].into();
        assert_eq!(s.state(now), SilenceState::Pending);
        assert!(!s.mutes(&l, now));
        let t = ts("2026-01-01T11:00:00Z");
        assert_eq!(s.state(t), SilenceState::Active);
        assert!(s.mutes(&l, t));
        let web: Labels = [("team".to_string(), "web".to_string())].into();
        assert!(!s.mutes(&web, t));
        assert_eq!(s.state(ts("2026-01-01T12:00:00Z")), SilenceState::Expired);
    }

    #[test]
    fn expire_and_list() {
        let now = ts("2026-01-01T11:00:00Z");
        let mut set = Silences::new();
        set.upsert(
            spec(&["team=db"])
                .build("s1".into(), ts("2026-01-01T09:00:00Z"))
                .unwrap(),
        );
        assert_eq!(set.list(Some(SilenceState::Active), now).len(), 1);
        let e = set.expire("s1", now).unwrap();
        assert_eq!(e.ends_at, now);
        assert_eq!(set.list(Some(SilenceState::Expired), now).len(), 1);
        assert!(set.expire("s1", now).is_err());
        assert!(matches!(
            set.expire("nope", now),
            Err(CoreError::NotFound { .. })
        ));
    }

    /// The `=` index answers exactly as checking every silence in order would.
    #[test]
    fn indexed_lookup_equals_scanning_in_order() {
        let t0 = ts("2026-01-01T09:00:00Z");
        let mut set = Silences::new();
        let specs: [&[&str]; 9] = [
            &["alertname=A", "cluster=~\"c1.*\""],
            &["alertname=B"],
            &["cluster=c2", "alertname=A"],
            &["team!=db", "env=~\"p.*\""],
            &["alertname=A"],
            &["team=~\"db|web\"", "env=prod"],
            &["missing=", "alertname=C"],
            &["alertname=A", "team=web"],
            &["env=prod", "alertname!=B"],
        ];
        for (i, m) in specs.iter().enumerate() {
            set.upsert(spec(m).build(format!("s{i}"), t0).unwrap());
        }
        // Replacing one keeps its position and re-indexes it.
        set.upsert(spec(&["alertname=D"]).build("s1".into(), t0).unwrap());
        // Same first `=` matcher, other matchers changed: checked with the new ones.
        set.upsert(
            spec(&["alertname=A", "team=db"])
                .build("s0".into(), t0)
                .unwrap(),
        );
        assert_eq!(set.len(), 9);
        // One expired: never mutes.
        set.expire("s4", ts("2026-01-01T10:30:00Z")).unwrap();
        let now = ts("2026-01-01T11:00:00Z");
        let l = |p: &[(&str, &str)]| -> Labels {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cases = [
            l(&[("alertname", "A"), ("cluster", "c10"), ("team", "db")]),
            l(&[("alertname", "A"), ("cluster", "c2"), ("team", "db")]),
            l(&[("alertname", "A"), ("team", "web"), ("env", "prod")]),
            l(&[("alertname", "B"), ("team", "db")]),
            l(&[("alertname", "D"), ("team", "db")]),
            l(&[("alertname", "C"), ("team", "db")]),
            l(&[("alertname", "C"), ("team", "db"), ("missing", "x")]),
            l(&[("alertname", "B"), ("env", "prod"), ("team", "db")]),
            l(&[("team", "db")]),
            l(&[]),
        ];
        let mut muted = 0;
        for c in &cases {
            let naive = set.all.iter().find(|s| s.mutes(c, now)).map(|s| &s.id);
            assert_eq!(set.muted_by(c, now).map(|s| &s.id), naive, "{c:?}");
            muted += usize::from(naive.is_some());
        }
        assert!(muted >= 6, "the cases exercise muting ({muted})");
    }

    /// Only silences that ended before the cutoff go; the index then answers for the
    /// rest exactly as a scan in order would, and pending/active ones are kept.
    #[test]
    fn remove_ended_before_keeps_the_rest_indexed() {
        let t0 = ts("2026-01-01T09:00:00Z");
        let mut set = Silences::new();
        assert_eq!(set.earliest_end(), None);
        assert!(
            set.remove_ended_before(ts("2030-01-01T00:00:00Z"))
                .is_empty()
        );
        // s0, s2: expired at 10:30 and 10:45; s1, s4 active; s3 pending.
        for (id, m) in [
            ("s0", "alertname=A"),
            ("s1", "alertname=A"),
            ("s2", "team=~\"db\""),
            ("s3", "team=~\"db|web\""),
            ("s4", "team=~\"d.*\""),
        ] {
            let mut sp = spec(&[m]);
            if id == "s3" {
                sp.starts_at = Some(ts("2026-01-01T11:30:00Z"));
            }
            set.upsert(sp.build(id.into(), t0).unwrap());
        }
        set.expire("s0", ts("2026-01-01T10:30:00Z")).unwrap();
        set.expire("s2", ts("2026-01-01T10:45:00Z")).unwrap();
        assert_eq!(set.earliest_end(), Some(ts("2026-01-01T10:30:00Z")));
        // Ended exactly at the cutoff: kept.
        assert!(
            set.remove_ended_before(ts("2026-01-01T10:30:00Z"))
                .is_empty()
        );
        assert_eq!(set.len(), 5);
        let gone = set.remove_ended_before(ts("2026-01-01T10:45:00.001Z"));
        assert_eq!(gone, vec!["s0".to_string(), "s2".to_string()]);
        assert_eq!(set.len(), 3);
        assert!(set.get("s0").is_none() && set.get("s2").is_none());
        // Ids still find their (moved) silences.
        for id in ["s1", "s3", "s4"] {
            assert_eq!(set.get(id).map(|s| s.id.as_str()), Some(id));
        }
        assert_eq!(set.earliest_end(), Some(ts("2026-01-01T12:00:00Z")));
        let now = ts("2026-01-01T11:00:00Z");
        let a: Labels = [("alertname".to_string(), "A".to_string())].into();
        let db: Labels = [("team".to_string(), "db".to_string())].into();
        assert_eq!(set.muted_by(&a, now).map(|s| s.id.as_str()), Some("s1"));
        assert_eq!(set.muted_by(&db, now).map(|s| s.id.as_str()), Some("s4"));
        let later = ts("2026-01-01T11:45:00Z");
        assert_eq!(set.muted_by(&db, later).map(|s| s.id.as_str()), Some("s3"));
        for l in [&a, &db] {
            for t in [now, later] {
                let naive = set.all.iter().find(|s| s.mutes(l, t)).map(|s| &s.id);
                assert_eq!(set.muted_by(l, t).map(|s| &s.id), naive);
            }
        }
        // Pending and active silences are never removed by a cutoff before their end.
        assert!(set.remove_ended_before(later).is_empty());
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn rejects_bad_specs_naming_the_field() {
        let now = ts("2026-01-01T09:00:00Z");
        let e = spec(&["team=~\"(\""]).build("x".into(), now).unwrap_err();
        assert!(e.to_string().contains("matchers[0]"), "{e}");
        assert!(spec(&[]).build("x".into(), now).is_err());
        assert!(
            spec(&["team=~\".*\""]).build("x".into(), now).is_err(),
            "match-all silence"
        );
        let mut s = spec(&["a=b"]);
        s.ends_at = ts("2026-01-01T09:30:00Z");
        let e = s.build("x".into(), now).unwrap_err();
        assert!(e.to_string().contains("ends_at"), "{e}");
    }
}
