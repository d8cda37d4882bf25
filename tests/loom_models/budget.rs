//! Budget protocols under loom: the clamping CAS at both bounds, window rotation racing
//! deposits and withdrawals, and the concurrency budget's one-word admission.

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use valve::{
    ConcurrencyBudget, CostClass, ManualClock, QuotaRule, RetryCosts, TokenQuota, TokenQuotaConfig,
    WindowedBudget, WindowedConfig,
};

/// One operation on a quota, as a thread in a model runs it.
#[derive(Clone, Copy)]
enum QuotaOp {
    Retry,
    Success,
}

/// Every outcome a sequential quota can give for `ops` run in some order: each op's
/// result (true for a granted retry) and the final balance. Outcomes under loom must be one of
/// these (linearizability for a handful of operations).
fn sequential_outcomes(config: TokenQuotaConfig, ops: &[QuotaOp; 3]) -> Vec<([bool; 3], u32)> {
    const ORDERS: [[usize; 3]; 6] =
        [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    ORDERS
        .iter()
        .map(|order| {
            let quota = TokenQuota::new(config).unwrap();
            let mut results = [false; 3];
            for &i in order {
                results[i] = match ops[i] {
                    QuotaOp::Retry => quota.try_retry(CostClass::Transient).is_ok(),
                    QuotaOp::Success => {
                        quota.on_success(None);
                        true
                    }
                };
            }
            (results, quota.balance())
        })
        .collect()
}

fn run_quota_model(config: TokenQuotaConfig, ops: [QuotaOp; 3]) {
    loom::model(move || {
        let quota = Arc::new(TokenQuota::new(config).unwrap());
        let handles: Vec<_> = ops
            .iter()
            .map(|&op| {
                let quota = quota.clone();
                thread::spawn(move || match op {
                    QuotaOp::Retry => quota.try_retry(CostClass::Transient).is_ok(),
                    QuotaOp::Success => {
                        quota.on_success(None);
                        true
                    }
                })
            })
            .collect();
        let mut results = [false; 3];
        for (result, handle) in results.iter_mut().zip(handles) {
            *result = handle.join().unwrap();
        }
        let balance = quota.balance();
        assert!(balance <= config.capacity);
        let expected = sequential_outcomes(config, &ops);
        assert!(expected.contains(&(results, balance)), "{results:?} {balance}");
        let granted = results.iter().zip(ops).filter(|(r, op)| **r && matches!(op, QuotaOp::Retry));
        assert_eq!(quota.snapshot().allowed, granted.count() as u64);
    });
}

/// The upper bound: two retries race a credit that would overshoot the capacity.
#[test]
fn quota_clamps_at_capacity_under_races() {
    let config = TokenQuotaConfig {
        capacity: 10,
        initial: 5,
        rule: QuotaRule::CostAvailable,
        threshold: 0,
        costs: RetryCosts::uniform(5),
        success_credit: 8,
        refund_on_success: false,
    };
    run_quota_model(config, [QuotaOp::Retry, QuotaOp::Retry, QuotaOp::Success]);
}

/// The lower bound: gRPC-style failures race below zero while a success credits.
#[test]
fn quota_clamps_at_zero_under_races() {
    let config = TokenQuotaConfig {
        capacity: 2000,
        initial: 1500,
        rule: QuotaRule::AboveThreshold,
        threshold: 400,
        costs: RetryCosts::uniform(1000),
        success_credit: 300,
        refund_on_success: false,
    };
    run_quota_model(config, [QuotaOp::Retry, QuotaOp::Retry, QuotaOp::Success]);
}

const WINDOW: u64 = 100_000_000;

fn windowed(clock: ManualClock) -> WindowedBudget<ManualClock> {
    let config = WindowedConfig {
        ttl: Duration::from_secs(1),
        min_retries_per_sec: 0,
        percent_can_retry: 1.0,
    };
    WindowedBudget::with_clock(config, clock).unwrap()
}

/// A deposit and a withdrawal each find the window due and race for the rotation, while a third
/// thread's later deposit rotates again: whoever wins, nothing is lost or counted twice, and once everything expires the balance is exactly
/// back to the reserve (0).
#[test]
fn window_rotation_races_deposits_and_withdrawals() {
    loom::model(|| {
        let budget = Arc::new(windowed(ManualClock::new(0)));
        budget.deposit_at(0);
        let depositor = {
            let budget = budget.clone();
            thread::spawn(move || budget.deposit_at(WINDOW))
        };
        let withdrawer = {
            let budget = budget.clone();
            thread::spawn(move || budget.try_withdraw_at(WINDOW + 1).is_ok())
        };
        let later = {
            let budget = budget.clone();
            thread::spawn(move || budget.deposit_at(3 * WINDOW))
        };
        depositor.join().unwrap();
        later.join().unwrap();
        let granted = withdrawer.join().unwrap();
        assert!(granted, "the first deposit alone pays for it");
        assert_eq!(budget.balance_at(4 * WINDOW), 2, "nothing expires before ten windows");
        assert_eq!(budget.snapshot_at(4 * WINDOW).balance, 2000);
        assert_eq!(budget.balance_at(200 * WINDOW), 0);
        assert_eq!(budget.snapshot_at(200 * WINDOW).balance, 0);
    });
}

/// An idle-clearing rotation (all ten slices) races a deposit and a withdrawal made with an
/// older time: the balance never swings negative (the expiry and the operations are ordered on
/// one word), and once everything expires it is exactly 0 again.
#[test]
fn full_expiry_races_stale_deposits() {
    loom::model(|| {
        let budget = Arc::new(windowed(ManualClock::new(0)));
        budget.deposit_at(0);
        budget.deposit_at(0);
        let expirer = {
            let budget = budget.clone();
            thread::spawn(move || budget.balance_at(50 * WINDOW))
        };
        let stale = {
            let budget = budget.clone();
            thread::spawn(move || {
                budget.deposit_at(0);
                budget.try_withdraw_at(0).is_ok()
            })
        };
        let seen = expirer.join().unwrap();
        stale.join().unwrap();
        assert!((0..=1).contains(&seen), "{seen}");
        let left = budget.balance_at(50 * WINDOW);
        assert!((0..=1).contains(&left), "{left}");
        assert_eq!(budget.balance_at(500 * WINDOW), 0, "everything expires exactly");
    });
}

/// Two retries race for the last slot while a request finishes: the maximum is never passed.
#[test]
fn concurrency_budget_never_overshoots() {
    loom::model(|| {
        let budget = Arc::new(ConcurrencyBudget::new(50.0, 0).unwrap());
        for _ in 0..2 {
            budget.request_started();
        }
        let retries: Vec<_> = (0..2)
            .map(|_| {
                let budget = budget.clone();
                thread::spawn(move || budget.try_start_retry().is_ok())
            })
            .collect();
        let finisher = {
            let budget = budget.clone();
            thread::spawn(move || budget.request_finished())
        };
        let granted = retries.into_iter().map(|h| h.join().unwrap()).filter(|g| *g).count();
        assert!(finisher.join().unwrap());
        assert!(granted <= 1, "max(2 × 50 %, 0) = 1");
        assert_eq!(budget.in_flight(), (1, granted as u32));
    });
}
