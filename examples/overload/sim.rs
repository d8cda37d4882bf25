//! The simulation engine: clients, a server with workers and a FIFO queue, a dependency that
//! can fail, retries, and valve's controls, on a virtual clock (no sleeping, no threads).
//!
//! Clients send original requests as a Poisson stream (open loop). Each attempt passes, in
//! order, the circuit breaker (if any), the concurrency limiter (if any) and the server's FIFO
//! queue; a worker serves it for a service time drawn from the model's shape (exponential or
//! lognormal, same mean) scaled by the dependency's slowdown, and it fails if the dependency is failing. The client gives up at its timeout; the
//! server still finishes the work (nobody tells it), which is how a queue turns overload into
//! collapse. A failed or timed-out attempt may be retried: naively, or if a retry budget allows,
//! after a backoff delay. The limiter learns from completions (success, or dropped when the
//! client had already given up); errors from a failing dependency teach it nothing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use valve::{
    Backoff, BackoffConfig, BackoffRng, Breaker, BreakerPermit, ConcurrencyBudget, CostClass,
    LimitAlgorithm, Limiter, ManualClock, Nanos, Permit, QuotaWithdrawal, SplitMix64, TokenQuota,
    WindowedBudget,
};

pub const MS: Nanos = 1_000_000;
pub const SEC: Nanos = 1_000_000_000;
/// Resolution of the time series behind the plots and the convergence figures.
pub const BUCKET: Nanos = 100 * MS;

/// A step schedule: `(from, value)` pairs sorted by time, the first at 0.
#[derive(Debug, Clone)]
pub struct Schedule<T: Copy>(pub Vec<(Nanos, T)>);

impl<T: Copy> Schedule<T> {
    pub fn constant(value: T) -> Self {
        Self(vec![(0, value)])
    }

    pub fn at(&self, t: Nanos) -> T {
        let steps = self.0.partition_point(|(from, _)| *from <= t);
        self.0[steps.saturating_sub(1)].1
    }
}

impl Schedule<f64> {
    /// `from` until `start`, then a straight line to `to` at `end` in steps of one [`BUCKET`],
    /// then `to`.
    pub fn ramp(from: f64, to: f64, start: Nanos, end: Nanos) -> Self {
        let steps = (end - start) / BUCKET;
        let mut points = vec![(0, from)];
        points.extend((0..=steps).map(|i| {
            let share = i as f64 / steps.max(1) as f64;
            (start + i * BUCKET, from + (to - from) * share)
        }));
        Self(points)
    }
}

/// The distribution of service times, all with the model's mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ServiceShape {
    /// Exponential (M/M/c): the standard deviation equals the mean.
    Exponential,
    /// Lognormal with this shape parameter sigma: heavier tailed (sigma 1: p99 6.2x the mean,
    /// against 4.6x for exponential).
    Lognormal(f64),
}

impl ServiceShape {
    pub fn name(self) -> String {
        match self {
            Self::Exponential => "exponential".into(),
            Self::Lognormal(sigma) => format!("lognormal (sigma {sigma})"),
        }
    }

