//! Additive increase, multiplicative decrease: a loss-based limit.
//!
//! Contains queue growth by backing off multiplicatively whenever a window saw a drop (timeout,
//! 503, shed) or a mean RTT above a timeout, and probing upward additively while the limit is
//! actually used. It needs no latency baseline, so it cannot drift, but it only reacts once work
//! is already failing; the latency-based limits react earlier.
//!
//! Rule, per window (Netflix `AIMDLimit.java`, evaluated in this order):
//!
//! ```text
//! if did_drop or rtt > timeout:                      L = trunc(L * backoff_ratio)
//! elif max_in_flight >= L * utilisation_threshold:   L = L + increase_step
//! L = min(max, max(min, L))
//! ```
//!
//! Boundaries: the timeout test is strict (`>`), the utilisation test inclusive (`>=`), as in
//! Netflix (`inflight * 2 >= limit` is the threshold 0.5).

use std::time::Duration;

use crate::clock::{Nanos, duration_to_nanos};
use crate::error::ConfigError;
use crate::limit::slow_start::SlowStart;
use crate::limit::{LimitAlgorithm, LimitBounds, WindowConfig, WindowSample};

/// Configuration of an [`Aimd`] limit. Start from [`AimdConfig::default`] (valve defaults) or
/// [`AimdConfig::netflix`] (reference parity) and change fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AimdConfig {
    /// Limit before the first window.
    pub initial_limit: u32,
    /// Smallest limit.
    pub min_limit: u32,
    /// Largest limit.
    pub max_limit: u32,
    /// Factor applied on a drop or timeout, in `[0.5, 1)`.
    pub backoff_ratio: f64,
    /// Added when the limit was used enough, at least 1.
    pub increase_step: u32,
    /// Fraction of the limit a window's largest in-flight must reach for an increase, in `[0, 1]`.
    pub utilisation_threshold: f64,
    /// A window whose mean RTT is above this backs off as if it dropped.
    pub timeout: Duration,
    /// Exponential growth until the first drop or timeout (see `slow_start.rs`).
    pub slow_start: bool,
    /// How samples are aggregated.
    pub window: WindowConfig,
}

impl AimdConfig {
    /// Netflix `AIMDLimit` defaults (initial 20, min 20, max 200, backoff 0.9, timeout 5 s,
    /// +1 when `inflight * 2 >= limit`) behind Netflix `WindowedLimit` defaults, as it is
    /// deployed. For the bare per-sample `AIMDLimit`, set `window` to
    /// [`WindowConfig::per_sample`].
    pub const fn netflix() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 20,
            max_limit: 200,
            backoff_ratio: 0.9,
            increase_step: 1,
            utilisation_threshold: 0.5,
            timeout: Duration::from_secs(5),
            slow_start: false,
            window: WindowConfig::netflix(),
        }
    }
}

impl Default for AimdConfig {
    /// valve defaults: no floor of 20 (min 1), max 1000, windows of twice the min RTT (10 ms to
    /// 1 s) so the limit moves within round trips rather than once a second, slow start;
    /// otherwise Netflix's values.
    fn default() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 1,
            max_limit: 1000,
            slow_start: true,
            window: WindowConfig::valve_default(),
            ..Self::netflix()
        }
    }
}

/// An AIMD limit: per window, back off on a drop or a mean RTT above the timeout, grow while
/// the limit is used.
///
/// ```text
/// if did_drop or rtt > timeout:                      L = trunc(L * backoff_ratio)
/// elif max_in_flight >= L * utilisation_threshold:   L = L + increase_step
/// L = min(max, max(min, L))
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    config: AimdConfig,
    bounds: LimitBounds,
    timeout: Nanos,
    slow_start: SlowStart,
}

