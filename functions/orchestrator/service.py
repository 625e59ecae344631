"""The orchestrator's routes: parse a task request, run it, answer with JSON or server-sent
events, send the result to the sink; ``GET /agents``; ``POST /mcp`` (``mcp_tool``).
No web framework here: routes take a ``Call`` and give a ``Reply``
(``shared.asgi.AsyncFunctionApp`` adapts them to Starlette)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from functions.orchestrator import run_routes
from functions.orchestrator.agent_sources import MCP_PREFIX, agent_headers, agent_sources
from functions.orchestrator.agent_types import Agents
from functions.orchestrator.agents import AgentDirectory, AgentSet
from functions.orchestrator.budgets import LoopSettings
from functions.orchestrator.checkpoints import ACCEPTED, RUNNING, RunHeld, RunJournal
from functions.orchestrator.config import (
    CONFIG_FILE,
    MCP_SERVERS_VARIABLE,
    OrchestratorConfig,
    env_mcp_servers,
    load_orchestrator_config,
)
from functions.orchestrator.deliveries import deliver
from functions.orchestrator.loop import Progress, Task, run_task
from functions.orchestrator.mcp_agents import McpServers
from functions.orchestrator.mcp_tool import orchestrator_mcp
from functions.orchestrator.model import GatewayModel, Model
from functions.orchestrator.platform_events import PUBSUB_PUBLISHED, pubsub_message
from functions.orchestrator.resume import restore
from functions.orchestrator.run_routes import (
    APPROVAL_ROUTE,
    APPROVAL_SUFFIX,
    RESUME_ROUTE,
    RUN_ROUTE,
    RUNS_PREFIX,
)
from functions.orchestrator.run_routes import (
    REPLAYED_HEADER as REPLAYED_HEADER,
)
from functions.orchestrator.run_store import RunInProgress, StoreRuns
from functions.orchestrator.runs import RunRegistry, Runs, event_run_id
from functions.orchestrator.sessions import Sessions, SessionTurn, check_session_id
from functions.orchestrator.sink import EventSink
from functions.orchestrator.streaming import event_stream
from functions.orchestrator.structured import check_schema
from functions.orchestrator.tools import MAX_TASK_DEPTH, make_tool, parse_task_data
from functions.orchestrator.trace import RunResult, Status
from shared import logs
from shared.aio import AsyncHttp
from shared.api_keys import ApiKeys
from shared.asgi import AsyncFunctionApp
from shared.config import accepted_keys, gateway_client_key
from shared.errors import BadRequest, NotFound, UpstreamUnavailable, validation_message
from shared.http import SSE_CONTENT_TYPE, SSE_MEDIA_TYPE, Call, Reply, json_text
from shared.inbound import Inbound, require_object
from shared.manifest import load_manifest, manifest_path
from shared.mcp_server import MCP_PATH
from shared.outbound_auth import OutboundAuthSettings, platform_auth
from shared.redact import header_secrets
from shared.store import open_store
from shared.store.guard import GuardedStore
from shared.transport import Authenticated, Transport, outbound_transport

log = logs.get_logger("orchestrator.service")

EVENT_PREFIX = "runevent:"
"""Where the digest of a CloudEvent run's data is kept (``same_event``)."""
SESSIONS_PREFIX = "/sessions/"
SESSION_ROUTE = SESSIONS_PREFIX + "{id}"


class EventReused(BadRequest):
    status_code = 422


class TaskRequest(BaseModel):
    """``POST /``: what a user asks. Unknown fields are ignored (passed over, not refused)."""

    model_config = ConfigDict(extra="ignore")

    task: str = Field(min_length=1, max_length=20_000)
    data: Any = None
    max_steps: StrictInt | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0, strict=True)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    agents: list[str] | None = Field(default=None, min_length=1, max_length=64)
    stream: StrictBool = False
    session_id: str | None = Field(default=None, min_length=1, max_length=128)
    output_schema: dict[str, Any] | None = None
    respond_async: StrictBool = Field(default=False, alias="async")


