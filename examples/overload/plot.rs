//! SVG plots of each scenario's time series: limit against capacity, goodput, p99 latency.

use plotters::prelude::*;

use crate::scenarios::Outcome;
use crate::sim::{BUCKET, SEC};

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Writes `scenario-N.svg` per scenario into `dir` (created if missing).
pub fn write_all(dir: &str, outcomes: &[Outcome]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for outcome in outcomes {
        // Scenario 1 has one block of runs per load level: plot the first (2x) block.
        let per_case = outcome.rows.iter().filter(|r| r.case == outcome.rows[0].case).count();
        let path = format!("{dir}/scenario-{}.svg", outcome.number);
        write_one(&path, outcome, per_case)?;
    }
    Ok(())
}

fn write_one(path: &str, outcome: &Outcome, runs: usize) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 1050)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!("{}. {} ({})", outcome.number, outcome.title, outcome.rows[0].case);
    let root = root.titled(&title, ("sans-serif", 20))?;
    let panels = root.split_evenly((3, 1));
    let series = &outcome.series[..runs];
    let seconds = |i: usize| (i + 1) as f64 * BUCKET as f64 / SEC as f64;
    let end =
        series.iter().map(|(_, b)| b.len()).max().unwrap_or(1) as f64 * BUCKET as f64 / SEC as f64;
    let per_s = SEC as f64 / BUCKET as f64;

    let panel = |area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
                 caption: &str,
                 y_max: f64,
                 value: &dyn Fn(&crate::sim::Bucket) -> f64,
                 capacity: bool|
     -> Result<()> {
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end, 0.0..y_max.max(1.0))?;
        chart.configure_mesh().x_desc("seconds").draw()?;
        for (k, (name, buckets)) in series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let points: Vec<(f64, f64)> = buckets
                .iter()
                .enumerate()
                .map(|(i, b)| (seconds(i), value(b)))
                .filter(|(_, v)| v.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        if capacity {
            let (_, buckets) = &series[0];
            let points: Vec<(f64, f64)> = buckets
                .iter()
                .enumerate()
                .map(|(i, b)| (seconds(i), f64::from(b.capacity)))
                .collect();
            chart
                .draw_series(LineSeries::new(points, BLACK.stroke_width(3)))?
                .label("capacity (workers)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    };

    let max_of = |f: &dyn Fn(&crate::sim::Bucket) -> f64| {
        series
            .iter()
            .flat_map(|(_, b)| b.iter().map(f))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    };
    let limit_max = max_of(&|b| f64::from(b.limit)).max(max_of(&|b| f64::from(b.capacity))) * 1.1;
    panel(&panels[0], "limit vs capacity", limit_max.min(400.0), &|b| f64::from(b.limit), true)?;
    let good_max = max_of(&|b| f64::from(b.good) * per_s) * 1.1;
    panel(
        &panels[1],
        "goodput (answers/s within the timeout)",
        good_max,
        &|b| f64::from(b.good) * per_s,
        false,
    )?;
    let p99_max = max_of(&|b| b.p99_ms) * 1.1;
    panel(&panels[2], "p99 latency of answers (ms)", p99_max, &|b| b.p99_ms, false)?;
    root.present()?;
    Ok(())
}
