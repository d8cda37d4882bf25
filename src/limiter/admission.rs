//! The admission word: in-flight and the limit in one atomic, so admission is one CAS.
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
/// | 32..64 | `limit`     |
///
/// Invariant: an admission moves `in_flight` from `n` to `n + 1` only when `n < limit` in the
/// same word, so `in_flight <= limit` holds right after every admission. Lowering `limit` may
/// leave `in_flight > limit`; running work is never revoked, admissions simply stop until enough
/// of it completes. `limit <= MAX_LIMIT` (2^30) and every in-flight call was admitted under some
/// limit, so `in_flight` never carries into `limit`.
const IN_FLIGHT_MASK: u64 = u32::MAX as u64;
const LIMIT_SHIFT: u32 = 32;

/// In-flight count and limit, packed. See the table above.
///
/// Memory ordering: a successful acquire is `AcqRel` and a release is `Release`, so everything a
/// caller did before releasing a permit happens-before the acquire that takes its slot (the
/// semaphore contract of `tokio::sync::Semaphore`); a failed acquire is an `Acquire` load.
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

    /// Returns one slot. The caller must hold one (a permit).
    #[inline]
    pub(crate) fn release(&self) {
        self.word.fetch_sub(1, Ordering::Release);
    }

    /// Replaces the limit, keeping in-flight; returns the previous limit.
    pub(crate) fn set_limit(&self, limit: u32) -> u32 {
        let replace = |word: u64| Some((word & IN_FLIGHT_MASK) | (u64::from(limit) << LIMIT_SHIFT));
        let previous = match self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, replace) {
            Ok(word) | Err(word) => word,
        };
        unpack(previous).1
    }

    /// `(in_flight, limit)`, read together.
    #[inline]
    pub(crate) fn load(&self) -> (u32, u32) {
        unpack(self.word.load(Ordering::Acquire))
    }
}

#[inline]
fn unpack(word: u64) -> (u32, u32) {
    ((word & IN_FLIGHT_MASK) as u32, (word >> LIMIT_SHIFT) as u32)
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
        assert_eq!(a.set_limit(1), 2);
        assert_eq!(a.load(), (2, 1));
        a.release();
        assert!(a.try_acquire().is_err(), "1 in flight at limit 1");
        a.release();
        assert_eq!(a.try_acquire().unwrap(), 1);
        assert_eq!(a.set_limit(5), 1);
        assert_eq!(a.load(), (1, 5));
    }
}
