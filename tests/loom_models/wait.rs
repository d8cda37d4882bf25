//! The waiter queue: release vs enqueue, grant vs timeout, limit raise with several waiters,
//! async cancel vs grant. A lost wakeup shows up as a loom deadlock; a lost or duplicated
//! permit as a failed count at the end.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use loom::sync::Arc;
use loom::thread;
use valve::{Clock, Fixed, Limiter, ManualClock, Nanos, QueueConfig};

/// A manual clock shared through loom's `Arc` (valve implements `Clock` for std's).
#[derive(Clone)]
struct SharedClock(Arc<ManualClock>);

impl Clock for SharedClock {
    fn now(&self) -> Nanos {
        self.0.now()
    }
}

type Shared = Arc<Limiter<Fixed, SharedClock>>;

fn limiter(limit: u32) -> (Shared, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(0));
    let queue = QueueConfig { reject_from: 100.0, reject_all_at: 100.0, ..QueueConfig::default() };
    let limiter =
        Limiter::with_queue(Fixed::new(limit).unwrap(), SharedClock(clock.clone()), queue).unwrap();
    (Arc::new(limiter), clock)
}

/// Afterwards: nobody queued, nothing in flight, and exactly `limit` permits can be taken.
fn assert_intact(limiter: &Shared, limit: u32) {
    let s = limiter.snapshot();
    assert_eq!((s.queued, s.in_flight), (0, 0), "{s:?}");
    let permits: Vec<_> = (0..limit).map(|_| limiter.try_acquire_at(9).unwrap()).collect();
    assert!(limiter.try_acquire_at(9).is_err());
    drop(permits);
}

#[test]
fn release_vs_enqueue_never_loses_the_wakeup() {
    loom::model(|| {
        let (limiter, _) = limiter(1);
        let held = limiter.try_acquire_at(0).unwrap();
        let waiter = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.acquire_until(u64::MAX).unwrap().success_at(2))
        };
        held.success_at(1);
        waiter.join().unwrap();
        assert_intact(&limiter, 1);
    });
}

#[test]
fn grant_vs_timeout_neither_loses_nor_duplicates() {
    loom::model(|| {
        let (limiter, clock) = limiter(1);
        let held = limiter.try_acquire_at(0).unwrap();
        let waiter = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.acquire_until(5).map(|p| p.success_at(11)).is_ok())
        };
        clock.set(10);
        held.success_at(10);
        let _granted = waiter.join().unwrap();
        assert_intact(&limiter, 1);
    });
}

#[test]
fn raising_the_limit_grants_every_new_slot() {
    loom::model(|| {
        let (limiter, _) = limiter(1);
        let held = limiter.try_acquire_at(0).unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let limiter = limiter.clone();
                thread::spawn(move || {
                    let permit = limiter.acquire_until(u64::MAX).unwrap();
                    assert!(permit.in_flight_at_acquire() <= 3);
                    permit.in_flight_at_acquire()
                })
            })
            .collect();
        limiter.set_limit(3);
        for w in waiters {
            w.join().unwrap();
        }
        drop(held);
        assert_intact(&limiter, 3);
    });
}

#[test]
fn async_cancel_vs_grant_loses_nothing() {
    loom::model(|| {
        let (limiter, _) = limiter(1);
        let held = limiter.try_acquire_at(0).unwrap();
        let canceller = {
            let limiter = limiter.clone();
            thread::spawn(move || {
                let mut future = pin!(limiter.acquire());
                let mut cx = Context::from_waker(Waker::noop());
                if let Poll::Ready(permit) = future.as_mut().poll(&mut cx) {
                    permit.unwrap().success_at(3);
                }
                // Dropped here: queued or granted meanwhile, nothing may leak.
            })
        };
        held.success_at(1);
        canceller.join().unwrap();
        assert_intact(&limiter, 1);
    });
}
