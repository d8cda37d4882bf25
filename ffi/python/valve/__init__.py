"""valve for Python: a concurrency limiter that admits work up to an adaptive limit and sheds the
rest at once, retry budgets with backoff (``retry``) and a circuit breaker (``Breaker``), over
valve's C ABI (``include/valve.h``) through cffi.

>>> limiter = Limiter()                       # valve's AIMD defaults
>>> try:
...     with limiter.acquire():               # raises Rejected at the limit: answer 503
...         pass                              # ... call the backend ...
... except Rejected:
...     pass

Leaving the ``with`` block normally reports success; an exception listed in ``dropped_on``
(``TimeoutError`` by default) reports an overload signal, so the limit backs off; any other
exception releases the slot and teaches nothing. ``permit.dropped()`` inside the block reports
explicitly.

Every method of a Limiter may be called from any thread, except ``close()``, which must not run
concurrently with other calls on the same limiter. Calls that may wait release the GIL.

Two implementations sit behind ``Limiter`` and ``Permit``, with one API. Where the optional C
extension ``valve._fastpath`` (``valve/_fastpath.c``, built by ``pip install`` when a compiler is
there) was built, ``Limiter.acquire()`` and the permit's methods run in C and call libvalve
directly, holding the GIL for those calls, which never wait: ``with limiter.acquire():`` then
costs about what two bare cffi calls do. Without it, or with ``VALVE_PURE_PYTHON=1`` in the
environment, the pure-Python classes (``_PyLimiter``, ``_PyPermit``) call libvalve through cffi.
The extension is used only after its compiled ``valve_permit`` layout matched cffi's declarations.
The library is the libvalve inside the package, or ``$VALVE_LIB`` (``valve._native``).
"""

import os
import warnings
from dataclasses import dataclass
from typing import Optional, Tuple, Type, Union

from ._native import ffi, lib

__all__ = [
    "AimdConfig",
    "Backoff",
    "BackoffConfig",
    "Breaker",
    "BreakerOpen",
    "BreakerPermit",
    "BreakerSnapshot",
    "BreakerState",
    "BudgetExhausted",
    "BudgetSnapshot",
    "ConcurrencyBudget",
    "CostClass",
    "Preset",
    "Timeout",
    "TokenQuota",
    "WindowedBudget",
    "Withdrawal",
    "retry",
    "Closed",
    "FixedConfig",
    "ForeignPermit",
    "InternalError",
    "InvalidArgument",
    "Limiter",
    "Permit",
    "Rejected",
    "Snapshot",
    "StalePermit",
    "ValveError",
    "WindowConfig",
    "version",
]

_NS = 1_000_000_000


def version() -> str:
    """The C library's version string."""
    return ffi.string(lib.valve_version()).decode()


class ValveError(Exception):
    """A valve call failed; ``status`` is the ``valve_status`` code."""

    def __init__(self, status: int, detail: str = ""):
        self.status = status
        name = ffi.string(lib.valve_status_name(status)).decode()
        super().__init__(f"{name}: {detail}" if detail else name)


class Rejected(ValveError):
    """The limit was reached: shed the work. Not a failure of valve."""


class InvalidArgument(ValveError, ValueError):
    """A config failed validation."""


class StalePermit(ValveError):
    """The permit was already released."""


class ForeignPermit(ValveError):
    """The permit belongs to another limiter."""


class InternalError(ValveError):
    """valve panicked inside a call (a bug in valve)."""


class Timeout(ValveError, TimeoutError):
    """A blocking acquire's deadline passed before a slot was free."""


class BudgetExhausted(ValveError):
    """The client's own retry budget refused a retry: do not retry. Not a server signal."""


class Closed(ValveError):
    """The limiter was closed."""

    def __init__(self) -> None:
        super().__init__(lib.VALVE_NULL_POINTER, "the limiter is closed")


_ERRORS = {
    lib.VALVE_REJECTED: Rejected,
    lib.VALVE_INVALID_ARGUMENT: InvalidArgument,
    lib.VALVE_STALE_PERMIT: StalePermit,
    lib.VALVE_FOREIGN_PERMIT: ForeignPermit,
    lib.VALVE_INTERNAL: InternalError,
    lib.VALVE_TIMEOUT: Timeout,
    lib.VALVE_BUDGET_EXHAUSTED: BudgetExhausted,
}


def _raise(status: int) -> None:
    raise _ERRORS.get(status, ValveError)(status)


def _ns(seconds: float, field: str) -> int:
    if not seconds >= 0:
        raise InvalidArgument(lib.VALVE_INVALID_ARGUMENT, f"{field} must be >= 0 seconds")
    return min(round(seconds * _NS), 2**64 - 1)