    /// The `q` quantile of a service time of mean `mean`: what an unloaded service answers in.
    pub fn quantile(self, mean: f64, q: f64) -> f64 {
        match self {
            Self::Exponential => -mean * (1.0 - q).ln(),
            Self::Lognormal(sigma) => {
                let mu = mean.ln() - sigma * sigma / 2.0;
                (mu + sigma * normal_quantile(q)).exp()
            }
        }
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative error below
/// 1.2e-9), for the unloaded percentiles of lognormal service times.
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] =
        [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let tail = |q: f64| {
        let q = (-2.0 * q.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail(p)
    } else if p > 1.0 - 0.02425 {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The state of the dependency behind the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Health {
    /// Fraction of calls that fail (fast, after the service time).
    pub failing: f64,
    /// Multiplier on the service time.
    pub slowdown: f64,
}

pub const HEALTHY: Health = Health { failing: 0.0, slowdown: 1.0 };

/// What a run simulates.
#[derive(Debug, Clone)]
pub struct Model {
    pub workers: Schedule<u32>,
    /// Offered load as a multiple of the *nominal* capacity (`nominal_workers / service`).
    pub load: Schedule<f64>,
    pub nominal_workers: u32,
    pub service_mean: Nanos,
    pub service_shape: ServiceShape,
    pub timeout: Nanos,
    pub health: Schedule<Health>,
    pub duration: Nanos,
    pub seed: u64,
}

impl Model {
    pub fn capacity_per_sec(&self) -> f64 {
        f64::from(self.nominal_workers) * SEC as f64 / self.service_mean as f64
    }
}

/// Who decides whether a failed attempt is tried again.
pub enum Retries<'a> {
    None,
    /// Up to `n` retries per request, immediately (the retry storm).
    Naive(u32),
    /// Up to `max` retries, each if the budget allows, after a backoff delay.
    Budgeted {
        max: u32,
        budget: Budget<'a>,
        backoff: BackoffConfig,
    },
}

pub enum Budget<'a> {
    Quota(&'a TokenQuota),
    Windowed(&'a WindowedBudget<ManualClock>),
    Concurrency(&'a ConcurrencyBudget),
}

/// The controls in front of the server in one run.
pub struct Controls<'a, A: LimitAlgorithm> {
    pub limiter: Option<&'a Limiter<A, &'a ManualClock>>,
    pub breaker: Option<&'a Breaker<&'a ManualClock>>,
    pub retries: Retries<'a>,
}

/// One time-series bucket of [`BUCKET`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Bucket {
    /// The limit at the bucket's start; `None` without a limiter.
    pub limit: Option<u32>,
    /// Workers at the bucket's start.
    pub capacity: u32,
    /// Answers within the client timeout.
    pub good: u32,
    /// Calls that passed every control and reached the server.
    pub sent: u32,
    /// The most answers the service could give in the bucket: the offered load or the
    /// capacity, whichever is lower (expected values, not this run's draws).
    pub possible: f64,
    /// Answers the full (nominal) capacity gives in a bucket.
    pub nominal: f64,
    pub p99_ms: f64,
}

/// What a run observed.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub offered: u64,
    pub attempts: u64,
    pub good: u64,
    pub shed: u64,
    pub timed_out: u64,
    pub errors: u64,
    pub retries: u64,
    pub retries_denied: u64,
    /// Attempts the breaker refused.
    pub breaker_rejected: u64,
    /// Attempts that reached the server while the dependency was failing every call.
    pub calls_while_dead: u64,
    /// Latencies of successful requests, ns, end to end (first attempt to success).
    pub latencies: Vec<Nanos>,
    pub buckets: Vec<Bucket>,
    /// Work the server could have done, in requests.
    pub capacity_total: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A new original request.
    Arrival,
    /// A bucket boundary (also where schedules change).
    Tick,
    /// A worker finishes call `id`.
    Served(usize),
    /// The client of call `id` gives up.
    Deadline(usize),
    /// Request `id` is tried again.
    Retry(usize),
}

#[derive(Debug)]
struct Request {
    first_sent: Nanos,
    attempts: u32,
    done: bool,
    refund: Option<QuotaWithdrawal>,
}

struct Call<'a, A: LimitAlgorithm> {
    request: usize,
    permit: Option<Permit<'a, A, &'a ManualClock>>,
    breaker: Option<BreakerPermit<'a, &'a ManualClock>>,
    served: bool,
    timed_out: bool,
    /// This attempt holds a concurrency-budget retry slot.
    retry_slot: bool,
}

/// Per-run mutable state the event handlers share.
struct Run<'r, 'a> {
    report: Report,
    requests: Vec<Request>,
    events: BinaryHeap<Reverse<(Nanos, Event)>>,
    backoff_rng: SplitMix64,
    bucket_latencies: Vec<Nanos>,
    bucket: Bucket,
    retries: &'r Retries<'a>,
}

struct Draws(SplitMix64);

impl Draws {
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn exponential(&mut self, mean: f64) -> Nanos {
        (-mean * (1.0 - self.unit()).ln()) as Nanos
    }

