//! The adaptive limit algorithms' configs through the C ABI: `#[repr(C)]` mirrors of
//! [`Gradient2Config`], [`VegasConfig`] and [`EnvoyGradientConfig`], and the limiter's waiter
//! queue ([`QueueConfig`]), with lossless conversions both ways.
//!
//! Rust enums with data become a `uint32_t` kind plus the members each kind reads; a kind that
//! is not one of the documented values answers `VALVE_INVALID_ARGUMENT`. An `Option` whose
//! `None` cannot be confused with a valid value uses that value (documented per member);
//! otherwise it gets a `bool` of its own.

use std::time::Duration;

use crate::clock::duration_to_nanos;
use crate::error::ConfigError;
use crate::ffi::valve_window_config;
use crate::limit::{
    EnvoyGradientConfig, Gradient2Config, MinRtt, QueueSize, VegasConfig, VegasDecrease,
};
use crate::limiter::{QueueConfig, QueueOrdering};

/// How Gradient2's queue allowance follows the limit, for `valve_gradient2_config.queue_size_kind`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_queue_size {
    /// A constant allowance of `queue_size` (Netflix: 4).
    VALVE_QUEUE_SIZE_FIXED = 0,
    /// `max(queue_size, floor(sqrt(limit)))`.
    VALVE_QUEUE_SIZE_SQUARE_ROOT = 1,
}

/// How a Vegas limit shrinks, for `valve_vegas_config.decrease`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_vegas_decrease {
    /// `L - log10(L)` (Netflix).
    VALVE_VEGAS_DECREASE_LOG10 = 0,
    /// `L * decrease_ratio`, the ratio in `(0, 1)`.
    VALVE_VEGAS_DECREASE_RATIO = 1,
    /// Straight to the estimated no-queue level plus `alpha`, never below half the limit.
    VALVE_VEGAS_DECREASE_TO_ESTIMATE = 2,
}

/// Where the Envoy gradient controller gets its minimum RTT, for `valve_envoy_gradient_config.min_rtt`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_min_rtt {
    /// Measured at start and every `min_rtt_interval_ns` (plus jitter) over
    /// `min_rtt_request_count` samples (Envoy).
    VALVE_MIN_RTT_MEASURE = 0,
    /// A constant `min_rtt_fixed_ns` (Envoy's `fixed_value`).
    VALVE_MIN_RTT_FIXED = 1,
    /// The smallest window percentile seen: no measurement, no pinning.
    VALVE_MIN_RTT_LEARNED = 2,
    /// An average of the averaged percentiles within `(1 + min_rtt_band)` of it (valve): no
    /// measurement, no pinning, robust to noisy service times.
    VALVE_MIN_RTT_BASELINE = 3,
}

/// Which waiter a freed slot goes to, for `valve_queue_config.ordering`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_queue_ordering {
    /// Oldest first.
    VALVE_QUEUE_FIFO = 0,
    /// Newest first (Netflix `LifoBlockingLimiter`).
    VALVE_QUEUE_LIFO = 1,
    /// FIFO until the oldest waiter has waited longer than `max_age_ns`, then LIFO.
    VALVE_QUEUE_ADAPTIVE = 2,
}

