//! Behaviour of the latency-based limits against a simulated server on a virtual clock.
//!
//! Server: `C` workers, fixed service time `S` = 100 ms, FIFO queue, 1 s client timeout, Poisson
//! arrivals. Targets (issue 3) for the valve defaults, which are never told the capacity:
//! - under 4x overload, mean in-flight settles within `[C, 1.5C]` and the admitted p99 stays
//!   within 3x the unloaded p99;
//! - when capacity halves and returns, the limit follows within 5 s each way;
//! - at 1.2x overload for 10 minutes the limit does not drift up (minute 10 <= 1.1x minute 1).
//!
//! Each test prints a table of every preset (run with `--nocapture`); the reference presets are
//! measured, not held to the targets, except where a test states what they get wrong.

mod common;

use common::sim::{self, MS, SEC, Scenario, Service, Trace};
use valve::{
    Aimd, AimdConfig, EnvoyGradient, EnvoyGradientConfig, Gradient2, Gradient2Config,
    LimitAlgorithm, Vegas, VegasConfig,
};

const S: u64 = 100 * MS;

type Factory = fn() -> Box<dyn LimitAlgorithm>;

fn presets() -> Vec<(&'static str, Factory, bool)> {
    vec![
        ("aimd netflix", || Box::new(Aimd::new(AimdConfig::netflix()).unwrap()), false),
        (
            "gradient2 netflix",
            || Box::new(Gradient2::new(Gradient2Config::netflix()).unwrap()),
            false,
        ),
        ("gradient2 valve", || Box::new(Gradient2::default()), true),
        ("vegas netflix", || Box::new(Vegas::new(VegasConfig::netflix()).unwrap()), false),
        ("vegas valve", || Box::new(Vegas::default()), true),
        ("envoy", || Box::new(EnvoyGradient::new(EnvoyGradientConfig::envoy()).unwrap()), false),
        ("envoy valve", || Box::new(EnvoyGradient::default()), true),
    ]
}

fn scenario(workers: Vec<(u64, u32)>, rate: Vec<(u64, f64)>, duration: u64) -> Scenario {
    Scenario { workers, rate, service: Service::Fixed(S), timeout: SEC, duration, seed: 7 }
}

/// Arrivals per second that load `c` workers `factor` times over.
fn load(c: u32, factor: f64) -> f64 {
    factor * f64::from(c) * SEC as f64 / S as f64
}

fn unloaded_p99(make: Factory, service: Service) -> u64 {
    let unloaded = scenario(vec![(0, 50)], vec![(0, load(50, 0.3))], 10 * SEC);
    let trace = sim::run(make(), &Scenario { service, ..unloaded });
    trace.p99(0, 10 * SEC)
}

#[test]
fn four_times_overload_settles_between_c_and_one_and_a_half_c() {
    overload_settles(Service::Fixed(S), true);
}

/// Exponential service times: the valve defaults keep latency and in-flight bounded but, as
/// measured, under-use the service (their baseline is seeded from the first window, whose
/// completions are biased towards short calls; see the report). Asserted: what is met.
#[test]
fn four_times_overload_with_exponential_service_times_stays_bounded() {
    let (in_flight, ratio) = overload_settles(Service::Exponential(S), false);
    for (name, in_flight, ratio) in in_flight.iter().zip(&ratio).map(|(a, b)| (a.0, a.1, b.1)) {
        assert!(in_flight <= 75.0 && ratio <= 3.0, "{name}: {in_flight} {ratio}");
    }
}

type Measured = Vec<(&'static str, f64)>;

fn overload_settles(service: Service, assert_targets: bool) -> (Measured, Measured) {
    let mut measured = (Vec::new(), Vec::new());
    const C: u32 = 50;
    let s = Scenario { service, ..scenario(vec![(0, C)], vec![(0, load(C, 4.0))], 20 * SEC) };
    println!("4x overload, C = {C}, {service:?}: settled over [10 s, 20 s)");
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>10}",
        "preset", "in-flight", "p99 ratio", "goodput", "to C (s)"
    );
    for (name, make, valve) in presets() {
        let trace: Trace = sim::run(make(), &s);
        let in_flight = trace.mean_in_flight(10 * SEC, 20 * SEC);
        let ratio = trace.p99(10 * SEC, 20 * SEC) as f64 / unloaded_p99(make, service) as f64;
        let goodput = trace.goodput(0, 20 * SEC);
        let to_c = trace.seconds_until(0, |l| l >= C);
        println!("{name:<20} {in_flight:>10.1} {ratio:>10.2} {goodput:>10.0} {:>10}", secs(to_c));
        if valve && assert_targets {
            assert!(
                (f64::from(C)..=1.5 * f64::from(C)).contains(&in_flight),
                "{name}: {in_flight}"
            );
            assert!(ratio <= 3.0, "{name}: p99 ratio {ratio}");
        }
        if valve {
            measured.0.push((name, in_flight));
            measured.1.push((name, ratio));
        }
    }
    measured
}

