"""Retry budgets, backoff, the circuit breaker and the ``retry`` decorator, over the C ABI.

Budgets and breakers are lock-free in C and may be shared by any number of threads; a
``Backoff`` is one call's sequence and takes a lock so sharing one cannot corrupt it.
"""

import functools
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, Iterator, Optional, Tuple, Type, Union

from . import Closed, InvalidArgument, StalePermit, ValveError, _ns, _raise
from ._native import ffi, lib


class BreakerOpen(ValveError):
    """The circuit breaker refused the call (open, forced open, or out of half-open probes)."""


class CostClass(IntEnum):
    """What a retry is for (``valve_cost_class``), which sets its cost under the AWS rules."""

    TRANSIENT = lib.VALVE_COST_TRANSIENT
    TIMEOUT = lib.VALVE_COST_TIMEOUT
    THROTTLING = lib.VALVE_COST_THROTTLING


@dataclass(frozen=True)
class BudgetSnapshot:
    """A retry budget's balance and counters (``valve_budget_snapshot``), in its own units."""

    balance: int
    capacity: int
    allowed: int
    denied: int
    outstanding: int
    retries_in_flight: int


def _check(status: int) -> None:
    if status != lib.VALVE_OK:
        _raise(status)


class _Handle:
    """Owns one C handle, freed by ``close()`` or when collected."""

    def __init__(self, new, free, *args) -> None:
        out = ffi.new(ffi.typeof(new).args[-1])
        _check(new(*args, out))
        self._handle: Optional[object] = ffi.gc(out[0], free)

    def _live(self):
        handle = self._handle
        if handle is None:
            raise Closed()
        return handle

    def close(self) -> None:
        """Frees the C handle now; later calls raise ``Closed``."""
        handle, self._handle = self._handle, None
        if handle is not None:
            ffi.release(handle)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def _snapshot(self, get) -> BudgetSnapshot:
        s = ffi.new("valve_budget_snapshot *")
        _check(get(self._live(), s))
        return BudgetSnapshot(
            s.balance, s.capacity, s.allowed, s.denied, s.outstanding, s.retries_in_flight
        )


class Withdrawal:
    """The tokens a granted retry took; give it to ``TokenQuota.on_success``."""

    def __init__(self, c) -> None:
        self._c = c

    @property
    def tokens(self) -> int:
        return self._c.tokens


class TokenQuota(_Handle):
    """A token retry quota (gRPC A6, AWS standard); build it with a class method."""

    def __init__(self, config) -> None:
        super().__init__(lib.valve_token_quota_new, lib.valve_token_quota_free, config)
        # gRPC A6 charges every qualified failure, the last attempt's too; the AWS rules charge
        # only a retry that is about to be sent.
        self._charges_every_failure = config.rule == lib.VALVE_QUOTA_ABOVE_THRESHOLD

    @classmethod
    def aws_standard_legacy(cls) -> "TokenQuota":
        c = ffi.new("valve_token_quota_config *", lib.valve_token_quota_config_aws_standard_legacy())
        return cls(c)

    @classmethod
    def aws_standard_2026(cls) -> "TokenQuota":
        c = ffi.new("valve_token_quota_config *", lib.valve_token_quota_config_aws_standard_2026())
        return cls(c)

    @classmethod
    def aws_c_io(cls) -> "TokenQuota":
        return cls(ffi.new("valve_token_quota_config *", lib.valve_token_quota_config_aws_c_io()))

    @classmethod
    def grpc(cls, max_tokens: float, token_ratio: float) -> "TokenQuota":
        """gRPC A6 throttling: ``max_tokens`` in (0, 1000], ``token_ratio`` > 0."""
        c = ffi.new("valve_token_quota_config *")
        _check(lib.valve_token_quota_config_grpc_a6(max_tokens, token_ratio, c))
        return cls(c)

    def try_retry(self, cost_class: CostClass = CostClass.TRANSIENT) -> Withdrawal:
        """May a call that failed with ``cost_class`` be retried? Raises ``BudgetExhausted``."""
        w = ffi.new("valve_quota_withdrawal *")
        _check(lib.valve_token_quota_try_retry(self._live(), int(cost_class), w))
        return Withdrawal(w)

    def may_hedge(self) -> None:
        """Raises ``BudgetExhausted`` unless a hedged attempt may go now."""
        _check(lib.valve_token_quota_may_hedge(self._live()))

    def on_success(self, withdrawal: Optional[Withdrawal] = None) -> None:
        """A call succeeded; pass the withdrawal of the retry that succeeded, if any."""
        w = withdrawal._c if withdrawal is not None else ffi.NULL
        _check(lib.valve_token_quota_on_success(self._live(), w))

    @property
    def balance(self) -> int:
        return lib.valve_token_quota_balance(self._live())

    def snapshot(self) -> BudgetSnapshot:
        return self._snapshot(lib.valve_token_quota_get_snapshot)


