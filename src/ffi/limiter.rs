//! The concurrency limiter through the C ABI: `valve_limiter`, its config and presets, permits.
//!
//! A C permit is a plain [`valve_permit`] written into caller memory, so acquiring allocates
//! nothing. It names its limiter by a per-handle id (from a global counter, never reused, so
//! a permit cannot be released into another limiter, even one allocated at the same address)
//! and carries its state, so releasing the same struct twice answers
//! [`valve_status::VALVE_STALE_PERMIT`] and changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock::{Clock, MonotonicClock, Nanos};
use crate::ffi::limit::{
    valve_envoy_gradient_config, valve_gradient2_config, valve_queue_config, valve_vegas_config,
};
use crate::ffi::{
    free_handle, live_ref, new_handle, status_boundary, valve_cancel_token, valve_status,
};
use crate::limit::{
    Aimd, AimdConfig, AimdLatency, EnvoyGradient, EnvoyGradientConfig, Fixed, Gradient2,
    Gradient2Config, LimitAlgorithm, Vegas, VegasConfig, WindowConfig,
};
use crate::limiter::{AcquireError, Limiter, LimiterSnapshot, Outcome, Permit, QueueConfig};
use crate::{ConfigError, duration_to_nanos};

/// Limit algorithms, for `valve_limiter_config.algorithm`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_algorithm {
    /// A constant limit, settable by hand: `valve_limiter_config.fixed`.
    VALVE_ALGORITHM_FIXED = 0,
    /// Additive increase, multiplicative decrease: `valve_limiter_config.aimd`.
    VALVE_ALGORITHM_AIMD = 1,
    /// Netflix Gradient2 (RTT gradient with a queue allowance): `valve_limiter_config.gradient2`.
    VALVE_ALGORITHM_GRADIENT2 = 2,
    /// TCP Vegas's queue estimate: `valve_limiter_config.vegas`.
    VALVE_ALGORITHM_VEGAS = 3,
    /// Envoy's gradient controller: `valve_limiter_config.envoy_gradient`.
    VALVE_ALGORITHM_ENVOY_GRADIENT = 4,
}

/// How a unit of work ended, for `valve_limiter_release`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_outcome {
    /// Completed normally: its RTT is a sample.
    VALVE_OUTCOME_SUCCESS = 0,
    /// An overload signal (timeout, 503, shed downstream): a sample that marks its window as
    /// dropped.
    VALVE_OUTCOME_DROPPED = 1,
    /// No signal (client cancel, bad request): releases the slot and teaches nothing.
    VALVE_OUTCOME_IGNORED = 2,
}

/// States of a `valve_permit`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_permit_state {
    /// Holds no slot: zero-initialised, or filled in by a rejected acquire.
    VALVE_PERMIT_EMPTY = 0,
    /// Holds one slot of its limiter until released.
    VALVE_PERMIT_HELD = 1,
    /// Was released; releasing it again answers `VALVE_STALE_PERMIT`.
    VALVE_PERMIT_RELEASED = 2,
}

/// How completed calls are aggregated before the algorithm sees them (durations in ns).
///
/// A window closes at the first sample that finds both its duration elapsed and at least
/// `min_samples` samples in it; the next window lasts twice the last minimum RTT, clamped to
/// `[min_duration_ns, max_duration_ns]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_window_config {
    /// Shortest window, ns.
    pub min_duration_ns: u64,
    /// Longest window, ns; at least `min_duration_ns`.
    pub max_duration_ns: u64,
    /// Samples a window needs before it may close; at least 1.
    pub min_samples: u32,
    /// Calls faster than this (ns) are counted but not sampled.
    pub min_rtt_threshold_ns: u64,
    /// Percentile of RTT the window also reports, in `(0, 1]`; 0 for none.
    pub percentile: f64,
}

/// Configuration of the FIXED algorithm.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct valve_fixed_config {
    /// The limit, in `[1, VALVE_MAX_LIMIT]`.
    pub limit: u32,
}

/// Configuration of the AIMD algorithm: per window, `L = trunc(L * backoff_ratio)` on a drop
/// or a mean RTT above `timeout_ns`, else `L += increase_step` when the window's largest
/// in-flight reached `L * utilisation_threshold`; `L` stays in `[min_limit, max_limit]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_aimd_config {
    /// Limit before the first window, in `[min_limit, max_limit]`.
    pub initial_limit: u32,
    /// Smallest limit, at least 1.
    pub min_limit: u32,
    /// Largest limit, at most `VALVE_MAX_LIMIT`.
    pub max_limit: u32,
    /// Added when the limit was used enough, at least 1.
    pub increase_step: u32,
    /// Factor applied on a drop or timeout, in `[0.5, 1)`.
    pub backoff_ratio: f64,
    /// Fraction of the limit a window's largest in-flight must reach to grow, in `[0, 1]`.
    pub utilisation_threshold: f64,
    /// A window whose mean RTT is above this (ns, not 0) backs off as if it dropped.
    pub timeout_ns: u64,
    /// How samples are aggregated.
    pub window: valve_window_config,
    /// Exponential growth until the first drop or timeout.
    pub slow_start: bool,
    /// valve's latency rule: a window whose RTT, averaged over about 200 samples, exceeds this
    /// multiple of a learnt no-load RTT backs off as a drop does; in `(1, 100]`, or 0 for no
    /// rule (Netflix). valve: 1.5.
    pub latency_tolerance: f64,
}

/// Configuration of a limiter: `algorithm` picks which of the per-algorithm members is read.
///
/// Fill it with `valve_limiter_config_default()` or a preset, then change fields. Later
/// versions add algorithms (and their members) without renumbering the existing ones.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_limiter_config {
    /// One of `valve_algorithm`; other values answer `VALVE_INVALID_ARGUMENT`.
    pub algorithm: u32,
    /// Read when `algorithm` is `VALVE_ALGORITHM_FIXED`.
    pub fixed: valve_fixed_config,
    /// Read when `algorithm` is `VALVE_ALGORITHM_AIMD`.
    pub aimd: valve_aimd_config,
    /// Read when `algorithm` is `VALVE_ALGORITHM_GRADIENT2`.
    pub gradient2: valve_gradient2_config,
    /// Read when `algorithm` is `VALVE_ALGORITHM_VEGAS`.
    pub vegas: valve_vegas_config,
    /// Read when `algorithm` is `VALVE_ALGORITHM_ENVOY_GRADIENT`.
    pub envoy_gradient: valve_envoy_gradient_config,
    /// The waiter queue of `valve_limiter_acquire_until` and `_acquire_timeout` (every preset:
    /// FIFO, up to 4096 waiters, graded rejection from 2x to 3x the limit).
    pub queue: valve_queue_config,
}

