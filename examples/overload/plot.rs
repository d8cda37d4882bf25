//! SVG plots of a scenario's time series (its first seed), written as `overload-<slug>.svg`.
//!
//! Small multiples: limit rows get one column per algorithm family (valve default against its
//! reference preset, with the run without a limit and the fixed limit at capacity in every
//! column); other scenarios one column of every control. Rows of panels: the limit against
//! capacity, goodput as % of capacity, the calls sent on to the server as % of capacity, and
//! the p99 of answers. Events are marked; a value past an axis is drawn at its edge with a
//! marker and said in the caption; legends sit above the panels, never over data.

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::metrics::RowResult;
use crate::scenarios::{FIXED, Plan};
use crate::sim::{BUCKET, Bucket, SEC};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const FONT: &str = "sans-serif";
const TEXT: u32 = 15;
const SMALL: u32 = 13;

/// Okabe-Ito: distinguishable with any colour vision.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
];
const DEFAULT: RGBColor = PALETTE[0];
const PRESET: RGBColor = PALETTE[1];
const NO_LIMIT: RGBColor = RGBColor(150, 150, 150);
const CAPACITY: RGBColor = BLACK;

/// The limit axis never runs past this many times the full capacity (workers).
const LIMIT_AXIS: f64 = 3.0;

/// A line to draw: its label, colour, whether dashed, and its runs' buckets.
struct Line<'r> {
    label: String,
    color: RGBColor,
    dashed: bool,
    buckets: &'r [Bucket],
}

/// Writes `plan`'s plot into `dir` (created if missing).
pub fn write(dir: &str, plan: &Plan, rows: &[RowResult]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = format!("{dir}/overload-{}.svg", plan.slug);
    // Scenario 1 has one block of rows per load level: plot the first case.
    let first_case = &rows[0].case;
    let rows: Vec<&RowResult> = rows.iter().filter(|r| &r.case == first_case).collect();
    let mut families: Vec<&str> = Vec::new();
    for family in rows.iter().filter_map(|r| r.family) {
        if !families.contains(&family) {
            families.push(family);
        }
    }
    fn line(row: &RowResult, color: RGBColor, dashed: bool) -> Line<'_> {
        Line { label: row.control.clone(), color, dashed, buckets: &row.runs[0].buckets }
    }
    // Columns of lines: per family when there are several, else one of every row.
    let columns: Vec<(String, Vec<Line<'_>>)> = if families.len() > 1 {
        families
            .iter()
            .map(|family| {
                let mut lines = Vec::new();
                for row in &rows {
                    match row.family {
                        Some(f) if f == *family => {
                            let default = row.control.ends_with("valve default");
                            lines.push(line(row, if default { DEFAULT } else { PRESET }, !default));
                        }
                        None if row.control == FIXED => lines.push(line(row, CAPACITY, true)),
                        None => lines.push(line(row, NO_LIMIT, false)),
                        Some(_) => {}
                    }
                }
                (family.to_string(), lines)
            })
            .collect()
    } else {
        let lines =
            rows.iter().enumerate().map(|(i, row)| line(row, PALETTE[i % PALETTE.len()], false));
        vec![(String::new(), lines.collect())]
    };
    let has_limit = rows.iter().any(|r| r.runs[0].buckets.iter().any(|b| b.limit.is_some()));
    let panels: Vec<Panel> = [
        has_limit.then_some(Panel::Limit),
        Some(Panel::Goodput),
        Some(Panel::Sent),
        Some(Panel::P99),
    ]
    .into_iter()
    .flatten()
    .collect();

    let width = if columns.len() > 1 { 1600 } else { 1000 };
    let legend_height = 40 + 22 * legend_rows(&columns, width) as u32;
    let height = 80 + legend_height + 270 * panels.len() as u32;
    let root = SVGBackend::new(&path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let title =
        format!("{}. {} ({}, seed {})", plan.number, plan.title, first_case, rows[0].runs[0].seed);
    let root = root.titled(&title, (FONT, 20))?;
    let (legend, body) = root.split_vertically(legend_height);
    draw_legend(&legend, &columns, has_limit)?;
    let grid = body.split_evenly((panels.len(), columns.len()));
    let end = rows[0].runs[0].duration as f64 / SEC as f64;
    for (p, panel) in panels.iter().enumerate() {
        for (c, (family, lines)) in columns.iter().enumerate() {
            let caption = if family.is_empty() {
                panel.caption().to_string()
            } else {
                format!("{family}: {}", panel.caption())
            };
            let labels = p == 0;
            draw_panel(&grid[p * columns.len() + c], *panel, &caption, lines, end, plan, labels)?;
        }
    }
    root.present()?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Panel {
    Limit,
    Goodput,
    Sent,
    P99,
}

impl Panel {
    fn caption(self) -> &'static str {
        match self {
            Self::Limit => "limit (capacity: black)",
            Self::Goodput => "goodput, % of capacity (1 s mean)",
            Self::Sent => "calls sent on, % of capacity (1 s mean)",
            Self::P99 => "p99 of answers, ms (log)",
        }
    }
}

