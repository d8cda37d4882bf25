//! Misuse through the C ABI (issue 17): a caller's bug may cost that caller, never the
//! limiter's other callers. Released copies of permits and cancelled waits racing them, through
//! the extern functions as a C caller calls them.

use std::ptr;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use valve::LimiterSnapshot;
use valve::ffi::*;

const OK: valve_status = valve_status::VALVE_OK;
const STALE: valve_status = valve_status::VALVE_STALE_PERMIT;
const IGNORED: u32 = valve_outcome::VALVE_OUTCOME_IGNORED as u32;
const HELD: u32 = valve_permit_state::VALVE_PERMIT_HELD as u32;

/// A limiter handle shared by scoped threads, freed on drop.
struct Handle(*mut valve_limiter);

// SAFETY: every function the threads call on it is thread-safe; it is freed once, on drop,
// after every scoped thread has joined.
unsafe impl Sync for Handle {}

impl Handle {
    fn fixed(limit: u32) -> Self {
        let mut handle = ptr::null_mut();
        // SAFETY: both pointers are valid.
        assert_eq!(
            unsafe { valve_limiter_new(&valve_limiter_config_fixed(limit), &mut handle) },
            OK
        );
        Self(handle)
    }

    fn snapshot(&self) -> LimiterSnapshot {
        let mut out = LimiterSnapshot::default();
        // SAFETY: a live handle and a local out-struct.
        assert_eq!(unsafe { valve_limiter_get_snapshot(self.0, &mut out) }, OK);
        out
    }

    fn try_acquire(&self, permit: &mut valve_permit) -> valve_status {
        // SAFETY: a live handle; the permit is the caller's own.
        unsafe { valve_limiter_try_acquire_at(self.0, 1, permit) }
    }

    fn release(&self, permit: &mut valve_permit) -> valve_status {
        // SAFETY: a live handle; the permit is the caller's own.
        unsafe { valve_limiter_release_at(self.0, permit, IGNORED, 2) }
    }

