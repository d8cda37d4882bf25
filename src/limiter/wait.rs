//! Waiting for a permit: blocking and async acquire, a bounded waiter queue, hand-off.
//!
//! Contains bursts that a pure try-acquire would shed: a caller may wait a bounded time for a
//! slot instead of failing at once, in a queue that is itself bounded (graded rejection, as
//! failsafe-go) so waiting cannot become the unbounded queue the limiter exists to prevent.
//!
//! # Protocol
//!
//! The queue (a lock, taken only on this slow path) holds waiter slots in a slab that grows only
//! to a new high-water mark, never per wait. Whether anyone waits is a flag in the admission
//! word itself (`admission.rs`), so a release learns it from its own `fetch_sub` and pays
//! nothing extra when nobody waits.
//!
//! - A waiter, under the lock, takes a slot or sets the flag in one CAS, then queues. A releaser
//!   whose `fetch_sub` returned the flag takes the lock and acquires on behalf of waiters, one
//!   per free slot. Either the waiter's CAS sees the freed slot or the releaser sees the flag:
//!   no wakeup is lost. The flag is cleared under the lock when the queue empties.
//! - A grant (slot acquired for a waiter, state set to granted) and a timeout or cancellation
//!   (state checked, waiter removed) both happen under the lock, so a permit is never lost or
//!   given twice (Netflix PR #179). A waiter that finds itself granted takes the permit even if
//!   its deadline has just passed.
//! - A released slot wakes exactly one waiter; a raised limit grants as many waiters as there are
//!   new slots. Nothing ever wakes all waiters.
//! - Time spent queued is not part of the RTT sample: a granted permit starts at the grant.

use std::collections::VecDeque;
use std::fmt;
use std::task::Waker;
use std::time::Duration;

use crate::clock::{Nanos, duration_to_nanos};
use crate::error::ConfigError;
use crate::limiter::Rejected;
use crate::limiter::admission::Admission;
use crate::rng::{SplitMix64, next_unit};
use crate::sync::park::{self, Thread};
use crate::sync::{AtomicU32, Ordering, QueueLock};

/// Which waiter a freed slot goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOrdering {
    /// Oldest first.
    Fifo,
    /// Newest first (Netflix `LifoBlockingLimiter`): under sustained overload the newest callers
    /// are the ones most likely still to be waiting for the answer.
    Lifo,
    /// FIFO until the oldest waiter has waited longer than `max_age`, then LIFO.
    Adaptive {
        /// Age of the oldest waiter at which ordering switches to LIFO.
        max_age: Duration,
    },
}

/// Configuration of a limiter's waiter queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueConfig {
    /// Hard cap on queued waiters (0 disables waiting: waits fail at once when full).
    pub max_waiters: u32,
    /// Which waiter a freed slot goes to.
    pub ordering: QueueOrdering,
    /// Queue length, as a multiple of the limit, from which new waiters are rejected with rising
    /// probability (failsafe-go's initial rejection factor, 2).
    pub reject_from: f64,
    /// Queue length, as a multiple of the limit, at which every new waiter is rejected
    /// (failsafe-go's max rejection factor, 3).
    pub reject_all_at: f64,
    /// Seed of the generator behind graded rejection, for reproducible runs.
    pub seed: u64,
}

impl Default for QueueConfig {
    /// FIFO, up to 4096 waiters, graded rejection from 2x to 3x the limit (failsafe-go).
    fn default() -> Self {
        Self {
            max_waiters: 4096,
            ordering: QueueOrdering::Fifo,
            reject_from: 2.0,
            reject_all_at: 3.0,
            seed: 0x5EED_0A1E,
        }
    }
}

impl QueueConfig {
    /// Checks `0 <= reject_from <= reject_all_at`, both finite.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in
            [("reject_from", self.reject_from), ("reject_all_at", self.reject_all_at)]
        {
            if !value.is_finite() {
                return Err(ConfigError::NotFinite { field });
            }
            if value < 0.0 {
                return Err(ConfigError::out_of_range(field, value, "[0, inf)"));
            }
        }
        if self.reject_from > self.reject_all_at {
            return Err(ConfigError::out_of_range(
                "reject_from",
                self.reject_from,
                "[0, reject_all_at]",
            ));
        }
        Ok(())
    }
}

