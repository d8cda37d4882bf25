//! Cancellation of blocking waits through the C ABI: `valve_cancel_token`.
//!
//! A C caller blocked in a wait cannot be interrupted by its own runtime (Go's context, a
//! Python signal), so the wait watches a token that another thread cancels. The waiting thread
//! drives the same future an async Rust caller awaits ([`crate::Acquire`]), parking between
//! polls; a cancel unparks it at once, and dropping the future withdraws it from the queue
//! (returning a slot granted meanwhile to the next waiter), so nothing is left behind.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use parking_lot::Mutex;

use crate::ffi::{free_handle, new_handle, valve_status, with_handle};

/// A cancellation flag for blocking waits (`valve_limiter_acquire_cancellable`).
///
/// Opaque; created by `valve_cancel_token_new`, freed by `valve_cancel_token_free`. Any number
/// of threads may wait on one token and any thread may cancel it; a cancelled token stays
/// cancelled, so make one per operation that can be cancelled.
pub struct valve_cancel_token {
    cancelled: AtomicBool,
    /// Threads inside a wait on this token, which a cancel unparks.
    waiting: Mutex<Vec<Thread>>,
}

/// Wakes the thread that polls a future, by unparking it.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

impl valve_cancel_token {
    fn new() -> Self {
        Self { cancelled: AtomicBool::new(false), waiting: Mutex::new(Vec::new()) }
    }

    fn cancel(&self) {
        // Set before the registry is read: a waiter that registers after this cancel's lock
        // sees the flag (the lock orders the two), one that registered before is unparked.
        self.cancelled.store(true, Ordering::Release);
        for thread in self.waiting.lock().iter() {
            thread.unpark();
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Drives `future` on this thread until it completes, answering `None` if the token is
    /// cancelled first (the future is then dropped). Between polls the thread parks until the
    /// future's waker, a cancel, or `park_for()` has passed (`None`: no time limit), since the
    /// future owns no timer and notices its deadline only when polled.
    pub(crate) fn block_on<F: Future>(
        &self,
        future: F,
        park_for: impl Fn() -> Option<Duration>,
    ) -> Option<F::Output> {
        let me = thread::current();
        let waker = Waker::from(Arc::new(Unpark(me.clone())));
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        self.waiting.lock().push(me);
        let output = loop {
            if self.is_cancelled() {
                break None;
            }
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                break Some(output);
            }
            match park_for() {
                Some(duration) => thread::park_timeout(duration),
                None => thread::park(),
            }
        };
        let mut waiting = self.waiting.lock();
        let me = thread::current().id();
        if let Some(position) = waiting.iter().position(|thread| thread.id() == me) {
            waiting.swap_remove(position);
        }
        output
    }
}

/// Creates a token, not cancelled, and stores it in `*out`.
///
/// Answers `VALVE_OK` or `VALVE_NULL_POINTER` (NULL `out`). Thread-safe.
///
/// # Safety
///
/// `out` must be NULL or point to writable memory for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_cancel_token_new(out: *mut *mut valve_cancel_token) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { new_handle(out, || Ok(valve_cancel_token::new())) }
}

/// Frees a token. NULL is a no-op.
///
/// Not thread-safe: no wait may be using the token, and no other call may use it during or
/// after this one.
///
/// # Safety
///
/// `token` must be NULL or a handle from `valve_cancel_token_new` that was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_cancel_token_free(token: *mut valve_cancel_token) {
    // SAFETY: forwarded caller contract.
    unsafe { free_handle(token) }
}

/// Cancels the token: every wait on it returns `VALVE_CANCELLED` promptly (the waiting threads
/// are woken, not polled), and every later wait on it at once. Cancelling twice is a no-op.
/// Answers `VALVE_OK` or `VALVE_NULL_POINTER`. Thread-safe, and safe to call while other
/// threads wait on the token.
///
/// # Safety
///
/// `token` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_cancel_token_cancel(
    token: *const valve_cancel_token,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        with_handle(token, |token| {
            token.cancel();
            valve_status::VALVE_OK
        })
    }
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;

    #[test]
    fn cancel_wakes_a_parked_wait() {
        let token = Arc::new(valve_cancel_token::new());
        let waiter = {
            let token = Arc::clone(&token);
            thread::spawn(move || token.block_on(std::future::pending::<()>(), || None))
        };
        while token.waiting.lock().is_empty() {
            thread::yield_now();
        }
        token.cancel();
        assert_eq!(waiter.join().unwrap(), None);
        assert!(token.waiting.lock().is_empty(), "the waiter unregistered");
        assert_eq!(token.block_on(std::future::ready(1), || None), None, "stays cancelled");
    }

    #[test]
    fn null_pointers() {
        // SAFETY: NULL is allowed everywhere here.
        unsafe {
            assert_eq!(valve_cancel_token_new(ptr::null_mut()), valve_status::VALVE_NULL_POINTER);
            assert_eq!(valve_cancel_token_cancel(ptr::null()), valve_status::VALVE_NULL_POINTER);
            valve_cancel_token_free(ptr::null_mut());
        }
    }
}
