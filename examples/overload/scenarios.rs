//! The scenarios: each failure mode, run with and without the control that contains it.

use valve::{
    Aimd, AimdConfig, BackoffConfig, Breaker, BreakerConfig, BreakerSplitMix64, ConcurrencyBudget,
    EnvoyGradient, EnvoyGradientConfig, Fixed, Gradient2, Gradient2Config, Jitter, LimitAlgorithm,
    Limiter, ManualClock, Nanos, TokenQuota, Vegas, VegasConfig, WindowedBudget, WindowedConfig,
};

use crate::sim::{
    self, BUCKET, Bucket, Budget, Controls, HEALTHY, Health, MS, Model, Report, Retries, SEC,
    Schedule,
};

/// The simulated service: 50 workers, 10 ms mean service time (5000 requests/s), clients that
/// give up after 1 s.
pub const WORKERS: u32 = 50;
pub const SERVICE: Nanos = 10 * MS;
pub const TIMEOUT: Nanos = SEC;

/// A limit algorithm the simulator can run: a name and how to build it.
pub struct LimitChoice {
    pub name: &'static str,
    pub make: fn() -> Box<dyn LimitAlgorithm>,
}

/// Every limit valve ships, as the simulator runs them.
pub fn limit_choices() -> Vec<LimitChoice> {
    vec![
        LimitChoice { name: "aimd (valve)", make: || Box::new(Aimd::default()) },
        LimitChoice {
            name: "aimd (netflix)",
            make: || Box::new(Aimd::new(AimdConfig::netflix()).unwrap()),
        },
        LimitChoice { name: "gradient2 (valve)", make: || Box::new(Gradient2::default()) },
        LimitChoice {
            name: "gradient2 (netflix)",
            make: || Box::new(Gradient2::new(Gradient2Config::netflix()).unwrap()),
        },
        LimitChoice { name: "vegas (valve)", make: || Box::new(Vegas::default()) },
        LimitChoice {
            name: "vegas (netflix)",
            make: || Box::new(Vegas::new(VegasConfig::netflix()).unwrap()),
        },
        LimitChoice { name: "envoy gradient (valve)", make: || Box::new(EnvoyGradient::default()) },
        LimitChoice {
            name: "envoy gradient (envoy)",
            make: || Box::new(EnvoyGradient::new(EnvoyGradientConfig::envoy()).unwrap()),
        },
    ]
}

/// One line of a result table.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: String,
    pub control: String,
    pub offered_x: f64,
    pub goodput_pct: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub shed: u64,
    pub timed_out: u64,
    pub retries: u64,
    pub amplification: f64,
    /// Median limit over the last half of the run.
    pub limit: Option<u32>,
    /// Scenario-specific figure (recovery time, drift ratio, ...), already formatted.
    pub note: String,
}

/// One run's time series, named by its control.
pub type Series = (String, Vec<Bucket>);

/// A scenario's outcome: its table and the time series behind its plot.
pub struct Outcome {
    pub number: u32,
    pub title: &'static str,
    pub explanation: &'static str,
    pub rows: Vec<Row>,
    pub series: Vec<Series>,
}

/// A simulation to run: a label for the table, the model, and how to set up its controls.
pub struct Job {
    pub case: String,
    pub control: String,
    pub model: Model,
    pub setup: Setup,
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

/// Runs one job to its row and series.
pub fn execute(job: &Job) -> (Row, Vec<Bucket>) {
    let clock = ManualClock::new(0);
    let clock = &clock;
    let run = |limiter: Option<&Limiter<Box<dyn LimitAlgorithm>, &ManualClock>>,
               breaker: Option<&Breaker<&ManualClock>>,
               retries: Retries<'_>| {
        sim::run(&job.model, &Controls { limiter, breaker, retries }, clock)
    };
    let limited = |algorithm: Box<dyn LimitAlgorithm>| {
        let limiter = Limiter::with_clock(algorithm, clock).unwrap();
        run(Some(&limiter), None, Retries::None)
    };
    let budgeted = |budget: Budget<'_>| {
        run(None, None, Retries::Budgeted { max: 3, budget, backoff: backoff() })
    };
    let mut extra = String::new();
    let report = match job.setup {
        Setup::Uncontrolled => {
            let report = run(None, None, Retries::None);
            if report.calls_while_dead > 0 {
                extra = format!("{} calls while dead", report.calls_while_dead);
            }
            report
        }
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
            let breaker = seeded_breaker(config(), job.model.seed, clock);
            let report = run(None, Some(&breaker), Retries::None);
            extra = format!(
                "{} calls while dead, opened {} times",
                report.calls_while_dead,
                breaker.snapshot().to_open
            );
            report
        }
        Setup::Everything(true) => {
            let algorithm: Box<dyn LimitAlgorithm> = Box::new(Gradient2::default());
            let limiter = Limiter::with_clock(algorithm, clock).unwrap();
            let breaker = seeded_breaker(BreakerConfig::default(), job.model.seed, clock);
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
    let (mut row, buckets) = summarise(job, report);
    row.note = extra;
    (row, buckets)
}

