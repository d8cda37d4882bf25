//! quickcheck: random operation sequences against a sequential model of the limiter.
//!
//! The model is written from the rules, independently of the implementation: admission below
//! the limit, the Netflix AIMD rule per sample, clamping, and the counters.

use quickcheck::{Arbitrary, Gen, QuickCheck};
use valve::{Aimd, AimdConfig, Limiter, Permit, WindowConfig};

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Success(usize),
    Dropped(usize),
    Ignored(usize),
    SetLimit(u32),
    Advance(u64),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        match u8::arbitrary(g) % 10 {
            0..=3 => Op::Acquire,
            4 | 5 => Op::Success(usize::arbitrary(g)),
            6 => Op::Dropped(usize::arbitrary(g)),
            7 => Op::Ignored(usize::arbitrary(g)),
            8 => Op::SetLimit(u32::arbitrary(g) % 40),
            _ => Op::Advance(u64::from(u16::arbitrary(g)) * 1000),
        }
    }
}

#[derive(Debug, Default)]
struct Model {
    limit: u32,
    in_flight: u32,
    admitted: u64,
    rejected: u64,
    success: u64,
    dropped: u64,
    ignored: u64,
}

const MIN: u32 = 2;
const MAX: u32 = 30;
const TIMEOUT: u64 = 50_000_000;

impl Model {
    /// Netflix AIMD with backoff 0.9, +1 when in-flight * 2 >= limit, clamp to [MIN, MAX].
    fn sample(&mut self, rtt: u64, in_flight_at_acquire: u32, dropped: bool) {
        let next = if dropped || rtt > TIMEOUT {
            (f64::from(self.limit) * 0.9) as u32
        } else if in_flight_at_acquire * 2 >= self.limit {
            self.limit + 1
        } else {
            self.limit
        };
        self.limit = next.clamp(MIN, MAX);
    }
}

fn run(ops: Vec<Op>) -> bool {
    let config = AimdConfig {
        initial_limit: 4,
        min_limit: MIN,
        max_limit: MAX,
        timeout: std::time::Duration::from_nanos(TIMEOUT),
        window: WindowConfig::per_sample(),
        // Netflix's utilisation rule, as the model (valve's default grows at 0.8 of the limit).
        utilisation_threshold: 0.5,
        slow_start: false,
        // The drop and utilisation rules alone (the latency rule has its own tests).
        latency: None,
        ..AimdConfig::default()
    };
    let limiter = Limiter::new(Aimd::new(config).unwrap()).unwrap();
    let mut model = Model { limit: 4, ..Model::default() };
    let mut held: Vec<(Permit<'_, Aimd, _>, u32, u64)> = Vec::new();
    let mut now = 0u64;
    for op in ops {
        match op {
            Op::Acquire => match limiter.try_acquire_at(now) {
                Ok(permit) => {
                    if model.in_flight >= model.limit {
                        return false;
                    }
                    model.in_flight += 1;
                    model.admitted += 1;
                    if permit.in_flight_at_acquire() != model.in_flight
                        || model.in_flight > limiter.limit()
                    {
                        return false;
                    }
                    held.push((permit, model.in_flight, now));
                }
                Err(rejected) => {
                    if model.in_flight < model.limit || rejected.limit != model.limit {
                        return false;
                    }
                    model.rejected += 1;
                }
            },
            Op::Success(i) | Op::Dropped(i) | Op::Ignored(i) if !held.is_empty() => {
                let (permit, in_flight, start) = held.swap_remove(i % held.len());
                model.in_flight -= 1;
                match op {
                    Op::Success(_) => {
                        permit.success_at(now);
                        model.success += 1;
                        model.sample(now - start, in_flight, false);
                    }
                    Op::Dropped(_) => {
                        permit.dropped_at(now);
                        model.dropped += 1;
                        model.sample(now - start, in_flight, true);
                    }
                    _ => {
                        permit.ignored();
                        model.ignored += 1;
                    }
                }
            }
            Op::SetLimit(n) => {
                model.limit = n.clamp(MIN, MAX);
                if limiter.set_limit(n) != model.limit {
                    return false;
                }
            }
            Op::Advance(dt) => now += dt,
            _ => {}
        }
        let s = limiter.snapshot();
        let expected = (
            model.limit,
            model.in_flight,
            model.admitted,
            model.rejected,
            model.success,
            model.dropped,
            model.ignored,
        );
        let actual =
            (s.limit, s.in_flight, s.admitted, s.rejected, s.success, s.dropped, s.ignored);
        if expected != actual || !(MIN..=MAX).contains(&s.limit) {
            return false;
        }
    }
    drop(held);
    let s = limiter.snapshot();
    s.in_flight == 0 && s.admitted == s.success + s.dropped + s.ignored
}

#[test]
fn limiter_matches_sequential_model() {
    QuickCheck::new().tests(500).quickcheck(run as fn(Vec<Op>) -> bool);
}
