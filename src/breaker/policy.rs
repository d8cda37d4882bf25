//! Trip policies, compiled from a [`BreakerConfig`] into integer comparisons.
//!
//! Rates are compared exactly in integers: `failures × 10^9 >= threshold_ppb × calls`. For the
//! references' thresholds (whole percentages) this equals resilience4j's float comparison and
//! Hystrix's truncated integer percentage (`floor(100 f / c) >= T` iff `100 f / c >= T` for a
//! whole `T`).

use crate::breaker::config::{BreakerConfig, CloseRule, RateCheck, SlidingWindow};
use crate::breaker::window::WindowCounts;
use crate::clock::{Nanos, duration_to_nanos};

const PPB: u64 = 1_000_000_000;

/// Why a breaker tripped or a half-open episode reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TripCause {
    ConsecutiveFailures,
    FailureRate,
    SlowCallRate,
}

/// The trip policies in force, as integers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policies {
    consecutive_failures: Option<u64>,
    failure_rate_ppb: Option<u64>,
    slow_rate_ppb: Option<u64>,
    /// Durations strictly above this are slow; `u64::MAX` when no call is slow.
    slow_above: Nanos,
    minimum_calls: u64,
    check_on_success: bool,
    close_rule: CloseRule,
}

fn ppb(ratio: f64) -> u64 {
    (ratio * PPB as f64).round() as u64
}

#[inline]
fn reaches(part: u64, whole: u64, threshold_ppb: Option<u64>) -> bool {
    threshold_ppb
        .is_some_and(|t| u128::from(part) * u128::from(PPB) >= u128::from(t) * u128::from(whole))
}

impl Policies {
    pub(crate) fn new(config: &BreakerConfig) -> Self {
        let minimum_calls = match config.window {
            // resilience4j: `min(minimumNumberOfCalls, slidingWindowSize)` for a count window.
            SlidingWindow::Count { calls } => config.minimum_calls.min(calls),
            SlidingWindow::Time { .. } => config.minimum_calls,
        };
        Self {
            consecutive_failures: config.consecutive_failures.map(u64::from),
            failure_rate_ppb: config.failure_rate.map(ppb),
            slow_rate_ppb: config.slow_call_rate.map(ppb),
            slow_above: config.slow_call_duration.map_or(u64::MAX, duration_to_nanos),
            minimum_calls: minimum_calls.into(),
            check_on_success: config.rate_check == RateCheck::EveryCall,
            close_rule: config.half_open.close_rule,
        }
    }

    /// A call of this duration is slow: strictly above the threshold (resilience4j `>`).
    #[inline]
    pub(crate) fn is_slow(&self, duration: Nanos) -> bool {
        duration > self.slow_above
    }

    /// After `n` failures in a row (`>=`; gobreaker's `> 5` is configured as 6).
    #[inline]
    pub(crate) fn consecutive_trips(&self, failures_in_a_row: u64) -> bool {
        self.consecutive_failures.is_some_and(|n| failures_in_a_row >= n)
    }

    /// Whether the rates must be checked after a call with this result.
    #[inline]
    pub(crate) fn checks_rates_after(&self, failed: bool, slow: bool) -> bool {
        self.check_on_success || failed || slow
    }

    /// The rate policy the window's counts fire, if any.
    #[inline]
    pub(crate) fn rate_trips(&self, counts: WindowCounts) -> Option<TripCause> {
        if counts.calls < self.minimum_calls {
            return None;
        }
        if reaches(counts.failures, counts.calls, self.failure_rate_ppb) {
            Some(TripCause::FailureRate)
        } else if reaches(counts.slow, counts.calls, self.slow_rate_ppb) {
            Some(TripCause::SlowCallRate)
        } else {
            None
        }
    }

    /// The decision a half-open episode has reached with these probe counts: `Some(true)` to
    /// reopen, `Some(false)` to close, `None` to wait for more probes.
    #[inline]
    pub(crate) fn half_open_decision(&self, reported: u32, failed: u32, slow: u32) -> Option<bool> {
        match self.close_rule {
            CloseRule::ConsecutiveSuccesses(n) => {
                if failed > 0 || slow > 0 {
                    Some(true)
                } else if reported >= n {
                    Some(false)
                } else {
                    None
                }
            }
            CloseRule::Rate { results } => {
                if reported < results {
                    return None;
                }
                let (reported, failed, slow) = (reported.into(), failed.into(), slow.into());
                Some(
                    reaches(failed, reported, self.failure_rate_ppb)
                        || reaches(slow, reported, self.slow_rate_ppb),
                )
            }
        }
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use std::time::Duration;

    use super::*;

    fn counts(calls: u64, failures: u64, slow: u64) -> WindowCounts {
        WindowCounts { calls, failures, slow }
    }

    #[test]
    fn rates_reach_their_threshold_inclusively_after_minimum_calls() {
        let config = BreakerConfig {
            failure_rate: Some(0.5),
            slow_call_rate: Some(1.0),
            slow_call_duration: Some(Duration::from_nanos(100)),
            window: SlidingWindow::Count { calls: 4 },
            minimum_calls: 10,
            ..BreakerConfig::default()
        };
        let p = Policies::new(&config);
        assert_eq!(p.rate_trips(counts(3, 3, 0)), None, "min(10, 4) = 4 calls needed");
        assert_eq!(p.rate_trips(counts(4, 2, 0)), Some(TripCause::FailureRate), "50% >= 50%");
        assert_eq!(p.rate_trips(counts(4, 1, 3)), None);
        assert_eq!(p.rate_trips(counts(4, 1, 4)), Some(TripCause::SlowCallRate));
        assert!(!p.is_slow(100) && p.is_slow(101), "strictly above");
    }

    #[test]
    fn whole_percentages_match_hystrix_truncation() {
        let config = BreakerConfig {
            failure_rate: Some(0.33),
            window: SlidingWindow::Count { calls: 1000 },
            minimum_calls: 1,
            ..BreakerConfig::default()
        };
        let p = Policies::new(&config);
        // 329/1000 truncates to 32 %; 330/1000 is 33 %.
        assert_eq!(p.rate_trips(counts(1000, 329, 0)), None);
        assert_eq!(p.rate_trips(counts(1000, 330, 0)), Some(TripCause::FailureRate));
    }

    #[test]
    fn half_open_rules() {
        let mut config = BreakerConfig::default();
        let p = Policies::new(&config);
        assert_eq!(p.half_open_decision(2, 0, 0), None);
        assert_eq!(p.half_open_decision(3, 0, 0), Some(false));
        assert_eq!(p.half_open_decision(1, 1, 0), Some(true));
        config.half_open.probes = 10;
        config.half_open.close_rule = CloseRule::Rate { results: 4 };
        let p = Policies::new(&config);
        assert_eq!(p.half_open_decision(3, 3, 0), None);
        assert_eq!(p.half_open_decision(4, 1, 0), Some(false));
        assert_eq!(p.half_open_decision(4, 2, 0), Some(true));
    }
}
