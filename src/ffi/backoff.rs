//! Backoff delays with jitter through the C ABI: `valve_backoff`, its config and presets.
//!
//! A backoff is the state of one call's retry sequence (the next exponential step, the previous
//! delay for decorrelated jitter, the generator), so unlike the budgets it is not shared: its
//! functions take a `valve_backoff *` and one thread at a time may use it.

use std::time::Duration;

use crate::budget::{Backoff, BackoffConfig, Jitter, RetryAfterRule, SplitMix64};
use crate::clock::duration_to_nanos;
use crate::error::ConfigError;
use crate::ffi::{
    boundary, free_handle, live_mut, new_handle, status_boundary, valve_status, write_out,
};

/// How a delay is randomised, for `valve_backoff_config.jitter`; `d` is the exponential delay
/// `min(initial * multiplier^(n-1), max)`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_jitter {
    /// `d`.
    VALVE_JITTER_NONE = 0,
    /// `U[0, d)` (AWS full jitter).
    VALVE_JITTER_FULL = 1,
    /// `d/2 + U[0, d/2)` (AWS equal jitter).
    VALVE_JITTER_EQUAL = 2,
    /// `min(max, U[initial, 3 * previous))` (AWS decorrelated jitter).
    VALVE_JITTER_DECORRELATED = 3,
    /// `d * U[0.8, 1.2)` (gRPC A6).
    VALVE_JITTER_GRPC = 4,
}

/// What a server-supplied retry-after does, for `valve_backoff_config.retry_after`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_retry_after {
    /// Ignored (AWS legacy, aws-c-io).
    VALVE_RETRY_AFTER_IGNORE = 0,
    /// The next delay exactly; the sequence restarts (gRPC A6 pushback).
    VALVE_RETRY_AFTER_EXACT = 1,
    /// Kept within `[t, t + retry_after_max_extra_ns]` of the computed delay `t` (AWS 2026).
    VALVE_RETRY_AFTER_WITHIN_EXTRA = 2,
}

/// Configuration of a `valve_backoff` (durations in ns).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_backoff_config {
    /// The first retry's delay before jitter, at least 1 ns.
    pub initial_ns: u64,
    /// The largest delay before jitter, at least `initial_ns`.
    pub max_ns: u64,
    /// Growth per retry: positive, digits beyond the third decimal ignored.
    pub multiplier: f64,
    /// One of `valve_jitter`.
    pub jitter: u32,
    /// One of `valve_retry_after`.
    pub retry_after: u32,
    /// WITHIN_EXTRA only: how far past the computed delay a retry-after may move it, ns.
    pub retry_after_max_extra_ns: u64,
}

/// One call's retry delays. Opaque; created by `valve_backoff_new`, freed by
/// `valve_backoff_free`. Not thread-safe: use one per retry sequence, from one thread at a
/// time.
pub struct valve_backoff(Backoff<SplitMix64>);

impl valve_backoff_config {
    fn from_rust(config: &BackoffConfig) -> Self {
        Self {
            initial_ns: duration_to_nanos(config.initial),
            max_ns: duration_to_nanos(config.max),
            multiplier: config.multiplier,
            jitter: config.jitter as u32,
            retry_after: config.retry_after as u32,
            retry_after_max_extra_ns: duration_to_nanos(config.retry_after_max_extra),
        }
    }

    fn to_rust(self) -> Result<BackoffConfig, ConfigError> {
        let jitter = match self.jitter {
            0 => Jitter::None,
            1 => Jitter::Full,
            2 => Jitter::Equal,
            3 => Jitter::Decorrelated,
            4 => Jitter::Grpc,
            other => return Err(ConfigError::out_of_range("jitter", other, "valve_jitter")),
        };
        let retry_after = match self.retry_after {
            0 => RetryAfterRule::Ignore,
            1 => RetryAfterRule::Exact,
            2 => RetryAfterRule::WithinExtra,
            other => {
                return Err(ConfigError::out_of_range("retry_after", other, "valve_retry_after"));
            }
        };
        Ok(BackoffConfig {
            initial: Duration::from_nanos(self.initial_ns),
            max: Duration::from_nanos(self.max_ns),
            multiplier: self.multiplier,
            jitter,
            retry_after,
            retry_after_max_extra: Duration::from_nanos(self.retry_after_max_extra_ns),
        })
    }
}

