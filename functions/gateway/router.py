"""Routes a request along its chain of deployments: retries, fallback, deadline, circuits.

Everything runs on the worker's one event loop, so the per-deployment state needs no locks.
Backoff is an ``asyncio.sleep`` that holds no thread; a client that goes away cancels the
request's task, and the cancellation reaches the provider call and closes its connection.

A request's ``model`` is a route name or a model id that an alias maps to a route. A route's
``local`` deployments answer only when none of its real providers is configured, or when the
route opts in (``fallback_to_local``): an outage is never answered by the rule-based model
behind the caller's back. An error answered after the gateway's own attempts says
``x-should-retry: false``, so that the client's SDK does not multiply them by its own retries.

Upstream text is untrusted: every provider error is scrubbed of credentials (``shared.redact``)
where it is caught here, before it becomes a log line, ``last_error`` or an answer, and so are
the upstream headers passed back and a stream's ``error`` events. When every deployment was
skipped for an open circuit, the answer says so without their last upstream message (another
caller's), with how long the circuits stay open; a deployment that was tried and failed is
answered for with its own error instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from functions.gateway import metrics
from functions.gateway.config import Deployment, GatewayConfig, Route
from functions.gateway.observe import attempt_answered, attempt_attributes, attempt_failed
from functions.gateway.providers.base import Provider, ProviderCall, SentTimeout
from functions.gateway.streaming import guarded, stream_refusal
from shared import telemetry
from shared.errors import (
    SHOULD_RETRY,
    BadGateway,
    CircuitOpen,
    CredentialsRefused,
    NotConfigured,
    ServiceError,
    UpstreamError,
    UpstreamTimeout,
    retry_after_header,
)
from shared.logs import get_logger
from shared.redact import Redactor
from shared.resilience import (
    Admission,
    AttemptFailed,
    CircuitBreaker,
    Deadline,
    GaveUp,
    RetryPolicy,
    retrying,
)

log = get_logger("gateway.router")
T = TypeVar("T")
Attempt = Callable[["DeploymentState", ProviderCall], Awaitable[T]]


@dataclass
class Outcome:
    """What happened on the way to an answer; becomes the x-gateway-* response headers."""

    route: str = "none"
    provider: str = "none"
    deployment: str = "none"
    attempts: int = 0
    fallbacks: int = 0
    upstream: dict[str, str] = field(default_factory=dict)
    """The answering upstream's headers to pass back (``request-id``, rate-limit state)."""

    def headers(self) -> dict[str, str]:
        return {
            **self.upstream,
            "x-gateway-route": self.route,
            "x-gateway-provider": self.provider,
            "x-gateway-deployment": self.deployment,
            "x-gateway-attempts": str(self.attempts),
            "x-gateway-fallbacks": str(self.fallbacks),
        }


