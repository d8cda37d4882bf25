//! Freed handles through the C ABI (issue 17, "also seen"): each handle carries a tag that its
//! free clears, so a second free, or a call through a freed handle, is refused while the freed
//! memory is not reused. One test, alone in its binary, so no other test's allocation can reuse
//! a freed handle's memory between its free and the calls that must find it freed.

use std::ptr;

use valve::LimiterSnapshot;
use valve::ffi::*;

const OK: valve_status = valve_status::VALVE_OK;
const IGNORED: u32 = valve_outcome::VALVE_OUTCOME_IGNORED as u32;
const HELD: u32 = valve_permit_state::VALVE_PERMIT_HELD as u32;

const FREED: valve_status = valve_status::VALVE_INVALID_HANDLE;

/// "Also seen" in issue 17: a release through a freed limiter answered `VALVE_OK`. A freed
/// handle's tag is cleared, so every entry point refuses it while its memory is not reused
/// (nothing allocates between the free and the calls here). What the check cannot catch is
/// in the header's "Handles" section.
fn a_release_through_a_freed_limiter_is_refused() {
    let mut handle = ptr::null_mut();
    let mut permit = valve_permit { limiter_id: 0, start_ns: 0, in_flight: 0, state: 0 };
    let mut snapshot = LimiterSnapshot::default();
    // SAFETY (this block): the handle is live until its free; every call after the free is
    // the misuse under test, which the tag check refuses before touching the handle.
    unsafe {
        assert_eq!(valve_limiter_new(&valve_limiter_config_fixed(2), &mut handle), OK);
        assert_eq!(valve_limiter_try_acquire(handle, &mut permit), OK);
        valve_limiter_free(handle);
        assert_eq!(valve_limiter_release(handle, &mut permit, IGNORED), FREED);
        assert_eq!(valve_limiter_release_at(handle, &mut permit, IGNORED, 1), FREED);
        assert_eq!(permit.state, HELD, "a refused call changes nothing");
        assert_eq!(valve_limiter_try_acquire(handle, &mut permit), FREED);
        assert_eq!(valve_limiter_try_acquire_at(handle, 1, &mut permit), FREED);
        assert_eq!(valve_limiter_acquire_timeout(handle, 0, &mut permit), FREED);
        assert_eq!(valve_limiter_set_limit(handle, 1, ptr::null_mut()), FREED);
        assert_eq!(valve_limiter_get_snapshot(handle, &mut snapshot), FREED);
        assert_eq!((valve_limiter_id(handle), valve_limiter_now(handle)), (0, 0));
        assert_eq!(
            valve_limiter_release(ptr::null(), &mut permit, IGNORED),
            valve_status::VALVE_NULL_POINTER
        );
    }
}

/// "Also seen" in issue 17: freeing a handle twice aborted or crashed. The second free of
/// each handle type now finds the tag cleared and does nothing, and the handle's other
/// functions refuse it, for as long as its memory is not reused.
fn freeing_a_handle_twice_is_a_no_op() {
    let mut snapshot = valve::BudgetSnapshot::default();
    let mut delay = 0;
    // SAFETY (this block): each handle is live until its first free; every call after it is
    // the misuse under test, which the tag check refuses before touching the handle.
    unsafe {
        let mut limiter = ptr::null_mut();
        assert_eq!(valve_limiter_new(&valve_limiter_config_default(), &mut limiter), OK);
        valve_limiter_free(limiter);
        valve_limiter_free(limiter);

        let mut quota = ptr::null_mut();
        let config = valve_token_quota_config_aws_standard_2026();
        assert_eq!(valve_token_quota_new(&config, &mut quota), OK);
        valve_token_quota_free(quota);
        assert_eq!(valve_token_quota_get_snapshot(quota, &mut snapshot), FREED);
        assert_eq!(valve_token_quota_balance(quota), 0);
        valve_token_quota_free(quota);

        let mut windowed = ptr::null_mut();
        assert_eq!(valve_windowed_budget_new(&valve_windowed_config_finagle(), &mut windowed), OK);
        valve_windowed_budget_free(windowed);
        assert_eq!(valve_windowed_budget_try_withdraw(windowed), FREED);
        valve_windowed_budget_free(windowed);

        let mut concurrency = ptr::null_mut();
        let config = valve_concurrency_budget_config_envoy();
        assert_eq!(valve_concurrency_budget_new(&config, &mut concurrency), OK);
        valve_concurrency_budget_free(concurrency);
        assert_eq!(valve_concurrency_budget_get_snapshot(concurrency, &mut snapshot), FREED);
        valve_concurrency_budget_free(concurrency);

        let mut breaker = ptr::null_mut();
        assert_eq!(valve_breaker_new(&valve_breaker_config_default(), &mut breaker), OK);
        valve_breaker_free(breaker);
        assert_eq!(valve_breaker_reset(breaker), FREED);
        assert_eq!(valve_breaker_id(breaker), 0);
        valve_breaker_free(breaker);

        let mut token = ptr::null_mut();
        assert_eq!(valve_cancel_token_new(&mut token), OK);
        valve_cancel_token_free(token);
        assert_eq!(valve_cancel_token_cancel(token), FREED);
        valve_cancel_token_free(token);

        let mut backoff = ptr::null_mut();
        assert_eq!(valve_backoff_new(&valve_backoff_config_aws_c_io(), 1, &mut backoff), OK);
        valve_backoff_free(backoff);
        assert_eq!(valve_backoff_next_delay_ns(backoff, u64::MAX, &mut delay), FREED);
        assert_eq!(valve_backoff_reset(backoff), FREED);
        valve_backoff_free(backoff);
    }
}

#[test]
fn freed_handles_are_refused() {
    a_release_through_a_freed_limiter_is_refused();
    freeing_a_handle_twice_is_a_no_op();
}