/// A permit: the right to run one unit of work, written by an acquire and consumed by a release.
///
/// A plain value in caller memory; nothing is allocated for it. Release it exactly once,
/// through the struct the acquire filled in (or one it was moved to). The limiter tracks the
/// struct it is handed, not copies: releasing one copy marks that copy only, so releasing a
/// second copy returns another caller's slot (or, when the limiter holds no slot at all,
/// answers `VALVE_STALE_PERMIT` and leaves the limiter as it was, refusing no acquire that
/// races it). Do not copy a held permit.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct valve_permit {
    /// The id of the limiter that admitted it (never reused within a process).
    pub limiter_id: u64,
    /// When it was acquired, ns on the limiter's timeline.
    pub start_ns: u64,
    /// In-flight right after its admission, itself included (on rejection: in-flight seen).
    pub in_flight: u32,
    /// One of `valve_permit_state`.
    pub state: u32,
}

/// A concurrency limiter: admits work up to a limit, in one CAS, and sheds the rest at once.
///
/// Opaque; created by `valve_limiter_new`, freed by `valve_limiter_free`. Every function taking
/// a `const valve_limiter *` is safe to call from any number of threads at once; only
/// `valve_limiter_free` needs exclusive access. Corresponds to a
/// `Box<Limiter<Box<dyn LimitAlgorithm>>>`.
pub struct valve_limiter {
    id: u64,
    limiter: Limiter<Box<dyn LimitAlgorithm>>,
}

/// Handle ids start at 1, so a zeroed permit never names a live limiter.
static NEXT_LIMITER_ID: AtomicU64 = AtomicU64::new(1);

const ALGORITHM_FIXED: u32 = valve_algorithm::VALVE_ALGORITHM_FIXED as u32;
const ALGORITHM_AIMD: u32 = valve_algorithm::VALVE_ALGORITHM_AIMD as u32;
const ALGORITHM_GRADIENT2: u32 = valve_algorithm::VALVE_ALGORITHM_GRADIENT2 as u32;
const ALGORITHM_VEGAS: u32 = valve_algorithm::VALVE_ALGORITHM_VEGAS as u32;
const ALGORITHM_ENVOY_GRADIENT: u32 = valve_algorithm::VALVE_ALGORITHM_ENVOY_GRADIENT as u32;
const OUTCOME_SUCCESS: u32 = valve_outcome::VALVE_OUTCOME_SUCCESS as u32;
const OUTCOME_DROPPED: u32 = valve_outcome::VALVE_OUTCOME_DROPPED as u32;
const OUTCOME_IGNORED: u32 = valve_outcome::VALVE_OUTCOME_IGNORED as u32;
const PERMIT_EMPTY: u32 = valve_permit_state::VALVE_PERMIT_EMPTY as u32;
const PERMIT_HELD: u32 = valve_permit_state::VALVE_PERMIT_HELD as u32;
const PERMIT_RELEASED: u32 = valve_permit_state::VALVE_PERMIT_RELEASED as u32;

impl valve_window_config {
    pub(crate) fn from_rust(window: &WindowConfig) -> Self {
        Self {
            min_duration_ns: duration_to_nanos(window.min_duration),
            max_duration_ns: duration_to_nanos(window.max_duration),
            min_samples: window.min_samples,
            min_rtt_threshold_ns: duration_to_nanos(window.min_rtt_threshold),
            percentile: window.percentile.unwrap_or(0.0),
        }
    }

    pub(crate) fn to_rust(self) -> WindowConfig {
        WindowConfig {
            min_duration: Duration::from_nanos(self.min_duration_ns),
            max_duration: Duration::from_nanos(self.max_duration_ns),
            min_samples: self.min_samples,
            min_rtt_threshold: Duration::from_nanos(self.min_rtt_threshold_ns),
            // 0 means none; any other value is validated by the Rust constructor.
            percentile: (self.percentile != 0.0).then_some(self.percentile),
        }
    }
}

impl valve_aimd_config {
    fn from_rust(config: &AimdConfig) -> Self {
        Self {
            initial_limit: config.initial_limit,
            min_limit: config.min_limit,
            max_limit: config.max_limit,
            increase_step: config.increase_step,
            backoff_ratio: config.backoff_ratio,
            utilisation_threshold: config.utilisation_threshold,
            timeout_ns: duration_to_nanos(config.timeout),
            window: valve_window_config::from_rust(&config.window),
            slow_start: config.slow_start,
            latency_tolerance: config.latency.map_or(0.0, |latency| latency.tolerance),
        }
    }

    fn to_rust(self) -> AimdConfig {
        AimdConfig {
            initial_limit: self.initial_limit,
            min_limit: self.min_limit,
            max_limit: self.max_limit,
            backoff_ratio: self.backoff_ratio,
            increase_step: self.increase_step,
            utilisation_threshold: self.utilisation_threshold,
            timeout: Duration::from_nanos(self.timeout_ns),
            window: self.window.to_rust(),
            slow_start: self.slow_start,
            // 0 means none; any other value is validated by the Rust constructor.
            latency: (self.latency_tolerance != 0.0)
                .then_some(AimdLatency { tolerance: self.latency_tolerance }),
        }
    }
}

impl valve_limiter_config {
    /// Every member holds valve's defaults except `aimd`, and `fixed.limit` is AIMD's initial
    /// limit, so switching `algorithm` afterwards still gives a valid config.
    fn with_aimd(algorithm: valve_algorithm, aimd: &AimdConfig) -> Self {
        Self {
            algorithm: algorithm as u32,
            fixed: valve_fixed_config { limit: aimd.initial_limit },
            aimd: valve_aimd_config::from_rust(aimd),
            gradient2: valve_gradient2_config::from_rust(&Gradient2Config::default()),
            vegas: valve_vegas_config::from_rust(&VegasConfig::default()),
            envoy_gradient: valve_envoy_gradient_config::from_rust(&EnvoyGradientConfig::default()),
            queue: valve_queue_config::from_rust(&QueueConfig::default()),
        }
    }

    /// Validates through the Rust constructors, so C and Rust accept exactly the same configs.
    fn build(&self) -> Result<Limiter<Box<dyn LimitAlgorithm>>, ConfigError> {
        let algorithm: Box<dyn LimitAlgorithm> = match self.algorithm {
            ALGORITHM_FIXED => Box::new(Fixed::new(self.fixed.limit)?),
            ALGORITHM_AIMD => Box::new(Aimd::new(self.aimd.to_rust())?),
            ALGORITHM_GRADIENT2 => Box::new(Gradient2::new(self.gradient2.to_rust()?)?),
            ALGORITHM_VEGAS => Box::new(Vegas::new(self.vegas.to_rust()?)?),
            ALGORITHM_ENVOY_GRADIENT => {
                Box::new(EnvoyGradient::new(self.envoy_gradient.to_rust()?)?)
            }
            other => return Err(ConfigError::out_of_range("algorithm", other, "valve_algorithm")),
        };
        Limiter::with_queue(algorithm, MonotonicClock::new(), self.queue.to_rust()?)
    }
}

impl valve_permit {
    const fn empty() -> Self {
        Self { limiter_id: 0, start_ns: 0, in_flight: 0, state: PERMIT_EMPTY }
    }
}

