//! A token quota credited by successes: gRPC A6 retry throttling and the AWS standard retry
//! quota on one lock-free word.
//!
//! Both references keep an integer balance in `[0, capacity]` that successes raise and failures
//! (gRPC) or retries (AWS) lower; they differ only in when a retry may go and what a success
//! gives back, which [`QuotaRule`] and [`TokenQuotaConfig`] spell out. Every change is one
//! clamping CAS loop on a packed word, as gRPC's C core does (`ClampedAdd` in
//! grpc/grpc:src/core/client_channel/retry_throttle.cc), never a check followed by an add.

use crossbeam_utils::CachePadded;

use super::{BudgetDenied, BudgetSnapshot, DenyReason, to_milli};
use crate::error::ConfigError;
use crate::sync::{AtomicU64, Ordering};

/// Bit layout of [`TokenQuota`]'s word:
///
/// | bits   | field     | meaning |
/// |--------|-----------|---------|
/// | 0..32  | `balance` | tokens (in the quota's units) available now |
/// | 32..64 | `allowed` | retries granted by [`TokenQuota::try_retry`], modulo 2^32 |
///
/// Invariant: `balance <= capacity` at every instant, because every write is a CAS from a word
/// that satisfied it to one computed (and clamped) from that same word. `allowed` moves by one
/// in the same CAS that takes a granted retry's tokens, so the count of grants and the balance
/// they paid from never disagree. It wraps at 2^32 without touching `balance` (the shift
/// discards the carry).
const BALANCE_MASK: u64 = u32::MAX as u64;
const ALLOWED_SHIFT: u32 = 32;

/// What a retry is for, which sets its cost under the AWS rules. Crosses the C ABI as a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CostClass {
    /// A retryable error that is neither a timeout nor throttling (5xx, connection reset).
    Transient = 0,
    /// The attempt timed out.
    Timeout = 1,
    /// The server asked the client to slow down (429, throttling error codes).
    Throttling = 2,
}

/// When a retry may go. Crosses the C ABI as a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum QuotaRule {
    /// gRPC A6: every qualified failure takes its cost first (the balance stops at 0), then a
    /// retry is allowed only if what is left is strictly above the threshold. A6: "if
    /// `token_count` is less than or equal to the threshold ... RPCs will not be retried";
    /// grpc-java and grpc-go decrement then compare, so the failing call's own token counts.
    AboveThreshold = 1,
    /// AWS standard (botocore, aws-sdk-go-v2, smithy-rs): a retry takes its full cost if the
    /// balance holds at least that much (`capacity >= cost`, botocore `RetryQuota.acquire`);
    /// a refused retry takes nothing.
    CostAvailable = 2,
    /// aws-c-io's boundary: a retry is refused only when the balance is 0; otherwise it takes
    /// `min(balance, cost)` (aws-c-io `source/standard_retry_strategy.c`).
    ConsumeRemaining = 3,
}

/// The cost of a retry for each [`CostClass`], in the quota's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct RetryCosts {
    /// Cost of a [`CostClass::Transient`] retry.
    pub transient: u32,
    /// Cost of a [`CostClass::Timeout`] retry.
    pub timeout: u32,
    /// Cost of a [`CostClass::Throttling`] retry.
    pub throttling: u32,
}

impl RetryCosts {
    /// Every class costs `cost`.
    pub const fn uniform(cost: u32) -> Self {
        Self { transient: cost, timeout: cost, throttling: cost }
    }

    #[inline]
    fn of(&self, class: CostClass) -> u32 {
        match class {
            CostClass::Transient => self.transient,
            CostClass::Timeout => self.timeout,
            CostClass::Throttling => self.throttling,
        }
    }
}

/// A [`TokenQuota`]'s configuration; the presets reproduce the reference systems exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenQuotaConfig {
    /// Most tokens the quota holds (at least 1).
    pub capacity: u32,
    /// Tokens at creation (at most `capacity`).
    pub initial: u32,
    /// When a retry may go.
    pub rule: QuotaRule,
    /// [`QuotaRule::AboveThreshold`] only: a retry needs the balance, after the failure's
    /// debit, strictly above this (below `capacity`).
    pub threshold: u32,
    /// What each class of retry (or, under [`QuotaRule::AboveThreshold`], each qualified
    /// failure) costs; each between 1 and `capacity`.
    pub costs: RetryCosts,
    /// What a success gives back when it refunds nothing (at least 1).
    pub success_credit: u32,
    /// Whether a success that followed a granted retry gives back that retry's cost instead
    /// of `success_credit` (AWS: "+1 if the call was never retried, else the cost of the last
    /// acquisition").
    pub refund_on_success: bool,
}

