"""Routes a request along its chain of deployments: retries, fallback, deadline, circuits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from functions.gateway import metrics
from functions.gateway.config import Deployment, GatewayConfig
from functions.gateway.providers.base import Provider
from functions.gateway.streaming import guarded, stream_refusal
from shared.errors import (
    BadRequest,
    ServiceError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    bad_gateway,
)
from shared.logs import get_logger
from shared.resilience import CircuitBreaker, Deadline, RetryPolicy

log = get_logger("gateway.router")
T = TypeVar("T")


@dataclass
class Outcome:
    """What happened on the way to an answer; becomes the x-gateway-* response headers."""

    provider: str = "none"
    deployment: str = "none"
    attempts: int = 0
    fallbacks: int = 0

    def headers(self) -> dict[str, str]:
        return {
            "x-gateway-provider": self.provider,
            "x-gateway-deployment": self.deployment,
            "x-gateway-attempts": str(self.attempts),
            "x-gateway-fallbacks": str(self.fallbacks),
        }


class RouteFailed(ServiceError):
    """Carries the upstream error and the outcome so far, so error responses have headers."""

    def __init__(self, error: ServiceError, outcome: Outcome) -> None:
        super().__init__(
            error.message,
            status_code=error.status_code,
            error_type=error.error_type,
            headers={**error.headers, **outcome.headers()},
        )
        self.error = error
        self.outcome = outcome


@dataclass
class DeploymentState:
    """A deployment with its provider, circuit breaker and running statistics."""

    deployment: Deployment
    provider: Provider
    breaker: CircuitBreaker
    successes: int = 0
    failures: int = 0
    last_error: str | None = None
    last_latency_ms: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def succeeded(self, seconds: float) -> None:
        self.breaker.record_success()
        metrics.UPSTREAM_ATTEMPTS.labels(self.deployment.name, "ok").inc()
        metrics.UPSTREAM_LATENCY.labels(self.deployment.name).observe(seconds)
        with self._lock:
            self.successes += 1
            self.last_latency_ms = round(seconds * 1000, 2)

    def failed(self, error: UpstreamError) -> None:
        if error.retryable:
            self.breaker.record_failure()
        else:
            self.breaker.release()
        metrics.UPSTREAM_ATTEMPTS.labels(self.deployment.name, type(error).__name__).inc()
        with self._lock:
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error.message}"

    def status(self) -> dict[str, Any]:
        return {
            "name": self.deployment.name,
            "provider": self.deployment.provider,
            "model": self.deployment.model,
            "configured": self.provider.configured(),
            "circuit": self.breaker.state.value,
            "successes": self.successes,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_latency_ms": self.last_latency_ms,
        }


class Router:
    def __init__(
        self,
        config: GatewayConfig,
        providers: dict[str, Provider],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._clock = clock
        self._policy = policy or RetryPolicy(config.retry)
        # A deployment is shared by every route that lists it: one circuit per deployment.
        states: dict[Deployment, DeploymentState] = {}
        self.routes: dict[str, list[DeploymentState]] = {}
        for route, chain in config.routes.items():
            self.routes[route] = [
                states.setdefault(
                    d,
                    DeploymentState(
                        d,
                        providers.get(d.endpoint) or providers[d.provider],
                        CircuitBreaker(config.circuit, clock),
                    ),
                )
                for d in chain
            ]
        self.deployments = list(states.values())

    def chain(self, route: str) -> list[DeploymentState]:
        chain = self.routes.get(route)
        if chain is None:
            known = ", ".join(sorted(self.routes))
            raise BadRequest(f"model: {route!r} is not a route of this gateway; routes: {known}")
        return chain

    def complete(self, route: str, body: dict[str, Any]) -> tuple[bytes, Outcome]:
        def call(state: DeploymentState, timeout: float) -> bytes:
            return state.provider.complete(body, state.deployment.model, timeout)

        return self._run(route, call)

    def stream(self, route: str, body: dict[str, Any]) -> tuple[Iterator[bytes], Outcome]:
        """The first chunk is fetched inside the retry loop: failover happens only before it."""

        def call(state: DeploymentState, timeout: float) -> Iterator[bytes]:
            chunks = state.provider.stream(body, state.deployment.model, timeout)
            first = next(chunks, b"")
            refusal = stream_refusal(first, state.deployment.provider)
            if refusal is not None:  # nothing sent to the client yet: fail over like any error
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
                raise refusal
            return guarded(first, chunks, state.deployment.provider)

        return self._run(route, call)

    def _run(self, route: str, call: Callable[[DeploymentState, float], T]) -> tuple[T, Outcome]:
        chain = self.chain(route)
        deadline = Deadline(self.config.deadline_s, self._clock)
        outcome = Outcome()
        last_error: ServiceError | None = None
        for state in chain:
            if not state.provider.configured():
                continue
            if not state.breaker.allow():
                last_error = UpstreamUnavailable(f"{state.deployment.name}: circuit open")
                continue
            if outcome.attempts:
                outcome.fallbacks += 1
                metrics.FALLBACKS.labels(route).inc()
            result, error = self._attempts(state, call, deadline, outcome)
            if error is None:
                outcome.provider = state.deployment.provider
                outcome.deployment = state.deployment.name
                return result, outcome  # type: ignore[return-value]
            if not error.retryable:
                # The answer is this deployment's refusal: say who gave it.
                outcome.provider = state.deployment.provider
                outcome.deployment = state.deployment.name
                raise RouteFailed(error, outcome)
            last_error = error
            if deadline.remaining() <= 0:
                break
        raise RouteFailed(self._final_error(route, deadline, last_error), outcome)

    def _attempts(
        self,
        state: DeploymentState,
        call: Callable[[DeploymentState, float], T],
        deadline: Deadline,
        outcome: Outcome,
    ) -> tuple[T | None, UpstreamError | None]:
        error: UpstreamError = UpstreamTimeout(
            f"{state.deployment.name}: no time left in the deadline for an attempt"
        )
        max_attempts = state.deployment.max_attempts or self.config.retry.max_attempts
        for attempt in range(1, max_attempts + 1):
            remaining = deadline.remaining()
            if remaining <= 0:
                break
            outcome.attempts += 1
            started = self._clock()
            try:
                result = call(state, min(state.deployment.timeout_s, remaining))
            except UpstreamError as exc:
                error = exc
            except ServiceError:
                state.breaker.release()  # the request's fault, not the deployment's
                raise
            except Exception as exc:  # a provider bug must not leave its circuit stuck
                log.exception("provider failed", extra={"deployment": state.deployment.name})
                error = bad_gateway(f"{state.deployment.name} failed: {type(exc).__name__}: {exc}")
            else:
                elapsed = self._clock() - started
                state.succeeded(elapsed)
                log.info(
                    "upstream attempt ok",
                    extra={
                        "deployment": state.deployment.name,
                        "attempt": attempt,
                        "latency_ms": round(elapsed * 1000, 2),
                    },
                )
                return result, None
            state.failed(error)
            wait = self._policy.delay(attempt, error)
            retry = (
                error.retryable
                and attempt < max_attempts
                and not self._policy.wants_longer_than(error)
                and wait < deadline.remaining()
            )
            self._log_failure(state, attempt, error, wait if retry else None)
            if not retry:
                break
            self._sleep(wait)
            if not state.breaker.allow():
                break
        return None, error

    def _final_error(
        self, route: str, deadline: Deadline, last_error: ServiceError | None
    ) -> ServiceError:
        if deadline.remaining() <= 0:
            reason = f"; last error: {last_error.message}" if last_error else ""
            return ServiceError(
                f"route {route!r}: no answer within the {self.config.deadline_s:g} s deadline"
                + reason,
                status_code=504,
                error_type="timeout_error",
            )
        if last_error is None:
            return UpstreamUnavailable(
                f"route {route!r}: no provider in its chain is configured", status_code=503
            )
        return last_error

    @staticmethod
    def _log_failure(
        state: DeploymentState, attempt: int, error: UpstreamError, wait: float | None
    ) -> None:
        """``wait`` is the pause before the next attempt; None when this deployment is done."""
        step = "retry" if wait is not None else "fall back" if error.retryable else "give up"
        log.warning(
            "upstream attempt failed",
            extra={
                "deployment": state.deployment.name,
                "attempt": attempt,
                "error_class": type(error).__name__,
                "upstream_status": error.upstream_status,
                "retryable": error.retryable,
                "next": step,
                "wait_s": round(wait, 3) if wait is not None else None,
            },
        )