/// Configuration of the GRADIENT2 algorithm (Netflix `Gradient2Limit` and valve's fixes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_gradient2_config {
    /// Limit before the first window, in `[min_limit, max_limit]`.
    pub initial_limit: u32,
    /// Smallest limit, at least 1.
    pub min_limit: u32,
    /// Largest limit, at most `VALVE_MAX_LIMIT`.
    pub max_limit: u32,
    /// Weight of the new estimate against the current limit, in `(0, 1]`.
    pub smoothing: f64,
    /// Whether increases are smoothed too (Netflix) or only decreases (valve).
    pub smooth_increases: bool,
    /// One of `valve_queue_size`.
    pub queue_size_kind: u32,
    /// The allowance (FIXED) or its floor (SQUARE_ROOT).
    pub queue_size: u32,
    /// Whether the allowance is added only in windows that show no queueing.
    pub queue_only_when_unqueued: bool,
    /// How far the short RTT may rise above the long one before the limit shrinks, at least 1.
    pub rtt_tolerance: f64,
    /// Windows the long-RTT average spans, at least 1.
    pub long_window: u32,
    /// Windows averaged plainly before the exponential average starts.
    pub long_warmup: u32,
    /// Factor applied to the long RTT when it is over twice the short one, in `(0, 1]`.
    pub long_rtt_decay: f64,
    /// Whether `baseline_band` is used (valve) or the long RTT learns from every window.
    pub use_baseline_band: bool,
    /// The long RTT learns only from windows within `(1 + baseline_band)` times it.
    pub baseline_band: f64,
    /// Upper bound on the long RTT, ns; 0 for none.
    pub max_healthy_rtt_ns: u64,
    /// Windows at `min_limit` after which the long RTT restarts (0: never).
    pub rebaseline_after: u32,
    /// Band within which a window counts as unqueued for `queue_only_when_unqueued`, if
    /// `use_unqueued_band`; otherwise `baseline_band` serves.
    pub use_unqueued_band: bool,
    /// See `use_unqueued_band`.
    pub unqueued_band: f64,
    /// Windows are averaged over about this many samples before comparison; 0: none (Netflix).
    pub rtt_samples: u32,
    /// Relearn the baseline when the latency rule cut the limit to a quarter and the RTT held.
    pub rebaseline_when_rtt_holds: bool,
    /// Factor applied on a window with a drop, in `[0.5, 1)`; 0 ignores drops (Netflix).
    pub backoff_ratio: f64,
    /// A window whose largest in-flight stays below this fraction of the limit does not raise
    /// it, in `[0, 1]` (Netflix 0.5; valve 0.8 keeps an under-loaded service's limit within
    /// 1.25x of its peak in-flight).
    pub utilisation_threshold: f64,
    /// Exponential growth until the first signal.
    pub slow_start: bool,
    /// How samples are aggregated.
    pub window: valve_window_config,
}

/// Configuration of the VEGAS algorithm (Netflix `VegasLimit` and valve's fixes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_vegas_config {
    /// Limit before the first window, in `[min_limit, max_limit]`.
    pub initial_limit: u32,
    /// Smallest limit, at least 1.
    pub min_limit: u32,
    /// Largest limit, at most `VALVE_MAX_LIMIT`.
    pub max_limit: u32,
    /// Queue below which the limit grows.
    pub alpha: u32,
    /// Queue above which the limit shrinks; also the fast growth step.
    pub beta: u32,
    /// Whether `alpha` and `beta` are multiplied by `log10(L)`.
    pub log10_scaled: bool,
    /// Weight of the new limit against the current one, in `(0, 1]`.
    pub smoothing: f64,
    /// Probe the no-load RTT every `jitter * probe_multiplier * L` windows; 0: never.
    pub probe_multiplier: u32,
    /// One of `valve_vegas_decrease`.
    pub decrease: u32,
    /// The ratio of `VALVE_VEGAS_DECREASE_RATIO`, in `(0, 1)`; read only for that kind.
    pub decrease_ratio: f64,
    /// Factor applied on a window with a drop, in `[0.5, 1)`; 0 applies `decrease`.
    pub backoff_ratio: f64,
    /// A window whose largest in-flight stays below this fraction of the limit does not raise
    /// it, in `[0, 1]` (Netflix 0.5; valve 0.7 keeps an under-loaded service's limit within
    /// 1.43x of its peak in-flight).
    pub utilisation_threshold: f64,
    /// Windows at `min_limit` after which the no-load RTT restarts (0: never).
    pub rebaseline_after: u32,
    /// Windows are averaged over about this many samples before comparison; 0: none (Netflix).
    pub rtt_samples: u32,
    /// Learn the no-load RTT as an average within `(1 + baseline_band)` of it rather than a
    /// minimum (valve), if set.
    pub use_baseline_band: bool,
    /// See `use_baseline_band`.
    pub baseline_band: f64,
    /// Exponential growth until the first signal.
    pub slow_start: bool,
    /// Seed of the probe jitter.
    pub seed: u64,
    /// How samples are aggregated.
    pub window: valve_window_config,
}

