//! The C ABI: every control behind `extern "C"` functions, declared in `include/valve.h`.
//!
//! Non-Rust services (C directly; Go through cgo and Python through cffi in `ffi/`) reach the
//! same core through these functions; no logic lives only here. The header is generated from
//! this module by a pinned cbindgen (`cbindgen.toml`, `ffi/check-header.sh`) and checked in.
//! Rust code can call the functions too: the benchmarks and the fuzzer do.
//!
//! Conventions (DESIGN.md, "C ABI conventions"; modelled on rustls-ffi and hyper's C API):
//!
//! - Opaque handles are created by `valve_<control>_new(&config, &out)` and released by
//!   `valve_<control>_free` (NULL is a no-op). Handles are thread-safe; each function's
//!   documentation says what may run concurrently.
//! - Configs are `#[repr(C)]` structs filled by `valve_<control>_config_default()` and preset
//!   functions; constructors validate them and answer [`valve_status::VALVE_INVALID_ARGUMENT`].
//! - Every fallible function returns a [`valve_status`]; [`valve_status_name`] names each code.
//!   Enumerations coming in from C are `uint32_t` and checked, never transmuted.
//! - Every entry point is a panic boundary (`boundary`) and checks every pointer for NULL.
//! - Every handle is allocated with a live tag after it (`Live`), which its free clears and
//!   every entry point checks: a double free or a use after free is refused while the freed
//!   memory is not reused (`VALVE_INVALID_HANDLE`), and undetectable once it is.
//! - Time is `uint64_t` nanoseconds. Each operation has an `_at(now_ns)` form taking the
//!   caller's time and a form that reads the handle's monotonic clock; use one timeline per
//!   handle.
//! - Permits are plain structs written into caller memory: nothing is allocated per call.
//!
//! | file | what |
//! |---|---|
//! | this file | [`valve_status`], the panic boundary, version functions, handle helpers |
//! | `limiter.rs` | the concurrency limiter, its blocking waits, the FIXED and AIMD configs |
//! | `cancel.rs` | cancellation tokens for blocking waits |
//! | `limit.rs` | the configs of the other limit algorithms and of the waiter queue |
//! | `budget.rs` | retry budgets: token quota (gRPC, AWS), windowed (Finagle), concurrency (Envoy) |
//! | `backoff.rs` | backoff delays with jitter |
//! | `breaker.rs` | the circuit breaker, its presets and permits |
//!
//! Adding a control is one more file here holding its handle, config, presets and operations,
//! built from `boundary`, [`valve_status`] and the same NULL and live-tag checks (`new_handle`,
//! `free_handle`, `with_handle`, `live_ref`, `live_mut` and `write_out` hold the repeated
//! parts).

// The C names are the API: `valve_status`, `VALVE_OK`, as the header spells them.
#![allow(non_camel_case_types)]

use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

mod backoff;
mod breaker;
mod budget;
mod cancel;
mod limit;
mod limiter;

pub use backoff::*;
pub use breaker::*;
pub use budget::*;
pub use cancel::*;
pub use limit::*;
pub use limiter::*;

/// The result of every fallible valve function.
///
/// Values are stable: a code keeps its number across versions, new codes get new numbers.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum valve_status {
    /// Success.
    VALVE_OK = 0,
    /// Admission refused: the limit was reached. Not an error: shed the work.
    VALVE_REJECTED = 1,
    /// A config failed validation, or an enumeration value is unknown.
    VALVE_INVALID_ARGUMENT = 2,
    /// A required pointer argument was NULL.
    VALVE_NULL_POINTER = 3,
    /// The permit holds no slot: it was already released, or never acquired.
    VALVE_STALE_PERMIT = 4,
    /// The permit holds a slot of another handle.
    VALVE_FOREIGN_PERMIT = 5,
    /// valve panicked inside the call (a bug in valve): the handle should be freed.
    VALVE_INTERNAL = 6,
    /// A blocking wait's deadline passed before a slot was free.
    VALVE_TIMEOUT = 7,
    /// The client's own retry budget (token quota, windowed or concurrency budget) refused a
    /// retry or hedge: not an error and not a signal from the server. Do not retry.
    VALVE_BUDGET_EXHAUSTED = 8,
    /// A blocking wait's `valve_cancel_token` was cancelled before a slot was free.
    VALVE_CANCELLED = 9,
    /// The handle was freed: its live tag is cleared. Nothing was done. Best effort: a freed
    /// handle whose memory was reused is not caught ("Handles" at the top of this header).
    VALVE_INVALID_HANDLE = 10,
}

/// The name of a status code, e.g. `"VALVE_OK"`, or `"VALVE_UNKNOWN_STATUS"` for a code that is
/// not a `valve_status`.
///
/// Returns a static NUL-terminated string that must not be freed. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_status_name(code: u32) -> *const c_char {
    boundary(UNKNOWN_STATUS.as_ptr().cast(), || status_name(code).as_ptr().cast())
}

