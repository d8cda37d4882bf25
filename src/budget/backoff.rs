//! Backoff: how long to wait before each retry, so the retries a budget allows do not arrive in
//! synchronised waves.
//!
//! Exponential delays with a cap, in integer nanoseconds, with the jitter families of the AWS
//! architecture blog (aws-samples/aws-arch-backoff-simulator) and gRPC A6's ±20 %, and a
//! server-supplied retry-after (gRPC `grpc-retry-pushback-ms`, AWS `x-amz-retry-after`). The
//! random numbers come from a [`BackoffRng`] the caller may supply; [`SplitMix64`] is the
//! default, small, seedable and in-crate (a retry delay needs spread, not cryptographic quality,
//! so valve takes no RNG dependency; implement the trait to bring `rand` or a C caller's RNG).
//!
//! A [`Backoff`] is the state of one call's retry sequence: it is `&mut self`, not shared, and
//! allocates nothing.

use std::time::Duration;

use super::to_milli;
use crate::clock::{Nanos, duration_to_nanos};
use crate::error::ConfigError;
pub use crate::rng::{BackoffRng, SplitMix64};

/// How a delay is randomised. `d` is the exponential delay `min(initial × multiplier^(n−1), max)`
/// of retry `n`; `U[a, b)` draws uniformly. Crosses the C ABI as a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Jitter {
    /// `d`.
    None = 0,
    /// `U[0, d)` (AWS "full jitter"; botocore `rand() × min(2^(n−1), 20)`).
    Full = 1,
    /// `d/2 + U[0, d/2)` (AWS "equal jitter").
    Equal = 2,
    /// `min(max, U[initial, 3 × previous))`, the previous starting at `initial` (AWS
    /// "decorrelated jitter"); ignores the multiplier.
    Decorrelated = 3,
    /// `d × U[0.8, 1.2)`, which may exceed `max` by 20 % (gRPC A6 applies it after the cap).
    Grpc = 4,
}

/// What a server-supplied retry-after does. Crosses the C ABI as a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RetryAfterRule {
    /// It is ignored (AWS legacy, aws-c-io).
    Ignore = 0,
    /// It is the next delay exactly, and the sequence starts again from `initial` (gRPC A6
    /// pushback).
    Exact = 1,
    /// The next delay is the computed one `t` moved toward it but kept within
    /// `[t, t + retry_after_max_extra]` (AWS 2026 `x-amz-retry-after`, 5 s).
    WithinExtra = 2,
}

/// A [`Backoff`]'s configuration; the presets follow the reference SDKs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The first retry's delay before jitter (at least 1 ns).
    pub initial: Duration,
    /// The largest delay before jitter (at least `initial`).
    pub max: Duration,
    /// Growth per retry: positive, digits beyond the third decimal ignored.
    pub multiplier: f64,
    /// How each delay is randomised.
    pub jitter: Jitter,
    /// What a server-supplied retry-after does.
    pub retry_after: RetryAfterRule,
    /// [`RetryAfterRule::WithinExtra`] only: how far past the computed delay a retry-after
    /// may move it.
    pub retry_after_max_extra: Duration,
}

impl BackoffConfig {
    /// Doubling from `initial` up to `max` with `jitter`; retry-after ignored.
    pub const fn exponential(initial: Duration, max: Duration, jitter: Jitter) -> Self {
        Self {
            initial,
            max,
            multiplier: 2.0,
            jitter,
            retry_after: RetryAfterRule::Ignore,
            retry_after_max_extra: Duration::ZERO,
        }
    }

    /// gRPC A6: `min(initial × multiplier^(n−1), max) × U(0.8, 1.2)`; pushback sets the next
    /// delay exactly and restarts the sequence. A6 requires `initial`, `max` and `multiplier`
    /// positive ([`Backoff::new`] checks).
    pub const fn grpc(initial: Duration, max: Duration, multiplier: f64) -> Self {
        Self {
            initial,
            max,
            multiplier,
            jitter: Jitter::Grpc,
            retry_after: RetryAfterRule::Exact,
            retry_after_max_extra: Duration::ZERO,
        }
    }

    /// AWS legacy (botocore `ExponentialBackoff`): `U[0, min(1 s × 2^(n−1), 20 s))`.
    pub const fn aws_legacy() -> Self {
        Self::exponential(Duration::from_secs(1), Duration::from_secs(20), Jitter::Full)
    }

