//! The circuit breaker through the C ABI: `valve_breaker`, its config and presets, permits.
//!
//! A C permit is a plain [`valve_breaker_permit`] holding the breaker's
//! [`BreakerToken`](crate::BreakerToken) (from [`BreakerPermit::into_token`]) plus the handle's
//! id and a state, like the limiter's `valve_permit`: reporting the same struct twice answers
//! `VALVE_STALE_PERMIT` and changes nothing. A copy reported again cannot corrupt the breaker
//! either: its generation has passed (counted as late) or its half-open episode has no probe
//! in flight left (refused).
//!
//! [`BreakerPermit::into_token`]: crate::BreakerPermit::into_token

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::breaker::{
    Breaker, BreakerConfig, BreakerOutcome, BreakerSnapshot, BreakerState, BreakerToken, CloseRule,
    HalfOpenConfig, HalfOpenTimeoutTarget, OpenBackoff, OpenBoundary, RateCheck, SlidingWindow,
};
use crate::clock::{Clock, Nanos, duration_to_nanos};
use crate::error::ConfigError;
use crate::ffi::{
    boundary, free_handle, new_handle, valve_permit_state, valve_status, with_handle, write_out,
};

/// A breaker's states, as `valve_breaker_get_state` and `valve_breaker_snapshot.state` report
/// them and `valve_breaker_transition_to` takes them.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_breaker_state {
    /// Calls go through; results feed the trip policies.
    VALVE_BREAKER_CLOSED = 0,
    /// Calls are refused until the open duration has passed.
    VALVE_BREAKER_OPEN = 1,
    /// A limited number of probe calls go through.
    VALVE_BREAKER_HALF_OPEN = 2,
    /// Calls go through and nothing is recorded (manual).
    VALVE_BREAKER_DISABLED = 3,
    /// Calls are refused until a manual transition.
    VALVE_BREAKER_FORCED_OPEN = 4,
    /// Calls go through and are recorded, but the breaker never trips (manual).
    VALVE_BREAKER_METRICS_ONLY = 5,
}

/// How a call made through a breaker ended, for `valve_breaker_record`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_breaker_outcome {
    /// The dependency answered well.
    VALVE_BREAKER_SUCCESS = 0,
    /// The dependency failed.
    VALVE_BREAKER_FAILURE = 1,
    /// No signal (cancelled, bad request): gives a half-open probe its place back.
    VALVE_BREAKER_IGNORED = 2,
}

/// The window the rates are computed over, for `valve_breaker_config.window_kind`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_breaker_window {
    /// The last `window_calls` calls.
    VALVE_BREAKER_WINDOW_COUNT = 0,
    /// The last `window_buckets` buckets of `window_bucket_ns` each.
    VALVE_BREAKER_WINDOW_TIME = 1,
}

/// What closes a half-open breaker, for `valve_breaker_config.half_open_close_rule`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_breaker_close_rule {
    /// Close after `half_open_close_count` probe successes; the first failure reopens.
    VALVE_BREAKER_CLOSE_CONSECUTIVE_SUCCESSES = 0,
    /// Decide once `half_open_close_count` probes reported, by the rates (resilience4j).
    VALVE_BREAKER_CLOSE_RATE = 1,
}

