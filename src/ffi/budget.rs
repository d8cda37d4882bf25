//! The retry budgets through the C ABI: `valve_token_quota` (gRPC A6, AWS standard),
//! `valve_windowed_budget` (Finagle) and `valve_concurrency_budget` (Envoy).
//!
//! A budget is the client's own limit on retries: a refusal answers
//! [`valve_status::VALVE_BUDGET_EXHAUSTED`], distinct from the limiter's `VALVE_REJECTED`, so
//! a caller never mistakes it for a signal from the server. Counters cross as
//! [`BudgetSnapshot`] (`valve_budget_snapshot`). Every handle is lock-free and every function
//! on a `const` handle is thread-safe.

use std::time::Duration;

use crate::budget::{
    BudgetSnapshot, ConcurrencyBudget, CostClass, QuotaRule, QuotaWithdrawal, RetryCosts,
    TokenQuota, TokenQuotaConfig, WindowedBudget, WindowedConfig,
};
use crate::clock::{Clock, Nanos, duration_to_nanos};
use crate::error::ConfigError;
use crate::ffi::{
    boundary, free_handle, live_ref, new_handle, valve_status, with_handle, write_out,
};

/// What a retry is for, which sets its cost under the AWS rules, for
/// `valve_token_quota_try_retry`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_cost_class {
    /// A retryable error that is neither a timeout nor throttling (5xx, connection reset).
    VALVE_COST_TRANSIENT = 0,
    /// The attempt timed out.
    VALVE_COST_TIMEOUT = 1,
    /// The server asked the client to slow down (429, throttling).
    VALVE_COST_THROTTLING = 2,
}

/// When a token quota lets a retry go, for `valve_token_quota_config.rule`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_quota_rule {
    /// gRPC A6: every qualified failure takes its cost, then a retry goes only if the balance
    /// left is strictly above `threshold`.
    VALVE_QUOTA_ABOVE_THRESHOLD = 1,
    /// AWS standard: a retry takes its cost if the balance holds at least that much.
    VALVE_QUOTA_COST_AVAILABLE = 2,
    /// aws-c-io: refused only at 0; otherwise takes `min(balance, cost)`.
    VALVE_QUOTA_CONSUME_REMAINING = 3,
}

/// Configuration of a `valve_token_quota`; fill it with a preset, then change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct valve_token_quota_config {
    /// Most tokens the quota holds, at least 1.
    pub capacity: u32,
    /// Tokens at creation, at most `capacity`.
    pub initial: u32,
    /// One of `valve_quota_rule`.
    pub rule: u32,
    /// ABOVE_THRESHOLD only: a retry needs the balance after the debit strictly above this.
    pub threshold: u32,
    /// Cost of each class of retry, each in `[1, capacity]`.
    pub costs: RetryCosts,
    /// What a success gives back when it refunds nothing, at least 1.
    pub success_credit: u32,
    /// Whether a success after a granted retry gives back that retry's tokens instead.
    pub refund_on_success: bool,
}

/// Configuration of a `valve_windowed_budget` (Finagle's `RetryBudget` arguments).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_windowed_config {
    /// How long a deposit or withdrawal counts, ns: 1 s to 60 s inclusive.
    pub ttl_ns: u64,
    /// Retries per second allowed however little traffic there is (the reserve).
    pub min_retries_per_sec: u32,
    /// Retries allowed per request, as a fraction (0.2 is 20 %), in `[0, 1000]`.
    pub percent_can_retry: f64,
}

/// Configuration of a `valve_concurrency_budget` (Envoy's retry budget).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct valve_concurrency_budget_config {
    /// Percent of the requests in flight that may be retries, in `[0, 100]`.
    pub budget_percent: f64,
    /// Retries allowed in flight however few requests are.
    pub min_retry_concurrency: u32,
}

/// A token quota (gRPC A6 retry throttling, AWS standard retry quota). Opaque; every function
/// taking a `const valve_token_quota *` is thread-safe; only `_free` needs exclusive access.
pub struct valve_token_quota(TokenQuota);

