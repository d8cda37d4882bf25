//! Acquire + release latency of the limiter, with every baseline in the same run.
//!
//! Run: `cargo bench -p valve-bench --bench acquire`. At the end the harness prints each valve figure as a
//! ratio to its baseline, from criterion's own estimates.
//!
//! - `uncontended/*`: one thread, acquire then release with a success sample; every algorithm's
//!   valve defaults (and Envoy's preset, whose windows fill a histogram), each against the bare
//!   pair: the window update is amortised and runs off the admission path.
//! - `contended_2t/*`: two threads on one limiter (or one baseline), both started before timing
//!   and released together by a barrier; the figure is wall time per operation pair per thread.
//!   `VALVE_BENCH_THREADS=2,4,8` runs `contended_<n>t` for each count instead. A count above the
//!   machine's cores measures oversubscription, not contention: the table labels those rows.

use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use congestion_limiter::limiter::{DefaultLimiter, Limiter as _, Outcome as ClOutcome};
use congestion_limiter::limits::Aimd as ClAimd;
use criterion::Criterion;
use valve::{
    Aimd, AimdConfig, EnvoyGradient, EnvoyGradientConfig, Fixed, Gradient2, LimitAlgorithm,
    Limiter, Vegas, WindowConfig, WindowSample,
};
use valve_bench::estimate;

const LIMIT: u32 = 1000;

/// The floor: a CAS-acquire below a limit and a `fetch_sub` release on one word.
struct BareCasPair {
    word: AtomicU64,
}

impl BareCasPair {
    #[inline]
    fn acquire_release(&self) {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            if cur >= u64::from(LIMIT) {
                return;
            }
            match self.word.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
        self.word.fetch_sub(1, Ordering::Release);
    }
}

/// The same AIMD limiter, guarded by a mutex: what a straightforward implementation does.
struct MutexAimd {
    state: Mutex<(u32, u32, Aimd)>,
}

impl MutexAimd {
    fn new() -> Self {
        let aimd = Aimd::new(per_sample_aimd()).unwrap();
        Self { state: Mutex::new((0, aimd.initial_limit(), aimd)) }
    }

    #[inline]
    fn acquire_release(&self, now: u64) {
        let in_flight = {
            let mut s = self.state.lock().unwrap();
            if s.0 >= s.1 {
                return;
            }
            s.0 += 1;
            s.0
        };
        let mut s = self.state.lock().unwrap();
        s.0 -= 1;
        let limit = s.1;
        s.1 = s.2.update(&WindowSample::single(now, 10, in_flight, false), limit);
    }
}

fn per_sample_aimd() -> AimdConfig {
    AimdConfig { max_limit: LIMIT, window: WindowConfig::per_sample(), ..AimdConfig::default() }
}

fn valve_fixed() -> Limiter<Fixed> {
    Limiter::new(Fixed::new(LIMIT).unwrap()).unwrap()
}

fn valve_aimd() -> Limiter<Aimd> {
    Limiter::new(Aimd::new(AimdConfig { max_limit: LIMIT, ..AimdConfig::default() }).unwrap())
        .unwrap()
}

fn valve_aimd_per_sample() -> Limiter<Aimd> {
    Limiter::new(Aimd::new(per_sample_aimd()).unwrap()).unwrap()
}

/// congestion-limiter's API is async (boxed futures via async-trait); every future here is
/// ready at once, so one poll with a no-op waker runs it without an executor's overhead. Its
/// release may `tokio::spawn`, so the caller must be inside a runtime context.
fn poll_ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("congestion-limiter futures complete without waiting"),
    }
}

fn congestion_limiter() -> DefaultLimiter<ClAimd> {
    DefaultLimiter::new(ClAimd::new_with_initial_limit(LIMIT as usize))
}

fn cl_acquire_release(limiter: &DefaultLimiter<ClAimd>) {
    if let Some(token) = poll_ready(limiter.try_acquire()) {
        poll_ready(limiter.release(token, Some(ClOutcome::Success)));
    }
}

/// Runs `op` on `threads` threads, all started before timing: the bench thread plus
/// `threads - 1` workers that wait for an iteration count, then meet at a barrier.
struct Contended {
    starts: Vec<Sender<u64>>,
    done: Receiver<()>,
    barrier: Arc<Barrier>,
    op: Arc<dyn Fn(u64) + Send + Sync>,
}