#[test]
fn limit_follows_capacity_halving_and_return_within_five_seconds() {
    const C: u32 = 50;
    let s =
        scenario(vec![(0, C), (10 * SEC, C / 2), (20 * SEC, C)], vec![(0, load(C, 2.0))], 30 * SEC);
    println!("2x load, C = 50 -> 25 at 10 s -> 50 at 20 s");
    println!("{:<20} {:>10} {:>10} {:>10}", "preset", "down (s)", "up (s)", "goodput");
    for (name, make, valve) in presets() {
        let trace = sim::run(make(), &s);
        let down = trace.seconds_until(10 * SEC, |l| f64::from(l) <= 1.5 * f64::from(C / 2));
        let up = trace.seconds_until(20 * SEC, |l| l >= C);
        let goodput = trace.goodput(0, 30 * SEC);
        println!("{name:<20} {:>10} {:>10} {goodput:>10.0}", secs(down), secs(up));
        if valve {
            assert!(down.is_some_and(|d| d <= 5.0), "{name}: down {down:?}");
            assert!(up.is_some_and(|u| u <= 5.0), "{name}: up {up:?}");
        }
    }
}

#[test]
fn mild_overload_for_ten_minutes_does_not_drift_up() {
    const C: u32 = 10;
    let s = scenario(vec![(0, C)], vec![(0, load(C, 1.2))], 600 * SEC);
    println!("1.2x overload, C = {C}, 10 minutes");
    println!("{:<20} {:>10} {:>10} {:>10}", "preset", "minute 1", "minute 10", "ratio");
    for (name, make, valve) in presets() {
        let trace = sim::run(make(), &s);
        let first = trace.mean_limit(50 * SEC, 60 * SEC);
        let last = trace.mean_limit(590 * SEC, 600 * SEC);
        println!("{name:<20} {first:>10.1} {last:>10.1} {:>10.2}", last / first);
        if valve {
            assert!(last <= 1.1 * first, "{name}: {first} -> {last}");
        }
    }
}

#[test]
fn cold_start_reaches_capacity_in_seconds() {
    const C: u32 = 50;
    let s = scenario(vec![(0, C)], vec![(0, load(C, 2.0))], 40 * SEC);
    println!("cold start, 2x load, C = {C}");
    println!("{:<20} {:>10} {:>12} {:>12}", "preset", "to C (s)", "goodput 0-40", "ideal");
    for (name, make, _) in presets() {
        let trace = sim::run(make(), &s);
        let to_c = trace.seconds_until(0, |l| l >= C);
        let goodput = trace.goodput(0, 40 * SEC);
        println!("{name:<20} {:>10} {goodput:>12.0} {:>12.0}", secs(to_c), load(C, 1.0));
    }
}

#[test]
fn underloaded_service_then_capacity_drop() {
    const C: u32 = 50;
    let s = scenario(
        vec![(0, C), (20 * SEC, 10)],
        vec![(0, load(C, 0.5)), (20 * SEC, load(10, 2.5))],
        30 * SEC,
    );
    println!("0.5x load for 20 s at C = {C}, then C = 10 at 2.5x");
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>10}",
        "preset", "limit@20s", "p99 20-25", "timeouts", "goodput"
    );
    for (name, make, _) in presets() {
        let trace = sim::run(make(), &s);
        let limit = trace.mean_limit(19 * SEC, 20 * SEC);
        let p99 = trace.p99(20 * SEC, 25 * SEC) as f64 / S as f64;
        let goodput = trace.goodput(20 * SEC, 30 * SEC);
        println!("{name:<20} {limit:>10.0} {p99:>10.2} {:>10} {goodput:>10.0}", trace.timed_out);
    }
}

#[test]
fn periodic_min_rtt_measurement_costs_goodput() {
    const C: u32 = 10;
    let s = scenario(vec![(0, C)], vec![(0, load(C, 4.0))], 130 * SEC);
    println!("4x overload, C = {C}, 130 s");
    println!("{:<20} {:>12} {:>10}", "preset", "goodput 10+", "s at min");
    for (name, make, _) in presets() {
        let trace = sim::run(make(), &s);
        let goodput = trace.goodput(10 * SEC, 130 * SEC);
        let at_min = trace.ticks.iter().filter(|t| t.0 >= 10 * SEC && t.1 <= 3).count() as f64
            * sim::TICK as f64
            / SEC as f64;
        println!("{name:<20} {goodput:>12.1} {at_min:>10.2}");
    }
}

fn secs(value: Option<f64>) -> String {
    value.map_or_else(|| "never".to_string(), |v| format!("{v:.2}"))
}
