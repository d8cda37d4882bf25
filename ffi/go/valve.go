// Package valve is a Go binding of valve's C ABI (include/valve.h): a concurrency limiter that
// admits work up to an adaptive limit and sheds the rest at once (limiter in valve.go), retry
// budgets and backoff (budget.go) and a circuit breaker (breaker.go).
//
// It links libvalve, found through pkg-config: install it from the repository root with
// `cargo build --release && make install PREFIX=...` and, if PREFIX/lib/pkgconfig is not on
// pkg-config's search path, set PKG_CONFIG_PATH to it. By default it links libvalve.so (found at
// run time through ld.so.conf or LD_LIBRARY_PATH); `-tags valve_static` links libvalve.a into
// the binary. In a checkout, `make build-tree` writes pkg-config files for target/release into
// target/pkgconfig. Without libvalve, pkg-config's error names install-libvalve (see
// link_shared.go); with CGO_ENABLED=0, the compiler's names valve_requires_cgo (nocgo.go). Go's
// build cache does not notice a change in what pkg-config says (golang.org/issue/24544): after
// moving libvalve, run `go clean -cache`.
//
// Every method of a Limiter is safe for concurrent use, except Close, which must not run
// concurrently with anything else on the same Limiter.
//
//	limiter, err := valve.New(valve.DefaultConfig())
//	if err != nil { ... }
//	defer limiter.Close()
//	permit, err := limiter.TryAcquire()
//	if errors.Is(err, valve.ErrRejected) { /* answer 503 at once */ }
//	defer permit.Ignore() // a no-op once Success or Dropped ran
//	... call the backend ...
//	permit.Success() // or permit.Dropped() on a timeout or a 503
package valve

/*
// valve keeps no pointer past a call and never calls back into Go: cgo may then skip the
// escape of arguments to the heap and the callback bookkeeping.
#cgo noescape valve_go_try_acquire
#cgo nocallback valve_go_try_acquire
#cgo noescape valve_go_release
#cgo nocallback valve_go_release
#cgo noescape valve_limiter_get_snapshot
#cgo nocallback valve_limiter_get_snapshot
#cgo noescape valve_limiter_acquire_until
#cgo nocallback valve_limiter_acquire_until
#cgo noescape valve_limiter_acquire_timeout
#cgo nocallback valve_limiter_acquire_timeout
#cgo noescape valve_limiter_acquire_cancellable
#cgo nocallback valve_limiter_acquire_cancellable
#include <valve.h>

// The hot path's handle crosses as an integer. It points to C memory, where cgo's check for Go
// pointers (a runtime call for each argument whose type it cannot see into, as the opaque
// valve_limiter) has nothing to find; the check cost as much as the rest of the binding.
static inline valve_status valve_go_try_acquire(uintptr_t limiter, valve_permit *out) {
    return valve_limiter_try_acquire((const valve_limiter *)limiter, out);
}

static inline valve_status valve_go_release(uintptr_t limiter, valve_permit *permit,
                                            uint32_t outcome) {
    return valve_limiter_release((const valve_limiter *)limiter, permit, outcome);
}
*/
import "C"

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Status is a valve_status code. The non-OK ones are errors; compare with errors.Is.
type Status uint32

// The valve_status codes.
const (
	StatusOK              Status = C.VALVE_OK
	StatusRejected        Status = C.VALVE_REJECTED
	StatusInvalidArgument Status = C.VALVE_INVALID_ARGUMENT
	StatusNullPointer     Status = C.VALVE_NULL_POINTER
	StatusStalePermit     Status = C.VALVE_STALE_PERMIT
	StatusForeignPermit   Status = C.VALVE_FOREIGN_PERMIT
	StatusInternal        Status = C.VALVE_INTERNAL
	StatusTimeout         Status = C.VALVE_TIMEOUT
	StatusBudgetExhausted Status = C.VALVE_BUDGET_EXHAUSTED
	StatusCancelled       Status = C.VALVE_CANCELLED
	StatusInvalidHandle   Status = C.VALVE_INVALID_HANDLE
)

// Errors returned by this package.
var (
	// ErrRejected: the limit was reached. Shed the work.
	ErrRejected error = StatusRejected
	// ErrInvalidArgument: a config failed validation.
	ErrInvalidArgument error = StatusInvalidArgument
	// ErrStalePermit: the permit was already released (or never held a slot).
	ErrStalePermit error = StatusStalePermit
	// ErrTimeout: a blocking acquire's deadline passed before a slot was free.
	ErrTimeout error = StatusTimeout
	// ErrBudgetExhausted: the client's own retry budget refused a retry. Do not retry.
	ErrBudgetExhausted error = StatusBudgetExhausted
	// ErrClosed: the limiter (or budget, backoff, breaker) was closed.
	ErrClosed = errors.New("valve: handle is closed")
)

