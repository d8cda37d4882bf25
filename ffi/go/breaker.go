package valve

/*
#include <valve.h>
*/
import "C"

import (
	"errors"
	"runtime"
	"time"
)

// ErrBreakerOpen: the circuit breaker refused the call (open, forced open, or out of
// half-open probes). Fail fast.
var ErrBreakerOpen = errors.New("valve: circuit breaker open")

// BreakerState is a circuit breaker's state.
type BreakerState uint32

// The breaker states.
const (
	BreakerClosed      BreakerState = C.VALVE_BREAKER_CLOSED
	BreakerOpen        BreakerState = C.VALVE_BREAKER_OPEN
	BreakerHalfOpen    BreakerState = C.VALVE_BREAKER_HALF_OPEN
	BreakerDisabled    BreakerState = C.VALVE_BREAKER_DISABLED
	BreakerForcedOpen  BreakerState = C.VALVE_BREAKER_FORCED_OPEN
	BreakerMetricsOnly BreakerState = C.VALVE_BREAKER_METRICS_ONLY
)

// BreakerConfig configures a Breaker. Start from a preset; the exported fields are the usual
// knobs, and the rest of the preset (windows, half-open rules) is kept as it is.
type BreakerConfig struct {
	// Trip after this many failures in a row; 0: off.
	ConsecutiveFailures uint32
	// Trip when failures / calls reaches this ratio in (0, 1]; 0: off.
	FailureRate float64
	// Calls the window must hold before a rate can trip.
	MinimumCalls uint32
	// The first open duration, and its cap.
	OpenDuration, MaxOpenDuration time.Duration
	// Probes per half-open episode.
	HalfOpenProbes uint32
	c              C.valve_breaker_config
}

func breakerConfigFromC(c C.valve_breaker_config) BreakerConfig {
	return BreakerConfig{
		ConsecutiveFailures: uint32(c.consecutive_failures),
		FailureRate:         float64(c.failure_rate),
		MinimumCalls:        uint32(c.minimum_calls),
		OpenDuration:        durationFromNs(c.open_base_ns),
		MaxOpenDuration:     durationFromNs(c.open_max_ns),
		HalfOpenProbes:      uint32(c.half_open_probes),
		c:                   c,
	}
}

// DefaultBreakerConfig is valve's defaults (valve_breaker_config_default).
func DefaultBreakerConfig() BreakerConfig {
	return breakerConfigFromC(C.valve_breaker_config_default())
}

// Resilience4jBreakerConfig is resilience4j's defaults.
func Resilience4jBreakerConfig() BreakerConfig {
	return breakerConfigFromC(C.valve_breaker_config_resilience4j())
}

// GobreakerBreakerConfig is gobreaker's defaults.
func GobreakerBreakerConfig() BreakerConfig {
	return breakerConfigFromC(C.valve_breaker_config_gobreaker())
}

// PollyBreakerConfig is Polly's defaults.
func PollyBreakerConfig() BreakerConfig { return breakerConfigFromC(C.valve_breaker_config_polly()) }

// HystrixBreakerConfig is Hystrix's defaults.
func HystrixBreakerConfig() BreakerConfig {
	return breakerConfigFromC(C.valve_breaker_config_hystrix())
}

// Breaker is a circuit breaker (valve_breaker). Safe for concurrent use except Close.
type Breaker struct{ ptr *C.valve_breaker }

// NewBreaker creates a breaker; a config the library refuses gives ErrInvalidArgument.
func NewBreaker(config BreakerConfig) (*Breaker, error) {
	if config.OpenDuration < 0 || config.MaxOpenDuration < 0 {
		return nil, ErrInvalidArgument
	}
	c := config.c
	if c == (C.valve_breaker_config{}) {
		c = C.valve_breaker_config_default()
	}
	c.consecutive_failures = C.uint32_t(config.ConsecutiveFailures)
	c.failure_rate = C.double(config.FailureRate)
	c.minimum_calls = C.uint32_t(config.MinimumCalls)
	c.open_base_ns = C.uint64_t(config.OpenDuration)
	c.open_max_ns = C.uint64_t(config.MaxOpenDuration)
	c.half_open_probes = C.uint32_t(config.HalfOpenProbes)
	b := &Breaker{}
	if err := statusError(C.valve_breaker_new(&c, &b.ptr)); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(b, (*Breaker).Close)
	return b, nil
}

