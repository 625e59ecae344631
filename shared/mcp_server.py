"""``/mcp``: a function's tools served over MCP's streamable HTTP, on the official ``mcp`` SDK.

Every agent (``shared.agent``) and the orchestrator answer MCP beside their plain API. The SDK
owns the protocol (JSON-RPC framing, both the 2026-07-28 per-request revision and the earlier
``initialize`` handshake, which a stateless server answers on every request); this module only
bridges it to the edge:

- the request arrives through ``shared.asgi`` like any other, so the body is already read
  within the function's size and time bounds and the function's key checks have run; its
  bytes are then replayed to the SDK's ASGI app, whose answer comes back as a ``Reply``;
- served statelessly: no session is kept, so any instance (any worker, any replica) answers;
- the SDK (~1.8 s of imports) is loaded by the first ``/mcp`` request, never at start-up: a
  function that is never asked MCP starts as fast as before (the cold-start budget).

A tool is described by plain values (``McpTool``) and run by a plain coroutine returning an
``McpOutcome``; the SDK's types stay in here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared import telemetry
from shared.errors import NotConfigured
from shared.http import Call, Reply, compact_json
from shared.logs import get_logger

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

log = get_logger("mcp")

MCP_PATH = "/mcp"
SDK_MISSING = (
    "MCP is not installed in this function: add the 'mcp' extra to its dependencies "
    "(agent-orchestrator[mcp], or mcp>=2.3,<3)"
)
_SSE = "text/event-stream"
_X_MCP_HEADER = '"x-mcp-header"'


@dataclass(frozen=True)
class McpTool:
    """One tool as ``tools/list`` shows it."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class McpOutcome:
    """What a tool call gave: its JSON result, or (``is_error``) what went wrong, in words
    the calling model can act on."""

    result: Any = None
    error: str | None = None
    text: str | None = None
    """The text content, when it should say something other than the result as JSON (the
    orchestrator's answer, its trace then in the structured content); with ``error``, the
    structured content to send beside it."""

    @property
    def is_error(self) -> bool:
        return self.error is not None


Progress = Callable[[float, float | None, str | None], Awaitable[None]]
"""``(progress, total, message)``: a step of a long call, sent to a client that asked for it
(a progress token) as a ``notifications/progress`` on the answer's stream; a no-op otherwise."""

ListTools = Callable[[], Awaitable[list[McpTool]]]
CallTool = Callable[[str, dict[str, Any], Progress], Awaitable[McpOutcome]]


def outcome_content(outcome: McpOutcome) -> tuple[str, Any]:
    """The text content and the structured content of an outcome: the JSON result as text too,
    for clients that read only text."""
    if outcome.error is not None:
        structured = outcome.result if isinstance(outcome.result, dict) else None
        return outcome.error, structured
    structured = outcome.result if isinstance(outcome.result, dict) else {"result": outcome.result}
    return outcome.text if outcome.text is not None else compact_json(structured), structured