// Error names the code as the C library does, e.g. "valve: VALVE_REJECTED".
func (s Status) Error() string {
	return "valve: " + C.GoString(C.valve_status_name(C.uint32_t(s)))
}

func statusError(s C.valve_status) error {
	if s == C.VALVE_OK {
		return nil
	}
	return Status(s)
}

// Algorithm picks a limit algorithm.
type Algorithm uint32

// The limit algorithms.
const (
	// Fixed is a constant limit, settable by hand: Config.FixedLimit.
	Fixed Algorithm = C.VALVE_ALGORITHM_FIXED
	// AIMD is additive increase, multiplicative decrease: Config.AIMD.
	AIMD Algorithm = C.VALVE_ALGORITHM_AIMD
	// Gradient2 is Netflix's RTT gradient; tuned by its preset (Gradient2Config).
	Gradient2 Algorithm = C.VALVE_ALGORITHM_GRADIENT2
	// Vegas is TCP Vegas's queue estimate; tuned by its preset (VegasConfig).
	Vegas Algorithm = C.VALVE_ALGORITHM_VEGAS
	// EnvoyGradient is Envoy's gradient controller; tuned by its preset (EnvoyGradientConfig).
	EnvoyGradient Algorithm = C.VALVE_ALGORITHM_ENVOY_GRADIENT
)

// QueueOrdering says which waiter a freed slot goes to.
type QueueOrdering uint32

// The queue orderings.
const (
	FIFO     QueueOrdering = C.VALVE_QUEUE_FIFO
	LIFO     QueueOrdering = C.VALVE_QUEUE_LIFO
	Adaptive QueueOrdering = C.VALVE_QUEUE_ADAPTIVE
)

// QueueConfig configures the waiter queue of Acquire and AcquireTimeout; see
// valve_queue_config in valve.h. The zero value has no queue: a wait that finds no free slot
// is refused at once.
type QueueConfig struct {
	MaxWaiters  uint32
	Ordering    QueueOrdering
	MaxAge      time.Duration // Adaptive: age of the oldest waiter from which ordering is LIFO
	RejectFrom  float64
	RejectAllAt float64
	Seed        uint64
}

// WindowConfig says how completed calls are aggregated before the algorithm sees them.
type WindowConfig struct {
	MinDuration     time.Duration
	MaxDuration     time.Duration
	MinSamples      uint32
	MinRTTThreshold time.Duration
}

// AIMDConfig configures the AIMD algorithm; see valve_aimd_config in valve.h.
type AIMDConfig struct {
	InitialLimit uint32
	MinLimit     uint32
	MaxLimit     uint32
	IncreaseStep uint32
	BackoffRatio float64
	// UtilisationThreshold: the limit grows only while a window's in-flight reaches this share
	// of it, in [0, 1]. Netflix: 0.5 (an under-loaded limit climbs to twice its peak
	// in-flight). valve: 0.8.
	UtilisationThreshold float64
	Timeout              time.Duration
	// LatencyTolerance: back off when the averaged RTT exceeds this multiple of a learnt
	// no-load RTT, in (1, 100]; 0 learns from drops and Timeout only (Netflix). valve: 1.5.
	LatencyTolerance float64
	Window           WindowConfig
}

// Config configures a Limiter: Algorithm picks which of FixedLimit and AIMD is read. Gradient2,
// Vegas and EnvoyGradient keep the tuning of the preset the Config came from (valve's defaults
// for a Config built by hand).
type Config struct {
	Algorithm  Algorithm
	FixedLimit uint32
	AIMD       AIMDConfig
	Queue      QueueConfig
	// The preset's full C config, holding the members Go does not mirror.
	base    C.valve_limiter_config
	hasBase bool
}

// DefaultConfig is valve's AIMD defaults (valve_limiter_config_default).
func DefaultConfig() Config { return configFromC(C.valve_limiter_config_default()) }

// NetflixAIMDConfig is Netflix AIMDLimit parity (valve_limiter_config_aimd_netflix).
func NetflixAIMDConfig() Config { return configFromC(C.valve_limiter_config_aimd_netflix()) }

// FixedConfig is a fixed limit of limit (valve_limiter_config_fixed).
func FixedConfig(limit uint32) Config {
	return configFromC(C.valve_limiter_config_fixed(C.uint32_t(limit)))
}

