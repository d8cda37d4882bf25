//! Fuzz harness for the C ABI: decodes bytes into hostile call sequences over the `extern "C"`
//! functions (NULL handles and out-pointers, invalid configs, out-of-range enumeration values,
//! double, copied and foreign permits, releases after limit changes and after a handle was
//! freed) and checks every status against a small model, and the handles' invariants after
//! every call. Shared by the fuzz target and by `cargo test`, which replays the committed
//! corpus (`tests/fuzz_corpus.rs`).

use std::ptr;

use arbitrary::{Arbitrary, Result, Unstructured};
use valve::ffi::*;
use valve::{BreakerSnapshot, BudgetSnapshot, LimiterSnapshot, QuotaWithdrawal};

const LIMITERS: usize = 2;
const PERMITS: usize = 8;

#[derive(Debug, Arbitrary)]
enum Op {
    NewLimiter { at: u8, preset: u8, algorithm: u32, limit: u16, ordering: u32 },
    FreeLimiter(u8),
    Acquire { at: u8, slot: u8 },
    AcquireUntil { at: u8, slot: u8 },
    Release { at: u8, slot: u8, outcome: u32 },
    Copy { from: u8, to: u8 },
    Forge { slot: u8, state: u32 },
    SetLimit { at: u8, limit: u32 },
    Advance(u32),
    BreakerAcquire { slot: u8 },
    BreakerRecord { slot: u8, outcome: u32 },
    BreakerTransition(u32),
    BreakerPoll,
    QuotaRetry { class: u32 },
    QuotaSuccess { refund: bool },
    Windowed { withdraw: bool },
    Concurrency(u8),
    Backoff { retry_after: u64 },
    Nulls,
}

#[derive(Clone, Copy)]
struct LimiterModel {
    handle: *mut valve_limiter,
    in_flight: u32,
}

const EMPTY_PERMIT: valve_permit =
    valve_permit { limiter_id: 0, start_ns: 0, in_flight: 0, state: 0 };
const EMPTY_BREAKER_PERMIT: valve_breaker_permit =
    valve_breaker_permit { breaker_id: 0, generation: 0, start_ns: 0, admitted_in: 0, state: 0 };

const OK: valve_status = valve_status::VALVE_OK;
const NULL: valve_status = valve_status::VALVE_NULL_POINTER;
const INVALID: valve_status = valve_status::VALVE_INVALID_ARGUMENT;
const STALE: valve_status = valve_status::VALVE_STALE_PERMIT;
const HELD: u32 = valve_permit_state::VALVE_PERMIT_HELD as u32;
const EMPTY: u32 = valve_permit_state::VALVE_PERMIT_EMPTY as u32;
const RELEASED: u32 = valve_permit_state::VALVE_PERMIT_RELEASED as u32;

/// Runs one input; panics on any broken invariant.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut state = State::new();
    let _ = state.run(&mut u);
    state.free();
}

struct State {
    limiters: [Option<LimiterModel>; LIMITERS],
    permits: [valve_permit; PERMITS],
    breaker: *mut valve_breaker,
    breaker_permits: [valve_breaker_permit; PERMITS],
    recorded: u64,
    quota: *mut valve_token_quota,
    withdrawal: QuotaWithdrawal,
    windowed: *mut valve_windowed_budget,
    concurrency: *mut valve_concurrency_budget,
    outstanding: u32,
    retries: u32,
    backoff: *mut valve_backoff,
    /// A live cancel token and a cancelled one, for `AcquireUntil`'s cancellable form.
    tokens: [*mut valve_cancel_token; 2],
    now: u64,
}