/// A breaker whose open-duration jitter comes from the run's seed, so `--seed` reproduces it.
fn seeded_breaker(config: BreakerConfig, seed: u64, clock: &ManualClock) -> Breaker<&ManualClock> {
    Breaker::builder(config).clock(clock).rng(BreakerSplitMix64::new(seed)).build().unwrap()
}

fn summarise(job: &Job, mut report: Report) -> (Row, Vec<Bucket>) {
    report.latencies.sort_unstable();
    let half = report.buckets.len() / 2;
    let mut limits: Vec<u32> = report.buckets[half..].iter().map(|b| b.limit).collect();
    limits.sort_unstable();
    let limit = limits.get(limits.len() / 2).copied().filter(|&l| l > 0);
    let offered_x = report.offered as f64 / report.capacity_total.max(1.0);
    let row = Row {
        case: job.case.clone(),
        control: job.control.clone(),
        offered_x,
        goodput_pct: 100.0 * report.good as f64 / report.capacity_total.max(1.0),
        p50_ms: sim::percentile_ms(&report.latencies, 0.5),
        p99_ms: sim::percentile_ms(&report.latencies, 0.99),
        p999_ms: sim::percentile_ms(&report.latencies, 0.999),
        shed: report.shed,
        timed_out: report.timed_out,
        retries: report.retries,
        amplification: report.attempts as f64 / report.offered.max(1) as f64,
        limit,
        note: String::new(),
    };
    (row, report.buckets)
}

fn model(load: Schedule<f64>, duration: Nanos, seed: u64) -> Model {
    Model {
        workers: Schedule::constant(WORKERS),
        load,
        nominal_workers: WORKERS,
        service_mean: SERVICE,
        timeout: TIMEOUT,
        health: Schedule::constant(HEALTHY),
        duration,
        seed,
    }
}

/// The limiter rows every overload scenario compares: none, a fixed limit at the true
/// capacity (the ideal a user could only set by knowing it), and every algorithm.
fn limiter_jobs(case: &str, model: &Model) -> Vec<Job> {
    let mut jobs = vec![
        Job {
            case: case.into(),
            control: "none (timeouts only)".into(),
            model: model.clone(),
            setup: Setup::Uncontrolled,
        },
        Job {
            case: case.into(),
            control: "fixed = capacity".into(),
            model: model.clone(),
            setup: Setup::FixedAtCapacity,
        },
    ];
    for choice in limit_choices() {
        jobs.push(Job {
            case: case.into(),
            control: choice.name.into(),
            model: model.clone(),
            setup: Setup::Limit(choice.make),
        });
    }
    jobs
}

pub struct Plan {
    pub number: u32,
    pub title: &'static str,
    pub explanation: &'static str,
    pub jobs: Vec<Job>,
    /// Adds scenario-specific notes once every job has run.
    pub annotate: fn(&mut [Row], &[Series]),
}

fn no_notes(_: &mut [Row], _: &[Series]) {}

pub fn plans(seed: u64) -> Vec<Plan> {
    vec![
        overload(seed),
        retry_storm(seed),
        dead_dependency(seed),
        spike(seed),
        capacity_change(seed),
        drift(seed),
        mixed(seed),
    ]
}