@dataclass(frozen=True)
class WindowConfig:
    """How completed calls are aggregated before the algorithm sees them (durations in s)."""

    min_duration: float
    max_duration: float
    min_samples: int
    min_rtt_threshold: float


@dataclass(frozen=True)
class AimdConfig:
    """The AIMD algorithm (``valve_aimd_config``); change presets with ``dataclasses.replace``."""

    initial_limit: int
    min_limit: int
    max_limit: int
    increase_step: int
    backoff_ratio: float
    #: The limit grows only while a window's in-flight reaches this share of it, in [0, 1].
    #: Netflix: 0.5 (an under-loaded limit climbs to twice its peak in-flight). valve: 0.8.
    utilisation_threshold: float
    timeout: float
    window: WindowConfig
    #: Back off when the averaged RTT exceeds this multiple of a learnt no-load RTT, in
    #: (1, 100]; 0 learns from drops and ``timeout`` only (Netflix). valve: 1.5.
    latency_tolerance: float

    @classmethod
    def default(cls) -> "AimdConfig":
        """valve's AIMD defaults (``valve_limiter_config_default``)."""
        return cls._from_c(lib.valve_limiter_config_default().aimd)

    @classmethod
    def netflix(cls) -> "AimdConfig":
        """Netflix ``AIMDLimit`` parity (``valve_limiter_config_aimd_netflix``)."""
        return cls._from_c(lib.valve_limiter_config_aimd_netflix().aimd)

    @classmethod
    def _from_c(cls, c) -> "AimdConfig":
        w = c.window
        return cls(
            initial_limit=c.initial_limit,
            min_limit=c.min_limit,
            max_limit=c.max_limit,
            increase_step=c.increase_step,
            backoff_ratio=c.backoff_ratio,
            utilisation_threshold=c.utilisation_threshold,
            timeout=c.timeout_ns / _NS,
            latency_tolerance=c.latency_tolerance,
            window=WindowConfig(
                min_duration=w.min_duration_ns / _NS,
                max_duration=w.max_duration_ns / _NS,
                min_samples=w.min_samples,
                min_rtt_threshold=w.min_rtt_threshold_ns / _NS,
            ),
        )

    def _to_c(self, c) -> None:
        for field in ("initial_limit", "min_limit", "max_limit", "increase_step"):
            setattr(c, field, _u32(getattr(self, field), field))
        c.backoff_ratio = self.backoff_ratio
        c.utilisation_threshold = self.utilisation_threshold
        c.timeout_ns = _ns(self.timeout, "timeout")
        c.latency_tolerance = self.latency_tolerance
        w = self.window
        c.window.min_duration_ns = _ns(w.min_duration, "window.min_duration")
        c.window.max_duration_ns = _ns(w.max_duration, "window.max_duration")
        c.window.min_samples = _u32(w.min_samples, "window.min_samples")
        c.window.min_rtt_threshold_ns = _ns(w.min_rtt_threshold, "window.min_rtt_threshold")


@dataclass(frozen=True)
class Preset:
    """A limiter preset of the C library by name: ``gradient2``, ``gradient2_netflix``,
    ``vegas``, ``vegas_netflix``, ``envoy_gradient`` or ``envoy_gradient_envoy``
    (``valve_limiter_config_<name>()``)."""

    name: str

    _NAMES = (
        "gradient2",
        "gradient2_netflix",
        "vegas",
        "vegas_netflix",
        "envoy_gradient",
        "envoy_gradient_envoy",
    )

    def _config(self):
        if self.name not in self._NAMES:
            raise InvalidArgument(lib.VALVE_INVALID_ARGUMENT, f"unknown preset {self.name!r}")
        return getattr(lib, f"valve_limiter_config_{self.name}")()


@dataclass(frozen=True)
class FixedConfig:
    """A constant limit, settable by hand."""

    limit: int


def _u32(value: int, field: str) -> int:
    if not 0 <= value < 2**32:
        raise InvalidArgument(lib.VALVE_INVALID_ARGUMENT, f"{field} must fit in 32 bits")
    return value


@dataclass(frozen=True)
class Snapshot:
    """A limiter's counters and gauges (``valve_limiter_snapshot``); RTTs in seconds."""

    limit: int
    in_flight: int
    admitted: int
    rejected: int
    success: int
    dropped: int
    ignored: int
    sample_rtt: float
    min_rtt: float
    timed_out: int
    queued: int


# The acquire + release path, bound once: a module global is found faster than an attribute of
# ``lib``, and these run on every call.
_try_acquire = lib.valve_limiter_try_acquire
_release = lib.valve_limiter_release
_OK = lib.VALVE_OK
_REJECTED = lib.VALVE_REJECTED
_STALE_PERMIT = lib.VALVE_STALE_PERMIT
_SUCCESS = lib.VALVE_OUTCOME_SUCCESS
_DROPPED = lib.VALVE_OUTCOME_DROPPED
_IGNORED = lib.VALVE_OUTCOME_IGNORED

