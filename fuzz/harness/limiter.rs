//! Fuzz harness for the limiter: decodes bytes into an algorithm and an operation sequence
//! with time steps, runs it, and checks after every operation the invariants and a sequential
//! model of admission and the counters. Shared by the fuzz target and by `cargo test`, which
//! replays the committed corpus (`tests/fuzz_corpus.rs`).

use arbitrary::{Arbitrary, Result, Unstructured};
use valve::{
    Aimd, AimdConfig, EnvoyGradient, EnvoyGradientConfig, Fixed, Gradient2, Gradient2Config,
    LimitAlgorithm, Limiter, Outcome, Permit, Vegas, VegasConfig, WindowConfig,
};

#[derive(Debug, Arbitrary)]
enum Algorithm {
    Fixed(u16),
    AimdNetflix,
    AimdDefault,
    AimdPerSample { min: u8, max: u16, initial: u16, step: u8, backoff_permille: u16 },
    Gradient2Netflix,
    Gradient2Default,
    VegasNetflix,
    VegasDefault,
    EnvoyGradientEnvoy,
    EnvoyGradientDefault,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Acquire,
    Finish { index: u8, outcome: u8, rtt_us: u32 },
    SetLimit(u32),
    Advance(u32),
    Snapshot,
}

#[derive(Debug, Default)]
struct Model {
    in_flight: u32,
    admitted: u64,
    rejected: u64,
    success: u64,
    dropped: u64,
    ignored: u64,
}

/// Runs one input; panics on any broken invariant.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run_unstructured(&mut u);
}

fn run_unstructured(u: &mut Unstructured<'_>) -> Result<()> {
    let algorithm: Box<dyn LimitAlgorithm> = match Algorithm::arbitrary(u)? {
        Algorithm::Fixed(limit) => match Fixed::new(u32::from(limit)) {
            Ok(fixed) => Box::new(fixed),
            Err(_) => return Ok(()),
        },
        Algorithm::AimdNetflix => Box::new(Aimd::new(AimdConfig::netflix()).unwrap()),
        Algorithm::AimdDefault => Box::new(Aimd::default()),
        Algorithm::AimdPerSample { min, max, initial, step, backoff_permille } => {
            let config = AimdConfig {
                min_limit: u32::from(min),
                max_limit: u32::from(max),
                initial_limit: u32::from(initial),
                increase_step: u32::from(step),
                backoff_ratio: f64::from(backoff_permille) / 1000.0,
                window: WindowConfig::per_sample(),
                ..AimdConfig::default()
            };
            match Aimd::new(config) {
                Ok(aimd) => Box::new(aimd),
                Err(_) => return Ok(()),
            }
        }
        Algorithm::Gradient2Netflix => {
            Box::new(Gradient2::new(Gradient2Config::netflix()).unwrap())
        }
        Algorithm::Gradient2Default => Box::new(Gradient2::default()),
        Algorithm::VegasNetflix => Box::new(Vegas::new(VegasConfig::netflix()).unwrap()),
        Algorithm::VegasDefault => Box::new(Vegas::default()),
        Algorithm::EnvoyGradientEnvoy => {
            Box::new(EnvoyGradient::new(EnvoyGradientConfig::envoy()).unwrap())
        }
        Algorithm::EnvoyGradientDefault => Box::new(EnvoyGradient::default()),
    };
    let bounds = algorithm.bounds();
    let limiter = Limiter::new(algorithm).expect("validated algorithms build a limiter");
    let mut model = Model::default();
    let mut held: Vec<Permit<'_, Box<dyn LimitAlgorithm>, _>> = Vec::new();
    let mut now = 0u64;
    while !u.is_empty() && held.len() < 4096 {
        match Op::arbitrary(u)? {
            Op::Acquire => {
                let (in_flight, limit) = (limiter.in_flight(), limiter.limit());
                match limiter.try_acquire_at(now) {
                    Ok(permit) => {
                        assert!(in_flight < limit, "admitted at {in_flight} of {limit}");
                        assert_eq!(permit.in_flight_at_acquire(), in_flight + 1);
                        model.in_flight += 1;
                        model.admitted += 1;
                        held.push(permit);
                    }
                    Err(rejected) => {
                        assert!(in_flight >= limit, "refused at {in_flight} of {limit}");
                        assert_eq!((rejected.limit, rejected.in_flight), (limit, in_flight));
                        model.rejected += 1;
                    }
                }
            }
            Op::Finish { index, outcome, rtt_us } if !held.is_empty() => {
                let permit = held.swap_remove(usize::from(index) % held.len());
                let end = permit.start().saturating_add(u64::from(rtt_us) * 1000).max(now);
                now = end;
                model.in_flight -= 1;
                match outcome % 4 {
                    0 | 1 => {
                        permit.finish(Outcome::Success, end);
                        model.success += 1;
                    }
                    2 => {
                        permit.finish(Outcome::Dropped, end);
                        model.dropped += 1;
                    }
                    _ => {
                        drop(permit);
                        model.ignored += 1;
                    }
                }
            }
            Op::Finish { .. } => {}
            Op::SetLimit(limit) => {
                let set = limiter.set_limit(limit);
                assert_eq!(set, limit.clamp(bounds.min, bounds.max));
            }
            Op::Advance(ns) => now = now.saturating_add(u64::from(ns)),
            Op::Snapshot => {}
        }
        let s = limiter.snapshot();
        assert!((bounds.min..=bounds.max).contains(&s.limit), "limit {} out of bounds", s.limit);
        assert_eq!(
            (s.in_flight, s.admitted, s.rejected, s.success, s.dropped, s.ignored),
            (
                model.in_flight,
                model.admitted,
                model.rejected,
                model.success,
                model.dropped,
                model.ignored
            )
        );
    }
    drop(held);
    assert_eq!(limiter.in_flight(), 0);
    Ok(())
}
