"""Retry timing, the per-request deadline, and the per-deployment circuit breaker."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from functions.gateway.config import CircuitSettings, RetrySettings
from shared.errors import UpstreamError

Clock = Callable[[], float]


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


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive retryable failures; after ``cooldown_s``
    lets exactly one trial request through, which closes it on success or reopens it."""

    def __init__(self, settings: CircuitSettings, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0

    @property
    def state(self) -> CircuitState:
        with self._lock:
            if self._state is CircuitState.OPEN and self._cooled_down():
                return CircuitState.HALF_OPEN
            return self._state

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._settings.cooldown_s

    def allow(self) -> bool:
        with self._lock:
            if self._state is CircuitState.CLOSED:
                return True
            if self._state is CircuitState.OPEN and self._cooled_down():
                self._state = CircuitState.HALF_OPEN  # this caller carries the trial
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if (
                self._state is CircuitState.HALF_OPEN
                or self._failures >= self._settings.failure_threshold
            ):
                self._state = CircuitState.OPEN
                self._opened_at = self._clock()

    def release(self) -> None:
        """A call ended with the caller's error (e.g. a 400): the upstream answered, so it is
        up. Like a success, this closes a half-open circuit and clears the failure count; an
        open circuit (opened meanwhile by other requests) stays open."""
        with self._lock:
            if self._state is not CircuitState.OPEN:
                self._state = CircuitState.CLOSED
                self._failures = 0