@dataclass
class OrchestratorService:
    config: OrchestratorConfig
    model: Model
    agents: Agents
    sink: EventSink | None
    runs: Runs
    http: AsyncHttp | None = None
    """The client the service made (closed by ``aclose``); None when all were injected."""
    keys: ApiKeys = field(default_factory=lambda: ApiKeys((), "orchestrator"))
    """What its callers must present (``ORCHESTRATOR_API_KEYS``); none by default."""
    store: GuardedStore = field(default_factory=lambda: open_store("memory://"))
    """Where sessions (and, with a shared store, CloudEvent runs) are kept (``STORE_URL``)."""
    settings: LoopSettings = field(init=False)
    """The loop's settings, from ``config`` (made once, not per run)."""
    sessions: Sessions = field(init=False)
    journal: RunJournal = field(init=False)
    """Every run's status and steps, as they finish (``GET /runs/{id}``)."""

    def __post_init__(self) -> None:
        self.settings = LoopSettings.of(self.config)
        runs = self.config.runs
        # In memory (one instance), runs' records get their own bounded store: a busy
        # instance's runs must not crowd its sessions out of theirs.
        kept = self.store if self.store.backend != "memory" else open_store("memory://")
        self.journal = RunJournal(
            kept, runs.ttl_s, runs.lease_s, approval_timeout_s=runs.approval_timeout_s
        )
        given = self.config.sessions
        self.sessions = Sessions(
            self.store,
            ttl_s=given.ttl_s,
            max_tokens=given.max_tokens,
            max_turns=given.max_turns,
        )

    async def submit(self, call: Call) -> Reply:
        inbound = call.inbound(max_depth=MAX_TASK_DEPTH)
        if inbound.event_type == PUBSUB_PUBLISHED:  # Eventarc: the data is a push envelope
            message = pubsub_message(inbound.data, inbound.event_source)
            return (await deliver(self, message)).reply()
        if inbound.event_type == run_routes.APPROVAL_EVENT:
            return await run_routes.approval_event(self, inbound)
        task, stream = self.parse(inbound.data)
        stream = stream or SSE_MEDIA_TYPE in (call.headers.get("accept") or "")
        run_id = _run_id(inbound)
        if inbound.event_id is not None:
            await self.same_event(run_id, inbound.data)
        # The answer goes out first; then the request waits for its sink delivery, so that a
        # stopping worker waits for that too (shared/server.py).
        after = partial(self.sink.settle, run_id) if self.sink is not None else None
        if run_routes.wants_async(inbound.data, call.headers.get("prefer")):
            if stream:
                raise BadRequest("async and stream: choose one (a stream is the run's answer)")
            return await run_routes.accept(self, task, run_id, inbound)
        if stream:
            # A busy session is a 409 before the stream starts, not a failed event in it.
            turn = await self.claim(task)
            return Reply(
                event_stream(
                    lambda progress: self.run(task, run_id, inbound, progress, turn), run_id
                ),
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
                content_type=SSE_CONTENT_TYPE,
                after=after,
            )
        result = await self.run(task, run_id, inbound, None)
        if result.status is Status.FAILED and result.unavailable and result.nothing_done:
            raise UpstreamUnavailable(f"the model gateway is unavailable: {result.error}")
        headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
        return Reply(result.to_json(), headers=headers, after=after)

    async def run(
        self,
        task: Task,
        run_id: str,
        inbound: Inbound,
        progress: Progress | None,
        turn: SessionTurn | None = None,
    ) -> RunResult:
        """Run ``task``, its result to the sink; an event's run once (``runs``), however
        often it is delivered; a session's task with its history, its turn then kept
        (``turn``: the session already claimed for it)."""
        turn = turn or await self.claim(task)
        try:
            return await self._run_once(task, run_id, inbound, progress, turn)
        finally:
            if turn is not None:
                await turn.release()

    async def _run_once(
        self,
        task: Task,
        run_id: str,
        inbound: Inbound,
        progress: Progress | None,
        turn: SessionTurn | None,
    ) -> RunResult:
        if inbound.event_id is None:
            await self.journal.begin(run_id, inbound.data)
            return await self.execute(task, run_id, progress, turn)

        async def start() -> RunResult:
            # A redelivery may find its run begun by an instance that died: go on from there.
            state = await self.journal.state(run_id)
            begun = state is not None and state["status"] in (RUNNING, ACCEPTED)
            if not begun:
                await self.journal.begin(run_id, inbound.data)
            return await self.execute(task, run_id, progress, turn, resuming=begun)

        lease_s = task.budget.timeout_s
        try:
            result, known = await self.runs.run_once(run_id, start, lease_s=lease_s)
        except RunInProgress as busy:  # its owner may have died: take it over if so
            try:
                return await run_routes.resume(self, run_id, progress)
            except (RunHeld, NotFound):
                raise busy from None
        return dataclasses.replace(result, replayed=True) if known else result

    async def same_event(self, run_id: str, data: Any) -> None:
        """A CloudEvent's ``source`` and ``id`` are its idempotency key: sent again with other
        data, it would get the first run's result (another client's answer). Its data's digest
        is kept as long as a redelivery is answered; other data under the pair is a 422."""
        digest = hashlib.sha256(json_text(data).encode("utf-8", "surrogatepass")).digest()
        key, store = EVENT_PREFIX + run_id, self.journal.store
        ttl_s = max(self.config.dedupe_ttl_s, self.journal.ttl_s)
        if await store.put(key, digest, ttl_s=ttl_s, version=0) is not None:
            return
        kept = await store.get(key)
        if kept is not None and kept.value != digest:
            raise EventReused(
                f"run {run_id}: this CloudEvent's source and id (ce-source, ce-id) came "
                "before with other data; a new event needs a new id"
            )

    async def execute(
        self,
        task: Task,
        run_id: str,
        progress: Progress | None,
        turn: SessionTurn | None,
        resuming: bool = False,
    ) -> RunResult:
        """The run under its lease, each step checkpointed; its end recorded and sent.
        ``resuming``: from its checkpoints, read once the lease is taken. Raises
        ``LeaseLost`` (409) when another instance took the run over: it goes on there."""
        ran = task
        if turn is not None:
            ran = dataclasses.replace(task, history=tuple(turn.history()))
        async with self.journal.held(run_id) as lease:
            restored = None
            if resuming:
                restored = restore(await self.journal.steps(run_id))
                restored.decisions = await self.journal.decisions(run_id)
                log.info("run resumed", extra={"run_id": run_id, "steps": len(restored.steps)})
            result = await run_task(
                ran,
                run_id=run_id,
                model=self.model,
                agents=self.agents,
                settings=self.settings,
                progress=progress,
                checkpoint=partial(self.journal.step, run_id),
                restored=restored,
                guard=lease.check,
            )
            if turn is not None and result.status is not Status.WAITING_APPROVAL:
                result.session = await turn.record(task.text, result)
            await self.journal.finish(run_id, result)
        if self.sink is not None:
            self.sink.submit(result.to_json())
        return result

    async def get_run(self, call: Call) -> Reply:
        return await run_routes.get_run(self, call)

    async def resume_run(self, call: Call) -> Reply:
        return await run_routes.resume_run(self, call)

    async def approve_run(self, call: Call) -> Reply:
        return await run_routes.approve_run(self, call)

    async def claim(self, task: Task) -> SessionTurn | None:
        if task.session_id is None:
            return None
        return await self.sessions.claim(task.session_id, task.budget.timeout_s)

    async def get_session(self, call: Call) -> Reply:
        """``GET /sessions/{id}``: the session's turns, oldest first."""
        return Reply(await self.sessions.history(_session_of(call)))

    async def delete_session(self, call: Call) -> Reply:
        """``DELETE /sessions/{id}``: forget it (404 when there was none)."""
        session_id = _session_of(call)
        if not await self.sessions.forget(session_id):
            raise NotFound(f"no session {session_id!r} (never used, expired or deleted)")
        return Reply({"session_id": session_id, "deleted": True})

    async def pubsub_push(self, call: Call) -> Reply:
        """``POST /pubsub``: a Pub/Sub push subscription's envelope (platform_events.py)."""
        envelope = call.inbound(max_depth=MAX_TASK_DEPTH).data
        return (await deliver(self, pubsub_message(envelope))).reply()

    def parse(self, data: Any) -> tuple[Task, bool]:
        try:
            request = TaskRequest.model_validate(require_object(data))
        except ValidationError as exc:
            raise BadRequest(validation_message(exc)) from exc
        if not request.task.strip():
            raise BadRequest("task: is blank; say what you want done")
        budget = self.config.budgets.budget_for(
            request.max_steps, request.timeout_s, request.max_tokens
        )
        agents = None
        if request.agents is not None:
            known = self.agents.names()
            unknown = [name for name in request.agents if not self.agents.knows(name)]
            if unknown:  # named, not echoed: at most a few, each cut short
                named = ", ".join(repr(name[:80]) for name in unknown[:5])
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                raise BadRequest(f"agents: unknown {named}{more}; known: {', '.join(known)}")
            agents = tuple(dict.fromkeys(request.agents))
        session_id = request.session_id
        if session_id is not None:
            check_session_id(session_id)
        schema = request.output_schema
        if schema is not None:
            schema = check_schema(schema)
        data = parse_task_data(request.data)
        task = Task(request.task, budget, data, agents, session_id, output_schema=schema)
        return task, request.stream

    async def list_agents(self, call: Call) -> Reply:
        statuses = await self.agents.statuses(refresh=True)
        listed = []
        for name, status in statuses.items():
            tool = make_tool(status.spec, None).definition() if status.spec else None
            listed.append(
                {
                    "name": name,
                    "url": status.url,
                    "source": status.source,
                    "kind": status.kind,
                    "status": status.state.value,
                    "reachable": status.reachable,
                    "reason": status.reason,
                    "tool": tool,
                }
            )
        return Reply({"agents": listed})

    async def aclose(self) -> None:
        """Finish sink deliveries and close the outbound connections (shutdown, tests)."""
        if self.sink is not None:
            await self.sink.drain()
        close = getattr(self.agents, "aclose", None)
        if close is not None:
            await close()
        if self.http is not None:
            await self.http.close()
        await self.store.aclose()
        if self.journal.store is not self.store:
            await self.journal.store.aclose()

    def health(self) -> dict[str, Any]:
        sink = self.sink is not None
        return {
            "agents": self.agents.names(),
            "sink": sink,
            "auth": self.keys.required,
            "store": self.store.health(),
        }


