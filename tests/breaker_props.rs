//! quickcheck: random configurations and random operation sequences (acquire, report, poll,
//! manual transitions, reset) against a plain sequential model of the breaker's rules; every
//! answer and every snapshot field must agree.

use std::collections::VecDeque;
use std::time::Duration;

use quickcheck::{Arbitrary, Gen, QuickCheck};
use valve::{
    Breaker, BreakerConfig, BreakerOutcome, BreakerRng, BreakerSplitMix64, BreakerState,
    BreakerToken, CloseRule, HalfOpenConfig, HalfOpenTimeoutTarget, ManualClock, Nanos,
    OpenBackoff, OpenBoundary, RateCheck, SlidingWindow,
};

/// Ratios as exact fractions, so the model compares without floats.
const RATES: [(u64, u64); 4] = [(1, 4), (1, 3), (1, 2), (1, 1)];

#[derive(Debug, Clone)]
struct Setup {
    config: BreakerConfig,
    failure_rate: Option<(u64, u64)>,
    slow_rate: Option<(u64, u64)>,
    seed: u64,
}

fn pick<T: Copy>(g: &mut Gen, items: &[T]) -> T {
    *g.choose(items).unwrap()
}

impl Arbitrary for Setup {
    fn arbitrary(g: &mut Gen) -> Self {
        let small = |g: &mut Gen, lo: u32, hi: u32| lo + u32::arbitrary(g) % (hi - lo + 1);
        let failure_rate = pick(g, &[None, Some(0), Some(1), Some(2), Some(3)]).map(|i| RATES[i]);
        let slow_rate = pick(g, &[None, Some(1), Some(2), Some(3)]).map(|i| RATES[i]);
        let has_rate = failure_rate.is_some() || slow_rate.is_some();
        let probes = small(g, 1, 4);
        let close_rule = if has_rate && bool::arbitrary(g) {
            CloseRule::Rate { results: small(g, 1, probes) }
        } else {
            CloseRule::ConsecutiveSuccesses(small(g, 1, probes))
        };
        let base = u64::from(small(g, 5, 60));
        let config = BreakerConfig {
            consecutive_failures: pick(g, &[None, Some(1), Some(2), Some(3)]),
            failure_rate: failure_rate.map(|(n, d)| n as f64 / d as f64),
            slow_call_rate: slow_rate.map(|(n, d)| n as f64 / d as f64),
            slow_call_duration: pick(g, &[None, Some(5), Some(15)]).map(Duration::from_nanos),
            window: if bool::arbitrary(g) {
                SlidingWindow::Count { calls: small(g, 1, 6) }
            } else {
                SlidingWindow::Time {
                    buckets: small(g, 1, 4),
                    bucket: Duration::from_nanos(small(g, 5, 30).into()),
                }
            },
            minimum_calls: small(g, 1, 5),
            rate_check: pick(g, &[RateCheck::EveryCall, RateCheck::FailureOnly]),
            open: OpenBackoff {
                base: Duration::from_nanos(base),
                multiplier: pick(g, &[1.0, 2.0]),
                max: Duration::from_nanos(base * u64::from(small(g, 1, 4))),
                jitter: pick(g, &[0.0, 0.5]),
            },
            open_boundary: pick(g, &[OpenBoundary::Strict, OpenBoundary::Inclusive]),
            half_open: HalfOpenConfig {
                probes,
                max_concurrent: small(g, 1, probes),
                close_rule,
                timeout: pick(g, &[None, Some(20), Some(80)]).map(Duration::from_nanos),
                on_timeout: pick(g, &[HalfOpenTimeoutTarget::Open, HalfOpenTimeoutTarget::Closed]),
            },
        };
        let mut setup = Setup { config, failure_rate, slow_rate, seed: u64::arbitrary(g) };
        if !has_rate {
            setup.config.slow_call_rate = None;
        }
        if setup.config.slow_call_rate.is_some() && setup.config.slow_call_duration.is_none() {
            setup.config.slow_call_duration = Some(Duration::from_nanos(5));
        }
        setup
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Acquire { dt: u8 },
    Report { pick: u8, outcome: u8, dt: u8 },
    Poll { dt: u8 },
    Manual { state: u8 },
    Reset,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        let dt = u8::arbitrary(g) % 25;
        match u8::arbitrary(g) % 20 {
            0..=7 => Op::Acquire { dt },
            8..=16 => Op::Report { pick: u8::arbitrary(g), outcome: u8::arbitrary(g) % 5, dt },
            17 => Op::Poll { dt: dt * 2 },
            18 => Op::Manual { state: u8::arbitrary(g) % 6 },
            _ => Op::Reset,
        }
    }
}

