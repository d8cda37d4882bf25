//! Stress: 16 threads hammer one breaker that flaps between Closed, Open and HalfOpen under a
//! random failure pattern (sick and healthy phases, some calls slow, some ignored, a few probes
//! that never report). At the end every invariant must hold and every count must balance.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use valve::{
    Breaker, BreakerConfig, BreakerState, CloseRule, HalfOpenConfig, HalfOpenTimeoutTarget,
    OpenBackoff, OpenBoundary, RateCheck, SlidingWindow, Transition,
};

const THREADS: usize = 16;
const RUN_FOR: Duration = Duration::from_millis(600);
const PROBES: u32 = 4;
const MAX_CONCURRENT: u32 = 2;
/// Probe in-flight trackers, indexed by generation modulo this.
const TRACKED_GENERATIONS: usize = 1 << 16;

fn config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: Some(4),
        failure_rate: Some(0.5),
        slow_call_rate: Some(0.8),
        slow_call_duration: Some(Duration::from_micros(50)),
        window: SlidingWindow::Count { calls: 20 },
        minimum_calls: 10,
        rate_check: RateCheck::EveryCall,
        open: OpenBackoff {
            base: Duration::from_micros(200),
            multiplier: 2.0,
            max: Duration::from_millis(2),
            jitter: 0.5,
        },
        open_boundary: OpenBoundary::Strict,
        half_open: HalfOpenConfig {
            probes: PROBES,
            max_concurrent: MAX_CONCURRENT,
            close_rule: CloseRule::ConsecutiveSuccesses(2),
            timeout: Some(Duration::from_millis(1)),
            on_timeout: HalfOpenTimeoutTarget::Open,
        },
    }
}

/// xorshift64*: each thread's own failure pattern.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[derive(Default)]
struct Tally {
    admitted: u64,
    probes: u64,
    leaked: u64,
    rejected: u64,
}

#[test]
fn sixteen_threads_flapping() {
    let transitions: Arc<Mutex<Vec<Transition>>> = Arc::default();
    let sink = Arc::clone(&transitions);
    let breaker = Arc::new(
        Breaker::builder(config()).listener(move |t| sink.lock().unwrap().push(t)).build().unwrap(),
    );
    let probes_in_flight: Arc<Vec<AtomicU32>> =
        Arc::new((0..TRACKED_GENERATIONS).map(|_| AtomicU32::new(0)).collect());
    let probes_per_generation: Arc<Vec<AtomicU32>> =
        Arc::new((0..TRACKED_GENERATIONS).map(|_| AtomicU32::new(0)).collect());
    let over_cap = Arc::new(AtomicU64::new(0));
    let start = Instant::now();

    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let breaker = Arc::clone(&breaker);
            let in_flight = Arc::clone(&probes_in_flight);
            let per_generation = Arc::clone(&probes_per_generation);
            let over_cap = Arc::clone(&over_cap);
            thread::spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1);
                let mut tally = Tally::default();
                while start.elapsed() < RUN_FOR {
                    let Ok(permit) = breaker.try_acquire() else {
                        tally.rejected += 1;
                        thread::yield_now();
                        continue;
                    };
                    tally.admitted += 1;
                    let probe = permit.admitted_in() == BreakerState::HalfOpen;
                    let slot = permit.generation() as usize % TRACKED_GENERATIONS;
                    if probe {
                        tally.probes += 1;
                        let now = in_flight[slot].fetch_add(1, Ordering::SeqCst) + 1;
                        let issued = per_generation[slot].fetch_add(1, Ordering::SeqCst) + 1;
                        if now > MAX_CONCURRENT || issued > PROBES {
                            over_cap.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    // Sick for 2 ms of every 5 ms.
                    let sick = start.elapsed().as_micros() % 5000 < 2000;
                    let roll = next(&mut rng) % 100;
                    let slow = roll % 17 == 0;
                    if slow {
                        thread::sleep(Duration::from_micros(60));
                    }
                    if probe {
                        in_flight[slot].fetch_sub(1, Ordering::SeqCst);
                    }
                    match roll {
                        0 => {
                            // A probe that never reports: only the half-open timeout frees it.
                            let _ = permit.into_token();
                            tally.leaked += 1;
                        }
                        1..=5 => {
                            if probe {
                                per_generation[slot].fetch_sub(1, Ordering::SeqCst);
                            }
                            permit.ignored();
                        }
                        _ if sick && roll < 70 => permit.failure(),
                        _ if !sick && roll < 8 => permit.failure(),
                        _ => permit.success(),
                    }
                }
                tally
            })
        })
        .collect();

    let tallies: Vec<Tally> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let admitted: u64 = tallies.iter().map(|t| t.admitted).sum();
    let leaked: u64 = tallies.iter().map(|t| t.leaked).sum();
    let rejected: u64 = tallies.iter().map(|t| t.rejected).sum();
    let probes: u64 = tallies.iter().map(|t| t.probes).sum();
    let snap = breaker.snapshot();
    let transitions = transitions.lock().unwrap();
    eprintln!("admitted {admitted}, rejected {rejected}, probes {probes}, {snap:?}");

    assert_eq!(over_cap.load(Ordering::SeqCst), 0, "probe quota or concurrency cap exceeded");
    assert_eq!(snap.successes + snap.failures + snap.ignored, admitted - leaked, "{snap:?}");
    assert_eq!(snap.rejected_open + snap.rejected_half_open, rejected);
    assert!(snap.slow <= snap.successes + snap.failures);
    assert!(snap.late <= admitted);
    // Flapped: every kind of automatic transition happened.
    assert!(snap.to_open > 0 && snap.to_half_open > 0 && snap.to_closed > 0, "{snap:?}");
    assert!(probes > 0);
    // One listener call per transition and one transition per generation (generations start
    // at 1 and do not wrap within this run).
    let counted = snap.to_open + snap.to_half_open + snap.to_closed;
    assert_eq!(transitions.len() as u64, counted);
    let generations: HashSet<u64> = transitions.iter().map(|t| t.generation).collect();
    assert_eq!(generations.len(), transitions.len(), "a generation transitioned twice");
    assert_eq!(generations.iter().max().copied(), Some(snap.generation));
    // Quiescent: the probes still counted in flight are exactly those leaked in this episode.
    if snap.breaker_state() == Some(BreakerState::HalfOpen) {
        assert!(snap.half_open_in_flight <= snap.half_open_issued);
        assert!(snap.half_open_issued <= PROBES);
    } else {
        assert_eq!((snap.half_open_in_flight, snap.half_open_issued), (0, 0));
    }
    for t in transitions.iter() {
        let allowed = matches!(
            (t.from, t.to),
            (BreakerState::Closed, BreakerState::Open)
                | (BreakerState::Open, BreakerState::HalfOpen)
                | (BreakerState::HalfOpen, BreakerState::Open)
                | (BreakerState::HalfOpen, BreakerState::Closed)
        );
        assert!(allowed, "{t:?}");
        if t.to == BreakerState::Open {
            assert!(t.open_for > 0 && t.open_for <= 2_000_000, "{t:?}");
        }
    }
}
