//! Fuzz harness for the circuit breaker, every policy: decodes a preset or an arbitrary config
//! and an operation sequence with time steps (acquire, report, time passes, manual
//! transitions), and checks after every operation the invariants: half-open admits at most its
//! probe quota and concurrency cap, refusals happen only in states that refuse, and every
//! admitted call is counted exactly once among successes, failures and ignored.

use std::time::Duration;

use arbitrary::{Arbitrary, Result, Unstructured};
use valve::{
    Breaker, BreakerConfig, BreakerOutcome, BreakerPermit, BreakerState, Clock, CloseRule,
    HalfOpenConfig, HalfOpenTimeoutTarget, ManualClock, OpenBackoff, OpenBoundary, RateCheck,
    SlidingWindow,
};

const STATES: [BreakerState; 6] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
    BreakerState::Disabled,
    BreakerState::ForcedOpen,
    BreakerState::MetricsOnly,
];

fn ms(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(Duration::from_millis(u64::from(u16::arbitrary(u)?)))
}

fn config(u: &mut Unstructured<'_>) -> Result<BreakerConfig> {
    Ok(match u8::arbitrary(u)? % 6 {
        0 => BreakerConfig::default(),
        1 => BreakerConfig::resilience4j(),
        2 => BreakerConfig::gobreaker(),
        3 => BreakerConfig::polly(),
        4 => BreakerConfig::hystrix(),
        _ => BreakerConfig {
            consecutive_failures: Option::<u8>::arbitrary(u)?.map(u32::from),
            failure_rate: Option::<f64>::arbitrary(u)?,
            slow_call_rate: Option::<f64>::arbitrary(u)?,
            slow_call_duration: if bool::arbitrary(u)? { Some(ms(u)?) } else { None },
            window: if bool::arbitrary(u)? {
                SlidingWindow::Count { calls: u32::from(u8::arbitrary(u)?) }
            } else {
                SlidingWindow::Time { buckets: u32::from(u8::arbitrary(u)?), bucket: ms(u)? }
            },
            minimum_calls: u32::from(u8::arbitrary(u)?),
            rate_check: if bool::arbitrary(u)? {
                RateCheck::EveryCall
            } else {
                RateCheck::FailureOnly
            },
            open: OpenBackoff {
                base: ms(u)?,
                multiplier: f64::arbitrary(u)?,
                max: ms(u)?,
                jitter: f64::arbitrary(u)?,
            },
            open_boundary: if bool::arbitrary(u)? {
                OpenBoundary::Strict
            } else {
                OpenBoundary::Inclusive
            },
            half_open: HalfOpenConfig {
                probes: u32::from(u8::arbitrary(u)?),
                max_concurrent: u32::from(u8::arbitrary(u)?),
                close_rule: if bool::arbitrary(u)? {
                    CloseRule::ConsecutiveSuccesses(u32::from(u8::arbitrary(u)?))
                } else {
                    CloseRule::Rate { results: u32::from(u8::arbitrary(u)?) }
                },
                timeout: if bool::arbitrary(u)? { Some(ms(u)?) } else { None },
                on_timeout: if bool::arbitrary(u)? {
                    HalfOpenTimeoutTarget::Open
                } else {
                    HalfOpenTimeoutTarget::Closed
                },
            },
        },
    })
}

/// Runs one input; panics on any broken invariant.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run_unstructured(&mut u);
}

fn run_unstructured(u: &mut Unstructured<'_>) -> Result<()> {
    let config = config(u)?;
    let clock = ManualClock::new(0);
    let Ok(breaker) = Breaker::builder(config).clock(&clock).build() else { return Ok(()) };
    let probes = config.half_open.probes;
    let max_concurrent = config.half_open.max_concurrent;
    let mut held: Vec<BreakerPermit<'_, &ManualClock>> = Vec::new();
    let (mut admitted, mut refused) = (0u64, 0u64);
    while !u.is_empty() && held.len() < 1024 {
        let now = clock.now();
        match u8::arbitrary(u)? % 6 {
            0 | 1 => {
                let state = breaker.poll_at(now);
                match breaker.try_acquire_at(now) {
                    Ok(permit) => {
                        admitted += 1;
                        assert!(
                            !matches!(state, BreakerState::ForcedOpen),
                            "admitted while forced open"
                        );
                        held.push(permit);
                    }
                    Err(_) => {
                        refused += 1;
                        assert!(
                            !matches!(
                                state,
                                BreakerState::Closed
                                    | BreakerState::Disabled
                                    | BreakerState::MetricsOnly
                            ),
                            "refused in {state:?}"
                        );
                    }
                }
            }
            2 | 3 if !held.is_empty() => {
                let permit = held.swap_remove(usize::from(u8::arbitrary(u)?) % held.len());
                let outcome = match u8::arbitrary(u)? % 3 {
                    0 => BreakerOutcome::Success,
                    1 => BreakerOutcome::Failure,
                    _ => BreakerOutcome::Ignored,
                };
                permit.finish(outcome, now);
            }
            4 => {
                clock.advance(Duration::from_micros(u64::from(u32::arbitrary(u)?)));
            }
            5 => {
                let to = STATES[usize::from(u8::arbitrary(u)?) % STATES.len()];
                if bool::arbitrary(u)? {
                    breaker.transition_to_at(to, now);
                } else {
                    breaker.reset_at(now);
                }
            }
            _ => {}
        }
        let s = breaker.snapshot();
        if s.breaker_state() == Some(BreakerState::HalfOpen) {
            assert!(s.half_open_issued <= probes, "{} probes of {probes}", s.half_open_issued);
            assert!(s.half_open_in_flight <= s.half_open_issued);
            assert!(max_concurrent == 0 || s.half_open_in_flight <= max_concurrent);
        }
        assert_eq!(s.rejected_open + s.rejected_half_open, refused);
        let reported = s.successes + s.failures + s.ignored;
        assert_eq!(reported + held.len() as u64, admitted, "{s:?}");
    }
    drop(held);
    let s = breaker.snapshot();
    assert_eq!(s.successes + s.failures + s.ignored, admitted);
    Ok(())
}
