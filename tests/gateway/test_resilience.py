"""RetryPolicy, Deadline and CircuitBreaker on their own, with a fake clock and rng: no sleeps."""

from __future__ import annotations

from typing import Any, cast

import pytest

from shared.errors import Overloaded, RateLimited, UpstreamUnavailable
from shared.resilience import (
    CircuitBreaker,
    CircuitSettings,
    CircuitState,
    Deadline,
    RetryPolicy,
    RetrySettings,
)


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingRng:
    """Returns a fixed fraction of the range it is asked for, and remembers the ranges."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.ranges: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.ranges.append((low, high))
        return low + (high - low) * self.fraction


# -- RetryPolicy -------------------------------------------------------------------------------


def policy(rng: RecordingRng, **settings: float) -> RetryPolicy:
    defaults: dict[str, Any] = {"base_delay_s": 0.5, "max_delay_s": 3.0, "max_retry_after_s": 10.0}
    return RetryPolicy(RetrySettings(**{**defaults, **settings}), rng=rng)


def test_backoff_is_full_jitter_over_an_exponential_ceiling() -> None:
    rng = RecordingRng(fraction=0.5)
    retry = policy(rng)

    delays = [retry.delay(attempt, Overloaded("busy")) for attempt in (1, 2, 3, 4, 5)]

    assert rng.ranges == [(0.0, 0.5), (0.0, 1.0), (0.0, 2.0), (0.0, 3.0), (0.0, 3.0)]
    assert delays == [0.25, 0.5, 1.0, 1.5, 1.5]


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_backoff_stays_within_its_range(fraction: float) -> None:
    retry = policy(RecordingRng(fraction))

    assert 0.0 <= retry.delay(2, UpstreamUnavailable("down")) <= 1.0


def test_retry_after_wins_over_backoff() -> None:
    rng = RecordingRng(fraction=1.0)
    retry = policy(rng)

    assert retry.delay(1, RateLimited("slow down", retry_after=4.0)) == 4.0
    assert retry.delay(1, RateLimited("slow down", retry_after=0.0)) == 0.0
    assert rng.ranges == []  # no jitter when the upstream said how long


def test_retry_after_is_capped_and_flagged_when_too_long() -> None:
    retry = policy(RecordingRng(1.0), max_retry_after_s=10.0)
    patient = RateLimited("slow down", retry_after=9.0)
    impatient = RateLimited("slow down", retry_after=60.0)

    assert retry.delay(1, impatient) == 10.0
    assert retry.wants_longer_than(impatient)
    assert not retry.wants_longer_than(patient)
    assert not retry.wants_longer_than(Overloaded("busy"))


# -- Deadline ----------------------------------------------------------------------------------


def test_deadline_counts_down_from_its_start() -> None:
    clock = FakeClock()
    deadline = Deadline(2.0, clock)

    assert deadline.remaining() == 2.0
    clock.advance(1.5)
    assert deadline.remaining() == pytest.approx(0.5)
    clock.advance(1.0)
    assert deadline.remaining() == pytest.approx(-0.5)


# -- CircuitBreaker ----------------------------------------------------------------------------


def breaker(clock: FakeClock, threshold: int = 3, cooldown_s: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(
        CircuitSettings(failure_threshold=threshold, cooldown_s=cooldown_s), clock
    )


def test_opens_after_threshold_consecutive_failures() -> None:
    circuit = breaker(FakeClock(), threshold=3)

    for _ in range(2):
        circuit.record_failure()
        assert circuit.state is CircuitState.CLOSED and circuit.allow()
    circuit.record_failure()

    assert circuit.state is CircuitState.OPEN
    assert not circuit.allow()


def test_a_success_resets_the_failure_count() -> None:
    circuit = breaker(FakeClock(), threshold=3)

    for _ in range(2):
        circuit.record_failure()
    circuit.record_success()
    for _ in range(2):
        circuit.record_failure()

    assert circuit.state is CircuitState.CLOSED


def test_after_cooldown_exactly_one_trial_goes_through() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cooldown_s=10.0)
    circuit.record_failure()

    clock.advance(9.9)
    assert circuit.state is CircuitState.OPEN and not circuit.allow()
    clock.advance(0.1)
    # mypy keeps the OPEN it read above; the property moves with the clock.
    assert cast(CircuitState, circuit.state) is CircuitState.HALF_OPEN
    assert circuit.allow()  # the trial
    assert not circuit.allow()  # everyone else waits for its verdict


def test_successful_trial_closes_the_circuit() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=2, cooldown_s=5.0)
    circuit.record_failure()
    circuit.record_failure()
    clock.advance(5.0)
    assert circuit.allow()

    circuit.record_success()

    assert circuit.state is CircuitState.CLOSED
    assert circuit.allow() and circuit.allow()
    circuit.record_failure()  # the count started again from zero
    assert circuit.state is CircuitState.CLOSED


def test_failed_trial_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=3, cooldown_s=5.0)
    for _ in range(3):
        circuit.record_failure()
    clock.advance(5.0)
    assert circuit.allow()

    circuit.record_failure()  # one failure is enough while half open

    assert circuit.state is CircuitState.OPEN
    clock.advance(4.9)
    assert not circuit.allow()
    clock.advance(0.1)
    assert circuit.allow()


def test_trial_ending_in_a_client_error_releases_the_circuit() -> None:
    clock = FakeClock()
    circuit = breaker(clock, threshold=1, cooldown_s=1.0)
    circuit.record_failure()
    clock.advance(1.0)
    assert circuit.allow()

    circuit.release()  # the upstream answered (a 400): it is reachable again

    assert circuit.state is CircuitState.CLOSED


def test_release_does_not_close_an_open_circuit() -> None:
    circuit = breaker(FakeClock(), threshold=1)
    circuit.record_failure()

    circuit.release()

    assert circuit.state is CircuitState.OPEN
