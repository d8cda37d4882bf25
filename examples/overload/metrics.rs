//! What a run measured, and the figures the tables and the targets read from it.

use valve::Nanos;

use crate::sim::{BUCKET, Bucket, MS, Model, Report, SEC, percentile_ms};

/// One run of one row on one seed.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub seed: u64,
    pub duration: Nanos,
    pub offered: u64,
    pub attempts: u64,
    pub good: u64,
    pub retries: u64,
    pub retries_denied: u64,
    pub calls_while_dead: u64,
    /// Times the breaker opened, for breaker rows.
    pub breaker_opened: Option<u64>,
    /// Work the server could have done, in requests.
    pub capacity_total: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The p99 of the service time itself: what an unloaded service answers in.
    pub unloaded_p99_ms: f64,
    pub buckets: Vec<Bucket>,
}

impl RunResult {
    pub fn new(model: &Model, mut report: Report, breaker_opened: Option<u64>) -> Self {
        report.latencies.sort_unstable();
        let mean = model.service_mean as f64;
        Self {
            seed: model.seed,
            duration: model.duration,
            offered: report.offered,
            attempts: report.attempts,
            good: report.good,
            retries: report.retries,
            retries_denied: report.retries_denied,
            calls_while_dead: report.calls_while_dead,
            breaker_opened,
            capacity_total: report.capacity_total,
            p50_ms: percentile_ms(&report.latencies, 0.5),
            p99_ms: percentile_ms(&report.latencies, 0.99),
            unloaded_p99_ms: model.service_shape.quantile(mean, 0.99) / MS as f64,
            buckets: report.buckets,
        }
    }

    /// Answers within the client timeout, as % of what the capacity could answer.
    pub fn goodput_pct(&self) -> f64 {
        100.0 * self.good as f64 / self.capacity_total.max(1.0)
    }

    pub fn p99_vs_unloaded(&self) -> f64 {
        self.p99_ms / self.unloaded_p99_ms
    }

    /// Attempts per original request.
    pub fn amplification(&self) -> f64 {
        self.attempts as f64 / self.offered.max(1) as f64
    }
}

/// One row of a table: its runs, one per seed.
pub struct RowResult {
    pub case: String,
    pub control: String,
    pub family: Option<&'static str>,
    pub runs: Vec<RunResult>,
}

impl RowResult {
    /// The median over seeds (NaN values, "never", sort last).
    pub fn median(&self, value: fn(&RunResult) -> f64) -> f64 {
        let mut values: Vec<f64> = self.runs.iter().map(value).collect();
        values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
            (false, false) => a.total_cmp(b),
            (a, b) => a.cmp(&b),
        });
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// How a metric prints; NaN prints as `-` (`never` for times).
#[derive(Debug, Clone, Copy)]
pub enum Format {
    Pct,
    Ms,
    Ratio,
    Count,
    Secs,
    Limit,
    Fraction,
}

impl Format {
    pub fn cell(self, v: f64) -> String {
        if v.is_nan() {
            return if matches!(self, Self::Secs) { "never".into() } else { "-".into() };
        }
        match self {
            Self::Pct => format!("{v:.1} %"),
            Self::Ms => format!("{v:.1}"),
            Self::Ratio => format!("{v:.2}x"),
            Self::Count if v >= 100_000.0 => format!("{:.0}k", v / 1000.0),
            Self::Count | Self::Limit => format!("{v:.0}"),
            Self::Secs => format!("{v:.1} s"),
            Self::Fraction => format!("{v:.2}"),
        }
    }
}

/// A column of a table.
#[derive(Clone, Copy)]
pub struct Metric {
    pub header: &'static str,
    pub value: fn(&RunResult) -> f64,
    pub format: Format,
}

pub const GOODPUT: Metric =
    Metric { header: "goodput", value: RunResult::goodput_pct, format: Format::Pct };
pub const P50: Metric = Metric { header: "p50 ms", value: |r| r.p50_ms, format: Format::Ms };
pub const P99: Metric = Metric { header: "p99 ms", value: |r| r.p99_ms, format: Format::Ms };
pub const P99_X: Metric =
    Metric { header: "p99/unl.", value: RunResult::p99_vs_unloaded, format: Format::Ratio };
pub const AMPLIFICATION: Metric =
    Metric { header: "ampl.", value: RunResult::amplification, format: Format::Ratio };