/// valve's AIMD defaults: initial 20, limits `[1, 1000]`, backoff 0.9, step 1, utilisation 0.8,
/// timeout 5 s, windows of twice the min RTT between 10 ms and 1 s with at least 10 samples.
/// `fixed.limit` is 20, so switching `algorithm` to FIXED also gives a valid config.
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_limiter_config_default() -> valve_limiter_config {
    preset_boundary(|| {
        valve_limiter_config::with_aimd(
            valve_algorithm::VALVE_ALGORITHM_AIMD,
            &AimdConfig::default(),
        )
    })
}

/// Netflix `AIMDLimit` parity behind Netflix `WindowedLimit` defaults: initial 20, limits
/// `[20, 200]`, backoff 0.9, timeout 5 s, 1 s windows of at least 10 samples, samples under
/// 100 us ignored. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_limiter_config_aimd_netflix() -> valve_limiter_config {
    preset_boundary(|| {
        valve_limiter_config::with_aimd(
            valve_algorithm::VALVE_ALGORITHM_AIMD,
            &AimdConfig::netflix(),
        )
    })
}

/// A FIXED limit of `limit` (valid in `[1, VALVE_MAX_LIMIT]`; `valve_limiter_new` checks it).
/// The `aimd` member holds valve's defaults. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_limiter_config_fixed(limit: u32) -> valve_limiter_config {
    preset_boundary(|| {
        let mut config = valve_limiter_config::with_aimd(
            valve_algorithm::VALVE_ALGORITHM_FIXED,
            &AimdConfig::default(),
        );
        config.fixed.limit = limit;
        config
    })
}

/// valve's GRADIENT2 defaults (tolerance 1.25, allowance `max(4, sqrt L)`, baseline band 0.1,
/// backoff 0.9 on drops, slow start, limits `[1, 1000]`). Other members as
/// `valve_limiter_config_default()`. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_limiter_config_gradient2() -> valve_limiter_config {
    preset_boundary(|| with_algorithm(ALGORITHM_GRADIENT2, |c| c))
}

/// Netflix `Gradient2Limit` parity behind Netflix `WindowedLimit` defaults (initial 20, limits
/// `[20, 200]`, smoothing 0.2, queue 4, tolerance 1.5, long window 600, drops ignored).
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_limiter_config_gradient2_netflix() -> valve_limiter_config {
    preset_boundary(|| {
        with_algorithm(ALGORITHM_GRADIENT2, |mut c| {
            c.gradient2 = valve_gradient2_config::from_rust(&Gradient2Config::netflix());
            c
        })
    })
}

/// valve's VEGAS defaults (no probing, decrease to the estimate, backoff 0.9 on drops, slow
/// start). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_limiter_config_vegas() -> valve_limiter_config {
    preset_boundary(|| with_algorithm(ALGORITHM_VEGAS, |c| c))
}

/// Netflix `VegasLimit` parity (initial 20, max 1000, alpha 3 and beta 6 scaled by log10,
/// probe multiplier 30, per sample). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_limiter_config_vegas_netflix() -> valve_limiter_config {
    preset_boundary(|| {
        with_algorithm(ALGORITHM_VEGAS, |mut c| {
            c.vegas = valve_vegas_config::from_rust(&VegasConfig::netflix());
            c
        })
    })
}

/// valve's ENVOY_GRADIENT defaults (learned minimum RTT, no pinning, buffer 0.25, backoff 0.9
/// on drops, app-limited guard, slow start, p50 over valve windows). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_limiter_config_envoy_gradient() -> valve_limiter_config {
    preset_boundary(|| with_algorithm(ALGORITHM_ENVOY_GRADIENT, |c| c))
}

/// Envoy's gradient controller defaults (p50 windows of 100 ms, buffer 0.25, min concurrency
/// 3, max 1000, a pinned minimum-RTT measurement every 60 s with 15 % jitter over 50
/// requests). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_limiter_config_envoy_gradient_envoy() -> valve_limiter_config {
    preset_boundary(|| {
        with_algorithm(ALGORITHM_ENVOY_GRADIENT, |mut c| {
            c.envoy_gradient =
                valve_envoy_gradient_config::from_rust(&EnvoyGradientConfig::envoy());
            c
        })
    })
}

fn with_algorithm(
    algorithm: u32,
    change: impl FnOnce(valve_limiter_config) -> valve_limiter_config,
) -> valve_limiter_config {
    let mut config = valve_limiter_config::with_aimd(
        valve_algorithm::VALVE_ALGORITHM_AIMD,
        &AimdConfig::default(),
    );
    config.algorithm = algorithm;
    change(config)
}

/// Creates a limiter from `config` and stores it in `*out`.
///
/// Answers `VALVE_OK`; `VALVE_INVALID_ARGUMENT` for an unknown algorithm or a config the
/// algorithm refuses (same rules as the Rust constructors); `VALVE_NULL_POINTER` if either
/// pointer is NULL. On failure `*out` (when not NULL) is set to NULL. Thread-safe; `config` is
/// only read during the call.
///
/// # Safety
///
/// `config` must be NULL or point to a readable `valve_limiter_config`; `out` must be NULL or
/// point to writable memory for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_new(
    config: *const valve_limiter_config,
    out: *mut *mut valve_limiter,
) -> valve_status {
    // SAFETY: `out` is NULL or writable for one pointer (the caller's contract).
    unsafe {
        new_handle(out, || {
            // SAFETY: `config` is NULL or points to a readable config (the caller's contract).
            let config = config.as_ref().ok_or(valve_status::VALVE_NULL_POINTER)?;
            let limiter = config.build().map_err(|_| valve_status::VALVE_INVALID_ARGUMENT)?;
            let id = NEXT_LIMITER_ID.fetch_add(1, Ordering::Relaxed);
            Ok(valve_limiter { id, limiter })
        })
    }
}

/// Frees a limiter. NULL is a no-op.
///
/// Not thread-safe: no other call may use `limiter` during or after this one. Permits still
/// held become foreign to every live limiter.
///
/// # Safety
///
/// `limiter` must be NULL or a handle from `valve_limiter_new` that was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_free(limiter: *mut valve_limiter) {
    // SAFETY: forwarded caller contract.
    unsafe { free_handle(limiter) }
}

/// Admits one call if in-flight is below the limit, reading the limiter's clock. Never waits.
///
/// Answers `VALVE_OK` with a held permit in `*out`, `VALVE_REJECTED` with an empty permit
/// whose `in_flight` is the in-flight seen, or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `limiter` must be NULL or a live handle; `out` must be NULL or point to a writable
/// `valve_permit` that no other thread accesses during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_try_acquire(
    limiter: *const valve_limiter,
    out: *mut valve_permit,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: forwarded caller contract.
        let (handle, out) = match unsafe { handle_and_permit(limiter, out) } {
            Ok(both) => both,
            Err(status) => return status,
        };
        acquire(handle, handle.limiter.clock().now(), out)
    })
}

/// Admits one call started at `now_ns` if in-flight is below the limit. Never waits.
///
/// As `valve_limiter_try_acquire`, with the caller's time. Thread-safe.
///
/// # Safety
///
/// As `valve_limiter_try_acquire`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_try_acquire_at(
    limiter: *const valve_limiter,
    now_ns: u64,
    out: *mut valve_permit,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: forwarded caller contract.
        let (handle, out) = match unsafe { handle_and_permit(limiter, out) } {
            Ok(both) => both,
            Err(status) => return status,
        };
        acquire(handle, now_ns, out)
    })
}

