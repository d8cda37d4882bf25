//! # valve: overload control on a lock-free core
//!
//! valve answers one question, very fast and from any thread: *may this unit of work go now?*
//! Each control contains one way backend systems fail under pressure:
//!
//! | control | failure mode it contains | learns from |
//! |---|---|---|
//! | [`Limiter`] with a [`LimitAlgorithm`] | queue growth: admitted work beyond capacity waits, times out, cascades | latency and drops of completed work |
//! | retry budgets ([`TokenQuota`], [`WindowedBudget`], [`ConcurrencyBudget`]) and [`Backoff`] | retry storms: retries multiply the load on a struggling dependency | successes, requests and retries in flight |
//! | [`Breaker`] | traffic sent to an unhealthy dependency | failure rate, slow-call rate, failures in a row |
//!
//! ## Map of the crate
//!
//! | module | what it holds |
//! |---|---|
//! | `clock` | [`Nanos`], [`Clock`], [`MonotonicClock`], [`ManualClock`] |
//! | `limit` | [`LimitAlgorithm`] and the algorithms ([`Fixed`], [`Aimd`]); `window.rs`: lock-free sample windows; `shards.rs`: per-thread sample counters |
//! | `limit` (latency-based) | [`Gradient2`], [`Vegas`], [`EnvoyGradient`] with parity presets and valve defaults (slow start, drift guards); [`WindowRequest`] |
//! | `limit/histogram.rs` | [`LatencyHistogram`]: lock-free log-linear histogram behind percentile windows |
//! | `limiter` | [`Limiter`]: exact one-CAS admission, [`Permit`]s and their [`Outcome`]s, [`LimiterSnapshot`] |
//! | `budget` | retry budgets ([`TokenQuota`]: gRPC, AWS; [`WindowedBudget`]: Finagle; [`ConcurrencyBudget`]: Envoy), [`BudgetDenied`], [`BudgetSnapshot`]; [`Backoff`] with jitter |
//! | `rng` | [`BackoffRng`] and [`SplitMix64`]: seedable randomness for every jittered or probabilistic decision |
//! | `breaker` | [`Breaker`]: state word, count/time windows, trip policies, half-open probes, [`BreakerConfig`] and its presets, [`BreakerSnapshot`] |
//! | `error` | [`ConfigError`], returned by every constructor |
//! | `sync` | std or loom atomics (`--cfg valve_loom`) and the updater election |
//! | `thread_slot` | dense per-thread indices: each thread owns one shard of a limiter's counters (`limit/shards.rs`) |
//! | [`ffi`] | the C ABI declared in `include/valve.h`: handles, configs, permits, status codes |
//!
//! ## Time
//!
//! The core never reads a clock: every operation has an `_at(now)` form taking [`Nanos`], which
//! keeps it deterministic under test and lets callers bring their own time. The forms without
//! `_at` read the limiter's [`Clock`].
//!
//! ## Quick start
//!
//! ```
//! use valve::{Aimd, Limiter};
//!
//! let limiter = Limiter::new(Aimd::default())?;
//! if let Ok(permit) = limiter.try_acquire() {
//!     // ... call the service ...
//!     permit.success(); // or .dropped() on a timeout / 503, or .ignored()
//! } else {
//!     // shed: answer 503 / 429 at once
//! }
//! # Ok::<(), valve::ConfigError>(())
//! ```

#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

mod breaker;
mod budget;
mod clock;
mod error;
#[cfg(not(valve_loom))]
pub mod ffi;
mod limit;
mod limiter;
mod rng;
mod sync;
mod thread_slot;

pub use breaker::{
    Breaker, BreakerBuilder, BreakerConfig, BreakerOutcome, BreakerPermit, BreakerRejected,
    BreakerRng, BreakerSnapshot, BreakerSplitMix64, BreakerState, BreakerToken, CloseRule,
    HalfOpenConfig, HalfOpenTimeoutTarget, MAX_COUNT_WINDOW, MAX_PROBES, MAX_TIME_BUCKETS,
    OpenBackoff, OpenBoundary, RateCheck, SlidingWindow, Transition, TransitionCause,
    TransitionListener,
};
pub use budget::{
    Backoff, BackoffConfig, BackoffRng, BudgetDenied, BudgetSnapshot, ConcurrencyBudget, CostClass,
    DenyReason, Jitter, QuotaRule, QuotaWithdrawal, RetryAfterRule, RetryCosts, SplitMix64,
    TokenQuota, TokenQuotaConfig, WindowedBudget, WindowedConfig,
};
pub use clock::{Clock, ManualClock, MonotonicClock, Nanos, duration_to_nanos};
pub use error::ConfigError;
pub use limit::{
    Aimd, AimdConfig, AimdLatency, Drained, EnvoyGradient, EnvoyGradientConfig, Fixed, Gradient2,
    Gradient2Config, LatencyHistogram, LimitAlgorithm, LimitBounds, MAX_LIMIT, MAX_TRACKED, MinRtt,
    QueueSize, Vegas, VegasConfig, VegasDecrease, WindowConfig, WindowRequest, WindowSample,
};
pub use limiter::{
    Acquire, AcquireError, Limiter, LimiterSnapshot, Outcome, Permit, QueueConfig, QueueOrdering,
    Rejected,
};