# Permits are carved from blocks of this many: one cffi allocation per block instead of one per
# acquire. A block is freed once every Permit holding one of its slots is gone.
_BLOCK = 256
_PERMIT_BLOCK = ffi.typeof("valve_permit[]")


def _carve():
    """A new block and a pointer to each of its slots. ``list.pop`` is atomic (with or without
    the GIL), so each slot goes to one permit only."""
    block = ffi.new(_PERMIT_BLOCK, _BLOCK)
    return block, [block + i for i in range(_BLOCK)]


class Permit:
    """The right to run one unit of work; report how it ended once, or use it in ``with``."""

    __slots__ = ("_limiter", "_permit", "_block")

    def __init__(self, limiter: "Limiter", permit, block) -> None:
        self._limiter = limiter
        self._permit = permit
        self._block = block

    @property
    def held(self) -> bool:
        """Whether the permit still holds its slot."""
        return self._permit.state == lib.VALVE_PERMIT_HELD

    def success(self) -> None:
        """The work completed normally: its RTT is a sample."""
        self._release(_SUCCESS)

    def dropped(self) -> None:
        """An overload signal (timeout, 503): the limit backs off."""
        self._release(_DROPPED)

    def ignore(self) -> None:
        """Releases the slot and teaches nothing (client cancel, bad request)."""
        self._release(_IGNORED)

    def _release(self, outcome: int) -> None:
        status = _release(self._limiter._live(), self._permit, outcome)
        if status != _OK:
            _raise(status)

    def __enter__(self) -> "Permit":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            outcome = _SUCCESS
        elif issubclass(exc_type, self._limiter.dropped_on):
            outcome = _DROPPED
        else:
            outcome = _IGNORED
        handle = self._limiter._handle
        if handle is None:
            if self.held:
                raise Closed()
            return False
        # A permit the block already reported answers VALVE_STALE_PERMIT and changes nothing:
        # the library checks, so no field read is needed here.
        status = _release(handle, self._permit, outcome)
        if status != _OK and status != _STALE_PERMIT:
            _raise(status)
        return False


_new_permit_object = object.__new__


class Limiter:
    """A concurrency limiter (``valve_limiter``).

    ``Limiter()`` uses valve's AIMD defaults; pass ``AimdConfig.netflix()``, a changed
    ``AimdConfig`` or ``FixedConfig(limit)`` for others. ``dropped_on`` lists the exceptions
    that a ``with`` block reports as overload signals. The C handle is freed by ``close()``
    (or leaving ``with Limiter() as limiter:``), else when the object is collected.
    """

    def __init__(
        self,
        config: Union[AimdConfig, FixedConfig, Preset, None] = None,
        *,
        dropped_on: Tuple[Type[BaseException], ...] = (TimeoutError,),
    ) -> None:
        self.dropped_on = dropped_on
        c = ffi.new("valve_limiter_config *", lib.valve_limiter_config_default())
        if isinstance(config, FixedConfig):
            c.algorithm = lib.VALVE_ALGORITHM_FIXED
            c.fixed.limit = _u32(config.limit, "limit")
        elif isinstance(config, AimdConfig):
            config._to_c(c.aimd)
        elif isinstance(config, Preset):
            c[0] = config._config()
        elif config is not None:
            raise TypeError(f"valve: not a limiter config: {config!r}")
        out = ffi.new("valve_limiter **")
        status = lib.valve_limiter_new(c, out)
        if status != lib.VALVE_OK:
            _raise(status)
        self._handle: Optional[object] = ffi.gc(out[0], lib.valve_limiter_free)
        # The first block is carved on first use: valve._fastpath's permits need none.
        self._permits = (None, [])

    def _live(self):
        handle = self._handle
        if handle is None:
            raise Closed()
        return handle

    def _new_permit(self):
        """An unused ``valve_permit *`` and the block that owns its memory."""
        block, slots = self._permits
        try:
            return slots.pop(), block
        except IndexError:
            # Threads racing here each carve a block of their own; every slot is still unique.
            block, slots = _carve()
            permit = slots.pop()  # before the block is shared, so it cannot be empty
            self._permits = (block, slots)
            return permit, block

    def acquire(self) -> Permit:
        """Admits one call if in-flight is below the limit, else raises ``Rejected`` at once.

        The permit is a context manager: ``with limiter.acquire(): ...``.
        """
        handle = self._handle
        if handle is None:
            raise Closed()
        # `_new_permit` inlined: this is the hot path, and a Python call costs as much as a C one.
        block, slots = self._permits
        try:
            permit = slots.pop()
        except IndexError:
            permit, block = self._new_permit()
        status = _try_acquire(handle, permit)
        if status == _OK:
            # Built without running `__init__`, which would cost one more Python frame.
            held = _new_permit_object(_PyPermit)
            held._limiter = self
            held._permit = permit
            held._block = block
            return held
        if status == _REJECTED:
            raise Rejected(status, f"{permit.in_flight} in flight")
        _raise(status)

    def acquire_timeout(self, timeout: float) -> Permit:
        """Waits up to ``timeout`` seconds for a slot in the limiter's queue (the GIL is released
        while waiting). Raises ``Timeout`` when the deadline passes first, ``Rejected`` when the
        queue refuses the wait."""
        permit, block = self._new_permit()
        status = lib.valve_limiter_acquire_timeout(self._live(), _ns(timeout, "timeout"), permit)
        if status == _OK:
            return _PyPermit(self, permit, block)
        _raise(status)

    def set_limit(self, limit: int) -> int:
        """Sets the limit by hand, clamped to the algorithm's bounds; returns the limit now in
        force. Lowering it never revokes running work."""
        in_force = ffi.new("uint32_t *")
        status = lib.valve_limiter_set_limit(self._live(), _u32(limit, "limit"), in_force)
        if status != lib.VALVE_OK:
            _raise(status)
        return in_force[0]

    def snapshot(self) -> Snapshot:
        """The counters and gauges, read without locks."""
        s = ffi.new("valve_limiter_snapshot *")
        status = lib.valve_limiter_get_snapshot(self._live(), s)
        if status != lib.VALVE_OK:
            _raise(status)
        return Snapshot(
            limit=s.limit,
            in_flight=s.in_flight,
            admitted=s.admitted,
            rejected=s.rejected,
            success=s.success,
            dropped=s.dropped,
            ignored=s.ignored,
            timed_out=s.timed_out,
            queued=s.queued,
            sample_rtt=s.sample_rtt_ns / _NS,
            min_rtt=s.min_rtt_ns / _NS,
        )

    def close(self) -> None:
        """Frees the C limiter now; later calls raise ``Closed``. Closing twice is a no-op."""
        handle, self._handle = self._handle, None
        if handle is not None:
            ffi.release(handle)

    def __enter__(self) -> "Limiter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False


