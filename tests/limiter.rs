//! Integration tests of the limiter through the public API.

use std::sync::Arc;
use std::time::Duration;

use valve::{
    Aimd, AimdConfig, Fixed, LimitAlgorithm, LimitBounds, Limiter, ManualClock, Outcome,
    WindowConfig, WindowSample,
};

const MS: u64 = 1_000_000;

#[test]
fn fixed_limit_admits_exactly_the_limit_and_sheds_the_rest() {
    let limiter = Limiter::new(Fixed::new(3).unwrap()).unwrap();
    let permits: Vec<_> = (0..3).map(|_| limiter.try_acquire_at(0).unwrap()).collect();
    let rejected = limiter.try_acquire_at(0).unwrap_err();
    assert_eq!((rejected.limit, rejected.in_flight), (3, 3));
    assert_eq!(permits.iter().map(|p| p.in_flight_at_acquire()).collect::<Vec<_>>(), [1, 2, 3]);
    drop(permits);
    let s = limiter.snapshot();
    assert_eq!((s.admitted, s.rejected, s.ignored, s.in_flight), (3, 1, 3, 0));
}

#[test]
fn outcomes_are_counted_and_balance() {
    let clock = Arc::new(ManualClock::new(0));
    let limiter = Limiter::with_clock(Fixed::new(10).unwrap(), clock.clone()).unwrap();
    let a = limiter.try_acquire().unwrap();
    let b = limiter.try_acquire().unwrap();
    let c = limiter.try_acquire().unwrap();
    let d = limiter.try_acquire().unwrap();
    clock.advance(Duration::from_millis(5));
    a.success();
    b.dropped();
    c.ignored();
    d.finish(Outcome::Success, 7 * MS);
    let s = limiter.snapshot();
    assert_eq!((s.success, s.dropped, s.ignored, s.admitted, s.in_flight), (2, 1, 1, 4, 0));
    assert_eq!(s.admitted, s.success + s.dropped + s.ignored + u64::from(s.in_flight));
}

#[test]
fn lowering_the_limit_stops_admission_but_revokes_nothing() {
    let limiter = Limiter::new(Fixed::new(4).unwrap()).unwrap();
    let held: Vec<_> = (0..4).map(|_| limiter.try_acquire_at(0).unwrap()).collect();
    assert_eq!(limiter.set_limit(2), 2);
    assert_eq!(limiter.in_flight(), 4);
    let mut held = held.into_iter();
    held.next().unwrap().success_at(1);
    held.next().unwrap().success_at(1);
    assert!(limiter.try_acquire_at(1).is_err(), "2 in flight at limit 2");
    held.next().unwrap().success_at(1);
    assert!(limiter.try_acquire_at(1).is_ok());
}

#[test]
fn set_limit_is_clamped_to_the_algorithm_bounds() {
    let limiter = Limiter::new(Aimd::new(AimdConfig::netflix()).unwrap()).unwrap();
    assert_eq!(limiter.set_limit(5), 20);
    assert_eq!(limiter.set_limit(5000), 200);
    assert_eq!(limiter.limit(), 200);
}

#[test]
fn aimd_per_sample_grows_when_used_and_backs_off_on_drops() {
    let config = AimdConfig {
        window: WindowConfig::per_sample(),
        slow_start: false,
        // The drop and utilisation rules alone (the latency rule has its own tests).
        latency: None,
        ..AimdConfig::default()
    };
    let limiter = Limiter::new(Aimd::new(config).unwrap()).unwrap();
    assert_eq!(limiter.limit(), 20);
    // Sixteen calls in flight at once: the sixteenth is admitted with in-flight 20 * 0.8.
    let permits: Vec<_> = (0..16).map(|_| limiter.try_acquire_at(0).unwrap()).collect();
    let mut t = 0;
    for p in permits {
        t += MS;
        p.success_at(t);
    }
    // Only permits admitted with in-flight >= 0.8 x limit grow the limit: the 16th (16 >= 16)
    // gives 21; after that 16 < 16.8.
    assert_eq!(limiter.limit(), 21);
    limiter.try_acquire_at(t).unwrap().dropped_at(t + MS);
    assert_eq!(limiter.limit(), 18); // trunc(21 * 0.9)
}

