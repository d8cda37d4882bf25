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
