//! Retry budgets, uncontended: one withdrawal plus one deposit per iteration, against the
//! baselines in the same run: a bare CAS pair on an `AtomicU64`, the same budget guarded by a
//! `std::sync::Mutex`, and tower's `TpsBudget`. Report each as a ratio to the bare CAS.
//!
//! Run: `cargo bench -p valve-bench --bench budget`.

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::retry::budget::{Budget, TpsBudget};
use valve::{CostClass, TokenQuota, WindowedBudget, WindowedConfig};

const CAPACITY: u64 = 500;
const COST: u64 = 5;

/// The floor any budget pays: take `COST` if available, give it back, clamped; one CAS each.
fn bare_cas(word: &AtomicU64) {
    let seen = word.load(Ordering::Relaxed);
    if seen >= COST {
        let _ = word.compare_exchange(seen, seen - COST, Ordering::Relaxed, Ordering::Relaxed);
    }
    let seen = word.load(Ordering::Relaxed);
    let _ = word.compare_exchange(
        seen,
        (seen + COST).min(CAPACITY),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
}

fn mutex_budget(balance: &Mutex<u64>) {
    {
        let mut balance = balance.lock().unwrap();
        if *balance >= COST {
            *balance -= COST;
        }
    }
    let mut balance = balance.lock().unwrap();
    *balance = (*balance + COST).min(CAPACITY);
}

fn withdraw_deposit(c: &mut Criterion) {
    let mut group = c.benchmark_group("budget_withdraw_deposit");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(1));

    let word = AtomicU64::new(CAPACITY);
    group.bench_function("bare_cas", |b| b.iter(|| bare_cas(black_box(&word))));

    let guarded = Mutex::new(CAPACITY);
    group.bench_function("mutex", |b| b.iter(|| mutex_budget(black_box(&guarded))));

    let quota = TokenQuota::aws_standard_legacy();
    group.bench_function("valve_token_quota", |b| {
        b.iter(|| {
            let withdrawal = black_box(&quota).try_retry(CostClass::Transient).ok();
            quota.on_success(withdrawal);
        })
    });

    let config = WindowedConfig { percent_can_retry: 1.0, ..WindowedConfig::finagle() };
    let windowed = WindowedBudget::new(config).unwrap();
    group.bench_function("valve_windowed_at", |b| {
        b.iter(|| {
            let budget = black_box(&windowed);
            budget.deposit_at(0);
            black_box(budget.try_withdraw_at(0).is_ok());
        })
    });
    group.bench_function("valve_windowed_clock", |b| {
        b.iter(|| {
            let budget = black_box(&windowed);
            budget.deposit();
            black_box(budget.try_withdraw().is_ok());
        })
    });

    let tower = TpsBudget::new(Duration::from_secs(10), 10, 1.0);
    group.bench_function("tower_tps_budget", |b| {
        b.iter(|| {
            let budget = black_box(&tower);
            budget.deposit();
            black_box(budget.withdraw());
        })
    });
    group.finish();
}

criterion_group!(benches, withdraw_deposit);
criterion_main!(benches);
