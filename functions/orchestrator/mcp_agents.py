"""MCP servers as agents: every tool of every server in ``mcp_servers:`` or ``$MCP_SERVERS`` is
offered to the model as ``<server>__<tool>``, called like any agent.

    MCP_SERVERS="github=https://mcp.example.com/mcp,files=http://localhost:9000/mcp"
    MCP_GITHUB_HEADERS="authorization=Bearer abc..."

Each server's tools are listed (``tools/list``) with the official ``mcp`` client, kept for
``agent_calls.schema_ttl_s`` like an agent's schema, and listed again after; a server that
cannot be listed is left out of the plan, with its reason in ``GET /agents``. A call
(``tools/call``) has what an HTTP agent's has: arguments checked against the tool's input
schema (``tools.Tool.prepare``, in the loop), the per-call timeout, retries of what another
attempt may fix (no answer, 5xx), a circuit per server, budgets and the trace. Like an HTTP
agent's ``POST /``, a ``tools/call`` carries ``Idempotency-Key: <run_id>:<step>`` (the same
again when a resumed run makes the call again) and the run's ``x-request-id``; a listing, or
a handshake of the earlier revisions, carries no key (``call_headers``).

What a server says is untrusted, as any tool output: its answer is refused past
``max_mcp_result_bytes`` before it is read whole; tool names that no model API accepts, more
than ``MAX_TOOLS`` tools, long descriptions and invalid schemas are cut or left out; its
results reach the model only as data (a tool result), and the tools of a run are fixed when
it starts, so nothing a server answers can add a tool or change a budget. The SDK is
imported on the first listing, not at start-up.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from functions.orchestrator.agent_types import AgentAnswer, AgentCallError, AgentStatus, ToolSpec
from functions.orchestrator.agents import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY,
    Refused,
    resilient_call,
)
from functions.orchestrator.config import MCP_SEPARATOR, AgentCallSettings, McpServerEntry
from shared.aio import outbound_headers
from shared.errors import BadGateway, UpstreamTimeout
from shared.redact import Redactor, header_secrets
from shared.resilience import AttemptFailed, CircuitBreaker, Deadline, RetryPolicy, Sleep

if TYPE_CHECKING:
    from mcp import Client

MAX_TOOLS = 64
"""Tools offered per server; the rest are left out (a model does worse with hundreds)."""
MAX_DESCRIPTION_CHARS = 2000
_TOOL_NAME = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME_CHARS = 64
KIND = "mcp"


@dataclass
class _Listing:
    """One server's tools as last listed (or why it could not be)."""

    statuses: dict[str, AgentStatus]
    """By offered name (``server__tool``); only ``{server: unavailable}`` when it failed."""
    tools: dict[str, str] = field(default_factory=dict)
    """Offered name -> the tool's own name on its server."""
    mode: str = "auto"
    """How calls connect: the protocol version the listing agreed, or ``legacy``."""
    fetched_at: float = 0.0


