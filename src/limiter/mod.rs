//! The concurrency limiter: admits work up to a limit and sheds the rest at once.
//!
//! Contains queue growth and the cascading failures that follow it: work beyond what the service
//! can do is refused immediately instead of waiting in a queue until it times out. The limit
//! comes from a [`LimitAlgorithm`] fed by the outcomes of admitted work.
//!
//! | file | what |
//! |---|---|
//! | `admission.rs` | the packed in-flight/limit word; admission is one CAS |
//! | `permit.rs` | [`Permit`] and [`Outcome`] |
//! | this file | [`Limiter`], [`Rejected`], [`LimiterSnapshot`] |

mod admission;
mod permit;

use std::fmt;

use crossbeam_utils::CachePadded;

pub use permit::{Outcome, Permit};

use crate::clock::{Clock, MonotonicClock, Nanos};
use crate::error::ConfigError;
use crate::limit::window::Window;
use crate::limit::{LimitAlgorithm, LimitBounds, WindowSample};
use crate::sync::{AtomicU64, Ordering};
use admission::Admission;

/// An adaptive concurrency limiter.
///
/// `try_acquire` admits a call if in-flight is below the current limit, in one CAS, and never
/// waits; the [`Permit`] it returns reports the call's outcome, which feeds the limit algorithm
/// through its window. Every method takes `&self` and is safe from any thread; share a limiter
/// with `Arc` or a `static`.
///
/// Guarantees: in-flight never exceeds the limit in force at admission; lowering the limit
/// stops new admissions and never revokes running work; every permit returns its slot exactly
/// once (reporting consumes it, dropping it reports ignored).
///
/// # Memory ordering
///
/// Acquire and release form an acquire/release pair on the admission word: what a thread did
/// before releasing a permit happens-before the admission that takes that slot. A rejected
/// acquire is an acquire load. Counters in [`snapshot`](Self::snapshot) are relaxed reads.
///
/// # Example
///
/// ```
/// use valve::{Aimd, Limiter};
///
/// let limiter = Limiter::new(Aimd::default()).unwrap();
/// match limiter.try_acquire() {
///     Ok(permit) => {
///         // ... do the work ...
///         permit.success();
///     }
///     Err(rejected) => eprintln!("shed: {rejected}"),
/// }
/// assert_eq!(limiter.in_flight(), 0);
/// ```
pub struct Limiter<A: LimitAlgorithm, C: Clock = MonotonicClock> {
    admission: Admission,
    window: Window<A>,
    rejected: CachePadded<AtomicU64>,
    ignored: AtomicU64,
    bounds: LimitBounds,
    clock: C,
}

/// `try_acquire` refused: the limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The limit in force when the call was refused.
    pub limit: u32,
    /// In-flight at that moment.
    pub in_flight: u32,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "concurrency limit reached ({} in flight, limit {})", self.in_flight, self.limit)
    }
}

impl std::error::Error for Rejected {}

/// A limiter's counters and gauges, read without locks or allocation.
///
/// Each field is read separately: under concurrent use the fields may come from slightly
/// different instants (`admitted` is derived as completed plus in-flight); when the limiter is
/// quiescent they balance exactly: `admitted == success + dropped + ignored + in_flight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct LimiterSnapshot {
    /// The limit in force.
    pub limit: u32,
    /// Calls admitted and not yet reported.
    pub in_flight: u32,
    /// Calls ever admitted.
    pub admitted: u64,
    /// Calls ever refused.
    pub rejected: u64,
    /// Calls reported as success.
    pub success: u64,
    /// Calls reported as dropped.
    pub dropped: u64,
    /// Calls reported as ignored (including permits dropped unreported).
    pub ignored: u64,
    /// Mean RTT of the last closed window, ns (0 before the first).
    pub sample_rtt_ns: u64,
    /// Smallest RTT of the last closed window, ns (0 before the first).
    pub min_rtt_ns: u64,
}

impl<A: LimitAlgorithm> Limiter<A, MonotonicClock> {
    /// A limiter driven by `algorithm`, reading the system's monotonic clock.
    pub fn new(algorithm: A) -> Result<Self, ConfigError> {
        Self::with_clock(algorithm, MonotonicClock::new())
    }
}

