//! The scenarios: each failure mode, run with and without the control that contains it.
//!
//! A scenario is a [`Plan`]: its rows (a control on a model), the metrics its table shows, a
//! one-line verdict, and the events its plot marks. To add one, write a function that returns
//! its plan and list it in [`SCENARIOS`].

use valve::{
    Aimd, AimdConfig, BackoffConfig, Breaker, BreakerConfig, BreakerSplitMix64, ConcurrencyBudget,
    EnvoyGradient, EnvoyGradientConfig, Fixed, Gradient2, Gradient2Config, Jitter, LimitAlgorithm,
    Limiter, ManualClock, Nanos, TokenQuota, Vegas, VegasConfig, WindowedBudget, WindowedConfig,
};

use crate::metrics::{self, Format, Metric, RowResult, RunResult};
use crate::sim::{
    self, Budget, Controls, HEALTHY, Health, MS, Model, Retries, SEC, Schedule, ServiceShape,
};

/// The simulated service: 50 workers, 10 ms mean service time (5000 requests/s), clients that
/// give up after 1 s.
pub const WORKERS: u32 = 50;
pub const SERVICE: Nanos = 10 * MS;
pub const TIMEOUT: Nanos = SEC;

/// What every scenario is built for.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub shape: ServiceShape,
    /// Only the rows the targets are checked on: the fixed limit at capacity and every valve
    /// default (the summary mode).
    pub targets_only: bool,
}

/// Every scenario, in the order they print. A new scenario adds its plan function here.
pub const SCENARIOS: &[fn(&Options) -> Plan] =
    &[overload, retry_storm, dead_dependency, spike, capacity_change, drift, mixed, ramp];

/// A limit algorithm the simulator can run.
pub struct LimitChoice {
    /// Its family: the plots draw one panel per family.
    pub family: &'static str,
    /// `"valve default"` or `"<reference> preset"` (valve's parity preset of that reference).
    pub variant: &'static str,
    pub make: fn() -> Box<dyn LimitAlgorithm>,
}

impl LimitChoice {
    pub fn name(&self) -> String {
        format!("{}: {}", self.family, self.variant)
    }

    pub fn is_default(&self) -> bool {
        self.variant == VALVE_DEFAULT
    }
}

pub const VALVE_DEFAULT: &str = "valve default";
/// The row every limit is measured against: a limit the user could only set by knowing the
/// true capacity.
pub const FIXED: &str = "fixed at capacity";

/// Every limit valve ships, as the simulator runs them.
pub fn limit_choices() -> Vec<LimitChoice> {
    vec![
        LimitChoice { family: "aimd", variant: VALVE_DEFAULT, make: || Box::new(Aimd::default()) },
        LimitChoice {
            family: "aimd",
            variant: "netflix preset",
            make: || Box::new(Aimd::new(AimdConfig::netflix()).unwrap()),
        },
        LimitChoice {
            family: "gradient2",
            variant: VALVE_DEFAULT,
            make: || Box::new(Gradient2::default()),
        },
        LimitChoice {
            family: "gradient2",
            variant: "netflix preset",
            make: || Box::new(Gradient2::new(Gradient2Config::netflix()).unwrap()),
        },
        LimitChoice {
            family: "vegas",
            variant: VALVE_DEFAULT,
            make: || Box::new(Vegas::default()),
        },
        LimitChoice {
            family: "vegas",
            variant: "netflix preset",
            make: || Box::new(Vegas::new(VegasConfig::netflix()).unwrap()),
        },
        LimitChoice {
            family: "envoy",
            variant: VALVE_DEFAULT,
            make: || Box::new(EnvoyGradient::default()),
        },
        LimitChoice {
            family: "envoy",
            variant: "envoy preset",
            make: || Box::new(EnvoyGradient::new(EnvoyGradientConfig::envoy()).unwrap()),
        },
    ]
}

/// One row of a table: a control on a model (the seed is set per run).
pub struct Row {
    pub case: String,
    pub control: String,
    /// The algorithm family, for limit rows.
    pub family: Option<&'static str>,
    pub model: Model,
    pub setup: Setup,
}