/// Configuration of the ENVOY_GRADIENT algorithm (Envoy's gradient controller).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_envoy_gradient_config {
    /// Limit before the first window.
    pub initial_limit: u32,
    /// The limit pinned during a measurement, in `[min_limit, max_limit]`.
    pub min_concurrency: u32,
    /// Smallest limit, at least 1.
    pub min_limit: u32,
    /// Largest limit, at most `VALVE_MAX_LIMIT`.
    pub max_limit: u32,
    /// Fraction of the minimum RTT tolerated as queueing, in `[0, 1]`.
    pub buffer: f64,
    /// One of `valve_min_rtt`.
    pub min_rtt: u32,
    /// MEASURE: time between measurements, ns.
    pub min_rtt_interval_ns: u64,
    /// MEASURE: random extra delay as a fraction of the interval, in `[0, 1]`.
    pub min_rtt_jitter: f64,
    /// MEASURE: samples per measurement.
    pub min_rtt_request_count: u32,
    /// MEASURE: pin the limit at `min_concurrency` while measuring (Envoy).
    pub min_rtt_pin: bool,
    /// FIXED: the minimum RTT, ns.
    pub min_rtt_fixed_ns: u64,
    /// BASELINE: the band within which percentiles teach the baseline.
    pub min_rtt_band: f64,
    /// Window percentiles are averaged over about this many samples; 0: none (Envoy).
    pub rtt_samples: u32,
    /// Updates at the minimum after which the minimum RTT is measured again; 0: never.
    pub remeasure_after: u32,
    /// Factor applied on a window with a drop, in `[0.5, 1)`; 0 ignores drops (Envoy).
    pub backoff_ratio: f64,
    /// Whether a window whose in-flight stayed below `utilisation_threshold` of the limit may
    /// not raise it (Envoy: false).
    pub app_limited: bool,
    /// With `app_limited`, the fraction of the limit a window's largest in-flight must reach
    /// for the limit to rise, in `[0, 1]` (valve 0.8; the Envoy preset carries Netflix's 0.5,
    /// unused).
    pub utilisation_threshold: f64,
    /// Exponential growth until the first signal.
    pub slow_start: bool,
    /// Seed of the measurement jitter.
    pub seed: u64,
    /// How samples are aggregated; needs a `percentile`.
    pub window: valve_window_config,
}

/// The limiter's waiter queue, used by `valve_limiter_acquire_until` and `_acquire_timeout`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_queue_config {
    /// Hard cap on queued waiters (0: a wait that finds no free slot is refused at once).
    pub max_waiters: u32,
    /// One of `valve_queue_ordering`.
    pub ordering: u32,
    /// ADAPTIVE: age of the oldest waiter, ns, from which ordering is LIFO.
    pub max_age_ns: u64,
    /// Queue length, as a multiple of the limit, from which new waiters are refused with
    /// rising probability; finite, in `[0, reject_all_at]`.
    pub reject_from: f64,
    /// Queue length, as a multiple of the limit, at which every new waiter is refused.
    pub reject_all_at: f64,
    /// Seed of the generator behind graded rejection.
    pub seed: u64,
}

const QUEUE_SIZE_FIXED: u32 = valve_queue_size::VALVE_QUEUE_SIZE_FIXED as u32;
const QUEUE_SIZE_SQUARE_ROOT: u32 = valve_queue_size::VALVE_QUEUE_SIZE_SQUARE_ROOT as u32;
const DECREASE_LOG10: u32 = valve_vegas_decrease::VALVE_VEGAS_DECREASE_LOG10 as u32;
const DECREASE_RATIO: u32 = valve_vegas_decrease::VALVE_VEGAS_DECREASE_RATIO as u32;
const DECREASE_TO_ESTIMATE: u32 = valve_vegas_decrease::VALVE_VEGAS_DECREASE_TO_ESTIMATE as u32;
const MIN_RTT_MEASURE: u32 = valve_min_rtt::VALVE_MIN_RTT_MEASURE as u32;
const MIN_RTT_FIXED: u32 = valve_min_rtt::VALVE_MIN_RTT_FIXED as u32;
const MIN_RTT_LEARNED: u32 = valve_min_rtt::VALVE_MIN_RTT_LEARNED as u32;
const MIN_RTT_BASELINE: u32 = valve_min_rtt::VALVE_MIN_RTT_BASELINE as u32;
const QUEUE_FIFO: u32 = valve_queue_ordering::VALVE_QUEUE_FIFO as u32;
const QUEUE_LIFO: u32 = valve_queue_ordering::VALVE_QUEUE_LIFO as u32;
const QUEUE_ADAPTIVE: u32 = valve_queue_ordering::VALVE_QUEUE_ADAPTIVE as u32;

