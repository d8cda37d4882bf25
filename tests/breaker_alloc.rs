//! No heap allocation on any per-call path: a counting global allocator watches acquire,
//! record, trips, half-open probes, timeouts, manual transitions and snapshots.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use valve::{
    Breaker, BreakerConfig, BreakerOutcome, BreakerSplitMix64, BreakerState, OpenBackoff,
    SlidingWindow,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only this test's thread is watched: the harness allocates on its own threads.
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator unchanged; only counts the calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_call() {
    let configs = [
        BreakerConfig::default(),
        BreakerConfig {
            open: OpenBackoff::constant(Duration::from_millis(100)),
            ..BreakerConfig::resilience4j()
        },
        BreakerConfig { window: SlidingWindow::Count { calls: 8 }, ..BreakerConfig::default() },
    ];
    for config in configs {
        // A fixed seed: with a random one, a long jittered open period could outlast the run
        // and leave the half-open path unvisited (the assertion below).
        let breaker = Breaker::builder(config)
            .rng(BreakerSplitMix64::new(1))
            .listener(|t| {
                std::hint::black_box(t);
            })
            .build()
            .unwrap();
        WATCHED.with(|w| w.set(true));
        let mut now = 0;
        for i in 0..20_000u64 {
            now += 1_000_000;
            let outcome = match i % 7 {
                0..=3 => BreakerOutcome::Failure,
                4 => BreakerOutcome::Ignored,
                _ => BreakerOutcome::Success,
            };
            if let Ok(permit) = breaker.try_acquire_at(now) {
                permit.finish(outcome, now + (i % 3) * 1_000_000_000);
            }
            if i % 1000 == 0 {
                breaker.poll_at(now);
                std::hint::black_box(breaker.snapshot());
                std::hint::black_box(breaker.next_transition_at());
            }
            if i % 5000 == 0 {
                breaker.transition_to_at(BreakerState::MetricsOnly, now);
                breaker.reset_at(now);
            }
        }
        WATCHED.with(|w| w.set(false));
        let snap = breaker.snapshot();
        assert!(snap.to_open > 0 && snap.to_half_open > 0, "{snap:?}");
        assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "allocated on a per-call path");
    }
}
