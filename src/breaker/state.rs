//! The state word: which state the breaker is in, its generation, and the half-open probe
//! counts, in one atomic.
//!
//! Keeping all three in one word is what makes the half-open quota exact and every transition
//! happen once: a probe is admitted, reported or turned into a decision by one CAS on this
//! word, and a transition is the CAS that bumps the generation. The Closed-state admission
//! check is a single load of it.
//!
//! The word holds the low 28 bits of the generation; the full 64-bit generation is published
//! beside it by each transition's owner, and every load rebuilds it (see [`StateWord`]), so a
//! generation never repeats in practice (2^64 transitions) and a permit of an old generation
//! stays late however many transitions pass (issue 17: with the 28-bit generation alone, a
//! probe admitted 2^28 transitions earlier, 58 s of manual transitions, could reopen the
//! breaker).

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering, spin_hint};

/// Bit layout of the state word:
///
/// | bits   | field        | meaning |
/// |--------|--------------|---------|
/// | 0..3   | `state`      | [`BreakerState`] code; Closed is 0 so its check is `word & 7 == 0` |
/// | 3      | `pending`    | a transition's owner is still setting up the new state (deadline, window reset) |
/// | 4..12  | `issued`     | probes admitted in this half-open episode, less those reported ignored |
/// | 12..20 | `in_flight`  | probes admitted and not yet reported |
/// | 20..28 | `failed`     | probes reported as failures |
/// | 28..36 | `slow`       | probes reported as slow |
/// | 36..64 | `generation` | the low 28 bits of the generation, bumped by every transition |
///
/// Invariants: the four counts are zero unless `state` is HalfOpen; `in_flight <= issued <=
/// quota <= MAX_PROBES`, and `failed`, `slow` never exceed `issued - in_flight` (the probes
/// reported). Every transition is one CAS from a word with `pending` clear to a word of the next
/// generation with `pending` set, so no transition starts while another is being set up and the
/// generation cannot move while `pending` is set. While it is set, the owner (the thread whose
/// CAS set it) writes the deadline and resets the windows, and others may only admit, return and
/// count half-open probes in the word (keeping the bit); anything that would read the deadline
/// or make a transition waits for the owner's `fetch_and` that clears the bit and publishes
/// the set-up. A permit remembers the (full) generation it was admitted in; its result may change
/// the word only while that generation is current.
const STATE_MASK: u64 = 0b111;
const PENDING: u64 = 1 << 3;
const ISSUED_SHIFT: u32 = 4;
const IN_FLIGHT_SHIFT: u32 = 12;
const FAILED_SHIFT: u32 = 20;
const SLOW_SHIFT: u32 = 28;
const COUNT_MASK: u64 = 0xff;
const GENERATION_SHIFT: u32 = 36;
const GENERATION_MASK: u64 = (1 << 28) - 1;

/// The most probes one half-open episode may admit (the counts are 8 bits each).
pub const MAX_PROBES: u32 = COUNT_MASK as u32;

/// The state of a [`Breaker`](crate::Breaker).
///
/// Closed, Open and HalfOpen are the automatic states. Disabled, ForcedOpen and MetricsOnly are
/// entered and left only by hand (resilience4j's special states; ForcedOpen is Polly's
/// `Isolate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum BreakerState {
    /// Calls go through; results feed the trip policies.
    Closed = 0,
    /// Calls are refused until the open duration has passed.
    Open = 1,
    /// A limited number of probe calls go through; their results close or reopen the breaker.
    HalfOpen = 2,
    /// Calls go through and nothing is recorded in the windows.
    Disabled = 3,
    /// Calls are refused until a manual transition.
    ForcedOpen = 4,
    /// Calls go through and are recorded, but the breaker never trips.
    MetricsOnly = 5,
}

impl BreakerState {
    /// All states, in code order.
    pub const ALL: [Self; 6] = [
        Self::Closed,
        Self::Open,
        Self::HalfOpen,
        Self::Disabled,
        Self::ForcedOpen,
        Self::MetricsOnly,
    ];

    /// The state for a code from [`BreakerState as u32`](BreakerState), if it names one.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// Whether calls are admitted without a probe quota.
    #[inline]
    pub(crate) fn admits_freely(self) -> bool {
        matches!(self, Self::Closed | Self::Disabled | Self::MetricsOnly)
    }
}

/// One decoded state word, with its full generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    bits: u64,
    generation: u64,
}

impl Word {
    /// The word `bits`, whose generation is the first at or after `floor` with the low bits
    /// `bits` holds: exact while the word is fewer than 2^28 transitions past `floor`.
    #[inline]
    fn decode(bits: u64, floor: u64) -> Self {
        let low = bits >> GENERATION_SHIFT;
        Self { bits, generation: floor + (low.wrapping_sub(floor) & GENERATION_MASK) }
    }

