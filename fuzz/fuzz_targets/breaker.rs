//! The circuit breaker under every preset and arbitrary policies: invariants checked after
//! every operation.
#![no_main]

#[path = "../harness/breaker.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
