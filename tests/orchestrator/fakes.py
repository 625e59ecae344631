"""The orchestrator's fakes: a scripted model (a queue of turns, like openai-agents'
FakeModel) and fake agents, a fake gateway and a fake sink as real HTTP servers on 127.0.0.1,
made inside the test's event loop."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from functions.agents.calculator.agent import SPEC
from functions.orchestrator.agents import AgentDirectory
from functions.orchestrator.config import AgentCallSettings, AgentEntry
from functions.orchestrator.model import ModelCallError, ModelReply
from shared.agent import AgentResult
from shared.aio import AsyncHttp
from shared.errors import UpstreamError
from shared.resilience import RetrySettings

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
    """Agents at ``http://127.0.0.1:<port>/<name>``: ``GET /<name>/schema``, ``POST /<name>/``."""

    def __init__(self) -> None:
        self.agents: dict[str, FakeAgent] = {}
        self.schema_requests = 0
        app = web.Application()
        app.router.add_get("/{name}/schema", self._schema)
        app.router.add_post("/{name}/", self._call)
        self._runner = web.AppRunner(app, access_log=None)
        self.base_url = ""

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
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        await self._runner.cleanup()

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    async def _schema(self, request: web.Request) -> web.Response:
        self.schema_requests += 1
        agent = self.agents.get(request.match_info["name"])
        if agent is None:
            return web.json_response({"type": "error"}, status=404)
        agent.headers.append({k.lower(): v for k, v in request.headers.items()})
        if agent.schema_status != 200:
            body = {"type": "error", "error": {"type": "not_configured", "message": "no key"}}
            return web.json_response(body, status=agent.schema_status)
        return web.json_response(agent.schema)

    async def _call(self, request: web.Request) -> web.Response:
        agent = self.agents[request.match_info["name"]]
        arguments = await request.json()
        agent.headers.append({k.lower(): v for k, v in request.headers.items()})
        agent.calls.append(arguments)
        answer = agent.respond(arguments)
        if inspect.isawaitable(answer):
            answer = await answer
        status, body, *rest = answer
        return web.json_response(body, status=status, headers=rest[0] if rest else None)


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
    when none is left); every request is recorded. ``arrived`` is set on each."""

    def __init__(self, path: str = "/") -> None:
        self.script: deque[Answer] = deque()
        self.received: list[Received] = []
        self.arrived = asyncio.Event()
        self.delay_s = 0.0
        app = web.Application()
        app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self.url = ""

    def enqueue(self, *answers: Answer) -> FakeEndpoint:
        self.script.extend(answers)
        return self

    async def start(self) -> FakeEndpoint:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        await self._runner.cleanup()

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Received]:
        async with asyncio.timeout(timeout_s):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return list(self.received)

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
        self.arrived.set()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status, payload, *rest = self.script.popleft() if self.script else (200, {})
        return web.json_response(payload, status=status, headers=rest[0] if rest else None)
