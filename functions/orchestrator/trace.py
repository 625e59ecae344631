"""What a run produced: its steps, token and call counts, and the final result object.

Internal values are dataclasses; ``to_json()`` gives the wire shape that the final answer, the
``step_finished`` events and the sink's CloudEvent all carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from shared.http import json_text

StepKind = Literal["model", "agent"]
PREVIEW_CHARS = 2000


class Status(StrEnum):
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    WAITING_APPROVAL = "waiting_approval"
    """Paused before a call that needs a person's approval (``pending_approval``)."""


class StopReason(StrEnum):
    END_TURN = "end_turn"
    """The model gave its answer."""
    MAX_STEPS = "max_steps"
    TIMEOUT = "timeout"
    MAX_TOKENS = "max_tokens"
    GATEWAY_ERROR = "gateway_error"
    """The gateway could not be reached or refused the call."""
    MODEL_ERROR = "model_error"
    """The model's answer could not be used (cut short, malformed)."""
    INVALID_OUTPUT = "invalid_output"
    """The answer did not match the task's ``output_schema``, even after a repair turn."""
    APPROVAL_REQUIRED = "approval_required"
    """A tool call needs a person's approval: ``POST /runs/{id}/approval`` goes on."""
    APPROVAL_TIMEOUT = "approval_timeout"
    """No approval came within ``runs.approval_timeout_s``: the run stopped there."""
    INTERNAL_ERROR = "internal_error"


def bounded(value: Any, limit: int = PREVIEW_CHARS) -> Any:
    """``value`` itself when its JSON is at most ``limit`` characters, else a preview: a trace
    must stay small whatever the model or an agent sent."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str) and 6 * len(value) + 2 <= limit:  # even if every character
        return value  # were escaped (\u0000)
    try:
        text = json_text(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    if len(text) <= limit:
        return value
    return {"truncated": True, "chars": len(text), "preview": text[:limit]}


@dataclass
class Step:
    """One call the run made: to the model (through the gateway) or to an agent."""

    index: int
    kind: StepKind
    name: str
    """The gateway route for a model step, the agent's name for an agent step."""
    input: Any
    """What was sent, bounded in size."""
    outcome: Any = None
    """What came back (bounded); None when the step failed."""
    error: str | None = None
    attempts: int = 0
    provider: str | None = None
    """Model steps: the provider that answered (the gateway's ``x-gateway-provider``)."""
    latency_ms: float = 0.0
    tool_use_id: str | None = None
    """Agent steps: the model's ``tool_use`` block this step answers."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def started_json(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "name": self.name, "input": self.input}

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "name": self.name,
            "input": self.input,
            "outcome": self.outcome,
            "error": self.error,
            "attempts": self.attempts,
            "provider": self.provider,
            "latency_ms": round(self.latency_ms, 3),
            "tool_use_id": self.tool_use_id,
        }


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    agent_calls: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_json(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "model_calls": self.model_calls,
            "agent_calls": self.agent_calls,
        }


@dataclass
class RunResult:
    run_id: str
    status: Status
    answer: str
    stop_reason: StopReason
    steps: list[Step]
    usage: Usage
    duration_ms: float
    agents: dict[str, str] = field(default_factory=dict)
    """Each known agent: ``offered`` or why it was left out of the tools."""
    error: str | None = None
    """Why a failed run failed."""
    unavailable: bool = False
    """The gateway could not be reached or kept failing (the service answers 503 when that
    happened before any step succeeded, instead of a 'failed' result with nothing in it)."""
    trace_id: str | None = None
    """The task's trace (W3C, hex) when it has one: tracing on, or a caller that sent
    ``traceparent``; ``"trace_id"`` in the JSON then."""
    replayed: bool = False
    """This answers a redelivered CloudEvent with the earlier delivery's run (``"replayed":
    true`` in the JSON); the task was not run again."""
    output: Any = None
    """With ``output_schema``: the answer parsed, valid against it (``"output"`` in the JSON)."""
    session: dict[str, Any] | None = None
    """A session's task: ``{"id", "saved"}`` (and ``"error"`` when its turn could not be kept)."""
    pending_approval: list[dict[str, Any]] | None = None
    """A run waiting for approval: the calls proposed (``step``, ``tool``, ``arguments``)."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """The conversation this run added (its task, the model's turns, the tools' results), as
    Anthropic messages: what a session keeps. Not in the JSON answer."""

    @property
    def nothing_done(self) -> bool:
        return not any(step.ok for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        body = {
            "run_id": self.run_id,
            "status": self.status.value,
            "answer": self.answer,
            "stop_reason": self.stop_reason.value,
            "error": self.error,
            "steps": [step.to_json() for step in self.steps],
            "usage": self.usage.to_json(),
            "duration_ms": round(self.duration_ms, 3),
            "agents": dict(self.agents),
        }
        if self.output is not None:
            body["output"] = self.output
        if self.session is not None:
            body["session"] = dict(self.session)
        if self.trace_id is not None:
            body["trace_id"] = self.trace_id
        if self.pending_approval is not None:
            body["pending_approval"] = list(self.pending_approval)
        if self.replayed:
            body["replayed"] = True
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any], *, unavailable: bool = False) -> RunResult:
        """The result ``to_json()`` gave (a run kept in the shared store, answered again)."""
        return cls(
            run_id=body["run_id"],
            status=Status(body["status"]),
            answer=body["answer"],
            stop_reason=StopReason(body["stop_reason"]),
            steps=[Step(**step) for step in body["steps"]],
            usage=Usage(**body["usage"]),
            duration_ms=body["duration_ms"],
            agents=dict(body["agents"]),
            error=body["error"],
            unavailable=unavailable,
            output=body.get("output"),
            session=body.get("session"),
            pending_approval=body.get("pending_approval"),
        )