    /// AWS 2026 (`AWS_NEW_RETRIES_2026`): full jitter from 50 ms for transient errors and
    /// timeouts (`throttling == false`) or 1 s for throttling, up to 20 s; `x-amz-retry-after`
    /// honoured within `[t, t + 5 s]`.
    pub const fn aws_2026(throttling: bool) -> Self {
        let initial = if throttling { Duration::from_secs(1) } else { Duration::from_millis(50) };
        let mut config = Self::exponential(initial, Duration::from_secs(20), Jitter::Full);
        config.retry_after = RetryAfterRule::WithinExtra;
        config.retry_after_max_extra = Duration::from_secs(5);
        config
    }

    /// aws-c-io's exponential backoff strategy defaults: full jitter, 500 ms scale, 20 s cap.
    pub const fn aws_c_io() -> Self {
        Self::exponential(Duration::from_millis(500), Duration::from_secs(20), Jitter::Full)
    }

    /// Checks every field; see each field's documentation for its range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let initial = duration_to_nanos(self.initial);
        let max = duration_to_nanos(self.max);
        if initial == 0 {
            return Err(ConfigError::Zero { field: "initial backoff" });
        }
        if initial > max {
            return Err(ConfigError::MinAboveMax { field: "backoff", min: initial, max });
        }
        if !self.multiplier.is_finite() {
            return Err(ConfigError::NotFinite { field: "multiplier" });
        }
        if self.multiplier <= 0.0 || to_milli(self.multiplier) == 0 {
            return Err(ConfigError::out_of_range("multiplier", self.multiplier, "[0.001, inf)"));
        }
        Ok(())
    }
}

/// One call's retry delays: call [`next_delay`](Self::next_delay) before each retry, or use it
/// as an endless [`Iterator`] of delays (`.take(n)` for `n` retries).
///
/// Integer nanoseconds throughout: the exponential term grows by `multiplier` in thousandths
/// (truncated to the nanosecond) and saturates at `max`, so it never overflows however many
/// retries are asked for.
///
/// # Memory ordering
///
/// None: a backoff belongs to one call's retry loop and changes only through `&mut self`, so
/// it has no atomics and needs no synchronisation; give each call its own.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use valve::{Backoff, BackoffConfig, Jitter, SplitMix64};
///
/// let config = BackoffConfig::exponential(
///     Duration::from_millis(100),
///     Duration::from_secs(1),
///     Jitter::None,
/// );
/// let delays: Vec<Duration> = Backoff::with_rng(config, SplitMix64::seeded(7))?.take(5).collect();
/// assert_eq!(delays.last(), Some(&Duration::from_secs(1)));
/// # Ok::<(), valve::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Backoff<R: BackoffRng = SplitMix64> {
    initial: Nanos,
    max: Nanos,
    multiplier_milli: u64,
    jitter: Jitter,
    retry_after: RetryAfterRule,
    retry_after_max_extra: Nanos,
    /// The next retry's delay before jitter.
    exponential: Nanos,
    /// The previous delay, for decorrelated jitter.
    previous: Nanos,
    rng: R,
}

impl Backoff<SplitMix64> {
    /// A sequence jittered by a [`SplitMix64`] seeded [`from_entropy`](SplitMix64::from_entropy).
    pub fn new(config: BackoffConfig) -> Result<Self, ConfigError> {
        Self::with_rng(config, SplitMix64::from_entropy())
    }
}

impl<R: BackoffRng> Backoff<R> {
    /// A sequence jittered by `rng`.
    pub fn with_rng(config: BackoffConfig, rng: R) -> Result<Self, ConfigError> {
        config.validate()?;
        let initial = duration_to_nanos(config.initial);
        Ok(Self {
            initial,
            max: duration_to_nanos(config.max),
            multiplier_milli: to_milli(config.multiplier),
            jitter: config.jitter,
            retry_after: config.retry_after,
            retry_after_max_extra: duration_to_nanos(config.retry_after_max_extra),
            exponential: initial,
            previous: initial,
            rng,
        })
    }

    /// The next retry's delay.
    #[inline]
    pub fn next_delay(&mut self) -> Duration {
        Duration::from_nanos(self.next_nanos())
    }

