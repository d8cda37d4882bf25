"""What the binding adds to an acquire + release, set against what a cffi call costs by itself,
all in one run.

Run after `pip install ./ffi/python` (which builds libvalve and the C fast path):
`python3 ffi/python/bench.py`.
Each of ROUNDS rounds times a batch of pairs of every kind, in turn (rotated, so no kind always
follows the same one); the figures are medians over the rounds, per pair, in ns:

- library: the pairs made and timed inside valve (``valve_limiter_bench_pairs[_at]``): the work
- empty: two cffi calls of the same signatures that return at once: valve's own entry points
  given a NULL limiter, which answer ``VALVE_NULL_POINTER`` after one comparison (a NULL of the
  handle's own type: cffi converts an untyped ``ffi.NULL`` on a slower path)
- cffi: two bare cffi calls per pair on a preallocated permit (cffi_at: with the caller's time,
  so no clock is read)
- with: ``with limiter.acquire(): pass``, this package's API, which reads the limiter's clock:
  ``valve.Limiter`` as imported, so the C fast path (``valve._fastpath``) where it was built
- with_pure_python: the same through the pure-Python classes (``valve._PyLimiter``), the path
  taken without the extension or with ``VALVE_PURE_PYTHON=1``

"added" is a figure minus the library's; the target is added <= 1.1 x empty. valve's default
AIMD limiter throughout, as criterion's ``ffi/c_aimd_*`` (``cargo bench --bench ffi``).
"""

import statistics
import sys
from time import perf_counter_ns

# The installed package, as the tests use it: the source tree beside this script has neither
# the library nor the declarations the build generates.
sys.path.pop(0)
import valve  # noqa: E402
from valve._native import ffi, lib  # noqa: E402

ROUNDS = 100
BATCH = 2000

NULL = ffi.cast("valve_limiter *", 0)
OK = lib.VALVE_OK
SUCCESS = lib.VALVE_OUTCOME_SUCCESS
try_acquire_at, release_at = lib.valve_limiter_try_acquire_at, lib.valve_limiter_release_at
try_acquire, release = lib.valve_limiter_try_acquire, lib.valve_limiter_release


def main() -> None:
    at, clock = valve.Limiter(), valve.Limiter()
    pure = valve._PyLimiter()
    at_handle, clock_handle = at._live(), clock._live()
    permit = ffi.new("valve_permit *")
    elapsed = ffi.new("uint64_t *")
    timeline = [0]  # the `_at` pairs' time, shared by every `_at` batch

    def start_at() -> int:
        start = timeline[0]
        timeline[0] += 100 * BATCH
        return start

    # Pair i is made at start + 100 i and released 50 ns later, as valve_limiter_bench_pairs_at.
    def empty_at() -> int:
        now = start_at()
        began = perf_counter_ns()
        for _ in range(BATCH):
            # NULL answers VALVE_NULL_POINTER: the test is inverted so both calls are made.
            if try_acquire_at(NULL, now, permit) != OK:
                release_at(NULL, permit, SUCCESS, now + 50)
            now += 100
        return perf_counter_ns() - began

    def cffi_at() -> int:
        now = start_at()
        began = perf_counter_ns()
        for _ in range(BATCH):
            if try_acquire_at(at_handle, now, permit) == OK:
                release_at(at_handle, permit, SUCCESS, now + 50)
            now += 100
        return perf_counter_ns() - began

    def library_at() -> int:
        lib.valve_limiter_bench_pairs_at(at_handle, start_at(), BATCH, elapsed)
        return elapsed[0]

    def empty() -> int:
        began = perf_counter_ns()
        for _ in range(BATCH):
            if try_acquire(NULL, permit) != OK:
                release(NULL, permit, SUCCESS)
        return perf_counter_ns() - began

    def cffi_clock() -> int:
        began = perf_counter_ns()
        for _ in range(BATCH):
            if try_acquire(clock_handle, permit) == OK:
                release(clock_handle, permit, SUCCESS)
        return perf_counter_ns() - began

    def library() -> int:
        lib.valve_limiter_bench_pairs(clock_handle, BATCH, elapsed)
        return elapsed[0]

    def with_block(limiter) -> int:
        acquire = limiter.acquire
        began = perf_counter_ns()
        for _ in range(BATCH):
            with acquire():
                pass
        return perf_counter_ns() - began

    kinds = {
        "empty_at": empty_at,
        "library_at": library_at,
        "cffi_at": cffi_at,
        "empty": empty,
        "library": library,
        "cffi": cffi_clock,
        "with": lambda: with_block(clock),
        "with_pure_python": lambda: with_block(pure),
    }
    names = list(kinds)
    samples = {name: [] for name in names}
    for round_ in range(ROUNDS):
        for k in range(len(names)):
            name = names[(k + round_) % len(names)]
            samples[name].append(kinds[name]() / BATCH)
    ns = {name: statistics.median(values) for name, values in samples.items()}

    path = "C fast path" if valve._fastpath is not None else "pure Python"
    print(f"per pair, median of {ROUNDS} rounds of {BATCH}; target: added <= 1.1 x empty")
    print(f"with: valve.Limiter ({path}); with_pure_python: valve._PyLimiter")
    print(f"{'':22} {'total':>8} {'library':>8} {'added':>8} {'empty':>8} {'ratio':>7}")
    for total, work, floor in (
        ("cffi_at", "library_at", "empty_at"),
        ("cffi", "library", "empty"),
        ("with", "library", "empty"),
        ("with_pure_python", "library", "empty"),
    ):
        added = ns[total] - ns[work]
        print(
            f"{total:22} {ns[total]:8.1f} {ns[work]:8.1f} {added:8.1f} {ns[floor]:8.1f}"
            f" {added / ns[floor]:7.2f}"
        )


if __name__ == "__main__":
    main()
