//! Delivery health per channel and per target over a sliding window: success
//! rate, p50/p99 latency and retries, plus the latest health-check result.
//! An unhealthy target is skipped straight to failover.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::config::HealthConfig;

/// Key used for the channel as a whole.
pub const ANY_TARGET: &str = "*";

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Timestamp,
    ok: bool,
    latency_ms: u64,
    retry: bool,
}

/// Samples kept per window at most; older ones are dropped early so memory and
/// snapshot cost stay bounded under a storm (rates then cover the newest samples).
pub const MAX_SAMPLES: usize = 4096;

/// One sliding window. `ok` counts the successful samples so health decisions
/// are O(1) per attempt.
#[derive(Debug, Default)]
struct Window {
    samples: VecDeque<Sample>,
    ok: usize,
    healthy: Option<bool>,
}

impl Window {
    fn push(&mut self, s: Sample) {
        if self.samples.len() == MAX_SAMPLES {
            self.pop();
        }
        self.ok += usize::from(s.ok);
        self.samples.push_back(s);
    }

    fn pop(&mut self) {
        if let Some(s) = self.samples.pop_front() {
            self.ok -= usize::from(s.ok);
        }
    }
}

#[derive(Debug, Clone)]
struct CheckResult {
    at: Timestamp,
    error: Option<String>,
}

/// Figures for one channel or `(channel, target)` over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    /// Channel instance.
    pub channel: String,
    /// Target address, or `*` for the whole channel.
    pub target: String,
    /// Attempts in the window.
    pub attempts: u64,
    /// Successful fraction (1.0 when there were no attempts).
    pub success_rate: f64,
    /// Median latency in milliseconds.
    pub p50_ms: u64,
    /// 99th-percentile latency in milliseconds.
    pub p99_ms: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Latest health-check error, if the latest check failed within its TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_error: Option<String>,
    /// Whether deliveries should still be routed here.
    pub healthy: bool,
}

/// Thread-safe health bookkeeping.
#[derive(Debug)]
pub struct HealthTracker {
    config: HealthConfig,
    /// channel → target (or [`ANY_TARGET`]) → window; nested so the hot path
    /// looks up by `&str` and allocates keys only for a new channel or target.
    windows: Mutex<HashMap<String, HashMap<String, Window>>>,
    checks: Mutex<HashMap<String, CheckResult>>,
}

