//! loom models of the latency-limit protocols: the percentile histogram's record/drain and the
//! min-RTT epoch an algorithm publishes to the window.

use loom::sync::Arc;
use loom::thread;
use valve::{
    LatencyHistogram, LimitAlgorithm, LimitBounds, Limiter, WindowConfig, WindowRequest,
    WindowSample,
};

/// Two samplers record while a third drains: every value is counted by exactly one drain.
#[test]
fn histogram_drain_never_loses_or_double_counts() {
    loom::model(|| {
        let histogram = Arc::new(LatencyHistogram::with_max_value(3));
        let samplers: Vec<_> = [1u64, 3]
            .into_iter()
            .map(|value| {
                let histogram = Arc::clone(&histogram);
                thread::spawn(move || histogram.record(value))
            })
            .collect();
        let during = histogram.drain_percentile(1.0).samples;
        for sampler in samplers {
            sampler.join().unwrap();
        }
        let after = histogram.drain_percentile(1.0);
        assert_eq!(during + after.samples, 2);
        if during == 0 {
            // Both values drained together: the maximum is 3, exact in this range.
            assert_eq!(after.percentile, 3);
        }
    });
}

/// Starts a "measurement" at the first update: calls started before it must not be sampled
/// afterwards, and every call is either sampled or counted as unsampled.
struct EpochAtFirstUpdate {
    epoch: Option<u64>,
}

impl LimitAlgorithm for EpochAtFirstUpdate {
    fn initial_limit(&self) -> u32 {
        4
    }
    fn bounds(&self) -> LimitBounds {
        LimitBounds::new(1, 4).unwrap()
    }
    fn window(&self) -> WindowConfig {
        WindowConfig { percentile: Some(0.5), ..WindowConfig::per_sample() }
    }
    fn update(&mut self, sample: &WindowSample, limit: u32) -> u32 {
        self.epoch.get_or_insert(sample.now);
        limit
    }
    fn next_window(&self) -> WindowRequest {
        WindowRequest { discard_started_before: self.epoch.unwrap_or(0), close_after_samples: None }
    }
}

#[test]
fn min_rtt_epoch_discards_older_calls_and_balances_counts() {
    loom::model(|| {
        let limiter = Arc::new(Limiter::new(EpochAtFirstUpdate { epoch: None }).unwrap());
        // Both calls start at 0; the first to complete (at 10) closes a window and publishes
        // epoch 10, so the other (started before it) is sampled only if it raced the store.
        let finishers: Vec<_> = (0..2)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                let permit_start = 0;
                thread::spawn(move || {
                    let permit = limiter.try_acquire_at(permit_start).unwrap();
                    permit.success_at(10);
                })
            })
            .collect();
        for finisher in finishers {
            finisher.join().unwrap();
        }
        // A call after the epoch is always sampled.
        limiter.try_acquire_at(20).unwrap().success_at(30);
        let snapshot = limiter.snapshot();
        assert_eq!(snapshot.in_flight, 0);
        assert_eq!(snapshot.admitted, 3);
        assert_eq!(snapshot.success, 3);
    });
}

/// Hands each window's sample count and percentile to a shared list.
struct Percentiles {
    windows: Arc<loom::sync::Mutex<Vec<(u32, u64)>>>,
}

impl LimitAlgorithm for Percentiles {
    fn initial_limit(&self) -> u32 {
        4
    }
    fn bounds(&self) -> LimitBounds {
        LimitBounds::new(1, 4).unwrap()
    }
    fn window(&self) -> WindowConfig {
        WindowConfig { percentile: Some(1.0), ..WindowConfig::per_sample() }
    }
    fn update(&mut self, sample: &WindowSample, limit: u32) -> u32 {
        self.windows.lock().unwrap().push((sample.samples, sample.percentile_rtt));
        limit
    }
}

/// A percentile window's per-thread histograms (one thread owns its shard, the other shares
/// one, as loom gives limiters one owned shard): every sample lands in one window and every
/// histogram value is taken by one close. A value whose bucket a close reads before its count
/// (the sampler records the bucket first) is reported by that close; the next window, whose
/// histogram then holds nothing, reports its mean instead, as the window documents.
#[test]
fn sharded_histograms_hand_each_value_to_one_window() {
    loom::model(|| {
        let windows = Arc::new(loom::sync::Mutex::new(Vec::new()));
        let limiter = Arc::new(Limiter::new(Percentiles { windows: windows.clone() }).unwrap());
        let other = {
            let limiter = Arc::clone(&limiter);
            thread::spawn(move || limiter.try_acquire_at(0).unwrap().success_at(9))
        };
        limiter.try_acquire_at(0).unwrap().success_at(3);
        other.join().unwrap();
        // A last sample closes whatever a losing sampler left open.
        limiter.try_acquire_at(20).unwrap().success_at(21);
        let windows = windows.lock().unwrap();
        assert_eq!(windows.iter().map(|w| w.0).sum::<u32>(), 3, "{windows:?}");
        // The 9 ns value is taken by exactly one close, whose p100 it then is: never lost.
        assert!(windows.iter().any(|&(_, p)| p == 9), "{windows:?}");
    });
}
