//! A breaker's configuration: trip policies, window, open duration and half-open rules.
//!
//! [`BreakerConfig::default`] is valve's own choice; the presets in `presets.rs` reproduce the
//! references. Every field is validated by [`Breaker::new`](crate::Breaker::new).

use std::time::Duration;

use crate::breaker::backoff::OpenBackoff;
use crate::breaker::state::{BreakerState, MAX_PROBES};
use crate::error::ConfigError;

/// The largest count window, in calls.
pub const MAX_COUNT_WINDOW: u32 = 1 << 20;
/// The most buckets a time window may have.
pub const MAX_TIME_BUCKETS: u32 = 1024;

/// The window the rate policies are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `calls` calls (resilience4j `COUNT_BASED`).
    Count {
        /// Window size, `1..=MAX_COUNT_WINDOW`.
        calls: u32,
    },
    /// The last `buckets` buckets of `bucket` each (resilience4j `TIME_BASED`, Polly, Hystrix).
    /// The window slides one bucket at a time.
    Time {
        /// Number of buckets, `1..=MAX_TIME_BUCKETS`.
        buckets: u32,
        /// Width of one bucket (greater than zero).
        bucket: Duration,
    },
}

/// When the rate policies are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RateCheck {
    /// After every recorded call, success included (resilience4j).
    EveryCall = 0,
    /// Only after a failure or a slow call (Polly: "evaluated on a handled failure").
    FailureOnly = 1,
}

/// When an Open breaker may go half-open, relative to its deadline `opened_at + duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum OpenBoundary {
    /// Once `now > deadline` (resilience4j `isAfter`, gobreaker `expiry.Before(now)`, Hystrix,
    /// failsafe-rs, recloser).
    Strict = 0,
    /// Once `now >= deadline` (Polly, failsafe-go).
    Inclusive = 1,
}

/// What closes (or reopens) a half-open breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseRule {
    /// Close after this many probe successes; the first probe failure (or slow probe, when a
    /// slow-call duration is set) reopens at once (gobreaker `MaxRequests`, Polly and Hystrix
    /// with 1).
    ConsecutiveSuccesses(u32),
    /// Decide once this many probes have reported: reopen if the failure rate or the slow-call
    /// rate of those probes reaches its threshold (`>=`), else close (resilience4j: its
    /// half-open window holds `min(minimumNumberOfCalls, permitted)` calls).
    Rate {
        /// Probe results needed for the decision, `1..=probes`.
        results: u32,
    },
}

/// What a half-open episode that outlives its timeout turns into. Either way the new state
/// has a new generation, so the probes that never reported can no longer change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum HalfOpenTimeoutTarget {
    /// Open again, with the next (longer) open duration (resilience4j's default).
    Open = 1,
    /// Close (resilience4j `transitionToStateAfterWaitDuration = CLOSED`, PR #2290).
    Closed = 0,
}

impl From<HalfOpenTimeoutTarget> for BreakerState {
    fn from(target: HalfOpenTimeoutTarget) -> Self {
        match target {
            HalfOpenTimeoutTarget::Open => Self::Open,
            HalfOpenTimeoutTarget::Closed => Self::Closed,
        }
    }
}

/// The half-open state's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfOpenConfig {
    /// Probes admitted per half-open episode, `1..=MAX_PROBES` (a probe reported ignored gives
    /// its place back).
    pub probes: u32,
    /// Probes in flight at once, `1..=probes`.
    pub max_concurrent: u32,
    /// What decides the episode.
    pub close_rule: CloseRule,
    /// How long an episode may last before it is ended as `on_timeout` says, reclaiming the
    /// probes that never reported (resilience4j `maxWaitDurationInHalfOpenState`, issues 903 and
    /// 935; Polly issue 1979). `None` waits forever, as gobreaker, Polly and Hystrix do. The
    /// timeout is reached once `now >= entered + timeout`, as resilience4j's scheduled task.
    pub timeout: Option<Duration>,
    /// The state a timed-out episode becomes.
    pub on_timeout: HalfOpenTimeoutTarget,
}