/// A windowed retry budget (Finagle `RetryBudget`): deposits from requests, withdrawals for
/// retries, both expiring after a ttl. Opaque; thread-safe except `_free`.
pub struct valve_windowed_budget(WindowedBudget);

/// A concurrency retry budget (Envoy): retries in flight limited to a share of the requests in
/// flight. Opaque; thread-safe except `_free`.
pub struct valve_concurrency_budget(ConcurrencyBudget);

const RULE_ABOVE_THRESHOLD: u32 = valve_quota_rule::VALVE_QUOTA_ABOVE_THRESHOLD as u32;
const RULE_COST_AVAILABLE: u32 = valve_quota_rule::VALVE_QUOTA_COST_AVAILABLE as u32;
const RULE_CONSUME_REMAINING: u32 = valve_quota_rule::VALVE_QUOTA_CONSUME_REMAINING as u32;
const COST_TRANSIENT: u32 = valve_cost_class::VALVE_COST_TRANSIENT as u32;
const COST_TIMEOUT: u32 = valve_cost_class::VALVE_COST_TIMEOUT as u32;
const COST_THROTTLING: u32 = valve_cost_class::VALVE_COST_THROTTLING as u32;

impl valve_token_quota_config {
    fn from_rust(config: &TokenQuotaConfig) -> Self {
        Self {
            capacity: config.capacity,
            initial: config.initial,
            rule: config.rule as u32,
            threshold: config.threshold,
            costs: config.costs,
            success_credit: config.success_credit,
            refund_on_success: config.refund_on_success,
        }
    }

    fn to_rust(self) -> Result<TokenQuotaConfig, ConfigError> {
        let rule = match self.rule {
            RULE_ABOVE_THRESHOLD => QuotaRule::AboveThreshold,
            RULE_COST_AVAILABLE => QuotaRule::CostAvailable,
            RULE_CONSUME_REMAINING => QuotaRule::ConsumeRemaining,
            other => return Err(ConfigError::out_of_range("rule", other, "valve_quota_rule")),
        };
        Ok(TokenQuotaConfig {
            capacity: self.capacity,
            initial: self.initial,
            rule,
            threshold: self.threshold,
            costs: self.costs,
            success_credit: self.success_credit,
            refund_on_success: self.refund_on_success,
        })
    }
}

impl valve_windowed_config {
    fn from_rust(config: &WindowedConfig) -> Self {
        Self {
            ttl_ns: duration_to_nanos(config.ttl),
            min_retries_per_sec: config.min_retries_per_sec,
            percent_can_retry: config.percent_can_retry,
        }
    }

    fn to_rust(self) -> WindowedConfig {
        WindowedConfig {
            ttl: Duration::from_nanos(self.ttl_ns),
            min_retries_per_sec: self.min_retries_per_sec,
            percent_can_retry: self.percent_can_retry,
        }
    }
}

/// A panicking preset answers this config, which `valve_token_quota_new` refuses.
const REFUSED_QUOTA: valve_token_quota_config = valve_token_quota_config {
    capacity: 0,
    initial: 0,
    rule: u32::MAX,
    threshold: 0,
    costs: RetryCosts::uniform(0),
    success_credit: 0,
    refund_on_success: false,
};

/// AWS standard retry quota, legacy costs (botocore, aws-sdk-go-v2): 500 tokens, a retry costs
/// 5 (10 after a timeout), a first-attempt success gives 1, a success after a retry refunds
/// its cost. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_token_quota_config_aws_standard_legacy() -> valve_token_quota_config {
    boundary(REFUSED_QUOTA, || {
        valve_token_quota_config::from_rust(&TokenQuotaConfig::aws_standard_legacy())
    })
}

/// AWS standard retry quota with the 2026 costs (`AWS_NEW_RETRIES_2026`). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_token_quota_config_aws_standard_2026() -> valve_token_quota_config {
    boundary(REFUSED_QUOTA, || {
        valve_token_quota_config::from_rust(&TokenQuotaConfig::aws_standard_2026())
    })
}

