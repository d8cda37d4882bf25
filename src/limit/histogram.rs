//! A lock-free, fixed-bucket, log-linear latency histogram for percentile windows.
//!
//! A sampler records a value with one `fetch_add` on its bucket; nothing allocates after
//! construction. A user drains it (swaps every bucket to zero) and reads a percentile from the
//! drained counts. A limiter's percentile window keeps one histogram per thread shard instead,
//! written with plain stores by its owner and never drained: its updater takes each bucket's
//! growth since the previous close.
//!
//! # Buckets and error bound
//!
//! Values are nanoseconds. Values below 16 have a bucket each (exact). Above, every power of two
//! `[2^e, 2^(e+1))` is split into 16 equal sub-buckets of width `2^(e-4)` (HdrHistogram's
//! layout with 4 sub-bucket bits). A percentile is reported as its bucket's midpoint, so the
//! reported value `r` of a true value `v` satisfies `|r - v| <= v / 32`: a relative error of at
//! most 3.125 %. Values at or above [`MAX_TRACKED`] (about 18 minutes) are counted in the last
//! bucket. Envoy's circllhist keeps two significant decimal digits (relative error up to 5 %).
//!
//! # Memory ordering
//!
//! Every bucket is an independent counter: recording and draining are `Relaxed`. A drain swaps
//! each bucket to zero, so every recorded value is counted by exactly one drain (the one whose
//! swap of its bucket comes after the record), never lost and never counted twice; a value
//! recorded while a drain runs may land in that drain or the next.

use crate::clock::Nanos;
use crate::sync::{AtomicU32, Ordering};

const SUB_BUCKET_BITS: u32 = 4;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;
/// Largest exponent tracked: values up to `2^40 - 1` ns (about 18 minutes).
const TOP_EXPONENT: u32 = 39;
/// Values at or above this are counted in the last bucket.
pub const MAX_TRACKED: Nanos = 1 << (TOP_EXPONENT + 1);
/// Buckets of a full histogram.
const BUCKETS: usize = index_of(MAX_TRACKED - 1) + 1;

/// Bucket index of `value` (already below [`MAX_TRACKED`]).
const fn index_of(value: Nanos) -> usize {
    if value < SUB_BUCKETS {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BUCKET_BITS;
    let sub = (value >> shift) - SUB_BUCKETS;
    (SUB_BUCKETS + (shift as u64) * SUB_BUCKETS + sub) as usize
}

/// Midpoint of bucket `index`: the value a percentile in that bucket reports.
fn midpoint_of(index: usize) -> Nanos {
    let index = index as u64;
    if index < SUB_BUCKETS {
        return index;
    }
    let shift = (index - SUB_BUCKETS) / SUB_BUCKETS;
    let sub = (index - SUB_BUCKETS) % SUB_BUCKETS;
    let lower = (SUB_BUCKETS + sub) << shift;
    lower + ((1u64 << shift) >> 1)
}

/// A lock-free latency histogram. See the module documentation for its error bound.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Box<[AtomicU32]>,
}

/// What [`LatencyHistogram::drain_percentile`] took out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Values drained.
    pub samples: u64,
    /// The requested percentile of them (bucket midpoint); 0 when `samples` is 0.
    pub percentile: Nanos,
}

impl LatencyHistogram {
    /// A histogram for values up to [`MAX_TRACKED`] (592 buckets, 2.3 KiB).
    ///
    /// Under loom (`--cfg valve_loom`) it has the 16 exact buckets only, so models of the
    /// window explore a handful of atomics instead of 592.
    pub fn new() -> Self {
        #[cfg(not(valve_loom))]
        {
            Self::with_buckets(BUCKETS)
        }
        #[cfg(valve_loom)]
        {
            Self::with_max_value(SUB_BUCKETS - 1)
        }
    }

    /// A histogram whose largest bucket holds `max_value` and everything above it: fewer
    /// buckets (a loom model uses a handful), same layout and error bound below `max_value`.
    pub fn with_max_value(max_value: Nanos) -> Self {
        Self::with_buckets(index_of(max_value.min(MAX_TRACKED - 1)) + 1)
    }

    fn with_buckets(count: usize) -> Self {
        Self { buckets: (0..count).map(|_| AtomicU32::new(0)).collect() }
    }

    /// Counts one value. One `fetch_add`; never allocates or panics.
    #[inline]
    pub fn record(&self, value: Nanos) {
        self.add(value, false);
    }

