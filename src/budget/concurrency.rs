//! A concurrency budget: retries in flight as a share of requests in flight (Envoy's
//! `retry_budget`).
//!
//! Envoy (envoyproxy/envoy:source/common/upstream/resource_manager_impl.h) allows a retry while
//! `retries < max(budget_percent / 100 × (active + pending), min_retry_concurrency)` and
//! documents that its separate atomics "may temporarily go above the supplied maximums". Here
//! both counts live in one word, so the check and the increment are one CAS and the bound is
//! never exceeded.

use crossbeam_utils::CachePadded;

use super::{BudgetDenied, BudgetSnapshot, DenyReason, to_milli};
use crate::error::ConfigError;
use crate::sync::{AtomicU64, Ordering};

/// Bit layout of [`ConcurrencyBudget`]'s word:
///
/// | bits   | field         | meaning |
/// |--------|---------------|---------|
/// | 0..32  | `retries`     | retries in flight |
/// | 32..64 | `outstanding` | requests in flight, active plus pending (Envoy counts both) |
///
/// Invariant: a retry starts (moving `retries` from `r` to `r + 1`) only when `r` is below the
/// maximum computed from `outstanding` in the same word, so right after every start
/// `retries <= max(outstanding × percent, min)`. Finishing requests may shrink the maximum below
/// the retries running; running retries are never revoked. `retries` stays below
/// `max(outstanding, min) < 2^32`, so it never carries into `outstanding`; `outstanding` must
/// stay below 2^32 (four billion requests in flight).
const RETRIES_MASK: u64 = u32::MAX as u64;
const OUTSTANDING_SHIFT: u32 = 32;
const OUTSTANDING_ONE: u64 = 1 << OUTSTANDING_SHIFT;

/// Retries in flight as a share of requests in flight, with a floor (Envoy's retry budget).
///
/// Count every request in flight (originals, retries, and pending requests waiting for a
/// connection, as Envoy does) with [`request_started`](Self::request_started) and
/// [`request_finished`](Self::request_finished); bracket each retry with
/// [`try_start_retry`](Self::try_start_retry) and [`retry_finished`](Self::retry_finished). A
/// retry's own request is counted as a request too, so the budget shrinks as originals turn into
/// retries, as in Envoy (envoy-mobile PR 811). Time plays no part: no clock, no `_at` form.
///
/// # Memory ordering
///
/// Every access is `Relaxed`: the word guards no other memory, and the bound is decided inside
/// the CAS that takes the slot, which is all exactness needs.
///
/// # Example
///
/// ```
/// use valve::ConcurrencyBudget;
///
/// let budget = ConcurrencyBudget::envoy();
/// budget.request_started();
/// assert!(budget.try_start_retry().is_ok(), "the floor of 3 allows it");
/// budget.retry_finished();
/// budget.request_finished();
/// ```
#[derive(Debug)]
pub struct ConcurrencyBudget {
    /// `(outstanding, retries)`; see the table above.
    word: CachePadded<AtomicU64>,
    allowed: AtomicU64,
    denied: AtomicU64,
    /// `budget_percent` in thousandths of a percent.
    percent_milli: u64,
    min_retry_concurrency: u32,
}

impl ConcurrencyBudget {
    /// A budget allowing `budget_percent` (0 to 100, digits beyond the third decimal ignored) of
    /// the requests in flight to be retries, and at least `min_retry_concurrency` retries.
    pub fn new(budget_percent: f64, min_retry_concurrency: u32) -> Result<Self, ConfigError> {
        ConfigError::check_ratio("budget_percent", budget_percent, 0.0, 100.0, true, "[0, 100]")?;
        Ok(Self {
            word: CachePadded::new(AtomicU64::new(0)),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            percent_milli: to_milli(budget_percent),
            min_retry_concurrency,
        })
    }

    /// Envoy's defaults (`circuit_breaker.proto`): 20 % of active plus pending requests, at
    /// least 3 retries.
    pub fn envoy() -> Self {
        Self {
            word: CachePadded::new(AtomicU64::new(0)),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            percent_milli: 20_000,
            min_retry_concurrency: 3,
        }
    }

    /// The most retries allowed in flight with `outstanding` requests in flight:
    /// `max(outstanding × percent / 100, min)`, truncated as Envoy's `double` to `uint64_t`
    /// conversion, but computed in integers (exact for every percentage with 3 decimals).
    #[inline]
    pub fn max_retries(&self, outstanding: u32) -> u64 {
        let share = u64::from(outstanding) * self.percent_milli / 100_000;
        share.max(u64::from(self.min_retry_concurrency))
    }

    /// A request (original or retry) became active or pending.
    #[inline]
    pub fn request_started(&self) {
        self.word.fetch_add(OUTSTANDING_ONE, Ordering::Relaxed);
    }

