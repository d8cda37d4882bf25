"""Budgets, backoff, the breaker, the retry decorator and blocking acquire, over the C ABI."""

import threading

import pytest

import valve
BreakerState = valve.BreakerState


def test_presets_and_blocking_acquire():
    for name in valve.Preset._NAMES:
        with valve.Limiter(valve.Preset(name)) as limiter:
            with limiter.acquire():
                pass
    with pytest.raises(valve.InvalidArgument):
        valve.Limiter(valve.Preset("nope"))
    with valve.Limiter(valve.FixedConfig(1)) as limiter:
        held = limiter.acquire_timeout(0)
        with pytest.raises(valve.Timeout):
            limiter.acquire_timeout(0.001)
        assert isinstance(valve.Timeout(7), TimeoutError)
        got = []
        waiter = threading.Thread(target=lambda: got.append(limiter.acquire_timeout(10)))
        waiter.start()
        while limiter.snapshot().queued == 0:
            pass
        held.ignore()
        waiter.join()
        got[0].success()
        assert limiter.snapshot().timed_out == 1


def test_token_quota():
    with valve.TokenQuota.aws_standard_legacy() as quota:
        w = quota.try_retry(valve.CostClass.TIMEOUT)
        assert (w.tokens, quota.balance) == (10, 490)
        quota.on_success(w)
        quota.on_success(w)
        assert (w.tokens, quota.balance) == (0, 500)
        with pytest.raises(valve.BudgetExhausted):
            while True:
                quota.try_retry()
        with pytest.raises(valve.BudgetExhausted):
            quota.may_hedge()
        assert quota.snapshot().balance == 0
    with pytest.raises(valve.Closed):
        quota.try_retry()
    grpc = valve.TokenQuota.grpc(10, 0.1)
    assert grpc.snapshot().capacity == 10000
    with pytest.raises(valve.InvalidArgument):
        valve.TokenQuota.grpc(0, 0.1)
    valve.TokenQuota.aws_standard_2026().close()
    valve.TokenQuota.aws_c_io().close()


def test_windowed_and_concurrency_budgets():
    budget = valve.WindowedBudget()
    for _ in range(50):
        budget.deposit()
    granted = 0
    with pytest.raises(valve.BudgetExhausted):
        while True:
            budget.try_withdraw()
            granted += 1
    assert granted == 110 and budget.snapshot().denied == 1
    with pytest.raises(valve.InvalidArgument):
        valve.WindowedBudget(ttl=0.5)

    envoy = valve.ConcurrencyBudget()
    for _ in range(3):
        envoy.try_start_retry()
    with pytest.raises(valve.BudgetExhausted):
        envoy.try_start_retry()
    with pytest.raises(valve.StalePermit):
        envoy.request_finished()
    with pytest.raises(valve.InvalidArgument):
        valve.ConcurrencyBudget(101)


def test_backoff():
    b = valve.Backoff(valve.BackoffConfig.exponential(1e-8, 8e-8, valve.BackoffConfig.NONE), 1)
    assert [round(b.next_delay() * 1e9) for _ in range(5)] == [10, 20, 40, 80, 80]
    b.reset()
    assert round(b.next_delay() * 1e9) == 10
    g = valve.Backoff(valve.BackoffConfig.grpc(1, 10), 1)
    assert g.next_delay(retry_after=0.003) == 0.003
    for config in (
        valve.BackoffConfig.aws_legacy(),
        valve.BackoffConfig.aws_2026(True),
        valve.BackoffConfig.aws_c_io(),
    ):
        assert 0 <= valve.Backoff(config).next_delay() < 1.0
    with pytest.raises(valve.InvalidArgument):
        valve.Backoff(valve.BackoffConfig.exponential(1, 0.5))


