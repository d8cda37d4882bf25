//! The admission word: in-flight, the limit and a waiters flag in one atomic, so admission is
//! one CAS and a release learns whether anyone waits from its own `fetch_sub`.
//!
//! Contains the overshoot bug of the references (Envoy's racy check-then-increment, Netflix's
//! partitioned limiter): because the limit in force and the in-flight count change together,
//! in-flight can never pass the limit a call was admitted under. Contains a misused C permit's
//! harm, too: a release with nothing held is refused without wrapping the count into the limit
//! and without refusing, even for an instant, any acquire that races it.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};

/// Bit layout of the admission word:
///
/// | bits   | field |
/// |--------|-------|
/// | 0..32  | `count`: `EMPTY + in_flight`; below `EMPTY` while refused releases are unrepaired |
/// | 32..63 | `limit` |
/// | 63     | `WAITERS`: someone is queued for a slot (see `wait.rs`) |
///
/// `EMPTY` is 2^31: the count with nothing in flight. `in_flight` reads `count - EMPTY`, or 0
/// when `count < EMPTY` (an *overdraft*).
///
/// Invariants:
/// - An admission moves `in_flight` from `n` to `n + 1` only when `n < limit` in the same word,
///   so `in_flight <= limit` right after every admission. Lowering `limit` may leave
///   `in_flight > limit`; running work is never revoked, admissions stop until enough of it
///   completes. `limit <= MAX_LIMIT` (2^30) and every in-flight call was admitted under some
///   limit, so `count <= EMPTY + 2^30` never carries into `limit`.
/// - Every release is one `fetch_sub`. It returns a slot if and only if `count > EMPTY` before
///   it, i.e. a slot was held. Otherwise it is refused, and its decrement leaves an overdraft:
///   `count < EMPTY`, which still reads in-flight 0 (nothing is held). An admission that meets
///   an overdraft admits from 0 and writes `EMPTY + 1`, absorbing it, so a refused release never
///   makes an acquire fail or wait, however long its thread is preempted. Before it returns, a
///   refused release repairs any overdraft it still sees with a CAS back to `EMPTY` (a repair
///   racing an admission loses and leaves the admission's word). So `EMPTY - count` is at most
///   the number of threads inside a refused release, far below 2^31: `count` never borrows from
///   `limit`.
/// - `WAITERS` is set only by a waiter whose CAS found no free slot, and cleared only when the
///   queue is empty, both under the queue lock. A release's `fetch_sub` returns the flag as it
///   was at that release: a waiter that queued earlier is seen, and one that queues later saw the
///   freed slot in its own CAS and took it instead of queueing. No wakeup can fall in between.
///   A refused release frees nothing and never made a waiter queue, so it grants nothing.
const COUNT_MASK: u64 = u32::MAX as u64;
const EMPTY: u64 = 1 << 31;
const LIMIT_SHIFT: u32 = 32;
const LIMIT_MASK: u64 = (1 << 31) - 1;
const WAITERS: u64 = 1 << 63;

/// In-flight count, limit and waiters flag, packed. See the table above.
///
/// Memory ordering: a successful acquire is `AcqRel` and a release is `Release`, so everything a
/// caller did before releasing a permit happens-before the acquire that takes its slot (the
/// semaphore contract of `tokio::sync::Semaphore`); a failed acquire is an `Acquire` load.
#[derive(Debug)]
pub(crate) struct Admission {
    word: CachePadded<AtomicU64>,
}

/// What [`Admission::release`] did: whether a slot was returned, and whether anyone was waiting
/// when it was (always `false` for a refused release, which frees nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Released {
    pub(crate) held: bool,
    pub(crate) waiters: bool,
}

/// Admission refused: the word as the refusing CAS saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Full {
    pub(crate) limit: u32,
    pub(crate) in_flight: u32,
}

impl Admission {
    pub(crate) fn new(limit: u32) -> Self {
        Self { word: CachePadded::new(AtomicU64::new((u64::from(limit) << LIMIT_SHIFT) | EMPTY)) }
    }

