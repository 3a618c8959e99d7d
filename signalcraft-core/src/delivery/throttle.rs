//! Per-contact-method throttles: at most one send per interval to one address of
//! one channel kind, so an alert storm cannot flood a phone.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;

use super::config::ThrottleConfig;

/// Slot reservations per `(kind, address)`. In memory: after a restart at most
/// one extra message per address can slip through.
#[derive(Debug, Default)]
pub struct Throttle {
    intervals: HashMap<String, Duration>,
    next_free: Mutex<HashMap<(String, String), Timestamp>>,
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

    /// When the next send to `(kind, address)` may happen: `None` = now,
    /// `Some(t)` = not before `t`.
    pub fn check(&self, kind: &str, address: &str, now: Timestamp) -> Option<Timestamp> {
        self.intervals.get(kind)?;
        let g = self.next_free.lock();
        match g.get(&(kind.to_string(), address.to_string())) {
            Some(free) if *free > now => Some(*free),
            _ => None,
        }
    }

    /// Records a successful send at `at`; the slot is taken for one interval.
    /// Only successes count, so failing over to a second provider of the same
    /// kind for the same address is not throttled by the failed attempt.
    pub fn mark_sent(&self, kind: &str, address: &str, at: Timestamp) {
        let Some(interval) = self.intervals.get(kind) else {
            return;
        };
        let next = SignedDuration::try_from(*interval)
            .ok()
            .and_then(|d| at.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX);
        self.next_free
            .lock()
            .insert((kind.to_string(), address.to_string()), next);
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
        t.mark_sent("sms", "+1555", now);
        let later = now + SignedDuration::from_secs(10);
        assert_eq!(
            t.check("sms", "+1555", later),
            Some(now + SignedDuration::from_secs(60))
        );
        // Another phone and another kind are independent.
        assert_eq!(t.check("sms", "+1666", later), None);
        t.mark_sent("slack", "+1555", later);
        assert_eq!(t.check("slack", "+1555", later), None);
        assert_eq!(
            t.check("sms", "+1555", now + SignedDuration::from_secs(60)),
            None
        );
    }
}