def test_retry_sleeps_the_backoff_and_stops_when_the_budget_denies():
    slept = []
    quota = valve.TokenQuota.aws_standard_legacy()
    calls = []

    @valve.retry(
        budget=quota,
        backoff=valve.BackoffConfig.exponential(0.1, 1, valve.BackoffConfig.NONE),
        retry_on=(ConnectionError,),
        max_attempts=4,
        sleep=slept.append,
    )
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    assert flaky() == "ok"
    assert slept == [0.1, 0.2]
    assert quota.balance == 500 - 5, "the successful retry refunded its own cost"

    @valve.retry(budget=valve.TokenQuota.aws_c_io(), retry_on=(KeyError,), max_attempts=9)
    def not_retried():
        raise ValueError("not in retry_on")

    with pytest.raises(ValueError):
        not_retried()

    empty = valve.WindowedBudget(min_retries_per_sec=0, percent_can_retry=0.0)
    attempts = []

    @valve.retry(budget=empty, max_attempts=5, sleep=slept.append)
    def always_fails():
        attempts.append(1)
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        always_fails()
    assert len(attempts) == 1, "the budget denied the first retry"

    envoy = valve.ConcurrencyBudget()

    @valve.retry(budget=envoy, max_attempts=3, sleep=lambda _: None)
    def fails_then_works(state=[]):
        state.append(1)
        if len(state) == 1:
            raise OSError()
        return len(state)

    assert fails_then_works() == 2
    snap = envoy.snapshot()
    assert (snap.outstanding, snap.retries_in_flight, snap.allowed) == (0, 0, 1)


def test_retry_charges_every_failure_to_a_grpc_quota():
    # gRPC A6: every failed RPC takes a token, the one after which no retry is sent included;
    # the AWS rules charge only retries that are sent.
    grpc = valve.TokenQuota.grpc(10, 0.1)
    aws = valve.TokenQuota.aws_standard_legacy()
    attempts = []

    def always_fails():
        attempts.append(1)
        raise ConnectionError("unavailable")

    for quota in (grpc, aws):
        with pytest.raises(ConnectionError):
            valve.retry(budget=quota, max_attempts=3, sleep=lambda _: None)(always_fails)()
    assert len(attempts) == 6
    assert grpc.balance == 10_000 - 3 * 1000, "three failures, three charges"
    assert aws.balance == 500 - 2 * 5, "two retries sent, two charges"

    denied = valve.TokenQuota.grpc(2, 1)  # 2000 milli-tokens, threshold 1000
    with pytest.raises(ConnectionError):
        valve.retry(budget=denied, max_attempts=5, sleep=lambda _: None)(always_fails)()
    assert denied.balance == 1000 and len(attempts) == 7, "the first failure's charge denied"


def test_breaker_context_manager():
    breaker = valve.Breaker(consecutive_failures=2)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            with breaker.call():
                raise RuntimeError("down")
    assert breaker.state == BreakerState.OPEN
    with pytest.raises(valve.BreakerOpen):
        with breaker.call():
            pass
    assert breaker.transition_to(BreakerState.DISABLED)
    breaker.reset()
    with breaker.call():
        pass
    with pytest.raises(KeyError):
        with breaker.call(failure_on=(RuntimeError,)):
            raise KeyError("ignored, not a failure")
    permit = breaker.allow()
    permit.success()
    with pytest.raises(valve.StalePermit):
        permit.failure()
    snap = breaker.snapshot()
    assert (snap.state, snap.successes, snap.failures, snap.ignored, snap.to_open) == (
        BreakerState.CLOSED, 2, 2, 1, 1)
    for preset in ("resilience4j", "gobreaker", "polly", "hystrix"):
        valve.Breaker(preset).close()
    with pytest.raises(valve.InvalidArgument):
        valve.Breaker("nope")
    with pytest.raises(valve.InvalidArgument):
        valve.Breaker(failure_rate=2.0)


def test_controls_from_threads():
    breaker = valve.Breaker()
    quota = valve.TokenQuota.aws_standard_legacy()
    envoy = valve.ConcurrencyBudget()
    errors = []

    def work():
        try:
            for _ in range(300):
                with breaker.call():
                    pass
                quota.on_success(quota.try_retry())
                envoy.request_started()
                try:
                    envoy.try_start_retry()
                    envoy.retry_finished()
                except valve.BudgetExhausted:
                    pass
                envoy.request_finished()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert breaker.snapshot().successes == 2400
    assert quota.balance == 500
    snap = envoy.snapshot()
    assert (snap.outstanding, snap.retries_in_flight) == (0, 0)