/// aws-c-io's standard retry strategy quota (refused only at 0). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_token_quota_config_aws_c_io() -> valve_token_quota_config {
    boundary(REFUSED_QUOTA, || valve_token_quota_config::from_rust(&TokenQuotaConfig::aws_c_io()))
}

/// gRPC A6 retry throttling in milli-tokens: `max_tokens` in `(0, 1000]`, `token_ratio > 0`
/// (digits beyond the third decimal ignored). Writes the config to `*out`; answers `VALVE_OK`,
/// `VALVE_INVALID_ARGUMENT` (out untouched) or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `out` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_token_quota_config_grpc_a6(
    max_tokens: f64,
    token_ratio: f64,
    out: *mut valve_token_quota_config,
) -> valve_status {
    crate::ffi::status_boundary(|| {
        if out.is_null() {
            return valve_status::VALVE_NULL_POINTER;
        }
        match TokenQuotaConfig::grpc_a6(max_tokens, token_ratio) {
            // SAFETY: `out` is non-null and writable (the caller's contract).
            Ok(config) => unsafe { write_out(out, valve_token_quota_config::from_rust(&config)) },
            Err(_) => valve_status::VALVE_INVALID_ARGUMENT,
        }
    })
}

/// Creates a token quota from `config` into `*out`. Answers `VALVE_OK`,
/// `VALVE_INVALID_ARGUMENT` (unknown rule, or a config `TokenQuota::new` refuses) or
/// `VALVE_NULL_POINTER`; on failure `*out` is NULL. Thread-safe.
///
/// # Safety
///
/// `config` must be NULL or readable; `out` NULL or writable for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_token_quota_new(
    config: *const valve_token_quota_config,
    out: *mut *mut valve_token_quota,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        new_handle(out, || {
            // SAFETY: NULL or readable (the caller's contract).
            let config = config.as_ref().ok_or(valve_status::VALVE_NULL_POINTER)?;
            config
                .to_rust()
                .and_then(TokenQuota::new)
                .map(valve_token_quota)
                .map_err(|_| valve_status::VALVE_INVALID_ARGUMENT)
        })
    }
}

/// Frees a token quota; NULL is a no-op. Not thread-safe: nothing else may use it.
///
/// # Safety
///
/// `quota` must be NULL or a live handle, unused by any other call now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_token_quota_free(quota: *mut valve_token_quota) {
    // SAFETY: forwarded caller contract.
    unsafe { free_handle(quota) }
}

/// A call failed with an error of `class` (a `valve_cost_class`): may it be retried?
///
/// gRPC rule: call it on every qualified failure, the last attempt's included (the failure is
/// charged either way). AWS rules: call it only when a retry would otherwise be sent. Answers
/// `VALVE_OK` with the tokens taken in `*out` (give them to `valve_token_quota_on_success` if
/// the retry succeeds); `VALVE_BUDGET_EXHAUSTED` when the client's own quota refuses (`*out`
/// holds 0 tokens; do not retry); `VALVE_INVALID_ARGUMENT` for an unknown class and
/// `VALVE_NULL_POINTER`, both changing nothing. Thread-safe.
///
/// # Safety
///
/// `quota` must be NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_token_quota_try_retry(
    quota: *const valve_token_quota,
    class: u32,
    out: *mut QuotaWithdrawal,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        with_handle(quota, |quota| {
            // Checked before the debit, so a NULL `out` cannot lose the tokens taken.
            if out.is_null() {
                return valve_status::VALVE_NULL_POINTER;
            }
            let class = match class {
                COST_TRANSIENT => CostClass::Transient,
                COST_TIMEOUT => CostClass::Timeout,
                COST_THROTTLING => CostClass::Throttling,
                _ => return valve_status::VALVE_INVALID_ARGUMENT,
            };
            let (withdrawal, status) = match quota.0.try_retry(class) {
                Ok(withdrawal) => (withdrawal, valve_status::VALVE_OK),
                Err(_) => (QuotaWithdrawal { tokens: 0 }, valve_status::VALVE_BUDGET_EXHAUSTED),
            };
            // SAFETY: non-null and writable (the caller's contract).
            write_out(out, withdrawal);
            status
        })
    }
}

