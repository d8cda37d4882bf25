//! loom models of every atomic protocol. Run with `make loom`.
#![cfg(valve_loom)]

#[path = "loom_models/breaker.rs"]
mod breaker;
