//! Per-contact-method throttles: at most one send per interval to one address of
//! one channel kind, so an alert storm cannot flood a phone.
//!
//! The slots live in memory and are persisted by the pipeline: each successful
//! send to a throttled kind writes its slot (`~throttle/…` in the notification
//! log, in the same batch as the `sent` record), and the first check of an
//! address after a restart reads it back ([`Throttle::is_known`] /
//! [`Throttle::restore`]), so "SMS at most 1/min" holds across restarts.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;

use super::config::ThrottleConfig;

/// Slot reservations per `(kind, address)`: kind → address → next free slot
/// (`None` = known to be free: read from the store and absent there).
#[derive(Debug, Default)]
pub struct Throttle {
    intervals: HashMap<String, Duration>,
    next_free: Mutex<HashMap<String, HashMap<String, Option<Timestamp>>>>,
}

impl Throttle {
    /// From the config section.
    pub fn new(c: &ThrottleConfig) -> Self {
        Throttle {
            intervals: c
                .min_interval_secs
                .iter()
                .filter(|(_, s)| **s > 0)
                .map(|(k, s)| (k.clone(), Duration::from_secs(*s)))
                .collect(),
            next_free: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `kind` is throttled at all.
    pub fn limits(&self, kind: &str) -> bool {
        self.intervals.contains_key(kind)
    }

    /// Whether this process knows the slot of `(kind, address)` (it sent there,
    /// or restored it); when not, the pipeline reads the persisted slot first.
    pub fn is_known(&self, kind: &str, address: &str) -> bool {
        self.next_free
            .lock()
            .get(kind)
            .is_some_and(|m| m.contains_key(address))
    }

    /// Installs a persisted slot read back from the store (`None`: none stored).
    /// A slot this process already knows is kept.
    pub fn restore(&self, kind: &str, address: &str, next_free: Option<Timestamp>) {
        self.next_free
            .lock()
            .entry(kind.to_string())
            .or_default()
            .entry(address.to_string())
            .or_insert(next_free);
    }

    /// When the next send to `(kind, address)` may happen: `None` = now,
    /// `Some(t)` = not before `t`.
    pub fn check(&self, kind: &str, address: &str, now: Timestamp) -> Option<Timestamp> {
        self.intervals.get(kind)?;
        let g = self.next_free.lock();
        match g.get(kind)?.get(address) {
            Some(Some(free)) if *free > now => Some(*free),
            _ => None,
        }
    }

    /// Records a successful send at `at`; the slot is taken for one interval.
    /// Only successes count, so failing over to a second provider of the same
    /// kind for the same address is not throttled by the failed attempt.
    /// Returns the new slot when `kind` is throttled (for the pipeline to persist).
    pub fn mark_sent(&self, kind: &str, address: &str, at: Timestamp) -> Option<Timestamp> {
        let interval = self.intervals.get(kind)?;
        let next = SignedDuration::try_from(*interval)
            .ok()
            .and_then(|d| at.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX);
        let mut g = self.next_free.lock();
        let m = g.entry(kind.to_string()).or_default();
        match m.get_mut(address) {
            Some(slot) => *slot = Some(next),
            None => {
                m.insert(address.to_string(), Some(next));
            }
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_is_limited_to_one_per_minute_per_address() {
        let t = Throttle::new(&ThrottleConfig::default());
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(t.check("sms", "+1555", now), None);
        assert_eq!(
            t.mark_sent("sms", "+1555", now),
            Some(now + SignedDuration::from_secs(60))
        );
        let later = now + SignedDuration::from_secs(10);
        assert_eq!(
            t.check("sms", "+1555", later),
            Some(now + SignedDuration::from_secs(60))
        );
        // Another phone and another kind are independent.
        assert_eq!(t.check("sms", "+1666", later), None);
        assert_eq!(t.mark_sent("slack", "+1555", later), None, "not throttled");
        assert_eq!(t.check("slack", "+1555", later), None);
        assert_eq!(
            t.check("sms", "+1555", now + SignedDuration::from_secs(60)),
            None
        );
    }
}

#[cfg(test)]
mod restore_tests {
    use super::*;

    #[test]
    fn restored_slots_throttle_and_known_slots_win() {
        let t = Throttle::new(&ThrottleConfig::default());
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let slot = now + SignedDuration::from_secs(30);
        assert!(t.limits("sms") && !t.limits("webhook"));
        assert!(!t.is_known("sms", "+1555"));
        t.restore("sms", "+1555", Some(slot));
        assert!(t.is_known("sms", "+1555"));
        assert_eq!(t.check("sms", "+1555", now), Some(slot));
        // A later restore (stale read) does not override what is known.
        t.restore("sms", "+1555", None);
        assert_eq!(t.check("sms", "+1555", now), Some(slot));
        t.restore("sms", "+1666", None);
        assert!(t.is_known("sms", "+1666"));
        assert_eq!(t.check("sms", "+1666", now), None);
    }
}