/// May a hedged attempt go now? Takes nothing. Answers `VALVE_OK`, `VALVE_BUDGET_EXHAUSTED`
/// (counted as denied) or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `quota` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_token_quota_may_hedge(
    quota: *const valve_token_quota,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(quota, |quota| allowed(quota.0.may_hedge().is_ok())) }
}

/// A call succeeded. `retry` is the withdrawal of the retry that produced the success, or
/// NULL for a first attempt. With `refund_on_success` its tokens come back, else
/// `success_credit` does. The withdrawal is consumed: its `tokens` become 0, so passing it
/// again refunds nothing. Answers `VALVE_OK` or `VALVE_NULL_POINTER` (NULL `quota`).
/// Thread-safe for the quota; a withdrawal must not be passed by two threads at once.
///
/// # Safety
///
/// `quota` must be NULL or a live handle; `retry` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_token_quota_on_success(
    quota: *const valve_token_quota,
    retry: *mut QuotaWithdrawal,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        with_handle(quota, |quota| {
            // SAFETY: NULL or writable, ours for the call (the caller's contract).
            let withdrawal =
                retry.as_mut().map(|retry| std::mem::replace(retry, QuotaWithdrawal { tokens: 0 }));
            quota.0.on_success(withdrawal);
            valve_status::VALVE_OK
        })
    }
}

/// Tokens available now, in the quota's units (milli-tokens for gRPC); 0 for NULL.
/// Thread-safe.
///
/// # Safety
///
/// `quota` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_token_quota_balance(quota: *const valve_token_quota) -> u32 {
    boundary(0, || {
        // SAFETY: NULL or a live handle (the caller's contract).
        unsafe { live_ref(quota) }.map_or(0, |quota| quota.0.balance())
    })
}

/// Reads the quota's balance and counters into `*out`. Answers `VALVE_OK` or
/// `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `quota` must be NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_token_quota_get_snapshot(
    quota: *const valve_token_quota,
    out: *mut BudgetSnapshot,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(quota, |quota| write_out(out, quota.0.snapshot())) }
}

/// Finagle's `RetryBudget()` default (also tower's): ttl 10 s, 10 retries per second, 20 %.
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_windowed_config_finagle() -> valve_windowed_config {
    let refused =
        valve_windowed_config { ttl_ns: 0, min_retries_per_sec: 0, percent_can_retry: -1.0 };
    boundary(refused, || valve_windowed_config::from_rust(&WindowedConfig::finagle()))
}

/// Creates a windowed budget from `config` into `*out`, reading a monotonic clock whose origin
/// is now. Answers `VALVE_OK`, `VALVE_INVALID_ARGUMENT` or `VALVE_NULL_POINTER`; on failure
/// `*out` is NULL. Thread-safe.
///
/// # Safety
///
/// `config` must be NULL or readable; `out` NULL or writable for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_new(
    config: *const valve_windowed_config,
    out: *mut *mut valve_windowed_budget,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        new_handle(out, || {
            // SAFETY: NULL or readable (the caller's contract).
            let config = config.as_ref().ok_or(valve_status::VALVE_NULL_POINTER)?;
            WindowedBudget::new(config.to_rust())
                .map(valve_windowed_budget)
                .map_err(|_| valve_status::VALVE_INVALID_ARGUMENT)
        })
    }
}

/// Frees a windowed budget; NULL is a no-op. Not thread-safe: nothing else may use it.
///
/// # Safety
///
/// `budget` must be NULL or a live handle, unused by any other call now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_free(budget: *mut valve_windowed_budget) {
    // SAFETY: forwarded caller contract.
    unsafe { free_handle(budget) }
}

