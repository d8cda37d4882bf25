"""The Python binding: configs, the with-statement protocol, errors, threads."""

import dataclasses
import gc
import threading

import pytest

import valve
from valve._native import ffi, lib


def test_version_matches_the_header():
    assert valve.version().count(".") == 2
    assert lib.valve_version_number() == lib.VALVE_VERSION_NUMBER


def test_presets_come_from_the_library():
    default = valve.AimdConfig.default()
    assert (default.min_limit, default.max_limit, default.timeout) == (1, 1000, 5.0)
    assert default.window.min_duration == 0.01
    netflix = valve.AimdConfig.netflix()
    assert (netflix.min_limit, netflix.max_limit) == (20, 200)
    assert (default.latency_tolerance, netflix.latency_tolerance) == (1.5, 0.0)
    assert netflix.window.min_rtt_threshold == 0.0001
    for config in (None, default, netflix, valve.FixedConfig(3)):
        with valve.Limiter(config) as limiter:
            assert limiter.snapshot().in_flight == 0


@pytest.mark.parametrize(
    "config",
    [
        valve.FixedConfig(0),
        valve.FixedConfig(2**32),
        dataclasses.replace(valve.AimdConfig.default(), min_limit=0),
        dataclasses.replace(valve.AimdConfig.default(), backoff_ratio=float("nan")),
        dataclasses.replace(valve.AimdConfig.default(), timeout=-1.0),
        dataclasses.replace(valve.AimdConfig.default(), initial_limit=5000),
        dataclasses.replace(valve.AimdConfig.default(), latency_tolerance=1.0),
    ],
)
def test_invalid_configs_raise(config):
    with pytest.raises(valve.InvalidArgument):
        valve.Limiter(config)


def test_not_a_config():
    with pytest.raises(TypeError):
        valve.Limiter(42)


def test_with_block_reports_outcomes():
    limiter = valve.Limiter(valve.FixedConfig(1), dropped_on=(TimeoutError,))
    with limiter.acquire():
        with pytest.raises(valve.Rejected, match="1 in flight"):
            limiter.acquire()
    with pytest.raises(TimeoutError):
        with limiter.acquire():
            raise TimeoutError
    with pytest.raises(KeyError):
        with limiter.acquire():
            raise KeyError
    with limiter.acquire() as permit:
        permit.dropped()  # reported explicitly: the exit does nothing more
        assert not permit.held
    s = limiter.snapshot()
    assert (s.admitted, s.rejected, s.success, s.dropped, s.ignored) == (4, 1, 1, 2, 1)
    assert s.in_flight == 0


def test_permits_from_many_blocks_are_distinct_and_outlive_their_block():
    # Blocks of permits are the pure-Python path's; the C path's permits hold theirs inline.
    limiter = valve._PyLimiter(valve.FixedConfig(1000))
    permits = [limiter.acquire() for _ in range(600)]  # across three blocks of slots
    assert len({int(ffi.cast("uintptr_t", p._permit)) for p in permits}) == 600
    gc.collect()  # the limiter has moved on from the first block; its permits keep it
    assert all(p.held for p in permits)
    assert limiter.snapshot().in_flight == 600
    for p in permits:
        p.success()
    with pytest.raises(valve.StalePermit):
        permits[0].success()
    assert limiter.snapshot().in_flight == 0


def test_double_release_raises_and_changes_nothing():
    limiter = valve.Limiter()
    permit = limiter.acquire()
    permit.success()
    before = limiter.snapshot()
    with pytest.raises(valve.StalePermit):
        permit.success()
    with pytest.raises(valve.StalePermit):
        permit.ignore()
    assert limiter.snapshot() == before


def test_set_limit_clamps():
    limiter = valve.Limiter(valve.AimdConfig.netflix())
    assert limiter.set_limit(5) == 20
    assert limiter.set_limit(50) == 50
    assert limiter.snapshot().limit == 50
    with pytest.raises(valve.InvalidArgument):
        limiter.set_limit(-1)


def test_closed_limiter_raises():
    limiter = valve.Limiter()
    permit = limiter.acquire()
    limiter.close()
    limiter.close()
    for call in (limiter.acquire, limiter.snapshot, permit.success, lambda: limiter.set_limit(3)):
        with pytest.raises(valve.Closed):
            call()


def test_threads_never_exceed_the_limit_and_counts_balance():
    threads, iterations, limit = 8, 2000, 3
    limiter = valve.Limiter(valve.FixedConfig(limit))
    lock = threading.Lock()
    state = {"held": 0, "max_held": 0, "admitted": 0, "rejected": 0}

    def work():
        for _ in range(iterations):
            try:
                with limiter.acquire():
                    with lock:
                        state["held"] += 1
                        state["admitted"] += 1
                        state["max_held"] = max(state["max_held"], state["held"])
                    with lock:
                        state["held"] -= 1
            except valve.Rejected:
                with lock:
                    state["rejected"] += 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    s = limiter.snapshot()
    assert state["max_held"] <= limit
    assert s.in_flight == 0
    assert (s.admitted, s.rejected) == (state["admitted"], state["rejected"])
    assert s.admitted + s.rejected == threads * iterations
    assert s.success == s.admitted
