"""The agents seam: what tools exist now (``GET /schema``) and calling one (``POST /``).

``AgentDirectory`` fetches every agent's schema concurrently and keeps each answer (or the
agent being down) for ``schema_ttl_s``; concurrent runs share one fetch in flight. Calls
retry only what is safe to retry (connection errors, 502/503/504, 429 with ``retry-after``),
and a circuit breaker per agent stops a run from waiting on one that keeps failing.

An agent that says it is not configured (503 ``not_configured`` from ``GET /schema``, as
``shared.agent`` answers for a spec whose ``not_configured`` gives a reason) is reported as
such and offered to no model; the same answer to ``POST /`` is final (never retried) and marks
the agent not configured for the next runs.

An agent may need headers (its auth, from ``AGENT_<NAME>_HEADERS``): they are sent on every
request to it, and scrubbed from every message the directory makes (an agent that quotes its
token back in an error leaks it nowhere).

Every call carries ``Idempotency-Key: <run_id>:<step>`` (``IDEMPOTENCY_KEY``, set by the loop
for the step it makes): a resumed run retries the call that was in flight with the same key,
so an agent that keeps what it answered to a key can answer again without doing it twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from functions.orchestrator.agent_types import (
    AgentAnswer,
    AgentCallError,
    Agents,
    AgentStatus,
    ToolSpec,
)
from functions.orchestrator.config import AgentCallSettings, AgentEntry
from shared.aio import AsyncHttp
from shared.errors import (
    BadGateway,
    NotConfigured,
    UpstreamError,
    error_for_status,
    parse_retry_after,
)
from shared.redact import Redactor, header_secrets
from shared.resilience import (
    AttemptFailed,
    CircuitBreaker,
    Deadline,
    GaveUp,
    RetryPolicy,
    Sleep,
    retrying,
)

IDEMPOTENCY_KEY: ContextVar[str | None] = ContextVar("idempotency_key", default=None)
"""The key of the agent call being made (the loop sets it around each agent step)."""
IDEMPOTENCY_HEADER = "idempotency-key"

_RETRY_STATUSES = {502, 503, 504}
NOT_CONFIGURED = NotConfigured.error_type
"""The error type of an agent's 503 saying it cannot work in this deployment."""


@dataclass
class _Cached:
    status: AgentStatus
    fetched_at: float


class AgentDirectory:
    """``Agents`` over HTTP, at the URLs from config."""

    def __init__(
        self,
        http: AsyncHttp,
        agents: Mapping[str, AgentEntry],
        settings: AgentCallSettings,
        *,
        headers: Mapping[str, Mapping[str, str]] | None = None,
        sources: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        """``clock``, ``sleep`` and ``rng`` (the jitter between attempts) are injected so tests
        drive time."""
        self._http = http
        self._agents = dict(agents)
        self._headers = {name: dict(h) for name, h in (headers or {}).items()}
        self._sources = dict(sources or {})
        sent = (value for named in self._headers.values() for value in named.values())
        self._scrub = Redactor().adding(*header_secrets(sent))
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._policy = RetryPolicy(settings.retry, rng)
        self._cache: dict[str, _Cached] = {}
        self._fetching: dict[str, asyncio.Future[AgentStatus]] = {}
        self._circuits = {
            name: CircuitBreaker(settings.circuit, clock=clock) for name in self._agents
        }

    def names(self) -> list[str]:
        return list(self._agents)

    def knows(self, name: str) -> bool:
        return name in self._agents

    async def statuses(
        self, names: Iterable[str] | None = None, *, refresh: bool = False
    ) -> dict[str, AgentStatus]:
        wanted = list(self._agents) if names is None else [n for n in names if n in self._agents]
        found = {} if refresh else self._fresh(wanted)
        stale = [name for name in wanted if name not in found]
        if stale:  # every run asks: the usual answer is all cached, with no task to make
            fetched = await asyncio.gather(*(self._status(name) for name in stale))
            found.update(zip(stale, fetched, strict=True))
        return {name: found[name] for name in wanted}

    def _fresh(self, names: list[str]) -> dict[str, AgentStatus]:
        now = self._clock()
        ttl_s = self._settings.schema_ttl_s
        return {
            name: cached.status
            for name in names
            if (cached := self._cache.get(name)) is not None and now - cached.fetched_at < ttl_s
        }

    async def _status(self, name: str) -> AgentStatus:
        pending = self._fetching.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(name))
            self._fetching[name] = pending
            pending.add_done_callback(lambda _: self._fetching.pop(name, None))
        # shield: one run giving up must not cancel the fetch other runs wait on.
        return await asyncio.shield(pending)

    async def _fetch(self, name: str) -> AgentStatus:
        url = self._agents[name].url
        status = AgentStatus(name, url, None, "no answer")
        try:
            answer = await self._http.request_json(
                "GET",
                _join(url, "/schema"),
                headers=self._headers.get(name),
                timeout_s=self._settings.schema_timeout_s,
                service=f"agent {name}",
            )
            status = _status_from(name, url, answer.status, answer.data)
        except UpstreamError as exc:
            status = AgentStatus(name, url, None, exc.message)
        reason = None if status.reason is None else self._scrub(status.reason)
        status = replace(status, reason=reason, source=self._sources.get(name))
        self._cache[name] = _Cached(status, self._clock())
        return status

    async def call(self, name: str, arguments: dict[str, Any], *, timeout_s: float) -> AgentAnswer:
        entry = self._agents[name]
        per_call = min(entry.timeout_s or self._settings.timeout_s, timeout_s)
        return await resilient_call(
            f"agent {name}",
            lambda: self._once(name, entry.url, arguments, per_call),
            circuit=self._circuits[name],
            policy=self._policy,
            sleep=self._sleep,
            deadline=Deadline(timeout_s, self._clock),
        )

    async def _once(self, name: str, url: str, arguments: dict[str, Any], timeout_s: float) -> Any:
        headers = self._headers.get(name)
        key = IDEMPOTENCY_KEY.get()
        if key is not None:
            headers = {**(headers or {}), IDEMPOTENCY_HEADER: key}
        try:
            answer = await self._http.request_json(
                "POST",
                _join(url, "/"),
                body=arguments,
                headers=headers,
                timeout_s=timeout_s,
                service=f"agent {name}",
            )
        except UpstreamError as exc:  # could not connect, or no answer in time
            self._scrub.scrub(exc)
            raise self._failed(exc) from exc
        if answer.status < 400:
            return answer.data
        reason = self._scrub(_error_message(answer.data))
        message = f"agent {name} answered {answer.status}: {reason}"
        if _error_type(answer.data) == NOT_CONFIGURED:  # final: asking again cannot help
            source = self._sources.get(name)
            status = AgentStatus(name, url, None, reason, not_configured=True, source=source)
            self._cache[name] = _Cached(status, self._clock())
            raise Refused(message)
        retry_after = parse_retry_after(answer.headers)
        if answer.status in _RETRY_STATUSES or (answer.status == 429 and retry_after is not None):
            raise self._failed(error_for_status(answer.status, message, retry_after=retry_after))
        raise Refused(message)

    def _failed(self, error: UpstreamError) -> AttemptFailed:
        """A retryable failure; retried unless the agent asks for a longer pause than we
        honour (its ``retry-after``), when giving up now serves the run better."""
        return AttemptFailed(error, retry=not self._policy.wants_longer_than(error))


