//! Sliding windows of call results: the last N calls, or the last N time buckets.
//!
//! The rate policies need, after every recorded call, the number of calls, failures and slow
//! calls in the window. Both windows keep those three as running totals next to their slots, so
//! recording is O(1) atomic operations and reading is three loads (resilience4j's approach,
//! without its lock or its per-record snapshot allocation). A time window evicts at most its
//! number of buckets when time jumps (Finagle caps skipped windows the same way).
//!
//! Every count that enters a slot enters the totals, and leaves them exactly once, when the
//! thread that evicts or resets that slot subtracts what it swapped out. So the totals are exact
//! whenever no call is being recorded; while calls race they may be off by the racing calls
//! (the subtraction of an evicted slot can land before the addition of a call that went into
//! it), which is why they are signed and clamped when read.
//!
//! A success that cannot change a decision skips the shared window (see `shards.rs`): a count
//! window full of successes stays full of successes, and a time window without failures or slow
//! calls counts it in the calling thread's shard instead. The window's calls are then its own
//! plus, for a time window, the shards' successes in the window's epochs.

use std::num::NonZeroU64;

use crate::breaker::shards::{Shard, Shards};
use crate::clock::Nanos;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The most buckets a time window counts in per-thread shards; a wider window counts every
/// call in its shared buckets.
pub(crate) const MAX_SHARDED_BUCKETS: u32 = 64;

/// Division and remainder by a divisor fixed at construction, without a hardware divide on
/// the per-call path (Lemire, Kaser and Kurz, "Faster Remainder by Direct Computation", 2019:
/// with a 128-bit reciprocal both are exact for every 64-bit numerator).
#[derive(Debug, Clone, Copy)]
struct Divisor {
    d: u64,
    /// `ceil(2^128 / d)`, which wraps to 0 for `d == 1`.
    m: u128,
}

impl Divisor {
    fn new(d: NonZeroU64) -> Self {
        let d = d.get();
        Self { d, m: (u128::MAX / u128::from(d)).wrapping_add(1) }
    }

    /// The high 64 bits of the 192-bit product `x * d`.
    #[inline]
    fn mul_hi(x: u128, d: u64) -> u64 {
        let bottom = ((x as u64) as u128 * d as u128) >> 64;
        let top = (x >> 64) * d as u128;
        ((bottom + top) >> 64) as u64
    }

    #[inline]
    fn rem(self, a: u64) -> u64 {
        Self::mul_hi(self.m.wrapping_mul(u128::from(a)), self.d)
    }

    #[inline]
    fn div(self, a: u64) -> u64 {
        if self.d == 1 { a } else { Self::mul_hi(self.m, a) }
    }
}

/// Running totals of a window. Each field is a wrapping `u64` read as `i64`.
///
/// Memory ordering: everything here is `Relaxed`. The totals are statistics: a trip decision
/// made from them is committed by a CAS on the state word, which orders it.
#[derive(Debug, Default)]
struct Totals {
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// What a window holds, as the policies read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WindowCounts {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

/// One call's contribution to a window: a slot code in the count window.
///
/// | bit | meaning |
/// |-----|---------|
/// | 0   | the slot holds a call |
/// | 1   | that call failed |
/// | 2   | that call was slow |
const CALL: u32 = 1;
const FAILED: u32 = 1 << 1;
const SLOW: u32 = 1 << 2;

#[inline]
fn code(failed: bool, slow: bool) -> u32 {
    CALL | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 }
}

impl Totals {
    #[inline]
    fn add(&self, calls: i64, failures: i64, slow: i64) {
        // Zero deltas are skipped: in steady state a success replacing a success writes nothing.
        if calls != 0 {
            self.calls.fetch_add(calls as u64, Ordering::Relaxed);
        }
        if failures != 0 {
            self.failures.fetch_add(failures as u64, Ordering::Relaxed);
        }
        if slow != 0 {
            self.slow.fetch_add(slow as u64, Ordering::Relaxed);
        }
    }

