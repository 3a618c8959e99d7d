//! Per-key token buckets (per integration, per PagerDuty routing key).
//!
//! A bucket for `n` per minute holds `n` tokens and refills continuously at `n/60`
//! per second, so a burst of `n` passes and the long-run rate is `n` per minute.
//! Time is passed in, so tests need not sleep.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by key.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `cost` tokens from `key`'s bucket of `per_minute` (0 = unlimited).
    /// `Err(wait)` says how long until enough tokens are back; nothing is taken then.
    pub fn check(
        &self,
        key: &str,
        per_minute: u32,
        cost: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let cap = f64::from(per_minute);
        let rate = cap / 60.0;
        let cost = f64::from(cost.max(1)).min(cap);
        let mut map = self.buckets.lock();
        let b = map.entry(key.to_string()).or_insert(Bucket {
            tokens: cap,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(cap);
        b.last = now;
        if b.tokens >= cost {
            b.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - b.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_key() {
        let rl = RateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(rl.check("a", 60, 1, t0).is_ok());
        }
        let wait = rl.check("a", 60, 1, t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        // another key has its own bucket
        assert!(rl.check("b", 60, 1, t0).is_ok());
        // one second later one token is back
        assert!(rl.check("a", 60, 1, t0 + Duration::from_secs(1)).is_ok());
        assert!(rl.check("a", 60, 1, t0 + Duration::from_secs(1)).is_err());
        assert!(rl.check("x", 0, 1000, t0).is_ok());
    }
}
