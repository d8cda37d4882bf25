//! Per-thread shards of a Closed breaker's successes: what keeps the common call off every
//! shared cache line.
//!
//! Contains *the cost of the healthy case under contention*. In a Closed breaker nearly every
//! call succeeds; if each success wrote shared counters (the totals, the window's position, a
//! time bucket), threads calling through one breaker would bounce those lines between cores on
//! every call. A success that cannot change any decision (no failure and no slow call in the
//! window, no failure in a row: see `Breaker::record`) is counted here instead, in the calling
//! thread's own shard, by its only writer, with plain loads and stores.
//!
//! A shard holds its thread's successes counted here (for the snapshot's totals) and, for a time
//! window, its successes per time bucket. Whoever needs the window's calls (a failure's rate
//! check, a snapshot) adds every shard's buckets inside the window to the window's own counts. A
//! count window needs no buckets: successes skip it only while it is full of successes, where
//! one more success changes nothing.
//!
//! Threads without a slot of their own (more threads than shards, or a thread-local destructor)
//! take the shared path.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering, fence};
use crate::thread_slot::{self, owned_shards};

/// A shard bucket's `epoch` while it holds no count (never written, or being reused).
const EMPTY: u64 = u64::MAX;

/// One thread's successes in one time bucket.
///
/// `epoch` guards `calls` as a sequence lock: before reusing the bucket for a newer epoch the
/// owner writes `EMPTY`, then the new count, then the new epoch. Epochs only grow, so a reader
/// that sees the same epoch before and after reading `calls` read a count of that epoch.
#[derive(Debug)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU64,
}

/// Buckets per cache line (`CachePadded`'s 128 bytes on x86-64 and aarch64, the most it uses).
const BUCKETS_PER_LINE: usize = 128 / std::mem::size_of::<Bucket>();

/// One thread's counters. Only the thread owning the slot writes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shard<'a> {
    /// Successes ever counted here; only grows.
    successes: &'a AtomicU64,
    /// Time window only: successes per epoch, bucket `epoch % len`.
    buckets: &'a [Bucket],
}

impl Shard<'_> {
    /// Counts one success in the shard's totals.
    #[inline]
    pub(crate) fn count_success(self) {
        // Only the owner writes (see `Shards::local`), so no store can fall between this load
        // and this store. Relaxed: a statistic, read by snapshots only.
        let before = self.successes.load(Ordering::Relaxed);
        self.successes.store(before.wrapping_add(1), Ordering::Relaxed);
    }

    /// Counts one success in time bucket `index` for `epoch`; `false` (counting nothing) if the
    /// bucket already holds a newer epoch, which happens only when time went back.
    #[inline]
    pub(crate) fn count_in_bucket(self, index: usize, epoch: u64) -> bool {
        let Some(bucket) = self.buckets.get(index) else { return false };
        let held = bucket.epoch.load(Ordering::Relaxed);
        if held == epoch {
            // Owner only, as above. Relaxed: a reader that sees a stale count of this epoch
            // misses calls racing with it, never calls of another epoch.
            let calls = bucket.calls.load(Ordering::Relaxed);
            bucket.calls.store(calls + 1, Ordering::Relaxed);
            return true;
        }
        if held != EMPTY && held > epoch {
            return false;
        }
        self.start_epoch(bucket, epoch);
        true
    }

    #[cold]
    fn start_epoch(self, bucket: &Bucket, epoch: u64) {
        bucket.epoch.store(EMPTY, Ordering::Relaxed);
        // Release fence (the seqlock's write side): a reader that reads the count stored below
        // then sees, after its Acquire fence, EMPTY or the new epoch, never the old one.
        fence(Ordering::Release);
        bucket.calls.store(1, Ordering::Relaxed);
        // Release: a reader that sees the new epoch sees its count.
        bucket.epoch.store(epoch, Ordering::Release);
    }

    /// This shard's successes in epoch `epoch`, if its bucket `index` holds that epoch.
    fn calls_in(self, index: usize, epoch: u64) -> u64 {
        let Some(bucket) = self.buckets.get(index) else { return 0 };
        loop {
            // Acquire pairs with the Release store of the epoch: the count read below is at
            // least the one written with it.
            let before = bucket.epoch.load(Ordering::Acquire);
            if before != epoch {
                return 0;
            }
            let calls = bucket.calls.load(Ordering::Relaxed);
            // Acquire fence: if the count read above came from a reuse of the bucket, the epoch
            // load below sees that reuse's EMPTY or a newer epoch (the seqlock read side).
            fence(Ordering::Acquire);
            if bucket.epoch.load(Ordering::Relaxed) == before {
                return calls;
            }
            // The owner moved the bucket to a newer epoch meanwhile; look again.
        }
    }
}

