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
//! | `wait.rs` | the bounded waiter queue behind blocking and async acquire; hand-off |
//! | `future.rs` | [`Acquire`], the async acquire future |
//! | this file | [`Limiter`], [`Rejected`], [`LimiterSnapshot`] |

mod admission;
mod future;
mod permit;
mod wait;

use std::fmt;
use std::time::Duration;

pub use future::Acquire;
pub use permit::{Outcome, Permit};
pub use wait::{AcquireError, QueueConfig, QueueOrdering};

use crate::clock::{Clock, MonotonicClock, Nanos, duration_to_nanos};
use crate::error::ConfigError;
use crate::limit::window::Window;
use crate::limit::{LimitAlgorithm, LimitBounds, WindowSample};
use crate::sync::{AtomicU64, Ordering};
use admission::Admission;
use wait::WaitQueue;

/// An adaptive concurrency limiter.
///
/// `try_acquire` admits a call if in-flight is below the current limit, in one CAS, and never
/// waits; the [`Permit`] it returns reports the call's outcome, which feeds the limit algorithm
/// through its window. `acquire_timeout` (blocking) and `acquire` (async) wait in a bounded
/// queue instead ([`QueueConfig`]); `try_acquire` never queues and may take a free slot ahead
/// of queued waiters. Every method takes `&self` and is safe from any thread; share a limiter
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
    queue: WaitQueue,
    timed_out: AtomicU64,
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
    /// Calls ever refused (by `try_acquire`, or by the waiter queue).
    pub rejected: u64,
    /// Waiting acquires whose deadline passed first.
    pub timed_out: u64,
    /// Waiters queued now.
    pub queued: u32,
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
        Self::with_queue(algorithm, clock, QueueConfig::default())
    }

    /// A limiter with a configured waiter queue (see [`QueueConfig`]).
    pub fn with_queue(algorithm: A, clock: C, queue: QueueConfig) -> Result<Self, ConfigError> {
        queue.validate()?;
        let bounds = algorithm.bounds();
        let bounds = LimitBounds::new(bounds.min, bounds.max)?;
        let initial = algorithm.initial_limit();
        bounds.check_initial(initial)?;
        let window = algorithm.window();
        window.validate()?;
        Ok(Self {
            admission: Admission::new(initial),
            window: Window::new(algorithm, window),
            queue: WaitQueue::new(queue),
            timed_out: AtomicU64::new(0),
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
        self.window.record_rejected();
        Rejected { limit, in_flight }
    }

    /// Waits up to `timeout` for a slot, blocking the thread; see [`QueueConfig`] for the
    /// queue's rules. Queued time is not part of the permit's RTT.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Permit<'_, A, C>, AcquireError> {
        let now = self.clock.now();
        self.acquire_until(now.saturating_add(duration_to_nanos(timeout)))
    }

    /// Waits until the clock reads `deadline` for a slot, blocking the thread.
    pub fn acquire_until(&self, deadline: Nanos) -> Result<Permit<'_, A, C>, AcquireError> {
        let now = self.clock.now();
        if !self.admission.has_waiters()
            && let Ok(in_flight) = self.admission.try_acquire()
        {
            return Ok(Permit::new(self, now, in_flight));
        }
        if now >= deadline {
            return Err(self.time_out());
        }
        match self.queue.wait_blocking(&self.admission, deadline, || self.clock.now()) {
            Ok((in_flight, start)) => Ok(Permit::new(self, start, in_flight)),
            Err(AcquireError::Rejected(rejected)) => Err(self.reject_waiter(rejected)),
            Err(AcquireError::TimedOut) => Err(self.time_out()),
        }
    }

    /// Waits for a slot without a deadline, asynchronously; see [`Acquire`].
    pub fn acquire(&self) -> Acquire<'_, A, C> {
        Acquire::new(self, Nanos::MAX)
    }

    /// Waits until the clock reads `deadline` for a slot, asynchronously; see [`Acquire`].
    pub fn acquire_with_deadline(&self, deadline: Nanos) -> Acquire<'_, A, C> {
        Acquire::new(self, deadline)
    }

    #[cold]
    fn reject_waiter(&self, rejected: Rejected) -> AcquireError {
        self.window.record_rejected();
        AcquireError::Rejected(rejected)
    }

    #[cold]
    fn time_out(&self) -> AcquireError {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
        AcquireError::TimedOut
    }

    /// Returns a permit's slot and reports its outcome: the permit-free core of [`Permit`], of a
    /// cancelled wait's grant and of a C permit's release. Answers whether a slot was held:
    /// if none was, it records nothing and leaves in-flight as it was, without refusing any
    /// racing acquire (see [`Admission::release`]). A Rust permit always holds its slot; a C
    /// caller can release a copy of a permit twice, and that copy can return a slot whose
    /// holder then gives it back with nothing held, so every path takes the same checked
    /// release, at the cost of one `fetch_sub`.
    #[inline(always)]
    pub(crate) fn release_at(
        &self,
        start: Nanos,
        in_flight: u32,
        outcome: Outcome,
        now: Nanos,
    ) -> bool {
        let released = self.admission.release();
        if released.waiters {
            self.queue.grant(&self.admission, now);
        }
        if released.held {
            self.report(start, in_flight, outcome, now);
        }
        released.held
    }

    /// Records a released call's outcome: the part of a release after the slot is returned.
    #[inline(always)]
    fn report(&self, start: Nanos, in_flight: u32, outcome: Outcome, now: Nanos) {
        match outcome {
            Outcome::Ignored => self.window.record_ignored(),
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
            let (_, waiters) = self.admission.set_limit(next);
            if next > limit && waiters {
                self.queue.grant(&self.admission, sample.now);
            }
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
        let (previous, waiters) = self.admission.set_limit(limit);
        if limit > previous && waiters {
            self.queue.grant(&self.admission, self.clock.now());
        }
        limit
    }

    /// The limit's bounds, from the algorithm.
    pub fn bounds(&self) -> LimitBounds {
        self.bounds
    }

    /// Counters and gauges; see [`LimiterSnapshot`].
    pub fn snapshot(&self) -> LimiterSnapshot {
        let totals = self.window.totals();
        let ignored = totals.ignored;
        let (in_flight, limit) = self.admission.load();
        let success = (totals.sampled + totals.unsampled).saturating_sub(totals.dropped);
        LimiterSnapshot {
            limit,
            in_flight,
            admitted: success + totals.dropped + ignored + u64::from(in_flight),
            rejected: totals.rejected,
            timed_out: self.timed_out.load(Ordering::Relaxed),
            queued: self.queue.queued(),
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