// Gradient2Config is valve's Gradient2 defaults (valve_limiter_config_gradient2).
func Gradient2Config() Config { return configFromC(C.valve_limiter_config_gradient2()) }

// NetflixGradient2Config is Netflix Gradient2Limit parity (valve_limiter_config_gradient2_netflix).
func NetflixGradient2Config() Config {
	return configFromC(C.valve_limiter_config_gradient2_netflix())
}

// VegasConfig is valve's Vegas defaults (valve_limiter_config_vegas).
func VegasConfig() Config { return configFromC(C.valve_limiter_config_vegas()) }

// NetflixVegasConfig is Netflix VegasLimit parity (valve_limiter_config_vegas_netflix).
func NetflixVegasConfig() Config { return configFromC(C.valve_limiter_config_vegas_netflix()) }

// EnvoyGradientConfig is valve's Envoy gradient defaults (valve_limiter_config_envoy_gradient).
func EnvoyGradientConfig() Config { return configFromC(C.valve_limiter_config_envoy_gradient()) }

// EnvoyConfig is Envoy's gradient controller parity (valve_limiter_config_envoy_gradient_envoy).
func EnvoyConfig() Config { return configFromC(C.valve_limiter_config_envoy_gradient_envoy()) }

func configFromC(c C.valve_limiter_config) Config {
	return Config{
		base:    c,
		hasBase: true,
		Queue: QueueConfig{
			MaxWaiters:  uint32(c.queue.max_waiters),
			Ordering:    QueueOrdering(c.queue.ordering),
			MaxAge:      durationFromNs(c.queue.max_age_ns),
			RejectFrom:  float64(c.queue.reject_from),
			RejectAllAt: float64(c.queue.reject_all_at),
			Seed:        uint64(c.queue.seed),
		},
		Algorithm:  Algorithm(c.algorithm),
		FixedLimit: uint32(c.fixed.limit),
		AIMD: AIMDConfig{
			InitialLimit:         uint32(c.aimd.initial_limit),
			MinLimit:             uint32(c.aimd.min_limit),
			MaxLimit:             uint32(c.aimd.max_limit),
			IncreaseStep:         uint32(c.aimd.increase_step),
			BackoffRatio:         float64(c.aimd.backoff_ratio),
			UtilisationThreshold: float64(c.aimd.utilisation_threshold),
			Timeout:              durationFromNs(c.aimd.timeout_ns),
			LatencyTolerance:     float64(c.aimd.latency_tolerance),
			Window: WindowConfig{
				MinDuration:     durationFromNs(c.aimd.window.min_duration_ns),
				MaxDuration:     durationFromNs(c.aimd.window.max_duration_ns),
				MinSamples:      uint32(c.aimd.window.min_samples),
				MinRTTThreshold: durationFromNs(c.aimd.window.min_rtt_threshold_ns),
			},
		},
	}
}