class WindowedBudget(_Handle):
    """Finagle's retry budget (defaults: ttl 10 s, 10 retries/s, 20 %)."""

    def __init__(
        self, ttl: float = 10.0, min_retries_per_sec: int = 10, percent_can_retry: float = 0.2
    ) -> None:
        c = ffi.new(
            "valve_windowed_config *",
            {
                "ttl_ns": _ns(ttl, "ttl"),
                "min_retries_per_sec": min_retries_per_sec,
                "percent_can_retry": percent_can_retry,
            },
        )
        super().__init__(lib.valve_windowed_budget_new, lib.valve_windowed_budget_free, c)

    def deposit(self) -> None:
        """Records one first attempt."""
        _check(lib.valve_windowed_budget_deposit(self._live()))

    def try_withdraw(self) -> None:
        """Takes one retry, or raises ``BudgetExhausted``."""
        _check(lib.valve_windowed_budget_try_withdraw(self._live()))

    @property
    def balance(self) -> int:
        return lib.valve_windowed_budget_balance(self._live())

    def snapshot(self) -> BudgetSnapshot:
        return self._snapshot(lib.valve_windowed_budget_get_snapshot)


class ConcurrencyBudget(_Handle):
    """Envoy's retry budget (defaults: 20 % of requests in flight, at least 3 retries)."""

    def __init__(self, budget_percent: float = 20.0, min_retry_concurrency: int = 3) -> None:
        c = ffi.new(
            "valve_concurrency_budget_config *",
            {"budget_percent": budget_percent, "min_retry_concurrency": min_retry_concurrency},
        )
        super().__init__(lib.valve_concurrency_budget_new, lib.valve_concurrency_budget_free, c)

    def request_started(self) -> None:
        _check(lib.valve_concurrency_budget_request_started(self._live()))

    def request_finished(self) -> None:
        """Raises ``StalePermit`` if no request was in flight."""
        _check(lib.valve_concurrency_budget_request_finished(self._live()))

    def try_start_retry(self) -> None:
        """Takes a retry slot, or raises ``BudgetExhausted``."""
        _check(lib.valve_concurrency_budget_try_start_retry(self._live()))

    def retry_finished(self) -> None:
        """Raises ``StalePermit`` if no retry was in flight."""
        _check(lib.valve_concurrency_budget_retry_finished(self._live()))

    def snapshot(self) -> BudgetSnapshot:
        return self._snapshot(lib.valve_concurrency_budget_get_snapshot)


class BackoffConfig:
    """A backoff config from a preset; ``Backoff(config)`` starts a sequence from it."""

    NONE, FULL, EQUAL, DECORRELATED, GRPC = range(5)

    def __init__(self, c) -> None:
        self._c = c

    @classmethod
    def exponential(cls, initial: float, max: float, jitter: int = FULL) -> "BackoffConfig":
        c = lib.valve_backoff_config_exponential(_ns(initial, "initial"), _ns(max, "max"), jitter)
        return cls(c)

    @classmethod
    def grpc(cls, initial: float, max: float, multiplier: float = 1.6) -> "BackoffConfig":
        c = lib.valve_backoff_config_grpc(_ns(initial, "initial"), _ns(max, "max"), multiplier)
        return cls(c)

    @classmethod
    def aws_legacy(cls) -> "BackoffConfig":
        return cls(lib.valve_backoff_config_aws_legacy())

    @classmethod
    def aws_2026(cls, throttling: bool = False) -> "BackoffConfig":
        return cls(lib.valve_backoff_config_aws_2026(throttling))

    @classmethod
    def aws_c_io(cls) -> "BackoffConfig":
        return cls(lib.valve_backoff_config_aws_c_io())


