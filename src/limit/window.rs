//! Lock-free sample accumulation and window election.
//!
//! Sampling must never delay admission or release. A completed call adds its sample to its
//! thread's [shard](super::shards) with plain stores (a `fetch_add` only on the shared shard of
//! threads beyond the shard count), plus a few loads of read-mostly words, and rarely a
//! `fetch_max`/`fetch_min` for the window's largest in-flight and smallest RTT (and, for a
//! percentile window, one bucket of its shard's histogram). When a window is
//! due, the sampling thread that wins the updater election ([`UpdaterCell`], one CAS, losers
//! carry on at once) takes every shard's samples since the previous close and hands the
//! aggregate to the algorithm. No sample is lost or counted twice: shards only grow, and each
//! close takes exactly the difference between what it reads now and what the previous close
//! read.

use crossbeam_utils::CachePadded;

use crate::clock::{Nanos, duration_to_nanos};
use crate::limit::histogram::{LatencyHistogram, percentile_of};
use crate::limit::shards::Shards;
use crate::limit::{LimitAlgorithm, WindowConfig, WindowSample};
use crate::sync::{AtomicU32, AtomicU64, Ordering, UpdaterCell};

/// Bit layout of [`Shard::window`](super::shards::Shard), a running total that wraps:
///
/// | bits   | field        | unit         |
/// |--------|--------------|--------------|
/// | 0..40  | `rtt_sum`    | microseconds |
/// | 40..64 | `samples`    | calls        |
///
/// Invariant: a window takes `now - taken` with wrapping arithmetic, which decodes exactly while
/// one shard's open window holds under 2^40 us of RTT (the carry out of `rtt_sum` lands in
/// `samples` and cancels in the difference) and under 2^24 samples. A sampler whose shard's open
/// window passes half of either range forces a close, so reaching the full range needs 2^39 us
/// (6 days) of summed RTT or 2^23 samples to arrive from that one thread while no close succeeds.
const SAMPLES_SHIFT: u32 = 40;
const SAMPLE_ONE: u64 = 1 << SAMPLES_SHIFT;
const RTT_SUM_MASK: u64 = SAMPLE_ONE - 1;
const FORCE_CLOSE_SAMPLES: u64 = 1 << 23;
const FORCE_CLOSE_RTT_SUM: u64 = 1 << 39;
/// One sample adds at most this many microseconds (about 71 minutes).
const RTT_CLAMP_US: u64 = (1 << 32) - 1;

/// What every sample reads and only the updater writes: one read-mostly cache line.
#[derive(Debug)]
struct OpenWindow {
    /// Earliest close of the current window; 0 at start, so the first window closes as soon as
    /// it has `min_samples` (as Netflix's `WindowedLimit`).
    next_close_at: AtomicU64,
    /// Samples the open window needs: the config's, or the algorithm's `close_after_samples`.
    min_samples: AtomicU64,
    /// Samples of calls started before this are not sampled (the algorithm's request).
    discard_started_before: AtomicU64,
    min_rtt_threshold: Nanos,
    min_duration: Nanos,
    max_duration: Nanos,
    config_min_samples: u64,
}

/// The open window's extremes (written when one moves) and the last closed window's RTTs
/// (written at each close): rarely written, read by every sample and by snapshots.
#[derive(Debug)]
struct Extremes {
    max_in_flight: AtomicU32,
    min_rtt: AtomicU64,
    /// Mean RTT of the last closed window (ns; 0 before the first).
    last_rtt: AtomicU64,
    /// Smallest RTT of the last closed window (ns; 0 before the first).
    last_min_rtt: AtomicU64,
}

/// What only the elected updater touches.
#[derive(Debug)]
struct Updater<A> {
    algorithm: A,
    /// Sum of the shards' `dropped` at the previous close: a window "did drop" if it moved since.
    drops_seen: u64,
    /// Each shard's `window` as this close read it, kept until the close is certain.
    reading: Box<[u64]>,
    /// For percentile windows: each shard histogram's buckets as the previous close took them
    /// (shard after shard), and the closing window's counts.
    histogram_taken: Box<[u32]>,
    histogram_window: Box<[u32]>,
}