impl TokenQuotaConfig {
    /// gRPC A6 retry throttling, in milli-tokens (as grpc-java and the C core).
    ///
    /// `max_tokens` must be in `(0, 1000]` and `token_ratio > 0`; digits beyond the third
    /// decimal of either are ignored, as A6 says of `tokenRatio`. Starts full; a qualified
    /// failure costs 1000 milli-tokens; a success adds the ratio; the threshold is
    /// `max_milli / 2` (integer division, as grpc-java). A ratio above the capacity is clamped
    /// to it (a success then refills the quota).
    pub fn grpc_a6(max_tokens: f64, token_ratio: f64) -> Result<Self, ConfigError> {
        ConfigError::check_ratio("max_tokens", max_tokens, 0.0, 1000.0, true, "(0, 1000]")?;
        let capacity = to_milli(max_tokens);
        if capacity == 0 {
            return Err(ConfigError::out_of_range("max_tokens", max_tokens, "(0, 1000]"));
        }
        if !token_ratio.is_finite() {
            return Err(ConfigError::NotFinite { field: "token_ratio" });
        }
        let ratio = if token_ratio > 0.0 { to_milli(token_ratio) } else { 0 };
        if ratio == 0 {
            return Err(ConfigError::out_of_range("token_ratio", token_ratio, "[0.001, inf)"));
        }
        // Both fit: capacity <= 1_000_000 and the ratio is clamped to it.
        let capacity = capacity as u32;
        Ok(Self {
            capacity,
            initial: capacity,
            rule: QuotaRule::AboveThreshold,
            threshold: capacity / 2,
            costs: RetryCosts::uniform(1000.min(capacity)),
            success_credit: ratio.min(u64::from(capacity)) as u32,
            refund_on_success: false,
        })
    }

    /// AWS standard retry quota, legacy costs (botocore `RetryQuotaChecker`, aws-sdk-go-v2
    /// `aws/retry/standard.go`): 500 tokens, a retry costs 5 (10 after a timeout, 5 after
    /// throttling), a first-attempt success gives 1, a success after a retry refunds the last
    /// retry's cost.
    pub const fn aws_standard_legacy() -> Self {
        Self {
            capacity: 500,
            initial: 500,
            rule: QuotaRule::CostAvailable,
            threshold: 0,
            costs: RetryCosts { transient: 5, timeout: 10, throttling: 5 },
            success_credit: 1,
            refund_on_success: true,
        }
    }

    /// AWS standard retry quota with the 2026 costs (`AWS_NEW_RETRIES_2026`; smithy-rs
    /// `DEFAULT_RETRY_COST = 14`, `THROTTLING_RETRY_COST = 5`): transient errors and timeouts
    /// cost 14, throttling costs 5; otherwise as [`aws_standard_legacy`](Self::aws_standard_legacy).
    pub const fn aws_standard_2026() -> Self {
        let mut config = Self::aws_standard_legacy();
        config.costs = RetryCosts { transient: 14, timeout: 14, throttling: 5 };
        config
    }

    /// aws-c-io's standard retry strategy: legacy costs (5, 10 for transient connection errors
    /// and timeouts), but a retry is refused only when the quota is empty and otherwise takes
    /// what is left up to its cost; a success refunds what was actually taken.
    pub const fn aws_c_io() -> Self {
        let mut config = Self::aws_standard_legacy();
        config.rule = QuotaRule::ConsumeRemaining;
        config
    }

    /// Checks every field; see each field's documentation for its range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::Zero { field: "capacity" });
        }
        let capacity = u64::from(self.capacity);
        if self.initial > self.capacity {
            return Err(ConfigError::MinAboveMax {
                field: "initial tokens",
                min: self.initial.into(),
                max: capacity,
            });
        }
        if self.rule == QuotaRule::AboveThreshold && self.threshold >= self.capacity {
            return Err(ConfigError::out_of_range("threshold", self.threshold, "[0, capacity)"));
        }
        let costs = [
            ("transient cost", self.costs.transient),
            ("timeout cost", self.costs.timeout),
            ("throttling cost", self.costs.throttling),
        ];
        for (field, cost) in costs {
            if cost == 0 {
                return Err(ConfigError::Zero { field });
            }
            if cost > self.capacity {
                return Err(ConfigError::MinAboveMax { field, min: cost.into(), max: capacity });
            }
        }
        if self.success_credit == 0 {
            return Err(ConfigError::Zero { field: "success_credit" });
        }
        Ok(())
    }
}

