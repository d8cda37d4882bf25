//! A windowed retry ratio with a reserve: Finagle's `RetryBudget`, lock-free and exact.
//!
//! Every request deposits; a retry withdraws. Deposits and withdrawals expire after about a
//! ttl, so the budget lets through `percent_can_retry` retries per recent request, plus a
//! reserve of `min_retries_per_sec × ttl` for clients with little traffic. Amounts are
//! integers scaled by 1000 as in Finagle (twitter/finagle:
//! finagle-core/src/main/scala/com/twitter/finagle/service/RetryBudget.scala), for every
//! percentage, which fixes tower's truncation (tower issue 857: `TpsBudget` scales by 1 for
//! percentages up to 100 %, so 60 % becomes 100 %).
//!
//! Expiry follows Finagle's `WindowedAdder` (twitter/util:
//! util-core/src/main/scala/com/twitter/util/WindowedAdder.scala) exactly: ten slices of
//! `ttl / 10`; an access that finds a slice's time elapsed (`now - anchor >= window`) rotates
//! once, clears the slices skipped while idle (at most all ten: bounded work however long the
//! idle time), and re-anchors the window at its own `now`. The rotation is claimed by one CAS on
//! the generation word; every other thread carries on.
//!
//! Deposits and withdrawals touch only the balance word, one RMW each. The open slice is never
//! stored: it is the balance minus `mark`, the sum of the closed live slices. The rotation's
//! winner closes it and expires old slices with one CAS on the balance, so every deposit and
//! withdrawal falls on exactly one side of the slice boundary and nothing is lost or counted
//! twice.

use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::{BudgetDenied, BudgetSnapshot, DenyReason};
use crate::clock::{Clock, MonotonicClock, Nanos, duration_to_nanos};
use crate::error::ConfigError;
use crate::sync::{AtomicI64, AtomicU64, Ordering};

/// Finagle's fixed-point scale: one request deposits this much.
const SCALE: i64 = 1000;
/// Slices per ttl (Finagle `WindowedAdder(ttl, 10)`).
const SLICES: usize = 10;

/// Bit layout of [`WindowedBudget`]'s rotation word:
///
/// | bits  | field        | meaning |
/// |-------|--------------|---------|
/// | 0..4  | `current`    | the open slice's slot (0..10), stored only when it closes |
/// | 4     | `rotating`   | a thread has claimed the rotation and is moving slices |
/// | 5..64 | `generation` | rotations completed |
///
/// Invariant: only the thread whose CAS set `rotating` writes `anchor`, `mark` and the closed
/// slices and moves `current`, and it publishes them all by storing the word with `rotating`
/// clear and `generation + 1`; so at most one rotation runs at a time and each starts from the
/// state its predecessor left. Outside a rotation, `balance == mark + open slice` and `mark` is
/// the sum of the closed slices other than `current` (slot `current` is stale until reused).
const CURRENT_MASK: u64 = 0b1111;
const ROTATING: u64 = 1 << 4;
const GENERATION_ONE: u64 = 1 << 5;

/// A [`WindowedBudget`]'s configuration (Finagle's `RetryBudget.apply` arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowedConfig {
    /// How long a deposit or withdrawal counts: 1 s to 60 s inclusive (Finagle's bounds).
    pub ttl: Duration,
    /// Retries per second allowed however little traffic there is (the reserve).
    pub min_retries_per_sec: u32,
    /// Retries allowed per request, as a fraction: 0.2 is 20 %; from 0 to 1000 inclusive.
    pub percent_can_retry: f64,
}

impl WindowedConfig {
    /// Finagle's `RetryBudget()` default, also tower's `TpsBudget::default`: ttl 10 s, 10
    /// retries per second, 20 %.
    pub const fn finagle() -> Self {
        Self { ttl: Duration::from_secs(10), min_retries_per_sec: 10, percent_can_retry: 0.2 }
    }

    /// Checks the ranges Finagle's `RetryBudget.apply` requires.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ttl < Duration::from_secs(1) || self.ttl > Duration::from_secs(60) {
            return Err(ConfigError::out_of_range(
                "ttl",
                format_args!("{:?}", self.ttl),
                "[1 s, 60 s]",
            ));
        }
        ConfigError::check_ratio(
            "percent_can_retry",
            self.percent_can_retry,
            0.0,
            1000.0,
            true,
            "[0, 1000]",
        )
    }
}

impl Default for WindowedConfig {
    fn default() -> Self {
        Self::finagle()
    }
}