/// Why a waiting acquire returned without a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// The queue refused the caller (full, or graded rejection): shed at once.
    Rejected(Rejected),
    /// The deadline passed before a slot was free.
    TimedOut,
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(r) => write!(f, "{r}; the waiter queue is full"),
            Self::TimedOut => f.write_str("timed out waiting for a concurrency permit"),
        }
    }
}

impl std::error::Error for AcquireError {}

/// How a queued waiter is woken.
#[derive(Debug)]
pub(crate) enum Wake {
    Thread(Thread),
    Task(Waker),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Waiting,
    Granted { in_flight: u32, start: Nanos },
    Expired,
}

#[derive(Debug)]
struct Slot {
    state: SlotState,
    wake: Option<Wake>,
    enqueued_at: Nanos,
    deadline: Nanos,
}

/// Everything behind the queue lock.
#[derive(Debug)]
struct Waiters {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Queued slot indices, oldest at the front.
    order: VecDeque<u32>,
    rng: SplitMix64,
}

/// What a waiter learns when it checks its slot.
pub(crate) enum Checked {
    Granted { in_flight: u32, start: Nanos },
    TimedOut,
    Waiting,
}

/// A limiter's waiter queue. See the module documentation for the protocol.
#[derive(Debug)]
pub(crate) struct WaitQueue {
    /// Queued waiters, for snapshots only (the protocol uses the admission word's flag).
    queued: AtomicU32,
    state: QueueLock<Waiters>,
    config: QueueConfig,
}

impl WaitQueue {
    pub(crate) fn new(config: QueueConfig) -> Self {
        Self {
            queued: AtomicU32::new(0),
            state: QueueLock::new(Waiters {
                slots: Vec::new(),
                free: Vec::new(),
                order: VecDeque::new(),
                rng: SplitMix64::seeded(config.seed),
            }),
            config,
        }
    }

