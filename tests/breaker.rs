//! Golden traces for every breaker preset, derived by hand from the rules in each preset's doc
//! (and the reference semantics they cite): which calls are admitted, which are refused, and
//! every transition with its cause, time and open duration.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use valve::{
    Breaker, BreakerConfig, BreakerOutcome, BreakerRejected, BreakerRng, BreakerState,
    HalfOpenTimeoutTarget, ManualClock, Nanos, Transition, TransitionCause,
};

use BreakerOutcome::{Failure, Success};
use BreakerState::{Closed, HalfOpen, Open};

const MS: Nanos = 1_000_000;
const S: Nanos = 1_000_000_000;

/// Jitter draws that never shorten the open duration, so traces have exact times.
struct NoJitter;
impl BreakerRng for NoJitter {
    fn next_u64(&self) -> u64 {
        0
    }
}

struct Harness {
    breaker: Breaker<Arc<ManualClock>>,
    transitions: Arc<Mutex<Vec<Transition>>>,
}

impl Harness {
    fn new(config: BreakerConfig) -> Self {
        let transitions = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&transitions);
        let breaker = Breaker::builder(config)
            .clock(Arc::new(ManualClock::new(0)))
            .rng(NoJitter)
            .listener(move |t| sink.lock().unwrap().push(t))
            .build()
            .unwrap();
        Self { breaker, transitions }
    }

    /// One call admitted at `at`, reporting `outcome` after `took`: the state it was admitted
    /// in, or the rejection.
    fn call(
        &self,
        at: Nanos,
        outcome: BreakerOutcome,
        took: Nanos,
    ) -> Result<BreakerState, BreakerRejected> {
        let permit = self.breaker.try_acquire_at(at)?;
        let state = permit.admitted_in();
        permit.finish(outcome, at + took);
        Ok(state)
    }

    fn calls(&self, n: usize, at: Nanos, outcome: BreakerOutcome) {
        for _ in 0..n {
            assert_eq!(self.call(at, outcome, 0), Ok(Closed));
        }
    }

    fn refused(&self, at: Nanos) -> BreakerRejected {
        self.breaker.try_acquire_at(at).map(|p| p.admitted_in()).unwrap_err()
    }

    /// The transitions since the last call, as `(from, to, cause, at, open_for)`.
    fn take(&self) -> Vec<(BreakerState, BreakerState, TransitionCause, Nanos, Nanos)> {
        self.transitions
            .lock()
            .unwrap()
            .drain(..)
            .map(|t| (t.from, t.to, t.cause, t.at, t.open_for))
            .collect()
    }
}

#[test]
fn resilience4j_rate_over_the_last_100_calls_then_10_probes() {
    let h = Harness::new(BreakerConfig::resilience4j());
    // 99 failures: below minimumNumberOfCalls (100), no rate yet.
    h.calls(99, 0, Failure);
    assert!(h.take().is_empty());
    // The 100th call, a success, makes the rate 99 % >= 50 %: resilience4j checks on success too.
    assert_eq!(h.call(MS, Success, 0), Ok(Closed));
    assert_eq!(h.take(), [(Closed, Open, TransitionCause::FailureRate, MS, 60 * S)]);
    // Open for 60 s; `isAfter` is strict: the deadline itself is still refused.
    let deadline = MS + 60 * S;
    let refused = h.refused(deadline);
    assert_eq!((refused.state, refused.retry_at), (Open, Some(deadline + 1)));
    assert_eq!(h.breaker.next_transition_at(), Some(deadline + 1));
    // 10 probes at once, the 11th refused.
    let t = deadline + 1;
    let probes: Vec<_> = (0..10).map(|_| h.breaker.try_acquire_at(t).unwrap()).collect();
    assert!(probes.iter().all(|p| p.admitted_in() == HalfOpen));
    assert_eq!(h.refused(t).state, HalfOpen);
    assert_eq!(h.take(), [(Open, HalfOpen, TransitionCause::OpenElapsed, t, 0)]);
    // Decided at the 10th result: 4 failures of 10 = 40 % < 50 %, so it closes.
    for (i, p) in probes.into_iter().enumerate() {
        p.finish(if i < 4 { Failure } else { Success }, t + 1);
        let expected = if i < 9 { HalfOpen } else { Closed };
        assert_eq!(h.breaker.state(), expected, "after probe {i}");
    }
    assert_eq!(h.take(), [(HalfOpen, Closed, TransitionCause::ProbesSucceeded, t + 1, 0)]);
    // Closing emptied the window: 99 failures again do not trip.
    h.calls(99, t + 2, Failure);
    assert_eq!(h.breaker.state(), Closed);
    assert_eq!(h.breaker.snapshot().window_calls, 99);
}

