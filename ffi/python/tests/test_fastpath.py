"""The permit path behind ``valve.Limiter``: the C extension in a normal run, the pure-Python
classes under ``VALVE_PURE_PYTHON=1`` (test.sh runs this file both ways)."""

import gc
import os
import threading
import weakref

import pytest

import valve
from valve._native import lib

PURE = os.environ.get("VALVE_PURE_PYTHON", "") not in ("", "0")


def counts(limiter):
    s = limiter.snapshot()
    return (s.admitted, s.rejected, s.success, s.dropped, s.ignored, s.in_flight)


@pytest.mark.skipif(PURE, reason="VALVE_PURE_PYTHON is set")
def test_the_c_extension_is_in_use():
    from valve import _fastpath

    assert valve._fastpath is _fastpath
    assert valve.Permit is _fastpath.Permit
    assert issubclass(valve.Limiter, _fastpath.LimiterCore)
    limiter = valve.Limiter()
    assert type(limiter.acquire()) is _fastpath.Permit
    assert type(limiter.acquire_timeout(1.0)) is _fastpath.Permit


@pytest.mark.skipif(not PURE, reason="VALVE_PURE_PYTHON is not set")
def test_pure_python_when_asked():
    assert valve._fastpath is None
    assert (valve.Limiter, valve.Permit) == (valve._PyLimiter, valve._PyPermit)


def test_a_mismatched_layout_falls_back_with_a_warning(monkeypatch):
    fastpath = pytest.importorskip("valve._fastpath")
    monkeypatch.delenv("VALVE_PURE_PYTHON", raising=False)
    monkeypatch.setattr(fastpath, "layout", lambda: (0,))
    with pytest.warns(RuntimeWarning, match="another valve.h"):
        assert valve._load_fastpath() is None


class Overload(TimeoutError):
    pass


def test_with_block_outcomes_follow_dropped_on():
    limiter = valve.Limiter(valve.FixedConfig(4), dropped_on=(TimeoutError, KeyError))
    with limiter.acquire() as permit:
        assert permit.held
    assert not permit.held
    for error in (Overload, KeyError, ValueError, SystemExit):
        with pytest.raises(error):
            with limiter.acquire():
                raise error
    with pytest.raises(ValueError):
        with limiter.acquire():
            limiter.dropped_on = (ValueError,)  # read when the block ends
            raise ValueError
    assert counts(limiter) == (6, 0, 1, 3, 2, 0)


def test_exit_never_swallows_and_checks_its_arguments():
    limiter = valve.Limiter()
    permit = limiter.acquire()
    assert permit.__enter__() is permit
    assert permit.__exit__(ValueError, ValueError(), None) is False
    assert permit.__exit__(None, None, None) is False  # reported already: stale, accepted
    with pytest.raises(TypeError):
        permit.__exit__(None)
    limiter.dropped_on = 42
    with pytest.raises(TypeError):
        limiter.acquire().__exit__(ValueError, ValueError(), None)


def test_rejected_when_full_as_the_python_path_raises_it():
    limiter = valve.Limiter(valve.FixedConfig(2))
    held = [limiter.acquire(), limiter.acquire()]
    with pytest.raises(valve.Rejected) as rejected:
        limiter.acquire()
    assert rejected.value.status == lib.VALVE_REJECTED
    assert str(rejected.value) == str(valve.Rejected(lib.VALVE_REJECTED, "2 in flight"))
    for permit in held:
        permit.ignore()
    assert counts(limiter) == (2, 1, 0, 0, 2, 0)


def test_acquire_timeout_gives_the_same_permits():
    limiter = valve.Limiter(valve.FixedConfig(1))
    with limiter.acquire_timeout(1.0) as permit:
        assert permit.held and type(permit) is valve.Permit
        with pytest.raises(valve.Timeout):
            limiter.acquire_timeout(0.001)
    with pytest.raises(valve.InvalidArgument):
        limiter.acquire_timeout(-1.0)
    assert counts(limiter)[:3] == (1, 0, 1)


def test_closed_limiter():
    limiter = valve.Limiter()
    held, released = limiter.acquire(), limiter.acquire()
    released.success()
    limiter.close()
    for call in (limiter.acquire, lambda: limiter.acquire_timeout(1.0), released.success):
        with pytest.raises(valve.Closed):
            call()
    with pytest.raises(valve.Closed):
        with held:
            pass
    with released:  # nothing held, nothing lost: leaving quietly is right
        pass
    assert held.held


def test_double_release_counts_once():
    limiter = valve.Limiter()
    with limiter.acquire() as permit:
        permit.success()
    with limiter.acquire() as permit:
        permit.dropped()
        with pytest.raises(valve.StalePermit):
            permit.ignore()
    assert counts(limiter) == (2, 0, 1, 1, 0, 0)


def test_a_permit_keeps_its_limiter_alive():
    limiter = valve.Limiter()
    permit = limiter.acquire()
    alive = weakref.ref(limiter)
    del limiter
    gc.collect()
    assert alive() is not None
    permit.success()
    assert alive().snapshot().success == 1
    del permit
    gc.collect()
    assert alive() is None


def test_permits_in_cycles_with_their_limiter_are_collected():
    limiter = valve.Limiter()
    limiter.held = [limiter.acquire() for _ in range(3)]
    closed = valve.Limiter()
    closed.held = closed.acquire()
    closed.close()
    refs = [weakref.ref(limiter), weakref.ref(closed)]
    del limiter, closed
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


def test_permits_outlive_a_closed_limiter():
    limiter = valve.Limiter()
    permits = [limiter.acquire() for _ in range(3)]
    limiter.close()
    del limiter
    gc.collect()
    assert all(p.held for p in permits)
    for permit in permits:
        with pytest.raises(valve.Closed):
            permit.dropped()


def test_threads_hammering_never_exceed_the_limit():
    threads, iterations, limit = 8, 3000, 4
    limiter = valve.Limiter(valve.FixedConfig(limit))
    seen = []

    def work(index):
        peak = 0
        for i in range(iterations):
            try:
                permit = limiter.acquire()
            except valve.Rejected:
                continue
            peak = max(peak, limiter.snapshot().in_flight)
            if (i + index) % 3 == 0:
                with permit:
                    pass
            elif (i + index) % 3 == 1:
                permit.dropped()
            else:
                with pytest.raises(KeyError), permit:
                    raise KeyError
        seen.append(peak)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    admitted, rejected, success, dropped, ignored, in_flight = counts(limiter)
    assert max(seen) <= limit
    assert in_flight == 0
    assert admitted + rejected == threads * iterations
    assert success + dropped + ignored == admitted


@pytest.mark.skipif(PURE, reason="VALVE_PURE_PYTHON is set")
def test_the_c_types_refuse_misuse():
    from valve import _fastpath

    with pytest.raises(TypeError):
        _fastpath.Permit()
    with pytest.raises(valve.Closed):
        _fastpath.LimiterCore().acquire()  # never bound
    with pytest.raises(ValueError):
        _fastpath.init(int, 1, 2, 3, valve.Closed, valve.Rejected, valve._raise)
    with pytest.raises(OverflowError):
        valve.Limiter()._acquire_timeout(-1)