/// Releases a held permit with `outcome` (a `valve_outcome`), reading the limiter's clock for
/// the end of the call.
///
/// Checks, in this order: pointers (`VALVE_NULL_POINTER`), the handle's live tag
/// (`VALVE_INVALID_HANDLE`: a freed limiter, as far as the header's "Handles" says), the outcome
/// (`VALVE_INVALID_ARGUMENT`), the permit's state (`VALVE_STALE_PERMIT` if released or empty,
/// `VALVE_INVALID_ARGUMENT` if not a `valve_permit_state`), its limiter (`VALVE_FOREIGN_PERMIT`),
/// then whether the limiter holds any slot (`VALVE_STALE_PERMIT` for a copy of a released
/// permit when nothing is in flight; the struct is still marked released). Any other error
/// changes nothing. On `VALVE_OK` the slot is returned, the outcome is recorded and
/// `permit->state` becomes `VALVE_PERMIT_RELEASED`.
///
/// Thread-safe for the limiter; a given permit must not be released by two threads at once.
///
/// # Safety
///
/// `limiter` must be NULL or a live handle; `permit` must be NULL or point to a writable
/// `valve_permit` that no other thread accesses during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_release(
    limiter: *const valve_limiter,
    permit: *mut valve_permit,
    outcome: u32,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: forwarded caller contract.
        let (handle, permit) = match unsafe { handle_and_permit(limiter, permit) } {
            Ok(both) => both,
            Err(status) => return status,
        };
        // An ignored call samples nothing, so it needs no clock read.
        let now = if outcome == OUTCOME_IGNORED { 0 } else { handle.limiter.clock().now() };
        release(handle, permit, outcome, now)
    })
}

/// Releases a held permit with `outcome`, the call having ended at `now_ns`.
///
/// As `valve_limiter_release`, with the caller's time. Thread-safe for the limiter.
///
/// # Safety
///
/// As `valve_limiter_release`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_release_at(
    limiter: *const valve_limiter,
    permit: *mut valve_permit,
    outcome: u32,
    now_ns: u64,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: forwarded caller contract.
        let (handle, permit) = match unsafe { handle_and_permit(limiter, permit) } {
            Ok(both) => both,
            Err(status) => return status,
        };
        release(handle, permit, outcome, now_ns)
    })
}

/// The limiter's clock now, ns since the handle was created: the timeline of the `_at`
/// functions' `now_ns` and of `valve_limiter_acquire_until`'s deadline (0 for NULL).
/// Thread-safe.
///
/// # Safety
///
/// `limiter` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_now(limiter: *const valve_limiter) -> u64 {
    crate::ffi::boundary(0, || {
        // SAFETY: `limiter` is NULL or a live handle (the caller's contract).
        unsafe { live_ref(limiter) }.map_or(0, |handle| handle.limiter.clock().now())
    })
}

/// Waits, blocking the calling thread, until a slot is free or the limiter's clock reads
/// `deadline_ns` (see `valve_limiter_now`; `UINT64_MAX` waits without a deadline).
///
/// Waiters queue as `valve_limiter_config.queue` says; queued time is not part of the permit's
/// RTT. Answers `VALVE_OK` with a held permit; `VALVE_REJECTED` when the queue refused the
/// wait (full, or graded rejection); `VALVE_TIMEOUT` when the deadline passed first (a
/// deadline already past answers at once unless a slot is free); `VALVE_NULL_POINTER`. On
/// failure `*out` is an empty permit. Thread-safe: any number of threads may wait at once.
///
/// # Safety
///
/// As `valve_limiter_try_acquire`; `limiter` must stay live until the call returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_acquire_until(
    limiter: *const valve_limiter,
    deadline_ns: u64,
    out: *mut valve_permit,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: forwarded caller contract.
        let (handle, out) = match unsafe { handle_and_permit(limiter, out) } {
            Ok(both) => both,
            Err(status) => return status,
        };
        wait(handle, handle.limiter.acquire_until(deadline_ns), out)
    })
}

/// As `valve_limiter_acquire_until` with a deadline `timeout_ns` from now (saturating).
/// Thread-safe.
///
/// # Safety
///
/// As `valve_limiter_acquire_until`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_acquire_timeout(
    limiter: *const valve_limiter,
    timeout_ns: u64,
    out: *mut valve_permit,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: forwarded caller contract.
        let (handle, out) = match unsafe { handle_and_permit(limiter, out) } {
            Ok(both) => both,
            Err(status) => return status,
        };
        let result = handle.limiter.acquire_timeout(Duration::from_nanos(timeout_ns));
        wait(handle, result, out)
    })
}

/// As `valve_limiter_acquire_until`, and cancellable: once `token` is cancelled (from any
/// thread, `valve_cancel_token_cancel`) the wait returns `VALVE_CANCELLED` promptly, with an
/// empty permit in `*out`; a token already cancelled answers at once without queueing. The
/// waiter keeps its place in the queue while it waits (the thread sleeps until a slot is
/// granted, the deadline, or the cancel); a slot granted as the cancel lands goes to the next
/// waiter. Answers as `valve_limiter_acquire_until` otherwise, or `VALVE_NULL_POINTER` for a
/// NULL `token`. Thread-safe; any number
/// of waits may share a token. Unlike the other waits it allocates a few words per call (the
/// waker through which a freed slot wakes the thread).
///
/// # Safety
///
/// As `valve_limiter_acquire_until`; `token` must be NULL or a live handle that stays live
/// until the call returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_acquire_cancellable(
    limiter: *const valve_limiter,
    token: *const valve_cancel_token,
    deadline_ns: u64,
    out: *mut valve_permit,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: forwarded caller contract.
        let (handle, out) = match unsafe { handle_and_permit(limiter, out) } {
            Ok(both) => both,
            Err(status) => return status,
        };
        // SAFETY: `token` is NULL or a live handle for the call (the caller's contract).
        let token = match unsafe { live_ref(token) } {
            Ok(token) => token,
            Err(status) => return status,
        };
        let limiter = &handle.limiter;
        // The future notices its deadline only when polled: sleep no longer than that.
        let park_for = || {
            (deadline_ns != Nanos::MAX)
                .then(|| Duration::from_nanos(deadline_ns.saturating_sub(limiter.clock().now())))
        };
        match token.block_on(limiter.acquire_with_deadline(deadline_ns), park_for) {
            Some(result) => wait(handle, result, out),
            None => {
                *out = valve_permit { limiter_id: handle.id, ..valve_permit::empty() };
                valve_status::VALVE_CANCELLED
            }
        }
    })
}

