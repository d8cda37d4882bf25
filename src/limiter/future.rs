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