/// Retries as a ratio of recent requests, with a reserve (Finagle's `RetryBudget`).
///
/// Call [`deposit`](Self::deposit) once per *original* request, whatever its outcome (Finagle's
/// `RetryFilter`), and [`try_withdraw`](Self::try_withdraw) before each retry. The forms with
/// `_at` take the time; the others read the budget's [`Clock`].
///
/// The balance in Finagle units is `reserve + live deposits − live withdrawals`; a withdrawal
/// of `withdrawal` units goes only if the balance is at least that (`count >= n`, Finagle
/// `TokenBucket.tryGet`), decided by one CAS on the balance word, so concurrent withdrawals
/// can never overdraw it (tower's `TpsBudget` checks, then adds). When both
/// `min_retries_per_sec` and `percent_can_retry` are zero the budget is Finagle's
/// `RetryBudget.Empty`: it refuses every retry.
///
/// # Memory ordering
///
/// Deposits and withdrawals are `Relaxed` RMWs on the balance word: it guards no other memory,
/// the withdrawal's bound is decided inside its CAS, and the rotation moves expired amounts out
/// with a CAS on the same word, so the modification order of that one atomic is the whole
/// history. The rotation word is an acquire/release pair, so each rotation starts from the
/// anchor, `mark` and slices its predecessor published.
#[derive(Debug)]
pub struct WindowedBudget<C: Clock = MonotonicClock> {
    /// Live deposits minus live withdrawals, in Finagle units; the reserve is added on read.
    balance: CachePadded<AtomicI64>,
    /// Sums of the closed slices (Finagle's `buf`); only a rotation's winner touches them.
    slices: [AtomicI64; SLICES],
    /// The sum of the closed live slices: `balance - mark` is the open slice (Finagle's
    /// `writer`). Only a rotation's winner touches it.
    mark: AtomicI64,
    /// `(generation, rotating, current)`; see the table above.
    rotation: AtomicU64,
    /// When the open slice started (Finagle's `old`); written only by a rotation's winner.
    anchor: AtomicU64,
    allowed: AtomicU64,
    denied: AtomicU64,
    deposit: i64,
    withdrawal: i64,
    reserve: i64,
    window: Nanos,
    /// False for Finagle's `RetryBudget.Empty`.
    enabled: bool,
    config: WindowedConfig,
    clock: C,
}

impl WindowedBudget<MonotonicClock> {
    /// A budget reading the system's monotonic clock, starting now.
    pub fn new(config: WindowedConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, MonotonicClock::new())
    }

    /// [`WindowedConfig::finagle`].
    pub fn finagle() -> Self {
        Self::from_valid(WindowedConfig::finagle(), MonotonicClock::new())
    }
}

