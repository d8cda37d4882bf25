//! Waiting for a permit: blocking and async acquire, queue ordering, graded rejection,
//! hand-off, cancellation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use valve::{
    Acquire, AcquireError, Fixed, Limiter, ManualClock, MonotonicClock, QueueConfig, QueueOrdering,
};

type Manual = Arc<ManualClock>;

/// A queue that never refuses a waiter, for tests about ordering rather than rejection.
fn roomy() -> QueueConfig {
    QueueConfig { reject_from: 1000.0, reject_all_at: 1000.0, ..QueueConfig::default() }
}

fn limiter(limit: u32, queue: QueueConfig) -> (Limiter<Fixed, Manual>, Manual) {
    let clock = Arc::new(ManualClock::new(0));
    (Limiter::with_queue(Fixed::new(limit).unwrap(), clock.clone(), queue).unwrap(), clock)
}

/// Counts its wakes: proves exactly which waiter a release woke.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Polled<'a> {
    future: Pin<Box<Acquire<'a, Fixed, Manual>>>,
    wakes: Arc<CountingWaker>,
}

impl<'a> Polled<'a> {
    fn new(future: Acquire<'a, Fixed, Manual>) -> Self {
        Self { future: Box::pin(future), wakes: Arc::default() }
    }

    fn poll(&mut self) -> Poll<Result<valve::Permit<'a, Fixed, Manual>, AcquireError>> {
        let waker = Waker::from(self.wakes.clone());
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }

    fn woken(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }
}

/// Queues `n` async waiters behind a full limiter, polling each once.
fn queue_waiters<'a>(limiter: &'a Limiter<Fixed, Manual>, n: usize) -> Vec<Polled<'a>> {
    (0..n)
        .map(|_| {
            let mut w = Polled::new(limiter.acquire());
            assert!(w.poll().is_pending());
            w
        })
        .collect()
}

#[test]
fn blocking_waiter_gets_the_released_permit_and_queued_time_is_not_rtt() {
    let limiter = Arc::new(Limiter::new(Fixed::new(1).unwrap()).unwrap());
    let held = limiter.try_acquire().unwrap();
    let waiter = {
        let limiter = limiter.clone();
        thread::spawn(move || {
            let permit = limiter.acquire_timeout(Duration::from_secs(10)).unwrap();
            let start = permit.start();
            permit.success();
            start
        })
    };
    while limiter.snapshot().queued == 0 {
        thread::yield_now();
    }
    thread::sleep(Duration::from_millis(20));
    let released_at = valve::Clock::now(limiter.clock());
    held.success();
    let start = waiter.join().unwrap();
    assert!(start >= released_at, "the permit's RTT must start at the hand-off");
    let s = limiter.snapshot();
    assert_eq!((s.in_flight, s.queued, s.success, s.timed_out), (0, 0, 2, 0));
}

#[test]
fn blocking_waiter_times_out_and_leaves_no_trace() {
    let limiter: Limiter<Fixed, MonotonicClock> = Limiter::new(Fixed::new(1).unwrap()).unwrap();
    let _held = limiter.try_acquire().unwrap();
    let err = limiter.acquire_timeout(Duration::from_millis(20)).unwrap_err();
    assert_eq!(err, AcquireError::TimedOut);
    let s = limiter.snapshot();
    assert_eq!((s.queued, s.timed_out, s.in_flight, s.rejected), (0, 1, 1, 0));
    assert_eq!(limiter.acquire_timeout(Duration::ZERO).unwrap_err(), AcquireError::TimedOut);
}

#[test]
fn fifo_serves_the_oldest_first_and_wakes_exactly_one() {
    let (limiter, _) = limiter(1, roomy());
    let held = limiter.try_acquire_at(0).unwrap();
    let mut waiters = queue_waiters(&limiter, 3);
    held.success_at(1);
    assert_eq!(waiters.iter().map(Polled::woken).collect::<Vec<_>>(), [1, 0, 0]);
    let Poll::Ready(Ok(first)) = waiters[0].poll() else { panic!("oldest not granted") };
    assert!(waiters[1].poll().is_pending() && waiters[2].poll().is_pending());
    first.success_at(2);
    assert!(matches!(waiters[1].poll(), Poll::Ready(Ok(_))));
}

#[test]
fn lifo_serves_the_newest_first() {
    let queue = QueueConfig { ordering: QueueOrdering::Lifo, ..roomy() };
    let (limiter, _) = limiter(1, queue);
    let held = limiter.try_acquire_at(0).unwrap();
    let mut waiters = queue_waiters(&limiter, 3);
    held.success_at(1);
    assert_eq!(waiters.iter().map(Polled::woken).collect::<Vec<_>>(), [0, 0, 1]);
    assert!(matches!(waiters[2].poll(), Poll::Ready(Ok(_))));
}

#[test]
fn adaptive_switches_to_lifo_once_the_oldest_is_too_old() {
    let max_age = Duration::from_millis(100);
    let queue = QueueConfig { ordering: QueueOrdering::Adaptive { max_age }, ..roomy() };
    let (limiter, clock) = limiter(1, queue);
    let held = limiter.try_acquire_at(0).unwrap();
    let mut waiters = queue_waiters(&limiter, 3);
    // Oldest waited exactly 100 ms: not older than max_age, still FIFO.
    held.success_at(100_000_000);
    assert_eq!(waiters.iter().map(Polled::woken).collect::<Vec<_>>(), [1, 0, 0]);
    let Poll::Ready(Ok(first)) = waiters[0].poll() else { panic!() };
    clock.set(200_000_000);
    first.success_at(200_000_000);
    assert_eq!(waiters.iter().map(Polled::woken).collect::<Vec<_>>(), [1, 0, 1]);
}

