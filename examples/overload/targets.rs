//! The targets every valve default must meet on every seed and service-time shape (issue 18),
//! checked by `--summary`.

use crate::metrics::{Format, RowResult};
use crate::scenarios::{FIXED, Plan, VALVE_DEFAULT};

/// The scenarios the targets read.
pub const SCENARIOS: [u32; 5] = [1, 4, 5, 6, 8];

/// Which way a figure is bad.
#[derive(Clone, Copy)]
enum Worse {
    Lower,
    Higher,
}

pub struct Target {
    pub measure: &'static str,
    pub goal: &'static str,
    /// `(scenario, metric header)` the figure is read from; a seed's figure is the worst.
    sources: &'static [(u32, &'static str)],
    worse: Worse,
    /// The figure is taken minus the fixed limit's on the same seed.
    against_fixed: bool,
    pass: fn(f64) -> bool,
    format: Format,
}

pub const TARGETS: [Target; 6] = [
    Target {
        measure: "goodput at 2x-25x",
        goal: ">= 99 %",
        sources: &[(1, "goodput")],
        worse: Worse::Lower,
        against_fixed: false,
        pass: |v| v >= 99.0,
        format: Format::Pct,
    },
    Target {
        measure: "admitted p99 / unloaded p99",
        goal: "<= 1.5x",
        sources: &[(1, "p99/unl."), (8, "p99/unl.")],
        worse: Worse::Higher,
        against_fixed: false,
        pass: |v| v <= 1.5,
        format: Format::Ratio,
    },
    Target {
        measure: "worst 1 s in steady overload",
        goal: ">= 95 %",
        sources: &[(1, "worst 1 s"), (8, "worst 1 s")],
        worse: Worse::Lower,
        against_fixed: false,
        pass: |v| v >= 95.0,
        format: Format::Pct,
    },
    Target {
        measure: "limit settles after a step",
        goal: "<= 2 s",
        sources: &[(4, "settle in"), (4, "settle out"), (5, "settle dn"), (5, "settle up")],
        worse: Worse::Higher,
        against_fixed: false,
        pass: |v| v <= 2.0,
        format: Format::Secs,
    },
    Target {
        measure: "limit drift in 10 min at 1.2x",
        goal: "<= 1.10x",
        sources: &[(6, "drift")],
        worse: Worse::Higher,
        against_fixed: false,
        pass: |v| v <= 1.1,
        format: Format::Ratio,
    },
    Target {
        measure: "worst 1 s, spike and halving",
        goal: ">= fixed - 0.5",
        sources: &[(4, "worst 1 s"), (5, "worst 1 s")],
        worse: Worse::Lower,
        against_fixed: true,
        pass: |v| v >= -0.5,
        format: Format::Fraction,
    },
];

/// One cell: seeds that pass, seeds checked, and the worst figure.
pub struct Cell {
    pub passed: usize,
    pub checked: usize,
    pub worst: f64,
}

impl Target {
    /// This target for `control` on the results of `plans`: every seed's worst figure.
    pub fn check(&self, plans: &[(&Plan, Vec<RowResult>)], control: &str) -> Cell {
        let worse = |a: f64, b: f64| match (a.is_nan(), b.is_nan(), self.worse) {
            (true, _, _) => a,
            (_, true, _) => b,
            (_, _, Worse::Lower) => a.min(b),
            (_, _, Worse::Higher) => a.max(b),
        };
        let mut per_seed: Vec<(u64, f64)> = Vec::new();
        for &(number, header) in self.sources {
            let Some((plan, rows)) = plans.iter().find(|(p, _)| p.number == number) else {
                continue;
            };
            let metric = plan.metrics.iter().find(|m| m.header == header).expect("metric");
            for row in rows.iter().filter(|r| r.control == control) {
                let fixed = rows.iter().find(|r| r.case == row.case && r.control == FIXED);
                for run in &row.runs {
                    let mut v = (metric.value)(run);
                    if self.against_fixed {
                        let base = fixed
                            .and_then(|f| f.runs.iter().find(|r| r.seed == run.seed))
                            .map_or(f64::NAN, |r| (metric.value)(r));
                        v -= base;
                    }
                    match per_seed.iter_mut().find(|(s, _)| *s == run.seed) {
                        Some((_, w)) => *w = worse(*w, v),
                        None => per_seed.push((run.seed, v)),
                    }
                }
            }
        }
        let worst = per_seed
            .iter()
            .map(|(_, v)| *v)
            .fold(f64::NAN, |a, b| if a.is_nan() && !b.is_nan() { b } else { worse(a, b) });
        // A NaN figure ("never", no limit) fails.
        let passed = per_seed.iter().filter(|(_, v)| !v.is_nan() && (self.pass)(*v)).count();
        Cell { passed, checked: per_seed.len(), worst }
    }

    pub fn cell(&self, cell: &Cell) -> String {
        let worst = match (self.against_fixed, cell.worst) {
            (true, w) if !w.is_nan() => format!("{w:+.1}"),
            (_, w) => self.format.cell(w).replace(' ', ""),
        };
        let mark = if cell.passed == cell.checked { '✓' } else { '✗' };
        format!("{mark} {}/{} {worst}", cell.passed, cell.checked)
    }
}

/// The valve defaults the targets apply to, by their row names.
pub fn controls(plans: &[(&Plan, Vec<RowResult>)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (_, rows) in plans {
        for row in rows.iter().filter(|r| r.control.ends_with(VALVE_DEFAULT)) {
            if !names.contains(&row.control) {
                names.push(row.control.clone());
            }
        }
    }
    names
}