    /// Takes one slot if in-flight is below the limit; returns in-flight including this call.
    #[inline]
    pub(crate) fn try_acquire(&self) -> Result<u32, Full> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let (in_flight, limit) = unpack(word);
            if in_flight >= limit {
                return Err(Full { limit, in_flight });
            }
            match self.word.compare_exchange_weak(
                word,
                with_in_flight(word, in_flight + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(in_flight + 1),
                Err(seen) => word = seen,
            }
        }
    }

    /// For a waiter, under the queue lock: takes a slot if one is free, else sets `WAITERS`
    /// in the same CAS (so no release can slip between the check and the flag).
    pub(crate) fn try_acquire_or_flag_waiting(&self) -> Result<u32, Full> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let (in_flight, limit) = unpack(word);
            let (next, result) = if in_flight < limit {
                (with_in_flight(word, in_flight + 1), Ok(in_flight + 1))
            } else {
                (word | WAITERS, Err(Full { limit, in_flight }))
            };
            if next == word {
                return result;
            }
            match self.word.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return result,
                Err(seen) => word = seen,
            }
        }
    }

    /// Clears `WAITERS`. Only under the queue lock, once the queue is empty.
    pub(crate) fn clear_waiting(&self) {
        self.word.fetch_and(!WAITERS, Ordering::Relaxed);
    }

    /// Returns one slot if any is held, in one `fetch_sub`; with nothing held it is refused
    /// (`held: false`) and leaves in-flight, the limit and the waiters flag as they were.
    ///
    /// Every release goes through here: a Rust permit always holds its slot, but a C caller can
    /// release a copy of a permit twice, and the copy may return a slot that another holder
    /// (a C permit, or a wait that is being cancelled) then gives back with nothing held. A
    /// refused release leaves an overdraft that reads as in-flight 0 and that an admission
    /// absorbs (see the table), so no acquire is ever refused on its account; it then repairs
    /// what is left of the overdraft on a cold path.
    #[inline(always)]
    pub(crate) fn release(&self) -> Released {
        // Release publishes the caller's work to the next acquirer. Reading the flag needs no
        // acquire: a hand-off then takes the queue lock, which orders everything it reads.
        let before = self.word.fetch_sub(1, Ordering::Release);
        if before & COUNT_MASK > EMPTY {
            return Released { held: true, waiters: before & WAITERS != 0 };
        }
        self.repair_overdraft();
        Released { held: false, waiters: false }
    }

    /// Raises an overdrafted count back to `EMPTY`, unless an admission or another repair did
    /// first; leaves a count at or above `EMPTY` alone.
    #[cold]
    fn repair_overdraft(&self) {
        // Relaxed: an overdraft and `EMPTY` both read in-flight 0, so the repair publishes and
        // hands over nothing; as an RMW it keeps earlier releases' release sequences intact.
        let mut word = self.word.load(Ordering::Relaxed);
        while word & COUNT_MASK < EMPTY {
            let repaired = (word & !COUNT_MASK) | EMPTY;
            match self.word.compare_exchange_weak(
                word,
                repaired,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => word = seen,
            }
        }
    }

    /// Whether anyone is queued.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Acquire) & WAITERS != 0
    }

    /// Replaces the limit, keeping the count and the waiters flag; returns the previous limit
    /// and whether anyone was waiting.
    pub(crate) fn set_limit(&self, limit: u32) -> (u32, bool) {
        let replace = |word: u64| {
            Some((word & !(LIMIT_MASK << LIMIT_SHIFT)) | (u64::from(limit) << LIMIT_SHIFT))
        };
        let previous = match self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, replace) {
            Ok(word) | Err(word) => word,
        };
        (unpack(previous).1, previous & WAITERS != 0)
    }

    /// `(in_flight, limit)`, read together.
    #[inline]
    pub(crate) fn load(&self) -> (u32, u32) {
        unpack(self.word.load(Ordering::Acquire))
    }
}