/// A circuit breaker's configuration (durations in ns). Fill it with a preset, then change
/// fields; `valve_breaker_new` validates it as `Breaker::new` does.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_breaker_config {
    /// Trip after this many failures in a row (`>=`); 0: off.
    pub consecutive_failures: u32,
    /// Trip when failures / calls in the window reaches this ratio, in `(0, 1]`; 0: off.
    pub failure_rate: f64,
    /// Trip when slow calls / calls reaches this ratio, in `(0, 1]`; 0: off.
    pub slow_call_rate: f64,
    /// A call is slow when its duration is strictly above this; `UINT64_MAX`: none is.
    pub slow_call_duration_ns: u64,
    /// One of `valve_breaker_window`.
    pub window_kind: u32,
    /// COUNT: window size in calls, `1..=1048576`.
    pub window_calls: u32,
    /// TIME: number of buckets, `1..=1024`.
    pub window_buckets: u32,
    /// TIME: width of one bucket, ns, above 0.
    pub window_bucket_ns: u64,
    /// Calls the window must hold before a rate can trip, at least 1.
    pub minimum_calls: u32,
    /// 0: rates checked after every call (resilience4j); 1: only after a failure or slow call
    /// (Polly).
    pub rate_check: u32,
    /// The first open duration, ns, above 0.
    pub open_base_ns: u64,
    /// Growth of the open duration per consecutive open, at least 1.
    pub open_multiplier: f64,
    /// The open duration's cap before jitter, ns, at least `open_base_ns`.
    pub open_max_ns: u64,
    /// Fraction of the open duration jitter may take off, in `[0, 1]`.
    pub open_jitter: f64,
    /// 0: Open turns half-open once `now > deadline`; 1: once `now >= deadline`.
    pub open_boundary: u32,
    /// Probes admitted per half-open episode.
    pub half_open_probes: u32,
    /// Probes in flight at once, `1..=half_open_probes`.
    pub half_open_max_concurrent: u32,
    /// One of `valve_breaker_close_rule`.
    pub half_open_close_rule: u32,
    /// The successes (CONSECUTIVE_SUCCESSES) or results (RATE) the close rule needs.
    pub half_open_close_count: u32,
    /// How long a half-open episode may last, ns; 0: forever.
    pub half_open_timeout_ns: u64,
    /// The state a timed-out episode becomes: `VALVE_BREAKER_OPEN` or `VALVE_BREAKER_CLOSED`.
    pub half_open_on_timeout: u32,
}

/// The right to make one call through a breaker, written by an acquire and consumed by
/// `valve_breaker_record`. A plain value in caller memory; nothing is allocated for it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct valve_breaker_permit {
    /// The id of the breaker that admitted it (never reused within a process).
    pub breaker_id: u64,
    /// The state generation it was admitted in (64 bits: it never repeats in practice).
    pub generation: u64,
    /// When it was admitted, ns on the breaker's timeline.
    pub start_ns: u64,
    /// The `valve_breaker_state` it was admitted in.
    pub admitted_in: u32,
    /// One of `valve_permit_state`.
    pub state: u32,
}

/// A circuit breaker. Opaque; created by `valve_breaker_new`, freed by `valve_breaker_free`.
/// Every function taking a `const valve_breaker *` is thread-safe; only `_free` needs
/// exclusive access.
pub struct valve_breaker {
    id: u64,
    breaker: Breaker,
}

/// Handle ids start at 1, so a zeroed permit never names a live breaker.
static NEXT_BREAKER_ID: AtomicU64 = AtomicU64::new(1);

const PERMIT_EMPTY: u32 = valve_permit_state::VALVE_PERMIT_EMPTY as u32;
const PERMIT_HELD: u32 = valve_permit_state::VALVE_PERMIT_HELD as u32;
const PERMIT_RELEASED: u32 = valve_permit_state::VALVE_PERMIT_RELEASED as u32;
const WINDOW_COUNT: u32 = valve_breaker_window::VALVE_BREAKER_WINDOW_COUNT as u32;
const WINDOW_TIME: u32 = valve_breaker_window::VALVE_BREAKER_WINDOW_TIME as u32;
const CLOSE_CONSECUTIVE: u32 =
    valve_breaker_close_rule::VALVE_BREAKER_CLOSE_CONSECUTIVE_SUCCESSES as u32;
const CLOSE_RATE: u32 = valve_breaker_close_rule::VALVE_BREAKER_CLOSE_RATE as u32;

fn zero_is_none(value: f64) -> Option<f64> {
    (value != 0.0).then_some(value)
}

fn unknown(field: &'static str, value: u32, expected: &'static str) -> ConfigError {
    ConfigError::out_of_range(field, value, expected)
}

