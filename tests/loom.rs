//! loom models of every atomic protocol, one module per control. Run with `make loom`
//! (`RUSTFLAGS="--cfg valve_loom"`, `LOOM_MAX_PREEMPTIONS=2`).
#![cfg(valve_loom)]

#[path = "loom_models/limiter.rs"]
mod limiter;

#[path = "loom_models/wait.rs"]
mod wait;

#[path = "loom_models/budget.rs"]
mod budget;

#[path = "loom_models/limits.rs"]
mod limits;

#[path = "loom_models/breaker.rs"]
mod breaker;