    /// A service time of mean `mean` in `shape` (lognormal by Box-Muller).
    fn service(&mut self, shape: ServiceShape, mean: f64) -> Nanos {
        match shape {
            ServiceShape::Exponential => self.exponential(mean),
            ServiceShape::Lognormal(sigma) => {
                let (u, v) = (1.0 - self.unit(), self.unit());
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                (mean.ln() - sigma * sigma / 2.0 + sigma * z).exp() as Nanos
            }
        }
    }
}

/// Runs `model` with `controls`; `clock` is the limiter's clock, moved along with the simulation.
pub fn run<'a, A: LimitAlgorithm>(
    model: &Model,
    controls: &Controls<'a, A>,
    clock: &ManualClock,
) -> Report {
    let mut rng = Draws(SplitMix64::seeded(model.seed));
    let mut run = Run {
        report: Report::default(),
        requests: Vec::new(),
        events: BinaryHeap::new(),
        backoff_rng: SplitMix64::seeded(model.seed ^ 0xB0FF),
        bucket_latencies: Vec::new(),
        bucket: Bucket::default(),
        retries: &controls.retries,
    };
    let mut calls: Vec<Call<'a, A>> = Vec::new();
    let mut queue: VecDeque<usize> = VecDeque::new();
    let mut busy = 0u32;

    let peak_load = model.load.0.iter().map(|(_, load)| *load).fold(0.0, f64::max);
    let peak_gap = SEC as f64 / (peak_load * model.capacity_per_sec()).max(1e-9);
    run.events.push(Reverse((0, Event::Arrival)));
    run.events.push(Reverse((0, Event::Tick)));
    while let Some(Reverse((now, event))) = run.events.pop() {
        if now > model.duration {
            break;
        }
        clock.set(now);
        let mut send: Option<usize> = None;
        match event {
            Event::Arrival => {
                // A non-homogeneous Poisson stream by thinning: candidates at the peak rate,
                // each kept with probability load(t) / peak.
                run.events.push(Reverse((now + rng.exponential(peak_gap), Event::Arrival)));
                if rng.unit() * peak_load < model.load.at(now) {
                    run.report.offered += 1;
                    run.requests.push(Request {
                        first_sent: now,
                        attempts: 0,
                        done: false,
                        refund: None,
                    });
                    if let Retries::Budgeted { budget: Budget::Windowed(w), .. } = run.retries {
                        w.deposit_at(now);
                    }
                    send = Some(run.requests.len() - 1);
                }
            }
            Event::Retry(request) => send = Some(request),
            Event::Tick => {
                // The bucket ending now is complete; the next one starts with this moment's
                // limit, capacity and load.
                if now > 0 {
                    run.bucket_latencies.sort_unstable();
                    run.bucket.p99_ms = percentile_ms(&run.bucket_latencies, 0.99);
                    run.report.buckets.push(run.bucket);
                    run.bucket_latencies.clear();
                }
                if now < model.duration {
                    let per_bucket = BUCKET as f64 / model.service_mean as f64;
                    let capacity = f64::from(model.workers.at(now)) * per_bucket;
                    let nominal = f64::from(model.nominal_workers) * per_bucket;
                    run.bucket = Bucket {
                        limit: controls.limiter.map(|l| l.limit()),
                        capacity: model.workers.at(now),
                        possible: capacity.min(model.load.at(now) * nominal),
                        nominal,
                        ..Bucket::default()
                    };
                    run.report.capacity_total += capacity;
                    run.events.push(Reverse((now + BUCKET, Event::Tick)));
                }
            }
            Event::Served(id) => {
                busy -= 1;
                let failed = rng.unit() < model.health.at(now).failing;
                let call = &mut calls[id];
                call.served = true;
                if let Some(permit) = call.breaker.take() {
                    if failed { permit.failure_at(now) } else { permit.success_at(now) }
                }
                if let Some(permit) = call.permit.take() {
                    if call.timed_out {
                        permit.dropped_at(now);
                    } else if failed {
                        permit.ignored();
                    } else {
                        permit.success_at(now);
                    }
                }
                if !call.timed_out {
                    let (request, slot) = (call.request, std::mem::take(&mut call.retry_slot));
                    run.finish_attempt(request, slot, !failed, now);
                }
            }
            Event::Deadline(id) => {
                let call = &mut calls[id];
                if !call.served {
                    if let Some(permit) = call.breaker.take() {
                        permit.failure_at(now);
                    }
                    call.timed_out = true;
                    run.report.timed_out += 1;
                    let (request, slot) = (call.request, std::mem::take(&mut call.retry_slot));
                    run.finish_attempt(request, slot, false, now);
                }
            }
        }

        if let Some(request) = send {
            run.requests[request].attempts += 1;
            run.report.attempts += 1;
            let retry_slot = run.requests[request].attempts > 1;
            if let Retries::Budgeted { budget: Budget::Concurrency(c), .. } = run.retries {
                c.request_started();
            }
            let breaker = match controls.breaker {
                Some(breaker) => match breaker.try_acquire_at(now) {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        // Failed fast by the breaker: answered at once, not retried.
                        run.report.breaker_rejected += 1;
                        run.requests[request].done = true;
                        run.release_budget(retry_slot);
                        continue;
                    }
                },
                None => None,
            };
            if model.health.at(now).failing >= 1.0 {
                run.report.calls_while_dead += 1;
            }
            let permit = match controls.limiter {
                Some(limiter) => match limiter.try_acquire_at(now) {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        // Shed work is answered at once, and a shed is not retried.
                        run.report.shed += 1;
                        run.requests[request].done = true;
                        run.release_budget(retry_slot);
                        continue;
                    }
                },
                None => None,
            };
            calls.push(Call {
                request,
                permit,
                breaker,
                served: false,
                timed_out: false,
                retry_slot,
            });
            let id = calls.len() - 1;
            run.bucket.sent += 1;
            queue.push_back(id);
            run.events.push(Reverse((now + model.timeout, Event::Deadline(id))));
        }

        // Workers take the queue in FIFO order, as many as the capacity allows right now.
        while busy < model.workers.at(now) {
            let Some(id) = queue.pop_front() else { break };
            busy += 1;
            let mean = model.service_mean as f64 * model.health.at(now).slowdown;
            let service = rng.service(model.service_shape, mean);
            run.events.push(Reverse((now + service.max(1), Event::Served(id))));
        }
    }
    run.report
}

