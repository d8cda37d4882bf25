package valve

/*
#include <valve.h>
*/
import "C"

import (
	"runtime"
	"sync"
	"time"
)

// BudgetSnapshot holds a retry budget's balance and counters (valve_budget_snapshot); units
// are the budget's own (see valve.h).
type BudgetSnapshot struct {
	Balance                      int64
	Capacity, Allowed, Denied    uint64
	Outstanding, RetriesInFlight uint64
}

func budgetSnapshotFromC(s C.valve_budget_snapshot) BudgetSnapshot {
	return BudgetSnapshot{
		Balance:         int64(s.balance),
		Capacity:        uint64(s.capacity),
		Allowed:         uint64(s.allowed),
		Denied:          uint64(s.denied),
		Outstanding:     uint64(s.outstanding),
		RetriesInFlight: uint64(s.retries_in_flight),
	}
}

// CostClass says what a retry is for, which sets its cost under the AWS rules.
type CostClass uint32

// The cost classes.
const (
	CostTransient  CostClass = C.VALVE_COST_TRANSIENT
	CostTimeout    CostClass = C.VALVE_COST_TIMEOUT
	CostThrottling CostClass = C.VALVE_COST_THROTTLING
)

// QuotaRule says when a token quota lets a retry go.
type QuotaRule uint32

// The quota rules.
const (
	QuotaAboveThreshold   QuotaRule = C.VALVE_QUOTA_ABOVE_THRESHOLD
	QuotaCostAvailable    QuotaRule = C.VALVE_QUOTA_COST_AVAILABLE
	QuotaConsumeRemaining QuotaRule = C.VALVE_QUOTA_CONSUME_REMAINING
)

// TokenQuotaConfig configures a TokenQuota; see valve_token_quota_config in valve.h.
type TokenQuotaConfig struct {
	Capacity, Initial          uint32
	Rule                       QuotaRule
	Threshold                  uint32
	CostTransient, CostTimeout uint32
	CostThrottling             uint32
	SuccessCredit              uint32
	RefundOnSuccess            bool
}

func quotaConfigFromC(c C.valve_token_quota_config) TokenQuotaConfig {
	return TokenQuotaConfig{
		Capacity:        uint32(c.capacity),
		Initial:         uint32(c.initial),
		Rule:            QuotaRule(c.rule),
		Threshold:       uint32(c.threshold),
		CostTransient:   uint32(c.costs.transient),
		CostTimeout:     uint32(c.costs.timeout),
		CostThrottling:  uint32(c.costs.throttling),
		SuccessCredit:   uint32(c.success_credit),
		RefundOnSuccess: bool(c.refund_on_success),
	}
}

// AWSStandardLegacyQuota is the AWS standard retry quota with legacy costs.
func AWSStandardLegacyQuota() TokenQuotaConfig {
	return quotaConfigFromC(C.valve_token_quota_config_aws_standard_legacy())
}

// AWSStandard2026Quota is the AWS standard retry quota with the 2026 costs.
func AWSStandard2026Quota() TokenQuotaConfig {
	return quotaConfigFromC(C.valve_token_quota_config_aws_standard_2026())
}

// AWSCIOQuota is aws-c-io's retry quota.
func AWSCIOQuota() TokenQuotaConfig {
	return quotaConfigFromC(C.valve_token_quota_config_aws_c_io())
}

// GRPCQuota is gRPC A6 retry throttling (maxTokens in (0, 1000], tokenRatio > 0).
func GRPCQuota(maxTokens, tokenRatio float64) (TokenQuotaConfig, error) {
	var c C.valve_token_quota_config
	err := statusError(C.valve_token_quota_config_grpc_a6(C.double(maxTokens), C.double(tokenRatio), &c))
	return quotaConfigFromC(c), err
}

// TokenQuota is a token retry quota (gRPC A6, AWS standard). Safe for concurrent use except
// Close.
type TokenQuota struct{ ptr *C.valve_token_quota }

// Withdrawal is the tokens a granted retry took; hand it to OnSuccess if the retry succeeds.
type Withdrawal struct{ w C.valve_quota_withdrawal }