    /// Whether the window holds no failure and no slow call (a racing update reads as not
    /// clean, which only sends a success down the shared path).
    #[inline]
    fn is_clean(&self) -> bool {
        self.failures.load(Ordering::Relaxed) == 0 && self.slow.load(Ordering::Relaxed) == 0
    }

    #[inline]
    fn read(&self) -> WindowCounts {
        let calls = (self.calls.load(Ordering::Relaxed) as i64).max(0) as u64;
        let clamp = |v: u64| ((v as i64).max(0) as u64).min(calls);
        WindowCounts {
            calls,
            failures: clamp(self.failures.load(Ordering::Relaxed)),
            slow: clamp(self.slow.load(Ordering::Relaxed)),
        }
    }
}

/// The last `slots.len()` calls (resilience4j `COUNT_BASED`): each call overwrites the oldest.
///
/// Memory ordering: `Relaxed` throughout. A slot is only ever changed by a swap (never a load
/// then a store), so whatever order two writers of one slot take, what leaves the totals is
/// what entered them.
#[derive(Debug)]
pub(crate) struct CountWindow {
    /// Calls ever recorded since the last reset; call `n` goes to slot `n % len`.
    next: AtomicU64,
    /// Slot codes, see the table above; 0 is an empty slot.
    slots: Box<[AtomicU32]>,
    len: Divisor,
    totals: Totals,
}

impl CountWindow {
    pub(crate) fn new(calls: NonZeroU64) -> Self {
        Self {
            next: AtomicU64::new(0),
            slots: (0..calls.get()).map(|_| AtomicU32::new(0)).collect(),
            len: Divisor::new(calls),
            totals: Totals::default(),
        }
    }

    #[inline]
    fn record(&self, failed: bool, slow: bool) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[self.len.rem(n) as usize];
        let new = code(failed, slow);
        // A call like the one it replaces changes nothing: skip the write (in steady state
        // almost every call). Only a swap may change a slot, so the totals stay balanced.
        if slot.load(Ordering::Relaxed) == new {
            return;
        }
        let old = slot.swap(new, Ordering::Relaxed);
        let bit = |c: u32, b: u32| i64::from(c & b != 0);
        self.totals.add(
            bit(new, CALL) - bit(old, CALL),
            bit(new, FAILED) - bit(old, FAILED),
            bit(new, SLOW) - bit(old, SLOW),
        );
    }

    /// Whether a success may skip the window: it is full of successes, so one more replaces a
    /// success with a success.
    #[inline]
    fn full_of_successes(&self) -> bool {
        self.totals.calls.load(Ordering::Relaxed) == self.slots.len() as u64
            && self.totals.is_clean()
    }

    #[cold]
    fn reset(&self) {
        self.next.store(0, Ordering::Relaxed);
        for slot in self.slots.iter() {
            let old = slot.swap(0, Ordering::Relaxed);
            let bit = |b: u32| i64::from(old & b != 0);
            self.totals.add(-bit(CALL), -bit(FAILED), -bit(SLOW));
        }
    }
}

/// One time bucket: the epoch (bucket index since time 0) it holds and its counts.
#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// The last `buckets.len()` buckets of `width` ns each (resilience4j `TIME_BASED` with one
/// bucket per second, Polly's and Hystrix's 10 rolling buckets).
///
/// A call at `now` belongs to epoch `now / width` and to bucket `epoch % len`. A bucket still
/// holding an older epoch is evicted (its counts leave the totals) by whichever thread wins the
/// CAS on its `epoch`; when time moves past several epochs, the thread that advances `head`
/// evicts the buckets in between, at most `len` of them. A call whose bucket already holds a
/// newer epoch (it came in more than a window late) is left out of the window.
///
/// Memory ordering: `Relaxed` throughout. `head` and each bucket's `epoch` only decide who
/// evicts; no other data is published through them, and counts stay balanced because every
/// eviction is a CAS won once and drains with swaps.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    width: Divisor,
    len: Divisor,
    /// The newest epoch any call has reached; buckets after it up to it are evicted.
    head: AtomicU64,
    buckets: Box<[Bucket]>,
    totals: Totals,
    /// The first epoch whose shard counts belong to the window: the epoch after the last
    /// reset, so shard counts from before it (in older buckets, or earlier in the reset's own
    /// epoch) never count. Written by a transition's owner before it settles the state word.
    shards_from: AtomicU64,
    /// Whether successes may be counted in shards (at most `MAX_SHARDED_BUCKETS` buckets).
    sharded: bool,
}

