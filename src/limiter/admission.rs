//! The admission word: in-flight, the limit and a waiters flag in one atomic, so admission is
//! one CAS and a release learns whether anyone waits from its own `fetch_sub`.
//!
//! Contains the overshoot bug of the references (Envoy's racy check-then-increment, Netflix's
//! partitioned limiter): because the limit in force and the in-flight count change together,
//! in-flight can never pass the limit a call was admitted under.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};

/// Bit layout of the admission word:
///
/// | bits   | field       |
/// |--------|-------------|
/// | 0..31  | `in_flight` |
/// | 31     | `BORROW_GUARD`: 1 at rest; a release with nothing held borrows it (see below) |
/// | 32..63 | `limit`     |
/// | 63     | `WAITERS`: someone is queued for a slot (see `wait.rs`) |
///
/// Invariants:
/// - An admission moves `in_flight` from `n` to `n + 1` only when `n < limit` in the same word,
///   so `in_flight <= limit` right after every admission. Lowering `limit` may leave
///   `in_flight > limit`; running work is never revoked, admissions stop until enough of it
///   completes. `limit <= MAX_LIMIT` (2^30) and every in-flight call was admitted under some
///   limit, so `in_flight` never carries into `BORROW_GUARD`.
/// - `BORROW_GUARD` is clear only between a release that found nothing held and its undo (the
///   C ABI's checked release, [`Admission::release_if_held`]): its `fetch_sub` borrows the guard
///   instead of the limit bits, so `limit` and `WAITERS` never change, and while it is clear
///   `in_flight` reads about 2^31, above any limit, so nothing is admitted until the undo.
/// - `WAITERS` is set only by a waiter whose CAS found no free slot, and cleared only when the
///   queue is empty, both under the queue lock. A release's `fetch_sub` returns the flag as it
///   was at that release: a waiter that queued earlier is seen, and one that queues later saw the
///   freed slot in its own CAS and took it instead of queueing. No wakeup can fall in between.
const IN_FLIGHT_MASK: u64 = (1 << 31) - 1;
const BORROW_GUARD: u64 = 1 << 31;
const LIMIT_SHIFT: u32 = 32;
const LIMIT_MASK: u64 = (1 << 31) - 1;
const WAITERS: u64 = 1 << 63;

/// In-flight count, limit and waiters flag, packed. See the table above.
///
/// Memory ordering: a successful acquire is `AcqRel` and a release is `Release`, so everything a caller did before releasing a
/// permit happens-before the acquire that takes its slot (the semaphore contract of
/// `tokio::sync::Semaphore`); a failed acquire is an `Acquire` load.
#[derive(Debug)]
pub(crate) struct Admission {
    word: CachePadded<AtomicU64>,
}

/// What [`Admission::release_if_held`] did: whether a slot was returned, and whether anyone
/// was waiting when it was (or when the refused release was undone).
#[cfg(any(not(valve_loom), test))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckedRelease {
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
        Self {
            word: CachePadded::new(AtomicU64::new(
                (u64::from(limit) << LIMIT_SHIFT) | BORROW_GUARD,
            )),
        }
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
                word + 1,
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
                (word + 1, Ok(in_flight + 1))
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

    /// Returns one slot (the caller must hold one); returns whether anyone was waiting.
    #[inline]
    pub(crate) fn release(&self) -> bool {
        // Release publishes the caller's work to the next acquirer. Reading the flag needs no
        // acquire: a hand-off then takes the queue lock, which orders everything it reads.
        self.word.fetch_sub(1, Ordering::Release) & WAITERS != 0
    }

    /// Returns one slot if any is held; otherwise changes nothing and answers `held: false`.
    /// For the C ABI, where a caller can release a copy of a permit twice: that second release
    /// must not wrap in-flight below 0 into the limit bits.
    ///
    /// One `fetch_sub`, as [`release`](Self::release) (a CAS loop here cost the C ABI a
    /// load and a retry on every release). With nothing held it borrows `BORROW_GUARD` and
    /// undoes that with a `fetch_add`; in between `in_flight` reads above any limit, so a
    /// racing acquire is refused, never over-admitted. Concurrent borrowers each see the guard
    /// clear or `in_flight` 0 and each undo their own, so the word comes back whole. A waiter
    /// that queued during the borrow is reported in `waiters` either way, so the caller grants
    /// it the slot the undo frees.
    // Only the C ABI calls it (not built under loom) and the loom model of the borrow.
    #[cfg(any(not(valve_loom), test))]
    #[inline(always)]
    pub(crate) fn release_if_held(&self) -> CheckedRelease {
        // Same ordering as `release`: Release publishes the caller's work.
        let before = self.word.fetch_sub(1, Ordering::Release);
        if before & BORROW_GUARD != 0 && before & IN_FLIGHT_MASK != 0 {
            return CheckedRelease { held: true, waiters: before & WAITERS != 0 };
        }
        self.undo_borrow()
    }

    #[cfg(any(not(valve_loom), test))]
    #[cold]
    fn undo_borrow(&self) -> CheckedRelease {
        // Relaxed: the borrow published nothing, and the undo hands nothing over; a waiter it
        // reveals is granted under the queue lock, which orders the rest.
        let after = self.word.fetch_add(1, Ordering::Relaxed) + 1;
        CheckedRelease { held: false, waiters: after & WAITERS != 0 }
    }

    /// Whether anyone is queued.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Acquire) & WAITERS != 0
    }

    /// Replaces the limit, keeping in-flight and the waiters flag; returns the previous limit
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