/// `(seconds, value)` points: per bucket for runs up to two minutes, per second beyond.
fn points(
    buckets: &[Bucket],
    value: impl Fn(&[Bucket]) -> Option<f64>,
    mean: bool,
) -> Vec<(f64, f64)> {
    let per_s = (SEC / BUCKET) as usize;
    let step = if buckets.len() > 130 * per_s || mean { per_s } else { 1 };
    buckets
        .chunks(step)
        .enumerate()
        .filter_map(|(i, chunk)| {
            value(chunk)
                .filter(|v| v.is_finite())
                .map(|v| ((i * step + chunk.len()) as f64 / per_s as f64, v))
        })
        .collect()
}

fn series(panel: Panel, buckets: &[Bucket]) -> Vec<(f64, f64)> {
    let sum = |chunk: &[Bucket], f: fn(&Bucket) -> f64| chunk.iter().map(f).sum::<f64>();
    match panel {
        Panel::Limit => points(
            buckets,
            |c| {
                let limits: Vec<f64> = c.iter().filter_map(|b| b.limit).map(f64::from).collect();
                (!limits.is_empty()).then(|| limits.iter().sum::<f64>() / limits.len() as f64)
            },
            false,
        ),
        Panel::Goodput => points(
            buckets,
            |c| Some(100.0 * sum(c, |b| f64::from(b.good)) / sum(c, |b| b.nominal)),
            true,
        ),
        Panel::Sent => points(
            buckets,
            |c| Some(100.0 * sum(c, |b| f64::from(b.sent)) / sum(c, |b| b.nominal)),
            true,
        ),
        Panel::P99 => points(buckets, |c| Some(c[0].p99_ms), false),
    }
}

fn draw_panel(
    area: &Area<'_>,
    panel: Panel,
    caption: &str,
    lines: &[Line<'_>],
    end: f64,
    plan: &Plan,
    event_labels: bool,
) -> Result<()> {
    let data: Vec<Vec<(f64, f64)>> = lines.iter().map(|l| series(panel, l.buckets)).collect();
    let peak = data.iter().flatten().map(|p| p.1).fold(0.0, f64::max);
    let capacity: Vec<(f64, f64)> =
        points(lines[0].buckets, |c| Some(f64::from(c[0].capacity)), false);
    let full = capacity.iter().map(|p| p.1).fold(1.0, f64::max);
    let (y_max, cap) = match panel {
        Panel::Limit => {
            let axis = (peak.max(full) * 1.1).min(LIMIT_AXIS * full);
            (axis, Some(axis))
        }
        Panel::Goodput => (110.0, None),
        Panel::Sent => ((peak * 1.1).clamp(110.0, 500.0), Some((peak * 1.1).clamp(110.0, 500.0))),
        Panel::P99 => (2000.0, None),
    };
    let clipped = cap.is_some_and(|cap| peak > cap);
    let caption = if clipped {
        format!("{caption}; clipped at {:.0} (peak {peak:.0}, marked ^)", cap.unwrap())
    } else {
        caption.to_string()
    };
    let mut builder = ChartBuilder::on(area);
    builder.caption(&caption, (FONT, TEXT)).margin(8).x_label_area_size(36).y_label_area_size(56);
    let style = |color: RGBColor| color.stroke_width(2);
    let events = |top: f64| {
        plan.events.iter().map(move |&(t, _)| {
            let x = t as f64 / SEC as f64;
            PathElement::new(vec![(x, 0.0), (x, top)], RGBColor(120, 120, 120).stroke_width(1))
        })
    };
    if let Panel::P99 = panel {
        let mut chart = builder.build_cartesian_2d(0.0..end, (5.0..y_max).log_scale())?;
        mesh(&mut chart, "ms")?;
        chart.draw_series(plan.events.iter().map(|&(t, _)| {
            let x = t as f64 / SEC as f64;
            PathElement::new(vec![(x, 5.0), (x, y_max)], RGBColor(120, 120, 120).stroke_width(1))
        }))?;
        for (line, points) in lines.iter().zip(&data) {
            let points: Vec<_> = points.iter().map(|&(x, y)| (x, y.clamp(5.0, y_max))).collect();
            draw_line(&mut chart, points, line, style(line.color))?;
        }
        return Ok(());
    }
    let mut chart = builder.build_cartesian_2d(0.0..end, 0.0..y_max)?;
    mesh(&mut chart, if let Panel::Limit = panel { "calls" } else { "%" })?;
    chart.draw_series(events(y_max))?;
    if event_labels {
        chart.draw_series(plan.events.iter().map(|&(t, label)| {
            Text::new(
                format!(" {label}"),
                (t as f64 / SEC as f64, y_max * 0.97),
                (FONT, SMALL).into_font(),
            )
        }))?;
    }
    if let Panel::Limit = panel {
        chart.draw_series(LineSeries::new(capacity, CAPACITY.stroke_width(3)))?;
    }
    if let Panel::Goodput = panel {
        // What the service could answer: the ceiling of goodput.
        let ceiling = points(
            lines[0].buckets,
            |c| {
                Some(
                    100.0 * c.iter().map(|b| b.possible).sum::<f64>()
                        / c.iter().map(|b| b.nominal).sum::<f64>(),
                )
            },
            true,
        );
        chart.draw_series(DashedLineSeries::new(ceiling, 4, 4, CAPACITY.stroke_width(1)))?;
    }
    for (line, points) in lines.iter().zip(&data) {
        if matches!(panel, Panel::Limit) && line.label == FIXED {
            continue; // the fixed limit is the capacity line
        }
        let top = cap.unwrap_or(f64::INFINITY);
        let drawn: Vec<_> = points.iter().map(|&(x, y)| (x, y.min(top))).collect();
        draw_line(&mut chart, drawn, line, style(line.color))?;
        let marks = points.iter().filter(|p| p.1 > top).step_by(5);
        chart.draw_series(
            marks.map(|&(x, _)| TriangleMarker::new((x, top), 6, line.color.filled())),
        )?;
    }
    Ok(())
}

fn mesh<Y>(
    chart: &mut ChartContext<
        '_,
        SVGBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    y: &str,
) -> Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y)
        .label_style((FONT, SMALL))
        .axis_desc_style((FONT, SMALL))
        .light_line_style(WHITE)
        .draw()?;
    Ok(())
}

