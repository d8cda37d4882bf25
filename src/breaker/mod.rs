//! The circuit breaker: stops sending work to a sick dependency and finds out safely when it is
//! back.
//!
//! Contains *traffic sent to an unhealthy dependency*: while calls keep failing (or are slow),
//! every new call adds load to a service that cannot serve it and makes the caller wait for an
//! error. The breaker trips (Open) and refuses calls at once; after an open duration it admits a
//! few probes (HalfOpen), which close it again or reopen it for longer.
//!
//! | file | what |
//! |---|---|
//! | `state.rs` | the packed state word: state, generation, half-open probe counts; [`BreakerState`] |
//! | `window.rs` | count and time windows of call results, O(1) per call |
//! | `shards.rs` | per-thread shards of the successes that cannot change a decision |
//! | `policy.rs` | trip policies and the half-open decision, in integers |
//! | `backoff.rs` | open duration: [`OpenBackoff`], [`BreakerRng`], [`BreakerSplitMix64`] |
//! | `config.rs` | [`BreakerConfig`] and its parts, validation, valve defaults |
//! | `presets.rs` | resilience4j, gobreaker, Polly v8 and Hystrix presets |
//! | `permit.rs` | [`BreakerPermit`], [`BreakerOutcome`] |
//! | this file | [`Breaker`], [`BreakerRejected`], [`Transition`], [`BreakerSnapshot`] |
//!
//! No thread of its own: Open turns HalfOpen, and a half-open episode times out, lazily, in the
//! first call (or [`Breaker::poll_at`]) that finds the deadline passed;
//! [`Breaker::next_transition_at`] tells a caller with timers when to look again.

mod backoff;
mod config;
mod permit;
mod policy;
mod presets;
mod shards;
mod state;
mod window;

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::num::NonZeroU64;

use crossbeam_utils::CachePadded;

pub use backoff::{BreakerRng, BreakerSplitMix64, OpenBackoff};
pub use config::{
    BreakerConfig, CloseRule, HalfOpenConfig, HalfOpenTimeoutTarget, MAX_COUNT_WINDOW,
    MAX_TIME_BUCKETS, OpenBoundary, RateCheck, SlidingWindow,
};
pub use permit::{BreakerOutcome, BreakerPermit, BreakerToken};
pub use state::{BreakerState, MAX_PROBES};

use crate::clock::{Clock, MonotonicClock, Nanos, duration_to_nanos};
use crate::error::ConfigError;
use crate::sync::{AtomicU64, Ordering};
use policy::{Policies, TripCause};
use shards::Shards;
use state::{StateWord, Word};
use window::{CountWindow, MAX_SHARDED_BUCKETS, TimeWindow, Window};

/// Why the breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum TransitionCause {
    /// Closed tripped: too many failures in a row.
    ConsecutiveFailures = 0,
    /// Closed tripped: the window's failure rate reached its threshold.
    FailureRate = 1,
    /// Closed tripped: the window's slow-call rate reached its threshold.
    SlowCallRate = 2,
    /// The open duration passed.
    OpenElapsed = 3,
    /// The half-open probes decided to reopen.
    ProbesFailed = 4,
    /// The half-open probes decided to close.
    ProbesSucceeded = 5,
    /// The half-open episode outlived its timeout.
    HalfOpenTimeout = 6,
    /// A manual transition.
    Manual = 7,
    /// [`Breaker::reset`] or [`Breaker::reset_at`].
    Reset = 8,
}

impl From<TripCause> for TransitionCause {
    fn from(cause: TripCause) -> Self {
        match cause {
            TripCause::ConsecutiveFailures => Self::ConsecutiveFailures,
            TripCause::FailureRate => Self::FailureRate,
            TripCause::SlowCallRate => Self::SlowCallRate,
        }
    }
}

/// One state change, as the listener and tests see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Transition {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
    /// Why.
    pub cause: TransitionCause,
    /// The generation of the state entered.
    pub generation: u64,
    /// When (the `now` of the call that made it).
    pub at: Nanos,
    /// For a transition to Open, how long it stays open; otherwise 0.
    pub open_for: Nanos,
}

