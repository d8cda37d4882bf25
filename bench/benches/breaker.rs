//! Breaker costs, with baselines in the same run:
//! - `breaker_check/*`: the Closed-state check against a bare atomic load;
//! - `breaker_call/*`: a whole call (acquire + success) on one thread, for each preset, against
//!   the Rust peers failsafe-rs (its default policy and its cheapest, consecutive failures) and
//!   recloser. Caller-supplied time for valve, so no clock read is measured;
//! - `breaker_call_2t/*`: the same call on two threads sharing one breaker, both released
//!   together by a barrier; the figure is wall time per call per thread;
//! - `breaker_clock/*`: valve reading its own clock (acquire and success each read it) against
//!   tokio's `Semaphore` try_acquire + drop, the target for every path that reads the clock.
//!
//! The ratios are printed at the end (target: valve ≤ every peer, at 1 and 2 threads).

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use valve::{Breaker, BreakerConfig, BreakerOutcome};
use valve_bench::estimate;

type Call = Box<dyn Fn() + Send + Sync>;

/// Every contender of `breaker_call`: valve's presets and the peers.
fn calls() -> Vec<(&'static str, Call)> {
    let mut calls: Vec<(&'static str, Call)> = Vec::new();
    for (name, config) in [
        ("valve_default", BreakerConfig::default()),
        ("valve_resilience4j", BreakerConfig::resilience4j()),
        ("valve_gobreaker", BreakerConfig::gobreaker()),
    ] {
        let breaker = Breaker::new(config).unwrap();
        calls.push((
            name,
            Box::new(move || {
                if let Ok(permit) = black_box(&breaker).try_acquire_at(black_box(1_000)) {
                    permit.finish(BreakerOutcome::Success, black_box(1_500));
                }
            }),
        ));
    }
    let failsafe = failsafe::Config::new().build();
    calls.push((
        "failsafe_rs",
        Box::new(move || {
            let failsafe = black_box(&failsafe);
            if failsafe.is_call_permitted() {
                failsafe.on_success();
            }
        }),
    ));
    let backoff = failsafe::backoff::constant(Duration::from_secs(5));
    let consecutive = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(5, backoff))
        .build();
    calls.push((
        "failsafe_rs_consecutive",
        Box::new(move || {
            let failsafe = black_box(&consecutive);
            if failsafe.is_call_permitted() {
                failsafe.on_success();
            }
        }),
    ));
    let recloser = recloser::Recloser::custom().build();
    calls.push((
        "recloser",
        Box::new(move || {
            black_box(black_box(&recloser).call(|| Ok::<u32, ()>(black_box(1)))).ok();
        }),
    ));
    calls
}

fn closed_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_check");
    let word = AtomicU64::new(0);
    group.bench_function("bare_atomic_load", |b| {
        b.iter(|| black_box(black_box(&word).load(Ordering::Acquire)))
    });
    let breaker = Breaker::new(BreakerConfig::default()).unwrap();
    group.bench_function("valve_closed_check", |b| {
        b.iter(|| match black_box(&breaker).try_acquire_at(7) {
            Ok(permit) => black_box(permit.into_token().generation),
            Err(_) => u64::MAX,
        })
    });
    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe_is_call_permitted", |b| {
        b.iter(|| black_box(black_box(&failsafe).is_call_permitted()))
    });
    group.finish();
}

fn whole_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_call");
    for (name, call) in calls() {
        group.bench_function(name, |b| b.iter(&call));
    }
    group.finish();
}

/// `iters` calls on each of two threads at once; the time of the slower.
fn on_two_threads(call: &(dyn Fn() + Sync), iters: u64) -> Duration {
    let barrier = Barrier::new(2);
    thread::scope(|scope| {
        let other = scope.spawn(|| {
            barrier.wait();
            for _ in 0..iters {
                call();
            }
        });
        barrier.wait();
        let start = Instant::now();
        for _ in 0..iters {
            call();
        }
        other.join().unwrap();
        start.elapsed()
    })
}

fn whole_call_two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_call_2t");
    for (name, call) in calls() {
        group.bench_function(name, |b| b.iter_custom(|iters| on_two_threads(&call, iters)));
    }
    group.finish();
}

fn own_clock(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_clock");
    let breaker = Breaker::new(BreakerConfig::default()).unwrap();
    group.bench_function("valve_default_clock", |b| {
        b.iter(|| {
            if let Ok(permit) = black_box(&breaker).try_acquire() {
                permit.success();
            }
        })
    });
    let semaphore = tokio::sync::Semaphore::new(64);
    group.bench_function("tokio_semaphore", |b| {
        b.iter(|| drop(black_box(&semaphore).try_acquire()))
    });
    let recloser = recloser::Recloser::custom().build();
    group.bench_function("recloser", |b| {
        b.iter(|| black_box(black_box(&recloser).call(|| Ok::<u32, ()>(black_box(1)))).ok())
    });
    group.finish();
}

fn report_ratios() {
    let mut rows = Vec::new();
    for group in ["breaker_call", "breaker_call_2t"] {
        for ours in ["valve_default", "valve_resilience4j", "valve_gobreaker"] {
            for peer in ["recloser", "failsafe_rs_consecutive", "failsafe_rs"] {
                rows.push((group, ours, peer, "target <= 1"));
            }
        }
    }
    rows.push(("breaker_clock", "valve_default_clock", "tokio_semaphore", "target <= 1"));
    rows.push(("breaker_clock", "valve_default_clock", "recloser", "valve reading its clock"));
    println!(
        "\n{:<16} {:<20} {:<24} {:>9} {:>9} {:>7}  note",
        "group", "valve", "peer", "valve ns", "peer ns", "ratio"
    );
    for (group, ours, peer, note) in rows {
        if let (Some(a), Some(b)) = (estimate(group, ours), estimate(group, peer)) {
            println!("{group:<16} {ours:<20} {peer:<24} {a:>9.2} {b:>9.2} {:>7.3}  {note}", a / b);
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = closed_check, whole_call, whole_call_two_threads, own_clock
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report_ratios();
}
