"""The orchestrator's fakes: a scripted model (a queue of turns, like openai-agents'
FakeModel) and fake agents, a fake gateway and a fake sink as real HTTP servers on 127.0.0.1,
on the shared fake server (``tests.fakes.server``) with an async face for the async tests."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from functions.agents.calculator.agent import SPEC
from functions.orchestrator.agents import AgentDirectory
from functions.orchestrator.config import AgentCallSettings, AgentEntry
from functions.orchestrator.model import ModelCallError, ModelReply
from shared.agent import AgentResult
from shared.aio import AsyncHttp
from shared.errors import UpstreamError
from shared.resilience import RetrySettings
from tests.fakes.server import MAX_DELAY_S, Exchange, FakeServer, RecordedRequest

CALCULATOR = SPEC
"""The real calculator agent: ``calculate`` runs it, and tests offer its schema."""

# -- the scripted model -----------------------------------------------------------------------


def text(answer: str, **usage: int) -> ModelReply:
    return ModelReply(
        content=[{"type": "text", "text": answer}],
        stop_reason="end_turn",
        input_tokens=usage.get("input_tokens", 10),
        output_tokens=usage.get("output_tokens", 5),
        provider="fake",
    )


def tool_use(*calls: tuple[str, Any], **usage: int) -> ModelReply:
    """One turn calling each ``(name, input)``; ids are ``call_0``, ``call_1``..."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": "I will use tools."}]
    blocks += [
        {"type": "tool_use", "id": f"call_{i}", "name": name, "input": arguments}
        for i, (name, arguments) in enumerate(calls)
    ]
    return ModelReply(
        content=blocks,
        stop_reason="tool_use",
        input_tokens=usage.get("input_tokens", 10),
        output_tokens=usage.get("output_tokens", 5),
        provider="fake",
    )


def failure(error: UpstreamError, attempts: int = 1) -> ModelCallError:
    return ModelCallError(error, attempts)


@dataclass
class ScriptedModel:
    """``Model`` answering each call with the next scripted turn (a reply, or an error to
    raise); records every request it was sent."""

    route: str = "default"
    script: deque[ModelReply | ModelCallError] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def enqueue(self, *turns: ModelReply | ModelCallError) -> ScriptedModel:
        self.script.extend(turns)
        return self

    async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
        self.requests.append(json.loads(json.dumps(request)))  # a snapshot, not a live list
        if not self.script:
            raise AssertionError("the scripted model was called more often than scripted")
        turn = self.script.popleft()
        if isinstance(turn, ModelCallError):
            raise turn
        return turn

    def tool_results(self, call: int) -> list[dict[str, Any]]:
        """The tool_result blocks the model received in request ``call``."""
        content = self.requests[call]["messages"][-1]["content"]
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


class OfflineModel:
    """``Model`` answered by the gateway's offline local model, in process (no gateway in
    between): the real rules, for tests of what the offline stack answers."""

    route = "local"

    async def create(self, request: dict[str, Any], *, timeout_s: float) -> ModelReply:
        from functions.gateway.providers.local import LocalProvider

        answer = LocalProvider().answer(request, "local")
        usage = answer["usage"]
        return ModelReply(
            answer["content"],
            answer["stop_reason"],
            usage["input_tokens"],
            usage["output_tokens"],
            "local",
        )


# -- fake agents over HTTP --------------------------------------------------------------------

Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Responder = Callable[[dict[str, Any]], Answer | Awaitable[Answer]]


def schema_of(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"The {name} agent.",
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    }


SEARCH_SCHEMA = schema_of("search", {"query": {"type": "string", "minLength": 1}}, ["query"])
DATA_SCHEMA = schema_of(
    "data_processor",
    {
        "operation": {"type": "string", "enum": ["describe", "sql"]},
        "rows": {"type": "array", "items": {"type": "object"}},
        "csv": {"type": "string"},
        "query": {"type": "string"},
    },
    ["operation"],
)


def calculate(arguments: dict[str, Any]) -> Answer:
    """The real calculator's core, so fake answers are right."""
    try:
        parsed = CALCULATOR.input_model.model_validate(arguments)
        outcome = CALCULATOR.run(parsed)
    except Exception as exc:
        return 400, {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": str(exc)},
        }
    assert isinstance(outcome, AgentResult)  # the calculator is plain code, not a coroutine
    return 200, {"result": outcome.result, "meta": outcome.meta}


