//! Limit algorithms: how a [`Limiter`](crate::Limiter) learns how much work to admit.
//!
//! A limit algorithm contains *queue growth*: it watches completed work (latency and drops) and
//! moves the concurrency limit so that admitted work matches what the service can actually do.
//! Every algorithm implements [`LimitAlgorithm`]; a Rust user can bring their own.
//!
//! Samples reach an algorithm through a window ([`WindowConfig`]): a completed call adds its
//! sample with one atomic add, and when the window is due (its duration has passed and it holds
//! enough samples) one thread, elected without waiting, hands the aggregate ([`WindowSample`])
//! to [`LimitAlgorithm::update`] and publishes the new limit. A per-sample algorithm is a window
//! of one sample and no duration ([`WindowConfig::per_sample`]).
//!
//! | algorithm | file | reference |
//! |---|---|---|
//! | [`Fixed`] | `fixed.rs` | Netflix `FixedLimit` / `SettableLimit` |
//! | [`Aimd`] | `aimd.rs` | Netflix `AIMDLimit` (parity preset) and valve defaults |
//! | [`Gradient2`] | `gradient2.rs` | Netflix `Gradient2Limit` (parity preset) and valve defaults |
//! | [`Vegas`] | `vegas.rs` | Netflix `VegasLimit` (parity preset) and valve defaults |
//! | [`EnvoyGradient`] | `gradient.rs` | Envoy adaptive concurrency gradient controller (parity preset) and valve defaults |
//!
//! Shared pieces: `window.rs` and `histogram.rs` (sample accumulation), `smoothed.rs` (RTT
//! averaged over samples), `slow_start.rs`, `float_limit.rs` (the float estimate behind the
//! published integer limit).

mod aimd;
mod fixed;
mod float_limit;
mod gradient;
mod gradient2;
mod histogram;
mod shards;
mod slow_start;
mod smoothed;
mod vegas;
pub(crate) mod window;

use std::time::Duration;

pub use aimd::{Aimd, AimdConfig, AimdLatency};
pub use fixed::Fixed;
pub use gradient::{EnvoyGradient, EnvoyGradientConfig, MinRtt};
pub use gradient2::{Gradient2, Gradient2Config, QueueSize};
pub use histogram::{Drained, LatencyHistogram, MAX_TRACKED};
pub use vegas::{Vegas, VegasConfig, VegasDecrease};

use crate::clock::{Nanos, duration_to_nanos};
use crate::error::ConfigError;

/// The largest limit any algorithm may publish.
///
/// In-flight and the limit share one 64-bit admission word, 32 bits each; keeping the limit below
/// 2^31 leaves in-flight room above a lowered limit without ever touching the limit's bits.
pub const MAX_LIMIT: u32 = 1 << 30;

/// The aggregate of one window of completed calls, as an algorithm sees it.
///
/// For a per-sample window this is exactly one call: `rtt == min_rtt` is its RTT and
/// `max_in_flight` its in-flight count at acquire.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct WindowSample {
    /// When the window closed.
    pub now: Nanos,
    /// Calls sampled in the window (successes and drops).
    pub samples: u32,
    /// Mean RTT of the window's samples, in nanoseconds (accumulated at microsecond resolution).
    pub rtt: Nanos,
    /// Smallest RTT in the window, in nanoseconds.
    pub min_rtt: Nanos,
    /// Largest in-flight count recorded at acquire by a call in the window.
    pub max_in_flight: u32,
    /// Whether any call completed as dropped since the previous update.
    pub did_drop: bool,
    /// The [`WindowConfig::percentile`] of the window's RTTs from its histogram (within
    /// 3.125 %, see [`LatencyHistogram`]); equal to `rtt` when no percentile is configured.
    pub percentile_rtt: Nanos,
}

impl WindowSample {
    /// One sample, as a per-sample algorithm or a golden-vector test sees it.
    pub fn single(now: Nanos, rtt: Nanos, in_flight: u32, did_drop: bool) -> Self {
        Self {
            now,
            samples: 1,
            rtt,
            min_rtt: rtt,
            max_in_flight: in_flight,
            did_drop,
            percentile_rtt: rtt,
        }
    }

    /// This sample with `percentile_rtt` replaced, as a percentile window would deliver it.
    pub fn with_percentile(self, percentile_rtt: Nanos) -> Self {
        Self { percentile_rtt, ..self }
    }
}