    /// Nothing in flight or queued, and exactly `limit` slots to take.
    fn assert_whole(&self, limit: u32) {
        let s = self.snapshot();
        assert_eq!((s.in_flight, s.limit, s.queued), (0, limit, 0), "{s:?}");
        let mut permits = vec![empty_permit(); limit as usize + 1];
        for permit in &mut permits[..limit as usize] {
            assert_eq!(self.try_acquire(permit), OK, "{:?}", self.snapshot());
        }
        assert_eq!(self.try_acquire(&mut permits[limit as usize]), valve_status::VALVE_REJECTED);
        for permit in &mut permits[..limit as usize] {
            assert_eq!(self.release(permit), OK);
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a live handle from `valve_limiter_new`, freed once.
        unsafe { valve_limiter_free(self.0) }
    }
}

fn empty_permit() -> valve_permit {
    valve_permit { limiter_id: 0, start_ns: 0, in_flight: 0, state: 0 }
}

/// Issue 17, bug 1, at limit 1: a thread waits with a cancel token; the one held permit is
/// released, which grants the wait its slot; a copy of that permit is released too, which takes
/// the granted slot; then the token is cancelled. A wait that answers `VALVE_CANCELLED` gave the
/// granted slot back with nothing held: that used to wrap in-flight to 2^31 - 1 and refuse every
/// acquire for good. Every round must end with the limiter whole, however the wait's wake-up
/// falls (a wait that polls first gets the permit, and its release is the stale one).
#[test]
fn a_cancelled_wait_does_not_wedge_the_limiter() {
    const ROUNDS: u32 = 50;
    let handle = Handle::fixed(1);
    let mut cancelled_after_grant = 0;
    for _ in 0..ROUNDS {
        let mut token = ptr::null_mut();
        // SAFETY: a valid out-pointer.
        assert_eq!(unsafe { valve_cancel_token_new(&mut token) }, OK);
        let shared_token = token as usize;
        let mut held = empty_permit();
        assert_eq!(handle.try_acquire(&mut held), OK);
        let (waited, copy_released) = std::thread::scope(|scope| {
            let handle = &handle;
            let waiter = scope.spawn(move || {
                let mut permit = empty_permit();
                // SAFETY: live handles (freed after the join) and the thread's own permit.
                let status = unsafe {
                    valve_limiter_acquire_cancellable(
                        handle.0,
                        shared_token as *const valve_cancel_token,
                        u64::MAX,
                        &mut permit,
                    )
                };
                // A wait that polled before the cancel holds a permit; one of its release and
                // the copy's returns the slot, the other is refused.
                (status, (status == OK).then(|| handle.release(&mut permit)))
            });
            while handle.snapshot().queued == 0 {
                std::thread::yield_now();
            }
            let mut copy = held;
            assert_eq!(handle.release(&mut held), OK, "grants the waiter");
            let copy_released = handle.release(&mut copy);
            // SAFETY: a live token.
            assert_eq!(unsafe { valve_cancel_token_cancel(token) }, OK);
            (waiter.join().unwrap(), copy_released)
        });
        match waited {
            (valve_status::VALVE_CANCELLED, None) => {
                assert_eq!(copy_released, OK, "the copy took the granted slot");
                cancelled_after_grant += 1;
            }
            (OK, Some(released)) => {
                let mut both = [released, copy_released];
                both.sort_by_key(|status| *status as u32);
                assert_eq!(both, [OK, STALE]);
            }
            other => panic!("{other:?}"),
        }
        // SAFETY: no wait uses the token any more; freed once.
        unsafe { valve_cancel_token_free(token) };
        handle.assert_whole(1);
    }
    eprintln!("{cancelled_after_grant} of {ROUNDS} waits were cancelled after their grant");
}

/// Issue 17, bug 2: a refused release used to refuse every acquire until it undid its borrow,
/// so threads releasing stale copies in a loop starved everyone else (1.7 % of the admissions
/// with 8 of them). Acquirers here never hold more than one slot each, far below the limit, so
/// no acquire may ever be refused, whatever the stale releasers beside them do. The copies
/// return other holders' slots now and then (as documented); every slot still comes back
/// exactly once.
#[test]
fn stale_copy_releases_do_not_stall_admission() {
    const LIMIT: u32 = 8;
    const ACQUIRERS: usize = 2;
    const STALE_RELEASERS: usize = 6;
    const ROUNDS: u64 = 100_000;
    /// Each stale releaser runs at least this often, however the threads are scheduled.
    const MIN_STALE_RELEASES: u64 = 10_000;
    let handle = Handle::fixed(LIMIT);
    let start = Barrier::new(ACQUIRERS + STALE_RELEASERS);
    let done = AtomicBool::new(false);
    let (stolen, stale_refused, refused_acquires, lost_slots) =
        (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|scope| {
        let acquirers: Vec<_> = (0..ACQUIRERS)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    let mut permit = empty_permit();
                    for _ in 0..ROUNDS {
                        if handle.try_acquire(&mut permit) != OK {
                            refused_acquires.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        assert!(permit.in_flight <= ACQUIRERS as u32);
                        match handle.release(&mut permit) {
                            OK => {}
                            // A copy returned this slot first.
                            STALE => {
                                lost_slots.fetch_add(1, Ordering::Relaxed);
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        for _ in 0..STALE_RELEASERS {
            scope.spawn(|| {
                let mut released = empty_permit();
                assert_eq!(handle.try_acquire(&mut released), OK);
                let copy = released;
                assert_eq!(handle.release(&mut released), OK);
                start.wait();
                let mut releases = 0;
                while !done.load(Ordering::Relaxed) || releases < MIN_STALE_RELEASES {
                    let mut stale = copy;
                    assert_eq!(stale.state, HELD, "a copy made while it was held");
                    match handle.release(&mut stale) {
                        OK => stolen.fetch_add(1, Ordering::Relaxed),
                        STALE => stale_refused.fetch_add(1, Ordering::Relaxed),
                        other => panic!("{other:?}"),
                    };
                    releases += 1;
                }
            });
        }
        for acquirer in acquirers {
            acquirer.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    let (stolen, stale_refused) = (stolen.into_inner(), stale_refused.into_inner());
    eprintln!("stale releases: {stale_refused} refused, {stolen} returned a holder's slot");
    let refused_acquires = refused_acquires.into_inner();
    assert_eq!(refused_acquires, 0, "an acquire was refused below the limit");
    assert!(stolen + stale_refused >= MIN_STALE_RELEASES * STALE_RELEASERS as u64);
    assert_eq!(lost_slots.into_inner(), stolen, "each slot came back exactly once");
    let s = handle.snapshot();
    assert_eq!(s.admitted, s.ignored, "{s:?}");
    handle.assert_whole(LIMIT);
}
