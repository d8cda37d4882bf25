//! The overload simulator: each failure mode, and the control that contains it.
//!
//! Drives the real valve core (limiter and every limit algorithm, retry budgets and backoff,
//! circuit breaker) with a virtual clock: no sleeping, no threads inside a run. Runs go in
//! parallel on the machine's cores. `--help` lists the options.

mod metrics;
mod plot;
mod scenarios;
mod sim;
mod targets;

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use metrics::{RowResult, RunResult};
use scenarios::{Options, Plan, SCENARIOS};
use sim::ServiceShape;

const USAGE: &str = "\
The valve overload simulator: each failure mode, run with and without the control that
contains it, on a virtual clock (50 workers, 10 ms mean service time, 1 s client timeout).

usage: cargo run --release --example overload -- [OPTIONS]

  --scenario N[,N...]   run only these scenarios (1-8; default: all)
  --seeds N | A-B       seeds 1 to N, or A to B (default: 1); tables show the median
  --seed S              one seed, S
  --only TEXT           run only the rows whose control contains TEXT (and the fixed limit)
  --service SHAPE       exponential (default) or lognormal (sigma 1, same mean)
  --summary             check the targets on every valve default over the seeds (default
                        1-20) and both service shapes (unless --service is given); print a
                        pass/fail table
  --plots DIR           write an SVG plot per scenario into DIR (first seed)
  --json                print the results as JSON instead of tables
  -h, --help            this text

The README figures are `--scenario 4,5 --plots docs`.";

struct Args {
    scenarios: Option<Vec<u32>>,
    seeds: Option<(u64, u64)>,
    shape: Option<ServiceShape>,
    summary: bool,
    json: bool,
    plots: Option<String>,
    only: Option<String>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        scenarios: None,
        seeds: None,
        shape: None,
        summary: false,
        json: false,
        plots: None,
        only: None,
    };
    let mut it = args;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| format!("not a number: {s}"));
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--scenario" => {
                let list = value("--scenario")?;
                let numbers: Result<Vec<u32>, String> =
                    list.split(',').map(|n| number(n).map(|n| n as u32)).collect();
                parsed.scenarios = Some(numbers?);
            }
            "--seed" => {
                let s = number(&value("--seed")?)?;
                parsed.seeds = Some((s, s));
            }
            "--seeds" => {
                let v = value("--seeds")?;
                let range = match v.split_once(['-', '.']) {
                    Some((a, b)) => (number(a)?, number(b.trim_start_matches('.'))?),
                    None => (1, number(&v)?),
                };
                if range.0 > range.1 || range.1 == 0 {
                    return Err(format!("empty seed range {v}"));
                }
                parsed.seeds = Some(range);
            }
            "--service" => {
                parsed.shape = Some(match value("--service")?.as_str() {
                    "exponential" | "exp" => ServiceShape::Exponential,
                    "lognormal" => ServiceShape::Lognormal(1.0),
                    other => return Err(format!("unknown service shape {other}")),
                })
            }
            "--summary" => parsed.summary = true,
            "--only" => parsed.only = Some(value("--only")?),
            "--plots" => parsed.plots = Some(value("--plots")?),
            "--json" => parsed.json = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n\n{USAGE}")),
        }
    }
    Ok(parsed)
}

/// One simulation: a row of a plan on one seed.
struct Job<'p> {
    row: &'p scenarios::Row,
    seed: u64,
}

/// Runs every job on the machine's cores; prints a progress line on stderr.
fn run_all(jobs: &[Job<'_>]) -> Vec<RunResult> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RunResult>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let model = sim::Model { seed: job.seed, ..job.row.model.clone() };
                    let result = scenarios::execute(job.row.setup, &model);
                    results.lock().unwrap()[i] = Some(result);
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    eprint!("\r  simulated {finished}/{} runs", jobs.len());
                    let _ = std::io::stderr().flush();
                }
            });
        }
    });
    eprint!("\r{:40}\r", "");
    results.into_inner().unwrap().into_iter().map(|r| r.expect("every job ran")).collect()
}

/// Runs `plans` on every seed; returns each plan with its rows' results.
fn simulate(plans: &[Plan], seeds: (u64, u64)) -> Vec<Vec<RowResult>> {
    let jobs: Vec<Job<'_>> = plans
        .iter()
        .flat_map(|p| p.rows.iter())
        .flat_map(|row| (seeds.0..=seeds.1).map(move |seed| Job { row, seed }))
        .collect();
    let mut results = run_all(&jobs).into_iter();
    plans
        .iter()
        .map(|plan| {
            plan.rows
                .iter()
                .map(|row| RowResult {
                    case: row.case.clone(),
                    control: row.control.clone(),
                    family: row.family,
                    runs: results.by_ref().take((seeds.1 - seeds.0 + 1) as usize).collect(),
                })
                .collect()
        })
        .collect()
}

fn plans(options: &Options, args: &Args, scenarios: Option<&[u32]>) -> Vec<Plan> {
    let mut plans: Vec<Plan> = SCENARIOS
        .iter()
        .map(|make| make(options))
        .filter(|p| scenarios.is_none_or(|only| only.contains(&p.number)))
        .collect();
    if let Some(only) = &args.only {
        for plan in &mut plans {
            plan.rows
                .retain(|r| r.control.contains(only.as_str()) || r.control == scenarios::FIXED);
        }
    }
    plans
}

const WIDTH: usize = 100;

