//! Hostile call sequences over the C ABI (NULLs, invalid configs, unknown enumeration values,
//! double, copied, forged and foreign permits); every status checked against a model.
#![no_main]

#[path = "../harness/c_abi.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
