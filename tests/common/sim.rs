//! A small discrete-event simulator of a service behind a [`Limiter`], on a virtual clock.
//!
//! Clients arrive as a Poisson process (seeded RNG) and ask the real limiter for a permit
//! (`try_acquire_at`); admitted calls join a FIFO queue in front of `workers` servers with a
//! fixed or exponential service time. A call that has not completed by the client timeout is
//! reported dropped at that moment (the server still works on it, as a real one would); the
//! others report success when served. Capacity and arrival rate follow step schedules.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use valve::{LimitAlgorithm, Limiter, Nanos, Permit};

pub const MS: Nanos = 1_000_000;
pub const SEC: Nanos = 1_000_000_000;

/// How long one call occupies a worker.
#[derive(Debug, Clone, Copy)]
pub enum Service {
    Fixed(Nanos),
    Exponential(Nanos),
}

/// A run's inputs: step schedules `(from, value)` sorted by time, first at 0.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub workers: Vec<(Nanos, u32)>,
    /// Arrivals per second.
    pub rate: Vec<(Nanos, f64)>,
    pub service: Service,
    pub timeout: Nanos,
    pub duration: Nanos,
    pub seed: u64,
}

/// What a run observed.
#[derive(Debug, Default)]
pub struct Trace {
    /// `(time, limit, in_flight)` every [`TICK`].
    pub ticks: Vec<(Nanos, u32, u32)>,
    /// `(completion time, RTT)` of each call served within its timeout.
    pub served: Vec<(Nanos, Nanos)>,
    pub rejected: u64,
    pub timed_out: u64,
}

pub const TICK: Nanos = 50 * MS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Tick,
    Arrival,
    /// The call with this id leaves its worker.
    Served(usize),
    /// The client of this call gives up.
    Timeout(usize),
}

struct SplitMix(u64);

impl SplitMix {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn exponential(&mut self, mean: f64) -> Nanos {
        (-(1.0 - self.unit()).ln() * mean) as Nanos
    }
}

fn at<T: Copy>(schedule: &[(Nanos, T)], now: Nanos) -> T {
    schedule.iter().rev().find(|(from, _)| *from <= now).map_or(schedule[0].1, |s| s.1)
}

/// Runs `scenario` against a fresh limiter driven by `algorithm`.
pub fn run<A: LimitAlgorithm>(algorithm: A, scenario: &Scenario) -> Trace {
    let limiter = Limiter::new(algorithm).expect("valid algorithm");
    let mut rng = SplitMix(scenario.seed);
    let mut trace = Trace::default();
    let mut events = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |events: &mut BinaryHeap<_>, t: Nanos, e: Event| {
        seq += 1;
        events.push(Reverse((t, seq, e)));
    };
    // Per call: its permit while the client still waits, and when it started.
    let mut calls: Vec<(Option<Permit<'_, A, _>>, Nanos)> = Vec::new();
    let mut queue = VecDeque::new();
    let mut busy = 0u32;
    push(&mut events, 0, Event::Tick);
    push(&mut events, 0, Event::Arrival);
    while let Some(Reverse((now, _, event))) = events.pop() {
        if now > scenario.duration {
            break;
        }
        match event {
            Event::Tick => {
                trace.ticks.push((now, limiter.limit(), limiter.in_flight()));
                push(&mut events, now + TICK, Event::Tick);
            }
            Event::Arrival => {
                let rate = at(&scenario.rate, now);
                push(&mut events, now + rng.exponential(1e9 / rate), Event::Arrival);
                match limiter.try_acquire_at(now) {
                    Ok(permit) => {
                        let id = calls.len();
                        calls.push((Some(permit), now));
                        queue.push_back(id);
                        push(&mut events, now + scenario.timeout, Event::Timeout(id));
                    }
                    Err(_) => trace.rejected += 1,
                }
            }
            Event::Served(id) => {
                busy -= 1;
                if let Some(permit) = calls[id].0.take() {
                    permit.success_at(now);
                    trace.served.push((now, now - calls[id].1));
                }
            }
            Event::Timeout(id) => {
                if let Some(permit) = calls[id].0.take() {
                    permit.dropped_at(now);
                    trace.timed_out += 1;
                }
            }
        }
        while busy < at(&scenario.workers, now) {
            let Some(id) = queue.pop_front() else { break };
            busy += 1;
            let service = match scenario.service {
                Service::Fixed(s) => s,
                Service::Exponential(mean) => rng.exponential(mean as f64),
            };
            push(&mut events, now + service, Event::Served(id));
        }
    }
    trace
}

impl Trace {
    fn ticks_in(&self, from: Nanos, to: Nanos) -> impl Iterator<Item = &(Nanos, u32, u32)> {
        self.ticks.iter().filter(move |t| t.0 >= from && t.0 < to)
    }

    /// Mean in-flight over `[from, to)`.
    pub fn mean_in_flight(&self, from: Nanos, to: Nanos) -> f64 {
        let (n, sum) =
            self.ticks_in(from, to).fold((0u64, 0u64), |(n, s), t| (n + 1, s + u64::from(t.2)));
        sum as f64 / n.max(1) as f64
    }

    /// Mean limit over `[from, to)`.
    pub fn mean_limit(&self, from: Nanos, to: Nanos) -> f64 {
        let (n, sum) =
            self.ticks_in(from, to).fold((0u64, 0u64), |(n, s), t| (n + 1, s + u64::from(t.1)));
        sum as f64 / n.max(1) as f64
    }

    /// 99th percentile RTT of calls served in `[from, to)`.
    pub fn p99(&self, from: Nanos, to: Nanos) -> Nanos {
        let mut rtts: Vec<Nanos> =
            self.served.iter().filter(|s| s.0 >= from && s.0 < to).map(|s| s.1).collect();
        rtts.sort_unstable();
        rtts.get((rtts.len() * 99).div_ceil(100).saturating_sub(1)).copied().unwrap_or(0)
    }

    /// Calls served within their timeout in `[from, to)`, per second.
    pub fn goodput(&self, from: Nanos, to: Nanos) -> f64 {
        let n = self.served.iter().filter(|s| s.0 >= from && s.0 < to).count();
        n as f64 * SEC as f64 / (to - from) as f64
    }

    /// Seconds from `from` until the limit first satisfies `ok` (`None`: never before the end).
    pub fn seconds_until(&self, from: Nanos, ok: impl Fn(u32) -> bool) -> Option<f64> {
        self.ticks.iter().find(|t| t.0 >= from && ok(t.1)).map(|t| (t.0 - from) as f64 / SEC as f64)
    }
}