/// 0 stands for `None` where 0 is not a valid value (ratios in `[0.5, 1)`, durations).
fn zero_is_none(value: f64) -> Option<f64> {
    (value != 0.0).then_some(value)
}

fn unknown(field: &'static str, value: u32, expected: &'static str) -> ConfigError {
    ConfigError::out_of_range(field, value, expected)
}

impl valve_gradient2_config {
    pub(crate) fn from_rust(config: &Gradient2Config) -> Self {
        let (queue_size_kind, queue_size) = match config.queue_size {
            QueueSize::Fixed(size) => (QUEUE_SIZE_FIXED, size),
            QueueSize::SquareRoot { floor } => (QUEUE_SIZE_SQUARE_ROOT, floor),
        };
        Self {
            initial_limit: config.initial_limit,
            min_limit: config.min_limit,
            max_limit: config.max_limit,
            smoothing: config.smoothing,
            smooth_increases: config.smooth_increases,
            queue_size_kind,
            queue_size,
            queue_only_when_unqueued: config.queue_only_when_unqueued,
            rtt_tolerance: config.rtt_tolerance,
            long_window: config.long_window,
            long_warmup: config.long_warmup,
            long_rtt_decay: config.long_rtt_decay,
            use_baseline_band: config.baseline_band.is_some(),
            baseline_band: config.baseline_band.unwrap_or(0.0),
            max_healthy_rtt_ns: config.max_healthy_rtt.map_or(0, duration_to_nanos),
            rebaseline_after: config.rebaseline_after,
            use_unqueued_band: config.unqueued_band.is_some(),
            unqueued_band: config.unqueued_band.unwrap_or(0.0),
            rtt_samples: config.rtt_samples,
            rebaseline_when_rtt_holds: config.rebaseline_when_rtt_holds,
            backoff_ratio: config.backoff_ratio.unwrap_or(0.0),
            utilisation_threshold: config.utilisation_threshold,
            slow_start: config.slow_start,
            window: valve_window_config::from_rust(&config.window),
        }
    }

    pub(crate) fn to_rust(self) -> Result<Gradient2Config, ConfigError> {
        let queue_size = match self.queue_size_kind {
            QUEUE_SIZE_FIXED => QueueSize::Fixed(self.queue_size),
            QUEUE_SIZE_SQUARE_ROOT => QueueSize::SquareRoot { floor: self.queue_size },
            other => return Err(unknown("queue_size_kind", other, "valve_queue_size")),
        };
        Ok(Gradient2Config {
            initial_limit: self.initial_limit,
            min_limit: self.min_limit,
            max_limit: self.max_limit,
            smoothing: self.smoothing,
            smooth_increases: self.smooth_increases,
            queue_size,
            queue_only_when_unqueued: self.queue_only_when_unqueued,
            rtt_tolerance: self.rtt_tolerance,
            long_window: self.long_window,
            long_warmup: self.long_warmup,
            long_rtt_decay: self.long_rtt_decay,
            baseline_band: self.use_baseline_band.then_some(self.baseline_band),
            max_healthy_rtt: (self.max_healthy_rtt_ns != 0)
                .then(|| Duration::from_nanos(self.max_healthy_rtt_ns)),
            rebaseline_after: self.rebaseline_after,
            unqueued_band: self.use_unqueued_band.then_some(self.unqueued_band),
            rtt_samples: self.rtt_samples,
            rebaseline_when_rtt_holds: self.rebaseline_when_rtt_holds,
            backoff_ratio: zero_is_none(self.backoff_ratio),
            utilisation_threshold: self.utilisation_threshold,
            slow_start: self.slow_start,
            window: self.window.to_rust(),
        })
    }
}

