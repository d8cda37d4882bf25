//! Additive increase, multiplicative decrease: a loss-based limit.
//!
//! Contains queue growth by backing off multiplicatively whenever a window saw a drop (timeout,
//! 503, shed) or a mean RTT above a timeout, and probing upward additively while the limit is
//! actually used. Netflix's needs no latency baseline, so it cannot drift, but it only reacts
//! once work is already failing; valve's default adds a latency rule (below) to react earlier.
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
//!
//! valve's default ([`AimdConfig::default`]) also reads latency as congestion ([`AimdLatency`]), as
//! Netflix's counts an RTT above its timeout as a drop, but with a threshold derived from the
//! service rather than a fixed 5 s: a window whose RTT exceeds `tolerance` times a no-load RTT
//! backs off as if it dropped. Learning only from drops, the limit ran to its maximum under
//! overload and admitted work waited in the service's queue until just before the client
//! timeout (p99 5x the unloaded p99). The rule, like the latency-based limits:
//! - compares the window mean RTT averaged over about 200 samples (see `smoothed.rs`), as a
//!   ten-sample mean of exponential service times varies by 30 %, and backs off at most once
//!   per 200 samples, as the average still holds the queue it backed off from until then;
//! - backs off by `backoff_ratio`, or as far as the RTT overshoots the threshold if that cuts
//!   deeper (down to half), so a queue built over several windows (capacity halved) goes in
//!   one backoff rather than one per 200 samples;
//! - skips the cold start's first 50 samples (its fastest calls) and then takes the smallest
//!   average as the no-load RTT: a minimum that only falls cannot follow a lasting queue up.
//!   The limit holds until the average is in (200 more samples; slow start waits for it), as
//!   a limit that grew meanwhile would start the minimum from the queue it built;
//! - restarts that minimum from the current average after 5 signals in a row with the limit at
//!   its minimum, where no queue is left to drain (a service that became slower; the other
//!   limits' `rebaseline_after`, Envoy's re-measure rule).

use std::time::Duration;

use crate::clock::{Nanos, duration_to_nanos};
use crate::error::ConfigError;
use crate::limit::slow_start::SlowStart;
use crate::limit::smoothed::SmoothedRtt;
use crate::limit::{LimitAlgorithm, LimitBounds, WindowConfig, WindowSample};

/// valve's latency rule for [`Aimd`]: a window whose averaged RTT exceeds `tolerance` times a
/// learnt no-load RTT backs off as a drop does (see the module documentation). Set it in
/// [`AimdConfig::latency`]: valve's defaults have [`AimdLatency::default`]; Netflix's
/// `AIMDLimit` has no such rule ([`AimdConfig::netflix`] sets `None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AimdLatency {
    /// How far the averaged RTT may rise above the no-load RTT before the limit backs off, as
    /// a factor, in `(1, 100]`; the test is strict (`>`), as Netflix's timeout test. valve: 1.5, which leaves room for the noise of the average
    /// (about 7 % with exponential service times) and keeps the queue to about half a service
    /// time.
    pub tolerance: f64,
}

impl Default for AimdLatency {
    /// valve: tolerance 1.5.
    fn default() -> Self {
        Self { tolerance: 1.5 }
    }
}

impl AimdLatency {
    /// Checks `tolerance` is finite and in `(1, 100]`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.tolerance.is_finite() {
            return Err(ConfigError::NotFinite { field: "latency tolerance" });
        }
        if self.tolerance <= 1.0 || self.tolerance > 100.0 {
            return Err(ConfigError::out_of_range("latency tolerance", self.tolerance, "(1, 100]"));
        }
        Ok(())
    }
}

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
    /// Fraction of the limit a window's largest in-flight must reach for an increase, in
    /// `[0, 1]` (the test is inclusive, `>=`). Netflix: 0.5, which lets the limit of an
    /// under-loaded service climb to twice its peak in-flight, so a sudden capacity drop meets
    /// a limit far above what was ever used. valve: 0.8 (congestion-limiter's value), which
    /// holds the limit within 1.25x of the peak in-flight.
    pub utilisation_threshold: f64,
    /// A window whose mean RTT is above this backs off as if it dropped.
    pub timeout: Duration,
    /// Exponential growth until the first drop or timeout (see `slow_start.rs`).
    pub slow_start: bool,
    /// valve's latency rule: back off when the averaged RTT exceeds a multiple of a learnt
    /// no-load RTT; `None` learns only from drops and the timeout (Netflix).
    pub latency: Option<AimdLatency>,
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
            latency: None,
            window: WindowConfig::netflix(),
        }
    }
}

