//! Behaviour of the latency-based limits against a simulated server on a virtual clock.
//!
//! Server: `C` workers, fixed service time `S` = 100 ms (one scenario: exponential), FIFO
//! queue, 1 s client timeout (a timed-out call reports dropped; the server still works on it),
//! Poisson arrivals. Targets (issue 3) for the valve defaults, which are never told the
//! capacity:
//! - under 4x overload, mean in-flight settles within `[C, 1.5C]` and the admitted p99 stays
//!   within 3x the unloaded p99;
//! - when capacity halves and returns, the limit follows within 5 s each way;
//! - at 1.2x overload for 10 minutes the limit does not drift up (minute 10 <= 1.1x minute 1);
//! - against the reference presets: what they get wrong (slow cold start, drift, Envoy's
//!   runaway limit and min-RTT probe), and goodput at least the best reference's.
//!
//! Each test prints a table of every preset (`cargo test --test limit_behaviour --
//! --nocapture`). Where a valve default does not match the best reference on a metric, the
//! test asserts what it does meet and the doc comment says so.

mod common;

use common::sim::{self, MS, SEC, Scenario, Service, Trace};
use valve::{
    Aimd, AimdConfig, EnvoyGradient, EnvoyGradientConfig, Gradient2, Gradient2Config,
    LimitAlgorithm, Vegas, VegasConfig,
};

const S: u64 = 100 * MS;

type Factory = fn() -> Box<dyn LimitAlgorithm>;

/// `(name, factory, is a valve default)`.
fn presets() -> Vec<(&'static str, Factory, bool)> {
    vec![
        ("aimd netflix", || Box::new(Aimd::new(AimdConfig::netflix()).unwrap()), false),
        (
            "gradient2 netflix",
            || Box::new(Gradient2::new(Gradient2Config::netflix()).unwrap()),
            false,
        ),
        ("vegas netflix", || Box::new(Vegas::new(VegasConfig::netflix()).unwrap()), false),
        ("envoy", || Box::new(EnvoyGradient::new(EnvoyGradientConfig::envoy()).unwrap()), false),
        ("aimd valve", || Box::new(Aimd::default()), true),
        ("gradient2 valve", || Box::new(Gradient2::default()), true),
        ("vegas valve", || Box::new(Vegas::default()), true),
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
    sim::run(make(), &Scenario { service, ..unloaded }).p99(0, 10 * SEC)
}

/// One row of a scenario's table: the preset and its metrics, in header order.
struct Row {
    name: &'static str,
    valve: bool,
    metrics: Vec<f64>,
}

/// Runs every preset, prints the table and returns it. `NaN` prints as "never".
fn table(title: &str, header: &[&str], measure: impl Fn(Factory) -> Vec<f64>) -> Vec<Row> {
    println!("\n{title}");
    print!("{:<18}", "preset");
    for h in header {
        print!(" {h:>12}");
    }
    println!();
    let mut rows = Vec::new();
    for (name, make, valve) in presets() {
        let metrics = measure(make);
        print!("{name:<18}");
        for m in &metrics {
            if m.is_nan() { print!(" {:>12}", "never") } else { print!(" {m:>12.2}") }
        }
        println!();
        rows.push(Row { name, valve, metrics });
    }
    rows
}

fn seconds(value: Option<f64>) -> f64 {
    value.unwrap_or(f64::NAN)
}

fn valve_rows(rows: &[Row]) -> impl Iterator<Item = &Row> {
    rows.iter().filter(|r| r.valve)
}

fn row<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter().find(|r| r.name == name).unwrap()
}

/// The best reference value of metric `i` (`higher`: larger is better).
fn best_reference(rows: &[Row], i: usize, higher: bool) -> f64 {
    let values = rows.iter().filter(|r| !r.valve).map(|r| r.metrics[i]);
    if higher { values.fold(f64::MIN, f64::max) } else { values.fold(f64::MAX, f64::min) }
}