def _session_of(call: Call) -> str:
    return check_session_id(call.path.removeprefix(SESSIONS_PREFIX))


def _run_id(inbound: Inbound) -> str:
    if inbound.event_id is not None:  # then the source is a non-empty string too
        return event_run_id(inbound.event_source or "", inbound.event_id)
    return f"run_{os.urandom(12).hex()}"


def build_service(
    environ: Mapping[str, str] | None = None,
    *,
    http: AsyncHttp | None = None,
    model: Model | None = None,
    agents: Agents | None = None,
) -> OrchestratorService:
    environ = os.environ if environ is None else environ
    config = load_orchestrator_config(environ)
    if not environ.get("LOG_LEVEL", "").strip():  # $LOG_LEVEL (shared.logs) wins over the file
        logging.getLogger(logs.ROOT_LOGGER).setLevel(config.log_level)
    api_key = gateway_client_key(environ)
    keys = accepted_keys("ORCHESTRATOR", environ)
    logs.hide(api_key, *keys)
    headers = agent_headers(config.agents, environ)
    logs.hide(*header_secrets(v for sent in headers.values() for v in sent.values()))
    http = http or AsyncHttp(outbound(environ, config, own_auth=headers))
    gateway = config.gateway
    model = model or GatewayModel(http, gateway.url, gateway.route, gateway.retry, api_key=api_key)
    if agents is None:
        config_file = CONFIG_FILE.path(environ).name
        manifest = load_manifest(manifest_path(environ)) if config.manifest_agents else None
        builtin = [agent.name for agent in manifest.agents] if manifest else []
        sources = agent_sources(config.agents, environ, config_file, builtin)
        agents = AgentDirectory(
            http, config.agents, config.agent_calls, headers=headers, sources=sources
        )
        if config.mcp_servers:
            agents = AgentSet(agents, mcp_servers(config, environ, config_file))
    sink = EventSink(http, config.sink.url, config.sink) if config.sink.url else None
    logs.hide(urlsplit(config.store.url).password or "")
    store = open_store(config.store.url, timeout_s=config.store.timeout_s)
    return OrchestratorService(
        config,
        model,
        agents,
        sink,
        run_registry(config, store),
        http,
        ApiKeys(keys, "orchestrator"),
        store,
    )