fn print_table(plan: &Plan, rows: &[RowResult]) {
    println!("\n## {}. {}\n", plan.number, plan.title);
    println!("{}\n", textwrap(plan.explanation, WIDTH));
    let cases = rows.iter().map(|r| r.case.len()).max().unwrap_or(4).max(4);
    let controls = rows.iter().map(|r| r.control.len()).max().unwrap_or(7).max(7);
    let cell = |m: &metrics::Metric| (m.header.len() + 1).max(8);
    print!("{:<cases$}  {:<controls$}", "case", "control");
    for m in &plan.metrics {
        print!("{:>w$}", m.header, w = cell(m));
    }
    println!();
    for row in rows {
        print!("{:<cases$}  {:<controls$}", row.case, row.control);
        for m in &plan.metrics {
            print!("{:>w$}", m.format.cell(row.median(m.value)), w = cell(m));
        }
        println!();
    }
    println!("\n{}", textwrap(&format!("Verdict: {}.", (plan.verdict)(rows)), WIDTH));
}

fn textwrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line + word.len() + 1 > width && line > 0 {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

fn json(plans: &[Plan], results: &[Vec<RowResult>], shape: ServiceShape) -> serde_json::Value {
    let num = |x: f64| if x.is_finite() { serde_json::json!(x) } else { serde_json::Value::Null };
    serde_json::json!({
        "service": {
            "workers": scenarios::WORKERS,
            "service_ms": scenarios::SERVICE as f64 / sim::MS as f64,
            "shape": shape.name(),
            "timeout_ms": scenarios::TIMEOUT as f64 / sim::MS as f64,
        },
        "scenarios": plans.iter().zip(results).map(|(plan, rows)| serde_json::json!({
            "number": plan.number,
            "title": plan.title,
            "verdict": (plan.verdict)(rows),
            "rows": rows.iter().map(|row| serde_json::json!({
                "case": row.case,
                "control": row.control,
                "runs": row.runs.iter().map(|run| {
                    let mut metrics = serde_json::Map::new();
                    metrics.insert("seed".into(), serde_json::json!(run.seed));
                    for m in &plan.metrics {
                        metrics.insert(m.header.into(), num((m.value)(run)));
                    }
                    serde_json::Value::Object(metrics)
                }).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn header(shape: ServiceShape, seeds: (u64, u64)) -> String {
    let seeds = if seeds.0 == seeds.1 {
        format!("seed {}", seeds.0)
    } else {
        format!("median over seeds {}-{}", seeds.0, seeds.1)
    };
    format!(
        "# valve overload simulator ({seeds}): {} workers, {} service times of mean {:.0} ms \
         (capacity {:.0}/s), clients time out after {} ms",
        scenarios::WORKERS,
        shape.name(),
        scenarios::SERVICE as f64 / sim::MS as f64,
        f64::from(scenarios::WORKERS) * 1e9 / scenarios::SERVICE as f64,
        scenarios::TIMEOUT / sim::MS,
    )
}

fn summary(args: &Args) {
    let seeds = args.seeds.unwrap_or((1, 20));
    let shapes = match args.shape {
        Some(shape) => vec![shape],
        None => vec![ServiceShape::Exponential, ServiceShape::Lognormal(1.0)],
    };
    let started = Instant::now();
    println!(
        "# valve defaults against the targets: seeds {}-{}; each cell: seeds that pass / seeds, \
         the worst seed's figure",
        seeds.0, seeds.1
    );
    let mut all_pass = true;
    for shape in shapes {
        let options = Options { shape, targets_only: true };
        let plans = plans(&options, args, Some(&targets::SCENARIOS));
        let results = simulate(&plans, seeds);
        let evidence: Vec<_> = plans.iter().zip(results).collect();
        let controls = targets::controls(&evidence);
        println!("\n## {} service times\n", shape.name());
        let short = |c: &str| {
            c.trim_end_matches(scenarios::VALVE_DEFAULT).trim_end_matches(": ").to_string()
        };
        print!("{:<29}{:>15}", "measure", "target");
        for c in &controls {
            print!("{:>14}", short(c));
        }
        println!();
        for target in &targets::TARGETS {
            print!("{:<29}{:>15}", target.measure, target.goal);
            for c in &controls {
                let cell = target.check(&evidence, c);
                all_pass &= cell.passed == cell.checked;
                print!(" {:>13}", target.cell(&cell));
            }
            println!();
        }
    }
    println!("\n{}", if all_pass { "every target holds" } else { "some targets FAIL" });
    eprintln!("{:.1} s", started.elapsed().as_secs_f64());
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(if message == USAGE { 0 } else { 2 });
        }
    };
    if args.summary {
        summary(&args);
        return;
    }
    let started = Instant::now();
    let seeds = args.seeds.unwrap_or((1, 1));
    let shape = args.shape.unwrap_or(ServiceShape::Exponential);
    let options = Options { shape, targets_only: false };
    let plans = plans(&options, &args, args.scenarios.as_deref());
    if plans.is_empty() {
        eprintln!("no such scenario: choose 1 to {}", SCENARIOS.len());
        std::process::exit(2);
    }
    let results = simulate(&plans, seeds);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json(&plans, &results, shape)).unwrap());
    } else {
        println!("{}", textwrap(&header(shape, seeds), WIDTH));
        println!(
            "{}",
            textwrap(
                "goodput: answers within the client timeout as % of capacity; worst 1 s: the \
                 worst second's answers as % of what the service could answer in it; p99: of \
                 those answers; limit: median over the second half of the run; presets are \
                 valve's parity presets of the reference libraries",
                WIDTH
            )
        );
        for (plan, rows) in plans.iter().zip(&results) {
            print_table(plan, rows);
        }
        eprintln!("\n{:.1} s", started.elapsed().as_secs_f64());
    }
    if let Some(dir) = &args.plots {
        for (plan, rows) in plans.iter().zip(&results) {
            if let Err(e) = plot::write(dir, plan, rows) {
                eprintln!("plots: {e}");
                std::process::exit(1);
            }
        }
        eprintln!("plots written to {dir}");
    }
}