@dataclass
class FakeAgent:
    schema: dict[str, Any] | None
    respond: Responder
    schema_status: int = 200
    calls: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of every request to it (``GET /schema`` and calls), names lower-cased."""


class FakeAgents:
    """Agents at ``http://127.0.0.1:<port>/<name>``: ``GET /<name>/schema``, ``POST /<name>/``.

    A responder may be a coroutine function: it runs on the loop that started the fakes (the
    test's), so it can wait on the test's events."""

    def __init__(self) -> None:
        self.agents: dict[str, FakeAgent] = {}
        self.schema_requests = 0
        self._server = _Answering(self._answer)
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(
        self,
        name: str,
        respond: Responder,
        schema: dict[str, Any] | None = None,
        *,
        schema_status: int = 200,
    ) -> FakeAgent:
        agent = FakeAgent(schema or schema_of(name, {}, []), respond, schema_status)
        self.agents[name] = agent
        return agent

    def calls(self, name: str) -> list[dict[str, Any]]:
        return self.agents[name].calls

    async def start(self) -> FakeAgents:
        self._loop = asyncio.get_running_loop()
        self._server.start()
        return self

    async def close(self) -> None:
        await asyncio.to_thread(self._server.stop)

    @property
    def base_url(self) -> str:
        return self._server.url

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def _answer(self, request: RecordedRequest) -> Answer:
        name, _, rest = request.route.strip("/").partition("/")
        agent = self.agents.get(name)
        if request.method == "GET" and rest == "schema":
            self.schema_requests += 1
            return self._schema(agent, request)
        if request.method == "POST" and not rest and agent is not None:
            agent.headers.append(request.headers)
            agent.calls.append(request.body)
            return self._call(agent, request.body)
        return 404, {"type": "error"}

    def _schema(self, agent: FakeAgent | None, request: RecordedRequest) -> Answer:
        if agent is None:
            return 404, {"type": "error"}
        agent.headers.append(request.headers)
        if agent.schema_status != 200:
            body = {"type": "error", "error": {"type": "not_configured", "message": "no key"}}
            return agent.schema_status, body
        return 200, agent.schema

    def _call(self, agent: FakeAgent, arguments: Any) -> Answer:
        answer = agent.respond(arguments)
        if inspect.isawaitable(answer):
            assert self._loop is not None, "await start() first"
            running = asyncio.run_coroutine_threadsafe(_awaited(answer), self._loop)
            answer = running.result(MAX_DELAY_S)
        return answer


async def _awaited(answer: Awaitable[Answer]) -> Answer:
    return await answer


class _Answering(FakeServer):
    """The shared fake server, answering each request with what ``respond`` returns."""

    def __init__(self, respond: Callable[[RecordedRequest], Answer]) -> None:
        super().__init__()
        self._respond = respond

    def answer(self, request: RecordedRequest, exchange: Exchange) -> None:
        status, body, *rest = self._respond(request)
        exchange.send_json(status, body, rest[0] if rest else None)


def directory(
    fakes: FakeAgents,
    http: AsyncHttp,
    *,
    extra: dict[str, str] | None = None,
    max_attempts: int = 3,
    timeout_s: float = 5.0,
) -> AgentDirectory:
    """An ``AgentDirectory`` over the fakes (plus ``extra`` name -> URL), retrying at once."""
    entries = {name: AgentEntry(url=fakes.url(name)) for name in fakes.agents}
    entries.update({name: AgentEntry(url=url) for name, url in (extra or {}).items()})
    settings = AgentCallSettings(
        timeout_s=timeout_s,
        retry=RetrySettings(max_attempts=max_attempts, base_delay_s=0.0, max_delay_s=0.0),
        schema_timeout_s=2.0,
    )
    return AgentDirectory(http, entries, settings)


def closed_port_url() -> str:
    """A URL nothing listens on (connection refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- a fake HTTP endpoint with scripted answers (gateway, sink) -------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: Any


class FakeEndpoint:
    """``POST <path>`` answered by the next scripted ``(status, body, headers)`` (200 ``{}``
    when none is left); every request is recorded."""

    def __init__(self, path: str = "/") -> None:
        self.path = path
        self.delay_s = 0.0
        """Each answer waits this long after its request arrived (cut short by ``close``)."""
        self._server = _Answering(self._answer)

    def enqueue(self, *answers: Answer) -> FakeEndpoint:
        self._server.enqueue(*answers)
        return self

    async def start(self) -> FakeEndpoint:
        self._server.start()
        return self

    async def close(self) -> None:
        await asyncio.to_thread(self._server.stop)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def received(self) -> list[Received]:
        return [_received(request) for request in self._server.requests]

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Received]:
        await asyncio.to_thread(self._server.wait_for_requests, count, timeout_s)
        return self.received

    def _answer(self, request: RecordedRequest) -> Answer:
        if request.method != "POST" or request.route != self.path:
            return 404, {"type": "error"}
        self._server.pause(self.delay_s)
        scripted: Answer | None = self._server.next_scripted()
        return scripted or (200, {})


def _received(request: RecordedRequest) -> Received:
    """The body parsed as JSON, or the raw bytes when it is not JSON."""
    return Received(
        request.headers, request.raw if request.body is None and request.raw else request.body
    )