impl TimeWindow {
    pub(crate) fn new(buckets: NonZeroU64, width: NonZeroU64) -> Self {
        Self {
            width: Divisor::new(width),
            len: Divisor::new(buckets),
            head: AtomicU64::new(0),
            buckets: (0..buckets.get()).map(|_| Bucket::default()).collect(),
            totals: Totals::default(),
            shards_from: AtomicU64::new(0),
            sharded: buckets.get() <= u64::from(MAX_SHARDED_BUCKETS),
        }
    }

    /// Counts a success in the calling thread's shard if the window holds no failure and no
    /// slow call (so the success cannot trip a rate) and the success falls in the window's
    /// current epochs; `false` when it must take the shared path. A success in an epoch past
    /// `head` takes the shared path, which moves the window on (once per epoch), so shard
    /// counts always lie in the epochs the shared window covers.
    #[inline]
    fn count_in_shard(&self, shard: Shard<'_>, now: Nanos) -> bool {
        if !self.sharded || !self.totals.is_clean() {
            return false;
        }
        let epoch = self.width.div(now);
        let head = self.head.load(Ordering::Relaxed);
        // Relaxed: the transition that wrote `shards_from` was acquired with the state word.
        let from = self.shards_from.load(Ordering::Relaxed);
        if epoch > head || epoch < from || head - epoch >= self.buckets.len() as u64 {
            return false;
        }
        shard.count_in_bucket(self.len.rem(epoch) as usize, epoch)
    }

    /// The shards' successes in the window's current epochs.
    fn shard_calls(&self, shards: &Shards) -> u64 {
        if !self.sharded {
            return 0;
        }
        let head = self.head.load(Ordering::Relaxed);
        let first = head
            .saturating_sub(self.buckets.len() as u64 - 1)
            .max(self.shards_from.load(Ordering::Relaxed));
        (first..=head).map(|epoch| shards.calls_in(self.len.rem(epoch) as usize, epoch)).sum()
    }

    #[inline]
    fn bucket(&self, epoch: u64) -> &Bucket {
        &self.buckets[self.len.rem(epoch) as usize]
    }

    #[inline]
    fn record(&self, failed: bool, slow: bool, now: Nanos) {
        let epoch = self.width.div(now);
        let head = self.head.load(Ordering::Relaxed);
        if epoch > head {
            self.advance(head, epoch);
        }
        let bucket = self.bucket(epoch);
        let held = bucket.epoch.load(Ordering::Relaxed);
        if held < epoch {
            self.evict(bucket, epoch);
        } else if held > epoch {
            return;
        }
        // The bucket may be evicted between the check and these adds; the call then counts in
        // the newer epoch, and leaves the totals with it.
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            bucket.failures.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            bucket.slow.fetch_add(1, Ordering::Relaxed);
        }
        self.totals.add(1, i64::from(failed), i64::from(slow));
    }

    /// Moves `head` to `epoch`; the winner evicts the buckets of the epochs skipped.
    #[cold]
    fn advance(&self, head: u64, epoch: u64) {
        if self.head.compare_exchange(head, epoch, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        let len = self.buckets.len() as u64;
        let first = (head + 1).max(epoch.saturating_sub(len - 1));
        for skipped in first..epoch {
            self.evict(self.bucket(skipped), skipped);
        }
    }

    /// Makes `bucket` hold `epoch` if it holds an older one; the CAS winner removes the old
    /// counts from the totals.
    #[cold]
    fn evict(&self, bucket: &Bucket, epoch: u64) {
        let mut held = bucket.epoch.load(Ordering::Relaxed);
        while held < epoch {
            match bucket.epoch.compare_exchange(held, epoch, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    self.drain(bucket);
                    return;
                }
                Err(seen) => held = seen,
            }
        }
    }

    fn drain(&self, bucket: &Bucket) {
        let calls = bucket.calls.swap(0, Ordering::Relaxed) as i64;
        let failures = bucket.failures.swap(0, Ordering::Relaxed) as i64;
        let slow = bucket.slow.swap(0, Ordering::Relaxed) as i64;
        self.totals.add(-calls, -failures, -slow);
    }

    #[cold]
    fn reset(&self, now: Nanos) {
        for bucket in self.buckets.iter() {
            self.drain(bucket);
        }
        let from = self.width.div(now).saturating_add(1);
        self.shards_from.store(from, Ordering::Relaxed);
    }
}

