//! loom models of the breaker's state-word protocols: the half-open quota, the one transition
//! per trip, and late results from an older generation.

use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use valve::{
    Breaker, BreakerConfig, BreakerOutcome, BreakerRng, BreakerState, CloseRule, HalfOpenConfig,
    HalfOpenTimeoutTarget, ManualClock, OpenBackoff, OpenBoundary, SlidingWindow,
};

const S: u64 = 1_000_000_000;

/// A jitter source that counts its draws: one draw is one open-duration computation.
struct CountingRng(Arc<AtomicUsize>);

impl BreakerRng for CountingRng {
    fn next_u64(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed);
        0
    }
}

/// Consecutive-failure breaker, jittered open of 1 s, `probes` probes at once.
fn config(failures: u32, probes: u32) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(failures),
        failure_rate: None,
        open: OpenBackoff { jitter: 0.5, ..OpenBackoff::constant(Duration::from_secs(1)) },
        open_boundary: OpenBoundary::Strict,
        half_open: HalfOpenConfig {
            probes,
            max_concurrent: probes,
            close_rule: CloseRule::ConsecutiveSuccesses(probes),
            timeout: None,
            on_timeout: HalfOpenTimeoutTarget::Open,
        },
        ..BreakerConfig::default()
    }
}

fn breaker(
    config: BreakerConfig,
    draws: &Arc<AtomicUsize>,
    listened: &Arc<AtomicUsize>,
) -> Breaker<ManualClock> {
    let listened = Arc::clone(listened);
    Breaker::builder(config)
        .clock(ManualClock::new(0))
        .rng(CountingRng(Arc::clone(draws)))
        .listener(move |_| {
            listened.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap()
}

/// Three threads race for an Open breaker past its deadline with a quota of 2 probes: one
/// Open -> HalfOpen transition, exactly 2 probes admitted.
#[test]
fn half_open_admits_exactly_the_quota() {
    loom::model(|| {
        let draws = Arc::new(AtomicUsize::new(0));
        let listened = Arc::new(AtomicUsize::new(0));
        let b = Arc::new(breaker(config(1, 2), &draws, &listened));
        b.transition_to_at(BreakerState::Open, 0);
        let acquire = |b: &Breaker<ManualClock>| match b.try_acquire_at(2 * S) {
            Ok(permit) => {
                assert_eq!(permit.admitted_in(), BreakerState::HalfOpen);
                // Held forever: its place is never given back.
                let _ = permit.into_token();
                1
            }
            Err(_) => 0,
        };
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let b = Arc::clone(&b);
                thread::spawn(move || acquire(&b))
            })
            .collect();
        let mine = acquire(&b);
        let admitted: usize = mine + threads.into_iter().map(|t| t.join().unwrap()).sum::<usize>();
        assert_eq!(admitted, 2);
        let snap = b.snapshot();
        assert_eq!((snap.to_half_open, snap.half_open_issued), (1, 2));
        assert_eq!(listened.load(Ordering::Relaxed), 2, "to Open, to HalfOpen");
    });
}

/// Two failures race to trip a breaker that trips on one: exactly one transition, one open
/// duration drawn, one listener call.
#[test]
fn one_trip_one_transition() {
    loom::model(|| {
        let draws = Arc::new(AtomicUsize::new(0));
        let listened = Arc::new(AtomicUsize::new(0));
        let b = Arc::new(breaker(config(1, 1), &draws, &listened));
        let tokens =
            [b.try_acquire_at(0).unwrap().into_token(), b.try_acquire_at(0).unwrap().into_token()];
        let other = {
            let b = Arc::clone(&b);
            let token = tokens[1];
            thread::spawn(move || b.record_token_at(token, BreakerOutcome::Failure, 1))
        };
        b.record_token_at(tokens[0], BreakerOutcome::Failure, 1);
        other.join().unwrap();
        let snap = b.snapshot();
        assert_eq!(snap.state, BreakerState::Open as u32);
        assert_eq!((snap.to_open, snap.failures), (1, 2));
        assert_eq!(draws.load(Ordering::Relaxed), 1);
        assert_eq!(listened.load(Ordering::Relaxed), 1);
    });
}

/// A success admitted while Closed arrives while a half-open probe fails: the late success is
/// counted but can never close the breaker; the probe's failure reopens it.
#[test]
fn late_results_never_transition() {
    loom::model(|| {
        let draws = Arc::new(AtomicUsize::new(0));
        let listened = Arc::new(AtomicUsize::new(0));
        let b = Arc::new(breaker(config(1, 1), &draws, &listened));
        let old = b.try_acquire_at(0).unwrap().into_token();
        b.transition_to_at(BreakerState::HalfOpen, 0);
        let late = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.record_token_at(old, BreakerOutcome::Success, 1))
        };
        b.try_acquire_at(1).unwrap().failure_at(1);
        late.join().unwrap();
        let snap = b.snapshot();
        assert_eq!(snap.state, BreakerState::Open as u32);
        assert_eq!((snap.to_closed, snap.to_open, snap.late), (0, 1, 1));
    });
}