/// A call refused by the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerRejected {
    /// The state that refused it: Open, ForcedOpen, or HalfOpen with its probes taken.
    pub state: BreakerState,
    /// For Open, the earliest time a probe may be admitted (Polly's retry-after).
    pub retry_at: Option<Nanos>,
}

impl fmt::Display for BreakerRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            BreakerState::HalfOpen => f.write_str("circuit breaker half-open: probes taken"),
            BreakerState::ForcedOpen => f.write_str("circuit breaker forced open"),
            _ => f.write_str("circuit breaker open"),
        }
    }
}

impl std::error::Error for BreakerRejected {}

/// A breaker's state, counters and gauges, read without locks or allocation.
///
/// Fields are read separately, so under concurrent use they may come from slightly different
/// instants. When the breaker is quiescent the totals balance: every admitted call is counted
/// once in `successes + failures + ignored` (`slow` and `late` are subsets of those).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct BreakerSnapshot {
    /// The state, as [`BreakerState`]'s code.
    pub state: u32,
    /// The state's generation.
    pub generation: u64,
    /// Probes admitted in this half-open episode (0 in other states).
    pub half_open_issued: u32,
    /// Probes in flight in this half-open episode.
    pub half_open_in_flight: u32,
    /// The next lazy transition's earliest time; `u64::MAX` when none is scheduled.
    pub next_transition_at: u64,
    /// Failures in a row recorded in Closed.
    pub consecutive_failures: u64,
    /// Opens since the breaker last closed (the backoff's attempt count).
    pub consecutive_opens: u64,
    /// Calls in the rate window.
    pub window_calls: u64,
    /// Failures in the rate window.
    pub window_failures: u64,
    /// Slow calls in the rate window.
    pub window_slow: u64,
    /// Calls reported as success (slow ones included).
    pub successes: u64,
    /// Calls reported as failure (slow ones included).
    pub failures: u64,
    /// Successes and failures that were slow.
    pub slow: u64,
    /// Calls reported as ignored, or dropped unreported.
    pub ignored: u64,
    /// Results that arrived after the state they were admitted in had ended.
    pub late: u64,
    /// Calls refused while Open or ForcedOpen.
    pub rejected_open: u64,
    /// Calls refused while HalfOpen (quota or concurrency cap reached).
    pub rejected_half_open: u64,
    /// Transitions into Closed (resets included).
    pub to_closed: u64,
    /// Transitions into Open.
    pub to_open: u64,
    /// Transitions into HalfOpen.
    pub to_half_open: u64,
    /// Transitions into Disabled.
    pub to_disabled: u64,
    /// Transitions into ForcedOpen.
    pub to_forced_open: u64,
    /// Transitions into MetricsOnly.
    pub to_metrics_only: u64,
}

impl BreakerSnapshot {
    /// [`state`](Self::state) as a [`BreakerState`].
    pub fn breaker_state(&self) -> Option<BreakerState> {
        BreakerState::from_code(self.state)
    }
}

/// The listener a breaker calls after each transition.
pub type TransitionListener = Box<dyn Fn(Transition) + Send + Sync>;

/// Per-call totals, kept apart from the state word's cache line.
#[derive(Debug, Default)]
struct Totals {
    successes: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
    ignored: AtomicU64,
    late: AtomicU64,
    rejected_open: AtomicU64,
    rejected_half_open: AtomicU64,
}