class Backoff(_Handle):
    """One call's retry delays, in seconds; equal seeds give equal sequences."""

    def __init__(self, config: BackoffConfig, seed: Optional[int] = None) -> None:
        if seed is None:
            seed = random.getrandbits(64)
        c = ffi.new("valve_backoff_config *", config._c)
        self._lock = threading.Lock()
        super().__init__(lib.valve_backoff_new, lib.valve_backoff_free, c, seed)

    def next_delay(self, retry_after: Optional[float] = None) -> float:
        """The next retry's delay; ``retry_after`` is the server's, if it sent one."""
        server = 2**64 - 1 if retry_after is None else _ns(retry_after, "retry_after")
        out = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.valve_backoff_next_delay_ns(self._live(), server, out))
        return out[0] / 1_000_000_000

    def reset(self) -> None:
        with self._lock:
            _check(lib.valve_backoff_reset(self._live()))


Budget = Union[TokenQuota, WindowedBudget, ConcurrencyBudget]


def retry(
    budget: Optional[Budget] = None,
    backoff: Optional[BackoffConfig] = None,
    retry_on: Tuple[Type[BaseException], ...] = (Exception,),
    max_attempts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
):
    """Retries the decorated function on the exceptions in ``retry_on``, sleeping the backoff
    between attempts, at most ``max_attempts`` attempts, and only while ``budget`` allows.

    When the budget denies a retry (or the attempts run out) the last exception is raised as
    it is. A ``TokenQuota`` is charged per retry (a ``TimeoutError`` as ``CostClass.TIMEOUT``)
    and refunded on success; a gRPC quota (``TokenQuota.grpc``) is charged for every failure in
    ``retry_on``, the last attempt's included, as gRPC A6 counts every failed RPC; a ``WindowedBudget`` gets a deposit per call; a
    ``ConcurrencyBudget`` counts every attempt in flight and holds a retry slot per retry.
    """
    if max_attempts < 1:
        raise InvalidArgument(lib.VALVE_INVALID_ARGUMENT, "max_attempts must be >= 1")

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            delays = Backoff(backoff) if backoff is not None else None
            withdrawal = None
            if isinstance(budget, WindowedBudget):
                budget.deposit()
            try:
                attempt = 1
                while True:
                    try:
                        result = _attempt(budget, attempt > 1, fn, args, kwargs)
                    except retry_on as error:
                        if attempt == max_attempts:
                            _charge_last_failure(budget, error)
                            raise
                        granted, withdrawal = _ask(budget, error)
                        if not granted:
                            raise
                        attempt += 1
                        if delays is not None:
                            sleep(delays.next_delay())
                        continue
                    if isinstance(budget, TokenQuota):
                        budget.on_success(withdrawal)
                    return result
            finally:
                if delays is not None:
                    delays.close()

        return wrapper

    return decorate


def _attempt(budget: Optional[Budget], is_retry: bool, fn, args, kwargs):
    """One attempt; a ``ConcurrencyBudget`` counts it in flight, and frees its retry slot."""
    if not isinstance(budget, ConcurrencyBudget):
        return fn(*args, **kwargs)
    budget.request_started()
    try:
        return fn(*args, **kwargs)
    finally:
        budget.request_finished()
        if is_retry:
            budget.retry_finished()


def _charge_last_failure(budget: Optional[Budget], error: BaseException) -> None:
    """Charges a gRPC quota for a failure after which no retry is sent (the grant, if any, goes
    unused: the debit is the failure's charge)."""
    if isinstance(budget, TokenQuota) and budget._charges_every_failure:
        _ask(budget, error)


def _ask(budget: Optional[Budget], error: BaseException) -> Tuple[bool, Optional[Withdrawal]]:
    """Whether ``budget`` grants a retry after ``error``, and the token quota's withdrawal."""
    from . import BudgetExhausted

    try:
        if isinstance(budget, TokenQuota):
            cost = CostClass.TIMEOUT if isinstance(error, TimeoutError) else CostClass.TRANSIENT
            return True, budget.try_retry(cost)
        if isinstance(budget, WindowedBudget):
            budget.try_withdraw()
        elif isinstance(budget, ConcurrencyBudget):
            budget.try_start_retry()
    except BudgetExhausted:
        return False, None
    return True, None


