//! What the C ABI adds to an acquire + release, against the same operation through the Rust API,
//! in the same run.
//!
//! Run: `cargo bench --bench ffi`. The C entry points are called through function pointers
//! hidden from the optimiser, as a C caller reaches them (no inlining into the caller); the Rust
//! side uses the same limiter type the C handle holds (`Limiter<Box<dyn LimitAlgorithm>>`). The
//! harness ends by printing each C figure next to its Rust twin, as a difference and a ratio.

use std::hint::black_box;
use std::ptr;
use std::time::Duration;

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

/// Criterion's point estimate (mean, ns) for `ffi/name`, from its output folder.
fn estimate(name: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = format!("{dir}/criterion/ffi/{name}/new/estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn report() {
    println!(
        "\n{:<16} {:<16} {:>8} {:>8} {:>8} {:>7}  target: C adds under 1 ns",
        "C", "Rust", "C ns", "Rust ns", "added", "ratio"
    );
    for (ours, rust) in [
        ("c_fixed_at", "rust_fixed_at"),
        ("c_aimd_at", "rust_aimd_at"),
        ("c_aimd_clock", "rust_aimd_clock"),
    ] {
        if let (Some(a), Some(b)) = (estimate(ours), estimate(rust)) {
            println!("{ours:<16} {rust:<16} {a:>8.2} {b:>8.2} {:>8.2} {:>7.3}", a - b, a / b);
        }
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