/// A scenario: its rows, what its table shows, how it is judged, and what its plot marks.
pub struct Plan {
    pub number: u32,
    /// The file name of its plot (`overload-<slug>.svg`).
    pub slug: &'static str,
    pub title: &'static str,
    pub explanation: &'static str,
    pub rows: Vec<Row>,
    pub metrics: Vec<Metric>,
    /// One line on what the control contained, from the rows' results.
    pub verdict: fn(&[RowResult]) -> String,
    /// Moments the plot marks, with a label.
    pub events: Vec<(Nanos, &'static str)>,
}

#[derive(Clone, Copy)]
pub enum Setup {
    Uncontrolled,
    Naive(u32),
    Limit(fn() -> Box<dyn LimitAlgorithm>),
    FixedAtCapacity,
    Quota(fn() -> TokenQuota),
    Windowed(WindowedConfig),
    Concurrency(fn() -> ConcurrencyBudget),
    Breaker(fn() -> BreakerConfig),
    /// Every control at once (valve defaults) with budgeted retries, or none of them with
    /// naive retries.
    Everything(bool),
}

fn backoff() -> BackoffConfig {
    BackoffConfig::exponential(
        std::time::Duration::from_millis(5),
        std::time::Duration::from_millis(200),
        Jitter::Full,
    )
}

/// Runs one row on one model (its seed included).
pub fn execute(setup: Setup, model: &Model) -> RunResult {
    let clock = ManualClock::new(0);
    let clock = &clock;
    let run = |limiter: Option<&Limiter<Box<dyn LimitAlgorithm>, &ManualClock>>,
               breaker: Option<&Breaker<&ManualClock>>,
               retries: Retries<'_>| {
        sim::run(model, &Controls { limiter, breaker, retries }, clock)
    };
    let limited = |algorithm: Box<dyn LimitAlgorithm>| {
        let limiter = Limiter::with_clock(algorithm, clock).unwrap();
        run(Some(&limiter), None, Retries::None)
    };
    let budgeted = |budget: Budget<'_>| {
        run(None, None, Retries::Budgeted { max: 3, budget, backoff: backoff() })
    };
    let mut opened = None;
    let report = match setup {
        Setup::Uncontrolled => run(None, None, Retries::None),
        Setup::Naive(n) => run(None, None, Retries::Naive(n)),
        Setup::Limit(make) => limited(make()),
        Setup::FixedAtCapacity => limited(Box::new(Fixed::new(WORKERS).unwrap())),
        Setup::Quota(make) => budgeted(Budget::Quota(&make())),
        Setup::Windowed(config) => {
            let budget = WindowedBudget::with_clock(config, ManualClock::new(0)).unwrap();
            budgeted(Budget::Windowed(&budget))
        }
        Setup::Concurrency(make) => budgeted(Budget::Concurrency(&make())),
        Setup::Breaker(config) => {
            let breaker = seeded_breaker(config(), model.seed, clock);
            let report = run(None, Some(&breaker), Retries::None);
            opened = Some(breaker.snapshot().to_open);
            report
        }
        Setup::Everything(true) => {
            let algorithm: Box<dyn LimitAlgorithm> = Box::new(Gradient2::default());
            let limiter = Limiter::with_clock(algorithm, clock).unwrap();
            let breaker = seeded_breaker(BreakerConfig::default(), model.seed, clock);
            let budget = WindowedBudget::with_clock(
                WindowedConfig { percent_can_retry: 0.1, ..WindowedConfig::finagle() },
                ManualClock::new(0),
            )
            .unwrap();
            let retries =
                Retries::Budgeted { max: 3, budget: Budget::Windowed(&budget), backoff: backoff() };
            run(Some(&limiter), Some(&breaker), retries)
        }
        Setup::Everything(false) => run(None, None, Retries::Naive(3)),
    };
    RunResult::new(model, report, opened)
}

/// A breaker whose open-duration jitter comes from the run's seed, so `--seeds` reproduces it.
fn seeded_breaker(config: BreakerConfig, seed: u64, clock: &ManualClock) -> Breaker<&ManualClock> {
    Breaker::builder(config).clock(clock).rng(BreakerSplitMix64::new(seed)).build().unwrap()
}