impl Contended {
    fn new(threads: usize, op: Arc<dyn Fn(u64) + Send + Sync>) -> Self {
        let barrier = Arc::new(Barrier::new(threads));
        let (done_tx, done) = channel();
        let starts = (1..threads)
            .map(|_| {
                let (tx, rx) = channel::<u64>();
                let (barrier, op, done_tx) = (barrier.clone(), op.clone(), done_tx.clone());
                thread::spawn(move || {
                    let runtime = tokio_runtime();
                    let _context = runtime.enter();
                    for iters in rx {
                        barrier.wait();
                        for i in 0..iters {
                            op(i);
                        }
                        done_tx.send(()).unwrap();
                    }
                });
                tx
            })
            .collect();
        Self { starts, done, barrier, op }
    }

    fn run(&self, iters: u64) -> Duration {
        for tx in &self.starts {
            tx.send(iters).unwrap();
        }
        self.barrier.wait();
        let start = Instant::now();
        for i in 0..iters {
            (self.op)(i);
        }
        for _ in &self.starts {
            self.done.recv().unwrap();
        }
        start.elapsed()
    }
}

/// A runtime for congestion-limiter's release to spawn into (entered by the caller).
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended");
    let bare = BareCasPair { word: AtomicU64::new(0) };
    g.bench_function("bare_cas_pair", |b| b.iter(|| black_box(&bare).acquire_release()));

    let fixed = valve_fixed();
    g.bench_function("valve_fixed_at", |b| {
        b.iter(|| black_box(&fixed).try_acquire_at(black_box(7)).map(|p| p.success_at(9)))
    });
    let aimd = valve_aimd();
    g.bench_function("valve_aimd_at", |b| {
        let mut now = 0u64;
        b.iter(|| {
            now += 100;
            black_box(&aimd).try_acquire_at(now).map(|p| p.success_at(now + 50))
        })
    });
    let aimd_per_sample = valve_aimd_per_sample();
    g.bench_function("valve_aimd_per_sample_at", |b| {
        let mut now = 0u64;
        b.iter(|| {
            now += 100;
            black_box(&aimd_per_sample).try_acquire_at(now).map(|p| p.success_at(now + 50))
        })
    });
    let aimd_clock = valve_aimd();
    g.bench_function("valve_aimd_clock", |b| {
        b.iter(|| black_box(&aimd_clock).try_acquire().map(|p| p.success()))
    });
    let latency_limits: [(&str, Box<dyn LimitAlgorithm>); 4] = [
        ("valve_gradient2_at", Box::new(Gradient2::default())),
        ("valve_vegas_at", Box::new(Vegas::default())),
        ("valve_envoy_gradient_at", Box::new(EnvoyGradient::default())),
        ("envoy_preset_at", Box::new(EnvoyGradient::new(EnvoyGradientConfig::envoy()).unwrap())),
    ];
    for (name, algorithm) in latency_limits {
        let limiter = Limiter::new(algorithm).unwrap();
        g.bench_function(name, |b| {
            let mut now = 0u64;
            b.iter(|| {
                now += 100;
                black_box(&limiter).try_acquire_at(now).map(|p| p.success_at(now + 50))
            })
        });
    }
    let clock = valve::MonotonicClock::new();
    g.bench_function("two_clock_reads", |b| {
        b.iter(|| {
            use valve::Clock;
            (black_box(&clock).now(), black_box(&clock).now())
        })
    });
    let semaphore = tokio::sync::Semaphore::new(LIMIT as usize);
    g.bench_function("tokio_semaphore", |b| b.iter(|| drop(black_box(&semaphore).try_acquire())));
    let mutex = MutexAimd::new();
    g.bench_function("mutex_aimd", |b| {
        let mut now = 0u64;
        b.iter(|| {
            now += 100;
            black_box(&mutex).acquire_release(now)
        })
    });
    let runtime = tokio_runtime();
    let _context = runtime.enter();
    let cl = congestion_limiter();
    g.bench_function("congestion_limiter_aimd", |b| b.iter(|| cl_acquire_release(black_box(&cl))));
    g.finish();
}

/// Thread counts for the contended groups: `VALVE_BENCH_THREADS` (comma-separated), else 2.
fn thread_counts() -> Vec<usize> {
    std::env::var("VALVE_BENCH_THREADS")
        .ok()
        .map(|list| {
            list.split(',').filter_map(|n| n.trim().parse().ok()).filter(|&n| n >= 2).collect()
        })
        .filter(|counts: &Vec<usize>| !counts.is_empty())
        .unwrap_or_else(|| vec![2])
}