class McpEndpoint:
    """The ``/mcp`` route of one function: ``handle`` is its ``AsyncHandler``.

    ``json_response``: answer each call with one JSON body (agents: the fastest, and what every
    client accepts); False lets the SDK stream server-sent events when a call reports progress
    (the orchestrator's ``run_task``)."""

    def __init__(
        self,
        name: str,
        list_tools: ListTools,
        call_tool: CallTool,
        *,
        json_response: bool = True,
        instructions: str | None = None,
        max_body_bytes: int | None = None,
        input_schema: Callable[[str], Mapping[str, Any] | None] | None = None,
    ) -> None:
        """``max_body_bytes``: the function's own limit (the edge enforces it before this
        runs), so that the SDK's own default (4 MiB) never refuses what the function accepts.
        ``input_schema``: a tool's input schema by name, for a function whose tools are fixed:
        the SDK checks a 2026-07-28 call's ``Mcp-Param-*`` headers with it instead of running
        ``tools/list`` on every call (the larger part of what MCP added to a call)."""
        self.name = name
        self._list_tools = list_tools
        self._call_tool = call_tool
        self._json_response = json_response
        self._instructions = instructions
        self._max_body_bytes = max_body_bytes
        self._input_schema = input_schema
        self._manager: StreamableHTTPSessionManager | None = None
        self._holder: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._starting: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop the SDK was started in: another loop (a test client's next portal) starts
        it again, as its task group cannot serve from a loop that is gone."""

    async def handle(self, call: Call) -> Reply:
        manager = await self._running()
        if self._json_response:  # one body, never a stream: served inline, in this task
            return await _answer(manager, call)
        return await _replay(manager, call)

    async def aclose(self) -> None:
        """Stop the SDK's task group (tests, or a server that embeds the app)."""
        if self._stop is not None and self._holder is not None:
            self._stop.set()
            await asyncio.gather(self._holder, return_exceptions=True)
        self._manager = self._holder = self._stop = None

    async def _running(self) -> StreamableHTTPSessionManager:
        """The SDK's session manager, started on the first request in this event loop: its
        task group lives in a task of its own, as under an ASGI lifespan."""
        if self._serving():
            assert self._manager is not None
            return self._manager
        loop = asyncio.get_running_loop()
        if self._starting is None or self._loop is not loop:
            self._starting, self._loop = asyncio.Lock(), loop
        async with self._starting:
            if not self._serving():
                await self._start()
        assert self._manager is not None
        return self._manager

    def _serving(self) -> bool:
        holder = self._holder
        return (
            self._manager is not None
            and holder is not None
            and not holder.done()
            and holder.get_loop() is asyncio.get_running_loop()
        )

    async def _start(self) -> None:
        try:
            from mcp.server.streamable_http_manager import (
                DEFAULT_MAX_REQUEST_BODY_SIZE,
                StreamableHTTPSessionManager,
            )
        except ImportError as exc:  # a function built without the extra (a new agent's image)
            raise NotConfigured(SDK_MISSING) from exc

        manager = StreamableHTTPSessionManager(
            app=self._server(),
            json_response=self._json_response,
            stateless=True,
            max_request_body_size=max(self._max_body_bytes or 0, DEFAULT_MAX_REQUEST_BODY_SIZE),
        )
        ready = asyncio.Event()
        stop = asyncio.Event()

        async def hold() -> None:
            async with manager.run():
                ready.set()
                await stop.wait()

        holder = asyncio.create_task(hold(), name=f"mcp {self.name}")
        waiting = asyncio.ensure_future(ready.wait())
        await asyncio.wait({holder, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if holder.done():
            holder.result()  # raises what stopped it
        self._manager, self._holder, self._stop = manager, holder, stop

    def _server(self) -> Any:
        import mcp_types as types
        from mcp.server.lowlevel import Server

        list_tools, call_tool = self._list_tools, self._call_tool

        async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            tools = await list_tools()
            listed = [
                types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
                for t in tools
            ]
            return types.ListToolsResult(tools=listed)

        async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
            progress = _progress_sender(ctx, params)
            outcome = await call_tool(params.name, dict(params.arguments or {}), progress)
            return call_result(outcome)

        server = Server(
            self.name,
            instructions=self._instructions,
            get_tool_input_schema=_header_schemas(self._input_schema),
            on_list_tools=on_list_tools,
            on_call_tool=on_call_tool,
        )
        if not telemetry.enabled():
            # The SDK's own span per message (on by default): with tracing off, a no-op
            # span that still costs each call; with it on, the SDK's spans join ours.
            server.middleware = [
                m for m in server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"
            ]
        return server


def call_result(outcome: McpOutcome) -> dict[str, Any]:
    """A ``CallToolResult`` in its wire form: the SDK validates a handler's result against the
    protocol's schema either way, so a model built here would only be dumped again."""
    text, structured = outcome_content(outcome)
    result: dict[str, Any] = {
        "content": [{"type": "text", "text": text}],
        "isError": outcome.is_error,
        "resultType": "complete",  # 2026-07-28 requires it; the SDK drops it for earlier ones
    }
    if structured is not None:
        result["structuredContent"] = structured
    return result


SchemaLookup = Callable[[str], Mapping[str, Any] | None]


def _header_schemas(lookup: SchemaLookup | None) -> SchemaLookup | None:
    """``get_tool_input_schema`` for the SDK, which uses a tool's schema only to check the
    ``Mcp-Param-*`` headers its ``x-mcp-header`` properties declare: a schema that declares
    none has nothing to check, so the SDK is told so (None) instead of walking it per call."""
    if lookup is None:
        return None
    seen: dict[str, tuple[Mapping[str, Any], bool]] = {}  # by name: the schema, and the answer

    def schema(name: str) -> Mapping[str, Any] | None:
        found = lookup(name)
        if found is None:
            return None
        known = seen.get(name)
        if known is None or known[0] is not found:
            known = seen[name] = (found, _X_MCP_HEADER in compact_json(found))
        return found if known[1] else None

    return schema


def _progress_sender(ctx: Any, params: Any) -> Progress:
    """Progress for this call, when its client gave a progress token; else a no-op."""
    meta = ctx.meta or getattr(params, "meta", None) or {}
    token = meta.get("progress_token")
    session = ctx.session
    if token is None or session is None:

        async def ignored(progress: float, total: float | None, message: str | None) -> None:
            return None

        return ignored

    async def send(progress: float, total: float | None, message: str | None) -> None:
        try:
            await session.send_progress_notification(
                token, progress, total=total, message=message, related_request_id=ctx.request_id
            )
        except Exception:  # a client gone mid-run: the run goes on
            log.debug("progress not sent", exc_info=True)

    return send


def _receiving(call: Call, done: asyncio.Event) -> Callable[[], Awaitable[dict[str, Any]]]:
    """ASGI ``receive`` for ``call``: its body (already read and bounded by the edge), then a
    disconnect only once ``done`` is set (the answer is out)."""
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": call.body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    return receive


async def _answer(manager: StreamableHTTPSessionManager, call: Call) -> Reply:
    """Serve ``call`` by the SDK's ASGI app where it answers one JSON body (``json_response``):
    in the calling task, its answer gathered as it is sent."""
    done = asyncio.Event()
    receive = _receiving(call, done)
    start: dict[str, Any] = {}
    body: list[bytes] = []

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            body.append(bytes(message.get("body", b"")))

    try:
        await manager.handle_request(_scope(call), receive, send)
    finally:
        done.set()
    if not start:
        raise RuntimeError("the MCP handler answered nothing")
    headers = _headers(start.get("headers", ()))
    content_type = headers.pop("content-type", "application/json")
    return Reply(b"".join(body), start["status"], headers, content_type)


async def _replay(manager: StreamableHTTPSessionManager, call: Call) -> Reply:
    """Serve ``call`` (its body already read and bounded by the edge) by the SDK's ASGI app;
    its answer as a ``Reply``: one body, or a stream when the SDK streams events."""
    scope = _scope(call)
    done = asyncio.Event()
    receive = _receiving(call, done)

    started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.set_result(dict(message))
        elif message["type"] == "http.response.body":
            chunks.put_nowait(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                chunks.put_nowait(None)

    async def serve() -> None:
        try:
            await manager.handle_request(scope, receive, send)
        finally:
            done.set()
            chunks.put_nowait(None)

    task = asyncio.ensure_future(serve())
    either: set[asyncio.Future[Any]] = {task, started}
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        task.result()  # the SDK failed before answering: the edge renders it
        raise RuntimeError("the MCP handler answered nothing")
    start = started.result()
    headers = _headers(start.get("headers", ()))
    content_type = headers.pop("content-type", "application/json")
    if content_type.startswith(_SSE):
        return Reply(_stream(chunks, task), start["status"], headers, content_type)
    body = b"".join([chunk async for chunk in _drain(chunks)])
    await task
    return Reply(body, start["status"], headers, content_type)


async def _drain(chunks: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (chunk := await chunks.get()) is not None:
        yield chunk


async def _stream(
    chunks: asyncio.Queue[bytes | None], task: asyncio.Future[None]
) -> AsyncIterator[bytes]:
    try:
        async for chunk in _drain(chunks):
            if chunk:
                yield chunk
    finally:  # a client gone mid-stream ends the call
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _headers(raw: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key != "content-length":  # the edge sets it for the body it sends
            headers[key] = value.decode("latin-1")
    return headers


def _scope(call: Call) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": call.method,
        "scheme": "http",
        "path": MCP_PATH,
        "raw_path": MCP_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in call.headers.items()],
        "client": None,
        "server": None,
    }