impl valve_breaker_config {
    fn from_rust(config: &BreakerConfig) -> Self {
        let (window_kind, window_calls, window_buckets, window_bucket_ns) = match config.window {
            SlidingWindow::Count { calls } => (WINDOW_COUNT, calls, 0, 0),
            SlidingWindow::Time { buckets, bucket } => {
                (WINDOW_TIME, 0, buckets, duration_to_nanos(bucket))
            }
        };
        let half_open = &config.half_open;
        let (half_open_close_rule, half_open_close_count) = match half_open.close_rule {
            CloseRule::ConsecutiveSuccesses(n) => (CLOSE_CONSECUTIVE, n),
            CloseRule::Rate { results } => (CLOSE_RATE, results),
        };
        Self {
            consecutive_failures: config.consecutive_failures.unwrap_or(0),
            failure_rate: config.failure_rate.unwrap_or(0.0),
            slow_call_rate: config.slow_call_rate.unwrap_or(0.0),
            slow_call_duration_ns: config.slow_call_duration.map_or(u64::MAX, duration_to_nanos),
            window_kind,
            window_calls,
            window_buckets,
            window_bucket_ns,
            minimum_calls: config.minimum_calls,
            rate_check: config.rate_check as u32,
            open_base_ns: duration_to_nanos(config.open.base),
            open_multiplier: config.open.multiplier,
            open_max_ns: duration_to_nanos(config.open.max),
            open_jitter: config.open.jitter,
            open_boundary: config.open_boundary as u32,
            half_open_probes: half_open.probes,
            half_open_max_concurrent: half_open.max_concurrent,
            half_open_close_rule,
            half_open_close_count,
            half_open_timeout_ns: half_open.timeout.map_or(0, duration_to_nanos),
            half_open_on_timeout: BreakerState::from(half_open.on_timeout) as u32,
        }
    }

    fn to_rust(self) -> Result<BreakerConfig, ConfigError> {
        let window = match self.window_kind {
            WINDOW_COUNT => SlidingWindow::Count { calls: self.window_calls },
            WINDOW_TIME => SlidingWindow::Time {
                buckets: self.window_buckets,
                bucket: Duration::from_nanos(self.window_bucket_ns),
            },
            other => return Err(unknown("window_kind", other, "valve_breaker_window")),
        };
        let rate_check = match self.rate_check {
            0 => RateCheck::EveryCall,
            1 => RateCheck::FailureOnly,
            other => return Err(unknown("rate_check", other, "0 or 1")),
        };
        let open_boundary = match self.open_boundary {
            0 => OpenBoundary::Strict,
            1 => OpenBoundary::Inclusive,
            other => return Err(unknown("open_boundary", other, "0 or 1")),
        };
        let close_rule = match self.half_open_close_rule {
            CLOSE_CONSECUTIVE => CloseRule::ConsecutiveSuccesses(self.half_open_close_count),
            CLOSE_RATE => CloseRule::Rate { results: self.half_open_close_count },
            other => {
                return Err(unknown("half_open_close_rule", other, "valve_breaker_close_rule"));
            }
        };
        let on_timeout = match BreakerState::from_code(self.half_open_on_timeout) {
            Some(BreakerState::Open) => HalfOpenTimeoutTarget::Open,
            Some(BreakerState::Closed) => HalfOpenTimeoutTarget::Closed,
            _ => {
                return Err(unknown(
                    "half_open_on_timeout",
                    self.half_open_on_timeout,
                    "OPEN or CLOSED",
                ));
            }
        };
        Ok(BreakerConfig {
            consecutive_failures: (self.consecutive_failures != 0)
                .then_some(self.consecutive_failures),
            failure_rate: zero_is_none(self.failure_rate),
            slow_call_rate: zero_is_none(self.slow_call_rate),
            slow_call_duration: (self.slow_call_duration_ns != u64::MAX)
                .then(|| Duration::from_nanos(self.slow_call_duration_ns)),
            window,
            minimum_calls: self.minimum_calls,
            rate_check,
            open: OpenBackoff {
                base: Duration::from_nanos(self.open_base_ns),
                multiplier: self.open_multiplier,
                max: Duration::from_nanos(self.open_max_ns),
                jitter: self.open_jitter,
            },
            open_boundary,
            half_open: HalfOpenConfig {
                probes: self.half_open_probes,
                max_concurrent: self.half_open_max_concurrent,
                close_rule,
                timeout: (self.half_open_timeout_ns != 0)
                    .then(|| Duration::from_nanos(self.half_open_timeout_ns)),
                on_timeout,
            },
        })
    }
}

