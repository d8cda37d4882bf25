//! Fuzz harness for every config constructor: any input gives a value or a typed error, never
//! a panic; a value that is accepted builds a working limiter.

use std::time::Duration;

use arbitrary::{Arbitrary, Result, Unstructured};
use valve::{
    Aimd, AimdConfig, AimdLatency, Fixed, LimitBounds, Limiter, ManualClock, QueueConfig,
    QueueOrdering, WindowConfig,
};

fn duration(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(Duration::new(u64::arbitrary(u)?, u32::arbitrary(u)? % 1_000_000_000))
}

fn window(u: &mut Unstructured<'_>) -> Result<WindowConfig> {
    Ok(WindowConfig {
        min_duration: duration(u)?,
        max_duration: duration(u)?,
        min_samples: u32::arbitrary(u)?,
        min_rtt_threshold: duration(u)?,
        percentile: Option::<f64>::arbitrary(u)?,
    })
}

fn queue(u: &mut Unstructured<'_>) -> Result<QueueConfig> {
    let ordering = match u8::arbitrary(u)? % 3 {
        0 => QueueOrdering::Fifo,
        1 => QueueOrdering::Lifo,
        _ => QueueOrdering::Adaptive { max_age: duration(u)? },
    };
    Ok(QueueConfig {
        max_waiters: u32::arbitrary(u)?,
        ordering,
        reject_from: f64::arbitrary(u)?,
        reject_all_at: f64::arbitrary(u)?,
        seed: u64::arbitrary(u)?,
    })
}

/// Runs one input; panics only if a constructor panics or an accepted config misbehaves.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run_unstructured(&mut u);
}

fn run_unstructured(u: &mut Unstructured<'_>) -> Result<()> {
    let _ = LimitBounds::new(u32::arbitrary(u)?, u32::arbitrary(u)?);
    let _ = window(u)?.validate();
    let fixed = Fixed::new(u32::arbitrary(u)?);
    let aimd = Aimd::new(AimdConfig {
        initial_limit: u32::arbitrary(u)?,
        min_limit: u32::arbitrary(u)?,
        max_limit: u32::arbitrary(u)?,
        backoff_ratio: f64::arbitrary(u)?,
        increase_step: u32::arbitrary(u)?,
        utilisation_threshold: f64::arbitrary(u)?,
        timeout: duration(u)?,
        window: window(u)?,
        slow_start: bool::arbitrary(u)?,
        latency: Option::<f64>::arbitrary(u)?.map(|tolerance| AimdLatency { tolerance }),
    });
    let queue = queue(u)?;
    if let Ok(fixed) = fixed {
        exercise(Limiter::with_queue(fixed, ManualClock::new(0), queue));
    }
    if let Ok(aimd) = aimd {
        exercise(Limiter::with_queue(aimd, ManualClock::new(0), queue));
    }
    Ok(())
}

fn exercise<A: valve::LimitAlgorithm>(
    limiter: Result<Limiter<A, ManualClock>, valve::ConfigError>,
) {
    let Ok(limiter) = limiter else { return };
    let bounds = limiter.bounds();
    for step in 0..64u64 {
        if let Ok(permit) = limiter.try_acquire_at(step) {
            if step % 3 == 0 {
                permit.dropped_at(step * 1_000_000)
            } else {
                permit.success_at(step)
            }
        }
        assert!((bounds.min..=bounds.max).contains(&limiter.limit()));
    }
    assert!(matches!(limiter.acquire_until(0), Ok(_) | Err(_)));
    assert_eq!(limiter.in_flight(), 0);
}