    /// A request finished. Returns false, changing nothing, if none was outstanding.
    #[inline]
    pub fn request_finished(&self) -> bool {
        self.word
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                (word >= OUTSTANDING_ONE).then(|| word - OUTSTANDING_ONE)
            })
            .is_ok()
    }

    /// May a retry start now? If so it holds a retry slot until
    /// [`retry_finished`](Self::retry_finished).
    ///
    /// Boundary: allowed while `retries < max` (strict, Envoy `canCreate`: `count() < max()`).
    #[inline]
    pub fn try_start_retry(&self) -> Result<(), BudgetDenied> {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let (outstanding, retries) = unpack(word);
            let max = self.max_retries(outstanding);
            if u64::from(retries) >= max {
                return self.deny(i64::try_from(max).unwrap_or(i64::MAX) - i64::from(retries));
            }
            match self.word.compare_exchange_weak(
                word,
                word + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => word = seen,
            }
        }
        self.allowed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    #[cold]
    fn deny(&self, balance: i64) -> Result<(), BudgetDenied> {
        self.denied.fetch_add(1, Ordering::Relaxed);
        Err(BudgetDenied { reason: DenyReason::ConcurrencyExhausted, balance, requested: 1 })
    }

    /// A retry that [`try_start_retry`](Self::try_start_retry) allowed finished. Returns
    /// false, changing nothing, if no retry was in flight.
    #[inline]
    pub fn retry_finished(&self) -> bool {
        self.word
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                (word & RETRIES_MASK != 0).then(|| word - 1)
            })
            .is_ok()
    }

    /// `(outstanding requests, retries in flight)`, read together.
    #[inline]
    pub fn in_flight(&self) -> (u32, u32) {
        unpack(self.word.load(Ordering::Relaxed))
    }

    /// Counts and the current maximum; see [`BudgetSnapshot`].
    pub fn snapshot(&self) -> BudgetSnapshot {
        let (outstanding, retries) = self.in_flight();
        let max = self.max_retries(outstanding);
        BudgetSnapshot {
            balance: i64::try_from(max).unwrap_or(i64::MAX) - i64::from(retries),
            capacity: max,
            allowed: self.allowed.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            outstanding: outstanding.into(),
            retries_in_flight: retries.into(),
        }
    }
}

#[inline]
fn unpack(word: u64) -> (u32, u32) {
    ((word >> OUTSTANDING_SHIFT) as u32, (word & RETRIES_MASK) as u32)
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    fn started(budget: &ConcurrencyBudget, requests: u32) {
        for _ in 0..requests {
            budget.request_started();
        }
    }

    /// Envoy's rule with its defaults: `max(0.2 × (active + pending), 3)`, truncated.
    #[test]
    fn envoy_golden_vector() {
        let budget = ConcurrencyBudget::envoy();
        let maxima: Vec<u64> =
            [0, 1, 14, 15, 19, 20, 24, 25, 100].map(|n| budget.max_retries(n)).to_vec();
        assert_eq!(maxima, [3, 3, 3, 3, 3, 4, 4, 5, 20]);
        started(&budget, 24);
        for _ in 0..4 {
            assert!(budget.try_start_retry().is_ok());
        }
        let denied = budget.try_start_retry().unwrap_err();
        assert_eq!((denied.reason, denied.balance), (DenyReason::ConcurrencyExhausted, 0));
        budget.request_started(); // 25 outstanding: max 5
        assert!(budget.try_start_retry().is_ok());
        assert!(budget.try_start_retry().is_err());
        for _ in 0..10 {
            budget.request_finished();
        }
        let snapshot = budget.snapshot();
        assert_eq!(snapshot.balance, 3 - 5, "the budget shrank below the running retries");
        assert_eq!(
            (snapshot.capacity, snapshot.outstanding, snapshot.retries_in_flight),
            (3, 15, 5)
        );
        assert_eq!((snapshot.allowed, snapshot.denied), (5, 2));
        for _ in 0..2 {
            assert!(budget.retry_finished());
        }
        assert!(budget.try_start_retry().is_err(), "3 running, max 3");
        assert!(budget.retry_finished());
        assert!(budget.try_start_retry().is_ok());
    }

    #[test]
    fn unbalanced_finishes_change_nothing() {
        let budget = ConcurrencyBudget::new(50.0, 0).unwrap();
        assert!(!budget.request_finished());
        assert!(!budget.retry_finished());
        assert!(budget.try_start_retry().is_err(), "no floor and nothing in flight");
        started(&budget, 3);
        assert!(budget.try_start_retry().is_ok(), "1.5 truncates to 1");
        assert!(budget.try_start_retry().is_err());
        assert_eq!(budget.in_flight(), (3, 1));
    }

    #[test]
    fn percentages_are_exact_and_checked() {
        let budget = ConcurrencyBudget::new(33.333, 0).unwrap();
        assert_eq!(budget.max_retries(3000), 999);
        assert_eq!(
            ConcurrencyBudget::new(100.0, 1).unwrap().max_retries(u32::MAX),
            u64::from(u32::MAX)
        );
        assert!(ConcurrencyBudget::new(100.1, 3).is_err());
        assert!(ConcurrencyBudget::new(-1.0, 3).is_err());
        assert!(ConcurrencyBudget::new(f64::NAN, 3).is_err());
    }
}