/// A percentile window's histograms: one per shard (same index), each only growing, written
/// as the shard is (plain stores by an owner, `fetch_add` on the shared one).
#[derive(Debug)]
struct Percentiles {
    per_shard: Box<[LatencyHistogram]>,
    percentile: f64,
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
    /// Calls released as ignored.
    pub(crate) ignored: u64,
    /// Calls refused.
    pub(crate) rejected: u64,
    /// Mean RTT of the last closed window (ns; 0 before the first).
    pub(crate) last_rtt: Nanos,
    /// Smallest RTT of the last closed window (ns; 0 before the first).
    pub(crate) last_min_rtt: Nanos,
}

/// Sample accumulation for one limiter, the limiter's counters, and the algorithm they feed.
///
/// Memory ordering: a sample's counters are stored before its `window` total with `Release`,
/// and the updater reads each `window` with `Acquire` before the counters, so a window that
/// takes a sample also sees whether it dropped. The updater election is an acquire/release
/// pair, so each updater sees the algorithm state and the `taken` marks its predecessor left.
/// Counters are otherwise `Relaxed`: every one is self-contained. The algorithm's
/// [`WindowRequest`](crate::WindowRequest) is published with `Relaxed` stores: a sampler that
/// still sees the previous request lets at most its own sample through under the old rule
/// (Envoy's epoch check races the same way).
#[derive(Debug)]
pub(crate) struct Window<A> {
    shards: Shards,
    open: CachePadded<OpenWindow>,
    extremes: CachePadded<Extremes>,
    /// Filled only when the config asks for a percentile.
    percentiles: Option<Percentiles>,
    updater: CachePadded<UpdaterCell<Updater<A>>>,
}

impl<A: LimitAlgorithm> Window<A> {
    pub(crate) fn new(algorithm: A, config: WindowConfig) -> Self {
        let shards = Shards::new();
        let reading = vec![0; shards.len()].into_boxed_slice();
        let percentiles = config.percentile.map(|percentile| Percentiles {
            per_shard: (0..shards.len()).map(|_| LatencyHistogram::new()).collect(),
            percentile,
        });
        let buckets = percentiles.as_ref().map_or(0, |p| p.per_shard[0].len());
        let histogram_taken = vec![0; buckets * shards.len()].into_boxed_slice();
        let histogram_window = vec![0; buckets].into_boxed_slice();
        Self {
            shards,
            open: CachePadded::new(OpenWindow {
                next_close_at: AtomicU64::new(0),
                min_samples: AtomicU64::new(config.min_samples.into()),
                discard_started_before: AtomicU64::new(0),
                min_rtt_threshold: duration_to_nanos(config.min_rtt_threshold),
                min_duration: duration_to_nanos(config.min_duration),
                max_duration: duration_to_nanos(config.max_duration),
                config_min_samples: config.min_samples.into(),
            }),
            extremes: CachePadded::new(Extremes {
                max_in_flight: AtomicU32::new(0),
                min_rtt: AtomicU64::new(u64::MAX),
                last_rtt: AtomicU64::new(0),
                last_min_rtt: AtomicU64::new(0),
            }),
            percentiles,
            updater: CachePadded::new(UpdaterCell::new(Updater {
                algorithm,
                drops_seen: 0,
                reading,
                histogram_taken,
                histogram_window,
            })),
        }
    }