impl State {
    fn new() -> Self {
        let mut s = Self {
            limiters: [None; LIMITERS],
            permits: [EMPTY_PERMIT; PERMITS],
            breaker: ptr::null_mut(),
            breaker_permits: [EMPTY_BREAKER_PERMIT; PERMITS],
            recorded: 0,
            quota: ptr::null_mut(),
            withdrawal: QuotaWithdrawal { tokens: 0 },
            windowed: ptr::null_mut(),
            concurrency: ptr::null_mut(),
            outstanding: 0,
            retries: 0,
            backoff: ptr::null_mut(),
            tokens: [ptr::null_mut(); 2],
            now: 1,
        };
        // SAFETY (this block): every pointer is valid; each handle is freed once, in `free`.
        unsafe {
            let mut breaker = valve_breaker_config_default();
            breaker.consecutive_failures = 2;
            assert_eq!(valve_breaker_new(&breaker, &mut s.breaker), OK);
            let quota = valve_token_quota_config_aws_standard_legacy();
            assert_eq!(valve_token_quota_new(&quota, &mut s.quota), OK);
            let windowed = valve_windowed_config_finagle();
            assert_eq!(valve_windowed_budget_new(&windowed, &mut s.windowed), OK);
            let envoy = valve_concurrency_budget_config_envoy();
            assert_eq!(valve_concurrency_budget_new(&envoy, &mut s.concurrency), OK);
            let backoff = valve_backoff_config_grpc(1000, 1_000_000, 1.6);
            assert_eq!(valve_backoff_new(&backoff, 7, &mut s.backoff), OK);
            for token in &mut s.tokens {
                assert_eq!(valve_cancel_token_new(token), OK);
            }
            assert_eq!(valve_cancel_token_cancel(s.tokens[1]), OK);
        }
        s
    }

    fn run(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        while !u.is_empty() {
            let op = Op::arbitrary(u)?;
            self.apply(op);
            self.check();
        }
        Ok(())
    }

    fn limiter(&self, at: u8) -> *mut valve_limiter {
        self.limiters[usize::from(at) % LIMITERS].map_or(ptr::null_mut(), |l| l.handle)
    }

