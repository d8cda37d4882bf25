//! A limit that does not learn: Netflix `FixedLimit` / `SettableLimit`.
//!
//! Contains work in progress at a level the operator chose; change it by hand with
//! [`Limiter::set_limit`](crate::Limiter::set_limit).

use crate::error::ConfigError;
use crate::limit::{LimitAlgorithm, LimitBounds, MAX_LIMIT, WindowConfig, WindowSample};

/// A constant limit, settable by hand. Its window never closes, so it costs no updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    limit: u32,
}

impl Fixed {
    /// A limit of `limit` (in `[1, MAX_LIMIT]`).
    pub fn new(limit: u32) -> Result<Self, ConfigError> {
        LimitBounds::new(1, MAX_LIMIT)?.check_initial(limit)?;
        Ok(Self { limit })
    }
}

impl LimitAlgorithm for Fixed {
    fn initial_limit(&self) -> u32 {
        self.limit
    }

    fn bounds(&self) -> LimitBounds {
        LimitBounds { min: 1, max: MAX_LIMIT }
    }

    fn window(&self) -> WindowConfig {
        WindowConfig::never()
    }

    /// Keeps whatever limit is in force, including one set by hand.
    fn update(&mut self, _sample: &WindowSample, limit: u32) -> u32 {
        limit
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn fixed_rejects_zero_and_huge_limits() {
        assert!(Fixed::new(0).is_err());
        assert!(Fixed::new(MAX_LIMIT + 1).is_err());
        let mut f = Fixed::new(7).unwrap();
        assert_eq!(f.initial_limit(), 7);
        assert_eq!(f.update(&WindowSample::single(0, 1, 1, true), 9), 9);
    }
}