/// `(in_flight, limit)`; an overdraft reads in-flight 0.
#[inline(always)]
fn unpack(word: u64) -> (u32, u32) {
    ((word & COUNT_MASK).saturating_sub(EMPTY) as u32, ((word >> LIMIT_SHIFT) & LIMIT_MASK) as u32)
}

/// `word` with its count set to `in_flight` (absorbing any overdraft).
#[inline(always)]
fn with_in_flight(word: u64, in_flight: u32) -> u64 {
    (word & !COUNT_MASK) | (EMPTY + u64::from(in_flight))
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    const HELD: Released = Released { held: true, waiters: false };
    const REFUSED: Released = Released { held: false, waiters: false };

    #[test]
    fn admits_up_to_the_limit_and_lowering_never_revokes() {
        let a = Admission::new(2);
        assert_eq!(a.try_acquire().unwrap(), 1);
        assert_eq!(a.try_acquire().unwrap(), 2);
        assert!(a.try_acquire().is_err());
        assert_eq!(a.set_limit(1), (2, false));
        assert_eq!(a.load(), (2, 1));
        assert_eq!(a.release(), HELD);
        assert!(a.try_acquire().is_err(), "1 in flight at limit 1");
        a.release();
        assert_eq!(a.try_acquire().unwrap(), 1);
        assert_eq!(a.set_limit(5), (1, false));
        assert_eq!(a.load(), (1, 5));
    }

    #[test]
    fn the_waiters_flag_rides_along_without_touching_the_counts() {
        let a = Admission::new(1);
        assert_eq!(a.try_acquire_or_flag_waiting().unwrap(), 1);
        assert!(a.try_acquire_or_flag_waiting().is_err());
        assert!(a.has_waiters());
        assert_eq!(a.load(), (1, 1));
        assert!(a.try_acquire().is_err());
        assert_eq!(a.set_limit(crate::limit::MAX_LIMIT), (1, true));
        assert_eq!(a.load(), (1, crate::limit::MAX_LIMIT));
        assert_eq!(a.release(), Released { held: true, waiters: true }, "sees the waiter");
        a.clear_waiting();
        assert!(!a.has_waiters());
        assert_eq!(a.load(), (0, crate::limit::MAX_LIMIT));
    }

    #[test]
    fn a_release_with_nothing_held_is_refused_and_changes_nothing() {
        let a = Admission::new(3);
        let at_rest = a.word.load(Ordering::Relaxed);
        assert_eq!(a.release(), REFUSED);
        assert_eq!(a.word.load(Ordering::Relaxed), at_rest, "the overdraft was repaired");
        a.try_acquire().unwrap();
        assert_eq!(a.release(), HELD);
        assert_eq!(a.release(), REFUSED, "no slot left to return");
        assert_eq!(a.word.load(Ordering::Relaxed), at_rest);
        a.set_limit(1);
        a.try_acquire().unwrap();
        assert!(a.try_acquire_or_flag_waiting().is_err());
        assert_eq!(a.release(), Released { held: true, waiters: true });
        assert_eq!(a.release(), REFUSED, "a refused release frees nothing, so grants nothing");
        assert_eq!(a.load(), (0, 1));
    }

    /// Issue 17, bug 2: a refused release used to borrow a guard bit and refuse every acquire
    /// until its undo, so a preempted stale releaser stalled the limiter. Here two refused
    /// releases are stopped by hand between their `fetch_sub` and their repair, at the largest
    /// limit: in-flight reads 0, the limit bits are untouched, the limit's every slot is
    /// admitted meanwhile, and the late repairs leave the admissions' count alone.
    #[test]
    fn stale_copy_releases_do_not_stall_admission() {
        use crate::limit::MAX_LIMIT;
        let a = Admission::new(MAX_LIMIT);
        for _ in 0..2 {
            assert!(a.word.fetch_sub(1, Ordering::Release) & COUNT_MASK <= EMPTY);
        }
        assert_eq!(a.load(), (0, MAX_LIMIT), "an overdraft reads in-flight 0");
        assert_eq!(a.try_acquire().unwrap(), 1, "and admits from 0, absorbing it");
        assert_eq!(a.word.load(Ordering::Relaxed) & COUNT_MASK, EMPTY + 1);
        a.repair_overdraft();
        a.repair_overdraft();
        assert_eq!(a.load(), (1, MAX_LIMIT), "a late repair leaves an admission's count");
        a.set_limit(3);
        assert_eq!(a.release(), HELD);
        a.word.fetch_sub(1, Ordering::Release);
        let permits = (0..3).map(|_| a.try_acquire().unwrap()).collect::<Vec<_>>();
        assert_eq!(permits, [1, 2, 3], "every slot is admitted during an overdraft");
        assert!(a.try_acquire().is_err(), "and no more");
        a.repair_overdraft();
        assert_eq!(a.load(), (3, 3));
    }
}

