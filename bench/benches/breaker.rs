//! Breaker costs, with baselines in the same run: the Closed-state check against a bare atomic
//! load, a whole call (check + record) for each preset, and the same call through the Rust
//! peers failsafe-rs and recloser. Caller-supplied time throughout, so no clock read is
//! measured.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use valve::{Breaker, BreakerConfig, BreakerOutcome};

fn closed_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker_check");
    let word = AtomicU64::new(0);
    group.bench_function("bare_atomic_load", |b| {
        b.iter(|| black_box(black_box(&word).load(Ordering::Acquire)))
    });
    // The same load with the check's own work: test the state bits, take the generation.
    group.bench_function("bare_load_test_shift", |b| {
        b.iter(|| {
            let w = black_box(&word).load(Ordering::Acquire);
            if w & 7 == 0 { black_box((w >> 36) as u32) } else { u32::MAX }
        })
    });
    let breaker = Breaker::new(BreakerConfig::default()).unwrap();
    group.bench_function("valve_closed_check", |b| {
        b.iter(|| match black_box(&breaker).try_acquire_at(7) {
            Ok(permit) => black_box(permit.into_token().generation),
            Err(_) => u32::MAX,
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
    for (name, config) in [
        ("valve_default", BreakerConfig::default()),
        ("valve_resilience4j", BreakerConfig::resilience4j()),
        ("valve_gobreaker", BreakerConfig::gobreaker()),
    ] {
        let breaker = Breaker::new(config).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                if let Ok(permit) = black_box(&breaker).try_acquire_at(black_box(1_000)) {
                    permit.finish(BreakerOutcome::Success, black_box(1_500));
                }
            })
        });
    }
    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe_rs", |b| {
        b.iter(|| {
            let failsafe = black_box(&failsafe);
            if failsafe.is_call_permitted() {
                failsafe.on_success();
            }
        })
    });
    let recloser = recloser::Recloser::custom().build();
    group.bench_function("recloser", |b| {
        b.iter(|| black_box(black_box(&recloser).call(|| Ok::<u32, ()>(black_box(1)))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = closed_check, whole_call
}
criterion_main!(benches);
