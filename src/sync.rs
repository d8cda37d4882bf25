//! The synchronisation primitives the core is built on, switched between std and loom.
//!
//! Under `--cfg valve_loom` (with the `loom` feature) every atomic and the updater election come
//! from [loom](https://docs.rs/loom), so `tests/loom.rs` can explore every interleaving of the
//! real protocols. Everywhere else they are std's atomics and parking_lot.

#[cfg(not(valve_loom))]
pub(crate) use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering, fence};

#[cfg(valve_loom)]
pub(crate) use loom::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(valve_loom))]
use parking_lot::{Mutex, MutexGuard};

#[cfg(valve_loom)]
use loom::sync::{Mutex, MutexGuard};

/// State that only an elected thread may touch, with an election that never waits.
///
/// [`UpdaterCell::try_elect`] is one compare-and-swap on a lock word: the winner gets exclusive
/// access for as long as it holds the guard, every loser gets `None` at once and carries on. No
/// thread ever blocks on it, so it keeps the sample path lock-free while giving algorithms
/// plain `&mut self` state (the window's "elected updater", see `limit::window`).
///
/// Memory ordering: a successful election acquires everything the previous winner wrote before
/// dropping its guard (the lock word is an acquire/release pair).
pub(crate) struct UpdaterCell<T> {
    state: Mutex<T>,
}

impl<T> UpdaterCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self { state: Mutex::new(value) }
    }

    /// Wins the election and returns the state, or returns `None` at once if another thread
    /// holds it.
    #[inline]
    pub(crate) fn try_elect(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(valve_loom))]
        {
            self.state.try_lock()
        }
        #[cfg(valve_loom)]
        {
            self.state.try_lock().ok()
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for UpdaterCell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.try_elect() {
            Some(state) => f.debug_tuple("UpdaterCell").field(&*state).finish(),
            None => f.write_str("UpdaterCell(<updating>)"),
        }
    }
}

/// Called in every retry loop that waits for another thread (loom's scheduler is unfair and
/// needs the yield to make progress).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(valve_loom))]
    std::hint::spin_loop();
    #[cfg(valve_loom)]
    loom::thread::yield_now();
}

/// The waiter queue's lock: parking_lot's mutex (loom's under `valve_loom`). Only the waiting
/// slow path takes it; admission and release never do unless someone is queued.
pub(crate) struct QueueLock<T> {
    inner: Mutex<T>,
}

impl<T> QueueLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self { inner: Mutex::new(value) }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(valve_loom))]
        {
            self.inner.lock()
        }
        #[cfg(valve_loom)]
        {
            self.inner.lock().unwrap()
        }
    }
}

impl<T> std::fmt::Debug for QueueLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueLock")
    }
}

/// Thread parking for blocking waiters: std's futex-backed park (loom's under `valve_loom`,
/// where a timed park is an untimed one and time never passes on its own).
pub(crate) mod park {
    #[cfg(valve_loom)]
    pub(crate) use loom::thread::{Thread, current};
    #[cfg(not(valve_loom))]
    pub(crate) use std::thread::{Thread, current};

    /// Sleeps until unparked, `timeout` passes, or spuriously; callers re-check their state.
    #[inline]
    pub(crate) fn park_for(timeout: std::time::Duration) {
        #[cfg(not(valve_loom))]
        std::thread::park_timeout(timeout);
        #[cfg(valve_loom)]
        {
            let _ = timeout;
            loom::thread::park();
        }
    }
}
