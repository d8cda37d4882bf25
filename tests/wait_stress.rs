//! Stress: 16 threads wait with random timeouts, and cancel async waits at random, on one
//! limiter. Afterwards no waiter remains, in-flight is 0, and exactly `limit` permits can be
//! taken. On a 2-core machine this checks correctness under oversubscription, not speed.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use valve::{AcquireError, Fixed, Limiter, QueueConfig, QueueOrdering};

const THREADS: u64 = 16;
const ROUNDS: u64 = 400;
const LIMIT: u32 = 3;

/// splitmix64, per thread, so each run exercises many interleavings reproducibly per seed.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn run(ordering: QueueOrdering) {
    let queue = QueueConfig { ordering, max_waiters: 64, ..QueueConfig::default() };
    let limiter = Arc::new(
        Limiter::with_queue(Fixed::new(LIMIT).unwrap(), valve::MonotonicClock::new(), queue)
            .unwrap(),
    );
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let limiter = limiter.clone();
            thread::spawn(move || {
                let mut rng = t + 1;
                let (mut granted, mut timed_out, mut rejected) = (0u64, 0u64, 0u64);
                for _ in 0..ROUNDS {
                    match next(&mut rng) % 4 {
                        0 | 1 => {
                            let timeout = Duration::from_micros(next(&mut rng) % 300);
                            match limiter.acquire_timeout(timeout) {
                                Ok(permit) => {
                                    granted += 1;
                                    assert!(permit.in_flight_at_acquire() <= LIMIT);
                                    // Hold it a while, so others must queue.
                                    thread::sleep(Duration::from_micros(next(&mut rng) % 100));
                                    permit.success();
                                }
                                Err(AcquireError::TimedOut) => timed_out += 1,
                                Err(AcquireError::Rejected(_)) => rejected += 1,
                            }
                        }
                        _ => {
                            // An async wait polled once, then cancelled (or finished if granted).
                            let mut future = pin!(limiter.acquire());
                            let mut cx = Context::from_waker(Waker::noop());
                            if let Poll::Ready(Ok(permit)) = future.as_mut().poll(&mut cx) {
                                granted += 1;
                                permit.dropped();
                            } else {
                                thread::yield_now();
                                if let Poll::Ready(Ok(permit)) = future.as_mut().poll(&mut cx) {
                                    granted += 1;
                                    permit.ignored();
                                }
                            }
                        }
                    }
                }
                (granted, timed_out, rejected)
            })
        })
        .collect();
    let mut totals = (0, 0, 0);
    for t in threads {
        let (g, o, r) = t.join().unwrap();
        totals = (totals.0 + g, totals.1 + o, totals.2 + r);
    }
    let s = limiter.snapshot();
    assert_eq!((s.queued, s.in_flight), (0, 0), "{s:?}");
    // The run must have exercised every path: grants, timeouts and queue refusals.
    assert!(totals.0 > 0 && totals.1 > 0, "{totals:?}");
    eprintln!("{ordering:?}: granted {}, timed out {}, rejected {}", totals.0, totals.1, totals.2);
    assert_eq!(s.admitted, s.success + s.dropped + s.ignored);
    assert!(s.admitted >= totals.0, "granted permits are all counted");
    assert_eq!(s.timed_out, totals.1);
    let permits: Vec<_> = (0..LIMIT).map(|_| limiter.try_acquire().unwrap()).collect();
    assert!(limiter.try_acquire().is_err());
    assert_eq!(permits.len() as u32, LIMIT);
}

#[test]
fn fifo_waiters_under_stress_lose_no_permit() {
    run(QueueOrdering::Fifo);
}

#[test]
fn lifo_waiters_under_stress_lose_no_permit() {
    run(QueueOrdering::Lifo);
}

#[test]
fn adaptive_waiters_under_stress_lose_no_permit() {
    run(QueueOrdering::Adaptive { max_age: Duration::from_micros(50) });
}
