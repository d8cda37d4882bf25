//! Fuzz harness for the retry budgets and backoff: decodes a budget kind, its config and an
//! operation sequence with time steps, and checks after every operation the invariants (the
//! balance stays in `[0, capacity]`, counters balance) and, for the token quota, the answers of
//! the sequential model in `tests/models/token_quota.rs`.

use std::time::Duration;

use arbitrary::{Arbitrary, Result, Unstructured};
use valve::{
    Backoff, BackoffConfig, ConcurrencyBudget, CostClass, Jitter, QuotaRule, RetryAfterRule,
    RetryCosts, SplitMix64, TokenQuota, TokenQuotaConfig, WindowedBudget, WindowedConfig,
};

#[path = "../../tests/models/token_quota.rs"]
mod token_quota_model;
use token_quota_model::QuotaModel;

fn class(u: &mut Unstructured<'_>) -> Result<CostClass> {
    Ok(match u8::arbitrary(u)? % 3 {
        0 => CostClass::Transient,
        1 => CostClass::Timeout,
        _ => CostClass::Throttling,
    })
}

/// Runs one input; panics on any broken invariant or model mismatch.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = match u8::arbitrary(&mut u).unwrap_or(0) % 4 {
        0 => token_quota(&mut u),
        1 => windowed(&mut u),
        2 => concurrency(&mut u),
        _ => backoff(&mut u),
    };
}

fn token_quota(u: &mut Unstructured<'_>) -> Result<()> {
    let config = match u8::arbitrary(u)? % 5 {
        0 => match TokenQuotaConfig::grpc_a6(f64::arbitrary(u)?, f64::arbitrary(u)?) {
            Ok(config) => config,
            Err(_) => return Ok(()),
        },
        1 => TokenQuotaConfig::aws_standard_legacy(),
        2 => TokenQuotaConfig::aws_standard_2026(),
        3 => TokenQuotaConfig::aws_c_io(),
        _ => TokenQuotaConfig {
            capacity: u32::arbitrary(u)?,
            initial: u32::arbitrary(u)?,
            rule: match u8::arbitrary(u)? % 3 {
                0 => QuotaRule::AboveThreshold,
                1 => QuotaRule::CostAvailable,
                _ => QuotaRule::ConsumeRemaining,
            },
            threshold: u32::arbitrary(u)?,
            costs: RetryCosts {
                transient: u32::arbitrary(u)?,
                timeout: u32::arbitrary(u)?,
                throttling: u32::arbitrary(u)?,
            },
            success_credit: u32::arbitrary(u)?,
            refund_on_success: bool::arbitrary(u)?,
        },
    };
    let Ok(quota) = TokenQuota::new(config) else { return Ok(()) };
    let mut model = QuotaModel { config, balance: config.initial };
    let mut granted = Vec::new();
    while !u.is_empty() {
        match u8::arbitrary(u)? % 3 {
            0 => {
                let class = class(u)?;
                let real = quota.try_retry(class);
                assert_eq!(real.as_ref().ok().map(|w| w.tokens), model.retry(class));
                if let Ok(withdrawal) = real {
                    granted.push(withdrawal);
                }
            }
            1 => {
                let refund = if bool::arbitrary(u)? { granted.pop() } else { None };
                model.success(refund.map(|w| w.tokens));
                quota.on_success(refund);
            }
            _ => assert_eq!(quota.may_hedge().is_ok(), model.hedge()),
        }
        assert_eq!(quota.balance(), model.balance);
        let s = quota.snapshot();
        assert!(s.balance >= 0 && s.balance as u64 <= s.capacity, "{s:?}");
    }
    Ok(())
}