/// A request was sent (first attempts only): deposits its share of retries, reading the
/// budget's clock. Answers `VALVE_OK` or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_deposit(
    budget: *const valve_windowed_budget,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| deposit(b, b.0.clock().now())) }
}

/// As `valve_windowed_budget_deposit` at `now_ns` (the budget's timeline: ns since its
/// creation). Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_deposit_at(
    budget: *const valve_windowed_budget,
    now_ns: u64,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| deposit(b, now_ns)) }
}

/// May a retry go now? Withdraws one retry if so, reading the budget's clock. Answers
/// `VALVE_OK`, `VALVE_BUDGET_EXHAUSTED` (the client's own budget refused: do not retry) or
/// `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_try_withdraw(
    budget: *const valve_windowed_budget,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| allowed(b.0.try_withdraw_at(b.0.clock().now()).is_ok())) }
}

/// As `valve_windowed_budget_try_withdraw` at `now_ns`. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_try_withdraw_at(
    budget: *const valve_windowed_budget,
    now_ns: u64,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| allowed(b.0.try_withdraw_at(now_ns).is_ok())) }
}

/// Retries the budget would allow now (Finagle's `balance`: reserve plus live deposits minus
/// live withdrawals, divided by one withdrawal, truncated; negative while withdrawals outlive
/// their deposits), reading the budget's clock; 0 for NULL. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_balance(
    budget: *const valve_windowed_budget,
) -> i64 {
    boundary(0, || {
        // SAFETY: NULL or a live handle (the caller's contract).
        unsafe { live_ref(budget) }.map_or(0, |b| b.0.balance())
    })
}

/// As `valve_windowed_budget_balance` at `now_ns`. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_balance_at(
    budget: *const valve_windowed_budget,
    now_ns: u64,
) -> i64 {
    boundary(0, || {
        // SAFETY: NULL or a live handle (the caller's contract).
        unsafe { live_ref(budget) }.map_or(0, |b| b.0.balance_at(now_ns))
    })
}

/// Reads the budget's balance and counters into `*out`, reading its clock. Answers `VALVE_OK`
/// or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_get_snapshot(
    budget: *const valve_windowed_budget,
    out: *mut BudgetSnapshot,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| write_out(out, b.0.snapshot())) }
}

/// As `valve_windowed_budget_get_snapshot` at `now_ns`. Thread-safe.
///
/// # Safety
///
/// As `valve_windowed_budget_get_snapshot`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_windowed_budget_get_snapshot_at(
    budget: *const valve_windowed_budget,
    now_ns: u64,
    out: *mut BudgetSnapshot,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| write_out(out, b.0.snapshot_at(now_ns))) }
}

/// Envoy's defaults: 20 % of active plus pending requests, at least 3 retries. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_concurrency_budget_config_envoy() -> valve_concurrency_budget_config {
    const ENVOY: valve_concurrency_budget_config =
        valve_concurrency_budget_config { budget_percent: 20.0, min_retry_concurrency: 3 };
    boundary(ENVOY, || ENVOY)
}

/// Creates a concurrency budget from `config` into `*out`. Answers `VALVE_OK`,
/// `VALVE_INVALID_ARGUMENT` (`budget_percent` outside `[0, 100]` or NaN) or
/// `VALVE_NULL_POINTER`; on failure `*out` is NULL. Thread-safe.
///
/// # Safety
///
/// `config` must be NULL or readable; `out` NULL or writable for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_concurrency_budget_new(
    config: *const valve_concurrency_budget_config,
    out: *mut *mut valve_concurrency_budget,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        new_handle(out, || {
            // SAFETY: NULL or readable (the caller's contract).
            let config = config.as_ref().ok_or(valve_status::VALVE_NULL_POINTER)?;
            ConcurrencyBudget::new(config.budget_percent, config.min_retry_concurrency)
                .map(valve_concurrency_budget)
                .map_err(|_| valve_status::VALVE_INVALID_ARGUMENT)
        })
    }
}