/// A breaker's success shards: index `slot` belongs to that thread slot.
///
/// Memory ordering: owners write with Relaxed stores (the bucket protocol above excepted);
/// readers take sums that are exact once the writers are quiet and otherwise miss only the
/// successes racing with them. A thread slot is handed over through a mutex (see
/// `thread_slot`), so a new owner continues from everything the previous owner wrote.
///
/// The buckets of all shards live in one allocation, each shard's on cache lines of its own
/// (a line of padding at each end keeps neighbouring allocations off them too).
#[derive(Debug)]
pub(crate) struct Shards {
    successes: Box<[CachePadded<AtomicU64>]>,
    buckets: Box<[Bucket]>,
    /// Buckets per shard in `buckets`, rounded up to whole cache lines.
    stride: usize,
    /// Buckets each shard uses (the time window's length, or 0).
    len: usize,
}

impl Shards {
    /// Shards with `time_buckets` buckets each (0 without a time window).
    pub(crate) fn new(time_buckets: usize) -> Self {
        let shards = owned_shards();
        let stride = time_buckets.div_ceil(BUCKETS_PER_LINE) * BUCKETS_PER_LINE;
        let padding = if time_buckets == 0 { 0 } else { 2 * BUCKETS_PER_LINE };
        Self {
            successes: (0..shards).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
            buckets: (0..shards * stride + padding)
                .map(|_| Bucket { epoch: AtomicU64::new(EMPTY), calls: AtomicU64::new(0) })
                .collect(),
            stride,
            len: time_buckets,
        }
    }

    fn shard(&self, index: usize) -> Shard<'_> {
        let first = BUCKETS_PER_LINE + index * self.stride;
        let buckets = if self.len == 0 { &[] } else { &self.buckets[first..first + self.len] };
        Shard { successes: &self.successes[index], buckets }
    }

    /// The calling thread's own shard, or `None` when it has no slot below the shard count.
    #[inline(always)]
    pub(crate) fn local(&self) -> Option<Shard<'_>> {
        thread_slot::current().filter(|&slot| slot < self.successes.len()).map(|s| self.shard(s))
    }

    /// Every shard a thread may have written: those of the slots issued so far.
    fn in_use(&self) -> impl Iterator<Item = Shard<'_>> {
        (0..thread_slot::issued().min(self.successes.len())).map(|index| self.shard(index))
    }

    /// Successes ever counted in the shards.
    pub(crate) fn successes(&self) -> u64 {
        self.in_use()
            .fold(0, |sum, shard| sum.wrapping_add(shard.successes.load(Ordering::Relaxed)))
    }

    /// Successes counted in epoch `epoch`, whose bucket index is `index`.
    pub(crate) fn calls_in(&self, index: usize, epoch: u64) -> u64 {
        self.in_use().map(|shard| shard.calls_in(index, epoch)).sum()
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_per_epoch_and_refuse_going_back() {
        let shards = Shards::new(2);
        let local = shards.local().expect("the test thread has a slot below the shard count");
        assert!(local.count_in_bucket(0, 4));
        assert!(local.count_in_bucket(0, 4));
        assert!(local.count_in_bucket(1, 5));
        assert_eq!((shards.calls_in(0, 4), shards.calls_in(1, 5)), (2, 1));
        assert!(local.count_in_bucket(0, 6), "a newer epoch reuses the bucket");
        assert_eq!((shards.calls_in(0, 4), shards.calls_in(0, 6)), (0, 1));
        assert!(!local.count_in_bucket(0, 2), "an older epoch is refused");
        local.count_success();
        local.count_success();
        assert_eq!(shards.successes(), 2);
    }

    #[test]
    fn no_buckets_without_a_time_window() {
        let shards = Shards::new(0);
        let local = shards.local().unwrap();
        assert!(!local.count_in_bucket(0, 1));
        assert_eq!(shards.calls_in(0, 1), 0);
    }
}
