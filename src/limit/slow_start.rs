//! Slow start: exponential growth from a cold start until the first overload signal.
//!
//! Netflix's limits add about one per window from an initial 20, so reaching a capacity of a few
//! hundred takes minutes (Netflix issue 35, Vector issue 3255, palantir/dialogue PR 3052). Every
//! learning algorithm here can start in slow start instead: while no window has dropped and the
//! RTT stays within the algorithm's tolerance of its baseline (AIMD: below its timeout), the
//! limit doubles each window
//! the limit was actually used (in-flight reached half of it, the same app-limited rule as
//! Netflix's), up to twice the window's largest in-flight: a limit never runs ahead of the
//! traffic it has seen, so a service that is merely under-loaded does not leave a limit far
//! above its capacity for the moment that capacity drops. The first drop or latency signal ends
//! slow start for good and that window is handled by the algorithm's own rule.

/// Per-algorithm slow-start state (only the elected updater touches it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlowStart {
    active: bool,
}

impl SlowStart {
    pub(crate) fn new(enabled: bool) -> Self {
        Self { active: enabled }
    }

    /// The next limit while slow start lasts, `None` once it has ended (`signal` ends it, and
    /// the window that carried the signal goes to the algorithm's rule).
    pub(crate) fn next(&mut self, limit: u32, max_in_flight: u32, signal: bool) -> Option<u32> {
        if !self.active {
            return None;
        }
        if signal {
            self.active = false;
            return None;
        }
        // Same boundary as Netflix's app-limited rule: growth needs `inflight * 2 >= limit`.
        if u64::from(max_in_flight) * 2 < u64::from(limit) {
            return Some(limit);
        }
        let doubled = limit.saturating_mul(2).min(max_in_flight.saturating_mul(2));
        Some(doubled.max(limit))
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn doubles_while_used_and_ends_at_the_first_signal() {
        let mut s = SlowStart::new(true);
        assert_eq!(s.next(10, 10, false), Some(20));
        assert_eq!(s.next(20, 9, false), Some(20), "app-limited: hold");
        assert_eq!(s.next(20, 20, false), Some(40));
        assert_eq!(s.next(40, 25, false), Some(50), "twice the largest in-flight");
        assert_eq!(s.next(40, 40, true), None);
        assert_eq!(s.next(40, 40, false), None, "never restarts");
        assert_eq!(SlowStart::new(false).next(1, 1, false), None);
        assert_eq!(SlowStart::new(true).next(u32::MAX, u32::MAX, false), Some(u32::MAX));
    }
}