#[test]
fn resilience4j_half_open_reopens_at_exactly_the_threshold() {
    let h = Harness::new(BreakerConfig::resilience4j());
    h.calls(100, 0, Failure);
    assert_eq!(h.take()[0].1, Open);
    let t = 60 * S + 1;
    let probes: Vec<_> = (0..10).map(|_| h.breaker.try_acquire_at(t).unwrap()).collect();
    // 5 of 10 = 50 % >= 50 %: reopens, with the same (constant) 60 s.
    for (i, p) in probes.into_iter().enumerate() {
        p.finish(if i % 2 == 0 { Failure } else { Success }, t);
    }
    assert_eq!(
        h.take(),
        [
            (Open, HalfOpen, TransitionCause::OpenElapsed, t, 0),
            (HalfOpen, Open, TransitionCause::ProbesFailed, t, 60 * S),
        ]
    );
}

#[test]
fn resilience4j_slow_calls_are_strictly_above_60_s() {
    let h = Harness::new(BreakerConfig::resilience4j());
    // Exactly 60 s is not slow.
    for _ in 0..100 {
        assert_eq!(h.call(0, Success, 60 * S), Ok(Closed));
    }
    assert_eq!(h.breaker.snapshot().window_slow, 0);
    // 60 s + 1 ns is. The slow-call rate needs 100 % of the window.
    for i in 0..99 {
        assert_eq!(h.call(S, Success, 60 * S + 1), Ok(Closed), "call {i}");
    }
    assert_eq!(h.breaker.state(), Closed, "99 % < 100 %");
    assert_eq!(h.call(S, Success, 60 * S + 1), Ok(Closed));
    assert_eq!(h.take(), [(Closed, Open, TransitionCause::SlowCallRate, 61 * S + 1, 60 * S)]);
}

#[test]
fn gobreaker_more_than_5_failures_in_a_row_and_one_probe() {
    let h = Harness::new(BreakerConfig::gobreaker());
    h.calls(5, 0, Failure);
    // A success resets the run: ConsecutiveFailures counts only failures in a row.
    h.calls(1, 0, Success);
    h.calls(5, 0, Failure);
    assert!(h.take().is_empty(), "5 is not > 5");
    assert_eq!(h.call(S, Failure, 0), Ok(Closed));
    assert_eq!(h.take(), [(Closed, Open, TransitionCause::ConsecutiveFailures, S, 60 * S)]);
    // A permit admitted while Closed and held across the trip.
    h.breaker.reset_at(S);
    let held = h.breaker.try_acquire_at(S).unwrap();
    h.calls(6, S, Failure);
    h.take();
    // `expiry.Before(now)`: strict.
    assert_eq!(h.refused(61 * S).state, Open);
    let t = 61 * S + 1;
    let probe = h.breaker.try_acquire_at(t).unwrap();
    assert_eq!(probe.admitted_in(), HalfOpen);
    // MaxRequests = 1: the second call is refused while the probe is out.
    assert_eq!(h.refused(t).state, HalfOpen);
    // The held Closed-generation success arrives now: counted, but it cannot close the breaker.
    held.success_at(t);
    assert_eq!(h.breaker.state(), HalfOpen);
    assert_eq!(h.breaker.snapshot().late, 1);
    // An excluded (ignored) probe gives its place back.
    probe.ignored();
    assert_eq!(h.breaker.try_acquire_at(t).unwrap().admitted_in(), HalfOpen);
    // (Dropping it unreported was ignored too.) A successful probe closes.
    assert_eq!(h.call(t, Success, 0), Ok(HalfOpen));
    assert_eq!(
        h.take(),
        [
            (Open, HalfOpen, TransitionCause::OpenElapsed, t, 0),
            (HalfOpen, Closed, TransitionCause::ProbesSucceeded, t, 0),
        ]
    );
}