fn model(options: &Options, load: Schedule<f64>, duration: Nanos) -> Model {
    Model {
        workers: Schedule::constant(WORKERS),
        load,
        nominal_workers: WORKERS,
        service_mean: SERVICE,
        service_shape: options.shape,
        timeout: TIMEOUT,
        health: Schedule::constant(HEALTHY),
        duration,
        seed: 0,
    }
}

/// The limiter rows every overload scenario compares: none, a fixed limit at the true
/// capacity, and every algorithm (only the fixed limit and the valve defaults when checking
/// targets).
fn limiter_rows(options: &Options, case: &str, model: &Model) -> Vec<Row> {
    let row = |control: String, family, setup| Row {
        case: case.into(),
        control,
        family,
        model: model.clone(),
        setup,
    };
    let mut rows = Vec::new();
    if !options.targets_only {
        rows.push(row("no limit (timeouts only)".into(), None, Setup::Uncontrolled));
    }
    rows.push(row(FIXED.into(), None, Setup::FixedAtCapacity));
    for choice in limit_choices() {
        if choice.is_default() || !options.targets_only {
            rows.push(row(choice.name(), Some(choice.family), Setup::Limit(choice.make)));
        }
    }
    rows
}

/// The rows of valve's defaults.
fn defaults(rows: &[RowResult]) -> impl Iterator<Item = &RowResult> {
    rows.iter().filter(|r| r.control.ends_with(VALVE_DEFAULT))
}

/// `lo-hi` of a metric over rows (the median over seeds of each), formatted.
fn span(
    rows: &mut dyn Iterator<Item = &RowResult>,
    value: fn(&RunResult) -> f64,
    f: Format,
) -> String {
    let (lo, hi) = rows
        .map(|r| r.median(value))
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return "-".into();
    }
    let (lo, hi) = (f.cell(lo), f.cell(hi));
    if lo == hi { lo } else { format!("{lo} to {hi}") }
}

fn find<'a>(rows: &'a [RowResult], control: &str) -> Option<&'a RowResult> {
    rows.iter().find(|r| r.control == control)
}

fn goodput(r: &RunResult) -> f64 {
    r.goodput_pct()
}

fn overload(options: &Options) -> Plan {
    let mut rows = Vec::new();
    for x in [2.0, 4.0, 10.0, 25.0] {
        let m = model(options, Schedule::constant(x), 20 * SEC);
        rows.extend(limiter_rows(options, &format!("{x}x"), &m));
    }
    fn steady(r: &RunResult) -> f64 {
        metrics::goodput_between_pct(&r.buckets, 2 * SEC, r.duration)
    }
    fn worst(r: &RunResult) -> f64 {
        metrics::worst_second_pct(&r.buckets, 2 * SEC, r.duration)
    }
    fn verdict(rows: &[RowResult]) -> String {
        let none = rows.iter().filter(|r| r.control.starts_with("no limit"));
        format!(
            "valve defaults keep {} goodput (p99 {} the unloaded p99) from 2x to 25x; \
             with timeouts only goodput is {}",
            span(&mut defaults(rows), steady, Format::Pct),
            span(&mut defaults(rows), RunResult::p99_vs_unloaded, Format::Ratio),
            span(&mut none.into_iter(), steady, Format::Pct),
        )
    }
    Plan {
        number: 1,
        slug: "overload",
        title: "Timeouts only, at 2x to 25x overload",
        explanation: "Timeouts bound how long a client waits, not how much work the server \
            admits: past capacity the queue grows until every request waits longer than its \
            client, and the server spends all its time on answers nobody reads. A limit sheds \
            the excess at once, so the work it admits finishes in time. Goodput and worst 1 s \
            from 2 s on, once the cold start is over.",
        rows,
        metrics: vec![
            Metric { header: "goodput", value: steady, format: Format::Pct },
            Metric { header: "worst 1 s", value: worst, format: Format::Pct },
            metrics::P99,
            metrics::P99_X,
            metrics::LIMIT,
            metrics::LIMIT_COV,
        ],
        verdict,
        events: vec![],
    }
}