/// Netflix's limits start at 20 and add about one per second: 30 s or more to reach 50, and
/// 10-15 % of goodput or more lost on the way; valve's reach it in about half a second.
#[test]
fn cold_start_reaches_capacity_in_seconds() {
    const C: u32 = 50;
    let s = scenario(vec![(0, C)], vec![(0, load(C, 2.0))], 40 * SEC);
    let rows = table("cold start, 2x load, C = 50, 40 s", &["to C (s)", "goodput/s"], |make| {
        let trace = sim::run(make(), &s);
        vec![seconds(trace.seconds_until(0, |l| l >= C)), trace.goodput(0, 40 * SEC)]
    });
    let ideal = load(C, 1.0);
    for name in ["aimd netflix", "gradient2 netflix"] {
        let r = row(&rows, name);
        assert!(r.metrics[0] >= 25.0, "{name} reached C in {} s", r.metrics[0]);
        assert!(r.metrics[1] <= 0.9 * ideal, "{name} goodput {}", r.metrics[1]);
    }
    let best = best_reference(&rows, 1, true);
    for r in valve_rows(&rows) {
        assert!(r.metrics[0] <= 2.0, "{}: to C {}", r.name, r.metrics[0]);
        assert!(r.metrics[1] >= best, "{}: goodput {} < {best}", r.name, r.metrics[1]);
    }
}

/// Issue target: in-flight within `[C, 1.5C]`, p99 within 3x unloaded, and goodput at least
/// the best reference's. Not matched: the lowest reference p99 (Netflix Gradient2's, which
/// holds in-flight at 31 < C and so loses 45 % of goodput).
#[test]
fn four_times_overload_settles_between_c_and_one_and_a_half_c() {
    let rows = overload_table(Service::Fixed(S));
    let best_goodput = best_reference(&rows, 2, true);
    for r in valve_rows(&rows) {
        let (in_flight, ratio, goodput) = (r.metrics[0], r.metrics[1], r.metrics[2]);
        assert!((50.0..=75.0).contains(&in_flight), "{}: in-flight {in_flight}", r.name);
        assert!(ratio <= 3.0, "{}: p99 ratio {ratio}", r.name);
        assert!(goodput >= best_goodput, "{}: goodput {goodput} < {best_goodput}", r.name);
    }
}

/// Exponential service times: latency and in-flight stay bounded. The goodput targets under
/// noisy service times are asserted in `tests/limit_noisy.rs`.
#[test]
fn four_times_overload_with_exponential_service_times_stays_bounded() {
    let rows = overload_table(Service::Exponential(S));
    for r in valve_rows(&rows) {
        assert!(r.metrics[0] <= 75.0 && r.metrics[1] <= 3.0, "{}: {:?}", r.name, r.metrics);
    }
}

fn overload_table(service: Service) -> Vec<Row> {
    const C: u32 = 50;
    let s = Scenario { service, ..scenario(vec![(0, C)], vec![(0, load(C, 4.0))], 20 * SEC) };
    let title = format!("4x overload, C = 50, {service:?} ns: settled over [10 s, 20 s)");
    table(&title, &["in-flight", "p99 ratio", "goodput/s"], |make| {
        let trace: Trace = sim::run(make(), &s);
        vec![
            trace.mean_in_flight(10 * SEC, 20 * SEC),
            trace.p99(10 * SEC, 20 * SEC) as f64 / unloaded_p99(make, service) as f64,
            trace.goodput(10 * SEC, 20 * SEC),
        ]
    })
}

/// Issue target: the limit follows within 5 s each way, with goodput at least the best
/// reference's. Not matched: the fastest reference follow times (Netflix Gradient2 never rises
/// above 37, so it is "down" at once and never "up"; Netflix Vegas grows by 6 per sample).
#[test]
fn limit_follows_capacity_halving_and_return_within_five_seconds() {
    const C: u32 = 50;
    let s =
        scenario(vec![(0, C), (10 * SEC, C / 2), (20 * SEC, C)], vec![(0, load(C, 2.0))], 30 * SEC);
    let header = ["down (s)", "up (s)", "goodput/s"];
    let rows = table("2x load, C = 50 -> 25 at 10 s -> 50 at 20 s", &header, |make| {
        let trace = sim::run(make(), &s);
        vec![
            seconds(trace.seconds_until(10 * SEC, |l| f64::from(l) <= 1.5 * f64::from(C / 2))),
            seconds(trace.seconds_until(20 * SEC, |l| l >= C)),
            trace.goodput(0, 30 * SEC),
        ]
    });
    let best_goodput = best_reference(&rows, 2, true);
    for r in valve_rows(&rows) {
        assert!(r.metrics[0] <= 5.0, "{}: down {}", r.name, r.metrics[0]);
        assert!(r.metrics[1] <= 5.0, "{}: up {}", r.name, r.metrics[1]);
        assert!(r.metrics[2] >= best_goodput, "{}: goodput {}", r.name, r.metrics[2]);
    }
}

