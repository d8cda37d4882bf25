//! quickcheck: any single-threaded operation sequence on a budget gives exactly the answers of a
//! plain sequential model written straight from the reference rules.

use std::sync::Arc;
use std::time::Duration;

use quickcheck::{Arbitrary, Gen, QuickCheck};
use valve::{
    Backoff, BackoffConfig, BackoffRng, ConcurrencyBudget, CostClass, Jitter, ManualClock,
    QuotaRule, QuotaWithdrawal, RetryCosts, TokenQuota, TokenQuotaConfig, WindowedBudget,
    WindowedConfig,
};

const CASES: u64 = 300;

fn check<A: quickcheck::Testable>(property: A) {
    QuickCheck::new().tests(CASES).quickcheck(property);
}

fn below(g: &mut Gen, n: u32) -> u32 {
    u32::arbitrary(g) % n
}

// ---------------------------------------------------------------------------------------------
// Token quota
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum QuotaOp {
    Retry(CostClass),
    /// A success, refunding the `n`-th most recent granted withdrawal if `Some`.
    Success(Option<u8>),
    Hedge,
}

#[derive(Debug, Clone)]
struct QuotaCase {
    config: TokenQuotaConfig,
    ops: Vec<QuotaOp>,
}

impl Arbitrary for QuotaCase {
    fn arbitrary(g: &mut Gen) -> Self {
        let capacity = 1 + below(g, 3000);
        let cost = |g: &mut Gen| 1 + below(g, capacity);
        let rule = *g
            .choose(&[
                QuotaRule::AboveThreshold,
                QuotaRule::CostAvailable,
                QuotaRule::ConsumeRemaining,
            ])
            .unwrap();
        let config = TokenQuotaConfig {
            capacity,
            initial: below(g, capacity + 1),
            rule,
            threshold: below(g, capacity),
            costs: RetryCosts { transient: cost(g), timeout: cost(g), throttling: cost(g) },
            success_credit: 1 + below(g, capacity),
            refund_on_success: bool::arbitrary(g),
        };
        let classes = [CostClass::Transient, CostClass::Timeout, CostClass::Throttling];
        let ops = (0..below(g, 200))
            .map(|_| match below(g, 5) {
                0 | 1 => QuotaOp::Retry(*g.choose(&classes).unwrap()),
                2 => QuotaOp::Success(None),
                3 => QuotaOp::Success(Some(u8::arbitrary(g) % 4)),
                _ => QuotaOp::Hedge,
            })
            .collect();
        QuotaCase { config, ops }
    }
}

#[path = "models/token_quota.rs"]
mod token_quota_model;
use token_quota_model::QuotaModel;

#[test]
fn token_quota_matches_the_sequential_model() {
    fn property(case: QuotaCase) -> bool {
        let quota = TokenQuota::new(case.config).unwrap();
        let mut model = QuotaModel { config: case.config, balance: case.config.initial };
        let mut granted: Vec<u32> = Vec::new();
        let (mut allowed, mut denied) = (0u64, 0u64);
        for op in case.ops {
            match op {
                QuotaOp::Retry(class) => {
                    let real = quota.try_retry(class).ok().map(|w| w.tokens);
                    if real != model.retry(class) {
                        return false;
                    }
                    match real {
                        Some(tokens) => {
                            allowed += 1;
                            granted.push(tokens);
                        }
                        None => denied += 1,
                    }
                }
                QuotaOp::Success(pick) => {
                    let refund = pick.and_then(|n| granted.iter().rev().nth(n.into()).copied());
                    quota.on_success(refund.map(|tokens| QuotaWithdrawal { tokens }));
                    model.success(refund);
                }
                QuotaOp::Hedge => {
                    let expected = model.hedge();
                    if quota.may_hedge().is_ok() != expected {
                        return false;
                    }
                    denied += u64::from(!expected);
                }
            }
            if quota.balance() != model.balance {
                return false;
            }
        }
        let snapshot = quota.snapshot();
        snapshot.allowed == allowed && snapshot.denied == denied
    }
    check(property as fn(QuotaCase) -> bool);
}

// ---------------------------------------------------------------------------------------------
// Windowed budget
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum WindowOp {
    Deposit,
    Withdraw,
    Balance,
    /// Moves the clock forward by this many milliseconds.
    Advance(u32),
}