fn retry_storm(options: &Options) -> Plan {
    let mut m = model(options, Schedule::constant(0.5), 20 * SEC);
    m.health = Schedule::constant(Health { failing: 1.0, slowdown: 1.0 });
    let case = "dependency failing".to_string();
    let row = |control: &str, setup| Row {
        case: case.clone(),
        control: control.into(),
        family: None,
        model: m.clone(),
        setup,
    };
    let finagle_10 = WindowedConfig { percent_can_retry: 0.1, ..WindowedConfig::finagle() };
    fn dependency_load(r: &RunResult) -> f64 {
        r.attempts as f64 / r.capacity_total.max(1.0)
    }
    fn denied(r: &RunResult) -> f64 {
        r.retries_denied as f64
    }
    fn retries(r: &RunResult) -> f64 {
        r.retries as f64
    }
    fn verdict(rows: &[RowResult]) -> String {
        let budgets = rows.iter().filter(|r| r.control.starts_with("budget"));
        let naive = find(rows, "3 naive retries").map(|r| r.median(RunResult::amplification));
        format!(
            "retry budgets hold the failing dependency's load to {} the clients' requests; \
             3 naive retries make it {}",
            span(&mut budgets.into_iter(), RunResult::amplification, Format::Ratio),
            naive.map_or("-".into(), |x| Format::Ratio.cell(x)),
        )
    }
    Plan {
        number: 2,
        slug: "retry-storm",
        title: "Retry storm (the dependency fails every call, load 0.5x)",
        explanation: "When a dependency fails, every layer that retries multiplies the load on it: \
            three retries make four times the traffic exactly when it can least take it. A retry \
            budget caps retries at a fraction of real requests, so the load stays near what \
            clients actually ask for. Nothing succeeds here: what counts is the load the \
            failing dependency must absorb.",
        rows: vec![
            row("no retries", Setup::Uncontrolled),
            row("3 naive retries", Setup::Naive(3)),
            row("budget: finagle 10%", Setup::Windowed(finagle_10)),
            row("budget: finagle 20%", Setup::Windowed(WindowedConfig::finagle())),
            row(
                "budget: grpc a6 (10, 0.1)",
                Setup::Quota(|| TokenQuota::grpc_a6(10.0, 0.1).unwrap()),
            ),
            row("budget: aws standard", Setup::Quota(TokenQuota::aws_standard_legacy)),
            row("budget: envoy 20%, 3", Setup::Concurrency(ConcurrencyBudget::envoy)),
        ],
        metrics: vec![
            Metric { header: "ampl.", value: RunResult::amplification, format: Format::Ratio },
            Metric { header: "dep. load", value: dependency_load, format: Format::Ratio },
            Metric { header: "retries", value: retries, format: Format::Count },
            Metric { header: "denied", value: denied, format: Format::Count },
        ],
        verdict,
        events: vec![],
    }
}

fn dead_dependency(options: &Options) -> Plan {
    let mut m = model(options, Schedule::constant(0.5), 60 * SEC);
    // Dead from 10 s to 40 s: every call hangs past the client timeout, then fails.
    let dead = Health { failing: 1.0, slowdown: 200.0 };
    m.health = Schedule(vec![(0, HEALTHY), (10 * SEC, dead), (40 * SEC, HEALTHY)]);
    let case = "dead 10-40 s".to_string();
    let row = |control: &str, setup| Row {
        case: case.clone(),
        control: control.into(),
        family: None,
        model: m.clone(),
        setup,
    };
    fn back(r: &RunResult) -> f64 {
        metrics::recovery_s(&r.buckets, 40 * SEC, 0.9)
    }
    fn while_dead(r: &RunResult) -> f64 {
        r.calls_while_dead as f64
    }
    fn opened(r: &RunResult) -> f64 {
        r.breaker_opened.map_or(f64::NAN, |n| n as f64)
    }
    fn verdict(rows: &[RowResult]) -> String {
        let valve = find(rows, "breaker: valve default");
        let none = find(rows, "no breaker");
        let show = |r: Option<&RowResult>, f: fn(&RunResult) -> f64, fmt: Format| {
            r.map_or("-".into(), |r| fmt.cell(r.median(f)))
        };
        format!(
            "valve's breaker sends {} calls to the dead dependency (none: {}) and has traffic \
             back {} after it recovers (none: {}); 50 % goodput is the ceiling at 0.5x",
            show(valve, while_dead, Format::Count),
            show(none, while_dead, Format::Count),
            show(valve, back, Format::Secs),
            show(none, back, Format::Secs),
        )
    }
    Plan {
        number: 3,
        slug: "dead-dependency",
        title: "Dead dependency (down from 10 s to 40 s, load 0.5x: 50 % goodput is the ceiling)",
        explanation: "A dependency that hangs until every caller times out keeps absorbing \
            calls, threads and queue space for nothing. A circuit breaker stops the calls after \
            a few failures, lets a handful of probes through per open period, and returns \
            traffic when the probes succeed. At 0.5x load goodput cannot pass 50 % of capacity, \
            and with the dependency down for half the run, about 25 %.",
        rows: vec![
            row("no breaker", Setup::Uncontrolled),
            row("breaker: valve default", Setup::Breaker(BreakerConfig::default)),
            row("breaker: resilience4j preset", Setup::Breaker(BreakerConfig::resilience4j)),
            row("breaker: gobreaker preset", Setup::Breaker(BreakerConfig::gobreaker)),
            row("breaker: polly preset", Setup::Breaker(BreakerConfig::polly)),
            row("breaker: hystrix preset", Setup::Breaker(BreakerConfig::hystrix)),
        ],
        metrics: vec![
            metrics::GOODPUT,
            Metric { header: "dead calls", value: while_dead, format: Format::Count },
            Metric { header: "opened", value: opened, format: Format::Count },
            Metric { header: "back after", value: back, format: Format::Secs },
        ],
        verdict,
        events: vec![(10 * SEC, "dependency down"), (40 * SEC, "back")],
    }
}

