//! [`Acquire`]: the async form of a waiting acquire, driven by its `Waker`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::clock::{Clock, Nanos};
use crate::limit::LimitAlgorithm;
use crate::limiter::wait::{AcquireError, Checked, Wake};
use crate::limiter::{Limiter, Outcome, Permit};

/// A future that resolves to a [`Permit`] once a slot is free, or to an [`AcquireError`] when
/// the queue refuses it or its deadline passes.
///
/// Runtime-agnostic: it needs only its `Waker`. It owns no timer, so a deadline is noticed when
/// the future is polled or when a release scans the queue; to bound the wait precisely, wrap it
/// in your runtime's timeout. Cancel-safe: dropping it at any point leaves no waiter behind and
/// loses no permit (one granted meanwhile is released at once, to the next waiter).
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, A: LimitAlgorithm, C: Clock> {
    limiter: &'a Limiter<A, C>,
    deadline: Nanos,
    /// The queue slot this future waits in, once queued.
    queued: Option<u32>,
}

impl<'a, A: LimitAlgorithm, C: Clock> Acquire<'a, A, C> {
    pub(crate) fn new(limiter: &'a Limiter<A, C>, deadline: Nanos) -> Self {
        Self { limiter, deadline, queued: None }
    }
}

impl<'a, A: LimitAlgorithm, C: Clock> Future for Acquire<'a, A, C> {
    type Output = Result<Permit<'a, A, C>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let limiter = self.limiter;
        let now = limiter.clock().now();
        let Some(index) = self.queued else {
            if !limiter.admission.has_waiters()
                && let Ok(in_flight) = limiter.admission.try_acquire()
            {
                return Poll::Ready(Ok(Permit::new(limiter, now, in_flight)));
            }
            let waker = cx.waker().clone();
            return match limiter
                .queue
                .enqueue(&limiter.admission, now, self.deadline, || Wake::Task(waker))
            {
                Err(rejected) => Poll::Ready(Err(limiter.reject_waiter(rejected))),
                Ok(Ok(in_flight)) => Poll::Ready(Ok(Permit::new(limiter, now, in_flight))),
                Ok(Err(index)) => {
                    self.queued = Some(index);
                    Poll::Pending
                }
            };
        };
        match limiter.queue.check(&limiter.admission, index, now, Some(cx.waker())) {
            Checked::Waiting => Poll::Pending,
            Checked::Granted { in_flight, start } => {
                self.queued = None;
                Poll::Ready(Ok(Permit::new(limiter, start, in_flight)))
            }
            Checked::TimedOut => {
                self.queued = None;
                Poll::Ready(Err(limiter.time_out()))
            }
        }
    }
}

impl<A: LimitAlgorithm, C: Clock> Drop for Acquire<'_, A, C> {
    fn drop(&mut self) {
        if let Some(index) = self.queued.take()
            && let Some(in_flight) = self.limiter.queue.cancel(&self.limiter.admission, index)
        {
            // The checked release, as every release: through the C ABI a stale copy of a
            // permit may already have returned this grant's slot (issue 17), and giving it
            // back again must not wrap in-flight.
            let now = self.limiter.clock().now();
            self.limiter.release_at(now, in_flight, Outcome::Ignored, now);
        }
    }
}

impl<A: LimitAlgorithm, C: Clock> fmt::Debug for Acquire<'_, A, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("deadline", &self.deadline)
            .field("queued", &self.queued.is_some())
            .finish()
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::clock::ManualClock;
    use crate::limit::Fixed;

    /// What a stale copy of a C permit does (the C ABI's release, minus its state checks):
    /// returns a slot it no longer holds.
    fn release_a_stale_copy<A: LimitAlgorithm, C: Clock>(limiter: &Limiter<A, C>) -> bool {
        limiter.release_at(0, 1, Outcome::Ignored, 0)
    }

    /// Issue 17, bug 1, at limit 1: a stale copy's release takes the slot just granted to a
    /// queued waiter, then that waiter is cancelled and gives the slot back. That second
    /// release used to be unchecked and wrapped in-flight to 2^31 - 1, refusing every acquire
    /// for good. It is refused now, and the limiter is whole.
    #[test]
    fn a_cancelled_wait_does_not_wedge_the_limiter() {
        {
            let limiter = Limiter::with_clock(Fixed::new(1).unwrap(), ManualClock::new(0)).unwrap();
            let held = limiter.try_acquire_at(0).unwrap();
            let mut cx = Context::from_waker(Waker::noop());
            {
                let mut waiting = pin!(limiter.acquire());
                assert!(waiting.as_mut().poll(&mut cx).is_pending(), "queued behind `held`");
                held.success_at(1);
                assert_eq!(limiter.snapshot().queued, 0, "the release granted the waiter");
                assert!(release_a_stale_copy(&limiter), "the copy takes the granted slot");
                assert_eq!(limiter.in_flight(), 0);
            }
            let s = limiter.snapshot();
            assert_eq!((s.in_flight, s.limit, s.queued), (0, 1, 0), "{s:?}");
            let permit = limiter.try_acquire_at(2).expect("not wedged");
            assert!(limiter.try_acquire_at(2).is_err(), "and not overdrawn");
            drop(permit);
            assert!(!release_a_stale_copy(&limiter), "nothing held: refused");
            assert!(matches!(pin!(limiter.acquire()).poll(&mut cx), Poll::Ready(Ok(_))));
        }
    }
}

/// The cancelled grant of issue 17 racing a stale copy's release, model-checked with the real
/// wait queue. It lives here, not in `tests/loom.rs`, because only the C ABI (not built under
/// loom) can release a copy through the public API.
#[cfg(all(test, valve_loom))]
mod loom_models {
    use std::pin::pin;
    use std::task::{Context, Waker};

    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::clock::ManualClock;
    use crate::limit::Fixed;

    /// At limit 1: a waiter queues and is cancelled (its future polled once, then dropped),
    /// the one held permit is released, which may grant that waiter, and a stale copy of that
    /// permit is released too, which may take the granted slot. In every interleaving the
    /// limiter ends whole: nothing in flight or queued, and exactly one slot to take.
    #[test]
    fn a_cancelled_grant_racing_a_stale_release_leaves_the_limiter_whole() {
        loom::model(|| {
            let limiter =
                Arc::new(Limiter::with_clock(Fixed::new(1).unwrap(), ManualClock::new(0)).unwrap());
            let held = limiter.try_acquire_at(0).unwrap();
            let waiter = {
                let limiter = limiter.clone();
                thread::spawn(move || {
                    let mut cx = Context::from_waker(Waker::noop());
                    // Pending (queued) or a permit; either is dropped here: the cancel.
                    let _ = pin!(limiter.acquire()).poll(&mut cx);
                })
            };
            let stale = {
                let limiter = limiter.clone();
                thread::spawn(move || limiter.release_at(0, 1, Outcome::Ignored, 0))
            };
            held.success_at(1);
            waiter.join().unwrap();
            stale.join().unwrap();
            let s = limiter.snapshot();
            assert_eq!((s.in_flight, s.queued, s.limit), (0, 0, 1), "{s:?}");
            let permit = limiter.try_acquire_at(2).expect("not wedged");
            assert!(limiter.try_acquire_at(2).is_err(), "not overdrawn");
            drop(permit);
        });
    }
}