_PyPermit, _PyLimiter = Permit, Limiter


def _load_fastpath():
    """The C extension, initialised, or None where the pure-Python path is to be used."""
    if os.environ.get("VALVE_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from . import _fastpath
    except ImportError:
        return None
    permit = "valve_permit"
    fields = ("limiter_id", "start_ns", "in_flight", "state")
    expected = (
        ffi.sizeof(permit),
        *(ffi.offsetof(permit, field) for field in fields),
        *(_OK, _REJECTED, _STALE_PERMIT, lib.VALVE_PERMIT_HELD, _SUCCESS, _DROPPED, _IGNORED),
    )
    if _fastpath.layout() != expected:
        warnings.warn(
            "valve: valve._fastpath was built against another valve.h than the one loaded; "
            "using the pure-Python path (reinstall the package)",
            RuntimeWarning,
        )
        return None

    def address(cdata) -> int:
        return int(ffi.cast("uintptr_t", cdata))

    entries = (lib.valve_limiter_try_acquire, lib.valve_limiter_acquire_timeout, _release)
    _fastpath.init(address, *map(address, entries), Closed, Rejected, _raise)
    return _fastpath


_fastpath = _load_fastpath()

if _fastpath is not None:
    Permit = _fastpath.Permit  # noqa: F811

    class Limiter(_fastpath.LimiterCore, _PyLimiter):  # noqa: F811
        # `acquire` comes from LimiterCore, first in the MRO; the rest from _PyLimiter.
        __doc__ = _PyLimiter.__doc__

        def __init__(
            self,
            config: Union[AimdConfig, FixedConfig, Preset, None] = None,
            *,
            dropped_on: Tuple[Type[BaseException], ...] = (TimeoutError,),
        ) -> None:
            super().__init__(config, dropped_on=dropped_on)
            self._bind(self._handle)

        def acquire_timeout(self, timeout: float) -> Permit:
            return self._acquire_timeout(_ns(timeout, "timeout"))

        acquire_timeout.__doc__ = _PyLimiter.acquire_timeout.__doc__

        def close(self) -> None:
            # The C side lets go of the handle before it is freed.
            self._unbind()
            super().close()

        close.__doc__ = _PyLimiter.close.__doc__


from ._controls import (  # noqa: E402  (needs the errors above)
    Backoff,
    BackoffConfig,
    Breaker,
    BreakerOpen,
    BreakerPermit,
    BreakerSnapshot,
    BreakerState,
    BudgetSnapshot,
    ConcurrencyBudget,
    CostClass,
    TokenQuota,
    WindowedBudget,
    Withdrawal,
    retry,
)