/// A circuit breaker's configuration.
///
/// Trip policies combine with OR: any one that fires opens the breaker. Rates are compared with
/// `>=` against their thresholds (resilience4j, Polly, Hystrix), once the window holds at least
/// `minimum_calls` calls (for a count window, `min(minimum_calls, calls)`, as resilience4j).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Trip when this many failures in a row are recorded in Closed (`>=`; gobreaker's default
    /// `ConsecutiveFailures > 5` is 6 here). `None`: off.
    pub consecutive_failures: Option<u32>,
    /// Trip when failures / calls in the window reaches this ratio, in `(0, 1]`. `None`: off.
    pub failure_rate: Option<f64>,
    /// Trip when slow calls / calls in the window reaches this ratio, in `(0, 1]`. Needs
    /// `slow_call_duration`. `None`: off.
    pub slow_call_rate: Option<f64>,
    /// A call is slow when its duration is strictly above this (resilience4j `>`). `None`: no
    /// call is slow.
    pub slow_call_duration: Option<Duration>,
    /// The window the rates are computed over (unused when both rates are off).
    pub window: SlidingWindow,
    /// Calls the window must hold before a rate can trip (at least 1).
    pub minimum_calls: u32,
    /// When the rates are checked.
    pub rate_check: RateCheck,
    /// How long the breaker stays open.
    pub open: OpenBackoff,
    /// When Open may turn half-open.
    pub open_boundary: OpenBoundary,
    /// The half-open rules.
    pub half_open: HalfOpenConfig,
}

impl Default for BreakerConfig {
    /// valve's defaults, fixing the references' known problems: a rate over a 10 s time window
    /// (min 20 calls) or 5 failures in a row; an open duration backing off from 5 s to 60 s
    /// with 20 % jitter (resilience4j #671, gobreaker #118); 3 probes one at a time that must
    /// all succeed (no thundering herd: Polly #216, resilience4j #1432); and a 30 s half-open
    /// timeout so a probe that never reports cannot wedge the breaker (Polly #1979).
    fn default() -> Self {
        Self {
            consecutive_failures: Some(5),
            failure_rate: Some(0.5),
            slow_call_rate: None,
            slow_call_duration: None,
            window: SlidingWindow::Time { buckets: 10, bucket: Duration::from_secs(1) },
            minimum_calls: 20,
            rate_check: RateCheck::EveryCall,
            open: OpenBackoff {
                base: Duration::from_secs(5),
                multiplier: 2.0,
                max: Duration::from_secs(60),
                jitter: 0.2,
            },
            open_boundary: OpenBoundary::Inclusive,
            half_open: HalfOpenConfig {
                probes: 3,
                max_concurrent: 1,
                close_rule: CloseRule::ConsecutiveSuccesses(3),
                timeout: Some(Duration::from_secs(30)),
                on_timeout: HalfOpenTimeoutTarget::Open,
            },
        }
    }
}