#[test]
fn raising_the_limit_wakes_one_waiter_per_new_slot() {
    let (limiter, _) = limiter(1, roomy());
    let _held = limiter.try_acquire_at(0).unwrap();
    let mut waiters = queue_waiters(&limiter, 4);
    limiter.set_limit(3);
    assert_eq!(waiters.iter().map(Polled::woken).collect::<Vec<_>>(), [1, 1, 0, 0]);
    assert_eq!(limiter.snapshot().queued, 2);
    assert!(matches!(waiters[0].poll(), Poll::Ready(Ok(_))));
    assert!(matches!(waiters[1].poll(), Poll::Ready(Ok(_))));
    assert_eq!(limiter.in_flight(), 3);
}

#[test]
fn dropping_a_queued_or_granted_future_loses_nothing() {
    let (limiter, _) = limiter(1, roomy());
    let held = limiter.try_acquire_at(0).unwrap();
    let mut waiters = queue_waiters(&limiter, 2);
    // Cancelled while queued: the queue forgets it.
    drop(waiters.remove(0));
    assert_eq!(limiter.snapshot().queued, 1);
    // Granted, then dropped before it was polled: the permit passes on, nothing leaks.
    held.success_at(1);
    assert_eq!(waiters[0].woken(), 1);
    drop(waiters.remove(0));
    let s = limiter.snapshot();
    assert_eq!((s.in_flight, s.queued), (0, 0));
    assert!(limiter.try_acquire_at(2).is_ok());
}

#[test]
fn async_deadline_expires_on_poll_and_on_grant_scan() {
    let (limiter, clock) = limiter(1, roomy());
    let held = limiter.try_acquire_at(0).unwrap();
    let mut early = Polled::new(limiter.acquire_with_deadline(50));
    let mut late = Polled::new(limiter.acquire_with_deadline(1_000));
    assert!(early.poll().is_pending() && late.poll().is_pending());
    clock.set(60);
    // The release finds `early` expired, wakes it with a timeout, and grants `late`.
    held.success_at(60);
    assert_eq!((early.woken(), late.woken()), (1, 1));
    assert!(matches!(early.poll(), Poll::Ready(Err(AcquireError::TimedOut))));
    let Poll::Ready(Ok(_late_permit)) = late.poll() else { panic!("late not granted") };
    let mut expired = Polled::new(limiter.acquire_with_deadline(100));
    assert!(expired.poll().is_pending());
    clock.set(100);
    assert!(matches!(expired.poll(), Poll::Ready(Err(AcquireError::TimedOut))));
    let s = limiter.snapshot();
    // Async timeouts count as the blocking ones do.
    assert_eq!((s.queued, s.timed_out), (0, 2));
}

#[test]
fn graded_rejection_follows_the_configured_ramp() {
    // Limit 10: queue freely below 20 waiters, reject all from 30, in between with probability
    // (queued - 20) / 10.
    let (limiter, _) = limiter(10, QueueConfig { seed: 7, ..QueueConfig::default() });
    let _held: Vec<_> = (0..10).map(|_| limiter.try_acquire_at(0).unwrap()).collect();
    let mut queued = queue_waiters(&limiter, 20);
    for (target, expected) in [(20, 0.0), (23, 0.3), (25, 0.5), (28, 0.8)] {
        while queued.len() < target {
            let mut w = Polled::new(limiter.acquire());
            if w.poll().is_pending() {
                queued.push(w);
            }
        }
        let trials = 4000;
        let mut rejected = 0;
        for _ in 0..trials {
            let mut w = Polled::new(limiter.acquire());
            match w.poll() {
                Poll::Ready(Err(AcquireError::Rejected(_))) => rejected += 1,
                Poll::Pending => {}
                other => panic!("unexpected {:?}", other.map(|r| r.map(|_| ()))),
            }
        }
        let rate = f64::from(rejected) / f64::from(trials);
        assert!((rate - expected).abs() < 0.04, "at {target} queued: {rate} vs {expected}");
    }
    while queued.len() < 30 {
        let mut w = Polled::new(limiter.acquire());
        if w.poll().is_pending() {
            queued.push(w);
        }
    }
    for _ in 0..100 {
        assert!(matches!(
            Polled::new(limiter.acquire()).poll(),
            Poll::Ready(Err(AcquireError::Rejected(_)))
        ));
    }
}

#[test]
fn invalid_queue_configs_are_typed_errors() {
    let clock = Arc::new(ManualClock::new(0));
    for queue in [
        QueueConfig { reject_from: 4.0, reject_all_at: 3.0, ..QueueConfig::default() },
        QueueConfig { reject_from: -1.0, ..QueueConfig::default() },
        QueueConfig { reject_all_at: f64::NAN, ..QueueConfig::default() },
    ] {
        assert!(Limiter::with_queue(Fixed::new(1).unwrap(), clock.clone(), queue).is_err());
    }
}

#[test]
fn works_under_tokio() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let limiter = Arc::new(Limiter::new(Fixed::new(1).unwrap()).unwrap());
        let held = limiter.try_acquire().unwrap();
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire().await.map(|p| p.success()).is_ok() })
        };
        tokio::task::yield_now().await;
        held.success();
        assert!(waiter.await.unwrap());
        assert_eq!(limiter.in_flight(), 0);
    });
}
