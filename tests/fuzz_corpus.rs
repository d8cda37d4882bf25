//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same harnesses the
//! fuzz targets use, so `cargo test` checks every saved input without the fuzzer.

use std::fs;
use std::path::Path;

#[path = "../fuzz/harness/configs.rs"]
mod configs;
#[path = "../fuzz/harness/limiter.rs"]
mod limiter;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        run(&fs::read(&path).unwrap());
        inputs += 1;
    }
    assert!(inputs > 0, "no corpus for {target}");
}

#[test]
fn limiter_corpus() {
    replay("limiter", limiter::run);
}

#[test]
fn configs_corpus() {
    replay("configs", configs::run);
}

#[path = "../fuzz/harness/budget.rs"]
mod budget;

#[test]
fn budget_corpus() {
    replay("budget", budget::run);
}

#[path = "../fuzz/harness/c_abi.rs"]
mod c_abi;

#[test]
fn c_abi_corpus() {
    replay("c_abi", c_abi::run);
}

#[path = "../fuzz/harness/breaker.rs"]
mod breaker;

#[test]
fn breaker_corpus() {
    replay("breaker", breaker::run);
}
