//! Latency statistics that noisy service times do not fool.
//!
//! A window RTT averaged over a number of samples rather than a number of windows:
//!
//! With noisy service times (an exponential service time's standard deviation equals its
//! mean) the mean of a ten-sample window varies by about 30 % from one window to the next, so
//! a rule that compares single windows with a baseline reads noise as queueing, and a baseline
//! learnt from the windows that look unqueued settles low. Averaging over `n` samples divides
//! that noise by `sqrt(n)` whatever the window length (200 samples: about 7 %), and costs a
//! reaction delay of about `n` samples, not of a number of windows.

/// A sample-weighted exponential average of window RTTs: a window of `k` samples moves the
/// value `min(1, k / span)` of the way to its RTT; until `span` samples have been seen it is
/// their plain mean (as Netflix's `ExpAvgMeasurement` warms up). A span of 0 passes each
/// window through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SmoothedRtt {
    span: f64,
    value: f64,
    seen: f64,
    /// How far the last window moved the average, in `(0, 1]`.
    weight: f64,
    /// The first window's RTT.
    first: f64,
}

impl SmoothedRtt {
    pub(crate) fn new(span: u32) -> Self {
        Self { span: f64::from(span), value: 0.0, seen: 0.0, weight: 1.0, first: 0.0 }
    }

    /// Adds a window of `samples` samples with RTT `rtt`; returns the average.
    pub(crate) fn add(&mut self, rtt: f64, samples: u32) -> f64 {
        let samples = f64::from(samples.max(1));
        if self.seen == 0.0 {
            self.first = rtt;
        }
        self.seen += samples;
        self.weight = samples / self.seen.min(self.span).max(samples);
        self.value += self.weight * (rtt - self.value);
        self.value
    }

    /// How far the last window moved the average, in `(0, 1]`: the share of the average that
    /// is new. A rule that acts on the average every window acts this much, or it would act
    /// again and again on the same samples.
    pub(crate) fn weight(&self) -> f64 {
        self.weight
    }

    /// Samples seen since the start (or the last restart).
    pub(crate) fn samples(&self) -> f64 {
        self.seen
    }

    /// Whether the average has seen `span` samples: before that, the first windows of a cold
    /// start (whose completions are the fastest calls) still weigh in it.
    pub(crate) fn is_warm(&self) -> bool {
        self.seen >= self.span
    }

    /// A no-queue RTT to start a baseline from once warm: the first window's RTT if it is at
    /// least half the average (a steady service: the first calls met no queue yet, the later
    /// ones may have, when the initial limit is above the service's concurrency), else the
    /// average (a noisy service: the first window held only the fastest calls).
    pub(crate) fn cold_start_baseline(&self) -> f64 {
        if self.first_is_typical() { self.first } else { self.value }
    }

    /// Whether the first window's RTT is at least half the average.
    pub(crate) fn first_is_typical(&self) -> bool {
        2.0 * self.first >= self.value
    }

    /// Restarts the average from `rtt`, as if it were its first window (the cold start's
    /// first window is kept for [`Self::cold_start_baseline`]).
    pub(crate) fn reset_to(&mut self, rtt: f64, samples: u32) {
        let first = self.first;
        self.seen = 0.0;
        self.value = 0.0;
        self.add(rtt, samples);
        self.first = first;
    }

    /// Adds the window if it lies within `(1 + band)` of the average; a first window starts it
    /// at `start` instead. Returns the average.
    pub(crate) fn learn_within(&mut self, rtt: f64, samples: u32, band: f64, start: f64) -> f64 {
        if self.seen == 0.0 {
            self.add(start, samples);
        } else if rtt <= self.value * (1.0 + band) {
            self.add(rtt, samples);
        }
        self.value
    }
}

/// Samples a learnt no-queue baseline averages over (Vegas, Envoy gradient): long enough that
/// a baseline learnt from the short RTTs within a band of it moves by a fraction of a percent
/// per window, short enough to follow a faster service within seconds at thousands of calls
/// per second.
pub(crate) const BASELINE_SAMPLES: u32 = 20_000;

/// Tells a latency baseline that is too low: the latency rule keeps cutting the limit, the
/// limit has fallen to a quarter of where the cuts began, and the short RTT has not fallen
/// below where it was then. Queueing answers such a cut (a quarter of the in-flight waits a
/// quarter as long); an RTT that does not is the service's own, and the baseline should
/// restart from it. The first windows of a cold start, whose completions are the fastest
/// calls, seed baselines this low under noisy service times.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct UnansweredCuts {
    /// `(limit, short RTT)` at the first cut of the current run.
    began: Option<(f64, f64)>,
}

impl UnansweredCuts {
    /// Records a window; returns whether the baseline should restart from `short`.
    pub(crate) fn observe(&mut self, cutting: bool, limit: f64, short: f64) -> bool {
        match self.began {
            _ if !cutting => self.began = None,
            None => self.began = Some((limit, short)),
            Some((from, rtt)) if limit <= from / 4.0 && short >= rtt => {
                self.began = None;
                return true;
            }
            Some(_) => {}
        }
        false
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn weighs_windows_by_their_samples() {
        let mut s = SmoothedRtt::new(100);
        assert_eq!(s.add(10.0, 10), 10.0);
        assert_eq!(s.add(40.0, 20), 30.0, "the plain mean while warming up");
        assert_eq!(s.add(30.0, 70), 30.0);
        assert_eq!(s.add(40.0, 50), 35.0, "then each window weighs samples / span");
        assert_eq!(s.add(0.0, 200), 0.0);
        let mut off = SmoothedRtt::new(0);
        assert_eq!((off.add(3.0, 1), off.add(7.0, 1)), (3.0, 7.0));
    }

    #[test]
    fn cuts_the_rtt_does_not_answer_are_told() {
        let mut c = UnansweredCuts::default();
        assert!(!c.observe(true, 100.0, 10.0));
        assert!(!c.observe(true, 50.0, 12.0));
        assert!(!c.observe(true, 25.0, 9.0), "the RTT fell");
        assert!(c.observe(true, 25.0, 10.0));
        assert!(!c.observe(true, 20.0, 10.0), "a new run begins");
        assert!(!c.observe(false, 5.0, 10.0), "a window without a cut ends the run");
        assert!(!c.observe(true, 4.0, 10.0));
    }
}