#[test]
fn polly_ratio_on_a_handled_failure_and_an_inclusive_break() {
    let h = Harness::new(BreakerConfig::polly());
    // 10 failures then 90 successes: throughput 100, ratio 10 %, but Polly only evaluates on a
    // handled failure.
    h.calls(10, 0, Failure);
    h.calls(90, 0, Success);
    assert!(h.take().is_empty());
    // The next failure: 11 / 101 >= 10 % with throughput >= 100.
    assert_eq!(h.call(MS, Failure, 0), Ok(Closed));
    assert_eq!(h.take(), [(Closed, Open, TransitionCause::FailureRate, MS, 5 * S)]);
    // `now >= blockedUntil`: inclusive, the deadline itself admits the one trial.
    let t = MS + 5 * S;
    assert_eq!(h.refused(t - 1).retry_at, Some(t));
    assert_eq!(h.call(t, Failure, 0), Ok(HalfOpen));
    assert_eq!(h.refused(t).state, Open);
    let t2 = t + 5 * S;
    assert_eq!(h.call(t2, Success, 0), Ok(HalfOpen));
    assert_eq!(
        h.take(),
        [
            (Open, HalfOpen, TransitionCause::OpenElapsed, t, 0),
            (HalfOpen, Open, TransitionCause::ProbesFailed, t, 5 * S),
            (Open, HalfOpen, TransitionCause::OpenElapsed, t2, 0),
            (HalfOpen, Closed, TransitionCause::ProbesSucceeded, t2, 0),
        ]
    );
}

#[test]
fn polly_failures_slide_out_of_the_30_s_window() {
    let h = Harness::new(BreakerConfig::polly());
    // 9 failures in the first 3 s bucket, 91 successes later.
    h.calls(9, 0, Failure);
    h.calls(91, 10 * S, Success);
    // At 30 s the first bucket (epoch 0) is evicted: 91 calls, throughput < 100.
    assert_eq!(h.call(30 * S, Failure, 0), Ok(Closed));
    let snap = h.breaker.snapshot();
    assert_eq!((snap.window_calls, snap.window_failures), (92, 1));
    h.calls(8, 30 * S, Success);
    // 100 calls, 2 failures: 2 % < 10 %.
    assert_eq!(h.call(30 * S, Failure, 0), Ok(Closed));
    assert!(h.take().is_empty());
}

#[test]
fn hystrix_20_requests_50_percent_and_a_strict_sleep_window() {
    let h = Harness::new(BreakerConfig::hystrix());
    h.calls(19, 0, Failure);
    assert!(h.take().is_empty(), "19 < requestVolumeThreshold 20");
    // Failures expire after 10 s: the 20th call at 10 s sees only itself.
    assert_eq!(h.call(10 * S, Success, 0), Ok(Closed));
    assert_eq!(h.breaker.snapshot().window_calls, 1);
    h.calls(9, 10 * S, Failure);
    h.calls(9, 10 * S, Success);
    // 20th: 10 failures of 20 = 50 % >= 50 %.
    assert_eq!(h.call(10 * S, Failure, 0), Ok(Closed));
    assert_eq!(h.take(), [(Closed, Open, TransitionCause::FailureRate, 10 * S, 5 * S)]);
    assert_eq!(h.refused(15 * S).state, Open, "now > openedAt + sleepWindow is strict");
    let t = 15 * S + 1;
    let probe = h.breaker.try_acquire_at(t).unwrap();
    assert_eq!(h.refused(t).state, HalfOpen, "one trial");
    probe.success_at(t);
    assert_eq!(
        h.take(),
        [
            (Open, HalfOpen, TransitionCause::OpenElapsed, t, 0),
            (HalfOpen, Closed, TransitionCause::ProbesSucceeded, t, 0),
        ]
    );
}

#[test]
fn valve_default_backs_off_caps_and_resets_on_close() {
    let h = Harness::new(BreakerConfig::default());
    let mut now = 0;
    let mut expected = Vec::new();
    for open_for in [5, 10, 20, 40, 60, 60].map(|s| s * S) {
        if expected.is_empty() {
            h.calls(5, now, Failure);
            expected.push((Closed, Open, TransitionCause::ConsecutiveFailures, now, open_for));
        } else {
            // Inclusive boundary: the deadline admits the first probe, which fails.
            assert_eq!(h.call(now, Failure, 0), Ok(HalfOpen));
            expected.push((Open, HalfOpen, TransitionCause::OpenElapsed, now, 0));
            expected.push((HalfOpen, Open, TransitionCause::ProbesFailed, now, open_for));
        }
        assert_eq!(h.breaker.next_transition_at(), Some(now + open_for));
        now += open_for;
    }
    assert_eq!(h.take(), expected);
    // Three probes, one at a time, all must succeed.
    assert_eq!(h.call(now, Success, 0), Ok(HalfOpen));
    let second = h.breaker.try_acquire_at(now).unwrap();
    assert_eq!(h.refused(now).state, HalfOpen, "max_concurrent 1");
    second.success_at(now);
    assert_eq!(h.call(now, Success, 0), Ok(HalfOpen));
    assert_eq!(h.breaker.state(), Closed);
    assert_eq!(h.breaker.snapshot().consecutive_opens, 0);
    h.take();
    // Closing reset the backoff: the next trip opens for the base 5 s again.
    h.calls(5, now, Failure);
    assert_eq!(h.take(), [(Closed, Open, TransitionCause::ConsecutiveFailures, now, 5 * S)]);
}