// durationFromNs saturates: the C side uses u64::MAX ns for "never".
func durationFromNs(ns C.uint64_t) time.Duration {
	if uint64(ns) > uint64(1<<63-1) {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(ns)
}

func (c *Config) toC() (C.valve_limiter_config, error) {
	a, w := &c.AIMD, &c.AIMD.Window
	for _, d := range []time.Duration{a.Timeout, w.MinDuration, w.MaxDuration, w.MinRTTThreshold, c.Queue.MaxAge} {
		if d < 0 {
			return C.valve_limiter_config{}, ErrInvalidArgument
		}
	}
	cfg := c.base
	if !c.hasBase {
		cfg = C.valve_limiter_config_default()
	}
	cfg.queue.max_waiters = C.uint32_t(c.Queue.MaxWaiters)
	cfg.queue.ordering = C.uint32_t(c.Queue.Ordering)
	cfg.queue.max_age_ns = C.uint64_t(c.Queue.MaxAge)
	cfg.queue.reject_from = C.double(c.Queue.RejectFrom)
	cfg.queue.reject_all_at = C.double(c.Queue.RejectAllAt)
	cfg.queue.seed = C.uint64_t(c.Queue.Seed)
	cfg.algorithm = C.uint32_t(c.Algorithm)
	cfg.fixed.limit = C.uint32_t(c.FixedLimit)
	cfg.aimd.initial_limit = C.uint32_t(a.InitialLimit)
	cfg.aimd.min_limit = C.uint32_t(a.MinLimit)
	cfg.aimd.max_limit = C.uint32_t(a.MaxLimit)
	cfg.aimd.increase_step = C.uint32_t(a.IncreaseStep)
	cfg.aimd.backoff_ratio = C.double(a.BackoffRatio)
	cfg.aimd.utilisation_threshold = C.double(a.UtilisationThreshold)
	cfg.aimd.timeout_ns = C.uint64_t(a.Timeout)
	cfg.aimd.latency_tolerance = C.double(a.LatencyTolerance)
	cfg.aimd.window.min_duration_ns = C.uint64_t(w.MinDuration)
	cfg.aimd.window.max_duration_ns = C.uint64_t(w.MaxDuration)
	cfg.aimd.window.min_samples = C.uint32_t(w.MinSamples)
	cfg.aimd.window.min_rtt_threshold_ns = C.uint64_t(w.MinRTTThreshold)
	return cfg, nil
}

// Limiter is a concurrency limiter (valve_limiter). Create it with New and Close it when done;
// a Limiter that becomes unreachable is closed by the garbage collector.
type Limiter struct {
	ptr *C.valve_limiter
}

// raw is the handle as the hot path's shims take it.
func (l *Limiter) raw() C.uintptr_t { return C.uintptr_t(uintptr(unsafe.Pointer(l.ptr))) }

// New creates a Limiter; a config the library refuses gives ErrInvalidArgument.
func New(config Config) (*Limiter, error) {
	cfg, err := config.toC()
	if err != nil {
		return nil, err
	}
	l := &Limiter{}
	if err := statusError(C.valve_limiter_new(&cfg, &l.ptr)); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(l, (*Limiter).Close)
	return l, nil
}

// Close frees the limiter. Later calls answer ErrClosed; closing twice is a no-op. It must not
// run concurrently with any other method of this Limiter or its Permits.
func (l *Limiter) Close() error {
	if l.ptr != nil {
		C.valve_limiter_free(l.ptr)
		l.ptr = nil
		runtime.SetFinalizer(l, nil)
	}
	return nil
}

// Permit is the right to run one unit of work. Report how it ended exactly once with Success,
// Dropped or Ignore; later reports answer ErrStalePermit. Keep the Permit where TryAcquire put
// it (or pass a pointer): a copy is a second handle on the same slot.
type Permit struct {
	limiter *Limiter
	permit  C.valve_permit
}

// TryAcquire admits one call if in-flight is below the limit, or answers ErrRejected at once.
func (l *Limiter) TryAcquire() (Permit, error) {
	p := Permit{limiter: l}
	if l.ptr == nil {
		return p, ErrClosed
	}
	status := C.valve_go_try_acquire(l.raw(), &p.permit)
	runtime.KeepAlive(l)
	return p, statusError(status)
}

// Acquire waits for a slot in the limiter's queue (Config.Queue), blocking the goroutine (and
// its OS thread, inside the C call), until a slot is free, the queue refuses (ErrRejected) or
// ctx ends (ctx.Err()). ctx's deadline is the C wait's own deadline, and a cancel wakes the
// wait at once (through a valve_cancel_token); the waiter keeps its place in the queue until
// then. Safe for concurrent use.
func (l *Limiter) Acquire(ctx context.Context) (Permit, error) {
	p := Permit{limiter: l}
	if l.ptr == nil {
		return p, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return p, err
	}
	until := C.uint64_t(^uint64(0))
	if deadline, ok := ctx.Deadline(); ok {
		until = C.valve_limiter_now(l.ptr) + C.uint64_t(max(time.Until(deadline), 0))
	}
	var status C.valve_status
	if ctx.Done() == nil {
		status = C.valve_limiter_acquire_until(l.ptr, until, &p.permit)
	} else {
		status = l.acquireCancellable(ctx, until, &p.permit)
	}
	runtime.KeepAlive(l)
	switch status {
	case C.VALVE_CANCELLED:
		return p, ctx.Err()
	case C.VALVE_TIMEOUT:
		// Only ctx's deadline sets one; the C clock may pass it just before ctx's timer fires.
		return p, context.DeadlineExceeded
	}
	return p, statusError(status)
}

// acquireCancellable waits on a token that ctx's end cancels.
func (l *Limiter) acquireCancellable(ctx context.Context, until C.uint64_t, permit *C.valve_permit) C.valve_status {
	t, status := getCancelToken()
	if status != C.VALVE_OK {
		return status
	}
	stop := context.AfterFunc(ctx, t.fire)
	status = C.valve_limiter_acquire_cancellable(l.ptr, t.c, until, permit)
	if stop() {
		// Never cancelled: the token can serve another wait.
		cancelTokens.Put(t)
	} else {
		// The cancel has started and may still be using the token; a cancelled token stays so.
		<-t.fired
		t.free()
	}
	return status
}

// cancelToken is a valve_cancel_token with what cancelling it from context.AfterFunc needs,
// made once: most waits end uncancelled and hand it to the next wait through cancelTokens.
type cancelToken struct {
	c     *C.valve_cancel_token
	fired chan struct{}
	fire  func()
}

// cancelTokens holds uncancelled tokens; one the pool drops is freed by its finalizer.
var cancelTokens sync.Pool

func getCancelToken() (*cancelToken, C.valve_status) {
	if t, ok := cancelTokens.Get().(*cancelToken); ok {
		return t, C.VALVE_OK
	}
	t := &cancelToken{fired: make(chan struct{})}
	if status := C.valve_cancel_token_new(&t.c); status != C.VALVE_OK {
		return nil, status
	}
	// Not a closure over t: a cycle through t would keep its finalizer from ever running.
	c, fired := t.c, t.fired
	t.fire = func() {
		C.valve_cancel_token_cancel(c)
		close(fired)
	}
	runtime.SetFinalizer(t, (*cancelToken).free)
	return t, C.VALVE_OK
}

func (t *cancelToken) free() {
	C.valve_cancel_token_free(t.c)
	t.c = nil
	runtime.SetFinalizer(t, nil)
}

// AcquireTimeout waits up to timeout for a slot; ErrTimeout when it passes first, ErrRejected
// when the queue refuses. Safe for concurrent use.
func (l *Limiter) AcquireTimeout(timeout time.Duration) (Permit, error) {
	p := Permit{limiter: l}
	if l.ptr == nil {
		return p, ErrClosed
	}
	status := C.valve_limiter_acquire_timeout(l.ptr, C.uint64_t(max(timeout, 0)), &p.permit)
	runtime.KeepAlive(l)
	return p, statusError(status)
}

// Success reports that the work completed normally: its RTT is a sample.
func (p *Permit) Success() error { return p.release(C.VALVE_OUTCOME_SUCCESS) }

// Dropped reports an overload signal (timeout, 503): the limit backs off.
func (p *Permit) Dropped() error { return p.release(C.VALVE_OUTCOME_DROPPED) }

// Ignore releases the slot and teaches nothing (client cancel, bad request).
func (p *Permit) Ignore() error { return p.release(C.VALVE_OUTCOME_IGNORED) }

func (p *Permit) release(outcome C.uint32_t) error {
	if p.limiter == nil {
		return ErrStalePermit
	}
	if p.limiter.ptr == nil {
		return ErrClosed
	}
	status := C.valve_go_release(p.limiter.raw(), &p.permit, outcome)
	runtime.KeepAlive(p.limiter)
	return statusError(status)
}

// SetLimit sets the limit by hand, clamped to the algorithm's bounds, and returns the limit now
// in force. Lowering it never revokes running work.
func (l *Limiter) SetLimit(limit uint32) (uint32, error) {
	if l.ptr == nil {
		return 0, ErrClosed
	}
	var inForce C.uint32_t
	status := C.valve_limiter_set_limit(l.ptr, C.uint32_t(limit), &inForce)
	runtime.KeepAlive(l)
	return uint32(inForce), statusError(status)
}

// Snapshot holds a limiter's counters and gauges (valve_limiter_snapshot).
type Snapshot struct {
	Limit, InFlight                               uint32
	Admitted, Rejected, Success, Dropped, Ignored uint64
	TimedOut                                      uint64
	Queued                                        uint32
	SampleRTT, MinRTT                             time.Duration
}

// Snapshot reads the counters and gauges without locks.
func (l *Limiter) Snapshot() (Snapshot, error) {
	if l.ptr == nil {
		return Snapshot{}, ErrClosed
	}
	var s C.valve_limiter_snapshot
	status := C.valve_limiter_get_snapshot(l.ptr, &s)
	runtime.KeepAlive(l)
	return Snapshot{
		Limit:     uint32(s.limit),
		InFlight:  uint32(s.in_flight),
		Admitted:  uint64(s.admitted),
		Rejected:  uint64(s.rejected),
		Success:   uint64(s.success),
		Dropped:   uint64(s.dropped),
		Ignored:   uint64(s.ignored),
		TimedOut:  uint64(s.timed_out),
		Queued:    uint32(s.queued),
		SampleRTT: durationFromNs(s.sample_rtt_ns),
		MinRTT:    durationFromNs(s.min_rtt_ns),
	}, statusError(status)
}

// Version is the C library's version string.
func Version() string { return C.GoString(C.valve_version()) }