fn dead_dependency(seed: u64) -> Plan {
    let mut m = model(Schedule::constant(0.5), 60 * SEC, seed);
    // Dead from 10 s to 40 s: every call hangs past the client timeout, then fails.
    let dead = Health { failing: 1.0, slowdown: 200.0 };
    m.health = Schedule(vec![(0, HEALTHY), (10 * SEC, dead), (40 * SEC, HEALTHY)]);
    let case = "dead 10-40 s".to_string();
    let job = |control: &str, setup| Job {
        case: case.clone(),
        control: control.into(),
        model: m.clone(),
        setup,
    };
    fn annotate(rows: &mut [Row], series: &[Series]) {
        let capacity = f64::from(WORKERS) * SEC as f64 / SERVICE as f64;
        for (row, (_, buckets)) in rows.iter_mut().zip(series) {
            let back = recovery_s(buckets, 40 * SEC, 0.5 * capacity)
                .map_or("traffic never returned".into(), |s| {
                    format!("traffic back {s:.1} s after the dependency")
                });
            row.note = if row.note.is_empty() { back } else { format!("{}; {back}", row.note) };
        }
    }
    Plan {
        number: 3,
        title: "Dead dependency (down from 10 s to 40 s, load 0.5x)",
        explanation: "A dependency that hangs until every caller times out keeps absorbing calls,             threads and queue space for nothing. A circuit breaker stops the calls after a few             failures, lets a handful of probes through per open period, and returns traffic             when the probes succeed.",
        jobs: vec![
            job("no breaker", Setup::Uncontrolled),
            job("breaker (valve)", Setup::Breaker(BreakerConfig::default)),
            job("breaker (resilience4j)", Setup::Breaker(BreakerConfig::resilience4j)),
            job("breaker (gobreaker)", Setup::Breaker(BreakerConfig::gobreaker)),
            job("breaker (polly)", Setup::Breaker(BreakerConfig::polly)),
            job("breaker (hystrix)", Setup::Breaker(BreakerConfig::hystrix)),
        ],
        annotate,
    }
}

fn mixed(seed: u64) -> Plan {
    let load = Schedule(vec![(0, 0.7), (20 * SEC, 2.0), (30 * SEC, 0.7)]);
    let mut m = model(load, 60 * SEC, seed);
    m.workers = Schedule(vec![(0, WORKERS), (15 * SEC, WORKERS / 2), (45 * SEC, WORKERS)]);
    m.health = Schedule(vec![
        (0, HEALTHY),
        (35 * SEC, Health { failing: 0.3, slowdown: 1.0 }),
        (50 * SEC, HEALTHY),
    ]);
    let case = "mixed incident".to_string();
    Plan {
        number: 7,
        title: "All controls against a mixed incident",
        explanation: "Real incidents combine: capacity halves (15-45 s), a 2x burst arrives             (20-30 s) and the dependency then fails 30 % of calls (35-50 s), while clients             retry. The limiter, the retry budget and the breaker together keep goodput up             and latency bounded where naive clients with no controls collapse.",
        jobs: vec![
            Job {
                case: case.clone(),
                control: "naive: 3 retries, no controls".into(),
                model: m.clone(),
                setup: Setup::Everything(false),
            },
            Job {
                case,
                control: "valve: gradient2 + finagle 10% + breaker".into(),
                model: m,
                setup: Setup::Everything(true),
            },
        ],
        annotate: no_notes,
    }
}

fn overload(seed: u64) -> Plan {
    let mut jobs = Vec::new();
    for x in [2.0, 4.0, 10.0, 25.0] {
        let m = model(Schedule::constant(x), 20 * SEC, seed);
        jobs.extend(limiter_jobs(&format!("{x}x"), &m));
    }
    Plan {
        number: 1,
        title: "Timeouts only, at 2x to 25x overload",
        explanation: "Timeouts bound how long a client waits, not how much work the server \
            admits: past capacity the queue grows until every request waits longer than its \
            client, and the server spends all its time on answers nobody reads. A limit sheds \
            the excess at once, so the work it admits finishes in time.",
        jobs,
        annotate: no_notes,
    }
}

fn retry_storm(seed: u64) -> Plan {
    let mut m = model(Schedule::constant(0.5), 20 * SEC, seed);
    m.health = Schedule::constant(Health { failing: 1.0, slowdown: 1.0 });
    let case = "dependency failing".to_string();
    let job = |control: &str, setup| Job {
        case: case.clone(),
        control: control.into(),
        model: m.clone(),
        setup,
    };
    let finagle_10 = WindowedConfig { percent_can_retry: 0.1, ..WindowedConfig::finagle() };
    Plan {
        number: 2,
        title: "Retry storm",
        explanation: "When a dependency fails, every layer that retries multiplies the load on it: \
            three retries make four times the traffic exactly when it can least take it. A retry \
            budget caps retries at a fraction of real requests, so the load stays near what \
            clients actually ask for.",
        jobs: vec![
            job("no retries", Setup::Uncontrolled),
            job("3 naive retries", Setup::Naive(3)),
            job("budget: finagle 10%", Setup::Windowed(finagle_10)),
            job("budget: finagle 20%", Setup::Windowed(WindowedConfig::finagle())),
            job(
                "budget: grpc a6 (10, 0.1)",
                Setup::Quota(|| TokenQuota::grpc_a6(10.0, 0.1).unwrap()),
            ),
            job("budget: aws standard", Setup::Quota(TokenQuota::aws_standard_legacy)),
            job("budget: envoy 20%, 3", Setup::Concurrency(ConcurrencyBudget::envoy)),
        ],
        annotate: no_notes,
    }
}

