"""The router's plumbing with a scripted provider, a fake clock and a fake sleep: which waits
it takes, which timeouts it gives each attempt, when it gives up. No HTTP, no real sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from functions.gateway.config import GatewayConfig
from functions.gateway.router import RouteFailed, Router
from shared.errors import Overloaded, RateLimited, UpstreamError, UpstreamRejected
from shared.resilience import RetryPolicy
from tests.gateway.support import ANTHROPIC, BEDROCK


class ScriptedProvider:
    """A provider that raises the scripted errors in turn, then answers."""

    name = "anthropic"

    def __init__(self, *errors: UpstreamError) -> None:
        self.errors = list(errors)
        self.timeouts: list[float] = []

    def configured(self) -> bool:
        return True

    def complete(self, body: dict[str, Any], model: str, timeout_s: float) -> bytes:
        self.timeouts.append(timeout_s)
        if self.errors:
            raise self.errors.pop(0)
        return b'{"type": "message"}'

    def stream(self, body: dict[str, Any], model: str, timeout_s: float) -> Iterator[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def scripted_router(provider: ScriptedProvider, **settings: Any) -> tuple[Router, FakeTime]:
    config = GatewayConfig.model_validate(
        {
            "routes": {"r": [ANTHROPIC]},
            "deadline_s": settings.pop("deadline_s", 60),
            "retry": {"max_attempts": 4, "base_delay_s": 1, "max_delay_s": 3, **settings},
        }
    )
    fake = FakeTime()
    # The rng returns the ceiling of the jitter range, so the backoff is visible exactly.
    policy = RetryPolicy(config.retry, rng=lambda low, high: high)
    router = Router(
        config, {"anthropic": provider}, sleep=fake.sleep, clock=fake.clock, policy=policy
    )
    return router, fake


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    provider = ScriptedProvider(Overloaded("busy"), Overloaded("busy"), Overloaded("busy"))
    router, fake = scripted_router(provider)

    _, result = router.complete("r", {"messages": []})

    assert fake.slept == [1, 2, 3]  # base 1 s doubling, capped at max_delay_s 3
    assert result.attempts == 4


def test_retry_after_replaces_the_backoff() -> None:
    provider = ScriptedProvider(RateLimited("slow down", retry_after=7.5))
    router, fake = scripted_router(provider, max_retry_after_s=10)

    router.complete("r", {"messages": []})

    assert fake.slept == [7.5]


def test_attempt_timeouts_shrink_with_the_deadline() -> None:
    provider = ScriptedProvider(Overloaded("busy"), Overloaded("busy"))
    router, fake = scripted_router(provider, deadline_s=4)

    router.complete("r", {"messages": []})

    # Deployment timeout is 3 s; after sleeping 1 s then 2 s, only 1 s of the deadline is left.
    assert provider.timeouts == [3, 3, 1]


def test_no_sleep_that_would_outlive_the_deadline() -> None:
    provider = ScriptedProvider(RateLimited("slow down", retry_after=5))
    router, fake = scripted_router(provider, deadline_s=4, max_retry_after_s=10)

    with pytest.raises(RouteFailed) as caught:
        router.complete("r", {"messages": []})

    assert fake.slept == []
    assert caught.value.status_code == 429
    assert caught.value.outcome.attempts == 1


def test_rejected_request_is_not_retried() -> None:
    provider = ScriptedProvider(UpstreamRejected("bad", status_code=400, upstream_status=400))
    router, fake = scripted_router(provider)

    with pytest.raises(RouteFailed) as caught:
        router.complete("r", {"messages": []})

    assert caught.value.status_code == 400
    assert fake.slept == [] and len(provider.timeouts) == 1


def test_deployment_listed_by_two_routes_shares_one_circuit() -> None:
    config = GatewayConfig.model_validate({"routes": {"a": [ANTHROPIC, BEDROCK], "b": [ANTHROPIC]}})
    router = Router(config, {"anthropic": ScriptedProvider(), "bedrock": ScriptedProvider()})

    assert router.chain("a")[0] is router.chain("b")[0]
    assert len(router.deployments) == 2


class BrokenProvider(ScriptedProvider):
    """A provider with a bug: it raises something that is no UpstreamError."""

    def complete(self, body: dict[str, Any], model: str, timeout_s: float) -> bytes:
        self.timeouts.append(timeout_s)
        raise ValueError("provider bug")


def test_a_provider_bug_is_a_502_and_counts_against_its_circuit() -> None:
    router, fake = scripted_router(BrokenProvider(), max_attempts=1)
    breaker = router.deployments[0].breaker

    with pytest.raises(RouteFailed) as caught:
        router.complete("r", {"messages": []})

    assert caught.value.status_code == 502
    assert "ValueError: provider bug" in caught.value.message
    assert router.deployments[0].failures == 1
    assert breaker.state.value == "closed"  # one failure, threshold 5


def test_a_provider_bug_during_the_half_open_trial_reopens_the_circuit() -> None:
    router, fake = scripted_router(BrokenProvider(), max_attempts=1)
    breaker = router.deployments[0].breaker
    for _ in range(5):  # open it
        with pytest.raises(RouteFailed):
            router.complete("r", {"messages": []})
    fake.now += 31  # past the 30 s cooldown: the next request is the trial

    with pytest.raises(RouteFailed):
        router.complete("r", {"messages": []})

    assert breaker.state.value == "open"  # not stuck half-open with no trial to finish it
    fake.now += 31
    assert breaker.state.value == "half_open"


def test_a_deadline_spent_before_the_first_attempt_is_a_504_not_an_empty_answer() -> None:
    provider = ScriptedProvider()
    router, fake = scripted_router(provider, deadline_s=10)
    breaker = router.deployments[0].breaker
    allow = breaker.allow

    def slow_allow() -> bool:  # time runs out between the circuit check and the attempt
        fake.now += 11
        return allow()

    breaker.allow = slow_allow  # type: ignore[method-assign]

    with pytest.raises(RouteFailed) as caught:
        router.complete("r", {"messages": []})

    assert caught.value.status_code == 504
    assert provider.timeouts == []  # no attempt was made