/// The breaker's rules, written the obvious way.
struct Model {
    setup: Setup,
    rng: BreakerSplitMix64,
    state: BreakerState,
    generation: u64,
    deadline: Nanos,
    consecutive_opens: u64,
    consecutive_failures: u64,
    /// `(epoch or 0, failed, slow)`, oldest first.
    window: VecDeque<(u64, bool, bool)>,
    newest_epoch: u64,
    issued: u32,
    in_flight: u32,
    failed: u32,
    slow: u32,
    /// Success, failure, ignored.
    outcomes: [u64; 3],
    slow_total: u64,
    late: u64,
    rejected_open: u64,
    rejected_half_open: u64,
    transitions: [u64; 6],
}

fn reaches(part: u64, whole: u64, rate: Option<(u64, u64)>) -> bool {
    rate.is_some_and(|(n, d)| part * d >= n * whole)
}

impl Model {
    fn new(setup: Setup) -> Self {
        let rng = BreakerSplitMix64::new(setup.seed);
        Self {
            setup,
            rng,
            state: BreakerState::Closed,
            generation: 0,
            deadline: u64::MAX,
            consecutive_opens: 0,
            consecutive_failures: 0,
            window: VecDeque::new(),
            newest_epoch: 0,
            issued: 0,
            in_flight: 0,
            failed: 0,
            slow: 0,
            outcomes: [0; 3],
            slow_total: 0,
            late: 0,
            rejected_open: 0,
            rejected_half_open: 0,
            transitions: [0; 6],
        }
    }

    fn config(&self) -> &BreakerConfig {
        &self.setup.config
    }

    fn transition(&mut self, to: BreakerState, now: Nanos) {
        self.state = to;
        self.generation += 1;
        self.transitions[to as usize] += 1;
        (self.issued, self.in_flight, self.failed, self.slow) = (0, 0, 0, 0);
        match to {
            BreakerState::Open => {
                self.consecutive_opens += 1;
                let open = self.config().open;
                let n = self.consecutive_opens as i32 - 1;
                let grown = open.base.as_nanos() as f64 * open.multiplier.powi(n);
                let capped = (grown as u64).min(open.max.as_nanos() as u64);
                let d = if open.jitter == 0.0 {
                    capped
                } else {
                    let unit = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    capped - (capped as f64 * open.jitter * unit) as u64
                };
                self.deadline = now + d;
            }
            BreakerState::HalfOpen => {
                self.deadline =
                    self.config().half_open.timeout.map_or(u64::MAX, |t| now + t.as_nanos() as u64);
            }
            BreakerState::Closed => {
                self.consecutive_opens = 0;
                self.consecutive_failures = 0;
                self.window.clear();
            }
            _ => {}
        }
    }

    fn open_until(&self) -> Nanos {
        match self.config().open_boundary {
            OpenBoundary::Strict => self.deadline + 1,
            OpenBoundary::Inclusive => self.deadline,
        }
    }

    fn acquire(
        &mut self,
        now: Nanos,
    ) -> Result<(BreakerState, u64), (BreakerState, Option<Nanos>)> {
        loop {
            match self.state {
                BreakerState::Closed | BreakerState::Disabled | BreakerState::MetricsOnly => {
                    return Ok((self.state, self.generation));
                }
                BreakerState::ForcedOpen => {
                    self.rejected_open += 1;
                    return Err((self.state, None));
                }
                BreakerState::Open => {
                    if now >= self.open_until() {
                        self.transition(BreakerState::HalfOpen, now);
                        continue;
                    }
                    self.rejected_open += 1;
                    return Err((self.state, Some(self.open_until())));
                }
                BreakerState::HalfOpen => {
                    if self.deadline != u64::MAX && now >= self.deadline {
                        self.transition(self.config().half_open.on_timeout.into(), now);
                        continue;
                    }
                    let half_open = self.config().half_open;
                    if self.issued >= half_open.probes || self.in_flight >= half_open.max_concurrent
                    {
                        self.rejected_half_open += 1;
                        return Err((self.state, None));
                    }
                    self.issued += 1;
                    self.in_flight += 1;
                    return Ok((self.state, self.generation));
                }
            }
        }
    }