/// A panicking preset answers this config, which `valve_breaker_new` refuses.
const REFUSED: valve_breaker_config = valve_breaker_config {
    consecutive_failures: 0,
    failure_rate: 0.0,
    slow_call_rate: 0.0,
    slow_call_duration_ns: u64::MAX,
    window_kind: u32::MAX,
    window_calls: 0,
    window_buckets: 0,
    window_bucket_ns: 0,
    minimum_calls: 0,
    rate_check: u32::MAX,
    open_base_ns: 0,
    open_multiplier: 0.0,
    open_max_ns: 0,
    open_jitter: 0.0,
    open_boundary: u32::MAX,
    half_open_probes: 0,
    half_open_max_concurrent: 0,
    half_open_close_rule: u32::MAX,
    half_open_close_count: 0,
    half_open_timeout_ns: 0,
    half_open_on_timeout: u32::MAX,
};

fn preset(config: impl FnOnce() -> BreakerConfig) -> valve_breaker_config {
    boundary(REFUSED, || valve_breaker_config::from_rust(&config()))
}

/// valve's defaults: 50 % failures over a 10 s window (at least 20 calls) or 5 in a row; open
/// 5 s backing off to 60 s with 20 % jitter; 3 probes one at a time; 30 s half-open timeout.
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_breaker_config_default() -> valve_breaker_config {
    preset(BreakerConfig::default)
}

/// resilience4j's `CircuitBreakerConfig` defaults. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_breaker_config_resilience4j() -> valve_breaker_config {
    preset(BreakerConfig::resilience4j)
}

/// gobreaker's defaults. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_breaker_config_gobreaker() -> valve_breaker_config {
    preset(BreakerConfig::gobreaker)
}

/// Polly's `CircuitBreakerStrategyOptions` defaults. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_breaker_config_polly() -> valve_breaker_config {
    preset(BreakerConfig::polly)
}

/// Hystrix's defaults. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_breaker_config_hystrix() -> valve_breaker_config {
    preset(BreakerConfig::hystrix)
}

/// Creates a breaker from `config` into `*out`, reading a monotonic clock whose origin is now.
/// Answers `VALVE_OK`, `VALVE_INVALID_ARGUMENT` (an unknown enumeration value or a config
/// `Breaker::new` refuses) or `VALVE_NULL_POINTER`; on failure `*out` is NULL. Thread-safe.
///
/// # Safety
///
/// `config` must be NULL or readable; `out` NULL or writable for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_new(
    config: *const valve_breaker_config,
    out: *mut *mut valve_breaker,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        new_handle(out, || {
            // SAFETY: NULL or readable (the caller's contract).
            let config = config.as_ref().ok_or(valve_status::VALVE_NULL_POINTER)?;
            let breaker = config
                .to_rust()
                .and_then(Breaker::new)
                .map_err(|_| valve_status::VALVE_INVALID_ARGUMENT)?;
            Ok(valve_breaker { id: NEXT_BREAKER_ID.fetch_add(1, Ordering::Relaxed), breaker })
        })
    }
}

/// Frees a breaker; NULL is a no-op. Not thread-safe: nothing else may use it. Permits still
/// held become foreign to every live breaker.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle, unused by any other call now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_free(breaker: *mut valve_breaker) {
    // SAFETY: forwarded caller contract.
    unsafe { free_handle(breaker) }
}

/// May a call go now? Reads the breaker's clock. Answers `VALVE_OK` with a held permit in
/// `*out` (report it with `valve_breaker_record`), `VALVE_REJECTED` with an empty permit when
/// the breaker is open, forced open or out of half-open probes, or `VALVE_NULL_POINTER`.
/// Thread-safe.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle; `out` NULL or writable and not accessed by another
/// thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_try_acquire(
    breaker: *const valve_breaker,
    out: *mut valve_breaker_permit,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(breaker, |b| acquire(b, b.breaker.clock().now(), out)) }
}

