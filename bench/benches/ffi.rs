//! What the C ABI adds to an acquire + release, against the same operation through the Rust API,
//! in the same run.
//!
//! Run: `cargo bench -p valve-bench --bench ffi`. The C entry points are called through function pointers
//! hidden from the optimiser, as a C caller reaches them (no inlining into the caller); the Rust
//! side uses the same limiter type the C handle holds (`Limiter<Box<dyn LimitAlgorithm>>`). The
//! harness ends with a paired comparison (`paired`): C and Rust batches timed back to back,
//! their difference taken per round, which this VM's drift between criterion's separate
//! intervals does not reach.

use std::hint::black_box;
use std::ptr;
use std::time::{Duration, Instant};

use criterion::Criterion;
use valve::ffi::{
    valve_limiter, valve_limiter_config, valve_limiter_config_default, valve_limiter_config_fixed,
    valve_limiter_free, valve_limiter_new, valve_limiter_release, valve_limiter_release_at,
    valve_limiter_try_acquire, valve_limiter_try_acquire_at, valve_outcome, valve_permit,
    valve_status,
};
use valve::{Aimd, Fixed, LimitAlgorithm, Limiter};

const LIMIT: u32 = 1000;
const SUCCESS: u32 = valve_outcome::VALVE_OUTCOME_SUCCESS as u32;

type TryAcquireAt =
    unsafe extern "C" fn(*const valve_limiter, u64, *mut valve_permit) -> valve_status;
type ReleaseAt =
    unsafe extern "C" fn(*const valve_limiter, *mut valve_permit, u32, u64) -> valve_status;
type TryAcquire = unsafe extern "C" fn(*const valve_limiter, *mut valve_permit) -> valve_status;
type Release = unsafe extern "C" fn(*const valve_limiter, *mut valve_permit, u32) -> valve_status;

/// A C handle, freed on drop.
struct Handle(*mut valve_limiter);

impl Handle {
    fn new(config: &valve_limiter_config) -> Self {
        let mut handle = ptr::null_mut();
        // SAFETY: both pointers are valid for the call.
        let status = unsafe { valve_limiter_new(config, &mut handle) };
        assert_eq!(status, valve_status::VALVE_OK);
        Self(handle)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a live handle from `valve_limiter_new`, freed once.
        unsafe { valve_limiter_free(self.0) }
    }
}

fn rust_fixed() -> Limiter<Box<dyn LimitAlgorithm>> {
    Limiter::new(Box::new(Fixed::new(LIMIT).unwrap()) as Box<dyn LimitAlgorithm>).unwrap()
}

fn rust_aimd() -> Limiter<Box<dyn LimitAlgorithm>> {
    Limiter::new(Box::new(Aimd::default()) as Box<dyn LimitAlgorithm>).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ffi");
    let acquire_at: TryAcquireAt = black_box(valve_limiter_try_acquire_at);
    let release_at: ReleaseAt = black_box(valve_limiter_release_at);
    let acquire: TryAcquire = black_box(valve_limiter_try_acquire);
    let release: Release = black_box(valve_limiter_release);

    let fixed = rust_fixed();
    g.bench_function("rust_fixed_at", |b| {
        b.iter(|| black_box(&fixed).try_acquire_at(black_box(7)).map(|p| p.success_at(9)))
    });
    let handle = Handle::new(&valve_limiter_config_fixed(LIMIT));
    g.bench_function("c_fixed_at", |b| {
        let mut permit =
            black_box(valve_permit { limiter_id: 0, start_ns: 0, in_flight: 0, state: 0 });
        b.iter(|| {
            // SAFETY: a live handle and a valid permit, used by this thread only.
            unsafe {
                if acquire_at(handle.0, black_box(7), &mut permit) == valve_status::VALVE_OK {
                    release_at(handle.0, &mut permit, SUCCESS, 9);
                }
            }
        })
    });

    let aimd = rust_aimd();
    g.bench_function("rust_aimd_at", |b| {
        let mut now = 0u64;
        b.iter(|| {
            now += 100;
            black_box(&aimd).try_acquire_at(now).map(|p| p.success_at(now + 50))
        })
    });
    let handle = Handle::new(&valve_limiter_config_default());
    g.bench_function("c_aimd_at", |b| {
        let mut permit =
            black_box(valve_permit { limiter_id: 0, start_ns: 0, in_flight: 0, state: 0 });
        let mut now = 0u64;
        b.iter(|| {
            now += 100;
            // SAFETY: a live handle and a valid permit, used by this thread only.
            unsafe {
                if acquire_at(handle.0, now, &mut permit) == valve_status::VALVE_OK {
                    release_at(handle.0, &mut permit, SUCCESS, now + 50);
                }
            }
        })
    });

    let aimd_clock = rust_aimd();
    g.bench_function("rust_aimd_clock", |b| {
        b.iter(|| black_box(&aimd_clock).try_acquire().map(|p| p.success()))
    });
    let handle = Handle::new(&valve_limiter_config_default());
    g.bench_function("c_aimd_clock", |b| {
        let mut permit =
            black_box(valve_permit { limiter_id: 0, start_ns: 0, in_flight: 0, state: 0 });
        b.iter(|| {
            // SAFETY: a live handle and a valid permit, used by this thread only.
            unsafe {
                if acquire(handle.0, &mut permit) == valve_status::VALVE_OK {
                    release(handle.0, &mut permit, SUCCESS);
                }
            }
        })
    });
    g.finish();
}