/// The admission word's releases, model-checked. They live here rather than in `tests/loom.rs`
/// because only the C ABI, which loom does not build, can release with nothing held through
/// the public API.
#[cfg(all(test, valve_loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// Issue 17's sequence at the word: the one held slot was just granted to a waiter; a stale
    /// copy's release and that waiter's cancelled wait both give it back, racing an acquire.
    /// The acquire is refused only while the slot is really held, the limit never changes,
    /// exactly the held slots come back, and the limiter is neither wedged nor overdrawn after.
    #[test]
    fn a_cancelled_grant_racing_a_stale_release_never_wedges_or_stalls_admission() {
        loom::model(|| {
            let admission = Arc::new(Admission::new(1));
            admission.try_acquire().unwrap();
            let releases: Vec<_> = (0..2)
                .map(|_| {
                    let admission = admission.clone();
                    thread::spawn(move || admission.release())
                })
                .collect();
            let acquired = match admission.try_acquire() {
                Ok(in_flight) => {
                    assert_eq!(in_flight, 1);
                    true
                }
                Err(full) => {
                    assert_eq!((full.in_flight, full.limit), (1, 1), "refused only when full");
                    false
                }
            };
            let seen: Vec<_> = releases.into_iter().map(|r| r.join().unwrap()).collect();
            let returned = seen.iter().filter(|r| r.held).count() as u32;
            assert!((1..=1 + u32::from(acquired)).contains(&returned), "{seen:?}");
            assert!(seen.iter().all(|r| !r.waiters));
            let in_flight = 1 + u32::from(acquired) - returned;
            assert_eq!(admission.load(), (in_flight, 1));
            assert!(admission.word.load(Ordering::Relaxed) & COUNT_MASK >= EMPTY, "repaired");
            assert_eq!(admission.try_acquire().is_ok(), in_flight == 0, "not wedged");
        });
    }

    /// Two stale releases with nothing held, racing a waiter's acquire and a limit change:
    /// the acquire is never refused (nothing is held, so nothing may stall it), a release
    /// returns a slot only if the acquire took one first (the copy returns someone else's, as
    /// the C ABI documents), a repair never undoes the admission or the new limit, and the
    /// word ends with no overdraft.
    #[test]
    fn overlapping_stale_releases_never_refuse_an_acquire() {
        loom::model(|| {
            let admission = Arc::new(Admission::new(1));
            let releases: Vec<_> = (0..2)
                .map(|_| {
                    let admission = admission.clone();
                    thread::spawn(move || admission.release())
                })
                .collect();
            assert_eq!(admission.try_acquire_or_flag_waiting().unwrap(), 1, "never stalled");
            admission.set_limit(2);
            let returned =
                releases.into_iter().map(|r| r.join().unwrap()).filter(|r| r.held).count();
            assert!(returned <= 1, "no slot comes back that was not taken");
            assert!(!admission.has_waiters());
            assert_eq!(admission.load(), (1 - returned as u32, 2));
            assert!(admission.word.load(Ordering::Relaxed) & COUNT_MASK >= EMPTY);
        });
    }
}