    /// Adds one completed call. If that makes the window due, tries to close it and calls
    /// `publish` with the algorithm and the window's aggregate (on this thread, at most once).
    #[inline(always)]
    pub(crate) fn record(
        &self,
        rtt: Nanos,
        in_flight: u32,
        dropped: bool,
        now: Nanos,
        publish: impl FnOnce(&mut A, &WindowSample),
    ) {
        let local = self.shards.local();
        if dropped {
            local.add(&local.shard.dropped, 1, Ordering::Relaxed);
        }
        let open = &*self.open;
        // The one load an algorithm's request adds to the sample path; `now - rtt` is the
        // call's start.
        let discard_before = open.discard_started_before.load(Ordering::Relaxed);
        if rtt < open.min_rtt_threshold || now.saturating_sub(rtt) < discard_before {
            local.add(&local.shard.unsampled, 1, Ordering::Relaxed);
            return;
        }
        if let Some(percentiles) = &self.percentiles {
            percentiles.per_shard[local.index].add(rtt, local.exclusive);
        }
        let extremes = &*self.extremes;
        // Extremes first, so the window this sample closes already includes them. A load before
        // each RMW: in steady state neither extreme moves, and a load costs no cache-line write.
        if in_flight > extremes.max_in_flight.load(Ordering::Relaxed) {
            extremes.max_in_flight.fetch_max(in_flight, Ordering::Relaxed);
        }
        if rtt < extremes.min_rtt.load(Ordering::Relaxed) {
            extremes.min_rtt.fetch_min(rtt, Ordering::Relaxed);
        }
        local.add(&local.shard.sampled, 1, Ordering::Relaxed);
        let sample = SAMPLE_ONE | (rtt.saturating_add(500) / 1000).min(RTT_CLAMP_US);
        // Release: the counters stored above are visible to an updater that reads this total.
        let total = local.add(&local.shard.window, sample, Ordering::Release).wrapping_add(sample);
        let open_here = total.wrapping_sub(local.shard.taken.load(Ordering::Relaxed));
        if must_force_close(open_here) || self.may_be_due(open_here >> SAMPLES_SHIFT, now) {
            self.try_close(now, publish);
        }
    }

    /// Whether the window may be due, from this shard's share of it: the time has come and, if
    /// every shard in use held as many samples as this one, the window would have enough. The
    /// shard with the most samples answers yes once the window truly has enough; the updater
    /// counts exactly before it closes anything.
    #[inline]
    fn may_be_due(&self, samples_here: u64, now: Nanos) -> bool {
        now >= self.open.next_close_at.load(Ordering::Relaxed)
            && samples_here.saturating_mul(self.shards.in_use().len() as u64)
                >= self.open.min_samples.load(Ordering::Relaxed)
    }

    /// Counts a call released as ignored.
    #[inline(always)]
    pub(crate) fn record_ignored(&self) {
        let local = self.shards.local();
        local.add(&local.shard.ignored, 1, Ordering::Relaxed);
    }

    /// Counts a refused call.
    #[inline]
    pub(crate) fn record_rejected(&self) {
        let local = self.shards.local();
        local.add(&local.shard.rejected, 1, Ordering::Relaxed);
    }