    /// The word a transition CAS installs: `state` in the generation after `self`'s, counts
    /// zero, `pending` set.
    #[inline]
    pub(crate) fn next(self, state: BreakerState) -> Self {
        let generation = self.generation + 1;
        let low = generation & GENERATION_MASK;
        Self { bits: state as u64 | PENDING | low << GENERATION_SHIFT, generation }
    }

    #[inline]
    pub(crate) fn is_closed(self) -> bool {
        self.bits & STATE_MASK == BreakerState::Closed as u64
    }

    #[inline]
    pub(crate) fn state(self) -> BreakerState {
        // Only `Word::next` and `with_probe`/`with_result` build words, from valid states.
        BreakerState::from_code((self.bits & STATE_MASK) as u32).unwrap_or(BreakerState::Open)
    }

    #[inline]
    pub(crate) fn is_pending(self) -> bool {
        self.bits & PENDING != 0
    }

    #[inline]
    pub(crate) fn without_pending(self) -> Self {
        Self { bits: self.bits & !PENDING, ..self }
    }

    /// The full generation.
    #[inline]
    pub(crate) fn generation(self) -> u64 {
        self.generation
    }

    #[inline]
    fn count(self, shift: u32) -> u32 {
        ((self.bits >> shift) & COUNT_MASK) as u32
    }

    #[inline]
    fn with_bits(self, bits: u64) -> Self {
        Self { bits, ..self }
    }

    #[inline]
    pub(crate) fn issued(self) -> u32 {
        self.count(ISSUED_SHIFT)
    }

    #[inline]
    pub(crate) fn in_flight(self) -> u32 {
        self.count(IN_FLIGHT_SHIFT)
    }

    #[inline]
    pub(crate) fn failed(self) -> u32 {
        self.count(FAILED_SHIFT)
    }

    #[inline]
    pub(crate) fn slow(self) -> u32 {
        self.count(SLOW_SHIFT)
    }

    /// Probes reported with a result (not ignored) in this episode.
    #[inline]
    pub(crate) fn reported(self) -> u32 {
        self.issued() - self.in_flight()
    }

    /// One more probe admitted. The caller has checked the quota and the concurrency cap, which
    /// are at most [`MAX_PROBES`], so neither count overflows.
    #[inline]
    pub(crate) fn with_probe(self) -> Self {
        self.with_bits(self.bits + (1 << ISSUED_SHIFT) + (1 << IN_FLIGHT_SHIFT))
    }

    /// A probe of this episode reported ignored: it gives back its quota.
    #[inline]
    pub(crate) fn with_probe_returned(self) -> Self {
        self.with_bits(self.bits - (1 << ISSUED_SHIFT) - (1 << IN_FLIGHT_SHIFT))
    }

    /// A probe of this episode reported a result.
    #[inline]
    pub(crate) fn with_result(self, failed: bool, slow: bool) -> Self {
        let mut word = self.bits - (1 << IN_FLIGHT_SHIFT);
        if failed {
            word += 1 << FAILED_SHIFT;
        }
        if slow {
            word += 1 << SLOW_SHIFT;
        }
        self.with_bits(word)
    }
}

#[derive(Debug)]
struct Words {
    word: AtomicU64,
    /// The full generation of the newest settled transition (or of one being set up). Only
    /// transition owners write it, before they settle.
    generation: AtomicU64,
}

/// The state word. See the table above.
///
/// The full generation: a load reads the published `generation` first, then the word, and
/// takes the first generation at or after the published one that has the word's low bits.
/// The word is at or after the published generation (its transition's CAS happened before the
/// `Release` store the load acquired), and at most the transitions made between the two loads
/// past it, so the result is exact unless 2^28 transitions fall between two adjacent loads.
/// A CAS that fails rebuilds the word it found from the generation its caller held, which
/// that word is at or after.
///
/// Memory ordering: transitions are `AcqRel` CASes and the `fetch_and` that clears `pending` is
/// `Release`, so a thread that loads the word with `Acquire` and sees a settled state also sees
/// everything its owner set up (the open deadline, the reset windows). Probe admission and
/// probe results are `AcqRel` CASes for the same reason.
#[derive(Debug)]
pub(crate) struct StateWord {
    words: CachePadded<Words>,
}

impl StateWord {
    pub(crate) fn new(state: BreakerState) -> Self {
        let words = Words { word: AtomicU64::new(state as u64), generation: AtomicU64::new(0) };
        Self { words: CachePadded::new(words) }
    }

    #[inline]
    pub(crate) fn load(&self) -> Word {
        // Acquire pairs with the Release store in `settle`: the word loaded next is at or
        // after the transition that published this generation.
        let floor = self.words.generation.load(Ordering::Acquire);
        Word::decode(self.words.word.load(Ordering::Acquire), floor)
    }