/// Tokens a granted retry took, to hand back to [`TokenQuota::on_success`] when the retried
/// call succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct QuotaWithdrawal {
    /// Tokens taken from the balance (under [`QuotaRule::ConsumeRemaining`] possibly less than
    /// the class's cost).
    pub tokens: u32,
}

/// A token quota: successes credit it, retries (AWS) or qualified failures (gRPC) debit it,
/// and a retry goes only while the [`QuotaRule`] allows.
///
/// Time plays no part, so there is no clock and no `_at` form. Every method takes `&self` and
/// is lock-free: a debit or credit is one CAS on a packed word (retried only when another
/// thread changed the word in between). Scope one quota per dependency (gRPC: per server name;
/// AWS: per client or partition) and share it with `Arc`.
///
/// # Memory ordering
///
/// Every access is `Relaxed`: the balance guards no other memory, and all read-modify-writes
/// of one atomic are totally ordered, which is all exactness needs. A grant does not order the
/// caller's other memory; synchronise that elsewhere.
///
/// # Example
///
/// ```
/// use valve::{CostClass, TokenQuota};
///
/// let quota = TokenQuota::aws_standard_legacy();
/// match quota.try_retry(CostClass::Timeout) {
///     Ok(withdrawal) => {
///         // ... retry; it succeeded, so the quota gets the retry's cost back:
///         quota.on_success(Some(withdrawal));
///     }
///     Err(denied) => eprintln!("{denied}"),
/// }
/// assert_eq!(quota.balance(), 500);
/// ```
#[derive(Debug)]
pub struct TokenQuota {
    /// `(allowed, balance)`; see the table above.
    word: CachePadded<AtomicU64>,
    denied: AtomicU64,
    config: TokenQuotaConfig,
}