/// Sets the limit by hand, clamped to the algorithm's bounds, and stores the limit now in force
/// in `*out_limit` unless `out_limit` is NULL (it is optional).
///
/// Lowering the limit never revokes running work; an adaptive algorithm starts its next update
/// from this value. Answers `VALVE_OK` or `VALVE_NULL_POINTER` (NULL `limiter`). Thread-safe.
///
/// # Safety
///
/// `limiter` must be NULL or a live handle; `out_limit` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_set_limit(
    limiter: *const valve_limiter,
    limit: u32,
    out_limit: *mut u32,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: `limiter` is NULL or a live handle (the caller's contract).
        let handle = match unsafe { live_ref(limiter) } {
            Ok(handle) => handle,
            Err(status) => return status,
        };
        let in_force = handle.limiter.set_limit(limit);
        // SAFETY: `out_limit` is NULL or writable (the caller's contract).
        if let Some(out_limit) = unsafe { out_limit.as_mut() } {
            *out_limit = in_force;
        }
        valve_status::VALVE_OK
    })
}

/// Reads the limiter's counters and gauges into `*out`, without locks or allocation.
///
/// Fields are read one by one: under concurrent use they may come from slightly different
/// instants; when the limiter is quiescent `admitted == success + dropped + ignored +
/// in_flight`. Answers `VALVE_OK` or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `limiter` must be NULL or a live handle; `out` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_get_snapshot(
    limiter: *const valve_limiter,
    out: *mut LimiterSnapshot,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: `limiter` is NULL or a live handle (the caller's contract).
        let handle = match unsafe { live_ref(limiter) } {
            Ok(handle) => handle,
            Err(status) => return status,
        };
        // SAFETY: `out` is NULL or writable (the caller's contract).
        let Some(out) = (unsafe { out.as_mut() }) else {
            return valve_status::VALVE_NULL_POINTER;
        };
        *out = handle.limiter.snapshot();
        valve_status::VALVE_OK
    })
}

/// The id permits of this limiter carry in `limiter_id` (0 for NULL). Thread-safe.
///
/// # Safety
///
/// `limiter` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_id(limiter: *const valve_limiter) -> u64 {
    crate::ffi::boundary(0, || {
        // SAFETY: `limiter` is NULL or a live handle (the caller's contract).
        unsafe { live_ref(limiter) }.map_or(0, |handle| handle.id)
    })
}

/// For benchmarks of bindings: makes `iterations` acquire + release pairs through this
/// library's own entry points, as a C caller would (`valve_limiter_try_acquire_at` at
/// `start_ns + 100 * i`, then `valve_limiter_release_at` with success 50 ns later), and stores
/// the ns they took, by the library's clock, in `*out_ns`. That is the work of a binding's
/// acquire + release without the binding, measured in the binding's own process and run, so a
/// benchmark can subtract it. The pairs change the limiter as real calls would. Answers
/// `VALVE_OK` or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `limiter` must be NULL or a live handle; `out_ns` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_bench_pairs_at(
    limiter: *const valve_limiter,
    start_ns: u64,
    iterations: u64,
    out_ns: *mut u64,
) -> valve_status {
    type TryAcquireAt =
        unsafe extern "C" fn(*const valve_limiter, u64, *mut valve_permit) -> valve_status;
    type ReleaseAt =
        unsafe extern "C" fn(*const valve_limiter, *mut valve_permit, u32, u64) -> valve_status;
    // Hidden from the optimiser so each pair is two real calls, as from C.
    let acquire: TryAcquireAt = std::hint::black_box(valve_limiter_try_acquire_at);
    let release: ReleaseAt = std::hint::black_box(valve_limiter_release_at);
    bench_pairs(limiter, out_ns, |handle, permit| {
        let started = Instant::now();
        let mut now = start_ns;
        for _ in 0..iterations {
            // SAFETY: a live handle and a permit on this stack frame.
            unsafe {
                if acquire(handle, now, permit) == valve_status::VALVE_OK {
                    release(handle, permit, OUTCOME_SUCCESS, now.wrapping_add(50));
                }
            }
            now = now.wrapping_add(100);
        }
        started.elapsed()
    })
}

/// As `valve_limiter_bench_pairs_at` with `valve_limiter_try_acquire` and
/// `valve_limiter_release` (success), which read the limiter's clock. Thread-safe.
///
/// # Safety
///
/// As `valve_limiter_bench_pairs_at`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_limiter_bench_pairs(
    limiter: *const valve_limiter,
    iterations: u64,
    out_ns: *mut u64,
) -> valve_status {
    type TryAcquire = unsafe extern "C" fn(*const valve_limiter, *mut valve_permit) -> valve_status;
    type Release =
        unsafe extern "C" fn(*const valve_limiter, *mut valve_permit, u32) -> valve_status;
    let acquire: TryAcquire = std::hint::black_box(valve_limiter_try_acquire);
    let release: Release = std::hint::black_box(valve_limiter_release);
    bench_pairs(limiter, out_ns, |handle, permit| {
        let started = Instant::now();
        for _ in 0..iterations {
            // SAFETY: a live handle and a permit on this stack frame.
            unsafe {
                if acquire(handle, permit) == valve_status::VALVE_OK {
                    release(handle, permit, OUTCOME_SUCCESS);
                }
            }
        }
        started.elapsed()
    })
}

/// The checks and the result of both `bench_pairs` functions around `run`.
fn bench_pairs(
    limiter: *const valve_limiter,
    out_ns: *mut u64,
    run: impl FnOnce(*const valve_limiter, &mut valve_permit) -> Duration,
) -> valve_status {
    status_boundary(|| {
        if limiter.is_null() {
            return valve_status::VALVE_NULL_POINTER;
        }
        // SAFETY: `out_ns` is NULL or writable (the caller's contract).
        let Some(out_ns) = (unsafe { out_ns.as_mut() }) else {
            return valve_status::VALVE_NULL_POINTER;
        };
        let mut permit = valve_permit::empty();
        *out_ns = duration_to_nanos(run(limiter, &mut permit));
        valve_status::VALVE_OK
    })
}

/// The panic boundary for preset functions: a panic answers a config with an unknown
/// algorithm, which `valve_limiter_new` refuses, rather than a valid-looking one.
#[inline(always)]
fn preset_boundary(body: impl FnOnce() -> valve_limiter_config) -> valve_limiter_config {
    // Built without calling anything that could panic again.
    let refused = valve_limiter_config {
        algorithm: u32::MAX,
        fixed: valve_fixed_config { limit: 0 },
        aimd: valve_aimd_config::from_rust(&AimdConfig::netflix()),
        gradient2: valve_gradient2_config::from_rust(&Gradient2Config::netflix()),
        vegas: valve_vegas_config::from_rust(&VegasConfig::netflix()),
        envoy_gradient: valve_envoy_gradient_config::from_rust(&EnvoyGradientConfig::envoy()),
        queue: valve_queue_config::from_rust(&QueueConfig::default()),
    };
    crate::ffi::boundary(refused, body)
}

/// # Safety
///
/// `limiter` NULL or live; `permit` NULL or writable and not accessed by another thread during
/// the lifetime the caller picks (the length of one call).
#[inline(always)]
unsafe fn handle_and_permit<'a>(
    limiter: *const valve_limiter,
    permit: *mut valve_permit,
) -> Result<(&'a valve_limiter, &'a mut valve_permit), valve_status> {
    // SAFETY: `limiter` is NULL or a live handle, shared for the call.
    let handle = unsafe { live_ref(limiter) }?;
    // SAFETY: `permit` is NULL or writable and exclusively ours for the call.
    let permit = unsafe { permit.as_mut() }.ok_or(valve_status::VALVE_NULL_POINTER)?;
    Ok((handle, permit))
}