def mcp_servers(
    config: OrchestratorConfig, environ: Mapping[str, str], config_file: str
) -> McpServers:
    """The configured MCP servers as agents, with their ``MCP_<NAME>_HEADERS``."""
    headers = agent_headers(config.mcp_servers, environ, MCP_PREFIX)
    logs.hide(*header_secrets(v for sent in headers.values() for v in sent.values()))
    from_env = env_mcp_servers(environ)
    sources = {
        name: f"${MCP_SERVERS_VARIABLE}" if name in from_env else config_file
        for name in config.mcp_servers
    }
    return McpServers(
        config.mcp_servers,
        config.agent_calls,
        max_result_bytes=config.max_mcp_result_bytes,
        headers=headers,
        sources=sources,
    )


def run_registry(config: OrchestratorConfig, store: GuardedStore) -> Runs:
    """CloudEvent runs in the shared store; with ``memory://`` (one instance), in this
    process's registry, which keeps results as they are within a budget of bytes."""
    if store.backend == "memory":
        return RunRegistry(
            config.dedupe_ttl_s,
            max_entries=config.dedupe_max_entries,
            max_bytes=config.dedupe_max_bytes,
        )
    return StoreRuns(store, config.dedupe_ttl_s)


def outbound(
    environ: Mapping[str, str], config: OrchestratorConfig, *, own_auth: Collection[str] = ()
) -> Transport:
    """The transport the environment chooses, carrying the orchestrator's platform identity
    (``OUTBOUND_AUTH``) to the gateway and to every agent not in ``own_auth`` (those with
    headers of their own); never to the sink."""
    transport = outbound_transport(environ)
    callees = [config.gateway.url]
    callees += [entry.url for name, entry in config.agents.items() if name not in own_auth]
    auth = platform_auth(OutboundAuthSettings.load(environ), callees)
    return transport if auth is None else Authenticated(transport, auth)