impl valve_vegas_config {
    pub(crate) fn from_rust(config: &VegasConfig) -> Self {
        let (decrease, decrease_ratio) = match config.decrease {
            VegasDecrease::Log10 => (DECREASE_LOG10, 0.0),
            VegasDecrease::Ratio(ratio) => (DECREASE_RATIO, ratio),
            VegasDecrease::ToEstimate => (DECREASE_TO_ESTIMATE, 0.0),
        };
        Self {
            initial_limit: config.initial_limit,
            min_limit: config.min_limit,
            max_limit: config.max_limit,
            alpha: config.alpha,
            beta: config.beta,
            log10_scaled: config.log10_scaled,
            smoothing: config.smoothing,
            probe_multiplier: config.probe_multiplier.unwrap_or(0),
            decrease,
            decrease_ratio,
            backoff_ratio: config.backoff_ratio.unwrap_or(0.0),
            utilisation_threshold: config.utilisation_threshold,
            rebaseline_after: config.rebaseline_after,
            rtt_samples: config.rtt_samples,
            use_baseline_band: config.baseline_band.is_some(),
            baseline_band: config.baseline_band.unwrap_or(0.0),
            slow_start: config.slow_start,
            seed: config.seed,
            window: valve_window_config::from_rust(&config.window),
        }
    }

    pub(crate) fn to_rust(self) -> Result<VegasConfig, ConfigError> {
        let decrease = match self.decrease {
            DECREASE_LOG10 => VegasDecrease::Log10,
            DECREASE_RATIO => VegasDecrease::Ratio(self.decrease_ratio),
            DECREASE_TO_ESTIMATE => VegasDecrease::ToEstimate,
            other => return Err(unknown("decrease", other, "valve_vegas_decrease")),
        };
        Ok(VegasConfig {
            initial_limit: self.initial_limit,
            min_limit: self.min_limit,
            max_limit: self.max_limit,
            alpha: self.alpha,
            beta: self.beta,
            log10_scaled: self.log10_scaled,
            smoothing: self.smoothing,
            probe_multiplier: (self.probe_multiplier != 0).then_some(self.probe_multiplier),
            decrease,
            backoff_ratio: zero_is_none(self.backoff_ratio),
            utilisation_threshold: self.utilisation_threshold,
            rebaseline_after: self.rebaseline_after,
            rtt_samples: self.rtt_samples,
            baseline_band: self.use_baseline_band.then_some(self.baseline_band),
            slow_start: self.slow_start,
            seed: self.seed,
            window: self.window.to_rust(),
        })
    }
}

impl valve_envoy_gradient_config {
    pub(crate) fn from_rust(config: &EnvoyGradientConfig) -> Self {
        let mut c = Self {
            initial_limit: config.initial_limit,
            min_concurrency: config.min_concurrency,
            min_limit: config.min_limit,
            max_limit: config.max_limit,
            buffer: config.buffer,
            min_rtt: MIN_RTT_LEARNED,
            min_rtt_interval_ns: 0,
            min_rtt_jitter: 0.0,
            min_rtt_request_count: 0,
            min_rtt_pin: false,
            min_rtt_fixed_ns: 0,
            min_rtt_band: 0.0,
            rtt_samples: config.rtt_samples,
            remeasure_after: config.remeasure_after,
            backoff_ratio: config.backoff_ratio.unwrap_or(0.0),
            utilisation_threshold: config.utilisation_threshold,
            app_limited: config.app_limited,
            slow_start: config.slow_start,
            seed: config.seed,
            window: valve_window_config::from_rust(&config.window),
        };
        match config.min_rtt {
            MinRtt::Measure { interval, jitter, request_count, pin } => {
                c.min_rtt = MIN_RTT_MEASURE;
                c.min_rtt_interval_ns = duration_to_nanos(interval);
                c.min_rtt_jitter = jitter;
                c.min_rtt_request_count = request_count;
                c.min_rtt_pin = pin;
            }
            MinRtt::Fixed(rtt) => {
                c.min_rtt = MIN_RTT_FIXED;
                c.min_rtt_fixed_ns = duration_to_nanos(rtt);
            }
            MinRtt::Learned => {}
            MinRtt::Baseline { band } => {
                c.min_rtt = MIN_RTT_BASELINE;
                c.min_rtt_band = band;
            }
        }
        c
    }

