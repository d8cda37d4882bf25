//! Every config constructor with arbitrary values: a value or a typed error, never a panic.
#![no_main]

#[path = "../harness/configs.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
