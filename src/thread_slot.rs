//! Small, dense per-thread indices: what lets each thread own one shard of a limiter's counters.
//!
//! A thread that first asks gets the lowest free slot and gives it back when it exits, so slots
//! stay dense (at most the number of threads alive at once) and a shard indexed by slot has one
//! writer at a time. That writer may update the shard with a plain load and store instead of a
//! locked read-modify-write; see `limit::shards`.
//!
//! Memory ordering: a slot is handed over through the registry's mutex, so everything the exiting
//! owner wrote to its shards happens-before the next owner's first access.
//!
//! Unlike the `thread_local` crate's `ThreadLocal`, asking from a thread-local destructor never
//! panics: once this thread's slot is gone, [`current`] answers `None` and callers fall back to
//! their shared, atomic path.

#[cfg(not(valve_loom))]
mod imp {
    use std::cell::Cell;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Registry {
        /// Slots returned by exited threads; the lowest is reused first.
        free: BinaryHeap<Reverse<usize>>,
        /// Slots ever issued: `0..issued`.
        issued: usize,
    }

    static REGISTRY: Mutex<Registry> = Mutex::new(Registry { free: BinaryHeap::new(), issued: 0 });
    /// `Registry::issued`, readable without the lock.
    static ISSUED: AtomicUsize = AtomicUsize::new(0);

    /// This thread's slot; returned to the registry when the thread exits.
    struct Slot(usize);

    impl Slot {
        #[cold]
        fn claim() -> Self {
            let mut registry = REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let slot = match registry.free.pop() {
                Some(Reverse(slot)) => slot,
                None => {
                    registry.issued += 1;
                    // Release pairs with the Acquire in `issued`: a reader that counts this
                    // slot also sees the registry state that created it.
                    ISSUED.store(registry.issued, Ordering::Release);
                    registry.issued - 1
                }
            };
            Self(slot)
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            // Cleared before the slot is free, so this thread never answers a slot that another
            // may own; from here on `current` finds `OWNER` destroyed and answers `None`.
            CACHED.set(0);
            let mut registry = REGISTRY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            registry.free.push(Reverse(self.0));
        }
    }

    thread_local! {
        /// This thread's slot plus one; 0 before the first claim and once the slot is returned.
        /// Const-initialised and without a destructor, so the hot path reads it with one load
        /// relative to the thread pointer, with no lazy-initialisation state to check.
        static CACHED: Cell<usize> = const { Cell::new(0) };
        /// Owns the slot: its destructor returns it when the thread exits.
        static OWNER: Slot = Slot::claim();
    }

    /// This thread's slot, claiming one on first use; `None` while the thread's locals are
    /// being destroyed.
    #[inline]
    pub(crate) fn current() -> Option<usize> {
        match CACHED.get() {
            0 => claim_current(),
            slot_plus_one => Some(slot_plus_one - 1),
        }
    }

    #[cold]
    fn claim_current() -> Option<usize> {
        let slot = OWNER.try_with(|slot| slot.0).ok()?;
        CACHED.set(slot + 1);
        Some(slot)
    }

    /// Slots ever issued: every slot [`current`] has answered is below it.
    #[inline]
    pub(crate) fn issued() -> usize {
        ISSUED.load(Ordering::Acquire)
    }
}

/// Under loom, threads are coroutines on one OS thread: slots come from loom's per-execution
/// thread locals and statics instead, never reused (a model has a handful of threads).
#[cfg(valve_loom)]
mod imp {
    use std::sync::atomic::{AtomicUsize, Ordering};

    loom::lazy_static! {
        // A std atomic on purpose: loom runs one thread at a time, so the counter needs no
        // modelling and adds no interleavings to explore.
        static ref ISSUED: AtomicUsize = AtomicUsize::new(0);
    }

    loom::thread_local! {
        static SLOT: usize = ISSUED.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn current() -> Option<usize> {
        SLOT.try_with(|slot| *slot).ok()
    }

    #[inline]
    pub(crate) fn issued() -> usize {
        ISSUED.load(Ordering::Relaxed)
    }
}

pub(crate) use imp::{current, issued};

/// Shards owned by slots: twice the hardware threads (room for more threads than cores),
/// within bounds that cap a control's footprint at 64 cache-padded shards.
pub(crate) fn owned_shards() -> usize {
    #[cfg(valve_loom)]
    {
        // One owned shard: in a two-thread model one thread owns a shard and the other takes
        // the shared path, so both are explored.
        1
    }
    #[cfg(not(valve_loom))]
    {
        static OWNED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *OWNED.get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(4, usize::from);
            (threads * 2).clamp(4, 64)
        })
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_slot_and_an_exited_threads_slot_is_reused() {
        let mine = current().unwrap();
        assert_eq!(current(), Some(mine));
        assert!(mine < issued());
        let other = std::thread::spawn(|| current().unwrap()).join().unwrap();
        assert_ne!(other, mine);
        // The exited thread's slot is free again; the next new thread gets a free slot, never
        // one that is in use.
        let again = std::thread::spawn(|| current().unwrap()).join().unwrap();
        assert_ne!(again, mine);
        assert!(again < issued());
    }

    #[test]
    fn live_threads_never_share_a_slot() {
        let barrier = std::sync::Barrier::new(8);
        let slots: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let slot = current().unwrap();
                        barrier.wait();
                        slot
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = slots.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), slots.len());
    }
}
