"""Per-call cost of valve through cffi, against empty cffi calls in the same run.

Run from the repository root after `cargo build --release`: `python3 ffi/python/bench.py`.
An acquire + release is two C calls, so its baseline is two calls of the cheapest function
the library has (`valve_version_number`, which only returns a constant). The limiter is valve's
default AIMD with its clock, the same work as criterion's `ffi/c_aimd_clock` (`cargo bench
--bench ffi`): what the binding adds is a figure here minus that one, set against the empty pair.
"""

import timeit

import valve
from valve._native import ffi, lib

N = 200_000
REPEAT = 5


def per_op_ns(stmt) -> float:
    return min(timeit.repeat(stmt, number=N, repeat=REPEAT)) / N * 1e9


def main() -> None:
    limiter = valve.Limiter()
    handle = limiter._live()
    permit = ffi.new("valve_permit *")
    version_number = lib.valve_version_number
    try_acquire, release = lib.valve_limiter_try_acquire, lib.valve_limiter_release
    success = lib.VALVE_OUTCOME_SUCCESS

    def empty_pair():
        version_number()
        version_number()

    def raw_pair():
        try_acquire(handle, permit)
        release(handle, permit, success)

    def with_block():
        with limiter.acquire():
            pass

    empty = per_op_ns(empty_pair)
    raw = per_op_ns(raw_pair)
    pythonic = per_op_ns(with_block)
    print(f"two empty cffi calls:                {empty:7.1f} ns")
    print(f"acquire + release, raw cffi calls:   {raw:7.1f} ns  ({raw / empty:.2f}x the empty pair)")
    print(f"`with limiter.acquire(): pass`:      {pythonic:7.1f} ns  ({pythonic / empty:.2f}x)")


if __name__ == "__main__":
    main()
