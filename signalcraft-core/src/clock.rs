//! Time, injected. Nothing in `signalcraft-core` reads the wall clock except
//! [`SystemClock`]; tests drive a [`ManualClock`] and can simulate weeks in
//! milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;

/// A source of the current instant.
///
/// Contract: `now()` is cheap, never panics, and is monotonic for a given clock
/// as far as the implementation can make it (the system clock may step).
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place core may read the wall clock
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to. Cloning shares the same instant.
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        let nanos = i64::try_from(start.as_nanosecond()).unwrap_or(i64::MAX);
        ManualClock {
            nanos: Arc::new(AtomicI64::new(nanos)),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let add = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        self.nanos.fetch_add(add, Ordering::SeqCst);
    }

    /// Sets the clock to `t` (may move backwards; tests only).
    pub fn set(&self, t: Timestamp) {
        let nanos = i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX);
        self.nanos.store(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanosecond(i128::from(self.nanos.load(Ordering::SeqCst)))
            .unwrap_or(Timestamp::MAX)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances_and_is_shared() {
        let start: Timestamp = "2026-03-29T00:30:00Z".parse().unwrap();
        let c = ManualClock::new(start);
        let c2 = c.clone();
        c.advance(Duration::from_secs(90));
        assert_eq!(
            c2.now(),
            "2026-03-29T00:31:30Z".parse::<Timestamp>().unwrap()
        );
    }
}
