//! Per-thread shards of a limiter's sample accumulators and counters.
//!
//! A release must return its slot (one `fetch_sub` on the admission word) and record its sample.
//! If the sample were another read-modify-write on a shared word, every release would pay a
//! second locked instruction, and under contention a second cache line would bounce between
//! cores. Instead each thread owns one shard (by its [`thread_slot`](crate::thread_slot)) and is
//! its only writer, so it adds with a plain load and store. Threads beyond the shard count, and
//! threads whose slot is already gone, share one extra shard and add with `fetch_add`.
//!
//! Every field of a shard only grows (modulo 2^64), so readers never reset it: the window's
//! updater takes the difference since its previous close, and snapshots take sums.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};
use crate::thread_slot::{self, owned_shards};

/// One thread's counters, on its own cache line.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    /// Every sample ever recorded here, packed as `(samples, rtt_sum)`; see the table in
    /// `window.rs`. Only grows; the open window is `window - taken`.
    pub(crate) window: AtomicU64,
    /// `window` as the updater took it at its last close. Written only by the updater.
    pub(crate) taken: AtomicU64,
    /// Samples that entered a window.
    pub(crate) sampled: AtomicU64,
    /// Calls completed as dropped.
    pub(crate) dropped: AtomicU64,
    /// Successes and drops below the RTT threshold or started before the discard mark.
    pub(crate) unsampled: AtomicU64,
    /// Calls released as ignored.
    pub(crate) ignored: AtomicU64,
    /// Calls refused.
    pub(crate) rejected: AtomicU64,
}

/// The calling thread's shard, and whether it is the only writer of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Local<'a> {
    pub(crate) shard: &'a Shard,
    /// The shard's index, for state kept beside the shards (a window's histograms).
    pub(crate) index: usize,
    /// Whether this thread is the shard's only writer.
    pub(crate) exclusive: bool,
}

impl Local<'_> {
    /// Adds `delta` to `counter` (a field of this shard) and returns its previous value.
    ///
    /// `order` is the store's ordering (the read-modify-write's, on the shared shard).
    #[inline]
    pub(crate) fn add(&self, counter: &AtomicU64, delta: u64, order: Ordering) -> u64 {
        if self.exclusive {
            // This thread is the field's only writer (its slot owns the shard), so no other
            // store can fall between this load and this store; readers see either value.
            let before = counter.load(Ordering::Relaxed);
            counter.store(before.wrapping_add(delta), order);
            before
        } else {
            counter.fetch_add(delta, order)
        }
    }
}

/// The shards of one limiter: index 0 is shared, index `slot + 1` belongs to that slot.
#[derive(Debug)]
pub(crate) struct Shards {
    shards: Box<[CachePadded<Shard>]>,
}

impl Shards {
    pub(crate) fn new() -> Self {
        Self { shards: (0..=owned_shards()).map(|_| CachePadded::new(Shard::default())).collect() }
    }

    /// Shards in all, the shared one included.
    pub(crate) fn len(&self) -> usize {
        self.shards.len()
    }

    /// The calling thread's shard.
    #[inline(always)]
    pub(crate) fn local(&self) -> Local<'_> {
        match thread_slot::current() {
            Some(slot) if slot + 1 < self.shards.len() => {
                Local { shard: &self.shards[slot + 1], index: slot + 1, exclusive: true }
            }
            _ => Local { shard: &self.shards[0], index: 0, exclusive: false },
        }
    }

    /// Every shard a thread may have written: the shared one and those of slots issued so far.
    /// A slot issued after this call wrote nothing before it.
    #[inline]
    pub(crate) fn in_use(&self) -> &[CachePadded<Shard>] {
        let used = (thread_slot::issued() + 1).min(self.shards.len());
        &self.shards[..used]
    }

    /// The sum of one counter over every shard in use.
    pub(crate) fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.in_use()
            .iter()
            .fold(0u64, |sum, shard| sum.wrapping_add(counter(shard).load(Ordering::Relaxed)))
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn owned_and_shared_shards_both_count_exactly() {
        let shards = Shards::new();
        let local = shards.local();
        assert!(local.exclusive, "the test thread has a slot below the shard count");
        assert_eq!(local.add(&local.shard.sampled, 3, Ordering::Relaxed), 0);
        let shared = Local { shard: &shards.shards[0], index: 0, exclusive: false };
        shared.add(&shared.shard.sampled, 4, Ordering::Relaxed);
        assert_eq!(shards.sum(|s| &s.sampled), 7);
    }

    #[test]
    fn many_threads_lose_no_count() {
        let shards = Shards::new();
        let threads = owned_shards() + 4;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        let local = shards.local();
                        local.add(&local.shard.ignored, 1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(shards.sum(|s| &s.ignored), threads as u64 * 10_000);
    }
}