impl Aimd {
    /// Validates `config`: `1 <= min <= initial <= max`, backoff in `[0.5, 1)`, step >= 1,
    /// utilisation in `[0, 1]`, non-zero timeout, a valid window.
    pub fn new(config: AimdConfig) -> Result<Self, ConfigError> {
        let bounds = LimitBounds::new(config.min_limit, config.max_limit)?;
        bounds.check_initial(config.initial_limit)?;
        ConfigError::check_ratio(
            "backoff_ratio",
            config.backoff_ratio,
            0.5,
            1.0,
            false,
            "[0.5, 1)",
        )?;
        ConfigError::check_ratio(
            "utilisation_threshold",
            config.utilisation_threshold,
            0.0,
            1.0,
            true,
            "[0, 1]",
        )?;
        if config.increase_step == 0 {
            return Err(ConfigError::Zero { field: "increase_step" });
        }
        if config.timeout.is_zero() {
            return Err(ConfigError::Zero { field: "timeout" });
        }
        config.window.validate()?;
        Ok(Self {
            config,
            bounds,
            timeout: duration_to_nanos(config.timeout),
            slow_start: SlowStart::new(config.slow_start),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AimdConfig {
        &self.config
    }
}

impl Default for Aimd {
    fn default() -> Self {
        Self::new(AimdConfig::default()).expect("valve's AIMD defaults are valid")
    }
}

impl LimitAlgorithm for Aimd {
    fn initial_limit(&self) -> u32 {
        self.config.initial_limit
    }

    fn bounds(&self) -> LimitBounds {
        self.bounds
    }

    fn window(&self) -> WindowConfig {
        self.config.window
    }

    fn update(&mut self, sample: &WindowSample, limit: u32) -> u32 {
        let signal = sample.did_drop || sample.rtt > self.timeout;
        if let Some(next) = self.slow_start.next(limit, sample.max_in_flight, signal) {
            return self.bounds.clamp(next);
        }
        let next = if signal {
            // `as` truncates toward zero, as Java's `(int)` cast.
            (f64::from(limit) * self.config.backoff_ratio) as u32
        } else if f64::from(sample.max_in_flight)
            >= f64::from(limit) * self.config.utilisation_threshold
        {
            limit.saturating_add(self.config.increase_step)
        } else {
            limit
        };
        self.bounds.clamp(next)
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn run(aimd: &mut Aimd, start: u32, steps: &[(Nanos, u32, bool)]) -> Vec<u32> {
        let mut limit = start;
        steps
            .iter()
            .map(|&(rtt, in_flight, drop)| {
                limit = aimd.update(&WindowSample::single(0, rtt, in_flight, drop), limit);
                limit
            })
            .collect()
    }

    /// Golden vector derived from Netflix `AIMDLimit` with its defaults (20/20/200/0.9/5 s).
    #[test]
    fn netflix_preset_golden_vector() {
        let mut aimd = Aimd::new(AimdConfig::netflix()).unwrap();
        let steps = [
            (10 * MS, 10, false),   // 10*2 >= 20: +1 -> 21
            (10 * MS, 10, false),   // 20 < 21: hold
            (10 * MS, 11, false),   // 22 >= 21: 22
            (10 * MS, 11, true),    // drop: trunc(22*0.9)=19 -> clamp to min 20
            (5000 * MS, 20, false), // rtt == timeout is not a timeout: 21
            (5001 * MS, 20, false), // rtt > timeout: trunc(21*0.9)=18 -> 20
        ];
        assert_eq!(run(&mut aimd, 20, &steps), vec![21, 21, 22, 20, 21, 20]);
        // At the top: +1 is clamped to max.
        assert_eq!(run(&mut aimd, 200, &[(MS, 200, false)]), vec![200]);
        // Netflix's own test: 0.9 backoff from 10 gives 9 when min allows it.
        let mut low =
            Aimd::new(AimdConfig { min_limit: 1, initial_limit: 10, ..AimdConfig::netflix() })
                .unwrap();
        assert_eq!(
            run(&mut low, 10, &[(MS, 5, true), (MS, 5, true), (MS, 5, true)]),
            vec![9, 8, 7]
        );
    }

    #[test]
    fn valve_defaults_back_off_below_twenty_and_take_custom_steps() {
        let config = AimdConfig {
            increase_step: 3,
            utilisation_threshold: 0.8,
            slow_start: false,
            ..AimdConfig::default()
        };
        let mut aimd = Aimd::new(config).unwrap();
        // 0.8 * 20 = 16: 15 holds, 16 grows by 3.
        assert_eq!(run(&mut aimd, 20, &[(MS, 15, false), (MS, 16, false)]), vec![20, 23]);
        let drops = [(MS, 1, true); 30];
        let limits = run(&mut aimd, 23, &drops);
        assert_eq!(limits[0], 20);
        assert_eq!(*limits.last().unwrap(), 1);
        // trunc(1 * 0.9) = 0 clamps to min 1.
        assert!(limits.iter().all(|&l| l >= 1));
    }

    #[test]
    fn invalid_configs_are_typed_errors() {
        let base = AimdConfig::default();
        let bad = [
            AimdConfig { min_limit: 30, max_limit: 10, initial_limit: 10, ..base },
            AimdConfig { initial_limit: 5000, ..base },
            AimdConfig { min_limit: 0, ..base },
            AimdConfig { backoff_ratio: 1.0, ..base },
            AimdConfig { backoff_ratio: 0.49, ..base },
            AimdConfig { backoff_ratio: f64::NAN, ..base },
            AimdConfig { utilisation_threshold: 1.5, ..base },
            AimdConfig { utilisation_threshold: f64::INFINITY, ..base },
            AimdConfig { increase_step: 0, ..base },
            AimdConfig { timeout: Duration::ZERO, ..base },
            AimdConfig { window: WindowConfig { min_samples: 0, ..base.window }, ..base },
        ];
        for config in bad {
            assert!(Aimd::new(config).is_err(), "{config:?} was accepted");
        }
        assert!(matches!(
            Aimd::new(AimdConfig { backoff_ratio: f64::NAN, ..base }),
            Err(ConfigError::NotFinite { field: "backoff_ratio" })
        ));
        assert!(Aimd::new(AimdConfig::netflix()).is_ok());
    }

    #[test]
    fn valve_defaults_start_in_slow_start_until_the_first_drop() {
        let mut aimd = Aimd::default();
        let steps = [(MS, 20, false), (MS, 40, false), (MS, 80, true), (MS, 72, false)];
        // 20 -> 40 -> 80, the drop ends slow start and backs off (72), then +1 per window.
        assert_eq!(run(&mut aimd, 20, &steps), vec![40, 80, 72, 73]);
    }
}
