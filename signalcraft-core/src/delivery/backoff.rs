//! Exponential backoff with full jitter, honouring `Retry-After`.
//!
//! The delay before retry `n` (1-based) is drawn uniformly from
//! `[0, min(max, initial · multiplierⁿ⁻¹))` ("full jitter", which spreads a storm of
//! retries best), and is never shorter than a server's `Retry-After`. Randomness
//! comes from an injected [`Jitter`] so tests are deterministic.

use std::time::Duration;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::config::RetryConfig;
use crate::error::CoreError;

/// A source of uniform random numbers in `[0, 1)`.
pub trait Jitter: Send + Sync {
    /// The next sample, in `[0, 1)`.
    fn sample(&self) -> f64;
}

/// Always returns the same value (clamped to `[0, 1]`); for tests and for
/// embedders that want deterministic delays (`FixedJitter(1.0)` = no jitter).
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub f64);

impl Jitter for FixedJitter {
    fn sample(&self) -> f64 {
        self.0.clamp(0.0, 1.0)
    }
}

/// Pseudo-random jitter from a seeded generator.
#[derive(Debug)]
pub struct RngJitter(Mutex<StdRng>);

impl RngJitter {
    /// A generator with a fixed seed (reproducible).
    pub fn seeded(seed: u64) -> Self {
        RngJitter(Mutex::new(StdRng::seed_from_u64(seed)))
    }

    /// A generator seeded from the operating system.
    pub fn from_os() -> Self {
        RngJitter(Mutex::new(StdRng::from_os_rng()))
    }
}

impl Jitter for RngJitter {
    fn sample(&self) -> f64 {
        self.0.lock().random::<f64>()
    }
}

/// Validated backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
}

impl Backoff {
    /// Validates and builds. `initial > 0`, `max ≥ initial`, `multiplier ≥ 1`.
    pub fn new(initial: Duration, max: Duration, multiplier: f64) -> Result<Self, CoreError> {
        if initial.is_zero() {
            return Err(CoreError::config(
                "delivery.retry.initial_backoff_ms",
                "must be greater than 0",
            ));
        }
        if max < initial {
            return Err(CoreError::config(
                "delivery.retry.max_backoff_ms",
                "must be at least initial_backoff_ms",
            ));
        }
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(CoreError::config(
                "delivery.retry.multiplier",
                "must be a finite number ≥ 1",
            ));
        }
        Ok(Backoff {
            initial,
            max,
            multiplier,
        })
    }

    /// From the retry section of the delivery config.
    pub fn from_config(c: &RetryConfig) -> Result<Self, CoreError> {
        Backoff::new(
            Duration::from_millis(c.initial_backoff_ms),
            Duration::from_millis(c.max_backoff_ms),
            c.multiplier,
        )
    }

    /// The upper bound of the delay before retry `retry` (1-based).
    pub fn cap(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(63) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay before retry `retry` (1-based): `cap(retry) · u` with `u` from
    /// `jitter`, raised to `retry_after` when the server asked for longer.
    pub fn delay(
        &self,
        retry: u32,
        jitter: &dyn Jitter,
        retry_after: Option<Duration>,
    ) -> Duration {
        let d = self.cap(retry).mul_f64(jitter.sample().clamp(0.0, 1.0));
        match retry_after {
            Some(ra) if ra > d => ra,
            _ => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(10), 2.0).unwrap()
    }

    #[test]
    fn caps_grow_exponentially_and_saturate() {
        let b = b();
        assert_eq!(b.cap(1), Duration::from_secs(1));
        assert_eq!(b.cap(2), Duration::from_secs(2));
        assert_eq!(b.cap(4), Duration::from_secs(8));
        assert_eq!(b.cap(5), Duration::from_secs(10));
        assert_eq!(b.cap(1000), Duration::from_secs(10));
    }

    #[test]
    fn full_jitter_scales_the_cap_and_retry_after_wins_when_longer() {
        let b = b();
        assert_eq!(b.delay(3, &FixedJitter(0.5), None), Duration::from_secs(2));
        assert_eq!(b.delay(3, &FixedJitter(0.0), None), Duration::ZERO);
        assert_eq!(
            b.delay(1, &FixedJitter(0.5), Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            b.delay(4, &FixedJitter(1.0), Some(Duration::from_secs(1))),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn seeded_jitter_stays_in_range_and_is_reproducible() {
        let (a, c) = (RngJitter::seeded(7), RngJitter::seeded(7));
        for _ in 0..1000 {
            let x = a.sample();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, c.sample());
        }
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(Backoff::new(Duration::ZERO, Duration::from_secs(1), 2.0).is_err());
        assert!(Backoff::new(Duration::from_secs(2), Duration::from_secs(1), 2.0).is_err());
        assert!(Backoff::new(Duration::from_secs(1), Duration::from_secs(2), f64::NAN).is_err());
    }
}