/// The smallest and largest limit an algorithm publishes. [`Limiter::set_limit`] clamps to it.
///
/// [`Limiter::set_limit`]: crate::Limiter::set_limit
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitBounds {
    /// Smallest limit (at least 1).
    pub min: u32,
    /// Largest limit (at most [`MAX_LIMIT`]).
    pub max: u32,
}

impl LimitBounds {
    /// Validated bounds: `1 <= min <= max <= MAX_LIMIT`.
    pub fn new(min: u32, max: u32) -> Result<Self, ConfigError> {
        if min == 0 {
            return Err(ConfigError::Zero { field: "limit min" });
        }
        if max > MAX_LIMIT {
            return Err(ConfigError::out_of_range("limit max", max, "[1, 2^30]"));
        }
        if min > max {
            return Err(ConfigError::MinAboveMax {
                field: "limit",
                min: min.into(),
                max: max.into(),
            });
        }
        Ok(Self { min, max })
    }

    /// Clamps `limit` into the bounds.
    #[inline]
    pub fn clamp(&self, limit: u32) -> u32 {
        limit.clamp(self.min, self.max)
    }

    pub(crate) fn check_initial(&self, initial: u32) -> Result<(), ConfigError> {
        if initial < self.min || initial > self.max {
            return Err(ConfigError::out_of_range("initial limit", initial, "[min, max]"));
        }
        Ok(())
    }
}

/// How completed calls are aggregated before an algorithm sees them.
///
/// A window closes at the first sample that finds both its duration elapsed and at least
/// `min_samples` samples in it; a window that has not reached `min_samples` keeps accumulating
/// rather than being thrown away (Netflix's `WindowedLimit` discards it, issue #152). The next
/// window's duration is `clamp(2 x min RTT of the last window, min_duration, max_duration)`, as
/// in Netflix's `WindowedLimit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowConfig {
    /// Shortest window.
    pub min_duration: Duration,
    /// Longest window.
    pub max_duration: Duration,
    /// Samples a window needs before it may close (at least 1).
    pub min_samples: u32,
    /// Samples with an RTT below this are not sampled (they still count as successes or drops).
    /// Netflix uses 100 us to ignore calls that never reached the service.
    pub min_rtt_threshold: Duration,
    /// If set (in `(0, 1]`), the window also fills [`LatencyHistogram`]s and reports this
    /// percentile of its RTTs as [`WindowSample::percentile_rtt`]. One histogram per thread
    /// shard (2.3 KiB each, plus as much for the updater's marks; a limiter has twice the
    /// hardware threads plus one shards, at most 65), so a sample adds one plain store to its
    /// own thread's bucket; without it the sample path does not touch a histogram. The rank is Netflix's
    /// `round(n * p)`; unlike Netflix's `PercentileSampleWindow`, whose fixed array ignores
    /// the samples (RTT, in-flight, drop) that arrive once it is full, every sample counts.
    pub percentile: Option<f64>,
}

impl WindowConfig {
    /// Every sample updates the algorithm (no aggregation when calls do not overlap).
    pub const fn per_sample() -> Self {
        Self {
            min_duration: Duration::ZERO,
            max_duration: Duration::ZERO,
            min_samples: 1,
            min_rtt_threshold: Duration::ZERO,
            percentile: None,
        }
    }

    /// Netflix `WindowedLimit` defaults: 1 s windows, at least 10 samples, samples under 100 us
    /// ignored.
    pub const fn netflix() -> Self {
        Self {
            min_duration: Duration::from_secs(1),
            max_duration: Duration::from_secs(1),
            min_samples: 10,
            min_rtt_threshold: Duration::from_micros(100),
            percentile: None,
        }
    }

    /// valve's default: a window of twice the minimum RTT, between 10 ms and 1 s, with at least
    /// 10 samples. Short windows let a limit follow capacity within a few round trips instead of
    /// once a second.
    pub const fn valve_default() -> Self {
        Self {
            min_duration: Duration::from_millis(10),
            max_duration: Duration::from_secs(1),
            min_samples: 10,
            min_rtt_threshold: Duration::ZERO,
            percentile: None,
        }
    }

    /// A window that never closes: for limits that do not learn ([`Fixed`]).
    pub const fn never() -> Self {
        Self {
            min_duration: Duration::MAX,
            max_duration: Duration::MAX,
            min_samples: u32::MAX,
            min_rtt_threshold: Duration::ZERO,
            percentile: None,
        }
    }

