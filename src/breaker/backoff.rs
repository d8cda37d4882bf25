//! How long the breaker stays open: a backoff of consecutive opens, capped and jittered, with an
//! injectable random source.
//!
//! A dependency that fails its probe again is probably still sick, so each consecutive open waits
//! longer (resilience4j's `IntervalFunction` of attempts, Envoy's ejection multiplier, linkerd's
//! jittered backoff); jitter keeps many clients' breakers from probing in step. The count of
//! consecutive opens resets when the breaker closes.

use crate::rng::{GOLDEN_GAMMA, splitmix64_mix};
use std::time::Duration;

use crate::clock::{Nanos, duration_to_nanos};
use crate::error::ConfigError;
use crate::sync::{AtomicU64, Ordering};

/// A source of random numbers for the open-duration jitter.
///
/// It is called once per transition to Open, never on a per-call path. Implement it to make
/// jitter reproducible or to share a generator; [`BreakerSplitMix64`] is the default.
pub trait BreakerRng: Send + Sync {
    /// A uniformly distributed 64-bit number.
    fn next_u64(&self) -> u64;
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, seedable generator whose state is one
/// atomic counter, so it needs no lock to be shared.
///
/// Memory ordering: `Relaxed`; each call takes a distinct counter value, which is all that
/// matters for independence.
#[derive(Debug)]
pub struct BreakerSplitMix64 {
    state: AtomicU64,
}

impl BreakerSplitMix64 {
    /// A generator starting from `seed`; equal seeds give equal sequences.
    pub fn new(seed: u64) -> Self {
        Self { state: AtomicU64::new(seed) }
    }
}

impl BreakerRng for BreakerSplitMix64 {
    fn next_u64(&self) -> u64 {
        splitmix64_mix(
            self.state.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed).wrapping_add(GOLDEN_GAMMA),
        )
    }
}

/// The open duration after the n-th consecutive open:
/// `min(base × multiplier^(n−1), max) × (1 − jitter × u)`, `u` uniform in `[0, 1)`.
///
/// With `multiplier == 1` and `jitter == 0` it is a constant (resilience4j's, gobreaker's,
/// Polly's and Hystrix's fixed wait). The jitter only shortens the wait, so `max` stays a bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenBackoff {
    /// The first open duration (greater than zero).
    pub base: Duration,
    /// Growth per consecutive open (finite, at least 1).
    pub multiplier: f64,
    /// The cap, before jitter (at least `base`).
    pub max: Duration,
    /// The fraction of the duration that jitter may take off, in `[0, 1]`.
    pub jitter: f64,
}

impl OpenBackoff {
    /// A constant open duration, no jitter.
    pub fn constant(duration: Duration) -> Self {
        Self { base: duration, multiplier: 1.0, max: duration, jitter: 0.0 }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.base.is_zero() {
            return Err(ConfigError::Zero { field: "open backoff base" });
        }
        let (base, max) = (duration_to_nanos(self.base), duration_to_nanos(self.max));
        if base > max {
            return Err(ConfigError::MinAboveMax { field: "open backoff", min: base, max });
        }
        ConfigError::check_ratio(
            "open backoff multiplier",
            self.multiplier,
            1.0,
            f64::MAX,
            true,
            "[1, inf)",
        )?;
        ConfigError::check_ratio("open backoff jitter", self.jitter, 0.0, 1.0, true, "[0, 1]")
    }

    /// The open duration after `opens` consecutive opens (1 for the first). Draws from `rng`
    /// only when jitter is on.
    pub(crate) fn duration(&self, opens: u32, rng: &dyn BreakerRng) -> Nanos {
        let base = duration_to_nanos(self.base) as f64;
        let max = duration_to_nanos(self.max);
        let exponent = i32::try_from(opens.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = base * self.multiplier.powi(exponent);
        // `as` saturates a float above u64::MAX; `min` keeps the cap.
        let capped = (grown as u64).min(max);
        if self.jitter == 0.0 {
            return capped;
        }
        // 53 random bits give a uniform float in [0, 1). Saturating: rounding `capped` to a
        // float may lift the product a hair above it.
        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        capped.saturating_sub((capped as f64 * self.jitter * unit) as u64)
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    struct Fixed(u64);
    impl BreakerRng for Fixed {
        fn next_u64(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn grows_caps_and_jitters_downwards() {
        let b = OpenBackoff {
            base: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(5),
            jitter: 0.0,
        };
        let rng = Fixed(u64::MAX);
        let secs = |n| b.duration(n, &rng) / 1_000_000_000;
        assert_eq!([secs(1), secs(2), secs(3), secs(4), secs(200)], [1, 2, 4, 5, 5]);
        let jittered = OpenBackoff { jitter: 0.5, ..b };
        assert_eq!(jittered.duration(1, &Fixed(0)), 1_000_000_000);
        let low = jittered.duration(1, &Fixed(u64::MAX));
        assert!((500_000_000..501_000_000).contains(&low), "{low}");
    }

    #[test]
    fn splitmix_is_reproducible() {
        let (a, b) = (BreakerSplitMix64::new(7), BreakerSplitMix64::new(7));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(a.next_u64(), BreakerSplitMix64::new(8).next_u64());
        // First output for seed 0 from the reference implementation.
        assert_eq!(BreakerSplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn invalid_backoffs_are_refused() {
        let ok = OpenBackoff::constant(Duration::from_secs(1));
        assert!(ok.validate().is_ok());
        assert!(OpenBackoff { base: Duration::ZERO, ..ok }.validate().is_err());
        assert!(OpenBackoff { max: Duration::from_millis(1), ..ok }.validate().is_err());
        assert!(OpenBackoff { multiplier: 0.5, ..ok }.validate().is_err());
        assert!(OpenBackoff { multiplier: f64::NAN, ..ok }.validate().is_err());
        assert!(OpenBackoff { jitter: 1.5, ..ok }.validate().is_err());
    }
}