class BreakerState(IntEnum):
    """A circuit breaker's states (``valve_breaker_state``)."""

    CLOSED = lib.VALVE_BREAKER_CLOSED
    OPEN = lib.VALVE_BREAKER_OPEN
    HALF_OPEN = lib.VALVE_BREAKER_HALF_OPEN
    DISABLED = lib.VALVE_BREAKER_DISABLED
    FORCED_OPEN = lib.VALVE_BREAKER_FORCED_OPEN
    METRICS_ONLY = lib.VALVE_BREAKER_METRICS_ONLY


@dataclass(frozen=True)
class BreakerSnapshot:
    """A breaker's state and main counters."""

    state: BreakerState
    successes: int
    failures: int
    ignored: int
    late: int
    rejected_open: int
    to_open: int


class BreakerPermit:
    """The right to make one call; report it once with ``success``, ``failure`` or ``ignore``."""

    def __init__(self, breaker: "Breaker", permit) -> None:
        self._breaker = breaker
        self._permit = permit

    def success(self) -> None:
        self._record(lib.VALVE_BREAKER_SUCCESS)

    def failure(self) -> None:
        self._record(lib.VALVE_BREAKER_FAILURE)

    def ignore(self) -> None:
        self._record(lib.VALVE_BREAKER_IGNORED)

    def _record(self, outcome: int) -> None:
        _check(lib.valve_breaker_record(self._breaker._live(), self._permit, outcome))


class Breaker(_Handle):
    """A circuit breaker. ``preset`` is ``default``, ``resilience4j``, ``gobreaker``, ``polly``
    or ``hystrix``; keyword arguments override the usual knobs (durations in seconds)."""

    _PRESETS = ("default", "resilience4j", "gobreaker", "polly", "hystrix")

    def __init__(
        self,
        preset: str = "default",
        *,
        consecutive_failures: Optional[int] = None,
        failure_rate: Optional[float] = None,
        minimum_calls: Optional[int] = None,
        open_duration: Optional[float] = None,
    ) -> None:
        if preset not in self._PRESETS:
            raise InvalidArgument(lib.VALVE_INVALID_ARGUMENT, f"unknown preset {preset!r}")
        c = ffi.new("valve_breaker_config *", getattr(lib, f"valve_breaker_config_{preset}")())
        if consecutive_failures is not None:
            c.consecutive_failures = consecutive_failures
        if failure_rate is not None:
            c.failure_rate = failure_rate
        if minimum_calls is not None:
            c.minimum_calls = minimum_calls
        if open_duration is not None:
            c.open_base_ns = _ns(open_duration, "open_duration")
            c.open_max_ns = max(c.open_max_ns, c.open_base_ns)
        super().__init__(lib.valve_breaker_new, lib.valve_breaker_free, c)

    def allow(self) -> BreakerPermit:
        """A permit for one call, or raises ``BreakerOpen``."""
        permit = ffi.new("valve_breaker_permit *")
        status = lib.valve_breaker_try_acquire(self._live(), permit)
        if status == lib.VALVE_REJECTED:
            raise BreakerOpen(status, BreakerState(permit.admitted_in).name)
        _check(status)
        return BreakerPermit(self, permit)

    @contextmanager
    def call(
        self, failure_on: Tuple[Type[BaseException], ...] = (Exception,)
    ) -> Iterator[BreakerPermit]:
        """``with breaker.call(): ...`` raises ``BreakerOpen`` when refused; leaving normally
        records a success, an exception in ``failure_on`` a failure, any other one nothing."""
        permit = self.allow()
        try:
            yield permit
        except failure_on:
            permit.failure()
            raise
        except BaseException:
            permit.ignore()
            raise
        else:
            try:
                permit.success()
            except StalePermit:
                pass  # the block reported it itself

    @property
    def state(self) -> BreakerState:
        out = ffi.new("uint32_t *")
        _check(lib.valve_breaker_get_state(self._live(), out))
        return BreakerState(out[0])

    def transition_to(self, state: BreakerState) -> bool:
        """Moves the breaker by hand; returns whether it moved."""
        moved = ffi.new("bool *")
        _check(lib.valve_breaker_transition_to(self._live(), int(state), moved))
        return bool(moved[0])

    def reset(self) -> None:
        _check(lib.valve_breaker_reset(self._live()))

    def snapshot(self) -> BreakerSnapshot:
        s = ffi.new("valve_breaker_snapshot *")
        _check(lib.valve_breaker_get_snapshot(self._live(), s))
        return BreakerSnapshot(
            BreakerState(s.state), s.successes, s.failures, s.ignored, s.late, s.rejected_open,
            s.to_open,
        )