    fn rate_trips(&self, failed: bool, slow: bool) -> bool {
        let config = self.config();
        if config.rate_check == RateCheck::FailureOnly && !failed && !slow {
            return false;
        }
        let calls = self.window.len() as u64;
        let minimum = match config.window {
            SlidingWindow::Count { calls } => config.minimum_calls.min(calls),
            SlidingWindow::Time { .. } => config.minimum_calls,
        };
        let failures = self.window.iter().filter(|c| c.1).count() as u64;
        let slows = self.window.iter().filter(|c| c.2).count() as u64;
        calls >= u64::from(minimum)
            && (reaches(failures, calls, self.setup.failure_rate)
                || reaches(slows, calls, self.setup.slow_rate))
    }

    fn record_window(&mut self, failed: bool, slow: bool, now: Nanos) {
        match self.config().window {
            SlidingWindow::Count { calls } => {
                self.window.push_back((0, failed, slow));
                if self.window.len() > calls as usize {
                    self.window.pop_front();
                }
            }
            SlidingWindow::Time { buckets, bucket } => {
                let epoch = now / bucket.as_nanos() as u64;
                self.newest_epoch = self.newest_epoch.max(epoch);
                let oldest = (self.newest_epoch + 1).saturating_sub(buckets.into());
                if epoch >= oldest {
                    self.window.push_back((epoch, failed, slow));
                }
                self.window.retain(|c| c.0 >= oldest);
            }
        }
    }

    fn report(&mut self, token: BreakerToken, outcome: BreakerOutcome, now: Nanos) {
        let failed = outcome == BreakerOutcome::Failure;
        let slow_above = self.config().slow_call_duration.map_or(u64::MAX, |d| d.as_nanos() as u64);
        let slow = outcome != BreakerOutcome::Ignored && now - token.start > slow_above;
        self.outcomes[outcome as usize] += 1;
        self.slow_total += u64::from(slow);
        if token.generation != self.generation {
            self.late += 1;
            return;
        }
        let admitted_in = BreakerState::from_code(token.admitted_in).unwrap();
        match admitted_in {
            BreakerState::Closed | BreakerState::MetricsOnly
                if outcome != BreakerOutcome::Ignored =>
            {
                let mut trip = false;
                if failed {
                    self.consecutive_failures += 1;
                    trip = self
                        .config()
                        .consecutive_failures
                        .is_some_and(|n| self.consecutive_failures >= n.into());
                } else {
                    self.consecutive_failures = 0;
                }
                if self.config().failure_rate.is_some() || self.config().slow_call_rate.is_some() {
                    self.record_window(failed, slow, now);
                    trip = trip || self.rate_trips(failed, slow);
                }
                if trip && self.state == BreakerState::Closed {
                    self.transition(BreakerState::Open, now);
                }
            }
            BreakerState::HalfOpen => {
                self.in_flight -= 1;
                if outcome == BreakerOutcome::Ignored {
                    self.issued -= 1;
                    return;
                }
                self.failed += u32::from(failed);
                self.slow += u32::from(slow);
                let reported = self.issued - self.in_flight;
                let decision = match self.config().half_open.close_rule {
                    CloseRule::ConsecutiveSuccesses(n) => {
                        if self.failed > 0 || self.slow > 0 {
                            Some(true)
                        } else {
                            (reported >= n).then_some(false)
                        }
                    }
                    CloseRule::Rate { results } => (reported >= results).then(|| {
                        reaches(self.failed.into(), reported.into(), self.setup.failure_rate)
                            || reaches(self.slow.into(), reported.into(), self.setup.slow_rate)
                    }),
                };
                match decision {
                    Some(true) => self.transition(BreakerState::Open, now),
                    Some(false) => self.transition(BreakerState::Closed, now),
                    None => {}
                }
            }
            _ => {}
        }
    }

    fn transition_to(&mut self, to: BreakerState, now: Nanos) -> bool {
        if self.state == to {
            return false;
        }
        self.transition(to, now);
        true
    }

    fn next_transition_at(&self) -> Option<Nanos> {
        match self.state {
            BreakerState::Open => Some(self.open_until()),
            BreakerState::HalfOpen if self.deadline != u64::MAX => Some(self.deadline),
            _ => None,
        }
    }

