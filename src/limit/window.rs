//! Lock-free sample accumulation and window election.
//!
//! Sampling must never delay admission or release. A completed call adds its sample to one
//! packed word with a single `fetch_add` (plus a load, and rarely a `fetch_max`/`fetch_min`, for
//! the window's largest in-flight and smallest RTT). When a window is due, the sampling thread
//! that wins the updater election ([`UpdaterCell`], one CAS, losers carry on at once) swaps the
//! accumulators out and hands the aggregate to the algorithm. No sample is lost or counted twice:
//! the swap moves every sample in the word at that instant into exactly one window.

use crossbeam_utils::CachePadded;

use crate::clock::{Nanos, duration_to_nanos};
use crate::limit::histogram::LatencyHistogram;
use crate::limit::{LimitAlgorithm, WindowConfig, WindowSample};
use crate::sync::{AtomicU32, AtomicU64, Ordering, UpdaterCell, fence, spin_hint};

/// Bit layout of [`Accumulators::packed`]:
///
/// | bits   | field        | unit         |
/// |--------|--------------|--------------|
/// | 0..40  | `rtt_sum`    | microseconds |
/// | 40..64 | `samples`    | calls        |
///
/// Invariant: both fields hold only the current window, and a window is closed before either
/// field passes half its range (a sampler that sees `samples >= 2^23` or `rtt_sum >= 2^39`
/// forces it closed), so a carry from `rtt_sum` into `samples` needs 2^39 us (6 days) of
/// summed RTT to arrive after that mark and before the swap.
const SAMPLES_SHIFT: u32 = 40;
const SAMPLE_ONE: u64 = 1 << SAMPLES_SHIFT;
const RTT_SUM_MASK: u64 = SAMPLE_ONE - 1;
const FORCE_CLOSE_SAMPLES: u64 = 1 << 23;
const FORCE_CLOSE_RTT_SUM: u64 = 1 << 39;
/// One sample adds at most this many microseconds (about 71 minutes).
const RTT_CLAMP_US: u64 = (1 << 32) - 1;
/// Seqlock read attempts in [`Window::sampled_total`] before falling back to a plain read.
const SNAPSHOT_RETRIES: u32 = 64;

/// What samplers write: kept on its own cache line, away from the admission word.
#[derive(Debug)]
struct Accumulators {
    /// `(samples, rtt_sum)`; see the table above.
    packed: AtomicU64,
    max_in_flight: AtomicU32,
    min_rtt: AtomicU64,
}

/// What only the elected updater touches.
#[derive(Debug)]
struct Updater<A> {
    algorithm: A,
    /// `Window::dropped` at the previous close: a window "did drop" if it moved since.
    drops_seen: u64,
}

/// Running totals, for [`crate::LimiterSnapshot`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowTotals {
    /// Calls whose sample entered a window (successes and drops).
    pub(crate) sampled: u64,
    /// Calls completed as dropped.
    pub(crate) dropped: u64,
    /// Successes and drops below the RTT threshold, not sampled.
    pub(crate) unsampled: u64,
    /// Mean RTT of the last closed window (ns; 0 before the first).
    pub(crate) last_rtt: Nanos,
    /// Smallest RTT of the last closed window (ns; 0 before the first).
    pub(crate) last_min_rtt: Nanos,
}