/// The window a breaker's rate policies read.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// Takes a success that cannot trip a rate without touching the shared window: `true` if
    /// it is accounted for (counted in `shard`, or needing no count at all), `false` if it must
    /// be recorded with [`record`](Self::record).
    #[inline]
    pub(crate) fn take_success(&self, shard: Shard<'_>, now: Nanos) -> bool {
        match self {
            Self::Count(w) => w.full_of_successes(),
            Self::Time(w) => w.count_in_shard(shard, now),
        }
    }

    /// Adds one call and returns the window's counts including it. The shards' successes are
    /// added only when a rate could trip (the window holds a failure or a slow call); without
    /// one, no count of calls can trip it, and `calls` is the shared window's alone.
    #[inline]
    pub(crate) fn record(
        &self,
        failed: bool,
        slow: bool,
        now: Nanos,
        shards: &Shards,
    ) -> WindowCounts {
        match self {
            Self::Count(w) => {
                w.record(failed, slow);
                w.totals.read()
            }
            Self::Time(w) => {
                w.record(failed, slow, now);
                let mut counts = w.totals.read();
                if counts.failures != 0 || counts.slow != 0 {
                    counts.calls += w.shard_calls(shards);
                }
                counts
            }
        }
    }

    /// The counts, without recording. A time window's expired buckets still count until the
    /// first call of a newer epoch evicts them.
    pub(crate) fn counts(&self, shards: &Shards) -> WindowCounts {
        match self {
            Self::Count(w) => w.totals.read(),
            Self::Time(w) => {
                let mut counts = w.totals.read();
                counts.calls += w.shard_calls(shards);
                counts
            }
        }
    }

    /// Empties the window at `now` (on closing, and on a manual reset).
    #[cold]
    pub(crate) fn reset(&self, now: Nanos) {
        match self {
            Self::Count(w) => w.reset(),
            Self::Time(w) => w.reset(now),
        }
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    fn counts(calls: u64, failures: u64, slow: u64) -> WindowCounts {
        WindowCounts { calls, failures, slow }
    }

    #[test]
    fn divisor_matches_hardware_division() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut divisors = vec![1, 2, 3, 7, 10, 100, 1000, 1 << 20, 1_000_000_000, u64::MAX];
        divisors.extend((0..50).map(|_| next() >> (next() % 64)).filter(|&d| d != 0));
        for d in divisors {
            let divisor = Divisor::new(NonZeroU64::new(d).unwrap());
            let mut numerators = vec![0, 1, d - 1, d, d.wrapping_add(1), u64::MAX, u64::MAX - 1];
            numerators.extend((0..200).map(|_| next() >> (next() % 64)));
            for a in numerators {
                assert_eq!((divisor.div(a), divisor.rem(a)), (a / d, a % d), "{a} / {d}");
            }
        }
    }

    #[test]
    fn count_window_keeps_the_last_n_calls() {
        let shards = Shards::new(0);
        let w = Window::Count(CountWindow::new(NonZeroU64::new(3).unwrap()));
        assert_eq!(w.record(true, false, 0, &shards), counts(1, 1, 0));
        assert_eq!(w.record(false, true, 0, &shards), counts(2, 1, 1));
        assert_eq!(w.record(true, true, 0, &shards), counts(3, 2, 2));
        assert_eq!(w.record(false, false, 0, &shards), counts(3, 1, 2), "first failure left");
        assert_eq!(w.record(false, false, 0, &shards), counts(3, 1, 1));
        w.reset(0);
        assert_eq!(w.counts(&shards), counts(0, 0, 0));
        assert_eq!(w.record(true, false, 0, &shards), counts(1, 1, 0));
    }

    #[test]
    fn time_window_evicts_expired_buckets() {
        let shards = Shards::new(0);
        let width = NonZeroU64::new(10).unwrap();
        let w = Window::Time(TimeWindow::new(NonZeroU64::new(3).unwrap(), width));
        assert_eq!(w.record(true, false, 0, &shards), counts(1, 1, 0));
        assert_eq!(w.record(false, false, 15, &shards), counts(2, 1, 0));
        assert_eq!(w.record(true, true, 29, &shards), counts(3, 2, 1));
        assert_eq!(w.record(false, false, 30, &shards), counts(3, 1, 1), "epoch 0 left");
        assert_eq!(w.record(false, false, 45, &shards), counts(3, 1, 1), "epoch 1 left");
        assert_eq!(w.record(false, false, 5, &shards), counts(3, 1, 1), "too late: left out");
        assert_eq!(w.record(false, false, 1_000, &shards), counts(1, 0, 0), "a jump empties it");
        w.reset(0);
        assert_eq!(w.counts(&shards), counts(0, 0, 0));
    }

    #[test]
    fn successes_skip_the_window_only_while_they_cannot_trip_it() {
        let count = Window::Count(CountWindow::new(NonZeroU64::new(2).unwrap()));
        let shards = Shards::new(2);
        let shard = shards.local().unwrap();
        assert!(!count.take_success(shard, 0), "an unfilled window must count the call");
        count.record(false, false, 0, &shards);
        count.record(false, false, 0, &shards);
        assert!(count.take_success(shard, 0), "full of successes");
        count.record(true, false, 0, &shards);
        assert!(!count.take_success(shard, 0), "a failure in the window");

        let width = NonZeroU64::new(10).unwrap();
        let time = Window::Time(TimeWindow::new(NonZeroU64::new(2).unwrap(), width));
        assert!(time.take_success(shard, 5));
        assert!(!time.take_success(shard, 15), "a new epoch moves the shared window on");
        assert_eq!(time.record(false, false, 15, &shards), counts(1, 0, 0));
        assert!(time.take_success(shard, 16));
        assert!(time.take_success(shard, 3), "an older epoch still in the window");
        assert_eq!(time.counts(&shards), counts(4, 0, 0));
        assert_eq!(time.record(true, false, 17, &shards), counts(5, 1, 0), "shards counted");
        assert!(!time.take_success(shard, 18), "a failure in the window");
        assert_eq!(time.record(false, false, 30, &shards), counts(1, 0, 0), "epoch 1 left");
        assert!(time.take_success(shard, 31), "the failure's bucket was evicted");
        assert_eq!(time.counts(&shards), counts(2, 0, 0));
        time.reset(31);
        assert_eq!(time.counts(&shards), counts(0, 0, 0), "shards from before the reset");
        assert!(!time.take_success(shard, 39), "the reset's own epoch is shared");
        assert_eq!(time.record(false, false, 40, &shards), counts(1, 0, 0));
        assert!(time.take_success(shard, 41));
        assert_eq!(time.counts(&shards), counts(2, 0, 0));
    }
}
