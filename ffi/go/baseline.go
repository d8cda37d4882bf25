package valve

// The baselines of the benchmarks in valve_test.go. They live outside the test files because
// a _test.go file cannot use cgo.

/*
#cgo noescape valve_limiter_try_acquire
#cgo nocallback valve_limiter_try_acquire
#cgo noescape valve_limiter_release
#cgo nocallback valve_limiter_release
#include "valve.h"

static void valve_go_empty(void) {}
*/
import "C"

import "runtime"

// emptyCall makes one cgo call to a C function that does nothing: the floor of any cgo call.
func emptyCall() { C.valve_go_empty() }

// rawAcquireSuccess is TryAcquire + Success as two bare cgo calls, without this package's Go
// code around them.
func rawAcquireSuccess(l *Limiter) {
	var permit C.valve_permit
	if C.valve_limiter_try_acquire(l.ptr, &permit) == C.VALVE_OK {
		C.valve_limiter_release(l.ptr, &permit, C.VALVE_OUTCOME_SUCCESS)
	}
	runtime.KeepAlive(l)
}