impl Run<'_, '_> {
    /// An attempt ended for its client: the concurrency budget's counts go down.
    fn release_budget(&self, retry_slot: bool) {
        if let Retries::Budgeted { budget: Budget::Concurrency(c), .. } = self.retries {
            c.request_finished();
            if retry_slot {
                c.retry_finished();
            }
        }
    }

    /// An attempt ended (served or timed out): record success, or decide on a retry.
    fn finish_attempt(&mut self, id: usize, retry_slot: bool, success: bool, now: Nanos) {
        self.release_budget(retry_slot);
        let request = &mut self.requests[id];
        if request.done {
            return;
        }
        if success {
            request.done = true;
            self.report.good += 1;
            let latency = now - request.first_sent;
            self.report.latencies.push(latency);
            self.bucket_latencies.push(latency);
            self.bucket.good += 1;
            if let Retries::Budgeted { budget: Budget::Quota(q), .. } = self.retries {
                q.on_success(request.refund.take());
            }
            return;
        }
        self.report.errors += 1;
        let retries_so_far = request.attempts - 1;
        let delay = match self.retries {
            Retries::None => None,
            Retries::Naive(n) => (retries_so_far < *n).then_some(0),
            Retries::Budgeted { max, .. } if retries_so_far >= *max => None,
            Retries::Budgeted { budget, backoff, .. } => {
                let allowed = match budget {
                    Budget::Quota(q) => q.try_retry(CostClass::Transient).map(|w| {
                        request.refund = Some(w);
                    }),
                    Budget::Windowed(w) => w.try_withdraw_at(now),
                    Budget::Concurrency(c) => c.try_start_retry(),
                };
                if allowed.is_ok() {
                    let mut backoff = Backoff::with_rng(*backoff, &mut self.backoff_rng)
                        .expect("validated backoff config");
                    backoff.nth(retries_so_far as usize).map(valve::duration_to_nanos)
                } else {
                    self.report.retries_denied += 1;
                    None
                }
            }
        };
        match delay {
            Some(delay) => {
                self.report.retries += 1;
                self.events.push(Reverse((now + delay, Event::Retry(id))));
            }
            None => request.done = true,
        }
    }
}

pub fn percentile_ms(sorted: &[Nanos], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / MS as f64
}
