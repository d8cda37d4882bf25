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
/// | 0..32  | `in_flight` |
/// | 32..63 | `limit`     |
/// | 63     | `WAITERS`: someone is queued for a slot (see `wait.rs`) |
///
/// Invariants:
/// - An admission moves `in_flight` from `n` to `n + 1` only when `n < limit` in the same word,
///   so `in_flight <= limit` right after every admission. Lowering `limit` may leave
///   `in_flight > limit`; running work is never revoked, admissions stop until enough of it
///   completes. `limit <= MAX_LIMIT` (2^30) and every in-flight call was admitted under some
///   limit, so `in_flight` never carries into `limit`.
/// - `WAITERS` is set only by a waiter whose CAS found no free slot, and cleared only when the
///   queue is empty, both under the queue lock. A release's `fetch_sub` returns the flag as it
///   was at that release: a waiter that queued earlier is seen, and one that queues later saw the
///   freed slot in its own CAS and took it instead of queueing. No wakeup can fall in between.
const IN_FLIGHT_MASK: u64 = u32::MAX as u64;
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

/// Admission refused: the word as the refusing CAS saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Full {
    pub(crate) limit: u32,
    pub(crate) in_flight: u32,
}

impl Admission {
    pub(crate) fn new(limit: u32) -> Self {
        Self { word: CachePadded::new(AtomicU64::new(u64::from(limit) << LIMIT_SHIFT)) }
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

    /// Returns one slot if any is held, refusing (`None`) when in-flight is 0; otherwise as
    /// [`release`](Self::release). For the C ABI, where a caller can release a copy of a permit
    /// twice: the second release must not wrap in-flight below 0 and borrow from the limit bits.
    // Only the C ABI calls it, and the ABI is not built under loom.
    #[cfg(not(valve_loom))]
    #[inline]
    pub(crate) fn release_if_held(&self) -> Option<bool> {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & IN_FLIGHT_MASK == 0 {
                return None;
            }
            // Same orderings as `release`: Release publishes the caller's work.
            match self.word.compare_exchange_weak(
                word,
                word - 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(word & WAITERS != 0),
                Err(seen) => word = seen,
            }
        }
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
            Some((word & (IN_FLIGHT_MASK | WAITERS)) | (u64::from(limit) << LIMIT_SHIFT))
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
        let a = Admission::new(3);
        assert_eq!(a.release_if_held(), None);
        assert_eq!(a.load(), (0, 3));
        a.try_acquire().unwrap();
        assert_eq!(a.release_if_held(), Some(false));
        assert_eq!(a.release_if_held(), None, "no slot left to return");
        assert_eq!(a.load(), (0, 3));
        a.try_acquire_or_flag_waiting().unwrap();
        a.set_limit(1);
        assert!(a.try_acquire_or_flag_waiting().is_err());
        assert_eq!(a.release_if_held(), Some(true), "reports the waiter like release");
    }
}