pub const LIMIT: Metric =
    Metric { header: "limit", value: second_half_limit, format: Format::Limit };
pub const LIMIT_COV: Metric =
    Metric { header: "limit cv", value: limit_cov, format: Format::Fraction };

fn index(t: Nanos) -> usize {
    (t / BUCKET) as usize
}

fn limits(buckets: &[Bucket], from: Nanos, to: Nanos) -> Vec<f64> {
    let to = index(to).min(buckets.len());
    buckets[index(from).min(to)..to].iter().filter_map(|b| b.limit).map(f64::from).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The median limit from `from` to `to`; NaN without a limiter.
pub fn median_limit(buckets: &[Bucket], from: Nanos, to: Nanos) -> f64 {
    median(limits(buckets, from, to))
}

fn second_half_limit(r: &RunResult) -> f64 {
    median_limit(&r.buckets, r.duration / 2, r.duration)
}

/// The limit's coefficient of variation over the second half of the run.
fn limit_cov(r: &RunResult) -> f64 {
    let l = limits(&r.buckets, r.duration / 2, r.duration);
    if l.is_empty() {
        return f64::NAN;
    }
    let mean = l.iter().sum::<f64>() / l.len() as f64;
    let var = l.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / l.len() as f64;
    var.sqrt() / mean
}

/// Median limit over minute 10 against minute 1.
pub fn drift(r: &RunResult) -> f64 {
    median_limit(&r.buckets, 590 * SEC, 600 * SEC) / median_limit(&r.buckets, 50 * SEC, 60 * SEC)
}

/// Goodput from `from` to `to` as % of what the service could answer there.
pub fn goodput_between_pct(buckets: &[Bucket], from: Nanos, to: Nanos) -> f64 {
    let to = index(to).min(buckets.len());
    let span = &buckets[index(from).min(to)..to];
    let good: f64 = span.iter().map(|b| f64::from(b.good)).sum();
    let possible: f64 = span.iter().map(|b| b.possible).sum();
    100.0 * good / possible.max(1e-9)
}

/// The worst whole second (seconds counted from `from`) between `from` and `to`, as % of what
/// the service could answer in it.
pub fn worst_second_pct(buckets: &[Bucket], from: Nanos, to: Nanos) -> f64 {
    let per_s = index(SEC);
    let to = index(to).min(buckets.len());
    (index(from)..to)
        .step_by(per_s)
        .filter(|start| start + per_s <= to)
        .map(|start| {
            let second = &buckets[start..start + per_s];
            let good: f64 = second.iter().map(|b| f64::from(b.good)).sum();
            100.0 * good / second.iter().map(|b| b.possible).sum::<f64>().max(1e-9)
        })
        .fold(f64::NAN, f64::min)
}

/// Seconds from `from` until goodput holds `share` of what the service could answer for a
/// whole second; NaN if never within the run.
pub fn recovery_s(buckets: &[Bucket], from: Nanos, share: f64) -> f64 {
    let window = index(SEC);
    let start = index(from);
    (start..buckets.len().saturating_sub(window))
        .find(|&i| buckets[i..i + window].iter().all(|b| f64::from(b.good) >= share * b.possible))
        .map_or(f64::NAN, |i| (i - start) as f64 * BUCKET as f64 / SEC as f64)
}

/// How long the limit holds within this much of its median once settled.
pub const SETTLED_BAND: f64 = 0.2;
/// How long a settled limit holds.
pub const SETTLED_FOR: Nanos = 5 * SEC;

/// Seconds after `step` from which the limit stays within [`SETTLED_BAND`] of its median for
/// [`SETTLED_FOR`]; NaN if never (or without a limiter).
pub fn settle_s(buckets: &[Bucket], step: Nanos) -> f64 {
    let hold = index(SETTLED_FOR);
    let start = index(step);
    (start..buckets.len().saturating_sub(hold))
        .find(|&i| {
            let l: Vec<f64> =
                buckets[i..i + hold].iter().filter_map(|b| b.limit).map(f64::from).collect();
            let m = median(l.clone());
            !l.is_empty() && l.iter().all(|x| (x - m).abs() <= SETTLED_BAND * m)
        })
        .map_or(f64::NAN, |i| (i - start) as f64 * BUCKET as f64 / SEC as f64)
}