/// As `valve_breaker_try_acquire` at `now_ns` (the breaker's timeline: ns since its creation).
/// Thread-safe.
///
/// # Safety
///
/// As `valve_breaker_try_acquire`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_try_acquire_at(
    breaker: *const valve_breaker,
    now_ns: u64,
    out: *mut valve_breaker_permit,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(breaker, |b| acquire(b, now_ns, out)) }
}

/// Reports how a permitted call ended (`outcome`, a `valve_breaker_outcome`), reading the
/// breaker's clock for its duration.
///
/// Checks, in this order: pointers (`VALVE_NULL_POINTER`), the outcome
/// (`VALVE_INVALID_ARGUMENT`), the permit's state (`VALVE_STALE_PERMIT` if reported or empty,
/// `VALVE_INVALID_ARGUMENT` if not a `valve_permit_state`), its breaker
/// (`VALVE_FOREIGN_PERMIT`); any error changes nothing. On `VALVE_OK` the result is recorded
/// and `permit->state` becomes `VALVE_PERMIT_RELEASED`. A result from an older state
/// generation is counted as late and moves nothing. Thread-safe for the breaker; a given
/// permit must not be reported by two threads at once.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle; `permit` NULL or writable and not accessed by
/// another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_record(
    breaker: *const valve_breaker,
    permit: *mut valve_breaker_permit,
    outcome: u32,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(breaker, |b| record(b, permit, outcome, b.breaker.clock().now())) }
}

/// As `valve_breaker_record`, the call having ended at `now_ns`. Thread-safe.
///
/// # Safety
///
/// As `valve_breaker_record`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_record_at(
    breaker: *const valve_breaker,
    permit: *mut valve_breaker_permit,
    outcome: u32,
    now_ns: u64,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(breaker, |b| record(b, permit, outcome, now_ns)) }
}

/// The current state (a `valve_breaker_state`) into `*out`, making no transition: an Open
/// breaker past its deadline reads Open until a call or `valve_breaker_poll_at` finds it.
/// Answers `VALVE_OK` or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_get_state(
    breaker: *const valve_breaker,
    out: *mut u32,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(breaker, |b| write_out(out, b.breaker.state() as u32)) }
}

/// Makes the transitions due at `now_ns` (Open to HalfOpen, a half-open timeout) and stores
/// the state after them in `*out`. For callers keeping a timer from
/// `valve_breaker_next_transition_at`. Answers `VALVE_OK` or `VALVE_NULL_POINTER` (nothing
/// changes). Thread-safe.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_poll_at(
    breaker: *const valve_breaker,
    now_ns: u64,
    out: *mut u32,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        with_handle(breaker, |b| {
            if out.is_null() {
                return valve_status::VALVE_NULL_POINTER;
            }
            write_out(out, b.breaker.poll_at(now_ns) as u32)
        })
    }
}

/// When the next lazy transition becomes due (ns on the breaker's timeline) into `*out`:
/// the end of the open duration or the half-open timeout; `UINT64_MAX` when none is scheduled.
/// Answers `VALVE_OK` or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_next_transition_at(
    breaker: *const valve_breaker,
    out: *mut u64,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        with_handle(breaker, |b| write_out(out, b.breaker.next_transition_at().unwrap_or(u64::MAX)))
    }
}

/// Moves the breaker to `to` (a `valve_breaker_state`) by hand at `now_ns`, in a new
/// generation; `*out_moved` (optional, may be NULL) tells whether it moved (false if it was
/// already in `to`). Answers `VALVE_OK`, `VALVE_INVALID_ARGUMENT` for an unknown state, or
/// `VALVE_NULL_POINTER`. Outstanding permits become late. Thread-safe.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle; `out_moved` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_transition_to_at(
    breaker: *const valve_breaker,
    to: u32,
    now_ns: u64,
    out_moved: *mut bool,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(breaker, |b| transition(b, to, now_ns, out_moved)) }
}