impl BreakerConfig {
    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.consecutive_failures == Some(0) {
            return Err(ConfigError::Zero { field: "consecutive_failures" });
        }
        for (field, rate) in
            [("failure_rate", self.failure_rate), ("slow_call_rate", self.slow_call_rate)]
        {
            if let Some(rate) = rate {
                ConfigError::check_ratio(field, rate, 0.0, 1.0, true, "(0, 1]")?;
                if rate == 0.0 {
                    return Err(ConfigError::out_of_range(field, rate, "(0, 1]"));
                }
            }
        }
        if self.slow_call_rate.is_some() && self.slow_call_duration.is_none() {
            return Err(ConfigError::Zero { field: "slow_call_duration" });
        }
        match self.window {
            SlidingWindow::Count { calls } if calls == 0 || calls > MAX_COUNT_WINDOW => {
                return Err(ConfigError::out_of_range("window calls", calls, "[1, 2^20]"));
            }
            SlidingWindow::Time { buckets, .. } if buckets == 0 || buckets > MAX_TIME_BUCKETS => {
                return Err(ConfigError::out_of_range("window buckets", buckets, "[1, 1024]"));
            }
            SlidingWindow::Time { bucket, .. } if bucket.is_zero() => {
                return Err(ConfigError::Zero { field: "window bucket" });
            }
            _ => {}
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::Zero { field: "minimum_calls" });
        }
        self.open.validate()?;
        let half_open = &self.half_open;
        if half_open.probes == 0 || half_open.probes > MAX_PROBES {
            return Err(ConfigError::out_of_range(
                "half_open probes",
                half_open.probes,
                "[1, 255]",
            ));
        }
        if half_open.max_concurrent == 0 {
            return Err(ConfigError::Zero { field: "half_open max_concurrent" });
        }
        if half_open.max_concurrent > half_open.probes {
            return Err(ConfigError::MinAboveMax {
                field: "half_open max_concurrent vs probes",
                min: half_open.max_concurrent.into(),
                max: half_open.probes.into(),
            });
        }
        let needed = match half_open.close_rule {
            CloseRule::ConsecutiveSuccesses(n) => n,
            CloseRule::Rate { results } => {
                if self.failure_rate.is_none() && self.slow_call_rate.is_none() {
                    return Err(ConfigError::Zero { field: "rate close rule needs a rate" });
                }
                results
            }
        };
        if needed == 0 || needed > half_open.probes {
            return Err(ConfigError::out_of_range(
                "half_open close rule results",
                needed,
                "[1, probes]",
            ));
        }
        if half_open.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::Zero { field: "half_open timeout" });
        }
        Ok(())
    }

    /// Whether a rate policy is on (so the breaker keeps a window).
    pub(crate) fn has_rate(&self) -> bool {
        self.failure_rate.is_some() || self.slow_call_rate.is_some()
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_bad_field_is_refused() {
        let ok = BreakerConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let half = ok.half_open;
        let bad = [
            BreakerConfig { consecutive_failures: Some(0), ..ok },
            BreakerConfig { failure_rate: Some(0.0), ..ok },
            BreakerConfig { failure_rate: Some(1.5), ..ok },
            BreakerConfig { failure_rate: Some(f64::NAN), ..ok },
            BreakerConfig { slow_call_rate: Some(0.5), slow_call_duration: None, ..ok },
            BreakerConfig { window: SlidingWindow::Count { calls: 0 }, ..ok },
            BreakerConfig { window: SlidingWindow::Count { calls: MAX_COUNT_WINDOW + 1 }, ..ok },
            BreakerConfig {
                window: SlidingWindow::Time { buckets: 0, bucket: Duration::from_secs(1) },
                ..ok
            },
            BreakerConfig {
                window: SlidingWindow::Time { buckets: 2, bucket: Duration::ZERO },
                ..ok
            },
            BreakerConfig { minimum_calls: 0, ..ok },
            BreakerConfig { half_open: HalfOpenConfig { probes: 0, ..half }, ..ok },
            BreakerConfig { half_open: HalfOpenConfig { probes: 256, ..half }, ..ok },
            BreakerConfig { half_open: HalfOpenConfig { max_concurrent: 0, ..half }, ..ok },
            BreakerConfig { half_open: HalfOpenConfig { max_concurrent: 4, ..half }, ..ok },
            BreakerConfig {
                half_open: HalfOpenConfig {
                    close_rule: CloseRule::ConsecutiveSuccesses(4),
                    ..half
                },
                ..ok
            },
            BreakerConfig {
                failure_rate: None,
                half_open: HalfOpenConfig { close_rule: CloseRule::Rate { results: 1 }, ..half },
                ..ok
            },
            BreakerConfig {
                half_open: HalfOpenConfig { timeout: Some(Duration::ZERO), ..half },
                ..ok
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