/// The verdict of a scenario with a step: the defaults' worst second against the fixed limit's,
/// and how fast their limits settle.
fn step_verdict(
    rows: &[RowResult],
    worst: fn(&RunResult) -> f64,
    settle: fn(&RunResult) -> f64,
) -> String {
    let fixed = find(rows, FIXED).map_or(f64::NAN, |r| r.median(worst));
    let none = rows.iter().filter(|r| r.control.starts_with("no limit"));
    format!(
        "worst second: valve defaults {}, fixed at capacity {}, no limit {}; their limits \
         settle {} after each step",
        span(&mut defaults(rows), worst, Format::Pct),
        Format::Pct.cell(fixed),
        span(&mut none.into_iter(), worst, Format::Pct),
        span(&mut defaults(rows), settle, Format::Secs),
    )
}

fn spike(options: &Options) -> Plan {
    let load = Schedule(vec![(0, 0.8), (10 * SEC, 1.4), (20 * SEC, 0.8)]);
    let m = model(options, load, 60 * SEC);
    fn worst(r: &RunResult) -> f64 {
        metrics::worst_second_pct(&r.buckets, 10 * SEC, 25 * SEC)
    }
    fn recovered(r: &RunResult) -> f64 {
        metrics::recovery_s(&r.buckets, 20 * SEC, 0.9)
    }
    fn settle_in(r: &RunResult) -> f64 {
        metrics::settle_s(&r.buckets, 10 * SEC)
    }
    fn settle_out(r: &RunResult) -> f64 {
        metrics::settle_s(&r.buckets, 20 * SEC)
    }
    fn verdict(rows: &[RowResult]) -> String {
        step_verdict(rows, worst, |r| settle_in(r).max(settle_out(r)))
    }
    Plan {
        number: 4,
        slug: "spike",
        title: "A 1.4x spike for 10 s, then back to 0.8x",
        explanation: "A short spike fills the queue with work that will time out, and that queue \
            outlives the spike: after the load falls back, new requests still wait behind doomed \
            ones, so goodput stays near zero (a metastable failure). A limit never lets the \
            queue build, so the service recovers as soon as the spike ends. Worst 1 s: the \
            worst second from 10 s to 25 s, as % of what the service could answer.",
        rows: limiter_rows(options, "1.4x spike", &m),
        metrics: vec![
            metrics::GOODPUT,
            Metric { header: "worst 1 s", value: worst, format: Format::Pct },
            Metric { header: "recovered", value: recovered, format: Format::Secs },
            Metric { header: "settle in", value: settle_in, format: Format::Secs },
            Metric { header: "settle out", value: settle_out, format: Format::Secs },
            metrics::LIMIT,
        ],
        verdict,
        events: vec![(10 * SEC, "spike"), (20 * SEC, "spike ends")],
    }
}

