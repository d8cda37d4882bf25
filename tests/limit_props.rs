//! Properties: whatever samples arrive, every algorithm's limit stays within its bounds.

use quickcheck::{QuickCheck, TestResult};
use valve::{
    Aimd, AimdConfig, AimdLatency, EnvoyGradient, EnvoyGradientConfig, Gradient2, Gradient2Config,
    LimitAlgorithm, Vegas, VegasConfig, WindowSample,
};

/// One window as quickcheck generates it: RTT and percentile in microseconds (0 included),
/// in-flight, drop, and how far time moves on (ms).
type Step = (u32, u32, u16, bool, u16);

fn stays_in_bounds(mut algorithm: impl LimitAlgorithm, steps: Vec<Step>, start: u32) -> bool {
    let bounds = algorithm.bounds();
    let mut limit = bounds.clamp(start.max(algorithm.initial_limit()));
    let mut now = 0u64;
    for (rtt_us, p_us, in_flight, drop, advance_ms) in steps {
        now += u64::from(advance_ms) * 1_000_000;
        let sample = WindowSample::single(now, u64::from(rtt_us) * 1000, in_flight.into(), drop)
            .with_percentile(u64::from(p_us) * 1000);
        limit = algorithm.update(&sample, limit);
        if limit < bounds.min || limit > bounds.max {
            return false;
        }
    }
    true
}

/// Narrow bounds, where clamping matters most.
fn narrow_gradient2() -> Gradient2Config {
    Gradient2Config { initial_limit: 3, min_limit: 2, max_limit: 7, ..Gradient2Config::default() }
}

fn narrow_aimd() -> AimdConfig {
    AimdConfig { initial_limit: 3, min_limit: 2, max_limit: 7, ..AimdConfig::default() }
}

fn narrow_vegas() -> VegasConfig {
    VegasConfig { initial_limit: 3, min_limit: 2, max_limit: 7, ..VegasConfig::default() }
}

fn narrow_envoy() -> EnvoyGradientConfig {
    EnvoyGradientConfig {
        initial_limit: 4,
        min_limit: 4,
        min_concurrency: 4,
        max_limit: 9,
        ..EnvoyGradientConfig::envoy()
    }
}

fn check(property: fn(Vec<Step>, u32) -> TestResult) {
    QuickCheck::new().tests(300).quickcheck(property);
}

#[test]
fn gradient2_limits_stay_in_bounds() {
    check(|steps, start| {
        TestResult::from_bool(
            stays_in_bounds(Gradient2::default(), steps.clone(), start)
                && stays_in_bounds(
                    Gradient2::new(narrow_gradient2()).unwrap(),
                    steps.clone(),
                    start,
                )
                && stays_in_bounds(
                    Gradient2::new(Gradient2Config::netflix()).unwrap(),
                    steps,
                    start,
                ),
        )
    });
}

#[test]
fn vegas_limits_stay_in_bounds() {
    check(|steps, start| {
        TestResult::from_bool(
            stays_in_bounds(Vegas::default(), steps.clone(), start)
                && stays_in_bounds(Vegas::new(narrow_vegas()).unwrap(), steps.clone(), start)
                && stays_in_bounds(Vegas::new(VegasConfig::netflix()).unwrap(), steps, start),
        )
    });
}

#[test]
fn envoy_gradient_limits_stay_in_bounds() {
    check(|steps, start| {
        let envoy = EnvoyGradient::new(EnvoyGradientConfig::envoy()).unwrap();
        TestResult::from_bool(
            stays_in_bounds(EnvoyGradient::default(), steps.clone(), start)
                && stays_in_bounds(
                    EnvoyGradient::new(narrow_envoy()).unwrap(),
                    steps.clone(),
                    start,
                )
                && stays_in_bounds(envoy, steps, start),
        )
    });
}

#[test]
fn aimd_limits_stay_in_bounds() {
    check(|steps, start| {
        TestResult::from_bool(
            stays_in_bounds(Aimd::default(), steps.clone(), start)
                && stays_in_bounds(
                    Aimd::new(AimdConfig {
                        latency: Some(AimdLatency { tolerance: 1.1 }),
                        ..narrow_aimd()
                    })
                    .unwrap(),
                    steps.clone(),
                    start,
                )
                && stays_in_bounds(Aimd::new(AimdConfig::netflix()).unwrap(), steps, start),
        )
    });
}