const UNKNOWN_STATUS: &[u8] = b"VALVE_UNKNOWN_STATUS\0";

fn status_name(code: u32) -> &'static [u8] {
    match code {
        0 => b"VALVE_OK\0",
        1 => b"VALVE_REJECTED\0",
        2 => b"VALVE_INVALID_ARGUMENT\0",
        3 => b"VALVE_NULL_POINTER\0",
        4 => b"VALVE_STALE_PERMIT\0",
        5 => b"VALVE_FOREIGN_PERMIT\0",
        6 => b"VALVE_INTERNAL\0",
        7 => b"VALVE_TIMEOUT\0",
        8 => b"VALVE_BUDGET_EXHAUSTED\0",
        9 => b"VALVE_CANCELLED\0",
        10 => b"VALVE_INVALID_HANDLE\0",
        _ => UNKNOWN_STATUS,
    }
}

/// The library version as a string, e.g. `"0.1.0"`.
///
/// Returns a static NUL-terminated string that must not be freed. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    boundary(VERSION.as_ptr().cast(), || VERSION.as_ptr().cast())
}

/// The library version as `(major << 16) | (minor << 8) | patch`, comparable with the header's
/// `VALVE_VERSION_NUMBER` to detect a header/library mismatch. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn valve_version_number() -> u32 {
    boundary(VERSION_NUMBER, || VERSION_NUMBER)
}

const VERSION_NUMBER: u32 = (parse_u32(env!("CARGO_PKG_VERSION_MAJOR")) << 16)
    | (parse_u32(env!("CARGO_PKG_VERSION_MINOR")) << 8)
    | parse_u32(env!("CARGO_PKG_VERSION_PATCH"));

/// Parses a version component at compile time (Cargo guarantees decimal digits).
const fn parse_u32(digits: &str) -> u32 {
    let bytes = digits.as_bytes();
    let mut value = 0;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}

/// The panic boundary: runs `body`, answering `on_panic` if it panics.
///
/// Since Rust 1.81 a panic leaving an `extern "C"` function aborts the process; catching it
/// here turns a bug into an error code instead. `AssertUnwindSafe` is sound because the
/// caller is told to free a handle that answered [`valve_status::VALVE_INTERNAL`].
#[inline(always)]
pub(crate) fn boundary<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// [`boundary`] for functions answering a [`valve_status`].
#[inline(always)]
pub(crate) fn status_boundary(body: impl FnOnce() -> valve_status) -> valve_status {
    boundary(valve_status::VALVE_INTERNAL, body)
}

/// A handle as allocated: the value its functions use, then a tag that says it is live.
///
/// `new_handle` writes [`LIVE`] into `tag`; `free_handle` overwrites it before it frees the
/// memory, and every entry point reads it before using the handle. So a handle freed twice, or
/// used after its free, is refused (`VALVE_INVALID_HANDLE`; a second free does nothing) for as
/// long as the freed memory is not reused. Once the allocator hands it out again it holds
/// whatever its new owner wrote, possibly a new handle of the same type, and the check proves
/// nothing: it catches a use after free, it does not make one defined. `value` comes first, so a
/// handle's address is its value's address.
#[repr(C)]
struct Live<T> {
    value: T,
    tag: u64,
}

/// The tag of a live handle: 8 bytes a freed chunk is unlikely to hold by chance.
const LIVE: u64 = u64::from_le_bytes(*b"valve\0ok");

/// Why a handle pointer was not usable: NULL, or a handle that is not live.
#[inline(always)]
fn unusable<T>(handle: *const T) -> valve_status {
    if handle.is_null() {
        valve_status::VALVE_NULL_POINTER
    } else {
        valve_status::VALVE_INVALID_HANDLE
    }
}

/// Builds a handle and stores it in `*out` (NULL on failure): the body of every `_new`.
///
/// # Safety
///
/// `out` must be NULL or writable for one pointer.
pub(crate) unsafe fn new_handle<T>(
    out: *mut *mut T,
    build: impl FnOnce() -> Result<T, valve_status>,
) -> valve_status {
    status_boundary(|| {
        if out.is_null() {
            return valve_status::VALVE_NULL_POINTER;
        }
        // SAFETY: `out` is non-null and writable for one pointer (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        match build() {
            Ok(value) => {
                let handle = Box::into_raw(Box::new(Live { value, tag: LIVE }));
                // SAFETY: as above; `value` is at offset 0 of the `repr(C)` `Live`.
                unsafe { out.write(handle.cast::<T>()) };
                valve_status::VALVE_OK
            }
            Err(status) => status,
        }
    })
}

