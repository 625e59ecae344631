"""The orchestrator's configuration: where the gateway and the agents are, timeouts, retries,
budgets and the event sink. Loaded once at start-up; a bad file stops the function there.

Agents (``agent_directory`` below): with ``manifest_agents: true`` (the shipped file) every
agent of ``functions.yaml`` at ``http://localhost:<port>``; the file's ``agents:``, which adds
agents or gives one its own URL or timeout; each agent's URL overridable by ``<NAME>_URL``
(``CALCULATOR_URL``); plus ``$AGENTS`` (``name=url,...``): any service that speaks the agent
contract, added by URL only. Their headers come from ``agent_sources``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from functions.orchestrator.budgets import BudgetSettings
from functions.orchestrator.runs import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES
from shared.config import read_yaml
from shared.errors import ConfigError, validation_problems
from shared.manifest import (
    AGENT_NAME,
    AGENT_NAME_RULE,
    Function,
    load_manifest,
    manifest_path,
    url_variable,
)
from shared.resilience import CircuitSettings, RetrySettings
from shared.settings import FunctionSettings, SettingsFile
from shared.store import DEFAULT_TIMEOUT_S as DEFAULT_STORE_TIMEOUT_S
from shared.store import DEFAULT_URL as DEFAULT_STORE_URL

AGENTS_VARIABLE = "AGENTS"
MCP_SERVERS_VARIABLE = "MCP_SERVERS"
APPROVAL_VARIABLE = "APPROVAL_REQUIRED"
MCP_SEPARATOR = "__"
"""Between an MCP server's name and its tool's in the name the model sees (``github__search``)."""


# ---- the agent directory: functions.yaml, the file's agents:, <NAME>_URL, $AGENTS -----------


OTHER_OVERRIDES = {
    "GATEWAY_URL": "gateway.url",
    "K_SINK": "sink.url",
    "STORE_URL": "store.url",
    "STORE_TIMEOUT_S": "store.timeout_s",
    "SESSION_TTL_S": "sessions.ttl_s",
    "SESSION_MAX_TOKENS": "sessions.max_tokens",
    "RUN_TTL_S": "runs.ttl_s",
    "RUN_LEASE_S": "runs.lease_s",
}


def env_overrides(agents: Iterable[str]) -> dict[str, str]:
    """The variables over the file: ``GATEWAY_URL``, each agent's ``<NAME>_URL``, ``K_SINK``.
    An agent whose variable is another's (an agent ``gateway``; ``geo-v2`` beside ``geo_v2``)
    is refused: one variable would set both."""
    by_agent: dict[str, str] = {}
    for name in agents:
        variable, dotted = url_variable(name), f"agents.{name}.url"
        if variable in OTHER_OVERRIDES:
            raise ConfigError(
                f"agent name {name!r}: its URL variable ${variable} sets "
                f"{OTHER_OVERRIDES[variable]}; pick another name"
            )
        if by_agent.get(variable, dotted) != dotted:
            other = by_agent[variable].removeprefix("agents.").removesuffix(".url")
            raise ConfigError(
                f"agents {other!r} and {name!r} would share the URL variable ${variable}; "
                "rename one"
            )
        by_agent[variable] = dotted
    return {"GATEWAY_URL": "gateway.url", **by_agent, **OTHER_OVERRIDES}


def _builtin_agents() -> tuple[Function, ...]:
    try:
        return load_manifest().agents
    except ConfigError:  # reported when the file is loaded (manifest_agents), not at import
        return ()


def _shipped_overrides() -> dict[str, str]:
    try:
        return env_overrides(agent.name for agent in _builtin_agents())
    except ConfigError:  # likewise: load_orchestrator_config names the clash
        return env_overrides(())


ENV_OVERRIDES = _shipped_overrides()
"""The variables over the shipped file (a file naming more agents gets theirs too)."""


def agent_of_override(variable: str, overrides: Mapping[str, str] = ENV_OVERRIDES) -> str | None:
    """The agent whose URL ``variable`` (an ``overrides`` key) sets, if it sets one."""
    dotted = overrides.get(variable, "")
    if dotted.startswith("agents.") and dotted.endswith(".url"):
        return dotted.removeprefix("agents.").removesuffix(".url")
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySettings(_Strict):
    url: str = Field(min_length=1, pattern=r"^https?://")
    """Base URL of the model gateway; ``/v1/messages`` is appended."""
    route: str = Field(default="default", min_length=1)
    """The gateway route (``model``) every model call names."""
    timeout_s: float = Field(default=60.0, gt=0, le=900)
    """One model call, including the gateway's own retries and fallbacks."""
    max_tokens_per_call: int = Field(default=1024, ge=1, le=64_000)
    """``max_tokens`` of each model call (the run's token budget may lower it)."""
    retry: RetrySettings = RetrySettings(max_attempts=2, base_delay_s=0.5)
    """Only for a gateway that is unreachable or answers 5xx after its own retries."""


