//! Operation sequences with time steps on the limiter, every algorithm; invariants and a
//! sequential model checked after every operation.
#![no_main]

#[path = "../harness/limiter.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