    /// Counts one value; `exclusive`: the caller is this histogram's only writer, so a plain
    /// load and store do (a window's per-thread histograms, see `shards.rs`).
    #[inline]
    pub(crate) fn add(&self, value: Nanos, exclusive: bool) {
        let last = self.buckets.len() - 1;
        let index = index_of(value.min(MAX_TRACKED - 1)).min(last);
        if let Some(bucket) = self.buckets.get(index) {
            // A bucket wraps only after 2^32 values; readers take differences modulo 2^32
            // over windows that are forced closed long before (2^23 samples).
            if exclusive {
                bucket.store(bucket.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            } else {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Buckets in this histogram.
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Adds to `window` what each bucket gained since `taken`, and moves `taken` up to the
    /// buckets' counts now: for histograms that only grow, read by one thread at a time.
    pub(crate) fn take_since(&self, taken: &mut [u32], window: &mut [u32]) {
        for ((bucket, taken), window) in self.buckets.iter().zip(taken).zip(window) {
            let now = bucket.load(Ordering::Relaxed);
            *window = window.wrapping_add(now.wrapping_sub(*taken));
            *taken = now;
        }
    }

    /// Empties the histogram and returns the `p`-th percentile (`p` in `(0, 1]`) of what it
    /// held: the value of rank `max(1, round(samples * p))` in ascending order, Netflix's
    /// `PercentileSampleWindow` rank.
    pub fn drain_percentile(&self, p: f64) -> Drained {
        let mut counts = [0u32; BUCKETS];
        for (count, bucket) in counts.iter_mut().zip(self.buckets.iter()) {
            *count = bucket.swap(0, Ordering::Relaxed);
        }
        percentile_of(&counts[..self.buckets.len()], p)
    }
}

/// The `p`-th percentile of values counted per bucket (`counts[i]` in bucket `i`), by
/// [`LatencyHistogram::drain_percentile`]'s rank.
pub(crate) fn percentile_of(counts: &[u32], p: f64) -> Drained {
    let samples: u64 = counts.iter().map(|&count| u64::from(count)).sum();
    if samples == 0 {
        return Drained { samples, percentile: 0 };
    }
    let rank = ((samples as f64 * p).round() as u64).clamp(1, samples);
    let mut seen = 0u64;
    for (index, &count) in counts.iter().enumerate() {
        seen += u64::from(count);
        if seen >= rank {
            return Drained { samples, percentile: midpoint_of(index) };
        }
    }
    Drained { samples, percentile: midpoint_of(counts.len().saturating_sub(1)) }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn layout_is_exact_below_sixteen_and_bounded_above() {
        assert_eq!(BUCKETS, 592);
        for v in 0..16 {
            assert_eq!(midpoint_of(index_of(v)), v);
        }
        // Every value maps to a bucket whose midpoint is within 1/32 of it.
        let mut v = 16u64;
        while v < MAX_TRACKED {
            for probe in [v, v + v / 7, v + v / 3, 2 * v - 1] {
                let mid = midpoint_of(index_of(probe));
                assert!(mid.abs_diff(probe) * 32 <= probe, "{probe} -> {mid}");
            }
            v *= 2;
        }
        assert_eq!(index_of(MAX_TRACKED - 1), BUCKETS - 1);
        // Buckets are contiguous and increasing.
        assert_eq!(index_of(15) + 1, index_of(16));
        assert_eq!(index_of(31) + 1, index_of(32));
        assert_eq!(index_of(33), index_of(32), "width 2 from 32");
    }

    #[test]
    fn percentile_uses_netflix_rank_and_drains() {
        let h = LatencyHistogram::new();
        assert_eq!(h.drain_percentile(0.5), Drained { samples: 0, percentile: 0 });
        for ms in 1..=10u64 {
            h.record(ms * 1_000_000);
        }
        // round(10 * 0.5) = 5th value: 5 ms, reported within 1/32.
        let d = h.drain_percentile(0.5);
        assert_eq!(d.samples, 10);
        assert!(d.percentile.abs_diff(5_000_000) * 32 <= 5_000_000, "{d:?}");
        assert_eq!(h.drain_percentile(0.5).samples, 0, "drained");
        h.record(u64::MAX);
        h.record(7);
        assert_eq!(h.drain_percentile(1.0).percentile, midpoint_of(BUCKETS - 1));
        let small = LatencyHistogram::with_max_value(7);
        small.record(3);
        small.record(1_000);
        assert_eq!(small.drain_percentile(1.0), Drained { samples: 2, percentile: 7 });
    }
}
