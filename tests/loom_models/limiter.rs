//! Admission vs release vs limit change, and the window's updater election.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use loom::thread;
use valve::{Fixed, LimitAlgorithm, LimitBounds, Limiter, WindowConfig, WindowSample};

/// Two threads race for one slot while the limit goes 1 -> 2 -> 1: in-flight never passes the
/// limit in force at admission, and afterwards exactly `limit` permits can be taken.
#[test]
fn admission_vs_release_vs_limit_change() {
    loom::model(|| {
        let limiter = Arc::new(Limiter::new(Fixed::new(1).unwrap()).unwrap());
        let raised = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (limiter, raised) = (limiter.clone(), raised.clone());
                thread::spawn(move || {
                    if let Ok(permit) = limiter.try_acquire_at(0) {
                        let in_flight = permit.in_flight_at_acquire();
                        // A second slot exists only once the limit was raised.
                        assert!(in_flight == 1 || raised.load(Ordering::SeqCst));
                        assert!(in_flight <= 2);
                        permit.success_at(1);
                    }
                })
            })
            .collect();
        raised.store(true, Ordering::SeqCst);
        limiter.set_limit(2);
        limiter.set_limit(1);
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(limiter.in_flight(), 0);
        let permit = limiter.try_acquire_at(2).unwrap();
        assert!(limiter.try_acquire_at(2).is_err());
        drop(permit);
        let s = limiter.snapshot();
        assert_eq!(s.admitted, s.success + s.ignored);
    });
}

/// Counts what the elected updater is handed and fails if two updates ever overlap.
struct Counting {
    updating: Arc<AtomicBool>,
    windows: Arc<AtomicU32>,
    samples: Arc<AtomicU64>,
}

impl LimitAlgorithm for Counting {
    fn initial_limit(&self) -> u32 {
        4
    }
    fn bounds(&self) -> LimitBounds {
        LimitBounds::new(1, 4).unwrap()
    }
    fn window(&self) -> WindowConfig {
        WindowConfig::per_sample()
    }
    fn update(&mut self, sample: &WindowSample, limit: u32) -> u32 {
        assert!(!self.updating.swap(true, Ordering::SeqCst), "two updaters at once");
        assert!(sample.samples >= 1);
        self.windows.fetch_add(1, Ordering::SeqCst);
        self.samples.fetch_add(u64::from(sample.samples), Ordering::SeqCst);
        self.updating.store(false, Ordering::SeqCst);
        limit
    }
}

fn counting_limiter() -> (Arc<Limiter<Counting>>, Arc<AtomicU32>, Arc<AtomicU64>) {
    let windows = Arc::new(AtomicU32::new(0));
    let samples = Arc::new(AtomicU64::new(0));
    let algorithm = Counting {
        updating: Arc::new(AtomicBool::new(false)),
        windows: windows.clone(),
        samples: samples.clone(),
    };
    (Arc::new(Limiter::new(algorithm).unwrap()), windows, samples)
}

/// Two samplers race to close windows: one updater at a time, and every sample lands in
/// exactly one window.
#[test]
fn window_election_loses_and_duplicates_no_sample() {
    loom::model(|| {
        let (limiter, windows, samples) = counting_limiter();
        let other = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.try_acquire_at(1).unwrap().success_at(11))
        };
        limiter.try_acquire_at(0).unwrap().success_at(10);
        other.join().unwrap();
        assert_eq!(limiter.snapshot().success, 2);
        // A last sample on its own closes whatever a losing sampler left open.
        limiter.try_acquire_at(20).unwrap().success_at(30);
        assert_eq!(samples.load(Ordering::SeqCst), 3);
        assert!(windows.load(Ordering::SeqCst) >= 2);
    });
}

/// A snapshot racing a window close (which moves samples from the open window to the closed
/// total) never counts a sample twice or misses a completed one.
#[test]
fn snapshot_vs_window_close_counts_each_sample_once() {
    loom::model(|| {
        let (limiter, _, _) = counting_limiter();
        limiter.try_acquire_at(0).unwrap().success_at(5);
        let closer = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.try_acquire_at(6).unwrap().success_at(10))
        };
        let success = limiter.snapshot().success;
        assert!((1..=2).contains(&success), "snapshot counted {success} of 2 samples");
        closer.join().unwrap();
        assert_eq!(limiter.snapshot().success, 2);
    });
}

/// Records each window's sample count, mean RTT and drop flag.
struct Composition {
    windows: Arc<loom::sync::Mutex<Vec<(u32, u64, bool)>>>,
}

impl LimitAlgorithm for Composition {
    fn initial_limit(&self) -> u32 {
        4
    }
    fn bounds(&self) -> LimitBounds {
        LimitBounds::new(1, 4).unwrap()
    }
    fn window(&self) -> WindowConfig {
        WindowConfig { min_samples: 2, ..WindowConfig::per_sample() }
    }
    fn update(&mut self, sample: &WindowSample, limit: u32) -> u32 {
        self.windows.lock().unwrap().push((sample.samples, sample.rtt, sample.did_drop));
        limit
    }
}

/// One thread owns a shard and the other adds through the shared one (loom gives limiters one
/// owned shard), with windows of two samples, so the closer's estimate and exact recount both
/// run. Every sample lands in exactly one window, and the window that takes the dropped sample
/// (the only one with a 1 ms RTT) is the window that reports the drop.
#[test]
fn sharded_samples_and_their_drop_land_in_one_window() {
    loom::model(|| {
        let windows = Arc::new(loom::sync::Mutex::new(Vec::new()));
        let limiter = Arc::new(Limiter::new(Composition { windows: windows.clone() }).unwrap());
        let other = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.try_acquire_at(0).unwrap().dropped_at(1_000_000))
        };
        limiter.try_acquire_at(0).unwrap().success_at(1_000);
        other.join().unwrap();
        // More samples from this thread, after every close so far: each close takes all that is
        // open, so within two of them a close takes the last sample recorded.
        let handed = || windows.lock().unwrap().iter().map(|w| w.0).sum::<u32>();
        let mut recorded = 2;
        while handed() < recorded && recorded < 5 {
            limiter.try_acquire_at(2_000_000).unwrap().success_at(2_001_000);
            recorded += 1;
        }
        let windows = windows.lock().unwrap();
        assert_eq!(windows.iter().map(|w| w.0).sum::<u32>(), recorded, "{windows:?}");
        for &(samples, rtt, did_drop) in windows.iter() {
            let has_drop = rtt * u64::from(samples) >= 1_000_000;
            assert_eq!(did_drop, has_drop, "{windows:?}");
        }
        let snapshot = limiter.snapshot();
        assert_eq!((snapshot.success, snapshot.dropped), (u64::from(recorded) - 1, 1));
    });
}