class OrchestratorApp(AsyncFunctionApp):
    def route_of(self, path: str) -> str:
        if path.startswith(SESSIONS_PREFIX):
            return SESSION_ROUTE
        if not path.startswith(RUNS_PREFIX):
            return path
        if path.endswith(APPROVAL_SUFFIX):
            return APPROVAL_ROUTE
        return RESUME_ROUTE if path.endswith("/resume") else RUN_ROUTE


def build_app(service: OrchestratorService | None = None) -> AsyncFunctionApp:
    """The orchestrator's routes; with ``ORCHESTRATOR_API_KEYS`` set, each (and ``/metrics``)
    answers 401 to a call without one of them; ``/health`` stays open."""
    service = service or build_service()
    keys = service.keys
    mcp = orchestrator_mcp(service)
    routes = {
        ("POST", "/"): service.submit,
        ("POST", "/pubsub"): service.pubsub_push,
        ("GET", "/agents"): service.list_agents,
        ("POST", MCP_PATH): mcp.handle,
        ("GET", SESSION_ROUTE): service.get_session,
        ("DELETE", SESSION_ROUTE): service.delete_session,
        ("GET", RUN_ROUTE): service.get_run,
        ("POST", RESUME_ROUTE): service.resume_run,
        ("POST", APPROVAL_ROUTE): service.approve_run,
    }
    return OrchestratorApp(
        "orchestrator",
        {route: keys.guarding(handler) for route, handler in routes.items()},
        max_body_bytes=service.config.max_body_bytes,
        health=service.health,
        guard=keys.guard if keys.required else None,
        on_close=mcp.aclose,
    )
