//! Presets reproducing the reference breakers' defaults and boundaries.
//!
//! Each preset is a plain [`BreakerConfig`]: change any field after taking it. Where a reference
//! behaves in a way valve's core refuses on principle, the preset keeps valve's rule and says so.
//! Every preset here has no half-open timeout, as its reference, so a probe that never reports
//! leaves it half-open until a manual transition (Polly issue 1979); [`BreakerConfig::default`]
//! has one.

use std::time::Duration;

use crate::breaker::backoff::OpenBackoff;
use crate::breaker::config::{
    BreakerConfig, CloseRule, HalfOpenConfig, HalfOpenTimeoutTarget, OpenBoundary, RateCheck,
    SlidingWindow,
};

/// Half-open with `probes` probes at once and no timeout.
fn half_open(probes: u32, close_rule: CloseRule) -> HalfOpenConfig {
    HalfOpenConfig {
        probes,
        max_concurrent: probes,
        close_rule,
        timeout: None,
        on_timeout: HalfOpenTimeoutTarget::Open,
    }
}

impl BreakerConfig {
    /// resilience4j `CircuitBreakerConfig.ofDefaults()`: failure rate `>= 50 %` or slow-call rate
    /// `>= 100 %` (slow: `> 60 s`) over the last 100 calls, checked after every call once 100
    /// are recorded; open 60 s, half-open once `now > deadline` (`isAfter`); 10 probes admitted
    /// at once, decided by their rates at the 10th result; no half-open timeout
    /// (`maxWaitDurationInHalfOpenState = 0`).
    ///
    /// Changing `minimum_calls` below 10 also changes the half-open decision in resilience4j
    /// (its half-open window needs `min(minimumNumberOfCalls, permitted)` results): set
    /// `half_open.close_rule` to `CloseRule::Rate { results: min(minimum_calls, probes) }` to
    /// keep parity.
    pub fn resilience4j() -> Self {
        Self {
            consecutive_failures: None,
            failure_rate: Some(0.5),
            slow_call_rate: Some(1.0),
            slow_call_duration: Some(Duration::from_secs(60)),
            window: SlidingWindow::Count { calls: 100 },
            minimum_calls: 100,
            rate_check: RateCheck::EveryCall,
            open: OpenBackoff::constant(Duration::from_secs(60)),
            open_boundary: OpenBoundary::Strict,
            half_open: half_open(10, CloseRule::Rate { results: 10 }),
        }
    }

    /// gobreaker v2 `Settings{}`: trip when `ConsecutiveFailures > 5` (6 failures in a row);
    /// open 60 s, half-open once `expiry.Before(now)` (strict); `MaxRequests = 1` probe, which
    /// closes on success and reopens on failure. Results of an earlier generation are dropped
    /// from the decision, as gobreaker does.
    pub fn gobreaker() -> Self {
        Self {
            consecutive_failures: Some(6),
            failure_rate: None,
            slow_call_rate: None,
            slow_call_duration: None,
            window: SlidingWindow::Count { calls: 1 },
            minimum_calls: 1,
            rate_check: RateCheck::EveryCall,
            open: OpenBackoff::constant(Duration::from_secs(60)),
            open_boundary: OpenBoundary::Strict,
            half_open: half_open(1, CloseRule::ConsecutiveSuccesses(1)),
        }
    }

    /// Polly v8 `CircuitBreakerStrategyOptions` defaults: trip on a handled failure when
    /// throughput `>= 100` and failure ratio `>= 0.1` over 30 s (10 buckets of 3 s); break 5 s,
    /// half-open once `now >= blockedUntil` (inclusive); one trial call, whose success closes
    /// and failure reopens.
    ///
    /// Differs from Polly on purpose: a result from a call admitted before the half-open state
    /// cannot decide it here (Polly lets it); it is counted as late.
    pub fn polly() -> Self {
        Self {
            consecutive_failures: None,
            failure_rate: Some(0.1),
            slow_call_rate: None,
            slow_call_duration: None,
            window: SlidingWindow::Time { buckets: 10, bucket: Duration::from_secs(3) },
            minimum_calls: 100,
            rate_check: RateCheck::FailureOnly,
            open: OpenBackoff::constant(Duration::from_secs(5)),
            open_boundary: OpenBoundary::Inclusive,
            half_open: half_open(1, CloseRule::ConsecutiveSuccesses(1)),
        }
    }

    /// Hystrix `HystrixCommandProperties` defaults: trip when `total >= 20` and error
    /// percentage `>= 50` over 10 s (10 buckets of 1 s); sleep window 5 s, half-open once
    /// `now > openedAt + sleepWindow` (strict); a single trial whose success closes and failure
    /// reopens.
    ///
    /// Differs from Hystrix on purpose: the health check runs after every call instead of on
    /// a 500 ms snapshot, so the breaker opens at the call that crosses the threshold (Hystrix
    /// opens up to 500 ms later, at the snapshot); and a late success from before the
    /// half-open state cannot close it.
    pub fn hystrix() -> Self {
        Self {
            consecutive_failures: None,
            failure_rate: Some(0.5),
            slow_call_rate: None,
            slow_call_duration: None,
            window: SlidingWindow::Time { buckets: 10, bucket: Duration::from_secs(1) },
            minimum_calls: 20,
            rate_check: RateCheck::EveryCall,
            open: OpenBackoff::constant(Duration::from_secs(5)),
            open_boundary: OpenBoundary::Strict,
            half_open: half_open(1, CloseRule::ConsecutiveSuccesses(1)),
        }
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid() {
        for config in [
            BreakerConfig::resilience4j(),
            BreakerConfig::gobreaker(),
            BreakerConfig::polly(),
            BreakerConfig::hystrix(),
        ] {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
    }
}