/// Sample accumulation for one limiter, and the algorithm it feeds.
///
/// Memory ordering: accumulation is `Relaxed` (every field is self-contained); the updater
/// election is an acquire/release pair, so each updater sees the algorithm state its
/// predecessor left. [`Window::sampled_total`] reads through a seqlock on `epoch`. The
/// algorithm's [`WindowRequest`](crate::WindowRequest) is published with `Relaxed` stores: a
/// sampler that still sees the previous request lets at most its own sample through under the
/// old rule (Envoy's epoch check races the same way).
#[derive(Debug)]
pub(crate) struct Window<A> {
    accumulators: CachePadded<Accumulators>,
    /// Earliest close of the current window; 0 at start, so the first window closes as soon as
    /// it has `min_samples` (as Netflix's `WindowedLimit`).
    next_close_at: AtomicU64,
    /// Seqlock over `(flushed_samples, packed)`: odd while a close moves samples between them.
    epoch: AtomicU64,
    flushed_samples: AtomicU64,
    dropped: AtomicU64,
    unsampled: AtomicU64,
    last_rtt: AtomicU64,
    last_min_rtt: AtomicU64,
    /// Samples the open window needs: the config's, or the algorithm's `close_after_samples`.
    min_samples: AtomicU64,
    /// Samples of calls started before this are not sampled (the algorithm's request).
    discard_started_before: AtomicU64,
    /// Filled only when the config asks for a percentile, with that percentile.
    histogram: Option<(LatencyHistogram, f64)>,
    min_duration: Nanos,
    max_duration: Nanos,
    config_min_samples: u64,
    min_rtt_threshold: Nanos,
    updater: UpdaterCell<Updater<A>>,
}

impl<A: LimitAlgorithm> Window<A> {
    pub(crate) fn new(algorithm: A, config: WindowConfig) -> Self {
        Self {
            accumulators: CachePadded::new(Accumulators {
                packed: AtomicU64::new(0),
                max_in_flight: AtomicU32::new(0),
                min_rtt: AtomicU64::new(u64::MAX),
            }),
            next_close_at: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            flushed_samples: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            unsampled: AtomicU64::new(0),
            last_rtt: AtomicU64::new(0),
            last_min_rtt: AtomicU64::new(0),
            min_samples: AtomicU64::new(config.min_samples.into()),
            discard_started_before: AtomicU64::new(0),
            histogram: config.percentile.map(|p| (LatencyHistogram::new(), p)),
            min_duration: duration_to_nanos(config.min_duration),
            max_duration: duration_to_nanos(config.max_duration),
            config_min_samples: config.min_samples.into(),
            min_rtt_threshold: duration_to_nanos(config.min_rtt_threshold),
            updater: UpdaterCell::new(Updater { algorithm, drops_seen: 0 }),
        }
    }

    /// Adds one completed call. If that makes the window due, tries to close it and calls
    /// `publish` with the algorithm and the window's aggregate (on this thread, at most once).
    #[inline]
    pub(crate) fn record(
        &self,
        rtt: Nanos,
        in_flight: u32,
        dropped: bool,
        now: Nanos,
        publish: impl FnOnce(&mut A, &WindowSample),
    ) {
        if dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // The one load an algorithm's request adds to the sample path; `now - rtt` is the
        // call's start.
        let discard_before = self.discard_started_before.load(Ordering::Relaxed);
        if rtt < self.min_rtt_threshold || now.saturating_sub(rtt) < discard_before {
            self.record_unsampled();
            return;
        }
        if let Some((histogram, _)) = &self.histogram {
            histogram.record(rtt);
        }
        let acc = &*self.accumulators;
        // Extremes first, so the window this sample closes already includes them. A load before
        // each RMW: in steady state neither extreme moves, and a load costs no cache-line write.
        if in_flight > acc.max_in_flight.load(Ordering::Relaxed) {
            acc.max_in_flight.fetch_max(in_flight, Ordering::Relaxed);
        }
        if rtt < acc.min_rtt.load(Ordering::Relaxed) {
            acc.min_rtt.fetch_min(rtt, Ordering::Relaxed);
        }
        let rtt_us = (rtt.saturating_add(500) / 1000).min(RTT_CLAMP_US);
        let prev = acc.packed.fetch_add(SAMPLE_ONE | rtt_us, Ordering::Relaxed);
        let samples = (prev >> SAMPLES_SHIFT) + 1;
        let due = samples >= self.min_samples.load(Ordering::Relaxed)
            && now >= self.next_close_at.load(Ordering::Relaxed);
        if due || must_force_close(prev) {
            self.try_close(now, publish);
        }
    }