fn draw_line<Y>(
    chart: &mut ChartContext<
        '_,
        SVGBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    points: Vec<(f64, f64)>,
    line: &Line<'_>,
    style: ShapeStyle,
) -> Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    if line.dashed {
        chart.draw_series(DashedLineSeries::new(points, 8, 4, style))?;
    } else {
        chart.draw_series(LineSeries::new(points, style))?;
    }
    Ok(())
}

/// Legend entries: every distinct label and its style, with the capacity line first.
fn entries<'a>(
    columns: &'a [(String, Vec<Line<'a>>)],
    has_limit: bool,
) -> Vec<(String, RGBColor, bool)> {
    let mut out: Vec<(String, RGBColor, bool)> = Vec::new();
    if has_limit {
        out.push(("capacity (workers) = fixed limit".into(), CAPACITY, false));
    }
    out.push(("ceiling: what the service could answer".into(), CAPACITY, true));
    for (_, lines) in columns {
        for line in lines {
            let label = if columns.len() > 1 && line.color == DEFAULT {
                "valve default".to_string()
            } else if columns.len() > 1 && line.color == PRESET {
                "reference preset (valve's parity preset)".to_string()
            } else {
                line.label.clone()
            };
            let hidden = line.label == FIXED && has_limit && columns.len() > 1;
            if !hidden && !out.iter().any(|(l, _, _)| *l == label) {
                out.push((label, line.color, line.dashed));
            }
        }
    }
    out
}

const LEGEND_ENTRY: i32 = 380;

fn legend_rows(columns: &[(String, Vec<Line<'_>>)], width: u32) -> usize {
    let per_row = (width as i32 / LEGEND_ENTRY).max(1) as usize;
    entries(columns, true).len().div_ceil(per_row)
}

fn draw_legend(
    area: &Area<'_>,
    columns: &[(String, Vec<Line<'_>>)],
    has_limit: bool,
) -> Result<()> {
    let per_row = (area.dim_in_pixel().0 as i32 / LEGEND_ENTRY).max(1) as usize;
    for (i, (label, color, dashed)) in entries(columns, has_limit).iter().enumerate() {
        let x = 20 + (i % per_row) as i32 * LEGEND_ENTRY;
        let y = 20 + (i / per_row) as i32 * 22;
        let style = color.stroke_width(if *color == CAPACITY && !dashed { 3 } else { 2 });
        if *dashed {
            area.draw(&DashedPathElement::new(vec![(x, y), (x + 36, y)], 6, 4, style))?;
        } else {
            area.draw(&PathElement::new(vec![(x, y), (x + 36, y)], style))?;
        }
        area.draw(&Text::new(label.clone(), (x + 44, y - 8), (FONT, TEXT).into_font()))?;
    }
    Ok(())
}
