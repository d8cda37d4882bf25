//! Typed configuration errors, shared by every control's constructor.
//!
//! Constructors validate their whole config and return the first problem found; nothing on a
//! hot path can fail this way. The C ABI maps every variant to `VALVE_INVALID_ARGUMENT`.

use std::fmt;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A lower bound is above its upper bound.
    MinAboveMax {
        /// The configuration field, e.g. `"limit"`.
        field: &'static str,
        /// The lower bound given.
        min: u64,
        /// The upper bound given.
        max: u64,
    },
    /// A value lies outside the range it must be in.
    OutOfRange {
        /// The configuration field.
        field: &'static str,
        /// The value given, as text (integer or float).
        value: String,
        /// The allowed range, as text, e.g. `"[0.5, 1)"`.
        allowed: &'static str,
    },
    /// A float is NaN or infinite.
    NotFinite {
        /// The configuration field.
        field: &'static str,
    },
    /// A value that must be positive is zero.
    Zero {
        /// The configuration field.
        field: &'static str,
    },
}

impl ConfigError {
    pub(crate) fn out_of_range(
        field: &'static str,
        value: impl fmt::Display,
        allowed: &'static str,
    ) -> Self {
        Self::OutOfRange { field, value: value.to_string(), allowed }
    }

    /// Checks a limit's `utilisation_threshold`, the share of the limit a window's in-flight
    /// must reach for the limit to grow: finite and in `[0, 1]`.
    pub(crate) fn check_utilisation(value: f64) -> Result<(), Self> {
        Self::check_ratio("utilisation_threshold", value, 0.0, 1.0, true, "[0, 1]")
    }

    /// Checks that `value` is finite and inside `range` (`lo_inclusive`/`hi_inclusive` pick the
    /// brackets); `allowed` is the range as shown to the user.
    pub(crate) fn check_ratio(
        field: &'static str,
        value: f64,
        lo: f64,
        hi: f64,
        hi_inclusive: bool,
        allowed: &'static str,
    ) -> Result<(), Self> {
        if !value.is_finite() {
            return Err(Self::NotFinite { field });
        }
        let inside = value >= lo && if hi_inclusive { value <= hi } else { value < hi };
        if inside { Ok(()) } else { Err(Self::out_of_range(field, value, allowed)) }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MinAboveMax { field, min, max } => {
                write!(f, "invalid {field} bounds: min {min} is above max {max}")
            }
            Self::OutOfRange { field, value, allowed } => {
                write!(f, "{field} is {value}, outside {allowed}")
            }
            Self::NotFinite { field } => write!(f, "{field} is NaN or infinite"),
            Self::Zero { field } => write!(f, "{field} must not be zero"),
        }
    }
}

impl std::error::Error for ConfigError {}
