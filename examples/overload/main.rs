//! The overload simulator: a limiter in front of a simulated service, on a virtual clock.
//!
//! A service with `WORKERS` workers and exponential service times (mean `SERVICE`) sits behind
//! a FIFO queue. Clients arrive as a Poisson stream at `LOAD` times capacity and give up after
//! `TIMEOUT`; work whose client gave up is still done by the server, which is how queues turn
//! overload into collapse. The run is repeated with no control, with valve's default AIMD limit
//! and with the Netflix-parity AIMD preset, all driving the real valve core through
//! `try_acquire_at`/`success_at`/`dropped_at` (no sleeping, no threads).
//!
//! Run: `cargo run --release --example overload`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use valve::{Aimd, AimdConfig, Fixed, LimitAlgorithm, Limiter, MonotonicClock, Nanos, Permit};

const WORKERS: usize = 50;
const SERVICE: f64 = 10e6; // 10 ms mean service time
const TIMEOUT: Nanos = 1_000_000_000; // clients give up after 1 s
const LOAD: f64 = 2.0; // offered load as a multiple of capacity
const DURATION: Nanos = 60_000_000_000; // 60 simulated seconds

/// xorshift64*: a small seeded generator so every run is identical.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn exponential(&mut self, mean: f64) -> Nanos {
        (-mean * (1.0 - self.next_f64()).ln()) as Nanos
    }
}

#[derive(Default)]
struct Report {
    offered: u64,
    shed: u64,
    good: u64,
    timed_out: u64,
    latencies: Vec<Nanos>,
    limit: u32,
}

/// Simulates `DURATION` of traffic. With `limiter`, each arrival must take a permit first and
/// reports success, or dropped if its client had already given up.
fn simulate<A: LimitAlgorithm>(limiter: Option<&Limiter<A>>) -> Report {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let capacity = WORKERS as f64 / SERVICE; // requests per ns
    let mean_gap = 1.0 / (capacity * LOAD);
    let mut report = Report::default();
    let mut queue = VecDeque::new();
    let mut completions: BinaryHeap<Reverse<(Nanos, Nanos, usize)>> = BinaryHeap::new();
    let mut permits: Vec<Option<Permit<'_, A, MonotonicClock>>> = Vec::new();
    let mut busy = 0;
    let mut next_arrival = 0;
    loop {
        let next_completion = completions.peek().map_or(Nanos::MAX, |Reverse((t, _, _))| *t);
        if next_arrival.min(next_completion) >= DURATION {
            break;
        }
        if next_arrival <= next_completion {
            let now = next_arrival;
            next_arrival += rng.exponential(mean_gap);
            report.offered += 1;
            let permit = match limiter {
                Some(l) => match l.try_acquire_at(now) {
                    Ok(p) => Some(p),
                    Err(_) => {
                        report.shed += 1;
                        continue;
                    }
                },
                None => None,
            };
            permits.push(permit);
            queue.push_back((now, permits.len() - 1));
        } else {
            let Reverse((now, arrived, slot)) = completions.pop().unwrap();
            busy -= 1;
            let latency = now - arrived;
            let on_time = latency <= TIMEOUT;
            if on_time {
                report.good += 1;
                report.latencies.push(latency);
            } else {
                report.timed_out += 1;
            }
            if let Some(permit) = permits[slot].take() {
                if on_time { permit.success_at(now) } else { permit.dropped_at(now) }
            }
        }
        let now = next_arrival.min(next_completion);
        while busy < WORKERS {
            let Some((arrived, slot)) = queue.pop_front() else { break };
            busy += 1;
            let start = now.max(arrived);
            completions.push(Reverse((start + rng.exponential(SERVICE), arrived, slot)));
        }
    }
    report.limit = limiter.map_or(0, Limiter::limit);
    report
}

fn percentile(sorted: &[Nanos], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1e6
}

fn print_row(name: &str, mut r: Report) {
    r.latencies.sort_unstable();
    let capacity_total = WORKERS as f64 / SERVICE * DURATION as f64;
    let limit = if r.limit == 0 { "-".to_string() } else { r.limit.to_string() };
    println!(
        "{name:<22} {:>8} {:>8} {:>9} {:>8.1}% {:>8.1} {:>8.1} {:>6}",
        r.offered,
        r.shed,
        r.timed_out,
        100.0 * r.good as f64 / capacity_total,
        percentile(&r.latencies, 0.5),
        percentile(&r.latencies, 0.99),
        limit,
    );
}

fn main() {
    println!(
        "{WORKERS} workers, {:.0} ms mean service, offered load {LOAD}x capacity, clients time out after {} ms, {} s simulated\n",
        SERVICE / 1e6,
        TIMEOUT / 1_000_000,
        DURATION / 1_000_000_000
    );
    println!(
        "{:<22} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>6}",
        "control", "offered", "shed", "timed out", "goodput", "p50 ms", "p99 ms", "limit"
    );
    print_row("none (timeouts only)", simulate::<Fixed>(None));
    let fixed = Limiter::new(Fixed::new(WORKERS as u32).unwrap()).unwrap();
    print_row("fixed = capacity", simulate(Some(&fixed)));
    let valve = Limiter::new(Aimd::default()).unwrap();
    print_row("aimd (valve default)", simulate(Some(&valve)));
    let netflix = Limiter::new(Aimd::new(AimdConfig::netflix()).unwrap()).unwrap();
    print_row("aimd (netflix preset)", simulate(Some(&netflix)));
    println!(
        "\ngoodput: calls answered within the client timeout, as % of what {WORKERS} workers can serve."
    );
}