    /// Checks `min_duration <= max_duration`, `min_samples >= 1` and a percentile in
    /// `(0, 1]`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(p) = self.percentile {
            if !p.is_finite() {
                return Err(ConfigError::NotFinite { field: "window percentile" });
            }
            if p <= 0.0 || p > 1.0 {
                return Err(ConfigError::out_of_range("window percentile", p, "(0, 1]"));
            }
        }
        if self.min_samples == 0 {
            return Err(ConfigError::Zero { field: "window min_samples" });
        }
        if self.min_duration > self.max_duration {
            return Err(ConfigError::MinAboveMax {
                field: "window duration (ns)",
                min: duration_to_nanos(self.min_duration),
                max: duration_to_nanos(self.max_duration),
            });
        }
        Ok(())
    }
}

/// What an algorithm asks of the window that feeds its next update. The window reads it right
/// after each update (on the elected updater) and applies it to the windows that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowRequest {
    /// Samples of calls started before this instant are not sampled (Envoy discards samples
    /// of requests started before a min-RTT measurement). 0: keep all.
    pub discard_started_before: Nanos,
    /// If set, the next window closes at its `n`-th sample whatever its duration (Envoy's
    /// min-RTT measurement over `request_count` samples); otherwise the configured rule.
    pub close_after_samples: Option<u32>,
}

/// A concurrency-limit algorithm.
///
/// The limiter owns the algorithm and calls [`update`](Self::update) from exactly one thread at a
/// time (the window's elected updater), so an algorithm keeps plain, even floating-point, state
/// in `&mut self`. It never runs on the admission path.
pub trait LimitAlgorithm: Send {
    /// The limit before any sample arrives.
    fn initial_limit(&self) -> u32;

    /// The range every limit this algorithm publishes lies in.
    fn bounds(&self) -> LimitBounds;

    /// How samples are aggregated before [`update`](Self::update) sees them.
    fn window(&self) -> WindowConfig;

    /// Computes the next limit from one window, given the limit now in force (which a user may
    /// have set by hand since the last update). The limiter clamps the result to
    /// [`bounds`](Self::bounds).
    fn update(&mut self, sample: &WindowSample, limit: u32) -> u32;

    /// What the windows after this update should do differently; the default asks nothing.
    fn next_window(&self) -> WindowRequest {
        WindowRequest::default()
    }
}

impl<A: LimitAlgorithm + ?Sized> LimitAlgorithm for Box<A> {
    fn initial_limit(&self) -> u32 {
        (**self).initial_limit()
    }
    fn bounds(&self) -> LimitBounds {
        (**self).bounds()
    }
    fn window(&self) -> WindowConfig {
        (**self).window()
    }
    fn update(&mut self, sample: &WindowSample, limit: u32) -> u32 {
        (**self).update(sample, limit)
    }
    fn next_window(&self) -> WindowRequest {
        (**self).next_window()
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_validated() {
        assert!(matches!(LimitBounds::new(0, 5), Err(ConfigError::Zero { .. })));
        assert!(matches!(LimitBounds::new(6, 5), Err(ConfigError::MinAboveMax { .. })));
        assert!(matches!(LimitBounds::new(1, MAX_LIMIT + 1), Err(ConfigError::OutOfRange { .. })));
        let b = LimitBounds::new(2, 9).unwrap();
        assert_eq!((b.clamp(0), b.clamp(5), b.clamp(100)), (2, 5, 9));
    }

    #[test]
    fn windows_are_validated() {
        let mut w = WindowConfig::netflix();
        assert_eq!(w.validate(), Ok(()));
        w.min_samples = 0;
        assert!(matches!(w.validate(), Err(ConfigError::Zero { .. })));
        let mut w = WindowConfig::valve_default();
        w.min_duration = Duration::from_secs(2);
        assert!(matches!(w.validate(), Err(ConfigError::MinAboveMax { .. })));
        assert_eq!(WindowConfig::never().validate(), Ok(()));
        assert_eq!(WindowConfig::per_sample().validate(), Ok(()));
        for bad in [0.0, 1.5, f64::NAN] {
            let w = WindowConfig { percentile: Some(bad), ..WindowConfig::netflix() };
            assert!(w.validate().is_err(), "{bad}");
        }
    }
}
