//! The overload simulator: each failure mode, and the control that contains it.
//!
//! Drives the real valve core (limiter and every limit algorithm, retry budgets and backoff,
//! circuit breaker) with a virtual clock: no sleeping, no threads inside a run. Scenarios run in
//! parallel on the machine's cores.
//!
//! ```text
//! cargo run --release --example overload [-- --scenario N] [--seed S] [--json] [--plots DIR]
//! ```

mod plot;
mod scenarios;
mod sim;

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use scenarios::{Job, Outcome, Row};

struct Args {
    scenario: Option<u32>,
    seed: u64,
    json: bool,
    plots: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { scenario: None, seed: 1, json: false, plots: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--scenario" => {
                let n = value("--scenario")?;
                args.scenario = Some(n.parse().map_err(|_| format!("bad scenario {n}"))?);
            }
            "--seed" => {
                let n = value("--seed")?;
                args.seed = n.parse().map_err(|_| format!("bad seed {n}"))?;
            }
            "--plots" => args.plots = Some(value("--plots")?),
            "--json" => args.json = true,
            "-h" | "--help" => {
                return Err(
                    "usage: overload [--scenario 1-7] [--seed N] [--json] [--plots DIR]".into()
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Runs every job on the machine's cores; prints a progress line on stderr.
fn run_all(jobs: &[&Job]) -> Vec<(Row, Vec<sim::Bucket>)> {
    type Slot = Option<(Row, Vec<sim::Bucket>)>;
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Slot>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let result = scenarios::execute(job);
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

fn fmt_ms(ms: f64) -> String {
    if ms.is_nan() { "-".into() } else { format!("{ms:.1}") }
}

fn print_table(outcome: &Outcome) {
    println!("\n## {}. {}\n", outcome.number, outcome.title);
    println!("{}\n", textwrap(outcome.explanation, 100));
    println!(
        "{:<18} {:<40} {:>7} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}  note",
        "case",
        "control",
        "offered",
        "goodput",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "shed",
        "retries",
        "ampl.",
        "limit"
    );
    for r in &outcome.rows {
        println!(
            "{:<18} {:<40} {:>6.2}x {:>7.1}% {:>7} {:>8} {:>8} {:>8} {:>8} {:>7.2} {:>6}  {}",
            r.case,
            r.control,
            r.offered_x,
            r.goodput_pct,
            fmt_ms(r.p50_ms),
            fmt_ms(r.p99_ms),
            fmt_ms(r.p999_ms),
            r.shed,
            r.retries,
            r.amplification,
            r.limit.map_or("-".into(), |l| l.to_string()),
            r.note,
        );
    }
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

fn json(outcomes: &[Outcome], seed: u64) -> serde_json::Value {
    let num = |x: f64| if x.is_finite() { serde_json::json!(x) } else { serde_json::Value::Null };
    serde_json::json!({
        "seed": seed,
        "service": {
            "workers": scenarios::WORKERS,
            "service_ms": scenarios::SERVICE as f64 / sim::MS as f64,
            "timeout_ms": scenarios::TIMEOUT as f64 / sim::MS as f64,
        },
        "scenarios": outcomes.iter().map(|o| serde_json::json!({
            "number": o.number,
            "title": o.title,
            "rows": o.rows.iter().map(|r| serde_json::json!({
                "case": r.case,
                "control": r.control,
                "offered_x": num(r.offered_x),
                "goodput_pct": num(r.goodput_pct),
                "p50_ms": num(r.p50_ms),
                "p99_ms": num(r.p99_ms),
                "p999_ms": num(r.p999_ms),
                "shed": r.shed,
                "timed_out": r.timed_out,
                "retries": r.retries,
                "amplification": num(r.amplification),
                "limit": r.limit,
                "note": r.note,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let plans: Vec<_> = scenarios::plans(args.seed)
        .into_iter()
        .filter(|p| args.scenario.is_none_or(|n| n == p.number))
        .collect();
    if plans.is_empty() {
        eprintln!("no scenario {}: choose 1 to 7", args.scenario.unwrap_or(0));
        std::process::exit(2);
    }
    let jobs: Vec<&Job> = plans.iter().flat_map(|p| p.jobs.iter()).collect();
    let mut results = run_all(&jobs).into_iter();
    let mut outcomes = Vec::new();
    for plan in &plans {
        let (mut rows, mut series) = (Vec::new(), Vec::new());
        for job in &plan.jobs {
            let (row, buckets) = results.next().unwrap();
            series.push((job.control.clone(), buckets));
            rows.push(row);
        }
        (plan.annotate)(&mut rows, &series);
        outcomes.push(Outcome {
            number: plan.number,
            title: plan.title,
            explanation: plan.explanation,
            rows,
            series,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json(&outcomes, args.seed)).unwrap());
    } else {
        println!(
            "# valve overload simulator (seed {}): {} workers, {:.0} ms mean service time \
             (capacity {:.0}/s), clients time out after {} ms",
            args.seed,
            scenarios::WORKERS,
            scenarios::SERVICE as f64 / sim::MS as f64,
            f64::from(scenarios::WORKERS) * 1e9 / scenarios::SERVICE as f64,
            scenarios::TIMEOUT / sim::MS,
        );
        println!(
            "goodput: answers within the client timeout as % of capacity; latencies of those \
             answers; ampl.: attempts per request; limit: median over the second half"
        );
        for outcome in &outcomes {
            print_table(outcome);
        }
        eprintln!("\n{} runs in {:.1} s", jobs.len(), started.elapsed().as_secs_f64());
    }
    if let Some(dir) = &args.plots {
        if let Err(e) = plot::write_all(dir, &outcomes) {
            eprintln!("plots: {e}");
            std::process::exit(1);
        }
        eprintln!("plots written to {dir}");
    }
}
