//! Retry budgets and backoff: how many retries a client may add to the load it already sends.
//!
//! Contains *retry storms*. When a dependency struggles, every failed call that is retried
//! multiplies the load on it (three attempts per call triple it), which turns a struggling
//! dependency into a dead one. A budget caps retries (and hedges) relative to the traffic that
//! succeeds or is sent, so retries help with sporadic failures and stop when failures are
//! systemic; backoff spreads the retries that are allowed over time.
//!
//! | file | what | reference presets |
//! |---|---|---|
//! | `token_quota.rs` | [`TokenQuota`]: a token balance credited by successes, debited by failures or retries | gRPC A6 throttling; AWS standard retry quota (legacy, 2026, aws-c-io) |
//! | `windowed.rs` | [`WindowedBudget`]: retries as a ratio of recent requests, with a reserve | Finagle `RetryBudget` (tower `TpsBudget` without its rounding bug) |
//! | `concurrency.rs` | [`ConcurrencyBudget`]: retries in flight as a share of requests in flight | Envoy `retry_budget` |
//! | `backoff.rs` | [`Backoff`]: exponential delays with jitter and server retry-after | gRPC A6, AWS SDKs, the AWS jitter families |
//! | this file | [`BudgetDenied`], [`DenyReason`], [`BudgetSnapshot`] | |
//!
//! Every budget is lock-free and exact: balances are integers (fixed point where the reference
//! has fractions), bounds are enforced inside one CAS loop (never a check followed by an add),
//! and no per-call path allocates. A denial is a [`BudgetDenied`] whose message says that the
//! client's own budget refused the retry, not the server (AWS SDK issue 3189).

mod backoff;
mod concurrency;
mod token_quota;
mod windowed;

use std::fmt;

pub use backoff::{Backoff, BackoffConfig, BackoffRng, Jitter, RetryAfterRule, SplitMix64};
pub use concurrency::ConcurrencyBudget;
pub use token_quota::{
    CostClass, QuotaRule, QuotaWithdrawal, RetryCosts, TokenQuota, TokenQuotaConfig,
};
pub use windowed::{WindowedBudget, WindowedConfig};

/// Which rule of which budget refused a retry. Crosses the C ABI as a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DenyReason {
    /// [`QuotaRule::AboveThreshold`] (gRPC A6): after the failure's debit, the tokens left are
    /// at or below the threshold.
    AtOrBelowThreshold = 1,
    /// [`QuotaRule::CostAvailable`] (AWS standard): the quota holds less than the retry's cost.
    QuotaBelowCost = 2,
    /// [`QuotaRule::ConsumeRemaining`] (aws-c-io): the quota is empty.
    QuotaEmpty = 3,
    /// [`WindowedBudget`]: recent requests and the reserve do not pay for another retry.
    WindowExhausted = 4,
    /// [`ConcurrencyBudget`]: as many retries are in flight as the budget allows.
    ConcurrencyExhausted = 5,
}

impl DenyReason {
    fn describe(self) -> &'static str {
        match self {
            Self::AtOrBelowThreshold => "retry tokens at or below the throttling threshold",
            Self::QuotaBelowCost => "retry quota below the retry's cost",
            Self::QuotaEmpty => "retry quota empty",
            Self::WindowExhausted => "recent requests do not pay for another retry",
            Self::ConcurrencyExhausted => "too many retries in flight",
        }
    }
}

/// A retry (or hedge) refused by a budget: the client's own decision, never a server response.
///
/// `balance` and `requested` are in the budget's own units (see [`BudgetSnapshot`]), as the
/// refusing operation saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetDenied {
    /// The rule that refused.
    pub reason: DenyReason,
    /// What the budget held when it refused.
    pub balance: i64,
    /// What the retry needed.
    pub requested: u64,
}

impl fmt::Display for BudgetDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retry denied by this client's own retry budget, not by the server: {} \
             ({} available, {} requested)",
            self.reason.describe(),
            self.balance,
            self.requested
        )
    }
}

impl std::error::Error for BudgetDenied {}

/// A budget's balance and counters, read without locks or allocation; crosses the C ABI.
///
/// Units are the budget's own: milli-tokens for the gRPC preset, tokens for the AWS presets,
/// Finagle's ×1000 units for [`WindowedBudget`], retries for [`ConcurrencyBudget`]. Fields are
/// read separately, so under concurrent use they may come from slightly different instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct BudgetSnapshot {
    /// What is available now: the token balance; the windowed count (reserve plus live
    /// deposits minus live withdrawals, negative while withdrawals outlive the deposits that
    /// paid for them); or the concurrency budget's free retry slots (negative when the budget
    /// shrank below the retries already running).
    pub balance: i64,
    /// The most the balance can be: the quota's capacity; the concurrency budget's current
    /// maximum of retries in flight; 0 for the windowed budget, which has no fixed cap.
    pub capacity: u64,
    /// Retries (and hedges) granted. The token quota counts them modulo 2^32.
    pub allowed: u64,
    /// Retries (and hedges) refused.
    pub denied: u64,
    /// Requests in flight (active plus pending) the concurrency budget is sized from; 0 for
    /// the other budgets.
    pub outstanding: u64,
    /// Retries in flight in the concurrency budget; 0 for the other budgets.
    pub retries_in_flight: u64,
}

/// Converts a non-negative decimal to thousandths, ignoring digits beyond the third decimal as
/// gRPC A6 specifies for `tokenRatio`. The value is rounded to 6 decimals first, so a decimal
/// written with at most 3 decimals converts exactly despite binary floating point (grpc-java's
/// 32-bit float turns 0.251 into 250; A6 and the C core keep it 251).
fn to_milli(value: f64) -> u64 {
    let micro = (value * 1_000_000.0).round();
    // `as` saturates; callers have checked the value is finite and in range.
    (micro as u64) / 1000
}