// NewTokenQuota creates a quota; a config the library refuses gives ErrInvalidArgument.
func NewTokenQuota(config TokenQuotaConfig) (*TokenQuota, error) {
	c := C.valve_token_quota_config{
		capacity:          C.uint32_t(config.Capacity),
		initial:           C.uint32_t(config.Initial),
		rule:              C.uint32_t(config.Rule),
		threshold:         C.uint32_t(config.Threshold),
		success_credit:    C.uint32_t(config.SuccessCredit),
		refund_on_success: C.bool(config.RefundOnSuccess),
	}
	c.costs.transient = C.uint32_t(config.CostTransient)
	c.costs.timeout = C.uint32_t(config.CostTimeout)
	c.costs.throttling = C.uint32_t(config.CostThrottling)
	q := &TokenQuota{}
	if err := statusError(C.valve_token_quota_new(&c, &q.ptr)); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(q, (*TokenQuota).Close)
	return q, nil
}

// Close frees the quota; later calls answer ErrClosed. Not concurrent with other methods.
func (q *TokenQuota) Close() error {
	if q.ptr != nil {
		C.valve_token_quota_free(q.ptr)
		q.ptr = nil
		runtime.SetFinalizer(q, nil)
	}
	return nil
}

// TryRetry asks whether a call that failed with class may be retried: nil with the tokens
// taken, or ErrBudgetExhausted (the client's own quota refused: do not retry).
func (q *TokenQuota) TryRetry(class CostClass) (Withdrawal, error) {
	var w Withdrawal
	if q.ptr == nil {
		return w, ErrClosed
	}
	status := C.valve_token_quota_try_retry(q.ptr, C.uint32_t(class), &w.w)
	runtime.KeepAlive(q)
	return w, statusError(status)
}

// MayHedge asks whether a hedged attempt may go now; takes nothing.
func (q *TokenQuota) MayHedge() error {
	if q.ptr == nil {
		return ErrClosed
	}
	status := C.valve_token_quota_may_hedge(q.ptr)
	runtime.KeepAlive(q)
	return statusError(status)
}

// OnSuccess reports a successful call; retry is the withdrawal of the retry that succeeded,
// or nil for a first attempt. The withdrawal is consumed: passing it again refunds nothing.
func (q *TokenQuota) OnSuccess(retry *Withdrawal) error {
	if q.ptr == nil {
		return ErrClosed
	}
	var w *C.valve_quota_withdrawal
	if retry != nil {
		w = &retry.w
	}
	status := C.valve_token_quota_on_success(q.ptr, w)
	runtime.KeepAlive(q)
	return statusError(status)
}

// Balance is the tokens available now (0 once closed).
func (q *TokenQuota) Balance() uint32 {
	if q.ptr == nil {
		return 0
	}
	b := C.valve_token_quota_balance(q.ptr)
	runtime.KeepAlive(q)
	return uint32(b)
}

// Snapshot reads the balance and counters.
func (q *TokenQuota) Snapshot() (BudgetSnapshot, error) {
	if q.ptr == nil {
		return BudgetSnapshot{}, ErrClosed
	}
	var s C.valve_budget_snapshot
	status := C.valve_token_quota_get_snapshot(q.ptr, &s)
	runtime.KeepAlive(q)
	return budgetSnapshotFromC(s), statusError(status)
}

// WindowedConfig configures a WindowedBudget (Finagle RetryBudget).
type WindowedConfig struct {
	TTL              time.Duration
	MinRetriesPerSec uint32
	PercentCanRetry  float64
}

// FinagleWindowedConfig is Finagle's default: ttl 10 s, 10 retries per second, 20 %.
func FinagleWindowedConfig() WindowedConfig {
	c := C.valve_windowed_config_finagle()
	return WindowedConfig{durationFromNs(c.ttl_ns), uint32(c.min_retries_per_sec), float64(c.percent_can_retry)}
}

// WindowedBudget is Finagle's retry budget: requests deposit, retries withdraw, both expire
// after the ttl. Safe for concurrent use except Close.
type WindowedBudget struct{ ptr *C.valve_windowed_budget }

// NewWindowedBudget creates a windowed budget; ErrInvalidArgument for a refused config.
func NewWindowedBudget(config WindowedConfig) (*WindowedBudget, error) {
	if config.TTL < 0 {
		return nil, ErrInvalidArgument
	}
	c := C.valve_windowed_config{
		ttl_ns:              C.uint64_t(config.TTL),
		min_retries_per_sec: C.uint32_t(config.MinRetriesPerSec),
		percent_can_retry:   C.double(config.PercentCanRetry),
	}
	b := &WindowedBudget{}
	if err := statusError(C.valve_windowed_budget_new(&c, &b.ptr)); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(b, (*WindowedBudget).Close)
	return b, nil
}

