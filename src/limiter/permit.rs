//! Permits: the right to run one unit of work, and the outcome it reports.

use std::fmt;

use crate::clock::{Clock, Nanos};
use crate::limit::LimitAlgorithm;
use crate::limiter::Limiter;

/// How a unit of work ended, as the limit algorithm should learn from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Outcome {
    /// Completed normally: its RTT is a sample.
    Success = 0,
    /// An overload signal (timeout, 503, shed downstream): a sample that marks the window as
    /// dropped.
    Dropped = 1,
    /// No signal (client cancel, a bad request, an error unrelated to load): releases the slot
    /// and teaches nothing.
    Ignored = 2,
}

/// The right to run one unit of work, taken from a [`Limiter`].
///
/// Report how the work ended with [`success`](Self::success), [`dropped`](Self::dropped) or
/// [`ignored`](Self::ignored) (each consumes the permit, so an outcome is reported at most
/// once); dropping the permit unreported counts as ignored. The permit records when it was
/// acquired and the in-flight count at that moment, which become the sample's RTT start and
/// in-flight.
#[must_use = "dropping a permit at once releases it as ignored"]
pub struct Permit<'a, A: LimitAlgorithm, C: Clock> {
    limiter: &'a Limiter<A, C>,
    start: Nanos,
    in_flight: u32,
}

impl<'a, A: LimitAlgorithm, C: Clock> Permit<'a, A, C> {
    #[inline]
    pub(crate) fn new(limiter: &'a Limiter<A, C>, start: Nanos, in_flight: u32) -> Self {
        Self { limiter, start, in_flight }
    }

    /// When the permit was acquired.
    pub fn start(&self) -> Nanos {
        self.start
    }

    /// In-flight count right after this permit was admitted (itself included).
    pub fn in_flight_at_acquire(&self) -> u32 {
        self.in_flight
    }

    /// The work completed normally; reads the limiter's clock.
    #[inline]
    pub fn success(self) {
        let now = self.limiter.clock().now();
        self.success_at(now);
    }

    /// The work completed normally at `now`.
    #[inline]
    pub fn success_at(self, now: Nanos) {
        self.finish(Outcome::Success, now);
    }

    /// The work failed with an overload signal; reads the limiter's clock.
    #[inline]
    pub fn dropped(self) {
        let now = self.limiter.clock().now();
        self.dropped_at(now);
    }

    /// The work failed with an overload signal at `now`.
    #[inline]
    pub fn dropped_at(self, now: Nanos) {
        self.finish(Outcome::Dropped, now);
    }

    /// The work ended without a signal. Needs no time: nothing is sampled.
    #[inline]
    pub fn ignored(self) {
        let start = self.start;
        self.finish(Outcome::Ignored, start);
    }

    /// Reports `outcome` at `now`.
    #[inline]
    pub fn finish(self, outcome: Outcome, now: Nanos) {
        self.limiter.release_at(self.start, self.in_flight, outcome, now);
        std::mem::forget(self);
    }
}

impl<A: LimitAlgorithm, C: Clock> Drop for Permit<'_, A, C> {
    fn drop(&mut self) {
        self.limiter.release_at(self.start, self.in_flight, Outcome::Ignored, self.start);
    }
}

impl<A: LimitAlgorithm, C: Clock> fmt::Debug for Permit<'_, A, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("start", &self.start)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}
