"""``retrying``, the one retry loop of the orchestrator's clients, on a fake clock and rng."""

from __future__ import annotations

import pytest

from shared.errors import BadGateway, BadRequest, RateLimited, UpstreamError, UpstreamTimeout
from shared.resilience import (
    AttemptFailed,
    Deadline,
    GaveUp,
    RetryPolicy,
    RetrySettings,
    retrying,
)
from tests.fakes.provider import FakeTime

pytestmark = pytest.mark.anyio


class Script:
    """An attempt that raises the scripted failures in turn, then answers ``"ok"``."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.numbers: list[int] = []

    async def __call__(self, number: int) -> str:
        self.numbers.append(number)
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def policy(attempts: int = 3, *, base: float = 1.0, cap: float = 30.0) -> RetryPolicy:
    """Jitter that always picks the ceiling, so pauses are 1, 2, 4... seconds."""
    settings = RetrySettings(max_attempts=attempts, base_delay_s=base, max_delay_s=cap)
    return RetryPolicy(settings, rng=lambda low, high: high)


async def test_retries_until_an_attempt_answers_pausing_with_backoff() -> None:
    time, attempt = FakeTime(), Script(BadGateway("down"), UpstreamTimeout("slow"))
    assert await retrying(attempt, policy(), sleep=time.sleep) == "ok"
    assert attempt.numbers == [1, 2, 3]
    assert time.slept == [1.0, 2.0]


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    time, last = FakeTime(), BadGateway("still down")
    attempt = Script(BadGateway("down"), last, BadGateway("never tried"))
    with pytest.raises(GaveUp) as caught:
        await retrying(attempt, policy(attempts=2), sleep=time.sleep)
    assert (caught.value.error, caught.value.attempts) == (last, 2)
    assert caught.value.__cause__ is last
    assert time.slept == [1.0]


async def test_a_failure_the_caller_calls_final_is_not_retried() -> None:
    final = AttemptFailed(BadGateway("the gateway said no more"), retry=False)
    time, attempt = FakeTime(), Script(final)
    with pytest.raises(GaveUp) as caught:
        await retrying(attempt, policy(), sleep=time.sleep)
    assert caught.value.error is final.error
    assert attempt.numbers == [1] and time.slept == []


async def test_any_other_exception_propagates_at_once() -> None:
    time, attempt = FakeTime(), Script(BadRequest("the caller's fault"))
    with pytest.raises(BadRequest):
        await retrying(attempt, policy(), sleep=time.sleep)
    assert attempt.numbers == [1] and time.slept == []


async def test_an_upstream_error_is_retried_as_its_class_says() -> None:
    final = UpstreamError("refused")  # the base class: not retryable
    time, attempt = FakeTime(), Script(final)
    with pytest.raises(GaveUp) as caught:
        await retrying(attempt, policy(), sleep=time.sleep)
    assert caught.value.attempts == 1


async def test_a_pause_that_would_outlast_the_deadline_is_not_taken() -> None:
    time = FakeTime()
    deadline = Deadline(2.5, time.clock)
    attempt = Script(BadGateway("a"), BadGateway("b"), BadGateway("c"))
    with pytest.raises(GaveUp) as caught:
        await retrying(attempt, policy(attempts=5), sleep=time.sleep, deadline=deadline)
    assert time.slept == [1.0]  # the next pause, 2 s, would end after the 1.5 s left
    assert caught.value.attempts == 2


async def test_retry_after_sets_the_pause_capped() -> None:
    time = FakeTime()
    attempt = Script(RateLimited("busy", retry_after=3.0), RateLimited("busy", retry_after=99))
    settings = RetrySettings(max_attempts=3, base_delay_s=1.0, max_retry_after_s=5.0)
    await retrying(attempt, RetryPolicy(settings), sleep=time.sleep)
    assert time.slept == [3.0, 5.0]


async def test_jitter_comes_from_the_injected_rng() -> None:
    drawn: list[tuple[float, float]] = []

    def rng(low: float, high: float) -> float:
        drawn.append((low, high))
        return 0.125

    time = FakeTime()
    settings = RetrySettings(max_attempts=3, base_delay_s=1.0, max_delay_s=1.5)
    await retrying(
        Script(BadGateway("a"), BadGateway("b")), RetryPolicy(settings, rng), sleep=time.sleep
    )
    assert drawn == [(0.0, 1.0), (0.0, 1.5)]  # full jitter up to the capped ceiling
    assert time.slept == [0.125, 0.125]


async def test_a_per_call_limit_replaces_the_policys() -> None:
    attempt = Script(BadGateway("a"), BadGateway("b"), BadGateway("c"))
    with pytest.raises(GaveUp) as caught:
        await retrying(attempt, policy(attempts=5), sleep=FakeTime().sleep, max_attempts=2)
    assert attempt.numbers == [1, 2]
    assert caught.value.attempts == 2


async def test_on_failure_hears_each_failure_with_the_pause_decided() -> None:
    heard: list[tuple[int, str, float | None]] = []
    attempt = Script(BadGateway("a"), BadGateway("b"), BadGateway("c"))
    with pytest.raises(GaveUp):
        await retrying(
            attempt,
            policy(attempts=3),
            sleep=FakeTime().sleep,
            on_failure=lambda number, error, pause: heard.append((number, error.message, pause)),
        )
    assert heard == [(1, "a", 1.0), (2, "b", 2.0), (3, "c", None)]


async def test_an_attempt_that_makes_no_call_ends_the_retries_itself() -> None:
    earlier = BadGateway("the last real failure")

    async def attempt(number: int) -> str:
        if number == 1:
            raise earlier
        raise GaveUp(earlier, number - 1)  # e.g. its circuit opened during the pause

    time = FakeTime()
    with pytest.raises(GaveUp) as caught:
        await retrying(attempt, policy(), sleep=time.sleep)
    assert caught.value.error is earlier and caught.value.attempts == 1
    assert time.slept == [1.0]