    fn apply(&mut self, op: Op) {
        // SAFETY (this function): every handle is live or NULL, every pointer valid or NULL.
        unsafe {
            match op {
                Op::NewLimiter { at, preset, algorithm, limit, ordering } => {
                    let at = usize::from(at) % LIMITERS;
                    if self.limiters[at].is_some() {
                        return;
                    }
                    let mut config = match preset % 8 {
                        0 => valve_limiter_config_default(),
                        1 => valve_limiter_config_aimd_netflix(),
                        2 => valve_limiter_config_gradient2(),
                        3 => valve_limiter_config_gradient2_netflix(),
                        4 => valve_limiter_config_vegas_netflix(),
                        5 => valve_limiter_config_envoy_gradient_envoy(),
                        6 => valve_limiter_config_fixed(u32::from(limit)),
                        _ => valve_limiter_config_envoy_gradient(),
                    };
                    if preset >= 128 {
                        // Hostile: any algorithm number and queue ordering.
                        config.algorithm = algorithm;
                        config.queue.ordering = ordering;
                    }
                    let fixed_ok = (1..=1 << 30).contains(&config.fixed.limit);
                    let valid = config.algorithm <= 4
                        && config.queue.ordering <= 2
                        && (config.algorithm != 0 || fixed_ok);
                    let mut handle = ptr::null_mut();
                    let status = valve_limiter_new(&config, &mut handle);
                    if valid {
                        assert_eq!(status, OK);
                    } else {
                        assert_eq!(status, INVALID);
                        assert!(handle.is_null());
                    }
                    if status == OK {
                        self.limiters[at] = Some(LimiterModel { handle, in_flight: 0 });
                    }
                }
                Op::FreeLimiter(at) => {
                    let at = usize::from(at) % LIMITERS;
                    if let Some(l) = self.limiters[at].take() {
                        valve_limiter_free(l.handle);
                    }
                }
                Op::Acquire { at, slot } | Op::AcquireUntil { at, slot } => {
                    let handle = self.limiter(at);
                    let permit = &mut self.permits[usize::from(slot) % PERMITS];
                    if permit.state == HELD {
                        return; // keep every held slot reachable
                    }
                    // The high bits of `slot` pick the cancellable wait and its token.
                    let token = self.tokens[usize::from(slot >> 6) & 1];
                    let cancellable = matches!(op, Op::AcquireUntil { .. }) && slot >= 128;
                    let status = if matches!(op, Op::Acquire { .. }) {
                        valve_limiter_try_acquire_at(handle, self.now, permit)
                    } else if cancellable {
                        // A deadline already past: never blocks either.
                        valve_limiter_acquire_cancellable(handle, token, 0, permit)
                    } else {
                        // A deadline already past: never blocks.
                        valve_limiter_acquire_until(handle, 0, permit)
                    };
                    if handle.is_null() {
                        assert_eq!(status, NULL);
                        return;
                    }
                    let model = self.limiters[usize::from(at) % LIMITERS].as_mut().unwrap();
                    match status {
                        OK => {
                            assert_eq!(permit.state, HELD);
                            model.in_flight += 1;
                        }
                        valve_status::VALVE_REJECTED | valve_status::VALVE_TIMEOUT => {
                            assert!(!(cancellable && token == self.tokens[1]));
                            assert_eq!(permit.state, EMPTY)
                        }
                        valve_status::VALVE_CANCELLED => {
                            assert!(cancellable && token == self.tokens[1]);
                            assert_eq!(permit.state, EMPTY)
                        }
                        other => panic!("acquire answered {other:?}"),
                    }
                }
                Op::Release { at, slot, outcome } => {
                    let at = usize::from(at) % LIMITERS;
                    let handle = self.limiter(at as u8);
                    let permit = &mut self.permits[usize::from(slot) % PERMITS];
                    let before = *permit;
                    let status = valve_limiter_release_at(handle, permit, outcome, self.now);
                    let expected = match self.limiters[at] {
                        None => NULL,
                        Some(_) if outcome > 2 => INVALID,
                        Some(_) if before.state == EMPTY || before.state == RELEASED => STALE,
                        Some(_) if before.state != HELD => INVALID,
                        Some(_) if before.limiter_id != valve_limiter_id(handle) => {
                            valve_status::VALVE_FOREIGN_PERMIT
                        }
                        Some(model) if model.in_flight == 0 => STALE,
                        Some(_) => OK,
                    };
                    assert_eq!(status, expected, "release of {before:?}");
                    if status == OK {
                        self.limiters[at].as_mut().unwrap().in_flight -= 1;
                    }
                    if expected == OK || (expected == STALE && before.state == HELD) {
                        assert_eq!(permit.state, RELEASED);
                    } else {
                        assert_eq!(*permit, before, "a refused release changes nothing");
                    }
                }
                Op::Copy { from, to } => {
                    let to = usize::from(to) % PERMITS;
                    // Overwriting a held permit would lose its slot for good; copies go to
                    // slots that hold none, making a second handle on the same slot.
                    if self.permits[to].state != HELD {
                        self.permits[to] = self.permits[usize::from(from) % PERMITS];
                    }
                }
                Op::Forge { slot, state } => {
                    let permit = &mut self.permits[usize::from(slot) % PERMITS];
                    if permit.state != HELD && state != HELD {
                        permit.state = state;
                    }
                }
                Op::SetLimit { at, limit } => {
                    let handle = self.limiter(at);
                    let mut in_force = 0;
                    let status = valve_limiter_set_limit(handle, limit, &mut in_force);
                    assert_eq!(status, if handle.is_null() { NULL } else { OK });
                }
                Op::Advance(ns) => self.now = self.now.saturating_add(u64::from(ns)),
                Op::BreakerAcquire { slot } => {
                    let permit = &mut self.breaker_permits[usize::from(slot) % PERMITS];
                    let status = valve_breaker_try_acquire_at(self.breaker, self.now, permit);
                    assert!(matches!(status, OK | valve_status::VALVE_REJECTED));
                }
                Op::BreakerRecord { slot, outcome } => {
                    let permit = &mut self.breaker_permits[usize::from(slot) % PERMITS];
                    let before = permit.state;
                    let status = valve_breaker_record_at(self.breaker, permit, outcome, self.now);
                    let expected = match before {
                        _ if outcome > 2 => INVALID,
                        HELD => OK,
                        _ => STALE,
                    };
                    assert_eq!(status, expected);
                    if status == OK {
                        self.recorded += 1;
                    }
                }
                Op::BreakerTransition(to) => {
                    let status =
                        valve_breaker_transition_to_at(self.breaker, to, self.now, ptr::null_mut());
                    assert_eq!(status, if to <= 5 { OK } else { INVALID });
                }
                Op::BreakerPoll => {
                    let (mut state, mut due) = (u32::MAX, 0);
                    assert_eq!(valve_breaker_poll_at(self.breaker, self.now, &mut state), OK);
                    assert!(state <= 5);
                    assert_eq!(valve_breaker_next_transition_at(self.breaker, &mut due), OK);
                }
                Op::QuotaRetry { class } => {
                    let mut w = QuotaWithdrawal { tokens: u32::MAX };
                    let status = valve_token_quota_try_retry(self.quota, class, &mut w);
                    match status {
                        OK => self.withdrawal = w,
                        valve_status::VALVE_BUDGET_EXHAUSTED => assert_eq!(w.tokens, 0),
                        _ => assert!(class > 2 && status == INVALID),
                    }
                }
                Op::QuotaSuccess { refund } => {
                    let w = if refund { &mut self.withdrawal as *mut _ } else { ptr::null_mut() };
                    assert_eq!(valve_token_quota_on_success(self.quota, w), OK);
                    assert_eq!(self.withdrawal.tokens * u32::from(refund), 0, "consumed");
                }
                Op::Windowed { withdraw } => {
                    let status = if withdraw {
                        valve_windowed_budget_try_withdraw_at(self.windowed, self.now)
                    } else {
                        valve_windowed_budget_deposit_at(self.windowed, self.now)
                    };
                    assert!(matches!(status, OK | valve_status::VALVE_BUDGET_EXHAUSTED));
                }
                Op::Concurrency(which) => {
                    let c = self.concurrency;
                    match which % 4 {
                        0 => {
                            assert_eq!(valve_concurrency_budget_request_started(c), OK);
                            self.outstanding += 1;
                        }
                        1 => {
                            let status = valve_concurrency_budget_request_finished(c);
                            assert_eq!(status, if self.outstanding == 0 { STALE } else { OK });
                            self.outstanding = self.outstanding.saturating_sub(1);
                        }
                        2 => {
                            if valve_concurrency_budget_try_start_retry(c) == OK {
                                self.retries += 1;
                            }
                        }
                        _ => {
                            let status = valve_concurrency_budget_retry_finished(c);
                            assert_eq!(status, if self.retries == 0 { STALE } else { OK });
                            self.retries = self.retries.saturating_sub(1);
                        }
                    }
                }
                Op::Backoff { retry_after } => {
                    let mut delay = 0;
                    assert_eq!(
                        valve_backoff_next_delay_ns(self.backoff, retry_after, &mut delay),
                        OK
                    );
                    if retry_after == u64::MAX {
                        assert!(delay <= 1_200_000, "gRPC jitter keeps within 1.2 x max");
                    }
                }
                Op::Nulls => self.nulls(),
            }
        }
    }