class Refused(Exception):
    """A final answer against the call (never retried); its message is what the model is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def resilient_call(
    who: str,
    once: Callable[[], Awaitable[Any]],
    *,
    circuit: CircuitBreaker,
    policy: RetryPolicy,
    sleep: Sleep,
    deadline: Deadline,
) -> AgentAnswer:
    """``once`` under the circuit, retried by ``policy`` within ``deadline``: the one way every
    kind of agent is called (HTTP agents here, MCP servers' tools in ``mcp_agents``). ``once``
    raises ``AttemptFailed`` for what another attempt may fix, ``Refused`` for what it cannot;
    either way ``AgentCallError`` ends it."""

    async def attempt(number: int) -> AgentAnswer:
        if not circuit.allow():
            raise AgentCallError(
                f"{who} is failing repeatedly; not called (circuit open)", number - 1
            )
        try:
            result = await once()
        except AttemptFailed:
            circuit.record_failure()
            raise
        except Refused as exc:
            circuit.release()
            raise AgentCallError(exc.message, number) from exc
        except BaseException:
            circuit.abandon()
            raise
        circuit.record_success()
        return AgentAnswer(result, number)

    try:
        return await retrying(attempt, policy, sleep=sleep, deadline=deadline)
    except GaveUp as exc:
        raise AgentCallError(exc.error.message, exc.attempts) from exc.error


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + path


def _error_message(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("message", ""))[:1000]
    return "no error message"


def _error_type(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("type", ""))[:100]
    return ""


def _status_from(name: str, url: str, status: int, data: Any) -> AgentStatus:
    if status == 503 and _error_type(data) == NOT_CONFIGURED:
        reason = _error_message(data)
        return AgentStatus(name, url, None, reason, not_configured=True)
    if status != 200:
        kind = f" {_error_type(data)}".rstrip()
        return AgentStatus(name, url, None, f"GET /schema answered {status}{kind}")
    if not (
        isinstance(data, dict)
        and isinstance(data.get("input_schema"), dict)
        and isinstance(data.get("description"), str)
    ):
        error = BadGateway(f"agent {name}: GET /schema is not a tool spec")
        return AgentStatus(name, url, None, error.message)
    return AgentStatus(name, url, ToolSpec(name, data["description"], data["input_schema"]))


class AgentSet:
    """Several ``Agents`` as one: the HTTP agents and the MCP servers' tools. A name belongs
    to the first part that knows it."""

    def __init__(self, *parts: Agents) -> None:
        self._parts = parts

    def names(self) -> list[str]:
        return [name for part in self._parts for name in part.names()]

    def knows(self, name: str) -> bool:
        return any(part.knows(name) for part in self._parts)

    async def statuses(
        self, names: Iterable[str] | None = None, *, refresh: bool = False
    ) -> dict[str, AgentStatus]:
        wanted = None if names is None else list(names)
        found: dict[str, AgentStatus] = {}
        answers = await asyncio.gather(
            *(part.statuses(self._owned(part, wanted), refresh=refresh) for part in self._parts)
        )
        for answer in answers:
            found.update(answer)
        return found

    def _owned(self, part: Agents, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        return [name for name in names if self._owner(name) is part]

    def _owner(self, name: str) -> Agents | None:
        return next((part for part in self._parts if part.knows(name)), None)

    async def call(self, name: str, arguments: dict[str, Any], *, timeout_s: float) -> AgentAnswer:
        owner = self._owner(name)
        if owner is None:
            raise AgentCallError(f"there is no agent {name!r}", 0)
        return await owner.call(name, arguments, timeout_s=timeout_s)

    async def aclose(self) -> None:
        for part in self._parts:
            close = getattr(part, "aclose", None)
            if close is not None:
                await close()