/// Frees a concurrency budget; NULL is a no-op. Not thread-safe: nothing else may use it.
///
/// # Safety
///
/// `budget` must be NULL or a live handle, unused by any other call now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_concurrency_budget_free(budget: *mut valve_concurrency_budget) {
    // SAFETY: forwarded caller contract.
    unsafe { free_handle(budget) }
}

/// A request (first attempt or retry) became active or pending. Answers `VALVE_OK` or
/// `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_concurrency_budget_request_started(
    budget: *const valve_concurrency_budget,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        with_handle(budget, |b| {
            b.0.request_started();
            valve_status::VALVE_OK
        })
    }
}

/// A request finished. Answers `VALVE_OK`, `VALVE_STALE_PERMIT` (none was outstanding:
/// nothing changes) or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_concurrency_budget_request_finished(
    budget: *const valve_concurrency_budget,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| finished(b.0.request_finished())) }
}

/// May a retry start now? If `VALVE_OK`, it holds a retry slot until
/// `valve_concurrency_budget_retry_finished`. `VALVE_BUDGET_EXHAUSTED`: the client's own budget
/// refused (retries in flight reached `max(outstanding * percent, min)`); do not retry.
/// Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_concurrency_budget_try_start_retry(
    budget: *const valve_concurrency_budget,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| allowed(b.0.try_start_retry().is_ok())) }
}

/// A retry that `try_start_retry` allowed finished. Answers `VALVE_OK`, `VALVE_STALE_PERMIT`
/// (no retry was in flight: nothing changes) or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_concurrency_budget_retry_finished(
    budget: *const valve_concurrency_budget,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| finished(b.0.retry_finished())) }
}

/// Reads the budget's free retry slots, maximum and counters into `*out`. Answers `VALVE_OK`
/// or `VALVE_NULL_POINTER`. Thread-safe.
///
/// # Safety
///
/// `budget` must be NULL or a live handle; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valve_concurrency_budget_get_snapshot(
    budget: *const valve_concurrency_budget,
    out: *mut BudgetSnapshot,
) -> valve_status {
    // SAFETY: forwarded caller contract.
    unsafe { with_handle(budget, |b| write_out(out, b.0.snapshot())) }
}

fn deposit(budget: &valve_windowed_budget, now: Nanos) -> valve_status {
    budget.0.deposit_at(now);
    valve_status::VALVE_OK
}

fn allowed(granted: bool) -> valve_status {
    if granted { valve_status::VALVE_OK } else { valve_status::VALVE_BUDGET_EXHAUSTED }
}