    #[cold]
    fn record_unsampled(&self) {
        self.unsampled.fetch_add(1, Ordering::Relaxed);
    }

    #[cold]
    #[inline(never)]
    fn try_close(&self, now: Nanos, publish: impl FnOnce(&mut A, &WindowSample)) {
        let Some(mut updater) = self.updater.try_elect() else {
            return;
        };
        let acc = &*self.accumulators;
        // Re-check under the election: the previous updater may have closed this window already.
        let packed = acc.packed.load(Ordering::Relaxed);
        let due = packed >> SAMPLES_SHIFT >= self.min_samples.load(Ordering::Relaxed)
            && now >= self.next_close_at.load(Ordering::Relaxed);
        if !due && !must_force_close(packed) {
            return;
        }

        // Seqlock write: a reader that overlaps the move of samples from `packed` to
        // `flushed_samples` sees an odd or changed epoch and retries.
        let epoch = self.epoch.load(Ordering::Relaxed);
        self.epoch.store(epoch.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let packed = acc.packed.swap(0, Ordering::Relaxed);
        let samples = packed >> SAMPLES_SHIFT;
        let flushed = self.flushed_samples.load(Ordering::Relaxed);
        self.flushed_samples.store(flushed + samples, Ordering::Relaxed);
        self.epoch.store(epoch.wrapping_add(2), Ordering::Release);

        let max_in_flight = acc.max_in_flight.swap(0, Ordering::Relaxed);
        let min_rtt = acc.min_rtt.swap(u64::MAX, Ordering::Relaxed);
        let dropped = self.dropped.load(Ordering::Relaxed);
        let did_drop = dropped != updater.drops_seen;
        updater.drops_seen = dropped;

        // A sample whose extremes raced into the previous window leaves these at their reset
        // values; fall back to the mean so the algorithm never sees u64::MAX.
        let mean_rtt = (packed & RTT_SUM_MASK) * 1000 / samples.max(1);
        let min_rtt = if min_rtt == u64::MAX { mean_rtt } else { min_rtt };
        // A single sample keeps its exact nanoseconds rather than the microsecond sum.
        let rtt = if samples == 1 { min_rtt } else { mean_rtt };
        // A histogram whose values all raced into the next window reports the mean instead.
        let percentile_rtt = match &self.histogram {
            Some((histogram, p)) => match histogram.drain_percentile(*p) {
                drained if drained.samples > 0 => drained.percentile,
                _ => rtt,
            },
            None => rtt,
        };
        let sample = WindowSample {
            now,
            samples: u32::try_from(samples).unwrap_or(u32::MAX),
            rtt,
            min_rtt,
            max_in_flight,
            did_drop,
            percentile_rtt,
        };
        publish(&mut updater.algorithm, &sample);

        let request = updater.algorithm.next_window();
        self.discard_started_before.store(request.discard_started_before, Ordering::Relaxed);
        let close_at = match request.close_after_samples {
            Some(samples) => {
                self.min_samples.store(u64::from(samples.max(1)), Ordering::Relaxed);
                now
            }
            None => {
                self.min_samples.store(self.config_min_samples, Ordering::Relaxed);
                let length = min_rtt.saturating_mul(2).clamp(self.min_duration, self.max_duration);
                now.saturating_add(length)
            }
        };
        self.next_close_at.store(close_at, Ordering::Relaxed);
        self.last_rtt.store(rtt, Ordering::Relaxed);
        self.last_min_rtt.store(min_rtt, Ordering::Relaxed);
    }

    /// Calls ever sampled: closed windows plus the open one, read consistently unless an updater
    /// stalls mid-close for all of [`SNAPSHOT_RETRIES`] attempts.
    fn sampled_total(&self) -> u64 {
        let read = || {
            let flushed = self.flushed_samples.load(Ordering::Relaxed);
            let open = self.accumulators.packed.load(Ordering::Relaxed) >> SAMPLES_SHIFT;
            flushed + open
        };
        for _ in 0..SNAPSHOT_RETRIES {
            let before = self.epoch.load(Ordering::Acquire);
            if before & 1 == 0 {
                let total = read();
                fence(Ordering::Acquire);
                if self.epoch.load(Ordering::Relaxed) == before {
                    return total;
                }
            }
            spin_hint();
        }
        read()
    }

    pub(crate) fn totals(&self) -> WindowTotals {
        WindowTotals {
            sampled: self.sampled_total(),
            dropped: self.dropped.load(Ordering::Relaxed),
            unsampled: self.unsampled.load(Ordering::Relaxed),
            last_rtt: self.last_rtt.load(Ordering::Relaxed),
            last_min_rtt: self.last_min_rtt.load(Ordering::Relaxed),
        }
    }
}

#[inline]
fn must_force_close(packed: u64) -> bool {
    packed >> SAMPLES_SHIFT >= FORCE_CLOSE_SAMPLES || packed & RTT_SUM_MASK >= FORCE_CLOSE_RTT_SUM
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::limit::{LimitBounds, WindowRequest};

    /// Records every window it is handed.
    #[derive(Debug, Default)]
    struct Recorder {
        seen: Vec<WindowSample>,
        window: Option<WindowConfig>,
        request: WindowRequest,
    }

    impl LimitAlgorithm for Recorder {
        fn initial_limit(&self) -> u32 {
            10
        }
        fn bounds(&self) -> LimitBounds {
            LimitBounds::new(1, 100).unwrap()
        }
        fn window(&self) -> WindowConfig {
            self.window.unwrap_or_else(WindowConfig::per_sample)
        }
        fn update(&mut self, sample: &WindowSample, limit: u32) -> u32 {
            self.seen.push(*sample);
            limit
        }
        fn next_window(&self) -> WindowRequest {
            self.request
        }
    }

    fn windows(w: &Window<Recorder>) -> Vec<WindowSample> {
        w.updater.try_elect().unwrap().algorithm.seen.clone()
    }

    fn record(w: &Window<Recorder>, rtt: Nanos, in_flight: u32, dropped: bool, now: Nanos) {
        w.record(rtt, in_flight, dropped, now, |alg, s| {
            alg.update(s, 0);
        });
    }

    #[test]
    fn per_sample_window_hands_over_each_sample_exactly() {
        let w = Window::new(Recorder::default(), WindowConfig::per_sample());
        record(&w, 1_234_567, 3, false, 10);
        record(&w, 7, 1, true, 20);
        let seen = windows(&w);
        assert_eq!(
            seen,
            vec![
                WindowSample::single(10, 1_234_567, 3, false),
                WindowSample::single(20, 7, 1, true)
            ]
        );
        assert_eq!(w.totals().sampled, 2);
        assert_eq!(w.totals().dropped, 1);
    }

    #[test]
    fn window_waits_for_duration_and_min_samples() {
        let config = WindowConfig {
            min_duration: Duration::from_millis(100),
            max_duration: Duration::from_secs(1),
            min_samples: 3,
            min_rtt_threshold: Duration::ZERO,
            percentile: None,
        };
        let w = Window::new(Recorder::default(), config);
        let ms = 1_000_000;
        // The first window closes at its third sample (next_close_at starts at 0).
        record(&w, 2 * ms, 4, false, 0);
        record(&w, 4 * ms, 9, false, 1);
        assert!(windows(&w).is_empty());
        record(&w, 6 * ms, 2, false, 2);
        let seen = windows(&w);
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].samples, seen[0].rtt, seen[0].min_rtt), (3, 4 * ms, 2 * ms));
        assert_eq!(seen[0].max_in_flight, 9);
        assert!(!seen[0].did_drop);
        // Next window: clamp(2 x 2 ms, 100 ms, 1 s) = 100 ms after t = 2.
        for t in 3..20 {
            record(&w, ms, 1, t == 5, t);
        }
        assert_eq!(windows(&w).len(), 1);
        record(&w, ms, 1, false, 2 + 100 * ms);
        let seen = windows(&w);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].samples, 18);
        assert!(seen[1].did_drop);
        assert_eq!(w.totals().sampled, 21);
    }

    #[test]
    fn samples_below_threshold_are_counted_but_not_sampled() {
        let w = Window::new(Recorder::default(), WindowConfig::netflix());
        record(&w, 99_999, 1, false, 0);
        record(&w, 50, 1, true, 0);
        let totals = w.totals();
        assert_eq!((totals.sampled, totals.unsampled, totals.dropped), (0, 2, 1));
    }

    #[test]
    fn huge_windows_are_forced_closed_before_the_packed_word_overflows() {
        let w = Window::new(Recorder::default(), WindowConfig::never());
        // Each sample adds the clamp (about 71 minutes); 2^39 us is reached at the 128th.
        let huge = u64::MAX / 2;
        for _ in 0..200 {
            record(&w, huge, 1, false, 0);
        }
        let seen = windows(&w);
        assert_eq!(seen.len(), 1);
        // Closed by the first sample that found the sum past the mark.
        let closed_at = u64::from(seen[0].samples);
        assert!((closed_at - 1) * RTT_CLAMP_US >= FORCE_CLOSE_RTT_SUM);
        assert!((closed_at - 2) * RTT_CLAMP_US < FORCE_CLOSE_RTT_SUM);
        assert_eq!(w.totals().sampled, 200);
    }

    #[test]
    fn percentile_windows_report_the_histogram_percentile() {
        let config = WindowConfig { percentile: Some(0.9), ..WindowConfig::valve_default() };
        let w = Window::new(Recorder::default(), config);
        let ms = 1_000_000;
        for i in 1..=10 {
            record(&w, i * ms, 1, false, 0);
        }
        let seen = windows(&w);
        // Rank round(10 * 0.9) = 9: 9 ms within 1/32; the mean stays the mean.
        assert!(seen[0].percentile_rtt.abs_diff(9 * ms) * 32 <= 9 * ms, "{:?}", seen[0]);
        assert_eq!(seen[0].rtt, 5_500_000);
        // Without a percentile it is the mean.
        let w = Window::new(Recorder::default(), WindowConfig::valve_default());
        for i in 1..=10 {
            record(&w, i * ms, 1, false, 0);
        }
        assert_eq!(windows(&w)[0].percentile_rtt, 5_500_000);
    }

    #[test]
    fn algorithm_requests_discard_old_calls_and_close_after_a_count() {
        let request = WindowRequest { discard_started_before: 1_000, close_after_samples: Some(3) };
        let config =
            WindowConfig { min_duration: Duration::from_secs(10), ..WindowConfig::valve_default() };
        let w = Window::new(Recorder { request, ..Recorder::default() }, config);
        // The first window closes by the config (10 samples, next_close_at 0).
        for _ in 0..10 {
            record(&w, 10, 1, false, 100);
        }
        assert_eq!(windows(&w).len(), 1);
        // Started at 2_000 - 1_500 = 500 < 1_000: discarded.
        record(&w, 1_500, 1, false, 2_000);
        assert_eq!(w.totals().unsampled, 1);
        // The next window closes at its third kept sample, long before 10 s.
        record(&w, 10, 1, false, 2_000);
        record(&w, 10, 1, false, 2_001);
        assert_eq!(windows(&w).len(), 1);
        record(&w, 10, 1, false, 2_002);
        let seen = windows(&w);
        assert_eq!((seen.len(), seen[1].samples), (2, 3));
    }
}