impl<C: Clock> WindowedBudget<C> {
    /// A budget whose first slice starts at `clock.now()`; the methods without `_at` read
    /// `clock`, and the `_at` forms must use the same origin.
    pub fn with_clock(config: WindowedConfig, clock: C) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::from_valid(config, clock))
    }

    fn from_valid(config: WindowedConfig, clock: C) -> Self {
        let percent = config.percent_can_retry;
        let (deposit, withdrawal) = if percent == 0.0 {
            (0, 1)
        } else {
            // Finagle's `(ScaleFactor / percentCanRetry).toInt`: truncation, saturating at
            // Int.MaxValue; at least 1 because percent <= 1000.
            (SCALE, (SCALE as f64 / percent).min(f64::from(i32::MAX)) as i64)
        };
        // Finagle's `minRetriesPerSec * ttl.inSeconds * withdrawalAmount` (whole seconds).
        let reserve =
            i64::from(config.min_retries_per_sec).saturating_mul(config.ttl.as_secs() as i64);
        let reserve = reserve.saturating_mul(withdrawal);
        let slices: [AtomicI64; SLICES] = std::array::from_fn(|_| AtomicI64::new(0));
        Self {
            balance: CachePadded::new(AtomicI64::new(0)),
            slices,
            mark: AtomicI64::new(0),
            rotation: AtomicU64::new(0),
            anchor: AtomicU64::new(clock.now()),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            deposit,
            withdrawal,
            reserve,
            window: duration_to_nanos(config.ttl) / SLICES as u64,
            enabled: config.min_retries_per_sec != 0 || percent != 0.0,
            config,
            clock,
        }
    }

    /// The clock the methods without `_at` read.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The configuration in force.
    pub fn config(&self) -> &WindowedConfig {
        &self.config
    }

    /// Records one original request, reading the clock.
    #[inline]
    pub fn deposit(&self) {
        self.deposit_at(self.clock.now());
    }

    /// Records one original request at `now`: adds 1000 units (0 when `percent_can_retry` is
    /// 0) that count for about a ttl.
    #[inline]
    pub fn deposit_at(&self, now: Nanos) {
        if !self.enabled {
            return;
        }
        self.expire_due(now);
        if self.deposit != 0 {
            self.balance.fetch_add(self.deposit, Ordering::Relaxed);
        }
    }

    /// May a retry go now? Reads the clock.
    #[inline]
    pub fn try_withdraw(&self) -> Result<(), BudgetDenied> {
        self.try_withdraw_at(self.clock.now())
    }

    /// May a retry go at `now`? If so its withdrawal is taken (and expires like a deposit).
    ///
    /// Boundary: allowed when the balance is at least the withdrawal (`>=`, Finagle
    /// `TokenBucket.tryGet`: `count >= n`).
    #[inline]
    pub fn try_withdraw_at(&self, now: Nanos) -> Result<(), BudgetDenied> {
        if !self.enabled {
            return self.deny(0, self.withdrawal);
        }
        self.try_take_at(self.withdrawal, now)
    }

    /// Finagle's `TokenBucket.tryGet(units)` on the balance word: one CAS decides and takes.
    #[inline]
    fn try_take_at(&self, units: i64, now: Nanos) -> Result<(), BudgetDenied> {
        self.expire_due(now);
        let need = units - self.reserve;
        let mut live = self.balance.load(Ordering::Relaxed);
        loop {
            if live < need {
                return self.deny(live.saturating_add(self.reserve), units);
            }
            match self.balance.compare_exchange_weak(
                live,
                live - units,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => live = seen,
            }
        }
        self.allowed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    #[cold]
    fn deny(&self, balance: i64, units: i64) -> Result<(), BudgetDenied> {
        self.denied.fetch_add(1, Ordering::Relaxed);
        Err(BudgetDenied { reason: DenyReason::WindowExhausted, balance, requested: units as u64 })
    }

    /// Retries the budget would allow now, reading the clock (Finagle's `balance`).
    pub fn balance(&self) -> i64 {
        self.balance_at(self.clock.now())
    }

    /// Retries the budget would allow at `now`: the balance divided by the withdrawal,
    /// truncated (Finagle's `RetryBudget.balance`); 0 for an empty budget. Expires like any
    /// access.
    pub fn balance_at(&self, now: Nanos) -> i64 {
        if !self.enabled {
            return 0;
        }
        self.units_at(now) / self.withdrawal
    }

    /// The balance in Finagle units (the bucket's `count`), after expiry at `now`.
    fn units_at(&self, now: Nanos) -> i64 {
        self.expire_due(now);
        self.balance.load(Ordering::Relaxed).saturating_add(self.reserve)
    }

    /// Units one request deposits (1000, or 0 when `percent_can_retry` is 0).
    pub fn deposit_units(&self) -> i64 {
        self.deposit
    }

    /// Units one retry withdraws (`1000 / percent_can_retry`, truncated; 1 when it is 0).
    pub fn withdrawal_units(&self) -> i64 {
        self.withdrawal
    }

    /// Units always available: `min_retries_per_sec × whole ttl seconds × withdrawal`.
    pub fn reserve_units(&self) -> i64 {
        self.reserve
    }

    /// Balance (in Finagle units, after expiry at the clock's now) and counters.
    pub fn snapshot(&self) -> BudgetSnapshot {
        self.snapshot_at(self.clock.now())
    }

    /// Balance (in Finagle units, after expiry at `now`) and counters; see [`BudgetSnapshot`].
    pub fn snapshot_at(&self, now: Nanos) -> BudgetSnapshot {
        BudgetSnapshot {
            balance: if self.enabled { self.units_at(now) } else { 0 },
            capacity: 0,
            allowed: self.allowed.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            outstanding: 0,
            retries_in_flight: 0,
        }
    }

    /// Rotates if a slice's time has elapsed since the anchor (`>=`, Finagle's
    /// `(now() - old) >= window`). The fast path is one load.
    #[inline]
    fn expire_due(&self, now: Nanos) {
        // Relaxed: a stale anchor is older, so it can only make a rotation look due; `rotate`
        // re-checks under its claim.
        if now.saturating_sub(self.anchor.load(Ordering::Relaxed)) >= self.window {
            self.rotate(now);
        }
    }

    /// Finagle's `WindowedAdder.expired`, claimed by a CAS on the generation word. Clears the
    /// slice that becomes current and one per further whole window skipped, at most all ten.
    #[cold]
    #[inline(never)]
    fn rotate(&self, now: Nanos) {
        // Acquire: pairs with the previous winner's release, to read its anchor and current.
        let word = self.rotation.load(Ordering::Acquire);
        if word & ROTATING != 0 {
            return;
        }
        if self
            .rotation
            .compare_exchange(word, word | ROTATING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let elapsed = now.saturating_sub(self.anchor.load(Ordering::Relaxed));
        if elapsed < self.window {
            // A rotation finished between our check and our claim; give the claim back as is.
            self.rotation.store(word, Ordering::Release);
            return;
        }
        // Finagle: `nskip = min((now - old) / window - 1, N)` with N = 9 buffered slices, plus
        // the slice that becomes the writer; all ten when the open slice expires too.
        let cleared = (elapsed / self.window).min(SLICES as u64) as usize;
        let current = (word & CURRENT_MASK) as usize;
        // Relaxed: `mark` and the slices are this winner's alone (the claim acquired them).
        let mark = self.mark.load(Ordering::Relaxed);
        let expiring: i64 = (1..=cleared.min(SLICES - 1))
            .map(|step| self.slices[(current + step) % SLICES].load(Ordering::Relaxed))
            .sum();
        // One CAS closes the open slice and expires the old ones against the same balance:
        // a deposit or withdrawal lands before it (in the closed slice) or after (in the new).
        let mut balance = self.balance.load(Ordering::Relaxed);
        let (open, live) = loop {
            let open = balance.wrapping_sub(mark);
            let live = if cleared == SLICES { 0 } else { balance.wrapping_sub(expiring) };
            match self.balance.compare_exchange_weak(
                balance,
                live,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (open, live),
                Err(seen) => balance = seen,
            }
        };
        for step in 1..=cleared {
            self.slices[(current + step) % SLICES].store(0, Ordering::Relaxed);
        }
        if cleared < SLICES {
            self.slices[current].store(open, Ordering::Relaxed);
        }
        self.mark.store(live, Ordering::Relaxed);
        self.anchor.store(now, Ordering::Relaxed);
        let next = (current + cleared) % SLICES;
        let generation = (word & !(CURRENT_MASK | ROTATING)) + GENERATION_ONE;
        // Release: publishes the anchor, mark and slices with the new current slice.
        self.rotation.store(generation | next as u64, Ordering::Release);
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    const MS: Nanos = 1_000_000;
    const S: Nanos = 1_000_000_000;

    fn budget(ttl_s: u64, min: u32, percent: f64) -> WindowedBudget<Arc<ManualClock>> {
        let config = WindowedConfig {
            ttl: Duration::from_secs(ttl_s),
            min_retries_per_sec: min,
            percent_can_retry: percent,
        };
        WindowedBudget::with_clock(config, Arc::new(ManualClock::new(0))).unwrap()
    }

    /// Finagle's `RetryBudgetTest.testBudget`, frozen clock: 10 000 × (deposit, try
    /// withdraw), within 1 of `10000 × percent + ttl × min`; the exact counts are derived from
    /// the ×1000 rules (Finagle's own test allows ±1 for the truncated withdrawal).
    #[test]
    fn finagle_retry_budget_test_vectors() {
        let cases: [(u64, u32, f64, u32); 14] = [
            (60, 0, 0.1, 1000),
            (60, 0, 0.5, 5000),
            (60, 0, 0.25, 2500),
            (60, 0, 0.75, 7501),
            (60, 0, 0.99, 9900),
            (60, 0, 0.999, 9990),
            (60, 0, 0.9999, 10000),
            (60, 0, 0.01, 100),
            (60, 0, 0.001, 10),
            (60, 0, 0.0001, 1),
            (1, 10, 0.0, 10),
            (2, 5, 0.0, 10),
            (1, 10, 0.1, 1010),
            (2, 5, 0.5, 5010),
        ];
        for (ttl, min, percent, exact) in cases {
            let rb = budget(ttl, min, percent);
            let min_retries = ttl as i64 * i64::from(min);
            assert_eq!(rb.balance_at(0), min_retries);
            let mut retried = 0;
            for _ in 0..10_000 {
                rb.deposit_at(0);
                if rb.try_withdraw_at(0).is_ok() {
                    retried += 1;
                } else {
                    assert_eq!(rb.balance_at(0), 0);
                }
            }
            let expected = (10_000.0 * percent) as i64 + min_retries;
            assert!((expected - retried).abs() <= 1, "{percent}: {retried} vs {expected}");
            assert_eq!(retried, i64::from(exact), "ttl {ttl} min {min} percent {percent}");
        }
    }

    /// tower issue 857: 60 % must allow 60 % of requests as retries, not 100 %.
    #[test]
    fn sixty_percent_is_not_one_hundred() {
        let rb = budget(10, 0, 0.6);
        assert_eq!(rb.withdrawal_units(), 1666);
        let retried = (0..10_000)
            .filter(|_| {
                rb.deposit_at(0);
                rb.try_withdraw_at(0).is_ok()
            })
            .count();
        assert_eq!(retried, 6002, "10 000 000 / 1666, truncated");
    }

    #[test]
    fn empty_budget_and_percent_above_one() {
        let rb = budget(10, 0, 0.0);
        assert_eq!(rb.balance_at(0), 0);
        assert!(rb.try_withdraw_at(0).is_err());
        rb.deposit_at(0);
        assert_eq!(rb.balance_at(0), 0);
        assert!(rb.try_withdraw_at(0).is_err());
        // Finagle's "maxPercentOver greater than 1.0": 2.0 gives 2 retries per request.
        let rb = budget(60, 0, 2.0);
        assert!(rb.try_withdraw_at(0).is_err());
        for _ in 0..10_000 {
            rb.deposit_at(0);
        }
        assert_eq!(rb.balance_at(0), 20_000);
    }

    /// util's `TokenBucketTest` "provisions reserves" (ttl 3 s, reserve 100 units), through
    /// the budget with percent 1.0 (deposit and withdrawal 1000 units, so 1 token = 1000).
    #[test]
    fn util_token_bucket_reserve_vector() {
        let rb = budget(3, 0, 1.0);
        let rb = WindowedBudget { reserve: 100 * 1000, ..rb };
        let take = |n: i64, at: Nanos| rb.try_take_at(n * 1000, at).is_ok();
        assert!(take(50, 0));
        assert!(take(50, 0));
        assert!(!take(1, 0));
        rb.deposit_at(0);
        assert!(take(1, 0));
        assert!(!take(1, S), "the -100 still counts at 1 s");
        assert!(!take(1, 2 * S));
        assert!(!take(1, 3 * S), "and at 3 s");
        assert!(take(50, 4 * S), "gone at 4 s");
        assert!(take(100, 7 * S), "the -50 expired by 7 s");
        assert!(!take(1, 7 * S));
    }

    /// tower's `TpsBudget` unit tests, which hold for the ×1000 budget too.
    #[test]
    fn tower_tps_budget_vectors() {
        let rb = budget(1, 0, 1.0);
        rb.deposit_at(0);
        assert!(rb.try_withdraw_at(3 * S).is_err(), "the deposit expired");
        let rb = budget(1, 5, 1.0);
        for _ in 0..5 {
            assert!(rb.try_withdraw_at(0).is_ok());
        }
        assert!(rb.try_withdraw_at(0).is_err());
    }

    #[test]
    fn deposits_live_nine_to_ten_windows_and_idle_clears_in_bounded_work() {
        let rb = budget(1, 0, 1.0);
        rb.deposit_at(0);
        // Accesses every window re-anchor at each window boundary: the deposit is in slice 0,
        // which becomes current again (and is cleared) at the tenth rotation.
        for step in 1..10 {
            assert_eq!(rb.balance_at(step * 100 * MS), 1, "window {step}");
        }
        assert_eq!(rb.balance_at(1000 * MS), 0);
        rb.deposit_at(1000 * MS);
        assert_eq!(rb.balance_at(u64::MAX), 0, "one rotation clears all ten slices");
        let snapshot = rb.snapshot_at(u64::MAX);
        assert_eq!((snapshot.balance, snapshot.allowed, snapshot.denied), (0, 0, 0));
    }

    #[test]
    fn configs_are_checked() {
        let config = |ttl_ms: u64, percent: f64| WindowedConfig {
            ttl: Duration::from_millis(ttl_ms),
            min_retries_per_sec: 1,
            percent_can_retry: percent,
        };
        assert!(WindowedBudget::new(config(999, 0.2)).is_err());
        assert!(WindowedBudget::new(config(60_001, 0.2)).is_err());
        assert!(WindowedBudget::new(config(60_000, 1000.0)).is_ok());
        assert!(WindowedBudget::new(config(1000, 1000.1)).is_err());
        assert!(WindowedBudget::new(config(1000, -0.1)).is_err());
        assert!(WindowedBudget::new(config(1000, f64::NAN)).is_err());
        let rb = WindowedBudget::finagle();
        assert_eq!(
            (rb.deposit_units(), rb.withdrawal_units(), rb.reserve_units()),
            (1000, 5000, 500_000)
        );
        assert_eq!(rb.balance(), 100, "Finagle's default allows a burst of 100");
    }
}