impl TokenQuota {
    /// A quota with a validated configuration.
    pub fn new(config: TokenQuotaConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::from_valid(config))
    }

    fn from_valid(config: TokenQuotaConfig) -> Self {
        Self {
            word: CachePadded::new(AtomicU64::new(u64::from(config.initial))),
            denied: AtomicU64::new(0),
            config,
        }
    }

    /// [`TokenQuotaConfig::grpc_a6`].
    pub fn grpc_a6(max_tokens: f64, token_ratio: f64) -> Result<Self, ConfigError> {
        Self::new(TokenQuotaConfig::grpc_a6(max_tokens, token_ratio)?)
    }

    /// [`TokenQuotaConfig::aws_standard_legacy`].
    pub fn aws_standard_legacy() -> Self {
        Self::from_valid(TokenQuotaConfig::aws_standard_legacy())
    }

    /// [`TokenQuotaConfig::aws_standard_2026`].
    pub fn aws_standard_2026() -> Self {
        Self::from_valid(TokenQuotaConfig::aws_standard_2026())
    }

    /// [`TokenQuotaConfig::aws_c_io`].
    pub fn aws_c_io() -> Self {
        Self::from_valid(TokenQuotaConfig::aws_c_io())
    }

    /// A call failed with an error of `class`: may it be retried?
    ///
    /// Under [`QuotaRule::AboveThreshold`] (gRPC) call this on *every* qualified failure,
    /// including the last attempt's: the failure is charged whether or not a retry follows
    /// (grpc-go charges it before checking `maxAttempts`). Under the AWS rules call it only
    /// when a retry would otherwise be sent. The returned withdrawal goes back to
    /// [`on_success`](Self::on_success) if the retry succeeds.
    #[inline]
    pub fn try_retry(&self, class: CostClass) -> Result<QuotaWithdrawal, BudgetDenied> {
        let cost = self.config.costs.of(class);
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let balance = (word & BALANCE_MASK) as u32;
            let (left, granted) = self.debit(balance, cost);
            let next = if granted {
                word.wrapping_add(1 << ALLOWED_SHIFT) & !BALANCE_MASK | u64::from(left)
            } else {
                word & !BALANCE_MASK | u64::from(left)
            };
            if next == word {
                return self.deny(balance, cost);
            }
            match self.word.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) if granted => return Ok(QuotaWithdrawal { tokens: balance - left }),
                Ok(_) => return self.deny(balance, cost),
                Err(seen) => word = seen,
            }
        }
    }

    /// The balance left after a debit of `cost` from `balance`, and whether the retry goes.
    #[inline]
    fn debit(&self, balance: u32, cost: u32) -> (u32, bool) {
        match self.config.rule {
            QuotaRule::AboveThreshold => match balance.checked_sub(cost) {
                Some(left) => (left, left > self.config.threshold),
                None => (0, false),
            },
            QuotaRule::CostAvailable if balance >= cost => (balance - cost, true),
            QuotaRule::CostAvailable => (balance, false),
            QuotaRule::ConsumeRemaining if balance > 0 => (balance - balance.min(cost), true),
            QuotaRule::ConsumeRemaining => (0, false),
        }
    }

    #[cold]
    fn deny<T>(&self, balance: u32, cost: u32) -> Result<T, BudgetDenied> {
        self.denied.fetch_add(1, Ordering::Relaxed);
        let reason = match self.config.rule {
            QuotaRule::AboveThreshold => DenyReason::AtOrBelowThreshold,
            QuotaRule::CostAvailable => DenyReason::QuotaBelowCost,
            QuotaRule::ConsumeRemaining => DenyReason::QuotaEmpty,
        };
        Err(BudgetDenied { reason, balance: balance.into(), requested: cost.into() })
    }

    /// May a hedged attempt be sent now? Takes nothing: a hedge that fails is charged by
    /// [`try_retry`](Self::try_retry) like any failure.
    ///
    /// Applies the rule without the debit: gRPC A6 sends the first attempt always and a later
    /// hedge only while the balance is strictly above the threshold; under the AWS rules
    /// (which have no hedging) a hedge needs what a transient retry would (`balance >= cost`,
    /// or `balance > 0` for aws-c-io). A refusal counts as denied.
    #[inline]
    pub fn may_hedge(&self) -> Result<(), BudgetDenied> {
        let balance = self.balance();
        let cost = self.config.costs.transient;
        let allowed = match self.config.rule {
            QuotaRule::AboveThreshold => balance > self.config.threshold,
            QuotaRule::CostAvailable => balance >= cost,
            QuotaRule::ConsumeRemaining => balance > 0,
        };
        if allowed { Ok(()) } else { self.deny(balance, 0) }
    }

    /// A call succeeded. Pass the withdrawal of the retry that produced the success, if any.
    ///
    /// With `refund_on_success` and a withdrawal, the withdrawal's tokens come back (AWS);
    /// otherwise `success_credit` (gRPC: `token_ratio`; AWS: 1). The balance stops at the
    /// capacity; a full quota is not written at all (botocore skips the lock when full).
    #[inline]
    pub fn on_success(&self, retry: Option<QuotaWithdrawal>) {
        let credit = match retry {
            Some(withdrawal) if self.config.refund_on_success => withdrawal.tokens,
            _ => self.config.success_credit,
        };
        let capacity = u64::from(self.config.capacity);
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let balance = word & BALANCE_MASK;
            if balance >= capacity {
                return;
            }
            let next = word & !BALANCE_MASK | (balance + u64::from(credit)).min(capacity);
            match self.word.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => word = seen,
            }
        }
    }

    /// Tokens available now, in the quota's units.
    #[inline]
    pub fn balance(&self) -> u32 {
        (self.word.load(Ordering::Relaxed) & BALANCE_MASK) as u32
    }

    /// The configuration in force.
    pub fn config(&self) -> &TokenQuotaConfig {
        &self.config
    }

    /// Balance and counters; see [`BudgetSnapshot`].
    pub fn snapshot(&self) -> BudgetSnapshot {
        let word = self.word.load(Ordering::Relaxed);
        BudgetSnapshot {
            balance: (word & BALANCE_MASK) as i64,
            capacity: self.config.capacity.into(),
            allowed: word >> ALLOWED_SHIFT,
            denied: self.denied.load(Ordering::Relaxed),
            outstanding: 0,
            retries_in_flight: 0,
        }
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    fn granted(quota: &TokenQuota, class: CostClass) -> bool {
        quota.try_retry(class).is_ok()
    }

    /// A6's example config (maxTokens 10, tokenRatio 0.1), derived from the rule: 10 000
    /// milli-tokens, threshold 5 000, a failure costs 1 000, a success adds 100.
    #[test]
    fn grpc_a6_golden_vector() {
        let quota = TokenQuota::grpc_a6(10.0, 0.1).unwrap();
        assert_eq!(quota.config().threshold, 5000);
        let allowed: Vec<bool> = (0..6).map(|_| granted(&quota, CostClass::Transient)).collect();
        // 9000, 8000, 7000, 6000 are above 5000; 5000 is not (A6: "less than or equal").
        assert_eq!(allowed, [true, true, true, true, false, false]);
        assert_eq!(quota.balance(), 4000);
        assert!(quota.may_hedge().is_err(), "hedges need tokens above the threshold");
        for _ in 0..20 {
            quota.on_success(None);
        }
        assert_eq!(quota.balance(), 6000);
        assert!(quota.may_hedge().is_ok());
        // 6000 - 1000 = 5000: the failing call's own token counts, so no retry.
        assert!(!granted(&quota, CostClass::Timeout));
        for _ in 0..11 {
            quota.on_success(None);
        }
        assert_eq!(quota.balance(), 6100);
        assert!(granted(&quota, CostClass::Throttling), "5100 > 5000");
        let snapshot = quota.snapshot();
        assert_eq!((snapshot.allowed, snapshot.denied), (5, 4));
        assert_eq!(snapshot.capacity, 10_000);
    }

    /// grpc-java's `RetriableStreamTest.throttle` (`new Throttle(4f, 0.8f)`), step by step;
    /// `isAboveThreshold` is [`TokenQuota::may_hedge`].
    #[test]
    fn grpc_a6_matches_grpc_java_throttle_test() {
        let quota = TokenQuota::grpc_a6(4.0, 0.8).unwrap();
        let above = || quota.may_hedge().is_ok();
        let fail = || granted(&quota, CostClass::Transient);
        assert!(above());
        assert!(fail()); // 3
        assert!(above());
        assert!(!fail()); // 2
        assert!(!above());
        for _ in 0..4 {
            assert!(!fail()); // 1, 0, 0, 0
        }
        assert!(!above());
        let mut seen = Vec::new();
        for _ in 0..6 {
            quota.on_success(None);
            seen.push((quota.balance(), above()));
        }
        let expected =
            [(800, false), (1600, false), (2400, true), (3200, true), (4000, true), (4000, true)];
        assert_eq!(seen, expected);
        assert!(fail()); // 3
        assert!(above());
        assert!(!fail()); // 2
        assert!(!above());
    }

    #[test]
    fn grpc_a6_floors_at_zero_and_keeps_three_decimals() {
        let quota = TokenQuota::grpc_a6(1.0, 0.251).unwrap();
        assert_eq!(quota.config().success_credit, 251, "exact, unlike grpc-java's f32");
        assert!(!granted(&quota, CostClass::Transient));
        assert!(!granted(&quota, CostClass::Transient));
        assert_eq!(quota.balance(), 0);
        let quota = TokenQuota::grpc_a6(1000.0, 0.0019).unwrap();
        assert_eq!(quota.config().success_credit, 1, "digits beyond the third are ignored");
        assert_eq!(quota.config().capacity, 1_000_000);
        let half = TokenQuota::grpc_a6(0.5, 1.0).unwrap();
        assert_eq!((half.config().capacity, half.config().threshold), (500, 250));
        assert!(!granted(&half, CostClass::Transient), "a failure empties it");
    }

    #[test]
    fn grpc_a6_validates_like_the_reference() {
        let bad = |max: f64, ratio: f64| TokenQuotaConfig::grpc_a6(max, ratio).is_err();
        assert!(bad(0.0, 0.1));
        assert!(bad(-1.0, 0.1));
        assert!(bad(1000.5, 0.1));
        assert!(bad(f64::NAN, 0.1));
        assert!(bad(10.0, 0.0));
        assert!(bad(10.0, 0.0004));
        assert!(bad(10.0, f64::INFINITY));
        assert!(bad(0.0004, 1.0));
        assert!(!bad(1000.0, 0.001));
        assert_eq!(TokenQuotaConfig::grpc_a6(2.0, 5.0).unwrap().success_credit, 2000);
    }

    /// botocore's rules: 500 tokens, 5 per retry, 10 per timeout retry, refused when
    /// `cost > available`, +1 for a first-attempt success, the last cost back after a retry.
    #[test]
    fn aws_legacy_golden_vector() {
        let quota = TokenQuota::aws_standard_legacy();
        let mut last = None;
        for _ in 0..50 {
            last = Some(quota.try_retry(CostClass::Timeout).unwrap());
        }
        assert_eq!(quota.balance(), 0);
        let denied = quota.try_retry(CostClass::Transient).unwrap_err();
        assert_eq!(denied.reason, DenyReason::QuotaBelowCost);
        assert_eq!((denied.balance, denied.requested), (0, 5));
        assert!(denied.to_string().contains("client's own retry budget, not by the server"));
        quota.on_success(last);
        assert_eq!(quota.balance(), 10, "a retried success refunds its last cost");
        for _ in 0..4 {
            quota.on_success(None);
        }
        assert_eq!(quota.balance(), 14);
        assert!(quota.try_retry(CostClass::Timeout).is_ok());
        assert!(quota.try_retry(CostClass::Timeout).is_err(), "4 < 10");
        assert!(quota.try_retry(CostClass::Throttling).is_err(), "4 < 5");
        assert_eq!(quota.balance(), 4, "a refused retry takes nothing");
        let snapshot = quota.snapshot();
        assert_eq!((snapshot.allowed, snapshot.denied, snapshot.capacity), (51, 3, 500));
    }

    #[test]
    fn aws_2026_costs() {
        let quota = TokenQuota::aws_standard_2026();
        assert_eq!(quota.try_retry(CostClass::Transient).unwrap().tokens, 14);
        assert_eq!(quota.try_retry(CostClass::Timeout).unwrap().tokens, 14);
        assert_eq!(quota.try_retry(CostClass::Throttling).unwrap().tokens, 5);
        assert_eq!(quota.balance(), 467);
        // 33 transient retries take 462 of 467; the 5 left are below 14.
        let granted = (0..40).filter(|_| granted(&quota, CostClass::Transient)).count();
        assert_eq!((granted, quota.balance()), (33, 5));
        assert!(quota.try_retry(CostClass::Throttling).is_ok(), "5 >= 5");
    }

    #[test]
    fn aws_c_io_consumes_what_is_left_and_refunds_it() {
        let quota = TokenQuota::aws_c_io();
        for _ in 0..49 {
            quota.try_retry(CostClass::Timeout).unwrap();
        }
        assert_eq!(quota.try_retry(CostClass::Transient).unwrap().tokens, 5);
        let partial = quota.try_retry(CostClass::Timeout).unwrap();
        assert_eq!(partial.tokens, 5, "consumes min(capacity, cost)");
        let denied = quota.try_retry(CostClass::Transient).unwrap_err();
        assert_eq!(denied.reason, DenyReason::QuotaEmpty);
        assert!(quota.may_hedge().is_err());
        quota.on_success(Some(partial));
        assert_eq!(quota.balance(), 5, "refunds what it actually took");
    }

    #[test]
    fn the_allowed_count_wraps_without_touching_the_balance() {
        let quota = TokenQuota::aws_standard_legacy();
        quota.word.store(u64::from(u32::MAX) << ALLOWED_SHIFT | 500, Ordering::Relaxed);
        assert_eq!(quota.try_retry(CostClass::Transient).unwrap().tokens, 5);
        assert_eq!((quota.snapshot().allowed, quota.balance()), (0, 495));
    }

    #[test]
    fn credits_clamp_at_capacity_and_configs_are_checked() {
        let quota = TokenQuota::aws_standard_legacy();
        quota.on_success(Some(QuotaWithdrawal { tokens: u32::MAX }));
        assert_eq!(quota.balance(), 500);
        let mut config = TokenQuotaConfig::aws_standard_legacy();
        config.initial = 501;
        assert!(TokenQuota::new(config).is_err());
        config.initial = 0;
        config.costs.timeout = 0;
        assert_eq!(
            TokenQuota::new(config).unwrap_err(),
            ConfigError::Zero { field: "timeout cost" }
        );
        config.costs.timeout = 501;
        assert!(TokenQuota::new(config).is_err());
        config.costs.timeout = 10;
        config.success_credit = 0;
        assert!(TokenQuota::new(config).is_err());
        config.success_credit = 1;
        config.capacity = 0;
        assert!(TokenQuota::new(config).is_err());
        config.capacity = 500;
        config.rule = QuotaRule::AboveThreshold;
        config.threshold = 500;
        assert!(TokenQuota::new(config).is_err());
        config.threshold = 499;
        assert_eq!(TokenQuota::new(config).unwrap().balance(), 0);
    }
}