    fn poll(&mut self, now: Nanos) -> BreakerState {
        loop {
            match self.state {
                BreakerState::Open if now >= self.open_until() => {
                    self.transition(BreakerState::HalfOpen, now);
                }
                BreakerState::HalfOpen if self.deadline != u64::MAX && now >= self.deadline => {
                    self.transition(self.config().half_open.on_timeout.into(), now);
                }
                state => return state,
            }
        }
    }

    /// Every snapshot field the model tracks, in the snapshot's order.
    fn expected(&self) -> Vec<u64> {
        let failures = self.window.iter().filter(|c| c.1).count() as u64;
        let slows = self.window.iter().filter(|c| c.2).count() as u64;
        vec![
            self.state as u64,
            self.generation,
            u64::from(self.issued),
            u64::from(self.in_flight),
            self.next_transition_at().unwrap_or(u64::MAX),
            self.consecutive_failures,
            self.consecutive_opens,
            self.window.len() as u64,
            failures,
            slows,
            self.outcomes[0],
            self.outcomes[1],
            self.slow_total,
            self.outcomes[2],
            self.late,
            self.rejected_open,
            self.rejected_half_open,
        ]
        .into_iter()
        .chain(self.transitions)
        .collect()
    }
}

fn observed<C: valve::Clock>(breaker: &Breaker<C>) -> Vec<u64> {
    let s = breaker.snapshot();
    vec![
        s.state.into(),
        s.generation,
        s.half_open_issued.into(),
        s.half_open_in_flight.into(),
        s.next_transition_at,
        s.consecutive_failures,
        s.consecutive_opens,
        s.window_calls,
        s.window_failures,
        s.window_slow,
        s.successes,
        s.failures,
        s.slow,
        s.ignored,
        s.late,
        s.rejected_open,
        s.rejected_half_open,
        s.to_closed,
        s.to_open,
        s.to_half_open,
        s.to_disabled,
        s.to_forced_open,
        s.to_metrics_only,
    ]
}

fn agrees_with_model(setup: Setup, ops: Vec<Op>) -> bool {
    let breaker = Breaker::builder(setup.config)
        .clock(ManualClock::new(0))
        .rng(BreakerSplitMix64::new(setup.seed))
        .build()
        .unwrap();
    let mut model = Model::new(setup);
    let mut outstanding: Vec<BreakerToken> = Vec::new();
    let mut now: Nanos = 0;
    for (i, op) in ops.into_iter().enumerate() {
        match op {
            Op::Acquire { dt } => {
                now += Nanos::from(dt);
                let real = breaker.try_acquire_at(now).map(|p| p.into_token());
                let expected = model.acquire(now);
                let real_view =
                    real.map(|t| (BreakerState::from_code(t.admitted_in).unwrap(), t.generation));
                let real_view = real_view.map_err(|r| (r.state, r.retry_at));
                assert_eq!(real_view, expected, "op {i}: acquire at {now}");
                if let Ok(token) = real {
                    outstanding.push(token);
                }
            }
            Op::Report { pick, outcome, dt } => {
                if outstanding.is_empty() {
                    continue;
                }
                now += Nanos::from(dt);
                let token = outstanding.swap_remove(usize::from(pick) % outstanding.len());
                let outcome = match outcome {
                    0 | 1 => BreakerOutcome::Success,
                    2 | 3 => BreakerOutcome::Failure,
                    _ => BreakerOutcome::Ignored,
                };
                breaker.record_token_at(token, outcome, now);
                model.report(token, outcome, now);
            }
            Op::Poll { dt } => {
                now += Nanos::from(dt);
                assert_eq!(breaker.poll_at(now), model.poll(now), "op {i}: poll at {now}");
            }
            Op::Manual { state } => {
                let to = BreakerState::from_code(state.into()).unwrap();
                assert_eq!(breaker.transition_to_at(to, now), model.transition_to(to, now));
            }
            Op::Reset => {
                breaker.reset_at(now);
                model.transition(BreakerState::Closed, now);
            }
        }
        assert_eq!(observed(&breaker), model.expected(), "op {i}: {op:?} at {now}");
    }
    true
}

#[test]
fn breaker_agrees_with_the_sequential_model() {
    QuickCheck::new().tests(300).quickcheck(agrees_with_model as fn(Setup, Vec<Op>) -> bool);
}
