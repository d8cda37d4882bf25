//! Helpers shared by integration tests.

// Each test crate uses only part of the simulator's helpers.
#[allow(dead_code)]
pub mod sim;