    /// Every function refuses NULL with `VALVE_NULL_POINTER` and changes nothing.
    fn nulls(&self) {
        let mut permit = EMPTY_PERMIT;
        let mut bp = EMPTY_BREAKER_PERMIT;
        let handle = self.limiter(0);
        // SAFETY (this block): every non-null pointer is valid.
        unsafe {
            assert_eq!(valve_limiter_new(ptr::null(), ptr::null_mut()), NULL);
            assert_eq!(valve_limiter_try_acquire(ptr::null(), &mut permit), NULL);
            assert_eq!(valve_limiter_acquire_timeout(ptr::null(), 0, &mut permit), NULL);
            assert_eq!(
                valve_limiter_acquire_cancellable(handle, ptr::null(), 0, &mut permit),
                NULL
            );
            assert_eq!(valve_cancel_token_cancel(ptr::null()), NULL);
            assert_eq!(valve_limiter_release(ptr::null(), &mut permit, 0), NULL);
            if !handle.is_null() {
                assert_eq!(valve_limiter_try_acquire_at(handle, 0, ptr::null_mut()), NULL);
                assert_eq!(valve_limiter_release_at(handle, ptr::null_mut(), 0, 0), NULL);
                assert_eq!(valve_limiter_get_snapshot(handle, ptr::null_mut()), NULL);
            }
            assert_eq!(valve_breaker_try_acquire(ptr::null(), &mut bp), NULL);
            assert_eq!(valve_breaker_try_acquire(self.breaker, ptr::null_mut()), NULL);
            assert_eq!(valve_breaker_record(self.breaker, ptr::null_mut(), 0), NULL);
            assert_eq!(valve_breaker_get_state(self.breaker, ptr::null_mut()), NULL);
            assert_eq!(valve_token_quota_try_retry(self.quota, 0, ptr::null_mut()), NULL);
            assert_eq!(valve_token_quota_on_success(ptr::null(), ptr::null_mut()), NULL);
            assert_eq!(valve_windowed_budget_try_withdraw(ptr::null()), NULL);
            assert_eq!(valve_concurrency_budget_try_start_retry(ptr::null()), NULL);
            assert_eq!(valve_backoff_next_delay_ns(self.backoff, 0, ptr::null_mut()), NULL);
            assert_eq!(valve_backoff_reset(ptr::null_mut()), NULL);
        }
    }