impl Default for AimdConfig {
    /// valve defaults: no floor of 20 (min 1), max 1000, windows of twice the min RTT (10 ms to
    /// 1 s) so the limit moves within round trips rather than once a second, slow start;
    /// the latency rule ([`AimdLatency::default`]); growth only while in-flight reaches 0.8 of
    /// the limit; otherwise Netflix's values.
    fn default() -> Self {
        Self {
            initial_limit: 20,
            utilisation_threshold: 0.8,
            min_limit: 1,
            max_limit: 1000,
            slow_start: true,
            latency: Some(AimdLatency::default()),
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
    latency: Option<AimdLatency>,
    /// The no-load RTT of the latency rule, in nanoseconds; 0 before the first window.
    baseline: f64,
    /// The window mean RTT averaged over [`LATENCY_SAMPLES`] samples.
    short_rtt: SmoothedRtt,
    /// Samples since the latency rule last backed off.
    since_backoff: f64,
    /// Samples of the cold start not averaged.
    flushed: f64,
    /// Latency signals in a row with the limit at its minimum.
    signals_at_min: u32,
}

/// Latency signals in a row at the minimum limit after which the no-load RTT restarts from the
/// current one (the other limits' `rebaseline_after`, Envoy's re-measure rule).
const REBASELINE_AFTER: u32 = 5;

/// What the latency rule reads in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Latency {
    /// The rule is still learning its baseline: the limit holds.
    NotReady,
    /// No rule, or the averaged RTT is within its threshold.
    Below,
    /// The averaged RTT is above its threshold, which is this share of it.
    Above { threshold_share: f64 },
}

/// Samples the latency rule averages the window RTT over (see `smoothed.rs`): the mean of a
/// ten-sample window of exponential service times varies by 30 %, of 200 samples by 7 %.
const LATENCY_SAMPLES: u32 = 200;

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
        ConfigError::check_utilisation(config.utilisation_threshold)?;
        if config.increase_step == 0 {
            return Err(ConfigError::Zero { field: "increase_step" });
        }
        if config.timeout.is_zero() {
            return Err(ConfigError::Zero { field: "timeout" });
        }
        if let Some(latency) = config.latency {
            latency.validate()?;
        }
        config.window.validate()?;
        Ok(Self {
            config,
            bounds,
            timeout: duration_to_nanos(config.timeout),
            slow_start: SlowStart::new(config.slow_start),
            latency: config.latency,
            baseline: 0.0,
            short_rtt: SmoothedRtt::new(LATENCY_SAMPLES),
            since_backoff: 0.0,
            flushed: 0.0,
            signals_at_min: 0,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &AimdConfig {
        &self.config
    }

    /// The latency rule in force, if any.
    pub fn latency(&self) -> Option<&AimdLatency> {
        self.latency.as_ref()
    }

    /// The latency rule's no-load RTT in nanoseconds (0 without the rule or before the first
    /// window).
    pub fn baseline_rtt(&self) -> u64 {
        self.baseline as u64
    }

    /// What the latency rule reads in `sample` (learning its baseline on the way).
    fn read_latency(&mut self, sample: &WindowSample, limit: u32) -> Latency {
        let Some(latency) = self.latency else { return Latency::Below };
        // A zero mean (possible with no RTT threshold) carries no latency information.
        if sample.rtt == 0 {
            return Latency::Below;
        }
        // The cold start's first calls are its fastest: they are not averaged.
        if self.flushed < f64::from(LATENCY_SAMPLES / 4) {
            self.flushed += f64::from(sample.samples);
            return Latency::NotReady;
        }
        let rtt = self.short_rtt.add(sample.rtt as f64, sample.samples);
        self.since_backoff += f64::from(sample.samples);
        if !self.short_rtt.is_warm() {
            return Latency::NotReady;
        }
        if self.baseline == 0.0 || rtt < self.baseline {
            self.baseline = rtt;
            return Latency::Below;
        }
        // The average still holds the samples before the last backoff until it has seen as
        // many again: backing off on them would cut the limit window after window for one
        // queue.
        if self.since_backoff < f64::from(LATENCY_SAMPLES) {
            return Latency::Below;
        }
        let threshold = latency.tolerance * self.baseline;
        let signal = rtt > threshold;
        // A service that became slower keeps signalling with the limit at its minimum, where
        // no queue is left to drain.
        self.signals_at_min =
            if signal && limit <= self.bounds.min { self.signals_at_min + 1 } else { 0 };
        if self.signals_at_min >= REBASELINE_AFTER {
            self.signals_at_min = 0;
            self.baseline = rtt;
            return Latency::Below;
        }
        if !signal {
            return Latency::Below;
        }
        self.since_backoff = 0.0;
        Latency::Above { threshold_share: threshold / rtt }
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
        let ratio = self.config.backoff_ratio;
        let latency = self.read_latency(sample, limit);
        // `as` truncates toward zero, as Java's `(int)` cast.
        let backoff = |factor: f64| (f64::from(limit) * factor) as u32;
        if latency == Latency::NotReady {
            // The limit holds, but a drop still backs off.
            return if sample.did_drop { self.bounds.clamp(backoff(ratio)) } else { limit };
        }
        let signal = sample.did_drop || sample.rtt > self.timeout || latency != Latency::Below;
        if let Some(next) = self.slow_start.next(limit, sample.max_in_flight, signal) {
            return self.bounds.clamp(next);
        }
        let next = if let Latency::Above { threshold_share } = latency {
            // The ratio, or as far as the RTT overshoots its threshold if that cuts deeper
            // (down to half): a queue that built up over several windows goes in one step.
            backoff(ratio.min(threshold_share.max(0.5)))
        } else if signal {
            backoff(ratio)
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
            // The drop rules alone; the latency rule has its own tests below.
            latency: None,
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
        // Slow start and drops alone; with the latency rule, slow start waits for its baseline
        // (see the next test).
        let mut aimd = Aimd::new(AimdConfig { latency: None, ..AimdConfig::default() }).unwrap();
        let steps = [(MS, 20, false), (MS, 40, false), (MS, 80, true), (MS, 72, false)];
        // 20 -> 40 -> 80, the drop ends slow start and backs off (72), then +1 per window.
        assert_eq!(run(&mut aimd, 20, &steps), vec![40, 80, 72, 73]);
    }

    #[test]
    fn valve_default_backs_off_on_latency_above_its_learnt_minimum() {
        let mut aimd = Aimd::default();
        let window = |rtt, in_flight, samples| WindowSample {
            samples,
            ..WindowSample::single(0, rtt, in_flight, false)
        };
        // The cold start's first 50 samples are flushed and the limit holds...
        assert_eq!(aimd.update(&window(2 * MS, 20, 200), 20), 20);
        // ... until 200 more teach the minimum; slow start then doubles.
        assert_eq!(aimd.update(&window(10 * MS, 20, 200), 20), 40);
        assert_eq!(aimd.baseline_rtt(), 10 * MS);
        // 1.5x the minimum is not above it (strict, as Netflix's timeout test).
        assert_eq!(aimd.update(&window(15 * MS, 40, 200), 40), 80);
        // Above it: slow start ends and the limit backs off as on a drop.
        assert_eq!(aimd.update(&window(16 * MS, 80, 200), 80), 72);
        // Not again until the average holds 200 samples taken after the backoff: +1.
        assert_eq!(aimd.update(&window(16 * MS, 72, 100), 72), 73);
        assert_eq!(aimd.update(&window(16 * MS, 73, 100), 73), 65);
        // The minimum only falls.
        assert_eq!(aimd.update(&window(8 * MS, 65, 200), 65), 66);
        assert_eq!(aimd.baseline_rtt(), 8 * MS);
        // Far above it, the cut goes as deep as the overshoot, down to half: 12 / 24.
        assert_eq!(aimd.update(&window(24 * MS, 66, 200), 66), 33);
        // Netflix's preset has no latency rule.
        assert!(Aimd::new(AimdConfig::netflix()).unwrap().latency().is_none());
    }

    #[test]
    fn a_slower_service_is_relearnt_at_the_minimum() {
        let config = AimdConfig { min_limit: 5, initial_limit: 5, ..AimdConfig::default() };
        let mut aimd = Aimd::new(config).unwrap();
        let window = |rtt| WindowSample { samples: 200, ..WindowSample::single(0, rtt, 5, false) };
        aimd.update(&window(MS), 5);
        aimd.update(&window(10 * MS), 5);
        // Five signals in a row at the minimum restart the minimum from the current RTT.
        for _ in 0..4 {
            assert_eq!(aimd.update(&window(30 * MS), 5), 5);
            assert_eq!(aimd.baseline_rtt(), 10 * MS);
        }
        assert_eq!(aimd.update(&window(30 * MS), 5), 6);
        assert_eq!(aimd.baseline_rtt(), 30 * MS);
    }

    #[test]
    fn invalid_latency_rules_are_typed_errors() {
        let config = AimdConfig::default();
        for tolerance in [1.0, 0.5, 101.0] {
            assert!(matches!(
                Aimd::new(AimdConfig { latency: Some(AimdLatency { tolerance }), ..config }),
                Err(ConfigError::OutOfRange { .. })
            ));
        }
        for tolerance in [f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Aimd::new(AimdConfig { latency: Some(AimdLatency { tolerance }), ..config }),
                Err(ConfigError::NotFinite { .. })
            ));
        }
        assert!(
            Aimd::new(AimdConfig { latency: Some(AimdLatency { tolerance: 100.0 }), ..config })
                .is_ok()
        );
    }
}