fn capacity_change(options: &Options) -> Plan {
    let mut m = model(options, Schedule::constant(0.9), 60 * SEC);
    m.workers = Schedule(vec![(0, WORKERS), (20 * SEC, WORKERS / 2), (40 * SEC, WORKERS)]);
    fn worst(r: &RunResult) -> f64 {
        metrics::worst_second_pct(&r.buckets, 20 * SEC, 45 * SEC)
    }
    fn down(r: &RunResult) -> f64 {
        metrics::recovery_s(&r.buckets, 20 * SEC, 0.9)
    }
    fn up(r: &RunResult) -> f64 {
        metrics::recovery_s(&r.buckets, 40 * SEC, 0.9)
    }
    fn settle_down(r: &RunResult) -> f64 {
        metrics::settle_s(&r.buckets, 20 * SEC)
    }
    fn settle_up(r: &RunResult) -> f64 {
        metrics::settle_s(&r.buckets, 40 * SEC)
    }
    fn verdict(rows: &[RowResult]) -> String {
        step_verdict(rows, worst, |r| settle_down(r).max(settle_up(r)))
    }
    Plan {
        number: 5,
        slug: "capacity",
        title: "Capacity halves at 20 s, returns at 40 s (load 0.9x of full capacity)",
        explanation: "Capacity is not a constant: a deploy, a noisy neighbour or a slow \
            dependency halves it without warning. A limit that learns capacity follows it down \
            within seconds and back up when it returns; a fixed limit set for the old capacity \
            lets the queue grow. Worst 1 s: the worst second from 20 s to 45 s, as % of what \
            the service could answer; down, up: seconds until goodput holds 90 % of that; \
            settle: seconds until the limit holds within 20 % for 5 s.",
        rows: limiter_rows(options, "halved", &m),
        metrics: vec![
            metrics::GOODPUT,
            Metric { header: "worst 1 s", value: worst, format: Format::Pct },
            Metric { header: "down", value: down, format: Format::Secs },
            Metric { header: "up", value: up, format: Format::Secs },
            Metric { header: "settle dn", value: settle_down, format: Format::Secs },
            Metric { header: "settle up", value: settle_up, format: Format::Secs },
            metrics::LIMIT,
        ],
        verdict,
        events: vec![(20 * SEC, "capacity halves"), (40 * SEC, "returns")],
    }
}

fn drift(options: &Options) -> Plan {
    let m = model(options, Schedule::constant(1.2), 600 * SEC);
    fn minute_1(r: &RunResult) -> f64 {
        metrics::median_limit(&r.buckets, 50 * SEC, 60 * SEC)
    }
    fn minute_10(r: &RunResult) -> f64 {
        metrics::median_limit(&r.buckets, 590 * SEC, 600 * SEC)
    }
    fn verdict(rows: &[RowResult]) -> String {
        let presets = rows.iter().filter(|r| r.control.ends_with("preset"));
        format!(
            "valve defaults' limits move {} in ten minutes (target: at most 1.10x); the \
             presets' {}",
            span(&mut defaults(rows), metrics::drift, Format::Ratio),
            span(&mut presets.into_iter(), metrics::drift, Format::Ratio),
        )
    }
    Plan {
        number: 6,
        slug: "drift",
        title: "Ten minutes at 1.2x",
        explanation: "Under mild, sustained overload some algorithms read the lasting queueing \
            delay as the new normal and let the limit creep up until it protects nothing. The \
            limit should hold: at minute 10 no more than 1.1x its value at minute 1.",
        rows: limiter_rows(options, "1.2x, 10 min", &m)
            .into_iter()
            .filter(|r| !options.targets_only || r.control != FIXED)
            .collect(),
        metrics: vec![
            metrics::GOODPUT,
            metrics::P99,
            Metric { header: "limit m1", value: minute_1, format: Format::Limit },
            Metric { header: "limit m10", value: minute_10, format: Format::Limit },
            Metric { header: "drift", value: metrics::drift, format: Format::Ratio },
        ],
        verdict,
        events: vec![],
    }
}

