//! A counting global allocator proves that acquire, release and window updates allocate nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use valve::{Aimd, AimdConfig, Fixed, Limiter, WindowConfig};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the thread-local counter
// neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while running `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn acquire_and_release_allocate_nothing() {
    // The counter itself works: a test that cannot fail proves nothing.
    assert_eq!(allocations_in(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(1)))), 1);
    let fixed = Limiter::new(Fixed::new(8).unwrap()).unwrap();
    let per_sample = AimdConfig { window: WindowConfig::per_sample(), ..AimdConfig::default() };
    let aimd = Limiter::new(Aimd::new(per_sample).unwrap()).unwrap();
    let windowed = Limiter::new(Aimd::default()).unwrap();

    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            let now = i * 1_000_000;
            fixed.try_acquire_at(now).unwrap().success_at(now + 10);
            // Every sample runs the elected update here, and every fifth backs off.
            let p = aimd.try_acquire_at(now).unwrap();
            if i % 5 == 0 {
                p.dropped_at(now + 10)
            } else {
                p.success_at(now + 10)
            }
            windowed.try_acquire_at(now).unwrap().success_at(now + 5_000_000);
            drop(windowed.try_acquire());
            let _ = (fixed.snapshot(), aimd.snapshot(), windowed.limit());
        }
    });
    assert_eq!(n, 0, "{n} allocations on the hot path");
    assert!(windowed.snapshot().success >= 10_000);
}

#[test]
fn the_c_abi_allocates_nothing_per_call() {
    use valve::ffi::*;

    let mut config = valve_limiter_config_default();
    config.aimd.window = valve_window_config {
        min_duration_ns: 0,
        max_duration_ns: 0,
        min_samples: 1,
        min_rtt_threshold_ns: 0,
        percentile: 0.0,
    };
    let mut handle = std::ptr::null_mut();
    // SAFETY: both pointers are valid.
    assert_eq!(unsafe { valve_limiter_new(&config, &mut handle) }, valve_status::VALVE_OK);
    let mut permit = valve_permit { limiter_id: 0, start_ns: 0, in_flight: 0, state: 0 };
    let mut snapshot = valve::LimiterSnapshot::default();
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            let now = i * 1_000_000;
            let outcome = (i % 3) as u32;
            // SAFETY: a live handle and valid pointers, used by this thread only.
            unsafe {
                assert_eq!(
                    valve_limiter_try_acquire_at(handle, now, &mut permit),
                    valve_status::VALVE_OK
                );
                assert_eq!(
                    valve_limiter_release_at(handle, &mut permit, outcome, now + 10),
                    valve_status::VALVE_OK
                );
                assert_eq!(
                    valve_limiter_release(handle, &mut permit, outcome),
                    valve_status::VALVE_STALE_PERMIT
                );
                assert_eq!(valve_limiter_try_acquire(handle, &mut permit), valve_status::VALVE_OK);
                assert_eq!(valve_limiter_release(handle, &mut permit, 2), valve_status::VALVE_OK);
                valve_limiter_get_snapshot(handle, &mut snapshot);
            }
        }
    });
    assert_eq!(n, 0, "{n} allocations through the C ABI");
    assert_eq!(snapshot.admitted, 20_000);
    // SAFETY: a live handle, freed once.
    unsafe { valve_limiter_free(handle) };
}