#[inline]
fn unpack(word: u64) -> (u32, u32) {
    ((word & IN_FLIGHT_MASK) as u32, ((word >> LIMIT_SHIFT) & LIMIT_MASK) as u32)
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_lowering_never_revokes() {
        let a = Admission::new(2);
        assert_eq!(a.try_acquire().unwrap(), 1);
        assert_eq!(a.try_acquire().unwrap(), 2);
        assert!(a.try_acquire().is_err());
        assert_eq!(a.set_limit(1), (2, false));
        assert_eq!(a.load(), (2, 1));
        assert!(!a.release());
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
        assert!(a.release(), "the release sees the waiter");
        a.clear_waiting();
        assert!(!a.has_waiters());
        assert_eq!(a.load(), (0, crate::limit::MAX_LIMIT));
    }

    #[test]
    fn release_if_held_refuses_at_zero_and_keeps_the_limit() {
        let held = |waiters| CheckedRelease { held: true, waiters };
        let refused = |waiters| CheckedRelease { held: false, waiters };
        let a = Admission::new(3);
        assert_eq!(a.release_if_held(), refused(false));
        assert_eq!(a.load(), (0, 3));
        a.try_acquire().unwrap();
        assert_eq!(a.release_if_held(), held(false));
        assert_eq!(a.release_if_held(), refused(false), "no slot left to return");
        assert_eq!(a.load(), (0, 3));
        assert_eq!(a.try_acquire().unwrap(), 1, "the guard is back: admission works");
        a.set_limit(1);
        assert!(a.try_acquire_or_flag_waiting().is_err());
        assert_eq!(a.release_if_held(), held(true), "reports the waiter like release");
        assert_eq!(a.release_if_held(), refused(true), "and when refusing");
        assert_eq!(a.load(), (0, 1));
    }

    /// Two refused releases overlapping, stepped by hand: a borrow at the largest limit leaves
    /// the limit bits alone and admits nothing, and the second borrower, which sees the guard
    /// clear with in-flight not 0, is refused and undoes its own borrow.
    #[test]
    fn overlapping_borrows_are_each_refused_and_undone() {
        use crate::limit::MAX_LIMIT;
        let a = Admission::new(MAX_LIMIT);
        let before = a.word.load(Ordering::Relaxed);
        let first = a.word.fetch_sub(1, Ordering::Relaxed);
        assert!(a.try_acquire().is_err(), "nothing is admitted during a borrow");
        assert_eq!(a.load().1, MAX_LIMIT, "the limit bits are untouched");
        assert!(!a.release_if_held().held, "a second borrower sees the guard clear");
        assert_eq!(first, before);
        a.undo_borrow();
        assert_eq!(a.word.load(Ordering::Relaxed), before);
    }
}

/// The borrow of `BORROW_GUARD`, model-checked. It lives here rather than in `tests/loom.rs`
/// because only the C ABI, which loom does not build, reaches it through the public API.
#[cfg(all(test, valve_loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// The one held slot's release races a stale copy's release and an acquire: the limit never
    /// changes, the acquire is admitted only within the limit, every release answers whether it
    /// returned a slot truthfully, and the word ends whole.
    #[test]
    fn a_stale_release_racing_a_real_one_never_changes_the_limit() {
        loom::model(|| {
            let admission = Arc::new(Admission::new(1));
            admission.try_acquire().unwrap();
            let releases: Vec<_> = (0..2)
                .map(|_| {
                    let admission = admission.clone();
                    thread::spawn(move || admission.release_if_held().held)
                })
                .collect();
            let acquired = admission.try_acquire().inspect(|&n| assert_eq!(n, 1)).is_ok();
            let returned =
                releases.into_iter().filter_map(|r| r.join().unwrap().then_some(())).count();
            assert!(returned >= 1, "the held slot always comes back");
            let word = admission.word.load(Ordering::Relaxed);
            assert_ne!(word & BORROW_GUARD, 0, "every borrow was undone");
            assert_eq!(admission.load(), (1 + u32::from(acquired) - returned as u32, 1));
        });
    }

    /// Two stale releases and an acquire with nothing held: a release returns a slot only if
    /// the acquire took one first (the copy returns someone else's, as the C ABI documents),
    /// overlapping borrows undo each other exactly, and a waiter flagged during a borrow is
    /// reported by the undo that follows it.
    #[test]
    fn overlapping_stale_releases_undo_exactly_and_report_a_waiter() {
        loom::model(|| {
            let admission = Arc::new(Admission::new(1));
            let releases: Vec<_> = (0..2)
                .map(|_| {
                    let admission = admission.clone();
                    thread::spawn(move || admission.release_if_held())
                })
                .collect();
            let acquired = admission.try_acquire_or_flag_waiting().is_ok();
            let seen: Vec<_> = releases.into_iter().map(|r| r.join().unwrap()).collect();
            let returned = seen.iter().filter(|r| r.held).count() as u32;
            assert!(returned <= u32::from(acquired), "no slot comes back that was not taken");
            assert_ne!(admission.word.load(Ordering::Relaxed) & BORROW_GUARD, 0);
            assert_eq!(admission.load(), (u32::from(acquired) - returned, 1));
            if !acquired {
                // Refused only during a borrow, so the waiter flag was set before its undo.
                assert!(seen.iter().any(|r| r.waiters), "the waiter is reported by an undo");
            }
        });
    }
}