fn mixed(options: &Options) -> Plan {
    let load = Schedule(vec![(0, 0.7), (20 * SEC, 2.0), (30 * SEC, 0.7)]);
    let mut m = model(options, load, 60 * SEC);
    m.workers = Schedule(vec![(0, WORKERS), (15 * SEC, WORKERS / 2), (45 * SEC, WORKERS)]);
    m.health = Schedule(vec![
        (0, HEALTHY),
        (35 * SEC, Health { failing: 0.3, slowdown: 1.0 }),
        (50 * SEC, HEALTHY),
    ]);
    let case = "mixed".to_string();
    fn verdict(rows: &[RowResult]) -> String {
        let show = |control: &str, f: fn(&RunResult) -> f64, fmt: Format| {
            find(rows, control).map_or("-".into(), |r| fmt.cell(r.median(f)))
        };
        let (naive, valve) =
            ("naive: 3 retries, no controls", "valve: gradient2, finagle 10%, breaker");
        format!(
            "valve's controls together: goodput {} (naive clients {}), p99 {} ms ({} ms)",
            show(valve, goodput, Format::Pct),
            show(naive, goodput, Format::Pct),
            show(valve, |r| r.p99_ms, Format::Ms),
            show(naive, |r| r.p99_ms, Format::Ms),
        )
    }
    Plan {
        number: 7,
        slug: "mixed",
        title: "All controls against a mixed incident",
        explanation: "Real incidents combine: capacity halves (15-45 s), a 2x burst arrives \
            (20-30 s) and the dependency then fails 30 % of calls (35-50 s), while clients \
            retry. The limiter, the retry budget and the breaker together keep goodput up \
            and latency bounded where naive clients with no controls collapse.",
        rows: vec![
            Row {
                case: case.clone(),
                control: "naive: 3 retries, no controls".into(),
                family: None,
                model: m.clone(),
                setup: Setup::Everything(false),
            },
            Row {
                case,
                control: "valve: gradient2, finagle 10%, breaker".into(),
                family: Some("gradient2"),
                model: m,
                setup: Setup::Everything(true),
            },
        ],
        metrics: vec![metrics::GOODPUT, metrics::P50, metrics::P99, metrics::AMPLIFICATION],
        verdict,
        events: vec![
            (15 * SEC, "capacity halves"),
            (20 * SEC, "2x burst"),
            (35 * SEC, "30 % failing"),
            (45 * SEC, "capacity returns"),
        ],
    }
}

/// The ramp's load passes 1.2x at this moment (0.5x at 0 s, 5x at 120 s).
const RAMP_OVERLOADED: Nanos = 28 * SEC + 700 * MS;

fn ramp(options: &Options) -> Plan {
    let m = model(options, Schedule::ramp(0.5, 5.0, 0, 120 * SEC), 130 * SEC);
    fn overloaded(r: &RunResult) -> f64 {
        metrics::goodput_between_pct(&r.buckets, RAMP_OVERLOADED, r.duration)
    }
    fn worst(r: &RunResult) -> f64 {
        metrics::worst_second_pct(&r.buckets, RAMP_OVERLOADED, r.duration)
    }
    fn verdict(rows: &[RowResult]) -> String {
        let none = rows.iter().filter(|r| r.control.starts_with("no limit"));
        format!(
            "past 1.2x, valve defaults keep {} goodput (worst second {}); timeouts only: {}",
            span(&mut defaults(rows), overloaded, Format::Pct),
            span(&mut defaults(rows), worst, Format::Pct),
            span(&mut none.into_iter(), overloaded, Format::Pct),
        )
    }
    Plan {
        number: 8,
        slug: "ramp",
        title: "A ramp from 0.5x to 5x over 120 s",
        explanation: "Load rarely steps; it climbs. A limit must follow the service through \
            the moment it becomes overloaded and keep it busy as the excess grows. Goodput and \
            worst 1 s: from the moment the load passes 1.2x (28.7 s) to the end (130 s), as % \
            of capacity.",
        rows: limiter_rows(options, "0.5x to 5x", &m),
        metrics: vec![
            Metric { header: "goodput", value: overloaded, format: Format::Pct },
            Metric { header: "worst 1 s", value: worst, format: Format::Pct },
            metrics::P99,
            metrics::P99_X,
            metrics::LIMIT,
        ],
        verdict,
        events: vec![(RAMP_OVERLOADED, "1.2x"), (120 * SEC, "5x")],
    }
}