#[test]
fn aimd_windowed_updates_once_per_window() {
    let config = AimdConfig {
        window: WindowConfig {
            min_duration: Duration::from_millis(100),
            max_duration: Duration::from_millis(100),
            min_samples: 5,
            min_rtt_threshold: Duration::ZERO,
            percentile: None,
        },
        slow_start: false,
        // The drop and utilisation rules alone (the latency rule has its own tests).
        latency: None,
        ..AimdConfig::default()
    };
    let limiter = Limiter::new(Aimd::new(config).unwrap()).unwrap();
    let mut now = 0;
    // 20 in flight at a time keeps 20 >= 0.8 x 24. The first window closes at its fifth sample
    // (the window schedule starts at 0), every later one at the first sample 100 ms after the
    // previous close; each sees the newest permits first, so each grows the limit by one.
    for window in 0..5u32 {
        let permits: Vec<_> = (0..20).map(|_| limiter.try_acquire_at(now).unwrap()).collect();
        now += 100 * MS;
        for p in permits.into_iter().rev() {
            p.success_at(now);
        }
        assert_eq!(limiter.limit(), 21 + window, "window {window}");
    }
    let s = limiter.snapshot();
    assert_eq!(s.success, 100);
    assert_eq!(s.sample_rtt_ns, 100 * MS);
}

/// A user-written algorithm: the trait is the extension point.
struct Halving;

impl LimitAlgorithm for Halving {
    fn initial_limit(&self) -> u32 {
        64
    }
    fn bounds(&self) -> LimitBounds {
        LimitBounds::new(1, 64).unwrap()
    }
    fn window(&self) -> WindowConfig {
        WindowConfig::per_sample()
    }
    fn update(&mut self, _sample: &WindowSample, limit: u32) -> u32 {
        limit / 2
    }
}

#[test]
fn user_algorithms_plug_in_boxed() {
    let algorithm: Box<dyn LimitAlgorithm> = Box::new(Halving);
    let limiter = Limiter::new(algorithm).unwrap();
    for expected in [32, 16, 8, 4, 2, 1, 1] {
        limiter.try_acquire_at(0).unwrap().success_at(1);
        assert_eq!(limiter.limit(), expected);
    }
}

/// An algorithm whose own description is invalid is refused by the limiter, not trusted.
struct Broken(u32, u32, u32);

impl LimitAlgorithm for Broken {
    fn initial_limit(&self) -> u32 {
        self.0
    }
    fn bounds(&self) -> LimitBounds {
        LimitBounds { min: self.1, max: self.2 }
    }
    fn window(&self) -> WindowConfig {
        WindowConfig::per_sample()
    }
    fn update(&mut self, _sample: &WindowSample, limit: u32) -> u32 {
        limit
    }
}

#[test]
fn invalid_user_algorithms_are_refused() {
    assert!(Limiter::new(Broken(5, 10, 2)).is_err());
    assert!(Limiter::new(Broken(0, 0, 2)).is_err());
    assert!(Limiter::new(Broken(50, 1, 10)).is_err());
    assert!(Limiter::new(Broken(5, 1, 10)).is_ok());
}

/// An update that returns out-of-bounds values is clamped before it is published.
struct Wild;

impl LimitAlgorithm for Wild {
    fn initial_limit(&self) -> u32 {
        5
    }
    fn bounds(&self) -> LimitBounds {
        LimitBounds::new(2, 8).unwrap()
    }
    fn window(&self) -> WindowConfig {
        WindowConfig::per_sample()
    }
    fn update(&mut self, sample: &WindowSample, _limit: u32) -> u32 {
        if sample.did_drop { 0 } else { u32::MAX }
    }
}

#[test]
fn algorithm_output_is_clamped() {
    let limiter = Limiter::new(Wild).unwrap();
    limiter.try_acquire_at(0).unwrap().success_at(1);
    assert_eq!(limiter.limit(), 8);
    limiter.try_acquire_at(0).unwrap().dropped_at(1);
    assert_eq!(limiter.limit(), 2);
}