/// A lock-free circuit breaker.
///
/// [`try_acquire`](Self::try_acquire) admits a call or refuses it at once; the
/// [`BreakerPermit`] it returns reports the call's outcome. While Closed, admission is a
/// single atomic load. Every method takes `&self` and is safe from any thread; share a breaker
/// with `Arc` or a `static`. Nothing here blocks, allocates per call, or spawns a thread.
///
/// Guarantees: each trip, decision and timeout is one CAS on the state word, so it happens
/// exactly once, computes one open duration and calls the listener once, after the CAS and
/// outside any critical section (unlike gobreaker issue 37); a half-open episode admits at most
/// `probes` probes, at most `max_concurrent` at a time; a result whose permit is from an earlier
/// generation is counted in the totals and can never cause a transition.
///
/// # Memory ordering
///
/// The state word is read with `Acquire` and changed with `AcqRel` CASes; a transition's
/// set-up (deadline, window reset, backoff count) happens-before the `Release` RMW that
/// completes it, so whoever sees the new state sees its set-up. The windows and counters are
/// `Relaxed` statistics: decisions drawn from them are committed by the CAS on the state word.
///
/// # Example
///
/// ```
/// use valve::{Breaker, BreakerConfig};
///
/// let breaker = Breaker::new(BreakerConfig::default())?;
/// match breaker.try_acquire() {
///     Ok(permit) => {
///         // ... call the dependency ...
///         permit.success(); // or .failure(), or .ignored()
///     }
///     Err(rejected) => eprintln!("not calling: {rejected}"),
/// }
/// # Ok::<(), valve::ConfigError>(())
/// ```
pub struct Breaker<C: Clock = MonotonicClock> {
    word: StateWord,
    /// Open: the open deadline. HalfOpen: the half-open timeout (`u64::MAX`: none). Written
    /// only by a transition's owner, after its CAS and before it settles the word (Release;
    /// read with Acquire, so seeing a new deadline implies seeing its transition).
    deadline: AtomicU64,
    /// Written only by a transition's owner.
    consecutive_opens: AtomicU64,
    consecutive_failures: CachePadded<AtomicU64>,
    window: Option<Window>,
    /// Successes that could change no decision, counted per thread.
    shards: Shards,
    totals: CachePadded<Totals>,
    /// Transitions into each state, indexed by its code.
    transitions: [AtomicU64; 6],
    policies: Policies,
    config: BreakerConfig,
    half_open_timeout: Option<Nanos>,
    rng: Box<dyn BreakerRng>,
    listener: Option<TransitionListener>,
    clock: C,
}

/// Builds a [`Breaker`] with a clock, a random source or a listener other than the defaults.
pub struct BreakerBuilder<C: Clock = MonotonicClock> {
    config: BreakerConfig,
    clock: C,
    rng: Option<Box<dyn BreakerRng>>,
    listener: Option<TransitionListener>,
}

impl<C: Clock> BreakerBuilder<C> {
    /// Reads `clock` in the methods without `_at`.
    pub fn clock<D: Clock>(self, clock: D) -> BreakerBuilder<D> {
        BreakerBuilder { config: self.config, clock, rng: self.rng, listener: self.listener }
    }

    /// Draws the open-duration jitter from `rng` (default: [`BreakerSplitMix64`] seeded
    /// randomly, so breakers in different processes do not probe in step).
    pub fn rng(mut self, rng: impl BreakerRng + 'static) -> Self {
        self.rng = Some(Box::new(rng));
        self
    }

    /// Calls `listener` after every transition, on the thread that made it, after the state
    /// CAS and outside any critical section, so it may call back into the breaker.
    pub fn listener(mut self, listener: impl Fn(Transition) + Send + Sync + 'static) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// Validates the config and builds the breaker, Closed.
    pub fn build(self) -> Result<Breaker<C>, ConfigError> {
        let config = self.config;
        config.validate()?;
        // Sizes were validated non-zero; a sub-nanosecond bucket rounds up to 1 ns.
        let non_zero = |n: u64| NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN);
        let window = config.has_rate().then(|| match config.window {
            SlidingWindow::Count { calls } => {
                Window::Count(CountWindow::new(non_zero(calls.into())))
            }
            SlidingWindow::Time { buckets, bucket } => Window::Time(TimeWindow::new(
                non_zero(buckets.into()),
                non_zero(duration_to_nanos(bucket)),
            )),
        });
        let shard_buckets = match config.window {
            SlidingWindow::Time { buckets, .. }
                if window.is_some() && buckets <= MAX_SHARDED_BUCKETS =>
            {
                buckets as usize
            }
            _ => 0,
        };
        let rng = self.rng.unwrap_or_else(|| {
            let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
            Box::new(BreakerSplitMix64::new(seed))
        });
        Ok(Breaker {
            word: StateWord::new(BreakerState::Closed),
            deadline: AtomicU64::new(u64::MAX),
            consecutive_opens: AtomicU64::new(0),
            consecutive_failures: CachePadded::new(AtomicU64::new(0)),
            window,
            shards: Shards::new(shard_buckets),
            totals: CachePadded::new(Totals::default()),
            transitions: Default::default(),
            policies: Policies::new(&config),
            half_open_timeout: config.half_open.timeout.map(duration_to_nanos),
            config,
            rng,
            listener: self.listener,
            clock: self.clock,
        })
    }
}