    /// Replaces `current` with `new` if the word still holds `current`; returns what it held.
    #[inline]
    pub(crate) fn cas(&self, current: Word, new: Word) -> Result<Word, Word> {
        match self.words.word.compare_exchange(
            current.bits,
            new.bits,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(current),
            Err(seen) => Err(Word::decode(seen, current.generation)),
        }
    }

    /// Ends the transition to `settled` (the word its CAS installed): publishes its full
    /// generation, then clears `pending`. Only the thread whose CAS installed `pending` may
    /// call this. A `fetch_and`, not a store, keeps the probes admitted meanwhile.
    #[inline]
    pub(crate) fn settle(&self, settled: Word) {
        // Release: whoever reads this generation sees the transition's CAS (see `load`).
        self.words.generation.store(settled.generation, Ordering::Release);
        self.words.word.fetch_and(!PENDING, Ordering::Release);
    }

    /// Moves a settled word `transitions` generations on, keeping its state and counts: what
    /// that many transitions ending in the same state would leave, without making them.
    #[cfg(all(test, not(valve_loom)))]
    pub(crate) fn skip_generations(&self, transitions: u64) {
        let word = self.load();
        assert!(!word.is_pending());
        let generation = word.generation + transitions;
        let low_mask = GENERATION_MASK << GENERATION_SHIFT;
        let bits = word.bits & !low_mask | (generation & GENERATION_MASK) << GENERATION_SHIFT;
        self.words.generation.store(generation, Ordering::Release);
        self.words.word.store(bits, Ordering::Release);
    }

    /// The current word once no transition is being set up. Manual transitions and half-open
    /// decisions wait here for the few instructions an owner takes between its CAS and
    /// [`settle`](Self::settle); admission never does.
    #[cold]
    pub(crate) fn load_settled(&self) -> Word {
        loop {
            let word = self.load();
            if !word.is_pending() {
                return word;
            }
            spin_hint();
        }
    }
}

#[cfg(all(test, not(valve_loom)))]
mod tests {
    use super::*;

    #[test]
    fn fields_do_not_overlap() {
        let w = Word::decode(0, 0).next(BreakerState::HalfOpen);
        assert!(w.is_pending());
        assert_eq!(w.generation(), 1);
        let w = w.without_pending().with_probe().with_probe().with_result(true, true);
        assert_eq!((w.issued(), w.in_flight(), w.failed(), w.slow()), (2, 1, 1, 1));
        assert_eq!(w.reported(), 1);
        assert_eq!(w.state(), BreakerState::HalfOpen);
        let w = w.with_probe_returned();
        assert_eq!((w.issued(), w.in_flight(), w.reported()), (1, 0, 1));
        let closed = w.next(BreakerState::Closed);
        assert!(closed.without_pending().is_closed());
        assert_eq!((closed.issued(), closed.failed(), closed.generation()), (0, 0, 2));
    }

    #[test]
    fn the_low_bits_wrap_without_touching_the_counts_or_the_full_generation() {
        let last = Word::decode(GENERATION_MASK << GENERATION_SHIFT, GENERATION_MASK);
        assert_eq!(last.generation(), GENERATION_MASK);
        let next = last.next(BreakerState::Open);
        assert_eq!(next.bits >> GENERATION_SHIFT, 0);
        assert_eq!(next.generation(), GENERATION_MASK + 1);
        assert_eq!(next.state(), BreakerState::Open);
        assert_eq!((next.issued(), next.in_flight()), (0, 0));
    }

    #[test]
    fn the_full_generation_is_rebuilt_from_the_published_one() {
        let floor = 3 << 28 | 5;
        // The word at the published generation, a few past it, and past a wrap of the low bits.
        assert_eq!(Word::decode(5 << GENERATION_SHIFT, floor).generation(), floor);
        assert_eq!(Word::decode(9 << GENERATION_SHIFT, floor).generation(), floor + 4);
        assert_eq!(Word::decode(2 << GENERATION_SHIFT, floor).generation(), 4 << 28 | 2);
        let words = StateWord::new(BreakerState::Closed);
        let open = words.load().next(BreakerState::Open);
        words.cas(words.load(), open).unwrap();
        assert_eq!(words.load().generation(), 1, "pending: one past the published 0");
        words.settle(open);
        assert_eq!(words.load(), open.without_pending());
    }

    #[test]
    fn full_counts_fit() {
        let mut w = Word::decode(BreakerState::HalfOpen as u64 | 7 << GENERATION_SHIFT, 7);
        for _ in 0..MAX_PROBES {
            w = w.with_probe();
        }
        for _ in 0..MAX_PROBES {
            w = w.with_result(true, true);
        }
        assert_eq!((w.issued(), w.in_flight(), w.failed(), w.slow()), (255, 0, 255, 255));
        assert_eq!(w.generation(), 7);
    }
}