/// Batches of `BATCH` pairs, `ROUNDS` of each kind, for the paired comparison.
const ROUNDS: usize = 300;
const BATCH: u64 = 10_000;

/// Times C and Rust batches back to back, alternating which goes first, and answers the
/// medians (ns per pair) of the C batches, the Rust batches and the per-round differences.
/// Criterion measures each function in its own interval, seconds apart, and this VM's speed
/// drifts between intervals by more than the difference sought; a difference taken within
/// each round cancels that drift.
fn paired(mut c: impl FnMut(u64), mut rust: impl FnMut(u64)) -> (f64, f64, f64) {
    let time = |f: &mut dyn FnMut(u64)| {
        let started = Instant::now();
        f(BATCH);
        started.elapsed().as_secs_f64() * 1e9 / BATCH as f64
    };
    let (mut cs, mut rusts, mut diffs) = (vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        let (c_ns, rust_ns) = if round % 2 == 0 {
            let c_ns = time(&mut c);
            (c_ns, time(&mut rust))
        } else {
            let rust_ns = time(&mut rust);
            (time(&mut c), rust_ns)
        };
        cs.push(c_ns);
        rusts.push(rust_ns);
        diffs.push(c_ns - rust_ns);
    }
    (median(cs), median(rusts), median(diffs))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The paired comparison of every C figure with its Rust twin.
fn report() {
    let acquire_at: TryAcquireAt = black_box(valve_limiter_try_acquire_at);
    let release_at: ReleaseAt = black_box(valve_limiter_release_at);
    let acquire: TryAcquire = black_box(valve_limiter_try_acquire);
    let release: Release = black_box(valve_limiter_release);
    let mut permit = valve_permit { limiter_id: 0, start_ns: 0, in_flight: 0, state: 0 };

    let (fixed, c_fixed) = (rust_fixed(), Handle::new(&valve_limiter_config_fixed(LIMIT)));
    let fixed_at = paired(
        |n| {
            for _ in 0..n {
                // SAFETY: a live handle and a valid permit, used by this thread only.
                unsafe {
                    if acquire_at(c_fixed.0, black_box(7), &mut permit) == valve_status::VALVE_OK {
                        release_at(c_fixed.0, &mut permit, SUCCESS, 9);
                    }
                }
            }
        },
        |n| {
            for _ in 0..n {
                let _ = black_box(&fixed).try_acquire_at(black_box(7)).map(|p| p.success_at(9));
            }
        },
    );

    let (aimd, c_aimd) = (rust_aimd(), Handle::new(&valve_limiter_config_default()));
    let (mut c_now, mut rust_now) = (0u64, 0u64);
    let aimd_at = paired(
        |n| {
            for _ in 0..n {
                c_now += 100;
                // SAFETY: a live handle and a valid permit, used by this thread only.
                unsafe {
                    if acquire_at(c_aimd.0, c_now, &mut permit) == valve_status::VALVE_OK {
                        release_at(c_aimd.0, &mut permit, SUCCESS, c_now + 50);
                    }
                }
            }
        },
        |n| {
            for _ in 0..n {
                rust_now += 100;
                let _ =
                    black_box(&aimd).try_acquire_at(rust_now).map(|p| p.success_at(rust_now + 50));
            }
        },
    );

    let (aimd_clock, c_clock) = (rust_aimd(), Handle::new(&valve_limiter_config_default()));
    let aimd_clock = paired(
        |n| {
            for _ in 0..n {
                // SAFETY: a live handle and a valid permit, used by this thread only.
                unsafe {
                    if acquire(c_clock.0, &mut permit) == valve_status::VALVE_OK {
                        release(c_clock.0, &mut permit, SUCCESS);
                    }
                }
            }
        },
        |n| {
            for _ in 0..n {
                let _ = black_box(&aimd_clock).try_acquire().map(|p| p.success());
            }
        },
    );

    println!(
        "\npaired, median of {ROUNDS} rounds of {BATCH} pairs each; target: C adds under 1 ns"
    );
    println!("{:<16} {:>8} {:>8} {:>8} {:>7}", "", "C ns", "Rust ns", "added", "ratio");
    for (name, (c, rust, added)) in
        [("fixed_at", fixed_at), ("aimd_at", aimd_at), ("aimd_clock", aimd_clock)]
    {
        println!("{name:<16} {c:>8.2} {rust:>8.2} {added:>8.2} {:>7.3}", c / rust);
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
    report();
}