    #[cold]
    #[inline(never)]
    fn try_close(&self, now: Nanos, publish: impl FnOnce(&mut A, &WindowSample)) {
        let Some(mut updater) = self.updater.try_elect() else {
            return;
        };
        let updater = &mut *updater;
        let open = &*self.open;
        // Count exactly under the election: the estimate that led here may be high, and the
        // previous updater may have closed this window already.
        let shards = self.shards.in_use();
        let (mut samples, mut rtt_sum, mut force) = (0u64, 0u64, false);
        for (shard, reading) in shards.iter().zip(updater.reading.iter_mut()) {
            *reading = shard.window.load(Ordering::Acquire);
            let open_here = reading.wrapping_sub(shard.taken.load(Ordering::Relaxed));
            force |= must_force_close(open_here);
            samples += open_here >> SAMPLES_SHIFT;
            rtt_sum += open_here & RTT_SUM_MASK;
        }
        let due = samples >= open.min_samples.load(Ordering::Relaxed).max(1)
            && now >= open.next_close_at.load(Ordering::Relaxed);
        if !due && !force {
            return;
        }
        for (shard, reading) in shards.iter().zip(updater.reading.iter()) {
            shard.taken.store(*reading, Ordering::Relaxed);
        }

        let extremes = &*self.extremes;
        let max_in_flight = extremes.max_in_flight.swap(0, Ordering::Relaxed);
        let min_rtt = extremes.min_rtt.swap(u64::MAX, Ordering::Relaxed);
        let dropped = self.shards.sum(|shard| &shard.dropped);
        let did_drop = dropped != updater.drops_seen;
        updater.drops_seen = dropped;

        // A sample whose extremes raced into the previous window leaves these at their reset
        // values; fall back to the mean so the algorithm never sees u64::MAX.
        let mean_rtt = rtt_sum * 1000 / samples.max(1);
        let min_rtt = if min_rtt == u64::MAX { mean_rtt } else { min_rtt };
        // A single sample keeps its exact nanoseconds rather than the microsecond sum.
        let rtt = if samples == 1 { min_rtt } else { mean_rtt };
        // A histogram whose values all raced into the next window reports the mean instead.
        let percentile_rtt = match &self.percentiles {
            Some(percentiles) => {
                let window = &mut updater.histogram_window;
                window.fill(0);
                let taken = updater.histogram_taken.chunks_mut(window.len());
                for (histogram, taken) in percentiles.per_shard[..shards.len()].iter().zip(taken) {
                    histogram.take_since(taken, window);
                }
                match percentile_of(window, percentiles.percentile) {
                    drained if drained.samples > 0 => drained.percentile,
                    _ => rtt,
                }
            }
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
        open.discard_started_before.store(request.discard_started_before, Ordering::Relaxed);
        let close_at = match request.close_after_samples {
            Some(samples) => {
                open.min_samples.store(u64::from(samples.max(1)), Ordering::Relaxed);
                now
            }
            None => {
                open.min_samples.store(open.config_min_samples, Ordering::Relaxed);
                let length = min_rtt.saturating_mul(2).clamp(open.min_duration, open.max_duration);
                now.saturating_add(length)
            }
        };
        open.next_close_at.store(close_at, Ordering::Relaxed);
        extremes.last_rtt.store(rtt, Ordering::Relaxed);
        extremes.last_min_rtt.store(min_rtt, Ordering::Relaxed);
    }

    /// Running totals. Each is a sum over the shards, read without locks: exact when no call
    /// completes during the read, otherwise each within the calls completing meanwhile.
    pub(crate) fn totals(&self) -> WindowTotals {
        WindowTotals {
            sampled: self.shards.sum(|shard| &shard.sampled),
            dropped: self.shards.sum(|shard| &shard.dropped),
            unsampled: self.shards.sum(|shard| &shard.unsampled),
            ignored: self.shards.sum(|shard| &shard.ignored),
            rejected: self.shards.sum(|shard| &shard.rejected),
            last_rtt: self.extremes.last_rtt.load(Ordering::Relaxed),
            last_min_rtt: self.extremes.last_min_rtt.load(Ordering::Relaxed),
        }
    }
}

/// Whether one shard's open window (a `window` difference) is past half of either field's range.
#[inline]
fn must_force_close(open_here: u64) -> bool {
    open_here >> SAMPLES_SHIFT >= FORCE_CLOSE_SAMPLES
        || open_here & RTT_SUM_MASK >= FORCE_CLOSE_RTT_SUM
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
        // Closed by the first sample that took the sum past the mark.
        let closed_at = u64::from(seen[0].samples);
        assert!(closed_at * RTT_CLAMP_US >= FORCE_CLOSE_RTT_SUM);
        assert!((closed_at - 1) * RTT_CLAMP_US < FORCE_CLOSE_RTT_SUM);
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
    fn percentile_windows_merge_every_threads_histogram_once() {
        let config =
            WindowConfig { percentile: Some(0.9), min_samples: 10, ..WindowConfig::per_sample() };
        let w = Window::new(Recorder::default(), config);
        let ms = 1_000_000;
        // Another thread's five slower calls, then this thread's five faster ones close it.
        std::thread::scope(|scope| {
            scope.spawn(|| (6..=10).for_each(|i| record(&w, i * ms, 1, false, 0)));
        });
        (1..=5).for_each(|i| record(&w, i * ms, 1, false, 0));
        let seen = windows(&w);
        assert_eq!((seen.len(), seen[0].samples), (1, 10));
        // Rank round(10 * 0.9) = 9 of both threads' values: 9 ms within 1/32.
        assert!(seen[0].percentile_rtt.abs_diff(9 * ms) * 32 <= 9 * ms, "{:?}", seen[0]);
        // The next window holds only what came after (nine 1 ms calls, one of 100 ms), none of
        // the first window's: its p90 is 1 ms.
        (0..9).for_each(|_| record(&w, ms, 1, false, 1));
        record(&w, 100 * ms, 1, false, 1);
        let seen = windows(&w);
        assert_eq!(seen.len(), 2);
        assert!(seen[1].percentile_rtt.abs_diff(ms) * 32 <= ms, "{:?}", seen[1]);
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