class ProviderBug(BadGateway):
    """A provider raised something outside the error tree: a bug of ours, not the upstream's.
    Never retried and never counted against the deployment's circuit."""

    retryable = False


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

    def succeeded(self, seconds: float) -> None:
        self.breaker.record_success()
        metrics.UPSTREAM_ATTEMPTS.labels(self.deployment.name, "ok").inc()
        metrics.UPSTREAM_LATENCY.labels(self.deployment.name).observe(seconds)
        self.successes += 1
        self.last_latency_ms = round(seconds * 1000, 2)

    def failed(self, error: UpstreamError) -> None:
        if isinstance(error, CredentialsRefused):
            self.breaker.trip()  # nobody's request can succeed with credentials it refuses
        elif isinstance(error, ProviderBug):
            self.breaker.abandon()  # no verdict on the upstream: the fault is ours
        elif error.retryable:
            self.breaker.record_failure()
        else:
            self.breaker.release()
        outcome = "provider_bug" if isinstance(error, ProviderBug) else type(error).__name__
        metrics.UPSTREAM_ATTEMPTS.labels(self.deployment.name, outcome).inc()
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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        policy: RetryPolicy | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        """``redactor``: what scrubs upstream errors (the credentials in ``os.environ`` by
        default)."""
        self.config = config
        self._sleep = sleep
        self._clock = clock
        self._policy = policy or RetryPolicy(config.retry)
        self._redact = redactor or Redactor.from_environ()
        # A deployment is shared by every route that lists it: one circuit per deployment.
        states: dict[Deployment, DeploymentState] = {}
        self.routes: dict[str, list[DeploymentState]] = {}
        for route, settings in config.routes.items():
            self.routes[route] = [
                states.setdefault(
                    d,
                    DeploymentState(
                        d,
                        providers.get(d.endpoint) or providers[d.provider],
                        CircuitBreaker(config.circuit, clock),
                    ),
                )
                for d in settings.deployments
            ]
        self.deployments = list(states.values())

    def resolve(self, model: str) -> str:
        """The route serving ``model`` (a route name or an aliased model id); an unknown model
        is a 404 ``not_found_error``, as Anthropic answers one."""
        route = self.config.route_for(model)
        if route is None:
            raise self.config.unknown_model(model)
        return route

    def chain(self, model: str) -> list[DeploymentState]:
        return self.routes[self.resolve(model)]

    def candidates(self, route: str) -> list[DeploymentState]:
        """The deployments of ``route`` that may be tried, in order: the configured ones, and
        ``local`` only when no real provider is configured or the route opts in."""
        settings: Route = self.config.routes[route]
        configured = [state for state in self.routes[route] if state.provider.configured()]
        if settings.fallback_to_local:
            return configured
        real = [state for state in configured if state.deployment.provider != "local"]
        return real or configured

    async def complete(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[bytes, Outcome]:
        async def attempt(state: DeploymentState, call: ProviderCall) -> bytes:
            answer = await state.provider.complete(call)
            attempt_answered(answer)
            return answer

        return await self._run(model, body, headers, attempt)

    async def count_tokens(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[dict[str, Any], Outcome]:
        """Counted by the route's first deployment that answers, with its retries."""

        async def attempt(state: DeploymentState, call: ProviderCall) -> dict[str, Any]:
            return await state.provider.count_tokens(call)

        return await self._run(model, body, headers, attempt)

    async def stream(
        self, model: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[AsyncIterator[bytes], Outcome]:
        """The first chunk is fetched inside the retry loop: failover happens only before it."""

        async def attempt(state: DeploymentState, call: ProviderCall) -> AsyncIterator[bytes]:
            chunks = await state.provider.stream(call)
            try:
                first = await anext(chunks, b"")
                refusal = stream_refusal(first, state.deployment.provider)
            except BaseException:
                await _close(chunks)
                raise
            if refusal is not None:  # nothing sent to the client yet: fail over like any error
                await _close(chunks)
                raise refusal
            return guarded(first, chunks, state.deployment.provider, self._redact)

        return await self._run(model, body, headers, attempt)

    async def _run(
        self,
        model: str,
        body: dict[str, Any],
        headers: dict[str, str] | None,
        attempt: Attempt[T],
    ) -> tuple[T, Outcome]:
        route = self.resolve(model)
        settings = self.config.routes[route]
        deadline = Deadline(self.config.deadline_s, self._clock)
        outcome = Outcome(route=route)
        last_error: ServiceError | None = None
        skipped: CircuitOpen | None = None  # the open circuits met, if no deployment answered
        for state in self.candidates(route):
            admission = state.breaker.allow()
            if not admission:
                skipped = _circuit_open(state, skipped)
                telemetry.event(
                    "circuit_open", {"agentorch.gateway.deployment": state.deployment.name}
                )
                continue
            if outcome.attempts:
                outcome.fallbacks += 1
                metrics.FALLBACKS.labels(route).inc()
                telemetry.event("fallback", {"agentorch.gateway.deployment": state.deployment.name})
            calls = _Calls(body, headers or {}, state.deployment.model, settings)
            result, error = await self._attempts(
                state, admission, attempt, calls, deadline, outcome
            )
            if error is None:
                outcome.provider = state.deployment.provider
                outcome.deployment = state.deployment.name
                # Headers are upstream text too, relayed to the caller (cheap when clean).
                outcome.upstream = self._redact.headers(calls.last_received())
                return result, outcome  # type: ignore[return-value]
            if not calls.falls_back(error):
                # The answer is this deployment's refusal: say who gave it.
                outcome.provider = state.deployment.provider
                outcome.deployment = state.deployment.name
                raise _with_outcome(error, outcome)
            last_error = error
            if deadline.remaining() <= 0:
                break
        # A real upstream error says more than another deployment's open circuit.
        final = self._final_error(route, deadline, last_error or skipped)
        raise _with_outcome(final, outcome)

    async def _attempts(
        self,
        state: DeploymentState,
        admission: Admission,
        attempt: Attempt[T],
        calls: _Calls,
        deadline: Deadline,
        outcome: Outcome,
    ) -> tuple[T | None, UpstreamError | None]:
        """Up to ``max_attempts`` calls to one deployment; the deployment's breaker always gets
        a verdict, or its trial back when no call reached one (no time left, cancellation)."""
        name = state.deployment.name
        verdict = False
        last: UpstreamError | None = None

        def stop(number: int) -> GaveUp:
            """No call this time: the last failure stands (none yet: the deadline ran out)."""
            error = last or UpstreamTimeout(f"{name}: no time left in the deadline")
            return GaveUp(error, number - 1)

        async def once(number: int) -> T:
            nonlocal admission, verdict, last
            if number > 1:
                # Other requests may have opened the circuit during the pause.
                admission = state.breaker.allow()
                verdict = not admission  # nothing holds a trial: nothing to hand back
                if not admission:
                    raise stop(number)
            remaining = deadline.remaining()
            if remaining <= 0:
                raise stop(number)
            outcome.attempts += 1
            started = self._clock()
            with telemetry.span(
                f"chat {state.deployment.model}",
                kind="client",
                attributes=attempt_attributes(state.deployment, number),
            ) as span:
                try:
                    call = calls.make(min(state.deployment.timeout_s, remaining))
                    result = await attempt(state, call)
                except UpstreamError as exc:
                    self._redact.scrub(exc)  # before anything logs, keeps or answers it
                    error: UpstreamError = exc
                except ServiceError:
                    state.breaker.release()  # the request's fault, not the deployment's
                    verdict = True
                    raise
                except Exception as exc:
                    log.exception("provider bug", extra={"deployment": name})
                    error = ProviderBug(f"{name} failed: {type(exc).__name__}")
                else:
                    verdict = True
                    _succeeded(state, number, self._clock() - started)
                    return result
                state.failed(error)
                verdict = not isinstance(error, ProviderBug)
                last = error
                retry = calls.retries(error) and not self._policy.wants_longer_than(error)
                attempt_failed(span, error, retry, state.breaker.state.value)
                raise AttemptFailed(error, retry=retry)

        max_attempts = state.deployment.max_attempts or self.config.retry.max_attempts
        try:
            result = await retrying(
                once,
                self._policy,
                sleep=self._sleep,
                deadline=deadline,
                max_attempts=max_attempts,
                on_failure=partial(_log_failure, state),
            )
            return result, None
        except GaveUp as exc:
            return None, exc.error
        finally:
            if not verdict and admission is Admission.TRIAL:
                state.breaker.abandon()

    def _final_error(
        self, route: str, deadline: Deadline, last_error: ServiceError | None
    ) -> ServiceError:
        if deadline.remaining() <= 0:
            reason = f"; last error: {last_error.message}" if last_error else ""
            return UpstreamTimeout(
                f"route {route!r}: no answer within the {self.config.deadline_s:g} s deadline"
                + reason
            )
        if last_error is None:
            return NotConfigured(f"route {route!r}: no provider in its chain is configured")
        return last_error


class _Calls:
    """Makes one deployment's ``ProviderCall`` per attempt, and applies the route's policy
    for a timeout after sending."""

    def __init__(
        self, body: dict[str, Any], headers: dict[str, str], model: str, settings: Route
    ) -> None:
        self._body, self._headers, self._model, self._settings = body, headers, model, settings
        self._last: ProviderCall | None = None

    def make(self, timeout_s: float) -> ProviderCall:
        self._last = ProviderCall(self._body, self._model, timeout_s, self._headers)
        return self._last

    def last_received(self) -> dict[str, str]:
        return dict(self._last.received) if self._last else {}

    def _final(self, error: UpstreamError) -> bool:
        return isinstance(error, SentTimeout) and not self._settings.retry_sent_timeouts

    def retries(self, error: UpstreamError) -> bool:
        return error.retryable and not self._final(error)

    def falls_back(self, error: UpstreamError) -> bool:
        return error.falls_back and not self._final(error)


def _circuit_open(state: DeploymentState, earlier: CircuitOpen | None) -> CircuitOpen:
    """This deployment's open circuit, added to the open circuits met before it in the chain:
    when every one is open, ``retry-after`` says when the first will take a trial."""
    left = state.breaker.cooldown_left()
    message = f"{state.deployment.name}: circuit open for {retry_after_header(left)} s more"
    if earlier is not None and earlier.retry_after is not None:
        message, left = f"{earlier.message}; {message}", min(left, earlier.retry_after)
    return CircuitOpen(message, retry_after=left)


def _with_outcome(error: ServiceError, outcome: Outcome) -> ServiceError:
    error.headers.update(outcome.headers())
    if outcome.attempts:
        # The gateway retried and failed over already: a client's own retries would multiply
        # the upstream calls (3 x 3). The Anthropic SDKs honour this header.
        error.headers[SHOULD_RETRY] = "false"
    return error


async def _close(chunks: AsyncIterator[bytes]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


def _succeeded(state: DeploymentState, attempt: int, seconds: float) -> None:
    state.succeeded(seconds)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "upstream attempt ok",
            extra={
                "deployment": state.deployment.name,
                "attempt": attempt,
                "latency_ms": round(seconds * 1000, 2),
            },
        )


def _log_failure(
    state: DeploymentState, attempt: int, error: UpstreamError, wait: float | None
) -> None:
    """``wait`` is the pause before the next attempt; None when this deployment is done."""
    step = "retry" if wait is not None else "fall back" if error.falls_back else "give up"
    telemetry.event(
        "attempt_failed",
        {
            "agentorch.gateway.deployment": state.deployment.name,
            "agentorch.gateway.attempt": attempt,
            "error.type": type(error).__name__,
            "agentorch.gateway.next": step,
            "agentorch.gateway.wait_s": round(wait, 3) if wait is not None else 0.0,
        },
    )
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