    /// The next retry's delay given the server's retry-after, if it sent one; see
    /// [`RetryAfterRule`].
    pub fn next_delay_after(&mut self, retry_after: Option<Duration>) -> Duration {
        let Some(server) = retry_after.map(duration_to_nanos) else {
            return self.next_delay();
        };
        let nanos = match self.retry_after {
            RetryAfterRule::Ignore => self.next_nanos(),
            RetryAfterRule::Exact => {
                self.reset();
                server
            }
            RetryAfterRule::WithinExtra => {
                let computed = self.next_nanos();
                server.clamp(computed, computed.saturating_add(self.retry_after_max_extra))
            }
        };
        Duration::from_nanos(nanos)
    }

    /// Starts the sequence again from `initial` (after a success, or a gRPC pushback).
    pub fn reset(&mut self) {
        self.exponential = self.initial;
        self.previous = self.initial;
    }

    /// The generator, e.g. to read or reseed it.
    pub fn rng_mut(&mut self) -> &mut R {
        &mut self.rng
    }

    fn next_nanos(&mut self) -> Nanos {
        let d = self.exponential;
        self.exponential = self.grow(d);
        match self.jitter {
            Jitter::None => d,
            Jitter::Full => self.uniform(0, d),
            Jitter::Equal => {
                let half = d / 2;
                half + self.uniform(0, d - half)
            }
            Jitter::Decorrelated => {
                let upper = self.previous.saturating_mul(3);
                let delay = self.uniform(self.initial, upper).min(self.max);
                self.previous = delay;
                delay
            }
            Jitter::Grpc => self.uniform(d - d / 5, d.saturating_add(d / 5)),
        }
    }

    /// `min(d × multiplier, max)`, in integers.
    fn grow(&self, d: Nanos) -> Nanos {
        let grown = u128::from(d) * u128::from(self.multiplier_milli) / 1000;
        u64::try_from(grown).unwrap_or(u64::MAX).min(self.max)
    }

    /// Uniform in `[low, high)` by multiply-high (bias below `(high − low) / 2^64`); `low` when
    /// the range is empty.
    fn uniform(&mut self, low: Nanos, high: Nanos) -> Nanos {
        let span = high.saturating_sub(low);
        let offset = (u128::from(self.rng.next_u64()) * u128::from(span)) >> 64;
        low + offset as u64
    }
}

impl<R: BackoffRng> Iterator for Backoff<R> {
    type Item = Duration;

    /// Never `None`: bound the number of retries with `take`.
    #[inline]
    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    /// Always returns the same value: 0 draws the range's low end, `1 << 63` its middle.
    struct Fixed(u64);