fn contended(c: &mut Criterion, threads: usize) {
    let mut g = c.benchmark_group(format!("contended_{threads}t"));
    let mut add = |name: &str, op: Arc<dyn Fn(u64) + Send + Sync>| {
        let contended = Contended::new(threads, op);
        g.bench_function(name, |b| b.iter_custom(|iters| contended.run(iters)));
    };
    let bare = Arc::new(BareCasPair { word: AtomicU64::new(0) });
    add("bare_cas_pair", Arc::new(move |_| bare.acquire_release()));
    let fixed = Arc::new(valve_fixed());
    add(
        "valve_fixed_at",
        Arc::new(move |i| {
            let _ = fixed.try_acquire_at(i).map(|p| p.success_at(i));
        }),
    );
    let aimd = Arc::new(valve_aimd());
    add(
        "valve_aimd_at",
        Arc::new(move |i| {
            let _ = aimd.try_acquire_at(i * 100).map(|p| p.success_at(i * 100 + 50));
        }),
    );
    let semaphore = Arc::new(tokio::sync::Semaphore::new(LIMIT as usize));
    add("tokio_semaphore", Arc::new(move |_| drop(semaphore.try_acquire())));
    let mutex = Arc::new(MutexAimd::new());
    add("mutex_aimd", Arc::new(move |i| mutex.acquire_release(i * 100)));
    let runtime = tokio_runtime();
    let _context = runtime.enter();
    let cl = Arc::new(congestion_limiter());
    add("congestion_limiter_aimd", Arc::new(move |_| cl_acquire_release(&cl)));
    g.finish();
}

fn report_ratios(thread_counts: &[usize]) {
    let uncontended = [
        ("uncontended", "valve_fixed_at", "bare_cas_pair", "target <= 1.5"),
        ("uncontended", "valve_aimd_at", "bare_cas_pair", "target <= 1.5"),
        ("uncontended", "valve_aimd_per_sample_at", "bare_cas_pair", "every sample updates"),
        ("uncontended", "valve_gradient2_at", "bare_cas_pair", "target <= 1.5"),
        ("uncontended", "valve_vegas_at", "bare_cas_pair", "target <= 1.5"),
        (
            "uncontended",
            "valve_envoy_gradient_at",
            "bare_cas_pair",
            "target <= 1.5 (p50 histogram)",
        ),
        ("uncontended", "envoy_preset_at", "bare_cas_pair", "target <= 1.5 (p50 histogram)"),
        ("uncontended", "valve_aimd_clock", "valve_aimd_at", "adds two clock reads"),
        ("uncontended", "valve_aimd_at", "tokio_semaphore", "for reference"),
        ("uncontended", "valve_aimd_at", "mutex_aimd", "lower is better"),
        ("uncontended", "valve_aimd_at", "congestion_limiter_aimd", "target <= 0.1"),
    ];
    let cores = thread::available_parallelism().map_or(1, usize::from);
    let mut rows: Vec<(String, &str, &str, String)> =
        uncontended.iter().map(|&(g, a, b, n)| (g.to_string(), a, b, n.to_string())).collect();
    for &threads in thread_counts {
        let group = format!("contended_{threads}t");
        let label = if threads > cores {
            format!(" (oversubscribed: {threads} threads on {cores} cores)")
        } else {
            String::new()
        };
        for (base, note) in [
            ("bare_cas_pair", "target <= 1.5"),
            ("mutex_aimd", "target <= 0.5"),
            ("congestion_limiter_aimd", "target <= 0.1"),
            ("tokio_semaphore", "for reference"),
        ] {
            rows.push((group.clone(), "valve_aimd_at", base, format!("{note}{label}")));
        }
    }
    println!(
        "\n{:<14} {:<26} {:<26} {:>9} {:>9} {:>7}  note",
        "group", "valve", "baseline", "valve ns", "base ns", "ratio"
    );
    for (group, ours, base, note) in rows {
        if let (Some(a), Some(b)) = (estimate(&group, ours), estimate(&group, base)) {
            println!("{group:<14} {ours:<26} {base:<26} {a:>9.2} {b:>9.2} {:>7.3}  {note}", a / b);
        }
    }
    if let Some(clock) = estimate("uncontended", "two_clock_reads") {
        println!("(two MonotonicClock reads: {clock:.2} ns)");
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    let threads = thread_counts();
    uncontended(&mut c);
    for &n in &threads {
        contended(&mut c, n);
    }
    c.final_summary();
    report_ratios(&threads);
}
