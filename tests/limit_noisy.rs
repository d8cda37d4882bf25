//! The valve defaults of the latency-based limits under noisy service times.
//!
//! Server as in `limit_behaviour.rs`, but with an exponential service time of mean `S` = 10 ms
//! (the shape of the overload simulator's service): the minimum of many RTTs is near 0 and a
//! window's mean RTT varies by tens of percent, which a latency rule must not read as
//! queueing. Targets, for each valve default, never told the capacity `C` = 50:
//! - at 2x, 4x, 10x and 25x overload, goodput at least 97 % of capacity and the admitted p99
//!   within 3x the unloaded p99;
//! - when capacity halves and returns (2x load), goodput stays at least 95 % of capacity in the
//!   1-4 s after each change, with the p99 within 3x the unloaded p99 (140 ms);
//! - at 1.2x overload the limit does not drift up (last 10 s <= 1.1x the first settled 10 s)
//!   and goodput stays at least 97 %.
//!
//! Runs are short (seconds of simulated time) so the test stays fast in debug builds; the
//! overload simulator (`cargo run --release --example overload`) runs the long versions.

mod common;

use common::sim::{self, MS, SEC, Scenario, Service, Trace};
use valve::{Aimd, EnvoyGradient, Gradient2, LimitAlgorithm, Vegas};

const S: u64 = 10 * MS;
const C: u32 = 50;

type Factory = fn() -> Box<dyn LimitAlgorithm>;

fn valve_defaults() -> Vec<(&'static str, Factory)> {
    vec![
        ("aimd", || Box::new(Aimd::default())),
        ("gradient2", || Box::new(Gradient2::default())),
        ("vegas", || Box::new(Vegas::default())),
        ("envoy gradient", || Box::new(EnvoyGradient::default())),
    ]
}

fn capacity() -> f64 {
    f64::from(C) * SEC as f64 / S as f64
}

fn run(make: Factory, workers: Vec<(u64, u32)>, load: f64, duration: u64) -> Trace {
    let scenario = Scenario {
        workers,
        rate: vec![(0, load * capacity())],
        service: Service::Exponential(S),
        timeout: SEC,
        duration,
        seed: 11,
    };
    sim::run(make(), &scenario)
}

#[test]
fn overload_keeps_goodput_and_latency() {
    let mut failed = Vec::new();
    for (name, make) in valve_defaults() {
        let unloaded = run(make, vec![(0, C)], 0.3, 3 * SEC).p99(0, 3 * SEC);
        for load in [2.0, 4.0, 10.0, 25.0] {
            let trace = run(make, vec![(0, C)], load, 4 * SEC);
            let goodput = trace.goodput(SEC, 4 * SEC) / capacity();
            let p99 = trace.p99(SEC, 4 * SEC) as f64 / unloaded as f64;
            let limit = trace.mean_limit(SEC, 4 * SEC);
            println!("{name:<15} {load:>4}x goodput {goodput:.3} p99 x{p99:.2} limit {limit:.1}");
            if goodput < 0.97 || p99 > 3.0 {
                failed.push(format!("{name} at {load}x: goodput {goodput}, p99 x{p99}"));
            }
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn capacity_halving_and_return_is_followed_within_five_seconds() {
    let mut failed = Vec::new();
    for (name, make) in valve_defaults() {
        let workers = vec![(0, C), (4 * SEC, C / 2), (8 * SEC, C)];
        let trace = run(make, workers, 2.0, 12 * SEC);
        let half = trace.goodput(5 * SEC, 8 * SEC) / (capacity() / 2.0);
        let back = trace.goodput(9 * SEC, 12 * SEC) / capacity();
        let p99 = trace.p99(5 * SEC, 8 * SEC) as f64 / MS as f64;
        println!("{name:<15} halved goodput {half:.3} p99 {p99:.0} ms, back goodput {back:.3}");
        if half < 0.95 || back < 0.95 || p99 > 140.0 {
            failed.push(format!("{name}: goodput {half} halved, {back} back, p99 {p99} ms"));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn mild_overload_does_not_drift_up() {
    let mut failed = Vec::new();
    for (name, make) in valve_defaults() {
        let trace = run(make, vec![(0, C)], 1.2, 40 * SEC);
        let first = trace.mean_limit(5 * SEC, 15 * SEC);
        let last = trace.mean_limit(30 * SEC, 40 * SEC);
        let goodput = trace.goodput(5 * SEC, 40 * SEC) / capacity();
        println!("{name:<15} limit {first:.1} -> {last:.1}, goodput {goodput:.3}");
        if last > 1.1 * first || goodput < 0.97 {
            failed.push(format!("{name}: limit {first} -> {last}, goodput {goodput}"));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