#[derive(Debug, Clone)]
struct WindowCase {
    ttl_ms: u64,
    min_retries_per_sec: u32,
    percent: f64,
    ops: Vec<WindowOp>,
}

impl Arbitrary for WindowCase {
    fn arbitrary(g: &mut Gen) -> Self {
        let percents = [0.0, 0.001, 0.1, 0.2, 0.25, 0.6, 0.75, 1.0, 2.0, 1000.0];
        let ops = (0..below(g, 300))
            .map(|_| match below(g, 10) {
                0..=3 => WindowOp::Deposit,
                4..=6 => WindowOp::Withdraw,
                7 => WindowOp::Balance,
                8 => WindowOp::Advance(below(g, 400)),
                _ => WindowOp::Advance(below(g, 20_000)),
            })
            .collect();
        WindowCase {
            ttl_ms: 1000 + u64::from(below(g, 59_001)),
            min_retries_per_sec: below(g, 4),
            percent: *g.choose(&percents).unwrap(),
            ops,
        }
    }
}

/// Finagle's `RetryBudget` over util's `TokenBucket.newLeakyBucket` and `WindowedAdder`,
/// transcribed: a writer, nine buffered slices, lazy expiry re-anchored at the noticing access.
struct FinagleModel {
    deposit: i64,
    withdrawal: i64,
    reserve: i64,
    empty: bool,
    window: u64,
    writer: i64,
    buf: [i64; 9],
    i: usize,
    old: u64,
}

impl FinagleModel {
    fn new(case: &WindowCase) -> Self {
        let (deposit, withdrawal) =
            if case.percent == 0.0 { (0, 1) } else { (1000, (1000.0 / case.percent) as i64) };
        Self {
            deposit,
            withdrawal,
            reserve: i64::from(case.min_retries_per_sec) * (case.ttl_ms / 1000) as i64 * withdrawal,
            empty: case.min_retries_per_sec == 0 && case.percent == 0.0,
            window: case.ttl_ms * 1_000_000 / 10,
            writer: 0,
            buf: [0; 9],
            i: 0,
            old: 0,
        }
    }

    fn expired(&mut self, now: u64) {
        self.buf[self.i] = std::mem::take(&mut self.writer);
        self.i = (self.i + 1) % 9;
        let nskip = ((now - self.old) / self.window - 1).min(9) as usize;
        if nskip > 0 {
            let r = nskip.min(9 - self.i);
            self.buf[self.i..self.i + r].fill(0);
            self.buf[..nskip - r].fill(0);
            self.i = (self.i + nskip) % 9;
        }
        self.old = now;
    }

    fn add(&mut self, x: i64, now: u64) {
        if now - self.old >= self.window {
            self.expired(now);
        }
        self.writer += x;
    }

    fn sum(&mut self, now: u64) -> i64 {
        if now - self.old >= self.window {
            self.expired(now);
        }
        self.writer + self.buf.iter().sum::<i64>()
    }

    fn count(&mut self, now: u64) -> i64 {
        self.sum(now) + self.reserve
    }

    fn deposit(&mut self, now: u64) {
        if !self.empty {
            self.add(self.deposit, now);
        }
    }

    fn try_withdraw(&mut self, now: u64) -> bool {
        if self.empty {
            return false;
        }
        let ok = self.count(now) >= self.withdrawal;
        if ok {
            self.add(-self.withdrawal, now);
        }
        ok
    }

    fn balance(&mut self, now: u64) -> i64 {
        if self.empty { 0 } else { self.count(now) / self.withdrawal }
    }
}

#[test]
fn windowed_budget_matches_finagle_transcribed() {
    fn property(case: WindowCase) -> bool {
        let config = WindowedConfig {
            ttl: Duration::from_millis(case.ttl_ms),
            min_retries_per_sec: case.min_retries_per_sec,
            percent_can_retry: case.percent,
        };
        let clock = Arc::new(ManualClock::new(0));
        let budget = WindowedBudget::with_clock(config, clock.clone()).unwrap();
        let mut model = FinagleModel::new(&case);
        let mut now = 0u64;
        for op in &case.ops {
            let agree = match *op {
                WindowOp::Deposit => {
                    budget.deposit_at(now);
                    model.deposit(now);
                    true
                }
                WindowOp::Withdraw => budget.try_withdraw().is_ok() == model.try_withdraw(now),
                WindowOp::Balance => budget.balance_at(now) == model.balance(now),
                WindowOp::Advance(ms) => {
                    now += u64::from(ms) * 1_000_000;
                    clock.set(now);
                    true
                }
            };
            if !agree {
                return false;
            }
        }
        budget.balance() == model.balance(now)
    }
    check(property as fn(WindowCase) -> bool);
}