    /// Waiters queued now.
    pub(crate) fn queued(&self) -> u32 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues a waiter, or admits it if a slot is free after all. `Ok(Err(slot))` means queued.
    pub(crate) fn enqueue(
        &self,
        admission: &Admission,
        now: Nanos,
        deadline: Nanos,
        wake: impl FnOnce() -> Wake,
    ) -> Result<Result<u32, u32>, Rejected> {
        let mut state = self.state.lock();
        let (in_flight, limit) = admission.load();
        let queued = state.order.len();
        if self.refuses(&mut state, queued, limit) {
            return Err(Rejected { limit, in_flight });
        }
        if let Ok(in_flight) = admission.try_acquire_or_flag_waiting() {
            return Ok(Ok(in_flight));
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        let slot =
            Slot { state: SlotState::Waiting, wake: Some(wake()), enqueued_at: now, deadline };
        let index = match state.free.pop() {
            Some(index) => {
                state.slots[index as usize] = slot;
                index
            }
            None => {
                state.slots.push(slot);
                (state.slots.len() - 1) as u32
            }
        };
        state.order.push_back(index);
        Ok(Err(index))
    }

    /// Graded rejection (failsafe-go): below `reject_from x limit` queued, always admit; at or
    /// above `reject_all_at x limit` (or `max_waiters`), never; in between, reject with
    /// probability `(queued - from) / (all - from)`.
    fn refuses(&self, state: &mut Waiters, queued: usize, limit: u32) -> bool {
        if queued >= self.config.max_waiters as usize {
            return true;
        }
        let queued = queued as f64;
        let from = self.config.reject_from * f64::from(limit);
        let all = self.config.reject_all_at * f64::from(limit);
        if queued < from {
            return false;
        }
        if queued >= all {
            return true;
        }
        next_unit(&mut state.rng) < (queued - from) / (all - from)
    }

    /// Checks a queued waiter's slot; expires it if its deadline has passed. Frees the slot
    /// unless it is still waiting. `wake` replaces the stored waker (async re-poll).
    pub(crate) fn check(
        &self,
        admission: &Admission,
        index: u32,
        now: Nanos,
        wake: Option<&Waker>,
    ) -> Checked {
        let mut state = self.state.lock();
        let slot = &mut state.slots[index as usize];
        match slot.state {
            SlotState::Granted { in_flight, start } => {
                state.release_slot(index);
                Checked::Granted { in_flight, start }
            }
            SlotState::Expired => {
                state.release_slot(index);
                Checked::TimedOut
            }
            SlotState::Waiting if now >= slot.deadline => {
                self.unqueue(&mut state, admission, index);
                state.release_slot(index);
                Checked::TimedOut
            }
            SlotState::Waiting => {
                if let Some(waker) = wake {
                    match &slot.wake {
                        Some(Wake::Task(old)) if old.will_wake(waker) => {}
                        _ => slot.wake = Some(Wake::Task(waker.clone())),
                    }
                }
                Checked::Waiting
            }
            SlotState::Free => unreachable!("a waiter checked a slot it no longer owns"),
        }
    }

    /// Withdraws a waiter (cancelled future). Returns a permit it was granted meanwhile, which
    /// the caller must release.
    pub(crate) fn cancel(&self, admission: &Admission, index: u32) -> Option<u32> {
        let mut state = self.state.lock();
        let granted = match state.slots[index as usize].state {
            SlotState::Granted { in_flight, .. } => Some(in_flight),
            SlotState::Waiting => {
                self.unqueue(&mut state, admission, index);
                None
            }
            SlotState::Expired | SlotState::Free => None,
        };
        state.release_slot(index);
        granted
    }

    /// Gives free slots to queued waiters, one slot each, in the configured order; expires
    /// waiters whose deadline has passed. Called after a release or a limit raise.
    #[cold]
    pub(crate) fn grant(&self, admission: &Admission, now: Nanos) {
        // One waiter per lock hold: wakers run outside the lock, so an executor that polls
        // inline from `wake` cannot deadlock on it.
        while let Some(wake) = self.grant_one(admission, now) {
            match wake {
                Wake::Thread(thread) => thread.unpark(),
                Wake::Task(waker) => waker.wake(),
            }
        }
    }

    /// Grants (or expires) the next waiter; returns how to wake it, or `None` when nobody is
    /// queued or no slot is free.
    fn grant_one(&self, admission: &Admission, now: Nanos) -> Option<Wake> {
        let mut state = self.state.lock();
        let position = state.next_position(self.config.ordering, now)?;
        let index = state.order[position];
        let outcome = if now >= state.slots[index as usize].deadline {
            SlotState::Expired
        } else {
            let in_flight = admission.try_acquire().ok()?;
            SlotState::Granted { in_flight, start: now }
        };
        state.order.remove(position);
        self.dequeued(&state, admission);
        let slot = &mut state.slots[index as usize];
        slot.state = outcome;
        slot.wake.take()
    }

    /// Blocks the calling thread until granted or `deadline`; `now` reads the clock.
    pub(crate) fn wait_blocking(
        &self,
        admission: &Admission,
        deadline: Nanos,
        now: impl Fn() -> Nanos,
    ) -> Result<(u32, Nanos), AcquireError> {
        let start = now();
        let index = match self.enqueue(admission, start, deadline, || Wake::Thread(park::current()))
        {
            Err(rejected) => return Err(AcquireError::Rejected(rejected)),
            Ok(Ok(in_flight)) => return Ok((in_flight, start)),
            Ok(Err(index)) => index,
        };
        loop {
            let t = now();
            match self.check(admission, index, t, None) {
                Checked::Granted { in_flight, start } => return Ok((in_flight, start)),
                Checked::TimedOut => return Err(AcquireError::TimedOut),
                Checked::Waiting => park::park_for(Duration::from_nanos(deadline - t)),
            }
        }
    }
}

impl WaitQueue {
    /// Removes a waiter that leaves without a grant (timeout, cancellation).
    fn unqueue(&self, state: &mut Waiters, admission: &Admission, index: u32) {
        if let Some(position) = state.order.iter().position(|&i| i == index) {
            state.order.remove(position);
            self.dequeued(state, admission);
        }
    }

    /// Bookkeeping after a waiter left the order: the last one out clears the waiters flag.
    fn dequeued(&self, state: &Waiters, admission: &Admission) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        if state.order.is_empty() {
            admission.clear_waiting();
        }
    }
}

impl Waiters {
    /// Position in `order` of the waiter the next free slot goes to.
    fn next_position(&self, ordering: QueueOrdering, now: Nanos) -> Option<usize> {
        let front = *self.order.front()?;
        let newest = self.order.len() - 1;
        Some(match ordering {
            QueueOrdering::Fifo => 0,
            QueueOrdering::Lifo => newest,
            QueueOrdering::Adaptive { max_age } => {
                let age = now.saturating_sub(self.slots[front as usize].enqueued_at);
                if age > duration_to_nanos(max_age) { newest } else { 0 }
            }
        })
    }

    fn release_slot(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        slot.state = SlotState::Free;
        slot.wake = None;
        self.free.push(index);
    }
}
