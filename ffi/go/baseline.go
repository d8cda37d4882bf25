package valve

// The measured loops of BenchmarkOverhead (valve_test.go). They live outside the test files
// because a _test.go file cannot use cgo.

/*
#cgo noescape valve_limiter_try_acquire_at
#cgo nocallback valve_limiter_try_acquire_at
#cgo noescape valve_limiter_release_at
#cgo nocallback valve_limiter_release_at
#cgo noescape valve_limiter_try_acquire
#cgo nocallback valve_limiter_try_acquire
#cgo noescape valve_limiter_release
#cgo nocallback valve_limiter_release
#cgo noescape valve_go_empty_try_acquire_at
#cgo nocallback valve_go_empty_try_acquire_at
#cgo noescape valve_go_empty_release_at
#cgo nocallback valve_go_empty_release_at
#cgo noescape valve_go_empty_try_acquire
#cgo nocallback valve_go_empty_try_acquire
#cgo noescape valve_go_empty_release
#cgo nocallback valve_go_empty_release
#cgo noescape valve_go_empty_try_acquire_raw
#cgo nocallback valve_go_empty_try_acquire_raw
#cgo noescape valve_go_empty_release_raw
#cgo nocallback valve_go_empty_release_raw
#include <valve.h>

// Empty functions with the signatures of the entry points measured: what a cgo call of that
// shape costs by itself. Not inlined into cgo's wrappers, so each is a real call, as valve's are.
__attribute__((noinline)) static valve_status valve_go_empty_try_acquire_at(
    const valve_limiter *limiter, uint64_t now_ns, valve_permit *out) {
    (void)limiter, (void)now_ns, (void)out;
    return VALVE_OK;
}

__attribute__((noinline)) static valve_status valve_go_empty_release_at(
    const valve_limiter *limiter, valve_permit *permit, uint32_t outcome, uint64_t now_ns) {
    (void)limiter, (void)permit, (void)outcome, (void)now_ns;
    return VALVE_OK;
}

__attribute__((noinline)) static valve_status valve_go_empty_try_acquire(
    const valve_limiter *limiter, valve_permit *out) {
    (void)limiter, (void)out;
    return VALVE_OK;
}

__attribute__((noinline)) static valve_status valve_go_empty_release(
    const valve_limiter *limiter, valve_permit *permit, uint32_t outcome) {
    (void)limiter, (void)permit, (void)outcome;
    return VALVE_OK;
}

// The signatures of the shims TryAcquire and Success call (valve.go), whose handle crosses as
// an integer, so cgo checks no pointer: the floor of the path this package takes.
__attribute__((noinline)) static valve_status valve_go_empty_try_acquire_raw(
    uintptr_t limiter, valve_permit *out) {
    (void)limiter, (void)out;
    return VALVE_OK;
}

__attribute__((noinline)) static valve_status valve_go_empty_release_raw(
    uintptr_t limiter, valve_permit *permit, uint32_t outcome) {
    (void)limiter, (void)permit, (void)outcome;
    return VALVE_OK;
}
*/
import "C"

import (
	"runtime"
	"time"
)

// The `_at` loops make pair i at start + 100 i, released 50 ns later: the timeline of
// valve_limiter_bench_pairs_at, so the cgo loop and the library's own loop do the same work.

// timeEmptyPairsAt times n pairs of empty cgo calls shaped as try_acquire_at and release_at.
func timeEmptyPairsAt(l *Limiter, start uint64, n int) time.Duration {
	var permit C.valve_permit
	now := C.uint64_t(start)
	began := time.Now()
	for i := 0; i < n; i++ {
		if C.valve_go_empty_try_acquire_at(l.ptr, now, &permit) == C.VALVE_OK {
			C.valve_go_empty_release_at(l.ptr, &permit, C.VALVE_OUTCOME_SUCCESS, now+50)
		}
		now += 100
	}
	elapsed := time.Since(began)
	runtime.KeepAlive(l)
	return elapsed
}

// timeCgoPairsAt times n acquire + release pairs as two bare cgo calls each, the caller
// supplying the time: no clock is read.
func timeCgoPairsAt(l *Limiter, start uint64, n int) time.Duration {
	var permit C.valve_permit
	now := C.uint64_t(start)
	began := time.Now()
	for i := 0; i < n; i++ {
		if C.valve_limiter_try_acquire_at(l.ptr, now, &permit) == C.VALVE_OK {
			C.valve_limiter_release_at(l.ptr, &permit, C.VALVE_OUTCOME_SUCCESS, now+50)
		}
		now += 100
	}
	elapsed := time.Since(began)
	runtime.KeepAlive(l)
	return elapsed
}

// timeLibraryPairsAt is the same n pairs made and timed inside the library: the work alone.
func timeLibraryPairsAt(l *Limiter, start uint64, n int) time.Duration {
	var elapsed C.uint64_t
	C.valve_limiter_bench_pairs_at(l.ptr, C.uint64_t(start), C.uint64_t(n), &elapsed)
	runtime.KeepAlive(l)
	return time.Duration(elapsed)
}

// timeEmptyPairs times n pairs of empty cgo calls shaped as try_acquire and release.
func timeEmptyPairs(l *Limiter, n int) time.Duration {
	var permit C.valve_permit
	began := time.Now()
	for i := 0; i < n; i++ {
		if C.valve_go_empty_try_acquire(l.ptr, &permit) == C.VALVE_OK {
			C.valve_go_empty_release(l.ptr, &permit, C.VALVE_OUTCOME_SUCCESS)
		}
	}
	elapsed := time.Since(began)
	runtime.KeepAlive(l)
	return elapsed
}

// timeEmptyRawPairs times n pairs of empty cgo calls shaped as the shims TryAcquire and Success
// call.
func timeEmptyRawPairs(l *Limiter, n int) time.Duration {
	var permit C.valve_permit
	raw := l.raw()
	began := time.Now()
	for i := 0; i < n; i++ {
		if C.valve_go_empty_try_acquire_raw(raw, &permit) == C.VALVE_OK {
			C.valve_go_empty_release_raw(raw, &permit, C.VALVE_OUTCOME_SUCCESS)
		}
	}
	elapsed := time.Since(began)
	runtime.KeepAlive(l)
	return elapsed
}

// timeCgoPairs times n acquire + release pairs as two bare cgo calls each, reading the
// limiter's clock: TryAcquire + Success without this package's Go code around the calls.
func timeCgoPairs(l *Limiter, n int) time.Duration {
	var permit C.valve_permit
	began := time.Now()
	for i := 0; i < n; i++ {
		if C.valve_limiter_try_acquire(l.ptr, &permit) == C.VALVE_OK {
			C.valve_limiter_release(l.ptr, &permit, C.VALVE_OUTCOME_SUCCESS)
		}
	}
	elapsed := time.Since(began)
	runtime.KeepAlive(l)
	return elapsed
}

// timeLibraryPairs is n pairs reading the limiter's clock, made and timed inside the library.
func timeLibraryPairs(l *Limiter, n int) time.Duration {
	var elapsed C.uint64_t
	C.valve_limiter_bench_pairs(l.ptr, C.uint64_t(n), &elapsed)
	runtime.KeepAlive(l)
	return time.Duration(elapsed)
}