/// Frees a handle made by [`new_handle`]; NULL, or a handle whose tag says it was freed
/// already, is a no-op: the body of every `_free`.
///
/// # Safety
///
/// `handle` must be NULL or a live handle from [`new_handle`], used by nothing else now or
/// later.
pub(crate) unsafe fn free_handle<T>(handle: *mut T) {
    boundary((), || {
        // SAFETY: NULL or a live handle (the caller's contract).
        if let Ok(live) = unsafe { checked(handle) } {
            // SAFETY: a live `Live<T>` from `Box::into_raw`, now ours alone. Volatile, so the
            // store is not dropped as dead before the free: the next check must see it.
            unsafe { std::ptr::addr_of_mut!((*live).tag).write_volatile(!LIVE) };
            // SAFETY: as above; the caller gives up every other use.
            drop(unsafe { Box::from_raw(live) });
        }
    });
}

/// `handle` as its allocation, if it is not NULL and its tag says it is live.
///
/// # Safety
///
/// `handle` must be NULL or a live handle from [`new_handle`]. (The tag check is for callers
/// that break this by passing a freed one; see [`Live`] for what it can and cannot catch.)
#[inline(always)]
unsafe fn checked<T>(handle: *const T) -> Result<*mut Live<T>, valve_status> {
    let live = handle.cast::<Live<T>>().cast_mut();
    // SAFETY: NULL or a handle from `new_handle` (the caller's contract). Volatile: the tag is
    // read from memory as it is now, never assumed from what this code stored.
    if live.is_null() || unsafe { std::ptr::addr_of!((*live).tag).read_volatile() } != LIVE {
        return Err(unusable(handle));
    }
    Ok(live)
}

/// The handle behind `handle`, if it is not NULL and its tag says it is live.
///
/// # Safety
///
/// As [`checked`]; the handle is shared for the lifetime the caller picks (one call).
#[inline(always)]
pub(crate) unsafe fn live_ref<'a, T>(handle: *const T) -> Result<&'a T, valve_status> {
    // SAFETY: forwarded caller contract; live, so `value` is initialised.
    unsafe { checked(handle).map(|live| &(*live).value) }
}

/// As [`live_ref`], for the handles whose functions take them exclusively.
///
/// # Safety
///
/// As [`checked`], and no other reference to the handle may exist during the call.
#[inline(always)]
pub(crate) unsafe fn live_mut<'a, T>(handle: *mut T) -> Result<&'a mut T, valve_status> {
    // SAFETY: forwarded caller contract; live and exclusively ours for the call.
    unsafe { checked(handle).map(|live| &mut (*live).value) }
}

/// Runs `body` on a shared handle, answering `VALVE_NULL_POINTER` for NULL and
/// `VALVE_INVALID_HANDLE` for a handle that is not live.
///
/// # Safety
///
/// `handle` must be NULL or a live handle.
#[inline(always)]
pub(crate) unsafe fn with_handle<T>(
    handle: *const T,
    body: impl FnOnce(&T) -> valve_status,
) -> valve_status {
    status_boundary(|| {
        // SAFETY: NULL or a live handle (the caller's contract).
        match unsafe { live_ref(handle) } {
            Ok(handle) => body(handle),
            Err(status) => status,
        }
    })
}

/// Writes `value` into `*out`, answering `VALVE_NULL_POINTER` for NULL.
///
/// # Safety
///
/// `out` must be NULL or writable and not accessed by another thread during the call.
#[inline(always)]
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) -> valve_status {
    // SAFETY: NULL or writable (the caller's contract).
    match unsafe { out.as_mut() } {
        Some(out) => {
            *out = value;
            valve_status::VALVE_OK
        }
        None => valve_status::VALVE_NULL_POINTER,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn name(code: u32) -> &'static str {
        // SAFETY: `valve_status_name` always returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(valve_status_name(code)) }.to_str().unwrap()
    }

    #[test]
    fn every_status_has_its_own_name() {
        let all = [
            valve_status::VALVE_OK,
            valve_status::VALVE_REJECTED,
            valve_status::VALVE_INVALID_ARGUMENT,
            valve_status::VALVE_NULL_POINTER,
            valve_status::VALVE_STALE_PERMIT,
            valve_status::VALVE_FOREIGN_PERMIT,
            valve_status::VALVE_INTERNAL,
            valve_status::VALVE_TIMEOUT,
            valve_status::VALVE_BUDGET_EXHAUSTED,
            valve_status::VALVE_CANCELLED,
            valve_status::VALVE_INVALID_HANDLE,
        ];
        for status in all {
            assert_eq!(name(status as u32), format!("{status:?}"));
        }
        assert_eq!(name(all.len() as u32), "VALVE_UNKNOWN_STATUS");
        assert_eq!(name(u32::MAX), "VALVE_UNKNOWN_STATUS");
    }

    #[test]
    fn version_matches_the_package() {
        // SAFETY: `valve_version` returns a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(valve_version()) }.to_str().unwrap();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(valve_version_number(), (parts[0] << 16) | (parts[1] << 8) | parts[2]);
    }

    #[test]
    fn a_panic_becomes_a_status() {
        let status = status_boundary(|| panic!("bug"));
        assert_eq!(status, valve_status::VALVE_INTERNAL);
    }
}