/// Issue target: no drift (minute 10 <= 1.1x minute 1). Netflix's AIMD and Gradient2 climb
/// instead of holding (Gradient2 by 2.6x in ten minutes).
#[test]
fn mild_overload_for_ten_minutes_does_not_drift_up() {
    const C: u32 = 10;
    let s = scenario(vec![(0, C)], vec![(0, load(C, 1.2))], 600 * SEC);
    let header = ["minute 1", "minute 10", "ratio"];
    let rows = table("1.2x overload, C = 10, 10 minutes: mean limit", &header, |make| {
        let trace = sim::run(make(), &s);
        let first = trace.mean_limit(50 * SEC, 60 * SEC);
        let last = trace.mean_limit(590 * SEC, 600 * SEC);
        vec![first, last, last / first]
    });
    assert!(row(&rows, "gradient2 netflix").metrics[2] > 1.5);
    assert!(row(&rows, "aimd netflix").metrics[2] > 1.1);
    for r in valve_rows(&rows) {
        assert!(r.metrics[2] <= 1.1, "{}: drift {}", r.name, r.metrics[2]);
    }
}

/// Envoy's limit runs to its maximum while the service is under-loaded, so the capacity drop
/// meets no protection (timeouts); valve's stay tied to the in-flight they saw.
/// Not matched: the p99 right after the drop of Netflix's presets, whose limits had only
/// crawled to 36-40 in 20 s.
#[test]
fn underloaded_service_then_capacity_drop() {
    let s = scenario(
        vec![(0, 50), (20 * SEC, 10)],
        vec![(0, load(50, 0.5)), (20 * SEC, load(10, 2.5))],
        30 * SEC,
    );
    let header = ["limit@20s", "p99/S 20-25", "timeouts", "goodput/s"];
    let title = "0.5x load at C = 50 for 20 s, then C = 10 at 2.5x";
    let rows = table(title, &header, |make| {
        let trace = sim::run(make(), &s);
        vec![
            trace.mean_limit(19 * SEC, 20 * SEC),
            trace.p99(20 * SEC, 25 * SEC) as f64 / S as f64,
            trace.timed_out as f64,
            trace.goodput(20 * SEC, 30 * SEC),
        ]
    });
    let envoy = row(&rows, "envoy");
    assert!(envoy.metrics[0] >= 900.0, "envoy's limit stayed at {}", envoy.metrics[0]);
    assert!(envoy.metrics[2] > 0.0);
    let best_goodput = best_reference(&rows, 3, true);
    for r in valve_rows(&rows) {
        assert!(r.metrics[0] <= 100.0, "{}: limit {}", r.name, r.metrics[0]);
        assert!(r.metrics[1] < 10.0, "{}: p99 {} S", r.name, r.metrics[1]);
        assert_eq!(r.metrics[2], 0.0, "{}: timeouts", r.name);
        assert!(r.metrics[3] >= 0.99 * best_goodput, "{}: goodput {}", r.name, r.metrics[3]);
    }
}