/// As `valve_breaker_transition_to_at`, reading the breaker's clock. Thread-safe.
///
/// # Safety
///
/// As `valve_breaker_transition_to_at`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_transition_to(
    breaker: *const valve_breaker,
    to: u32,
    out_moved: *mut bool,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(breaker, |b| transition(b, to, b.breaker.clock().now(), out_moved)) }
}

/// Closes the breaker whatever its state, in a new generation, with empty windows and the
/// open backoff reset (resilience4j `reset`), reading its clock. Outstanding permits become
/// late. Answers `VALVE_OK` or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_reset(breaker: *const valve_breaker) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        with_handle(breaker, |b| {
            b.breaker.reset();
            valve_status::VALVE_OK
        })
    }
}

/// As `valve_breaker_reset` at `now_ns`. Thread-safe.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_reset_at(
    breaker: *const valve_breaker,
    now_ns: u64,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        with_handle(breaker, |b| {
            b.breaker.reset_at(now_ns);
            valve_status::VALVE_OK
        })
    }
}

/// Reads the breaker's state, counters and gauges into `*out`, without locks or allocation.
/// Answers `VALVE_OK` or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_get_snapshot(
    breaker: *const valve_breaker,
    out: *mut BreakerSnapshot,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(breaker, |b| write_out(out, b.breaker.snapshot())) }
}

/// The id permits of this breaker carry in `breaker_id` (0 for NULL). Thread-safe.
///
/// # Safety
///
/// `breaker` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_breaker_id(breaker: *const valve_breaker) -> u64 {
    boundary(0, || {
        // SAFETY: NULL or a live handle (the caller's contract).
        unsafe { crate::ffi::live_ref(breaker) }.map_or(0, |b| b.id)
    })
}

/// # Safety
///
/// `out` must be NULL or writable and ours for the call.
unsafe fn acquire(b: &valve_breaker, now: Nanos, out: *mut valve_breaker_permit) -> valve_status {
    // SAFETY: NULL or writable (the caller's contract).
    let Some(out) = (unsafe { out.as_mut() }) else {
        return valve_status::VALVE_NULL_POINTER;
    };
    match b.breaker.try_acquire_at(now) {
        Ok(permit) => {
            let token = permit.into_token();
            *out = valve_breaker_permit {
                breaker_id: b.id,
                generation: token.generation,
                admitted_in: token.admitted_in,
                start_ns: token.start,
                state: PERMIT_HELD,
            };
            valve_status::VALVE_OK
        }
        Err(rejected) => {
            *out = valve_breaker_permit {
                breaker_id: b.id,
                generation: 0,
                admitted_in: rejected.state as u32,
                start_ns: now,
                state: PERMIT_EMPTY,
            };
            valve_status::VALVE_REJECTED
        }
    }
}

/// # Safety
///
/// `permit` must be NULL or writable and ours for the call.
unsafe fn record(
    b: &valve_breaker,
    permit: *mut valve_breaker_permit,
    outcome: u32,
    now: Nanos,
) -> valve_status {
    // SAFETY: NULL or writable (the caller's contract).
    let Some(permit) = (unsafe { permit.as_mut() }) else {
        return valve_status::VALVE_NULL_POINTER;
    };
    let outcome = match outcome {
        0 => BreakerOutcome::Success,
        1 => BreakerOutcome::Failure,
        2 => BreakerOutcome::Ignored,
        _ => return valve_status::VALVE_INVALID_ARGUMENT,
    };
    match permit.state {
        PERMIT_HELD => {}
        PERMIT_RELEASED | PERMIT_EMPTY => return valve_status::VALVE_STALE_PERMIT,
        _ => return valve_status::VALVE_INVALID_ARGUMENT,
    }
    if permit.breaker_id != b.id {
        return valve_status::VALVE_FOREIGN_PERMIT;
    }
    permit.state = PERMIT_RELEASED;
    let token = BreakerToken {
        generation: permit.generation,
        admitted_in: permit.admitted_in,
        start: permit.start_ns,
    };
    b.breaker.record_token_at(token, outcome, now);
    valve_status::VALVE_OK
}

