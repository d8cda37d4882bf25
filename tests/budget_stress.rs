//! Stress: 16 threads of mixed operations on one budget. Where no bound is reached the final
//! balance is the exact arithmetic sum of what the threads did; where bounds are hit, no
//! observer ever sees the balance outside `[0, capacity]` and no grant exceeds the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use valve::{
    ConcurrencyBudget, CostClass, QuotaRule, RetryCosts, TokenQuota, TokenQuotaConfig,
    WindowedBudget, WindowedConfig,
};

const THREADS: u64 = 16;
const OPS: u64 = 20_000;

fn quota_config(capacity: u32, initial: u32) -> TokenQuotaConfig {
    TokenQuotaConfig {
        capacity,
        initial,
        rule: QuotaRule::CostAvailable,
        threshold: 0,
        costs: RetryCosts { transient: 5, timeout: 10, throttling: 3 },
        success_credit: 2,
        refund_on_success: true,
    }
}

/// Runs `work(thread_index)` on 16 threads at once while `observe` runs in a loop on one more,
/// until they finish.
fn hammer<T: Send + 'static>(
    work: impl Fn(u64) -> T + Send + Sync + 'static,
    observe: impl Fn() + Send + 'static,
) -> Vec<T> {
    let work = Arc::new(work);
    let done = Arc::new(AtomicBool::new(false));
    let observer = {
        let done = done.clone();
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                observe();
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|index| {
            let work = work.clone();
            thread::spawn(move || work(index))
        })
        .collect();
    let results = workers.into_iter().map(|worker| worker.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    observer.join().unwrap();
    results
}

/// Starting mid-range with room for every operation either way, every retry is granted and
/// the final balance is exactly `initial − Σ costs + Σ credits`.
#[test]
fn quota_sums_exactly_when_no_bound_is_reached() {
    let capacity = 4_000_000;
    let initial = 2_000_000;
    let quota = Arc::new(TokenQuota::new(quota_config(capacity, initial)).unwrap());
    let observed = quota.clone();
    let per_thread = hammer(
        {
            let quota = quota.clone();
            move |index| {
                let mut delta = 0i64;
                let classes = [CostClass::Transient, CostClass::Timeout, CostClass::Throttling];
                for op in 0..OPS {
                    let class = classes[((op + index) % 3) as usize];
                    match (op * 7 + index) % 4 {
                        0 | 1 => {
                            let withdrawal = quota.try_retry(class).expect("far from 0");
                            delta -= i64::from(withdrawal.tokens);
                            if op % 5 == 0 {
                                quota.on_success(Some(withdrawal));
                                delta += i64::from(withdrawal.tokens);
                            }
                        }
                        _ => {
                            quota.on_success(None);
                            delta += 2;
                        }
                    }
                }
                delta
            }
        },
        move || assert!(observed.balance() <= capacity),
    );
    let expected = i64::from(initial) + per_thread.iter().sum::<i64>();
    assert_eq!(i64::from(quota.balance()), expected);
    let snapshot = quota.snapshot();
    assert_eq!(snapshot.allowed, THREADS * OPS / 2, "every retry was granted");
    assert_eq!(snapshot.denied, 0);
}

/// A small quota hammered at both bounds: the balance never leaves `[0, capacity]`, and the
/// tokens granted never exceed what was there plus what came back.
#[test]
fn quota_stays_within_bounds_under_contention() {
    let capacity = 60;
    let quota = Arc::new(TokenQuota::new(quota_config(capacity, capacity / 2)).unwrap());
    let observed = quota.clone();
    let per_thread = hammer(
        {
            let quota = quota.clone();
            move |index| {
                let (mut taken, mut credited) = (0u64, 0u64);
                for op in 0..OPS {
                    if (op + index) % 3 == 0 {
                        quota.on_success(None);
                        credited += 2;
                    } else if let Ok(withdrawal) = quota.try_retry(CostClass::Timeout) {
                        taken += u64::from(withdrawal.tokens);
                    }
                }
                (taken, credited)
            }
        },
        move || assert!(observed.balance() <= capacity),
    );
    let taken: u64 = per_thread.iter().map(|(taken, _)| taken).sum();
    let credited: u64 = per_thread.iter().map(|(_, credited)| credited).sum();
    assert!(taken <= u64::from(capacity / 2) + credited);
    let snapshot = quota.snapshot();
    assert!(snapshot.balance >= 0 && snapshot.balance <= i64::from(capacity));
    assert_eq!(snapshot.allowed * 10, taken, "a granted timeout retry takes exactly 10");
    assert!(snapshot.denied > 0, "the bound was reached");
}

/// The windowed budget with time frozen: the final count is exactly the reserve plus the
/// deposits minus the granted withdrawals, and the count is never overdrawn.
#[test]
fn windowed_budget_sums_exactly_and_never_overdraws() {
    let config = WindowedConfig::finagle();
    let budget =
        Arc::new(WindowedBudget::with_clock(config, Arc::new(valve::ManualClock::new(0))).unwrap());
    let observed = budget.clone();
    let granted = hammer(
        {
            let budget = budget.clone();
            move |index| {
                let mut granted = 0u64;
                for op in 0..OPS {
                    if (op + index) % 3 == 0 {
                        granted += u64::from(budget.try_withdraw_at(0).is_ok());
                    } else {
                        budget.deposit_at(0);
                    }
                }
                granted
            }
        },
        move || assert!(observed.snapshot_at(0).balance >= 0),
    );
    let granted: u64 = granted.iter().sum();
    let deposits = (0..THREADS)
        .map(|index| (0..OPS).filter(|op| (op + index) % 3 != 0).count() as i64)
        .sum::<i64>();
    let expected = 500_000 + deposits * 1000 - granted as i64 * 5000;
    assert_eq!(budget.snapshot_at(0).balance, expected);
    assert!(expected >= 0);
}

/// The concurrency budget never lets more retries run than its maximum.
#[test]
fn concurrency_budget_never_exceeds_its_maximum() {
    let budget = Arc::new(ConcurrencyBudget::new(10.0, 2).unwrap());
    for _ in 0..40 {
        budget.request_started();
    }
    let running = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let observed = budget.clone();
    hammer(
        {
            let (budget, running, peak) = (budget.clone(), running.clone(), peak.clone());
            move |_| {
                for _ in 0..OPS / 4 {
                    if budget.try_start_retry().is_ok() {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::Relaxed);
                        running.fetch_sub(1, Ordering::SeqCst);
                        assert!(budget.retry_finished());
                    }
                }
            }
        },
        move || assert!(observed.in_flight().1 <= 4),
    );
    assert!(peak.load(Ordering::Relaxed) <= 4, "max(10 % of 40, 2) = 4");
    assert_eq!(budget.in_flight(), (40, 0));
}
