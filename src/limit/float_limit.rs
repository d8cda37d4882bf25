//! The float limit behind the integer one, as the latency-based algorithms keep it.
//!
//! Gradient2 and Vegas move a float estimate `L` and publish `trunc(L)` clamped to their bounds
//! (Netflix's `(int)` cast); they count updates that leave the limit at its minimum (for
//! re-baselining), and pick up a limit a user set by hand instead of overwriting it.

use crate::limit::LimitBounds;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FloatLimit {
    /// The float limit; the published limit is its truncation.
    pub(crate) estimate: f64,
    /// What the algorithm last returned.
    pub(crate) published: u32,
    /// Updates in a row that published the minimum.
    pub(crate) windows_at_min: u32,
}

impl FloatLimit {
    pub(crate) fn new(initial: u32) -> Self {
        Self { estimate: f64::from(initial), published: initial, windows_at_min: 0 }
    }

    /// Starts an update from `limit`, the limit in force: one other than the last published was
    /// set by hand, and the estimate restarts from it.
    pub(crate) fn resync(&mut self, limit: u32) {
        if limit != self.published {
            self.estimate = f64::from(limit);
        }
    }

    /// Whether a window whose largest in-flight was `max_in_flight` left the limit unused:
    /// below `utilisation` of the estimate (Netflix: `inflight < L / 2`; halving and multiplying
    /// by 0.5 are both exact). The share is capped at `limit`, the limit in force, which
    /// in-flight cannot pass: above half, the share of a float estimate can exceed its
    /// truncation (0.8 x 3.9 > 3) and hold a full limit for good.
    pub(crate) fn is_app_limited(&self, max_in_flight: u32, utilisation: f64, limit: u32) -> bool {
        f64::from(max_in_flight) < (self.estimate * utilisation).min(f64::from(limit))
    }

    /// Takes `estimate` and returns the limit to publish.
    pub(crate) fn publish(&mut self, estimate: f64, bounds: LimitBounds) -> u32 {
        self.estimate = estimate;
        // `as` truncates toward zero (and saturates), as Java's `(int)` cast.
        self.published = bounds.clamp(estimate as u32);
        if self.published == bounds.min {
            self.windows_at_min = self.windows_at_min.saturating_add(1);
        } else {
            self.windows_at_min = 0;
        }
        self.published
    }
}
