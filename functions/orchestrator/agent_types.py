"""What the agents seam speaks in (``agents.py``): an agent's state and status, its tool
spec, a call's answer and its final error, and the ``Agents`` protocol the loop calls."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from shared.errors import ServiceError


class AgentState(StrEnum):
    AVAILABLE = "available"
    NOT_CONFIGURED = "not_configured"
    """It answered, saying it cannot work here (e.g. no API key): not offered to the model."""
    UNAVAILABLE = "unavailable"
    """Down, unreachable, or its ``GET /schema`` is no tool spec."""


@dataclass(frozen=True, eq=False)
class ToolSpec:
    """An agent's own description of itself (its ``GET /schema``); compared by identity, so
    the tools written from it can be kept per fetched spec."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class AgentStatus:
    name: str
    url: str
    spec: ToolSpec | None
    """None when the agent is down or not configured."""
    reason: str | None = None
    """Why ``spec`` is missing."""
    not_configured: bool = False
    """The agent answered that it cannot work here; ``reason`` is its own words."""
    source: str | None = None
    """Where its URL comes from (``$AGENTS``, ``$CALCULATOR_URL``, the config file)."""
    kind: str = "agent"
    """``agent`` (the agent contract) or ``mcp`` (a tool of an MCP server)."""

    @property
    def state(self) -> AgentState:
        if self.spec is not None:
            return AgentState.AVAILABLE
        return AgentState.NOT_CONFIGURED if self.not_configured else AgentState.UNAVAILABLE

    @property
    def reachable(self) -> bool:
        """It can be offered to the model now."""
        return self.spec is not None


@dataclass(frozen=True)
class AgentAnswer:
    result: Any
    """The agent's JSON answer (``{"result": ..., "meta": ...}``)."""
    attempts: int


class AgentCallError(ServiceError):
    """An agent call failed for good; the message is what the model is told. Not an
    ``UpstreamError``: it is the verdict after the retries, never something to retry."""

    status_code = 502

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class Agents(Protocol):
    def names(self) -> list[str]: ...

    def knows(self, name: str) -> bool:
        """``name`` may be asked for: an agent, an MCP server, or one of its tools."""
        ...

    async def statuses(
        self, names: Iterable[str] | None = None, *, refresh: bool = False
    ) -> dict[str, AgentStatus]: ...

    async def call(self, name: str, arguments: dict[str, Any], *, timeout_s: float) -> AgentAnswer:
        """Raises ``AgentCallError``."""
        ...