// Close frees the breaker; later calls answer ErrClosed. Not concurrent with other methods.
func (b *Breaker) Close() error {
	if b.ptr != nil {
		C.valve_breaker_free(b.ptr)
		b.ptr = nil
		runtime.SetFinalizer(b, nil)
	}
	return nil
}

// BreakerPermit is the right to make one call. Report it once with Success, Failure or
// Ignore; later reports answer ErrStalePermit.
type BreakerPermit struct {
	breaker *Breaker
	permit  C.valve_breaker_permit
}

// Allow asks whether a call may go now: a permit, or ErrBreakerOpen.
func (b *Breaker) Allow() (*BreakerPermit, error) {
	if b.ptr == nil {
		return nil, ErrClosed
	}
	p := &BreakerPermit{breaker: b}
	status := C.valve_breaker_try_acquire(b.ptr, &p.permit)
	runtime.KeepAlive(b)
	if status == C.VALVE_REJECTED {
		return nil, ErrBreakerOpen
	}
	if err := statusError(status); err != nil {
		return nil, err
	}
	return p, nil
}

// Success reports that the dependency answered well.
func (p *BreakerPermit) Success() error { return p.record(C.VALVE_BREAKER_SUCCESS) }

// Failure reports that the dependency failed.
func (p *BreakerPermit) Failure() error { return p.record(C.VALVE_BREAKER_FAILURE) }

// Ignore reports no signal (cancelled, bad request).
func (p *BreakerPermit) Ignore() error { return p.record(C.VALVE_BREAKER_IGNORED) }

func (p *BreakerPermit) record(outcome C.uint32_t) error {
	if p.breaker.ptr == nil {
		return ErrClosed
	}
	status := C.valve_breaker_record(p.breaker.ptr, &p.permit, outcome)
	runtime.KeepAlive(p.breaker)
	return statusError(status)
}

// State is the current state, without making a due transition.
func (b *Breaker) State() (BreakerState, error) {
	if b.ptr == nil {
		return 0, ErrClosed
	}
	var s C.uint32_t
	status := C.valve_breaker_get_state(b.ptr, &s)
	runtime.KeepAlive(b)
	return BreakerState(s), statusError(status)
}

// TransitionTo moves the breaker to state by hand; reports whether it moved.
func (b *Breaker) TransitionTo(state BreakerState) (bool, error) {
	if b.ptr == nil {
		return false, ErrClosed
	}
	var moved C.bool
	status := C.valve_breaker_transition_to(b.ptr, C.uint32_t(state), &moved)
	runtime.KeepAlive(b)
	return bool(moved), statusError(status)
}

// Reset closes the breaker with empty windows.
func (b *Breaker) Reset() error {
	if b.ptr == nil {
		return ErrClosed
	}
	status := C.valve_breaker_reset(b.ptr)
	runtime.KeepAlive(b)
	return statusError(status)
}

// BreakerSnapshot holds a breaker's state and main counters.
type BreakerSnapshot struct {
	State                                BreakerState
	Successes, Failures, Slow, Ignored   uint64
	Late, RejectedOpen, RejectedHalfOpen uint64
	ToOpen, ToClosed, ToHalfOpen         uint64
}

// Snapshot reads the state and counters.
func (b *Breaker) Snapshot() (BreakerSnapshot, error) {
	if b.ptr == nil {
		return BreakerSnapshot{}, ErrClosed
	}
	var s C.valve_breaker_snapshot
	status := C.valve_breaker_get_snapshot(b.ptr, &s)
	runtime.KeepAlive(b)
	return BreakerSnapshot{
		State:            BreakerState(s.state),
		Successes:        uint64(s.successes),
		Failures:         uint64(s.failures),
		Slow:             uint64(s.slow),
		Ignored:          uint64(s.ignored),
		Late:             uint64(s.late),
		RejectedOpen:     uint64(s.rejected_open),
		RejectedHalfOpen: uint64(s.rejected_half_open),
		ToOpen:           uint64(s.to_open),
		ToClosed:         uint64(s.to_closed),
		ToHalfOpen:       uint64(s.to_half_open),
	}, statusError(status)
}
