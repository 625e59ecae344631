"""Retry timing, the per-request deadline, and the per-dependency circuit breaker.

Generic: the gateway uses them for model providers, the orchestrator for the gateway and the
agents. Everything here is single-threaded by design (one asyncio event loop per worker
process), with the clock and the random source injected so tests can drive time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import UpstreamError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class RetrySettings(BaseModel):
    """Retries of one dependency before the caller gives up or falls back to the next."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=10)
    base_delay_s: float = Field(default=0.25, ge=0)
    max_delay_s: float = Field(default=8.0, ge=0)
    max_retry_after_s: float = Field(default=20.0, ge=0)
    """An upstream's ``retry-after`` is honoured up to this; longer waits fall back instead."""


class CircuitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    """Consecutive retryable failures that open a dependency's circuit."""
    cooldown_s: float = Field(default=30.0, gt=0)
    """How long an open circuit skips its dependency before one trial request goes through."""
    trial_timeout_s: float = Field(default=120.0, gt=0)
    """A trial that has reported nothing after this long is presumed lost, and another
    caller may carry the next one."""


@dataclass
class Deadline:
    """One budget for a whole request: every attempt and fallback draws on it."""

    seconds: float
    clock: Clock = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.started)


@dataclass
class RetryPolicy:
    settings: RetrySettings
    rng: Callable[[float, float], float] = random.uniform

    def delay(self, attempt: int, error: UpstreamError) -> float:
        """Seconds to wait before attempt ``attempt + 1``: the upstream's ``retry-after`` when
        it gave one (capped), else exponential backoff with full jitter."""
        if error.retry_after is not None:
            return min(error.retry_after, self.settings.max_retry_after_s)
        ceiling = min(self.settings.max_delay_s, self.settings.base_delay_s * 2 ** (attempt - 1))
        return self.rng(0.0, ceiling)

    def wants_longer_than(self, error: UpstreamError) -> bool:
        """The upstream asks for a longer pause than we honour: better to fall back now."""
        return error.retry_after is not None and error.retry_after > self.settings.max_retry_after_s


class AttemptFailed(Exception):
    """One attempt failed with ``error``; ``retry`` says whether another could succeed (the
    caller's verdict, which may differ from ``error.retryable``)."""

    def __init__(self, error: UpstreamError, *, retry: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry = retry


class GaveUp(Exception):
    """``retrying`` stopped after ``attempts`` attempts; ``error`` is the last one's."""

    def __init__(self, error: UpstreamError, attempts: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = attempts


OnFailure = Callable[[int, UpstreamError, float | None], None]
"""Told of each failed attempt: its number, its error, and the pause before the next one
(None when the retries stop here)."""


async def retrying(
    attempt: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    deadline: Deadline | None = None,
    max_attempts: int | None = None,
    on_failure: OnFailure | None = None,
) -> T:
    """``attempt(1)``, ``attempt(2)``... until one returns, with ``policy``'s pause between.

    An attempt fails by raising ``AttemptFailed`` (or an ``UpstreamError``, retried when its
    class says so); anything else propagates at once. The retries stop, raising ``GaveUp``
    from the last error, when the attempt says no retry, ``max_attempts`` (the policy's by
    default) is reached, or the pause would not end before ``deadline``. ``on_failure`` hears
    of every failure with that decision, before the pause.

    Circuits stay with the caller: an attempt may consult one before it calls and record the
    verdict after. An attempt that makes no call (its circuit opened during the pause, no
    time is left) ends the retries by raising ``GaveUp`` itself.
    """
    limit = max_attempts or policy.settings.max_attempts
    number = 0
    while True:
        number += 1
        try:
            return await attempt(number)
        except AttemptFailed as exc:
            failure = exc
        except UpstreamError as exc:
            failure = AttemptFailed(exc, retry=exc.retryable)
        error = failure.error
        pause: float | None = None
        if failure.retry and number < limit:
            pause = policy.delay(number, error)
            if deadline is not None and pause >= deadline.remaining():
                pause = None
        if on_failure is not None:
            on_failure(number, error, pause)
        if pause is None:
            raise GaveUp(error, number) from error
        await sleep(pause)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(StrEnum):
    """What ``CircuitBreaker.allow`` decided; false only when the call must not go out."""

    DENIED = "denied"
    CALL = "call"
    TRIAL = "trial"
    """This caller carries the one trial of a half-open circuit: it must end with a verdict
    (``record_success``, ``record_failure``, ``release``) or hand it back (``abandon``)."""

    def __bool__(self) -> bool:
        return self is not Admission.DENIED


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive retryable failures; after ``cooldown_s``
    lets exactly one trial request through, which closes it on success or reopens it.

    A trial that ends without a verdict (the caller's deadline ran out before it called, or
    it was cancelled) hands its slot back with ``abandon()``; one that never reports at all
    expires after ``trial_timeout_s``, so a lost trial can never keep the circuit half-open.
    """

    def __init__(self, settings: CircuitSettings, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started: float | None = None

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._cooled_down():
            return CircuitState.HALF_OPEN
        return self._state

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._settings.cooldown_s

    def cooldown_left(self) -> float:
        """Seconds until an open circuit lets its next trial through; 0 when closed, cooled
        down, or half-open with a trial under way (whose verdict may come at any moment)."""
        if self._state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._settings.cooldown_s - self._clock())

    def _trial_lost(self) -> bool:
        started = self._trial_started
        return started is None or self._clock() - started >= self._settings.trial_timeout_s

    def allow(self) -> Admission:
        """Whether a call may go out now; in the half-open state only the one trial may."""
        if self._state is CircuitState.CLOSED:
            return Admission.CALL
        if (self._state is CircuitState.OPEN and self._cooled_down()) or (
            self._state is CircuitState.HALF_OPEN and self._trial_lost()
        ):
            self._state = CircuitState.HALF_OPEN  # this caller carries the trial
            self._trial_started = self._clock()
            return Admission.TRIAL
        return Admission.DENIED

    def record_success(self) -> None:
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._trial_started = None

    def record_failure(self) -> None:
        self._failures += 1
        if (
            self._state is CircuitState.HALF_OPEN
            or self._failures >= self._settings.failure_threshold
        ):
            self._state = CircuitState.OPEN
            self._opened_at = self._clock()
            self._trial_started = None

    def release(self) -> None:
        """A call ended with the caller's error (e.g. a 400): the upstream answered, so it is
        up. Like a success, this closes a half-open circuit and clears the failure count; an
        open circuit (opened meanwhile by other requests) stays open."""
        if self._state is not CircuitState.OPEN:
            self.record_success()

    def trip(self) -> None:
        """Open now, whatever the count: the dependency cannot serve anyone (e.g. it refused
        this service's credentials), so callers skip it until the cool-down is over."""
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._trial_started = None

    def abandon(self) -> None:
        """The caller was let through but made no call (or was cancelled before a verdict):
        a trial slot goes back, so the next caller after the cool-down carries the trial."""
        if self._state is CircuitState.HALF_OPEN and self._trial_started is not None:
            self._state = CircuitState.OPEN
            self._trial_started = None
            # Keep the old opening time: the cool-down is over, the next caller may try.