#[test]
fn valve_default_half_open_timeout_reclaims_a_probe_that_never_reports() {
    let h = Harness::new(BreakerConfig::default());
    h.calls(5, 0, Failure);
    let probe = h.breaker.try_acquire_at(5 * S).unwrap();
    // The probe hangs: nobody else gets in until the 30 s timeout...
    assert_eq!(h.refused(35 * S - 1).state, HalfOpen);
    assert_eq!(h.breaker.next_transition_at(), Some(35 * S));
    // ...which reopens (next backoff step, 10 s).
    assert_eq!(h.breaker.poll_at(35 * S), Open);
    // The hung probe's late success cannot close the breaker.
    probe.success_at(36 * S);
    assert_eq!(h.breaker.state(), Open);
    assert_eq!(h.breaker.snapshot().late, 1);
    let t = h.take();
    assert_eq!(t[2], (HalfOpen, Open, TransitionCause::HalfOpenTimeout, 35 * S, 10 * S));
    // The same with the timeout going to Closed (resilience4j PR 2290).
    let mut config = BreakerConfig::default();
    config.half_open.on_timeout = HalfOpenTimeoutTarget::Closed;
    config.half_open.timeout = Some(Duration::from_secs(1));
    let h = Harness::new(config);
    h.calls(5, 0, Failure);
    std::mem::forget(h.breaker.try_acquire_at(5 * S).unwrap());
    assert_eq!(h.call(6 * S, Success, 0), Ok(Closed));
    assert_eq!(h.take()[2], (HalfOpen, Closed, TransitionCause::HalfOpenTimeout, 6 * S, 0));
}

#[test]
fn manual_states() {
    let h = Harness::new(BreakerConfig::gobreaker());
    assert!(h.breaker.transition_to_at(BreakerState::ForcedOpen, 0));
    assert!(!h.breaker.transition_to_at(BreakerState::ForcedOpen, 0));
    let refused = h.refused(100 * S);
    assert_eq!((refused.state, refused.retry_at), (BreakerState::ForcedOpen, None));
    assert_eq!(h.breaker.next_transition_at(), None);
    // MetricsOnly records but never trips.
    h.breaker.transition_to_at(BreakerState::MetricsOnly, 0);
    for _ in 0..20 {
        assert_eq!(h.call(0, Failure, 0), Ok(BreakerState::MetricsOnly));
    }
    assert_eq!(h.breaker.snapshot().consecutive_failures, 20);
    // Disabled admits and records nothing in the windows.
    h.breaker.transition_to_at(BreakerState::Disabled, 0);
    assert_eq!(h.call(0, Failure, 0), Ok(BreakerState::Disabled));
    assert_eq!(h.breaker.snapshot().consecutive_failures, 20);
    // Manual HalfOpen starts an episode with its full quota.
    h.breaker.transition_to_at(HalfOpen, 0);
    assert_eq!(h.call(0, Success, 0), Ok(HalfOpen));
    assert_eq!(h.breaker.state(), Closed);
    h.breaker.reset_at(0);
    let snap = h.breaker.snapshot();
    assert_eq!(snap.consecutive_failures, 0);
    assert_eq!(
        (snap.to_forced_open, snap.to_metrics_only, snap.to_disabled, snap.to_closed),
        (1, 1, 1, 2)
    );
    assert_eq!(snap.failures, 21);
    let causes: Vec<_> = h.take().into_iter().map(|t| t.2).collect();
    assert_eq!(causes.last(), Some(&TransitionCause::Reset));
}

#[test]
fn the_listener_may_call_back_into_the_breaker() {
    let clock = Arc::new(ManualClock::new(0));
    let seen = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&seen);
    let breaker = Arc::new_cyclic(|weak: &std::sync::Weak<Breaker<Arc<ManualClock>>>| {
        let weak = weak.clone();
        Breaker::builder(BreakerConfig::gobreaker())
            .clock(Arc::clone(&clock))
            .listener(move |_| {
                // gobreaker issue 37: this deadlocks under gobreaker's mutex.
                if let Some(b) = weak.upgrade() {
                    *sink.lock().unwrap() = Some(b.snapshot().to_open);
                }
            })
            .build()
            .unwrap()
    });
    for _ in 0..6 {
        breaker.try_acquire().unwrap().failure();
    }
    assert_eq!(*seen.lock().unwrap(), Some(1));
}
