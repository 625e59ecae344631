"""How a run's end is told: the answer of a run that did not complete (why it stopped, the
model's last words, the agents' results so far) and its one log line and metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.orchestrator import metrics
from functions.orchestrator.budgets import Budget
from functions.orchestrator.trace import RunResult, Status, Step, StopReason
from shared.http import readable_json
from shared.logs import get_logger

log = get_logger("orchestrator.loop")


def stopped_answer(
    reason: StopReason, budget: Budget, error: str | None, last_text: str, steps: list[Step]
) -> str:
    """The answer of a run that stopped or failed: why, and what it had found."""
    lines = [_why(reason, budget, error)]
    if last_text:
        lines.append(f"The model's last words: {last_text}")
    found = [s for s in steps if s.kind == "agent" and s.ok]
    if found:
        lines.append("Results so far:")
        lines += [f"- {s.name}: {result_text(s.outcome, 500)}" for s in found]
    return "\n".join(lines)


def log_run(result: RunResult) -> None:
    """One line per run: INFO, or WARNING with the reason when it failed; and its metrics."""
    usage = result.usage
    metrics.TASKS.labels(result.status.value, result.stop_reason.value).inc()
    metrics.TASK_STEPS.labels().observe(len(result.steps))
    metrics.TASK_TOKENS.labels("input").observe(usage.input_tokens)
    metrics.TASK_TOKENS.labels("output").observe(usage.output_tokens)
    metrics.TASK_DURATION.labels().observe(result.duration_ms / 1000)
    fields: dict[str, Any] = {
        "run_id": result.run_id,
        "status": result.status.value,
        "stop_reason": result.stop_reason.value,
        "steps": len(result.steps),
        "duration_ms": round(result.duration_ms, 1),
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "model_calls": usage.model_calls,
        "agent_calls": usage.agent_calls,
    }
    if result.status is Status.FAILED:
        log.warning("run failed", extra={**fields, "error": result.error})
    else:
        log.info("run finished", extra=fields)


def _why(reason: StopReason, budget: Budget, error: str | None) -> str:
    texts: Mapping[StopReason, str] = {
        StopReason.MAX_STEPS: f"Stopped: the step budget ({budget.max_steps}) ran out.",
        StopReason.TIMEOUT: f"Stopped: the time budget ({budget.timeout_s:g} s) ran out.",
        StopReason.MAX_TOKENS: f"Stopped: the token budget ({budget.max_tokens}) ran out.",
        StopReason.APPROVAL_REQUIRED: "Waiting: a tool call needs a person's approval.",
    }
    return texts.get(reason, f"Failed: {error or reason.value}.")


def result_text(result: Any, limit: int) -> str:
    """An agent's result as text for the model (and the answer), cut at ``limit``."""
    text = result if isinstance(result, str) else readable_json(result)
    return text if len(text) <= limit else text[:limit] + f"... (cut: {len(text)} characters)"