/// A panicking preset answers this config, which `valve_backoff_new` refuses.
const REFUSED: valve_backoff_config = valve_backoff_config {
    initial_ns: 0,
    max_ns: 0,
    multiplier: 0.0,
    jitter: u32::MAX,
    retry_after: u32::MAX,
    retry_after_max_extra_ns: 0,
};

fn preset(config: impl FnOnce() -> BackoffConfig) -> valve_backoff_config {
    boundary(REFUSED, || valve_backoff_config::from_rust(&config()))
}

/// Doubling from `initial_ns` up to `max_ns` with `jitter` (a `valve_jitter`; checked by
/// `valve_backoff_new`), retry-after ignored. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_backoff_config_exponential(
    initial_ns: u64,
    max_ns: u64,
    jitter: u32,
) -> valve_backoff_config {
    let mut config = preset(|| {
        BackoffConfig::exponential(
            Duration::from_nanos(initial_ns),
            Duration::from_nanos(max_ns),
            Jitter::None,
        )
    });
    config.jitter = jitter;
    config
}

/// gRPC A6: `min(initial * multiplier^(n-1), max) * U(0.8, 1.2)`; pushback sets the next
/// delay exactly. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_backoff_config_grpc(
    initial_ns: u64,
    max_ns: u64,
    multiplier: f64,
) -> valve_backoff_config {
    preset(|| {
        BackoffConfig::grpc(
            Duration::from_nanos(initial_ns),
            Duration::from_nanos(max_ns),
            multiplier,
        )
    })
}

/// AWS legacy (botocore): `U[0, min(1 s * 2^(n-1), 20 s))`. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_backoff_config_aws_legacy() -> valve_backoff_config {
    preset(BackoffConfig::aws_legacy)
}

/// AWS 2026: full jitter from 50 ms (1 s when `throttling`) up to 20 s, retry-after honoured
/// within 5 s. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_backoff_config_aws_2026(throttling: bool) -> valve_backoff_config {
    preset(|| BackoffConfig::aws_2026(throttling))
}

/// aws-c-io: full jitter, 500 ms scale, 20 s cap. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_backoff_config_aws_c_io() -> valve_backoff_config {
    preset(BackoffConfig::aws_c_io)
}

/// Creates a backoff sequence from `config`, its jitter drawn from a generator seeded with
/// `seed` (equal seeds give equal sequences). Answers `VALVE_OK`, `VALVE_INVALID_ARGUMENT`
/// (unknown enumeration value or a config `Backoff` refuses) or `VALVE_NULL_POINTER`; on
/// failure `*out` is NULL. Thread-safe.
///
/// # Safety
///
/// `config` must be NULL or readable; `out` NULL or writable for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_backoff_new(
    config: *const valve_backoff_config,
    seed: u64,
    out: *mut *mut valve_backoff,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        new_handle(out, || {
            // SAFETY: NULL or readable (the caller's contract).
            let config = config.as_ref().ok_or(valve_status::VALVE_NULL_POINTER)?;
            config
                .to_rust()
                .and_then(|config| Backoff::with_rng(config, SplitMix64::seeded(seed)))
                .map(valve_backoff)
                .map_err(|_| valve_status::VALVE_INVALID_ARGUMENT)
        })
    }
}

/// Frees a backoff; NULL is a no-op.
///
/// # Safety
///
/// `backoff` must be NULL or a live handle, unused by any other call now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_backoff_free(backoff: *mut valve_backoff) {
    // SAFETY: forwarded caller contract.
    unsafe { free_handle(backoff) }
}

/// The next retry's delay, ns, into `*out_ns`. `retry_after_ns` is the server's retry-after,
/// or `UINT64_MAX` when it sent none. Answers `VALVE_OK` or `VALVE_NULL_POINTER` (nothing
/// advances). Not thread-safe: one thread at a time per backoff.
///
/// # Safety
///
/// `backoff` must be NULL or a live handle no other thread uses during the call; `out_ns`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_backoff_next_delay_ns(
    backoff: *mut valve_backoff,
    retry_after_ns: u64,
    out_ns: *mut u64,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: NULL or a live handle exclusively ours for the call (the caller's contract).
        let backoff = match unsafe { live_mut(backoff) } {
            Ok(backoff) => backoff,
            Err(status) => return status,
        };
        if out_ns.is_null() {
            return valve_status::VALVE_NULL_POINTER;
        }
        let server = (retry_after_ns != u64::MAX).then(|| Duration::from_nanos(retry_after_ns));
        let delay = duration_to_nanos(backoff.0.next_delay_after(server));
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { write_out(out_ns, delay) }
    })
}