    impl BackoffRng for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }

    const MID: u64 = 1 << 63;

    fn ms(list: &[u64]) -> Vec<Duration> {
        list.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    fn delays(config: BackoffConfig, rng: u64, n: usize) -> Vec<Duration> {
        Backoff::with_rng(config, Fixed(rng)).unwrap().take(n).collect()
    }

    #[test]
    fn exponential_with_cap_and_the_jitter_families() {
        let base = |jitter| {
            BackoffConfig::exponential(Duration::from_millis(100), Duration::from_secs(1), jitter)
        };
        assert_eq!(delays(base(Jitter::None), 0, 6), ms(&[100, 200, 400, 800, 1000, 1000]));
        assert_eq!(delays(base(Jitter::Full), MID, 5), ms(&[50, 100, 200, 400, 500]));
        assert_eq!(delays(base(Jitter::Full), 0, 2), ms(&[0, 0]));
        assert_eq!(delays(base(Jitter::Equal), MID, 5), ms(&[75, 150, 300, 600, 750]));
        assert_eq!(delays(base(Jitter::Equal), 0, 2), ms(&[50, 100]));
        // Decorrelated: U[100, 3 × previous) at its middle: 200, 350, 575, 912.5, then capped.
        let decorrelated = delays(base(Jitter::Decorrelated), MID, 5);
        let expected = [200_000_000, 350_000_000, 575_000_000, 912_500_000, 1_000_000_000];
        assert_eq!(decorrelated, expected.map(Duration::from_nanos));
        assert_eq!(delays(base(Jitter::Decorrelated), 0, 3), ms(&[100, 100, 100]));
    }

    /// A6: `min(initial × multiplier^(n−1), max) × U(0.8, 1.2)`; the middle of the range is
    /// the exponential term itself, its ends 0.8 and (just below) 1.2 times it.
    #[test]
    fn grpc_plus_minus_twenty_percent() {
        let config = BackoffConfig::grpc(Duration::from_millis(100), Duration::from_secs(1), 1.6);
        let middle =
            [100_000_000, 160_000_000, 256_000_000, 409_600_000, 655_360_000, 1_000_000_000];
        assert_eq!(delays(config, MID, 6), middle.map(Duration::from_nanos));
        assert_eq!(delays(config, 0, 2), ms(&[80, 128]));
        let top = delays(config, u64::MAX, 6);
        assert!(top[5] < Duration::from_millis(1200) && top[5] > Duration::from_millis(1199));
    }

    #[test]
    fn aws_presets() {
        // botocore: rand() × min(2^(n−1), 20) s.
        assert_eq!(
            delays(BackoffConfig::aws_legacy(), MID, 6),
            ms(&[500, 1000, 2000, 4000, 8000, 10_000])
        );
        assert_eq!(delays(BackoffConfig::aws_2026(false), MID, 3), ms(&[25, 50, 100]));
        assert_eq!(delays(BackoffConfig::aws_2026(true), MID, 2), ms(&[500, 1000]));
        assert_eq!(delays(BackoffConfig::aws_c_io(), MID, 2), ms(&[250, 500]));
    }

    #[test]
    fn retry_after_rules() {
        let secs = Duration::from_secs;
        let mut grpc =
            Backoff::with_rng(BackoffConfig::grpc(secs(1), secs(10), 2.0), Fixed(MID)).unwrap();
        assert_eq!(grpc.next_delay(), secs(1));
        assert_eq!(grpc.next_delay(), secs(2));
        assert_eq!(grpc.next_delay_after(Some(secs(7))), secs(7), "pushback is exact");
        assert_eq!(grpc.next_delay(), secs(1), "and restarts the sequence");
        assert_eq!(grpc.next_delay_after(None), secs(2));

        let mut aws = Backoff::with_rng(BackoffConfig::aws_2026(true), Fixed(MID)).unwrap();
        assert_eq!(
            aws.next_delay_after(Some(secs(0))),
            Duration::from_millis(500),
            "never below t"
        );
        assert_eq!(aws.next_delay_after(Some(secs(3))), secs(3));
        assert_eq!(aws.next_delay_after(Some(secs(60))), secs(2 + 5), "at most t + 5 s");

        let mut legacy = Backoff::with_rng(BackoffConfig::aws_legacy(), Fixed(MID)).unwrap();
        assert_eq!(legacy.next_delay_after(Some(secs(60))), Duration::from_millis(500));
    }

    #[test]
    fn seeded_sequences_repeat_and_stay_in_range() {
        let config = BackoffConfig::aws_legacy();
        let a: Vec<_> =
            Backoff::with_rng(config, SplitMix64::seeded(42)).unwrap().take(50).collect();
        let b: Vec<_> =
            Backoff::with_rng(config, SplitMix64::seeded(42)).unwrap().take(50).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|d| *d < Duration::from_secs(20)));
        let mut rng = SplitMix64::seeded(0);
        // SplitMix64's published first output for seed 0.
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        let huge = BackoffConfig::exponential(Duration::from_secs(1), Duration::MAX, Jitter::None);
        let last = Backoff::with_rng(huge, Fixed(0)).unwrap().nth(200).unwrap();
        assert_eq!(last, Duration::from_nanos(u64::MAX), "saturates, never overflows");
        assert!(Backoff::new(config).is_ok());
    }

    #[test]
    fn configs_are_checked() {
        let secs = Duration::from_secs;
        assert!(Backoff::new(BackoffConfig::grpc(Duration::ZERO, secs(1), 2.0)).is_err());
        assert!(Backoff::new(BackoffConfig::grpc(secs(2), secs(1), 2.0)).is_err());
        assert!(Backoff::new(BackoffConfig::grpc(secs(1), secs(2), 0.0)).is_err());
        assert!(Backoff::new(BackoffConfig::grpc(secs(1), secs(2), 0.0001)).is_err());
        assert!(Backoff::new(BackoffConfig::grpc(secs(1), secs(2), f64::NAN)).is_err());
        assert!(Backoff::new(BackoffConfig::grpc(secs(1), secs(2), 0.5)).is_ok());
    }
}