    fn check(&self) {
        // SAFETY (this function): every handle is live; out-pointers are valid.
        unsafe {
            for model in self.limiters.iter().flatten() {
                let mut snap = LimiterSnapshot::default();
                assert_eq!(valve_limiter_get_snapshot(model.handle, &mut snap), OK);
                assert_eq!(snap.in_flight, model.in_flight, "in-flight matches the model");
                assert!(snap.limit >= 1);
            }
            let mut b = BreakerSnapshot::default();
            assert_eq!(valve_breaker_get_snapshot(self.breaker, &mut b), OK);
            assert!(b.state <= 5);
            assert_eq!(b.successes + b.failures + b.ignored, self.recorded);
            let mut q = BudgetSnapshot::default();
            assert_eq!(valve_token_quota_get_snapshot(self.quota, &mut q), OK);
            assert!((0..=500).contains(&q.balance));
            let mut c = BudgetSnapshot::default();
            assert_eq!(valve_concurrency_budget_get_snapshot(self.concurrency, &mut c), OK);
            assert_eq!(
                (c.outstanding, c.retries_in_flight),
                (self.outstanding.into(), self.retries.into())
            );
        }
    }

    fn free(&mut self) {
        // SAFETY (this block): each handle is live and freed exactly once.
        unsafe {
            for model in self.limiters.iter_mut().filter_map(Option::take) {
                valve_limiter_free(model.handle);
            }
            valve_breaker_free(self.breaker);
            valve_token_quota_free(self.quota);
            valve_windowed_budget_free(self.windowed);
            valve_concurrency_budget_free(self.concurrency);
            valve_backoff_free(self.backoff);
            for token in self.tokens {
                valve_cancel_token_free(token);
            }
        }
    }
}
