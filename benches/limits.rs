//! Uncontended `try_acquire_at` + `success_at` per latency-based algorithm, with AIMD and a
//! fixed limit as baselines in the same run. The window update is amortised: it runs on one
//! sample per window, off the admission path.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use valve::{
    Aimd, EnvoyGradient, EnvoyGradientConfig, Fixed, Gradient2, LimitAlgorithm, Limiter, Vegas,
};

fn acquire_release<A: LimitAlgorithm>(c: &mut Criterion, name: &str, algorithm: A) {
    let limiter = Limiter::new(algorithm).expect("valid algorithm");
    let mut now = 0u64;
    c.bench_function(name, |b| {
        b.iter(|| {
            now += 1_000;
            if let Ok(permit) = limiter.try_acquire_at(black_box(now)) {
                permit.success_at(now + 500);
            }
        })
    });
}

fn limits(c: &mut Criterion) {
    acquire_release(c, "fixed", Fixed::new(100).expect("valid"));
    acquire_release(c, "aimd", Aimd::default());
    acquire_release(c, "gradient2", Gradient2::default());
    acquire_release(c, "vegas", Vegas::default());
    acquire_release(c, "envoy_gradient (p50 histogram)", EnvoyGradient::default());
    let envoy = EnvoyGradient::new(EnvoyGradientConfig::envoy()).expect("valid");
    acquire_release(c, "envoy_gradient preset", envoy);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = limits
}
criterion_main!(benches);
