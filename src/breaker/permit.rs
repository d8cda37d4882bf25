//! Breaker permits: the right to make one call, stamped with the state generation it was
//! admitted in, and the outcome it reports.

use std::fmt;

use crate::breaker::Breaker;
use crate::breaker::state::BreakerState;
use crate::clock::{Clock, Nanos};

/// How a call made through a breaker ended.
///
/// Slow is not an outcome of its own: a success or failure whose duration (report time minus
/// admission time) is strictly above the configured slow-call duration is also slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum BreakerOutcome {
    /// The dependency answered well.
    Success = 0,
    /// The dependency failed (an error the breaker should count).
    Failure = 1,
    /// No signal about the dependency (cancelled, a bad request): gives a half-open probe its
    /// place back and counts in no window (resilience4j `releasePermission`, gobreaker
    /// exclusions).
    Ignored = 2,
}

/// The right to make one call, taken from a [`Breaker`].
///
/// Report how the call ended with [`success`](Self::success), [`failure`](Self::failure) or
/// [`ignored`](Self::ignored) (each consumes the permit); dropping it unreported counts as
/// ignored, so a panicking call never wedges a half-open breaker (Polly issue 1979, Hystrix PR
/// 1621). The permit remembers the state generation it was admitted in: once the breaker has
/// changed state, its result is still counted in the snapshot's totals (and as `late`) but can
/// no longer move the breaker (gobreaker's generation check).
#[must_use = "dropping a permit at once reports the call as ignored"]
pub struct BreakerPermit<'a, C: Clock> {
    breaker: &'a Breaker<C>,
    generation: u64,
    admitted_in: BreakerState,
    start: Nanos,
}

impl<'a, C: Clock> BreakerPermit<'a, C> {
    #[inline]
    pub(crate) fn new(
        breaker: &'a Breaker<C>,
        generation: u64,
        admitted_in: BreakerState,
        start: Nanos,
    ) -> Self {
        Self { breaker, generation, admitted_in, start }
    }

    /// The state the call was admitted in (HalfOpen for a probe).
    pub fn admitted_in(&self) -> BreakerState {
        self.admitted_in
    }

    /// The state generation the call was admitted in.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When the call was admitted.
    pub fn start(&self) -> Nanos {
        self.start
    }

    /// The call succeeded; reads the breaker's clock for its duration.
    #[inline]
    pub fn success(self) {
        let now = self.breaker.clock().now();
        self.finish(BreakerOutcome::Success, now);
    }

    /// The call failed; reads the breaker's clock for its duration.
    #[inline]
    pub fn failure(self) {
        let now = self.breaker.clock().now();
        self.finish(BreakerOutcome::Failure, now);
    }

    /// The call gave no signal about the dependency. Needs no time.
    #[inline]
    pub fn ignored(self) {
        let start = self.start;
        self.finish(BreakerOutcome::Ignored, start);
    }

    /// The call succeeded at `now`.
    #[inline]
    pub fn success_at(self, now: Nanos) {
        self.finish(BreakerOutcome::Success, now);
    }

    /// The call failed at `now`.
    #[inline]
    pub fn failure_at(self, now: Nanos) {
        self.finish(BreakerOutcome::Failure, now);
    }

    /// Reports `outcome` at `now`; the call's duration is `now - start` (0 if time went back).
    #[inline]
    pub fn finish(self, outcome: BreakerOutcome, now: Nanos) {
        let duration = now.saturating_sub(self.start);
        self.breaker.record(self.generation, self.admitted_in, outcome, duration, now);
        std::mem::forget(self);
    }

    /// Turns the permit into a plain [`BreakerToken`], to report later with
    /// [`Breaker::record_token_at`] (from another thread, or across an FFI boundary). A token
    /// that is never reported is a probe that never reports: only a half-open timeout
    /// reclaims it.
    pub fn into_token(self) -> BreakerToken {
        let token = BreakerToken {
            generation: self.generation,
            admitted_in: self.admitted_in as u32,
            start: self.start,
        };
        std::mem::forget(self);
        token
    }
}

/// A permit as plain data: what [`BreakerPermit::into_token`] returns and
/// [`Breaker::record_token_at`] takes.
///
/// A token should be reported once. Reporting one twice, or a made-up one, cannot corrupt the
/// breaker: a token whose generation has passed is only counted as late, and a half-open
/// result is refused once no probe of its episode is in flight; at worst it is counted as
/// another probe's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct BreakerToken {
    /// The state generation the call was admitted in.
    pub generation: u64,
    /// The state it was admitted in, as [`BreakerState`]'s code.
    pub admitted_in: u32,
    /// When it was admitted.
    pub start: Nanos,
}

impl<C: Clock> Drop for BreakerPermit<'_, C> {
    fn drop(&mut self) {
        self.breaker.record(
            self.generation,
            self.admitted_in,
            BreakerOutcome::Ignored,
            0,
            self.start,
        );
    }
}

impl<C: Clock> fmt::Debug for BreakerPermit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("generation", &self.generation)
            .field("admitted_in", &self.admitted_in)
            .field("start", &self.start)
            .finish()
    }
}