// Close frees the budget; later calls answer ErrClosed. Not concurrent with other methods.
func (b *WindowedBudget) Close() error {
	if b.ptr != nil {
		C.valve_windowed_budget_free(b.ptr)
		b.ptr = nil
		runtime.SetFinalizer(b, nil)
	}
	return nil
}

// Deposit records one first attempt.
func (b *WindowedBudget) Deposit() error {
	if b.ptr == nil {
		return ErrClosed
	}
	status := C.valve_windowed_budget_deposit(b.ptr)
	runtime.KeepAlive(b)
	return statusError(status)
}

// TryWithdraw takes one retry, or answers ErrBudgetExhausted (do not retry).
func (b *WindowedBudget) TryWithdraw() error {
	if b.ptr == nil {
		return ErrClosed
	}
	status := C.valve_windowed_budget_try_withdraw(b.ptr)
	runtime.KeepAlive(b)
	return statusError(status)
}

// Balance is the retries the budget would allow now (0 once closed).
func (b *WindowedBudget) Balance() int64 {
	if b.ptr == nil {
		return 0
	}
	v := C.valve_windowed_budget_balance(b.ptr)
	runtime.KeepAlive(b)
	return int64(v)
}

// Snapshot reads the balance and counters.
func (b *WindowedBudget) Snapshot() (BudgetSnapshot, error) {
	if b.ptr == nil {
		return BudgetSnapshot{}, ErrClosed
	}
	var s C.valve_budget_snapshot
	status := C.valve_windowed_budget_get_snapshot(b.ptr, &s)
	runtime.KeepAlive(b)
	return budgetSnapshotFromC(s), statusError(status)
}

// ConcurrencyBudget is Envoy's retry budget: retries in flight limited to a share of the
// requests in flight. Safe for concurrent use except Close.
type ConcurrencyBudget struct{ ptr *C.valve_concurrency_budget }

// NewConcurrencyBudget allows percent (0 to 100) of the requests in flight to be retries, and
// at least minRetries. EnvoyConcurrencyBudget gives Envoy's defaults.
func NewConcurrencyBudget(percent float64, minRetries uint32) (*ConcurrencyBudget, error) {
	c := C.valve_concurrency_budget_config{budget_percent: C.double(percent), min_retry_concurrency: C.uint32_t(minRetries)}
	b := &ConcurrencyBudget{}
	if err := statusError(C.valve_concurrency_budget_new(&c, &b.ptr)); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(b, (*ConcurrencyBudget).Close)
	return b, nil
}

// EnvoyConcurrencyBudget is Envoy's defaults: 20 %, at least 3 retries.
func EnvoyConcurrencyBudget() (*ConcurrencyBudget, error) {
	c := C.valve_concurrency_budget_config_envoy()
	return NewConcurrencyBudget(float64(c.budget_percent), uint32(c.min_retry_concurrency))
}

// Close frees the budget; later calls answer ErrClosed. Not concurrent with other methods.
func (b *ConcurrencyBudget) Close() error {
	if b.ptr != nil {
		C.valve_concurrency_budget_free(b.ptr)
		b.ptr = nil
		runtime.SetFinalizer(b, nil)
	}
	return nil
}

func (b *ConcurrencyBudget) call(f func(*C.valve_concurrency_budget) C.valve_status) error {
	if b.ptr == nil {
		return ErrClosed
	}
	status := f(b.ptr)
	runtime.KeepAlive(b)
	return statusError(status)
}

// RequestStarted records a request (first attempt or retry) in flight.
func (b *ConcurrencyBudget) RequestStarted() error {
	return b.call(func(p *C.valve_concurrency_budget) C.valve_status {
		return C.valve_concurrency_budget_request_started(p)
	})
}

// RequestFinished records a request's end; ErrStalePermit if none was in flight.
func (b *ConcurrencyBudget) RequestFinished() error {
	return b.call(func(p *C.valve_concurrency_budget) C.valve_status {
		return C.valve_concurrency_budget_request_finished(p)
	})
}

// TryStartRetry takes a retry slot, or answers ErrBudgetExhausted (do not retry).
func (b *ConcurrencyBudget) TryStartRetry() error {
	return b.call(func(p *C.valve_concurrency_budget) C.valve_status {
		return C.valve_concurrency_budget_try_start_retry(p)
	})
}

// RetryFinished gives a retry slot back; ErrStalePermit if none was held.
func (b *ConcurrencyBudget) RetryFinished() error {
	return b.call(func(p *C.valve_concurrency_budget) C.valve_status {
		return C.valve_concurrency_budget_retry_finished(p)
	})
}