// ---------------------------------------------------------------------------------------------
// Concurrency budget
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ConcurrencyCase {
    percent: u8,
    min: u8,
    ops: Vec<u8>,
}

impl Arbitrary for ConcurrencyCase {
    fn arbitrary(g: &mut Gen) -> Self {
        ConcurrencyCase {
            percent: u8::arbitrary(g) % 101,
            min: u8::arbitrary(g) % 6,
            ops: (0..below(g, 300)).map(|_| u8::arbitrary(g) % 4).collect(),
        }
    }
}

#[test]
fn concurrency_budget_matches_envoys_rule() {
    fn property(case: ConcurrencyCase) -> bool {
        let budget = ConcurrencyBudget::new(f64::from(case.percent), case.min.into()).unwrap();
        let (mut outstanding, mut retries) = (0u64, 0u64);
        for op in case.ops {
            let agree = match op {
                0 => {
                    budget.request_started();
                    outstanding += 1;
                    true
                }
                1 => {
                    let expected = outstanding > 0;
                    outstanding -= u64::from(expected);
                    budget.request_finished() == expected
                }
                2 => {
                    // Envoy: `count < max(pct / 100 × (requests + pending), min)`.
                    let max = (outstanding * u64::from(case.percent) / 100).max(case.min.into());
                    let expected = retries < max;
                    retries += u64::from(expected);
                    budget.try_start_retry().is_ok() == expected
                }
                _ => {
                    let expected = retries > 0;
                    retries -= u64::from(expected);
                    budget.retry_finished() == expected
                }
            };
            if !agree || budget.in_flight() != (outstanding as u32, retries as u32) {
                return false;
            }
        }
        true
    }
    check(property as fn(ConcurrencyCase) -> bool);
}

// ---------------------------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------------------------

/// Replays quickcheck's values, so the model can draw the same numbers.
#[derive(Clone)]
struct Replay {
    values: Vec<u64>,
    next: usize,
}

impl BackoffRng for Replay {
    fn next_u64(&mut self) -> u64 {
        let value = self.values[self.next % self.values.len()];
        self.next += 1;
        value
    }
}

#[test]
fn backoff_matches_the_formulas() {
    fn property(initial_us: u32, extra_us: u32, multiplier_milli: u16, values: Vec<u64>) -> bool {
        let initial = u64::from(initial_us.max(1)) * 1000;
        let max = initial + u64::from(extra_us) * 1000;
        let multiplier = u64::from(multiplier_milli.max(1));
        let values = if values.is_empty() { vec![u64::MAX / 3] } else { values };
        let jitters =
            [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated, Jitter::Grpc];
        jitters.into_iter().all(|jitter| {
            let config = BackoffConfig {
                initial: Duration::from_nanos(initial),
                max: Duration::from_nanos(max),
                multiplier: multiplier as f64 / 1000.0,
                jitter,
                retry_after: valve::RetryAfterRule::Ignore,
                retry_after_max_extra: Duration::ZERO,
            };
            let rng = Replay { values: values.clone(), next: 0 };
            let backoff = Backoff::with_rng(config, rng).unwrap();
            let mut model_rng = Replay { values: values.clone(), next: 0 };
            let mut uniform = |low: u64, high: u64| {
                let span = high.saturating_sub(low);
                low + ((u128::from(model_rng.next_u64()) * u128::from(span)) >> 64) as u64
            };
            let (mut d, mut previous) = (initial, initial);
            backoff.take(30).all(|delay| {
                let expected = match jitter {
                    Jitter::None => d,
                    Jitter::Full => uniform(0, d),
                    Jitter::Equal => d / 2 + uniform(0, d - d / 2),
                    Jitter::Decorrelated => {
                        previous = uniform(initial, previous * 3).min(max);
                        previous
                    }
                    Jitter::Grpc => uniform(d - d / 5, d + d / 5),
                };
                d = ((u128::from(d) * u128::from(multiplier) / 1000) as u64).min(max);
                delay == Duration::from_nanos(expected)
            })
        })
    }
    check(property as fn(u32, u32, u16, Vec<u64>) -> bool);
}