impl Breaker<MonotonicClock> {
    /// A Closed breaker reading the system's monotonic clock.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A builder, to choose the clock, the jitter source or a listener.
    pub fn builder(config: BreakerConfig) -> BreakerBuilder<MonotonicClock> {
        BreakerBuilder { config, clock: MonotonicClock::new(), rng: None, listener: None }
    }
}

impl<C: Clock> Breaker<C> {
    /// The clock the methods without `_at` read.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The configuration in force.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Admits one call or refuses it, reading the clock.
    #[inline]
    pub fn try_acquire(&self) -> Result<BreakerPermit<'_, C>, BreakerRejected> {
        self.try_acquire_at(self.clock.now())
    }

    /// Admits one call at `now` or refuses it. Never waits. While Closed this is one atomic
    /// load; an Open breaker whose deadline has passed turns HalfOpen here and admits this call
    /// as the first probe.
    #[inline]
    pub fn try_acquire_at(&self, now: Nanos) -> Result<BreakerPermit<'_, C>, BreakerRejected> {
        let word = self.word.load();
        if word.is_closed() {
            return Ok(BreakerPermit::new(self, word.generation(), BreakerState::Closed, now));
        }
        self.acquire_slow(word, now)
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(
        &self,
        mut word: Word,
        now: Nanos,
    ) -> Result<BreakerPermit<'_, C>, BreakerRejected> {
        loop {
            let state = word.state();
            if state.admits_freely() {
                return Ok(BreakerPermit::new(self, word.generation(), state, now));
            }
            match state {
                BreakerState::Open if !word.is_pending() && self.open_elapsed(now) => {
                    match self.transition(
                        word,
                        BreakerState::HalfOpen,
                        true,
                        TransitionCause::OpenElapsed,
                        now,
                    ) {
                        Ok(half_open) => {
                            return Ok(BreakerPermit::new(
                                self,
                                half_open.generation(),
                                BreakerState::HalfOpen,
                                now,
                            ));
                        }
                        Err(seen) => word = seen,
                    }
                }
                BreakerState::HalfOpen => {
                    // While the episode is being set up its deadline is not written yet, but
                    // probes may already be admitted.
                    if !word.is_pending() && self.half_open_timed_out(now) {
                        let target = self.config.half_open.on_timeout.into();
                        let cause = TransitionCause::HalfOpenTimeout;
                        word = match self.transition(word, target, false, cause, now) {
                            Ok(next) | Err(next) => next,
                        };
                        continue;
                    }
                    let half_open = &self.config.half_open;
                    if word.issued() >= half_open.probes
                        || word.in_flight() >= half_open.max_concurrent
                    {
                        return Err(self.reject(word, now));
                    }
                    match self.word.cas(word, word.with_probe()) {
                        Ok(_) => {
                            return Ok(BreakerPermit::new(
                                self,
                                word.generation(),
                                BreakerState::HalfOpen,
                                now,
                            ));
                        }
                        Err(seen) => word = seen,
                    }
                }
                _ => {
                    // The deadline read above may belong to a transition that has just
                    // happened; refuse only if the word still says Open in that generation.
                    let now_word = self.word.load();
                    if now_word == word {
                        return Err(self.reject(word, now));
                    }
                    word = now_word;
                }
            }
        }
    }

    #[cold]
    fn reject(&self, word: Word, now: Nanos) -> BreakerRejected {
        let state = word.state();
        let counter = if state == BreakerState::HalfOpen {
            &self.totals.rejected_half_open
        } else {
            &self.totals.rejected_open
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let retry_at = match state {
            BreakerState::Open if !word.is_pending() => Some(self.open_until().max(now)),
            _ => None,
        };
        BreakerRejected { state, retry_at }
    }

    /// The first time an Open breaker may turn HalfOpen. Call only with a settled Open word
    /// loaded, so the deadline read is the one its owner published.
    #[inline]
    fn open_until(&self) -> Nanos {
        // Acquire pairs with the owner's Release store: a reader that gets the deadline of a
        // transition newer than its word is then sure to see that transition when it reloads.
        let deadline = self.deadline.load(Ordering::Acquire);
        match self.config.open_boundary {
            OpenBoundary::Strict => deadline.saturating_add(1),
            OpenBoundary::Inclusive => deadline,
        }
    }

    /// Whether the open duration has passed at `now`: `now > deadline` (Strict) or
    /// `now >= deadline` (Inclusive); see [`OpenBoundary`] for the references.
    #[inline]
    fn open_elapsed(&self, now: Nanos) -> bool {
        now >= self.open_until()
    }

    /// Whether the half-open episode has reached its timeout: `now >= entered + timeout`.
    #[inline]
    fn half_open_timed_out(&self, now: Nanos) -> bool {
        // Acquire: as in `open_until`. `u64::MAX` is "no timeout" (also what a deadline
        // saturates to), so a breaker at the end of time cannot bounce between states.
        let deadline = self.deadline.load(Ordering::Acquire);
        deadline != u64::MAX && now >= deadline
    }

    /// Moves the breaker from the settled word `from` to `to`, in the next generation. On
    /// success (this thread's CAS won) sets up the new state, settles the word, counts the
    /// transition and calls the listener, and returns the settled word; otherwise returns the
    /// word the CAS found. `first_probe` admits the caller as the first half-open probe.
    #[cold]
    fn transition(
        &self,
        from: Word,
        to: BreakerState,
        first_probe: bool,
        cause: TransitionCause,
        now: Nanos,
    ) -> Result<Word, Word> {
        let mut pending = from.next(to);
        if first_probe {
            pending = pending.with_probe();
        }
        self.word.cas(from, pending)?;
        // From here until `settle`, no other transition can start: the set-up below is the one
        // critical section, and it neither waits nor calls out.
        let mut open_for = 0;
        match to {
            BreakerState::Open => {
                // Relaxed: only transition owners touch it, and each owner's CAS acquired the
                // previous owner's settle.
                let opens = self.consecutive_opens.load(Ordering::Relaxed) + 1;
                self.consecutive_opens.store(opens, Ordering::Relaxed);
                let opens = u32::try_from(opens).unwrap_or(u32::MAX);
                open_for = self.config.open.duration(opens, &*self.rng);
                self.deadline.store(now.saturating_add(open_for), Ordering::Release);
            }
            BreakerState::HalfOpen => {
                let timeout_at = self.half_open_timeout.map_or(u64::MAX, |t| now.saturating_add(t));
                self.deadline.store(timeout_at, Ordering::Release);
            }
            BreakerState::Closed => {
                self.consecutive_opens.store(0, Ordering::Relaxed);
                self.consecutive_failures.store(0, Ordering::Relaxed);
                if let Some(window) = &self.window {
                    window.reset(now);
                }
            }
            BreakerState::Disabled | BreakerState::ForcedOpen | BreakerState::MetricsOnly => {}
        }
        self.word.settle(pending);
        self.transitions[to as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(listener) = &self.listener {
            let generation = pending.generation();
            listener(Transition { from: from.state(), to, cause, generation, at: now, open_for });
        }
        Ok(pending.without_pending())
    }

    /// Reports one call: the permit-free core of [`BreakerPermit`].
    ///
    /// A success of the current generation that cannot change any decision (not slow, no
    /// failure in a row, and a window it cannot trip: see [`Window::take_success`]) is counted
    /// in the calling thread's shard and touches no shared cache line: one load of the state
    /// word and of the policies' counters, and plain stores to the thread's own line.
    #[inline]
    pub(crate) fn record(
        &self,
        generation: u64,
        admitted_in: BreakerState,
        outcome: BreakerOutcome,
        duration: Nanos,
        now: Nanos,
    ) {
        if outcome == BreakerOutcome::Success
            && matches!(admitted_in, BreakerState::Closed | BreakerState::MetricsOnly)
            && !self.policies.is_slow(duration)
            && self.word.load().generation() == generation
            && self.take_success(now)
        {
            return;
        }
        self.record_shared(generation, admitted_in, outcome, duration, now);
    }

    /// Counts a success in the calling thread's shard if it can change no decision; `false`
    /// when it must take the shared path.
    #[inline]
    fn take_success(&self, now: Nanos) -> bool {
        let Some(shard) = self.shards.local() else { return false };
        // Relaxed: a success racing with a failure may be taken either side of it, as it may
        // on the shared path (where the counters are Relaxed too).
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            return false;
        }
        if let Some(window) = &self.window {
            if !window.take_success(shard, now) {
                return false;
            }
        }
        shard.count_success();
        true
    }

    /// Reports one call through the shared counters and windows.
    #[inline(never)]
    fn record_shared(
        &self,
        generation: u64,
        admitted_in: BreakerState,
        outcome: BreakerOutcome,
        duration: Nanos,
        now: Nanos,
    ) {
        // Relaxed counters: statistics, read only by `snapshot`.
        let totals = &*self.totals;
        let failed = outcome == BreakerOutcome::Failure;
        let slow = outcome != BreakerOutcome::Ignored && self.policies.is_slow(duration);
        match outcome {
            BreakerOutcome::Success => totals.successes.fetch_add(1, Ordering::Relaxed),
            BreakerOutcome::Failure => totals.failures.fetch_add(1, Ordering::Relaxed),
            BreakerOutcome::Ignored => totals.ignored.fetch_add(1, Ordering::Relaxed),
        };
        if slow {
            totals.slow.fetch_add(1, Ordering::Relaxed);
        }
        let word = self.word.load();
        if word.generation() != generation {
            self.record_late();
            return;
        }
        match admitted_in {
            BreakerState::Closed | BreakerState::MetricsOnly
                if outcome != BreakerOutcome::Ignored =>
            {
                self.record_closed(word, failed, slow, now);
            }
            BreakerState::HalfOpen => self.record_probe(word, generation, outcome, slow, now),
            _ => {}
        }
    }

    /// Reports the call a [`BreakerToken`] stands for, at `now`; see [`BreakerPermit::finish`].
    /// A token naming no state is counted as late and changes nothing.
    pub fn record_token_at(&self, token: BreakerToken, outcome: BreakerOutcome, now: Nanos) {
        let Some(admitted_in) = BreakerState::from_code(token.admitted_in) else {
            self.record_late();
            return;
        };
        let duration = now.saturating_sub(token.start);
        self.record(token.generation, admitted_in, outcome, duration, now);
    }

    #[cold]
    fn record_late(&self) {
        self.totals.late.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    fn record_closed(&self, word: Word, failed: bool, slow: bool, now: Nanos) {
        let mut cause = None;
        if failed {
            // Relaxed: a trip decided from it is committed by the CAS on the state word.
            let in_a_row = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if self.policies.consecutive_trips(in_a_row) {
                cause = Some(TripCause::ConsecutiveFailures);
            }
        } else if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            // A load first: in steady state the counter is already 0 and stays unwritten.
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if let Some(window) = &self.window {
            let counts = window.record(failed, slow, now, &self.shards);
            if cause.is_none() && self.policies.checks_rates_after(failed, slow) {
                cause = self.policies.rate_trips(counts);
            }
        }
        if let Some(cause) = cause {
            if word.state() == BreakerState::Closed {
                self.trip(word, cause, now);
            }
        }
    }

    /// Opens a Closed breaker of `word`'s generation; does nothing if another thread already
    /// moved it on (that thread made the one transition of this generation).
    #[cold]
    fn trip(&self, word: Word, cause: TripCause, now: Nanos) {
        let settled = if word.is_pending() { self.word.load_settled() } else { word };
        if settled.generation() == word.generation() {
            let _ = self.transition(settled, BreakerState::Open, false, cause.into(), now);
        }
    }

    /// A probe's result: one CAS that counts it and, when it completes the decision, moves the
    /// breaker to Open or Closed in the same step.
    #[cold]
    fn record_probe(
        &self,
        mut word: Word,
        generation: u64,
        outcome: BreakerOutcome,
        slow: bool,
        now: Nanos,
    ) {
        loop {
            if word.generation() != generation || word.in_flight() == 0 {
                // The episode ended while this result was being counted in (or, from a
                // duplicated token, it has no probe in flight left to report).
                self.record_late();
                return;
            }
            let result = match outcome {
                BreakerOutcome::Ignored => Err(word.with_probe_returned()),
                BreakerOutcome::Success | BreakerOutcome::Failure => {
                    let next = word.with_result(outcome == BreakerOutcome::Failure, slow);
                    match self.policies.half_open_decision(
                        next.reported(),
                        next.failed(),
                        next.slow(),
                    ) {
                        Some(reopen) => Ok(reopen),
                        None => Err(next),
                    }
                }
            };
            if result.is_ok() && word.is_pending() {
                // A decision is a transition, which waits for the episode's set-up to finish.
                word = self.word.load_settled();
                continue;
            }
            let attempt = match result {
                Err(next) => self.word.cas(word, next),
                Ok(true) => self.transition(
                    word,
                    BreakerState::Open,
                    false,
                    TransitionCause::ProbesFailed,
                    now,
                ),
                Ok(false) => self.transition(
                    word,
                    BreakerState::Closed,
                    false,
                    TransitionCause::ProbesSucceeded,
                    now,
                ),
            };
            match attempt {
                Ok(_) => return,
                Err(seen) => word = seen,
            }
        }
    }

    /// The current state. Makes no transition: an Open breaker past its deadline still reads
    /// Open until a call or [`poll_at`](Self::poll_at) finds it.
    #[inline]
    pub fn state(&self) -> BreakerState {
        self.word.load().state()
    }

    /// Makes the lazy transitions due at `now` (Open → HalfOpen without admitting a probe, a
    /// half-open timeout) and returns the state after them. For callers that keep a timer from
    /// [`next_transition_at`](Self::next_transition_at).
    pub fn poll_at(&self, now: Nanos) -> BreakerState {
        let mut word = self.word.load();
        loop {
            if word.is_pending() {
                return word.state();
            }
            let (to, cause) = match word.state() {
                BreakerState::Open if self.open_elapsed(now) => {
                    (BreakerState::HalfOpen, TransitionCause::OpenElapsed)
                }
                BreakerState::HalfOpen if self.half_open_timed_out(now) => {
                    (self.config.half_open.on_timeout.into(), TransitionCause::HalfOpenTimeout)
                }
                state => return state,
            };
            word = match self.transition(word, to, false, cause, now) {
                Ok(next) | Err(next) => next,
            };
        }
    }

    /// [`poll_at`](Self::poll_at), reading the clock.
    pub fn poll(&self) -> BreakerState {
        self.poll_at(self.clock.now())
    }

    /// When the next lazy transition becomes due: the end of the open duration, or the
    /// half-open timeout. `None` when no transition is scheduled (Closed, the manual states, a
    /// half-open episode without a timeout, or a transition being set up right now).
    pub fn next_transition_at(&self) -> Option<Nanos> {
        let word = self.word.load();
        if word.is_pending() {
            return None;
        }
        match word.state() {
            BreakerState::Open => Some(self.open_until()),
            // Acquire: as in `open_until`.
            BreakerState::HalfOpen => match self.deadline.load(Ordering::Acquire) {
                u64::MAX => None,
                at => Some(at),
            },
            _ => None,
        }
    }

    /// Moves the breaker to `to` by hand at `now`, in a new generation, and returns whether it
    /// moved (`false` if it was already in `to`). Entering Open computes the next open
    /// duration; entering Closed empties the windows and resets the backoff; entering HalfOpen
    /// starts an episode with its full quota.
    pub fn transition_to_at(&self, to: BreakerState, now: Nanos) -> bool {
        loop {
            let word = self.word.load_settled();
            if word.state() == to {
                return false;
            }
            if self.transition(word, to, false, TransitionCause::Manual, now).is_ok() {
                return true;
            }
        }
    }

    /// [`transition_to_at`](Self::transition_to_at), reading the clock.
    pub fn transition_to(&self, to: BreakerState) -> bool {
        self.transition_to_at(to, self.clock.now())
    }

    /// Closes the breaker at `now` whatever its state, in a new generation, with empty windows
    /// and the backoff reset (resilience4j `reset`). Outstanding permits become late.
    pub fn reset_at(&self, now: Nanos) {
        loop {
            let word = self.word.load_settled();
            if self
                .transition(word, BreakerState::Closed, false, TransitionCause::Reset, now)
                .is_ok()
            {
                return;
            }
        }
    }

    /// [`reset_at`](Self::reset_at), reading the clock.
    pub fn reset(&self) {
        self.reset_at(self.clock.now());
    }

    /// State, counters and gauges; see [`BreakerSnapshot`].
    pub fn snapshot(&self) -> BreakerSnapshot {
        let word = self.word.load();
        let counts = self.window.as_ref().map(|w| w.counts(&self.shards)).unwrap_or_default();
        let totals = &*self.totals;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let transitions = |state: BreakerState| load(&self.transitions[state as usize]);
        BreakerSnapshot {
            state: word.state() as u32,
            generation: word.generation(),
            half_open_issued: word.issued(),
            half_open_in_flight: word.in_flight(),
            next_transition_at: self.next_transition_at().unwrap_or(u64::MAX),
            consecutive_failures: load(&self.consecutive_failures),
            consecutive_opens: load(&self.consecutive_opens),
            window_calls: counts.calls,
            window_failures: counts.failures,
            window_slow: counts.slow,
            successes: load(&totals.successes).wrapping_add(self.shards.successes()),
            failures: load(&totals.failures),
            slow: load(&totals.slow),
            ignored: load(&totals.ignored),
            late: load(&totals.late),
            rejected_open: load(&totals.rejected_open),
            rejected_half_open: load(&totals.rejected_half_open),
            to_closed: transitions(BreakerState::Closed),
            to_open: transitions(BreakerState::Open),
            to_half_open: transitions(BreakerState::HalfOpen),
            to_disabled: transitions(BreakerState::Disabled),
            to_forced_open: transitions(BreakerState::ForcedOpen),
            to_metrics_only: transitions(BreakerState::MetricsOnly),
        }
    }
}

impl<C: Clock> fmt::Debug for Breaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("config", &self.config)
            .field("snapshot", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl<C: Clock> fmt::Debug for BreakerBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Issue 17: with a 28-bit generation, a probe admitted 2^28 transitions earlier matched
    /// the current half-open episode, and its failure reopened the breaker.
    #[test]
    fn an_old_probe_failure_after_2_pow_28_transitions_counts_as_late() {
        let config = BreakerConfig {
            consecutive_failures: Some(1),
            failure_rate: None,
            open: OpenBackoff::constant(Duration::from_nanos(10)),
            half_open: HalfOpenConfig {
                probes: 2,
                max_concurrent: 2,
                close_rule: CloseRule::ConsecutiveSuccesses(2),
                timeout: None,
                on_timeout: HalfOpenTimeoutTarget::Open,
            },
            ..BreakerConfig::default()
        };
        let breaker = Breaker::new(config).unwrap();
        breaker.try_acquire_at(0).unwrap().failure_at(0);
        let old_probe = breaker.try_acquire_at(100).unwrap();
        assert_eq!(old_probe.admitted_in(), BreakerState::HalfOpen);
        // 2^28 transitions later the breaker is half-open again with one probe in flight: the
        // same state word as now, bits and all, in a generation 2^28 on.
        breaker.word.skip_generations(1 << 28);
        let generation = breaker.snapshot().generation;
        assert_eq!(generation, old_probe.generation() + (1 << 28));
        old_probe.failure_at(101);
        let snap = breaker.snapshot();
        assert_eq!(snap.late, 1, "the old probe's failure is late");
        assert_eq!((breaker.state(), snap.generation), (BreakerState::HalfOpen, generation));
        assert_eq!(snap.to_open, 1, "only the first trip opened it");
    }
}