fn secs(d: u64) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(d).unwrap_or(i64::MAX))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl HealthTracker {
    /// An empty tracker.
    pub fn new(config: HealthConfig) -> Self {
        HealthTracker {
            config,
            windows: Mutex::new(HashMap::new()),
            checks: Mutex::new(HashMap::new()),
        }
    }

    /// Records one attempt for `channel` and `target` (and the channel as a whole).
    /// Returns the `(target, healthy)` pairs whose health state changed.
    pub fn record(
        &self,
        channel: &str,
        target: &str,
        at: Timestamp,
        ok: bool,
        latency: Duration,
        retry: bool,
    ) -> Vec<(String, bool)> {
        let sample = Sample {
            at,
            ok,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            retry,
        };
        let mut changes = Vec::new();
        let mut g = self.windows.lock();
        let targets = match g.get_mut(channel) {
            Some(m) => m,
            None => g.entry(channel.to_string()).or_default(),
        };
        for t in [target, ANY_TARGET] {
            let w = match targets.get_mut(t) {
                Some(w) => w,
                None => targets.entry(t.to_string()).or_default(),
            };
            w.push(sample);
            self.prune(w, at);
            let healthy = self.window_healthy(w);
            if w.healthy != Some(healthy) {
                if w.healthy.is_some() || !healthy {
                    changes.push((t.to_string(), healthy));
                }
                w.healthy = Some(healthy);
            }
        }
        changes
    }

    /// Records a health-check result for a channel.
    pub fn record_check(&self, channel: &str, at: Timestamp, error: Option<String>) {
        self.checks
            .lock()
            .insert(channel.to_string(), CheckResult { at, error });
    }

    fn prune(&self, w: &mut Window, now: Timestamp) {
        let horizon = now
            .checked_sub(secs(self.config.window_secs))
            .unwrap_or(now);
        while w.samples.front().is_some_and(|s| s.at < horizon) {
            w.pop();
        }
    }

    fn window_healthy(&self, w: &Window) -> bool {
        let n = w.samples.len();
        if n < self.config.min_samples as usize || n == 0 {
            return true;
        }
        (w.ok as f64 / n as f64) >= self.config.unhealthy_below
    }

    fn check_error(&self, channel: &str, now: Timestamp) -> Option<String> {
        let g = self.checks.lock();
        let c = g.get(channel)?;
        let fresh =
            c.at.checked_add(secs(self.config.check_ttl_secs))
                .is_ok_and(|until| until >= now);
        if fresh { c.error.clone() } else { None }
    }

    /// `false` when the latest health check of `channel` failed (within its TTL),
    /// or when the channel or this target's success rate in the window is below
    /// the threshold.
    pub fn is_healthy(&self, channel: &str, target: &str, now: Timestamp) -> bool {
        if self.check_error(channel, now).is_some() {
            return false;
        }
        let mut g = self.windows.lock();
        let Some(targets) = g.get_mut(channel) else {
            return true;
        };
        for t in [target, ANY_TARGET] {
            if let Some(w) = targets.get_mut(t) {
                self.prune(w, now);
                if !self.window_healthy(w) {
                    return false;
                }
            }
        }
        true
    }

    /// Figures for one channel (`target = "*"`) or one target.
    pub fn snapshot(&self, channel: &str, target: &str, now: Timestamp) -> HealthSnapshot {
        let check_error = self.check_error(channel, now);
        let mut g = self.windows.lock();
        let (attempts, ok, retries, mut lat) =
            match g.get_mut(channel).and_then(|m| m.get_mut(target)) {
                Some(w) => {
                    self.prune(w, now);
                    (
                        w.samples.len() as u64,
                        w.ok as u64,
                        w.samples.iter().filter(|s| s.retry).count() as u64,
                        w.samples.iter().map(|s| s.latency_ms).collect::<Vec<_>>(),
                    )
                }
                None => (0, 0, 0, Vec::new()),
            };
        drop(g);
        lat.sort_unstable();
        let healthy = self.is_healthy(channel, target, now);
        HealthSnapshot {
            channel: channel.to_string(),
            target: target.to_string(),
            attempts,
            success_rate: if attempts == 0 {
                1.0
            } else {
                ok as f64 / attempts as f64
            },
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            retries,
            check_error,
            healthy,
        }
    }

    /// Snapshots of every channel and target seen so far, sorted.
    pub fn all(&self, now: Timestamp) -> Vec<HealthSnapshot> {
        let mut keys: Vec<(String, String)> = self
            .windows
            .lock()
            .iter()
            .flat_map(|(c, m)| m.keys().map(|t| (c.clone(), t.clone())))
            .collect();
        for c in self.checks.lock().keys() {
            keys.push((c.clone(), ANY_TARGET.to_string()));
        }
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|(c, t)| self.snapshot(&c, &t, now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rates_percentiles_and_expiry() {
        let h = HealthTracker::new(HealthConfig::default());
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        for i in 0..100u64 {
            h.record(
                "slack",
                "#ops",
                t0,
                i % 4 != 0,
                Duration::from_millis(i + 1),
                i % 10 == 0,
            );
        }
        let s = h.snapshot("slack", "#ops", t0);
        assert_eq!(s.attempts, 100);
        assert!((s.success_rate - 0.75).abs() < 1e-9);
        assert_eq!(s.p50_ms, 50);
        assert_eq!(s.p99_ms, 99);
        assert_eq!(s.retries, 10);
        assert!(s.healthy);
        // The window slides: after 301 s nothing is left.
        let later = t0 + SignedDuration::from_secs(301);
        assert_eq!(h.snapshot("slack", "#ops", later).attempts, 0);
    }

    #[test]
    fn failures_and_failed_checks_make_a_target_unhealthy() {
        let h = HealthTracker::new(HealthConfig::default());
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert!(
            h.record("sms", "+1", t0, false, Duration::ZERO, false)
                .is_empty()
        );
        assert!(
            h.record("sms", "+1", t0, false, Duration::ZERO, false)
                .is_empty()
        );
        let changes = h.record("sms", "+1", t0, false, Duration::ZERO, false);
        assert_eq!(changes, vec![("+1".into(), false), ("*".into(), false)]);
        assert!(!h.is_healthy("sms", "+1", t0));
        assert!(h.is_healthy("email", "a@b", t0));
        h.record_check("email", t0, Some("connection refused".into()));
        assert!(!h.is_healthy("email", "a@b", t0));
        assert!(h.is_healthy("email", "a@b", t0 + SignedDuration::from_secs(121)));
    }
}