class McpServers:
    """``Agents`` over MCP: the tools of the configured servers."""

    def __init__(
        self,
        servers: Mapping[str, McpServerEntry],
        settings: AgentCallSettings,
        *,
        max_result_bytes: int,
        headers: Mapping[str, Mapping[str, str]] | None = None,
        sources: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._servers = dict(servers)
        self._settings = settings
        self._max_bytes = max_result_bytes
        self._headers = {name: dict(h) for name, h in (headers or {}).items()}
        self._sources = dict(sources or {})
        sent = (value for named in self._headers.values() for value in named.values())
        self._scrub = Redactor().adding(*header_secrets(sent))
        self._clock = clock
        self._sleep = sleep
        self._policy = RetryPolicy(settings.retry, rng)
        self._circuits = {name: CircuitBreaker(settings.circuit, clock=clock) for name in servers}
        self._listings: dict[str, _Listing] = {}
        self._fetching: dict[str, asyncio.Future[_Listing]] = {}
        self._http: dict[str, Any] = {}
        """One ``httpx2.AsyncClient`` per server (its headers, its pool), made on first use."""

    def names(self) -> list[str]:
        return list(self._servers)

    def knows(self, name: str) -> bool:
        return _server_of(name) in self._servers

    async def statuses(
        self, names: Iterable[str] | None = None, *, refresh: bool = False
    ) -> dict[str, AgentStatus]:
        wanted = list(self._servers) if names is None else list(names)
        servers = list(dict.fromkeys(_server_of(n) for n in wanted if self.knows(n)))
        listings = await asyncio.gather(*(self._listing(s, refresh) for s in servers))
        found: dict[str, AgentStatus] = {}
        for server, listing in zip(servers, listings, strict=True):
            asked = [n for n in wanted if n != server and _server_of(n) == server]
            if names is None or server in wanted or server in listing.statuses:
                found.update(listing.statuses)
                continue
            for name in asked:
                found[name] = listing.statuses.get(name) or AgentStatus(
                    name, self._servers[server].url, None, f"MCP server {server} has no such tool"
                )
        return found

    async def call(self, name: str, arguments: dict[str, Any], *, timeout_s: float) -> AgentAnswer:
        server = _server_of(name)
        entry = self._servers[server]
        listing = self._listings.get(server)
        tool = listing.tools.get(name) if listing is not None else None
        if listing is None or tool is None:
            raise AgentCallError(f"MCP server {server} has no tool {name!r} listed", 0)
        per_call = min(entry.timeout_s or self._settings.timeout_s, timeout_s)
        return await resilient_call(
            f"MCP server {server}",
            lambda: self._call_once(server, tool, arguments, per_call, listing.mode),
            circuit=self._circuits[server],
            policy=self._policy,
            sleep=self._sleep,
            deadline=Deadline(timeout_s, self._clock),
        )

    async def aclose(self) -> None:
        clients, self._http = list(self._http.values()), {}
        for client in clients:
            await client.aclose()

    # -- listing ---------------------------------------------------------------------------

    async def _listing(self, server: str, refresh: bool) -> _Listing:
        cached = self._listings.get(server)
        ttl_s = self._settings.schema_ttl_s
        if not refresh and cached is not None and self._clock() - cached.fetched_at < ttl_s:
            return cached
        pending = self._fetching.get(server)
        if pending is None:
            pending = asyncio.ensure_future(self._list(server))
            self._fetching[server] = pending
            pending.add_done_callback(lambda _: self._fetching.pop(server, None))
        return await asyncio.shield(pending)  # one run giving up must not cancel the others'

    async def _list(self, server: str) -> _Listing:
        timeout_s = self._settings.schema_timeout_s
        try:
            async with asyncio.timeout(timeout_s), self._client(server, timeout_s) as client:
                listed = await client.list_tools()
                version = client.session.protocol_version
        except Exception as exc:  # whatever the server did: it is left out, and says why
            reason = self._scrub(f"tools/list failed: {_reason(exc, timeout_s)}")
            listing = _Listing({server: self._status(server, server, None, reason)})
        else:
            listing = self._listing_of(server, listed.tools, version)
        listing.fetched_at = self._clock()
        self._listings[server] = listing
        return listing

    def _listing_of(self, server: str, tools: list[Any], version: str | None) -> _Listing:
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        statuses: dict[str, AgentStatus] = {}
        names: dict[str, str] = {}
        for tool in tools[:MAX_TOOLS]:
            offered = _offered_name(server, str(tool.name))
            if offered in statuses:
                continue  # two names that read alike once cleaned: the first wins
            schema = tool.input_schema
            problem = _schema_problem(schema)
            if problem is not None:
                statuses[offered] = self._status(server, offered, None, problem)
                continue
            description = (tool.description or tool.title or str(tool.name))[:MAX_DESCRIPTION_CHARS]
            spec = ToolSpec(offered, f"[MCP server {server}] {description}", schema)
            statuses[offered] = self._status(server, offered, spec)
            names[offered] = str(tool.name)
        if not statuses:
            statuses[server] = self._status(server, server, None, "the server lists no tools")
        mode = version if version in MODERN_PROTOCOL_VERSIONS else "legacy"
        return _Listing(statuses, names, mode)

    def _status(
        self, server: str, name: str, spec: ToolSpec | None, reason: str | None = None
    ) -> AgentStatus:
        url = self._servers[server].url
        source = self._sources.get(server)
        return AgentStatus(name, url, spec, reason, source=source, kind=KIND)

    # -- calling ---------------------------------------------------------------------------

    async def _call_once(
        self, server: str, tool: str, arguments: dict[str, Any], timeout_s: float, mode: str
    ) -> Any:
        try:
            async with asyncio.timeout(timeout_s), self._client(server, timeout_s, mode) as client:
                result = await client.call_tool(tool, arguments)
        except Refused:
            raise
        except Exception as exc:
            raise self._failed(server, exc, timeout_s) from exc
        text = self._scrub(_text_of(result.content))
        if result.is_error:
            raise Refused(f"MCP tool {server}{MCP_SEPARATOR}{tool} answered an error: {text}")
        structured = result.structured_content
        return structured if structured is not None else text

    def _failed(self, server: str, exc: BaseException, timeout_s: float) -> Exception:
        """A failure the server may not repeat (no answer, a 5xx): retried; a JSON-RPC error
        (the server understood and refused): final."""
        from mcp.shared.exceptions import MCPError

        leaf = _leaf(exc)
        message = self._scrub(f"MCP server {server}: {_reason(exc, timeout_s)}")
        if _too_large(leaf) or (isinstance(leaf, MCPError) and not _is_transport(leaf)):
            return Refused(message)
        error = UpstreamTimeout(message) if isinstance(leaf, TimeoutError) else BadGateway(message)
        return AttemptFailed(error, retry=True)

    @asynccontextmanager
    async def _client(
        self, server: str, timeout_s: float, mode: str = "auto"
    ) -> AsyncIterator[Client]:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        transport = streamable_http_client(
            self._servers[server].url,
            http_client=self._http_client(server),
            max_sse_event_size=self._max_bytes,
        )
        async with Client(
            transport, mode=mode, read_timeout_seconds=timeout_s, cache=None
        ) as client:
            yield client

    def _http_client(self, server: str) -> Any:
        client = self._http.get(server)
        if client is None:
            from functions.orchestrator.mcp_http import bounded_client

            headers = self._headers.get(server, {})
            client = bounded_client(headers, self._max_bytes, hooks=[call_headers])
            self._http[server] = client
        return client


async def call_headers(
    method: str, url: str, headers: Mapping[str, str], body: bytes
) -> dict[str, str]:
    """What a request to an MCP server carries of the run that makes it: the
    ``x-request-id``, and on a ``tools/call`` the step's ``Idempotency-Key`` (set by the loop,
    as for an HTTP agent). The SDK sends from tasks started inside the call, which see the
    call's context."""
    added = outbound_headers()
    key = IDEMPOTENCY_KEY.get()
    if key is not None and _is_tool_call(body):
        added[IDEMPOTENCY_HEADER] = key
    return added


def _is_tool_call(body: bytes) -> bool:
    if b'"tools/call"' not in body:
        return False
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(message, dict) and message.get("method") == "tools/call"


def _server_of(name: str) -> str:
    return name.partition(MCP_SEPARATOR)[0]


def _offered_name(server: str, tool: str) -> str:
    """``server__tool`` in the characters model APIs accept for a tool name, cut to 64."""
    return f"{server}{MCP_SEPARATOR}{_TOOL_NAME.sub('_', tool)}"[:MAX_NAME_CHARS]


def _schema_problem(schema: Any) -> str | None:
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        return "its input schema is not a JSON Schema object"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"its input schema is invalid: {exc.message[:200]}"
    return None


def _text_of(content: list[Any]) -> str:
    parts = []
    for block in content:
        if getattr(block, "type", None) == "text":
            parts.append(str(block.text))
        else:  # an image, audio, a resource: named, never passed on whole
            parts.append(f"[{getattr(block, 'type', 'content')} content left out]")
    return "\n".join(parts)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error under task groups' ``ExceptionGroup`` wrappers and causes."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _too_large(error: BaseException | None) -> bool:
    """The answer passed the limit (``mcp_http``), however the SDK wrapped it: not retried."""
    from functions.orchestrator.mcp_http import ResponseTooLarge

    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, ResponseTooLarge) or "exceeds" in str(error):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _is_transport(error: Any) -> bool:
    """The SDK reports a failed HTTP exchange (connection, 5xx) as an ``MCPError`` too."""
    message = str(getattr(error, "message", error)).lower()
    return any(word in message for word in ("connect", "http", "timed out", "timeout"))


def _reason(exc: BaseException, timeout_s: float) -> str:
    leaf = _leaf(exc)
    if isinstance(leaf, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    text = str(leaf) or type(leaf).__name__
    return text[:300]