type HandlePermit<'a> = Permit<'a, Box<dyn LimitAlgorithm>, MonotonicClock>;

/// Moves a Rust permit's slot into the C struct.
#[inline(always)]
fn hand_over(handle: &valve_limiter, permit: HandlePermit<'_>, out: &mut valve_permit) {
    *out = valve_permit {
        limiter_id: handle.id,
        start_ns: permit.start(),
        in_flight: permit.in_flight_at_acquire(),
        state: PERMIT_HELD,
    };
    // The slot now belongs to `*out`; `release` returns it.
    std::mem::forget(permit);
}

fn wait(
    handle: &valve_limiter,
    result: Result<HandlePermit<'_>, AcquireError>,
    out: &mut valve_permit,
) -> valve_status {
    match result {
        Ok(permit) => {
            hand_over(handle, permit, out);
            valve_status::VALVE_OK
        }
        Err(AcquireError::Rejected(rejected)) => {
            *out = valve_permit {
                limiter_id: handle.id,
                in_flight: rejected.in_flight,
                ..valve_permit::empty()
            };
            valve_status::VALVE_REJECTED
        }
        Err(AcquireError::TimedOut) => {
            *out = valve_permit { limiter_id: handle.id, ..valve_permit::empty() };
            valve_status::VALVE_TIMEOUT
        }
    }
}

#[inline(always)]
fn acquire(handle: &valve_limiter, now: Nanos, out: &mut valve_permit) -> valve_status {
    match handle.limiter.try_acquire_at(now) {
        Ok(permit) => {
            hand_over(handle, permit, out);
            valve_status::VALVE_OK
        }
        Err(rejected) => {
            *out = valve_permit {
                limiter_id: handle.id,
                start_ns: now,
                in_flight: rejected.in_flight,
                ..valve_permit::empty()
            };
            valve_status::VALVE_REJECTED
        }
    }
}

