"""The router's plumbing with the scripted provider, a fake clock and a fake sleep: which waits
it takes, which timeouts it gives each attempt, when it gives up, what its circuits remember.
No HTTP, no real sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from functions.gateway.config import GatewayConfig
from functions.gateway.providers.base import Provider
from functions.gateway.router import Router
from shared.errors import (
    BadGateway,
    CredentialsRefused,
    Overloaded,
    RateLimited,
    ServiceError,
    UpstreamRejected,
)
from shared.resilience import Admission, RetryPolicy
from tests.fakes.provider import FakeTime, ScriptedProvider
from tests.gateway.support import ANTHROPIC, BEDROCK, LOCAL

BODY: dict[str, Any] = {"messages": []}


TO_LOCAL = {"deployments": [ANTHROPIC, LOCAL], "fallback_to_local": True}
"""A route whose outage the local model may answer."""


def scripted_router(
    provider: ScriptedProvider, *, chain: list[Any] | dict[str, Any] | None = None, **settings: Any
) -> tuple[Router, FakeTime]:
    config = GatewayConfig.model_validate(
        {
            "routes": {"r": chain or [ANTHROPIC]},
            "deadline_s": settings.pop("deadline_s", 60),
            "retry": {"max_attempts": 4, "base_delay_s": 1, "max_delay_s": 3, **settings},
        }
    )
    fake = FakeTime()
    # The rng returns the ceiling of the jitter range, so the backoff is visible exactly.
    policy = RetryPolicy(config.retry, rng=lambda low, high: high)
    providers: dict[str, Provider] = {
        "anthropic": provider,
        "local": ScriptedProvider(name="local"),
    }
    router = Router(config, providers, sleep=fake.sleep, clock=fake.clock, policy=policy)
    return router, fake


def complete(router: Router) -> Any:
    return asyncio.run(router.complete("r", BODY))


def failure(router: Router) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        complete(router)
    return caught.value


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    provider = ScriptedProvider(Overloaded("busy"), Overloaded("busy"), Overloaded("busy"))
    router, fake = scripted_router(provider)

    _, result = complete(router)

    assert fake.slept == [1, 2, 3]  # base 1 s doubling, capped at max_delay_s 3
    assert result.attempts == 4


def test_retry_after_replaces_the_backoff() -> None:
    provider = ScriptedProvider(RateLimited("slow down", retry_after=7.5))
    router, fake = scripted_router(provider, max_retry_after_s=10)

    complete(router)

    assert fake.slept == [7.5]


def test_attempt_timeouts_shrink_with_the_deadline() -> None:
    provider = ScriptedProvider(Overloaded("busy"), Overloaded("busy"))
    router, fake = scripted_router(provider, deadline_s=4)

    complete(router)

    # Deployment timeout is 3 s; after sleeping 1 s then 2 s, only 1 s of the deadline is left.
    assert provider.timeouts == [3, 3, 1]


def test_no_sleep_that_would_outlive_the_deadline() -> None:
    provider = ScriptedProvider(RateLimited("slow down", retry_after=5))
    router, fake = scripted_router(provider, deadline_s=4, max_retry_after_s=10)

    error = failure(router)

    assert fake.slept == []
    assert error.status_code == 429
    assert error.headers["x-gateway-attempts"] == "1"


def test_rejected_request_is_not_retried() -> None:
    provider = ScriptedProvider(UpstreamRejected("bad", upstream_status=400))
    router, fake = scripted_router(provider)

    assert failure(router).status_code == 400
    assert fake.slept == [] and len(provider.calls) == 1


def test_deployment_listed_by_two_routes_shares_one_circuit() -> None:
    config = GatewayConfig.model_validate({"routes": {"a": [ANTHROPIC, BEDROCK], "b": [ANTHROPIC]}})
    router = Router(config, {"anthropic": ScriptedProvider(), "bedrock": ScriptedProvider()})

    assert router.chain("a")[0] is router.chain("b")[0]
    assert len(router.deployments) == 2


def test_a_provider_bug_falls_through_at_once_and_spares_the_circuit() -> None:
    bugs = [ValueError("provider bug") for _ in range(10)]
    router, fake = scripted_router(ScriptedProvider(*bugs), chain=TO_LOCAL)
    state = router.deployments[0]

    for _ in range(10):  # far past the failure threshold of 5
        _, outcome = complete(router)
        assert (outcome.provider, outcome.attempts) == ("local", 2)  # never retried

    assert fake.slept == []
    assert state.breaker.state.value == "closed"  # a bug of ours says nothing of the upstream
    assert state.failures == 10 and "ProviderBug" in (state.last_error or "")


def test_a_provider_bug_alone_is_a_502_without_its_details() -> None:
    router, _ = scripted_router(ScriptedProvider(ValueError("secret internals")))

    error = failure(router)

    assert (error.status_code, type(error).__name__) == (502, "ProviderBug")
    assert "ValueError" in error.message and "secret internals" not in error.message


def open_circuit(router: Router, fake: FakeTime) -> None:
    breaker = router.deployments[0].breaker
    for _ in range(5):
        breaker.record_failure()
    assert breaker.state.value == "open"
    fake.advance(31)  # past the 30 s cool-down: the next request carries the trial
    assert breaker.state.value == "half_open"


def test_a_failed_trial_opens_the_circuit_for_a_whole_cooldown_again() -> None:
    provider = ScriptedProvider(BadGateway("anthropic answered 500"))
    router, fake = scripted_router(provider, chain=TO_LOCAL, max_attempts=1)
    open_circuit(router, fake)
    breaker = router.deployments[0].breaker

    _, trial = complete(router)
    fake.advance(29)  # not yet a whole cool-down after the failed trial
    _, skipped = complete(router)

    assert (trial.provider, trial.attempts) == ("local", 2)
    assert (skipped.provider, skipped.attempts) == ("local", 1)
    assert len(provider.calls) == 1  # the one trial only
    fake.advance(2)
    assert breaker.state.value == "half_open"


def test_a_provider_bug_during_the_trial_hands_the_trial_back() -> None:
    provider = ScriptedProvider(ValueError("bug"))
    router, fake = scripted_router(provider)
    open_circuit(router, fake)

    failure(router)
    _, outcome = complete(router)  # the next caller may carry the trial: not stuck

    assert outcome.provider == "anthropic"
    assert router.deployments[0].breaker.state.value == "closed"


def test_a_trial_whose_deadline_runs_out_before_the_call_gives_its_slot_back() -> None:
    provider = ScriptedProvider()
    router, fake = scripted_router(provider, deadline_s=10)
    open_circuit(router, fake)
    breaker = router.deployments[0].breaker
    allow = breaker.allow

    def slow_allow() -> Admission:  # time runs out between the circuit check and the attempt
        fake.advance(11)
        return allow()

    breaker.allow = slow_allow  # type: ignore[method-assign]
    error = failure(router)
    breaker.allow = allow  # type: ignore[method-assign]

    assert error.status_code == 504
    assert provider.calls == []  # no attempt was made
    complete(router)  # before the fix, "circuit open" for the life of the worker
    assert breaker.state.value == "closed"


def test_a_cancelled_trial_gives_its_slot_back() -> None:
    router, fake = scripted_router(ScriptedProvider())
    open_circuit(router, fake)
    breaker = router.deployments[0].breaker

    async def hang(call: Any) -> bytes:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def cancelled_request() -> None:
        task = asyncio.create_task(router.complete("r", BODY))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    provider = router.deployments[0].provider
    original = provider.complete
    provider.complete = hang  # type: ignore[method-assign]
    asyncio.run(cancelled_request())
    provider.complete = original  # type: ignore[method-assign]

    assert breaker.allow() is Admission.TRIAL  # the next caller carries the trial


def test_a_trial_that_never_reports_expires() -> None:
    router, fake = scripted_router(ScriptedProvider())
    open_circuit(router, fake)
    breaker = router.deployments[0].breaker

    assert breaker.allow() is Admission.TRIAL  # taken, and then lost without a word
    assert not breaker.allow()
    fake.advance(121)  # trial_timeout_s

    assert breaker.allow() is Admission.TRIAL


def test_refused_credentials_open_the_circuit_and_fall_back() -> None:
    provider = ScriptedProvider(CredentialsRefused("anthropic: invalid x-api-key"))
    router, fake = scripted_router(provider, chain=TO_LOCAL)

    _, outcome = complete(router)
    _, again = complete(router)

    assert (outcome.provider, outcome.attempts, outcome.fallbacks) == ("local", 2, 1)
    assert again.attempts == 1  # the refused deployment is skipped while its circuit is open
    assert router.deployments[0].breaker.state.value == "open"


def test_errors_carry_the_outcome_headers() -> None:
    router, _ = scripted_router(ScriptedProvider(*[BadGateway("down") for _ in range(4)]))

    error = failure(router)

    assert error.status_code == 502
    assert error.headers["x-gateway-attempts"] == "4"
    assert error.headers["x-gateway-deployment"] == "none"


def test_a_real_failure_is_not_hidden_behind_the_next_deployments_open_circuit() -> None:
    provider = ScriptedProvider(*[Overloaded("anthropic: overloaded for real") for _ in range(4)])
    router, fake = scripted_router(provider, chain=TO_LOCAL)
    local = router.deployments[1].breaker
    for _ in range(5):
        local.record_failure()
    assert local.state.value == "open"

    error = failure(router)

    assert (error.status_code, error.message) == (529, "anthropic: overloaded for real")
    assert error.headers["x-gateway-attempts"] == "4"
    for _ in range(5):
        router.deployments[0].breaker.record_failure()
    open_circuit_only = failure(router)  # every circuit open: nothing tried, nothing else to say
    assert (open_circuit_only.status_code, type(open_circuit_only).__name__) == (503, "CircuitOpen")
    assert "retry-after" in open_circuit_only.response_headers()