impl<A: LimitAlgorithm, C: Clock> Limiter<A, C> {
    /// A limiter driven by `algorithm`, reading `clock` in the methods without `_at`.
    ///
    /// Fails if the algorithm reports invalid bounds, an initial limit outside them, or an
    /// invalid window (a user-written algorithm can).
    pub fn with_clock(algorithm: A, clock: C) -> Result<Self, ConfigError> {
        let bounds = algorithm.bounds();
        let bounds = LimitBounds::new(bounds.min, bounds.max)?;
        let initial = algorithm.initial_limit();
        bounds.check_initial(initial)?;
        let window = algorithm.window();
        window.validate()?;
        Ok(Self {
            admission: Admission::new(initial),
            window: Window::new(algorithm, window),
            rejected: CachePadded::new(AtomicU64::new(0)),
            ignored: AtomicU64::new(0),
            bounds,
            clock,
        })
    }

    /// The clock the methods without `_at` read.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Admits one call if in-flight is below the limit, reading the clock for its start time.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_, A, C>, Rejected> {
        self.try_acquire_at(self.clock.now())
    }

    /// Admits one call started at `now` if in-flight is below the limit. Never waits.
    #[inline]
    pub fn try_acquire_at(&self, now: Nanos) -> Result<Permit<'_, A, C>, Rejected> {
        match self.admission.try_acquire() {
            Ok(in_flight) => Ok(Permit::new(self, now, in_flight)),
            Err(full) => Err(self.reject(full.limit, full.in_flight)),
        }
    }

    #[cold]
    fn reject(&self, limit: u32, in_flight: u32) -> Rejected {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Rejected { limit, in_flight }
    }

    /// Returns a permit's slot and reports its outcome: the permit-free core of [`Permit`].
    #[inline]
    pub(crate) fn release_at(&self, start: Nanos, in_flight: u32, outcome: Outcome, now: Nanos) {
        self.admission.release();
        match outcome {
            Outcome::Ignored => {
                self.ignored.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Success | Outcome::Dropped => {
                let rtt = now.saturating_sub(start);
                let dropped = outcome == Outcome::Dropped;
                self.window.record(rtt, in_flight, dropped, now, |algorithm, sample| {
                    self.publish(algorithm, sample);
                });
            }
        }
    }

    /// Runs on the elected updater only, so successive updates publish in order.
    #[cold]
    fn publish(&self, algorithm: &mut A, sample: &WindowSample) {
        let (_, limit) = self.admission.load();
        let next = self.bounds.clamp(algorithm.update(sample, limit));
        if next != limit {
            self.admission.set_limit(next);
        }
    }

    /// The limit in force.
    #[inline]
    pub fn limit(&self) -> u32 {
        self.admission.load().1
    }

    /// Calls admitted and not yet reported.
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.admission.load().0
    }

    /// Sets the limit by hand, clamped to the algorithm's bounds; returns the limit now in
    /// force. Lowering it never revokes running work. An adaptive algorithm starts its next
    /// update from this value.
    pub fn set_limit(&self, limit: u32) -> u32 {
        let limit = self.bounds.clamp(limit);
        self.admission.set_limit(limit);
        limit
    }

    /// The limit's bounds, from the algorithm.
    pub fn bounds(&self) -> LimitBounds {
        self.bounds
    }

    /// Counters and gauges; see [`LimiterSnapshot`].
    pub fn snapshot(&self) -> LimiterSnapshot {
        let totals = self.window.totals();
        let ignored = self.ignored.load(Ordering::Relaxed);
        let rejected = self.rejected.load(Ordering::Relaxed);
        let (in_flight, limit) = self.admission.load();
        let success = (totals.sampled + totals.unsampled).saturating_sub(totals.dropped);
        LimiterSnapshot {
            limit,
            in_flight,
            admitted: success + totals.dropped + ignored + u64::from(in_flight),
            rejected,
            success,
            dropped: totals.dropped,
            ignored,
            sample_rtt_ns: totals.last_rtt,
            min_rtt_ns: totals.last_min_rtt,
        }
    }
}

impl<A: LimitAlgorithm, C: Clock> fmt::Debug for Limiter<A, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter").field("snapshot", &self.snapshot()).finish_non_exhaustive()
    }
}
