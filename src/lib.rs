//! # valve: overload control on a lock-free core
//!
//! valve answers one question, very fast and from any thread: *may this unit of work go now?*
//! Each control contains one way backend systems fail under pressure:
//!
//! | control | failure mode it contains | learns from |
//! |---|---|---|
//! | [`Limiter`] with a [`LimitAlgorithm`] | queue growth: admitted work beyond capacity waits, times out, cascades | latency and drops of completed work |
//!
//! ## Map of the crate
//!
//! | module | what it holds |
//! |---|---|
//! | `clock` | [`Nanos`], [`Clock`], [`MonotonicClock`], [`ManualClock`] |
//! | `limit` | [`LimitAlgorithm`] and the algorithms ([`Fixed`], [`Aimd`]); `window.rs`: lock-free sample windows |
//! | `limiter` | [`Limiter`]: exact one-CAS admission, [`Permit`]s and their [`Outcome`]s, [`LimiterSnapshot`] |
//! | `error` | [`ConfigError`], returned by every constructor |
//! | `sync` | std or loom atomics (`--cfg valve_loom`) and the updater election |
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

mod clock;
mod error;
#[cfg(not(valve_loom))]
pub mod ffi;
mod limit;
mod limiter;
mod sync;

pub use clock::{Clock, ManualClock, MonotonicClock, Nanos, duration_to_nanos};
pub use error::ConfigError;
pub use limit::{
    Aimd, AimdConfig, Fixed, LimitAlgorithm, LimitBounds, MAX_LIMIT, WindowConfig, WindowSample,
};
pub use limiter::{Limiter, LimiterSnapshot, Outcome, Permit, Rejected};
