//! Waiting support: its cost when nobody waits, and hand-off latency, with baselines in the
//! same run (std `Mutex` + `Condvar` semaphore, tokio's `Semaphore`).
//!
//! Run: `cargo bench -p valve-bench --bench wait`.
//! - `uncontended/*`: one thread, acquire through the waiting entry point then release.
//! - `handoff/*`: two threads pass one permit back and forth, each blocking until the other
//!   releases; the figure is time per hand-off (release to the waiter running).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use criterion::Criterion;
use valve::{Fixed, Limiter};

/// The textbook blocking semaphore.
struct CondvarSemaphore {
    free: Mutex<u32>,
    available: Condvar,
}

impl CondvarSemaphore {
    fn new(permits: u32) -> Self {
        Self { free: Mutex::new(permits), available: Condvar::new() }
    }

    fn acquire(&self) {
        let mut free = self.free.lock().unwrap();
        while *free == 0 {
            free = self.available.wait(free).unwrap();
        }
        *free -= 1;
    }

    fn release(&self) {
        *self.free.lock().unwrap() += 1;
        self.available.notify_one();
    }
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended");
    let limiter = Limiter::new(Fixed::new(64).unwrap()).unwrap();
    g.bench_function("valve_try_acquire_at", |b| {
        b.iter(|| black_box(&limiter).try_acquire_at(1).map(|p| p.success_at(2)))
    });
    g.bench_function("valve_acquire_until", |b| {
        b.iter(|| black_box(&limiter).acquire_until(u64::MAX).map(|p| p.success_at(2)))
    });
    g.bench_function("valve_acquire_async", |b| {
        let mut cx = Context::from_waker(Waker::noop());
        b.iter(|| {
            let future = pin!(black_box(&limiter).acquire());
            if let Poll::Ready(Ok(p)) = future.poll(&mut cx) {
                p.success_at(2);
            }
        })
    });
    let condvar = CondvarSemaphore::new(64);
    g.bench_function("mutex_condvar", |b| {
        b.iter(|| {
            black_box(&condvar).acquire();
            condvar.release();
        })
    });
    let semaphore = tokio::sync::Semaphore::new(64);
    g.bench_function("tokio_semaphore_acquire", |b| {
        let mut cx = Context::from_waker(Waker::noop());
        b.iter(|| {
            let future = pin!(black_box(&semaphore).acquire());
            if let Poll::Ready(permit) = future.poll(&mut cx) {
                drop(permit);
            }
        })
    });
    g.finish();
}

/// Two threads pass one permit back and forth `iters` times each; returns the elapsed time.
fn ping_pong(iters: u64, acquire_release: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let other = {
        let acquire_release = acquire_release.clone();
        thread::spawn(move || {
            for _ in 0..iters {
                acquire_release();
            }
        })
    };
    let start = Instant::now();
    for _ in 0..iters {
        acquire_release();
    }
    other.join().unwrap();
    start.elapsed()
}

fn handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("handoff");
    g.sample_size(10);
    let hold = || {
        // Hold the permit long enough that the other thread must queue.
        let until = Instant::now() + Duration::from_micros(2);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    };
    let limiter = Arc::new(Limiter::new(Fixed::new(1).unwrap()).unwrap());
    g.bench_function("valve_blocking", |b| {
        let limiter = limiter.clone();
        let op: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let permit = limiter.acquire_until(u64::MAX).unwrap();
            hold();
            permit.success();
        });
        b.iter_custom(|iters| ping_pong(iters, op.clone()))
    });
    let condvar = Arc::new(CondvarSemaphore::new(1));
    g.bench_function("mutex_condvar", |b| {
        let condvar = condvar.clone();
        let op: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            condvar.acquire();
            hold();
            condvar.release();
        });
        b.iter_custom(|iters| ping_pong(iters, op.clone()))
    });
    let semaphore = Arc::new(tokio::sync::Semaphore::new(1));
    g.bench_function("tokio_semaphore", |b| {
        let semaphore = semaphore.clone();
        let op: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let permit = runtime.block_on(semaphore.acquire()).unwrap();
            hold();
            drop(permit);
        });
        b.iter_custom(|iters| ping_pong(iters, op.clone()))
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    uncontended(&mut c);
    handoff(&mut c);
    c.final_summary();
}