    pub(crate) fn to_rust(self) -> Result<EnvoyGradientConfig, ConfigError> {
        let min_rtt = match self.min_rtt {
            MIN_RTT_MEASURE => MinRtt::Measure {
                interval: Duration::from_nanos(self.min_rtt_interval_ns),
                jitter: self.min_rtt_jitter,
                request_count: self.min_rtt_request_count,
                pin: self.min_rtt_pin,
            },
            MIN_RTT_FIXED => MinRtt::Fixed(Duration::from_nanos(self.min_rtt_fixed_ns)),
            MIN_RTT_LEARNED => MinRtt::Learned,
            MIN_RTT_BASELINE => MinRtt::Baseline { band: self.min_rtt_band },
            other => return Err(unknown("min_rtt", other, "valve_min_rtt")),
        };
        Ok(EnvoyGradientConfig {
            initial_limit: self.initial_limit,
            min_concurrency: self.min_concurrency,
            min_limit: self.min_limit,
            max_limit: self.max_limit,
            buffer: self.buffer,
            min_rtt,
            rtt_samples: self.rtt_samples,
            remeasure_after: self.remeasure_after,
            backoff_ratio: zero_is_none(self.backoff_ratio),
            utilisation_threshold: self.utilisation_threshold,
            app_limited: self.app_limited,
            slow_start: self.slow_start,
            seed: self.seed,
            window: self.window.to_rust(),
        })
    }
}

impl valve_queue_config {
    pub(crate) fn from_rust(config: &QueueConfig) -> Self {
        let (ordering, max_age_ns) = match config.ordering {
            QueueOrdering::Fifo => (QUEUE_FIFO, 0),
            QueueOrdering::Lifo => (QUEUE_LIFO, 0),
            QueueOrdering::Adaptive { max_age } => (QUEUE_ADAPTIVE, duration_to_nanos(max_age)),
        };
        Self {
            max_waiters: config.max_waiters,
            ordering,
            max_age_ns,
            reject_from: config.reject_from,
            reject_all_at: config.reject_all_at,
            seed: config.seed,
        }
    }

    pub(crate) fn to_rust(self) -> Result<QueueConfig, ConfigError> {
        let ordering = match self.ordering {
            QUEUE_FIFO => QueueOrdering::Fifo,
            QUEUE_LIFO => QueueOrdering::Lifo,
            QUEUE_ADAPTIVE => {
                QueueOrdering::Adaptive { max_age: Duration::from_nanos(self.max_age_ns) }
            }
            other => return Err(unknown("ordering", other, "valve_queue_ordering")),
        };
        Ok(QueueConfig {
            max_waiters: self.max_waiters,
            ordering,
            reject_from: self.reject_from,
            reject_all_at: self.reject_all_at,
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_every_preset() {
        for config in [Gradient2Config::default(), Gradient2Config::netflix()] {
            assert_eq!(valve_gradient2_config::from_rust(&config).to_rust(), Ok(config));
        }
        for config in [VegasConfig::default(), VegasConfig::netflix()] {
            assert_eq!(valve_vegas_config::from_rust(&config).to_rust(), Ok(config));
        }
        let ratio = VegasConfig { decrease: VegasDecrease::Ratio(0.5), ..VegasConfig::default() };
        assert_eq!(valve_vegas_config::from_rust(&ratio).to_rust(), Ok(ratio));
        let fixed = EnvoyGradientConfig {
            min_rtt: MinRtt::Fixed(Duration::from_millis(3)),
            ..EnvoyGradientConfig::default()
        };
        for config in [EnvoyGradientConfig::default(), EnvoyGradientConfig::envoy(), fixed] {
            assert_eq!(valve_envoy_gradient_config::from_rust(&config).to_rust(), Ok(config));
        }
        let adaptive = QueueConfig {
            ordering: QueueOrdering::Adaptive { max_age: Duration::from_millis(5) },
            ..QueueConfig::default()
        };
        for config in [QueueConfig::default(), adaptive] {
            assert_eq!(valve_queue_config::from_rust(&config).to_rust(), Ok(config));
        }
    }

    #[test]
    fn unknown_kinds_are_refused() {
        let mut g = valve_gradient2_config::from_rust(&Gradient2Config::default());
        g.queue_size_kind = 2;
        assert!(g.to_rust().is_err());
        let mut v = valve_vegas_config::from_rust(&VegasConfig::default());
        v.decrease = 3;
        assert!(v.to_rust().is_err());
        let mut e = valve_envoy_gradient_config::from_rust(&EnvoyGradientConfig::default());
        e.min_rtt = u32::MAX;
        assert!(e.to_rust().is_err());
        let mut q = valve_queue_config::from_rust(&QueueConfig::default());
        q.ordering = 3;
        assert!(q.to_rust().is_err());
    }
}