fn windowed(u: &mut Unstructured<'_>) -> Result<()> {
    let config = WindowedConfig {
        ttl: Duration::from_millis(u64::from(u16::arbitrary(u)?) * 10),
        min_retries_per_sec: u32::from(u16::arbitrary(u)?),
        percent_can_retry: f64::arbitrary(u)?,
    };
    let Ok(budget) = WindowedBudget::with_clock(config, valve::ManualClock::new(0)) else {
        return Ok(());
    };
    let (mut now, mut deposited) = (0u64, 0i64);
    while !u.is_empty() {
        now = now.saturating_add(u64::from(u32::arbitrary(u)?) * 1000);
        match u8::arbitrary(u)? % 3 {
            0 => {
                budget.deposit_at(now);
                deposited += 1;
            }
            1 => {
                let before = budget.balance_at(now);
                let granted = budget.try_withdraw_at(now).is_ok();
                // Granted exactly when a whole withdrawal was available (Finagle's `>=`).
                assert_eq!(granted, before >= 1, "balance {before}");
            }
            _ => {}
        }
        // Live deposits are at most all deposits, so the balance is at most the reserve plus
        // everything ever deposited, in withdrawals.
        let balance = budget.balance_at(now);
        let ceiling = (budget.reserve_units() + deposited * budget.deposit_units())
            / budget.withdrawal_units().max(1);
        assert!(balance <= ceiling, "balance {balance} above {ceiling}");
    }
    Ok(())
}

fn concurrency(u: &mut Unstructured<'_>) -> Result<()> {
    let budget = if bool::arbitrary(u)? {
        ConcurrencyBudget::envoy()
    } else {
        match ConcurrencyBudget::new(f64::arbitrary(u)?, u32::from(u8::arbitrary(u)?)) {
            Ok(budget) => budget,
            Err(_) => return Ok(()),
        }
    };
    let (mut requests, mut retries) = (0u32, 0u32);
    while !u.is_empty() && requests < 100_000 {
        match u8::arbitrary(u)? % 4 {
            0 => {
                budget.request_started();
                requests += 1;
            }
            1 if requests > 0 => {
                budget.request_finished();
                requests -= 1;
            }
            2 => {
                // Envoy's rule, strict: allowed while retries < max(outstanding x pct, min).
                let max = budget.max_retries(requests);
                let allowed = budget.try_start_retry().is_ok();
                assert_eq!(allowed, u64::from(retries) < max, "{retries} of {max}");
                retries += u32::from(allowed);
            }
            3 if retries > 0 => {
                budget.retry_finished();
                retries -= 1;
            }
            _ => {}
        }
        let s = budget.snapshot();
        assert_eq!(s.retries_in_flight, u64::from(retries));
    }
    Ok(())
}

fn backoff(u: &mut Unstructured<'_>) -> Result<()> {
    let jitter = match u8::arbitrary(u)? % 5 {
        0 => Jitter::None,
        1 => Jitter::Full,
        2 => Jitter::Equal,
        3 => Jitter::Decorrelated,
        _ => Jitter::Grpc,
    };
    let mut config = BackoffConfig::exponential(
        Duration::from_nanos(u64::arbitrary(u)?),
        Duration::from_nanos(u64::arbitrary(u)?),
        jitter,
    );
    config.multiplier = f64::arbitrary(u)?;
    config.retry_after = match u8::arbitrary(u)? % 3 {
        0 => RetryAfterRule::Ignore,
        1 => RetryAfterRule::Exact,
        _ => RetryAfterRule::WithinExtra,
    };
    config.retry_after_max_extra = Duration::from_nanos(u64::arbitrary(u)?);
    let Ok(mut backoff) = Backoff::with_rng(config, SplitMix64::seeded(u64::arbitrary(u)?)) else {
        return Ok(());
    };
    for _ in 0..64 {
        let hint =
            if bool::arbitrary(u)? { Some(Duration::from_nanos(u64::arbitrary(u)?)) } else { None };
        let delay = backoff.next_delay_after(hint);
        if hint.is_none() && !matches!(jitter, Jitter::Grpc) {
            assert!(delay <= config.max, "{delay:?} above the cap {:?}", config.max);
        }
    }
    Ok(())
}