#[inline(always)]
fn release(
    handle: &valve_limiter,
    permit: &mut valve_permit,
    outcome: u32,
    now: Nanos,
) -> valve_status {
    let outcome = match outcome {
        OUTCOME_SUCCESS => Outcome::Success,
        OUTCOME_DROPPED => Outcome::Dropped,
        OUTCOME_IGNORED => Outcome::Ignored,
        _ => return valve_status::VALVE_INVALID_ARGUMENT,
    };
    match permit.state {
        PERMIT_HELD => {}
        PERMIT_RELEASED | PERMIT_EMPTY => return valve_status::VALVE_STALE_PERMIT,
        _ => return valve_status::VALVE_INVALID_ARGUMENT,
    }
    if permit.limiter_id != handle.id {
        return valve_status::VALVE_FOREIGN_PERMIT;
    }
    // Marked first: the struct must never look held once its slot is back. A copy of an
    // already released permit still looks held; the checked release (one `fetch_sub`, the
    // Rust permit's own) refuses it when no slot is held at all, so in-flight cannot wrap
    // below 0, and refuses no racing acquire meanwhile (with other slots held it returns one
    // of theirs, as the permit's documentation warns).
    permit.state = PERMIT_RELEASED;
    if handle.limiter.release_at(permit.start_ns, permit.in_flight, outcome, now) {
        valve_status::VALVE_OK
    } else {
        valve_status::VALVE_STALE_PERMIT
    }
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;

    fn new_limiter(config: &valve_limiter_config) -> *mut valve_limiter {
        let mut handle = ptr::null_mut();
        // SAFETY: both pointers are valid.
        let status = unsafe { valve_limiter_new(config, &mut handle) };
        assert_eq!(status, valve_status::VALVE_OK);
        handle
    }

    fn snapshot(handle: *const valve_limiter) -> LimiterSnapshot {
        let mut snap = LimiterSnapshot::default();
        // SAFETY: a live handle and a valid out-pointer.
        assert_eq!(
            unsafe { valve_limiter_get_snapshot(handle, &mut snap) },
            valve_status::VALVE_OK
        );
        snap
    }

    #[test]
    fn presets_match_the_rust_presets() {
        assert_eq!(valve_limiter_config_default().aimd.to_rust(), AimdConfig::default());
        assert_eq!(valve_limiter_config_aimd_netflix().aimd.to_rust(), AimdConfig::netflix());
        let fixed = valve_limiter_config_fixed(7);
        assert_eq!((fixed.algorithm, fixed.fixed.limit), (ALGORITHM_FIXED, 7));
        let mut default = valve_limiter_config_default();
        default.algorithm = ALGORITHM_FIXED;
        assert!(default.build().is_ok(), "switching the default to FIXED stays valid");
    }

    #[test]
    fn acquire_release_and_double_release() {
        let handle = new_limiter(&valve_limiter_config_fixed(1));
        let mut permit = valve_permit::empty();
        let mut other = valve_permit::empty();
        // SAFETY (this block): a live handle and valid permit pointers throughout.
        unsafe {
            assert_eq!(
                valve_limiter_try_acquire_at(handle, 10, &mut permit),
                valve_status::VALVE_OK
            );
            assert_eq!((permit.state, permit.in_flight, permit.start_ns), (PERMIT_HELD, 1, 10));
            assert_eq!(
                valve_limiter_try_acquire_at(handle, 11, &mut other),
                valve_status::VALVE_REJECTED
            );
            assert_eq!((other.state, other.in_flight), (PERMIT_EMPTY, 1));
            assert_eq!(
                valve_limiter_release(handle, &mut other, 0),
                valve_status::VALVE_STALE_PERMIT
            );
            assert_eq!(
                valve_limiter_release_at(handle, &mut permit, 3, 20),
                valve_status::VALVE_INVALID_ARGUMENT
            );
            assert_eq!(
                valve_limiter_release_at(handle, &mut permit, 0, 20),
                valve_status::VALVE_OK
            );
            assert_eq!(permit.state, PERMIT_RELEASED);
            let before = snapshot(handle);
            assert_eq!(
                valve_limiter_release_at(handle, &mut permit, 0, 30),
                valve_status::VALVE_STALE_PERMIT
            );
            assert_eq!(snapshot(handle), before, "a second release changes nothing");
            assert_eq!((before.in_flight, before.success, before.rejected), (0, 1, 1));
            valve_limiter_free(handle);
        }
    }

    #[test]
    fn every_algorithm_preset_builds_and_matches_rust() {
        let presets = [
            valve_limiter_config_gradient2(),
            valve_limiter_config_gradient2_netflix(),
            valve_limiter_config_vegas(),
            valve_limiter_config_vegas_netflix(),
            valve_limiter_config_envoy_gradient(),
            valve_limiter_config_envoy_gradient_envoy(),
        ];
        for config in presets {
            // SAFETY: a live handle from `new_limiter`.
            unsafe { valve_limiter_free(new_limiter(&config)) };
        }
        assert_eq!(presets[1].gradient2.to_rust(), Ok(Gradient2Config::netflix()));
        assert_eq!(presets[3].vegas.to_rust(), Ok(VegasConfig::netflix()));
        assert_eq!(presets[5].envoy_gradient.to_rust(), Ok(EnvoyGradientConfig::envoy()));
        let mut config = valve_limiter_config_default();
        config.queue.reject_from = f64::INFINITY;
        assert!(config.build().is_err(), "the queue config is validated");
    }

    #[test]
    fn blocking_waits_time_out_or_are_refused() {
        let mut config = valve_limiter_config_fixed(1);
        let handle = new_limiter(&config);
        let mut held = valve_permit::empty();
        let mut waiter = valve_permit::empty();
        // SAFETY (this block): live handles and valid permit pointers throughout.
        unsafe {
            assert_eq!(valve_limiter_acquire_timeout(handle, 0, &mut held), valve_status::VALVE_OK);
            assert_eq!(held.state, PERMIT_HELD);
            assert_eq!(
                valve_limiter_acquire_timeout(handle, 1_000_000, &mut waiter),
                valve_status::VALVE_TIMEOUT
            );
            assert_eq!(waiter.state, PERMIT_EMPTY);
            let now = valve_limiter_now(handle);
            assert_eq!(
                valve_limiter_acquire_until(handle, now, &mut waiter),
                valve_status::VALVE_TIMEOUT
            );
            assert_eq!(snapshot(handle).timed_out, 2);
            assert_eq!(valve_limiter_release(handle, &mut held, 2), valve_status::VALVE_OK);
            assert_eq!(
                valve_limiter_acquire_until(handle, u64::MAX, &mut waiter),
                valve_status::VALVE_OK
            );
            assert_eq!(valve_limiter_release(handle, &mut waiter, 2), valve_status::VALVE_OK);
            valve_limiter_free(handle);

            config.queue.max_waiters = 0;
            let handle = new_limiter(&config);
            assert_eq!(valve_limiter_try_acquire(handle, &mut held), valve_status::VALVE_OK);
            assert_eq!(
                valve_limiter_acquire_timeout(handle, 1_000_000_000, &mut waiter),
                valve_status::VALVE_REJECTED
            );
            assert_eq!(valve_limiter_release(handle, &mut held, 2), valve_status::VALVE_OK);
            assert_eq!(
                valve_limiter_acquire_until(ptr::null(), 0, &mut waiter),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(
                valve_limiter_acquire_timeout(handle, 0, ptr::null_mut()),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(valve_limiter_now(ptr::null()), 0);
            valve_limiter_free(handle);
        }
    }

    #[test]
    fn cancellable_waits_end_on_cancel_deadline_or_grant() {
        use crate::ffi::{
            valve_cancel_token_cancel, valve_cancel_token_free, valve_cancel_token_new,
        };
        use std::time::Instant;

        struct Shared(*const valve_limiter, *mut valve_cancel_token);
        // SAFETY: both handles are thread-safe and outlive the threads that use them.
        unsafe impl Send for Shared {}
        // SAFETY: as above.
        unsafe impl Sync for Shared {}
        impl Shared {
            /// Waits with the token and no deadline; answers when the wait returned, too.
            fn wait(&self) -> (valve_status, valve_permit, Instant) {
                let mut permit = valve_permit::empty();
                // SAFETY: live handles (the test frees them after joining) and a local permit.
                let status = unsafe {
                    valve_limiter_acquire_cancellable(self.0, self.1, u64::MAX, &mut permit)
                };
                (status, permit, Instant::now())
            }
        }
        let until_queued = |handle| {
            while snapshot(handle).queued == 0 {
                std::thread::yield_now();
            }
        };

        let handle = new_limiter(&valve_limiter_config_fixed(1));
        let mut token = ptr::null_mut();
        let mut held = valve_permit::empty();
        let mut waiter = valve_permit::empty();
        // SAFETY (this block): live handles and valid pointers throughout; the token and the
        // limiter are freed after every thread using them has been joined.
        unsafe {
            assert_eq!(valve_cancel_token_new(&mut token), valve_status::VALVE_OK);
            assert_eq!(
                valve_limiter_acquire_cancellable(handle, token, u64::MAX, &mut held),
                valve_status::VALVE_OK,
                "a free slot is taken at once"
            );
            let deadline = valve_limiter_now(handle) + 2_000_000;
            assert_eq!(
                valve_limiter_acquire_cancellable(handle, token, deadline, &mut waiter),
                valve_status::VALVE_TIMEOUT
            );
            assert!(valve_limiter_now(handle) >= deadline, "not before its deadline");
            assert_eq!(snapshot(handle).timed_out, 1, "counted as the blocking waits count");

            let shared = Shared(handle, token);
            let cancelled_at = std::thread::scope(|scope| {
                let shared = &shared;
                let wait = scope.spawn(move || shared.wait());
                until_queued(handle);
                let cancelled_at = Instant::now();
                assert_eq!(valve_cancel_token_cancel(token), valve_status::VALVE_OK);
                let (status, permit, returned_at) = wait.join().unwrap();
                assert_eq!((status, permit.state), (valve_status::VALVE_CANCELLED, PERMIT_EMPTY));
                returned_at - cancelled_at
            });
            assert!(cancelled_at < Duration::from_secs(1), "woken, not polled: {cancelled_at:?}");
            assert_eq!(snapshot(handle).queued, 0, "the cancelled waiter left the queue");
            assert_eq!(
                valve_limiter_acquire_cancellable(handle, token, u64::MAX, &mut waiter),
                valve_status::VALVE_CANCELLED,
                "a cancelled token answers at once"
            );
            valve_cancel_token_free(token);

            assert_eq!(valve_cancel_token_new(&mut token), valve_status::VALVE_OK);
            let shared = Shared(handle, token);
            std::thread::scope(|scope| {
                let shared = &shared;
                let wait = scope.spawn(move || shared.wait());
                until_queued(handle);
                assert_eq!(valve_limiter_release(handle, &mut held, 2), valve_status::VALVE_OK);
                let (status, mut granted, _) = wait.join().unwrap();
                assert_eq!((status, granted.state), (valve_status::VALVE_OK, PERMIT_HELD));
                assert_eq!(valve_limiter_release(handle, &mut granted, 0), valve_status::VALVE_OK);
            });
            assert_eq!(
                valve_limiter_acquire_cancellable(handle, ptr::null(), 0, &mut waiter),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(
                valve_limiter_acquire_cancellable(ptr::null(), token, 0, &mut waiter),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(snapshot(handle).in_flight, 0);
            valve_cancel_token_free(token);
            valve_limiter_free(handle);
        }
    }

    #[test]
    fn bench_pairs_run_the_pairs_they_time() {
        let handle = new_limiter(&valve_limiter_config_fixed(1));
        let mut elapsed = 0;
        // SAFETY (this block): a live handle and valid out-pointers throughout.
        unsafe {
            assert_eq!(
                valve_limiter_bench_pairs_at(handle, 5, 10, &mut elapsed),
                valve_status::VALVE_OK
            );
            assert_eq!(valve_limiter_bench_pairs(handle, 10, &mut elapsed), valve_status::VALVE_OK);
            assert!(elapsed > 0);
            let snap = snapshot(handle);
            assert_eq!((snap.admitted, snap.success, snap.in_flight), (20, 20, 0));
            assert_eq!(
                valve_limiter_bench_pairs(ptr::null(), 1, &mut elapsed),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(
                valve_limiter_bench_pairs_at(handle, 0, 1, ptr::null_mut()),
                valve_status::VALVE_NULL_POINTER
            );
            valve_limiter_free(handle);
        }
    }

    #[test]
    fn a_released_copy_cannot_wrap_in_flight() {
        let handle = new_limiter(&valve_limiter_config_fixed(2));
        let mut permit = valve_permit::empty();
        // SAFETY (this block): a live handle and valid permit pointers throughout.
        unsafe {
            assert_eq!(
                valve_limiter_try_acquire_at(handle, 1, &mut permit),
                valve_status::VALVE_OK
            );
            let mut copy = permit;
            assert_eq!(valve_limiter_release_at(handle, &mut permit, 0, 2), valve_status::VALVE_OK);
            let before = snapshot(handle);
            assert_eq!(
                valve_limiter_release_at(handle, &mut copy, 0, 3),
                valve_status::VALVE_STALE_PERMIT
            );
            assert_eq!(copy.state, PERMIT_RELEASED);
            assert_eq!(snapshot(handle), before, "nothing in flight: the copy changes nothing");
            assert_eq!((before.in_flight, before.limit), (0, 2));
            valve_limiter_free(handle);
        }
    }

    /// Threads release copies of their released permits while others acquire and release:
    /// every refused release happens with nothing held, so in-flight never wraps into the limit
    /// bits, no acquire is admitted past the limit, and in-flight ends equal to the slots taken
    /// minus the slots returned (a copy may return another holder's slot, never an extra one).
    #[test]
    fn released_copies_racing_real_permits_keep_the_count_exact() {
        const LIMIT: u32 = 3;
        const ROUNDS: u32 = 20_000;
        struct Shared(*mut valve_limiter);
        // SAFETY: the handle is used through its thread-safe entry points only, and freed after
        // every thread has joined.
        unsafe impl Sync for Shared {}
        let handle = Shared(new_limiter(&valve_limiter_config_fixed(LIMIT)));
        let (taken, returned) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let handle = &handle;
                    scope.spawn(move || {
                        let (mut taken, mut returned) = (0u32, 0u32);
                        let mut permit = valve_permit::empty();
                        for round in 0..ROUNDS {
                            // SAFETY: a live handle and this thread's own permit structs.
                            unsafe {
                                if valve_limiter_try_acquire_at(handle.0, 1, &mut permit)
                                    != valve_status::VALVE_OK
                                {
                                    assert!(permit.in_flight >= LIMIT, "refused below the limit");
                                    continue;
                                }
                                assert!(permit.in_flight <= LIMIT, "admitted past the limit");
                                taken += 1;
                                let mut copy = permit;
                                for held in [&mut permit, &mut copy]
                                    .into_iter()
                                    .take(if round % 2 == 0 { 2 } else { 1 })
                                {
                                    match valve_limiter_release_at(handle.0, held, 0, 2) {
                                        valve_status::VALVE_OK => returned += 1,
                                        valve_status::VALVE_STALE_PERMIT => {}
                                        other => panic!("unexpected {other:?}"),
                                    }
                                }
                            }
                        }
                        (taken, returned)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .fold((0, 0), |(t, r), (wt, wr)| (t + wt, r + wr))
        });
        let end = snapshot(handle.0);
        assert_eq!(end.limit, LIMIT, "the limit bits never took a borrow");
        assert_eq!(end.in_flight, taken - returned);
        assert!(end.in_flight <= LIMIT);
        // SAFETY: every thread has joined; freed once.
        unsafe { valve_limiter_free(handle.0) }
    }

    #[test]
    fn foreign_and_forged_permits_change_nothing() {
        let a = new_limiter(&valve_limiter_config_default());
        let b = new_limiter(&valve_limiter_config_default());
        let mut permit = valve_permit::empty();
        // SAFETY (this block): live handles and valid pointers throughout.
        unsafe {
            assert_eq!(valve_limiter_try_acquire(a, &mut permit), valve_status::VALVE_OK);
            assert_eq!(permit.limiter_id, valve_limiter_id(a));
            assert_eq!(
                valve_limiter_release(b, &mut permit, 0),
                valve_status::VALVE_FOREIGN_PERMIT
            );
            let mut forged = permit;
            forged.state = 77;
            assert_eq!(
                valve_limiter_release(a, &mut forged, 0),
                valve_status::VALVE_INVALID_ARGUMENT
            );
            assert_eq!(snapshot(a).in_flight, 1);
            assert_eq!(valve_limiter_release(a, &mut permit, 2), valve_status::VALVE_OK);
            assert_eq!(snapshot(a).ignored, 1);
            valve_limiter_free(a);
            valve_limiter_free(b);
        }
    }

    #[test]
    fn null_pointers_and_invalid_configs() {
        let mut config = valve_limiter_config_default();
        let mut handle = ptr::null_mut();
        let mut permit = valve_permit::empty();
        // SAFETY (this block): every non-null pointer is valid.
        unsafe {
            assert_eq!(
                valve_limiter_new(ptr::null(), &mut handle),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(
                valve_limiter_new(&config, ptr::null_mut()),
                valve_status::VALVE_NULL_POINTER
            );
            config.algorithm = 99;
            assert_eq!(
                valve_limiter_new(&config, &mut handle),
                valve_status::VALVE_INVALID_ARGUMENT
            );
            config = valve_limiter_config_default();
            config.aimd.backoff_ratio = f64::NAN;
            assert_eq!(
                valve_limiter_new(&config, &mut handle),
                valve_status::VALVE_INVALID_ARGUMENT
            );
            assert!(handle.is_null());
            assert_eq!(
                valve_limiter_try_acquire(ptr::null(), &mut permit),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(
                valve_limiter_release(ptr::null(), &mut permit, 0),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(
                valve_limiter_set_limit(ptr::null(), 5, ptr::null_mut()),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(valve_limiter_id(ptr::null()), 0);
            valve_limiter_free(ptr::null_mut());
        }
    }

    #[test]
    fn set_limit_clamps_to_the_bounds() {
        let handle = new_limiter(&valve_limiter_config_aimd_netflix());
        let mut in_force = 0;
        // SAFETY: a live handle and a valid out-pointer.
        unsafe {
            assert_eq!(valve_limiter_set_limit(handle, 5, &mut in_force), valve_status::VALVE_OK);
            assert_eq!(in_force, 20);
            assert_eq!(
                valve_limiter_set_limit(handle, 50, ptr::null_mut()),
                valve_status::VALVE_OK
            );
            assert_eq!(snapshot(handle).limit, 50);
            valve_limiter_free(handle);
        }
    }
}