fn finished(held: bool) -> valve_status {
    if held { valve_status::VALVE_OK } else { valve_status::VALVE_STALE_PERMIT }
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;

    #[test]
    fn token_quota_grants_refunds_and_refuses() {
        let mut config = valve_token_quota_config_aws_standard_legacy();
        assert_eq!(config.to_rust(), Ok(TokenQuotaConfig::aws_standard_legacy()));
        let mut quota = ptr::null_mut();
        let mut w = QuotaWithdrawal { tokens: 99 };
        let mut snap = BudgetSnapshot::default();
        // SAFETY (this block): valid pointers throughout; the handle is live until freed.
        unsafe {
            assert_eq!(valve_token_quota_new(&config, &mut quota), valve_status::VALVE_OK);
            assert_eq!(valve_token_quota_try_retry(quota, 1, &mut w), valve_status::VALVE_OK);
            assert_eq!((w.tokens, valve_token_quota_balance(quota)), (10, 490));
            assert_eq!(valve_token_quota_on_success(quota, &mut w), valve_status::VALVE_OK);
            assert_eq!((w.tokens, valve_token_quota_balance(quota)), (0, 500));
            assert_eq!(
                valve_token_quota_try_retry(quota, 3, &mut w),
                valve_status::VALVE_INVALID_ARGUMENT
            );
            assert_eq!(
                valve_token_quota_try_retry(quota, 0, ptr::null_mut()),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(valve_token_quota_balance(quota), 500, "refusals take nothing");
            while valve_token_quota_try_retry(quota, 0, &mut w) == valve_status::VALVE_OK {}
            assert_eq!(w.tokens, 0);
            assert_eq!(valve_token_quota_may_hedge(quota), valve_status::VALVE_BUDGET_EXHAUSTED);
            assert_eq!(valve_token_quota_get_snapshot(quota, &mut snap), valve_status::VALVE_OK);
            assert_eq!((snap.balance, snap.allowed, snap.denied), (0, 101, 2));
            valve_token_quota_free(quota);

            config.rule = 0;
            assert_eq!(
                valve_token_quota_new(&config, &mut quota),
                valve_status::VALVE_INVALID_ARGUMENT
            );
            assert!(quota.is_null());
            assert_eq!(
                valve_token_quota_config_grpc_a6(10.0, 0.1, &mut config),
                valve_status::VALVE_OK
            );
            assert_eq!(config.to_rust(), TokenQuotaConfig::grpc_a6(10.0, 0.1));
            assert_eq!(
                valve_token_quota_config_grpc_a6(0.0, 0.1, &mut config),
                valve_status::VALVE_INVALID_ARGUMENT
            );
        }
    }

    #[test]
    fn windowed_and_concurrency_budgets() {
        let config = valve_windowed_config_finagle();
        assert_eq!(config.to_rust(), WindowedConfig::finagle());
        let mut windowed = ptr::null_mut();
        let mut concurrency = ptr::null_mut();
        let mut snap = BudgetSnapshot::default();
        // SAFETY (this block): valid pointers throughout; handles are live until freed.
        unsafe {
            assert_eq!(valve_windowed_budget_new(&config, &mut windowed), valve_status::VALVE_OK);
            let before = valve_windowed_budget_balance_at(windowed, 0);
            for _ in 0..5 {
                assert_eq!(valve_windowed_budget_deposit_at(windowed, 0), valve_status::VALVE_OK);
            }
            assert_eq!(valve_windowed_budget_balance_at(windowed, 0), before + 1, "20 % of 5");
            let mut granted = 0;
            while valve_windowed_budget_try_withdraw_at(windowed, 0) == valve_status::VALVE_OK {
                granted += 1;
            }
            assert!(granted > 0);
            assert_eq!(
                valve_windowed_budget_get_snapshot_at(windowed, 0, &mut snap),
                valve_status::VALVE_OK
            );
            assert_eq!(snap.denied, 1);
            valve_windowed_budget_free(windowed);

            let config = valve_concurrency_budget_config_envoy();
            assert_eq!(
                valve_concurrency_budget_new(&config, &mut concurrency),
                valve_status::VALVE_OK
            );
            for _ in 0..3 {
                assert_eq!(
                    valve_concurrency_budget_try_start_retry(concurrency),
                    valve_status::VALVE_OK
                );
            }
            assert_eq!(
                valve_concurrency_budget_try_start_retry(concurrency),
                valve_status::VALVE_BUDGET_EXHAUSTED
            );
            assert_eq!(
                valve_concurrency_budget_request_finished(concurrency),
                valve_status::VALVE_STALE_PERMIT
            );
            assert_eq!(
                valve_concurrency_budget_get_snapshot(concurrency, &mut snap),
                valve_status::VALVE_OK
            );
            assert_eq!((snap.retries_in_flight, snap.allowed, snap.denied), (3, 3, 1));
            valve_concurrency_budget_free(concurrency);

            let bad = valve_concurrency_budget_config { budget_percent: 101.0, ..config };
            assert_eq!(
                valve_concurrency_budget_new(&bad, &mut concurrency),
                valve_status::VALVE_INVALID_ARGUMENT
            );
            assert_eq!(
                valve_concurrency_budget_request_started(ptr::null()),
                valve_status::VALVE_NULL_POINTER
            );
            assert_eq!(valve_windowed_budget_balance(ptr::null()), 0);
        }
    }
}
