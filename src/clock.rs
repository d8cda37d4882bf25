//! Time as the core sees it: [`Nanos`] since a clock's origin, and the clocks that produce it.
//!
//! The core never reads a clock: every decision takes `now: Nanos` as an argument. That keeps it
//! deterministic under loom, quickcheck, the fuzzer and the overload simulator, and lets a C
//! caller pass its own timestamps. The convenience methods without `_at` read the instance's
//! [`Clock`]: [`MonotonicClock`] by default, [`ManualClock`] in tests and simulations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{AtomicU64, Ordering};

/// Nanoseconds since a clock's origin. A u64 lasts 584 years from the origin.
pub type Nanos = u64;

/// Converts a duration to [`Nanos`], saturating at `u64::MAX` (584 years).
#[inline]
pub fn duration_to_nanos(duration: Duration) -> Nanos {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A source of monotonic time in [`Nanos`].
///
/// Implementations must never go backwards; the core tolerates it (a negative RTT counts as
/// zero) but algorithms learn nothing useful from it.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Nanos;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    #[inline]
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    #[inline]
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

/// The system's monotonic clock ([`Instant`]), counted from when this value was created.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Nanos {
        duration_to_nanos(self.origin.elapsed())
    }
}

/// A clock that moves only when told to: for tests and simulations.
///
/// Share it with `Arc<ManualClock>` (which is itself a [`Clock`]). `set` may move time backwards;
/// see [`Clock`] for what that means.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Nanos) -> Self {
        Self { now: AtomicU64::new(start) }
    }

    /// Sets the time.
    pub fn set(&self, now: Nanos) {
        // Relaxed: the clock orders nothing else; callers synchronise through the core's atomics.
        self.now.store(now, Ordering::Relaxed);
    }

    /// Moves the time forward by `by`, saturating, and returns the new time.
    pub fn advance(&self, by: Duration) -> Nanos {
        let by = duration_to_nanos(by);
        let prev = self
            .now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_add(by)))
            .unwrap_or_else(|t| t);
        prev.saturating_add(by)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.now.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(5);
        assert_eq!(clock.now(), 5);
        assert_eq!(clock.advance(Duration::from_nanos(10)), 15);
        clock.set(3);
        assert_eq!(clock.now(), 3);
        clock.set(u64::MAX - 1);
        assert_eq!(clock.advance(Duration::from_secs(1)), u64::MAX);
    }

    #[test]
    fn monotonic_clock_does_not_go_backwards() {
        let clock = MonotonicClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(duration_to_nanos(Duration::MAX), u64::MAX);
        assert_eq!(duration_to_nanos(Duration::from_millis(3)), 3_000_000);
    }
}