/// Issue 3: while the service is under-loaded, a limit must stay tied to the in-flight it has
/// seen, so a sudden capacity drop meets protection. Netflix's app-limited rule (grow while
/// in-flight reaches half the limit) let valve's defaults climb to about twice the peak
/// in-flight after a spike (the overload simulator's scenario 4: 134-148 for a peak near 70);
/// growing only while it reaches 0.8 of the limit (Vegas: 0.7) holds them within 1.5x the
/// peak sampled every 50 ms (which undersamples the true peak), at no cost in goodput.
#[test]
fn valve_defaults_hold_the_limit_near_peak_in_flight_when_underloaded() {
    const C: u32 = 50;
    let service = Service::Exponential(10 * MS);
    let capacity = f64::from(C) * SEC as f64 / (10 * MS) as f64;
    let s = Scenario {
        workers: vec![(0, C)],
        rate: vec![(0, 1.4 * capacity), (10 * SEC, 0.8 * capacity)],
        service,
        timeout: SEC,
        duration: 40 * SEC,
        seed: 1,
    };
    let header = ["peak in-flight", "mean limit", "ratio", "goodput/s"];
    let title = "1.4x for 10 s, then 0.8x, C = 50, exponential: seconds 20-40";
    let rows = table(title, &header, |make| {
        let trace = sim::run(make(), &s);
        let (from, to) = (20 * SEC, 40 * SEC);
        let peak = trace.ticks.iter().filter(|t| t.0 >= from && t.0 < to).map(|t| t.2).max();
        let peak = f64::from(peak.unwrap_or(0));
        let limit = trace.mean_limit(from, to);
        vec![peak, limit, limit / peak, trace.goodput(from, to)]
    });
    let best_goodput = best_reference(&rows, 3, true);
    for r in valve_rows(&rows) {
        assert!(r.metrics[2] <= 1.5, "{}: limit {:.2}x the peak in-flight", r.name, r.metrics[2]);
        assert!(r.metrics[3] >= 0.99 * best_goodput, "{}: goodput {}", r.name, r.metrics[3]);
    }
}

/// Envoy's periodic min-RTT measurement pins the limit at 3 and costs goodput every minute
/// (here also its re-measure after 5 windows at the minimum); valve's learn it live.
#[test]
fn periodic_min_rtt_measurement_costs_goodput() {
    const C: u32 = 10;
    let s = scenario(vec![(0, C)], vec![(0, load(C, 4.0))], 130 * SEC);
    let header = ["goodput/s", "s at <= 3"];
    let rows = table("4x overload, C = 10, 130 s, after the first 10 s", &header, |make| {
        let trace = sim::run(make(), &s);
        let pinned = trace.ticks.iter().filter(|t| t.0 >= 10 * SEC && t.1 <= 3).count();
        vec![trace.goodput(10 * SEC, 130 * SEC), pinned as f64 * sim::TICK as f64 / SEC as f64]
    });
    let envoy = row(&rows, "envoy");
    assert!(envoy.metrics[1] > 0.0);
    let best_goodput = best_reference(&rows, 0, true);
    for r in valve_rows(&rows) {
        assert_eq!(r.metrics[1], 0.0, "{}: pinned", r.name);
        assert!(r.metrics[0] >= best_goodput, "{}: goodput {}", r.name, r.metrics[0]);
        assert!(r.metrics[0] > envoy.metrics[0], "{}: goodput {}", r.name, r.metrics[0]);
    }
}

/// Regression: at 10x overload with exponential service times (the overload simulator's
/// service), Envoy's valve default learnt its baseline from the first windows of the cold
/// start, whose completions are the fastest calls. The baseline sat at half the service's
/// p50, every window then read as queueing, and the limit was pinned near 4 (9 % goodput). Over
/// four seeds (the third collapsed) it must now keep at least 97 % of capacity after its first second, with the
/// p99 within 3x the unloaded p99.
#[test]
fn envoy_valve_default_holds_goodput_at_10x() {
    const C: u32 = 50;
    let service = Service::Exponential(10 * MS);
    let capacity = f64::from(C) * SEC as f64 / (10 * MS) as f64;
    let make: Factory = || Box::new(EnvoyGradient::default());
    let unloaded = unloaded_p99(make, service);
    for seed in 1..=4 {
        let s = Scenario {
            workers: vec![(0, C)],
            rate: vec![(0, 10.0 * capacity)],
            service,
            timeout: SEC,
            duration: 10 * SEC,
            seed,
        };
        let trace = sim::run(make(), &s);
        let goodput = trace.goodput(SEC, 10 * SEC) / capacity;
        let p99 = trace.p99(SEC, 10 * SEC) as f64 / unloaded as f64;
        println!("seed {seed}: goodput {goodput:.3}, p99 {p99:.2}x unloaded");
        assert!(goodput >= 0.97, "seed {seed}: goodput {goodput:.3} of capacity");
        assert!(p99 <= 3.0, "seed {seed}: p99 {p99:.2}x unloaded");
    }
}