class AgentEntry(_Strict):
    url: str = Field(min_length=1, pattern=r"^https?://")
    """Base URL of the agent; ``/schema`` and ``/`` are under it."""
    timeout_s: float | None = Field(default=None, gt=0, le=600)
    """Overrides ``agent_calls.timeout_s`` for this agent."""
    requires_approval: bool = False
    """A run pauses before each call to it until a person approves (``approval_required``)."""


class McpServerEntry(_Strict):
    url: str = Field(min_length=1, pattern=r"^https?://")
    """The server's streamable HTTP endpoint (``https://host/mcp``)."""
    timeout_s: float | None = Field(default=None, gt=0, le=600)
    """Overrides ``agent_calls.timeout_s`` for this server's tools."""


class AgentCallSettings(_Strict):
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    """One call to an agent (each attempt)."""
    retry: RetrySettings = RetrySettings(max_attempts=3, base_delay_s=0.2, max_delay_s=2.0)
    """Only connection errors, 502/503/504 and 429 with ``retry-after`` are retried."""
    circuit: CircuitSettings = CircuitSettings(failure_threshold=5, cooldown_s=10.0)
    max_parallel: int = Field(default=4, ge=1, le=64)
    """Tool calls of one model turn that run at once."""
    schema_ttl_s: float = Field(default=30.0, ge=0)
    """How long an agent's ``GET /schema`` answer (or its being down) is reused."""
    schema_timeout_s: float = Field(default=3.0, gt=0, le=60)


class SinkSettings(_Strict):
    url: str | None = Field(default=None, pattern=r"^https?://")
    """Where results go as CloudEvents (``K_SINK``); none by default."""
    max_attempts: int = Field(default=3, ge=1, le=10)
    base_delay_s: float = Field(default=0.5, ge=0)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    event_type_prefix: str = Field(default="dev.agentorch.task", min_length=1)
    """Events are ``<prefix>.completed``, ``.stopped`` or ``.failed``."""
    source: str = Field(default="/agentorch/orchestrator", min_length=1)