/// # Safety
///
/// `out_moved` must be NULL or writable.
unsafe fn transition(b: &valve_breaker, to: u32, now: Nanos, out_moved: *mut bool) -> valve_status {
    let Some(to) = BreakerState::from_code(to) else {
        return valve_status::VALVE_INVALID_ARGUMENT;
    };
    let moved = b.breaker.transition_to_at(to, now);
    // SAFETY: NULL or writable (the caller's contract); NULL means the caller does not ask.
    if let Some(out_moved) = unsafe { out_moved.as_mut() } {
        *out_moved = moved;
    }
    valve_status::VALVE_OK
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;

    fn empty() -> valve_breaker_permit {
        valve_breaker_permit { breaker_id: 0, generation: 0, start_ns: 0, admitted_in: 0, state: 0 }
    }

    #[test]
    fn presets_round_trip() {
        for (c, rust) in [
            (valve_breaker_config_default(), BreakerConfig::default()),
            (valve_breaker_config_resilience4j(), BreakerConfig::resilience4j()),
            (valve_breaker_config_gobreaker(), BreakerConfig::gobreaker()),
            (valve_breaker_config_polly(), BreakerConfig::polly()),
            (valve_breaker_config_hystrix(), BreakerConfig::hystrix()),
        ] {
            assert_eq!(c.to_rust(), Ok(rust));
        }
        let mut bad = valve_breaker_config_default();
        bad.half_open_on_timeout = valve_breaker_state::VALVE_BREAKER_HALF_OPEN as u32;
        assert!(bad.to_rust().is_err());
    }

    #[test]
    fn trips_refuses_and_reports_once() {
        let mut config = valve_breaker_config_default();
        config.consecutive_failures = 2;
        let mut handle = ptr::null_mut();
        let mut permit = empty();
        let mut state = 99;
        // SAFETY (this block): valid pointers; the handle is live until freed.
        unsafe {
            assert_eq!(valve_breaker_new(&config, &mut handle), valve_status::VALVE_OK);
            for t in [10, 20] {
                assert_eq!(
                    valve_breaker_try_acquire_at(handle, t, &mut permit),
                    valve_status::VALVE_OK
                );
                assert_eq!(
                    valve_breaker_record_at(handle, &mut permit, 1, t + 1),
                    valve_status::VALVE_OK
                );
                assert_eq!(
                    valve_breaker_record_at(handle, &mut permit, 1, t + 1),
                    valve_status::VALVE_STALE_PERMIT
                );
            }
            assert_eq!(valve_breaker_get_state(handle, &mut state), valve_status::VALVE_OK);
            assert_eq!(state, valve_breaker_state::VALVE_BREAKER_OPEN as u32);
            assert_eq!(
                valve_breaker_try_acquire_at(handle, 30, &mut permit),
                valve_status::VALVE_REJECTED
            );
            assert_eq!(permit.state, PERMIT_EMPTY);
            let mut due = 0;
            assert_eq!(valve_breaker_next_transition_at(handle, &mut due), valve_status::VALVE_OK);
            assert!(due > 30 && due != u64::MAX);
            assert_eq!(valve_breaker_poll_at(handle, due + 1, &mut state), valve_status::VALVE_OK);
            assert_eq!(state, valve_breaker_state::VALVE_BREAKER_HALF_OPEN as u32);
            assert_eq!(
                valve_breaker_transition_to_at(handle, 6, 0, ptr::null_mut()),
                valve_status::VALVE_INVALID_ARGUMENT
            );
            let mut moved = false;
            assert_eq!(
                valve_breaker_transition_to_at(handle, 4, due + 2, &mut moved),
                valve_status::VALVE_OK
            );
            assert!(moved);
            assert_eq!(valve_breaker_reset_at(handle, due + 3), valve_status::VALVE_OK);
            let mut snap = BreakerSnapshot::default();
            assert_eq!(valve_breaker_get_snapshot(handle, &mut snap), valve_status::VALVE_OK);
            assert_eq!((snap.state, snap.failures, snap.to_open), (0, 2, 1));
            valve_breaker_free(handle);
        }
    }
}