/// A probe's result races the half-open timeout: exactly one of them ends the episode.
#[test]
fn probe_result_and_timeout_end_the_episode_once() {
    loom::model(|| {
        let draws = Arc::new(AtomicUsize::new(0));
        let listened = Arc::new(AtomicUsize::new(0));
        let mut config = config(1, 1);
        config.half_open.timeout = Some(Duration::from_secs(1));
        let b = Arc::new(breaker(config, &draws, &listened));
        b.transition_to_at(BreakerState::HalfOpen, 0);
        let probe = b.try_acquire_at(0).unwrap().into_token();
        let poller = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.poll_at(S))
        };
        b.record_token_at(probe, BreakerOutcome::Success, S);
        poller.join().unwrap();
        let snap = b.snapshot();
        // Closed by the probe, or reopened by the timeout (the probe then late): never both.
        assert_eq!(snap.to_closed + snap.to_open, 1);
        assert_eq!(snap.late, snap.to_open);
    });
}

/// Records racing through a window (evictions, slot overwrites): once quiet, the totals hold
/// exactly what the slots hold, which a final sequential pass that replaces everything proves.
fn window_balances(
    window: SlidingWindow,
    racing: [[(u64, BreakerOutcome); 2]; 2],
    refill: &'static [u64],
) {
    loom::model(move || {
        let draws = Arc::new(AtomicUsize::new(0));
        let listened = Arc::new(AtomicUsize::new(0));
        let config =
            BreakerConfig { window, minimum_calls: 1, failure_rate: Some(1.0), ..config(1, 1) };
        let b = Arc::new(breaker(config, &draws, &listened));
        b.transition_to_at(BreakerState::MetricsOnly, 0);
        let record = |b: &Breaker<ManualClock>, calls: [(u64, BreakerOutcome); 2]| {
            for (now, outcome) in calls {
                b.try_acquire_at(now).unwrap().finish(outcome, now);
            }
        };
        let other = {
            let b = Arc::clone(&b);
            let calls = racing[1];
            thread::spawn(move || record(&b, calls))
        };
        record(&b, racing[0]);
        other.join().unwrap();
        for &now in refill {
            b.try_acquire_at(now).unwrap().success_at(now);
        }
        let snap = b.snapshot();
        assert_eq!((snap.window_calls, snap.window_failures), (refill.len() as u64, 0));
    });
}

#[test]
fn time_window_evictions_balance() {
    use BreakerOutcome::{Failure, Success};
    let window = SlidingWindow::Time { buckets: 2, bucket: Duration::from_nanos(10) };
    window_balances(
        window,
        [[(5, Failure), (25, Failure)], [(15, Failure), (35, Success)]],
        &[1_000],
    );
}

#[test]
fn count_window_overwrites_balance() {
    use BreakerOutcome::{Failure, Success};
    let window = SlidingWindow::Count { calls: 2 };
    window_balances(window, [[(0, Failure), (0, Success)], [(0, Failure), (0, Failure)]], &[1, 1]);
}

/// A success counted in its thread's shard moves the shard's bucket to a newer epoch while a
/// failure on the shared path reads the window. The failure's rate check sees that bucket's
/// count of its own epoch (0 or 1 here, so at most 3 calls), never the older epoch's 2, which
/// would reach the minimum of 4 calls and trip; once both are done every call is counted
/// exactly once.
#[test]
fn shard_bucket_reuse_never_leaks_an_older_epoch() {
    loom::model(|| {
        let draws = Arc::new(AtomicUsize::new(0));
        let listened = Arc::new(AtomicUsize::new(0));
        let config = BreakerConfig {
            consecutive_failures: None,
            failure_rate: Some(0.25),
            window: SlidingWindow::Time { buckets: 2, bucket: Duration::from_nanos(10) },
            minimum_calls: 4,
            ..config(1, 1)
        };
        let b = Arc::new(breaker(config, &draws, &listened));
        // This thread takes the one shard the model has: two successes fill its bucket for
        // epoch 0, which epoch 2 reuses; the first success in epoch 2 takes the shared path and
        // moves the window there.
        for now in [5, 5, 25] {
            b.try_acquire_at(now).unwrap().success_at(now);
        }
        let failing = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.try_acquire_at(25).unwrap().failure_at(25))
        };
        b.try_acquire_at(25).unwrap().success_at(25);
        failing.join().unwrap();
        let snap = b.snapshot();
        assert_eq!(snap.to_open, 0, "a count of epoch 0 was read as epoch 2's");
        assert_eq!((snap.successes, snap.failures), (4, 1));
        assert_eq!((snap.window_calls, snap.window_failures), (3, 1));
    });
}
