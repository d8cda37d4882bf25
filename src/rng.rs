//! Seedable random numbers for jitter and probabilistic decisions (backoff jitter, graded
//! queue rejection, probe jitter), with no RNG dependency.
//!
//! Every randomised decision in valve draws from a [`BackoffRng`] so tests, simulations and the
//! fuzzer are reproducible from a seed; [`SplitMix64`] is the default. The decisions need spread,
//! not cryptographic quality.

use std::hash::{BuildHasher, Hasher};

/// A source of uniformly distributed 64-bit values for jitter.
pub trait BackoffRng {
    /// The next value; every bit uniformly distributed.
    fn next_u64(&mut self) -> u64;
}

/// SplitMix64 (Steele, Lea and Flood, 2014): one add and two multiply-xorshifts per value,
/// passes BigCrush, and any seed (zero included) gives a full-period sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`: for reproducible tests and simulations.
    pub const fn seeded(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator seeded from std's per-process random hash keys, different for every call,
    /// so that clients started together do not jitter in step.
    pub fn from_entropy() -> Self {
        Self::seeded(std::collections::hash_map::RandomState::new().build_hasher().finish())
    }
}

impl BackoffRng for SplitMix64 {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        splitmix64_mix(self.state)
    }
}

/// SplitMix64's state increment (the golden ratio in 64 bits).
pub(crate) const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: two multiply-xorshifts of a state value. Shared by
/// [`SplitMix64`] and the breaker's lock-free shared generator.
#[inline]
pub(crate) fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<R: BackoffRng + ?Sized> BackoffRng for &mut R {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// A uniform draw in `[0, 1)` from the top 53 bits of `rng`'s next value.
#[inline]
pub(crate) fn next_unit(rng: &mut impl BackoffRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform draw in `[lo, hi)`.
#[inline]
pub(crate) fn next_in(rng: &mut impl BackoffRng, lo: f64, hi: f64) -> f64 {
    lo + next_unit(rng) * (hi - lo)
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_published_sequence_and_stays_in_range() {
        let mut rng = SplitMix64::seeded(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut rng = SplitMix64::seeded(42);
        for _ in 0..1000 {
            let x = next_in(&mut rng, 0.5, 1.0);
            assert!((0.5..1.0).contains(&x));
        }
    }
}
