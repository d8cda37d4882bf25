//! Retry budgets through the public API: reference scenarios, the denial message, the clock
//! forms, the snapshot layout, and no allocation on any per-call path.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use valve::{
    Backoff, BackoffConfig, BudgetDenied, BudgetSnapshot, ConcurrencyBudget, CostClass, DenyReason,
    Jitter, ManualClock, SplitMix64, TokenQuota, TokenQuotaConfig, WindowedBudget, WindowedConfig,
};

/// Counts allocations made by the current thread only, so tests running in parallel do not
/// disturb each other's counts.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call forwards to `System` unchanged; the counter is a const-initialised
// thread-local `Cell`, which neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_during(work: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    work();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn no_per_call_path_allocates() {
    let quota = TokenQuota::grpc_a6(10.0, 0.1).unwrap();
    let aws = TokenQuota::aws_c_io();
    let clock = Arc::new(ManualClock::new(0));
    let windowed = WindowedBudget::with_clock(WindowedConfig::finagle(), clock.clone()).unwrap();
    let concurrency = ConcurrencyBudget::envoy();
    let mut backoff =
        Backoff::with_rng(BackoffConfig::aws_2026(false), SplitMix64::seeded(1)).unwrap();
    let allocated = allocations_during(|| {
        for i in 0..2_000u64 {
            let _ = quota.try_retry(CostClass::Timeout);
            quota.on_success(None);
            let _ = quota.may_hedge();
            if let Ok(withdrawal) = aws.try_retry(CostClass::Throttling) {
                aws.on_success(Some(withdrawal));
            }
            clock.set(i * 7_000_000);
            windowed.deposit();
            let _ = windowed.try_withdraw();
            let _ = windowed.balance();
            let _ = windowed.snapshot();
            concurrency.request_started();
            if concurrency.try_start_retry().is_ok() {
                concurrency.retry_finished();
            }
            concurrency.request_finished();
            let _ = backoff.next_delay_after(Some(Duration::from_millis(i)));
            let _ = quota.snapshot();
            let _ = concurrency.snapshot();
        }
    });
    assert_eq!(allocated, 0);
}

/// aws-sdk-go-v2 issue 1665's message ("retry quota exceeded, 3 available, 5 requested"),
/// and issue 3189's complaint that it reads like a server error.
#[test]
fn denial_says_it_is_the_clients_own_budget() {
    let mut config = TokenQuotaConfig::aws_standard_legacy();
    config.initial = 3;
    let quota = TokenQuota::new(config).unwrap();
    let denied: BudgetDenied = quota.try_retry(CostClass::Transient).unwrap_err();
    assert_eq!(
        denied,
        BudgetDenied { reason: DenyReason::QuotaBelowCost, balance: 3, requested: 5 }
    );
    let message = denied.to_string();
    assert!(message.contains("this client's own retry budget, not by the server"), "{message}");
    assert!(message.contains("3 available, 5 requested"), "{message}");
    let error: Box<dyn std::error::Error> = Box::new(denied);
    assert!(error.to_string().starts_with("retry denied"));
}

/// One client shared by many callers drains the AWS quota (aws-sdk-go-v2 issue 1665): 100
/// timeouts in a row, then only successes refill it, one token each.
#[test]
fn aws_quota_drains_and_refills_as_botocore() {
    let quota = TokenQuota::aws_standard_legacy();
    let granted = (0..100).filter(|_| quota.try_retry(CostClass::Timeout).is_ok()).count();
    assert_eq!(granted, 50);
    for _ in 0..9 {
        quota.on_success(None);
    }
    assert!(quota.try_retry(CostClass::Timeout).is_err(), "9 < 10");
    quota.on_success(None);
    assert!(quota.try_retry(CostClass::Timeout).is_ok(), "10 >= 10");
    let snapshot = quota.snapshot();
    assert_eq!((snapshot.balance, snapshot.allowed, snapshot.denied), (0, 51, 51));
}

/// The methods without `_at` read the budget's clock; Finagle's default allows a burst of
/// `10/s × 10 s = 100` retries, which refill about a ttl later.
#[test]
fn windowed_budget_reads_its_clock() {
    let clock = Arc::new(ManualClock::new(5_000_000_000));
    let budget = WindowedBudget::with_clock(WindowedConfig::finagle(), clock.clone()).unwrap();
    let burst = (0..150).filter(|_| budget.try_withdraw().is_ok()).count();
    assert_eq!(burst, 100);
    assert_eq!(budget.try_withdraw().unwrap_err().reason, DenyReason::WindowExhausted);
    clock.advance(Duration::from_secs(5));
    assert_eq!(budget.balance(), 0, "withdrawals still live half a ttl later");
    for _ in 0..25 {
        budget.deposit();
    }
    assert_eq!(budget.balance(), 5, "25 requests at 20 % pay for 5 retries");
    clock.advance(Duration::from_secs(6));
    assert_eq!(budget.balance(), 100 + 5, "the burst expired; the deposits have not");
    clock.advance(Duration::from_secs(11));
    assert_eq!(budget.balance(), 100);
    let snapshot = budget.snapshot();
    assert_eq!((snapshot.balance, snapshot.allowed, snapshot.denied), (500_000, 100, 51));
}

#[test]
fn backoff_iterates_and_jitters_within_its_family() {
    let config = BackoffConfig::exponential(
        Duration::from_millis(10),
        Duration::from_secs(1),
        Jitter::Equal,
    );
    let mut backoff = Backoff::with_rng(config, SplitMix64::seeded(99)).unwrap();
    let mut exponential = Duration::from_millis(10);
    for delay in backoff.by_ref().take(12) {
        assert!(delay >= exponential / 2 && delay < exponential, "{delay:?} {exponential:?}");
        exponential = (exponential * 2).min(Duration::from_secs(1));
    }
    backoff.reset();
    assert!(backoff.next_delay() < Duration::from_millis(10));
    let unseeded: Vec<Duration> = Backoff::new(config).unwrap().take(3).collect();
    assert_eq!(unseeded.len(), 3);
}

/// The snapshot crosses the C ABI: six 8-byte integers, no padding.
#[test]
fn snapshot_is_plain_c_data() {
    assert_eq!(std::mem::size_of::<BudgetSnapshot>(), 48);
    assert_eq!(std::mem::align_of::<BudgetSnapshot>(), 8);
    assert_eq!(std::mem::size_of::<DenyReason>(), 4);
    assert_eq!(BudgetSnapshot::default().balance, 0);
}