/// Starts the sequence again from `initial_ns` (after a success). Answers `VALVE_OK` or
/// `VALVE_NULL_POINTER`. Not thread-safe: one thread at a time per backoff.
///
/// # Safety
///
/// As `valve_backoff_next_delay_ns`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_backoff_reset(backoff: *mut valve_backoff) -> valve_status {
    status_boundary(|| {
        // SAFETY: NULL or a live handle exclusively ours for the call (the caller's contract).
        let backoff = match unsafe { live_mut(backoff) } {
            Ok(backoff) => backoff,
            Err(status) => return status,
        };
        backoff.0.reset();
        valve_status::VALVE_OK
    })
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;

    fn delays(config: &valve_backoff_config, seed: u64, n: usize) -> Vec<u64> {
        let mut backoff = ptr::null_mut();
        let mut out = Vec::new();
        // SAFETY (this block): valid pointers; the handle is live until freed.
        unsafe {
            assert_eq!(valve_backoff_new(config, seed, &mut backoff), valve_status::VALVE_OK);
            for _ in 0..n {
                let mut delay = 0;
                assert_eq!(
                    valve_backoff_next_delay_ns(backoff, u64::MAX, &mut delay),
                    valve_status::VALVE_OK
                );
                out.push(delay);
            }
            valve_backoff_free(backoff);
        }
        out
    }

    #[test]
    fn presets_round_trip_and_sequences_match_rust() {
        for (c, rust) in [
            (valve_backoff_config_aws_legacy(), BackoffConfig::aws_legacy()),
            (valve_backoff_config_aws_2026(true), BackoffConfig::aws_2026(true)),
            (valve_backoff_config_aws_c_io(), BackoffConfig::aws_c_io()),
        ] {
            assert_eq!(c.to_rust(), Ok(rust));
            let mut backoff = Backoff::with_rng(rust, SplitMix64::seeded(3)).unwrap();
            let expected: Vec<u64> =
                (0..5).map(|_| duration_to_nanos(backoff.next_delay())).collect();
            assert_eq!(delays(&c, 3, 5), expected);
        }
        let none = valve_backoff_config_exponential(10, 80, 0);
        assert_eq!(delays(&none, 0, 5), [10, 20, 40, 80, 80]);
    }

    #[test]
    fn retry_after_reset_and_hostile_input() {
        let config = valve_backoff_config_grpc(100, 1000, 2.0);
        let mut backoff = ptr::null_mut();
        let mut delay = 0;
        // SAFETY (this block): every non-null pointer is valid.
        unsafe {
            assert_eq!(valve_backoff_new(&config, 1, &mut backoff), valve_status::VALVE_OK);
            assert_eq!(valve_backoff_next_delay_ns(backoff, 7, &mut delay), valve_status::VALVE_OK);
            assert_eq!(delay, 7, "gRPC pushback is exact");
            assert_eq!(valve_backoff_reset(backoff), valve_status::VALVE_OK);
            assert_eq!(
                valve_backoff_next_delay_ns(backoff, u64::MAX, ptr::null_mut()),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(valve_backoff_reset(ptr::null_mut()), valve_status::VALVE_NULL_POINTER);
            valve_backoff_free(backoff);
            for bad in [
                valve_backoff_config_exponential(10, 80, 5),
                valve_backoff_config_exponential(0, 80, 0),
                valve_backoff_config_exponential(100, 80, 0),
                valve_backoff_config { retry_after: 3, ..config },
                valve_backoff_config { multiplier: f64::NAN, ..config },
            ] {
                assert_eq!(
                    valve_backoff_new(&bad, 0, &mut backoff),
                    valve_status::VALVE_INVALID_ARGUMENT
                );
                assert!(backoff.is_null());
            }
        }
    }
}