// Snapshot reads the free retry slots and counters.
func (b *ConcurrencyBudget) Snapshot() (BudgetSnapshot, error) {
	var s C.valve_budget_snapshot
	err := b.call(func(p *C.valve_concurrency_budget) C.valve_status {
		return C.valve_concurrency_budget_get_snapshot(p, &s)
	})
	return budgetSnapshotFromC(s), err
}

// Jitter says how a backoff delay is randomised.
type Jitter uint32

// The jitters.
const (
	JitterNone         Jitter = C.VALVE_JITTER_NONE
	JitterFull         Jitter = C.VALVE_JITTER_FULL
	JitterEqual        Jitter = C.VALVE_JITTER_EQUAL
	JitterDecorrelated Jitter = C.VALVE_JITTER_DECORRELATED
	JitterGRPC         Jitter = C.VALVE_JITTER_GRPC
)

// BackoffConfig configures a Backoff; build it with a preset (ExponentialBackoff,
// GRPCBackoff, AWSLegacyBackoff, AWS2026Backoff, AWSCIOBackoff).
type BackoffConfig struct{ c C.valve_backoff_config }

// ExponentialBackoff doubles from initial up to max with jitter.
func ExponentialBackoff(initial, max time.Duration, jitter Jitter) BackoffConfig {
	return BackoffConfig{C.valve_backoff_config_exponential(nsOrZero(initial), nsOrZero(max), C.uint32_t(jitter))}
}

// GRPCBackoff is gRPC A6's backoff with ±20 % jitter; a retry-after is taken exactly.
func GRPCBackoff(initial, max time.Duration, multiplier float64) BackoffConfig {
	return BackoffConfig{C.valve_backoff_config_grpc(nsOrZero(initial), nsOrZero(max), C.double(multiplier))}
}

// AWSLegacyBackoff is botocore's full jitter from 1 s up to 20 s.
func AWSLegacyBackoff() BackoffConfig { return BackoffConfig{C.valve_backoff_config_aws_legacy()} }

// AWS2026Backoff is the AWS 2026 backoff (throttling errors start at 1 s).
func AWS2026Backoff(throttling bool) BackoffConfig {
	return BackoffConfig{C.valve_backoff_config_aws_2026(C.bool(throttling))}
}

// AWSCIOBackoff is aws-c-io's backoff.
func AWSCIOBackoff() BackoffConfig { return BackoffConfig{C.valve_backoff_config_aws_c_io()} }

// Initial is the first retry's delay before jitter.
func (c BackoffConfig) Initial() time.Duration { return durationFromNs(c.c.initial_ns) }

func nsOrZero(d time.Duration) C.uint64_t { return C.uint64_t(max(d, 0)) }

// Backoff is one call's sequence of retry delays. Safe for concurrent use (a mutex orders the
// calls), though a sequence normally belongs to one call.
type Backoff struct {
	mu  sync.Mutex
	ptr *C.valve_backoff
}

// NewBackoff creates a sequence; equal seeds give equal sequences.
func NewBackoff(config BackoffConfig, seed uint64) (*Backoff, error) {
	b := &Backoff{}
	if err := statusError(C.valve_backoff_new(&config.c, C.uint64_t(seed), &b.ptr)); err != nil {
		return nil, err
	}
	runtime.SetFinalizer(b, (*Backoff).Close)
	return b, nil
}

// Close frees the backoff; later calls answer ErrClosed.
func (b *Backoff) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ptr != nil {
		C.valve_backoff_free(b.ptr)
		b.ptr = nil
		runtime.SetFinalizer(b, nil)
	}
	return nil
}

// Next is the next retry's delay.
func (b *Backoff) Next() (time.Duration, error) { return b.next(^uint64(0)) }

// NextAfter is the next retry's delay given the server's retry-after.
func (b *Backoff) NextAfter(retryAfter time.Duration) (time.Duration, error) {
	return b.next(uint64(max(retryAfter, 0)))
}

func (b *Backoff) next(retryAfter uint64) (time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ptr == nil {
		return 0, ErrClosed
	}
	var ns C.uint64_t
	err := statusError(C.valve_backoff_next_delay_ns(b.ptr, C.uint64_t(retryAfter), &ns))
	return durationFromNs(ns), err
}

// Reset starts the sequence again (after a success).
func (b *Backoff) Reset() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ptr == nil {
		return ErrClosed
	}
	return statusError(C.valve_backoff_reset(b.ptr))
}