class StoreSettings(_Strict):
    url: str = Field(default=DEFAULT_STORE_URL, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://")
    """Where runs and sessions are kept (``shared.store``): ``memory://`` (this instance
    alone), ``sqlite:///path`` (every process on the machine), ``redis://host:port``
    (every instance). ``$STORE_URL``."""
    timeout_s: float = Field(default=DEFAULT_STORE_TIMEOUT_S, gt=0, le=60)
    """Each store call; past it the store counts as down (503). ``$STORE_TIMEOUT_S``."""


class SessionSettings(_Strict):
    ttl_s: float = Field(default=24 * 3600.0, gt=0)
    """A session is forgotten this long after its last turn. ``$SESSION_TTL_S``."""
    max_tokens: int = Field(default=8000, ge=100)
    """The earlier turns a task sees, at most this many tokens (estimated): the oldest go
    first. ``$SESSION_MAX_TOKENS``."""
    max_turns: int = Field(default=200, ge=1, le=10_000)
    """At most this many turns are kept per session (read back at each task)."""


class RunSettings(_Strict):
    ttl_s: float = Field(default=24 * 3600.0, gt=0)
    """A run's status and trace (``GET /runs/{id}``) are kept this long after its last step
    (``checkpoints.py``). ``$RUN_TTL_S``."""
    lease_s: float = Field(default=30.0, ge=1)
    """A run's owner renews its lease every third of this; a run whose owner stopped renewing
    it this long may be taken over by another instance (resumed). ``$RUN_LEASE_S``."""
    approval_timeout_s: float = Field(default=24 * 3600.0, gt=0)
    """A run waiting for approval longer than this is stopped (``approval_timeout``) when it
    is next looked at or answered."""


CONFIG_FILE = SettingsFile("ORCHESTRATOR_CONFIG", "orchestrator.yaml")


class OrchestratorConfig(FunctionSettings):
    """``$ORCHESTRATOR_CONFIG`` or ``config/orchestrator.yaml``, with ``env`` on top (the agents'
    URL variables are ``ENV_OVERRIDES``)."""

    file = CONFIG_FILE
    env = ENV_OVERRIDES
    secret = frozenset({"STORE_URL"})  # redis://:password@host: it may carry a password

    ai_provider: Literal["gateway"] = "gateway"
    """Model calls go through the model gateway; no provider key lives here."""
    gateway: GatewaySettings
    manifest_agents: bool = False
    """Every agent of ``functions.yaml`` is in the directory, at its local URL unless
    ``agents:`` or ``<NAME>_URL`` says otherwise (``load_orchestrator_config`` adds them)."""
    agents: dict[str, AgentEntry] = Field(default_factory=dict)
    mcp_servers: dict[str, McpServerEntry] = Field(default_factory=dict)
    """MCP servers whose tools are agents (``<server>__<tool>``); ``$MCP_SERVERS`` adds more."""
    max_mcp_result_bytes: int = Field(default=1024 * 1024, ge=1024)
    """An MCP server's answer larger than this is refused before it is read whole."""
    agent_calls: AgentCallSettings = AgentCallSettings()
    budgets: BudgetSettings = BudgetSettings()
    sink: SinkSettings = SinkSettings()
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_data_chars_in_prompt: int = Field(default=4000, ge=0)
    """Data up to this size is shown to the model whole; larger data as a summary."""
    max_result_chars: int = Field(default=8000, ge=200)
    """An agent's answer is cut to this many characters before the model sees it."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json"] = "json"
    """Logs are JSON lines on stderr (shared/logs.py); named so a deployment can state it."""
    dedupe_ttl_s: float = Field(default=600.0, ge=0)
    """A finished CloudEvent run is remembered this long, so a redelivery is not run again."""
    dedupe_max_entries: int = Field(default=DEFAULT_MAX_ENTRIES, ge=0)
    """At most this many finished CloudEvent runs are remembered (the oldest go first)."""
    dedupe_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=0)
    """At most this many bytes of their results, each counted at the size of its JSON."""
    store: StoreSettings = StoreSettings()
    sessions: SessionSettings = SessionSettings()
    runs: RunSettings = RunSettings()
    approval_required: list[str] = Field(default_factory=list)
    """Tools (agents, ``<server>__<tool>`` MCP tools) whose calls wait for a person's approval
    (``POST /runs/{id}/approval``), besides agents with ``requires_approval``.
    ``$APPROVAL_REQUIRED``: names separated by commas."""

    @model_validator(mode="after")
    def _agent_names(self) -> OrchestratorConfig:
        for name in self.agents:
            if not AGENT_NAME.fullmatch(name):
                raise ValueError(f"agent name {name!r}: {AGENT_NAME_RULE}")
        for name in self.mcp_servers:
            if not mcp_server_name_ok(name):
                raise ValueError(f"mcp_servers: name {name!r}: {MCP_NAME_RULE}")
            if name in self.agents:
                raise ValueError(f"mcp_servers: {name!r} is also an agent's name; rename one")
        return self


MCP_NAME_RULE = f"{AGENT_NAME_RULE}, without {MCP_SEPARATOR!r}"


def mcp_server_name_ok(name: str) -> bool:
    return bool(AGENT_NAME.fullmatch(name)) and MCP_SEPARATOR not in name


def load_orchestrator_config(environ: Mapping[str, str] | None = None) -> OrchestratorConfig:
    environ = os.environ if environ is None else environ
    path = CONFIG_FILE.path(environ)
    data = read_yaml(path)
    builtin = load_manifest(manifest_path(environ)).agents if _manifest_agents(data, path) else ()
    file_agents = data.get("agents")
    named = [str(name) for name in file_agents] if isinstance(file_agents, dict) else []
    # The shipped agents' variables apply to any file (as they always have), a file's own too.
    overrides = {
        **ENV_OVERRIDES,
        **env_overrides(dict.fromkeys([*(a.name for a in builtin), *named])),
    }
    if builtin and (file_agents is None or isinstance(file_agents, dict)):
        # A built-in agent is at its local URL unless the file or <NAME>_URL says otherwise:
        # the file may give it only a timeout_s.
        entries = dict(file_agents or {})
        for agent in builtin:
            entry = entries.get(agent.name)
            if entry is None:
                entries[agent.name] = {"url": agent.local_url}
            elif isinstance(entry, dict) and "url" not in entry:
                entries[agent.name] = {"url": agent.local_url, **entry}
        data = {**data, "agents": entries}
    approval = environ.get(APPROVAL_VARIABLE, "").strip()
    if approval:
        data = {**data, "approval_required": [n.strip() for n in approval.split(",") if n.strip()]}
    config = OrchestratorConfig.load(environ, env=overrides, data=data)
    agents = {a.name: config.agents[a.name] for a in builtin}
    agents.update((name, entry) for name, entry in config.agents.items() if name not in agents)
    agents = merge_env_agents(agents, environ, overrides)
    servers = {**config.mcp_servers, **env_mcp_servers(environ)}
    for name in servers:
        if name in agents:
            raise ConfigError(f"MCP server {name!r} has an agent's name; rename one")
    return config.model_copy(update={"agents": agents, "mcp_servers": servers})


class _ManifestSwitch(BaseModel):
    manifest_agents: bool = False


def _manifest_agents(data: Mapping[str, object], path: Path) -> bool:
    """The file's ``manifest_agents``, read as the settings read it (``"false"`` is false)."""
    try:
        given = {key: data[key] for key in ("manifest_agents",) if key in data}
        switch = _ManifestSwitch.model_validate(given)
    except ValidationError as exc:
        problems = validation_problems(exc, "manifest_agents")
        raise ConfigError("; ".join(f"{path}: {key}: {msg}" for key, msg in problems)) from exc
    return switch.manifest_agents


def env_agents(environ: Mapping[str, str]) -> dict[str, AgentEntry]:
    """The agents ``$AGENTS`` names, in its order; a malformed entry stops start-up."""
    urls = _env_urls(environ, AGENTS_VARIABLE, lambda name: bool(AGENT_NAME.fullmatch(name)))
    return {name: AgentEntry(url=url) for name, url in urls.items()}


def env_mcp_servers(environ: Mapping[str, str]) -> dict[str, McpServerEntry]:
    """The MCP servers ``$MCP_SERVERS`` names (``github=https://host/mcp,...``)."""
    urls = _env_urls(environ, MCP_SERVERS_VARIABLE, mcp_server_name_ok, MCP_NAME_RULE, "server")
    return {name: McpServerEntry(url=url) for name, url in urls.items()}


def _env_urls(
    environ: Mapping[str, str],
    variable: str,
    name_ok: Callable[[str], bool],
    rule: str = AGENT_NAME_RULE,
    noun: str = "agent",
) -> dict[str, str]:
    """``name=url,...`` from ``$variable``, in its order; a malformed entry stops start-up."""
    raw = environ.get(variable, "").strip()
    found: dict[str, str] = {}
    for number, item in enumerate(raw.split(",") if raw else [], start=1):
        where = f"${variable} entry {number}"
        name, equals, url = (part.strip() for part in item.partition("="))
        if not item.strip():
            raise ConfigError(f"{where}: is empty (a stray comma?)")
        if not equals or not url:
            raise ConfigError(f"{where} {name!r}: write it as name=http(s)://host[:port]")
        if not name_ok(name):
            raise ConfigError(f"{where}: name {name!r}: {rule}")
        if name in found:
            raise ConfigError(f"{where}: {noun} {name!r} is named twice")
        try:
            AgentEntry(url=url)
        except ValidationError:
            raise ConfigError(f"{where} ({name}): {url[:200]!r} is not an http(s) URL") from None
        found[name] = url
    return found


def merge_env_agents(
    agents: Mapping[str, AgentEntry],
    environ: Mapping[str, str],
    overrides: Mapping[str, str] = ENV_OVERRIDES,
) -> dict[str, AgentEntry]:
    """``agents`` (from the manifest and the file, with ``*_URL`` applied) plus ``$AGENTS``: an
    entry for a name the file has changes its URL only (its ``timeout_s`` stays)."""
    added = env_agents(environ)
    for variable in overrides:
        name = agent_of_override(variable, overrides)
        if name in added and environ.get(variable):
            raise ConfigError(
                f"${AGENTS_VARIABLE} and ${variable} both set agent {name!r}'s URL; keep one"
            )
    merged = dict(agents)
    for name, entry in added.items():
        old = merged.get(name)
        merged[name] = entry if old is None else old.model_copy(update={"url": entry.url})
    return merged
