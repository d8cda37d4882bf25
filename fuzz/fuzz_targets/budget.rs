//! Every retry budget kind and backoff: invariants and the token quota's sequential model
//! checked after every operation.
#![no_main]

#[path = "../harness/budget.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