/// Seconds from `from` until the first bucket from which goodput stays at or above 90 % of
/// `expected` per second for a whole second; `None` if never within the run.
fn recovery_s(buckets: &[Bucket], from: Nanos, expected_per_s: f64) -> Option<f64> {
    let per_bucket = expected_per_s * BUCKET as f64 / SEC as f64 * 0.9;
    let start = (from / BUCKET) as usize;
    let window = (SEC / BUCKET) as usize;
    (start..buckets.len().saturating_sub(window))
        .find(|&i| buckets[i..i + window].iter().all(|b| f64::from(b.good) >= per_bucket))
        .map(|i| (i - start) as f64 * BUCKET as f64 / SEC as f64)
}

fn spike(seed: u64) -> Plan {
    let load = Schedule(vec![(0, 0.8), (10 * SEC, 1.4), (20 * SEC, 0.8)]);
    let m = model(load, 60 * SEC, seed);
    fn annotate(rows: &mut [Row], series: &[Series]) {
        let capacity = f64::from(WORKERS) * SEC as f64 / SERVICE as f64;
        for (row, (_, buckets)) in rows.iter_mut().zip(series) {
            row.note = match recovery_s(buckets, 20 * SEC, 0.8 * capacity) {
                Some(s) => format!("recovered {s:.1} s after the spike"),
                None => "never recovered".into(),
            };
        }
    }
    Plan {
        number: 4,
        title: "A 1.4x spike for 10 s, then back to 0.8x",
        explanation: "A short spike fills the queue with work that will time out, and that queue \
            outlives the spike: after the load falls back, new requests still wait behind doomed \
            ones, so goodput stays near zero (a metastable failure). A limit never lets the \
            queue build, so the service recovers as soon as the spike ends.",
        jobs: limiter_jobs("1.4x spike", &m),
        annotate,
    }
}

fn capacity_change(seed: u64) -> Plan {
    let mut m = model(Schedule::constant(0.9), 60 * SEC, seed);
    m.workers = Schedule(vec![(0, WORKERS), (20 * SEC, WORKERS / 2), (40 * SEC, WORKERS)]);
    fn annotate(rows: &mut [Row], series: &[Series]) {
        let capacity = f64::from(WORKERS) * SEC as f64 / SERVICE as f64;
        for (row, (_, buckets)) in rows.iter_mut().zip(series) {
            let down = recovery_s(buckets, 20 * SEC, 0.5 * capacity);
            let up = recovery_s(buckets, 40 * SEC, 0.9 * capacity);
            let show = |r: Option<f64>| r.map_or("never".into(), |s| format!("{s:.1} s"));
            row.note = format!("followed down {}, up {}", show(down), show(up));
        }
    }
    Plan {
        number: 5,
        title: "Capacity halves at 20 s, returns at 40 s (load 0.9x of full capacity)",
        explanation: "Capacity is not a constant: a deploy, a noisy neighbour or a slow \
            dependency halves it without warning. A limit that learns capacity follows it down \
            within seconds and back up when it returns; a fixed limit set for the old capacity \
            lets the queue grow.",
        jobs: limiter_jobs("halve and return", &m),
        annotate,
    }
}

fn drift(seed: u64) -> Plan {
    let m = model(Schedule::constant(1.2), 600 * SEC, seed);
    fn annotate(rows: &mut [Row], series: &[Series]) {
        for (row, (_, buckets)) in rows.iter_mut().zip(series) {
            let median = |from: usize, to: usize| {
                let mut limits: Vec<u32> = buckets[from.min(buckets.len())..to.min(buckets.len())]
                    .iter()
                    .map(|b| b.limit)
                    .collect();
                limits.sort_unstable();
                limits.get(limits.len() / 2).copied().unwrap_or(0)
            };
            let per_s = (SEC / BUCKET) as usize;
            let (minute1, minute10) =
                (median(50 * per_s, 60 * per_s), median(590 * per_s, 600 * per_s));
            if minute1 > 0 {
                row.note = format!(
                    "limit min 1: {minute1}, min 10: {minute10} ({:.2}x)",
                    f64::from(minute10) / f64::from(minute1)
                );
            }
        }
    }
    Plan {
        number: 6,
        title: "Ten minutes at 1.2x",
        explanation: "Under mild, sustained overload some algorithms read the lasting queueing \
            delay as the new normal and let the limit creep up until it protects nothing. The \
            limit should hold: at minute 10 no more than 1.1x its value at minute 1.",
        jobs: limiter_jobs("1.2x for 10 min", &m),
        annotate,
    }
}
